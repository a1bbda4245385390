"""The bony canal of the vertebral artery on a plain CT: transverse foramina of C1-C6 (no trained weights).

On a CT without contrast the vertebral artery cannot be told from the soft tissue around it, but
its bony canal can: the artery ascends through the transverse foramina (foramina transversaria)
of C6 to C1, leaves the C1 foramen upwards and runs posteromedially in the sulcus of the
vertebral artery on the upper surface of the posterior arch of C1 before it enters the foramen
magnum. A path that crosses this canal may cross the artery: what the planner must avoid is the
canal, not only the vessel.

Method (:func:`segment_transverse_foramina`):

1. *Wall*: every voxel above the wall threshold (by default this patient's cancellous-bone
   threshold, soft-tissue mean + max(6 SD, 100 HU) clipped to 140-260 HU, as
   :func:`osteoplan.anatomy.segment.segment_bone`) within 2 voxels of the bone mask. The thin
   cortex of a transverse process reads 150-400 HU at 1 mm pixels: the bone outline (at the
   cortical threshold) leaves it open, this lower threshold closes it.
2. *Holes*: on every axial slice, the holes of the wall (2D hole filling,
   :func:`scipy.ndimage.binary_fill_holes` semantics) that are not the spinal canal.
3. *Gates* per hole: area within the published range of the foramen (:data:`FORAMEN_MIN_AREA_MM2`,
   :data:`FORAMEN_MAX_AREA_MM2`), soft-tissue density (:data:`CONTENT_HU`), round rather than a slit
   (:data:`MAX_ELONGATION`), lateral to the canal centre of that slice and not behind it
   (:data:`LATERAL_OFFSET_MM`, :data:`AP_OFFSET_MM`). Side by LPS x relative to the canal centre:
   +x = patient LEFT.
4. *Linking*: holes of consecutive slices (gap up to :data:`MAX_GAP_MM`) whose centres lie within
   :data:`MAX_STEP_MM` of each other are one foramen (a vertical channel).
5. *Levels*: with a C2 mask (``vertebrae={"C2": mask}``, from :func:`osteoplan.anatomy.c2.locate_c2`
   or provided) the foramen whose wall touches C2 most is C2, the nearest one above it within
   :data:`C1_MAX_ABOVE_MM` is C1 (holes higher up -- condylar and hypoglossal canals of the skull
   base -- are dropped), the ones below are C3, C4, ... in order (one level per
   :data:`LEVEL_SPACING_MM` of height). Other vertebra masks (C1, C3-C7) name the foramina they touch.
   Without any vertebra mask every foramen is kept and numbered from the top, levels unknown.
6. *Bridges*: between consecutive foramina of one side the artery runs outside bone; the canal
   is bridged by a straight tube from the lower aperture of the upper foramen to the upper
   aperture of the lower one, with the radius of the smaller foramen (equivalent circle of its
   median section). This tube is what a planner must avoid; it is not the artery's exact course.
7. *C1 sulcus*: the groove of the vertebral artery on the upper surface of the posterior arch of
   C1 is found as the depression of that surface (a morphological closing of its height map
   minus the height map, :func:`_c1_sulcus`), beside the canal and behind the C1 foramen, and
   joined to the C1 foramen's upper aperture by a straight tube of the foramen's radius (the
   artery's turn behind the lateral mass). At 2 mm slices the groove (a few mm deep) is one or two
   voxels: a coarse mark, found on CThead as a few voxels per side.

8. *What counts as segmented*: a side's canal is reported segmented only when its C2 foramen was
   found (with a C2 mask; without one, when any foramen was); otherwise the caller must report it
   "not assessed" (:attr:`ForaminaResult.segmented`). CTs with in-plane pixels above
   :data:`MAX_PIXEL_MM` are "not assessable" (nothing searched).

Internal orientation: the canonical view of :class:`~osteoplan.anatomy.segment.Canon` (k ->
superior, j -> posterior, i -> patient left). Masks are returned on the volume's own grid (K, J, I).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from osteoplan.anatomy import _local
from osteoplan.anatomy.segment import (CANCELLOUS_MAX_HU, CANCELLOUS_MIN_HU, Canon, _box_dilate, _label_sizes,
                                       fill_holes_in_planes, soft_tissue_stats)
from osteoplan.errors import AnatomyError
from osteoplan.imaging.volume import Volume

#: Structure names of the bony canal of the vertebral artery (left = patient left, +x in LPS).
CANAL_NAMES = ("vertebral_artery_canal_left", "vertebral_artery_canal_right")
#: Source string of the classical masks in a LabelMap.
SOURCE = "classical: bony canal (transverse foramina)"

# ------------------------------------------------------------------------------------ gates
#: Smallest section (mm^2) of a transverse foramen: a circle of 2.5 mm diameter. Source: the
#: smallest mean diameter among 142 foramina of C3-C6 was 2.54 mm (Anatomy Research International
#: 2015, article 391823, "Dimensions and anatomical variants of the foramen transversarium of
#: typical cervical vertebrae"). Holes must also hold at least :data:`MIN_PIXELS` pixels.
FORAMEN_MIN_AREA_MM2 = float(np.pi / 4.0 * 2.5 * 2.5)
#: Largest section (mm^2) of a transverse foramen: an ellipse of 10 x 10 mm. Source: largest
#: anteroposterior diameter 10.0 mm, largest transverse diameter 9.0 mm among 150 dry cervical
#: vertebrae (Deepa G et al., Cureus 2024;16:e67143); rounded up to 10 mm for partial volume.
FORAMEN_MAX_AREA_MM2 = float(np.pi / 4.0 * 10.0 * 10.0)
#: Largest in-plane pixel (mm) at which the foramina are searched. The foramen is about 5-6 mm
#: across (mean diameters 5.1-5.5 mm, Deepa 2024) in a wall about 1 mm thick: at pixels above
#: 1.5 mm it spans fewer than about 3-4 pixels and partial volume of the wall closes or opens it at
#: random (configurable default, no published source; measured: OpenKBP at 3.5-4.75 mm gave 2-5
#: pixel "holes" at no consistent level). Coarser CTs: "not assessable on this CT".
MAX_PIXEL_MM = 1.5
#: Fewest pixels of a hole (noise in the wall; configurable default, no published source).
MIN_PIXELS = 3
#: Lowest mean HU of the hole's content: artery, venous plexus and fat (soft tissue); darker holes
#: are air or metal-streak artefact (configurable default, no published source). The highest median
#: HU is half-way between this patient's soft tissue and the wall threshold: the foramen holds soft
#: tissue, whereas a marrow pocket of an articular pillar reads between soft tissue and bone (the
#: half-way decision rule, as the partial-volume rule of :mod:`osteoplan.anatomy.canal`).
CONTENT_MIN_HU = -150.0
#: Largest ratio of the long to the short axis of a hole (second moments): the foramen is round to
#: oval (round in most vertebrae, Deepa 2024); joint spaces enclosed by bone are slits
#: (configurable default, no published source).
MAX_ELONGATION = 3.0
#: Distance (mm) of the foramen centre from the canal centre along x (lateral). The foramina of
#: C2-C6 lie about 12-18 mm and those of C1 about 20-30 mm from the midline in adults; range widened
#: for size and rotation (configurable default, no published source).
LATERAL_OFFSET_MM = (10.0, 40.0)
#: Offset (mm) of the foramen centre from the canal centre along y (+ posterior): the foramina lie
#: beside the vertebral body and the front of the canal, never behind the canal centre by more than
#: a few mm (configurable default, no published source).
AP_OFFSET_MM = (-25.0, 8.0)
#: Largest gap (mm) between slices of one foramen, and largest shift (mm) of its centre between
#: consecutive slices (configurable defaults, no published source).
MAX_GAP_MM = 4.0
MAX_STEP_MM = 5.0
#: Highest the C1 foramen lies above the C2 foramen (mm, top to top): about the height of the
#: lateral mass of C1 plus the C1-C2 joint; holes higher up belong to the skull base (configurable
#: default, no published source; CThead: 18 mm, its condylar holes 30 mm).
C1_MAX_ABOVE_MM = 25.0
#: Height of one cervical level (vertebral body + disc) used to number foramina below C2 across a
#: missed level: C3-C7 body about 14 mm (Panjabi et al., Spine 1991) plus a disc of about 4 mm.
LEVEL_SPACING_MM = 18.0
#: Least fraction of the 2-pixel ring around a foramen lying in a vertebra's mask for the foramen to
#: take that vertebra's level: the thin wall of a foramen is often below the cortical threshold of a
#: bone outline, so only part of the ring touches it (configurable default, no published source;
#: CThead C2: 17 % right, 50 % left).
MIN_RING_IN_VERTEBRA = 0.1
#: Sulcus of C1: band beside the canal searched (x from the canal centre, mm) and depth a groove
#: must have (mm) (configurable defaults, no published source).
SULCUS_LATERAL_MM = (6.0, 30.0)
SULCUS_MIN_DEPTH_MM = 1.5


@dataclass
class Foramen:
    """One transverse foramen (a linked channel of axial holes).

    Attributes
    ----------
    side : str
        ``"left"`` (patient left, +x) or ``"right"``.
    level : str or None
        ``"C1"`` ... ``"C7"``, or None when no vertebra mask named it.
    order : int
        Position from the top among the foramina of its side (1 = highest).
    area_mm2 : float
        Median section (mm^2) over its slices; ``max_area_mm2`` the largest.
    centre_lps_mm : tuple of 3 floats
        Centroid of its voxels (LPS mm).
    z_range_mm : tuple of 2 floats
        Lowest and highest slice centre (LPS z, mm).
    mean_hu : float
        Mean HU of its content.
    slices : int
        Number of axial slices holding it.
    """

    side: str
    level: str | None
    order: int
    area_mm2: float
    max_area_mm2: float
    centre_lps_mm: tuple[float, float, float]
    z_range_mm: tuple[float, float]
    mean_hu: float
    slices: int

    def to_dict(self) -> dict:
        return {"side": self.side, "level": self.level, "order": self.order,
                "area_mm2": round(self.area_mm2, 1), "max_area_mm2": round(self.max_area_mm2, 1),
                "centre_lps_mm": [round(float(c), 1) for c in self.centre_lps_mm],
                "z_range_mm": [round(float(z), 1) for z in self.z_range_mm],
                "mean_hu": round(self.mean_hu, 0), "slices": self.slices}


@dataclass
class ForaminaResult:
    """The bony canal of both vertebral arteries.

    Attributes
    ----------
    left, right : bool arrays (K, J, I)
        ``vertebral_artery_canal_left`` / ``_right``: foramina + bridges + C1 sulcus.
    foramina_left, foramina_right : bool arrays (K, J, I)
        The foramina alone (holes of the bone only).
    sulcus_left, sulcus_right : bool arrays (K, J, I)
        The C1 sulcus alone (empty when not found).
    foramina : list of Foramen
        Per foramen: side, level, area, centre.
    messages : list of str
        What was found and what was not.
    wall_threshold_hu : float
    segmented : dict {"left": bool, "right": bool}
        Whether the side's canal counts as segmented: its C2 foramen was found when a C2 mask was
        given (the level a C2 plan needs), else at least one foramen. A side that is not segmented
        must be reported "not assessed" -- its (possibly partial) mask is not evidence of absence.
    """

    left: np.ndarray
    right: np.ndarray
    foramina_left: np.ndarray
    foramina_right: np.ndarray
    sulcus_left: np.ndarray
    sulcus_right: np.ndarray
    foramina: list[Foramen] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    wall_threshold_hu: float = float("nan")
    segmented: dict[str, bool] = field(default_factory=lambda: {"left": False, "right": False})

    def masks(self, segmented_only: bool = False) -> dict[str, np.ndarray]:
        """{``vertebral_artery_canal_left``: mask, ``vertebral_artery_canal_right``: mask}.

        With ``segmented_only`` only the sides listed True in :attr:`segmented`.
        """
        out = {CANAL_NAMES[0]: self.left, CANAL_NAMES[1]: self.right}
        if segmented_only:
            out = {n: m for n, m in out.items() if self.segmented[n.rsplit("_", 1)[1]]}
        return out

    def summary(self) -> dict:
        return {"foramina": [f.to_dict() for f in self.foramina], "messages": list(self.messages),
                "wall_threshold_hu": round(float(self.wall_threshold_hu), 1)}


@dataclass
class _Hole:
    k: int
    label: int
    area_mm2: float
    centre: np.ndarray  # (j, i) canonical voxel units
    mean_hu: float


def wall_threshold(ct_hu: np.ndarray) -> tuple[float, float]:
    """Default wall threshold and soft-tissue mean (HU) of a CT.

    The wall threshold is this patient's cancellous-bone threshold, computed as in
    :func:`osteoplan.anatomy.segment.segment_bone` (soft-tissue mean + max(6 SD, 100 HU), clipped
    to 140-260 HU).
    """
    mu, sd = soft_tissue_stats(np.asarray(ct_hu).ravel()[:: max(1, ct_hu.size // 2_000_000)])
    return float(np.clip(mu + max(6.0 * sd, 100.0), CANCELLOUS_MIN_HU, CANCELLOUS_MAX_HU)), float(mu)


def _canal_centres(canal_c: np.ndarray) -> dict[int, tuple[float, float]]:
    """Canal centre (j, i) per canonical slice, interpolated between slices and held beyond the ends.

    The mean index of a slice's voxels is its integer index sum over its count, divided in float64
    (as numpy's mean of the voxel indices does: the sums of integers are exact), every slice at once."""
    ks = np.nonzero(canal_c.any(axis=(1, 2)))[0]
    if ks.size == 0:
        return {}
    rows = canal_c[ks].sum(axis=2, dtype=np.int64)  # (n, J) voxels per row
    cols = canal_c[ks].sum(axis=1, dtype=np.int64)  # (n, I)
    cnt = rows.sum(axis=1)
    cj = (rows * np.arange(canal_c.shape[1], dtype=np.int64)).sum(axis=1) / cnt
    ci = (cols * np.arange(canal_c.shape[2], dtype=np.int64)).sum(axis=1) / cnt
    allk = np.arange(canal_c.shape[0])
    return {int(k): (float(a), float(b)) for k, a, b in zip(allk, np.interp(allk, ks, cj), np.interp(allk, ks, ci))}


def _sequential_mean(vals: np.ndarray) -> float:
    """Mean of *vals* (1D, a label's voxels in raster order) exactly as ``scipy.ndimage.mean(input, labels,
    index)`` gives it: scipy adds each label's voxels one after the other in float64 (``np.bincount``
    with weights) and divides by the count; the same additions in the same order here."""
    return np.bincount(np.zeros(vals.size, np.intp), weights=vals)[0] / np.float64(vals.size)


def _elongation(pts: np.ndarray, sp2: np.ndarray) -> float:
    if len(pts) < 3:
        return 1.0
    p = pts * sp2
    ev = np.linalg.eigvalsh(np.cov(p.T) + np.eye(2) * (sp2.prod() / 12.0))
    return float(np.sqrt(max(ev[1], 1e-9) / max(ev[0], 1e-9)))


def _segment_dist_mm(shape, sp: np.ndarray, p0: np.ndarray, p1: np.ndarray, radius_mm: float,
                     bbox_pad: int = 2) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """Voxels (canonical) within *radius_mm* of the segment p0-p1 (canonical index coordinates)."""
    r_vox = radius_mm / sp
    lo = np.maximum(np.floor(np.minimum(p0, p1) - r_vox).astype(int) - bbox_pad, 0)
    hi = np.minimum(np.ceil(np.maximum(p0, p1) + r_vox).astype(int) + bbox_pad + 1, shape)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    g = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1).astype(float)
    a_mm, b_mm = p0 * sp, p1 * sp
    x = g * sp
    d = b_mm - a_mm
    L2 = float(d @ d)
    t = np.clip(((x - a_mm) @ d) / L2, 0.0, 1.0) if L2 > 0 else np.zeros(x.shape[:-1])
    near = a_mm + t[..., None] * d
    return sl, np.linalg.norm(x - near, axis=-1) <= radius_mm


def segment_transverse_foramina(volume: Volume, bone: np.ndarray, canal: np.ndarray, *,
                                vertebrae: dict[str, np.ndarray] | None = None,
                                wall_threshold_hu: float | None = None,
                                bridge: bool = True, sulcus: bool = True,
                                max_pixel_mm: float = MAX_PIXEL_MM) -> ForaminaResult:
    """Segment the bony canal of both vertebral arteries: transverse foramina of C1-C6 and the C1 sulcus.

    See the module docstring for the method and the sources of every gate.

    Parameters
    ----------
    volume : Volume
        CT in HU (any axis-aligned orientation; the LPS direction decides left and right).
    bone : bool array (K, J, I)
        Bone mask on the CT grid (e.g. ``segment_bone(...).bone``): the wall is searched within
        2 voxels of it.
    canal : bool array (K, J, I)
        Spinal canal on the CT grid (e.g. ``segment_spinal_canal(...).mask``): its centre on each
        slice decides the side and the lateral gate; its holes are not foramina.
    vertebrae : dict {"C1".."C7": bool array (K, J, I)}, optional
        Vertebra masks that name the levels (a C2 mask is enough, see step 5). Without any, all
        foramina passing the gates are kept and numbered from the top (levels unknown).
    wall_threshold_hu : float, optional
        HU above which a voxel closes a foramen's wall (default: :func:`wall_threshold`).
    bridge : bool
        Bridge consecutive foramina of one side with a straight tube (step 6).
    sulcus : bool
        Add the sulcus of the vertebral artery on the posterior arch of C1 (step 7; needs C1 found).
    max_pixel_mm : float
        Coarser in-plane pixels: nothing is searched, the result says "not assessable on this CT"
        (:data:`MAX_PIXEL_MM`).

    Returns
    -------
    ForaminaResult
        Masks ``vertebral_artery_canal_left/right`` (bool, (K, J, I)), per-foramen figures and messages.

    Raises
    ------
    AnatomyError
        The canal mask is empty (the side and the search band are defined from it), or a mask is
        not on the CT grid.
    """
    shape = tuple(volume.shape)
    for nm, m in (("bone", bone), ("canal", canal)):
        if np.shape(m) != shape:
            raise AnatomyError(f"The {nm} mask has shape {np.shape(m)} but the CT grid is {shape}; "
                               "give masks on the CT grid.")
    cn = Canon.of(volume)
    a = cn.to_canon(volume.array).astype(np.float32, copy=False)
    bone_c = cn.to_canon(np.asarray(bone, bool))
    canal_c = cn.to_canon(np.asarray(canal, bool))
    centres = _canal_centres(canal_c)
    if not centres:
        raise AnatomyError("No spinal canal in the mask: the transverse foramina are searched beside it; "
                           "segment or provide the spinal canal first.")
    sp = cn.spacing_mm
    sp2 = sp[1:]
    px_mm2 = float(sp2.prod())
    if float(sp2.max()) > max_pixel_mm:
        empty = np.zeros(shape, bool)
        return ForaminaResult(empty, empty.copy(), empty.copy(), empty.copy(), empty.copy(), empty.copy(), [],
                              [f"transverse foramina not assessable on this CT: pixels of {float(sp2.max()):.2f} mm "
                               f"(at most {max_pixel_mm:.2f} mm needed to resolve a 5 mm foramen in a 1 mm wall)"])
    t_auto, mu = wall_threshold(volume.array)
    t_wall = float(t_auto if wall_threshold_hu is None else wall_threshold_hu)
    content_max = mu + 0.5 * (t_wall - mu)

    # 1-2. wall and its holes (every axial slice at once)
    near_bone = _box_dilate(bone_c, (3, 5, 5))  # = binary_dilation with a 3x5x5 box, separable
    wall = (a > t_wall) & near_bone
    holes = fill_holes_in_planes(wall, 0) & ~wall
    canal_near = _local.binary_dilation(canal_c, np.ones((1, 3, 3), bool))  # = _box_dilate(canal_c, (1, 3, 3))
    st2 = np.zeros((3, 3, 3), bool)
    st2[1] = ndi.generate_binary_structure(2, 1)
    lab, n = _local.cc_label(holes, structure=st2)
    cands: dict[str, list[_Hole]] = {"left": [], "right": []}
    if n:
        npx = _label_sizes(lab, n)[1:]  # = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        touch = np.bincount(lab[canal_near], minlength=n + 1)[1:]
        area = npx * px_mm2
        ok = (area >= FORAMEN_MIN_AREA_MM2) & (area <= FORAMEN_MAX_AREA_MM2) & (npx >= MIN_PIXELS) & (touch == 0)
        objs = ndi.find_objects(lab)
        mean_hu = np.full(n, np.nan)
        for t in np.nonzero(ok)[0]:
            sl = objs[t]
            if sl is None:
                continue
            k = sl[0].start
            inside = lab[sl][0] == t + 1
            vals = a[sl][0][inside]
            mean_hu[t] = _sequential_mean(vals)  # = ndi.mean(a, lab, idx)[t], for the holes gated only
            if not (mean_hu[t] >= CONTENT_MIN_HU and float(np.median(vals)) <= content_max):
                continue
            pts = np.argwhere(inside) + np.array([sl[1].start, sl[2].start])
            if _elongation(pts.astype(float), sp2) > MAX_ELONGATION:
                continue
            c = pts.mean(axis=0)
            cj, ci = centres[k]
            dx_mm = (c[1] - ci) * sp2[1]  # canonical i -> patient left (+x)
            dy_mm = (c[0] - cj) * sp2[0]  # canonical j -> posterior (+y)
            if not (LATERAL_OFFSET_MM[0] <= abs(dx_mm) <= LATERAL_OFFSET_MM[1]):
                continue
            if not (AP_OFFSET_MM[0] <= dy_mm <= AP_OFFSET_MM[1]):
                continue
            cands["left" if dx_mm > 0 else "right"].append(_Hole(k, t + 1, float(area[t]), c, float(mean_hu[t])))

    # 4. link holes into channels, per side
    gap = max(1, int(np.floor(MAX_GAP_MM / sp[0] + 1e-6)))
    chains: dict[str, list[list[_Hole]]] = {}
    for side, hs in cands.items():
        hs.sort(key=lambda h: -h.k)  # from the top (canonical k ascends superiorly)
        ch: list[list[_Hole]] = []
        for h in hs:
            best, best_d = None, np.inf
            for c in ch:
                last = c[-1]
                if 0 < last.k - h.k <= gap:
                    d = float(np.linalg.norm((last.centre - h.centre) * sp2))
                    if d <= MAX_STEP_MM and d < best_d:
                        best, best_d = c, d
            if best is None:
                ch.append([h])
            else:
                best.append(h)
        chains[side] = ch

    msgs: list[str] = []
    vert_c = {lv: cn.to_canon(np.asarray(m, bool)) for lv, m in (vertebrae or {}).items()
              if m is not None and np.shape(m) == shape and np.any(m)}
    fmasks: dict[str, np.ndarray] = {}
    found: dict[str, list[tuple[list[_Hole], str | None]]] = {}
    for side in ("left", "right"):
        ch = sorted(chains[side], key=lambda c: -c[0].k)
        named = _name_levels(ch, lab, vert_c, sp, side, msgs)
        found[side] = named
        m = np.zeros(a.shape, bool)
        for c, _lv in named:
            for h in c:
                m[h.k] |= lab[h.k] == h.label
        fmasks[side] = m

    # figures
    foramina: list[Foramen] = []
    for side in ("left", "right"):
        for order, (c, lv) in enumerate(found[side], start=1):
            pts = np.concatenate([np.c_[np.full(int((lab[h.k] == h.label).sum()), h.k),
                                        np.argwhere(lab[h.k] == h.label)] for h in c]).astype(float)
            cen = volume.index_to_world(cn.index_to_original(pts.mean(axis=0)[None]))[0]
            zs = volume.index_to_world(cn.index_to_original(np.array([[h.k, *h.centre] for h in c], float)))[:, 2]
            areas = [h.area_mm2 for h in c]
            w = np.array([h.area_mm2 for h in c])
            foramina.append(Foramen(side, lv, order, float(np.median(areas)), float(max(areas)),
                                    tuple(float(x) for x in cen), (float(zs.min()), float(zs.max())),
                                    float(np.average([h.mean_hu for h in c], weights=w)), len(c)))

    # 6. bridges
    full: dict[str, np.ndarray] = {s: fmasks[s].copy() for s in ("left", "right")}
    if bridge:
        for side in ("left", "right"):
            named = found[side]
            for (up, _l1), (lo, _l2) in zip(named[:-1], named[1:]):
                p0 = np.array([up[-1].k, *up[-1].centre], float)  # lowest slice of the upper foramen
                p1 = np.array([lo[0].k, *lo[0].centre], float)  # highest slice of the lower foramen
                r_mm = float(np.sqrt(min(np.median([h.area_mm2 for h in up]),
                                         np.median([h.area_mm2 for h in lo])) / np.pi))
                sl, tube = _segment_dist_mm(a.shape, sp, p0, p1, max(r_mm, 0.5 * float(sp2.max())))
                full[side][sl] |= tube
    # 7. sulcus of C1
    sul = {s: np.zeros(a.shape, bool) for s in ("left", "right")}
    if sulcus:
        for side in ("left", "right"):
            c1 = [c for c, lv in found[side] if lv == "C1"]
            if not c1:
                msgs.append(f"C1 sulcus {side}: not segmented (no C1 foramen on this side)")
                continue
            s_mask, note = _c1_sulcus(a, bone_c, wall, canal_c, centres, c1[0], sp, side)
            sul[side] = s_mask
            full[side] |= s_mask
            if bridge and s_mask.any():
                # the artery leaves the C1 foramen upwards and turns back into the sulcus: a tube from the
                # foramen's upper aperture to the groove's centre, with the foramen's radius
                p0 = np.array([c1[0][0].k, *c1[0][0].centre], float)
                p1 = _local.argwhere(s_mask).mean(axis=0)  # = np.argwhere(s_mask).mean(axis=0)
                r_mm = float(np.sqrt(np.median([h.area_mm2 for h in c1[0]]) / np.pi))
                sl, tube = _segment_dist_mm(a.shape, sp, p0, p1, max(r_mm, 0.5 * float(sp2.max())))
                full[side][sl] |= tube
                note += "; joined to the C1 foramen by a straight tube"
            msgs.append(f"C1 sulcus {side}: {note}")

    segmented = {}
    head = []
    for side in ("left", "right"):
        levels = [lv or f"#{o}" for o, (_c, lv) in enumerate(found[side], start=1)]
        head.append(f"{side} bony canal: {len(levels)} transverse foramina found"
                    + (f" ({', '.join(levels)})" if levels else " (none closed: not segmented)"))
        if "C2" in vert_c:
            segmented[side] = "C2" in levels
            for lv in ("C1", "C2", "C3"):
                if lv not in levels:
                    head.append(f"{lv} {side} foramen not closed (or not in view): not segmented")
            if not segmented[side]:
                head.append(f"{side} bony canal NOT segmented: its C2 foramen was not found (not assessed)")
        else:
            segmented[side] = bool(levels)
    return ForaminaResult(cn.from_canon(full["left"]), cn.from_canon(full["right"]),
                          cn.from_canon(fmasks["left"]), cn.from_canon(fmasks["right"]),
                          cn.from_canon(sul["left"]), cn.from_canon(sul["right"]), foramina, head + msgs, t_wall,
                          segmented)


def _ring_overlap(chain: list[_Hole], lab: np.ndarray, vmask: np.ndarray) -> float:
    """Fraction of the 2-pixel ring around the chain's holes that lies in *vmask*."""
    tot, hit = 0, 0
    for h in chain:
        m = lab[h.k] == h.label
        # = ndi.binary_dilation(m, iterations=2) & ~m, on m's box grown by the 2 voxels it reaches
        ring = np.zeros_like(m)
        box = _local.bbox(m, 2)
        if box is not None:
            ring[box] = ndi.binary_dilation(m[box], iterations=2) & ~m[box]
        tot += int(ring.sum())
        hit += int((ring & vmask[h.k]).sum())
    return hit / max(tot, 1)


def _name_levels(chains: list[list[_Hole]], lab: np.ndarray, vert_c: dict[str, np.ndarray], sp: np.ndarray,
                 side: str, msgs: list[str]) -> list[tuple[list[_Hole], str | None]]:
    """Name the foramina of one side (sorted from the top) by level; drop those above C1 (step 5)."""
    if not chains:
        return []
    if not vert_c:
        msgs.append(f"{side}: no vertebra mask, levels of the foramina unknown (numbered from the top; holes "
                    "of the skull base passing the gates are kept)")
        return [(c, None) for c in chains]
    names: list[str | None] = [None] * len(chains)
    for i, c in enumerate(chains):
        best, best_f = None, MIN_RING_IN_VERTEBRA
        for lv, vm in vert_c.items():
            f = _ring_overlap(c, lab, vm)
            if f > best_f:
                best, best_f = lv, f
        names[i] = best
    if "C2" in vert_c and "C2" in names:
        i2 = names.index("C2")
        # merge: several chains named C2 are one foramen split by a missed slice: keep them all as C2
        top2 = chains[i2][0].k
        last_c2 = max(i for i, nm in enumerate(names) if nm == "C2")
        # C1: the nearest chain above the first C2 chain, within C1_MAX_ABOVE_MM
        # C1: among the chains above C2 whose top lies within C1_MAX_ABOVE_MM of the C2 foramen's, the
        # largest (sum of sections): small holes there are marrow pockets of the lateral mass
        above = [i for i in range(i2) if names[i] in (None, "C1")
                 and (chains[i][0].k - top2) * sp[0] <= C1_MAX_ABOVE_MM]
        c1 = max(above, key=lambda i: sum(h.area_mm2 for h in chains[i])) if above else None
        if c1 is not None:
            names[c1] = "C1"
        dropped = [i for i in range(i2) if names[i] is None or (names[i] == "C1" and i != c1)]
        if dropped:
            msgs.append(f"{side}: {len(dropped)} hole(s) above C2 not taken as the vertebral artery canal (skull-base "
                        "canals, or smaller holes beside the C1 foramen)")
        # below C2: the first foramen is C3 (+1 per LEVEL_SPACING_MM of height between the lowest slice
        # of the C2 mask and its top: the C2 foramen lies high in the tall axis, so the distance between
        # the C2 and C3 foramina says little), the next ones by their height under the previous one
        c2_bottom = int(np.nonzero(vert_c["C2"].any(axis=(1, 2)))[0].min())
        prev_level, prev_k = None, c2_bottom
        for i in range(last_c2 + 1, len(chains)):
            if names[i] is not None and names[i] != "C2":
                prev_level, prev_k = int(names[i][1:]), chains[i][-1].k
                continue
            if names[i] == "C2":
                continue
            dz = (prev_k - chains[i][0].k) * sp[0]
            if prev_level is None:  # first below C2: C3 unless a whole level lies between
                lv = 3 + max(0, int(dz // LEVEL_SPACING_MM))
            else:
                lv = prev_level + max(1, int(round(dz / LEVEL_SPACING_MM)))
            names[i] = f"C{lv}" if lv <= 7 else None
            prev_level, prev_k = lv, chains[i][-1].k
        return [(c, nm) for i, (c, nm) in enumerate(zip(chains, names)) if i not in dropped]
    if "C2" in vert_c:
        msgs.append(f"{side}: no foramen touches the C2 mask (C2 foramen not closed: not segmented); "
                    "foramina named only where they touch a vertebra mask")
    return list(zip(chains, names))


def _c1_sulcus(a, bone_c, wall, canal_c, centres, c1: list[_Hole], sp, side: str) -> tuple[np.ndarray, str]:
    """The sulcus of the vertebral artery on the posterior arch of C1 (one side), canonical mask.

    The groove is a depression of the upper surface of the posterior arch, medial to and behind
    the C1 foramen. In the band of slices from 10 mm below to 6 mm above the C1 foramen, for every
    column (j, i) behind the canal centre and beside it (:data:`SULCUS_LATERAL_MM`), the height of
    the highest wall voxel is taken; a grey closing of this height map (disk of 5 mm radius, the
    width of the groove being about the artery's 4-5 mm diameter) fills the groove; columns where
    the closing lies at least :data:`SULCUS_MIN_DEPTH_MM` above the surface are the groove, whose
    voxels from the surface up to the closed surface are returned. Columns whose surface is the
    band's edge (no arch there, or bone up to the top) are ignored.
    """
    K = a.shape[0]
    k_top, k_bot = c1[0].k, c1[-1].k
    lo = max(0, k_bot - int(round(10.0 / sp[0])))
    hi = min(K - 1, k_top + int(round(6.0 / sp[0])))
    cj, ci = centres[int(round((k_top + k_bot) / 2))]
    sgn = 1.0 if side == "left" else -1.0
    J, I = a.shape[1:]
    jj, ii = np.mgrid[0:J, 0:I]
    dx = (ii - ci) * sp[2] * sgn
    dy = (jj - cj) * sp[1]
    cj1, ci1 = c1[0].centre
    roi = (dx >= SULCUS_LATERAL_MM[0]) & (dx <= SULCUS_LATERAL_MM[1]) & (dy > 0) & ((jj - cj1) * sp[1] > 0)
    band = wall[lo:hi + 1] & ~canal_c[lo:hi + 1]
    has = band.any(axis=0) & roi
    if not has.any():
        return np.zeros(a.shape, bool), "not segmented (no posterior arch of C1 found behind the foramen)"
    # height of the highest wall voxel per column (canonical k ascends superiorly)
    top = np.where(has, lo + (band.shape[0] - 1 - np.argmax(band[::-1], axis=0)), lo - 1).astype(float)
    # only the arch: drop columns whose surface is the band's top (skull base or a continuous bone)
    arch = has & (top < hi)
    lab, n = _local.cc_label(arch)
    if n == 0:
        return np.zeros(a.shape, bool), "not segmented (no posterior arch of C1 below the skull base)"
    r = 5.0
    rr = int(np.ceil(r / sp[1]))
    yy, xx = np.mgrid[-rr:rr + 1, -rr:rr + 1]
    disk = (yy * sp[1]) ** 2 + (xx * sp[2]) ** 2 <= r * r
    h = np.where(arch, top, lo - 1)
    closed = ndi.grey_closing(h, footprint=disk)
    depth_mm = (closed - h) * sp[0]
    groove = arch & (depth_mm >= SULCUS_MIN_DEPTH_MM)
    out = np.zeros(a.shape, bool)
    if not groove.any():
        return out, "not found (no groove of at least %.1f mm on the posterior arch of C1)" % SULCUS_MIN_DEPTH_MM
    for j, i in np.argwhere(groove):
        k0, k1 = int(h[j, i]) + 1, int(closed[j, i])
        out[k0:k1 + 1, j, i] = True
    out &= ~wall
    return out, f"groove on the posterior arch of C1, {int(groove.sum())} columns, up to {depth_mm[groove].max():.0f} mm deep"
