"""Volume geometry: index<->LPS, sampling, resampling, NIfTI RAS round trip (hand-computed values)."""

import numpy as np
import pytest

from osteoplan.errors import InputError
from osteoplan.imaging import Volume, axis_aligned_affine


def make(shape=(4, 5, 6), spacing=(2.0, 0.5, 0.75), origin=(10.0, -20.0, 30.0)):
    arr = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    return Volume(arr, axis_aligned_affine(spacing, origin))


def test_index_world_round_trip_hand_computed():
    v = make()
    # (k, j, i) = (1, 2, 3): x = 10 + 3*0.75, y = -20 + 2*0.5, z = 30 + 1*2
    np.testing.assert_allclose(v.index_to_world([1, 2, 3]), [12.25, -19.0, 32.0])
    np.testing.assert_allclose(v.world_to_index([12.25, -19.0, 32.0]), [1, 2, 3], atol=1e-12)
    np.testing.assert_allclose(v.spacing_mm, [2.0, 0.5, 0.75])


def test_trilinear_sampling_of_linear_field_is_exact():
    v = make()
    # array value = k*30 + j*6 + i, linear, so trilinear interpolation is exact
    p = v.index_to_world([1.5, 2.25, 3.5])
    assert v.sample(p) == pytest.approx(1.5 * 30 + 2.25 * 6 + 3.5)
    assert v.sample(v.index_to_world([100, 0, 0])) == pytest.approx(-1024.0)


def test_resample_to_spacing_keeps_world_values():
    v = make()
    r = v.resample_to_spacing((1.0, 0.5, 0.75))
    assert r.shape == (7, 5, 6)
    pt = v.index_to_world([1, 2, 3])
    assert r.sample(pt) == pytest.approx(v.sample(pt), abs=1e-4)


def test_nifti_round_trip_is_ras():
    v = make()
    img = v.to_nifti(dtype=np.float32)
    # NIfTI voxel (i, j, k) = (3, 2, 1) -> RAS = (-x, -y, z) of LPS
    ras = img.affine @ [3, 2, 1, 1]
    np.testing.assert_allclose(ras[:3], [-12.25, 19.0, 32.0])
    back = Volume.from_nifti(img)
    np.testing.assert_allclose(back.affine, v.affine)
    np.testing.assert_array_equal(back.array, v.array)


def test_sitk_round_trip():
    v = make()
    back = Volume.from_sitk(v.to_sitk())
    np.testing.assert_allclose(back.affine, v.affine)
    np.testing.assert_array_equal(back.array, v.array)


def test_bad_input_raises_input_error():
    with pytest.raises(InputError):
        Volume(np.zeros((3, 3)), np.eye(4))
    with pytest.raises(InputError):
        Volume(np.zeros((3, 3, 3)), np.zeros((4, 4)))
