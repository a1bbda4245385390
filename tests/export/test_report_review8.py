"""Report defects found by review 8: every status has a visible badge, the clearance table fits A4, the other
plans say "not assessed" for hydrodissection when a displaceable structure was not assessed, cement with no lesion."""

from __future__ import annotations

import re
import typing

import numpy as np
import pytest

from osteoplan.locale_fmt import french_typography
from osteoplan.export.report import build_report_html, clearance_rows, status_label
from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.planning.model import ClearanceCheck, Status
from osteoplan.planning.planner import COVERED_BY
from osteoplan.views.colors import STATUS_COLORS
from osteoplan.views.i18n import LANGS, STRINGS

from export_planfactory import make_plan

#: every status the planner can emit, from the model's type (not listed by hand)
ALL_STATUSES = typing.get_args(Status)


def _vol():
    return Volume(np.zeros((20, 30, 30), np.float32), axis_aligned_affine((2.0, 1.0, 1.0), (-15.0, -15.0, -20.0)))


def _check(structure, status, note=None, clearance=None):
    return ClearanceCheck(structure=structure, category="hard", margin_mm=3.0, clearance_mm=clearance, status=status,
                          segmented=clearance is not None, source="test" if clearance is not None else None,
                          note=note)


def test_statuses_enumerated_from_the_model():
    assert {"pass", "fail", "covered", "not_assessable"} <= set(ALL_STATUSES)


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_every_status_has_a_translation_a_colour_and_a_css_class(status):
    assert f"status_{status}" in STRINGS, status
    assert set(LANGS) <= set(STRINGS[f"status_{status}"]), status
    assert status in STATUS_COLORS, status
    checks = (_check("spinal_canal", "pass", clearance=4.0), _check("spinal_cord", status))
    plan = make_plan(_vol(), [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0.0, 0.0, 0.0], checks=checks)
    for lang in LANGS:
        html = build_report_html(plan, {}, lang=lang)
        css = dict(re.findall(r"\.status-([a-z_]+) \{ background: (#[0-9a-fA-F]{6}); \}", html))
        assert css.get(status) not in (None, "#ffffff", "#FFFFFF"), (status, css)
        badge = re.search(r'data-structure="spinal_cord" data-status="%s">.*?<span class="badge status-%s">([^<]*)<'
                          % (status, status), html, re.S)
        assert badge is not None and badge.group(1).strip(), (status, lang)


def test_covered_badge_names_what_covers_it():
    cord_note = f"{COVERED_BY['spinal_cord'][2]}: see spinal_canal"
    va_note = f"{COVERED_BY['vertebral_artery_left'][2]}: see vertebral_artery_canal_left"
    cord, va = _check("spinal_cord", "covered", cord_note), _check("vertebral_artery_left", "covered", va_note)
    cont = _check("aorta", "covered", "not segmented; covered by containment: the instrument stays 1.2 mm or more")
    assert status_label(cord, "en") == "covered by the spinal canal"
    assert status_label(cord, "fr") == "couverte par le canal rachidien"  # la moelle épinière
    assert status_label(va, "en") == "covered by its bony canal"
    assert status_label(va, "fr") == "couverte par son canal osseux"  # l'artère vertébrale
    assert status_label(cont, "en") == "covered by containment in bone"
    plan = make_plan(_vol(), [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0.0, 0.0, 0.0],
                     checks=(_check("spinal_canal", "pass", clearance=4.0), cord, va))
    rows = {r["structure"]: r for r in clearance_rows(plan, "fr")}
    assert rows["spinal_cord"]["status_label"] == "couverte par le canal rachidien"
    assert "spinal_canal" not in rows["spinal_cord"]["source"]  # the key is not shown, its name is
    assert rows["spinal_cord"]["source"].startswith("— (couverte par la distance au canal rachidien")
    assert "évaluée par son canal osseux" in rows["vertebral_artery_left"]["source"]


def _airway_plan():
    def hd(s, c, d):
        return ClearanceCheck(structure=s, category="displaceable", margin_mm=3.0, clearance_mm=c, status="hydrodissection",
                              displacement_needed_mm=d, segmented=True, source="classical: bony canal (transverse foramina)")
    checks = (_check("spinal_canal", "pass", clearance=4.0), hd("pharynx", 0.35, 2.65), hd("airway", 0.35, 2.65),
              _check("spinal_cord", "covered", f"{COVERED_BY['spinal_cord'][2]}: see spinal_canal"),
              _check("internal_jugular_vein_left", "not_assessed", "not segmented"))
    plan = make_plan(_vol(), [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0.0, 0.0, 0.0], checks=checks)
    return _with_alternatives(plan, {"hydrodissection_required": False})  # the 8-column "other plans" table too


@pytest.mark.parametrize("lang", LANGS)
def test_clearance_table_fits_the_a4_page(lang):
    """Every table cell of the laid-out PDF lies inside the page's content box (the airway's long note wraps)."""
    weasyprint = pytest.importorskip("weasyprint")
    html = build_report_html(_airway_plan(), {}, lang=lang)
    assert 'class="cell-note"' in html  # the airway's note is apart from its number
    doc = weasyprint.HTML(string=html).render()
    n_cells = 0
    for page in doc.pages:
        root = page._page_box
        right_mm = (root.margin_width() - root.margin_right) / 96 * 25.4  # CSS px -> mm
        for box in root.descendants():
            if type(box).__name__ == "TableCellBox":
                n_cells += 1
                edge_mm = (box.position_x + box.margin_width()) / 96 * 25.4
                assert edge_mm <= right_mm + 0.1, (lang, edge_mm, right_mm)
    assert n_cells > 50  # the tables were laid out


def _with_alternatives(plan, *alts):
    best = plan.trajectories[0]
    trajs = [best] + [best.model_copy(update={"rank": k, **a}) for k, a in enumerate(alts, start=2)]
    return plan.model_copy(update={"trajectories": tuple(trajs)})


def _alt_cells(html):
    """The hydrodissection cells of the other plans (the table's first row is the chosen plan, for comparison)."""
    return re.findall(r'<td class="alt-hydro">([^<]*)</td>', html)[1:]


def test_other_plans_say_not_assessed_when_a_displaceable_structure_was_not_assessed():
    carotid_na = ClearanceCheck(structure="common_carotid_artery_left", category="displaceable", margin_mm=5.0,
                                clearance_mm=None, status="not_assessed", segmented=False, note="not segmented")
    jugular_na = carotid_na.model_copy(update={"structure": "internal_jugular_vein_left",
                                               "status": "not_assessable"})
    clear = ClearanceCheck(structure="airway", category="displaceable", margin_mm=3.0, clearance_mm=8.0,
                           status="pass", segmented=True, source="test")
    hard_na = carotid_na.model_copy(update={"structure": "spinal_cord", "category": "hard"})
    pushed = clear.model_copy(update={"clearance_mm": 1.0, "status": "hydrodissection", "displacement_needed_mm": 2.0})
    plan = _with_alternatives(make_plan(_vol(), [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0.0, 0.0, 0.0]),
                              {"hydrodissection_required": False, "clearances": (clear, carotid_na, jugular_na)},
                              {"hydrodissection_required": False, "clearances": (clear, hard_na)},
                              {"hydrodissection_required": True, "clearances": (pushed, carotid_na)})
    en = _alt_cells(build_report_html(plan, {}, lang="en"))
    assert en == ["NOT ASSESSED: left common carotid and left internal jugular vein", "no",
                  "yes; NOT ASSESSED: left common carotid"]
    fr = _alt_cells(build_report_html(plan, {}, lang="fr"))
    assert fr[1] == "non" and fr[0].startswith("NON ÉVALUÉES\u00a0: carotide commune gauche")  # two feminine names


def test_cement_without_lesion_says_no_volume_planned():
    plan = make_plan(_vol(), [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0.0, 0.0, 0.0])
    plan = plan.model_copy(update={"cement": plan.cement.model_copy(update={"lesion_volume_ml": 0.0,
                                                                           "suggested_pmma_ml": (0.0, 0.0)})})
    for lang in LANGS:
        html = build_report_html(plan, {}, lang=lang)
        assert "0.0–0.0 mL" not in html and "0,0–0,0 mL" not in html and "0,00 mL" not in html
        want = STRINGS["cement_none_planned"][lang]
        assert f'<td class="cement-none">{french_typography(want) if lang == "fr" else want}</td>' in html
        assert STRINGS["lesion_none_found"][lang] in html
    # with a lesion the range is given
    assert "2.0–3.0 mL" in build_report_html(make_plan(_vol(), [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0, 0, 0.0]))
