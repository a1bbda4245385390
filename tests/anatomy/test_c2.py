"""C2 localisation and landmarks against the phantom's exact truth."""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.anatomy.c2 import locate_c2
from osteoplan.errors import AnatomyError


@pytest.fixture(scope="module")
def phantom():
    from osteoplan.anatomy.phantom import make_phantom

    return make_phantom(fov_inferior_mm=-60.0)


@pytest.fixture(scope="module")
def located(phantom):
    return locate_c2(phantom.volume)


def test_c2_dice_and_landmarks_within_2mm(phantom, located):
    c2, lm = located
    t = phantom.truth.get("vertebrae_C2")
    assert 2 * (c2 & t).sum() / (c2.sum() + t.sum()) >= 0.90
    tl = phantom.landmarks
    for f in ("apex_lps_mm", "waist_lps_mm", "anteroinferior_body_lps_mm", "body_centre_lps_mm"):
        assert np.linalg.norm(getattr(lm, f) - getattr(tl, f)) <= 2.0, f
    assert lm.waist_diameter_mm == pytest.approx(tl.waist_diameter_mm, abs=1.5)
    assert np.degrees(np.arccos(np.clip(lm.axis_unit @ tl.axis_unit, -1, 1))) < 10.0
    assert 0.5 < lm.confidence <= 1.0
    assert lm.method == "classical"


def test_hint_inside_c2_gives_same_vertebra(phantom, located):
    c2, _ = located
    c2h, lmh = locate_c2(phantom.volume, hint_lps=phantom.landmarks.body_centre_lps_mm)
    assert lmh.method == "classical+hint"
    assert 2 * (c2 & c2h).sum() / (c2.sum() + c2h.sum()) > 0.95


def test_ct_without_c2_is_a_clear_error(phantom):
    # keep only the skull-free top 8 slices above C1: no vertebral column anterior to a canal
    v = phantom.volume
    top = v.with_array(v.array.copy())
    arr = top.array
    arr[:-8] = -1000.0
    with pytest.raises(AnatomyError, match="C2|canal"):
        locate_c2(top)


def test_dens_cut_through_by_a_lesion_flags_the_waist(phantom, located):
    from osteoplan.anatomy.phantom import make_phantom

    _, lm = located
    assert not any("waist position" in n for n in lm.notes)  # intact/contained lesion: smooth waist
    # a 6 mm lesion is wider than the dens (radius 4.5-5 mm): the narrowest bone section is the lysis
    ph6 = make_phantom(fov_inferior_mm=-60.0, lesion_radius_mm=6.0)
    _, lm6 = locate_c2(ph6.volume)
    assert any("waist position and diameter are uncertain" in n for n in lm6.notes)
    assert np.linalg.norm(lm6.apex_lps_mm - ph6.landmarks.apex_lps_mm) <= 2.0  # the apex is still right


def test_disc_search_prefers_thin_disc_over_broad_marrow_trough():
    """A 1 mm dark band between two endplates is the disc; a 10 mm dark marrow trough is not.

    Column of 400 HU bone, 1 mm voxels, apex at the top slice (s = 0). Distance below the apex s:
    endplates (800 HU) at s = 35 and 37 around a 100 HU disc at s = 36; a 150 HU marrow trough
    at s = 40..49 closed by an endplate at s = 51. Disc depth at s = 36: min(800, 800) - 100 =
    700 HU; in the middle of the trough (s = 42..47) one side
    within 4 mm is all 150 HU, so depth 0. (CThead: the former +/- 10 mm prominence picked the
    mid-C3 marrow 41 mm below the apex instead of the C2/C3 disc at 36 mm.)
    """
    from osteoplan.anatomy.c2 import _Column, _disc_valleys, _find_level
    from osteoplan.anatomy.segment import Canon
    from osteoplan.imaging.volume import Volume, axis_aligned_affine

    K, J, I = 60, 40, 40
    arr = np.full((K, J, I), 0.0, np.float32)
    col_hu = np.full(K, 400.0)
    s_of_k = (K - 1) - np.arange(K)
    col_hu[np.isin(s_of_k, [35, 37, 51])] = 800.0
    col_hu[s_of_k == 36] = 100.0
    col_hu[(s_of_k >= 40) & (s_of_k <= 49)] = 150.0
    arr[:, 10:31, 10:31] = col_hu[:, None, None]
    vol = Volume(arr, axis_aligned_affine((1.0, 1.0, 1.0)))
    cn = Canon.of(vol)
    ks = np.arange(K)
    col = _Column(ks, np.full(K, 20.0), np.full(K, 25.0), np.full(K, 20.0))
    s_all = np.arange(0.0, 75.0, 1.0)
    D = _disc_valleys(cn, arr, col, np.array([K - 1.0, 20.0]), np.array([-1.0, 0.0]), s_all)
    assert D[36] == pytest.approx(700.0, abs=1e-3)
    assert np.all(D[42:48] == pytest.approx(0.0, abs=1e-3))
    lev = _find_level(cn, arr, col, None)
    assert lev.cut_found and lev.s_cut == pytest.approx(36.0)
