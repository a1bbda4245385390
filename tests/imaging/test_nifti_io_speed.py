"""NIfTI input/output kept identical while made cheaper: nibabel without pydicom, the Huffman-only ct.nii.gz."""

from __future__ import annotations

import gzip
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from osteoplan.imaging.volume import Volume, axis_aligned_affine


def _volume(seed: int = 3) -> Volume:
    """A small oblique CT-like volume (HU in [-1024, 1500), a non-trivial affine)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(-1024, 1500, size=(7, 9, 11)).astype(np.float32)
    arr[2:5, 3:6, 4:8] = 700.0  # a block of "bone", so the data has runs as well as noise
    aff = axis_aligned_affine((2.5, 0.8, 0.7), (-12.5, 30.0, -101.0))
    c, s = np.cos(0.3), np.sin(0.3)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    aff[:3, :3] = rot @ aff[:3, :3]
    return Volume(arr, aff)


def test_saved_ct_decodes_to_the_bytes_nibabel_writes(tmp_path):
    """save_ct_nifti's file (Huffman-only deflate) decompresses to exactly what nib.save writes, and reads back
    to the same HU array and affine."""
    import nibabel as nib

    from osteoplan.export import save_ct_nifti
    from osteoplan.imaging import read_volume

    vol = _volume()
    new = save_ct_nifti(tmp_path / "ct.nii.gz", vol)
    old = tmp_path / "old.nii.gz"
    nib.save(vol.to_nifti(), str(old))  # the previous writer
    assert gzip.decompress(new.read_bytes()) == gzip.decompress(old.read_bytes())
    back = read_volume(new)
    np.testing.assert_array_equal(back.array, vol.array)  # integer HU: exact
    np.testing.assert_array_equal(back.affine, read_volume(old).affine)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-5)
    assert not list(tmp_path.glob(".*part*"))  # no temporary file left


def test_nifti_read_does_not_import_pydicom(tmp_path):
    """In a fresh interpreter, reading a NIfTI CT leaves pydicom unimported, and the volume equals the one read
    by nibabel imported with pydicom (array, affine bit for bit)."""
    vol = _volume(5)
    path = tmp_path / "ct.nii.gz"
    from osteoplan.export import save_ct_nifti

    save_ct_nifti(path, vol)
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from osteoplan.imaging import read_volume
        v = read_volume({str(path)!r})
        assert "pydicom" not in sys.modules, "pydicom was imported"
        import nibabel.nifti1
        assert not nibabel.nifti1.have_dicom
        import pydicom  # still importable afterwards
        np.save(sys.argv[1], np.concatenate([v.array.ravel().astype(np.float64), v.affine.ravel()]))
    """)
    out = tmp_path / "fresh.npy"
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, timeout=120)
    from osteoplan.imaging import read_volume

    here = read_volume(path)
    got = np.load(out)
    n = here.array.size
    np.testing.assert_array_equal(got[:n], here.array.ravel().astype(np.float64))
    np.testing.assert_array_equal(got[n:], here.affine.ravel())


def test_nifti_with_dicom_extension_still_reads_without_pydicom(tmp_path):
    """A NIfTI carrying a DICOM header extension (code 2) is read in a fresh interpreter (the extension is kept
    as raw bytes, never interpreted) with the right HU."""
    import nibabel as nib

    vol = _volume(7)
    img = vol.to_nifti()
    img.header.extensions.append(nib.nifti1.Nifti1Extension(0, b"not dicom, just bytes"))
    # code 2 = "dicom": an explicit-VR SpecificCharacterSet element, as a converter may leave
    img.header.extensions.append(nib.nifti1.Nifti1Extension(2, b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100"))
    path = tmp_path / "ext.nii"
    nib.save(img, str(path))
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from osteoplan.imaging import read_volume
        v = read_volume({str(path)!r})
        assert "pydicom" not in sys.modules
        np.save(sys.argv[1], v.array)
    """)
    out = tmp_path / "a.npy"
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, timeout=120)
    np.testing.assert_array_equal(np.load(out), vol.array)


def test_import_nibabel_leaves_other_threads_free_to_import_pydicom():
    """The finder answers "absent" only to the importing thread: another thread's find_spec is untouched."""
    import threading

    from osteoplan.imaging._nibabel import _NoPydicomFinder

    finder = _NoPydicomFinder()
    with pytest.raises(ModuleNotFoundError):
        finder.find_spec("pydicom")
    assert finder.find_spec("numpy") is None
    seen = []
    t = threading.Thread(target=lambda: seen.append(finder.find_spec("pydicom")))
    t.start()
    t.join()
    assert seen == [None]
