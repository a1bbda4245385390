"""Lytic lesion in C2 versus the phantom's truth sphere; no lesion gives an empty result."""

from __future__ import annotations

import numpy as np
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


def _box(shape, k, j, i):
    m = np.zeros(shape, bool)
    m[k[0]:k[1] + 1, j[0]:j[1] + 1, i[0]:i[1] + 1] = True
    return m


def test_measures_on_a_hand_built_c2():
    """Boxes on a 1 mm grid (x = -20 + i, y = -20 + j, z = -20 + k), dens axis +S through x = y = 0,
    waist plane z = 0.5: body 11 x 11 x 11 voxels (z -10..0), dens 5 x 5 x 16 (z 1..16), a posterior
    block (neither). Lesion: 3 x 3 x 3 in the dens (z 8..10), 4 x 4 x 2 in the body, 1 voxel behind.
    By hand: dens 27/400, body 32/1331; residual sections (one voxel layer each, from 2 mm above the
    body centre z = -5 to 2 mm below the apex z = 16): body 121 mm^2, dens 25 mm^2, dens at the lesion
    25 - 9 = 16 mm^2, first at z = 8."""
    from osteoplan.anatomy.landmarks import DensLandmarks
    from osteoplan.anatomy.lesion import lesion_from_mask, measure_lesion_in_c2
    from osteoplan.imaging import Volume, axis_aligned_affine

    shape = (40, 40, 40)
    vol = Volume(np.zeros(shape, np.float32), axis_aligned_affine((1.0, 1.0, 1.0), (-20.0, -20.0, -20.0)))
    z = lambda v: (v + 20, v + 20)  # noqa: E731 - world z/y/x range -> index range
    r = lambda a, b: (a + 20, b + 20)  # noqa: E731
    body = _box(shape, r(-10, 0), r(-5, 5), r(-5, 5))
    dens = _box(shape, r(1, 16), r(-2, 2), r(-2, 2))
    post = _box(shape, r(-8, -4), r(8, 12), r(-3, 3))
    c2 = body | dens | post
    assert body.sum() == 1331 and dens.sum() == 400
    les = _box(shape, r(8, 10), r(-1, 1), r(-1, 1)) | _box(shape, r(-7, -6), r(-2, 1), r(-2, 1))
    les[z(-6)[0], 10 + 20, 0 + 20] = True  # in the posterior block
    lm = DensLandmarks(apex_lps_mm=np.array([0.0, 0.0, 16.0]), waist_lps_mm=np.array([0.0, 0.0, 0.5]),
                       waist_diameter_mm=5.0, axis_unit=np.array([0.0, 0.0, 1.0]),
                       anteroinferior_body_lps_mm=np.array([0.0, -6.0, -10.0]),
                       body_centre_lps_mm=np.array([0.0, 0.0, -5.0]), confidence=1.0, method="test")
    m = measure_lesion_in_c2(vol, c2, les, lm)
    assert m["fraction_of_dens"] == pytest.approx(27 / 400)
    assert m["fraction_of_body"] == pytest.approx(32 / 1331)
    assert m["dens_ml"] == pytest.approx(0.400) and m["body_ml"] == pytest.approx(1.331)
    assert m["min_residual_bone_area_mm2"] == pytest.approx(16.0)
    np.testing.assert_allclose(m["min_residual_position_lps_mm"], [0.0, 0.0, 8.0])
    res = lesion_from_mask(vol, c2, les, lm)
    assert res.found and res.volume_ml == pytest.approx((27 + 32 + 1) / 1000)
    assert res.summary()["min_residual_bone_area_mm2"] == 16.0 and res.summary()["fraction_of_dens"] == 0.068
    empty = lesion_from_mask(vol, c2, np.zeros(shape, bool), lm)
    assert not empty.found and empty.fraction_of_dens == 0.0 and empty.min_residual_bone_area_mm2 == 25.0


def test_measures_on_the_phantom_truth_match_the_analytic_dens():
    """Phantom dens (profile radius R(t): 4.8 mm at the waist t = 6.5, 5.3 mm at t = 10, 5.2 mm at t = 16,
    hemispherical cap from t = 15.8 to the apex t = 21) with the 4 mm truth sphere at its centre
    (t = 10.5): dens volume above the waist = integral of pi R(t)^2 dt = 1077.7 mm^3; the sphere
    (268.1 mm^3) lies wholly above the waist: fraction of the dens 0.249, of the body 0; the narrowest
    residual section is at the sphere's centre: pi (5.29^2 - 4^2) = 37.7 mm^2. (Dens widened from
    4.5/5 mm for the anterior odontoid-screw corridor of the phantom.)"""
    import math

    from osteoplan.anatomy.lesion import measure_lesion_in_c2
    from osteoplan.anatomy.phantom import DENS_PROFILE_R, DENS_PROFILE_T, make_phantom

    t = np.linspace(6.5, 21.0, 20001)
    cap = DENS_PROFILE_R[-1]
    R = np.where(t > 21.0 - cap, np.sqrt(np.clip(cap**2 - (t - 21.0 + cap) ** 2, 0, None)),
                 np.interp(t, DENS_PROFILE_T, DENS_PROFILE_R))
    dens_mm3 = float(np.sum(np.pi * R[:-1] ** 2 * np.diff(t)))
    assert dens_mm3 == pytest.approx(1077.7, abs=0.5)
    ph = make_phantom(fov_inferior_mm=-40.0, noise_hu=0, lesion_radius_mm=4.0)
    m = measure_lesion_in_c2(ph.volume, ph.truth.get("vertebrae_C2"), ph.truth.get("lesion"), ph.landmarks)
    sphere_mm3 = 4 / 3 * math.pi * 4.0**3
    assert m["dens_ml"] * 1000 == pytest.approx(dens_mm3, rel=0.01)
    assert m["fraction_of_dens"] == pytest.approx(sphere_mm3 / dens_mm3, rel=0.05)  # 0.263 (voxelised sphere)
    assert m["fraction_of_body"] == 0.0
    r_centre = float(np.interp(10.5, DENS_PROFILE_T, DENS_PROFILE_R))
    assert m["min_residual_bone_area_mm2"] == pytest.approx(math.pi * (r_centre**2 - 16), rel=0.08)
    along = (m["min_residual_position_lps_mm"] - ph.lesion_centre_lps_mm) @ ph.landmarks.axis_unit
    assert abs(along) <= 1.0
