"""JSON API under ``/api`` (OpenAPI schema at ``/api/openapi.json``): the same actions as the pages.

Authenticate with ``POST /api/token`` (user name + password -> bearer token) or the page session
cookie (then send the ``X-CSRF-Token`` header on writes). Every route declares its action with
``Depends(require(...))``: the role table of :mod:`osteoplan.web.permissions` is enforced there.
Request bodies are the workflow's input models (:mod:`osteoplan.workflow.schemas`).
Errors: ``{"error": ..., "detail": ...}`` with 401, 403, 404, 409 (conflict: reload), 422.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from osteoplan.web import backend
from osteoplan.web.auth import NotAuthenticated, Principal, get_db, issue_api_token, require
from osteoplan.workflow import schemas as s

router = APIRouter(tags=["registry"])


class TokenIn(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=200)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: str


class Created(BaseModel):
    """The record created or changed: its id, its new version (for the next edit) and its case."""

    id: int
    version: int
    patient_id: int | None = None


class CaseEdit(BaseModel):
    """Changes to the patient record with the version they were made against (optimistic locking)."""

    version: int
    changes: dict[str, Any]


class Versioned(BaseModel):
    version: int | None = None


class DeleteIn(BaseModel):
    reason: str = Field(min_length=1)
    version: int | None = None


class CaseList(BaseModel):
    total: int
    items: list[dict[str, Any]]


def _created(obj) -> Created:
    pid = getattr(obj, "patient_id", None)
    if pid is None and obj.__class__.__name__ == "Patient":
        pid = obj.id
    return Created(id=obj.id, version=obj.version, patient_id=pid)


@router.post("/token", response_model=TokenOut, tags=["auth"])
def token(body: TokenIn, request: Request, db=Depends(get_db)):
    """Exchange a user name and password for a bearer token."""
    user = backend.throttled_authenticate(request, db, body.username, body.password)
    db.commit()
    if user is None:
        raise NotAuthenticated()
    return TokenOut(access_token=issue_api_token(request, user), expires_in=request.app.state.settings.api_token_max_age_s,
                    role=str(user.role))


class CaseSearch(BaseModel):
    """A case-list search: the term travels in the body, never in a URL (access logs, proxies)."""

    search: str = Field(min_length=1, max_length=100)
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=10**9)


@router.get("/cases", response_model=CaseList)
def list_cases(request: Request, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10**9),
               p: Principal = Depends(require("case.list")), db=Depends(get_db)):
    """Case summaries, newest first (pseudonymised for research accounts). To search, POST /api/cases/search."""
    if "search" in request.query_params or "q" in request.query_params:
        from osteoplan.errors import ValidationError

        raise ValidationError("search terms are not accepted in the URL (they would be logged); "
                              "POST {\"search\": ...} to /api/cases/search")
    items, total = backend.list_cases(db, p.user, None, limit, offset)
    db.commit()
    return CaseList(total=total, items=items)


@router.post("/cases/search", response_model=CaseList)
def search_cases(body: CaseSearch, p: Principal = Depends(require("case.list")), db=Depends(get_db)):
    """Case summaries matching ``search`` (case code, primary cancer, lesion site; name and hospital ID for
    roles that see identity). The term is sent in the body so that it never appears in a URL."""
    items, total = backend.list_cases(db, p.user, body.search, body.limit, body.offset)
    db.commit()
    return CaseList(total=total, items=items)


@router.post("/cases", response_model=Created, status_code=201)
def create_case(body: s.PatientIn, p: Principal = Depends(require("case.create")), db=Depends(get_db)):
    """Open a case (patient record)."""
    obj = backend.create_case(db, p.user, body.model_dump(exclude_unset=True))
    db.commit()
    return _created(obj)


@router.get("/cases/{case_id}")
def get_case(case_id: int, p: Principal = Depends(require("case.read")), db=Depends(get_db)) -> dict[str, Any]:
    """The whole case: lesions, decisions, consultations, procedures, follow-ups, adverse events, timeline."""
    case = backend.get_case(db, p.user, case_id)
    db.commit()
    return case


@router.patch("/cases/{case_id}", response_model=Created)
def edit_case(case_id: int, body: CaseEdit, p: Principal = Depends(require("case.edit")), db=Depends(get_db)):
    """Edit the patient record; 409 if it changed since ``version``."""
    from osteoplan.workflow import service

    obj = service.update_record(db, p.user, "patient", case_id, body.changes, expected_version=body.version)
    db.commit()
    return _created(obj)


@router.post("/cases/{case_id}/delete", response_model=Created)
def delete_case(case_id: int, body: DeleteIn, p: Principal = Depends(require("case.delete")), db=Depends(get_db)):
    """Soft-delete a case with a reason (nothing is removed)."""
    obj = backend.soft_delete_case(db, p.user, case_id, {"reason": body.reason, "version": body.version})
    db.commit()
    return _created(obj)


@router.post("/lesions", response_model=Created, status_code=201)
def add_lesion(body: s.LesionIn, p: Principal = Depends(require("lesion.write")), db=Depends(get_db)):
    """Add a lesion (SINS / Mirels computed by the risk module from the components)."""
    obj = backend.add_lesion(db, p.user, body.patient_id, body.model_dump(exclude_unset=True))
    db.commit()
    return _created(obj)


@router.post("/plans", response_model=Created, status_code=201)
def attach_plan(body: s.PlanIn, p: Principal = Depends(require("lesion.write")), db=Depends(get_db)):
    """Attach a planner output (``plan.json`` content, checked against the plan schema) to a lesion."""
    obj = backend.attach_plan(db, p.user, None, body.lesion_id, body.plan, body.label)
    db.commit()
    return Created(id=obj.id, version=obj.version, patient_id=obj.lesion.patient_id)


@router.post("/decisions", response_model=Created, status_code=201)
def record_decision(body: s.DecisionIn, p: Principal = Depends(require("rcp.write")), db=Depends(get_db)):
    """Record a tumour-board (RCP) decision (not yet validated)."""
    obj = backend.record_decision(db, p.user, body.patient_id, body.model_dump(exclude_unset=True))
    db.commit()
    return _created(obj)


@router.post("/decisions/{decision_id}/validate", response_model=Created)
def validate_decision(decision_id: int, body: Versioned = Body(default_factory=Versioned),
                      p: Principal = Depends(require("rcp.validate")), db=Depends(get_db)):
    """Validate a decision as the logged-in physician."""
    from osteoplan.workflow import service

    obj = service.validate_decision(db, p.user, decision_id, expected_version=body.version)
    db.commit()
    return _created(obj)


@router.post("/consultations", response_model=Created, status_code=201)
def record_consultation(body: s.ConsultationIn, p: Principal = Depends(require("consultation.write")),
                        db=Depends(get_db)):
    """Record the pre-operative consultation and consent."""
    obj = backend.record_consultation(db, p.user, body.patient_id, body.model_dump(exclude_unset=True))
    db.commit()
    return _created(obj)


@router.get("/consultations/{consultation_id}/info-sheet.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def info_sheet(consultation_id: int, lang: str = Query("fr", pattern="^(fr|en)$"),
               p: Principal = Depends(require("infosheet.read")), db=Depends(get_db)):
    """The patient information sheet (PDF, French or English)."""
    pdf = backend.info_sheet_pdf(db, p.user, None, consultation_id, lang)
    db.commit()
    return Response(pdf, media_type="application/pdf")


@router.post("/procedures", response_model=Created, status_code=201)
def schedule_procedure(body: s.ProcedureScheduleIn, p: Principal = Depends(require("procedure.schedule")),
                       db=Depends(get_db)):
    """Schedule a procedure (refused without a validated tumour-board decision)."""
    from osteoplan.workflow import service

    obj = service.schedule_procedure(db, p.user, body)
    db.commit()
    return _created(obj)


@router.post("/procedures/{procedure_id}/log", response_model=Created)
def log_procedure(procedure_id: int, body: s.ProcedureLogIn, expected_version: int | None = Query(None),
                  p: Principal = Depends(require("procedure.write")), db=Depends(get_db)):
    """Log what was done; 409 if the procedure changed since ``expected_version``."""
    from osteoplan.workflow import service

    obj = service.log_procedure(db, p.user, procedure_id, body, expected_version=expected_version)
    db.commit()
    return _created(obj)


@router.post("/procedures/{procedure_id}/post-op", response_model=Created)
def post_op(procedure_id: int, body: s.PostOpIn, expected_version: int | None = Query(None),
            p: Principal = Depends(require("followup.write")), db=Depends(get_db)):
    """Collar removal and discharge dates."""
    from osteoplan.workflow import service

    obj = service.record_post_op(db, p.user, procedure_id, body, expected_version=expected_version)
    db.commit()
    return _created(obj)


@router.post("/follow-ups", response_model=Created, status_code=201)
def follow_up(body: s.FollowUpIn, p: Principal = Depends(require("followup.write")), db=Depends(get_db)):
    """Record a follow-up visit (pain NRS 0-10, analgesics, imaging, adjuvant treatment)."""
    from osteoplan.workflow import service

    obj = service.record_follow_up(db, p.user, body)
    db.commit()
    return _created(obj)


@router.post("/adverse-events", response_model=Created, status_code=201)
def adverse_event(body: s.AdverseEventIn, p: Principal = Depends(require("adverse_event.write")), db=Depends(get_db)):
    """Record an adverse event (classification and version, e.g. CIRSE 2017 grade 2)."""
    from osteoplan.workflow import service

    obj = service.record_adverse_event(db, p.user, body)
    db.commit()
    return _created(obj)


@router.get("/cases/{case_id}/fhir")
def fhir(case_id: int, p: Principal = Depends(require("fhir.export")), db=Depends(get_db)):
    """FHIR R4 Bundle of the case (Patient pseudonymised, Condition, Procedure, Observation, AdverseEvent)."""
    bundle = backend.fhir_bundle(db, p.user, case_id)
    db.commit()
    return JSONResponse(bundle, media_type="application/fhir+json")


@router.get("/stats", tags=["statistics"])
def stats(year: int | None = Query(None, ge=1900, le=2200), p: Principal = Depends(require("stats.read")),
          db=Depends(get_db)) -> dict[str, Any]:
    """Activity and outcome statistics (aggregates only)."""
    st = backend.statistics(db, p.user, year)
    db.commit()
    return backend.statistics_json(st)


@router.get("/stats.csv", tags=["statistics"], response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})
def stats_csv(year: int | None = Query(None, ge=1900, le=2200), table: str = Query("procedures_per_year", max_length=40),
              p: Principal = Depends(require("stats.read")), db=Depends(get_db)):
    """One statistics table as CSV (``table``: procedures_per_year, procedures_per_type, procedures_per_site,
    technical_success, complications, pain_over_time, length_of_stay, collar_removal_delay)."""
    text = backend.statistics_csv(db, p.user, year, table)
    db.commit()
    return Response(text, media_type="text/csv; charset=utf-8")


@router.get("/audit", tags=["audit"])
def audit(limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0),
          p: Principal = Depends(require("audit.read")), db=Depends(get_db)) -> dict[str, Any]:
    """Audit records, newest first."""
    rows, total = backend.audit_entries(db, p.user, limit, offset)
    db.commit()
    return {"total": total, "items": [{
        "id": r.id, "at": r.at.isoformat(), "user_id": r.user_id, "username": r.username, "role": r.role,
        "action": r.action, "entity": r.entity, "entity_id": r.entity_id, "patient_id": r.patient_id,
        "reason": r.reason, "path": r.path} for r in rows]}
