"""Progress messages for long steps, on stderr, silenced with ``--quiet`` or ``OSTEOPLAN_QUIET=1``.

Messages must never contain identifying data.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Iterator


def enabled() -> bool:
    """True unless progress output was switched off."""
    return os.environ.get("OSTEOPLAN_QUIET", "") not in ("1", "true", "yes")


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
    """Print ``label ...`` then ``done (1.2 s)`` around a block."""
    t0 = time.perf_counter()
    if enabled():
        print(f"  {label} ...", end="", file=sys.stderr, flush=True)
    try:
        yield
    except BaseException:
        if enabled():
            print(" failed", file=sys.stderr, flush=True)
        raise
    for rec in _recorders:
        rec.append((label, time.perf_counter() - t0))
    if enabled():
        print(f" done ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
