"""The labelling and hole-filling wrappers of ``osteoplan.anatomy._local`` give scipy's arrays exactly.

:func:`cc_label` (cc3d where identical) against ``scipy.ndimage.label`` and :func:`fill_holes` (fill_voids where
identical) against ``scipy.ndimage.binary_fill_holes``, by brute force: labels, counts and dtypes compared with
``np.array_equal`` on random masks of random shapes (flat and anisotropic ones included), grown blobs, and
adversarial ones (empty, full, one voxel, voxels on every face and corner), for every structure the code uses and
some it does not (those must go to scipy and still agree).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from osteoplan.anatomy import _local
from osteoplan.anatomy._local import _cc3d_kind, _structure_kind, cc_label, fill_holes, label, label_objects

G = ndi.generate_binary_structure


def _plane(axis: int, rank: int) -> np.ndarray:
    st = np.zeros((3, 3, 3), bool)
    idx = [slice(None)] * 3
    idx[axis] = 1
    st[tuple(idx)] = G(2, rank)
    return st


#: 3D structures: scipy's three ranks, the six plane-wise ones (axis x 4/8), and two others (scipy fallback).
STRUCTS_3D = ([None] + [G(3, r) for r in (1, 2, 3)] + [_plane(a, r) for a in range(3) for r in (1, 2)]
              + [np.ones((3, 3, 3), int) * 2, np.pad(np.ones((3, 1, 1), bool), ((0, 0), (1, 1), (1, 1)))])
STRUCTS_2D = [None, G(2, 1), G(2, 2), np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]], bool)]


def _same_label(m, st):
    a, na = ndi.label(m, structure=st)
    b, nb = cc_label(m, structure=st)
    assert b.dtype == a.dtype == np.int32
    assert b.shape == m.shape
    assert nb == na and isinstance(nb, int)
    assert np.array_equal(a, b), (m.shape, st)


def _same_fill(m):
    a = ndi.binary_fill_holes(m)
    b = fill_holes(m)
    assert b.dtype == bool and b.shape == m.shape
    assert np.array_equal(a, b), m.shape


def _masks(rng, n, hi):
    for t in range(n):
        shape = tuple(int(x) for x in rng.integers(1, hi, 3))
        if t % 4 == 1:  # flat and thin shapes (the 2D-like paths)
            shape = tuple(int(x) if d != t % 3 else int(rng.integers(1, 3)) for d, x in enumerate(shape))
        if t % 5 == 0:
            m = ndi.binary_dilation(rng.random(shape) < 0.05, iterations=int(rng.integers(1, 3)))
        else:
            m = rng.random(shape) < rng.random()
        yield m


def _adversarial():
    for shape in ((1, 1, 1), (1, 1, 9), (1, 7, 1), (5, 1, 1), (4, 5, 6), (9, 3, 17)):
        yield np.zeros(shape, bool)
        yield np.ones(shape, bool)
        one = np.zeros(shape, bool)
        one[tuple(s // 2 for s in shape)] = True
        yield one
        faces = np.zeros(shape, bool)  # every corner and a voxel of every face set, a shell of background inside
        for c in np.ndindex(2, 2, 2):
            faces[tuple(-1 if ci else 0 for ci in c)] = True
        faces[0, :, ::2] = True
        faces[:, -1, 1::2] = True
        yield faces
        yield ~faces


def test_structure_kinds():
    assert _structure_kind(None, 3) == ("nd", 6) and _structure_kind(None, 2) == ("nd", 4)
    assert [_structure_kind(G(3, r), 3) for r in (1, 2, 3)] == [("nd", 6), ("nd", 18), ("nd", 26)]
    assert _structure_kind(G(2, 2).astype(int) * 5, 2) == ("nd", 8)
    assert _structure_kind(_plane(0, 1), 3) == ("plane", 0, 4)
    assert _structure_kind(_plane(2, 2), 3) == ("plane", 2, 8)
    assert _structure_kind(np.ones((3, 3, 3)), 1) is None and _structure_kind(None, 1) is None
    assert _structure_kind(STRUCTS_3D[-1], 3) is None
    # what goes to cc3d: 6/18/26 (18/26 not on a first axis of length 1), 2D 4, the slice-wise cross
    assert _cc3d_kind(("nd", 26), (2, 5, 5)) and not _cc3d_kind(("nd", 26), (1, 5, 5))
    assert _cc3d_kind(("nd", 4), (5, 5)) and not _cc3d_kind(("nd", 8), (5, 5))
    assert _cc3d_kind(("plane", 0, 4), (3, 5, 5)) and not _cc3d_kind(("plane", 1, 4), (3, 5, 5))


def test_cc_label_equals_scipy_on_random_masks_for_every_structure():
    rng = np.random.default_rng(14)
    for m in _masks(rng, 120, 24):
        for st in STRUCTS_3D:
            _same_label(m, st)
        for st in STRUCTS_2D:
            _same_label(m[0], st)
            _same_label(m[:, 0], st)


def test_cc_label_equals_scipy_on_adversarial_masks_and_inputs():
    for m in _adversarial():
        for st in STRUCTS_3D:
            _same_label(m, st)
        for st in STRUCTS_2D:
            _same_label(m[0], st)
    rng = np.random.default_rng(3)
    m = rng.random((7, 9, 11)) < 0.4
    _same_label(np.asfortranarray(m), G(3, 2))  # memory order does not change the numbering
    _same_label(m[:, ::2, 1:], None)  # a strided view
    _same_label((m * 3).astype(np.uint8), None)  # non-zero = feature, whatever the value
    _same_label(m.astype(float) * -2.5, _plane(0, 1))
    _same_label(np.zeros((0, 4, 4), bool), None)
    _same_label(m[0, 0], None)  # 1D: scipy
    # a known case, counted by hand: two diagonal voxels are 2 components 6-connected, 1 at 18 and 26
    d = np.zeros((2, 2, 2), bool)
    d[0, 0, 0] = d[1, 1, 0] = True
    assert cc_label(d)[1] == 2 and cc_label(d, G(3, 2))[1] == 1
    d[1, 1, 0], d[1, 1, 1] = False, True
    assert cc_label(d, G(3, 2))[1] == 2 and cc_label(d, G(3, 3))[1] == 1
    # slice-wise cross: the same blob in two slices is two components, numbered slice by slice
    s = np.zeros((2, 4, 4), bool)
    s[:, 1:3, 1:3] = True
    s[0, 0, 3] = True
    lab, n = cc_label(s, _plane(0, 1))
    assert n == 3 and lab[0, 0, 3] == 1 and lab[0, 1, 1] == 2 and lab[1, 2, 2] == 3


def test_box_wrappers_equal_scipy_on_the_whole_array():
    rng = np.random.default_rng(5)
    for m in _masks(rng, 40, 20):
        big = np.zeros((m.shape[0] + 6, m.shape[1] + 3, m.shape[2] + 5), bool)
        big[2:2 + m.shape[0], 1:1 + m.shape[1], 4:4 + m.shape[2]] = m
        for st in (None, G(3, 3), _plane(0, 1), _plane(1, 2)):
            a, na = ndi.label(big, structure=st)
            b, nb = label(big, structure=st)
            assert nb == na and b.dtype == np.int32 and np.array_equal(a, b)
            c, nc, objs = label_objects(big, structure=st)
            assert nc == na and np.array_equal(a, c) and objs == ndi.find_objects(a)


def test_fill_holes_equals_scipy():
    rng = np.random.default_rng(7)
    for m in list(_masks(rng, 150, 24)) + list(_adversarial()):
        _same_fill(m)
        _same_fill(m[0])
        _same_fill(m[:, :, 0])
        assert np.array_equal(_local.fill_holes_2d(m[0]), ndi.binary_fill_holes(m[0]))
    # the fill_voids face-seeding case the padding guards against: a face voxel walled off by foreground
    m = np.zeros((3, 4, 5), bool)
    m[0, 0, 0] = m[0, 0, 2] = m[0, 1, 1] = m[1, 0, 1] = True
    assert not fill_holes(m)[0, 0, 1]
    _same_fill(m)
    # a closed box of bone: its inside is filled, nothing else
    box = np.zeros((7, 8, 9), bool)
    box[1:6, 1:7, 1:8] = True
    box[2:5, 2:6, 2:7] = False
    out = fill_holes(box)
    assert out.sum() == 5 * 6 * 7 and out[3, 4, 4]
    # plane by plane: scipy's 2D fill of every plane, for each axis
    for m in list(_masks(rng, 60, 20)) + list(_adversarial()):
        for axis in range(3):
            ref = np.stack([ndi.binary_fill_holes(np.take(m, p, axis=axis)) for p in range(m.shape[axis])], axis=axis)
            out = _local.fill_holes_planes(m, axis)
            assert out.dtype == bool and np.array_equal(out, ref)
            assert np.array_equal(out, ndi.binary_fill_holes(m, _plane(axis, 1)))
    # other structures go to scipy and agree
    for st in (G(3, 3), _plane(0, 1)):
        m = rng.random((6, 7, 8)) < 0.6
        assert np.array_equal(fill_holes(m, st), ndi.binary_fill_holes(m, st))


@pytest.mark.parametrize("threshold_hu", [-300.0, 250.0])
def test_cc_label_equals_scipy_on_the_phantom_ct(threshold_hu):
    """Real-size masks of CT-like structure (the neck phantom): every structure the code uses."""
    from osteoplan.anatomy.phantom import make_phantom

    m = make_phantom(spacing_mm=1.2).volume.array > threshold_hu
    for st in (None, G(3, 3), _plane(0, 1), _plane(1, 1), _plane(0, 2)):
        _same_label(m, st)
        _same_label(~m, st)
    _same_fill(m)
    _same_fill(m[m.shape[0] // 2])
