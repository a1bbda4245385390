"""The worklist: what each role has to do now on the care pathway, with what is overdue (issue 15).

One function, :func:`worklist`, lists the open items of the registry for a role on a given day (a ``today``
parameter, so tests freeze the clock); :func:`to_csv` and :func:`to_ical` export them as reminders. Every item
names the page that clears it (``link``) and disappears once that page's record is saved: the items are
computed from the records, never stored.

Item kinds (:data:`KINDS`) and the record that clears each:

================  ==========================================================  ===================================
kind              open when                                                    cleared by
================  ==========================================================  ===================================
``board``         a live case has a lesion but no tumour-board decision        recording a decision
``validate``      a decision is not validated (quorum not reached)             validation by another member
``consultation``  a validated consolidation decision has no consultation       recording the consultation
``schedule``      ... consent recorded but no procedure scheduled              scheduling the procedure
``log``           a scheduled procedure's date has come                        logging (or cancelling) it
``post_op``       a done procedure has no day-1 check                          the day-1 follow-up
``follow_up``     a configured timepoint (1, 3, 6, 12 months) is due           the follow-up at that timepoint
``grade``         an adverse event's grade is provisional                      editing it to a final grade
================  ==========================================================  ===================================

Due dates and overdue (:class:`WorklistConfig`): a follow-up at timepoint *t* is due on procedure date +
``due_days[t]`` (:data:`osteoplan.workflow.models.TIMEPOINT_DAYS`: 30, 91, 182, 365 days); it is listed from
``window_before_days`` before that date and is *overdue* from the day after ``due + overdue_after_days`` (default
0: the day after it is due). An overdue timepoint stays listed until the next configured timepoint becomes due
(then the missed visit is no longer actionable, the next one is), the last one for ``last_overdue_days``. A
timepoint is not asked once a later one is recorded, nor after the patient's death. The post-operative check is
due the day after the procedure and stays listed until the first follow-up timepoint is due. A scheduled
procedure is overdue from the day after its date, a decision to validate from the day after its meeting, a
consultation to book ``consultation_within_days`` after validation, a procedure to schedule
``schedule_within_days`` after consent. All delays are configurable defaults without a published source.

Roles (:data:`ROLE_KINDS`): the coordinator books and chases (board, consultation, schedule, post-op, follow-up);
tumour-board members validate (board, validate); radiologists validate, log, check and grade; the administrator
sees everything; research accounts have no worklist (it names cases). ``validate`` items are listed only for
members of a validating role (:class:`osteoplan.workflow.service.BoardRules`) and never to the decision's
proposer or to a member who already validated it.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session

from osteoplan.errors import PermissionDeniedError, ValidationError
from osteoplan.workflow import models as m
from osteoplan.workflow import service as sv

KINDS: dict[str, str] = {
    "board": "Case waiting for the tumour board",
    "validate": "Decision to validate",
    "consultation": "Consultation to book",
    "schedule": "Procedure to schedule",
    "log": "Procedure to log",
    "post_op": "Post-operative check",
    "follow_up": "Follow-up",
    "grade": "Adverse event to grade",
}

ROLE_KINDS: dict[str, tuple[str, ...]] = {
    "coordinator": ("board", "consultation", "schedule", "post_op", "follow_up"),
    "tumour_board": ("board", "validate"),
    "radiologist": ("validate", "log", "post_op", "follow_up", "grade"),
    "admin": tuple(KINDS),
    "research": (),
}

SORT_KEYS = ("due_date", "kind", "case", "stage", "procedure_type", "status")


def _parse_timepoints(text: str) -> tuple[tuple[str, ...], dict[str, int]]:
    """``"1m,3m,6m,12m"`` or with own delays ``"1m:28,3m:90"`` -> (timepoints, due days)."""
    tps: list[str] = []
    days = dict(m.TIMEPOINT_DAYS)
    for part in (x.strip() for x in text.split(",")):
        if not part:
            continue
        tp, _, d = part.partition(":")
        tp = tp.strip()
        if tp not in m.TIMEPOINTS or tp in ("baseline", "day1"):
            raise ValidationError(f"follow-up timepoint {tp!r} is not one of 1m, 3m, 6m, 12m")
        if d.strip():
            if not d.strip().isdigit() or int(d) < 1:
                raise ValidationError(f"the delay of timepoint {tp} must be a whole number of days (e.g. {tp}:91)")
            days[tp] = int(d)
        tps.append(tp)
    if not tps:
        raise ValidationError("give at least one follow-up timepoint (e.g. 1m,3m,6m,12m)")
    return tuple(sorted(tps, key=lambda t: days[t])), days


@dataclass(frozen=True)
class WorklistConfig:
    """Delays of the worklist (days). Configurable defaults without a published source.

    From the environment with :meth:`from_env`: ``OSTEOPLAN_FOLLOWUP_TIMEPOINTS`` (``"1m,3m,6m,12m"``, optional
    own delays ``"3m:90"``), ``OSTEOPLAN_FOLLOWUP_WINDOW_DAYS``, ``OSTEOPLAN_FOLLOWUP_GRACE_DAYS``.
    """

    follow_up_timepoints: tuple[str, ...] = ("1m", "3m", "6m", "12m")
    due_days: Mapping[str, int] = field(default_factory=lambda: dict(m.TIMEPOINT_DAYS))
    window_before_days: int = 14
    overdue_after_days: int = 0
    last_overdue_days: int = 90
    consultation_within_days: int = 14
    schedule_within_days: int = 14

    @classmethod
    def from_env(cls) -> "WorklistConfig":
        """The configuration from the environment (defaults where unset)."""
        kw: dict[str, Any] = {}
        tps = os.environ.get("OSTEOPLAN_FOLLOWUP_TIMEPOINTS", "").strip()
        if tps:
            kw["follow_up_timepoints"], kw["due_days"] = _parse_timepoints(tps)
        for env, key in (("OSTEOPLAN_FOLLOWUP_WINDOW_DAYS", "window_before_days"),
                         ("OSTEOPLAN_FOLLOWUP_GRACE_DAYS", "overdue_after_days")):
            v = os.environ.get(env, "").strip()
            if v:
                if not v.isdigit():
                    raise ValidationError(f"{env} must be a whole number of days")
                kw[key] = int(v)
        return cls(**kw)


def _item(kind: str, case_id: int, code: str, due: dt.date, today: dt.date, grace_days: int, link: str,
          detail: str, *, record_id: int | None = None, procedure_type: str | None = None,
          operators: Iterable[str] = (), site: str | None = None) -> dict[str, Any]:
    late = (today - due).days - grace_days
    return {"kind": kind, "kind_label": KINDS[kind], "case_id": case_id, "case_code": code,
            "due_date": due.isoformat(), "status": "overdue" if late > 0 else "due",
            "days_overdue": max(late, 0), "detail": detail, "link": link, "record_id": record_id,
            "procedure_type": procedure_type,
            "procedure_type_label": m.PROCEDURE_TYPE_LABELS.get(procedure_type or "", procedure_type),
            "operators": list(operators or []), "site": site, "stage": None}


def _live_case():
    return and_(m.Patient.deleted_at.is_(None), m.Patient.date_of_death.is_(None))


def worklist(session: Session, actor: m.User | None, *, role: str | None = None, today: dt.date | None = None,
             config: WorklistConfig | None = None, rules: "sv.BoardRules | None" = None,
             kinds: Iterable[str] | None = None, stage: str | None = None, procedure_type: str | None = None,
             operator: str | None = None, date_from: dt.date | None = None, date_to: dt.date | None = None,
             overdue_only: bool = False, sort: str = "due_date", descending: bool = False,
             reason: str | None = None) -> dict[str, Any]:
    """The open items of *role* (default the actor's) on *today*, filtered and sorted. Logs one read.

    Parameters
    ----------
    actor : User or None
        Who reads (``None``: the system; then give ``role``). Research accounts are refused.
    role : str, optional
        Whose worklist (default ``actor.role``); :data:`ROLE_KINDS` gives the kinds of each role.
    today : date, optional
        The day to compute for (default :func:`osteoplan.workflow.service.today`, UTC): tests freeze it.
    config : WorklistConfig, optional
        Delays (default :meth:`WorklistConfig.from_env`).
    rules : BoardRules, optional
        Who validates decisions (default :meth:`osteoplan.workflow.service.BoardRules.from_env`).
    kinds, stage, procedure_type, operator, date_from, date_to, overdue_only
        Filters: item kinds (subset of the role's), case stage (:func:`~osteoplan.workflow.service.pathway_stage`
        names), procedure type (:data:`~osteoplan.workflow.models.PROCEDURE_TYPES`), operator (case-insensitive
        part of a name; items without a logged procedure have no operator and are left out by this filter),
        due date range (inclusive), overdue items only.
    sort : {"due_date", "kind", "case", "stage", "procedure_type", "status"}
    descending : bool

    Returns
    -------
    dict
        ``{"today": ISO date, "role", "items": [item, ...], "counts": {kind: {"due", "overdue"}},
        "total", "overdue"}``; counts are of the role's items before the filters.

    Raises
    ------
    PermissionDeniedError
        Research accounts (the worklist names cases).
    ValidationError
        Unknown role, kind, sort key, stage or procedure type.
    """
    if actor is not None and actor.role == "research":
        raise PermissionDeniedError("research accounts have no worklist (it names cases); use the statistics")
    role = role or (actor.role if actor is not None else None)
    if role not in ROLE_KINDS:
        raise ValidationError(f"unknown role {role!r}; one of {', '.join(ROLE_KINDS)}")
    if actor is not None and actor.role != "admin" and role != actor.role:
        raise PermissionDeniedError("you can only see your own role's worklist")
    if sort not in SORT_KEYS:
        raise ValidationError(f"sort by one of {', '.join(SORT_KEYS)}")
    if stage and stage not in VIEW_STAGES:
        raise ValidationError(f"stage {stage!r} is not one of {', '.join(VIEW_STAGES)}")
    if procedure_type and procedure_type not in m.PROCEDURE_TYPES:
        raise ValidationError(f"procedure type {procedure_type!r} is not one of {', '.join(m.PROCEDURE_TYPES)}")
    today = today or sv.today()
    config = config or WorklistConfig.from_env()
    rules = rules or sv.BoardRules.from_env()
    role_kinds = [k for k in ROLE_KINDS[role]
                  if k != "validate" or role == "admin" or role in rules.validating_roles]
    wanted = set(role_kinds)
    if kinds:
        bad = set(kinds) - set(KINDS)
        if bad:
            raise ValidationError(f"unknown worklist kind(s) {', '.join(sorted(bad))}; one of {', '.join(KINDS)}")
        wanted &= set(kinds)
    items = _collect(session, actor, set(role_kinds), today, config)
    _attach_stages(session, items)
    counts = {k: {"due": 0, "overdue": 0} for k in role_kinds}
    for it in items:
        counts[it["kind"]][it["status"]] += 1
    op = (operator or "").strip().lower()
    out = [it for it in items if it["kind"] in wanted
           and (not stage or it["stage"] == stage)
           and (not procedure_type or it["procedure_type"] == procedure_type)
           and (not op or any(op in o.lower() for o in it["operators"]))
           and (date_from is None or it["due_date"] >= date_from.isoformat())
           and (date_to is None or it["due_date"] <= date_to.isoformat())
           and (not overdue_only or it["status"] == "overdue")]
    keyf = {"due_date": lambda i: (i["due_date"], i["case_code"]),
            "kind": lambda i: (list(KINDS).index(i["kind"]), i["due_date"]),
            "case": lambda i: (i["case_code"], i["due_date"]),
            "stage": lambda i: (list(VIEW_STAGES).index(i["stage"]) if i["stage"] in VIEW_STAGES else 99,
                                i["due_date"]),
            "procedure_type": lambda i: (i["procedure_type"] or "~", i["due_date"]),
            "status": lambda i: (i["status"] != "overdue", -i["days_overdue"], i["due_date"])}[sort]
    out.sort(key=keyf, reverse=descending)
    sv.audit(session, actor, "read", "worklist", None, reason=reason,
             detail={"role": role, "today": today.isoformat(), "items": len(out),
                     "cases": sorted({i["case_id"] for i in out})[:500]})
    session.flush()
    return {"today": today.isoformat(), "role": role, "items": out, "counts": counts,
            "total": sum(c["due"] + c["overdue"] for c in counts.values()),
            "overdue": sum(c["overdue"] for c in counts.values())}


#: Stages as :func:`osteoplan.workflow.service.pathway_stage` names them, in pathway order.
VIEW_STAGES: tuple[str, ...] = ("referred", "rcp_pending", "rcp_validated", "consulted", "scheduled", "done",
                                "followed", "deceased")


def _collect(session: Session, actor: m.User | None, kinds: set[str], today: dt.date,
             cfg: WorklistConfig) -> list[dict[str, Any]]:
    P, L, D, MT = m.Patient, m.Lesion, m.TumourBoardDecision, m.TumourBoardMeeting
    C, X, F, A = m.Consultation, m.Procedure, m.FollowUp, m.AdverseEvent
    items: list[dict[str, Any]] = []

    if "board" in kinds:
        # referred: a lesion, no decision; due one week after the case was opened (configurable default)
        q = (select(P.id, P.code, P.created_at, L.site).join(L, and_(L.patient_id == P.id, L.deleted_at.is_(None)))
             .where(_live_case(), ~exists().where(D.patient_id == P.id, D.deleted_at.is_(None))))
        seen: set[int] = set()
        for pid, code, created, site in session.execute(q):
            if pid in seen:
                continue
            seen.add(pid)
            due = created.date() + dt.timedelta(days=7)
            items.append(_item("board", pid, code, due, today, 0, f"/cases/{pid}/decisions/new",
                               f"lesion {site}: put the case to the tumour board", site=site))

    if "validate" in kinds:
        q = (select(D.id, D.patient_id, P.code, MT.meeting_date, D.proposed_by_id, D.decision_type, L.site)
             .join(P, P.id == D.patient_id).join(MT, MT.id == D.meeting_id).outerjoin(L, L.id == D.lesion_id)
             .where(_live_case(), D.deleted_at.is_(None), D.validated_at.is_(None)))
        rows = list(session.execute(q))
        mine: set[int] = set()
        if actor is not None and rows:
            mine = set(session.scalars(select(m.DecisionValidation.decision_id).where(
                m.DecisionValidation.user_id == actor.id, m.DecisionValidation.deleted_at.is_(None))))
        for did, pid, code, mdate, proposer, dtype, site in rows:
            if actor is not None and actor.role != "admin" and (proposer == actor.id or did in mine):
                continue  # a proposer never validates; a member validates once
            items.append(_item("validate", pid, code, mdate, today, 0, f"/cases/{pid}#decision-{did}",
                               f"decision #{did}: {m.DECISION_LABELS.get(dtype, dtype)}", record_id=did,
                               site=site))

    if kinds & {"consultation", "schedule"}:
        open_proc = exists().where(X.decision_id == D.id, X.deleted_at.is_(None), X.status != "cancelled")
        q = (select(D.id, D.patient_id, P.code, D.validated_at, MT.meeting_date, D.decision_type, L.site_kind, L.site)
             .join(P, P.id == D.patient_id).join(MT, MT.id == D.meeting_id).outerjoin(L, L.id == D.lesion_id)
             .where(_live_case(), D.deleted_at.is_(None), D.validated_at.is_not(None),
                    D.decision_type.in_(m.CONSOLIDATION_DECISIONS), ~open_proc))
        decs = list(session.execute(q))
        cons: dict[int, list[tuple]] = {}
        if decs:
            for pid, did, cdate, consent in session.execute(
                    select(C.patient_id, C.decision_id, C.consultation_date, C.consent_obtained).where(
                        C.deleted_at.is_(None), C.patient_id.in_({r[1] for r in decs}))):
                cons.setdefault(pid, []).append((did, cdate, consent))
        for did, pid, code, vat, mdate, dtype, skind, site in decs:
            ptype = m.infer_procedure_type(skind, site, dtype in ("screw_cement", "screw_alone"),
                                           dtype in ("screw_cement", "cement_alone"))
            mine_c = [c for c in cons.get(pid, []) if (c[0] == did or c[0] is None) and c[1] >= mdate]
            consented = [c for c in mine_c if c[2]]
            if not mine_c and "consultation" in kinds:
                due = vat.date() + dt.timedelta(days=cfg.consultation_within_days)
                items.append(_item("consultation", pid, code, due, today, 0, f"/cases/{pid}/consultations/new",
                                   f"after decision #{did} ({m.DECISION_LABELS.get(dtype, dtype)})", record_id=did,
                                   procedure_type=ptype, site=site))
            elif consented and "schedule" in kinds:
                due = max(c[1] for c in consented) + dt.timedelta(days=cfg.schedule_within_days)
                items.append(_item("schedule", pid, code, due, today, 0, f"/cases/{pid}/procedures/new",
                                   f"consent recorded; decision #{did}", record_id=did, procedure_type=ptype,
                                   site=site))

    if "log" in kinds:
        q = (select(X.id, X.patient_id, P.code, X.scheduled_date, X.procedure_type, X.operators, L.site)
             .join(P, P.id == X.patient_id).join(L, L.id == X.lesion_id)
             .where(_live_case(), X.deleted_at.is_(None), X.status == "scheduled", X.scheduled_date <= today))
        for xid, pid, code, sdate, ptype, ops, site in session.execute(q):
            items.append(_item("log", pid, code, sdate, today, 0, f"/cases/{pid}/procedures/{xid}/log",
                               f"procedure #{xid} scheduled on {sdate.isoformat()}", record_id=xid,
                               procedure_type=ptype, operators=ops or [], site=site))

    if kinds & {"post_op", "follow_up"}:
        tps = [t for t in cfg.follow_up_timepoints]
        days = cfg.due_days
        horizon = max(days[t] for t in tps) + cfg.last_overdue_days + 1
        q = (select(X.id, X.patient_id, P.code, P.date_of_death, X.procedure_date, X.procedure_type, X.operators,
                    L.site)
             .join(P, P.id == X.patient_id).join(L, L.id == X.lesion_id)
             .where(P.deleted_at.is_(None), X.deleted_at.is_(None), X.status == "done",
                    X.procedure_date.is_not(None), X.procedure_date <= today,
                    X.procedure_date >= today - dt.timedelta(days=horizon)))
        procs = list(session.execute(q))
        done_tp: dict[int, set[str]] = {}
        if procs:
            sub = (select(X.id).where(X.deleted_at.is_(None), X.status == "done",
                                      X.procedure_date >= today - dt.timedelta(days=horizon)))
            for xid, tp in session.execute(select(F.procedure_id, F.timepoint).where(
                    F.deleted_at.is_(None), F.procedure_id.in_(sub))):
                done_tp.setdefault(xid, set()).add(tp)
        order = list(m.TIMEPOINTS)
        for xid, pid, code, death, pdate, ptype, ops, site in procs:
            have = done_tp.get(xid, set())
            latest = max((order.index(t) for t in have), default=-1)
            first_due = pdate + dt.timedelta(days=days[tps[0]] - cfg.window_before_days)
            if "post_op" in kinds and "day1" not in have and latest < order.index("day1") and death is None \
                    and today < first_due:
                due = pdate + dt.timedelta(days=1)
                items.append(_item("post_op", pid, code, due, today, cfg.overdue_after_days,
                                   f"/cases/{pid}/follow-ups/new?procedure_id={xid}&timepoint=day1",
                                   f"day-1 check after procedure #{xid}", record_id=xid, procedure_type=ptype,
                                   operators=ops or [], site=site))
            if "follow_up" not in kinds:
                continue
            for i, tp in enumerate(tps):
                due = pdate + dt.timedelta(days=days[tp])
                if tp in have or latest > order.index(tp):
                    continue  # recorded, or a later timepoint was (the visit happened under another name)
                if death is not None and death <= due:
                    continue
                opens = due - dt.timedelta(days=cfg.window_before_days)
                until = (pdate + dt.timedelta(days=days[tps[i + 1]] - cfg.window_before_days) if i + 1 < len(tps)
                         else due + dt.timedelta(days=cfg.last_overdue_days))
                if opens <= today < until:
                    items.append(_item("follow_up", pid, code, due, today, cfg.overdue_after_days,
                                       f"/cases/{pid}/follow-ups/new?procedure_id={xid}&timepoint={tp}",
                                       f"{tp} follow-up after procedure #{xid} ({pdate.isoformat()})",
                                       record_id=xid, procedure_type=ptype, operators=ops or [], site=site))

    if "grade" in kinds:
        q = (select(A.id, A.patient_id, P.code, A.event_date, A.classification, A.grade, X.procedure_type,
                    X.operators, L.site)
             .join(P, P.id == A.patient_id).join(X, X.id == A.procedure_id).join(L, L.id == X.lesion_id)
             .where(P.deleted_at.is_(None), A.deleted_at.is_(None), A.grade_status == "provisional"))
        for aid, pid, code, edate, cl, grade, ptype, ops, site in session.execute(q):
            items.append(_item("grade", pid, code, edate + dt.timedelta(days=30), today, 0,
                               f"/cases/{pid}/adverse-events/{aid}/edit",
                               f"adverse event #{aid}: provisional {cl} grade {grade}", record_id=aid,
                               procedure_type=ptype, operators=ops or [], site=site))
    return items


def _attach_stages(session: Session, items: list[dict[str, Any]]) -> None:
    """Set each item's case stage (the same rules as the case list, read for these cases only)."""
    ids = sorted({i["case_id"] for i in items})
    stages: dict[int, str] = {}
    for k in range(0, len(ids), 500):
        chunk = ids[k:k + 500]
        rows = [(pid, code, 0, "", death, None, None) for pid, code, death in session.execute(
            select(m.Patient.id, m.Patient.code, m.Patient.date_of_death).where(m.Patient.id.in_(chunk)))]
        for r in sv._summaries(session, rows, True):
            stages[r["id"]] = r["stage"]
    for it in items:
        it["stage"] = stages.get(it["case_id"])


# ------------------------------------------------------------------------------------------------ exports
CSV_COLUMNS = ("status", "due_date", "days_overdue", "kind", "case_code", "stage", "procedure_type", "operators",
               "site", "detail", "link")


def to_csv(items: Iterable[Mapping[str, Any]], base_url: str = "") -> str:
    """The items as CSV (RFC 4180, ``\\r\\n``): :data:`CSV_COLUMNS`, links made absolute with *base_url*.

    Case codes only: no identity field is ever written."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for it in items:
        w.writerow([it["status"], it["due_date"], it["days_overdue"], it["kind_label"], it["case_code"],
                    it["stage"] or "", it["procedure_type_label"] or "", "; ".join(it["operators"]),
                    it["site"] or "", it["detail"], base_url.rstrip("/") + it["link"]])
    return buf.getvalue()


def _ical_escape(text: str) -> str:
    """TEXT value escaping of RFC 5545 §3.3.11: backslash, semicolon, comma, newline."""
    return (text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n"))


def _fold(line: str) -> str:
    """Fold a content line at 75 octets (RFC 5545 §3.1): CRLF + one space, never inside a UTF-8 sequence."""
    raw = line.encode("utf-8")
    if len(raw) <= 75:
        return line
    parts, cur, size, limit = [], [], 0, 75
    for ch in line:
        n = len(ch.encode("utf-8"))
        if size + n > limit:
            parts.append("".join(cur))
            cur, size, limit = [], 0, 74  # continuation lines start with a space
        cur.append(ch)
        size += n
    parts.append("".join(cur))
    return "\r\n ".join(parts)


def to_ical(items: Iterable[Mapping[str, Any]], base_url: str = "", *, now: dt.datetime | None = None,
            calendar_name: str = "osteoplan worklist") -> str:
    """The items as an iCalendar file (RFC 5545): one all-day VEVENT per item on its due date.

    Written by hand (a dozen properties; no new dependency for the shared environment): ``VERSION:2.0``,
    ``PRODID``, per event ``UID`` (stable: a hash of kind, case and record, so a re-import updates instead of
    duplicating), ``DTSTAMP`` (UTC), ``DTSTART;VALUE=DATE`` / ``DTEND;VALUE=DATE`` (the next day, end is
    exclusive), ``SUMMARY`` (kind and case code, "OVERDUE" first when late), ``DESCRIPTION``, ``URL``;
    lines folded at 75 octets and ended with CRLF; TEXT values escaped. Case codes only, no identity.
    """
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//osteoplan//worklist//EN", "CALSCALE:GREGORIAN",
             "METHOD:PUBLISH", f"X-WR-CALNAME:{_ical_escape(calendar_name)}"]
    for it in items:
        due = dt.date.fromisoformat(it["due_date"])
        key = f"{it['kind']}|{it['case_id']}|{it.get('record_id')}|{it['detail']}"
        uid = hashlib.sha256(key.encode()).hexdigest()[:32] + "@osteoplan"
        summary = ("OVERDUE: " if it["status"] == "overdue" else "") + f"{it['kind_label']} - {it['case_code']}"
        url = base_url.rstrip("/") + it["link"]
        desc = f"{it['detail']}\nStage: {it['stage'] or '-'}\n{url}"
        lines += ["BEGIN:VEVENT", f"UID:{uid}", f"DTSTAMP:{stamp}", f"DTSTART;VALUE=DATE:{due:%Y%m%d}",
                  f"DTEND;VALUE=DATE:{due + dt.timedelta(days=1):%Y%m%d}", f"SUMMARY:{_ical_escape(summary)}",
                  f"DESCRIPTION:{_ical_escape(desc)}", f"URL:{url}", "TRANSP:TRANSPARENT", "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return "".join(_fold(x) + "\r\n" for x in lines)


def count_summary(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows for the home page: per kind of the role, its label, due and overdue counts (zero kinds included)."""
    return [{"kind": k, "label": KINDS[k], **c} for k, c in result["counts"].items()]


__all__ = ["KINDS", "ROLE_KINDS", "WorklistConfig", "worklist", "to_csv", "to_ical", "count_summary",
           "VIEW_STAGES"]
