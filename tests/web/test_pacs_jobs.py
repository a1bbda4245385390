"""Planning jobs whose CT comes from the PACS (real Orthanc, ``./scripts/with-orthanc``): the series attached to the
lesion on the PACS page is retrieved into the job's folder through the plan form; another patient's series, a series
that is not in the PACS and an unreachable PACS are refused with one line, leaving no job and no folder behind.

The planner itself is not run here (the worker path is the same as for an upload, tested in test_plan_jobs.py): the
test checks what the worker would read, the job's folder and options.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from .conftest import csrf_of, make_case

#: The identity of make_case()'s patient (H-998877, Testname Alice, born 1960, female) as a CT carries it.
RIGHT_PATIENT = {"PatientID": "H-998877", "PatientName": "TESTNAME^ALICE", "PatientBirthDate": "19600305",
                 "PatientSex": "F"}
#: Another patient: identifier, name and birth date differ, sex agrees.
OTHER_PATIENT = {"PatientID": "OTHER-4242", "PatientName": "OTHERNAME^BEA", "PatientBirthDate": "19710203",
                 "PatientSex": "F"}
N_SLICES = 6


@pytest.fixture(scope="module")
def small_ct():
    """Six axial slices through the middle of the neck phantom at 2 mm (a few hundred kB as DICOM)."""
    from osteoplan.anatomy.phantom import PhantomParams, make_phantom
    from osteoplan.imaging.volume import Volume

    vol = make_phantom(PhantomParams(spacing_mm=2.0)).volume
    k0 = vol.shape[0] // 2 - N_SLICES // 2
    affine = vol.affine.copy()
    affine[:3, 3] = vol.index_to_world(np.array([[k0, 0, 0]], dtype=float))[0]
    hu = np.round(vol.array[k0:k0 + N_SLICES]).astype(np.float32)  # whole HU, as a CT's stored values are
    return Volume(np.ascontiguousarray(hu), affine)


@pytest.fixture()
def pacs_on_app(app, monkeypatch):
    import os

    from osteoplan.pacs import PacsConfig

    url = os.environ.get("OSTEOPLAN_TEST_ORTHANC_URL")
    if not url:
        pytest.skip("no test Orthanc (OSTEOPLAN_TEST_ORTHANC_URL unset): run through ./scripts/test or "
                    "./scripts/with-orthanc")
    cfg = PacsConfig(url.rstrip("/") + "/dicom-web", username=os.environ.get("OSTEOPLAN_TEST_ORTHANC_USER"),
                     password=os.environ.get("OSTEOPLAN_TEST_ORTHANC_PASSWORD"), timeout_s=20, retries=1)
    monkeypatch.setattr(app.state, "pacs_config", cfg, raising=False)
    return cfg


@pytest.fixture()
def jobs_root(tmp_path, monkeypatch):
    root = tmp_path / "jobs"
    monkeypatch.setenv("OSTEOPLAN_JOBS_DIR", str(root))
    return root


@pytest.fixture()
def orthanc_rest_session(pacs_on_app):
    """(REST root, requests session) of the test Orthanc (to delete a series behind osteoplan's back)."""
    import os

    import requests

    s = requests.Session()
    s.auth = (os.environ.get("OSTEOPLAN_TEST_ORTHANC_USER"), os.environ.get("OSTEOPLAN_TEST_ORTHANC_PASSWORD"))
    return os.environ["OSTEOPLAN_TEST_ORTHANC_URL"].rstrip("/"), s


@pytest.fixture()
def closed_port_url():
    """URL of a loopback port nobody listens on (connection refused)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/dicom-web"


def _store(cfg, volume, patient) -> tuple[str, str]:
    from osteoplan.pacs import PacsClient
    from osteoplan.pacs.seed import store_volume

    return store_volume(PacsClient(cfg), volume, patient, description="osteoplan test CT")


def _post(cl, ids, **fields):
    data = {"csrf_token": csrf_of(cl), "protocol": "c2-dens-anterior", "side": "", "source": "pacs", **fields}
    return cl.post(f"/cases/{ids['case']}/lesions/{ids['lesion']}/plan-jobs/new", data=data, follow_redirects=False)


def _error(html: str) -> str:
    import html as html_lib

    return html_lib.unescape(re.search(r'<strong>Not started\.</strong> ([^<]+)<', html).group(1).strip())


def _jobs(engine, case_id: int):
    from sqlalchemy.orm import Session

    from osteoplan.workflow import jobs as q

    with Session(engine) as s:
        return q.jobs_for_case(s, case_id)


@pytest.mark.pacs
def test_plan_job_from_the_lesions_pacs_series(engine, client_for, pacs_on_app, jobs_root, small_ct, monkeypatch):
    from osteoplan.imaging.io import read_volume

    ids = make_case(engine, through="lesion")
    study, series = _store(pacs_on_app, small_ct, RIGHT_PATIENT)
    cl = client_for("radiologist")
    form_url = f"/cases/{ids['case']}/lesions/{ids['lesion']}/plan-jobs/new"
    page = cl.get(form_url).text
    assert 'value="pacs"' in page and "No PACS series is attached to this lesion yet" in page
    # attach it on the PACS page (the lesion's ct_series_uids record), as a user does
    r = cl.post(f"/cases/{ids['case']}/lesions/{ids['lesion']}/pacs/pick",
                data={"csrf_token": csrf_of(cl), "study_uid": study, "series_uid": series}, follow_redirects=False)
    assert r.status_code == 303, r.text[:400]
    page = cl.get(form_url).text
    assert f'<option value="{series}"' in page
    r = _post(cl, ids, pacs_series_uid=series)  # the study is looked up by QIDO-RS
    assert r.status_code == 303, r.text[:1000]
    job_id = int(re.match(rf"/cases/{ids['case']}/plan-jobs/(\d+)$", r.headers["location"]).group(1))
    (job,) = _jobs(engine, ids["case"])
    assert job.id == job_id and job.state == "queued"
    opts = job.options
    # the request only chose the series (QIDO-RS identity check): nothing is downloaded yet
    assert opts["source"] == "pacs" and opts["study_uid"] == study and opts["series_uid"] == series
    assert opts["format"] == "dicom" and opts["ct"] == "ct-pacs" and opts["pacs_retrieve"] is True
    assert "ct_files" not in opts
    assert opts["identity_verified_on"] == ["PatientID", "PatientName", "PatientBirthDate", "PatientSex"]
    assert opts["identity_confirmed_by_user"] is False
    folder = jobs_root / f"job-{job_id:06d}" / "ct-pacs"
    assert str(folder.parent.resolve()) == job.work_dir and not folder.exists()
    view = cl.get(f"/cases/{ids['case']}/plan-jobs/{job_id}.json").json()
    assert [s["key"] for s in view["stages"]][:2] == ["retrieve", "read"]
    assert view["stages"][0]["label"] == "retrieving the CT from the PACS"
    # the worker's first stage retrieves it, with progress
    opts = _retrieve_stage(engine, job_id, pacs_on_app, monkeypatch)
    assert opts["ct_files"] == N_SLICES and opts["retrieve_s"] > 0
    stage = cl.get(f"/cases/{ids['case']}/plan-jobs/{job_id}.json").json()["stages"][0]
    assert (stage["key"], stage["status"], stage["detail"]) == ("retrieve", "current", f"{N_SLICES} of {N_SLICES} images")
    assert opts["identity_verified_on"] == ["PatientID", "PatientName", "PatientBirthDate", "PatientSex"]
    assert sorted(p.name for p in folder.iterdir()) == [f"{n:06d}.dcm" for n in range(1, N_SLICES + 1)]
    got = read_volume(folder)  # what the planner will read: the stored volume, voxel for voxel
    assert got.shape == small_ct.shape
    assert np.array_equal(got.array, small_ct.array)
    assert np.allclose(got.affine, small_ct.affine, atol=1e-4)


def _pacs_env(monkeypatch, cfg, tmp_path=None) -> None:
    """The worker's PACS (it reads OSTEOPLAN_PACS_*), as osteoplan serve's workers get the server's."""
    monkeypatch.setenv("OSTEOPLAN_PACS_URL", cfg.url)
    for key, value in (("OSTEOPLAN_PACS_USERNAME", cfg.username), ("OSTEOPLAN_PACS_PASSWORD", cfg.password)):
        if value:
            monkeypatch.setenv(key, value)
        else:
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OSTEOPLAN_PACS_TIMEOUT_S", str(cfg.timeout_s))
    monkeypatch.setenv("OSTEOPLAN_PACS_CONFIG", "/nonexistent/osteoplan-pacs.toml")


def _retrieve_stage(engine, job_id, cfg, monkeypatch) -> dict:
    """Claim the job as a worker and run only its retrieve stage (the planner is tested elsewhere); returns the
    job's options afterwards. The stage labels it reported ("... 6 of 6 images") are checked on the way."""
    from pathlib import Path

    from osteoplan.faces import pacs_jobs
    from osteoplan.workflow import jobs as q

    _pacs_env(monkeypatch, cfg)
    labels = []
    real = q.heartbeat

    def spy(engine_, jid, worker, **kw):
        if kw.get("stage_label"):
            labels.append(kw["stage_label"])
        return real(engine_, jid, worker, **kw)

    monkeypatch.setattr(pacs_jobs.q, "heartbeat", spy)
    monkeypatch.setattr(pacs_jobs, "PROGRESS_EVERY_S", 0.0)
    worker = q.worker_id()
    assert q.claim_next(engine, worker, only=job_id) == job_id
    job = _jobs(engine, _case_of(engine, job_id))[0]
    opts = pacs_jobs.retrieve_ct(engine, job_id, worker, Path(job.work_dir), dict(job.options))
    assert labels == [f"retrieving the CT from the PACS: {n} of {N_SLICES} images" for n in range(1, N_SLICES + 1)]
    assert _jobs(engine, _case_of(engine, job_id))[0].options == opts
    return opts


def _case_of(engine, job_id: int) -> int:
    from sqlalchemy.orm import Session

    from osteoplan.workflow import models as m

    with Session(engine) as s:
        return s.get(m.PlanJob, job_id).patient_id


def _run_claimed(engine, job_id: int) -> str:
    """Claim job *job_id* and run it in this process (the worker's run_job); returns its final state. (Other
    tests leave queued jobs in the session's database: only this one is taken.)"""
    from osteoplan.faces.worker import run_job
    from osteoplan.workflow import jobs as q

    worker = q.worker_id()
    assert q.claim_next(engine, worker, only=job_id) == job_id
    return run_job(engine, job_id, worker)


@pytest.mark.pacs
def test_pacs_unreachable_or_series_gone_in_the_worker_fails_the_job_and_retry_requeues(
        engine, client_for, pacs_on_app, jobs_root, small_ct, monkeypatch, closed_port_url, orthanc_rest_session):
    """The PACS fails after the series was chosen: the job fails with the PACS's one line (nothing is left in its
    folder, the planner never runs); "Retry" queues a new job with the same series, which then retrieves it."""
    from osteoplan.pacs import PacsConfig

    ids = make_case(engine, through="lesion")
    study, series = _store(pacs_on_app, small_ct, RIGHT_PATIENT)
    cl = client_for("radiologist")
    r = _post(cl, ids, pacs_study_uid=study, pacs_series_uid=series)
    assert r.status_code == 303, r.text[:600]
    job_id = int(r.headers["location"].rsplit("/", 1)[1])
    _pacs_env(monkeypatch, PacsConfig(closed_port_url, timeout_s=2, retries=1))
    assert _run_claimed(engine, job_id) == "failed"
    (job,) = _jobs(engine, ids["case"])
    assert job.error.startswith("Cannot connect to the PACS at http://127.0.0.1:")
    assert job.error.endswith("The CT was not retrieved; nothing was planned. Retry the job.")
    assert job.stage == "retrieve" and job.stages_done == []
    assert list((jobs_root / f"job-{job_id:06d}").iterdir()) == []
    page = cl.get(f"/cases/{ids['case']}/plan-jobs/{job_id}").text
    assert 'id="job-retry"' in page
    r = cl.post(f"/cases/{ids['case']}/plan-jobs/{job_id}/retry", data={"csrf_token": csrf_of(cl)},
                follow_redirects=False)
    assert r.status_code == 303
    new_id = int(r.headers["location"].rsplit("/", 1)[1])
    assert new_id != job_id
    jobs = {j.id: j for j in _jobs(engine, ids["case"])}
    assert jobs[job_id].state == "failed" and jobs[new_id].state == "queued"
    assert {k: jobs[new_id].options[k] for k in ("study_uid", "series_uid", "pacs_retrieve", "identity_verified_on")} \
        == {k: jobs[job_id].options[k] for k in ("study_uid", "series_uid", "pacs_retrieve", "identity_verified_on")}
    # the series vanishes from the PACS before the new job runs: failed, one line, nothing left
    root, rest = orthanc_rest_session
    found = rest.post(f"{root}/tools/find", json={"Level": "Series", "Query": {"SeriesInstanceUID": series}}).json()
    assert len(found) == 1
    assert rest.delete(f"{root}/series/{found[0]}").status_code == 200
    _pacs_env(monkeypatch, pacs_on_app)
    assert _run_claimed(engine, new_id) == "failed"
    job = {j.id: j for j in _jobs(engine, ids["case"])}[new_id]
    assert job.error == ("The series is no longer in the PACS (deleted or moved since it was listed); search again "
                         "and pick a series. The CT was not retrieved; nothing was planned. Retry the job.")
    assert list((jobs_root / f"job-{new_id:06d}").iterdir()) == []


@pytest.mark.pacs
def test_other_patients_series_refused_naming_attributes_only(engine, client_for, pacs_on_app, jobs_root, small_ct):
    ids = make_case(engine, through="lesion")
    study, series = _store(pacs_on_app, small_ct, OTHER_PATIENT)
    cl = client_for("radiologist")
    r = _post(cl, ids, pacs_study_uid=study, pacs_series_uid=series)
    assert r.status_code == 422
    assert _error(r.text) == ("This CT belongs to another patient than the case: PatientID, PatientName, "
                              "PatientBirthDate differ (PatientSex agree). Pick this patient's CT, or correct the "
                              "case's identity if it is wrong.")
    for value in ("OTHER-4242", "OTHERNAME", "19710203", "1971"):
        assert value not in r.text
    assert _jobs(engine, ids["case"]) == []  # no job queued
    assert not jobs_root.exists() or list(jobs_root.iterdir()) == []  # nothing retrieved is left
    # the confirmation box does not let another patient's CT through
    r = _post(cl, ids, pacs_study_uid=study, pacs_series_uid=series, confirm_identity="1")
    assert r.status_code == 422 and _error(r.text).startswith("This CT belongs to another patient than the case")
    assert _jobs(engine, ids["case"]) == []


@pytest.mark.pacs
def test_missing_series_bad_uid_and_unreachable_pacs_are_one_line(engine, client_for, pacs_on_app, jobs_root, app,
                                                                  closed_port_url):
    from pydicom.uid import generate_uid

    from osteoplan.pacs import PacsConfig

    ids = make_case(engine, through="lesion")
    cl = client_for("radiologist")
    r = _post(cl, ids, pacs_series_uid=generate_uid())  # never stored: not in the PACS
    assert r.status_code == 422
    assert _error(r.text).startswith("The series is not in the PACS (deleted or moved")
    r = _post(cl, ids, pacs_series_uid="1.2.3; DROP")
    assert r.status_code == 422 and _error(r.text).startswith("the SeriesInstanceUID is not a DICOM UID")
    r = _post(cl, ids)
    assert r.status_code == 422 and _error(r.text).startswith("the SeriesInstanceUID is not a DICOM UID")
    app.state.pacs_config = PacsConfig(closed_port_url, timeout_s=2, retries=1)  # pacs_on_app's undo removes it
    r = _post(cl, ids, pacs_series_uid=generate_uid())
    assert r.status_code == 422
    assert _error(r.text).startswith("Cannot connect to the PACS at http://127.0.0.1:")
    assert _jobs(engine, ids["case"]) == []
    assert not jobs_root.exists() or list(jobs_root.iterdir()) == []


def test_no_pacs_configured_no_pacs_source(engine, client_for, app, monkeypatch, tmp_path):
    monkeypatch.setattr(app.state, "pacs_config", None, raising=False)
    monkeypatch.delenv("OSTEOPLAN_PACS_URL", raising=False)
    monkeypatch.setenv("OSTEOPLAN_PACS_CONFIG", str(tmp_path / "absent.toml"))
    ids = make_case(engine, through="lesion")
    cl = client_for("radiologist")
    page = cl.get(f"/cases/{ids['case']}/lesions/{ids['lesion']}/plan-jobs/new").text
    assert 'value="upload"' in page and 'value="pacs"' not in page and 'name="pacs_series_uid"' not in page
    assert re.search(r'<input type="file" name="ct_file"[^>]*required', page)
    r = _post(cl, ids, pacs_series_uid="1.2.3")
    assert r.status_code == 422 and _error(r.text) == "CT source: choose one of the sources listed"


@pytest.mark.pacs
def test_demo_seed_stores_the_phantom_ct_for_a_demo_case_and_it_can_be_picked(engine, client_for, pacs_on_app):
    """``serve --demo`` with a PACS: the phantom CT is stored under the newest free C2 case's identity; searched by
    the case's identifier on the PACS page, it is attached with the identity verified."""
    from osteoplan.pacs import PacsClient
    from osteoplan.web.demo_plans import seed_demo_pacs

    ids = make_case(engine, through="lesion")  # the newest case, a C2 lesion with no plan and no job
    case_id, study, series = seed_demo_pacs(engine, pacs_on_app, spacing_mm=2.0)
    assert case_id == ids["case"]
    (hit,) = [h for h in PacsClient(pacs_on_app).find_series(patient_id="H-998877") if h.series_uid == series]
    assert hit.study_uid == study and hit.modality == "CT" and hit.description == "osteoplan demo: neck phantom CT"
    assert hit.n_instances == 85  # the phantom spans 168 mm superior-inferior: 168 mm / 2 mm + 1 = 85 slices
    cl = client_for("radiologist")
    r = cl.post(f"/cases/{case_id}/lesions/{ids['lesion']}/pacs/pick",
                data={"csrf_token": csrf_of(cl), "study_uid": study, "series_uid": series}, follow_redirects=False)
    assert r.status_code == 303, r.text[:400]
    # this case knows only the birth year, so the CT carries no PatientBirthDate (a date is never invented); demo
    # cases have a full birth date, which is then compared too
    assert "patient identity verified on PatientID, PatientName, PatientSex)" in cl.get(f"/cases/{case_id}").text


@pytest.mark.pacs
@pytest.mark.slow
def test_pacs_job_deidentified_and_planned_by_the_worker(engine, db_url, client_for, pacs_on_app, jobs_root,
                                                         backend_name, monkeypatch):
    """The whole path once: the neck phantom (1.6 mm) stored in the PACS under the case's patient, a job with
    de-identification started from the form, run by a real worker: only the de-identified copy is kept (the
    retrieved folder is removed), the plan is attached with the verdict of the folder the planner wrote."""
    from .test_plan_jobs import SPACING_MM, _job, _run_worker_once, sqlite_only

    sqlite_only(backend_name)
    import pydicom

    from osteoplan.anatomy.phantom import PhantomParams, make_phantom
    from osteoplan.imaging.volume import Volume
    from osteoplan.planning.model import load_plan
    from osteoplan.planning.verdict import verdict_of

    vol = make_phantom(PhantomParams(spacing_mm=SPACING_MM)).volume
    vol = Volume(np.round(vol.array).astype(np.float32), vol.affine)
    study, series = _store(pacs_on_app, vol, RIGHT_PATIENT)
    ids = make_case(engine, through="lesion")
    cl = client_for("radiologist")
    r = _post(cl, ids, pacs_study_uid=study, pacs_series_uid=series, deid="1")
    assert r.status_code == 303, r.text[:1000]
    job_id = int(r.headers["location"].rsplit("/", 1)[1])
    job_dir = jobs_root.resolve() / f"job-{job_id:06d}"
    assert not (job_dir / "ct-pacs").exists()  # retrieved by the worker, not in the request
    _pacs_env(monkeypatch, pacs_on_app)
    _run_worker_once(db_url)
    job = _job(engine, job_id)
    assert job.state == "done", job.error
    assert job.stages_done == ["retrieve", "deid", "read", "anatomy", "risk", "search", "exports", "save"]
    assert job.options["ct_files"] == vol.shape[0]
    assert job.options["deidentified"] and job.options["ct"] == "ct-deid" and job.options["series_uid"] == series
    assert not (job_dir / "ct-pacs").exists()
    files = sorted((job_dir / "ct-deid").rglob("*.dcm"))
    assert len(files) == vol.shape[0]
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert ds.PatientIdentityRemoved == "YES" and ds.PatientID != "H-998877" and "TESTNAME" not in str(ds.PatientName)
    folder = job_dir / f"plan-{job.attempts}"
    assert verdict_of(load_plan(folder / "plan.json")).text_en == job.verdict


@pytest.mark.pacs
def test_demo_seed_with_a_pacs_plans_one_variant_on_the_ct_stored_there(engine, pacs_on_app, jobs_root,
                                                                        monkeypatch):
    """``serve --demo`` with a PACS: the segmented variant's CT is the phantom stored in the PACS under that case's
    patient, and its job retrieves it from there (identity verified); the exact-label-map variant stays
    ``osteoplan demo``."""
    from pathlib import Path

    from osteoplan.faces import pacs_jobs
    from osteoplan.imaging.io import read_volume
    from osteoplan.web.demo_plans import seed_demo_plans
    from osteoplan.workflow import jobs as q

    a = make_case(engine, through="lesion")
    b = make_case(engine, through="lesion")
    ids = seed_demo_plans(engine, jobs_root, pacs=pacs_on_app, spacing_mm=2.0)
    jobs = {j.id: j for j in _jobs(engine, a["case"]) + _jobs(engine, b["case"])}
    first, second = (jobs[i] for i in ids)
    assert first.lesion_id == b["lesion"] and first.options["command"] == "demo"
    assert second.lesion_id == a["lesion"] and "command" not in second.options
    opts = second.options
    assert opts["pacs_retrieve"] and opts["source"] == "pacs" and opts["ct"] == "ct-pacs"
    assert opts["identity_verified_on"] == ["PatientID", "PatientName", "PatientSex"]  # the case knows a birth year
    _pacs_env(monkeypatch, pacs_on_app)
    worker = q.worker_id()
    assert q.claim_next(engine, worker, only=second.id) == second.id
    got = pacs_jobs.retrieve_ct(engine, second.id, worker, Path(second.work_dir), dict(opts))
    assert got["ct_files"] == 85  # 168 mm superior-inferior at 2 mm
    from osteoplan.anatomy.phantom import PhantomParams, make_phantom

    ph = make_phantom(PhantomParams(spacing_mm=2.0)).volume
    vol = read_volume(Path(second.work_dir) / "ct-pacs")
    assert vol.shape == ph.shape and np.allclose(vol.affine, ph.affine, atol=1e-3)
    assert np.abs(vol.array - ph.array).max() <= 0.5  # stored as whole HU


@pytest.mark.pacs
def test_cancel_during_the_retrieve_leaves_nothing(engine, client_for, pacs_on_app, jobs_root, small_ct,
                                                   monkeypatch):
    """A cancel asked while the worker retrieves the series: the download stops at the next image, the folder is
    removed, the job ends cancelled and the planner never runs."""
    from osteoplan.faces import pacs_jobs
    from osteoplan.faces.worker import run_job
    from osteoplan.workflow import jobs as q

    ids = make_case(engine, through="lesion")
    study, series = _store(pacs_on_app, small_ct, RIGHT_PATIENT)
    cl = client_for("radiologist")
    job_id = int(_post(cl, ids, pacs_study_uid=study, pacs_series_uid=series).headers["location"].rsplit("/", 1)[1])
    _pacs_env(monkeypatch, pacs_on_app)
    monkeypatch.setattr(pacs_jobs, "PROGRESS_EVERY_S", 0.0)
    worker = q.worker_id()
    assert q.claim_next(engine, worker, only=job_id) == job_id
    r = cl.post(f"/cases/{ids['case']}/plan-jobs/{job_id}/cancel", data={"csrf_token": csrf_of(cl)},
                follow_redirects=False)
    assert r.status_code == 303
    assert run_job(engine, job_id, worker) == "cancelled"
    (job,) = _jobs(engine, ids["case"])
    assert job.error == "cancelled while running; nothing was saved" and job.stage == "retrieve"
    assert list((jobs_root / f"job-{job_id:06d}").iterdir()) == []
