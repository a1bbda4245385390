"""The care-pathway registry: SQLAlchemy 2 models (typed ``Mapped[...]``).

One case = one :class:`Patient` (pseudonymous internal ``code``) with its lesions, tumour-board (RCP)
decisions, consultations, procedures (with screws), follow-ups and adverse events.

Conventions shared by every table except :class:`AuditLog`:

- ``id`` integer primary key; ``created_at`` / ``updated_at`` (UTC);
- ``version``: optimistic-locking counter (SQLAlchemy ``version_id_col``); an UPDATE whose version no longer
  matches raises :class:`osteoplan.errors.ConflictError` through the service layer;
- soft delete: ``deleted_at``, ``deleted_by``, ``deleted_reason``; rows are never removed (a database trigger
  refuses DELETE on every table, see the migration ``0001``).

:class:`AuditLog` is append-only: no ``version``, no soft delete, and database triggers refuse UPDATE and DELETE
(SQLite and PostgreSQL).

Identity fields of a patient (names, birth date, hospital identifier) are optional and encrypted at rest with
Fernet (:mod:`osteoplan.workflow.crypto`); they never appear in exports (FHIR, CSV, statistics) or in research
views.

Vocabularies (stored as plain strings, checked by :mod:`osteoplan.workflow.service`) are the module-level tuples
below.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, relationship

from osteoplan.workflow.crypto import EncryptedText

# ----------------------------------------------------------------------------------------------- vocabularies
ROLES: tuple[str, ...] = ("radiologist", "tumour_board", "coordinator", "admin", "research")
#: Roles whose members may validate a tumour-board decision as "the named physician".
PHYSICIAN_ROLES: tuple[str, ...] = ("radiologist", "tumour_board")
SEXES: tuple[str, ...] = ("female", "male", "other", "unknown")
SITE_KINDS: tuple[str, ...] = ("vertebra", "bone")
VERTEBRAL_LEVELS: tuple[str, ...] = (
    tuple(f"C{i}" for i in range(1, 8)) + tuple(f"T{i}" for i in range(1, 13))
    + tuple(f"L{i}" for i in range(1, 6)) + tuple(f"S{i}" for i in range(1, 6)) + ("coccyx",)
)
LESION_TYPES: tuple[str, ...] = ("lytic", "mixed", "blastic")
SCORE_SYSTEMS: tuple[str, ...] = ("SINS", "Mirels")
DECISION_TYPES: tuple[str, ...] = (
    "screw_cement", "screw_alone", "cement_alone", "radiotherapy", "surgery", "watchful_waiting", "other",
)
#: Decisions that lead to a percutaneous consolidation procedure in interventional radiology.
CONSOLIDATION_DECISIONS: tuple[str, ...] = ("screw_cement", "screw_alone", "cement_alone")
DECISION_LABELS: dict[str, str] = {
    "screw_cement": "screw + cement", "screw_alone": "screw alone", "cement_alone": "cement alone",
    "radiotherapy": "radiotherapy", "surgery": "surgery", "watchful_waiting": "watchful waiting",
    "other": "other",
}
ANAESTHESIA: tuple[str, ...] = ("general", "sedation", "local")
GUIDANCE: tuple[str, ...] = ("CT", "fluoroscopy", "CT+fluoroscopy")
PROCEDURE_STATUSES: tuple[str, ...] = ("scheduled", "done", "cancelled")
TIMEPOINTS: tuple[str, ...] = ("baseline", "day1", "1m", "3m", "6m", "12m")
#: Nominal delay of each timepoint after the procedure, in days (baseline: before it).
TIMEPOINT_DAYS: dict[str, int] = {"baseline": 0, "day1": 1, "1m": 30, "3m": 91, "6m": 182, "12m": 365}
#: Procedure types the team reports its activity by (issue 15). Stored on each procedure
#: (``Procedure.procedure_type``); when not entered it is inferred from the treated site and what was placed
#: (:func:`infer_procedure_type`). Kyphoplasty (balloon or implant-assisted) cannot be inferred: it is entered.
PROCEDURE_TYPES: tuple[str, ...] = (
    "vertebroplasty", "kyphoplasty", "c2_screw", "vertebral_screw_cement", "pelvic_femoral_screw_cement",
    "long_bone_cementoplasty", "pelvic_cementoplasty", "other",
)
PROCEDURE_TYPE_LABELS: dict[str, str] = {
    "vertebroplasty": "vertebroplasty",
    "kyphoplasty": "kyphoplasty (balloon / implant)",
    "c2_screw": "C2 screw (± cement)",
    "vertebral_screw_cement": "vertebral screw + cement (other level)",
    "pelvic_femoral_screw_cement": "pelvic / femoral screw + cement",
    "long_bone_cementoplasty": "long-bone cementoplasty",
    "pelvic_cementoplasty": "pelvic cementoplasty (acetabulum, ilium, pubis)",
    "other": "other",
}
#: Non-vertebral sites counted as pelvis (the femur is grouped with them for screw fixation, as the team reports
#: "pelvic/femoral screw + cement"). Lower-case bone names as typed in ``Lesion.site``.
PELVIC_SITES: tuple[str, ...] = ("acetabulum", "ilium", "iliac", "ischium", "pubis", "pelvis", "sacrum")
#: Long bones (cementoplasty of their metaphysis / diaphysis).
LONG_BONE_SITES: tuple[str, ...] = ("femur", "humerus", "tibia", "fibula", "radius", "ulna")


def infer_procedure_type(site_kind: str | None, site: str | None, has_screw: bool, has_cement: bool) -> str:
    """The procedure type from the treated site and what was placed (screws, cement).

    A classification rule of the project (no published source): a screw in C2 is a "C2 screw" whatever the
    cement; a screw elsewhere in the spine is "vertebral screw + cement"; a screw in the pelvis or a femur is
    "pelvic / femoral screw + cement"; cement alone in a vertebra is a vertebroplasty (a kyphoplasty needs a
    balloon or implant, which is not recorded, so it is only ever entered by hand), in a long bone a long-bone
    cementoplasty, in the pelvis a pelvic cementoplasty. Anything else (no screw and no cement logged, a screw
    in a humerus ...) is "other".

    Parameters
    ----------
    site_kind : {"vertebra", "bone"} or None
    site : str or None
        Vertebral level ("C2") or bone name ("femur").
    has_screw, has_cement : bool
        Whether at least one screw / some cement was logged (or, before the procedure, is planned by the
        tumour-board decision).
    """
    s = (site or "").strip().lower()
    if site_kind == "vertebra":
        if has_screw:
            return "c2_screw" if s == "c2" else "vertebral_screw_cement"
        return "vertebroplasty" if has_cement else "other"
    pelvic = any(k in s for k in PELVIC_SITES)
    long_bone = any(k in s for k in LONG_BONE_SITES)
    if has_screw:
        return "pelvic_femoral_screw_cement" if (pelvic or "femur" in s) else "other"
    if has_cement:
        if long_bone:
            return "long_bone_cementoplasty"
        if pelvic:
            return "pelvic_cementoplasty"
    return "other"


#: Grading status of an adverse event: "provisional" until its outcome is known (CIRSE grades 3-6 depend on
#: the hospital stay and sequelae), then "final". Legacy rows (NULL) count as final.
AE_GRADE_STATUSES: tuple[str, ...] = ("provisional", "final")
AE_CLASSIFICATIONS: dict[str, tuple[str, ...]] = {
    # Filippiadis et al., CVIR 2017;40:1141 (grades 1-6).
    "CIRSE 2017": ("1", "2", "3", "4", "5", "6"),
    # The 2026 modification splits grades 1 and 3 (stored verbatim; sub-grades 1a/1b, 3a/3b).
    "CIRSE 2026": ("1a", "1b", "2", "3a", "3b", "4", "5", "6"),
    # Legacy Society of Interventional Radiology outcome classes A-F (Sacks et al., JVIR 2003).
    "SIR": ("A", "B", "C", "D", "E", "F"),
}


def utcnow() -> dt.datetime:
    """Current time, timezone-aware UTC."""
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of the registry."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class RecordMixin:
    """id, timestamps, optimistic-locking version and soft delete, shared by every clinical table."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_by: Mapped[str | None] = mapped_column(String(64))
    deleted_reason: Mapped[str | None] = mapped_column(Text)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:  # noqa: N805
        return {"version_id_col": cls.__table__.c.version}

    @property
    def is_deleted(self) -> bool:
        """Whether the record was soft-deleted."""
        return self.deleted_at is not None


class User(RecordMixin, Base):
    """A person using the application; ``password_hash`` is a bcrypt hash (never the password)."""

    __tablename__ = "users"
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    display_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    password_hash: Mapped[str] = mapped_column(String(100), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    def __repr__(self) -> str:
        return f"User({self.username!r}, role={self.role!r})"


class Patient(RecordMixin, Base):
    """A case: pseudonymous ``code``; identity fields optional and encrypted at rest."""

    __tablename__ = "patients"
    code: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    # --- identity (encrypted, optional, never exported)
    family_name: Mapped[str | None] = mapped_column(EncryptedText)
    given_name: Mapped[str | None] = mapped_column(EncryptedText)
    birth_date: Mapped[str | None] = mapped_column(EncryptedText)  # ISO date, encrypted as text
    hospital_id: Mapped[str | None] = mapped_column(EncryptedText)
    # --- pseudonymous clinical fields
    sex: Mapped[str] = mapped_column(String(10), nullable=False, default="unknown")
    birth_year: Mapped[int | None] = mapped_column(Integer)
    primary_cancer: Mapped[str] = mapped_column(String(120), nullable=False)
    ecog: Mapped[int | None] = mapped_column(Integer)
    karnofsky: Mapped[int | None] = mapped_column(Integer)
    date_of_death: Mapped[dt.date | None] = mapped_column(Date)

    lesions: Mapped[list[Lesion]] = relationship(back_populates="patient", order_by="Lesion.id")
    decisions: Mapped[list[TumourBoardDecision]] = relationship(
        back_populates="patient", order_by="TumourBoardDecision.id")
    consultations: Mapped[list[Consultation]] = relationship(
        back_populates="patient", order_by="Consultation.id")
    procedures: Mapped[list[Procedure]] = relationship(back_populates="patient", order_by="Procedure.id")
    follow_ups: Mapped[list[FollowUp]] = relationship(back_populates="patient", order_by="FollowUp.id")
    adverse_events: Mapped[list[AdverseEvent]] = relationship(
        back_populates="patient", order_by="AdverseEvent.id")

    def __repr__(self) -> str:  # never the identity
        return f"Patient({self.code!r})"


class Lesion(RecordMixin, Base):
    """A bone lesion: site, type, fracture-risk score (SINS for the spine, Mirels for long bones)."""

    __tablename__ = "lesions"
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), nullable=False, index=True)
    site_kind: Mapped[str] = mapped_column(String(10), nullable=False)  # vertebra | bone
    site: Mapped[str] = mapped_column(String(40), nullable=False)  # "C2" or "femur", "humerus", ...
    side: Mapped[str | None] = mapped_column(String(10))  # left | right | midline
    lesion_type: Mapped[str] = mapped_column(String(10), nullable=False)
    score_system: Mapped[str | None] = mapped_column(String(10))  # SINS | Mirels
    score_total: Mapped[int | None] = mapped_column(Integer)
    score_category: Mapped[str | None] = mapped_column(String(60))
    score_components: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    ct_series_uids: Mapped[list[Any]] = mapped_column(JSON, nullable=False, default=list)
    description: Mapped[str | None] = mapped_column(Text)

    patient: Mapped[Patient] = relationship(back_populates="lesions")
    plans: Mapped[list[SavedPlan]] = relationship(back_populates="lesion", order_by="SavedPlan.id")


class SavedPlan(RecordMixin, Base):
    """A planner output (``plan.json`` content) attached to a lesion."""

    __tablename__ = "saved_plans"
    lesion_id: Mapped[int] = mapped_column(ForeignKey("lesions.id"), nullable=False, index=True)
    label: Mapped[str] = mapped_column(String(120), nullable=False, default="plan")
    plan: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(64))

    lesion: Mapped[Lesion] = relationship(back_populates="plans")


class TumourBoardMeeting(RecordMixin, Base):
    """A multidisciplinary tumour-board meeting (RCP): date and specialties present."""

    __tablename__ = "tumour_board_meetings"
    meeting_date: Mapped[dt.date] = mapped_column(Date, nullable=False, index=True)
    specialties_present: Mapped[list[Any]] = mapped_column(JSON, nullable=False, default=list)
    decisions: Mapped[list[TumourBoardDecision]] = relationship(back_populates="meeting")


class TumourBoardDecision(RecordMixin, Base):
    """The board's decision for one patient (and usually one lesion), validated by a named physician."""

    __tablename__ = "tumour_board_decisions"
    meeting_id: Mapped[int] = mapped_column(ForeignKey("tumour_board_meetings.id"), nullable=False, index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), nullable=False, index=True)
    lesion_id: Mapped[int | None] = mapped_column(ForeignKey("lesions.id"))
    question: Mapped[str] = mapped_column(Text, nullable=False)
    decision_type: Mapped[str] = mapped_column(String(20), nullable=False)
    justification: Mapped[str] = mapped_column(Text, nullable=False, default="")
    validated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    validated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: Who proposed (recorded) the decision; a proposer never validates it (board rules, issue 15).
    #: NULL for decisions recorded before the rule existed or by the system (demo, import).
    proposed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    meeting: Mapped[TumourBoardMeeting] = relationship(back_populates="decisions")
    patient: Mapped[Patient] = relationship(back_populates="decisions")
    lesion: Mapped[Lesion | None] = relationship()
    validated_by: Mapped[User | None] = relationship(foreign_keys=[validated_by_id])
    proposed_by: Mapped[User | None] = relationship(foreign_keys=[proposed_by_id])
    validations: Mapped[list[DecisionValidation]] = relationship(
        back_populates="decision", order_by="DecisionValidation.id")

    @property
    def is_validated(self) -> bool:
        """Whether a physician validated the decision."""
        return self.validated_by_id is not None and self.validated_at is not None


class DecisionValidation(RecordMixin, Base):
    """One board member's validation of a tumour-board decision.

    The decision counts as validated (``validated_by_id`` / ``validated_at`` set, by the member who completed
    it) once the configured quorum of distinct members, none of them its proposer, have validated it (see
    :class:`osteoplan.workflow.service.BoardRules`).
    """

    __tablename__ = "decision_validations"
    decision_id: Mapped[int] = mapped_column(ForeignKey("tumour_board_decisions.id"), nullable=False, index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    validated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    decision: Mapped[TumourBoardDecision] = relationship(back_populates="validations")
    user: Mapped[User] = relationship()


class Consultation(RecordMixin, Base):
    """Pre-operative consultation: information given, consent, anaesthesia."""

    __tablename__ = "consultations"
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), nullable=False, index=True)
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("tumour_board_decisions.id"))
    lesion_id: Mapped[int | None] = mapped_column(ForeignKey("lesions.id"))
    consultation_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    physician: Mapped[str | None] = mapped_column(String(120))
    benefits_explained: Mapped[str] = mapped_column(Text, nullable=False, default="")
    risks_explained: Mapped[str] = mapped_column(Text, nullable=False, default="")
    consent_obtained: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    consent_date: Mapped[dt.date | None] = mapped_column(Date)
    anaesthesia: Mapped[str | None] = mapped_column(String(10))
    info_sheet_language: Mapped[str | None] = mapped_column(String(2))  # fr | en, when one was handed over

    patient: Mapped[Patient] = relationship(back_populates="consultations")
    decision: Mapped[TumourBoardDecision | None] = relationship()
    lesion: Mapped[Lesion | None] = relationship()


class Procedure(RecordMixin, Base):
    """A consolidation procedure: scheduled, then logged when done; post-operative course."""

    __tablename__ = "procedures"
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), nullable=False, index=True)
    lesion_id: Mapped[int] = mapped_column(ForeignKey("lesions.id"), nullable=False, index=True)
    #: indexed (0003_worklist): the worklist asks, per validated decision, whether a procedure exists
    decision_id: Mapped[int] = mapped_column(ForeignKey("tumour_board_decisions.id"), nullable=False, index=True)
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="scheduled")
    #: One of :data:`PROCEDURE_TYPES`; set when scheduled (from the decision and the site) and when logged (from
    #: what was placed) unless entered (:func:`infer_procedure_type`).
    procedure_type: Mapped[str | None] = mapped_column(String(30), index=True)
    scheduled_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    procedure_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    operators: Mapped[list[Any]] = mapped_column(JSON, nullable=False, default=list)
    anaesthesia: Mapped[str | None] = mapped_column(String(10))
    guidance: Mapped[str | None] = mapped_column(String(20))
    levels_treated: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    hydrodissection_volume_ml: Mapped[float | None] = mapped_column(Float)
    trocar: Mapped[str | None] = mapped_column(String(80))  # e.g. "11G bone trocar"
    guide_pin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    cement_volume_ml: Mapped[float | None] = mapped_column(Float)
    cement_leak: Mapped[bool | None] = mapped_column(Boolean)
    leak_sites: Mapped[list[Any]] = mapped_column(JSON, nullable=False, default=list)
    duration_min: Mapped[int | None] = mapped_column(Integer)
    dlp_mgy_cm: Mapped[float | None] = mapped_column(Float)
    fluoroscopy_time_s: Mapped[float | None] = mapped_column(Float)
    technical_success: Mapped[bool | None] = mapped_column(Boolean)
    notes: Mapped[str | None] = mapped_column(Text)
    # --- post-operative course
    collar_removed_date: Mapped[dt.date | None] = mapped_column(Date)
    discharge_date: Mapped[dt.date | None] = mapped_column(Date)

    patient: Mapped[Patient] = relationship(back_populates="procedures")
    lesion: Mapped[Lesion] = relationship()
    decision: Mapped[TumourBoardDecision] = relationship()
    screws: Mapped[list[ProcedureScrew]] = relationship(
        back_populates="procedure", order_by="ProcedureScrew.position")
    verifications: Mapped[list[Verification]] = relationship(
        back_populates="procedure", order_by="Verification.id")

    @property
    def live_screws(self) -> list[ProcedureScrew]:
        """Screws not soft-deleted."""
        return [s for s in self.screws if s.deleted_at is None]


class ProcedureScrew(RecordMixin, Base):
    """One screw placed during a procedure (diameter x length, mm)."""

    __tablename__ = "procedure_screws"
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedures.id"), nullable=False, index=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    diameter_mm: Mapped[float] = mapped_column(Float, nullable=False)
    length_mm: Mapped[float] = mapped_column(Float, nullable=False)
    cannulated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    procedure: Mapped[Procedure] = relationship(back_populates="screws")


#: Steps of the procedure a control CT checks (``osteoplan verify --stage``): after the bone trocar, after the
#: guide pin (K-wire), after the screw (post-operative CT).
VERIFICATION_STAGES: tuple[str, ...] = ("trocar", "pin", "screw")
#: Breach grades stored with a post-operative check (Gertzbein-Robbins letters, adapted to the dens screw, see
#: :mod:`osteoplan.verification.postop`); NULL = not assessed.
BREACH_GRADES: tuple[str, ...] = ("A", "B", "C", "D", "E")


class Verification(RecordMixin, Base):
    """A control CT checked against the plan (``osteoplan verify``), stored with its procedure.

    The figures are those of :func:`osteoplan.verification.verify_control`, in the planning CT's frame (LPS mm):
    the tip, its distance to the planned path and the angle to it at every stage; at the ``screw`` stage
    (post-operative CT) the entry, tip and angle errors of the screw against the planned screw, the largest
    excursion of the screw outside the vertebra's cortex (and where), and its breach grade with the grade's
    source text (Gertzbein-Robbins adapted to the dens, not validated for it). ``figures`` keeps the whole
    result (registration matrix, clearances, correction) as it was measured; the columns are what the
    statistics read. ``registration_residual_median_mm`` is the quality figure of the registration (median
    distance between the bone surfaces near the target after registration).
    """

    __tablename__ = "verifications"
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), nullable=False, index=True)
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedures.id"), nullable=False, index=True)
    saved_plan_id: Mapped[int] = mapped_column(ForeignKey("saved_plans.id"), nullable=False)
    #: the job that measured it (web app), None when entered otherwise (CLI import, tests)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("plan_jobs.id"))
    stage: Mapped[str] = mapped_column(String(10), nullable=False)
    control_source: Mapped[str | None] = mapped_column(String(20))  # upload | pacs
    control_series_uid: Mapped[str | None] = mapped_column(String(64))
    # --- every stage
    tip_lps_mm: Mapped[list[Any]] = mapped_column(JSON, nullable=False)
    tip_to_plan_mm: Mapped[float] = mapped_column(Float, nullable=False)
    angle_to_plan_deg: Mapped[float] = mapped_column(Float, nullable=False)
    tip_to_target_mm: Mapped[float | None] = mapped_column(Float)
    lateral_offset_at_target_mm: Mapped[float | None] = mapped_column(Float)
    # --- post-operative (stage screw)
    entry_error_mm: Mapped[float | None] = mapped_column(Float)
    tip_error_mm: Mapped[float | None] = mapped_column(Float)
    angle_error_deg: Mapped[float | None] = mapped_column(Float)
    outside_cortex_mm: Mapped[float | None] = mapped_column(Float)
    outside_cortex_where: Mapped[str | None] = mapped_column(String(200))
    breach_grade: Mapped[str | None] = mapped_column(String(2))
    breach_grade_source: Mapped[str | None] = mapped_column(Text)
    breach_note: Mapped[str | None] = mapped_column(Text)
    # --- registration quality, instrument
    registration_residual_median_mm: Mapped[float] = mapped_column(Float, nullable=False)
    registration_surface_overlap: Mapped[float | None] = mapped_column(Float)
    instrument_diameter_mm: Mapped[float | None] = mapped_column(Float)
    instrument_length_mm: Mapped[float | None] = mapped_column(Float)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    measured_by: Mapped[str | None] = mapped_column(String(64))

    procedure: Mapped[Procedure] = relationship(back_populates="verifications")
    patient: Mapped[Patient] = relationship()
    saved_plan: Mapped[SavedPlan] = relationship()


class FollowUp(RecordMixin, Base):
    """A follow-up visit at a nominal timepoint (baseline, day 1, 1/3/6/12 months)."""

    __tablename__ = "follow_ups"
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), nullable=False, index=True)
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedures.id"), nullable=False, index=True)
    timepoint: Mapped[str] = mapped_column(String(10), nullable=False)
    visit_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    pain_nrs: Mapped[int | None] = mapped_column(Integer)
    analgesics: Mapped[str | None] = mapped_column(Text)
    opioid_mme_mg_day: Mapped[float | None] = mapped_column(Float)  # oral morphine equivalent, mg/day
    imaging: Mapped[str | None] = mapped_column(String(40))  # e.g. "CT", "MRI", "radiograph"
    imaging_findings: Mapped[str | None] = mapped_column(Text)
    adjuvant_radiotherapy: Mapped[bool | None] = mapped_column(Boolean)
    adjuvant_chemotherapy: Mapped[bool | None] = mapped_column(Boolean)
    notes: Mapped[str | None] = mapped_column(Text)

    patient: Mapped[Patient] = relationship(back_populates="follow_ups")
    procedure: Mapped[Procedure] = relationship()


class AdverseEvent(RecordMixin, Base):
    """An adverse event graded with a named classification and version (e.g. "CIRSE 2017" grade "2")."""

    __tablename__ = "adverse_events"
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), nullable=False, index=True)
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedures.id"), nullable=False, index=True)
    event_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    classification: Mapped[str] = mapped_column(String(20), nullable=False)  # "CIRSE 2017", "SIR", ...
    grade: Mapped[str] = mapped_column(String(4), nullable=False)
    cement_leak_related: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    #: :data:`AE_GRADE_STATUSES`; "provisional" events are on the radiologist's worklist until graded final.
    grade_status: Mapped[str | None] = mapped_column(String(12))

    patient: Mapped[Patient] = relationship(back_populates="adverse_events")
    procedure: Mapped[Procedure] = relationship()


class AuditLog(Base):
    """Append-only audit trail of every read and write of patient data (who, when, what, why).

    UPDATE and DELETE are refused by database triggers (SQLite and PostgreSQL). ``username`` and ``role`` are
    copied so the record stays meaningful even if the account changes.
    """

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False, index=True)
    user_id: Mapped[int | None] = mapped_column(Integer)  # no FK: the log outlives anything
    username: Mapped[str] = mapped_column(String(64), nullable=False)
    role: Mapped[str | None] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(10), nullable=False)  # read | create | update | delete | login
    entity: Mapped[str] = mapped_column(String(40), nullable=False)
    entity_id: Mapped[int | None] = mapped_column(Integer, index=True)
    patient_id: Mapped[int | None] = mapped_column(Integer, index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    path: Mapped[str | None] = mapped_column(String(300))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class CaseCodeCounter(Base):
    """Last number given to a generated case code ``OP-<year>-<nnnn>``, one row per year.

    :func:`osteoplan.workflow.service.create_patient` takes the next number with one ``UPDATE ... RETURNING``:
    the row lock (PostgreSQL) or the database write lock (SQLite) serialises concurrent creators, so two cases
    never get the same generated code. Not a clinical record: no version, no soft delete.
    """

    __tablename__ = "case_code_counters"
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, nullable=False)


class RevokedSession(Base):
    """A web login session ended by logging out (its random id, from the signed cookie).

    The signed cookie stays valid until it expires, so the id is kept until then (``expires_at``) and refused:
    a copy of the cookie does not log in again, not even after a server restart. Rows past ``expires_at`` may
    be removed (not patient data, not an audit record).
    """

    __tablename__ = "revoked_sessions"
    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    revoked_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)


#: States of a planning job (:class:`PlanJob`); ``done``, ``failed`` and ``cancelled`` are final.
PLAN_JOB_STATES: tuple[str, ...] = ("queued", "running", "done", "failed", "cancelled")


class PlanJob(Base):
    """A planning job: one CT + one protocol for one lesion, run by a worker process (:mod:`osteoplan.workflow.jobs`).

    The registry's own database is the queue (PostgreSQL or SQLite): a worker claims a ``queued`` row with one
    conditional ``UPDATE`` (``SELECT ... FOR UPDATE SKIP LOCKED`` first on PostgreSQL), writes ``heartbeat_at``
    while it runs, and a row left ``running`` by a worker that stopped (no heartbeat within the lease, or its
    process gone) is marked ``failed`` with the reason. Not a clinical record (no optimistic version, no soft
    delete): its result is the :class:`SavedPlan` it attaches (``saved_plan_id``), audited like any plan.
    ``work_dir`` is osteoplan's own folder for the job (named by job number only, never by an identifier).
    """

    __tablename__ = "plan_jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), nullable=False, index=True)
    lesion_id: Mapped[int] = mapped_column(ForeignKey("lesions.id"), nullable=False, index=True)
    state: Mapped[str] = mapped_column(String(12), nullable=False, default="queued", index=True)
    protocol: Mapped[str] = mapped_column(String(200), nullable=False)
    side: Mapped[str | None] = mapped_column(String(8))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    work_dir: Mapped[str | None] = mapped_column(Text)
    stage: Mapped[str | None] = mapped_column(String(20))
    stage_label: Mapped[str | None] = mapped_column(String(200))
    stages_done: Mapped[list[Any]] = mapped_column(JSON, nullable=False, default=list)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    worker: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    verdict: Mapped[str | None] = mapped_column(String(300))
    saved_plan_id: Mapped[int | None] = mapped_column(ForeignKey("saved_plans.id"))


#: Entity name (as used in the service and the audit log) -> model class.
ENTITIES: dict[str, type[RecordMixin]] = {
    "user": User,
    "patient": Patient,
    "lesion": Lesion,
    "plan": SavedPlan,
    "meeting": TumourBoardMeeting,
    "decision": TumourBoardDecision,
    "decision_validation": DecisionValidation,
    "consultation": Consultation,
    "procedure": Procedure,
    "screw": ProcedureScrew,
    "follow_up": FollowUp,
    "adverse_event": AdverseEvent,
    "verification": Verification,
}


class PlanVersion(Base):
    """One version of a plan: the saved plan (``plan.json`` content) it is, the plan it came from, and what moved.

    Version 1 is the plan a planning job (or an upload) attached; saving an adjustment made on the review page
    attaches a new :class:`SavedPlan` to the same lesion and records it here as version n + 1 of the same root,
    with who saved it, when, and each moved point's displacement (LPS mm) from the version it was made from
    (:mod:`osteoplan.workflow.plan_versions`). An approved version locks its plan: no new version, no second
    approval, no deletion (approval is set once, never cleared).
    """

    __tablename__ = "plan_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    saved_plan_id: Mapped[int] = mapped_column(ForeignKey("saved_plans.id"), nullable=False, unique=True)
    root_plan_id: Mapped[int] = mapped_column(ForeignKey("saved_plans.id"), nullable=False, index=True)
    parent_plan_id: Mapped[int | None] = mapped_column(ForeignKey("saved_plans.id"))
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(64))
    #: point -> {"delta_lps_mm": [dx, dy, dz], "distance_mm": d} for each point that moved (skin_entry, bone_entry,
    #: target), relative to the parent version; {} for version 1.
    moved: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    note: Mapped[str | None] = mapped_column(Text)
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    approved_by: Mapped[str | None] = mapped_column(String(64))
