"""Adjust a plan on the review page: re-check a moved trajectory, save it as a new version, compare versions, approve.

* ``POST /api/cases/{case_id}/plans/{plan_id}/evaluate`` (``case.read``, audited read): the trajectory with the
  points given, re-checked by the planner's own kernel (:mod:`osteoplan.planning.recheck`): clearances and how each
  structure was known, containment, target zone, screw, the plan's one verdict, and each slice pane's pixel <-> LPS
  geometry. A plan placing several needles (bipedicular, multi-level): ``trajectory_index`` says which one moved;
  the others stay as saved and the verdict is the plan's over all of them.
* ``POST /api/cases/{case_id}/plans/{plan_id}/versions`` (``lesion.write``): re-check the points given and save the
  result as the plan's next version (who, when, what moved; :mod:`osteoplan.workflow.plan_versions`).
* ``GET /cases/{case_id}/plans/{plan_id}/versions`` (``case.read``): the plan's versions, two side by side.
* ``POST /cases/{case_id}/plans/{plan_id}/approve`` (``plan.approve``, radiologists): approve the version; the plan
  is locked from then on (409 on any further save, approval or deletion). Approving a version older than the latest,
  or a NOT CLEARED one, needs the form's confirmation box (``confirm_older`` / ``confirm_not_cleared``; 409 without).

The distance fields of a plan are built on its first re-check (seconds: the page says "preparing the re-check…") and
kept in memory (:class:`~osteoplan.planning.recheck.RecheckCache`); later re-checks take milliseconds.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from osteoplan.errors import InputError, OsteoplanError, ValidationError
from osteoplan.web.auth import Principal, form_data, get_db, require

router = APIRouter(include_in_schema=False)

#: The re-check contexts of this server process (one per plan folder and trajectory), bounded by memory.
_CACHE = None


def recheck_cache():
    """The process's :class:`~osteoplan.planning.recheck.RecheckCache` (created on first use)."""
    global _CACHE
    if _CACHE is None:
        from osteoplan.planning.recheck import RecheckCache

        _CACHE = RecheckCache()
    return _CACHE


def _one_line(status: int, title: str, message: str) -> JSONResponse:
    return JSONResponse({"error": title, "detail": message}, status_code=status, headers={"Cache-Control": "no-store"})


# ------------------------------------------------------------------------------------------ resolving a plan
def plan_folder_of(db, saved_plan_id: int) -> Path | None:
    """The plan folder (CT, segmentation, plan.json) of a saved plan or of the plan it is a version of."""
    from osteoplan.web import plan_jobs as pj
    from osteoplan.workflow import jobs as q
    from osteoplan.workflow.plan_versions import version_of

    row = version_of(db, saved_plan_id)
    root = row.root_plan_id if row is not None else saved_plan_id
    job = q.job_for_plan(db, root)
    folder = pj.plan_folder(job) if job is not None else None
    if folder is None or not (folder / "ct.nii.gz").is_file():
        return None
    return folder


def _saved_plan(db, p: Principal, case_id: int, plan_id: int, audit_reason: str | None = None):
    """The live saved plan *plan_id* of case *case_id* (audited read), its Plan model and its folder.

    Raises HTTPException 404 when the plan is not in the case, its geometry is hidden (pseudonymised view) or it
    has no CT to re-check on.
    """
    from osteoplan.planning.model import Plan
    from osteoplan.workflow import service as sv

    if not sv.sees_identity(p.user):
        raise HTTPException(404, "Plan details are not shown in the pseudonymised view.")
    rec = sv.get_record(db, p.user, "plan", plan_id, reason=audit_reason)
    if rec.lesion.patient_id != case_id:
        raise HTTPException(404, f"No plan {plan_id} in this case; go back to the case page.")
    folder = plan_folder_of(db, plan_id)
    if folder is None:
        raise HTTPException(404, "This plan has no CT to re-check on (it was uploaded as plan.json).")
    try:
        plan = Plan.model_validate(rec.plan)
    except Exception:
        raise HTTPException(404, "The stored plan cannot be read by this version of osteoplan; plan again.") from None
    if not plan.trajectories:
        raise HTTPException(404, "This plan has no trajectory to adjust.")
    return rec, plan, folder


# ------------------------------------------------------------------------------------------ request body
#: Largest coordinate accepted in a request, in mm (a sanity bound, not a clinical figure: a CT is well under 1 m
#: across; the slice route's ``pts`` has the same bound). Larger values are refused without being repeated.
MAX_COORD_MM = 1e4
_POINT_KEYS = ("skin_entry_lps_mm", "bone_entry_lps_mm", "target_lps_mm")


def parse_points(raw: bytes) -> dict[str, Any]:
    """The body of an evaluate / save request: ``{"skin_entry_lps_mm": [x, y, z], "bone_entry_lps_mm": [...],
    "target_lps_mm": [...], "pivot": "bone_entry" | "skin_entry", "trajectory_index": 0, "note": "..."}``
    (``trajectory_index``: which trajectory of the plan moved, 0-based, default 0; one of the plan's needles when
    it places several).

    Raises
    ------
    InputError
        One line saying what is wrong.
    """
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise InputError("The request body is not JSON: send {\"skin_entry_lps_mm\": [x, y, z], "
                         "\"bone_entry_lps_mm\": [...], \"target_lps_mm\": [...]} in LPS mm.") from None
    if not isinstance(body, dict):
        raise InputError("The request body must be a JSON object with skin_entry_lps_mm, bone_entry_lps_mm and "
                         "target_lps_mm (three LPS mm values each).")
    unknown = sorted(set(body) - set(_POINT_KEYS) - {"pivot", "note", "trajectory_index"})
    if unknown:  # (the field's name is not repeated: an error never echoes what was sent)
        raise InputError("Unknown field in the body: send only skin_entry_lps_mm, bone_entry_lps_mm, target_lps_mm, "
                         "pivot, trajectory_index (and note when saving).")
    out: dict[str, Any] = {}
    for k in _POINT_KEYS:
        v = body.get(k)
        # (a comparison, not math.isfinite: JSON's integers have no size limit; NaN fails it too)
        if (not isinstance(v, list) or len(v) != 3
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and -MAX_COORD_MM <= x <= MAX_COORD_MM
                           for x in v)):
            raise InputError(f"{k}: give three finite numbers within ±{MAX_COORD_MM:.0f} mm (LPS millimetres, "
                             "inside the image).")
        out[k] = [float(x) for x in v]
    pivot = body.get("pivot", "bone_entry")
    if pivot not in ("bone_entry", "skin_entry"):
        raise InputError("pivot: 'bone_entry' (the target or the bone entry was moved) or 'skin_entry' (the skin "
                         "entry was moved).")
    out["pivot"] = pivot
    index = body.get("trajectory_index", 0)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 100:
        raise InputError("trajectory_index: the number of the trajectory moved, from 0 (the plan's first needle).")
    out["trajectory_index"] = index
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 2000):
        raise InputError("note: a text of at most 2000 characters.")
    out["note"] = note
    return out


def needle_name(plan_json: dict[str, Any], index: int) -> str:
    """How the pages name trajectory *index* of a stored plan: ``"needle 2 (L1 right)"`` when the plan places
    several instruments (``placement == "all"``: one needle per pedicle or per level), else ``"the path"``."""
    trajs = plan_json.get("trajectories") or []
    if plan_json.get("placement") != "all" or len(trajs) < 2:
        return "the path"
    t = trajs[index] if 0 <= index < len(trajs) else {}
    where = " ".join(str(x) for x in (t.get("level"), t.get("side")) if x)
    kind = "screw" if t.get("screw") else "needle"
    return f"{kind} {index + 1}" + (f" ({where})" if where else "")


def movable_indices(plan_json: dict[str, Any]) -> list[int]:
    """The trajectories of a stored plan the radiologist may move: every one it places (``placement == "all"``),
    or the best one (ranked alternatives: the others are not part of the plan)."""
    trajs = plan_json.get("trajectories") or []
    if not trajs:
        return []
    return list(range(len(trajs))) if plan_json.get("placement") == "all" else [0]


def with_needle(moved: dict[str, dict[str, Any]], plan_json: dict[str, Any], index: int) -> dict[str, dict[str, Any]]:
    """*moved* (:func:`osteoplan.workflow.plan_versions.displacements`) with, per point, which trajectory moved:
    ``trajectory_index`` (0-based) and ``needle`` (its name, :func:`needle_name`)."""
    name = needle_name(plan_json, index)
    return {k: {**v, "trajectory_index": index, "needle": name} for k, v in moved.items()}


# ------------------------------------------------------------------------------------------ views of a re-check
def pane_geometry(skin, bone, target) -> dict[str, dict[str, Any]]:
    """Per viewer pane (:data:`osteoplan.views.slices.VIEWER_PLANES`), its plane through the path at offset 0:
    pixel (row r, column c) is at ``centre + (c - (n_cols-1)/2) * pixel_mm * u + (r - (n_rows-1)/2) * pixel_mm * v``
    (LPS mm); a slice scrolled by o mm adds ``o * normal``. With the orientation letters of the four edges."""
    import numpy as np

    from osteoplan.views.geometry import PathSpec
    from osteoplan.views.render import orientation_letters
    from osteoplan.views.slices import VIEWER_PLANES, slice_plane

    path = PathSpec(np.asarray(skin, float), np.asarray(bone, float), np.asarray(target, float))
    out = {}
    for view in VIEWER_PLANES:
        pl = slice_plane(path, view)
        out[view] = {"centre": [round(float(x), 3) for x in pl.centre_lps_mm], "u": [round(float(x), 6) for x in pl.u],
                     "v": [round(float(x), 6) for x in pl.v], "normal": [round(float(x), 6) for x in pl.normal],
                     "pixel_mm": pl.pixel_mm, "n_rows": pl.n_rows, "n_cols": pl.n_cols,
                     "letters": {"left": orientation_letters(-pl.u), "right": orientation_letters(pl.u),
                                 "top": orientation_letters(-pl.v), "bottom": orientation_letters(pl.v)}}
    return out


#: The planner's constraint sentences name a structure by its key ("clearance to spinal_canal >= its margin",
#: osteoplan.planning.planner._describe): the pages show its name instead.
_KEY_IN_CONSTRAINT = re.compile(r"\b(clearance to |does not enter )([a-z][a-z0-9]*(?:_[A-Za-z0-9]+)*)\b")


def named_text(text: str) -> str:
    """A planner's constraint sentence with its structure key replaced by the pages' name
    (:func:`osteoplan.web.views.structure_label`)."""
    from osteoplan.web.views import structure_label

    return _KEY_IN_CONSTRAINT.sub(lambda m: m.group(1) + structure_label(m.group(2)), text)


def recheck_view(r, original, index: int = 0, name: str = "the path") -> dict[str, Any]:
    """The JSON the page shows for a re-check *r* (:class:`~osteoplan.planning.recheck.Recheck`) of trajectory
    *index* (named *name* on the pages, :func:`needle_name`), with the displacement of each point from the
    version's *original* trajectory and the re-checked plan's verdict and warnings."""
    from osteoplan.planning.recheck import ASSESSED_BY_WORDS
    from osteoplan.planning.verdict import severity
    from osteoplan.web.views import plan_key_numbers, structure_label
    from osteoplan.workflow.plan_versions import displacements

    t = r.trajectory
    v = r.plan.verdict
    rows = []
    for c in t.clearances:
        rows.append({"structure": c.structure, "name": structure_label(c.structure), "category": c.category,
                     "margin_mm": c.margin_mm, "clearance_mm": c.clearance_mm, "status": c.status,
                     "how": ASSESSED_BY_WORDS.get(c.assessed_by or "", c.assessed_by or "not assessed"),
                     "note": c.note})
    measured = [x for x in rows if x["clearance_mm"] is not None and x["structure"] != "other_bone"]
    nearest = min(measured, key=lambda x: x["clearance_mm"] - x["margin_mm"])["structure"] if measured else None
    sc = t.screw
    return {
        "trajectory_index": index, "needle": name,
        "feasible": r.feasible, "violations": [named_text(x) for x in r.violation_texts], "pivot": r.pivot,
        "verdict": {"code": v.code, "text": v.text_en, "details": list(v.details_en),
                    "class": {"ok": "ok", "warn": "warn", "ko": "bad"}[severity(v)]},
        "points": {"skin_entry": list(t.skin_entry_lps_mm), "bone_entry": list(t.bone_entry_lps_mm),
                   "target": list(t.target_lps_mm)},
        "moved": displacements(original.model_dump(), t.model_dump()),
        "clearances": rows, "nearest": nearest,
        "containment_min_margin_mm": t.containment_min_margin_mm,
        "screw": None if sc is None else {"diameter_mm": sc.diameter_mm, "length_mm": sc.length_mm,
                                          "catalogue_ref": sc.catalogue_ref},
        "needle_diameter_mm": t.needle_diameter_mm,
        "depth_total_mm": t.depth_total_mm, "depth_bone_to_target_mm": t.depth_bone_to_target_mm,
        "angle_craniocaudal_deg": t.angle_craniocaudal_deg, "angle_mediolateral_deg": t.angle_mediolateral_deg,
        "panes": pane_geometry(t.skin_entry_lps_mm, t.bone_entry_lps_mm, t.target_lps_mm),
        # the re-checked plan's warnings as the review page lists them (osteoplan.web.views.plan_key_numbers)
        "warnings": plan_key_numbers(json.loads(r.plan.to_json(indent=None)))["warnings"],
    }


def context_for_folder(cache, folder: Path, index: int = 0):
    """The cached re-check context (:class:`~osteoplan.planning.recheck.AdjustContext`) of trajectory *index* of the
    plan folder *folder* (``plan.json``, ``ct.nii.gz``, segmentation), keyed by the folder and its ``plan.json``'s
    modification time; later versions of the plan share it (they are passed to the evaluation).

    Raises
    ------
    InputError
        The folder lacks what :func:`osteoplan.export.load_plan_dir` needs, or holds no segmentation.
    """
    from osteoplan.planning.recheck import build_context

    folder = Path(folder)
    key = (str(folder.resolve()), (folder / "plan.json").stat().st_mtime_ns, index)

    def build():
        from osteoplan.export import load_plan_dir

        saved, volume, labelmap = load_plan_dir(folder)
        if labelmap is None:
            raise InputError("The plan folder holds no segmentation: the trajectory cannot be re-checked.")
        return build_context(saved, volume, labelmap, index)

    return cache.get(key, build)


def _recheck(folder: Path, plan, pts: dict[str, Any]):
    """Re-check trajectory ``pts["trajectory_index"]`` of *plan* moved to the points of *pts*; the plan's other
    trajectories stay as they are and its verdict is re-derived over all of them
    (:func:`osteoplan.planning.recheck.plan_with_trajectory`).

    Raises
    ------
    InputError
        The plan has no such trajectory to move.
    """
    from osteoplan.planning.recheck import evaluate_trajectory

    index = pts.get("trajectory_index", 0)
    allowed = movable_indices({"trajectories": list(plan.trajectories), "placement": plan.placement})
    if index not in allowed:
        raise InputError(f"trajectory_index: this plan has {len(allowed)} trajectory(ies) to move "
                         f"(0 to {len(allowed) - 1}).")
    ctx = context_for_folder(recheck_cache(), folder, index)
    return evaluate_trajectory(ctx, pts["skin_entry_lps_mm"], pts["bone_entry_lps_mm"], pts["target_lps_mm"],
                               pivot=pts["pivot"], plan=plan)


def _lock_state(db, plan_id: int) -> dict[str, Any]:
    from osteoplan.workflow.plan_versions import family, version_of

    fam = family(db, plan_id)
    me = next((f for f in fam if f["plan_id"] == plan_id), None)
    ok = next((f for f in fam if f["approved_at"] is not None), None)
    live = [f for f in fam if not f["deleted"]]
    newer = live[-1] if live and me and live[-1]["number"] > me["number"] else None
    return {"version": me["number"] if me else 1, "n_versions": len(fam), "newer": newer,
            "locked": ok is not None, "approved_version": ok["number"] if ok else None,
            "approved_by": ok["approved_by"] if ok else None,
            "approved_here": bool(ok and ok["plan_id"] == plan_id), "has_row": version_of(db, plan_id) is not None}


# ------------------------------------------------------------------------------------------ routes
@router.post("/api/cases/{case_id}/plans/{plan_id}/evaluate")
async def evaluate(request: Request, case_id: int, plan_id: int, p: Principal = Depends(require("case.read")),
                   db=Depends(get_db)):
    """Re-check the plan's trajectory with the points given (JSON in/out). 422 with one line for a point outside
    the image or a malformed body."""
    raw = await request.body()

    def work():
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            pts = parse_points(raw)
        except InputError as exc:
            return _one_line(422, "Invalid input", str(exc))
        rec, plan, folder = _saved_plan(db, p, case_id, plan_id, audit_reason="re-check of a moved trajectory")
        lock = _lock_state(db, plan_id)
        db.commit()
        try:
            r = _recheck(folder, plan, pts)
        except InputError as exc:
            return _one_line(422, "Invalid input", str(exc))
        except OsteoplanError as exc:
            return _one_line(422, "Cannot re-check", str(exc))
        index = pts["trajectory_index"]
        out = recheck_view(r, plan.trajectories[index], index, needle_name(rec.plan, index))
        out.update(plan_id=plan_id, **{k: lock[k] for k in ("version", "locked", "approved_version", "approved_by")})
        out["seconds"] = {"wall": round(time.perf_counter() - t0, 4), "cpu": round(time.process_time() - c0, 4)}
        return JSONResponse(out, headers={"Cache-Control": "no-store"})

    return await run_in_threadpool(work)


@router.post("/api/cases/{case_id}/plans/{plan_id}/versions")
async def save_version(request: Request, case_id: int, plan_id: int, p: Principal = Depends(require("lesion.write")),
                       db=Depends(get_db)):
    """Re-check the points given and save the result as the plan's next version; 409 when the plan is locked
    (approved), 422 when nothing moved or a point is wrong."""
    raw = await request.body()

    def work():
        from osteoplan.workflow.plan_versions import PlanLockedError, check_unlocked, displacements, save_plan_version

        try:
            pts = parse_points(raw)
        except InputError as exc:
            return _one_line(422, "Invalid input", str(exc))
        rec, plan, folder = _saved_plan(db, p, case_id, plan_id)
        try:
            check_unlocked(db, plan_id)
        except PlanLockedError as exc:
            db.commit()  # the audited read
            return _one_line(409, "Plan locked", str(exc)[:1].upper() + str(exc)[1:] + ".")
        try:
            r = _recheck(folder, plan, pts)
        except OsteoplanError as exc:
            return _one_line(422, "Invalid input", str(exc))
        index = pts["trajectory_index"]
        if not r.feasible:
            return _one_line(422, "Not a feasible path", "The adjusted path breaks the protocol's rules ("
                             + "; ".join(named_text(x) for x in r.violation_texts) + "): only a path the planner could give is saved as a "
                             "version; move it back within the rules.")
        moved = displacements(plan.trajectories[index].model_dump(), r.trajectory.model_dump())
        moved = with_needle(moved, rec.plan, index)
        try:
            new = save_plan_version(db, p.user, plan_id, json.loads(r.plan.to_json(indent=None)), moved,
                                    note=pts["note"])
            db.commit()
        except PlanLockedError as exc:
            db.rollback()
            return _one_line(409, "Plan locked", str(exc)[:1].upper() + str(exc)[1:] + ".")
        except ValidationError as exc:
            db.rollback()
            return _one_line(422, "Invalid input", str(exc))
        lock = _lock_state(db, new.id)
        db.commit()
        return JSONResponse({"plan_id": new.id, "version": lock["version"], "moved": moved,
                             "verdict": r.plan.verdict.text_en,
                             "review_url": f"/cases/{case_id}/plans/{new.id}/review",
                             "versions_url": f"/cases/{case_id}/plans/{new.id}/versions"},
                            status_code=201, headers={"Cache-Control": "no-store"})

    return await run_in_threadpool(work)


@router.post("/cases/{case_id}/plans/{plan_id}/approve")
def approve(request: Request, case_id: int, plan_id: int, p: Principal = Depends(require("plan.approve")),
            form=Depends(form_data), db=Depends(get_db)):
    """Approve this version (radiologists); the plan is locked from then on. 409 when already approved."""
    from osteoplan.web.app import error_response
    from osteoplan.web.routers.pages import flash
    from osteoplan.workflow import service as sv
    from osteoplan.workflow.plan_versions import ConfirmationRequired, PlanLockedError, approve_plan

    rec = sv.get_record(db, p.user, "plan", plan_id)
    if rec.lesion.patient_id != case_id:
        raise HTTPException(404, f"No plan {plan_id} in this case; go back to the case page.")
    newer, open_items = _lock_state(db, plan_id)["newer"], not_cleared_of(rec.plan)
    try:
        row = approve_plan(db, p.user, plan_id, confirm_older=form.get("confirm_older") == "1",
                           confirm_not_cleared=form.get("confirm_not_cleared") == "1")
        sent = _send_approved_to_pacs(request, db, p, plan_id)
        db.commit()
    except PlanLockedError as exc:
        db.rollback()
        return error_response(request, 409, "Plan locked", str(exc)[:1].upper() + str(exc)[1:] + ".")
    except ConfirmationRequired as exc:
        db.rollback()
        return error_response(request, 409, "Confirmation needed", str(exc)[:1].upper() + str(exc)[1:] + ".")
    what = []  # what the approval's audit entry records besides the approval (plan_versions.approve_plan)
    if newer is not None:
        what.append(f"although version {newer['number']} is newer")
    if open_items is not None:
        what.append("NOT CLEARED, with your confirmation that what it leaves open was checked on other images")
    flash(request, "ok", f"Version {row.number} approved" + (" (" + "; ".join(what) + ")" if what else "")
          + ": the plan is locked." + sent)
    return RedirectResponse(f"/cases/{case_id}/plans/{plan_id}/review", status_code=303)


def not_cleared_of(plan_json: dict | None) -> list[str] | None:
    """:func:`osteoplan.workflow.plan_versions.not_cleared_items` of a stored plan."""
    from osteoplan.workflow.plan_versions import not_cleared_items

    return not_cleared_items(plan_json or {})


def _send_approved_to_pacs(request: Request, db, p: Principal, plan_id: int) -> str:
    """Queue the approved version's SEG, SR and PDF for the PACS (:func:`osteoplan.workflow.jobs.
    enqueue_results_store`) when the server has a PACS; returns the words added to the approval message."""
    from osteoplan.errors import InputError
    from osteoplan.web import plan_jobs as pj
    from osteoplan.workflow import jobs as q

    if pj.pacs_config(request.app.state) is None:
        return ""
    try:
        job = q.enqueue_results_store(db, p.user, plan_id)
    except InputError as exc:  # an uploaded plan.json: nothing to build the objects from
        return f" Its results are not sent to the PACS: {exc}."
    return f" Its report, SEG and SR are being sent to the PACS (job {job.id}, shown on this page)."


def _version_summary(plan_json: dict, index: int = 0) -> dict[str, Any]:
    from osteoplan.planning.recheck import ASSESSED_BY_WORDS
    from osteoplan.web.views import plan_verdict, structure_label

    out: dict[str, Any] = dict(plan_verdict(plan_json))
    trajs = plan_json.get("trajectories") or []
    t = trajs[index] if 0 <= index < len(trajs) else None
    out["points"] = {k: (t or {}).get(f"{k}_lps_mm") for k in ("skin_entry", "bone_entry", "target")}
    out["clearances"] = {c["structure"]: {"name": structure_label(c["structure"]), "clearance_mm": c.get("clearance_mm"),
                                          "margin_mm": c.get("margin_mm"), "status": c.get("status"),
                                          "how": ASSESSED_BY_WORDS.get(c.get("assessed_by") or "", "not assessed")}
                         for c in (t or {}).get("clearances") or []}
    sc = (t or {}).get("screw") or {}
    out["screw"] = f"{sc.get('diameter_mm')} × {sc.get('length_mm')} mm" if sc else None
    out["containment_mm"] = (t or {}).get("containment_min_margin_mm")
    return out


def needle_changes(plan_a: dict, plan_b: dict) -> list[dict[str, Any]]:
    """Per trajectory of two versions of a plan (same trajectories in the same order): ``index``, ``name``
    (:func:`needle_name`) and ``moved`` (:func:`osteoplan.workflow.plan_versions.displacements` from *plan_a* to
    *plan_b*; empty when that trajectory did not move)."""
    from osteoplan.workflow.plan_versions import displacements

    ta, tb = plan_a.get("trajectories") or [], plan_b.get("trajectories") or []
    out = []
    for i in range(min(len(ta), len(tb))):
        try:
            moved = displacements(ta[i], tb[i])
        except (KeyError, TypeError, ValueError):
            moved = {}
        out.append({"index": i, "name": needle_name(plan_b, i), "moved": moved})
    return out


@router.get("/cases/{case_id}/plans/{plan_id}/versions", response_class=HTMLResponse)
def versions_page(request: Request, case_id: int, plan_id: int, a: int | None = None, b: int | None = None,
                  p: Principal = Depends(require("case.read")), db=Depends(get_db)):
    """The plan's versions (who, when, what moved, state, approval) and two of them side by side (default: the latest
    version and the one it was made from)."""
    from osteoplan.web import backend
    from osteoplan.web.routers.pages import page
    from osteoplan.workflow.plan_versions import family, with_states

    case = backend.get_case(db, p.user, case_id)
    backend.find_child(case, "plan", plan_id)
    fam = [f for f in with_states(family(db, plan_id)) if not f["deleted"]]
    plans = {}
    for f in fam:
        try:
            pl = backend.find_child(case, "plan", f["plan_id"])
        except OsteoplanError:
            continue
        if "plan" not in pl:
            raise HTTPException(404, "Plan details are not shown in the pseudonymised view.")
        plans[f["plan_id"]] = pl
    fam = [f for f in fam if f["plan_id"] in plans]
    db.commit()
    if b is None:  # default: the latest version with the one it was made from (v1 when that one is gone)
        b = fam[-1]["plan_id"]
    if a is None:
        latest = next(f for f in fam if f["plan_id"] == b)
        a = latest["parent_plan_id"] if latest["parent_plan_id"] in plans else fam[0]["plan_id"]
    if a not in plans or b not in plans:
        raise HTTPException(404, "Compare two versions of this plan (a and b are plan numbers listed on this page).")
    pa_json, pb_json = plans[a]["plan"], plans[b]["plan"]
    needles = needle_changes(pa_json, pb_json)
    shown = next((n["index"] for n in needles if n["moved"]), 0)  # the needle that moved (the first one otherwise)
    va, vb = _version_summary(pa_json, shown), _version_summary(pb_json, shown)
    num = {f["plan_id"]: f["number"] for f in fam}
    diff_points = {}
    for k in ("skin_entry", "bone_entry", "target"):
        pa, pb = va["points"][k], vb["points"][k]
        if pa and pb:
            d = [round(y - x, 2) for x, y in zip(pa, pb)]
            diff_points[k] = {"delta": d, "distance": round(math.sqrt(sum(x * x for x in d)), 2)}
    names = list(dict.fromkeys(list(va["clearances"]) + list(vb["clearances"])))
    rows = []
    for n in names:
        ca, cb = va["clearances"].get(n, {}), vb["clearances"].get(n, {})
        x, y = ca.get("clearance_mm"), cb.get("clearance_mm")
        rows.append({"structure": n, "name": (ca or cb).get("name", n), "a": ca, "b": cb,
                     "diff": None if x is None or y is None else round(y - x, 2)})
    approved = next((f for f in fam if f["approved_at"] is not None), None)
    return page(request, "plan_versions.html", {
        "case": case, "plan_id": plan_id, "versions": fam, "a": a, "b": b, "num": num, "va": va, "vb": vb,
        "diff_points": diff_points, "rows": rows, "approved": approved, "needles": needles,
        "shown_needle": needle_name(pb_json, shown) if len(needles) > 1 else None,
        "labels": {f["plan_id"]: plans[f["plan_id"]]["label"] for f in fam}})


# ------------------------------------------------------------------------------------------ case page hook
def case_plan_versions(db, plans: list[dict], reviewable: set[int]) -> dict[int, dict[str, Any]]:
    """For the case page, per saved plan id of *plans*: its plan's ``versions`` (:func:`~osteoplan.workflow.
    plan_versions.with_states`: number, state draft / approved / superseded, ...), the ``latest`` live version,
    ``this`` (its own version dict) and ``reviewable`` (the plan has a CT to review: its root is in *reviewable*,
    the saved-plan ids of planning jobs with a CT), so that "Review the images" opens the LATEST version."""
    from osteoplan.workflow.plan_versions import family, with_states

    out: dict[int, dict[str, Any]] = {}
    for pl in plans:
        fam = with_states(family(db, pl["id"]))
        live = [f for f in fam if not f["deleted"]]
        if not live:
            continue
        this = next((f for f in fam if f["plan_id"] == pl["id"]), None)
        out[pl["id"]] = {"versions": fam, "latest": live[-1], "this": this,
                         "reviewable": any(f["plan_id"] in reviewable for f in fam)}
    return out


# ------------------------------------------------------------------------------------------ review page hooks
def moved_scene(scene, pts: str, screw_mm: float | None = None):
    """The review page's slice scene with the path moved to *pts* (``"x,y,z,x,y,z,x,y,z"``: skin entry, bone
    entry, target, LPS mm) and its screw *screw_mm* long (the re-checked catalogue screw).

    Raises HTTPException 422 with one line for malformed points.
    """
    from dataclasses import replace

    import numpy as np

    from osteoplan.views.slices import SliceScene

    try:
        v = np.array([float(x) for x in pts.split(",")], float)
    except ValueError:
        v = np.zeros(0)
    if v.shape != (9,) or not np.all(np.isfinite(v)) or np.any(np.abs(v) > MAX_COORD_MM) \
            or (screw_mm is not None and not (math.isfinite(screw_mm) and 0 < screw_mm < 500)):
        raise HTTPException(422, "pts: nine comma-separated LPS millimetre values (skin entry, bone entry, target); "
                                 "screw_mm: a length in mm.")
    try:
        path = replace(scene.path, skin_entry_lps_mm=v[0:3], bone_entry_lps_mm=v[3:6], target_lps_mm=v[6:9],
                       screw_length_mm=screw_mm if screw_mm is not None else scene.path.screw_length_mm)
    except InputError as exc:
        raise HTTPException(422, str(exc)) from None
    return SliceScene(scene.volume, path, scene.structures)


def version_scene(scene, plan_json: dict[str, Any] | None, index: int = 0):
    """The review page's slice scene drawing trajectory *index* of the stored plan (version) *plan_json* (its
    saved points and screw), for a slice asked without moved points: a version's slices show its own trajectory,
    not the one of the plan folder it shares with the first version. *scene* unchanged when the version has no
    such trajectory."""
    trajs = (plan_json or {}).get("trajectories") or []
    if not 0 <= index < len(trajs):
        return scene
    t = trajs[index]
    try:
        pts = ",".join(repr(float(x)) for k in _POINT_KEYS for x in t[k])
    except (KeyError, TypeError, ValueError):
        return scene
    return moved_scene(scene, pts, (t.get("screw") or {}).get("length_mm"))


def other_needles(plan_json: dict[str, Any] | None, index: int) -> list:
    """The PathSpecs (:func:`osteoplan.views.geometry.pathspec_from_plan`, at their saved points) of the needles of
    the stored plan (version) *plan_json* other than trajectory *index*, when it places several
    (:func:`movable_indices`); empty otherwise. Each carries its level and side (the page labels it with
    :func:`needle_name`)."""
    from osteoplan.views.geometry import pathspec_from_plan

    pj = plan_json or {}
    idx = movable_indices(pj)
    if len(idx) < 2:
        return []
    return [pathspec_from_plan(pj, i) for i in idx if i != index]


def plan_verdict_text(plan_json: dict | None) -> str | None:
    """The stored plan's verdict headline (English)."""
    from osteoplan.web.views import plan_verdict

    return plan_verdict(plan_json or {}).get("verdict") if plan_json else None


def adjust_page_context(request: Request, db, p: Principal, case_id: int, plan_id: int, plan: dict,
                        folder: Path | None) -> dict[str, Any]:
    """What the review page's adjust block needs (``templates/plan_adjust.html``, ``static/adjust.js``)."""
    from osteoplan.web.auth import csrf_token

    pj = plan.get("plan") or {}
    trajs = pj.get("trajectories") or []
    lock = _lock_state(db, plan_id)
    t = trajs[0] if trajs else {}
    needles = [{"index": i, "name": needle_name(pj, i),
                "points": {k: trajs[i].get(f"{k}_lps_mm") for k in ("skin_entry", "bone_entry", "target")},
                "screw_mm": (trajs[i].get("screw") or {}).get("length_mm")} for i in movable_indices(pj)]
    base = f"/cases/{case_id}/plans/{plan_id}"
    newer = lock["newer"]
    return {"enabled": folder is not None and bool(trajs), "lock": lock,
            "newer": None if newer is None else {
                **newer, "review_url": f"/cases/{case_id}/plans/{newer['plan_id']}/review",
                "when": newer["created_at"].strftime("%Y-%m-%d %H:%M UTC") if newer["created_at"] else "?"},
            "not_cleared": not_cleared_of(plan.get("plan")), "verdict": plan_verdict_text(plan.get("plan")),
            "evaluate_url": f"/api{base}/evaluate", "save_url": f"/api{base}/versions",
            "approve_url": f"{base}/approve", "versions_url": f"{base}/versions", "csrf": csrf_token(request),
            "can_save": p.can("lesion.write"), "can_approve": p.can("plan.approve"),
            "points": json.dumps({k: t.get(f"{k}_lps_mm") for k in ("skin_entry", "bone_entry", "target")}),
            "screw_mm": (t.get("screw") or {}).get("length_mm"),
            "needles": needles if len(needles) > 1 else [], "needles_json": json.dumps(needles)}
