"""Control-CT checks stored with their procedure (issue 13): service rules, audit, and the statistics page's
accuracy tables against medians and 95th percentiles computed by hand."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from osteoplan.errors import NotFoundError, PermissionDeniedError, ValidationError
from osteoplan.workflow import models as m
from osteoplan.workflow import service as sv
from osteoplan.workflow import stats

from .conftest import C2_LOG, D, make_case

SOURCE = "Gertzbein SD, Robbins SE. Spine 1990;15(1):11-14 - adapted to the dens screw, not validated for it"


def result(stage="screw", tip_to_plan=1.0, angle=2.0, offset=1.5, entry=None, tip=None, angle_err=None, grade="A",
           breach=0.0):
    """A result shaped like ``osteoplan verify --json`` (only the fields the registry reads, plus a few more)."""
    r = {"stage": stage, "tip_lps_mm": [1.5, -20.25, -170.0], "tip_to_plan_mm": tip_to_plan,
         "angle_to_plan_deg": angle, "tip_to_target_mm": 4.0, "lateral_offset_at_target_mm": offset,
         "registration": {"residual_median_mm": 0.15, "surface_overlap": 0.97, "trusted": True},
         "instrument": {"diameter_mm": 2.0, "visible_length_mm": 80.0}, "clearances": [], "notes": []}
    if stage == "screw":
        r["postop"] = {"entry_error_mm": entry, "tip_error_mm": tip, "angle_error_deg": angle_err,
                       "max_breach_mm": None if grade is None else breach,
                       "breach_where": "12.0 mm from the tip, on the left side of the screw" if breach else None,
                       "grade": grade, "grade_source": SOURCE}
        if grade is None:
            r["postop"]["breach_note"] = "the vertebra was not segmented in the plan folder: breach not assessed"
    return r


def _case_with_plan(session, users, **kw):
    ids = make_case(session, users, **kw)
    ids["plan"] = sv.attach_plan(session, users["rad"], {"lesion_id": ids["lesion"], "plan": {"best": None}}).id
    session.commit()
    return ids


def test_record_reads_the_figures_and_is_audited(session, users):
    ids = _case_with_plan(session, users, log=C2_LOG)
    v = sv.record_verification(session, users["rad"], {
        "procedure_id": ids["procedure"], "saved_plan_id": ids["plan"], "control_source": "upload",
        "result": result(entry=1.25, tip=0.75, angle_err=3.5, grade="B", breach=1.4)})
    session.commit()
    assert (v.stage, v.entry_error_mm, v.tip_error_mm, v.angle_error_deg) == ("screw", 1.25, 0.75, 3.5)
    assert (v.outside_cortex_mm, v.breach_grade, v.breach_grade_source) == (1.4, "B", SOURCE)
    assert v.outside_cortex_where.startswith("12.0 mm from the tip")
    assert (v.tip_lps_mm, v.registration_residual_median_mm, v.instrument_diameter_mm) == (
        [1.5, -20.25, -170.0], 0.15, 2.0)
    assert (v.measured_by, v.patient_id, v.figures["registration"]["trusted"]) == ("rad", ids["patient"], True)
    log = session.scalars(select(m.AuditLog).where(m.AuditLog.entity == "verification")).all()
    assert [(a.action, a.entity_id, a.patient_id, a.username) for a in log] == [
        ("create", v.id, ids["patient"], "rad")]
    assert [x.id for x in sv.verifications_of(session, users["rad"], ids["procedure"])] == [v.id]
    # rows are never removed (the no-delete trigger of every clinical table, migration 0005)
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError, match="soft delete"):
        session.execute(text("DELETE FROM verifications"))
    session.rollback()


def test_refusals(session, users):
    ids = _case_with_plan(session, users, log=C2_LOG)
    other = _case_with_plan(session, users, meeting=D(2025, 4, 1), site="T8", decision="cement_alone",
                            log={"cement_volume_ml": 4.0})
    base = {"procedure_id": ids["procedure"], "saved_plan_id": ids["plan"]}
    with pytest.raises(ValidationError, match="another lesion"):
        sv.record_verification(session, users["rad"], {**base, "saved_plan_id": other["plan"],
                                                       "result": result(stage="pin")})
    with pytest.raises(ValidationError, match="post-operative figures"):
        r = result(stage="pin")
        r["stage"] = "screw"
        sv.record_verification(session, users["rad"], {**base, "result": r})
    with pytest.raises(ValidationError, match="breach grade 'F'"):
        sv.record_verification(session, users["rad"], {**base, "result": result(entry=1, tip=1, angle_err=1,
                                                                                   grade="F")})
    with pytest.raises(ValidationError, match="verification stage 'needle'"):
        sv.record_verification(session, users["rad"], {**base, "result": {**result(stage="pin"), "stage": "needle"}})
    with pytest.raises(ValidationError, match="tip_to_plan_mm .* finite"):
        sv.record_verification(session, users["rad"], {**base, "result": result(stage="pin",
                                                                                   tip_to_plan=float("nan"))})
    with pytest.raises(ValidationError, match="no registration residual"):
        r = result(stage="pin")
        r["registration"] = {}
        sv.record_verification(session, users["rad"], {**base, "result": r})
    with pytest.raises(NotFoundError):
        sv.record_verification(session, users["rad"], {**base, "procedure_id": 999, "result": result(stage="pin")})
    with pytest.raises(PermissionDeniedError):
        sv.record_verification(session, users["res"], {**base, "result": result(stage="pin")})
    assert session.scalars(select(m.Verification)).all() == []


def test_accuracy_tables_median_and_p95_by_hand(session, users):
    """Five C2 screws with known post-operative errors, one of them checked twice (the later check counts), a
    deleted check (ignored), pin checks and a vertebroplasty trocar check (separate rows, never pooled)."""
    rad = users["rad"]
    entry = [1.0, 2.0, 3.0, 4.0, 10.0]
    tip = [2.0, 0.5, 1.5, 3.5, 1.0]
    angle = [5.0, 1.0, 3.0, 2.0, 4.0]
    grades = ["A", "A", "B", "C", None]
    cases = []
    for i in range(5):
        ids = _case_with_plan(session, users, meeting=D(2025, 1 + i, 4), log=C2_LOG)
        cases.append(ids)
        base = {"procedure_id": ids["procedure"], "saved_plan_id": ids["plan"]}
        if i == 0:  # an earlier post-op check, superseded by the one below
            sv.record_verification(session, rad, {**base, "result": result(entry=50.0, tip=50.0, angle_err=50.0,
                                                                          grade="E", breach=9.0)})
        sv.record_verification(session, rad, {**base, "result": result(
            entry=entry[i], tip=tip[i], angle_err=angle[i], grade=grades[i], breach=0.0 if grades[i] == "A" else 1.0)})
        if i < 3:  # guide-pin checks of three of them: tip to path 0.5, 1.0, 2.0 mm; angle 1, 2, 4 deg
            sv.record_verification(session, rad, {**base, "result": result(
                stage="pin", tip_to_plan=[0.5, 1.0, 2.0][i], angle=[1.0, 2.0, 4.0][i], offset=[1.0, 2.0, 3.0][i])})
        session.commit()
    deleted = sv.record_verification(session, rad, {"procedure_id": cases[1]["procedure"],
                                                    "saved_plan_id": cases[1]["plan"],
                                                    "result": result(entry=99, tip=99, angle_err=99, grade="E")})
    session.commit()
    sv.soft_delete(session, rad, "verification", deleted.id, "wrong series")
    vp = _case_with_plan(session, users, meeting=D(2025, 6, 2), site="T8", decision="cement_alone",
                         log={"cement_volume_ml": 4.0})
    sv.record_verification(session, rad, {"procedure_id": vp["procedure"], "saved_plan_id": vp["plan"],
                                          "result": result(stage="trocar", tip_to_plan=2.5, angle=6.0, offset=None)})
    session.commit()

    t = stats.compute_statistics(session, rad)
    [post] = t["accuracy_postop_by_type"]
    # by hand: sorted entry 1,2,3,4,10 -> median 3; 95th pct (type 7): h = 4 * 0.95 = 3.8 -> 4 + 0.8 * 6 = 8.8
    # tip 0.5,1,1.5,2,3.5 -> 1.5; 2 + 0.8 * 1.5 = 3.2.  angle 1..5 -> 3; 4 + 0.8 * 1 = 4.8
    assert post == {"procedure_type": "c2_screw", "n": 5,
                    "entry_error_median_mm": 3.0, "entry_error_p95_mm": 8.8,
                    "tip_error_median_mm": 1.5, "tip_error_p95_mm": 3.2,
                    "angle_error_median_deg": 3.0, "angle_error_p95_deg": 4.8,
                    "grade_A": 2, "grade_B": 1, "grade_C": 1, "grade_D": 0, "grade_E": 0, "grade_not_assessed": 1}
    # pins: 0.5, 1, 2 -> median 1.0, 95th: h = 1.9 -> 1 + 0.9 * 1 = 1.9; angles 1, 2, 4 -> 2, 2 + 0.9 * 2 = 3.8;
    # offsets 1, 2, 3 -> 2, 2.9. The trocar of the vertebroplasty alone: n 1, median = p95 = its value
    assert t["accuracy_intraop_by_type"] == [
        {"procedure_type": "vertebroplasty", "stage": "trocar", "n": 1,
         "tip_to_path_median_mm": 2.5, "tip_to_path_p95_mm": 2.5, "angle_to_path_median_deg": 6.0,
         "angle_to_path_p95_deg": 6.0, "offset_at_target_median_mm": None, "offset_at_target_p95_mm": None},
        {"procedure_type": "c2_screw", "stage": "pin", "n": 3,
         "tip_to_path_median_mm": 1.0, "tip_to_path_p95_mm": 1.9, "angle_to_path_median_deg": 2.0,
         "angle_to_path_p95_deg": 3.8, "offset_at_target_median_mm": 2.0, "offset_at_target_p95_mm": 2.9}]
    # the CSV of the statistics page has the same figures
    csv = stats.to_csv(t["accuracy_postop_by_type"]).splitlines()
    assert csv[1].startswith("c2_screw,5,3.0,8.8,1.5,3.2,3.0,4.8,2,1,1,0,0,1")
    # a year without checks: no row
    assert stats.compute_statistics(session, rad, 2024)["accuracy_postop_by_type"] == []


def test_empty_accuracy_tables_keep_their_csv_header():
    rows = stats.accuracy_postop_by_type([])
    assert rows == [] and stats.to_csv(rows, stats.EMPTY_COLUMNS["accuracy_postop_by_type"]).splitlines() == [
        "procedure_type,n,entry_error_median_mm,entry_error_p95_mm,tip_error_median_mm,tip_error_p95_mm,"
        "angle_error_median_deg,angle_error_p95_deg,grade_A,grade_B,grade_C,grade_D,grade_E,grade_not_assessed"]


def test_fhir_export_carries_the_check(session, users):
    from osteoplan.workflow import fhir

    ids = _case_with_plan(session, users, log=C2_LOG)
    sv.record_verification(session, users["rad"], {"procedure_id": ids["procedure"], "saved_plan_id": ids["plan"],
                                                    "result": result(entry=1.25, tip=0.75, angle_err=3.5, grade="B",
                                                                     breach=1.4)})
    session.commit()
    b = fhir.export_case(session, users["res"], ids["patient"])
    obs = [e.resource for e in b.entry if e.resource.__resource_type__ == "Observation"
           and e.resource.code.coding[0].system == fhir.PLACEMENT_SYSTEM]
    [o] = obs
    assert o.code.coding[0].code == "placement-check-screw"
    vals = {c.code.coding[0].code: (float(c.valueQuantity.value) if c.valueQuantity else c.valueString)
            for c in o.component}
    assert vals == {"tip-to-path": 1.0, "angle-to-path": 2.0, "entry-error": 1.25, "tip-error": 0.75,
                    "angle-error": 3.5, "outside-cortex": 1.4, "breach-grade": "B"}
    assert all(c.valueQuantity.system == "http://unitsofmeasure.org" for c in o.component if c.valueQuantity)
    assert "Gertzbein" in o.note[0].text
    proc = [e for e in b.entry if e.resource.__resource_type__ == "Procedure"][0]
    assert o.partOf[0].reference == proc.fullUrl
