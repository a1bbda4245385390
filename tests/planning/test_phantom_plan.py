"""The planner on the phantom (exact ground truth) with the default protocol (c2-dens-anterior): margins,
containment, the technique (entry zone, angle cap, tip, screw length, thread across waist and lesion),
independent brute-force clearances, hydrodissection of the carotid the path passes near, no path when the
cord is in every path, not-assessed structures."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from osteoplan.anatomy.phantom import PhantomParams, make_phantom
from osteoplan.planning.fields import CAP_MM
from osteoplan.planning.planner import make_plan
from osteoplan.planning.protocol import PROTOCOL_DIR, load_protocol, parse_protocol

SPACING = 1.0  # coarser than the default 0.8 mm to keep the tests fast


def _protocol(carotid_margin_mm: float | None = None):
    data = tomllib.loads((PROTOCOL_DIR / "c2-dens-anterior.toml").read_text())
    if carotid_margin_mm is not None:
        for n in ("common_carotid_artery_left", "common_carotid_artery_right",
                  "internal_carotid_artery_left", "internal_carotid_artery_right"):
            data["structures"][n]["margin_mm"] = carotid_margin_mm
    return parse_protocol(data)


@pytest.fixture(scope="module")
def base():
    ph = make_phantom(PhantomParams(spacing_mm=SPACING))
    plan = make_plan(ph.volume, ph.truth, ph.landmarks, load_protocol())
    return ph, plan


# ----------------------------------------------------------------------------- independent checks
def _capsule_surface(a: np.ndarray, b: np.ndarray, r: float, step: float = 0.1, n_ang: int = 90) -> np.ndarray:
    """Points on the surface of the capsule (cylinder + hemispherical ends) of radius r around segment a-b."""
    d = (b - a) / np.linalg.norm(b - a)
    u = np.cross(d, [1.0, 0.0, 0.0] if abs(d[0]) < 0.9 else [0.0, 1.0, 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    ang = np.linspace(0, 2 * np.pi, n_ang, endpoint=False)
    ring = np.cos(ang)[:, None] * u + np.sin(ang)[:, None] * v
    s = np.arange(0, np.linalg.norm(b - a) + 1e-9, step)
    cyl = (a[None, None] + s[:, None, None] * d[None, None] + r * ring[None]).reshape(-1, 3)
    # hemispheres
    th = np.linspace(0, np.pi / 2, 20)
    caps = []
    for end, sign in ((a, -1.0), (b, 1.0)):
        for t in th:
            caps.append(end + r * (np.cos(t) * ring + sign * np.sin(t) * d))
    return np.concatenate([cyl, np.concatenate(caps)])


def _voxel_centres(volume, mask: np.ndarray) -> np.ndarray:
    return volume.index_to_world(np.argwhere(mask).astype(float))


def brute_clearance(volume, mask: np.ndarray, a: np.ndarray, b: np.ndarray, r: float) -> float:
    """Smallest distance from the instrument surface to any structure voxel centre (0 if touching)."""
    tree = cKDTree(_voxel_centres(volume, mask))
    pts = _capsule_surface(a, b, r)
    return float(tree.query(pts, k=1)[0].min())


# ----------------------------------------------------------------------------- tests
def test_phantom_plan_satisfies_margins(base):
    ph, plan = base
    assert plan.feasible and plan.best is not None
    b = plan.best
    for c in b.clearances:
        assert c.segmented == ph.truth.has(c.structure) or c.structure == "other_bone"
        if not c.segmented:
            assert c.status == "not_assessed" and c.clearance_mm is None
            continue
        if c.category == "hard":
            assert c.status == "pass" and c.clearance_mm >= c.margin_mm, c
        else:
            assert c.status in ("pass", "hydrodissection")
            if c.status == "hydrodissection":
                # the margin holds once the structure is pushed by the displacement reported
                assert c.clearance_mm + c.displacement_needed_mm == pytest.approx(c.margin_mm, abs=0.011)
                assert c.displacement_needed_mm <= plan.hydrodissection.achievable_mm
            else:
                assert c.clearance_mm >= c.margin_mm
    assert plan.hydrodissection.required == any(c.status == "hydrodissection" for c in b.clearances)
    assert b.other_bone_crossing_mm == 0.0


def test_screw_stays_in_c2_and_tip_in_apex_zone(base):
    ph, plan = base
    b, lm, proto = plan.best, ph.landmarks, load_protocol()
    c2 = ph.truth.get("vertebrae_C2")
    d = np.asarray(b.direction_unit)
    T, E = np.asarray(b.target_lps_mm), np.asarray(b.bone_entry_lps_mm)
    # every point of the screw surface between the entry zone and the tip's last millimetres (which engage
    # the apical cortex) lies in a C2 voxel
    start = E + b.containment_entry_skip_mm * d
    end = T - proto.screw.containment_skip_tip_mm * d
    pts = _capsule_surface(start, end, b.screw.diameter_mm / 2, step=0.25, n_ang=36)
    idx = np.rint(ph.volume.world_to_index(pts)).astype(int)
    inside = c2[tuple(idx.T)]
    assert inside.mean() >= 0.99, f"{(~inside).sum()} screw surface points outside C2"
    assert b.containment_min_margin_mm >= proto.screw.containment_margin_mm
    # screw length: catalogue value rounded DOWN from bone entry -> target, >= 30 mm (corner -> apex 39.7 mm)
    assert b.screw.length_mm <= b.depth_bone_to_target_mm < b.screw.length_mm + proto.screw.length_step_mm
    assert b.screw.length_mm in proto.screw.lengths() and b.screw.length_mm >= 30.0
    assert b.screw.diameter_mm <= lm.waist_diameter_mm - 2 * proto.screw.waist_margin_mm
    # tip: 0-3 mm below the apex along the axis, in the anterior half, inside the bone (independent numbers)
    ax = lm.axis_unit
    below = float((lm.apex_lps_mm - T) @ ax)
    assert proto.target.below_apex_min_mm - 0.01 <= below <= proto.target.below_apex_max_mm + 0.01  # points rounded to 0.01 mm
    ant = np.array([0.0, -1.0, 0.0]) - (np.array([0.0, -1.0, 0.0]) @ ax) * ax
    ant /= np.linalg.norm(ant)
    assert float((T - lm.waist_lps_mm) @ ant) >= proto.target.anterior_of_axis_min_mm - 1e-6
    k = tuple(np.rint(ph.volume.world_to_index(T)).astype(int))
    assert c2[k]
    # 0-3 mm short of the cortex ahead: march forward on the truth mask (nearest voxel), 0.05 mm steps
    s_ = np.arange(0.0, 8.0, 0.05)
    ahead = np.rint(ph.volume.world_to_index(T[None] + s_[:, None] * d[None])).astype(int)
    gap = float(s_[np.argmax(~c2[tuple(ahead.T)])])
    assert gap <= 3.0 + 0.6 and b.tip_to_cortex_mm == pytest.approx(gap, abs=0.6)
    # bone entry near the anteroinferior corner: <= 10 mm above it along the axis, <= 8 mm from the midline
    corner = np.asarray(lm.anteroinferior_body_lps_mm)
    lat = np.cross(ax, ant)
    assert -3.0 - 1e-6 <= float((E - corner) @ ax) <= 10.0 + 1e-6
    assert abs(float((E - corner) @ lat)) <= 8.0 + 1e-6
    assert np.linalg.norm(E - corner) <= 10.0
    # angle to the dens axis within the cap; thread across the waist and the lesion
    assert np.degrees(np.arccos(abs(d @ ax))) <= proto.angles.axis_max_deg + 0.05
    assert float((T - lm.waist_lps_mm) @ ax) > 0 > float((T - b.screw.thread_mm * d - lm.waist_lps_mm) @ ax)
    les = ph.truth.get("lesion")
    q = np.arange(0.0, b.screw.thread_mm, 0.1)
    on = np.rint(ph.volume.world_to_index(T[None] - q[:, None] * d[None])).astype(int)
    assert les[tuple(on.T)].sum() * 0.1 == pytest.approx(b.thread_in_lesion_mm, abs=1.5) and b.thread_in_lesion_mm > 2
    # the reported depths add up and the points lie on one line
    assert b.depth_total_mm == pytest.approx(b.depth_skin_to_bone_mm + b.depth_bone_to_target_mm, abs=0.02)
    S = np.asarray(b.skin_entry_lps_mm)
    np.testing.assert_allclose(S + b.depth_total_mm * d, T, atol=0.05)


def test_no_hollow_viscus_entered(base):
    """Brute force: the instrument (capsule skin -> target) intersects no viscus lumen and no carotid-sheath vessel."""
    ph, plan = base
    for t in plan.trajectories:
        a, b = np.asarray(t.skin_entry_lps_mm), np.asarray(t.target_lps_mm)
        for name in ("pharynx", "larynx", "trachea", "airway", "esophagus", "common_carotid_artery_left",
                     "common_carotid_artery_right", "internal_jugular_vein_left", "internal_jugular_vein_right"):
            assert brute_clearance(ph.volume, ph.truth.get(name), a, b, t.instrument_radius_mm) > 0.0, name


def test_clearances_agree_with_brute_force(base):
    ph, plan = base
    b = plan.best
    a, t = np.asarray(b.skin_entry_lps_mm), np.asarray(b.target_lps_mm)
    r = b.instrument_radius_mm
    checked = 0
    for c in b.clearances:
        if not c.segmented or c.structure == "other_bone" or c.clearance_mm >= CAP_MM - r - 0.1:
            continue
        brute = brute_clearance(ph.volume, ph.truth.get(c.structure), a, t, r)
        if c.clearance_mm > 0:
            assert abs(brute - c.clearance_mm) <= 0.5, (c.structure, c.clearance_mm, brute)
        else:
            assert brute <= 0.9, (c.structure, c.clearance_mm, brute)  # touching: within half a voxel diagonal
        checked += 1
    assert checked >= 5


def _signed_axis_distance(volume, mask, a, b, step=0.1):
    """Brute force: min over axis points of the distance to the structure's voxel centres, or minus the
    distance to the nearest voxel centre outside it for axis points inside it."""
    tree_in = cKDTree(_voxel_centres(volume, mask))
    shell = ndi.binary_dilation(mask) & ~mask
    tree_out = cKDTree(_voxel_centres(volume, shell))
    s = np.arange(0, np.linalg.norm(b - a) + 1e-9, step)
    pts = a[None] + s[:, None] * (b - a) / np.linalg.norm(b - a)
    idx = np.rint(volume.world_to_index(pts)).astype(int)
    inside = mask[tuple(idx.T)]
    d = np.where(inside, -tree_out.query(pts)[0], tree_in.query(pts)[0])
    return float(d.min())


def test_carotid_near_the_path_needs_hydrodissection(base):
    """The anterior path passes close to the left common carotid: with the default 5 mm margin it must be pushed
    (displacement = margin - clearance, checked against a brute-force signed distance); with a 2 mm margin the
    same phantom plans without pushing it."""
    ph, p = base
    b = p.best
    assert b.side == "left"
    c = b.check("common_carotid_artery_left")
    assert c.status == "hydrodissection" and b.hydrodissection_required and p.hydrodissection.required
    assert any(i.structure == "common_carotid_artery_left" for i in p.hydrodissection.structures)
    a, t = np.asarray(b.skin_entry_lps_mm), np.asarray(b.target_lps_mm)
    sd = _signed_axis_distance(ph.volume, ph.truth.get("common_carotid_artery_left"), a, t)
    expected = 5.0 - (sd - b.instrument_radius_mm)
    assert c.displacement_needed_mm == pytest.approx(expected, abs=0.5)
    assert c.displacement_needed_mm > 1.0
    loose = make_plan(ph.volume, ph.truth, ph.landmarks, _protocol(carotid_margin_mm=2.0), side="left")
    assert loose.feasible and loose.best.check("common_carotid_artery_left").status == "pass"


def test_cord_in_every_path_gives_no_feasible_path(base):
    ph, _ = base
    lm = ph.truth
    # edit the label map: a "cord" shell 0-4 mm around the C2 body below the dens waist, so that
    # every path to the dens crosses it
    c2 = lm.get("vertebrae_C2")
    grown = ndi.binary_dilation(c2, iterations=4)
    k_waist = ph.volume.world_to_index(ph.landmarks.waist_lps_mm)[0]
    shell = grown & ~c2
    shell[int(np.ceil(k_waist)):] = False
    from osteoplan.anatomy.labelmap import LabelMap

    edited = LabelMap(ph.volume, masks=dict(lm.masks), sources=dict(lm.sources))
    edited.add("spinal_cord", shell, "test-edit")
    plan = make_plan(ph.volume, edited, ph.landmarks, load_protocol())
    assert not plan.feasible and plan.best is None and plan.trajectories == ()
    inf = plan.infeasibility
    ex = {e.constraint: e for e in inf.exclusions}
    assert ex["clearance:spinal_cord"].excluded > 0
    assert "No feasible path" in inf.message and "clearance to spinal cord short by" in inf.message  # named, not keyed
    assert inf.best_near_miss is not None and "clearance:spinal_cord" in inf.best_near_miss.violations
    # every candidate that passed the earlier constraints fell on the cord
    from osteoplan.planning.search import bone_constraints

    bone = bone_constraints(load_protocol(plan.protocol_name))
    evaluated = inf.n_candidates - sum(ex[k].excluded_first for k in ("skin",) + bone if k in ex)
    assert ex["clearance:spinal_cord"].excluded_first == evaluated


def test_not_segmented_is_not_assessed(base):
    ph, _ = base
    from osteoplan.anatomy.labelmap import LabelMap

    masks = {k: v for k, v in ph.truth.masks.items() if k not in ("internal_jugular_vein_left", "internal_jugular_vein_right")}
    lm = LabelMap(ph.volume, masks=masks, sources={k: ph.truth.sources[k] for k in masks})
    plan = make_plan(ph.volume, lm, ph.landmarks, load_protocol(), side="left")
    assert "internal_jugular_vein_left" in plan.not_assessed
    for t in plan.trajectories:
        c = t.check("internal_jugular_vein_left")
        assert c.status == "not_assessed" and c.clearance_mm is None and not c.segmented
    assert any("Not assessed" in w for w in plan.warnings)


# ----------------------------------------------------------------------------- truncated field of view
def test_truncated_fov_detected_only_for_abrupt_cuts():
    from osteoplan.planning.search import truncated_fov_slices

    body = np.zeros((40, 20, 20), bool)
    body[:30, 2:18, 2:18] = True                 # data blanked from slice 30 on: a cut
    assert truncated_fov_slices(body, 0, 10.0) == {1: 30}
    taper = np.zeros((40, 20, 20), bool)
    for k in range(40):                          # skull-vertex-like taper: shrinks over many slices
        r = max(0, 9 - max(0, k - 20) // 2)
        taper[k, 10 - r:10 + r, 10 - r:10 + r] = True
    assert truncated_fov_slices(taper, 0, 10.0) == {}


def test_path_leaving_through_a_truncated_fov_is_not_a_skin_entry(monkeypatch):
    from osteoplan.planning import search as S

    from .synthetic import make_neck

    vol, lm, dl = make_neck()
    z = vol.index_to_world(np.stack([np.arange(vol.shape[0]), np.zeros(vol.shape[0]), np.zeros(vol.shape[0])], 1))[:, 2]
    cut = z < -40.0                               # the scan stops 54 mm below the apex (blanked to air)
    arr = vol.array.copy()
    arr[cut] = -1000.0
    vol = vol.with_array(arr)
    masks = {n: lm.get(n).copy() for n in lm.names()}
    for m in masks.values():
        m[cut] = False
    from osteoplan.anatomy.labelmap import LabelMap

    lm = LabelMap(vol, masks=masks, sources={n: "synthetic" for n in masks})
    proto = load_protocol("c2-dens-lateral")  # the synthetic neck's lateral paths (the mechanism is shared)

    def skin_entries(plan):
        return np.array([t.skin_entry_lps_mm for t in plan.trajectories])

    plan = make_plan(vol, lm, dl, proto)
    # untruncated, the synthetic neck's feasible paths ascend ~56 deg and reach the skin ~80 mm below
    # the waist: with the data cut at z = -40 mm no real skin entry is left, and the planner must say so
    assert not plan.feasible
    assert any("truncated field of view" in w for w in plan.warnings)
    skin = next(e for e in plan.infeasibility.exclusions if e.constraint == "skin")
    assert skin.excluded > 0
    for t in plan.trajectories:
        assert np.hypot(*t.skin_entry_lps_mm[:2]) > 53.0
    # without the detection, the planner "enters the skin" on the cut plane, inside the neck
    monkeypatch.setattr(S, "truncated_fov_slices", lambda *a, **k: {})
    naive = make_plan(vol, lm, dl, proto)
    assert naive.feasible
    pts = skin_entries(naive)
    assert np.all((np.abs(pts[:, 2] + 40.5) < 1.5) & (np.hypot(pts[:, 0], pts[:, 1]) < 53.0))


def test_apex_cut_by_the_image_is_never_a_target(base):
    """Landmarks whose apex is the image edge (dens cut by the CT) are refused before any search."""
    from dataclasses import replace

    from osteoplan.errors import PlanningError

    ph, _ = base
    with pytest.raises(PlanningError, match="dens is cut by the top of the CT"):
        make_plan(ph.volume, ph.truth, replace(ph.landmarks, apex_in_view=False), load_protocol())


def test_no_dens_message_gives_the_reason_and_what_to_do_once(base):
    """Anatomy without landmarks: the planner refuses with the last C2 message. When that reason already
    says what to do (a point refused: '... or give a C2 mask (--masks)'), it is not said a second time;
    otherwise the hint / mask advice is added."""
    from types import SimpleNamespace

    from osteoplan.errors import AnatomyError
    from osteoplan.planning.planner import plan_from_anatomy

    ph, _ = base
    refused = ("C2 NOT located: the point given lies 5 mm below the C2 found without it: it may be in C3. Check the "
               "point (LPS mm, in the C2 body or dens) or give a C2 mask (--masks).")
    an = SimpleNamespace(landmarks=None, messages=["bone: classical", refused], labelmap=ph.truth, lesion=None)
    with pytest.raises(AnatomyError) as e:
        plan_from_anatomy(ph.volume, an)
    assert str(e.value) == f"The dens could not be located ({refused[:-1]})."
    an.messages = ["C2 NOT located: C2 not found: no vertebral body or dens anterior to the spinal canal."]
    with pytest.raises(AnatomyError) as e:
        plan_from_anatomy(ph.volume, an)
    assert str(e.value).endswith("canal): give a hint point near C2 (--hint-lps X Y Z) or a C2 mask (--masks).")
