"""The planning-job queue: a table of the registry's own database (:class:`~osteoplan.workflow.models.PlanJob`).

Why a table and not a queue library: the registry runs on PostgreSQL or on an embedded SQLite file, and no
maintained Python queue covers both (procrastinate is PostgreSQL-only; huey's SQLite storage would be a second
store beside a PostgreSQL registry, and a huey task dequeued by a consumer that is then killed is lost, whereas
a job here must end ``failed`` with a reason). A row in the same database is committed with the audit record
of the request that queued it, survives restarts with the registry, and is claimed atomically:

- PostgreSQL: ``SELECT id ... FOR UPDATE SKIP LOCKED LIMIT 1`` then ``UPDATE`` in one transaction (concurrent
  workers never wait for, nor take, the same row);
- both: the ``UPDATE ... WHERE id = :id AND state = 'queued'`` is a compare-and-set (on SQLite the database
  write lock serialises it): a worker owns the job only when its update changed one row.

A running job carries its worker (``host:pid``) and a heartbeat; :func:`recover_stale` marks ``failed`` (with
the reason) a running job whose worker's process is gone (same host) or whose heartbeat is older than the lease.
Every state change is one conditional ``UPDATE``; final states (done, failed, cancelled) are never left.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from osteoplan.errors import InputError, NotFoundError
from osteoplan.workflow import models as m

#: Stages of a planning job, in order, with the words shown on the page.
STAGES: tuple[tuple[str, str], ...] = (
    ("retrieve", "retrieving the CT from the PACS"),
    ("deid", "de-identifying the upload"),
    ("read", "reading the CT"),
    ("anatomy", "building the anatomy"),
    ("risk", "fracture risk"),
    ("search", "searching the trajectories"),
    ("exports", "writing the plan, report and images"),
    ("save", "attaching the plan to the lesion"),
)
#: Kinds of job (``PlanJob.options["kind"]``, default "plan"): each has its runner in
#: :data:`osteoplan.faces.worker.JOB_RUNNERS` and its stages here (a kind not listed shows :data:`STAGES`).
DEFAULT_KIND = "plan"
KIND_STAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "plan": STAGES,
    "pacs_store": (("store_build", "building the SEG, SR and PDF report objects"),
                   ("store_send", "sending them to the PACS (STOW-RS)"),
                   ("store_check", "finding them again in the PACS (QIDO-RS)")),
}
STAGE_LABELS: dict[str, str] = {k: v for stages in KIND_STAGES.values() for k, v in stages}


def kind_of(job: m.PlanJob) -> str:
    """The job's kind: ``options["kind"]``, default :data:`DEFAULT_KIND` (jobs queued before kinds existed)."""
    return str((job.options or {}).get("kind") or DEFAULT_KIND)
FINAL_STATES: tuple[str, ...] = ("done", "failed", "cancelled")
#: Job kinds other than a plan (``options["kind"]``): (the word for the job, its stage labels) in the reason a
#: stopped worker's job is failed with (:func:`recover_stale`).
KIND_WORDS: dict[str, tuple[str, dict[str, str]]] = {
    "verify": ("check", {"retrieve": "retrieving the control CT from the PACS",
                         "deid": "de-identifying the control CT",
                         "read": "reading the plan and the control CT",
                         "measure": "registering, finding the instrument, measuring",
                         "images": "drawing planned vs actual", "save": "storing the figures with the procedure"}),
}
#: Seconds without a heartbeat after which a running job is declared failed (configurable default, no published
#: source: 15 heartbeats at the worker's 2 s interval).
DEFAULT_LEASE_S = 30.0


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def worker_id() -> str:
    """``host:pid`` of this process (names the worker owning a running job)."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}"


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    if t is not None and t.tzinfo is None:  # SQLite returns naive datetimes (stored as UTC)
        return t.replace(tzinfo=dt.timezone.utc)
    return t


# ----------------------------------------------------------------------------------------------- requests side
def enqueue(session: Session, actor: m.User | None, lesion_id: int, protocol: str, side: str | None = None,
            options: Mapping[str, Any] | None = None) -> m.PlanJob:
    """Queue a planning job for a lesion (audited); the caller commits, then fills ``work_dir`` and the CT.

    Parameters
    ----------
    session : Session
    actor : User or None
        Who starts the plan (None: the system, e.g. the demo seed).
    lesion_id : int
    protocol : str
        Protocol name (a file of ``osteoplan/planning/protocols``), passed to ``osteoplan plan --protocol``.
    side : {"left", "right", "best"} or None
        None: the protocol's default.
    options : mapping
        ``ct`` (path of the CT input, set by the caller once the upload is on disk), ``deid`` (bool: de-identify
        a DICOM upload first), ``report`` (bool: report, images and DICOM outputs), ``source`` ("upload", "pacs"...).

    Raises
    ------
    NotFoundError
        No such lesion (or it was deleted).
    InputError
        *side* not one of left/right/best.
    """
    from osteoplan.workflow.service import audit

    if side not in (None, "left", "right", "best"):
        raise InputError("side: choose left, right or best")
    lesion = session.get(m.Lesion, lesion_id)
    if lesion is None or lesion.deleted_at is not None:
        raise NotFoundError(f"no lesion {lesion_id}")
    job = m.PlanJob(patient_id=lesion.patient_id, lesion_id=lesion.id, protocol=protocol, side=side,
                    options=dict(options or {}), state="queued", stages_done=[], cancel_requested=False,
                    attempts=0, created_by=actor.username if actor is not None else "system")
    session.add(job)
    session.flush()
    audit(session, actor, "create", "plan_job", job.id, patient_id=lesion.patient_id,
          detail={"protocol": protocol, "side": side, "source": (options or {}).get("source")})
    return job


def get_job(session: Session, job_id: int, patient_id: int | None = None) -> m.PlanJob:
    """The job *job_id* (of case *patient_id* when given). Raises NotFoundError."""
    job = session.get(m.PlanJob, job_id)
    if job is None or (patient_id is not None and job.patient_id != patient_id):
        raise NotFoundError(f"no planning job {job_id} on this case")
    return job


def jobs_for_case(session: Session, patient_id: int) -> list[m.PlanJob]:
    """The case's planning jobs, newest first."""
    return list(session.scalars(select(m.PlanJob).where(m.PlanJob.patient_id == patient_id)
                                .order_by(m.PlanJob.id.desc())))


def job_for_plan(session: Session, saved_plan_id: int) -> m.PlanJob | None:
    """The job that made the saved plan *saved_plan_id* (None for an uploaded plan.json)."""
    return session.scalar(select(m.PlanJob).where(m.PlanJob.saved_plan_id == saved_plan_id))


#: Options copied to a job started again (:func:`requeue`): what it needs to fetch its input again, nothing it wrote.
REQUEUE_OPTIONS: tuple[str, ...] = ("kind", "source", "study_uid", "series_uid", "ct", "format", "deid", "report",
                                    "identity_verified_on", "identity_confirmed_by_user", "saved_plan_id",
                                    "pacs_retrieve")


def can_requeue(job: m.PlanJob) -> bool:
    """Whether *job* can be started again as is: it failed or was cancelled, and its input is fetched again by the
    worker (a CT from the PACS, a results store); an uploaded CT must be uploaded again."""
    opts = job.options or {}
    return job.state in ("failed", "cancelled") and (kind_of(job) == "pacs_store" or bool(opts.get("pacs_retrieve")))


def requeue(session: Session, actor: m.User | None, job: m.PlanJob) -> m.PlanJob:
    """Start a failed or cancelled job again: a new queued job with the same lesion, protocol, side and input
    (:data:`REQUEUE_OPTIONS`); the old one keeps its final state and error (final states are never left).
    Audited; the caller commits and gives the new job its folder when its kind needs one.

    Raises
    ------
    InputError
        The job is not final, or its input cannot be fetched again (see :func:`can_requeue`).
    """
    from osteoplan.workflow.service import audit

    if not can_requeue(job):
        raise InputError("this job cannot be started again as is: only a failed or cancelled job whose CT comes "
                         "from the PACS, or a results store, can; start a new plan")
    opts = {k: v for k, v in (job.options or {}).items() if k in REQUEUE_OPTIONS}
    if (job.options or {}).get("ct_received"):  # the CT was de-identified into a copy: fetch it under its first name
        opts["ct"] = job.options["ct_received"]
    new = enqueue(session, actor, job.lesion_id, job.protocol, job.side, opts)
    audit(session, actor, "update", "plan_job", job.id, patient_id=job.patient_id, detail={"requeued_as": new.id})
    return new


def enqueue_results_store(session: Session, actor: m.User | None, saved_plan_id: int) -> m.PlanJob:
    """Queue the storing of a saved plan's results in the PACS (job kind ``pacs_store``): its DICOM SEG,
    Comprehensive 3D SR and PDF report (Encapsulated PDF), all referencing the planning CT, sent by STOW-RS and then
    found again by QIDO-RS (:func:`osteoplan.faces.pacs_jobs.run_pacs_store`).

    Idempotent: while a store of this plan is queued or running, that job is returned; storing again later sends
    the same SOP Instance UIDs (derived from the plan), so the PACS keeps one copy of each. Audited; the caller
    commits. Called by the review page's "Send results to the PACS" button and, on approval, by the approve action.

    Parameters
    ----------
    session : Session
    actor : User or None
        Who asks (None: the system).
    saved_plan_id : int
        A plan made by a planning job (its plan folder holds the objects' sources).

    Returns
    -------
    PlanJob
        The queued (or already queued/running) store job; ``options["saved_plan_id"]`` names the plan.

    Raises
    ------
    NotFoundError
        No such saved plan (or it was deleted).
    InputError
        The plan was not made by a planning job here (an uploaded plan.json has no CT nor report to store).
    """
    plan = session.get(m.SavedPlan, saved_plan_id)
    if plan is None or getattr(plan, "deleted_at", None) is not None:
        raise NotFoundError(f"no saved plan {saved_plan_id}")
    maker = making_job(session, saved_plan_id)
    if maker is None or maker.state != "done" or not maker.work_dir:
        raise InputError("this plan was attached as a plan.json, not made here: it has no CT, SEG or report to "
                         "store in the PACS; plan on the CT in the web app first")
    for j in session.scalars(select(m.PlanJob).where(m.PlanJob.lesion_id == plan.lesion_id,
                                                     m.PlanJob.state.in_(("queued", "running")))):
        if kind_of(j) == "pacs_store" and (j.options or {}).get("saved_plan_id") == saved_plan_id:
            return j
    return enqueue(session, actor, plan.lesion_id, maker.protocol, maker.side,
                   {"kind": "pacs_store", "saved_plan_id": saved_plan_id, "source": "pacs"})


def making_job(session: Session, saved_plan_id: int) -> m.PlanJob | None:
    """The planning job whose plan folder holds the CT and label map of saved plan *saved_plan_id*: the job that made
    it, or for a version saved from the review page (:mod:`osteoplan.workflow.plan_versions`) the job that made the
    plan it is a version of; None for an uploaded plan.json."""
    job = job_for_plan(session, saved_plan_id)
    if job is None:
        from osteoplan.workflow.plan_versions import version_of

        row = version_of(session, saved_plan_id)
        if row is not None and row.root_plan_id != saved_plan_id:
            job = job_for_plan(session, row.root_plan_id)
    return job


def results_store_jobs(session: Session, saved_plan_id: int) -> list[m.PlanJob]:
    """The ``pacs_store`` jobs of a saved plan, newest first."""
    plan = session.get(m.SavedPlan, saved_plan_id)
    if plan is None:
        return []
    rows = session.scalars(select(m.PlanJob).where(m.PlanJob.lesion_id == plan.lesion_id)
                           .order_by(m.PlanJob.id.desc()))
    return [j for j in rows if kind_of(j) == "pacs_store" and (j.options or {}).get("saved_plan_id") == saved_plan_id]


def request_cancel(session: Session, actor: m.User | None, job: m.PlanJob) -> str:
    """Cancel *job*: a queued job is cancelled at once, a running one is asked to stop (its worker stops the
    planner, which leaves nothing half-written). Returns the job's state afterwards; a final state is left as is.
    Audited; the caller commits."""
    from osteoplan.workflow.service import audit

    now = utcnow()
    r = session.execute(update(m.PlanJob).where(m.PlanJob.id == job.id, m.PlanJob.state == "queued")
                        .values(state="cancelled", finished_at=now, error="cancelled before it started"))
    if r.rowcount == 0:
        session.execute(update(m.PlanJob).where(m.PlanJob.id == job.id, m.PlanJob.state == "running")
                        .values(cancel_requested=True))
    audit(session, actor, "update", "plan_job", job.id, patient_id=job.patient_id, detail={"cancel": True})
    session.flush()
    session.refresh(job)
    return job.state


# ----------------------------------------------------------------------------------------------- worker side
def claim_next(engine: Engine, worker: str, only: int | None = None) -> int | None:
    """Take the oldest queued job for *worker* (only job *only* when given: tests, a job run by hand); returns its
    id, or None when the queue is empty (or that job is not queued)."""
    with Session(engine) as s, s.begin():
        q = select(m.PlanJob.id).where(m.PlanJob.state == "queued").order_by(m.PlanJob.id).limit(1)
        if only is not None:
            q = q.where(m.PlanJob.id == only)
        if engine.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        job_id = s.scalar(q)
        if job_id is None:
            return None
        now = utcnow()
        r = s.execute(update(m.PlanJob).where(m.PlanJob.id == job_id, m.PlanJob.state == "queued")
                      .values(state="running", worker=worker, started_at=now, heartbeat_at=now,
                              attempts=m.PlanJob.attempts + 1, stage=None, stage_label=None))
        return job_id if r.rowcount == 1 else None


def heartbeat(engine: Engine, job_id: int, worker: str, *, stage: str | None = None, stage_label: str | None = None,
              stages_done: list[str] | None = None) -> bool:
    """Record that *worker* is alive on *job_id* (and its stage); returns True when a cancel was requested
    or the job is no longer this worker's (then the worker must stop)."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if stage is not None:
        values["stage"] = stage
        values["stage_label"] = (stage_label or STAGE_LABELS.get(stage, stage))[:200]
    if stages_done is not None:
        values["stages_done"] = list(stages_done)
    with Session(engine) as s, s.begin():
        r = s.execute(update(m.PlanJob).where(m.PlanJob.id == job_id, m.PlanJob.state == "running",
                                              m.PlanJob.worker == worker).values(**values))
        if r.rowcount == 0:
            return True
        return bool(s.scalar(select(m.PlanJob.cancel_requested).where(m.PlanJob.id == job_id)))


def finish(session: Session, job_id: int, worker: str, state: str, *, error: str | None = None,
           exit_code: int | None = None, verdict: str | None = None, saved_plan_id: int | None = None,
           stages_done: list[str] | None = None) -> bool:
    """Move *job_id* from running (by *worker*) to a final *state*; returns False when the job was no longer
    this worker's (declared failed meanwhile). The caller commits (with the saved plan, when there is one)."""
    if state not in FINAL_STATES:
        raise ValueError(f"not a final state: {state}")
    values: dict[str, Any] = {"state": state, "finished_at": utcnow(), "error": error, "exit_code": exit_code,
                              "verdict": verdict, "saved_plan_id": saved_plan_id}
    if stages_done is not None:
        values["stages_done"] = list(stages_done)
    if state == "done":
        values.update(stage=None, stage_label=None)
    r = session.execute(update(m.PlanJob).where(m.PlanJob.id == job_id, m.PlanJob.state == "running",
                                                m.PlanJob.worker == worker).values(**values))
    return r.rowcount == 1


def _process_gone(worker: str | None, host: str) -> bool:
    """Whether *worker* (``host:pid``) ran on *host* and its process no longer exists."""
    if not worker or ":" not in worker:
        return False
    w_host, _, pid = worker.rpartition(":")
    if w_host != host or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def recover_stale(engine: Engine, lease_s: float = DEFAULT_LEASE_S, now: dt.datetime | None = None) -> list[int]:
    """Mark ``failed`` (with the reason) every running job whose worker stopped; returns their ids.

    A worker stopped when its process is gone (checked for workers of this host: a worker killed, or the server
    restarted) or when its last heartbeat is older than *lease_s* seconds (any host). The job's plan folder is
    written atomically by the planner, so nothing half-written is left; the job can be started again.
    """
    now = now or utcnow()
    host = socket.gethostname()[:100]
    failed: list[int] = []
    with Session(engine) as s, s.begin():
        rows = s.execute(select(m.PlanJob.id, m.PlanJob.worker, m.PlanJob.heartbeat_at, m.PlanJob.stage,
                                m.PlanJob.options).where(m.PlanJob.state == "running")).all()
        for job_id, worker, beat, stage, options in rows:
            what = KIND_WORDS.get((options or {}).get("kind"), ("plan", STAGE_LABELS))
            beat = _aware(beat)
            if _process_gone(worker, host):
                why = "its worker process stopped (killed, or the server restarted)"
            elif beat is None or (now - beat).total_seconds() > lease_s:
                why = f"its worker sent no heartbeat for more than {lease_s:g} s (stopped or unreachable)"
            else:
                continue
            during = f" during '{what[1].get(stage, stage)}'" if stage else ""
            r = s.execute(update(m.PlanJob).where(m.PlanJob.id == job_id, m.PlanJob.state == "running",
                                                  m.PlanJob.worker == worker)
                          .values(state="failed", finished_at=now,
                                  error=f"The {what[0]} did not finish: {why}{during}; nothing was saved. "
                                        f"Start the {what[0]} again."))
            if r.rowcount == 1:
                failed.append(job_id)
    return failed
