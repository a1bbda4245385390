"""A coordinator's day: open a case, record the tumour-board decision and the consultation, schedule the
procedure (after a physician validated the decision), record follow-up calls (review of issue 7)."""

from __future__ import annotations

import datetime as dt
import re

from .conftest import csrf_of, make_case


def test_coordinator_schedules_a_procedure_but_cannot_log_it(engine, client_for, api_for):
    ids = make_case(engine, through="consultation")
    co = client_for("coordinator")
    case_url = f"/cases/{ids['case']}"
    assert f'href="{case_url}/procedures/new"' in co.get(case_url).text  # the button is shown
    day = (dt.date.today() + dt.timedelta(days=7)).isoformat()
    r = co.post(f"{case_url}/procedures/new", data={"csrf_token": csrf_of(co), "decision_id": ids["decision"],
                                                      "scheduled_date": day}, follow_redirects=False)
    assert r.status_code == 303, r.text[:500]
    case = api_for("coordinator").get(f"/api/cases/{ids['case']}").json()
    proc = case["procedures"][0]
    assert (proc["status"], proc["scheduled_date"]) == ("scheduled", day)
    # logging what was done stays with the radiologist
    r = co.post(f"{case_url}/procedures/{proc['id']}/log", data={"csrf_token": csrf_of(co), "procedure_date": day})
    assert r.status_code == 403
    assert not re.search(rf'href="{case_url}/procedures/{proc["id"]}/log"', co.get(case_url).text)
    # the API too; a tumour-board member may not schedule
    api = api_for("coordinator")
    assert api.post("/api/procedures", json={"decision_id": ids["decision"], "scheduled_date": day}).status_code == 201
    assert api_for("tumour_board").post("/api/procedures", json={"decision_id": ids["decision"],
                                                                  "scheduled_date": day}).status_code == 403
