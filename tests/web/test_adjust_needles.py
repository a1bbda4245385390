"""The review page's adjust API on a plan with several needles: a real bipedicular (two-needle) vertebroplasty of L1
planned on the synthetic lumbar vertebra of known geometry (tests/planning/synthetic_vertebra.py).

Choosing needle 2 moves needle 2 only (needle 1 byte-equal in the saved version), its live clearances are those of
an independent re-check of that trajectory (:mod:`osteoplan.planning.recheck` built from the plan folder by hand),
the plan's verdict is re-derived over both needles as the planner derives it, a target moved out of the procedure's
target zone is refused with one line naming the rule, and the versions page says which needle moved and by how
much."""

from __future__ import annotations

import html
import json

import pytest

from .adjust_fixtures import attach_as_job, write_bipedicular_plan_folder
from .conftest import make_case


@pytest.fixture(scope="module")
def bipedicular_folder(tmp_path_factory):
    work = tmp_path_factory.mktemp("adjust-needles-job")
    vol, lm, plan = write_bipedicular_plan_folder(work / "plan-1")
    assert plan.placement == "all" and [(t.level, t.side) for t in plan.trajectories] == [("L1", "left"),
                                                                                           ("L1", "right")]
    return work, vol, lm, plan


@pytest.fixture()
def needles_case(engine, bipedicular_folder):
    work, vol, lm, plan = bipedicular_folder
    ids = make_case(engine, through="lesion", lesion_site="L1")
    ids["plan"] = attach_as_job(engine, ids["lesion"], work, plan, protocol="vertebroplasty-transpedicular")
    return ids, work, plan


def _body(t, index, **moved):
    out = {"skin_entry_lps_mm": list(t.skin_entry_lps_mm), "bone_entry_lps_mm": list(t.bone_entry_lps_mm),
           "target_lps_mm": list(t.target_lps_mm), "trajectory_index": index}
    for k, v in moved.items():
        out[f"{k}_lps_mm"] = [round(a + b, 2) for a, b in zip(out[f"{k}_lps_mm"], v)]
    return out


def _independent_recheck(folder, index, body):
    """The re-check of trajectory *index* with the points of *body*, built from the plan folder here (not through
    the server's cache)."""
    from osteoplan.export import load_plan_dir
    from osteoplan.planning import recheck as R

    saved, volume, labelmap = load_plan_dir(folder)
    ctx = R.build_context(saved, volume, labelmap, index)
    return saved, R.evaluate_trajectory(ctx, body["skin_entry_lps_mm"], body["bone_entry_lps_mm"],
                                        body["target_lps_mm"], pivot="bone_entry")


def test_needle_2_moves_alone_with_its_own_clearances_and_the_plans_verdict(api_for, client_for, engine,
                                                                              needles_case):
    from osteoplan.planning.model import Plan
    from osteoplan.planning.verdict import compute_verdict
    from osteoplan.workflow import models as m
    from sqlalchemy.orm import Session

    ids, work, plan = needles_case
    api = api_for("radiologist")
    ev = f"/api/cases/{ids['case']}/plans/{ids['plan']}/evaluate"
    n1, n2 = plan.trajectories
    # needle 2 as saved: its own points and clearances, named
    j0 = api.post(ev, json=_body(n2, 1)).json()
    assert j0["trajectory_index"] == 1 and j0["needle"] == "needle 2 (L1 right)" and j0["moved"] == {}
    assert j0["points"]["target"] == list(n2.target_lps_mm)
    # needle 2's target moved 1 mm towards the head (inside the zone: height within +-7.8 mm of the body centre)
    body = _body(n2, 1, target=(0.0, 0.0, 1.0))
    r = api.post(ev, json=body)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["feasible"], j["violations"]
    assert j["moved"]["target"] == {"delta_lps_mm": [0.0, 0.0, 1.0], "distance_mm": 1.0}
    # the live clearances are those of an independent re-check of trajectory 2 with the same points
    saved, ind = _independent_recheck(work / "plan-1", 1, body)
    assert ind.trajectory.side == "right"
    live = {c["structure"]: (c["clearance_mm"], c["status"]) for c in j["clearances"]}
    assert live == {c.structure: (c.clearance_mm, c.status) for c in ind.trajectory.clearances}
    assert live["spinal_canal"][0] is not None and live["spinal_canal"][0] > 0
    assert j["containment_min_margin_mm"] == ind.trajectory.containment_min_margin_mm
    # ... and differ from needle 1's (another pedicle, another path)
    j1 = api.post(ev, json=_body(n1, 0)).json()
    assert j1["needle"] == "needle 1 (L1 left)"
    assert {c["structure"]: c["clearance_mm"] for c in j1["clearances"]} != {k: v[0] for k, v in live.items()}

    # saved: a version where needle 2 only moved; needle 1's points byte-equal; the verdict over both needles
    r = api.post(f"/api/cases/{ids['case']}/plans/{ids['plan']}/versions", json={**body, "note": "needle 2 up"})
    assert r.status_code == 201, r.text
    v2 = r.json()
    # (the line pivots about the bone entry: the skin entry found again on it moves too)
    assert "target" in v2["moved"] and v2["moved"]["target"]["distance_mm"] == 1.0
    assert all(x["trajectory_index"] == 1 and x["needle"] == "needle 2 (L1 right)" for x in v2["moved"].values())
    with Session(engine) as s:
        v1_json = s.get(m.SavedPlan, ids["plan"]).plan
        v2_json = s.get(m.SavedPlan, v2["plan_id"]).plan
    assert len(v2_json["trajectories"]) == 2
    for k in ("skin_entry_lps_mm", "bone_entry_lps_mm", "target_lps_mm"):
        assert json.dumps(v2_json["trajectories"][0][k]) == json.dumps(v1_json["trajectories"][0][k])
    assert v2_json["trajectories"][0] == v1_json["trajectories"][0]
    assert v2_json["trajectories"][1]["target_lps_mm"] == body["target_lps_mm"]
    new = Plan.model_validate(v2_json)
    assert new.verdict == compute_verdict(new.model_copy(update={"verdict": None}))
    assert new.verdict == ind.plan.verdict and v2["verdict"] == new.verdict.text_en

    # the versions page says which needle moved and by how much
    page = html.unescape(client_for("radiologist").get(f"/cases/{ids['case']}/plans/{v2['plan_id']}/versions").text)
    line = next(x for x in page.splitlines() if 'data-needle="1"' in x)
    assert "needle 2 (L1 right)</strong>: moved from v1 to v2: " in line and "target 1.00 mm (0.0, 0.0, 1.0)" in line
    assert "needle 1 (L1 left)</strong>: unchanged" in page
    assert '<span class="moved-needle">needle 2 (L1 right)</span>: ' in page  # the versions list's "what moved"
    assert "point (LPS mm) of needle 2 (L1 right)" in page
    # and the review page offers the needle selector
    review = client_for("radiologist").get(f"/cases/{ids['case']}/plans/{ids['plan']}/review").text
    assert 'id="adjust-needle"' in review and ">needle 2 (L1 right)</option>" in html.unescape(review)


def test_a_trajectory_the_plan_does_not_have_is_422(api_for, needles_case):
    ids, work, plan = needles_case
    api = api_for("radiologist")
    r = api.post(f"/api/cases/{ids['case']}/plans/{ids['plan']}/evaluate", json=_body(plan.trajectories[1], 2))
    assert r.status_code == 422 and r.json()["detail"] == (
        "trajectory_index: this plan has 2 trajectory(ies) to move (0 to 1).")
    r = api.post(f"/api/cases/{ids['case']}/plans/{ids['plan']}/evaluate",
                 json={**_body(plan.trajectories[1], 0), "trajectory_index": "2"})
    assert r.status_code == 422 and r.json()["detail"].startswith("trajectory_index:")


def test_target_zone_box_distance_by_hand():
    """TargetBox.excess_mm: 0 inside and on the border, the Euclidean overshoot outside (hand-computed)."""
    import numpy as np

    from osteoplan.planning.procedures import TargetBox

    z = TargetBox([10.0, 0.0, 0.0], np.eye(3), ((-1, 1), (0, 2), (-3, 3)), ("a", "b", "c"), "rule")
    pts = [[10, 1, 0], [11, 2, 3], [13, 1, 0], [13, -4, 0], [10, 1, -7]]
    assert np.allclose(z.excess_mm(pts), [0.0, 0.0, 2.0, np.hypot(2, 4), 4.0])


def _teal_cross_pixels(img, r, c):
    """How many of the 12 off-centre pixels of a 3-pixel diagonal cross at (r, c) are the other-needle colour."""
    from osteoplan.views.colors import OTHER_INSTRUMENT_COLOR

    teal = tuple(int(round(x * 255)) for x in OTHER_INSTRUMENT_COLOR)
    n = 0
    for d in (-3, -2, -1, 1, 2, 3):
        for rr, cc in ((r + d, c + d), (r + d, c - d)):
            n += tuple(int(x) for x in img[rr, cc]) == teal
    return n


def test_slices_draw_the_other_needle_where_the_slice_geometry_puts_it(api_for, client_for, needles_case):
    """Each slice of needle i (every view) draws the other needle's target as a teal cross at the pixel the plane's
    geometry gives (plane of needle i's saved points, :func:`osteoplan.views.slices.slice_plane`); the same slice
    rendered without the other needle has none there. After saving a moved needle 2, the new version's slices of
    needle 1 draw needle 2 at its saved (moved) target, and v1's at its old one."""
    import io

    import numpy as np
    from PIL import Image

    from osteoplan.views.geometry import pathspec_from_plan
    from osteoplan.views.slices import VIEWER_PLANES, make_scene, render_slice, slice_plane

    ids, work, plan = needles_case
    c = client_for("radiologist")
    base = f"/cases/{ids['case']}/plans/{{pid}}/slices/{{view}}.png?offset_mm=0&window=bone&needle={{needle}}"

    def slice_and_pixel(pid, plan_json, needle, view):
        r = c.get(base.format(pid=pid, view=view, needle=needle))
        assert r.status_code == 200, r.text
        img = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
        plane = slice_plane(pathspec_from_plan(plan_json, needle), view)
        other = pathspec_from_plan(plan_json, 1 - needle).target_lps_mm
        rc = np.floor(plane.to_pixel(other) + 0.5).astype(int)  # rounded half up, as drawn
        assert img.shape[:2] == (plane.n_rows, plane.n_cols)
        assert 3 <= rc[0] < plane.n_rows - 3 and 3 <= rc[1] < plane.n_cols - 3, (view, rc)  # inside the slice
        return img, plane, rc

    v1 = json.loads(plan.to_json())
    for needle in (0, 1):
        for view in VIEWER_PLANES:
            img, plane, (r, col) = slice_and_pixel(ids["plan"], v1, needle, view)
            assert _teal_cross_pixels(img, r, col) >= 10, (needle, view)
    # the same slice without the other needle: no teal cross there (the test can fail)
    from osteoplan.export import load_plan_dir

    _, vol, lm = load_plan_dir(work / "plan-1")
    bare = render_slice(make_scene(vol, pathspec_from_plan(v1, 0), lm), "axial", 0.0, "bone")
    img0 = np.asarray(Image.open(io.BytesIO(bare)).convert("RGB"))
    _, _, (r, col) = slice_and_pixel(ids["plan"], v1, 0, "axial")
    assert _teal_cross_pixels(img0, r, col) == 0
    assert c.get(base.format(pid=ids["plan"], view="axial", needle=-1)).status_code == 422
    assert c.get(base.format(pid=ids["plan"], view="axial", needle=2)).status_code == 422  # two needles: 0 and 1

    # needle 2 moved 1 mm to the head and saved: v2's slices of needle 1 show needle 2 at its new target
    body = _body(plan.trajectories[1], 1, target=(0.0, 0.0, 1.0))
    saved = api_for("radiologist").post(f"/api/cases/{ids['case']}/plans/{ids['plan']}/versions", json=body)
    assert saved.status_code == 201, saved.text
    v2_id = saved.json()["plan_id"]
    v2 = dict(v1)
    v2["trajectories"] = [v1["trajectories"][0], {**v1["trajectories"][1], "target_lps_mm": body["target_lps_mm"]}]
    img, plane, (r, col) = slice_and_pixel(v2_id, v2, 0, "coronal")  # coronal: 1 mm up is 2.5 pixels up
    assert _teal_cross_pixels(img, r, col) >= 10
    r_old, c_old = np.floor(0.5 + plane.to_pixel(np.asarray(v1["trajectories"][1]["target_lps_mm"]))).astype(int)
    assert (r_old, c_old) != (r, col) and _teal_cross_pixels(img, r_old, c_old) < 10


def test_evaluate_gives_the_rechecked_plans_warnings_for_the_page(api_for, needles_case, monkeypatch):
    """The re-check's answer carries the moved plan's warnings as the review page's Warnings card lists them
    (adjust.js replaces the card's list): a trajectory warning given only by a tip above z = 0 (a stand-in for the
    planner's C-arm / gantry warnings) appears when needle 2's target moves 1 mm up (z -0.3 -> 0.7) and is absent
    as saved; the plan's other warnings stay."""
    from osteoplan.planning import planner as P

    ids, work, plan = needles_case
    warn = "a warning of every needle whose tip lies above z = 0"
    real = P._trajectory_warnings
    monkeypatch.setattr(P, "_trajectory_warnings",
                        lambda t, protocol: real(t, protocol) + ([warn] if t.target_lps_mm[2] > 0 else []))
    api = api_for("radiologist")
    ev = f"/api/cases/{ids['case']}/plans/{ids['plan']}/evaluate"
    n2 = plan.trajectories[1]
    as_saved = api.post(ev, json=_body(n2, 1)).json()["warnings"]
    up = api.post(ev, json=_body(n2, 1, target=(0.0, 0.0, 1.0))).json()
    assert up["feasible"] and up["points"]["target"][2] == pytest.approx(0.7)
    assert warn not in as_saved and up["warnings"] == as_saved + [warn]
    assert as_saved == [str(w) for w in plan.warnings]
