"""Role x route matrix: every route of the application, tried by every role (and anonymously).

- Every route either is in the short public list or declares an action through ``require()``.
- A role the permission table does not allow never gets a success (0 unauthorised successes):
  403 when logged in, 401 (API) or a redirect to the login page (pages) when anonymous.
- A role the table allows is never refused with 401/403, and every successful access to patient data
  leaves an audit record by that user (for case routes: about that case).
"""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from sqlalchemy import func, select

from osteoplan.web.auth import iter_routes, route_action
from osteoplan.web.permissions import PERMISSIONS, allowed
import json

from .conftest import ROLES, SAMPLE_PLAN, csrf_of, make_case

PUBLIC = {("GET", "/healthz"), ("GET", "/"), ("GET", "/login"), ("POST", "/login"), ("POST", "/logout"),
          ("POST", "/api/token"), ("GET", "/api/openapi.json")}
#: Routes that touch no patient data (so no audit record is expected).
NO_PATIENT_DATA = {("GET", "/cases/new")}
#: Routes that do not concern one case (no audit record about the fixture case is expected).
NOT_CASE = {"/users"}


def _version(engine, entity: str, rid: int) -> int:
    from osteoplan.workflow import models as m
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        return s.get(m.ENTITIES[entity], rid).version


def _audit_count(engine, user_id: int, patient_id: int | None = None) -> int:
    from osteoplan.workflow.models import AuditLog
    from sqlalchemy.orm import Session

    q = select(func.count()).select_from(AuditLog).where(AuditLog.user_id == user_id)
    if patient_id is not None:
        q = q.where(AuditLog.patient_id == patient_id)
    with Session(engine) as s:
        return s.scalar(q)


def _fixture_case(engine) -> dict:
    from osteoplan.workflow import service as sv
    from osteoplan.workflow.db import session_factory, session_scope

    ids = make_case(engine, through="followup", with_plan=True)
    with session_scope(session_factory(engine)) as s:
        d = sv.record_decision(s, None, {"patient_id": ids["case"], "lesion_id": ids["lesion"],
                                         "meeting_date": dt.date.today() - dt.timedelta(days=30),
                                         "question": "re-discuss", "decision_type": "radiotherapy"})
        ids["open_decision"] = d.id
    ids["job"] = _finished_job(engine, ids)
    ids["check"] = _finished_check(engine, ids)
    return ids


def _finished_check(engine, ids: dict) -> int:
    """A control-CT check (job of kind "verify") marked done, its figures stored with the procedure and a
    (stand-in) planned-vs-actual image in its folder."""
    import tempfile
    from pathlib import Path

    from osteoplan.workflow import jobs as q
    from osteoplan.workflow import service as sv
    from osteoplan.workflow.db import session_factory, session_scope

    res = {"stage": "pin", "tip_lps_mm": [1.0, 2.0, 3.0], "tip_to_plan_mm": 1.2, "angle_to_plan_deg": 2.5,
           "registration": {"residual_median_mm": 0.2, "surface_overlap": 0.95}, "instrument": {"diameter_mm": 2.0}}
    with session_scope(session_factory(engine)) as s:
        job = q.enqueue(s, None, ids["lesion"], "verify", None, {"kind": "verify", "stage": "pin", "ct": "ct.nii",
                                                                 "procedure_id": ids["procedure"],
                                                                 "saved_plan_id": ids["plan"], "out": "verify-1"})
        folder = Path(tempfile.mkdtemp(prefix="osteoplan-matrix-check-"))
        (folder / "verify-1").mkdir()
        (folder / "verify-1" / "verify.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        v = sv.record_verification(s, None, {"procedure_id": ids["procedure"], "saved_plan_id": ids["plan"],
                                             "job_id": job.id, "result": res})
        job.work_dir, job.state, job.attempts = str(folder), "done", 1
        job.options = {**job.options, "verification_id": v.id}
        return job.id


def _finished_job(engine, ids: dict) -> int:
    """A planning job marked done, whose plan folder holds a (stand-in) PDF report of the fixture's saved plan."""
    import tempfile
    from pathlib import Path

    from osteoplan.workflow import jobs as q
    from osteoplan.workflow import models as m
    from osteoplan.workflow.db import session_factory, session_scope

    with session_scope(session_factory(engine)) as s:
        job = q.enqueue(s, None, ids["lesion"], "c2-dens-anterior", None, {"report": True, "ct": "ct.nii.gz"})
        folder = Path(tempfile.mkdtemp(prefix="osteoplan-matrix-job-"))
        (folder / "plan-1").mkdir()
        (folder / "plan-1" / "plan.json").write_text(json.dumps(SAMPLE_PLAN))
        (folder / "plan-1" / "report.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
        job.work_dir, job.state, job.attempts, job.saved_plan_id = str(folder), "done", 1, ids["plan"]
        return job.id


def _nifti_header() -> bytes:
    """The 348-byte header of a NIfTI-1 file (what the upload checks; the worker would read the rest)."""
    import nibabel as nib
    import numpy as np

    img = nib.Nifti1Image(np.zeros((2, 2, 2), dtype=np.int16), np.eye(4))
    return img.header.binaryblock + b"\0" * 4 + np.zeros(8, dtype=np.int16).tobytes()


def _request_spec(method: str, path: str, ids: dict, engine, role: str | None = None) -> tuple[str, dict | None, dict | None]:
    """URL, form data (pages) and JSON body (API) for one route, with valid-looking content."""
    today = dt.date.today()
    d0 = today - dt.timedelta(days=200)
    url = (path.replace("{case_id}", str(ids["case"])).replace("{plan_id}", str(ids["plan"]))
           .replace("{procedure_id}", str(ids["procedure"])).replace("{consultation_id}", str(ids["consultation"]))
           .replace("{plot}", "pain").replace("{lesion_id}", str(ids["lesion"])).replace("{job_id}", str(ids["job"])).replace("{check_id}", str(ids["check"])).replace("{name}", "verify.png")
           .replace("{view}", "ap" if "/drr/" in path else "axial"))
    for slug, key in (("lesions", "lesion"), ("decisions", "decision"), ("consultations", "consultation"),
                      ("follow-ups", "follow_up"), ("adverse-events", "adverse_event")):
        if path.startswith(f"/cases/{{case_id}}/{slug}/{{record_id}}"):
            url = url.replace("{record_id}", str(ids[key]))
    if "/validate" in path:
        url = url.replace("{decision_id}", str(ids["open_decision"]))
    if method == "GET":
        if path.endswith("info-sheet.pdf"):
            url += "?lang=en"
        return url, None, None
    api = path.startswith("/api")
    pid = ids["procedure"]
    forms_ = {
        "/cases/new": {"primary_cancer": "lung", "sex": "male"},
        "/cases/{case_id}/edit": {"primary_cancer": f"lung ({role})", "sex": "female", "version": _version(engine, "patient", ids["case"])},
        "/cases/{case_id}/lesions/new": {"site_kind": "vertebra", "site": "T10", "lesion_type": "mixed"},
        "/cases/{case_id}/decisions/new": {"meeting_date": (today - dt.timedelta(days=20)).isoformat(), "question": "q?",
                                           "decision_type": "cement_alone", "lesion_id": ids["lesion"]},
        "/cases/{case_id}/decisions/{decision_id}/validate": {"version": _version(engine, "decision", ids["open_decision"])},
        "/cases/{case_id}/consultations/new": {"consultation_date": (d0 + dt.timedelta(days=6)).isoformat(),
                                               "decision_id": ids["decision"]},
        "/cases/{case_id}/procedures/new": {"decision_id": ids["decision"], "scheduled_date": today.isoformat()},
        "/cases/{case_id}/procedures/{procedure_id}/log": {
            "procedure_date": (d0 + dt.timedelta(days=10)).isoformat(), "cement_volume_ml": "2.5",
            "version": _version(engine, "procedure", pid)},
        "/cases/{case_id}/procedures/{procedure_id}/postop": {
            "discharge_date": (d0 + dt.timedelta(days=11)).isoformat(), "version": _version(engine, "procedure", pid)},
        "/cases/{case_id}/follow-ups/new": {"procedure_id": pid, "timepoint": {"radiologist": "3m"}.get(role, "6m"),
                                            "visit_date": (d0 + dt.timedelta(days=100)).isoformat(), "pain_nrs": "1"},
        "/cases/{case_id}/adverse-events/new": {"procedure_id": pid, "event_date": (d0 + dt.timedelta(days=10)).isoformat(),
                                                "grade": "1", "description": "small haematoma"},
        "/cases/{case_id}/lesions/{lesion_id}/plans/new": {"label": f"plan by {role}"},
        "/cases/{case_id}/lesions/{lesion_id}/plan-jobs/new": {"protocol": "c2-dens-anterior", "side": "best",
                                                              "report": "1", "source": "upload",
                                                              "confirm_identity": "1"},
        "/cases/{case_id}/plan-jobs/{job_id}/cancel": {},
        "/cases/{case_id}/plan-jobs/{job_id}/retry": {},
        "/cases/{case_id}/plans/{plan_id}/pacs-store": {},
        "/cases/{case_id}/procedures/{procedure_id}/verify/new": {"saved_plan_id": ids["plan"], "stage": "pin",
                                                                 "source": "upload", "confirm_identity": "1"},
        "/cases/{case_id}/checks/{check_id}/cancel": {},
        "/cases/{case_id}/lesions/{record_id}/edit": {"site_kind": "vertebra", "site": "C2", "lesion_type": "lytic",
                                                      "description": f"edited by {role}",
                                                      "version": _version(engine, "lesion", ids["lesion"])},
        "/cases/{case_id}/decisions/{record_id}/edit": {"question": f"edited by {role}", "decision_type": "screw_cement",
                                                        "version": _version(engine, "decision", ids["decision"])},
        "/cases/{case_id}/consultations/{record_id}/edit": {
            "consultation_date": (d0 + dt.timedelta(days=5)).isoformat(), "physician": f"Dr {role}",
            "consent_obtained": "on", "consent_date": (d0 + dt.timedelta(days=5)).isoformat(),
            "version": _version(engine, "consultation", ids["consultation"])},
        "/cases/{case_id}/follow-ups/{record_id}/edit": {
            "timepoint": "1m", "visit_date": (d0 + dt.timedelta(days=40)).isoformat(), "pain_nrs": "3",
            "notes": f"edited by {role}", "version": _version(engine, "follow_up", ids["follow_up"])},
        "/cases/{case_id}/adverse-events/{record_id}/edit": {
            "event_date": (d0 + dt.timedelta(days=10)).isoformat(), "grade": "2", "classification": "CIRSE 2017",
            "description": f"edited by {role}", "version": _version(engine, "adverse_event", ids["adverse_event"])},
        "/cases": {"q": "breast"},
        "/cases/{case_id}/lesions/{lesion_id}/pacs/pick": {"study_uid": "1.2.3", "series_uid": "1.2.3.4"},
        "/cases/{case_id}/lesions/{lesion_id}/pacs": {"study": "1.2.3"},
        "/users": {"username": f"user{secrets.token_hex(3)}", "password": "long-enough-pw", "role": "research"},
        # the plan is NOT CLEARED: approving needs its confirmation box (and "although newer" if a newer version exists)
        "/cases/{case_id}/plans/{plan_id}/approve": {"confirm_not_cleared": "1", "confirm_older": "1"},
        "/cases/{case_id}/delete": {"reason": "duplicate record (matrix test)", "version": _version(engine, "patient", ids["case"])},
    }
    bodies = {
        "/api/cases": {"primary_cancer": "kidney"},
        "/api/cases/search": {"search": "breast"},
        "/api/cases/{case_id}": {"version": _version(engine, "patient", ids["case"]), "changes": {"primary_cancer": f"kidney ({role})"}},
        "/api/cases/{case_id}/delete": {"reason": "duplicate (matrix test)"},
        "/api/lesions": {"patient_id": ids["case"], "site_kind": "bone", "site": "femur", "lesion_type": "lytic",
                         "mirels": {"site": "peritrochanteric", "size": ">2/3", "pain": "functional"}},
        "/api/plans": {"lesion_id": ids["lesion"], "plan": SAMPLE_PLAN, "label": "api plan"},
        "/api/decisions": {"patient_id": ids["case"], "meeting_date": (today - dt.timedelta(days=20)).isoformat(),
                           "question": "q?", "decision_type": "cement_alone", "lesion_id": ids["lesion"]},
        "/api/decisions/{decision_id}/validate": {"version": _version(engine, "decision", ids["open_decision"])},
        "/api/consultations": {"patient_id": ids["case"], "consultation_date": (d0 + dt.timedelta(days=6)).isoformat()},
        "/api/procedures": {"decision_id": ids["decision"], "scheduled_date": today.isoformat()},
        "/api/procedures/{procedure_id}/log": {"procedure_date": (d0 + dt.timedelta(days=10)).isoformat(),
                                               "cement_volume_ml": 2.5},
        "/api/procedures/{procedure_id}/post-op": {"discharge_date": (d0 + dt.timedelta(days=12)).isoformat()},
        "/api/follow-ups": {"procedure_id": pid, "timepoint": {"radiologist": "6m"}.get(role, "12m"), "visit_date": (d0 + dt.timedelta(days=190)).isoformat(),
                            "pain_nrs": 1},
        "/api/cases/{case_id}/plans/{plan_id}/evaluate": {k: SAMPLE_PLAN["trajectories"][0][k] for k in (
            "skin_entry_lps_mm", "bone_entry_lps_mm", "target_lps_mm")},
        "/api/cases/{case_id}/plans/{plan_id}/versions": {k: SAMPLE_PLAN["trajectories"][0][k] for k in (
            "skin_entry_lps_mm", "bone_entry_lps_mm", "target_lps_mm")},
        "/api/adverse-events": {"procedure_id": pid, "event_date": (d0 + dt.timedelta(days=11)).isoformat(), "grade": "2",
                                "description": "pain"},
    }
    if api:
        return url, None, bodies[path]
    return url, {k: str(v) for k, v in forms_[path].items()}, None


def test_every_route_is_public_or_declares_an_action(app):
    missing = []
    for method, path, route in iter_routes(app):
        if method == "MOUNT":
            continue
        if (method, path) not in PUBLIC and route_action(route) is None:
            missing.append(f"{method} {path}")
    assert missing == []
    # every action in the table is used by at least one route, and every route's action exists
    used = {route_action(r) for m_, p_, r in iter_routes(app) if m_ != "MOUNT"} - {None}
    # (case.identity is not a route: it decides whether identity fields are shown)
    assert used == set().union(*PERMISSIONS.values()) - {"case.identity"}


def test_role_route_matrix(app, engine, users, client_for, api_for):
    page_clients = {role: client_for(role) for role in ROLES}
    page_clients[None] = client_for(None)
    csrf = {role: csrf_of(c) for role, c in page_clients.items()}
    api_clients = {role: api_for(role) for role in ROLES}
    api_clients[None] = api_for(None)
    routes = [(m_, p_, route_action(r)) for m_, p_, r in iter_routes(app) if m_ != "MOUNT" and (m_, p_) not in PUBLIC]
    unauthorised_successes, wrongly_refused, unaudited, allowed_failed = [], [], [], []
    tried = allowed_ok = 0
    import time
    timing = {}
    shared = None
    for method, path, action in routes:
        t0 = time.perf_counter()
        # reads share one case; every writing route gets a fresh one
        if method != "GET" or shared is None:
            ids = _fixture_case(engine)
            if method == "GET":
                shared = ids
        else:
            ids = shared
        timing[("fixture", path)] = time.perf_counter() - t0
        # the deleting roles go last so the case still exists for the others
        order = sorted([None, *ROLES], key=lambda r: (r is not None and allowed(r, action) and "delete" in path,))
        for role in order:
            url, form, body = _request_spec(method, path, ids, engine, role)
            api = path.startswith("/api")
            c = (api_clients if api else page_clients)[role]
            before = _audit_count(engine, users[role]) if role else None
            if method == "GET":
                r = c.get(url, follow_redirects=False)
            elif api:
                r = c.request(method, url, json=body, follow_redirects=False)
            elif path.endswith(("/plan-jobs/new", "/verify/new")):
                r = c.post(url, data={**form, "csrf_token": csrf[role]}, follow_redirects=False,
                           files={"ct_file": ("ct.nii", _nifti_header(), "application/octet-stream")})
            elif path.endswith("/plans/new"):
                r = c.post(url, data={**form, "csrf_token": csrf[role]}, follow_redirects=False,
                           files={"plan_file": ("plan.json", json.dumps(SAMPLE_PLAN).encode(), "application/json")})
            else:
                r = c.request(method, url, data={**form, "csrf_token": csrf[role]}, follow_redirects=False)
            tried += 1
            timing[(method, path)] = timing.get((method, path), 0) + time.perf_counter() - t0
            t0 = time.perf_counter()
            ok = r.status_code < 400
            if role is None:
                login_redirect = r.status_code == 303 and r.headers.get("location", "").startswith("/login")
                if not (r.status_code == 401 or login_redirect):
                    unauthorised_successes.append(f"anonymous {method} {path} -> {r.status_code}")
                continue
            if not allowed(role, action):
                if r.status_code != 403:
                    unauthorised_successes.append(f"{role} {method} {path} -> {r.status_code}")
                continue
            if r.status_code in (401, 403):
                wrongly_refused.append(f"{role} {method} {path} -> {r.status_code} {r.text[:200]}")
                continue
            if role == "research" and path.endswith((".png", ".pdf", "/review", "/evaluate", "/versions")) \
                    and "/plans/" in path:
                assert r.status_code == 404  # plan geometry is not part of the pseudonymised view
                continue
            if ("/slices/" in path or "/drr/" in path) and r.status_code == 404 and "no CT to show" in r.text:
                continue  # the fixture's stand-in plan folder holds no CT (the slices are tested in test_plan_jobs)
            if path.endswith(("/evaluate", "/versions")) and path.startswith("/api") and r.status_code == 404 \
                    and "no CT to re-check" in r.text:
                continue  # likewise (the re-check is tested in test_adjust)
            if method == "GET" and r.status_code != 200 and not path.endswith("info-sheet.pdf"):
                wrongly_refused.append(f"{role} {method} {path} -> {r.status_code} {r.text[:300]}")
            if not ok:
                allowed_failed.append(f"{role} {method} {path} -> {r.status_code}")
            if ok:
                allowed_ok += 1
                if (method, path) not in NO_PATIENT_DATA:
                    after = _audit_count(engine, users[role])
                    if after <= before:
                        unaudited.append(f"{role} {method} {path}")
                    if "{case_id}" in path and _audit_count(engine, users[role], ids["case"]) == 0:
                        unaudited.append(f"{role} {method} {path} (no record about the case)")
    import os
    if os.environ.get("MATRIX_TIMING"):
        for k, v in sorted(timing.items(), key=lambda kv: -kv[1])[:15]:
            print(f"{v:6.2f} s  {k}")
    print(f"\nrole x route matrix: {len(routes)} routes x {len(ROLES) + 1} principals = {tried} requests; "
          f"{allowed_ok} allowed successes; {len(unauthorised_successes)} unauthorised successes")
    if os.environ.get("MATRIX_TIMING"):
        print("\n".join(allowed_failed))
    assert unauthorised_successes == []
    assert wrongly_refused == []
    # allowed requests succeed, except repeating a one-time action (validating an already validated decision) and
    # searching and picking a CT in the PACS, which need a PACS (502 here; tests/web/test_pacs_pages.py)
    assert [f for f in allowed_failed if "/validate" not in f and not f.split(" ")[2].endswith(("/pacs", "/pacs/pick"))] \
        == []
    assert unaudited == []
    assert tried == len(routes) * (len(ROLES) + 1)


def test_research_api_case_is_pseudonymised(engine, api_for):
    ids = make_case(engine, through="followup")
    case = api_for("research").get(f"/api/cases/{ids['case']}").json()
    assert case["pseudonymised"] is True and "identity" not in case
    text = str(case)
    assert "Testname" not in text and "H-998877" not in text
    full = api_for("coordinator").get(f"/api/cases/{ids['case']}").json()
    assert full["identity"]["family_name"] == "Testname"


@pytest.mark.parametrize("role", ["research", "coordinator"])
def test_csrf_required_for_cookie_api_writes(client_for, role):
    c = client_for(role)
    r = c.post("/api/cases", json={"primary_cancer": "lung"})
    assert r.status_code == 403
