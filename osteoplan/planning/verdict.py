"""The plan's one verdict: computed once from the plan's fields, printed as it is by every face.

:func:`compute_verdict` turns a :class:`~osteoplan.planning.model.Plan` into a
:class:`~osteoplan.planning.model.Verdict` (code, English and French headline, details, exit status).
The planner stores it in :attr:`Plan.verdict`; the command line (``RESULT:`` line), the report's
first page (HTML and PDF), the DICOM SR and the web case page print that text and never decide
feasibility themselves. Plans written before the verdict existed (schema 1.0) get it through
:func:`verdict_of`.

Codes, in priority order (the first that applies wins; exit status of ``osteoplan plan`` in brackets)
-----------------------------------------------------------------------------------------------------
1. ``route_not_assessable`` [5]: ``plan.route`` is given and not assessable (the CT does not show the technique's
   route, e.g. the anterior route's skin entry lies below the CT); no other route is substituted.
2. ``no_feasible_path`` [4]: the plan has no trajectory.
3. ``not_cleared`` [3]: something must be confirmed first (``Plan.confirm_first``: e.g. vertebra levels named with
   low confidence), or the best trajectory (every trajectory to place, for a plan with several needles) has a structure of the protocol that was not assessed (status
   ``not_assessed`` or ``not_assessable``; hard or displaceable: a carotid nobody saw is not clear), or a check that
   fails its margin (a plan inconsistent with its own checks is never called feasible).
4. ``feasible_hydrodissection`` [0]: the best trajectory needs displaceable structures pushed (checks with status
   ``hydrodissection``, from which the planner sets ``hydrodissection_required``); the headline names each
   structure and how far.
5. ``feasible`` [0]: otherwise.

Exit statuses 1 (internal error), 2 (bad input) and 130 (interrupted) belong to the command line.
A structure whose status is ``covered`` (the spinal cord inside the segmented spinal canal, whose
clearance covers it) counts as assessed.

The structure names are the words of :mod:`osteoplan.views.i18n` (kept equal by a test); they are
repeated here because an engine package does not import ``views``.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from osteoplan.planning.model import ClearanceCheck, Plan, Verdict

__all__ = ["EXIT_CODES", "SEVERITY", "compute_verdict", "hydrodissection_detail", "severity", "structure_name",
           "verdict_of"]

#: ``osteoplan plan`` exit status per verdict code (documented in the CLI help and the README).
EXIT_CODES: dict[str, int] = {"feasible": 0, "feasible_hydrodissection": 0, "not_cleared": 3,
                              "no_feasible_path": 4, "route_not_assessable": 5}

#: How a face colours the verdict: ``ok`` green (a plan to use), ``warn`` amber (a path exists but cannot be
#: relied on as it is, or the CT cannot answer: action needed), ``ko`` red (no path on this anatomy).
SEVERITY: dict[str, str] = {"feasible": "ok", "feasible_hydrodissection": "ok", "not_cleared": "warn",
                            "route_not_assessable": "warn", "no_feasible_path": "ko"}

#: Statuses that mean "this structure was not measured on this path".
UNASSESSED_STATUSES = ("not_assessed", "not_assessable")

#: Structure names (same words as osteoplan.views.i18n.STRINGS; a test keeps them equal).
_NAMES: dict[str, tuple[str, str]] = {
    "spinal_canal": ("spinal canal", "canal rachidien"),
    "spinal_cord": ("spinal cord", "moelle épinière"),
    "vertebral_artery_left": ("left vertebral artery", "artère vertébrale gauche"),
    "vertebral_artery_right": ("right vertebral artery", "artère vertébrale droite"),
    "vertebral_artery_canal_left": ("left vertebral artery canal (foramen transversarium)",
                                    "canal de l'artère vertébrale gauche (foramen transversaire)"),
    "vertebral_artery_canal_right": ("right vertebral artery canal (foramen transversarium)",
                                     "canal de l'artère vertébrale droite (foramen transversaire)"),
    "common_carotid_artery_left": ("left common carotid", "carotide commune gauche"),
    "common_carotid_artery_right": ("right common carotid", "carotide commune droite"),
    "internal_carotid_artery_left": ("left internal carotid", "carotide interne gauche"),
    "internal_carotid_artery_right": ("right internal carotid", "carotide interne droite"),
    "internal_jugular_vein_left": ("left internal jugular vein", "veine jugulaire interne gauche"),
    "internal_jugular_vein_right": ("right internal jugular vein", "veine jugulaire interne droite"),
    "airway": ("airway", "voies aériennes"),
    "trachea": ("trachea", "trachée"),
    "larynx": ("larynx", "larynx"),
    "pharynx": ("pharynx", "pharynx"),
    "esophagus": ("oesophagus", "œsophage"),
    "aorta": ("aorta", "aorte"),
    "inferior_vena_cava": ("inferior vena cava", "veine cave inférieure"),
    "segmental_artery": ("segmental arteries", "artères segmentaires"),
    "lung": ("lung", "poumon"),
    "mandible": ("mandible", "mandibule"),
    "other_bone": ("other bone on the way", "autre os sur le trajet"),
    "brainstem": ("brainstem", "tronc cérébral"),
    "vertebrae_C1": ("C1 (atlas)", "C1 (atlas)"),
    "vertebrae_C2": ("C2 (axis)", "C2 (axis)"),
    "vertebrae_C3": ("C3", "C3"),
}

#: Vessel families named as a group when two or more of their members share a statement.
_FAMILIES: tuple[tuple[str, str, str], ...] = (
    (r"(common|internal|external)_carotid_artery_(left|right)", "carotid arteries", "carotides"),
    (r"internal_jugular_vein_(left|right)", "jugular veins", "veines jugulaires"),
    (r"vertebral_artery_(left|right)", "vertebral arteries", "artères vertébrales"),
    (r"vertebral_artery_canal_(left|right)", "vertebral artery canals (foramina transversaria)",
     "canaux des artères vertébrales (foramens transversaires)"),
)

#: The carotid sheath's vessels: the jugulo-carotid space is opened by hydrodissection in the published
#: technique (clinical primer, step 1; Grange et al. 2021; PMID 33388865).
_SHEATH = ("carotid", "jugular")

#: Route names and what to do when the CT does not show the route. The anterior odontoid route's skin
#: entry lies low on the anterolateral neck: the planning CT must reach about C6-T1 (clinical primer).
#: Route names (EN, FR) in the verdict's headline and the planner's route messages.
ROUTE_NAMES: dict[str, tuple[str, str]] = {"anterior": ("ANTERIOR", "ANTÉRIEURE"), "lateral": ("LATERAL", "LATÉRALE"),
                                           "posterolateral": ("POSTEROLATERAL", "POSTÉROLATÉRALE"),
                                           "transpedicular": ("TRANSPEDICULAR", "TRANSPÉDICULAIRE"),
                                           "parapedicular": ("PARAPEDICULAR", "PARAPÉDICULAIRE")}
_ROUTES = ROUTE_NAMES
_ROUTE_ACTIONS: dict[str, tuple[str, str]] = {"anterior": ("extend the scan to C6-T1",
                                                           "étendre l'acquisition jusqu'à C6-T1")}
_ROUTE_ACTION_DEFAULT = ("extend the scan to show the whole route", "étendre l'acquisition à tout le trajet")


def structure_name(key: str, lang: str = "en") -> str:
    """The reader's name of a structure key (``"spinal_cord"`` -> ``"spinal cord"``), English or French.

    Unknown keys are shown with spaces for underscores, never dropped.
    """
    pair = _NAMES.get(key)
    if pair is None:
        return key.replace("_", " ")
    return pair[1] if lang == "fr" else pair[0]


def _join(items: Sequence[str], lang: str) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    last = " et " if lang == "fr" else " and "
    return ", ".join(items[:-1]) + last + items[-1]


def structure_names(keys: Iterable[str], lang: str) -> str:
    """Structure names joined for a sentence; two or more vessels of one family named as the family."""
    keys = list(dict.fromkeys(keys))
    out: list[str] = []
    done: set[str] = set()
    for k in keys:
        if k in done:
            continue
        fam = next((f for f in _FAMILIES if re.fullmatch(f[0], k)), None)
        members = [x for x in keys if fam is not None and re.fullmatch(fam[0], x)]
        if fam is not None and len(members) >= 2:
            out.append(fam[2] if lang == "fr" else fam[1])
            done.update(members)
        else:
            out.append(structure_name(k, lang))
            done.add(k)
    return _join(out, lang)


def _mm(v: float | None) -> str:
    return "?" if v is None else f"{float(v):.1f}"


#: The airway is the union of its parts: when a part is named, the whole airway is not named again.
_AIRWAY_PARTS = ("pharynx", "larynx", "trachea")


def _pushes(checks: Sequence[ClearanceCheck], lang: str) -> str:
    word = "déplacer de" if lang == "fr" else "push"
    if any(c.structure in _AIRWAY_PARTS for c in checks):
        checks = [c for c in checks if c.structure != "airway"]
    return ", ".join(f"{structure_name(c.structure, lang)} ({word} {_mm(c.displacement_needed_mm)} mm)" for c in checks)


def _hydro_sentence(best, lang: str) -> str:
    """One sentence on hydrodissection for the best path: what is pushed and by how much, and the displaceable
    structures that were not assessed (never "not required" beside "may still be needed")."""
    pushed = [c for c in best.clearances if c.status == "hydrodissection"]
    unassessed = [c.structure for c in best.clearances if c.category == "displaceable" and c.status in UNASSESSED_STATUSES]
    displaceable = [c for c in best.clearances if c.category == "displaceable"]
    fr = lang == "fr"
    if pushed:
        head = ("Hydrodissection : nécessaire pour " if fr else "Hydrodissection: required for ") + _pushes(pushed, lang)
    elif unassessed:
        head = ("Hydrodissection : non nécessaire pour les structures évaluées" if fr
                else "Hydrodissection: not needed for the structures assessed")
    elif displaceable:
        return ("Hydrodissection : non nécessaire (toutes les structures déplaçables sont évaluées et à distance "
                "suffisante)." if fr else
                "Hydrodissection: not needed (every displaceable structure assessed and clear of its margin).")
    else:
        return ("Hydrodissection : non nécessaire (le protocole ne vérifie aucune structure déplaçable)." if fr else
                "Hydrodissection: not needed (the protocol checks no displaceable structure).")
    if not unassessed:
        return head + "."
    tail = (f" ; structures non évaluées sur ce scanner : {structure_names(unassessed, lang)}" if fr
            else f"; {structure_names(unassessed, lang)} not assessed on this CT")
    if any(s in k for k in unassessed for s in _SHEATH):
        tail += (" — l'espace jugulo-carotidien est ouvert par l'hydrodissection, qui fait partie de la technique" if fr
                 else " — the jugulo-carotid space is opened by hydrodissection as part of the technique")
    return head + tail + "."


def _without_headline(message: str | None) -> str | None:
    """The route message without a leading "... NOT ASSESSABLE ON THIS CT: " (the verdict's headline says it)."""
    if not message:
        return message
    head, sep, rest = message.partition(": ")
    if sep and rest and head.isupper() and ("NOT ASSESSABLE" in head or "NON ÉVALUABLE" in head):
        return rest[:1].upper() + rest[1:]
    return message


def _figures(figures: dict[str, float], lang: str) -> str | None:
    if not figures:
        return None
    parts = []
    for k, v in figures.items():
        unit = " mm" if k.endswith("_mm") else "°" if k.endswith("_deg") else ""
        name = k[:-3] if k.endswith("_mm") else k[:-4] if k.endswith("_deg") else k
        words = " ".join(w.upper() if re.fullmatch(r"ct|[ct]\d{1,2}", w) else w for w in name.split("_"))  # CT, C2
        v = float(v)
        parts.append(f"{words}: {int(v)}" if not unit and v.is_integer() else f"{words}: {v:.1f}{unit}")
    return ("Mesures : " if lang == "fr" else "Figures: ") + "; ".join(parts) + "."


class _Placed:
    """The checks of every trajectory to place, seen as one path (a plan with several needles is cleared only
    when each of them is)."""

    def __init__(self, plan: Plan) -> None:
        self.clearances = tuple(c for t in plan.placed for c in t.clearances)


def _texts(code: str, plan: Plan, lang: str) -> tuple[str, list[str]]:
    """Headline and details of *code* for *plan* in *lang*."""
    fr = lang == "fr"
    best = _Placed(plan)
    details: list[str] = []
    if code == "route_not_assessable":
        r = plan.route
        name = _ROUTES.get(r.route, (r.route.upper(), r.route.upper()))[1 if fr else 0]
        action = _ROUTE_ACTIONS.get(r.route, _ROUTE_ACTION_DEFAULT)[1 if fr else 0]
        text = (f"VOIE {name} NON ÉVALUABLE SUR CE SCANNER : {action}" if fr
                else f"{name} ROUTE NOT ASSESSABLE ON THIS CT: {action}")
        msg = _without_headline((r.message_fr or r.message_en) if fr else (r.message_en or r.message_fr))
        details += [x for x in (msg, _figures(r.figures, lang)) if x]
        return text, details
    if code == "no_feasible_path":
        text = "AUCUN TRAJET RÉALISABLE" if fr else "NO FEASIBLE PATH"
        if plan.unplanned and plan.placement == "all":
            text += (" : " if fr else ": ") + ", ".join(plan.unplanned)
        if plan.infeasibility is not None and plan.infeasibility.message:
            details.append(plan.infeasibility.message)  # English sentence; the faces translate known ones
        return text, details
    if code == "not_cleared":
        # hard structures first: they can never be displaced
        miss = list(dict.fromkeys([c.structure for c in best.clearances if c.category == "hard" and c.status in UNASSESSED_STATUSES]
                                  + [c.structure for c in best.clearances if c.category != "hard" and c.status in UNASSESSED_STATUSES]))
        fail = list(dict.fromkeys(c.structure for c in best.clearances if c.status == "fail"))
        parts = []
        if miss:
            parts.append((f"un trajet a été trouvé mais des structures à risque n'ont pas été évaluées : "
                           f"{structure_names(miss, lang)}") if fr else
                         f"a path was found but structures at risk were not assessed: {structure_names(miss, lang)}")
        if fail:
            parts.append((f"le trajet ne respecte pas la marge de : {structure_names(fail, lang)}") if fr else
                         f"the path does not keep the margin of: {structure_names(fail, lang)}")
        if plan.confirm_first:
            parts.insert(0, ("à confirmer d'abord : " if fr else "confirm first: ") + "; ".join(plan.confirm_first))
        text = ("NON VALIDÉ : " if fr else "NOT CLEARED: ") + "; ".join(parts)
        if miss:
            details.append("Fournir leurs masques ou un scanner sur lequel elles peuvent être segmentées avant de se fier à "
                           "ce trajet." if fr else
                           "Provide their masks, or a CT on which they can be segmented, before relying on this path.")
    elif code == "feasible_hydrodissection":
        pushed = [c for c in best.clearances if c.status == "hydrodissection"]
        text = ("RÉALISABLE AVEC HYDRODISSECTION : " if fr else "FEASIBLE WITH HYDRODISSECTION: ") + _pushes(pushed, lang)
    else:
        text = ("RÉALISABLE : toutes les structures du protocole évaluées et à distance suffisante" if fr
                else "FEASIBLE: every structure of the protocol assessed and clear of its margin")
    details.append(_hydro_sentence(best, lang))
    by_cont = list(dict.fromkeys(c.structure for c in best.clearances
                                 if c.status == "covered" and "containment" in (c.note or "")))
    covered = list(dict.fromkeys(c.structure for c in best.clearances if c.status == "covered"
                                 and c.structure not in by_cont))
    if covered:
        details.append(f"Couvert(s) par la distance de la structure qui le(s) contient : {structure_names(covered, lang)}." if fr
                       else f"Covered by the clearance of the structure that contains it: {structure_names(covered, lang)}.")
    if by_cont:
        details.append(f"Non segmenté(s), hors de l'os où reste l'instrument (contenu dans l'os de l'entrée à la pointe) : "
                       f"{structure_names(by_cont, lang)}." if fr else
                       f"Not segmented, outside the bone the instrument stays in from its entry to its tip (covered by "
                       f"the containment): {structure_names(by_cont, lang)}.")
    return text, details


def compute_verdict(plan: Plan) -> Verdict:
    """The plan's one verdict, a pure function of its fields (see the module docstring for the codes).

    Parameters
    ----------
    plan : Plan
        Any plan (schema 1.0 or later); ``plan.verdict`` is ignored.

    Returns
    -------
    Verdict
        Code, English and French headline and details, and the ``osteoplan plan`` exit status.
    """
    best = _Placed(plan) if plan.best is not None else None
    if plan.route is not None and not plan.route.assessable:
        code = "route_not_assessable"
    elif best is None:
        code = "no_feasible_path"
    elif plan.confirm_first or any(c.status in UNASSESSED_STATUSES or c.status == "fail" for c in best.clearances):
        code = "not_cleared"
    elif any(c.status == "hydrodissection" for c in best.clearances):  # (the planner's hydrodissection_required)
        code = "feasible_hydrodissection"
    else:
        code = "feasible"
    text_en, det_en = _texts(code, plan, "en")
    text_fr, det_fr = _texts(code, plan, "fr")
    return Verdict(code=code, text_en=text_en, text_fr=text_fr, details_en=tuple(det_en), details_fr=tuple(det_fr),
                   exit_code=EXIT_CODES[code])


def verdict_of(plan: Plan) -> Verdict:
    """``plan.verdict``, or the verdict computed now for a plan written without one (schema 1.0)."""
    return plan.verdict if plan.verdict is not None else compute_verdict(plan)


def severity(verdict: Verdict | str) -> str:
    """``"ok"`` (green), ``"warn"`` (amber) or ``"ko"`` (red) for a verdict or its code (see :data:`SEVERITY`)."""
    code = verdict if isinstance(verdict, str) else verdict.code
    return SEVERITY[code]


def hydrodissection_detail(verdict: Verdict, lang: str = "en") -> str | None:
    """The verdict's one sentence on hydrodissection (it starts with "Hydrodissection" in both languages), or None
    when the plan has no path; for the report's hydrodissection section, so that it says exactly what the verdict says."""
    details = verdict.details_fr if lang == "fr" else verdict.details_en
    return next((d for d in details if d.startswith("Hydrodissection")), None)
