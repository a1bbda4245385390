"""Shared fixtures. Real-data tests use ``shared_data`` and skip with a reason when it is absent."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OSTEOPLAN_QUIET", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def shared_data():
    """Path to ../shared/data; skips the test when the folder is absent."""
    from osteoplan.shared_data import shared_data_dir

    d = shared_data_dir()
    if d is None:
        pytest.skip("../shared/data is absent on this machine (real-CT tests run in CI where it is present)")
    return d
