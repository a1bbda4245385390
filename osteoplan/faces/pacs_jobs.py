"""The PACS stages of the worker's jobs: retrieving a planning CT (first stage of a "plan" job whose CT comes from the
PACS) and storing a plan's results (job kind ``pacs_store``).

Both run in the worker process (never in a web request), heartbeat while they work, stop on a cancel, and end a
failed job with the PACS's one-line message (:class:`osteoplan.errors.PacsError`: unreachable, timeout, refused,
series gone). Either can be started again (:func:`osteoplan.workflow.jobs.requeue`): a retrieve writes into a
fresh folder; a store sends the same SOP Instance UIDs (derived from the plan), so the PACS keeps one copy of each
and nothing is stored twice.

The PACS is the worker's configured one (:func:`osteoplan.pacs.load_config`: ``OSTEOPLAN_PACS_URL``... or the
settings file), the same as the web server's when ``osteoplan serve`` starts the workers.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from osteoplan.workflow import jobs as q
from osteoplan.workflow import models as m

log = logging.getLogger("osteoplan.worker")

#: Seconds between progress updates of a retrieve (configurable default, no published source).
PROGRESS_EVERY_S = 1.0


class JobCancelled(Exception):
    """A cancel was requested (or the job was taken from this worker) during a PACS stage."""


def _config():
    from osteoplan.pacs import load_config

    return load_config()


def _case_identity(engine: Engine, job_id: int):
    """The case's patient identity (:class:`osteoplan.imaging.identity.PatientIdentity`) of job *job_id*."""
    from osteoplan.imaging.identity import PatientIdentity

    with Session(engine) as s:
        job = s.get(m.PlanJob, job_id)
        return PatientIdentity.from_record(s.get(m.Patient, job.patient_id))


def retrieve_ct(engine: Engine, job_id: int, worker: str, work_dir: Path, opts: dict[str, Any]) -> dict[str, Any]:
    """Retrieve the job's PACS series (``study_uid``, ``series_uid``) by WADO-RS into ``work_dir / opts["ct"]``,
    checking the patient against the case again (QIDO-RS index, then the first file's header), with progress
    ("retrieving the CT from the PACS: 40 of 85 images"); returns the job's options updated (``ct_files``,
    ``identity_verified_on``, ``retrieve_s``) and saved.

    Raises
    ------
    PacsError
        The PACS is unreachable, timed out, refused, or the series vanished / came back incomplete; nothing is
        left in the folder.
    PatientIdentityError
        The series now belongs to another patient than the case.
    JobCancelled
        A cancel was requested; nothing is left in the folder.
    """
    from osteoplan.pacs import PacsClient

    folder = work_dir / (opts.get("ct") or "ct-pacs")
    if folder.exists():  # a retrieve interrupted earlier: start clean
        shutil.rmtree(folder)
    q.heartbeat(engine, job_id, worker, stage="retrieve")
    last = [time.monotonic()]
    label = q.STAGE_LABELS["retrieve"]

    def progress(n: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S and n < total:
            return
        last[0] = now
        if q.heartbeat(engine, job_id, worker, stage="retrieve", stage_label=f"{label}: {n} of {total} images"):
            raise JobCancelled()

    t0 = time.perf_counter()
    client = PacsClient(_config())
    got = client.retrieve_for_case(opts["study_uid"], opts["series_uid"], folder, _case_identity(engine, job_id),
                                   allow_unverified=bool(opts.get("identity_confirmed_by_user")), progress=progress)
    seconds = time.perf_counter() - t0
    new = {**opts, "ct_files": got["ct_files"], "retrieve_s": round(seconds, 2),
           "identity_verified_on": got["identity_verified_on"] or opts.get("identity_verified_on", [])}
    with Session(engine) as s, s.begin():
        s.get(m.PlanJob, job_id).options = new
    log.info("planning job %s: %d images retrieved from the PACS in %.1f s", job_id, got["ct_files"], seconds)
    return new


def _fail(engine: Engine, job_id: int, worker: str, error: str, done: list[str]) -> str:
    with Session(engine) as s, s.begin():
        q.finish(s, job_id, worker, "failed", error=error[:1000], stages_done=done)
    return "failed"


def _worker_cancelled():
    from osteoplan.faces.worker import Cancelled

    return Cancelled


#: The plan-folder files a version's folder takes from the folder of the plan it is a version of (same CT, same
#: label map); its plan.json is the version's own.
VERSION_INPUTS: tuple[str, ...] = ("ct.nii.gz", "labels.nii.gz", "labels.json", "segmentation.seg.nrrd")


def _has_results(folder: Path) -> bool:
    """Whether a plan folder was written with its report (the PDF to store; SEG/SR are built from the plan and its
    label map when the plan's CT is a PACS series, else taken from the folder's ``dicom/``)."""
    return (folder / "report.pdf").is_file()


def version_folder(engine: Engine, job_id: int, worker: str, root: Path, plan_id: int, plan_json: dict) -> Path:
    """The plan folder of a plan version saved from the review page (:mod:`osteoplan.workflow.plan_versions`), or of
    a plan made without its report: ``version-<plan id>/`` beside the root plan's folder, with the root's CT and label map, the version's own
    ``plan.json``, and its report, images and DICOM SEG/SR written by ``osteoplan report`` (in a child process,
    like the planner; the folder appears complete or not at all). Made once; returned as is afterwards.

    Raises
    ------
    OsteoplanError
        ``osteoplan report`` failed (its one-line error).
    """
    import os

    from osteoplan.errors import OsteoplanError
    from osteoplan.faces.worker import _run_child

    out = root.parent / f"version-{int(plan_id)}"
    if (out / "plan.json").is_file() and _has_results(out):
        return out
    tmp = root.parent / f".version-{int(plan_id)}.part"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700)
    try:
        for name in VERSION_INPUTS:
            if (root / name).is_file():
                try:
                    os.link(root / name, tmp / name)
                except OSError:
                    shutil.copy2(root / name, tmp / name)
        (tmp / "plan.json").write_text(json.dumps(plan_json, indent=2), encoding="utf-8")
        import sys

        argv = [sys.executable, "-m", "osteoplan.cli", "report", str(tmp)]
        rc, err = _run_child(engine, job_id, worker, argv, root.parent, f"version-{int(plan_id)}-report", None,
                             "store_build")
        if rc != 0:
            raise OsteoplanError(err or f"the report of this plan version could not be written (exit status {rc})")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def run_pacs_store(engine: Engine, job_id: int, worker: str) -> str:
    """Run a ``pacs_store`` job: store the saved plan's SEG, Comprehensive 3D SR and PDF report (Encapsulated PDF),
    all referencing the planning CT, by STOW-RS, then find every one again by QIDO-RS
    (:meth:`osteoplan.pacs.PacsClient.store`); returns the final state.

    The objects are built by :func:`osteoplan.pacs.results.plan_results` from the plan folder of the job that made
    the plan: referencing the PACS series the plan was made on when its grid is that series' own (no CT copy),
    else with the plan folder's CT copy. What was stored is recorded in the job's options (``stored_objects``: label,
    series, SOP Instance UID, stored or not and why), shown on the plan's review and case pages. A partial store
    fails the job naming which objects are stored and which are not; storing again sends the same instances.
    """
    from osteoplan.errors import InputError, OsteoplanError, PacsError, PacsStoreError
    from osteoplan.pacs import PacsClient
    from osteoplan.pacs.results import plan_results

    with Session(engine) as s:
        job = s.get(m.PlanJob, job_id)
        opts = dict(job.options or {})
        plan_id = int(opts.get("saved_plan_id") or 0)
        maker = q.making_job(s, plan_id)
        folder = (Path(maker.work_dir) / f"plan-{maker.attempts}"
                  if maker is not None and maker.state == "done" and maker.work_dir else None)
        saved = s.get(m.SavedPlan, plan_id)
        plan_json = dict(saved.plan) if saved is not None else None
    done: list[str] = []
    if folder is None or not (folder / "plan.json").is_file() or plan_json is None:
        return _fail(engine, job_id, worker, "The plan's folder is no longer on the server (its SEG, SR and report "
                     "cannot be built); plan again, then send the results.", done)
    try:
        q.heartbeat(engine, job_id, worker, stage="store_build")
        if json.loads((folder / "plan.json").read_text(encoding="utf-8")) != plan_json \
                or not _has_results(folder):  # a version saved from the review page, or made without the report
            folder = version_folder(engine, job_id, worker, folder, plan_id, plan_json)
        cfg = _config()
        client = PacsClient(cfg)
        objects, where = plan_results(client, folder)
        done.append("store_build")
        if q.heartbeat(engine, job_id, worker, stage="store_send", stages_done=done):
            raise JobCancelled()
        t0 = time.perf_counter()
        try:
            report = client.store(objects.datasets, objects.labels)
            error = None
        except PacsStoreError as exc:
            report, error = exc.report, str(exc)
        except PacsError as exc:  # no answer, and the PACS could not be asked afterwards what it holds
            return _fail(engine, job_id, worker, f"{exc} Whether some objects were stored is not known (the PACS "
                         "could not be asked); send the results again (same instances: nothing is stored twice).",
                         done)
        seconds = time.perf_counter() - t0
        done.append("store_send")
        outcomes = [{"label": o.label, "series_uid": o.series_uid, "sop_instance_uid": o.sop_instance_uid,
                     "stored": o.stored, "reason": o.reason} for o in (report.outcomes if report else ())]
        opts.update(stored_objects=outcomes, store_where=where, store_study_uid=objects.study_uid,
                    pacs_url=cfg.url.rstrip("/"), store_s=round(seconds, 2), counts=objects.counts())
        with Session(engine) as s, s.begin():
            s.get(m.PlanJob, job_id).options = opts
        if error is not None or report is None:
            stored = sorted({o["label"] for o in outcomes if o["stored"]})
            missing = sorted({o["label"] for o in outcomes if not o["stored"]})
            head = (f"Stored in the PACS: {', '.join(stored)}; NOT stored: {', '.join(missing)}" if stored else
                    f"Nothing was stored in the PACS ({', '.join(missing)} not stored)")
            return _fail(engine, job_id, worker, f"{head}. {error or ''} Send the results again (same instances: "
                         "nothing is stored twice).".replace("  ", " "), done)
        done.append("store_check")  # PacsClient.store found every instance again by QIDO-RS
        with Session(engine) as s, s.begin():
            from osteoplan.workflow.service import audit

            j = s.get(m.PlanJob, job_id)
            audit(s, None, "update", "plan_job", job_id, patient_id=j.patient_id,
                  detail={"pacs_store": objects.counts(), "saved_plan_id": opts.get("saved_plan_id")})
            if not q.finish(s, job_id, worker, "done", stages_done=done,
                            verdict=("stored in the PACS: " + ", ".join(f"{n} {lab}" for lab, n in
                                                                        objects.counts().items()))[:300]):
                raise RuntimeError("job taken from this worker")
        log.info("results store job %s: %s stored in %.1f s", job_id, json.dumps(objects.counts()), seconds)
        return "done"
    except (JobCancelled, _worker_cancelled()):
        with Session(engine) as s, s.begin():
            q.finish(s, job_id, worker, "cancelled", stages_done=done,
                     error="cancelled before the objects were sent; nothing was stored")
        return "cancelled"
    except (PacsError, InputError) as exc:
        return _fail(engine, job_id, worker, f"{exc} Nothing was stored; send the results again.", done)
    except OsteoplanError as exc:
        return _fail(engine, job_id, worker, str(exc), done)
