"""Control CT -> registration -> instrument -> figures against the plan (plain data in and out).

:func:`verify_control` is what the ``osteoplan verify`` command (and later the web app) calls. It takes the
plan's numbers, the planning CT, the plan's masks and the control CT, and returns one plain-JSON dict.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from osteoplan.imaging.volume import Volume
from osteoplan.planning.verdict import structure_name
from osteoplan.verification.deviation import deviation_figures, line_clearances
from osteoplan.verification.geometry import apply, point_to_line_mm
from osteoplan.verification.instrument import Instrument, detect_instruments
from osteoplan.verification.postop import screw_figures
from osteoplan.verification.register import VerificationError, register_control

STAGES = ("trocar", "pin", "screw")


class NoInstrument(VerificationError):
    """No straight metal instrument near the planned path."""


class NoInstrumentTip(VerificationError):
    """An instrument was found but the image cannot show where its tip is."""


class SeveralInstruments(VerificationError):
    """More than one instrument found where one was expected."""


def crossing_note(row: dict) -> str:
    """The headline note for a clearance row whose status is ``crosses`` (the actual line's instrument surface
    overlaps the structure by ``-actual_clearance_mm`` mm): said first among the notes, never left in the table."""
    where = (" as segmented on the planning CT, before hydrodissection"
             if row.get("category") == "displaceable" else "")
    return (f"the instrument line crosses {structure_name(row['structure'])}{where} by {-row['actual_clearance_mm']:.1f} mm: "
            "check on the control CT before going further")

def _describe(i: int, inst: Instrument, e, d) -> str:
    return (f"#{i}: tip LPS ({', '.join(f'{x:.1f}' for x in inst.tip_lps_mm)}) mm, "
            f"{point_to_line_mm(inst.tip_lps_mm, e, d):.1f} mm from the planned path")


def attention_summary(clearances: list[dict]) -> dict:
    """What needs the operator's attention, for the headline: structures the instrument line crosses or comes
    inside the margin of, and those not segmented that it therefore does not show clear (``not_clear``: inside
    such a structure), from :func:`~osteoplan.verification.deviation.line_clearances` rows.

    Returns
    -------
    dict
        ``needs_attention`` (bool), ``crosses`` and ``inside_margin`` (lists of ``{structure, clearance_mm,
        margin_mm}``), ``not_clear`` (list of ``{structure, covered_by}``, ``covered_by`` = ``"containment"`` for
        a structure the plan counted covered by containment when the actual instrument leaves the bone; present
        only when not empty, so that
        results without one keep their shape), ``headline`` (English, structures by their names
        (:func:`osteoplan.planning.verdict.structure_name`), empty when nothing needs attention). ``verify`` has no exit code
        for this (its exit codes are 0 measured / 2 not measurable / 1 internal error): it is said, not coded.
    """
    def rows(status):
        return [{"structure": r["structure"], "clearance_mm": r["actual_clearance_mm"], "margin_mm": r["margin_mm"]}
                for r in clearances if r.get("status") == status]

    crosses, inside = rows("crosses"), rows("inside_margin")
    not_clear = [{"structure": r["structure"], "covered_by": r.get("covered_by")}
                 for r in clearances if r.get("status") == "not_clear"]
    parts = []
    if crosses:
        parts.append("the instrument line CROSSES " + ", ".join(
            f"{structure_name(r['structure'])} (by {-r['clearance_mm']:.1f} mm)" for r in crosses))
    if inside:
        parts.append("the instrument line is INSIDE THE MARGIN of " + ", ".join(
            f"{structure_name(r['structure'])} ({r['clearance_mm']:.1f} mm < {r['margin_mm']:.1f} mm)" for r in inside))
    inside_other = [r for r in not_clear if r["covered_by"] != "containment"]
    by_cont = [r for r in not_clear if r["covered_by"] == "containment"]
    if inside_other:
        parts.append("NOT CLEAR: " + ", ".join(
            f"{structure_name(r['structure'])} (inside the {structure_name(r['covered_by'])})" for r in inside_other))
    if by_cont:  # the plan counted them covered by containment; the actual instrument leaves the bone
        parts.append("NOT CLEAR: the instrument leaves the bone: " + ", ".join(
            structure_name(r["structure"]) for r in by_cont) + " not segmented, cannot be said clear")
    out = {"needs_attention": bool(parts), "crosses": crosses, "inside_margin": inside,
           "headline": ("NEEDS ATTENTION: " + "; ".join(parts)) if parts else ""}
    if not_clear:
        out["not_clear"] = not_clear
    return out


def _actual_containment(trajectory: Any, masks: dict, planning: Volume, inst: Instrument, skin_entry_lps_mm,
                        radius_mm: float, margin_mm: float | None, skip_tip_mm: float) -> dict | None:
    """The containment of the actual line in the target bone, when the plan counted a structure as covered by
    containment (else None): ``measured``, ``reason`` (why not measured), ``min_margin_mm``, ``margin_mm``,
    ``bone``, ``bone_entry_lps_mm``, ``entry_skip_mm``, ``tip_skip_mm``, ``radius_mm``, ``method``."""
    from osteoplan.verification.containment import line_containment_mm

    if not any(getattr(c, "status", None) == "covered" and "covered by containment" in (getattr(c, "note", None) or "")
               for c in getattr(trajectory, "clearances", ())):
        return None
    level = getattr(trajectory, "level", None)
    bone = f"vertebrae_{level}" if level else None
    out: dict = {"measured": False, "reason": None, "bone": bone, "margin_mm": margin_mm}
    m = masks.get(bone) if bone else None
    if margin_mm is None:
        out["reason"] = "the protocol's containment margin is not known here"
        return out
    if m is None or not np.any(m):
        out["reason"] = "the target bone is not segmented in the plan folder"
        return out
    tip, da = np.asarray(inst.tip_lps_mm, float), np.asarray(inst.direction_unit, float)
    rear = tip + ((np.asarray(skin_entry_lps_mm, float) - tip) @ da) * da  # the actual axis, level with the skin entry
    skip = float(getattr(trajectory, "containment_entry_skip_mm", 0.0) or 0.0)
    r = line_containment_mm(m, planning.affine, planning.spacing_mm, rear, tip, radius_mm, entry_skip_mm=skip,
                            tip_skip_mm=skip_tip_mm, planned_bone_entry_lps_mm=trajectory.bone_entry_lps_mm)
    out.update(measured=True, min_margin_mm=r["min_margin_mm"], bone_entry_lps_mm=r["bone_entry_lps_mm"],
               length_in_bone_mm=r["length_in_bone_mm"], min_at_mm_from_tip=r["min_at_mm_from_tip"],
               entry_skip_mm=round(skip, 2), tip_skip_mm=float(skip_tip_mm), radius_mm=round(float(radius_mm), 3),
               contained=bool(r["min_margin_mm"] is not None and r["min_margin_mm"] >= margin_mm - 1e-9),
               method=("the planner's containment measured on the instrument's actual line in the registered control: "
                       f"smallest depth inside the mask of vertebra {level} on the planning CT minus the instrument "
                       "radius, from "
                       "where the actual line enters the bone (from the skin side, at the level of the planned "
                       "bone entry; the plan's entry skip excluded) to its tip"))
    return out


def verify_control(trajectory: Any, planning: Volume, control: Volume, *, masks: dict[str, np.ndarray] | None = None,
                   sources: dict[str, str] | None = None, stage: str = "pin", instrument_number: int | None = None,
                   registration_kwargs: dict | None = None, detection_kwargs: dict | None = None,
                   max_tip_uncertainty_mm: float = 1.0, containment_margin_mm: float | None = None,
                   containment_skip_tip_mm: float = 0.0) -> dict:
    """Check a control CT against a planned trajectory.

    Parameters
    ----------
    trajectory : osteoplan.planning.model.Trajectory
        The planned path (``skin_entry_lps_mm``, ``bone_entry_lps_mm``, ``target_lps_mm``, ``clearances``,
        ``screw``, ``instrument_radius_mm``, ``containment_entry_skip_mm``).
    planning : Volume
        The CT the plan was made on.
    control : Volume
        The control (or post-operative) CT.
    masks, sources : dict, optional
        The plan's structure masks on the planning grid (name -> bool (K, J, I)) and how each was made.
    stage : {"trocar", "pin", "screw"}
        ``screw`` adds the post-operative figures.
    instrument_number : int, optional
        Which instrument (1-based, as listed in the error) when several are found.
    registration_kwargs, detection_kwargs : dict, optional
        Passed to :func:`~osteoplan.verification.register.register_control` and
        :func:`~osteoplan.verification.instrument.detect_instruments` (which gets the planning CT, registered,
        as its ``reference``: the metal excess is measured over it).
    max_tip_uncertainty_mm : float
        A stated tip uncertainty above this adds a note asking to check the tip on the images (configurable
        default: the issue's worst-case tip error, 1 mm; no published source).
    containment_margin_mm, containment_skip_tip_mm : float, optional
        The plan's protocol's containment margin and tip skip (``Protocol.implant()``). When the plan counted
        structures as covered by containment, the containment is measured on the actual line
        (:func:`~osteoplan.verification.containment.line_containment_mm`, in the target bone
        ``vertebrae_<level>`` of the plan's masks, the plan's ``containment_entry_skip_mm``) and decides them
        (``containment`` in the result); without the margin they stay not assessed, with the reason.

    Returns
    -------
    dict
        Plain JSON: ``stage``, ``tip_lps_mm``, ``angle_to_plan_deg`` and the other figures of
        :func:`~osteoplan.verification.deviation.deviation_figures`, ``clearances``, ``registration``,
        ``instrument``, ``instruments_found``, ``tip_uncertainty_mm`` (stated uncertainty of the tip along the
        instrument, see :func:`~osteoplan.verification.instrument._end`), ``postop`` (screw stage), ``seconds``,
        ``notes``.

    Raises
    ------
    RegistrationRefused
        The control CT does not cover the target or the registration cannot be trusted.
    NoInstrument, SeveralInstruments
        No instrument, or several and no *instrument_number*.
    NoInstrumentTip
        An instrument is found but no steady metal signal behind its end (the tip cannot be located).
    ValueError
        Unknown *stage*.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}")
    t0 = time.perf_counter()
    masks = masks or {}
    sources = sources or {}
    e = np.asarray(trajectory.skin_entry_lps_mm, float)
    be = np.asarray(trajectory.bone_entry_lps_mm, float)
    t = np.asarray(trajectory.target_lps_mm, float)
    dp = (t - e) / np.linalg.norm(t - e)
    reg = register_control(planning, control, t, **(registration_kwargs or {}))
    M = reg.control_from_planning
    dk = {"reference": planning, "reference_from_volume": reg.planning_from_control, **(detection_kwargs or {})}
    found = detect_instruments(control, apply(M, e), M[:3, :3] @ dp, toward_lps_mm=apply(M, t), **dk)
    if not found:
        raise NoInstrument("No metal instrument was found near the planned path on the control CT (searched within "
                           f"{(detection_kwargs or {}).get('search_radius_mm', 25.0):g} mm of it); check that the "
                           "instrument is in place and in the field of view.")
    found_p = [f.transformed(reg.planning_from_control) for f in found]
    if len(found_p) > 1 and instrument_number is None:
        listing = "; ".join(_describe(i + 1, f, e, dp) for i, f in enumerate(found_p))
        raise SeveralInstruments(f"{len(found_p)} instruments were found where one was expected ({listing}); choose "
                                 "one with --instrument N.")
    if instrument_number is not None and not 1 <= instrument_number <= len(found_p):
        raise VerificationError(f"--instrument {instrument_number}: only {len(found_p)} instrument(s) found; choose "
                                f"1 to {len(found_p)}.")
    inst = found_p[(instrument_number or 1) - 1]
    if inst.tip_cut_by_fov:
        raise VerificationError("The instrument's tip lies at the edge of the control CT's field of view (it may "
                                "continue outside); scan again covering the tip and the target vertebra.")
    if not np.isfinite(inst.tip_uncertainty_mm):
        raise NoInstrumentTip("The instrument's tip cannot be located on the control CT (no steady metal signal "
                              "behind its end); check the tip on the images or scan again with thinner slices.")
    fig = deviation_figures(e, be, t, inst.tip_lps_mm, inst.direction_unit, stage=stage)
    screw = getattr(trajectory, "screw", None)
    r_plan = getattr(trajectory, "instrument_radius_mm", None)
    if stage == "screw" and screw is not None:
        radius = screw.diameter_mm / 2.0
    else:
        radius = r_plan if r_plan else inst.diameter_mm / 2.0
    c2 = masks.get("vertebrae_C2")
    seg = fig.pop("segment_lps_mm")
    cont = _actual_containment(trajectory, masks, planning, inst, e, radius, containment_margin_mm,
                               containment_skip_tip_mm)
    fig["clearances"] = line_clearances(getattr(trajectory, "clearances", ()), masks, sources, planning.affine,
                                        planning.spacing_mm, seg, radius, c2_mask=c2, containment=cont)
    if cont is not None:
        fig["containment"] = cont
    fig["clearance_line"] = {"from_lps_mm": seg[0], "to_lps_mm": seg[1], "radius_mm": round(radius, 2),
                             "radius_source": "the plan's screw" if (stage == "screw" and screw is not None)
                             else ("the plan's instrument radius" if r_plan else "estimated from the image")}
    fig["summary"] = attention_summary(fig["clearances"])
    notes = [crossing_note(row) for row in fig["clearances"] if row["status"] == "crosses"]
    if inst.tip_uncertainty_mm > max_tip_uncertainty_mm:
        notes.append(f"the tip is uncertain by +-{inst.tip_uncertainty_mm:.1f} mm along the instrument (thin metal on "
                     f"{float(np.max(control.spacing_mm)):.1f} mm voxels, or a fading end): check the tip on the images "
                     "before pushing on")
    if inst.rear_cut_by_fov:
        notes.append("the instrument leaves the control CT's field of view: its visible part is used for the axis")
    if stage == "screw":
        planned_tip = be + dp * screw.length_mm if screw is not None else t
        fig["postop"] = screw_figures(be, planned_tip, inst.tip_lps_mm, inst.direction_unit, radius, c2,
                                      planning.affine, planning.spacing_mm,
                                      entry_skip_mm=float(getattr(trajectory, "containment_entry_skip_mm", 0.0) or 3.0))
        fig["postop"]["planned_tip_lps_mm"] = [round(float(x), 2) for x in planned_tip]
        fig["postop"]["planned_tip_method"] = ("bone entry + the plan's screw length along the planned axis"
                                               if screw is not None else "the plan's target (no screw in the plan)")
    fig.update(stage=stage, registration=reg.to_dict(), instrument=inst.to_dict(),
               instruments_found=len(found_p), tip_uncertainty_mm=round(float(inst.tip_uncertainty_mm), 2),
               seconds=round(time.perf_counter() - t0, 2), notes=notes,
               frame="planning CT, LPS mm")
    return fig
