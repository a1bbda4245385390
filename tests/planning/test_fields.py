"""Distance fields computed on a box equal the brute-force distances and the whole-grid fields; the search's
structure maps, computed only where its paths read them, give the same kernel results and search as whole-ROI maps."""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.planning import search as S
from osteoplan.planning.fields import capped_distance_mm, signed_distance_mm
from osteoplan.planning.procedures.c2_dens import site_from_landmarks
from osteoplan.planning.protocol import load_protocol

from .synthetic import make_neck

SPACING = np.array([2.0, 1.0, 0.8])
CAP = 5.0


def _brute_capped(mask, sp, cap):
    """min(cap, distance from every voxel centre to the nearest True voxel centre), by enumerating every pair."""
    idx = np.argwhere(np.ones(mask.shape, bool)).astype(float) * sp
    m = np.argwhere(mask).astype(float) * sp
    if len(m) == 0:
        return np.full(mask.shape, cap)
    d = np.sqrt(((idx[:, None, :] - m[None, :, :]) ** 2).sum(-1)).min(1)
    return np.minimum(d, cap).reshape(mask.shape)


def _brute_signed(mask, sp, cap):
    """Outside: the capped distance to the mask; inside: minus the capped distance to the nearest voxel centre that
    is not in the mask, the grid's outside counting as not in the mask (the nearest outside voxel beyond a face is
    the one next to it)."""
    out = _brute_capped(mask, sp, cap)
    idx = np.argwhere(np.ones(mask.shape, bool))
    bg = np.argwhere(~mask).astype(float) * sp
    pts = idx.astype(float) * sp
    d_bg = (np.sqrt(((pts[:, None, :] - bg[None, :, :]) ** 2).sum(-1)).min(1) if len(bg)
            else np.full(len(pts), np.inf))
    n = np.asarray(mask.shape)
    d_face = np.min(np.concatenate([(idx + 1) * sp, (n - idx) * sp], axis=1), axis=1)
    inside = np.minimum(np.minimum(d_bg, d_face), cap).reshape(mask.shape)
    return np.where(mask, -inside, out)


def _masks():
    rng = np.random.default_rng(7)
    shape = (9, 17, 19)
    blobs = rng.random(shape) > 0.97  # scattered voxels
    k, j, i = np.indices(shape)
    ball = (k - 4) ** 2 * 4 + (j - 3) ** 2 + (i - 15) ** 2 <= 10  # a blob cut by no face
    edge = (k <= 2) & (j >= 5) & (j <= 9) & (i >= 12)  # a block touching three faces of the grid
    return {"blobs": blobs, "ball": ball, "edge": edge, "edge+blobs": edge | blobs, "empty": np.zeros(shape, bool)}


BOXES = [None, (slice(0, 9), slice(0, 17), slice(0, 19)), (slice(2, 5), slice(6, 12), slice(3, 9)),
         (slice(0, 1), slice(16, 17), slice(18, 19)), (slice(4, 9), slice(0, 4), slice(10, 19))]


@pytest.mark.parametrize("name", list(_masks()))
@pytest.mark.parametrize("box", BOXES)
def test_capped_distance_on_a_box_equals_brute_force_and_the_whole_grid(name, box):
    mask = _masks()[name]
    whole = capped_distance_mm(mask, SPACING, CAP)
    np.testing.assert_allclose(whole, _brute_capped(mask, SPACING, CAP), atol=1e-5)
    part = capped_distance_mm(mask, SPACING, CAP, within=box)
    sl = box if box is not None else (slice(None),) * 3
    assert part.shape == whole[sl].shape and part.dtype == np.float32
    np.testing.assert_array_equal(part, whole[sl])  # the same numbers, not only close ones


@pytest.mark.parametrize("name", list(_masks()))
@pytest.mark.parametrize("box", BOXES)
def test_signed_distance_on_a_box_equals_brute_force_and_the_whole_grid(name, box):
    mask = _masks()[name]
    whole = signed_distance_mm(mask, SPACING, CAP)
    np.testing.assert_allclose(whole, _brute_signed(mask, SPACING, CAP), atol=1e-5)
    part = signed_distance_mm(mask, SPACING, CAP, within=box)
    sl = box if box is not None else (slice(None),) * 3
    np.testing.assert_array_equal(part, whole[sl])


def test_a_far_structure_reads_the_cap_and_a_near_one_its_distance():
    """Hand-computed: one voxel at (0, 0, 0), 1 mm grid, cap 5: in the box i = 3..9 of row (0, 0) the distances are
    3, 4, 5, 5, ... (capped); a box 6 voxels away on every axis holds only the cap."""
    mask = np.zeros((8, 8, 10), bool)
    mask[0, 0, 0] = True
    sp = np.ones(3)
    row = capped_distance_mm(mask, sp, 5.0, within=(slice(0, 1), slice(0, 1), slice(3, 10)))
    np.testing.assert_array_equal(row[0, 0], [3, 4, 5, 5, 5, 5, 5])
    far = capped_distance_mm(mask, sp, 5.0, within=(slice(6, 8), slice(6, 8), slice(6, 10)))
    assert (far == 5.0).all()


@pytest.fixture(scope="module")
def neck_fields():
    vol, lm, dl = make_neck()
    proto = load_protocol("c2-dens-lateral")
    site = site_from_landmarks(dl, proto)
    full, _, _ = S.build_fields(vol, lm, site, proto)
    return vol, lm, site, proto, full


def test_maps_on_growing_boxes_equal_the_whole_roi_maps(neck_fields):
    """ensure_maps on a box, then on a box partly outside it: the maps on the union equal the whole-ROI maps."""
    vol, lm, site, proto, full = neck_fields
    lazy, _, _ = S.build_fields(vol, lm, site, proto, defer_maps=True)
    assert lazy.maps is None and all(st.map_mm is None for st in lazy.structures)
    a = (slice(100, 120), slice(40, 70), slice(20, 60))
    b = (slice(90, 110), slice(60, 90), slice(50, 100))
    lazy.ensure_maps(a)
    assert lazy.maps_box == a and lazy.maps.shape == (20, 30, 40, len(full.structures))
    np.testing.assert_array_equal(lazy.maps, full.maps[a])
    lazy.ensure_maps(b)
    union = tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))
    assert lazy.maps_box == union
    np.testing.assert_array_equal(lazy.maps_lo, [90, 40, 20])
    np.testing.assert_array_equal(lazy.maps, full.maps[union])
    for st_lazy, st_full in zip(lazy.structures, full.structures):
        np.testing.assert_array_equal(st_lazy.map_mm, st_full.map_mm[union])
    assert full.maps_box == tuple(slice(0, n) for n in full.shape)  # build_fields' default: the whole ROI


def test_measured_reach_box_holds_every_cell_corner_a_path_reads():
    """Brute force: for random targets, directions and skin depths, every corner of the cell of every sample
    ``t - q h d`` (q h <= s_skin), clamped to the ROI as the kernel does, lies inside the box."""
    rng = np.random.default_rng(3)
    shape = (30, 40, 50)
    for _ in range(20):
        n = rng.integers(1, 6)
        t = rng.uniform([5, 5, 5], [25, 35, 45], size=(n, 3))
        d = rng.normal(size=(n, 3))
        d /= np.linalg.norm(d, axis=1)[:, None]
        s_skin = rng.uniform(0, 60, size=n)
        box = S.measured_reach_box(shape, t, d, s_skin)
        h = 0.7
        for a in range(n):
            q = np.arange(0, int(s_skin[a] / h) + 1)
            p = t[a] - (q * h)[:, None] * d[a]
            p = np.clip(p, 0, np.asarray(shape) - 1.0)
            lo = np.minimum(p.astype(int), np.asarray(shape) - 2)
            for ax in range(3):
                assert box[ax].start <= lo[:, ax].min() and lo[:, ax].max() + 1 < box[ax].stop


@pytest.mark.parametrize("protocol", ["c2-dens-lateral", "c2-dens-anterior"])
def test_search_on_deferred_maps_equals_search_on_whole_roi_maps(protocol):
    """The search computing the structure maps only where its paths read them (two kernel passes) and the search on
    maps computed on the whole ROI: every figure of the dense pass and of the refinement equal, same choice."""
    vol, lm, dl = make_neck()
    proto = load_protocol(protocol)
    site = site_from_landmarks(dl, proto)
    full, _, _ = S.build_fields(vol, lm, site, proto)
    lazy, _, _ = S.build_fields(vol, lm, site, proto, defer_maps=True)
    dirs, sign = S.directions(proto, ["left", "right"], site=site)
    diam = S.candidate_diameters(proto, site.width_limit_mm)[-1]
    a = S._search_one(full, site, proto, dirs, sign, diam, 1.0, 0.2, 50)
    b = S._search_one(lazy, site, proto, dirs, sign, diam, 1.0, 0.2, 50)
    roi = np.prod(lazy.shape)
    assert np.prod([s.stop - s.start for s in lazy.maps_box]) < roi  # computed on less than the ROI
    for ea, eb in ((a.coarse, b.coarse), (a.fine, b.fine)):
        for name in ("cand_t", "cand_d", "code", "s_bone", "s_skin", "containment", "other_bone", "lesion", "clear",
                     "incidence_deg", "tip_gap", "lesion_thread", "gated"):
            np.testing.assert_array_equal(getattr(ea, name), getattr(eb, name), err_msg=name)
    np.testing.assert_array_equal(a.fine_assessment.score, b.fine_assessment.score)
    assert a.chosen == b.chosen
    assert (a.coarse.clear < 1e9).any()  # some paths were measured against the structures


def test_kernel_on_maps_of_a_small_box_measures_the_paths_leaving_it_again(neck_fields):
    """Maps computed first on a small box around the targets: the candidates whose paths leave it are measured again
    on a larger box; every figure equals the kernel's on whole-ROI maps."""
    vol, lm, site, proto, full = neck_fields
    lazy, _, _ = S.build_fields(vol, lm, site, proto, defer_maps=True)
    targets = np.array([[0.0, 0.0, -16.0], [2.0, -1.0, -12.0], [-1.0, 1.0, -20.0]])
    t_roi = np.rint(lazy.world_to_roi(targets)).astype(int)
    lazy.ensure_maps(tuple(slice(int(a) - 3, int(b) + 4) for a, b in zip(t_roi.min(0), t_roi.max(0))))
    small = lazy.maps_box
    d = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.6, -0.8, 0.0], [0.0, 0.6, 0.8]])
    ct, cd = np.repeat(np.arange(3), 4), np.tile(np.arange(4), 3)
    a = S.run_kernel(full, targets, d, ct, cd, proto, 2.0, 1.75, 0.5)
    b = S.run_kernel(lazy, targets, d, ct, cd, proto, 2.0, 1.75, 0.5)
    assert lazy.maps_box != small  # some paths left the small box: the maps were extended
    for name in ("code", "s_bone", "s_skin", "containment", "other_bone", "clear", "incidence_deg"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.clear < 1e9).all()  # every candidate measured (no entry rule without a site)
