"""Real CT (../shared/data/cthead): the must-show equalities and every pitfall example."""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.errors import DicomSeriesError
from osteoplan.imaging import Volume, read_volume

pytestmark = pytest.mark.realdata


def reindex_like(v: Volume, ref: Volume) -> np.ndarray:
    """ref's array re-indexed onto v's (k, j, i) grid, when both grids are the same set of LPS points.

    inv(ref.affine) @ v.affine must be a signed permutation with an integer offset (checked to 1e-6).
    """
    m = np.linalg.inv(ref.affine) @ v.affine
    p = m[:3, :3]
    assert np.allclose(np.abs(p), np.rint(np.abs(p)), atol=1e-6) and np.allclose(np.abs(p).sum(0), 1, atol=1e-6)
    perm = [int(np.argmax(np.abs(p[:, b]))) for b in range(3)]  # ref axis for each v axis
    arr = np.transpose(ref.array, perm)
    for b in range(3):
        if p[perm[b], b] < 0:
            arr = np.flip(arr, b)
    assert np.allclose(m[:3, 3], np.rint(m[:3, 3]), atol=1e-6)
    return arr


def assert_same_volume(v: Volume, ref: Volume):
    """Same HU in every voxel and the same LPS position of every voxel (1e-3 mm)."""
    assert sorted(v.shape) == sorted(ref.shape)
    arr = reindex_like(v, ref)
    assert arr.shape == v.shape
    np.testing.assert_array_equal(v.array, arr)
    K, J, I = v.shape
    corners = np.array([[k, j, i] for k in (0, K - 1) for j in (0, J - 1) for i in (0, I - 1)], float)
    w = v.index_to_world(corners)
    # the voxel of ref at the same world position holds the same value: its index is an integer
    ridx = ref.world_to_index(w)
    np.testing.assert_allclose(ridx, np.rint(ridx), atol=1e-3 / 2.0)
    np.testing.assert_allclose(ref.index_to_world(np.rint(ridx)), w, atol=1e-3)
    np.testing.assert_allclose(sorted(v.spacing_mm), sorted(ref.spacing_mm), atol=1e-6)


@pytest.fixture(scope="module")
def cthead(request):
    from osteoplan.shared_data import shared_data_dir

    d = shared_data_dir()
    if d is None:
        pytest.skip("../shared/data is absent on this machine (real-CT tests run in CI where it is present)")
    return d / "cthead"


@pytest.fixture(scope="module")
def neck_crop(cthead):
    return read_volume(cthead / "ct_neck_crop.nii.gz")


@pytest.mark.slow
def test_clean_series_equals_nifti_every_voxel(cthead):
    v = read_volume(cthead / "dicom" / "clean")
    ref = read_volume(cthead / "ct.nii.gz")
    assert v.shape == (113, 256, 256)
    # sorted along the normal (0, 0, 1): first slice is the most inferior, z = -224
    np.testing.assert_allclose(v.affine, [[0, 0, 1, 0], [0, 1, 0, 0], [2, 0, 0, -224], [0, 0, 0, 1]], atol=1e-9)
    assert_same_volume(v, ref)
    assert v.info.kvp == 120.0 and v.info.modality == "CT"
    assert v.warnings == ()


@pytest.mark.parametrize("case", ["shuffled", "jpeg2000", "varying_rescale", "private_phi"])
def test_pitfall_cases_equal_neck_crop(cthead, neck_crop, case):
    v = read_volume(cthead / "dicom-pitfalls" / case)
    assert_same_volume(v, neck_crop)


def test_missing_slice_refused_naming_position(cthead, neck_crop):
    with pytest.raises(DicomSeriesError, match=r"\(48.00, 60.00, -172.00\)"):
        read_volume(cthead / "dicom-pitfalls" / "missing_slice")
    v = read_volume(cthead / "dicom-pitfalls" / "missing_slice", allow_gaps=True)
    assert v.shape == neck_crop.shape
    # every acquired slice is exact; the interpolated one (z = -172 -> k = 26) lies between its neighbours
    arr = reindex_like(v, neck_crop)
    keep = np.ones(v.shape[0], bool)
    keep[26] = False
    np.testing.assert_array_equal(v.array[keep], arr[keep])
    np.testing.assert_allclose(v.array[26], 0.5 * (arr[25] + arr[27]), atol=1e-3)


def test_duplicate_slice_kept_once(cthead, neck_crop):
    v = read_volume(cthead / "dicom-pitfalls" / "duplicate_slice")
    assert any("identical pixels; one kept" in w for w in v.warnings)
    assert_same_volume(v, neck_crop)


def test_two_series_default_and_choice(cthead, neck_crop):
    from osteoplan.imaging.dicom_series import scan

    folder = cthead / "dicom-pitfalls" / "two_series"
    v = read_volume(folder)
    assert_same_volume(v, neck_crop)
    assert any("2 series found" in w for w in v.warnings)
    other = [s for s in scan(folder).series if s.uid != v.info.series_uid][0]
    c = read_volume(folder, series_uid=other.uid)
    assert c.shape == (27, 80, 80)
    np.testing.assert_allclose(c.spacing_mm, [4.0, 2.0, 2.0])


def test_private_phi_read_deidentified_in_memory(cthead, neck_crop):
    src = cthead / "dicom-pitfalls" / "private_phi"
    plain = read_volume(src)
    v = read_volume(src, deidentify=True, key="k")
    assert_same_volume(v, neck_crop)
    blob = (repr(v.info.to_dict()) + " ".join(v.warnings)).lower()
    for value in ["testperson", "camille", "fake-000123", "19580214", "hopital fictif", "acc998877", "ctfict01",
                  plain.info.series_uid.lower(), plain.info.study_uid.lower()]:
        assert value not in blob
    assert v.info.series_uid.startswith("2.") and v.info.kvp == 120.0
