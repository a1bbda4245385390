"""The anterior odontoid-screw protocol (c2-dens-anterior) on a synthetic neck with known geometry.

Every figure the plan reports is checked against an independent computation on the analytic shapes: the
entry zone, the angle cap, the tip's distance to the apical cortex, the thread across the waist and the
lesion, the screw length floor, clearances (brute force on voxel centres), hollow viscera never entered,
the skin entry medial to the carotid, and "route not assessable" when the CT stops too high.
"""

from __future__ import annotations

import tomllib
from dataclasses import replace

import numpy as np
import pytest

from osteoplan.planning.planner import make_plan
from osteoplan.planning.protocol import PROTOCOL_DIR, load_protocol, parse_protocol

from .synthetic import make_neck
from .test_phantom_plan import brute_clearance

CAROTID_X, CAROTID_Y, CAROTID_R = 18.0, -12.0, 3.5
LESION_C, LESION_R = np.array([0.0, 0.0, 6.0]), 3.0
WAIST_Z = 2.0

#: The oesophagus a little left of the midline (as it usually lies in the lower neck), the vertebral arteries'
#: bony canals, a lesion in the dens; C3 set back 4 mm behind the C2 anteroinferior corner.
EXTRA = {
    "esophagus": lambda Z, Y, X: ((X - 7) ** 2 + (Y + 14) ** 2 <= 4.0 ** 2) & (Z < -34),
    "lesion": lambda Z, Y, X: X ** 2 + Y ** 2 + (Z - 6) ** 2 <= LESION_R ** 2,
    "vertebral_artery_canal_left": lambda Z, Y, X: (X - 22) ** 2 + (Y - 6) ** 2 <= 9,
    "vertebral_artery_canal_right": lambda Z, Y, X: (X + 22) ** 2 + (Y - 6) ** 2 <= 9,
}


def _neck(**kw):
    args = dict(z0=-200, neck_radius_mm=32, c3_front_y_mm=-4, carotid_x_mm=CAROTID_X, carotid_y_mm=CAROTID_Y,
                extra=EXTRA)
    args.update(kw)
    vol, lm, dl = make_neck(**args)
    # the synthetic dens is a plain cylinder: put its waist landmark 4 mm above the body (any level is narrowest)
    return vol, lm, replace(dl, waist_lps_mm=(0.0, 0.0, WAIST_Z))


@pytest.fixture(scope="module")
def planned():
    vol, lm, dl = _neck()
    return vol, lm, dl, make_plan(vol, lm, dl, load_protocol("c2-dens-anterior"))


def test_default_protocol_is_the_anterior_screw():
    p = load_protocol()
    assert p.name == "c2-dens-anterior" and p.route == "anterior"
    assert p.angles.axis_max_deg == 20.0 and p.objective.depth == 0.0
    text = (PROTOCOL_DIR / "c2-dens-anterior.toml").read_text()
    # every numeric line of the file is preceded by a comment block naming its source or saying it has none
    assert text.count("configurable default") >= 15 and "Sung" in text and "Tun" in text


def test_plan_meets_the_technique(planned):
    vol, lm, dl, plan = planned
    assert plan.feasible and plan.procedure == "c2-dens-screw" and plan.protocol_name == "c2-dens-anterior"
    assert plan.level == "C2" and plan.placement == "alternatives" and plan.route.assessable
    corner = np.asarray(dl.anteroinferior_body_lps_mm)
    for t in plan.trajectories:
        e, tip, d = (np.asarray(x) for x in (t.bone_entry_lps_mm, t.target_lps_mm, t.direction_unit))
        # entry zone: <= 10 mm above the corner (axis = +z), <= 8 mm from the mid-sagittal plane (x = 0)
        assert -3.0 - 0.01 <= e[2] - corner[2] <= 10.0 + 0.01 and abs(e[0]) <= 8.0 + 0.01
        assert t.bone_entry_above_corner_mm == pytest.approx(e[2] - corner[2], abs=0.02)
        # angle to the dens axis (0, 0, 1)
        ang = np.degrees(np.arccos(abs(d[2])))
        assert ang <= 20.0 + 0.05 and t.angle_to_dens_axis_deg == pytest.approx(ang, abs=0.1)
        # tip: anterior half (y <= 0), within 3 mm below the apex (z = 14), 0-3 mm short of the cortex ahead:
        # the forward ray leaves the dens through its top plane (surface z = 14.5) or its side (radius 6.5)
        assert tip[1] <= 1e-6 and 14.0 - 3.0 - 1e-6 <= tip[2] <= 14.0 + 1e-6
        s_top = (14.5 - tip[2]) / d[2]
        a, b, c = d[0] ** 2 + d[1] ** 2, 2 * (tip[0] * d[0] + tip[1] * d[1]), tip[0] ** 2 + tip[1] ** 2 - 6.5 ** 2
        s_side = (-b + np.sqrt(b * b - 4 * a * c)) / (2 * a) if a > 1e-12 else np.inf
        gap = min(s_top, s_side)
        assert gap <= 3.0 + 0.1 and t.tip_to_cortex_mm == pytest.approx(gap, abs=0.15)
        # screw: >= 30 mm (corner -> apex 44.7 mm leaves room), thread across the waist and the lesion
        L, thread = t.screw.length_mm, t.screw.thread_mm
        assert L >= 30.0 and L <= t.depth_bone_to_target_mm + 1e-6
        end = tip - thread * d
        assert tip[2] > WAIST_Z > end[2] and t.thread_crosses_waist
        # line-sphere: length of the thread segment inside the lesion sphere
        f = tip - LESION_C
        bq, cq = f @ d, f @ f - LESION_R ** 2
        disc = bq * bq - cq
        assert disc > 0
        s0, s1 = -bq - np.sqrt(disc), -bq + np.sqrt(disc)  # along +d from the tip (negative = behind the tip)
        inside = max(0.0, min(s1, 0.0) - max(s0, -thread))
        assert inside > 2.0 and t.thread_in_lesion_mm == pytest.approx(inside, abs=1.3)
        # medial to the carotid wherever the path is at or behind its front (y >= -15.5): the corridor; in front of
        # it, near the skin, the path may be more lateral
        skin = np.asarray(t.skin_entry_lps_mm)
        s_ = np.linspace(0.0, 1.0, 400)
        pts = e[None] + s_[:, None] * (skin - e)[None]
        deep = pts[:, 1] >= CAROTID_Y - CAROTID_R
        assert deep.any() and np.all(np.abs(pts[deep, 0]) < CAROTID_X - CAROTID_R + 0.5)
        assert t.screw.diameter_mm <= dl.waist_diameter_mm - 2.0


def test_clearances_agree_with_brute_force_and_no_viscus_entered(planned):
    """Each reported clearance within 0.5 mm of the capsule-to-voxel-centre distance; the oesophagus and the
    carotids are never intersected (brute-force clearance > 0)."""
    vol, lm, dl, plan = planned
    checked = 0
    for t in plan.trajectories:
        a, b = np.asarray(t.skin_entry_lps_mm), np.asarray(t.target_lps_mm)
        r = t.instrument_radius_mm
        for c in t.clearances:
            if not c.segmented or c.structure == "other_bone" or c.clearance_mm >= 17.0:
                continue
            bf = brute_clearance(vol, lm.get(c.structure), a, b, r)
            assert c.clearance_mm == pytest.approx(bf, abs=0.5), c.structure
            checked += 1
        for name in ("esophagus", "common_carotid_artery_left", "common_carotid_artery_right"):
            assert brute_clearance(vol, lm.get(name), a, b, r) > 0.0
        for name, margin in (("vertebral_artery_canal_left", 3.0), ("vertebral_artery_canal_right", 3.0),
                             ("spinal_canal", 2.0)):
            assert brute_clearance(vol, lm.get(name), a, b, r) >= margin - 0.5, name
    assert checked >= 3


def test_statuses_say_how_structures_were_known():
    """Without the vessel masks, the vertebral arteries are assessed by their bony canals ('covered', bony_canal),
    the cord by the canal; structures never segmented are 'not_assessed'."""
    vol, lm, dl = _neck()
    lm.masks.pop("vertebral_artery_left")
    lm.masks.pop("vertebral_artery_right")
    plan = make_plan(vol, lm, dl, load_protocol("c2-dens-anterior"))
    assert plan.feasible
    by = {c.structure: c for c in plan.best.clearances}
    va = by["vertebral_artery_left"]
    assert va.status == "covered" and va.assessed_by == "bony_canal" and "bony canal" in va.note
    assert by["vertebral_artery_canal_left"].status == "pass"
    assert by["spinal_cord"].status == "covered" and "spinal-canal clearance" in by["spinal_cord"].note
    assert by["pharynx"].status == "not_assessed" and by["pharynx"].assessed_by == "not_assessed"
    assert "vertebral_artery_left" not in " ".join(w for w in plan.warnings if w.startswith("Not assessed"))


def test_hollow_viscus_is_never_entered():
    """An oesophagus across every path: no feasible path, and the reason names the viscus. With the same
    oesophagus only 'displaceable' (never_enter off) the planner would go through it (push > its radius)."""
    wide = dict(EXTRA)
    wide["esophagus"] = lambda Z, Y, X: (np.abs(X) <= 14) & (Y <= -9) & (Y >= -15) & (Z < -36)
    vol, lm, dl = _neck(extra=wide)
    proto = load_protocol("c2-dens-anterior")
    plan = make_plan(vol, lm, dl, proto)
    assert not plan.feasible
    ex = {e.constraint: e.excluded for e in plan.infeasibility.exclusions}
    assert ex.get("viscus:esophagus", 0) > 0
    data = tomllib.loads((PROTOCOL_DIR / "c2-dens-anterior.toml").read_text())
    data["structures"]["esophagus"]["never_enter"] = False
    loose = make_plan(vol, lm, dl, parse_protocol(data))
    assert loose.feasible
    oes = next(c for c in loose.best.clearances if c.structure == "esophagus")
    assert oes.clearance_mm < 0 and oes.status == "hydrodissection"


def test_route_not_assessable_when_the_ct_stops_high():
    """The CT stops 70 mm below the C2 corner with the neck still wide: every technique path leaves the image
    inside the neck. The plan says the route is not assessable (and why), and never substitutes another route."""
    vol, lm, dl = _neck(z0=-100, neck_radius_mm=55)
    plan = make_plan(vol, lm, dl, load_protocol("c2-dens-anterior"))
    assert not plan.feasible and plan.trajectories == ()
    r = plan.route
    assert r is not None and not r.assessable and r.route == "anterior"
    assert r.figures["left_image_inside_body"] > 0 and r.figures["reached_skin_in_image"] == 0
    assert r.figures["corner_to_ct_lower_edge_mm"] == pytest.approx(70.0, abs=0.01)
    assert "extend the scan to C6-T1" in r.message_en.replace("Extend", "extend")
    assert "C6-T1" in r.message_fr


def test_old_lateral_protocol_and_plan_files_still_load(planned, tmp_path):
    """The lateral protocol (older entry fields) still validates; a schema 1.0 plan file still loads."""
    import json

    from osteoplan.planning.model import Plan

    lat = load_protocol("c2-dens-lateral")
    z = lat.entry.effective_zone()
    assert z.reference == "waist" and z.anterior_min_mm == 0.0 and z.axis_max_mm == 0.0
    _, _, _, plan = planned
    data = json.loads(plan.to_json())
    data["schema_version"] = "1.0"
    for k in ("procedure", "route", "verdict"):
        data.pop(k, None)
    for t in data["trajectories"]:
        for k in ("tip_to_cortex_mm", "tip_to_apex_mm", "bone_entry_to_apex_mm", "bone_entry_above_corner_mm",
                  "bone_entry_from_midline_mm", "thread_crosses_waist", "thread_in_lesion_mm"):
            t.pop(k, None)
        for c in t["clearances"]:
            c.pop("assessed_by", None)
            if c["status"] == "covered":
                c["status"] = "not_assessed"
    old = Plan.from_json(json.dumps(data))
    assert old.route is None and old.best.tip_to_cortex_mm is None


def test_corridor_rule_hand_computed():
    """corridor_violation on three hand-made paths from the tip (0, 0, 12) past the left carotid (x = 18, y = -12,
    radius 3.5: medial edge at x = 14.5, front edge at y = -15.5, i.e. 7.5 mm in front of the corner at y = -8):

    * to (30, -12, -80): at fraction f of the way the path is 30 f - 15 mm lateral of the medial edge (the
      nearest voxel centres of the carotid are at x = 15, y = -15: front edge 7 mm in front of the corner) and
      7 - (12 f - 8) = 15 - 12 f mm behind the front edge; the violation is the largest min of the two, where they
      are equal: f = 5/7, 90/14 = 6.43 mm;
    * to (5, -12, -80): always medial: 0;
    * to (30, -40, -80): lateral only where it is in front of the sheath (it crosses y = -15.5 at x = 11.6): 0.
    """
    from osteoplan.planning.procedures.c2_dens import site_from_landmarks
    from osteoplan.planning.search import build_fields, corridor_violation

    vol, lm, dl = _neck()
    proto = load_protocol("c2-dens-anterior")
    site = site_from_landmarks(dl, proto)
    f, _, _ = build_fields(vol, lm, site, proto)
    T = np.array([0.0, 0.0, 12.0])
    skins = np.array([[30.0, -12.0, -80.0], [5.0, -12.0, -80.0], [30.0, -40.0, -80.0]])
    dirs = (T[None] - skins) / np.linalg.norm(T[None] - skins, axis=1, keepdims=True)
    s_to = np.linalg.norm(T[None] - skins, axis=1)
    v = corridor_violation(f, np.repeat(T[None], 3, 0), dirs, np.zeros(3), s_to, site, proto, np.ones(3, bool),
                           step_mm=0.5)
    assert v[0] == pytest.approx(90 / 14, abs=0.05)
    assert v[1] == 0.0 and v[2] == 0.0
    # a path that did not reach the skin is not judged here (the skin rule excludes it)
    v = corridor_violation(f, T[None], dirs[:1], np.zeros(1), s_to[:1], site, proto, np.zeros(1, bool))
    assert v[0] == 0.0
