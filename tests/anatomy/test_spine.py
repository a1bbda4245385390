"""Thoracolumbar spine anatomy (osteoplan.anatomy.spine): known synthetic geometry, both naming schemes,
the level-count confidence, the neck-vessel rule, and a few real-data figures."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from osteoplan.anatomy.labelmap import (TOTALSEGMENTATOR_TOTAL_V2, VERSE_VERTEBRA_LABELS, LabelMap,
                                        canonical_name)
from osteoplan.anatomy.loaders import load_masks
from osteoplan.anatomy.spine import (PedicleLandmarks, SpineAnatomy, VertebraLandmarks, find_spine,
                                     parse_level_point)
from osteoplan.anatomy.spine_classical import count_levels
from osteoplan.errors import AnatomyError, InputError
from osteoplan.imaging import Volume, axis_aligned_affine

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "lumbar-verse").is_dir(),
                                reason="../shared/data is absent (real CT data set not on this machine)")

# ---------------------------------------------------------------------------------------- synthetic vertebra
# 0.5 mm voxels; LPS: x = patient left, y = posterior, z = superior. Body: cylinder, axis (0, -7, z), radius
# 15 mm, cut flat at y = 5 (posterior wall, flat for |x| <= 9), z -10..10 (height 20 mm, depth 27 mm). Canal: |x| < 8, y 5..20. Pedicles: bars beside the canal, x 8..16
# (width 8 mm) and z -6..6 (height 12 mm) at their narrowest (y 9..16); 12 mm wide (x 6..18 clipped to the canal:
# x 8..20) next to the body (y 5..9) and next to the lamina (y 16..20). Lamina: |x| < 20, y 20..26, z -6..6.
H = 0.5


def _vertebra():
    shape = (56, 116, 100)  # z -14..14, y -28..30, x -25..25
    aff = axis_aligned_affine((H, H, H), (-25.0, -28.0, -14.0))
    aff[:3, 3] = (-24.75, -27.75, -13.75)
    vol = Volume(np.zeros(shape, np.float32), aff)
    k, j, i = np.indices(shape)
    w = vol.index_to_world(np.stack([k, j, i], -1).reshape(-1, 3)).reshape(shape + (3,))
    x, y, z = w[..., 0], w[..., 1], w[..., 2]
    body = (x ** 2 + (y + 7) ** 2 <= 15 ** 2) & (y <= 5) & (np.abs(z) <= 10)  # flat posterior wall |x| <= 9
    ax = np.abs(x)
    narrow = (y >= 9) & (y <= 16)
    ped = (y > 5) & (y < 20) & (np.abs(z) <= 6) & (ax >= 8) & np.where(narrow, ax <= 16, ax <= 20)
    lamina = (y >= 20) & (y <= 26) & (np.abs(z) <= 6) & (ax <= 20)
    vert = body | ped | lamina
    vol = vol.with_array(np.where(vert, 400.0, 0.0).astype(np.float32))
    return vol, vert


def test_synthetic_vertebra_known_geometry():
    vol, vert = _vertebra()
    lm = LabelMap(vol)
    lm.add("vertebrae_T12", vert, "provided:vertebrae_T12.nii.gz")
    sp = find_spine(vol, lm)
    assert list(sp.vertebrae) == ["T12"]
    v = sp.vertebrae["T12"]
    assert v.level_source == "provided:totalseg" and not sp.needs_confirmation
    # frame: superior +z, anterior -y, left +x (hand: the body is symmetric, 20 mm high, 30 x 30 mm)
    assert v.superior_unit @ [0, 0, 1] > 0.99
    assert v.anterior_unit @ [0, -1, 0] > 0.99
    assert v.left_unit @ [1, 0, 0] > 0.99
    assert abs(v.body_centre_lps_mm[0]) < 0.3 and abs(v.body_centre_lps_mm[2]) < 0.3
    assert v.body_height_mm == pytest.approx(20.0, abs=1.0)
    assert v.body_width_mm == pytest.approx(30.0, abs=1.0)
    assert v.body_depth_mm == pytest.approx(27.0, abs=1.0)
    assert v.anterior_wall_lps_mm[1] == pytest.approx(-22.0, abs=0.6)
    assert v.posterior_wall_lps_mm[1] == pytest.approx(5.0, abs=0.6)
    for side, sx in (("left", 1.0), ("right", -1.0)):
        p = v.pedicles[side]
        assert p.width_mm == pytest.approx(8.0, abs=1.0)  # x 8..16
        assert p.height_mm == pytest.approx(12.0, abs=1.0)  # z -6..6
        assert p.isthmus_lps_mm[0] == pytest.approx(12.0 * sx, abs=1.0)
        assert 8.5 <= p.isthmus_lps_mm[1] <= 16.5 and abs(p.isthmus_lps_mm[2]) < 1.0
        assert p.axis_unit @ [0, -1, 0] > 0.95
        assert p.entry_lps_mm[1] == pytest.approx(26.0, abs=1.0)  # leaves the lamina's back surface
        pm = lm.get(f"pedicle_T12_{side}")
        assert pm.any() and not (pm & ~vert).any()
    wall = lm.get("posterior_wall_T12")
    wy = vol.index_to_world(np.argwhere(wall).astype(float))
    assert wy[:, 1].min() >= 5.0 - 3.0 - 0.6 and wy[:, 1].max() <= 5.0 + 0.3 and np.abs(wy[:, 0]).max() <= 8.5
    assert lm.has("spinal_canal") and lm.has("vertebral_body_T12")
    # plain JSON round trip
    back = SpineAnatomy.from_dict(json.loads(json.dumps(sp.to_dict())))
    assert back.vertebrae["T12"].pedicles["left"].width_mm == pytest.approx(v.pedicles["left"].width_mm, abs=0.01)
    assert isinstance(back.vertebrae["T12"], VertebraLandmarks)
    assert isinstance(back.vertebrae["T12"].pedicles["right"], PedicleLandmarks)


def test_level_point_disagreeing_with_masks_asks_for_a_check():
    vol, vert = _vertebra()
    lm = LabelMap(vol)
    lm.add("vertebrae_T12", vert, "provided:vertebrae_T12.nii.gz")
    sp = find_spine(vol, lm, level_point=("L1", (0.0, -8.0, 0.0)))
    assert sp.needs_confirmation and "L1" in sp.confirmation_request and "T12" in sp.confirmation_request
    with pytest.raises(InputError):
        find_spine(vol, lm, levels=["X9"])
    assert parse_level_point("t12:1, 2.5,-3")[0] == "T12"
    with pytest.raises(InputError):
        parse_level_point("T12:1,2")


# ---------------------------------------------------------------------------------------- naming schemes


def test_vocabulary_takes_every_totalsegmentator_class_and_verse_labels():
    assert len(TOTALSEGMENTATOR_TOTAL_V2) == 117
    for n in TOTALSEGMENTATOR_TOTAL_V2:
        assert canonical_name(n) == n
    assert VERSE_VERTEBRA_LABELS[8] == "vertebrae_T1" and VERSE_VERTEBRA_LABELS[19] == "vertebrae_T12"
    assert VERSE_VERTEBRA_LABELS[20] == "vertebrae_L1" and VERSE_VERTEBRA_LABELS[21] == "vertebrae_L2"
    assert VERSE_VERTEBRA_LABELS[28] == "vertebrae_T13" and VERSE_VERTEBRA_LABELS[25] == "vertebrae_L6"
    assert canonical_name("pedicle_L3_left") == "pedicle_L3_left"


def _save(path, arr, aff):
    nib.save(Volume(arr.astype(np.float32), aff).to_nifti(np.uint8), str(path))


def test_verse_and_totalsegmentator_label_files_read(tmp_path):
    aff = axis_aligned_affine((1.0, 1.0, 1.0))
    vol = Volume(np.zeros((12, 6, 6), np.float32), aff)
    lab = np.zeros((12, 6, 6), np.uint8)
    lab[1:5] = 19   # VerSe 19 = T12
    lab[6:11] = 20  # VerSe 20 = L1
    d = tmp_path / "verse"
    d.mkdir()
    _save(d / "vertebrae.nii.gz", lab, aff)
    sub = np.zeros_like(lab)
    sub[1:5, :3] = 50
    sub[1:5, 3:] = 41
    _save(d / "subregions.nii.gz", sub, aff)
    w: list[str] = []
    lm = load_masks(d, vol, warnings=w)
    assert lm.get("vertebrae_T12").sum() == 4 * 36 and lm.get("vertebrae_L1").sum() == 5 * 36
    assert lm.get("vertebral_body").sum() == 4 * 18 and lm.get("vertebral_arch").sum() == 4 * 18
    assert lm.sources["vertebrae_T12"].startswith("provided:verse:")
    assert not any("no voxel" in m for m in w)  # absent VerSe levels are not reported one by one
    # TotalSegmentator multilabel with its JSON table ({"name": value}), values as in its 'total' task
    ts = np.where(lab == 19, 32, np.where(lab == 20, 31, 0))
    _save(tmp_path / "vertebrae_multilabel.nii.gz", ts, aff)
    (tmp_path / "vertebrae_multilabel.json").write_text(json.dumps({"vertebrae_T12": 32, "vertebrae_L1": 31}))
    lm2 = load_masks(tmp_path / "vertebrae_multilabel.nii.gz", vol)
    assert (lm2.get("vertebrae_T12") == lm.get("vertebrae_T12")).all()
    assert (lm2.get("vertebrae_L1") == lm.get("vertebrae_L1")).all()


# ---------------------------------------------------------------------------------------- level count


def test_level_count_closed_at_both_ends_is_confident():
    # 14 vertebrae, index 0 caudal: L1 (no rib), 12 rib-bearing, C7 (no rib)
    ribs = {i: {"left", "right"} for i in range(1, 13)}
    names, conf, method, _ = count_levels(14, ribs)
    assert names[0] == "L1" and names[1] == "T12" and names[12] == "T1" and names[13] == "C7"
    assert conf == pytest.approx(0.95) and method == "classical:rib-count"


def test_level_count_unsure_paths():
    # the lowest vertebra in view carries ribs: T12 may be out of view -> at most 0.4
    names, conf, _, notes = count_levels(6, {i: {"left", "right"} for i in range(0, 6)})
    assert conf <= 0.4 and names[0] == "T12" and "below the field of view" in notes[0]
    # 11 rib-bearing vertebrae closed at both ends (a missed 12th rib or 11 pairs) -> at most 0.5
    _, conf, _, notes = count_levels(13, {i: {"left", "right"} for i in range(1, 12)})
    assert conf <= 0.5 and "12 expected" in notes[0]
    # one-sided lowest rib, open upper end: 0.5 + 0.15 = 0.65
    ribs = {1: {"left"}, **{i: {"left", "right"} for i in range(2, 6)}}
    _, conf, _, _ = count_levels(6, ribs)
    assert conf == pytest.approx(0.65)
    # an anchor wins, and a disagreement is said
    names, conf, method, notes = count_levels(6, ribs, anchor=(1, "T11"))
    assert names[1] == "T11" and names[0] == "T12" and conf == pytest.approx(0.9)
    assert method == "provided:level-point" and any("DISAGREEMENT" in n for n in notes)
    with pytest.raises(AnatomyError, match="level-point"):
        count_levels(5, {})


# ---------------------------------------------------------------------------------------- neck vessels


def test_neck_vessel_names_only_above_the_lung_apices():
    from osteoplan.anatomy.segment import ContrastResult, lung_apex_slice, segment_vessels

    shape = (80, 60, 80)  # 2 x 2 x 2 mm; k -> superior
    aff = axis_aligned_affine((2.0, 2.0, 2.0))
    k, j, i = np.indices(shape)
    body = ((j - 30) ** 2 / 28 ** 2 + (i - 40) ** 2 / 38 ** 2) <= 1
    a = np.where(body, 40.0, -1000.0).astype(np.float32)
    lungs = body & (k < 40) & (np.abs(i - 40) > 18) & (np.abs(i - 40) < 33) & (np.abs(j - 30) < 15)
    a[lungs] = -850.0
    vol = Volume(a, aff)
    assert lung_apex_slice(vol, body) == 39
    tubes = np.zeros(shape, bool)
    for ic in (30, 50, 24, 56):  # two tubes each side, full length
        tubes[:, 28:31, ic:ic + 3] = True
    names = segment_vessels(vol, ContrastResult(True, "image", "test", tubes), body)
    assert set(names) == {"common_carotid_artery_left", "common_carotid_artery_right",
                          "internal_jugular_vein_left", "internal_jugular_vein_right"}
    for m in names.values():
        assert m.any() and not m[:40].any()  # named only above the lung apex
    short = tubes.copy()
    short[50:] = False  # 10 slices = 20 mm above the apex would still be named; 8 slices (16 mm) not
    short[48:50] = False
    assert segment_vessels(vol, ContrastResult(True, "image", "test", short), body) == {}


# ---------------------------------------------------------------------------------------- real data


@needs_data
@pytest.mark.slow
def test_lumbar_verse_pedicles_geometric_vs_subregions():
    from osteoplan.imaging.io import read_volume

    vol = read_volume(DATA / "lumbar-verse" / "ct.nii.gz")
    lm = load_masks(DATA / "lumbar-verse", vol)
    sub = find_spine(vol, lm)
    assert sub.levels() == ["L2", "L3", "L4"] and sub.level_method == "provided:verse"
    geo = find_spine(vol, load_masks(DATA / "lumbar-verse", vol), use_subregions=False)
    for lv in ("L3",):
        for side in ("left", "right"):
            a, b = sub.vertebrae[lv].pedicles[side], geo.vertebrae[lv].pedicles[side]
            assert a.source == "provided:verse-subregions" and b.source == "provided:verse"
            # plausibility only: T11-L5 pedicle (safe-zone) widths 7.2-17.8 mm in Lien et al., Eur Spine J
            # 2007;16:1215; 1.5 mm voxels, so a wide margin below
            assert 4.0 <= a.width_mm <= 18.0
            # the isthmus lies beside the canal, not in the body: behind the body's posterior wall
            v = sub.vertebrae[lv]
            assert (a.isthmus_lps_mm - v.posterior_wall_lps_mm) @ v.anterior_unit < 1.0
            assert np.sign((a.isthmus_lps_mm - v.body_centre_lps_mm) @ v.left_unit) == (1 if side == "left" else -1)


@needs_data
@pytest.mark.slow
def test_abdomen_pelvis_levels_from_multilabel():
    from osteoplan.imaging.io import read_volume

    vol = read_volume(DATA / "abdomen-pelvis-ts" / "ct.nii.gz")
    lm = load_masks(DATA / "abdomen-pelvis-ts" / "vertebrae_multilabel.nii.gz", vol)
    sp = find_spine(vol, lm, levels=["L1", "L2", "L3", "L4", "L5"])
    assert sp.levels() == ["L1", "L2", "L3", "L4", "L5"]
    zs = [sp.vertebrae[lv].body_centre_lps_mm[2] for lv in sp.levels()]
    assert all(z1 > z2 for z1, z2 in zip(zs, zs[1:]))  # cranial to caudal
    for lv in sp.levels():
        assert 20.0 <= sp.vertebrae[lv].body_height_mm <= 40.0  # lumbar bodies ~ 25-30 mm, 3 mm voxels
    assert any("COARSE VOXELS (3.0 mm)" in m for m in sp.messages)


@needs_data
@pytest.mark.slow
def test_chest_lidc_levels_counted_from_the_ribs():
    """No masks: 13 levels T1-L1 between discs; the lowest rib-bearing one is T12 (checked by eye on
    docs/spine_levels_lidc.png: 11 rib pairs found, the first rib not), so the count is not closed at the top
    and a confirmation point is asked for."""
    from osteoplan.anatomy.spine_classical import classical_vertebrae
    from osteoplan.imaging.io import read_volume

    vol = read_volume(DATA / "spine-chest-lidc" / "ct.nii.gz")
    lm = LabelMap(vol)
    msgs: list[str] = []
    cl = classical_vertebrae(vol, lm, None, msgs)
    names = [v.level for v in cl.verts]
    assert names[0] == "T1" and names[-1] == "L1" and len(names) == 13
    assert "L1" not in cl.ribs and set(cl.ribs["T12"]) == {"left", "right"}
    assert cl.confidence < 0.8 and "--level-point" in cl.request
    assert lm.has("spinal_canal") and lm.has("bone")
