"""Structures a vertebroplasty plan counts as covered by containment are decided on the control CT by the
containment of the instrument's ACTUAL line (osteoplan.verification.containment), on the synthetic lumbar vertebra
of tests/planning/synthetic_vertebra.py (1 mm voxels, known geometry)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from osteoplan.planning.model import ClearanceCheck
from osteoplan.verification.containment import line_containment_mm
from osteoplan.verification.deviation import line_clearances
from osteoplan.verification.pipeline import _actual_containment, attention_summary
from osteoplan.views.i18n import agree
from osteoplan.views.verification import _containment_rows, containment_status
from tests.planning.synthetic_vertebra import BODY_AX, BODY_C, CANAL_C, PED_R, PED_X, make_lumbar, pedicle_axis

R_NEEDLE_MM = 1.5
MARGIN_MM = 0.5  # vertebroplasty-transpedicular's containment_margin_mm
SKIP_MM = 5.0
#: the plan's note for a structure covered by containment (osteoplan.planning.planner._checks)
NOTE = ("not segmented; covered by containment: the instrument stays 2.0 mm or more inside the target bone from its "
        "bone entry to its tip, and this structure lies outside that bone")


@pytest.fixture(scope="module")
def l1():
    vol, lm, _ = make_lumbar(("L1",))
    return vol, lm.get("vertebrae_L1")


def _covered(name, margin=5.0):
    return ClearanceCheck(structure=name, category="hard", margin_mm=margin, clearance_mm=None, status="covered",
                          segmented=False, source=None, note=NOTE, assessed_by="covered")


def _inside_line():
    """A needle along -x on the body's major axis (y = -12, z = 0) from outside its lateral wall to its centre."""
    return np.array([40.0, BODY_C[1], 0.0]), np.array([BODY_C[0], BODY_C[1], 0.0])


def _breach_line():
    """A needle entering the left pedicle on its axis, 15 deg more lateral than it: it leaves the pedicle's lateral
    wall and re-enters the body (tip inside the body)."""
    ax = pedicle_axis("left")
    entry = np.array([PED_X, CANAL_C[1], 0.0]) - ax * ((28.0 - CANAL_C[1]) / abs(ax[1]))
    a = np.radians(15.0)
    d = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]) @ ax
    return entry, d, entry - 12 * d, entry + d * (40.0 / abs(d[1]))


def test_needle_inside_the_body_is_covered_with_the_hand_computed_margin(l1):
    vol, m = l1
    rear, tip = _inside_line()
    r = line_containment_mm(m, vol.affine, vol.spacing_mm, rear, tip, R_NEEDLE_MM, entry_skip_mm=SKIP_MM)
    # the mask's surface lies halfway between voxel centres: the last bone voxel on the line is x = 20 (the
    # ellipse's vertex), so the bone entry is x = 20.5; the entry skip leaves x <= 15.5; there (and everywhere
    # nearer the centre, depth grows) the nearest voxel outside is (20, -12 +- 1) (20 is inside only at y = -12),
    # sqrt(4.5^2 + 1) mm away, minus the half voxel to the surface, minus the needle radius
    expected = np.hypot(4.5, 1.0) - 0.5 - R_NEEDLE_MM  # 2.61 mm
    assert r["bone_entry_lps_mm"][0] == pytest.approx(20.5, abs=0.01)
    assert r["min_margin_mm"] == pytest.approx(expected, abs=0.02)
    assert r["min_at_mm_from_tip"] == pytest.approx(15.5, abs=0.01)
    assert r["tip_inside"]
    cont = {"measured": True, "min_margin_mm": r["min_margin_mm"], "margin_mm": MARGIN_MM}
    rows = line_clearances([_covered("aorta"), _covered("esophagus", 3.0)], {}, {}, vol.affine, vol.spacing_mm,
                           (rear, tip), R_NEEDLE_MM, containment=cont)
    assert [row["status"] for row in rows] == ["covered", "covered"]
    assert rows[0]["covered_by"] == "containment" and rows[0]["containment_mm"] == pytest.approx(2.61, abs=0.02)
    assert rows[0]["note"] == "covered by containment (measured on the actual line: 2.6 mm inside the bone)"
    assert not attention_summary(rows)["needs_attention"]
    assert containment_status(rows[0]) == "covered by containment (measured on the actual line: 2.6 mm inside the bone)"
    # French: "l'aorte" is feminine, "l'oesophage" masculine
    assert containment_status(rows[0], "fr").startswith("couverte par le confinement (mesuré sur la ligne réelle : 2.6")
    assert containment_status(rows[1], "fr").startswith("couvert par le confinement")


def test_bone_crossed_before_the_planned_entry_is_not_counted(l1):
    """A separate piece of the same bone's mask crossed before the planned bone entry, then a gap (as a posterior
    element may be): measured from the planned entry's level it changes nothing (2.61 mm, as the plan counts it);
    from the first entry it would count the gap (outside the bone)."""
    vol, m = l1
    rear, tip = _inside_line()
    m2 = m.copy()
    k, j, i = np.round(vol.world_to_index(np.array([30.0, BODY_C[1], 0.0]))).astype(int)
    m2[k - 2:k + 3, j - 2:j + 3, i - 2:i + 3] = True  # a 5 mm cube centred at x = 30, 8 mm outside the body
    at_plan = line_containment_mm(m2, vol.affine, vol.spacing_mm, rear, tip, R_NEEDLE_MM, entry_skip_mm=SKIP_MM,
                                  planned_bone_entry_lps_mm=(20.0, BODY_C[1], 0.0))
    assert at_plan["min_margin_mm"] == pytest.approx(np.hypot(4.5, 1.0) - 0.5 - R_NEEDLE_MM, abs=0.02)
    first = line_containment_mm(m2, vol.affine, vol.spacing_mm, rear, tip, R_NEEDLE_MM, entry_skip_mm=SKIP_MM)
    assert first["bone_entry_lps_mm"][0] == pytest.approx(32.5, abs=0.01)
    assert first["min_margin_mm"] < 0  # the gap between x = 27.5 and 20.5


def test_needle_leaving_the_pedicle_laterally_is_not_clear(l1):
    vol, m = l1
    entry, d, rear, tip = _breach_line()
    r = line_containment_mm(m, vol.affine, vol.spacing_mm, rear, tip, R_NEEDLE_MM, entry_skip_mm=SKIP_MM,
                            planned_bone_entry_lps_mm=entry)
    # at y = 6 (behind the body's posterior wall y = 4, in front of the lamina y > 14) the only bone is the pedicle:
    # there the needle axis lies 5.70 mm from the pedicle's axis (hand: x 15.63 vs 9.80, times cos 12 deg), i.e.
    # 1.70 mm outside its 4 mm radius; the mask's half-voxel surface is within 0.5 mm of the true surface
    s6 = (entry[1] - 6.0) / abs(d[1])
    pax = pedicle_axis("left")
    ax_pt = np.array([PED_X, CANAL_C[1], 0.0]) + pax * ((CANAL_C[1] - 6.0) / abs(pax[1]))
    off = entry + s6 * d - ax_pt
    perp = np.linalg.norm(off - (off @ pedicle_axis("left")) * pedicle_axis("left"))
    assert perp == pytest.approx(5.70, abs=0.02)
    assert r["min_margin_mm"] <= -(perp - PED_R) - R_NEEDLE_MM + 0.5
    assert r["tip_inside"]  # the tip is back in the body: only the whole course from the bone entry shows the breach
    tip_x_max = BODY_AX[0] * np.sqrt(1 - ((tip[1] - BODY_C[1]) / BODY_AX[1]) ** 2)
    assert abs(tip[0]) < tip_x_max
    cont = {"measured": True, "min_margin_mm": r["min_margin_mm"], "margin_mm": MARGIN_MM}
    rows = line_clearances([_covered("aorta"), _covered("inferior_vena_cava")], {}, {}, vol.affine, vol.spacing_mm,
                           (rear, tip), R_NEEDLE_MM, containment=cont)
    assert [row["status"] for row in rows] == ["not_clear", "not_clear"]
    assert rows[0]["note"].startswith("the instrument leaves the bone: aorta not segmented, cannot be said clear")
    summ = attention_summary(rows)
    assert summ["needs_attention"]
    assert ("NOT CLEAR: the instrument leaves the bone: aorta, inferior vena cava not segmented, cannot be said clear"
            in summ["headline"])
    assert summ["not_clear"][0]["covered_by"] == "containment"
    assert containment_status(rows[0]).startswith("NOT CLEAR: the instrument leaves the bone: ")
    assert containment_status(rows[0], "fr").endswith("non segmentée, ne peut être dite dégagée")
    assert containment_status(rows[0], "fr").startswith("NON DÉGAGÉE : l'instrument sort de l'os : ")
    # several: plural, feminine only when every name is
    assert agree("verify_status_leaves_bone", "fr", ["aorta", "inferior_vena_cava"]).startswith("NON DÉGAGÉES")
    assert agree("verify_status_leaves_bone", "fr", ["aorta", "esophagus"]).endswith("ne peuvent être dits dégagés")


def test_pipeline_measures_the_actual_line_and_says_how(l1):
    vol, m = l1
    rear, tip = _inside_line()
    traj = SimpleNamespace(level="L1", clearances=(_covered("aorta"),), containment_entry_skip_mm=SKIP_MM,
                           bone_entry_lps_mm=(20.0, BODY_C[1], 0.0))
    inst = SimpleNamespace(tip_lps_mm=tip, direction_unit=(tip - rear) / np.linalg.norm(tip - rear))
    masks = {"vertebrae_L1": m}
    c = _actual_containment(traj, masks, vol, inst, rear, R_NEEDLE_MM, MARGIN_MM, 0.0)
    assert c["measured"] and c["contained"] and c["min_margin_mm"] == pytest.approx(2.61, abs=0.02)
    assert "actual line" in c["method"] and c["bone"] == "vertebrae_L1" and c["entry_skip_mm"] == SKIP_MM
    assert _containment_rows({"containment": c}, "en")[0][1].startswith("2.6 mm inside")
    # no margin known, or the bone not segmented: not measured, and why; the rows stay not assessed
    c0 = _actual_containment(traj, masks, vol, inst, rear, R_NEEDLE_MM, None, 0.0)
    assert not c0["measured"] and "margin" in c0["reason"]
    c1 = _actual_containment(traj, {}, vol, inst, rear, R_NEEDLE_MM, MARGIN_MM, 0.0)
    assert not c1["measured"] and "not segmented" in c1["reason"]
    # the page says why in the page's language (the reasons stayed English on the French page)
    for c_ in (c0, c1):
        fr = _containment_rows({"containment": c_}, "fr")[0][1]
        assert c_["reason"] not in fr and ("marge" in fr or "segmenté" in fr), fr
    row = line_clearances(traj.clearances, {}, {}, vol.affine, vol.spacing_mm, (rear, tip), R_NEEDLE_MM,
                          containment=c1)[0]
    assert row["status"] == "not_assessed" and "not segmented" in row["note"]
    # a plan without a structure covered by containment: nothing measured, the result keeps its shape
    plain = SimpleNamespace(level="L1", clearances=(), containment_entry_skip_mm=SKIP_MM, bone_entry_lps_mm=rear)
    assert _actual_containment(plain, masks, vol, inst, rear, R_NEEDLE_MM, MARGIN_MM, 0.0) is None


def test_text_and_page_say_it_en_fr(l1):
    """verify's text and page (en + fr): the covered row with its figure and how it was known; a line leaving the
    bone in the headline, the row and the page's attention line."""
    from osteoplan.faces.cli.verify import report_text
    from osteoplan.verification.deviation import deviation_figures
    from osteoplan.views.verification import verification_html
    from tests.verification.test_withdraw_carm_names_cover import _page_text, _result

    vol, m = l1
    for case in ("inside", "breach"):
        if case == "inside":
            rear, tip = _inside_line()
            be = (20.0, BODY_C[1], 0.0)
        else:
            be, _, rear, tip = _breach_line()
        traj = SimpleNamespace(level="L1", clearances=(_covered("aorta"),), containment_entry_skip_mm=SKIP_MM,
                               bone_entry_lps_mm=be)
        d = (tip - rear) / np.linalg.norm(tip - rear)
        c = _actual_containment(traj, {"vertebrae_L1": m}, vol, SimpleNamespace(tip_lps_mm=tip, direction_unit=d),
                                rear, R_NEEDLE_MM, MARGIN_MM, 0.0)
        rows = line_clearances(traj.clearances, {}, {}, vol.affine, vol.spacing_mm, (rear, tip), R_NEEDLE_MM,
                               containment=c)
        f = deviation_figures(rear, rear + 3 * d, tip, tip, d)
        res = {**_result(f, rows), "containment": c}
        text = report_text(res)
        en = _page_text(verification_html(res, b"", lang="en"))
        fr = _page_text(verification_html(res, b"", lang="fr"))
        assert "the planner's containment measured on the instrument's actual line" in text
        if case == "inside":
            assert "covered by containment (measured on the actual line: 2.6 mm inside the bone)" in text
            assert "covered by containment (measured on the actual line: 2.6 mm inside the bone)" in en
            assert "couverte par le confinement (mesuré sur la ligne réelle\u00a0: 2,6 mm dans l'os)" in fr
            assert "NEEDS ATTENTION" not in text
        else:
            head = "NOT CLEAR: the instrument leaves the bone: aorta not segmented, cannot be said clear"
            assert head in text.splitlines()[1] and head in en
            assert "NON DÉGAGÉE\u00a0: l'instrument sort de l'os\u00a0: aorte non segmentée, ne peut être dite dégagée" in fr


def test_cli_reads_the_margin_from_the_protocol_the_plan_names():
    """The CLI passes the plan's protocol's containment margin (vertebroplasty-transpedicular.toml: 0.5 mm, tip skip
    0); a protocol that cannot be loaded gives nothing (the rows then stay not assessed, with the reason)."""
    from osteoplan.faces.cli.verify import _containment_rule

    assert _containment_rule(SimpleNamespace(protocol_name="vertebroplasty-transpedicular")) == {
        "containment_margin_mm": 0.5, "containment_skip_tip_mm": 0.0}
    assert _containment_rule(SimpleNamespace(protocol_name="no-such-protocol")) == {}
