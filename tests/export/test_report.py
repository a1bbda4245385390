"""HTML/PDF report: every structure's row with the right status, both languages, PDF pages legible."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from osteoplan.locale_fmt import french_typography
from osteoplan.export.report import (build_report_html, clearance_rows, html_to_pdf, pdf_pages_to_png,
                                     safe_case_label, write_report)
from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.views.i18n import STRINGS

from export_planfactory import make_plan


@pytest.fixture(scope="module")
def plan():
    vol = Volume(np.zeros((20, 30, 30), np.float32), axis_aligned_affine((2.0, 1.0, 1.0), (-15.0, -15.0, -20.0)))
    return make_plan(vol, [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0.0, 0.0, 0.0],
                     warnings=("Test warning <b>escaped</b>",))


def _rows(html):
    return dict(re.findall(r'data-structure="([^"]+)" data-status="([^"]+)"', html))


def test_every_structure_row_has_its_status(plan):
    html = build_report_html(plan, {}, lang="en", case_label="CASE-7")
    assert _rows(html) == {"spinal_canal": "pass", "vertebral_artery_left": "pass",
                           "common_carotid_artery_left": "hydrodissection", "airway": "fail",
                           "internal_jugular_vein_left": "not_assessed", "esophagus": "not_assessed"}
    assert "NOT ASSESSED" in html and "FAIL" in html
    assert "CASE-7" in html
    assert "&lt;b&gt;escaped&lt;/b&gt;" in html        # planner text is escaped
    assert "LAO 78° / CRAN 32°" in html and "34.0 mm" in html and "2.0–3.0 mL" in html


def test_french_report_uses_translation_table(plan):
    html = build_report_html(plan, {}, lang="fr")
    assert STRINGS["status_not_assessed"]["fr"].upper() in html
    assert STRINGS["clearances"]["fr"] in html and STRINGS["screw_section"]["fr"] in html
    assert STRINGS["clearances"]["en"] not in html
    assert _rows(html)["airway"] == "fail"


def test_case_label_is_pseudonymous():
    assert safe_case_label("CASE-12") == "CASE-12"
    assert safe_case_label("DUPONT^JEAN") == "case"
    assert safe_case_label("123456789") == "case"


def test_infeasible_plan_reports_reason():
    vol = Volume(np.zeros((4, 4, 4), np.float32), np.eye(4))
    p = make_plan(vol, [1.0, 0, 0], [0.5, 0, 0], [0, 0, 0], feasible=False)
    html = build_report_html(p, {})
    assert '<div class="verdict ko">NO FEASIBLE PATH</div>' in html and 'data-verdict="no_feasible_path"' in html
    assert _rows(html) == {"internal_jugular_vein_left": "not_assessed", "esophagus": "not_assessed"}


def test_pdf_pages_render(plan, tmp_path):
    img = Image.new("RGB", (590, 640), "gray")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    images = {"axial": buf.getvalue(), "drr_lateral": buf.getvalue(), "view_3d": buf.getvalue()}
    w = write_report(tmp_path, plan, images, lang="fr", case_label="T1")
    html = w["html"].read_text()
    assert html.count("data:image/png;base64,") == 3
    pdf = w["pdf"].read_bytes()
    assert pdf.startswith(b"%PDF")
    pages = pdf_pages_to_png(pdf, scale=0.5)
    assert len(pages) >= 2
    first = np.asarray(Image.open(io.BytesIO(pages[0])).convert("L"))
    assert first.shape[0] > first.shape[1]            # A4 portrait
    assert (first < 128).mean() > 0.01                 # text is there


def test_risk_summary_is_reported(plan):
    p = plan.model_copy(update={"risk": {"summary": ["SINS 12 (potentially unstable), Fisher 2010"]}})
    html = build_report_html(p, {}, lang="fr")
    assert "Risque fracturaire" in html and "SINS 12 (potentially unstable), Fisher 2010" in html
    assert "Fracture risk" not in build_report_html(plan, {}, lang="en")


def _planner_style_plan(plan):
    """The factory plan with the texts the planner really writes (warnings, cement basis, notes)."""
    from osteoplan.planning.model import ClearanceCheck

    best = plan.best
    capped = ClearanceCheck(structure="mandible", category="hard", margin_mm=1.0, clearance_mm=17.8, status="pass",
                            segmented=True, source="phantom-truth",
                            note="at least this much (distances are computed up to 20 mm)")
    alt = best.model_copy(update={"rank": 2, "side": "right"})
    best = best.model_copy(update={"clearances": best.clearances + (capped,)})
    hydro = plan.hydrodissection.model_copy(update={
        "note": "Not assessed (not segmented): internal_jugular_vein_left. Hydrodissection may still be needed."})
    cement = plan.cement.model_copy(update={
        "lesion_volume_ml": 0.264,
        "basis": "lesion volume x 0.46-0.76 (filling 61 +/- 15 %), upper bound capped at 4.0 mL; C2 reference "
                 "2.9 +/- 0.7 mL (range 2.0-4.0 mL), Mont'Alverne AJNR 2005;26:1641. Heuristic, no validated formula."})
    warnings = ("Gantry tilt 70.0 deg is beyond the scanner limit (30.0 deg): follow the path on oblique reformats.",
                "Screw length 24 mm is outside the 30-55 mm used in the published series (PMID 33388865).",
                "Not assessed (not segmented, never reported as clear): esophagus, internal_jugular_vein_left.")
    return plan.model_copy(update={"trajectories": (best, alt), "hydrodissection": hydro, "cement": cement,
                                   "warnings": warnings})


def test_capped_clearance_shown_as_lower_bound(plan):
    p = _planner_style_plan(plan)
    row = next(r for r in clearance_rows(p, "en") if r["structure"] == "mandible")
    assert row["clearance"] == "≥ 17.8 mm" and row["status"] == "pass"
    assert row["source"] == "phantom-truth"          # the note is not glued to the mask source any more
    html = build_report_html(p, {}, lang="en")
    assert "capped at 20 mm" in html
    # a structure within range keeps its plain value
    assert next(r for r in clearance_rows(p) if r["structure"] == "spinal_canal")["clearance"] == "4.6 mm"


def test_hydrodissection_caveat_for_unassessed_structures(plan):
    """The hydrodissection section says what the verdict says, in one sentence: what is pushed and by how much,
    and the displaceable structures not assessed; never "Not required" next to "may still be needed"."""
    html = build_report_html(_planner_style_plan(plan), {}, lang="en")
    sentence = ("Hydrodissection: required for left common carotid (push 3.5 mm); left internal jugular vein not "
                "assessed on this CT — the jugulo-carotid space is opened by hydrodissection as part of the technique.")
    assert html.count(sentence) == 2  # the verdict box on top and the hydrodissection section
    assert "may still be needed" not in html and "Not required" not in html and "not required" not in html
    fr = build_report_html(_planner_style_plan(plan), {}, lang="fr")
    assert fr.count(french_typography(  # French pages: a no-break space before ':' and ';'
        "Hydrodissection : nécessaire pour carotide commune gauche (déplacer de 3,5 mm) ; structures non "
        "évaluées sur ce scanner : veine jugulaire interne gauche — l&#39;espace jugulo-carotidien est ouvert "
        "par l&#39;hydrodissection, qui fait partie de la technique.")) == 2
    assert "peut rester nécessaire" not in fr and "Non nécessaire" not in fr


def test_french_report_translates_planner_text(plan):
    import html as _html

    html = _html.unescape(build_report_html(_planner_style_plan(plan), {}, lang="fr"))
    for en in ("Gantry tilt", "Screw length", "never reported as clear", "Heuristic, no validated formula",
               "at least this much", "<td>right</td>"):
        assert en not in html, en
    assert "Inclinaison du statif de 70,0° au-delà de la limite du scanner (30,0°)" in html
    assert "Longueur de vis 24 mm hors de l'intervalle 30–55 mm" in html
    assert "œsophage, veine jugulaire interne gauche" in html
    assert "Heuristique, pas de formule validée" in html
    assert "<td>droite</td>" in html                  # side of the alternative plan
    assert "0,26 mL" in html                          # same 2 decimals as the terminal summary (was 0.3)


def test_unknown_text_is_kept_in_english():
    from osteoplan.views.i18n import translate_text

    assert translate_text("something new from another stage", "fr") == "something new from another stage"
    assert translate_text("No feasible path with a 4.5 mm screw; 4.0 mm was used.", "en") == \
        "No feasible path with a 4.5 mm screw; 4.0 mm was used."
    assert translate_text("No feasible path with a 4.5 mm screw; 4.0 mm was used.", "fr") == \
        "Aucun trajet réalisable avec une vis de 4.5 mm ; une vis de 4.0 mm a été utilisée."


def test_provided_mask_file_name_not_in_report(plan):
    from osteoplan.planning.model import ClearanceCheck

    chk = ClearanceCheck(structure="spinal_cord", category="hard", margin_mm=3.0, clearance_mm=9.0, status="pass",
                         segmented=True, source="provided:DUPONT_cord.nii.gz")
    p = plan.model_copy(update={"trajectories": (plan.best.model_copy(update={"clearances": (chk,)}),)})
    html = build_report_html(p, {}, lang="fr")
    assert "DUPONT" not in html and "masque fourni" in html


def test_french_anatomy_warnings():
    from osteoplan.views.i18n import translate_text

    w = ("spinal canal continued 25 mm cranially and 40 mm caudally beyond the last closed vertebral ring")
    assert translate_text(w, "fr") == ("canal rachidien prolongé de 25 mm vers le haut et 40 mm vers le bas au-delà "
                                       "du dernier anneau vertébral fermé")
    assert translate_text("NOT segmented (not assessed): spinal_cord, esophagus", "fr") == \
        "Structures NON segmentées (non évaluées) : moelle épinière, œsophage"  # agrees with "structures"


def test_french_risk_lines(plan):
    import html as _html

    lines = ["Level: C2", "Lesion: 0.26 mL, 27 % of the dens, 0 % of the body; median 48 HU",
             "CT rigidity: max loss 14.2 % at s = +4.5 mm (dens); below the 35 % threshold",
             "  pain: MISSING (0-3 points)", "an unknown line stays as is"]
    p = plan.model_copy(update={"risk": {"summary": lines}})
    fr = _html.unescape(build_report_html(p, {}, lang="fr")).replace("\u00a0", " ")  # typography tested elsewhere
    assert "Niveau : C2" in fr and "Lésion : 0,26 mL, 27 % de l'odontoïde, 0 % du corps ; médiane 48 UH" in fr
    assert "perte maximale 14,2 % à s = +4,5 mm (odontoïde) ; sous le seuil de 35 %" in fr
    assert "pain : MANQUANT (0–3 points)" in fr and "an unknown line stays as is" in fr
    en = build_report_html(p, {}, lang="en")
    assert "Level: C2" in en and "pain: MISSING (0-3 points)" in en


def test_verdict_is_not_green_when_a_structure_was_not_assessed():
    """A feasible plan whose structures were all measured: green verdict on top of the first page. A jugular vein
    not segmented (a displaceable structure nobody saw is not clear either): NOT CLEARED naming it, in amber
    (class 'warn'); with the cord too, the hard structure is named first; English and French; the CLI RESULT
    line is the same text."""
    from osteoplan.faces.cli.summary import result_line
    from osteoplan.planning.model import ClearanceCheck

    vol = Volume(np.zeros((20, 30, 30), np.float32), axis_aligned_affine((2.0, 1.0, 1.0), (-15.0, -15.0, -20.0)))
    measured = (ClearanceCheck(structure="spinal_canal", category="hard", margin_mm=2.0, clearance_mm=4.6,
                               status="pass", segmented=True, source="test"),)
    ijv = ClearanceCheck(structure="internal_jugular_vein_left", category="displaceable", margin_mm=5.0,
                         clearance_mm=None, status="not_assessed", segmented=False)
    cord = ClearanceCheck(structure="spinal_cord", category="hard", margin_mm=3.0, clearance_mm=None,
                          status="not_assessed", segmented=False)
    ok = make_plan(vol, [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0.0, 0.0, 0.0], checks=measured)
    html = build_report_html(ok, {}, lang="en")
    head = "FEASIBLE: every structure of the protocol assessed and clear of its margin"
    assert f'<div class="verdict ok">{head}</div>' in html and "NOT CLEARED" not in html
    assert html.index(head) < html.index('<div class="header">')  # the first thing one reads
    assert result_line(ok) == "RESULT: " + head
    warn = make_plan(vol, [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0.0, 0.0, 0.0], checks=measured + (ijv, cord))
    html = build_report_html(warn, {}, lang="en")
    head = ("NOT CLEARED: a path was found but structures at risk were not assessed: "
            f'{STRINGS["spinal_cord"]["en"]} and {STRINGS["internal_jugular_vein_left"]["en"]}')
    assert f'<div class="verdict warn">{head}</div>' in html
    fr = build_report_html(warn, {}, lang="fr")
    assert french_typography("<div class=\"verdict warn\">NON VALIDÉ : un trajet a été trouvé mais des structures à "
                             "risque n&#39;ont pas été évaluées : "
                             f'{STRINGS["spinal_cord"]["fr"]} et {STRINGS["internal_jugular_vein_left"]["fr"]}</div>') in fr
    assert result_line(warn) == "RESULT: " + head




@pytest.mark.parametrize("lang,no", [("en", "NO: the screw does not fix the dens"),
                                     ("fr", "NON : la vis ne fixe pas l'odontoïde")])
def test_tip_rows_show_the_screw_against_the_dens(plan, lang, no):
    """The report's tip table carries the dens figures the CLI prints (tip below the apex, angle to the dens axis,
    bone entry above the corner, thread across the waist), so a screw that does not cross the waist is said."""
    from osteoplan.export.report import needle_rows
    from osteoplan.views.i18n import t

    b = plan.best.model_copy(update={"tip_to_cortex_mm": None, "tip_below_apex_mm": 10.0,
                                     "angle_to_dens_axis_deg": 31.8, "bone_entry_above_corner_mm": 4.2,
                                     "thread_crosses_waist": False})
    rows = dict(needle_rows(b, 1, 1, lang)["tip"])
    assert rows[t("tip_below_apex", lang)] == "10.0 mm" and rows[t("angle_to_dens_axis", lang)] == "31.8 °"
    assert rows[t("bone_entry_above_corner", lang)] == "4.2 mm" and t("tip_to_cortex", lang) not in rows
    assert rows[t("thread_crosses_waist", lang)] == no


@pytest.mark.parametrize("protocol,en,fr", [
    ("c2-dens-lateral", "C2 dens screw fixation, lateral-cervical route — C2",
     "Vissage de l'odontoïde (C2), voie latérocervicale — C2"),
    ("c2-dens-anterior", "C2 dens screw fixation, anterior route — C2", "Vissage de l'odontoïde (C2), voie antérieure — C2"),
    ("/nowhere/own-protocol.toml", "C2 dens screw fixation — C2", "Vissage de l'odontoïde (C2) — C2")])
def test_report_title_names_the_route(plan, protocol, en, fr):
    """The two dens-screw protocols are two routes: the title says which (a reviewer could not tell a lateral plan
    from the anterior technique); a protocol file that is not shipped gives the procedure alone, never an error."""
    from osteoplan.export.report import procedure_title

    p = plan.model_copy(update={"protocol_name": protocol, "procedure": "c2-dens-screw", "level": "C2"})
    assert procedure_title(p, "en") == en and procedure_title(p, "fr") == fr
