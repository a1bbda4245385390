"""The worklist pages (issue 15): ``/worklist`` (the home page of clinical roles), its CSV and iCalendar exports; the
annual activity report (PDF) of the statistics page.

Filters travel in the query string: they hold no patient data (kinds, stage, procedure type, staff operator,
dates). The day is the server's UTC date, or ``app.state.clock()`` when a test sets one.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from osteoplan.web import backend, views
from osteoplan.web.app import render
from osteoplan.web.auth import Principal, get_db, require

router = APIRouter(include_in_schema=False)
#: Rows shown on the page (the counts and the exports cover every item); a project default for a readable page.
MAX_ROWS = 200


def _today(request: Request) -> dt.date | None:
    clock = getattr(request.app.state, "clock", None)
    return clock() if callable(clock) else None


def _filters(request: Request, p: Principal, kind: list[str] | None, stage: str | None, procedure_type: str | None,
             operator: str | None, date_from: dt.date | None, date_to: dt.date | None, overdue: bool, sort: str,
             desc: bool, role: str | None) -> dict:
    return {"role": role if (role and p.role == "admin") else None, "today": _today(request),
            "kinds": [k for k in (kind or []) if k] or None, "stage": stage or None,
            "procedure_type": procedure_type or None, "operator": (operator or "").strip()[:80] or None,
            "date_from": date_from, "date_to": date_to, "overdue_only": overdue, "sort": sort, "descending": desc}


@router.get("/worklist", response_class=HTMLResponse)
def worklist_page(request: Request, kind: list[str] | None = Query(None), stage: str | None = Query(None, max_length=20),
                  procedure_type: str | None = Query(None, max_length=40),
                  operator: str | None = Query(None, max_length=80), date_from: dt.date | None = Query(None),
                  date_to: dt.date | None = Query(None), overdue: bool = Query(False),
                  sort: str = Query("due_date", max_length=20), desc: bool = Query(False),
                  role: str | None = Query(None, max_length=20),
                  p: Principal = Depends(require("worklist.read")), db=Depends(get_db)):
    """The role's open items with counts per kind (due / overdue), filters, sort and the reminder exports."""
    f = _filters(request, p, kind, stage, procedure_type, operator, date_from, date_to, overdue, sort, desc, role)
    res = backend.worklist(db, p.user, **f)
    db.commit()
    voc = backend.worklist_vocabularies()
    query = request.url.query
    shown = res["items"][:MAX_ROWS]
    ctx = {"wl": res, "shown": shown, "max_rows": MAX_ROWS, "f": f, "voc": voc, "query": query, "kind_sel": set(f["kinds"] or []),
           "stage_labels": views.STAGE_LABELS, "role_kinds": list(res["counts"])}
    return render(request, "worklist.html", {**ctx, "messages": request.session.pop("flash", []) or []})


def _export(request: Request, fmt: str, p: Principal, db, f: dict) -> Response:
    res = backend.worklist(db, p.user, **f, reason=f"worklist export ({fmt})")
    db.commit()
    base = str(request.base_url).rstrip("/")
    text = backend.worklist_export(res, fmt, base)
    media = "text/csv; charset=utf-8" if fmt == "csv" else "text/calendar; charset=utf-8"
    name = f"worklist-{res['role']}-{res['today']}.{fmt}"
    return Response(text, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"',
                                                     "Cache-Control": "no-store"})


@router.get("/worklist.csv")
def worklist_csv(request: Request, kind: list[str] | None = Query(None), stage: str | None = Query(None, max_length=20),
                 procedure_type: str | None = Query(None, max_length=40),
                 operator: str | None = Query(None, max_length=80), date_from: dt.date | None = Query(None),
                 date_to: dt.date | None = Query(None), overdue: bool = Query(False),
                 sort: str = Query("due_date", max_length=20), desc: bool = Query(False),
                 role: str | None = Query(None, max_length=20),
                 p: Principal = Depends(require("worklist.read")), db=Depends(get_db)):
    """The (filtered) worklist as CSV."""
    return _export(request, "csv", p, db, _filters(request, p, kind, stage, procedure_type, operator, date_from,
                                                   date_to, overdue, sort, desc, role))


@router.get("/worklist.ics")
def worklist_ics(request: Request, kind: list[str] | None = Query(None), stage: str | None = Query(None, max_length=20),
                 procedure_type: str | None = Query(None, max_length=40),
                 operator: str | None = Query(None, max_length=80), date_from: dt.date | None = Query(None),
                 date_to: dt.date | None = Query(None), overdue: bool = Query(False),
                 sort: str = Query("due_date", max_length=20), desc: bool = Query(False),
                 role: str | None = Query(None, max_length=20),
                 p: Principal = Depends(require("worklist.read")), db=Depends(get_db)):
    """The (filtered) worklist as an iCalendar file of reminders (one all-day event per item on its due date)."""
    return _export(request, "ics", p, db, _filters(request, p, kind, stage, procedure_type, operator, date_from,
                                                   date_to, overdue, sort, desc, role))


@router.get("/stats/annual-report.pdf")
def annual_report(year: int | None = Query(None, ge=1900, le=2200), p: Principal = Depends(require("stats.read")),
                  db=Depends(get_db)):
    """The team's annual activity report (PDF, aggregates only) of *year* (default: the latest year with a
    procedure, else last year)."""
    if year is None:
        years = backend.available_years(db)
        year = max(years) if years else dt.date.today().year - 1
    pdf = backend.annual_report_pdf(db, p.user, year)
    db.commit()
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="activity-report-{year}.pdf"',
                             "Cache-Control": "no-store"})
