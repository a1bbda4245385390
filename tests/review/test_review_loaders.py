"""Reviewer's defects in the mask loaders: identifying structure names, empty masks, corrupt folders."""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pytest

from osteoplan.anatomy.loaders import load_masks, load_nifti_file
from osteoplan.errors import CorruptFileError, MaskError
from osteoplan.imaging import Volume, axis_aligned_affine

SHAPE = (6, 8, 10)


@pytest.fixture
def ct():
    return Volume(np.zeros(SHAPE, np.float32), axis_aligned_affine((2.0, 1.0, 1.0), (-5.0, -4.0, -6.0)))


def _save(ct, path, mask):
    nib.save(ct.with_array(mask.astype(np.float32)).to_nifti(np.uint8), str(path))
    return path


def test_identifying_mask_name_never_echoed(ct, tmp_path, caplog):
    d = tmp_path / "masks"
    d.mkdir()
    m = np.zeros(SHAPE, bool)
    m[2, 3, 4] = True
    _save(ct, d / "DUPONT_Jean.nii.gz", m)
    _save(ct, d / "thyroid_cartilage.nii.gz", m)
    _save(ct, d / "SpinalCord.nii.gz", m)
    warnings: list[str] = []
    with caplog.at_level(logging.WARNING):
        lm = load_masks(d, ct, warnings=warnings)
    assert set(lm.names()) == {"unnamed_1", "thyroid_cartilage", "spinal_cord"}
    assert lm.get("unnamed_1").sum() == 1
    text = " ".join(warnings) + caplog.text + repr(lm.sources)
    assert "DUPONT" not in text.upper() and "JEAN" not in text.upper()
    assert "thyroid_cartilage" in text  # an anatomy name is still shown


def test_empty_provided_mask_is_not_segmented_but_empty_lesion_is_absent(ct, tmp_path):
    d = tmp_path / "ts"
    d.mkdir()
    _save(ct, d / "vertebral_artery_left.nii.gz", np.zeros(SHAPE, bool))  # TotalSegmentator: not found
    _save(ct, d / "lesion.nii.gz", np.zeros(SHAPE, bool))
    cord = np.zeros(SHAPE, bool)
    cord[1:4, 4, 5] = True
    _save(ct, d / "spinal_cord.nii.gz", cord)
    warnings: list[str] = []
    lm = load_masks(d, ct, warnings=warnings)
    assert not lm.has("vertebral_artery_left")  # not assessed, never "clear"
    assert lm.has("lesion") and not lm.get("lesion").any()  # segmented and absent
    assert lm.get("spinal_cord").sum() == 3
    assert any("'vertebral_artery_left' is empty" in w and "NOT segmented" in w for w in warnings)


def test_folder_of_damaged_masks_says_so(ct, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    good = _save(ct, tmp_path / "spinal_cord.nii.gz", np.ones(SHAPE, bool))
    (d / "spinal_cord.nii.gz").write_bytes(good.read_bytes()[:60])
    # a damaged file named as a structure is an error naming it (it was skipped, so the structure would
    # silently have become "not assessed")
    with pytest.raises(CorruptFileError, match="Cannot read the mask spinal_cord.nii.gz"):
        load_masks(d, ct)


def test_mask_damaged_inside_its_gzip_stream_is_refused(ct, tmp_path):
    """A mask whose compressed data is damaged past the header inflates without error in nibabel (it never reads
    the gzip trailer) into a WRONG mask, which could make a structure look clear: it is refused, folder or file."""
    import gzip

    rng = np.random.default_rng(2)
    cord = rng.random(SHAPE) > 0.5
    d = tmp_path / "masks"
    d.mkdir()
    good = _save(ct, tmp_path / "spinal_cord.nii.gz", cord)
    raw = gzip.compress(gzip.decompress(good.read_bytes()), 9)  # one deflate stream, data well past the header
    refused = 0
    for trial in range(8):
        b = bytearray(raw)
        b[len(b) // 2 + trial] ^= 0xFF
        (d / "spinal_cord.nii.gz").write_bytes(bytes(b))
        with pytest.raises(CorruptFileError, match="Cannot read the mask spinal_cord.nii.gz: a damaged gzip file"):
            load_masks(d, ct)
        with pytest.raises(CorruptFileError, match="a damaged gzip file"):
            load_nifti_file(d / "spinal_cord.nii.gz", ct)
        refused += 1
    assert refused == 8
    (d / "spinal_cord.nii.gz").write_bytes(raw)  # the sound stream still loads, to the same mask
    assert np.array_equal(load_masks(d, ct).get("spinal_cord"), cord)
