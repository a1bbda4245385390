"""The fracture-risk section in words: one row per SINS component, for the report and the command line.

Reads the plain-JSON fracture-risk report that :meth:`osteoplan.risk.assessment.RiskReport.to_dict` writes
(and that a plan keeps in ``plan.risk``) and turns it into rows a radiologist reads: the component, the
value chosen, its points (Fisher et al., Spine 2010;35:E1221), how the value was obtained (proposed from
the CT, entered by the clinician, a clinician's override of the CT proposal, or missing), and the evidence
in words with units — e.g. "lesion median 48 HU (10th–90th percentile 20–229 HU) vs normal cancellous bone
of this vertebra 253 HU; 82 % of the lesion more than 100 HU below normal, 0 % more than 100 HU above" —
instead of the measurement dictionary (``lesion_p10_hu=20.0, fraction_below_normal=0.817``).

Every visible word comes from :mod:`osteoplan.views.i18n` (English, French). Evidence keys this module
does not know are still shown (``name value``), never dropped.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any, Mapping

from osteoplan.views.i18n import agree, t, translate_text

__all__ = ["RiskRow", "sins_rows", "sins_total_text", "risk_lines", "risk_text_lines", "COMPONENT_ORDER"]

#: SINS components in the published order (Fisher 2010).
COMPONENT_ORDER = ("location", "pain", "lesion_type", "alignment", "collapse", "posterolateral")

#: The command-line option that gives a clinical component.
_CLINICAL_OPTION = {"pain": "--pain", "alignment": "--alignment"}

#: Notes the risk stage writes, and their i18n keys.
_NOTES = {
    "C2 has no superior endplate: collapse is judged against a population height, not a neighbour; "
    "confirm on a sagittal reformat": "risk_note_collapse_c2",
    "lesion nearly isodense to normal bone: low-confidence proposal, please confirm": "risk_note_isodense",
    # said by the evidence / the "how obtained" column already: not repeated
    "from the vertebral level of the lesion (Fisher 2010)": None,
    "clinician override": None,
}


@dataclass(frozen=True)
class RiskRow:
    """One SINS component, ready to print.

    Attributes
    ----------
    component : str
        Key (``"lesion_type"``).
    label : str
        Component name in words (``"Bone lesion"``).
    value : str or None
        Canonical option (``"lytic"``); None when missing.
    value_label : str
        Option in words (``"lytic"``, ``"—"`` when missing).
    points : str
        ``"2"``, or the range still possible when missing (``"0–3"``).
    how : str
        ``"ct-proposed"``, ``"clinician"``, ``"override"`` or ``"missing"``.
    how_label : str
        ``how`` in words (``"CT-proposed"``, ``"MISSING"``).
    evidence : str
        The measurements or the basis, in words with units.
    note : str
        A caveat from the risk stage (e.g. C2 collapse is judged against a population height).
    """

    component: str
    label: str
    value: str | None
    value_label: str
    points: str
    how: str
    how_label: str
    evidence: str
    note: str


def _num(v: Any, nd: int = 0) -> str:
    try:
        return f"{float(v):.{nd}f}"
    except (TypeError, ValueError):
        return "?"


def _pct(fraction: Any) -> str:
    try:
        return f"{100.0 * float(fraction):.0f}"
    except (TypeError, ValueError):
        return "?"


def _generic(evidence: Mapping[str, Any], skip: tuple[str, ...] = ()) -> str:
    """Unknown evidence in a readable form: ``name value`` pairs (units are in the names)."""
    items = []
    for k, v in evidence.items():
        if k in skip or k == "rule":
            continue
        if isinstance(v, float):
            v = f"{v:g}"
        elif isinstance(v, (list, tuple)):
            v = ", ".join(str(x) for x in v) or "—"
        items.append(f"{k.replace('_', ' ')} {v}")
    return "; ".join(items)


def _evidence(name: str, comp: Mapping[str, Any], lang: str) -> str:
    """The evidence of one component in words."""
    ev = dict(comp.get("evidence") or {})
    src = comp.get("source")
    if comp.get("value") is None:
        if name in _CLINICAL_OPTION:
            return t("risk_ev_missing_clinical", lang).format(opt=_CLINICAL_OPTION[name])
        return t("risk_ev_missing_ct", lang)
    if src == "override":
        prop = comp.get("proposed_value")
        text = (t("risk_ev_override", lang).format(proposed=_opt(name, prop, lang)) if prop
                else t("risk_ev_clinician", lang))
        prop_ev = comp.get("proposed_evidence") or {}
        if prop_ev:
            text += " — " + t("risk_ev_ct_measured", lang) + ": " + _evidence(
                name, {"value": prop, "source": "ct-proposed", "evidence": prop_ev}, lang)
        return text
    if name == "location" and "level" in ev:
        return t("risk_ev_level", lang).format(level=ev["level"])
    if name == "lesion_type" and {"lesion_median_hu", "normal_cancellous_median_hu"} <= set(ev):
        return t("risk_ev_lesion_type", lang).format(
            median=_num(ev["lesion_median_hu"]), p10=_num(ev.get("lesion_p10_hu")), p90=_num(ev.get("lesion_p90_hu")),
            normal=_num(ev["normal_cancellous_median_hu"]), below=_pct(ev.get("fraction_below_normal")),
            above=_pct(ev.get("fraction_above_normal")), margin=_num(ev.get("margin_hu", 100.0)))
    if name == "collapse" and "anteroinferior_to_apex_mm" in ev:
        return t("risk_ev_collapse", lang).format(
            h=_num(ev["anteroinferior_to_apex_mm"], 1), ratio=_pct(ev.get("height_ratio_to_population")),
            ref=_num(ev.get("population_mean_mm"), 1), sd=_num(ev.get("population_sd_mm"), 1),
            inv=_pct(ev.get("fraction_of_anterior_column_involved")))
    if name == "posterolateral" and {"left_ml", "right_ml"} <= set(ev):
        return t("risk_ev_posterolateral", lang).format(left=_num(ev["left_ml"], 2), right=_num(ev["right_ml"], 2),
                                                        min=_num(ev.get("min_ml"), 2))
    if src == "clinician":
        extra = _generic(ev)
        return t("risk_ev_clinician", lang) + (f" ({extra})" if extra else "")
    return _generic(ev)


def _opt(name: str, value: str | None, lang: str) -> str:
    """An option in words; "none" depends on the component (pain-free, no collapse, none)."""
    if value is None:
        return "—"
    return t(f"sins_opt_{name}_none" if value == "none" else f"sins_opt_{value}", lang)


def _note(comp: Mapping[str, Any], lang: str) -> str:
    note = str(comp.get("note") or "").strip()
    if not note:
        return ""
    if note in _NOTES:
        key = _NOTES[note]
        return t(key, lang) if key else ""
    return translate_text(note, lang) or note


def sins_rows(risk: Mapping[str, Any] | None, lang: str = "en") -> list[RiskRow]:
    """The SINS components of a fracture-risk report as rows, in the published order.

    Parameters
    ----------
    risk : mapping or None
        ``RiskReport.to_dict()`` (``plan.risk``); may be an error record without ``sins``.
    lang : ``"en"`` or ``"fr"``

    Returns
    -------
    list of RiskRow
        Empty when the report has no SINS (no lesion on CT, not assessed, or an error).
    """
    sins = (risk or {}).get("sins") or {}
    comps = sins.get("components") or {}
    rows = []
    for name in [n for n in COMPONENT_ORDER if n in comps] + [n for n in comps if n not in COMPONENT_ORDER]:
        c = comps[name] or {}
        value = c.get("value")
        if value is None:
            lo, hi = (c.get("points_range") or [None, None])[:2]
            points = f"{lo}–{hi}" if lo is not None else "—"
            how = "missing"
        else:
            points = str(c.get("points"))
            how = str(c.get("source") or "clinician")
        rows.append(RiskRow(
            component=name, label=t(f"sins_comp_{name}", lang), value=value,
            value_label=_opt(name, value, lang),
            points=points, how=how, how_label=t(f"risk_how_{how}", lang), evidence=_evidence(name, c, lang),
            note=_note(c, lang)))
    return rows


def sins_total_text(risk: Mapping[str, Any] | None, lang: str = "en") -> str | None:
    """The SINS total in words, e.g. ``"5–12 / 18 (pain, alignment missing): stable or potentially unstable"``.

    Returns None when the report has no SINS.
    """
    sins = (risk or {}).get("sins")
    if not sins:
        return None
    cats = [t(f"sins_cat_{c}", lang) for c in (sins.get("possible_categories") or [])]
    if sins.get("total") is not None:
        text = f"{sins['total']} / 18{t('colon', lang)}{t('sins_cat_' + str(sins.get('category')), lang)}"
    else:
        lo, hi = (sins.get("total_range") or ["?", "?"])[:2]
        keys = [f"sins_comp_{m}" for m in sins.get("missing") or []]
        missing = ", ".join(t(k, lang).lower() for k in keys)
        said = agree("risk_missing_list", lang, keys).format(missing=missing)  # French: "douleur manquante"
        text = (f"{lo}–{hi} / 18 ({said}){t('colon', lang)}"
                + f" {t('or', lang)} ".join(cats))
    if sins.get("referral_recommended"):
        text += " — " + t("sins_referral", lang)
    return text


def risk_lines(risk: Mapping[str, Any] | None, lang: str = "en") -> list[str]:
    """The other lines of the fracture-risk report (level, lesion, cortical breach, CT rigidity, not assessed).

    The SINS lines are left out when :func:`sins_rows` has them (they are the table); translated with
    :func:`osteoplan.views.i18n.translate_text`.
    """
    r = risk or {}
    has_table = bool(sins_rows(r))
    out = []
    for x in r.get("summary") or []:
        s = str(x)
        if has_table and (s.startswith("  ") or s.startswith("SINS")):
            continue
        out.append(translate_text(s.strip(), lang) or s.strip())
    return out


def risk_text_lines(risk: Mapping[str, Any] | None, width: int = 110, indent: str = "  ") -> list[str]:
    """The fracture-risk report as plain-text lines for the command line (English).

    One line per SINS component (component, value, points, how obtained) followed by its evidence in words,
    wrapped at *width* (never cut), then the other lines (lesion, breach, rigidity, not assessed).
    """
    r = risk or {}
    rows = sins_rows(r)
    lines = []
    other = risk_lines(r)
    head = [x for x in other if not x.startswith("CT rigidity") and not x.startswith("Not assessed")]
    tail = [x for x in other if x not in head]

    def wrap(text: str, first: str, rest: str) -> list[str]:
        return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=rest,
                             break_long_words=False, break_on_hyphens=False) or [first.rstrip()]

    for x in head:
        lines += wrap(x, indent, indent + "    ")
    if rows:
        lines += wrap(f"SINS (Fisher, Spine 2010): {sins_total_text(r)}", indent, indent + "    ")
        lines.append(f"{indent}  {'component':<28}{'points':>6}  {'how obtained':<14}  value")
        for row in rows:
            line = f"{indent}  {row.label:<28}{row.points:>6}  {row.how_label:<14}  {row.value_label}"
            lines += [line] if len(line) <= width else wrap(line.strip(), indent + "  ", indent + " " * 38)
            pad = indent + " " * 4
            lines += wrap("evidence: " + row.evidence, pad, pad + "  ")
            if row.note:
                lines += wrap("note: " + row.note, pad, pad + "  ")
    for x in tail:
        lines += wrap(x, indent, indent + "    ")
    return lines
