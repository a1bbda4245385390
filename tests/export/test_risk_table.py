"""The fracture-risk section: one row per SINS component with its points, how it was obtained and the evidence
in words with units, in the HTML and PDF report (EN, FR) and on the command line — no measurement dump."""

from __future__ import annotations

import html as _html
import json

import numpy as np
import pytest

from osteoplan.export.report import build_report_html, html_to_pdf
from osteoplan.export.risk_table import risk_lines, risk_text_lines, sins_rows, sins_total_text
from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.risk.sins import compute_sins, ct_proposed, override

from export_planfactory import make_plan

LESION_EVIDENCE = {"lesion_median_hu": 48.0, "lesion_p10_hu": 20.0, "lesion_p90_hu": 229.0,
                   "normal_cancellous_median_hu": 253.0, "fraction_below_normal": 0.817,
                   "fraction_above_normal": 0.004, "margin_hu": 100.0, "rule": "..."}
COLLAPSE_EVIDENCE = {"anteroinferior_to_apex_mm": 36.11, "population_mean_mm": 37.6, "population_sd_mm": 3.3,
                     "height_ratio_to_population": 0.96, "fraction_of_anterior_column_involved": 0.071,
                     "landmark_method": "phantom-truth", "rule": "..."}


@pytest.fixture(scope="module")
def risk():
    """A risk report as plan.json holds it: CT proposals, a clinician's pain, an override, alignment missing."""
    collapse_prop = ct_proposed("none", COLLAPSE_EVIDENCE, "C2 has no superior endplate: collapse is judged against "
                                "a population height, not a neighbour; confirm on a sagittal reformat")
    sins = compute_sins(
        location=ct_proposed("junctional", {"level": "C2"}, "from the vertebral level of the lesion (Fisher 2010)"),
        pain="mechanical",
        lesion_type=ct_proposed("lytic", LESION_EVIDENCE),
        alignment=None,
        collapse=override("under-50", collapse_prop, "clinician override"),
        posterolateral=ct_proposed("none", {"left_ml": 0.0, "right_ml": 0.031, "min_ml": 0.02, "rule": "...",
                                            "sides_involved": []}))
    summary = ["Level: C2", "Lesion: 0.26 mL, 27 % of the dens, 0 % of the body; median 48 HU", sins.summary(),
               "  lesion_type: lytic = 2 [ct-proposed] (lesion_median_hu=48.0, lesion_p10_hu=20.0)",
               "CT rigidity: max loss 14.2 % at s = +4.5 mm (dens); below the 35 % threshold"]
    return json.loads(json.dumps({"level": "C2", "sins": sins.to_dict(), "summary": summary}))


def test_rows_in_published_order_with_points_and_how(risk):
    rows = sins_rows(risk)
    assert [(r.label, r.value_label, r.points, r.how) for r in rows] == [
        ("Location", "junctional (occiput–C2, C7–T2, T11–L1, L5–S1)", "3", "ct-proposed"),
        ("Pain", "mechanical pain", "3", "clinician"),
        ("Bone lesion", "lytic", "2", "ct-proposed"),
        ("Radiographic alignment", "—", "0–4", "missing"),
        ("Vertebral body collapse", "< 50 % collapse", "2", "override"),
        ("Posterolateral involvement", "none", "0", "ct-proposed"),
    ]
    ev = {r.component: r.evidence for r in rows}
    assert ev["lesion_type"] == ("lesion median 48 HU (10th–90th percentile 20–229 HU) vs normal cancellous bone of "
                                 "this vertebra 253 HU; 82 % of the lesion more than 100 HU below normal, 0 % more "
                                 "than 100 HU above")
    assert ev["location"] == "vertebral level C2"
    assert ev["alignment"].startswith("clinical input not given (osteoplan risk --alignment")
    # the override keeps the CT proposal and its measurements, in words
    assert ev["collapse"].startswith('replaces the CT proposal "no collapse" — CT measured: anteroinferior body '
                                     'corner to dens apex 36.1 mm = 96 % of the population mean 37.6 ± 3.3 mm')
    assert "lesion in 7 % of the anterior column" in ev["collapse"]
    assert ev["posterolateral"] == ("lesion in the posterolateral elements (pedicle, lateral mass, lamina): left "
                                    "0.00 mL, right 0.03 mL (a side counts from 0.02 mL)")
    assert {r.component: r.how_label for r in rows}["alignment"] == "MISSING"


def test_total_is_the_hand_sum(risk):
    # 3 (C2 junctional) + 3 (mechanical) + 2 (lytic) + 2 (< 50 % collapse) + 0 = 10; alignment adds 0-4
    assert sins_total_text(risk) == ("10–14 / 18 (radiographic alignment missing): potentially unstable or "
                                     "unstable — ≥ 7: surgical/interventional consultation recommended")
    assert sins_total_text(risk, "fr").startswith("10–14 / 18 (alignement radiographique manquant) : "
                                                  "potentiellement instable ou instable")


def test_no_table_when_there_is_no_sins():
    err = {"error": "InputError", "summary": ["fracture risk not assessed: C2 not found"]}
    assert sins_rows(err) == [] and sins_total_text(err) is None
    assert risk_lines(err) == ["fracture risk not assessed: C2 not found"]
    assert risk_text_lines(None) == []


def test_command_line_text_has_no_dump_and_keeps_every_number(risk):
    lines = risk_text_lines(risk)
    text = "\n".join(lines)
    import re

    assert "lesion_p10_hu" not in text and "fraction_below_normal" not in text
    assert not re.search(r"\w=\S", text)          # no key=value pairs
    assert max(len(L) for L in lines) <= 110
    joined = " ".join(L.strip() for L in lines)
    assert "82 % of the lesion more than 100 HU below normal" in joined
    comp = [L for L in lines if L.strip().startswith("Radiographic alignment")]
    assert comp and comp[0].split() == ["Radiographic", "alignment", "0–4", "MISSING", "—"]
    assert "CT rigidity: max loss 14.2 %" in text and "Level: C2" in text


@pytest.fixture(scope="module")
def plan(risk):
    vol = Volume(np.zeros((20, 30, 30), np.float32), axis_aligned_affine((2.0, 1.0, 1.0), (-15.0, -15.0, -20.0)))
    p = make_plan(vol, [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0.0, 0.0, 0.0])
    return p.model_copy(update={"risk": risk})


def _risk_rows(html: str) -> dict[str, str]:
    import re

    return dict(re.findall(r'data-component="([^"]+)" data-how="([^"]+)"', html))


def test_report_risk_table_english_and_french(plan):
    en = _html.unescape(build_report_html(plan, {}, lang="en"))
    assert _risk_rows(en) == {"location": "ct-proposed", "pain": "clinician", "lesion_type": "ct-proposed",
                              "alignment": "missing", "collapse": "override", "posterolateral": "ct-proposed"}
    assert "lesion_p10_hu" not in en and "fraction_below_normal" not in en
    assert "vs normal cancellous bone of this vertebra 253 HU; 82 % of the lesion" in en
    assert "<th>How obtained</th>" in en and "SINS total" in en
    assert "Level: C2" in en and "CT rigidity: max loss 14.2 %" in en
    assert "SINS incomplete" not in en            # the total row replaces the summary line
    fr = _html.unescape(build_report_html(plan, {}, lang="fr"))
    assert _risk_rows(fr)["alignment"] == "missing"
    assert "médiane de la lésion 48 UH" in fr and "82 % de la lésion à plus de 100 UH sous la normale" in fr
    assert "<th>Origine</th>" in fr and "MANQUANT" in fr and "Lésion osseuse" in fr and "Niveau\u00a0: C2" in fr


def test_pdf_holds_the_risk_table(plan):
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(html_to_pdf(build_report_html(plan, {}, lang="en")))
    text = " ".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    doc.close()
    flat = " ".join(text.split())
    assert "How obtained" in flat and "Vertebral body collapse" in flat
    assert "82 % of the lesion more than 100 HU below normal" in flat
    assert "lesion_p10_hu" not in flat
