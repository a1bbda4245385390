"""Lytic lesion in C2 versus the phantom's truth sphere; no lesion gives an empty result."""

from __future__ import annotations

import pytest

from osteoplan.anatomy.c2 import locate_c2
from osteoplan.anatomy.lesion import segment_lesion


@pytest.mark.parametrize("radius", [2.0, 4.0, 6.0, 0.0])
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
        # measured (mL, found vs truth): r 2 mm 0.043 vs 0.037, r 4 mm 0.210 vs 0.258, r 6 mm 0.713
        # vs 0.733 (the 6 mm sphere replaces the whole dens cross-section and breaks the cortex:
        # it is bounded by the dens outline restored from the bone above and below it)
        assert res.volume_ml == pytest.approx(truth_ml, rel=0.25)
        assert (res.mask & ph.truth.get("lesion")).sum() / res.mask.sum() > 0.8  # what is found is lesion
        if radius < 6.0:
            assert res.fraction_of_dens > res.fraction_of_body
    assert res.reference_hu["median_hu"] == pytest.approx(250.0, abs=30.0)  # phantom cancellous 250 HU
    if radius == 6.0:
        # at the dens centre the 6 mm sphere is wider than the dens (radius 5 mm): no bone is left
        assert res.min_residual_bone_area_mm2 < 5.0
    else:
        assert res.min_residual_bone_area_mm2 > 0
