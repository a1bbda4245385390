"""LabelMap vocabulary, synonyms of other sources and the label-map operations (hand-computed values)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from osteoplan.anatomy.labelmap import STRUCTURES, SYNONYMS, LabelMap, canonical_name
from osteoplan.errors import MaskError
from osteoplan.imaging import Volume, axis_aligned_affine


def test_vocabulary_has_the_issue_names():
    required = {"vertebrae_C1", "vertebrae_C2", "spinal_cord", "trachea", "esophagus",
                "common_carotid_artery_left", "common_carotid_artery_right", "internal_carotid_artery_left",
                "internal_carotid_artery_right", "internal_jugular_vein_left", "internal_jugular_vein_right",
                "spinal_canal", "airway", "vertebral_artery_left", "vertebral_artery_right", "mandible", "body",
                "bone", "lesion"}
    assert required <= set(STRUCTURES)
    assert len(set(STRUCTURES)) == len(STRUCTURES)
    for s in STRUCTURES:  # canonical names map to themselves
        assert canonical_name(s) == s
    for k, v in SYNONYMS.items():  # every synonym lands in the vocabulary
        assert v in STRUCTURES, k


@pytest.mark.parametrize("given, canon", [
    # OpenKBP (Babier et al. 2021): every structure file of the shared cases
    ("SpinalCord", "spinal_cord"), ("Brainstem", "brainstem"), ("Esophagus", "esophagus"), ("Larynx", "larynx"),
    ("Mandible", "mandible"), ("LeftParotid", "parotid_gland_left"), ("RightParotid", "parotid_gland_right"),
    # 3D Slicer / RT naming, spacing and case variants
    ("Spinal Cord", "spinal_cord"), ("spinal-cord", "spinal_cord"), ("SPINAL_CORD", "spinal_cord"),
    ("Brain Stem", "brainstem"), ("Oesophagus", "esophagus"), ("C2 vertebra", "vertebrae_C2"),
    ("Vertebra C1", "vertebrae_C1"), ("Atlas", "vertebrae_C1"), ("Axis", "vertebrae_C2"),
    ("Bone_Mandible", "mandible"), ("External", "body"), ("Skin", "body"), ("Tumour", "lesion"),
    ("A_Carotid_L", "common_carotid_artery_left"), ("V_Jugular_R", "internal_jugular_vein_right"),
    ("Left vertebral artery", "vertebral_artery_left"), ("Vertebral_Artery_Lt", "vertebral_artery_left"),
    ("Right IJV", "internal_jugular_vein_right"), ("ICA Lt", "internal_carotid_artery_left"),
    ("Parotid R", "parotid_gland_right"), ("Lt Parotid", "parotid_gland_left"),
    ("Common Carotid Artery Left", "common_carotid_artery_left"),
    # TotalSegmentator task outputs outside the vocabulary spelling
    ("larynx_air", "larynx"), ("oropharynx", "pharynx"), ("hypopharynx", "pharynx"), ("spinal_channel", "spinal_canal"),
])
def test_synonyms_of_other_sources(given, canon):
    assert canonical_name(given) == canon


@pytest.mark.parametrize("given", ["SpinalCord_PRV05", "Cord+5mm", "PTV70", "GTVp", "Left", "L", "",
                                   "Left Mandible", "C2 left", "Segment_1", "liver_vessels"])
def test_unknown_or_derived_names_are_not_mapped(given):
    # planning-risk margins (PRV), targets and one-sided versions of midline structures are NOT the structure
    assert canonical_name(given) is None


@pytest.fixture()
def lm():
    # 10 slices x 12 rows x 14 columns, spacing (k, j, i) = (2, 1, 0.5) mm
    vol = Volume(np.zeros((10, 12, 14), np.float32), axis_aligned_affine((2.0, 1.0, 0.5), (0.0, 0.0, 0.0)))
    return LabelMap(vol)


def test_add_get_has_union_volume_and_multilabel(lm):
    a = np.zeros(lm.volume.shape, bool)
    a[2:4, 3:6, 4:8] = True  # 2 x 3 x 4 = 24 voxels of 1 mm^3
    b = np.zeros(lm.volume.shape, bool)
    b[3, 3:6, 4:8] = True    # overlaps a on 12 voxels
    lm.add("SpinalCord", a, "provided:SpinalCord.nii.gz")
    lm.add("spinal_canal", b, "classical")
    assert lm.has("spinal_cord") and not lm.has("SpinalCord") and not lm.has("airway")
    assert lm.sources["spinal_cord"] == "provided:SpinalCord.nii.gz"
    assert lm.volume_ml("spinal_cord") == pytest.approx(0.024)
    assert lm.union(["spinal_cord", "spinal_canal", "airway"]).sum() == 24  # absent names ignored
    assert lm.names() == ["spinal_canal", "spinal_cord"]  # vocabulary order
    arr, table = lm.to_multilabel()
    assert table == {1: "spinal_canal", 2: "spinal_cord"} and arr.dtype == np.uint16
    assert (arr == 2).sum() == 24 and (arr == 1).sum() == 0  # later names overwrite
    assert lm.summary()["spinal_cord"] == {"source": "provided:SpinalCord.nii.gz", "voxels": 24, "volume_ml": 0.024}
    with pytest.raises(MaskError, match="not segmented"):
        lm.get("airway")
    with pytest.raises(MaskError, match="shape"):
        lm.add("trachea", np.zeros((3, 3, 3), bool), "x")
    # an unknown name is kept under its own name (never dropped)
    lm.add("thyroid_cartilage", b, "provided")
    assert lm.has("thyroid_cartilage") and lm.names()[-1] == "thyroid_cartilage"


def test_distance_map_uses_the_anisotropic_spacing(lm):
    m = np.zeros(lm.volume.shape, bool)
    m[5, 6, 7] = True
    lm.add("lesion", m, "x")
    d = lm.distance_map_mm("lesion")
    assert d[5, 6, 7] == 0.0
    assert d[6, 6, 7] == pytest.approx(2.0)   # one slice: 2 mm
    assert d[5, 8, 7] == pytest.approx(2.0)   # two rows: 2 x 1 mm
    assert d[5, 6, 11] == pytest.approx(2.0)  # four columns: 4 x 0.5 mm
    assert d[7, 9, 3] == pytest.approx(math.sqrt(4.0**2 + 3.0**2 + 2.0**2))
    lm.add("airway", np.zeros(lm.volume.shape, bool), "classical")  # segmented, absent
    assert np.isinf(lm.distance_map_mm("airway")).all()
