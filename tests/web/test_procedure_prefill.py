"""The procedure log form opened "from this plan" is pre-filled with the plan's planned values (type, levels,
trocar, cement; side and cement range in the notes); the user edits before saving, and what is saved is what the
form held."""

from __future__ import annotations

import html as _html
import json
import re

from .conftest import csrf_of, make_case


def _value(page: str, name: str) -> str | None:
    m = re.search(rf'name="{re.escape(name)}"[^>]*value="([^"]*)"', page) or \
        re.search(rf'value="([^"]*)"[^>]*name="{re.escape(name)}"', page)
    return _html.unescape(m.group(1)) if m else None


def _vertebroplasty_plan() -> dict:
    """The two-level bipedicular vertebroplasty plan of tests/export/export_planfactory (L1 left, L2 right)."""
    import sys
    from pathlib import Path

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))
    from export_planfactory import make_vertebroplasty_plan

    from osteoplan.imaging.volume import Volume, axis_aligned_affine

    vol = Volume(np.zeros((20, 30, 30), np.float32), axis_aligned_affine((2.0, 1.0, 1.0), (-15.0, -15.0, -20.0)))
    needles = [{"level": "L1", "side": "left", "skin": (60.0, 70.0, -20.0), "bone": (14.0, 10.0, 0.0),
                "target": (-3.0, -30.0, 2.0), "grade": "A", "margin": 0.9, "wall": "inferior"},
               {"level": "L2", "side": "right", "skin": (-60.0, 70.0, -50.0), "bone": (-14.0, 10.0, -30.0),
                "target": (3.0, -30.0, -28.0), "grade": "C", "margin": -2.6, "wall": "medial"}]
    return json.loads(make_vertebroplasty_plan(vol, needles).to_json())


def test_log_form_prefilled_from_a_vertebroplasty_plan_then_edited(engine, client_for):
    from sqlalchemy.orm import Session

    from osteoplan.workflow import models as m
    from osteoplan.workflow import service as sv

    ids = make_case(engine, through="scheduled")
    with Session(engine) as s, s.begin():
        plan = sv.attach_plan(s, None, {"lesion_id": ids["lesion"], "plan": _vertebroplasty_plan(),
                                        "label": "L1-L2 vertebroplasty"})
        plan_id = plan.id
        proc_id = s.query(m.Procedure).filter_by(patient_id=ids["case"]).one().id
    cl = client_for("radiologist")
    case = cl.get(f"/cases/{ids['case']}").text
    link = f"/cases/{ids['case']}/procedures/{proc_id}/log?plan_id={plan_id}"
    assert f'href="{link}"' in case.replace("&amp;", "&")
    page = cl.get(link).text
    assert f"pre-filled from plan #{plan_id} (planned values: check and edit before saving)" in page
    assert _value(page, "levels_treated") == "2"
    assert _value(page, "trocar") == "11G bone trocar"
    assert _value(page, "cement_volume_ml") == "12.0"
    assert re.search(r'<option value="vertebroplasty"[^>]*selected', page)
    notes = _html.unescape(re.search(r'<textarea[^>]*name="notes"[^>]*>([^<]*)<', page).group(1))
    assert notes == f"Planned (plan #{plan_id}): side bilateral; 11G bone trocar; PMMA L1 4-6 mL; L2 4-6 mL."
    # without the plan: the plain form
    plain = cl.get(f"/cases/{ids['case']}/procedures/{proc_id}/log").text
    assert _value(plain, "trocar") in (None, "") and "pre-filled from plan" not in plain
    # the user edits (the real volume injected) and saves
    r = cl.post(f"/cases/{ids['case']}/procedures/{proc_id}/log", follow_redirects=False, data={
        "csrf_token": csrf_of(cl), "procedure_date": "2026-12-01", "levels_treated": "2", "trocar": "11G bone trocar",
        "cement_volume_ml": "9.5", "procedure_type": "vertebroplasty", "notes": notes,
        "version": re.search(r'name="version" value="(\d+)"', page).group(1)})
    assert r.status_code == 303, r.text[:800]
    with Session(engine) as s:
        proc = s.get(m.Procedure, proc_id)
        assert (proc.levels_treated, proc.trocar, proc.cement_volume_ml, proc.procedure_type) == \
            (2, "11G bone trocar", 9.5, "vertebroplasty")


def test_plan_of_another_case_is_not_found(engine, client_for):
    ids = make_case(engine, through="scheduled")
    other = make_case(engine, through="lesion", with_plan=True)
    from sqlalchemy.orm import Session

    from osteoplan.workflow import models as m

    with Session(engine) as s:
        proc_id = s.query(m.Procedure).filter_by(patient_id=ids["case"]).one().id
    cl = client_for("radiologist")
    r = cl.get(f"/cases/{ids['case']}/procedures/{proc_id}/log?plan_id={other['plan']}")
    assert r.status_code == 404
