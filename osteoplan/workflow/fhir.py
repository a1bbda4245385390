"""FHIR R4 export of a case, built and validated with ``fhir.resources`` (R4B classes, FHIR 4.3, which keeps the R4
structure of the resources used here).

The Bundle (type ``collection``) holds:

- ``Patient``: pseudonymised: the internal case code as the only identifier (system
  :data:`CASE_CODE_SYSTEM`), administrative gender, ``deceasedBoolean``; never a name, birth date or hospital ID.
- ``Condition`` per lesion: SNOMED CT 94222008 "Secondary malignant neoplasm of bone" (ICD-10 C79.5), body site
  text (e.g. "C2"), the primary cancer and the fracture-risk score in ``note``.
- ``Procedure`` per done procedure: status completed, the consolidation type (local code system
  :data:`CONSOLIDATION_SYSTEM`), date, body site, outcome (technical success), screws / cement / leaks in
  ``note``, reasonReference to the Condition.
- ``Observation`` per pain score: LOINC 72514-3 "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
  ``valueInteger``, ``partOf`` the Procedure, timepoint in ``note``.
- ``Observation`` per control-CT check of a done procedure (issue 13, :class:`~osteoplan.workflow.models.Verification`):
  code ``placement-check-<stage>`` of the local system :data:`PLACEMENT_SYSTEM` (no LOINC or SNOMED code for
  an instrument's deviation from a planned path was found), ``partOf`` the Procedure, components in UCUM units:
  tip to the planned path (mm), angle to it (deg), and at the screw stage entry, tip and angle errors (mm, deg),
  outside-cortex excursion (mm) and the breach grade (``valueString``; its source text in ``note``).
- ``AdverseEvent`` per event: actuality actual, date, event text; the grade with its classification and version
  in ``seriousness`` (system ``urn:osteoplan:adverse-event-classification:<slug>``, e.g. CIRSE 2017 grade "2";
  example binding, so a local system is allowed), ``suspectEntity`` the Procedure.

Resource ids and fullUrls are deterministic (UUID5 of the case code and the record), so two exports of the same
case are identical.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from osteoplan.errors import NotFoundError
from osteoplan.workflow import models as m
from osteoplan.workflow import service as sv

CASE_CODE_SYSTEM = "urn:osteoplan:case-code"
CONSOLIDATION_SYSTEM = "urn:osteoplan:consolidation-type"
PLACEMENT_SYSTEM = "urn:osteoplan:placement-check"
LOINC_PAIN_NRS = "72514-3"
SNOMED_BONE_METASTASIS = "94222008"
_NS = uuid.UUID("6f1d2c1e-2a7b-5c3e-9f00-0a57e0b1a2c3")
_GENDER = {"female": "female", "male": "male", "other": "other", "unknown": "unknown"}


def _uid(case_code: str, kind: str, rid: int) -> str:
    return str(uuid.uuid5(_NS, f"{case_code}/{kind}/{rid}"))


def _utc_iso(t) -> str:
    """A stored timestamp as FHIR dateTime (UTC; SQLite returns it without its time zone)."""
    import datetime as dt

    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.isoformat(timespec="seconds")


def _slug(classification: str) -> str:
    return classification.lower().replace(" ", "-")


def case_bundle(p: m.Patient, free_text: bool = True):
    """Build the FHIR Bundle (``fhir.resources.R4B.bundle.Bundle``) of one loaded patient (no audit).

    ``free_text=False`` (research accounts) replaces the adverse-event description by its grade.
    """
    from fhir.resources.R4B.adverseevent import AdverseEvent
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.condition import Condition
    from fhir.resources.R4B.observation import Observation
    from fhir.resources.R4B.patient import Patient
    from fhir.resources.R4B.procedure import Procedure

    entries: list[dict[str, Any]] = []

    def add(resource) -> str:
        url = f"urn:uuid:{resource.id}"
        entries.append({"fullUrl": url, "resource": resource})
        return url

    live = sv._live
    pat = Patient(id=_uid(p.code, "patient", p.id), identifier=[{"system": CASE_CODE_SYSTEM, "value": p.code}],
                  gender=_GENDER.get(p.sex, "unknown"), deceasedBoolean=p.date_of_death is not None)
    pref = {"reference": add(pat)}
    cond_ref: dict[int, dict[str, str]] = {}
    for les in live(p.lesions):
        notes = [f"Primary cancer: {p.primary_cancer}. Lesion type: {les.lesion_type}."]
        if les.score_system:
            notes.append(f"{les.score_system} {les.score_total if les.score_total is not None else 'incomplete'}"
                         + (f" ({les.score_category})" if les.score_category else ""))
        c = Condition(
            id=_uid(p.code, "condition", les.id),
            clinicalStatus={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                        "code": "active"}]},
            verificationStatus={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                            "code": "confirmed"}]},
            code={"coding": [{"system": "http://snomed.info/sct", "code": SNOMED_BONE_METASTASIS,
                              "display": "Secondary malignant neoplasm of bone"},
                             {"system": "http://hl7.org/fhir/sid/icd-10", "code": "C79.5",
                              "display": "Secondary malignant neoplasm of bone and bone marrow"}],
                  "text": f"Bone metastasis {les.site}"},
            bodySite=[{"text": les.site + (f" ({les.side})" if les.side else "")}],
            subject=pref, note=[{"text": " ".join(notes)}])
        cond_ref[les.id] = {"reference": add(c)}
    proc_ref: dict[int, dict[str, str]] = {}
    for x in live(p.procedures):
        if x.status != "done":
            continue
        ctype = sv.consolidation_type(x)
        parts = [f"{'complex' if sv.is_complex(x) else 'simple'} consolidation"]
        if x.hydrodissection_volume_ml:
            parts.append(f"hydrodissection {x.hydrodissection_volume_ml:g} mL")
        for sc in x.live_screws:
            parts.append(f"screw {sc.diameter_mm:g} x {sc.length_mm:g} mm")
        if x.cement_volume_ml is not None:
            parts.append(f"cement {x.cement_volume_ml:g} mL")
        if x.cement_leak:
            parts.append("cement leak: " + (", ".join(x.leak_sites) if x.leak_sites else "yes"))
        if x.dlp_mgy_cm is not None:
            parts.append(f"DLP {x.dlp_mgy_cm:g} mGy.cm")
        if x.guidance:
            parts.append(f"guidance {x.guidance}")
        kw: dict[str, Any] = {}
        if x.technical_success is not None:
            kw["outcome"] = {"text": "technical success" if x.technical_success else "technical failure"}
        if x.lesion_id in cond_ref:
            kw["reasonReference"] = [cond_ref[x.lesion_id]]
        pr = Procedure(
            id=_uid(p.code, "procedure", x.id), status="completed",
            code={"coding": [{"system": CONSOLIDATION_SYSTEM, "code": ctype,
                              "display": m.DECISION_LABELS.get(ctype, ctype)}],
                  "text": f"Percutaneous consolidation: {m.DECISION_LABELS.get(ctype, ctype)}"},
            subject=pref, performedDateTime=x.procedure_date.isoformat(),
            bodySite=[{"text": x.lesion.site}], note=[{"text": "; ".join(parts)}], **kw)
        proc_ref[x.id] = {"reference": add(pr)}
    for f in live(p.follow_ups):
        if f.pain_nrs is None or f.procedure_id not in proc_ref:
            continue
        ob = Observation(
            id=_uid(p.code, "observation", f.id), status="final",
            category=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                   "code": "survey"}]}],
            code={"coding": [{"system": "http://loinc.org", "code": LOINC_PAIN_NRS,
                              "display": "Pain severity - 0-10 verbal numeric rating [Score] - Reported"}]},
            subject=pref, effectiveDateTime=f.visit_date.isoformat(), valueInteger=f.pain_nrs,
            partOf=[proc_ref[f.procedure_id]], note=[{"text": f"timepoint {f.timepoint}"}])
        add(ob)
    for x in live(p.procedures):
        if x.id not in proc_ref:
            continue
        for v in live(getattr(x, "verifications", None) or []):
            comps = [("tip-to-path", "tip to the planned path", v.tip_to_plan_mm, "mm"),
                     ("angle-to-path", "angle to the planned path", v.angle_to_plan_deg, "deg")]
            if v.stage == "screw":
                comps += [("entry-error", "entry error", v.entry_error_mm, "mm"),
                          ("tip-error", "tip error", v.tip_error_mm, "mm"),
                          ("angle-error", "angle error", v.angle_error_deg, "deg"),
                          ("outside-cortex", "screw outside the cortex", v.outside_cortex_mm, "mm")]
            components = [{"code": {"coding": [{"system": PLACEMENT_SYSTEM, "code": c, "display": d}]},
                           "valueQuantity": {"value": round(float(val), 2), "unit": u,
                                             "system": "http://unitsofmeasure.org", "code": u}}
                          for c, d, val, u in comps if val is not None]
            note = ["measured on a control CT registered to the planning CT (osteoplan verify)"]
            if v.stage == "screw":
                components.append({"code": {"coding": [{"system": PLACEMENT_SYSTEM, "code": "breach-grade",
                                                        "display": "breach grade"}]},
                                   "valueString": v.breach_grade or "not assessed"})
                if v.breach_grade_source:
                    note.append(f"breach grade: {v.breach_grade_source}")
            add(Observation(
                id=_uid(p.code, "verification", v.id), status="final",
                code={"coding": [{"system": PLACEMENT_SYSTEM, "code": f"placement-check-{v.stage}",
                                  "display": f"instrument position against the plan ({v.stage})"}]},
                subject=pref, effectiveDateTime=_utc_iso(v.created_at), partOf=[proc_ref[x.id]],
                component=components, note=[{"text": "; ".join(note)}]))
    for a in live(p.adverse_events):
        kw = {"suspectEntity": [{"instance": proc_ref[a.procedure_id]}]} if a.procedure_id in proc_ref else {}
        ae = AdverseEvent(
            id=_uid(p.code, "adverseevent", a.id), actuality="actual", subject=pref, date=a.event_date.isoformat(),
            event={"text": a.description if free_text else f"adverse event ({a.classification} grade {a.grade})"},
            seriousness={"coding": [{"system": f"urn:osteoplan:adverse-event-classification:{_slug(a.classification)}",
                                     "code": a.grade, "display": f"{a.classification} grade {a.grade}"}],
                         "text": f"{a.classification} grade {a.grade}"}, **kw)
        add(ae)
    return Bundle(id=_uid(p.code, "bundle", p.id), type="collection", entry=entries)


def export_case(session: Session, actor: m.User | None, case_id: int):
    """The FHIR Bundle of a case (pseudonymised for everyone). Logs a read of the case (``detail.export``)."""
    p = (session.scalar(sv._case_query().where(m.Patient.id == case_id))
         if isinstance(case_id, int) and 0 < case_id <= sv.MAX_ID else None)
    if p is None or p.deleted_at is not None:
        raise NotFoundError(f"no case with id {case_id} (it may have been deleted)")
    sv.audit(session, actor, "read", "patient", p.id, patient_id=p.id, detail={"export": "fhir"})
    session.flush()
    return case_bundle(p, free_text=sv.sees_identity(actor))


def export_case_json(session: Session, actor: m.User | None, case_id: int) -> str:
    """:func:`export_case` serialised as FHIR JSON text."""
    return export_case(session, actor, case_id).model_dump_json(exclude_none=True)
