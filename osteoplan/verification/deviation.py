"""Figures of an instrument against its plan, in the planning CT's frame (LPS mm, degrees).

Definitions (``d_p`` planned unit direction skin -> target, ``d_a`` instrument axis towards its tip):

* ``tip_to_plan_mm``: distance from the tip to the planned line (infinite line through the skin entry and
  the target); ``tip_offset_lps_mm`` the vector from its foot on the line to the tip.
* ``angle_to_plan_deg``: angle between ``d_a`` and ``d_p``.
* ``predicted_tip_lps_mm``: where the tip arrives if pushed on along ``d_a`` to the target depth, i.e. to
  the plane through the target perpendicular to ``d_p``; ``remaining_depth_mm`` the distance to push
  (negative: the tip is already beyond the target depth); ``lateral_offset_at_target_mm`` the distance
  from the predicted tip to the target (and its vector).
* Clearances of the actual line: the segment from the point of the actual axis nearest the planned skin
  entry (screw stage: nearest the planned bone entry) to the predicted tip (or to the tip when it is
  beyond the target depth), instrument radius subtracted; the same distance definition as the planner
  (Euclidean distance to the structure's voxel centres, :func:`osteoplan.planning.fields.capped_distance_mm`,
  capped at 20 mm). A structure without a mask is "not assessed", never clear.
* Correction: the redirection that aims the instrument at the TARGET: its line, turned about the pivot
  (:func:`correction_pivot`: the bone entry once the tip is past it, else the skin entry), passes through the
  target (``miss_after_correction_mm``, 0 by construction). A tip already beyond the target depth is withdrawn
  first (:func:`withdrawal`: ``withdraw_first``, the first of the ``steps``): back to the target depth when its
  line passes closer than :data:`ON_TARGET_LINE_MM` to the target (no turn), else back to the pivot, then turned and
  advanced to the target. Given as (a) the turn angle from ``d_a`` to the
  pivot->target direction and its direction (perpendicular to ``d_a``) split on the patient axes (small-angle
  components, degrees: "2.9 deg right, 1.5 deg anterior"), and the change of the cranio-caudal angle
  ``asin(d_S)``; the turn that only makes the instrument parallel to the plan (ignoring the offset, so it does
  not reach the target) is kept under ``parallel_to_plan``, labelled as such; (b) the C-arm bull's-eye views
  (DICOM positioner angles, :func:`osteoplan.planning.guidance.carm_angles`) down the instrument now, down the
  CORRECTED line (pivot -> target: the view to set to follow the correction; ``carm_change`` goes from the
  first to it) and down the plan (for reference: it differs from the corrected line when the instrument is off
  the planned path); (c) the predicted miss at the target in patient directions.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from osteoplan.planning.fields import CAP_MM, capped_distance_mm
from osteoplan.planning.planner import COVERED_BY, covering_structure_for
from osteoplan.planning.verdict import structure_name
from osteoplan.verification.geometry import angle_deg, patient_terms, unit


def _r(v, n: int = 2):
    if isinstance(v, (list, tuple, np.ndarray)):
        return [round(float(x), n) for x in v]
    return None if v is None else round(float(v), n)


def _angles(d: np.ndarray) -> tuple[float, float]:
    """(cranio-caudal elevation deg, azimuth deg: atan2(d_L, d_P))."""
    return float(np.degrees(np.arcsin(np.clip(d[2], -1, 1)))), float(np.degrees(np.arctan2(d[0], d[1])))


def _carm(d_towards_tip: np.ndarray) -> dict:
    """Bull's-eye C-arm view looking down a path (detector on the entry side unless below the table)."""
    from osteoplan.planning.guidance import carm_angles

    u = -unit(d_towards_tip)
    if u[1] > 0:
        u = -u
    a, b = carm_angles(u)
    label = f"{'LAO' if a >= 0 else 'RAO'} {abs(a):.0f}° / {'CRAN' if b >= 0 else 'CAUD'} {abs(b):.0f}°"
    return {"primary_deg": round(a, 1), "secondary_deg": round(b, 1), "label": label}


_AXIS_NAMES = (("left", "right"), ("posterior", "anterior"), ("cranial", "caudal"))


def _turn(d_from: np.ndarray, d_to: np.ndarray) -> tuple[float, np.ndarray, str]:
    """Turn from unit *d_from* to unit *d_to*: (angle deg, components on L/P/S deg, words "2.2 deg right, ...").

    The components are the angle times the unit direction of the turn (the part of *d_to* perpendicular to
    *d_from*) on the patient axes (small-angle split); + = towards L, P, S.
    """
    theta = angle_deg(d_from, d_to)
    w = d_to - (d_to @ d_from) * d_from
    comp = theta * w / np.linalg.norm(w) if np.linalg.norm(w) > 1e-9 else np.zeros(3)
    words = [f"{abs(comp[ax]):.1f} deg {_AXIS_NAMES[ax][0] if comp[ax] > 0 else _AXIS_NAMES[ax][1]}"
             for ax in np.argsort(-np.abs(comp)) if abs(comp[ax]) >= 0.1]
    return theta, comp, ", ".join(words)


def correction_pivot(skin_entry_lps_mm, bone_entry_lps_mm, tip_lps_mm, direction_unit) -> tuple[np.ndarray, str]:
    """The point the instrument turns about when it is redirected, and its name.

    Once the instrument has gone through the cortex it is held there: a redirection turns it about the bone
    entry (the point of its axis nearest the planned bone entry, i.e. where it crosses the cortex after the
    registration). Before that (a trocar still in the soft tissues) it turns about the skin entry (the point of
    its axis nearest the planned skin entry). A general mechanical reason, no tuned constant.

    Returns
    -------
    pivot_lps_mm : (3,) ndarray
    which : ``"bone_entry"`` or ``"skin_entry"``
    """
    tip, da = np.asarray(tip_lps_mm, float), unit(direction_unit)
    p_bone = tip + ((np.asarray(bone_entry_lps_mm, float) - tip) @ da) * da
    if (tip - p_bone) @ da > 0.0:  # the tip is past the bone entry along its axis
        return p_bone, "bone_entry"
    return tip + ((np.asarray(skin_entry_lps_mm, float) - tip) @ da) * da, "skin_entry"


#: A tip beyond the target depth whose line passes closer than this to the target only needs pulling back
#: to the target depth (no redirection); farther, the line misses and the instrument is withdrawn to its pivot
#: before it is turned. Configurable default, no published source: the issue's worst-case tip error (1 mm), the
#: same figure as the tip-uncertainty note of :func:`osteoplan.verification.verify_control`.
ON_TARGET_LINE_MM = 1.0


def withdrawal(pivot_lps_mm, which: str, target_lps_mm, tip_lps_mm, direction_unit, planned_unit,
               on_target_line_mm: float = ON_TARGET_LINE_MM) -> dict | None:
    """How far an instrument whose tip is already beyond the target depth must be pulled back, and to where.

    A tip past the target depth (the plane through the target perpendicular to the plan) cannot be corrected by
    turning it about its pivot: turning a tip that is already deep in bone sweeps it sideways through the bone
    (and the redirection about the bone entry assumes the tip is on its way to the target, not past it). It is
    withdrawn first, along its own axis:

    * its line passes closer than *on_target_line_mm* to the target (only the depth is wrong): back to the target
      depth, ``-remaining depth`` along the axis; no redirection follows;
    * its line misses the target: back to the pivot (the bone entry; the skin entry for an instrument not yet
      through the cortex), the distance from the tip to the pivot along the axis; then turned about the pivot
      onto the target and advanced from the pivot to the target.

    A general mechanical reason (an instrument is redirected from where it is held, not through bone it has
    already passed), no tuned constant beyond *on_target_line_mm*.

    Parameters
    ----------
    pivot_lps_mm : (3,)
        The pivot of :func:`correction_pivot` (a point of the instrument's axis), LPS mm.
    which : ``"bone_entry"`` or ``"skin_entry"``
    target_lps_mm, tip_lps_mm : (3,)
        LPS mm.
    direction_unit, planned_unit : (3,)
        The instrument's axis towards its tip and the plan's direction skin -> target.
    on_target_line_mm : float
        See above (mm).

    Returns
    -------
    dict or None
        None when the tip is not beyond the target depth. Else ``beyond_target_depth_mm`` (> 0), ``line_miss_mm``
        (distance from the target to the instrument's line), ``withdraw_mm``, ``withdraw_to`` (``"target_depth"``,
        ``"bone_entry"`` or ``"skin_entry"``), ``withdrawn_tip_lps_mm`` and ``advance_after_mm`` (from the pivot
        to the target after the turn; 0 when withdrawn to the target depth).
    """
    t, tip = np.asarray(target_lps_mm, float), np.asarray(tip_lps_mm, float)
    da, dp = unit(direction_unit), unit(planned_unit)
    beyond = float((tip - t) @ dp)
    if beyond <= 0.0:
        return None
    r = t - tip
    miss = float(np.linalg.norm(r - (r @ da) * da))
    cosang = float(da @ dp)
    if miss < on_target_line_mm and cosang > 0.2:
        back = beyond / cosang  # along the axis, back to the plane through the target perpendicular to the plan
        to, advance = "target_depth", 0.0
    else:
        back = float((tip - np.asarray(pivot_lps_mm, float)) @ da)
        to, advance = which, float(np.linalg.norm(t - np.asarray(pivot_lps_mm, float)))
    return {"beyond_target_depth_mm": _r(beyond), "line_miss_mm": _r(miss), "withdraw_mm": _r(back, 1),
            "withdraw_to": to, "withdrawn_tip_lps_mm": _r(tip - back * da), "advance_after_mm": _r(advance, 1)}


_PLACE_WORDS = {"target_depth": "back to the target depth", "bone_entry": "back to the bone entry",
                "skin_entry": "back to the skin entry"}


def _correction(e, be, t, tip, da, dp) -> dict:
    """The redirection that makes the instrument's line, turned about its pivot, pass through the target; a tip
    beyond the target depth is withdrawn first (:func:`withdrawal`)."""
    pivot, which = correction_pivot(e, be, tip, da)
    d_new = unit(t - pivot)
    wd = withdrawal(pivot, which, t, tip, da, dp)
    if wd is not None and wd["withdraw_to"] == "target_depth":
        d_new = da  # only the depth was wrong: the line already passes through the target
    theta, comp, words = _turn(da, d_new)
    # the line through the pivot along d_new: its distance to the target (0 by construction, reported; when only
    # withdrawn to the target depth, the current line's distance to the target, <= ON_TARGET_LINE_MM)
    r = t - pivot
    miss_after = float(np.linalg.norm(r - (r @ d_new) * d_new))
    theta_par, comp_par, words_par = _turn(da, dp)
    pivot_words = {"bone_entry": "the bone entry (where the instrument crosses the cortex)",
                   "skin_entry": "the skin entry"}[which]
    cc_a, _ = _angles(da)
    cc_n, _ = _angles(d_new)
    ca, cn, cp = _carm(da), _carm(d_new), _carm(dp)
    turn_words = (f"turn the tip {theta:.1f} deg: {words} (pivoting at the {which.replace('_', ' ')}; the line then "
                  "passes through the target)") if words else "direction on target"
    steps = []
    if wd is not None:
        steps.append(f"withdraw {wd['withdraw_mm']:.1f} mm first ({_PLACE_WORDS[wd['withdraw_to']]}: the tip is "
                     f"{wd['beyond_target_depth_mm']:.1f} mm past the target depth)")
        if wd["withdraw_to"] == "target_depth":
            steps.append(f"no turn: the line passes {wd['line_miss_mm']:.1f} mm from the target")
        else:
            steps.append("then " + turn_words)
            steps.append(f"then advance {wd['advance_after_mm']:.1f} mm to the target")
    else:
        steps.append(turn_words)
    return {
        "aim": "target", "pivot": which, "pivot_lps_mm": _r(pivot), "pivot_in_words": pivot_words,
        "withdraw_first": wd,
        "turn_deg": _r(theta, 1), "turn_components_lps_deg": _r(comp, 1), "craniocaudal_angle_change_deg": _r(cc_n - cc_a, 1),
        "corrected_direction_unit": _r(d_new, 4),
        "steps": steps,
        "redirect_in_words": "; ".join(steps),
        "miss_after_correction_mm": _r(miss_after),
        "miss_at_target_in_words": None,  # filled by the caller from the current prediction
        "parallel_to_plan": {
            "turn_deg": _r(theta_par, 1), "turn_components_lps_deg": _r(comp_par, 1),
            "in_words": (f"parallel to the plan (NOT a correction: ignores the offset): {theta_par:.1f} deg: {words_par}"
                         if words_par else "parallel to the plan"),
        },
        "carm_bullseye_instrument": ca, "carm_bullseye_corrected": cn, "carm_bullseye_plan": cp,
        "carm_change": f"primary {cn['primary_deg'] - ca['primary_deg']:+.1f} deg (+ = towards LAO), secondary "
                       f"{cn['secondary_deg'] - ca['secondary_deg']:+.1f} deg (+ = towards CRAN) from the bull's-eye "
                       "down the instrument now to the bull's-eye down the corrected line (pivot to target)",
        "angles_definition": "turn: the angle from the instrument's axis to the line from the pivot to the target, "
                             "its components the turn's direction (perpendicular to the instrument) on the patient "
                             "axes L, P, S (small-angle split, deg); pivot: the bone entry once the tip is past it, "
                             "else the skin entry; a tip beyond the target depth is withdrawn first (to the target "
                             "depth when its line passes closer than "
                             f"{ON_TARGET_LINE_MM:g} mm to the target, else to the pivot); cranio-caudal angle = "
                             "asin(d_S), + cranial; C-arm: DICOM positioner angles, + primary = LAO, + secondary = "
                             "cranial; carm_change: from the instrument's bull's-eye to the corrected line's",
    }


def segment_clearance_mm(mask: np.ndarray, affine: np.ndarray, spacing_mm, a_lps, b_lps, radius_mm: float,
                         only_where: np.ndarray | None = None, step_mm: float = 0.25) -> float | None:
    """Smallest distance (mm) from the surface of a cylinder of *radius_mm* around segment *a*-*b* to *mask*.

    The distance map is computed on a box around the segment grown by the cap (``CAP_MM``); result capped
    at ``CAP_MM - radius``. *only_where* (bool, grid of *mask*): measure only at segment points inside it.
    None when no point was measured. Negative = the instrument enters the structure.
    """
    a, b = np.asarray(a_lps, float), np.asarray(b_lps, float)
    n = max(2, int(np.ceil(np.linalg.norm(b - a) / step_mm)) + 1)
    pts = a + np.linspace(0, 1, n)[:, None] * (b - a)
    inv = np.linalg.inv(affine)
    idx = pts @ inv[:3, :3].T + inv[:3, 3]
    sp = np.asarray(spacing_mm, float)
    grow = np.ceil(CAP_MM / sp).astype(int) + 2
    lo = np.maximum(np.floor(idx.min(0)).astype(int) - grow, 0)
    hi = np.minimum(np.ceil(idx.max(0)).astype(int) + grow + 1, mask.shape)
    if np.any(hi <= lo):
        return None
    box = tuple(slice(int(l), int(h)) for l, h in zip(lo, hi))
    dmap = capped_distance_mm(mask[box], sp)
    loc = idx - lo
    valid = np.all((idx >= 0) & (idx <= np.asarray(mask.shape) - 1), axis=1)
    if only_where is not None:
        valid &= ndi.map_coordinates(only_where.astype(np.float32), idx.T, order=0, mode="constant", cval=0) > 0.5
    if not valid.any():
        return None
    d = ndi.map_coordinates(dmap, loc[valid].T, order=1, mode="nearest")
    return float(d.min() - radius_mm)


def deviation_figures(skin_entry_lps_mm, bone_entry_lps_mm, target_lps_mm, tip_lps_mm, direction_unit, *,
                      stage: str = "pin") -> dict:
    """Geometric figures of the instrument against the plan (see module docstring); plain JSON values.

    Parameters
    ----------
    skin_entry_lps_mm, bone_entry_lps_mm, target_lps_mm : (3,)
        The planned path (planning frame).
    tip_lps_mm, direction_unit : (3,)
        The instrument's tip and axis (towards the tip), planning frame.
    stage : str
        ``"trocar"``, ``"pin"`` or ``"screw"`` (the screw's line starts at the bone entry).

    Returns
    -------
    dict
        See module docstring; also ``segment_lps_mm`` (the actual line used for the clearances).
    """
    e, be, t = (np.asarray(x, float) for x in (skin_entry_lps_mm, bone_entry_lps_mm, target_lps_mm))
    tip, da = np.asarray(tip_lps_mm, float), unit(direction_unit)
    dp = unit(t - e)
    v = tip - e
    foot = e + (v @ dp) * dp
    off = tip - foot
    cosang = float(da @ dp)
    out: dict = {"tip_lps_mm": _r(tip), "angle_to_plan_deg": _r(angle_deg(da, dp)),
                 "tip_to_plan_mm": _r(np.linalg.norm(off)), "tip_offset_lps_mm": _r(off),
                 "tip_offset_in_words": patient_terms(off) + " of the planned path",
                 "tip_to_target_mm": _r(np.linalg.norm(t - tip)),
                 "tip_depth_short_of_target_along_plan_mm": _r((t - tip) @ dp)}
    if cosang > 0.2:
        lam = float((t - tip) @ dp) / cosang
        pred = tip + lam * da
        miss = pred - t
        out.update({"remaining_depth_mm": _r(lam), "predicted_tip_lps_mm": _r(pred),
                    "lateral_offset_at_target_mm": _r(np.linalg.norm(miss)),
                    "lateral_offset_at_target_lps_mm": _r(miss),
                    "lateral_offset_in_words": patient_terms(miss) + " of the target"})
        end = pred if lam > 0 else tip
    else:
        out.update({"remaining_depth_mm": None, "predicted_tip_lps_mm": None, "lateral_offset_at_target_mm": None,
                    "note": "the instrument is more than 78 deg off the plan: no prediction at the target depth"})
        end = tip
    start_ref = be if stage == "screw" else e
    start = tip + ((start_ref - tip) @ da) * da
    out["segment_lps_mm"] = [_r(start), _r(end)]
    out["correction"] = _correction(e, be, t, tip, da, dp)
    out["correction"]["miss_at_target_in_words"] = out.get("lateral_offset_in_words")
    return out


def line_clearances(planned_checks, masks: dict, sources: dict, affine: np.ndarray, spacing_mm, segment_lps_mm,
                    radius_mm: float, c2_mask: np.ndarray | None = None,
                    containment: dict | None = None) -> list[dict]:
    """Clearance of the actual line to every structure the plan checked (see module docstring).

    Parameters
    ----------
    planned_checks : iterable of objects with ``structure``, ``margin_mm``, ``clearance_mm``, ``category``,
        ``segment`` (the plan's :class:`~osteoplan.planning.model.ClearanceCheck`).
    masks : dict name -> bool (K, J, I) on the planning grid (``other_bone`` may be absent: then
        ``bone`` minus ``vertebrae_C2`` is used when both exist).
    sources : dict name -> how the mask was made.
    segment_lps_mm : ((3,), (3,)) the actual line.
    radius_mm : float
        Instrument radius.
    c2_mask : bool (K, J, I), optional
        Checks of the plan's ``skin_to_bone`` segment are measured only outside it (as the planner does).
    containment : dict, optional
        The containment measured on the actual line (``verify_control``'s ``containment``: ``min_margin_mm``,
        ``margin_mm``, ``measured``, ``reason``). A structure the plan counted as covered by containment (not
        segmented) is then ``covered`` (``covered_by`` = ``"containment"``, ``containment_mm`` the figure) when
        the actual line stays inside the bone by the margin, ``not_clear`` when it does not; without it (or when
        it could not be measured) it stays ``not_assessed``, with the reason.

    Returns
    -------
    list of dict
        One row per structure: ``structure``, ``margin_mm``, ``planned_clearance_mm``, ``actual_clearance_mm``
        (None when not assessed), ``status``, ``source``. ``status`` is ``pass`` (clearance >= margin),
        ``covered`` (not segmented, covered by the clearance of the structure containing it, which the actual
        line clears: ``covered_by`` names it; the planner's rule,
        :func:`osteoplan.planning.planner.covering_structure_for`), ``not_clear`` (not segmented, and the actual
        line comes inside the margin of the structure containing it or crosses it: ``covered_by`` names it; never
        reported as clear), ``inside_margin``
        (0 <= clearance < margin), ``crosses`` (clearance < 0: the instrument's surface overlaps
        the structure as segmented on the planning CT; the planner never accepts this for any structure) or
        ``not_assessed``. ``planned_clearance_capped``: the plan's figure is a lower bound (">="). For a ``displaceable`` structure the distance is to its position on the planning CT,
        before any hydrodissection (said in ``note``).
    """
    a, b = segment_lps_mm
    rows = []
    no_mask: set[str] = set()
    for c in planned_checks:
        name = c.structure
        m = masks.get(name)
        if m is None and name == "other_bone" and "bone" in masks and "vertebrae_C2" in masks:
            m = masks["bone"] & ~masks["vertebrae_C2"]
        row = {"structure": name, "category": c.category, "margin_mm": c.margin_mm,
               "planned_clearance_mm": c.clearance_mm, "source": sources.get(name),
               "planned_status": getattr(c, "status", None),
               # the plan's distance is a lower bound when it reached the cap (the plan's note says so)
               "planned_clearance_capped": bool(c.clearance_mm is not None
                                                and (getattr(c, "note", None) or "").startswith("at least"))}
        if m is None or not np.any(m):
            no_mask.add(name)
            if (getattr(c, "status", None) == "covered" and COVERED_BY.get(name) is None
                    and containment is not None and containment.get("measured")
                    and "covered by containment" in (getattr(c, "note", None) or "")):
                row.update(containment_row(name, containment))
            elif getattr(c, "status", None) == "covered" and COVERED_BY.get(name) is None:
                # covered in the plan by something the actual line does not measure (containment in bone)
                why = "" if containment is None or not containment.get("reason") else f" ({containment['reason']})"
                row.update(actual_clearance_mm=None, status="not_assessed",
                           note="covered in the plan (" + ((getattr(c, "note", None) or "").split(";")[-1].strip()
                                                           or "see the plan")
                                + "); not re-measured on the control CT" + why)
            else:  # the covering rule is applied below, once every structure of the line is measured
                row.update(actual_clearance_mm=None, status="not_assessed",
                           note="no mask of this structure in the plan folder: not assessed, never reported as clear")
        else:
            only = None
            if getattr(c, "segment", "") == "skin_to_bone" and c2_mask is not None:
                only = ~c2_mask
            d = segment_clearance_mm(m, affine, spacing_mm, a, b, radius_mm, only_where=only)
            if d is None:
                row.update(actual_clearance_mm=None, status="not_assessed", note="the line does not cross this CT")
            else:
                status = "pass" if d >= c.margin_mm else ("crosses" if d < 0.0 else "inside_margin")
                note = (f"at least this much (distances capped at {CAP_MM:g} mm)"
                        if d >= CAP_MM - radius_mm - 0.01 else None)
                if status != "pass" and c.category == "displaceable":
                    note = ("measured to its position on the planning CT, before hydrodissection: check on the "
                            "control CT where it lies now")
                row.update(actual_clearance_mm=round(d, 2), status=status, note=note)
        rows.append(row)
    _cover_rows(rows, no_mask)
    return rows


def containment_row(name: str, containment: dict) -> dict:
    """The status of a structure the plan counted as covered by containment, from the containment measured on the
    actual line (see :func:`line_clearances`): ``covered`` when ``min_margin_mm >= margin_mm`` (the planner's test,
    :func:`osteoplan.planning.planner._checks`), else ``not_clear``; ``covered_by`` = ``"containment"``."""
    m, need = containment.get("min_margin_mm"), float(containment["margin_mm"])
    base = {"actual_clearance_mm": None, "covered_by": "containment", "containment_mm": m,
            "containment_margin_mm": need}
    if m is not None and m >= need - 1e-9:
        return {**base, "status": "covered",
                "note": f"covered by containment (measured on the actual line: {m:.1f} mm inside the bone)"}
    if m is None:
        how = "the actual line never enters the bone"
    elif m >= 0:
        how = f"measured on the actual line: {m:.1f} mm inside the bone, {need:.1f} mm required"
    else:
        how = f"measured on the actual line: the instrument surface lies {-m:.1f} mm outside the bone"
    return {**base, "status": "not_clear",
            "note": (f"the instrument leaves the bone: {structure_name(name)} not segmented, cannot be said clear "
                     f"({how})")}


def _cover_rows(rows: list[dict], no_mask: set[str]) -> None:
    """Apply the planner's covering rule (:func:`osteoplan.planning.planner.covering_structure_for`) to the
    structures without a mask, with the structures measured on the actual line: covered by the one containing
    it (``covered``) when that one passes; ``not_clear`` when the actual line comes inside its margin or crosses
    it (the structure it contains is then not shown clear, and is never reported so). In place."""
    measured = {r["structure"]: r for r in rows if r.get("actual_clearance_mm") is not None}
    for row in rows:
        if row["structure"] not in no_mask:
            continue
        cover = covering_structure_for(row["structure"], measured)
        if cover is None:
            continue
        by = measured[cover[0]]
        by_name = structure_name(cover[0])
        if by["status"] == "pass":
            row.update(status="covered", covered_by=cover[0],
                       note=f"{cover[2]}; the {by_name} measured on the actual line")
        else:
            how = (f"crossed by {-by['actual_clearance_mm']:.1f} mm" if by["status"] == "crosses" else
                   f"inside its margin ({by['actual_clearance_mm']:.1f} mm < {by['margin_mm']:.1f} mm)")
            row.update(status="not_clear", covered_by=cover[0],
                       note=(f"not segmented; the {by_name} that contains it is {how} on the actual line: the "
                             f"{structure_name(row['structure'])} is NOT clear"))
