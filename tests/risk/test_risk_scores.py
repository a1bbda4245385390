"""SINS (Fisher, Spine 2010) and Mirels (Clin Orthop 1989) worked examples."""

from __future__ import annotations

import json

import pytest

from osteoplan.errors import InputError
from osteoplan.risk.mirels import compute_mirels, mirels_band, size_from_fraction
from osteoplan.risk.sins import (
    POINTS, Location, compute_sins, ct_proposed, location_from_level, override, sins_category,
)


# ---------------------------------------------------------------- SINS: category boundaries
def test_sins_boundary_6_stable():
    # junctional 3 + occasional pain 1 + mixed 1 + normal 0 + no collapse 0 + unilateral 1 = 6
    r = compute_sins("junctional", "occasional", "mixed", "normal", "none", "unilateral")
    assert r.total == 6 and r.category == "stable" and r.referral is False and r.complete


def test_sins_boundary_7_potentially_unstable():
    # 3 (C2) + 1 (occasional) + 2 (lytic) + 0 + 0 + 1 (unilateral) = 7
    r = compute_sins("C2", "occasional", "lytic", "normal", "none", "unilateral")
    assert r.total == 7 and r.category == "potentially unstable" and r.referral is True
    assert r.components["location"].evidence == {"level": "C2"}


def test_sins_boundary_12_potentially_unstable():
    # 2 (mobile C5) + 3 (mechanical) + 2 (lytic) + 2 (deformity) + 2 (<50 %) + 1 (unilateral) = 12
    r = compute_sins("C5", "mechanical", "lytic", "deformity", "under-50", "unilateral")
    assert r.total == 12 and r.category == "potentially unstable"


def test_sins_boundary_13_unstable():
    # 1 (T7 semi-rigid) + 3 + 2 + 4 (subluxation) + 3 (>50 %) + 0 = 13
    r = compute_sins("T7", "mechanical", "lytic", "subluxation", "over-50", "none")
    assert r.total == 13 and r.category == "unstable" and r.referral is True


def test_sins_extremes_and_points_table():
    assert compute_sins("S3", "none", "blastic", "normal", "none", "none").total == 0
    assert compute_sins("C2", "mechanical", "lytic", "subluxation", "over-50", "bilateral").total == 18
    assert POINTS["collapse"] == {"over-50": 3, "under-50": 2, "none-over-50-involved": 1, "none": 0}
    assert POINTS["alignment"] == {"subluxation": 4, "deformity": 2, "normal": 0}
    assert POINTS["posterolateral"] == {"bilateral": 3, "unilateral": 1, "none": 0}
    assert [sins_category(t) for t in (0, 6, 7, 12, 13, 18)] == [
        "stable", "stable", "potentially unstable", "potentially unstable", "unstable", "unstable"]
    with pytest.raises(InputError):
        sins_category(19)


@pytest.mark.parametrize("levels, cls, pts", [
    (["occiput", "C1", "C2", "C7", "T1", "T2", "T11", "T12", "L1", "L5", "S1"], Location.JUNCTIONAL, 3),
    (["C3", "C4", "C5", "C6", "L2", "L3", "L4"], Location.MOBILE, 2),
    ([f"T{n}" for n in range(3, 11)], Location.SEMI_RIGID, 1),
    (["S2", "S3", "S4", "S5"], Location.RIGID, 0),
])
def test_location_every_level_class(levels, cls, pts):
    for lv in levels:
        assert location_from_level(lv) is cls, lv
        assert location_from_level(lv.lower()) is cls
        assert POINTS["location"][location_from_level(lv)] == pts


def test_location_covers_all_levels_exactly_once():
    levels = ["C0"] + [f"C{n}" for n in range(1, 8)] + [f"T{n}" for n in range(1, 13)] + \
        [f"L{n}" for n in range(1, 6)] + [f"S{n}" for n in range(1, 6)]
    counts = {c: 0 for c in Location}
    for lv in levels:
        counts[location_from_level(lv)] += 1
    # junctional: O,C1,C2,C7,T1,T2,T11,T12,L1,L5,S1 = 11; mobile 4+3 = 7; semi-rigid 8; rigid 4
    assert counts == {Location.JUNCTIONAL: 11, Location.MOBILE: 7, Location.SEMI_RIGID: 8, Location.RIGID: 4}
    for bad in ("C8", "T13", "L6", "S6", "coccyx", "X2", ""):
        with pytest.raises(InputError):
            location_from_level(bad)


def test_sins_missing_components_give_range_not_a_number():
    # C2 lytic, no collapse, no posterolateral; pain and alignment unknown: 3+2 = 5 known, + 0..3 + 0..4
    r = compute_sins("C2", None, "lytic", None, "none", "none")
    assert r.total is None and not r.complete
    assert (r.total_min, r.total_max) == (5, 12)
    assert r.missing == ("pain", "alignment")
    assert r.category is None and r.referral is None
    assert r.possible_categories == ["stable", "potentially unstable"]
    d = r.to_dict()
    assert d["total"] is None and d["total_range"] == [5, 12]
    assert d["components"]["pain"]["points_range"] == [0, 3]
    assert "missing" in r.summary()
    # range entirely >= 7: category still undetermined between PU/unstable, but referral is certain
    r2 = compute_sins("C2", "mechanical", "lytic", None, None, "none")
    assert (r2.total_min, r2.total_max) == (8, 15) and r2.referral is True and r2.category is None
    # range within one category: category known
    r3 = compute_sins("C2", "mechanical", "lytic", "subluxation", "over-50", None)
    assert (r3.total_min, r3.total_max) == (15, 18) and r3.category == "unstable"


def test_sins_provenance_and_override():
    prop = ct_proposed("lytic", {"lesion_median_hu": 35.0, "normal_cancellous_median_hu": 260.0})
    pl = ct_proposed("none", {"left_ml": 0.0, "right_ml": 0.0})
    r = compute_sins("C2", "mechanical", prop, "normal",
                     override("under-50", ct_proposed("none", {"height_ratio": 0.97}), reason="sagittal MPR"), pl)
    assert r.total == 3 + 3 + 2 + 0 + 2 + 0
    c = r.components
    assert c["pain"].source == "clinician"
    assert c["lesion_type"].source == "ct-proposed" and c["lesion_type"].evidence["lesion_median_hu"] == 35.0
    assert c["collapse"].source == "override" and c["collapse"].proposed_value == "none"
    assert c["collapse"].proposed_evidence == {"height_ratio": 0.97} and c["collapse"].note == "sagittal MPR"
    json.dumps(r.to_dict(), allow_nan=False)


def test_sins_rejects_bad_options_with_clear_message():
    with pytest.raises(InputError, match="mechanical"):
        compute_sins("C2", "terrible", "lytic", "normal", "none", "none")
    with pytest.raises(InputError, match="subluxation"):
        compute_sins("C2", "none", "lytic", 4, "none", "none")
    # aliases
    r = compute_sins("junctional", "pain-free", "osteolytic", "kyphosis", ">50%", "none")
    assert r.total == 3 + 0 + 2 + 2 + 3 + 0


# ---------------------------------------------------------------- Mirels bands
def test_mirels_band_7_low_risk():
    # upper limb 1 + lytic 3 + <1/3 1 + moderate 2 = 7
    r = compute_mirels("upper-limb", "lytic", 0.2, "moderate")
    assert r.total == 7 and r.band == "low-risk" and "radiotherapy" in r.recommendation


def test_mirels_band_8_judgement():
    # lower limb 2 + mixed 2 + 1/3-2/3 2 + moderate 2 = 8
    r = compute_mirels("lower-limb", "mixed", 0.5, "moderate")
    assert r.total == 8 and r.band == "judgement"


def test_mirels_band_9_fixation():
    # peritrochanteric 3 + lytic 3 + <1/3 1 + moderate 2 = 9
    r = compute_mirels("peritrochanteric", "lytic", "<1/3", "moderate")
    assert r.total == 9 and r.band == "fixation" and "fixation" in r.recommendation
    assert r.to_dict()["components"]["site"]["points"] == 3


def test_mirels_extremes_and_size_edges():
    assert compute_mirels("upper-limb", "blastic", 0.0, "mild").total == 4
    assert compute_mirels("peritrochanteric", "lytic", 1.0, "functional").total == 12
    assert size_from_fraction(0.33).value == "<1/3"
    assert size_from_fraction(1 / 3).value == "1/3-2/3"
    assert size_from_fraction(2 / 3).value == "1/3-2/3"
    assert size_from_fraction(0.67).value == ">2/3"
    assert [mirels_band(t) for t in (4, 7, 8, 9, 12)] == ["low-risk", "low-risk", "judgement", "fixation", "fixation"]


@pytest.mark.parametrize("args, match", [
    (("spine", "lytic", 0.5, "mild"), "site"),
    (("upper-limb", "cystic", 0.5, "mild"), "lesion_type"),
    (("upper-limb", "lytic", 1.5, "mild"), "between 0 and 1"),
    (("upper-limb", "lytic", float("nan"), "mild"), "between 0 and 1"),
    (("upper-limb", "lytic", 0.5, "severe"), "pain"),
    (("upper-limb", None, 0.5, "mild"), "missing"),
])
def test_mirels_validates_inputs(args, match):
    with pytest.raises(InputError, match=match):
        compute_mirels(*args)
