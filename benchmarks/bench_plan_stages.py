"""Stage table of ``osteoplan plan`` on one core: CPU seconds per stage (and the anatomy's sub-stages).

Runs ``osteoplan plan CT --out TMP --profile`` in one fresh process per run (numba, BLAS, OpenMP and
SimpleITK pinned to one thread), without exports (``--no-report``) and with every export, and prints the
stage table of each (CPU = ``time.process_time`` of the process: the work done, much less sensitive than
the wall time to the load of a shared machine). The alternative in the same run: the same command with
``--reference`` (a second checkout, e.g. the main branch before a change) on ``PYTHONPATH``.

    .venv/bin/python benchmarks/bench_plan_stages.py [--ct ../shared/data/cthead/ct.nii.gz] [--reference /work/main]
        [--no-exports | --exports-only] [--repeat 1]

A reference checkout without ``--profile`` (before this table existed) is run through a small wrapper that
times its top-level stages (``osteoplan.progress.step``) by CPU time the same way; its anatomy has no sub-stages.
The process's start-up (interpreter, imports, numba cache loading) is in the line
``process (start-up + command)``, measured with ``resource.getrusage`` of the child.

Each checkout's ``osteoplan`` package is byte-compiled once before the runs (``compileall``), as an installed
package is: with ``PYTHONDONTWRITEBYTECODE`` set (as on the development machine) a source tree without
``__pycache__`` would otherwise be compiled again by every run (~0.13 s CPU on the plan path), which would
favour whichever checkout happens to hold ``.pyc`` files.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ONE_CORE = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1"}


#: Runs ``osteoplan.cli.main`` with every ``progress.step`` timed by CPU (for checkouts without ``--profile``).
_WRAPPER = r"""
import contextlib, sys, time
import osteoplan.progress as P
argv = sys.argv[1:]
if not hasattr(P, "profiling"):
    argv = [a for a in argv if a != "--profile"]
    rows, orig = [], P.step

    @contextlib.contextmanager
    def step(label):
        row = [0, label, None, None]
        rows.append(row)
        c0, t0 = time.process_time(), time.perf_counter()
        with orig(label):
            yield
        row[2], row[3] = time.process_time() - c0, time.perf_counter() - t0

    P.step = step
    c0, t0 = time.process_time(), time.perf_counter()
    from osteoplan.cli import main
    try:
        rc = main(argv)
    finally:
        print("| stage | CPU s | wall s |", file=sys.stderr)
        for _, label, cpu, wall in rows:
            print(f"| {label} | {'failed' if cpu is None else f'{cpu:.3f}'} | {'' if wall is None else f'{wall:.3f}'} |",
                  file=sys.stderr)
        print(f"| total (the command, from its start) | {time.process_time() - c0:.3f} | {time.perf_counter() - t0:.3f} |",
              file=sys.stderr)
    sys.exit(rc)
from osteoplan.cli import main
sys.exit(main(argv))
"""


def run_plan(ct: str, code_root: Path, exports: bool, extra: list[str] | None = None) -> tuple[list[tuple[str, float]], float, int]:
    """One ``osteoplan plan --profile`` in a fresh process with *code_root* first on PYTHONPATH.

    Returns ``(rows, child_cpu_s, exit_code)``: rows ``(stage label with its depth dots, CPU s)``.
    """
    env = {**os.environ, **ONE_CORE, "PYTHONPATH": str(code_root), "OSTEOPLAN_QUIET": "1"}
    with tempfile.TemporaryDirectory() as td:
        cmd = [sys.executable, "-c", _WRAPPER, "plan", ct, "--out", str(Path(td) / "plan"), "--profile"]
        if not exports:
            cmd.append("--no-report")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = subprocess.run(cmd + (extra or []), capture_output=True, text=True, env=env, cwd=str(code_root))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rows = []
    for ln in r.stderr.splitlines():
        m = re.match(r"\| (.+?) \| ([0-9.]+|failed) \| ([0-9.]*) \|$", ln)
        if m and m.group(1) not in ("stage",):
            rows.append((m.group(1), float(m.group(2)) if m.group(2) != "failed" else float("nan")))
    if not rows:
        raise RuntimeError(f"no profile table from {code_root} (exit {r.returncode}): {r.stderr[-500:]}")
    return rows, child_cpu, r.returncode


def main(argv=None) -> int:
    root = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ct", default=str(root.parent / "shared" / "data" / "cthead" / "ct.nii.gz"))
    ap.add_argument("--reference", type=Path, default=None,
                    help="another checkout to compare with in the same run (it must have 'plan --profile')")
    ap.add_argument("--no-exports", action="store_true", help="only the run without exports")
    ap.add_argument("--exports-only", action="store_true", help="only the run with every export")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each; the smallest CPU per stage is kept")
    ap.add_argument("--protocol", default=None)
    args = ap.parse_args(argv)
    extra = ["--protocol", args.protocol] if args.protocol else []
    codes = [("this checkout", root)] + ([("reference", args.reference.resolve())] if args.reference else [])
    for _, code in codes:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(code / "osteoplan")], check=False,
                       capture_output=True)
    modes = [False] if args.no_exports else ([True] if args.exports_only else [False, True])
    print(f"`osteoplan plan {Path(args.ct).name}` on one core (CPU s = process_time; best of {args.repeat})\n")
    rc_all = 0
    for exports in modes:
        # the checkouts alternate run by run (this, reference, this, ...): a shared machine's load falls on both
        best: dict[str, dict[str, float]] = {name: {} for name, _ in codes}
        order: dict[str, list[str]] = {name: [] for name, _ in codes}
        child = {name: float("inf") for name, _ in codes}
        for _ in range(max(1, args.repeat)):
            for name, code in codes:
                rows, cpu, rc = run_plan(args.ct, code, exports, extra)
                rc_all = rc_all or (rc if rc in (1, 2) else 0)
                child[name] = min(child[name], cpu)
                for label, v in rows:
                    if label not in best[name]:
                        order[name].append(label)
                        best[name][label] = v
                    else:
                        best[name][label] = min(best[name][label], v)
        results = {}
        for name, _ in codes:
            best[name]["process (start-up + command)"] = child[name]
            results[name] = (order[name] + ["process (start-up + command)"], best[name])
        print(f"### {'with every export' if exports else 'without exports (--no-report)'}\n")
        head = "| stage | " + " | ".join(f"{n} CPU s" for n, _ in codes) + " |"
        print(head)
        print("|---|" + "---:|" * len(codes))
        labels = list(results[codes[0][0]][0])
        for n, _ in codes[1:]:
            labels += [x for x in results[n][0] if x not in labels]
        for label in labels:
            cells = []
            for n, _ in codes:
                v = results[n][1].get(label)
                cells.append("" if v is None else f"{v:.3f}")
            print(f"| {label} | " + " | ".join(cells) + " |")
        print()
    return rc_all


if __name__ == "__main__":
    sys.exit(main())
