"""In Debian's Chromium (Playwright) against a real uvicorn server and a real planning worker: log in, open a
case, upload the phantom CT, start the plan, follow its progress, read the verdict on the case page and review
the slices (scroll, window). Screenshots go to docs/screenshots/plan-job-*.png with ``OSTEOPLAN_SCREENSHOTS=1``."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .conftest import REPO, free_port, make_case, start_server, stop_server
from .test_browser import _login, browser, shots  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser]


@pytest.fixture()
def phantom_nifti(tmp_path):
    from osteoplan.anatomy.phantom import PhantomParams, make_phantom, write_phantom

    write_phantom(make_phantom(PhantomParams(spacing_mm=1.6)), tmp_path / "ph", dicom=False)
    return tmp_path / "ph" / "ct.nii.gz"


@pytest.fixture()
def server_and_worker(backend_name, fresh_database, tmp_path):
    """uvicorn + one ``osteoplan worker`` on a new database with the demo users and one case with a C2 lesion
    (SQLite only: the queue on PostgreSQL is covered by test_plan_jobs; the CI time budget)."""
    import os

    if backend_name != "sqlite":
        pytest.skip("the browser walk runs on SQLite only (the queue on PostgreSQL: test_plan_jobs)")

    from osteoplan.web import backend

    url = fresh_database(backend_name)
    eng = backend.init_engine(url)
    backend.seed_demo(eng, n_cases=5, rounds=4)
    ids = make_case(eng, through="decision")
    eng.dispose()
    env = {"OSTEOPLAN_JOBS_DIR": str(tmp_path / "jobs")}
    port = free_port()
    proc = start_server(url, port, env_extra=env)
    worker = subprocess.Popen([sys.executable, "-m", "osteoplan.cli", "worker", "--db", url],
                              env={**os.environ, **env, "PYTHONPATH": str(REPO)}, cwd=str(REPO),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield f"http://127.0.0.1:{port}", ids
    worker.terminate()
    worker.wait(30)
    stop_server(proc)


def test_plan_a_ct_from_the_case_page(browser, server_and_worker, shots, phantom_nifti):  # noqa: F811
    base, ids = server_and_worker
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = ctx.new_page()
    page.set_default_timeout(20000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _login(page, base, "radiologist")
    page.goto(f"{base}/cases/{ids['case']}")
    page.click("a.plan-on-ct")
    page.wait_for_url(re.compile(r".*/plan-jobs/new$"))
    # the protocols offered are the shipped ones, the default first
    options = page.locator("select[name=protocol] option").all_inner_texts()
    assert options[0].startswith("c2-dens-anterior") and any(o.startswith("c2-dens-lateral") for o in options)
    page.set_input_files("input[name=ct_file]", str(phantom_nifti))
    page.check("input[name=confirm_identity]")  # a NIfTI carries no patient identity to compare
    page.uncheck("input[name=report]")  # the PDF takes half a minute more (CI budget); its link is tested in the matrix
    page.screenshot(path=str(shots / "plan-job-start.png"), full_page=True)
    page.click("form#form-plan-job button[type=submit]")
    page.wait_for_url(re.compile(r".*/plan-jobs/\d+$"))
    job_url = page.url
    # progress: a stage becomes current, then done, while the page polls (no reload by the test)
    page.wait_for_selector("#job-stages li.stage-done", timeout=120000)
    page.screenshot(path=str(shots / "plan-job-progress.png"), full_page=True)
    page.wait_for_selector("#job-result:not([hidden])", timeout=300000)
    assert page.inner_text("#job-state") == "done"
    verdict = page.inner_text("#job-verdict").strip()
    assert re.match(r"(FEASIBLE|NOT CLEARED|NO FEASIBLE PATH|.*ROUTE NOT ASSESSABLE)", verdict), verdict
    assert page.locator("#job-stages li.stage-done").count() == 6  # read, anatomy, risk, search, exports, save
    page.screenshot(path=str(shots / "plan-job-done.png"), full_page=True)
    assert page.locator("#job-pdf").count() == 0  # made without the report: no PDF link
    # the case page shows the plan's one verdict (the same words), its warnings and the PDF link
    page.click("#job-open-plan")
    page.wait_for_url(re.compile(rf".*/cases/{ids['case']}(#plan-\d+)?$"))
    box = page.locator(".card.plan .verdict-box").last
    assert box.locator("p.verdict").inner_text().strip() == verdict
    plan_card = page.locator(".card.plan").last
    assert plan_card.locator("a.plan-review").count() == 1 and plan_card.locator("a.plan-pdf").count() == 0
    assert plan_card.locator("h4", has_text="Warnings").count() == 1
    assert page.locator("#plan-jobs td", has_text=verdict[:20]).count() >= 1
    plan_card.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "plan-job-case-page.png"), full_page=True)
    assert job_url.startswith(base)
    # the review page (start): three slices through the target; scroll the axial one 5 mm, switch the window
    plan_card.locator("a.plan-review").click()
    page.wait_for_url(re.compile(r".*/plans/\d+/review$"))
    assert page.inner_text("#review-verdict").strip() == verdict
    from playwright.sync_api import expect

    for view in ("axial", "coronal", "sagittal"):  # (the page's CSP forbids eval: no wait_for_function)
        img = page.locator(f"figure[data-view={view}] img")
        expect(img).to_have_js_property("naturalWidth", int(img.get_attribute("width")))
    axial = page.locator("figure[data-view=axial]")
    first = axial.locator("img").get_attribute("src")
    axial.locator("input[type=range]").focus()
    step = float(axial.locator("input[type=range]").get_attribute("data-step-mm"))  # the slider counts slices
    n_keys = max(1, round(5.0 / step))
    for _ in range(n_keys):
        page.keyboard.press("ArrowUp")
    expect(axial).to_have_attribute("data-loaded", re.compile(r"offset_mm=(?!0\.00)"))
    assert float(axial.locator(".offset").inner_text()) == pytest.approx(n_keys * step, abs=0.051)
    assert axial.locator("img").get_attribute("src") != first
    page.click("button.window-preset[data-window=soft_tissue]")
    expect(page.locator("figure[data-view=coronal]")).to_have_attribute("data-loaded", re.compile("window=soft_tissue"))
    for img in page.locator("figure.drr img").all():  # the simulated fluoroscopy views load after the slices
        img.scroll_into_view_if_needed()
        expect(img).to_have_js_property("complete", True, timeout=60000)
    page.screenshot(path=str(shots / "plan-review.png"), full_page=True)
    assert errors == []
    ctx.close()
