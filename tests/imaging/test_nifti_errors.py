"""A file that nibabel cannot read says what it is (not a NIfTI, not gzip, a truncated or damaged gzip, an
uncompressed NIfTI named .gz) and what to do, in one line, without an exception's name or the file's name."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from osteoplan.errors import CorruptFileError
from osteoplan.imaging.io import read_volume
from osteoplan.imaging.volume import Volume, axis_aligned_affine

PATIENT = "DUPONT_JEAN"


@pytest.fixture(scope="module")
def nii_bytes(tmp_path_factory):
    d = tmp_path_factory.mktemp("nii")
    rng = np.random.default_rng(0)
    vol = Volume(rng.normal(0, 300, (16, 20, 24)).astype(np.float32), axis_aligned_affine((2.0, 1.0, 1.0)))
    nib.save(vol.to_nifti(), d / "ct.nii")
    return (d / "ct.nii").read_bytes()


def _message(path) -> str:
    with pytest.raises(CorruptFileError) as e:
        read_volume(path)
    msg = str(e.value)
    assert "\n" not in msg and PATIENT not in msg and "Error" not in msg and "Is the file complete" not in msg
    assert msg.startswith("Cannot read NIfTI <file>: ")
    return msg[len("Cannot read NIfTI <file>: "):]


def test_text_file_named_nii_gz(tmp_path):
    p = tmp_path / f"{PATIENT}.nii.gz"
    p.write_text("patient list\n")
    assert _message(p) == ("not a NIfTI file (no NIfTI header, and not gzip-compressed as .gz says): give the CT as "
                           "a DICOM folder or zip, a NIfTI (.nii/.nii.gz) or an NRRD file.")


def test_uncompressed_nifti_named_gz(tmp_path, nii_bytes):
    p = tmp_path / f"{PATIENT}.nii.gz"
    p.write_bytes(nii_bytes)
    assert _message(p).startswith("an uncompressed NIfTI named .gz (not gzip-compressed): rename it to .nii")


def test_truncated_gzip(tmp_path, nii_bytes):
    whole = gzip.compress(nii_bytes)
    p = tmp_path / f"{PATIENT}.nii.gz"
    p.write_bytes(whole[: len(whole) // 2])
    assert _message(p) == "a truncated gzip file (the copy stopped before its end): copy or export the CT again."


def test_damaged_gzip(tmp_path, nii_bytes):
    whole = bytearray(gzip.compress(nii_bytes))
    whole[100:116] = b"\xff" * 16  # the deflate stream near the NIfTI header (nibabel fails there)
    p = tmp_path / f"{PATIENT}.nii.gz"
    p.write_bytes(bytes(whole))
    assert _message(p).startswith("a damaged gzip file (its data or checksum is wrong, so its voxel values cannot "
                                  "be trusted)")


def test_gzip_of_something_else(tmp_path):
    p = tmp_path / f"{PATIENT}.nii.gz"
    p.write_bytes(gzip.compress(b"just some text, no image" * 40))
    assert _message(p).startswith("a gzip file that holds no NIfTI image (no NIfTI header inside)")


def test_plain_nii_that_is_not_nifti(tmp_path):
    p = tmp_path / f"{PATIENT}.nii"
    p.write_text("x" * 600)
    assert _message(p).startswith("not a NIfTI file (no NIfTI header): give the CT as")


def test_nifti_header_with_data_cut_short(tmp_path, nii_bytes):
    p = tmp_path / f"{PATIENT}.nii"
    p.write_bytes(nii_bytes[:1000])
    assert _message(p).startswith("the NIfTI header is there but the image could not be read")


def test_nrrd_that_is_not_nrrd_says_so(tmp_path):
    p = tmp_path / f"{PATIENT}.nrrd"
    p.write_text("hello\n")
    with pytest.raises(CorruptFileError) as e:
        read_volume(p)
    assert str(e.value) == ("Cannot read NRRD <file>: not an NRRD file (no NRRD header): give the CT as a DICOM "
                            "folder or zip, a NIfTI (.nii/.nii.gz) or an NRRD file.")


def test_a_nifti_gz_damaged_inside_is_refused_not_read_with_wrong_voxels(tmp_path):
    """nibabel stops at the last voxel and never checks the gzip trailer: a one-byte change inside the compressed
    data inflated without error into wrong voxel values in most trials. Every such copy is refused, and the sound
    file still reads to the same voxels."""
    import gzip

    import nibabel as nib

    from osteoplan.errors import CorruptFileError
    from osteoplan.imaging import read_volume

    rng = np.random.default_rng(5)
    arr = (rng.normal(0, 400, (24, 32, 32))).astype(np.int16)
    good = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(arr, np.diag([0.8, 0.8, 1.5, 1.0])), str(good))
    ref = read_volume(good).array
    raw = good.read_bytes()
    silent_before = 0
    for trial in range(12):
        b = bytearray(raw)
        pos = int(rng.integers(len(b) // 4, 3 * len(b) // 4))
        b[pos] ^= 0xFF
        bad = tmp_path / f"bad{trial}.nii.gz"
        bad.write_bytes(bytes(b))
        try:  # what nibabel alone does (the reason for the check)
            wrong = np.asarray(nib.load(str(bad)).dataobj)
            silent_before += int(not np.array_equal(wrong, np.asarray(nib.load(str(good)).dataobj)))
        except Exception:
            pass
        with pytest.raises(CorruptFileError, match="damaged gzip file .* voxel values cannot be trusted"):
            read_volume(bad)
    assert silent_before >= 1  # the danger is real on this data: nibabel returned different voxels silently
    np.testing.assert_array_equal(read_volume(good).array, ref)
    with gzip.open(good, "rb") as f:  # and the sound file passes the same full-stream check
        assert len(f.read()) > 348
