"""The Alembic migrations build exactly the schema the models describe (no drift), on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from osteoplan.workflow.db import current_revision
from osteoplan.workflow.models import Base


def test_migrated_schema_matches_models(engine):
    assert current_revision(engine) == "0003_plan_jobs"
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    assert diff == []
