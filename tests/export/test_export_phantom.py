"""End to end on the generated neck phantom: every export written, SR points = plan.json, SEG = truth, PDF pages."""

from __future__ import annotations

import io
import json
import shutil
import subprocess

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image

from osteoplan.export import ExportOptions, write_all
from osteoplan.export.dicom import sr_points
from osteoplan.export.report import pdf_pages_to_png
from osteoplan.planning.model import save_plan

from export_planfactory import make_plan

pytestmark = pytest.mark.slow


def test_phantom_full_export(tmp_path):
    from osteoplan.anatomy.phantom import make_phantom

    ph = make_phantom()
    lm = ph.landmarks
    target = lm.apex_lps_mm - 6.0 * lm.axis_unit
    d = np.array([-0.25, 0.35, 0.9])
    d /= np.linalg.norm(d)
    skin = target - 110.0 * d
    bone = target - 25.0 * d
    plan = make_plan(ph.volume, skin, bone, target)
    save_plan(plan, tmp_path / "plan.json")
    write_all(tmp_path, plan, ph.volume, ph.truth, ExportOptions(case_label="PHANTOM-T", drr_pixels=128, no_3d=True))

    pj = json.loads((tmp_path / "plan.json").read_text())["trajectories"][0]
    pts = sr_points(pydicom.dcmread(tmp_path / "dicom" / "sr.dcm"))
    for label, key in (("Skin entry", "skin_entry_lps_mm"), ("Bone entry", "bone_entry_lps_mm"),
                       ("Target", "target_lps_mm")):
        np.testing.assert_allclose(pts[label], pj[key], atol=1e-4)

    seg = hd.seg.segread(tmp_path / "dicom" / "seg.dcm")
    labels = {s.SegmentLabel: s.SegmentNumber for s in seg.SegmentSequence}
    uids = [pydicom.dcmread(p).SOPInstanceUID for p in sorted((tmp_path / "dicom" / "ct").glob("*.dcm"))]
    c2 = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[labels["vertebrae_C2"]],
                                           ignore_spatial_locations=True)[..., 0]
    np.testing.assert_array_equal(c2.astype(bool), ph.truth.get("vertebrae_C2"))

    if shutil.which("dciodvfy"):  # the 26-segment SEG takes ~25 s CPU in dciodvfy: checked on a small SEG elsewhere
        for p in (tmp_path / "dicom" / "sr.dcm",):
            out = subprocess.run(["dciodvfy", str(p)], capture_output=True, text=True, timeout=120)
            assert not [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")]

    pages = pdf_pages_to_png((tmp_path / "report.pdf").read_bytes(), scale=0.5)
    assert len(pages) >= 4
    for png in pages:
        im = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
        assert im.shape[0] > im.shape[1] and (im < 200).mean() > 0.005   # portrait, not blank
