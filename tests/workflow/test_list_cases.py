"""The case list's narrow queries give exactly the rows computed from fully loaded cases (review of issue 7)."""

from __future__ import annotations

import pytest

from osteoplan.workflow import models as m
from osteoplan.workflow import service as sv

from .conftest import C2_LOG, D, make_case


def _reference(session, pseudo, *, stage=None):
    """Rows from the ORM objects with every child table loaded (the previous implementation)."""
    pats = session.scalars(sv._case_query().where(m.Patient.deleted_at.is_(None)).order_by(m.Patient.id.desc()))
    rows = [sv.case_summary(p, pseudo) for p in pats]
    return [r for r in rows if stage is None or r["stage"] == stage]


@pytest.fixture
def registry(session, users):
    from osteoplan.workflow.demo import generate_demo_data

    generate_demo_data(session, n_cases=40, year=2025, seed=7, rounds=4)
    session.commit()
    a = make_case(session, users, log=C2_LOG)  # done, identity "Dupont Jeanne"
    b = make_case(session, users, meeting=D(2025, 5, 2), site="T8", decision="cement_alone", validate=False)
    make_case(session, users, site="femur", kind="bone", decision="radiotherapy", consult=False, schedule=False,
              identity=False)
    # soft-deleted children must not count: a's only procedure, b's decision
    sv.soft_delete(session, users["rad"], "procedure", a["procedure"], "entered on the wrong case")
    sv.soft_delete(session, users["board"], "decision", b["decision"], "duplicate")
    session.commit()
    return a, b


def test_list_rows_equal_fully_loaded_rows(session, users, registry):
    a, b = registry
    session.expire_all()
    for role in ("rad", "res"):
        actor = users[role]
        pseudo = role == "res"
        ref = _reference(session, pseudo)
        assert len(ref) == 43
        got = sv.list_cases(session, actor, limit=500)
        assert got["total"] == 43 and got["items"] == ref
        page = sv.list_cases(session, actor, limit=10, offset=30)
        assert page["items"] == ref[30:40]
        for stage in ("followed", "done", "rcp_validated", "rcp_pending", "referred", "consulted"):
            want = _reference(session, pseudo, stage=stage)
            res = sv.list_cases(session, actor, stage=stage, limit=500)
            assert (res["total"], res["items"]) == (len(want), want), stage
    rows = {r["id"]: r for r in sv.list_cases(session, users["rad"], limit=500)["items"]}
    # a's procedure was soft-deleted: back to "consulted" with no procedure; b's only decision deleted: referred
    assert (rows[a["patient"]]["stage"], rows[a["patient"]]["procedures"]) == ("consulted", 0)
    assert (rows[b["patient"]]["stage"], rows[b["patient"]]["last_decision"]) == ("referred", None)
    assert rows[a["patient"]]["display_name"] == "Dupont Jeanne"
    assert all("display_name" not in r for r in sv.list_cases(session, users["res"], limit=500)["items"])


def test_search_wildcards_are_literal_and_deleted_lesions_ignored(session, users, registry):
    a, b = registry
    # "%" and "_" are not LIKE wildcards in a search
    assert sv.list_cases(session, users["res"], search="%")["total"] == 0
    assert sv.list_cases(session, users["rad"], search="_")["total"] == 0
    assert b["patient"] in [r["id"] for r in sv.list_cases(session, users["rad"], search="T8")["items"]]
    sv.soft_delete(session, users["rad"], "lesion", b["lesion"], "wrong level")
    session.commit()
    for role in ("rad", "res"):
        assert b["patient"] not in [r["id"] for r in sv.list_cases(session, users[role], search="T8")["items"]]
    assert a["patient"] in [r["id"] for r in sv.list_cases(session, users["rad"], search="dupont")["items"]]
    assert sv.list_cases(session, users["res"], search="dupont")["total"] == 0  # no identity search for research


def test_filters_equal_a_python_pass_over_loaded_cases_and_keyset_pages(session, users, registry):
    """Each case-list filter (issue 15) gives exactly the cases a Python pass over fully loaded cases selects;
    walking the keyset pages gives the whole list once, in order."""
    pats = list(session.scalars(sv._case_query().where(m.Patient.deleted_at.is_(None)).order_by(m.Patient.id.desc())))
    live = lambda rows: [r for r in rows if r.deleted_at is None]  # noqa: E731
    procs = {p.id: [x for x in live(p.procedures) if x.status != "cancelled"] for p in pats}
    checks = {
        "procedure_type": ("vertebroplasty", lambda p: any(x.procedure_type == "vertebroplasty" for x in procs[p.id])),
        "site": ("c2", lambda p: any(x.site == "C2" for x in live(p.lesions))),
        "operator": ("fellow", lambda p: any("fellow" in o.lower() for x in procs[p.id] for o in x.operators)),
    }
    for key, (value, pred) in checks.items():
        want = [p.id for p in pats if pred(p)]
        got = sv.list_cases(session, users["rad"], limit=500, **{key: value})
        assert [r["id"] for r in got["items"]] == want and got["total"] == len(want) and want, key
    lo, hi = D(2025, 5, 1), D(2025, 8, 31)
    want = [p.id for p in pats if any(lo <= (x.procedure_date or x.scheduled_date) <= hi for x in procs[p.id])]
    got = sv.list_cases(session, users["rad"], limit=500, date_from=lo, date_to=hi)
    assert [r["id"] for r in got["items"]] == want and want
    want = [p.id for p in pats if any(lo <= d.meeting.meeting_date <= hi for d in live(p.decisions))]
    got = sv.list_cases(session, users["rad"], limit=500, date_from=lo, date_to=hi, date_kind="board")
    assert [r["id"] for r in got["items"]] == want and want
    # keyset pages of 7: every case once, newest first
    seen, before = [], None
    while True:
        page = sv.list_cases(session, users["res"], limit=7, before_id=before, with_total=False)
        seen += [r["id"] for r in page["items"]]
        before = page["next_before_id"]
        if before is None:
            break
    assert seen == [p.id for p in pats]
    with pytest.raises(sv.ValidationError, match="procedure type"):
        sv.list_cases(session, users["rad"], procedure_type="osteotomy")
