"""Pages to find a lesion's planning CT in the PACS and attach it (identity-checked) to the lesion.

``GET /cases/{c}/lesions/{l}/pacs`` shows the search form (prefilled with the case's hospital identifier when the
user may see it); ``POST`` to the same URL searches the PACS (QIDO-RS, CT series) by StudyInstanceUID and/or
PatientID (a POST, so that the identifier stays out of URLs and access logs); ``POST .../pacs/pick`` attaches one
series: its patient (from the PACS) is compared with the case's identity by
:func:`osteoplan.imaging.identity.check_ct_matches_case` and a mismatch is refused naming the attributes that
differ, never their values; the series UID is then added to the lesion's ``ct_series_uids`` through the audited
workflow service. A PACS failure (unreachable, timeout, refusal) is one message on the page (HTTP 502).

The PACS is the one configured for the server (``OSTEOPLAN_PACS_URL`` ... or ``~/.config/osteoplan/pacs.toml``,
:mod:`osteoplan.pacs.config`); tests may set ``app.state.pacs_config``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from osteoplan.errors import InputError, PacsError, PatientIdentityError, ValidationError
from osteoplan.web import backend
from osteoplan.web.auth import Principal, form_data, get_db, require
from osteoplan.web.routers.pages import flash, page, redirect

router = APIRouter(include_in_schema=False)

_UID_CHARS = set("0123456789.")


def _uid(value: Any, what: str) -> str:
    v = str(value or "").strip()
    if not v or len(v) > 64 or not set(v) <= _UID_CHARS:
        raise ValidationError(f"the {what} is not a DICOM UID (digits and dots, at most 64 characters)")
    return v


def _client(request: Request):
    """A PacsClient for the server's PACS, or raise InputError('No PACS configured ...')."""
    from osteoplan.pacs import PacsClient, load_config

    cfg = getattr(request.app.state, "pacs_config", None) or load_config()
    return PacsClient(cfg)


def case_identity(case: dict):
    """The case's PatientIdentity from the case dict (identity fields present only for roles that may see them)."""
    from osteoplan.imaging.identity import PatientIdentity

    ident = case.get("identity") or {}
    return PatientIdentity(patient_id=ident.get("hospital_id"), family_name=ident.get("family_name"),
                           given_name=ident.get("given_name"), birth_date=ident.get("birth_date"),
                           birth_year=case.get("birth_year"), sex=case.get("sex"))


def _context(db, p: Principal, case_id: int, lesion_id: int) -> tuple[dict, dict]:
    case = backend.get_case(db, p.user, case_id)
    lesion = backend.find_child(case, "lesion", lesion_id)
    return case, lesion


@router.get("/cases/{case_id}/lesions/{lesion_id}/pacs", response_class=HTMLResponse)
def pacs_page(request: Request, case_id: int, lesion_id: int, p: Principal = Depends(require("lesion.write")),
              db=Depends(get_db)) -> Response:
    """The search form, prefilled with the case's hospital identifier (when the user may see it)."""
    case, lesion = _context(db, p, case_id, lesion_id)
    db.commit()
    ident = case.get("identity") or {}
    return page(request, "pacs_search.html", {"case": case, "lesion": lesion, "study": "",
                                              "patient_id": ident.get("hospital_id") or "", "hits": None})


@router.post("/cases/{case_id}/lesions/{lesion_id}/pacs", response_class=HTMLResponse)
def pacs_search(request: Request, case_id: int, lesion_id: int, p: Principal = Depends(require("lesion.write")),
                form=Depends(form_data), db=Depends(get_db)) -> Response:
    """QIDO-RS search (a POST: a patient identifier never goes into a URL, a browser history or an access log)."""
    case, lesion = _context(db, p, case_id, lesion_id)
    db.commit()
    study = str(form.get("study") or "").strip()[:64]
    patient_id = str(form.get("patient_id") or "").strip()[:64]
    ctx: dict[str, Any] = {"case": case, "lesion": lesion, "study": study, "patient_id": patient_id, "hits": None,
                           "error": None}
    try:
        if not (study or patient_id):
            raise ValidationError("give a StudyInstanceUID or a patient identifier to search the PACS")
        if study:
            _uid(study, "StudyInstanceUID")
        ctx["hits"] = _client(request).find_series(study_uid=study or None, patient_id=patient_id or None,
                                                   modality="CT")
    except ValidationError as exc:
        ctx["error"] = str(exc)
        return page(request, "pacs_search.html", ctx, status_code=422)
    except (PacsError, InputError) as exc:
        ctx["error"] = str(exc)
        return page(request, "pacs_search.html", ctx, status_code=502)
    return page(request, "pacs_search.html", ctx)


@router.post("/cases/{case_id}/lesions/{lesion_id}/pacs/pick")
def pacs_pick(request: Request, case_id: int, lesion_id: int, p: Principal = Depends(require("lesion.write")),
              form=Depends(form_data), db=Depends(get_db)) -> Response:
    from osteoplan.imaging.identity import check_ct_matches_case

    case, lesion = _context(db, p, case_id, lesion_id)
    ctx: dict[str, Any] = {"case": case, "lesion": lesion, "study": str(form.get("study_uid") or ""),
                           "patient_id": str(form.get("patient_id") or ""), "hits": None, "error": None}
    try:
        study_uid = _uid(form.get("study_uid"), "StudyInstanceUID")
        series_uid = _uid(form.get("series_uid"), "SeriesInstanceUID")
        version = int(str(form.get("version") or lesion["version"]))
        confirmed = str(form.get("confirm_unverified") or "") == "yes"
        hits = _client(request).find_series(study_uid=study_uid, series_uid=series_uid, modality=None)
        if not hits:
            raise PacsError("The series is no longer in the PACS (deleted or moved since it was listed); search "
                            "again and pick a series.")
        check = check_ct_matches_case(hits[0].identity, case_identity(case), allow_unverified=confirmed)
        uids = list(lesion.get("ct_series_uids") or [])
        if series_uid not in uids:
            backend.update_child(db, p.user, case_id, "lesion", lesion_id, {"ct_series_uids": uids + [series_uid]},
                                 version)
        db.commit()
    except PatientIdentityError as exc:
        db.rollback()
        ctx.update(error=str(exc), unverifiable="cannot be verified" in str(exc), hits=hits,
                   pick={"study_uid": form.get("study_uid"), "series_uid": form.get("series_uid")})
        return page(request, "pacs_search.html", ctx, status_code=422)
    except (ValidationError, ValueError) as exc:
        db.rollback()
        ctx["error"] = str(exc) if isinstance(exc, ValidationError) else "the form is damaged; reload the page"
        return page(request, "pacs_search.html", ctx, status_code=422)
    except (PacsError, InputError) as exc:
        db.rollback()
        ctx["error"] = str(exc)
        return page(request, "pacs_search.html", ctx, status_code=502)
    how = (f"patient identity verified on {', '.join(check.compared)}" if check.verified else
           "patient identity NOT verified (confirmed by hand)")
    flash(request, "ok", f"CT series attached to the lesion ({how}).")
    return redirect(f"/cases/{case_id}")
