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
    # a 6 mm lesion is wider than the dens (radius 4.8-5.3 mm): the narrowest bone section is the lysis.
    # Straight spine (lordosis 0): see test_lysis_through_a_dens_tilted_by_the_lordosis for the default.
    ph6 = make_phantom(fov_inferior_mm=-60.0, lesion_radius_mm=6.0, lordosis_deg=0.0)
    _, lm6 = locate_c2(ph6.volume)
    assert any("waist position and diameter are uncertain" in n for n in lm6.notes)
    assert np.linalg.norm(lm6.apex_lps_mm - ph6.landmarks.apex_lps_mm) <= 2.0  # the apex is still right


@pytest.mark.xfail(strict=True, reason="known limit of locate_c2: with a lysis cutting through the dens, a C2 "
                   "extended by the default 10-degree lordosis (dens axis 20 deg from vertical) gives an apex "
                   "5.7 mm off (Dice 0.92); from 5 degrees the level is lost (phantom measurements, 2026-12)")
def test_lysis_through_a_dens_tilted_by_the_lordosis():
    from osteoplan.anatomy.phantom import make_phantom

    ph6 = make_phantom(fov_inferior_mm=-60.0, lesion_radius_mm=6.0)
    _, lm6 = locate_c2(ph6.volume)
    assert np.linalg.norm(lm6.apex_lps_mm - ph6.landmarks.apex_lps_mm) <= 2.0


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


def test_ai_apex_range_from_published_prior_and_voxel_size():
    """37.6 +/- 3.3 mm (Eur Spine J 2009;18:271): mean +/- 3 SD = 27.7..47.5, widened by max(2, voxel)."""
    from osteoplan.anatomy.c2 import ai_apex_range_mm

    assert ai_apex_range_mm((0.8, 0.8, 0.8)) == pytest.approx((25.7, 49.5))
    assert ai_apex_range_mm((2.5, 3.9, 3.9)) == pytest.approx((23.8, 51.4))


def _landmarks(apex, ai):
    from osteoplan.anatomy.landmarks import DensLandmarks

    apex, ai = np.asarray(apex, float), np.asarray(ai, float)
    return DensLandmarks(apex_lps_mm=apex, waist_lps_mm=(apex + ai) / 2, waist_diameter_mm=9.0,
                         axis_unit=apex - ai, anteroinferior_body_lps_mm=ai, body_centre_lps_mm=ai + [0, 5, 5],
                         confidence=0.8, method="classical")


def test_implausible_dens_height_is_rejected_with_the_measured_value():
    from osteoplan.anatomy.c2 import plausibility_problems

    # AI straight down, 62 mm below the apex
    tall = _landmarks([0.0, 0.0, 0.0], [0.0, 0.0, -62.0])
    probs = plausibility_problems(tall, (1.0, 1.0, 1.0))
    assert probs == ["anteroinferior body to dens apex 62.0 mm is outside 25.7-49.5 mm "
                     "(37.6 +/- 3 x 3.3 mm, Eur Spine J 2009;18:271, widened by the voxel size)"]
    # AI 21 mm posterior and 28 mm below: sqrt(21^2 + 28^2) = 35 mm, plausible
    assert plausibility_problems(_landmarks([0.0, 0.0, 0.0], [0.0, 21.0, -28.0]), (1.0, 1.0, 1.0)) == []
    short = _landmarks([0.0, 0.0, 0.0], [0.0, 0.0, -24.0])
    assert "24.0 mm is outside 25.7-49.5 mm" in plausibility_problems(short, (1.0, 1.0, 1.0))[0]
    assert plausibility_problems(short, (2.5, 3.9, 3.9)) == []  # within 23.8-51.4 on OpenKBP voxels


def test_apex_behind_or_beside_the_canal_is_rejected():
    """Canal centre at (j, i) = (30, 20) on every slice of a 1 mm axial grid (k -> S, j -> P, i -> L)."""
    from osteoplan.anatomy.c2 import plausibility_problems
    from osteoplan.anatomy.segment import Canon
    from osteoplan.imaging.volume import Volume, axis_aligned_affine

    vol = Volume(np.zeros((60, 50, 40), np.float32), axis_aligned_affine((1.0, 1.0, 1.0)))
    cn = Canon.of(vol)
    centre = {k: (30.0, 20.0) for k in range(60)}
    # apex 16 mm anterior (j = 14), on the midline, AI 36 mm below: plausible
    good = _landmarks(vol.index_to_world(np.array([50.0, 14.0, 20.0])), vol.index_to_world(np.array([14.0, 14.0, 20.0])))
    assert plausibility_problems(good, cn.spacing_mm, cn=cn, volume=vol, centre=centre) == []
    # apex 4 mm in front of the canal centre (j = 26) and 11 mm to the patient's left (i = 31)
    bad = _landmarks(vol.index_to_world(np.array([50.0, 26.0, 31.0])), vol.index_to_world(np.array([14.0, 26.0, 31.0])))
    probs = plausibility_problems(bad, cn.spacing_mm, cn=cn, volume=vol, centre=centre)
    assert len(probs) == 2
    assert "lies 4.0 mm in front of the canal centre" in probs[0]
    assert "lies 11.0 mm left of the canal centre" in probs[1]


def test_dens_separated_from_body_is_rejected_unless_a_point_fixed_the_level():
    from osteoplan.anatomy.c2 import plausibility_problems
    from osteoplan.anatomy.segment import Canon
    from osteoplan.imaging.volume import Volume, axis_aligned_affine

    vol = Volume(np.zeros((40, 20, 20), np.float32), axis_aligned_affine((2.5, 1.0, 1.0)))
    cn = Canon.of(vol)
    c2 = np.zeros(vol.shape, bool)
    c2[2:20, 5:15, 5:15] = True  # body
    c2[23:30, 8:12, 8:12] = True  # "dens" 3 empty slices (7.5 mm) above it
    lm = _landmarks(vol.index_to_world(np.array([29.0, 10.0, 10.0])), vol.index_to_world(np.array([14.0, 5.0, 10.0])))
    probs = plausibility_problems(lm, cn.spacing_mm, c2_c=c2, cn=cn)
    assert probs == ["the candidate dens is separated from the body by 7.5 mm without bone (more than 7 mm: "
                     "two structures, or a lytic lesion through the dens)"]
    assert plausibility_problems(lm, cn.spacing_mm, c2_c=c2, cn=cn, check_gap=False) == []
    c2[20:22, 8:12, 8:12] = True  # now one empty slice (2.5 mm): one vertebra
    assert plausibility_problems(lm, cn.spacing_mm, c2_c=c2, cn=cn) == []


def test_rejected_candidate_reaches_the_pipeline_as_not_located(phantom, monkeypatch):
    """With a prior of 60 +/- 3.3 mm the phantom's 36 mm C2 is implausible: 'C2 NOT located' + reason."""
    import osteoplan.anatomy.c2 as c2mod
    from osteoplan.anatomy.c2 import C2CandidateRejected

    monkeypatch.setattr(c2mod, "PRIOR_AI_TO_APEX_MM", (60.0, 3.3))
    with pytest.raises(C2CandidateRejected) as ei:
        locate_c2(phantom.volume)
    # 60 -/+ 9.9 -/+ 2 mm for 0.8 mm voxels
    assert "is outside 48.1-71.9 mm" in str(ei.value)
    assert str(ei.value).startswith("C2 candidate rejected: anteroinferior body to dens apex ")
    cand = ei.value.candidate
    assert np.linalg.norm(cand.apex_lps_mm - phantom.landmarks.apex_lps_mm) <= 2.0
    assert f"{cand.anteroinferior_to_apex_mm:.1f} mm is outside" in str(ei.value)
    assert str(ei.value).endswith("Give a point inside C2 (--hint-lps X Y Z, LPS mm) or a vertebrae_C2 mask.")
    with pytest.raises(C2CandidateRejected) as eh:  # with a point: no next level, and the advice changes
        locate_c2(phantom.volume, hint_lps=phantom.landmarks.body_centre_lps_mm)
    assert str(eh.value).endswith("Check that the point given is inside C2, or provide a vertebrae_C2 mask.")
    from osteoplan.anatomy.pipeline import build_anatomy

    an = build_anatomy(phantom.volume)
    assert an.landmarks is None and not an.labelmap.has("vertebrae_C2")
    assert any(m.startswith("C2 NOT located: C2 candidate rejected: anteroinferior body to dens apex ")
               for m in an.messages)


def test_brainstem_and_cord_offsets_on_known_geometry():
    """Both slice orientations: k -> superior (axis_aligned_affine) and k -> inferior (as the shared NIfTI files)."""
    from osteoplan.anatomy.c2 import brainstem_apex_offset_mm, cord_apex_offset_mm
    from osteoplan.imaging.volume import Volume, axis_aligned_affine

    up = Volume(np.zeros((40, 30, 30), np.float32), axis_aligned_affine((2.5, 1.0, 1.0)))
    bs = np.zeros(up.shape, bool)
    bs[10:30, 18:24, 12:18] = True  # lowest slice k = 10: z = 25.0 mm
    apex = up.index_to_world(np.array([7.2, 5.0, 16.0]))  # z = 18.0 mm
    assert brainstem_apex_offset_mm(up, bs, apex) == pytest.approx(7.0)
    # cord centroid on slice 7 at (j, i) = (20.5, 14.5): apex 15.5 mm anterior, 1.5 mm to the left
    cord = np.zeros(up.shape, bool)
    cord[0:10, 18:24, 12:18] = True
    ant, left = cord_apex_offset_mm(up, cord, apex)
    assert ant == pytest.approx(15.5) and left == pytest.approx(1.5)
    assert cord_apex_offset_mm(up, cord, up.index_to_world(np.array([30.0, 5.0, 16.0]))) is None  # 50 mm above
    aff = up.affine.copy()
    aff[:3, 0] = [0.0, 0.0, -2.5]  # slices towards inferior; first slice at z = 0
    down = Volume(up.array, aff)
    bs2 = np.zeros(down.shape, bool)
    bs2[0:12, 18:24, 12:18] = True  # lowest slice k = 11: z = -27.5 mm
    assert brainstem_apex_offset_mm(down, bs2, [0.0, 0.0, -60.0]) == pytest.approx(32.5)  # a C3 taken for C2
    assert brainstem_apex_offset_mm(down, np.zeros(down.shape, bool), [0.0, 0.0, 0.0]) is None


@pytest.mark.slow
def test_cthead_c2_stops_at_the_c2_c3_disc(shared_data):
    """CThead (1 x 1 x 2 mm, slices towards inferior): the block of bone in front of the upper C3
    end-plate (slices 94-96, rows 113-116) is C3's anterosuperior corner, separated from the C2
    anteroinferior lip (slice 92) by the oblique C2/C3 disc (slice 93 anteriorly: 130-270 HU between
    cortices of 450-600 HU). The anteroinferior point must be on C2 (slice <= 92), not on C3."""
    from osteoplan.anatomy.c2 import PRIOR_AI_TO_APEX_MM
    from osteoplan.anatomy.pipeline import build_anatomy
    from osteoplan.imaging import read_volume

    vol = read_volume(shared_data / "cthead" / "ct.nii.gz")
    an = build_anatomy(vol)
    lm = an.landmarks
    assert lm is not None
    k_ai = vol.world_to_index(lm.anteroinferior_body_lps_mm)[0]
    assert 89.0 <= k_ai <= 92.5
    c2 = an.labelmap.get("vertebrae_C2")
    assert not c2[94:97, 113:117, 106:112].any()  # the C3 corner
    assert c2[88:91, 112:120, 106:112].any()  # the lower C2 body is kept
    m, sd = PRIOR_AI_TO_APEX_MM
    assert m - 2 * sd <= lm.anteroinferior_to_apex_mm <= m + 2 * sd


@pytest.mark.slow
@pytest.mark.parametrize("case,expect", [("pt_1", "located"), ("pt_10", "located"), ("pt_169", "located"),
                                         ("pt_177", "located"), ("pt_62", "refused")])
def test_openkbp_c2_level_agrees_with_the_brainstem_contour(shared_data, case, expect):
    """Independent level check with the provided Brainstem contour (benchmarks/openkbp_c2.py).

    pt_1, pt_10, pt_169, pt_177: located, with the dens apex within BRAINSTEM_APEX_BAND_MM of the
    caudal end of the Brainstem contour and AI-apex within +/- 2 SD of 37.6 +/- 3.3 mm (+ voxel).
    pt_62: the candidate is only 10-12 mm tall (its apex on the C1 anterior arch): refused with the
    measured height rather than located."""
    from osteoplan.anatomy.c2 import BRAINSTEM_APEX_BAND_MM, brainstem_apex_offset_mm
    from osteoplan.anatomy.pipeline import build_anatomy
    from osteoplan.imaging import read_volume

    d = shared_data / "openkbp" / case
    vol = read_volume(d / "ct.nii.gz")
    an = build_anatomy(vol)
    if expect == "refused":
        assert an.landmarks is None
        msg = next(m for m in an.messages if m.startswith("C2 NOT located"))
        assert msg.startswith("C2 NOT located: C2 candidate rejected: anteroinferior body to dens apex ")
        return
    lm = an.landmarks
    assert lm is not None
    bs = read_volume(d / "Brainstem.nii.gz").array > 0.5
    off = brainstem_apex_offset_mm(vol, bs, lm.apex_lps_mm)
    lo, hi = BRAINSTEM_APEX_BAND_MM
    assert lo <= off <= hi
    assert 37.6 - 2 * 3.3 - 4.0 <= lm.anteroinferior_to_apex_mm <= 37.6 + 2 * 3.3 + 4.0


def test_next_level_cuts_the_column_below_the_gap_or_6_mm_below_the_apex():
    """Column on canonical slices 0-59 (1 mm): the next candidate starts below the top structure."""
    from osteoplan.anatomy.c2 import _Column, _Level, _next_column
    from osteoplan.anatomy.segment import Canon
    from osteoplan.imaging.volume import Volume, axis_aligned_affine

    vol = Volume(np.zeros((60, 20, 20), np.float32), axis_aligned_affine((1.0, 1.0, 1.0)))
    cn = Canon.of(vol)
    col = _Column(np.arange(60), np.full(60, 10.0), np.full(60, 12.0), np.full(60, 8.0))
    lev = _Level(59, np.array([59.0, 7.0]), np.array([-1.0, 0.0]), 38.0, [], True, np.arange(60))
    c2 = np.zeros(vol.shape, bool)
    c2[10:40, 5:10, 8:12] = True  # body + dens
    c2[50:60, 5:10, 8:12] = True  # skull-base piece, 10 empty slices (40-49) below it
    too_tall = _landmarks([0.0, 7.0, 59.0], [0.0, 7.0, 4.0])  # 55 mm > 49.5
    nxt = _next_column(cn, col, c2, lev, too_tall)
    assert np.isnan(nxt.ja[40:]).all() and not np.isnan(nxt.ja[:40]).any()  # cut at the gap's lowest slice
    c2[40:50, 5:10, 8:12] = True  # no gap: 6 mm below the apex (slices 54-59 dropped)
    nxt = _next_column(cn, col, c2, lev, too_tall)
    assert np.isnan(nxt.ja[54:]).all() and not np.isnan(nxt.ja[:54]).any()
    short = _landmarks([0.0, 7.0, 59.0], [0.0, 7.0, 45.0])  # 14 mm: its apex is usually right, no retry
    assert _next_column(cn, col, c2, lev, short) is None


def test_disc_cut_removes_the_c3_corner_joined_through_a_thin_disc():
    """Synthetic 1 mm column (k -> S): C3 body k 5-18 and C2 body k 20-40 (400 HU, end-plates 700 HU
    at k 18 and 20), disc 50 HU at k 19. The C2 mask leaked through the disc into C3's anterior corner
    (k 14-19, j 5-9, i 15-25: 6 x 5 x 11 = 330 voxels = 0.33 mL). The disc valley at k 19 has depth
    min(700, 700) - 50 = 650 HU in every column: the plane k = 19 is fitted and everything at or below
    it is removed; the C2 body is untouched."""
    from osteoplan.anatomy.c2 import _Column, _Level, _cut_below_disc
    from osteoplan.anatomy.segment import Canon
    from osteoplan.imaging.volume import Volume, axis_aligned_affine

    K, J, I = 50, 40, 40
    arr = np.zeros((K, J, I), np.float32)
    arr[5:19, 5:26, 10:31] = 400.0
    arr[20:41, 5:26, 10:31] = 400.0
    arr[18, 5:26, 10:31] = 700.0
    arr[20, 5:26, 10:31] = 700.0
    arr[19, 5:26, 10:31] = 50.0
    vol = Volume(arr, axis_aligned_affine((1.0, 1.0, 1.0)))
    cn = Canon.of(vol)
    body = np.zeros(arr.shape, bool)
    body[20:41, 5:26, 10:31] = True
    c2 = body.copy()
    c2[14:20, 5:10, 15:26] = True
    canal = np.zeros(arr.shape, bool)
    canal[:, 30:37, 17:24] = True
    col = _Column(np.arange(K), np.full(K, 20.0), np.full(K, 25.0), np.full(K, 15.0))
    lev = _Level(40, np.array([40.0, 10.0]), np.array([-1.0, 0.0]), 21.0, [], True, np.arange(K))
    out, note = _cut_below_disc(cn, arr, c2, canal, col, lev)
    assert (out == body).all()
    assert note == "C2/C3 disc followed under the anterior body: 0.33 mL below it removed from C2"
    # no disc seen (C2 fused to C3, no dark band): nothing is cut
    fused = arr.copy()
    fused[18:21] = 400.0
    out2, note2 = _cut_below_disc(cn, fused, c2, canal, col, lev)
    assert note2 is None and (out2 == c2).all()


def test_lytic_lesion_through_the_dens_is_refused_without_a_point_and_found_with_one():
    """A 7 mm lesion cuts the phantom dens (outer radius 4.8-5.3 mm) over about 10 mm of height: without a
    point the dens head and body look like two structures (refused, never the level below); with a
    point inside the C2 body (the user confirms the level) the landmarks are within 2 mm (apex, AI)."""
    from osteoplan.anatomy.c2 import C2CandidateRejected
    from osteoplan.anatomy.phantom import make_phantom

    ph = make_phantom(fov_inferior_mm=-60.0, lesion_radius_mm=7.0, lordosis_deg=0.0)  # straight spine: see above
    with pytest.raises(C2CandidateRejected, match="lytic lesion through the dens"):
        locate_c2(ph.volume)
    _, lm = locate_c2(ph.volume, hint_lps=ph.landmarks.body_centre_lps_mm)
    assert lm.method == "classical+hint"
    for f in ("apex_lps_mm", "anteroinferior_body_lps_mm", "body_centre_lps_mm"):
        assert np.linalg.norm(getattr(lm, f) - getattr(ph.landmarks, f)) <= 2.0, f


# --- a user point decides the level -------------------------------------------------------------


@pytest.fixture(scope="module")
def straight():
    """The phantom with a straight spine (lordosis 0): with the default lordosis the C1 posterior arch
    descends to z = 8 mm, so no axial crop removes C1 while cutting the dens ~11 mm below its tip."""
    from osteoplan.anatomy.phantom import make_phantom

    return make_phantom(fov_inferior_mm=-60.0, lordosis_deg=0.0)


@pytest.fixture(scope="module")
def cut_above_c2(straight):
    """The straight-spine phantom with every slice at z >= 12 mm removed: no C1, the dens cut 11 mm
    below its tip (apex z = 23.2 mm), the canal open above the C2 arch. Returns (volume, truth C2, truth C3)."""
    from osteoplan.imaging.volume import Volume

    v = straight.volume
    z = v.index_to_world(np.stack([np.arange(v.shape[0]), np.zeros(v.shape[0]), np.zeros(v.shape[0])], 1))[:, 2]
    k = int((z < 12.0).sum())
    assert np.all(z[:k] < 12.0) and not straight.truth.get("vertebrae_C1")[:k].any()
    return (Volume(v.array[:k].copy(), v.affine.copy()), straight.truth.get("vertebrae_C2")[:k],
            straight.truth.get("vertebrae_C3")[:k])


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@pytest.mark.xfail(strict=True, reason="known limit of locate_c2 exposed by the phantom's longer C2 (corner -> apex "
                   "39.7 mm, was 36.1): cut 11 mm below the tip, the corner -> image-edge distance (28 mm) is "
                   "plausible, so the edge is reported as an apex 'that may be cut' (apex_in_view True) instead of "
                   "'the dens is cut by the top of the image'; cut lower (z < 8 mm) the note is right but the body "
                   "centre is 10 mm off. The 'is cut' rule should not rest on the corner -> apex length alone.")
def test_point_in_c2_body_decides_the_level_when_the_dens_is_cut_by_the_image(straight, cut_above_c2):
    """Without a point the column top is taken (wrong here); with a point in the C2 body the C2 is the
    one around the point: Dice >= 0.85, body centre and anteroinferior point within 2 mm. The apex is
    the image edge (11 mm below the true tip): flagged, not a plannable apex, low confidence."""
    phantom = straight
    vol, t2, _ = cut_above_c2
    c2_free, _ = locate_c2(vol)
    assert _dice(c2_free, t2) < 0.5  # what the hint-free locator does on this field of view
    c2, lm = locate_c2(vol, hint_lps=phantom.landmarks.body_centre_lps_mm)
    assert lm.method == "classical+hint"
    assert _dice(c2, t2) >= 0.85
    for f in ("body_centre_lps_mm", "anteroinferior_body_lps_mm"):
        assert np.linalg.norm(getattr(lm, f) - getattr(phantom.landmarks, f)) <= 2.0, f
    assert any("the dens is cut by the top of the image" in n for n in lm.notes)
    assert lm.apex_in_view is False  # the planner refuses to aim at it
    assert lm.apex_lps_mm[2] == pytest.approx(vol.index_to_world(np.array([vol.shape[0] - 1.0, 0, 0]))[2], abs=1.0)
    assert lm.confidence < 0.5


def test_point_in_c3_is_refused_with_the_reason(cut_above_c2):
    """A point in the C3 body (centre z = -24 mm, body 16 mm tall) gives a C3-shaped candidate: its
    anteroinferior-to-top distance is about 14 mm, below 25.7 mm (37.6 - 3 x 3.3 - 2): refused at the
    given point, never reported as C2; the pipeline says 'C2 NOT located'."""
    from osteoplan.anatomy.c2 import C2CandidateRejected
    from osteoplan.anatomy.pipeline import build_anatomy

    vol, _, t3 = cut_above_c2
    p3 = vol.index_to_world(np.argwhere(t3).mean(axis=0))
    with pytest.raises(C2CandidateRejected) as ei:
        locate_c2(vol, hint_lps=p3)
    msg = str(ei.value)
    assert msg.startswith("C2 candidate rejected at the given point: anteroinferior body to dens apex ")
    assert 10.0 <= ei.value.candidate.anteroinferior_to_apex_mm <= 17.0
    assert msg.endswith("Check that the point given is inside C2, or provide a vertebrae_C2 mask.")
    an = build_anatomy(vol, hint_lps=p3)
    assert an.landmarks is None and not an.labelmap.has("vertebrae_C2")
    assert any(m.startswith("C2 NOT located: C2 candidate rejected at the given point:") for m in an.messages)


def test_point_far_from_bone_is_refused_with_its_distance(phantom):
    """Distance from the point to the nearest TRUE bone voxel (exact phantom truth, Euclidean in mm):
    the message gives it to within 2 mm (the classical bone mask is not the truth)."""
    v = phantom.volume
    bone = phantom.truth.get("bone")
    pts = v.index_to_world(np.argwhere(bone).astype(float))
    for p in ([0.0, -30.0, -4.0], [0.0, -70.0, 0.0]):  # prevertebral soft tissue; far anterior
        d_true = float(np.min(np.linalg.norm(pts - np.asarray(p), axis=1)))
        assert d_true > 12.0
        with pytest.raises(AnatomyError, match=r"The point given inside C2 is (\d+) mm from any bone") as ei:
            locate_c2(v, hint_lps=p)
        import re

        d_msg = float(re.search(r"is (\d+) mm from any bone", str(ei.value)).group(1))
        assert abs(d_msg - d_true) <= 2.0
        assert "click inside C2" in str(ei.value)


def test_point_in_the_c1_ring_is_not_taken_for_c2(phantom):
    """A point in the C1 anterior arch (in front of the dens, outside the column): the vertebra found
    at its level (C2) does not reach it, so no C2 is returned for it."""
    v = phantom.volume
    c1 = np.argwhere(phantom.truth.get("vertebrae_C1"))
    w = v.index_to_world(c1.astype(float))
    mid = np.abs(w[:, 0]) < 1.0
    p = w[mid][np.argmin(w[mid][:, 1])] + [0.0, 1.5, 0.0]  # 1.5 mm behind the front of the arch
    assert phantom.truth.get("vertebrae_C1")[tuple(np.round(v.world_to_index(p)).astype(int))]
    with pytest.raises(AnatomyError, match="not part of the vertebra found at its level"):
        locate_c2(v, hint_lps=p)


def _synthetic_column(discs_k, K=90):
    from osteoplan.anatomy.c2 import _Column
    from osteoplan.anatomy.segment import Canon
    from osteoplan.imaging.volume import Volume, axis_aligned_affine

    col_hu = np.full(K, 400.0)
    for kd in discs_k:  # 100 HU disc between 800 HU end-plates: valley depth 800 - 100 = 700 HU
        col_hu[[kd - 1, kd + 1]] = 800.0
        col_hu[kd] = 100.0
    arr = np.zeros((K, 40, 40), np.float32)
    arr[:, 10:31, 10:31] = col_hu[:, None, None]
    cn = Canon.of(Volume(arr, axis_aligned_affine((1.0, 1.0, 1.0))))
    return cn, arr, _Column(np.arange(K), np.full(K, 20.0), np.full(K, 25.0), np.full(K, 20.0))


def test_level_at_point_moves_below_the_first_disc_when_the_point_is_lower():
    """Synthetic 1 mm column, canonical k 0-89 (k -> S), discs at k 59 and 29 (s = 30 and 60 mm below
    the top k 89). Without a point the disc at s = 30 is chosen (22-55 mm window). A point at k 44
    (s = 45, below that disc): the column is cut at it (new top k 58) and the level sought again: disc
    at 58 - 29 = 29 mm; noted. A point at k 79 (s = 10): the level without a point, unchanged."""
    from osteoplan.anatomy.c2 import _find_level, _find_level_at_point

    cn, arr, col = _synthetic_column((59, 29))
    assert _find_level(cn, arr, col, None).s_cut == pytest.approx(30.0)
    lev, col2 = _find_level_at_point(cn, arr, col, np.array([44.0, 20.0]))
    assert lev.apex_k == 58 and lev.cut_found and lev.s_cut == pytest.approx(29.0)
    assert np.isnan(col2.ja[59:]).all() and not np.isnan(col2.ja[:59]).any()
    assert any("the given point lies below the first level" in n for n in lev.notes)
    lev, col3 = _find_level_at_point(cn, arr, col, np.array([79.0, 20.0]))
    assert lev.apex_k == 89 and lev.s_cut == pytest.approx(30.0)
    assert not np.isnan(col3.ja).any() and not any("given point" in n for n in lev.notes)


def test_level_at_point_takes_the_first_deep_disc_below_it():
    """Discs at k 69 and 49 (s = 20 and 40): without a point s = 40 is chosen (s = 20 is outside the
    22-55 mm window). A point at k 79 (s = 10) has a 700 HU disc at s = 20 between it and s = 40 (>= 150
    HU and >= half of 700): C2 is cut there. A point 8 mm above the column top is accepted (10 mm
    tolerance); 15 mm above is refused with the distance."""
    from osteoplan.anatomy.c2 import _find_level_at_point

    cn, arr, col = _synthetic_column((69, 49))
    lev, _ = _find_level_at_point(cn, arr, col, np.array([79.0, 20.0]))
    assert lev.apex_k == 89 and lev.s_cut == pytest.approx(20.0)
    assert any("first deep disc below the given point (20 mm below the top, not 40 mm)" in n for n in lev.notes)
    assert _find_level_at_point(cn, arr, col, np.array([97.0, 20.0]))[0].s_cut == pytest.approx(20.0)
    with pytest.raises(AnatomyError, match="The point given lies 15 mm above the top of the vertebral column"):
        _find_level_at_point(cn, arr, col, np.array([104.0, 20.0]))


# ------------------------------------------------------- a point below a plausible automatic C2 (CThead)
@pytest.mark.slow
def test_cthead_point_below_or_at_the_foot_of_the_automatic_c2_is_refused(shared_data):
    """CThead: C2 found without a point (body centre z = -170.9 mm, anteroinferior corner z = -182.9 mm).

    A point 16 mm below the body centre (4 mm under the anteroinferior corner, straight down: 5 mm
    from the C2 mask) used to give a 'C2' made of the lower C2 body and C3 that passed the gate
    (AI-apex 26.7 mm): now refused as 'it may be in C3'. A point 12 mm below the body centre (at the
    corner's level, next to the mask) used to give that same chimera: refused because the two C2s
    differ (Dice < 0.5). English and French. Points in the body (centre, 4 and 8 mm below it) give
    the automatic C2 exactly."""
    from osteoplan.anatomy.pipeline import HINT_MIN_AGREEMENT_DICE, build_anatomy
    from osteoplan.imaging import read_volume
    from osteoplan.views.i18n import translate_text

    vol = read_volume(shared_data / "cthead" / "ct.nii.gz")
    auto = build_anatomy(vol)
    bc = np.asarray(auto.landmarks.body_centre_lps_mm)
    ai = np.asarray(auto.landmarks.anteroinferior_body_lps_mm)
    assert bc[2] == pytest.approx(-170.9, abs=1.0) and ai[2] == pytest.approx(-182.9, abs=1.0)
    low = build_anatomy(vol, hint_lps=bc - np.array([0.0, 0.0, 16.0]))
    assert low.landmarks is None
    msg = next(m for m in low.messages if m.startswith("C2 NOT located"))
    assert "mm below the C2 found without it" in msg and "it may be in C3" in msg
    below = float(msg.split("(")[1].split(" mm beneath")[0])
    assert 3.0 <= below <= 6.0  # 4 mm below the corner's level, along a dens axis tilted a few degrees
    fr = translate_text(msg, "fr")
    assert fr.startswith("C2 NON localisée : le point donné est à ") and "peut-être dans C3" in fr
    foot = build_anatomy(vol, hint_lps=bc - np.array([0.0, 0.0, 12.0]))
    assert foot.landmarks is None
    msg = next(m for m in foot.messages if m.startswith("C2 NOT located"))
    dice = float(msg.split("(Dice ")[1].split(")")[0])
    assert dice < HINT_MIN_AGREEMENT_DICE
    assert translate_text(msg, "fr").startswith("C2 NON localisée : la C2 trouvée à partir du point donné")
    for dz in (0.0, 4.0, 8.0):
        inside = build_anatomy(vol, hint_lps=bc - np.array([0.0, 0.0, dz]))
        assert inside.landmarks is not None, dz
        assert np.array_equal(inside.labelmap.get("vertebrae_C2"), auto.labelmap.get("vertebrae_C2")), dz
