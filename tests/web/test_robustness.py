"""Concurrent edits end in a clear conflict (no lost write); a killed server loses no committed data."""

from __future__ import annotations

import os
import re
import signal

import httpx
import pytest

from .conftest import PASSWORD, csrf_of, free_port, make_case, start_server, stop_server

CONFLICT_TEXT = "changed by someone else"


def _edit_form(client, case_id):
    r = client.get(f"/cases/{case_id}/edit")
    assert r.status_code == 200
    version = int(re.search(r'name="version" value="(\d+)"', r.text).group(1))
    return version


def test_concurrent_page_edits_conflict(engine, client_for, api_for):
    ids = make_case(engine, through="patient")
    a, b = client_for("radiologist"), client_for("coordinator")
    va, vb = _edit_form(a, ids["case"]), _edit_form(b, ids["case"])
    assert va == vb
    r1 = a.post(f"/cases/{ids['case']}/edit", data={"csrf_token": csrf_of(a), "version": va,
                                                     "primary_cancer": "kidney", "sex": "female", "ecog": "2"},
                follow_redirects=False)
    assert r1.status_code == 303
    r2 = b.post(f"/cases/{ids['case']}/edit", data={"csrf_token": csrf_of(b), "version": vb,
                                                     "primary_cancer": "thyroid", "sex": "female", "ecog": "3"})
    assert r2.status_code == 409
    assert CONFLICT_TEXT in r2.text and "reload" in r2.text.lower()
    assert "Traceback" not in r2.text
    # the first write was kept, the second was not applied
    case = api_for("radiologist").get(f"/api/cases/{ids['case']}").json()
    assert case["primary_cancer"] == "kidney" and case["ecog"] == 2
    # after reloading, the second user can apply the change
    v2 = _edit_form(b, ids["case"])
    assert v2 == va + 1
    r3 = b.post(f"/cases/{ids['case']}/edit", data={"csrf_token": csrf_of(b), "version": v2,
                                                     "primary_cancer": "thyroid", "sex": "female", "ecog": "3"},
                follow_redirects=False)
    assert r3.status_code == 303
    assert api_for("radiologist").get(f"/api/cases/{ids['case']}").json()["primary_cancer"] == "thyroid"


def test_concurrent_procedure_log_conflict_api(engine, api_for):
    ids = make_case(engine, through="scheduled")
    api = api_for("radiologist")
    case = api.get(f"/api/cases/{ids['case']}").json()
    v = case["procedures"][0]["version"]
    pd = case["procedures"][0]["scheduled_date"]
    r1 = api.post(f"/api/procedures/{ids['procedure']}/log?expected_version={v}",
                  json={"procedure_date": pd, "cement_volume_ml": 3.2})
    assert r1.status_code == 200 and r1.json()["version"] == v + 1
    r2 = api_for("radiologist").post(f"/api/procedures/{ids['procedure']}/log?expected_version={v}",
                                     json={"procedure_date": pd, "cement_volume_ml": 9.9})
    assert r2.status_code == 409
    assert CONFLICT_TEXT in r2.json()["detail"]
    again = api.get(f"/api/cases/{ids['case']}").json()["procedures"][0]
    assert again["cement_volume_ml"] == 3.2


def test_validation_errors_are_clear_in_api(engine, api_for):
    ids = make_case(engine, through="done")
    api = api_for("radiologist")
    r = api.post("/api/follow-ups", json={"procedure_id": ids["procedure"], "timepoint": "3m",
                                          "visit_date": "2001-01-01", "pain_nrs": 3})
    assert r.status_code == 422 and "Traceback" not in r.text
    assert "before" in r.json()["detail"] or "procedure" in r.json()["detail"]
    r = api.post("/api/procedures", json={"decision_id": ids["decision"] + 10**6, "scheduled_date": "2030-01-01"})
    assert r.status_code == 404
    # cannot schedule without a validated decision
    ids2 = make_case(engine, through="decision")
    r = api.post("/api/procedures", json={"decision_id": ids2["decision"], "scheduled_date": "2030-01-01"})
    assert r.status_code == 422 and "validated" in r.json()["detail"]


@pytest.mark.slow
def test_killed_server_keeps_committed_data(backend_name, fresh_database):
    """SIGKILL the uvicorn process right after a committed write: after a restart the record is there."""
    from osteoplan.web import backend

    url = fresh_database(backend_name)
    eng = backend.init_engine(url)
    from osteoplan.workflow.db import session_factory, session_scope

    with session_scope(session_factory(eng)) as s:
        backend.create_user(s, None, "radiologist", PASSWORD.format(role="radiologist"), "radiologist", rounds=4)
    eng.dispose()
    port = free_port()
    proc = start_server(url, port)
    try:
        base = f"http://127.0.0.1:{port}"
        tok = httpx.post(f"{base}/api/token", json={"username": "radiologist",
                                                    "password": PASSWORD.format(role="radiologist")}).json()["access_token"]
        h = {"Authorization": f"Bearer {tok}"}
        created = []
        for i in range(5):
            r = httpx.post(f"{base}/api/cases", json={"primary_cancer": f"lung-{i}", "code": f"KILL-{i}"}, headers=h)
            assert r.status_code == 201, r.text
            created.append(r.json()["id"])
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
    finally:
        stop_server(proc)
    proc2 = start_server(url, port)
    try:
        for i, cid in enumerate(created):
            r = httpx.get(f"{base}/api/cases/{cid}", headers=h)  # same secret: the token is still valid
            assert r.status_code == 200, r.text
            assert r.json()["code"] == f"KILL-{i}" and r.json()["primary_cancer"] == f"lung-{i}"
    finally:
        stop_server(proc2)


def test_concurrent_follow_up_edits_conflict(engine, client_for, api_for):
    ids = make_case(engine, through="followup")
    url = f"/cases/{ids['case']}/follow-ups/{ids['follow_up']}/edit"
    a, b = client_for("radiologist"), client_for("coordinator")
    forms_ = []
    for c in (a, b):
        r = c.get(url)
        assert r.status_code == 200
        inputs = dict(re.findall(r'name="([a-z_]+)" (?:type="[a-z]+" )?value="([^"]*)"', r.text))
        forms_.append({"version": inputs["version"], "visit_date": inputs["visit_date"],
                       "pain_nrs": inputs["pain_nrs"], "timepoint": "1m"})
    fa, fb = forms_
    assert fa["version"] == fb["version"] and fa["pain_nrs"] == "2"
    ra = a.post(url, data={**fa, "pain_nrs": "4", "csrf_token": csrf_of(a)}, follow_redirects=False)
    assert ra.status_code == 303
    rb = b.post(url, data={**fb, "pain_nrs": "7", "csrf_token": csrf_of(b)})
    assert rb.status_code == 409 and CONFLICT_TEXT in rb.text
    fu = api_for("radiologist").get(f"/api/cases/{ids['case']}").json()["follow_ups"][0]
    assert fu["pain_nrs"] == 4  # the first write is kept, the second did not overwrite it
