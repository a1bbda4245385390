"""The worklist (issue 15): what is due and overdue per role, on a frozen clock; board rules; reminder exports."""

from __future__ import annotations

import datetime as dt

import pytest

from osteoplan.errors import PermissionDeniedError, ValidationError
from osteoplan.workflow import models as m
from osteoplan.workflow import service as sv
from osteoplan.workflow import worklist as wl

from .conftest import C2_LOG, D, make_case


def _items(session, actor, today, **kw):
    return wl.worklist(session, actor, today=today, **kw)["items"]


def _kinds(items, case_id):
    return sorted(i["kind"] for i in items if i["case_id"] == case_id)


def test_3_month_follow_up_overdue_the_day_after_it_is_due_then_cleared(session, users):
    ids = make_case(session, users, log=C2_LOG)  # procedure done 2025-03-14
    coord = users["coord"]
    for tp, day in (("day1", 1), ("1m", 30)):
        sv.record_follow_up(session, users["rad"], {"procedure_id": ids["procedure"], "timepoint": tp,
                                                    "visit_date": D(2025, 3, 14) + dt.timedelta(days=day)})
    session.commit()
    due = D(2025, 6, 13)  # 2025-03-14 + 91 days (hand count: 17 + 30 + 31 + 13)
    assert D(2025, 3, 14) + dt.timedelta(days=m.TIMEPOINT_DAYS["3m"]) == due

    def three_m(today):
        return [i for i in _items(session, coord, today) if i["case_id"] == ids["patient"]
                and i["kind"] == "follow_up" and "3m" in i["detail"]]

    assert three_m(due - dt.timedelta(days=15)) == []  # the 14-day window is not open yet
    [on_day] = three_m(due)
    assert on_day["status"] == "due" and on_day["due_date"] == "2025-06-13" and on_day["days_overdue"] == 0
    [late] = three_m(due + dt.timedelta(days=1))
    assert late["status"] == "overdue" and late["days_overdue"] == 1
    assert late["link"] == f"/cases/{ids['patient']}/follow-ups/new?procedure_id={ids['procedure']}&timepoint=3m"
    assert late["procedure_type"] == "c2_screw" and late["operators"] == ["Dr rad"]
    assert late["stage"] == "followed"
    # the overdue item is on the coordinator's filtered views too
    assert len([i for i in _items(session, coord, due + dt.timedelta(days=1), overdue_only=True,
                                  procedure_type="c2_screw", operator="RAD") if i["case_id"] == ids["patient"]]) == 1
    assert [i for i in _items(session, coord, due + dt.timedelta(days=1), operator="nobody")] == []
    sv.record_follow_up(session, users["rad"], {"procedure_id": ids["procedure"], "timepoint": "3m",
                                                "visit_date": due + dt.timedelta(days=1), "pain_nrs": 2})
    session.commit()
    assert three_m(due + dt.timedelta(days=1)) == []
    # the next one (6 months, due 2025-09-12) opens 14 days before
    nxt = [i for i in _items(session, coord, D(2025, 8, 29)) if i["case_id"] == ids["patient"]]
    assert [(i["kind"], i["due_date"]) for i in nxt] == [("follow_up", "2025-09-12")]


def test_missed_timepoint_gives_way_to_the_next_and_death_stops_follow_up(session, users):
    ids = make_case(session, users, log=C2_LOG)
    coord = users["coord"]
    # 1m due 2025-04-13: overdue on 2025-05-01; replaced by the 3m item once the 3m window opens (2025-05-30)
    assert [i["detail"][:2] for i in _items(session, coord, D(2025, 5, 1)) if i["kind"] == "follow_up"] == ["1m"]
    assert [i["detail"][:2] for i in _items(session, coord, D(2025, 6, 1)) if i["kind"] == "follow_up"] == ["3m"]
    sv.record_death(session, users["rad"], ids["patient"], D(2025, 5, 20))
    session.commit()
    assert _items(session, coord, D(2025, 6, 1)) == []


def test_pathway_items_per_role_and_what_clears_them(session, users):
    rad, board, coord = users["rad"], users["board"], users["coord"]
    today = D(2025, 3, 20)
    p = sv.create_patient(session, coord, {"primary_cancer": "lung"})
    sv.add_lesion(session, coord, {"patient_id": p.id, "site_kind": "bone", "site": "femur", "lesion_type": "lytic"})
    session.commit()
    assert _kinds(_items(session, coord, today), p.id) == ["board"]
    assert _kinds(_items(session, board, today), p.id) == ["board"]
    assert _kinds(_items(session, rad, today), p.id) == []
    d = sv.record_decision(session, rad, {"patient_id": p.id, "meeting_date": D(2025, 3, 18), "question": "fix?",
                                          "decision_type": "screw_cement", "lesion_id": p.lesions[0].id})
    session.commit()
    assert _kinds(_items(session, coord, today), p.id) == []
    assert _kinds(_items(session, board, today), p.id) == ["validate"]
    assert _kinds(_items(session, rad, today), p.id) == []  # the proposer is never asked to validate
    [v] = [i for i in _items(session, board, today) if i["case_id"] == p.id]
    assert v["link"] == f"/cases/{p.id}#decision-{d.id}" and v["status"] == "overdue"  # meeting 2 days ago
    sv.validate_decision(session, board, d.id, at=dt.datetime(2025, 3, 18, 18, tzinfo=dt.timezone.utc))
    session.commit()
    [c] = [i for i in _items(session, coord, today) if i["case_id"] == p.id]
    assert (c["kind"], c["procedure_type"], c["due_date"]) == ("consultation", "pelvic_femoral_screw_cement",
                                                                "2025-04-01")
    sv.record_consultation(session, coord, {"patient_id": p.id, "decision_id": d.id,
                                            "consultation_date": D(2025, 3, 19), "consent_obtained": True})
    session.commit()
    assert _kinds(_items(session, coord, today), p.id) == ["schedule"]
    x = sv.schedule_procedure(session, coord, {"decision_id": d.id, "scheduled_date": D(2025, 3, 25)})
    session.commit()
    assert x.procedure_type == "pelvic_femoral_screw_cement"
    assert _kinds(_items(session, coord, today), p.id) == []
    assert _kinds(_items(session, rad, D(2025, 3, 24)), p.id) == []
    assert _kinds(_items(session, rad, D(2025, 3, 25)), p.id) == ["log"]
    sv.log_procedure(session, rad, x.id, {"procedure_date": D(2025, 3, 25), "cement_volume_ml": 12.0,
                                          "screws": [{"diameter_mm": 6.5, "length_mm": 90}]})
    session.commit()
    assert _kinds(_items(session, rad, D(2025, 3, 26)), p.id) == ["post_op"]
    a = sv.record_adverse_event(session, rad, {"procedure_id": x.id, "event_date": D(2025, 3, 25), "grade": "3",
                                               "description": "leak, symptomatic", "grade_status": "provisional"})
    session.commit()
    assert _kinds(_items(session, rad, D(2025, 3, 26)), p.id) == ["grade", "post_op"]
    assert _kinds(_items(session, coord, D(2025, 3, 26)), p.id) == ["post_op"]  # grading is the radiologist's
    sv.update_record(session, rad, "adverse_event", a.id, {"grade_status": "final"}, expected_version=a.version)
    sv.record_follow_up(session, rad, {"procedure_id": x.id, "timepoint": "day1", "visit_date": D(2025, 3, 26)})
    session.commit()
    assert _kinds(_items(session, rad, D(2025, 3, 26)), p.id) == []


def test_filters_sort_counts_and_audit(session, users):
    coord = users["coord"]
    a = make_case(session, users, log=C2_LOG)
    b = make_case(session, users, meeting=D(2025, 4, 1), site="femur", kind="bone", log={"cement_volume_ml": 10.0})
    res = wl.worklist(session, coord, today=D(2025, 7, 1), sort="due_date")
    dues = [i["due_date"] for i in res["items"]]
    assert dues == sorted(dues) and len(dues) >= 2
    assert res["counts"]["follow_up"]["overdue"] + res["counts"]["follow_up"]["due"] == len(
        [i for i in res["items"] if i["kind"] == "follow_up"])
    only_b = wl.worklist(session, coord, today=D(2025, 7, 1), procedure_type="long_bone_cementoplasty")["items"]
    assert {i["case_id"] for i in only_b} == {b["patient"]}
    window = wl.worklist(session, coord, today=D(2025, 7, 1), date_from=D(2025, 6, 1), date_to=D(2025, 6, 30))
    assert all("2025-06-01" <= i["due_date"] <= "2025-06-30" for i in window["items"]) and window["items"]
    assert {i["case_id"] for i in wl.worklist(session, coord, today=D(2025, 7, 1), stage="done")["items"]} == {
        a["patient"], b["patient"]}
    n = session.query(m.AuditLog).filter_by(entity="worklist").count()
    assert n == 4  # four reads above, each logged once
    with pytest.raises(PermissionDeniedError):
        wl.worklist(session, users["res"], today=D(2025, 7, 1))
    with pytest.raises(ValidationError, match="sort by"):
        wl.worklist(session, coord, today=D(2025, 7, 1), sort="name")


def test_ical_and_csv_exports(session, users):
    ids = make_case(session, users, log=C2_LOG)
    items = _items(session, users["coord"], D(2025, 7, 1))
    for it in items:
        it["detail"] += "; with, commas\nand a line — é"
    ics = wl.to_ical(items, "https://ir.example", now=dt.datetime(2025, 7, 1, 8, tzinfo=dt.timezone.utc))
    raw = ics.encode("utf-8")
    assert raw.startswith(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n") and raw.endswith(b"END:VCALENDAR\r\n")
    lines = raw.split(b"\r\n")[:-1]
    assert all(len(x) <= 75 for x in lines) and b"\n" not in raw.replace(b"\r\n", b"")
    unfolded = ics.replace("\r\n ", "")
    assert unfolded.count("BEGIN:VEVENT") == len(items) > 0
    assert "\\; with\\, commas\\nand a line — é" in unfolded
    assert "DTSTART;VALUE=DATE:20250613" in unfolded and "DTEND;VALUE=DATE:20250614" in unfolded  # 3m: +91 d
    assert f"URL:https://ir.example/cases/{ids['patient']}/follow-ups/new" in unfolded
    assert "Dupont" not in ics and "Jeanne" not in ics
    text = wl.to_csv(items)
    assert text.splitlines()[0] == ",".join(wl.CSV_COLUMNS) and "Dupont" not in text


def test_config_from_environment(monkeypatch):
    monkeypatch.setenv("OSTEOPLAN_FOLLOWUP_TIMEPOINTS", "3m:90,1m")
    monkeypatch.setenv("OSTEOPLAN_FOLLOWUP_GRACE_DAYS", "7")
    cfg = wl.WorklistConfig.from_env()
    assert cfg.follow_up_timepoints == ("1m", "3m") and cfg.due_days["3m"] == 90 and cfg.overdue_after_days == 7
    monkeypatch.setenv("OSTEOPLAN_FOLLOWUP_TIMEPOINTS", "2m")
    with pytest.raises(ValidationError, match="not one of"):
        wl.WorklistConfig.from_env()


# ------------------------------------------------------------------------------------------- board rules
def test_proposer_never_validates_and_quorum(session, users):
    rad, board, admin = users["rad"], users["board"], users["admin"]
    ids = make_case(session, users, validate=False)  # proposed by rad
    with pytest.raises(PermissionDeniedError, match="you proposed this decision"):
        sv.validate_decision(session, rad, ids["decision"])
    rad2 = sv.create_user(session, admin, {"username": "rad2", "password": "rad2-password", "role": "radiologist"},
                          rounds=4)
    session.commit()
    rules = sv.BoardRules(quorum=2)
    d = sv.validate_decision(session, board, ids["decision"], rules=rules)
    session.commit()
    assert not d.is_validated and len(d.validations) == 1
    with pytest.raises(ValidationError, match="already validated this decision"):
        sv.validate_decision(session, board, ids["decision"], rules=rules)
    d = sv.validate_decision(session, rad2, ids["decision"], rules=rules)
    session.commit()
    assert d.is_validated and d.validated_by_id == rad2.id and d.proposed_by_id == rad.id
    view = sv.get_case(session, admin, ids["patient"])["decisions"][0]
    assert view["proposed_by"] == "Dr rad" and [v["by"] for v in view["validations"]] == ["Dr board", "rad2"]
    assert sv.get_case(session, users["res"], ids["patient"])["decisions"][0]["proposed_by"] is None


def test_validating_roles_are_configurable(session, users, monkeypatch):
    ids = make_case(session, users, validate=False)
    with pytest.raises(PermissionDeniedError, match="named physician"):
        sv.validate_decision(session, users["coord"], ids["decision"])
    monkeypatch.setenv("OSTEOPLAN_BOARD_VALIDATING_ROLES", "tumour_board,coordinator")
    d = sv.validate_decision(session, users["coord"], ids["decision"])
    assert d.is_validated
    with pytest.raises(ValidationError):
        sv.BoardRules(quorum=0)
    with pytest.raises(ValidationError, match="research"):
        sv.BoardRules(validating_roles=("research",))
