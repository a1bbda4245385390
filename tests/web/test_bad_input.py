"""Bad input through the JSON API and the forms: clear 4xx answers, never a 500 (review of issue 7)."""

from __future__ import annotations

import logging
import sys

import pytest

from .conftest import csrf_of, make_case

HUGE_ID = "99999999999999999999"


def _version(api, case_id):
    return api.get(f"/api/cases/{case_id}").json()["version"]


@pytest.mark.parametrize("changes, message", [
    ({"karnofsky": [1, 2]}, "karnofsky must be a whole number"),
    ({"ecog": True}, "ecog must be a whole number"),
    ({"ecog": 2.5}, "ecog must be a whole number"),
    ({"ecog": "abc"}, "ecog must be a whole number"),
    ({"date_of_death": 5}, "date of death is not a date"),
    ({"birth_date": {"a": 1}}, "birth date is not a date"),
    ({"sex": 3}, "sex must be text"),
    ({"family_name": "x" * 100_000}, "family name is too long (100000 characters; at most 200)"),
    ({"primary_cancer": "x" * 121}, "primary cancer is too long (121 characters; at most 120)"),
])
def test_api_edit_with_wrong_types_is_422(engine, api_for, changes, message):
    ids = make_case(engine, through="patient")
    api = api_for("radiologist")
    v = _version(api, ids["case"])
    r = api.patch(f"/api/cases/{ids['case']}", json={"version": v, "changes": changes})
    assert r.status_code == 422, r.text
    assert message in r.json()["detail"]
    assert _version(api, ids["case"]) == v  # nothing written


def test_api_edit_converts_integral_values(engine, api_for):
    ids = make_case(engine, through="patient")
    api = api_for("radiologist")
    r = api.patch(f"/api/cases/{ids['case']}", json={"version": _version(api, ids["case"]),
                                                     "changes": {"ecog": 2.0, "karnofsky": "70"}})
    assert r.status_code == 200, r.text
    case = api.get(f"/api/cases/{ids['case']}").json()
    assert (case["ecog"], case["karnofsky"]) == (2, 70)


def test_oversized_text_on_create_is_422(api_for):
    api = api_for("radiologist")
    r = api.post("/api/cases", json={"primary_cancer": "x" * 200_000})
    assert r.status_code == 422 and "at most 120" in r.json()["detail"]
    r = api.post("/api/cases", json={"primary_cancer": "lung", "family_name": "y" * 5000})
    assert r.status_code == 422 and "family name is too long" in r.json()["detail"]


def test_ids_beyond_the_database_range_are_404(engine, api_for, client_for):
    ids = make_case(engine, through="scheduled")
    api = api_for("radiologist")
    for path in (f"/api/cases/{HUGE_ID}", f"/api/cases/{HUGE_ID}/fhir", f"/api/consultations/{HUGE_ID}/info-sheet.pdf",
                 "/api/cases/2147483648", "/api/cases/2147483648/fhir"):  # beyond PostgreSQL INTEGER
        r = api.get(path)
        assert r.status_code == 404, (path, r.status_code, r.text[:200])
    r = api.post(f"/api/procedures/{HUGE_ID}/log", json={"procedure_date": "2025-01-01"})
    assert r.status_code == 404
    r = api.post("/api/follow-ups", json={"procedure_id": int(HUGE_ID), "timepoint": "1m", "visit_date": "2025-01-01"})
    assert r.status_code in (404, 422) and "Unexpected" not in r.text
    page = client_for("coordinator")
    assert page.get(f"/cases/{HUGE_ID}").status_code == 404
    r = page.post(f"/cases/{ids['case']}/follow-ups/new", data={"csrf_token": csrf_of(page), "procedure_id": HUGE_ID,
                                                                "timepoint": "1m", "visit_date": "2025-01-01"})
    assert r.status_code == 404 and "Unexpected" not in r.text


def test_search_terms_travel_in_the_body_not_the_url(engine, api_for, client_for):
    ids = make_case(engine, through="patient")
    rad, res = api_for("radiologist"), api_for("research")
    r = rad.get("/api/cases?search=Testname")
    assert r.status_code == 422 and "/api/cases/search" in r.json()["detail"]
    found = rad.post("/api/cases/search", json={"search": "testname", "limit": 500}).json()
    assert ids["case"] in [c["id"] for c in found["items"]]
    assert all(c["display_name"] == "Testname Alice" for c in found["items"])
    # research cannot search by name (identity is not matched) and sees no name
    assert res.post("/api/cases/search", json={"search": "testname"}).json()["total"] == 0
    assert rad.post("/api/cases/search", json={"search": "x" * 101}).status_code == 422
    page = client_for("coordinator")
    html = page.get("/cases").text
    assert 'method="post" action="/cases"' in html and 'method="get"' not in html
    r = page.post("/cases", data={"csrf_token": csrf_of(page), "q": "testname"})
    assert r.status_code == 200 and f'href="/cases/{ids["case"]}"' in r.text and "Testname" in r.text
    assert page.post("/cases", data={"q": "testname"}).status_code == 403  # no CSRF token
    research = client_for("research")
    r = research.post("/cases", data={"csrf_token": csrf_of(research), "q": "testname"})
    assert r.status_code == 200 and "Testname" not in r.text


def test_serve_log_hides_tracebacks(monkeypatch):
    from osteoplan.web.cli import HideTracebacks

    monkeypatch.delenv("OSTEOPLAN_DEBUG", raising=False)
    try:
        raise ValueError("invalid literal for int(): 'Dupont'")
    except ValueError:
        rec = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application", (),
                                sys.exc_info())
    assert HideTracebacks().filter(rec) is True
    text = logging.Formatter().format(rec)
    assert "Dupont" not in text and "Traceback" not in text and "unhandled ValueError" in text


def test_a_logged_out_session_cookie_is_refused(app, client_for):
    from fastapi.testclient import TestClient

    c = client_for("coordinator")
    assert c.get("/cases", follow_redirects=False).status_code == 200
    saved = dict(c.cookies)
    assert c.post("/logout", data={"csrf_token": csrf_of(c)}, follow_redirects=False).status_code == 303
    with TestClient(app, raise_server_exceptions=False, cookies=saved) as replay:
        r = replay.get("/cases", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        assert replay.get("/api/cases").status_code == 401
    # a new login works again
    c2 = client_for("coordinator")
    assert c2.get("/cases", follow_redirects=False).status_code == 200
