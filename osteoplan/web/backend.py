"""The web layer's one door into :mod:`osteoplan.workflow` (models, service, statistics, exports).

Routers call only this module; it calls the workflow service functions, which check the rules and
write the audit records. Handlers own the transaction (the service never commits).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError


def init_engine(url: str) -> Engine:
    """Engine for *url* with the workflow's durability settings, schema migrated to the latest revision."""
    from osteoplan.workflow.db import init_db, make_engine

    # as many connections as the thread pool has workers (anyio default 40): a request never waits for
    # a connection while holding the event loop, and bursts queue in the pool rather than failing
    engine = make_engine(url, pool_size=10, max_overflow=30, pool_timeout=60)
    init_db(engine)
    return engine


def describe_url(url: str) -> str:
    """*url* with any password hidden (safe to print)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database>"


def is_empty(engine: Engine) -> bool:
    """Whether the database has no user account yet (a new database)."""
    from sqlalchemy.orm import Session

    from osteoplan.workflow.models import User

    with Session(engine) as s:
        return (s.scalar(select(func.count()).select_from(User)) or 0) == 0


def get_user(db, user_id: int):
    """The User row with *user_id*, or None."""
    from osteoplan.workflow.models import User

    return db.get(User, user_id)


def user_is_active(user: Any) -> bool:
    """Whether the account may log in (active and not soft-deleted)."""
    return bool(getattr(user, "active", True)) and getattr(user, "deleted_at", None) is None


# ------------------------------------------------------------------------------------------------ sessions
def revoke_web_session(db, session_id: str, max_age_s: int) -> None:
    """Record a logged-out session id until its cookie expires (*max_age_s* from now); forget expired ones."""
    import datetime as dt

    from sqlalchemy import delete

    from osteoplan.workflow import models as m

    now = m.utcnow()
    db.execute(delete(m.RevokedSession).where(m.RevokedSession.expires_at < now))
    if db.get(m.RevokedSession, session_id[:64]) is None:
        db.add(m.RevokedSession(session_id=session_id[:64], revoked_at=now,
                                expires_at=now + dt.timedelta(seconds=max_age_s)))
    try:
        db.flush()
    except IntegrityError:  # the same session logged out twice at once: it is revoked
        db.rollback()


def web_session_revoked(db, session_id: str) -> bool:
    """Whether the login session *session_id* was logged out."""
    from osteoplan.workflow import models as m

    return db.get(m.RevokedSession, session_id[:64]) is not None


# ------------------------------------------------------------------------------------------------ users
def authenticate(db, username: str, password: str):
    """The active user with these credentials, or None (the service logs login / login_fail)."""
    from osteoplan.workflow import service

    if not username or not password or len(username) > 64 or len(password.encode("utf-8")) > 200:
        return None
    return service.authenticate(db, username, password)


def throttled_authenticate(request, db, username: str, password: str):
    """:func:`authenticate` behind the application's :class:`~osteoplan.web.auth.LoginThrottle`.

    Raises TooManyAttempts (429) while the (user name, client address) pair is locked out.
    """
    from osteoplan.web.auth import TooManyAttempts

    throttle = request.app.state.login_throttle
    key = throttle.key(request, username)
    wait = throttle.retry_after(key)
    if wait > 0:
        raise TooManyAttempts(wait)
    user = authenticate(db, username, password)
    if user is None:
        throttle.failed(key)
    else:
        throttle.succeeded(key)
    return user


def create_user(db, actor, username: str, password: str, role: str, display_name: str = "", rounds: int = 12):
    """Create an account (bcrypt; *rounds* lower only in tests)."""
    from osteoplan.workflow import service

    return service.create_user(db, actor, {"username": username, "password": password, "role": role,
                                           "display_name": display_name}, rounds=rounds)


# ------------------------------------------------------------------------------------------------ reads
def list_cases(db, actor, search: str | None, limit: int, offset: int) -> tuple[list[dict], int]:
    """One page of case summaries (dicts) and the total count. Audited by the service."""
    from osteoplan.workflow import service

    res = service.list_cases(db, actor, search=search, limit=limit, offset=offset)
    return res["items"], int(res["total"])


def list_cases_filtered(db, actor, search: str | None, limit: int, offset: int, before_id: int | None,
                        filters: dict) -> tuple[list[dict], int, int | None]:
    """One page of case summaries with the case-list filters (issue 15), the total and the keyset cursor of the
    next (older) page. Audited by the service."""
    from osteoplan.workflow import service

    res = service.list_cases(db, actor, search=search, limit=limit, offset=offset, before_id=before_id, **filters)
    return res["items"], int(res["total"]), res["next_before_id"]


def get_case(db, actor, case_id: int) -> dict:
    """The whole case as a dict (pseudonymised for research). Audited by the service."""
    from osteoplan.workflow import service

    return service.get_case(db, actor, case_id)


def find_child(case: dict, kind: str, record_id: int) -> dict:
    """The record *record_id* of *kind* inside a case dict, or NotFoundError (keeps URLs consistent)."""
    from osteoplan.errors import NotFoundError

    if kind == "plan":
        for les in case.get("lesions", []):
            for pl in les.get("plans", []):
                if pl["id"] == record_id:
                    return pl
    else:
        key = {"procedure": "procedures", "decision": "decisions", "consultation": "consultations",
               "lesion": "lesions", "follow_up": "follow_ups", "adverse_event": "adverse_events"}[kind]
        for rec in case.get(key, []):
            if rec["id"] == record_id:
                return rec
    raise NotFoundError(f"no {kind.replace('_', ' ')} {record_id} in this case; go back to the case page")


def _check_owned(db, model_name: str, record_id: Any, case_id: int) -> None:
    """A record referenced by a form must belong to the case in the URL."""
    from osteoplan.errors import NotFoundError, ValidationError
    from osteoplan.workflow import models as m

    if record_id in (None, ""):
        return
    try:
        rid = int(record_id)
    except (TypeError, ValueError):
        raise ValidationError(f"{model_name} must be chosen from the list") from None
    model = m.ENTITIES[model_name]
    from osteoplan.workflow.service import MAX_ID

    obj = db.get(model, rid) if 0 < rid <= MAX_ID else None
    pid = getattr(obj, "patient_id", None) if obj is not None else None
    if obj is None or obj.deleted_at is not None or pid != case_id:
        raise NotFoundError(f"no {model_name.replace('_', ' ')} {rid} in this case; reload the case page")


def _pop_version(data: dict) -> int | None:
    v = data.pop("__version__", None)
    if v is None:
        v = data.pop("version", None)
    return int(v) if v not in (None, "") else None


# ------------------------------------------------------------------------------------------------ writes
def create_case(db, actor, data: dict):
    from osteoplan.workflow import service

    data = dict(data)
    _pop_version(data)
    return service.create_patient(db, actor, data)


def update_case(db, actor, case_id: int, data: dict, cleared: set[str] | frozenset[str] = frozenset()):
    """Edit the patient record with optimistic locking (the version the form was opened at).

    *cleared*: fields submitted empty. An identity field submitted empty is cleared; one not submitted at all
    is left unchanged. A required field submitted empty is refused by the workflow with a message naming it.
    """
    from osteoplan.errors import ValidationError
    from osteoplan.workflow import service

    data = dict(data)
    version = _pop_version(data)
    if version is None:
        raise ValidationError("the form is missing the record version; reload the page and edit again")
    fields = service.EDITABLE["patient"]
    changes = {k: data.get(k) for k in fields if k in data or k in ("ecog", "karnofsky", "birth_year", "date_of_death")}
    for k in ("family_name", "given_name", "birth_date", "hospital_id", "primary_cancer", "sex"):
        if not changes.get(k):
            if k in cleared:
                changes[k] = None  # emptied in the form: cleared (identity) or "required" (clinical)
            else:
                changes.pop(k, None)
    for k in ("ecog", "karnofsky", "birth_year"):
        if changes.get(k) not in (None, ""):
            try:
                changes[k] = int(changes[k])
            except (TypeError, ValueError):
                raise ValidationError(f"{k} must be a whole number") from None
    return service.update_record(db, actor, "patient", case_id, changes, expected_version=version)


def add_lesion(db, actor, case_id: int, data: dict):
    from osteoplan.workflow import service

    data = dict(data, patient_id=case_id)
    _pop_version(data)
    return service.add_lesion(db, actor, data)


def record_decision(db, actor, case_id: int, data: dict):
    from osteoplan.workflow import service

    data = dict(data, patient_id=case_id)
    _pop_version(data)
    _check_owned(db, "lesion", data.get("lesion_id"), case_id)
    return service.record_decision(db, actor, data)


def validate_decision(db, actor, case_id: int, decision_id: int, version: int | None):
    from osteoplan.workflow import service

    _check_owned(db, "decision", decision_id, case_id)
    return service.validate_decision(db, actor, decision_id, expected_version=version)


def record_consultation(db, actor, case_id: int, data: dict):
    from osteoplan.workflow import service

    data = dict(data, patient_id=case_id)
    _pop_version(data)
    _check_owned(db, "decision", data.get("decision_id"), case_id)
    _check_owned(db, "lesion", data.get("lesion_id"), case_id)
    return service.record_consultation(db, actor, data)


def schedule_procedure(db, actor, case_id: int, data: dict):
    from osteoplan.workflow import service

    data = dict(data)
    _pop_version(data)
    _check_owned(db, "decision", data.get("decision_id"), case_id)
    _check_owned(db, "lesion", data.get("lesion_id"), case_id)
    return service.schedule_procedure(db, actor, data)


def log_procedure(db, actor, case_id: int, procedure_id: int, data: dict):
    from osteoplan.workflow import service

    data = dict(data)
    version = _pop_version(data)
    _check_owned(db, "procedure", procedure_id, case_id)
    return service.log_procedure(db, actor, procedure_id, data, expected_version=version)


def record_postop(db, actor, case_id: int, procedure_id: int, data: dict):
    from osteoplan.workflow import service

    data = dict(data)
    version = _pop_version(data)
    _check_owned(db, "procedure", procedure_id, case_id)
    return service.record_post_op(db, actor, procedure_id, data, expected_version=version)


def add_follow_up(db, actor, case_id: int, data: dict):
    from osteoplan.workflow import service

    data = dict(data)
    _pop_version(data)
    _check_owned(db, "procedure", data.get("procedure_id"), case_id)
    return service.record_follow_up(db, actor, data)


def add_adverse_event(db, actor, case_id: int, data: dict):
    from osteoplan.workflow import service

    data = dict(data)
    _pop_version(data)
    _check_owned(db, "procedure", data.get("procedure_id"), case_id)
    return service.record_adverse_event(db, actor, data)


def soft_delete_case(db, actor, case_id: int, data: dict):
    from osteoplan.workflow import service

    data = dict(data)
    version = _pop_version(data)
    return service.soft_delete(db, actor, "patient", case_id, str(data.get("reason") or ""), expected_version=version)


def audit_entries(db, actor, limit: int, offset: int) -> tuple[list, int]:
    """Audit records, newest first, and the total count (administrators)."""
    from osteoplan.workflow import models as m
    from osteoplan.workflow import service

    rows = service.read_audit_log(db, actor, limit=limit, offset=offset)
    total = db.scalar(select(func.count()).select_from(m.AuditLog)) or 0
    return rows, int(total)


# ------------------------------------------------------------------------------------------------ demo data
def seed_demo(engine: Engine, n_cases: int | None = None, rounds: int = 12, seed: int = 0) -> list[tuple[str, str, str]]:
    """Generate the workflow's demo data set; returns the demo logins (username, password, role)."""
    from osteoplan.workflow import demo
    from osteoplan.workflow.db import session_factory, session_scope

    kwargs: dict[str, Any] = {"rounds": rounds, "seed": seed}
    if n_cases is not None:
        kwargs["n_cases"] = n_cases
    with session_scope(session_factory(engine)) as s:
        demo.generate_demo_data(s, **kwargs)
    return [(u, demo.demo_password(u), r) for u, r, _ in demo.DEMO_USERS]


# ------------------------------------------------------------------------------------------------ outputs
def _not_ready(what: str):
    from osteoplan.errors import DependencyError

    return DependencyError(f"{what} is not available in this build of osteoplan.workflow; update osteoplan")


def statistics(db, actor, year: int | None = None) -> dict[str, list[dict]]:
    """All statistics tables (aggregates only; the service logs the read)."""
    from osteoplan.workflow import stats

    return stats.compute_statistics(db, actor, year)


def statistics_json(tables: dict[str, list[dict]]) -> dict[str, Any]:
    return {"tables": tables}


def statistics_table_names() -> list[str]:
    from osteoplan.workflow import stats

    return list(stats.TABLES)


def statistics_csv(db, actor, year: int | None = None, table: str = "procedures_per_year") -> str:
    """One statistics table as CSV."""
    from osteoplan.errors import NotFoundError
    from osteoplan.workflow import stats

    if table not in stats.TABLES:
        raise NotFoundError(f"no statistics table {table!r}; one of {', '.join(stats.TABLES)}")
    return stats.to_csv(statistics(db, actor, year)[table])


#: plot name -> (table, workflow plotting function name)
PLOT_FUNCS = {"procedures_per_year": ("procedures_per_year", "plot_per_year"),
              "procedures_per_site": ("procedures_per_site", "plot_per_site"),
              "pain": ("pain_over_time", "plot_pain"),
              "complications": ("complications", "plot_complications"),
              "activity_by_type": ("activity_by_type_year", "plot_activity_by_type")}


def statistics_plot_png(tables: dict[str, list[dict]], plot: str) -> bytes:
    """A statistics plot as PNG bytes (drawn by the workflow's matplotlib functions)."""
    import tempfile
    from pathlib import Path

    from osteoplan.workflow import stats

    table, fn = PLOT_FUNCS[plot]
    with tempfile.TemporaryDirectory(prefix="osteoplan-plot-") as d:
        path = Path(d) / "plot.png"
        getattr(stats, fn)(tables[table], path)
        return path.read_bytes()


def fhir_bundle(db, actor, case_id: int) -> dict:
    """The FHIR R4 Bundle of a case as a JSON object (pseudonymised; the export is audited)."""
    import json

    from osteoplan.workflow import fhir

    return json.loads(fhir.export_case_json(db, actor, case_id))


def info_sheet_pdf(db, actor, case_id: int | None, consultation_id: int, lang: str) -> bytes:
    """The patient information sheet handed over at a consultation (PDF bytes, ``lang`` "fr" or "en").

    The sheet describes the consultation's lesion (or its decision's lesion, else the case's latest
    lesion) with its latest saved plan. The workflow logs the read.
    """
    from osteoplan.errors import NotFoundError, ValidationError
    from osteoplan.workflow import infosheet
    from osteoplan.workflow import models as m

    if case_id is not None:
        _check_owned(db, "consultation", consultation_id, case_id)
    from osteoplan.workflow.service import MAX_ID

    c = db.get(m.Consultation, consultation_id) if 0 < consultation_id <= MAX_ID else None
    if c is None or c.deleted_at is not None:
        raise NotFoundError(f"no consultation {consultation_id}; reload the case page")
    lesion_id = c.lesion_id or (c.decision.lesion_id if c.decision is not None else None)
    if lesion_id is None:
        live = [x for x in c.patient.lesions if x.deleted_at is None]
        if not live:
            raise ValidationError("the information sheet describes a lesion: record the lesion first")
        lesion_id = live[-1].id
    return infosheet.info_sheet_pdf(db, actor, lesion_id, lang)


def available_years(db) -> list[int]:
    from osteoplan.workflow import stats

    return stats.available_years(db)


def list_users(db, actor) -> list:
    from osteoplan.workflow import service

    return service.list_users(db, actor)


def attach_plan(db, actor, case_id: int | None, lesion_id: int, plan: dict | str | bytes, label: str = "plan"):
    """Attach a planner output to a lesion after checking it against the plan schema (osteoplan.planning).

    Raises ValidationError with the first problems when the file is not a valid ``plan.json``.
    """
    import json

    from osteoplan.errors import ValidationError
    from osteoplan.workflow import service

    if case_id is not None:
        _check_owned(db, "lesion", lesion_id, case_id)
    text = plan if isinstance(plan, (str, bytes)) else json.dumps(plan)
    try:
        from osteoplan.planning.model import Plan

        parsed = Plan.from_json(text)
    except ImportError:  # planning not installed: accept any JSON object
        try:
            parsed = json.loads(text)
        except ValueError:
            raise ValidationError("the file is not JSON; choose the plan.json written by the planner") from None
    except Exception as exc:  # pydantic ValidationError or JSON error
        msg = str(exc).splitlines()
        detail = "; ".join(x.strip() for x in msg[1:4]) if len(msg) > 1 else msg[0] if msg else ""
        raise ValidationError(f"this is not a valid plan.json ({detail[:300]}); choose the file written by "
                              "'osteoplan plan'") from None
    data = json.loads(parsed.to_json()) if hasattr(parsed, "to_json") else parsed
    _check_plan_ct(db, lesion_id, data)
    return service.attach_plan(db, actor, {"lesion_id": lesion_id, "plan": data, "label": label or "plan"})


def _check_plan_ct(db, lesion_id: int, plan: dict) -> None:
    """Refuse a plan made on another CT series than the ones attached to the lesion (``Plan.ct_source``).

    Only when both are known: the plan records its SeriesInstanceUID (schema >= 1.2, CT read from DICOM) and the
    lesion lists CT series (picked from the PACS, identity-checked, or typed in); otherwise nothing can be compared.
    """
    from osteoplan.errors import ValidationError
    from osteoplan.workflow import models as m

    series = ((plan.get("ct_source") or {}) if isinstance(plan, dict) else {}).get("series_uid")
    lesion = db.get(m.Lesion, lesion_id)
    attached = list(getattr(lesion, "ct_series_uids", None) or [])
    if series and attached and series not in attached:
        raise ValidationError("this plan was made on another CT series than the ones attached to the lesion "
                              "(SeriesInstanceUID differs): attach the plan made on this patient's CT, or attach "
                              "its CT series to the lesion first (after checking it is this patient's)")


#: URL slug -> (workflow entity, case-dict key, input model name, permission action)
EDITABLE_RECORDS: dict[str, tuple[str, str, str, str]] = {
    "lesions": ("lesion", "lesions", "LesionIn", "lesion.write"),
    "decisions": ("decision", "decisions", "DecisionIn", "rcp.write"),
    "consultations": ("consultation", "consultations", "ConsultationIn", "consultation.write"),
    "follow-ups": ("follow_up", "follow_ups", "FollowUpIn", "followup.write"),
    "adverse-events": ("adverse_event", "adverse_events", "AdverseEventIn", "adverse_event.write"),
}


def update_child(db, actor, case_id: int, entity: str, record_id: int, changes: dict, version: int | None):
    """Edit a record of the case with optimistic locking (the version the form was opened at)."""
    from osteoplan.errors import ValidationError
    from osteoplan.workflow import service

    if version is None:
        raise ValidationError("the form is missing the record version; reload the page and edit again")
    _check_owned(db, entity, record_id, case_id)
    return service.update_record(db, actor, entity, record_id, changes, expected_version=version)


def editable_fields(entity: str) -> tuple[str, ...]:
    from osteoplan.workflow import service

    return tuple(service.EDITABLE[entity])


# ------------------------------------------------------------------------------------------------ worklist
def worklist(db, actor, **filters) -> dict:
    """The actor's worklist (issue 15), filtered and sorted; the workflow logs the read."""
    from osteoplan.workflow import worklist as wl

    return wl.worklist(db, actor, **filters)


def worklist_export(result: dict, fmt: str, base_url: str) -> str:
    """Worklist items as ``csv`` or ``ics`` (iCalendar) text; case codes only."""
    from osteoplan.workflow import worklist as wl

    return wl.to_csv(result["items"], base_url) if fmt == "csv" else wl.to_ical(result["items"], base_url)


def worklist_vocabularies() -> dict:
    """Labels of item kinds, stages and procedure types for the worklist filters."""
    from osteoplan.workflow import models as m
    from osteoplan.workflow import worklist as wl

    return {"kinds": wl.KINDS, "role_kinds": wl.ROLE_KINDS, "stages": wl.VIEW_STAGES,
            "procedure_types": m.PROCEDURE_TYPE_LABELS, "sort_keys": wl.SORT_KEYS}


def annual_report_pdf(db, actor, year: int) -> bytes:
    """The team's annual activity report of *year* as PDF bytes (the statistics read is logged)."""
    import os

    from osteoplan.workflow import annual_report

    return annual_report.annual_report_pdf(db, actor, year, os.environ.get("OSTEOPLAN_TEAM_NAME",
                                                                           "Interventional radiology"))
