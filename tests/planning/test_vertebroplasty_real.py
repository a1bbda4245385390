"""Vertebroplasty on real spine CTs (slow, ../shared/data): the cord, aorta and oesophagus from TotalSegmentator
masks kept at their margins (independent brute-force check on the voxel centres), and a DICOM series read from
disk planning like its NIfTI."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


def _bench():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "vertebroplasty_real.py"
    spec = importlib.util.spec_from_file_location("vertebroplasty_real_t", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_chest_totalseg_needles_keep_their_margins_brute_force(shared_data):
    from osteoplan.anatomy.labelmap import LabelMap
    from osteoplan.anatomy.loaders import load_nifti_file
    from osteoplan.imaging import read_volume

    b = _bench()
    d = shared_data / "chest-totalseg"
    vol = read_volume(d / "ct.nii.gz")
    lm = LabelMap(vol)
    for n in ("vertebrae_T7", "vertebrae_T8", "vertebrae_T9", "spinal_cord", "aorta", "esophagus",
              "lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right", "lung_lower_lobe_right"):
        load_nifti_file(d / "totalseg" / f"{n}.nii.gz", vol, labelmap=lm)
    an, plan, _, _ = b._plan(vol, lm, "T8")
    assert plan.procedure == "vertebroplasty" and plan.level == "T8"
    assert plan.trajectories, plan.infeasibility.message
    for t in plan.trajectories:
        for name in ("aorta", "spinal_cord", "esophagus"):
            c = t.check(name)
            assert c.segmented and c.status == "pass"
            brute = b.brute_clearance_mm(vol, an.labelmap.get(name), t)
            assert brute >= c.margin_mm - 0.5  # the sampled maps agree with the voxel centres within half a voxel
            assert c.clearance_mm == pytest.approx(min(brute, 20.0 - t.instrument_radius_mm), abs=1.3)


def test_a_dicom_series_plans_like_its_nifti(shared_data, tmp_path):
    b = _bench()
    b.DATA = shared_data
    r = b.case_dicom(tmp_path)
    assert "identical plans: True" in r["verdict"] and r["rows"], r
