"""NIfTI output kept identical while made cheaper: the Huffman-only ct.nii.gz."""

from __future__ import annotations

import gzip

import numpy as np

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
