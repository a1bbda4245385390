"""Basic behaviour of the pages: login, CSRF, error pages, pseudonymisation, forms re-shown on bad input."""

from __future__ import annotations

import re

from .conftest import PASSWORD, csrf_of, make_case


def test_login_wrong_password_then_right(client_for):
    c = client_for(None)
    r = c.get("/cases", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    tok = csrf_of(c)
    r = c.post("/login", data={"username": "radiologist", "password": "nope-nope", "csrf_token": tok})
    assert r.status_code == 401
    assert "wrong password" in r.text
    r = c.post("/login", data={"username": "radiologist", "password": PASSWORD.format(role="radiologist"),
                               "csrf_token": tok}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/cases"
    r = c.get("/cases")
    assert r.status_code == 200 and "Cases" in r.text and "radiologist" in r.text


def test_login_without_csrf_is_refused(client_for):
    c = client_for(None)
    r = c.post("/login", data={"username": "radiologist", "password": PASSWORD.format(role="radiologist")})
    assert r.status_code == 403
    assert "security token" in r.text
    assert "Traceback" not in r.text


def test_form_post_without_csrf_is_refused(client_for):
    c = client_for("radiologist")
    r = c.post("/cases/new", data={"primary_cancer": "lung"})
    assert r.status_code == 403


def test_logout(client_for):
    c = client_for("coordinator")
    tok = csrf_of(c)
    r = c.post("/logout", data={"csrf_token": tok}, follow_redirects=False)
    assert r.status_code == 303
    assert c.get("/cases", follow_redirects=False).status_code == 303


def test_404_page_and_api_404(client_for, api_for):
    c = client_for("radiologist")
    r = c.get("/cases/99999999")
    assert r.status_code == 404 and "Not found" in r.text and "Traceback" not in r.text
    r = c.get("/no/such/page")
    assert r.status_code == 404
    r = api_for("radiologist").get("/api/cases/99999999")
    assert r.status_code == 404 and r.json()["error"] == "Not found"


def test_research_sees_pseudonymised_case(engine, client_for):
    ids = make_case(engine, through="followup")
    r = client_for("research").get(f"/cases/{ids['case']}")
    assert r.status_code == 200
    assert "pseudonymised view" in r.text
    assert "Testname" not in r.text and "H-998877" not in r.text
    r = client_for("radiologist").get(f"/cases/{ids['case']}")
    assert "Testname" in r.text and "H-998877" in r.text
    rl = client_for("research").get("/cases?q=breast")
    assert "Testname" not in rl.text


def test_invalid_form_is_shown_again_with_message(engine, client_for):
    ids = make_case(engine, through="done")
    c = client_for("radiologist")
    tok = csrf_of(c)
    r = c.post(f"/cases/{ids['case']}/follow-ups/new",
               data={"csrf_token": tok, "procedure_id": str(ids["procedure"]), "timepoint": "3m",
                     "visit_date": "2020-01-01", "pain_nrs": "14"})
    assert r.status_code == 422
    assert "Not saved" in r.text
    assert 'value="14"' in r.text  # the user's input is kept
    assert "Traceback" not in r.text


def test_plan_key_numbers_and_image(engine, client_for):
    ids = make_case(engine, through="lesion", with_plan=True)
    c = client_for("radiologist")
    r = c.get(f"/cases/{ids['case']}")
    assert "4.0 × 34.0 mm" in r.text
    assert "not assessed (not segmented)" in r.text  # carotid was not segmented: never shown as clear
    img = c.get(f"/cases/{ids['case']}/plans/{ids['plan']}.png")
    assert img.status_code == 200 and img.content[:8] == b"\x89PNG\r\n\x1a\n"
    # a plan of another case is not reachable through this case's URL
    other = make_case(engine, through="patient")
    assert c.get(f"/cases/{other['case']}/plans/{ids['plan']}.png").status_code == 404


def test_plan_upload_checks_the_schema(engine, client_for):
    import json

    from .conftest import SAMPLE_PLAN

    ids = make_case(engine, through="lesion")
    c = client_for("radiologist")
    url = f"/cases/{ids['case']}/lesions/{ids['lesion']}/plans/new"
    assert c.get(url).status_code == 200
    bad = c.post(url, data={"csrf_token": csrf_of(c), "label": "x"},
                 files={"plan_file": ("plan.json", b'{"feasible": true}', "application/json")})
    assert bad.status_code == 422 and "not a valid plan.json" in bad.text
    ok = c.post(url, data={"csrf_token": csrf_of(c), "label": "right lateral"}, follow_redirects=False,
                files={"plan_file": ("plan.json", json.dumps(SAMPLE_PLAN).encode(), "application/json")})
    assert ok.status_code == 303
    page = c.get(f"/cases/{ids['case']}").text
    assert "right lateral" in page and "83.9 mm" in page  # total depth from the plan


def test_openapi_schema_lists_the_api(client_for):
    schema = client_for(None).get("/api/openapi.json").json()
    paths = schema["paths"]
    for p in ("/api/token", "/api/cases", "/api/cases/{case_id}", "/api/decisions/{decision_id}/validate",
              "/api/procedures/{procedure_id}/log", "/api/follow-ups", "/api/stats", "/api/cases/{case_id}/fhir"):
        assert p in paths, p
    assert not any(p.startswith("/cases") for p in paths)  # pages are not part of the API schema
    # request bodies are the workflow input models
    assert "FollowUpIn" in schema["components"]["schemas"]


def test_stats_csv_and_fhir_download(engine, client_for):
    ids = make_case(engine, through="followup")
    c = client_for("radiologist")
    r = c.get("/stats.csv?table=technical_success")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    header, row = r.text.splitlines()[:2]
    assert header == "procedures,success,failure,unknown,rate_percent"
    assert int(row.split(",")[0]) >= 1
    assert c.get("/stats.csv?table=nope").status_code == 404
    f = c.get(f"/cases/{ids['case']}/fhir.json")
    assert f.status_code == 200
    bundle = f.json()
    assert bundle["resourceType"] == "Bundle"
    assert "Testname" not in f.text and "H-998877" not in f.text  # pseudonymised export


def test_audit_record_says_who_what_where(engine, users, client_for):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from osteoplan.workflow.models import AuditLog

    ids = make_case(engine, through="lesion")
    c = client_for("tumour_board")
    assert c.get(f"/cases/{ids['case']}").status_code == 200
    with Session(engine) as s:
        rec = s.scalars(select(AuditLog).where(AuditLog.user_id == users["tumour_board"])
                        .order_by(AuditLog.id.desc())).first()
    assert (rec.action, rec.entity, rec.patient_id) == ("read", "patient", ids["case"])
    assert rec.path == f"/cases/{ids['case']}" and rec.role == "tumour_board"
    # the admin sees it in the audit log page
    page = client_for("admin").get("/audit").text
    assert f"/cases/{ids['case']}" in page


def test_repeated_failed_logins_are_paused(engine, app, client_for):
    from osteoplan.web import backend
    from osteoplan.workflow.db import session_factory, session_scope

    name = "throttle-test-user"
    with session_scope(session_factory(engine)) as s:
        backend.create_user(s, None, name, "right-password-1", "coordinator", rounds=4)
    c = client_for(None)
    tok = csrf_of(c)
    for _ in range(app.state.login_throttle.max_failures):
        r = c.post("/login", data={"username": name, "password": "wrong-password", "csrf_token": tok})
        assert r.status_code == 401
    r = c.post("/login", data={"username": name, "password": "right-password-1", "csrf_token": tok})
    assert r.status_code == 429 and "try again" in r.text and int(r.headers["Retry-After"]) > 0
    # the API token endpoint shares the same lock-out
    assert c.post("/api/token", json={"username": name, "password": "right-password-1"}).status_code == 429
    # other accounts are not affected
    r = c.post("/login", data={"username": "coordinator", "password": PASSWORD.format(role="coordinator"),
                               "csrf_token": tok}, follow_redirects=False)
    assert r.status_code == 303


def test_deactivated_account_loses_its_session(engine, users, client_for):
    from osteoplan.web import backend
    from osteoplan.workflow import service as sv
    from osteoplan.workflow.db import session_factory, session_scope
    from osteoplan.workflow.models import User

    with session_scope(session_factory(engine)) as s:
        u = backend.create_user(s, None, "leaver", "leaver-password", "radiologist", rounds=4)
    c = client_for(None)
    tok = csrf_of(c)
    assert c.post("/login", data={"username": "leaver", "password": "leaver-password", "csrf_token": tok},
                  follow_redirects=False).status_code == 303
    assert c.get("/cases").status_code == 200
    with session_scope(session_factory(engine)) as s:
        user = s.get(User, u.id)
        sv.update_record(s, None, "user", u.id, {"active": False}, expected_version=user.version)
    r = c.get("/cases", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_unexpected_error_is_a_page_without_traceback(client_for, monkeypatch):
    from osteoplan.web import backend

    def boom(*a, **k):
        raise RuntimeError("secret internal detail Testname")

    monkeypatch.setattr(backend, "statistics", boom)
    r = client_for("radiologist").get("/stats")
    assert r.status_code == 500
    assert "Unexpected error" in r.text and "nothing was saved" in r.text
    assert "Traceback" not in r.text and "secret internal detail" not in r.text
