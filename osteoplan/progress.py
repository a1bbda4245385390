"""Progress messages for long steps, on stderr, silenced with ``--quiet`` or ``OSTEOPLAN_QUIET=1``.

Messages must never contain identifying data.

When ``OSTEOPLAN_PROGRESS_FILE`` names a file, every step also appends one JSON line to it
(``{"event": "start" | "done" | "failed", "label": ..., "t": unix seconds}``): the planning-job worker
(:mod:`osteoplan.faces.worker`) follows the stages of ``osteoplan plan`` this way, whatever ``--quiet`` says.
"""

from __future__ import annotations

import os
import sys
import json
import time
from contextlib import contextmanager
from typing import Iterator


def enabled() -> bool:
    """True unless progress output was switched off."""
    return os.environ.get("OSTEOPLAN_QUIET", "") not in ("1", "true", "yes")


def _record(event: str, label: str) -> None:
    """Append one event to ``$OSTEOPLAN_PROGRESS_FILE`` (nothing when unset; a write error never stops the work)."""
    path = os.environ.get("OSTEOPLAN_PROGRESS_FILE")
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"event": event, "label": label, "t": time.time()}) + "\n")
    except OSError:
        pass
#: Lists receiving ``(label, seconds)`` of every completed :func:`step` (see :func:`recording`).
_recorders: list[list[tuple[str, float]]] = []


@contextmanager
def recording() -> Iterator[list[tuple[str, float]]]:
    """Collect ``(label, seconds)`` of every :func:`step` completed inside the block (quiet or not).

    Used by ``osteoplan batch`` for the per-stage timings of each case.
    """
    rec: list[tuple[str, float]] = []
    _recorders.append(rec)
    try:
        yield rec
    finally:
        _recorders.remove(rec)


#: Active profiles (see :func:`profiling`): rows ``[depth, label, cpu_s, wall_s]`` in the order the stages start.
_profiles: list[list[list]] = []
_depth = [0]


@contextmanager
def profiling() -> Iterator[list[list]]:
    """Collect the CPU and wall time of every :func:`step` and :func:`stage` completed inside the block.

    Yields a list of rows ``[depth, label, cpu_s, wall_s]`` (depth 0 for the outermost stages), in the order the
    stages started; a stage that failed keeps ``cpu_s = None``. CPU time is :func:`time.process_time` (every
    thread of the process): on a shared machine it measures the work, the wall time also the waiting.
    Used by ``osteoplan plan --profile`` (:func:`format_profile`).
    """
    rows: list[list] = []
    _profiles.append(rows)
    try:
        yield rows
    finally:
        _profiles.remove(rows)


@contextmanager
def stage(label: str) -> Iterator[None]:
    """A silent sub-stage: timed only while :func:`profiling` is active (no output, nearly free otherwise)."""
    if not _profiles:
        yield
        return
    rows = [[_depth[0], label, None, None] for _ in _profiles]
    for prof, row in zip(_profiles, rows):
        prof.append(row)
    c0, t0 = time.process_time(), time.perf_counter()
    _depth[0] += 1
    try:
        yield
    except BaseException:
        _depth[0] -= 1
        raise
    _depth[0] -= 1
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    for row in rows:
        row[2], row[3] = cpu, wall


def format_profile(rows: list[list], total_cpu_s: float | None = None, total_wall_s: float | None = None) -> str:
    """The rows of :func:`profiling` as a Markdown table (stage, CPU s, wall s), sub-stages indented."""
    lines = ["| stage | CPU s | wall s |", "|---|---:|---:|"]
    for depth, label, cpu, wall in rows:
        name = ". " * depth + label
        lines.append(f"| {name} | {'failed' if cpu is None else f'{cpu:.3f}'} | "
                     f"{'' if wall is None else f'{wall:.3f}'} |")
    if total_cpu_s is not None:
        lines.append(f"| total (the command, from its start) | {total_cpu_s:.3f} | "
                     f"{'' if total_wall_s is None else f'{total_wall_s:.3f}'} |")
    return "\n".join(lines)


@contextmanager
def step(label: str) -> Iterator[None]:
    """Print ``label ...`` then ``done (1.2 s)`` around a block (and record it, see the module's docstring)."""
    with stage(label):
        with _step(label):
            yield


@contextmanager
def _step(label: str) -> Iterator[None]:
    t0 = time.perf_counter()
    _record("start", label)
    if enabled():
        print(f"  {label} ...", end="", file=sys.stderr, flush=True)
    try:
        yield
    except BaseException:
        _record("failed", label)
        if enabled():
            print(" failed", file=sys.stderr, flush=True)
        raise
    _record("done", label)
    for rec in _recorders:
        rec.append((label, time.perf_counter() - t0))
    if enabled():
        print(f" done ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
