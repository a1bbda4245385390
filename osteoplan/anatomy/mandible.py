"""The mandible from CT, classically (no trained weights).

The mandible is the U-shaped bone in front of the upper cervical spine, below the maxilla. On
axial slices its body is a bony arc open posteriorly whose centroid lies outside the bone (a
"U"), well in front of the spinal canal. It is a separate bone, but on CT it touches the maxilla
through the teeth (closed mouth, dental metal streaks) and the temporal bone at the joints, so:

1. seed: the bone of every axial slice holding such a U, wider than :data:`ARC_MIN_WIDTH_MM`
   and in front of the canal by at least :data:`ARC_MIN_ANTERIOR_MM` (the hyoid is narrower and
   closer to the spine);
2. growth: the 3D connected bone component holding most of the seed (the mandibular body is a U
   over 15-30 mm of height, more than any other bone). When it is larger than
   :data:`MANDIBLE_MAX_ML` (joined to the skull), it is first parted by a watershed from two
   markers, the mandibular body and the bone well above the condyles (:func:`_split_by_watershed`);
   failing that (no plausible volume), while it is larger than
   :data:`MANDIBLE_MAX_ML` (joined to the skull), the bone is eroded in-plane by one more voxel
   (up to :data:`MAX_EROSION_MM`) and the seed's component is taken in the eroded bone, then given
   back its eroded rim (every bone voxel nearest to it among the eroded components).

Every constant is a configurable default without a published source unless stated.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from osteoplan.anatomy.segment import Canon, _label_sizes, _plane_morph
from osteoplan.imaging.volume import Volume
from osteoplan.anatomy import _local

#: Least left-right width (mm) of the arc taken as the mandibular body. The adult mandible is
#: 80-100 mm wide at the angles (bigonial width) and the hyoid about 40-50 mm between the tips of
#: its greater horns (configurable default, no published source).
ARC_MIN_WIDTH_MM = 55.0
#: Least distance (mm) of the arc's front in front of the canal centre (configurable default).
ARC_MIN_ANTERIOR_MM = 45.0
#: Plausible mandible volume (mL): bone with teeth of an adult, about 40-90 mL (OpenKBP contours:
#: 70 mL in pt_1); wide bounds (configurable defaults, no published source).
MANDIBLE_MIN_ML = 10.0
MANDIBLE_MAX_ML = 160.0
#: Watershed parting (step 2, first try): height of the mandibular-body marker above the lowest U
#: slice, and height above it from which the joined bone is skull: above the condyles (menton to
#: condylion about 55-65 mm in adults; configurable defaults, no published source).
WS_BODY_MM = 10.0
WS_SKULL_ABOVE_MM = 75.0
#: Largest in-plane erosion tried to separate the mandible from the skull (mm, configurable default).
MAX_EROSION_MM = 8.0


def _u_slices(bone_c: np.ndarray, centre_ji: dict[int, tuple[float, float]] | None, sp: np.ndarray,
              body_c: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Axial slices (canonical, k ascending superiorly) holding a bony U in front of the spine.

    Returns (k, mask of the U on that slice, shape (J, I)) in order of k, then of the U's first voxel in the
    slice. The 8-connected bone objects of every slice come from one labelling of the whole array connected in
    the plane only (numbered slice by slice in raster order, as a labelling per slice would number them:
    :func:`_u_slices_reference` is that loop).
    """
    out = []
    st = np.zeros((3, 3, 3), bool)
    st[1] = True
    lab, n = _local.cc_label(bone_c, structure=st)
    if n == 0:
        return out
    cj_of: dict[int, float | None] = {}
    for t, sl in enumerate(ndi.find_objects(lab), start=1):
        k = sl[0].start
        if k not in cj_of:
            if centre_ji is not None and k in centre_ji:
                cj_of[k] = centre_ji[k][0]
            else:
                bj = np.nonzero(body_c[k].any(axis=1))[0]
                cj_of[k] = None if bj.size == 0 else 0.5 * (bj[0] + bj[-1])
        cj = cj_of[k]
        if cj is None:
            continue
        sl2 = sl[1:]
        if _is_u(lab[k][sl2] == t, sl2, cj, sp):
            full = np.zeros(bone_c.shape[1:], bool)
            full[sl2] = lab[k][sl2] == t
            out.append((k, full))
    return out


def _is_u(m: np.ndarray, sl: tuple[slice, slice], cj: float, sp: np.ndarray) -> bool:
    """Whether the bone object *m* (bool, its (j, i) bounding box *sl* in the slice) is a U wider than
    :data:`ARC_MIN_WIDTH_MM`, at least :data:`ARC_MIN_ANTERIOR_MM` in front of row *cj*, open posteriorly."""
    w = (sl[1].stop - sl[1].start) * sp[2]
    if w < ARC_MIN_WIDTH_MM:
        return False
    front_mm = (cj - sl[0].start) * sp[1]
    if front_mm < ARC_MIN_ANTERIOR_MM:
        return False
    pts = np.argwhere(m)
    c = np.rint(pts.mean(axis=0)).astype(int)
    if m[c[0], c[1]]:
        return False  # not a U: its centroid lies in the bone
    ci = c[1]
    if not (m[:, :ci].any() and m[:, ci + 1:].any()):
        return False
    # open posteriorly: the bone in the centroid's column lies in front of the centroid
    col = np.nonzero(m[:, ci])[0]
    if col.size == 0 or col.min() > c[0] or col.max() > c[0]:
        return False  # no bone in front of the centroid, or bone behind it (a closed ring: skull, vertebra)
    return True


def _u_slices_reference(bone_c: np.ndarray, centre_ji: dict[int, tuple[float, float]] | None, sp: np.ndarray,
                        body_c: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """:func:`_u_slices` slice by slice (one 2D labelling per axial slice; the reference it is tested against)."""
    out = []
    for k in range(bone_c.shape[0]):
        if not bone_c[k].any():
            continue
        lab, n = ndi.label(bone_c[k], structure=np.ones((3, 3), bool))
        if n == 0:
            continue
        if centre_ji is not None and k in centre_ji:
            cj = centre_ji[k][0]
        else:
            bj = np.nonzero(body_c[k].any(axis=1))[0]
            if bj.size == 0:
                continue
            cj = 0.5 * (bj[0] + bj[-1])
        for t, sl in enumerate(ndi.find_objects(lab), start=1):
            m = lab[sl] == t
            if _is_u(m, sl, cj, sp):
                full = np.zeros(bone_c.shape[1:], bool)
                full[sl] = m
                out.append((k, full))
    return out


def _split_by_watershed(hu_c: np.ndarray, comp: np.ndarray, seed: np.ndarray, sp: np.ndarray) -> np.ndarray | None:
    """Part the mandible from the skull in their joined bone component along its least dense junction.

    Markers: the mandible's lowest U slices (its body, up to :data:`WS_BODY_MM` above the lowest)
    and the component's bone higher than :data:`WS_SKULL_ABOVE_MM` above the lowest U slice (skull,
    above any condyle); both flood the component in order of decreasing density (watershed of the
    negated, lightly smoothed HU: Gaussian of 1 voxel in the axial plane): they meet where the bone is
    least dense -- the joint space of the temporomandibular joint, the contact of the teeth. None when
    the component reaches no higher than that (no skull marker).

    *hu_c* is the canonical HU array. The flood runs on the bounding box of the component up to the
    first skull-marker slice: above it every voxel of the component is a marker already, so nothing
    there is flooded, and the in-plane smoothing is computed on that box grown by its reach (4 voxels):
    the same partition as on the whole CT, at a fraction of the cost.
    """
    from skimage.segmentation import watershed

    ks = np.nonzero((seed & comp).any(axis=(1, 2)))[0]
    if ks.size == 0:
        return None
    k_low = int(ks.min())
    body_top = k_low + int(round(WS_BODY_MM / sp[0]))
    skull_from = k_low + int(round(WS_SKULL_ABOVE_MM / sp[0]))
    if skull_from >= comp.shape[0]:
        return None
    if not comp[skull_from:].any():
        return None
    # the box: the component's slices up to the first skull-marker slice (included)
    low = comp[:skull_from + 1]
    kk = np.flatnonzero(low.any(axis=(1, 2)))
    jj = np.flatnonzero(low.any(axis=(0, 2)))
    ii = np.flatnonzero(low.any(axis=(0, 1)))
    if kk.size == 0 or not comp[skull_from].any():
        # the marker slice holds none of the component: the skull markers above cannot reach the flood
        return _split_by_watershed_full(hu_c, comp, seed, sp)
    k0, k1 = int(kk[0]), skull_from + 1
    j0, j1, i0, i1 = int(jj[0]), int(jj[-1]) + 1, int(ii[0]), int(ii[-1]) + 1
    reach = 4  # gaussian_filter's default truncate 4.0 x sigma 1 voxel
    gj0, gj1 = max(j0 - reach, 0), min(j1 + reach, comp.shape[1])
    gi0, gi1 = max(i0 - reach, 0), min(i1 + reach, comp.shape[2])
    sm = ndi.gaussian_filter(hu_c[k0:k1, gj0:gj1, gi0:gi1].astype(np.float32), (0.0, 1.0, 1.0))
    sm = sm[:, j0 - gj0:j1 - gj0, i0 - gi0:i1 - gi0]
    box = (slice(k0, k1), slice(j0, j1), slice(i0, i1))
    c = comp[box]
    markers = np.zeros(c.shape, np.int32)
    markers[skull_from - k0:][c[skull_from - k0:]] = 2
    m1 = seed[box] & c
    m1[max(body_top + 1 - k0, 0):] = False
    markers[m1] = 1
    lab = watershed(-sm, markers=markers, mask=c)
    out = np.zeros(comp.shape, bool)
    out[box] = lab == 1
    return out


def _split_by_watershed_full(hu_c: np.ndarray, comp: np.ndarray, seed: np.ndarray, sp: np.ndarray) -> np.ndarray | None:
    """:func:`_split_by_watershed` on the whole array (the reference its box is checked against)."""
    from skimage.segmentation import watershed

    ks = np.nonzero((seed & comp).any(axis=(1, 2)))[0]
    if ks.size == 0:
        return None
    k_low = int(ks.min())
    body_top = k_low + int(round(WS_BODY_MM / sp[0]))
    skull_from = k_low + int(round(WS_SKULL_ABOVE_MM / sp[0]))
    if skull_from >= comp.shape[0]:
        return None
    markers = np.zeros(comp.shape, np.int32)
    markers[skull_from:][comp[skull_from:]] = 2
    if not (markers == 2).any():
        return None
    m1 = seed & comp
    m1[body_top + 1:] = False
    markers[m1] = 1
    sm_c = ndi.gaussian_filter(hu_c.astype(np.float32), (0.0, 1.0, 1.0))
    lab = watershed(-sm_c, markers=markers, mask=comp)
    return lab == 1


def segment_mandible(volume: Volume, bone: np.ndarray, body: np.ndarray | None = None,
                     canal: np.ndarray | None = None) -> tuple[np.ndarray | None, str]:
    """Segment the mandible (see the module docstring for the method).

    Parameters
    ----------
    volume : Volume
        CT in HU.
    bone : bool array (K, J, I)
        Bone mask on the CT grid (``segment_bone(...).bone``).
    body : bool array (K, J, I), optional
        Body mask (used for the anteroposterior reference when the canal is absent on a slice).
    canal : bool array (K, J, I), optional
        Spinal canal: the arc must lie in front of its centre.

    Returns
    -------
    mask : bool array (K, J, I) or None
        The mandible, or None when it was not found.
    message : str
        How it was found, or why not.
    """
    cn = Canon.of(volume)
    sp = cn.spacing_mm
    bone_c = cn.to_canon(np.asarray(bone, bool))
    body_c = cn.to_canon(np.asarray(body, bool)) if body is not None else bone_c
    centre = None
    if canal is not None and np.any(canal):
        from osteoplan.anatomy.foramina import _canal_centres

        centre = _canal_centres(cn.to_canon(np.asarray(canal, bool)))
    us = _u_slices(bone_c, centre, sp, body_c)
    if not us:
        return None, ("mandible: NOT segmented (no bony arc wider than %.0f mm in front of the spine on any axial "
                      "slice)" % ARC_MIN_WIDTH_MM)
    vox_ml = float(np.prod(sp)) / 1000.0
    # the seed: every U found; the mandible is the bone object holding most of them (its body is a U
    # over 15-30 mm of height; the hyoid's is lower, shorter and narrower)
    seed = np.zeros(bone_c.shape, bool)
    for k, m in us:
        seed[k] |= m
    st = ndi.generate_binary_structure(3, 1)
    for r_mm in [0.0] + list(np.arange(1.0, MAX_EROSION_MM + 1e-6, 1.0) * float(sp[1])):
        r = int(round(r_mm / sp[1]))
        if r == 0:
            er = bone_c
        else:
            yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
            # = ndi.binary_erosion(bone_c, structure=disk[None]), by row runs (segment._plane_morph)
            er = _plane_morph(bone_c, (yy * yy + xx * xx) <= r * r, False)
        lab, n = _local.cc_label(er, structure=st)
        held = np.bincount(lab[seed & er], minlength=n + 1)
        held[0] = 0
        if not held.any():
            return None, "mandible: NOT segmented (the arc vanished while separating it from the skull)"
        sizes = _label_sizes(lab, n)  # = np.bincount(lab.ravel(), minlength=n + 1)
        tid = int(np.argmax(held))
        vol = sizes[tid] * vox_ml
        if vol > MANDIBLE_MAX_ML and r == 0:
            # joined to the skull: first part them along the least dense junction (watershed)
            ws = _split_by_watershed(cn.to_canon(volume.array), lab == tid, seed, sp)
            if ws is not None and MANDIBLE_MIN_ML <= float(ws.sum()) * vox_ml <= MANDIBLE_MAX_ML:
                v_ws = float(ws.sum()) * vox_ml
                return cn.from_canon(ws), ("mandible: classical (U-shaped bone in front of the spine, parted from "
                                           f"the skull along the least dense junction (watershed); {v_ws:.0f} mL)")
        if vol > MANDIBLE_MAX_ML:
            continue
        if r == 0:
            mand = lab == tid
        else:
            # give the eroded rim back: each bone voxel goes to its nearest eroded component
            _, ind = ndi.distance_transform_edt(lab == 0, sampling=sp, return_indices=True)
            near = lab[tuple(ind)]
            mand = bone_c & (near == tid)
        vol = float(mand.sum()) * vox_ml
        if vol > MANDIBLE_MAX_ML:  # the rim given back joins it to the skull again
            continue
        if vol < MANDIBLE_MIN_ML:
            return None, f"mandible: NOT segmented (the bony arc found is only {vol:.1f} mL)"
        how = "connected bone" if r == 0 else f"bone eroded by {r_mm:.1f} mm to part it from the skull"
        return cn.from_canon(mand), (f"mandible: classical (U-shaped bone in front of the spine, {how}; "
                                     f"{vol:.0f} mL)")
    return None, (f"mandible: NOT segmented (joined to the skull even after {MAX_EROSION_MM:.0f} voxels of "
                  "erosion)")
