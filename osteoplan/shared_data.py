"""Where the project's shared real CT data lives (never copied into the repository).

``OSTEOPLAN_SHARED_DATA`` overrides; the default is ``<repository>/../shared/data``.
"""

from __future__ import annotations

import os
from pathlib import Path


def shared_data_dir() -> Path | None:
    """The shared data folder, or None when it is absent (tests then skip with a reason)."""
    env = os.environ.get("OSTEOPLAN_SHARED_DATA")
    cands = [Path(env)] if env else []
    cands.append(Path(__file__).resolve().parents[1].parent / "shared" / "data")
    cands.append(Path.cwd().parent / "shared" / "data")
    for c in cands:
        if c.is_dir():
            return c
    return None
