"""The canal's, airway's and bony canal's faster computations equal the straightforward ones, voxel for voxel.

Brute force on small random and structured volumes: each local/vectorised function against scipy on the whole
array, or against the loop it replaces (kept beside it as ``*_reference``).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from osteoplan.anatomy import _local
from osteoplan.anatomy import canal as canal_mod


def _random_mask(rng, shape, p=None, grow=None):
    m = rng.random(shape) < (rng.uniform(0.002, 0.08) if p is None else p)
    it = int(rng.integers(0, 3)) if grow is None else grow
    return ndi.binary_dilation(m, iterations=it) if it else m


def test_local_label_equals_scipy_label_numbering_included():
    rng = np.random.default_rng(10)
    for trial in range(40):
        ndim = 2 if trial % 2 else 3
        shape = tuple(int(x) for x in rng.integers(1, 30, ndim))
        m = _random_mask(rng, shape)
        if trial == 0:
            m[:] = False
        for conn in (1, ndim):
            st = ndi.generate_binary_structure(ndim, conn)
            lab, n = _local.label(m, structure=st)
            ref, nr = ndi.label(m, structure=st)
            assert n == nr
            np.testing.assert_array_equal(lab, ref)


def test_local_binary_dilation_equals_scipy():
    rng = np.random.default_rng(11)
    for trial in range(40):
        shape = tuple(int(x) for x in rng.integers(1, 25, 2))
        m = _random_mask(rng, shape, grow=0)
        st = canal_mod._disk(float(rng.uniform(0.8, 4.0))) if trial % 3 else rng.random((3, 5)) < 0.6
        st[st.shape[0] // 2, st.shape[1] // 2] = True
        np.testing.assert_array_equal(_local.binary_dilation(m, st), ndi.binary_dilation(m, structure=st))
    m3 = np.zeros((4, 9, 9), bool)
    m3[1, 0, 8] = True  # at the corner: clipped box
    st3 = np.ones((1, 3, 3), bool)
    np.testing.assert_array_equal(_local.binary_dilation(m3, st3), ndi.binary_dilation(m3, structure=st3))
    assert _local.bbox(np.zeros((3, 3), bool)) is None


def test_closing_in_planes_equals_scipy_closing():
    rng = np.random.default_rng(12)
    for _ in range(25):
        shape = (int(rng.integers(1, 6)), int(rng.integers(3, 40)), int(rng.integers(3, 40)))
        bz = _random_mask(rng, shape, p=rng.uniform(0.05, 0.5), grow=0)
        disk = canal_mod._disk(float(rng.uniform(1.0, 4.5)))
        np.testing.assert_array_equal(canal_mod._closing_in_planes(bz, disk),
                                      ndi.binary_closing(bz, structure=disk[None]))


def test_enclosed_equals_per_direction_ray_casting():
    rng = np.random.default_rng(13)
    for trial in range(25):
        shape = (int(rng.integers(5, 60)), int(rng.integers(5, 60)))
        wall = rng.random(shape) < rng.uniform(0.0, 0.2)
        roi = rng.random(shape) < 0.3
        sp2 = rng.uniform(0.4, 5.0, 2)
        r = float(rng.uniform(1.0, 20.0))
        fast = canal_mod._enclosed(wall, roi, sp2, r)
        np.testing.assert_array_equal(fast, canal_mod._enclosed_reference(wall, roi, sp2, r))
    # a closed square ring of bone: its centre is enclosed in every direction, a voxel outside in fewer
    wall = np.zeros((21, 21), bool)
    wall[5, 5:16] = wall[15, 5:16] = wall[5:16, 5] = wall[5:16, 15] = True
    roi = np.zeros_like(wall)
    roi[10, 10] = roi[10, 19] = True
    e = canal_mod._enclosed(wall, roi, np.array([1.0, 1.0]), 15.0)
    assert e[10, 10] == 1.0 and 0.0 < e[10, 19] < 0.5 and e[0, 0] == 0.0


def test_recentre_search_equals_the_loop_over_shifts():
    rng = np.random.default_rng(14)
    n_found = 0
    for trial in range(60):
        J, I = int(rng.integers(12, 50)), int(rng.integers(12, 50))
        sec = np.zeros((J, I), bool)
        j0, i0 = int(rng.integers(0, J - 6)), int(rng.integers(0, I - 6))
        sec[j0:j0 + int(rng.integers(1, 6)), i0:i0 + int(rng.integers(1, 6))] = True
        jj, ii = np.nonzero(sec)
        cen = np.array([jj.mean(), ii.mean()])
        ref = cen + rng.uniform(-3, 6, 2)
        body = rng.random((J, I)) < (1.0 if trial % 4 else 0.97)
        bone = rng.random((J, I)) < rng.uniform(0.0, 0.4)
        sm = rng.normal(rng.uniform(-20, 80), 40.0, (J, I)).astype(np.float32 if trial % 2 else np.float64)
        encl = np.floor(rng.random((J, I)) * 17) / 16
        sp = np.array([2.0, *rng.uniform(0.5, 2.0, 2)])
        args = (jj, ii, cen, ref, int(rng.integers(0, 12)), int(rng.integers(0, 6)), body, bone, sm, encl, sp)
        fast = canal_mod._recentre_search(*args)
        assert fast == canal_mod._recentre_search_reference(*args)
        n_found += fast is not None
    assert 10 < n_found < 60  # both outcomes exercised


def test_give_back_rim_equals_the_whole_volume_computation():
    rng = np.random.default_rng(15)
    for trial in range(20):
        shape = (int(rng.integers(1, 6)), int(rng.integers(6, 30)), int(rng.integers(6, 30)))
        canal = np.zeros(shape, bool)
        k = int(rng.integers(0, shape[0]))
        j0, i0 = int(rng.integers(0, shape[1] - 3)), int(rng.integers(0, shape[2] - 3))
        canal[k, j0:j0 + 3, i0:i0 + 4] = True
        canal |= (rng.random(shape) < 0.01)
        bo = rng.random(shape) < 0.3
        body = rng.random(shape) < 0.95
        a = rng.normal(150.0, 300.0, shape).astype(np.float32)
        np.testing.assert_array_equal(canal_mod._give_back_rim(canal, bo, body, a),
                                      canal_mod._give_back_rim_reference(canal, bo, body, a))


def test_center_of_mass_equals_scipy_bit_for_bit():
    rng = np.random.default_rng(16)
    for trial in range(40):
        shape = tuple(int(x) for x in rng.integers(1, 40, 2 + trial % 2))
        m = _random_mask(rng, shape, p=rng.uniform(0.001, 0.9), grow=0)
        if not m.any():
            m.flat[int(rng.integers(0, m.size))] = True
        fast, ref = _local.center_of_mass(m), ndi.center_of_mass(m)
        assert len(fast) == len(ref) and all(a == b for a, b in zip(fast, ref))


def _whole_array_bbox(mask, margin=0):
    """_local.bbox replaced by the whole array: every local computation becomes the whole-array one."""
    return tuple(slice(0, n) for n in np.shape(mask)) if np.any(mask) else None


def _ring_volume(rng, spacing=(2.0, 1.0, 1.0)):
    """Synthetic vertebral rings (bone 700 HU) around a CSF channel, with a dens-like island at the top."""
    K, J, I = 24, 48, 44
    a = rng.normal(40.0, 15.0, (K, J, I)).astype(np.float32)
    jj, ii = np.mgrid[0:J, 0:I]
    bone = np.zeros((K, J, I), bool)
    for k in range(K):
        cj, ci = 22 + (k // 6), 22 + int(rng.integers(-1, 2))
        r = np.hypot(jj - cj, ii - ci) * spacing[1]  # mm
        ring = (r >= 7.5) & (r <= 11.0)
        if k % 7 == 3:
            ring &= ~((jj > cj) & (np.abs(ii - ci) < 2))  # an open ring (gap behind)
        if k >= K - 4:
            ring |= r <= 3.0  # the dens inside the C1 ring
        bone[k] = ring
    a[bone] = 700.0
    body = np.ones((K, J, I), bool)
    body[:, :2] = body[:, -2:] = False
    return a, bone, body, np.array(spacing)


def test_canal_candidates_on_boxes_equal_the_whole_slices(monkeypatch):
    rng = np.random.default_rng(17)
    for sp in ((2.0, 1.0, 1.0), (2.5, 0.8, 0.8), (3.0, 1.5, 1.5)):
        a, bone, body, spacing = _ring_volume(rng, sp)
        fast = canal_mod._canal_candidates(bone, a, body, spacing, (30.0, 1100.0))
        with monkeypatch.context() as mp:
            mp.setattr(_local, "bbox", _whole_array_bbox)
            ref = canal_mod._canal_candidates(bone, a, body, spacing, (30.0, 1100.0))
        assert fast[0].any() and fast[1].any()
        for f, r in zip(fast, ref):
            np.testing.assert_array_equal(f, r)


@pytest.mark.slow
def test_phantom_canal_airway_foramina_identical_with_the_whole_array_references(monkeypatch):
    """build_anatomy on the neck phantom: every mask, message and landmark identical when every local /
    vectorised computation of the canal, airway and bony canal is replaced by its whole-array reference."""
    from osteoplan.anatomy.phantom import PhantomParams, make_phantom
    from osteoplan.anatomy.pipeline import build_anatomy

    vol = make_phantom(PhantomParams(spacing_mm=1.0)).volume
    fast = build_anatomy(vol)
    monkeypatch.setattr(_local, "bbox", _whole_array_bbox)
    monkeypatch.setattr(_local, "center_of_mass", ndi.center_of_mass)
    monkeypatch.setattr(_local, "fill_holes_2d", ndi.binary_fill_holes)
    monkeypatch.setattr(canal_mod, "_enclosed", canal_mod._enclosed_reference)
    monkeypatch.setattr(canal_mod, "_recentre_search", canal_mod._recentre_search_reference)
    monkeypatch.setattr(canal_mod, "_give_back_rim", canal_mod._give_back_rim_reference)
    ref = build_anatomy(vol)
    assert fast.labelmap.names() == ref.labelmap.names() and "spinal_canal" in ref.labelmap.names()
    for n in ref.labelmap.names():
        np.testing.assert_array_equal(fast.labelmap.get(n), ref.labelmap.get(n), err_msg=n)
    assert fast.messages == ref.messages
    assert fast.landmarks.to_dict() == ref.landmarks.to_dict()


def test_foramina_per_hole_mean_centres_and_ring_equal_the_whole_array_computations():
    from osteoplan.anatomy import foramina as fo

    rng = np.random.default_rng(18)
    for _ in range(10):
        shape = (int(rng.integers(1, 6)), int(rng.integers(5, 40)), int(rng.integers(5, 40)))
        m = _random_mask(rng, shape, p=0.1, grow=0)
        st = np.zeros((3, 3, 3), bool)
        st[1] = ndi.generate_binary_structure(2, 1)
        lab, n = ndi.label(m, structure=st)
        a = rng.normal(30.0, 500.0, shape).astype(np.float32)
        if n:
            ref = ndi.mean(a, lab, np.arange(1, n + 1))
            fast = [fo._sequential_mean(a[lab == t]) for t in range(1, n + 1)]
            assert all(x == y for x, y in zip(fast, ref))
        canal = _random_mask(rng, shape, p=0.05, grow=1)
        canal[0] = False
        got = fo._canal_centres(canal)
        ks = np.nonzero(canal.any(axis=(1, 2)))[0]
        if ks.size:
            cj = np.array([np.argwhere(canal[k])[:, 0].mean() for k in ks])
            ci = np.array([np.argwhere(canal[k])[:, 1].mean() for k in ks])
            allk = np.arange(shape[0])
            ref_c = {int(k): (float(x), float(y)) for k, x, y in zip(allk, np.interp(allk, ks, cj), np.interp(allk, ks, ci))}
            assert got == ref_c
        else:
            assert got == {}
        # the 2-voxel ring of a hole: on its box as on the whole slice
        if n:
            holes = [fo._Hole(int(np.argwhere(lab == t)[0, 0]), t, 1.0, np.zeros(2), 0.0) for t in range(1, n + 1)]
            vm = rng.random(shape) < 0.5
            tot = hit = 0
            for h in holes:
                mm = lab[h.k] == h.label
                ring = ndi.binary_dilation(mm, iterations=2) & ~mm
                tot, hit = tot + int(ring.sum()), hit + int((ring & vm[h.k]).sum())
            assert fo._ring_overlap(holes, lab, vm) == hit / max(tot, 1)


def test_midline_air_on_the_air_box_equals_slice_by_slice_with_margins():
    """Air confined to a corner of a larger volume (the box differs from the array): same regions kept."""
    from osteoplan.anatomy.airway import _midline_air, _midline_air_reference

    rng = np.random.default_rng(19)
    for _ in range(12):
        shape = (int(rng.integers(4, 12)), int(rng.integers(20, 60)), int(rng.integers(20, 60)))
        air = np.zeros(shape, bool)
        k0, j0, i0 = (int(rng.integers(0, s // 2)) for s in shape)
        sub = ndi.binary_dilation(rng.random((shape[0] - k0, shape[1] // 2, shape[2] // 2)) < 0.03,
                                  iterations=int(rng.integers(0, 3)))
        air[k0:, j0:j0 + sub.shape[1], i0:i0 + sub.shape[2]] = sub
        b = np.zeros(shape, bool)
        b[:, 1:-1, int(rng.integers(0, 6)):shape[2] - int(rng.integers(0, 6))] = True
        sp = np.array([2.0, *rng.uniform(0.5, 2.0, 2)])
        mm = float(rng.uniform(3.0, 30.0))
        np.testing.assert_array_equal(_midline_air(air, b, sp, mm), _midline_air_reference(air, b, sp, mm))


def test_fill_holes_2d_equals_scipy_binary_fill_holes():
    rng = np.random.default_rng(20)
    for trial in range(60):
        shape = tuple(int(x) for x in rng.integers(1, 30, 2))
        m = rng.random(shape) < rng.uniform(0.1, 0.9)
        if trial == 0:
            m[:] = True
        if trial == 1:
            m[:] = False
        np.testing.assert_array_equal(_local.fill_holes_2d(m), ndi.binary_fill_holes(m))
    ring = np.zeros((7, 7), bool)
    ring[1:6, 1:6] = True
    ring[2:5, 2:5] = False
    ring[3, 3] = True
    assert _local.fill_holes_2d(ring)[1:6, 1:6].all() and _local.fill_holes_2d(ring).sum() == 25


def test_disk_as_union_of_rectangles():
    for r in np.arange(1.0, 6.0, 0.07):
        d = canal_mod._disk(float(r))
        rects = canal_mod._disk_rectangles(d)
        assert rects is not None
        u = np.zeros_like(d)
        c = d.shape[0] // 2
        for hj, hi in rects:
            u[c - hj:c + hj + 1, c - hi:c + hi + 1] = True
        np.testing.assert_array_equal(u, d)
    ring = np.ones((5, 5), bool)
    ring[2, 2] = False
    assert canal_mod._disk_rectangles(ring) is None


def test_label_areas_means_equal_scipy_sum_labels_and_mean():
    rng = np.random.default_rng(21)
    for _ in range(20):
        shape = tuple(int(x) for x in rng.integers(2, 40, 2))
        m = rng.random(shape) < rng.uniform(0.05, 0.6)
        lab, n = ndi.label(m)
        a = rng.normal(20.0, 300.0, shape).astype(np.float32)
        idx = np.arange(1, n + 1)
        areas, means = canal_mod._label_areas_means(lab, n, a, 0.49)
        np.testing.assert_array_equal(areas, ndi.sum_labels(m, lab, idx) * 0.49)
        np.testing.assert_array_equal(means, ndi.mean(a, lab, idx))
