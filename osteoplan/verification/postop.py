"""Post-operative screw position against the plan: entry, tip and angle errors, cortical breach and its grade.

Breach grade: Gertzbein & Robbins (Spine 1990;15:11-14) graded pedicle-screw breaches of the pedicle
cortex in 2 mm steps: A (0) inside, B < 2 mm, C 2-4 mm, D 4-6 mm, E > 6 mm outside. It was defined for
pedicle screws; here it is **adapted to the dens screw** (not a published validation): the breach is how
far the screw's surface (axis +- radius) passes outside the vertebra's mask (the planning CT's
``vertebrae_C2`` segmentation, signed depth by :func:`osteoplan.planning.fields.depth_inside_mm`) anywhere
between the bone entry (the first ``entry_skip_mm`` excluded, as the screw crosses the cortex there by
design) and the last ``tip_zone_mm`` before the tip (the anterior odontoid screw is meant to engage the
apical cortex: its tip protrusion is reported separately, not graded).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from osteoplan.planning.fields import depth_inside_mm
from osteoplan.verification.geometry import direction_word, patient_terms, unit

#: Gertzbein-Robbins grades: (upper limit mm, grade). Spine 1990;15:11-14.
GR_GRADES = ((0.0, "A"), (2.0, "B"), (4.0, "C"), (6.0, "D"), (float("inf"), "E"))
GR_SOURCE = ("Gertzbein SD, Robbins SE. Accuracy of pedicular screw placement in vivo. Spine 1990;15(1):11-14 "
             "(pedicle screws; 2 mm steps) - adapted here to the anterior dens screw, not validated for it")


def gertzbein_robbins_grade(breach_mm: float) -> str:
    """Grade letter for a breach distance (mm outside the cortex; <= 0 = inside): A, B, C, D or E."""
    for limit, g in GR_GRADES:
        if breach_mm <= limit if limit == 0.0 else breach_mm < limit:
            return g
    return "E"


def _depth_along(mask: np.ndarray, affine: np.ndarray, spacing_mm, pts: np.ndarray, pad_mm: float = 10.0):
    """Signed depth inside *mask* (mm, + inside) at *pts*, and its gradient direction (outward normal, LPS)."""
    inv = np.linalg.inv(affine)
    idx = pts @ inv[:3, :3].T + inv[:3, 3]
    sp = np.asarray(spacing_mm, float)
    grow = np.ceil(pad_mm / sp).astype(int) + 2
    lo = np.maximum(np.floor(idx.min(0)).astype(int) - grow, 0)
    hi = np.minimum(np.ceil(idx.max(0)).astype(int) + grow + 1, mask.shape)
    box = tuple(slice(int(l), int(h)) for l, h in zip(lo, hi))
    dep = depth_inside_mm(mask[box], sp)
    loc = (idx - lo).T
    d = ndi.map_coordinates(dep, loc, order=1, mode="nearest")
    g = np.stack([ndi.map_coordinates(gi, loc, order=1, mode="nearest") for gi in np.gradient(dep, *sp)], 1)
    g_lps = -(g @ affine[:3, :3].T / (sp ** 2))  # index-axis gradient -> LPS; minus: outward
    return d, g_lps


def screw_figures(planned_bone_entry_lps_mm, planned_tip_lps_mm, tip_lps_mm, direction_unit, radius_mm: float,
                  c2_mask: np.ndarray | None, affine: np.ndarray, spacing_mm, *, entry_skip_mm: float = 3.0,
                  tip_zone_mm: float = 2.0, step_mm: float = 0.25) -> dict:
    """Post-operative figures of a screw (planning frame; see module docstring).

    Parameters
    ----------
    planned_bone_entry_lps_mm, planned_tip_lps_mm : (3,)
        Planned bone entry and planned screw tip.
    tip_lps_mm, direction_unit : (3,)
        The screw's tip and axis (towards the tip).
    radius_mm : float
        Screw radius (the plan's screw, else the instrument's).
    c2_mask : bool (K, J, I) or None
        The vertebra on the planning grid; None: breach not assessed.
    affine, spacing_mm : planning grid.
    entry_skip_mm, tip_zone_mm : float
        Excluded from the grade (see module docstring); configurable defaults (the planner's
        ``containment_entry_skip_mm`` is a natural value for the first).

    Returns
    -------
    dict
        ``entry_error_mm``, ``tip_error_mm``, ``angle_error_deg``, ``actual_bone_entry_lps_mm``,
        ``max_breach_mm``, ``breach_where``, ``grade``, ``grade_source``, ``tip_protrusion_mm``, notes.
    """
    be_p, tip_p = np.asarray(planned_bone_entry_lps_mm, float), np.asarray(planned_tip_lps_mm, float)
    tip, d = np.asarray(tip_lps_mm, float), unit(direction_unit)
    dp = unit(tip_p - be_p)
    out: dict = {"tip_error_mm": round(float(np.linalg.norm(tip - tip_p)), 2),
                 "tip_error_lps_mm": [round(float(x), 2) for x in tip - tip_p],
                 "tip_error_in_words": patient_terms(tip - tip_p) + " of the planned tip",
                 "angle_error_deg": round(float(np.degrees(np.arccos(np.clip(d @ dp, -1, 1)))), 2)}
    # actual bone entry: where the axis, walked back from the tip, leaves the vertebra; else the point of the
    # axis nearest the planned entry
    entry = tip + ((be_p - tip) @ d) * d
    how = "point of the screw axis nearest the planned bone entry (vertebra not segmented)"
    if c2_mask is not None and c2_mask.any():
        L = float((tip - entry) @ d) + 15.0
        s = np.arange(0.0, max(L, 5.0), step_mm)
        pts = tip - s[:, None] * d
        dep, _ = _depth_along(c2_mask, affine, spacing_mm, pts)
        outside = np.nonzero(dep < 0)[0]
        # first run of >= 2 mm outside, walking back from the tip past the tip zone
        run_len = int(round(2.0 / step_mm))
        for i in outside:
            if s[i] < tip_zone_mm:
                continue
            if i + run_len < len(dep) and np.all(dep[i:i + run_len] < 0):
                entry = pts[i]
                how = "where the screw axis leaves the vertebra's mask, walking back from the tip"
                break
    out["actual_bone_entry_lps_mm"] = [round(float(x), 2) for x in entry]
    out["actual_bone_entry_method"] = how
    out["entry_error_mm"] = round(float(np.linalg.norm(entry - be_p)), 2)
    out["entry_error_in_words"] = patient_terms(entry - be_p) + " of the planned bone entry"
    if c2_mask is None or not c2_mask.any():
        out.update(max_breach_mm=None, grade=None, grade_source=GR_SOURCE,
                   breach_note="the vertebra was not segmented in the plan folder: breach not assessed")
        return out
    length = float((tip - entry) @ d)
    s = np.arange(0.0, max(length, 0.0) + 1e-9, step_mm)
    pts = entry + s[:, None] * d
    dep, normal = _depth_along(c2_mask, affine, spacing_mm, pts)
    graded = (s >= entry_skip_mm) & (s <= length - tip_zone_mm)
    tip_dep = float(dep[-1]) if len(dep) else float("nan")
    out["tip_protrusion_mm"] = round(max(0.0, radius_mm - tip_dep), 2) if len(dep) else None
    out["tip_protrusion_note"] = ("how far the screw surface at the tip lies outside the vertebra (the tip is "
                                  "meant to engage the apical cortex; not graded)")
    if not graded.any():
        out.update(max_breach_mm=None, grade=None, grade_source=GR_SOURCE,
                   breach_note=f"screw shorter than entry skip + tip zone ({entry_skip_mm + tip_zone_mm:g} mm): "
                   "breach not assessed")
        return out
    breach = radius_mm - dep  # > 0: the surface lies outside by that much
    i = int(np.argmax(np.where(graded, breach, -np.inf)))
    b = float(breach[i])
    where = None
    if b > 0:
        n = normal[i]
        n = n - (n @ d) * d  # across the screw
        where = f"{length - s[i]:.1f} mm from the tip, on the {direction_word(n)} side of the screw"
    out.update(max_breach_mm=round(max(b, 0.0), 2), breach_where=where,
               grade=gertzbein_robbins_grade(b), grade_source=GR_SOURCE,
               graded_span_mm=[entry_skip_mm, round(max(length - tip_zone_mm, 0.0), 2)],
               screw_length_in_bone_mm=round(length, 2))
    return out
