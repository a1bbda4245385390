"""Slicer markups line and segmentation NRRD: schema validity, LPS geometry, read-back."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.errors import InputError
from osteoplan.export.slicer import read_markups_line, read_seg_nrrd, write_markups_line, write_seg_nrrd
from osteoplan.imaging.volume import Volume

SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "markups-schema-v1.0.3-subset.json").read_text())


def test_markups_line_valid_and_lps(tmp_path):
    pts = np.array([[-40.5, -20.0, 10.0], [-2.0, 5.25, 40.0]])
    p = write_markups_line(tmp_path / "plan.mrk.json", pts, name="trajectory")
    doc = json.loads(p.read_text())
    jsonschema.validate(doc, SCHEMA)
    mk = doc["markups"][0]
    assert mk["type"] == "Line" and mk["coordinateSystem"] == "LPS"
    assert [cp["label"] for cp in mk["controlPoints"]] == ["entry", "target"]
    np.testing.assert_allclose(read_markups_line(p), pts)
    length = [m for m in mk["measurements"] if m["name"] == "length"][0]["value"]
    assert length == pytest.approx(np.sqrt(38.5**2 + 25.25**2 + 30**2), abs=1e-3)
    assert not list(tmp_path.glob("*.part"))


def test_schema_fixture_rejects_bad_documents():
    bad = {"@schema": "x", "markups": [{"type": "Line", "coordinateSystem": "XYZ"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)
    bad2 = {"@schema": "x", "markups": [{"type": "Line", "controlPoints": [{"position": [1, 2]}]}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad2, SCHEMA)


def test_markups_line_rejects_wrong_shape(tmp_path):
    with pytest.raises(InputError):
        write_markups_line(tmp_path / "x.mrk.json", np.zeros((3, 3)))


def test_seg_nrrd_geometry_and_overlaps(tmp_path):
    import nrrd

    aff = np.eye(4)
    aff[:3, 0] = (0, 0, 2.0)        # k -> +S 2 mm
    aff[:3, 1] = (0, 0.8, 0)        # j -> +P
    aff[:3, 2] = (0.5, 0, 0)        # i -> +L
    aff[:3, 3] = (-10, -20, -30)
    vol = Volume(np.zeros((6, 7, 8), np.float32), aff)
    bone = np.zeros(vol.shape, bool); bone[1:4, 2:5, 3:6] = True
    c2 = np.zeros(vol.shape, bool); c2[2, 3, 4] = True                # inside bone: overlap
    canal = np.zeros(vol.shape, bool); canal[5, 6, 7] = True
    lm = LabelMap(vol, {"bone": bone, "vertebrae_C2": c2, "spinal_canal": canal})
    p = write_seg_nrrd(tmp_path / "s.seg.nrrd", lm)
    hdr = nrrd.read_header(str(p))
    assert hdr["space"] == "left-posterior-superior"
    sd = np.asarray(hdr["space directions"], float)
    sd = sd[~np.isnan(sd).any(axis=1)]
    np.testing.assert_allclose(sd, [[0.5, 0, 0], [0, 0.8, 0], [0, 0, 2.0]])
    np.testing.assert_allclose(hdr["space origin"], [-10, -20, -30])
    back = read_seg_nrrd(p, vol)
    for n, m in (("bone", bone), ("vertebrae_C2", c2), ("spinal_canal", canal)):
        np.testing.assert_array_equal(back[n], m)
    names = {hdr[k] for k in hdr if k.endswith("_Name")}
    assert names == {"bone", "vertebrae_C2", "spinal_canal"}
