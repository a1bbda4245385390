"""Pages of the planning jobs: start a plan on a CT from a lesion, follow it, cancel it, open its report.

The request only stores the CT (streamed to the job's folder, size-limited) and queues the job; a worker
process (:mod:`osteoplan.faces.worker`, started by ``osteoplan serve`` or ``osteoplan worker``) runs the planner.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException

from osteoplan.errors import ValidationError
from osteoplan.web import backend
from osteoplan.web import plan_jobs as pj
from osteoplan.web.auth import Principal, form_data, get_db, require
from osteoplan.workflow import jobs as q

router = APIRouter(include_in_schema=False)


def _page(request: Request, name: str, ctx: dict, status_code: int = 200):
    from osteoplan.web.routers.pages import page

    return page(request, name, ctx, status_code=status_code)


def _protocols() -> list[tuple[str, str]]:
    """(name, title) of the shipped protocols (``osteoplan/planning/protocols``), the default first."""
    from osteoplan.planning.protocol import DEFAULT_PROTOCOL, available_protocols, load_protocol

    out = []
    for name in available_protocols():
        try:
            out.append((name, load_protocol(name).title))
        except Exception:  # a broken protocol file is not offered
            continue
    out.sort(key=lambda t: (t[0] != DEFAULT_PROTOCOL, t[0]))
    return out


def _form(request: Request, db, p: Principal, case_id: int, lesion_id: int, error: str | None = None,
          values: dict | None = None, status_code: int = 200):
    case = backend.get_case(db, p.user, case_id)
    lesion = backend.find_child(case, "lesion", lesion_id)
    db.commit()
    sources = pj.available_sources(pj.pacs_config(request.app.state))
    return _page(request, "plan_job_new.html", {"case": case, "lesion": lesion, "protocols": _protocols(),
                                                 "sources": {k: v[0] for k, v in sources.items()}, "error": error, "values": values or {},
                                                 "max_gb": pj.CT_MAX_BYTES / 1e9}, status_code=status_code)


@router.get("/cases/{case_id}/lesions/{lesion_id}/plan-jobs/new", response_class=HTMLResponse)
def plan_job_form(request: Request, case_id: int, lesion_id: int, p: Principal = Depends(require("lesion.write")),
                  db=Depends(get_db)):
    return _form(request, db, p, case_id, lesion_id)


@router.post("/cases/{case_id}/lesions/{lesion_id}/plan-jobs/new")
def plan_job_start(request: Request, case_id: int, lesion_id: int, p: Principal = Depends(require("lesion.write")),
                   form=Depends(form_data), db=Depends(get_db)):
    """Store the CT in a new job's folder and queue the job; the worker does the rest."""
    protocol = str(form.get("protocol") or "")
    side = str(form.get("side") or "") or None
    source = str(form.get("source") or "upload")
    values = {"protocol": protocol, "side": side or "", "deid": bool(form.get("deid")),
              "report": bool(form.get("report")), "confirm_identity": bool(form.get("confirm_identity")),
              "source": source, "pacs_series_uid": str(form.get("pacs_series_uid") or "")[:64],
              "pacs_study_uid": str(form.get("pacs_study_uid") or "")[:64]}
    root = pj.jobs_dir(request.app.state.settings.database_url)
    try:
        case = backend.get_case(db, p.user, case_id)
        backend.find_child(case, "lesion", lesion_id)
        if protocol not in dict(_protocols()):
            raise ValidationError("protocol: choose one of the protocols listed")
        sources = pj.available_sources(pj.pacs_config(request.app.state))
        if source not in sources:
            raise ValidationError("CT source: choose one of the sources listed")
        from osteoplan.workflow import models as m

        patient = db.get(m.Patient, case_id)
        write = sources[source][1](form, patient)  # checks the source's fields now
        job = q.enqueue(db, p.user, lesion_id, protocol, side,
                        {"deid": values["deid"], "report": values["report"], "source": source})
        pj.attach_ct_files(job, root, write)
        db.commit()
    except ValidationError as exc:
        db.rollback()
        return _form(request, db, p, case_id, lesion_id, error=str(exc), values=values, status_code=422)
    from osteoplan.web.routers.pages import flash

    flash(request, "ok", "Plan queued: a worker runs it now; this page follows it.")
    return RedirectResponse(f"/cases/{case_id}/plan-jobs/{job.id}", status_code=303)


def _job(db, p: Principal, case_id: int, job_id: int):
    case = backend.get_case(db, p.user, case_id)  # access check + audited read
    job = q.get_job(db, job_id, patient_id=case_id)
    if (job.options or {}).get("kind") == "verify":  # a control-CT check has its own pages (routers/verify.py)
        from osteoplan.errors import NotFoundError

        raise NotFoundError(f"no planning job {job_id} on this case")
    return case, job


@router.get("/cases/{case_id}/plan-jobs/{job_id}.json")
def plan_job_json(case_id: int, job_id: int, p: Principal = Depends(require("case.read")), db=Depends(get_db)):
    """The job's state for the page's script (polled while it runs)."""
    _, job = _job(db, p, case_id, job_id)
    view = pj.job_view(job)
    db.commit()
    return JSONResponse(view, headers={"Cache-Control": "no-store"})


@router.get("/cases/{case_id}/plan-jobs/{job_id}", response_class=HTMLResponse)
def plan_job_page(request: Request, case_id: int, job_id: int, p: Principal = Depends(require("case.read")),
                  db=Depends(get_db)):
    case, job = _job(db, p, case_id, job_id)
    view = pj.job_view(job)
    lesion = backend.find_child(case, "lesion", job.lesion_id)
    db.commit()
    return _page(request, "plan_job.html", {"case": case, "job": view, "lesion": lesion})


@router.post("/cases/{case_id}/plan-jobs/{job_id}/cancel")
def plan_job_cancel(request: Request, case_id: int, job_id: int, p: Principal = Depends(require("lesion.write")),
                    form=Depends(form_data), db=Depends(get_db)):
    _, job = _job(db, p, case_id, job_id)
    state = q.request_cancel(db, p.user, job)
    db.commit()
    from osteoplan.web.routers.pages import flash

    flash(request, "ok", {"cancelled": "Plan cancelled.", "running": "Stopping the plan…"}.get(
        state, f"The plan had already ended ({state})."))
    return RedirectResponse(f"/cases/{case_id}/plan-jobs/{job_id}", status_code=303)


@router.get("/cases/{case_id}/plans/{plan_id}/report.pdf")
def plan_report_pdf(case_id: int, plan_id: int, p: Principal = Depends(require("case.read")), db=Depends(get_db)):
    """The PDF report of a plan made by a planning job."""
    case = backend.get_case(db, p.user, case_id)
    plan = backend.find_child(case, "plan", plan_id)
    if "plan" not in plan:  # pseudonymised view: plan details are not shown
        raise HTTPException(404, "Plan details are not shown in the pseudonymised view.")
    job = q.job_for_plan(db, plan_id)
    folder = pj.plan_folder(job) if job is not None and job.patient_id == case_id else None
    db.commit()
    pdf = folder / "report.pdf" if folder else None
    if pdf is None or not pdf.is_file():
        raise HTTPException(404, "This plan has no PDF report (it was uploaded as plan.json, or made without the "
                                 "report).")
    return FileResponse(Path(pdf), media_type="application/pdf", filename=f"plan-{plan_id}-report.pdf",
                        headers={"Cache-Control": "no-store"})


def case_jobs(db, case_id: int) -> dict:
    """For the case page: the case's jobs (views) and the saved plans that have a PDF report."""
    jobs = [j for j in q.jobs_for_case(db, case_id) if (j.options or {}).get("kind") != "verify"]  # checks: verify.py
    views = [pj.job_view(j) for j in jobs]
    return {"plan_jobs": views, "plan_pdfs": {v["saved_plan_id"] for v in views if v["has_report"]},
            "plan_reviews": {v["saved_plan_id"] for v in views if v["has_ct"]}}


# ------------------------------------------------------------------------------------------ review (start)
_SCENES: dict[str, tuple[float, object, object]] = {}
_SCENES_MAX = 3
_SCENES_LOCK = __import__("threading").Lock()


def _scene_of(folder: Path):
    """(plan, SliceScene) of a plan folder, kept in memory for the last few plans looked at (reading the CT and
    preparing the structures takes seconds; every slice after that a fraction of a second)."""
    from osteoplan.export import load_plan_dir
    from osteoplan.views import pathspec_from_plan
    from osteoplan.views.slices import make_scene

    key = str(folder)
    stamp = (folder / "plan.json").stat().st_mtime
    with _SCENES_LOCK:
        hit = _SCENES.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1], hit[2]
        plan, volume, labelmap = load_plan_dir(folder)
        scene = make_scene(volume, pathspec_from_plan(plan), labelmap)
        _SCENES[key] = (stamp, plan, scene)
        while len(_SCENES) > _SCENES_MAX:
            _SCENES.pop(next(iter(_SCENES)))
        return plan, scene


def _review_folder(db, p: Principal, case_id: int, plan_id: int):
    case = backend.get_case(db, p.user, case_id)
    plan = backend.find_child(case, "plan", plan_id)
    if "plan" not in plan:  # pseudonymised view: plan geometry is not shown
        raise HTTPException(404, "Plan details are not shown in the pseudonymised view.")
    job = q.job_for_plan(db, plan_id)
    if job is None:  # a version saved from the review page: the folder of the plan it is a version of
        from osteoplan.workflow.plan_versions import version_of

        row = version_of(db, plan_id)
        job = q.job_for_plan(db, row.root_plan_id) if row is not None else None
    folder = pj.plan_folder(job) if job is not None and job.patient_id == case_id else None
    if folder is not None and not (folder / "ct.nii.gz").is_file():
        folder = None
    return case, plan, folder


@router.get("/cases/{case_id}/plans/{plan_id}/review", response_class=HTMLResponse)
def plan_review(request: Request, case_id: int, plan_id: int, p: Principal = Depends(require("case.read")),
                db=Depends(get_db)):
    """The review page (start): axial, coronal and sagittal slices through the target, scrolled by a small
    script, with window presets; the plan's verdict, its warnings and the PDF."""
    from osteoplan.views.colors import hex_color, structure_color
    from osteoplan.views.render import orientation_letters
    from osteoplan.views.slices import PLANE_TITLES, VIEWER_PLANES, WINDOW_PRESETS_HU, offset_range_mm, slice_plane
    from osteoplan.web.views import plan_key_numbers

    case, plan, folder = _review_folder(db, p, case_id, plan_id)
    db.commit()
    panes, legend = [], []
    if folder is not None:
        plan_obj, scene = _scene_of(folder)
        for view in VIEWER_PLANES:
            lo, hi, step = offset_range_mm(view, scene.path, scene.volume)
            pl = slice_plane(scene.path, view)
            panes.append({"view": view, "title": PLANE_TITLES[view], "kmin": int(round(lo / step)),
                          "kmax": int(round(hi / step)), "step": step,
                          "left": orientation_letters(-pl.u), "right": orientation_letters(pl.u),
                          "top": orientation_letters(-pl.v), "bottom": orientation_letters(pl.v),
                          "px": pl.n_cols})
        legend = [(s[0], hex_color(s[5])) for s in scene.structures]
    from osteoplan.web.routers.adjust import adjust_page_context

    return _page(request, "plan_review.html", {"case": case, "plan": plan, "key": plan_key_numbers(plan["plan"]),
                                                "panes": panes, "legend": legend, "windows": list(WINDOW_PRESETS_HU),
                                                "has_pdf": bool(folder and (folder / "report.pdf").is_file()),
                                                "adjust": adjust_page_context(request, db, p, case_id, plan_id, plan,
                                                                              folder)})


@router.get("/cases/{case_id}/plans/{plan_id}/slices/{view}.png")
def plan_slice(case_id: int, plan_id: int, view: str, offset_mm: float = 0.0, window: str = "bone",
               pts: str | None = None, screw_mm: float | None = None,
               p: Principal = Depends(require("case.read")), db=Depends(get_db)):
    """One slice of the review page (PNG): *view* through the target shifted by *offset_mm* along its normal.
    With *pts* (nine comma-separated LPS mm values: skin entry, bone entry, target), the path moved on the page
    (:func:`osteoplan.web.routers.adjust.moved_scene`), its screw *screw_mm* long."""
    import math

    from fastapi.responses import Response

    from osteoplan.views.slices import VIEWER_PLANES, WINDOW_PRESETS_HU, render_slice

    if view not in VIEWER_PLANES or window not in WINDOW_PRESETS_HU or not math.isfinite(offset_mm) \
            or abs(offset_mm) > 500:
        raise HTTPException(404, f"No such slice: the view is one of {', '.join(VIEWER_PLANES)}, the window bone "
                                 "or soft_tissue, the offset within 500 mm.")
    _, _, folder = _review_folder(db, p, case_id, plan_id)
    db.commit()
    if folder is None:
        raise HTTPException(404, "This plan has no CT to show (it was uploaded as plan.json).")
    _, scene = _scene_of(folder)
    if pts is not None:
        from osteoplan.web.routers.adjust import moved_scene

        scene = moved_scene(scene, pts, screw_mm)
    return Response(render_slice(scene, view, offset_mm, window), media_type="image/png")
