"""Patient information sheet (French or English, PDF) generated from a lesion, its tumour-board decision and its
saved plan (Jinja2 + WeasyPrint).

The sheet names the case by its pseudonymous code only (no name, no birth date). Figures quoted to the patient
carry their source: cement leaks in 58 % of C2 vertebrae, mostly without consequence (Mont'Alverne et al.,
AJNR 2005;26:1641); hydrodissection with about 210-230 mL of saline (PMID 33388865). The wording is a project
draft to be reviewed by the team before clinical use.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session

from osteoplan.errors import ValidationError
from osteoplan.workflow import models as m
from osteoplan.workflow import service as sv

TEMPLATES = Path(__file__).with_name("templates")
LANGUAGES = ("fr", "en")

TEXTS: dict[str, dict[str, Any]] = {
    "fr": {
        "title": "Information du patient : consolidation osseuse percutanée",
        "subtitle": "Radiologie interventionnelle", "case": "Dossier", "date": "édité le",
        "footer": "Fiche d'information patient",
        "h_lesion": "Votre lésion", "site": "Localisation", "lesion_type": "Aspect de la lésion",
        "score": "Score de risque de fracture", "decision": "Décision de la réunion de concertation (RCP)",
        "h_procedure": "L'intervention proposée",
        "procedure_intro": "Le médecin radiologue consolide l'os fragilisé à travers la peau, sans ouvrir, en "
                           "guidant ses instruments par scanner et radioscopie.",
        "anaesthesia": "L'intervention se fait sous anesthésie (le plus souvent générale pour le rachis cervical).",
        "hydro": "Une injection de sérum physiologique (environ 210 à 230 mL) écarte d'abord les vaisseaux et la "
                 "gorge du trajet de l'aiguille (hydrodissection).",
        "screw": "Une vis de {d} mm de diamètre et {l} mm de longueur est mise en place sur une broche guide.",
        "cement": "Un ciment acrylique (environ {v} mL) est injecté dans la lésion pour la solidifier.",
        "imaging": "Un scanner de contrôle est réalisé en fin d'intervention et à un mois.",
        "h_benefits": "Bénéfices attendus",
        "benefits": ["Diminution rapide de la douleur.", "Consolidation de l'os et réduction du risque de fracture.",
                     "Reprise plus rapide de l'autonomie."],
        "benefit_collar": "Retrait du collier cervical, souvent le jour même.",
        "h_risks": "Risques",
        "risks": ["Fuite de ciment hors de l'os : fréquente (58 % des vertèbres C2 dans une série), le plus "
                  "souvent sans conséquence ; rarement, compression d'un nerf ou de la moelle.",
                  "Infection, saignement, hématome au point de ponction.", "Douleur transitoire.",
                  "Échec technique, nécessitant parfois un autre traitement."],
        "risks_cervical": ["Blessure d'une artère vertébrale ou carotide, de la gorge ou de l'œsophage : rare ; les "
                           "structures proches du trajet ont été repérées sur votre scanner.",
                           "Gêne à la déglutition ou modification de la voix, en général transitoires."],
        "h_after": "Après l'intervention",
        "after": ["Surveillance de quelques heures ; sortie habituellement le lendemain.",
                  "Évaluation de la douleur le lendemain puis à 1, 3, 6 et 12 mois.",
                  "Une radiothérapie ou une chimiothérapie peut compléter le traitement.",
                  "Signalez sans attendre : fièvre, douleur inhabituelle, faiblesse ou fourmillements d'un membre, "
                  "difficulté à avaler ou à respirer."],
        "note": "Cette fiche complète, sans la remplacer, l'entretien avec votre médecin. Vous pouvez poser toutes "
                "vos questions et revenir sur votre accord à tout moment avant l'intervention.",
        "sign_patient": "Le patient (date, signature)", "sign_doctor": "Le médecin (date, signature)",
        "types": {"lytic": "lytique (l'os est détruit par endroits)", "mixed": "mixte",
                  "blastic": "condensante"},
        "vertebra": "vertèbre", "bone": "os",
        "categories": {"stable": "stable", "potentially unstable": "potentiellement instable",
                       "unstable": "instable", "fixation": "fixation préventive recommandée",
                       "judgement": "à discuter", "low-risk": "risque faible"},
        "decisions": {"screw_cement": "vissage et cimentoplastie", "screw_alone": "vissage",
                      "cement_alone": "cimentoplastie", "radiotherapy": "radiothérapie", "surgery": "chirurgie",
                      "watchful_waiting": "surveillance", "other": "autre"},
    },
    "en": {
        "title": "Patient information: percutaneous bone consolidation",
        "subtitle": "Interventional radiology", "case": "Case", "date": "printed on",
        "footer": "Patient information sheet",
        "h_lesion": "Your lesion", "site": "Location", "lesion_type": "Type of lesion",
        "score": "Fracture-risk score", "decision": "Decision of the multidisciplinary tumour board",
        "h_procedure": "The proposed procedure",
        "procedure_intro": "The interventional radiologist strengthens the weakened bone through the skin, without "
                           "open surgery, guiding the instruments with CT and fluoroscopy.",
        "anaesthesia": "The procedure is done under anaesthesia (usually general anaesthesia for the neck).",
        "hydro": "Saline (about 210 to 230 mL) is first injected to move the vessels and the throat away from "
                 "the needle path (hydrodissection).",
        "screw": "A screw {d} mm wide and {l} mm long is placed over a guide pin.",
        "cement": "Acrylic bone cement (about {v} mL) is injected into the lesion to strengthen it.",
        "imaging": "A control CT scan is done at the end of the procedure and after one month.",
        "h_benefits": "Expected benefits",
        "benefits": ["Rapid pain relief.", "A stronger bone and a lower risk of fracture.",
                     "A quicker return to independence."],
        "benefit_collar": "Removal of the neck collar, often on the same day.",
        "h_risks": "Risks",
        "risks": ["Cement leaking out of the bone: frequent (58 % of C2 vertebrae in one series), usually without "
                  "consequence; rarely, pressure on a nerve or the spinal cord.",
                  "Infection, bleeding, bruising where the needle went in.", "Temporary pain.",
                  "Technical failure, sometimes needing another treatment."],
        "risks_cervical": ["Injury to a vertebral or carotid artery, the throat or the gullet: rare; the structures "
                           "near the path were identified on your CT scan.",
                           "Difficulty swallowing or a change in the voice, usually temporary."],
        "h_after": "After the procedure",
        "after": ["Monitoring for a few hours; you usually go home the next day.",
                  "Pain is assessed the next day and after 1, 3, 6 and 12 months.",
                  "Radiotherapy or chemotherapy may complete the treatment.",
                  "Tell us at once about: fever, unusual pain, weakness or tingling in a limb, difficulty "
                  "swallowing or breathing."],
        "note": "This sheet supports, and does not replace, the conversation with your doctor. You may ask any "
                "question and withdraw your consent at any time before the procedure.",
        "sign_patient": "Patient (date, signature)", "sign_doctor": "Doctor (date, signature)",
        "types": {"lytic": "lytic (the bone is destroyed in places)", "mixed": "mixed", "blastic": "sclerotic"},
        "vertebra": "vertebra", "bone": "bone",
        "categories": {"fixation": "prophylactic fixation recommended", "judgement": "clinical judgement",
                       "low-risk": "low risk"},
        "decisions": {"screw_cement": "screw fixation and cementoplasty", "screw_alone": "screw fixation",
                      "cement_alone": "cementoplasty", "radiotherapy": "radiotherapy", "surgery": "surgery",
                      "watchful_waiting": "watchful waiting", "other": "other"},
    },
}


def _num(x: float, language: str = "en") -> str:
    """A number of the sheet's text, with the language's decimal marker (French: ``3,5``)."""
    from osteoplan.locale_fmt import decimal

    return decimal(x, None, language)


def sheet_context(lesion: m.Lesion, plan: dict[str, Any] | None, decision: m.TumourBoardDecision | None,
                  language: str) -> dict[str, Any]:
    """Template variables from the lesion, its plan (``plan.json`` content) and decision."""
    if language not in LANGUAGES:
        raise ValidationError(f"information sheets exist in {', '.join(LANGUAGES)}; got {language!r}")
    t = TEXTS[language]
    ctx: dict[str, Any] = {"lang": language, "t": t, "case_code": lesion.patient.code,
                           "generated": dt.date.today().isoformat()}
    kind = t["vertebra"] if lesion.site_kind == "vertebra" else t["bone"]
    ctx["site_text"] = f"{lesion.site} ({kind}" + (f", {lesion.side}" if lesion.side else "") + ")"
    ctx["lesion_type_text"] = t["types"].get(lesion.lesion_type, lesion.lesion_type)
    cat = t["categories"].get(lesion.score_category, lesion.score_category) if lesion.score_category else None
    ctx["score_text"] = (f"{lesion.score_system} {lesion.score_total}" + (f" ({cat})" if cat else "")
                         ) if lesion.score_system and lesion.score_total is not None else None
    # the footer is CSS text: keep the code to safe characters
    ctx["case_code_css"] = re.sub(r"[^A-Za-z0-9_.-]", "", lesion.patient.code)
    ctx["decision_text"] = t["decisions"].get(decision.decision_type) if decision else None
    ctx["cervical"] = lesion.site_kind == "vertebra" and lesion.site.startswith("C")
    dtype = decision.decision_type if decision else None
    plan = plan or {}
    traj = (plan.get("trajectories") or [None])[0] or {}
    screw = traj.get("screw") if isinstance(traj, dict) else None
    ctx["screw_text"] = None
    if screw and dtype != "cement_alone":
        ctx["screw_text"] = t["screw"].format(d=_num(screw["diameter_mm"], language), l=_num(screw["length_mm"], language))
    elif dtype in ("screw_cement", "screw_alone"):
        ctx["screw_text"] = t["screw"].format(d="?", l="?")
    hydro = plan.get("hydrodissection") or {}
    ctx["hydro"] = bool(hydro.get("required")) or bool(traj.get("hydrodissection_required"))
    cement = plan.get("cement") or {}
    vol = cement.get("suggested_pmma_ml")
    ctx["cement_text"] = None
    if dtype != "screw_alone":
        if vol:
            ctx["cement_text"] = t["cement"].format(v=f"{_num(vol[0], language)}-{_num(vol[1], language)}")
        elif dtype in ("screw_cement", "cement_alone"):
            ctx["cement_text"] = t["cement"].format(v="2-4" if lesion.site == "C2" else "2-8")
    return ctx


def render_html(ctx: dict[str, Any]) -> str:
    """The sheet as HTML text (French: with French typography, :func:`osteoplan.locale_fmt.localize_html`)."""
    from osteoplan.locale_fmt import localize_html

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]))
    return localize_html(env.get_template("infosheet.html.j2").render(**ctx), ctx.get("lang", "en"))


def render_pdf(ctx: dict[str, Any]) -> bytes:
    """The sheet as PDF bytes (WeasyPrint)."""
    from weasyprint import HTML

    return HTML(string=render_html(ctx), base_url=str(TEMPLATES)).write_pdf()


def info_sheet_pdf(session: Session, actor: m.User | None, lesion_id: int, language: str = "fr",
                   plan_id: int | None = None) -> bytes:
    """PDF information sheet of a lesion (latest saved plan unless *plan_id*; latest decision on the lesion).

    Logs a read of the lesion (``detail.export = "infosheet"``).
    """
    lesion = sv._get(session, m.Lesion, lesion_id, "lesion")
    plans = [p for p in lesion.plans if p.deleted_at is None]
    plan = None
    if plan_id is not None:
        plan = next((p for p in plans if p.id == plan_id), None)
        if plan is None:
            raise ValidationError(f"plan {plan_id} is not a plan of this lesion")
    elif plans:
        plan = plans[-1]
    decisions = [d for d in lesion.patient.decisions if d.deleted_at is None and d.lesion_id == lesion.id]
    ctx = sheet_context(lesion, plan.plan if plan else None, decisions[-1] if decisions else None, language)
    sv.audit(session, actor, "read", "lesion", lesion.id, patient_id=lesion.patient_id,
             detail={"export": "infosheet", "language": language})
    session.flush()
    return render_pdf(ctx)
