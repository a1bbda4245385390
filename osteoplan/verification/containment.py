"""Containment of the ACTUAL instrument line in the target bone (the planner's containment, measured on the control).

A vertebroplasty plan counts some structures it did not segment (aorta, inferior vena cava, oesophagus, segmental
arteries) as covered because every needle stays inside the target bone by the protocol's containment margin from its
bone entry to its tip (:func:`osteoplan.planning.planner._checks`, ``covered_by_containment``). The control CT shows
where the instrument actually is; this module measures that same containment on its actual line, so that those
structures are covered on the control only when the actual instrument stays inside the bone.

The quantity is the kernel's (:func:`osteoplan.planning.kernel.evaluate_candidates`, phase 1b): the smallest
signed depth inside the target bone's mask (the same field, :func:`osteoplan.planning.fields.depth_inside_mm`, read
by trilinear interpolation) over the samples between the tip (the protocol's ``containment_skip_tip_mm`` excluded)
and the bone entry (the plan's ``containment_entry_skip_mm`` excluded), minus the instrument radius. One difference,
on purpose: the kernel marches from the target back to the FIRST point where the depth crosses zero and calls it
the bone entry (the search's entry rule then refuses a path that leaves and re-enters the bone); here there is no
entry rule, so the bone entry is where the actual line enters the bone coming FROM THE SKIN side, at the level of
the planned bone entry (see ``planned_bone_entry_lps_mm``). A line that breaches a pedicle wall and re-enters the
body is then measured over its whole course in bone, breach included (negative depth), and is not reported as
contained.
"""

from __future__ import annotations

import numpy as np

from osteoplan.verification.geometry import unit
from osteoplan.verification.postop import _depth_along

#: Sample step along the actual line (mm): the kernel's rule at the planner's fine step order; sampling a 1-Lipschitz
#: depth at step h overestimates its minimum by at most h / 2 (0.125 mm here).
STEP_MM = 0.25


def line_containment_mm(bone_mask: np.ndarray, affine: np.ndarray, spacing_mm, rear_lps_mm, tip_lps_mm,
                        radius_mm: float, *, entry_skip_mm: float, tip_skip_mm: float = 0.0,
                        planned_bone_entry_lps_mm=None, step_mm: float = STEP_MM) -> dict:
    """Containment of the instrument on the line *rear* -> *tip* in *bone_mask* (see module docstring).

    Parameters
    ----------
    bone_mask : bool (K, J, I)
        The target bone (e.g. ``vertebrae_L1``) on the planning grid.
    affine : (4, 4)
        Planning grid index (k, j, i) -> LPS mm.
    spacing_mm : (3,)
        Voxel size (k, j, i), mm.
    rear_lps_mm, tip_lps_mm : (3,)
        A point of the actual line on the skin side (outside the bone) and the instrument's tip, LPS mm.
    radius_mm : float
        Instrument (or implant) radius, mm, subtracted from the depth as the kernel does.
    entry_skip_mm, tip_skip_mm : float
        Lengths after the bone entry and before the tip excluded (the plan's ``containment_entry_skip_mm`` and the
        protocol's ``containment_skip_tip_mm``).
    planned_bone_entry_lps_mm : (3,), optional
        The plan's bone entry. Given, the bone entry of the actual line is taken at the level of the planned one: the
        start of the run inside the bone that holds the actual line's point level with it, or, when that point is
        outside, the first entry after it (bone the line crosses before, e.g. a posterior element, then a gap, is
        not counted, as the plan did not count it); later exits from the bone all count. Without it: the first
        entry from *rear*.
    step_mm : float
        Sample step, mm.

    Returns
    -------
    dict
        ``min_margin_mm`` (smallest depth minus radius, mm; None when the line never enters the bone),
        ``bone_entry_lps_mm`` (where the line enters the bone from the skin side), ``length_in_bone_mm``,
        ``min_at_mm_from_tip``, ``tip_inside`` (the tip's axis point is inside the mask).

    Raises
    ------
    ValueError
        *rear* and *tip* coincide.
    """
    rear, tip = np.asarray(rear_lps_mm, float), np.asarray(tip_lps_mm, float)
    length = float(np.linalg.norm(tip - rear))
    if length < 1e-6:
        raise ValueError("the rear point and the tip of the line coincide")
    d = unit(tip - rear)
    s = np.arange(0.0, length + 1e-9, step_mm)  # from the rear, towards the tip
    if s[-1] < length - 1e-9:
        s = np.append(s, length)
    pts = rear + s[:, None] * d
    dep, _ = _depth_along(bone_mask, affine, spacing_mm, pts)
    inside = dep > 0
    out = {"tip_inside": bool(inside[-1]), "min_margin_mm": None, "bone_entry_lps_mm": None,
           "length_in_bone_mm": None, "min_at_mm_from_tip": None}
    q0 = 0
    if planned_bone_entry_lps_mm is not None:
        q0 = int(np.argmin(np.abs(s - float((np.asarray(planned_bone_entry_lps_mm, float) - rear) @ d))))
        while q0 > 0 and inside[q0] and inside[q0 - 1]:  # back to the start of the run holding it
            q0 -= 1
    if not inside[q0:].any():
        return out
    q = q0 + int(np.argmax(inside[q0:]))  # first sample inside, from the skin side (from q0)
    if q == 0:
        s_entry = 0.0
    else:  # the zero crossing between the samples, linear (as the kernel)
        s_entry = float(s[q - 1] + (s[q] - s[q - 1]) * (-dep[q - 1]) / (dep[q] - dep[q - 1]))
    from_tip = length - s
    l_bone = length - s_entry
    sel = (s >= s_entry) & (from_tip >= tip_skip_mm - 1e-9) & (from_tip <= l_bone - entry_skip_mm)
    if not sel.any():  # the kernel's fallback: the sample nearest the middle of the range
        mid = 0.5 * (tip_skip_mm + l_bone - entry_skip_mm)
        sel = np.zeros_like(sel)
        sel[int(np.argmin(np.abs(from_tip - mid)))] = True
    idx = np.nonzero(sel)[0]
    i_min = int(idx[np.argmin(dep[idx])])
    out.update(min_margin_mm=round(float(dep[i_min]) - float(radius_mm), 2),
               bone_entry_lps_mm=[round(float(x), 2) for x in rear + s_entry * d],
               length_in_bone_mm=round(l_bone, 2), min_at_mm_from_tip=round(float(from_tip[i_min]), 2))
    return out
