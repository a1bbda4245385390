"""Atomic outputs get the usual permissions (umask), not the private 0600/0700 of temporary files."""

from __future__ import annotations

import os
import stat

from osteoplan.atomic import atomic_dir, atomic_write_text


def test_atomic_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        with atomic_dir(tmp_path / "out") as tmp:
            (tmp / "x.txt").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644  # was 0o600
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755     # was 0o700
    assert (tmp_path / "out" / "x.txt").read_text() == "x"
