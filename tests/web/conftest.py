"""Fixtures of the web tests: one database per backend (SQLite file; PostgreSQL when
``OSTEOPLAN_TEST_PG_URL`` is set, else skipped with a reason), users for every role, logged-in clients.

Every test that uses ``app``/``client_for``/``api_for`` runs once per backend.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

# A fixed identity key for the tests (never the user's key file).
os.environ.setdefault("OSTEOPLAN_IDENTITY_KEY", base64.urlsafe_b64encode(b"osteoplan-web-tests-identity-key").decode())

ROLES = ("radiologist", "tumour_board", "coordinator", "admin", "research")
PASSWORD = "correct-horse-{role}"
REPO = Path(__file__).resolve().parents[2]


def _pg_database(base_url: str, name: str, create: bool) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(base_url)
    conninfo = dict(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username, dbname=u.database)
    if u.password:
        conninfo["password"] = u.password
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')
        else:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_url_or_skip() -> str:
    url = os.environ.get("OSTEOPLAN_TEST_PG_URL")
    if not url:
        pytest.skip("OSTEOPLAN_TEST_PG_URL is not set: no PostgreSQL server for this run (scripts/test starts one)")
    return url


@pytest.fixture(scope="session")
def fresh_database(tmp_path_factory):
    """Factory: ``fresh_database(backend) -> url`` of a new empty database (dropped at the end)."""
    created: list[tuple[str, str]] = []

    def make(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp('db')}/web.db"
        base = pg_url_or_skip()
        from sqlalchemy.engine import make_url

        name = f"osteoplan_web_{os.getpid()}_{secrets.token_hex(3)}"
        _pg_database(base, name, create=True)
        created.append((base, name))
        return make_url(base).set(database=name).render_as_string(hide_password=False)

    yield make
    for base, name in created:
        try:
            _pg_database(base, name, create=False)
        except Exception:
            pass


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend_name(request):
    return request.param


@pytest.fixture(scope="session")
def db_url(backend_name, fresh_database):
    return fresh_database(backend_name)


@pytest.fixture(scope="session")
def engine(db_url):
    from osteoplan.web import backend

    eng = backend.init_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def users(engine):
    """One account per role: username = role, password = PASSWORD.format(role=role) (bcrypt cost 4 for speed)."""
    from osteoplan.web import backend
    from osteoplan.workflow.db import session_factory, session_scope

    out = {}
    with session_scope(session_factory(engine)) as s:
        for role in ROLES:
            u = backend.create_user(s, None, role, PASSWORD.format(role=role), role, display_name=f"Dr {role.title()}",
                                    rounds=4)
            out[role] = u.id
    return out


@pytest.fixture(scope="session")
def app(engine, db_url, users):
    from osteoplan.web.app import create_app
    from osteoplan.web.settings import Settings

    return create_app(Settings(database_url=db_url, secret_key="test-secret-" + "x" * 40), engine=engine)


def login(client, role: str, password: str | None = None):
    """Log *client* in through the login form (CSRF token taken from the page)."""
    r = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
    r = client.post("/login", data={"username": role, "password": password or PASSWORD.format(role=role),
                                    "csrf_token": token, "next": "/cases"}, follow_redirects=False)
    assert r.status_code == 303, r.text[:500]
    return client


def csrf_of(client) -> str:
    """The CSRF token of the client's session (read from a page)."""
    r = client.get("/login")
    return re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)


@pytest.fixture()
def client_for(app):
    """Factory: ``client_for(role)`` -> a logged-in TestClient (or anonymous with ``None``)."""
    from fastapi.testclient import TestClient

    clients = []

    def make(role: str | None):
        c = TestClient(app, raise_server_exceptions=False)
        clients.append(c)
        if role:
            login(c, role)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture(scope="session")
def tokens(app):
    from fastapi.testclient import TestClient

    out = {}
    with TestClient(app) as c:
        for role in ROLES:
            r = c.post("/api/token", json={"username": role, "password": PASSWORD.format(role=role)})
            assert r.status_code == 200, r.text
            out[role] = r.json()["access_token"]
    return out


@pytest.fixture()
def api_for(app, tokens):
    """Factory: ``api_for(role)`` -> a TestClient sending that role's bearer token."""
    from fastapi.testclient import TestClient

    clients = []

    def make(role: str | None):
        c = TestClient(app, raise_server_exceptions=False)
        if role:
            c.headers["Authorization"] = f"Bearer {tokens[role]}"
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def make_case(engine, *, through: str = "followup", code: str | None = None, lesion_site: str = "C2",
              with_plan: bool = False) -> dict:
    """Create a case through the service (actor = system) up to stage *through*; returns the ids.

    Stages: "patient", "lesion", "decision", "validated", "consultation", "scheduled", "done", "followup".
    """
    import datetime as dt

    from osteoplan.workflow import service as sv
    from osteoplan.workflow.db import session_factory, session_scope
    from osteoplan.workflow.models import User
    from sqlalchemy import select

    stages = ["patient", "lesion", "decision", "validated", "consultation", "scheduled", "done", "followup"]
    upto = stages.index(through)
    today = dt.date.today()
    d0 = today - dt.timedelta(days=200)
    ids: dict = {}
    with session_scope(session_factory(engine)) as s:
        p = sv.create_patient(s, None, {"code": code, "primary_cancer": "breast", "family_name": "Testname",
                                        "given_name": "Alice", "hospital_id": "H-998877", "sex": "female",
                                        "birth_year": 1960, "ecog": 1})
        ids["case"] = p.id
        if upto >= 1:
            les = sv.add_lesion(s, None, {"patient_id": p.id, "site_kind": "vertebra", "site": lesion_site,
                                          "lesion_type": "lytic", "sins": {"pain": "mechanical", "alignment": "normal",
                                                                           "collapse": "none", "posterolateral": "none"}})
            ids["lesion"] = les.id
            if with_plan:
                pl = sv.attach_plan(s, None, {"lesion_id": les.id, "plan": SAMPLE_PLAN, "label": "test plan"})
                ids["plan"] = pl.id
        if upto >= 2:
            d = sv.record_decision(s, None, {"patient_id": p.id, "lesion_id": ids["lesion"], "meeting_date": d0,
                                             "question": "consolidate?", "decision_type": "screw_cement",
                                             "specialties_present": ["oncology", "radiotherapy"]})
            ids["decision"] = d.id
        if upto >= 3:
            board = s.scalar(select(User).where(User.role == "tumour_board"))
            sv.validate_decision(s, board, d.id)
        if upto >= 4:
            c = sv.record_consultation(s, None, {"patient_id": p.id, "decision_id": d.id,
                                                 "consultation_date": d0 + dt.timedelta(days=5),
                                                 "consent_obtained": True, "consent_date": d0 + dt.timedelta(days=5)})
            ids["consultation"] = c.id
        if upto >= 5:
            pr = sv.schedule_procedure(s, None, {"decision_id": d.id, "scheduled_date": d0 + dt.timedelta(days=10)})
            ids["procedure"] = pr.id
        if upto >= 6:
            sv.log_procedure(s, None, pr.id, {"procedure_date": d0 + dt.timedelta(days=10), "cement_volume_ml": 3.0,
                                              "screws": [{"diameter_mm": 4.0, "length_mm": 34}],
                                              "hydrodissection_volume_ml": 220, "technical_success": True})
        if upto >= 7:
            f = sv.record_follow_up(s, None, {"procedure_id": pr.id, "timepoint": "1m",
                                              "visit_date": d0 + dt.timedelta(days=40), "pain_nrs": 2})
            ids["follow_up"] = f.id
            a = sv.record_adverse_event(s, None, {"procedure_id": pr.id, "event_date": d0 + dt.timedelta(days=10),
                                                  "grade": "1", "description": "puncture-site haematoma"})
            ids["adverse_event"] = a.id
    return ids


SAMPLE_PLAN = {
    "schema_version": "1.0", "osteoplan_version": "0.1.0", "created_utc": "2026-01-01T00:00:00Z",
    "protocol_name": "c2-lateral", "protocol_version": "1", "side_requested": "best", "side": "right",
    "feasible": True, "assessed": ["spinal_canal", "vertebral_artery_right"],
    "ct": {"shape_kji": [100, 256, 256], "spacing_mm": [1.0, 0.5, 0.5],
           "affine": [[1, 0, 0, -64], [0, 0.5, 0, -64], [0, 0, 0.5, -30], [0, 0, 0, 1]]},
    "trajectories": [{
        "rank": 1, "side": "right", "skin_entry_lps_mm": [-60.0, -20.0, 10.0], "bone_entry_lps_mm": [-8.0, -10.0, 12.0],
        "target_lps_mm": [0.0, 0.0, 40.0], "skin_entry_voxel_kji": [40, 88, 8], "bone_entry_voxel_kji": [42, 108, 112],
        "target_voxel_kji": [70, 128, 128], "direction_unit": [0.8, 0.26, 0.54],
        "depth_skin_to_bone_mm": 53.0, "depth_bone_to_target_mm": 30.9,
        "depth_total_mm": 83.9, "angle_craniocaudal_deg": 35.0, "angle_mediolateral_deg": 60.0,
        "screw": {"diameter_mm": 4.0, "length_mm": 34.0, "thread_mm": 12.0, "catalogue_ref": "CS-4.0-34"},
        "containment_min_margin_mm": 1.2, "soft_tissue_depth_mm": 50.0, "score": 1.0,
        "clearances": [
            {"structure": "spinal_canal", "category": "hard", "margin_mm": 3.0, "clearance_mm": 6.5, "status": "pass",
             "segmented": True},
            {"structure": "carotid_artery_right", "category": "displaceable", "margin_mm": 5.0, "clearance_mm": None,
             "status": "not_assessed", "segmented": False}],
    }],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db_url: str, port: int, *, secret: str = "server-secret-" + "y" * 40, env_extra: dict | None = None):
    """Start ``uvicorn`` serving the app on 127.0.0.1:*port* in a subprocess; waits until /healthz answers."""
    import httpx

    env = dict(os.environ, OSTEOPLAN_WEB_DB_URL=db_url, OSTEOPLAN_WEB_SECRET=secret, PYTHONUNBUFFERED="1")
    env.update(env_extra or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "osteoplan.web.asgi:app", "--factory", "--host", "127.0.0.1", "--port",
         str(port), "--log-level", "warning", "--no-access-log", "--no-proxy-headers"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(REPO))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"server exited early ({proc.returncode}): {out[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start within 60 s")


def stop_server(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
