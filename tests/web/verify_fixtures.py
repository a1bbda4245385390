"""Shared inputs of the control-CT check tests (web): a plan folder for the phantom's reference path with a
4.0 x 34 mm screw, registered in the registry as the result of a finished planning job, and synthetic control
CTs built by :func:`osteoplan.verification.synth.make_control_ct` from its CT (known instrument, known motion)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SCREW = {"diameter_mm": 4.0, "length_mm": 34.0, "thread_mm": 16.0, "catalogue_ref": "cannulated-4.0x34"}


def plan_folder(out: Path):
    """A plan folder as 'osteoplan plan --no-report' writes it (plan.json, ct.nii.gz, segmentation) for the
    phantom's reference path, without running the planner's search (not what is tested here)."""
    from osteoplan import __version__
    from osteoplan.anatomy.phantom import PhantomParams, make_phantom, reference_trajectory
    from osteoplan.export import save_report_inputs
    from osteoplan.planning.model import Plan, save_plan

    ph = make_phantom(PhantomParams(spacing_mm=1.0, fov_inferior_mm=-60.0))
    ref = reference_trajectory(ph)
    v = ph.volume
    d = (ref["target"] - ref["skin_entry"]) / np.linalg.norm(ref["target"] - ref["skin_entry"])
    vox = lambda p: tuple(float(x) for x in v.world_to_index(np.asarray(p)[None])[0])  # noqa: E731
    chk = lambda n, m, c: {"structure": n, "category": "hard", "margin_mm": m, "clearance_mm": c,  # noqa: E731
                           "status": "pass", "segmented": True, "source": "phantom-truth"}
    traj = {"rank": 1, "side": "left", "skin_entry_lps_mm": tuple(ref["skin_entry"]),
            "bone_entry_lps_mm": tuple(ref["bone_entry"]), "target_lps_mm": tuple(ref["target"]),
            "skin_entry_voxel_kji": vox(ref["skin_entry"]), "bone_entry_voxel_kji": vox(ref["bone_entry"]),
            "target_voxel_kji": vox(ref["target"]), "direction_unit": tuple(d), "depth_skin_to_bone_mm": 60.0,
            "depth_bone_to_target_mm": 36.0, "depth_total_mm": 96.0, "angle_craniocaudal_deg": 60.0,
            "angle_mediolateral_deg": 30.0, "screw": SCREW, "containment_min_margin_mm": None,
            "soft_tissue_depth_mm": 60.0, "score": 1.0, "instrument_radius_mm": 1.0,
            "clearances": [chk("spinal_canal", 2.0, 3.0), chk("vertebral_artery_left", 3.0, 8.0)]}
    plan = Plan.model_validate({"osteoplan_version": __version__, "created_utc": "2026-12-06T00:00:00Z",
                                "protocol_name": "c2-dens-anterior", "protocol_version": "test",
                                "ct": {"shape_kji": v.shape, "spacing_mm": tuple(v.spacing_mm),
                                       "affine": tuple(tuple(r) for r in v.affine)},
                                "side_requested": "left", "side": "left", "feasible": True,
                                "trajectories": [traj]})
    out.mkdir(parents=True)
    save_plan(plan, out / "plan.json")
    save_report_inputs(out, plan, v, ph.truth)
    return plan, v


def make_inputs(root: Path) -> dict:
    """The plan job's folder (``job-plan/plan-1``), a post-operative control CT with the screw 2 deg and 1 mm
    off the plan (and the patient moved 6 deg, 12 mm), a control CT without instrument (NIfTI files), and a
    DICOM zip of another patient (the phantom's identity)."""
    import zipfile

    from osteoplan.anatomy.phantom import write_dicom_series
    from osteoplan.imaging.io import write_nifti
    from osteoplan.imaging.volume import Volume
    from osteoplan.verification.synth import make_control_ct

    job_dir = root / "job-plan"
    plan, vol = plan_folder(job_dir / "plan-1")
    b = plan.best
    be, t = np.asarray(b.bone_entry_lps_mm), np.asarray(b.target_lps_mm)
    dp = (t - np.asarray(b.skin_entry_lps_mm)) / np.linalg.norm(t - np.asarray(b.skin_entry_lps_mm))
    planned_tip = be + dp * SCREW["length_mm"]
    short = float((t - planned_tip) @ dp) + 1.0  # the screw stops 1 mm short of its planned tip
    ctrl, truth = make_control_ct(vol, b.skin_entry_lps_mm, b.target_lps_mm, seed=2, angle_deg=2.0, offset_mm=1.0,
                                  short_of_target_mm=short, diameter_mm=SCREW["diameter_mm"],
                                  length_mm=SCREW["length_mm"], rotation_deg=6.0, translation_mm=12.0)
    write_nifti(ctrl, root / "control.nii.gz")
    empty, _ = make_control_ct(vol, b.skin_entry_lps_mm, b.target_lps_mm, seed=3, instrument=False, streaks=False)
    write_nifti(empty, root / "empty.nii.gz")
    small = Volume(np.zeros((3, 16, 16), np.int16), np.diag([0.5, 0.5, 2.0, 1.0]))
    import pydicom

    files = write_dicom_series(small, root / "other-dicom")
    with zipfile.ZipFile(root / "other.zip", "w") as zf:
        for f in files:
            ds = pydicom.dcmread(f)
            ds.PatientID, ds.PatientName = "H-111111", "OTHER^BOB"
            if "PatientIdentityRemoved" in ds:
                del ds.PatientIdentityRemoved
            ds.save_as(f)
            zf.write(f, f.name)
    return {"plan_dir": job_dir / "plan-1", "job_dir": job_dir, "plan": json.loads((job_dir / "plan-1" /
            "plan.json").read_text()), "truth": truth, "planned_tip": planned_tip, "control": root / "control.nii.gz",
            "empty": root / "empty.nii.gz", "other_zip": root / "other.zip"}


def register_plan_job(engine, ids: dict, inputs: dict) -> int:
    """Record the plan folder as the result of a finished planning job of the case's lesion; returns the saved
    plan's id."""
    from osteoplan.workflow import jobs as q
    from osteoplan.workflow import service as sv
    from osteoplan.workflow.db import session_factory, session_scope

    with session_scope(session_factory(engine)) as s:
        plan = sv.attach_plan(s, None, {"lesion_id": ids["lesion"], "plan": inputs["plan"], "label": "job plan"})
        job = q.enqueue(s, None, ids["lesion"], "c2-dens-anterior", None, {"report": False, "ct": "ct.nii.gz"})
        job.work_dir, job.state, job.attempts, job.saved_plan_id = str(inputs["job_dir"]), "done", 1, plan.id
        return plan.id
