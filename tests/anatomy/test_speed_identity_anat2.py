"""Anatomy speed, second round: every replacement gives the voxels of the scipy / numpy call it stands for.

Brute force on small random volumes (shapes down to one voxel along an axis, windows wider than the array).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from osteoplan.anatomy import segment as S


def test_last_axis_window_equals_scipy_min_max_filter_with_zero_outside():
    rng = np.random.default_rng(5)
    for _ in range(300):
        ndim = int(rng.integers(1, 4))
        shape = tuple(int(x) for x in rng.integers(1, 25, ndim))
        m = rng.random(shape) < rng.uniform(0.02, 0.98)
        h = int(rng.integers(1, 30))  # often wider than the row
        size = 2 * h + 1
        dil = ndi.maximum_filter1d(m.astype(np.uint8), size, axis=-1, mode="constant", cval=0) > 0
        ero = ndi.minimum_filter1d(m.astype(np.uint8), size, axis=-1, mode="constant", cval=0) > 0
        got_d = S._last_axis_window(m, h, True)
        got_e = S._last_axis_window(m, h, False)
        np.testing.assert_array_equal(got_d, dil)
        np.testing.assert_array_equal(got_e, ero)
        assert got_d.flags.c_contiguous and got_d.shape == m.shape
    # a non-contiguous input (a transposed view) gives the same as its copy
    m = rng.random((6, 7, 9)) < 0.4
    np.testing.assert_array_equal(S._last_axis_window(m.transpose(2, 1, 0), 3, True),
                                  S._last_axis_window(np.ascontiguousarray(m.transpose(2, 1, 0)), 3, True))


def test_last_axis_window_by_hand():
    m = np.array([0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0], bool)
    # dilation by 2 each side: voxels within 2 of a True one
    np.testing.assert_array_equal(S._last_axis_window(m, 2, True).astype(int),
                                  [1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    # erosion by 2 each side: only voxel 9 has its whole 5-voxel window (7..11) True
    np.testing.assert_array_equal(np.flatnonzero(S._last_axis_window(m, 2, False)), [9])
    # two rows never mix: the True voxel at the end of row 0 does not reach row 1
    r = np.zeros((2, 4), bool)
    r[0, 3] = True
    np.testing.assert_array_equal(S._last_axis_window(r, 3, True), [[1, 1, 1, 1], [0, 0, 0, 0]])


def test_box_filters_with_wide_boxes_equal_scipy():
    rng = np.random.default_rng(17)
    for _ in range(60):
        shape = tuple(int(x) for x in rng.integers(1, 16, 3))
        m = rng.random(shape) < rng.uniform(0.05, 0.95)
        size = tuple(int(x) for x in rng.choice([1, 3, 5, 9, 13, 25], 3))
        st = np.ones(size, bool)
        np.testing.assert_array_equal(S._box_dilate(m, size), ndi.binary_dilation(m, structure=st))
        np.testing.assert_array_equal(S._box_erode(m, size), ndi.binary_erosion(m, structure=st))


def test_local_argwhere_equals_numpy():
    from osteoplan.anatomy import _local

    rng = np.random.default_rng(23)
    for _ in range(200):
        ndim = int(rng.integers(1, 4))
        shape = tuple(int(x) for x in rng.integers(1, 12, ndim))
        m = rng.random(shape) < rng.choice([0.0, 0.01, 0.2, 0.9])
        if rng.random() < 0.3:
            m = m.astype(np.int32) * 7  # non-bool masks too
        exp = np.argwhere(m)
        got = _local.argwhere(m)
        assert got.dtype == exp.dtype and got.shape == exp.shape
        np.testing.assert_array_equal(got, exp)
        if exp.size:  # the mean taken from it (the sulcus centre, the C2 points) is the same float
            assert np.array_equal(got.mean(axis=0), exp.mean(axis=0))
    m = np.zeros((5, 6, 7), bool)
    m[2, 3, 4] = m[4, 0, 6] = True
    np.testing.assert_array_equal(_local.argwhere(m), [[2, 3, 4], [4, 0, 6]])


def test_small_holes_on_the_mask_box_equal_the_slice_by_slice_reference():
    # sparse masks in a larger array (the box is used), masks touching the array's faces (the box is clipped),
    # boxes narrower than max_size (the whole array is used), rings whose holes are just below / above max_size
    rng = np.random.default_rng(29)
    for trial in range(120):
        shape = tuple(int(x) for x in rng.integers(2, 26, 3))
        m = np.zeros(shape, bool)
        for _ in range(int(rng.integers(0, 4))):
            lo = [int(rng.integers(0, n)) for n in shape]
            hi = [min(a + int(rng.integers(1, 12)), n) for a, n in zip(lo, shape)]
            blob = rng.random(tuple(b - a for a, b in zip(lo, hi))) < rng.uniform(0.4, 0.95)
            m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] |= blob
        if trial % 5 == 0 and min(shape[1:]) >= 8:  # a ring with a hole of 9 voxels in every slice
            m[:, 2:7, 2:7] = True
            m[:, 3:6, 3:6] = False
        max_size = int(rng.choice([1, 4, 8, 9, 10, 30]))
        np.testing.assert_array_equal(S._remove_small_holes_in_slices(m, max_size),
                                      S._remove_small_holes_in_slices_reference(m, max_size))


def test_small_holes_box_by_hand():
    m = np.zeros((3, 20, 20), bool)
    m[1, 5:10, 5:10] = True
    m[1, 7, 7] = False  # a one-voxel hole
    box = S._small_holes_box(m, 4)
    assert box == (slice(1, 2), slice(4, 11), slice(4, 11))
    out = S._remove_small_holes_in_slices(m, 4)
    assert out[1, 7, 7] and out.sum() == 25
    assert S._small_holes_box(m, 7) is None  # the grown box (7 wide) is not wider than max_size
    assert S._remove_small_holes_in_slices(m, 7).sum() == 25


def _realign_reference(canal, sm, b_c, body_c, sp):
    """The loop of canal._realign_off_line_sections before its centroids were kept between slices (every centroid
    recomputed from the current mask)."""
    from osteoplan.anatomy import _local
    from osteoplan.anatomy.canal import CSF_HU, OFF_LINE_MM

    out = canal.copy()
    have = set(int(k) for k in np.nonzero(canal.any(axis=(1, 2)))[0])
    sp2 = np.asarray(sp[1:], float)
    for k in sorted(have, reverse=True):
        if k - 1 not in have or k + 1 not in have:
            continue
        c_lo = np.array(_local.center_of_mass(out[k - 1]))
        c_hi = np.array(_local.center_of_mass(out[k + 1]))
        c_k = np.array(_local.center_of_mass(out[k]))
        mid = 0.5 * (c_lo + c_hi)
        if np.linalg.norm((c_hi - c_lo) * sp2) > OFF_LINE_MM or np.linalg.norm((c_k - mid) * sp2) <= OFF_LINE_MM:
            continue
        dj, di = np.rint(mid - c_k).astype(int)
        moved = ndi.shift(out[k], (dj, di), order=0, mode="constant", cval=0) > 0
        moved &= ~b_c[k] & body_c[k]
        if moved.sum() < 0.5 * out[k].sum():
            continue
        if float(np.mean(np.abs(sm[k][moved] - CSF_HU))) < float(np.mean(np.abs(sm[k][out[k]] - CSF_HU))):
            out[k] = moved
    return out


def test_realign_off_line_sections_with_kept_centroids_equals_recomputing_them():
    # random tracks of 2 x 2 sections wandering off their neighbours' line, random HU; a moved section changes the
    # centroid the next slice down is compared with (the kept centroid must be the new one)
    from osteoplan.anatomy.canal import _realign_off_line_sections

    rng = np.random.default_rng(31)
    sp = np.array([3.0, 2.0, 2.0])
    n_moved = 0
    for _ in range(150):
        K = int(rng.integers(3, 12))
        canal = np.zeros((K, 24, 24), bool)
        for k in range(K):
            if rng.random() < 0.9:
                j, i = int(rng.integers(2, 20)), int(rng.integers(8, 12))
                canal[k, j:j + 2, i:i + 2] = True
        sm = rng.uniform(-20.0, 120.0, canal.shape)
        b_c = rng.random(canal.shape) < 0.05
        body_c = np.ones_like(canal)
        got = _realign_off_line_sections(canal, sm, b_c, body_c, sp)
        np.testing.assert_array_equal(got, _realign_reference(canal, sm, b_c, body_c, sp))
        n_moved += int((got != canal).any())
    assert n_moved >= 10  # the moving branch is exercised


def test_label_objects_equal_scipy_label_and_find_objects():
    from osteoplan.anatomy import _local

    rng = np.random.default_rng(37)
    st = ndi.generate_binary_structure(3, 1)
    for _ in range(100):
        shape = tuple(int(x) for x in rng.integers(1, 14, 3))
        m = np.zeros(shape, bool)
        lo = [int(rng.integers(0, n)) for n in shape]
        hi = [int(rng.integers(a, n)) + 1 for a, n in zip(lo, shape)]
        m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = rng.random(tuple(b - a for a, b in zip(lo, hi))) < rng.uniform(0, 0.7)
        lab, n, objs = _local.label_objects(m, structure=st)
        exp_lab, exp_n = ndi.label(m, structure=st)
        np.testing.assert_array_equal(lab, exp_lab)
        assert n == exp_n and objs == ndi.find_objects(exp_lab)
