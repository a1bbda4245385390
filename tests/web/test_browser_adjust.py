"""In Debian's Chromium (Playwright) against a real uvicorn server: the review page's adjust block on a real phantom
plan folder — move the target 3 mm with the keyboard and see the nearest structure's clearance and the slices
change, drag the target on a slice, save version 2, compare the versions, see version 1's page name version 2 (its
approval refused without the confirmation box), open version 2 from the case page, approve it (the plan is then
locked). Screenshots docs/screenshots/plan-adjust.png, plan-versions.png and plan-older-version.png with
``OSTEOPLAN_SCREENSHOTS=1``."""

from __future__ import annotations

import re

import pytest

from .adjust_fixtures import attach_as_job, write_phantom_plan_folder
from .conftest import free_port, make_case, start_server, stop_server
from .test_browser import _login, browser, shots  # noqa: F401  (fixtures)
from .test_browser_pacs_walk import _wait_for_drrs  # the same wait as the PACS walk

pytestmark = [pytest.mark.browser]


@pytest.fixture()
def adjust_server(backend_name, fresh_database, tmp_path):
    """uvicorn on a new SQLite database with the demo users and one case whose C2 lesion has a phantom plan made by
    a (finished) planning job."""
    if backend_name != "sqlite":
        pytest.skip("the browser walk runs on SQLite only (the adjust API on PostgreSQL: test_adjust)")
    from osteoplan.web import backend

    url = fresh_database(backend_name)
    eng = backend.init_engine(url)
    backend.seed_demo(eng, n_cases=3, rounds=4)
    ids = make_case(eng, through="lesion")
    _, plan = write_phantom_plan_folder(tmp_path / "job" / "plan-1")
    ids["plan"] = attach_as_job(eng, ids["lesion"], tmp_path / "job", plan)
    eng.dispose()
    port = free_port()
    proc = start_server(url, port)
    yield f"http://127.0.0.1:{port}", ids
    stop_server(proc)


def _clearance(page, structure: str) -> float:
    return float(page.inner_text(f"#adjust-clearances tr[data-structure='{structure}'] td.clearance"))



def test_move_the_target_3_mm_save_compare_approve(browser, adjust_server, shots):  # noqa: F811
    from playwright.sync_api import expect

    base, ids = adjust_server
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(30000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _login(page, base, "radiologist")
    page.goto(f"{base}/cases/{ids['case']}/plans/{ids['plan']}/review")
    adjust = page.locator("#adjust")
    expect(adjust).to_have_attribute("data-state", "ready", timeout=60000)  # "preparing the re-check…" first
    verdict0 = page.inner_text("#review-verdict").strip()
    near = page.locator("#adjust-clearances tr.nearest").get_attribute("data-structure")
    before = _clearance(page, near)
    axial = page.locator("figure[data-view=axial]")
    expect(axial).to_have_attribute("data-loaded", re.compile(r"pts="))
    loaded0 = axial.get_attribute("data-loaded")
    # the target, 3 mm towards the patient's right with the keyboard (key R, three times)
    page.click("button.adjust-point[data-point=target]")
    for _ in range(3):
        page.keyboard.press("r")
    expect(page.locator("#adjust-moved")).to_contain_text("target moved 3.00 mm (R 3.00)")
    expect(adjust).to_have_attribute("data-state", "ready")
    after = _clearance(page, near)
    assert abs(after - before) > 0.3, (near, before, after)
    change = page.inner_text(f"#adjust-clearances tr[data-structure='{near}'] td.change")
    assert float(change) == pytest.approx(after - before, abs=0.011)
    expect(axial).not_to_have_attribute("data-loaded", loaded0)  # the slices redrew the moved instrument
    assert page.inner_text("#review-verdict").strip()  # the verdict is the re-checked plan's (same words as the CLI)
    _wait_for_drrs(page)
    page.locator("#adjust").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "plan-adjust.png"), full_page=True)
    # drag the target on the axial slice: 6 screen pixels to the right = towards the patient's left
    page.keyboard.press("0")
    expect(page.locator("#adjust-moved")).to_contain_text("nothing moved")
    img = axial.locator("img")
    img.scroll_into_view_if_needed()
    box = img.bounding_box()
    geo_px_mm = 0.4 * 275 / box["width"]  # slice pixel 0.4 mm, 275 pixels shown in box["width"] screen pixels
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 6, box["y"] + box["height"] / 2, steps=3)
    page.mouse.up()
    expect(page.locator("#adjust-moved")).to_contain_text("target moved")
    text = page.inner_text("#adjust-moved")
    got = float(re.search(r"target moved ([\d.]+) mm \(L ([\d.]+)\)", text).group(2))
    assert got == pytest.approx(6 * geo_px_mm, abs=0.15)
    # save a feasible 1 mm move as version 2: the first of the six target nudges the re-check finds feasible
    saved = False
    for key in "rlapsi":
        page.keyboard.press("0")
        expect(page.locator("#adjust-moved")).to_contain_text("nothing moved")
        page.keyboard.press(key)
        expect(page.locator("#adjust-moved")).to_contain_text("target moved 1.00 mm")
        expect(adjust).to_have_attribute("data-state", "ready")
        if page.locator("#adjust-save").is_enabled():
            page.fill("#adjust-note", f"target 1 mm ({key.upper()})")
            page.click("#adjust-save")
            saved = True
            break
    assert saved
    page.wait_for_url(re.compile(rf".*/plans/(?!{ids['plan']}/)\d+/review$"))  # the new version's page
    v2_url = page.url
    expect(page.locator("#adjust-version")).to_contain_text("version 2")
    expect(adjust).to_have_attribute("data-state", "ready", timeout=60000)
    page.click("#adjust-versions")
    page.wait_for_url(re.compile(r".*/versions$"))
    assert page.locator("#versions-list tbody tr").count() == 2
    assert "1.00 mm" in page.inner_text("#versions-points")
    assert page.locator("#versions-compare .verdict-box").count() == 2
    page.screenshot(path=str(shots / "plan-versions.png"), full_page=True)
    # version 1's review page names version 2; its approve form is refused until the "although newer" box is ticked
    page.goto(f"{base}/cases/{ids['case']}/plans/{ids['plan']}/review")
    expect(page.locator("#review-newer")).to_contain_text("Version 2 (newer, saved by radiologist at")
    expect(page.locator("#adjust-older")).to_contain_text("approve version 1 although version 2 is newer")
    expect(adjust).to_have_attribute("data-state", "ready", timeout=60000)
    _wait_for_drrs(page)  # the screenshot shows the three simulated fluoroscopy views, not empty frames
    page.locator("#review-newer").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "plan-older-version.png"), full_page=True)
    page.click("#adjust-approve")
    assert not page.evaluate("document.getElementById('adjust-confirm-older').checkValidity()")
    assert page.url.endswith(f"/plans/{ids['plan']}/review")
    # the case page's "Review the images" opens version 2 (the latest)
    page.goto(f"{base}/cases/{ids['case']}")
    expect(page.locator(f"#plan-{ids['plan']} .plan-versions")).to_contain_text("superseded")
    page.locator(f"#plan-{ids['plan']} a.plan-review").click()
    page.wait_for_url(v2_url)
    expect(page.locator("#review-newer")).to_have_count(0)
    # approve version 2: the plan is locked
    expect(adjust).to_have_attribute("data-state", "ready", timeout=60000)
    page.click("#adjust-approve")
    page.wait_for_url(re.compile(r".*/review$"))
    expect(page.locator("#adjust-locked")).to_contain_text("approved by radiologist")
    assert page.locator("#adjust-save").count() == 0 and page.locator("#adjust-approve").count() == 0
    # the case page: version 2's card says approved (by whom, when), version 1's that it was not
    page.goto(f"{base}/cases/{ids['case']}")
    cards = page.locator(".card.plan .plan-version-state")
    states = sorted(cards.evaluate_all("els => els.map(e => e.dataset.state)"))
    assert states == ["approved", "superseded"], states
    approved = page.locator(".card.plan", has=page.locator('.plan-version-state[data-state="approved"]'))
    expect(approved.locator(".plan-version-state")).to_contain_text(re.compile(
        r"Version 2:\s*approved by radiologist on \d{4}-\d\d-\d\d \d\d:\d\d UTC; the plan is locked"))
    approved.scroll_into_view_if_needed()
    approved.screenshot(path=str(shots / "plan-approved-card.png"))
    assert verdict0
    assert errors == []
    ctx.close()
