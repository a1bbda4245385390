"""A planning job that ends without a plan keeps no identified CT: the upload (with the patient's name, ID, birth
date and its files' original names) is deleted when de-identification fails, when the planner fails, when the job
is cancelled (queued or running) and when its worker stopped; the job's error says so in one line and what to do.
Nothing identifying is left in the job's folder, its file names, the worker's output or the job's pages. A Retry of a
PACS job whose CT had been de-identified retrieves and de-identifies it again (the copy's name is not re-used).

The CT is a small synthetic DICOM series (24 x 24 x 10 voxels) carrying the identity of
:mod:`tests.web.test_verify_privacy`; the planner fails on it within seconds (no C2 to find), which is the point.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
import shutil
from pathlib import Path

import pytest

from .conftest import csrf_of, make_case
from .test_plan_jobs import _job, _run_worker_once, jobs_root, sqlite_only  # noqa: F401  (fixture)
from .test_verify_privacy import BIRTH, FILE_STEM, NAME, PID, _control_zip, _found

#: What an error line says when the upload was deleted (osteoplan.faces.worker.discard_received_ct).
UPLOAD_DELETED = "The uploaded CT was deleted"


@pytest.fixture(scope="module")
def identified(tmp_path_factory):
    """A zip of a small DICOM CT carrying the test patient's identity (files named after her); its bytes to look
    for; the same series with the name also in ManufacturerModelName (a place the de-identification's verifier
    refuses to leave it, so ``osteoplan deid`` fails for real)."""
    import io
    import zipfile

    import nibabel as nib
    import numpy as np
    import pydicom

    d = tmp_path_factory.mktemp("identified")
    a = np.full((24, 24, 10), -1000, np.int16)
    a[8:16, 8:16, :] = 400  # a bone block: a CT the planner reads, with no C2 in it
    nib.save(nib.Nifti1Image(a, np.diag([-1.0, -1.0, 2.0, 1.0])), d / "tiny.nii.gz")
    z, needles = _control_zip(d / "tiny.nii.gz", d)
    bad = d / "undeidentifiable.zip"
    with zipfile.ZipFile(z) as zi, zipfile.ZipFile(bad, "w") as zo:
        for info in zi.infolist():
            data = zi.read(info)
            if info.filename.endswith(".dcm"):
                ds = pydicom.dcmread(io.BytesIO(data))
                ds.ManufacturerModelName = NAME.replace("^", " ")
                buf = io.BytesIO()
                ds.save_as(buf)
                data = buf.getvalue()
            zo.writestr(info.filename, data)
    return {"zip": z, "bad_zip": bad, "series": d / "dicom", "needles": needles}


def _upload(c, ids: dict, zpath: Path, deid: bool) -> int:
    data = {"csrf_token": csrf_of(c), "protocol": "c2-dens-anterior", "side": "", "source": "upload"}
    if deid:
        data["deid"] = "1"
    with open(zpath, "rb") as fh:
        r = c.post(f"/cases/{ids['case']}/lesions/{ids['lesion']}/plan-jobs/new", data=data,
                   files={"ct_file": (f"{FILE_STEM}.zip", fh, "application/zip")}, follow_redirects=False)
    assert r.status_code == 303, r.text[-800:]
    return int(re.match(rf"/cases/{ids['case']}/plan-jobs/(\d+)$", r.headers["location"]).group(1))


def _leaks(job_dir: Path, needles: list[bytes]) -> dict[str, list[bytes]]:
    """Files of the job's folder whose content (gunzipped) or relative name holds an identifying value."""
    out = {}
    for p in job_dir.rglob("*"):
        data = str(p.relative_to(job_dir)).encode()
        if p.is_file():
            raw = p.read_bytes()
            data += gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        hits = _found(data, needles)
        if hits:
            out[str(p.relative_to(job_dir))] = hits
    return out


def _pages_clean(c, ids: dict, job_id: int, needles: list[bytes]) -> None:
    """The job's page and JSON show no value that came only with the CT (the case's own identity, from the
    registry, is shown to this role by design)."""
    only_ct = [n for n in needles if n not in (b"TESTNAME", NAME.encode(), PID.encode(), BIRTH.encode())]
    for url in (f"/cases/{ids['case']}/plan-jobs/{job_id}", f"/cases/{ids['case']}/plan-jobs/{job_id}.json"):
        r = c.get(url)
        assert r.status_code == 200
        assert _found(r.text.encode(), only_ct) == []


def _one_line(text: str) -> None:
    assert "\n" not in text and len(text) < 1200, text


@pytest.mark.slow  # a worker process runs osteoplan deid (about 4 s)
def test_failed_deidentification_deletes_the_upload(engine, db_url, client_for, jobs_root, identified,
                                                    backend_name):
    sqlite_only(backend_name)
    ids = make_case(engine, through="lesion")
    c = client_for("radiologist")
    job_id = _upload(c, ids, identified["bad_zip"], deid=True)
    job_dir = Path(_job(engine, job_id).work_dir)
    assert (job_dir / "ct.zip").is_file()  # as uploaded, until the worker takes it
    out = _run_worker_once(db_url)
    job = _job(engine, job_id)
    assert job.state == "failed" and job.exit_code == 2 and job.stage == "deid" and job.stages_done == []
    assert job.error.startswith("The CT could not be de-identified: De-identification verification failed")
    assert job.error.endswith("upload it again to start the plan again."), job.error
    assert UPLOAD_DELETED in job.error
    _one_line(job.error)
    assert not (job_dir / "ct.zip").exists() and not (job_dir / "ct-deid").exists()
    assert _leaks(job_dir, identified["needles"]) == {}
    assert _found(out.encode(), identified["needles"]) == []
    _pages_clean(c, ids, job_id, identified["needles"])
    assert UPLOAD_DELETED in c.get(f"/cases/{ids['case']}/plan-jobs/{job_id}").text


@pytest.mark.slow  # a worker process runs osteoplan plan to its failure (about 5 s)
def test_failed_plan_without_deidentification_deletes_the_upload(engine, db_url, client_for, jobs_root,
                                                                  identified, backend_name):
    """De-identification not asked: the planner reads the identified upload; it fails (no C2), and the upload is
    deleted (it cannot be used again: an uploaded CT's job is not retried), the planner's line kept first."""
    sqlite_only(backend_name)
    ids = make_case(engine, through="lesion")
    c = client_for("radiologist")
    job_id = _upload(c, ids, identified["zip"], deid=False)
    out = _run_worker_once(db_url)
    job = _job(engine, job_id)
    assert job.state == "failed" and job.exit_code == 2 and job.stages_done[0] == "read"
    assert job.error.startswith("The dens could not be located") and UPLOAD_DELETED in job.error
    _one_line(job.error)
    job_dir = Path(job.work_dir)
    assert not (job_dir / "ct.zip").exists()
    assert (job_dir / "plan-1.err.txt").is_file()  # the planner's log is kept, and holds nothing identifying
    assert _leaks(job_dir, identified["needles"]) == {}
    assert _found(out.encode(), identified["needles"]) == []
    _pages_clean(c, ids, job_id, identified["needles"])


def test_cancelled_queued_plan_deletes_the_upload(engine, client_for, jobs_root, identified):
    ids = make_case(engine, through="lesion")
    c = client_for("radiologist")
    job_id = _upload(c, ids, identified["zip"], deid=True)
    job_dir = Path(_job(engine, job_id).work_dir)
    assert _leaks(job_dir, identified["needles"])  # the upload is there, identified (the check can fail)
    r = c.post(f"/cases/{ids['case']}/plan-jobs/{job_id}/cancel", data={"csrf_token": csrf_of(c)},
               follow_redirects=False)
    assert r.status_code == 303
    job = _job(engine, job_id)
    assert job.state == "cancelled" and job.attempts == 0
    assert job.error == ("Cancelled before it started. The uploaded CT was deleted (an identified CT is not kept "
                         "for a job without result): upload it again to start the plan again.")
    assert not (job_dir / "ct.zip").exists() and _leaks(job_dir, identified["needles"]) == {}
    _pages_clean(c, ids, job_id, identified["needles"])
    assert UPLOAD_DELETED in c.get(f"/cases/{ids['case']}/plan-jobs/{job_id}").text
    assert not pj_can_retry(c, ids, job_id)


def pj_can_retry(c, ids: dict, job_id: int) -> bool:
    return bool(c.get(f"/cases/{ids['case']}/plan-jobs/{job_id}.json").json()["can_retry"])


def test_cancel_while_deidentifying_deletes_the_upload(engine, client_for, jobs_root, identified, monkeypatch):
    """Cancelled while running (here during a de-identification that never ends): the worker stops the child and
    deletes the upload."""
    import sys

    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from osteoplan.faces import worker as w
    from osteoplan.workflow import jobs as q
    from osteoplan.workflow import models as m

    monkeypatch.setattr(w, "deid_argv", lambda src, out: [sys.executable, "-c", "import time; time.sleep(60)"])
    ids = make_case(engine, through="lesion")
    c = client_for("radiologist")
    job_id = _upload(c, ids, identified["zip"], deid=True)
    wid = q.worker_id()
    assert q.claim_next(engine, wid, only=job_id) == job_id
    with Session(engine) as s, s.begin():  # the user pressed Cancel while it runs
        s.execute(update(m.PlanJob).where(m.PlanJob.id == job_id).values(cancel_requested=True))
    assert w.run_job(engine, job_id, wid) == "cancelled"
    job = _job(engine, job_id)
    assert job.error.startswith("cancelled while running; nothing was saved " + UPLOAD_DELETED)
    job_dir = Path(job.work_dir)
    assert not (job_dir / "ct.zip").exists() and not (job_dir / "ct-deid").exists()
    assert _leaks(job_dir, identified["needles"]) == {}


def test_stopped_worker_job_deletes_the_upload(engine, client_for, jobs_root, identified):
    """A job whose worker process is gone (killed, server restarted) is failed by the next worker, which deletes
    its upload and says so."""
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from osteoplan.faces import worker as w
    from osteoplan.workflow import jobs as q
    from osteoplan.workflow import models as m

    ids = make_case(engine, through="lesion")
    c = client_for("radiologist")
    job_id = _upload(c, ids, identified["zip"], deid=False)
    with Session(engine) as s, s.begin():  # taken by a worker that then died (no heartbeat for an hour)
        old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
        s.execute(update(m.PlanJob).where(m.PlanJob.id == job_id).values(
            state="running", worker="elsewhere:1", started_at=old, heartbeat_at=old, stage="read", attempts=1))
    with Session(engine) as s, s.begin():  # the database is shared by the session's tests: jobs other tests left
        s.execute(update(m.PlanJob).where(m.PlanJob.id != job_id, m.PlanJob.state == "queued")  # queued are not
                  .values(state="cancelled"))  # this test's business (the loop must run none: this job is stale)
    assert w.work_loop(engine, once=True, lease_s=q.DEFAULT_LEASE_S) == 0
    job = _job(engine, job_id)
    assert job.state == "failed"
    assert job.error.startswith("The plan did not finish: its worker sent no heartbeat") and UPLOAD_DELETED in job.error
    _one_line(job.error)
    job_dir = Path(job.work_dir)
    assert not (job_dir / "ct.zip").exists() and _leaks(job_dir, identified["needles"]) == {}
    _pages_clean(c, ids, job_id, identified["needles"])


@pytest.mark.slow  # two jobs each run osteoplan deid and osteoplan plan (about 10 s)
def test_retry_of_a_deidentified_pacs_job_retrieves_and_deidentifies_again(engine, client_for, jobs_root,
                                                                          identified, monkeypatch, backend_name):
    """A plan on a PACS series, de-identified, fails in the planner; Retry starts a job that retrieves the series
    into its own folder under the received name (never into the de-identified copy's), de-identifies it and plans
    again (failing the same way: the point is that retrieve, de-identification and reading pass)."""
    sqlite_only(backend_name)
    from sqlalchemy.orm import Session

    from osteoplan.faces import pacs_jobs
    from osteoplan.faces import worker as w
    from osteoplan.workflow import jobs as q

    retrieved: list[str] = []

    def fake_retrieve(engine_, job_id, worker, work_dir, opts):  # WADO-RS, replaced by a copy of the series
        shutil.copytree(identified["series"], work_dir / opts["ct"])
        retrieved.append(opts["ct"])
        return {**opts, "ct_files": len(list((work_dir / opts["ct"]).iterdir()))}

    monkeypatch.setattr(pacs_jobs, "retrieve_ct", fake_retrieve)
    ids = make_case(engine, through="lesion")
    c = client_for("radiologist")
    with Session(engine) as s, s.begin():
        job = q.enqueue(s, None, ids["lesion"], "c2-dens-anterior", None, {
            "source": "pacs", "pacs_retrieve": True, "ct": "ct-pacs", "format": "dicom", "deid": True,
            "report": False, "study_uid": "1.2.3", "series_uid": "1.2.3.4"})
        s.flush()
        job.work_dir = str(jobs_root / f"job-{job.id:06d}")
        Path(job.work_dir).mkdir(parents=True)
        first = job.id
    wid = q.worker_id()
    assert q.claim_next(engine, wid, only=first) == first
    assert w.run_job(engine, first, wid) == "failed"
    job = _job(engine, first)
    assert job.stages_done[:3] == ["retrieve", "deid", "read"] and job.error.startswith("The dens could not")
    assert job.options["ct"] == "ct-deid" and job.options["ct_received"] == "ct-pacs"
    assert _leaks(Path(job.work_dir), identified["needles"]) == {}
    assert pj_can_retry(c, ids, first)
    r = c.post(f"/cases/{ids['case']}/plan-jobs/{first}/retry", data={"csrf_token": csrf_of(c)},
               follow_redirects=False)
    assert r.status_code == 303
    second = int(r.headers["location"].rsplit("/", 1)[1])
    new = _job(engine, second)
    assert second != first and new.options["ct"] == "ct-pacs" and not new.options.get("deidentified")
    assert q.claim_next(engine, wid, only=second) == second
    assert w.run_job(engine, second, wid) == "failed"
    new = _job(engine, second)
    assert retrieved == ["ct-pacs", "ct-pacs"]
    assert new.stages_done[:3] == ["retrieve", "deid", "read"], new.error
    assert new.error == job.error
    second_dir = Path(new.work_dir)
    assert (second_dir / "ct-deid").is_dir() and not (second_dir / "ct-pacs").exists()
    assert _leaks(second_dir, identified["needles"]) == {}


def test_discard_received_ct_keeps_only_a_deidentified_copy(tmp_path):
    """What is deleted, and the sentence for each kind of job and source (an uploaded CT must be uploaded again;
    a plan's PACS series is retrieved again by Retry)."""
    from osteoplan.faces.worker import discard_received_ct

    cases = [({"ct": "ct-pacs", "pacs_retrieve": True}, "Retry retrieves it again."),
             ({"ct": "ct-pacs", "pacs_retrieve": True, "kind": "verify"}, "start the check again to retrieve it again."),
             ({"ct": "ct.zip"}, "upload it again to start the plan again."),
             ({"ct": "ct.nii.gz", "kind": "verify"}, "upload it again to start the check again.")]
    for opts, end in cases:
        ct = tmp_path / opts["ct"]
        ct.mkdir() if opts["ct"] == "ct-pacs" else ct.write_bytes(b"PK\x03\x04")
        note = discard_received_ct(tmp_path, opts)
        assert note.endswith(end) and " was deleted " in note and not ct.exists()
    kept = tmp_path / "ct-deid"
    kept.mkdir()
    assert discard_received_ct(tmp_path, {"ct": "ct-deid", "deidentified": True}) == "" and kept.is_dir()
    assert discard_received_ct(tmp_path, {"ct": "ct.zip"}) == ""  # already gone: nothing to say
