"""DICOM SEG / SR / CT export: read back with pydicom + highdicom, points equal plan.json, dciodvfy clean."""

from __future__ import annotations

import shutil
import subprocess

import highdicom as hd
import numpy as np
import pydicom
import pytest

from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.export.dicom import sr_points, write_dicom
from osteoplan.imaging.volume import Volume

from export_planfactory import make_plan


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    aff = np.eye(4)
    aff[:3, 0] = (0, 0, -2.0)    # slices towards inferior, as cthead
    aff[:3, 1] = (0, 0.9, 0)
    aff[:3, 2] = (0.9, 0, 0)
    aff[:3, 3] = (-12.0, -14.0, 18.0)
    rng = np.random.default_rng(1)
    vol = Volume(rng.normal(0, 200, (18, 30, 32)).astype(np.float32), aff)
    c2 = np.zeros(vol.shape, bool); c2[5:10, 10:20, 10:20] = True
    va = np.zeros(vol.shape, bool); va[8:12, 5:8, 5:8] = True
    lm = LabelMap(vol, {"vertebrae_C2": c2, "vertebral_artery_left": va, "esophagus": np.zeros(vol.shape, bool)},
                  {"vertebrae_C2": "classical", "vertebral_artery_left": "provided:x"})
    plan = make_plan(vol, [10.16, -5.87, -10.03], [3.0, -1.0, -4.0], [0.5, 0.25, -0.125])
    from osteoplan.planning.model import ClearanceCheck

    capped = ClearanceCheck(structure="mandible", category="hard", margin_mm=1.0, clearance_mm=17.75, status="pass",
                            segmented=True, source="test", note="at least this much (distances are computed up to 20 mm)")
    plan = plan.model_copy(update={"trajectories": (plan.best.model_copy(
        update={"clearances": plan.best.clearances + (capped,)}),)})
    out = tmp_path_factory.mktemp("dcm")
    return vol, lm, plan, write_dicom(out, plan, vol, lm, case_label="T1")


def test_ct_series_geometry_and_values(exported):
    vol, _, _, w = exported
    files = sorted(w["ct"].glob("*.dcm"))
    assert len(files) == vol.shape[0]
    ds = pydicom.dcmread(files[3])
    np.testing.assert_allclose(ds.ImagePositionPatient, vol.index_to_world(np.array([3.0, 0, 0])))
    np.testing.assert_allclose(ds.ImageOrientationPatient, [1, 0, 0, 0, 1, 0])
    np.testing.assert_allclose(ds.PixelSpacing, [0.9, 0.9])
    np.testing.assert_array_equal(ds.pixel_array, np.rint(vol.array[3]).astype(np.int16))
    assert ds.PatientID == "T1" and "T1" in str(ds.PatientName)


def test_seg_reads_back(exported):
    vol, lm, _, w = exported
    seg = hd.seg.segread(w["seg"])
    ct0 = pydicom.dcmread(sorted(w["ct"].glob("*.dcm"))[0])
    assert seg.SeriesInstanceUID != ct0.SeriesInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ct0.SeriesInstanceUID
    assert seg.FrameOfReferenceUID == ct0.FrameOfReferenceUID
    labels = {d.SegmentLabel: d.SegmentNumber for d in seg.SegmentSequence}
    assert set(labels) == {"vertebrae_C2", "vertebral_artery_left"}   # empty masks are left out
    ct_uids = [pydicom.dcmread(p).SOPInstanceUID for p in sorted(w["ct"].glob("*.dcm"))]
    for name, num in labels.items():
        arr = seg.get_pixels_by_source_instance(source_sop_instance_uids=ct_uids, segment_numbers=[num],
                                                 ignore_spatial_locations=True)[..., 0]
        np.testing.assert_array_equal(arr.astype(bool), lm.get(name))
    vt = {d.SegmentLabel: d.SegmentedPropertyTypeCodeSequence[0].CodeValue for d in seg.SegmentSequence}
    assert vt["vertebrae_C2"] == "39976000" and vt["vertebral_artery_left"] == "85234005"


def test_sr_points_equal_plan_json(exported):
    _, _, plan, w = exported
    sr = pydicom.dcmread(w["sr"])
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"      # Comprehensive 3D SR
    pts = sr_points(sr)
    import json

    pj = json.loads(plan.to_json())["trajectories"][0]
    # SCOORD3D GraphicData is FL (float32): equal to plan.json within float32 precision (1e-4 mm)
    np.testing.assert_allclose(pts["Skin entry"], pj["skin_entry_lps_mm"], atol=1e-4)
    np.testing.assert_allclose(pts["Bone entry"], pj["bone_entry_lps_mm"], atol=1e-4)
    np.testing.assert_allclose(pts["Target"], pj["target_lps_mm"], atol=1e-4)
    ct0 = pydicom.dcmread(sorted(w["ct"].glob("*.dcm"))[0])
    ev = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert ev.ReferencedSeriesSequence[0].SeriesInstanceUID == ct0.SeriesInstanceUID
    # measurements: the clearance to the spinal canal and the screw length are there with their values
    hd.sr.srread(w["sr"])                                              # highdicom parses it
    texts = [it.TextValue for it in _iter(sr) if getattr(it, "ValueType", "") == "TEXT"]
    assert "clearance spinal_canal margin 2 mm status pass" in texts
    assert "clearance internal_jugular_vein_left margin 5 mm status not_assessed" in texts
    # a clearance beyond the distance cap is a lower bound, and the SR says so
    assert "clearance mandible margin 1 mm status pass (lower bound: distances computed up to a cap)" in texts
    values = [float(it.MeasuredValueSequence[0].NumericValue) for it in _iter(sr) if getattr(it, "ValueType", "") == "NUM"]
    assert 4.6 in values and 34.0 in values and 4.0 in values


def _iter(ds):
    for it in getattr(ds, "ContentSequence", []):
        yield it
        yield from _iter(it)


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (Debian dicom3tools) not installed")
def test_dciodvfy_has_no_errors(exported):
    _, _, _, w = exported
    for p in (w["seg"], w["sr"], sorted(w["ct"].glob("*.dcm"))[0]):
        res = subprocess.run(["dciodvfy", str(p)], capture_output=True, text=True, timeout=60)
        errors = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")]
        assert errors == [], (p.name, errors)
