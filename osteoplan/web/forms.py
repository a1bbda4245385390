"""Form specifications for each pathway step and their conversion to the workflow input models.

A form is a list of fieldsets of :class:`Field`; one generic template (``form.html``) renders them,
and :func:`parse_form` turns the submitted fields into the keyword arguments of the workflow's
pydantic input model (``osteoplan.workflow.schemas``): empty text -> None, checkboxes -> bool,
comma/line separated lists -> list, ``sins.*`` / ``mirels.*`` -> dicts, ``screw<i>.*`` -> screw list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from osteoplan.workflow import models as m


@dataclass(frozen=True)
class Field:
    """One form control."""

    name: str
    label: str
    kind: str = "text"  # text | number | date | select | checkbox | textarea | list | password
    options: tuple[tuple[str, str], ...] = ()
    required: bool = False
    step: str | None = None
    min: float | None = None
    max: float | None = None
    help: str = ""


@dataclass(frozen=True)
class FormSpec:
    """A whole form: title, fieldsets, submit label."""

    key: str
    title: str
    fieldsets: tuple[tuple[str, tuple[Field, ...]], ...]
    submit: str = "Save"
    intro: str = ""

    @property
    def fields(self) -> list[Field]:
        return [f for _, fs in self.fieldsets for f in fs]


def _opts(values, labels: dict | None = None, blank: bool = True) -> tuple[tuple[str, str], ...]:
    out = [("", "—")] if blank else []
    out += [(v, (labels or {}).get(v, v)) for v in values]
    return tuple(out)


SINS_OPTS = {
    "pain": ("mechanical", "occasional", "none"),
    "alignment": ("subluxation", "deformity", "normal"),
    "collapse": ("over-50", "under-50", "none-over-50-involved", "none"),
    "posterolateral": ("bilateral", "unilateral", "none"),
}
SINS_LABELS = {
    "mechanical": "mechanical (3)", "occasional": "occasional, non-mechanical (1)", "none": "none (0)",
    "subluxation": "subluxation / translation (4)", "deformity": "de novo deformity (2)", "normal": "normal (0)",
    "over-50": "> 50 % collapse (3)", "under-50": "< 50 % collapse (2)",
    "none-over-50-involved": "no collapse, > 50 % of body involved (1)",
}
POSTEROLATERAL_LABELS = {"bilateral": "bilateral (3)", "unilateral": "unilateral (1)", "none": "none (0)"}
MIRELS_OPTS = {
    "site": (("upper-limb", "upper limb (1)"), ("lower-limb", "lower limb (2)"), ("peritrochanteric", "peritrochanteric (3)")),
    "size": (("<1/3", "< 1/3 of cortex (1)"), ("1/3-2/3", "1/3 – 2/3 (2)"), (">2/3", "> 2/3 (3)")),
    "pain": (("mild", "mild (1)"), ("moderate", "moderate (2)"), ("functional", "functional (3)")),
}
YESNO = (("", "unknown"), ("yes", "yes"), ("no", "no"))
TIMEPOINT_LABELS = {"baseline": "baseline (before)", "day1": "day 1", "1m": "1 month", "3m": "3 months",
                    "6m": "6 months", "12m": "12 months"}

PATIENT = FormSpec("patient", "Patient", (
    ("Identity (optional, encrypted, never exported)", (
        Field("family_name", "Family name"), Field("given_name", "Given name"),
        Field("birth_date", "Birth date", "date"), Field("hospital_id", "Hospital ID"),
    )),
    ("Clinical (pseudonymised)", (
        Field("code", "Case code", help="generated (OP-year-n) when empty"),
        Field("sex", "Sex", "select", _opts(m.SEXES, blank=False)),
        Field("birth_year", "Birth year", "number", min=1900, max=2100),
        Field("primary_cancer", "Primary cancer", required=True),
        Field("ecog", "ECOG (0–5)", "number", min=0, max=5),
        Field("karnofsky", "Karnofsky (0–100)", "number", min=0, max=100, step="10"),
    )),
), submit="Save patient")

PATIENT_EDIT = FormSpec("patient_edit", "Edit patient", PATIENT.fieldsets[:1] + ((
    "Clinical (pseudonymised)", tuple(f for f in PATIENT.fieldsets[1][1] if f.name != "code")
    + (Field("date_of_death", "Date of death", "date"),)),), submit="Save changes")

LESION = FormSpec("lesion", "Lesion", (
    ("Site", (
        Field("site_kind", "Site kind", "select", _opts(m.SITE_KINDS, blank=False), required=True),
        Field("site", "Site", required=True, help="vertebral level (C2, T12...) or bone (femur, humerus...)"),
        Field("side", "Side", "select", _opts(("left", "right", "midline"))),
        Field("lesion_type", "Lesion type", "select", _opts(m.LESION_TYPES, blank=False), required=True),
    )),
    ("SINS — spine (Fisher 2010); location from the level, bone lesion from the type", tuple(
        Field(f"sins.{k}", f"SINS {k}", "select", _opts(v, POSTEROLATERAL_LABELS if k == "posterolateral" else SINS_LABELS))
        for k, v in SINS_OPTS.items())),
    ("Mirels — long bones (Mirels 1989); lesion from the type", tuple(
        Field(f"mirels.{k}", f"Mirels {k}", "select", (("", "—"),) + v) for k, v in MIRELS_OPTS.items())),
    ("Imaging", (
        Field("ct_series_uids", "CT series UIDs", "list", help="one per line"),
        Field("description", "Description", "textarea"),
    )),
), submit="Save lesion")

DECISION = FormSpec("decision", "Tumour-board (RCP) decision", (
    ("Meeting", (
        Field("meeting_date", "Meeting date", "date", required=True),
        Field("specialties_present", "Specialties present", "list",
              help="comma separated, e.g. radiotherapy, oncology, interventional radiology, spine surgery"),
    )),
    ("Decision", (
        Field("lesion_id", "Lesion", "select"),
        Field("question", "Question asked", "textarea", required=True),
        Field("decision_type", "Decision", "select", _opts(m.DECISION_TYPES, m.DECISION_LABELS), required=True),
        Field("justification", "Justification", "textarea"),
    )),
), submit="Record decision")

CONSULTATION = FormSpec("consultation", "Pre-operative consultation", (
    ("Consultation", (
        Field("decision_id", "Tumour-board decision", "select"),
        Field("lesion_id", "Lesion", "select"),
        Field("consultation_date", "Date", "date", required=True),
        Field("physician", "Physician"),
        Field("anaesthesia", "Anaesthesia planned", "select", _opts(m.ANAESTHESIA)),
    )),
    ("Information and consent", (
        Field("benefits_explained", "Benefits explained", "textarea"),
        Field("risks_explained", "Risks explained", "textarea"),
        Field("consent_obtained", "Consent obtained", "checkbox"),
        Field("consent_date", "Consent date", "date"),
        Field("info_sheet_language", "Information sheet handed over", "select", (("", "none"), ("fr", "French"), ("en", "English"))),
    )),
), submit="Save consultation")

SCHEDULE = FormSpec("schedule", "Schedule a procedure", (
    ("Procedure", (
        Field("decision_id", "Validated tumour-board decision", "select", required=True),
        Field("scheduled_date", "Scheduled date", "date", required=True),
        Field("anaesthesia", "Anaesthesia", "select", _opts(m.ANAESTHESIA)),
        Field("guidance", "Guidance", "select", _opts(m.GUIDANCE)),
        Field("procedure_type", "Procedure type", "select", _opts(m.PROCEDURE_TYPES, m.PROCEDURE_TYPE_LABELS),
              help="empty: from the decision and the site"),
    )),
), submit="Schedule", intro="A procedure can only be scheduled after a validated tumour-board decision.")

_SCREW_FIELDS = tuple(
    f for i in (1, 2) for f in (
        Field(f"screw{i}.diameter_mm", f"Screw {i} diameter (mm)", "number", step="0.1", min=0),
        Field(f"screw{i}.length_mm", f"Screw {i} length (mm)", "number", step="1", min=0),
    ))

PROCEDURE_LOG = FormSpec("procedure_log", "Procedure log", (
    ("Procedure", (
        Field("procedure_date", "Date", "date", required=True),
        Field("operators", "Operators", "list", help="comma separated"),
        Field("anaesthesia", "Anaesthesia", "select", _opts(m.ANAESTHESIA)),
        Field("guidance", "Guidance", "select", _opts(m.GUIDANCE)),
        Field("levels_treated", "Levels treated", "number", min=1, step="1"),
        Field("duration_min", "Duration (min)", "number", min=0, step="1"),
        Field("procedure_type", "Procedure type", "select", _opts(m.PROCEDURE_TYPES, m.PROCEDURE_TYPE_LABELS),
              help="empty: from the site and what was placed (kyphoplasty must be chosen)"),
    )),
    ("Steps", (
        Field("hydrodissection_volume_ml", "Hydrodissection volume (mL)", "number", step="any"),
        Field("trocar", "Trocar", help="e.g. 11G bone trocar"),
        Field("guide_pin", "Guide pin (K-wire) used", "checkbox"),
    ) + _SCREW_FIELDS + (
        Field("cement_volume_ml", "Cement (PMMA) volume (mL)", "number", step="any"),
        Field("cement_leak", "Cement leak", "select", YESNO),
        Field("leak_sites", "Leak sites", "list", help="comma separated"),
    )),
    ("Dose and result", (
        Field("dlp_mgy_cm", "DLP (mGy·cm)", "number", step="any"),
        Field("fluoroscopy_time_s", "Fluoroscopy time (s)", "number", step="any"),
        Field("technical_success", "Technical success", "select", YESNO),
        Field("notes", "Notes", "textarea"),
    )),
), submit="Save procedure log")

POSTOP = FormSpec("postop", "Post-operative course", (
    ("After the procedure", (
        Field("collar_removed_date", "Collar removed on", "date"),
        Field("discharge_date", "Discharged on", "date"),
    )),
), submit="Save")

FOLLOWUP = FormSpec("followup", "Follow-up", (
    ("Visit", (
        Field("procedure_id", "Procedure", "select", required=True),
        Field("timepoint", "Timepoint", "select", _opts(m.TIMEPOINTS, TIMEPOINT_LABELS, blank=False), required=True),
        Field("visit_date", "Visit date", "date", required=True),
        Field("pain_nrs", "Pain NRS (0–10)", "number", min=0, max=10, step="1"),
        Field("analgesics", "Analgesics"),
        Field("opioid_mme_mg_day", "Opioids (oral morphine eq., mg/day)", "number", step="any"),
    )),
    ("Imaging and adjuvant treatment", (
        Field("imaging", "Imaging", help="CT, MRI, radiograph..."),
        Field("imaging_findings", "Imaging findings", "textarea"),
        Field("adjuvant_radiotherapy", "Adjuvant radiotherapy", "select", YESNO),
        Field("adjuvant_chemotherapy", "Adjuvant chemotherapy", "select", YESNO),
        Field("notes", "Notes", "textarea"),
    )),
), submit="Save follow-up")

ADVERSE_EVENT = FormSpec("adverse_event", "Adverse event", (
    ("Event", (
        Field("procedure_id", "Procedure", "select", required=True),
        Field("event_date", "Date", "date", required=True),
        Field("classification", "Classification", "select", _opts(m.AE_CLASSIFICATIONS, blank=False)),
        Field("grade", "Grade", "select", _opts(sorted({g for gs in m.AE_CLASSIFICATIONS.values() for g in gs}), blank=False),
              required=True, help="CIRSE 2017: 1 same session ... 6 death (Filippiadis, CVIR 2017)"),
        Field("description", "Description", "textarea", required=True),
        Field("cement_leak_related", "Related to a cement leak", "checkbox"),
        Field("grade_status", "Grade is", "select", (("final", "final"), ("provisional", "provisional (outcome not "
              "known yet: stays on the radiologist's worklist)"))),
    )),
), submit="Record adverse event")

DELETE = FormSpec("delete", "Soft-delete", (
    ("Reason", (Field("reason", "Reason (kept in the record and the audit log)", "textarea", required=True),)),
), submit="Delete (soft)")


def parse_form(spec: FormSpec, form: Any) -> dict[str, Any]:
    """Convert submitted *form* (a multi-dict) into keyword arguments for the input model of *spec*.

    Only the spec's fields are read. Empty values are dropped (the model's default applies).
    """
    out: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    screws: dict[int, dict[str, Any]] = {}
    for f in spec.fields:
        raw = form.get(f.name)
        if f.kind == "checkbox":
            value: Any = raw is not None and raw not in ("", "off", "false", "0")
        else:
            raw = (raw or "").strip() if isinstance(raw, str) else raw
            if raw in (None, ""):
                continue
            if f.kind == "list":
                value = [p.strip() for p in re.split(r"[,\n;]", raw) if p.strip()]
            elif f.options == YESNO:
                value = raw == "yes"
            else:
                value = raw
        if "." in f.name:
            head, key = f.name.split(".", 1)
            sm = re.fullmatch(r"screw(\d+)", head)
            if sm:
                screws.setdefault(int(sm.group(1)), {})[key] = value
            else:
                groups.setdefault(head, {})[key] = value
        else:
            out[f.name] = value
    for head, comps in groups.items():
        out[head] = comps
    if screws:
        out["screws"] = [screws[i] for i in sorted(screws) if screws[i]]
    return out


def values_of(obj: Any, spec: FormSpec) -> dict[str, str]:
    """Current values of a record as form values (for edit forms)."""
    vals: dict[str, str] = {}
    for f in spec.fields:
        if "." in f.name:
            continue
        if isinstance(obj, dict):
            v = obj[f.name] if f.name in obj else (obj.get("identity") or {}).get(f.name)
        else:
            v = getattr(obj, f.name, None)
        if v is None or isinstance(v, dict):
            continue
        if isinstance(v, bool):
            vals[f.name] = ("yes" if v else "no") if f.kind == "select" else ("on" if v else "")
        elif isinstance(v, list):
            vals[f.name] = ", ".join(str(x) for x in v)
        else:
            vals[f.name] = str(v)
    return vals

USER = FormSpec("user", "New account", (
    ("Account", (
        Field("username", "User name", required=True), Field("display_name", "Display name"),
        Field("role", "Role", "select", _opts(m.ROLES, blank=False), required=True),
        Field("password", "Initial password (8+ characters)", "password", required=True),
    )),
), submit="Create account")


def edit_spec(spec: FormSpec, editable: tuple[str, ...], title: str) -> FormSpec:
    """*spec* restricted to the fields the workflow lets a user edit (links and computed fields excluded)."""
    fieldsets = []
    for legend, fs in spec.fieldsets:
        kept = tuple(f for f in fs if f.name in editable)
        if kept:
            fieldsets.append((legend, kept))
    return FormSpec(spec.key + "_edit", title, tuple(fieldsets), submit="Save changes")


def coerce_changes(spec: FormSpec, data: dict[str, Any], model) -> dict[str, Any]:
    """Typed changes for ``update_record``: every field of the edit form, empty -> None, values converted
    with the workflow input model's field types (pydantic), so that rules see ints, floats, dates, bools."""
    from pydantic import TypeAdapter
    from pydantic import ValidationError as PydValidationError

    from osteoplan.errors import ValidationError

    out: dict[str, Any] = {}
    for f in spec.fields:
        value = data.get(f.name)
        if value is None and f.kind == "list":
            value = []
        field = model.model_fields.get(f.name)
        if value is None and field is not None:
            if field.is_required():
                raise ValidationError(f"{f.label} is required")
            default = field.get_default(call_default_factory=True)
            if default is not None:  # e.g. "", False, []: the column is NOT NULL (free text is emptied to "")
                value = default
        if field is not None and value is not None:
            try:
                value = TypeAdapter(field.annotation).validate_python(value)
            except PydValidationError as exc:
                raise ValidationError(f"{f.label}: {exc.errors()[0]['msg']}") from None
        out[f.name] = value
    return out
