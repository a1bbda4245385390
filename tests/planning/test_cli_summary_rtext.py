"""The CLI clearance table: a structure with no distance (not segmented, not assessable) prints "n/a" without a
unit in the clearance column, aligned with the numbers (it printed "-mm")."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def test_not_assessed_clearance_is_n_a_without_unit_and_aligned():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))
    from export_planfactory import make_plan

    from osteoplan.faces.cli.summary import summary_text
    from osteoplan.imaging.volume import Volume, axis_aligned_affine

    vol = Volume(np.zeros((20, 30, 30), np.float32), axis_aligned_affine((2.0, 1.0, 1.0), (-15.0, -15.0, -20.0)))
    plan = make_plan(vol, [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0.0, 0.0, 0.0])
    lines = summary_text(plan).splitlines()
    row = {s: next(L for L in lines if L.strip().startswith(s + " "))
           for s in ("internal_jugular_vein_left", "spinal_canal", "airway")}
    na, measured = row["internal_jugular_vein_left"], row["spinal_canal"]
    assert "-mm" not in na and "n/a mm" not in na and "n/amm" not in na
    # the table's columns: structure 32, category 14, margin "%6.1fmm", clearance right-aligned in 9 + unit
    start = 4 + 32 + 14 + 8
    assert measured[start:start + 11] == "      4.6mm"
    assert na[start:start + 11] == "      n/a  "           # last letter under the numbers' last digit
    assert na[start + 11:].strip() == "not assessed (not segmented)"
    assert row["airway"][start:start + 11] == "     -1.0mm"
