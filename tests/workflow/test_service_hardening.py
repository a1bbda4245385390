"""Service-level halves of the web defects of issue 18 (both backends): a deleted case is read-only, generated case
codes never collide under concurrency, an unknown user name costs a bcrypt check."""

from __future__ import annotations

import threading

import pytest

from osteoplan.errors import NotFoundError, ValidationError
from osteoplan.workflow import models as m
from osteoplan.workflow import service as sv

from .conftest import C2_LOG, D, make_case


def test_every_write_into_a_deleted_case_is_refused(session, users):
    rad, board, admin = users["rad"], users["board"], users["admin"]
    ids = make_case(session, users, log=C2_LOG)
    plan = sv.attach_plan(session, rad, {"lesion_id": ids["lesion"], "plan": {"feasible": True}, "label": "p"})
    fu = sv.record_follow_up(session, rad, {"procedure_id": ids["procedure"], "timepoint": "1m",
                                            "visit_date": D(2025, 4, 14), "pain_nrs": 2})
    undecided = sv.record_decision(session, board, {"patient_id": ids["patient"], "lesion_id": ids["lesion"],
                                                    "meeting_date": D(2025, 3, 20), "question": "again?",
                                                    "decision_type": "radiotherapy"})
    session.commit()
    sv.soft_delete(session, admin, "patient", ids["patient"], "duplicate case")
    session.commit()
    proc = session.get(m.Procedure, ids["procedure"])
    writes = {
        "schedule": lambda: sv.schedule_procedure(session, rad, {"decision_id": ids["decision"],
                                                                 "scheduled_date": D(2025, 6, 1)}),
        "log": lambda: sv.log_procedure(session, rad, ids["procedure"], {"procedure_date": D(2025, 3, 14)}),
        "post-op": lambda: sv.record_post_op(session, rad, ids["procedure"], {"discharge_date": D(2025, 3, 15)}),
        "follow-up": lambda: sv.record_follow_up(session, rad, {"procedure_id": ids["procedure"], "timepoint": "3m",
                                                                "visit_date": D(2025, 6, 14)}),
        "adverse event": lambda: sv.record_adverse_event(session, rad, {"procedure_id": ids["procedure"],
                                                                        "event_date": D(2025, 3, 14), "grade": "1",
                                                                        "description": "pain"}),
        "validate": lambda: sv.validate_decision(session, board, undecided.id),
        "plan": lambda: sv.attach_plan(session, rad, {"lesion_id": ids["lesion"], "plan": {}, "label": "q"}),
        "score": lambda: sv.set_lesion_score(session, rad, ids["lesion"], sins={
            "pain": "none", "alignment": "normal", "collapse": "none", "posterolateral": "none"}),
        "edit follow-up": lambda: sv.update_record(session, rad, "follow_up", fu.id, {"pain_nrs": 5},
                                                   expected_version=fu.version),
        "edit plan": lambda: sv.update_record(session, rad, "plan", plan.id, {"label": "r"},
                                              expected_version=plan.version),
        "delete procedure": lambda: sv.soft_delete(session, admin, "procedure", ids["procedure"], "tidy"),
        "read procedure": lambda: sv.get_record(session, rad, "procedure", ids["procedure"]),
    }
    for name, write in writes.items():
        with pytest.raises(NotFoundError, match="its case was deleted"):
            write()
    session.rollback()
    assert session.get(m.Procedure, ids["procedure"]).version == proc.version
    # the audit trail and an explicit restore still reach the records
    assert sv.get_record(session, admin, "procedure", ids["procedure"], include_deleted=True).id == ids["procedure"]


def test_generated_codes_follow_the_highest_existing_number_and_skip_typed_ones(session, users):
    """Counter created from the codes already given (a database from before the counter), then incremented;
    a code typed by hand in the generated pattern is skipped."""
    year = sv.today().year
    rad = users["rad"]
    sv.create_patient(session, rad, {"code": f"OP-{year}-0041", "primary_cancer": "lung"})
    sv.create_patient(session, rad, {"code": f"OP-{year}-0007", "primary_cancer": "lung"})
    sv.create_patient(session, rad, {"code": "OP-1999-0500", "primary_cancer": "lung"})  # another year
    session.commit()
    assert sv.create_patient(session, rad, {"primary_cancer": "breast"}).code == f"OP-{year}-0042"
    sv.create_patient(session, rad, {"code": f"OP-{year}-0043", "primary_cancer": "lung"})
    session.commit()
    assert sv.create_patient(session, rad, {"primary_cancer": "breast"}).code == f"OP-{year}-0044"
    session.commit()
    with pytest.raises(ValidationError, match="already used"):
        sv.create_patient(session, rad, {"code": f"OP-{year}-0044", "primary_cancer": "lung"})


def test_concurrent_creation_gives_distinct_codes(factory, users):
    """8 threads x 8 cases, each in its own session and transaction, all at once: 64 cases, 64 distinct codes
    numbered 1..64, no error."""
    rad_id = users["rad"].id
    errors: list[str] = []
    codes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def work():
        barrier.wait()
        for _ in range(8):
            s = factory()
            try:
                p = sv.create_patient(s, s.get(m.User, rad_id), {"primary_cancer": "kidney"})
                s.commit()
                with lock:
                    codes.append(p.code)
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                s.close()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    year = sv.today().year
    assert sorted(codes) == [f"OP-{year}-{n:04d}" for n in range(1, 65)]


def test_unknown_and_inactive_users_cost_a_bcrypt_check(session, users, monkeypatch):
    import bcrypt

    calls: list[bytes] = []
    real = bcrypt.checkpw
    monkeypatch.setattr(sv.bcrypt, "checkpw", lambda pw, h: calls.append(h) or real(pw, h))
    assert sv.authenticate(session, "nobody", "some-password") is None
    assert len(calls) == 1 and calls[0].startswith(b"$2b$04$")  # the cost of the accounts (4 in these tests)
    sv.update_record(session, None, "user", users["coord"].id, {"active": False},
                     expected_version=users["coord"].version)
    assert sv.authenticate(session, "coord", "coord-password") is None  # right password, inactive account
    assert len(calls) == 2 and calls[1] == users["coord"].password_hash.encode()
    assert sv.authenticate(session, "rad", "rad-password").id == users["rad"].id
    assert len(calls) == 3
