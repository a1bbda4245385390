"""``osteoplan demo`` / ``osteoplan plan`` end to end (no report: the export stage has its own tests)."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from osteoplan.cli import main
from osteoplan.planning.model import load_plan, plan_json_schema


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo-out"
    rc = main(["demo", "--out", str(out), "--no-report", "--side", "left"])
    assert rc == load_plan(out / "plan.json").verdict.exit_code  # 0 for a feasible plan (test_demo_writes_plan_folder)
    return out


def test_demo_writes_plan_folder(demo_dir, capsys):
    names = sorted(p.name for p in demo_dir.iterdir())
    assert {"ct.nii.gz", "plan.json", "plan.mrk.json"} <= set(names)
    assert not [n for n in names if n.endswith(".part")]
    plan = load_plan(demo_dir / "plan.json")
    jsonschema.validate(json.loads((demo_dir / "plan.json").read_text()), plan_json_schema())
    assert plan.feasible and plan.side == "left" and plan.best.side == "left"
    # Slicer markups: LPS, skin entry -> target, same numbers as the plan
    mk = json.loads((demo_dir / "plan.mrk.json").read_text())
    m = mk["markups"][0]
    assert m["type"] == "Line" and m["coordinateSystem"] == "LPS"
    pts = np.array([cp["position"] for cp in m["controlPoints"]])
    np.testing.assert_allclose(pts[0], plan.best.skin_entry_lps_mm, atol=1e-6)
    np.testing.assert_allclose(pts[1], plan.best.target_lps_mm, atol=1e-6)


def test_demo_refuses_to_overwrite(demo_dir, capsys):
    rc = main(["demo", "--out", str(demo_dir), "--no-report"])
    assert rc != 0
    err = capsys.readouterr().err
    assert "exists" in err and "earlier osteoplan output" in err and "--overwrite" in err


@pytest.mark.slow
def test_plan_on_phantom_nifti_with_masks(tmp_path, capsys):
    from osteoplan.anatomy.phantom import PhantomParams, make_phantom

    ph = make_phantom(PhantomParams(spacing_mm=1.0))
    import nibabel as nib

    ct = tmp_path / "ct.nii.gz"
    nib.save(ph.volume.to_nifti(), ct)
    masks = tmp_path / "masks"
    masks.mkdir()
    for name in ph.truth.names():
        nib.save(ph.volume.with_array(ph.truth.get(name).astype(np.float32)).to_nifti(dtype=np.uint8),
                 masks / f"{name}.nii.gz")
    out = tmp_path / "plan"
    rc = main(["plan", str(ct), "--masks", str(masks), "--out", str(out), "--no-report", "--side", "right"])
    text = capsys.readouterr().out
    plan = load_plan(out / "plan.json")
    assert rc == plan.verdict.exit_code  # the verdict's exit status; the folder is written whatever it is
    assert plan.side_requested == "right"
    assert f"RESULT: {plan.verdict.text_en}\n" in text
    if plan.feasible:
        assert plan.best.side == "right"
        assert "side: right" in text and "clearances" in text and "C-arm bull's-eye" in text
        assert plan.best.check("spinal_cord").segmented  # provided mask used
    else:
        assert "NO FEASIBLE PATH" in text and plan.infeasibility.message in text


def test_plan_missing_ct_is_one_line_error(tmp_path, capsys):
    rc = main(["plan", str(tmp_path / "nope.nii.gz"), "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("where", ["under_file", "is_file"])
def test_plan_unwritable_out_fails_before_any_work(tmp_path, capsys, where):
    # the CT does not exist either: the --out check must come first (before reading/planning)
    f = tmp_path / "afile.txt"
    f.write_text("x")
    out = f / "o" if where == "under_file" else f
    rc = main(["plan", str(tmp_path / "nope.nii.gz"), "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err
    assert "is a file, not a folder" in err and "--out" in err
    assert "afile" not in err  # file names are not echoed (safe_path)
    assert f.read_text() == "x"


def test_plan_out_in_unwritable_place(tmp_path, capsys):
    # /proc accepts no new folder even for root (a real write probe, not a permission-bit guess)
    rc = main(["plan", str(tmp_path / "nope.nii.gz"), "--out", "/proc/osteoplan-out"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out: cannot write the output folder") and "Traceback" not in err


def test_summary_marks_capped_clearances(demo_dir):
    from osteoplan.faces.cli.summary import summary_text

    plan = load_plan(demo_dir / "plan.json")
    text = summary_text(plan)
    capped = [c for c in plan.best.clearances if (c.note or "").startswith("at least")]
    assert capped, "the phantom has structures farther than the 20 mm distance cap"
    for c in capped:
        line = next(L for L in text.splitlines() if L.strip().startswith(c.structure + " "))
        assert f">={c.clearance_mm:.1f}mm" in line.replace(" ", "")
    assert "capped at 20 mm" in text


def test_summary_wraps_long_risk_lines_without_cutting_numbers(demo_dir):
    from osteoplan.faces.cli.summary import summary_text

    plan = load_plan(demo_dir / "plan.json")
    long = "lesion_type: lytic = 2 [ct-proposed] (" + ", ".join(f"value_{i}=0.{i}17" for i in range(20)) + ")"
    plan = plan.model_copy(update={"risk": {"summary": [long]}})
    text = summary_text(plan)
    joined = " ".join(L.strip() for L in text.splitlines())
    assert "value_19=0.1917)" in joined              # the end of the line is still there
    assert max(len(L) for L in text.splitlines() if "value_" in L) <= 110


def test_near_miss_shortfalls_have_their_own_units():
    from osteoplan.planning.planner import _shortfall_text
    from osteoplan.views.i18n import translate_text

    # the skin "violation" is a flag (1.0), not a distance; the entry angle is in degrees; tiny misses are not "0.0"
    assert _shortfall_text("skin", 1.0) == "skin not reached inside the CT or within the maximum depth"
    assert _shortfall_text("entry_angle", 3.26) == "entry_angle short by 3.3 deg"
    assert _shortfall_text("containment", 0.02) == "containment short by < 0.1 mm"
    assert _shortfall_text("containment", 0.63) == "containment short by 0.6 mm"
    # a structure is named as the verdict and the report name it, not by its key
    assert _shortfall_text("clearance:other_bone", 0.12) == "clearance to other bone on the way short by 0.1 mm"
    assert _shortfall_text("viscus:esophagus", 1.0) == "oesophagus entered by 1.0 mm"
    msg = ("No feasible path among 10 candidates. Most excluding constraints: skin (5 of 10). Closest candidate: "
           "entry_angle short by 3.3 deg, containment short by < 0.1 mm.")
    assert translate_text(msg, "fr").endswith("Candidat le plus proche : entry_angle : manque 3.3 °, "
                                              "containment : manque < 0.1 mm.")


@pytest.mark.parametrize("which", ["ct_folder", "masks_parent"])
def test_overwrite_never_replaces_the_input_folder(tmp_path, capsys, which):
    case = tmp_path / "case"
    (case / "masks").mkdir(parents=True)
    ct = case / "ct.nii.gz"
    ct.write_bytes(b"not read: the check comes first")
    (case / "masks" / "SpinalCord.nii.gz").write_bytes(b"x")
    argv = ["plan", str(ct), "--overwrite", "--no-report"]
    if which == "ct_folder":
        argv += ["--out", str(case)]
    else:
        argv = ["plan", str(tmp_path / "elsewhere.nii.gz"), "--masks", str(case / "masks"), "--out", str(case),
                "--overwrite", "--no-report"]
    rc = main(argv)
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out: it is the folder holding the input") and "Traceback" not in err
    assert ct.exists() and (case / "masks" / "SpinalCord.nii.gz").exists()


def test_plan_accepts_the_dicom_reader_choices_its_errors_suggest(tmp_path, capsys):
    """A gap error tells the user to pass --allow-gaps: plan must accept it (and --series-uid, --resample-uniform)."""
    from osteoplan.cli import build_parser

    args = build_parser().parse_args(["plan", "ct_dir", "--allow-gaps", "--resample-uniform", "--series-uid", "1.2.3",
                                      "--out", str(tmp_path / "o")])
    assert args.allow_gaps and args.resample_uniform and args.series_uid == "1.2.3"


def test_summary_prints_the_tip_against_the_dens_without_a_cortex_distance(demo_dir):
    """The lateral protocol measures no distance to the apical cortex (tip_to_cortex_mm None): the tip line with
    the waist is still printed (it was dropped whole, hiding a screw whose thread did not cross the waist)."""
    from osteoplan.faces.cli.summary import summary_text

    plan = load_plan(demo_dir / "plan.json")
    b = plan.best.model_copy(update={"tip_to_cortex_mm": None, "tip_below_apex_mm": 10.0,
                                     "tip_anterior_of_axis_mm": 1.5, "thread_crosses_waist": False})
    text = summary_text(plan.model_copy(update={"trajectories": (b,) + plan.trajectories[1:]}))
    line = next(L for L in text.splitlines() if L.strip().startswith("tip "))
    assert line.strip() == ("tip 10.0 mm below the apex, 1.5 mm anterior of the dens axis; thread does NOT cross the "
                            "waist" + ("" if b.thread_in_lesion_mm is None else
                                       f", {b.thread_in_lesion_mm:.1f} mm of it in the lesion"))
