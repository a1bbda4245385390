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
    if enabled():
        print(f" done ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
