"""Automatic localisation of C2 (axis) and its dens on a head/neck CT, with landmarks.

Method (classical, no trained weights)
--------------------------------------
1. The spinal canal is found first (:func:`osteoplan.anatomy.canal.segment_spinal_canal`);
   it ends cranially at the foramen magnum.
2. Along the canal, a ray from the canal centre towards anterior finds the posterior surface of
   the anterior column (dens at C1 level, then the vertebral bodies). The bone fraction in a small
   box just anterior to the canal gives a cranio-caudal profile whose runs are vertebral levels,
   separated by the joint/disc gaps. Walking down from the foramen magnum, the first run at
   least 20 mm tall is C2 (dens + body: anteroinferior body to dens tip 37.6 +/- 3.3 mm,
   Eur Spine J 2009;18:271); shorter runs above it (basion, apical ossicles) are skipped.
   An optional user point inside C2 decides the level instead (:func:`_find_level_at_point`): it
   is moved to the nearest bone (refused when farther than :data:`HINT_MAX_BONE_DISTANCE_MM`), the
   column is cut at the last disc above it and C2 at the first disc below it, the vertebra grown
   there must reach it, and the plausibility gate still applies ("C2 candidate rejected at the
   given point: ..."); no other level is tried.
3. The whole vertebra is grown from markers (C2 column; bone above = C1/skull; runs below =
   C3 and lower) by a marker-controlled watershed on the inverted, smoothed HU inside the bone
   mask, so that the low-density joint spaces separate C2 from C1 and C3.
4. Landmarks (LPS mm): dens axis by principal components of the dens voxels, cross-sections
   perpendicular to it give the waist (smallest area in the lower 60 % of the dens) and its
   smallest calliper diameter, the apex (most cranial point along the axis), the body centre and
   the anteroinferior body point (extreme of the body towards anterior + caudal in the
   mid-sagittal band).

5. The C2/C3 disc is followed under the anterior body (it slopes down anteriorly): what the
   watershed let through a thin disc (e.g. the anterosuperior corner of C3) is cut off.
6. Plausibility gate (:func:`plausibility_problems`): anteroinferior body to dens apex within
   37.6 +/- 3 x 3.3 mm widened by the voxel size, dens continuous with its body, apex in front of
   the canal and on its midline. A candidate that looks too high (skull base, C1 ring) is followed
   by the next structure down the column (up to :data:`MAX_LEVEL_ATTEMPTS` levels); when none
   passes, :class:`C2CandidateRejected` (an AnatomyError) says why, so the pipeline reports
   "C2 NOT located: C2 candidate rejected: ..." instead of landmarks the planner would aim at.
   An independent check of the level on radiotherapy CTs (:func:`brainstem_apex_offset_mm`,
   ``benchmarks/openkbp_c2.py``) uses the Brainstem contour, never the locator.

The 20 mm run height, box sizes and confidence weights are engineering defaults (no published
source) unless cited.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from osteoplan.anatomy import _local
from osteoplan.anatomy.landmarks import DensLandmarks
from osteoplan.anatomy.canal import CanalResult, segment_spinal_canal
from osteoplan.anatomy.segment import Canon, _smooth, segment_body, segment_bone
from osteoplan.errors import AnatomyError, InputError
from osteoplan.imaging.volume import Volume

#: Minimum cranio-caudal height of the C2 run (dens + body), mm (engineering default).
MIN_C2_HEIGHT_MM = 20.0
#: Population priors used for the confidence (Eur Spine J 2009;18:271).
PRIOR_AI_TO_APEX_MM = (37.6, 3.3)
PRIOR_DENS_DIAMETER_MM = (6.5, 1.9)
#: Expected ``brainstem_bottom_z - dens_apex_z`` (mm) for an independent check of the C2 level with a
#: radiotherapy Brainstem contour: 0 mm when the contour stops at the dens tip (consensus, Brouwer et
#: al., Radiother Oncol 2015;117:83) to the basion-dens interval when it stops at the foramen magnum
#: (BDI < 8.5 mm in 95 % of adults on CT, Rojas et al., AJNR 2007;28:1819; < 12 mm on radiographs,
#: Harris et al., AJR 1994;162:881), widened by 6 mm each side for two 3 mm slices of rounding (contour
#: bottom and apex); the 6 mm widening is an engineering tolerance.
BRAINSTEM_APEX_BAND_MM = (-6.0, 18.0)


@dataclass
class _Column:
    """Canonical per-slice description of the anterior column (vertebral bodies / dens) along the canal."""

    ks: np.ndarray  # canonical slices with a canal (ascending = towards superior)
    ci: np.ndarray  # canal centre column (smoothed)
    ja: np.ndarray  # first bone row anterior to the canal (nan when none / not the column)
    jc: np.ndarray  # centre row of the anterior column (nan when none)


def _canal_from_mask(cn: Canon, canal_mask: np.ndarray) -> dict[int, tuple[float, float]]:
    c = cn.to_canon(canal_mask)
    out = {}
    for k in range(c.shape[0]):
        if c[k].any():
            out[k] = tuple(float(x) for x in ndi.center_of_mass(c[k]))
    return out


def _column(cn: Canon, bone_c: np.ndarray, centre: dict[int, tuple[float, float]]) -> _Column:
    """Posterior surface of the anterior column, slice by slice, tracked for continuity from below."""
    sp = cn.spacing_mm
    ks = np.array(sorted(centre), int)
    cj = np.array([centre[k][0] for k in ks])
    ci = ndi.median_filter(np.array([centre[k][1] for k in ks]), size=5, mode="nearest")
    J, I = bone_c.shape[1:]
    ja = np.full(ks.size, np.nan)
    jc = np.full(ks.size, np.nan)
    reach = int(round(30.0 / sp[1]))
    w = max(int(round(2.0 / sp[2])), 1)
    max_run = max(int(round(16.0 / sp[1])), 2)
    for t, k in enumerate(ks):
        j0, i0 = int(round(cj[t])), int(round(ci[t]))
        if not (0 <= i0 < I and 0 <= j0 < J):
            continue
        colm = bone_c[k, :, max(i0 - w, 0):i0 + w + 1].mean(axis=1) >= 0.5
        j = j0
        steps = 0
        while j < J - 1 and colm[j] and steps < int(15 / sp[1]):
            j += 1
            steps += 1
        hit = None
        for jj in range(j, max(j - reach, -1), -1):
            if colm[jj]:
                hit = jj
                break
        if hit is None:
            continue
        end = hit
        while end - 1 >= 0 and colm[end - 1] and hit - end < max_run:
            end -= 1
        ja[t] = hit
        jc[t] = (hit + end) / 2.0
    # continuity from below: the posterior wall of the bodies and of the dens is one smooth line;
    # a jump forwards is the C1 anterior arch above the dens tip (or the mandible), not the column
    ok = np.nonzero(~np.isnan(ja))[0]
    if ok.size >= 3:
        start = ok[: max(ok.size // 3, 1)]
        ref = float(np.median(ja[start]))
        prev_t = None
        keep = np.zeros(ks.size, bool)
        for t in ok:
            gap = 0 if prev_t is None else int(ks[t] - ks[prev_t]) - 1
            tol = (4.0 + 1.0 * gap * sp[0] / 2.0) / sp[1]
            if prev_t is None and abs(ja[t] - ref) > 8.0 / sp[1]:
                continue
            if abs(ja[t] - ref) <= tol or prev_t is None:
                keep[t] = True
                ref = float(ja[t])
                prev_t = t
        ja[~keep] = np.nan
        jc[~keep] = np.nan
    return _Column(ks, ci, ja, jc)


@dataclass
class _Level:
    apex_k: int
    apex_zy: np.ndarray  # (z, y) canonical mm of the column top on its centre line
    u: np.ndarray  # unit (z, y) direction of the column, pointing caudally
    s_cut: float  # distance (mm) from the apex along u of the C2/C3 disc
    notes: list[str]
    cut_found: bool
    line_k: np.ndarray  # canonical k of the fitted column (for the centre-line lookup)


def _sagittal_image(cn: Canon, sm_c: np.ndarray, col: _Column) -> np.ndarray:
    sp = cn.spacing_mm
    K, J, I = sm_c.shape
    kk = np.arange(K)
    ci = np.interp(kk, col.ks, col.ci)
    w = max(int(round(2.0 / sp[2])), 0)
    img = np.empty((K, J), np.float32)
    for k in range(K):
        i0 = int(round(ci[k]))
        img[k] = sm_c[k, :, max(i0 - w, 0):min(i0 + w + 1, I)].mean(axis=1)
    return img


def _disc_valleys(cn: Canon, sm_c: np.ndarray, col: _Column, apex_zy: np.ndarray, u: np.ndarray,
                  s_all: np.ndarray) -> np.ndarray:
    """Depth (HU) of a thin dark band between two bright endplates, per distance ``s`` below the apex.

    An intervertebral disc on CT is a thin low-density band bounded above and below, within a few
    millimetres, by the cortical endplates; the cancellous marrow in the middle of a body is as dark
    but its bright boundaries are far apart. Profiles along the column axis (8 mm wide band across
    it, in the sagittal direction) are taken on 9 parallel sagittal lines 1.5 mm apart across the
    canal centre (discs are often tilted in the coronal plane, so one line may miss one). On each,
    the valley depth at ``s`` is min(brightest within 4 mm above, brightest within 4 mm below) minus
    the value at ``s`` (0 when negative); the result is the mean of the three deepest lines.
    Band widths and the 4 mm window are engineering defaults (no published source).

    Returns
    -------
    (len(s_all),) float array, HU; NaN-free (0 outside the volume).
    """
    from scipy.ndimage import map_coordinates

    sp = cn.spacing_mm
    K = sm_c.shape[0]
    n = np.array([-u[1], u[0]])
    tt = np.arange(-4.0, 4.01, 1.0)
    w = 4
    zc = apex_zy[0] + s_all * u[0]
    ok = (zc >= 0) & (zc <= (K - 1) * sp[0])
    ci_mm = np.interp(zc / sp[0], col.ks, col.ci) * sp[2]
    pts = apex_zy[None, None, :] + s_all[:, None, None] * u[None, None, :] + tt[None, :, None] * n[None, None, :]
    depths = []
    for off in np.arange(-6.0, 6.01, 1.5):
        ii = np.repeat((ci_mm + off)[:, None], tt.size, axis=1) / sp[2]
        coords = np.stack([pts[..., 0] / sp[0], pts[..., 1] / sp[1], ii])
        P = map_coordinates(sm_c, coords.reshape(3, -1), order=1, mode="nearest").reshape(pts.shape[:2]).mean(axis=1)
        above = np.array([P[max(t - w, 0):t].max() if t > 0 else P[0] for t in range(P.size)])
        below = np.array([P[t + 1:t + 1 + w].max() if t < P.size - 1 else P[-1] for t in range(P.size)])
        depths.append(np.clip(np.minimum(above, below) - P, 0.0, None))
    D = np.sort(np.array(depths), axis=0)[-3:].mean(axis=0)
    return np.where(ok, D, 0.0)


def _find_level(cn: Canon, sm_c: np.ndarray, col: _Column, hint_k: float | None) -> _Level:
    from scipy.ndimage import map_coordinates

    sp = cn.spacing_mm
    K = cn.shape[0]
    notes: list[str] = []
    has = ~np.isnan(col.ja)
    if has.sum() < 3:
        raise AnatomyError("C2 not found: no vertebral body or dens anterior to the spinal canal. The CT may not "
                           "include the upper cervical spine; check the field of view or give a point inside C2.")
    ks = col.ks[has]
    apex_k = int(ks.max())
    if int(col.ks.max()) >= K - 2:
        notes.append("the spinal canal reaches the top of the image (foramen magnum not in view)")
    # column centre line: straight fit of (z, y) over the top 70 mm of the column
    z = ks * sp[0]
    # the centre line runs 5 mm in front of the posterior wall of the column: inside the dens
    # (about 10 mm deep) and the bodies (about 15 mm), and unlike the bone run's centre it is not
    # pulled forward by a C1 anterior arch fused by partial volume to the dens
    y = col.ja[has] * sp[1] - 5.0
    top = z >= z.max() - 70.0
    if top.sum() >= 3:
        A = np.stack([z[top], np.ones(top.sum())], axis=1)
        slope, icpt = np.linalg.lstsq(A, y[top], rcond=None)[0]
    else:
        slope, icpt = 0.0, float(np.median(y))
    z_apex = apex_k * sp[0]
    apex_zy = np.array([z_apex, slope * z_apex + icpt])
    u = np.array([-1.0, -slope])
    u /= np.linalg.norm(u)
    n = np.array([-u[1], u[0]])
    if hint_k is not None and not (apex_k - 60.0 / sp[0] <= hint_k <= apex_k + 2):
        raise AnatomyError("The point given inside C2 is more than 60 mm below the top of the vertebral column "
                           "found on this CT; place it in the C2 body or dens.")
    img = _sagittal_image(cn, sm_c, col)
    s_all = np.arange(0.0, 75.0, 1.0)
    tt = np.arange(-6.0, 6.01, 1.0)
    pts = apex_zy[None, None, :] + s_all[:, None, None] * u[None, None, :] + tt[None, :, None] * n[None, None, :]
    coords = np.stack([pts[..., 0] / sp[0], pts[..., 1] / sp[1]])
    prof = map_coordinates(img, coords.reshape(2, -1), order=1, mode="constant", cval=np.nan).reshape(pts.shape[:2])
    inside = (pts[..., 0] >= 0) & (pts[..., 0] <= (K - 1) * sp[0])
    valid = inside.all(axis=1)
    with np.errstate(invalid="ignore"):
        cnt = inside.sum(axis=1)
        tot = np.where(inside, np.nan_to_num(prof), 0.0).sum(axis=1)
        P = np.where(valid & (cnt > 0), tot / np.maximum(cnt, 1), np.nan)
    if np.isfinite(P).sum() < 10:
        raise AnatomyError("C2 not in the field of view: the CT stops less than 10 mm below the top of the "
                           "vertebral column. Give a CT that covers C1 to C3.")
    D = _disc_valleys(cn, sm_c, col, apex_zy, u, s_all)
    best, best_score = None, 0.0
    for t in range(1, len(s_all) - 1):
        s = s_all[t]
        if not (22.0 <= s <= 55.0) or not np.isfinite(P[t]):
            continue
        if D[t] >= D[t - 1] and D[t] >= D[t + 1] and D[t] > 0.0:
            # weight by the population C2 height (apex to inferior endplate about 38 mm, from the
            # 37.6 +/- 3.3 mm anteroinferior-body-to-tip distance, Eur Spine J 2009;18:271)
            score = float(D[t]) * float(np.exp(-0.5 * ((s - 38.0) / 7.0) ** 2))
            if score > best_score:
                best, best_score = t, score
    if best is not None and best_score >= 10.0:
        return _Level(apex_k, apex_zy, u, float(s_all[best]), notes, True, ks)
    last = float(s_all[np.nonzero(np.isfinite(P))[0].max()])
    if last < 22.0:
        raise AnatomyError("C2 not in the field of view: the CT stops less than 22 mm below the top of the "
                           "vertebral column, above the C2 body. Give a CT that covers C1 to C3.")
    notes.append("C2/C3 disc not visible: C2 cut 40 mm below the dens apex (population height)")
    return _Level(apex_k, apex_zy, u, 40.0, notes, False, ks)


#: With a user point, a valley of the column profile overrides the population-height choice of the
#: disc when it is at least :data:`DISC_MIN_DEPTH_HU` deep and at least this fraction of the depth of
#: the disc chosen (engineering default, no published source; phantom discs 450-490 HU, marrow
#: ripples <= 135 HU; on OpenKBP/CThead the real discs are only 70-170 HU, below the floor, so there
#: the population-height choice stands).
HINT_DISC_RELATIVE_DEPTH = 0.5
#: Valleys less than this far below the column top (mm) are never taken as a level boundary around a
#: user point: the atlanto-dental joint and the dens base give valleys there (CThead: 193 HU at 9 mm).
HINT_TOP_SKIP_MM = 15.0
#: A user point farther than this from any bone is refused (mm; engineering default).
HINT_MAX_BONE_DISTANCE_MM = 10.0
#: The C2 built around a user point must come within this distance of the bone at the point (mm;
#: engineering default, the pipeline's tolerance is 5 mm).
HINT_MAX_MASK_DISTANCE_MM = 3.0


def _cut_column_at(cn: Canon, col: _Column, lev: _Level, s: float) -> _Column:
    k_cut = (lev.apex_zy[0] + s * lev.u[0]) / cn.spacing_mm[0]
    drop = col.ks >= k_cut
    ja, jc = col.ja.copy(), col.jc.copy()
    ja[drop] = np.nan
    jc[drop] = np.nan
    return _Column(col.ks, col.ci, ja, jc)


def _find_level_at_point(cn: Canon, sm_c: np.ndarray, col: _Column, p_zy: np.ndarray,
                         canal_top_k: int | None = None) -> tuple[_Level, _Column]:
    """The level that contains a user point.

    Starts from the level chosen without a point (:func:`_find_level`: column top, C2/C3 disc by
    the population height). Along the column axis, a valley of :func:`_disc_valleys` is "strong"
    when at least :data:`DISC_MIN_DEPTH_HU` deep and :data:`HINT_DISC_RELATIVE_DEPTH` of the chosen
    disc's depth. Then, up to 4 times: when the point lies below the chosen disc, or a strong valley
    lies between :data:`HINT_TOP_SKIP_MM` below the top and the point, the column is cut at the
    lowest such boundary above the point and the level is sought again from the new top (noted); when
    a strong valley lies between the point and the chosen disc, the first one becomes the C2/C3 cut.

    Parameters
    ----------
    p_zy : (2,) array
        Canonical (z, y) mm of the bone at the user point.
    canal_top_k : int, optional
        Top canonical slice of the canal as segmented (for the "canal reaches the top" note).

    Returns
    -------
    (level, column) : the level and the column (cut above it when the point lies lower).

    Raises
    ------
    AnatomyError
        The point lies more than 10 mm above the column top, or no level around it was found.
    """
    from dataclasses import replace

    K = cn.shape[0]
    moved: list[str] = []
    for _ in range(4):
        if (~np.isnan(col.ja)).sum() < 3:
            raise AnatomyError("C2 not found at the given point: no vertebral body or dens anterior to the spinal "
                               "canal around it. Check the point (LPS mm, in the C2 body or dens).")
        lev = _find_level(cn, sm_c, col, None)
        if canal_top_k is not None and canal_top_k < K - 2:
            lev.notes[:] = [n for n in lev.notes if not n.startswith("the spinal canal reaches the top")]
        s_h = float((p_zy - lev.apex_zy) @ lev.u)
        if s_h < -10.0:
            raise AnatomyError(f"The point given lies {-s_h:.0f} mm above the top of the vertebral column in front "
                               "of the canal (C1 ring or skull base?); place it in the C2 body or dens.")
        s_all = np.arange(0.0, max(75.0, s_h + 60.0), 1.0)
        D = _disc_valleys(cn, sm_c, col, lev.apex_zy, lev.u, s_all)
        ref = float(D[int(round(lev.s_cut))]) if lev.cut_found and lev.s_cut < len(D) else 0.0
        thr = max(DISC_MIN_DEPTH_HU, HINT_DISC_RELATIVE_DEPTH * ref)
        t = np.arange(1, len(s_all) - 1)
        strong = s_all[t[(D[t] >= D[t - 1]) & (D[t] >= D[t + 1]) & (D[t] >= thr)]]
        above = strong[(strong >= HINT_TOP_SKIP_MM) & (strong < s_h - 1.0)]
        if s_h > lev.s_cut - 1.0 or above.size:
            s_top = float(above.max()) if above.size else lev.s_cut
            if s_h > lev.s_cut - 1.0 and above.size == 0:
                s_top = lev.s_cut
            moved.append(f"{s_top:.0f} mm")
            col = _cut_column_at(cn, col, lev, s_top)
            continue
        between = strong[(strong > s_h + 1.0) & (strong >= HINT_TOP_SKIP_MM) & (strong < lev.s_cut - 1.0)]
        notes = list(lev.notes)
        if moved:
            notes.append("the given point lies below the first level found from the top of the vertebral column: "
                         f"the column was cut {' then '.join(moved)} below its top and the vertebra at the point "
                         "taken; check that it is C2")
        if between.size:
            notes.append(f"C2/C3 disc taken at the first deep disc below the given point ({float(between.min()):.0f} "
                         f"mm below the top, not {lev.s_cut:.0f} mm)")
            return replace(lev, s_cut=float(between.min()), notes=notes, cut_found=True), col
        return replace(lev, notes=notes), col
    raise AnatomyError("C2 not found at the given point: it lies more than four vertebral levels below the top of "
                       "the column. Place it in the C2 body or dens.")


def _fill_c2(c2: np.ndarray, canal_c: np.ndarray) -> np.ndarray:
    """Fill interior holes of C2 (lytic cavities, marrow) in axial, coronal and sagittal planes, never the canal."""
    from osteoplan.anatomy.segment import _box_dilate, fill_holes_in_planes

    out = c2.copy()
    if not c2.any():
        return out
    box = _local.bbox(c2, 2)  # the voxel box of C2 grown by 2 (clipped to the array)
    sub = out[box]
    canal_d = _box_dilate(canal_c[box], (3, 3, 3))
    for axis in (0, 1, 2):
        holes = fill_holes_in_planes(sub, axis) & ~sub
        if not holes.any():
            continue
        st = np.zeros((3, 3, 3), bool)
        st[1, 1, 1] = True
        for d in range(3):
            if d != axis:
                for v in (0, 2):
                    q = [1, 1, 1]
                    q[d] = v
                    st[tuple(q)] = True
        lab, n = _local.cc_label(holes, structure=st)
        bad = np.zeros(n + 1, bool)
        bad[np.unique(lab[canal_d & (lab > 0)])] = True
        bad[0] = True
        sub = sub | ~bad[lab]
    out[box] = sub
    return out


def _c2_mask(cn: Canon, sm_c: np.ndarray, bone_c: np.ndarray, canal_c: np.ndarray, col: _Column,
             lev: _Level, hint_idx: np.ndarray | None, c1_in_view: bool = True) -> np.ndarray:
    """C2 grown by watershed between the C2 core (1), C1/skull base (2) and the level below (3).

    ``c1_in_view=False`` (a user point fixed the level and the column reaches the top of the image:
    the dens is cut by the field of view) drops the C1 markers and the peg trimming of the upper dens,
    which would otherwise take the upper C2 (lateral masses, body) for the C1 ring.
    """
    from skimage.segmentation import watershed

    sp = cn.spacing_mm
    K, J, I = bone_c.shape
    margin = max(3.0, 1.5 * float(sp[0]))
    apex = lev.apex_k
    z_cut = lev.apex_zy[0] + lev.s_cut * lev.u[0]
    mk = int(round(25.0 / sp[0]))
    k0, k1 = max(int(np.floor(z_cut / sp[0])) - mk, 0), min(apex + mk + 1, K)
    slope = lev.u[1] / lev.u[0] if abs(lev.u[0]) > 1e-6 else 0.0

    def line_j(k: float) -> float:
        return (lev.apex_zy[1] + (k * sp[0] - lev.apex_zy[0]) * slope) / sp[1]

    cis = col.ci
    cj_mid = line_j((apex + z_cut / sp[0]) / 2.0)
    ci_mid = float(np.median(cis))
    rj, ri = int(round(60.0 / sp[1])), int(round(60.0 / sp[2]))
    j0, j1 = max(int(cj_mid) - rj, 0), min(int(cj_mid) + rj + 1, J)
    i0, i1 = max(int(ci_mid) - ri, 0), min(int(ci_mid) + ri + 1, I)
    bc = bone_c[k0:k1, j0:j1, i0:i1]
    markers = np.zeros(bc.shape, np.int32)
    jj, ii = np.mgrid[j0:j1, i0:i1]
    for k in range(k0, k1):
        jc = line_j(k)
        ci = float(np.interp(k, col.ks, cis))
        dmm = np.hypot((jj - jc) * sp[1], (ii - ci) * sp[2])
        # distance below the apex along the column axis, per voxel (sagittal obliquity of the discs)
        s_vox = (k * sp[0] - lev.apex_zy[0]) * lev.u[0] + (jj * sp[1] - lev.apex_zy[1]) * lev.u[1]
        sl = markers[k - k0]
        b2 = bc[k - k0]
        if k <= apex:
            c2core = (dmm <= 5.0) & (s_vox < lev.s_cut - margin)
            sl[c2core & b2] = 1
            if c1_in_view and k >= apex - 10.0 / sp[0]:
                # C1 ring around the upper dens: lateral masses (far from the axis) and the anterior
                # arch (in front of the dens, more than 6.5 mm anterior to the dens centre)
                sl[((dmm > 8.5) | ((jc - jj) * sp[1] > 6.5)) & b2] = 2
            sl[(dmm <= 7.0) & (s_vox > lev.s_cut + margin) & b2] = 3
        elif c1_in_view and k >= apex + 2:
            # above the column top: C1 / skull base, except the core, which may still be the dens tip
            far = dmm > 6.0 if k < apex + 15.0 / sp[0] else np.ones_like(dmm, bool)
            sl[far & b2] = 2
    if hint_idx is not None:
        # the bone voxel at the user point seeds C2 unless it already seeds C1 / the level below
        # (then the C2 grown does not reach the point and the locator says so)
        hk, hj, hi_ = (int(round(x)) for x in hint_idx)
        if k0 <= hk < k1 and j0 <= hj < j1 and i0 <= hi_ < i1 and markers[hk - k0, hj - j0, hi_ - i0] == 0:
            markers[hk - k0, hj - j0, hi_ - i0] = 1
    markers[~bc] = 0
    if not (markers == 1).any():
        raise AnatomyError("C2 not found: the level chosen as C2 has no bone anterior to the canal. "
                           "Give a point inside C2 or provide a vertebrae_C2 mask.")
    lab = watershed(-sm_c[k0:k1, j0:j1, i0:i1], markers=markers, mask=bc)
    c2 = lab == 1
    # the upper dens is a peg (apical width 9.6 +/- 1.1 mm, JKNS 2018;61(4)): bone more than 7.5 mm
    # from its axis or in front of it at those levels is the C1 ring fused by partial volume / streaks
    peg = range(max(int(np.ceil(apex - 10.0 / sp[0])), k0), min(apex + int(round(15.0 / sp[0])), k1))
    for k in (peg if c1_in_view else ()):
        jc = line_j(min(k, apex))
        ci = float(np.interp(min(k, apex), col.ks, cis))
        dmm = np.hypot((jj - jc) * sp[1], (ii - ci) * sp[2])
        c2[k - k0] &= (dmm <= 7.5) & ((jc - jj) * sp[1] <= 6.5)
    cl, n = _local.cc_label(c2)
    if n > 1:
        ids = np.unique(cl[(markers == 1) & c2])
        c2 = np.isin(cl, ids[ids > 0])
    full = np.zeros_like(bone_c)
    full[k0:k1, j0:j1, i0:i1] = c2
    return _fill_c2(full, canal_c)


#: Minimum depth (HU) of the thin dark band taken as the C2/C3 disc under the anterior C2 body
#: (engineering default, no published source).
DISC_MIN_DEPTH_HU = 150.0


def _cut_below_disc(cn: Canon, sm_c: np.ndarray, c2_c: np.ndarray, canal_c: np.ndarray, col: _Column,
                    lev: _Level) -> tuple[np.ndarray, str | None]:
    """Remove from C2 what lies below the C2/C3 disc, followed voxel column by column in the mid-sagittal band.

    The C2 inferior end-plate slopes down anteriorly (anteroinferior lip), so the disc is oblique in
    the sagittal plane and a thin, partial-volumed disc lets the watershed leak into the
    anterosuperior corner of C3 (CThead: a C3 corner joined to the C2 lip through a 2 mm band of
    180-270 HU between cortices of 450-600 HU). The cranio-caudal HU profile is searched within +/- 6 mm of the disc found on the column axis for the deepest thin valley
    (brightest within 4 mm above and below, minus the value; at least :data:`DISC_MIN_DEPTH_HU`),
    per voxel column of a +/- 5 mm mid-sagittal band. A plane k(j, i) is fitted to those valleys
    (outliers beyond 1 slice rejected; refused when tilted more than 45 degrees) and C2 voxels on or
    below it within 12 mm of the mid-sagittal plane, anterior to the canal centre, are removed;
    pieces left entirely below the plane go, and nothing is cut when it would remove more than a
    quarter of the vertebra.
    Window sizes and widths are engineering defaults (no published source).

    Returns
    -------
    (mask, note) : canonical bool array (K, J, I) and a note (None when nothing was cut).
    """
    if not lev.cut_found:
        return c2_c, None
    sp = cn.spacing_mm
    K, J, I = c2_c.shape
    z_cut = lev.apex_zy[0] + lev.s_cut * lev.u[0]
    k_cut = z_cut / sp[0]
    ci = int(round(float(np.interp(k_cut, col.ks, col.ci))))
    hw = max(int(round(5.0 / sp[2])), 0)
    band = slice(max(ci - hw, 0), min(ci + hw + 1, I))
    lo = max(int(np.floor(k_cut - 6.0 / sp[0])), 1)
    hi = min(int(np.ceil(k_cut + 6.0 / sp[0])), K - 2)
    if hi - lo < 2:
        return c2_c, None
    w = max(int(round(4.0 / sp[0])), 1)
    kc = np.nonzero(canal_c.any(axis=(1, 2)))[0]
    if kc.size:
        kk = int(kc[np.argmin(np.abs(kc - k_cut))])
        j_canal = float(ndi.center_of_mass(canal_c[kk])[0])
    else:
        j_canal = float(J)
    # valley depth per voxel column (j, i) of the band, for each k of the window
    sub = sm_c[max(lo - w, 0):hi + w + 1, :, band].astype(np.float32)
    off = lo - max(lo - w, 0)
    nk = hi - lo + 1
    depth = np.full((nk,) + sub.shape[1:], -np.inf, np.float32)
    for t in range(nk):
        k = off + t
        up = sub[k + 1:k + 1 + w].max(axis=0)
        dn = sub[max(k - w, 0):k].max(axis=0)
        depth[t] = np.minimum(up, dn) - sub[k]
    near = c2_c[lo:hi + 1, :, band].any(axis=0) & (np.arange(J)[:, None] < j_canal)
    best = depth.argmax(axis=0)
    ok_col = near & (depth.max(axis=0) >= DISC_MIN_DEPTH_HU)
    jj, ii = np.nonzero(ok_col)
    if jj.size < 6:
        return c2_c, None
    kd = (lo + best[jj, ii]).astype(float)
    # robust plane k = a*j + b*i + c (outlier rejection at 1 slice)
    A = np.stack([jj.astype(float), (ii + band.start).astype(float), np.ones(jj.size)], axis=1)
    keep = np.ones(jj.size, bool)
    for _ in range(3):
        if keep.sum() < 6:
            return c2_c, None
        coef = np.linalg.lstsq(A[keep], kd[keep], rcond=None)[0]
        res = np.abs(A @ coef - kd)
        keep = res <= max(1.0, float(np.median(res[keep])) * 2.0) if _ == 0 else res <= 1.0
    if keep.sum() < max(6, 0.3 * jj.size):
        return c2_c, None
    coef = np.linalg.lstsq(A[keep], kd[keep], rcond=None)[0]
    # a disc tilted more than 45 degrees from the axial plane is not a disc
    if abs(coef[0]) * sp[0] / sp[1] > 1.0 or abs(coef[1]) * sp[0] / sp[2] > 1.0:
        return c2_c, None
    j0, j1 = int(jj[keep].min()), int(jj[keep].max())
    hw2 = max(int(round(12.0 / sp[2])), 1)
    out = c2_c.copy()
    i_lo, i_hi = max(ci - hw2, 0), min(ci + hw2 + 1, I)
    ig = np.arange(i_lo, i_hi)
    i_c = np.clip(ig, band.start, band.stop - 1)
    kk_ = np.arange(K)[:, None]
    k_top = 0.0
    for j in range(max(j0 - 2, 0), min(int(np.ceil(j_canal)), J)):
        kplane = coef[0] * min(max(j, j0), j1) + coef[1] * i_c + coef[2]
        out[:, j, i_lo:i_hi] &= ~(kk_ <= np.round(kplane)[None, :])
        k_top = max(k_top, float(kplane.max()))
    # pieces cut off below the disc go; pieces reaching above it (body, dens, even a dens head
    # detached by a lytic lesion) stay
    lab, n = _local.label(out)  # = ndi.label, on the bounding box
    if n > 1:
        top_of = np.array([sl[0].stop - 1 if sl is not None else -1 for sl in ndi.find_objects(lab)])
        keep_ids = np.nonzero(top_of > k_top + 1.0)[0] + 1
        out = np.isin(lab, keep_ids)
    removed = int(c2_c.sum() - out.sum())
    if removed == 0:
        return c2_c, None
    if removed > 0.25 * c2_c.sum():
        return c2_c, None  # would cut the vertebra itself: keep the watershed result
    vol_ml = removed * float(np.prod(sp)) / 1000.0
    return out, f"C2/C3 disc followed under the anterior body: {vol_ml:.2f} mL below it removed from C2"


def _min_caliper(points2d: np.ndarray, pixel_mm: float) -> float:
    if points2d.shape[0] < 3:
        return float(pixel_mm)
    best = np.inf
    for th in np.deg2rad(np.arange(0, 180, 5)):
        d = points2d @ np.array([np.cos(th), np.sin(th)])
        best = min(best, float(d.max() - d.min()) + pixel_mm)
    return best


def landmarks_from_mask(volume: Volume, c2_mask: np.ndarray, canal_mask: np.ndarray | None = None,
                        method: str = "classical", base_confidence: float = 1.0,
                        notes: tuple[str, ...] = ()) -> DensLandmarks:
    """Dens / C2 landmarks from a C2 mask on the volume's grid.

    Parameters
    ----------
    volume : Volume
    c2_mask : bool array (K, J, I)
        The whole C2 vertebra.
    canal_mask : bool array (K, J, I), optional
        Spinal canal; when given, only C2 voxels anterior to it (body + dens) are used for the
        axis, waist, body centre and anteroinferior point. Otherwise the anterior 60 % of C2 is used.
    method : str
        Recorded in :attr:`DensLandmarks.method`.
    base_confidence : float
        Confidence of the localisation; multiplied by the plausibility of the measurements
        against published priors (Eur Spine J 2009;18:271).

    Returns
    -------
    DensLandmarks

    Raises
    ------
    AnatomyError
        The mask is empty or has no recognisable dens.
    """
    cn = Canon.of(volume)
    sp = cn.spacing_mm
    m = cn.to_canon(c2_mask)
    if not m.any():
        raise AnatomyError("The C2 mask is empty; C2 landmarks cannot be computed.")
    K, J, I = m.shape
    front = np.zeros_like(m)
    if canal_mask is not None and cn.to_canon(canal_mask).any():
        cc = cn.to_canon(canal_mask)
        kc = np.nonzero(cc.any(axis=(1, 2)))[0]
        for k in np.nonzero(m.any(axis=(1, 2)))[0]:
            kk = int(kc[np.argmin(np.abs(kc - k))])
            cjj, cii = ndi.center_of_mass(cc[kk])
            # anterior edge of the canal in the mid-sagittal band
            # the canal centre row separates the body + dens (anterior) from the posterior arch; the
            # canal's anterior edge is not used because at C1 the canal wraps around the dens
            ja = cjj
            hw = int(round(9.0 / sp[2]))
            ilo, ihi = max(int(round(cii)) - hw, 0), int(round(cii)) + hw + 1
            front[k, :int(ja) + 1, ilo:ihi] = m[k, :int(ja) + 1, ilo:ihi]
        if front.sum() < 0.1 * m.sum():
            front = m.copy()
    else:
        rows = np.nonzero(m.any(axis=(0, 2)))[0]
        cut = rows.min() + 0.6 * (rows.max() - rows.min())
        front = m.copy()
        front[:, int(cut) + 1:, :] = False
    idx = _local.argwhere(front)  # = np.argwhere(front)
    pts = volume.index_to_world(cn.index_to_original(idx.astype(float)))
    sup = np.array([0.0, 0.0, 1.0])
    ant = np.array([0.0, -1.0, 0.0])
    # initial dens: per-slice areas along k (canonical = superior)
    ks = idx[:, 0]
    kmin, kmax = ks.min(), ks.max()
    areas = np.bincount(ks - kmin, minlength=kmax - kmin + 1).astype(float)
    body_area = float(np.percentile(areas[areas > 0], 80))
    above = np.nonzero(areas > 0.6 * body_area)[0]
    k_bt = kmin + (above.max() if above.size else 0)
    dens_sel = ks > k_bt
    if dens_sel.sum() < 5:
        dens_sel = ks >= kmin + 0.6 * (kmax - kmin)
    # axis: straight-line fit through the per-slice centroids of the top 25 mm of the column
    # (dens + upper body), which is robust for a short dens on thick slices
    axis = sup
    top_n = max(int(round(25.0 / sp[0])), 3)
    sel_k = np.arange(max(kmax - top_n + 1, kmin), kmax + 1)
    cents = np.array([pts[ks == k].mean(axis=0) for k in sel_k if np.any(ks == k)])
    if cents.shape[0] >= 3:
        c0 = cents.mean(axis=0)
        _, _, vt = np.linalg.svd(cents - c0)
        ax = vt[0]
        if ax @ sup < 0:
            ax = -ax
        if ax @ sup > np.cos(np.deg2rad(45)):
            axis = ax / np.linalg.norm(ax)
    t = pts @ axis
    bw = float(max(np.max(sp), 1.0))
    # the apex is taken on the dens core: voxels within 5 mm of the axis line through the dens
    # centroids (the dens apical width is 9.6 +/- 1.1 mm, JKNS 2018;61(4)), so that a C1 anterior
    # arch or a streak fused to the tip by partial volume does not pull it forwards
    core = np.ones(len(pts), bool)
    if cents.shape[0] >= 3:
        rel = pts - cents.mean(axis=0)
        core = np.linalg.norm(rel - np.outer(rel @ axis, axis), axis=1) <= 5.0
        if core.sum() < 3:
            core[:] = True
    t_apex = float(t[core].max())
    apex = pts[core & (t >= t_apex - bw)].mean(axis=0)
    # keep the apex on the most cranial voxels but centred on them
    t_lo = float(t.min())
    nb = int(np.ceil((t_apex - t_lo) / bw)) + 1
    b = np.clip(((t - t_lo) / bw).astype(int), 0, nb - 1)
    counts = np.bincount(b, minlength=nb).astype(float)
    lnotes = list(notes)
    # waist: smallest (smoothed) cross-section 7-20 mm below the apex along the axis, i.e. between
    # the dens head and the body (engineering default zone)
    cs = ndi.uniform_filter1d(counts, 3, mode="nearest")
    dist = t_apex - (t_lo + (np.arange(nb) + 0.5) * bw)
    zone = np.nonzero((dist >= 7.0) & (dist <= 20.0) & (counts > 0))[0]
    if zone.size:
        wb = int(zone[np.argmin(cs[zone])])
    else:
        wb = int(np.clip(np.argmin(np.abs(dist - 12.0)), 0, nb - 1))
        lnotes.append("dens too short to measure a waist: waist placed 12 mm below the apex")
    if counts[wb] == 0:
        wb = int(np.nonzero(counts)[0][np.argmin(np.abs(np.nonzero(counts)[0] - wb))])
    if zone.size >= 3 and cs[wb] < 0.5 * float(np.median(cs[zone])):
        # a focal notch rather than a smooth waist: bone is missing there (lysis through the
        # cortex, fracture); the anatomical waist is then not measurable from the bone
        lnotes.append("the narrowest dens section has less than half the bone of the dens around it "
                      "(lytic destruction or fracture?): waist position and diameter are uncertain")
    sel = b == wb
    waist = pts[sel].mean(axis=0)
    e1 = ant - (ant @ axis) * axis
    if np.linalg.norm(e1) < 1e-6:
        e1 = np.array([1.0, 0.0, 0.0]) - axis[0] * axis
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(axis, e1)
    q = pts[sel] - waist
    diam = _min_caliper(np.stack([q @ e1, q @ e2], axis=1), float(np.mean(sp[1:])))
    body_sel = b < max(wb - 1, 1)
    if body_sel.sum() < 5:
        body_sel = b <= wb
    body_pts = pts[body_sel]
    centre = body_pts.mean(axis=0)
    # anteroinferior: extreme towards (anterior - axis) within the mid-sagittal band of the body
    lat = np.cross(axis, e1)
    band = np.abs((body_pts - centre) @ lat) <= max(5.0, 1.5 * float(sp[2]))
    bp = body_pts[band] if band.sum() >= 3 else body_pts
    score = bp @ e1 - bp @ axis
    ai = bp[score >= score.max() - bw].mean(axis=0)
    # confidence against priors
    d_ai = float(np.linalg.norm(apex - ai))
    f_len = float(np.exp(-0.5 * ((d_ai - PRIOR_AI_TO_APEX_MM[0]) / (3 * PRIOR_AI_TO_APEX_MM[1])) ** 2))
    f_diam = float(np.exp(-0.5 * ((diam - 9.0) / 6.0) ** 2))
    conf = float(np.clip(base_confidence * (0.4 + 0.6 * f_len) * (0.6 + 0.4 * f_diam), 0.0, 1.0))
    if not 25.0 <= d_ai <= 55.0:
        lnotes.append(f"anteroinferior body to dens apex {d_ai:.1f} mm is outside the usual range "
                      "(37.6 +/- 3.3 mm, Eur Spine J 2009;18:271): check the C2 localisation")
    return DensLandmarks(apex_lps_mm=apex, waist_lps_mm=waist, waist_diameter_mm=float(diam), axis_unit=axis,
                         anteroinferior_body_lps_mm=ai, body_centre_lps_mm=centre, confidence=round(conf, 3),
                         method=method, notes=tuple(lnotes))


def locate_c2(volume: Volume, labelmap=None, hint_lps=None, *, bone: np.ndarray | None = None,
              canal: CanalResult | None = None) -> tuple[np.ndarray, DensLandmarks]:
    """Find C2 and its dens on a head/neck CT.

    Parameters
    ----------
    volume : Volume
        CT in HU (any axis-aligned orientation).
    labelmap : LabelMap, optional
        When it holds ``vertebrae_C2``, that mask is used as is (method ``"provided-mask"``); its
        ``bone`` and ``spinal_canal`` masks are reused when present.
    hint_lps : (3,) array-like, optional
        One point inside C2 (LPS mm), e.g. clicked by the user: it decides the level. The bone
        nearest to it (within :data:`HINT_MAX_BONE_DISTANCE_MM`) is the seed; C2 is cut at the discs
        above and below it (:func:`_find_level_at_point`) and must come within
        :data:`HINT_MAX_MASK_DISTANCE_MM` of it. The plausibility gate still applies (without the
        dens-gap check, and without the too-short check when the dens is cut by the top of the
        image, which is then noted); no next level is tried.
    bone : bool array (K, J, I), optional
        Precomputed bone mask.
    canal : CanalResult, optional
        Precomputed canal.

    Returns
    -------
    c2_mask : bool array (K, J, I)
        The whole C2 vertebra (lytic cavities inside it included), on the volume's grid.
    landmarks : DensLandmarks
        Apex, waist (+ diameter), axis, anteroinferior body point, body centre (LPS mm), confidence.

    Raises
    ------
    AnatomyError
        C2 not in the field of view (CT stops above C1 / below C3, no canal) or not separable; the
        point is more than 10 mm from bone, above the column, or in a bone that is not the vertebra
        at its level; the message says why and what to do. :class:`C2CandidateRejected` when the
        candidate is implausible ("... at the given point: <reason>" with a point).
    InputError
        The hint point lies outside the CT.
    """
    notes: list[str] = []
    canal_mask = None
    if labelmap is not None and labelmap.has("spinal_canal"):
        canal_mask = labelmap.get("spinal_canal")
    if labelmap is not None and labelmap.has("vertebrae_C2") and labelmap.get("vertebrae_C2").any():
        c2 = labelmap.get("vertebrae_C2")
        lm = landmarks_from_mask(volume, c2, canal_mask if canal_mask is not None else
                                 (canal.mask if canal is not None else None), method="provided-mask",
                                 base_confidence=0.95)
        return c2, lm
    cn = Canon.of(volume)
    body = None
    if bone is None and labelmap is not None and labelmap.has("bone"):
        bone = labelmap.get("bone")
    if bone is None:
        body = labelmap.get("body") if labelmap is not None and labelmap.has("body") else segment_body(volume)
        bone = segment_bone(volume, body).bone
    if canal is not None:
        centre = canal.centre_canon
        canal_mask = canal.mask
    elif canal_mask is not None and canal_mask.any():
        centre = _canal_from_mask(cn, canal_mask)
    else:
        if body is None:
            body = labelmap.get("body") if labelmap is not None and labelmap.has("body") else segment_body(volume)
        try:
            cres = segment_spinal_canal(volume, None, body)
        except AnatomyError as exc:
            raise AnatomyError(f"C2 cannot be located: {exc}") from None
        centre, canal_mask = cres.centre_canon, cres.mask
    if len(centre) < 3:
        raise AnatomyError("C2 cannot be located: the spinal canal spans fewer than 3 slices. "
                           "The CT may not include the cervical spine.")
    hint_idx = None
    if hint_lps is not None:
        h = np.asarray(hint_lps, float).reshape(3)
        if not volume.contains(h[None])[0]:
            raise InputError("The point given inside C2 lies outside the CT; give LPS millimetres inside the image.")
        hint_idx = cn.index_from_original(volume.world_to_index(h))
    bone_c = cn.to_canon(bone)
    if hint_idx is not None:
        hint_idx = _snap_to_bone(cn, bone_c, hint_idx)
    a_c = cn.to_canon(volume.array)
    sm_c = _smooth(a_c, cn.spacing_mm, 0.7)
    col = _column(cn, bone_c, _centre_to_image_top(cn, centre) if hint_idx is not None else centre)
    canal_c = cn.to_canon(canal_mask) if canal_mask is not None else np.zeros_like(bone_c)
    method = "classical+hint" if hint_idx is not None else "classical"
    first: C2CandidateRejected | None = None
    for attempt in range(1 if hint_idx is not None else MAX_LEVEL_ATTEMPTS):
        try:
            c2, lm, c2_c, lev = _candidate(volume, cn, a_c, sm_c, bone_c, canal_c, canal_mask, col, hint_idx,
                                           method, list(notes), canal_top_k=max(centre))
        except AnatomyError:
            if first is None:
                raise
            break
        reasons = plausibility_problems(lm, cn.spacing_mm, c2_c=c2_c, cn=cn, volume=volume, centre=centre,
                                        check_gap=hint_idx is None)
        if hint_idx is not None and lev.apex_k >= cn.shape[0] - 2 and \
                lm.anteroinferior_to_apex_mm < ai_apex_range_mm(cn.spacing_mm)[0]:
            # the user fixed the level and the dens is cut by the top of the image: its height is not
            # measurable, so a short one is no evidence of a wrong level (the apex is the image edge)
            reasons = [r for r in reasons if not r.startswith("anteroinferior body to dens apex")]
            from dataclasses import replace

            lm = replace(lm, apex_in_view=False, notes=lm.notes + (
                "the dens is cut by the top of the image: the 'apex' is the image edge, not the dens tip; "
                "do not plan on it",))
        if not reasons:
            if first is not None:
                from dataclasses import replace

                lm = replace(lm, confidence=round(lm.confidence * 0.8, 3), notes=lm.notes + (
                    f"the first structure found was rejected ({first.reasons[0]}); C2 taken at the next bone "
                    "column below: check the level",))
            return c2, lm
        rej = C2CandidateRejected(reasons, lm, hinted=hint_idx is not None)
        if first is None:
            first = rej
        # only a candidate that is too high by its position (apex at or beside the canal: skull base,
        # C1 ring) or too tall is followed by the next structure down; a dens merely separated from
        # its body may be a lytic lesion through the dens, and the level below would then be C3
        too_long = lm.anteroinferior_to_apex_mm > ai_apex_range_mm(cn.spacing_mm)[1]
        if not (too_long or any("canal centre" in r for r in reasons)):
            break
        nxt = _next_column(cn, col, c2_c, lev, lm)
        if nxt is None:
            break
        col = nxt
    assert first is not None
    raise first


#: With a user point, a canal that stops this close (mm) below the top of the image is continued to
#: the top at its last centre (engineering default): the dens cut by the field of view has no C1 ring
#: around it, so the canal is not enclosed there and the column would miss the dens.
CANAL_OPEN_TOP_MM = 25.0


def _centre_to_image_top(cn: Canon, centre: dict[int, tuple[float, float]]) -> dict[int, tuple[float, float]]:
    K = cn.shape[0]
    top = max(centre)
    if top >= K - 1 or (K - 1 - top) * float(cn.spacing_mm[0]) > CANAL_OPEN_TOP_MM:
        return centre
    out = dict(centre)
    for k in range(top + 1, K):
        out[k] = centre[top]
    return out


def _snap_to_bone(cn: Canon, bone_c: np.ndarray, idx_c: np.ndarray) -> np.ndarray:
    """Canonical index of the bone voxel nearest to a user point; AnatomyError when farther than
    :data:`HINT_MAX_BONE_DISTANCE_MM` (the distance, up to 40 mm, is in the message)."""
    sp = cn.spacing_mm
    c = np.array([int(round(x)) for x in idx_c])
    c = np.clip(c, 0, np.array(bone_c.shape) - 1)
    r = np.ceil(40.0 / sp).astype(int)
    lo = np.maximum(c - r, 0)
    hi = np.minimum(c + r + 1, bone_c.shape)
    sub = bone_c[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    if not sub.any():
        raise AnatomyError("The point given inside C2 is more than 40 mm from any bone (soft tissue or air); click "
                           "inside C2 (body or dens).")
    dist, ind = ndi.distance_transform_edt(~sub, sampling=sp, return_indices=True)
    q = tuple(c - lo)
    d = float(dist[q])
    if d > HINT_MAX_BONE_DISTANCE_MM:
        raise AnatomyError(f"The point given inside C2 is {d:.0f} mm from any bone (more than "
                           f"{HINT_MAX_BONE_DISTANCE_MM:.0f} mm: soft tissue or air); click inside C2 (body or dens).")
    return np.array([ind[a][q] for a in range(3)], float) + lo


def _distance_to_mask_mm(cn: Canon, m: np.ndarray, idx_c: np.ndarray) -> float:
    pts = _local.argwhere(m)  # = np.argwhere(m)
    if pts.size == 0:
        return float("inf")
    return float(np.min(np.linalg.norm((pts - np.asarray(idx_c, float)) * cn.spacing_mm, axis=1)))


#: How many candidate levels are tried from the top of the vertebral column down (engineering default).
MAX_LEVEL_ATTEMPTS = 3


def _candidate(volume: Volume, cn: Canon, a_c: np.ndarray, sm_c: np.ndarray, bone_c: np.ndarray,
               canal_c: np.ndarray, canal_mask, col: _Column, hint_idx, method: str, notes: list[str],
               canal_top_k: int | None = None):
    """One C2 candidate: (mask, landmarks, canonical mask, level).

    Without a point, the level is the column top (:func:`_find_level`); with one (``hint_idx``, the
    canonical index of the bone at the user's point), the level containing it
    (:func:`_find_level_at_point`), and the mask must reach the point.
    """
    if hint_idx is None:
        lev = _find_level(cn, sm_c, col, None)
    else:
        p_zy = np.array([hint_idx[0] * cn.spacing_mm[0], hint_idx[1] * cn.spacing_mm[1]])
        lev, col = _find_level_at_point(cn, sm_c, col, p_zy, canal_top_k)
    notes.extend(lev.notes)
    cut_by_fov = lev.apex_k >= cn.shape[0] - 2
    c2_c = _c2_mask(cn, sm_c, bone_c, canal_c, col, lev, hint_idx,
                    c1_in_view=hint_idx is None or not cut_by_fov)
    if hint_idx is not None:
        d_mm = _distance_to_mask_mm(cn, c2_c, hint_idx)
        if d_mm > HINT_MAX_MASK_DISTANCE_MM:
            raise AnatomyError(f"The bone at the given point is not part of the vertebra found at its level (the "
                               f"nearest is {d_mm:.0f} mm away): the point may be in C1, the skull base or another "
                               "bone. Place it in the C2 body or dens, or provide a vertebrae_C2 mask.")
    c2_c, cut_note = _cut_below_disc(cn, sm_c, c2_c, canal_c, col, lev)
    if cut_note:
        notes.append(cut_note)
    base = 0.9 if lev.cut_found else 0.6
    if lev.apex_k >= cn.shape[0] - 2:
        base *= 0.5
        notes.append("the dens reaches the top of the image: the apex may be cut")
    # metal streaks near C2 (dental fillings) lower the confidence of the apex
    ks = np.nonzero(c2_c.any(axis=(1, 2)))[0]
    if ks.size:
        k0, k1 = max(ks.min() - 2, 0), min(ks.max() + 3, c2_c.shape[0])
        if (a_c[k0:k1] > 2500).sum() > 20:
            notes.append("metal artefacts (> 2500 HU) at the C2 levels: apex and dens outline less reliable")
            base *= 0.85
    c2 = cn.from_canon(c2_c)
    if c2.sum() * volume.voxel_volume_ml < 0.5:
        raise AnatomyError("C2 not separable: the structure found at the C2 level is smaller than 0.5 mL. "
                           "Give a point inside C2 or provide a vertebrae_C2 mask.")
    lm = landmarks_from_mask(volume, c2, canal_mask, method=method, base_confidence=base, notes=tuple(notes))
    return c2, lm, c2_c, lev


def _next_column(cn: Canon, col: _Column, c2_c: np.ndarray, lev: _Level, lm: DensLandmarks) -> _Column | None:
    """The column with its top removed, for the next candidate; None when the candidate was not too high.

    Called for a candidate whose apex sits at or beside the canal (clivus, basion, C1 ring) or whose
    height exceeds the prior: a structure above C2 taken for its top. The column is cut below the
    largest gap in the candidate (or 6 mm below its apex when there is no gap). A candidate that is
    too short is not retried lower (its apex is usually at the right level).
    """
    sp = cn.spacing_mm
    lo, _ = ai_apex_range_mm(sp)
    ks = np.nonzero(c2_c.any(axis=(1, 2)))[0]
    cut_k = None
    if ks.size:
        occ = c2_c[ks.min():ks.max() + 1].any(axis=(1, 2))
        run, best, best_end = 0, 0, None
        for t, o in enumerate(occ):
            run = 0 if o else run + 1
            if run > best:
                best, best_end = run, t
        if best * float(sp[0]) > MAX_DENS_GAP_MM and best_end is not None:
            cut_k = int(ks.min() + best_end - best + 1)  # lowest empty slice of the gap
    if cut_k is None:
        if lm.anteroinferior_to_apex_mm < lo:
            return None
        cut_k = int(lev.apex_k - max(int(round(6.0 / sp[0])), 1) + 1)
    ja = col.ja.copy()
    jc = col.jc.copy()
    drop = col.ks >= cut_k
    if not drop.any() or (~np.isnan(ja[~drop])).sum() < 3:
        return None
    ja[drop] = np.nan
    jc[drop] = np.nan
    return _Column(col.ks, col.ci, ja, jc)


class C2CandidateRejected(AnatomyError):
    """The C2 found is implausible: the locator says "not located" rather than give wrong landmarks.

    Attributes
    ----------
    reasons : list[str]
        Why (each with the measured value and the accepted range).
    candidate : DensLandmarks
        The rejected landmarks (for benchmarks and review; never to plan with).
    """

    def __init__(self, reasons: list[str], candidate: DensLandmarks, hinted: bool = False):
        self.reasons = list(reasons)
        self.candidate = candidate
        todo = ("Check that the point given is inside C2, or provide a vertebrae_C2 mask." if hinted else
                "Give a point inside C2 (--hint-lps X Y Z, LPS mm) or a vertebrae_C2 mask.")
        head = "C2 candidate rejected at the given point: " if hinted else "C2 candidate rejected: "
        super().__init__(head + "; ".join(self.reasons) + ". " + todo)


#: Largest run of C2-free slices tolerated between the dens apex and the body, mm (engineering
#: default: one to two slices on 2-3 mm CT; a lytic lesion through the whole dens can exceed it, a
#: user point inside C2 then skips this check).
MAX_DENS_GAP_MM = 7.0
#: The dens apex lies in front of the canal centre: dens tip to ventral dura 7.7 +/- 1.7 mm
#: (JKNS 2018;61(4)) plus the epidural space and half the cord; less than this (mm) means a
#: structure at the canal (clivus/basion, C1 ring) was taken for the apex (engineering bound).
MIN_APEX_ANTERIOR_TO_CANAL_MM = 10.0
#: Largest left-right offset of the dens apex from the canal centre, mm (the dens is midline inside
#: the C1 ring; engineering bound, no published source).
MAX_APEX_LATERAL_TO_CANAL_MM = 8.0


def ai_apex_range_mm(spacing_mm) -> tuple[float, float]:
    """Accepted anteroinferior-body-to-apex distance (mm) for a CT with this voxel spacing.

    Mean +/- 3 SD of 37.6 +/- 3.3 mm (adult CT, Eur Spine J 2009;18:271), widened on each side by
    the largest voxel spacing (at least 2 mm): each landmark is placed to about one voxel.
    """
    m, sd = PRIOR_AI_TO_APEX_MM
    tol = max(2.0, float(np.max(spacing_mm)))
    return m - 3.0 * sd - tol, m + 3.0 * sd + tol


def plausibility_problems(lm: DensLandmarks, spacing_mm, *, c2_c: np.ndarray | None = None, cn: Canon | None = None,
                          volume: Volume | None = None, centre: dict | None = None,
                          check_gap: bool = True) -> list[str]:
    """Reasons why located C2 landmarks are implausible (empty list when plausible).

    Checks: anteroinferior body to dens apex within :func:`ai_apex_range_mm`; with the C2 mask
    (canonical view), no C2-free gap longer than :data:`MAX_DENS_GAP_MM` between apex and body;
    with the canal centre line (canonical ``{k: (j, i)}``), the apex at least
    :data:`MIN_APEX_ANTERIOR_TO_CANAL_MM` in front of the canal centre and within
    :data:`MAX_APEX_LATERAL_TO_CANAL_MM` of it left-right.

    Parameters
    ----------
    lm : DensLandmarks
    spacing_mm : (3,) array
        Voxel spacing (mm).
    c2_c : bool array (K, J, I), canonical, optional
    cn : Canon, optional
    volume : Volume, optional
    centre : dict, optional
        Canal centre per canonical slice.
    check_gap : bool
        False when a user point fixed the level (a lytic lesion may interrupt the dens).

    Returns
    -------
    list[str]
    """
    out = []
    lo, hi = ai_apex_range_mm(spacing_mm)
    d = lm.anteroinferior_to_apex_mm
    if not lo <= d <= hi:
        out.append(f"anteroinferior body to dens apex {d:.1f} mm is outside {lo:.1f}-{hi:.1f} mm "
                   f"(37.6 +/- 3 x 3.3 mm, Eur Spine J 2009;18:271, widened by the voxel size)")
    if cn is not None and c2_c is not None and check_gap:
        ks = np.nonzero(c2_c.any(axis=(1, 2)))[0]
        if ks.size:
            occ = c2_c[ks.min():ks.max() + 1].any(axis=(1, 2))
            run = best = 0
            for o in occ:
                run = 0 if o else run + 1
                best = max(best, run)
            gap = best * float(cn.spacing_mm[0])
            if gap > MAX_DENS_GAP_MM:
                out.append(f"the candidate dens is separated from the body by {gap:.1f} mm without bone "
                           f"(more than {MAX_DENS_GAP_MM:.0f} mm: two structures, or a lytic lesion through "
                           "the dens)")
    if cn is not None and volume is not None and centre:
        a = cn.index_from_original(volume.world_to_index(lm.apex_lps_mm))
        kk = np.array(sorted(centre))
        kn = int(kk[np.argmin(np.abs(kk - a[0]))])
        if abs(kn - a[0]) * float(cn.spacing_mm[0]) <= 10.0:
            cj, ci = centre[kn]
            ant = (cj - a[1]) * float(cn.spacing_mm[1])
            lat = (a[2] - ci) * float(cn.spacing_mm[2])
            if ant < MIN_APEX_ANTERIOR_TO_CANAL_MM:
                out.append(f"the dens apex candidate lies {ant:.1f} mm in front of the canal centre (at least "
                           f"{MIN_APEX_ANTERIOR_TO_CANAL_MM:.0f} mm expected: dens tip to ventral dura 7.7 mm, "
                           "JKNS 2018;61(4)): probably the clivus or the C1 ring")
            if abs(lat) > MAX_APEX_LATERAL_TO_CANAL_MM:
                out.append(f"the dens apex candidate lies {abs(lat):.1f} mm {'left' if lat > 0 else 'right'} "
                           f"of the canal centre (the dens is midline; at most {MAX_APEX_LATERAL_TO_CANAL_MM:.0f} mm)")
    return out


def _neural_z_nearest(volume: Volume, mask: np.ndarray, z_mm: float) -> tuple[np.ndarray, float] | None:
    idx = _local.argwhere(mask)  # = np.argwhere(mask)
    if idx.size == 0:
        return None
    pts = volume.index_to_world(idx.astype(float))
    dz = np.abs(pts[:, 2] - z_mm)
    near = dz <= dz.min() + 1e-3
    return pts[near], float(dz.min())


def brainstem_apex_offset_mm(volume: Volume, brainstem: np.ndarray, apex_lps_mm) -> float | None:
    """Cranio-caudal offset of the dens apex below the caudal end of a Brainstem contour.

    An independent check of the C2 level on radiotherapy CTs (it uses the contour, not the locator).

    Parameters
    ----------
    volume : Volume
        The CT (only its geometry is used).
    brainstem : bool array (K, J, I)
        Brainstem contour on the volume's grid.
    apex_lps_mm : (3,) array-like
        Dens apex (LPS mm).

    Returns
    -------
    float or None
        ``z(lowest brainstem voxel centre) - z(apex)`` in mm (LPS z = superior): positive when the
        apex lies below the end of the brainstem. None when the contour is empty. Expected within
        :data:`BRAINSTEM_APEX_BAND_MM` for a correct C2 (contour stopping at the dens tip,
        Brouwer et al. 2015, or at the foramen magnum, basion-dens interval < 8.5 mm on CT,
        Rojas et al. 2007).
    """
    idx = np.argwhere(brainstem)
    if idx.size == 0:
        return None
    z = volume.index_to_world(idx.astype(float))[:, 2]
    return float(z.min() - np.asarray(apex_lps_mm, float)[2])


def cord_apex_offset_mm(volume: Volume, neural: np.ndarray, apex_lps_mm,
                        max_dz_mm: float = 5.0) -> tuple[float, float] | None:
    """Position of the dens apex relative to the centre of a cord/brainstem contour at its level.

    Parameters
    ----------
    volume : Volume
    neural : bool array (K, J, I)
        Spinal cord and/or brainstem contour on the volume's grid.
    apex_lps_mm : (3,) array-like
    max_dz_mm : float
        The contour voxels nearest in z to the apex are used when within this distance.

    Returns
    -------
    (anterior_mm, left_mm) or None
        How far the apex lies anterior to the contour's centroid (positive = anterior; dens tip to
        ventral dura 7.7 +/- 1.7 mm, JKNS 2018;61(4), plus half the cord) and to its left
        (positive = patient left). None when no contour voxel lies within ``max_dz_mm`` in z.
    """
    a = np.asarray(apex_lps_mm, float)
    got = _neural_z_nearest(volume, neural, float(a[2]))
    if got is None or got[1] > max_dz_mm:
        return None
    c = got[0].mean(axis=0)
    return float(c[1] - a[1]), float(a[0] - c[0])


def plot_c2(volume: Volume, c2_mask: np.ndarray, landmarks: DensLandmarks, path, title: str = "C2 / dens") -> None:
    """Save a PNG of the C2 mask and landmarks over sagittal and coronal reformats through the dens.

    Reformats are axis-aligned planes through the waist, displayed in radiological convention:
    sagittal with anterior on the left and superior up; coronal with the patient's right on the
    image left (labelled R / L), superior up. Written atomically.

    Parameters
    ----------
    volume : Volume
    c2_mask : bool array (K, J, I)
    landmarks : DensLandmarks
    path : str or Path
        Output PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from osteoplan.atomic import atomic_file

    cn = Canon.of(volume)
    sp = cn.spacing_mm
    a = cn.to_canon(volume.array)
    m = cn.to_canon(c2_mask)
    pts = {n: cn.index_from_original(volume.world_to_index(p)) for n, p in (
        ("apex", landmarks.apex_lps_mm), ("waist", landmarks.waist_lps_mm),
        ("antero-inferior", landmarks.anteroinferior_body_lps_mm), ("body centre", landmarks.body_centre_lps_mm))}
    w = pts["waist"]
    ks = np.nonzero(m.any(axis=(1, 2)))[0]
    js = np.nonzero(m.any(axis=(0, 2)))[0]
    is_ = np.nonzero(m.any(axis=(0, 1)))[0]
    pad_k, pad_j, pad_i = int(30 / sp[0]), int(35 / sp[1]), int(35 / sp[2])
    k0, k1 = max(ks.min() - pad_k, 0), min(ks.max() + pad_k, a.shape[0] - 1)
    j0, j1 = max(js.min() - pad_j, 0), min(js.max() + pad_j, a.shape[1] - 1)
    i0, i1 = max(is_.min() - pad_i, 0), min(is_.max() + pad_i, a.shape[2] - 1)
    # sagittal plane through the landmarks' mean column, coronal through the dens (apex + waist)
    ii = int(round(np.mean([q[2] for q in pts.values()])))
    jj = int(round((pts["apex"][1] + pts["waist"][1]) / 2.0))
    cols = {"apex": "red", "waist": "yellow", "antero-inferior": "cyan", "body centre": "lime"}
    fig, axs = plt.subplots(1, 2, figsize=(12, 6.5))
    # sagittal: rows = k (superior up), columns = j (anterior on the left)
    sag = a[k0:k1 + 1, j0:j1 + 1, ii]
    ext = (j0 - 0.5, j1 + 0.5, k0 - 0.5, k1 + 0.5)
    axs[0].imshow(sag, cmap="gray", vmin=-250, vmax=1250, origin="lower", extent=ext, aspect=sp[0] / sp[1])
    axs[0].contour(np.arange(j0, j1 + 1), np.arange(k0, k1 + 1), m[k0:k1 + 1, j0:j1 + 1, ii].astype(float),
                   [0.5], colors="orange", linewidths=1.2)
    # coronal: rows = k, columns = i; patient right (low i) on the image left
    cor = a[k0:k1 + 1, jj, i0:i1 + 1]
    ext2 = (i0 - 0.5, i1 + 0.5, k0 - 0.5, k1 + 0.5)
    axs[1].imshow(cor, cmap="gray", vmin=-250, vmax=1250, origin="lower", extent=ext2, aspect=sp[0] / sp[2])
    axs[1].contour(np.arange(i0, i1 + 1), np.arange(k0, k1 + 1), m[k0:k1 + 1, jj, i0:i1 + 1].astype(float),
                   [0.5], colors="orange", linewidths=1.2)
    for name, p in pts.items():
        # filled when the point lies within 2 mm of the displayed plane, hollow (projected) otherwise
        on_sag = abs(p[2] - ii) * sp[2] <= 2.0
        on_cor = abs(p[1] - jj) * sp[1] <= 2.0
        axs[0].plot(p[1], p[0], "o", color=cols[name], ms=7, mfc=cols[name] if on_sag else "none", mew=2,
                    label=name)
        axs[1].plot(p[2], p[0], "o", color=cols[name], ms=7, mfc=cols[name] if on_cor else "none", mew=2)
    ax_w = cn.index_from_original(volume.world_to_index(landmarks.waist_lps_mm + 25 * landmarks.axis_unit))
    ax_b = cn.index_from_original(volume.world_to_index(landmarks.waist_lps_mm - 20 * landmarks.axis_unit))
    axs[0].plot([ax_b[1], ax_w[1]], [ax_b[0], ax_w[0]], "--", color="red", lw=1)
    axs[1].plot([ax_b[2], ax_w[2]], [ax_b[0], ax_w[0]], "--", color="red", lw=1)
    for ax, (lt, rt) in zip(axs, (("A", "P"), ("R", "L"))):
        ax.set_xticks([]); ax.set_yticks([])
        kw = dict(transform=ax.transAxes, color="white", fontsize=14, fontweight="bold", ha="center", va="center")
        ax.text(0.5, 0.96, "S", **kw); ax.text(0.5, 0.04, "I", **kw)
        ax.text(0.04, 0.5, lt, **kw); ax.text(0.96, 0.5, rt, **kw)
    axs[0].set_title("sagittal through the dens (anterior left)")
    axs[1].set_title("coronal through the dens (patient left = L)")
    axs[0].legend(loc="lower left", fontsize=8, framealpha=0.6, title="hollow = off-plane", title_fontsize=7)
    fig.suptitle(f"{title}: apex-AI {landmarks.anteroinferior_to_apex_mm:.1f} mm, waist "
                 f"{landmarks.waist_diameter_mm:.1f} mm, confidence {landmarks.confidence:.2f}")
    fig.tight_layout()
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, dpi=90, format="png")
    plt.close(fig)
