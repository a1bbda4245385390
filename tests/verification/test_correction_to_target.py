"""The correction aims the instrument at the TARGET, turning about its pivot (known geometry, brute-force check).

Plan straight up (S) from the skin entry (0, 0, 0) through the bone entry (0, 0, 30) to the target (0, 0, 60).
A pin whose tip is 2 mm to one side of the path, tilted 3 deg further away, would miss the target; turning it
only parallel to the plan keeps the 2 mm (+) miss. The right turn is found here independently: rotate the
instrument's axis about the pivot over a fine grid of rotations and keep the one whose line passes nearest the
target.
"""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.verification.deviation import deviation_figures
from osteoplan.views.verification import verification_rows

E, BE, T = np.zeros(3), np.array([0.0, 0.0, 30.0]), np.array([0.0, 0.0, 60.0])


def _rot(ax_deg: float, ay_deg: float) -> np.ndarray:
    a, b = np.radians(ax_deg), np.radians(ay_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    return rx @ ry


def _brute_force_turn(pivot, d):
    """Rotations about x then y of *d* (grid 0.01 deg over +-12 deg, refined): the one whose line through
    *pivot* passes nearest the target -> (turn angle deg, new direction, distance mm)."""
    best = None
    for half, step, c in ((12.0, 0.1, (0.0, 0.0)), (0.2, 0.002, None)):
        c = c if c is not None else best[0]
        g = np.arange(-half, half + step / 2, step)
        ax, ay = np.meshgrid(c[0] + g, c[1] + g, indexing="ij")
        a, b = np.radians(ax.ravel()), np.radians(ay.ravel())
        # R = Rx(a) Ry(b) applied to d, vectorised
        x1 = np.cos(b) * d[0] + np.sin(b) * d[2]
        z1 = -np.sin(b) * d[0] + np.cos(b) * d[2]
        y1 = np.full_like(x1, d[1])
        nd = np.stack([x1, np.cos(a) * y1 - np.sin(a) * z1, np.sin(a) * y1 + np.cos(a) * z1], 1)
        r = T - pivot
        dist = np.linalg.norm(r - (nd @ r)[:, None] * nd, axis=1)
        k = int(np.argmin(dist))
        best = ((ax.ravel()[k], ay.ravel()[k]), nd[k], dist[k])
    nd = best[1]
    return float(np.degrees(np.arccos(np.clip(nd @ d, -1, 1)))), nd, float(best[2])


@pytest.mark.parametrize("side", [+1.0, -1.0])
def test_offset_and_tilted_pin_is_aimed_at_the_target(side):
    tilt = np.radians(3.0)
    tip = np.array([2.0 * side, 0.0, 50.0])
    d = np.array([side * np.sin(tilt), 0.0, np.cos(tilt)])  # tilted further away from the path
    f = deviation_figures(E, BE, T, tip, d)
    c = f["correction"]
    # pivot: the point of the axis nearest the planned bone entry (the tip is past it)
    pivot = tip + ((BE - tip) @ d) * d
    assert c["pivot"] == "bone_entry"
    assert c["pivot_lps_mm"] == pytest.approx(pivot, abs=0.01)
    # hand value: the line must go from the pivot through the target
    want = np.degrees(np.arccos(d @ ((T - pivot) / np.linalg.norm(T - pivot))))
    angle, nd, dist = _brute_force_turn(pivot, d)
    assert dist < 0.01
    assert angle == pytest.approx(want, abs=0.02)
    assert c["turn_deg"] == pytest.approx(angle, abs=0.06)
    # by hand: the pivot is ~20 mm behind the tip, 2 - 20 tan 3deg = 0.95 mm beside the path (pivot z ~ 30.05);
    # the tilt back (3 deg) plus the angle to reach the target from there, atan(0.95 / 29.95) = 1.81 deg
    x_piv = 2.0 - (50.0 - pivot[2]) * np.tan(tilt)
    assert c["turn_deg"] == pytest.approx(3.0 + np.degrees(np.arctan(x_piv / (60.0 - pivot[2]))), abs=0.06)
    assert c["turn_deg"] == pytest.approx(4.8, abs=0.05)
    assert c["parallel_to_plan"]["turn_deg"] == pytest.approx(3.0, abs=0.05)
    # direction: back towards the path (a pin to the left turns right: component L < 0)
    assert np.sign(c["turn_components_lps_deg"][0]) == -side
    assert c["turn_components_lps_deg"][0] == pytest.approx(-side * angle, abs=0.1)
    word = "right" if side > 0 else "left"
    assert c["redirect_in_words"].startswith(f"turn the tip {c['turn_deg']:.1f} deg: {abs(c['turn_components_lps_deg'][0]):.1f} deg {word}")
    assert "pivoting at the bone entry" in c["redirect_in_words"]
    # applying the reported turn (rotation of the axis by turn_deg towards the reported components) about the
    # pivot: the line passes through the target (independently of miss_after_correction_mm)
    comp = np.asarray(c["turn_components_lps_deg"], float)
    k = np.cross(d, comp / np.linalg.norm(comp))
    th = np.radians(c["turn_deg"])
    new = d * np.cos(th) + np.cross(k, d) * np.sin(th)
    r = T - pivot
    assert np.linalg.norm(r - (new @ r) * new) < 0.05
    assert c["miss_after_correction_mm"] == pytest.approx(0.0, abs=0.01)
    # the parallel-only turn leaves a miss of the tip's 2 mm offset at the target: worse than the correction
    assert "NOT a correction" in c["parallel_to_plan"]["in_words"]
    # en + fr text
    res = {**f, "stage": "pin", "registration": {"residual_median_mm": 0.3, "residual_p90_mm": 0.9}}
    en = dict(verification_rows(res, "en"))
    fr = dict(verification_rows(res, "fr"))
    row_en = en["Correction to reach the target (turn the tip)"]
    assert row_en.startswith(f"{c['turn_deg']:.1f}°: {abs(comp[0]):.1f}° {word}") and "pivoting at the bone entry" in row_en
    row_fr = fr["Correction pour atteindre la cible (orienter la pointe)"]
    assert row_fr.startswith(f"{c['turn_deg']:.1f}° : {abs(comp[0]):.1f}° {'à droite' if side > 0 else 'à gauche'}")
    assert "pivot à l'entrée osseuse" in row_fr
    assert en["Predicted miss at the target after the correction"] == "0.0 mm"


def test_trocar_short_of_the_bone_turns_about_the_skin_entry():
    """A trocar tip at 20 mm depth (before the bone entry), 1 mm posterior, parallel to the plan: turn about
    the skin entry by atan(1 / 20)... measured from the skin-level point of its axis (0, 1, 0) to the target."""
    f = deviation_figures(E, BE, T, (0.0, 1.0, 20.0), (0.0, 0.0, 1.0), stage="trocar")
    c = f["correction"]
    assert c["pivot"] == "skin_entry" and c["pivot_lps_mm"] == pytest.approx([0, 1, 0], abs=1e-6)
    assert c["turn_deg"] == pytest.approx(np.degrees(np.arctan(1 / 60)), abs=0.05)
    assert c["turn_components_lps_deg"][1] < 0  # towards anterior (-P)
    assert c["parallel_to_plan"]["turn_deg"] == 0.0


def test_margin_breach_is_in_the_summary_the_headline_and_the_page():
    """A clearance inside its margin (pharynx 0.9 mm against 3 mm) is said first: verify.json's summary, the
    text headline and the page's first lines, en + fr; a passing row is not named."""
    from osteoplan.faces.cli.verify import report_text
    from osteoplan.verification.pipeline import attention_summary
    from osteoplan.views.verification import verification_html

    f = deviation_figures(E, BE, T, (2.0, 0.0, 50.0), (0.0, 0.0, 1.0))
    clr = [{"structure": "pharynx", "category": "hard", "margin_mm": 3.0, "planned_clearance_mm": 5.1,
            "actual_clearance_mm": 0.94, "status": "inside_margin", "source": "x"},
           {"structure": "spinal_canal", "category": "hard", "margin_mm": 2.0, "planned_clearance_mm": 3.2,
            "actual_clearance_mm": 2.8, "status": "pass", "source": "x"}]
    s = attention_summary(clr)
    assert s["needs_attention"] and [r["structure"] for r in s["inside_margin"]] == ["pharynx"] and not s["crosses"]
    assert s["headline"] == "NEEDS ATTENTION: the instrument line is INSIDE THE MARGIN of pharynx (0.9 mm < 3.0 mm)"
    assert attention_summary(clr[1:]) == {"needs_attention": False, "crosses": [], "inside_margin": [], "headline": ""}
    res = {**f, "stage": "pin", "clearances": clr, "summary": s, "notes": [], "tip_uncertainty_mm": None,
           "registration": {"residual_median_mm": 0.3, "residual_p90_mm": 0.9, "surface_overlap": 0.98}}
    text = report_text(res).splitlines()
    assert text[1] == s["headline"]
    for lang, want in (("en", "NEEDS ATTENTION: the instrument line is INSIDE THE MARGIN of pharynx (0.9 mm &lt; 3.0 mm)"),
                       ("fr", "ATTENTION\u00a0: la ligne de l&#x27;instrument est DANS LA MARGE de pharynx (0,9 mm &lt; 3,0 mm)")):
        page = verification_html(res, b"", lang=lang)
        body = page.split("<body>", 1)[1]
        assert body.index(want) < body.index("<h2>")  # before the figures table: in the first lines


def test_covered_structures_and_capped_plan_values_follow_the_plan():
    """The plan's 'covered' cord (by the spinal canal) stays covered while the actual line clears the canal and
    is 'not clear' (naming its cover) when it does not; a capped plan figure is shown as '>='."""
    from types import SimpleNamespace as NS

    from osteoplan.faces.cli.verify import report_text
    from osteoplan.imaging.volume import axis_aligned_affine
    from osteoplan.verification.deviation import line_clearances
    from osteoplan.views.verification import verification_html

    aff = axis_aligned_affine((1.0, 1.0, 1.0), (-20.0, -20.0, -20.0))
    canal = np.zeros((41, 41, 41), bool)
    canal[:, :, 30:] = True  # x >= 10 mm
    checks = [NS(structure="spinal_canal", category="hard", margin_mm=2.0, clearance_mm=17.8, status="pass",
                 segment="skin_to_target", note="at least this much (distances are computed up to 20 mm)"),
              NS(structure="spinal_cord", category="hard", margin_mm=3.0, clearance_mm=None, status="covered",
                 segment="skin_to_target", note="covered by the spinal-canal clearance: see spinal_canal")]
    far = line_clearances(checks, {"spinal_canal": canal}, {}, aff, (1, 1, 1), ((0, 0, -10), (0, 0, 10)), 1.0)
    assert far[0]["status"] == "pass" and far[0]["actual_clearance_mm"] == pytest.approx(9.0, abs=1e-3)
    assert far[0]["planned_clearance_capped"] is True
    assert far[1]["status"] == "covered" and far[1]["covered_by"] == "spinal_canal"
    assert far[1]["planned_clearance_capped"] is False
    # a line 8.5 mm from the x = 10 plane at its nearest (radius 1): 1.5 mm < 2 mm margin -> the cord is not covered
    near = line_clearances(checks, {"spinal_canal": canal}, {}, aff, (1, 1, 1), ((0, 0, -10), (8.5, 0, 10)), 1.0)
    assert near[0]["status"] == "inside_margin" and near[1]["status"] == "not_clear"
    assert near[1]["covered_by"] == "spinal_canal" and "spinal canal" in near[1]["note"]
    f = deviation_figures(E, BE, T, (0.0, 0.0, 50.0), (0.0, 0.0, 1.0))
    res = {**f, "stage": "pin", "clearances": far, "notes": [], "tip_uncertainty_mm": None,
           "registration": {"residual_median_mm": 0.3, "residual_p90_mm": 0.9, "surface_overlap": 0.98}}
    text = report_text(res)
    assert "plan >=17.8" in text and "covered by the spinal canal" in text and "spinal_canal" not in text
    page = verification_html(res, b"", lang="en")
    assert "≥17.8</td>" in page and "covered by the spinal canal" in page.lower()
