"""A real plan folder on the phantom attached to a case as a finished planning job (no worker needed): shared by the
adjust tests (API, versions, browser) and the adjust benchmark."""

from __future__ import annotations

from pathlib import Path

#: Coarse phantom and direction grid: the search takes about a second.
SPACING_MM = 1.6
ANGLE_STEP_DEG = 2.0


def write_phantom_plan_folder(folder: Path):
    """Plan the phantom (default protocol) and write a plan folder (plan.json, ct.nii.gz, segmentation) into
    *folder*; returns (phantom, plan)."""
    from osteoplan.anatomy.phantom import PhantomParams, make_phantom
    from osteoplan.export import save_report_inputs
    from osteoplan.planning.model import save_plan
    from osteoplan.planning.planner import make_plan
    from osteoplan.planning.protocol import load_protocol

    ph = make_phantom(PhantomParams(spacing_mm=SPACING_MM))
    plan = make_plan(ph.volume, ph.truth, ph.landmarks, load_protocol(), lesion_mask=ph.truth.get("lesion"),
                     angle_step_deg=ANGLE_STEP_DEG)
    folder.mkdir(parents=True, exist_ok=True)
    save_report_inputs(folder, plan, ph.volume, ph.truth)
    save_plan(plan, folder / "plan.json")
    return ph, plan


def write_bipedicular_plan_folder(folder: Path):
    """Plan a bipedicular (two-needle) transpedicular vertebroplasty of L1 on the synthetic lumbar vertebra of known
    geometry (tests/planning/synthetic_vertebra.py, 1 mm voxels) and write its plan folder into *folder*; returns
    (volume, labelmap, plan)."""
    import sys
    from types import SimpleNamespace

    from osteoplan.export import save_report_inputs
    from osteoplan.planning.model import save_plan
    from osteoplan.planning.planner import make_plan
    from osteoplan.planning.protocol import load_protocol

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "planning"))
    from synthetic_vertebra import make_lumbar

    vol, lm, spine = make_lumbar(("L1",))
    proto = load_protocol("vertebroplasty-transpedicular").model_copy(update={"needles_per_level": 2})
    plan = make_plan(vol, lm, SimpleNamespace(labelmap=lm, spine=spine, messages=[], lesion=None), proto, level="L1")
    folder.mkdir(parents=True, exist_ok=True)
    save_report_inputs(folder, plan, vol, lm)
    save_plan(plan, folder / "plan.json")
    return vol, lm, plan


def attach_as_job(engine, lesion_id: int, work_dir: Path, plan, protocol: str = "c2-dens-anterior") -> int:
    """Attach *plan* to the lesion and record a finished job (of *protocol*) whose plan folder is
    ``work_dir / "plan-1"``; returns the saved plan id."""
    import json

    from osteoplan.workflow import jobs as q
    from osteoplan.workflow import service as sv
    from osteoplan.workflow.db import session_factory, session_scope

    with session_scope(session_factory(engine)) as s:
        saved = sv.attach_plan(s, None, {"lesion_id": lesion_id, "plan": json.loads(plan.to_json()),
                                         "label": f"job 1: {protocol}"})
        job = q.enqueue(s, None, lesion_id, protocol, None, {"report": False, "ct": "ct.nii.gz"})
        job.work_dir, job.state, job.attempts, job.saved_plan_id = str(work_dir), "done", 1, saved.id
        s.flush()
        return saved.id
