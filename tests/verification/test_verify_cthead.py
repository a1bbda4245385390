"""One check on real bone: a synthetic control CT of CThead (real cadaver CT, 1 x 1 x 2 mm, dental metal)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

# C2 anteroinferior body corner and dens apex found by osteoplan.anatomy.c2.locate_c2 on cthead/ct.nii.gz (LPS mm;
# benchmarks/bench_verify.py recomputes them); the planned line runs from the corner to 3 mm below the apex.
AI_LPS_MM = np.array([109.31, 112.23, -182.92])
APEX_LPS_MM = np.array([106.80, 116.70, -148.00])


@pytest.mark.slow
def test_cthead_moved_patient_deviated_wire(shared_data):
    from osteoplan.imaging import read_volume
    from osteoplan.verification import verify_control
    from osteoplan.verification.synth import make_control_ct

    vol = read_volume(shared_data / "cthead" / "ct.nii.gz")
    u = (APEX_LPS_MM - AI_LPS_MM) / np.linalg.norm(APEX_LPS_MM - AI_LPS_MM)
    traj = SimpleNamespace(skin_entry_lps_mm=AI_LPS_MM - 60 * u, bone_entry_lps_mm=AI_LPS_MM,
                           target_lps_mm=APEX_LPS_MM - 3 * u, clearances=(), screw=None, instrument_radius_mm=None)
    ctrl, truth = make_control_ct(vol, traj.skin_entry_lps_mm, traj.target_lps_mm, seed=5, angle_deg=4.0,
                                  offset_mm=3.0, short_of_target_mm=6.0, diameter_mm=2.5, rotation_deg=7.0,
                                  translation_mm=14.0)
    res = verify_control(traj, vol, ctrl)
    # the worst-case target (1 mm), and inside twice the stated uncertainty
    err = np.linalg.norm(np.asarray(res["tip_lps_mm"]) - truth.tip_planning_lps_mm)
    assert err <= 1.0 and err <= 2.0 * res["tip_uncertainty_mm"]
    assert abs(res["angle_to_plan_deg"] - 4.0) <= 0.5
    assert res["registration"]["trusted"] and res["instruments_found"] == 1  # the dental metal is not taken
    assert res["instrument"]["rear_cut_by_fov"]  # the wire leaves the CT through its lower edge
