"""``osteoplan worker``: run the planning jobs queued by the web application (:mod:`osteoplan.faces.worker`)."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    """Add the ``worker`` subcommand."""
    p = sub.add_parser("worker", help="run the planning jobs queued in the registry (web app: 'Plan on a CT')",
                       description="Take queued planning jobs from the registry's database and run 'osteoplan plan' "
                       "on each, one at a time per worker process; a running job whose worker stopped is marked "
                       "failed with the reason. 'osteoplan serve' starts workers itself (--plan-workers).")
    p.add_argument("--db", default=None, metavar="URL",
                   help="SQLAlchemy database URL or SQLite file (default: the same as 'osteoplan serve')")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes (default 1)")
    p.add_argument("--once", action="store_true", help="run the queued jobs, then exit when the queue is empty")
    p.add_argument("--poll-s", type=float, default=1.0, help=argparse.SUPPRESS)
    p.add_argument("--lease-s", type=float, default=None, metavar="S",
                   help="seconds without a heartbeat after which a running job is declared failed (default 30)")
    p.set_defaults(handler=_worker_cmd)


def _worker_cmd(args) -> int:
    from osteoplan.errors import InputError
    from osteoplan.faces.worker import run_workers
    from osteoplan.web.cli import _db_url
    from osteoplan.workflow.jobs import DEFAULT_LEASE_S

    if args.workers < 1 or args.workers > 64:
        raise InputError("--workers: give a number of worker processes from 1 to 64")
    lease = DEFAULT_LEASE_S if args.lease_s is None else args.lease_s
    if not lease > 2:
        raise InputError("--lease-s: give more than 2 seconds (workers send a heartbeat every second)")
    return run_workers(_db_url(args.db), args.workers, once=args.once, poll_s=max(0.1, args.poll_s), lease_s=lease)
