"""Smoke test of ``benchmarks/load_web.py --pages`` (issue 15) with a small data set: it seeds, serves, requests
every case-list and worklist page and reports p50 / p95 without errors. No timing is asserted."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import REPO

pytestmark = [pytest.mark.slow]


def test_pages_benchmark_runs_on_a_small_registry(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("OSTEOPLAN_TEST_PG_URL", None)  # SQLite only here
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "load_web.py"), "--pages", "--cases", "24",
                        "--base-cases", "12", "--requests", "2", "--seconds", "5", "--clients", "1",
                        "--db", str(tmp_path / "pages.db")],
                       capture_output=True, text=True, timeout=600, cwd=str(REPO), env=env)
    assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]
    out = r.stdout
    assert "Pages with 24 demo cases (sqlite)" in out and "total errors: 0" in out
    for page in ("case list, first page", "case list, stage=followed", "worklist, coordinator",
                 "worklist iCalendar, coordinator"):
        rows = [line for line in out.splitlines() if line.startswith(f"| {page} |")]
        assert len(rows) == 1 and rows[0].split("|")[3].strip() == "2", page  # 1 client, 2 requests
