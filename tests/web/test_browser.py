"""End-to-end in headless Chromium (Debian's chromium driven by Playwright) against a real uvicorn server.

Walks one case from the tumour board (RCP) to the 3-month follow-up through the forms, as the
radiologist and the tumour-board member, and checks the statistics page counts the procedure.
Screenshots of the main pages go to docs/screenshots/ when ``OSTEOPLAN_SCREENSHOTS=1`` (else to a
temporary folder).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from .conftest import REPO, SAMPLE_PLAN, free_port, start_server, stop_server

pytestmark = [pytest.mark.browser]

CHROMIUM = os.environ.get("OSTEOPLAN_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium not found at {CHROMIUM} (install Debian's chromium or set OSTEOPLAN_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def live_server(backend_name, fresh_database):
    """A uvicorn server on a new database filled with a small demo data set (demo users, 30 cases)."""
    from osteoplan.web import backend

    url = fresh_database(backend_name)
    eng = backend.init_engine(url)
    backend.seed_demo(eng, n_cases=30, rounds=4)
    eng.dispose()
    port = free_port()
    proc = start_server(url, port)
    yield f"http://127.0.0.1:{port}"
    stop_server(proc)


def _shrink_pngs(folder: Path) -> None:
    """Palette PNGs (256 colours) keep the committed screenshots small."""
    from PIL import Image

    for f in folder.glob("*.png"):
        im = Image.open(f).convert("RGB").quantize(colors=256)
        im.save(f, optimize=True)


@pytest.fixture()
def shots(tmp_path, backend_name):
    if os.environ.get("OSTEOPLAN_SCREENSHOTS") == "1" and backend_name == "sqlite":
        d = REPO / "docs" / "screenshots"
    else:
        d = tmp_path / "screenshots"
    d.mkdir(parents=True, exist_ok=True)
    yield d
    if d.is_relative_to(REPO):
        _shrink_pngs(d)


def _login(page, base, user):
    page.goto(f"{base}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", f"{user}-demo")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/cases$"))


def _logout(page):
    page.click("header .who button")
    page.wait_for_url(re.compile(r".*/login$"))


def _submit(page):
    page.click("form.stack button[type=submit]")
    page.wait_for_load_state()


def _n_procedures(page, base) -> int:
    page.goto(f"{base}/stats")
    return int(page.inner_text("#n-procedures").strip())


def test_walk_case_from_rcp_to_3_month_follow_up(browser, live_server, shots, tmp_path):
    base = live_server
    today = dt.date.today()
    d_rcp = today - dt.timedelta(days=130)
    d_cons = d_rcp + dt.timedelta(days=5)
    d_proc = d_rcp + dt.timedelta(days=10)
    d_3m = d_proc + dt.timedelta(days=91)
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(15000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto(f"{base}/login")
    page.screenshot(path=str(shots / "login.png"))
    _login(page, base, "radiologist")
    before = _n_procedures(page, base)
    page.goto(f"{base}/cases")
    assert page.locator("table.cases tbody tr").count() >= 25
    page.screenshot(path=str(shots / "case-list.png"))

    # --- new case
    page.click("text=New case")
    page.fill("input[name=family_name]", "Exemple")
    page.fill("input[name=given_name]", "Jeanne")
    page.fill("input[name=primary_cancer]", "breast")
    page.select_option("select[name=sex]", "female")
    page.fill("input[name=birth_year]", "1958")
    page.fill("input[name=ecog]", "1")
    _submit(page)
    assert "Case created" in page.inner_text("main")
    case_url = page.url
    case_id = int(case_url.rstrip("/").split("/")[-1])

    # --- lesion with SINS components (C2: junctional 3 + mechanical 3 + lytic 2 + normal 0 + none 0 + none 0 = 8)
    page.click("text=Add lesion")
    page.select_option("select[name=site_kind]", "vertebra")
    page.fill("input[name=site]", "C2")
    page.select_option("select[name=lesion_type]", "lytic")
    page.select_option("select[name='sins.pain']", "mechanical")
    page.select_option("select[name='sins.alignment']", "normal")
    page.select_option("select[name='sins.collapse']", "none")
    page.select_option("select[name='sins.posterolateral']", "none")
    _submit(page)
    assert "SINS 8" in page.inner_text("main")

    # --- attach the planner's plan.json to the lesion: key numbers and the trajectory sketch appear
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(SAMPLE_PLAN))
    page.click("text=Attach plan")
    page.set_input_files("input[name=plan_file]", str(plan_file))
    page.fill("input[name=label]", "right lateral approach")
    _submit(page)
    assert "Plan attached" in page.inner_text("main")
    assert "4.0 × 34.0 mm" in page.inner_text("main")
    assert page.locator(".plan-images img").evaluate("e => e.complete && e.naturalWidth > 300")

    # --- RCP decision
    page.click("text=Record RCP decision")
    page.fill("input[name=meeting_date]", d_rcp.isoformat())
    page.fill("input[name=specialties_present]", "oncology, radiotherapy, interventional radiology, spine surgery")
    page.fill("textarea[name=question]", "Lytic C2 dens lesion, SINS 8: consolidation?")
    page.select_option("select[name=decision_type]", "screw_cement")
    page.fill("textarea[name=justification]", "Collar badly tolerated; percutaneous screw + cement.")
    _submit(page)
    assert "not validated" in page.inner_text("main")

    # a procedure cannot be scheduled before validation: clear message, form kept
    page.goto(f"{case_url}/procedures/new")
    page.select_option("select[name=decision_id]", index=1)
    page.fill("input[name=scheduled_date]", d_proc.isoformat())
    _submit(page)
    assert "not validated" in page.inner_text(".flash.error")
    page.screenshot(path=str(shots / "validation-error.png"))
    _logout(page)

    # --- validation by the tumour-board member
    _login(page, base, "board")
    page.goto(case_url)
    page.click("form[action$='/validate'] button")
    page.wait_for_load_state()
    assert "Decision validated by" in page.inner_text("main")
    _logout(page)

    # --- consultation, information sheet, schedule, log, post-op, follow-up (radiologist)
    _login(page, base, "radiologist")
    page.goto(case_url)
    page.click("text=Record consultation")
    page.fill("input[name=consultation_date]", d_cons.isoformat())
    page.fill("input[name=physician]", "Dr Demo Radiologist")
    page.select_option("select[name=anaesthesia]", "general")
    page.fill("textarea[name=benefits_explained]", "pain relief, collar removal")
    page.fill("textarea[name=risks_explained]", "bleeding, cement leak, infection")
    page.check("input[name=consent_obtained]")
    page.select_option("select[name=info_sheet_language]", "fr")
    _submit(page)
    with page.expect_download() as dl:
        page.click("text=PDF (English)")
    pdf = Path(dl.value.path()).read_bytes()
    assert pdf[:5] == b"%PDF-"

    page.click("text=Schedule procedure")
    page.fill("input[name=scheduled_date]", d_proc.isoformat())
    page.select_option("select[name=guidance]", "CT+fluoroscopy")
    _submit(page)
    assert "Procedure scheduled" in page.inner_text("main")

    page.click("text=Log procedure")
    page.fill("input[name=procedure_date]", d_proc.isoformat())
    page.fill("input[name=operators]", "Dr A, Dr B")
    page.select_option("select[name=anaesthesia]", "general")
    page.fill("input[name=duration_min]", "95")
    page.fill("input[name=hydrodissection_volume_ml]", "220")
    page.fill("input[name=trocar]", "11G bone trocar")
    page.check("input[name=guide_pin]")
    page.fill("input[name='screw1.diameter_mm']", "4.0")
    page.fill("input[name='screw1.length_mm']", "34")
    page.fill("input[name=cement_volume_ml]", "2.8")
    page.select_option("select[name=cement_leak]", "no")
    page.fill("input[name=dlp_mgy_cm]", "450")
    page.fill("input[name=fluoroscopy_time_s]", "310")
    page.select_option("select[name=technical_success]", "yes")
    page.screenshot(path=str(shots / "procedure-form.png"), full_page=True)
    _submit(page)
    assert "Procedure logged" in page.inner_text("main")

    page.click("text=Post-op (collar, discharge)")
    page.fill("input[name=collar_removed_date]", d_proc.isoformat())
    page.fill("input[name=discharge_date]", (d_proc + dt.timedelta(days=1)).isoformat())
    _submit(page)

    for tp, day, nrs in (("day1", 1, 2), ("3m", 91, 1)):
        page.click("text=Add follow-up")
        page.select_option("select[name=timepoint]", tp)
        page.fill("input[name=visit_date]", (d_proc + dt.timedelta(days=day)).isoformat())
        page.fill("input[name=pain_nrs]", str(nrs))
        _submit(page)
        assert "Follow-up saved" in page.inner_text("main")

    text = page.inner_text("main")
    assert "in follow-up" in text
    timeline = page.inner_text("ol.timeline")
    order = [timeline.index(s) for s in ("Tumour board", "Consultation", "Procedure", "Collar removed",
                                         "Follow-up day1", "Follow-up 3m")]
    assert order == sorted(order)
    assert d_3m.isoformat() in timeline
    assert "2.8 mL" in text and "right lateral approach" in text
    page.screenshot(path=str(shots / "case-page.png"), full_page=True)

    # --- statistics count the new procedure
    after = _n_procedures(page, base)
    assert after == before + 1
    page.screenshot(path=str(shots / "statistics.png"), full_page=True)
    assert page.locator(".plots img").count() == 5  # + procedures per year by type (issue 15)
    for img in page.locator(".plots img").all():
        assert img.evaluate("e => e.complete && e.naturalWidth > 100")

    # --- research sees the case pseudonymised
    _logout(page)
    _login(page, base, "research")
    page.goto(case_url)
    assert "Exemple" not in page.content() and "pseudonymised view" in page.inner_text("main")
    page.screenshot(path=str(shots / "case-page-research.png"))
    r = page.goto(f"{base}/cases/{case_id}/edit")
    assert r.status == 403
    page.screenshot(path=str(shots / "forbidden.png"))
    assert errors == []
    ctx.close()


def test_conflict_message_in_two_browsers(browser, live_server, shots):
    """Two users open the same patient form; the second save gets the conflict page, nothing is lost."""
    base = live_server
    a = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    b = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    _login(a, base, "radiologist")
    _login(b, base, "coordinator")
    a.goto(f"{base}/cases")
    first = a.locator("table.cases tbody tr td a").first.get_attribute("href")
    a.goto(f"{base}{first}/edit")
    b.goto(f"{base}{first}/edit")
    a.fill("input[name=primary_cancer]", "kidney (edited by A)")
    b.fill("input[name=primary_cancer]", "lung (edited by B)")
    _submit(a)
    assert "Patient record saved" in a.inner_text("main")
    _submit(b)
    assert "changed by someone else" in b.inner_text("main")
    b.screenshot(path=str(shots / "conflict.png"))
    b.click("a.button:has-text('Reload')")
    b.wait_for_load_state()
    assert b.input_value("input[name=primary_cancer]") == "kidney (edited by A)"
