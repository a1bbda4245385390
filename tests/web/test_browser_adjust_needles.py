"""In Debian's Chromium (Playwright) against a real uvicorn server: the review page of a bipedicular vertebroplasty
plan (two needles, synthetic L1 of known geometry) offers the needle to move; choosing needle 2 re-checks needle 2
(its points, drawn on the slices), and a 1 mm move of its target with the keyboard says that needle 2 moved.
Screenshot ``plan-adjust-needles.png`` in the test's screenshots folder (``docs/screenshots`` with
``OSTEOPLAN_SCREENSHOTS=1``)."""

from __future__ import annotations

import re

import pytest

from .adjust_fixtures import attach_as_job, write_bipedicular_plan_folder
from .conftest import free_port, make_case, start_server, stop_server
from .test_browser import _login, browser, shots  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser]


@pytest.fixture()
def needles_server(backend_name, fresh_database, tmp_path):
    """uvicorn on a new SQLite database with the demo users and one case whose L1 lesion has a two-needle plan."""
    if backend_name != "sqlite":
        pytest.skip("the browser walk runs on SQLite only (the adjust API on PostgreSQL: test_adjust_needles)")
    from osteoplan.web import backend

    url = fresh_database(backend_name)
    eng = backend.init_engine(url)
    backend.seed_demo(eng, n_cases=3, rounds=4)
    ids = make_case(eng, through="lesion", lesion_site="L1")
    _, _, plan = write_bipedicular_plan_folder(tmp_path / "job" / "plan-1")
    ids["plan"] = attach_as_job(eng, ids["lesion"], tmp_path / "job", plan, protocol="vertebroplasty-transpedicular")
    eng.dispose()
    port = free_port()
    proc = start_server(url, port)
    yield f"http://127.0.0.1:{port}", ids, plan
    stop_server(proc)


def test_choose_needle_2_and_move_its_target(browser, needles_server, shots):  # noqa: F811
    from playwright.sync_api import expect

    base, ids, plan = needles_server
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(30000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _login(page, base, "radiologist")
    page.goto(f"{base}/cases/{ids['case']}/plans/{ids['plan']}/review")
    adjust = page.locator("#adjust")
    expect(adjust).to_have_attribute("data-state", "ready", timeout=60000)
    expect(adjust).to_have_attribute("data-needle", "0")
    axial = page.locator("figure[data-view=axial]")
    page.select_option("#adjust-needle", "1")
    expect(adjust).to_have_attribute("data-needle", "1")
    expect(adjust).to_have_attribute("data-state", "ready")
    expect(page.locator("#adjust-moved")).to_have_text("Needle 2 (L1 right): as saved (nothing moved).")
    # the slices draw needle 2 (its target; its entries are those the kernel finds again on its line, 0.01 mm)
    tip = ",".join(f"{x:.2f}" for x in plan.trajectories[1].target_lps_mm)
    expect(axial).to_have_attribute("data-loaded", re.compile(r"pts=(-?[0-9.]+,){6}" + re.escape(tip) + "$"))
    page.click("button.adjust-point[data-point=target]")
    page.keyboard.press("s")  # 1 mm towards the head
    expect(page.locator("#adjust-moved")).to_contain_text("Needle 2 (L1 right): ")
    expect(page.locator("#adjust-moved")).to_contain_text("target moved 1.00 mm (S 1.00)")
    expect(adjust).to_have_attribute("data-state", "ready")
    page.locator("#adjust").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "plan-adjust-needles.png"), full_page=True)
    assert not errors, errors
    ctx.close()
