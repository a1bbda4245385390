"""Real CT (slow): CThead and OpenKBP cases give a plan or a clear reason, and say what was assessed."""

from __future__ import annotations

import pytest

from osteoplan.errors import AnatomyError, PlanningError
from osteoplan.imaging import read_volume
from osteoplan.anatomy.pipeline import build_anatomy
from osteoplan.planning.planner import plan_from_anatomy
from osteoplan.planning.protocol import load_protocol

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


def _plan_or_reason(ct, masks=None):
    vol = read_volume(ct)
    an = build_anatomy(vol, masks=str(masks) if masks else None)
    try:
        return an, plan_from_anatomy(vol, an), None
    except (AnatomyError, PlanningError) as exc:
        return an, None, str(exc)


def _check(plan, an, reason):
    proto = load_protocol()
    if plan is None:
        assert reason and ("give a hint" in reason or "protocol" in reason or "C2" in reason)
        return
    # every protocol structure is reported, assessed exactly when segmented
    assert set(plan.assessed) | set(plan.not_assessed) == set(proto.structures)
    for name in plan.not_assessed:
        assert not an.labelmap.has(name)
    if plan.feasible:
        for c in plan.best.clearances:
            assert (c.status == "not_assessed") == (not c.segmented)
            if c.category == "hard" and c.segmented:
                assert c.clearance_mm >= c.margin_mm
        assert plan.best.containment_min_margin_mm >= proto.screw.containment_margin_mm
    else:
        inf = plan.infeasibility
        assert inf.n_feasible == 0 or not plan.trajectories
        assert "No feasible path" in inf.message
        assert sum(e.excluded_first for e in inf.exclusions) > 0


def test_cthead(shared_data):
    an, plan, reason = _plan_or_reason(shared_data / "cthead" / "ct.nii.gz")
    _check(plan, an, reason)
    if plan is not None:
        assert plan.ct.shape_kji == (113, 256, 256)
        # no contrast, no vertebral-artery masks: they are NOT assessed
        assert "vertebral_artery_left" in plan.not_assessed


def test_cthead_with_atlas_vertebral_arteries(shared_data):
    an, plan, reason = _plan_or_reason(shared_data / "cthead" / "ct.nii.gz", shared_data / "cthead" / "atlas_vessels")
    _check(plan, an, reason)
    if plan is not None:
        assert "vertebral_artery_left" in plan.assessed and "vertebral_artery_right" in plan.assessed


@pytest.mark.parametrize("case", ["pt_1", "pt_2", "pt_14"])
def test_openkbp(shared_data, case):
    d = shared_data / "openkbp" / case
    an, plan, reason = _plan_or_reason(d / "ct.nii.gz", d)
    _check(plan, an, reason)
    if plan is not None:
        assert "spinal_cord" in plan.assessed  # the provided SpinalCord contour
        assert plan.structure_sources["spinal_cord"].startswith("provided")
        assert any("Coarse CT" in w for w in plan.warnings)
