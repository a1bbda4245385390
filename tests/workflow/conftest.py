"""Fixtures of the registry tests: every test runs on SQLite and, when ``OSTEOPLAN_TEST_PG_URL`` is set, on
PostgreSQL, each time on a clean schema built by the Alembic migrations."""

from __future__ import annotations

import datetime as dt
import os

import pytest

# A fixed test key: identity fields are encrypted with it (never the developer's own key file).
os.environ.setdefault("OSTEOPLAN_IDENTITY_KEY", "uQeW0nD2PlL4b1cV6hq9VtGmXkS2r5yA8zB3jF7eN0o=")

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
D = dt.date


def reset_postgres(url: str) -> None:
    """Drop and recreate the public schema (a clean database for one test)."""
    from sqlalchemy import create_engine

    eng = create_engine(url)
    with eng.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    eng.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """URL of a clean, migrated database on each backend."""
    from osteoplan.workflow.db import init_db

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        url = os.environ.get("OSTEOPLAN_TEST_PG_URL")
        if not url:
            pytest.skip("OSTEOPLAN_TEST_PG_URL is not set (scripts/test starts a throw-away PostgreSQL and sets it)")
        reset_postgres(url)
    init_db(url)
    return url


@pytest.fixture
def engine(db_url):
    from osteoplan.workflow.db import make_engine

    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def factory(engine):
    from osteoplan.workflow.db import session_factory

    return session_factory(engine)


@pytest.fixture
def session(factory):
    s = factory()
    yield s
    s.rollback()
    s.close()


@pytest.fixture
def users(session):
    """One committed account per role (bcrypt cost 4 to keep tests fast)."""
    from osteoplan.workflow import service as sv

    out = {}
    for name, role in [("admin", "admin"), ("rad", "radiologist"), ("board", "tumour_board"),
                       ("coord", "coordinator"), ("res", "research")]:
        out[name] = sv.create_user(session, None, {"username": name, "password": f"{name}-password",
                                                   "role": role, "display_name": f"Dr {name}"}, rounds=4)
    session.commit()
    return out


def make_case(s, users, *, meeting=D(2025, 3, 4), site="C2", kind="vertebra", decision="screw_cement",
              validate=True, consult=True, schedule=True, log=None, identity=True):
    """Build a case step by step through the service (committing), returning the ids."""
    from osteoplan.workflow import service as sv

    rad, board = users["rad"], users["board"]
    ids = {}
    p = sv.create_patient(s, rad, {"primary_cancer": "breast", "sex": "female", "ecog": 1, "karnofsky": 80,
                                   **({"family_name": "Dupont", "given_name": "Jeanne",
                                       "birth_date": D(1961, 5, 17), "hospital_id": "H1234567"} if identity else {})})
    ids["patient"] = p.id
    les = {"patient_id": p.id, "site_kind": kind, "site": site, "lesion_type": "lytic"}
    if kind == "vertebra":
        les["sins"] = {"pain": "mechanical", "alignment": "normal", "collapse": "none", "posterolateral": "none"}
    ids["lesion"] = sv.add_lesion(s, rad, les).id
    d = sv.record_decision(s, rad, {"patient_id": p.id, "lesion_id": ids["lesion"], "meeting_date": meeting,
                                      "specialties_present": ["IR", "oncology", "radiotherapy"],
                                      "question": "Consolidation?", "decision_type": decision,
                                      "justification": "high fracture risk"})
    ids["decision"] = d.id
    s.commit()
    if not validate:
        return ids
    sv.validate_decision(s, board, d.id)
    s.commit()
    if consult:
        ids["consultation"] = sv.record_consultation(s, rad, {
            "patient_id": p.id, "decision_id": d.id, "consultation_date": meeting + dt.timedelta(days=5),
            "benefits_explained": "pain relief", "risks_explained": "cement leak", "consent_obtained": True,
            "anaesthesia": "general"}).id
        s.commit()
    if schedule:
        ids["procedure"] = sv.schedule_procedure(s, rad, {"decision_id": d.id,
                                                          "scheduled_date": meeting + dt.timedelta(days=10)}).id
        s.commit()
    if log is not None:
        sv.log_procedure(s, rad, ids["procedure"], {"procedure_date": meeting + dt.timedelta(days=10), **log})
        s.commit()
    return ids


C2_LOG = {"operators": ["Dr rad"], "anaesthesia": "general", "guidance": "CT+fluoroscopy",
          "hydrodissection_volume_ml": 220.0, "trocar": "11G", "guide_pin": True,
          "screws": [{"diameter_mm": 4.0, "length_mm": 34.0}], "cement_volume_ml": 2.9, "cement_leak": False,
          "duration_min": 95, "dlp_mgy_cm": 640.0, "fluoroscopy_time_s": 180.0, "technical_success": True}
