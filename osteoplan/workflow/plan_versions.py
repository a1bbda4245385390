"""Plan versions and approval: adjustments saved from the review page, compared, and one version approved.

A plan made by a planning job (or uploaded) is version 1. Saving an adjustment (the radiologist moved the skin
entry, the bone entry or the target and the trajectory was re-checked, :mod:`osteoplan.planning.recheck`) attaches
the re-checked ``plan.json`` to the same lesion as a new :class:`~osteoplan.workflow.models.SavedPlan` and records it
as the next version of the same root (:class:`~osteoplan.workflow.models.PlanVersion`): who, when, and each moved
point's displacement (LPS mm) from the version it was made from. Every call is audited like the other records
(:func:`osteoplan.workflow.service.audit`); as in the service layer, functions flush and never commit.

:func:`approve_plan` approves one version (radiologists): from then on the plan is locked — no new version, no
second approval, and the approved version cannot be deleted (:class:`PlanLockedError`, HTTP 409 in the web app).
Re-checking a moved point still works (it changes nothing). Approval is one function so that it can later also
send the approved version's results to the PACS.

Approving can never happen by accident on the wrong version or on an uncleared plan: approving a version when a newer
live version of the same plan exists, or a version whose verdict is NOT CLEARED (a radiologist may have checked the
structures not assessed here on another image), needs an explicit confirmation (:class:`ConfirmationRequired`,
HTTP 409 without it); the confirmation is recorded in the approval's audit entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from osteoplan.errors import OsteoplanError, PermissionDeniedError, ValidationError
from osteoplan.workflow import models as m

__all__ = ["PlanLockedError", "ConfirmationRequired", "APPROVER_ROLES", "approve_plan", "check_deletable",
           "displacements", "family", "latest_version", "not_cleared_items", "save_plan_version", "version_of",
           "check_unlocked", "with_states"]

#: Roles that may approve a plan (the radiologist who will place it).
APPROVER_ROLES: tuple[str, ...] = ("radiologist",)

#: Displacements below this are "not moved" (mm): the re-check finds the bone and skin entries on the line by
#: sampling it every 0.2 mm (the plan's refine step), so re-checking unmoved points stored to 0.01 mm can shift them
#: by up to about one step. Configurable default (the sampling step + rounding), no clinical source.
MOVED_MIN_MM = 0.25


class PlanLockedError(OsteoplanError):
    """The plan has an approved version: it cannot be changed (HTTP 409)."""


class ConfirmationRequired(OsteoplanError):
    """Approving this version needs a confirmation the request did not give (a newer version exists, or the verdict
    is NOT CLEARED): HTTP 409."""


def _svc():
    from osteoplan.workflow import service

    return service


def version_of(session: Session, saved_plan_id: int) -> m.PlanVersion | None:
    """The version row of a saved plan (None for a plan never adjusted nor approved: it is version 1)."""
    return session.scalar(select(m.PlanVersion).where(m.PlanVersion.saved_plan_id == saved_plan_id))


def _ensure_row(session: Session, plan: m.SavedPlan) -> m.PlanVersion:
    row = version_of(session, plan.id)
    if row is None:
        row = m.PlanVersion(saved_plan_id=plan.id, root_plan_id=plan.id, parent_plan_id=None, number=1,
                            created_by=plan.created_by, moved={}, created_at=plan.created_at)
        session.add(row)
        session.flush()
    return row


def family(session: Session, saved_plan_id: int) -> list[dict[str, Any]]:
    """Every version of the plan *saved_plan_id* belongs to, oldest first: dicts with ``plan_id``, ``number``,
    ``parent_plan_id``, ``created_at``, ``created_by``, ``moved``, ``approved_at``, ``approved_by``, ``deleted``.
    A plan never adjusted is one version (number 1). Not audited (the caller read the case)."""
    row = version_of(session, saved_plan_id)
    if row is None:
        p = session.get(m.SavedPlan, saved_plan_id)
        if p is None:
            return []
        return [{"plan_id": p.id, "number": 1, "parent_plan_id": None, "created_at": p.created_at,
                 "created_by": p.created_by, "moved": {}, "approved_at": None, "approved_by": None,
                 "deleted": p.deleted_at is not None, "note": None}]
    rows = session.scalars(select(m.PlanVersion).where(m.PlanVersion.root_plan_id == row.root_plan_id)
                           .order_by(m.PlanVersion.number)).all()
    out = []
    for r in rows:
        p = session.get(m.SavedPlan, r.saved_plan_id)
        out.append({"plan_id": r.saved_plan_id, "number": r.number, "parent_plan_id": r.parent_plan_id,
                    "created_at": r.created_at, "created_by": r.created_by, "moved": dict(r.moved or {}),
                    "approved_at": r.approved_at, "approved_by": r.approved_by,
                    "deleted": p is None or p.deleted_at is not None, "note": r.note})
    return out


def with_states(fam: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """*fam* (:func:`family`) with each version's ``state``: ``"approved"``, ``"superseded"`` (a newer live version
    exists and this one is not approved), ``"draft"`` (the latest live version, not approved) or ``"deleted"``; and
    ``latest`` (True for the latest live version). New dicts; *fam* is not changed."""
    live = [f for f in fam if not f["deleted"]]
    last = max((f["number"] for f in live), default=None)
    out = []
    for f in fam:
        state = ("deleted" if f["deleted"] else "approved" if f["approved_at"] is not None
                 else "draft" if f["number"] == last else "superseded")
        out.append({**f, "state": state, "latest": not f["deleted"] and f["number"] == last})
    return out


def latest_version(session: Session, saved_plan_id: int) -> dict[str, Any] | None:
    """The latest live version (a :func:`family` dict) of the plan *saved_plan_id* belongs to (None if none)."""
    live = [f for f in family(session, saved_plan_id) if not f["deleted"]]
    return live[-1] if live else None


def not_cleared_items(plan_json: dict[str, Any]) -> list[str] | None:
    """What a NOT CLEARED verdict leaves for the radiologist to check elsewhere: the structures of the placed
    trajectories whose status is ``not_assessed`` / ``not_assessable`` (their names), those that fail their margin
    ("<name>: margin not kept") and the plan's ``confirm_first`` items. None when the verdict is not NOT CLEARED
    (the stored verdict, or the one computed for a plan written without it)."""
    from osteoplan.planning.model import Plan
    from osteoplan.planning.verdict import structure_name, verdict_of

    try:
        plan = Plan.model_validate(plan_json or {})
    except Exception:
        return None
    if verdict_of(plan).code != "not_cleared":
        return None
    checks = [c for t in plan.placed for c in t.clearances]
    out = list(plan.confirm_first)
    out += list(dict.fromkeys(structure_name(c.structure) + " (not assessed)" for c in checks
                              if c.status in ("not_assessed", "not_assessable")))
    out += list(dict.fromkeys(structure_name(c.structure) + ": margin not kept" for c in checks if c.status == "fail"))
    return out


def _approved(session: Session, root_plan_id: int) -> m.PlanVersion | None:
    return session.scalar(select(m.PlanVersion).where(m.PlanVersion.root_plan_id == root_plan_id,
                                                      m.PlanVersion.approved_at.is_not(None)))


def _locked_message(v: m.PlanVersion) -> str:
    when = v.approved_at.strftime("%Y-%m-%d %H:%M UTC") if v.approved_at else "?"
    return (f"version {v.number} of this plan was approved by {v.approved_by} on {when}: the plan is locked "
            "(no new version, no second approval, the approved version cannot be deleted); plan again to change it")


def displacements(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per point that moved (``skin_entry``, ``bone_entry``, ``target``): ``{"delta_lps_mm": [dx, dy, dz],
    "distance_mm": d}`` between two trajectories (``plan.json`` dicts; LPS mm, rounded to 0.01 mm)."""
    out: dict[str, dict[str, Any]] = {}
    for p in ("skin_entry", "bone_entry", "target"):
        a = np.asarray(before[f"{p}_lps_mm"], float)
        b = np.asarray(after[f"{p}_lps_mm"], float)
        d = b - a
        n = float(np.linalg.norm(d))
        if n >= MOVED_MIN_MM:
            out[p] = {"delta_lps_mm": [round(float(x), 2) for x in d], "distance_mm": round(n, 2)}
    return out


def save_plan_version(session: Session, actor: m.User | None, parent_plan_id: int, plan: dict[str, Any],
                      moved: dict[str, Any], note: str | None = None) -> m.SavedPlan:
    """Attach *plan* (the re-checked ``plan.json`` content) as the next version of the plan *parent_plan_id*.

    Parameters
    ----------
    session : Session
    actor : User or None
        Who saves it (recorded and audited).
    parent_plan_id : int
        The saved plan (version) the adjustment was made from.
    plan : dict
        The new ``plan.json`` content (from :func:`osteoplan.planning.recheck.evaluate_trajectory`).
    moved : dict
        :func:`displacements` from the parent's trajectory.
    note : str, optional
        Free text (at most 2000 characters).

    Returns
    -------
    SavedPlan
        The new version (same lesion; label ``"<root label> · v<n>"``).

    Raises
    ------
    PlanLockedError
        A version of this plan is approved.
    ValidationError
        Nothing moved, or the note is too long.
    NotFoundError, PermissionDeniedError
        As the service layer.
    """
    sv = _svc()
    sv._require_writer(actor)
    parent = sv._get(session, m.SavedPlan, parent_plan_id, "plan")
    if not moved:
        raise ValidationError("nothing moved: move a point (skin entry, bone entry or target) before saving a version")
    if note is not None and len(note) > 2000:
        raise ValidationError("note: at most 2000 characters")
    prow = _ensure_row(session, parent)
    ok = _approved(session, prow.root_plan_id)
    if ok is not None:
        raise PlanLockedError(_locked_message(ok))
    root = session.get(m.SavedPlan, prow.root_plan_id)
    number = int(session.scalar(select(func.max(m.PlanVersion.number))
                                .where(m.PlanVersion.root_plan_id == prow.root_plan_id)) or 1) + 1
    base = (root.label if root is not None else parent.label).split(" · v")[0]
    label = f"{base[:100]} · v{number}"
    new = m.SavedPlan(lesion=parent.lesion, plan=plan, label=label, created_by=sv.actor_name(actor))
    session.add(new)
    session.flush()
    session.add(m.PlanVersion(saved_plan_id=new.id, root_plan_id=prow.root_plan_id, parent_plan_id=parent.id,
                              number=number, created_by=sv.actor_name(actor), moved=moved, note=note))
    sv.audit(session, actor, "create", "plan", new.id, patient_id=parent.lesion.patient_id,
             detail={"version": number, "root_plan_id": prow.root_plan_id, "parent_plan_id": parent.id,
                     "moved": moved})
    session.flush()
    return new


def approve_plan(session: Session, actor: m.User | None, saved_plan_id: int, *, confirm_older: bool = False,
                 confirm_not_cleared: bool = False) -> m.PlanVersion:
    """Approve the plan version *saved_plan_id*; the plan is locked from then on.

    The one place a plan is approved (the web app's approve action calls it; sending the approved version's
    report, SEG and SR to the PACS is to be added here).

    Parameters
    ----------
    confirm_older : bool
        The approver confirmed approving this version although a newer live version of the plan exists (required
        then; recorded in the audit entry as ``newer_version``).
    confirm_not_cleared : bool
        The approver confirmed having checked elsewhere what the NOT CLEARED verdict leaves open
        (:func:`not_cleared_items`; required for such a version; recorded in the audit entry as
        ``not_cleared_confirmed``).

    Raises
    ------
    PermissionDeniedError
        The actor is not a radiologist (:data:`APPROVER_ROLES`) or is read-only.
    PlanLockedError
        A version of this plan is already approved.
    ValidationError
        The version has no path to approve (its verdict is NO FEASIBLE PATH or the route is not assessable).
    ConfirmationRequired
        A newer version exists without *confirm_older*, or the verdict is NOT CLEARED without
        *confirm_not_cleared*.
    NotFoundError
        No such (live) saved plan.
    """
    sv = _svc()
    sv._require_writer(actor)
    if actor is not None and actor.role not in APPROVER_ROLES:
        raise PermissionDeniedError(f"only a radiologist approves a plan (your role: {actor.role})")
    plan = sv._get(session, m.SavedPlan, saved_plan_id, "plan")
    row = _ensure_row(session, plan)
    ok = _approved(session, row.root_plan_id)
    if ok is not None:
        raise PlanLockedError(_locked_message(ok))
    code = ((plan.plan or {}).get("verdict") or {}).get("code")
    if code in ("no_feasible_path", "route_not_assessable") or not (plan.plan or {}).get("trajectories"):
        raise ValidationError("this version has no path to approve (its verdict is "
                              f"{code or 'unknown'}); adjust it until the re-check finds a path, save, then approve")
    latest = latest_version(session, plan.id)
    detail: dict[str, Any] = {"approved": True, "version": row.number, "root_plan_id": row.root_plan_id}
    if latest is not None and latest["number"] > row.number:
        if not confirm_older:
            raise ConfirmationRequired(
                f"version {latest['number']} of this plan is newer than version {row.number}: open version "
                f"{latest['number']}, or tick 'approve version {row.number} although version {latest['number']} "
                "is newer' to approve this one")
        detail["newer_version"] = latest["number"]
    items = not_cleared_items(plan.plan or {})
    if items is not None:
        if not confirm_not_cleared:
            raise ConfirmationRequired(
                "this version is NOT CLEARED: tick the box confirming that what it leaves open ("
                + "; ".join(items) + ") was checked on other images, or adjust the plan")
        detail["not_cleared_confirmed"] = items
    row.approved_at = m.utcnow()
    row.approved_by = sv.actor_name(actor)
    sv.audit(session, actor, "update", "plan", plan.id, patient_id=plan.lesion.patient_id, detail=detail)
    session.flush()
    return row


def check_unlocked(session: Session, saved_plan_id: int) -> None:
    """Refuse changing a plan that has an approved version.

    Raises
    ------
    PlanLockedError
        A version of the plan *saved_plan_id* belongs to is approved.
    """
    row = version_of(session, saved_plan_id)
    ok = _approved(session, row.root_plan_id) if row is not None else None
    if ok is not None:
        raise PlanLockedError(_locked_message(ok))


def check_deletable(session: Session, saved_plan_id: int) -> None:
    """Refuse deleting an approved version.

    Raises
    ------
    PlanLockedError
        The saved plan is an approved version.
    """
    row = version_of(session, saved_plan_id)
    if row is not None and row.approved_at is not None:
        raise PlanLockedError(_locked_message(row))
