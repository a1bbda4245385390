"""Run a cohort on Dask distributed: one task per case, failures recorded, retries, resume, progress.

By default a :class:`distributed.LocalCluster` of single-threaded worker processes is started (numba, OpenMP
and BLAS threads pinned to 1, a memory limit per worker: a worker that exceeds it is restarted by its nanny and
its case recorded as failed or retried); with ``scheduler`` an existing cluster is used (``dask scheduler`` +
``dask worker``, or dask-jobqueue / dask-kubernetes / SSHCluster: see the README).
"""

from __future__ import annotations

import logging
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from osteoplan.batch.cohort import Case
from osteoplan.batch.task import (BATCH_DIR, THREAD_ENV, describe_error, failure_record, plan_case, read_record,
                                  write_record)

__all__ = ["run_batch", "default_memory_limit", "BatchResult"]

#: Largest default memory per local worker (bytes): a 512 x 512 x 400 CT planned with every stage stays below it.
#: Configurable default (``--memory-limit``), no published source.
DEFAULT_MEMORY_PER_WORKER = 4 * 2**30


def default_memory_limit(n_workers: int) -> int:
    """Memory limit per local worker (bytes): 4 GiB, or less so that all workers fit in 90 % of the RAM."""
    import psutil

    total = psutil.virtual_memory().total
    return int(min(DEFAULT_MEMORY_PER_WORKER, 0.9 * total / max(1, n_workers)))


class BatchResult:
    """What :func:`run_batch` did: the records (one per case, cohort order), how many were skipped, the wall time."""

    def __init__(self, records: list[dict[str, Any]], skipped: int, wall_s: float, workers: int):
        self.records = records
        self.skipped = skipped
        self.wall_s = wall_s
        self.workers = workers

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") != "planned"]


class _Progress:
    """A one-line-per-case progress bar on stderr (silent when ``quiet``)."""

    def __init__(self, total: int, already: int, quiet: bool, stream=None):
        self.total, self.n, self.failed, self.quiet = total, already, 0, quiet
        self.t0 = time.perf_counter()
        self.started_at = already
        self.stream = stream or sys.stderr

    def update(self, rec: dict[str, Any], retrying: bool = False) -> None:
        if retrying:
            if not self.quiet:
                print(f"  {rec['case']}: failed ({str(rec.get('error'))[:90]}); retrying", file=self.stream, flush=True)
            return
        self.n += 1
        self.failed += rec.get("status") != "planned"
        if self.quiet:
            return
        width = 24
        done = int(width * self.n / max(1, self.total))
        el = time.perf_counter() - self.t0
        ran = self.n - self.started_at
        eta = el / ran * (self.total - self.n) if ran else float("nan")
        what = rec.get("verdict") or f"{str(rec.get('status')).upper()}: {rec.get('error')}"
        what = what if len(what) <= 90 else what[:87] + "..."  # the whole line is in the table
        t = rec.get("t_total_s")
        print(f"[{'#' * done}{'.' * (width - done)}] {self.n:>{len(str(self.total))}}/{self.total} "
              f"{rec['case']}: {what}" + ("" if t is None else f" ({t:.1f} s)")
              + f"  | not planned {self.failed}, elapsed {_hms(el)}, left ~{_hms(eta)}", file=self.stream, flush=True)


def _hms(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _start_client(workers: int, scheduler: str | None, memory_limit: int | str | None):
    """A Dask client on a new LocalCluster, or on the cluster at *scheduler*; and the cluster to close."""
    import dask
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)  # the driver's own Dask logs (workers: silence_logs)

    if scheduler:
        try:
            return Client(scheduler, timeout="30s"), None
        except (OSError, TimeoutError) as exc:
            from osteoplan.errors import InputError

            raise InputError(f"--scheduler: no Dask scheduler answered at that address ({type(exc).__name__}); "
                             "start it ('dask scheduler') or check the address (tcp://host:8786).") from None
    with dask.config.set({"distributed.nanny.pre-spawn-environ": dict(THREAD_ENV),
                          "distributed.admin.system-monitor.gil.enabled": False}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               memory_limit=memory_limit if memory_limit is not None else default_memory_limit(workers),
                               dashboard_address="127.0.0.1:0", env=dict(THREAD_ENV), silence_logs=logging.ERROR)
    return Client(cluster), cluster


def _clean_partial(out: Path, cases: Sequence[Case]) -> None:
    """Remove the temporary folders a killed worker left next to the plan folders (``.<case>.*.part``)."""
    for case in cases:
        for tmp in out.glob(f".{case.case_id}.*.part"):
            shutil.rmtree(tmp, ignore_errors=True)


def _note_interrupted(out: Path, records: dict[str, dict[str, Any]]) -> None:
    """Note, in their records, the cases whose worker died under them (running markers left behind)."""
    folder = out / BATCH_DIR / "running"
    if not folder.is_dir():
        return
    lost: dict[str, int] = {}
    for m in folder.iterdir():
        case_id = m.name.rsplit(".", 2)[0]
        lost[case_id] = lost.get(case_id, 0) + 1
        m.unlink(missing_ok=True)
    for case_id, n in lost.items():
        rec = records.get(case_id)
        if rec is None:
            continue
        what = f"its worker died under it {n} time(s); run again by Dask"
        rec["note"] = what if not rec.get("note") else f"{rec['note']}; {what}"
        rec["workers_lost"] = n
        write_record(out, rec)


def run_batch(cases: Sequence[Case], out: str | Path, options: dict[str, Any], *, workers: int = 2,
              scheduler: str | None = None, retries: int = 1, memory_limit: int | str | None = None,
              quiet: bool = False, task: Callable[..., dict[str, Any]] = plan_case) -> BatchResult:
    """Plan every case of a cohort on Dask, one task per case.

    Parameters
    ----------
    cases : sequence of Case
        From :func:`osteoplan.batch.read_cohort`.
    out : str or Path
        Output folder: plan folders ``out/<case>``, markers and logs under ``out/.batch``.
    options : dict
        Options of each case's ``plan`` run (:func:`osteoplan.batch.task.plan_argv`).
    workers : int
        Local worker processes (one thread each); ignored with *scheduler*.
    scheduler : str or None
        Address of an existing Dask scheduler (``tcp://host:8786``); None = start a LocalCluster.
    retries : int
        How many times a failed case is run again (failures other than osteoplan's own input/anatomy/planning
        errors, which would fail the same way: worker lost, memory limit, unexpected errors).
    memory_limit : int or str or None
        Memory per local worker (bytes or ``"3GiB"``); None = :func:`default_memory_limit`.
    quiet : bool
        No progress bar.
    task : callable
        The per-case function (``task(case, out, options, attempt) -> record``); :func:`plan_case` in use, a
        stand-in in tests of the machinery.

    Returns
    -------
    BatchResult
        Records of every case (the ones already done read back from their markers).
    """
    from distributed import as_completed

    import uuid

    out = Path(out).absolute()  # the workers may run in another folder (or host, with a shared file system)
    (out / BATCH_DIR).mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / BATCH_DIR / "running", ignore_errors=True)  # stale: from an earlier, interrupted batch
    token = uuid.uuid4().hex[:8]  # task keys unique to this batch: a shared cluster may run others' batches
    t0 = time.perf_counter()
    records: dict[str, dict[str, Any]] = {}
    todo: list[Case] = []
    for case in cases:
        rec = read_record(out, case.case_id, done=True)
        if (rec is not None and rec.get("spec_sha256") == case.spec_sha256(options)
                and (out / case.case_id / "plan.json").is_file()):
            records[case.case_id] = rec
        else:
            todo.append(case)
    skipped = len(records)
    bar = _Progress(len(cases), skipped, quiet)
    if not quiet and skipped:
        print(f"  {skipped} case(s) already done (kept; delete OUT/{BATCH_DIR}/done/<case>.json to redo one)",
              file=sys.stderr, flush=True)
    n_workers = workers
    if todo:
        client, cluster = _start_client(workers, scheduler, memory_limit)
        try:
            n_workers = len(client.scheduler_info().get("workers", {})) or workers
            pending: dict[Any, tuple[Case, int]] = {}

            def submit(case: Case, attempt: int):
                fut = client.submit(task, case, str(out), options, attempt, pure=False,
                                    key=f"plan-{case.case_id}-{attempt}-{token}")
                pending[fut] = (case, attempt)
                return fut

            ac = as_completed([submit(c, 1) for c in todo])
            for fut in ac:
                case, attempt = pending.pop(fut)
                try:
                    rec = fut.result()
                except Exception as exc:  # KilledWorker (memory limit, lost worker), cancelled, ...
                    msg, _, _ = describe_error(exc)
                    rec = failure_record(case, f"worker failure: {msg}", case.spec_sha256(options), attempt,
                                         True)
                    write_record(out, rec)
                fut.release()
                if rec.get("status") != "planned" and rec.get("retryable") and attempt <= retries:
                    bar.update(rec, retrying=True)
                    ac.add(submit(case, attempt + 1))
                    continue
                records[case.case_id] = rec
                bar.update(rec)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        _clean_partial(out, todo)
        _note_interrupted(out, records)
    ordered = [records[c.case_id] for c in cases if c.case_id in records]
    return BatchResult(ordered, skipped, time.perf_counter() - t0, n_workers)
