"""Each impossible state is refused with its message (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest

from osteoplan.errors import PermissionDeniedError, ValidationError
from osteoplan.workflow import models as m
from osteoplan.workflow import service as sv

from .conftest import C2_LOG, D, make_case


def _refused(fn, match):
    with pytest.raises(ValidationError, match=match):
        fn()


def test_patient_ranges(session, users):
    rad = users["rad"]
    _refused(lambda: sv.create_patient(session, rad, {"primary_cancer": "lung", "ecog": 6}),
             r"ECOG performance status is an integer 0-5 \(got 6\)")
    _refused(lambda: sv.create_patient(session, rad, {"primary_cancer": "lung", "ecog": -1}), "ECOG")
    _refused(lambda: sv.create_patient(session, rad, {"primary_cancer": "lung", "karnofsky": 105}),
             "Karnofsky performance status is 0-100 in steps of 10")
    _refused(lambda: sv.create_patient(session, rad, {"primary_cancer": "lung", "karnofsky": 75}), "steps of 10")
    _refused(lambda: sv.create_patient(session, rad, {"primary_cancer": " "}), "primary cancer is required")
    _refused(lambda: sv.create_patient(session, rad, {"primary_cancer": "lung", "sex": "x"}), "sex 'x' is not one of")
    _refused(lambda: sv.create_patient(session, rad, {"primary_cancer": "lung", "bogus": 1}), "bogus")
    p = sv.create_patient(session, rad, {"primary_cancer": "lung", "ecog": 0, "karnofsky": 100})
    assert p.code.startswith(f"OP-{dt.date.today().year}-")


def test_lesion_rules(session, users):
    rad = users["rad"]
    p = sv.create_patient(session, rad, {"primary_cancer": "lung"})
    session.commit()
    base = {"patient_id": p.id, "site_kind": "vertebra", "site": "C2", "lesion_type": "lytic"}
    _refused(lambda: sv.add_lesion(session, rad, {**base, "site": "C9"}), "vertebral level 'C9' is not one of")
    _refused(lambda: sv.add_lesion(session, rad, {**base, "lesion_type": "cystic"}), "lesion type")
    _refused(lambda: sv.add_lesion(session, rad, {**base, "mirels": {"site": "lower-limb", "size": 0.5,
                                                                    "pain": "mild"}}), "Mirels score is for long")
    _refused(lambda: sv.add_lesion(session, rad, {**base, "sins": {"pain": "terrible"}}), "pain")
    _refused(lambda: sv.add_lesion(session, rad, {**base, "ct_series_uids": ["1.2.abc"]}), "not a DICOM UID")
    # SINS computed by osteoplan.risk (Fisher 2010): C2 junctional 3 + mechanical 3 + lytic 2 + 0 + 0 + 0 = 8
    les = sv.add_lesion(session, rad, {**base, "sins": {"pain": "mechanical", "alignment": "normal",
                                                       "collapse": "none", "posterolateral": "none"}})
    assert (les.score_system, les.score_total, les.score_category) == ("SINS", 8, "potentially unstable")
    # Mirels (1989): lower limb 2 + lytic 3 + 1/3-2/3 2 + moderate 2 = 9 -> fixation
    femur = sv.add_lesion(session, rad, {"patient_id": p.id, "site_kind": "bone", "site": "femur",
                                         "lesion_type": "lytic",
                                         "mirels": {"site": "lower-limb", "size": 0.5, "pain": "moderate"}})
    assert (femur.score_system, femur.score_total, femur.score_category) == ("Mirels", 9, "fixation")


def test_procedure_needs_validated_decision(session, users):
    ids = make_case(session, users, validate=False)
    _refused(lambda: sv.schedule_procedure(session, users["rad"], {"decision_id": ids["decision"],
                                                                   "scheduled_date": D(2025, 3, 20)}),
             r"decision is not validated; a physician must validate it")
    with pytest.raises(PermissionDeniedError, match="named physician"):
        sv.validate_decision(session, users["coord"], ids["decision"])


def test_procedure_refused_on_non_consolidation_decision(session, users):
    ids = make_case(session, users, decision="radiotherapy", consult=False, schedule=False)
    _refused(lambda: sv.schedule_procedure(session, users["rad"], {"decision_id": ids["decision"],
                                                                   "scheduled_date": D(2025, 3, 20)}),
             "not a percutaneous consolidation")


def test_procedure_log_rules(session, users):
    rad = users["rad"]
    ids = make_case(session, users)
    pid = ids["procedure"]
    log = {**C2_LOG, "procedure_date": D(2025, 3, 14)}
    _refused(lambda: sv.log_procedure(session, rad, pid, {**log, "cement_volume_ml": -1.0}),
             r"cement volume cannot be negative \(got -1.0 mL\)")
    _refused(lambda: sv.log_procedure(session, rad, pid, {**log, "hydrodissection_volume_ml": -5.0}),
             "hydrodissection volume cannot be negative")
    _refused(lambda: sv.log_procedure(session, rad, pid, {**log, "dlp_mgy_cm": -1.0}), "DLP cannot be negative")
    _refused(lambda: sv.log_procedure(session, rad, pid, {**log, "screws": [{"diameter_mm": 0, "length_mm": 30}]}),
             "positive diameter and length")
    _refused(lambda: sv.log_procedure(session, rad, pid, {**log, "procedure_date": D(2025, 3, 1)}),
             "before the tumour-board meeting")
    _refused(lambda: sv.log_procedure(session, rad, pid, {**log, "procedure_date": dt.date.today()
                                                          + dt.timedelta(days=3)}), "in the future")
    _refused(lambda: sv.log_procedure(session, rad, pid, {**log, "guidance": "MRI"}), "guidance 'MRI'")
    _refused(lambda: sv.log_procedure(session, rad, pid, {**log, "leak_sites": ["disc"], "cement_leak": False}),
             "leak sites are given")
    p = sv.log_procedure(session, rad, pid, log)
    session.commit()
    assert p.status == "done" and [(s.diameter_mm, s.length_mm) for s in p.live_screws] == [(4.0, 34.0)]
    _refused(lambda: sv.record_post_op(session, rad, pid, {"discharge_date": D(2025, 3, 13)}),
             "discharge .* cannot be before the procedure")
    _refused(lambda: sv.record_post_op(session, rad, pid, {"collar_removed_date": D(2025, 3, 10)}),
             "collar cannot be removed")


def test_consent_required_before_logging(session, users):
    ids = make_case(session, users, consult=False)
    _refused(lambda: sv.log_procedure(session, users["rad"], ids["procedure"],
                                      {**C2_LOG, "procedure_date": D(2025, 3, 14)}), "no consent is recorded")


def test_consultation_rules(session, users):
    rad = users["rad"]
    ids = make_case(session, users, log=C2_LOG)  # procedure on 2025-03-14, meeting 2025-03-04
    base = {"patient_id": ids["patient"], "decision_id": ids["decision"], "consent_obtained": True}
    _refused(lambda: sv.record_consultation(session, rad, {**base, "consultation_date": D(2025, 3, 20)}),
             "cannot be dated after the procedure")
    _refused(lambda: sv.record_consultation(session, rad, {**base, "consultation_date": D(2025, 3, 1)}),
             "before the tumour-board meeting")
    _refused(lambda: sv.record_consultation(session, rad, {**base, "consultation_date": D(2025, 3, 6),
                                                           "consent_obtained": False,
                                                           "consent_date": D(2025, 3, 6)}),
             "consent is not recorded as obtained")


def test_follow_up_rules(session, users):
    rad = users["rad"]
    ids = make_case(session, users, log=C2_LOG)
    pid = ids["procedure"]
    # a follow-up on a procedure that is only scheduled
    other = make_case(session, users, meeting=D(2025, 4, 1))
    _refused(lambda: sv.record_follow_up(session, rad, {"procedure_id": other["procedure"], "timepoint": "1m",
                                                        "visit_date": D(2025, 5, 1), "pain_nrs": 2}),
             "has not been logged as done; a follow-up cannot precede it")
    _refused(lambda: sv.record_follow_up(session, rad, {"procedure_id": pid, "timepoint": "1m",
                                                        "visit_date": D(2025, 3, 10), "pain_nrs": 2}),
             r"follow-up visit \(2025-03-10\) is before the procedure \(2025-03-14\)")
    _refused(lambda: sv.record_follow_up(session, rad, {"procedure_id": pid, "timepoint": "1m",
                                                        "visit_date": D(2025, 4, 14), "pain_nrs": 11}),
             "pain NRS is an integer from 0 .* got 11")
    _refused(lambda: sv.record_follow_up(session, rad, {"procedure_id": pid, "timepoint": "1m",
                                                        "visit_date": D(2025, 4, 14), "pain_nrs": -1}), "got -1")
    _refused(lambda: sv.record_follow_up(session, rad, {"procedure_id": pid, "timepoint": "2w",
                                                        "visit_date": D(2025, 4, 14)}), "timepoint '2w'")
    _refused(lambda: sv.record_follow_up(session, rad, {"procedure_id": pid, "timepoint": "baseline",
                                                        "visit_date": D(2025, 3, 20), "pain_nrs": 7}),
             "baseline assessment .* cannot be after the procedure")
    sv.record_follow_up(session, rad, {"procedure_id": pid, "timepoint": "1m", "visit_date": D(2025, 4, 14),
                                       "pain_nrs": 2})
    session.commit()
    _refused(lambda: sv.record_follow_up(session, rad, {"procedure_id": pid, "timepoint": "1m",
                                                        "visit_date": D(2025, 4, 15), "pain_nrs": 3}),
             "already recorded")


def test_death_and_adverse_event_rules(session, users):
    rad = users["rad"]
    ids = make_case(session, users, log=C2_LOG)
    sv.record_follow_up(session, rad, {"procedure_id": ids["procedure"], "timepoint": "1m",
                                       "visit_date": D(2025, 4, 14), "pain_nrs": 2})
    session.commit()
    _refused(lambda: sv.record_death(session, rad, ids["patient"], D(2025, 3, 10)),
             r"date of death 2025-03-10 is before the procedure of 2025-03-14")
    _refused(lambda: sv.record_death(session, rad, ids["patient"], D(2025, 4, 1)),
             "before a follow-up visit on 2025-04-14")
    ae = {"procedure_id": ids["procedure"], "event_date": D(2025, 3, 14), "description": "leak"}
    _refused(lambda: sv.record_adverse_event(session, rad, {**ae, "grade": "7"}),
             "CIRSE 2017 grade '7' does not exist; grades are 1, 2, 3, 4, 5, 6")
    _refused(lambda: sv.record_adverse_event(session, rad, {**ae, "grade": "A"}), "does not exist")
    _refused(lambda: sv.record_adverse_event(session, rad, {**ae, "grade": "2", "classification": "CTCAE"}),
             "classification 'CTCAE'")
    _refused(lambda: sv.record_adverse_event(session, rad, {**ae, "grade": "1", "event_date": D(2025, 3, 1)}),
             "before the procedure")
    a = sv.record_adverse_event(session, rad, {**ae, "grade": "C", "classification": "SIR"})
    b = sv.record_adverse_event(session, rad, {**ae, "grade": "2"})
    session.commit()
    assert (a.classification, a.grade, b.classification, b.grade) == ("SIR", "C", "CIRSE 2017", "2")
    p = sv.record_death(session, rad, ids["patient"], D(2025, 6, 1))
    session.commit()
    assert p.date_of_death == D(2025, 6, 1)
    _refused(lambda: sv.record_follow_up(session, rad, {"procedure_id": ids["procedure"], "timepoint": "3m",
                                                        "visit_date": D(2025, 6, 14), "pain_nrs": 1}),
             "after the patient's date of death")


def test_update_rechecks_rules(session, users):
    rad = users["rad"]
    ids = make_case(session, users, log=C2_LOG)
    fu = sv.record_follow_up(session, rad, {"procedure_id": ids["procedure"], "timepoint": "1m",
                                            "visit_date": D(2025, 4, 14), "pain_nrs": 2})
    session.commit()
    _refused(lambda: sv.update_record(session, rad, "follow_up", fu.id, {"pain_nrs": 12}, expected_version=1),
             "got 12")
    # moving the procedure after its follow-up breaks the follow-up's rule
    _refused(lambda: sv.update_record(session, rad, "procedure", ids["procedure"],
                                      {"procedure_date": "2025-04-20"}, expected_version=2), "before the procedure")
    _refused(lambda: sv.update_record(session, rad, "patient", ids["patient"], {"code": "X"}, expected_version=1),
             "cannot be edited here: code")
    fu = sv.update_record(session, rad, "follow_up", fu.id, {"pain_nrs": 1}, expected_version=1)
    session.commit()
    assert (fu.pain_nrs, fu.version) == (1, 2)


def test_research_cannot_write(session, users):
    with pytest.raises(PermissionDeniedError, match="read-only"):
        sv.create_patient(session, users["res"], {"primary_cancer": "lung"})
    assert session.query(m.Patient).count() == 0
