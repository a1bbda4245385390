"""Structure silhouettes of the fluoroscopy views: :func:`mask_line_integrals` (one pass, planes holding the mask
only) against :func:`line_integrals` of each mask (the per-structure projection it replaces), and known lengths."""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.errors import InputError
from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.views.drr import CArmGeometry, line_integrals, mask_line_integrals, standard_geometry


def _grid(shape=(40, 52, 48), sp=(2.0, 0.8, 0.9)):
    return Volume(np.zeros(shape, np.float32), axis_aligned_affine(sp, (-20.0, 7.0, -33.0)))


def _masks(vol):
    """A ball, a tilted tube (vessel-like), a thin slab touching one face, a mask touching every face, one voxel."""
    K, J, I = vol.shape
    k, j, i = np.indices(vol.shape)
    sp = vol.spacing_mm
    ball = ((k - 20) * sp[0]) ** 2 + ((j - 26) * sp[1]) ** 2 + ((i - 24) * sp[2]) ** 2 <= 9.0 ** 2
    tube = ((j - 10 - 0.3 * k) * sp[1]) ** 2 + ((i - 30 + 0.2 * k) * sp[2]) ** 2 <= 2.5 ** 2
    slab = np.zeros(vol.shape, bool)
    slab[:, :, :3] = True
    frame = np.zeros(vol.shape, bool)  # non-zero on the first and last plane of every axis: no plane skipped
    frame[[0, -1], :, :] = True
    frame[:, [0, -1], :] = True
    frame[:, :, [0, -1]] = True
    dot = np.zeros(vol.shape, bool)
    dot[17, 30, 11] = True
    return [ball, tube, slab, frame, dot]


@pytest.mark.parametrize("view", ["lateral", "ap_open_mouth", "bullseye", "progression"])
def test_equals_line_integrals_of_each_mask(view):
    """Each channel = line_integrals of that mask alone (float32 sums over fewer zero terms: <= 1e-5 mm apart);
    a mask on every plane of every axis (nothing skipped) gives the same values bit for bit; zeros stay zeros."""
    vol = _grid()
    masks = _masks(vol)
    centre = vol.index_to_world(np.array([20.0, 26.0, 24.0]))
    geo = standard_geometry(view, centre, np.array([0.3, 0.8, -0.52]), n_pixels=(96, 96),
                            detector_size_mm=(120.0, 120.0))
    got = mask_line_integrals(vol, masks, geo)
    assert len(got) == len(masks)
    for m, g in zip(masks, got):
        ref = line_integrals(vol.with_array(m.astype(np.float32)), geo)
        assert g.dtype == np.float32 and g.shape == ref.shape == (96, 96)
        np.testing.assert_allclose(g, ref, rtol=1e-5, atol=1e-5)
        assert np.array_equal(g == 0, ref == 0)
        assert g.max() > 0
    ref_frame = line_integrals(vol.with_array(masks[3].astype(np.float32)), geo)
    assert np.array_equal(got[3], ref_frame)


def test_known_lengths():
    """Lateral central ray through the ball's centre: its diameter (18 mm, +-1 voxel); an empty mask: all zeros."""
    vol = _grid()
    ball = _masks(vol)[0]
    centre = vol.index_to_world(np.array([20.0, 26.0, 24.0]))
    geo = CArmGeometry(centre, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), n_pixels=(33, 33),
                       detector_size_mm=(66.0, 66.0))
    sil, empty = mask_line_integrals(vol, [ball, np.zeros(vol.shape, bool)], geo)
    assert sil[16, 16] == pytest.approx(18.0, abs=0.9)
    assert not empty.any()
    assert mask_line_integrals(vol, [], geo) == []


def test_wrong_shape_refused():
    """A mask of another shape than the grid is refused with an InputError."""
    vol = _grid()
    geo = standard_geometry("lateral", vol.index_to_world(np.array([20.0, 26.0, 24.0])))
    with pytest.raises(InputError, match="shape"):
        mask_line_integrals(vol, [np.zeros((3, 3, 3), bool)], geo)
