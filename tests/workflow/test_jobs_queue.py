"""The planning-job queue (osteoplan.workflow.jobs) on both backends: each queued job is claimed by exactly one
of several concurrent workers, in queue order; heartbeats, cancel and the lease recovery change only what they
should."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy.orm import Session

from osteoplan.workflow import jobs as q
from osteoplan.workflow import models as m
from osteoplan.workflow import service as sv


def _lesion(factory) -> int:
    s = factory()
    p = sv.create_patient(s, None, {"primary_cancer": "breast", "sex": "female"})
    les = sv.add_lesion(s, None, {"patient_id": p.id, "site_kind": "vertebra", "site": "C2", "lesion_type": "lytic"})
    s.commit()
    s.close()
    return les.id


def _queue(factory, lesion_id: int, n: int) -> list[int]:
    s = factory()
    ids = [q.enqueue(s, None, lesion_id, "c2-dens-anterior").id for _ in range(n)]
    s.commit()
    s.close()
    return ids


def test_concurrent_workers_claim_each_job_once(engine, factory):
    ids = _queue(factory, _lesion(factory), 12)
    claimed: dict[str, list[int]] = {}
    errors = []

    def work(name):
        mine = claimed.setdefault(name, [])
        try:
            while (job_id := q.claim_next(engine, name)) is not None:
                mine.append(job_id)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(f"host:{100 + i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    every = sorted(j for js in claimed.values() for j in js)
    assert every == ids  # each job once, none lost
    for name, js in claimed.items():
        assert js == sorted(js)  # each worker takes them in queue order
    with Session(engine) as s:
        rows = {j.id: j for j in s.query(m.PlanJob).filter(m.PlanJob.id.in_(ids))}
    for name, js in claimed.items():
        for j in js:
            assert rows[j].state == "running" and rows[j].worker == name and rows[j].attempts == 1


def test_heartbeat_cancel_finish_and_lease(engine, factory):
    a, b, c = _queue(factory, _lesion(factory), 3)
    assert q.claim_next(engine, "elsewhere:1") == a
    assert q.claim_next(engine, "elsewhere:2") == b
    # a heartbeat records the stage; another worker's heartbeat on the job is refused (it must stop)
    assert q.heartbeat(engine, a, "elsewhere:1", stage="search") is False
    assert q.heartbeat(engine, a, "elsewhere:9") is True
    # cancel: a running job is asked to stop (its next heartbeat says so), a queued one is cancelled at once
    s = factory()
    assert q.request_cancel(s, None, s.get(m.PlanJob, a)) == "running"
    assert q.request_cancel(s, None, s.get(m.PlanJob, c)) == "cancelled"
    s.commit()
    s.close()
    assert q.heartbeat(engine, a, "elsewhere:1") is True
    assert q.claim_next(engine, "elsewhere:3") is None  # c was cancelled: nothing left
    with Session(engine) as s, s.begin():
        assert q.finish(s, a, "elsewhere:1", "cancelled", error="stopped") is True
        assert q.finish(s, a, "elsewhere:1", "done") is False  # a final state is never left
    # lease: b's worker (another host: its process cannot be checked) sent its last heartbeat 31 s ago
    with Session(engine) as s, s.begin():
        s.get(m.PlanJob, b).heartbeat_at = q.utcnow() - dt.timedelta(seconds=31)
        s.get(m.PlanJob, b).stage = "exports"
    assert q.recover_stale(engine, lease_s=60) == []
    assert q.recover_stale(engine, lease_s=30) == [b]
    with Session(engine) as s:
        job = s.get(m.PlanJob, b)
        assert job.state == "failed"
        assert job.error == ("The plan did not finish: its worker sent no heartbeat for more than 30 s (stopped or "
                             "unreachable) during 'writing the plan, report and images'; nothing was saved. "
                             "Start the plan again.")
        assert s.get(m.PlanJob, a).state == "cancelled"


def test_worker_process_gone_on_this_host(engine, factory):
    """A running job whose worker process (this host) no longer exists is failed at once, heartbeat or not."""
    import subprocess
    import sys

    (a,) = _queue(factory, _lesion(factory), 1)
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    gone = q.worker_id().rpartition(":")[0] + f":{p.pid}"
    assert q.claim_next(engine, gone) == a
    assert q.recover_stale(engine, lease_s=3600) == [a]
    with Session(engine) as s:
        assert "worker process stopped" in s.get(m.PlanJob, a).error
