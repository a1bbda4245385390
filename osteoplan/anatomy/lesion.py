"""Lytic lesion inside C2, segmented relative to the patient's own bone density.

Method: the reference is the patient's own cancellous bone -- the interior of C2 (eroded by
1.5 mm to drop the cortex) and of C3 when given -- summarised robustly (median and 1.4826 x MAD).
A voxel inside the filled C2 is lytic when its (lightly smoothed) HU is below
``min(median - k * SD, (median + 40) / 2 + 20)`` (never above the midpoint between bone and soft
tissue, never below 60 HU) and above -200 HU (not fat/air); the mask is opened then closed
(1 voxel), components under 0.03 mL dropped, and the partial-volume shell next to the core is added
where it is darker than half-way between the core and the brightest face neighbour when that is
cortical (above twice the cancellous median), else the cancellous median. The search region is C2
plus the convex hull of the dens bone within 16 mm below the apex and 7 mm of the axis, so a
lesion that replaces a whole dens cross-section or breaks the cortex is bounded by the dens
outline restored from the bone above and below it.
``k = 3`` and the thresholds are engineering defaults (no published source).

Measures: volume (mL), fraction of the dens and of the C2 body involved, and the smallest residual
bone cross-section (mm^2) perpendicular to the dens axis, with its position.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from osteoplan.anatomy.c2parts import c2_frame
from osteoplan.anatomy.landmarks import DensLandmarks
from osteoplan.anatomy.segment import _smooth
from osteoplan.errors import AnatomyError, InputError
from osteoplan.imaging.volume import Volume
from osteoplan.anatomy import _local


#: Length of the dens below its apex whose bone outline (convex hull) bounds the lesion search
#: (author's default: the apex-to-waist distance is about 12-15 mm in adults, the dens about
#: 15-20 mm long above the body; no single published source).
DENS_HULL_LENGTH_MM = 16.0


@dataclass
class LesionResult:
    """A lytic lesion inside C2 and its measurements.

    Attributes
    ----------
    mask : bool array (K, J, I)
        Lytic voxels (empty when no lesion).
    volume_ml : float
    fraction_of_dens, fraction_of_body : float
        Share (0..1) of the dens (above the waist, near the axis) and of the C2 body (below the
        waist, the vertebral body only) taken by the lesion; see :func:`measure_lesion_in_c2`.
    min_residual_bone_area_mm2 : float
        Smallest remaining bone area of the dens/body cross-sections perpendicular to the dens
        axis (from 2 mm above the body centre to 2 mm below the apex).
    min_residual_position_lps_mm : (3,) array
        Centre of that cross-section (on the axis).
    reference_hu : dict
        Normal-bone reference used: median, sd, n voxels, threshold, source.
    found : bool
    notes : list[str]
    """

    mask: np.ndarray
    volume_ml: float
    fraction_of_dens: float
    fraction_of_body: float
    min_residual_bone_area_mm2: float
    min_residual_position_lps_mm: np.ndarray
    reference_hu: dict
    found: bool
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """Plain-JSON summary (without the mask)."""
        return {
            "found": self.found, "volume_ml": round(self.volume_ml, 3),
            "fraction_of_dens": round(self.fraction_of_dens, 3), "fraction_of_body": round(self.fraction_of_body, 3),
            "min_residual_bone_area_mm2": round(self.min_residual_bone_area_mm2, 1),
            "min_residual_position_lps_mm": [round(float(x), 2) for x in self.min_residual_position_lps_mm],
            "reference_hu": self.reference_hu, "notes": list(self.notes),
        }


def segment_lesion(volume: Volume, c2_mask: np.ndarray, landmarks: DensLandmarks,
                   c3_mask: np.ndarray | None = None, k_sd: float = 3.0) -> LesionResult:
    """Segment a lytic lesion inside C2 relative to the patient's own cancellous bone.

    Parameters
    ----------
    volume : Volume
        CT in HU.
    c2_mask : bool array (K, J, I)
        Whole C2, lytic cavities included (as returned by :func:`osteoplan.anatomy.c2.locate_c2`).
    landmarks : DensLandmarks
        For the dens axis, waist and apex.
    c3_mask : bool array (K, J, I), optional
        C3, added to the normal-bone reference.
    k_sd : float
        Lytic = below reference median - k_sd x SD (default 3; engineering default).

    Returns
    -------
    LesionResult
        Empty mask and ``found=False`` on a CT without lesion.

    Raises
    ------
    AnatomyError
        The C2 mask is empty or does not match the CT grid.
    """
    c2 = np.asarray(c2_mask, bool)
    if c2.shape != volume.shape or not c2.any():
        raise AnatomyError("Lesion segmentation needs a non-empty C2 mask on the CT grid; locate C2 first.")
    sp = volume.spacing_mm
    notes: list[str] = []
    ks = np.nonzero(c2.any(axis=(1, 2)))[0]
    k0, k1 = int(ks.min()), int(ks.max()) + 1
    js = np.nonzero(c2.any(axis=(0, 2)))[0]
    is_ = np.nonzero(c2.any(axis=(0, 1)))[0]
    sl = (slice(k0, k1), slice(max(js.min() - 2, 0), js.max() + 3), slice(max(is_.min() - 2, 0), is_.max() + 3))
    sub = volume.array[sl]
    sm = _smooth(sub, sp, 0.6)
    c2s = c2[sl]
    # reference: eroded interior of C2 (+ C3)
    r_vox = np.maximum(np.round(1.5 / sp).astype(int), 1)
    st = np.ones(tuple(2 * r + 1 for r in r_vox), bool)
    interior = ndi.binary_erosion(c2s, structure=st)
    ref_vals = sm[interior]
    src = "C2 interior"
    if c3_mask is not None and np.asarray(c3_mask).any():
        c3i = ndi.binary_erosion(np.asarray(c3_mask, bool), structure=st)
        ref_vals = np.concatenate([ref_vals, ndi.gaussian_filter(volume.array, 0.5)[c3i]])
        src = "C2 + C3 interior"
    # trabecular bone only (above soft tissue): lesions and cortex must not set the reference
    trab = ref_vals[(ref_vals > 120) & (ref_vals < 700)]
    if trab.size < 20:
        notes.append("too little trabecular bone to build a reference; a fixed 150 HU ceiling is used")
        med, sd = 250.0, 50.0
    else:
        med = float(np.median(trab))
        sd = float(1.4826 * np.median(np.abs(trab - med)))
    thr = float(min(med - k_sd * sd, 0.5 * (med + 40.0) + 20.0))
    thr = max(thr, 60.0)
    # where the lesion has destroyed the cortex, the C2 mask has lost it: the dens (a convex peg)
    # is restored as the convex hull of its remaining bone (above the waist, within 7 mm of
    # the axis), and lysis is searched inside C2 plus that hull
    region = c2s.copy()
    idx = np.argwhere(c2s)
    if idx.size:
        pts = volume.index_to_world((idx + [sl[0].start, sl[1].start, sl[2].start]).astype(float))
        # the dens is selected from the apex down (a lesion that replaces a whole cross-section
        # makes the narrowest bone section -- and hence the waist -- unreliable): within
        # DENS_HULL_LENGTH_MM below the apex and 7 mm of the axis through it
        off = pts - landmarks.apex_lps_mm
        t_ax = off @ landmarks.axis_unit
        rad = np.linalg.norm(off - np.outer(t_ax, landmarks.axis_unit), axis=1)
        t_waist = float((landmarks.waist_lps_mm - landmarks.apex_lps_mm) @ landmarks.axis_unit)
        t_min = min(t_waist + 1.0, -DENS_HULL_LENGTH_MM)
        dens_sel = (t_ax >= t_min) & (rad <= 7.0)
        if dens_sel.sum() >= 10:
            from skimage.morphology import convex_hull_image

            dm = np.zeros_like(c2s)
            di = idx[dens_sel]
            dm[di[:, 0], di[:, 1], di[:, 2]] = True
            lo = di.min(axis=0)
            hi = di.max(axis=0) + 1
            sub_d = dm[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            try:
                hull = convex_hull_image(sub_d)
            except Exception:  # degenerate (flat) point sets
                hull = sub_d
            region[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] |= hull
    # the core is searched one voxel inside the region (the partial-volume rim at the bone surface
    # and thin soft-tissue gaps taken into the mask are darker than bone without being lysis);
    # the shell step below restores the lesion's boundary voxels
    inner = ndi.binary_erosion(region, structure=ndi.generate_binary_structure(3, 1))
    lyt = inner & (sm < thr) & (sm > -200.0)
    lyt = ndi.binary_closing(ndi.binary_opening(lyt, structure=ndi.generate_binary_structure(3, 1)), structure=ndi.generate_binary_structure(3, 1)) & region
    vox_ml = volume.voxel_volume_ml
    lab, n = _local.cc_label(lyt)
    if n:
        sizes = np.bincount(lab.ravel()) * vox_ml
        keep = sizes >= 0.03
        keep[0] = False
        lyt = keep[lab]
    if lyt.any():
        # partial-volume shell: a boundary voxel next to the core belongs to the lesion when it is
        # darker than half-way between the core and the brightest bone around it (half-maximum
        # edge; a lesion touching the thin cortex is otherwise under-segmented by a voxel layer)
        core_mean = float(sm[lyt].mean())
        local_max = ndi.maximum_filter(sm, footprint=ndi.generate_binary_structure(3, 1))
        # ... the brightest bone around is the cortex only where it is really cortical (above
        # twice the cancellous median); elsewhere the cancellous median (a blurred cortex a few
        # voxels away must not pull a cancellous voxel into a small lesion)
        local_max = np.where(local_max > 2.0 * med, local_max, med)
        shell = ndi.binary_dilation(lyt, structure=ndi.generate_binary_structure(3, 1)) & region & ~lyt
        lyt |= shell & (sm < 0.5 * (core_mean + local_max))
    mask = np.zeros(volume.shape, bool)
    mask[sl] = lyt
    ref = {"median_hu": round(med, 1), "sd_hu": round(sd, 1), "n_voxels": int(trab.size),
           "threshold_hu": round(thr, 1), "k_sd": k_sd, "source": src}
    if not mask.any():
        notes.append("no lesion: no voxel of C2 below the lytic threshold")
    m = measure_lesion_in_c2(volume, c2, mask, landmarks)
    notes.extend(m.pop("notes"))
    return LesionResult(mask, float(mask.sum()) * volume.voxel_volume_ml, m["fraction_of_dens"], m["fraction_of_body"],
                        m["min_residual_bone_area_mm2"], m["min_residual_position_lps_mm"], ref, bool(mask.any()),
                        notes)


#: Bone within this distance (mm) of the dens axis counts in the residual cross-sections (the
#: anterior column: dens and body, not the lateral masses; author's default).
RESIDUAL_RADIUS_MM = 12.0


def measure_lesion_in_c2(volume: Volume, c2_mask: np.ndarray, lesion_mask: np.ndarray,
                         landmarks: DensLandmarks) -> dict:
    """Fractions of the dens and of the C2 body taken by a lesion, and the smallest residual bone section.

    C2 (with the lesion: ``solid = C2 | lesion``) is split on the dens landmarks, with ``s`` the
    distance along the dens axis from the waist (positive towards the apex) and (u, v) the
    patient-left / posterior in-plane offsets:

    * dens: ``s >= 0`` within ``max(6 mm, 0.75 x waist diameter)`` of the axis;
    * body: ``s < 0`` with, relative to the body centre, ``-1.5 d <= v <= d`` and ``|u| <= 1.1 d``,
      ``d`` the half-depth of the body (body centre to anteroinferior point along v, at least 4 mm);
    * the rest (pedicles, lateral masses, laminae, spinous process) is neither.

    These are the rules of :func:`osteoplan.anatomy.c2parts.split_c2` (configurable defaults,
    no published source). The residual bone of a section is ``solid`` minus the lesion within
    :data:`RESIDUAL_RADIUS_MM` of the axis, in slabs ``max(largest voxel step, 1 mm)`` thick
    perpendicular to the axis, from 2 mm above the body centre to 2 mm below the apex; its area
    is the slab's voxel volume divided by the slab thickness.

    Parameters
    ----------
    volume : Volume
        Gives the grid (shape (K, J, I), affine); HU are not used.
    c2_mask, lesion_mask : bool arrays (K, J, I)
    landmarks : DensLandmarks
        Waist, apex, axis, body centre and anteroinferior point (LPS mm).

    Returns
    -------
    dict
        ``fraction_of_dens``, ``fraction_of_body`` (0..1), ``dens_ml``, ``body_ml``,
        ``min_residual_bone_area_mm2`` (NaN when the dens is too short to measure),
        ``min_residual_position_lps_mm`` ((3,) on the axis), ``notes`` (list of str).

    Raises
    ------
    AnatomyError
        Masks not on the CT grid, or an empty C2.
    """
    c2 = np.asarray(c2_mask, bool)
    les = np.asarray(lesion_mask, bool)
    if c2.shape != volume.shape or les.shape != volume.shape or not c2.any():
        raise AnatomyError("Lesion measures need a non-empty C2 mask and a lesion mask on the CT grid.")
    notes: list[str] = []
    waist = np.asarray(landmarks.waist_lps_mm, float)
    axis = np.asarray(landmarks.axis_unit, float) / np.linalg.norm(landmarks.axis_unit)
    solid = c2 | les
    try:
        fr = c2_frame(volume, solid, landmarks)
    except InputError:
        raise AnatomyError("The dens axis runs left-right; it must point mostly superior.") from None
    idx, s_, u_, v_, is_dens, is_body = fr.idx, fr.s, fr.u, fr.v, fr.is_dens, fr.is_body
    bc = np.asarray(landmarks.body_centre_lps_mm, float) - waist
    in_les = les[tuple(idx.T)]
    vox_ml = volume.voxel_volume_ml
    fd = float((in_les & is_dens).sum()) / max(int(is_dens.sum()), 1)
    fb = float((in_les & is_body).sum()) / max(int(is_body.sum()), 1)
    if les.any() and any("waist" in n and "uncertain" in n for n in getattr(landmarks, "notes", ())):
        # locate_c2 flags a waist found in a focal notch (lysis through the dens): the dens/body split
        # then runs through the lesion, and the two fractions are shared out accordingly
        notes.append("the dens waist is uncertain (narrowest section in the lesion): the dens / body fractions "
                     "depend on where the split plane cuts the lesion")
    if les.any() and not (in_les & (is_dens | is_body)).any():
        notes.append("the lesion lies outside the dens and the C2 body (posterior elements)")
    # residual bone cross-sections perpendicular to the axis
    bone = ~in_les
    t_b = s_[bone]
    radial = np.hypot(u_, v_)[bone]
    near = radial <= RESIDUAL_RADIUS_MM
    t_apex = float((np.asarray(landmarks.apex_lps_mm, float) - waist) @ axis)
    t_body = float(bc @ axis)
    step = float(max(volume.spacing_mm.max(), 1.0))
    vox_mm3 = vox_ml * 1000.0
    best_a, best_t = np.inf, 0.0
    t = t_body + 2.0
    while t <= t_apex - 2.0:
        area = float((near & (np.abs(t_b - t) <= step / 2)).sum()) * vox_mm3 / step
        if area < best_a:
            best_a, best_t = area, t
        t += step
    if not np.isfinite(best_a):
        best_a, best_t = float("nan"), 0.0
        notes.append("dens too short to measure residual cross-sections")
    return {"fraction_of_dens": min(fd, 1.0), "fraction_of_body": min(fb, 1.0),
            "dens_ml": float(is_dens.sum()) * vox_ml, "body_ml": float(is_body.sum()) * vox_ml,
            "min_residual_bone_area_mm2": float(best_a), "min_residual_position_lps_mm": waist + best_t * axis,
            "notes": notes}


def lesion_from_mask(volume: Volume, c2_mask: np.ndarray, lesion_mask: np.ndarray, landmarks: DensLandmarks,
                     source: str = "provided mask") -> LesionResult:
    """Measure a lesion given as a mask (provided by the user or another tool) inside C2.

    Same measures as :func:`segment_lesion` (:func:`measure_lesion_in_c2`); ``reference_hu``
    only records the source, since no threshold was applied.

    Parameters
    ----------
    volume : Volume
    c2_mask, lesion_mask : bool arrays (K, J, I)
    landmarks : DensLandmarks
    source : str
        Where the mask came from (for the summary).

    Returns
    -------
    LesionResult
        ``found`` is False for an empty mask (segmented and absent).

    Raises
    ------
    AnatomyError
        Masks not on the CT grid, or an empty C2.
    """
    les = np.asarray(lesion_mask, bool)
    m = measure_lesion_in_c2(volume, c2_mask, les, landmarks)
    notes = list(m.pop("notes"))
    if not les.any():
        notes.append("no lesion: the provided lesion mask is empty")
    return LesionResult(les.copy(), float(les.sum()) * volume.voxel_volume_ml, m["fraction_of_dens"],
                        m["fraction_of_body"], m["min_residual_bone_area_mm2"], m["min_residual_position_lps_mm"],
                        {"source": source}, bool(les.any()), notes)
