"""French grammar of the generated pages: the words that qualify a structure agree with its French name (gender and
number), French typography (a no-break space before ':' ';' '?' '!', '±', ranges with an en dash), no English
jargon left (mask sources, the CT's format).

The agreement is checked on the report's own output, for every structure a shipped protocol checks and every status
the plan model allows, against the gender of each name's head noun taken from a small French lexicon written here
(independently of ``osteoplan.views.i18n.FR_GENDER``)."""

from __future__ import annotations

import html as _html
import re
import tomllib
import typing

import numpy as np
import pytest

from osteoplan.export.report import build_report_html, clearance_rows, hydrodissection_cell
from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.locale_fmt import NBSP, french_typography
from osteoplan.planning.model import ClearanceCheck, Status
from osteoplan.planning.protocol import PROTOCOL_DIR
from osteoplan.views.i18n import FR_GENDER, STRINGS, agree, fr_gender, t

from export_planfactory import make_plan

#: Head nouns of the French structure names and their gender / number (any French dictionary).
HEAD_NOUNS = {"artère": "f", "artères": "fp", "carotide": "f", "veine": "f", "moelle": "f", "trachée": "f",
              "mandibule": "f", "aorte": "f", "parotide": "f", "lésion": "f", "voies": "fp", "vertèbres": "fp",
              "peau/corps": "f", "canal": "m", "pharynx": "m", "larynx": "m", "œsophage": "m", "poumon": "m",
              "crâne": "m", "tronc": "m", "os": "m", "douleur": "f", "localisation": "f", "atteinte": "f",
              "alignement": "m", "tassement": "m"}
#: The agreed forms of "not assessed" (badge, in capitals) by gender / number.
NOT_ASSESSED = {"m": "NON ÉVALUÉ", "f": "NON ÉVALUÉE", "mp": "NON ÉVALUÉS", "fp": "NON ÉVALUÉES"}


def head_gender(name_fr: str) -> str:
    """Gender / number of a French noun phrase from its head noun (the first word the lexicon knows; "autre(s)" is an
    adjective)."""
    for word in name_fr.lower().split():
        if word in HEAD_NOUNS:
            return HEAD_NOUNS[word]
    raise KeyError(f"no head noun known in {name_fr!r}")


def protocol_structures() -> set[str]:
    """Every structure key a shipped protocol checks."""
    out: set[str] = set()
    for path in PROTOCOL_DIR.glob("*.toml"):
        out |= set(tomllib.loads(path.read_text()).get("structures", {}))
    return out


def _text(page: str) -> str:
    page = re.sub(r"<(style|script)\b.*?</\1>", " ", page, flags=re.S)
    return _html.unescape(re.sub(r"<[^>]*>", "\n", page))


def _vol():
    return Volume(np.zeros((20, 30, 30), np.float32), axis_aligned_affine((2.0, 1.0, 1.0), (-15.0, -15.0, -20.0)))


def _plan_with(checks, not_assessed=()):
    p = make_plan(_vol(), [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0.0, 0.0, 0.0], checks=tuple(checks))
    return p.model_copy(update={"not_assessed": tuple(not_assessed)})


def _badges(page: str) -> dict[str, str]:
    """structure key -> the text of its status badge, read from the report's HTML."""
    return {m.group(1): _html.unescape(m.group(2)).strip() for m in re.finditer(
        r'data-structure="([^"]+)" data-status="[^"]+">.*?<span class="badge status-[^"]+">([^<]*)<', page, re.S)}


class TestGenderTable:
    def test_every_checked_structure_has_its_gender_from_its_head_noun(self):
        """Every structure of every protocol (and every entry of the table) has the gender of its French head noun."""
        keys = protocol_structures() | set(FR_GENDER)
        assert len(protocol_structures()) >= 20
        for k in sorted(keys):
            assert k in FR_GENDER or k.startswith("vertebrae_"), f"{k}: no French gender in FR_GENDER"
            assert fr_gender(k) == head_gender(t(k, "fr")), k

    def test_agreement_rule_on_lists(self):
        """One name: its own gender; several: plural, feminine only when every name is feminine."""
        assert agree("status_not_assessed", "fr", "pharynx") == "non évalué"
        assert agree("status_not_assessed", "fr", "spinal_cord") == "non évaluée"
        assert agree("status_not_assessed", "fr", "airway") == "non évaluées"
        assert agree("status_not_assessed", "fr", ["spinal_cord", "trachea"]) == "non évaluées"
        assert agree("status_not_assessed", "fr", ["spinal_cord", "esophagus"]) == "non évalués"
        assert agree("status_not_assessed", "en", "spinal_cord") == "not assessed"
        assert agree("status_not_assessed", "fr", gender="fp") == "non évaluées"
        # the SINS components a total lacks: "douleur manquante", "douleur, alignement radiographique manquants"
        assert agree("risk_missing_list", "fr", ["sins_comp_pain"]) == "{missing} manquante"
        assert agree("risk_missing_list", "fr", ["sins_comp_pain", "sins_comp_alignment"]) == "{missing} manquants"


class TestReportAgreement:
    @pytest.mark.parametrize("status", ["not_assessed", "not_assessable", "pass", "covered"])
    def test_status_badges_agree_with_every_structure_name(self, status):
        """A plan whose every protocol structure has *status*: each French badge in the report's HTML agrees with the
        structure's name (gender from the head noun), the English ones unchanged."""
        keys = sorted(protocol_structures())
        checks = [ClearanceCheck(structure=k, category="hard", margin_mm=3.0,
                                 clearance_mm=5.0 if status == "pass" else None, status=status,
                                 segmented=status == "pass", source="test" if status == "pass" else None,
                                 note="covered by containment: x" if status == "covered" else None) for k in keys]
        fr = _badges(build_report_html(_plan_with(checks), {}, lang="fr"))
        en = _badges(build_report_html(_plan_with(checks), {}, lang="en"))
        assert set(fr) == set(keys) == set(en)
        for k in keys:
            g = head_gender(t(k, "fr"))
            if status == "not_assessed":
                assert fr[k] == NOT_ASSESSED[g], k
                assert en[k] == "NOT ASSESSED"
            elif status == "not_assessable":
                assert fr[k] == ("NON ÉVALUABLES" if g.endswith("p") else "NON ÉVALUABLE") + " SUR CE SCANNER"
            elif status == "pass":
                assert fr[k] == ("conformes" if g.endswith("p") else "conforme"), k
            else:
                word = {"m": "couvert", "f": "couverte", "mp": "couverts", "fp": "couvertes"}[g]
                assert fr[k] == f"{word} par le confinement dans l'os", (k, fr[k])

    def test_every_status_of_the_model_has_its_agreed_forms_or_is_invariable(self):
        """Statuses that are adjectives have their feminine / plural forms; the others (nouns) are invariable."""
        for status in typing.get_args(Status):
            entry = STRINGS[f"status_{status}"]
            if status in ("fail", "hydrodissection"):  # nouns: "échec", "hydrodissection"
                assert not any(k.startswith("fr_") for k in entry), status
                continue
            fem = agree(f"status_{status}", "fr", "spinal_cord")
            assert fem == entry.get("fr_f", entry["fr"])
            assert agree(f"status_{status}", "fr", "airway") == entry["fr_fp"], status

    def test_plan_level_not_assessed_rows_and_lists(self):
        """Rows added for the plan's not-assessed list agree too; the lists say "aucune" (structures)."""
        page = build_report_html(_plan_with([], not_assessed=("vertebral_artery_left", "esophagus", "airway")), {},
                                 lang="fr")
        assert _badges(page) == {"vertebral_artery_left": "NON ÉVALUÉE", "esophagus": "NON ÉVALUÉ",
                                 "airway": "NON ÉVALUÉES"}
        none = _plan_with([]).model_copy(update={"not_assessed": (), "assessed": ()})
        text = _text(build_report_html(none, {}, lang="fr"))
        assert f"Structures NON évaluées{NBSP}:\n aucune" in text and f"Structures évaluées{NBSP}:\n aucune" in text
        assert "aucun\n" not in text

    def test_hydrodissection_cell_agrees_with_the_structures_named(self):
        """The 'other plans' cell names the unassessed displaceable structures with an agreed 'NON ÉVALUÉ(E)(S)'."""
        def traj(*names):
            return _plan_with([ClearanceCheck(structure=n, category="displaceable", margin_mm=5.0, clearance_mm=None,
                                              status="not_assessed", segmented=False) for n in names]).best
        def tail(cell):  # the factory's trajectory needs hydrodissection: "oui ; NON ÉVALUÉ : ..."
            return re.split(r" ?; ", cell, maxsplit=1)[-1]

        assert tail(hydrodissection_cell(traj("pharynx"), "fr")) == "NON ÉVALUÉ : pharynx"
        assert tail(hydrodissection_cell(traj("internal_jugular_vein_left"), "fr")).startswith("NON ÉVALUÉE : ")
        assert tail(hydrodissection_cell(traj("pharynx", "common_carotid_artery_left"), "fr")).startswith(
            "NON ÉVALUÉS : ")
        assert tail(hydrodissection_cell(traj("pharynx"), "en")) == "NOT ASSESSED: pharynx"

    def test_bare_not_segmented_note_agrees(self):
        rows = clearance_rows(_plan_with([ClearanceCheck(structure=n, category="hard", margin_mm=3.0, clearance_mm=None,
                                                         status="not_assessed", segmented=False, source=None,
                                                         note="not segmented") for n in ("aorta", "lung")]), "fr")
        assert [r["source"] for r in rows] == ["— (non segmentée)", "— (non segmenté)"]


class TestFrenchTypography:
    def test_rules(self):
        assert french_typography("Statut : a ; b ? c !") == f"Statut{NBSP}: a{NBSP}; b{NBSP}? c{NBSP}!"
        assert french_typography("Structures évaluées: aucune") == f"Structures évaluées{NBSP}: aucune"
        assert french_typography("« bull's-eye »") == f"«{NBSP}bull's-eye{NBSP}»"
        assert french_typography("29,4 ° / -63,7 ° (limite 30,0 °), 37 °C") == "29,4° / -63,7° (limite 30,0°), 37 °C"
        assert french_typography("2,9 +/- 0,7 mL (intervalle 2,0-4,0 mL), 210-230 mL") == \
            "2,9 ± 0,7 mL (intervalle 2,0–4,0 mL), 210–230 mL"
        # not punctuation: times, URLs, identifiers, HTML character references, dates
        for same in ("18:51 UTC", "http://x.org/a?b=1", "clearance:spinal_canal", "l&#39;os &amp; C2",
                     "2026-12-06", "C1-C2", "c2-dens-anterior"):
            assert french_typography(same) == same

    def test_report_text_has_french_typography_everywhere(self):
        """The French report's whole text: no plain space before ':' ';' '?' '!', none glued to its word, no '+/-', no
        unconverted range, guillemets with no-break spaces; the English report keeps its own."""
        plan = make_plan(_vol(), [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0.0, 0.0, 0.0],
                         warnings=("Bull's-eye view needs LAO 29° / CAUD 64°: cranio-caudal angulation beyond 45 deg "
                                   "may not be reachable; use the progression view and CT checks instead.",))
        fr = _text(build_report_html(plan, {}, lang="fr"))
        assert_french_typography(fr)
        en = _text(build_report_html(plan, {}, lang="en"))
        assert NBSP not in en and "Hydrodissection:" in en


def assert_french_typography(text: str) -> None:
    """*text*: a French page's text (tags stripped, unescaped)."""
    assert re.findall(r"[ \u202f\u2009][:;?!]", text) == [], "a plain space before a two-part sign"
    glued = re.findall(r"[^\s\u00a0\d][:;?!](?=[\s)])", text)
    assert glued == [], f"a two-part sign without its no-break space: {glued}"
    assert f"{NBSP}:" in text and f"{NBSP};" in text
    assert "+/-" not in text
    assert re.findall(r"(?<![\w.,/-])\d+(?:,\d+)?-\d+(?:,\d+)? ?(?:mm|mL|%)", text) == []
    assert re.findall(r"« |\s»", text.replace(f"{NBSP}»", "")) == []
    assert "phantom-truth" not in text
    assert re.findall(r"\d[ \u00a0]°(?![CF])", text) == []


@pytest.mark.slow
def test_phantom_report_in_french_agrees_and_has_french_typography(tmp_path):
    """The real planner on the neck phantom with the vessels and the airway removed from the label map (not assessed)
    and the French report written from it: every badge agrees with its structure (head-noun gender), the typography
    is French, and no English mask source or format is left."""
    from osteoplan.anatomy.labelmap import LabelMap
    from osteoplan.anatomy.phantom import make_phantom
    from osteoplan.planning.planner import make_plan as plan_ct

    ph = make_phantom()
    drop = {"vertebral_artery_left", "vertebral_artery_right", "common_carotid_artery_left",
            "internal_jugular_vein_left", "airway", "trachea"}
    keep = [n for n in ph.truth.names() if n not in drop]
    lm = LabelMap(ph.volume, {n: ph.truth.get(n) for n in keep}, {n: ph.truth.sources[n] for n in keep})
    plan = plan_ct(ph.volume, lm, ph.landmarks, "c2-dens-anterior", lesion_mask=ph.truth.get("lesion"))
    page = build_report_html(plan, {}, lang="fr")
    badges = _badges(page)
    rows = {m.group(1): m.group(2) for m in re.finditer(r'data-structure="([^"]+)" data-status="([^"]+)"', page)}
    na = [k for k, st in rows.items() if st == "not_assessed"]
    assert {"common_carotid_artery_left", "internal_jugular_vein_left", "airway", "trachea"} <= set(na)
    # the vertebral artery without its vessel mask: covered by its measured bony canal (l'artère: "couverte")
    assert rows["vertebral_artery_left"] == "covered" and badges["vertebral_artery_left"] == "couverte par son canal osseux"
    for k in na:
        assert badges[k] == NOT_ASSESSED[head_gender(t(k, "fr"))], (k, badges[k])
    text = _text(page)
    assert_french_typography(text)
    assert "vérité terrain du fantôme" in text and "fantôme" in text.split("Scanner", 1)[1][:80]
    for english in ("phantom", "Max ", "Published", "CT\n"):
        assert english not in text, english


def test_french_information_sheet_has_french_typography():
    """The patient information sheet in French (osteoplan.workflow.infosheet): the same typography as the report."""
    from osteoplan.workflow.infosheet import TEXTS, render_html

    t_fr = TEXTS["fr"]
    ctx = {"lang": "fr", "t": t_fr, "case_code": "OP-1", "case_code_css": "OP-1", "generated": "2026-12-06",
           "site_text": "C2 (vertèbre)", "lesion_type_text": t_fr["types"]["lytic"], "score_text": "SINS 12",
           "decision_text": t_fr["decisions"]["screw_cement"], "cervical": True, "hydro": True,
           "screw_text": t_fr["screw"].format(d="4", l="34"), "cement_text": t_fr["cement"].format(v="2-3,5")}
    text = _text(render_html(ctx))
    assert_french_typography(text)
    assert "2–3,5 mL" in text and f"Information du patient{NBSP}: consolidation" in text
    en = _text(render_html({**ctx, "lang": "en", "t": TEXTS["en"]}))
    assert NBSP not in en
