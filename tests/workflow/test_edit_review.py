"""Editing records: emptied fields, database-rule errors, no-op saves (review of issue 7)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from osteoplan.errors import ConflictError, ValidationError
from osteoplan.workflow import models as m
from osteoplan.workflow import service as sv

from .conftest import D, make_case


def _audit_rows(session, entity, entity_id):
    return list(session.scalars(select(m.AuditLog).where(m.AuditLog.entity == entity,
                                                         m.AuditLog.entity_id == entity_id)
                                .order_by(m.AuditLog.id)))


def test_emptied_free_text_is_kept_empty_not_a_conflict(session, users):
    ids = make_case(session, users)
    board, rad = users["board"], users["rad"]
    d = sv.update_record(session, board, "decision", ids["decision"], {"justification": ""}, expected_version=2)
    session.commit()
    assert (d.justification, d.version) == ("", 3)
    c = sv.update_record(session, rad, "consultation", ids["consultation"],
                         {"benefits_explained": "  ", "risks_explained": None}, expected_version=1)
    session.commit()
    assert (c.benefits_explained, c.risks_explained, c.version) == ("", "", 2)


def test_emptied_required_field_is_a_validation_error_naming_it(session, users):
    ids = make_case(session, users)
    with pytest.raises(ValidationError, match="question of a decision is required"):
        sv.update_record(session, users["board"], "decision", ids["decision"], {"question": ""}, expected_version=2)
    with pytest.raises(ValidationError, match="timepoint|primary cancer"):
        sv.update_record(session, users["rad"], "patient", ids["patient"], {"primary_cancer": None},
                         expected_version=1)
    # optional fields are cleared
    p = sv.update_record(session, users["rad"], "patient", ids["patient"], {"hospital_id": "", "ecog": None},
                         expected_version=1)
    session.commit()
    assert (p.hospital_id, p.ecog, p.family_name) == (None, None, "Dupont")


def test_integrity_errors_other_than_unique_are_not_conflicts(session, users):
    """A NOT NULL violation reaching the database is an input problem (ValidationError), a UNIQUE clash a
    conflict."""
    ids = make_case(session, users)
    les = session.get(m.Lesion, ids["lesion"])
    les.site = None  # bypasses the service rules: the database's NOT NULL refuses it
    with pytest.raises(ValidationError, match="database rule refused it"):
        sv._flush(session)
    session.add(m.User(username="rad", password_hash="x", role="radiologist", display_name=""))
    with pytest.raises(ConflictError, match="same unique value"):
        sv._flush(session)


def test_no_op_save_is_audited_as_a_read(session, users):
    ids = make_case(session, users)
    before = _audit_rows(session, "patient", ids["patient"])
    p = sv.update_record(session, users["coord"], "patient", ids["patient"], {"ecog": 1, "primary_cancer": "breast"},
                         expected_version=1)
    session.commit()
    after = _audit_rows(session, "patient", ids["patient"])
    assert p.version == 1  # nothing written
    assert len(after) == len(before) + 1
    rec = after[-1]
    assert (rec.action, rec.username, rec.patient_id) == ("read", "coord", ids["patient"])
    assert rec.detail == {"save": "unchanged", "fields": ["ecog", "primary_cancer"]}
    assert session.scalar(select(func.count()).select_from(m.AuditLog).where(m.AuditLog.action == "update",
                                                                             m.AuditLog.entity_id == ids["patient"],
                                                                             m.AuditLog.entity == "patient")) == 0


def test_bad_date_text_is_refused_without_echoing_it(session, users):
    ids = make_case(session, users)
    with pytest.raises(ValidationError) as exc:
        sv.update_record(session, users["rad"], "patient", ids["patient"], {"birth_date": "17/05/1961"},
                         expected_version=1)
    assert "1961" not in str(exc.value) and "YYYY-MM-DD" in str(exc.value)
    assert session.get(m.Patient, ids["patient"]).birth_date == D(1961, 5, 17).isoformat()


@pytest.mark.parametrize("field, value, message", [
    ("cement_volume_ml", 1e9, "cement volume 1e+09 mL is not plausible (above 200 mL)"),
    ("hydrodissection_volume_ml", 2200.0, "hydrodissection volume 2200 mL is not plausible"),
    ("cement_volume_ml", float("nan"), "cement volume must be a finite number of mL"),
    ("dlp_mgy_cm", float("inf"), "DLP must be a finite number"),
    ("duration_min", 100_000, "duration 100000 min is not plausible"),
])
def test_implausible_procedure_amounts_are_refused(session, users, field, value, message):
    from .conftest import C2_LOG

    ids = make_case(session, users)
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        sv.log_procedure(session, users["rad"], ids["procedure"],
                         {"procedure_date": D(2025, 3, 14), **C2_LOG, field: value})
    assert session.get(m.Procedure, ids["procedure"]).status == "scheduled"
    # the same through an edit of a logged procedure
    sv.log_procedure(session, users["rad"], ids["procedure"], {"procedure_date": D(2025, 3, 14), **C2_LOG})
    session.commit()
    v = session.get(m.Procedure, ids["procedure"]).version
    with pytest.raises(ValidationError, match="not plausible|finite|must be a number"):
        sv.update_record(session, users["rad"], "procedure", ids["procedure"], {field: value}, expected_version=v)
