"""One verdict everywhere: the verdict text is IDENTICAL in the CLI RESULT line, report.html, the PDF's first page,
the DICOM SR and the web case page (issue 16).

Fast: hand-built plans of every code through each face's own function. Slow: the real ``osteoplan demo`` (phantom)
and ``osteoplan plan`` on CThead (skipped without ../shared/data), their files read back, the plan.json uploaded to
the web application.
"""

from __future__ import annotations

import contextlib
import html as _html
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.planning.model import (ClearanceCheck, CTGeometry, Infeasibility, Plan, RouteCheck, Trajectory,
                                      load_plan)
from osteoplan.planning.verdict import compute_verdict

from .conftest import csrf_of, make_case


# ----------------------------------------------------------------------------- reading each face back
def _ws(text: str) -> str:
    """Whitespace collapsed (the PDF breaks long lines where the page does)."""
    return " ".join(text.split())


def cli_verdict(stdout: str) -> str:
    lines = [x for x in stdout.splitlines() if x.startswith("RESULT: ")]
    assert len(lines) == 1, stdout[:2000]
    return lines[0][len("RESULT: "):]


def html_verdict(html: str) -> str:
    m = re.search(r'<div class="verdict (ok|warn|ko)">(.*?)</div>', html, re.S)
    assert m is not None
    return _html.unescape(m.group(2))


def pdf_first_page_text(pdf: bytes) -> str:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    try:
        tp = doc[0].get_textpage()
        return tp.get_text_range()
    finally:
        doc.close()


def web_verdict(client, engine, plan_json: bytes, label: str) -> tuple[str, str]:
    """Upload *plan_json* to a new case's lesion through the page, return (verdict text, case page)."""
    ids = make_case(engine, through="lesion")
    r = client.post(f"/cases/{ids['case']}/lesions/{ids['lesion']}/plans/new", follow_redirects=False,
                    data={"csrf_token": csrf_of(client), "label": label},
                    files={"plan_file": ("plan.json", plan_json, "application/json")})
    assert r.status_code == 303, r.text[:500]
    page = client.get(f"/cases/{ids['case']}").text
    m = re.search(r'<p class="verdict">(.*?)</p>', page, re.S)
    assert m is not None, page[:2000]
    return _html.unescape(m.group(1)), page


def sr_verdict_of(sr_path: Path) -> str | None:
    import pydicom

    from osteoplan.export.dicom import sr_verdict

    return sr_verdict(pydicom.dcmread(str(sr_path)))


# ----------------------------------------------------------------------------- hand-built plans
def _check(structure, category, status, clearance=None, push=None, margin=3.0):
    seg = status not in ("not_assessed", "not_assessable", "covered")
    return ClearanceCheck(structure=structure, category=category, margin_mm=margin, status=status,
                          clearance_mm=clearance if seg else None, displacement_needed_mm=push, segmented=seg)


_VOL = Volume(np.zeros((20, 30, 30), np.float32), axis_aligned_affine((2.0, 1.0, 1.0), (-15.0, -15.0, -20.0)))
_CANAL = _check("spinal_canal", "hard", "pass", 4.6)
_VESSELS = tuple(_check(s, "displaceable", "not_assessed", margin=5.0) for s in (
    "common_carotid_artery_left", "internal_jugular_vein_left"))


def _plan(checks=None, route=None) -> Plan:
    trajs = ()
    if checks is not None:
        trajs = (Trajectory(
            rank=1, side="left", skin_entry_lps_mm=(10.0, -5.0, -10.0), bone_entry_lps_mm=(3.0, -1.0, -4.0),
            target_lps_mm=(0.0, 0.0, 0.0), skin_entry_voxel_kji=(5.0, 10.0, 25.0), bone_entry_voxel_kji=(8.0, 14.0, 18.0),
            target_voxel_kji=(10.0, 15.0, 15.0), direction_unit=(-0.67, 0.33, 0.67), depth_skin_to_bone_mm=10.8,
            depth_bone_to_target_mm=5.8, depth_total_mm=15.0, angle_craniocaudal_deg=42.0,
            angle_mediolateral_deg=63.0, clearances=tuple(checks), screw=None, containment_min_margin_mm=1.0,
            soft_tissue_depth_mm=10.8, score=1.0,
            hydrodissection_required=any(c.status == "hydrodissection" for c in checks)),)
    ct = CTGeometry(shape_kji=_VOL.shape, spacing_mm=tuple(float(s) for s in _VOL.spacing_mm),
                    affine=tuple(tuple(float(x) for x in row) for row in _VOL.affine), source_format="nifti")
    plan = Plan(osteoplan_version="test", created_utc="2026-01-01T00:00:00Z", protocol_name="c2-dens-anterior",
                protocol_version="1", ct=ct, side_requested="best", side="left" if trajs else None,
                feasible=bool(trajs), trajectories=trajs, route=route,
                infeasibility=None if trajs else Infeasibility(
                    n_candidates=10, n_feasible=0, exclusions=(), best_near_miss=None,
                    message="No feasible path among 10 candidates. Most excluding constraints: containment (10 of 10)."),
                warnings=("Not assessed (not segmented, never reported as clear): common_carotid_artery_left.",))
    return plan.model_copy(update={"verdict": compute_verdict(plan)})


PLANS = {
    "feasible_hydrodissection": lambda: _plan([_CANAL, _check("pharynx", "displaceable", "hydrodissection", 1.8, 1.2)]),
    "not_cleared": lambda: _plan([_CANAL, _check("spinal_cord", "hard", "not_assessed"), *_VESSELS]),
    "feasible": lambda: _plan([_CANAL, _check("spinal_cord", "hard", "covered"),
                               _check("pharynx", "displaceable", "pass", 6.0)]),
    "no_feasible_path": lambda: _plan(None),
    "route_not_assessable": lambda: _plan(None, RouteCheck(
        assessable=False, route="anterior", message_en="The anterior route's skin entry lies below the CT.",
        figures={"skin_entry_below_ct_mm": 40.0})),
}


@pytest.mark.parametrize("code", list(PLANS))
def test_hand_built_plans_same_verdict_in_every_face(code, engine, client_for):
    """Each face's own function prints the stored verdict word for word; a schema-1.0 copy (no verdict) gets the same
    text computed on load."""
    from osteoplan.export.dicom import DicomContext, build_sr, ct_datasets, sr_points, sr_verdict
    from osteoplan.export.report import build_report_html, html_to_pdf
    from osteoplan.faces.cli.summary import summary_text

    plan = PLANS[code]()
    want = plan.verdict.text_en
    assert plan.verdict.code == code
    assert cli_verdict(summary_text(plan)) == want
    html = build_report_html(plan, {}, lang="en")
    assert html_verdict(html) == want
    assert _ws(want) in _ws(pdf_first_page_text(html_to_pdf(html)))
    ctx = DicomContext.for_volume(_VOL)
    sr = build_sr(plan, ct_datasets(_VOL, ctx), ctx)  # with a path: points + verdict; without: the verdict alone
    assert sr_verdict(sr) == want
    assert bool(sr_points(sr)) == (plan.best is not None)
    c = client_for("radiologist")
    got, page = web_verdict(c, engine, plan.to_json().encode(), f"verdict {code}")
    assert got == want
    assert "never reported as clear" in page  # the plan's warnings are on the case page too
    assert "Feasible</dt>" not in page and "not required" not in page.lower()
    # an old file without a verdict: the faces compute the same one on load
    old = json.loads(plan.to_json())
    old.pop("verdict"), old.pop("route"), old.pop("procedure")
    old["schema_version"] = "1.0"
    old_plan = Plan.model_validate(old)
    if code != "route_not_assessable":  # (a 1.0 file has no route: it cannot say the route is not shown)
        assert cli_verdict(summary_text(old_plan)) == want
        assert html_verdict(build_report_html(old_plan, {}, lang="en")) == want
        assert web_verdict(c, engine, json.dumps(old).encode(), "old file")[0] == want


# ----------------------------------------------------------------------------- real runs (slow)
def _run_cli(argv: list[str]) -> tuple[int, str]:
    from osteoplan.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    return rc, buf.getvalue()


def _assert_same_everywhere(out: Path, rc: int, stdout: str, engine, client_for) -> str:
    plan = load_plan(out / "plan.json")
    assert plan.verdict is not None and plan.verdict == compute_verdict(plan)  # stored once, as computed
    want = plan.verdict.text_en
    assert rc == plan.verdict.exit_code
    assert cli_verdict(stdout) == want
    assert html_verdict((out / "report.html").read_text(encoding="utf-8")) == want
    assert _ws(want) in _ws(pdf_first_page_text((out / "report.pdf").read_bytes()))
    assert sr_verdict_of(out / "dicom" / "sr.dcm") == want
    got, page = web_verdict(client_for("radiologist"), engine, (out / "plan.json").read_bytes(), "real plan")
    assert got == want
    for w in plan.warnings[:3]:
        assert _html.escape(w, quote=True) in page or w in _html.unescape(page)
    return want


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """``osteoplan demo`` once for the module (the web part runs once per database backend)."""
    out = tmp_path_factory.mktemp("verdict-demo") / "demo"
    rc, stdout = _run_cli(["demo", "--out", str(out), "--no-drr", "--no-3d", "--no-risk"])
    return out, rc, stdout


@pytest.fixture(scope="module")
def cthead_run(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("verdict-cthead") / "cthead"
    rc, stdout = _run_cli(["plan", str(shared_data / "cthead" / "ct.nii.gz"), "--out", str(out), "--no-drr",
                           "--no-3d", "--no-risk"])
    return out, rc, stdout


@pytest.mark.slow
def test_phantom_demo_same_verdict_in_cli_report_pdf_sr_and_web(demo_run, engine, client_for):
    out, rc, stdout = demo_run
    _assert_same_everywhere(out, rc, stdout, engine, client_for)
    rc2, stdout2 = _run_cli(["report", str(out), "--no-drr", "--no-3d", "--no-dicom"])  # `osteoplan report` too
    assert rc2 == 0 and cli_verdict(stdout2) == cli_verdict(stdout)


@pytest.mark.slow
@pytest.mark.realdata
def test_cthead_plan_same_verdict_in_cli_report_pdf_sr_and_web(cthead_run, engine, client_for):
    out, rc, stdout = cthead_run
    _assert_same_everywhere(out, rc, stdout, engine, client_for)
