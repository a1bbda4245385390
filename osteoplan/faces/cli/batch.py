"""``osteoplan batch``: plan every case of a cohort on Dask distributed (one ``osteoplan plan`` per case)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from osteoplan.cliargs import non_negative_int, positive_int
from osteoplan.errors import InputError

BATCH_HELP_EPILOG = (
    "Cases are named by the cohort -- the case folder's name, or the CSV's 'case' column (else its row number, "
    "row-0001...) -- and by nothing read from the images; these names appear in the output folder names, the "
    "results table and the logs, so they must never be patient names, IDs or dates: use study numbers. "
    "Output: OUT/<case>/ the plan folder exactly as 'osteoplan plan' writes it; OUT/results.csv and "
    "OUT/results.parquet (case, status, verdict, exit code, screw/path length, smallest clearance and its "
    "structure, seconds per stage, error); OUT/summary.txt; OUT/.batch/ done markers (a re-run skips the cases "
    "already planned with the same inputs and options; failed cases are run again) and per-case logs. "
    "Status per case: planned (the plan folder is written whatever the verdict; exit_code is the verdict's, as "
    "in plan), refused (plan refused the case with its one-line error, e.g. C2 not found: not retried) or failed "
    "(an unexpected error or a lost worker: retried). Exit status: 0 every case planned (whatever its verdict); "
    "1 at least one case refused or failed (the others are planned); 2 bad input.")


def _batch_cmd(args: argparse.Namespace) -> int:
    import os

    from osteoplan.batch import read_cohort
    from osteoplan.batch.runner import run_batch
    from osteoplan.batch.table import summary_text, write_results
    from osteoplan.cliargs import blame
    from osteoplan.planning.protocol import load_protocol

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError("--out: it is a file, not a folder; choose a folder for the batch output.")
    cohort = Path(args.cohort)
    if cohort.resolve() == out.resolve() or cohort.resolve() in out.resolve().parents:
        raise InputError("--out: it is inside the cohort folder; choose an output folder outside the cohort.")
    if args.memory_limit is not None:
        from dask.utils import parse_bytes

        try:
            args.memory_limit = parse_bytes(args.memory_limit)
        except (ValueError, TypeError):
            raise InputError("--memory-limit: not a size; write it like 3GiB or 3000MB.") from None
        if args.memory_limit < 256 * 2**20:
            raise InputError("--memory-limit: below 256 MiB a worker cannot even start; give at least 1GiB.")
    cases = read_cohort(cohort)
    if args.protocol:
        with blame("--protocol"):
            load_protocol(args.protocol)  # a bad protocol fails before the cluster starts
    options = {"protocol": args.protocol, "side": args.side, "no_report": args.no_report, "no_risk": args.no_risk,
               "plan_args": []}
    quiet = args.quiet or os.environ.get("OSTEOPLAN_QUIET", "") in ("1", "true", "yes")
    if not quiet:
        where = f"the Dask cluster at --scheduler" if args.scheduler else f"{args.workers} local worker(s)"
        print(f"osteoplan batch: {len(cases)} case(s) on {where}", file=sys.stderr, flush=True)
    res = run_batch(cases, out, options, workers=args.workers, scheduler=args.scheduler, retries=args.retries,
                    memory_limit=args.memory_limit, quiet=quiet)
    csv_path, pq_path = write_results(res.records, out)
    text = summary_text(res.records, wall_s=res.wall_s, workers=res.workers, skipped=res.skipped)
    from osteoplan.atomic import atomic_write_text

    atomic_write_text(out / "summary.txt", text + "\n")
    print(text)
    print(f"Results: {csv_path} and {pq_path.name}")
    return 1 if res.failed else 0


def register(sub) -> None:
    """Add ``batch`` to the top-level command line."""
    from osteoplan.planning.protocol_names import DEFAULT_PROTOCOL

    p = sub.add_parser("batch", help="plan every case of a cohort (folder or CSV) on Dask, one task per case",
                       description="Plan every case of COHORT with 'osteoplan plan' on Dask distributed: a local "
                       "cluster of single-threaded worker processes (--workers), or an existing cluster "
                       "(--scheduler). A failed case is recorded with its one-line error and never stops the batch.",
                       epilog=BATCH_HELP_EPILOG)
    p.add_argument("cohort", metavar="COHORT",
                   help="a folder of case folders (each with ct.nii.gz / ct.nrrd / a DICOM series, optional masks: a "
                   "masks/ sub-folder or NIfTI masks next to the CT) or a CSV with columns ct (required), case, "
                   "masks, protocol, level (relative paths from the CSV's folder)")
    p.add_argument("--out", required=True, help="output folder (plan folders, results table, markers)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=positive_int, default=2,
                   help="local worker processes, one thread each (default 2)")
    g.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="address of a running Dask scheduler (tcp://host:8786), e.g. one started by dask-jobqueue "
                   "on SLURM, SSHCluster or dask-kubernetes (see the README); its workers must have osteoplan "
                   "installed and see the cohort and --out paths")
    p.add_argument("--protocol", default=None,
                   help=f"protocol name or .toml file for every case without a CSV 'protocol' (default: plan's, "
                   f"{DEFAULT_PROTOCOL})")
    p.add_argument("--side", choices=("left", "right", "best"), default=None, help="skin-entry side (as in plan)")
    p.add_argument("--retries", type=non_negative_int, default=1,
                   help="times a failed case is run again when a retry may help (lost worker, memory limit, "
                   "unexpected error; not osteoplan's input/anatomy/planning errors) (default 1)")
    p.add_argument("--memory-limit", default=None, metavar="SIZE",
                   help="memory per local worker, e.g. 3GiB (default: 4 GiB, less when the workers would not fit "
                   "in 90%% of the RAM); a worker above it is restarted and its case retried or recorded as failed")
    p.add_argument("--no-report", action="store_true", help="as in plan: plan.json, plan.mrk.json and the report "
                   "inputs only (much faster)")
    p.add_argument("--no-risk", action="store_true", help="as in plan: skip the fracture-risk assessment")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar (the summary is still printed)")
    p.set_defaults(handler=_batch_cmd)
