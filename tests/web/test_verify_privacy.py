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
    assert len(dcm) == len(zipfile.ZipFile(zpath).namelist())  # every image went through de-identification
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

