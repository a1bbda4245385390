"""progress.profiling / stage / format_profile: the stage table of ``osteoplan plan --profile``."""

from __future__ import annotations

import time

import pytest

from osteoplan.progress import format_profile, profiling, stage, step


def _burn(seconds: float) -> None:
    t = time.process_time()
    while time.process_time() - t < seconds:
        pass


def test_nested_stages_in_start_order_with_depth_and_cpu(monkeypatch):
    monkeypatch.setenv("OSTEOPLAN_QUIET", "1")
    with profiling() as rows:
        with step("outer"):
            with stage("first"):
                _burn(0.02)
            with stage("second"):
                with stage("inner"):
                    _burn(0.01)
        with pytest.raises(ValueError):
            with stage("broken"):
                raise ValueError("x")
    assert [(d, label) for d, label, _, _ in rows] == [(0, "outer"), (1, "first"), (1, "second"), (2, "inner"),
                                                      (0, "broken")]
    outer, first, second, inner, broken = rows
    assert first[2] >= 0.02 and inner[2] >= 0.01
    assert outer[2] >= first[2] + second[2] and second[2] >= inner[2]
    assert broken[2] is None  # a failed stage has no time
    table = format_profile(rows, total_cpu_s=1.5, total_wall_s=2.0)
    assert "| . . inner |" in table and "| broken | failed |" in table
    assert table.splitlines()[-1] == "| total (the command, from its start) | 1.500 | 2.000 |"


def test_stage_is_silent_and_unrecorded_without_profiling():
    with stage("nothing"):
        pass
    with profiling() as rows:
        pass
    assert rows == []
