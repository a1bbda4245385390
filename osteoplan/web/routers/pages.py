"""Server-rendered pages: login, case list, case page, one form per pathway step, statistics, audit.

Every route (except login/logout/health) declares its action with ``Depends(require(...))``; the
role table in :mod:`osteoplan.web.permissions` decides. Handlers call :mod:`osteoplan.web.backend`
(the workflow service, which writes the audit records) and commit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

import pydantic
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from osteoplan.errors import ValidationError
from osteoplan.web import backend, forms, views
from osteoplan.web.app import render
from osteoplan.web.middleware import PLAN_MAX_BYTES
from osteoplan.web.auth import (
    Principal,
    csrf_token,
    form_data,
    get_db,
    load_principal,
    new_session_id,
    require,
    require_csrf_only,
    revoke_session,
)

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50


def flash(request: Request, kind: str, msg: str) -> None:
    request.session.setdefault("flash", []).append([kind, msg])


def pop_flash(request: Request) -> list:
    return request.session.pop("flash", []) or []


def page(request: Request, name: str, ctx: dict | None = None, status_code: int = 200) -> Response:
    ctx = dict(ctx or {})
    ctx["messages"] = pop_flash(request) + ctx.get("messages", [])
    return render(request, name, ctx, status_code=status_code)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _int_or_none(value) -> int | None:
    """A form's record version: an integer, or None when absent; anything else is refused (422)."""
    if value in (None, ""):
        return None
    try:
        return int(str(value))
    except ValueError:
        raise ValidationError("the form's record version is not a number; reload the page") from None


def _safe_next(nxt: str | None) -> str:
    if nxt and nxt.startswith("/") and not nxt.startswith("//") and "\\" not in nxt:
        return nxt
    return "/cases"


# ------------------------------------------------------------------------------------------ public
@router.get("/healthz")
def healthz() -> PlainTextResponse:
    return PlainTextResponse("ok")


@router.get("/")
def index(request: Request, db=Depends(get_db)):
    try:
        p = load_principal(request, db)
    except Exception:
        p = None
    if p is None:
        return redirect("/login")
    from osteoplan.web.permissions import allowed  # the home page: the role's worklist (issue 15)
    return redirect("/worklist" if allowed(p.role, "worklist.read") else "/cases")


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/cases"):
    csrf_token(request)
    return page(request, "login.html", {"next": _safe_next(next)})


@router.post("/login", dependencies=[Depends(require_csrf_only)])
def login(request: Request, form=Depends(form_data), db=Depends(get_db)):
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    nxt = _safe_next(str(form.get("next", "/cases")))
    user = backend.throttled_authenticate(request, db, username, password)
    if user is None:
        db.commit()  # a failed login is audited
        return page(request, "login.html", {"error": "Unknown user name or wrong password.", "username": username,
                                            "next": nxt}, status_code=401)
    db.commit()
    request.session.clear()
    request.session["uid"] = user.id
    request.session["role"] = str(user.role)
    request.session["sid"] = new_session_id()
    csrf_token(request)  # a fresh token for the new session
    return redirect(nxt)


@router.post("/logout", dependencies=[Depends(require_csrf_only)])
def logout(request: Request, db=Depends(get_db)):
    revoke_session(request, db)  # a copy of the cookie kept elsewhere no longer logs in, even after a restart
    db.commit()
    request.session.clear()
    return redirect("/login")


# ------------------------------------------------------------------------------------------ cases
#: Case-list filters (issue 15), in the query string of GET /cases and in hidden fields of the search form; none is
#: identifying (stage, procedure type, lesion site, staff operator, dates).
CASE_FILTERS = ("stage", "procedure_type", "site", "operator", "date_from", "date_to", "date_kind")


def _case_filters(source) -> dict:
    """The case-list filters present in *source* (query params or form), checked: bad values -> ValidationError."""
    out: dict = {}
    for k in CASE_FILTERS:
        v = str(source.get(k) or "").strip()[:80]
        if not v:
            continue
        if k in ("date_from", "date_to"):
            try:
                out[k] = dt.date.fromisoformat(v)
            except ValueError:
                raise ValidationError(f"{k.replace('_', ' ')} is not a date; use YYYY-MM-DD") from None
        else:
            out[k] = v
    if "date_from" not in out and "date_to" not in out:
        out.pop("date_kind", None)
    return out


def _case_list_page(request: Request, p: Principal, db, q: str, page_no: int, status_code: int = 200,
                    filters: dict | None = None, before: int | None = None) -> Response:
    from urllib.parse import urlencode

    filters = filters or {}
    rows, total, next_before = backend.list_cases_filtered(db, p.user, q or None, PAGE_SIZE,
                                                           (page_no - 1) * PAGE_SIZE, before, filters)
    items = [views.case_summary(r, p) for r in rows]
    db.commit()
    pages = max(1, -(-total // PAGE_SIZE))
    fq = {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in filters.items()}
    return page(request, "cases.html", {"items": items, "q": q, "total": total, "page_no": page_no, "pages": pages,
                                        "filters": fq, "filter_query": urlencode(fq), "next_before": next_before,
                                        "voc": backend.worklist_vocabularies(), "stage_labels": views.STAGE_LABELS},
                status_code=status_code)


@router.get("/cases", response_class=HTMLResponse)
def case_list(request: Request, page_no: int = Query(1, alias="page", ge=1, le=10**6),
              before: int | None = Query(None, ge=1, le=2**31 - 1),
              p: Principal = Depends(require("case.list")), db=Depends(get_db)):
    """The case list, newest first, with filters in the query string (stage, procedure type, site, operator,
    dates) and keyset paging (``before``: older than this case id). Searches are POSTed (below): a search term
    (a name, a hospital ID) must not sit in a URL, where browser history, proxies and access logs would keep it."""
    return _case_list_page(request, p, db, "", page_no, filters=_case_filters(request.query_params), before=before)


@router.post("/cases", response_class=HTMLResponse)
def case_search(request: Request, p: Principal = Depends(require("case.list")), form=Depends(form_data),
                db=Depends(get_db)):
    """Search the case list (term in the POST body, never in the URL)."""
    q = str(form.get("q") or "").strip()
    filters = _case_filters(form)
    if len(q) > 100:
        flash(request, "error", "A search term is at most 100 characters; shorten it.")
        return _case_list_page(request, p, db, "", 1, status_code=422, filters=filters)
    raw_page = str(form.get("page") or "1").strip()
    page_no = int(raw_page) if raw_page.isdigit() and len(raw_page) < 8 else 1
    return _case_list_page(request, p, db, q, max(page_no, 1), filters=filters)


def _form_response(request: Request, spec: forms.FormSpec, *, back_url: str, back_label: str, values: dict | None = None,
                   choices: dict | None = None, version: int | None = None, subtitle: str = "", error: str | None = None,
                   error_details: list | None = None, status_code: int = 200) -> Response:
    return page(request, "form.html", {
        "spec": spec, "values": values or {}, "choices": choices or {}, "version": version, "back_url": back_url,
        "back_label": back_label, "subtitle": subtitle, "error": error, "error_details": error_details or []},
        status_code=status_code)


def _submit(request: Request, db, spec: forms.FormSpec, action: Callable[[dict], Any], form, *, ok_url: str,
            ok_msg: str, back_url: str, back_label: str, choices: dict | None = None, subtitle: str = "",
            extra: dict | None = None) -> Response:
    """Parse the form, run *action* (a service call), commit; on a validation error show the form again (422)."""
    data = forms.parse_form(spec, form)
    data.update(extra or {})
    version = _int_or_none(form.get("version"))
    try:
        action(data if version is None else {**data, "__version__": version})
        db.commit()
    except (ValidationError, pydantic.ValidationError) as exc:
        db.rollback()
        details = views.pydantic_messages(exc) if isinstance(exc, pydantic.ValidationError) else []
        msg = str(exc) if isinstance(exc, ValidationError) else "Some fields are missing or invalid."
        values = {k: v for k, v in form.items() if k not in ("csrf_token", "version")}
        return _form_response(request, spec, back_url=back_url, back_label=back_label, values=values, choices=choices,
                              version=version, subtitle=subtitle, error=msg,
                              error_details=details, status_code=422)
    flash(request, "ok", ok_msg)
    return redirect(ok_url)


@router.get("/cases/new", response_class=HTMLResponse)
def case_new_form(request: Request, p: Principal = Depends(require("case.create"))):
    return _form_response(request, forms.PATIENT, back_url="/cases", back_label="Cases", values={"sex": "unknown"})


@router.post("/cases/new")
def case_new(request: Request, p: Principal = Depends(require("case.create")), form=Depends(form_data),
             db=Depends(get_db)):
    created: dict = {}

    def act(data):
        created["case"] = backend.create_case(db, p.user, data)

    resp = _submit(request, db, forms.PATIENT, act, form, ok_url="", ok_msg="Case created.", back_url="/cases",
                         back_label="Cases")
    if isinstance(resp, RedirectResponse) and "case" in created:
        return redirect(f"/cases/{created['case'].id}")
    return resp


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(request: Request, case_id: int, p: Principal = Depends(require("case.read")), db=Depends(get_db)):
    case = backend.get_case(db, p.user, case_id)
    ctx = views.case_context(case, p)
    from osteoplan.web.routers.jobs import case_jobs

    ctx.update(case_jobs(db, case_id))  # planning jobs and the plans' PDF reports
    from osteoplan.web.routers.verify import case_checks

    ctx.update(case_checks(db, case_id))  # control-CT checks per procedure (issue 13)
    from osteoplan.web.routers.adjust import case_plan_versions

    ctx["plan_versions"] = case_plan_versions(db, ctx["plans"], ctx.get("plan_reviews", set()))  # issue 12
    db.commit()
    return page(request, "case.html", ctx)


@router.get("/cases/{case_id}/plans/{plan_id}.png")
def plan_image(case_id: int, plan_id: int, p: Principal = Depends(require("case.read")), db=Depends(get_db)):
    case = backend.get_case(db, p.user, case_id)
    plan = backend.find_child(case, "plan", plan_id)
    if "plan" not in plan:  # pseudonymised view: plan geometry is not shown
        from starlette.exceptions import HTTPException
        raise HTTPException(404, "Plan details are not shown in the pseudonymised view.")
    png = views.plan_figure_png(plan["plan"])
    db.commit()
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


def _case_and_choices(db, p: Principal, case_id: int):
    case = backend.get_case(db, p.user, case_id)
    return case, views.choices_for(case)


@router.get("/cases/{case_id}/edit", response_class=HTMLResponse)
def case_edit_form(request: Request, case_id: int, p: Principal = Depends(require("case.edit")), db=Depends(get_db)):
    case = backend.get_case(db, p.user, case_id)
    values = forms.values_of(case, forms.PATIENT_EDIT)
    db.commit()
    return _form_response(request, forms.PATIENT_EDIT, back_url=f"/cases/{case_id}", back_label=f"Case {case['code']}",
                          values=values, version=case["version"], subtitle=case["code"])


@router.post("/cases/{case_id}/edit")
def case_edit(request: Request, case_id: int, p: Principal = Depends(require("case.edit")), form=Depends(form_data),
              db=Depends(get_db)):
    return _submit(request, db, forms.PATIENT_EDIT,
                         lambda d: backend.update_case(db, p.user, case_id, d, cleared={
                             k for k in form.keys() if isinstance(form.get(k), str) and not form.get(k).strip()}), form,
                         ok_url=f"/cases/{case_id}", ok_msg="Patient record saved.", back_url=f"/cases/{case_id}",
                         back_label="Case")


# The pathway steps share one shape: GET shows the form, POST saves it.
STEP_FORMS: dict[str, tuple[forms.FormSpec, str, str, Callable]] = {
    # slug: (spec, action, success message, backend function(db, actor, case_id, data))
    "lesions": (forms.LESION, "lesion.write", "Lesion saved.", lambda db, u, cid, d: backend.add_lesion(db, u, cid, d)),
    "decisions": (forms.DECISION, "rcp.write", "Tumour-board decision recorded (not yet validated).",
                  lambda db, u, cid, d: backend.record_decision(db, u, cid, d)),
    "consultations": (forms.CONSULTATION, "consultation.write", "Consultation saved.",
                      lambda db, u, cid, d: backend.record_consultation(db, u, cid, d)),
    "procedures": (forms.SCHEDULE, "procedure.schedule", "Procedure scheduled.",
                   lambda db, u, cid, d: backend.schedule_procedure(db, u, cid, d)),
    "follow-ups": (forms.FOLLOWUP, "followup.write", "Follow-up saved.",
                   lambda db, u, cid, d: backend.add_follow_up(db, u, cid, d)),
    "adverse-events": (forms.ADVERSE_EVENT, "adverse_event.write", "Adverse event recorded.",
                       lambda db, u, cid, d: backend.add_adverse_event(db, u, cid, d)),
}


def _register_step(slug: str, spec: forms.FormSpec, action: str, ok_msg: str, fn: Callable) -> None:
    def get_form(request: Request, case_id: int, p: Principal = Depends(require(action)), db=Depends(get_db)):
        case, choices = _case_and_choices(db, p, case_id)
        values = views.defaults_for(spec.key, case)
        # a worklist link may preset the form (e.g. ?procedure_id=3&timepoint=3m): only this form's select fields
        values.update({k: v[:40] for k, v in request.query_params.items()
                       if any(f.name == k and f.kind == "select" for f in spec.fields)})
        db.commit()
        return _form_response(request, spec, back_url=f"/cases/{case_id}", back_label=f"Case {case['code']}",
                              values=values, choices=choices, subtitle=case["code"])

    def post_form(request: Request, case_id: int, p: Principal = Depends(require(action)), form=Depends(form_data),
                  db=Depends(get_db)):
        case, choices = _case_and_choices(db, p, case_id)
        return _submit(request, db, spec, lambda d: fn(db, p.user, case_id, d), form, ok_url=f"/cases/{case_id}",
                             ok_msg=ok_msg, back_url=f"/cases/{case_id}", back_label=f"Case {case['code']}",
                             choices=choices, subtitle=case["code"])

    get_form.__name__ = f"{slug.replace('-', '_')}_form"
    post_form.__name__ = f"{slug.replace('-', '_')}_save"
    router.add_api_route(f"/cases/{{case_id}}/{slug}/new", get_form, methods=["GET"], response_class=HTMLResponse)
    router.add_api_route(f"/cases/{{case_id}}/{slug}/new", post_form, methods=["POST"])


for _slug, (_spec, _action, _msg, _fn) in STEP_FORMS.items():
    _register_step(_slug, _spec, _action, _msg, _fn)


_STEP_SPECS = {"lesions": forms.LESION, "decisions": forms.DECISION, "consultations": forms.CONSULTATION,
               "follow-ups": forms.FOLLOWUP, "adverse-events": forms.ADVERSE_EVENT}


def _register_edit(slug: str) -> None:
    entity, key, model_name, action = backend.EDITABLE_RECORDS[slug]
    from osteoplan.workflow import schemas

    model = getattr(schemas, model_name)
    spec = forms.edit_spec(_STEP_SPECS[slug], backend.editable_fields(entity), f"Edit {entity.replace('_', ' ')}")

    def get_form(request: Request, case_id: int, record_id: int, p: Principal = Depends(require(action)),
                 db=Depends(get_db)):
        case = backend.get_case(db, p.user, case_id)
        rec = backend.find_child(case, entity, record_id)
        db.commit()
        values = forms.values_of(rec, spec)
        return _form_response(request, spec, back_url=f"/cases/{case_id}", back_label=f"Case {case['code']}",
                              values=values, version=rec["version"], subtitle=f"{case['code']} · #{record_id}")

    def post_form(request: Request, case_id: int, record_id: int, p: Principal = Depends(require(action)),
                  form=Depends(form_data), db=Depends(get_db)):
        case = backend.get_case(db, p.user, case_id)
        backend.find_child(case, entity, record_id)

        def act(d):
            version = d.pop("__version__", None)
            changes = forms.coerce_changes(spec, d, model)
            backend.update_child(db, p.user, case_id, entity, record_id, changes, version)

        return _submit(request, db, spec, act, form, ok_url=f"/cases/{case_id}", ok_msg="Changes saved.",
                       back_url=f"/cases/{case_id}", back_label=f"Case {case['code']}", subtitle=case["code"])

    get_form.__name__ = f"{slug.replace('-', '_')}_edit_form"
    post_form.__name__ = f"{slug.replace('-', '_')}_edit_save"
    router.add_api_route(f"/cases/{{case_id}}/{slug}/{{record_id}}/edit", get_form, methods=["GET"],
                         response_class=HTMLResponse)
    router.add_api_route(f"/cases/{{case_id}}/{slug}/{{record_id}}/edit", post_form, methods=["POST"])


for _slug in backend.EDITABLE_RECORDS:
    _register_edit(_slug)


@router.post("/cases/{case_id}/decisions/{decision_id}/validate")
def decision_validate(request: Request, case_id: int, decision_id: int,
                      p: Principal = Depends(require("rcp.validate")), form=Depends(form_data), db=Depends(get_db)):
    version = _int_or_none(form.get("version"))
    backend.validate_decision(db, p.user, case_id, decision_id, version)
    db.commit()
    flash(request, "ok", f"Decision validated by {p.display_name}.")
    return redirect(f"/cases/{case_id}")


def _prefill_from_plan(case: dict, proc: dict, plan_id: int, values: dict) -> str:
    """Fill the procedure log form's *values* from saved plan *plan_id* (:func:`osteoplan.workflow.prefill.
    procedure_prefill`): the planned values fill the empty fields (and the type / levels of a procedure not yet
    logged); the side and the planned cement range go into empty notes. Returns the words for the form's title."""
    from osteoplan.workflow.prefill import procedure_form_values, procedure_prefill

    plan = backend.find_child(case, "plan", plan_id)
    if "plan" not in plan:
        return "plan details are not shown in the pseudonymised view"
    pre = procedure_prefill(plan["plan"])
    logged = proc.get("status") not in (None, "scheduled")
    for k, v in procedure_form_values(pre).items():
        if values.get(k) in (None, "", [], False) or (not logged and k in ("procedure_type", "levels_treated")):
            values[k] = v
    if not values.get("notes"):
        bits = [f"Planned (plan #{plan_id}): side {pre['side'] or 'not planned'}"]
        for i, sc in enumerate(pre["screws"], start=1):
            bits.append(f"screw {i} {sc['diameter_mm']:g} x {sc['length_mm']:g} mm"
                        + (" cannulated" if sc["cannulated"] else ""))
        if pre["trocar"]:
            bits.append(pre["trocar"])
        if pre["cement_per_level_ml"]:
            bits.append("PMMA " + "; ".join(f"{lv or 'level'} {lo:g}-{hi:g} mL"
                                            for lv, (lo, hi) in pre["cement_per_level_ml"].items()))
        values["notes"] = "; ".join(bits) + "."
    return f"pre-filled from plan #{plan_id} (planned values: check and edit before saving)"


def _procedure_step(slug: str, spec: forms.FormSpec, action: str, ok_msg: str, fn: Callable) -> None:
    def get_form(request: Request, case_id: int, procedure_id: int, p: Principal = Depends(require(action)),
                 db=Depends(get_db), plan_id: int | None = Query(None, ge=1)):
        case = backend.get_case(db, p.user, case_id)
        proc = backend.find_child(case, "procedure", procedure_id)
        values = forms.values_of(proc, spec)
        values.update({k: v for k, v in views.defaults_for(spec.key, case, proc).items() if not values.get(k)})
        subtitle = f"{case['code']} · procedure #{proc['id']}"
        if plan_id is not None and spec is forms.PROCEDURE_LOG:
            subtitle += " · " + _prefill_from_plan(case, proc, plan_id, values)
        db.commit()
        return _form_response(request, spec, back_url=f"/cases/{case_id}", back_label=f"Case {case['code']}",
                              values=values, version=proc["version"], subtitle=subtitle)

    def post_form(request: Request, case_id: int, procedure_id: int, p: Principal = Depends(require(action)),
                  form=Depends(form_data), db=Depends(get_db)):
        case = backend.get_case(db, p.user, case_id)
        backend.find_child(case, "procedure", procedure_id)
        return _submit(request, db, spec, lambda d: fn(db, p.user, case_id, procedure_id, d), form,
                             ok_url=f"/cases/{case_id}", ok_msg=ok_msg, back_url=f"/cases/{case_id}",
                             back_label=f"Case {case['code']}", subtitle=case["code"])

    get_form.__name__ = f"procedure_{slug}_form"
    post_form.__name__ = f"procedure_{slug}_save"
    router.add_api_route(f"/cases/{{case_id}}/procedures/{{procedure_id}}/{slug}", get_form, methods=["GET"],
                         response_class=HTMLResponse)
    router.add_api_route(f"/cases/{{case_id}}/procedures/{{procedure_id}}/{slug}", post_form, methods=["POST"])


_procedure_step("log", forms.PROCEDURE_LOG, "procedure.write", "Procedure logged.",
                lambda db, u, cid, pid, d: backend.log_procedure(db, u, cid, pid, d))
_procedure_step("postop", forms.POSTOP, "followup.write", "Post-operative course saved.",
                lambda db, u, cid, pid, d: backend.record_postop(db, u, cid, pid, d))


@router.get("/cases/{case_id}/lesions/{lesion_id}/plans/new", response_class=HTMLResponse)
def plan_upload_form(request: Request, case_id: int, lesion_id: int, p: Principal = Depends(require("lesion.write")),
                     db=Depends(get_db)):
    case = backend.get_case(db, p.user, case_id)
    lesion = backend.find_child(case, "lesion", lesion_id)
    db.commit()
    return page(request, "plan_upload.html", {"case": case, "lesion": lesion})


@router.post("/cases/{case_id}/lesions/{lesion_id}/plans/new")
def plan_upload(request: Request, case_id: int, lesion_id: int, p: Principal = Depends(require("lesion.write")),
                form=Depends(form_data), db=Depends(get_db)):
    upload = form.get("plan_file")
    label = str(form.get("label") or "plan")[:120]
    try:
        if upload is None or not hasattr(upload, "file"):
            raise ValidationError("choose the plan.json file written by the planner")
        content = upload.file.read(PLAN_MAX_BYTES + 1)
        if len(content) > PLAN_MAX_BYTES:
            raise ValidationError("the file is larger than 5 MB; a plan.json is a few kilobytes")
        backend.attach_plan(db, p.user, case_id, lesion_id, content, label)
        db.commit()
    except ValidationError as exc:
        db.rollback()
        case = backend.get_case(db, p.user, case_id)
        lesion = backend.find_child(case, "lesion", lesion_id)
        db.commit()
        return page(request, "plan_upload.html", {"case": case, "lesion": lesion, "error": str(exc),
                                                  "label": label}, status_code=422)
    flash(request, "ok", "Plan attached to the lesion.")
    return redirect(f"/cases/{case_id}")


@router.get("/cases/{case_id}/consultations/{consultation_id}/info-sheet.pdf")
def info_sheet(case_id: int, consultation_id: int, lang: str = Query("fr", pattern="^(fr|en)$"),
               p: Principal = Depends(require("infosheet.read")), db=Depends(get_db)):
    pdf = backend.info_sheet_pdf(db, p.user, case_id, consultation_id, lang)
    db.commit()
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="information-sheet-{lang}.pdf"',
                             "Cache-Control": "no-store"})


@router.get("/cases/{case_id}/fhir.json")
def fhir_export(case_id: int, p: Principal = Depends(require("fhir.export")), db=Depends(get_db)):
    bundle = backend.fhir_bundle(db, p.user, case_id)
    db.commit()
    return JSONResponse(bundle, media_type="application/fhir+json",
                        headers={"Content-Disposition": f'attachment; filename="case-{case_id}-fhir.json"',
                                 "Cache-Control": "no-store"})


@router.get("/cases/{case_id}/delete", response_class=HTMLResponse)
def case_delete_form(request: Request, case_id: int, p: Principal = Depends(require("case.delete")), db=Depends(get_db)):
    case = backend.get_case(db, p.user, case_id)
    db.commit()
    return _form_response(request, forms.DELETE, back_url=f"/cases/{case_id}", back_label=f"Case {case['code']}",
                          version=case["version"], subtitle=case["code"])


@router.post("/cases/{case_id}/delete")
def case_delete(request: Request, case_id: int, p: Principal = Depends(require("case.delete")), form=Depends(form_data),
                db=Depends(get_db)):
    return _submit(request, db, forms.DELETE, lambda d: backend.soft_delete_case(db, p.user, case_id, d), form,
                         ok_url="/cases", ok_msg="Case deleted (soft delete; kept in the database with the reason).",
                         back_url=f"/cases/{case_id}", back_label="Case")


# ------------------------------------------------------------------------------------------ statistics, audit
@router.get("/stats", response_class=HTMLResponse)
def stats_page(request: Request, year: int | None = Query(None, ge=1900, le=2200),
               p: Principal = Depends(require("stats.read")), db=Depends(get_db)):
    st = backend.statistics(db, p.user, year)
    db.commit()
    from osteoplan.workflow.models import PROCEDURE_TYPE_LABELS

    return page(request, "stats.html", {"stats": st, "year": year, "plots": views.PLOTS,
                                        "years": backend.available_years(db),
                                        "procedure_type_labels": PROCEDURE_TYPE_LABELS})


@router.get("/stats.csv")
def stats_csv(year: int | None = Query(None, ge=1900, le=2200), table: str = Query("procedures_per_year", max_length=40),
              p: Principal = Depends(require("stats.read")), db=Depends(get_db)):
    text = backend.statistics_csv(db, p.user, year, table)
    db.commit()
    suffix = f"-{year}" if year else ""
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{table}{suffix}.csv"'})


@router.get("/stats/{plot}.png")
def stats_plot(plot: str, year: int | None = Query(None, ge=1900, le=2200), p: Principal = Depends(require("stats.read")),
               db=Depends(get_db)):
    if plot not in views.PLOTS:
        from starlette.exceptions import HTTPException
        raise HTTPException(404, "No such plot.")
    st = backend.statistics(db, p.user, year)
    db.commit()
    return Response(backend.statistics_plot_png(st, plot), media_type="image/png")


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, page_no: int = Query(1, alias="page", ge=1), p: Principal = Depends(require("audit.read")),
               db=Depends(get_db)):
    rows, total = backend.audit_entries(db, p.user, 100, (page_no - 1) * 100)
    db.commit()
    return page(request, "audit.html", {"rows": rows, "total": total, "page_no": page_no, "pages": max(1, -(-total // 100))})


# ------------------------------------------------------------------------------------------ accounts
@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, p: Principal = Depends(require("user.admin")), db=Depends(get_db)):
    rows = backend.list_users(db, p.user)
    db.commit()
    return page(request, "users.html", {"rows": rows, "spec": forms.USER, "values": {"role": "radiologist"},
                                        "choices": {}, "version": None})


@router.post("/users")
def users_create(request: Request, p: Principal = Depends(require("user.admin")), form=Depends(form_data),
                 db=Depends(get_db)):
    data = forms.parse_form(forms.USER, form)
    try:
        backend.create_user(db, p.user, data.get("username", ""), data.get("password", ""), data.get("role", ""),
                            data.get("display_name") or "")
        db.commit()
    except ValidationError as exc:
        db.rollback()
        rows = backend.list_users(db, p.user)
        db.commit()
        values = {k: v for k, v in form.items() if k not in ("csrf_token", "password")}
        return page(request, "users.html", {"rows": rows, "spec": forms.USER, "values": values, "choices": {},
                                            "version": None, "error": str(exc)}, status_code=422)
    flash(request, "ok", "Account created.")
    return redirect("/users")


# ------------------------------------------------------------------------------------------ worklist (issue 15)
from osteoplan.web.routers import worklist as _worklist  # noqa: E402

router.include_router(_worklist.router)
