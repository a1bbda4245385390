"""A control CT uploaded for a check is de-identified like a plan's upload: nothing identifying it carried (patient
name, ID, birth date, accession, institution, free-text comments, private tags, its files' original names, its
UIDs) is left in the job's folder, the worker's log, the check's pages or its outputs."""

from __future__ import annotations

import gzip
import re
import zipfile
from pathlib import Path

import pytest

from .conftest import csrf_of, make_case
from .test_plan_jobs import _job, _run_worker_once, jobs_root, sqlite_only  # noqa: F401  (fixture)
from .verify_fixtures import make_inputs, register_plan_job

pytestmark = [pytest.mark.slow]  # a worker runs osteoplan deid then osteoplan verify (about 20 s)

#: make_case()'s patient as a DICOM header carries it (so the upload passes the identity check), plus
#: identifying values of its own; none may survive anywhere the check writes.
NAME, PID, BIRTH = "TESTNAME^ALICE", "H-998877", "19600412"
ACCESSION, INSTITUTION, COMMENT = "ACC5551234", "Fictitious Hospital Osteoville", "scan of Alice Testname"
PRIVATE = "PRIVATE-TESTNAME-NOTE"
FILE_STEM = "Testname_Alice_H998877"


def _control_zip(src_nifti: Path, out: Path) -> tuple[Path, list[bytes]]:
    """The synthetic control CT as a zip of DICOM files carrying the identity above (files named after the
    patient); returns the zip and the byte strings that must not appear anywhere afterwards."""
    import pydicom

    from osteoplan.anatomy.phantom import write_dicom_series
    from osteoplan.imaging.io import read_volume

    files = write_dicom_series(read_volume(src_nifti), out / "dicom")
    uids: set[str] = set()
    z = out / "control-dicom.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        for n, f in enumerate(files):
            ds = pydicom.dcmread(f)
            ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = NAME, PID, BIRTH, "F"
            ds.AccessionNumber, ds.InstitutionName, ds.ImageComments = ACCESSION, INSTITUTION, COMMENT
            ds.private_block(0x0011, "OSTEOPLAN TEST", create=True).add_new(0x01, "LO", PRIVATE)
            for kw in ("PatientIdentityRemoved", "DeidentificationMethod"):
                if kw in ds:
                    delattr(ds, kw)
            uids |= {ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID}
            ds.save_as(f)
            zf.write(f, f"{NAME}/{FILE_STEM}_{n:04d}.dcm")
        zf.writestr(f"{NAME}/{FILE_STEM}_notes.txt", f"{COMMENT}\n")  # a non-DICOM file: skipped, never named
    needles = [v.encode() for v in (NAME, "TESTNAME", PID, BIRTH, ACCESSION, INSTITUTION, "Osteoville", COMMENT,
                                     PRIVATE, FILE_STEM)]
    return z, needles + sorted(u.encode() for u in uids)


def _found(data: bytes, needles: list[bytes]) -> list[bytes]:
    low = data.lower()
    return [n for n in needles if n.lower() in low]


def test_uploaded_control_ct_is_deidentified_and_nothing_identifying_is_written(engine, db_url, client_for,
                                                                                jobs_root, tmp_path,
                                                                                backend_name):
    sqlite_only(backend_name)
    inputs = make_inputs(tmp_path / "inputs")
    zpath, needles = _control_zip(inputs["control"], tmp_path)
    ids = make_case(engine, through="done")
    plan_id = register_plan_job(engine, ids, inputs)
    c = client_for("radiologist")
    with open(zpath, "rb") as fh:
        r = c.post(f"/cases/{ids['case']}/procedures/{ids['procedure']}/verify/new",
                   data={"csrf_token": csrf_of(c), "saved_plan_id": str(plan_id), "stage": "screw",
                         "source": "upload"},
                   files={"ct_file": (f"{FILE_STEM}.zip", fh, "application/zip")}, follow_redirects=False)
    assert r.status_code == 303, r.text[-800:]
    job_id = int(re.match(rf"/cases/{ids['case']}/checks/(\d+)$", r.headers["location"]).group(1))
    job = _job(engine, job_id)
    # the header's identity was compared with the case's (the upload is this patient's): names only are kept
    assert "PatientID" in job.options["identity_verified_on"]
    worker_out = _run_worker_once(db_url)
    job = _job(engine, job_id)
    assert job.state == "done", job.error
    assert job.stages_done == ["deid", "read", "measure", "images", "save"]
    assert job.options["deidentified"] is True and job.options["ct"] == "ct-deid"
    job_dir = Path(job.work_dir)
    assert not (job_dir / "ct.zip").exists()
    written = [p for p in job_dir.rglob("*") if p.is_file()]
    dcm = [p for p in written if p.suffix == ".dcm"]
    n_images = sum(n.endswith(".dcm") for n in zipfile.ZipFile(zpath).namelist())
    assert len(dcm) == n_images  # every image went through de-identification
    assert {p.name for p in written} >= {"verify.json", "verify.png", "verify.pdf", "verify.html"}
    leaks = {}
    for p in written:
        data = p.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        hits = _found(data + str(p.relative_to(job_dir)).encode(), needles)
        if hits:
            leaks[str(p.relative_to(job_dir))] = hits
    assert leaks == {}
    assert _found(worker_out.encode(), needles) == []
    # the check's pages show no value that came only with the control CT (the case's own identity, from the
    # registry, is shown to this role by design)
    only_ct = [n for n in needles if n not in (b"TESTNAME", NAME.encode(), PID.encode(), BIRTH.encode())]
    for url in (f"/cases/{ids['case']}/checks/{job_id}", f"/cases/{ids['case']}/checks/{job_id}.json"):
        assert _found(c.get(url).text.encode(), only_ct) == []
    assert "(de-identified)" in c.get(f"/cases/{ids['case']}/checks/{job_id}").text



def test_a_pacs_control_ct_is_retrieved_then_deidentified(engine, client_for, jobs_root, tmp_path, monkeypatch,
                                                          backend_name):
    """A check whose control CT was chosen in the PACS: the worker retrieves the series (WADO-RS, replaced here by
    a copy of the series into the job's folder, as retrieve_ct writes it), de-identifies it, and measures on the
    copy; the retrieved files (with the patient's identity) are not kept."""
    sqlite_only(backend_name)
    import shutil

    from sqlalchemy.orm import Session

    from osteoplan.faces import pacs_jobs
    from osteoplan.faces.verify_job import run_verify_job
    from osteoplan.workflow import jobs as q
    from osteoplan.workflow import models as m

    inputs = make_inputs(tmp_path / "inputs")
    zpath, needles = _control_zip(inputs["control"], tmp_path)
    series = tmp_path / "dicom"  # the files _control_zip wrote, with the identity
    ids = make_case(engine, through="done")
    plan_id = register_plan_job(engine, ids, inputs)
    retrieved = []

    def fake_retrieve(engine_, job_id, worker, work_dir, opts):
        shutil.copytree(series, work_dir / opts["ct"])
        retrieved.append(sorted(p.name for p in (work_dir / opts["ct"]).iterdir()))
        return {**opts, "ct_files": len(retrieved[0])}

    monkeypatch.setattr(pacs_jobs, "retrieve_ct", fake_retrieve)
    with Session(engine) as s, s.begin():
        job = q.enqueue(s, None, ids["lesion"], "verify", None, {
            "kind": "verify", "stage": "screw", "procedure_id": ids["procedure"], "saved_plan_id": plan_id,
            "plan_dir": str(inputs["plan_dir"]), "source": "pacs", "pacs_retrieve": True, "ct": "ct-pacs",
            "format": "dicom", "study_uid": "1.2.3", "series_uid": "1.2.3.4"})
        s.flush()
        job_dir = jobs_root / f"job-{job.id:06d}"
        job_dir.mkdir(parents=True)
        job.work_dir, job_id = str(job_dir), job.id
    worker = q.worker_id()
    assert q.claim_next(engine, worker, only=job_id) == job_id
    assert run_verify_job(engine, job_id, worker) == "done", _job(engine, job_id).error
    job = _job(engine, job_id)
    assert retrieved and job.stages_done == ["retrieve", "deid", "read", "measure", "images", "save"]
    assert job.options["ct"] == "ct-deid" and not (job_dir / "ct-pacs").exists()
    leaks = {str(p.relative_to(job_dir)): _found(p.read_bytes() + p.name.encode(), needles)
             for p in job_dir.rglob("*") if p.is_file()}
    assert {k: v for k, v in leaks.items() if v} == {}
    with Session(engine) as s:
        assert s.get(m.Verification, job.options["verification_id"]).control_source == "pacs"
