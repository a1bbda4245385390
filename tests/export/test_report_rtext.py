"""Report text found by a fresh reviewer: the hydrodissection limit is the protocol's configurable default (no
published figure, clinical primer), and the "other plans" table shows the chosen plan's score, says lower is better
and names a tie (equal scores to the precision shown) as the search's order, not a clinical preference."""

from __future__ import annotations

import html as _html
import re

import numpy as np
import pytest

from osteoplan.export.report import build_report_html, ranking_rows
from osteoplan.imaging.volume import Volume, axis_aligned_affine

from export_planfactory import make_plan


def _vol():
    return Volume(np.zeros((20, 30, 30), np.float32), axis_aligned_affine((2.0, 1.0, 1.0), (-15.0, -15.0, -20.0)))


def _text(html: str) -> str:
    return _html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))).replace("\u00a0", " ")


def _two_plans(score1: float, score2: float):
    plan = make_plan(_vol(), [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0.0, 0.0, 0.0])
    t1 = plan.trajectories[0].model_copy(update={"score": score1})
    t2 = t1.model_copy(update={"rank": 2, "score": score2, "side": "right"})
    return plan.model_copy(update={"trajectories": (t1, t2)})


@pytest.mark.parametrize("lang, says", [
    ("en", "Largest displacement needed 3.5 mm; the protocol assumes hydrodissection can displace up to 10.0 mm "
           "(configurable default, no published source: how far hydrodissection displaces a structure is not "
           "published)."),
    ("fr", "Plus grand déplacement nécessaire 3,5 mm ; le protocole suppose que l'hydrodissection peut déplacer "
           "jusqu'à 10,0 mm (valeur par défaut configurable, sans source publiée : le déplacement obtenu par "
           "l'hydrodissection n'est pas publié)."),
])
def test_hydrodissection_limit_is_a_configurable_default_not_a_fact(lang, says):
    plan = make_plan(_vol(), [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0.0, 0.0, 0.0])
    html = build_report_html(plan, {}, lang=lang)
    limit = re.search(r'<span class="hydro-limit">(.*?)</span>', html, re.S)
    assert limit is not None and _text(limit.group(1)) == says
    assert "achievable" not in _text(html) and "réalisable 10" not in _text(html)
    if lang == "fr":  # French typography: a no-break space before ';' and ':'
        assert "3,5\u00a0mm\u00a0;" in limit.group(1) or "3,5 mm\u00a0;" in limit.group(1)
        assert "publiée\u00a0:" in limit.group(1)


def test_other_plans_show_the_chosen_score_lower_is_better_and_the_tie():
    plan = _two_plans(8.437, 8.437)
    html = build_report_html(plan, {}, lang="en")
    rows = re.findall(r'<tr class="rank-row( chosen)?" data-rank="(\d)">.*?<td class="num score">([^<]*)</td>',
                      html, re.S)
    assert rows == [(" chosen", "1", "8.437"), ("", "2", "8.437")]
    assert "<th>Score (lower is better)</th>" in html
    note = re.findall(r'<p class="note score-tie">(.*?)</p>', html, re.S)
    assert len(note) == 1 and _text(note[0]).startswith("Tie: plans #1 and #2 have the same score to the precision "
                                                        "shown (8.437). Their order comes from the search alone")
    assert "not from a clinical preference" in note[0]
    fr = build_report_html(plan, {}, lang="fr")
    assert "Égalité\u00a0: les plans #1 et #2 ont le même score à la précision affichée (8,437)" in fr
    assert "Score (le plus bas est le meilleur)" in fr and "1 (retenu)" in fr


def test_no_tie_note_when_scores_differ_at_the_precision_shown():
    rows, ties = ranking_rows(_two_plans(8.437, 8.438))
    assert [(r["traj"].rank, r["chosen"], r["score"]) for r in rows] == [(1, True, "8.437"), (2, False, "8.438")]
    assert ties == []
    rows, ties = ranking_rows(_two_plans(-1.5, -1.5))  # negative scores (rewards outweigh penalties) tie alike
    assert len(ties) == 1 and "(-1.500)" in ties[0]

