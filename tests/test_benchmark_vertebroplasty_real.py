"""Smoke test of benchmarks/vertebroplasty_real.py (synthetic vertebra; the real cases run from the script)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def test_vertebroplasty_real_smoke(capsys):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "vertebroplasty_real.py"
    spec = importlib.util.spec_from_file_location("vertebroplasty_real", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    # the table holds the plan's canal clearance and its brute-force recomputation, equal to 0.1 mm
    row = [r for r in out.splitlines() if r.startswith("| L1 |")][0].split("|")
    canal, brute = float(row[8]), float(row[9])
    assert abs(canal - brute) <= 0.6 and "FEASIBLE" in out
