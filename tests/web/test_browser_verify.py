"""In Debian's Chromium (Playwright) against a real uvicorn server and a real worker: on a procedure, "Check a
control CT": upload a synthetic post-operative CT (built by osteoplan.verification.synth from the phantom plan),
follow the job, read the figures and the planned-vs-actual image, then find the case in the statistics page's
accuracy table. Screenshots go to docs/screenshots/verify-*.png with ``OSTEOPLAN_SCREENSHOTS=1``."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from .conftest import REPO, free_port, make_case, start_server, stop_server
from .test_browser import _login, browser, shots  # noqa: F401  (fixtures)
from .verify_fixtures import make_inputs, register_plan_job

pytestmark = [pytest.mark.browser]


@pytest.fixture()
def server_worker_case(backend_name, fresh_database, tmp_path):
    """uvicorn + one ``osteoplan worker`` on a new database (demo users, a few demo cases) with one case whose
    C2 screw procedure is done and whose lesion has a plan made by a (recorded) planning job."""
    if backend_name != "sqlite":
        pytest.skip("the browser walk runs on SQLite only (the CI time budget)")
    from osteoplan.web import backend

    url = fresh_database(backend_name)
    eng = backend.init_engine(url)
    backend.seed_demo(eng, n_cases=5, rounds=4)
    ids = make_case(eng, through="done")
    inputs = make_inputs(tmp_path / "inputs")
    ids["plan"] = register_plan_job(eng, ids, inputs)
    env = {"OSTEOPLAN_JOBS_DIR": str(tmp_path / "jobs")}
    port = free_port()
    proc = start_server(url, port, env_extra=env)
    worker = subprocess.Popen([sys.executable, "-m", "osteoplan.cli", "worker", "--db", url],
                              env={**os.environ, **env, "PYTHONPATH": str(REPO)}, cwd=str(REPO),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield f"http://127.0.0.1:{port}", ids, inputs, eng
    worker.terminate()
    worker.wait(30)
    stop_server(proc)
    eng.dispose()


def test_check_a_control_ct_from_the_procedure(browser, server_worker_case, shots):  # noqa: F811
    from playwright.sync_api import expect

    from osteoplan.workflow import models as m

    base, ids, inputs, eng = server_worker_case
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(20000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _login(page, base, "radiologist")
    page.goto(f"{base}/cases/{ids['case']}")
    page.click(f"a.check-control-ct[href$='/procedures/{ids['procedure']}/verify/new']")
    page.wait_for_url(re.compile(r".*/verify/new$"))
    assert page.locator("select[name=saved_plan_id] option").all_inner_texts() == [f"plan #{ids['plan']} — job plan"]
    page.select_option("select[name=stage]", "screw")
    page.set_input_files("input[name=ct_file]", str(inputs["control"]))
    page.check("input[name=confirm_identity]")  # a NIfTI carries no patient identity to compare
    page.screenshot(path=str(shots / "verify-start.png"), full_page=True)
    page.click("form#form-verify-job button[type=submit]")
    page.wait_for_url(re.compile(r".*/checks/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    page.wait_for_selector("#job-result", timeout=180000)  # the page reloads itself when the job ends
    assert page.inner_text("#job-state") == "done"
    assert page.locator("#job-stages li.stage-done").count() == 5  # de-identify, read, measure, images, save
    with Session(eng) as s:
        v = s.scalar(select(m.Verification).where(m.Verification.job_id == job_id))
    # the page shows the figures stored with the procedure
    assert page.inner_text("#fig-entry-error") == f"{v.entry_error_mm:.1f} mm"
    assert page.inner_text("#fig-tip-error") == f"{v.tip_error_mm:.1f} mm"
    assert page.inner_text("#fig-angle-error") == f"{v.angle_error_deg:.1f} deg"
    assert page.inner_text("#fig-grade") == v.breach_grade
    assert page.inner_text("#fig-registration") == f"{v.registration_residual_median_mm:.2f} mm"
    expect(page.locator("#check-image")).to_have_js_property("complete", True)
    assert page.locator("#check-image").evaluate("i => i.naturalWidth") > 400
    names = page.locator("#check-clearances tbody tr td:first-child").all_inner_texts()
    assert "spinal canal" in names and not any("_" in n for n in names)  # the report's names, not keys
    page.screenshot(path=str(shots / "verify-result.png"), full_page=True)
    # a control CT without instrument: the measuring stage is shown failed (never done), the rest not reached
    page.goto(f"{base}/cases/{ids['case']}/procedures/{ids['procedure']}/verify/new")
    page.select_option("select[name=stage]", "pin")
    page.set_input_files("input[name=ct_file]", str(inputs["empty"]))
    page.check("input[name=confirm_identity]")
    page.click("form#form-verify-job button[type=submit]")
    page.wait_for_url(re.compile(r".*/checks/\d+$"))
    page.wait_for_selector("#job-error:not([hidden])", timeout=180000)
    assert page.inner_text("#job-state") == "failed"
    marks = {li.get_attribute("data-stage"): li.locator("small").inner_text()
             for li in page.locator("#job-stages li").all()}
    assert marks == {"deid": "done", "read": "done", "measure": "failed", "images": "not reached",
                     "save": "not reached"}
    assert page.inner_text("#job-error").startswith("Not measured: No metal instrument was found")
    page.screenshot(path=str(shots / "verify-failed.png"), full_page=True)
    # the case page lists it under the procedure
    page.goto(f"{base}/cases/{ids['case']}")
    row = page.locator(f"#checks-{ids['procedure']} tr", has_text="done")
    assert row.count() == 1 and f"entry error {v.entry_error_mm:.1f} mm" in row.inner_text()
    proc = page.locator(".procedure", has=page.locator(f"#checks-{ids['procedure']}"))
    proc.scroll_into_view_if_needed()
    proc.screenshot(path=str(shots / "verify-case-page.png"))
    # the statistics page counts the case: one C2 screw, its errors as median and 95th percentile
    page.goto(f"{base}/stats")
    tr = page.locator("#table-accuracy_postop_by_type tbody tr[data-type=c2_screw]")
    cells = tr.locator("td").all_inner_texts()
    assert cells[1] == "1"
    assert cells[2:8] == [f"{v.entry_error_mm:.2f}"] * 2 + [f"{v.tip_error_mm:.2f}"] * 2 + [
        f"{v.angle_error_deg:.2f}"] * 2
    grade_col = 8 + "ABCDE".index(v.breach_grade)
    assert cells[grade_col] == "1" and sum(int(c) for c in cells[8:14]) == 1
    page.locator("#accuracy").scroll_into_view_if_needed()
    page.locator("#accuracy").screenshot(path=str(shots / "verify-stats.png"))
    assert errors == []
    ctx.close()
