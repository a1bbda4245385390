"""The spinal canal from CT: holes of the vertebral rings tracked across slices (no trained weights).

Split out of :mod:`osteoplan.anatomy.segment`, which re-exports :func:`segment_spinal_canal` and
:class:`CanalResult`. Internal orientation: the canonical view of :class:`~osteoplan.anatomy.segment.Canon`
(k -> superior, j -> posterior, i -> patient left). Engineering defaults unless a source is given.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from osteoplan.anatomy import _local
from osteoplan.anatomy.segment import (Canon, _box_dilate, _box_erode, _disk, _smooth, fill_holes_in_planes,
                                       segment_body, segment_bone)
from osteoplan.errors import AnatomyError
from osteoplan.imaging.volume import Volume

@dataclass
class CanalResult:
    """The spinal canal and its per-slice track (canonical orientation, k -> superior).

    Attributes
    ----------
    mask : bool array (K, J, I) on the volume's grid.
    centre_canon : dict[int, tuple[float, float]]
        Canonical slice index -> centroid (j, i), canonical voxel units, of the track of ALL ring
        holes (small and dense ones included), from its lowest to its highest closed ring. This is
        the track the C2 localisation follows; at 3-5 mm voxels it may run through marrow pockets
        of the vertebral bodies lower down, where ``mask`` (built from typical sections only)
        does not.
    found_slices : list[int]
        Canonical slices of that track where a ring hole was found (others interpolated).
    """

    mask: np.ndarray
    centre_canon: dict[int, tuple[float, float]]
    found_slices: list[int]
    notes: list[str] = field(default_factory=list)


#: Thickness of the transverse ligament of the atlas behind the dens, cut off the C1 canal
#: section (author's default, mm; no published source).
TRANSVERSE_LIGAMENT_MM = 2.0

#: Smallest section (mm^2) of a ring hole taken as canal. Engineering default: an ellipse of 10 mm
#: sagittal diameter (absolute cervical stenosis below it, Edwards & LaRocca, Spine 1983) by 13 mm
#: ~ 100 mm^2; smaller holes at 3-5 mm voxels are mostly marrow pockets of the vertebral body and
#: transverse foramina (measured on OpenKBP: canal holes 170-400 mm^2, 5th-95th percentile).
CANAL_MIN_AREA_MM2 = 100.0
#: Highest mean density (HU) of a ring hole taken as canal: CSF and cord (0-40 HU) with partial
#: volume of the wall; the soft cancellous core of a vertebral body at 3-5 mm voxels reads higher
#: (engineering default, measured on OpenKBP: canal holes -15..53 HU, 5th-95th percentile).
CANAL_MAX_MEAN_HU = 120.0


#: Shortest cranio-caudal extent (mm) of the closed rings a canal is built on: about one cervical
#: vertebral body height (C3-C7 about 14 mm, Panjabi et al., Spine 1991). Fewer rings are not
#: taken as a canal (carried from them, the section ends up anywhere: measured on OpenKBP, one
#: case with rings over 7.5 mm and no vertebra in view; the next shortest span is 39 mm).
MIN_RING_SPAN_MM = 15.0
#: In-plane reach within which bone must bound a canal voxel, and the fraction of directions in
#: which it must (engineering defaults, no published source: half the largest normal sagittal
#: diameter of the cervical canal, about 23 mm (Pavlov et al., Radiology 1987), plus a margin).
ENCLOSURE_RADIUS_MM = 15.0
ENCLOSED_FRACTION = 0.5
#: Cranial continuation taken without the enclosure test (engineering default).
BLIND_EXTENSION_MM = 25.0
ENCLOSURE_DIRECTIONS = 16
#: Partial-volume rim of the canal wall given back to the canal (the 50 % partial-volume rule): a
#: wall voxel is given back when it reads below the midpoint between CSF (:data:`CSF_HU`) and this
#: patient's bony wall (median HU of the precise bone outline voxels touching the canal), i.e.
#: when it is less than half bone. Engineering default, no published source (the half-maximum edge
#: convention of CT bone measurement). Measured on OpenKBP (4 mm voxels): the midpoint is 340-430 HU;
#: the cord voxels one voxel outside the canal read 250-550 HU where they were missed.
#: RIM_MAX_HU is the fallback when no precise wall is found near the canal (a voxel about one
#: quarter cortical bone, ~1000 HU, and three quarters CSF reads about 265 HU; engineering default).
RIM_MAX_HU = 250.0
#: In-plane neighbours (of 8) in the canal a CSF-density voxel off the precise bone needs to be
#: added to the canal after the rim (fills concavities of the section; half of the neighbourhood).
#: Engineering default, no published source; with 3 the canal leaks through the gap of an open
#: ring (synthetic test in tests/anatomy/test_canal.py), with 4 it does not.
RIM_CSF_MIN_NEIGHBOURS = 4
#: Largest in-plane offset (mm) at which a ring component lying wholly above the canal found so
#: far is linked to it (by the track of typical sections and above the cranially continued canal,
#: :func:`_link_above`), however long the gap between them: the tolerance of :func:`_link` (12 mm
#: at the junction, growing by half a voxel per slice of gap for the curve of the spine) is capped
#: here cranially (caudally, across the cervicothoracic curve, links along the cord at up to 36 mm
#: were measured). Engineering default: about the normal sagittal diameter of the cervical canal
#: (17 mm at C3-C6, Pavlov et al., Radiology 1987) plus a voxel. Measured on OpenKBP (4 mm voxels,
#: 170 cases, links made by :func:`_track`): upward links along the cord at 0-17.8 mm (313 links),
#: links to holes of the skull base above the cord at 17-42 mm (40, 38 of them beyond 20 mm), whose
#: sections then filled the slices between, off the top of the cord (pt_36, pt_126, pt_150).
LINK_MAX_OFFSET_MM = 20.0
#: Shortest ring component (mm, cranio-caudal) linked above the cranially continued canal
#: (:func:`_link_above`): about the height of the shortest vertebral ring, the atlas (engineering
#: default); shorter holes found there are mostly foramina and marrow of the skull base.
LINK_ABOVE_MIN_MM = 10.0
#: Longest run of slices without data (outside the provided region) the canal is carried across
#: (engineering default).
NODATA_BRIDGE_MM = 40.0
#: Density (HU, smoothed) a CSF/cord section of the canal reads, and the tolerance around it; a
#: section denser than CSF_HU + CSF_TOLERANCE_HU is taken as misplaced into the cancellous bone of a
#: vertebral body (at 3-5 mm voxels thoracic marrow pockets read as holes in line with the canal).
#: Engineering defaults, measured on OpenKBP: canal holes -15..53 HU (5th-95th percentile),
#: misplaced sections 60-150 HU, the cord about 0 +- 20 HU.
CSF_HU = 10.0
CSF_TOLERANCE_HU = 50.0
#: Farthest in-plane shift (mm) searched for the low-density channel of a misplaced section.
RECENTRE_MM = 20.0
#: ... and sideways (mm): the canal stays on the midline of the vertebra (a larger lateral shift
#: finds the intervertebral foramina).
LATERAL_RECENTRE_MM = 5.0
#: Least fraction of in-plane directions in which bone bounds the channel a section is moved to
#: (see :func:`_enclosed`; engineering default, lower than ENCLOSED_FRACTION: at 4 mm voxels the
#: arch is thin and often open; measured on OpenKBP, 0.4 moved no correct section off the cord).
RECENTRE_ENCLOSED_FRACTION = 0.4


def _enclosure_offsets(sp2: np.ndarray, radius_mm: float, n_dir: int) -> list[np.ndarray]:
    """Cached :func:`_enclosure_offsets_of` (the same few spacings and radii recur)."""
    return _enclosure_offsets_of(float(sp2[0]), float(sp2[1]), float(radius_mm), int(n_dir))


@functools.lru_cache(maxsize=16)
def _enclosure_offsets_of(sp_j: float, sp_i: float, radius_mm: float, n_dir: int) -> list[np.ndarray]:
    """The in-plane voxel offsets (j, i) sampled along each of the *n_dir* rays of :func:`_enclosed`
    (steps of half the smaller pixel side up to *radius_mm*, rounded to whole voxels), one (n, 2)
    int array per direction without repeats (a repeated offset samples the same voxel)."""
    sp2 = np.array([sp_j, sp_i])
    step = 0.5 * float(min(sp2))
    ts = np.arange(step, radius_mm + 1e-6, step)
    out = []
    for t in np.arange(n_dir) * (2.0 * np.pi / n_dir):
        dj = np.rint(np.cos(t) * ts / float(sp2[0])).astype(int)
        di = np.rint(np.sin(t) * ts / float(sp2[1])).astype(int)
        o = np.unique(np.stack([dj, di], axis=1), axis=0)
        o.flags.writeable = False
        out.append(o)
    return out


def _enclosed(wall: np.ndarray, roi: np.ndarray, sp2: np.ndarray, radius_mm: float,
              n_dir: int = ENCLOSURE_DIRECTIONS) -> np.ndarray:
    """Fraction of in-plane directions in which a ray from each voxel of *roi* hits *wall* within
    *radius_mm* (2D arrays (J, I); float array, 0 outside *roi*).

    One gather for all rays: *wall* padded with False by the longest offset (a ray leaving the
    image hits nothing there, as in :func:`_enclosed_reference`), every voxel of *roi* reads the
    distinct voxels of each ray (:func:`_enclosure_offsets`) and a direction counts when any of them
    is wall. The counts are integers, so the fractions equal the reference's."""
    out = np.zeros(wall.shape, float)
    jj, ii = np.nonzero(roi)
    if jj.size == 0:
        return out
    offs = _enclosure_offsets(sp2, radius_mm, n_dir)
    allo = np.concatenate(offs)
    if allo.shape[0] == 0:  # no step within the radius: no ray hits
        return out
    pj, pi_ = int(np.abs(allo[:, 0]).max()), int(np.abs(allo[:, 1]).max())
    wp = np.pad(np.asarray(wall, bool), ((pj, pj), (pi_, pi_)))
    W = wp.shape[1]
    flat_off = allo[:, 0] * W + allo[:, 1]
    starts = np.cumsum([0] + [len(o) for o in offs[:-1]])
    base = (jj + pj) * W + (ii + pi_)
    hits = wp.ravel()[base[:, None] + flat_off[None, :]]
    cnt = np.logical_or.reduceat(hits, starts, axis=1).sum(axis=1)
    out[jj, ii] = cnt / n_dir
    return out


def _enclosed_reference(wall: np.ndarray, roi: np.ndarray, sp2: np.ndarray, radius_mm: float,
                        n_dir: int = ENCLOSURE_DIRECTIONS) -> np.ndarray:
    """The straightforward ray casting :func:`_enclosed` is checked against (one gather per direction)."""
    out = np.zeros(wall.shape, float)
    jj, ii = np.nonzero(roi)
    if jj.size == 0:
        return out
    step = 0.5 * float(min(sp2))
    ts = np.arange(step, radius_mm + 1e-6, step)
    cnt = np.zeros(jj.size)
    for t in np.arange(n_dir) * (2.0 * np.pi / n_dir):
        dj = np.rint(np.cos(t) * ts / float(sp2[0])).astype(int)
        di = np.rint(np.sin(t) * ts / float(sp2[1])).astype(int)
        pj = jj[:, None] + dj[None]
        pi_ = ii[:, None] + di[None]
        inside = (pj >= 0) & (pj < wall.shape[0]) & (pi_ >= 0) & (pi_ < wall.shape[1])
        hit = np.where(inside, wall[np.clip(pj, 0, wall.shape[0] - 1), np.clip(pi_, 0, wall.shape[1] - 1)], False)
        cnt += hit.any(axis=1)
    out[jj, ii] = cnt / n_dir
    return out


def _track(cand: np.ndarray, b_c: np.ndarray, body_c: np.ndarray, sp: np.ndarray,
           max_gap_mm: float, cap_mm: float = np.inf, in_line: bool = False) -> tuple[np.ndarray, list[int], int]:
    """The canal track through per-slice candidate holes (canonical arrays).

    The candidate 3D component spanning most slices near the midline is the canal; other
    components continuous with it are linked (:func:`_link`); slices between without a candidate
    get the section common to the nearest typical sections above and below (or the nearest one).
    Components wholly above the canal found so far are linked within *cap_mm* at most. With
    *in_line* (the canal mask's track), a filled slice whose nearest typical sections above and
    below have no common part, or that has a typical section on one side only (larger rings on the
    other, e.g. between the large C1/C2 rings at the top, where the canal curves backwards), takes
    the nearest one placed on the line between the rings found next below and above, of any size
    (:func:`_place_between`); without it (the centre track the C2 localisation follows), the
    nearest section where it was found.
    Returns (mask, slices with a candidate, number of slices filled)."""
    st3 = ndi.generate_binary_structure(3, 1)
    lab, n, objs = _local.label_objects(cand, structure=st3)  # = ndi.label and ndi.find_objects, on cand's box
    if n == 0:
        raise AnatomyError("No spinal canal found: no soft-tissue region enclosed by vertebral bone. "
                           "Check that the CT covers the cervical spine, or provide a spinal_canal mask.")
    K = cand.shape[0]
    mid_i = (cand.shape[2] - 1) / 2.0
    best, best_score = 0, -1.0
    for l, sl in enumerate(objs, start=1):
        nsl = sl[0].stop - sl[0].start
        vol = float(np.count_nonzero(lab[sl] == l))
        ci = (sl[2].start + sl[2].stop) / 2.0
        lateral_pen = 1.0 / (1.0 + (abs(ci - mid_i) * sp[2] / 40.0) ** 2)
        score = (nsl * sp[0]) * lateral_pen + 1e-6 * vol
        if score > best_score:
            best, best_score = l, score
    main = lab == best
    ks = [k for k in range(K) if main[k].any()]
    if len(ks) < 3:
        raise AnatomyError("No spinal canal found spanning 3 slices or more; the CT may not cover the spine.")
    # add aligned candidates from other components (interrupted rings): within 12 mm of the canal
    # found so far at the junction and within max_gap_mm (cranio-caudally) of it; repeat until stable
    tol_px, gap = _link_limits(sp, max_gap_mm)
    canal = main.copy()
    _link(canal, lab, objs, [l for l in range(1, n + 1) if l != best], gap, tol_px,
          cap_px=max(cap_mm / float(sp[1]), tol_px))
    found = [k for k in range(K) if canal[k].any()]
    k0, k1 = min(found), max(found)
    # fill slices between without a closed ring from the nearest found slice of typical size
    areas0 = canal.sum(axis=(1, 2))
    typical0 = float(np.median(areas0[areas0 > 0]))
    fset = np.array([k for k in found if areas0[k] <= 1.3 * typical0] or found)
    fall = np.array(found)
    n_interp = 0
    for k in range(k0, k1 + 1):
        if canal[k].any():
            continue
        below, above = fset[fset < k], fset[fset > k]
        near = int(fset[np.argmin(np.abs(fset - k))])
        sec = nearest = canal[near]
        if below.size and above.size:
            sec = _gap_section(canal[int(below.max())], canal[int(above.min())], nearest)
        if in_line and sec is nearest:
            # no common part (or no typical section on one side): the canal moves in-plane across
            # the gap (the curve of the spine); the nearest typical section is placed on the line
            # between the rings found next below and above (of any size), not left where it was found
            lo, hi = int(fall[fall < k].max()), int(fall[fall > k].min())
            sec = _place_between(sec, canal[lo], canal[hi], (k - lo) / (hi - lo))
        canal[k] = sec & ~b_c[k] & body_c[k]
        n_interp += 1
    return canal, found, n_interp


def _carry_source(areas: np.ndarray, found: list[int], end: int, step: int, src_lo: int, src_hi: int,
                  typical: float) -> int:
    """Slice whose section is carried beyond the end slice *end* of the linked rings (direction
    *step*: +1 cranially, -1 caudally): the slice of *src_lo*..*src_hi* nearest to *end* whose
    section (area *areas[k]*, voxels; *areas* per canonical slice) is not empty and at most
    2 x *typical* cranially (the C1 section, larger: dens, cord and free space, Steel's rule of
    thirds, may be carried; *typical* is the median area of all sections of the track) or 1.3 x the
    median area of the closed rings (*found*) caudally (only a section of typical size; the filled
    slices, placed on the line between rings and clipped by the bone there, do not move this limit).
    *end* when none qualifies. The factors are engineering defaults (no published source)."""
    lim = 2.0 * typical if step > 0 else 1.3 * float(np.median(areas[found]))
    order = sorted(range(src_lo, src_hi + 1), key=lambda kk: abs(kk - end))
    return next((kk for kk in order if 0 < areas[kk] <= lim), end)


def _place_between(sec: np.ndarray, below: np.ndarray, above: np.ndarray, t: float) -> np.ndarray:
    """*sec* (2D) shifted in-plane (whole voxels) so that its centroid lies at the fraction *t*
    (0 at *below*, 1 at *above*) of the way between the centroids of the sections *below* and
    *above* (linear interpolation of the track across a gap)."""
    c0, c1 = np.array(_local.center_of_mass(below)), np.array(_local.center_of_mass(above))
    off = np.rint(c0 + t * (c1 - c0) - np.array(_local.center_of_mass(sec)))
    return ndi.shift(sec, off, order=0, mode="constant", cval=0) > 0


def _link_limits(sp: np.ndarray, max_gap_mm: float) -> tuple[float, int]:
    """In-plane tolerance at the junction (voxels) and largest gap (slices) of the continuity test
    of :func:`_link`."""
    return max(12.0 / float(sp[1]), 2.5), max(int(round(max_gap_mm / sp[0])), 1)


def _gap_section(below: np.ndarray, above: np.ndarray, nearest: np.ndarray) -> np.ndarray:
    """Section for a slice between two canal sections *below* and *above* (2D): the part common to
    both when it holds at least half of the smaller one, else *nearest*."""
    both = below & above
    return both if both.sum() >= 0.5 * min(below.sum(), above.sum()) else nearest


def _link_above(canal: np.ndarray, cand: np.ndarray, sp: np.ndarray, max_gap_mm: float, b_c: np.ndarray,
                body_c: np.ndarray) -> tuple[int, int] | None:
    """Link to *canal* (in place) the candidate components wholly above its top slice, at least
    :data:`LINK_ABOVE_MIN_MM` long, that are continuous with it (:func:`_link`), and fill the
    slices between without a section as :func:`_track` does (the section common to the nearest
    sections below and above, :func:`_gap_section`, else the nearest; off the bone and inside the
    body).

    Used after the cranial continuation: a ring component too far above the last linked ring for
    :func:`_track` may be within reach of the continued canal. Returns the lowest and highest
    slices linked, or None."""
    top = int(np.nonzero(canal.any(axis=(1, 2)))[0].max())
    lab, _, objs = _local.label_objects(cand, structure=ndi.generate_binary_structure(3, 1))  # = ndi.label, find_objects
    pending = [l for l, sl in enumerate(objs, start=1) if sl is not None and sl[0].start > top
               and (sl[0].stop - sl[0].start) * float(sp[0]) >= LINK_ABOVE_MIN_MM]
    if not pending:
        return None
    tol_px, gap = _link_limits(sp, max_gap_mm)
    _link(canal, lab, objs, pending, gap, tol_px, cap_px=max(LINK_MAX_OFFSET_MM / float(sp[1]), tol_px))
    have = np.nonzero(canal.any(axis=(1, 2)))[0]
    if have.max() == top:
        return None
    for k in range(top + 1, int(have.max())):
        if k in have:
            continue
        lo, hi = int(have[have < k].max()), int(have[have > k].min())
        near = canal[lo] if k - lo <= hi - k else canal[hi]
        canal[k] = _gap_section(canal[lo], canal[hi], near) & ~b_c[k] & body_c[k]
    return int(have[have > top].min()), int(have.max())


def _link(canal: np.ndarray, lab: np.ndarray, objs: list, pending: list[int], gap: int, tol_px: float,
          cap_px: float = np.inf) -> None:
    """Add to *canal* (in place) the labelled components continuous with it, until stable.

    Continuity at the junction: the component's section nearest to the canal found so far must lie
    within ``tol_px + 0.5 * slice distance`` of the canal's nearest section (the spine curves, so
    the test is local, not against a straight track), at most *gap* slices away; for a component
    wholly above the canal found so far, within *cap_px* at most."""
    have = np.nonzero(canal.any(axis=(1, 2)))[0]
    lo, hi = int(have.min()), int(have.max())
    changed = True
    while changed:
        changed = False
        for l in list(pending):
            sl = objs[l - 1]
            if sl is None:
                pending.remove(l)
                continue
            if sl[0].start > hi + gap or sl[0].stop - 1 < lo - gap:
                continue
            sub = lab[sl] == l
            cks = [sl[0].start + dk for dk in range(sub.shape[0]) if sub[dk].any()]
            have = np.nonzero(canal.any(axis=(1, 2)))[0]
            best_d, ok = np.inf, False
            for kc in (min(cks), max(cks)):
                kn = int(have[np.argmin(np.abs(have - kc))])
                c = _local.center_of_mass(sub[kc - sl[0].start])
                cn_ = _local.center_of_mass(canal[kn])
                dist = np.hypot(c[0] + sl[1].start - cn_[0], c[1] + sl[2].start - cn_[1])
                tol = tol_px + 0.5 * abs(kn - kc)
                if sl[0].start > hi:
                    tol = min(tol, cap_px)  # wholly above the canal found so far: capped
                if dist <= tol and dist < best_d:
                    best_d, ok = dist, True
            pending.remove(l)
            if ok:
                canal[sl] |= sub
                lo, hi = min(lo, sl[0].start), max(hi, sl[0].stop - 1)
                changed = True


def _dens_island(comp: np.ndarray, raw_bone: np.ndarray, px_area: float) -> np.ndarray:
    """Raw bone components of a dens-like size (20-200 mm^2), inside the bounding box of the hole
    *comp* (not touching its edge) and mostly (>= 70 %) surrounded by it (2D)."""
    out = np.zeros_like(comp)
    if np.count_nonzero(raw_bone) * px_area < 20.0:  # no component can reach 20 mm^2
        return out
    lab, n = _local.cc_label(raw_bone)
    if n == 0:
        return out
    near = ndi.binary_dilation(comp)
    edge = np.ones_like(comp)
    edge[1:-1, 1:-1] = False
    for l in np.unique(lab[near & raw_bone]):
        if l == 0:
            continue
        b = lab == l
        if not 20.0 <= b.sum() * px_area <= 200.0 or (b & edge).any():
            continue
        rim = ndi.binary_dilation(b) & ~b
        if (rim & comp).sum() >= 0.7 * rim.sum():
            out |= b
    return out


def _canal_candidates(bone_c: np.ndarray, a_c: np.ndarray, body_c: np.ndarray, sp: np.ndarray,
                      area_mm2: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice holes of the (z-closed) bone ring that look like a canal section.

    Returns ``(lenient, strict)`` bool arrays (K, J, I), canonical: holes with an area in
    ``area_mm2`` and a mean density of -200..200 HU; the subset that also has at least
    :data:`CANAL_MIN_AREA_MM2` and a mean density below :data:`CANAL_MAX_MEAN_HU` (typical canal
    sections, see there)."""
    nz = max(int(round(4.0 / sp[0])), 1)  # bridges cranio-caudal gaps up to about 8 mm
    pad = nz + 1
    box = (2 * nz + 1, 1, 1)
    # = binary_closing with that box, column by column: computed on the columns (j, i) holding bone
    bz = np.zeros_like(bone_c, dtype=bool)
    cols = _local.bbox(bone_c.any(axis=0))
    if cols is not None:
        bp = np.pad(bone_c[:, cols[0], cols[1]], ((pad, pad), (0, 0), (0, 0)))
        bz[:, cols[0], cols[1]] = _box_erode(_box_dilate(bp, box), box)[pad:-pad]
    r_in = 1.2 / float(sp[1])
    if r_in >= 1.0:
        bz = bz | _closing_in_planes(bz, _disk(r_in))
    px_area = float(sp[1] * sp[2])
    cand = np.zeros_like(bone_c)
    cand_s = np.zeros_like(bone_c)
    all_holes = fill_holes_in_planes(bz, 0) & ~bz & body_c
    # a CT provided only around the spine (e.g. radiotherapy data with everything outside a region
    # set to -1024): in slices where the body is a small patch, the cut edge closes the ring too
    patch = body_c.sum(axis=(1, 2)) * px_area < 2500.0
    if patch.any():
        closed = bz[patch] | ~body_c[patch]
        ph = fill_holes_in_planes(closed, 0) & ~closed
        # ... but only where bone makes at least 40 % of the hole's rim inside the provided region
        # (a patch of soft tissue without a vertebra around it is not a canal)
        st = np.zeros((3, 3, 3), bool)
        st[1] = ndi.generate_binary_structure(2, 1)
        lab, n = _local.cc_label(ph, structure=st)
        if n:
            ring_lab = np.where(~ph & body_c[patch], ndi.grey_dilation(lab, footprint=st), 0)
            idx = np.arange(1, n + 1)
            cnt = np.asarray(ndi.sum_labels(np.ones_like(ring_lab, dtype=float), ring_lab, idx))
            tot = np.asarray(ndi.sum_labels(bz[patch].astype(float), ring_lab, idx))
            frac = np.where(cnt > 0, tot / np.maximum(cnt, 1.0), 0.0)
            ok = np.zeros(n + 1, bool)
            ok[1:] = np.nan_to_num(frac) >= 0.4
            all_holes[patch] |= ok[lab]
    for k in range(bz.shape[0]):
        # each slice is worked on the bounding box of its holes (bx): the labels, their order, sizes
        # and bincount-based means are those of the whole slice (voxels outside hold label 0)
        bx = _local.bbox(all_holes[k])
        if bx is None:
            continue
        holes, bone_k, a_k = all_holes[k][bx], bone_c[k][bx], a_c[k][bx]
        lab, n = _local.cc_label(holes)
        # a bone island inside a ring hole is the dens inside the C1 ring: the canal is the part of
        # the hole behind it (the atlanto-dental space in front of it is not canal)
        # The dens is found on the raw bone: a raw bone component of >= 20 mm^2 whose outer
        # neighbourhood is mostly (>= 70 %) this hole (the ring closing may have bridged the thin
        # atlanto-dental interval, so it need not be an island of the closed ring). The cut is
        # TRANSVERSE_LIGAMENT_MM behind its posterior surface (the transverse ligament).
        sizes = np.bincount(lab.ravel(), minlength=n + 1) * px_area
        lig = int(round(TRANSVERSE_LIGAMENT_MM / float(sp[1])))
        for l, sl in enumerate(ndi.find_objects(lab), start=1):
            if sl is None or not area_mm2[0] <= sizes[l] <= 2.0 * area_mm2[1]:
                continue
            comp = lab[sl] == l
            island = _local.fill_holes_2d(comp) & ~comp  # = _local.fill_holes(comp) & ~comp
            if island.sum() * px_area < 20.0:
                island = _dens_island(comp, bone_k[sl], px_area)
            if island.sum() * px_area >= 20.0:
                rows = np.nonzero(island.any(axis=1))[0]
                front = comp.copy()
                front[rows.max() + 1 + lig:] = False
                lab[sl][front] = 0
        holes = lab > 0
        lab, n = _local.cc_label(holes)
        areas, means = _label_areas_means(lab, n, a_k, px_area)
        ok = (areas >= area_mm2[0]) & (areas <= area_mm2[1]) & (means > -200) & (means < 200)
        if ok.any():
            keep = np.zeros(n + 1, bool)
            keep[1:] = ok
            cand[k][bx] = keep[lab]
            keep[1:] &= (areas >= CANAL_MIN_AREA_MM2) & (means < CANAL_MAX_MEAN_HU)
            cand_s[k][bx] = keep[lab]
    return cand, cand_s


def _label_areas_means(lab: np.ndarray, n: int, a: np.ndarray, px_area: float) -> tuple[np.ndarray, np.ndarray]:
    """``ndi.sum_labels(lab > 0, lab, idx) * px_area`` and ``ndi.mean(a, lab, idx)`` for idx = 1..n.

    scipy's own computation without its checks: label counts, and the values of *a* added label by
    label in raster order in float64 (``np.bincount`` with weights), divided by the counts."""
    flat = lab.ravel()
    cnt = np.bincount(flat, minlength=n + 1)[1:n + 1].astype(np.float64)
    return cnt * px_area, np.bincount(flat, weights=a.ravel(), minlength=n + 1)[1:n + 1] / cnt


def segment_spinal_canal(volume: Volume, bone: np.ndarray | None = None, body: np.ndarray | None = None,
                         area_mm2: tuple[float, float] = (30.0, 1100.0),
                         max_gap_mm: float = 40.0, extend_mm: float = 80.0,
                         bone_outline: np.ndarray | None = None) -> CanalResult:
    """The spinal canal: low-density region enclosed by the vertebral rings, connected across slices.

    Method: the (lenient) bone mask is closed along the cranio-caudal axis over about 8 mm and
    in-plane over 1.2 mm; per axial slice the holes of that ring with a canal-like area
    (``area_mm2``) and soft-tissue density are candidates (at C1 the part of the ring hole in
    front of the dens -- a bone island -- is cut off). Only typical sections (at least
    :data:`CANAL_MIN_AREA_MM2`, mean below :data:`CANAL_MAX_MEAN_HU`) build the track: at 3-5 mm
    voxels smaller or denser holes are mostly marrow pockets of the vertebral bodies, in line with
    the canal. The candidate 3D component spanning most slices near the midline is the canal;
    other candidates continuous with it (within 12 mm at the junction, gaps up to ``max_gap_mm``)
    are added; slices without a closed ring are filled with the section common to the nearest
    typical sections above and below (where they have none, or there is a typical section on one
    side only, the nearest one, placed on the line between the rings found next below and above).
    Beyond the last ring the section is carried slice by slice (re-centred on the soft-tissue channel): caudally to the image edge or the end of the provided
    region (slices without data, up to :data:`NODATA_BRIDGE_MM`, are skipped); cranially for
    :data:`BLIND_EXTENSION_MM` unconditionally and then, up to ``extend_mm``, as long as the channel
    is enclosed (bone within :data:`ENCLOSURE_RADIUS_MM` in at least :data:`ENCLOSED_FRACTION` of
    in-plane directions: rings that do not close at coarse voxels still bound it; above the
    foramen magnum it opens; the enclosure decides where the canal ends, not the shape of the
    carried section); ring components above the continued canal that are continuous with it
    (the same test, the offset capped at :data:`LINK_MAX_OFFSET_MM`, at least
    :data:`LINK_ABOVE_MIN_MM` long) are linked, the slices between filled and the continuation
    resumes from their top. Sections reading as marrow move back onto the CSF channel
    (:func:`_recentre_dense_sections`), and a section off the line of its neighbours onto it when
    it reads nearer CSF there (:func:`_realign_off_line_sections`). With ``bone_outline`` (the
    precise bone), the voxel rim the lenient mask took is given back. Engineering defaults unless
    cited at the constants.

    Parameters
    ----------
    volume : Volume
    bone : bool array (K, J, I), optional
        Bone mask used to find the rings (the ``lenient`` mask of :func:`segment_bone` is best).
    body : bool array (K, J, I), optional
    area_mm2 : (float, float)
        Plausible canal section area range.
    max_gap_mm : float
        Largest cranio-caudal gap between linked ring components.
    extend_mm : float
        Longest cranial continuation beyond the last closed ring (the first
        :data:`BLIND_EXTENSION_MM` unconditionally, the rest while the channel is enclosed).
    bone_outline : bool array (K, J, I), optional
        Precise bone outline (``BoneResult.bone``).

    Returns
    -------
    CanalResult

    Raises
    ------
    AnatomyError
        No enclosed canal-like region spanning at least 3 slices.
    """
    cn = Canon.of(volume)
    if body is None:
        body = segment_body(volume)
    if bone is None:
        br = segment_bone(volume, body)
        bone = br.lenient
        if bone_outline is None:
            bone_outline = br.bone
    a_c = cn.to_canon(volume.array)
    b_c = cn.to_canon(bone)
    body_c = cn.to_canon(body)
    sp = cn.spacing_mm
    cand_all, cand = _canal_candidates(b_c, a_c, body_c, sp, area_mm2)
    K = cand.shape[0]
    # the canal mask follows the track of typical sections (strict candidates; see _track)
    # (components above the canal found so far linked within LINK_MAX_OFFSET_MM: skull-base holes)
    canal, found, n_interp = _track(cand if cand.any() else cand_all, b_c, body_c, sp, max_gap_mm,
                                    cap_mm=LINK_MAX_OFFSET_MM, in_line=True)
    sm = _smooth(a_c, sp, 1.0)
    canal = _rings_in_filled_slices(canal, found, cand, sm, sp)
    k0, k1 = min(found), max(found)
    span_mm = (k1 - k0 + 1) * float(sp[0])
    if span_mm < MIN_RING_SPAN_MM:
        raise AnatomyError(f"No spinal canal found: closed vertebral rings over only {span_mm:.0f} mm "
                           f"(less than one vertebral body height, {MIN_RING_SPAN_MM:.0f} mm); the CT may hold "
                           "too little of the spine (e.g. cropped around the cord). Provide a spinal_canal mask.")
    notes: list[str] = []
    if n_interp:
        notes.append(f"spinal canal: {n_interp} slice(s) without a closed bone ring filled from the nearest slice")
    # CanalResult.centre_canon / found_slices: the track of all ring holes (lenient candidates),
    # which the C2 localisation (osteoplan.anatomy.c2) follows to the top of the column: at C1/C2
    # and 3-5 mm voxels the hole behind the dens is often small or partial-volumed
    legacy, found_l, _ = _track(cand_all, b_c, body_c, sp, max_gap_mm)
    centre = {k: tuple(float(x) for x in _local.center_of_mass(legacy[k]))
              for k in range(min(found_l), max(found_l) + 1) if legacy[k].any()}
    # beyond the last closed ring the canal continues: cranially up to the foramen magnum (at most
    # extend_mm), caudally to the edge of the image or of the provided region. The nearest section of
    # typical size is carried along and re-centred slice by slice on the enclosed soft tissue around
    # it (follows the curve of the spine). A voxel is enclosed when bone (or the edge of the provided
    # region) lies within ENCLOSURE_RADIUS_MM in most in-plane directions: at 3-5 mm voxels the
    # vertebral ring often does not close, but the channel is still bounded by the body, pedicles and
    # laminae; above the foramen magnum (posterior fossa) and in the open neck it is not. Slices
    # without data (outside the provided region) are skipped for up to NODATA_BRIDGE_MM.
    areas = canal.sum(axis=(1, 2))
    typical = float(np.median(areas[areas > 0]))
    soft = (sm > -100.0) & (sm < 150.0) & body_c & ~b_c
    wall = b_c | ~body_c
    grow = _disk(max(3.0 / float(sp[1]), 1.5))
    n_ext = {1: int(round(extend_mm / sp[0])), -1: K}
    ext_mm = {1: 0.0, -1: 0.0}
    # (end, direction, lowest and highest slice of the linked rings the carried section comes from)
    todo = [(k1, 1, k0, k1), (k0, -1, k0, k1)]
    while todo:
        end, step, src_lo, src_hi = todo.pop(0)
        src = _carry_source(canal.sum(axis=(1, 2)), found, end, step, src_lo, src_hi, typical)
        ref = canal[src].copy()
        rc = np.array(_local.center_of_mass(ref))
        # ... caudally placed on the end section (the spine curves between the two); cranially the
        # end section is C1's, cut in front at the dens: the carried section keeps its own place
        off = np.array(_local.center_of_mass(canal[end])) - rc if step < 0 else np.zeros(2)
        last = end
        d_ring = 0  # distance (slices) of the last closed ring met on the way
        for d in range(1, K):
            if d - d_ring > n_ext[step]:
                break
            k = end + step * d
            if not 0 <= k < K:
                break
            sec = ndi.shift(ref, off, order=0, mode="constant", cval=0) > 0
            grown = _local.binary_dilation(sec, grow)  # = ndi.binary_dilation, on the section's box
            if not (grown & body_c[k]).any():
                if abs(k - last) * float(sp[0]) > NODATA_BRIDGE_MM:
                    break
                continue  # a slice without data here (outside the provided region)
            # a closed ring of typical section on the way (a vertebra whose ring closes again):
            # its hole is the canal here and the continuation budget starts again from it
            rl, rn = _local.label(cand[k])
            hit = np.unique(rl[grown & (rl > 0)])
            if hit.size:
                ring = np.isin(rl, hit)
                canal[k] |= ring
                off = np.array(_local.center_of_mass(ring)) - rc
                d_ring, last = d, k
                ext_mm[step] = d * float(sp[0])
                continue
            encl = _enclosed(wall[k], grown, sp[1:], ENCLOSURE_RADIUS_MM) >= ENCLOSED_FRACTION
            blind = step < 0 or (d - d_ring) * float(sp[0]) <= BLIND_EXTENSION_MM
            enc = np.ones_like(grown) if blind else encl
            if step < 0 and (grown & soft[k] & encl).sum() >= 0.3 * sec.sum():
                enc = encl  # caudally: follow the enclosed channel where there is one
            near = grown & soft[k] & enc
            if near.sum() < 0.3 * sec.sum():
                break
            if step < 0:
                # caudally the spine curves: the carried section follows the CSF channel
                # (template match, see _follow_csf)
                off = _follow_csf(ref, off, sm[k], body_c[k], sp[1:])
            elif near.sum() < 0.9 * grown.sum():
                # cranially re-centre on the soft tissue around the section (at most one voxel per
                # slice) only where bone cuts into the neighbourhood (in open soft tissue the
                # section stays where it is)
                cc = np.array(_local.center_of_mass(near))
                off += np.clip(cc - (rc + off), -1.0, 1.0)
            carried = (ndi.shift(ref, off, order=0, mode="constant", cval=0) > 0) & soft[k]
            sec = carried & enc
            if step < 0 and sec.sum() < 0.5 * ref.sum():
                # a cropped CT (only a patch around the cord provided): take the enclosed soft
                # tissue within 3 mm of the carried section (conservative: the canal is avoided)
                sec = near
            if sec.sum() < 0.3 * ref.sum():
                break
            if step > 0:
                # cranially the enclosure decides whether the channel goes on, not the shape of its
                # section: between the arches of C1 and C2 the ring is open at the sides and behind,
                # so the back of a canal-sized section is less enclosed than its front, and clipping
                # it left the cord behind the section (OpenKBP pt_141, 4.7 mm voxels)
                sec = carried
            canal[k] |= sec
            last = k
            ext_mm[step] = d * float(sp[0])
        if step > 0:
            # rings above the continued canal (beyond max_gap_mm of the last linked ring, e.g. past
            # a level where the arch does not close and the channel is not enclosed): link them as
            # in _track, fill the slices between and continue cranially from the new top
            linked = _link_above(canal, cand, sp, max_gap_mm, b_c, body_c)
            if linked is not None:
                todo.insert(0, (linked[1], 1, linked[0], linked[1]))
    canal = _recentre_dense_sections(canal, sm, b_c, body_c, sp)
    canal = _realign_off_line_sections(canal, sm, b_c, body_c, sp)
    if bone_outline is not None:
        # the rings were found on the lenient (one voxel fatter) bone mask: give back the voxel
        # rim that the precise bone outline leaves free, partial-volume voxels of the wall included
        # when less than half bone (below the midpoint between CSF and this patient's wall, see
        # RIM_MAX_HU). Then voxels of CSF density (|HU - CSF_HU| <= CSF_TOLERANCE_HU) off the
        # precise bone with at least RIM_CSF_MIN_NEIGHBOURS of their 8 in-plane neighbours in the
        # canal (concavities of a carried/interpolated section smaller than the channel; a voxel
        # beyond a gap of the ring has fewer). The canal is avoided by the planner, so a rim voxel
        # too many is the safe side; the precise bone (dens, body) is never taken
        canal = _give_back_rim(canal, cn.to_canon(bone_outline), body_c, a_c)
    if ext_mm[1] or ext_mm[-1]:
        notes.append(f"spinal canal continued {ext_mm[1]:.0f} mm cranially and {ext_mm[-1]:.0f} mm caudally "
                     "beyond the last closed vertebral ring")
    return CanalResult(cn.from_canon(canal), centre, found, notes)


def _give_back_rim(canal: np.ndarray, bo: np.ndarray, body_c: np.ndarray, a_c: np.ndarray) -> np.ndarray:
    """The canal with the voxel rim of the wall given back (see :func:`segment_spinal_canal`), computed
    on the canal's bounding box grown by 2 voxels in-plane; equals :func:`_give_back_rim_reference`.

    Canonical (K, J, I) arrays: *canal* (non-empty), *bo* the precise bone, *body_c* the body, *a_c*
    the CT (HU). Why the box is exact: each step reaches one voxel in-plane (a 1 x 3 x 3
    neighbourhood), so the rim lies within 1 voxel of the canal and the CSF voxels added after it
    within 2; beyond the box every neighbourhood is empty, at the box edge the voxels outside it are
    not canal (as scipy's constant-0 border assumes), and the median wall HU reads the same voxels.
    Returns a new mask."""
    ring = np.ones((1, 3, 3), bool)
    box = _local.bbox(canal, (0, 2, 2))
    out = canal.copy()
    if box is None:
        return out
    cb, bob, bodyb, ab = canal[box], bo[box], body_c[box], a_c[box]
    dil = ndi.binary_dilation(cb, structure=ring)
    wall_v = dil & bob
    rim_max = max(0.5 * (CSF_HU + float(np.median(ab[wall_v]))), RIM_MAX_HU) if wall_v.any() else RIM_MAX_HU
    cb = cb | (dil & ~bob & bodyb & (ab < rim_max))
    csf = np.abs(ab - CSF_HU) <= CSF_TOLERANCE_HU
    nb = ndi.convolve(cb.astype(np.uint8), ring.astype(np.uint8), mode="constant")
    cb |= (nb >= RIM_CSF_MIN_NEIGHBOURS) & ~bob & bodyb & csf
    out[box] = cb
    return out


def _give_back_rim_reference(canal: np.ndarray, bo: np.ndarray, body_c: np.ndarray, a_c: np.ndarray) -> np.ndarray:
    """The whole-volume computation :func:`_give_back_rim` is checked against."""
    canal = canal.copy()
    ring = np.ones((1, 3, 3), bool)
    wall_v = ndi.binary_dilation(canal, structure=ring) & bo
    rim_max = max(0.5 * (CSF_HU + float(np.median(a_c[wall_v]))), RIM_MAX_HU) if wall_v.any() else RIM_MAX_HU
    canal |= ndi.binary_dilation(canal, structure=ring) & ~bo & body_c & (a_c < rim_max)
    csf = np.abs(a_c - CSF_HU) <= CSF_TOLERANCE_HU
    nb = ndi.convolve(canal.astype(np.uint8), ring.astype(np.uint8), mode="constant")
    canal |= (nb >= RIM_CSF_MIN_NEIGHBOURS) & ~bo & body_c & csf
    return canal


def _closing_in_planes(bz: np.ndarray, disk: np.ndarray) -> np.ndarray:
    """``ndi.binary_closing(bz, structure=disk[None])`` (in-plane closing of a (K, J, I) mask by the 2D
    *disk*, odd sides), computed on the mask's in-plane bounding box grown by the disk's half-size.

    Exact: the dilation is empty farther than the half-size from the mask, and scipy's erosion reads
    the outside of the image as False (border_value 0), which is what the box's outside holds."""
    h = disk.shape[0] // 2, disk.shape[1] // 2
    out = np.zeros(bz.shape, bool)
    box = _local.bbox(bz, (0, h[0], h[1]))
    if box is None:
        return out
    rects = _disk_rectangles(disk)
    if rects is None:  # not a union of centred rectangles: scipy's closing
        out[box] = ndi.binary_closing(bz[box], structure=disk[None])
        return out
    # a dilation by a union of rectangles is the union of the (separable) rectangle dilations, an
    # erosion by it the intersection of the rectangle erosions (outside = False, as scipy's border 0)
    sub = bz[box]
    dil = np.zeros(sub.shape, bool)
    for hj, hi in rects:
        dil |= _box_dilate(sub, (1, 2 * hj + 1, 2 * hi + 1))
    ero = np.ones(sub.shape, bool)
    for hj, hi in rects:
        ero &= _box_erode(dil, (1, 2 * hj + 1, 2 * hi + 1))
    out[box] = ero
    return out


def _disk_rectangles(disk: np.ndarray) -> list[tuple[int, int]] | None:
    """Half-sizes (hj, hi) of centred rectangles whose union is the 2D structuring element *disk*
    (odd sides, centred); None when it is not such a union (then scipy is used).

    A digital disk is symmetric and convex along rows and columns: row dj holds the columns
    -w(dj)..w(dj), w not increasing with |dj|, so it is the union over the distinct widths w of the
    rectangles w wide (half) and as many rows (half) as have at least that width."""
    d = np.asarray(disk, bool)
    cj, ci = d.shape[0] // 2, d.shape[1] // 2
    widths = {}
    for dj in range(-cj, cj + 1):
        cols = np.nonzero(d[cj + dj])[0]
        if cols.size:
            widths[dj] = int(cols.max()) - ci
    rects = sorted({(max(abs(dj) for dj, w2 in widths.items() if w2 >= w), w) for w in widths.values() if w >= 0})
    union = np.zeros_like(d)
    for hj, hi in rects:
        union[cj - hj:cj + hj + 1, ci - hi:ci + hi + 1] = True
    return rects if rects and np.array_equal(union, d) else None


#: Reach (mm) around a filled section within which a ring hole of the same slice replaces it.
#: Engineering default: about three 4 mm voxels of the coarse radiotherapy CTs (a neighbouring hole
#: a wall apart).
FILLED_RING_REACH_MM = 12.0


def _rings_in_filled_slices(canal: np.ndarray, found: list[int], cand: np.ndarray, sm: np.ndarray,
                            sp: np.ndarray) -> np.ndarray:
    """Slices of the track filled from the rings above and below (no ring linked there) take the
    ring holes of their own slice that lie within :data:`FILLED_RING_REACH_MM` of the filled section
    and read nearer CSF density (:data:`CSF_HU`, mean) than the filled section, when there are any.

    A filled section is a copy of a neighbour's; where the slice has its own hole of canal size and
    density next to it (a ring that the track did not link, e.g. beside a marrow pocket of the
    vertebral body taken above and below), the hole is the image evidence. Canonical (K, J, I)
    arrays; returns a new mask."""
    out = canal.copy()
    fset = set(found)
    for k in np.nonzero(canal.any(axis=(1, 2)))[0]:
        if k in fset or not cand[k].any():
            continue
        lab, n = _local.cc_label(cand[k])
        within = ndi.distance_transform_edt(~canal[k], sampling=sp[1:]) <= FILLED_RING_REACH_MM
        near = np.unique(lab[within & (lab > 0)])
        here = abs(float(sm[k][canal[k]].mean()) - CSF_HU)
        keep = [l for l in near if abs(float(sm[k][lab == l].mean()) - CSF_HU) < here]
        if keep:
            out[k] = np.isin(lab, keep)
    return out


#: Caudal continuation below the last closed ring: largest in-plane shift (mm) of the carried
#: section per slice, and the cost (HU per mm) of a shift against the section's mean deviation
#: from CSF density (engineering defaults: the cervico-thoracic curve moves the canal up to about
#: one 4 mm voxel per 2.5 mm slice backwards; measured on OpenKBP).
FOLLOW_STEP_MM = 6.0
FOLLOW_COST_HU_PER_MM = 2.0


def _follow_csf(ref: np.ndarray, off: np.ndarray, sm_k: np.ndarray, body_k: np.ndarray,
                sp2: np.ndarray) -> np.ndarray:
    """New in-plane offset of the carried section *ref* on one slice: the shift (within
    :data:`FOLLOW_STEP_MM` of *off*) whose voxels read nearest CSF density on average.

    Below the last closed ring the canal is a channel of CSF and cord (about :data:`CSF_HU`)
    bounded by bone; fat, air, muscle and marrow around it read farther from CSF, so the canal-sized
    template matches the channel (a template half in the bony wall reads hundreds of HU off). Each
    millimetre of shift costs :data:`FOLLOW_COST_HU_PER_MM` (the channel moves smoothly). Only the
    voxels inside the provided region (*body_k*) are read, and shifts with less than half the
    section inside it are not taken (a CT cropped to a patch around the spine); with none left,
    *off* is returned unchanged.
    2D arrays (J, I), canonical; *off* in voxels (j, i)."""
    jj, ii = np.nonzero(ref)
    J, I = ref.shape
    rj = max(int(round(FOLLOW_STEP_MM / float(sp2[0]))), 1)
    ri = max(int(round(FOLLOW_STEP_MM / float(sp2[1]))), 1)
    o = np.rint(off).astype(int)
    best, best_cost = off, np.inf
    for dj in range(-rj, rj + 1):
        for di in range(-ri, ri + 1):
            pj, pi_ = jj + o[0] + dj, ii + o[1] + di
            if pj.min() < 0 or pi_.min() < 0 or pj.max() >= J or pi_.max() >= I:
                continue
            inside = body_k[pj, pi_]
            if inside.mean() < 0.5:
                continue
            cost = float(np.mean(np.abs(sm_k[pj, pi_][inside] - CSF_HU))) + FOLLOW_COST_HU_PER_MM * float(
                np.hypot(dj * sp2[0], di * sp2[1]))
            if cost < best_cost:
                best, best_cost = np.array([o[0] + dj, o[1] + di], float), cost
    return best


def _recentre_dense_sections(canal: np.ndarray, sm: np.ndarray, b_c: np.ndarray, body_c: np.ndarray,
                             sp: np.ndarray) -> np.ndarray:
    """Move sections of the canal that read as marrow back onto the CSF channel behind them.

    At 3-5 mm voxels the marrow of a (thoracic) vertebral body forms holes in line with the canal,
    in front of it; sections taken there (linked, interpolated or carried below the last ring)
    read like marrow, while the canal (CSF and cord) reads about :data:`CSF_HU`. Slice by slice
    from the top down, a section denser than ``CSF_HU + CSF_TOLERANCE_HU`` is shifted in-plane --
    backwards only (the body lies in front of the canal), up to :data:`RECENTRE_MM` back from the
    section kept on the slice above and :data:`LATERAL_RECENTRE_MM` sideways -- to where its mean
    density is nearest CSF plus 1 HU per mm from the section kept on the slice above. The target
    must read within the tolerance of CSF, be at least 40 HU nearer to it, mostly (>= 70 %) off
    bone and bounded by bone (:data:`RECENTRE_ENCLOSED_FRACTION`); else the section stays.
    Sections reading as CSF always stay."""
    out = canal.copy()
    ks = [k for k in range(canal.shape[0]) if canal[k].any()]
    rj = max(int(round(RECENTRE_MM / float(sp[1]))), 1)
    ri = max(int(round(LATERAL_RECENTRE_MM / float(sp[2]))), 1)
    J, I = canal.shape[1:]
    wall = b_c | ~body_c
    prev_c = None
    for k in sorted(ks, reverse=True):
        sec = canal[k]
        jj, ii = np.nonzero(sec)
        cen = np.array([jj.mean(), ii.mean()])
        mean0 = float(np.mean(sm[k][jj, ii]))
        cur = float(np.mean(np.abs(sm[k][jj, ii] - CSF_HU)))
        if mean0 - CSF_HU <= CSF_TOLERANCE_HU:
            prev_c = (k, cen)
            continue
        ref = cen if prev_c is None or prev_c[0] - k > 3 else prev_c[1]
        # the marrow and the prevertebral tissue lie in front of the canal: search backwards only,
        # up to RECENTRE_MM around the channel kept on the slice above
        oj = int(round(ref[0] - cen[0]))
        # ... into a channel bounded by bone (the neural arch): not the open soft tissue behind it
        roi = np.zeros_like(sec)
        roi[max(int(jj.min()), 0):min(int(jj.max()) + max(oj, 0) + rj + 1, J),
            max(int(ii.min()) - ri, 0):min(int(ii.max()) + ri + 1, I)] = True
        encl = _enclosed(wall[k], roi, sp[1:], ENCLOSURE_RADIUS_MM)
        best = _recentre_search(jj, ii, cen, ref, max(oj, 0) + rj, ri, body_c[k], b_c[k], sm[k], encl, sp)
        if best is None or float(np.mean(np.abs(sm[k][jj + best[0], ii + best[1]] - CSF_HU))) > cur - 40.0:
            continue
        new = np.zeros_like(sec)
        new[jj + best[0], ii + best[1]] = True
        out[k] = new & ~b_c[k]
        prev_c = (k, cen + best)
    return out


def _recentre_search(jj: np.ndarray, ii: np.ndarray, cen: np.ndarray, ref: np.ndarray, dj_max: int, ri: int,
                     body_k: np.ndarray, bone_k: np.ndarray, sm_k: np.ndarray, encl: np.ndarray,
                     sp: np.ndarray) -> tuple[int, int] | None:
    """The shift (dj, di) of :func:`_recentre_dense_sections` for one section, all shifts at once.

    *jj*, *ii*: the section's voxels (int arrays); *cen* its centroid and *ref* the centre searched
    around ((j, i) voxels); shifts dj in 0..*dj_max* (backwards), di in -*ri*..*ri*; *body_k*,
    *bone_k* (bool), *sm_k* (smoothed HU) and *encl* (enclosure fractions) are the slice's 2D (J, I)
    arrays; *sp* (k, j, i) mm. A shift is admissible when the shifted section lies in the image and
    the body, at most 30 % on bone, its mean reads within :data:`CSF_TOLERANCE_HU` of :data:`CSF_HU`
    and its mean enclosure is at least :data:`RECENTRE_ENCLOSED_FRACTION`; the cheapest (mean
    |HU - CSF_HU| + mm from *ref*) wins, the first in (dj, di) order on a tie; None when none is
    admissible. Equals :func:`_recentre_search_reference` (the loop over shifts): the same per-shift
    reductions (each row of a C-ordered gather is reduced as the 1D array of one shift) and the
    same float operations, taken in the same order by ``argmin``.
    """
    J, I = body_k.shape
    dj = np.repeat(np.arange(0, dj_max + 1), 2 * ri + 1)
    di = np.tile(np.arange(-ri, ri + 1), dj_max + 1)
    ok = ((int(jj.min()) + dj >= 0) & (int(ii.min()) + di >= 0) & (int(jj.max()) + dj < J)
          & (int(ii.max()) + di < I))
    dj, di = dj[ok], di[ok]
    if dj.size == 0:
        return None
    pj = jj[None, :] + dj[:, None]
    pi_ = ii[None, :] + di[:, None]
    ok = body_k[pj, pi_].all(axis=1) & ~(bone_k[pj, pi_].mean(axis=1) > 0.3)
    dj, di, pj, pi_ = dj[ok], di[ok], pj[ok], pi_[ok]
    if dj.size == 0:
        return None
    vals = sm_k[pj, pi_]
    mean = vals.mean(axis=1).astype(np.float64)
    ok = ~((np.abs(mean - CSF_HU) > CSF_TOLERANCE_HU) | (encl[pj, pi_].mean(axis=1) < RECENTRE_ENCLOSED_FRACTION))
    dj, di, vals = dj[ok], di[ok], vals[ok]
    if dj.size == 0:
        return None
    dev = np.abs(vals - CSF_HU).mean(axis=1).astype(np.float64)
    cost = dev + np.hypot((cen[0] + dj - ref[0]) * sp[1], (cen[1] + di - ref[1]) * sp[2])
    t = int(np.argmin(cost))
    return int(dj[t]), int(di[t])


def _recentre_search_reference(jj: np.ndarray, ii: np.ndarray, cen: np.ndarray, ref: np.ndarray, dj_max: int,
                               ri: int, body_k: np.ndarray, bone_k: np.ndarray, sm_k: np.ndarray,
                               encl: np.ndarray, sp: np.ndarray) -> tuple[int, int] | None:
    """The loop over shifts :func:`_recentre_search` is checked against."""
    J, I = body_k.shape
    best, best_cost = None, np.inf
    for dj in range(0, dj_max + 1):
        for di in range(-ri, ri + 1):
            pj, pi_ = jj + dj, ii + di
            if pj.min() < 0 or pi_.min() < 0 or pj.max() >= J or pi_.max() >= I:
                continue
            if not body_k[pj, pi_].all() or bone_k[pj, pi_].mean() > 0.3:
                continue
            vals = sm_k[pj, pi_]
            if (abs(float(vals.mean()) - CSF_HU) > CSF_TOLERANCE_HU
                    or encl[pj, pi_].mean() < RECENTRE_ENCLOSED_FRACTION):
                continue
            c = cen + (dj, di)
            cost = float(np.mean(np.abs(vals - CSF_HU))) + float(np.hypot((c[0] - ref[0]) * sp[1],
                                                                         (c[1] - ref[1]) * sp[2]))
            if cost < best_cost:
                best, best_cost = (dj, di), cost
    return best


#: A section whose centroid lies farther than this (mm, in-plane) from the midpoint of the sections
#: on the slices just above and below, while those two lie within it of each other, is off the line
#: of the canal (engineering default: almost two 4-5 mm voxels of the radiotherapy CTs; the second
#: difference of a smooth spinal curve over two slices is well under a millimetre, the slope between
#: two slices enters only the neighbours' agreement). Measured on OpenKBP pt_31 (4.7 mm voxels):
#: sections left in the marrow of thoracic bodies 11-19 mm in front of the line through their
#: neighbours, which read on the CSF channel.
OFF_LINE_MM = 8.0


def _realign_off_line_sections(canal: np.ndarray, sm: np.ndarray, b_c: np.ndarray, body_c: np.ndarray,
                               sp: np.ndarray) -> np.ndarray:
    """Move a section lying off the line of its neighbours back onto it when it reads nearer CSF there.

    A section whose in-plane centroid lies more than :data:`OFF_LINE_MM` from the midpoint of the
    centroids of the sections on the slices just above and below (which lie within
    :data:`OFF_LINE_MM` of each other) is shifted by whole voxels onto that midpoint, off the bone and
    inside the body; the shift is kept when at least half of the section remains and its mean
    deviation from :data:`CSF_HU` is smaller than before. At 3-5 mm voxels a marrow pocket of a
    vertebral body, linked to the track, may keep a section in front of the canal on a slice whose
    mean reads within the CSF tolerance (so :func:`_recentre_dense_sections` leaves it) while the
    slices around it were moved onto the channel. Slices from the top down; canonical (K, J, I)
    arrays, *sp* (k, j, i) mm; returns a new mask."""
    out = canal.copy()
    ks = np.nonzero(canal.any(axis=(1, 2)))[0]
    have = set(int(k) for k in ks)
    sp2 = np.asarray(sp[1:], float)
    centres: dict[int, np.ndarray] = {}  # centroid of out[k], computed once until out[k] changes

    def centre(q: int) -> np.ndarray:
        if q not in centres:
            centres[q] = np.array(_local.center_of_mass(out[q]))
        return centres[q]

    for k in sorted(have, reverse=True):
        if k - 1 not in have or k + 1 not in have:
            continue
        c_lo, c_hi, c_k = centre(k - 1), centre(k + 1), centre(k)
        mid = 0.5 * (c_lo + c_hi)
        if (np.linalg.norm((c_hi - c_lo) * sp2) > OFF_LINE_MM
                or np.linalg.norm((c_k - mid) * sp2) <= OFF_LINE_MM):
            continue
        dj, di = np.rint(mid - c_k).astype(int)
        moved = ndi.shift(out[k], (dj, di), order=0, mode="constant", cval=0) > 0
        moved &= ~b_c[k] & body_c[k]
        if moved.sum() < 0.5 * out[k].sum():
            continue
        if float(np.mean(np.abs(sm[k][moved] - CSF_HU))) < float(np.mean(np.abs(sm[k][out[k]] - CSF_HU))):
            out[k] = moved
            centres.pop(k, None)
    return out
