"""``osteoplan serve``: run the web application with uvicorn.

    osteoplan serve [--host 127.0.0.1] [--port 8000] [--db URL] [--demo] [--demo-cases N]

Without ``--db`` the database is an SQLite file ``osteoplan.db`` in the user's data directory
(``$XDG_DATA_HOME/osteoplan`` or ``~/.local/share/osteoplan``). A new (empty) database, or
``--demo``, is filled with the project's generated demo data set (fictitious cases) and the
demo logins are printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def register(sub) -> None:
    """Add the ``serve`` subcommand."""
    p = sub.add_parser("serve", help="run the care-pathway web application (FastAPI + uvicorn)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1, this machine only)")
    from osteoplan.cliargs import tcp_port

    p.add_argument("--port", type=tcp_port, default=8000, help="TCP port, 1-65535 (default 8000)")
    p.add_argument("--db", default=None, metavar="URL",
                   help="SQLAlchemy database URL or path of an SQLite file (default: osteoplan.db in the user's data directory)")
    p.add_argument("--demo", action="store_true", help="add the demo data set (fictitious cases and demo users)")
    p.add_argument("--demo-cases", type=int, default=None, metavar="N", help="number of demo cases (default: the generator's)")
    p.add_argument("--secret-file", default=None, metavar="PATH",
                   help="file holding the session-signing key (created if absent; default next to an SQLite database)")
    p.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDR",
                   help="address or network (CIDR) of a reverse proxy in front of the server; repeat for several. "
                        "Only from these are X-Forwarded-For / X-Forwarded-Proto believed (default: none)")
    p.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--plan-workers", type=int, default=None, metavar="N",
                   help="planning-job worker processes started with the server (default 1, or "
                        "$OSTEOPLAN_PLAN_WORKERS; 0: none, run 'osteoplan worker' yourself)")
    p.set_defaults(handler=serve)


def _db_url(arg: str | None) -> str:
    from osteoplan.web.settings import default_database_url

    if not arg:
        return default_database_url()
    if "://" in arg:
        return arg
    return f"sqlite:///{Path(arg).expanduser().resolve()}"


def _sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url[len("sqlite:///"):])
    return None


class HideTracebacks(logging.Filter):
    """Logging filter for uvicorn's error logger: an unhandled exception is logged as one line (its type) without
    the traceback or message, which could quote submitted values (identifying data never reaches logs).
    ``OSTEOPLAN_DEBUG=1`` keeps the full traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not os.environ.get("OSTEOPLAN_DEBUG"):
            exc = record.exc_info[1]
            record.msg = f"unhandled {type(exc).__name__} in a request (traceback hidden; set OSTEOPLAN_DEBUG=1 to see it)"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def serve(args) -> int:
    """Handler of ``osteoplan serve``."""
    import uvicorn

    from osteoplan.errors import InputError
    from osteoplan.web import backend
    from osteoplan.web.app import create_app
    from osteoplan.web.settings import Settings, default_data_dir, load_or_create_secret

    url = _db_url(args.db)
    path = _sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    secret_file = Path(args.secret_file) if args.secret_file else (
        path.with_name(path.name + ".secret") if path is not None else default_data_dir() / "session.secret")
    from osteoplan.web.middleware import parse_networks

    try:
        parse_networks(args.trusted_proxy)
    except ValueError as exc:
        raise InputError(f"{exc}; check --trusted-proxy") from None
    settings = Settings(database_url=url, secret_key=load_or_create_secret(secret_file),
                        trusted_proxies=tuple(args.trusted_proxy))
    try:
        engine = backend.init_engine(url)
    except Exception as exc:  # connection refused, bad URL...
        raise InputError(f"cannot open the database ({type(exc).__name__}); check --db "
                         "(an SQLite file path or postgresql+psycopg://user@host:port/db).") from None
    logins = None
    if args.demo or backend.is_empty(engine):
        print("Generating the demo data set (fictitious patients)...", file=sys.stderr)
        logins = backend.seed_demo(engine, n_cases=args.demo_cases)
    from osteoplan.web.plan_jobs import jobs_dir

    n_workers = args.plan_workers if args.plan_workers is not None else int(os.environ.get("OSTEOPLAN_PLAN_WORKERS") or 1)
    if not 0 <= n_workers <= 64:
        raise InputError("--plan-workers: give a number of planning workers from 0 to 64")
    if logins:
        from osteoplan.web.demo_plans import seed_demo_plans

        from osteoplan.web.plan_jobs import pacs_config

        pacs = pacs_config()
        print("Queueing demo plans on the neck phantom (the planning worker runs them)"
              + (f"; one on its CT stored in the PACS at {pacs.display_url}" if pacs is not None else "") + "...",
              file=sys.stderr)
        seed_demo_plans(engine, jobs_dir(url), pacs=pacs)
        if pacs is not None:
            from osteoplan.errors import PacsError
            from osteoplan.web.demo_plans import seed_demo_pacs

            print(f"Storing the neck phantom CT in the PACS at {pacs.display_url} (a demo case's CT to pick)...",
                  file=sys.stderr)
            try:
                seeded = seed_demo_pacs(engine, pacs)
            except PacsError as exc:
                print(f"warning: the demo CT was not stored in the PACS: {exc}", file=sys.stderr)
            else:
                if seeded:
                    print(f"  stored for case #{seeded[0]}: open its C2 lesion's 'CT from PACS' page",
                          file=sys.stderr)
    app = create_app(settings, engine=engine)
    shown = "localhost" if args.host in ("127.0.0.1", "0.0.0.0", "::") else args.host
    print(f"osteoplan web: http://{shown}:{args.port}/   (database: {backend.describe_url(url)})")
    if logins:
        print("Demo logins (user / password / role):")
        for user, pw, role in logins:
            print(f"  {user:<14} {pw:<18} {role}")
    print("Stop with Ctrl-C.")
    sys.stdout.flush()
    # no access log: paths carry only record numbers, but a log of every request is not needed
    # proxy headers are handled by the application, from --trusted-proxy only (uvicorn would trust 127.0.0.1)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                            proxy_headers=False)
    logging.getLogger("uvicorn.error").addFilter(HideTracebacks())
    workers = start_plan_workers(url, n_workers)
    try:
        uvicorn.Server(config).run()
    finally:
        stop_plan_workers(workers)
    return 0


def start_plan_workers(url: str, n: int) -> list:
    """Start *n* ``osteoplan worker`` processes on the registry *url* (see :mod:`osteoplan.faces.worker`)."""
    import subprocess

    if n <= 0:
        return []
    argv = [sys.executable, "-m", "osteoplan.cli", "worker", "--db", url, "--workers", "1"]
    print(f"planning workers: {n}", file=sys.stderr)
    return [subprocess.Popen(argv, stdin=subprocess.DEVNULL) for _ in range(n)]


def stop_plan_workers(procs: list) -> None:
    """Stop the workers (SIGTERM: a running job is marked failed with the reason, its planner leaves nothing
    half-written)."""
    import subprocess

    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
