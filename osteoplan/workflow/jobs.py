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
    ("deid", "de-identifying the upload"),
    ("read", "reading the CT"),
    ("anatomy", "building the anatomy"),
    ("risk", "fracture risk"),
    ("search", "searching the trajectories"),
    ("exports", "writing the plan, report and images"),
    ("save", "attaching the plan to the lesion"),
)
STAGE_LABELS: dict[str, str] = dict(STAGES)
FINAL_STATES: tuple[str, ...] = ("done", "failed", "cancelled")
#: Job kinds other than a plan (``options["kind"]``): (the word for the job, its stage labels) in the reason a
#: stopped worker's job is failed with (:func:`recover_stale`).
KIND_WORDS: dict[str, tuple[str, dict[str, str]]] = {
    "verify": ("check", {"read": "reading the plan and the control CT",
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
def claim_next(engine: Engine, worker: str) -> int | None:
    """Take the oldest queued job for *worker*; returns its id, or None when the queue is empty."""
    with Session(engine) as s, s.begin():
        q = select(m.PlanJob.id).where(m.PlanJob.state == "queued").order_by(m.PlanJob.id).limit(1)
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
