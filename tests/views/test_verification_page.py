"""The verification page: planned vs actual on reformats and simulated fluoroscopy, EN/FR, HTML and PDF.

The views must agree with each other and with the image: on every view, the drawn tip is where the metal
ends in the picture (the control CT's own pixels), within a millimetre.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from osteoplan.verification.deviation import deviation_figures
from osteoplan.verification.synth import make_control_ct
from osteoplan.views.verification import (control_in_planning_frame, verification_drr_figure, verification_figure,
                                          verification_html, verification_rows)


@pytest.fixture(scope="module")
def case():
    """Phantom, a control CT with a 2.5 mm pin (patient moved) and the same control CT without it; the result
    built from the known truth (so the test checks the views, not the detection)."""
    from osteoplan.anatomy.phantom import PhantomParams, make_phantom, reference_trajectory

    ph = make_phantom(PhantomParams(spacing_mm=1.0, fov_inferior_mm=-60.0))
    ref = reference_trajectory(ph)
    e, be, t = (np.asarray(ref[k], float) for k in ("skin_entry", "bone_entry", "target"))
    kw = dict(seed=5, angle_deg=4.0, offset_mm=2.5, short_of_target_mm=7.0, diameter_mm=2.5, rotation_deg=8.0,
              translation_mm=10.0, streaks=False, noise_hu=0.0)
    ctrl, truth = make_control_ct(ph.volume, e, t, **kw)
    empty, truth0 = make_control_ct(ph.volume, e, t, instrument=False, **kw)
    assert np.allclose(truth.control_from_planning, truth0.control_from_planning)
    d = truth.direction_planning_unit
    res = deviation_figures(e, be, t, truth.tip_planning_lps_mm, d, stage="pin")
    res.update(stage="pin", instrument={"direction_unit": d.tolist(),
                                        "rear_lps_mm": (truth.tip_planning_lps_mm - 40 * d).tolist()},
               registration={"planning_from_control": np.linalg.inv(truth.control_from_planning).tolist(),
                             "residual_median_mm": 0.1, "residual_p90_mm": 0.2},
               clearances=[{"structure": "spinal_canal", "margin_mm": 2.0, "planned_clearance_mm": 4.1,
                            "actual_clearance_mm": 1.5, "status": "inside_margin"}],
               tip_uncertainty_mm=0.3, notes=["the instrument leaves the control CT's field of view: its visible "
                                              "part is used for the axis"])
    return ctrl, empty, truth, res, e, t


def _half_way_mm(prof: np.ndarray, s: np.ndarray) -> float:
    """Position where a falling profile (metal for s < 0) crosses half-way between its two sides."""
    hi, lo = np.median(prof[s <= -3]), np.median(prof[s >= 3])
    half = 0.5 * (hi + lo)
    k = int(np.nonzero(prof >= half)[0].max())
    return float(s[k] + (prof[k] - half) / (prof[k] - prof[k + 1]) * (s[k + 1] - s[k]))


def test_reformats_show_the_metal_ending_at_the_drawn_tip(case):
    ctrl, _, truth, res, e, t = case
    fig = verification_figure(ctrl, res, e, t)
    tip, d = truth.tip_planning_lps_mm, truth.direction_planning_unit
    s = np.arange(-6.0, 6.01, 0.1)
    for key, plane, ax, img in fig._osteoplan_panels[:2]:
        rc = plane.to_pixel(tip + s[:, None] * d)
        prof = ndi.map_coordinates(img, rc.T, order=1)
        assert abs(_half_way_mm(prof, s)) <= 0.5, key
        # the marker drawn for the tip is at the tip's in-plane position
        marks = [ln.get_xydata()[0] for ln in ax.lines if ln.get_marker() == "o"]
        assert np.allclose(marks[0], plane.to_2d(np.asarray(res["tip_lps_mm"])), atol=1e-6)
    # the panel across the plan is centred on the target
    plane = fig._osteoplan_panels[2][1]
    assert np.allclose(plane.to_2d(t), 0.0, atol=1e-9)


@pytest.mark.slow
def test_fluoroscopy_views_show_the_metal_ending_at_the_drawn_tip(case):
    """AP and lateral DRRs: the metal's own shadow (DRR with the pin minus the DRR without it) ends where the
    tip is drawn; bull's-eye: the drawn tip lies on the pin's shadow. Orientation letters: L on the AP's right,
    A on the lateral's left, S up."""
    ctrl, empty, truth, res, e, t = case
    P = res["registration"]["planning_from_control"]
    kw = dict(n_pixels=220, volume_in_plan=None)
    fig = verification_drr_figure(ctrl, res, e, t, **{**kw, "volume_in_plan": control_in_planning_frame(ctrl, P, t)})
    fig0 = verification_drr_figure(empty, res, e, t, **{**kw, "volume_in_plan": control_in_planning_frame(empty, P, t)})
    tip, d = truth.tip_planning_lps_mm, truth.direction_planning_unit
    s = np.arange(-6.0, 6.01, 0.1)
    for (view, geo, ax, od), (_, _, _, od0) in zip(fig._osteoplan_panels, fig0._osteoplan_panels):
        shadow = od - od0
        if view in ("ap", "lateral"):
            rc = geo.project(tip + s[:, None] * d)
            prof = ndi.map_coordinates(shadow, rc.T, order=1)
            assert abs(_half_way_mm(prof, s)) <= 1.0, view
        else:
            r, c = geo.project(tip - 1.0 * d)
            assert ndi.map_coordinates(shadow, [[r], [c]], order=1)[0] >= 0.5 * shadow.max()
        texts = {tx.get_text() for tx in ax.texts}
        if view == "ap":
            assert {"L", "R", "S"} <= texts
            assert geo.detector_u[0] > 0.99  # image right = patient left
        if view == "lateral":
            assert {"A", "P", "S"} <= texts
            assert geo.detector_u[1] > 0.99  # image right = posterior: anterior on the left
        marks = [ln.get_xydata()[0] for ln in ax.lines if ln.get_marker() == "o"]
        assert np.allclose(marks[0], geo.project(np.asarray(res["tip_lps_mm"]))[::-1], atol=1e-6)


def test_page_in_both_languages(case):
    _, _, _, res, _, _ = case
    png = b"\x89PNG\r\n\x1a\nfake"
    en = verification_html(res, png, lang="en", drr_png=png)
    fr = verification_html(res, png, lang="fr", drr_png=png)
    assert "Angle to the plan" in en and "Simulated fluoroscopy of the control CT" in en
    assert "Angle avec le plan" in fr and "Scopie simulée du scanner de contrôle" in fr
    assert "Angle to the plan" not in fr and "field of view" not in fr  # the known note is translated too
    assert "DANS LA MARGE" in fr and "INSIDE MARGIN" in en
    rows = dict(verification_rows(res, "fr"))
    assert rows["Angle avec le plan"] == f"{res['angle_to_plan_deg']:.1f}°"
    assert rows["Incertitude de la pointe le long de l'instrument"] == "± 0.3 mm"
    with pytest.raises(ValueError):
        verification_html(res, png, lang="de")


@pytest.mark.slow
def test_pdf_pages(case):
    from osteoplan.export.report import html_to_pdf, pdf_pages_to_png

    ctrl, _, _, res, e, t = case
    from osteoplan.views.verification import render_verification_drr_png, render_verification_png

    png = render_verification_png(ctrl, res, e, t, lang="fr")
    drr = render_verification_drr_png(ctrl, res, e, t, lang="fr", n_pixels=200)
    pdf = html_to_pdf(verification_html(res, png, lang="fr", drr_png=drr))
    assert pdf[:4] == b"%PDF"
    assert len(pdf_pages_to_png(pdf, scale=0.5)) == 2


def test_french_page_and_figure_follow_french_conventions(case):
    """French: decimal comma in the page's text and the figure's title, D / G letters on the reformats (never R / L);
    English keeps points and R / L."""
    import re

    from osteoplan.views.verification import verification_figure

    ctrl, _, _, res, e, t = case
    png = b"\x89PNG\r\n\x1a\nfake"
    en = verification_html(res, png, lang="en")
    fr = verification_html(res, png, lang="fr")
    angle = f"{res['angle_to_plan_deg']:.1f}"
    assert f"{angle}°" in en and f"{angle.replace('.', ',')}°" in fr and f"{angle}°" not in fr
    assert "± 0,3 mm" in fr and "0,10 / 0,20 mm" in fr and "± 0.3 mm" in en
    text_fr = re.sub(r"<style\b.*?</style>|<[^>]*>", " ", fr, flags=re.S)
    assert re.findall(r"(?<![\w.])-?\d+\.\d+(?![\w]|\.\d)", text_fr) == []
    assert re.findall(r"\b(?:LAO|RAO)\b", text_fr) == [] and re.search(r"\bOA[GD] \d+°", text_fr)
    assert re.search(r"\b[LR]AO \d+°", en)
    for lang, side_letters, other in (("fr", {"D", "G"}, {"R", "L"}), ("en", {"R", "L"}, {"D", "G"})):
        fig = verification_figure(ctrl, res, e, t, lang=lang)
        letters = {tx.get_text() for ax in fig.axes for tx in ax.texts if 0 < len(tx.get_text()) <= 3
                   and tx.get_text().isupper()}
        chars = set("".join(letters))
        assert chars & side_letters and not chars & other, (lang, letters)
        title = fig._suptitle.get_text()
        assert (angle.replace(".", ",") if lang == "fr" else angle) in title


def test_french_page_statuses_agree_with_the_structures_and_use_french_typography(case):
    """French check page: each status agrees with its structure's name (l'artère NON ÉVALUÉE, la moelle couverte, les
    voies aériennes conformes), no plain space before ':' ';' '?' '!' (a no-break one); English unchanged."""
    import html as _html
    import re

    _, _, _, res, _, _ = case
    rows = [{"structure": "vertebral_artery_left", "margin_mm": 3.0, "planned_clearance_mm": None,
             "actual_clearance_mm": None, "status": "not_assessed"},
            {"structure": "pharynx", "margin_mm": 3.0, "planned_clearance_mm": None, "actual_clearance_mm": None,
             "status": "not_assessed"},
            {"structure": "spinal_cord", "margin_mm": 3.0, "planned_clearance_mm": None, "actual_clearance_mm": None,
             "status": "covered", "covered_by": "spinal_canal"},
            {"structure": "airway", "margin_mm": 3.0, "planned_clearance_mm": 8.0, "actual_clearance_mm": 7.5,
             "status": "pass"}]
    png = b"\x89PNG\r\n\x1a\nfake"
    fr = verification_html(dict(res, clearances=rows), png, lang="fr")
    en = verification_html(dict(res, clearances=rows), png, lang="en")
    cells = dict(re.findall(r"<tr><td>([^<]+)</td>.*?<td class='st-[a-z_]+'>([^<]+)</td></tr>", fr))
    cells = {_html.unescape(k): _html.unescape(v) for k, v in cells.items()}
    assert cells["artère vertébrale gauche"] == "NON ÉVALUÉE" and cells["pharynx"] == "NON ÉVALUÉ"
    assert cells["moelle épinière"] == "couverte par le canal rachidien"
    assert cells["voies aériennes"] == "conformes"
    assert "NOT ASSESSED" in en and "covered by the spinal canal" in en
    text = _html.unescape(re.sub(r"<style\b.*?</style>|<[^>]*>", "\n", fr, flags=re.S))
    assert re.findall(r" [:;?!]", text) == [] and "\u00a0:" in text
