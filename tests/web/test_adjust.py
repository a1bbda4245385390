"""The review page's adjust API on a real plan folder (phantom): evaluate (the plan's own trajectory gives the
plan's verdict; a moved target changes the nearest clearance; 422 in one line for bad input), save a version
(who, when, what moved, audited), compare versions, approve (radiologists), and the lock (409)."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest

from .adjust_fixtures import attach_as_job, write_phantom_plan_folder
from .conftest import csrf_of, make_case


@pytest.fixture(scope="module")
def phantom_folder(tmp_path_factory):
    work = tmp_path_factory.mktemp("adjust-job")
    ph, plan = write_phantom_plan_folder(work / "plan-1")
    return work, ph, plan


@pytest.fixture()
def planned_case(engine, phantom_folder):
    work, ph, plan = phantom_folder
    ids = make_case(engine, through="lesion")
    ids["plan"] = attach_as_job(engine, ids["lesion"], work, plan)
    return ids, ph, plan


def _pts(t, **moved):
    out = {"skin_entry_lps_mm": list(t.skin_entry_lps_mm), "bone_entry_lps_mm": list(t.bone_entry_lps_mm),
           "target_lps_mm": list(t.target_lps_mm)}
    for k, v in moved.items():
        out[f"{k}_lps_mm"] = [round(a + b, 2) for a, b in zip(out[f"{k}_lps_mm"], v)]
    return out


def test_evaluate_the_plan_and_a_moved_target(api_for, engine, planned_case):
    ids, ph, plan = planned_case
    c = api_for("radiologist")
    url = f"/api/cases/{ids['case']}/plans/{ids['plan']}/evaluate"
    r = c.post(url, json=_pts(plan.best))
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["verdict"]["text"] == plan.verdict.text_en and j["moved"] == {} and j["feasible"]
    assert j["screw"]["length_mm"] == plan.best.screw.length_mm
    by = {x["structure"]: x for x in j["clearances"]}
    for chk in plan.best.clearances:
        assert by[chk.structure]["status"] == chk.status
        if chk.clearance_mm is not None:
            assert by[chk.structure]["clearance_mm"] == pytest.approx(chk.clearance_mm, abs=0.03)
    assert by["spinal_canal"]["how"] == "provided mask"
    # the panes' geometry: the target projects where the slice draws it (axial: through the target at offset 0)
    g = j["panes"]["axial"]
    assert g["n_rows"] == g["n_cols"] == 275 and g["pixel_mm"] == 0.4
    assert np.allclose(g["u"], [1, 0, 0]) and np.allclose(g["v"], [0, 1, 0])  # image right = patient left, down = P
    assert g["letters"] == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    # the target moved 3 mm to the patient's right: the nearest structure's clearance changes, moved is reported
    near = j["nearest"]
    r2 = c.post(url, json=_pts(plan.best, target=(-3.0, 0.0, 0.0)))
    j2 = r2.json()
    assert j2["moved"]["target"] == {"delta_lps_mm": [-3.0, 0.0, 0.0], "distance_mm": 3.0}
    b2 = {x["structure"]: x for x in j2["clearances"]}
    assert abs(b2[near]["clearance_mm"] - by[near]["clearance_mm"]) > 0.3
    # the slice route draws the moved path (a different picture)
    p0 = ",".join(f"{x:.2f}" for k in ("skin_entry", "bone_entry", "target") for x in j["points"][k])
    p2 = ",".join(f"{x:.2f}" for k in ("skin_entry", "bone_entry", "target") for x in j2["points"][k])
    base = f"/cases/{ids['case']}/plans/{ids['plan']}/slices/axial.png?offset_mm=0&window=bone"
    a, b = c.get(base + "&pts=" + p0), c.get(base + "&pts=" + p2)
    assert a.status_code == b.status_code == 200 and a.content != b.content
    assert c.get(base + "&pts=1,2,3").status_code == 422


@pytest.mark.parametrize("body, expect", [
    (b"{not json", "not JSON"),
    (b'{"skin_entry_lps_mm": [1, 2], "bone_entry_lps_mm": [0, 0, 0], "target_lps_mm": [0, 0, 1]}', "skin_entry_lps_mm"),
    (b'{"skin_entry_lps_mm": [1, 2, 3], "bone_entry_lps_mm": [0, 0, 0], "target_lps_mm": [0, 0, 1], "x": 1}',
     "Unknown field"),
    (b'{"skin_entry_lps_mm": [1, 2, 3], "bone_entry_lps_mm": [0, 0, 0], "target_lps_mm": [0, 0, 1], '
     b'"x_SECRET_FIELD_7731": 1}', "Unknown field"),
    (b'{"skin_entry_lps_mm": [1e308, 2, 3], "bone_entry_lps_mm": [0, 0, 0], "target_lps_mm": [0, 0, 1]}',
     "skin_entry_lps_mm: give three finite numbers within \u00b110000 mm"),
    (b'{"skin_entry_lps_mm": [1, 2, 3], "bone_entry_lps_mm": [0, 0, 0], "target_lps_mm": [0, -1e999, 1]}',
     "target_lps_mm: give three finite numbers"),
    (b'{"skin_entry_lps_mm": [1, 2, 3], "bone_entry_lps_mm": [0, ' + b"7" * 400 + b', 0], "target_lps_mm": [0, 0, 1]}',
     "bone_entry_lps_mm: give three finite numbers"),
    (b'{"skin_entry_lps_mm": [NaN, 2, 3], "bone_entry_lps_mm": [0, 0, 0], "target_lps_mm": [0, 0, 1]}',
     "skin_entry_lps_mm: give three finite numbers"),
    (b'{"skin_entry_lps_mm": [12345.678, 2, 3], "bone_entry_lps_mm": [0, 0, 0], "target_lps_mm": [0, 0, 1]}',
     "skin_entry_lps_mm: give three finite numbers"),
])
def test_evaluate_malformed_body_is_422_in_one_line(api_for, engine, planned_case, body, expect):
    """422 with one line naming the field, never repeating what was sent (numbers, field names)."""
    ids, ph, plan = planned_case
    r = api_for("radiologist").post(f"/api/cases/{ids['case']}/plans/{ids['plan']}/evaluate", content=body,
                                    headers={"Content-Type": "application/json"})
    detail = r.json()["detail"]
    assert r.status_code == 422 and expect in detail and "\n" not in detail and len(detail) < 200
    for echoed in ("308", "e+", "777", "12345", "nan", "inf", "SECRET"):
        assert echoed not in detail.lower()


def test_evaluate_point_outside_the_image_is_422(api_for, engine, planned_case):
    ids, ph, plan = planned_case
    r = api_for("radiologist").post(f"/api/cases/{ids['case']}/plans/{ids['plan']}/evaluate",
                                    json=_pts(plan.best, target=(0.0, 0.0, 500.0)))
    detail = r.json()["detail"]
    assert r.status_code == 422 and detail.startswith("target moved outside the image: move it back inside the CT")
    # it gives the image's extent (from its affine), not the point sent (z 500 mm) back
    vol = ph.volume
    z_mm = sorted(float(vol.index_to_world(np.array([[k, 0.0, 0.0]]))[0, 2]) for k in (-0.5, vol.shape[0] - 0.5))
    assert f"z {z_mm[0]:.0f} to {z_mm[1]:.0f} mm LPS" in detail and "500" not in detail and "\n" not in detail


def test_save_compare_approve_lock(api_for, client_for, engine, planned_case):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from osteoplan.workflow import models as m

    ids, ph, plan = planned_case
    api = api_for("radiologist")
    r = api.post(f"/api/cases/{ids['case']}/plans/{ids['plan']}/versions", json=_pts(plan.best))
    assert r.status_code == 422 and "nothing moved" in r.json()["detail"]
    # a move that breaks a rule is not saved; the first of the six 1 mm moves of the target that stays feasible is
    ev = f"/api/cases/{ids['case']}/plans/{ids['plan']}/evaluate"
    moves = [tuple(float(x) + 0.0 for x in v) for v in np.vstack([np.eye(3), -np.eye(3)])]  # (no -0.0)
    ok = [mv for mv in moves if api.post(ev, json=_pts(plan.best, target=mv)).json()["feasible"]]
    bad = [mv for mv in moves if mv not in ok]
    assert ok
    if bad:
        r = api.post(f"/api/cases/{ids['case']}/plans/{ids['plan']}/versions", json=_pts(plan.best, target=bad[0]))
        assert r.status_code == 422 and "breaks the protocol's rules" in r.json()["detail"]
    mv = ok[0]
    body = {**_pts(plan.best, target=mv), "note": "tip moved 1 mm"}
    r = api.post(f"/api/cases/{ids['case']}/plans/{ids['plan']}/versions", json=body)
    assert r.status_code == 201, r.text
    v2 = r.json()
    assert v2["version"] == 2 and v2["moved"]["target"]["delta_lps_mm"] == list(mv)
    with Session(engine) as s:
        row = s.scalar(select(m.PlanVersion).where(m.PlanVersion.saved_plan_id == v2["plan_id"]))
        assert (row.number, row.root_plan_id, row.parent_plan_id, row.created_by) == (2, ids["plan"], ids["plan"],
                                                                                      "radiologist")
        aud = s.scalars(select(m.AuditLog).where(m.AuditLog.entity == "plan", m.AuditLog.entity_id == v2["plan_id"],
                                                 m.AuditLog.action == "create")).all()
        assert len(aud) == 1 and aud[0].detail["moved"]["target"]["distance_mm"] == 1.0
        saved = s.get(m.SavedPlan, v2["plan_id"])
        assert saved.plan["trajectories"][0]["target_lps_mm"] == pytest.approx(
            [a + b for a, b in zip(plan.best.target_lps_mm, mv)], abs=0.006)
    # the versions page: both versions, side by side, the target's difference
    page = client_for("coordinator").get(f"/cases/{ids['case']}/plans/{v2['plan_id']}/versions")
    assert page.status_code == 200
    assert "tip moved 1 mm" in page.text
    assert re.search(r"target</th>.*?1\.00 mm \(" + re.escape(", ".join(str(x) for x in mv)) + r"\)", page.text, re.S)
    # approve: radiologists only; then the plan is locked (409 with the reason), evaluate still works
    tb = client_for("tumour_board")
    assert tb.post(f"/cases/{ids['case']}/plans/{v2['plan_id']}/approve",
                   data={"csrf_token": csrf_of(tb)}, follow_redirects=False).status_code == 403
    rad = client_for("radiologist")
    r = rad.post(f"/cases/{ids['case']}/plans/{v2['plan_id']}/approve", data={"csrf_token": csrf_of(rad)},
                 follow_redirects=False)
    assert r.status_code == 303
    r = rad.post(f"/cases/{ids['case']}/plans/{v2['plan_id']}/approve", data={"csrf_token": csrf_of(rad)},
                 follow_redirects=False)
    assert r.status_code == 409 and "version 2 of this plan was approved by radiologist" in r.text.lower()
    r = api.post(f"/api/cases/{ids['case']}/plans/{v2['plan_id']}/versions", json=_pts(plan.best, target=(1.0, 0, 0)))
    assert r.status_code == 409 and "locked" in r.json()["detail"]
    r = api.post(f"/api/cases/{ids['case']}/plans/{ids['plan']}/versions", json=_pts(plan.best, target=(1.0, 0, 0)))
    assert r.status_code == 409  # any version of the plan: the plan is locked
    assert api.post(f"/api/cases/{ids['case']}/plans/{v2['plan_id']}/evaluate",
                    json=_pts(plan.best)).status_code == 200
    from osteoplan.errors import OsteoplanError
    from osteoplan.workflow import service as sv

    with Session(engine) as s:
        with pytest.raises(OsteoplanError, match="locked"):
            sv.soft_delete(s, None, "plan", v2["plan_id"], "duplicate")
        aud = s.scalars(select(m.AuditLog).where(m.AuditLog.entity_id == v2["plan_id"],
                                                 m.AuditLog.action == "update")).all()
        assert [a.detail.get("approved") for a in aud] == [True]
    page = client_for("radiologist").get(f"/cases/{ids['case']}/plans/{v2['plan_id']}/review")
    assert page.status_code == 200 and 'id="adjust-locked"' in page.text and 'id="adjust-save"' not in page.text


def _save_v2(api, ids, plan):
    """Save version 2 of the plan (the first 1 mm move of the target that stays feasible); its JSON answer."""
    ev = f"/api/cases/{ids['case']}/plans/{ids['plan']}/evaluate"
    moves = [tuple(float(x) + 0.0 for x in v) for v in np.vstack([np.eye(3), -np.eye(3)])]
    mv = next(mv for mv in moves if api.post(ev, json=_pts(plan.best, target=mv)).json()["feasible"])
    r = api.post(f"/api/cases/{ids['case']}/plans/{ids['plan']}/versions", json=_pts(plan.best, target=mv))
    assert r.status_code == 201, r.text
    return r.json()


def _approvals(engine, plan_id):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from osteoplan.workflow import models as m

    with Session(engine) as s:
        return [a.detail for a in s.scalars(select(m.AuditLog).where(
            m.AuditLog.entity == "plan", m.AuditLog.entity_id == plan_id, m.AuditLog.action == "update")).all()
            if a.detail.get("approved")]


def test_the_latest_version_is_shown_and_an_older_one_is_approved_only_on_purpose(api_for, client_for, engine,
                                                                                  planned_case):
    ids, ph, plan = planned_case
    v2 = _save_v2(api_for("radiologist"), ids, plan)
    case, v1 = ids["case"], ids["plan"]
    assert v2["review_url"] == f"/cases/{case}/plans/{v2['plan_id']}/review"  # where adjust.js goes after saving
    rad = client_for("radiologist")
    # the case page: "Review the images" opens version 2 (from either card); the versions and their states
    page = rad.get(f"/cases/{case}").text
    hrefs = re.findall(r'class="button plan-review" href="([^"]+)"', page)
    assert hrefs and set(hrefs) == {f"/cases/{case}/plans/{v2['plan_id']}/review"}
    assert "(latest: version 2)" in page
    states = re.findall(r'plans/(\d+)/review" data-state="(\w+)">v(\d)', page)
    assert set(states) == {(str(v1), "superseded", "1"), (str(v2["plan_id"]), "draft", "2")}
    assert "This is version 1; version 2 is newer." in page
    # version 1's review page: the banner names version 2 and links it; approving needs the explicit box
    page = rad.get(f"/cases/{case}/plans/{v1}/review").text
    banner = re.search(r'id="review-newer".*?</div>', page, re.S).group(0)
    assert "Version 2 (newer, saved by radiologist at " in banner
    assert f'href="/cases/{case}/plans/{v2["plan_id"]}/review"' in banner
    assert "approve version 1 although version 2 is newer" in page and 'name="confirm_older"' in page
    assert 'id="review-newer"' not in rad.get(v2["review_url"]).text  # the latest has no banner
    # the versions page (opened from either version) compares v1 with the latest by default
    for pid in (v1, v2["plan_id"]):
        assert "v1 and v2 side by side" in rad.get(f"/cases/{case}/plans/{pid}/versions").text
    # approving version 1 without the box: 409 in one line, nothing approved
    url = f"/cases/{case}/plans/{v1}/approve"
    r = rad.post(url, data={"csrf_token": csrf_of(rad)}, follow_redirects=False)
    assert r.status_code == 409 and ("Version 2 of this plan is newer than version 1: open version 2, or tick "
                                     "'approve version 1 although version 2 is newer'") in html.unescape(r.text)
    assert _approvals(engine, v1) == [] and _approvals(engine, v2["plan_id"]) == []
    # with it: approved, and the audit entry says a newer version existed
    r = rad.post(url, data={"csrf_token": csrf_of(rad), "confirm_older": "1"}, follow_redirects=False)
    assert r.status_code == 303
    assert [(d["version"], d.get("newer_version")) for d in _approvals(engine, v1)] == [(1, 2)]
    page = rad.get(f"/cases/{case}").text
    states = dict(re.findall(r'id="plan-(\d+)">.*?class="plan-version-state" data-state="(\w+)"', page, re.S))
    assert states == {str(v1): "approved", str(v2["plan_id"]): "draft"}
    v2_card = re.search(rf'id="plan-{v2["plan_id"]}".*?</p>', page, re.S).group(0)
    assert re.search(r"not approved \(version 1 was approved by radiologist; the plan is locked\)", v2_card)
    page = rad.get(f"/cases/{case}").text
    assert set(re.findall(r'plans/(\d+)/review" data-state="(\w+)">', page)) == {(str(v1), "approved"),
                                                                                  (str(v2["plan_id"]), "draft")}


def test_a_not_cleared_plan_is_approved_only_with_the_confirmation(client_for, engine, phantom_folder):
    from osteoplan.planning.model import Plan
    from osteoplan.planning.verdict import compute_verdict, structure_name

    work, ph, plan = phantom_folder
    # the same plan with one measured structure of the best path made "not assessed": its verdict is NOT CLEARED
    d = json.loads(plan.to_json())
    chk = next(c for c in d["trajectories"][0]["clearances"] if c["status"] in ("ok", "pass", "clear"))
    for t in d["trajectories"]:
        for c in t["clearances"]:
            if c["structure"] == chk["structure"]:
                c.update(status="not_assessed", clearance_mm=None, assessed_by=None)
    d["verdict"] = None
    p2 = Plan.model_validate(d)
    p2 = p2.model_copy(update={"verdict": compute_verdict(p2)})
    assert p2.verdict.code == "not_cleared"
    ids = make_case(engine, through="lesion")
    pid = attach_as_job(engine, ids["lesion"], work, p2)
    rad = client_for("radiologist")
    page = rad.get(f"/cases/{ids['case']}/plans/{pid}/review").text
    box = re.search(r'id="adjust-not-cleared".*?</div>', page, re.S).group(0)
    name = structure_name(chk["structure"])
    assert "NOT CLEARED" in box and f"{name} (not assessed)" in box and 'name="confirm_not_cleared"' in box
    url = f"/cases/{ids['case']}/plans/{pid}/approve"
    r = rad.post(url, data={"csrf_token": csrf_of(rad)}, follow_redirects=False)
    assert r.status_code == 409 and f"This version is NOT CLEARED: tick the box confirming that what it leaves open " \
                                    f"({name} (not assessed)) was checked on other images" in html.unescape(r.text)
    assert _approvals(engine, pid) == []
    card = re.search(rf'id="plan-{pid}".*?</p>', rad.get(f"/cases/{ids['case']}").text, re.S).group(0)
    assert re.search(r'data-state="draft">Version 1:\s*<span class="badge warn">draft</span>\s*not approved yet', card)
    r = rad.post(url, data={"csrf_token": csrf_of(rad), "confirm_not_cleared": "1"}, follow_redirects=False)
    assert r.status_code == 303
    assert [d["not_cleared_confirmed"] for d in _approvals(engine, pid)] == [[f"{name} (not assessed)"]]
    # the case page's card of this (only) version says it is approved, by whom and when
    card = re.search(rf'id="plan-{pid}".*?</p>', rad.get(f"/cases/{ids['case']}").text, re.S).group(0)
    assert re.search(r'data-state="approved">Version 1:\s*<span class="badge ok">approved</span> by radiologist on '
                     r'\d{4}-\d\d-\d\d \d\d:\d\d UTC; the plan is locked', card), card
    research = client_for("research").get(f"/cases/{ids['case']}").text  # pseudonymised: no calendar date
    card = re.search(rf'id="plan-{pid}".*?</p>', research, re.S).group(0)
    assert "approved</span> by radiologist; the plan is locked" in card


def test_structures_have_the_reports_names_on_every_page(api_for, client_for, engine, planned_case):
    """The case page, the evaluate answer, the review page's legend and the versions page name each structure
    with the PDF report's words (export.report.clearance_rows), never with its key."""
    from osteoplan.export.report import clearance_rows

    ids, ph, plan = planned_case
    report = {r["structure"]: r["label"] for r in clearance_rows(plan)}
    keys = [c.structure for c in plan.best.clearances]
    assert "spinal_canal" in keys and report["spinal_canal"] == "spinal canal"
    assert all("_" not in report[k] for k in keys)  # every key of this plan has a report name
    api, rad = api_for("radiologist"), client_for("radiologist")
    j = api.post(f"/api/cases/{ids['case']}/plans/{ids['plan']}/evaluate", json=_pts(plan.best)).json()
    assert {c["structure"]: c["name"] for c in j["clearances"]} == {k: report[k] for k in keys}
    card = re.search(rf'id="plan-{ids["plan"]}".*?</table>', rad.get(f"/cases/{ids['case']}").text, re.S).group(0)
    cells = [html.unescape(x) for x in re.findall(r"<tr><td>([^<]*)</td>", card)]
    assert cells == [report[k] for k in keys]
    review = rad.get(f"/cases/{ids['case']}/plans/{ids['plan']}/review").text
    legend = re.search(r'<p class="legend">(.*?)</p>', review, re.S).group(1)
    names = [html.unescape(x).strip(" ·\n") for x in re.findall(r"</span>([^<]*)", legend)]
    assert names and all("_" not in n for n in names) and "spinal canal" in names
    v2 = _save_v2(api, ids, plan)
    page = rad.get(f"/cases/{ids['case']}/plans/{v2['plan_id']}/versions").text
    rows = {k: html.unescape(n) for k, n in re.findall(r'<tr data-structure="([^"]+)"><td>([^<]*)</td>', page)}
    assert rows == {k: report[k] for k in keys}


def test_structure_label():
    """The web's structure names: the report's words (English, French), a readable fallback, a needle prefix."""
    from osteoplan.views.i18n import t
    from osteoplan.web.views import structure_label

    assert structure_label("other_bone") == t("other_bone") == "other bone on the way"
    assert structure_label("vertebral_artery_canal_left", "fr") == \
        "canal de l'artère vertébrale gauche (foramen transversaire)"
    assert structure_label("some_new_structure") == "some new structure"
    assert structure_label("L2 left: spinal_canal") == "L2 left: spinal canal"


def test_constraint_sentences_name_structures():
    """The planner's broken-constraint sentences shown on the review page carry names, not keys."""
    from osteoplan.web.routers.adjust import named_text

    assert named_text("clearance to vertebral_artery_canal_left >= its margin: 0.40 mm short") == \
        "clearance to left vertebral artery canal (foramen transversarium) >= its margin: 0.40 mm short"
    assert named_text("the instrument does not enter esophagus (displaced by hydrodissection, never crossed)") == \
        "the instrument does not enter oesophagus (displaced by hydrodissection, never crossed)"
    assert named_text("clearance to other_bone >= its margin") == "clearance to other bone on the way >= its margin"
    assert named_text("tip to cortex >= 2 mm") == "tip to cortex >= 2 mm"
