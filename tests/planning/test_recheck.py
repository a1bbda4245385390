"""Re-check of one moved trajectory with the planner's own kernel (osteoplan.planning.recheck), on the phantom:
the plan's own best trajectory comes back with exactly the plan's figures and verdict; a target moved 3 mm changes
the nearest structure's clearance by what a brute-force distance from the path to its voxels says."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest

from osteoplan.anatomy.phantom import PhantomParams, make_phantom
from osteoplan.errors import InputError
from osteoplan.planning import planner as P
from osteoplan.planning import recheck as R
from osteoplan.planning.protocol import load_protocol

#: Coarse phantom and direction grid: the search takes about a second (the re-check does not depend on them).
SPACING_MM = 1.6
ANGLE_STEP_DEG = 2.0


@pytest.fixture(scope="module")
def planned():
    """(phantom, plan, the search result of the plan's site, its context) with the search captured on the way."""
    ph = make_phantom(PhantomParams(spacing_mm=SPACING_MM))
    seen = []
    real = P.search

    def spy(*a, **kw):
        res = real(*a, **kw)
        seen.append(res)
        return res

    with mock.patch.object(P, "search", spy):
        plan = P.make_plan(ph.volume, ph.truth, ph.landmarks, load_protocol(), lesion_mask=ph.truth.get("lesion"),
                           angle_step_deg=ANGLE_STEP_DEG)
    assert plan.best is not None and len(seen) == 1
    ctx = R.build_context(plan, ph.volume, ph.truth, 0)
    return ph, plan, seen[0], ctx


def _exact_points(res):
    """Unrounded (skin, bone, target) of the search's best candidate."""
    c = res.chosen[0]
    T = res.targets[res.fine.cand_t[c]]
    d = res.dirs[res.fine.cand_d[c]]
    return T - res.fine.s_skin[c] * d, T - res.fine.s_bone[c] * d, T


def test_plan_best_trajectory_comes_back_exactly(planned):
    """The search's best candidate re-checked: every figure of the trajectory and the verdict are the plan's."""
    ph, plan, res, ctx = planned
    skin, bone, T = _exact_points(res)
    r = R.evaluate_trajectory(ctx, skin, bone, T)
    assert r.feasible and r.violations == {}
    assert r.trajectory == plan.best  # clearances, containment, screw, guidance, HU profile...: the same model
    assert r.plan.verdict == plan.verdict
    assert r.plan.hydrodissection == plan.hydrodissection
    # the clearance list names how each structure was known, and the ones not assessed
    assert all(c.assessed_by in R.ASSESSED_BY_WORDS for c in r.trajectory.clearances)
    assert r.trajectory.check("spinal_canal").assessed_by == "provided_mask"  # the phantom's exact masks


def test_plan_json_points_give_the_plan_within_its_rounding(planned):
    """From the points as plan.json stores them (0.01 mm): the same statuses and verdict; clearances within the
    rounding carried along the path (the direction from two points 0.005 mm off over about 35 mm)."""
    ph, plan, res, ctx = planned
    b = plan.best
    r = R.evaluate_trajectory(ctx, b.skin_entry_lps_mm, b.bone_entry_lps_mm, b.target_lps_mm)
    assert r.plan.verdict == plan.verdict
    assert r.trajectory.screw == b.screw
    for a, c in zip(b.clearances, r.trajectory.clearances, strict=True):
        assert (a.structure, a.status, a.assessed_by) == (c.structure, c.status, c.assessed_by)
        if a.clearance_mm is not None:
            assert c.clearance_mm == pytest.approx(a.clearance_mm, abs=0.03)
    assert r.trajectory.containment_min_margin_mm == pytest.approx(b.containment_min_margin_mm, abs=0.03)


def _brute_clearance(ph, name, a, b, r_instr):
    """Distance (mm) from the segment a-b to the nearest voxel centre of structure *name*, minus the instrument
    radius: the kernel's definition, computed without the kernel's distance maps."""
    pts = ph.volume.index_to_world(np.argwhere(ph.truth.get(name)).astype(float))
    ab = b - a
    t = np.clip(((pts - a) @ ab) / float(ab @ ab), 0.0, 1.0)
    return float(np.min(np.linalg.norm(pts - (a + t[:, None] * ab), axis=1))) - r_instr


def test_target_moved_3_mm_changes_the_nearest_clearance_as_brute_force_says(planned):
    ph, plan, res, ctx = planned
    b = plan.best
    hard = [c for c in b.clearances if c.category == "hard" and c.clearance_mm is not None
            and c.segment == "skin_to_target" and c.structure != "other_bone"]
    near = min(hard, key=lambda c: c.clearance_mm)
    skin, bone, T = (np.asarray(x) for x in (b.skin_entry_lps_mm, b.bone_entry_lps_mm, b.target_lps_mm))
    # move the target 3 mm towards the structure's voxel nearest to the target, across the path
    pts = ph.volume.index_to_world(np.argwhere(ph.truth.get(near.structure)).astype(float))
    toward = pts[np.argmin(np.linalg.norm(pts - T, axis=1))] - T
    d = (T - bone) / np.linalg.norm(T - bone)
    toward -= (toward @ d) * d
    move = 3.0 * toward / np.linalg.norm(toward)
    r = R.evaluate_trajectory(ctx, skin, bone, T + move, pivot="bone_entry")
    t2 = r.trajectory
    assert np.allclose(t2.target_lps_mm, T + move, atol=0.006)
    new = t2.check(near.structure).clearance_mm
    r_instr = ctx.r_instr_mm
    before = _brute_clearance(ph, near.structure, skin, T, r_instr)
    after = _brute_clearance(ph, near.structure, np.asarray(t2.skin_entry_lps_mm), np.asarray(t2.target_lps_mm),
                             r_instr)
    # trilinear interpolation of the distance map between voxel centres: within a quarter voxel of the brute force
    tol = 0.25 * SPACING_MM
    assert near.clearance_mm == pytest.approx(before, abs=tol)
    assert new == pytest.approx(after, abs=tol)
    assert (new - near.clearance_mm) == pytest.approx(after - before, abs=tol)
    assert after - before < -1.0  # a real change: the path came more than 1 mm closer


def test_points_outside_the_image_or_malformed_are_refused(planned):
    ph, plan, res, ctx = planned
    b = plan.best
    lo, hi = ph.volume.bounds_lps_mm()
    far = np.asarray(b.target_lps_mm) + np.array([0.0, 0.0, float(hi[2] - lo[2]) + 10.0])
    with pytest.raises(InputError, match="target moved outside the image"):
        R.evaluate_trajectory(ctx, b.skin_entry_lps_mm, b.bone_entry_lps_mm, far)
    with pytest.raises(InputError, match="three finite"):
        R.evaluate_trajectory(ctx, b.skin_entry_lps_mm, [1.0, float("nan"), 2.0], b.target_lps_mm)
    from osteoplan.errors import PlanningError

    out = np.asarray(b.target_lps_mm) + 20.0 * np.asarray(b.direction_unit)  # 20 mm beyond the tip: out of C2
    with pytest.raises(PlanningError, match="target lies outside C2"):
        R.evaluate_trajectory(ctx, b.skin_entry_lps_mm, b.bone_entry_lps_mm, out)
    with pytest.raises(InputError, match="pivot"):
        R.evaluate_trajectory(ctx, b.skin_entry_lps_mm, b.bone_entry_lps_mm, b.target_lps_mm, pivot="target")


def test_a_path_breaking_a_rule_is_not_called_feasible(planned):
    """The bone entry dragged 6 mm laterally: whatever the clearances, a broken hard constraint gives the planner's
    NO FEASIBLE PATH with the constraint named."""
    ph, plan, res, ctx = planned
    b = plan.best
    bone = np.asarray(b.bone_entry_lps_mm) + np.array([8.0, 0.0, 0.0])
    r = R.evaluate_trajectory(ctx, b.skin_entry_lps_mm, bone, b.target_lps_mm, pivot="bone_entry")
    assert not r.feasible and r.violations
    assert r.plan.verdict.code == "no_feasible_path"
    assert any("adjusted path breaks" in d for d in r.plan.verdict.details_en)


def test_cache_keeps_the_most_recent_within_its_memory_bound(planned):
    ph, plan, res, ctx = planned
    cache = R.RecheckCache(max_bytes=ctx.nbytes + 1)
    built = []

    def build(i):
        def f():
            built.append(i)
            return ctx
        return f

    assert cache.get("a", build("a")) is ctx and cache.get("a", build("a2")) is ctx
    cache.get("b", build("b"))
    assert built == ["a", "b"] and len(cache) == 1 and cache.peek("a") is None and cache.peek("b") is ctx


def test_vertebroplasty_needle_rechecked_from_the_stored_landmarks():
    """A transpedicular needle on the synthetic vertebra: the site rebuilt from the plan's vertebra landmarks gives
    back the plan's clearances (0.03 mm, the stored points' rounding) and verdict."""
    from types import SimpleNamespace

    from .synthetic_vertebra import make_lumbar

    vol, lm, spine = make_lumbar(("L1",))
    plan = P.make_plan(vol, lm, SimpleNamespace(labelmap=lm, spine=spine, messages=[], lesion=None),
                       "vertebroplasty-transpedicular", level="L1")
    b = plan.best
    ctx = R.build_context(plan, vol, lm, 0)
    assert ctx.site.level == "L1" and set(ctx.site.cone_axes) == {b.side}
    r = R.evaluate_trajectory(ctx, b.skin_entry_lps_mm, b.bone_entry_lps_mm, b.target_lps_mm)
    assert r.feasible and r.plan.verdict == plan.verdict
    for a, c in zip(b.clearances, r.trajectory.clearances, strict=True):
        assert (a.structure, a.status) == (c.structure, c.status)
        if a.clearance_mm is not None:
            assert c.clearance_mm == pytest.approx(a.clearance_mm, abs=0.03)


def test_moving_one_needle_keeps_a_warning_another_needle_still_gives(monkeypatch):
    """Two needles (bipedicular L1, synthetic vertebra): a trajectory warning both needles give stays when needle 2
    moves to where it no longer gives it (needle 1 still does), and goes when needle 1 does not give it either."""
    from types import SimpleNamespace

    from .synthetic_vertebra import make_lumbar

    vol, lm, spine = make_lumbar(("L1",))
    proto = load_protocol("vertebroplasty-transpedicular").model_copy(update={"needles_per_level": 2})
    plan = P.make_plan(vol, lm, SimpleNamespace(labelmap=lm, spine=spine, messages=[], lesion=None), proto, level="L1")
    assert [t.target_lps_mm[2] for t in plan.trajectories] == [-0.3, -0.3]
    warn = "a warning of every needle whose tip lies below z = 0"
    real = P._trajectory_warnings

    def fake(t, protocol):
        return real(t, protocol) + ([warn] if t.target_lps_mm[2] < 0 else [])

    monkeypatch.setattr(P, "_trajectory_warnings", fake)
    plan = plan.model_copy(update={"warnings": tuple(plan.warnings) + (warn,)})
    n2 = plan.trajectories[1]
    ctx = R.build_context(plan, vol, lm, 1)
    up = [n2.target_lps_mm[0], n2.target_lps_mm[1], 0.7]  # 1 mm towards the head: no longer below z = 0
    r = R.evaluate_trajectory(ctx, n2.skin_entry_lps_mm, n2.bone_entry_lps_mm, up)
    assert r.feasible and r.plan.trajectories[0] == plan.trajectories[0] and warn in r.plan.warnings
    # needle 1 moved up too (on the version with needle 2 moved): nobody gives the warning any more
    n1 = r.plan.trajectories[0]
    ctx1 = R.build_context(plan, vol, lm, 0)
    r1 = R.evaluate_trajectory(ctx1, n1.skin_entry_lps_mm, n1.bone_entry_lps_mm,
                               [n1.target_lps_mm[0], n1.target_lps_mm[1], 0.7], plan=r.plan)
    assert r1.feasible and warn not in r1.plan.warnings


def test_a_dens_target_moved_behind_the_axis_leaves_the_apex_zone(planned):
    """Dens screw (phantom): the target moved 2 mm posterior leaves the apex zone's 'anterior of the axis' side by
    2 mm minus how far anterior of the axis it was (computed here from the dens landmarks); the planned target itself
    lies in the zone (within the stored points' rounding). The zone is measured, not enforced by the re-check."""
    ph, plan, res, ctx = planned
    b = plan.best
    apex, ant = ctx.site.references["apex"], ctx.site.anterior_unit
    a0 = float((np.asarray(b.target_lps_mm) - apex) @ ant)  # mm anterior of the dens axis (the planner's grid)
    assert 0.0 <= a0 < 2.0
    assert R.target_zone_excess(ctx, b.target_lps_mm)[0] <= R.ZONE_TOLERANCE_MM
    back = np.asarray(b.target_lps_mm) - 2.0 * ant
    assert R.target_zone_excess(ctx, back)[0] == pytest.approx(2.0 - a0, abs=0.01)
    r = R.evaluate_trajectory(ctx, b.skin_entry_lps_mm, b.bone_entry_lps_mm, back)
    assert "target_zone" not in r.violations  # measured, not enforced: the zone is where the planner searches


def test_a_needle_closer_than_the_planners_spacing_to_another_is_not_feasible():
    """Two needles (bipedicular L1, synthetic vertebra): needle 2 as saved keeps the planner's spacing from needle 1
    (centre lines 9.1 mm apart); with needle 1 of the version placed parallel to needle 2, 4 mm above it, the gap
    between the two trocars' surfaces is 4 - 2 x 1.525 = 0.95 mm < 2 mm: needle 2 is no longer a path the planner
    would give (the rule of planner._place, which the re-check did not apply before), short by 1.05 mm."""
    from types import SimpleNamespace

    from .synthetic_vertebra import make_lumbar

    vol, lm, spine = make_lumbar(("L1",))
    proto = load_protocol("vertebroplasty-transpedicular").model_copy(update={"needles_per_level": 2})
    plan = P.make_plan(vol, lm, SimpleNamespace(labelmap=lm, spine=spine, messages=[], lesion=None), proto, level="L1")
    n1, n2 = plan.trajectories
    assert n1.instrument_radius_mm == n2.instrument_radius_mm == 1.525
    ctx = R.build_context(plan, vol, lm, 1)
    r = R.evaluate_trajectory(ctx, n2.skin_entry_lps_mm, n2.bone_entry_lps_mm, n2.target_lps_mm)
    assert r.feasible and "needle_gap" not in r.violations
    t = r.trajectory
    up = [np.asarray(p) + [0.0, 0.0, 4.0] for p in (t.skin_entry_lps_mm, t.bone_entry_lps_mm, t.target_lps_mm)]
    near = n1.model_copy(update={"skin_entry_lps_mm": tuple(up[0]), "bone_entry_lps_mm": tuple(up[1]),
                                 "target_lps_mm": tuple(up[2])})
    version = plan.model_copy(update={"trajectories": (near, n2)})
    r2 = R.evaluate_trajectory(ctx, n2.skin_entry_lps_mm, n2.bone_entry_lps_mm, n2.target_lps_mm, plan=version)
    assert not r2.feasible and r2.violations == {"needle_gap": pytest.approx(2.0 - (4.0 - 2 * 1.525), abs=0.01)}
    import re

    said = re.search(r"gap to the L1 left needle short by ([\d.]+) mm$", r2.violation_texts[0])
    assert said and float(said.group(1)) == pytest.approx(1.05, abs=0.051)
    assert r2.plan.verdict.code == "no_feasible_path" and "L1 right" in r2.plan.unplanned
    # the planner's own function gives the same gap (parallel lines 4 mm apart)
    assert P.needle_gap_mm(t.skin_entry_lps_mm, t.target_lps_mm, 1.525,
                           [(near.skin_entry_lps_mm, near.target_lps_mm, 1.525)]) == pytest.approx(0.95, abs=1e-6)
