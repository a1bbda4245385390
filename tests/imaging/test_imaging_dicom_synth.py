"""Every row of docs/dicom-behaviour.md on generated series with hand-computed geometry.

The generator (osteoplan.imaging.synth) stores the analytic field HU = 20 + 1.5x - 2y + 3z (+500 HU
inside a sphere) at every pixel centre, so HU can be checked at exact LPS points. Stored values are
rounded integers, hence the +-0.5 HU (x slope) tolerance.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless, RLELossless

from osteoplan.errors import CorruptFileError, DicomSeriesError, InputError, NotACTError, SeriesSelectionError
from osteoplan.imaging import Volume, read_volume, synth
from osteoplan.imaging.dicom_series import choose_series, describe, scan


def voxel_centres(v: Volume) -> np.ndarray:
    K, J, I = v.shape
    idx = np.stack(np.meshgrid(np.arange(K), np.arange(J), np.arange(I), indexing="ij"), -1).reshape(-1, 3)
    return v.index_to_world(idx)


def assert_field(v: Volume, tol: float = 0.5, sphere: bool = True, inside_only: bool = False):
    """Every voxel centre holds the analytic field at its LPS position (within the storage rounding)."""
    w = voxel_centres(v)
    exp = synth.hu_field(w, sphere=sphere)
    got = v.array.reshape(-1).astype(np.float64)
    if inside_only:
        keep = got > -1024
        assert keep.mean() > 0.5
        exp, got = exp[keep], got[keep]
    assert np.max(np.abs(exp - got)) <= tol + 1e-6


# ---------------------------------------------------------------- sorting and orientation
def test_axial_shuffled_names_instance_against_anatomy(tmp_path):
    # files named randomly, InstanceNumber counts from the top slice down
    synth.write_series(tmp_path, shuffle=True, instance_against_anatomy=True)
    v = read_volume(tmp_path)
    # hand-computed: 12 slices at z = -4, -2, ..., 18 (origin (-6,-8,-4), step 2 along +z),
    # rows along +y by 0.8 mm, columns along +x by 0.6 mm; origin = lowest slice after sorting
    assert v.shape == (12, 24, 20)
    np.testing.assert_allclose(v.affine, [[0, 0, 0.6, -6], [0, 0.8, 0, -8], [2, 0, 0, -4], [0, 0, 0, 1]], atol=1e-9)
    assert_field(v)
    # exact HU at an exact LPS point (voxel (k, j, i) = (5, 10, 3) -> x=-6+1.8, y=-8+8, z=-4+10)
    assert v.sample(np.array([-4.2, 0.0, 6.0])) == pytest.approx(20 + 1.5 * -4.2 + 3 * 6.0, abs=0.5)
    assert v.info.modality == "CT" and v.info.kernel == "BONE" and v.info.kvp == 120.0
    assert v.info.contrast is None


def test_instance_number_only_breaks_ties_not_order(tmp_path):
    # InstanceNumber in anatomical order or reversed gives the same volume
    synth.write_series(tmp_path / "a", instance_against_anatomy=True, seed=3)
    synth.write_series(tmp_path / "b", instance_against_anatomy=False, seed=3)
    a, b = read_volume(tmp_path / "a"), read_volume(tmp_path / "b")
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.affine, b.affine)


def test_sagittal_geometry(tmp_path):
    # row (0,1,0), col (0,0,-1): normal = row x col = (-1, 0, 0); slices at x = -6, -8, ..., -28.
    # Sorted by increasing position . normal = -x, so the first slice is x = -6.
    synth.write_series(tmp_path, orientation="sagittal")
    v = read_volume(tmp_path)
    np.testing.assert_allclose(v.affine[:3, 0], [-2, 0, 0], atol=1e-9)
    np.testing.assert_allclose(v.affine[:3, 1], [0, 0, -0.8], atol=1e-9)
    np.testing.assert_allclose(v.affine[:3, 2], [0, 0.6, 0], atol=1e-9)
    np.testing.assert_allclose(v.origin_mm, [-6, -8, -4], atol=1e-9)
    assert_field(v)


def test_coronal_geometry(tmp_path):
    # row (1,0,0), col (0,0,-1): normal (0, 1, 0); slices at y = -8, -6, ..., 14
    synth.write_series(tmp_path, orientation="coronal")
    v = read_volume(tmp_path)
    np.testing.assert_allclose(v.affine[:3, :4], [[0, 0, 0.6, -6], [2, 0, 0, -8], [0, -0.8, 0, -4]], atol=1e-9)
    assert_field(v)


def test_oblique_geometry_same_world(tmp_path):
    # row (0.8,0.6,0), col (-0.36,0.48,-0.8) -> normal = (-0.48, 0.64, 0.6) (all unit, orthogonal)
    iop = (0.8, 0.6, 0.0, -0.36, 0.48, -0.8)
    synth.write_series(tmp_path, orientation=iop, sphere=False)
    v = read_volume(tmp_path)
    np.testing.assert_allclose(v.affine[:3, 0], 2 * np.array([-0.48, 0.64, 0.6]), atol=1e-9)
    np.testing.assert_allclose(v.affine[:3, 1], 0.8 * np.array([-0.36, 0.48, -0.8]), atol=1e-9)
    np.testing.assert_allclose(v.affine[:3, 2], 0.6 * np.array([0.8, 0.6, 0.0]), atol=1e-9)
    assert_field(v, sphere=False)
    # an LPS point between voxels, computed by hand from index (5.5, 11.5, 9.5):
    # (-6,-8,-4) + 11*(-0.48,0.64,0.6) + 9.2*(-0.36,0.48,-0.8) + 5.7*(0.8,0.6,0) = (-10.032, 6.876, -4.76)
    p = np.array([-10.032, 6.876, -4.76])
    np.testing.assert_allclose(v.world_to_index(p), [5.5, 11.5, 9.5], atol=1e-9)
    assert v.sample(p) == pytest.approx(20 + 1.5 * -10.032 - 2 * 6.876 + 3 * -4.76, abs=0.5)


# ---------------------------------------------------------------- gaps and spacing
def test_gap_refused_with_position_then_interpolated(tmp_path):
    depths = [0, 2, 4, 8, 10, 12, 14, 16]  # slice at depth 6 missing -> z = -4 + 6 = 2
    synth.write_series(tmp_path, depths=depths, sphere=False)
    with pytest.raises(DicomSeriesError) as e:
        read_volume(tmp_path)
    assert "(-6.00, -8.00, 2.00)" in str(e.value) and "allow_gaps" in str(e.value)
    v = read_volume(tmp_path, allow_gaps=True)
    # never an averaged spacing: 9 slices of 2 mm (16 / 2 + 1), not 8 of 16/7 mm
    assert v.shape[0] == 9
    assert v.spacing_mm[0] == pytest.approx(2.0)
    assert_field(v, sphere=False)  # linear field: interpolation across the gap is exact
    assert any("gap interpolated" in w for w in v.warnings)
    # the gap as data: one slice missing at LPS (-6, -8, 2) (origin z -4 + depth 6), usual step 2 mm, 4 mm across
    [gap] = [n for n in v.reader_notes if n.kind == "gap_interpolated"]
    assert gap.count == 1 and gap.z_lps_mm == pytest.approx((2.0,))
    assert gap.points_lps_mm[0] == pytest.approx((-6.0, -8.0, 2.0))
    assert gap.step_mm == pytest.approx(2.0) and gap.gap_step_mm == pytest.approx(4.0)
    assert str(gap) in v.warnings


def test_gap_of_several_slices_keeps_every_position_as_data(tmp_path):
    depths = [0, 2, 4, 14, 16, 18]  # 4 slices missing at depths 6, 8, 10, 12 -> z = 2, 4, 6, 8
    synth.write_series(tmp_path, depths=depths, sphere=False)
    v = read_volume(tmp_path, allow_gaps=True)
    [gap] = [n for n in v.reader_notes if n.kind == "gap_interpolated"]
    assert gap.count == 4 and gap.z_lps_mm == pytest.approx((2.0, 4.0, 6.0, 8.0))
    # the sentence lists the first 3 positions, the data all 4
    assert str(gap) == ("gap interpolated: 4 slice(s) missing at (-6.00, -8.00, 2.00) mm LPS, (-6.00, -8.00, 4.00) "
                        "mm LPS, (-6.00, -8.00, 6.00) mm LPS ... (step 10.00 mm instead of 2.00 mm)")


def test_varying_spacing_refused_with_measured_steps_then_resampled(tmp_path):
    depths = [0, 2, 4, 5, 6, 8, 11, 14]
    synth.write_series(tmp_path, depths=depths, sphere=False)
    with pytest.raises(DicomSeriesError) as e:
        read_volume(tmp_path)
    msg = str(e.value)
    assert "1, 2, 3 mm" in msg and "resample_uniform" in msg
    v = read_volume(tmp_path, resample_uniform=True)
    assert v.shape[0] == 15 and v.spacing_mm[0] == pytest.approx(1.0)  # smallest step, 0..14 mm
    assert_field(v, sphere=False)


# ---------------------------------------------------------------- duplicates
def test_identical_duplicate_kept_once_with_warning(tmp_path):
    synth.write_series(tmp_path, duplicate="identical", duplicate_index=3)
    v = read_volume(tmp_path)
    assert v.shape == (12, 24, 20)
    assert any("identical" in w and "(-6.00, -8.00, 2.00)" in w for w in v.warnings)
    assert_field(v)


def test_different_duplicate_refused(tmp_path):
    synth.write_series(tmp_path, duplicate="different", duplicate_index=3)
    with pytest.raises(DicomSeriesError, match=r"different images at the same position \(-6.00, -8.00, 2.00\)"):
        read_volume(tmp_path)


# ---------------------------------------------------------------- several series
def test_several_series_default_largest_axial_and_explicit_choice(tmp_path):
    ax = synth.write_series(tmp_path, n_slices=12, prefix="a", seed=1)
    cor = synth.write_series(tmp_path, orientation="coronal", n_slices=20, prefix="c", seed=2,
                             image_type=("ORIGINAL", "PRIMARY", "OTHER"))
    thick = synth.write_series(tmp_path, n_slices=6, step=4.0, prefix="t", seed=4, pixel_spacing=(1.6, 1.2),
                               rows=12, cols=10, study_uid=ax.study_uid)
    v = read_volume(tmp_path)
    # the coronal series has more images but the largest AXIAL CT series is chosen, and the choice is said
    assert v.info.series_uid == ax.series_uid and v.shape == (12, 24, 20)
    assert any("3 series found" in w and "largest axial CT" in w for w in v.warnings)
    t = read_volume(tmp_path, series_uid=thick.series_uid)
    assert t.shape == (6, 12, 10)
    np.testing.assert_allclose(t.spacing_mm, [4.0, 1.6, 1.2])
    c = read_volume(tmp_path, series_uid=cor.series_uid)
    assert c.shape == (20, 24, 20)
    with pytest.raises(SeriesSelectionError, match="not in this input"):
        read_volume(tmp_path, series_uid="1.2.3.4.5")
    listing = describe(scan(tmp_path))
    assert sorted(item["images"] for item in listing) == [6, 12, 20]
    assert {item["orientation"] for item in listing} == {"axial", "coronal"}
    assert all(item["kernel"] == "BONE" for item in listing)


# ---------------------------------------------------------------- rescale
def test_per_slice_rescale_applied_in_float(tmp_path):
    slopes = [0.5, 1, 2, 1, 0.5, 1, 1, 0.25, 1, 1, 1, 1]
    intercepts = [-1000, -1024, -1100, -1024, -1024.5, -1024, -1024, -1024, -1000, -1024, -1024, -1024]
    synth.write_series(tmp_path, slopes=slopes, intercepts=intercepts)
    v = read_volume(tmp_path)
    assert v.array.dtype == np.float32
    assert_field(v, tol=1.0)  # slope 2 -> stored rounding up to 1 HU
    # slice with slope 0.25 (depth 14 -> z = 10) keeps quarter-HU resolution
    k = 7
    frac = np.abs(v.array[k] * 4 - np.rint(v.array[k] * 4))
    assert frac.max() < 1e-4 and np.any(np.abs(v.array[k] - np.rint(v.array[k])) > 0.1)


# ---------------------------------------------------------------- compressed
@pytest.mark.parametrize("ts", [JPEG2000Lossless, JPEGLSLossless, RLELossless, JPEGLosslessSV1],
                         ids=["jpeg2000", "jpeg-ls", "rle", "jpeg-lossless"])
def test_compressed_transfer_syntaxes_decode_exactly(tmp_path, ts):
    synth.write_series(tmp_path / "raw", rows=64, cols=64, seed=5)
    synth.write_series(tmp_path / "cmp", rows=64, cols=64, seed=5, transfer_syntax=ts)
    import pydicom

    f = next((tmp_path / "cmp").iterdir())
    assert pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID == ts
    a, b = read_volume(tmp_path / "raw"), read_volume(tmp_path / "cmp")
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.affine, b.affine)


def test_implicit_vr_little_endian(tmp_path):
    synth.write_series(tmp_path, transfer_syntax="1.2.840.10008.1.2")
    assert_field(read_volume(tmp_path))


# ---------------------------------------------------------------- gantry tilt
@pytest.mark.parametrize("tilt", [15.0, -20.0])
def test_gantry_tilt_detected_from_positions_and_resampled(tmp_path, tilt):
    synth.write_series(tmp_path, tilt_deg=tilt, sphere=False)
    v = read_volume(tmp_path)
    t = np.radians(tilt)
    # hand-computed: row (1,0,0), col (0,cos t,sin t), normal = row x col = (0,-sin t,cos t);
    # the table moved 2 mm along z per slice, i.e. 2 cos t along the normal and 2 sin t in-plane
    n = np.array([0, -np.sin(t), np.cos(t)])
    np.testing.assert_allclose(v.affine[:3, 0], 2 * np.cos(t) * n, atol=1e-6)
    np.testing.assert_allclose(v.affine[:3, 1], 0.8 * np.array([0, np.cos(t), np.sin(t)]), atol=1e-6)
    # orthogonal grid
    d = v.direction
    np.testing.assert_allclose(d.T @ d, np.eye(3), atol=1e-6)
    assert v.info.gantry_tilt_deg == pytest.approx(abs(tilt), abs=1e-3)
    assert any("gantry tilt of" in w for w in v.warnings)
    # in-plane drift over 11 slices = 22 sin t mm; rows grow by ceil(22 sin t / 0.8)
    assert v.shape == (12, 24 + int(np.ceil(22 * abs(np.sin(t)) / 0.8)), 20)
    assert_field(v, sphere=False, inside_only=True)


def test_tilt_tag_is_not_trusted(tmp_path):
    # GantryDetectorTilt says 15 deg but the positions are an orthogonal stack: no resampling
    synth.write_series(tmp_path)
    import pydicom

    for f in tmp_path.iterdir():
        ds = pydicom.dcmread(f)
        ds.GantryDetectorTilt = "15"
        ds.save_as(f)
    v = read_volume(tmp_path)
    assert v.info.gantry_tilt_deg is None and v.shape == (12, 24, 20)


# ---------------------------------------------------------------- rejection
@pytest.mark.parametrize("kwargs, reason", [
    (dict(sop_class=synth.SECONDARY_CAPTURE), "Secondary Capture"),
    (dict(image_type=("DERIVED", "SECONDARY", "AXIAL")), "DERIVED"),
    (dict(image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), orientation="coronal", n_slices=2), "localizer"),
    (dict(modality="MR", sop_class=synth.MR_IMAGE), "modality MR is not CT"),
])
def test_non_plannable_images_rejected_with_reason(tmp_path, kwargs, reason):
    synth.write_series(tmp_path, **kwargs)
    with pytest.raises(NotACTError, match=reason):
        read_volume(tmp_path)


def test_localizer_next_to_ct_is_listed_rejected_and_ct_chosen(tmp_path):
    ct = synth.write_series(tmp_path, prefix="ct", seed=1)
    loc = synth.write_series(tmp_path, prefix="loc", seed=2, orientation="coronal", n_slices=1,
                             image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), study_uid=ct.study_uid)
    res = scan(tmp_path)
    chosen, why = choose_series(res)
    assert chosen.uid == ct.series_uid
    rejected = [s for s in res.series if s.uid == loc.series_uid][0]
    assert "localizer" in rejected.rejection
    with pytest.raises(NotACTError, match="localizer"):
        read_volume(tmp_path, series_uid=loc.series_uid)


# ---------------------------------------------------------------- damaged files
def test_junk_file_skipped_with_warning(tmp_path):
    synth.write_series(tmp_path)
    synth.write_junk(tmp_path / "DOE_JOHN_notes.txt")  # a file name that may identify the patient
    (tmp_path / "sub").mkdir()
    synth.write_junk(tmp_path / "sub" / "readme")
    v = read_volume(tmp_path)
    assert v.shape == (12, 24, 20)
    assert any("not a DICOM file" in w for w in v.warnings)
    assert not any("DOE" in w or "JOHN" in w for w in v.warnings)  # never echo patient-derived names
    # two files skipped for one reason: counted, not named ("readme" is generic but still a file name)
    [note] = [n for n in v.reader_notes if n.kind == "files_skipped"]
    assert note.count == 2 and note.reason == "not a DICOM file"
    assert "2 files were skipped (names not recorded): not a DICOM file" in v.warnings
    assert not any("readme" in w for w in v.warnings)
    assert "DOE" not in repr(v.reader_notes) and "readme" not in repr(v.reader_notes)


def test_truncated_file_makes_series_incomplete(tmp_path):
    s = synth.write_series(tmp_path, shuffle=False)
    synth.truncate_file(s.files[5], 0.7)  # pixel data cut short: slice at z = -4 + 10 = 6 lost
    with pytest.raises(DicomSeriesError, match=r"1 truncated or undecodable file \(names not shown.*incomplete.*"
                       r"\(-6.00, -8.00, 6.00\)") as e:
        read_volume(tmp_path)
    assert "img005" not in str(e.value) and e.value.remedy == "allow_gaps_interior"


def test_truncated_header_becomes_a_named_gap(tmp_path):
    s = synth.write_series(tmp_path, shuffle=False)
    synth.truncate_file(s.files[5], 0.05)  # cut inside the header: not even a readable DICOM header
    with pytest.raises(DicomSeriesError, match=r"img005.dcm and the series misses InstanceNumber\(s\) 7 \(gap: 1 "
                       r"slice\(s\) missing at \(-6.00, -8.00, 6.00\).*Re-export or re-copy it.$") as e:
        read_volume(tmp_path)
    assert "allow_gaps" not in str(e.value)  # a lost file is not interpolated: allow_gaps would not help
    with pytest.raises(DicomSeriesError, match=r"gap: 1 slice\(s\) missing at \(-6.00, -8.00, 6.00\)"):
        read_volume(tmp_path, allow_gaps=True)


def test_truncated_copy_of_a_present_slice_is_skipped(tmp_path):
    s = synth.write_series(tmp_path, shuffle=False, duplicate="identical", duplicate_index=4)
    synth.truncate_file(s.files[-1], 0.7)  # the extra copy of slice 4 is truncated; the series is complete
    v = read_volume(tmp_path)
    assert v.shape == (12, 24, 20)
    [skip] = [n for n in v.reader_notes if n.kind == "undecodable_files_skipped"]
    # one file, its slice at z = -4 + 2 * 4 = 4 held by the identical copy: nothing interpolated
    assert skip.count == 1 and skip.z_lps_mm == pytest.approx((4.0,)) and skip.n_interpolated == 0
    assert str(skip) in v.warnings and not any("img012" in w for w in v.warnings)
    assert_field(v)


def test_truncated_interior_slice_interpolated_when_gaps_allowed(tmp_path):
    s = synth.write_series(tmp_path, shuffle=False, sphere=False)
    synth.truncate_file(s.files[5], 0.7)
    v = read_volume(tmp_path, allow_gaps=True)
    assert v.shape == (12, 24, 20)
    assert_field(v, sphere=False)
    # the skipped file and the gap it left, as data: its slice at z = -4 + 2 * 5 = 6 interpolated
    [skip] = [n for n in v.reader_notes if n.kind == "undecodable_files_skipped"]
    assert skip.count == 1 and skip.z_lps_mm == pytest.approx((6.0,)) and skip.n_interpolated == 1
    [gap] = [n for n in v.reader_notes if n.kind == "gap_interpolated"]
    assert gap.z_lps_mm == pytest.approx((6.0,)) and gap.gap_step_mm == pytest.approx(4.0)
    assert not any("img005" in w for w in v.warnings)


# ---------------------------------------------------------------- enhanced CT
def test_enhanced_multiframe_ct_functional_groups(tmp_path):
    order = [3, 0, 7, 1, 9, 2, 8, 4, 6, 5]  # frames stored out of anatomical order
    slopes = [1, 0.5, 1, 2, 1, 1, 0.5, 1, 1, 1]
    synth.write_enhanced_ct(tmp_path / "enh.dcm", frame_order=order, slopes=slopes)
    v = read_volume(tmp_path / "enh.dcm")
    assert v.info.source_format == "dicom-enhanced"
    assert v.info.kernel == "STANDARD" and v.info.kvp == 100.0
    assert v.shape == (10, 24, 20)
    np.testing.assert_allclose(v.affine, [[0, 0, 0.6, -6], [0, 0.8, 0, -8], [2, 0, 0, -4], [0, 0, 0, 1]], atol=1e-9)
    assert_field(v, tol=1.0)
    # the same file found in a folder
    assert np.array_equal(read_volume(tmp_path).array, v.array)


def test_enhanced_multiframe_sagittal(tmp_path):
    synth.write_enhanced_ct(tmp_path / "enh.dcm", orientation="sagittal")
    v = read_volume(tmp_path / "enh.dcm")
    np.testing.assert_allclose(v.affine[:3, 0], [-2, 0, 0], atol=1e-9)
    assert_field(v)


# ---------------------------------------------------------------- metadata, containers, formats
@pytest.mark.parametrize("agent, flag", [("IOHEXOL 350", True), ("NONE", False), (None, None)])
def test_contrast_flag(tmp_path, agent, flag):
    synth.write_series(tmp_path, contrast_agent=agent)
    assert read_volume(tmp_path).info.contrast is flag


def test_zip_of_dicom(tmp_path):
    s = synth.write_series(tmp_path / "d")
    z = tmp_path / "series.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for i, f in enumerate(s.files):
            zf.write(f, f"nested/dir/{f.name}")
        zf.writestr("nested/README.txt", "not dicom")
    v, ref = read_volume(z), read_volume(tmp_path / "d")
    np.testing.assert_array_equal(v.array, ref.array)
    np.testing.assert_allclose(v.affine, ref.affine)


def test_nifti_ras_and_nrrd_lps_ras_round_trip(tmp_path):
    synth.write_series(tmp_path / "d", orientation="sagittal")
    v = read_volume(tmp_path / "d")
    import nibabel as nib

    from osteoplan.imaging.io import write_nifti

    write_nifti(v, tmp_path / "v.nii.gz", dtype=np.float32)
    import gzip

    raw = gzip.decompress((tmp_path / "v.nii.gz").read_bytes())
    # scl_slope / scl_inter at bytes 112..120 of the NIfTI-1 header: exactly 1 and 0
    np.testing.assert_array_equal(np.frombuffer(raw[112:120], "<f4"), [1.0, 0.0])
    img = nib.load(tmp_path / "v.nii.gz")
    assert (img.dataobj.slope, img.dataobj.inter) == (1.0, 0.0)
    # NIfTI voxel (i, j, k) = (0, 0, 0) is the DICOM origin (-6, -8, -4) LPS -> (6, 8, -4) RAS
    np.testing.assert_allclose(img.affine @ [0, 0, 0, 1], [6, 8, -4, 1], atol=1e-6)
    n = read_volume(tmp_path / "v.nii.gz")
    np.testing.assert_allclose(n.affine, v.affine, atol=1e-6)
    np.testing.assert_array_equal(n.array, v.array)
    from osteoplan.imaging.io import write_nrrd

    for space in ("LPS", "RAS"):
        write_nrrd(v, tmp_path / f"v_{space}.nrrd", space=space)
        r = read_volume(tmp_path / f"v_{space}.nrrd")
        np.testing.assert_allclose(r.affine, v.affine, atol=1e-9)
        np.testing.assert_array_equal(r.array, v.array)
    import nrrd

    hdr = nrrd.read_header(str(tmp_path / "v_RAS.nrrd"))
    np.testing.assert_allclose(hdr["space origin"], [6, 8, -4])  # RAS origin of the LPS point (-6, -8, -4)


def test_bad_inputs_raise_input_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_volume(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SeriesSelectionError, match="No DICOM image"):
        read_volume(tmp_path / "empty")
    synth.write_junk(tmp_path / "junk.bin")
    with pytest.raises(InputError, match="Unsupported input"):
        read_volume(tmp_path / "junk.bin")
    (tmp_path / "bad.nii.gz").write_bytes(b"\x1f\x8b not really")
    with pytest.raises(CorruptFileError):
        read_volume(tmp_path / "bad.nii.gz")


def test_files_without_preamble_implicit_vr(tmp_path):
    # old archives: raw implicit-VR datasets without the 128-byte preamble and file meta
    import pydicom

    s = synth.write_series(tmp_path / "a", n_slices=4)
    (tmp_path / "b").mkdir()
    for f in s.files:
        ds = pydicom.dcmread(f)
        del ds.file_meta
        ds.preamble = None
        pydicom.dcmwrite(tmp_path / "b" / f.name, ds, implicit_vr=True, little_endian=True,
                         enforce_file_format=False)
    assert (tmp_path / "b" / s.files[0].name).read_bytes()[:2] == b"\x08\x00"
    v = read_volume(tmp_path / "b")
    np.testing.assert_array_equal(v.array, read_volume(tmp_path / "a").array)
    assert_field(v)


def test_runs_of_double_steps_are_varying_spacing_not_gaps(tmp_path):
    # 1 mm then 2 mm slices: the spacing changed, it is not "slices missing"
    synth.write_series(tmp_path, depths=[0, 1, 2, 3, 4, 6, 8, 10], sphere=False)
    with pytest.raises(DicomSeriesError, match=r"varies.*1, 2 mm"):
        read_volume(tmp_path)


def test_two_adjacent_missing_slices_are_one_gap(tmp_path):
    synth.write_series(tmp_path, depths=[0, 2, 4, 10, 12, 14, 16, 18], sphere=False)
    with pytest.raises(DicomSeriesError, match=r"2 slice\(s\) missing at \(-6.00, -8.00, 2.00\).*\(-6.00, -8.00, 4.00\)"):
        read_volume(tmp_path)
    v = read_volume(tmp_path, allow_gaps=True)
    assert v.shape[0] == 10
    assert_field(v, sphere=False)


def test_unreadable_header_at_the_end_detected_by_instance_numbers(tmp_path):
    s = synth.write_series(tmp_path, shuffle=False, instance_against_anatomy=True)
    # the last slice by position has InstanceNumber 1; its header is cut: not placeable by position
    for frac in (0.3, 0.02):  # inside the header, inside the preamble
        synth.truncate_file(s.files[-1], frac)
        with pytest.raises(DicomSeriesError, match=r"misses InstanceNumber\(s\) 1\b"):
            read_volume(tmp_path)


def test_tilt_as_sheared_positions_with_axial_orientation(tmp_path):
    # axial IOP, but every slice origin moves 0.5 mm posterior (+y, the column direction) per 2 mm:
    # tilt = atan(0.5 / 2) = 14.036 deg
    synth.write_series(tmp_path, orientation=(1, 0, 0, 0, 1, 0), sphere=False,
                       depths=None, n_slices=10)
    import pydicom

    for f in tmp_path.iterdir():
        ds = pydicom.dcmread(f)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        k = (z + 4.0) / 2.0
        ds.ImagePositionPatient = [x, y + 0.5 * k, z]
        hu = synth.slice_image(np.array([x, y + 0.5 * k, z]), (1, 0, 0, 0, 1, 0), (0.8, 0.6), 24, 20, sphere=False)
        ds.PixelData = np.rint(hu + 1024).astype(np.int16).tobytes()
        ds.save_as(f)
    v = read_volume(tmp_path)
    assert v.info.gantry_tilt_deg == pytest.approx(np.degrees(np.arctan(0.25)), abs=1e-3)
    np.testing.assert_allclose(v.affine[:3, 0], [0, 0, 2], atol=1e-9)
    assert v.shape == (10, 24 + int(np.ceil(4.5 / 0.8)), 20)
    assert_field(v, sphere=False, inside_only=True)


def test_lossy_compression_is_flagged(tmp_path):
    from pydicom.uid import JPEGLSNearLossless

    synth.write_series(tmp_path / "raw", rows=32, cols=32, seed=9)
    import pydicom

    (tmp_path / "lossy").mkdir()
    for f in (tmp_path / "raw").iterdir():
        ds = pydicom.dcmread(f)
        ds.compress(JPEGLSNearLossless, jls_error=2)
        ds.save_as(tmp_path / "lossy" / f.name)
    a, b = read_volume(tmp_path / "raw"), read_volume(tmp_path / "lossy")
    assert any("lossy image compression" in w for w in b.warnings)
    assert not any("lossy" in w for w in a.warnings)
    assert np.max(np.abs(a.array - b.array)) <= 2.0  # near-lossless bound: 2 stored units


def test_decoding_threads_only_for_compressed_transfer_syntaxes():
    """read_series decodes with threads only when a decoder running outside the GIL can use them."""
    from osteoplan.imaging.dicom_series import _any_compressed

    assert not _any_compressed({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})  # implicit / explicit VR little endian
    assert _any_compressed({"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90"})  # + JPEG 2000 lossless
    assert _any_compressed({"1.2.840.10008.1.2.5"})  # RLE lossless
    assert _any_compressed({""}) and _any_compressed({"1.2.3.4"})  # unknown: the safe default (threads)
