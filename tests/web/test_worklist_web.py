"""Worklist pages, board rules and case-list filters on the web (issue 15), on a frozen clock (``app.state.clock``)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from .conftest import csrf_of, make_case


@pytest.fixture()
def frozen(app):
    """Freeze the worklist's day: ``frozen(date)``; restored after the test."""
    def set_(day: dt.date):
        app.state.clock = lambda: day
    yield set_
    app.state.clock = None


def _rows(html: str, case_id: int) -> list[str]:
    return [r for r in re.findall(r'<tr class="wl-item[^"]*".*?</tr>', html, re.S) if f'href="/cases/{case_id}"' in r]


def test_coordinator_sees_overdue_3_month_follow_up_and_clears_it(client_for, engine, frozen):
    ids = make_case(engine, through="done")  # procedure done 190 days ago, no follow-up at all
    pdate = dt.date.today() - dt.timedelta(days=190)
    frozen(pdate + dt.timedelta(days=92))  # 3m due on day 91: overdue by one day
    c = client_for("coordinator")
    r = c.get("/")
    assert r.status_code == 200 and r.url.path == "/worklist"
    rows = _rows(r.text, ids["case"])
    [row] = [x for x in rows if "3m follow-up" in x]
    assert "overdue 1 d" in row and (pdate + dt.timedelta(days=91)).isoformat() in row
    assert re.search(r'id="count-follow_up".*?(\d+) overdue', r.text, re.S)
    link = re.search(r'href="(/cases/\d+/follow-ups/new\?procedure_id=\d+&amp;timepoint=3m)"', row).group(1)
    form = c.get(link.replace("&amp;", "&"))
    assert form.status_code == 200
    assert re.search(r'<option value="3m"[^>]*selected', form.text)
    r = c.post(f"/cases/{ids['case']}/follow-ups/new", data={
        "csrf_token": csrf_of(c), "procedure_id": str(ids["procedure"]), "timepoint": "3m",
        "visit_date": (pdate + dt.timedelta(days=92)).isoformat(), "pain_nrs": "2"}, follow_redirects=False)
    assert r.status_code == 303, r.text[:400]
    assert [x for x in _rows(c.get("/worklist").text, ids["case"]) if "3m follow-up" in x] == []
    # the reminder exports carry the remaining items, case codes only
    ics = c.get("/worklist.ics?kind=follow_up")
    assert ics.status_code == 200 and ics.headers["content-type"].startswith("text/calendar")
    assert "BEGIN:VCALENDAR" in ics.text and "Testname" not in ics.text
    csv = c.get("/worklist.csv?overdue=true")
    assert csv.status_code == 200 and csv.text.startswith("status,due_date")


def test_worklist_filters_and_roles(client_for, engine, frozen):
    ids = make_case(engine, through="done", lesion_site="T7")
    frozen(dt.date.today())
    c = client_for("coordinator")
    assert c.get("/worklist?procedure_type=kyphoplasty").text.count(f'href="/cases/{ids["case"]}"') == 0
    assert c.get("/worklist?sort=nonsense").status_code == 422
    assert client_for("research").get("/worklist").status_code == 403
    assert client_for("research").get("/worklist.ics").status_code == 403
    assert client_for("research").get("/", follow_redirects=False).headers["location"] == "/cases"


def test_proposer_cannot_validate_own_decision(client_for, engine):
    ids = make_case(engine, through="lesion")
    rad = client_for("radiologist")
    r = rad.post(f"/cases/{ids['case']}/decisions/new", data={
        "csrf_token": csrf_of(rad), "meeting_date": (dt.date.today() - dt.timedelta(days=3)).isoformat(),
        "question": "consolidate?", "decision_type": "cement_alone", "lesion_id": str(ids["lesion"])},
        follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    page = rad.get(f"/cases/{ids['case']}").text
    did = int(re.findall(r'id="decision-(\d+)"', page)[-1])
    assert "you proposed it: another board member validates it" in page  # no validate button for the proposer
    board = client_for("tumour_board")
    version = re.search(rf'/decisions/{did}/validate".*?name="version" value="(\d+)"',
                        board.get(f"/cases/{ids['case']}").text, re.S).group(1)
    r = rad.post(f"/cases/{ids['case']}/decisions/{did}/validate", data={"csrf_token": csrf_of(rad),
                                                                         "version": version})
    assert r.status_code == 403
    assert "you proposed this decision: another board member must validate it" in r.text
    assert "Not allowed" in r.text
    r = board.post(f"/cases/{ids['case']}/decisions/{did}/validate", data={"csrf_token": csrf_of(board),
                                                                           "version": version}, follow_redirects=False)
    assert r.status_code == 303
    text = re.sub(r"\s+", " ", board.get(f"/cases/{ids['case']}").text)
    assert "Proposed by Dr Radiologist · validated by Dr Tumour_Board" in text


def test_case_list_filters_and_keyset_paging(client_for, engine):
    a = make_case(engine, through="done", lesion_site="L3", code="FILT-L3")
    make_case(engine, through="validated", lesion_site="T11", code="FILT-T11")
    c = client_for("coordinator")
    r = c.get("/cases?site=l3&procedure_type=vertebral_screw_cement&stage=done")  # make_case logs a screw + cement
    assert r.status_code == 200 and "FILT-L3" in r.text and "FILT-T11" not in r.text
    r = c.get("/cases?site=T11&stage=rcp_validated")
    assert "FILT-T11" in r.text and "FILT-L3" not in r.text
    d = (dt.date.today() - dt.timedelta(days=190)).isoformat()
    assert "FILT-L3" in c.get(f"/cases?date_from={d}&date_to={d}&site=L3").text
    assert c.get("/cases?date_from=yesterday").status_code == 422
    assert c.get("/cases?procedure_type=osteotomy").status_code == 422
    # keyset: the "older" link continues after the last case shown
    first = c.get("/cases").text
    older = re.search(r'href="(/cases\?before=\d+&amp;page=2)"', first)
    if older:  # more than one page in this shared database
        nxt = c.get(older.group(1).replace("&amp;", "&")).text
        ids1 = re.findall(r'<td><a href="/cases/(\d+)">', first)
        ids2 = re.findall(r'<td><a href="/cases/(\d+)">', nxt)
        assert ids2 and int(ids2[0]) < int(ids1[-1]) and not set(ids1) & set(ids2)
    assert a["case"]


@pytest.mark.slow  # renders the PDF (WeasyPrint)
def test_statistics_page_plots_and_annual_report(client_for, engine):
    make_case(engine, through="followup")
    c = client_for("coordinator")
    year = (dt.date.today() - dt.timedelta(days=190)).year
    page = c.get(f"/stats?year={year}").text
    assert f'href="/stats/annual-report.pdf?year={year}"' in page and "Activity per year by procedure type" in page
    png = c.get(f"/stats/activity_by_type.png?year={year}")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    pdf = c.get(f"/stats/annual-report.pdf?year={year}")
    if pdf.status_code == 422 and "WeasyPrint" in pdf.text:
        pytest.skip("WeasyPrint is not installed")
    assert pdf.status_code == 200 and pdf.content[:5] == b"%PDF-"
    assert client_for(None).get(f"/stats/annual-report.pdf?year={year}", follow_redirects=False).status_code == 303
