"""Alembic environment of the osteoplan registry (run programmatically by :func:`osteoplan.workflow.db.upgrade`).

When called from :func:`~osteoplan.workflow.db.upgrade` the connection is passed in
``config.attributes["connection"]``; the ``alembic`` command line is supported too with
``-x url=...`` or ``$OSTEOPLAN_DB_URL``.
"""

from __future__ import annotations

from alembic import context

from osteoplan.workflow.models import Base

target_metadata = Base.metadata
config = context.config


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # pragma: no cover - alembic command line
    from osteoplan.workflow.db import database_url, make_engine

    url = context.get_x_argument(as_dictionary=True).get("url")
    engine = make_engine(database_url(url))
    with engine.begin() as conn:
        _run(conn)
