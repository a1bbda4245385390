"""Input models of the service layer (pydantic 2).

They only carry types; every clinical rule (ranges, date order, required links) is checked by
:mod:`osteoplan.workflow.service` so that a create and a later update go through the same checks and fail with
the same :class:`osteoplan.errors.ValidationError` message. Unknown fields are refused.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserIn(_In):
    """A new user account."""

    username: str
    password: str
    role: str  # radiologist | tumour_board | coordinator | admin | research
    display_name: str = ""


class PatientIn(_In):
    """A new case. ``code`` is generated (``OP-<year>-<n>``) when not given. Identity fields are optional and
    stored encrypted; they never leave the registry (no export, no research view)."""

    code: str | None = None
    family_name: str | None = None
    given_name: str | None = None
    birth_date: dt.date | None = None
    hospital_id: str | None = None
    sex: str = "unknown"
    birth_year: int | None = None
    primary_cancer: str
    ecog: int | None = None
    karnofsky: int | None = None


class LesionIn(_In):
    """A lesion. ``site_kind`` "vertebra" (``site`` a level, e.g. "C2") or "bone" (``site`` e.g. "femur").

    ``sins``: SINS components passed to :func:`osteoplan.risk.sins.compute_sins` (keys ``pain``, ``alignment``,
    ``collapse``, ``posterolateral``; ``location`` defaults to the vertebral level and ``lesion_type`` to the
    lesion's type). ``mirels``: components for :func:`osteoplan.risk.mirels.compute_mirels` (keys ``site``,
    ``size``, ``pain``; ``lesion_type`` defaults to the lesion's).
    """

    patient_id: int
    site_kind: str
    site: str
    side: str | None = None
    lesion_type: str
    sins: dict[str, Any] | None = None
    mirels: dict[str, Any] | None = None
    ct_series_uids: list[str] = Field(default_factory=list)
    description: str | None = None


class PlanIn(_In):
    """A planner output (``plan.json`` content) to attach to a lesion."""

    lesion_id: int
    plan: dict[str, Any]
    label: str = "plan"


class MeetingIn(_In):
    """A tumour-board (RCP) meeting."""

    meeting_date: dt.date
    specialties_present: list[str] = Field(default_factory=list)


class DecisionIn(_In):
    """A tumour-board decision for a patient. Give ``meeting_id`` or ``meeting_date`` (+ specialties): a meeting
    on that date is reused or created."""

    patient_id: int
    lesion_id: int | None = None
    meeting_id: int | None = None
    meeting_date: dt.date | None = None
    specialties_present: list[str] = Field(default_factory=list)
    question: str
    decision_type: str
    justification: str = ""


class ConsultationIn(_In):
    """The pre-operative consultation."""

    patient_id: int
    decision_id: int | None = None
    lesion_id: int | None = None
    consultation_date: dt.date
    physician: str | None = None
    benefits_explained: str = ""
    risks_explained: str = ""
    consent_obtained: bool = False
    consent_date: dt.date | None = None
    anaesthesia: str | None = None
    info_sheet_language: str | None = None


class ProcedureScheduleIn(_In):
    """Schedule a procedure (needs a validated tumour-board decision). ``lesion_id`` defaults to the decision's."""

    decision_id: int
    scheduled_date: dt.date
    lesion_id: int | None = None
    anaesthesia: str | None = None
    guidance: str | None = None
    procedure_type: str | None = None  # models.PROCEDURE_TYPES; inferred from decision and site when None


class ScrewIn(_In):
    """A screw placed (mm)."""

    diameter_mm: float
    length_mm: float
    cannulated: bool = True


class ProcedureLogIn(_In):
    """What was done (marks the procedure done)."""

    procedure_date: dt.date
    operators: list[str] = Field(default_factory=list)
    anaesthesia: str | None = None
    guidance: str | None = None
    levels_treated: int = 1
    hydrodissection_volume_ml: float | None = None
    trocar: str | None = None
    guide_pin: bool = False
    screws: list[ScrewIn] = Field(default_factory=list)
    cement_volume_ml: float | None = None
    cement_leak: bool | None = None
    leak_sites: list[str] = Field(default_factory=list)
    duration_min: int | None = None
    dlp_mgy_cm: float | None = None
    fluoroscopy_time_s: float | None = None
    technical_success: bool | None = None
    notes: str | None = None
    procedure_type: str | None = None  # models.PROCEDURE_TYPES; inferred from site and material when None


class PostOpIn(_In):
    """Post-operative course of a procedure."""

    collar_removed_date: dt.date | None = None
    discharge_date: dt.date | None = None


class FollowUpIn(_In):
    """A follow-up visit at a nominal timepoint."""

    procedure_id: int
    timepoint: str  # baseline | day1 | 1m | 3m | 6m | 12m
    visit_date: dt.date
    pain_nrs: int | None = None
    analgesics: str | None = None
    opioid_mme_mg_day: float | None = None
    imaging: str | None = None
    imaging_findings: str | None = None
    adjuvant_radiotherapy: bool | None = None
    adjuvant_chemotherapy: bool | None = None
    notes: str | None = None


class AdverseEventIn(_In):
    """An adverse event with its classification and version (default "CIRSE 2017")."""

    procedure_id: int
    event_date: dt.date
    description: str
    grade: str
    classification: str = "CIRSE 2017"
    cement_leak_related: bool = False
    grade_status: str | None = None  # "provisional" (outcome not known yet: on the worklist) or "final" (default)


class VerificationIn(_In):
    """A control CT checked against a saved plan (issue 13): the result of
    :func:`osteoplan.verification.verify_control` (``osteoplan verify --json``) as it was printed, stored with the
    procedure it checks. The service reads the stored columns from ``result``."""

    procedure_id: int
    saved_plan_id: int
    result: dict[str, Any]
    job_id: int | None = None
    control_source: str | None = None  # upload | pacs
    control_series_uid: str | None = None
