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


def openkbp_cases(names: str | list[str] = "", limit: int = 0) -> list[Path] | None:
    """The OpenKBP case folders (``pt_N``) of the shared data, in case-number order.

    Parameters
    ----------
    names : str or list of str
        Only these cases (comma-separated string or list, e.g. ``"pt_1,pt_3"``); all when empty.
    limit : int
        Only the first *limit* cases (after the name filter); all when 0.

    Returns
    -------
    list of Path, or None when ``openkbp/`` is absent from the shared data.
    """
    d = shared_data_dir()
    if d is None or not (d / "openkbp").is_dir():
        return None
    cases = sorted((p for p in (d / "openkbp").glob("pt_*") if p.is_dir()), key=lambda p: int(p.name.split("_")[1]))
    want = set(names.split(",") if isinstance(names, str) else names) - {""}
    if want:
        cases = [c for c in cases if c.name in want]
    return cases[:limit] if limit else cases
