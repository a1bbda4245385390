"""The plan report: one self-contained HTML file (images embedded) and its PDF (WeasyPrint).

All visible strings come from :mod:`osteoplan.views.i18n` (English and French). The header is
pseudonymous: a case label chosen by the user (restricted to letters, digits, ``-`` and ``_``), the
date, the software and protocol versions; never a patient name, ID or birth date (the plan holds none).
"""

from __future__ import annotations

import base64
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from osteoplan.atomic import atomic_write_bytes, atomic_write_text
from osteoplan.errors import DependencyError, InputError, OsteoplanError
from osteoplan.planning.verdict import hydrodissection_detail, severity, verdict_of
from osteoplan.views.colors import STATUS_COLORS, hex_color, structure_color
from osteoplan.export.risk_table import risk_lines, sins_rows, sins_total_text
from osteoplan.planning.image_warnings import plan_warning_lines  # the CT reader's notes, from their data
from osteoplan.views.i18n import LANGS, STRINGS, agree, covering_words, t, translate_text

#: Image names in the report, by section (names from :func:`osteoplan.views.render_all`).
REFORMAT_IMAGES = ("axial", "coronal", "sagittal", "pedicle_axial", "path_oblique", "path_oblique_orthogonal",
                   "down_path")
DRR_IMAGES = ("drr_ap_open_mouth", "drr_ap", "drr_lateral", "drr_bullseye", "drr_progression")

_TEMPLATE_DIR = Path(__file__).with_name("templates")


def safe_case_label(label: str | None) -> str:
    """A pseudonymous case label: letters, digits, ``-``, ``_`` (max 40); anything else becomes ``case``.

    Labels that look like identifiers (a run of 5+ digits, e.g. a patient ID) are refused too.
    """
    if not label:
        return "case"
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", label) or re.search(r"\d{5,}", label):
        return "case"
    return label


def _data_uri(png: bytes | str | os.PathLike) -> str:
    data = png if isinstance(png, (bytes, bytearray)) else Path(png).read_bytes()
    return "data:image/png;base64," + base64.b64encode(bytes(data)).decode("ascii")


def _fmt(v: Any, unit: str, nd: int = 1) -> str:
    if v is None:
        return "—"
    return f"{float(v):.{nd}f} {unit}".strip()


def _source_text(source: str | None, lang: str) -> str:
    """Mask source for the report; a provided mask's file name is not shown (it may be patient-derived).

    A source the translation table knows (``source_<name>``: ``phantom-truth``, ``classical``...) is written in
    *lang*; the parts of a combined source (``"classical+provided:..."``) each; an unknown one as it is.
    """
    if not source:
        return "—"
    parts = []
    for part in source.split("+"):
        if part.startswith("provided"):
            parts.append(t("provided_mask", lang))
        else:
            parts.append(t(f"source_{part}", lang) if f"source_{part}" in STRINGS else part)
    return " + ".join(dict.fromkeys(parts))


def image_caption(name: str, lang: str = "en", path: Any = None) -> str:
    """Caption of a report image: its title and its orientation in words.

    The orientation is computed from the same plane / C-arm geometry the image is drawn with
    (:func:`osteoplan.views.reformat.view_plane`, :func:`osteoplan.views.drr.standard_geometry`), so the
    caption cannot disagree with the picture: sagittal and lateral "anterior left, head up"; axial, coronal
    and AP "patient left on image right". Views along the path need the path (``path``, a
    :class:`~osteoplan.views.geometry.PathSpec`, or the list of the plan's paths for the per-needle images
    ``drr_bullseye_2``...); without it they are called oblique (the letters at the image edges give the
    directions). Per-needle images name their needle (``"Needle 2 (L1 right)"``).
    """
    import numpy as np

    from osteoplan.views import split_image_name
    from osteoplan.views.drr import standard_geometry
    from osteoplan.views.reformat import PEDICLE_VIEWS, STANDARD_AXES, view_plane
    from osteoplan.views.render import orientation_caption

    paths = list(path) if isinstance(path, (list, tuple)) else ([path] if path is not None else [])
    view, number = split_image_name(name) if name not in REFORMAT_IMAGES + DRR_IMAGES else (name, 1)
    one = paths[number - 1] if 0 < number <= len(paths) else None
    reformat = view in REFORMAT_IMAGES or view in PEDICLE_VIEWS
    title = t(f"view_{view}" if reformat else view, lang)
    if len(paths) > 1 and view in STANDARD_AXES:  # centred on the needles, not on one target
        title = t(f"view_{view}_needles", lang)
    if len(paths) > 1 and one is not None and (view.startswith("drr_bullseye") or (reformat and view not in
                                                                                    STANDARD_AXES)):
        title += f" — {needle_title(one, number, lang)}"
    orient = t("orient_oblique", lang)
    if view in STANDARD_AXES:
        orient = orientation_caption(*STANDARD_AXES[view], lang=lang)
    elif view in ("drr_ap_open_mouth", "drr_ap", "drr_lateral"):
        geo = standard_geometry(view[4:], np.zeros(3))
        orient = orientation_caption(geo.detector_u, geo.detector_v, lang=lang)
    elif one is not None and reformat:
        plane = view_plane(view, one)
        orient = orientation_caption(plane.u, plane.v, lang=lang)
    elif one is not None and view in DRR_IMAGES:
        v = view[4:]
        geo = standard_geometry(v, one.target_lps_mm, one.direction,
                                beam_direction=getattr(one, "beam_directions", {}).get(v))
        orient = orientation_caption(geo.detector_u, geo.detector_v, lang=lang)
    return f"{title} — {orient}"


def needle_title(item: Any, number: int, lang: str = "en") -> str:
    """``"Needle 2 (L1 right)"`` for a trajectory or PathSpec with a level and side; ``"Needle 2"`` without."""
    level, side = getattr(item, "level", None), getattr(item, "side", None)
    where = " ".join(x for x in (level, t(side, lang) if side else None) if x)
    return f"{t('needle', lang)} {number}" + (f" ({where})" if where else "")


def _caption_path(plan: Any):
    """The PathSpecs the images were drawn for (the placed trajectories, else the near miss), or None."""
    from osteoplan.views.geometry import near_miss_pathspec, pathspecs_from_plan

    try:
        return pathspecs_from_plan(plan) if plan.best is not None else near_miss_pathspec(plan)
    except OsteoplanError:
        return None


#: Nominal outer diameters (mm) of needle gauges, ISO 9626:2016 Table 1 (regular-wall tubing).
NEEDLE_GAUGE_MM = {8: 4.19, 10: 3.40, 11: 3.05, 12: 2.77, 13: 2.41, 14: 2.11, 15: 1.83, 16: 1.65}


def needle_gauge(diameter_mm: float | None, tol_mm: float = 0.03) -> int | None:
    """The gauge (G) whose nominal outer diameter is within *tol_mm* of *diameter_mm* (ISO 9626), else None."""
    if diameter_mm is None:
        return None
    best = min(NEEDLE_GAUGE_MM, key=lambda g: abs(NEEDLE_GAUGE_MM[g] - diameter_mm))
    return best if abs(NEEDLE_GAUGE_MM[best] - diameter_mm) <= tol_mm else None


def needle_rows(traj: Any, number: int, n_placed: int, lang: str = "en", pedicle_expected: bool = False) -> dict[str, Any]:
    """What the report says about one trajectory to place: title, points, and the rows of its measures.

    Rows appear only for what the plan measured (a dens screw plan has no pedicle passage, a needle no screw):
    one code path for every procedure, reading the trajectory's fields. *pedicle_expected* (a transpedicular route and
    a pedicle at this level and side in the plan's landmarks) makes an unmeasured pedicle passage read
    "not assessed" rather than disappear.

    Returns
    -------
    dict
        ``title`` (None for a plan with one path), ``points`` [(key, (x, y, z), voxel text)], ``rows``
        [(label, value text)], ``pedicle`` rows, ``tip`` rows, ``breach`` (True when the pedicle is breached).
    """
    points = [(key, p, "(" + ", ".join(f"{v:.1f}" for v in vx) + ")")
              for key, p, vx in (("skin_entry", traj.skin_entry_lps_mm, traj.skin_entry_voxel_kji),
                                 ("bone_entry", traj.bone_entry_lps_mm, traj.bone_entry_voxel_kji),
                                 ("target", traj.target_lps_mm, traj.target_voxel_kji))]
    screw = traj.screw is not None
    rows = [(t("depth_skin_bone", lang), _fmt(traj.depth_skin_to_bone_mm, "mm")),
            (t("depth_bone_target", lang), _fmt(traj.depth_bone_to_target_mm, "mm")),
            (t("path_length", lang), _fmt(traj.depth_total_mm, "mm")),
            (t("angle_cc", lang), _fmt(traj.angle_craniocaudal_deg, "°")),
            (t("angle_ml", lang), _fmt(traj.angle_mediolateral_deg, "°")),
            (t("containment" if screw else "containment_bone", lang), _fmt(traj.containment_min_margin_mm, "mm")),
            (t("soft_tissue_depth", lang), _fmt(traj.soft_tissue_depth_mm, "mm")),
            (t("lesion_crossing" if screw else "lesion_crossing_path", lang), _fmt(traj.lesion_crossing_mm, "mm"))]
    if traj.needle_diameter_mm is not None:
        g = needle_gauge(traj.needle_diameter_mm)
        rows.insert(0, (t("needle_gauge", lang), (f"{g} G, " if g else "") + _fmt(traj.needle_diameter_mm, "mm", 2)
                        + " (ISO 9626)" * bool(g)))
    pedicle = []
    if pedicle_expected and traj.pedicle_margin_mm is None and traj.pedicle_breach_grade is None:
        na = t("status_not_assessed", lang).upper()
        pedicle = [(t("pedicle_margin", lang), na), (t("pedicle_grade", lang), na)]
    elif traj.pedicle_margin_mm is not None or traj.pedicle_breach_grade is not None:
        wall = traj.pedicle_breach_wall
        pedicle = [(t("pedicle_margin", lang), _fmt(traj.pedicle_margin_mm, "mm")),
                   (t("pedicle_grade", lang), traj.pedicle_breach_grade or "—"),
                   (t("pedicle_wall", lang), t(f"wall_{wall}", lang) if wall else "—")]
    tip = []
    if traj.tip_anterior_fraction is not None:
        tip.append((t("tip_anterior_fraction", lang), f"{100 * traj.tip_anterior_fraction:.0f} %"))
    if traj.tip_from_midline_mm is not None:
        tip.append((t("tip_from_midline", lang), f"{traj.tip_from_midline_mm:+.1f} mm"))
    if traj.tip_below_superior_endplate_mm is not None:
        tip.append((t("tip_below_endplate", lang), _fmt(traj.tip_below_superior_endplate_mm, "mm")))
    # the dens screw against the dens: every figure the CLI prints, so the report does not hide a short screw
    for key, value, unit in (("tip_to_cortex", traj.tip_to_cortex_mm, "mm"),
                             ("tip_below_apex", traj.tip_below_apex_mm, "mm"),
                             ("tip_anterior_of_axis", traj.tip_anterior_of_axis_mm, "mm"),
                             ("angle_to_dens_axis", traj.angle_to_dens_axis_deg, "°"),
                             ("bone_entry_above_corner", traj.bone_entry_above_corner_mm, "mm")):
        if value is not None:
            tip.append((t(key, lang), _fmt(value, unit)))
    if traj.thread_crosses_waist is not None:
        tip.append((t("thread_crosses_waist", lang),
                    t("thread_waist_yes" if traj.thread_crosses_waist else "thread_waist_no", lang)))
    return {"title": needle_title(traj, number, lang) if n_placed > 1 else None, "traj": traj, "points": points,
            "rows": rows, "pedicle": pedicle, "tip": tip, "guidance": traj.guidance,
            "breach": traj.pedicle_breach_grade not in (None, "A"),
            "clearances": clearance_rows(None, lang, traj)}


def hydrodissection_cell(traj: Any, lang: str = "en") -> str:
    """The hydrodissection cell of a trajectory in the "other plans" table, with the main verdict's rule.

    "yes" when a displaceable structure needs a push; "no" only when every displaceable structure the trajectory
    checks was measured; otherwise the displaceable structures not assessed (or not assessable) on this CT are
    named: a carotid nobody saw may need hydrodissection (:func:`osteoplan.planning.verdict._hydro_sentence`).
    """
    from osteoplan.planning.verdict import UNASSESSED_STATUSES, structure_names  # the verdict's own rule and wording

    unassessed = [c.structure for c in traj.clearances if c.category == "displaceable" and c.status in UNASSESSED_STATUSES]
    head = t("yes", lang) if traj.hydrodissection_required else ""
    if not unassessed:
        return head or t("no", lang)
    tail = agree("hydro_alt_not_assessed", lang, unassessed).format(names=structure_names(unassessed, lang))
    return f"{head}{t('semicolon', lang)}{tail}" if head else tail


#: the precision of the scores in the "other plans" table (the plan stores them rounded to 3 decimals)
SCORE_FORMAT = "%.3f"


def ranking_rows(plan: Any, lang: str = "en") -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of the "other plans" table, the first-ranked plan first, and a note for every tie.

    The score is the search's objective (:func:`osteoplan.planning.search.assess`: penalties minus rewards), and
    the search ranks the feasible candidates by ascending score (``np.argsort``): lower is better. Scores equal to
    the precision shown (:data:`SCORE_FORMAT`) are a tie: their order is the search's alone (an unrounded difference
    below the precision, or for exactly equal scores the order of the candidates in the search), which the note says.

    Parameters
    ----------
    plan : osteoplan.planning.model.Plan
    lang : ``"en"`` or ``"fr"``

    Returns
    -------
    rows : list of dict
        ``traj`` (Trajectory), ``chosen`` (bool: the plan placed), ``score`` (text); empty when there is no
        other plan to compare.
    ties : list of str
        One sentence per group of equal displayed scores (two plans or more).
    """
    placed = list(plan.placed)
    if plan.placement == "all" and placed:
        return [], []
    trajs = list(plan.trajectories)
    if len(trajs) < 2:
        return [], []
    rows = [{"traj": tr, "chosen": bool(placed) and tr is placed[0], "score": SCORE_FORMAT % tr.score}
            for tr in trajs]
    groups: dict[str, list[int]] = {}
    for r in rows:
        groups.setdefault(r["score"], []).append(r["traj"].rank)
    ties = []
    for score, ranks in groups.items():
        if len(ranks) > 1:
            names = ", ".join(f"#{k}" for k in ranks[:-1]) + f" {t('and', lang)} #{ranks[-1]}"
            ties.append(t("score_tie", lang).format(ranks=names, score=score))
    return rows, ties


def procedure_title(plan: Any, lang: str = "en") -> str:
    """The procedure and level(s) of the plan for the report title, e.g. ``"Vertebroplasty — L1-L3"``.

    The procedure's name comes from ``plan.procedure`` (its protocol name when the procedure is unknown to the
    translation table); plans before schema 1.2 name their protocol there.
    """
    proc = getattr(plan, "procedure", None) or getattr(plan, "protocol_name", None)
    label = t(f"procedure_{proc}", lang) if proc else ""
    if label == f"procedure {proc}".replace("_", " "):  # not in the table: the name as the plan gives it
        label = str(proc)
    route = _protocol_route(getattr(plan, "protocol_name", None))
    if route and f"route_{route}" in STRINGS:  # the route, so two routes to one procedure are told apart
        label = f"{label}, {t(f'route_{route}', lang)}"
    level = getattr(plan, "level", None)
    return " — ".join(x for x in (label, level) if x)


def _protocol_route(name: str | None) -> str | None:
    """The route of the shipped protocol *name* (``route`` of its file), or None when it cannot be loaded (a plan
    made with a protocol file that is not shipped: the title then names the procedure only)."""
    if not name:
        return None
    from osteoplan.planning.protocol import load_protocol

    try:
        return load_protocol(name).route
    except Exception:  # noqa: BLE001 - any unknown or unreadable protocol: no route in the title, never a failure
        return None


def leak_alerts(plan: Any, lang: str = "en") -> list[str]:
    """Loud lines for every breached wall with a leak risk (a breached posterior wall: epidural leak risk)."""
    out = []
    cement = getattr(plan, "cement", None)
    for w in (cement.walls if cement is not None else ()):
        if w.breached and w.leak_risk:
            head = t("posterior_wall_alert", lang) if "posterior wall" in w.neighbour.lower() else \
                t("leak_walls", lang).upper()
            out.append(f"{head}: {translate_text(w.neighbour, lang)}" + (f" ({translate_text(w.note, lang)})"
                                                                          if w.note else ""))
    return out


def risk_applies(plan: Any) -> bool:
    """True when the fracture-risk assessment is about a level of this plan (or the plan names no level)."""
    risk = getattr(plan, "risk", None)
    if not risk:
        return False
    level = getattr(plan, "level", None)
    if level is None or risk.get("level") is None:
        return True
    levels = {tr.level for tr in plan.trajectories if tr.level} | {level}
    return str(risk.get("level")) in levels


#: Statuses shouted in capitals in the report (what the reader must act on).
_LOUD_STATUSES = ("fail", "not_assessed", "not_assessable")


def covering_structure(check: Any) -> str | None:
    """The structure whose measured clearance covers a ``covered`` check, or ``"containment"``; None if unknown.

    From :data:`osteoplan.planning.planner.COVERED_BY` (the cord by the spinal canal, a vertebral artery by its
    bony canal), else from the check's note (``"...: see spinal_canal"``; ``"covered by containment"`` when the
    instrument stays inside the target bone and the structure lies outside it).
    """
    from osteoplan.planning.planner import COVERED_BY

    if getattr(check, "status", None) != "covered":
        return None
    note = getattr(check, "note", None) or ""
    if "covered by containment" in note:
        return "containment"
    m = re.search(r"see ([a-z0-9_]+)\s*$", note)
    if m:
        return m.group(1)
    cover = COVERED_BY.get(check.structure)
    return cover[0] if cover is not None else None


def _note_text(check: Any) -> str:
    """A check's note without the ``": see <structure key>"`` tail of a covered check (its badge names it)."""
    note = check.note or ""
    return re.sub(r":\s*see [a-z0-9_]+\s*$", "", note) if check.status == "covered" else note


def _note_for(check: Any, lang: str) -> str:
    """A check's note in *lang* (:func:`_note_text`, translated); the bare "not segmented" agrees, in French, with the
    structure's name ("non segmentée" for an artery)."""
    note = _note_text(check)
    if note == "not segmented":
        return agree("not_segmented", lang, check.structure)
    return translate_text(note, lang)


def status_label(check: Any, lang: str = "en") -> str:
    """The word(s) of a clearance check's status badge; a covered structure names what covers it.

    ``"covered by the spinal canal"``, ``"covered by its bony canal"``, ``"covered by containment in bone"``;
    failures and unassessed structures in capitals.
    """
    status = check.status
    if status == "covered":
        by = covering_structure(check)
        if by is None:
            return t("status_covered", lang)
        return agree("status_covered_by", lang, check.structure).format(by=covering_words(by, lang))
    label = agree(f"status_{status}", lang, check.structure)  # French: agrees with the structure's name
    return label.upper() if status in _LOUD_STATUSES else label


def clearance_rows(plan: Any, lang: str = "en", traj: Any = None) -> list[dict[str, Any]]:
    """Rows of the clearance table for *traj* (default the best trajectory, or the near miss), plus the
    structures the plan lists as not assessed.

    Every structure the plan lists as not assessed gets a row with status ``not_assessed``, even
    when the planner did not emit a check for it. ``plan`` may be None when *traj* is given (its checks only).
    """
    best = traj if traj is not None else plan.best
    checks = list(best.clearances) if best is not None else []
    if best is None and plan.infeasibility is not None and plan.infeasibility.best_near_miss is not None:
        checks = list(plan.infeasibility.best_near_miss.clearances)
    rows = []
    seen = set()
    for c in checks:
        seen.add(c.structure)
        # distances are computed up to a cap: the value is a lower bound, shown as "≥ x mm"
        capped = bool(c.note) and c.note.startswith("at least this much")
        rows.append({
            "structure": c.structure, "label": t(c.structure, lang), "color": hex_color(structure_color(c.structure)),
            "category": t(f"category_{c.category}", lang),
            "margin": _fmt(c.margin_mm, "mm"),
            "clearance": ((("≥ " if capped else "") + _fmt(c.clearance_mm, "mm")) if c.segmented else "—"),
            "status": c.status, "status_label": status_label(c, lang),
            "displacement": _fmt(c.displacement_needed_mm, "mm"), "displacement_note": None,
            "source": _source_text(c.source, lang) + (f" ({_note_for(c, lang)})" if c.note and not capped else ""),
        })
    # the airway holds its parts: a push measured on the airway and on the part holding its closest point is one
    # push (counted once in the hydrodissection table): its row says so
    air = next((c for c in checks if c.structure == "airway" and c.status == "hydrodissection"), None)
    part = next((c for c in checks if air is not None and c.structure in AIRWAY_PARTS and c.status == "hydrodissection"
                 and _same_push(c.clearance_mm, air.clearance_mm, c.displacement_needed_mm,
                                air.displacement_needed_mm)), None)
    if part is not None:
        for r in rows:
            if r["structure"] == "airway":
                r["displacement_note"] = t("hydro_same_push_as", lang).format(part=t(part.structure, lang))
    for s in (plan.not_assessed if plan is not None else ()):
        if s in seen:
            continue
        rows.append({"structure": s, "label": t(s, lang), "color": hex_color(structure_color(s)), "category": "—",
                     "margin": "—", "clearance": "—", "status": "not_assessed",
                     "status_label": agree("status_not_assessed", lang, s).upper(), "displacement": "—",
                     "displacement_note": None, "source": "—"})
    return rows


#: Parts of the airway (pharynx, larynx, trachea): the airway mask holds them, so its clearance is that of its
#: closest part (osteoplan.planning.verdict names the parts, not the whole, in its sentence too).
AIRWAY_PARTS = ("pharynx", "larynx", "trachea")


def _same_push(c1, c2, d1, d2, tol_mm: float = 0.05) -> bool:
    """True when two clearances and two displacements (mm) are the same measurement (within *tol_mm*)."""
    return all(x is not None and y is not None and abs(float(x) - float(y)) <= tol_mm for x, y in ((c1, c2), (d1, d2)))


def hydrodissection_rows(plan: Any, lang: str = "en", tol_mm: float = 0.05) -> list[dict[str, Any]]:
    """Rows of the hydrodissection table: one per displacement, the airway folded into its closest part.

    The planner measures the airway and its parts (pharynx, larynx, trachea) each; the airway holds its parts,
    so when its closest point lies in a part that needs a push too, both report the same displacement from the
    same voxels. That push is reported once, on the part's row, which says it is the airway's closest point too.
    An airway whose clearance matches no listed part (its closest point outside the segmented parts) keeps its
    own row.

    Parameters
    ----------
    plan : Plan
    lang : ``"en"`` or ``"fr"``
    tol_mm : float
        Clearances and displacements within this of each other are the same measurement (rounding of the plan).

    Returns
    -------
    list of dict
        ``structure``, ``label``, ``displacement``, ``clearance``, ``margin`` (formatted), in the plan's order.
    """
    hd = getattr(plan, "hydrodissection", None)
    items = list(getattr(hd, "structures", None) or ())

    def same(a, b) -> bool:
        return _same_push(a.clearance_mm, b.clearance_mm, a.displacement_needed_mm, b.displacement_needed_mm, tol_mm)

    airway = next((h for h in items if h.structure == "airway"), None)
    part = next((h for h in items if h.structure in AIRWAY_PARTS and airway is not None and same(h, airway)), None)
    rows = []
    for h in items:
        if part is not None and h is airway:
            continue
        label = t(h.structure, lang)
        if part is not None and h is part:
            label += " " + t("hydro_airway_part", lang)
        rows.append({"structure": h.structure, "label": label, "displacement": _fmt(h.displacement_needed_mm, "mm"),
                     "clearance": _fmt(h.clearance_mm, "mm"), "margin": _fmt(h.margin_mm, "mm")})
    return rows


def build_report_html(plan: Any, images: Mapping[str, bytes | str | os.PathLike] | None = None, *,
                      lang: str = "en", case_label: str | None = None, generated_utc: str | None = None) -> str:
    """Render the report as one self-contained HTML string (images embedded as base64 PNG).

    Parameters
    ----------
    plan : osteoplan.planning.model.Plan
        The plan to report.
    images : mapping name -> PNG bytes or path, optional
        Names from :func:`osteoplan.views.render_all` (``axial``, ``drr_lateral``, ``view_3d``...).
    lang : ``"en"`` or ``"fr"``
    case_label : str, optional
        Pseudonymous case label (see :func:`safe_case_label`).
    generated_utc : str, optional
        Timestamp shown in the header (default: now, UTC).

    Raises
    ------
    InputError
        Unknown language.
    """
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    if lang not in LANGS:
        raise InputError(f"Unknown report language '{lang}'; use one of {', '.join(LANGS)}.")
    images = dict(images or {})
    env = Environment(loader=FileSystemLoader(str(_TEMPLATE_DIR)), autoescape=select_autoescape(["html", "j2"]))
    tmpl = env.get_template("report.html.j2")
    best = plan.best
    placed = list(plan.placed)
    from osteoplan.views.geometry import has_pedicle_landmark

    transpedicular = plan.route is not None and plan.route.route == "transpedicular"  # the protocol's route
    needles = [needle_rows(tr, n, len(placed), lang, transpedicular and has_pedicle_landmark(plan, tr.level, tr.side))
               for n, tr in enumerate(placed, start=1)]
    for nd in needles:  # the not-assessed structures of the plan under every needle's table
        nd["clearances"] = clearance_rows(plan, lang, nd["traj"])
    points = needles[0]["points"] if needles else []
    leak_text = "—"
    if plan.cement is not None:
        breached = [w for w in plan.cement.walls if w.breached and w.leak_risk]
        leak_text = ", ".join(t(w.neighbour, lang) for w in breached) if breached else t("leak_none", lang)
        if plan.cement.leak_risk is None:
            leak_text = agree("status_not_assessed", lang, gender="fp")  # the breached walls (les parois)
    ct = plan.ct
    fmt = ct.source_format
    fmt_text = t(f"ct_format_{fmt}", lang) if fmt and f"ct_format_{fmt}" in STRINGS else fmt  # "phantom": "fantôme"
    ct_text = f"{ct.shape_kji[0]}×{ct.shape_kji[1]}×{ct.shape_kji[2]}, " + \
        "×".join(f"{s:.2f}" for s in ct.spacing_mm) + " mm" + (f", {fmt_text}" if fmt else "")
    guidance = (best.guidance if best is not None and best.guidance is not None else plan.guidance)
    verdict = verdict_of(plan)  # the plan's one verdict, printed as it is (computed now for schema-1.0 plans)
    details = verdict.details_fr if lang == "fr" else verdict.details_en
    cap_path = _caption_path(plan) if images else None
    from osteoplan.views import split_image_name

    per_needle: dict[int, list] = {}
    reformats, drrs = [], []
    for n in images:
        if n == "view_3d":
            continue
        entry = (n, _data_uri(images[n]), image_caption(n, lang, cap_path))
        base, number = split_image_name(n) if len(placed) > 1 else (n, 0)
        if len(placed) > 1 and number and base != n:
            per_needle.setdefault(number, []).append(entry)
        elif n.startswith("drr_"):
            drrs.append(entry)
        else:
            reformats.append(entry)
    per_level = []
    if plan.cement is not None and plan.cement.per_level_ml:
        per_level = [(lv, f"{lo:.1f}–{hi:.1f} mL") for lv, (lo, hi) in plan.cement.per_level_ml.items()]
    from osteoplan.locale_fmt import localize_html  # French: decimal comma in the text (never in the data)

    ranking = ranking_rows(plan, lang)
    return localize_html(tmpl.render(
        verdict=verdict, verdict_severity=severity(verdict),
        verdict_details=[translate_text(d, lang) for d in details],  # planner sentences kept in English: translated
        hydro_sentence=hydrodissection_detail(verdict, lang),
        t=lambda k: t(k, lang), lang=lang, plan=plan, best=best, points=points,
        case_label=safe_case_label(case_label) if safe_case_label(case_label) != "case" else t("case_default", lang),
        generated=generated_utc or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        side=t(plan.side, lang) if plan.side else "—", ct_text=ct_text,
        mm=lambda v: _fmt(v, "mm"), deg=lambda v: _fmt(v, "°"), ml=lambda v: _fmt(v, "mL"),
        clearance_rows=clearance_rows(plan, lang), hydro_rows=hydrodissection_rows(plan, lang),
        assessed=", ".join(t(s, lang) for s in plan.assessed) or t("no_structure", lang),
        not_assessed=", ".join(t(s, lang) for s in plan.not_assessed) or t("no_structure", lang),
        agree=lambda k, g: agree(k, lang, gender=g),
        leak_text=leak_text, guidance=guidance,
        warnings=plan_warning_lines(plan, lang, None, lambda w: translate_text(w, lang)),  # reader notes from data
        tr=lambda text: translate_text(text, lang),
        any_capped=any(r["clearance"].startswith("≥") for r in clearance_rows(plan, lang)),
        risk_lines=risk_lines(plan.risk, lang), risk_rows=sins_rows(plan.risk, lang),
        risk_total=sins_total_text(plan.risk, lang),
        alternatives=[tr for tr in plan.trajectories if tr not in placed] if placed else list(plan.trajectories[1:]),
        ranking=ranking[0], ranking_ties=ranking[1],
        hydro_cell=lambda tr: hydrodissection_cell(tr, lang),
        needles=needles, procedure=procedure_title(plan, lang), leak_alerts=leak_alerts(plan, lang),
        per_level=per_level, risk_shown=risk_applies(plan) or not plan.risk,
        risk_level=(plan.risk or {}).get("level"),
        needle_images=[(needle_title(placed[k - 1], k, lang), v) for k, v in sorted(per_needle.items())
                       if 0 < k <= len(placed)],
        drr_note_key="drr_note" if any(n == "drr_ap_open_mouth" for n in images) else "drr_note_generic",
        colors={k: hex_color(v) for k, v in STATUS_COLORS.items()},
        reformats=reformats, drrs=drrs,
        view3d=_data_uri(images["view_3d"]) if "view_3d" in images else None,
    ), lang)


def html_to_pdf(html: str) -> bytes:
    """PDF bytes of an HTML string (WeasyPrint).

    Raises
    ------
    DependencyError
        WeasyPrint or its system libraries (Pango) are missing.
    """
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: missing Pango/cairo libraries
        raise DependencyError(f"PDF output needs WeasyPrint and its system libraries ({type(exc).__name__}); "
                              "install them (see README) or use --no-pdf.") from None
    return HTML(string=html, base_url=str(_TEMPLATE_DIR)).write_pdf()


def pdf_pages_to_png(pdf: bytes, scale: float = 1.5) -> list[bytes]:
    """Render each PDF page to PNG bytes (pypdfium2), to look at or test the PDF."""
    import io

    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    out = []
    for i in range(len(doc)):
        img = doc[i].render(scale=scale).to_pil()
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out.append(buf.getvalue())
    doc.close()
    return out


def write_report(out_dir: str | os.PathLike, plan: Any, images: Mapping[str, Any] | None = None, *,
                 lang: str = "en", case_label: str | None = None, pdf: bool = True,
                 basename: str = "report") -> dict[str, Path]:
    """Write ``report.html`` (and ``report.pdf``) into *out_dir*, atomically.

    Returns
    -------
    dict
        ``{"html": path, "pdf": path}`` (``pdf`` only when written).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html = build_report_html(plan, images, lang=lang, case_label=case_label)
    written = {"html": out / f"{basename}.html"}
    atomic_write_text(written["html"], html)
    if pdf:
        written["pdf"] = out / f"{basename}.pdf"
        atomic_write_bytes(written["pdf"], html_to_pdf(_linked_images(html, images)))
    return written


def _linked_images(html: str, images: Mapping[str, Any] | None) -> str:
    """*html* with the embedded images that are PNG files on disk referred to by their ``file://`` URL instead.

    The same page for WeasyPrint (it reads the same PNG bytes), without parsing megabytes of base64 text.
    """
    for src in (images or {}).values():
        if isinstance(src, (bytes, bytearray)) or not Path(src).is_file():
            continue
        html = html.replace(f'src="{_data_uri(src)}"', f'src="{Path(src).resolve().as_uri()}"')
    return html
