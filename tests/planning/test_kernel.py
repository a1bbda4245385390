"""Search kernel on hand-computed geometry, and numba kernel == plain-Python reference."""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.planning import kernel as K
from osteoplan.planning.protocol import load_protocol
from osteoplan.planning.procedures.c2_dens import site_from_landmarks
from osteoplan.planning.search import build_fields, run_kernel

from .synthetic import make_neck


@pytest.fixture(scope="module")
def neck():
    vol, lm, dl = make_neck()
    proto = load_protocol("c2-dens-lateral")
    fields, warns, na = build_fields(vol, lm, site_from_landmarks(dl, proto), proto)
    return vol, lm, dl, proto, fields


@pytest.fixture(scope="module")
def neck_anterior():
    """The synthetic neck with a spherical lesion of radius 3 mm centred on the dens axis at z = 6 mm."""
    from osteoplan.anatomy.labelmap import LabelMap

    vol, lm, dl = make_neck()
    Z, Y, X = np.meshgrid(*(np.arange(n, dtype=float) for n in vol.shape), indexing="ij")
    pts = vol.index_to_world(np.stack([Z.ravel(), Y.ravel(), X.ravel()], 1)).reshape(vol.shape + (3,))
    lesion = np.linalg.norm(pts - np.array([0.0, 0.0, 6.0]), axis=-1) <= 3.0
    masks = {n: lm.get(n) for n in lm.names()}
    masks["lesion"] = lesion
    lm = LabelMap(vol, masks=masks, sources={n: "synthetic" for n in masks})
    proto = load_protocol("c2-dens-anterior")
    fields, warns, na = build_fields(vol, lm, site_from_landmarks(dl, proto), proto)
    return vol, lm, dl, proto, fields


def _names(fields):
    return [s.name for s in fields.structures]


def test_lateral_path_hand_computed(neck):
    """Pure lateral path from the right at z = -16 through the C2 body box (|x| <= 10, |y| <= 8) to (0, 0, -16).

    Voxel-centre geometry (1 mm grid, integer LPS coordinates):
    * body-box surface halfway between x = -10 (in) and x = -11 (out): bone entry at s = 10.5 mm;
    * body (radius 55) surface halfway between x = -55 and -56: skin at s = 55.5 mm;
    * canal (x^2 + (y-20)^2 <= 49): nearest voxel centre (0, 13, -16): 13 mm from the target;
    * right vertebral artery ((x+22)^2 + (y-6)^2 <= 6.25): nearest voxel (-22, 4, -16), 4 mm from the path;
    * right carotid ((x+25)^2 + (y+18)^2 <= 12.25): nearest voxel (-25, -15, -16), 15 mm from the path;
    * containment: depth to the box surface = min(8.5, 10.5 - |x|); the last 4 mm before the entry
      are skipped (perpendicular entry: skip = max(4, (r + 0.5) / sin 90)) -> min depth 4.0 at s = 6.5.
    """
    vol, lm, dl, proto, f = neck
    r_instr, r_screw = 2.0, 1.75
    ev = run_kernel(f, np.array([[0.0, 0.0, -16.0]]), np.array([[1.0, 0.0, 0.0]]), np.array([0]), np.array([0]),
                    proto, r_instr, r_screw, step_mm=0.5)
    assert ev.code[0] == K.OK
    assert ev.s_bone[0] == pytest.approx(10.5, abs=1e-6)
    assert ev.s_skin[0] == pytest.approx(55.5, abs=1e-6)
    assert ev.incidence_deg[0] == pytest.approx(90.0, abs=1e-3)
    assert ev.containment[0] == pytest.approx(4.0 - r_screw, abs=1e-6)
    names = _names(f)
    clear = dict(zip(names, ev.clear[0]))
    assert clear["spinal_canal"] == pytest.approx(13.0 - r_instr, abs=1e-6)
    assert clear["vertebral_artery_right"] == pytest.approx(4.0 - r_instr, abs=1e-6)
    assert clear["common_carotid_artery_right"] == pytest.approx(15.0 - r_instr, abs=1e-6)
    assert ev.other_bone[0] == 0.0


def test_vertical_path_crosses_c3(neck):
    """Straight up the dens axis from below: C2 surface halfway between z = -30 and -31 (s = 38.5 mm),
    then the gap (z -31..-33) and C3 (z -34..-44 voxels, surface -33.5 .. -44.5): 11 mm of other bone."""
    vol, lm, dl, proto, f = neck
    ev = run_kernel(f, np.array([[0.0, 0.0, 8.0]]), np.array([[0.0, 0.0, 1.0]]), np.array([0]), np.array([0]),
                    proto, 2.0, 1.75, step_mm=0.5)
    assert ev.s_bone[0] == pytest.approx(38.5, abs=1e-6)
    assert ev.other_bone[0] == pytest.approx(11.0, abs=0.51)  # counted in 0.5 mm samples
    assert ev.code[0] == K.NO_SKIN  # the body cylinder never ends below: no skin within the maximum depth


def test_numba_equals_python_reference(neck):
    vol, lm, dl, proto, f = neck
    rng = np.random.default_rng(1)
    targets = np.array([[0.0, -1.0, 8.0], [1.0, -2.0, 5.0], [-1.0, 0.0, 10.0]])
    d = rng.normal(size=(40, 3))
    d[:, 2] = np.abs(d[:, 2]) + 0.5
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    ct = np.repeat(np.arange(3), 40)
    cd = np.tile(np.arange(40), 3)
    a = run_kernel(f, targets, d, ct, cd, proto, 2.25, 2.25, 1.0)
    b = run_kernel(f, targets, d, ct, cd, proto, 2.25, 2.25, 1.0, python=True)
    np.testing.assert_array_equal(a.code, b.code)
    ok = a.code == K.OK
    assert ok.sum() > 10
    for x, y in ((a.s_bone, b.s_bone), (a.s_skin, b.s_skin), (a.containment, b.containment),
                 (a.other_bone, b.other_bone), (a.incidence_deg, b.incidence_deg)):
        np.testing.assert_allclose(x[ok], y[ok], atol=1e-4)
    np.testing.assert_allclose(a.clear[ok], b.clear[ok], atol=1e-4)


def test_angles_and_directions():
    d = K.unit_directions(1.0, np.array([30.0]), np.array([90.0]))[0]
    np.testing.assert_allclose(d, [np.cos(np.radians(30)), 0.0, 0.5], atol=1e-12)
    cc, ml = K.angles_of(d)
    assert cc == pytest.approx(30.0) and ml == pytest.approx(90.0)
    cc, ml = K.angles_of(np.array([0.0, 1.0, 0.0]))  # straight anterior -> posterior
    assert cc == pytest.approx(0.0) and ml == pytest.approx(0.0)


def test_tip_gap_lesion_thread_and_tip_skip_hand_computed(neck_anterior):
    """Straight up the dens axis to the target (0, 0, 11), anterior protocol (tip excused for 3 mm, 3.5 mm screw
    with a 12 mm thread).

    * cortex ahead: the dens top voxel centres are at z = 14, its surface halfway to 15: gap 3.5 mm;
    * lesion (sphere r = 3 around (0, 0, 6), voxel centres z = 3..9 on the axis, trilinear >= 0.5 from z = 2.5 to 9.5):
      7 mm long, all of it within the thread (s <= 12 mm, i.e. z >= -1): 7 mm on the thread;
    * containment: the tip sample (z = 11) is 3.5 mm under the top surface; the tip's 3 mm are skipped, so from
      z = 8 down the depth is >= 6.5 (dens radius 6, surface halfway to 7) until the entry end: the bone entry is
      the body's bottom surface (z = -30.5, s = 41.5), perpendicular, so the last max(4, (1.75 + 0.5) / 1) = 4 mm are
      skipped and the smallest depth is 4.0 at z = -26.5: containment 4.0 - 1.75 = 2.25 (without the tip skip it
      would be 3.5 - 1.75 = 1.75, the tip sample).
    """
    vol, lm, dl, proto, f = neck_anterior
    ev = run_kernel(f, np.array([[0.0, 0.0, 11.0]]), np.array([[0.0, 0.0, 1.0]]), np.array([0]), np.array([0]),
                    proto, 2.0, 1.75, step_mm=0.25)
    assert ev.tip_gap[0] == pytest.approx(3.5, abs=1e-6)
    assert ev.thread_mm == 12.0
    assert ev.lesion_thread[0] == pytest.approx(7.0, abs=0.26)
    assert ev.lesion[0] == pytest.approx(ev.lesion_thread[0], abs=1e-9)
    assert ev.s_bone[0] == pytest.approx(41.5, abs=1e-6)
    assert ev.containment[0] == pytest.approx(4.0 - 1.75, abs=1e-6)
    no_skip = proto.model_copy(update={"screw": proto.screw.model_copy(update={"containment_skip_tip_mm": 0.0})})
    ev0 = run_kernel(f, np.array([[0.0, 0.0, 11.0]]), np.array([[0.0, 0.0, 1.0]]), np.array([0]), np.array([0]),
                     no_skip, 2.0, 1.75, step_mm=0.25)
    assert ev0.containment[0] == pytest.approx(3.5 - 1.75, abs=1e-6)


def test_numba_equals_python_reference_anterior(neck_anterior):
    """Same candidates through both implementations with the anterior protocol's tip rules and entry zone."""
    vol, lm, dl, proto, f = neck_anterior
    from osteoplan.planning.procedures import cone_directions

    targets = np.array([[0.0, -1.0, 12.0], [1.0, -2.0, 11.0], [-1.0, -1.0, 13.0]])
    d = cone_directions(np.array([0.0, 0.0, 1.0]), 20.0, 4.0)
    n = len(d)
    ct = np.repeat(np.arange(3), n)
    cd = np.tile(np.arange(n), 3)
    a = run_kernel(f, targets, d, ct, cd, proto, 1.75, 1.75, 1.0, site=site_from_landmarks(dl, proto))
    b = run_kernel(f, targets, d, ct, cd, proto, 1.75, 1.75, 1.0, python=True, site=site_from_landmarks(dl, proto))
    np.testing.assert_array_equal(a.code, b.code)
    assert (a.code == K.BAD_ENTRY).any() and (a.code != K.BAD_ENTRY).any()
    for x, y in ((a.s_bone, b.s_bone), (a.containment, b.containment), (a.tip_gap, b.tip_gap),
                 (a.lesion_thread, b.lesion_thread), (a.incidence_deg, b.incidence_deg)):
        np.testing.assert_allclose(x, y, atol=1e-4)


def test_cone_directions_cover_the_cap_evenly():
    from osteoplan.planning.procedures import cone_directions

    ax = np.array([0.2, -0.1, 1.0])
    ax /= np.linalg.norm(ax)
    d = cone_directions(ax, 20.0, 1.0)
    ang = np.degrees(np.arccos(np.clip(d @ ax, -1, 1)))
    assert ang.max() <= 20.0 + 1e-9 and ang.min() == pytest.approx(0.0, abs=1e-5)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-12)
    # every direction of a fine random sample of the cap lies within ~one step of a grid direction
    rng = np.random.default_rng(0)
    q = rng.normal(size=(4000, 3))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q = q[np.degrees(np.arccos(np.clip(q @ ax, -1, 1))) <= 20.0]
    nearest = np.degrees(np.arccos(np.clip((q @ d.T).max(axis=1), -1, 1)))
    assert len(q) > 50 and nearest.max() <= 1.0


def _grid_candidates(targets, d):
    ct = np.repeat(np.arange(len(targets)), len(d))
    cd = np.tile(np.arange(len(d)), len(targets))
    return ct, cd


def test_gated_pass_equals_exhaustive_kernel(neck_anterior):
    """The search's dense pass (run_kernel_gated) against the kernel measuring every candidate: every figure equal;
    clearances equal wherever measured; a gated candidate is short of containment / tip-to-cortex / other bone by
    more than the gate, so the assessment's feasibility and, for every non-gated candidate, violations and scores
    are identical."""
    from osteoplan.planning.procedures import cone_directions
    from osteoplan.planning.search import assess, run_kernel_gated

    vol, lm, dl, proto, f = neck_anterior
    site = site_from_landmarks(dl, proto)
    targets = np.array([[0.0, -1.0, 12.0], [1.0, -2.0, 11.0], [-1.0, -1.0, 13.0], [0.0, 0.0, 9.0]])
    d = cone_directions(np.array([0.0, 0.0, 1.0]), 20.0, 2.0)
    ct, cd = _grid_candidates(targets, d)
    a = run_kernel(f, targets, d, ct, cd, proto, 1.75, 1.75, 1.0, site=site)
    b = run_kernel_gated(f, targets, d, ct, cd, proto, 1.75, 1.75, 1.0, site, gate_mm=1.0)
    for x in ("code", "s_bone", "s_skin", "containment", "other_bone", "lesion", "incidence_deg", "tip_gap",
              "lesion_thread"):
        np.testing.assert_array_equal(getattr(a, x), getattr(b, x), err_msg=x)
    g = b.gated
    assert g.any() and (~g & (b.code != K.BAD_ENTRY)).any()
    assert not a.gated.any()
    np.testing.assert_array_equal(a.clear[~g], b.clear[~g])
    assert (b.clear[g] == 1e9).all()
    aa = assess(a, f, targets, d, site, proto)
    ab = assess(b, f, targets, d, site, proto)
    np.testing.assert_array_equal(aa.feasible, ab.feasible)
    total = sum(np.minimum(v, 1e3) for v in aa.violations.values())
    assert (total[g] > 1.0).all()
    np.testing.assert_array_equal(aa.score[~g], ab.score[~g])
    for name, v in aa.violations.items():
        np.testing.assert_array_equal(v[~g], ab.violations[name][~g], err_msg=name)


def test_gated_numba_equals_python_reference(neck):
    """The gate in the compiled kernel and in the plain-Python reference (lateral protocol, no entry rule): same
    gated candidates, same clearances."""
    from osteoplan.planning.search import _run_kernel

    vol, lm, dl, proto, f = neck
    rng = np.random.default_rng(3)
    targets = np.array([[0.0, -1.0, 8.0], [1.0, -2.0, 5.0], [-1.0, 0.0, 10.0]])
    d = rng.normal(size=(40, 3))
    d[:, 2] = np.abs(d[:, 2]) + 0.5
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    ct, cd = _grid_candidates(targets, d)
    a = _run_kernel(f, targets, d, ct, cd, proto, 2.25, 2.25, 1.0, clear_gate=0.5)
    b = _run_kernel(f, targets, d, ct, cd, proto, 2.25, 2.25, 1.0, python=True, clear_gate=0.5)
    np.testing.assert_array_equal(a.code, b.code)
    np.testing.assert_array_equal(a.gated, b.gated)
    assert a.gated.any() and (~a.gated & (a.code == K.OK)).any()
    ok = a.code == K.OK
    np.testing.assert_allclose(a.clear[ok], b.clear[ok], atol=1e-4)
    np.testing.assert_allclose(a.other_bone, b.other_bone, atol=1e-9)


def test_direction_major_order_is_a_stable_sort_by_direction():
    cd = np.array([2, 0, 1, 0, 2, 1, 0], np.int64)
    ct = np.zeros(7, np.int64)
    np.testing.assert_array_equal(K.direction_major_order(ct, cd, 3), [1, 3, 6, 2, 5, 0, 4])


@pytest.mark.parametrize("which", ["neck", "neck_anterior"])
def test_search_with_the_gate_equals_the_exhaustive_search(which, request):
    """One-diameter search on the synthetic neck (lateral protocol; anterior protocol with a lesion): the gated dense
    pass and the exhaustive one (every candidate measured) give the same feasible set and the same refinement pool,
    and choose the same trajectories with the same scores, clearances and containment."""
    from osteoplan.planning import search as S

    vol, lm, dl, proto, f = request.getfixturevalue(which)
    site = site_from_landmarks(dl, proto)
    dirs, sign = S.directions(proto, ["left", "right"], site=site)
    diam = S.candidate_diameters(proto, site.width_limit_mm)[-1]
    a = S._search_one(f, site, proto, dirs, sign, diam, 1.0, 0.2, 50, exhaustive=True)
    b = S._search_one(f, site, proto, dirs, sign, diam, 1.0, 0.2, 50)
    assert b.coarse.gated.any() and not a.coarse.gated.any()
    np.testing.assert_array_equal(a.coarse_assessment.feasible, b.coarse_assessment.feasible)
    np.testing.assert_array_equal(a.fine.cand_t, b.fine.cand_t)  # the same refinement pool
    np.testing.assert_array_equal(a.fine.cand_d, b.fine.cand_d)
    np.testing.assert_array_equal(a.fine_assessment.score, b.fine_assessment.score)
    np.testing.assert_array_equal(a.fine.clear, b.fine.clear)
    assert a.chosen == b.chosen
    assert len(a.chosen) > 0 or which == "neck_anterior"  # no anterior path on this neck at the smallest screw
    for c in a.chosen:
        assert a.fine_assessment.score[c] == b.fine_assessment.score[c]
        np.testing.assert_array_equal(a.fine.clear[c], b.fine.clear[c])
        assert a.fine.containment[c] == b.fine.containment[c]


def test_least_violating_measures_the_gated_candidates_that_rank(neck_anterior):
    """The refinement pool's least-violating candidates from the gated pass equal those of the exhaustive pass (stable
    sort of total violation + 1e-3 score), also when so many are asked that gated candidates rank among them."""
    from osteoplan.planning import search as S
    from osteoplan.planning.procedures import cone_directions

    vol, lm, dl, proto, f = neck_anterior
    site = site_from_landmarks(dl, proto)
    targets = np.array([[0.0, -1.0, 12.0], [1.0, -2.0, 11.0], [-1.0, -1.0, 13.0], [0.0, 0.0, 9.0]])
    d = cone_directions(np.array([0.0, 0.0, 1.0]), 20.0, 2.0)
    ct, cd = _grid_candidates(targets, d)
    a = run_kernel(f, targets, d, ct, cd, proto, 1.75, 1.75, 1.0, site=site)
    b = S.run_kernel_gated(f, targets, d, ct, cd, proto, 1.75, 1.75, 1.0, site, gate_mm=1.0)
    aa, ab = S.assess(a, f, targets, d, site, proto), S.assess(b, f, targets, d, site, proto)
    ta = sum(np.minimum(v, 1e3) for v in aa.violations.values())
    tb = sum(np.minimum(v, 1e3) for v in ab.violations.values())
    want_all = np.argsort(ta + 1e-3 * aa.score, kind="stable")
    gated_rank = np.nonzero(b.gated[want_all])[0]
    assert len(gated_rank) > 0
    for n in (5, int(gated_rank[0]) + 3, len(ct)):
        got = S._least_violating(b, ab, tb, f, targets, d, site, proto, 1.75, 1.75, 1.0, n)
        np.testing.assert_array_equal(got, want_all[:n])


def test_depth_skipping_and_cell_flags_change_no_output(neck_anterior):
    """The kernel's exact shortcuts against the plain march, bit for bit: with the depth map's Lipschitz bound set to
    0 (``lip`` = 0: every depth sample read, no jump, containment read sample by sample) every output -- code, bone
    and skin entries, containment, tip gap, lesion, other bone, incidence, clearances -- is identical to the run with
    the bound (jumps over deep bone, containment from the depths the march read, cells whose corners prove the body /
    no other bone not read in soft tissue). Targets deep in the C2 body (depth > JUMP_MIN x the step's bound, so
    jumps happen) and in the dens; directions of a 40 degree cone and lateral ones; steps 1 and 0.5 mm."""
    from scipy.ndimage import map_coordinates

    from osteoplan.planning.procedures import cone_directions
    from osteoplan.planning.search import depth_lipschitz

    vol, lm, dl, proto, f = neck_anterior
    site = site_from_landmarks(dl, proto)
    targets = np.array([[0.0, -1.0, 12.0], [1.0, -2.0, 11.0], [0.0, 0.0, -16.0], [2.0, 1.0, -20.0]])
    d = np.concatenate([cone_directions(np.array([0.0, 0.0, 1.0]), 40.0, 5.0),
                        cone_directions(np.array([1.0, 0.0, 0.2]) / np.hypot(1.0, 0.2), 30.0, 5.0)])
    ct, cd = _grid_candidates(targets, d)
    lip = depth_lipschitz(f).copy()
    t_idx = f.world_to_roi(targets)
    depth = map_coordinates(f.bone_depth_mm, t_idx.T, order=1)
    d_idx = d @ np.linalg.inv(f.affine)[:3, :3].T
    assert (depth[2:, None] > K.JUMP_MIN * (np.abs(d_idx) @ lip)[None, :]).all()  # deep: the march jumps
    n_ok = 0
    for step, site_ in ((1.0, site), (0.5, site), (1.0, None)):
        a = run_kernel(f, targets, d, ct, cd, proto, 1.75, 1.75, step, site=site_)
        try:
            f._depth_lip = np.zeros(3)
            b = run_kernel(f, targets, d, ct, cd, proto, 1.75, 1.75, step, site=site_)
        finally:
            f._depth_lip = lip
        assert np.isin(a.code, (K.OK, K.NO_SKIN)).sum() > 20  # marched to the skin / the ROI's edge
        n_ok += int((a.code == K.OK).sum())
        for x in ("code", "s_bone", "s_skin", "containment", "other_bone", "lesion", "incidence_deg", "tip_gap",
                  "lesion_thread", "clear", "gated"):
            np.testing.assert_array_equal(getattr(a, x), getattr(b, x), err_msg=f"{x} at step {step}")
    assert n_ok > 20  # skin entries found (the body read again at the sample before the crossing)


def test_cell_flags_prove_body_and_no_other_bone(neck):
    """``_cell_flags``: where it says every corner proves the body (2), the interpolated body is >= 0.5 at random
    points of the cell; where it says no other bone (4), the interpolated other-bone mask is < 0.5 and the depth
    <= 0; both hold on some cells and fail on others (cells across the skin, the C2 and C3 surfaces)."""
    vol, lm, dl, proto, f = neck
    body, other, boned = f.body, f.other_bone, f.bone_depth_mm
    Kd, Jd, Id = body.shape
    rng = np.random.default_rng(3)
    cells = np.stack([rng.integers(0, n - 1, 4000) for n in body.shape], axis=1)
    seen = set()
    for k0, j0, i0 in cells:
        fl = K._cell_flags(body, other, boned, k0, j0, i0, k0 + 1, j0 + 1, i0 + 1)
        seen.add(int(fl))
        for fk, fj, fi in rng.random((4, 3)):
            p = (k0 + fk, j0 + fj, i0 + fi)
            if fl & 2:
                assert K._tri(body, *p) >= 0.5
            if fl & 4:
                assert K._tri(other, *p) < 0.5 and K._tri(boned, *p) <= 0.0
    assert any(s & 2 for s in seen) and any(s & 4 for s in seen) and any(not s & 2 for s in seen)
    assert any(not s & 4 for s in seen)
