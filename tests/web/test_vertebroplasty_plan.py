"""A vertebroplasty plan.json attached to a case: the case page shows its verdict, procedure, level(s), every needle
(pedicle grade, tip) and its warnings, the breached posterior wall first."""

from __future__ import annotations

import html as _html
import sys
from pathlib import Path

import numpy as np

from osteoplan.imaging.volume import Volume, axis_aligned_affine

from .conftest import csrf_of, make_case

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))
from export_planfactory import make_vertebroplasty_plan  # noqa: E402


def test_vertebroplasty_plan_on_the_case_page(engine, client_for):
    vol = Volume(np.zeros((20, 30, 30), np.float32), axis_aligned_affine((2.0, 1.0, 1.0), (-15.0, -15.0, -20.0)))
    needles = [{"level": "L1", "side": "left", "skin": (60.0, 70.0, -20.0), "bone": (14.0, 10.0, 0.0),
                "target": (-3.0, -30.0, 2.0), "grade": "A", "margin": 0.9, "wall": "inferior"},
               {"level": "L2", "side": "right", "skin": (-60.0, 70.0, -50.0), "bone": (-14.0, 10.0, -30.0),
                "target": (3.0, -30.0, -28.0), "grade": "C", "margin": -2.6, "wall": "medial"}]
    plan = make_vertebroplasty_plan(vol, needles, breached_wall_level="L2")
    ids = make_case(engine, through="lesion")
    c = client_for("radiologist")
    r = c.post(f"/cases/{ids['case']}/lesions/{ids['lesion']}/plans/new", follow_redirects=False,
               data={"csrf_token": csrf_of(c), "label": "T-L vertebroplasty"},
               files={"plan_file": ("plan.json", plan.to_json().encode(), "application/json")})
    assert r.status_code == 303, r.text[:500]
    page = _html.unescape(c.get(f"/cases/{ids['case']}").text)
    from osteoplan.planning.verdict import verdict_of

    assert f'<p class="verdict">{verdict_of(plan).text_en}</p>' in page
    assert "vertebroplasty, level L1-L2" in page
    assert "Needle 1 (L1 left)" in page and "pedicle grade A (0.9 mm, inferior wall)" in page
    assert "Needle 2 (L2 right)" in page and "pedicle grade C (-2.6 mm, medial wall)" in page
    assert "tip at 70 % of the body depth, +2.5 mm across the midline" in page
    assert "L1 4.0–6.0 mL; L2 4.0–6.0 mL" in page
    assert "L2 right: spinal canal" in page and "spinal_canal" not in page  # the report's name, not the key
    warn = page[page.index('class="plan-warnings"'):]
    assert warn.index("BREACHED WALL, CEMENT LEAK RISK: L2 posterior wall") < warn.index("Coarse CT")
