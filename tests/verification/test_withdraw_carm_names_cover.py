"""Guidance of ``osteoplan verify`` against known geometry: a tip past the target is withdrawn first (measured),
the C-arm change goes to the bull's-eye down the corrected line, structures are named as in the report, and a
structure covered by its canal follows the planner's rule on the actual line.

Plan straight up (S): skin entry (0, 0, 0), bone entry (0, 0, 30), target (0, 0, 60) unless said otherwise.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace as NS

import numpy as np
import pytest

from osteoplan.verification.deviation import deviation_figures, line_clearances

E, BE, T = np.zeros(3), np.array([0.0, 0.0, 30.0]), np.array([0.0, 0.0, 60.0])
REG = {"residual_median_mm": 0.3, "residual_p90_mm": 0.9, "surface_overlap": 0.98}


def _result(f: dict, clearances=(), notes=()) -> dict:
    from osteoplan.verification.pipeline import attention_summary

    clr = list(clearances)
    return {**f, "stage": "pin", "clearances": clr, "summary": attention_summary(clr), "notes": list(notes),
            "tip_uncertainty_mm": None, "registration": REG}


def _page_text(page: str) -> str:
    import html

    return html.unescape(re.sub(r"<style\b.*?</style>|<[^>]*>", " ", page, flags=re.S))


class TestTipPastTheTarget:
    """A tip already beyond the target depth is withdrawn first, by a measured distance, before any turn."""

    def test_line_two_mm_off_is_withdrawn_to_the_bone_entry_then_turned(self):
        """Tip 4.0 mm past the target on a line parallel to the plan, 2 mm to the left: by hand, withdraw from
        z = 64 to the bone entry z = 30 (34.0 mm), turn atan(2 / 30) = 3.81 deg right about (2, 0, 30), then
        advance hypot(2, 30) = 30.07 mm to the target."""
        from osteoplan.faces.cli.verify import report_text
        from osteoplan.views.verification import verification_html, verification_rows

        f = deviation_figures(E, BE, T, (2.0, 0.0, 64.0), (0.0, 0.0, 1.0))
        assert f["tip_depth_short_of_target_along_plan_mm"] == pytest.approx(-4.0)
        c = f["correction"]
        w = c["withdraw_first"]
        assert w["beyond_target_depth_mm"] == pytest.approx(4.0) and w["line_miss_mm"] == pytest.approx(2.0)
        assert w["withdraw_to"] == "bone_entry" and w["withdraw_mm"] == pytest.approx(34.0)
        assert w["withdrawn_tip_lps_mm"] == pytest.approx([2.0, 0.0, 30.0])
        assert c["pivot_lps_mm"] == pytest.approx([2.0, 0.0, 30.0])
        assert c["turn_deg"] == pytest.approx(np.degrees(np.arctan(2.0 / 30.0)), abs=0.05)  # 3.81
        assert c["turn_components_lps_deg"][0] == pytest.approx(-3.8, abs=0.05)  # towards the right (-L)
        assert w["advance_after_mm"] == pytest.approx(np.hypot(2.0, 30.0), abs=0.05)  # 30.07
        assert c["miss_after_correction_mm"] == pytest.approx(0.0, abs=0.01)
        # the withdrawal is the first step, said before the turn (json, text, page en + fr)
        assert c["steps"][0] == "withdraw 34.0 mm first (back to the bone entry: the tip is 4.0 mm past the target depth)"
        assert c["steps"][1].startswith("then turn the tip 3.8 deg: 3.8 deg right")
        assert c["steps"][2] == "then advance 30.1 mm to the target"
        assert c["redirect_in_words"].startswith("withdraw 34.0 mm first")
        res = _result(f)
        lines = report_text(res).splitlines()
        assert "  PAST the target depth by 4.0 mm along its axis; its line crosses the target depth at LPS (2.0, 0.0, " \
               "60.0), 2.0 mm from the target (2.0 mm left of the target)" in lines
        assert not any("pushed on" in ln for ln in lines)
        i = next(k for k, ln in enumerate(lines) if ln.startswith("  correction: "))
        assert lines[i] == "  correction: " + c["steps"][0]
        assert lines[i + 1].strip() == c["steps"][1] and lines[i + 2].strip() == c["steps"][2]
        en = verification_rows(res, "en")
        keys = [k for k, _ in en]
        assert keys.index("Correction, step 1: withdraw first") < keys.index("Correction, step 2: then turn the tip") \
            < keys.index("Correction, step 3: then advance")
        en = dict(en)
        assert en["Correction, step 1: withdraw first"] == ("34.0 mm, back to the bone entry (the tip is 4.0 mm past "
                                                            "the target depth)")
        assert en["Correction, step 2: then turn the tip"].startswith("3.8°: 3.8° right")
        assert en["Correction, step 3: then advance"] == "30.1 mm to the target"
        assert "Correction to reach the target (turn the tip)" not in en
        fr = dict(verification_rows(res, "fr"))
        assert fr["Correction, étape 1 : retirer d'abord"] == ("34.0 mm, jusqu'à l'entrée osseuse (la pointe dépasse de "
                                                               "4.0 mm la profondeur de la cible)")
        assert fr["Correction, étape 2 : puis orienter la pointe"].startswith("3.8° : 3.8° à droite")
        assert fr["Correction, étape 3 : puis avancer"] == "30.1 mm jusqu'à la cible"
        page_fr = _page_text(verification_html(res, b"", lang="fr"))
        assert page_fr.index("retirer d'abord") < page_fr.index("puis orienter la pointe")
        assert "34,0 mm, jusqu'à l'entrée osseuse" in page_fr
        page_en = _page_text(verification_html(res, b"", lang="en"))
        assert page_en.index("withdraw first") < page_en.index("then turn the tip") < page_en.index("then advance")

    def test_line_through_the_target_is_only_pulled_back_to_the_target_depth(self):
        """Tip 4.0 mm past the target depth on a line tilted 2 deg that crosses the target depth at (0.5, 0, 60):
        by hand the tip is at (0.5 + 4 tan 2deg, 0, 64), the line passes 0.5 cos 2deg = 0.50 mm from the target
        (< 1 mm: only the depth is wrong); withdraw 4 / cos 2deg = 4.00 mm along the axis to the target depth;
        no turn."""
        tilt = np.radians(2.0)
        d = np.array([np.sin(tilt), 0.0, np.cos(tilt)])
        tip = np.array([0.5, 0.0, 60.0]) + 4.0 / np.cos(tilt) * d
        f = deviation_figures(E, BE, T, tip, d)
        c = f["correction"]
        w = c["withdraw_first"]
        # the line's distance to the target: 0.5 mm times cos 2deg (perpendicular to the tilted axis)
        assert w["line_miss_mm"] == pytest.approx(0.5 * np.cos(tilt), abs=0.01)
        assert w["withdraw_to"] == "target_depth"
        assert w["withdraw_mm"] == pytest.approx(4.0 / np.cos(tilt), abs=0.05)
        assert w["withdraw_mm"] == pytest.approx(-f["remaining_depth_mm"], abs=0.05)
        assert w["withdrawn_tip_lps_mm"] == pytest.approx([0.5, 0.0, 60.0], abs=0.01)
        assert w["advance_after_mm"] == 0.0 and c["turn_deg"] == 0.0
        assert c["steps"] == ["withdraw 4.0 mm first (back to the target depth: the tip is 4.0 mm past the target depth)",
                              "no turn: the line passes 0.5 mm from the target"]
        # the C-arm view stays down the instrument (nothing to change)
        assert c["carm_bullseye_corrected"] == c["carm_bullseye_instrument"]

    def test_tip_short_of_the_target_is_unchanged(self):
        """A tip 10 mm short of the target, 2 mm off, parallel: no withdrawal; the turn about the bone entry as
        before (atan(2 / 30) right), one step."""
        f = deviation_figures(E, BE, T, (2.0, 0.0, 50.0), (0.0, 0.0, 1.0))
        c = f["correction"]
        assert c["withdraw_first"] is None
        assert c["pivot"] == "bone_entry" and c["turn_deg"] == pytest.approx(np.degrees(np.arctan(2 / 30)), abs=0.05)
        assert c["steps"] == [c["redirect_in_words"]]
        assert c["redirect_in_words"].startswith("turn the tip 3.8 deg: 3.8 deg right (pivoting at the bone entry")
        from osteoplan.views.verification import verification_rows

        en = dict(verification_rows(_result(f), "en"))
        assert en["Correction to reach the target (turn the tip)"].startswith("3.8°: 3.8° right")
        assert not any(k.startswith("Correction, step") for k in en)


def _brute_force_carm(view_axis: np.ndarray) -> tuple[float, float]:
    """DICOM C-arm angles (PS3.3 C.8.7.5: primary + = LAO, the detector turned towards the patient's left from
    anterior; secondary + = CRAN, towards the head) of the detector lying along *view_axis*, found by a grid over
    every angle pair (0.25 deg, then refined to 0.005 deg)."""
    def detector(a_deg, b_deg):
        a, b = np.radians(a_deg), np.radians(b_deg)
        # anterior is -P in LPS; the primary angle turns it towards +L; the secondary lifts it towards +S
        return np.stack([np.sin(a) * np.cos(b), -np.cos(a) * np.cos(b), np.sin(b)], -1)

    v = view_axis / np.linalg.norm(view_axis)
    best = (0.0, 0.0)
    for half_a, half_b, step in ((180.0, 90.0, 0.25), (0.5, 0.5, 0.005)):
        ga = np.arange(best[0] - half_a, best[0] + half_a + step / 2, step)
        gb = np.clip(np.arange(best[1] - half_b, best[1] + half_b + step / 2, step), -90, 90)
        A, B = np.meshgrid(ga, gb, indexing="ij")
        k = int(np.argmax(detector(A, B) @ v))
        best = (float(A.ravel()[k]), float(B.ravel()[k]))
    return best


def test_carm_change_goes_to_the_bullseye_down_the_corrected_line():
    """An oblique plan and an instrument off it: the change is from the bull's-eye down the instrument to the
    one down the corrected line (pivot -> target), both found by brute force; not to the plan's."""
    from osteoplan.faces.cli.verify import report_text
    from osteoplan.views.verification import verification_rows

    e, be, t = np.array([30.0, -60.0, -40.0]), np.array([10.0, -20.0, -10.0]), np.array([0.0, 0.0, 5.0])
    dp = (t - e) / np.linalg.norm(t - e)
    tip = be + 12.0 * dp + np.array([2.0, 1.0, 0.0])
    da = dp + np.array([0.06, -0.03, 0.02])
    da /= np.linalg.norm(da)
    f = deviation_figures(e, be, t, tip, da)
    c = f["correction"]
    assert c["withdraw_first"] is None and c["pivot"] == "bone_entry"
    pivot = tip + ((be - tip) @ da) * da
    d_new = (t - pivot) / np.linalg.norm(t - pivot)
    assert c["corrected_direction_unit"] == pytest.approx(d_new, abs=1e-4)
    # the view looks down the line: the detector on the entry side, i.e. along -direction
    for d, key in ((d_new, "carm_bullseye_corrected"), (da, "carm_bullseye_instrument"), (dp, "carm_bullseye_plan")):
        assert -d[1] < 0  # the detector on the entry side (-d) is anterior: no flip to the table side
        a, b = _brute_force_carm(-d)
        assert c[key]["primary_deg"] == pytest.approx(a, abs=0.06), key
        assert c[key]["secondary_deg"] == pytest.approx(b, abs=0.06), key
    a_new, b_new = _brute_force_carm(-d_new)
    a_now, b_now = _brute_force_carm(-da)
    a_plan, b_plan = _brute_force_carm(-dp)
    assert abs((a_new - a_now) - (a_plan - a_now)) > 1.0  # the corrected line's view is not the plan's here
    dpa = c["carm_bullseye_corrected"]["primary_deg"] - c["carm_bullseye_instrument"]["primary_deg"]
    dsa = c["carm_bullseye_corrected"]["secondary_deg"] - c["carm_bullseye_instrument"]["secondary_deg"]
    assert dpa == pytest.approx(a_new - a_now, abs=0.15) and dsa == pytest.approx(b_new - b_now, abs=0.15)
    assert c["carm_change"].startswith(f"primary {dpa:+.1f} deg (+ = towards LAO), secondary {dsa:+.1f} deg")
    assert "to the bull's-eye down the corrected line (pivot to target)" in c["carm_change"]
    text = report_text(_result(f))
    assert f"C-arm bull's-eye down the corrected line (pivot to target): {c['carm_bullseye_corrected']['label']}" in text
    assert "C-arm change to follow the correction: " + c["carm_change"] in text
    en = dict(verification_rows(_result(f), "en"))
    assert en["C-arm bull's-eye down the corrected line (pivot to target)"] == c["carm_bullseye_corrected"]["label"]
    assert en["C-arm change to follow the correction (from the bull's-eye down the instrument)"] == (
        f"primary {dpa:+.1f}° (+ = towards LAO), secondary {dsa:+.1f}° (+ = towards CRAN)")
    fr = dict(verification_rows(_result(f), "fr"))
    assert fr["Changement de l'arceau pour suivre la correction (depuis le bull's-eye dans l'axe de l'instrument)"] \
        == f"primaire {dpa:+.1f}° (+ = vers OAG), secondaire {dsa:+.1f}° (+ = vers CRA)"


# ---- the covered structures and their names -------------------------------------------------------------------

def _canal_case(line_end_x_mm: float, cord_first: bool = False):
    """A canal filling x >= 10 mm on a 1 mm grid; a line from (0, 0, -10) to (x_end, 0, 10), radius 1 mm;
    the cord and the left vertebral artery not segmented, covered in the plan by the canal and the bony canal
    (on the far side, x <= -10 mm)."""
    from osteoplan.imaging.volume import axis_aligned_affine

    aff = axis_aligned_affine((1.0, 1.0, 1.0), (-20.0, -20.0, -20.0))
    canal = np.zeros((41, 41, 41), bool)
    canal[:, :, 30:] = True  # x >= 10 mm
    bony = np.zeros((41, 41, 41), bool)
    bony[:, :, :10] = True  # x <= -10 mm
    checks = [NS(structure="spinal_canal", category="hard", margin_mm=2.0, clearance_mm=5.0, status="pass",
                 segment="skin_to_target", note=None),
              NS(structure="vertebral_artery_canal_left", category="hard", margin_mm=2.0, clearance_mm=8.0,
                 status="pass", segment="skin_to_target", note=None)]
    covered = [NS(structure="spinal_cord", category="hard", margin_mm=3.0, clearance_mm=None, status="covered",
                  segment="skin_to_target",
                  note="covered by the spinal-canal clearance (the bony canal contains the cord): see spinal_canal"),
               NS(structure="vertebral_artery_left", category="hard", margin_mm=3.0, clearance_mm=None,
                  status="covered", segment="skin_to_target",
                  note="assessed by its bony canal (foramen transversarium), not the vessel: see "
                       "vertebral_artery_canal_left")]
    checks = covered + checks if cord_first else checks + covered
    rows = line_clearances(checks, {"spinal_canal": canal, "vertebral_artery_canal_left": bony}, {}, aff,
                           (1, 1, 1), ((0, 0, -10), (line_end_x_mm, 0, 10)), 1.0)
    return {r["structure"]: r for r in rows}, rows


@pytest.mark.parametrize("cord_first", [False, True])
def test_cord_is_covered_by_the_canal_when_the_actual_line_clears_it(cord_first):
    """Line at x = 0: 10 - 1 = 9 mm from the canal (margin 2) -> the cord is covered by it, in whatever order
    the plan lists them; the artery likewise by its bony canal (9 mm)."""
    by, _ = _canal_case(0.0, cord_first)
    assert by["spinal_canal"]["status"] == "pass" and by["spinal_canal"]["actual_clearance_mm"] == pytest.approx(9.0)
    assert by["spinal_cord"]["status"] == "covered" and by["spinal_cord"]["covered_by"] == "spinal_canal"
    assert by["spinal_cord"]["actual_clearance_mm"] is None  # never a number it did not measure
    assert by["vertebral_artery_left"]["status"] == "covered"
    assert by["vertebral_artery_left"]["covered_by"] == "vertebral_artery_canal_left"


@pytest.mark.parametrize("end_x, canal_status, how", [(8.5, "inside_margin", "inside its margin (0.5 mm < 2.0 mm)"),
                                                      (11.0, "crosses", "crossed by 1.0 mm")])
def test_cord_is_not_clear_when_the_actual_line_breaches_its_canal(end_x, canal_status, how):
    """Line ending at x = 8.5 mm (1.5 mm from the canal's first voxel centres at x = 10, minus the 1 mm radius:
    0.5 mm < 2 mm margin) or at x = 11 mm (inside the canal: 0 - 1 = -1 mm, crossed by 1 mm): the cord is NOT
    clear, said in the row, the summary's headline and the page (en + fr); never 'covered', never a clearance."""
    from osteoplan.faces.cli.verify import report_text
    from osteoplan.verification.pipeline import attention_summary
    from osteoplan.views.verification import verification_html

    by, rows = _canal_case(end_x)
    assert by["spinal_canal"]["status"] == canal_status
    cord = by["spinal_cord"]
    assert cord["status"] == "not_clear" and cord["covered_by"] == "spinal_canal"
    assert cord["actual_clearance_mm"] is None
    assert cord["note"] == f"not segmented; the spinal canal that contains it is {how} on the actual line: the " \
                           "spinal cord is NOT clear"
    assert by["vertebral_artery_left"]["status"] == "covered"  # its bony canal is still clear
    s = attention_summary(rows)
    assert s["needs_attention"] and s["not_clear"] == [{"structure": "spinal_cord", "covered_by": "spinal_canal"}]
    assert s["headline"].endswith("; NOT CLEAR: spinal cord (inside the spinal canal)")
    f = deviation_figures(E, BE, T, (0.0, 0.0, 50.0), (0.0, 0.0, 1.0))
    res = _result(f, rows)
    text = report_text(res)
    assert "NOT CLEAR: spinal cord (inside the spinal canal)" in text.splitlines()[1]
    cord_line = next(ln for ln in text.splitlines() if ln.strip().startswith("spinal cord "))
    assert cord_line.rstrip().endswith("NOT CLEAR: inside the spinal canal, which the line does not clear")
    en = _page_text(verification_html(res, b"", lang="en"))
    fr = _page_text(verification_html(res, b"", lang="fr"))
    assert "NOT CLEAR: spinal cord (inside the spinal canal)" in en
    assert "NOT CLEAR: inside the spinal canal, which the line does not clear" in en
    # French: agreed with the cord (la moelle: "NON DÉGAGÉE"), a no-break space before ':'
    assert "NON DÉGAGÉE\u00a0: moelle épinière (dans le canal rachidien)" in fr
    assert "NON DÉGAGÉE\u00a0: dans le canal rachidien, que la ligne ne dégage pas" in fr


def test_verify_uses_the_planners_covering_rule(monkeypatch):
    """The rule is the planner's (planning.planner.covering_structure_for over COVERED_BY), not a copy: a
    covering pair added to the planner's table is followed by verify."""
    from osteoplan.planning import planner

    monkeypatch.setitem(planner.COVERED_BY, "brainstem", ("spinal_canal", "covered", "covered by the canal (test)"))
    from osteoplan.imaging.volume import axis_aligned_affine

    aff = axis_aligned_affine((1.0, 1.0, 1.0), (-20.0, -20.0, -20.0))
    canal = np.zeros((41, 41, 41), bool)
    canal[:, :, 30:] = True
    checks = [NS(structure="brainstem", category="hard", margin_mm=3.0, clearance_mm=None, status="not_assessed",
                 segment="skin_to_target", note="not segmented"),
              NS(structure="spinal_canal", category="hard", margin_mm=2.0, clearance_mm=5.0, status="pass",
                 segment="skin_to_target", note=None)]
    rows = line_clearances(checks, {"spinal_canal": canal}, {}, aff, (1, 1, 1), ((0, 0, -10), (0, 0, 10)), 1.0)
    assert rows[0]["status"] == "covered" and rows[0]["covered_by"] == "spinal_canal"
    monkeypatch.delitem(planner.COVERED_BY, "brainstem")
    rows = line_clearances(checks, {"spinal_canal": canal}, {}, aff, (1, 1, 1), ((0, 0, -10), (0, 0, 10)), 1.0)
    assert rows[0]["status"] == "not_assessed"  # no rule: never reported clear


@pytest.mark.parametrize("end_x", [0.0, 11.0])
def test_no_internal_structure_key_in_the_text_page_and_words(end_x):
    """verify's text, page (en + fr) and the words of verify.json (notes, headline, row notes) name structures as
    the report does (views.i18n.structure_label): no label-map key (spinal_canal, vertebral_artery_canal_left...)."""
    from osteoplan.faces.cli.verify import report_text
    from osteoplan.verification.pipeline import crossing_note
    from osteoplan.views.i18n import structure_label
    from osteoplan.views.verification import verification_html

    _, rows = _canal_case(end_x)
    keys = {r["structure"] for r in rows} | {r.get("covered_by") for r in rows if r.get("covered_by")}
    assert {"spinal_canal", "spinal_cord", "vertebral_artery_canal_left"} <= keys
    notes = [crossing_note(r) for r in rows if r["status"] == "crosses"]
    assert bool(notes) == (end_x > 10)
    f = deviation_figures(E, BE, T, (0.0, 0.0, 50.0), (0.0, 0.0, 1.0))
    res = _result(f, rows, notes)
    words = [report_text(res), res["summary"]["headline"]] + list(res["notes"]) + [r.get("note") or "" for r in rows]
    for lang in ("en", "fr"):
        words.append(_page_text(verification_html(res, b"", lang=lang)))
    for w in words:
        for k in keys:
            assert k not in w, (k, w[:200])
    text = report_text(res)
    assert "covered by its bony canal" in text  # the artery, as the report's badge says it
    assert structure_label("vertebral_artery_canal_left") in text
    # the data keeps its keys (verify.json is read back by the registry and the web page)
    assert json.loads(json.dumps(res))["clearances"][0]["structure"] in keys
