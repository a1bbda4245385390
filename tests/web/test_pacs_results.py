"""A plan's results sent to the PACS from the review page (job kind ``pacs_store``, run by the worker) against the
real test Orthanc (``./scripts/with-orthanc``): SEG, Comprehensive 3D SR and the PDF report (Encapsulated PDF)
referencing the PACS series the plan was made on, found again by QIDO-RS, recorded on the review and case pages;
sending again stores nothing twice; a refused object or an unreachable PACS is one message saying what is stored.

The plan folder is a small one written here (a 12-slice series stored in Orthanc, a plan on it, a label map and a
stand-in PDF), attached through a finished planning job as the worker attaches it: the planner is not run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from .conftest import csrf_of, make_case
from .test_pacs_jobs import RIGHT_PATIENT, _pacs_env, _run_claimed, pacs_on_app  # noqa: F401 (fixture)

pytestmark = pytest.mark.pacs


@pytest.fixture()
def planned(engine, pacs_on_app, tmp_path):
    """A case with a plan made by a (finished) job on a series of the PACS: ids, study and series UIDs."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "export"))
    from export_planfactory import make_plan

    from osteoplan.imaging.synth import write_series
    from osteoplan.pacs import PacsClient
    from osteoplan.planning.provenance import ct_source_of

    s = write_series(tmp_path / "ct", study_uid=generate_uid(), series_uid=generate_uid(), for_uid=generate_uid(),
                     seed=int(np.random.default_rng().integers(1 << 30)))
    dsets = [pydicom.dcmread(p) for p in s.files]
    for ds in dsets:
        for kw, v in RIGHT_PATIENT.items():
            setattr(ds, kw, v)
    pacs = PacsClient(pacs_on_app)
    assert pacs.store(dsets).complete
    vol = pacs.read_series(s.study_uid, s.series_uid).volume
    centre = vol.index_to_world(np.array([5.0, 10.0, 8.0]))
    plan = make_plan(vol, centre + [30, -30, -5], centre + [2, -3, 0], centre)
    plan = plan.model_copy(update={"ct_source": ct_source_of(vol)})
    ids = make_case(engine, through="lesion")
    ids["plan"] = plan_folder_job(engine, ids, vol, plan, tmp_path)
    return ids, s.study_uid, s.series_uid


def plan_folder_job(engine, ids, vol, plan, tmp_path) -> int:
    """Attach *plan* to the case's lesion through a finished planning job whose plan folder (``plan-1``) holds the
    plan, its CT, a small C2 label map and a stand-in PDF, as the worker leaves it; returns the saved plan's id."""
    import nibabel as nib
    from sqlalchemy.orm import Session

    from osteoplan.export import save_ct_nifti
    from osteoplan.imaging.volume import Volume
    from osteoplan.planning.model import save_plan
    from osteoplan.workflow import jobs as q
    from osteoplan.workflow import service as sv

    with Session(engine) as ses, ses.begin():
        job = q.enqueue(ses, None, ids["lesion"], "c2-dens-anterior", None, {"source": "pacs"})
        work = tmp_path / "jobs" / f"job-{job.id:06d}"
        d = work / "plan-1"
        d.mkdir(parents=True)
        save_plan(plan, d / "plan.json")
        save_ct_nifti(d / "ct.nii.gz", vol)
        lab = np.zeros(vol.shape, np.int16)
        lab[3:8, 5:15, 5:12] = 1
        nib.save(Volume(lab.astype(np.float32), vol.affine).to_nifti(), str(d / "labels.nii.gz"))
        (d / "labels.json").write_text(json.dumps({"labels": {"1": "vertebrae_C2"},
                                                   "sources": {"vertebrae_C2": "test"}}))
        (d / "report.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
        saved = sv.attach_plan(ses, None, {"lesion_id": ids["lesion"], "plan": json.loads(plan.to_json()),
                                           "label": "pacs test plan"})
        job.state, job.attempts, job.work_dir, job.saved_plan_id = "done", 1, str(work), saved.id
        job.stages_done = ["read", "save"]
        ses.flush()
        return saved.id


def _send(cl, ids):
    return cl.post(f"/cases/{ids['case']}/plans/{ids['plan']}/pacs-store", data={"csrf_token": csrf_of(cl)},
                   follow_redirects=False)


def _modalities(pacs_cfg, study):
    from osteoplan.pacs import PacsClient

    return sorted((h.modality, h.n_instances) for h in PacsClient(pacs_cfg).find_series(study_uid=study,
                                                                                         modality=None))


def test_send_results_found_by_qido_recorded_and_idempotent(engine, client_for, pacs_on_app, planned, monkeypatch):
    ids, study, series = planned
    cl = client_for("radiologist")
    review = cl.get(f"/cases/{ids['case']}/plans/{ids['plan']}/review").text
    assert 'id="pacs-send"' in review and "Not sent yet" in review
    r = _send(cl, ids)
    assert r.status_code == 303
    job_id = int(r.headers["location"].rsplit("/", 1)[1])
    assert _send(cl, ids).headers["location"] == r.headers["location"]  # queued once: the same job
    page = cl.get(r.headers["location"]).text
    assert "Results to the PACS: job" in page and "sending them to the PACS (STOW-RS)" in page
    _pacs_env(monkeypatch, pacs_on_app)
    assert _run_claimed(engine, job_id) == "done"
    assert _modalities(pacs_on_app, study) == [("CT", 12), ("DOC", 1), ("SEG", 1), ("SR", 1)]
    view = cl.get(f"/cases/{ids['case']}/plan-jobs/{job_id}.json").json()
    assert view["state"] == "done" and view["kind"] == "pacs_store"
    assert [s["status"] for s in view["stages"]] == ["done", "done", "done"]
    objs = view["store"]["objects"]
    assert sorted(o["label"] for o in objs) == ["PDF", "SEG", "SR"] and all(o["stored"] for o in objs)
    assert view["store"]["study_uid"] == study  # they joined the planning CT's study
    assert view["store"]["where"] == "referencing the PACS series the plan was made on (no CT copy)"
    # what they reference: the planning CT's series
    from osteoplan.pacs import PacsClient

    sr = [o for o in objs if o["label"] == "SR"][0]
    ds = PacsClient(pacs_on_app)._web.retrieve_instance(study, sr["series_uid"], sr["sop_instance_uid"])
    refs = {str(item.SeriesInstanceUID) for ev in ds.CurrentRequestedProcedureEvidenceSequence
            for item in ev.ReferencedSeriesSequence}
    assert refs == {series}
    review = cl.get(f"/cases/{ids['case']}/plans/{ids['plan']}/review").text
    assert "every object was found again in the PACS by QIDO-RS" in review
    assert f'/studies/{study}/series/{sr["series_uid"]}' in review
    case = cl.get(f"/cases/{ids['case']}").text
    assert 'class="plan-pacs" data-state="done"' in case and ">SEG</a>" in case and ">PDF</a>" in case
    # again: a new job, the same instances, nothing added
    r = _send(cl, ids)
    again_id = int(r.headers["location"].rsplit("/", 1)[1])
    assert again_id != job_id
    assert _run_claimed(engine, again_id) == "done"
    assert _modalities(pacs_on_app, study) == [("CT", 12), ("DOC", 1), ("SEG", 1), ("SR", 1)]
    again = cl.get(r.headers["location"] + ".json").json()["store"]["objects"]
    assert sorted(o["sop_instance_uid"] for o in again) == sorted(o["sop_instance_uid"] for o in objs)


def test_refused_object_and_unreachable_pacs_say_what_is_stored(engine, client_for, pacs_on_app, planned,
                                                                monkeypatch, tmp_path):
    """The PACS filters the SR out (the test Orthanc refuses a series described "OSTEOPLAN-TEST-REFUSE..."): the
    job fails naming what is stored and what is not; an unreachable PACS stores nothing and says so; "Send again"
    then completes with the same instances."""
    from osteoplan.faces import pacs_jobs
    from osteoplan.pacs import PacsConfig, results

    ids, study, _ = planned
    cl = client_for("radiologist")
    real = results.plan_results

    def refusing(client, plan_dir, **kw):
        objects, where = real(client, plan_dir, **kw)
        for ds, lab in zip(objects.datasets, objects.labels):
            if lab == "SR":
                ds.SeriesDescription = "OSTEOPLAN-TEST-REFUSE the SR"
        return objects, where

    monkeypatch.setattr(results, "plan_results", refusing)
    _pacs_env(monkeypatch, pacs_on_app)
    job_id = int(_send(cl, ids).headers["location"].rsplit("/", 1)[1])
    assert _run_claimed(engine, job_id) == "failed"
    view = cl.get(f"/cases/{ids['case']}/plan-jobs/{job_id}.json").json()
    assert view["error"].startswith("Stored in the PACS: PDF, SEG; NOT stored: SR. Store to the PACS incomplete: ")
    assert view["error"].endswith("Send the results again (same instances: nothing is stored twice).")
    assert {o["label"]: o["stored"] for o in view["store"]["objects"]} == {"SEG": True, "SR": False, "PDF": True}
    assert view["can_retry"]
    review = cl.get(f"/cases/{ids['case']}/plans/{ids['plan']}/review").text
    assert "Not (completely) stored:" in review and "Stored in the PACS: PDF, SEG; NOT stored: SR" in review
    assert _modalities(pacs_on_app, study) == [("CT", 12), ("DOC", 1), ("SEG", 1)]
    # unreachable: nothing stored, said so
    monkeypatch.setattr(results, "plan_results", real)
    s = __import__("socket").socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    _pacs_env(monkeypatch, PacsConfig(f"http://127.0.0.1:{port}/dicom-web", timeout_s=2, retries=1))
    r = cl.post(f"/cases/{ids['case']}/plan-jobs/{job_id}/retry", data={"csrf_token": csrf_of(cl)},
                follow_redirects=False)
    retry_id = int(r.headers["location"].rsplit("/", 1)[1])
    assert _run_claimed(engine, retry_id) == "failed"
    err = cl.get(f"/cases/{ids['case']}/plan-jobs/{retry_id}.json").json()["error"]
    assert err.startswith(f"Cannot connect to the PACS at http://127.0.0.1:{port}/dicom-web")
    assert err.endswith("Nothing was stored; send the results again.")
    # the PACS is back: sent again, complete, the SEG and PDF not duplicated
    _pacs_env(monkeypatch, pacs_on_app)
    r = cl.post(f"/cases/{ids['case']}/plan-jobs/{retry_id}/retry", data={"csrf_token": csrf_of(cl)},
                follow_redirects=False)
    assert _run_claimed(engine, int(r.headers["location"].rsplit("/", 1)[1])) == "done"
    assert _modalities(pacs_on_app, study) == [("CT", 12), ("DOC", 1), ("SEG", 1), ("SR", 1)]
    assert pacs_jobs  # the runner module used


def test_uploaded_plan_cannot_be_sent(engine, client_for, pacs_on_app):
    ids = make_case(engine, through="lesion", with_plan=True)
    cl = client_for("radiologist")
    r = _send(cl, ids)
    assert r.status_code == 303 and r.headers["location"].endswith("/review")
    from osteoplan.workflow import jobs as q
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        assert q.jobs_for_case(s, ids["case"]) == []


def test_only_radiologists_send(engine, client_for, pacs_on_app, planned):
    ids, _, _ = planned
    cl = client_for("coordinator")
    assert 'id="pacs-send"' not in cl.get(f"/cases/{ids['case']}/plans/{ids['plan']}/review").text
    assert _send(cl, ids).status_code == 403


@pytest.mark.slow
def test_approving_a_plan_sends_its_results(engine, client_for, pacs_on_app, tmp_path, monkeypatch):
    """Approve (web-adjust's action) with a PACS configured queues the results store; the plan was made without its
    report (the adjust fixture: the phantom at 1.6 mm with its exact label map), so the worker first writes it with
    ``osteoplan report`` into ``version-<id>/``, then stores the CT copy, SEG, SR and PDF (the plan's CT is not a
    PACS series), all found again by QIDO-RS."""
    from osteoplan.pacs import PacsClient
    from osteoplan.workflow import jobs as q
    from sqlalchemy.orm import Session

    from .adjust_fixtures import attach_as_job, write_phantom_plan_folder

    ids = make_case(engine, through="lesion")
    _, plan = write_phantom_plan_folder(tmp_path / "job" / "plan-1")
    plan_id = attach_as_job(engine, ids["lesion"], tmp_path / "job", plan)
    cl = client_for("radiologist")
    r = cl.post(f"/cases/{ids['case']}/plans/{plan_id}/approve", data={"csrf_token": csrf_of(cl)},
                follow_redirects=True)
    assert r.status_code == 200
    assert "approved: the plan is locked. Its report, SEG and SR are being sent to the PACS (job" in r.text
    with Session(engine) as s:
        (job,) = q.results_store_jobs(s, plan_id)
        job_id = job.id
    _pacs_env(monkeypatch, pacs_on_app)
    assert _run_claimed(engine, job_id) == "done"
    assert (tmp_path / "job" / f"version-{plan_id}" / "report.pdf").is_file()
    view = cl.get(f"/cases/{ids['case']}/plan-jobs/{job_id}.json").json()
    assert view["store"]["where"].startswith("as a new study (the planning CT's study is not in this PACS")
    assert sorted(o["label"] for o in view["store"]["objects"] if o["label"] != "CT") == ["PDF", "SEG", "SR"]
    n_ct = plan.ct.shape_kji[0]
    assert _modalities(pacs_on_app, view["store"]["study_uid"]) == [("CT", n_ct), ("DOC", 1), ("SEG", 1), ("SR", 1)]
    assert PacsClient(pacs_on_app).find_series(study_uid=view["store"]["study_uid"], modality="SR")[0].n_instances == 1
