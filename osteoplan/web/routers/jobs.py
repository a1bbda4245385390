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
    if state == "cancelled" and not job.started_at:  # cancelled before a worker took it: its CT was never used
        from osteoplan.faces.worker import discard_received_ct

        note = discard_received_ct(Path(job.work_dir) if job.work_dir else None, dict(job.options or {}))
        if note:
            job.error = f"Cancelled before it started. {note}"
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
    pacs: dict = {}
    for v in views:  # newest first: the latest results store of each plan
        if v["kind"] == "pacs_store" and v["store"] and v["store"]["saved_plan_id"] not in pacs:
            pacs[v["store"]["saved_plan_id"]] = v
    return {"plan_jobs": views, "plan_pdfs": {v["saved_plan_id"] for v in views if v["has_report"]},
            "plan_reviews": {v["saved_plan_id"] for v in views if v["has_ct"]}, "plan_pacs": pacs}


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
    pacs_results = plan_pacs_results(db, plan_id)
    db.commit()
    panes, legend = [], []
    if folder is not None:
        from osteoplan.web.routers.adjust import version_scene

        plan_obj, scene = _scene_of(folder)
        scene = version_scene(scene, plan.get("plan"), 0)  # this version's first trajectory (the panes' planes)
        for view in VIEWER_PLANES:
            lo, hi, step = offset_range_mm(view, scene.path, scene.volume)
            pl = slice_plane(scene.path, view)
            panes.append({"view": view, "title": PLANE_TITLES[view], "kmin": int(round(lo / step)),
                          "kmax": int(round(hi / step)), "step": step,
                          "left": orientation_letters(-pl.u), "right": orientation_letters(pl.u),
                          "top": orientation_letters(-pl.v), "bottom": orientation_letters(pl.v),
                          "px": pl.n_cols})
        from osteoplan.web.views import structure_label

        legend = [(structure_label(s[0]), hex_color(s[5])) for s in scene.structures]
    from osteoplan.web.routers.adjust import adjust_page_context

    return _page(request, "plan_review.html", {"case": case, "plan": plan, "key": plan_key_numbers(plan["plan"]),
                                                "panes": panes, "legend": legend, "windows": list(WINDOW_PRESETS_HU),
                                                "has_pdf": bool(folder and (folder / "report.pdf").is_file()),
                                                "drr_views": DRR_VIEWS if folder is not None else {},
                                                "pacs_results": pacs_results, "has_folder": folder is not None,
                                                "pacs_configured": pj.pacs_config(request.app.state) is not None,
                                                "adjust": adjust_page_context(request, db, p, case_id, plan_id, plan,
                                                                              folder)})


@router.get("/cases/{case_id}/plans/{plan_id}/slices/{view}.png")
def plan_slice(case_id: int, plan_id: int, view: str, offset_mm: float = 0.0, window: str = "bone",
               pts: str | None = None, screw_mm: float | None = None, needle: int = 0,
               p: Principal = Depends(require("case.read")), db=Depends(get_db)):
    """One slice of the review page (PNG): *view* through the target shifted by *offset_mm* along its normal.
    With *pts* (nine comma-separated LPS mm values: skin entry, bone entry, target), the path moved on the page
    (:func:`osteoplan.web.routers.adjust.moved_scene`), its screw *screw_mm* long; without, this version's
    trajectory *needle* as saved. A plan placing several needles: *needle* (0-based) is the one drawn as the
    instrument (moved), the others are drawn fainter at this version's saved points
    (:func:`osteoplan.web.routers.adjust.other_needles`)."""
    import math

    from fastapi.responses import Response

    from osteoplan.views.slices import VIEWER_PLANES, WINDOW_PRESETS_HU, render_slice

    if view not in VIEWER_PLANES or window not in WINDOW_PRESETS_HU or not math.isfinite(offset_mm) \
            or abs(offset_mm) > 500:
        raise HTTPException(404, f"No such slice: the view is one of {', '.join(VIEWER_PLANES)}, the window bone "
                                 "or soft_tissue, the offset within 500 mm.")
    if not 0 <= needle < 100:
        raise HTTPException(422, "needle: the number of the needle moved, from 0 (the plan's first needle).")
    _, plan, folder = _review_folder(db, p, case_id, plan_id)
    db.commit()
    if folder is None:
        raise HTTPException(404, "This plan has no CT to show (it was uploaded as plan.json).")
    from osteoplan.web.routers.adjust import moved_scene, movable_indices, other_needles, version_scene

    if needle not in (movable_indices(plan.get("plan") or {}) or [0]):
        raise HTTPException(422, "needle: the number of one of this plan's needles, from 0 (the plan's first needle).")
    _, scene = _scene_of(folder)
    scene = moved_scene(scene, pts, screw_mm) if pts is not None else version_scene(scene, plan.get("plan"), needle)
    others = other_needles(plan.get("plan"), needle)
    return Response(render_slice(scene, view, offset_mm, window, others=others), media_type="image/png")


# ------------------------------------------------------------------------------- retry, results to the PACS
@router.post("/cases/{case_id}/plan-jobs/{job_id}/retry")
def plan_job_retry(request: Request, case_id: int, job_id: int, p: Principal = Depends(require("lesion.write")),
                   form=Depends(form_data), db=Depends(get_db)):
    """Start a failed or cancelled job again (a CT from the PACS is retrieved again; a results store sends the same
    instances again): a new job, the old one keeps its error."""
    from osteoplan.errors import InputError
    from osteoplan.web.routers.pages import flash

    from osteoplan.web.permissions import allowed

    _, job = _job(db, p, case_id, job_id)
    if q.kind_of(job) == "pacs_store" and not allowed(p.role, "procedure.write"):
        raise HTTPException(403, "Only a radiologist sends a plan's results to the PACS.")
    try:
        new = q.requeue(db, p.user, job)
        if q.kind_of(new) != "pacs_store":
            pj.attach_ct_files(new, pj.jobs_dir(request.app.state.settings.database_url), _no_files)
        db.commit()
    except InputError as exc:  # raised before anything is written: the audited read is kept
        db.commit()
        flash(request, "error", str(exc))
        return RedirectResponse(f"/cases/{case_id}/plan-jobs/{job_id}", status_code=303)
    flash(request, "ok", "Started again: a worker runs it now; this page follows it.")
    return RedirectResponse(f"/cases/{case_id}/plan-jobs/{new.id}", status_code=303)


def _no_files(job_dir: Path) -> dict:
    """The folder of a job whose worker fetches its own input (a CT from the PACS)."""
    job_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return {}


def enqueue_results_store(session, actor, saved_plan_id: int):
    """Queue the storing of saved plan *saved_plan_id*'s SEG, SR and PDF in the PACS (job kind ``pacs_store``;
    see :func:`osteoplan.workflow.jobs.enqueue_results_store`, which this is). The approve action calls it."""
    return q.enqueue_results_store(session, actor, saved_plan_id)


@router.post("/cases/{case_id}/plans/{plan_id}/pacs-store")
def plan_send_to_pacs(request: Request, case_id: int, plan_id: int, p: Principal = Depends(require("procedure.write")),
                      form=Depends(form_data), db=Depends(get_db)):
    """"Send results to the PACS" (radiologists): queue a ``pacs_store`` job for the plan and follow it."""
    from osteoplan.errors import InputError
    from osteoplan.web.routers.pages import flash

    case = backend.get_case(db, p.user, case_id)
    backend.find_child(case, "plan", plan_id)
    if pj.pacs_config(request.app.state) is None:
        db.commit()  # the audited read of the case
        flash(request, "error", "No PACS is configured on this server (OSTEOPLAN_PACS_URL or pacs.toml): the results "
                                "cannot be sent.")
        return RedirectResponse(f"/cases/{case_id}/plans/{plan_id}/review", status_code=303)
    try:
        job = enqueue_results_store(db, p.user, plan_id)
        db.commit()
    except InputError as exc:  # raised before anything is written: the audited read is kept
        db.commit()
        flash(request, "error", str(exc))
        return RedirectResponse(f"/cases/{case_id}/plans/{plan_id}/review", status_code=303)
    flash(request, "ok", "Sending the SEG, SR and PDF report to the PACS: a worker does it now; this page follows it.")
    return RedirectResponse(f"/cases/{case_id}/plan-jobs/{job.id}", status_code=303)


def plan_pacs_results(db, saved_plan_id: int) -> dict | None:
    """The latest results store of a plan (:func:`osteoplan.web.plan_jobs.job_view` with its ``store``), or None."""
    jobs = q.results_store_jobs(db, saved_plan_id)
    return pj.job_view(jobs[0]) if jobs else None


# ------------------------------------------------------------------------------- simulated fluoroscopy
#: The simulated fluoroscopy views of the review page: name -> title (AP through the open mouth for C1-C2 plans).
DRR_VIEWS: dict[str, str] = {"ap": "AP", "lateral": "Lateral", "bullseye": "Bull's-eye (down the path)"}
#: Detector pixels per side of the review page's DRRs (the report's 512 would take seconds more per view on the
#: shared CPU; 384 keeps the instrument several pixels wide). Configurable default.
DRR_PIXELS = 384


@router.get("/cases/{case_id}/plans/{plan_id}/drr/{view}.png")
def plan_drr(case_id: int, plan_id: int, view: str, p: Principal = Depends(require("case.read")),
             db=Depends(get_db)):
    """A simulated fluoroscopy view (DRR) of the plan with its path projected, labelled with the patient's
    directions at the image edges (PNG; rendered once per plan folder, then kept in ``review/`` beside it)."""
    from fastapi.responses import Response

    if view not in DRR_VIEWS:
        raise HTTPException(404, f"No such view: one of {', '.join(DRR_VIEWS)}.")
    _, plan, folder = _review_folder(db, p, case_id, plan_id)
    db.commit()
    if folder is None:
        raise HTTPException(404, "This plan has no CT to show (it was uploaded as plan.json).")
    return Response(_drr_png(folder, view, plan["plan"], plan_id), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=600"})


_DRR_LOCK = __import__("threading").Lock()


def _drr_png(folder: Path, view: str, plan_json: dict | None = None, plan_id: int | None = None) -> bytes:
    """The DRR *view* of a saved plan whose CT and label map are in *folder*, rendered by
    :func:`osteoplan.views.drr.render_drr_view` (the report's renderer) and cached in ``<folder>/review/`` (written
    atomically). *plan_json* is the saved plan (a version saved from the review page differs from the folder's
    ``plan.json``: its own path is drawn, cached as ``drr_<view>-<plan_id>.png``); None: the folder's plan."""
    import json

    from osteoplan.atomic import atomic_write_bytes

    stamp = (folder / "plan.json").stat().st_mtime
    own = plan_json is None or json.loads((folder / "plan.json").read_text(encoding="utf-8")) == plan_json
    if own:  # the report's own images when the plan folder has them (same renderer, 512 px)
        for name in ({"ap": ("drr_ap_open_mouth", "drr_ap"), "lateral": ("drr_lateral",),
                      "bullseye": ("drr_bullseye", "drr_bullseye_1")}[view]):
            img = folder / "images" / f"{name}.png"
            if img.is_file() and img.stat().st_mtime >= stamp:
                return img.read_bytes()
    cache = folder / "review" / (f"drr_{view}.png" if own else f"drr_{view}-{int(plan_id or 0)}.png")
    if cache.is_file() and cache.stat().st_mtime >= stamp:
        return cache.read_bytes()
    with _DRR_LOCK:  # one render at a time (numba/matplotlib on a shared CPU)
        if cache.is_file() and cache.stat().st_mtime >= stamp:
            return cache.read_bytes()
        import numpy as np

        from osteoplan.export import load_plan_dir
        from osteoplan.planning.model import Plan
        from osteoplan.views.drr import ap_view_name, render_drr_view
        from osteoplan.views.geometry import near_miss_pathspec, pathspecs_from_plan

        plan, volume, labelmap = load_plan_dir(folder)
        if not own:
            plan = Plan.from_json(json.dumps(plan_json))
        paths = pathspecs_from_plan(plan) if getattr(plan, "best", None) is not None else [near_miss_pathspec(plan)]
        if paths[0] is None:
            raise HTTPException(404, "This plan has no path to project (no feasible path and no near miss).")
        spec, others = paths[0], tuple(paths[1:])
        iso = np.mean([q_.target_lps_mm for q_ in paths], axis=0) if others and view != "bullseye" else None
        name = ap_view_name([q_.level for q_ in paths]) if view == "ap" else view
        png = render_drr_view(volume, spec, name, labelmap, n_pixels=DRR_PIXELS, isocentre_lps_mm=iso,
                              others=() if view == "bullseye" else others)
        cache.parent.mkdir(exist_ok=True)
        atomic_write_bytes(cache, png)
        return png
