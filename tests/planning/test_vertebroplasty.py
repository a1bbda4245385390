"""Vertebroplasty through the engine, on a synthetic vertebra of known geometry (tests/planning/synthetic_vertebra.py).

Every figure the plan reports is checked against an independent computation on the analytic shapes: the tip in the
anterior third and across the midline (one needle) or on its own side (two), the needle inside the vertebra
(containment by brute force on voxel centres), the canal clearance by brute force, the pedicle passage grade, the
needles of several levels apart, the cement per level from its source, the level parser.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from osteoplan.errors import AnatomyError, PlanningError
from osteoplan.planning.planner import make_plan
from osteoplan.planning.procedures.vertebroplasty import gertzbein_robbins, parse_levels
from osteoplan.planning.protocol import load_protocol

from .synthetic_vertebra import BODY_AX, BODY_C, make_lumbar


def _anatomy(vol, lm, spine):
    return SimpleNamespace(labelmap=lm, spine=spine, messages=[], lesion=None)


def _pts(vol, mask):
    return vol.index_to_world(np.argwhere(mask).astype(float))


def _segment(t, step=0.25):
    a, b = np.asarray(t.skin_entry_lps_mm), np.asarray(t.target_lps_mm)
    n = int(np.linalg.norm(b - a) / step) + 1
    return a[None] + np.linspace(0, 1, n)[:, None] * (b - a)[None]


@pytest.fixture(scope="module")
def uni():
    vol, lm, spine = make_lumbar(("L1",))
    return vol, lm, spine, make_plan(vol, lm, _anatomy(vol, lm, spine), "vertebroplasty-transpedicular", level="L1")


def test_unipedicular_tip_in_the_anterior_third_across_the_midline(uni):
    vol, lm, spine, plan = uni
    assert plan.procedure == "vertebroplasty" and plan.level == "L1" and plan.placement == "alternatives"
    assert plan.feasible and plan.verdict.code == "feasible", plan.verdict.text_en
    b = plan.best
    assert b.screw is None and b.needle_diameter_mm in (2.41, 3.05)
    tip = np.asarray(b.target_lps_mm)
    post_y, ant_y = BODY_C[1] + BODY_AX[1], BODY_C[1] - BODY_AX[1]
    frac = (post_y - tip[1]) / (post_y - ant_y)  # anterior = -y
    assert 0.67 - 0.01 <= frac <= 0.9 + 0.01
    assert b.tip_anterior_fraction == pytest.approx(frac, abs=0.01)
    # across the midline: the tip lies on the side opposite the pedicle used, 0-5 mm from x = 0
    across = -tip[0] if b.side == "left" else tip[0]
    assert -0.01 <= across <= 5.01 and b.tip_from_midline_mm == pytest.approx(across, abs=0.02)
    # the needle enters through the pedicle of its side (skin entry behind and on that side)
    skin = np.asarray(b.skin_entry_lps_mm)
    assert skin[1] > 28 and (skin[0] > 0) == (b.side == "left")


def test_needle_stays_inside_the_vertebra_and_clear_of_the_canal_brute_force(uni):
    vol, lm, spine, plan = uni
    b = plan.best
    r = b.needle_diameter_mm / 2
    seg = _segment(b)
    d = np.asarray(b.direction_unit)
    s = (seg - np.asarray(b.bone_entry_lps_mm)) @ d
    inside = seg[(s >= b.containment_entry_skip_mm) & (s <= np.linalg.norm(np.asarray(b.target_lps_mm)
                                                                          - np.asarray(b.bone_entry_lps_mm)))]
    outside = _pts(vol, ~lm.get("vertebrae_L1") & (np.abs(vol.index_to_world(
        np.argwhere(np.ones(vol.shape, bool)).astype(float))[:, 2].reshape(vol.shape)) < 20))
    # distance from each needle-axis sample to the nearest voxel centre outside the vertebra, minus the radius,
    # minus half a voxel (the surface lies halfway between voxel centres)
    from scipy.spatial import cKDTree

    dist = cKDTree(outside).query(inside)[0] - 0.5 - r
    assert dist.min() >= 0.5 - 0.75  # containment margin 0.5 mm, within the voxel discretisation
    assert b.containment_min_margin_mm >= 0.5
    canal = cKDTree(_pts(vol, lm.get("spinal_canal"))).query(seg)[0].min() - r
    assert b.check("spinal_canal").clearance_mm == pytest.approx(canal, abs=0.6)
    assert b.check("spinal_canal").clearance_mm >= 1.0
    assert b.pedicle_breach_grade == "A" and b.pedicle_margin_mm >= 0.0


def test_structures_outside_the_bone_are_covered_by_containment_not_called_clear(uni):
    plan = uni[3]
    b = plan.best
    for name in ("aorta", "inferior_vena_cava", "segmental_artery"):
        c = b.check(name)
        assert c.status == "covered" and c.clearance_mm is None and "containment" in c.note
    assert "aorta" not in plan.not_assessed
    # the lung (segmented) is measured: brute force on its voxel centres
    vol, lm, spine, _ = uni
    from scipy.spatial import cKDTree

    lung = cKDTree(_pts(vol, lm.get("lung"))).query(_segment(b))[0].min() - b.needle_diameter_mm / 2
    from osteoplan.planning.fields import CAP_MM

    cap = CAP_MM - b.instrument_radius_mm  # distances are computed up to CAP_MM from the axis
    assert lung < cap  # the geometry puts the lung within reach of the distance maps
    assert b.check("lung").status == "pass" and b.check("lung").clearance_mm == pytest.approx(lung, abs=0.6)


def test_the_lung_not_segmented_is_not_assessed_and_the_plan_not_cleared():
    vol, lm, spine = make_lumbar(("L1",))
    lm.masks.pop("lung")
    plan = make_plan(vol, lm, _anatomy(vol, lm, spine), "vertebroplasty-transpedicular", level="L1")
    assert plan.best.check("lung").status == "not_assessed" and "lung" in plan.not_assessed
    assert plan.verdict.code == "not_cleared" and "lung" in plan.verdict.text_en


def test_bipedicular_two_needles_each_on_its_own_side():
    vol, lm, spine = make_lumbar(("L1",))
    proto = load_protocol("vertebroplasty-transpedicular").model_copy(update={"needles_per_level": 2})
    plan = make_plan(vol, lm, _anatomy(vol, lm, spine), proto, level="L1")
    assert plan.placement == "all" and len(plan.placed) == 2 and plan.feasible
    assert {t.side for t in plan.placed} == {"left", "right"}
    for t in plan.placed:
        x = t.target_lps_mm[0]
        assert (x > 0) == (t.side == "left") and 3.0 - 0.01 <= abs(x) <= 12.0 + 0.01


def test_two_levels_needles_apart_and_cement_per_level():
    vol, lm, spine = make_lumbar(("L1", "L2"))
    plan = make_plan(vol, lm, _anatomy(vol, lm, spine), "vertebroplasty-transpedicular", level="L1-L2")
    assert plan.placement == "all" and [t.level for t in plan.placed] == ["L1", "L2"]
    a, b = (_segment(t) for t in plan.placed)
    from scipy.spatial import cKDTree

    gap = cKDTree(a).query(b)[0].min() - sum(t.needle_diameter_mm / 2 for t in plan.placed)
    assert gap >= 2.0
    # Belkoff 2001: L1 thoracolumbar 2-4 mL, L2 lumbar 4-6 mL
    assert plan.cement.per_level_ml == {"L1": (2.0, 4.0), "L2": (4.0, 6.0)}
    assert plan.cement.suggested_pmma_ml == (6.0, 10.0) and "Belkoff" in plan.cement.basis


def test_a_level_not_on_the_ct_is_refused_with_the_levels_found():
    vol, lm, spine = make_lumbar(("L1",))
    with pytest.raises(AnatomyError, match="T12 was not found.*levels found: L1"):
        make_plan(vol, lm, _anatomy(vol, lm, spine), "vertebroplasty-transpedicular", level="T12")


def test_levels_and_grades():
    assert parse_levels("T10-L1") == ["T10", "T11", "T12", "L1"]
    assert parse_levels("t12, L2") == ["T12", "L2"]
    for bad in ("T14", "L1-T12", "X"):
        with pytest.raises(PlanningError):
            parse_levels(bad)
    assert [gertzbein_robbins(x) for x in (-1.0, 0.0, 1.9, 2.0, 4.5, 6.5)] == ["A", "A", "B", "C", "D", "E"]


def test_protocols_say_their_sources():
    from osteoplan.planning.protocol import PROTOCOL_DIR

    text = (PROTOCOL_DIR / "vertebroplasty-transpedicular.toml").read_text()
    assert "Tsoumakidou" in text and "Belkoff" in text and "Gertzbein" in text
    p = load_protocol("vertebroplasty-transpedicular")
    assert p.procedure == "vertebroplasty" and p.needle is not None and p.screw is None
    assert p.implant().diameters_mm == (2.41, 3.05)


def test_parapedicular_enters_lateral_to_the_pedicle_and_does_not_cover_what_lies_beside_the_path():
    from .synthetic_vertebra import PED_X

    vol, lm, spine = make_lumbar(("L1",))
    plan = make_plan(vol, lm, _anatomy(vol, lm, spine), "vertebroplasty-parapedicular", level="L1")
    assert plan.trajectories, plan.infeasibility.message
    t = plan.trajectories[0]
    x = t.bone_entry_lps_mm[0]
    assert abs(x) >= PED_X + 2.0 - 0.01 and (x > 0) == (t.side == "left")  # outward_min_mm = 2 from the isthmus
    # the segmental arteries, aorta, IVC and oesophagus are not segmented and not covered: not cleared, named
    for name in ("segmental_artery", "aorta"):
        assert t.check(name).status == "not_assessed"
    assert plan.verdict.code == "not_cleared" and "segmental arteries" in plan.verdict.text_en


def test_a_level_without_pedicles_is_not_planned_and_the_others_are():
    from dataclasses import replace

    vol, lm, spine = make_lumbar(("L1", "L2"))
    verts = dict(spine.vertebrae)
    verts["L2"] = replace(verts["L2"], pedicles={})
    spine = replace(spine, vertebrae=verts)
    plan = make_plan(vol, lm, _anatomy(vol, lm, spine), "vertebroplasty-transpedicular", level="L1-L2")
    assert plan.unplanned == ("L2",) and [t.level for t in plan.trajectories] == ["L1"]
    assert plan.verdict.code == "no_feasible_path" and "L2" in plan.verdict.text_en
    assert any(w.startswith("NOT PLANNED: L2: the left and right pedicles were not found") for w in plan.warnings)


def test_a_canal_mask_that_stops_above_the_level_is_not_assessed_there():
    vol, lm, spine = make_lumbar(("L1",))
    canal = lm.get("spinal_canal").copy()
    z = vol.index_to_world(np.argwhere(np.ones(vol.shape, bool)).astype(float))[:, 2].reshape(vol.shape)
    canal[z < 20] = False  # the mask stops 7 mm above the body's top (height 26 mm around z = 0)
    lm.masks["spinal_canal"] = canal
    plan = make_plan(vol, lm, _anatomy(vol, lm, spine), "vertebroplasty-transpedicular", level="L1")
    c = plan.trajectories[0].check("spinal_canal")
    assert c.status == "not_assessed" and "not at L1" in c.note
    assert plan.verdict.code == "not_cleared"


def test_procedures_map_to_the_registry_types():
    from osteoplan.planning.procedures import get_procedure, procedure_names
    from osteoplan.workflow.models import PROCEDURE_TYPES

    assert {get_procedure(n).registry_type for n in procedure_names()} <= set(PROCEDURE_TYPES)


def test_levels_named_with_low_confidence_must_be_confirmed_first():
    from dataclasses import replace

    vol, lm, spine = make_lumbar(("L1",))
    spine = replace(spine, level_method="classical:rib-count", level_confidence=0.5, needs_confirmation=True,
                    confirmation_request="give one level with --level-point T12:x,y,z (LPS mm)")
    plan = make_plan(vol, lm, _anatomy(vol, lm, spine), "vertebroplasty-transpedicular", level="L1")
    assert plan.best is not None and plan.verdict.code == "not_cleared"
    assert plan.verdict.text_en.startswith("NOT CLEARED: confirm first: the vertebra levels are not confirmed")
    assert "--level-point" in plan.verdict.text_en


def test_the_transpedicular_needle_goes_through_the_isthmus_and_an_implausible_axis_is_not_planned():
    from dataclasses import replace

    from .synthetic_vertebra import PED_R

    vol, lm, spine = make_lumbar(("L1",))
    plan = make_plan(vol, lm, _anatomy(vol, lm, spine), "vertebroplasty-transpedicular", level="L1")
    b = plan.best
    c = np.asarray(spine.vertebrae["L1"].pedicles[b.side].isthmus_lps_mm)
    T, d = np.asarray(b.target_lps_mm), np.asarray(b.direction_unit)
    dist = np.linalg.norm(np.cross(c - T, d))  # point-to-line distance, by hand
    assert dist <= PED_R + 1e-6 and b.pedicle_margin_mm is not None
    # a pedicle axis pointing sideways (90 deg from anterior) is not trusted: that side is not planned
    v = spine.vertebrae["L1"]
    bad = {s: replace(p, axis_unit=np.array([1.0, 0.0, 0.0])) for s, p in v.pedicles.items()}
    spine2 = replace(spine, vertebrae={"L1": replace(v, pedicles=bad)})
    with pytest.raises(AnatomyError, match="not found reliably .*90 deg from anterior"):
        make_plan(vol, lm, _anatomy(vol, lm, spine2), "vertebroplasty-transpedicular", level="L1")


def test_a_level_disagreement_must_be_resolved_first():
    from dataclasses import replace

    vol, lm, spine = make_lumbar(("L1",))
    spine = replace(spine, messages=("LEVEL DISAGREEMENT: the level point named L2 lies in the mask labelled L1",))
    plan = make_plan(vol, lm, _anatomy(vol, lm, spine), "vertebroplasty-transpedicular", level="L1")
    assert plan.verdict.code == "not_cleared" and "LEVEL DISAGREEMENT" in plan.verdict.text_en
