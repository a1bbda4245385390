"""Vertebrae and their levels from the image alone (no masks): bodies along the canal, levels from the ribs.

Method (canonical view of :class:`~osteoplan.anatomy.segment.Canon`: k -> superior, j -> posterior,
i -> patient left):

1. bone and body by :mod:`osteoplan.anatomy.segment`, the spinal canal by :mod:`osteoplan.anatomy.canal`
   (reused as is: its ring-hole tracking is not cervical-specific, only its size defaults are; it was
   checked on the thoracic spine of ``spine-chest-lidc``);
2. the vertebral bodies are the bone in front of the canal: per axial slice, the centroid of the bone
   in a window anterior to the canal (:data:`BODY_WINDOW_MM`), smoothed along the spine;
3. the discs are the minima of the mean density in a small disk around that body line (a disc reads
   70-110 HU, cancellous bone more, endplates much more); vertebrae are the intervals between discs
   (incomplete ones at the ends of the field of view are dropped);
4. ribs: bone more than :data:`SPINE_HALF_WIDTH_MM` from the canal, in the posterior part of the chest,
   split into 3D pieces; a piece whose medial end is near the spine and that reaches far laterally
   is a rib, assigned to the vertebra at the height of its medial end (the costotransverse joint);
5. levels: T1-T12 carry ribs, C7 and L1 none; the lowest rib-bearing vertebra is T12 (Gray's Anatomy,
   41st ed.). The count is sure only when it is closed at both ends or anchored by the user.

Known failure modes (reported through the confidence): 11 or 13 rib pairs, a hypoplastic 12th rib
missed (T11 then read as T12: the classic wrong-level error), lumbar ribs, a field of view that does
not show the vertebra below the last rib.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from osteoplan.anatomy.labelmap import SPINE_LEVELS, LabelMap
from osteoplan.errors import AnatomyError
from osteoplan.imaging.volume import Volume
from osteoplan.anatomy import _local

#: Window in front of the canal where the vertebral body is looked for: from the canal centre, 5-60 mm
#: anteriorly and 20 mm to each side (engineering default; adult thoracolumbar bodies are 25-50 mm deep).
BODY_WINDOW_MM = (5.0, 60.0, 20.0)
#: Radius (mm) of the disk around the body line in which the density profile is read (engineering default).
PROFILE_RADIUS_MM = 5.0
#: Width (mm) of the profile closing that isolates disc valleys, and the least valley depth (HU) taken as a
#: disc (engineering defaults, no published source; thoracolumbar discs are 4-10 mm high).
DISC_VALLEY_MM = 10.0
DISC_MIN_DEPTH_HU = 15.0
#: Cost (HU of valley depth) of a relative change of 100 % between consecutive vertebra heights when the
#: discs are chosen among the valleys (engineering default, no published source: vertebral heights change
#: by a few percent per level along the thoracolumbar spine, so a spurious valley in a body, which halves
#: a height, or a missed disc, which doubles it, must outweigh its depth).
HEIGHT_CHANGE_COST_HU = 240.0
#: Shortest vertebra (body + one disc) accepted between two disc minima (mm; engineering default; the
#: shortest thoracolumbar bodies, upper thoracic, are about 15 mm plus a disc).
MIN_LEVEL_MM = 12.0
#: Longest vertebra between two disc minima (mm; engineering default; L3-L5 bodies are up to ~30 mm plus a disc).
MAX_LEVEL_MM = 45.0
#: Lateral distance from the canal (mm) inside which bone counts as spine when ribs are separated
#: (engineering default: thoracic transverse processes reach about 30-40 mm from the midline).
SPINE_HALF_WIDTH_MM = 32.0
#: A rib's medial end lies within this distance of the canal (mm) and it reaches at least
#: :data:`RIB_MIN_REACH_MM` laterally (engineering defaults, no published source).
RIB_MEDIAL_MAX_MM = 45.0
RIB_MIN_REACH_MM = 60.0

#: The usual sequence of levels counted from the ribs (transitional T13/L6 are named only by provided labels).
COUNT_SEQUENCE: tuple[str, ...] = tuple(lv for lv in SPINE_LEVELS if lv not in ("T13", "L6"))


@dataclass
class ClassicalLevels:
    """What :func:`classical_vertebrae` found (see :func:`osteoplan.anatomy.spine.find_spine`)."""

    verts: list
    method: str
    confidence: float
    request: str | None
    discs_mm: list[float] = field(default_factory=list)
    profile: dict = field(default_factory=dict)
    ribs: dict[str, list[str]] = field(default_factory=dict)


def assign_ribs(rib_ends: list[tuple[float, str]], intervals: list[tuple[int, int]]
                ) -> tuple[dict[int, set[str]], list[str]]:
    """Assign ribs to vertebrae by COUNTING them upwards from the lowest one, per side.

    The lowest rib belongs to the vertebra whose interval holds its medial end (the 11th and 12th ribs
    articulate with their own body only); the n-th rib above it to the n-th vertebra above. Assigning
    every rib by the interval holding its end would be ambiguous in the mid-thorax, where rib heads
    articulate across the disc above their vertebra (T2-T9: demi-facets; Gray's Anatomy). A rib whose end
    lies more than one vertebra away from the vertebra it is counted to is reported (a missed or extra rib).

    Parameters
    ----------
    rib_ends : list of (float, str)
        (canonical slice of the rib's medial end, side).
    intervals : list of (int, int)
        Vertebrae as (lower disc, upper disc) canonical slices, caudal first.

    Returns
    -------
    ribs_at : dict[int, set of str]
        Vertebra index -> sides bearing a rib.
    notes : list of str
    """
    ribs_at: dict[int, set[str]] = {}
    notes: list[str] = []
    if not intervals:
        return ribs_at, notes
    starts = np.array([d0 for d0, _ in intervals], float)
    ends = np.array([d1 for _, d1 in intervals], float)
    centres = 0.5 * (starts + ends)
    for side in ("left", "right"):
        ks = sorted(k for k, sd in rib_ends if sd == side and starts[0] <= k < ends[-1])
        if not ks:
            continue
        inside = np.nonzero((starts <= ks[0]) & (ks[0] < ends))[0]
        low = int(inside[0]) if inside.size else int(np.argmin(np.abs(centres - ks[0])))
        off = 0
        for n, k in enumerate(ks):
            i = low + n
            if i >= len(intervals):
                break
            height = ends[i] - starts[i]
            if abs(k - centres[i]) > 1.5 * height and off == 0:
                off = 1
                notes.append(f"{side} ribs: the rib counted to the {n + 1}-th vertebra above the lowest rib lies more "
                             "than one vertebra away from it (a rib missed or an extra one?)")
            ribs_at.setdefault(i, set()).add(side)
    return ribs_at, notes


def _regular_discs(cand: np.ndarray, depth: np.ndarray, step_mm: float) -> list[int]:
    """Choose the discs among candidate valleys: the chain maximising the summed valley depth minus
    :data:`HEIGHT_CHANGE_COST_HU` times the squared relative change between consecutive gaps, every gap
    between :data:`MIN_LEVEL_MM` and :data:`MAX_LEVEL_MM` (dynamic programming over pairs of discs)."""
    c = [int(x) for x in cand]
    n = len(c)
    if n < 2:
        return c
    g_ok = lambda i, j: MIN_LEVEL_MM <= (c[j] - c[i]) * step_mm <= MAX_LEVEL_MM  # noqa: E731
    best: dict[tuple[int, int], tuple[float, tuple[int, int] | None]] = {}
    for j in range(n):
        for i in range(j):
            if not g_ok(i, j):
                continue
            val = float(depth[i] + depth[j])
            prev = None
            for h in range(i):
                if (h, i) not in best:
                    continue
                g0, g1 = c[i] - c[h], c[j] - c[i]
                v2 = best[(h, i)][0] + float(depth[j]) - HEIGHT_CHANGE_COST_HU * ((g1 - g0) / g0) ** 2
                if v2 > val:
                    val, prev = v2, (h, i)
            best[(i, j)] = (val, prev)
    if not best:
        return [c[int(np.argmax(depth))]]
    key: tuple[int, int] | None = max(best, key=lambda kk: best[kk][0])
    chain = [key[1], key[0]]
    while best[key][1] is not None:
        key = best[key][1]
        chain.append(key[0])
    return sorted(c[i] for i in chain)


def _smooth1d(x: np.ndarray, w: np.ndarray, sigma: float) -> np.ndarray:
    num = ndi.gaussian_filter1d(x * w, sigma, mode="nearest")
    den = ndi.gaussian_filter1d(w.astype(float), sigma, mode="nearest")
    return num / np.maximum(den, 1e-6)


def classical_vertebrae(volume: Volume, labelmap: LabelMap, level_point, msgs: list[str]) -> ClassicalLevels:
    """Find vertebrae and name their levels from the image (see the module docstring).

    Parameters
    ----------
    volume : Volume
    labelmap : LabelMap
        ``body``, ``bone``, ``spinal_canal`` are reused when present; ``body``, ``bone`` and
        ``spinal_canal`` are added when computed here (source ``classical``).
    level_point : (str, (3,) array) or None
        Level name and a point inside that vertebra (LPS mm): anchors the naming.
    msgs : list of str
        Receives what was done and why.

    Returns
    -------
    ClassicalLevels
        ``verts`` are :class:`osteoplan.anatomy.spine._Vert` (masks on the volume grid).

    Raises
    ------
    AnatomyError
        No canal or no vertebra found, or no rib and no level point (levels cannot be named).
    """
    from osteoplan.anatomy.canal import segment_spinal_canal
    from osteoplan.anatomy.segment import Canon, fill_holes_in_planes, segment_body, segment_bone
    from osteoplan.anatomy.spine import _Vert

    cn = Canon.of(volume)
    sp = cn.spacing_mm
    body = labelmap.get("body") if labelmap.has("body") else segment_body(volume)
    if not labelmap.has("body"):
        labelmap.add("body", body, "classical")
    lenient = None
    if labelmap.has("bone"):
        bone = labelmap.get("bone")
    else:
        br = segment_bone(volume, body)
        bone, lenient = br.bone, br.lenient
        labelmap.add("bone", bone, "classical")
    if labelmap.has("spinal_canal"):
        canal = labelmap.get("spinal_canal")
    else:
        canal = segment_spinal_canal(volume, lenient if lenient is not None else bone, body, bone_outline=bone).mask
        labelmap.add("spinal_canal", canal, "classical")
        msgs.append("spinal_canal: classical (osteoplan.anatomy.canal, ring holes tracked across slices)")
    a = cn.to_canon(volume.array)
    # the vertebrae themselves: every voxel denser than cancellous bone (threshold relative to this patient's
    # soft tissue, as in osteoplan.anatomy.segment.segment_bone), lightly smoothed. The general bone mask keeps
    # cancellous bone only where enclosed by cortex when it believes the CT has contrast, which can leave a
    # vertebral body hollow; near the spine nothing but bone and (with contrast) the aorta is this dense, and
    # the aorta is cut away below by keeping the connected vertebra
    from osteoplan.anatomy.segment import CANCELLOUS_MAX_HU, CANCELLOUS_MIN_HU, _smooth, soft_tissue_stats

    b_body = cn.to_canon(body)
    mu, sd = soft_tissue_stats(a[b_body][:: max(1, int(b_body.sum()) // 500_000)])
    t_c = float(np.clip(mu + max(6.0 * sd, 100.0), CANCELLOUS_MIN_HU, CANCELLOUS_MAX_HU))
    dense = (_smooth(a, sp) > t_c) & b_body
    b = cn.to_canon(bone)
    c = cn.to_canon(canal)
    K = c.shape[0]
    has = c.any(axis=(1, 2))
    if has.sum() < 10:
        raise AnatomyError("No spinal canal found in this CT; vertebrae cannot be found without masks "
                           "(provide vertebra masks with --masks).")
    ks = np.arange(K)
    cj = np.zeros(K)
    ci = np.zeros(K)
    for k in np.nonzero(has)[0]:
        jj, ii = np.nonzero(c[k])
        cj[k], ci[k] = jj.mean(), ii.mean()
    cj = np.interp(ks, ks[has], cj[has])
    ci = np.interp(ks, ks[has], ci[has])
    sig_k = 5.0 / sp[0]
    cj, ci = ndi.gaussian_filter1d(cj, sig_k, mode="nearest"), ndi.gaussian_filter1d(ci, sig_k, mode="nearest")
    # body line
    a0, a1, half = BODY_WINDOW_MM
    bj = np.zeros(K)
    bi = np.zeros(K)
    area = np.zeros(K)
    J, I = c.shape[1:]
    for k in range(K):
        j_lo = int(max(cj[k] - a1 / sp[1], 0))
        j_hi = int(max(cj[k] - a0 / sp[1], 0))
        i_lo = int(max(ci[k] - half / sp[2], 0))
        i_hi = int(min(ci[k] + half / sp[2] + 1, I))
        win = b[k, j_lo:j_hi, i_lo:i_hi]
        if win.any():
            jj, ii = np.nonzero(win)
            bj[k], bi[k], area[k] = jj.mean() + j_lo, ii.mean() + i_lo, len(jj)
    ok = area > 0
    if ok.sum() < 10:
        raise AnatomyError("No vertebral body found in front of the spinal canal; provide vertebra masks with --masks.")
    bj = _smooth1d(np.where(ok, bj, 0), area, 8.0 / sp[0])
    bi = _smooth1d(np.where(ok, bi, 0), area, 8.0 / sp[0])
    # density profile around the body line, in disks normal to it (the discs are tilted by the kyphosis and
    # lordosis: a disk normal to the spine's line lies in the disc plane, an axial one would cut across it)
    r = PROFILE_RADIUS_MM
    line_mm = np.stack([ks * sp[0], bj * sp[1], bi * sp[2]], 1)
    tan = np.gradient(ndi.gaussian_filter1d(line_mm, 10.0 / sp[0], axis=0, mode="nearest"), axis=0)
    tan /= np.linalg.norm(tan, axis=1, keepdims=True)
    e1 = np.cross(tan, [0.0, 0.0, 1.0])
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(tan, e1)
    rr, th = np.meshgrid(np.arange(0.0, r + 1e-6, 1.0), np.linspace(0, 2 * np.pi, 16, endpoint=False))
    u, w_ = (rr * np.cos(th)).ravel(), (rr * np.sin(th)).ravel()
    pts = line_mm[:, None, :] + u[None, :, None] * e1[:, None, :] + w_[None, :, None] * e2[:, None, :]
    vals = ndi.map_coordinates(a, (pts / sp).reshape(-1, 3).T, order=1, mode="nearest").reshape(K, -1)
    prof = vals.mean(1)
    prof_s = ndi.gaussian_filter1d(prof, 0.5 / sp[0], mode="nearest")
    from scipy.signal import find_peaks

    # a disc is a thin dark band between two dense endplates (degenerate discs are only 2-3 mm thick), unlike
    # the broad, unflanked dip of a body's centre (basivertebral veins, osteoporosis): the score of a slice is
    # how far it lies below the LOWER of the highest values within DISC_VALLEY_MM / 2 above and below it
    w = max(int(round(0.5 * DISC_VALLEY_MM / sp[0])), 1)
    padded = np.pad(prof_s, w, mode="edge")
    n_k = len(prof_s)
    above = np.max([padded[w + d:w + d + n_k] for d in range(1, w + 1)], axis=0)
    below = np.max([padded[w - d:w - d + n_k] for d in range(1, w + 1)], axis=0)
    flank = np.minimum(above, below)
    tophat = np.maximum(flank - prof_s, 0.0)
    pk, _ = find_peaks(tophat, distance=max(int(4.0 / sp[0]), 1), prominence=DISC_MIN_DEPTH_HU)
    discs = _regular_discs(pk, tophat[pk], sp[0])
    msgs.append(f"classical spine: {len(discs)} disc(s) found as density minima along the vertebral bodies")
    intervals = [(d0, d1) for d0, d1 in zip(discs[:-1], discs[1:])
                 if MIN_LEVEL_MM <= (d1 - d0) * sp[0] <= MAX_LEVEL_MM]
    if not intervals:
        raise AnatomyError("No complete vertebra (between two discs) found; provide vertebra masks with --masks.")
    # ribs
    ribs_at: dict[int, set[str]] = {}
    lat_mm = (np.arange(I)[None, :] - ci[:, None]) * sp[2]  # (K, I)
    front = bj - 0.0
    post_zone = (np.arange(J)[None, :] >= (front[:, None] - 10.0 / sp[1]))  # (K, J): behind the bodies' front
    cand = b & (np.abs(lat_mm)[:, None, :] > SPINE_HALF_WIDTH_MM) & post_zone[:, :, None]
    lab, n = _local.cc_label(cand)
    rib_list = []
    if n:
        objs = ndi.find_objects(lab)
        vox_ml = float(np.prod(sp)) / 1000.0
        sizes = np.bincount(lab.ravel())
        for l in range(1, n + 1):
            if sizes[l] * vox_ml < 0.3 or objs[l - 1] is None:
                continue
            sl = objs[l - 1]
            pts = np.argwhere(lab[sl] == l) + np.array([s.start for s in sl])
            lat = (pts[:, 2] - ci[pts[:, 0]]) * sp[2]
            alat = np.abs(lat)
            if alat.min() > RIB_MEDIAL_MAX_MM or alat.max() < RIB_MIN_REACH_MM:
                continue
            side = "left" if np.median(lat) > 0 else "right"
            near = pts[alat <= alat.min() + 4.0]
            k_end = float(near[:, 0].mean())
            rib_list.append((k_end, side))
    ribs_at, rib_notes = assign_ribs(rib_list, intervals)
    msgs.extend(rib_notes)
    # name the levels
    anchor = None
    if level_point is not None:
        lv, p = level_point
        kp = float(cn.index_from_original(volume.world_to_index(np.asarray(p)[None]))[0][0])
        for n_i, (d0, d1) in enumerate(intervals):
            if d0 <= kp < d1:
                anchor = (n_i, lv)
        if anchor is None:
            raise AnatomyError(f"The level point of {lv} is not inside any vertebra found; give a point inside "
                               "the vertebral body.")
    names, conf, method, notes = count_levels(len(intervals), ribs_at, anchor)
    msgs.extend(notes)
    rib_names = {names[n_i]: sorted(sd) for n_i, sd in ribs_at.items() if n_i in names}
    request = None
    if conf < 0.8:
        lowest = names.get(min(ribs_at)) if ribs_at else None
        request = (f"Levels counted from the ribs with low confidence ({conf:.2f}): give one level with "
                   f"--level-point {lowest or 'T12'}:x,y,z (LPS mm, a point inside that vertebra).")
    # vertebra masks: bone in the slab between the two discs, around the canal
    verts = []
    lat_lim = SPINE_HALF_WIDTH_MM
    for n_i, (d0, d1) in enumerate(intervals):
        if n_i not in names:
            continue
        kk = np.arange(d0 + 1, d1)
        if kk.size == 0:
            continue
        # work in the slab's box (plus the closing margin), not the whole CT
        r = np.maximum(np.round(2.0 / sp).astype(int), 1)
        jl = np.maximum((bj[kk] - 35.0 / sp[1]).astype(int), 0)
        jh = np.minimum((cj[kk] + 55.0 / sp[1]).astype(int), J)
        il = np.maximum((ci[kk] - lat_lim / sp[2]).astype(int), 0)
        ih = np.minimum((ci[kk] + lat_lim / sp[2] + 1).astype(int), I)
        box = (slice(max(kk[0] - r[0], 0), min(kk[-1] + 1 + r[0], K)), slice(max(int(jl.min()) - r[1], 0), min(int(jh.max()) + r[1], J)),
               slice(max(int(il.min()) - r[2], 0), min(int(ih.max()) + r[2], I)))
        o = np.array([sl.start for sl in box])
        m = np.zeros(tuple(sl.stop - sl.start for sl in box), bool)
        for n_k, k in enumerate(kk):
            m[k - o[0], jl[n_k] - o[1]:jh[n_k] - o[1], il[n_k] - o[2]:ih[n_k] - o[2]] = \
                dense[k, jl[n_k]:jh[n_k], il[n_k]:ih[n_k]]
        # the bone mask may hold only the cortex of a body (its cancellous core below the threshold): fill the
        # rings of its axial, coronal and sagittal sections, then give the canal back (axial rings may be open
        # at the basivertebral foramen; coronal sections are closed by the endplates); a 2 mm closing first
        # bridges gaps of a thin, partial-volumed cortex
        ball = np.ones(tuple(2 * x + 1 for x in r), bool)
        m = ndi.binary_closing(np.pad(m, [(x, x) for x in r]), structure=ball)[r[0]:-r[0], r[1]:-r[1], r[2]:-r[2]] | m
        m = (fill_holes_in_planes(m, 0) | fill_holes_in_planes(m, 1) | fill_holes_in_planes(m, 2)) & ~c[box]
        lab2, n2 = _local.cc_label(m)
        if n2 > 1:
            sizes = np.bincount(lab2.ravel())
            sizes[0] = 0
            keep = np.zeros(n2 + 1, bool)
            keep[int(np.argmax(sizes))] = True  # the vertebra, not the aorta
            m = keep[lab2]
        if not m.any():
            continue
        full = np.zeros(c.shape, bool)
        full[box] = m
        m = full
        verts.append(_Vert(names[n_i], cn.from_canon(m), "classical"))
    verts.sort(key=lambda v: SPINE_LEVELS.index(v.level))
    disc_mm = [float(volume.index_to_world(cn.index_to_original(np.array([[d, bj[d], bi[d]]])))[0][2]) for d in discs]
    prof_info = {"k": ks, "hu": prof_s, "discs_k": discs, "body_j": bj, "body_i": bi, "canal_j": cj, "canal_i": ci,
                 "ribs": rib_list, "intervals": intervals, "names": names}
    return ClassicalLevels(verts, method, conf, request, discs_mm=disc_mm, ribs=rib_names, profile=prof_info)


def count_levels(n_levels: int, ribs_at: dict[int, set[str]], anchor: tuple[int, str] | None = None
                 ) -> tuple[dict[int, str], float, str, list[str]]:
    """Name consecutive vertebrae from the ribs they carry (and an optional anchor).

    Parameters
    ----------
    n_levels : int
        Number of consecutive vertebrae found, index 0 the most CAUDAL.
    ribs_at : dict[int, set of str]
        Vertebra index -> sides (``"left"``, ``"right"``) where a rib was found.
    anchor : (int, str), optional
        (vertebra index, level name) given by the user: it wins over the count.

    Returns
    -------
    names : dict[int, str]
        Vertebra index -> level name (indices outside C1-S1 are left out).
    confidence : float
        0..1. The lowest rib-bearing vertebra is T12 (T1-T12 carry ribs; Gray's Anatomy). 0.5 to start;
        +0.15 when that rib is found on both sides; +0.15 when a rib-free vertebra (L1) is in view below it,
        else at most 0.4 (the 12th rib may lie below the field of view); +0.2 when a rib-free vertebra
        (C7) closes the count above it with exactly 12 contiguous rib-bearing vertebrae, else at most 0.5
        when the count is closed but is not 12, or the rib-bearing vertebrae are not contiguous. With an
        anchor: 0.98 when the count agrees, 0.9 when it does not (the anchor is followed) or there is no
        count. Engineering defaults, no published source.
    method : str
        ``"classical:rib-count"`` or ``"provided:level-point"``.
    notes : list of str

    Raises
    ------
    AnatomyError
        No rib and no anchor: levels cannot be named.
    """
    names: dict[int, str] = {}
    notes: list[str] = []
    conf = 0.0
    method = "classical:rib-count"
    bearing = sorted(i for i, sd in ribs_at.items() if sd and 0 <= i < n_levels)
    if bearing:
        low, top = bearing[0], bearing[-1]
        t12 = COUNT_SEQUENCE.index("T12")
        for n_i in range(n_levels):
            idx = t12 - (n_i - low)
            if 0 <= idx < len(COUNT_SEQUENCE):
                names[n_i] = COUNT_SEQUENCE[idx]
        n_bear = top - low + 1
        contiguous = len(bearing) == n_bear
        why = []
        conf = 0.5
        if set(ribs_at[low]) == {"left", "right"}:
            conf += 0.15
        else:
            why.append(f"the lowest rib was found on the {', '.join(sorted(ribs_at[low]))} side only")
        if low > 0:
            conf += 0.15
        else:
            conf = min(conf, 0.4)
            why.append("the lowest vertebra in view carries ribs: the 12th rib may lie below the field of view")
        if top < n_levels - 1:
            if n_bear == 12 and contiguous:
                conf += 0.2
            else:
                conf = min(conf, 0.5)
                why.append(f"{n_bear} vertebrae from the lowest to the highest rib-bearing one (12 expected)")
        else:
            why.append("the upper end of the thoracic spine is not closed by a rib-free vertebra in view")
        if not contiguous:
            conf = min(conf, 0.5)
            why.append("rib-bearing vertebrae are not contiguous (a rib missed or a spurious disc?)")
        conf = float(min(conf, 0.95))
        notes.append(f"levels counted from the ribs: {len(bearing)} rib-bearing vertebrae, the lowest named T12; "
                     f"confidence {conf:.2f}" + (f" ({'; '.join(why)})" if why else ""))
    if anchor is not None:
        n_a, lv = anchor
        seq = COUNT_SEQUENCE if lv in COUNT_SEQUENCE else SPINE_LEVELS
        li = seq.index(lv)
        named = {n_i: seq[li - (n_i - n_a)] for n_i in range(n_levels) if 0 <= li - (n_i - n_a) < len(seq)}
        if names and names.get(n_a) != lv:
            notes.append(f"LEVEL DISAGREEMENT: the rib count names the vertebra of the level point {names.get(n_a)}, "
                         f"the level point says {lv}; the level point was followed")
            conf = 0.9
        else:
            conf = 0.98 if names else 0.9
        names = named
        method = "provided:level-point"
    if not names:
        raise AnatomyError("No rib found: levels cannot be counted on this CT. Give one level with "
                           "--level-point LEVEL:x,y,z (LPS mm, a point inside that vertebra).")
    return names, conf, method, notes
