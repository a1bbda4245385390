"""Presentation helpers: case page context, form choices and defaults, plan and statistics figures.

Figures are drawn server-side with matplotlib (Agg) into PNG bytes: no JavaScript chart library.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from osteoplan.views.i18n import structure_label, translate_text  # noqa: F401  (the one naming function; moved there to be shared)
from osteoplan.workflow import models as m

TIMEPOINT_LABELS = {"baseline": "baseline", "day1": "day 1", "1m": "1 month", "3m": "3 months", "6m": "6 months",
                    "12m": "12 months"}
STAGE_LABELS = {"referred": "referred", "rcp_pending": "RCP pending validation", "rcp_validated": "RCP validated",
                "consulted": "consulted", "scheduled": "scheduled", "done": "procedure done", "followed": "in follow-up",
                "deceased": "deceased"}


def fmt_date(value: Any) -> str:
    """A view date: ISO text for clinical users, ``{"year", "day"}`` for research (shown as year + day offset)."""
    if value is None:
        return "—"
    if isinstance(value, dict):
        day = value.get("day")
        return f"{value.get('year')} (day {day:+d})" if isinstance(day, int) else str(value.get("year"))
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()[:16].replace("T", " ")
    return str(value)[:16].replace("T", " ")


def yesno(value: Any) -> str:
    return "—" if value is None else ("yes" if value else "no")


def case_summary(row: dict, principal) -> dict:
    """A case-list row (already pseudonymised by the service for research accounts)."""
    return dict(row, stage_label=STAGE_LABELS.get(row.get("stage"), row.get("stage")),
                decision_label=m.DECISION_LABELS.get(row.get("last_decision"), row.get("last_decision") or "—"))


def plan_verdict(plan: dict) -> dict:
    """The plan's one verdict for the case page: ``verdict`` (headline), ``verdict_details``, ``verdict_code`` and
    ``verdict_class`` (``ok`` green / ``warn`` amber / ``bad`` red), printed as the planner wrote it
    (:attr:`Plan.verdict`; computed on load for plans written before it existed). A stored plan that no longer
    reads as a plan gets no verdict and a sentence saying so, never a guess."""
    try:
        from osteoplan.planning.model import Plan
        from osteoplan.planning.verdict import severity, verdict_of

        v = verdict_of(Plan.model_validate(plan))
    except Exception:  # an unreadable stored plan: say so rather than guess a verdict
        return {"verdict": None, "verdict_details": ["The stored plan cannot be read by this version of osteoplan: "
                                                     "attach the plan.json again to see its verdict."],
                "verdict_code": None, "verdict_class": "warn"}
    return {"verdict": v.text_en, "verdict_details": list(v.details_en), "verdict_code": v.code,
            "verdict_class": {"ok": "ok", "warn": "warn", "ko": "bad"}[severity(v)]}


def _warning_lines(plan: dict) -> list[str]:
    """The plan's warnings as the web app says them: the CT reader's notes with what to do on the web (the form has
    no gap, resampling or series option: :mod:`osteoplan.remedies`), the others as written."""
    from osteoplan.planning.image_warnings import plan_warning_lines

    return [str(w) for w in plan_warning_lines(plan, "en", face="web",
                                               translate=lambda w: translate_text(w, "en"))]


def plan_key_numbers(plan: dict) -> dict:
    """The numbers a reader wants from a ``plan.json`` (first-ranked trajectory), with safe fallbacks.

    Structures that were not segmented are reported as "not assessed", never as clear.
    """
    out: dict[str, Any] = {"side": plan.get("side"),
                           "protocol": f"{plan.get('protocol_name', '?')} {plan.get('protocol_version', '')}".strip(),
                           "created": plan.get("created_utc"), "rows": [], "clearances": [],
                           "warnings": _warning_lines(plan)}
    out.update(plan_verdict(plan))
    trajs = plan.get("trajectories") or []
    t = trajs[0] if trajs else None
    rows = out["rows"]
    if t:
        sc = t.get("screw") or {}
        if sc:
            rows.append(("Screw", f"{sc.get('diameter_mm')} × {sc.get('length_mm')} mm ({sc.get('catalogue_ref', '')})"))
        for key, label in (("depth_skin_to_bone_mm", "Depth skin → bone"), ("depth_bone_to_target_mm", "Depth bone → target"),
                           ("depth_total_mm", "Total depth")):
            if t.get(key) is not None:
                rows.append((label, f"{t[key]:.1f} mm"))
        if t.get("angle_craniocaudal_deg") is not None:
            rows.append(("Angles", f"cranio-caudal {t['angle_craniocaudal_deg']:.1f}°, medio-lateral "
                                   f"{t.get('angle_mediolateral_deg', 0):.1f}°"))
        g = t.get("guidance") or plan.get("guidance") or {}
        be = g.get("bullseye") or {}
        if be:
            rows.append(("C-arm bull's-eye", be.get("label") or f"{be.get('primary_deg')}°, {be.get('secondary_deg')}°"))
        if g.get("gantry_tilt_deg") is not None:
            rows.append(("CT gantry tilt", f"{g['gantry_tilt_deg']:.1f}° ({'within' if g.get('gantry_within_limit') else 'beyond'} "
                                           f"the {g.get('gantry_limit_deg')}° limit)"))
        for c in t.get("clearances") or []:
            seg = c.get("segmented")
            covered = c.get("status") == "covered"  # e.g. the cord, inside the segmented canal whose clearance covers it
            status = c.get("status") if seg or covered else "not assessed (not segmented)"
            clr = c.get("clearance_mm")
            out["clearances"].append({"structure": c.get("structure"), "name": structure_label(c.get("structure")),
                                      "margin_mm": c.get("margin_mm"),
                                      "clearance_mm": clr if seg else None, "status": status, "segmented": bool(seg) or covered})
    _needle_rows(plan, out)
    ce = plan.get("cement") or {}
    if ce.get("suggested_pmma_ml"):
        lo, hi = ce["suggested_pmma_ml"]
        per = ce.get("per_level_ml") or {}
        rows.append(("Suggested PMMA", f"{lo:.1f}–{hi:.1f} mL" + (" (" + "; ".join(
            f"{lv} {a:.1f}–{b:.1f} mL" for lv, (a, b) in per.items()) + ")" if per else "")))
    for w in ce.get("walls") or []:
        if w.get("breached") and w.get("leak_risk"):  # said loudly, before the planner's warnings
            out["warnings"].insert(0, f"BREACHED WALL, CEMENT LEAK RISK: {w.get('neighbour')}"
                                      + (" (epidural)" if "posterior wall" in str(w.get("neighbour")).lower() else ""))
    if plan.get("assessed") is not None:
        rows.append(("Structures assessed", ", ".join(map(structure_label, plan.get("assessed") or [])) or "none"))
    return out


def _needle_rows(plan: dict, out: dict) -> None:
    """Procedure, level(s) and one row per trajectory to place (every needle when ``placement`` is ``"all"``):
    level and side, needle diameter, pedicle passage (Gertzbein-Robbins grade), tip position; with several
    needles each one's clearances are listed under its name."""
    rows = out["rows"]
    if plan.get("procedure"):
        rows.insert(0, ("Procedure", str(plan["procedure"]) + (f", level {plan['level']}" if plan.get("level") else "")))
    trajs = plan.get("trajectories") or []
    placed = trajs if plan.get("placement") == "all" else trajs[:1]
    if plan.get("unplanned"):
        out["warnings"].insert(0, "No feasible path for " + ", ".join(map(str, plan["unplanned"])))
    for n, t in enumerate(placed, start=1):
        parts = []
        if t.get("needle_diameter_mm") is not None:
            parts.append(f"needle {t['needle_diameter_mm']:.2f} mm")
        if t.get("pedicle_breach_grade") or t.get("pedicle_margin_mm") is not None:
            m_ = t.get("pedicle_margin_mm")
            parts.append(f"pedicle grade {t.get('pedicle_breach_grade') or '—'}"
                         + (f" ({m_:.1f} mm, {t.get('pedicle_breach_wall') or '—'} wall)" if m_ is not None else ""))
        if t.get("tip_anterior_fraction") is not None:
            parts.append(f"tip at {100 * t['tip_anterior_fraction']:.0f} % of the body depth"
                         + (f", {t['tip_from_midline_mm']:+.1f} mm across the midline"
                            if t.get("tip_from_midline_mm") is not None else ""))
        if len(placed) > 1 and t.get("depth_total_mm") is not None:
            parts.append(f"depth {t['depth_total_mm']:.1f} mm")
        if not parts:
            continue
        where = " ".join(x for x in (t.get("level"), t.get("side")) if x)
        rows.append((f"Needle {n}" + (f" ({where})" if where else ""), "; ".join(parts)))
        if len(placed) > 1 and n > 1:  # the first needle's clearances are already listed
            for c in t.get("clearances") or []:
                seg = c.get("segmented")
                covered = c.get("status") == "covered"
                out["clearances"].append({"structure": f"{where}: {c.get('structure')}",
                                          "name": f"{where}: {structure_label(c.get('structure'))}",
                                          "margin_mm": c.get("margin_mm"),
                                          "clearance_mm": c.get("clearance_mm") if seg else None,
                                          "status": c.get("status") if seg or covered else "not assessed (not segmented)",
                                          "segmented": bool(seg) or covered})
    if len(placed) > 1:
        first = " ".join(x for x in (placed[0].get("level"), placed[0].get("side")) if x)
        for c in out["clearances"]:
            if ": " not in str(c["structure"]):
                c["structure"] = f"{first}: {c['structure']}"
                c["name"] = f"{first}: {c['name']}"


def score_parts(components: Any) -> list[str]:
    """Readable "component: option (points)" items of a stored SINS / Mirels result."""
    if not isinstance(components, dict):
        return []
    comps = components.get("components", components)
    out = []
    for name, c in comps.items():
        if isinstance(c, dict):
            label = c.get("label") or c.get("value")
            pts = c.get("points")
            out.append(f"{name.replace('_', ' ')}: {label}" + (f" ({pts})" if pts is not None else ""))
        elif not isinstance(c, (list, dict)):
            out.append(f"{name.replace('_', ' ')}: {c}")
    return out


def case_context(case: dict, principal) -> dict:
    """Template context of the case page."""
    plans = []
    for les in case.get("lesions", []):
        for pl in les.get("plans", []):
            entry = {"id": pl["id"], "label": pl.get("label"), "lesion": les, "created_at": pl.get("created_at")}
            if "plan" in pl:
                entry["key"] = plan_key_numbers(pl["plan"])
            plans.append(entry)
    procs_by_id = {p["id"]: p for p in case.get("procedures", [])}
    return {"case": case, "timeline": case.get("timeline", []), "plans": plans, "procs_by_id": procs_by_id,
            "decision_labels": m.DECISION_LABELS, "timepoint_labels": TIMEPOINT_LABELS,
            "stage_label": STAGE_LABELS.get(case.get("stage"), case.get("stage"))}


def _lesion_label(les: dict) -> str:
    score = f", {les['score_system']} {les['score_total']}" if les.get("score_system") and les.get("score_total") is not None else ""
    return f"#{les['id']} {les['site']} {les.get('side') or ''} {les['lesion_type']}{score}".replace("  ", " ")


def choices_for(case: dict) -> dict[str, list[tuple[str, str]]]:
    """Select options that depend on the case: its lesions, decisions and procedures."""
    lesions = [(str(x["id"]), _lesion_label(x)) for x in case.get("lesions", [])]
    decisions = [(str(d["id"]), f"#{d['id']} {fmt_date(d['meeting_date'])} {d['decision_label']}"
                  + (" (validated)" if d["validated"] else " (NOT validated)")) for d in case.get("decisions", [])]
    procs = [(str(p["id"]), f"#{p['id']} {p['status']} {fmt_date(p['procedure_date'] or p['scheduled_date'])}")
             for p in case.get("procedures", [])]
    return {"lesion_id": [("", "—")] + lesions, "decision_id": [("", "—")] + decisions,
            "procedure_id": [("", "—")] + procs}


def defaults_for(key: str, case: dict, proc: dict | None = None) -> dict[str, str]:
    """Sensible pre-filled values for a new form of the case."""
    today = dt.date.today().isoformat()
    lesions, decisions, procs = case.get("lesions", []), case.get("decisions", []), case.get("procedures", [])
    vals: dict[str, str] = {}
    if key == "decision":
        vals["meeting_date"] = today
        if lesions:
            vals["lesion_id"] = str(lesions[-1]["id"])
    elif key == "consultation":
        vals["consultation_date"] = today
        if decisions:
            vals["decision_id"] = str(decisions[-1]["id"])
    elif key == "schedule":
        valid = [d for d in decisions if d["validated"]]
        if valid:
            vals["decision_id"] = str(valid[-1]["id"])
        vals["scheduled_date"] = today
    elif key in ("followup", "adverse_event"):
        done = [p for p in procs if p["status"] == "done"] or procs
        if done:
            vals["procedure_id"] = str(done[-1]["id"])
        vals["visit_date" if key == "followup" else "event_date"] = today
        if key == "followup":
            have = {f["timepoint"] for f in case.get("follow_ups", []) if done and f["procedure_id"] == done[-1]["id"]}
            nxt = next((t for t in m.TIMEPOINTS if t not in have), "12m")
            vals["timepoint"] = nxt
        else:
            vals["classification"] = "CIRSE 2017"
    elif key == "procedure_log" and proc is not None:
        vals["procedure_date"] = proc.get("scheduled_date") if isinstance(proc.get("scheduled_date"), str) else today
    return vals


def pydantic_messages(exc) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ()))
        out.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return out


# ------------------------------------------------------------------------------------------------ figures
def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def plan_figure_png(plan: dict) -> bytes:
    """Cached :func:`_plan_figure_png` (saved plans are immutable; keyed on the plan's JSON text)."""
    import json

    return _plan_png_cached(json.dumps(plan, sort_keys=True, default=str))


@__import__("functools").lru_cache(maxsize=64)
def _plan_png_cached(plan_json: str) -> bytes:
    import json

    return _plan_figure_png(json.loads(plan_json))


def _plan_figure_png(plan: dict) -> bytes:
    """Sketch of a plan's trajectories (skin entry -> bone entry -> target) in two projections.

    Left: lateral projection (horizontal axis anterior <- -> posterior, vertical inferior -> superior);
    right: axial projection seen from the feet (patient right on the image left, anterior up).
    Coordinates are the plan's LPS millimetres.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.8))
    trajs = plan.get("trajectories") or []
    every = plan.get("placement") == "all"  # several needles to place: all drawn alike, named by level
    for t in (trajs if every else trajs[:3]):
        pts = [t.get("skin_entry_lps_mm"), t.get("bone_entry_lps_mm"), t.get("target_lps_mm")]
        if any(p is None for p in pts):
            continue
        xs_l = [p[1] for p in pts]  # P
        zs = [p[2] for p in pts]  # S
        xs_a = [p[0] for p in pts]  # L
        lw, alpha = (2.5, 1.0) if every or t.get("rank", 1) == 1 else (1.0, 0.5)
        name = f"{t.get('level')} {t.get('side')}" if every and t.get("level") else f"rank {t.get('rank')} ({t.get('side')})"
        ax1.plot(xs_l, zs, "-o", lw=lw, alpha=alpha, label=name)
        ax2.plot(xs_a, xs_l, "-o", lw=lw, alpha=alpha)
        ax1.annotate("skin", (xs_l[0], zs[0]), fontsize=8)
        ax1.annotate("target", (xs_l[2], zs[2]), fontsize=8)
        ax2.annotate("skin", (xs_a[0], xs_l[0]), fontsize=8)
    ax1.set_title("Lateral projection")
    ax1.set_xlabel("A  ←  y (mm)  →  P")
    ax1.set_ylabel("I  ←  z (mm)  →  S")
    ax2.set_title("Axial projection (from feet)")
    ax2.set_xlabel("R  ←  x (mm)  →  L")
    ax2.set_ylabel("A  ←  y (mm)  →  P")
    ax2.invert_yaxis()  # anterior up
    for ax in (ax1, ax2):
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(alpha=0.3)
    if trajs:
        ax1.legend(fontsize=8, loc="best")
    else:
        for ax in (ax1, ax2):
            ax.text(0.5, 0.5, "no feasible trajectory", ha="center", transform=ax.transAxes)
    fig.suptitle(f"Plan: {plan.get('protocol_name', '')} — side {plan.get('side') or '—'}", fontsize=10)
    return _png(fig)


#: Plots on the statistics page: name -> title.
PLOTS: dict[str, str] = {
    "procedures_per_year": "Procedures per year (simple / complex)",
    "pain": "Pain NRS over time (median and IQR)",
    "complications": "Adverse events by grade",
    "procedures_per_site": "Procedures per site",
    "activity_by_type": "Procedures per year by procedure type",
}  # names match osteoplan.web.backend.PLOT_FUNCS

#: statistics table name -> title on the dashboard.
TABLE_TITLES: dict[str, str] = {
    "procedures_per_year": "Procedures per year", "procedures_per_type": "Procedures per consolidation type",
    "procedures_per_site": "Procedures per site", "technical_success": "Technical success",
    "complications": "Adverse events (complication rate by grade)", "pain_over_time": "Pain NRS over time",
    "length_of_stay": "Length of stay (days)", "collar_removal_delay": "Collar removal delay (days)",
    "activity_by_type_year": "Activity per year by procedure type",
    "activity_by_type_month": "Activity per month by procedure type",
    "procedures_per_operator": "Procedures per operator",
    "outcomes_by_type": "Outcomes by procedure type (pain before / 1 month after, stay, collar)",
    "accuracy_postop_by_type": "Screw placement accuracy by procedure type (post-operative CT against the plan)",
    "accuracy_intraop_by_type": "Instrument accuracy during the procedure (trocar, guide pin) against the plan",
}
