"""The procedure record pre-filled from a plan (:func:`osteoplan.workflow.prefill.procedure_prefill`): a real plan
made on the neck phantom (C2 cannulated screw) and a two-level bipedicular vertebroplasty plan, each value checked
against the plan object it comes from (not against the function's own output)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from osteoplan.workflow.prefill import gauge_of, procedure_form_values, procedure_prefill


@pytest.fixture(scope="module")
def phantom_plan():
    """A plan made by the planner on the neck phantom at 1.6 mm (about 4 s) with the default protocol."""
    from osteoplan.anatomy.phantom import PhantomParams, make_phantom
    from osteoplan.planning.planner import make_plan
    from osteoplan.planning.protocol import load_protocol

    ph = make_phantom(PhantomParams(spacing_mm=1.6))
    return make_plan(ph.volume, ph.truth, ph.landmarks, load_protocol())


def test_phantom_c2_screw_plan(phantom_plan):
    plan = phantom_plan
    assert plan.best is not None and plan.procedure in (None, "c2-dens-screw")
    best = plan.best
    pre = procedure_prefill(json.loads(plan.to_json()))
    assert pre["procedure_type"] == "c2_screw"
    assert pre["side"] == best.side == plan.side
    assert pre["levels"] == ["C2"] and pre["levels_treated"] == 1
    assert pre["screws"] == [{"diameter_mm": best.screw.diameter_mm, "length_mm": best.screw.length_mm,
                              "cannulated": True}]
    assert best.screw.diameter_mm in (3.5, 4.0) and 20.0 <= best.screw.length_mm <= 56.0  # the protocol catalogue
    # the anterior dens protocol's trocar: 11 G (3.05 mm)
    assert pre["needle_gauge"] == 11 and pre["trocar"] == "11G bone trocar"
    lo, hi = plan.cement.suggested_pmma_ml
    assert pre["cement_per_level_ml"] == {"C2": [lo, hi]} and pre["cement_volume_ml"] == round(hi, 2)
    assert pre["plan_verdict"] == plan.verdict.text_en
    form = procedure_form_values(pre)
    assert form == {"procedure_type": "c2_screw", "levels_treated": 1, "trocar": "11G bone trocar",
                    "screw1.diameter_mm": best.screw.diameter_mm, "screw1.length_mm": best.screw.length_mm,
                    "guide_pin": True, "cement_volume_ml": round(hi, 2)}


def _vertebroplasty_plan():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))
    from export_planfactory import make_vertebroplasty_plan

    from osteoplan.imaging.volume import Volume, axis_aligned_affine

    vol = Volume(np.zeros((20, 30, 30), np.float32), axis_aligned_affine((2.0, 1.0, 1.0), (-15.0, -15.0, -20.0)))
    needles = [{"level": "L1", "side": "left", "skin": (60.0, 70.0, -20.0), "bone": (14.0, 10.0, 0.0),
                "target": (-3.0, -30.0, 2.0), "grade": "A", "margin": 0.9, "wall": "inferior"},
               {"level": "L2", "side": "right", "skin": (-60.0, 70.0, -50.0), "bone": (-14.0, 10.0, -30.0),
                "target": (3.0, -30.0, -28.0), "grade": "C", "margin": -2.6, "wall": "medial"}]
    return make_vertebroplasty_plan(vol, needles)


def test_two_level_vertebroplasty_plan():
    plan = _vertebroplasty_plan()
    pre = procedure_prefill(json.loads(plan.to_json()))
    # the factory: L1 left and L2 right, 3.05 mm needles (11 G), 4-6 mL per lumbar level, placement "all"
    assert pre["procedure_type"] == "vertebroplasty"
    assert pre["side"] == "bilateral"
    assert pre["levels"] == ["L1", "L2"] and pre["levels_treated"] == 2
    assert pre["screws"] == []
    assert pre["needle_gauge"] == 11 and pre["trocar"] == "11G bone trocar"
    assert pre["cement_per_level_ml"] == {"L1": [4.0, 6.0], "L2": [4.0, 6.0]}
    assert pre["cement_volume_ml"] == 12.0
    assert procedure_form_values(pre) == {"procedure_type": "vertebroplasty", "levels_treated": 2,
                                          "trocar": "11G bone trocar", "cement_volume_ml": 12.0}


def test_nothing_placed_prefills_nothing_invented():
    plan = json.loads(_vertebroplasty_plan().to_json())
    plan["trajectories"] = []
    plan["feasible"] = False
    pre = procedure_prefill(plan)
    assert pre["procedure_type"] == "vertebroplasty"  # what was planned for, even without a path
    assert pre["side"] is None and pre["levels_treated"] is None and pre["screws"] == []
    assert pre["needle_gauge"] is None and pre["trocar"] is None
    assert pre["cement_per_level_ml"] == {} and pre["cement_volume_ml"] is None
    assert procedure_form_values(pre) == {"procedure_type": "vertebroplasty"}


@pytest.mark.parametrize("diameter_mm, gauge", [(3.05, 11), (2.41, 13), (3.40, 10), (2.77, 12), (2.6, None),
                                                (None, None), (5.0, None)])
def test_gauge_of(diameter_mm, gauge):
    assert gauge_of(diameter_mm) == gauge
