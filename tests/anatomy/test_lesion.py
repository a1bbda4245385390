"""Lytic lesion in C2 versus the phantom's truth sphere; no lesion gives an empty result."""

from __future__ import annotations

import pytest

from osteoplan.anatomy.c2 import locate_c2
from osteoplan.anatomy.lesion import segment_lesion


@pytest.mark.parametrize("radius", [4.0, 0.0])
def test_lesion_volume_vs_truth(radius):
    from osteoplan.anatomy.phantom import make_phantom

    ph = make_phantom(fov_inferior_mm=-60.0, lesion_radius_mm=radius)
    c2, lm = locate_c2(ph.volume)
    res = segment_lesion(ph.volume, c2, lm)
    truth_ml = ph.truth.get("lesion").sum() * ph.volume.voxel_volume_ml
    if radius == 0:
        assert not res.found and res.volume_ml == 0.0 and not res.mask.any()
        assert res.fraction_of_dens == 0.0
    else:
        assert res.found
        # measured 0.245 mL vs 0.258 mL truth (sphere of 4 mm radius clipped to the dens)
        assert res.volume_ml == pytest.approx(truth_ml, rel=0.15)
        assert (res.mask & ph.truth.get("lesion")).sum() / res.mask.sum() > 0.8  # what is found is lesion
        assert res.fraction_of_dens > res.fraction_of_body
    assert res.reference_hu["median_hu"] == pytest.approx(250.0, abs=30.0)  # phantom cancellous 250 HU
    assert res.min_residual_bone_area_mm2 > 0
