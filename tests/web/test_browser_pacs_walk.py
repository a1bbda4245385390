"""The whole PACS walk in Debian's Chromium (Playwright) against a real uvicorn server, a real planning worker and the
test Orthanc (``./scripts/with-orthanc``): log in -> case -> pick the CT from the PACS -> start the plan -> progress
(the CT retrieved from the PACS by the worker) -> review page (slices and simulated fluoroscopy) -> move the target
3 mm with the keyboard: the nearest structure's clearance shown changes -> back to the saved points, a feasible 1 mm
nudge of the target saved as version 2 -> the two versions compared -> version 2 approved (locked), which queues the
store of its results (:func:`adjust_save_and_approve`) -> SEG, SR and PDF of version 2 found in Orthanc by QIDO-RS ->
the procedure form pre-filled from version 2. Screenshots: docs/screenshots/pacs-walk-01..13-*.png with
``OSTEOPLAN_SCREENSHOTS=1``.

The CT is the neck phantom at :data:`SPACING_MM` stored in Orthanc under the case's patient; the plan is made by
``osteoplan plan`` (c2-dens-anterior, segmented by osteoplan) with its report (the PDF and the DICOM SEG/SR are what
is sent back).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from .conftest import REPO, free_port, make_case, start_server, stop_server
from .test_browser import _login, browser, shots  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.pacs, pytest.mark.slow]

SPACING_MM = 1.25
"""The phantom's voxel size (mm). Coarse, so that the plan with its report stays short on the shared CPU; fine enough
that the plan segmented from it has feasible 1 mm nudges of the target to save as version 2. Measured with
``osteoplan plan --protocol c2-dens-anterior`` on the phantom: at 1.6 mm (the lead's figures) 5 feasible candidates
and no feasible 1 mm nudge (nothing can be saved); at 1.25 mm 41 feasible (NOT CLEARED: vessels not segmented), the
1 mm nudge towards P feasible. Not 1.2 mm: from the PACS the spacing is exactly 1.2 mm, and the spinal-canal
candidates then get their in-plane closing with a 1.2 mm disk (osteoplan.anatomy.canal._canal_candidates runs it only
when the pixel is <= 1.2 mm); on this phantom the canal then differs (12,921 voxels) and the C2 locator takes the bone
column below C2 (NO FEASIBLE PATH). Above 1.2 mm (even 1.2 * (1 + 1e-9), e.g. a NIfTI's float32 1.20000005) C2 is
found (confidence 0.90 against 0.66)."""


@pytest.fixture()
def walk_server(backend_name, fresh_database, tmp_path):
    """uvicorn + one worker, both configured with the test Orthanc as their PACS; a case with a scheduled procedure
    on a C2 lesion; the phantom CT in Orthanc under the case's patient (``ids["n_slices"]``: its number of axial
    slices, one CT instance each). Yields (base URL, ids, PacsConfig, timings, database URL)."""
    if backend_name != "sqlite":
        pytest.skip("the browser walk runs on SQLite only (the PACS pages on both: test_pacs_pages)")
    url_env = os.environ.get("OSTEOPLAN_TEST_ORTHANC_URL")
    if not url_env:
        pytest.skip("no test Orthanc (OSTEOPLAN_TEST_ORTHANC_URL unset): run through ./scripts/test or "
                    "./scripts/with-orthanc")
    from sqlalchemy.orm import Session

    from osteoplan.anatomy.phantom import PhantomParams, make_phantom
    from osteoplan.pacs import PacsClient, PacsConfig
    from osteoplan.pacs.seed import store_volume
    from osteoplan.web import backend
    from osteoplan.web.demo_plans import _dicom_patient
    from osteoplan.workflow import models as m

    cfg = PacsConfig(url_env.rstrip("/") + "/dicom-web", username=os.environ.get("OSTEOPLAN_TEST_ORTHANC_USER"),
                     password=os.environ.get("OSTEOPLAN_TEST_ORTHANC_PASSWORD"), timeout_s=30, retries=1)
    url = fresh_database(backend_name)
    eng = backend.init_engine(url)
    backend.seed_demo(eng, n_cases=3, rounds=4)
    ids = make_case(eng, through="scheduled")
    with Session(eng) as s:
        patient = _dicom_patient(s.get(m.Patient, ids["case"]))
        ids["procedure"] = s.query(m.Procedure).filter_by(patient_id=ids["case"]).one().id
    eng.dispose()
    t0 = time.perf_counter()
    ct = make_phantom(PhantomParams(spacing_mm=SPACING_MM)).volume
    study, series = store_volume(PacsClient(cfg), ct, patient, description="neck CT (phantom)")
    timings = {"store_ct_s": time.perf_counter() - t0}
    ids.update(study=study, series=series, n_slices=ct.array.shape[0])  # one CT instance per axial slice k
    env = {"OSTEOPLAN_JOBS_DIR": str(tmp_path / "jobs"), "OSTEOPLAN_PACS_URL": cfg.url,
           "OSTEOPLAN_PACS_USERNAME": cfg.username or "", "OSTEOPLAN_PACS_PASSWORD": cfg.password or "",
           "OSTEOPLAN_PACS_TIMEOUT_S": "30", "OSTEOPLAN_PACS_CONFIG": str(tmp_path / "absent.toml")}
    port = free_port()
    proc = start_server(url, port, env_extra=env)
    worker = subprocess.Popen([sys.executable, "-m", "osteoplan.cli", "worker", "--db", url],
                              env={**os.environ, **env, "PYTHONPATH": str(REPO)}, cwd=str(REPO),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield f"http://127.0.0.1:{port}", ids, cfg, timings, url
    worker.terminate()
    worker.wait(30)
    stop_server(proc)


def _wait_for_drrs(page) -> None:
    """Wait until the review page's three simulated fluoroscopy views are drawn (each version renders its own)."""
    from playwright.sync_api import expect

    for v in ("ap", "lateral", "bullseye"):
        img = page.locator(f"figure.drr[data-drr={v}] img")
        img.scroll_into_view_if_needed()
        expect(img).to_have_js_property("complete", True, timeout=60000)
        assert img.evaluate("i => i.naturalWidth") > 300


def _clearance(page, structure: str) -> float:
    return float(page.inner_text(f"#adjust-clearances tr[data-structure='{structure}'] td.clearance"))


def adjust_save_and_approve(page, base: str, ids: dict, shots, verdict: str) -> int:
    """On the review page of version 1: move the target 3 mm with the keyboard (key R three times: towards the
    patient's right) -> the nearest structure's clearance shown changes -> back to the saved points (key 0) -> save
    the first of the six 1 mm target nudges (R, L, A, P, S, I) that the re-check finds feasible as version 2 -> compare
    the versions -> approve version 2 (the plan is locked; a NOT CLEARED version only with its confirmation box
    ticked, the form being refused without it). Approving queues the store of the approved version's SEG,
    SR and PDF to the PACS (:func:`osteoplan.web.routers.adjust._send_approved_to_pacs`). Returns version 2's
    saved-plan id. Screenshots pacs-walk-07-adjust.png, -08-versions.png, -09-approved.png."""
    from playwright.sync_api import expect

    adjust = page.locator("#adjust")
    expect(adjust).to_have_attribute("data-state", "ready", timeout=120000)  # "preparing the re-check…" first
    assert page.inner_text("#review-verdict").strip() == verdict  # the re-check of the saved points: same verdict
    near = page.locator("#adjust-clearances tr.nearest").get_attribute("data-structure")
    before = _clearance(page, near)
    page.click("button.adjust-point[data-point=target]")
    for _ in range(3):
        page.keyboard.press("r")
    expect(page.locator("#adjust-moved")).to_contain_text("target moved 3.00 mm (R 3.00)")
    expect(adjust).to_have_attribute("data-state", "ready")
    after = _clearance(page, near)
    assert abs(after - before) > 0.3, (near, before, after)
    change = page.inner_text(f"#adjust-clearances tr[data-structure='{near}'] td.change")
    assert float(change) == pytest.approx(after - before, abs=0.011)
    ids["adjust_nearest"] = (near, before, after)
    page.locator("#adjust").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "pacs-walk-07-adjust.png"), full_page=True)
    # back to the saved points, then version 2: the first feasible 1 mm nudge of the target
    saved = None
    for key in "rlapsi":
        page.keyboard.press("0")
        expect(page.locator("#adjust-moved")).to_contain_text("nothing moved")
        page.keyboard.press(key)
        expect(page.locator("#adjust-moved")).to_contain_text("target moved 1.00 mm")
        expect(adjust).to_have_attribute("data-state", "ready")
        if page.locator("#adjust-save").is_enabled():
            saved = key.upper()
            page.fill("#adjust-note", f"target 1 mm ({saved})")
            page.click("#adjust-save")
            break
    assert saved, "no 1 mm nudge of the target is feasible: nothing to save as version 2"
    ids["adjust_saved_nudge"] = saved
    page.wait_for_url(re.compile(rf".*/plans/(?!{ids['plan_v1']}/)\d+/review$"))  # the new version's page
    plan_v2 = int(page.url.rsplit("/", 2)[1])
    expect(page.locator("#adjust-version")).to_contain_text("version 2")
    expect(adjust).to_have_attribute("data-state", "ready", timeout=120000)
    verdict2 = page.inner_text("#review-verdict").strip()
    assert verdict2 == verdict, verdict2  # a 1 mm nudge keeps the plan's verdict (the same structures assessed)
    page.click("#adjust-versions")
    page.wait_for_url(re.compile(r".*/versions$"))
    assert page.locator("#versions-list tbody tr").count() == 2
    assert "1.00 mm" in page.inner_text("#versions-points")
    assert page.locator("#versions-compare .verdict-box").count() == 2
    page.screenshot(path=str(shots / "pacs-walk-08-versions.png"), full_page=True)
    # approve version 2: the plan is locked and its results are queued for the PACS. A NOT CLEARED version is
    # approved only with the box confirming that what it leaves open was checked on other images (the form is
    # refused without it); the approval then says so.
    page.go_back()
    expect(adjust).to_have_attribute("data-state", "ready", timeout=120000)
    not_cleared = verdict.startswith("NOT CLEARED")
    if not_cleared:
        box = page.locator("#adjust-not-cleared")
        expect(box).to_contain_text(verdict)
        expect(box).to_contain_text("(not assessed)")
        page.click("#adjust-approve")
        assert not page.evaluate("document.getElementById('adjust-confirm-not-cleared').checkValidity()")
        assert page.url.endswith(f"/plans/{plan_v2}/review")
        page.check("#adjust-confirm-not-cleared")
    else:
        assert page.locator("#adjust-not-cleared").count() == 0
    page.click("#adjust-approve")
    page.wait_for_url(re.compile(rf".*/plans/{plan_v2}/review$"))
    expect(page.locator("#adjust-locked")).to_contain_text("approved by radiologist")
    assert page.locator("#adjust-save").count() == 0 and page.locator("#adjust-approve").count() == 0
    assert "being sent to the PACS" in page.content()
    assert ("NOT CLEARED, with your confirmation that what it leaves open was checked on other images"
            in page.content()) == not_cleared
    _wait_for_drrs(page)
    page.screenshot(path=str(shots / "pacs-walk-09-approved.png"), full_page=True)
    return plan_v2


def _store_job_id(db_url: str, saved_plan_id: int) -> int:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from osteoplan.workflow import jobs as q

    eng = create_engine(db_url)
    try:
        with Session(eng) as s:
            (job, *_) = q.results_store_jobs(s, saved_plan_id)
            return job.id
    finally:
        eng.dispose()


def _job_of(db_url: str, job_url: str):
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from osteoplan.workflow import models as m

    eng = create_engine(db_url)
    try:
        with Session(eng) as s:
            return s.get(m.PlanJob, int(job_url.rstrip("/").rsplit("/", 1)[1]))
    finally:
        eng.dispose()


def test_pacs_walk(browser, walk_server, shots, record_property):  # noqa: F811
    from playwright.sync_api import expect

    from osteoplan.pacs import PacsClient

    base, ids, cfg, timings, db_url = walk_server
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(30000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # 1. log in, open the case
    _login(page, base, "radiologist")
    page.goto(f"{base}/cases/{ids['case']}")
    page.screenshot(path=str(shots / "pacs-walk-01-case.png"), full_page=True)
    # 2. pick the CT from the PACS (searched by the case's identifier, prefilled)
    page.click(f"a[href='/cases/{ids['case']}/lesions/{ids['lesion']}/pacs']")
    assert page.input_value("input[name=patient_id]") == "H-998877"
    page.click("#form-pacs-search button")
    page.wait_for_selector("#pacs-series")
    row = page.locator("#pacs-series tr", has_text="neck CT (phantom)")
    expect(row).to_have_count(1)
    page.screenshot(path=str(shots / "pacs-walk-02-search.png"), full_page=True)
    row.locator("button").click()
    page.wait_for_url(f"{base}/cases/{ids['case']}")
    assert "patient identity verified on PatientID, PatientName, PatientSex" in page.content()
    # 3. start the plan on it
    page.click("a.plan-on-ct")
    page.wait_for_url(re.compile(r".*/plan-jobs/new$"))
    page.check("input[name=source][value=pacs]")
    assert page.input_value("select[name=pacs_series_uid]") == ids["series"]
    page.screenshot(path=str(shots / "pacs-walk-03-start.png"), full_page=True)
    page.click("form#form-plan-job button[type=submit]")
    page.wait_for_url(re.compile(r".*/plan-jobs/\d+$"))
    job_url = page.url
    # 4. progress: the first stage is the retrieve from the PACS, done by the worker
    first = page.locator("#job-stages li").first
    expect(first).to_have_attribute("data-stage", "retrieve")
    page.wait_for_selector("#job-stages li[data-stage=retrieve].stage-done", timeout=120000)
    page.screenshot(path=str(shots / "pacs-walk-04-progress.png"), full_page=True)
    page.wait_for_selector("#job-result:not([hidden])", timeout=600000)
    verdict = page.inner_text("#job-verdict").strip()
    assert re.match(r"(FEASIBLE|NOT CLEARED)", verdict), verdict
    job = _job_of(db_url, job_url)
    assert job.stages_done[:2] == ["retrieve", "read"] and job.options["ct_files"] == ids["n_slices"]
    timings["retrieve_s"] = job.options["retrieve_s"]
    page.screenshot(path=str(shots / "pacs-walk-05-done.png"), full_page=True)
    # 5. the review page: slices and the three simulated fluoroscopy views
    page.click("#job-review")
    page.wait_for_url(re.compile(r".*/plans/\d+/review$"))
    plan_id = int(page.url.rsplit("/", 2)[1])
    assert page.inner_text("#review-verdict").strip() == verdict
    _wait_for_drrs(page)
    page.locator("#review-drr").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "pacs-walk-06-review.png"), full_page=True)
    # 6. move the target 3 mm, save version 2, compare, approve: approving queued the store of version 2's results
    ids["plan_v1"] = plan_id
    plan_id = adjust_save_and_approve(page, base, ids, shots, verdict)
    timings["adjust"] = {"nearest": ids["adjust_nearest"], "saved_nudge": ids["adjust_saved_nudge"]}
    store_url = f"{base}/cases/{ids['case']}/plan-jobs/{_store_job_id(db_url, plan_id)}"
    page.goto(store_url)
    page.wait_for_selector("#job-result:not([hidden])", timeout=300000)
    expect(page.locator("#job-stored tr[data-label]")).to_have_count(3)
    page.screenshot(path=str(shots / "pacs-walk-10-stored.png"), full_page=True)
    store = _job_of(db_url, store_url)
    timings["store_s"] = store.options["store_s"]
    assert store.options["store_where"] == "referencing the PACS series the plan was made on (no CT copy)"
    # 7. what Orthanc holds: found by QIDO-RS in the planning CT's study
    hits = PacsClient(cfg).find_series(study_uid=ids["study"], modality=None)
    found = sorted((h.modality, h.n_instances) for h in hits)
    assert found == [("CT", ids["n_slices"]), ("DOC", 1), ("SEG", 1), ("SR", 1)], found
    timings["qido"] = found
    page.goto(f"{base}/cases/{ids['case']}/plans/{plan_id}/review")
    page.locator("#review-pacs").scroll_into_view_if_needed()
    assert "every object was found again in the PACS by QIDO-RS" in page.inner_text("#review-pacs")
    assert page.inner_text("#review-verdict").strip() == verdict
    _wait_for_drrs(page)
    page.screenshot(path=str(shots / "pacs-walk-11-review-stored.png"), full_page=True)
    # 8. the case page: the plan's card links the stored objects; the procedure links "Log from plan"
    page.goto(f"{base}/cases/{ids['case']}")
    card = page.locator(f"#plan-{plan_id} .plan-pacs")
    assert card.get_attribute("data-state") == "done"
    assert [a.inner_text() for a in card.locator("a").all()] == ["SEG", "SR", "PDF"]
    page.screenshot(path=str(shots / "pacs-walk-12-case-stored.png"), full_page=True)
    # 9. the procedure form, pre-filled from the plan
    page.click(f"a.log-from-plan[href$='log?plan_id={plan_id}']")
    page.wait_for_url(re.compile(rf".*/procedures/{ids['procedure']}/log\?plan_id={plan_id}$"))
    assert page.input_value("select[name=procedure_type]") == "c2_screw"
    assert page.input_value("input[name=trocar]") == "11G bone trocar"
    assert float(page.input_value("input[name='screw1.diameter_mm']")) in (3.5, 4.0)
    assert 20.0 <= float(page.input_value("input[name='screw1.length_mm']")) <= 56.0
    assert page.input_value("textarea[name=notes]").startswith(f"Planned (plan #{plan_id}): side ")
    page.screenshot(path=str(shots / "pacs-walk-13-procedure-form.png"), full_page=True)
    assert errors == []
    ctx.close()
    record_property("pacs_walk_timings", timings)
    print("PACS walk timings:", timings)
