"""Smoke test of benchmarks/openkbp_plans.py (so it cannot rot) and of its independent brute-force clearance."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "openkbp"


def _bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "openkbp_plans.py"
    spec = importlib.util.spec_from_file_location("openkbp_plans_bench", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_brute_clearance_hand_computed():
    """A capsule of radius 1 along z from (0, 0, 0) to (0, 0, 10) and a one-voxel mask at (4, 0, 5): 3 mm;
    a voxel on the axis: -1 (inside the capsule by its radius)."""
    from osteoplan.imaging.volume import Volume, axis_aligned_affine

    vol = Volume(np.zeros((12, 12, 12), np.float32), axis_aligned_affine((1.0, 1.0, 1.0), (-6.0, -6.0, -1.0)))
    m = np.zeros(vol.shape, bool)
    m[tuple(np.rint(vol.world_to_index(np.array([4.0, 0.0, 5.0]))).astype(int))] = True
    b = _bench()
    a, c = np.array([0.0, 0.0, 0.0]), np.array([0.0, 0.0, 10.0])
    assert b.brute_clearance(vol, m, a, c, 1.0) == pytest.approx(3.0, abs=0.02)
    m2 = np.zeros(vol.shape, bool)
    m2[tuple(np.rint(vol.world_to_index(np.array([0.0, 0.0, 5.0]))).astype(int))] = True
    assert b.brute_clearance(vol, m2, a, c, 1.0) == pytest.approx(-1.0, abs=1e-9)


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "pt_1").is_dir(), reason="../shared/data/openkbp is absent")
def test_openkbp_plans_runs_on_two_cases(tmp_path):
    b = _bench()
    out = tmp_path / "t.md"
    assert b.main(["--cases", "pt_1,pt_2", "--markdown", str(out)]) == 0
    text = out.read_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("| pt_")]
    assert len(rows) == 2 and "through a hollow viscus (brute force): 0" in text
