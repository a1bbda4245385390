"""Spinal canal (osteoplan.anatomy.canal): synthetic geometry with hand-computed answers, and OpenKBP cases."""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.anatomy.canal import (BLIND_EXTENSION_MM, CANAL_MIN_AREA_MM2, FILLED_RING_REACH_MM,
                                     FOLLOW_COST_HU_PER_MM, FOLLOW_STEP_MM, LINK_ABOVE_MIN_MM,
                                     LINK_MAX_OFFSET_MM, OFF_LINE_MM, RECENTRE_MM, _enclosed,
                                     _carry_source, _follow_csf, _place_between, _realign_off_line_sections,
                                     _recentre_dense_sections, _rings_in_filled_slices, _track,
                                     segment_spinal_canal)
from osteoplan.imaging.volume import AcquisitionInfo, Volume, axis_aligned_affine

SP = (2.5, 1.5, 1.5)  # slice, row, column spacing (mm): thick slices as on radiotherapy CTs
SIZE = 80
C = (SIZE - 1) / 2.0


def _polar():
    jj, ii = np.mgrid[0:SIZE, 0:SIZE]
    dj, di = (jj - C) * SP[1], (ii - C) * SP[2]
    # angle measured from the posterior direction (+j in the canonical grid: rows -> posterior)
    return np.hypot(dj, di), np.degrees(np.arctan2(di, dj))


def _neck(n_slices: int, seed: int = 0) -> np.ndarray:
    """A soft-tissue cylinder (40 HU, radius 55 mm) in air, with noise; (K, J, I) HU."""
    r, _ = _polar()
    sl = np.full((SIZE, SIZE), -1000.0, np.float32)
    sl[r <= 55.0] = 40.0
    rng = np.random.default_rng(seed)
    return np.repeat(sl[None], n_slices, axis=0) + rng.normal(0, 8.0, (n_slices, SIZE, SIZE)).astype(np.float32)


def _volume(arr: np.ndarray) -> Volume:
    # axis_aligned_affine: k -> superior, j -> posterior, i -> patient left
    return Volume(arr, axis_aligned_affine(SP), AcquisitionInfo(contrast=False))


# ------------------------------------------------------------------------------- enclosure
def test_enclosure_of_a_closed_ring_and_of_a_ring_with_a_gap():
    jj, ii = np.mgrid[0:41, 0:41]
    r = np.hypot(jj - 20, ii - 20)
    ang = np.degrees(np.arctan2(ii - 20, jj - 20))
    ring = (r >= 4.5) & (r <= 6.0)
    roi = np.zeros_like(ring)
    roi[20, 20] = True
    sp = np.array([1.0, 1.0])
    assert _enclosed(ring, roi, sp, 10.0)[20, 20] == 1.0
    # a 100 degree gap centred on +j: the rays at 0, +/-22.5 and +/-45 degrees (5 of 16) escape
    gap = ring & (np.abs(ang) >= 50.0)
    assert _enclosed(gap, roi, sp, 10.0)[20, 20] == pytest.approx(11.0 / 16.0)
    # the ring lies beyond a 4 mm reach: nothing is hit
    assert _enclosed(ring, roi, sp, 4.0)[20, 20] == 0.0
    # only voxels of the roi get a value
    assert _enclosed(ring, roi, sp, 10.0).sum() == 1.0


# ---------------------------------------------------------------- open rings above the last closed ring
def test_canal_followed_cranially_through_open_rings_beyond_the_blind_extension():
    """Closed rings in the 20 lowest slices, rings open posteriorly (60 degree gap) in the 28 above.

    The open part (70 mm) is longer than the blind cranial continuation (25 mm): the canal must be
    carried through it because the channel is still enclosed by bone in most directions, with the
    section of the closed rings (pi * 7^2 = 153.9 mm^2) and without leaking through the gap."""
    K = 48
    arr = _neck(K)
    r, ang = _polar()
    ring = (r > 7.0) & (r <= 11.0)
    gap = np.abs(ang) < 30.0
    arr[:20, ring] = 1000.0
    arr[20:, ring & ~gap] = 1000.0
    vol = _volume(arr + 0.0)
    res = segment_spinal_canal(vol)
    per_slice = res.mask.sum(axis=(1, 2)) * SP[1] * SP[2]
    assert (K - 1 - max(res.found_slices)) * SP[0] > BLIND_EXTENSION_MM + 10.0  # the test needs the enclosure
    assert np.all(per_slice > 0), per_slice  # every slice, up to the top of the image
    inner = r <= 7.0
    assert np.median(per_slice[25:]) == pytest.approx(np.pi * 7.0 ** 2, rel=0.2)
    assert per_slice[25:].max() <= 1.3 * np.pi * 7.0 ** 2
    cord = r <= 3.0  # a cord of 3 mm radius in the middle of the canal
    assert res.mask[:, cord].all()
    # never through the gap: at most the one-voxel rim of partial volume the bone outline gives back
    # (a diagonal voxel: 7 + 1.5 * sqrt(2) = 9.1 mm)
    assert not res.mask[:, ~inner & (r > 7.0 + 1.5 * np.sqrt(2.0) + 0.1)].any()


def test_section_carried_cranially_keeps_its_back_where_the_ring_is_open_behind():
    """Closed rings (r 7-11 mm) in the 16 lowest slices; above them only the front half of the ring
    (the body of C2, |angle from posterior| >= 90 degrees), open at the sides and behind, as between
    the arches of C1 and C2.

    Beyond the blind continuation (25 mm) the back of the carried section (pi * 7^2 = 153.9 mm^2) is
    enclosed in fewer than half of the directions (rays backwards and sideways escape), its front
    in more. The enclosure lets the canal go on but must not clip the section to its front: before,
    the section kept 44 voxels (99 mm^2, 64 %) and 2 of the 12 voxels of a 3 mm cord in the middle
    were outside; now the carried section (cut only by the bone) keeps at least 75 % of pi * 7^2 and
    the cord is inside on every slice."""
    K = 40
    arr = _neck(K, seed=5)
    r, ang = _polar()
    ring = (r > 7.0) & (r <= 11.0)
    arr[:16, ring] = 1000.0
    arr[16:, ring & (np.abs(ang) >= 90.0)] = 1000.0
    res = segment_spinal_canal(_volume(arr))
    top_ring = max(res.found_slices)
    assert top_ring == 15
    beyond = top_ring + 1 + int(np.ceil(BLIND_EXTENSION_MM / SP[0]))  # first slice past the blind part
    assert beyond < K - 5
    per_slice = res.mask.sum(axis=(1, 2)) * SP[1] * SP[2]
    assert np.all(per_slice > 0), per_slice  # continued to the top of the image
    assert np.all(per_slice[beyond:] >= 0.75 * np.pi * 7.0 ** 2), per_slice[beyond:]
    assert res.mask[:, r <= 3.0].all()


def test_rings_beyond_a_stretch_without_bone_are_linked_to_the_continued_canal():
    """Closed rings in slices 0-23 and 41-59, no bone in the 17 slices between (42.5 mm).

    The upper rings lie farther above the lower ones (45 mm) than max_gap_mm (40 mm), and the open
    stretch is longer than the blind cranial continuation (25 mm): the continuation stops 8 slices
    (20 mm) below the upper rings. They must be linked to the continued canal and the slices between
    filled with the section common to both (the ring hole, pi * 7^2 = 153.9 mm^2), so that the canal
    runs through every slice."""
    K = 60
    arr = _neck(K, seed=2)
    r, _ = _polar()
    ring = (r > 7.0) & (r <= 11.0)
    arr[:24, ring] = 1000.0
    arr[41:, ring] = 1000.0
    assert (41 - 23) * SP[0] > 40.0  # beyond the default max_gap_mm of the track
    assert (41 - 24) * SP[0] > BLIND_EXTENSION_MM + 10.0  # the continuation alone stops below the rings
    assert (K - 41) * SP[0] >= LINK_ABOVE_MIN_MM
    res = segment_spinal_canal(_volume(arr))
    per_slice = res.mask.sum(axis=(1, 2)) * SP[1] * SP[2]
    assert np.all(per_slice > 0), per_slice
    assert res.mask[:, r <= 3.0].all()  # a cord of 3 mm radius in the middle, in every slice
    # the filled slices (after the blind continuation, below the upper rings): the ring hole, plus at
    # most the one-voxel rim of partial volume (a diagonal voxel: 7 + 1.5 * sqrt(2) = 9.1 mm)
    gap_slices = slice(34, 41)
    assert np.all(per_slice[gap_slices] >= 0.8 * np.pi * 7.0 ** 2), per_slice[gap_slices]
    assert not res.mask[gap_slices][:, r > 7.0 + 1.5 * np.sqrt(2.0) + 0.1].any()


def _rings_and_hole_in_front(n_slices: int, seed: int, hole: slice) -> np.ndarray:
    """Neck of *n_slices* with closed rings (radius 7-11 mm) in slices 0-29 and, in the slices *hole*,
    a ring hole of the same size centred 22 mm anterior of the canal axis (a hole of the skull base)."""
    arr = _neck(n_slices, seed=seed)
    r, _ = _polar()
    arr[:30, (r > 7.0) & (r <= 11.0)] = 1000.0
    jj, ii = np.mgrid[0:SIZE, 0:SIZE]
    r2 = np.hypot((jj - C) * SP[1] + 22.0, (ii - C) * SP[2])  # 22 mm anterior (-j)
    arr[hole, (r2 > 7.0) & (r2 <= 11.0)] = 1000.0
    return arr


def _assert_on_axis_up_to(mask: np.ndarray, top: int) -> None:
    """The canal's top slice is *top* and every slice up to it is centred within 3 mm of the axis."""
    assert np.nonzero(mask.any(axis=(1, 2)))[0].max() == top
    for k in range(top + 1):
        cj, ci = np.argwhere(mask[k]).mean(axis=0)
        assert np.hypot((cj - C) * SP[1], (ci - C) * SP[2]) < 3.0, k


def test_hole_far_off_the_continued_canal_above_it_is_not_linked():
    """Closed rings in slices 0-29, soft tissue above; in slices 54-58 (12.5 mm, longer than
    LINK_ABOVE_MIN_MM) a ring hole (radius 7 mm) centred 22 mm anterior of the canal axis (a hole
    of the skull base).

    The hole lies beyond max_gap_mm of the top ring (for the track) but within it of the end of the
    blind continuation (slice 39). The continuity test's tolerance grows with the gap (12 mm + half
    a 1.5 mm voxel per slice: 23.25 mm over the 15 slices) but is capped at LINK_MAX_OFFSET_MM: the
    hole is not linked and the canal stays on its axis, up to the end of the blind continuation."""
    arr = _rings_and_hole_in_front(60, 3, slice(54, 59))
    top = 29 + int(round(BLIND_EXTENSION_MM / SP[0]))
    assert (54 - 29) * SP[0] > 40.0 >= (54 - top) * SP[0]  # default max_gap_mm
    assert (59 - 54) * SP[0] >= LINK_ABOVE_MIN_MM
    assert LINK_MAX_OFFSET_MM < 22.0 < 12.0 + 0.5 * (54 - top) * SP[1]
    res = segment_spinal_canal(_volume(arr))
    assert not res.mask[40:].any()
    _assert_on_axis_up_to(res.mask, top)


@pytest.mark.parametrize("n_slices,linked", [(1, False), (4, True)])
def test_only_ring_components_of_a_vertebral_height_are_linked_above_the_continued_canal(n_slices, linked):
    """Closed rings in slices 0-29, soft tissue above, and on the canal axis a ring of 1 slice
    (2.5 mm, shorter than LINK_ABOVE_MIN_MM: a foramen of the skull base) or of 4 slices (10 mm)
    starting at slice 50: beyond max_gap_mm of the top ring, within it of the end of the blind
    continuation (slice 39). Only the 4-slice ring is linked (the canal then runs through every
    slice from 0 up through the ring, and is continued above it); the 1-slice one is left."""
    K = 60
    arr = _neck(K, seed=4)
    r, _ = _polar()
    ring = (r > 7.0) & (r <= 11.0)
    arr[:30, ring] = 1000.0
    arr[50:50 + n_slices, ring] = 1000.0
    top = 29 + int(round(BLIND_EXTENSION_MM / SP[0]))
    assert (50 - 29) * SP[0] > 40.0 >= (50 - top) * SP[0]  # default max_gap_mm
    assert (1 * SP[0] >= LINK_ABOVE_MIN_MM) is False and 4 * SP[0] >= LINK_ABOVE_MIN_MM
    res = segment_spinal_canal(_volume(arr))
    ks = np.nonzero(res.mask.any(axis=(1, 2)))[0]
    if linked:
        assert ks.max() >= 53 and np.array_equal(ks, np.arange(ks.max() + 1))
        assert res.mask[:54, r <= 3.0].all()
    else:
        assert ks.max() == top


def test_hole_far_off_the_canal_above_its_top_ring_is_not_linked_by_the_track():
    """Closed rings in slices 0-29; 15 slices (37.5 mm, within max_gap_mm) above the top ring, one
    slice with a ring hole (radius 7 mm) centred 22 mm anterior of the canal (a skull-base hole),
    soft tissue between.

    The tolerance of the track's continuity test grows with the gap (12 mm + half a 1.5 mm voxel
    per slice: 23.25 mm here) but above the canal is capped at LINK_MAX_OFFSET_MM: the hole is not
    linked, and the slices below it are not filled with its section (the canal stays on its axis,
    continued above the top ring by the blind continuation)."""
    arr = _rings_and_hole_in_front(50, 5, slice(44, 45))
    assert (44 - 29) * SP[0] <= 40.0  # default max_gap_mm
    assert LINK_MAX_OFFSET_MM < 22.0 < 12.0 + 0.5 * (44 - 29) * SP[1]
    res = segment_spinal_canal(_volume(arr))
    assert 44 not in res.found_slices and not res.mask[44].any()
    _assert_on_axis_up_to(res.mask, 29 + int(round(BLIND_EXTENSION_MM / SP[0])))


# ------------------------------------------------------------- marrow pockets in line with the canal
def test_marrow_pocket_column_is_not_taken_for_the_canal():
    """An anterior 'vertebral body' (bone block) with a low-density pocket (radius 5 mm: 79 mm^2,
    100 HU) spanning all 36 slices, in line with a canal whose ring is open in the middle 12 slices.

    The pocket column is the longest closed hole but smaller than CANAL_MIN_AREA_MM2: the canal
    must be the ring's hole (two closed parts, linked and interpolated), never the pocket."""
    K = 36
    arr = _neck(K, seed=1)
    r, ang = _polar()
    ring = (r > 7.0) & (r <= 11.0)
    gap = np.abs(ang) < 30.0
    arr[:12, ring] = 1000.0
    arr[24:, ring] = 1000.0
    arr[12:24, ring & ~gap] = 1000.0
    jj, ii = np.mgrid[0:SIZE, 0:SIZE]
    # body: a block from 12 to 30 mm anterior of the canal centre, pocket 21 mm anterior
    dj, di = (jj - C) * SP[1], (ii - C) * SP[2]
    block = (dj <= -12.0) & (dj >= -30.0) & (np.abs(di) <= 12.0)
    pocket = np.hypot(dj + 21.0, di) <= 5.0
    assert np.pi * 5.0 ** 2 < CANAL_MIN_AREA_MM2
    arr[:, block] = 1000.0
    arr[:, pocket] = 100.0
    res = segment_spinal_canal(_volume(arr))
    assert not res.mask[:, pocket].any()
    for k in range(K):
        assert res.mask[k].any(), k
        cj, ci = np.argwhere(res.mask[k]).mean(axis=0)
        assert np.hypot((cj - C) * SP[1], (ci - C) * SP[2]) < 3.0, k


def test_section_in_the_marrow_of_the_body_moves_back_onto_the_csf_channel():
    """One slice at 4 mm voxels: a vertebral body (cortex 1000 HU) with a marrow pocket (150 HU,
    rows 13-15) and, behind its posterior cortex (row 16), the canal (10 HU, rows 17-19) closed by
    the arch (row 20 behind, columns 13 and 17 at the sides), in soft tissue (40 HU).

    A canal section taken in the pocket reads as marrow: it must move 4 rows back (16 mm, within
    RECENTRE_MM) onto the canal exactly; a section already on the canal stays."""
    sp = np.array([3.0, 4.0, 4.0])
    n = 31
    sm = np.full((1, n, n), 40.0)
    bone = np.zeros((1, n, n), bool)
    bone[0, 11:22, 12:19] = True            # body and arch, hollowed below
    bone[0, 12:16, 13:18] = False
    sm[0, 12:16, 13:18] = 150.0              # marrow
    bone[0, 17:20, 14:17] = False
    sm[0, 17:20, 14:17] = 10.0               # canal: CSF and cord
    sm[bone] = 1000.0
    body = np.ones_like(bone)
    pocket = np.zeros_like(bone)
    pocket[0, 13:16, 14:17] = True
    assert 4 * sp[1] <= RECENTRE_MM
    out = _recentre_dense_sections(pocket, sm, bone, body, sp)
    expect = np.zeros_like(bone)
    expect[0, 17:20, 14:17] = True
    assert np.array_equal(out, expect)
    assert np.array_equal(_recentre_dense_sections(expect, sm, bone, body, sp), expect)


def _follow_slice():
    """One slice at 4 mm voxels (31 x 31): muscle (40 HU), fat (-100 HU) in front (rows < 12), a
    canal of CSF (10 HU, rows 16-18, columns 14-16) in a bony ring (400 HU, one voxel thick)."""
    sm = np.full((31, 31), 40.0)
    sm[:12] = -100.0
    sm[15:20, 13:18] = 400.0
    sm[16:19, 14:17] = 10.0
    tpl = np.zeros((31, 31), bool)
    tpl[11:14, 14:17] = True  # the carried section, 5 rows (20 mm) in front of the canal
    return sm, tpl


def _off_line_case(row_mid: int, hu_off: float, hu_line: float = 10.0, row_3: int = 10):
    """5 slices of 20 x 20 voxels (3 x 2 x 2 mm): 2 x 2 voxel sections in columns 9-10, at rows 10-11
    (slices 0, 1, 4), row_3..row_3+1 (slice 3) and row_mid..row_mid+1 (slice 2); slice 2 reads
    hu_off on its own section and hu_line on rows 10-11 (50 HU elsewhere)."""
    sp = np.array([3.0, 2.0, 2.0])
    canal = np.zeros((5, 20, 20), bool)
    for k in (0, 1, 4):
        canal[k, 10:12, 9:11] = True
    canal[3, row_3:row_3 + 2, 9:11] = True
    canal[2, row_mid:row_mid + 2, 9:11] = True
    sm = np.full(canal.shape, 50.0)
    sm[2, 10:12, 9:11] = hu_line
    sm[2, row_mid:row_mid + 2, 9:11] = hu_off
    b_c = np.zeros_like(canal)
    body_c = np.ones_like(canal)
    return _realign_off_line_sections(canal, sm, b_c, body_c, sp), canal


def test_section_off_the_line_of_its_neighbours_moves_onto_it_when_it_reads_nearer_csf():
    # 6 rows (12 mm) in front of the line through its neighbours (rows 10-11), reading 80 HU (70 off
    # CSF) where the line reads 10 HU (0 off): moved onto rows 10-11; other slices unchanged
    out, canal = _off_line_case(row_mid=4, hu_off=80.0)
    assert 6 * 2.0 > OFF_LINE_MM
    assert out[2, 10:12, 9:11].all() and out[2].sum() == 4
    assert np.array_equal(out[[0, 1, 3, 4]], canal[[0, 1, 3, 4]])
    # ... not when the line reads farther from CSF (a section on the channel stays)
    out, canal = _off_line_case(row_mid=4, hu_off=10.0, hu_line=80.0)
    assert np.array_equal(out, canal)
    # ... not 3 rows (6 mm, within OFF_LINE_MM) off the line
    out, canal = _off_line_case(row_mid=7, hu_off=80.0)
    assert np.array_equal(out, canal)
    # ... not when the neighbours disagree: slice 3 at rows 16-17 lies 6 rows (12 mm) from slice 1;
    # slice 2 is then 9 rows off their midpoint, slice 1 lies between slices 0 and 2 that are 12 mm
    # apart, slice 3 between slices 2 and 4 (12 mm apart): nothing moves
    out, canal = _off_line_case(row_mid=4, hu_off=80.0, row_3=16)
    assert np.array_equal(out, canal)


def test_carried_section_follows_the_csf_channel_not_the_fat_in_front():
    """The carried section starts 2 rows in front of the canal with its offset (3, 0) voxels: the
    shift onto the canal (+2 rows, 8 mm; FOLLOW_STEP_MM rounded to 2 voxels) costs 8 * FOLLOW_COST_HU_PER_MM =
    16 HU over a perfect CSF match (0) -- less than staying (mean |HU - 10| of rows 14-16: one row of
    muscle 30, one of bone 390, one of CSF 0 -> 140) or moving into the fat (110)."""
    sm, tpl = _follow_slice()
    sp2 = np.array([4.0, 4.0])
    assert round(FOLLOW_STEP_MM / 4.0) >= 2  # a 2-voxel shift is within reach (rounded to voxels)
    body = np.ones_like(tpl)
    off = _follow_csf(tpl, np.array([3.0, 0.0]), sm, body, sp2)
    assert off.tolist() == [5.0, 0.0]
    # the channel is bounded: starting on it, the section stays
    assert _follow_csf(tpl, np.array([5.0, 0.0]), sm, body, sp2).tolist() == [5.0, 0.0]
    # uniform muscle: every shift reads the same, the cost of moving keeps the section where it is
    assert _follow_csf(tpl, np.array([3.0, 1.0]), np.full((31, 31), 40.0), body, sp2).tolist() == [3.0, 1.0]
    assert FOLLOW_COST_HU_PER_MM > 0


def test_carried_section_reads_only_the_provided_region_of_a_cropped_ct():
    """Only a patch around the canal holds data (rows 15-19, columns 13-17; elsewhere -1024 and
    outside the body): shifts with less than half the section inside it are not taken, the
    others are read on their voxels inside it, so the section still lands on the canal; with no
    admissible shift at all the offset stays."""
    sm, tpl = _follow_slice()
    body = np.zeros_like(tpl)
    body[15:20, 13:18] = True
    sm[~body] = -1024.0
    sp2 = np.array([4.0, 4.0])
    assert _follow_csf(tpl, np.array([3.0, 0.0]), sm, body, sp2).tolist() == [5.0, 0.0]
    far = np.zeros_like(tpl)
    far[0:3, 0:3] = True  # 16 rows away from the patch: no shift within FOLLOW_STEP_MM reaches it
    assert _follow_csf(far, np.array([0.0, 0.0]), sm, body, sp2).tolist() == [0.0, 0.0]


def test_filled_slice_takes_its_own_ring_hole_when_it_reads_nearer_csf():
    """Three slices at 4 mm voxels; slices 0 and 2 hold rings of the track (found), slice 1 was
    filled with their section (rows 10-12, in marrow: 150 HU). Slice 1 has its own ring hole
    (rows 15-17, CSF 10 HU) 3 rows away: the gap between them (rows 13-14) is 2 voxels, the
    hole's nearest voxel 12 mm from the section's, within FILLED_RING_REACH_MM (12 mm): the hole
    replaces the filled section. A hole reading as marrow too (150 HU), one beyond the reach, and
    found slices are left as they are."""
    sp = np.array([2.5, 4.0, 4.0])
    canal = np.zeros((3, 25, 25), bool)
    canal[:, 10:13, 11:14] = True
    sm = np.full((3, 25, 25), 40.0)
    sm[:, 10:13, 11:14] = 150.0
    cand = np.zeros_like(canal)
    cand[1, 15:18, 11:14] = True
    sm[1, 15:18, 11:14] = 10.0
    assert 3 * 4.0 <= FILLED_RING_REACH_MM < 4 * 4.0
    out = _rings_in_filled_slices(canal, [0, 2], cand, sm, sp)
    assert np.array_equal(out[1], cand[1]) and np.array_equal(out[[0, 2]], canal[[0, 2]])
    assert np.array_equal(_rings_in_filled_slices(canal, [0, 1, 2], cand, sm, sp), canal)  # found: kept
    dense = sm.copy()
    dense[1, 15:18, 11:14] = 150.0
    assert np.array_equal(_rings_in_filled_slices(canal, [0, 2], cand, dense, sp), canal)
    far = np.zeros_like(cand)
    far[1, 16:19, 11:14] = True  # one row farther: 16 mm
    sm2 = sm.copy()
    sm2[1, 16:19, 11:14] = 10.0
    assert np.array_equal(_rings_in_filled_slices(canal, [0, 2], far, sm2, sp), canal)


# ------------------------------------------------------- the track across gaps and competing holes
def test_place_between_puts_the_section_on_the_line_between_the_rings():
    """A 3x3 section centred at (10, 10); the rings below and above are centred at (20, 12) and
    (10, 12): at t = 0.3 the centre of the line is (17, 12), so the section moves 7 rows and 2
    columns (rows 16-18, columns 11-13)."""
    sec = np.zeros((25, 25), bool)
    sec[9:12, 9:12] = True
    below, above = np.zeros_like(sec), np.zeros_like(sec)
    below[19:22, 11:14] = True
    above[9:12, 11:14] = True
    out = _place_between(sec, below, above, 0.3)
    expect = np.zeros_like(sec)
    expect[16:19, 11:14] = True
    assert np.array_equal(out, expect)


def test_track_fills_a_gap_on_the_line_between_rings_that_do_not_overlap():
    """Ring holes (3x3 voxels, 1.5 mm) in slices 0-4 centred on row 10 and in slices 11-15 on
    row 20 (15 mm = 10 rows further back: within the 12 mm + half a voxel per slice of gap = 16.5 mm
    tolerance of the link, so both are the canal). They have no common part: the filled slices
    5-10 take the nearest section, placed on the line between the rings (row 10 + 10 (k - 4) / 7,
    rounded: 11, 13, 14, 16, 17, 19) on the canal mask's track; on the centre track (in_line off)
    the nearest section stays where it was found (rows 10, 10, 10, 20, 20, 20)."""
    sp = np.array([2.5, 1.5, 1.5])
    cand = np.zeros((16, 30, 21), bool)
    cand[0:5, 9:12, 9:12] = True
    cand[11:16, 19:22, 9:12] = True
    none = np.zeros_like(cand)
    body = np.ones_like(cand)
    canal, found, n_fill = _track(cand, none, body, sp, 40.0, in_line=True)
    assert found == [0, 1, 2, 3, 4, 11, 12, 13, 14, 15] and n_fill == 6
    rows = [float(np.argwhere(canal[k])[:, 0].mean()) for k in range(5, 11)]
    assert rows == [11.0, 13.0, 14.0, 16.0, 17.0, 19.0]
    assert all(canal[k].sum() == 9 for k in range(16))
    canal0, _, _ = _track(cand, none, body, sp, 40.0)
    assert [float(np.argwhere(canal0[k])[:, 0].mean()) for k in range(5, 11)] == [10.0] * 3 + [20.0] * 3


def test_track_places_a_gap_with_typical_sections_on_one_side_only_on_the_line_between_rings():
    """Typical ring holes (3x3 voxels, area 9) in slices 0-5 centred on row 10, larger rings (5x5,
    area 25 > 1.3 x the median 9) in slice 8 on row 14 and in slice 11 on row 16 (within the link
    tolerance: 6 mm and 3 mm from the canal below). Slices 6-7 and 9-10 have no typical section
    above them: they take the nearest typical one (slice 5, row 10), placed on the line between the
    rings found next below and above: row 10 + 4 (k - 5) / 3 for k = 6, 7 -> 11.33, 12.67 -> shifts
    rint(1.33) = 1 and rint(2.67) = 3 -> rows 11 and 13; 14 + 2 (k - 8) / 3 for k = 9, 10 -> 14.67,
    15.33 -> shifts rint(4.67) = 5 and rint(5.33) = 5 -> row 15 both. On the centre track (in_line
    off) they stay on row 10."""
    sp = np.array([2.5, 1.5, 1.5])
    cand = np.zeros((12, 30, 21), bool)
    cand[0:6, 9:12, 9:12] = True
    cand[8, 12:17, 8:13] = True
    cand[11, 14:19, 8:13] = True
    none = np.zeros_like(cand)
    body = np.ones_like(cand)
    canal, found, n_fill = _track(cand, none, body, sp, 40.0, in_line=True)
    assert found == [0, 1, 2, 3, 4, 5, 8, 11] and n_fill == 4
    rows = [float(np.argwhere(canal[k])[:, 0].mean()) for k in (6, 7, 9, 10)]
    assert rows == [11.0, 13.0, 15.0, 15.0]
    assert all(canal[k].sum() == 9 for k in (6, 7, 9, 10))
    assert all(float(np.argwhere(canal[k])[:, 1].mean()) == 10.0 for k in (6, 7, 9, 10))
    canal0, _, _ = _track(cand, none, body, sp, 40.0)
    assert [float(np.argwhere(canal0[k])[:, 0].mean()) for k in (6, 7, 9, 10)] == [10.0] * 4


def test_caudal_source_is_judged_against_the_closed_rings_only():
    """Closed rings in slices 0-4 and 11 with areas 28, 30, 27, 18, 18 and 18 voxels (median 22.5,
    limit 1.3 x 22.5 = 29.25); slices 5-10 were filled with 14 voxels each (median of all twelve:
    (14 + 18) / 2 = 16, limit 20.8). Caudally from slice 0 the nearest section within the rings'
    limit is slice 0 itself (28 <= 29.25); the filled slices do not pull the limit down to slice 3
    (the first at most 20.8). Cranially from slice 11 the limit is 2 x the given typical area:
    with typical 9 (limit 18) slice 11 (18) qualifies; with typical 8.5 (limit 17) it does not and
    the nearest that does is slice 10 (14). With no section within the limit, the end slice."""
    areas = np.array([28, 30, 27, 18, 18, 14, 14, 14, 14, 14, 14, 18, 0])
    found = [0, 1, 2, 3, 4, 11]
    typical_all = float(np.median(areas[areas > 0]))
    assert typical_all == 16.0
    assert _carry_source(areas, found, 0, -1, 0, 11, typical_all) == 0
    assert _carry_source(areas, found, 11, 1, 0, 11, 9.0) == 11
    assert _carry_source(areas, found, 11, 1, 0, 11, 8.5) == 10
    assert _carry_source(np.zeros(13, int) + 100, found, 11, 1, 0, 11, 9.0) == 11


# ------------------------------------------------------------------------------------ OpenKBP
# cases where the canal used to leave the cord: the track took marrow pockets of the vertebral bodies
# (pt_30, pt_43, pt_93, pt_129: 63-75 % of the cord inside the canal) or only the thoracic rings
# closed and the canal stopped 160 mm below the top of the cord (pt_113: 21 %); now >= 95 %
# pt_39: below the last closed ring the canal curves backwards into the thorax; the carried section
# drifted forwards into the mediastinum (63 %) before it followed the CSF channel (_follow_csf)
OPENKBP_CASES = ["pt_30", "pt_39", "pt_43", "pt_93", "pt_113", "pt_129"]


@pytest.mark.slow
@pytest.mark.parametrize("case", OPENKBP_CASES)
def test_openkbp_cord_inside_the_canal(shared_data, case):
    from osteoplan.anatomy.segment import segment_body, segment_bone
    from osteoplan.imaging import read_volume

    d = shared_data / "openkbp" / case
    if not (d / "SpinalCord.nii.gz").exists():
        pytest.skip(f"OpenKBP {case} is not in the shared data")
    vol = read_volume(d / "ct.nii.gz")
    body = segment_body(vol)
    bone = segment_bone(vol, body)
    canal = segment_spinal_canal(vol, bone.lenient, body, bone_outline=bone.bone).mask
    cord = read_volume(d / "SpinalCord.nii.gz").array > 0.5
    assert (cord & canal).sum() / cord.sum() >= 0.95


# ------------------------------------------------------------------ partial-volume rim of the wall
@pytest.mark.parametrize("layer_hu,expect_rim", [(200.0, True), (400.0, False)])
def test_partial_volume_rim_of_the_wall_is_canal_when_mostly_soft_tissue(layer_hu, expect_rim):
    """4 mm voxels: canal (10 HU, r <= 8 mm: 12 voxels), a one-voxel layer of mixed wall voxels
    (8 < r <= 12 mm: 20 voxels) inside a cortical ring (1000 HU). The ring search uses the lenient
    bone (layer + cortex); the precise outline is the cortex only. Layer voxels below RIM_MAX_HU
    (200 HU: about 20 % bone) are given back to the canal (12 + 20 = 32 voxels per slice); denser
    ones (400 HU) are not (12)."""
    from osteoplan.anatomy.canal import RIM_MAX_HU

    assert (layer_hu < RIM_MAX_HU) == expect_rim
    n, size = 20, 40
    c = (size - 1) / 2.0
    jj, ii = np.mgrid[0:size, 0:size]
    r = np.hypot(jj - c, ii - c) * 4.0
    sl = np.full((size, size), -1000.0, np.float32)
    sl[r <= 70.0] = 45.0
    sl[(r > 8.0) & (r <= 20.0)] = 1000.0
    sl[(r > 8.0) & (r <= 12.0)] = layer_hu
    sl[r <= 8.0] = 10.0
    arr = np.repeat(sl[None], n, axis=0) + np.random.default_rng(2).normal(0, 8.0, (n, size, size)).astype(np.float32)
    vol = Volume(arr, axis_aligned_affine((2.5, 4.0, 4.0)), AcquisitionInfo(contrast=False))
    rep = lambda m: np.repeat(m[None], n, axis=0)  # noqa: E731
    lenient, cortex, body = rep((r > 8.0) & (r <= 20.0)), rep((r > 12.0) & (r <= 20.0)), rep(r <= 70.0)
    res = segment_spinal_canal(vol, lenient, body, bone_outline=cortex)
    assert (r <= 8.0).sum() == 12 and ((r > 8.0) & (r <= 12.0)).sum() == 20
    assert np.all(res.mask.sum(axis=(1, 2)) == (32 if expect_rim else 12))
    assert not (res.mask & cortex).any()


@pytest.mark.parametrize("layer_hu,expect_rim", [(450.0, True), (600.0, False)])
def test_partial_volume_rim_uses_the_50_percent_rule_relative_to_the_wall(layer_hu, expect_rim):
    """4 mm voxels: canal (10 HU, r <= 8 mm: 12 voxels per slice) inside a cortical ring (1000 HU,
    8 < r <= 20 mm). Behind the canal (posterior half, j > centre) the first voxel layer of the ring
    (8 < r <= 12 mm) is a mixed wall voxel of ``layer_hu``, outside the precise outline; in front
    of it the cortex touches the canal. The wall touching the canal reads 1000 HU, so the 50 %
    partial-volume midpoint is (CSF_HU 10 + 1000) / 2 = 505 HU: a 450 HU layer (below it, and
    above the old fixed 250 HU cap) is given back to the canal, a 600 HU layer is not."""
    from osteoplan.anatomy.canal import CSF_HU

    assert 0.5 * (CSF_HU + 1000.0) == 505.0
    n, size = 20, 40
    c = (size - 1) / 2.0
    jj, ii = np.mgrid[0:size, 0:size]
    r = np.hypot(jj - c, ii - c) * 4.0
    layer = (r > 8.0) & (r <= 12.0) & (jj > c)
    sl = np.full((size, size), -1000.0, np.float32)
    sl[r <= 70.0] = 45.0
    sl[(r > 8.0) & (r <= 20.0)] = 1000.0
    sl[layer] = layer_hu
    sl[r <= 8.0] = 10.0
    arr = np.repeat(sl[None], n, axis=0) + np.random.default_rng(3).normal(0, 8.0, (n, size, size)).astype(np.float32)
    vol = Volume(arr, axis_aligned_affine((2.5, 4.0, 4.0)), AcquisitionInfo(contrast=False))
    rep = lambda m: np.repeat(m[None], n, axis=0)  # noqa: E731
    ring = (r > 8.0) & (r <= 20.0)
    lenient, outline, body = rep(ring), rep(ring & ~layer), rep(r <= 70.0)
    res = segment_spinal_canal(vol, lenient, body, bone_outline=outline)
    assert (r <= 8.0).sum() == 12 and layer.sum() == 10
    assert np.all(res.mask.sum(axis=(1, 2)) == (22 if expect_rim else 12))
    assert not (res.mask & outline).any()


# ------------------------------------------------------------------ too little of the spine in view
def test_rings_over_less_than_one_vertebral_body_height_are_not_a_canal():
    """Closed rings in 4 slices (4 x 2.5 = 10 mm < MIN_RING_SPAN_MM = 15 mm), soft tissue elsewhere:
    no canal is built (carried from so few rings the section ends up anywhere); the reason is given
    in English and in French. With 8 slices (20 mm) the canal is built."""
    from osteoplan.anatomy.canal import MIN_RING_SPAN_MM
    from osteoplan.errors import AnatomyError
    from osteoplan.views.i18n import translate_text

    r, _ = _polar()
    ring = (r > 7.0) & (r <= 11.0)
    arr = _neck(24, seed=3)
    arr[10:14, ring] = 1000.0
    assert 4 * SP[0] < MIN_RING_SPAN_MM
    with pytest.raises(AnatomyError) as err:
        segment_spinal_canal(_volume(arr))
    msg = str(err.value)
    assert "closed vertebral rings over only 10 mm" in msg and "15 mm" in msg
    fr = translate_text(f"spinal_canal: NOT segmented ({msg})", "fr")
    assert "anneaux vertébraux fermés sur seulement 10 mm (moins que la hauteur d'un corps vertébral, 15 mm)" in fr
    arr = _neck(24, seed=3)
    arr[8:16, ring] = 1000.0
    res = segment_spinal_canal(_volume(arr))
    assert res.mask[8:16][:, r <= 3.0].all()
