"""One task per case: run ``osteoplan plan`` on it, exactly as the command line does, and return a record.

The case is planned by the ``plan`` command's own handler (the parser of :func:`osteoplan.cli.build_parser`
and the handler it registers), so a batch plan folder is what ``osteoplan plan CT --masks M --out OUT/<case>``
writes, and the batch follows the planner through its rewrites without code of its own. The record (one row of
the results table) holds the verdict, the exit status, key figures read back from ``plan.json`` and the time of
each stage (the :func:`osteoplan.progress.step` blocks the command runs).

A record is written atomically to ``OUT/.batch/done/<case>.json`` when the case was planned (the done marker
that makes a batch resumable) or to ``OUT/.batch/failed/<case>.json`` when it failed; the command's printed
summary and progress go to ``OUT/.batch/logs/<case>.log``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

from osteoplan.batch.cohort import Case

__all__ = ["plan_case", "plan_argv", "key_figures", "stage_times", "BATCH_DIR", "RECORD_FIELDS",
           "write_record", "read_record", "failure_record"]

#: Hidden folder under OUT with the per-case markers and logs.
BATCH_DIR = ".batch"

#: Columns of the results table, in order (see :func:`plan_case`).
RECORD_FIELDS: tuple[tuple[str, str], ...] = (
    ("case", "string"), ("status", "string"), ("verdict", "string"), ("exit_code", "int"),
    ("protocol", "string"), ("level", "string"), ("side", "string"),
    ("screw_length_mm", "float"), ("screw_diameter_mm", "float"), ("path_length_mm", "float"),
    ("min_clearance_mm", "float"), ("min_clearance_structure", "string"), ("n_not_assessed", "int"),
    ("n_candidates", "int"), ("n_feasible", "int"),
    ("t_read_s", "float"), ("t_anatomy_s", "float"), ("t_risk_s", "float"), ("t_search_s", "float"),
    ("t_other_s", "float"), ("t_total_s", "float"), ("attempts", "int"), ("error", "string"),
    ("note", "string"),
)

#: Stage of each ``progress.step`` label, by the first keyword found in it (the rest counts as 'other':
#: writing the plan folder, exports, imports).
STAGE_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("reading", "read"), ("anatomy", "anatomy"), ("risk", "risk"), ("planning", "search"), ("search", "search"),
)

#: Thread counts pinned to 1 in every worker (one case per single-threaded process: no over-subscription).
THREAD_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1",
              "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1"}


@functools.lru_cache(maxsize=1)
def _plan_parser():
    """The ``osteoplan`` parser and the option strings of its ``plan`` command (built once per worker)."""
    import argparse

    from osteoplan.cli import build_parser

    parser = build_parser()
    options: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and "plan" in action.choices:
            for a in action.choices["plan"]._actions:
                options.update(a.option_strings)
    return parser, frozenset(options)


def plan_argv(case: Case, out_dir: Path, options: dict[str, Any]) -> tuple[list[str], str | None]:
    """The ``osteoplan plan`` arguments for *case* (and a note when a CSV column could not be passed on).

    Parameters
    ----------
    case : Case
    out_dir : Path
        The case's plan folder, ``OUT/<case>``.
    options : dict
        ``protocol`` (default protocol), ``side``, ``no_report``, ``no_risk`` (bool), ``plan_args`` (list of
        further ``plan`` arguments given after ``--`` on the batch command line).
    """
    _, known = _plan_parser()
    argv = ["plan", case.ct, "--out", str(out_dir), "--overwrite"]
    if case.masks:
        argv += ["--masks", case.masks]
    protocol = case.protocol or options.get("protocol")
    if protocol:
        argv += ["--protocol", str(protocol)]
    if options.get("side"):
        argv += ["--side", options["side"]]
    if options.get("no_report"):
        argv.append("--no-report")
    if options.get("no_risk"):
        argv.append("--no-risk")
    note = None
    if case.level:
        if "--level" in known:
            argv += ["--level", case.level]
        else:
            note = f"level {case.level} not passed on: this osteoplan's plan command has no --level (the protocol sets it)"
    argv += list(options.get("plan_args") or ())
    return argv, note


def stage_times(steps: list[tuple[str, float]], total_s: float) -> dict[str, float]:
    """Seconds per stage (``t_read_s`` ... ``t_other_s``, ``t_total_s``) from the recorded step labels."""
    out = {f"t_{s}_s": 0.0 for s in ("read", "anatomy", "risk", "search")}
    for label, sec in steps:
        low = label.lower()
        for word, stage in STAGE_KEYWORDS:
            if word in low:
                out[f"t_{stage}_s"] += sec
                break
    out["t_other_s"] = max(0.0, total_s - sum(out.values()))
    out["t_total_s"] = total_s
    return {k: round(v, 3) for k, v in out.items()}


def key_figures(plan_json: Path) -> dict[str, Any]:
    """Verdict and key figures of a written plan (None where the plan has no such figure).

    Returns
    -------
    dict
        ``verdict`` (code), ``exit_code``, ``protocol``, ``side``, ``screw_length_mm``, ``screw_diameter_mm``,
        ``path_length_mm`` (skin entry to target: the needle/trocar length needed), ``min_clearance_mm`` and
        ``min_clearance_structure`` (the smallest measured instrument-surface clearance of the best path, over
        the structures that were assessed; on a tie the first name in alphabetical order, e.g. ``airway`` before
        its part ``pharynx``), ``n_not_assessed``, ``n_candidates``, ``n_feasible``.
    """
    from osteoplan.planning.model import load_plan
    from osteoplan.planning.verdict import verdict_of

    plan = load_plan(plan_json)
    v = verdict_of(plan)
    rec: dict[str, Any] = {"verdict": v.code, "exit_code": int(v.exit_code),
                           "protocol": getattr(plan, "protocol_name", None), "side": getattr(plan, "side", None),
                           "n_not_assessed": len(getattr(plan, "not_assessed", ()) or ())}
    search = getattr(plan, "search", None)
    rec["n_candidates"] = getattr(search, "n_candidates", None)
    rec["n_feasible"] = getattr(search, "n_feasible", None)
    best = plan.best
    if best is not None:
        screw = getattr(best, "screw", None)
        rec["screw_length_mm"] = None if screw is None else float(screw.length_mm)
        rec["screw_diameter_mm"] = None if screw is None else float(screw.diameter_mm)
        rec["path_length_mm"] = round(float(best.depth_total_mm), 3)
        measured = [c for c in best.clearances if c.clearance_mm is not None]
        if measured:
            c = min(measured, key=lambda c: (c.clearance_mm, c.structure))
            rec["min_clearance_mm"] = round(float(c.clearance_mm), 3)
            rec["min_clearance_structure"] = c.structure
    return rec


#: Longest error kept in a record (characters): osteoplan's one-line errors end with what to do (a gap's
#: position then "plan it alone with 'osteoplan plan CT --allow-gaps'" is ~330), which a cut must not lose.
ERROR_CHARS = 600


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def describe_error(exc: BaseException) -> tuple[str, bool, int]:
    """One line for a case that was not planned (no path, no identifying data), whether a retry may help, and
    the exit status ``osteoplan plan`` gives for it.

    An :class:`~osteoplan.errors.OsteoplanError` (the CT cannot be read, C2 not found...) is shown with its
    message (written without identifying data by contract) and is not retried: the same input is refused the
    same way. Anything else is shown as its type and the last place in osteoplan's code it passed, and is
    retried.
    """
    from osteoplan.errors import OsteoplanError

    if isinstance(exc, OsteoplanError):
        from osteoplan.remedies import for_face

        # the reader's remedy as the batch can follow it (it has no --allow-gaps / --series-uid of its own)
        # whole (up to ERROR_CHARS): its end says what to do
        return (_one_line(f"{type(exc).__name__}: {for_face(str(exc), 'batch')}", ERROR_CHARS), False,
                int(getattr(exc, "exit_code", 2)))
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        parts = Path(frame.filename).parts
        if "osteoplan" in parts:
            rel = "/".join(parts[len(parts) - parts[::-1].index("osteoplan") - 1:])
            where = f" at {rel}:{frame.lineno}"
            break
    return _one_line(f"unexpected {type(exc).__name__}{where}"), True, 1


def record_path(out_root: Path, case_id: str, done: bool) -> Path:
    """Where the record of a case is kept (``.batch/done/`` when planned, ``.batch/failed/`` otherwise)."""
    return Path(out_root) / BATCH_DIR / ("done" if done else "failed") / f"{case_id}.json"


def write_record(out_root: Path, rec: dict[str, Any]) -> None:
    """Write a case's record atomically (the done marker when it was planned; the other one is removed)."""
    from osteoplan.atomic import atomic_write_text

    done = rec.get("status") == "planned"
    atomic_write_text(record_path(out_root, rec["case"], done), json.dumps(rec, indent=1, sort_keys=True))
    record_path(out_root, rec["case"], not done).unlink(missing_ok=True)


def read_record(out_root: Path, case_id: str, done: bool = True) -> dict[str, Any] | None:
    """A case's record, or None when there is none (or it is unreadable: the case is then run again)."""
    try:
        return json.loads(record_path(out_root, case_id, done).read_text())
    except (OSError, ValueError):
        return None


def failure_record(case: Case, error: str, spec: str, attempts: int = 1, retryable: bool = True,
                   total_s: float | None = None, exit_code: int | None = None) -> dict[str, Any]:
    """The record of a case that was not planned: status ``"refused"`` (``plan`` refused it with its one-line
    error: not retried) or ``"failed"`` (unexpected error or lost worker: retried)."""
    rec = {name: None for name, _ in RECORD_FIELDS}
    rec.update(case=case.case_id, status="failed" if retryable else "refused", error=error, attempts=attempts,
               exit_code=exit_code if exit_code is not None else (1 if retryable else 2), level=case.level,
               spec_sha256=spec, retryable=retryable, t_total_s=None if total_s is None else round(total_s, 3))
    return rec


class _ArgumentsRefused(Exception):
    """``plan``'s parser refused the arguments built for a case (a usage error: not retried)."""


def plan_case(case: Case, out_root: str, options: dict[str, Any], attempt: int = 1) -> dict[str, Any]:
    """Plan one case with ``osteoplan plan`` and return its record (never raises for a case's failure).

    Parameters
    ----------
    case : Case
    out_root : str
        The batch's output folder; the plan folder is ``out_root/<case>``.
    options : dict
        See :func:`plan_argv`.
    attempt : int
        1 for the first try, 2... for retries (recorded in ``attempts``).

    Returns
    -------
    dict
        One row of the results table (:data:`RECORD_FIELDS`) plus ``spec_sha256`` (the inputs' hash the done
        marker is checked against) and ``retryable``. ``status`` is ``"planned"`` (the plan folder is written,
        whatever the verdict; ``exit_code`` is the verdict's), ``"refused"`` (``plan`` refused the case with its
        one-line error, e.g. C2 not found; ``exit_code`` is plan's, 2) or ``"failed"`` (an unexpected error or
        a lost worker; ``exit_code`` 1); ``error`` says why in one line.
    """
    out_root = Path(out_root)
    spec = case.spec_sha256(options)
    out_dir = out_root / case.case_id
    log_path = out_root / BATCH_DIR / "logs" / f"{case.case_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    running = running_marker(out_root, case.case_id, attempt)
    running.parent.mkdir(parents=True, exist_ok=True)
    running.touch()  # left behind only when the worker dies in the middle of the case (killed, out of memory)
    try:
        return _plan_case(case, out_root, options, attempt, spec, out_dir, log_path)
    finally:
        running.unlink(missing_ok=True)


def _plan_case(case: Case, out_root: Path, options: dict[str, Any], attempt: int, spec: str, out_dir: Path,
               log_path: Path) -> dict[str, Any]:
    from osteoplan import progress

    t0 = time.perf_counter()
    buf = io.StringIO()
    rc: int | None = None
    err: tuple[str, bool, int] | None = None
    note = None
    with progress.recording() as steps:
        try:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                parser, _ = _plan_parser()
                argv, note = plan_argv(case, out_dir, options)
                try:
                    args = parser.parse_args(argv)
                except SystemExit:
                    lines = buf.getvalue().strip().splitlines()
                    raise _ArgumentsRefused("plan refused the arguments: " + (lines[-1] if lines else "?")) from None
                rc = int(args.handler(args) or 0)
        except _ArgumentsRefused as exc:
            err = (_one_line(str(exc)), False, 2)
        except Exception as exc:  # every failure is recorded; the batch goes on
            err = describe_error(exc)
    total_s = time.perf_counter() - t0
    try:
        from osteoplan.remedies import for_face

        # the plan command's printed summary, its remedies (--series-uid...) said as the batch can follow them
        log_path.write_text(for_face(buf.getvalue(), "batch"), encoding="utf-8")
    except OSError:
        pass
    if err is None and not (out_dir / "plan.json").is_file():
        err = ("plan finished without writing plan.json", True, 1)
    if err is not None:
        rec = failure_record(case, err[0], spec, attempt, err[1], total_s, err[2])
        rec.update(stage_times(steps, total_s))
    else:
        rec = {name: None for name, _ in RECORD_FIELDS}
        rec.update(case=case.case_id, status="planned", level=case.level, attempts=attempt, spec_sha256=spec,
                   retryable=False, note=note)
        rec.update(stage_times(steps, total_s))
        try:
            rec.update(key_figures(out_dir / "plan.json"))
        except Exception as exc:  # the folder is there; the figures could not be read back
            rec["note"] = _one_line(f"key figures not read back: {describe_error(exc)[0]}")
        if rc is not None and rec.get("exit_code") is not None and rc != rec["exit_code"]:
            rec["note"] = f"plan exited {rc}, verdict says {rec['exit_code']}"
    write_record(out_root, rec)
    return rec


def running_marker(out_root: Path, case_id: str, attempt: int) -> Path:
    """The marker a task holds while it runs (``.batch/running/<case>.<attempt>.<pid>``): one left behind at the
    end of a batch is a case whose worker died under it (Dask then ran the case again on a live worker)."""
    return Path(out_root) / BATCH_DIR / "running" / f"{case_id}.{attempt}.{os.getpid()}"


def worker_environment() -> dict[str, str]:
    """The thread settings a worker runs with (for checks: one thread per library)."""
    return {k: os.environ.get(k, "") for k in THREAD_ENV}
