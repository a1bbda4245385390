"""Service layer of the care-pathway registry: every read and write of patient data goes through here.

Rules for callers (the web application, the CLI, the demo generator):

- Functions take a :class:`~sqlalchemy.orm.Session`, an ``actor`` (the :class:`~osteoplan.workflow.models.User`
  doing it; ``None`` means the system itself, e.g. the demo generator or a CLI bootstrap) and a pydantic input
  model from :mod:`osteoplan.workflow.schemas` (a plain ``dict`` is accepted too).
- They **flush but never commit**: the caller owns the transaction (:func:`osteoplan.workflow.db.session_scope`),
  so a change and its audit record are committed together or not at all. A refused write (any
  ``OsteoplanError`` from a writer) ROLLS THE SESSION BACK, so commit earlier work before a write that may fail.
- Every call writes one :class:`~osteoplan.workflow.models.AuditLog` record (reads included). Set the request
  path for the audit with ``with audit_context(path=request.url.path): ...`` (a context variable).
- Impossible states raise :class:`osteoplan.errors.ValidationError` with a message saying what is wrong and what
  to do; missing records :class:`~osteoplan.errors.NotFoundError`; a stale edit
  :class:`~osteoplan.errors.ConflictError` (optimistic locking, ``expected_version``); a research account trying
  to write or to see identity :class:`~osteoplan.errors.PermissionDeniedError`. (The full role x action table is
  enforced by the web layer; the service only enforces what must hold whatever the caller.)
- Research accounts get pseudonymised views: no identity fields, calendar dates replaced by the year and a day
  offset from the case's index date (first tumour-board meeting).
- Nothing is hard-deleted: :func:`soft_delete` marks a record with who, when and why.

Main entry points
-----------------
Users: :func:`create_user`, :func:`authenticate`, :func:`set_password`, :func:`list_users`.
Cases: :func:`create_patient`, :func:`add_lesion`, :func:`attach_plan`, :func:`create_meeting`,
:func:`record_decision`, :func:`validate_decision`, :func:`record_consultation`, :func:`schedule_procedure`,
:func:`log_procedure`, :func:`record_post_op`, :func:`record_verification`, :func:`record_follow_up`, :func:`record_adverse_event`,
:func:`record_death`, :func:`update_record`, :func:`soft_delete`.
Reads: :func:`get_case`, :func:`list_cases`, :func:`get_record`, :func:`get_patient`, :func:`read_audit_log`.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import bcrypt
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
import math

from sqlalchemy import JSON, Boolean, Date, Float, Integer, String, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.exc import StaleDataError

from osteoplan.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from osteoplan.workflow import models as m
from osteoplan.workflow import schemas as s
from osteoplan.workflow.crypto import UNREADABLE, EncryptedText

CONFLICT_MESSAGE = ("this case was changed by someone else since you opened it; reload it, check the "
                    "other change and redo yours")

_M = TypeVar("_M", bound=BaseModel)
_path_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("osteoplan_audit_path", default=None)
_reason_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("osteoplan_audit_reason", default=None)


# ------------------------------------------------------------------------------------------------ helpers
@contextmanager
def audit_context(path: str | None = None, reason: str | None = None) -> Iterator[None]:
    """Attach a request path (and a default reason) to every audit record written inside the block."""
    tp = _path_var.set(path)
    tr = _reason_var.set(reason)
    try:
        yield
    finally:
        _path_var.reset(tp)
        _reason_var.reset(tr)


def today() -> dt.date:
    """Today's date (UTC)."""
    return dt.datetime.now(dt.timezone.utc).date()


def _parse(model: type[_M], data: _M | Mapping[str, Any]) -> _M:
    if isinstance(data, model):
        return data
    if isinstance(data, BaseModel):
        data = data.model_dump()
    try:
        return model.model_validate(dict(data))
    except PydanticValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"]) or model.__name__
            parts.append(f"{loc}: {err['msg']}")
        raise ValidationError(f"invalid {model.__name__}: " + "; ".join(parts)) from None


def actor_name(actor: m.User | None) -> str:
    """Username for the audit (``system`` for ``actor=None``)."""
    return actor.username if actor is not None else "system"


def _role(actor: m.User | None) -> str | None:
    return actor.role if actor is not None else None


def sees_identity(actor: m.User | None) -> bool:
    """Whether *actor* may see identity fields (everyone but research; the system itself too)."""
    return actor is None or actor.role != "research"


def _require_writer(actor: m.User | None) -> None:
    if actor is not None and (actor.role == "research" or not actor.active):
        raise PermissionDeniedError(
            f"the {actor.role} role is read-only and cannot change the registry; ask a clinical user")


def audit(session: Session, actor: m.User | None, action: str, entity: str, entity_id: int | None = None,
          *, patient_id: int | None = None, reason: str | None = None, path: str | None = None,
          detail: dict[str, Any] | None = None) -> m.AuditLog:
    """Append one audit record (who, when, what, why, where). Never put identity values in ``detail``."""
    rec = m.AuditLog(
        user_id=actor.id if actor is not None else None, username=actor_name(actor), role=_role(actor),
        action=action, entity=entity, entity_id=entity_id, patient_id=patient_id,
        reason=reason if reason is not None else _reason_var.get(), path=path or _path_var.get(), detail=detail,
    )
    session.add(rec)
    return rec


def _is_unique_violation(exc: IntegrityError) -> bool:
    """Whether a database integrity error is a UNIQUE violation (PostgreSQL SQLSTATE 23505, SQLite message)."""
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) == "23505":
        return True
    return "UNIQUE constraint failed" in str(orig or exc)


#: Longest free text accepted (characters) in a ``Text`` column; a project default without a published source
#: (a long clinical note is a few thousand characters). ``String(n)`` columns accept at most n characters.
TEXT_MAX_CHARS = 20_000
#: Longest identity value (name, hospital identifier, birth date) accepted, in characters (project default).
IDENTITY_MAX_CHARS = 200
#: Largest record id (SQL INTEGER, 32-bit on PostgreSQL); a larger number in a link cannot name a record.
MAX_ID = 2**31 - 1


def _check_sizes(session: Session) -> None:
    """Refuse text longer than its column allows before the database does (PostgreSQL would raise a data error,
    SQLite would silently store it). The message gives the field and the limit, never the value."""
    for obj in list(session.new) + list(session.dirty):
        table = getattr(obj, "__table__", None)
        if table is None:
            continue
        for col in table.columns:
            v = obj.__dict__.get(col.key)
            if not isinstance(v, str):
                continue
            limit = getattr(col.type, "length", None)
            if limit is None:
                limit = IDENTITY_MAX_CHARS if isinstance(col.type, EncryptedText) else TEXT_MAX_CHARS
            if len(v) > limit:
                raise ValidationError(f"{col.key.replace('_', ' ')} is too long ({len(v)} characters; at most "
                                      f"{limit}); shorten it")


def _flush(session: Session) -> None:
    """Flush; a stale version or a UNIQUE clash -> ConflictError, any other database rule -> ValidationError."""
    _check_sizes(session)
    try:
        session.flush()
    except StaleDataError:
        session.rollback()
        raise ConflictError(CONFLICT_MESSAGE) from None
    except IntegrityError as exc:
        session.rollback()
        if _is_unique_violation(exc):
            raise ConflictError("a record with the same unique value (case code, username) was saved at the same "
                                "time by someone else; reload and retry") from None
        # NOT NULL, foreign key or CHECK: an input problem, not a conflict (the message never echoes values)
        raise ValidationError("the record is incomplete or refers to a record that does not exist (a database "
                              "rule refused it); fill in the required fields and check the links, then retry") from None


def _get(session: Session, model: type, record_id: int, what: str, include_deleted: bool = False):
    if not isinstance(record_id, int) or isinstance(record_id, bool) or not 0 < record_id <= MAX_ID:
        raise NotFoundError(f"no {what} with id {str(record_id)[:24]}; check the link")
    obj = session.get(model, record_id)
    if obj is None or (obj.deleted_at is not None and not include_deleted):
        raise NotFoundError(f"no {what} with id {record_id} (it may have been deleted); check the link")
    if not include_deleted and _case_deleted(obj):
        # a deleted case is read-only and hidden, records inside it included (audit trail and restore excepted)
        raise NotFoundError(f"no {what} with id {record_id} (its case was deleted); check the link")
    return obj


def _case_deleted(obj: Any) -> bool:
    """Whether *obj* lies inside a soft-deleted record: its case (patient), or the lesion of a plan / the procedure
    of a screw. Meetings and users belong to no case."""
    parents = []
    if isinstance(obj, m.SavedPlan):
        parents.append(obj.lesion)
    elif isinstance(obj, m.ProcedureScrew):
        parents.append(obj.procedure)
    else:
        parents.append(obj)
    for parent in list(parents):
        if parent is not None and not isinstance(parent, m.Patient):
            parents.append(getattr(parent, "patient", None))
    return any(p is not None and p is not obj and p.deleted_at is not None for p in parents)


def _check_version(obj: m.RecordMixin, expected_version: int | None) -> None:
    if expected_version is not None and obj.version != expected_version:
        raise ConflictError(CONFLICT_MESSAGE)


def _patient_of(obj: Any) -> int | None:
    if isinstance(obj, m.Patient):
        return obj.id
    if hasattr(obj, "patient_id"):
        return obj.patient_id
    if isinstance(obj, m.SavedPlan):
        return obj.lesion.patient_id if obj.lesion else None
    if isinstance(obj, m.ProcedureScrew):
        return obj.procedure.patient_id if obj.procedure else None
    return None



def _atomic(fn):
    """Writers: on a refused change roll the session back, so nothing half-made can be flushed later."""
    import functools

    @functools.wraps(fn)
    def wrapper(session: Session, *args, **kwargs):
        try:
            with session.no_autoflush:  # checks run on objects not yet added; flushes are explicit
                return fn(session, *args, **kwargs)
        except (ValidationError, ConflictError, PermissionDeniedError, NotFoundError):
            session.rollback()
            raise
    return wrapper


def _pid(obj: Any) -> int | None:
    """Patient id of a record, also before flush (relationship set, foreign key not yet)."""
    pat = getattr(obj, "patient", None)
    return pat.id if pat is not None else getattr(obj, "patient_id", None)


def _fk(obj: Any, rel: str) -> int | None:
    """Id of a related record, also before flush (``obj.<rel>`` set, ``obj.<rel>_id`` not yet)."""
    target = getattr(obj, rel, None)
    return target.id if target is not None else getattr(obj, rel + "_id", None)


def _fmt(d: dt.date | None) -> str:
    return d.isoformat() if d else "?"


# ------------------------------------------------------------------------------------------------ validators
def _one_of(value: Any, options: tuple[str, ...] | list[str], field: str) -> None:
    if value not in options:
        raise ValidationError(f"{field} {value!r} is not one of: {', '.join(options)}")


#: Upper bounds of plausibility for procedure amounts: a value above is a typing error (wrong unit, extra
#: zeros). Project defaults without a published source, set well above any reported practice.
PLAUSIBLE_MAX: dict[str, float] = {
    "hydrodissection volume": 2000.0,  # mL
    "cement volume": 200.0,  # mL (one session, all levels)
    "duration": 1440.0,  # min
    "DLP": 100_000.0,  # mGy·cm
    "fluoroscopy time": 36_000.0,  # s
}


def _nonneg(value: float | int | None, field: str, unit: str) -> None:
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(f"{field} must be a finite number of {unit}")
    if value < 0:
        raise ValidationError(f"{field} cannot be negative (got {value} {unit}); enter 0 if none was used")
    top = PLAUSIBLE_MAX.get(field)
    if top is not None and value > top:
        raise ValidationError(f"{field} {value:g} {unit} is not plausible (above {top:g} {unit}); check the unit "
                              "and the number")


def _not_future(d: dt.date | None, field: str) -> None:
    if d is not None and d > today():
        raise ValidationError(f"{field} {d.isoformat()} is in the future; enter the date it actually happened")


def _done_procedures(patient: m.Patient) -> list[m.Procedure]:
    return [p for p in patient.procedures if p.deleted_at is None and p.status == "done" and p.procedure_date]


def check_patient(p: m.Patient) -> None:
    """Rules of a patient record (ranges of ECOG 0-5 and Karnofsky 0-100 by 10, dates of birth and death).

    ECOG: Oken et al., Am J Clin Oncol 1982;5:649. Karnofsky: Karnofsky & Burchenal 1949 (steps of 10).
    """
    if not (p.primary_cancer or "").strip():
        raise ValidationError("primary cancer is required (e.g. 'breast', 'lung', 'myeloma', 'unknown primary')")
    _one_of(p.sex, m.SEXES, "sex")
    if p.ecog is not None and not (isinstance(p.ecog, int) and 0 <= p.ecog <= 5):
        raise ValidationError(f"ECOG performance status is an integer 0-5 (got {p.ecog}); correct it")
    if p.karnofsky is not None and not (0 <= p.karnofsky <= 100 and p.karnofsky % 10 == 0):
        raise ValidationError(f"Karnofsky performance status is 0-100 in steps of 10 (got {p.karnofsky}); correct it")
    if p.birth_year is not None and not (1900 <= p.birth_year <= today().year):
        raise ValidationError(f"birth year {p.birth_year} is not plausible (1900-{today().year})")
    if p.date_of_death is not None:
        _not_future(p.date_of_death, "date of death")
        for proc in _done_procedures(p):
            if p.date_of_death < proc.procedure_date:
                raise ValidationError(
                    f"date of death {_fmt(p.date_of_death)} is before the procedure of {_fmt(proc.procedure_date)}; "
                    "check both dates")
        for fu in p.follow_ups:
            if fu.deleted_at is None and fu.visit_date > p.date_of_death:
                raise ValidationError(
                    f"date of death {_fmt(p.date_of_death)} is before a follow-up visit on {_fmt(fu.visit_date)}; "
                    "check both dates")
        if p.birth_year is not None and p.date_of_death.year < p.birth_year:
            raise ValidationError("date of death is before the year of birth; check both")


def check_lesion(lesion: m.Lesion) -> None:
    """Rules of a lesion: known site and type; SINS only for the spine, Mirels only for limb bones."""
    _one_of(lesion.site_kind, m.SITE_KINDS, "site kind")
    _one_of(lesion.lesion_type, m.LESION_TYPES, "lesion type")
    if lesion.site_kind == "vertebra":
        _one_of(lesion.site, m.VERTEBRAL_LEVELS, "vertebral level")
        if lesion.score_system == "Mirels":
            raise ValidationError("the Mirels score is for long bones; use SINS for a vertebral lesion")
    elif not (lesion.site or "").strip():
        raise ValidationError("the bone of a non-vertebral lesion is required (e.g. 'femur', 'humerus', 'acetabulum')")
    elif lesion.score_system == "SINS":
        raise ValidationError("SINS is for spinal lesions; use Mirels for a long bone")
    for uid in lesion.ct_series_uids or []:
        if not isinstance(uid, str) or not uid or len(uid) > 64 or any(c not in "0123456789." for c in uid):
            raise ValidationError(f"{uid!r} is not a DICOM UID (digits and dots, at most 64 characters)")


def check_decision(d: m.TumourBoardDecision) -> None:
    """Rules of a tumour-board decision: known type, a question, validation not before the meeting."""
    _one_of(d.decision_type, m.DECISION_TYPES, "decision type")
    if not (d.question or "").strip():
        raise ValidationError("the question put to the tumour board is required")
    if d.lesion is not None and d.lesion.patient_id != _pid(d):
        raise ValidationError("the lesion of this decision belongs to another patient; pick one of this patient's")
    if d.validated_at is not None and d.meeting is not None:
        if d.validated_at.date() < d.meeting.meeting_date:
            raise ValidationError("a decision cannot be validated before the meeting that took it")


def check_consultation(c: m.Consultation) -> None:
    """Rules of the pre-operative consultation: after the tumour-board meeting, not after the procedure."""
    if c.anaesthesia is not None:
        _one_of(c.anaesthesia, m.ANAESTHESIA, "anaesthesia")
    if c.info_sheet_language is not None:
        _one_of(c.info_sheet_language, ("fr", "en"), "information sheet language")
    _not_future(c.consultation_date, "consultation date")
    if c.consent_obtained and c.consent_date is None:
        c.consent_date = c.consultation_date
    if not c.consent_obtained and c.consent_date is not None:
        raise ValidationError("a consent date is given but consent is not recorded as obtained; tick consent or "
                              "remove the date")
    if c.consent_date is not None and c.consent_date < c.consultation_date:
        raise ValidationError("consent cannot be recorded before the consultation that informed the patient")
    if c.decision is not None:
        if _pid(c.decision) != _pid(c):
            raise ValidationError("the tumour-board decision belongs to another patient")
        if c.consultation_date < c.decision.meeting.meeting_date:
            raise ValidationError(
                f"the pre-operative consultation ({_fmt(c.consultation_date)}) is before the tumour-board meeting "
                f"({_fmt(c.decision.meeting.meeting_date)}) that decided the procedure; check the dates")
    for proc in _done_procedures(c.patient):
        if _fk(c, "decision") is not None and proc.decision_id != _fk(c, "decision"):
            continue
        if c.consultation_date > proc.procedure_date:
            raise ValidationError(
                f"a pre-operative consultation cannot be dated after the procedure ({_fmt(proc.procedure_date)}); "
                "record a follow-up visit instead")


def check_procedure(p: m.Procedure) -> None:
    """Rules of a procedure: a validated consolidation decision, dates in order, non-negative amounts."""
    d = p.decision
    if d is None or d.deleted_at is not None:
        raise ValidationError("a procedure needs a tumour-board (RCP) decision; record the decision first")
    if _pid(d) != _pid(p):
        raise ValidationError("the tumour-board decision belongs to another patient")
    if not d.is_validated:
        raise ValidationError("the tumour-board (RCP) decision is not validated; a physician must validate it "
                              "before a procedure can be scheduled")
    if d.decision_type not in m.CONSOLIDATION_DECISIONS + ("other",):
        raise ValidationError(
            f"the tumour-board decision is '{m.DECISION_LABELS[d.decision_type]}', not a percutaneous consolidation;"
            " a procedure cannot be scheduled on it")
    if p.lesion is not None and _pid(p.lesion) != _pid(p):
        raise ValidationError("the lesion belongs to another patient")
    _one_of(p.status, m.PROCEDURE_STATUSES, "procedure status")
    if p.procedure_type is not None:
        _one_of(p.procedure_type, m.PROCEDURE_TYPES, "procedure type")
    if p.anaesthesia is not None:
        _one_of(p.anaesthesia, m.ANAESTHESIA, "anaesthesia")
    if p.guidance is not None:
        _one_of(p.guidance, m.GUIDANCE, "guidance")
    meeting_date = d.meeting.meeting_date
    if p.scheduled_date < meeting_date:
        raise ValidationError(f"the procedure is scheduled ({_fmt(p.scheduled_date)}) before the tumour-board "
                              f"meeting ({_fmt(meeting_date)}); check the dates")
    _nonneg(p.hydrodissection_volume_ml, "hydrodissection volume", "mL")
    _nonneg(p.cement_volume_ml, "cement volume", "mL")
    _nonneg(p.duration_min, "duration", "min")
    _nonneg(p.dlp_mgy_cm, "DLP", "mGy·cm")
    _nonneg(p.fluoroscopy_time_s, "fluoroscopy time", "s")
    if p.levels_treated is not None and p.levels_treated < 1:
        raise ValidationError(f"levels treated must be at least 1 (got {p.levels_treated})")
    for sc in p.live_screws:
        if not (sc.diameter_mm > 0 and sc.length_mm > 0):
            raise ValidationError(f"a screw needs a positive diameter and length in mm (got "
                                  f"{sc.diameter_mm} x {sc.length_mm})")
    if p.leak_sites and p.cement_leak is False:
        raise ValidationError("leak sites are given but 'cement leak' is no; correct one of them")
    if p.cement_leak and not p.cement_volume_ml and p.cement_volume_ml is not None:
        raise ValidationError("a cement leak is recorded with 0 mL of cement; correct the volume or the leak")
    if p.status == "done":
        if p.procedure_date is None:
            raise ValidationError("a procedure marked done needs its date")
        _not_future(p.procedure_date, "procedure date")
        if p.procedure_date < meeting_date:
            raise ValidationError(f"the procedure ({_fmt(p.procedure_date)}) is dated before the tumour-board "
                                  f"meeting ({_fmt(meeting_date)}) that decided it; check the dates")
        consents = [c for c in p.patient.consultations if c.deleted_at is None and c.consent_obtained]
        if not consents:
            raise ValidationError("no consent is recorded for this patient; record the pre-operative consultation "
                                  "with the patient's consent before logging the procedure")
        if all(c.consultation_date > p.procedure_date for c in consents):
            raise ValidationError("the consultation that recorded consent is dated after the procedure; check the "
                                  "dates")
        if p.patient.date_of_death is not None and p.patient.date_of_death < p.procedure_date:
            raise ValidationError("the procedure is dated after the patient's date of death; check the dates")
    else:
        if p.collar_removed_date is not None or p.discharge_date is not None:
            raise ValidationError("post-operative dates can only be recorded once the procedure is logged as done")
    if p.collar_removed_date is not None and p.procedure_date and p.collar_removed_date < p.procedure_date:
        raise ValidationError(f"the collar cannot be removed ({_fmt(p.collar_removed_date)}) before the procedure "
                              f"({_fmt(p.procedure_date)})")
    if p.discharge_date is not None and p.procedure_date and p.discharge_date < p.procedure_date:
        raise ValidationError(f"discharge ({_fmt(p.discharge_date)}) cannot be before the procedure "
                              f"({_fmt(p.procedure_date)})")
    _not_future(p.collar_removed_date, "collar removal date")
    _not_future(p.discharge_date, "discharge date")


def check_follow_up(f: m.FollowUp) -> None:
    """Rules of a follow-up: after a procedure that was done, NRS 0-10, one visit per timepoint, alive."""
    _one_of(f.timepoint, m.TIMEPOINTS, "timepoint")
    proc = f.procedure
    if proc is None or proc.deleted_at is not None:
        raise ValidationError("a follow-up must refer to a procedure")
    if _pid(proc) != _pid(f):
        raise ValidationError("the procedure belongs to another patient")
    if proc.status != "done" or proc.procedure_date is None:
        raise ValidationError("this procedure has not been logged as done; a follow-up cannot precede it")
    if f.pain_nrs is not None and not (isinstance(f.pain_nrs, int) and 0 <= f.pain_nrs <= 10):
        raise ValidationError(f"pain NRS is an integer from 0 (no pain) to 10 (worst imaginable); got {f.pain_nrs}")
    _nonneg(f.opioid_mme_mg_day, "opioid dose", "mg/day")
    _not_future(f.visit_date, "visit date")
    if f.timepoint == "baseline":
        if f.visit_date > proc.procedure_date:
            raise ValidationError(f"a baseline assessment ({_fmt(f.visit_date)}) cannot be after the procedure "
                                  f"({_fmt(proc.procedure_date)})")
    elif f.visit_date < proc.procedure_date:
        raise ValidationError(f"the follow-up visit ({_fmt(f.visit_date)}) is before the procedure "
                              f"({_fmt(proc.procedure_date)}); check the dates")
    death = f.patient.date_of_death
    if death is not None and f.visit_date > death:
        raise ValidationError("the follow-up visit is dated after the patient's date of death; check the dates")
    for other in f.patient.follow_ups:
        if (other is not f and other.deleted_at is None and other.procedure_id == _fk(f, "procedure")
                and other.timepoint == f.timepoint):
            raise ValidationError(f"the {f.timepoint} follow-up of this procedure is already recorded; edit it "
                                  "instead of adding another")


def check_adverse_event(a: m.AdverseEvent) -> None:
    """Rules of an adverse event: known classification and grade, not before the procedure."""
    if a.classification not in m.AE_CLASSIFICATIONS:
        raise ValidationError(f"classification {a.classification!r} is not one of: "
                              f"{', '.join(m.AE_CLASSIFICATIONS)}")
    if a.grade_status is not None:
        _one_of(a.grade_status, m.AE_GRADE_STATUSES, "grade status")
    grades = m.AE_CLASSIFICATIONS[a.classification]
    if a.grade not in grades:
        raise ValidationError(f"{a.classification} grade {a.grade!r} does not exist; grades are {', '.join(grades)}")
    if not (a.description or "").strip():
        raise ValidationError("describe the adverse event")
    proc = a.procedure
    if proc is None or _pid(proc) != _pid(a):
        raise ValidationError("the adverse event must refer to one of this patient's procedures")
    if proc.status != "done" or proc.procedure_date is None:
        raise ValidationError("this procedure has not been logged as done; an adverse event cannot precede it")
    if a.event_date < proc.procedure_date:
        raise ValidationError(f"the adverse event ({_fmt(a.event_date)}) is before the procedure "
                              f"({_fmt(proc.procedure_date)}); check the dates")
    _not_future(a.event_date, "event date")


def check_user(u: m.User) -> None:
    """Rules of a user account."""
    _one_of(u.role, m.ROLES, "role")
    if not u.username or len(u.username) > 64 or not u.username.replace(".", "").replace("-", "").replace(
            "_", "").isalnum():
        raise ValidationError("a username is 1-64 letters, digits, '.', '-' or '_'")


_CHECKS = {
    m.Patient: check_patient, m.Lesion: check_lesion, m.TumourBoardDecision: check_decision,
    m.Consultation: check_consultation, m.Procedure: check_procedure, m.FollowUp: check_follow_up,
    m.AdverseEvent: check_adverse_event, m.User: check_user,
}


def check(obj: Any) -> None:
    """Run the rules of *obj*'s entity (and of its patient, whose cross-record rules may be affected)."""
    fn = _CHECKS.get(type(obj))
    if fn:
        fn(obj)


# ------------------------------------------------------------------------------------------------ users
def hash_password(password: str, rounds: int = 12) -> str:
    """bcrypt hash of *password* (rounds = log2 cost; 12 by default)."""
    if len(password) < 8:
        raise ValidationError("a password needs at least 8 characters")
    if len(password.encode("utf-8")) > 72:
        raise ValidationError("a password is at most 72 bytes (bcrypt limit)")
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


@_atomic
def create_user(session: Session, actor: m.User | None, data: s.UserIn | Mapping[str, Any],
                rounds: int = 12) -> m.User:
    """Create an account (admins only; ``actor=None`` for the system bootstrap). The password is bcrypt-hashed."""
    data = _parse(s.UserIn, data)
    if actor is not None and actor.role != "admin":
        raise PermissionDeniedError("only an administrator can create accounts")
    if session.scalar(select(m.User).where(m.User.username == data.username)) is not None:
        raise ValidationError(f"the username {data.username!r} is taken; choose another")
    user = m.User(username=data.username, display_name=data.display_name, role=data.role,
                  password_hash=hash_password(data.password, rounds))
    check_user(user)
    session.add(user)
    _flush(session)
    audit(session, actor, "create", "user", user.id, detail={"username": user.username, "role": user.role})
    _flush(session)
    return user


@functools.lru_cache(maxsize=4)
def _dummy_hash(rounds: int) -> bytes:
    """A bcrypt hash of a random password, checked for unknown user names (see :func:`authenticate`)."""
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds))


def _bcrypt_rounds(password_hash: str) -> int | None:
    """The cost (log2 rounds) of a bcrypt hash ``$2b$12$...``, or None."""
    parts = password_hash.split("$")
    return int(parts[2]) if len(parts) > 3 and parts[2].isdigit() and 4 <= int(parts[2]) <= 31 else None


def authenticate(session: Session, username: str, password: str) -> m.User | None:
    """The active user with this username and password, else ``None``. Logs ``login`` / ``login_failed``.

    The password is checked with bcrypt whether or not the account exists or is active: an unknown user name
    is checked against a dummy hash of the same cost as the newest account's hash (default 12), so the answer
    takes the same time and the response time does not reveal which user names exist.
    """
    user = session.scalar(select(m.User).where(m.User.username == username, m.User.deleted_at.is_(None)))
    if user is not None:
        stored = user.password_hash.encode("ascii")
    else:
        newest = session.scalar(select(m.User.password_hash).order_by(m.User.id.desc()).limit(1))
        stored = _dummy_hash(_bcrypt_rounds(newest or "") or 12)
    matches = bcrypt.checkpw(password.encode("utf-8")[:72], stored)
    ok = user is not None and user.active and matches
    if ok:
        audit(session, user, "login", "user", user.id)
    else:
        audit(session, None, "login_fail", "user", user.id if user else None,
              detail={"username": username[:64]})
    _flush(session)
    return user if ok else None


@_atomic
def set_password(session: Session, actor: m.User | None, user_id: int, new_password: str,
                 rounds: int = 12) -> m.User:
    """Change a password (the user themself or an administrator)."""
    user = _get(session, m.User, user_id, "user")
    if actor is not None and actor.id != user.id and actor.role != "admin":
        raise PermissionDeniedError("only the user or an administrator can change a password")
    user.password_hash = hash_password(new_password, rounds)
    audit(session, actor, "update", "user", user.id, detail={"fields": ["password"]})
    _flush(session)
    return user


def list_users(session: Session, actor: m.User | None) -> list[m.User]:
    """All accounts (administrators only)."""
    if actor is not None and actor.role != "admin":
        raise PermissionDeniedError("only an administrator can list accounts")
    audit(session, actor, "read", "user_list")
    _flush(session)
    return list(session.scalars(select(m.User).order_by(m.User.username)))


def get_user(session: Session, username: str) -> m.User | None:
    """The account with this username (not soft-deleted), or None. Not audited (no patient data)."""
    return session.scalar(select(m.User).where(m.User.username == username, m.User.deleted_at.is_(None)))


# ------------------------------------------------------------------------------------------------ writes
def _next_code(session: Session, year: int) -> str:
    """The next free generated case code ``OP-<year>-<nnnn>``, without collision under concurrent creation.

    The number comes from the year's row of :class:`~osteoplan.workflow.models.CaseCodeCounter`, incremented
    with one ``UPDATE ... RETURNING``: PostgreSQL's row lock and SQLite's write lock make a concurrent creator
    wait until this transaction ends, then read the incremented value. The row is created on first use from
    the highest number already given that year (databases from before the counter). A number whose code was
    typed by hand is skipped.
    """
    prefix = f"OP-{year}-"
    counter = m.CaseCodeCounter.__table__
    if session.get(m.CaseCodeCounter, year) is None:
        used = [c[len(prefix):] for c in session.scalars(select(m.Patient.code).where(m.Patient.code.like(prefix + "%")))]
        start = max((int(x) for x in used if x.isdigit() and len(x) < 10), default=0)
        if session.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        session.execute(dialect_insert(counter).values(year=year, last=start).on_conflict_do_nothing(
            index_elements=["year"]))
    while True:
        n = session.execute(counter.update().where(counter.c.year == year).values(last=counter.c.last + 1)
                            .returning(counter.c.last)).scalar_one()
        code = f"{prefix}{n:04d}"
        if session.scalar(select(m.Patient.id).where(m.Patient.code == code)) is None:
            return code


@_atomic
def create_patient(session: Session, actor: m.User | None, data: s.PatientIn | Mapping[str, Any]) -> m.Patient:
    """Open a case. Returns the patient (``code`` generated ``OP-<year>-<nnnn>`` when not given)."""
    _require_writer(actor)
    data = _parse(s.PatientIn, data)
    if data.code and session.scalar(select(m.Patient.id).where(m.Patient.code == data.code)) is not None:
        raise ValidationError(f"the case code {data.code!r} is already used; leave it empty to get a new one")
    code = data.code or _next_code(session, today().year)
    if data.birth_date is not None:
        _not_future(data.birth_date, "birth date")
    p = m.Patient(code=code, family_name=data.family_name, given_name=data.given_name,
                  birth_date=data.birth_date.isoformat() if data.birth_date else None,
                  hospital_id=data.hospital_id, sex=data.sex,
                  birth_year=data.birth_year or (data.birth_date.year if data.birth_date else None),
                  primary_cancer=data.primary_cancer, ecog=data.ecog, karnofsky=data.karnofsky)
    check_patient(p)
    session.add(p)
    _flush(session)
    audit(session, actor, "create", "patient", p.id, patient_id=p.id)
    _flush(session)
    return p


def _score(lesion: m.Lesion, sins: dict[str, Any] | None, mirels: dict[str, Any] | None) -> None:
    from osteoplan.errors import InputError
    from osteoplan.risk.mirels import compute_mirels
    from osteoplan.risk.sins import compute_sins

    if sins is not None and mirels is not None:
        raise ValidationError("give SINS (spine) or Mirels (long bone), not both")
    try:
        if sins is not None:
            args = {"location": lesion.site if lesion.site_kind == "vertebra" else None,
                    "lesion_type": lesion.lesion_type, **sins}
            res = compute_sins(**args)
            lesion.score_system, lesion.score_total = "SINS", res.total
            lesion.score_category, lesion.score_components = res.category, res.to_dict()
        elif mirels is not None:
            res = compute_mirels(**{"lesion_type": lesion.lesion_type, **mirels})
            lesion.score_system, lesion.score_total = "Mirels", res.total
            lesion.score_category, lesion.score_components = res.band, res.to_dict()
    except TypeError as exc:
        raise ValidationError(f"unknown score component: {exc}") from None
    except InputError as exc:
        if isinstance(exc, ValidationError):
            raise
        raise ValidationError(str(exc)) from None


@_atomic
def add_lesion(session: Session, actor: m.User | None, data: s.LesionIn | Mapping[str, Any]) -> m.Lesion:
    """Add a lesion; SINS / Mirels computed by :mod:`osteoplan.risk` from the components given."""
    _require_writer(actor)
    data = _parse(s.LesionIn, data)
    patient = _get(session, m.Patient, data.patient_id, "patient")
    lesion = m.Lesion(patient=patient, site_kind=data.site_kind, site=data.site.strip(), side=data.side,
                      lesion_type=data.lesion_type, ct_series_uids=list(data.ct_series_uids),
                      description=data.description)
    if lesion.site_kind == "vertebra":
        lesion.site = lesion.site.upper()
    check_lesion(lesion)
    _score(lesion, data.sins, data.mirels)
    check_lesion(lesion)
    session.add(lesion)
    _flush(session)
    audit(session, actor, "create", "lesion", lesion.id, patient_id=patient.id)
    _flush(session)
    return lesion


@_atomic
def set_lesion_score(session: Session, actor: m.User | None, lesion_id: int, *, sins: dict[str, Any] | None = None,
                     mirels: dict[str, Any] | None = None, expected_version: int | None = None,
                     reason: str | None = None) -> m.Lesion:
    """Recompute a lesion's SINS or Mirels from new components."""
    _require_writer(actor)
    lesion = _get(session, m.Lesion, lesion_id, "lesion")
    _check_version(lesion, expected_version)
    _score(lesion, sins, mirels)
    check_lesion(lesion)
    audit(session, actor, "update", "lesion", lesion.id, patient_id=lesion.patient_id, reason=reason,
          detail={"fields": ["score"]})
    _flush(session)
    return lesion


@_atomic
def attach_plan(session: Session, actor: m.User | None, data: s.PlanIn | Mapping[str, Any]) -> m.SavedPlan:
    """Attach a planner output (``plan.json`` content, a JSON object) to a lesion."""
    _require_writer(actor)
    data = _parse(s.PlanIn, data)
    lesion = _get(session, m.Lesion, data.lesion_id, "lesion")
    plan = m.SavedPlan(lesion=lesion, plan=data.plan, label=data.label, created_by=actor_name(actor))
    session.add(plan)
    _flush(session)
    audit(session, actor, "create", "plan", plan.id, patient_id=lesion.patient_id)
    _flush(session)
    return plan


@_atomic
def create_meeting(session: Session, actor: m.User | None,
                   data: s.MeetingIn | Mapping[str, Any]) -> m.TumourBoardMeeting:
    """Record a tumour-board (RCP) meeting."""
    _require_writer(actor)
    data = _parse(s.MeetingIn, data)
    _not_future(data.meeting_date, "meeting date")
    mt = m.TumourBoardMeeting(meeting_date=data.meeting_date, specialties_present=list(data.specialties_present))
    session.add(mt)
    _flush(session)
    audit(session, actor, "create", "meeting", mt.id)
    _flush(session)
    return mt


class BoardRules:
    """Rules of the tumour board (RCP) for validating a decision (issue 15).

    - A decision is validated by board members other than its proposer (separation of duties): the proposer
      is refused whatever the quorum.
    - ``quorum``: number of distinct members (none of them the proposer) whose validation makes the decision
      valid; default 1, a configurable default without a published source (French RCP rules ask for a
      multidisciplinary meeting, not a number of signatures).
    - ``validating_roles``: account roles allowed to validate (default radiologist and tumour-board member,
      :data:`osteoplan.workflow.models.PHYSICIAN_ROLES`).

    From the environment with :meth:`from_env`: ``OSTEOPLAN_BOARD_QUORUM`` (integer >= 1) and
    ``OSTEOPLAN_BOARD_VALIDATING_ROLES`` (comma-separated roles).
    """

    def __init__(self, quorum: int = 1, validating_roles: tuple[str, ...] = m.PHYSICIAN_ROLES):
        if not isinstance(quorum, int) or quorum < 1:
            raise ValidationError(f"the board quorum is a whole number of members, at least 1 (got {quorum!r})")
        unknown = [r for r in validating_roles if r not in m.ROLES]
        if unknown or not validating_roles:
            raise ValidationError(f"validating roles must be among {', '.join(m.ROLES)} (got "
                                  f"{', '.join(validating_roles) or 'none'})")
        if "research" in validating_roles:
            raise ValidationError("the read-only research role cannot validate tumour-board decisions")
        self.quorum = quorum
        self.validating_roles = tuple(validating_roles)

    @classmethod
    def from_env(cls) -> "BoardRules":
        """Rules from ``OSTEOPLAN_BOARD_QUORUM`` / ``OSTEOPLAN_BOARD_VALIDATING_ROLES`` (defaults when unset)."""
        import os

        q = os.environ.get("OSTEOPLAN_BOARD_QUORUM", "").strip()
        roles = os.environ.get("OSTEOPLAN_BOARD_VALIDATING_ROLES", "").strip()
        try:
            quorum = int(q) if q else 1
        except ValueError:
            raise ValidationError("OSTEOPLAN_BOARD_QUORUM must be a whole number (e.g. 2)") from None
        return cls(quorum, tuple(r.strip() for r in roles.split(",") if r.strip()) if roles else m.PHYSICIAN_ROLES)

    def __repr__(self) -> str:
        return f"BoardRules(quorum={self.quorum}, validating_roles={self.validating_roles})"


@_atomic
def record_decision(session: Session, actor: m.User | None,
                    data: s.DecisionIn | Mapping[str, Any], *,
                    proposed_by: m.User | None = None) -> m.TumourBoardDecision:
    """Record a tumour-board decision (not yet validated). Reuses or creates the meeting of that date.

    The proposer is ``proposed_by`` (default the actor); a proposer can never validate the decision
    (:class:`BoardRules`)."""
    _require_writer(actor)
    data = _parse(s.DecisionIn, data)
    patient = _get(session, m.Patient, data.patient_id, "patient")
    if data.meeting_id is not None:
        meeting = _get(session, m.TumourBoardMeeting, data.meeting_id, "tumour-board meeting")
    elif data.meeting_date is not None:
        meeting = session.scalar(select(m.TumourBoardMeeting).where(
            m.TumourBoardMeeting.meeting_date == data.meeting_date, m.TumourBoardMeeting.deleted_at.is_(None)))
        if meeting is None:
            meeting = create_meeting(session, actor, s.MeetingIn(
                meeting_date=data.meeting_date, specialties_present=data.specialties_present))
        elif data.specialties_present:
            merged = list(dict.fromkeys(list(meeting.specialties_present) + data.specialties_present))
            if merged != list(meeting.specialties_present):
                meeting.specialties_present = merged
    else:
        raise ValidationError("give the tumour-board meeting (meeting_id) or its date (meeting_date)")
    lesion = _get(session, m.Lesion, data.lesion_id, "lesion") if data.lesion_id is not None else None
    proposer = proposed_by or actor
    d = m.TumourBoardDecision(meeting=meeting, patient=patient, lesion=lesion, question=data.question,
                              decision_type=data.decision_type, justification=data.justification,
                              proposed_by_id=proposer.id if proposer is not None else None)
    check_decision(d)
    session.add(d)
    _flush(session)
    audit(session, actor, "create", "decision", d.id, patient_id=patient.id)
    _flush(session)
    return d


@_atomic
def validate_decision(session: Session, actor: m.User | None, decision_id: int, *,
                      validated_by: m.User | None = None, expected_version: int | None = None,
                      at: dt.datetime | None = None, rules: BoardRules | None = None) -> m.TumourBoardDecision:
    """Validate a decision as the named board member (``validated_by``, default the actor).

    Board rules (:class:`BoardRules`, default :meth:`BoardRules.from_env`): the member has a validating role,
    is not the decision's proposer and has not validated it already; the decision becomes valid when
    ``rules.quorum`` distinct members validated it (``validated_by`` / ``validated_at`` then name the member
    who completed the quorum; each validation is kept as a :class:`~osteoplan.workflow.models.DecisionValidation`).

    Raises
    ------
    PermissionDeniedError
        The member may not validate (role, proposer, inactive account).
    ValidationError
        Already validated (by this member, or by the quorum).
    """
    _require_writer(actor)
    rules = rules or BoardRules.from_env()
    d = _get(session, m.TumourBoardDecision, decision_id, "tumour-board decision")
    _check_version(d, expected_version)
    physician = validated_by or actor
    if physician is None or physician.role not in rules.validating_roles or not physician.active:
        raise PermissionDeniedError("a tumour-board decision is validated by a named physician of the board ("
                                    + " or ".join(r.replace("_", "-") for r in rules.validating_roles)
                                    + " account)")
    if d.proposed_by_id is not None and d.proposed_by_id == physician.id:
        raise PermissionDeniedError("you proposed this decision: another board member must validate it "
                                    "(separation of duties)")
    if d.is_validated:
        raise ValidationError("this decision is already validated")
    live = [v for v in d.validations if v.deleted_at is None]
    if any(v.user_id == physician.id for v in live):
        raise ValidationError(f"you already validated this decision; {rules.quorum - len(live)} more board "
                              "member(s) must validate it")
    when = at or m.utcnow()
    v = m.DecisionValidation(decision=d, user_id=physician.id, validated_at=when)
    session.add(v)
    complete = len(live) + 1 >= rules.quorum
    if complete:
        d.validated_by_id = physician.id  # by id: the account may come from another session
        d.validated_at = when
    else:
        d.updated_at = m.utcnow()  # the decision changed (one more validation): bump its version
    check_decision(d)
    if v.validated_at.date() < d.meeting.meeting_date:
        raise ValidationError("a decision cannot be validated before the meeting that took it")
    audit(session, actor, "update", "decision", d.id, patient_id=d.patient_id,
          detail={"fields": ["validated_by", "validated_at"] if complete else ["validations"],
                  "validated_by": physician.username, "validations": len(live) + 1, "quorum": rules.quorum})
    _flush(session)
    return d


@_atomic
def record_consultation(session: Session, actor: m.User | None,
                        data: s.ConsultationIn | Mapping[str, Any]) -> m.Consultation:
    """Record the pre-operative consultation (information, consent, anaesthesia)."""
    _require_writer(actor)
    data = _parse(s.ConsultationIn, data)
    patient = _get(session, m.Patient, data.patient_id, "patient")
    decision = (_get(session, m.TumourBoardDecision, data.decision_id, "tumour-board decision")
                if data.decision_id is not None else None)
    lesion_id = data.lesion_id or (decision.lesion_id if decision else None)
    lesion = _get(session, m.Lesion, lesion_id, "lesion") if lesion_id else None
    c = m.Consultation(patient=patient, decision=decision, lesion=lesion,
                       **data.model_dump(exclude={"patient_id", "decision_id", "lesion_id"}))
    check_consultation(c)
    session.add(c)
    _flush(session)
    audit(session, actor, "create", "consultation", c.id, patient_id=patient.id)
    _flush(session)
    return c


@_atomic
def schedule_procedure(session: Session, actor: m.User | None,
                       data: s.ProcedureScheduleIn | Mapping[str, Any]) -> m.Procedure:
    """Schedule a procedure. Refused unless the tumour-board decision is validated (and is a consolidation)."""
    _require_writer(actor)
    data = _parse(s.ProcedureScheduleIn, data)
    d = _get(session, m.TumourBoardDecision, data.decision_id, "tumour-board decision")
    lesion_id = data.lesion_id or d.lesion_id
    if lesion_id is None:
        raise ValidationError("say which lesion the procedure treats (the decision names none)")
    lesion = _get(session, m.Lesion, lesion_id, "lesion")
    ptype = data.procedure_type or m.infer_procedure_type(
        lesion.site_kind, lesion.site, d.decision_type in ("screw_cement", "screw_alone"),
        d.decision_type in ("screw_cement", "cement_alone"))
    p = m.Procedure(patient=d.patient, lesion=lesion, decision=d, status="scheduled",
                    scheduled_date=data.scheduled_date, anaesthesia=data.anaesthesia, guidance=data.guidance,
                    procedure_type=ptype)
    check_procedure(p)
    session.add(p)
    _flush(session)
    audit(session, actor, "create", "procedure", p.id, patient_id=p.patient_id)
    _flush(session)
    return p


@_atomic
def log_procedure(session: Session, actor: m.User | None, procedure_id: int,
                  data: s.ProcedureLogIn | Mapping[str, Any], *, expected_version: int | None = None,
                  reason: str | None = None) -> m.Procedure:
    """Log what was done (steps, screws, cement, dose, success); marks the procedure ``done``."""
    _require_writer(actor)
    data = _parse(s.ProcedureLogIn, data)
    p = _get(session, m.Procedure, procedure_id, "procedure")
    _check_version(p, expected_version)
    if p.status == "cancelled":
        raise ValidationError("this procedure was cancelled; schedule a new one")
    fields = data.model_dump(exclude={"screws"})
    for k, v in fields.items():
        if v is not None or k in ("cement_leak", "technical_success"):
            setattr(p, k, v)
    if data.screws:
        for old in p.live_screws:
            old.deleted_at, old.deleted_by, old.deleted_reason = m.utcnow(), actor_name(actor), "procedure re-logged"
        for i, sc in enumerate(data.screws, start=1):
            p.screws.append(m.ProcedureScrew(position=i, diameter_mm=sc.diameter_mm, length_mm=sc.length_mm,
                                             cannulated=sc.cannulated))
    if data.procedure_type is None and p.procedure_type != "kyphoplasty":  # kyphoplasty: entered, not inferable
        p.procedure_type = m.infer_procedure_type(p.lesion.site_kind, p.lesion.site, bool(p.live_screws),
                                                  bool(p.cement_volume_ml))
    p.status = "done"
    check_procedure(p)
    audit(session, actor, "update", "procedure", p.id, patient_id=p.patient_id, reason=reason,
          detail={"fields": sorted(k for k in fields if fields[k] is not None) + (["screws"] if data.screws else [])})
    _flush(session)
    return p


@_atomic
def record_post_op(session: Session, actor: m.User | None, procedure_id: int, data: s.PostOpIn | Mapping[str, Any],
                   *, expected_version: int | None = None, reason: str | None = None) -> m.Procedure:
    """Record collar removal and discharge dates of a procedure that was done."""
    _require_writer(actor)
    data = _parse(s.PostOpIn, data)
    p = _get(session, m.Procedure, procedure_id, "procedure")
    _check_version(p, expected_version)
    changed = []
    for k, v in data.model_dump().items():
        if v is not None:
            setattr(p, k, v)
            changed.append(k)
    check_procedure(p)
    audit(session, actor, "update", "procedure", p.id, patient_id=p.patient_id, reason=reason,
          detail={"fields": changed})
    _flush(session)
    return p


def _finite(value: Any, field: str, *, required: bool = False, nonneg: bool = True) -> float | None:
    """A figure of a verification result as a float (None when absent and not *required*)."""
    if value is None:
        if required:
            raise ValidationError(f"the verification result has no {field}; store the whole result of "
                                  "'osteoplan verify --json'")
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{field} of the verification result is not a number") from None
    if not math.isfinite(v) or (nonneg and v < 0):
        raise ValidationError(f"{field} of the verification result must be a finite "
                              f"{'non-negative ' if nonneg else ''}number")
    return v


def verification_columns(result: Mapping[str, Any]) -> dict[str, Any]:
    """The stored columns of a :class:`~osteoplan.workflow.models.Verification` from the result of
    :func:`osteoplan.verification.verify_control` (the ``--json`` object).

    Parameters
    ----------
    result : mapping
        ``stage``, ``tip_lps_mm`` (3 floats, planning CT frame, LPS mm), ``tip_to_plan_mm``,
        ``angle_to_plan_deg``, ``registration`` (``residual_median_mm``, ``surface_overlap``), ``instrument``
        (``diameter_mm``, ``visible_length_mm``) and at the screw stage ``postop`` (``entry_error_mm``,
        ``tip_error_mm``, ``angle_error_deg``, ``max_breach_mm``, ``breach_where``, ``grade``, ``grade_source``,
        ``breach_note``).

    Raises
    ------
    ValidationError
        A missing or non-finite figure, an unknown stage or grade, a screw-stage result without post-operative
        figures.
    """
    stage = result.get("stage")
    _one_of(stage, m.VERIFICATION_STAGES, "verification stage")
    tip = result.get("tip_lps_mm")
    if not isinstance(tip, (list, tuple)) or len(tip) != 3:
        raise ValidationError("the verification result has no tip position (tip_lps_mm: three numbers, LPS mm)")
    reg = result.get("registration") or {}
    inst = result.get("instrument") or {}
    out: dict[str, Any] = {
        "stage": stage,
        "tip_lps_mm": [_finite(x, "tip_lps_mm", required=True, nonneg=False) for x in tip],
        "tip_to_plan_mm": _finite(result.get("tip_to_plan_mm"), "tip_to_plan_mm", required=True),
        "angle_to_plan_deg": _finite(result.get("angle_to_plan_deg"), "angle_to_plan_deg", required=True),
        "tip_to_target_mm": _finite(result.get("tip_to_target_mm"), "tip_to_target_mm"),
        "lateral_offset_at_target_mm": _finite(result.get("lateral_offset_at_target_mm"),
                                               "lateral_offset_at_target_mm"),
        "registration_residual_median_mm": _finite(reg.get("residual_median_mm"), "registration residual",
                                                   required=True),
        "registration_surface_overlap": _finite(reg.get("surface_overlap"), "registration surface overlap"),
        "instrument_diameter_mm": _finite(inst.get("diameter_mm"), "instrument diameter"),
        "instrument_length_mm": _finite(inst.get("visible_length_mm"), "instrument length"),
    }
    if stage == "screw":
        po = result.get("postop")
        if not isinstance(po, Mapping):
            raise ValidationError("a screw-stage result must carry its post-operative figures (postop); run "
                                  "'osteoplan verify --stage screw' again")
        grade = po.get("grade")
        if grade is not None:
            _one_of(grade, m.BREACH_GRADES, "breach grade")
        out.update(entry_error_mm=_finite(po.get("entry_error_mm"), "entry_error_mm", required=True),
                   tip_error_mm=_finite(po.get("tip_error_mm"), "tip_error_mm", required=True),
                   angle_error_deg=_finite(po.get("angle_error_deg"), "angle_error_deg", required=True),
                   outside_cortex_mm=_finite(po.get("max_breach_mm"), "max_breach_mm"),
                   outside_cortex_where=(str(po["breach_where"])[:200] if po.get("breach_where") else None),
                   breach_grade=grade, breach_grade_source=po.get("grade_source"),
                   breach_note=po.get("breach_note") or (None if grade else "breach not assessed"))
    return out


@_atomic
def record_verification(session: Session, actor: m.User | None,
                        data: s.VerificationIn | Mapping[str, Any]) -> m.Verification:
    """Store a control-CT check (``osteoplan verify``) with its procedure; audited as a ``verification`` create.

    The saved plan must be one of the procedure's lesion; a cancelled procedure takes no check. Intra-operative
    checks (trocar, pin) are stored whatever the procedure's status (the procedure is logged afterwards).

    Raises
    ------
    ValidationError
        The plan is of another lesion, the procedure was cancelled, or the result is incomplete
        (:func:`verification_columns`).
    NotFoundError
        No such procedure or plan.
    """
    _require_writer(actor)
    data = _parse(s.VerificationIn, data)
    proc = _get(session, m.Procedure, data.procedure_id, "procedure")
    plan = _get(session, m.SavedPlan, data.saved_plan_id, "plan")
    if plan.lesion_id != proc.lesion_id:
        raise ValidationError("the plan was made for another lesion than the one this procedure treats; check the "
                              "control CT against this lesion's plan")
    if proc.status == "cancelled":
        raise ValidationError("this procedure was cancelled; a control CT cannot be stored with it")
    if data.control_source is not None:
        _one_of(data.control_source, ("upload", "pacs"), "control CT source")
    if data.control_series_uid is not None:
        uid = data.control_series_uid
        if not uid or len(uid) > 64 or any(c not in "0123456789." for c in uid):
            raise ValidationError("the control CT's series UID is not a DICOM UID (digits and dots, at most 64)")
    cols = verification_columns(data.result)
    v = m.Verification(procedure=proc, patient_id=proc.patient_id, saved_plan=plan, job_id=data.job_id,
                       control_source=data.control_source, control_series_uid=data.control_series_uid,
                       figures=dict(data.result), measured_by=actor_name(actor), **cols)
    session.add(v)
    _flush(session)
    audit(session, actor, "create", "verification", v.id, patient_id=proc.patient_id,
          detail={"procedure_id": proc.id, "stage": v.stage, "saved_plan_id": plan.id})
    _flush(session)
    return v


def verifications_of(session: Session, actor: m.User | None, procedure_id: int) -> list[m.Verification]:
    """The live control-CT checks of a procedure, oldest first (a read of the procedure, audited)."""
    proc = _get(session, m.Procedure, procedure_id, "procedure")
    rows = [v for v in proc.verifications if v.deleted_at is None]
    audit(session, actor, "read", "verification", None, patient_id=proc.patient_id,
          detail={"procedure_id": proc.id, "n": len(rows)})
    _flush(session)
    return rows


@_atomic
def record_follow_up(session: Session, actor: m.User | None, data: s.FollowUpIn | Mapping[str, Any]) -> m.FollowUp:
    """Record a follow-up visit (pain NRS, analgesics, imaging, adjuvant treatment)."""
    _require_writer(actor)
    data = _parse(s.FollowUpIn, data)
    proc = _get(session, m.Procedure, data.procedure_id, "procedure")
    f = m.FollowUp(patient=proc.patient, procedure=proc, **data.model_dump(exclude={"procedure_id"}))
    check_follow_up(f)
    session.add(f)
    _flush(session)
    audit(session, actor, "create", "follow_up", f.id, patient_id=f.patient_id)
    _flush(session)
    return f


@_atomic
def record_adverse_event(session: Session, actor: m.User | None,
                         data: s.AdverseEventIn | Mapping[str, Any]) -> m.AdverseEvent:
    """Record an adverse event with its classification version and grade (e.g. "CIRSE 2017", "2")."""
    _require_writer(actor)
    data = _parse(s.AdverseEventIn, data)
    proc = _get(session, m.Procedure, data.procedure_id, "procedure")
    a = m.AdverseEvent(patient=proc.patient, procedure=proc, **data.model_dump(exclude={"procedure_id", "grade_status"}),
                       grade_status=data.grade_status or "final")
    check_adverse_event(a)
    session.add(a)
    _flush(session)
    audit(session, actor, "create", "adverse_event", a.id, patient_id=a.patient_id)
    _flush(session)
    return a


@_atomic
def record_death(session: Session, actor: m.User | None, patient_id: int, date_of_death: dt.date, *,
                 expected_version: int | None = None, reason: str | None = None) -> m.Patient:
    """Record the date of death (not before a procedure or a follow-up visit)."""
    _require_writer(actor)
    p = _get(session, m.Patient, patient_id, "patient")
    _check_version(p, expected_version)
    p.date_of_death = date_of_death
    check_patient(p)
    audit(session, actor, "update", "patient", p.id, patient_id=p.id, reason=reason,
          detail={"fields": ["date_of_death"]})
    _flush(session)
    return p


#: Fields :func:`update_record` may change, per entity (links and computed fields excluded).
EDITABLE: dict[str, tuple[str, ...]] = {
    "patient": ("family_name", "given_name", "birth_date", "hospital_id", "sex", "birth_year", "primary_cancer",
                "ecog", "karnofsky", "date_of_death"),
    "lesion": ("site_kind", "site", "side", "lesion_type", "ct_series_uids", "description"),
    "plan": ("label",),
    "meeting": ("meeting_date", "specialties_present"),
    "decision": ("question", "decision_type", "justification"),
    "consultation": ("consultation_date", "physician", "benefits_explained", "risks_explained", "consent_obtained",
                     "consent_date", "anaesthesia", "info_sheet_language"),
    "procedure": ("scheduled_date", "procedure_date", "operators", "anaesthesia", "guidance", "levels_treated",
                  "hydrodissection_volume_ml", "trocar", "guide_pin", "cement_volume_ml", "cement_leak",
                  "leak_sites", "duration_min", "dlp_mgy_cm", "fluoroscopy_time_s", "technical_success", "notes",
                  "collar_removed_date", "discharge_date", "status", "procedure_type"),
    "follow_up": ("timepoint", "visit_date", "pain_nrs", "analgesics", "opioid_mme_mg_day", "imaging",
                  "imaging_findings", "adjuvant_radiotherapy", "adjuvant_chemotherapy", "notes"),
    "adverse_event": ("event_date", "description", "grade", "classification", "cement_leak_related",
                      "grade_status"),
    "user": ("display_name", "role", "active"),
}
_IDENTITY = ("family_name", "given_name", "birth_date", "hospital_id")
_DATE_FIELDS = {"birth_date", "date_of_death", "meeting_date", "consultation_date", "consent_date",
                "scheduled_date", "procedure_date", "collar_removed_date", "discharge_date", "visit_date",
                "event_date"}


def _coerce(col: Any, field: str, v: Any) -> Any:
    """A value for column *col* from an edit (JSON or form): the column's Python type, or ValidationError."""
    name = field.replace("_", " ")
    t = col.type
    if isinstance(t, Boolean):
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return v.strip().lower() in ("true", "yes", "on", "1")
        raise ValidationError(f"{name} is yes or no (true / false)")
    if isinstance(t, Integer):
        if isinstance(v, bool):
            raise ValidationError(f"{name} must be a whole number")
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, str):
            try:
                v = int(v.strip())
            except ValueError:
                raise ValidationError(f"{name} must be a whole number") from None
        if not isinstance(v, int) or abs(v) > 2**31:
            raise ValidationError(f"{name} must be a whole number")
        return v
    if isinstance(t, Float):
        if isinstance(v, str):
            try:
                v = float(v.strip())
            except ValueError:
                raise ValidationError(f"{name} must be a number") from None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValidationError(f"{name} must be a number")
        return float(v)
    if isinstance(t, Date) or field in _DATE_FIELDS:
        if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
            return v
        raise ValidationError(f"{name} is not a date; use YYYY-MM-DD")
    if isinstance(t, JSON):
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return v
        raise ValidationError(f"{name} must be a list of text values")
    if isinstance(t, (String, EncryptedText)) or hasattr(t, "impl"):
        if not isinstance(v, str):
            raise ValidationError(f"{name} must be text")
        return v
    return v


def _recheck(obj: Any) -> None:
    check(obj)
    # cross-record rules: a changed date may break a neighbour's rule
    patient = obj if isinstance(obj, m.Patient) else getattr(obj, "patient", None)
    if isinstance(obj, (m.Procedure, m.Consultation)) and patient is not None:
        check_patient(patient)
        for f in patient.follow_ups:
            if f.deleted_at is None and (not isinstance(obj, m.Procedure) or f.procedure_id == obj.id):
                check_follow_up(f)
        for a in patient.adverse_events:
            if a.deleted_at is None and (not isinstance(obj, m.Procedure) or a.procedure_id == obj.id):
                check_adverse_event(a)
    if isinstance(obj, m.TumourBoardMeeting):
        for d in obj.decisions:
            for p in d.patient.procedures:
                if p.decision_id == d.id and p.deleted_at is None:
                    check_procedure(p)


@_atomic
def update_record(session: Session, actor: m.User | None, entity: str, record_id: int, changes: Mapping[str, Any],
                  *, expected_version: int, reason: str | None = None) -> Any:
    """Edit fields of a record, with optimistic locking and the entity's rules re-checked.

    Parameters
    ----------
    entity : str
        A key of :data:`EDITABLE` (``"patient"``, ``"procedure"``, ...).
    changes : mapping
        Field -> new value (dates as ``date`` or ISO text). An empty value (``""``, blank text or ``None``)
        clears an optional field; a required free-text field whose default is empty (decision justification,
        benefits / risks explained) becomes ``""``; any other required field cannot be emptied
        (:class:`~osteoplan.errors.ValidationError` naming the field).
    expected_version : int
        The ``version`` the user saw when opening the form; a different current version raises
        :class:`~osteoplan.errors.ConflictError` ("changed by someone else since you opened it; reload").

    Notes
    -----
    A save that changes nothing writes no update but is still an access to patient data: it is logged as a
    ``read`` whose detail is ``{"save": "unchanged", "fields": [...]}`` (the issue's "every read and write of
    patient data goes to the audit log").

    Raises
    ------
    ValidationError, ConflictError, NotFoundError, PermissionDeniedError
    """
    _require_writer(actor)
    if entity not in EDITABLE:
        raise ValidationError(f"unknown record type {entity!r}; one of {', '.join(EDITABLE)}")
    if entity == "user" and actor is not None and actor.role != "admin":
        raise PermissionDeniedError("only an administrator can edit accounts")
    unknown = set(changes) - set(EDITABLE[entity])
    if unknown:
        raise ValidationError(f"these fields of a {entity} cannot be edited here: {', '.join(sorted(unknown))}")
    obj = _get(session, m.ENTITIES[entity], record_id, entity)
    _check_version(obj, expected_version)
    table = m.ENTITIES[entity].__table__
    changed = []
    for k, v in changes.items():
        if k in _DATE_FIELDS and isinstance(v, str) and v.strip():
            try:
                v = dt.date.fromisoformat(v.strip())
            except ValueError:
                raise ValidationError(f"{k.replace('_', ' ')} is not a date; use YYYY-MM-DD") from None  # value not echoed
        if isinstance(v, str) and not v.strip():
            v = ""
        col = table.c[k]
        if v != "" and v is not None:
            v = _coerce(col, k, v)
        if v == "" or v is None:
            # optional column: empty clears it. NOT NULL free text with an empty default (justification,
            # benefits/risks explained): kept as "". Other NOT NULL columns: required.
            if col.nullable:
                v = None
            elif col.default is not None and col.default.is_scalar and col.default.arg == "":
                v = ""
            else:
                raise ValidationError(f"{k.replace('_', ' ')} of a {entity.replace('_', ' ')} is required and "
                                      "cannot be emptied; enter a value (or leave the current one)")
        if k == "birth_date" and isinstance(v, dt.date):
            v = v.isoformat()
        if getattr(obj, k) != v:
            setattr(obj, k, v)
            changed.append(k)
    if not changed:
        # a save that changes nothing is still an access to patient data: logged as a read
        audit(session, actor, "read", entity, obj.id, patient_id=_patient_of(obj), reason=reason,
              detail={"save": "unchanged", "fields": sorted(changes)})
        _flush(session)
        return obj
    _recheck(obj)
    audit(session, actor, "update", entity, obj.id, patient_id=_patient_of(obj), reason=reason,
          detail={"fields": changed})
    _flush(session)
    return obj


@_atomic
def soft_delete(session: Session, actor: m.User | None, entity: str, record_id: int, reason: str, *,
                expected_version: int | None = None) -> Any:
    """Mark a record deleted (who, when, why). Nothing is removed; the reason is required."""
    _require_writer(actor)
    if not (reason or "").strip():
        raise ValidationError("say why the record is deleted (the reason is kept with the record)")
    if entity not in m.ENTITIES:
        raise ValidationError(f"unknown record type {entity!r}")
    obj = _get(session, m.ENTITIES[entity], record_id, entity)
    _check_version(obj, expected_version)
    if entity == "plan":  # an approved plan version is locked
        from osteoplan.workflow.plan_versions import check_deletable

        check_deletable(session, obj.id)
    obj.deleted_at, obj.deleted_by, obj.deleted_reason = m.utcnow(), actor_name(actor), reason.strip()
    audit(session, actor, "delete", entity, obj.id, patient_id=_patient_of(obj), reason=reason.strip())
    _flush(session)
    return obj


# ------------------------------------------------------------------------------------------------ reads
def get_record(session: Session, actor: m.User | None, entity: str, record_id: int, reason: str | None = None,
               include_deleted: bool = False) -> Any:
    """One record (ORM object) by entity name and id; logs a read."""
    if entity not in m.ENTITIES:
        raise ValidationError(f"unknown record type {entity!r}")
    obj = _get(session, m.ENTITIES[entity], record_id, entity, include_deleted=include_deleted)
    if entity == "patient" and not sees_identity(actor):
        raise PermissionDeniedError("research accounts see pseudonymised case views only (use get_case)")
    audit(session, actor, "read", entity, obj.id, patient_id=_patient_of(obj), reason=reason)
    _flush(session)
    return obj


def get_patient(session: Session, actor: m.User | None, patient_id: int, reason: str | None = None) -> m.Patient:
    """The patient ORM object with its records (identity readable): not for research accounts. Logs a read."""
    return get_record(session, actor, "patient", patient_id, reason)


def _case_query():
    return select(m.Patient).options(
        selectinload(m.Patient.lesions).selectinload(m.Lesion.plans),
        selectinload(m.Patient.decisions).selectinload(m.TumourBoardDecision.meeting),
        selectinload(m.Patient.decisions).selectinload(m.TumourBoardDecision.validated_by),
        selectinload(m.Patient.decisions).selectinload(m.TumourBoardDecision.proposed_by),
        selectinload(m.Patient.decisions).selectinload(m.TumourBoardDecision.validations)
        .selectinload(m.DecisionValidation.user),
        selectinload(m.Patient.consultations),
        selectinload(m.Patient.procedures).selectinload(m.Procedure.screws),
        selectinload(m.Patient.follow_ups),
        selectinload(m.Patient.adverse_events),
    )


def _live(rows):
    return [r for r in rows if r.deleted_at is None]


def index_date(p: m.Patient) -> dt.date | None:
    """The case's index date (first tumour-board meeting, else first procedure), origin of research day offsets."""
    dates = [d.meeting.meeting_date for d in _live(p.decisions)]
    if not dates:
        dates = [x.procedure_date or x.scheduled_date for x in _live(p.procedures)]
    return min(dates) if dates else None


class _Dates:
    """Formats dates for a view: ISO for clinical users; year + day offset for research."""

    def __init__(self, pseudonymised: bool, origin: dt.date | None):
        self.pseudo, self.origin = pseudonymised, origin

    def __call__(self, d: dt.date | dt.datetime | None) -> Any:
        if d is None:
            return None
        if isinstance(d, dt.datetime):
            d = d.date() if self.pseudo else d
            if not self.pseudo:
                return d.isoformat()
        if not self.pseudo:
            return d.isoformat()
        return {"year": d.year, "day": (d - self.origin).days if self.origin else None}


def consolidation_type(p: m.Procedure) -> str:
    """What a done procedure did: ``screw_cement``, ``screw_alone``, ``cement_alone`` or ``other``."""
    screws = bool(p.live_screws)
    cement = bool(p.cement_volume_ml)
    if screws and cement:
        return "screw_cement"
    if screws:
        return "screw_alone"
    if cement:
        return "cement_alone"
    return "other"


def is_complex(p: m.Procedure) -> bool:
    """Complex consolidation: a screw, hydrodissection, or more than one level in one session.

    A project definition (no published one was found): simple = cementoplasty of one level without
    hydrodissection; everything else is complex (it needs osteosynthesis material, visceral displacement or
    several trocars).
    """
    return bool(p.live_screws) or bool(p.hydrodissection_volume_ml) or (p.levels_treated or 1) > 1


def pathway_stage(p: m.Patient) -> str:
    """Where the case is: referred, rcp_pending, rcp_validated, consulted, scheduled, done, followed, deceased."""
    if p.date_of_death is not None:
        return "deceased"
    if _live(p.follow_ups):
        return "followed"
    procs = _live(p.procedures)
    if any(x.status == "done" for x in procs):
        return "done"
    if any(x.status == "scheduled" for x in procs):
        return "scheduled"
    if _live(p.consultations):
        return "consulted"
    decs = _live(p.decisions)
    if any(d.is_validated for d in decs):
        return "rcp_validated"
    if decs:
        return "rcp_pending"
    return "referred"


#: Placeholder of free-text fields in pseudonymised views.
FREE_TEXT_WITHHELD = "[free text withheld]"


def case_view(p: m.Patient, pseudonymised: bool) -> dict[str, Any]:
    """Plain-dict view of a whole case (no audit: use :func:`get_case`). Soft-deleted records are left out.

    With ``pseudonymised`` no identity field is included, dates become ``{"year", "day"}`` (days from the
    index date, see :func:`index_date`), free-text fields become :data:`FREE_TEXT_WITHHELD` (they may carry
    identifying details) and operator / physician names, CT series UIDs and plan contents are left out.
    """
    D = _Dates(pseudonymised, index_date(p))

    def T(value: str | None) -> str | None:  # free text may carry identifying details: withheld from research
        return value if not pseudonymised else (FREE_TEXT_WITHHELD if value else value)

    out: dict[str, Any] = {
        "id": p.id, "code": p.code, "version": p.version, "pseudonymised": pseudonymised,
        "sex": p.sex, "birth_year": p.birth_year, "primary_cancer": p.primary_cancer, "ecog": p.ecog,
        "karnofsky": p.karnofsky, "date_of_death": D(p.date_of_death), "stage": pathway_stage(p),
        "index_date": D(index_date(p)),
    }
    if not pseudonymised:
        out["identity"] = {k: getattr(p, k) for k in _IDENTITY}
    out["lesions"] = [{
        "id": x.id, "version": x.version, "site_kind": x.site_kind, "site": x.site, "side": x.side,
        "lesion_type": x.lesion_type, "score_system": x.score_system, "score_total": x.score_total,
        "score_category": x.score_category, "score_components": x.score_components,
        "ct_series_uids": [] if pseudonymised else list(x.ct_series_uids or []),
        "description": T(x.description),
        "plans": [{"id": pl.id, "label": pl.label, "created_at": D(pl.created_at),
                   **({"plan": pl.plan} if not pseudonymised else {})} for pl in _live(x.plans)],
    } for x in _live(p.lesions)]
    out["decisions"] = [{
        "id": d.id, "version": d.version, "meeting_id": d.meeting_id, "meeting_date": D(d.meeting.meeting_date),
        "specialties_present": list(d.meeting.specialties_present or []), "lesion_id": d.lesion_id,
        "question": T(d.question), "decision_type": d.decision_type,
        "decision_label": m.DECISION_LABELS.get(d.decision_type, d.decision_type), "justification": T(d.justification),
        "validated": d.is_validated,
        "validated_by": (d.validated_by.display_name or d.validated_by.username) if d.validated_by and
        not pseudonymised else None,
        "validated_at": D(d.validated_at),
        "proposed_by": _name(d.proposed_by) if not pseudonymised else None,
        "proposed_by_id": d.proposed_by_id if not pseudonymised else None,
        "validations": [{"by": None if pseudonymised else _name(v.user), "at": D(v.validated_at)}
                        for v in _live(d.validations)],
    } for d in _live(p.decisions)]
    out["consultations"] = [{
        "id": c.id, "version": c.version, "decision_id": c.decision_id, "lesion_id": c.lesion_id,
        "consultation_date": D(c.consultation_date), "physician": None if pseudonymised else c.physician,
        "benefits_explained": T(c.benefits_explained), "risks_explained": T(c.risks_explained),
        "consent_obtained": c.consent_obtained, "consent_date": D(c.consent_date), "anaesthesia": c.anaesthesia,
        "info_sheet_language": c.info_sheet_language,
    } for c in _live(p.consultations)]
    out["procedures"] = [{
        "id": x.id, "version": x.version, "lesion_id": x.lesion_id, "decision_id": x.decision_id,
        "status": x.status, "scheduled_date": D(x.scheduled_date), "procedure_date": D(x.procedure_date),
        "operators": [] if pseudonymised else list(x.operators or []), "anaesthesia": x.anaesthesia,
        "guidance": x.guidance, "levels_treated": x.levels_treated,
        "hydrodissection_volume_ml": x.hydrodissection_volume_ml, "trocar": x.trocar, "guide_pin": x.guide_pin,
        "screws": [{"position": sc.position, "diameter_mm": sc.diameter_mm, "length_mm": sc.length_mm,
                    "cannulated": sc.cannulated} for sc in x.live_screws],
        "cement_volume_ml": x.cement_volume_ml, "cement_leak": x.cement_leak, "leak_sites": list(x.leak_sites or []),
        "duration_min": x.duration_min, "dlp_mgy_cm": x.dlp_mgy_cm, "fluoroscopy_time_s": x.fluoroscopy_time_s,
        "technical_success": x.technical_success, "notes": None if pseudonymised else x.notes,
        "collar_removed_date": D(x.collar_removed_date), "discharge_date": D(x.discharge_date),
        "length_of_stay_days": ((x.discharge_date - x.procedure_date).days
                                if x.discharge_date and x.procedure_date else None),
        "consolidation_type": consolidation_type(x) if x.status == "done" else None,
        "procedure_type": x.procedure_type,
        "procedure_type_label": m.PROCEDURE_TYPE_LABELS.get(x.procedure_type or "", x.procedure_type),
        "complex": is_complex(x) if x.status == "done" else None,
    } for x in _live(p.procedures)]
    out["follow_ups"] = [{
        "id": f.id, "version": f.version, "procedure_id": f.procedure_id, "timepoint": f.timepoint,
        "visit_date": D(f.visit_date), "pain_nrs": f.pain_nrs, "analgesics": T(f.analgesics),
        "opioid_mme_mg_day": f.opioid_mme_mg_day, "imaging": f.imaging, "imaging_findings": T(f.imaging_findings),
        "adjuvant_radiotherapy": f.adjuvant_radiotherapy, "adjuvant_chemotherapy": f.adjuvant_chemotherapy,
        "notes": None if pseudonymised else f.notes,
    } for f in sorted(_live(p.follow_ups), key=lambda f: (f.procedure_id, m.TIMEPOINTS.index(f.timepoint)))]
    out["adverse_events"] = [{
        "id": a.id, "version": a.version, "procedure_id": a.procedure_id, "event_date": D(a.event_date),
        "description": T(a.description), "classification": a.classification, "grade": a.grade,
        "cement_leak_related": a.cement_leak_related, "grade_status": a.grade_status or "final",
    } for a in _live(p.adverse_events)]
    out["timeline"] = _timeline(p, D)
    return out


def _name(u: m.User | None) -> str | None:
    return (u.display_name or u.username) if u is not None else None


def _timeline(p: m.Patient, D: _Dates) -> list[dict[str, Any]]:
    ev: list[tuple[dt.date, int, dict[str, Any]]] = []
    for d in _live(p.decisions):
        ev.append((d.meeting.meeting_date, 0, {"kind": "rcp", "id": d.id, "label": "Tumour board: "
                   + m.DECISION_LABELS.get(d.decision_type, d.decision_type)
                   + ("" if d.is_validated else " (not validated)")}))
    for c in _live(p.consultations):
        ev.append((c.consultation_date, 1, {"kind": "consultation", "id": c.id, "label": "Consultation"
                   + (" - consent recorded" if c.consent_obtained else "")}))
    for x in _live(p.procedures):
        if x.status == "done":
            ev.append((x.procedure_date, 2, {"kind": "procedure", "id": x.id, "label": "Procedure: "
                       + m.DECISION_LABELS.get(consolidation_type(x), consolidation_type(x)) + f" ({x.lesion.site})"}))
            if x.collar_removed_date:
                ev.append((x.collar_removed_date, 3, {"kind": "collar", "id": x.id, "label": "Collar removed"}))
            if x.discharge_date:
                ev.append((x.discharge_date, 4, {"kind": "discharge", "id": x.id, "label": "Discharge"}))
        else:
            ev.append((x.scheduled_date, 2, {"kind": "procedure", "id": x.id, "label": f"Procedure {x.status}"}))
    for f in _live(p.follow_ups):
        lab = f"Follow-up {f.timepoint}" + (f": pain NRS {f.pain_nrs}" if f.pain_nrs is not None else "")
        ev.append((f.visit_date, 5, {"kind": "follow_up", "id": f.id, "label": lab}))
    for a in _live(p.adverse_events):
        ev.append((a.event_date, 6, {"kind": "adverse_event", "id": a.id,
                                     "label": f"Adverse event {a.classification} grade {a.grade}"}))
    if p.date_of_death:
        ev.append((p.date_of_death, 9, {"kind": "death", "id": p.id, "label": "Death"}))
    ev.sort(key=lambda t: (t[0], t[1]))
    return [{"date": D(d), **e} for d, _, e in ev]


def get_case(session: Session, actor: m.User | None, case_id: int, reason: str | None = None) -> dict[str, Any]:
    """The whole case as a dict (pseudonymised for research accounts). Logs a read with the reason."""
    p = (session.scalar(_case_query().where(m.Patient.id == case_id))
         if isinstance(case_id, int) and 0 < case_id <= MAX_ID else None)
    if p is None or p.deleted_at is not None:
        raise NotFoundError(f"no case with id {case_id} (it may have been deleted)")
    pseudo = not sees_identity(actor)
    audit(session, actor, "read", "patient", p.id, patient_id=p.id, reason=reason,
          detail={"view": "pseudonymised" if pseudo else "full"})
    _flush(session)
    return case_view(p, pseudo)


def case_summary(p: m.Patient, pseudonymised: bool) -> dict[str, Any]:
    """One row of the case list."""
    procs = [x for x in _live(p.procedures) if x.status == "done"]
    last = max(procs, key=lambda x: x.procedure_date) if procs else None
    decs = _live(p.decisions)
    D = _Dates(pseudonymised, index_date(p))
    row = {
        "id": p.id, "code": p.code, "version": p.version, "primary_cancer": p.primary_cancer,
        "sites": sorted({x.site for x in _live(p.lesions)}), "stage": pathway_stage(p),
        "last_decision": decs[-1].decision_type if decs else None,
        "last_procedure_date": D(last.procedure_date) if last else None,
        "procedures": len(procs), "deceased": p.date_of_death is not None,
    }
    if not pseudonymised:
        row["display_name"] = " ".join(x for x in (p.family_name, p.given_name) if x and x != UNREADABLE) or None
    return row


def _summaries(session: Session, pats: list[Any], pseudonymised: bool) -> list[dict[str, Any]]:
    """Case-list rows for patient rows ``(id, code, version, primary_cancer, date_of_death, family_name,
    given_name)``: the same dicts as :func:`case_summary`, from five narrow queries over the child tables of
    these patients only (no ORM object per child record)."""
    ids = [r[0] for r in pats]
    if not ids:
        return []
    sites: dict[int, set[str]] = {}
    for pid, site in session.execute(select(m.Lesion.patient_id, m.Lesion.site).where(
            m.Lesion.patient_id.in_(ids), m.Lesion.deleted_at.is_(None))):
        sites.setdefault(pid, set()).add(site)
    decs: dict[int, list[tuple]] = {}
    for row in session.execute(
            select(m.TumourBoardDecision.patient_id, m.TumourBoardDecision.decision_type,
                   m.TumourBoardDecision.validated_by_id, m.TumourBoardDecision.validated_at,
                   m.TumourBoardMeeting.meeting_date)
            .join(m.TumourBoardMeeting, m.TumourBoardDecision.meeting_id == m.TumourBoardMeeting.id)
            .where(m.TumourBoardDecision.patient_id.in_(ids), m.TumourBoardDecision.deleted_at.is_(None))
            .order_by(m.TumourBoardDecision.id)):
        decs.setdefault(row[0], []).append(row[1:])
    procs: dict[int, list[tuple]] = {}
    for pid, status, pdate, sdate in session.execute(
            select(m.Procedure.patient_id, m.Procedure.status, m.Procedure.procedure_date, m.Procedure.scheduled_date)
            .where(m.Procedure.patient_id.in_(ids), m.Procedure.deleted_at.is_(None)).order_by(m.Procedure.id)):
        procs.setdefault(pid, []).append((status, pdate, sdate))
    consulted = set(session.scalars(select(m.Consultation.patient_id).distinct().where(
        m.Consultation.patient_id.in_(ids), m.Consultation.deleted_at.is_(None))))
    followed = set(session.scalars(select(m.FollowUp.patient_id).distinct().where(
        m.FollowUp.patient_id.in_(ids), m.FollowUp.deleted_at.is_(None))))
    out = []
    for pid, code, version, cancer, death, family, given in pats:
        pd, dd = procs.get(pid, []), decs.get(pid, [])
        done = [x for x in pd if x[0] == "done"]
        # same order of rules as pathway_stage()
        if death is not None:
            stage = "deceased"
        elif pid in followed:
            stage = "followed"
        elif done:
            stage = "done"
        elif any(x[0] == "scheduled" for x in pd):
            stage = "scheduled"
        elif pid in consulted:
            stage = "consulted"
        elif any(d[1] is not None and d[2] is not None for d in dd):
            stage = "rcp_validated"
        elif dd:
            stage = "rcp_pending"
        else:
            stage = "referred"
        origin = (min(d[3] for d in dd) if dd else
                  min((x[1] or x[2] for x in pd), default=None))  # index_date()
        last = max(done, key=lambda x: x[1]) if done else None
        D = _Dates(pseudonymised, origin)
        row = {"id": pid, "code": code, "version": version, "primary_cancer": cancer,
               "sites": sorted(sites.get(pid, ())), "stage": stage, "last_decision": dd[-1][0] if dd else None,
               "last_procedure_date": D(last[1]) if last else None, "procedures": len(done),
               "deceased": death is not None}
        if not pseudonymised:
            row["display_name"] = " ".join(x for x in (family, given) if x and x != UNREADABLE) or None
        out.append(row)
    return out


def stage_predicate(stage: str):
    """SQL condition on :class:`~osteoplan.workflow.models.Patient` rows at :func:`pathway_stage` *stage*.

    The same rules in the same order as :func:`pathway_stage`, as EXISTS sub-queries on the child tables'
    indexed ``patient_id`` (so a stage filter pages in SQL instead of summarising every case in Python).
    """
    from sqlalchemy import and_, exists, not_

    P = m.Patient

    def ex(model, *conds):
        return exists().where(model.patient_id == P.id, model.deleted_at.is_(None), *conds)

    D = m.TumourBoardDecision
    steps = [
        ("deceased", P.date_of_death.is_not(None)),
        ("followed", ex(m.FollowUp)),
        ("done", ex(m.Procedure, m.Procedure.status == "done")),
        ("scheduled", ex(m.Procedure, m.Procedure.status == "scheduled")),
        ("consulted", ex(m.Consultation)),
        ("rcp_validated", ex(D, D.validated_by_id.is_not(None), D.validated_at.is_not(None))),
        ("rcp_pending", ex(D)),
        ("referred", None),
    ]
    names = [n for n, _ in steps]
    if stage not in names:
        raise ValidationError(f"stage {stage!r} is not one of {', '.join(names)}")
    conds = []
    for name, cond in steps:
        if name == stage:
            if cond is not None:
                conds.append(cond)
            break
        conds.append(not_(cond))
    return and_(*conds)


#: Date a case-list date filter applies to: a tumour-board meeting, or a procedure (done: its date; else the
#: scheduled date).
CASE_DATE_KINDS: tuple[str, ...] = ("procedure", "board")


def case_filters(*, stage: str | None = None, procedure_type: str | None = None, site: str | None = None,
                 operator: str | None = None, date_from: dt.date | None = None, date_to: dt.date | None = None,
                 date_kind: str = "procedure") -> list[Any]:
    """SQL conditions on patients for the case-list filters (all optional, combined with AND).

    ``site``: a lesion at this site (case-insensitive; "C2", "femur"). ``procedure_type``: a live procedure of
    this type (:data:`~osteoplan.workflow.models.PROCEDURE_TYPES`, done or scheduled). ``operator``: a live
    procedure whose operators contain this text (case-insensitive, ASCII; names are stored as JSON text).
    ``date_from`` / ``date_to`` (inclusive) on ``date_kind`` (:data:`CASE_DATE_KINDS`).
    """
    from sqlalchemy import exists

    P, X, L = m.Patient, m.Procedure, m.Lesion
    out: list[Any] = []
    if stage:
        out.append(stage_predicate(stage))
    if procedure_type:
        _one_of(procedure_type, m.PROCEDURE_TYPES, "procedure type")
        out.append(exists().where(X.patient_id == P.id, X.deleted_at.is_(None), X.status != "cancelled",
                                  X.procedure_type == procedure_type))
    if site and site.strip():
        out.append(exists().where(L.patient_id == P.id, L.deleted_at.is_(None),
                                  func.lower(L.site) == site.strip().lower()))
    if operator and operator.strip():
        like = "%" + operator.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        from sqlalchemy import Text, cast

        out.append(exists().where(X.patient_id == P.id, X.deleted_at.is_(None),
                                  func.lower(cast(X.operators, Text)).like(like, escape="\\")))
    if date_from is not None or date_to is not None:
        _one_of(date_kind, CASE_DATE_KINDS, "date kind")
        if date_kind == "procedure":
            col = func.coalesce(X.procedure_date, X.scheduled_date)
            conds = [X.patient_id == P.id, X.deleted_at.is_(None), X.status != "cancelled"]
            model_exists = exists().where(*conds, *( [col >= date_from] if date_from else []),
                                          *([col <= date_to] if date_to else []))
        else:
            D, MT = m.TumourBoardDecision, m.TumourBoardMeeting
            model_exists = (exists().where(D.patient_id == P.id, D.deleted_at.is_(None), D.meeting_id == MT.id,
                                           *([MT.meeting_date >= date_from] if date_from else []),
                                           *([MT.meeting_date <= date_to] if date_to else [])))
        out.append(model_exists)
    return out


def list_cases(session: Session, actor: m.User | None, *, search: str | None = None, stage: str | None = None,
               limit: int = 50, offset: int = 0, reason: str | None = None, before_id: int | None = None,
               procedure_type: str | None = None, site: str | None = None, operator: str | None = None,
               date_from: dt.date | None = None, date_to: dt.date | None = None, date_kind: str = "procedure",
               with_total: bool = True) -> dict[str, Any]:
    """Page of the case list, newest first: ``{"total", "items": [row...], "next_before_id"}`` (rows as
    :func:`case_summary`). Logs one read.

    ``search`` matches the case code, primary cancer and lesion site (and, for users who see identity, the
    family/given name and hospital identifier, decrypted in memory). ``stage``, ``procedure_type``, ``site``,
    ``operator``, ``date_from`` / ``date_to`` / ``date_kind``: see :func:`case_filters`; they are SQL conditions,
    so a filtered page costs one indexed query, not a pass over every case.

    Paging: ``before_id`` (keyset: the cases with a smaller id, i.e. older; ``next_before_id`` of the previous
    page) stays as fast on the last page as on the first; ``offset`` is kept for callers that number pages.
    ``with_total=False`` skips the count query.

    Only the columns a list row shows are read: the patients of the page, then one narrow query per child
    table restricted to those patients (no eager loading of whole records; see ``benchmarks/list_cases.py``).
    """
    pseudo = not sees_identity(actor)
    cols = (m.Patient.id, m.Patient.code, m.Patient.version, m.Patient.primary_cancer, m.Patient.date_of_death)
    idcols = (m.Patient.family_name, m.Patient.given_name) if not pseudo else ()
    q = select(*cols, *idcols).where(m.Patient.deleted_at.is_(None)).order_by(m.Patient.id.desc())
    filters = case_filters(stage=stage, procedure_type=procedure_type, site=site, operator=operator,
                           date_from=date_from, date_to=date_to, date_kind=date_kind)
    if filters:
        q = q.where(*filters)
    needle = (search or "").strip().lower()
    if needle:
        like = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        site_match = select(m.Lesion.patient_id).where(m.Lesion.deleted_at.is_(None),
                                                       func.lower(m.Lesion.site).like(like, escape="\\"))
    if needle and pseudo:
        q = q.where(or_(func.lower(m.Patient.code).like(like, escape="\\"),
                        func.lower(m.Patient.primary_cancer).like(like, escape="\\"), m.Patient.id.in_(site_match)))
    if needle and not pseudo:
        # identity fields are encrypted with a random IV: match them in memory, reading only the needed columns
        site_ids = set(session.scalars(site_match))
        scan = select(m.Patient.id, m.Patient.code, m.Patient.primary_cancer, m.Patient.family_name,
                      m.Patient.given_name, m.Patient.hospital_id).where(m.Patient.deleted_at.is_(None))
        hits = [r[0] for r in session.execute(scan)
                if r[0] in site_ids or any(needle in (h or "").lower() for h in r[1:])]
        q = q.where(m.Patient.id.in_(hits)) if hits else q.where(m.Patient.id.is_(None))

    def _pad(rows):
        return [tuple(r) + ((None, None) if pseudo else ()) for r in rows]

    total = (session.scalar(select(func.count()).select_from(q.order_by(None).subquery())) if with_total else None)
    page_q = q.where(m.Patient.id < before_id) if before_id is not None else q.offset(offset)
    pats = _pad(session.execute(page_q.limit(limit + 1)))
    more = len(pats) > limit
    pats = pats[:limit]
    items = _summaries(session, pats, pseudo)
    audit(session, actor, "read", "case_list", None, reason=reason,
          detail={"returned": [r["id"] for r in items], "search": bool(needle),
                  "filters": sorted(k for k, v in (("stage", stage), ("procedure_type", procedure_type),
                                                   ("site", site), ("operator", operator),
                                                   ("date_from", date_from), ("date_to", date_to)) if v)})
    _flush(session)
    return {"total": total, "items": items, "next_before_id": items[-1]["id"] if more and items else None}


def read_audit_log(session: Session, actor: m.User | None, *, patient_id: int | None = None, limit: int = 200,
                   offset: int = 0) -> list[m.AuditLog]:
    """Audit records, newest first (administrators). Reading the log is itself logged."""
    if actor is not None and actor.role != "admin":
        raise PermissionDeniedError("only an administrator can read the audit log")
    q = select(m.AuditLog).order_by(m.AuditLog.id.desc())
    if patient_id is not None:
        q = q.where(m.AuditLog.patient_id == patient_id)
    rows = list(session.scalars(q.limit(limit).offset(offset)))
    audit(session, actor, "read", "audit_log", None, patient_id=patient_id)
    _flush(session)
    return rows


def load_cases_for_export(session: Session) -> list[m.Patient]:
    """All live cases with their records loaded (for statistics and exports; no audit: callers log)."""
    return list(session.scalars(_case_query().where(m.Patient.deleted_at.is_(None)).order_by(m.Patient.id)))
