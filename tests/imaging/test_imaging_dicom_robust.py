"""Inputs that once crashed, hung or ran away (issue 18): each now ends quickly with a volume, a warning or one clear
error line. Series come from the generator (osteoplan.imaging.synth), damaged with raw header edits."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
from pydicom.uid import JPEG2000Lossless

from osteoplan.cli import main
from osteoplan.errors import DicomSeriesError, OsteoplanError
from osteoplan.imaging import dicom_series, read_volume, synth
from osteoplan.imaging.dicom_series import scan

PATIENT_DIR = "DOE^JANE_P123456_19610723"


def _series(folder, **kw):
    kw.setdefault("shuffle", False)  # img000 = lowest slice (z = -4), img011 = highest (z = 18)
    return synth.write_series(folder, **kw)


def _info(capsys, folder, *extra):
    code = main(["info", *extra, str(folder)])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _set_vr(path, keyword_tag: int, vr: bytes) -> None:
    """Replace only the two VR bytes of a top-level element (explicit VR little endian)."""
    data = bytearray(path.read_bytes())
    key = struct.pack("<HH", keyword_tag >> 16, keyword_tag & 0xFFFF)
    at = data.find(key, 132)
    assert at > 0
    data[at + 4:at + 6] = vr
    path.write_bytes(bytes(data))


# ---------------------------------------------------------------- uncaught errors
def test_corrupted_vr_in_the_first_file_is_no_crash(tmp_path, capsys):
    s = _series(tmp_path)
    _set_vr(s.files[0], 0x00100010, b"XX")  # PatientName with an unknown VR (NotImplementedError in pydicom)
    code, out, err = _info(capsys, tmp_path, "--json")
    assert "unexpected" not in err
    info = json.loads(out)
    # the damaged file keeps its geometry: the series is read, its free text hidden (identifiers not checkable)
    assert code == 0 and info["chosen"]["volume"]["shape_kji"] == [12, 24, 20]
    assert info["series"][0]["description"] == dicom_series.REMOVED_TEXT


@pytest.mark.parametrize("keyword, raw", [
    ("ImagePositionPatient", b"-6\\-8\\nan"),
    ("ImagePositionPatient", b"inf\\-8\\6"),
    ("ImageOrientationPatient", b"nan\\0\\0\\0\\1\\0"),
    ("ImageOrientationPatient", b"0\\0\\0\\0\\0\\0"),
])
def test_non_finite_geometry_skips_the_image_and_names_the_gap(tmp_path, capsys, keyword, raw):
    s = _series(tmp_path)
    synth.set_raw_element(s.files[5], keyword, "DS", raw)
    with pytest.raises(DicomSeriesError, match=r"An image of this series was left out \(file img005.dcm, "
                                               r"InstanceNumber 7: image without usable geometry"):
        read_volume(tmp_path)
    code, out, err = _info(capsys, tmp_path, "--json")
    info = json.loads(out)  # nothing (LAPACK) printed on stdout around the JSON
    assert code == 2 and "left out" in info["chosen"]["error"] and "unexpected" not in err
    assert err.startswith("error: the input (argument PATH): series 1 is not plannable as it stands: An image")


def test_1100_nested_folders_are_not_searched_past_the_limit(tmp_path):
    _series(tmp_path / "ct")
    levels = [tmp_path / "ct" / "d"]
    for _ in range(1099):  # os.makedirs (and shutil.rmtree) recurse: one level at a time
        levels.append(levels[-1] / "d")
    for d in levels:
        d.mkdir()
    (levels[-1] / "deep.dcm").write_bytes(b"x")
    try:
        v = read_volume(tmp_path / "ct")
        assert v.shape == (12, 24, 20)
        assert any(f"nested more than {dicom_series.MAX_FOLDER_DEPTH} levels deep" in w for w in v.warnings)
    finally:
        (levels[-1] / "deep.dcm").unlink()
        for d in reversed(levels):
            d.rmdir()


# ---------------------------------------------------------------- bounded time and memory
def test_named_pipe_is_skipped_not_read(tmp_path):
    _series(tmp_path)
    os.mkfifo(tmp_path / "pipe")  # opening it for reading would block forever
    v = read_volume(tmp_path)
    assert v.shape == (12, 24, 20)
    assert "a file was skipped (name not recorded): not a regular file (named pipe, socket or device)" in v.warnings
    [note] = [n for n in v.reader_notes if n.kind == "files_skipped"]
    assert note.count == 1 and note.reason == "not a regular file (named pipe, socket or device)"


@pytest.mark.parametrize("z, extent, shown", [(b"1e308", r"1e\+308", r"1e\+308"),
                                             (b"-7210000", r"7.21002e\+06", "-7210000.00")])
def test_one_slice_far_away_is_refused_with_the_measured_extent(tmp_path, capsys, z, extent, shown):
    s = _series(tmp_path)
    extra = tmp_path / "extra.dcm"
    extra.write_bytes(s.files[3].read_bytes())
    synth.set_raw_element(extra, "ImagePositionPatient", "DS", b"-6\\-8\\" + z)
    synth.set_raw_element(extra, "SOPInstanceUID", "UI", b"2.25.1")  # another image, not a copy of slice 3
    with pytest.raises(DicomSeriesError, match=rf"The slices span {extent} mm along the slice normal, more than "
                                               rf"any CT \(3000 mm\).*\(-6.00, -8.00, {shown}\) mm LPS"):
        read_volume(tmp_path)
    code, out, err = _info(capsys, tmp_path, "--json")
    assert code == 2 and len(out) < 20_000 and json.loads(out)["chosen"]["error"] and err.count("\n") == 1


def test_number_of_frames_2_31_is_refused_quickly(tmp_path):
    s = _series(tmp_path)
    synth.set_raw_element(s.files[0], "NumberOfFrames", "IS", b"2147483647")
    with pytest.raises(DicomSeriesError, match=r"left out \(file img000.dcm.*NumberOfFrames 2147483647 outside 1 \.\. "
                                               r"10000"):
        read_volume(tmp_path)


@pytest.mark.parametrize("defined_length", [False, True])
def test_1000_level_nested_sequence_is_bounded(tmp_path, defined_length):
    s = _series(tmp_path)
    # a private sequence nested 1,000 levels deep in one slice
    creator = struct.pack("<HH", 0x0029, 0x0010) + b"LO" + struct.pack("<H", 8) + b"MUTATION"
    inner = struct.pack("<HH", 0x0029, 0x1010) + b"LO" + struct.pack("<H", 4) + b"LEAF"
    for _ in range(1000):
        if defined_length:
            item = b"\xfe\xff\x00\xe0" + struct.pack("<I", len(inner)) + inner
            inner = struct.pack("<HH", 0x0029, 0x1010) + b"SQ\0\0" + struct.pack("<I", len(item)) + item
        else:
            item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + inner + b"\xfe\xff\x0d\xe0\0\0\0\0"
            inner = struct.pack("<HH", 0x0029, 0x1010) + b"SQ\0\0\xff\xff\xff\xff" + item + b"\xfe\xff\xdd\xe0\0\0\0\0"
    data = s.files[4].read_bytes()
    at = data.find(struct.pack("<HH", 0x0030, 0x0000), 132)
    at = at if at > 0 else data.find(b"\xe0\x7f\x10\x00", 132)  # before the pixel data
    s.files[4].write_bytes(data[:at] + creator + inner + data[at:])
    try:
        v = read_volume(tmp_path)
        assert v.shape == (12, 24, 20)
    except OsteoplanError as exc:
        assert "\n" not in str(exc)


def test_a_copy_of_an_image_moved_elsewhere_is_refused(tmp_path):
    # same SOPInstanceUID as the top slice, one step above it: the series must not silently grow a slice
    s = _series(tmp_path)
    extra = tmp_path / "copy.dcm"
    extra.write_bytes(s.files[11].read_bytes())
    synth.set_raw_element(extra, "ImagePositionPatient", "DS", b"-6\\-8\\20")
    with pytest.raises(DicomSeriesError, match=r"Two files hold the same image \(one SOPInstanceUID, InstanceNumber 1\) "
                                               r"at different positions, \(-6.00, -8.00, 18.00\) mm LPS and "
                                               r"\(-6.00, -8.00, 20.00\) mm LPS"):
        read_volume(tmp_path)


# ---------------------------------------------------------------- measurement noise is not a tilt
def test_position_noise_is_not_a_gantry_tilt(tmp_path):
    s = _series(tmp_path)
    clean = read_volume(tmp_path)
    synth.set_raw_element(s.files[6], "ImagePositionPatient", "DS", b"-5.98\\-8\\8")  # 0.02 mm in x
    v = read_volume(tmp_path)
    assert v.info.gantry_tilt_deg is None and not any("tilt" in w for w in v.warnings)
    np.testing.assert_array_equal(v.array, clean.array)  # not resampled
    np.testing.assert_allclose(v.affine, clean.affine)
    # the tolerance is a tenth of the smaller pixel spacing (0.06 mm here): 0.5 mm is still refused
    synth.set_raw_element(s.files[6], "ImagePositionPatient", "DS", b"-5.5\\-8\\8")
    with pytest.raises(DicomSeriesError, match=r"Slice origins do not lie on a line \(deviation 0.4\d mm, largest "
                                               r"near \(-5.50, -8.00, 8.00\) mm LPS\)"):
        read_volume(tmp_path)


def test_noise_on_the_first_slice_is_not_a_tilt_either(tmp_path):
    s = _series(tmp_path)
    synth.set_raw_element(s.files[0], "ImagePositionPatient", "DS", b"-6\\-7.98\\-4")
    v = read_volume(tmp_path)
    assert v.info.gantry_tilt_deg is None and v.shape == (12, 24, 20)


# ---------------------------------------------------------------- anonymised series
def test_anonymised_series_reads_with_a_warning_saying_what_was_missing(tmp_path):
    ref = _series(tmp_path / "ref", rows=32, cols=32, seed=4)
    anon = _series(tmp_path / "anon", rows=32, cols=32, seed=4, blank_series_uid=True, sop_class_in_dataset=False,
                   extension="", transfer_syntax=JPEG2000Lossless)
    assert all(not f.suffix for f in anon.files)
    a, b = read_volume(tmp_path / "ref"), read_volume(tmp_path / "anon")
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.affine, b.affine)
    assert "12 file(s) without SeriesInstanceUID (empty or absent): grouped by frame of reference, SOP class, image " \
           "size, pixel spacing and orientation (as anonymisers leave them)" in b.warnings
    assert "12 file(s) without SOPClassUID in the dataset: the file meta's MediaStorageSOPClassUID was used (as " \
           "anonymisers leave them)" in b.warnings
    assert b.info.series_uid is None  # no made-up UID in the volume's identity
    del ref


def test_two_anonymised_series_stay_apart(tmp_path):
    # blank SeriesInstanceUID in both; different pixel spacing -> two groups, the larger read
    _series(tmp_path, prefix="a", blank_series_uid=True, seed=1)
    _series(tmp_path, prefix="b", blank_series_uid=True, seed=2, n_slices=5, pixel_spacing=(0.5, 0.5))
    res = scan(tmp_path)
    assert sorted(s.n_files for s in res.series) == [5, 12]
    assert read_volume(tmp_path).shape == (12, 24, 20)


# ---------------------------------------------------------------- library messages without paths
def test_pydicom_messages_carry_no_path_or_value(tmp_path, capsys, caplog):
    folder = tmp_path / PATIENT_DIR
    s = _series(folder)
    for f in s.files:
        synth.set_raw_element(f, "PatientName", "PN", b"DOE^JANE^" + b"X" * 80)  # too long: pydicom warns
    code, out, err = _info(capsys, folder)
    assert code == 0
    logged = caplog.text
    assert "pydicom: The PN component length (89) exceeds the maximum allowed length of 64." in logged
    for needle in ("DOE", "JANE", "P123456", "19610723", str(tmp_path)):
        assert needle not in err and needle not in out and needle not in logged


def test_one_slice_far_across_the_plane_is_refused(tmp_path):
    s = _series(tmp_path)
    synth.set_raw_element(s.files[4], "ImagePositionPatient", "DS", b"1e300\\-8\\4")
    with pytest.raises(DicomSeriesError, match=r"Slice origins lie more than 3000 mm apart across the image plane "
                                               r"\(the farthest at \(1e\+300, -8.00, 4.00\) mm LPS\)"):
        read_volume(tmp_path)


def test_limits_on_files_and_file_size(tmp_path, monkeypatch):
    s = _series(tmp_path)
    monkeypatch.setattr(dicom_series, "MAX_FILE_BYTES", s.files[0].stat().st_size - 1)
    with pytest.raises(OsteoplanError, match="No DICOM image found"):
        read_volume(tmp_path)  # every file is over the (lowered) size limit: none is opened
    monkeypatch.setattr(dicom_series, "MAX_FILE_BYTES", 4 << 30)
    monkeypatch.setattr(dicom_series, "MAX_FILES", 11)
    with pytest.raises(OsteoplanError, match=r"More than 11 files under the input folder; give the folder of the "
                                             r"series"):
        read_volume(tmp_path)


def test_end_slice_with_a_damaged_series_uid_is_named_in_the_choice(tmp_path):
    s = _series(tmp_path)
    synth.set_raw_element(s.files[11], "SeriesInstanceUID", "UI", b"2.25.999")  # the top slice drifts away
    v = read_volume(tmp_path)
    assert v.shape == (11, 24, 20)
    assert any("of 2 series found" in w and "Series 2 share its study, frame of reference, orientation, image size "
               "and pixel spacing: if one holds slices of this series whose SeriesInstanceUID was damaged, the "
               "volume lacks them" in w for w in v.warnings)


def test_deid_logs_pydicom_messages_without_path_or_value(tmp_path, capsys, caplog):
    folder = tmp_path / PATIENT_DIR
    s = _series(folder, n_slices=3)
    for f in s.files:
        synth.set_raw_element(f, "PatientName", "PN", b"DOE^JANE^" + b"X" * 80)
    code = main(["deid", str(folder), str(tmp_path / "out")])
    cap = capsys.readouterr()
    assert code == 0
    assert "pydicom: The PN component length (89) exceeds the maximum allowed length of 64." in caplog.text
    for needle in ("DOE", "JANE", "P123456", "19610723", str(tmp_path)):
        assert needle not in cap.err and needle not in cap.out and needle not in caplog.text
