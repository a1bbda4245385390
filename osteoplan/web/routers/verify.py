"""Pages of the control-CT checks (issue 13): "Check a control CT" on a procedure, its progress and its figures.

The request stores the control CT in a new job's folder with the same CT sources as a plan (an upload, or a
series from the PACS, both checked against the case's patient: another patient's CT is refused,
:mod:`osteoplan.web.plan_jobs`) and queues a job whose ``options["kind"]`` is ``"verify"``; a worker runs
``osteoplan verify`` on it (:mod:`osteoplan.faces.verify_job`) and stores the figures with the procedure
(:class:`osteoplan.workflow.models.Verification`). The result page shows the stored figures and the
planned-vs-actual images drawn by :mod:`osteoplan.views.verification` (``verify.png``).

A control CT can only be checked against a plan that has its folder on the server (a plan made by a planning
job: the check needs the planning CT and its segmentation, not only ``plan.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException

from osteoplan.errors import NotFoundError, ValidationError
from osteoplan.web import backend
from osteoplan.web import plan_jobs as pj
from osteoplan.web.auth import Principal, form_data, get_db, require
from osteoplan.workflow import jobs as q
from osteoplan.workflow import models as m

router = APIRouter(include_in_schema=False)

STAGE_WORDS: dict[str, str] = {"trocar": "after the bone trocar", "pin": "after the guide pin (K-wire)",
                               "screw": "after the screw (post-operative CT)"}


def _page(request: Request, name: str, ctx: dict, status_code: int = 200):
    from osteoplan.web.routers.pages import page

    return page(request, name, ctx, status_code=status_code)


def is_check(job: m.PlanJob) -> bool:
    """Whether a job of the queue is a control-CT check (else a plan or another kind)."""
    return (job.options or {}).get("kind") == "verify"


def plans_with_folder(db, lesion_id: int) -> dict[int, Path]:
    """Saved plans of the lesion (id -> plan folder) that a control CT can be checked against: made by a
    planning job whose folder (plan, CT, segmentation) is still on the server."""
    from sqlalchemy import select

    out: dict[int, Path] = {}
    jobs = db.scalars(select(m.PlanJob).where(m.PlanJob.lesion_id == lesion_id, m.PlanJob.state == "done",
                                              m.PlanJob.saved_plan_id.is_not(None)).order_by(m.PlanJob.id))
    for j in jobs:
        folder = pj.plan_folder(j)
        if folder is not None and not is_check(j):
            out[j.saved_plan_id] = folder.resolve()
    return out


def _context(db, p: Principal, case_id: int, procedure_id: int):
    case = backend.get_case(db, p.user, case_id)  # access check + audited read
    proc = backend.find_child(case, "procedure", procedure_id)
    lesion = backend.find_child(case, "lesion", proc["lesion_id"])
    return case, proc, lesion


def _form(request: Request, db, p: Principal, case_id: int, procedure_id: int, error: str | None = None,
          values: dict | None = None, status_code: int = 200):
    case, proc, lesion = _context(db, p, case_id, procedure_id)
    folders = plans_with_folder(db, lesion["id"])
    plans = [pl for pl in lesion.get("plans", []) if pl["id"] in folders]
    db.commit()
    sources = pj.available_sources(pj.pacs_config(request.app.state))
    return _page(request, "verify_job_new.html", {
        "case": case, "procedure": proc, "lesion": lesion, "plans": plans, "stages": STAGE_WORDS,
        "sources": {k: v[0] for k, v in sources.items()}, "error": error, "values": values or {},
        "max_gb": pj.CT_MAX_BYTES / 1e9}, status_code=status_code)


@router.get("/cases/{case_id}/procedures/{procedure_id}/verify/new", response_class=HTMLResponse)
def verify_form(request: Request, case_id: int, procedure_id: int, p: Principal = Depends(require("procedure.write")),
                db=Depends(get_db)):
    """The form: which plan, which stage, which control CT (upload or PACS)."""
    return _form(request, db, p, case_id, procedure_id)


@router.post("/cases/{case_id}/procedures/{procedure_id}/verify/new")
def verify_start(request: Request, case_id: int, procedure_id: int, p: Principal = Depends(require("procedure.write")),
                 form=Depends(form_data), db=Depends(get_db)):
    """Store the control CT in a new job's folder (identity-checked) and queue the check."""
    stage = str(form.get("stage") or "")
    source = str(form.get("source") or "upload")
    typed = str(form.get("pacs_series_uid_typed") or "").strip()[:64]
    values = {"stage": stage, "source": source, "saved_plan_id": str(form.get("saved_plan_id") or ""),
              "confirm_identity": bool(form.get("confirm_identity")),
              "pacs_series_uid": typed or str(form.get("pacs_series_uid") or "")[:64], "pacs_series_uid_typed": typed}
    root = pj.jobs_dir(request.app.state.settings.database_url)
    try:
        case, proc, lesion = _context(db, p, case_id, procedure_id)
        if proc["status"] == "cancelled":
            raise ValidationError("this procedure was cancelled; a control CT cannot be checked for it")
        if stage not in STAGE_WORDS:
            raise ValidationError("stage: choose trocar, guide pin or screw")
        try:
            plan_id = int(values["saved_plan_id"])
        except ValueError:
            raise ValidationError("plan: choose the plan to check the control CT against") from None
        folders = plans_with_folder(db, lesion["id"])
        if plan_id not in folders:
            raise ValidationError("plan: choose one of the plans listed (made on this server by a planning job, "
                                  "with its CT and segmentation)")
        sources = pj.available_sources(pj.pacs_config(request.app.state))
        if source not in sources:
            raise ValidationError("control CT source: choose one of the sources listed")
        fields: dict[str, Any] = {k: form.get(k) for k in form.keys()}
        fields["pacs_series_uid"] = values["pacs_series_uid"]
        patient = db.get(m.Patient, case_id)
        write = sources[source][1](fields, patient)  # checks the source's fields now
        job = q.enqueue(db, p.user, lesion["id"], "verify", None, {
            "kind": "verify", "stage": stage, "procedure_id": procedure_id, "saved_plan_id": plan_id,
            "plan_dir": str(folders[plan_id]), "source": source})
        opts = pj.attach_ct_files(job, root, write)
        if source == "pacs":
            job.options = {**opts, "series_uid": opts.get("series_uid") or values["pacs_series_uid"]}
        db.commit()
    except ValidationError as exc:
        db.rollback()
        return _form(request, db, p, case_id, procedure_id, error=str(exc), values=values, status_code=422)
    from osteoplan.web.routers.pages import flash

    flash(request, "ok", "Control CT queued: a worker checks it now; this page follows it.")
    return RedirectResponse(f"/cases/{case_id}/checks/{job.id}", status_code=303)


def check_view(db, job: m.PlanJob) -> dict[str, Any]:
    """What the check's page shows (no identifiers, no calendar date: the page may be a pseudonymised view):
    state, stages, error, summary, stored figures (the template shows when it was measured only to roles that
    see identity)."""
    from osteoplan.faces.verify_job import NOT_MEASURABLE_EXIT, VERIFY_STAGES

    opts = job.options or {}
    done = list(job.stages_done or [])
    stages = []
    for key, label in VERIFY_STAGES:
        if key == "retrieve" and not opts.get("pacs_retrieve"):
            continue
        if key in done:
            status = "done"
        elif job.state == "running" and job.stage == key:
            status = "current"
        elif job.state in ("failed", "cancelled") and job.stage == key:
            status = job.state  # the stage that was running did not give its result
        elif job.state in q.FINAL_STATES:
            status = "not_reached"  # the check ended before it (or, for older checks, did without it)
        else:
            status = "pending"
        stages.append({"key": key, "label": label, "status": status,
                       "status_words": status.replace("_", " ")})
    v = db.get(m.Verification, opts["verification_id"]) if opts.get("verification_id") else None
    if v is not None and v.deleted_at is not None:
        v = None
    out_dir = Path(job.work_dir) / opts["out"] if job.work_dir and opts.get("out") else None
    return {"id": job.id, "state": job.state, "stage": job.stage, "stages": stages, "error": job.error,
            "summary": job.verdict, "final": job.state in q.FINAL_STATES,
            "cancel_requested": bool(job.cancel_requested), "created_by": job.created_by,
            "not_measurable": job.exit_code == NOT_MEASURABLE_EXIT, "deidentified": bool(opts.get("deidentified")),
            "check_stage": opts.get("stage"), "stage_words": STAGE_WORDS.get(opts.get("stage"), opts.get("stage")),
            "procedure_id": opts.get("procedure_id"), "saved_plan_id": opts.get("saved_plan_id"),
            "source": opts.get("source"), "verification_id": v.id if v is not None else None,
            "has_image": bool(out_dir and (out_dir / "verify.png").is_file()),
            "has_drr": bool(out_dir and (out_dir / "verify_drr.png").is_file()),
            "has_pdf": bool(out_dir and (out_dir / "verify.pdf").is_file()),
            "verification": _verification_dict(v) if v is not None else None}


def _verification_dict(v: m.Verification) -> dict[str, Any]:
    cols = ("id", "stage", "tip_lps_mm", "tip_to_plan_mm", "angle_to_plan_deg", "tip_to_target_mm",
            "lateral_offset_at_target_mm", "entry_error_mm", "tip_error_mm", "angle_error_deg", "outside_cortex_mm",
            "outside_cortex_where", "breach_grade", "breach_grade_source", "breach_note",
            "registration_residual_median_mm", "registration_surface_overlap", "instrument_diameter_mm",
            "instrument_length_mm", "measured_by")
    d = {c: getattr(v, c) for c in cols}
    d["measured_at"] = v.created_at.isoformat() if v.created_at else None
    d["figures"] = v.figures
    return d


def _check(db, p: Principal, case_id: int, job_id: int):
    case = backend.get_case(db, p.user, case_id)  # access check + audited read
    job = q.get_job(db, job_id, patient_id=case_id)
    if not is_check(job):
        raise NotFoundError(f"no control-CT check {job_id} on this case")
    return case, job


@router.get("/cases/{case_id}/checks/{check_id}.json")
def check_json(case_id: int, check_id: int, p: Principal = Depends(require("case.read")), db=Depends(get_db)):
    """The check's state for the page's script (polled while it runs)."""
    _, job = _check(db, p, case_id, check_id)
    view = check_view(db, job)
    view.pop("verification", None)
    db.commit()
    return JSONResponse(view, headers={"Cache-Control": "no-store"})


@router.get("/cases/{case_id}/checks/{check_id}", response_class=HTMLResponse)
def check_page(request: Request, case_id: int, check_id: int, p: Principal = Depends(require("case.read")),
               db=Depends(get_db)):
    """Progress, then the figures stored with the procedure and the planned-vs-actual images."""
    case, job = _check(db, p, case_id, check_id)
    view = check_view(db, job)
    db.commit()
    return _page(request, "verify_job.html", {"case": case, "job": view})


#: The files ``osteoplan verify --out`` writes that the check's page shows or links, with their media types.
CHECK_FILES: dict[str, str] = {"verify.png": "image/png", "verify_drr.png": "image/png",
                               "verify.pdf": "application/pdf"}


def _check_file(job, name: str) -> Path | None:
    """The path of one of :data:`CHECK_FILES` in the check's output folder, or None when it was not written."""
    opts = job.options or {}
    if name not in CHECK_FILES or not job.work_dir or not opts.get("out"):
        return None
    path = Path(job.work_dir) / opts["out"] / name
    return path if path.is_file() else None


@router.get("/cases/{case_id}/checks/{check_id}/{name}")
def check_file(case_id: int, check_id: int, name: str, p: Principal = Depends(require("case.read")),
               db=Depends(get_db)):
    """What ``osteoplan verify --out`` drew: the planned-vs-actual reformats (``verify.png``), the simulated
    fluoroscopy views (``verify_drr.png``) and the page as PDF (``verify.pdf``); 404 for any other name."""
    _, job = _check(db, p, case_id, check_id)
    db.commit()
    path = _check_file(job, name)
    if path is None:
        raise HTTPException(404, "This check has no such file (it has not finished, or it failed).")
    return FileResponse(path, media_type=CHECK_FILES[name], headers={"Cache-Control": "no-store"})


@router.post("/cases/{case_id}/checks/{check_id}/cancel")
def check_cancel(request: Request, case_id: int, check_id: int, p: Principal = Depends(require("procedure.write")),
                 form=Depends(form_data), db=Depends(get_db)):
    _, job = _check(db, p, case_id, check_id)
    state = q.request_cancel(db, p.user, job)
    db.commit()
    if state == "cancelled":  # cancelled before a worker took it: its control CT was never de-identified
        from osteoplan.faces.verify_job import discard_identified_ct

        discard_identified_ct(Path(job.work_dir) if job.work_dir else None, dict(job.options or {}))
    from osteoplan.web.routers.pages import flash

    flash(request, "ok", {"cancelled": "Check cancelled.", "running": "Stopping the check…"}.get(
        state, f"The check had already ended ({state})."))
    return RedirectResponse(f"/cases/{case_id}/checks/{check_id}", status_code=303)


def case_checks(db, case_id: int) -> dict[str, Any]:
    """For the case page: the case's control-CT checks per procedure id (views, newest first)."""
    by_proc: dict[int, list[dict]] = {}
    for j in q.jobs_for_case(db, case_id):
        if is_check(j):
            v = check_view(db, j)
            v.pop("verification", None)
            by_proc.setdefault(int(v["procedure_id"] or 0), []).append(v)
    return {"checks_by_procedure": by_proc}
