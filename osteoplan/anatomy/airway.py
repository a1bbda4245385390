"""The airway from CT: connected internal air near the midline, split into pharynx, larynx, trachea.

No trained weights. Split out of :mod:`osteoplan.anatomy.segment`, which re-exports
:func:`segment_airway`; :func:`split_airway` divides that mask by level.
Internal orientation: the canonical view of :class:`~osteoplan.anatomy.segment.Canon`
(k -> superior, j -> posterior, i -> patient left). Engineering defaults unless a source is given.

Anatomy used (adult):

* The larynx extends from the laryngeal inlet (tip of the epiglottis, about C3) to the lower
  border of the cricoid cartilage (about C6), where the trachea begins; the laryngopharynx
  (hypopharynx, piriform sinuses) lies behind and beside it down to the same level
  (Gray's Anatomy, 42nd ed., Standring (ed.), Elsevier 2020, chapter "Larynx"; chapter "Pharynx").
* Length of the larynx: 44 mm in adult men, 36 mm in women (Gray's Anatomy of the Human Body,
  20th ed., Lewis (ed.), Lea & Febiger 1918, section "The Larynx": "Its average measurements
  in the adult are ... length 44 mm (males), 36 mm (females)").
* Coronal diameter of the normal adult trachea: upper limit 25 mm in men, 21 mm in women
  (Breatnach E, Abbott GC, Fraser RG. Dimensions of the normal human trachea. AJR Am J
  Roentgenol 1984;142:903-906).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from osteoplan.anatomy import _local
from osteoplan.anatomy.segment import (AIR_THRESHOLD_HU, Canon, _box_dilate, _box_erode, _label_sizes, _lookup, _smooth,
                                       fill_holes_in_planes, segment_body)
from osteoplan.imaging.volume import Volume

#: Larynx length, laryngeal inlet to the lower border of the cricoid (mm): the mean of the adult
#: male (44 mm) and female (36 mm) values of Gray's Anatomy (20th ed. 1918), sex being unknown.
LARYNX_LENGTH_MM = 40.0
#: Upper limit of the normal adult tracheal coronal diameter (men), Breatnach et al. AJR 1984.
TRACHEA_MAX_WIDTH_MM = 25.0
#: The airway is "widened" (pharynx reached) when its left-right extent is at least this many
#: times the tracheal / subglottic width below (engineering default, no published source).
WIDEN_RATIO = 1.5
#: ... and sustained over at least this height (mm; engineering default).
WIDEN_SUSTAIN_MM = 6.0
#: Height of the lowest part of that run whose median width is the tracheal reference (mm;
#: engineering default).
TRACHEA_REF_MM = 30.0
#: Shortest run of single, compact, <= 25 mm wide airway slices taken as the laryngotracheal
#: tube (the tracheal reference; mm, engineering default).
TRACHEA_RUN_MIN_MM = 15.0
#: Margin around the subglottic lumen within which air in the larynx levels counts as larynx;
#: air behind or beside it is the hypopharynx (piriform sinuses). Engineering default.
LARYNX_COLUMN_MARGIN_MM = 4.0
#: Vertebral-level fallback (needs the C2 inferior endplate): the inlet this far below the C2
#: inferior endplate. Textbooks put the tip of the epiglottis at C3 (about 12 mm below it), but in
#: the OpenKBP head-and-neck patients the contoured Larynx top lies a median 45 mm below the C2
#: anteroinferior point (71 cases, benchmarks/openkbp_airway.py; the larynx descends with age):
#: 40 mm is an engineering default between the two, no published source.
C2_TO_INLET_MM = 40.0
#: With the C2 level known, the inlet found on the image must lie within this range below the C2
#: inferior endplate (mm; from the C2/C3 disc to about C6; engineering default), else the
#: vertebral-level fallback is used.
INLET_BELOW_C2_MM = (5.0, 80.0)
#: A widening counts as the pharynx only when the airway section is at most this deep
#: antero-posteriorly (mm); deeper wide sections are the nasal / oral cavity (engineering default).
PHARYNX_MAX_DEPTH_MM = 35.0
#: Largest antero-posterior depth of the pharyngeal lumen in front of its posterior wall: air more
#: anterior (nasal and oral cavities) is not labelled pharynx (engineering default, no published source).
PHARYNX_DEPTH_MM = 35.0
#: Half-width of the in-plane closing that seals a tracheostomy / stoma opening (mm; engineering default).
STOMA_CLOSING_MM = 6.0


def segment_airway(volume: Volume, body: np.ndarray | None = None,
                   threshold_hu: float = AIR_THRESHOLD_HU, midline_mm: float = 30.0) -> np.ndarray:
    """Airway (nasopharynx to trachea) as one mask: connected air inside the body near the midline.

    Air (smoothed HU < ``threshold_hu``) inside the filled body outline; per axial slice only air
    regions whose centre lies within ``midline_mm`` of the body's midline and whose area is under
    1500 mm^2 are kept (this drops lungs, mastoid cells and lateral sinuses); the largest 3D
    component and any other component of at least 1 mL within the midline band are kept. Air that
    reaches the outside through an opening narrower than about ``2 * STOMA_CLOSING_MM`` is added
    when it joins the airway so found (the body outline is closed in-plane by a box of that
    half-width before hole filling): a tracheostomy stoma, the nasal cavity open at the nostrils,
    the trachea where a cropped CT (e.g. OpenKBP's dose region) cuts through the neck. On the 170
    OpenKBP CTs this adds air in 155 (3 to 1,170 voxels of about 4 x 4 x 2.5 mm) and never
    removes any. :func:`split_airway` divides the result into
    pharynx, larynx and trachea. Engineering defaults.

    Parameters
    ----------
    volume : Volume
        CT in HU.
    body : bool array (K, J, I), optional
        Body mask (:func:`~osteoplan.anatomy.segment.segment_body` when omitted).
    threshold_hu : float
        Air threshold on the lightly smoothed CT (default -500 HU, engineering default).
    midline_mm : float
        Largest distance (mm) of an air region's centre from the body's midline.

    Returns
    -------
    bool array (K, J, I); empty when the CT has no internal air.
    """
    cn = Canon.of(volume)
    if body is None:
        body = segment_body(volume)
    a = cn.to_canon(volume.array)
    b = cn.to_canon(body)
    sp = cn.spacing_mm
    sm = _smooth(a, sp, 0.5)
    sel = _midline_air((sm < threshold_hu) & b, b, sp, midline_mm)
    if not sel.any():
        return np.zeros(volume.shape, bool)
    # tracheostomy / stoma: air connected to the outside through a narrow opening is not inside the
    # filled body; close the outline in-plane and keep what joins the airway already found
    rj = int(round(STOMA_CLOSING_MM / float(sp[1])))
    ri = int(round(STOMA_CLOSING_MM / float(sp[2])))
    if min(rj, ri) >= 1:
        # separable box closing (fast); pad so the image border does not erode the body
        size = (1, 2 * rj + 1, 2 * ri + 1)
        bp = np.pad(b, ((0, 0), (rj + 1, rj + 1), (ri + 1, ri + 1)))
        closed = _box_erode(_box_dilate(bp, size), size)[:, rj + 1:-rj - 1, ri + 1:-ri - 1]
        bc = fill_holes_in_planes(closed | b, 0)
        if (bc & ~b).any():
            sel2 = _midline_air((sm < threshold_hu) & bc, b, sp, midline_mm)
            lab, n = _local.label(sel2)  # = ndi.label, on sel2's bounding box
            if n:
                hit = np.bincount(lab[sel], minlength=n + 1) > 0
                hit[0] = False
                sel = sel | _lookup(hit, lab)  # = hit[lab]
    return cn.from_canon(sel)


def _midline_air(air: np.ndarray, b: np.ndarray, sp: np.ndarray, midline_mm: float) -> np.ndarray:
    """Per-slice midline filter + 3D component selection of candidate air (canonical arrays).

    The 2D regions of every axial slice are labelled at once (one labelling connected in the plane only,
    4-connected as :func:`scipy.ndimage.label` in 2D); their areas and centre columns come from counts and
    sums of integer column indices (exact in float64), so the regions kept are those of the slice-by-slice
    computation (:func:`_midline_air_reference`). Everything is computed on the bounding box of *air*
    (nothing outside it can be kept): the labels keep their raster order there, and the column sums add
    the same whole-array column numbers in the same order.
    """
    box = _local.bbox(air)
    if box is None:
        return np.zeros_like(air)
    k0, i0 = box[0].start, box[2].start
    px_area = float(sp[1] * sp[2])
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndi.generate_binary_structure(2, 1)
    lab2, n2 = _local.cc_label(air[box], structure=st)
    flat = lab2.ravel()
    _, Jb, Ib = lab2.shape
    I = air.shape[2]
    # the column and slice of every labelled voxel, in raster order (the order of the bincount sums)
    vox = np.flatnonzero(flat)
    lab_vox = flat[vox]
    cnt = np.bincount(lab_vox, minlength=n2 + 1).astype(np.float64)
    sum_i = np.bincount(lab_vox, weights=(vox % Ib + i0).astype(np.float64), minlength=n2 + 1)
    sum_k = np.bincount(lab_vox, weights=(vox // (Jb * Ib) + k0).astype(np.float64), minlength=n2 + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cm_i = sum_i / cnt
        k_of = np.where(cnt > 0, sum_k / np.maximum(cnt, 1.0), 0.0).astype(np.int64)
    # the body's midline column per slice (slices without body keep nothing)
    colany = b.any(axis=1)
    has = colany.any(axis=1)
    first = np.argmax(colany, axis=1)
    last = I - 1 - np.argmax(colany[:, ::-1], axis=1)
    mid = (first + last) / 2.0
    ok = (cnt * px_area <= 1500.0) & (np.abs(cm_i - mid[k_of]) * sp[2] <= midline_mm) & has[k_of]
    ok[0] = False
    keep = _lookup(ok, lab2)  # = ok[lab2]
    lab, n = _local.cc_label(keep)
    if n == 0:
        return np.zeros_like(air)
    vox_ml = float(np.prod(sp)) / 1000.0
    sizes = _label_sizes(lab, n) * vox_ml  # = np.bincount(lab.ravel()) * vox_ml
    sizes[0] = 0
    big = int(np.argmax(sizes))
    sel = sizes >= 1.0
    sel[big] = True
    sel[0] = False
    out = np.zeros_like(air)
    out[box] = _lookup(sel, lab)  # = sel[lab]
    return out


def _midline_air_reference(air: np.ndarray, b: np.ndarray, sp: np.ndarray, midline_mm: float) -> np.ndarray:
    """The slice-by-slice computation :func:`_midline_air` is checked against (one 2D labelling per slice)."""
    if not air.any():
        return np.zeros_like(air)
    px_area = float(sp[1] * sp[2])
    keep = np.zeros_like(air)
    for k in range(air.shape[0]):
        if not air[k].any():
            continue
        bi = np.nonzero(b[k].any(axis=0))[0]
        if bi.size == 0:
            continue
        mid = (bi[0] + bi[-1]) / 2.0
        lab, n = ndi.label(air[k])
        idx = np.arange(1, n + 1)
        areas = ndi.sum_labels(air[k], lab, idx) * px_area
        cms = ndi.center_of_mass(air[k], lab, idx)
        ok = np.zeros(n + 1, bool)
        for t, (ar, cm) in enumerate(zip(areas, cms), start=1):
            ok[t] = ar <= 1500.0 and abs(cm[1] - mid) * sp[2] <= midline_mm
        keep[k] = ok[lab]
    lab, n = ndi.label(keep)
    if n == 0:
        return np.zeros_like(air)
    vox_ml = float(np.prod(sp)) / 1000.0
    sizes = np.bincount(lab.ravel()) * vox_ml
    sizes[0] = 0
    big = int(np.argmax(sizes))
    sel = sizes >= 1.0
    sel[big] = True
    sel[0] = False
    return sel[lab]


# --------------------------------------------------------------------------------- split by level
@dataclass
class AirwaySplit:
    """The airway divided into pharynx, larynx and trachea.

    Attributes
    ----------
    pharynx, larynx, trachea : bool arrays (K, J, I) on the volume's grid
        Disjoint subsets of the input airway. Air of the nasal and oral cavities and of the
        paranasal sinuses (more than ``PHARYNX_DEPTH_MM`` in front of the posterior pharyngeal
        wall, or not connected to the pharynx) belongs to none of them and stays in ``airway``
        only. A part that could not be placed is all False and listed in ``not_segmented``.
    inlet_z_mm : float or None
        Pharynx/larynx boundary (laryngeal inlet), LPS z (mm; + = superior) of the plane: air at or
        above it is pharynx, below it (down to the cricoid) larynx in front, hypopharynx behind.
    cricoid_z_mm : float or None
        Larynx/trachea boundary (lower border of the cricoid), LPS z (mm).
    inlet_method, cricoid_method : str
        ``"lumen shape"`` (found on the image), ``"larynx length below the inlet"``,
        ``"vertebral level (fallback)"`` or ``"none"``.
    segmented : dict str -> bool
        Whether each of ``pharynx``, ``larynx``, ``trachea`` was segmented.
    partial : dict str -> str
        Parts cut by the field of view (name -> reason).
    notes : list of str
        Human-readable statements of the boundaries used and of what is NOT segmented.
    """

    pharynx: np.ndarray
    larynx: np.ndarray
    trachea: np.ndarray
    inlet_z_mm: float | None
    cricoid_z_mm: float | None
    inlet_method: str
    cricoid_method: str
    segmented: dict[str, bool] = field(default_factory=dict)
    partial: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def not_segmented(self) -> list[str]:
        """Names of the parts that were NOT segmented."""
        return [n for n in ("pharynx", "larynx", "trachea") if not self.segmented.get(n, False)]

    def masks(self) -> dict[str, np.ndarray]:
        """The segmented parts only, ``{name: bool (K, J, I)}``."""
        return {n: getattr(self, n) for n in ("pharynx", "larynx", "trachea") if self.segmented.get(n, False)}


def _restrict_pharynx(ph: np.ndarray, below: np.ndarray, sp: np.ndarray) -> np.ndarray:
    """Keep the pharyngeal air proper: the 3D component joined to the larynx/trachea (else the
    lowest one), and per slice only air within ``PHARYNX_DEPTH_MM`` of its posterior wall (the nasal
    and oral cavities and the paranasal sinuses stay in ``airway`` only). Canonical arrays."""
    lab, n = _local.label(ph | below)  # = ndi.label, on the bounding box
    if n == 0:
        return ph
    sizes = np.bincount(lab[ph], minlength=n + 1)
    sizes[0] = 0
    touch = np.bincount(lab[below], minlength=n + 1) > 0 if below.any() else np.zeros(n + 1, bool)
    touch[0] = False
    keep = touch & (sizes > 0)
    if not keep.any():
        # no larynx/trachea: the pharynx is the component reaching lowest (it continues downwards)
        k0 = int(np.nonzero(ph.any(axis=(1, 2)))[0][0])
        keep[np.unique(lab[k0][ph[k0]])] = True
        keep[0] = False
    out = ph & _lookup(keep, lab)  # = ph & keep[lab]
    J = np.arange(ph.shape[1])
    for k in np.nonzero(out.any(axis=(1, 2)))[0]:
        jpost = int(np.nonzero(out[k].any(axis=1))[0][-1])
        out[k] &= (J >= jpost - PHARYNX_DEPTH_MM / sp[1])[:, None]
    return out


@dataclass
class _Profile:
    ks: np.ndarray          # canonical slices holding air (ascending = superior)
    width_mm: np.ndarray    # left-right extent of all air in the slice
    depth_mm: np.ndarray    # antero-posterior extent
    ncomp: np.ndarray       # 2D components (8-connected)


def _profile(A: np.ndarray, sp: np.ndarray) -> _Profile:
    ks = np.nonzero(A.any(axis=(1, 2)))[0]
    w = np.zeros(ks.size)
    d = np.zeros(ks.size)
    nc = np.zeros(ks.size, int)
    for t, k in enumerate(ks):
        jj = np.nonzero(A[k].any(axis=1))[0]
        ii = np.nonzero(A[k].any(axis=0))[0]
        w[t] = (ii[-1] - ii[0] + 1) * sp[2]
        d[t] = (jj[-1] - jj[0] + 1) * sp[1]
        nc[t] = _local.cc_label(A[k][jj[0]:jj[-1] + 1, ii[0]:ii[-1] + 1], structure=np.ones((3, 3), bool))[1]  # on its box
    return _Profile(ks, w, d, nc)


def split_airway(volume: Volume, airway: np.ndarray, body: np.ndarray | None = None,
                 c2_inferior_z_mm: float | None = None, larynx_length_mm: float = LARYNX_LENGTH_MM,
                 widen_ratio: float = WIDEN_RATIO) -> AirwaySplit:
    """Split an airway mask into pharynx, larynx and trachea from the lumen shape along the neck.

    Method (per axial slice of the airway, from the lowest slice upwards):

    1. Tracheal reference: the longest run (at least ``TRACHEA_RUN_MIN_MM``, 15 mm; one-slice
       gaps bridged) of slices where the airway is a single compact lumen (aspect 0.5-2,
       left-right width <= 25 mm, the upper limit of the normal adult tracheal coronal diameter,
       Breatnach et al. AJR 1984;142:903); the median left-right width ``W_t`` of its lowest
       ``TRACHEA_REF_MM`` (30 mm) is the tracheal width (the run may continue through a narrow
       larynx into a narrow oropharynx; the carina below is two lumens and ends it).
    2. Laryngeal inlet (pharynx/larynx boundary): the lowest slice above that where the airway's
       left-right extent reaches ``widen_ratio * W_t`` (1.5, engineering default; the oro- and
       laryngopharynx are much wider than the laryngeal lumen) while it is at most
       ``PHARYNX_MAX_DEPTH_MM`` (35 mm) deep, for at least 6 mm: the single laryngotracheal lumen
       has opened into the pharynx. The plane is placed at the lower face of that slice. The
       search stops where the airway becomes deeper than 35 mm (nasal or oral cavity reached
       without a pharyngeal widening: no inlet is claimed).
    3. Lower border of the cricoid (larynx/trachea boundary): ``larynx_length_mm`` below the
       inlet (40 mm: the mean of the adult male 44 mm and female 36 mm larynx lengths, Gray's
       Anatomy 20th ed. 1918; the larynx spans the inlet at ~C3 to the cricoid at ~C6, Gray's
       Anatomy 42nd ed. 2020).
    4. Between the two planes, air in front of the posterior wall of the subglottic lumen and
       within its left-right extent (+4 mm) is larynx; air behind or beside it is the
       hypopharynx (piriform sinuses), labelled pharynx. Above the inlet: pharynx. Below the
       cricoid: trachea.

    With ``c2_inferior_z_mm`` the widening is searched only ``INLET_BELOW_C2_MM`` (5-80 mm) below
    the C2 inferior endplate (a tracheal reference starting above that window is rejected), and
    when none is found there the inlet is placed ``C2_TO_INLET_MM`` (40 mm) below the C2 inferior
    endplate, the cricoid ``larynx_length_mm`` below it ("vertebral level (fallback)").
    Without either, nothing is guessed: when the whole airway is one tracheal-shaped lumen reaching
    the top of the CT it is labelled trachea (pharynx and larynx NOT segmented); when its lowest
    part is already pharynx-wide and it reaches the bottom of the CT it is labelled pharynx
    (larynx and trachea NOT segmented); otherwise no part is segmented. Parts whose boundary lies
    outside the CT are reported as NOT segmented, parts cut by the field of view as partial.

    Parameters
    ----------
    volume : Volume
        CT in HU (only its geometry is used).
    airway : bool array (K, J, I)
        The airway on the volume's grid (e.g. from :func:`segment_airway`).
    body : bool array (K, J, I), optional
        Body mask, used to tell whether the airway reaches the top / bottom of the imaged body
        (computed from the CT when omitted).
    c2_inferior_z_mm : float, optional
        LPS z (mm) of the C2 inferior endplate (e.g. the anteroinferior point of the C2 body from
        :class:`~osteoplan.anatomy.landmarks.DensLandmarks`), for the vertebral-level fallback.
    larynx_length_mm : float
        Inlet-to-cricoid distance (mm).
    widen_ratio : float
        Widening factor that marks the pharynx.

    Returns
    -------
    AirwaySplit
        Masks on the volume's grid (K, J, I), boundaries as LPS z in mm, method and notes.

    Raises
    ------
    MaskError
        ``airway`` does not have the volume's shape.

    Notes
    -----
    The planes are axial planes of the canonical (nearest axis-aligned) orientation; on an
    oblique acquisition the z reported is that of the plane's centre. The widening is where the
    laryngotracheal lumen opens into the pharynx: at the laryngeal inlet when the piriform sinuses
    are collapsed, lower (about the glottis) when they hold air, higher when the hypo- and
    oropharynx are collapsed too. On the 81 OpenKBP cases with a Larynx contour (about 4 mm voxels)
    the larynx was placed in 60 (the others: no widening below the nasal / oral cavity, or the CT
    cropped above the larynx); its top lies a median 5 mm below the contour's top (interquartile
    range 12 mm below to 0.5 mm above), its bottom a median 7.5 mm below the contour's bottom
    (17.5 below to 2.6 above); see ``benchmarks/openkbp_airway.py``. A coarse split, fine for
    reporting which part of the airway a path passes, not for dosimetry.
    """
    from osteoplan.errors import MaskError

    airway = np.asarray(airway, bool)
    if airway.shape != volume.shape:
        raise MaskError(f"The airway mask has shape {airway.shape}, the CT {volume.shape}; give a mask on the CT grid.")
    cn = Canon.of(volume)
    A = cn.to_canon(airway)
    sp = cn.spacing_mm
    K = A.shape[0]
    empty = np.zeros(volume.shape, bool)

    def z_of(kc: float) -> float:
        c = np.array([kc, (cn.shape[1] - 1) / 2.0, (cn.shape[2] - 1) / 2.0])
        return float(volume.index_to_world(cn.index_to_original(c))[2])

    dz = float(sp[0])
    sgn = 1.0 if z_of(1.0) > z_of(0.0) else -1.0  # canonical k points superior, so +1 (kept for safety)

    def k_of(z: float) -> float:  # fractional canonical slice of an LPS z
        return (z - z_of(0.0)) / (dz * sgn)

    if not A.any():
        return AirwaySplit(empty, empty.copy(), empty.copy(), None, None, "none", "none",
                           {"pharynx": False, "larynx": False, "trachea": False}, {},
                           ["airway split: no airway, pharynx / larynx / trachea NOT segmented"])
    if body is None:
        body = segment_body(volume)
    B = cn.to_canon(body)
    kb = np.nonzero(B.any(axis=(1, 2)))[0]
    prof = _profile(A, sp)
    ks = prof.ks
    k_lo, k_hi = int(ks[0]), int(ks[-1])
    reaches_bottom = k_lo <= (int(kb[0]) if kb.size else 0) + 1
    reaches_top = k_hi >= (int(kb[-1]) if kb.size else K - 1) - 1
    notes: list[str] = []

    # 1. tracheal reference: the longest run of single compact narrow slices (the laryngotracheal
    #    tube; below it the carina may widen the airway again, above it the pharynx)
    aspect = prof.width_mm / np.maximum(prof.depth_mm, 1e-6)
    compact = (prof.ncomp == 1) & (aspect >= 0.5) & (aspect <= 2.0) & (prof.width_mm <= TRACHEA_MAX_WIDTH_MM + 0.01)
    narrow = np.zeros(K, bool)
    narrow[ks[compact]] = True
    runs: list[tuple[int, int]] = []  # (first, last) canonical slices, gaps of one slice bridged
    k = 0
    while k < K:
        if narrow[k]:
            j = k
            while j + 1 < K and (narrow[j + 1] or (j + 2 < K and narrow[j + 2])):
                j += 1 if narrow[j + 1] else 2
            runs.append((k, j))
            k = j + 1
        else:
            k += 1
    runs = [r for r in runs if (r[1] - r[0] + 1) * dz >= TRACHEA_RUN_MIN_MM]
    tracheal = bool(runs)
    w_t = None
    run = None
    if tracheal:
        run = max(runs, key=lambda r: r[1] - r[0])
        # the reference width is that of the lowest part of the run (the trachea proper: the run may
        # continue through a narrow larynx into a narrow oropharynx)
        top_ref = min(run[1], run[0] + int(round(TRACHEA_REF_MM / dz)) - 1)
        sel_r = (ks >= run[0]) & (ks <= top_ref) & compact
        w_t = float(np.median(prof.width_mm[sel_r]))

    # 2. laryngeal inlet: sustained widening above the tracheal reference
    k_inlet: float | None = None
    inlet_method = "none"
    if tracheal:
        thr = widen_ratio * w_t - 0.01  # widths are multiples of the pixel size: no rounding down
        n_sus = max(2, int(math.ceil(WIDEN_SUSTAIN_MM / dz)))
        wide = np.zeros(K, bool)
        # the pharynx is wide but shallow; a wide AND deep section is the nasal or oral cavity
        wide[ks] = (prof.width_mm >= thr) & (prof.depth_mm <= PHARYNX_MAX_DEPTH_MM + 0.01)
        k_from, k_to = run[0] + 1, K
        if c2_inferior_z_mm is not None:
            # only a widening at the laryngeal levels below C2 counts; a tube starting above them is
            # the oro- or nasopharynx, not the trachea
            k_win_top = k_of(float(c2_inferior_z_mm) - INLET_BELOW_C2_MM[0])
            k_win_bot = k_of(float(c2_inferior_z_mm) - INLET_BELOW_C2_MM[1])
            if run[0] > k_win_top:
                k_to = k_from
                notes.append(f"the compact lumen at z = {z_of(run[0]):.1f} mm lies above the laryngeal levels "
                             "(below C2): not the trachea")
            k_from = max(k_from, int(math.ceil(k_win_bot)))
            k_to = min(k_to, int(math.floor(k_win_top)) + 1)
        deep = np.zeros(K, bool)
        deep[ks] = prof.depth_mm > PHARYNX_MAX_DEPTH_MM + 0.01
        for k in range(k_from, k_to):
            if deep[k] and k + 1 < K and deep[k + 1]:
                break  # the nasal / oral cavity is reached without a pharyngeal widening
            if wide[k] and k + n_sus <= K and wide[k:k + n_sus].sum() >= n_sus - (1 if n_sus >= 4 else 0):
                k_inlet = k - 0.5
                inlet_method = "lumen shape"
                break
        if k_inlet is not None:
            notes.append(f"laryngeal inlet (pharynx/larynx boundary) at z = {z_of(k_inlet):.1f} mm from the lumen shape "
                         f"(airway {widen_ratio:g}x wider than the {w_t:.0f} mm tracheal/subglottic lumen below)")
    k_cric: float | None = None
    cricoid_method = "none"
    if k_inlet is None and c2_inferior_z_mm is not None:
        k_inlet = k_of(float(c2_inferior_z_mm) - C2_TO_INLET_MM)
        inlet_method = "vertebral level (fallback)"
        notes.append(f"laryngeal inlet at z = {z_of(k_inlet):.1f} mm from vertebral level (fallback: "
                     f"{C2_TO_INLET_MM:g} mm below the C2 inferior endplate; no widening of the airway found at the "
                     "laryngeal levels)")
    if k_inlet is not None:
        k_cric = k_inlet - larynx_length_mm / dz
        cricoid_method = ("larynx length below the inlet" if inlet_method == "lumen shape"
                          else "vertebral level (fallback)")
        notes.append(f"larynx/trachea boundary (lower border of the cricoid) at z = {z_of(k_cric):.1f} mm: "
                     f"{larynx_length_mm:g} mm below the inlet (adult larynx length 36-44 mm, Gray's Anatomy)")

    Ac = A.copy()
    ph = np.zeros_like(A)
    lx = np.zeros_like(A)
    tr = np.zeros_like(A)
    seg = {"pharynx": False, "larynx": False, "trachea": False}
    partial: dict[str, str] = {}
    kk = np.arange(K)[:, None, None]
    if k_inlet is None:
        tube_to_top = tracheal and run is not None and run[1] >= k_hi - 1 and reaches_top
        if tube_to_top:
            tr = Ac
            seg["trachea"] = True
            notes.append("the airway is one tracheal-shaped lumen up to the top of the CT: labelled trachea; "
                         "pharynx and larynx NOT segmented (above the field of view, or the larynx not identified)")
        elif not tracheal and reaches_bottom:
            ph = Ac
            seg["pharynx"] = True
            partial["pharynx"] = "the CT ends inside the pharynx"
            notes.append(f"the airway is already pharynx-wide at the bottom of the CT (z = {z_of(k_lo):.1f} mm): "
                         "labelled pharynx; larynx and trachea NOT segmented (no laryngeal evidence in the field of "
                         "view; give the C2 level or masks)")
        else:
            notes.append("airway NOT split: no laryngeal inlet found on the lumen shape and no vertebral level; "
                         "pharynx, larynx and trachea NOT segmented (the 'airway' mask stands for all three)")
    else:
        above = kk >= k_inlet
        below = kk < k_cric
        mid = ~above & ~below
        ph = Ac & above
        tr = Ac & below
        lar_lv = Ac & mid
        # the laryngeal column: the lumen of the lowest ~5 mm of the larynx levels in view
        kl = [k for k in ks if k_cric <= k < k_inlet]
        if kl:
            n5 = max(1, int(round(5.0 / dz)))
            ref = np.zeros(A.shape[1:], bool)
            for k in kl[:n5]:
                ref |= A[k]
            jj = np.nonzero(ref.any(axis=1))[0]
            ii = np.nonzero(ref.any(axis=0))[0]
            mi = LARYNX_COLUMN_MARGIN_MM / sp[2]
            J = np.arange(A.shape[1])[None, :, None]
            I = np.arange(A.shape[2])[None, None, :]
            col = (J <= jj[-1]) & (I >= ii[0] - mi) & (I <= ii[-1] + mi)
            lx = lar_lv & col
            ph = ph | (lar_lv & ~col)
        z_in, z_cr = z_of(k_inlet), z_of(k_cric)
        # what is in view
        if k_inlet > k_hi + 0.5:
            notes.append(f"the inlet (z = {z_in:.1f} mm) lies above the airway in view: pharynx NOT segmented")
        else:
            seg["pharynx"] = bool(ph.any())
        if k_cric > k_hi + 0.5:
            notes.append("larynx NOT segmented: its levels are above the airway in view")
        elif k_inlet < k_lo - 0.5:
            notes.append("larynx NOT segmented: its levels are below the airway in view (the CT stops above the larynx)")
        else:
            seg["larynx"] = bool(lx.any())
            if k_cric < k_lo - 0.5 and reaches_bottom:
                partial["larynx"] = "the CT ends above the cricoid"
        if k_cric < k_lo - 0.5:
            notes.append(f"trachea NOT segmented: the airway in view ends at z = {z_of(k_lo):.1f} mm, above the "
                         f"cricoid level (z = {z_cr:.1f} mm)")
        else:
            seg["trachea"] = bool(tr.any())
        if not seg["pharynx"] and ph.any():
            # the hypopharynx behind the larynx without the inlet in view is still pharynx
            seg["pharynx"] = True
            partial["pharynx"] = "only the hypopharynx behind the larynx is in view"
    if seg["pharynx"] and ph.any():
        ph = _restrict_pharynx(ph, lx | tr, sp)
        seg["pharynx"] = bool(ph.any())
    out = {}
    for name, m in (("pharynx", ph), ("larynx", lx), ("trachea", tr)):
        out[name] = cn.from_canon(m) if seg[name] else empty.copy()
    if seg["pharynx"] or seg["larynx"] or seg["trachea"]:
        for name in ("pharynx", "larynx", "trachea"):
            if not seg[name] and not any(name in n and "NOT" in n for n in notes):
                notes.append(f"{name} NOT segmented (no air at its levels in the field of view)")
    return AirwaySplit(out["pharynx"], out["larynx"], out["trachea"],
                       None if k_inlet is None else z_of(k_inlet), None if k_cric is None else z_of(k_cric),
                       inlet_method, cricoid_method, seg, partial, notes)
