"""In Debian's Chromium (Playwright) against a real uvicorn server: the review page of a bipedicular vertebroplasty
plan (two needles, synthetic L1 of known geometry) offers the needle to move; choosing needle 2 re-checks needle 2
(its points, drawn on the slices), and a 1 mm move of its target with the keyboard says that needle 2 moved.
Screenshot ``plan-adjust-needles.png`` in the test's screenshots folder (``docs/screenshots`` with
``OSTEOPLAN_SCREENSHOTS=1``)."""

from __future__ import annotations

import re

import pytest

from osteoplan.views.i18n import translate_text

from .adjust_fixtures import attach_as_job, write_bipedicular_plan_folder
from .conftest import free_port, make_case, start_server, stop_server
from .test_browser import _login, browser, shots  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser]


@pytest.fixture()
def needles_server(backend_name, fresh_database, tmp_path):
    """uvicorn on a new SQLite database with the demo users and one case whose L1 lesion has a two-needle plan."""
    if backend_name != "sqlite":
        pytest.skip("the browser walk runs on SQLite only (the adjust API on PostgreSQL: test_adjust_needles)")
    from osteoplan.web import backend

    url = fresh_database(backend_name)
    eng = backend.init_engine(url)
    backend.seed_demo(eng, n_cases=3, rounds=4)
    ids = make_case(eng, through="lesion", lesion_site="L1")
    _, _, plan = write_bipedicular_plan_folder(tmp_path / "job" / "plan-1")
    ids["plan"] = attach_as_job(eng, ids["lesion"], tmp_path / "job", plan, protocol="vertebroplasty-transpedicular")
    eng.dispose()
    port = free_port()
    proc = start_server(url, port)
    yield f"http://127.0.0.1:{port}", ids, plan
    stop_server(proc)


def _open_review(browser, needles_server, height: int):
    """Log in as a radiologist and open the plan's review page until its adjust panel is ready: (page, adjust
    locator, page errors, ids, plan)."""
    from playwright.sync_api import expect

    base, ids, plan = needles_server
    ctx = browser.new_context(viewport={"width": 1280, "height": height})
    page = ctx.new_page()
    page.set_default_timeout(30000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _login(page, base, "radiologist")
    page.goto(f"{base}/cases/{ids['case']}/plans/{ids['plan']}/review")
    adjust = page.locator("#adjust")
    expect(adjust).to_have_attribute("data-state", "ready", timeout=60000)
    return page, adjust, errors, ids, plan


def test_choose_needle_2_and_move_its_target(browser, needles_server, shots):  # noqa: F811
    from playwright.sync_api import expect

    page, adjust, errors, ids, plan = _open_review(browser, needles_server, 900)
    expect(adjust).to_have_attribute("data-needle", "0")
    axial = page.locator("figure[data-view=axial]")
    page.select_option("#adjust-needle", "1")
    expect(adjust).to_have_attribute("data-needle", "1")
    expect(adjust).to_have_attribute("data-state", "ready")
    expect(page.locator("#adjust-moved")).to_have_text("Needle 2 (L1 right): as saved (nothing moved).")
    # the slices draw needle 2 (its target; its entries are those the kernel finds again on its line, 0.01 mm)
    tip = ",".join(f"{x:.2f}" for x in plan.trajectories[1].target_lps_mm)
    expect(axial).to_have_attribute("data-loaded", re.compile(r"pts=(-?[0-9.]+,){6}" + re.escape(tip) + "&needle=1$"))
    page.click("button.adjust-point[data-point=target]")
    page.keyboard.press("s")  # 1 mm towards the head
    expect(page.locator("#adjust-moved")).to_contain_text("Needle 2 (L1 right): ")
    expect(page.locator("#adjust-moved")).to_contain_text("target moved 1.00 mm (S 1.00)")
    expect(adjust).to_have_attribute("data-state", "ready")
    page.locator("#adjust").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "plan-adjust-needles.png"), full_page=True)
    assert not errors, errors
    page.context.close()


#: In the page: the pixel (column, row) where the pane's geometry (the re-check's "panes", the formula of
#: adjust.pane_geometry) puts an LPS point, and how many of the 12 off-centre pixels of a 3-pixel diagonal cross there
#: are the other-needle teal (0, 140, 140) in the PNG the pane shows (drawn into a canvas).
_TEAL_CROSS_JS = """async ([view, g, p]) => {
  const img = document.querySelector(`figure.pane[data-view=${view}] img`);
  await img.decode();
  const d = [p[0] - g.centre[0], p[1] - g.centre[1], p[2] - g.centre[2]];
  const col = Math.round((d[0] * g.u[0] + d[1] * g.u[1] + d[2] * g.u[2]) / g.pixel_mm + (g.n_cols - 1) / 2);
  const row = Math.round((d[0] * g.v[0] + d[1] * g.v[1] + d[2] * g.v[2]) / g.pixel_mm + (g.n_rows - 1) / 2);
  const c = document.createElement("canvas");
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const px = ctx.getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (const k of [-3, -2, -1, 1, 2, 3]) {
    for (const [r, cc] of [[row + k, col + k], [row + k, col - k]]) {
      const i = 4 * (r * c.width + cc);
      if (Math.abs(px[i]) <= 2 && Math.abs(px[i + 1] - 140) <= 2 && Math.abs(px[i + 2] - 140) <= 2) { n += 1; }
    }
  }
  return {col: col, row: row, n: n, width: c.width, height: c.height, src: img.getAttribute("src")};
}"""

_EVALUATE_JS = """async (body) => {
  const box = document.getElementById("adjust");
  const r = await fetch(box.dataset.evaluate, {method: "POST", credentials: "same-origin", body: JSON.stringify(body),
    headers: {"Content-Type": "application/json", "X-CSRF-Token": box.dataset.csrf}});
  return await r.json();
}"""


def _saved(page, index):
    """The page's saved points of needle *index* (data-needles: this version's) as an evaluate body."""
    n = next(x for x in page.locator("#adjust").evaluate("b => JSON.parse(b.dataset.needles)") if x["index"] == index)
    return {"skin_entry_lps_mm": n["points"]["skin_entry"], "bone_entry_lps_mm": n["points"]["bone_entry"],
            "target_lps_mm": n["points"]["target"], "trajectory_index": index}, n


def _check_other_drawn(page, moved, other, views):
    """Every pane of *views* shows needle *other* (teal cross at its saved target, where the geometry of the moved
    needle's slices puts it) and its label there; returns the re-check's panes."""
    from playwright.sync_api import expect

    body, _ = _saved(page, moved)
    _, o = _saved(page, other)
    panes = page.evaluate(_EVALUATE_JS, body)["panes"]
    for view in views:
        pane = page.locator(f"figure.pane[data-view={view}]")
        expect(pane).to_have_attribute("data-loaded", re.compile(rf"&pts=.*&needle={moved}$"))
        got = page.evaluate(_TEAL_CROSS_JS, [view, panes[view], o["points"]["target"]])
        inside = 3 <= got["col"] < got["width"] - 3 and 3 <= got["row"] < got["height"] - 3
        assert got["n"] >= 10 and inside, (view, got)
        label = pane.locator(f".other-needle[data-needle='{other}']")
        expect(label).to_have_text(o["name"])
        at = label.evaluate("""(el) => { const img = el.parentNode.querySelector("img");
            return [parseFloat(el.style.left) - img.offsetLeft, parseFloat(el.style.top) - img.offsetTop,
                    img.clientWidth, getComputedStyle(el).pointerEvents]; }""")
        assert at[0] == pytest.approx(got["col"] / got["width"] * at[2], abs=1.5), (view, at, got)
        assert at[1] == pytest.approx(got["row"] / got["height"] * at[2], abs=1.5), (view, at, got)
        assert at[3] == "none"  # a label, never a handle
    return panes


def test_other_needles_drawn_where_the_geometry_puts_them_never_dragged(browser, needles_server, shots):  # noqa: F811
    from playwright.sync_api import expect

    page, adjust, errors, ids, plan = _open_review(browser, needles_server, 1000)
    views = page.locator("figure.pane").evaluate_all("els => els.map(e => e.dataset.view)")
    assert len(views) == 5
    # needle 1 moved: needle 2 drawn and labelled on all five panes
    panes = _check_other_drawn(page, 0, 1, views)
    # a drag that starts on needle 2's target does not move it (nor needle 1): the page says why
    _, n2 = _saved(page, 1)
    img = page.locator("figure.pane[data-view=axial] img")
    img.scroll_into_view_if_needed()
    got = page.evaluate(_TEAL_CROSS_JS, ["axial", panes["axial"], n2["points"]["target"]])
    box = img.bounding_box()
    x = box["x"] + (got["col"] + 0.5) * box["width"] / got["width"]
    y = box["y"] + (got["row"] + 0.5) * box["height"] / got["height"]
    loaded = page.locator("figure.pane[data-view=axial]").get_attribute("data-loaded")
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 12, y + 12, steps=3)
    page.mouse.up()
    expect(page.locator("#adjust-status")).to_contain_text("Needle 2 (L1 right) is drawn as saved, for reference: it "
                                                           "does not move here")
    expect(page.locator("#adjust-moved")).to_have_text("Needle 1 (L1 left): as saved (nothing moved).")
    assert page.locator("figure.pane[data-view=axial]").get_attribute("data-loaded") == loaded
    # needle 2 chosen: needle 1 drawn instead (axial, coronal)
    page.select_option("#adjust-needle", "1")
    expect(adjust).to_have_attribute("data-needle", "1")
    expect(adjust).to_have_attribute("data-state", "ready")
    _check_other_drawn(page, 1, 0, ["axial", "coronal"])
    expect(page.locator("figure.pane .other-needle[data-needle='1']")).to_have_count(0)
    # needle 2's target 1 mm up, saved: the new version's page shows needle 2 at its saved (moved) target
    page.click("button.adjust-point[data-point=target]")
    page.evaluate("""() => { const li = document.createElement("li"); li.textContent = "stale warning";
                             document.querySelector("#review-warnings ul").appendChild(li); }""")
    page.keyboard.press("s")
    expect(page.locator("#adjust-moved")).to_contain_text("target moved 1.00 mm (S 1.00)")
    expect(adjust).to_have_attribute("data-state", "ready")
    # the Warnings card lists the re-checked plan's warnings (the page's own list replaced)
    assert page.locator("#review-warnings li").all_inner_texts() == [translate_text(str(w), "en") for w in plan.warnings]
    page.locator("#adjust").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "plan-adjust-other-needles.png"), full_page=True)
    page.click("#adjust-save")
    page.wait_for_url(re.compile(rf".*/plans/(?!{ids['plan']}/)\d+/review$"))
    expect(adjust).to_have_attribute("data-state", "ready", timeout=60000)
    _, n2_v2 = _saved(page, 1)
    assert n2_v2["points"]["target"] == pytest.approx(list(plan.trajectories[1].target_lps_mm[:2])
                                                      + [plan.trajectories[1].target_lps_mm[2] + 1.0], abs=0.01)
    _check_other_drawn(page, 0, 1, ["coronal", "sagittal"])
    page.locator("#viewer").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "plan-adjust-other-needles-v2.png"), full_page=True)
    assert not errors, errors
    page.context.close()
