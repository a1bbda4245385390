"""Database engine, schema migrations (Alembic, applied programmatically) and sessions.

The embedded default is an SQLite file (``~/.local/share/osteoplan/osteoplan.db``, see :func:`database_url`); PostgreSQL is supported with
``postgresql+psycopg://user@host:port/db``. The schema is created and upgraded ONLY by the Alembic migrations
in :mod:`osteoplan.workflow.migrations` (never ``create_all``), so SQLite and PostgreSQL get the same schema,
the same append-only triggers and the same upgrade path.

Durability: SQLite runs in WAL mode with ``synchronous=FULL`` (a committed transaction is on disk before
``commit()`` returns) and ``foreign_keys=ON``; PostgreSQL's defaults (``fsync``, ``synchronous_commit=on``)
already give that.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/osteoplan`` (``~/.local/share/osteoplan``): the embedded database and the dev key file."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "osteoplan"


def database_url(url: str | None = None) -> str:
    """*url*, else ``$OSTEOPLAN_DB_URL``, else the SQLite file ``osteoplan.db`` in :func:`default_data_dir`
    (the same default as ``osteoplan serve``)."""
    return url or os.environ.get("OSTEOPLAN_DB_URL") or f"sqlite:///{default_data_dir() / 'osteoplan.db'}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _create_private_file(path: Path) -> None:
    """Create the SQLite database file readable by its owner only (mode 0600; its folder 0700 when created here),
    before SQLite creates it with the default mode (often world-readable): it holds patient data. SQLite gives
    its ``-wal`` and ``-shm`` files the database file's mode. An existing file is left as it is."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def make_engine(url: str | None = None, **kwargs) -> Engine:
    """Create an engine for *url* (see :func:`database_url`) with the durability settings above.

    Parameters
    ----------
    url : str, optional
        SQLAlchemy URL.
    **kwargs
        Passed to :func:`sqlalchemy.create_engine`.
    """
    url = database_url(url)
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {}).setdefault("check_same_thread", False)
        path = url.split("///", 1)[-1].split("?", 1)[0] if "///" in url else ""
        if path and path != ":memory:" and not path.startswith("file:"):
            _create_private_file(Path(path))
    else:
        kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _alembic_config(connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(url_or_engine: str | Engine | None = None, revision: str = "head") -> None:
    """Apply the Alembic migrations up to *revision* (default: the latest).

    Parameters
    ----------
    url_or_engine : str or Engine, optional
        Database URL (see :func:`database_url`) or an existing engine.
    revision : str
        Target revision.
    """
    from alembic import command

    engine = url_or_engine if isinstance(url_or_engine, Engine) else make_engine(url_or_engine)
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), revision)
    finally:
        if not isinstance(url_or_engine, Engine):
            engine.dispose()


def init_db(url_or_engine: str | Engine | None = None) -> None:
    """Create the schema of an empty database, or bring an existing one to the latest revision."""
    upgrade(url_or_engine, "head")


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at (``None`` for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to *engine* (``expire_on_commit=False`` so objects stay readable after commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any exception.

    The service layer never commits: the caller (a web request, a CLI command) owns the transaction, so the
    audit record and the change it describes are committed together or not at all.
    """
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
