"""Control-CT checks whose CT comes from the PACS (real Orthanc, ``./scripts/with-orthanc``): the series is
retrieved into the check's folder and its patient compared with the case's; another patient's series is refused
with one line naming the attributes that differ (never their values), leaving no job behind. The check itself
(the worker running ``osteoplan verify``) is the same as for an upload (test_verify_jobs.py)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.orm import Session

from .conftest import csrf_of, make_case
from .test_pacs_jobs import OTHER_PATIENT, RIGHT_PATIENT, _store, jobs_root, pacs_on_app, small_ct  # noqa: F401
from .verify_fixtures import register_plan_job


def _post(cl, ids, plan_id, **fields):
    data = {"csrf_token": csrf_of(cl), "saved_plan_id": str(plan_id), "stage": "pin", "source": "pacs", **fields}
    return cl.post(f"/cases/{ids['case']}/procedures/{ids['procedure']}/verify/new", data=data,
                   follow_redirects=False)


@pytest.mark.pacs
def test_check_from_a_pacs_series_and_another_patients_series_refused(engine, client_for, pacs_on_app, jobs_root,
                                                                       small_ct, tmp_path):
    from osteoplan.workflow import jobs as q

    ids = make_case(engine, through="done")
    plan_dir = tmp_path / "job-plan" / "plan-1"
    plan_dir.mkdir(parents=True)
    (plan_dir / "plan.json").write_text("{}")  # the form only needs the plan's folder to exist
    plan_id = register_plan_job(engine, ids, {"plan": {"best": None}, "job_dir": plan_dir.parent})
    _, right = _store(pacs_on_app, small_ct, RIGHT_PATIENT)
    _, other = _store(pacs_on_app, small_ct, OTHER_PATIENT)
    cl = client_for("radiologist")
    page = cl.get(f"/cases/{ids['case']}/procedures/{ids['procedure']}/verify/new").text
    assert 'value="pacs"' in page and 'name="pacs_series_uid_typed"' in page
    r = _post(cl, ids, plan_id, pacs_series_uid_typed=other, confirm_identity="1")
    assert r.status_code == 422
    text = r.text
    assert "another patient" in text and "PatientID" in text
    assert "OTHER-4242" not in text and "OTHERNAME" not in text
    with Session(engine) as s:
        assert q.jobs_for_case(s, ids["case"]) and all(j.protocol != "verify" for j in q.jobs_for_case(s, ids["case"]))
    r = _post(cl, ids, plan_id, pacs_series_uid_typed=right)
    assert r.status_code == 303, r.text[-1000:]
    job_id = int(re.match(rf"/cases/{ids['case']}/checks/(\d+)$", r.headers["location"]).group(1))
    with Session(engine) as s:
        job = q.get_job(s, job_id)
        opts = dict(job.options)
    assert (opts["kind"], opts["stage"], opts["source"], opts["series_uid"], opts["ct"]) == (
        "verify", "pin", "pacs", right, "ct-pacs")
    assert opts["identity_verified_on"] == ["PatientID", "PatientName", "PatientBirthDate", "PatientSex"]
    assert (opts["procedure_id"], opts["saved_plan_id"]) == (ids["procedure"], plan_id)
