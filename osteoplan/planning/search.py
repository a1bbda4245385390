"""Dense, vectorised search over candidate trajectories, for any procedure.

The search knows no anatomy: a procedure module (:mod:`osteoplan.planning.procedures`) gives a
:class:`~osteoplan.planning.site.Site` (target bone, frame, reference points, direction cones) and the target
points. Candidates are every (target point) x (direction within the protocol's angle limits, from the
requested side(s)). Each is evaluated by the compiled kernel
(:func:`osteoplan.planning.kernel.evaluate_candidates`) on distance maps computed once on a region
of interest (:mod:`osteoplan.planning.fields`). Hard constraints give the feasible set; the
objective (:func:`objective`) ranks it.

The dense pass (:func:`run_kernel_gated`) does not measure the structures along the paths short of the containment
or tip-to-cortex rule by more than one sample step: those candidates are neither feasible nor near-feasible whatever
their clearances, so the feasible set, every violation and score the refinement uses, the refinement pool and the
plans are those of measuring every candidate (:func:`_search_one`, ``exhaustive``; ``benchmarks/bench_planner.py``
compares both). In the plan's exclusion counts, "first failing" counts are unchanged (both rules come before every
clearance in their order); the clearance, hollow-viscus and hydrodissection totals count the candidates measured, as
their descriptions say.

Hard constraints, in the order used for "first failing constraint" counts:

``skin``          the path reaches the skin inside the field of view within ``entry.max_depth_mm``;
``bone_entry``    the bone entry lies in the protocol's entry zone (a box in the site frame around one of
                  its reference points: near the C2 anteroinferior corner for the anterior screw, around
                  the pedicle entry point for a transpedicular needle);
``screw_length``  bone entry -> target fits the screw catalogue (>= the length floor, < longest + one
                  step); not applied to a needle;
``<axis>``        the path is within ``angles.axis_max_deg`` of the site's cone axis (when set), named by
                  the procedure (``dens_axis``, ``pedicle_axis``);
``tip_to_cortex`` the tip lies at most ``target.tip_to_cortex_max_mm`` short of the cortex ahead (when set);
procedure rules   e.g. ``thread_waist`` (the screw's thread crosses the dens waist);
``thread_lesion`` the thread crosses the lesion, when one is segmented (when required);
``entry_angle``   the path meets the target bone's cortex at >= ``entry.min_incidence_deg`` (a trocar
                  skids on a tangential cortex);
``containment``   the implant surface stays the containment margin inside the target bone (entry
                  excepted);
``clearance:X``   every segmented hard structure X: clearance >= its margin;
``viscus:X``      a hollow viscus X (``never_enter``: pharynx, oesophagus, larynx, trachea, airway) is
                  never intersected by the instrument (clearance >= 0): hydrodissection displaces what
                  the path passes near, it does not open a way through a lumen;
``corridor``      the path stays medial to the structures ``entry.skin_medial_to`` names (the carotid
                  sheath) wherever it is at or behind their front edge, where they are segmented;
``bone_on_way``   no bone other than the target bone crossed between skin and bone entry;
``hydrodissection_limit`` displacement needed by any displaceable structure <= what hydrodissection
                  can achieve (``hydrodissection.achievable_mm``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.errors import AnatomyError, PlanningError
from osteoplan.imaging.volume import Volume
from osteoplan.planning import kernel as K
from osteoplan.planning.fields import (CAP_MM, ROIFields, StructureField, capped_distance_mm, depth_inside_mm,
                                       nonzero_box, signed_distance_mm)
from osteoplan.planning.procedures import Procedure, cone_directions, get_procedure
from osteoplan.planning.protocol import Protocol
from osteoplan.planning.site import Site
from osteoplan.anatomy import _local

CONSTRAINTS: dict[str, str] = {
    "skin": "path reaches the skin inside the field of view and within the maximum depth",
    "bone_entry": "bone entry inside the protocol's entry zone on the target bone",
    "screw_length": "bone entry to target fits the screw catalogue and the length floor",
    "dens_axis": "path within the maximum angle to the dens axis",
    "pedicle_axis": "path within the maximum angle to the pedicle axis",
    "tip_to_cortex": "tip at most the allowed distance short of the apical cortex",
    "thread_waist": "the screw's thread crosses the dens waist",
    "thread_lesion": "the screw's thread crosses the lesion",
    "corridor": "path medial to the carotid sheath wherever it is at the sheath's depth (between it and the visceral column)",
    "containment": "the implant stays inside the target bone with the containment margin",
    "entry_angle": "path meets the target bone's cortex at least at the minimum incidence angle",
    "bone_on_way": "no other bone (mandible, C1, C3, ribs...) crossed before the target bone",
    "hydrodissection_limit": "displacement needed within what hydrodissection achieves",
}


#: Largest dense search allowed (targets x directions). Each candidate holds ~(8 + structures) float64
#: results, so 20 million candidates take about 4 GB: a finer protocol grid would exhaust the memory.
#: Configurable default (machine limit), no clinical source.
MAX_CANDIDATES = 20_000_000


def check_grid_size(n_targets: int, n_dirs: int, protocol: Protocol) -> None:
    """Refuse a search grid too large for memory before allocating it.

    Raises
    ------
    osteoplan.errors.ProtocolError
        ``n_targets * n_dirs`` exceeds :data:`MAX_CANDIDATES`.
    """
    from osteoplan.errors import ProtocolError

    n = int(n_targets) * int(n_dirs)
    if n > MAX_CANDIDATES:
        raise ProtocolError(
            f"The protocol's search grid is too fine: {n_targets} target points x {n_dirs} directions = {n:,} "
            f"candidates (limit {MAX_CANDIDATES:,}, about 4 GB of memory). Increase angles.grid_step_deg "
            f"(now {protocol.angles.grid_step_deg:g}) or lower target.max_targets (now {protocol.target.max_targets}).")


def choose_diameter(protocol: Protocol, waist_mm: float | None,
                    width_limit: tuple[str, str] | None = None) -> tuple[float, bool | None, list[str]]:
    """Largest catalogue diameter leaving the width margin (``screw.waist_margin_mm``) of bone each side at the
    narrowest section (the dens waist). A needle has one diameter: returned as is.

    Parameters
    ----------
    protocol : Protocol
    waist_mm : float or None
        Width of the narrowest bone section the implant passes (mm); None or NaN when unknown.
    width_limit : (str, str) or None
        That section in words, from the procedure (:attr:`osteoplan.planning.procedures.Procedure.width_limit`:
        its name opening a sentence, what to check on the images). None: the route passes no such section, and no
        warning speaks of one.

    Returns
    -------
    (diameter_mm, fits, warnings)
        Unknown waist -> smallest diameter, fits None.
    """
    imp = protocol.implant()
    ds = list(imp.diameters_mm)
    what = "screw" if imp.kind == "screw" else "needle"
    if waist_mm is None or not np.isfinite(waist_mm):
        if width_limit is None:
            return ds[0], None, []
        part, check = width_limit
        return ds[0], None, [f"{part} diameter unknown: smallest {'catalogue ' if what == 'screw' else ''}{what} assumed; "
                             f"check the {check} on the images."]
    ok = [d for d in ds if (waist_mm - d) / 2 >= imp.width_margin_mm - 1e-9]
    if ok:
        return ok[-1], True, []
    part = width_limit[0] if width_limit is not None else "The narrowest bone section"
    return ds[0], False, [f"{part} {waist_mm:.1f} mm leaves less than {imp.width_margin_mm:.1f} mm of bone "
                          f"each side of even the thinnest {what} ({ds[0]:.1f} mm): discuss the indication."]


# --------------------------------------------------------------------------- ROI and fields
def build_fields(volume: Volume, labelmap: LabelMap, site: Site, protocol: Protocol,
                 lesion_mask: np.ndarray | None = None,
                 defer_maps: bool = False) -> tuple[ROIFields, list[str], dict[str, str]]:
    """Compute the ROI and every distance map the search needs.

    Returns (fields, warnings, not_assessed) where not_assessed maps each protocol structure that
    was not segmented to the reason.

    With *defer_maps*, the structures' distance maps (``fields.maps``) are not computed here but by the kernel's
    callers, on the part of the ROI their paths read (:meth:`~osteoplan.planning.fields.ROIFields.ensure_maps`,
    :func:`measured_reach_box`): the same values there, computed on a smaller box. The search does so.
    """
    warnings: list[str] = []
    sp = volume.spacing_mm
    c2, c2_src, w = get_procedure(protocol.procedure).bone_mask(volume, labelmap, site, protocol)
    warnings += w
    # ROI: body bounding box in-plane; S-I around the site's centre, extended by the reach of the steepest path
    a = protocol.angles
    up = site.roi_above_mm + protocol.entry.max_depth_mm * max(0.0, np.sin(np.radians(-a.craniocaudal_min_deg)))
    down = site.roi_below_mm + protocol.entry.max_depth_mm * max(0.0, np.sin(np.radians(a.craniocaudal_max_deg)))
    centre = site.centre_lps_mm
    if labelmap.has("body") and labelmap.get("body").any():
        body_full, body_src = labelmap.get("body"), labelmap.sources.get("body", "segmented")
    else:
        body_full = _local.fill_holes(volume.array > -300) if volume.array.size < 4e7 else volume.array > -300
        body_src = "HU > -300 threshold (no body mask)"
        warnings.append("No body (skin) mask: skin taken as the HU > -300 boundary.")
    # S-I box in LPS z -> index box (axis-aligned or oblique grids: use corner mapping)
    zlo, zhi = centre[2] - down, centre[2] + up
    # index of each slice centre's z (works for any affine: evaluate on the index grid corners per axis)
    K_, J_, I_ = volume.shape
    lo = np.zeros(3, int)
    hi = np.asarray(volume.shape)
    # find the axis that carries z the most and crop along it
    zaxis = int(np.argmax(np.abs(volume.affine[2, :3])))
    idx = np.arange(volume.shape[zaxis], dtype=float)
    pts = np.zeros((len(idx), 3))
    pts[:, zaxis] = idx
    c = np.asarray(volume.shape, float) / 2
    for ax in range(3):
        if ax != zaxis:
            pts[:, ax] = c[ax]
    z = volume.index_to_world(pts)[:, 2]
    inside = np.nonzero((z >= zlo) & (z <= zhi))[0]
    if len(inside) == 0:
        raise AnatomyError(f"The {site.level} landmarks lie outside the CT; check the field of view.")
    lo[zaxis], hi[zaxis] = max(0, inside[0] - 1), min(volume.shape[zaxis], inside[-1] + 2)
    # Scanned data that stops inside the body (slices blanked to air beyond a limit, as in cropped
    # or dose-region CTs): a path leaving there has NOT reached the skin. The ROI ends at the last
    # scanned slice, so such paths count as "skin not reached inside the field of view".
    cut = truncated_fov_slices(body_full, zaxis, float(volume.world_to_index(centre)[zaxis]))
    for side_, kcut in cut.items():
        if side_ > 0 and kcut < hi[zaxis]:
            hi[zaxis] = max(kcut, lo[zaxis] + 1)
        elif side_ < 0 and kcut + 1 > lo[zaxis]:
            lo[zaxis] = min(kcut + 1, hi[zaxis] - 1)
        ap = volume.world_to_index(centre)
        q = ap.copy()
        q[zaxis] = kcut
        dz = float(volume.index_to_world(q)[2] - centre[2])
        where = "the dens apex" if site.level == "C2" else f"the {site.level} target"
        warnings.append(f"CT data stop inside the body {abs(dz):.0f} mm {'above' if dz > 0 else 'below'} {where} "
                        "(truncated field of view): paths leaving the body there are not counted as reaching "
                        "the skin.")
    bb = nonzero_box(body_full)
    if bb is not None:
        for ax in range(3):
            if ax != zaxis:
                lo[ax], hi[ax] = max(lo[ax], bb[ax][0] - 2), min(hi[ax], bb[ax][1] + 3)
    faces = []
    for ax in range(3):
        if lo[ax] == 0 or (ax == zaxis and -1 in cut and lo[ax] == cut[-1] + 1):
            faces.append((ax, -1))
        if hi[ax] == volume.shape[ax] or (ax == zaxis and 1 in cut and hi[ax] == cut[1]):
            faces.append((ax, +1))
    sl = tuple(slice(int(l), int(h)) for l, h in zip(lo, hi))
    aff = volume.affine.copy()
    aff[:3, 3] = volume.index_to_world(lo.astype(float))
    shape = tuple(int(h - l) for l, h in zip(lo, hi))

    c2r = c2[sl]
    bone_other_src: str
    if labelmap.has("bone"):
        bone_r = labelmap.get("bone")[sl].copy()
        bone_other_src = labelmap.sources.get("bone", "segmented")
    else:
        bone_r = volume.array[sl] >= protocol.density.bone_hu
        bone_other_src = f"HU >= {protocol.density.bone_hu:.0f} threshold (no bone mask)"
    if labelmap.has("mandible"):
        bone_r |= labelmap.get("mandible")[sl]
    c2_grown = _dilated_once(c2r)
    other = bone_r & ~c2_grown
    les = None
    if lesion_mask is not None:
        les = lesion_mask
    elif labelmap.has("lesion"):
        les = labelmap.get("lesion")
    if les is not None:
        other &= ~les[sl]
    lesion_r = les[sl] if les is not None else np.zeros(shape, bool)

    f = ROIFields(offset=lo.copy(), shape=shape, affine=aff, spacing_mm=sp,
                  bone_depth_mm=depth_inside_mm(c2r, sp), body=body_full[sl].astype(np.uint8),
                  other_bone=other.astype(np.uint8), lesion=lesion_r.astype(np.uint8),
                  bone_source=c2_src, body_source=body_src, other_bone_source=bone_other_src,
                  lesion_assessed=les is not None, fov_faces=tuple(faces))
    not_assessed: dict[str, str] = {}
    for name, rule in protocol.structures.items():
        if name == "other_bone":
            f.structures.append(StructureField(name, rule.category, rule.margin_mm, None, bone_other_src,
                                               soft_only=True))
            f.map_sources.append((other, False))
            continue
        if not labelmap.has(name):
            not_assessed[name] = "not segmented"
            continue
        if name in site.not_covered:
            not_assessed[name] = site.not_covered[name]
            continue
        m = labelmap.get(name)
        f.structures.append(StructureField(name, rule.category, rule.margin_mm, None,
                                           labelmap.sources.get(name, "segmented"),
                                           soft_only=(name == "mandible"), mask_full=m,
                                           never_enter=rule.never_enter))
        f.map_sources.append((m[sl], rule.category == "displaceable"))
    if protocol.entry.skin_medial_to:
        _medial_edges(f, volume, labelmap, site, protocol, sl, zaxis)
    if not defer_maps:
        f.ensure_maps(None)
    return f, warnings, not_assessed


def _dilated_once(mask: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_dilation(mask, iterations=1)`` (6-neighbourhood, nothing beyond the border), computed
    on the mask's bounding box grown by one voxel (the dilation is empty farther away)."""
    box = nonzero_box(mask)
    out = np.zeros(mask.shape, bool)
    if box is None:
        return out
    sl = tuple(slice(max(0, a - 1), min(n, b + 2)) for (a, b), n in zip(box, mask.shape))
    out[sl] = ndi.binary_dilation(mask[sl], iterations=1)
    return out


def _medial_edges(f: ROIFields, volume: Volume, labelmap: LabelMap, site: Site, protocol: Protocol,
                  sl: tuple[slice, ...], zaxis: int) -> None:
    """Per ROI slice, where the structures named in ``entry.skin_medial_to`` (the carotid sheath) lie on each side.

    Fills ``f.medial_edge_left_mm`` / ``_right_mm`` (signed lateral offset of their medial edge from the
    mid-sagittal plane through the zone's reference point, + = patient left) and ``f.front_edge_left_mm`` /
    ``_right_mm`` (anterior offset of their front edge). Slices where a side has none are NaN (not assessed).
    """
    ref, _, ant, lat = zone_frame(site, protocol)
    n = f.shape[zaxis]
    edges = {side: (np.full(n, np.nan), np.full(n, np.nan)) for side in ("left", "right")}
    used = []
    for base in protocol.entry.skin_medial_to:
        for side, (med, front) in edges.items():
            name = f"{base}_{side}"
            if not labelmap.has(name):
                continue
            m = labelmap.get(name)[sl]
            if not m.any():
                continue
            used.append(name)
            idx = np.argwhere(m)
            w = volume.index_to_world(idx + f.offset[None]) - ref
            off, fwd = w @ lat, w @ ant
            k = idx[:, zaxis]
            for kk in np.unique(k):
                sel = k == kk
                o = off[sel]
                if side == "left":
                    keep = o > 0
                    if keep.any():
                        med[kk] = np.nanmin([med[kk], o[keep].min()])
                else:
                    keep = o < 0
                    if keep.any():
                        med[kk] = np.nanmax([med[kk], o[keep].max()])
                if keep.any():
                    front[kk] = np.nanmax([front[kk], fwd[sel][keep].max()])
    f.medial_edge_left_mm, f.front_edge_left_mm = edges["left"]
    f.medial_edge_right_mm, f.front_edge_right_mm = edges["right"]
    f.medial_axis, f.medial_sources = zaxis, tuple(used)


def corridor_violation(fields: ROIFields, targets: np.ndarray, dirs: np.ndarray, s_from: np.ndarray,
                       s_to: np.ndarray, site: Site, protocol: Protocol, reached: np.ndarray,
                       step_mm: float = 2.0) -> np.ndarray:
    """(N,) mm by which a path passes lateral to the carotid sheath (or whatever ``entry.skin_medial_to`` names).

    The anterior cervical corridor runs between the visceral column and the carotid sheath: wherever the path
    (sampled every *step_mm* from ``s_from`` to ``s_to`` mm before the target, i.e. between the bone entry and
    the skin) lies at or behind the front edge of the sheath on its side and slice, it must lie medial to the
    sheath's medial edge. Passing in front of the sheath, near the skin, is allowed. The violation is, over the
    samples, the largest ``min(lateral excess, depth behind the front edge)``; 0 where medial, where the path
    did not reach the skin (``reached`` False), or where the sheath is not segmented.
    """
    out = np.zeros(len(targets))
    if fields.medial_edge_left_mm is None or not reached.any():
        return out
    ref, _, ant, lat = zone_frame(site, protocol)
    sel = np.nonzero(reached)[0]
    n_s = int(np.ceil(float(np.max(s_to[sel] - s_from[sel])) / step_mm)) + 1
    frac = np.linspace(0.0, 1.0, max(n_s, 2))
    for chunk in np.array_split(sel, max(1, len(sel) // 20000 + 1)):
        s = s_from[chunk, None] + frac[None] * (s_to[chunk] - s_from[chunk])[:, None]  # (n, m)
        pts = targets[chunk, None, :] - s[..., None] * dirs[chunk, None, :]
        rel = pts - ref
        o, a = rel @ lat, rel @ ant
        k = np.rint(fields.world_to_roi(pts)[..., fields.medial_axis]).astype(int)
        k = np.clip(k, 0, len(fields.medial_edge_left_mm) - 1)
        v = np.zeros(o.shape)
        for sign, med_arr, front_arr in ((1.0, fields.medial_edge_left_mm, fields.front_edge_left_mm),
                                         (-1.0, fields.medial_edge_right_mm, fields.front_edge_right_mm)):
            med, front = med_arr[k], front_arr[k]
            lateral = sign * (o - med)  # > 0: lateral to the medial edge on this side
            behind = front - a          # > 0: at or behind the sheath's front edge
            on_side = (sign * o > 0) & np.isfinite(med)
            v = np.maximum(v, np.where(on_side, np.minimum(np.maximum(lateral, 0), np.maximum(behind, 0)), 0.0))
        out[chunk] = v.max(axis=1)
    return out


def truncated_fov_slices(body: np.ndarray, zaxis: int, k_apex: float, drop: float = 0.25,
                         min_share: float = 0.2) -> dict[int, int]:
    """Slices where the scanned data stop inside the body (field of view truncated), on each side of the apex.

    Walking from the apex slice outwards along *zaxis*, a truncation is a slice whose body area falls
    below ``drop`` x the previous slice's while that previous slice still held at least ``min_share`` of
    the apex slice's area. Anatomy tapers over several slices (skull vertex); blanked or cropped data
    (e.g. CTs kept only within a dose region) fall in one slice. Thresholds are configurable defaults,
    no published source.

    Parameters
    ----------
    body : (K, J, I) bool
        Body (skin) mask.
    zaxis : int
        Array axis carrying the cranio-caudal direction.
    k_apex : float
        Index of the dens apex along *zaxis*.

    Returns
    -------
    dict
        ``{+1: first truncated index above k_apex along the axis, -1: last truncated index below}``
        for the sides where a truncation was found.
    """
    other = tuple(a for a in range(3) if a != zaxis)
    area = body.sum(axis=other).astype(float)
    n = len(area)
    k0 = int(np.clip(round(k_apex), 0, n - 1))
    ref = max(area[k0], 1.0)
    out: dict[int, int] = {}
    for step in (+1, -1):
        k = k0
        while 0 <= k + step < n:
            nxt = k + step
            if area[k] >= min_share * ref and area[nxt] < drop * area[k]:
                out[step] = nxt
                break
            k = nxt
    return out


# --------------------------------------------------------------------------- candidates
def target_points(fields: ROIFields, site: Site, protocol: Protocol, r_screw: float = 0.0) -> np.ndarray:
    """Target points (T, 3) LPS mm of *site*: the procedure's target zone, deep enough in the target bone for an
    implant of radius *r_screw* (see the procedure module's ``target_points``)."""
    return get_procedure(protocol.procedure).target_points(fields, site, protocol, r_screw)


def directions(protocol: Protocol, sides: list[str], step_deg: float | None = None,
               site: Site | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(D, 3) unit directions (skin -> target) for each side, and (D,) side codes (+1 right, -1 left).

    With ``angles.axis_max_deg`` set and a *site*, the directions are cones around the site's cone axes
    (:func:`~osteoplan.planning.procedures.cone_directions`) kept where the craniocaudal and mediolateral
    limits hold. A cone given for a side (``"left"`` / ``"right"``: a pedicle) belongs to that side; the one cone
    ``"any"`` (the dens axis) gives each direction the side where its skin entry lies (a path travelling
    towards the patient's left, +x, enters on the right). Otherwise the (craniocaudal x mediolateral) grid of
    each side.
    """
    a = protocol.angles
    st = step_deg or a.grid_step_deg
    if a.axis_max_deg is not None and site is not None and site.cone_axes:
        ds, ss = [], []
        for key, axis in site.cone_axes.items():
            if key != "any" and key not in sides:
                continue
            d = cone_directions(axis, a.axis_max_deg, st)
            cc, ml = K.angles_of(d)
            keep = ((cc >= a.craniocaudal_min_deg - 1e-9) & (cc <= a.craniocaudal_max_deg + 1e-9)
                    & (ml >= a.mediolateral_min_deg - 1e-9) & (ml <= a.mediolateral_max_deg + 1e-9))
            d = d[keep]
            if key == "any":
                sign = np.where(d[:, 0] >= 0, 1.0, -1.0)
                sel = np.isin(sign, [1.0 if s_ == "right" else -1.0 for s_ in sides])
                d, sign = d[sel], sign[sel]
            else:
                sign = np.full(len(d), 1.0 if key == "right" else -1.0)
            ds.append(d)
            ss.append(sign)
        if not ds:
            return np.zeros((0, 3)), np.zeros(0)
        return np.concatenate(ds), np.concatenate(ss)
    cc = np.arange(a.craniocaudal_min_deg, a.craniocaudal_max_deg + 1e-9, st)
    ml = np.arange(a.mediolateral_min_deg, a.mediolateral_max_deg + 1e-9, st)
    ds, ss = [], []
    for side in sides:
        sign = 1.0 if side == "right" else -1.0
        d = K.unit_directions(sign, cc, ml)
        ds.append(d)
        ss.append(np.full(len(d), sign))
    return np.concatenate(ds), np.concatenate(ss)


@dataclass
class Evaluation:
    """Per-candidate results of the kernel (arrays of length N, or (N, S))."""

    cand_t: np.ndarray
    cand_d: np.ndarray
    code: np.ndarray
    s_bone: np.ndarray
    s_skin: np.ndarray
    containment: np.ndarray
    other_bone: np.ndarray
    lesion: np.ndarray
    clear: np.ndarray
    incidence_deg: np.ndarray
    tip_gap: np.ndarray | None = None  # (N,) mm from the tip to the cortex ahead (0 when not measured)
    lesion_thread: np.ndarray | None = None  # (N,) lesion length within the thread (mm)
    seconds: float = 0.0
    thread_mm: float = 0.0  # thread length used for lesion_thread / thread_waist (mm)
    #: (N,) bool: clearances not measured (``clear`` +1e9) because a bone-side shortfall exceeded the gate
    #: (:func:`run_kernel_gated`); all False for :func:`run_kernel`.
    gated: np.ndarray | None = None


def length_floor_mm(protocol: Protocol, site: Site | None) -> float:
    """Shortest screw allowed for this patient (mm).

    ``screw.preferred_min_mm`` (30 mm for the anterior screw, PMID 33388865) where the anatomy allows it:
    ``min(preferred_min_mm, site.length_room_mm - short_of_apex_flag_mm)`` (the room is the anteroinferior
    corner -> apex distance for the dens), never below the catalogue's ``length_min_mm``. Without a
    preference, the catalogue's shortest screw. 0 for a needle (no catalogue).
    """
    imp = protocol.implant()
    if imp.lengths_mm is None:
        return 0.0
    if imp.preferred_min_mm is None or site is None or site.length_room_mm is None:
        return imp.lengths_mm[0]
    room = site.length_room_mm - (imp.short_of_apex_flag_mm or 0.0)
    return float(max(imp.lengths_mm[0], min(imp.preferred_min_mm, room)))


def catalogue_lengths(protocol: Protocol, site: Site | None) -> np.ndarray | None:
    """Catalogue lengths (mm, ascending) at or above :func:`length_floor_mm` (the shortest kept when none is);
    None for a needle."""
    imp = protocol.implant()
    if imp.lengths_mm is None:
        return None
    lengths = np.asarray(imp.lengths_mm, float)
    floor = length_floor_mm(protocol, site)
    keep = lengths[lengths >= floor - 1e-9]
    return keep if len(keep) else lengths[-1:]


def zone_frame(site: Site, protocol: Protocol) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(reference point, axis, anterior, lateral) of the protocol's bone-entry zone, LPS mm / unit vectors."""
    return site.frame(protocol.entry.effective_zone().reference)


def entry_rule_vector(site: Site | None, protocol: Protocol, targets_lps: np.ndarray) -> np.ndarray:
    """Packed bone-entry rule for the kernel's early exit (empty when *site* is None).

    Layout: see :func:`osteoplan.planning.kernel.evaluate_candidates` (``entry_rule``).
    """
    if site is None:
        return np.zeros(0)
    ref, ax, ant, lat = zone_frame(site, protocol)
    zone = protocol.entry.effective_zone()
    big = 1e9
    lengths = catalogue_lengths(protocol, site)
    head = np.zeros(K.ENTRY_HEAD)
    head[0:3] = ref
    head[3:6] = ax
    head[6:9] = ant
    head[9:12] = lat
    head[12] = -big if zone.axis_min_mm is None else zone.axis_min_mm
    head[13] = big if zone.axis_max_mm is None else zone.axis_max_mm
    head[14] = -big if zone.anterior_min_mm is None else zone.anterior_min_mm
    head[15] = big if zone.anterior_max_mm is None else zone.anterior_max_mm
    head[16] = big if zone.lateral_abs_max_mm is None else zone.lateral_abs_max_mm
    head[17] = 0.0 if lengths is None else lengths[0]
    head[18] = big if lengths is None else lengths[-1] + protocol.implant().length_step_mm
    head[19] = protocol.entry.min_incidence_deg
    return np.concatenate([head, np.asarray(targets_lps, float).reshape(-1)])


def depth_lipschitz(fields: ROIFields) -> np.ndarray:
    """(3,) the largest absolute difference of the depth map between neighbours along k, j, i (mm per index
    step), cached on *fields*: the kernel's bound for skipping depth samples (see
    :func:`osteoplan.planning.kernel.evaluate_candidates`, ``lip``)."""
    lip = getattr(fields, "_depth_lip", None)
    if lip is None:
        b = fields.bone_depth_mm
        lip = np.array([float(np.abs(np.diff(b, axis=a)).max()) if b.shape[a] > 1 else 0.0 for a in range(3)])
        fields._depth_lip = lip
    return lip


def lesion_box(fields: ROIFields) -> np.ndarray:
    """(6,) (k, j, i) bounds for the kernel's ``lesion_box``, cached on *fields*: one voxel outside the lesion's
    bounding box on each side (a sample at or beyond them has 8 lesion-free corners); an empty box when there is no
    lesion."""
    box = getattr(fields, "_lesion_box", None)
    if box is None:
        from osteoplan.planning.fields import nonzero_box

        nz = nonzero_box(fields.lesion.astype(bool)) if fields.lesion is not None else None
        if nz is None:
            box = np.array([1e9, 1e9, 1e9, -1e9, -1e9, -1e9])
        else:
            box = np.array([nz[0][0] - 1, nz[1][0] - 1, nz[2][0] - 1, nz[0][1] + 1, nz[1][1] + 1, nz[2][1] + 1],
                           float)
        fields._lesion_box = box
    return box


def tip_to_cortex_max(protocol: Protocol) -> float | None:
    """The protocol's ``target.tip_to_cortex_max_mm`` when its target zone has one (None otherwise)."""
    return getattr(protocol.target, "tip_to_cortex_max_mm", None)


#: The objective rewards a hard structure's clearance beyond its margin up to this many mm (:func:`assess`).
HARD_CLEARANCE_CAP_MM = 5.0


def kernel_reach_box(shape: tuple[int, int, int], t_idx: np.ndarray, d_idx: np.ndarray, step_mm: float,
                     max_depth_mm: float) -> tuple[slice, ...]:
    """The ROI box (3 slices) holding every voxel whose structure distances the kernel can read for candidates made
    of the targets *t_idx* (T, 3) and directions *d_idx* (D, 3) (ROI index, index change per mm) at *step_mm*.

    The kernel reads the maps at samples ``t - s d``, ``s = q step`` for ``q < int(max_depth / step) + 2``, clamped
    to the ROI, at the 8 corners of their cell: along each axis between ``floor`` of the smallest clamped coordinate
    and ``floor`` of the largest plus one. The samples lie on segments, so their extremes are those of the segments'
    ends. One more voxel each side covers rounding.
    """
    if len(t_idx) == 0 or len(d_idx) == 0:
        return tuple(slice(0, 0) for _ in shape)
    s_end = (int(max_depth_mm / step_mm) + 1) * float(step_mm)
    t = np.asarray(t_idx, float)
    d = np.asarray(d_idx, float)
    lo_p = t.min(axis=0) - s_end * np.maximum(d.max(axis=0), 0.0)
    hi_p = t.max(axis=0) + s_end * np.maximum(-d.min(axis=0), 0.0)
    n = np.asarray(shape, int)
    lo = np.clip(np.floor(np.clip(lo_p, 0, n - 1)).astype(int) - 1, 0, np.maximum(n - 2, 0))
    hi = np.clip(np.floor(np.clip(hi_p, 0, n - 1)).astype(int) + 3, np.minimum(n, 2), n)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def run_kernel(fields: ROIFields, targets_lps: np.ndarray, dirs_lps: np.ndarray, cand_t: np.ndarray,
               cand_d: np.ndarray, protocol: Protocol, r_instr: float, r_screw: float, step_mm: float,
               python: bool = False, site: Site | None = None) -> Evaluation:
    """Evaluate the candidates (cand_t[n], cand_d[n]) with the numba kernel (or the Python loop).

    With *site*, candidates whose bone entry breaks the entry rule, the implant-length range or the
    incidence limit stop after the bone part (code ``BAD_ENTRY``): their soft-tissue clearances are
    not computed (left at +1e9) because they are excluded anyway. Every sample is read; see
    :func:`run_kernel_gated` for the search's dense pass.
    """
    return _run_kernel(fields, targets_lps, dirs_lps, cand_t, cand_d, protocol, r_instr, r_screw, step_mm,
                       python=python, site=site)


def run_kernel_gated(fields: ROIFields, targets_lps: np.ndarray, dirs_lps: np.ndarray, cand_t: np.ndarray,
                     cand_d: np.ndarray, protocol: Protocol, r_instr: float, r_screw: float, step_mm: float,
                     site: Site | None, gate_mm: float) -> Evaluation:
    """:func:`run_kernel` (with the entry rule of *site*) that does not measure the clearances of a candidate whose
    containment or tip-to-cortex shortfall exceeds *gate_mm* (``Evaluation.gated``; their ``clear`` stays +1e9).

    Every other output equals :func:`run_kernel`'s (the code, bone and skin entries, other bone, containment, tip gap,
    lesion): exact. A gated candidate violates a bone-side constraint by more than *gate_mm*.
    """
    return _run_kernel(fields, targets_lps, dirs_lps, cand_t, cand_d, protocol, r_instr, r_screw, step_mm,
                       site=site, clear_gate=gate_mm)


def _run_kernel(fields: ROIFields, targets_lps: np.ndarray, dirs_lps: np.ndarray, cand_t: np.ndarray,
                cand_d: np.ndarray, protocol: Protocol, r_instr: float, r_screw: float, step_mm: float,
                python: bool = False, site: Site | None = None, clear_gate: float = -1.0,
                reorder: bool = True) -> Evaluation:
    """The kernel on the candidates (numba): the structures' maps are needed only along the paths measured against
    them, so they are computed (:meth:`ROIFields.ensure_maps`) on the box those paths span.

    1. every candidate on the maps there are (none yet: no channel, nothing is measured): its code, bone and skin
       entries, containment, tip gap, lesion, other bone, incidence and gate are final (the kernel computes them
       whatever the maps), and so are the clearances of a measured candidate whose every sample's cell lay inside
       the maps' box;
    2. the candidates measured against the structures (a bone entry passing the entry rule, not gated) whose
       clearances pass 1 could not complete, again, with the maps exact on the box holding their samples: every
       sample at ``s = q h`` from the target up to the skin entry (or the last sample inside the ROI), clamped to
       the ROI, and the 8 corners of its cell (:func:`measured_reach_box`). Their clearances are those of this
       pass; their other figures are the same as in pass 1 (a candidate's figures do not depend on the others, nor
       on the order).
    """
    t_idx = np.ascontiguousarray(fields.world_to_roi(targets_lps))
    inv = np.linalg.inv(fields.affine)[:3, :3]
    d_idx = np.ascontiguousarray(dirs_lps @ inv.T)
    S = len(fields.structures)
    soft = np.array([s.soft_only for s in fields.structures], dtype=np.bool_)
    N = len(cand_t)
    sc = protocol.implant()
    thread = sc.thread_mm(2 * r_screw)
    gap_max = float(tip_to_cortex_max(protocol) or 0.0)
    gap_limit = gap_max if tip_to_cortex_max(protocol) is not None and gap_max > 0 else -1.0
    cand_t = np.asarray(cand_t)
    cand_d = np.asarray(cand_d)

    def args_for(ct, cd, maps, soft_):
        return (t_idx, d_idx, ct.astype(np.int64), cd.astype(np.int64),
                float(step_mm), float(protocol.entry.max_depth_mm), fields.bone_depth_mm, fields.body,
                fields.other_bone, fields.lesion, maps, soft_, float(r_instr), float(r_screw),
                float(sc.containment_skip_entry_mm), float(sc.containment_margin_mm),
                np.ascontiguousarray(dirs_lps, dtype=np.float64), np.ascontiguousarray(inv, dtype=np.float64),
                entry_rule_vector(site, protocol, targets_lps), float(sc.containment_skip_tip_mm),
                gap_max + 2.0 if gap_max > 0 else 0.0, thread)

    if python:
        box = kernel_reach_box(fields.shape, t_idx, d_idx, step_mm, protocol.entry.max_depth_mm)
        fields.ensure_maps(box)
        maps = np.full(fields.shape + (S,), np.float32(CAP_MM), np.float32)  # the reference reads a whole-ROI array
        maps[fields.maps_box] = fields.maps
        t0 = time.perf_counter()
        r = K.evaluate_python(*args_for(cand_t, cand_d, maps, soft), clear_gate=float(clear_gate),
                              gap_limit_mm=gap_limit)
        ev = Evaluation(cand_t, cand_d, r["code"], r["sbone"], r["sskin"], r["cont"], r["other"], r["lesion"], r["clear"],
                        r["inc"], r["tipgap"], r["lesion_thread"], gated=r["gated"].astype(bool))
        ev.seconds = time.perf_counter() - t0
        ev.thread_mm = thread
        return ev

    def run(ct, cd, maps, maps_lo, soft_, n_s):
        n = len(ct)
        out = dict(code=np.zeros(n, np.int8), sbone=np.zeros(n), sskin=np.zeros(n), cont=np.zeros(n),
                   other=np.zeros(n), lesion=np.zeros(n), clear=np.zeros((n, n_s)), inc=np.zeros(n),
                   tipgap=np.zeros(n), lesion_thread=np.zeros(n), gated=np.zeros(n, np.uint8),
                   outside=np.zeros(n, np.uint8))
        a = args_for(ct, cd, maps, soft_)
        order = K.direction_major_order(a[2], a[3], len(dirs_lps)) if n > 1 and reorder else np.zeros(0, np.int64)
        K.evaluate_candidates(*a, depth_lipschitz(fields), float(clear_gate), gap_limit, order,
                              lesion_box(fields), maps_lo, out["code"],
                              out["sbone"], out["sskin"], out["cont"], out["other"], out["lesion"], out["clear"],
                              out["inc"], out["tipgap"], out["lesion_thread"], out["gated"], out["outside"])
        return out

    t0 = time.perf_counter()
    have = S > 0 and fields.maps is not None and all(b_.stop > b_.start for b_ in (fields.maps_box or (slice(0, 0),)))
    if have:  # one pass on the maps there are; the candidates whose paths leave their box are measured again
        out = run(cand_t, cand_d, fields.maps, fields.maps_lo, soft, S)
        clear = out["clear"]
        redo = np.nonzero(out["outside"])[0]
    else:  # no maps yet: the first pass measures nothing
        no_maps = np.zeros(fields.shape + (0,), np.float32)
        out = run(cand_t, cand_d, no_maps, np.zeros(3, np.int64), np.zeros(0, np.bool_), 0)
        clear = np.full((N, S), 1e9)
        redo = np.nonzero(np.isin(out["code"], (K.OK, K.NO_SKIN)) & (out["gated"] == 0))[0]
    seconds = time.perf_counter() - t0
    if S and len(redo):
        box = measured_reach_box(fields.shape, t_idx[cand_t[redo]], d_idx[cand_d[redo]], out["sskin"][redo])
        maps = fields.ensure_maps(box, pad_mm=MAPS_PAD_MM)
        t0 = time.perf_counter()
        out2 = run(cand_t[redo], cand_d[redo], maps, fields.maps_lo, soft, S)
        seconds += time.perf_counter() - t0
        if out2["outside"].any():  # measured_reach_box holds every cell read: cannot happen
            raise RuntimeError("internal error: the structure maps do not cover the paths measured")
        clear[redo] = out2["clear"]
    out["clear"] = clear
    ev = Evaluation(cand_t, cand_d, out["code"], out["sbone"], out["sskin"], out["cont"], out["other"],
                    out["lesion"], out["clear"], out["inc"], out["tipgap"], out["lesion_thread"],
                    gated=out["gated"].astype(bool))
    ev.seconds = seconds
    ev.thread_mm = thread
    return ev


#: When the structures' maps must be computed for a kernel pass, they are computed on the box its measured paths span
#: grown by this much (mm), so that the refinement's paths (the same targets, neighbouring directions) need no
#: second computation. Speed only (values are exact on any box); 8 mm avoided a second computation on the phantom
#: and CThead (lateral and anterior protocols).
MAPS_PAD_MM = 8.0


def measured_reach_box(shape: tuple[int, int, int], t_idx: np.ndarray, d_idx: np.ndarray,
                       s_skin: np.ndarray) -> tuple[slice, ...]:
    """The ROI box (3 slices) holding every voxel the kernel reads the structures' maps at, for paths from the
    targets *t_idx* (N, 3) along *d_idx* (N, 3) (ROI index, index change per mm) measured up to the kernel's
    ``s_skin`` (N,) mm (the skin entry, or the first sample beyond the ROI: no sample read lies farther).

    Samples are clamped to the ROI and read at the 8 corners of their cell (along an axis, ``floor`` of the
    coordinate and the next index); a segment's extremes are its ends; one more voxel each side covers rounding.
    """
    t = np.asarray(t_idx, float)
    if len(t) == 0:
        return tuple(slice(0, 0) for _ in shape)
    e = t - np.asarray(s_skin, float)[:, None] * np.asarray(d_idx, float)
    n = np.asarray(shape, int)
    lo_p = np.minimum(t.min(axis=0), e.min(axis=0))
    hi_p = np.maximum(t.max(axis=0), e.max(axis=0))
    lo = np.clip(np.floor(np.clip(lo_p, 0, n - 1)).astype(int) - 1, 0, np.maximum(n - 2, 0))
    hi = np.clip(np.floor(np.clip(hi_p, 0, n - 1)).astype(int) + 3, np.minimum(n, 2), n)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


@dataclass
class Assessment:
    """Constraint results and objective for every evaluated candidate."""

    violations: dict[str, np.ndarray]  # constraint -> shortfall (>0 = violated), (N,)
    feasible: np.ndarray
    score: np.ndarray
    terms: dict[str, np.ndarray]
    displacement: np.ndarray  # (N, S) displacement needed per structure (0 if none)
    screw_len: np.ndarray
    bone_entry: np.ndarray  # (N, 3)
    skin_entry: np.ndarray  # (N, 3)


def axis_angle_deg(site: Site, dirs: np.ndarray) -> np.ndarray:
    """(N,) angle (deg) between each direction (N, 3) and the nearest of the site's cone axes (the site's axis
    when it has none), ignoring the sense of the axis."""
    axes = list(site.cone_axes.values()) or [site.axis_unit]
    cos = np.max(np.stack([np.abs(dirs @ a) for a in axes]), axis=0)
    return np.degrees(np.arccos(np.clip(cos, 0, 1)))


def assess(ev: Evaluation, fields: ROIFields, targets: np.ndarray, dirs: np.ndarray, site: Site,
           protocol: Protocol) -> Assessment:
    """Apply the hard constraints and the objective to evaluated candidates (vectorised).

    Hard constraints: see the module docstring (each gives a shortfall, 0 = met).

    Objective (lower is better; weights in the protocol's ``[objective]``):
    ``displacement * sum(displacement needed, mm) + depth * skin-to-target depth (mm)
    + axis_angle * angle to the site's cone axis (deg) + containment * max(0, containment_target - containment) (mm)
    - hard_clearance * min(5, smallest hard clearance beyond its margin) (mm)
    - lesion * min(10, lesion length on the thread (or the screw when the thread rule is off)) (mm)
    - bone_purchase * bone-to-target length (mm)``
    plus the procedure's own terms (e.g. ``short_of_apex`` for the dens screw).
    Configurable defaults, no published source.
    """
    p = protocol
    T = targets[ev.cand_t]
    D = dirs[ev.cand_d]
    ok_code = ev.code == K.OK
    bone_entry = T - ev.s_bone[:, None] * D
    skin_entry = T - ev.s_skin[:, None] * D
    proc = get_procedure(p.procedure)
    imp = p.implant()
    v: dict[str, np.ndarray] = {}
    big = 1e3
    N = len(ev.code)
    v["skin"] = np.where(ok_code | (ev.code == K.BAD_ENTRY), 0.0,
                         np.where(ev.code == K.NO_SKIN, np.maximum(ev.s_skin - p.entry.max_depth_mm, 1.0), big))
    ref, zax, zant, zlat = zone_frame(site, p)
    zone = p.entry.effective_zone()
    rel = bone_entry - ref
    up, fwd, side = rel @ zax, rel @ zant, np.abs(rel @ zlat)
    ve = np.zeros(N)
    if zone.axis_min_mm is not None:
        ve += np.maximum(0, zone.axis_min_mm - up)
    if zone.axis_max_mm is not None:
        ve += np.maximum(0, up - zone.axis_max_mm)
    if zone.anterior_min_mm is not None:
        ve += np.maximum(0, zone.anterior_min_mm - fwd)
    if zone.anterior_max_mm is not None:
        ve += np.maximum(0, fwd - zone.anterior_max_mm)
    if zone.lateral_abs_max_mm is not None:
        ve += np.maximum(0, side - zone.lateral_abs_max_mm)
    if zone.outward_min_mm is not None:
        away = np.sign(float((ref - site.centre_lps_mm) @ zlat)) or 1.0
        ve += np.maximum(0, zone.outward_min_mm - away * (rel @ zlat))
    v["bone_entry"] = ve
    lengths = catalogue_lengths(p, site)
    L = ev.s_bone
    if lengths is not None:
        v["screw_length"] = np.maximum(0, lengths[0] - L) + np.maximum(0, L - (lengths[-1] + imp.length_step_mm))
        screw_len = lengths[np.clip(np.searchsorted(lengths, L + 1e-9, side="right") - 1, 0, len(lengths) - 1)]
    else:  # a needle: as long as the path in bone
        screw_len = L.copy()
    axis_angle = axis_angle_deg(site, D)
    if p.angles.axis_max_deg is not None:
        v[proc.axis_name] = np.maximum(0, axis_angle - p.angles.axis_max_deg)
    gap_max = tip_to_cortex_max(p)
    if gap_max is not None and ev.tip_gap is not None:
        v["tip_to_cortex"] = np.maximum(0, ev.tip_gap - gap_max)
    thread = float(getattr(ev, "thread_mm", 0.0))
    v.update(proc.violations(ev, fields, targets, dirs, site, p, thread))
    if imp.thread_crosses_lesion and fields.lesion_assessed and fields.lesion.any() and ev.lesion_thread is not None:
        v["thread_lesion"] = np.where(ev.lesion_thread > 0, 0.0, 1.0)
    v["containment"] = np.maximum(0, imp.containment_margin_mm - ev.containment)
    v["entry_angle"] = np.where(ok_code | (ev.code == K.BAD_ENTRY),
                                np.maximum(0, p.entry.min_incidence_deg - ev.incidence_deg), 0.0)
    disp = np.zeros_like(ev.clear)
    hard_extra = np.full(len(L), np.inf)
    for s_i, s in enumerate(fields.structures):
        short = s.margin_mm - ev.clear[:, s_i]
        if s.category == "hard":
            v[f"clearance:{s.name}"] = np.maximum(0, short)
            if s.name != "other_bone":
                hard_extra = np.minimum(hard_extra, -short)
        else:
            disp[:, s_i] = np.maximum(0, short)
        if s.never_enter:
            v[f"viscus:{s.name}"] = np.maximum(0, -ev.clear[:, s_i])
    if p.entry.skin_medial_to:
        v["corridor"] = corridor_violation(fields, T, D, ev.s_bone, ev.s_skin, site, p, ok_code)
    v["bone_on_way"] = ev.other_bone
    v["hydrodissection_limit"] = np.maximum(0, (disp.max(axis=1) if disp.shape[1] else 0) - p.hydrodissection.achievable_mm)
    feas = np.ones(len(L), bool)
    for arr in v.values():
        feas &= arr <= 1e-9
    o = p.objective
    lesion_len = ev.lesion_thread if (imp.thread_crosses_lesion and ev.lesion_thread is not None) else ev.lesion
    terms = {
        "displacement": o.displacement * disp.sum(axis=1),
        "depth": o.depth * ev.s_skin,
        proc.axis_name: o.axis_angle * axis_angle,
        "containment": o.containment * np.maximum(0, o.containment_target_mm - ev.containment),
        "hard_clearance": -o.hard_clearance * np.clip(np.where(np.isfinite(hard_extra), hard_extra, 0), 0,
                                                      HARD_CLEARANCE_CAP_MM),
        "lesion": -o.lesion * np.minimum(lesion_len, 10.0),
        "bone_purchase": -o.bone_purchase * ev.s_bone,
    }
    terms.update(proc.terms(ev, targets, dirs, bone_entry, site, p, screw_len))
    score = sum(terms.values())
    return Assessment(v, feas, score, terms, disp, screw_len, bone_entry, skin_entry)


def bone_constraints(protocol: Protocol) -> tuple[str, ...]:
    """Constraints that only depend on the bone part of a path (what the technique asks of the implant in the
    target bone), in the order used for "first failing constraint" counts."""
    proc = get_procedure(protocol.procedure)
    return ("bone_entry", "screw_length", proc.axis_name, "tip_to_cortex", *proc.extra_constraints, "thread_lesion",
            "containment", "entry_angle")



def left_field_of_view(ev: Evaluation, fields: ROIFields, targets: np.ndarray, dirs: np.ndarray,
                       step_mm: float) -> np.ndarray:
    """(N,) bool: the path left the CT's data (an edge of the image or a truncated field of view) while still
    inside the body, before reaching the skin.

    The kernel stops a path at the ROI box (code ``NO_SKIN``); the ROI faces that are edges of the CT's data
    are ``fields.fov_faces``. A path that stopped within two samples of such a face did not reach the skin
    inside the image: where its skin entry lies cannot be known from this CT.
    """
    out = np.zeros(len(ev.code), bool)
    sel = np.nonzero(ev.code == K.NO_SKIN)[0]
    if len(sel) == 0 or not fields.fov_faces:
        return out
    T = targets[ev.cand_t[sel]]
    D = dirs[ev.cand_d[sel]]
    last = T - np.maximum(ev.s_skin[sel] - step_mm, 0)[:, None] * D  # last sample inside the box
    idx = fields.world_to_roi(last)
    shape = np.asarray(fields.shape, float)
    inv = np.linalg.inv(fields.affine)[:3, :3]
    tol = 2.0 * step_mm * np.abs(D @ inv.T) + 0.5
    hit = np.zeros(len(sel), bool)
    for ax_, side_ in fields.fov_faces:
        if side_ < 0:
            hit |= idx[:, ax_] <= tol[:, ax_]
        else:
            hit |= idx[:, ax_] >= shape[ax_] - 1.0 - tol[:, ax_]
    from scipy.ndimage import map_coordinates

    inside = map_coordinates(fields.body.astype(np.float32), idx.T, order=1, mode="nearest") >= 0.5
    out[sel] = hit & inside
    return out


def select_diverse(order: np.ndarray, bone_entry: np.ndarray, dirs: np.ndarray, n: int,
                   min_sep_mm: float, min_deg: float) -> list[int]:
    """Greedy: walk *order* (best first), keep a candidate if it differs from every kept one by
    more than *min_sep_mm* of bone entry OR more than *min_deg* of direction."""
    kept: list[int] = []
    cos_lim = np.cos(np.radians(min_deg))
    for c in order:
        ok = True
        for k in kept:
            if np.linalg.norm(bone_entry[c] - bone_entry[k]) <= min_sep_mm and float(dirs[c] @ dirs[k]) >= cos_lim:
                ok = False
                break
        if ok:
            kept.append(int(c))
            if len(kept) >= n:
                break
    return kept


@dataclass
class SearchResult:
    """Output of :func:`search`."""

    fields: ROIFields
    targets: np.ndarray
    dirs: np.ndarray
    side_sign: np.ndarray
    coarse: Evaluation
    coarse_assessment: Assessment
    fine: Evaluation | None
    fine_assessment: Assessment | None
    chosen: list[int] = field(default_factory=list)  # indices into fine arrays
    r_instr: float = 0.0
    r_screw: float = 0.0
    diameter_mm: float = 0.0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    not_assessed: dict[str, str] = field(default_factory=dict)
    fine_step_mm: float = 0.2
    coarse_step_mm: float = 1.0
    #: Technique-conformant candidates of the dense pass (every bone-side constraint met), how many
    #: reached the skin inside the image and how many left the image still inside the body.
    route_counts: dict[str, int] = field(default_factory=dict)
    #: LPS z (mm) where the conformant paths that left the image did so (median), when any did.
    route_exit_z_mm: float | None = None
    #: The site searched.
    site: Site | None = None
    #: When no path reaches the skin inside the image but some leave it still inside the body meeting every other
    #: rule: (fine evaluation, its assessment, chosen indices) of those paths (:func:`_partial`).
    partial: tuple | None = None


def candidate_diameters(protocol: Protocol, waist_mm: float | None) -> list[float]:
    """Catalogue diameters to try, largest first: those leaving the waist margin (or the smallest)."""
    d0, fits, _ = choose_diameter(protocol, waist_mm)
    return sorted([d for d in protocol.implant().diameters_mm if d <= d0], reverse=True)


def instrument_radii(protocol: Protocol, diameter_mm: float) -> tuple[float, float]:
    """(r_instr, r_contain) mm: the radius used for clearances (largest of the trocar, the implant, the guide pin)
    and the implant's radius used for containment."""
    ins = protocol.instruments
    r_contain = diameter_mm / 2
    r_instr = max(ins.trocar_outer_diameter_mm, diameter_mm, ins.guide_pin_diameter_mm or 0.0) / 2
    return r_instr, r_contain


def _search_one(fields: ROIFields, site: Site, protocol: Protocol, dirs: np.ndarray, sign: np.ndarray,
                diameter: float, coarse_step_mm: float, fine_step_mm: float, n_refine: int,
                exhaustive: bool = False) -> "SearchResult | None":
    """Search one implant diameter: dense pass over every (target, direction), refinement of the best, selection.

    The dense pass (:func:`run_kernel_gated`) gives the same feasible set, violations, scores, refinement pool and
    plans as measuring every candidate (``exhaustive=True``: :func:`run_kernel`, candidates in target order, as
    before the gate; kept for the benchmark and the tests); only the clearances of candidates short of the
    containment or tip-to-cortex rule by more than a step are left unmeasured (``Evaluation.gated``).
    """
    r_instr, r_screw = instrument_radii(protocol, diameter)
    targets = target_points(fields, site, protocol, r_screw)
    if len(targets) == 0:
        return None
    T, D = len(targets), len(dirs)
    check_grid_size(T, D, protocol)
    cand_t = np.repeat(np.arange(T), D)
    cand_d = np.tile(np.arange(D), T)
    # the dense pass: a candidate short of the containment margin or the tip-to-cortex limit by more than a step is
    # neither feasible nor near-feasible: its clearances are not measured (run_kernel_gated)
    if exhaustive:
        ev = _run_kernel(fields, targets, dirs, cand_t, cand_d, protocol, r_instr, r_screw, coarse_step_mm, site=site,
                         reorder=False)
    else:
        ev = run_kernel_gated(fields, targets, dirs, cand_t, cand_d, protocol, r_instr, r_screw, coarse_step_mm, site,
                              gate_mm=coarse_step_mm)
    asm = assess(ev, fields, targets, dirs, site, protocol)
    # refine: best feasible by score plus best near-misses (smallest total violation)
    total_v = sum(np.minimum(a, 1e3) for a in asm.violations.values())
    # the best n_refine feasible candidates; as coarse sampling may overestimate a clearance by step/2, the best
    # n_refine near-feasible ones that passed the entry rule (for those stopped there the other figures are not
    # computed, so their total violation says nothing)
    feas0 = np.nonzero(asm.feasible)[0]
    feas0 = feas0[np.argsort(asm.score[feas0])][:n_refine]
    near = np.nonzero((total_v <= coarse_step_mm) & (ev.code != K.BAD_ENTRY) & ~asm.feasible)[0]
    near = near[np.argsort(asm.score[near])][:n_refine]
    # and up to 10 x n_refine of those stopped at the entry rule by less than a step of its own constraints, the
    # closest to passing first (the finer step finds their bone entry more exactly: some pass; at the finer step
    # those that still fail stop after the depth march, so they cost little)
    bone_v = sum(np.minimum(asm.violations[c], 1e3) for c in bone_constraints(protocol) if c in asm.violations)
    edge = np.nonzero((ev.code == K.BAD_ENTRY) & (bone_v <= coarse_step_mm))[0]
    edge = edge[np.argsort(bone_v[edge] + 1e-3 * asm.score[edge])][:10 * n_refine]  # the closest to passing first
    pool = np.concatenate([feas0, near, edge])
    miss = _least_violating(ev, asm, total_v, fields, targets, dirs, site, protocol, r_instr, r_screw, coarse_step_mm,
                            max(20, n_refine // 10))
    pool = np.unique(np.concatenate([pool, miss]))
    fine = run_kernel(fields, targets, dirs, cand_t[pool], cand_d[pool], protocol, r_instr, r_screw, fine_step_mm)
    fasm = assess(fine, fields, targets, dirs, site, protocol)
    feas = np.nonzero(fasm.feasible)[0]
    order = feas[np.argsort(fasm.score[feas])]
    chosen = select_diverse(order, fasm.bone_entry, dirs[fine.cand_d], protocol.output.n_plans,
                            protocol.output.min_bone_entry_separation_mm, protocol.output.min_direction_difference_deg)
    res = SearchResult(fields, targets, dirs, sign, ev, asm, fine, fasm, chosen, r_instr, r_screw, diameter,
                       fine_step_mm=fine_step_mm, coarse_step_mm=coarse_step_mm, site=site)
    conform = np.isin(ev.code, (K.OK, K.NO_SKIN))
    for name in bone_constraints(protocol):
        if name in asm.violations:
            conform &= asm.violations[name] <= 1e-9
    left = left_field_of_view(ev, fields, targets, dirs, coarse_step_mm) & conform
    res.route_counts = {"conforming": int(conform.sum()), "reached_skin": int((conform & (ev.code == K.OK)).sum()),
                        "left_image": int(left.sum())}
    if left.any():
        ex = targets[ev.cand_t[left]] - ev.s_skin[left][:, None] * dirs[ev.cand_d[left]]
        res.route_exit_z_mm = float(np.median(ex[:, 2]))
        if not chosen:
            res.partial = _partial(fields, site, protocol, targets, dirs, cand_t, cand_d, ev, asm, left, r_instr,
                                   r_screw, coarse_step_mm, fine_step_mm, n_refine)
    return res


def _least_violating(ev: Evaluation, asm: "Assessment", total_v: np.ndarray, fields: ROIFields, targets: np.ndarray,
                     dirs: np.ndarray, site: Site, protocol: Protocol, r_instr: float, r_screw: float,
                     step_mm: float, n: int) -> np.ndarray:
    """The *n* candidates of least ``total violation + 1e-3 score`` (ties: lowest index first), exactly.

    For a gated candidate (clearances not measured) that key is a lower bound (its unmeasured clearances add no
    violation, no displacement and the largest clearance reward): while gated candidates rank among the *n* first,
    they are measured (:func:`run_kernel`) and ranked by their exact key. The others' keys are exact, so the result is
    that of a dense pass measuring every candidate.
    """
    key = total_v + 1e-3 * asm.score
    gated = ev.gated.copy() if ev.gated is not None else np.zeros(len(key), bool)
    while True:
        first = np.argsort(key, kind="stable")[:n]
        sub = first[gated[first]]
        if len(sub) == 0:
            return first
        exact = run_kernel(fields, targets, dirs, ev.cand_t[sub], ev.cand_d[sub], protocol, r_instr, r_screw, step_mm,
                           site=site)
        a = assess(exact, fields, targets, dirs, site, protocol)
        key = key.copy()
        key[sub] = sum(np.minimum(v, 1e3) for v in a.violations.values()) + 1e-3 * a.score
        gated[sub] = False


def _partial(fields: ROIFields, site: Site, protocol: Protocol, targets: np.ndarray, dirs: np.ndarray,
             cand_t: np.ndarray, cand_d: np.ndarray, ev: Evaluation, asm: "Assessment", left: np.ndarray,
             r_instr: float, r_screw: float, coarse_step_mm: float, fine_step_mm: float,
             n_refine: int) -> tuple[Evaluation, "Assessment", list[int]] | None:
    """The best paths whose part inside the image meets every rule but which leave the image still inside the
    body (their skin entry cannot be seen): re-evaluated finely, ranked, made diverse. What the CT can assess of
    the route (the bone part, the clearances up to the image edge) when it cannot show the whole route."""
    near = left.copy()
    for name, arr in asm.violations.items():
        if name != "skin":
            near &= arr <= coarse_step_mm
    cand = np.nonzero(near)[0]
    if len(cand) == 0:
        return None
    cand = cand[np.argsort(asm.score[cand])][:n_refine]
    pev = run_kernel(fields, targets, dirs, cand_t[cand], cand_d[cand], protocol, r_instr, r_screw, fine_step_mm)
    pasm = assess(pev, fields, targets, dirs, site, protocol)
    ok = left_field_of_view(pev, fields, targets, dirs, fine_step_mm)
    for name, arr in pasm.violations.items():
        if name != "skin":
            ok &= arr <= 1e-9
    sel = np.nonzero(ok)[0]
    order = sel[np.argsort(pasm.score[sel])]
    chosen = select_diverse(order, pasm.bone_entry, dirs[pev.cand_d], protocol.output.n_plans,
                            protocol.output.min_bone_entry_separation_mm, protocol.output.min_direction_difference_deg)
    return (pev, pasm, chosen) if chosen else None


def search(volume: Volume, labelmap: LabelMap, site: Site, protocol: Protocol, side: str = "best",
           lesion_mask: np.ndarray | None = None, coarse_step_mm: float = 1.0, fine_step_mm: float = 0.2,
           angle_step_deg: float | None = None, n_refine: int = 300, fields: ROIFields | None = None) -> SearchResult:
    """Run the whole search on one site.

    Parameters
    ----------
    volume, labelmap : the CT and its label map (same grid).
    site : where the procedure works (:class:`~osteoplan.planning.site.Site`, from the protocol's procedure).
    protocol : validated protocol.
    side : "left", "right" or "best" (both searched).
    coarse_step_mm, fine_step_mm : sampling steps of the dense pass and of the re-evaluation of the
        best ``n_refine`` candidates (whose numbers are reported).
    angle_step_deg : override of the protocol's direction grid step.
    fields : precomputed :func:`build_fields` output for this site (reused when re-planning).

    Raises
    ------
    PlanningError
        No target point in the target zone, or no direction meets the protocol's angle limits.
    """
    t0 = time.perf_counter()
    proc = get_procedure(protocol.procedure)
    warnings: list[str] = []
    not_assessed: dict[str, str] = {}
    if fields is None:
        fields, w, not_assessed = build_fields(volume, labelmap, site, protocol, lesion_mask, defer_maps=True)
        warnings += w
    diameters = candidate_diameters(protocol, site.width_limit_mm)
    sides = ["left", "right"] if side == "best" else [side]
    dirs, sign = directions(protocol, sides, angle_step_deg, site=site)
    if len(dirs) == 0:
        a = protocol.angles
        if a.axis_max_deg is not None:
            cc, ml = K.angles_of(next(iter(site.cone_axes.values()), site.axis_unit)[None])
            raise PlanningError(proc.no_direction_message(site, protocol, float(cc[0]), float(ml[0])))
        raise PlanningError("The protocol's angle limits leave no direction to search; fix the protocol's [angles].")
    res = None
    for i, diameter in enumerate(diameters):
        r = _search_one(fields, site, protocol, dirs, sign, diameter, coarse_step_mm, fine_step_mm, n_refine)
        if r is None:
            continue
        res = r  # when none is feasible, the smallest diameter's result explains why
        if r.chosen:
            if i > 0:
                warnings.append(f"No feasible path with a {diameters[0]:.1f} mm screw; {diameter:.1f} mm was used.")
            break
    if res is None:
        raise PlanningError(proc.no_target_message(fields, site, protocol, diameters[-1] / 2))
    _, _, w = choose_diameter(protocol, site.width_limit_mm, proc.width_limit)
    res.warnings = warnings + w + proc.route_warnings(site, protocol)
    res.not_assessed = not_assessed
    res.seconds = time.perf_counter() - t0
    return res
