"""``osteoplan db ...``: create/upgrade the registry database, fill it with demo data, export statistics.

Commands::

    osteoplan db init    [--url URL]          create the schema (or upgrade an existing database)
    osteoplan db upgrade [--url URL]          apply pending migrations
    osteoplan db demo    [--url URL] [--cases N] [--year Y] [--seed S]
    osteoplan db adduser USERNAME --role ROLE [--url URL]   (password read from $OSTEOPLAN_NEW_PASSWORD or prompted)
    osteoplan db stats   [--url URL] [--out DIR]            tables as CSV + PNG plots
    osteoplan db fhir    CASE_ID [--url URL] [--out FILE]    FHIR R4 Bundle (pseudonymised) as JSON

``--url`` defaults to ``$OSTEOPLAN_DB_URL``, else the SQLite file ``~/.local/share/osteoplan/osteoplan.db``
(``$XDG_DATA_HOME`` honoured), the same database ``osteoplan serve`` uses by default.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from osteoplan.errors import InputError


def _url_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=None, help="database URL (default $OSTEOPLAN_DB_URL, else ~/.local/share/osteoplan/osteoplan.db)")


def register(sub) -> None:
    """Register ``osteoplan db`` and its subcommands."""
    p = sub.add_parser("db", help="care-pathway registry database (init, upgrade, demo data, statistics)")
    dsub = p.add_subparsers(dest="db_command", metavar="DB_COMMAND")
    p.set_defaults(handler=lambda a: (p.print_help(), 2)[1])

    q = dsub.add_parser("init", help="create the schema (or bring it to the latest revision)")
    _url_arg(q)
    q.set_defaults(handler=_init)
    q = dsub.add_parser("upgrade", help="apply pending migrations")
    _url_arg(q)
    q.set_defaults(handler=_init)

    q = dsub.add_parser("demo", help="add demo users (password <username>-demo) and a year of fictitious cases")
    _url_arg(q)
    q.add_argument("--cases", type=int, default=120, help="number of cases (default 120)")
    q.add_argument("--year", type=int, default=None, help="year of the cases (default last year)")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(handler=_demo)

    q = dsub.add_parser("adduser", help="create an account")
    _url_arg(q)
    q.add_argument("username")
    q.add_argument("--role", required=True, choices=["radiologist", "tumour_board", "coordinator", "admin",
                                                      "research"])
    q.add_argument("--display-name", default="")
    q.set_defaults(handler=_adduser)

    q = dsub.add_parser("stats", help="activity and outcome statistics: CSV tables and PNG plots")
    _url_arg(q)
    q.add_argument("--out", default="stats", help="output folder (default ./stats)")
    q.set_defaults(handler=_stats)

    q = dsub.add_parser("fhir", help="FHIR R4 Bundle of one case (pseudonymised)")
    _url_arg(q)
    q.add_argument("case_id", type=int)
    q.add_argument("--out", default=None, help="output file (default: stdout)")
    q.set_defaults(handler=_fhir)


def _init(args) -> int:
    from osteoplan.workflow.db import current_revision, database_url, init_db, make_engine

    url = database_url(args.url)
    engine = make_engine(url)
    try:
        init_db(engine)
        print(f"database at revision {current_revision(engine)}")
    finally:
        engine.dispose()
    return 0


def _demo(args) -> int:
    from osteoplan.progress import step
    from osteoplan.workflow.db import init_db, make_engine, session_factory, session_scope
    from osteoplan.workflow.demo import DEMO_USERS, demo_password, generate_demo_data

    if args.cases < 0:
        raise InputError("--cases must be 0 or more")
    engine = make_engine(args.url)
    try:
        init_db(engine)
        with step(f"generating {args.cases} demo cases"), session_scope(session_factory(engine)) as s:
            counts = generate_demo_data(s, n_cases=args.cases, year=args.year, seed=args.seed)
    finally:
        engine.dispose()
    print(json.dumps(counts))
    print("demo accounts: " + ", ".join(f"{u} / {demo_password(u)} ({r})" for u, r, _ in DEMO_USERS))
    return 0


def _adduser(args) -> int:
    from osteoplan.workflow import service as sv
    from osteoplan.workflow.db import init_db, make_engine, session_factory, session_scope

    password = os.environ.get("OSTEOPLAN_NEW_PASSWORD") or getpass.getpass("password: ")
    engine = make_engine(args.url)
    try:
        init_db(engine)
        with session_scope(session_factory(engine)) as s:
            sv.create_user(s, None, {"username": args.username, "password": password, "role": args.role,
                                     "display_name": args.display_name})
    finally:
        engine.dispose()
    print(f"account {args.username} ({args.role}) created")
    return 0


def _stats(args) -> int:
    from osteoplan.workflow import stats
    from osteoplan.workflow.db import make_engine, session_factory, session_scope

    engine = make_engine(args.url)
    try:
        with session_scope(session_factory(engine)) as s:
            files = stats.export_all(s, None, Path(args.out))
    finally:
        engine.dispose()
    for f in files:
        print(f)
    return 0


def _fhir(args) -> int:
    from osteoplan.atomic import atomic_write_text
    from osteoplan.workflow import fhir
    from osteoplan.workflow.db import make_engine, session_factory, session_scope

    engine = make_engine(args.url)
    try:
        with session_scope(session_factory(engine)) as s:
            bundle = fhir.export_case_json(s, None, args.case_id)
    finally:
        engine.dispose()
    if args.out:
        atomic_write_text(args.out, bundle)
    else:
        sys.stdout.write(bundle + "\n")
    return 0
