"""HTML/PDF report: every structure's row with the right status, both languages, PDF pages legible."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

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
    assert "No feasible path" in html
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
