"""Metal instrument (trocar, K-wire, screw) on a control CT: a 3D segment with its tip.

Method (general reasons in brackets):

1. **Candidates**: voxels >= ``metal_hu`` within ``search_radius_mm`` of the expected line (the planned
   path mapped into the control CT) [an instrument placed for this plan lies near it; bone far away and
   dental metal are not searched]. ``metal_hu`` = 1500 HU by default: above cancellous and most cortical bone,
   but low enough for thin wires, whose partial-volume peak is only 1300-2000 HU for a 1 mm wire of
   3000 HU on 0.8-2 mm voxels (measured with :mod:`osteoplan.verification.synth`). With a registered
   ``reference`` (the planning CT), voxels exceeding it by >= ``excess_hu`` (500 HU) are candidates too
   [much of a thin wire on thick slices stays below 1500 HU, not below its excess over the anatomy].
2. **Grouping**: candidates are grouped after closing gaps of ``gap_mm`` (a thin wire on thick slices is
   cut into pieces); in each group the line gathering the most metal within 1 mm is found by RANSAC [a
   wire touching bright cortex forms one group with it], and the group is an instrument when the points
   within 1.5 mm of that line span at least ``min_length_mm`` with an RMS distance to it of at most
   ``max_rms_mm`` [bone cortex is a sheet, dental fillings are blobs].
3. **Axis**: robust line fit (iteratively reweighted least squares, voxels farther than 1.5 mm dropped)
   then refined by the centroid of the upper half of the metal profile in discs across the axis every
   0.25 mm [centroids of the partial-volume signal are sub-voxel; the upper half of a symmetric blurred
   profile keeps its centre and leaves out nearby cortex; streaks are roughly symmetric about the metal];
   with a ``reference``, on the excess over it. An instrument shorter than ``min_length_mm`` after this
   refinement is dropped.
4. **Ends**: the metal line density ``q(s)`` = integral over a disc across the axis (radius: the metal's
   radius + 2 blur sigmas, >= 1.5 mm) of the excess of the CT over its background, the background being the
   registered planning CT at the same anatomical point when given (``reference``; subtraction: the bone
   around the tip is removed point by point, however dense) or else the median of a ring around the disc.
   Each end is where ``q`` falls to half of its plateau (2-10 mm behind) above the baseline beyond, followed
   outwards across dips < 1 mm and repeated until it stays put (:func:`_end`) [integrated across the wire,
   the excess of a blurred cylinder of constant cross-section falls to exactly half its plateau at the end
   for any symmetric point-spread function, and hardly depends on where a thin wire lies between voxel
   centres, whereas the on-axis value of a 1 mm wire on 2 mm slices swings by a factor of 2-3 along it
   (the previous method: tips placed up to 7.7 mm off on the CThead benchmark)]. For the ends, the excess
   is weighted across the axis by a Gaussian matched to the blurred cross-section of the wire (sigma =
   hypot(diameter / 4, blur sigma across the axis)) [the residual of the subtraction (cortical edges
   sampled at other positions on the two CTs) and the noise fill the whole disc, the metal its centre: on
   the worst CThead trial, a 1.08 mm wire, the residual's RMS relative to the metal plateau is 0.11 over
   the 1.56 mm disc and 0.07-0.08 within 0.6-1 mm of the axis; the weighted density still falls to half
   its plateau at the end (symmetric weights, point-symmetric blur)], and with a ``reference`` divided point
   by point by ``nominal_metal_hu - reference`` [the metal fraction: a wire replaces the anatomy it lies
   in, so its excess is lower in dense bone than in soft tissue, which placed tips ending in the dens
   short; the fraction is constant along the wire]. Each end carries a stated
   uncertainty (the residual of the profile behind and beyond the end over the slope of the edge, a rise
   longer than the voxel size explains, a floor of a quarter of the largest voxel dimension; see
   :func:`_end`), infinite when there is no plateau of metal.
   ``q`` also gives the diameter (``q = area * (nominal metal HU - background)``; beam-hardening cupping
   makes it low).
5. **Field of view**: an end within ``fov_margin_mm`` of the CT's border is marked cut by the field of view.

The tip is the end closer to ``toward_lps_mm`` (the plan's target), else the end that is not cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from osteoplan.imaging.volume import Volume
from osteoplan.verification.geometry import unit
from osteoplan.anatomy import _local


@dataclass(frozen=True)
class Instrument:
    """One straight metal instrument found on a CT (LPS mm of that CT's frame).

    Attributes
    ----------
    tip_lps_mm : (3,) tip (half of the plateau of the metal line density).
    rear_lps_mm : (3,) the other visible end.
    direction_unit : (3,) axis from the rear towards the tip.
    visible_length_mm : float
    diameter_mm : float
        Estimate from the metal line density (assumes ``nominal_metal_hu``); for information.
    rear_cut_by_fov, tip_cut_by_fov : bool
        That end lies at the border of the field of view (the instrument continues outside it).
    fit_rms_mm : float
        RMS distance of the disc centroids to the fitted axis.
    n_voxels : int
        Candidate voxels of the group.
    tip_uncertainty_mm : float
        Stated uncertainty of the tip along the axis (see :func:`_end`); infinite when the image shows no
        plateau of metal behind the tip.
    """

    tip_lps_mm: np.ndarray
    rear_lps_mm: np.ndarray
    direction_unit: np.ndarray
    visible_length_mm: float
    diameter_mm: float
    rear_cut_by_fov: bool
    tip_cut_by_fov: bool
    fit_rms_mm: float
    n_voxels: int
    tip_uncertainty_mm: float = float("nan")

    def transformed(self, M: np.ndarray) -> "Instrument":
        """The same instrument in another frame (rigid 4x4 *M*)."""
        from dataclasses import replace

        return replace(self, tip_lps_mm=M[:3, :3] @ self.tip_lps_mm + M[:3, 3],
                       rear_lps_mm=M[:3, :3] @ self.rear_lps_mm + M[:3, 3],
                       direction_unit=M[:3, :3] @ self.direction_unit)

    def to_dict(self) -> dict:
        """Plain-JSON form (mm)."""
        r = lambda v: [round(float(x), 2) for x in v]  # noqa: E731
        return {"tip_lps_mm": r(self.tip_lps_mm), "rear_lps_mm": r(self.rear_lps_mm),
                "direction_unit": [round(float(x), 4) for x in self.direction_unit],
                "visible_length_mm": round(self.visible_length_mm, 1), "diameter_mm": round(self.diameter_mm, 1),
                "rear_cut_by_fov": self.rear_cut_by_fov, "tip_cut_by_fov": self.tip_cut_by_fov,
                "fit_rms_mm": round(self.fit_rms_mm, 2),
                "tip_uncertainty_mm": (round(self.tip_uncertainty_mm, 2) if np.isfinite(self.tip_uncertainty_mm)
                                       else None)}


def _nanmedian(a: np.ndarray, axis: int) -> np.ndarray:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows (outside the CT) give NaN, handled by callers
        return np.nanmedian(a, axis=axis)


def _nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=axis)


def _sample(volume: Volume, pts_lps: np.ndarray, fill: float = np.nan) -> np.ndarray:
    idx = volume.world_to_index(pts_lps.reshape(-1, 3))
    v = ndi.map_coordinates(volume.array, idx.T, order=1, mode="constant", cval=fill)
    return v.reshape(pts_lps.shape[:-1])


def _disc(direction: np.ndarray, radius_mm: float, step_mm: float) -> np.ndarray:
    """Offsets (N, 3) of a disc across *direction* (square grid of *step_mm* inside *radius_mm*)."""
    d = unit(direction)
    a = unit(np.cross(d, [1.0, 0.0, 0.0] if abs(d[0]) < 0.9 else [0.0, 1.0, 0.0]))
    b = np.cross(d, a)
    g = np.arange(-radius_mm, radius_mm + 1e-9, step_mm)
    u, v = np.meshgrid(g, g, indexing="ij")
    keep = u ** 2 + v ** 2 <= radius_mm ** 2
    return u[keep][:, None] * a + v[keep][:, None] * b


def _robust_line(pts: np.ndarray, w: np.ndarray, keep_mm: float = 1.5, n_iter: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Weighted PCA line (centre, unit direction), refitted without points farther than *keep_mm*."""
    use = np.ones(len(pts), bool)
    c, d = pts.mean(0), np.array([0.0, 0.0, 1.0])
    for _ in range(n_iter):
        ww = w[use]
        c = np.average(pts[use], axis=0, weights=ww)
        X = (pts[use] - c) * np.sqrt(ww)[:, None]
        d = np.linalg.svd(X, full_matrices=False)[2][0]
        v = pts - c
        perp = np.linalg.norm(v - (v @ d)[:, None] * d, axis=1)
        new = perp <= max(keep_mm, 2.0 * np.sqrt(np.average(perp[use] ** 2, weights=ww)) if _ == 0 else keep_mm)
        if new.sum() < 5 or np.array_equal(new, use):
            break
        use = new
    return c, unit(d)


def detect_instruments(volume: Volume, line_point_lps_mm=None, line_direction=None, *, toward_lps_mm=None,
                       search_radius_mm: float = 25.0, metal_hu: float = 1500.0, gap_mm: float = 2.0,
                       min_length_mm: float = 8.0, max_rms_mm: float = 1.5, nominal_metal_hu: float = 3000.0,
                       fov_margin_mm: float = 2.0, min_diameter_mm: float = 0.5, reference: Volume | None = None,
                       reference_from_volume=None, excess_hu: float = 500.0) -> list[Instrument]:
    """Find straight metal instruments on *volume* (see module docstring).

    Parameters
    ----------
    volume : Volume
        Control CT (HU).
    line_point_lps_mm, line_direction : (3,), optional
        The expected line (the planned path in this CT's frame); candidates farther than
        *search_radius_mm* from it are ignored. None: the whole CT is searched.
    toward_lps_mm : (3,), optional
        A point the tip points to (the plan's target): of the two ends, the one closer to it is the tip.
    search_radius_mm, metal_hu, gap_mm, min_length_mm, max_rms_mm, nominal_metal_hu, fov_margin_mm : float
        Configurable defaults (see module docstring), no published source.
    min_diameter_mm : float
        A line is an instrument only when its metal line density equals at least this diameter of nominal
        metal [an instrument adds metal all along its length; scattered bright cortical voxels of a real CT
        that happen to line up do not]. On CThead (real, skull cortex up to ~1850 HU), searched whole at
        1500 HU, one bone edge still passes (0.59 mm-equivalent, 18 mm long, 40 mm from the C2 path): the
        search radius around the planned line is what keeps it out of ``osteoplan verify``.
    reference : Volume, optional
        A CT of the same patient without the instrument (the planning CT), registered:
        *reference_from_volume* (4, 4) maps this CT's LPS to the reference's. With it (and the expected
        line), voxels exceeding the reference by >= *excess_hu* are candidates too [a thin wire on thick
        slices stays below *metal_hu* over much of its length, but its excess over the anatomy it sits in
        remains], and the metal line density, the axis and the ends are measured on the excess over it
        (see :func:`_metal_line_density`).
    excess_hu : float
        Configurable default (no published source): 500 HU, above the registration residual at cortical
        edges and the noise, below the on-axis excess of a 1 mm wire on 2 mm slices (500-1500 HU in the
        synthetic CThead benchmark).

    Returns
    -------
    list of Instrument
        Ordered by distance of the tip to the expected line (closest first); empty when none.
    """
    a = volume.array
    sp = volume.spacing_mm
    cand = a >= metal_hu
    lp = ld = None
    if line_point_lps_mm is not None and line_direction is not None:
        lp, ld = np.asarray(line_point_lps_mm, float), unit(line_direction)
    if lp is not None and cand.any():
        idx = np.argwhere(cand)
        pts = volume.index_to_world(idx.astype(float))
        v = pts - lp
        far = np.linalg.norm(v - (v @ ld)[:, None] * ld, axis=1) > search_radius_mm
        cand[tuple(idx[far].T)] = False
    if reference is not None and lp is not None:
        cand |= _excess_candidates(volume, reference, reference_from_volume, lp, ld, search_radius_mm, excess_hu)
    if not cand.any():
        return []
    # group pieces across gaps (thin wires on thick slices)
    grow = np.maximum(1, np.round(gap_mm / 2.0 / sp).astype(int))  # closes gaps of ~gap_mm
    closed = ndi.binary_dilation(cand, np.ones(tuple(2 * grow + 1), bool))
    lab, n = _local.cc_label(closed)
    lab = np.where(cand, lab, 0)
    groups: list[np.ndarray] = []
    objs = ndi.find_objects(lab)
    for g in range(1, n + 1):
        sl = objs[g - 1]
        if sl is None:
            continue
        idx = np.argwhere(lab[sl] == g) + np.array([s_.start for s_ in sl])
        if len(idx) >= 3:
            groups.append(idx)
    # merge collinear pieces (a thin wire broken by partial volume or streaks): axes within 5 deg and
    # each piece's centre within 1.5 mm of the other's axis
    fits = [_fit(volume, g, metal_hu) for g in groups]
    merged = True
    while merged and len(groups) > 1:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                (ci, di, li), (cj, dj, lj) = fits[i][:3], fits[j][:3]
                if min(li, lj) < 1.0 and max(li, lj) < 1.0:
                    continue
                if abs(di @ dj) < np.cos(np.radians(5.0)):
                    continue
                dref = di if li >= lj else dj
                cref, coth = (ci, cj) if li >= lj else (cj, ci)
                v = coth - cref
                if np.linalg.norm(v - (v @ dref) * dref) > 1.5:
                    continue
                groups[i] = np.concatenate([groups[i], groups[j]])
                fits[i] = _fit(volume, groups[i], metal_hu)
                del groups[j], fits[j]
                merged = True
                break
            if merged:
                break
    out: list[Instrument] = []
    for idx, (c, d, length, rms, pts) in zip(groups, fits):
        if length < min_length_mm or rms > max_rms_mm:
            continue
        inst = _refine(volume, pts, c, d, nominal_metal_hu, fov_margin_mm, toward_lps_mm, reference,
                       reference_from_volume)
        if inst is not None and inst.diameter_mm >= min_diameter_mm and inst.visible_length_mm >= min_length_mm:
            out.append(_with_count(inst, len(idx)))
    if lp is not None:
        def dist(i: Instrument) -> float:
            v = i.tip_lps_mm - lp
            return float(np.linalg.norm(v - (v @ ld) * ld))
        out.sort(key=dist)
    return out


def _excess_candidates(volume: Volume, reference: Volume, reference_from_volume, lp: np.ndarray, ld: np.ndarray,
                       radius_mm: float, excess_hu: float) -> np.ndarray:
    """Voxels within *radius_mm* of the line (lp, ld) where *volume* exceeds the registered *reference* by
    >= *excess_hu* (bool, volume's shape). The reference is resampled (trilinear) only in the box around the
    line's part inside the volume."""
    shape = np.asarray(volume.shape)
    sp = np.abs(np.asarray(volume.spacing_mm, float))
    diag = float(np.linalg.norm(shape * sp))
    centre = volume.index_to_world((shape - 1) / 2.0)
    s0 = float((centre - lp) @ ld)
    ss = np.arange(s0 - diag, s0 + diag, float(sp.min()))
    idx = volume.world_to_index(lp + ss[:, None] * ld)
    g = radius_mm / sp
    keep = np.all((idx >= -g) & (idx <= shape - 1 + g), axis=1)
    out = np.zeros(volume.shape, bool)
    if not keep.any():
        return out
    lo = np.maximum(np.floor(idx[keep].min(0) - g), 0).astype(int)
    hi = np.minimum(np.ceil(idx[keep].max(0) + g) + 1, shape).astype(int)
    if np.any(hi <= lo):
        return out
    M = np.asarray(reference_from_volume, float)
    # box index -> volume index -> volume LPS -> reference LPS -> reference index
    A = np.linalg.inv(reference.affine) @ M @ volume.affine
    ref = ndi.affine_transform(reference.array.astype(np.float32, copy=False), A[:3, :3], offset=A[:3, :3] @ lo + A[:3, 3],
                               output_shape=tuple(hi - lo), order=1, mode="constant", cval=np.nan)
    box = tuple(slice(int(a_), int(b_)) for a_, b_ in zip(lo, hi))
    exc = (volume.array[box] - ref) >= excess_hu  # NaN (outside the reference) compares False
    if exc.any():
        ii = np.argwhere(exc)
        v = volume.index_to_world((ii + lo).astype(float)) - lp
        far = np.linalg.norm(v - (v @ ld)[:, None] * ld, axis=1) > radius_mm
        exc[tuple(ii[far].T)] = False
    out[box] = exc
    return out


def _ransac_line(pts: np.ndarray, w: np.ndarray, tol_mm: float = 1.0, n_pairs: int = 300) -> np.ndarray:
    """Inlier mask of the line through two of *pts* that gathers the most weight within *tol_mm* (RANSAC,
    fixed seed: deterministic) [a wire touching bright bone forms one group with it; the line is the wire]."""
    rng = np.random.default_rng(0)
    n = len(pts)
    i, j = rng.integers(0, n, n_pairs), rng.integers(0, n, n_pairs)
    dvec = pts[j] - pts[i]
    ln = np.linalg.norm(dvec, axis=1)
    ok = ln >= 3.0
    if not ok.any():
        return np.ones(n, bool)
    best, best_score = None, -1.0
    for a, dv, l_ in zip(pts[i[ok]], dvec[ok], ln[ok]):
        u = dv / l_
        v = pts - a
        perp = np.linalg.norm(v - (v @ u)[:, None] * u, axis=1)
        inl = perp <= tol_mm
        score = float(w[inl].sum())
        if score > best_score:
            best, best_score = inl, score
    return best


def _fit(volume: Volume, idx: np.ndarray, metal_hu: float):
    """(centre, axis, length_mm, rms_mm, points) of the line in a group of candidate voxels.

    RANSAC line (:func:`_ransac_line`) then a robust least-squares fit of its inliers; length and RMS are
    those of the points within 1.5 mm of the fitted axis, which are the points returned.
    """
    pts = volume.index_to_world(idx.astype(float))
    w = np.clip(volume.array[tuple(idx.T)] - metal_hu + 100.0, 1.0, None)
    if len(pts) < 3:
        return pts.mean(0), np.array([0.0, 0.0, 1.0]), 0.0, 0.0, pts
    inl = _ransac_line(pts, w) if len(pts) >= 10 else np.ones(len(pts), bool)
    c, d = _robust_line(pts[inl], w[inl])
    v = pts - c
    s = v @ d
    perp = np.linalg.norm(v - s[:, None] * d, axis=1)
    near = perp <= 1.5
    if near.sum() < 3:
        return c, d, 0.0, float("inf"), pts
    rms = float(np.sqrt(np.mean(perp[near] ** 2)))
    return c, d, float(s[near].max() - s[near].min()), rms, pts[near]


def _with_count(inst: Instrument, n: int) -> Instrument:
    from dataclasses import replace

    return replace(inst, n_voxels=int(n))


def _at_border(volume: Volume, p: np.ndarray, margin_mm: float) -> bool:
    idx = volume.world_to_index(p[None])[0]
    m = margin_mm / volume.spacing_mm
    return bool(np.any(idx < m) or np.any(idx > np.asarray(volume.shape) - 1 - m))


def _extent(pts: np.ndarray, c: np.ndarray, d: np.ndarray, near_mm: float = 1.5) -> tuple[float, float]:
    """Extent along the axis of the candidate voxels lying within *near_mm* of it."""
    v = pts - c
    s = v @ d
    near = np.linalg.norm(v - s[:, None] * d, axis=1) <= near_mm
    s = s[near] if near.sum() >= 2 else s
    return float(s.min()), float(s.max())



def _metal_line_density(volume: Volume, c: np.ndarray, d: np.ndarray, ss: np.ndarray, radius_mm: float,
                        step_mm: float, reference: Volume | None, reference_from_volume: np.ndarray | None,
                        weight_sigma_mm: float | None = None, metal_hu: float | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Metal line density ``q(s)`` (HU mm^2) along the axis ``c + s d``, and the background HU there.

    ``q(s)`` is the integral over a disc of *radius_mm* across the axis of the excess of the CT over its
    background. The background is the *reference* CT (the planning CT, registered: ``reference_from_volume``
    maps this CT's LPS to the reference's) at the same anatomical point when given [subtraction: the bone
    around the tip is removed point by point, however dense or uneven]; otherwise the median of a ring
    0.5-2.5 mm outside the disc in the same slab [a local estimate; biased where cortex runs along the wire].

    weight_sigma_mm : float, optional
        Weight the excess across the axis by ``exp(-r^2 / (2 sigma^2))`` (``r`` the distance to the axis),
        normalised so that the weights average 1 over the disc [matched filter: the blurred cross-section of a
        thin wire is close to a Gaussian of that sigma; the subtraction residual and the noise fill the whole
        disc, the metal its centre. For a point-symmetric point-spread function and weights symmetric about
        the axis, the weighted line density of a cylinder end still falls to exactly half its plateau at the
        end]. None: plain integral.
    metal_hu : float, optional
        With a *reference*: divide the excess by ``metal_hu - reference`` point by point (not below
        ``0.2 * metal_hu``), so that ``q`` is the metal's cross-section (mm^2, times the weights) rather than
        HU mm^2 [a voxel holding a fraction ``f`` of metal reads ``(1 - f) anatomy + f metal``: its excess over
        the anatomy is ``f (metal - anatomy)``, lower where the wire enters dense bone. A thin wire ending in
        the dens (800-1000 HU) after crossing soft tissue has an excess plateau behind the tip higher than at
        the tip, which set the half level too high and placed the tip short: on the worst CThead trials
        (seeds 11 and 1028, 1.08 and 1.34 mm wires) the metal-alone excess fell by 15-25 % over the last
        10 mm. The fraction is constant along a cylinder whatever it crosses]. The nominal value is not the
        scanner's (beam hardening lowers it): a wrong ``metal_hu`` leaves part of the effect, never adds one.

    Returns
    -------
    q : (S,) float
        NaN where part of the disc lies outside either CT.
    background : (S,) float
        Median background HU over the disc (reference) or the ring.
    """
    disc = _disc(d, radius_mm, step_mm)
    pts = (c + ss[:, None] * d)[:, None, :] + disc[None]
    v = _sample(volume, pts)
    if reference is not None:
        M = np.asarray(reference_from_volume, float)
        r = _sample(reference, pts @ M[:3, :3].T + M[:3, 3])
        x = v - r
        if metal_hu is not None:  # metal fraction: the metal replaces the anatomy it lies in
            x = x / np.maximum(metal_hu - r, 0.2 * metal_hu)
        bg = _nanmedian(r, axis=1)
    else:
        ring = _disc(d, radius_mm + 2.5, step_mm)
        ring = ring[np.linalg.norm(ring, axis=1) >= radius_mm + 0.5]
        bg = _nanmedian(_sample(volume, (c + ss[:, None] * d)[:, None, :] + ring[None]), axis=1)
        x = v - bg[:, None]
    if weight_sigma_mm is not None:
        wgt = np.exp(-0.5 * np.sum(disc ** 2, axis=1) / weight_sigma_mm ** 2)
        x = x * (wgt / wgt.mean())[None, :]
    ok = np.isfinite(x).all(1)
    q = np.where(ok, np.where(ok[:, None], x, 0.0).sum(1) * step_mm * step_mm, np.nan)
    return q, bg


def _end(ss: np.ndarray, q: np.ndarray, e: float, sign: int, sigma_along_mm: float,
         max_gap_mm: float = 1.0, floor_mm: float = 0.0) -> tuple[float, bool, float]:
    """End of the metal near the coarse end *e*: where the metal line density *q* falls to half of its plateau.

    The plateau is the median of *q* 2-10 mm behind the end, the baseline the median 3-12 mm beyond it
    (clipped to +-25 % of the plateau). *q* is followed outwards (*sign* +1: towards larger s) while it
    stays above half-way, across dips shorter than *max_gap_mm*, and the search is repeated from the new
    end until it stays put [integrated across the wire, the excess of a blurred cylinder of constant cross
    section falls to exactly half its plateau at the end for any symmetric point-spread function, and does
    not depend on where the wire lies between voxel centres, unlike the on-axis value; the last millimetres
    of a thin wire may lie below the candidate threshold].

    Returns
    -------
    end_s : float
        Position along the axis (mm).
    cut : bool
        The CT ends before the metal does (field of view), or there is too little profile behind.
    uncertainty_mm : float
        Stated uncertainty of the end: ``sqrt(u_level^2 + u_ramp^2 + floor^2)``. ``u_level`` is the shift of
        the half-way crossing caused by a residual of two spreads of *q* (``k = 2``, the coverage factor of
        JCGM 100:2008 (GUM) 6.3) divided by the slope of a Gaussian-blurred step at its middle,
        ``(plateau - baseline) / (sqrt(2 pi) sigma_edge)``: ``u_level = 2 * rms * sqrt(2 pi) * sigma_edge /
        (plateau - baseline)``, with ``rms`` the larger root-mean-square deviation of *q* from its median
        2-10 mm behind the end and 3-12 mm beyond it (not a robust spread: the subtraction residual left by
        cortical edges is a structured signal, not outliers), and ``sigma_edge`` the larger of
        ``w / 1.349`` (``w`` the 25-75 % rise length) and *sigma_along_mm* [on the CThead benchmark the
        previous figure, the robust spread behind times ``w`` over the plateau, was 1.86 times too small for
        a Gaussian edge and missed the residual beyond the end: a 1.46 mm error came with 0.9 mm stated].
        ``u_ramp`` is half the rise length beyond what the voxel size explains (``w - 1.349 sigma_along``: a
        rise longer than the scanner's blur means the end itself is smeared - bent, broken or fading metal);
        ``floor`` = *floor_mm* (the sampling limit). Infinite when no plateau of metal is found.
    """
    ds = float(ss[1] - ss[0])
    inside = np.isfinite(q)
    unc = float("inf")
    cut = False
    for _ in range(6):
        rel = (ss - e) * sign
        beh = (rel >= -10.0) & (rel <= -2.0) & inside
        if beh.sum() * ds < 2.0:
            return e, True, unc
        plateau = float(np.median(q[beh]))
        ahead = (rel >= 3.0) & (rel <= 12.0) & inside
        base = float(np.median(q[ahead])) if ahead.sum() * ds >= 2.0 else 0.0
        if plateau <= 0:
            return e, False, unc
        base = float(np.clip(base, -0.25 * plateau, 0.25 * plateau))

        def walk(level: float) -> tuple[int, bool]:
            """Last sample >= *level* going outwards from 2 mm inside the end (moved inwards, up to 10 mm,
            until the profile is above *level*), across dips shorter than *max_gap_mm*."""
            j = int(np.argmin(np.abs(rel + 2.0)))
            while 0 <= j - sign < len(ss) and rel[j - sign] >= -10.0 and not (inside[j] and q[j] >= level):
                j -= sign
            last, gap = j, 0
            while True:
                nj = j + sign
                if not 0 <= nj < len(ss) or not inside[nj]:
                    return last, gap == 0  # ran out of CT (or window) while still on metal
                j = nj
                if q[j] >= level:
                    last, gap = j, 0
                else:
                    gap += 1
                    if gap * ds > max_gap_mm:
                        return last, False

        hm = base + 0.5 * (plateau - base)
        last, cut = walk(hm)
        nxt = last + sign
        new = float(ss[last])
        if 0 <= nxt < len(ss) and inside[nxt] and q[last] != q[nxt]:
            new += (q[last] - hm) / (q[last] - q[nxt]) * (ss[nxt] - ss[last])
        if cut or abs(new - e) < 0.05:
            e = new
            break
        e = new
    rel = (ss - e) * sign
    beh = (rel >= -10.0) & (rel <= -2.0) & inside
    if beh.sum() * ds < 2.0:
        return e, True, unc
    l25, _ = walk(base + 0.25 * (plateau - base))
    l75, _ = walk(base + 0.75 * (plateau - base))
    w = abs(float(ss[l25] - ss[l75]))
    def rms(m: np.ndarray) -> float:
        return float(np.sqrt(np.mean((q[m] - np.median(q[m])) ** 2)))

    spread = rms(beh)
    ahead = (rel >= 3.0) & (rel <= 12.0) & inside
    if ahead.sum() * ds >= 2.0:
        spread = max(spread, rms(ahead))
    # a residual dq at the crossing moves it by dq / slope, slope of a Gaussian-blurred step at its middle =
    # (plateau - base) / (sqrt(2 pi) sigma_edge); k = 2 residual spreads (coverage factor of JCGM 100:2008, 6.3)
    sigma_edge = max(w / 1.349, sigma_along_mm, ds)
    u_level = 2.0 * spread * np.sqrt(2.0 * np.pi) * sigma_edge / max(plateau - base, 1e-6)
    u_ramp = max(0.0, w - 1.349 * sigma_along_mm) / 2.0
    return e, bool(cut), float(np.sqrt(u_level ** 2 + u_ramp ** 2 + floor_mm ** 2))


def _refine(volume: Volume, pts: np.ndarray, c: np.ndarray, d: np.ndarray, nominal_metal_hu: float,
            fov_margin_mm: float, toward, reference: Volume | None = None,
            reference_from_volume: np.ndarray | None = None) -> Instrument | None:
    """Sub-voxel axis (disc centroids) and ends (half of the plateau of the metal line density, :func:`_end`)."""
    step = float(min(0.4, volume.spacing_mm.min() / 2))
    s0, s1 = _extent(pts, c, d)
    for _ in range(2):
        R = 3.0
        disc = _disc(d, R, step)
        ss = np.arange(s0 - 6.0, s1 + 6.0 + 1e-9, 0.25)
        centres = c + ss[:, None] * d
        pts_d = centres[:, None, :] + disc[None]
        vals = _sample(volume, pts_d, fill=np.nan)  # (S, N)
        if reference is not None:  # excess over the registered reference: bone removed point by point
            Mr = np.asarray(reference_from_volume, float)
            vals = vals - _sample(reference, pts_d @ Mr[:3, :3].T + Mr[:3, 3], fill=np.nan)
        inside = np.isfinite(vals)
        bg = _nanmedian(np.where(inside, vals, np.nan), axis=1)
        bg = np.where(np.isfinite(bg), bg, 0.0)
        # upper half of each slab's metal profile only: a symmetric blurred profile keeps its centre, and bone
        # cortex in the disc (well below the metal's peak) does not pull the centroid
        peak = np.max(np.where(inside, vals, -np.inf), axis=1)
        thr = np.maximum(bg + 0.5 * (peak - bg), bg + 300.0)
        excess = np.where(inside, np.clip(vals - thr[:, None], 0, None), 0.0)
        # disc centroids every ~1 mm where there is metal
        qs = excess.sum(1)
        good = qs > 0.2 * np.percentile(qs[qs > 0], 75) if np.any(qs > 0) else np.zeros(len(ss), bool)
        good &= (ss >= s0) & (ss <= s1) & inside.all(1)  # a disc cut by the field of view would pull its centroid
        if good.sum() < 4:
            return None
        cent = centres[good] + (excess[good] @ disc) / qs[good][:, None]
        c_new, d_new = _robust_line(cent, qs[good], keep_mm=0.75)
        if d_new @ d < 0:
            d_new = -d_new
        c, d = c_new, d_new
        v = cent - c
        rms = float(np.sqrt(np.mean(np.sum((v - (v @ d)[:, None] * d) ** 2, axis=1))))
        s0, s1 = _extent(pts, c, d)
    # ends: half of the plateau of the metal line density (excess over the background integrated across the
    # axis, weighted by the wire's blurred cross-section), see :func:`_metal_line_density` and :func:`_end`
    sig_i = 0.5 * np.abs(np.asarray(volume.spacing_mm, float))  # (k, j, i): voxel box + reconstruction blur
    sig_xyz = sig_i[::-1]
    sigma_along = float(np.sqrt(np.sum((d * sig_xyz) ** 2)))
    # the largest blur across the axis: the largest eigenvalue of the covariance projected on the plane
    Pp = np.eye(3) - np.outer(d, d)
    sigma_across = float(np.sqrt(np.linalg.eigvalsh(Pp @ np.diag(sig_xyz ** 2) @ Pp).max()))
    # disc radius: first pass 3 mm (diameter estimate), then the metal radius + 2 blur sigmas (>= 1.5 mm)
    mids = np.linspace(s0 + 0.25 * (s1 - s0), s1 - 0.25 * (s1 - s0), 9)
    q_mid, ref_mid = _metal_line_density(volume, c, d, mids, 3.0, step, reference, reference_from_volume)
    bgv = float(_nanmedian(ref_mid, axis=0)) if np.isfinite(ref_mid).any() else 0.0
    plateau = float(np.nanmedian(q_mid)) if np.isfinite(q_mid).any() else 0.0
    area = max(plateau, 0.0) / max(nominal_metal_hu - bgv, 1.0)
    diam = 2.0 * float(np.sqrt(area / np.pi))
    radius = max(1.5, 0.5 * diam + 2.0 * sigma_across)
    ds = 0.1
    res = []
    for s_coarse, sign in ((s0, -1), (s1, +1)):
        ss = np.arange(s_coarse - 14.0, s_coarse + 14.0 + 1e-9, ds)
        q, _ = _metal_line_density(volume, c, d, ss, radius, step, reference, reference_from_volume,
                                   weight_sigma_mm=float(np.hypot(0.25 * diam, sigma_across)),
                                   metal_hu=nominal_metal_hu)
        # floor: a quarter of the largest voxel dimension (sampling limit of a half-way crossing on real,
        # imperfect data; configurable default, no published source)
        res.append(_end(ss, q, s_coarse, sign, sigma_along, floor_mm=0.25 * float(np.max(volume.spacing_mm))))
    (e0, c0, u0), (e1, c1, u1) = res
    p0, p1 = c + e0 * d, c + e1 * d
    cut0 = c0 or _at_border(volume, p0, fov_margin_mm)
    cut1 = c1 or _at_border(volume, p1, fov_margin_mm)
    # orientation: tip = end closer to `toward`, else the end not cut by the field of view
    if toward is not None:
        t = np.asarray(toward, float)
        tip_is_1 = np.linalg.norm(p1 - t) <= np.linalg.norm(p0 - t)
    else:
        tip_is_1 = not (cut1 and not cut0)
    if tip_is_1:
        tip, rear, tcut, rcut, dd, unc = p1, p0, cut1, cut0, d, u1
    else:
        tip, rear, tcut, rcut, dd, unc = p0, p1, cut0, cut1, -d, u0
    return Instrument(tip_lps_mm=tip, rear_lps_mm=rear, direction_unit=dd, visible_length_mm=float(abs(e1 - e0)),
                      diameter_mm=diam, rear_cut_by_fov=bool(rcut), tip_cut_by_fov=bool(tcut), fit_rms_mm=rms,
                      n_voxels=0, tip_uncertainty_mm=float(unc))
