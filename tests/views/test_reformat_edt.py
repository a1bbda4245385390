"""The reformats' margin distance maps (``edt`` package) against scipy's exact EDT that drew them before."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_dilation, distance_transform_edt

from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.views.reformat import _structure_fields


@pytest.mark.parametrize("spacing", [(2.0, 0.7, 0.9), (0.625, 0.488, 0.488), (3.0, 1.0, 1.0)])
def test_distance_map_equals_scipy_on_the_whole_box(spacing):
    """Irregular blobs (several components, touching the grid's border): every value of the sub-box equals scipy's
    distance_transform_edt of the same sub-box, cast to float32, to 2 float32 ulps (both exact EDTs; edt sums the
    squared distances in float32, scipy in float64), zero on the structure."""
    rng = np.random.default_rng(7)
    vol = Volume(np.zeros((36, 44, 40), np.float32), axis_aligned_affine(spacing))
    m = binary_dilation(rng.random(vol.shape) > 0.9985, iterations=2)
    m[0, 5:9, 3:6] = True  # on the grid's border: the box is clipped there
    lo, sub, dist = _structure_fields(m, vol, margin_mm=3.0)
    ref = distance_transform_edt(sub == 0, sampling=vol.spacing_mm).astype(np.float32)
    assert dist.dtype == np.float32 and dist.shape == ref.shape == sub.shape
    ulps = np.abs(dist.view(np.int32).astype(np.int64) - ref.view(np.int32))
    assert ulps.max() <= 2  # relative difference <= 2.4e-7
    assert np.all(dist[sub > 0] == 0.0) and np.all(dist[sub == 0] > 0.0)


def test_no_distance_map_without_margin():
    """Margin 0: only the mask's box (no distance map)."""
    vol = Volume(np.zeros((10, 10, 10), np.float32), axis_aligned_affine((1.0, 1.0, 1.0)))
    m = np.zeros(vol.shape, bool)
    m[4:6, 4:6, 4:6] = True
    lo, sub, dist = _structure_fields(m, vol, margin_mm=0.0)
    assert dist is None and sub.sum() == 8
