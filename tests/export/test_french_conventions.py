"""French conventions of the displayed text and pictures (osteoplan.locale_fmt): decimal comma in the report's and
the check page's text, D / G (droite / gauche) for the patient's right / left on the images; English unchanged; the
data (attributes, style sheets, image data) never touched."""

from __future__ import annotations

import html as _html
import re

import numpy as np
import pytest

from osteoplan.export.report import build_report_html
from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.locale_fmt import carm_label, localize_html

from export_planfactory import make_plan


@pytest.fixture(scope="module")
def plan():
    vol = Volume(np.zeros((20, 30, 30), np.float32), axis_aligned_affine((2.0, 1.0, 1.0), (-15.0, -15.0, -20.0)))
    return make_plan(vol, [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0.0, 0.0, 0.0])


def _text(html: str) -> str:
    """The page's text (no tags, no style sheet), unescaped."""
    html = re.sub(r"<style\b.*?</style>", " ", html, flags=re.S)
    return _html.unescape(re.sub(r"<[^>]*>", " ", html))


def test_localize_html_changes_text_only():
    page = ("<html><head><style>p{margin:0.5mm;opacity:0.75}</style></head><body>"
            "<p data-x=\"2.5\" style=\"width:12.5%\">tip 2.5 mm, at (1.0, -2.0, 3.5); UID 1.2.840.10008.5; v1.2</p>"
            "<!-- 7.5 --><img src=\"data:image/png;base64,AB.CD\" alt=\"3.5\"></body></html>")
    fr = localize_html(page, "fr")
    # text: decimal commas, and French typography (a no-break space before each ';'); tags, styles, data untouched
    assert fr == page.replace("tip 2.5 mm, at (1.0, -2.0, 3.5); UID 1.2.840.10008.5; v1.2",
                              "tip 2,5 mm, at (1,0\u00a0; -2,0\u00a0; 3,5)\u00a0; UID 1.2.840.10008.5\u00a0; v1.2")
    assert localize_html(page, "en") == page


def test_carm_label():
    assert carm_label("RAO 6° / CRAN 22°", "fr") == "OAD 6° / CRA 22°"
    assert carm_label("LAO 29° / CAUD 64°", "fr") == "OAG 29° / CAU 64°"
    assert carm_label("LAO 29° / CAUD 64°", "en") == "LAO 29° / CAUD 64°"
    assert carm_label("the CRANIAL LAO view", "fr") == "the CRANIAL LAO view"  # no angle: not an angulation


def test_french_report_writes_decimal_commas_and_english_is_unchanged(plan):
    en = build_report_html(plan, {}, lang="en", generated_utc="2026-12-06 12:00 UTC")
    fr = build_report_html(plan, {}, lang="fr", generated_utc="2026-12-06 12:00 UTC")
    assert "34.0 mm" in en and "2.0–3.0 mL" in en  # as before (tests/export/test_report.py)
    assert "34,0 mm" in fr and "2,0–3,0 mL" in fr and "34.0 mm" not in fr
    # C-arm views as French angiography writes them (no English L / R abbreviation beside the D / G pictures)
    assert "LAO 78° / CRAN 32°" in en and "OAG 78° / CRA 32°" in fr
    assert re.findall(r"\b(?:LAO|RAO|CRAN|CAUD)\b", _text(fr)) == []
    # no decimal point left in the French text (dotted identifiers such as versions are not decimals)
    assert re.findall(r"(?<![\w.])-?\d+\.\d+(?![\w]|\.\d)", _text(fr)) == []
    # the English text's decimals are all there, as commas, in the French one
    n_en = len(re.findall(r"(?<![\w.])\d+\.\d+(?![\w]|\.\d)", _text(en)))
    assert n_en > 10 and len(re.findall(r"(?<![\w,])\d+,\d+", _text(fr))) >= n_en
    # data carried by the page (attributes, the style sheet) is unchanged
    assert re.findall(r'data-[a-z-]+="[^"]*"', fr) == re.findall(r'data-[a-z-]+="[^"]*"', en)
    css = [re.search(r"<style\b.*?</style>", h, re.S).group(0) for h in (en, fr)]  # (its page-footer words differ)
    assert re.findall(r"\d+\.\d+", css[1]) == re.findall(r"\d+\.\d+", css[0]) != []


@pytest.mark.parametrize("lang, expected", [
    ("en", {"right": "L", "left": "R", "bottom": "P", "top": "A"}),
    ("fr", {"right": "G", "left": "D", "bottom": "P", "top": "A"}),
])
def test_orientation_letters_drawn_on_an_axial_image(lang, expected):
    """An axial image as radiologists read it: image right = patient left, image down = posterior. The letters
    drawn on the picture are the ones returned: French D / G, never R / L, and A / P / S / I the same."""
    from osteoplan.views.render import draw_orientation, new_figure

    for outside in (False, True):
        ax = new_figure(3, 3).add_subplot()
        labels = draw_orientation(ax, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), outside=outside, lang=lang)
        assert labels == expected
        drawn = sorted(tx.get_text() for tx in ax.texts)
        assert drawn == sorted(expected.values())
    # an oblique edge: both letters mapped ("LA" -> "GA")
    ax = new_figure(3, 3).add_subplot()
    labels = draw_orientation(ax, np.array([0.8, -0.6, 0]), np.array([0, 0, -1.0]), lang=lang)
    assert labels["right"] == ("GA" if lang == "fr" else "LA") and labels["bottom"] == "I"


def test_french_orientation_note_names_the_letter_drawn():
    """The report's orientation note names the letter the French pictures carry for the patient's left."""
    from osteoplan.locale_fmt import orientation_letters
    from osteoplan.views.i18n import STRINGS

    notes = [v for v in STRINGS.values() if isinstance(v, dict) and "(letter L)" in str(v.get("en", ""))]
    assert notes
    for note in notes:
        assert f"(lettre {orientation_letters('L', 'fr')})" in note["fr"] and "(lettre L)" not in note["fr"]


def test_3d_view_axis_letters_in_french():
    """The 3D view's axis letters (an anterior view: patient left on the image right): French G / D where English
    writes L / R, at the same places; S / I unchanged."""
    from osteoplan.views.render import new_figure
    from osteoplan.views.surface import draw_axis_letters

    out = {}
    for lang in ("en", "fr"):
        ax = new_figure(4, 4).add_subplot(projection="3d")
        ax.set_xlim(-10, 10), ax.set_ylim(-10, 10), ax.set_zlim(-10, 10)
        ax.view_init(elev=0, azim=-90)  # the camera in front of the patient (-y in LPS: anterior)
        out[lang] = draw_axis_letters(ax, np.zeros(3), 10.0, 0.0, -90.0, lang=lang)
        assert sorted(tx.get_text() for tx in ax.texts) == sorted(out[lang])
    assert set(out["en"]) == {"L", "R", "S", "I"} and set(out["fr"]) == {"G", "D", "S", "I"}
    assert out["en"]["L"][0] > 0.5 > out["en"]["R"][0]  # patient left on the image right
    for en, fr in (("L", "G"), ("R", "D"), ("S", "S"), ("I", "I")):
        assert out["fr"][fr] == pytest.approx(out["en"][en])
