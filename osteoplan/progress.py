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


@contextmanager
def step(label: str) -> Iterator[None]:
    """Print ``label ...`` then ``done (1.2 s)`` around a block (and record it, see the module's docstring)."""
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
