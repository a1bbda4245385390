"""The coordinator clears a day's worklist in the demo, in headless Chromium (Debian's chromium + Playwright).

The demo data set (30 cases) gets four cases whose next step falls due today (a 3-month follow-up, a day-1
post-operative check, a consultation to book, a procedure to schedule). The coordinator logs in (home page: the
worklist with its counts), shows today's items, opens each "Do it" link, saves the form it leads to, and comes back
until the day's list is empty. Screenshots go to docs/screenshots/ with ``OSTEOPLAN_SCREENSHOTS=1`` (SQLite run).
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from .conftest import free_port, start_server, stop_server
from .test_browser import browser, shots  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser]


def _due_today(engine) -> dict:
    """Four cases whose next coordinator step is due today (service layer, actor = system)."""
    from sqlalchemy import select

    from osteoplan.workflow import models as m
    from osteoplan.workflow import service as sv
    from osteoplan.workflow.db import session_factory, session_scope

    today = dt.date.today()
    out = {}
    with session_scope(session_factory(engine)) as s:
        board = s.scalar(select(m.User).where(m.User.username == "board"))
        rad = s.scalar(select(m.User).where(m.User.username == "radiologist"))

        def case(code, site, meeting, step):
            p = sv.create_patient(s, None, {"code": code, "primary_cancer": "breast", "sex": "female"})
            les = sv.add_lesion(s, None, {"patient_id": p.id, "site_kind": "vertebra", "site": site,
                                          "lesion_type": "lytic"})
            d = sv.record_decision(s, None, {"patient_id": p.id, "lesion_id": les.id, "meeting_date": meeting,
                                             "question": "consolidation?", "decision_type": "cement_alone"},
                                   proposed_by=rad)
            sv.validate_decision(s, None, d.id, validated_by=board,
                                 at=dt.datetime.combine(meeting, dt.time(18), tzinfo=dt.timezone.utc))
            if step == "consultation":
                return p.id
            sv.record_consultation(s, None, {"patient_id": p.id, "decision_id": d.id, "consultation_date": meeting,
                                             "consent_obtained": True})
            if step == "schedule":
                return p.id
            x = sv.schedule_procedure(s, None, {"decision_id": d.id, "scheduled_date": step})
            sv.log_procedure(s, None, x.id, {"procedure_date": step, "cement_volume_ml": 4.0,
                                             "operators": ["Dr Demo Radiologist"]})
            return p.id

        out["consultation"] = case("DAY-CONSULT", "T9", today - dt.timedelta(days=14), "consultation")
        out["schedule"] = case("DAY-SCHEDULE", "L2", today - dt.timedelta(days=14), "schedule")
        out["follow_up"] = case("DAY-3M", "T12", today - dt.timedelta(days=100), today - dt.timedelta(days=91))
        out["post_op"] = case("DAY-POSTOP", "L4", today - dt.timedelta(days=10), today - dt.timedelta(days=1))
    return out


@pytest.fixture()
def demo_server(backend_name, fresh_database):
    from osteoplan.web import backend

    if backend_name != "sqlite":  # CI budget: the worklist queries run on PostgreSQL in test_worklist_web.py
        pytest.skip("the browser walk of the worklist runs on SQLite only (PostgreSQL: tests/web/test_worklist_web.py)")
    url = fresh_database(backend_name)
    eng = backend.init_engine(url)
    backend.seed_demo(eng, n_cases=30, rounds=4)
    ids = _due_today(eng)
    eng.dispose()
    port = free_port()
    proc = start_server(url, port)
    yield f"http://127.0.0.1:{port}", ids
    stop_server(proc)


def test_coordinator_clears_todays_worklist(browser, demo_server, shots):  # noqa: F811
    base, ids = demo_server
    today = dt.date.today().isoformat()
    page = browser.new_context(viewport={"width": 1360, "height": 900}).new_page()
    page.set_default_timeout(15000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/login")
    page.fill("input[name=username]", "coordinator")
    page.fill("input[name=password]", "coordinator-demo")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/cases$"))
    page.goto(f"{base}/")  # the home page of a coordinator is the worklist
    assert page.url.endswith("/worklist")
    for kind in ("board", "consultation", "schedule", "post_op", "follow_up"):
        assert page.locator(f"#count-{kind} .big").count() == 1
    page.screenshot(path=str(shots / "worklist-coordinator.png"), full_page=False)
    day = f"{base}/worklist?date_from={today}&date_to={today}"
    page.goto(day)
    rows = page.locator("tr.wl-item")
    start = rows.count()
    assert start >= 4
    codes = page.inner_text("table.worklist")
    for code in ("DAY-CONSULT", "DAY-SCHEDULE", "DAY-3M", "DAY-POSTOP"):
        assert code in codes
    page.screenshot(path=str(shots / "worklist-today.png"), full_page=True)
    done = 0
    while page.locator("tr.wl-item").count():
        row = page.locator("tr.wl-item").first
        kind = row.get_attribute("data-kind")
        row.locator("a.button").click()
        page.wait_for_load_state()
        if kind == "consultation":
            page.check("input[name=consent_obtained]")
        elif kind in ("follow_up", "post_op"):
            page.fill("input[name=pain_nrs]", "2")
        elif kind == "board":
            page.fill("textarea[name=question]", "consolidation?")
            page.select_option("select[name=decision_type]", "cement_alone")
        if done == 0:
            page.screenshot(path=str(shots / "worklist-form.png"), full_page=True)
        page.click("form.stack button[type=submit]")
        page.wait_for_load_state()
        assert page.locator(".flash.ok").count() == 1, page.inner_text("main")[:500]
        done += 1
        page.goto(day)
        assert page.locator("tr.wl-item").count() == start - done
        assert done <= start
    assert "Nothing to do with these filters" in page.inner_text("main")
    page.screenshot(path=str(shots / "worklist-cleared.png"), full_page=False)
    # the cleared items are recorded: the 3-month case now has its visit, the post-op case its day-1 check
    page.goto(f"{base}/cases/{ids['follow_up']}")
    assert "Follow-up 3m" in page.inner_text("ol.timeline")
    page.goto(f"{base}/cases/{ids['post_op']}")
    assert "Follow-up day1" in page.inner_text("ol.timeline")
    page.goto(f"{base}/cases/{ids['schedule']}")
    assert "Procedure scheduled" in page.inner_text("ol.timeline")
    page.screenshot(path=str(shots / "case-board-duties.png"), full_page=False)
    assert errors == []
