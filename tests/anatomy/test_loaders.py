"""Mask loaders: NIfTI folders/files (RAS), multilabel tables, Slicer .seg.nrrd, DICOM SEG, resampling."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from osteoplan.anatomy.loaders import MaskGrid, load_masks, read_label_table, resample_mask
from osteoplan.errors import InputError, MaskError
from osteoplan.imaging import Volume, axis_aligned_affine

# CT grid: 20 slices x 30 rows x 40 columns, spacing (k, j, i) = (2, 1, 1) mm, origin (10, -20, 30)
CT_SHAPE = (20, 30, 40)
CT_AFF = axis_aligned_affine((2.0, 1.0, 1.0), (10.0, -20.0, 30.0))


@pytest.fixture()
def ct():
    return Volume(np.zeros(CT_SHAPE, np.float32), CT_AFF)


def coarse_affine(flip_i: bool = False):
    """2x coarser grid, shifted by half a CT voxel so no cell boundary falls on a CT voxel centre.

    Spacing (4, 2, 2); origin chosen so that coarse cell boundaries lie at CT centre +/- half a CT voxel.
    With flip_i the column axis points to the patient's right (-x).
    """
    a = np.eye(4)
    a[:3, 0] = (0, 0, 4.0)
    a[:3, 1] = (0, 2.0, 0)
    a[:3, 2] = (-2.0 if flip_i else 2.0, 0, 0)
    # coarse voxel (0,0,0) centre: halfway between CT voxels (0,0,0) and (1,1,1) in every axis
    a[:3, 3] = (10.5 + (2.0 * 15 if flip_i else 0.0), -19.5, 31.0)
    return a


def save_mask_nifti(path, arr, affine, dtype=np.uint8):
    img = Volume(arr.astype(np.float32), affine).to_nifti(dtype)
    nib.save(img, str(path))
    return path


def expected_cells(ct, affine, index):
    """CT voxels whose centres fall in the coarse cell *index* (by hand: centre +/- half a coarse step)."""
    c = np.asarray(index, float) @ affine[:3, :3].T + affine[:3, 3]
    half = np.abs(affine[:3, :3]).sum(axis=1) / 2  # per world axis
    w = ct.index_to_world(np.argwhere(np.ones(ct.shape, bool)))
    inside = np.all(np.abs(w - c) < half, axis=1)
    out = np.zeros(ct.shape, bool)
    out.reshape(-1)[inside] = True
    return out, c


@pytest.mark.parametrize("flip_i", [False, True])
def test_resampled_voxel_positions_on_a_coarser_shifted_grid(ct, tmp_path, flip_i):
    aff = coarse_affine(flip_i)
    arr = np.zeros((6, 10, 15), np.uint8)
    arr[2, 3, 4] = 1
    path = save_mask_nifti(tmp_path / "Spinal Cord.nii.gz", arr, aff)
    lm = load_masks(path, ct)
    got = lm.get("spinal_cord")
    exp, centre = expected_cells(ct, aff, (2, 3, 4))
    # one 4 x 2 x 2 mm cell = 2 x 2 x 2 CT voxels of 2 x 1 x 1 mm
    assert exp.sum() == 8
    assert np.array_equal(got, exp)
    # the voxels sit around the cell centre, hand-computed: e.g. without flip c = (10.5 + 8, -19.5 + 6, 31 + 8)
    if not flip_i:
        np.testing.assert_allclose(centre, [18.5, -13.5, 39.0])
    np.testing.assert_allclose(ct.index_to_world(np.argwhere(got)).mean(axis=0), centre, atol=1e-9)
    assert lm.sources["spinal_cord"].startswith("provided:")


def test_ras_nifti_written_by_nibabel_directly(ct, tmp_path):
    # a NIfTI in RAS with identity-like axes: voxel (i, j, k) -> RAS (i, j, k) mm + offset
    ras_aff = np.diag([1.0, 1.0, 2.0, 1.0])
    ras_aff[:3, 3] = (-25.0, 5.0, 40.0)  # RAS (-25, 5) == LPS (25, -5)... x_lps = 25 - i, y_lps = -5 - j, z = 40 + 2k
    data = np.zeros((40, 30, 20), np.uint8)
    data[5, 6, 7] = 1  # LPS (20, -11, 54)
    nib.save(nib.Nifti1Image(data, ras_aff), str(tmp_path / "trachea.nii.gz"))
    lm = load_masks(tmp_path / "trachea.nii.gz", ct)
    idx = np.argwhere(lm.get("trachea"))
    assert len(idx) == 1
    np.testing.assert_allclose(ct.index_to_world(idx[0]), [20.0, -11.0, 54.0])


def test_non_overlapping_mask_is_an_error_not_an_empty_structure(ct, tmp_path):
    aff = coarse_affine()
    aff[:3, 3] += (500.0, 0, 0)  # 500 mm to the patient's left
    arr = np.zeros((6, 10, 15), np.uint8)
    arr[1, 1, 1] = 1
    path = save_mask_nifti(tmp_path / "esophagus.nii.gz", arr, aff)
    with pytest.raises(MaskError, match="does not overlap"):
        load_masks(path, ct)
    # overlapping field of view but the foreground outside the CT: also an error
    aff2 = coarse_affine()
    big = np.zeros((6, 10, 40), np.uint8)
    big[1, 1, 35] = 1  # x = 31 + 70 = 101 mm, the CT ends at x = 69.5
    path2 = save_mask_nifti(tmp_path / "larynx.nii.gz", big, aff2)
    with pytest.raises(MaskError, match="outside the CT"):
        load_masks(path2, ct)
    # an empty mask is a segmented-and-absent structure
    path3 = save_mask_nifti(tmp_path / "lesion.nii.gz", np.zeros((6, 10, 15), np.uint8), coarse_affine())
    lm = load_masks(path3, ct)
    assert lm.has("lesion") and not lm.get("lesion").any()


def test_partly_outside_mask_warns(ct):
    arr = np.zeros((6, 10, 40), np.uint8)
    arr[2, 3, 4] = 1
    arr[2, 3, 35] = 1
    warnings = []
    out = resample_mask(MaskGrid(arr, coarse_affine(), "x"), ct, "m", warnings)
    assert out.sum() == 8 and warnings and "cut off" in warnings[0]


def test_multilabel_with_sidecar_json_and_totalsegmentator_extension(ct, tmp_path):
    arr = np.zeros(CT_SHAPE, np.uint8)
    arr[2:4, 5:8, 5:9] = 1
    arr[10:12, 5:8, 5:9] = 2
    arr[15, 1, 1] = 3
    path = save_mask_nifti(tmp_path / "seg.nii.gz", arr, CT_AFF)
    (tmp_path / "seg.json").write_text(json.dumps({"1": "SpinalCord", "2": "C2 vertebra", "3": "tumour"}))
    lm = load_masks(path, ct)
    assert lm.get("spinal_cord").sum() == 24 and lm.get("vertebrae_C2").sum() == 24 and lm.get("lesion").sum() == 1
    assert np.array_equal(lm.get("spinal_cord"), arr == 1)
    # TotalSegmentator --ml: XML LabelTable in a NIfTI header extension
    img = Volume(arr.astype(np.float32), CT_AFF).to_nifti(np.uint8)
    xml = ('<?xml version="1.0" encoding="UTF-8"?> <CaretExtension> <VolumeInformation Index="0"> <LabelTable>\n'
           '<Label Key="1" Red="1" Green="0" Blue="0" Alpha="1"><![CDATA[spinal_cord]]></Label>\n'
           '<Label Key="2" Red="0" Green="1" Blue="0" Alpha="1"><![CDATA[vertebrae_C2]]></Label>\n'
           '<Label Key="3" Red="0" Green="0" Blue="1" Alpha="1"><![CDATA[larynx_air]]></Label>\n'
           '</LabelTable> </VolumeInformation></CaretExtension>')
    img.header.extensions.append(nib.nifti1.Nifti1Extension(0, xml.encode()))
    nib.save(img, str(tmp_path / "ml.nii.gz"))
    lm2 = load_masks(tmp_path / "ml.nii.gz", ct)
    assert set(lm2.names()) == {"spinal_cord", "vertebrae_C2", "larynx"}
    assert np.array_equal(lm2.get("larynx"), arr == 3)
    # no table at all: refused with a clear message
    save_mask_nifti(tmp_path / "other.nii.gz", arr, CT_AFF)
    with pytest.raises(MaskError, match="label table"):
        load_masks(tmp_path / "other.nii.gz", ct)


def test_label_table_forms():
    assert read_label_table({"1": "a", "2": "b"}) == {1: "a", 2: "b"}
    assert read_label_table({"a": 1, "b": 2}) == {1: "a", 2: "b"}
    assert read_label_table([{"value": 3, "name": "c"}]) == {3: "c"}
    assert read_label_table(["a", "b"]) == {1: "a", 2: "b"}
    with pytest.raises(MaskError):
        read_label_table({})


def test_folder_skips_images_unions_synonyms_and_keeps_unknown_names(ct, tmp_path):
    d = tmp_path / "case"
    d.mkdir()
    ctarr = np.random.default_rng(0).normal(0, 100, CT_SHAPE)
    nib.save(Volume(ctarr, CT_AFF).to_nifti(np.int16), str(d / "ct.nii.gz"))
    nib.save(Volume(ctarr, CT_AFF).to_nifti(np.float32), str(d / "other_image.nii.gz"))  # continuous: skipped
    a = np.zeros(CT_SHAPE, np.uint8)
    a[5, 5:10, 5:10] = 1
    b = np.zeros(CT_SHAPE, np.uint8)
    b[6, 5:10, 5:10] = 1
    save_mask_nifti(d / "oropharynx.nii.gz", a, CT_AFF)
    save_mask_nifti(d / "hypopharynx.nii.gz", b, CT_AFF)
    save_mask_nifti(d / "trapezius_left.nii.gz", b, CT_AFF)
    (d / "case.json").write_text("{}")
    warnings = []
    lm = load_masks(d, ct, warnings=warnings)
    assert set(lm.names()) == {"pharynx", "trapezius_left"}
    assert lm.get("pharynx").sum() == 50
    assert "+" in lm.sources["pharynx"]
    assert any("trapezius_left" in w for w in warnings)
    assert any("not a binary mask" in w for w in warnings)  # other_image (name hidden: not a structure name)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MaskError):
        load_masks(empty, ct)
    with pytest.raises(InputError):
        load_masks(tmp_path / "missing", ct)


def test_seg_nrrd_round_trip_on_another_grid(ct, tmp_path):
    import slicerio

    aff = coarse_affine(flip_i=True)
    ijk = np.eye(4)
    ijk[:3, 0], ijk[:3, 1], ijk[:3, 2], ijk[:3, 3] = aff[:3, 2], aff[:3, 1], aff[:3, 0], aff[:3, 3]
    seg = slicerio.create_segmentation((15, 10, 6), ijk)  # (i, j, k)
    m1 = np.zeros((15, 10, 6), bool)
    m1[4, 3, 2] = True
    m2 = np.zeros((15, 10, 6), bool)
    m2[4, 3, 2] = m2[5, 3, 2] = True  # overlaps m1: goes to a second layer
    slicerio.add_segment(seg, m1, {"id": "s1", "name": "Spinal canal"})
    slicerio.add_segment(seg, m2, {"id": "s2", "name": "Vertebral artery left"})
    slicerio.write_segmentation(str(tmp_path / "x.seg.nrrd"), seg)
    lm = load_masks(tmp_path / "x.seg.nrrd", ct)
    exp, _ = expected_cells(ct, aff, (2, 3, 4))
    exp2, _ = expected_cells(ct, aff, (2, 3, 5))
    assert np.array_equal(lm.get("spinal_canal"), exp)
    assert np.array_equal(lm.get("vertebral_artery_left"), exp | exp2)


@pytest.mark.parametrize("fractional", [False, True])
def test_dicom_seg_round_trip_on_the_phantom(tmp_path, fractional):
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    from osteoplan.anatomy.phantom import make_phantom, write_dicom_series
    from osteoplan.imaging import read_volume

    ph = make_phantom(spacing_mm=1.0, fov_inferior_mm=-40.0, fov_superior_mm=34.0)
    files = write_dicom_series(ph.volume, tmp_path / "ct", ph.params)
    ct = read_volume(tmp_path / "ct")
    srcs = [pydicom.dcmread(f) for f in files]
    names = ["lesion", "spinal_cord"]
    pix = np.stack([ph.truth.get(n) for n in names], axis=-1).astype(np.uint8)  # (frames, rows, cols, segments)
    if fractional:  # probabilities: 0.7 inside, 0.3 in a one-voxel shell outside (must not be kept)
        from scipy.ndimage import binary_dilation
        shell = np.stack([binary_dilation(ph.truth.get(n)) & ~ph.truth.get(n) for n in names], axis=-1)
        pix = (0.7 * pix + 0.3 * shell).astype(np.float32)
    descs = [
        hd.seg.SegmentDescription(
            segment_number=i + 1, segment_label=n,
            segmented_property_category=codes.SCT.Tissue, segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for i, n in enumerate(names)
    ]
    seg = hd.seg.Segmentation(
        source_images=srcs, pixel_array=pix,
        segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL if fractional else hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descs, series_instance_uid=hd.UID(), series_number=2, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="osteoplan-test", manufacturer_model_name="test", software_versions="0",
        device_serial_number="0")
    seg.save_as(tmp_path / "seg.dcm")
    lm = load_masks(tmp_path / "seg.dcm", ct)
    for n in names:
        assert np.array_equal(lm.get(n), ph.truth.get(n)), n
    with pytest.raises(MaskError, match="not a Segmentation"):
        load_masks(files[0], ct)


@pytest.mark.slow
def test_openkbp_case_folder(shared_data):
    from osteoplan.imaging import read_volume

    case = shared_data / "openkbp" / "pt_1"
    ct = read_volume(case / "ct.nii.gz")
    lm = load_masks(case, ct)
    meta = json.loads((case / "case.json").read_text())["labels_voxels"]
    names = {"SpinalCord": "spinal_cord", "Brainstem": "brainstem", "Mandible": "mandible",
             "LeftParotid": "parotid_gland_left", "RightParotid": "parotid_gland_right",
             "Esophagus": "esophagus", "Larynx": "larynx"}
    for k, n in meta.items():
        assert lm.get(names[k]).sum() == n, k  # same grid: every voxel kept
    # the cord lies posterior to the mandible (LPS +y) and below the brainstem (-z)
    c = {n: ct.index_to_world(np.argwhere(lm.get(n)).mean(0)) for n in ("spinal_cord", "mandible", "brainstem")}
    assert c["spinal_cord"][1] > c["mandible"][1] and c["spinal_cord"][2] < c["brainstem"][2]


@pytest.mark.slow
def test_cthead_atlas_vertebral_arteries(shared_data):
    from osteoplan.imaging import read_volume

    ct = read_volume(shared_data / "cthead" / "ct.nii.gz")
    lm = load_masks(shared_data / "cthead" / "atlas_vessels", ct)
    left, right = lm.get("vertebral_artery_left"), lm.get("vertebral_artery_right")
    assert 0.5 < lm.volume_ml("vertebral_artery_left") < 5
    cl = ct.index_to_world(np.argwhere(left).mean(0))
    cr = ct.index_to_world(np.argwhere(right).mean(0))
    assert cl[0] - cr[0] > 30  # left artery on the patient's left (+x), roughly symmetric
    # they run in bone foramina: a good share of their neighbourhood is bone (> 300 HU)
    from scipy.ndimage import binary_dilation
    ring = binary_dilation(left, iterations=2) & ~left
    assert np.mean(ct.array[ring] > 300) > 0.1


def test_folder_with_totalsegmentator_multilabel_file(ct, tmp_path):
    d = tmp_path / "ts"
    d.mkdir()
    arr = np.zeros(CT_SHAPE, np.uint8)
    arr[3, 3:6, 3:6] = 1
    arr[4, 3:6, 3:6] = 2
    img = Volume(arr.astype(np.float32), CT_AFF).to_nifti(np.uint8)
    xml = ('<CaretExtension><LabelTable><Label Key="1"><![CDATA[vertebrae_C2]]></Label>'
           '<Label Key="2"><![CDATA[spinal_cord]]></Label></LabelTable></CaretExtension>')
    img.header.extensions.append(nib.nifti1.Nifti1Extension(0, xml.encode()))
    nib.save(img, str(d / "segmentations.nii.gz"))
    lm = load_masks(d, ct)
    assert lm.get("vertebrae_C2").sum() == 9 and lm.get("spinal_cord").sum() == 9
    assert np.array_equal(lm.get("spinal_cord"), arr == 2)


def test_cli_segment_with_provided_phantom_masks(tmp_path, capsys):
    pytest.importorskip("osteoplan.anatomy.pipeline", reason="segmentation pipeline not in this build")
    from osteoplan.anatomy.phantom import make_phantom, write_phantom
    from osteoplan.cli import main

    ph = make_phantom(spacing_mm=1.0, fov_inferior_mm=-40.0, fov_superior_mm=34.0)
    paths = write_phantom(ph, tmp_path / "ph", dicom=False)
    out = tmp_path / "seg"
    assert main(["segment", str(paths["ct"]), "--masks", str(tmp_path / "ph"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "provided:vertebral_artery_left.nii.gz" in printed
    summary = json.loads((out / "anatomy.json").read_text())
    assert summary["structures"]["spinal_cord"]["voxels"] == int(ph.truth.get("spinal_cord").sum())
    assert main(["segment", str(paths["ct"]), "--out", str(out)]) == 2  # exists
    # masks from another scan: one-line error, exit code 2
    far = tmp_path / "far"
    far.mkdir()
    aff = ph.volume.affine.copy()
    aff[:3, 3] += 800.0
    nib.save(Volume(ph.truth.get("lesion").astype(np.float32), aff).to_nifti(np.uint8), str(far / "lesion.nii.gz"))
    assert main(["segment", str(paths["ct"]), "--masks", str(far), "--out", str(tmp_path / "s2")]) == 2
    assert "does not overlap" in capsys.readouterr().err


def test_big_folder_skips_unknown_structures(ct, tmp_path, monkeypatch):
    import osteoplan.anatomy.loaders as loaders

    monkeypatch.setattr(loaders, "MAX_UNKNOWN_FOLDER", 3)
    d = tmp_path / "ts"
    d.mkdir()
    m = np.zeros(CT_SHAPE, np.uint8)
    m[1, 1, 1] = 1
    for n in ("sternocleidomastoid_right", "trapezius_left", "trachea", "vertebrae_C2"):
        save_mask_nifti(d / f"{n}.nii.gz", m, CT_AFF)
    warnings = []
    lm = load_masks(d, ct, warnings=warnings)
    assert set(lm.names()) == {"trachea", "vertebrae_C2"}
    assert any("2 structure file(s)" in w for w in warnings)
    lm2 = loaders.load_nifti_folder(d, ct, keep_unknown=True)
    assert {"sternocleidomastoid_right", "trapezius_left"} <= set(lm2.names())


def _rtstruct(path, rois):
    """Minimal RT Structure Set: rois = [(number, name, [contour points (n, 3) LPS], geometric type)]."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, RTStructureSetStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTStructureSetStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = RTStructureSetStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    ds.StructureSetROISequence = Sequence()
    ds.ROIContourSequence = Sequence()
    for number, name, contours, gtype in rois:
        r = Dataset()
        r.ROINumber = number
        r.ROIName = name
        ds.StructureSetROISequence.append(r)
        rc = Dataset()
        rc.ReferencedROINumber = number
        rc.ContourSequence = Sequence()
        for pts in contours:
            c = Dataset()
            c.ContourGeometricType = gtype
            c.NumberOfContourPoints = len(pts)
            c.ContourData = [round(float(v), 4) for v in np.asarray(pts).ravel()]
            rc.ContourSequence.append(c)
        ds.ROIContourSequence.append(rc)
    pydicom.dcmwrite(str(path), ds, enforce_file_format=True)
    return path


def _circle(cx, cy, z, r, n=72):
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(a), cy + r * np.sin(a), np.full(n, z)], axis=1)


def test_rtstruct_contours_rasterised_with_holes(tmp_path):
    # CT 1 mm isotropic: k -> z = 0..19, j -> y = -15..14, i -> x = -20..19
    ct = Volume(np.zeros((20, 30, 40), np.float32), axis_aligned_affine((1.0, 1.0, 1.0), (-20.0, -15.0, 0.0)))
    rois = [
        (1, "SpinalCord", [_circle(0.0, 0.0, z, 6.0) for z in (5.0, 6.0, 7.0)] + [_circle(0.0, 0.0, 6.0, 2.0)], "CLOSED_PLANAR"),
        (2, "Esophagus", [_circle(5.0, 5.0, 10.3, 3.0), _circle(5.0, 5.0, 500.0, 3.0)], "CLOSED_PLANAR"),
        (3, "Marker", [np.array([[0.0, 0.0, 3.0]])], "POINT"),
    ]
    path = _rtstruct(tmp_path / "rs.dcm", rois)
    warnings = []
    lm = load_masks(path, ct, warnings=warnings)
    cord = lm.get("spinal_cord")
    per_slice = cord.sum(axis=(1, 2))
    assert set(np.flatnonzero(per_slice)) == {5, 6, 7}  # z = k here
    assert per_slice[5] == pytest.approx(np.pi * 36, rel=0.08)             # ~113 voxels of 1 mm^2
    assert per_slice[6] == pytest.approx(np.pi * (36 - 4), rel=0.1)        # inner contour = hole
    assert not cord[6, 15, 20]  # hole centre (x = 0, y = 0): j = 15, i = 20
    assert cord[5, 15, 20]
    eso = lm.get("esophagus")
    assert set(np.flatnonzero(eso.sum(axis=(1, 2)))) == {10}  # z 10.3 -> nearest slice 10
    assert any("Esophagus" in w for w in warnings)  # the contour at z = 500 mm was skipped
    # POINT ROI: no area -> empty; an empty non-lesion structure is NOT segmented (never "absent")
    assert not lm.has("Marker") and any("'Marker' is empty" in w for w in warnings)
    # a structure set of another scan: error, not an empty structure
    far = _rtstruct(tmp_path / "far.dcm", [(1, "SpinalCord", [_circle(0, 0, 900.0, 5.0)], "CLOSED_PLANAR")])
    with pytest.raises(MaskError, match="does not overlap"):
        load_masks(far, ct)


# ------------------------------------------------------------------ value types, corrupt files, oblique grids


def _save_raw(path, data, affine_lps=CT_AFF):
    """Save *data* (K, J, I) with its own dtype (no casting) on the CT grid, as a NIfTI (RAS)."""
    img = Volume(np.zeros(CT_SHAPE, np.float32), affine_lps).to_nifti(np.uint8)
    nib.save(nib.Nifti1Image(np.transpose(data, (2, 1, 0)), img.affine), str(path))
    return path


def test_float_masks_probability_maps_and_stored_values(ct, tmp_path):
    d = tmp_path / "ts"
    d.mkdir()
    # 0/1 stored as float32 (some tools): exact
    cord = np.zeros(CT_SHAPE, np.float32)
    cord[4:6, 10:13, 10:14] = 1.0
    _save_raw(d / "spinal_cord.nii.gz", cord)
    # a probability map: 0.9 in a 2 x 3 x 4 core, 0.5 on one voxel (kept: >= 0.5), 0.49 and 0.2 around
    prob = np.zeros(CT_SHAPE, np.float32)
    prob[8:10, 5:8, 5:9] = 0.9
    prob[10, 5, 5] = 0.5
    prob[10, 6, 6] = 0.49
    prob[7, 5:8, 5:9] = 0.2
    _save_raw(d / "spinal_canal.nii.gz", prob)
    # a 0/255 mask
    eso = np.zeros(CT_SHAPE, np.uint8)
    eso[12, 1:3, 1:3] = 255
    _save_raw(d / "esophagus.nii.gz", eso)
    warnings = []
    lm = load_masks(d, ct, warnings=warnings)
    assert np.array_equal(lm.get("spinal_cord"), cord == 1)
    assert lm.get("spinal_cord").sum() == 24
    exp = prob >= 0.5
    assert exp.sum() == 2 * 3 * 4 + 1
    assert np.array_equal(lm.get("spinal_canal"), exp)
    assert lm.get("esophagus").sum() == 4
    assert any("fractional" in w and "spinal_canal.nii.gz" in w and ">= 0.5" in w for w in warnings)
    assert any("value 255" in w for w in warnings)
    assert not any("spinal_cord" in w for w in warnings)  # exact 0/1 floats need no note


@pytest.mark.parametrize("bad, match", [("nan", "NaN"), ("above_one", "continuous values"),
                                        ("negative", "continuous values"), ("no_background", "label table")])
def test_invalid_mask_values_are_clear_errors(ct, tmp_path, bad, match):
    a = np.zeros(CT_SHAPE, np.float32)
    a[4:6, 10:13, 10:14] = 0.8
    if bad == "nan":
        a[0, 0, 0] = np.nan
    elif bad == "above_one":
        a[0, 0, 0] = 1.7
    elif bad == "negative":
        a[0, 0, 0] = -0.3
    else:  # two values, neither is a background 0 (1 = background, 2 = structure?): ambiguous
        a = np.ones(CT_SHAPE, np.uint8)
        a[4:6, 10:13, 10:14] = 2
    d = tmp_path / "m"
    d.mkdir()
    _save_raw(d / "spinal_cord.nii.gz", a)
    _save_raw(d / "trachea.nii.gz", (a > 0.5).astype(np.uint8))
    # in a folder: a file named as a structure that is not a mask is an error, never silently skipped
    with pytest.raises(MaskError, match=match) as e:
        load_masks(d, ct)
    assert "spinal_cord.nii.gz" in str(e.value)
    with pytest.raises(MaskError, match=match):
        load_masks(d / "spinal_cord.nii.gz", ct)


def test_corrupt_gz_mask_is_a_clear_error_with_a_safe_name(ct, tmp_path):
    from osteoplan.errors import CorruptFileError

    d = tmp_path / "m"
    d.mkdir()
    m = np.zeros(CT_SHAPE, np.uint8)
    m[3:9, 3:9, 3:9] = 1
    good = save_mask_nifti(d / "trachea.nii.gz", m, CT_AFF)
    raw = good.read_bytes()
    (d / "spinal_cord.nii.gz").write_bytes(raw[: len(raw) // 2])  # truncated gzip
    with pytest.raises(CorruptFileError, match="spinal_cord.nii.gz") as e:
        load_masks(d, ct)
    assert "truncated" in str(e.value)
    with pytest.raises(CorruptFileError, match="spinal_cord.nii.gz"):
        load_masks(d / "spinal_cord.nii.gz", ct)
    # a damaged file whose name may identify the patient: the name is never shown
    (d / "spinal_cord.nii.gz").unlink()
    (d / "DOE_JOHN_1961.nii.gz").write_bytes(raw[:100])
    with pytest.raises(CorruptFileError) as e2:
        load_masks(d / "DOE_JOHN_1961.nii.gz", ct)
    assert "DOE" not in str(e2.value) and "<file>" in str(e2.value)
    warnings = []
    lm = load_masks(d, ct, warnings=warnings)  # outside the vocabulary: skipped with a warning, name hidden
    assert lm.names() == ["trachea"]
    assert any("could not be read" in w for w in warnings) and not any("DOE" in w for w in warnings)


def test_oblique_ras_mask_is_resampled_to_the_right_voxels(tmp_path):
    """A 0.5 mm mask grid rotated 30 deg about S and 20 deg about L, stored in RAS by nibabel,
    holding a 4 mm sphere about P: on the 1 mm CT, every voxel centre within 4 - 0.433 mm of P
    must be set and none beyond 4 + 0.433 mm (0.433 = half the diagonal of a 0.5 mm voxel, the
    farthest a nearest-neighbour sample can be from its source centre)."""
    ct = Volume(np.zeros((30, 30, 30), np.float32), axis_aligned_affine((1.0, 1.0, 1.0), (-15.0, -15.0, -15.0)))
    P = np.array([1.3, -2.2, 0.7])  # LPS mm
    a, b = np.radians(30.0), np.radians(20.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    R = rz @ rx                                   # columns: the mask's (i, j, k) directions in LPS
    n = 24
    origin_lps = P - R @ np.full(3, (n - 1) / 2 * 0.5) + np.array([0.11, -0.07, 0.05])  # P off the voxel centres
    ii, jj, kk = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij")
    centres = origin_lps + (np.stack([ii, jj, kk], -1) * 0.5) @ R.T
    data = (np.linalg.norm(centres - P, axis=-1) <= 4.0).astype(np.uint8)   # (i, j, k) order
    aff_lps = np.eye(4)
    aff_lps[:3, :3] = R * 0.5
    aff_lps[:3, 3] = origin_lps
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])       # LPS -> RAS
    nib.save(nib.Nifti1Image(data, flip @ aff_lps), str(tmp_path / "vertebrae_C2.nii.gz"))
    got = load_masks(tmp_path / "vertebrae_C2.nii.gz", ct).get("vertebrae_C2")
    dist = np.linalg.norm(ct.index_to_world(np.argwhere(np.ones(ct.shape, bool)).astype(float)) - P, axis=1)
    dist = dist.reshape(ct.shape)
    half_diag = 0.5 * np.sqrt(3) / 2
    assert got[dist <= 4.0 - half_diag].all()
    assert not got[dist > 4.0 + half_diag].any()
    # the sphere's volume (268.1 mm^3) and centre survive
    assert got.sum() == pytest.approx(4 / 3 * np.pi * 64, rel=0.08)
    np.testing.assert_allclose(ct.index_to_world(np.argwhere(got).mean(0)), P, atol=0.25)


def test_permuted_flipped_ras_grid_maps_voxel_to_voxel(ct, tmp_path):
    """Same spacing as the CT but the data axes stored (S, P, L) in a RAS file: axis 0 runs superior
    (2 mm), axis 1 posterior (RAS -y), axis 2 towards the patient's left (RAS -x); RAS origin
    (-20, 15, 40). By hand: data[a, b, c] is at LPS (20 + c, -15 + b, 40 + 2 a), i.e. on the CT grid
    (x = 10 + i, y = -20 + j, z = 30 + 2 k) the voxel (k, j, i) = (5 + a, 5 + b, 10 + c)."""
    aff_ras = np.array([[0.0, 0.0, -1.0, -20.0],
                        [0.0, -1.0, 0.0, 15.0],
                        [2.0, 0.0, 0.0, 40.0],
                        [0.0, 0.0, 0.0, 1.0]])
    data = np.zeros((10, 20, 25), np.uint8)
    data[7, 4, 12] = 1   # LPS (32, -11, 54) -> CT (12, 9, 22)
    data[1, 2, 3] = 1    # LPS (23, -13, 42) -> CT (6, 7, 13)
    nib.save(nib.Nifti1Image(data, aff_ras), str(tmp_path / "esophagus.nii.gz"))
    warnings = []
    lm = load_masks(tmp_path / "esophagus.nii.gz", ct, warnings=warnings)
    idx = {tuple(int(v) for v in r) for r in np.argwhere(lm.get("esophagus"))}
    assert idx == {(12, 9, 22), (6, 7, 13)}
    np.testing.assert_allclose(ct.index_to_world([12, 9, 22]), [32.0, -11.0, 54.0])
    assert warnings == []


def test_fractional_file_outside_the_vocabulary_is_not_loaded_from_a_folder(ct, tmp_path):
    d = tmp_path / "f"
    d.mkdir()
    img = np.random.default_rng(1).random(CT_SHAPE).astype(np.float32)  # e.g. an intensity-normalised image
    _save_raw(d / "scan_normalised.nii.gz", img)
    m = np.zeros(CT_SHAPE, np.uint8)
    m[2, 2, 2] = 1
    _save_raw(d / "trachea.nii.gz", m)
    warnings = []
    lm = load_masks(d, ct, warnings=warnings)
    assert lm.names() == ["trachea"]
    assert any("fractional" in w and "not loaded" in w for w in warnings)
    assert not any("scan_normalised" in w for w in warnings)  # name not shown (outside the vocabulary)
