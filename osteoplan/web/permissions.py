"""The role -> allowed actions table, written once and enforced in one place.

Every page and every API route declares the single action it performs with
``Depends(require("<action>"))`` (see :func:`osteoplan.web.auth.require`). The table below is the
only place that says which role may do what; the role x route test matrix
(``tests/web/test_matrix.py``) walks every route of the application and checks it against this
table for every role.

Roles (issue 7): radiologist, tumour-board member, coordinator, administrator, read-only research.
The split of duties below is a configurable default without a published source: radiologists run
the procedure and its follow-up, tumour-board members record and validate decisions, coordinators
open cases, schedule and record follow-up calls, administrators manage accounts, read the audit log
and soft-delete records, research users see pseudonymised data and statistics only.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """User roles (values are stored in the database)."""

    RADIOLOGIST = "radiologist"
    TUMOUR_BOARD = "tumour_board"
    COORDINATOR = "coordinator"
    ADMIN = "admin"
    RESEARCH = "research"


#: Human labels for the pages.
ROLE_LABELS: dict[str, str] = {
    Role.RADIOLOGIST: "Radiologist",
    Role.TUMOUR_BOARD: "Tumour-board member",
    Role.COORDINATOR: "Coordinator",
    Role.ADMIN: "Administrator",
    Role.RESEARCH: "Research (read-only, pseudonymised)",
}

#: Every action a route may declare, with what it means.
ACTIONS: dict[str, str] = {
    "case.list": "see the list of cases (pseudonymised codes)",
    "case.read": "open a case (pseudonymised view)",
    "case.identity": "see identifying fields of a patient (name, birth date, hospital ID)",
    "case.create": "open a new case (patient record)",
    "case.edit": "edit the patient record (cancer, performance status, identity)",
    "case.delete": "soft-delete a case or record, with a reason",
    "lesion.write": "add or edit a lesion (site, SINS / Mirels, CT series, plan)",
    "rcp.write": "record a tumour-board (RCP) meeting and its decision",
    "rcp.validate": "validate a tumour-board decision as the named physician",
    "consultation.write": "record the pre-operative consultation and consent",
    "infosheet.read": "download the patient information sheet (PDF)",
    "procedure.schedule": "schedule a procedure (date, after a validated tumour-board decision)",
    "procedure.write": "log a procedure",
    "followup.write": "record a post-operative or follow-up visit",
    "adverse_event.write": "record an adverse event (CIRSE grade)",
    "stats.read": "see the activity and outcome statistics (aggregates)",
    "fhir.export": "download the FHIR R4 export of a case (pseudonymised)",
    "audit.read": "read the audit log",
    "user.admin": "manage user accounts",
    "worklist.read": "see the worklist of the role (what is due and overdue) and export it as reminders",
    "plan.approve": "approve a plan version (it is then locked: no new version, no deletion)",
}

_READ = {"case.list", "case.read", "stats.read"}

#: role -> allowed actions. THE table.
PERMISSIONS: dict[str, frozenset[str]] = {
    Role.RADIOLOGIST: frozenset(_READ | {
        "case.identity", "case.create", "case.edit", "lesion.write", "rcp.write", "rcp.validate",
        "consultation.write", "infosheet.read", "procedure.schedule", "procedure.write", "followup.write",
        "adverse_event.write", "fhir.export", "worklist.read", "plan.approve",
    }),
    Role.TUMOUR_BOARD: frozenset(_READ | {
        "case.identity", "lesion.write", "rcp.write", "rcp.validate", "infosheet.read", "worklist.read",
    }),
    Role.COORDINATOR: frozenset(_READ | {
        "case.identity", "case.create", "case.edit", "rcp.write", "consultation.write",
        "infosheet.read", "procedure.schedule", "followup.write", "fhir.export", "worklist.read",
    }),
    Role.ADMIN: frozenset(_READ | {
        "case.identity", "case.delete", "audit.read", "user.admin", "fhir.export", "worklist.read",
    }),
    Role.RESEARCH: frozenset(_READ | {"fhir.export"}),
}

# Every action used in the table must be declared (catches typos at import time).
for _role, _acts in PERMISSIONS.items():
    _unknown = _acts - ACTIONS.keys()
    if _unknown:  # pragma: no cover - programming error
        raise RuntimeError(f"permission table: unknown actions {sorted(_unknown)} for role {_role}")


def allowed(role: str | None, action: str) -> bool:
    """Whether *role* may perform *action* (unknown roles and actions: never)."""
    if role is None or action not in ACTIONS:
        return False
    return action in PERMISSIONS.get(str(role), frozenset())


def sees_identity(role: str | None) -> bool:
    """Whether *role* sees identifying fields; research and unknown roles see pseudonymised data only."""
    return allowed(role, "case.identity")
