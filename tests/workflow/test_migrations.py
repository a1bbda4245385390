"""The Alembic migrations build exactly the schema the models describe (no drift), on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from osteoplan.workflow.db import current_revision
from osteoplan.workflow.models import Base


def test_migrated_schema_matches_models(engine):
    assert current_revision(engine) == "0006_verifications"
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    assert diff == []


def test_0003_backfills_validations_and_procedure_types_then_downgrades(db_url):
    """Data written at revision 0002 gets its validation row and procedure type at 0003_worklist; a downgrade to
    0002 drops the new columns and keeps the no-delete triggers."""
    import datetime as dt

    import pytest
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError

    from osteoplan.workflow.db import upgrade

    eng = create_engine(db_url)
    from alembic import command

    from osteoplan.workflow.db import _alembic_config

    with eng.begin() as conn:
        command.downgrade(_alembic_config(conn), "0002")
    now = dt.datetime(2025, 3, 4, 18, tzinfo=dt.timezone.utc)
    rec = {"created_at": now, "updated_at": now, "version": 1}
    with eng.begin() as conn:
        ins = lambda t, **kv: conn.execute(text(  # noqa: E731
            f"INSERT INTO {t} ({', '.join({**rec, **kv})}) VALUES ({', '.join(':' + k for k in {**rec, **kv})})"),
            {**rec, **kv})
        ins("users", id=1, username="board", display_name="", password_hash="x", role="tumour_board", active=True)
        ins("patients", id=1, code="OP-1", sex="female", primary_cancer="breast")
        for i, (kind, site) in enumerate((("vertebra", "C2"), ("bone", "humerus"), ("vertebra", "T8")), start=1):
            ins("lesions", id=i, patient_id=1, site_kind=kind, site=site, lesion_type="lytic", ct_series_uids="[]")
            ins("tumour_board_meetings", id=i, meeting_date=dt.date(2025, 3, 4), specialties_present="[]")
            ins("tumour_board_decisions", id=i, meeting_id=i, patient_id=1, lesion_id=i, question="q",
                decision_type="screw_cement" if i < 3 else "cement_alone", justification="",
                validated_by_id=1, validated_at=now)
            ins("procedures", id=i, patient_id=1, lesion_id=i, decision_id=i, status="done" if i < 3 else "scheduled",
                scheduled_date=dt.date(2025, 3, 10), procedure_date=dt.date(2025, 3, 10) if i < 3 else None,
                operators="[]", levels_treated=1, guide_pin=False, leak_sites="[]",
                cement_volume_ml=3.0 if i == 1 else None)
        ins("procedure_screws", id=1, procedure_id=1, position=1, diameter_mm=4.0, length_mm=34.0, cannulated=True)
        ins("procedure_screws", id=2, procedure_id=2, position=1, diameter_mm=6.5, length_mm=90.0, cannulated=True)
    upgrade(db_url, "head")
    with eng.connect() as conn:
        types = dict(conn.execute(text("SELECT id, procedure_type FROM procedures")).all())
        vals = conn.execute(text("SELECT decision_id, user_id FROM decision_validations ORDER BY decision_id")).all()
    # done: from what was placed; scheduled: from the decision (cement alone in T8)
    assert types == {1: "c2_screw", 2: "other", 3: "vertebroplasty"}
    assert [tuple(v) for v in vals] == [(1, 1), (2, 1), (3, 1)]
    with eng.begin() as conn:
        command.downgrade(_alembic_config(conn), "0002")
    with pytest.raises(DBAPIError):
        with eng.begin() as conn:
            conn.execute(text("DELETE FROM procedures WHERE id = 3"))
    with eng.connect() as conn:
        cols = [r[1] for r in conn.execute(text("PRAGMA table_info(procedures)"))] if eng.dialect.name == "sqlite" \
            else [r[0] for r in conn.execute(text("SELECT column_name FROM information_schema.columns "
                                                  "WHERE table_name = 'procedures'"))]
    assert "procedure_type" not in cols
    upgrade(db_url, "head")
    eng.dispose()
