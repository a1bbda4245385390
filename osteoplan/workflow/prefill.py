"""The procedure record pre-filled from a plan: what the plan decided (side, screw, needle, cement, levels), in the
registry's terms, for the procedure form opened "from this plan" (the user edits before saving).

Nothing here is measured during the procedure: these are the PLANNED values, and the form says so.
"""

from __future__ import annotations

from typing import Any

#: Outer diameter (mm) of bone-trocar gauges (Stubs / Birmingham wire gauge, the table the protocols cite). A
#: needle diameter within :data:`GAUGE_TOLERANCE_MM` of an entry is named by its gauge.
GAUGE_OUTER_DIAMETER_MM: dict[int, float] = {8: 4.19, 10: 3.40, 11: 3.05, 12: 2.77, 13: 2.41, 14: 2.11, 15: 1.83,
                                             16: 1.65}
#: Tolerance when naming a needle's gauge from its diameter (mm): below half the gap between neighbouring gauges
#: (configurable default, no published source).
GAUGE_TOLERANCE_MM = 0.1


def gauge_of(diameter_mm: float | None) -> int | None:
    """The gauge whose outer diameter is within :data:`GAUGE_TOLERANCE_MM` of *diameter_mm* (None: no such gauge)."""
    if diameter_mm is None:
        return None
    best = min(GAUGE_OUTER_DIAMETER_MM, key=lambda g: abs(GAUGE_OUTER_DIAMETER_MM[g] - float(diameter_mm)))
    return best if abs(GAUGE_OUTER_DIAMETER_MM[best] - float(diameter_mm)) <= GAUGE_TOLERANCE_MM else None


def _placed(plan: dict) -> list[dict]:
    """The trajectories to place (as :attr:`osteoplan.planning.model.Plan.placed`): the best, or all of them
    (``placement == "all"``); none when a site group is unplanned or nothing is feasible."""
    trajs = list(plan.get("trajectories") or [])
    if not trajs or plan.get("unplanned"):
        return []
    return trajs if plan.get("placement") == "all" else trajs[:1]


def procedure_prefill(plan: dict) -> dict[str, Any]:
    """The procedure record's planned values from a plan (``plan.json`` content, as a saved plan holds it).

    Parameters
    ----------
    plan : dict
        A plan (:class:`osteoplan.planning.model.Plan` as JSON).

    Returns
    -------
    dict
        ``procedure_type`` (the procedure module's ``registry_type``, one of
        :data:`osteoplan.workflow.models.PROCEDURE_TYPES`; None for an unknown procedure); ``side`` ("left",
        "right", "bilateral" when needles go in from both sides, None when nothing is placed); ``levels`` (sorted,
        e.g. ``["L1", "L2"]``) and ``levels_treated`` (their number, at least 1 when something is placed, else
        None); ``screws``: one ``{"diameter_mm", "length_mm", "cannulated"}`` per placed screw (C2 screw plans; a
        screw of a catalogue named ``...cannulated...`` or of a procedure that only uses cannulated screws is
        cannulated); ``needle_gauge`` (int or None) and ``trocar`` (words, e.g. "11G bone trocar"): the needle's
        gauge from its diameter for a needle plan, the protocol's trocar for a screw plan; ``cement_per_level_ml``
        (level -> [low, high] mL, the plan's suggestion) and ``cement_volume_ml`` (the sum of the high ends: the
        most the plan suggests injecting, None when the plan has no cement suggestion); ``plan_verdict`` (the
        plan's one verdict text, None when absent). Nothing is invented: what the plan does not say is None.
    """
    placed = _placed(plan)
    out: dict[str, Any] = {"procedure_type": None, "side": None, "levels": [], "levels_treated": None, "screws": [],
                           "needle_gauge": None, "trocar": None, "cement_per_level_ml": {}, "cement_volume_ml": None,
                           "plan_verdict": (plan.get("verdict") or {}).get("text_en")}
    proc = plan.get("procedure") or "c2-dens-screw"
    try:
        from osteoplan.planning.procedures import get_procedure

        out["procedure_type"] = get_procedure(proc).registry_type or None
    except Exception:  # an unknown procedure name: no type rather than a guess
        out["procedure_type"] = None
    sides = sorted({t.get("side") for t in placed if t.get("side")})
    out["side"] = "bilateral" if len(sides) > 1 else (sides[0] if sides else None)
    levels = sorted({t.get("level") or plan.get("level") for t in placed} - {None})
    out["levels"] = levels
    out["levels_treated"] = (len(levels) or 1) if placed else None
    screws = [t["screw"] for t in placed if t.get("screw")]
    cannulated = proc == "c2-dens-screw"  # the anterior/lateral dens screw is always cannulated (guide pin)
    out["screws"] = [{"diameter_mm": float(s["diameter_mm"]), "length_mm": float(s["length_mm"]),
                      "cannulated": cannulated or "cannulated" in str(s.get("catalogue_ref") or "")} for s in screws]
    needle = next((t.get("needle_diameter_mm") for t in placed if t.get("needle_diameter_mm")), None)
    if needle is not None:
        out["needle_gauge"] = gauge_of(needle)
    elif placed:
        try:
            from osteoplan.planning.protocol import load_protocol

            out["needle_gauge"] = int(load_protocol(plan.get("protocol_name")).instruments.trocar_gauge)
        except Exception:  # a protocol not shipped with this version: the gauge is not known
            out["needle_gauge"] = None
    if out["needle_gauge"] is not None:
        out["trocar"] = f"{out['needle_gauge']}G bone trocar"
    elif needle is not None:
        out["trocar"] = f"bone trocar {float(needle):.2f} mm"
    cement = plan.get("cement") or {}
    per_level = cement.get("per_level_ml") or {}
    if per_level and placed:
        want = set(levels) or set(per_level)
        out["cement_per_level_ml"] = {lv: [float(v[0]), float(v[1])] for lv, v in sorted(per_level.items())
                                      if lv in want}
    elif cement.get("suggested_pmma_ml") and placed:
        lo, hi = cement["suggested_pmma_ml"]
        out["cement_per_level_ml"] = {(levels[0] if levels else (plan.get("level") or "")): [float(lo), float(hi)]}
    if out["cement_per_level_ml"]:
        out["cement_volume_ml"] = round(sum(v[1] for v in out["cement_per_level_ml"].values()), 2)
    return out


def procedure_form_values(prefill: dict[str, Any]) -> dict[str, Any]:
    """The procedure log form's field values (``osteoplan.web.forms.PROCEDURE_LOG``) from :func:`procedure_prefill`:
    procedure type, levels treated, trocar, guide pin (a cannulated screw), screws 1-2, cement volume."""
    vals: dict[str, Any] = {}
    if prefill.get("procedure_type"):
        vals["procedure_type"] = prefill["procedure_type"]
    if prefill.get("levels_treated"):
        vals["levels_treated"] = prefill["levels_treated"]
    if prefill.get("trocar"):
        vals["trocar"] = prefill["trocar"]
    for i, s in enumerate(prefill.get("screws") or [], start=1):
        if i > 2:
            break
        vals[f"screw{i}.diameter_mm"] = s["diameter_mm"]
        vals[f"screw{i}.length_mm"] = s["length_mm"]
        if s.get("cannulated"):
            vals["guide_pin"] = True
    if prefill.get("cement_volume_ml") is not None:
        vals["cement_volume_ml"] = prefill["cement_volume_ml"]
    return vals
