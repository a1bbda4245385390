"""write_all + `osteoplan report PLAN_DIR`: every file written, folder reloads, rebuild works."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.cli import main
from osteoplan.export import ExportOptions, load_plan_dir, write_all
from osteoplan.export.dicom import sr_points
from osteoplan.export.slicer import read_markups_line
from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.planning.model import save_plan

from export_planfactory import make_plan


@pytest.fixture(scope="module")
def case():
    aff = axis_aligned_affine((1.5, 1.0, 1.0), (-30.0, -30.0, -24.0))
    K, J, I = 32, 60, 60
    kk, jj, ii = np.mgrid[:K, :J, :I]
    x, y, z = ii - 30.0, jj - 30.0, kk * 1.5 - 24.0
    body = x ** 2 + y ** 2 < 27 ** 2
    bone = x ** 2 + (y - 4) ** 2 < 7 ** 2
    art = (x - 12) ** 2 + (y - 6) ** 2 < 2.5 ** 2
    arr = np.where(body, 40.0, -1000.0) + np.where(bone, 900.0, 0.0)
    vol = Volume(arr.astype(np.float32), aff)
    lm = LabelMap(vol, {"body": body, "bone": bone, "vertebrae_C2": bone & (z > -10),
                        "vertebral_artery_left": art}, {"vertebral_artery_left": "provided:test"})
    plan = make_plan(vol, [24.0, -12.0, -6.0], [6.0, -1.0, -1.5], [0.0, 3.0, 0.0])
    return vol, lm, plan


def test_write_all_then_report_rebuild(case, tmp_path):
    vol, lm, plan = case
    save_plan(plan, tmp_path / "plan.json")
    w = write_all(tmp_path, plan, vol, lm, ExportOptions(case_label="T9", drr_pixels=128))
    for name in ("report.html", "report.pdf", "plan.mrk.json", "segmentation.seg.nrrd", "labels.json", "ct.nii.gz",
                 "dicom/seg.dcm", "dicom/sr.dcm", "images/axial.png", "images/drr_bullseye.png", "images/view_3d.png"):
        assert (tmp_path / name).is_file(), name
    assert not list(tmp_path.rglob("*.part*"))
    np.testing.assert_allclose(read_markups_line(w["markups"]), [plan.best.skin_entry_lps_mm, plan.best.target_lps_mm])
    pts = sr_points(pydicom.dcmread(tmp_path / "dicom" / "sr.dcm"))
    np.testing.assert_allclose(pts["Target"], plan.best.target_lps_mm)

    plan2, vol2, lm2 = load_plan_dir(tmp_path)
    assert plan2 == plan
    np.testing.assert_allclose(vol2.affine, vol.affine, atol=1e-5)
    np.testing.assert_array_equal(vol2.array, vol.array)
    assert lm2.names() == lm.names()
    for n in lm.names():
        np.testing.assert_array_equal(lm2.get(n), lm.get(n))
    assert lm2.sources["vertebral_artery_left"] == "provided:test"

    (tmp_path / "report.html").unlink()
    rc = main(["report", str(tmp_path), "--lang", "fr", "--no-pdf", "--no-dicom", "--no-drr", "--no-3d",
               "--case", "T9"])
    assert rc == 0
    html = (tmp_path / "report.html").read_text()
    assert 'lang="fr"' in html and "T9" in html and "non évalué".upper() in html.upper()


def test_report_on_folder_without_plan_fails_cleanly(tmp_path, capsys):
    rc = main(["report", str(tmp_path)])
    assert rc == 2
    assert "plan.json" in capsys.readouterr().err


def test_infeasible_plan_writes_report_without_images(case, tmp_path):
    vol, lm, _ = case
    plan = make_plan(vol, [24.0, -12.0, -6.0], [6.0, -1.0, -1.5], [0.0, 3.0, 0.0], feasible=False)
    w = write_all(tmp_path, plan, vol, lm, ExportOptions(no_pdf=True))
    assert "report_html" in w and "markups" not in w and "dicom_seg" in w
    from osteoplan.export.dicom import sr_points, sr_verdict  # no path: an SR with the verdict alone, no points
    import pydicom

    sr = pydicom.dcmread(w["dicom_sr"])
    assert sr_verdict(sr) == "NO FEASIBLE PATH" and sr_points(sr) == {}
    assert not (tmp_path / "images").exists()
    assert json.loads((tmp_path / "labels.json").read_text())["not_assessed"] == ["internal_jugular_vein_left",
                                                                                  "esophagus"]


def test_infeasible_plan_shows_closest_candidate_with_banner(case, tmp_path):
    from osteoplan.planning.model import ClearanceCheck, Infeasibility, NearMiss

    vol, lm, _ = case
    plan = make_plan(vol, [24.0, -12.0, -6.0], [6.0, -1.0, -1.5], [0.0, 3.0, 0.0], feasible=False)
    nm = NearMiss(skin_entry_lps_mm=(24.0, -12.0, -6.0), target_lps_mm=(0.0, 3.0, 0.0),
                  direction_unit=(-0.8, 0.5, 0.2), violations={"containment": 2.0},
                  clearances=(ClearanceCheck(structure="vertebral_artery_left", category="hard", margin_mm=3.0,
                                             clearance_mm=1.0, status="fail", segmented=True),))
    plan = plan.model_copy(update={"infeasibility": Infeasibility(n_candidates=10, n_feasible=0, exclusions=(),
                                                                  best_near_miss=nm, message="nothing fits")})
    w = write_all(tmp_path, plan, vol, lm, ExportOptions(no_pdf=True, no_dicom=True, no_drr=True, no_3d=True))
    assert (tmp_path / "images" / "axial.png").is_file() and "markups" not in w
    html = (tmp_path / "report.html").read_text()
    assert "It is NOT a plan" in html and "nothing fits" in html
    assert 'data-structure="vertebral_artery_left" data-status="fail"' in html


@pytest.mark.parametrize("content, expect", [
    (None, "not found"),                                       # the folder does not exist
    ('{"schema_ver', "invalid JSON"),                         # truncated file
    ('{"schema_version": "1.0"}', "Not a valid plan"),         # edited / foreign file
    ('{"schema_version": "99.0"}', "not supported"),           # written by a future osteoplan
])
def test_report_on_bad_plan_folder_is_one_actionable_line(tmp_path, capsys, content, expect):
    d = tmp_path / "plan"
    if content is not None:
        d.mkdir()
        (d / "plan.json").write_text(content)
    rc = main(["report", str(d)])
    assert rc == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error:") and expect in last and "Traceback" not in err
    assert "osteoplan plan" in last                             # says what to do
    if content is not None:
        assert sorted(p.name for p in d.iterdir()) == ["plan.json"]   # nothing written
