"""Report, DICOM SR and Slicer markups of a vertebroplasty plan (two levels, needles, pedicle grades, a breached
posterior wall): what they say, read back from the files."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from export_planfactory import make_vertebroplasty_plan, synthetic_vertebra

from osteoplan.export import write_markups
from osteoplan.export.dicom import DicomContext, build_sr, ct_datasets, sr_comments, sr_points
from osteoplan.export.report import build_report_html, needle_gauge


@pytest.fixture(scope="module")
def plan_and_volume():
    vol, _, needles = synthetic_vertebra()
    needles[1] = dict(needles[1], level="L2", grade="C", margin=-2.6, wall="medial")  # second level, breached
    return make_vertebroplasty_plan(vol, needles, breached_wall_level="L2", risk_level="C2"), vol


def _text(html: str) -> str:
    html = re.sub(r'src="data:[^"]+"', "", html)
    html = re.sub(r"<style.*?</style>", "", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def test_needle_gauge_iso_9626():
    assert needle_gauge(3.05) == 11 and needle_gauge(2.41) == 13 and needle_gauge(2.9) is None


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_report_says_procedure_levels_needles_and_the_breached_wall(plan_and_volume, lang):
    plan, _ = plan_and_volume
    html = build_report_html(plan, {}, lang=lang, case_label="vp1")
    text = _text(html)
    from osteoplan.planning.protocol import load_protocol

    route = {"transpedicular": ("transpedicular route", "voie transpédiculaire"),
             "parapedicular": ("parapedicular route", "voie parapédiculaire")}[load_protocol(plan.protocol_name).route]
    title = (f"Vertebroplasty, {route[0]} — L1-L2" if lang == "en" else f"Vertébroplastie, {route[1]} — L1-L2")
    assert title in text  # the procedure, its route (two routes to one procedure are told apart) and the levels
    # per needle: level/side, gauge, pedicle grade and wall, tip position
    assert ("Needle 1 (L1 left)" if lang == "en" else "Aiguille 1 (L1 gauche)") in text
    assert ("Needle 2 (L2 right)" if lang == "en" else "Aiguille 2 (L2 droite)") in text
    def num(s: str) -> str:  # French: decimal comma (osteoplan.locale_fmt)
        return s if lang == "en" else s.replace(".", ",")

    assert text.count(num("11 G, 3.05 mm")) == 2
    assert 'data-grade="A"' in html and 'data-grade="C"' in html
    assert num("-2.6 mm") in text and "70 %" in text and num("+2.5 mm") in text
    # cement per level with its source; the breached posterior wall said loudly, at the top
    assert 'data-level="L1"' in html and num("4.0–6.0 mL") in text and "Belkoff" in text
    alert = "POSTERIOR WALL BREACHED" if lang == "en" else "MUR POSTÉRIEUR ROMPU"
    assert alert in text and text.index(alert) < text.index("11 G")
    # no dens / screw wording; the C2 risk block is not presented as this plan's
    words = ("screw", "dens", "odontoid", "open-mouth") if lang == "en" else ("vis ", "odontoïde", "bouche ouverte")
    for w in words:
        assert w not in text.lower(), w
    assert ("Not assessed for L1-L2" if lang == "en" else "Non évalué pour L1-L2") in text


def test_unmeasured_pedicle_passage_reads_not_assessed(plan_and_volume):
    plan, vol = plan_and_volume
    _, _, needles = synthetic_vertebra()
    needles[1] = dict(needles[1], grade=None, margin=None, wall=None)
    html = build_report_html(make_vertebroplasty_plan(vol, needles), {}, lang="en")
    tables = re.findall(r'<table class="pedicle[^"]*" data-grade="([^"]*)">(.*?)</table>', html, re.S)
    assert [g for g, _ in tables] == ["A", ""]
    assert "NOT ASSESSED" in _text(tables[1][1]) and "NOT ASSESSED" not in _text(tables[0][1])
    # a parapedicular needle passes beside the pedicle: no pedicle passage is expected of it
    html = build_report_html(make_vertebroplasty_plan(vol, needles, route="parapedicular"), {}, lang="en")
    assert [g for g, _ in re.findall(r'<table class="pedicle[^"]*" data-grade="([^"]*)">(.*?)</table>', html,
                                     re.S)] == ["A"]


def test_sr_holds_every_needle_with_its_level_and_the_procedure(plan_and_volume):
    plan, vol = plan_and_volume
    ctx = DicomContext.for_volume(vol, "vp1")
    sr = build_sr(plan, ct_datasets(vol, ctx), ctx)
    pts = sr_points(sr)
    for n, tr in enumerate(plan.trajectories, start=1):
        name = f"needle {n} {tr.level} {tr.side}"
        np.testing.assert_allclose(pts[f"{name}: Skin entry"], tr.skin_entry_lps_mm, atol=1e-3)
        np.testing.assert_allclose(pts[f"{name}: Bone entry"], tr.bone_entry_lps_mm, atol=1e-3)
        np.testing.assert_allclose(pts[f"{name}: Target"], tr.target_lps_mm, atol=1e-3)
    assert sr_comments(sr)[-1].startswith("procedure vertebroplasty, level L1-L2, protocol "
                                          "vertebroplasty-transpedicular v1.0, 2 needles to place")
    idents = []

    def walk(items):
        for it in items:
            if getattr(it, "ValueType", "") == "TEXT" and it.ConceptNameCodeSequence[0].CodeValue == "112039":
                idents.append(str(it.TextValue))
            walk(getattr(it, "ContentSequence", []))

    walk(sr.ContentSequence)
    assert any(i.startswith("needle 2 level L2 right, tip at 70 %") for i in idents)
    assert "pedicle margin (Gertzbein-Robbins C, medial wall)" in idents
    assert "needle diameter" in idents and not any("screw" in i for i in idents)


def test_markups_one_line_per_needle(plan_and_volume, tmp_path):
    plan, _ = plan_and_volume
    doc = json.loads(write_markups(tmp_path / "plan.mrk.json", plan).read_text())
    assert [m["name"] for m in doc["markups"]] == ["needle 1 L1 left", "needle 2 L2 right"]
    np.testing.assert_allclose(doc["markups"][1]["controlPoints"][1]["position"], plan.trajectories[1].target_lps_mm,
                               atol=1e-3)
