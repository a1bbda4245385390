"""Body and bone steps: the faster morphology and label bookkeeping give the voxels of the straightforward scipy calls.

Every helper is compared with the scipy / numpy call it replaces on random volumes (shapes down to one voxel along
an axis, structuring elements larger than the array), and :func:`segment_bone` / :func:`segment_body` on synthetic
CTs (with and without contrast-filled tubes) are compared with themselves run with the scipy calls patched back in.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from osteoplan.anatomy import segment as S
from osteoplan.imaging.volume import Volume


def _ball(sp: np.ndarray, rad_mm: float) -> np.ndarray:
    """The ellipsoidal ball segment_bone dilates the cortex with (radius in mm, spacing per axis)."""
    r = np.maximum(np.round(rad_mm / sp).astype(int), 1)
    zz, yy, xx = np.meshgrid(*[np.arange(-x, x + 1) * s for x, s in zip(r, sp)], indexing="ij")
    return (zz ** 2 + yy ** 2 + xx ** 2) <= rad_mm ** 2 + 1e-6


def test_box_filters_equal_scipy_also_beyond_the_array_and_on_uint8():
    rng = np.random.default_rng(11)
    for _ in range(60):
        shape = tuple(int(x) for x in rng.integers(1, 9, 3))
        m = rng.random(shape) < rng.uniform(0.05, 0.95)
        size = tuple(int(x) for x in rng.choice([1, 3, 5, 9, 13], 3))  # often wider than the axis
        st = np.ones(size, bool)
        for arr in (m, m.astype(np.uint8) * 3):
            np.testing.assert_array_equal(S._box_dilate(arr, size), ndi.binary_dilation(m, structure=st))
            np.testing.assert_array_equal(S._box_erode(arr, size), ndi.binary_erosion(m, structure=st))
    m = rng.random((4, 5, 6)) < 0.5
    out = S._box_dilate(m, (1, 1, 1))
    assert out is not m and np.array_equal(out, m)  # a new array, never the input


def test_row_morphology_equals_scipy_for_disks_and_balls():
    rng = np.random.default_rng(12)
    for _ in range(120):
        shape = tuple(int(x) for x in rng.integers(1, 13, 3))
        m = rng.random(shape) < rng.uniform(0.02, 0.95)
        disk = S._disk(float(rng.choice([0.5, 1.0, 1.5, 2.14, 3.0, 4.3])))
        np.testing.assert_array_equal(S._plane_closing(m, disk), ndi.binary_closing(m, structure=disk[None]))
        ball = _ball(rng.choice([0.5, 0.7, 0.8, 1.0, 2.0, 3.0], 3), float(rng.choice([1.0, 2.5, 3.3])))
        for dilate, ref in ((True, ndi.binary_dilation), (False, ndi.binary_erosion)):
            np.testing.assert_array_equal(S._plane_morph(m, disk, dilate), ref(m, structure=disk[None]))
            np.testing.assert_array_equal(S._morph_rows(m, ball, dilate), ref(m, structure=ball))
        cross = ndi.generate_binary_structure(3, 1)
        np.testing.assert_array_equal(S._cross_dilate(m), ndi.binary_dilation(m, structure=cross))
    # a footprint whose rows are not centred runs is not decomposed (scipy does it): still the same voxels
    odd = np.zeros((3, 3, 3), bool)
    odd[1, 1, 1] = odd[0, 0, 2] = odd[2, 2, 0] = True
    assert S._footprint_rows(odd) is None
    m = rng.random((6, 7, 8)) < 0.3
    np.testing.assert_array_equal(S._morph_rows(m, odd, True), ndi.binary_dilation(m, structure=odd))
    # hand-checked: one voxel dilated by the disk of radius 1.5 (the 3 x 3 square: 2^2 > 1.5^2) and by the one
    # of radius 2 (13 voxels, |dj| + |di| <= 2 plus the four diagonal neighbours minus none: 9 + 4)
    one = np.zeros((1, 7, 7), bool)
    one[0, 3, 3] = True
    assert S._plane_morph(one, S._disk(1.5), True).sum() == 9
    assert S._plane_morph(one, S._disk(2.0), True).sum() == 13
    assert not S._plane_morph(S._plane_morph(one, S._disk(2.0), True), S._disk(2.0), False)[0, :, 0].any()


def test_label_sizes_and_lookup_equal_bincount_and_indexing_across_chunks(monkeypatch):
    monkeypatch.setattr(S, "_CHUNK", 97)  # many chunks, a short last one
    rng = np.random.default_rng(13)
    m = rng.random((9, 31, 17)) < 0.4
    lab, n = ndi.label(m)
    np.testing.assert_array_equal(S._label_sizes(lab, n), np.bincount(lab.ravel(), minlength=n + 1))
    table = rng.random(n + 1) < 0.5
    np.testing.assert_array_equal(S._lookup(table, lab), table[lab])
    # labels above n (a caller's n too small) still give bincount's longer answer
    np.testing.assert_array_equal(S._label_sizes(lab, 2), np.bincount(lab.ravel(), minlength=3))
    empty = np.zeros((3, 4, 5), np.int32)
    np.testing.assert_array_equal(S._label_sizes(empty, 0), [60])


def test_label_sizes_sparse_and_dense_chunks_equal_bincount(monkeypatch):
    """Chunks less than 1/8 labelled are counted from their non-zero voxels: brute force against ``np.bincount``
    on masks from empty to full, chunks of both kinds in one array, labels above n, other integer dtypes."""
    monkeypatch.setattr(S, "_CHUNK", 256)
    rng = np.random.default_rng(5)
    checked = 0
    for frac in (0.0, 0.002, 0.03, 0.1, 0.124, 0.126, 0.2, 0.6, 1.0):
        for shape in ((4, 16, 16), (3, 7, 29), (1, 1, 1000)):
            m = rng.random(shape) < frac
            if frac == 0.03:
                m[: shape[0] // 2 + 1] |= rng.random(m[: shape[0] // 2 + 1].shape) < 0.5  # dense then sparse chunks
            lab, n = ndi.label(m)
            want = np.bincount(lab.ravel(), minlength=n + 1)
            for dt in (np.int32, np.int64, np.uint16):
                np.testing.assert_array_equal(S._label_sizes(lab.astype(dt), n), want)
                np.testing.assert_array_equal(S._label_sizes(lab.astype(dt), max(n // 2, 0)), want)
                checked += 1
    assert checked == 81
    # a known count: one sparse chunk (10 labelled voxels of 256) and one all-zero chunk
    lab = np.zeros(512, np.int32)
    lab[[3, 4, 5, 100, 101, 200, 201, 202, 203, 255]] = [1, 1, 1, 2, 2, 3, 3, 3, 3, 7]
    np.testing.assert_array_equal(S._label_sizes(lab.reshape(2, 16, 16), 3), [502, 3, 2, 4, 0, 0, 0, 1])


# ------------------------------------------------------------------ whole steps against the scipy versions
def _scipy_versions(monkeypatch) -> None:
    """Patch the straightforward scipy / numpy computations back in for every fast helper."""
    monkeypatch.setattr(S, "_box_dilate", lambda m, size: ndi.binary_dilation(m, structure=np.ones(size, bool)))
    monkeypatch.setattr(S, "_box_erode", lambda m, size: ndi.binary_erosion(m, structure=np.ones(size, bool)))
    monkeypatch.setattr(S, "_plane_closing", lambda m, fp: ndi.binary_closing(m, structure=np.asarray(fp)[None]))
    monkeypatch.setattr(S, "_morph_rows", lambda m, fp, dilate: (ndi.binary_dilation if dilate else ndi.binary_erosion)(
        m, structure=fp))
    monkeypatch.setattr(S, "_cross_dilate", lambda m: ndi.binary_dilation(m, structure=ndi.generate_binary_structure(3, 1)))
    monkeypatch.setattr(S, "_label_sizes", lambda lab, n: np.bincount(lab.ravel(), minlength=n + 1))
    monkeypatch.setattr(S, "_lookup", lambda table, lab: table[lab])
    monkeypatch.setattr(S, "_bright_tubes", _bright_tubes_reference)


def _bright_tubes_reference(volume, body, bone, enclosing=None):
    """The whole-array computation :func:`S._bright_tubes` replaced (rings by grey_dilation on every voxel)."""
    cn = S.Canon.of(volume)
    a = cn.to_canon(volume.array)
    sp = cn.spacing_mm
    sm = S._smooth(a, sp, 1.0)
    lo, hi = S.CONTRAST_VESSEL_HU
    near_bone = ndi.binary_dilation(cn.to_canon(bone), structure=np.ones((1, 5, 5), bool))
    inner = ndi.binary_erosion(cn.to_canon(body), structure=np.ones((1, 7, 7), bool))
    cand = (sm > lo) & (sm < hi) & inner & ~near_bone
    enc = cn.to_canon(enclosing) if enclosing is not None else None
    px_area = float(sp[1] * sp[2])
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndi.generate_binary_structure(2, 2)
    lab, n = ndi.label(cand, structure=st)
    areas = np.bincount(lab.ravel(), minlength=n + 1) * px_area
    ok = np.zeros(n + 1, bool)
    objs = ndi.find_objects(lab)
    for t in np.nonzero((areas >= 8.0) & (areas <= 200.0))[0]:
        if t == 0 or objs[t - 1] is None:
            continue
        sl = objs[t - 1]
        h = (sl[1].stop - sl[1].start) * sp[1]
        w = (sl[2].stop - sl[2].start) * sp[2]
        ok[t] = max(h, w) <= 3.0 * max(min(h, w), 1e-3) and max(h, w) <= 20.0
    if enc is not None and ok.any():
        lab_ok = np.where(ok[lab], lab, 0)
        ring_lab = np.where(lab_ok == 0, ndi.grey_dilation(lab_ok, footprint=st), 0)
        idx = np.nonzero(ok)[0]
        cnt = np.bincount(ring_lab.ravel(), minlength=n + 1)[idx].astype(float)
        inb = np.bincount(ring_lab[enc], minlength=n + 1)[idx].astype(float)
        ok[idx] = (cnt > 0) & (inb < 0.5 * np.maximum(cnt, 1))
    keep = ok[lab]
    lab, n = ndi.label(keep)
    tubes = np.zeros_like(keep)
    info = []
    for l, sl in enumerate(ndi.find_objects(lab), start=1):
        length = (sl[0].stop - sl[0].start) * sp[0]
        if length >= 35.0:
            m = lab[sl] == l
            tubes[sl] |= m
            com = ndi.center_of_mass(m)
            info.append({"label": l, "length_mm": length,
                         "centre": (com[0] + sl[0].start, com[1] + sl[1].start, com[2] + sl[2].start)})
    return tubes, info


def _neck_like_ct(contrast_hu: float, seed: int) -> Volume:
    """A small synthetic neck: soft-tissue cylinder, a vertebra-like cortical ring with cancellous core and a
    spinal-canal hole, a jaw-like arc, two bright tubes (vessels, contrast_hu) on either side, noise and air."""
    rng = np.random.default_rng(seed)
    K, J, I = 40, 64, 72
    k, j, i = np.mgrid[0:K, 0:J, 0:I].astype(float)
    hu = np.full((K, J, I), -1000.0)
    hu[((j - 32) / 27) ** 2 + ((i - 36) / 31) ** 2 <= 1] = 40.0
    rr = np.hypot(j - 40, i - 36)
    hu[rr <= 9] = 250.0  # cancellous
    hu[(rr > 7) & (rr <= 9)] = 1100.0  # cortex
    hu[np.hypot(j - 40, i - 36) <= 3.5] = 20.0  # canal
    hu[(np.hypot(j - 34, i - 36) <= 24) & (np.hypot(j - 34, i - 36) >= 21) & (j < 30) & (k > 25)] = 1000.0  # jaw arc
    for ci in (18.0, 54.0):
        hu[np.hypot(j - 30, i - ci) <= 2.6] = contrast_hu
    hu[5:8, 38:43, 33:40] = 700.0  # a dense island
    hu += rng.normal(0, 15, hu.shape)
    # axis 0 -> inferior (1.5 mm slices), 1 -> posterior, 2 -> patient left (0.9 mm)
    aff = np.array([[0, 0, 0.9, 0], [0, 0.9, 0, 0], [-1.5, 0, 0, 0], [0, 0, 0, 1.0]])
    return Volume(hu.astype(np.float32), aff)


@pytest.mark.parametrize("contrast_hu", [40.0, 320.0])
def test_segment_body_and_bone_identical_to_the_scipy_versions(monkeypatch, contrast_hu):
    vol = _neck_like_ct(contrast_hu, seed=int(contrast_hu))
    S._SMOOTH_CACHE.clear()
    body = S.segment_body(vol)
    fast = S.segment_bone(vol, body)
    fast_forced = S.segment_bone(vol, body, contrast=True)  # the contrast branch (cortex ball) in any case
    _scipy_versions(monkeypatch)
    S._SMOOTH_CACHE.clear()
    body_ref = S.segment_body(vol)
    ref = S.segment_bone(vol, body_ref)
    ref_forced = S.segment_bone(vol, body_ref, contrast=True)
    np.testing.assert_array_equal(body, body_ref)
    assert body.sum() > 50_000
    for a, b in ((fast, ref), (fast_forced, ref_forced)):
        for name in ("bone", "cortical", "lenient"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert a.bone.sum() > 1000
        assert (a.cancellous_threshold_hu, a.cortical_threshold_hu, a.contrast_detected) == \
               (b.cancellous_threshold_hu, b.cortical_threshold_hu, b.contrast_detected)
        assert a.contrast_tubes == b.contrast_tubes
    if contrast_hu > 150:
        assert fast.contrast_detected and len(fast.contrast_tubes) == 2  # the two vessels, one per side


def test_bright_tubes_on_its_box_equals_the_whole_array():
    vol = _neck_like_ct(320.0, seed=5)
    S._SMOOTH_CACHE.clear()
    body = S.segment_body(vol)
    bone = S.segment_bone(vol, body, contrast=True)
    for enclosing in (None, bone.lenient):
        t_fast, i_fast = S._bright_tubes(vol, body, bone.bone, enclosing)
        t_ref, i_ref = _bright_tubes_reference(vol, body, bone.bone, enclosing)
        cn = S.Canon.of(vol)
        np.testing.assert_array_equal(t_fast, t_ref)
        assert i_fast == i_ref and len(i_fast) == 2 and cn.to_canon(bone.bone).any()
    # nothing bright: no tubes, an empty list
    quiet = Volume(np.where(vol.array > 150, 40.0, vol.array).astype(np.float32), vol.affine, vol.info)
    t, info = S._bright_tubes(quiet, body, np.zeros_like(body), None)
    assert not t.any() and info == []


def test_u_slices_one_labelling_equals_the_slice_by_slice_loop():
    from osteoplan.anatomy.mandible import _u_slices, _u_slices_reference

    rng = np.random.default_rng(14)
    K, J, I = 12, 100, 90
    j, i = np.mgrid[0:J, 0:I]
    sp = np.array([2.0, 1.0, 1.0])
    r = np.hypot(j - 60, i - 45)
    arc = (r >= 30) & (r <= 34) & (j < 60)  # a U open posteriorly, 68 mm wide, its front at row 26
    ring = (np.hypot(j - 75, i - 45) <= 8) & (np.hypot(j - 75, i - 45) >= 5)  # closed ring: never a U
    for trial in range(8):
        bone = rng.random((K, J, I)) < 0.01
        bone[2:7] |= arc
        bone[4:9] |= ring
        body = np.zeros((K, J, I), bool)
        body[:, 50:, :] = True  # centre row 74.5: the arc's front 48.5 mm in front of it
        body[trial % K] = False  # a slice without body (and no canal centre there) is skipped
        centre = {k: (90.0 + trial, 45.0) for k in range(0, K, 2)} if trial % 2 else None
        fast = _u_slices(bone, centre, sp, body)
        ref = _u_slices_reference(bone, centre, sp, body)
        assert [k for k, _ in fast] == [k for k, _ in ref]
        for (_, a), (_, b) in zip(fast, ref):
            np.testing.assert_array_equal(a, b)
        assert len({k for k, _ in fast} & set(range(2, 7))) >= 3 and {k for k, _ in fast} <= set(range(2, 7))


def test_body_box_from_projections_equals_the_voxel_list():
    from osteoplan.anatomy.pipeline import _body_box

    rng = np.random.default_rng(15)
    for _ in range(100):
        shape = tuple(int(x) for x in rng.integers(1, 15, 3))
        m = rng.random(shape) < rng.uniform(0.005, 0.3)
        if not m.any():
            assert _body_box(m, shape) == tuple(slice(0, n) for n in shape)
            continue
        idx = np.argwhere(m)
        lo = np.maximum(idx.min(axis=0) - 3, 0)
        hi = np.minimum(idx.max(axis=0) + 4, shape)
        assert _body_box(m, shape) == tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    one = np.zeros((20, 20, 20), bool)
    one[10, 2, 17] = True
    assert _body_box(one, one.shape) == (slice(7, 14), slice(0, 6), slice(14, 20))


def test_mandible_erosion_disks_are_decomposed_exactly():
    """The in-plane erosions segment_mandible tries (integer radii 1-8 voxels) equal scipy's binary_erosion."""
    rng = np.random.default_rng(16)
    m = ndi.binary_dilation(rng.random((4, 40, 45)) < 0.05, iterations=3)
    for r in range(1, 9):
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        disk = (yy * yy + xx * xx) <= r * r
        assert S._footprint_rows(disk[None]) is not None
        np.testing.assert_array_equal(S._plane_morph(m, disk, False), ndi.binary_erosion(m, structure=disk[None]))


def test_max3_in_plane_equals_scipy_maximum_filter():
    rng = np.random.default_rng(17)
    for _ in range(40):
        shape = tuple(int(x) for x in rng.integers(1, 9, 3))
        x = rng.integers(0, 50, shape).astype(np.int32) * (rng.random(shape) < 0.3)
        out = S._max3_in_plane(x)
        assert out.dtype == x.dtype
        np.testing.assert_array_equal(out, ndi.maximum_filter(x, size=(1, 3, 3)))


def test_smooth_of_strided_views_equals_gaussian_filter_of_the_view():
    """``_smooth`` filters a contiguous copy of a strided view: the same values, dtype and C order as
    ``gaussian_filter`` of the view itself (brute force on flipped, transposed, cropped and stepped views)."""
    rng = np.random.default_rng(21)
    checked = 0
    for dtype in (np.int16, np.float32, np.float64):
        base = rng.normal(0, 500, (14, 19, 23)).astype(dtype)
        views = [base, base[::-1], base[:, ::-1, ::-1], base.transpose(2, 0, 1)[::-1], base[2:11, 3:17, 1:20],
                 base[1:13:2, ::-1, 2:21], np.asfortranarray(base), base[::-1][3:9, :, ::3]]
        for view in views:
            for spacing in ((2.0, 1.0, 1.0), (0.6, 0.6, 0.6), (5.0, 0.8, 0.9), (1.0, 3.0, 0.5)):
                for sigma_mm in (0.5, 0.7, 1.0):
                    S._SMOOTH_CACHE.clear()
                    got = S._smooth(view, np.array(spacing), sigma_mm)
                    sig = np.minimum(sigma_mm / np.asarray(spacing), 1.0)
                    sig = np.where(sig < 0.25, 0.0, sig)
                    want = ndi.gaussian_filter(view, sig, mode="nearest")
                    assert got.dtype == want.dtype == dtype and got.flags.c_contiguous == want.flags.c_contiguous
                    np.testing.assert_array_equal(got, want)
                    checked += 1
    S._SMOOTH_CACHE.clear()
    assert checked == 3 * 8 * 4 * 3
    # a known value: a single 1000 HU voxel in float64, sigma 1 voxel along i only (0.1 mm sigma on 1 mm
    # slices and rows is below 0.25 voxel: not filtered there): the centre keeps the 1D kernel's centre weight
    x = np.zeros((3, 3, 9))
    x[1, 1, 4] = 1000.0
    out = S._smooth(x[:, :, ::-1], np.array([5.0, 5.0, 1.0]), 1.0)
    w = np.exp(-0.5 * np.arange(-4, 5) ** 2)
    np.testing.assert_allclose(out[1, 1, 4], 1000.0 / w.sum(), rtol=1e-12)
    assert out[0].sum() == 0.0 and out[1, 0].sum() == 0.0
    S._SMOOTH_CACHE.clear()
