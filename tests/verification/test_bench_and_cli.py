"""Smoke test of benchmarks/bench_verify.py and the ``osteoplan verify`` command."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest


def _bench():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_verify.py"
    spec = importlib.util.spec_from_file_location("bench_verify", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_benchmark_trials_and_table():
    """Two random trials on a coarse phantom (one with a shorter field of view): errors small, table complete."""
    from osteoplan.anatomy.phantom import PhantomParams, make_phantom, reference_trajectory

    b = _bench()
    ph = make_phantom(PhantomParams(spacing_mm=1.0, fov_inferior_mm=-60.0))
    ref = reference_trajectory(ph)
    traj = b._traj(ref["skin_entry"], ref["bone_entry"], ref["target"])
    rows = b.run_trials(ph.volume, traj, 2, seed0=3, streaks=False)
    assert len(rows) == 2 and rows[1]["fov_z_mm"] is not None and rows[1]["slices"] < ph.volume.shape[0] + 30
    s = b.summary(rows)
    assert s["measured"] == 2 and s["refused"] == 0
    assert s["tip_error_mm"]["worst"] <= 1.0 and s["angle_error_deg"]["median"] <= 1.0
    assert s["tre_target_mm"]["worst"] <= 0.3
    md = b.table("phantom", s)
    assert md.splitlines()[0] == "### phantom: 2 measured of 2 trials (0 refused)"
    assert sum(ln.startswith("| tip_error_mm |") or ln.startswith("| tre_target_mm |") for ln in md.splitlines()) == 2


def _plan_folder(out: Path):
    """A plan folder as 'osteoplan plan --no-report' writes it (plan.json, ct.nii.gz, segmentation), for the
    phantom's reference path, without running the planner (its search is not what is tested here)."""
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
            "depth_bone_to_target_mm": 32.0, "depth_total_mm": 92.0, "angle_craniocaudal_deg": 60.0,
            "angle_mediolateral_deg": 30.0, "screw": None, "containment_min_margin_mm": None,
            "soft_tissue_depth_mm": 60.0, "score": 1.0, "instrument_radius_mm": 1.0,
            "clearances": [chk("spinal_canal", 2.0, 3.0), chk("vertebral_artery_left", 3.0, 8.0),
                           chk("common_carotid_artery_left", 5.0, 6.0)]}
    plan = Plan.model_validate({"osteoplan_version": __version__, "created_utc": "2026-12-06T00:00:00Z",
                                "protocol_name": "c2-dens-anterior", "protocol_version": "test",
                                "ct": {"shape_kji": v.shape, "spacing_mm": tuple(v.spacing_mm),
                                       "affine": tuple(tuple(r) for r in v.affine)},
                                "side_requested": "left", "side": "left", "feasible": True,
                                "trajectories": [traj]})
    out.mkdir()
    save_plan(plan, out / "plan.json")
    save_report_inputs(out, plan, v, ph.truth)
    return plan, v


@pytest.fixture(scope="module")
def plan_and_control(tmp_path_factory):
    from osteoplan.imaging.io import write_nifti
    from osteoplan.verification.synth import make_control_ct

    d = tmp_path_factory.mktemp("verify")
    out = d / "plan"
    plan, vol = _plan_folder(out)
    b = plan.best
    ctrl, truth = make_control_ct(vol, b.skin_entry_lps_mm, b.target_lps_mm, seed=2, angle_deg=2.5, offset_mm=1.5,
                                  short_of_target_mm=8.0, diameter_mm=2.0, rotation_deg=6.0, translation_mm=12.0)
    write_nifti(ctrl, d / "control.nii.gz")
    empty, _ = make_control_ct(vol, b.skin_entry_lps_mm, b.target_lps_mm, seed=3, instrument=False, streaks=False)
    write_nifti(empty, d / "empty.nii.gz")
    return out, d, truth


@pytest.mark.slow
def test_cli_json_and_errors(plan_and_control, capsys, tmp_path):
    from osteoplan.cli import main

    plan_dir, d, truth = plan_and_control
    rc = main(["-q", "verify", str(plan_dir), str(d / "control.nii.gz"), "--json", "--out", str(tmp_path / "v"),
               "--lang", "fr"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    # NIfTI stores int16 HU: the tip is still found within 0.5 mm, the angle within 1 deg
    assert np.linalg.norm(np.asarray(res["tip_lps_mm"]) - truth.tip_planning_lps_mm) <= 0.5
    assert abs(res["angle_to_plan_deg"] - 2.5) <= 1.0
    assert json.loads((tmp_path / "v" / "verify.json").read_text())["tip_lps_mm"] == res["tip_lps_mm"]
    for name in ("verify.png", "verify_drr.png"):
        assert (tmp_path / "v" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "v" / "verify.pdf").read_bytes()[:4] == b"%PDF"
    page = (tmp_path / "v" / "verify.html").read_text()
    # the French page writes a decimal comma (osteoplan.locale_fmt); verify.json keeps the number
    assert "data:image/png;base64," in page and f"<td>{res['angle_to_plan_deg']:.1f}°</td>".replace(".", ",") in page
    assert "Angle avec le plan" in page and res["tip_uncertainty_mm"] is not None
    names = {r["structure"] for r in res["clearances"]}
    assert {"spinal_canal", "vertebral_artery_left", "common_carotid_artery_left"} <= names
    # text summary
    assert main(["-q", "verify", str(plan_dir), str(d / "control.nii.gz")]) == 0
    text = capsys.readouterr().out
    assert text.startswith("VERIFY (pin): tip ") and "correction: turn the tip" in text
    # no instrument: one line, exit 2
    rc = main(["-q", "verify", str(plan_dir), str(d / "empty.nii.gz")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: No metal instrument was found") and "\n" not in err
