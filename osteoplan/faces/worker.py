"""The planning-job worker: takes queued jobs (:mod:`osteoplan.workflow.jobs`) and runs ``osteoplan plan`` on them.

Each job runs the command line itself in a child process (:func:`plan_argv`, the ONE place where the web app's
jobs call the planner): the same reading, anatomy, risk, search and plan folder as ``osteoplan plan``, the same
one-line errors and exit statuses, whatever the planner's internals become. The demo data set's jobs run ``osteoplan demo`` the same way (:func:`demo_argv`). The child's stages are followed
through ``OSTEOPLAN_PROGRESS_FILE`` (:mod:`osteoplan.progress`); the worker writes a heartbeat every
:data:`HEARTBEAT_S` seconds, stops the child on a cancel (SIGTERM: the command line cleans up like Ctrl-C,
its plan folder is written atomically so nothing half-written remains) and the child dies with the worker
(Linux ``PR_SET_PDEATHSIG``). When the child has written the plan folder, its ``plan.json`` is attached to the
lesion as a saved plan in the same transaction that marks the job done.

``osteoplan worker`` runs one worker (or ``--workers N`` processes); ``osteoplan serve`` starts them.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from osteoplan.errors import OsteoplanError
from osteoplan.remedies import for_face
from osteoplan.workflow import jobs as q
from osteoplan.workflow import models as m

log = logging.getLogger("osteoplan.worker")

#: Seconds between heartbeats / progress updates / cancel checks (configurable default, no published source).
HEARTBEAT_S = 1.0
#: Seconds a stopped child gets to clean up after SIGTERM before SIGKILL (configurable default).
TERM_GRACE_S = 20.0
#: Exit statuses of ``osteoplan plan`` for which the plan folder was written (osteoplan.planning.verdict).
PLAN_WRITTEN_EXIT = (0, 3, 4, 5)


def plan_argv(ct: Path, out: Path, protocol: str, side: str | None, report: bool,
              masks: Path | None = None) -> list[str]:
    """The ``osteoplan plan`` command of a job: THE one place the web app's jobs call the planner.

    Parameters
    ----------
    ct : Path
        DICOM folder or zip, or NIfTI file.
    out : Path
        Plan folder to write (must not exist).
    protocol : str
        Protocol name (``osteoplan/planning/protocols``).
    side : str or None
        ``left`` / ``right`` / ``best``; None for the protocol's default.
    report : bool
        Write the report, images and DICOM outputs (else ``--no-report``).
    masks : Path, optional
        Provided masks (``--masks``: a folder of NIfTI, a .seg.nrrd, a DICOM SEG...).
    """
    argv = [sys.executable, "-m", "osteoplan.cli", "plan", str(ct), "--out", str(out), "--protocol", protocol]
    if side:
        argv += ["--side", side]
    if not report:
        argv.append("--no-report")
    if masks is not None:
        argv += ["--masks", str(masks)]
    return argv


def demo_argv(out: Path, protocol: str, side: str | None, report: bool, segment: bool, seed: int = 0) -> list[str]:
    """The ``osteoplan demo`` command (the README's main job: plan on the generated neck phantom, with its exact
    label map, or ``--segment``-ed from its CT); the demo data set's plans are made with it."""
    argv = [sys.executable, "-m", "osteoplan.cli", "demo", "--out", str(out), "--protocol", protocol,
            "--seed", str(int(seed))]
    if side:
        argv += ["--side", side]
    if not report:
        argv.append("--no-report")
    if segment:
        argv.append("--segment")
    return argv


def deid_argv(src: Path, out: Path) -> list[str]:
    """The ``osteoplan deid`` command de-identifying an uploaded DICOM zip/folder into *out*."""
    return [sys.executable, "-m", "osteoplan.cli", "deid", str(src), str(out)]


#: Text fields of a NIfTI-1 header, which may hold free text (a converter can put the patient's name there).
NIFTI_TEXT_FIELDS: tuple[str, ...] = ("descrip", "aux_file", "intent_name", "db_name")


def deidentify_nifti(src: Path, dst: Path) -> None:
    """Copy a NIfTI CT to *dst* without its free-text header fields and header extensions (dcm2niix and other
    converters may store DICOM text, names included, there), written atomically; the image and its geometry are
    unchanged. A NIfTI holds no DICOM identity header: these are the places identifying text can hide.

    Raises
    ------
    osteoplan.errors.InputError
        *src* is not a readable NIfTI file.
    osteoplan.errors.DeidentificationError
        A text field or extension survived (checked on the written file).
    """
    import nibabel as nib

    from osteoplan.atomic import atomic_file
    from osteoplan.errors import DeidentificationError, InputError

    from osteoplan.imaging.io import gzip_stream_problem

    with open(src, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    bad = gzip_stream_problem(src) if gz else None
    if bad is not None:  # a copy damaged in transfer would be re-written as a sound file with wrong voxels
        raise InputError(f"The uploaded NIfTI file cannot be used: {bad}.")
    try:
        img = nib.load(str(src))
        data = img.dataobj
        hdr = img.header.copy()
    except Exception:
        raise InputError("The uploaded NIfTI file cannot be read; export the CT again.") from None
    for f in NIFTI_TEXT_FIELDS:
        if f in hdr:
            hdr[f] = b""
    hdr.extensions.clear()
    out = nib.Nifti1Image(data, img.affine, hdr)
    suffix = ".nii.gz" if str(dst).endswith(".gz") else ".nii"
    with atomic_file(dst, "wb") as fh:
        fh.write(out.to_bytes() if suffix == ".nii" else gzip.compress(out.to_bytes(), 6))
    check = nib.load(str(dst))
    if any(bytes(check.header[f]).strip(b"\0 ") for f in NIFTI_TEXT_FIELDS if f in check.header) \
            or len(check.header.extensions):
        dst.unlink(missing_ok=True)
        raise DeidentificationError("a NIfTI header text field survived de-identification; nothing was kept")


class _DeidFailed(OsteoplanError):
    """De-identification of a job's CT failed (its one-line message; the child's exit status when it ran)."""

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        self.exit_code = exit_code


def deidentify_job_ct(engine: Engine, job_id: int, worker: str, work_dir: Path, ct: Path, opts: dict,
                      attempt: int) -> tuple[Path, dict]:
    """De-identify a job's CT in its folder and keep only the de-identified copy: THE one way the web app's jobs
    (plans with "de-identify" ticked, every control-CT check) strip identity from a CT they received.

    A DICOM zip or folder goes through ``osteoplan deid`` in a child process (:func:`deid_argv`: PS3.15 Annex E
    Basic Profile by dicognito, verified on the output) into ``ct-deid/``; a NIfTI file through
    :func:`deidentify_nifti` into ``ct-deid.nii.gz``. The received CT (with its identity and, in a zip, its
    original file names) is then deleted, and the job's options are saved with ``ct`` naming the copy and
    ``deidentified`` True. The job's stage is ``"deid"`` meanwhile.

    Parameters
    ----------
    ct : Path
        The received CT inside *work_dir* (``ct.zip``, ``ct-pacs/``, ``ct.nii[.gz]``).
    opts : dict
        The job's options (``format``: ``dicom`` or ``nifti``).
    attempt : int
        The job's attempt number (names the child's log files).

    Returns
    -------
    (Path, dict)
        The de-identified CT and the job's updated options.

    Raises
    ------
    _DeidFailed
        ``osteoplan deid`` failed (its one-line message); nothing de-identified is left. The received CT is still
        in the job's folder: the caller deletes it (:func:`discard_received_ct`).
    osteoplan.errors.InputError, osteoplan.errors.DeidentificationError
        A NIfTI that cannot be read, or a header text field that survived.
    """
    if opts.get("deidentified") and ct.exists():  # done by an earlier attempt of the job
        return ct, opts
    if opts.get("format") == "dicom":
        out = work_dir / "ct-deid"
        if out.exists():  # an earlier attempt's copy
            shutil.rmtree(out)
        rc, err = _run_child(engine, job_id, worker, deid_argv(ct, out), work_dir, f"deid-{attempt}", None, "deid")
        if rc != 0:
            shutil.rmtree(out, ignore_errors=True)
            raise _DeidFailed(err or f"de-identification failed (exit status {rc}); nothing was saved.", rc)
        name = "ct-deid"
    else:
        q.heartbeat(engine, job_id, worker, stage="deid")
        name = "ct-deid.nii.gz"
        deidentify_nifti(ct, work_dir / name)
    if ct.is_dir():  # a series retrieved from the PACS (a folder of .dcm files)
        shutil.rmtree(ct, ignore_errors=True)
    else:
        ct.unlink(missing_ok=True)  # only the de-identified copy is kept
    # ct_received: the name the CT came under (a Retry of a PACS job retrieves into it again, never into the copy's)
    opts = {**opts, "ct": name, "deidentified": True, "ct_received": opts.get("ct_received") or ct.name}
    with Session(engine) as s, s.begin():
        s.get(m.PlanJob, job_id).options = opts
    return work_dir / name, opts


def discard_received_ct(work_dir: Path | None, opts: dict) -> str:
    """Delete a job's CT as it was received (an upload with the patient's identity and a zip's original file names,
    or a series retrieved from the PACS) when the job ends without a result before it was de-identified, or whatever
    happened when it was not to be de-identified: failed, cancelled (queued or running), or its worker stopped.

    Such a CT is never used again: a plan or check of an upload cannot be started again without uploading the CT
    again (:func:`osteoplan.workflow.jobs.can_requeue`), and a Retry of a PACS job retrieves the series again into a
    fresh folder; so no identified CT stays on the server for a job that gave nothing. A de-identified copy
    (``options["deidentified"]``) is left as it is.

    Parameters
    ----------
    work_dir : Path or None
        The job's folder.
    opts : dict
        The job's options (``ct``, ``deidentified``, ``pacs_retrieve``, ``kind``).

    Returns
    -------
    str
        One sentence for the job's error saying what was deleted and what to do ("" when nothing was deleted).
    """
    if work_dir is None or opts.get("deidentified") or not opts.get("ct"):
        return ""
    ct = work_dir / str(opts["ct"])
    if not ct.exists():
        return ""
    if ct.is_dir():
        shutil.rmtree(ct, ignore_errors=True)
    else:
        ct.unlink(missing_ok=True)
    what = "check" if opts.get("kind") == "verify" else "plan"
    if opts.get("pacs_retrieve"):  # a plan's Retry retrieves it again; a check is started again from its page
        again = "Retry retrieves it again." if what == "plan" else "start the check again to retrieve it again."
        return f"The CT retrieved from the PACS was deleted (not kept for a job without result); {again}"
    return (f"The uploaded CT was deleted (an identified CT is not kept for a job without result): upload it again "
            f"to start the {what} again.")


def _end_without_result(engine: Engine, job_id: int, worker: str, state: str, work_dir: Path | None, opts: dict,
                        error: str, **kw) -> None:
    """End a job ``failed`` / ``cancelled``: its received CT deleted (:func:`discard_received_ct`), the error line
    saying so."""
    note = discard_received_ct(work_dir, opts)
    _finish(engine, job_id, worker, state, error=f"{error.rstrip()} {note}" if note else error, **kw)


def discard_after_stopped_worker(engine: Engine, job_ids: list[int]) -> None:
    """After :func:`osteoplan.workflow.jobs.recover_stale` failed *job_ids* (their worker stopped): delete their
    received CTs (:func:`discard_received_ct`) and add that to their error line."""
    for jid in job_ids:
        with Session(engine) as s, s.begin():
            job = s.get(m.PlanJob, jid)
            if job is None or job.state != "failed":
                continue
            note = discard_received_ct(Path(job.work_dir) if job.work_dir else None, dict(job.options or {}))
            if note:
                job.error = f"{(job.error or '').rstrip()} {note}"


def stage_of(label: str, searched: bool) -> str:
    """The job stage of an ``osteoplan plan`` progress label (after the search, everything is an export)."""
    low = label.lower()
    if searched:
        return "exports"
    if low.startswith("reading the ct") or "phantom (ct" in low:
        return "read"
    if "anatomy" in low or "segment" in low:
        return "anatomy"
    if "risk" in low:
        return "risk"
    if "trajectory" in low or "search" in low:
        return "search"
    return "exports"


class _Progress:
    """Follows an ``OSTEOPLAN_PROGRESS_FILE`` and turns its steps into job stages."""

    def __init__(self, path: Path, done: list[str]):
        self.path = path
        self.pos = 0
        self.stage: str | None = None
        self.label: str | None = None
        self.done = list(done)
        self.searched = False

    def events(self) -> list[dict]:
        """The complete JSON events written since the last call (a partial last line waits for the next call)."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                fh.seek(self.pos)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        lines = chunk.split("\n")
        self.pos += len(chunk) - len(lines[-1])
        out = []
        for line in lines[:-1]:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def poll(self) -> bool:
        """Read new events; True when the stage changed."""
        changed = False
        for ev in self.events():
            st = stage_of(str(ev.get("label", "")), self.searched)
            if ev.get("event") == "start":
                if self.stage and self.stage != st and self.stage not in self.done:
                    self.done.append(self.stage)
                self.stage, self.label, changed = st, q.STAGE_LABELS.get(st, st), True
            elif ev.get("event") == "done" and st == "search":
                self.searched = True
        return changed


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Child set-up: receive SIGTERM when the worker dies (Linux), so no orphan planner keeps running."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Cancelled(Exception):
    """The job was cancelled (or taken from this worker) while its child ran."""


def _run_child(engine: Engine, job_id: int, worker: str, argv: list[str], work_dir: Path, name: str,
               progress: _Progress | None, fixed_stage: str | None) -> tuple[int, str]:
    """Run *argv* for the job, heartbeating; returns (exit status, the child's last ``error:`` line or '')."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("OSTEOPLAN_QUIET", None)
    if progress is not None:
        env["OSTEOPLAN_PROGRESS_FILE"] = str(progress.path)
    out_log = work_dir / f"{name}.out.txt"
    err_log = work_dir / f"{name}.err.txt"
    if fixed_stage is not None:
        q.heartbeat(engine, job_id, worker, stage=fixed_stage)
    with open(out_log, "wb") as fo, open(err_log, "wb") as fe:
        child = subprocess.Popen(argv, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, env=env, cwd=str(work_dir),
                                 preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        cancelled = False
        try:
            while True:
                try:
                    rc = child.wait(timeout=HEARTBEAT_S)
                    break
                except subprocess.TimeoutExpired:
                    pass
                kw = {}
                if progress is not None and progress.poll():
                    kw = {"stage": progress.stage, "stages_done": progress.done}
                if q.heartbeat(engine, job_id, worker, **kw) and not cancelled:
                    cancelled = True
                    child.send_signal(signal.SIGTERM)  # the CLI cleans up like Ctrl-C (exit 130)
                    try:
                        child.wait(timeout=TERM_GRACE_S)
                    except subprocess.TimeoutExpired:
                        child.kill()
        except BaseException:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=TERM_GRACE_S)
                except subprocess.TimeoutExpired:
                    child.kill()
            raise
    if progress is not None:
        progress.poll()
    if cancelled:
        raise Cancelled()
    return rc, _error_line(err_log)


def _error_line(err_log: Path) -> str:
    """The last ``error: ...`` line the command printed (its one-line message), without the prefix."""
    try:
        text = err_log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("error:")]
    return lines[-1][len("error:"):].strip()[:1000] if lines else ""


def _finish(engine: Engine, job_id: int, worker: str, state: str, **kw) -> None:
    with Session(engine) as s, s.begin():
        q.finish(s, job_id, worker, state, **kw)


#: Job kinds other than a plan (``PlanJob.options["kind"]``) -> "module:function" of their runner
#: ``run(engine, job_id, worker) -> final state``; a job without a kind is a plan (:func:`run_job`).
JOB_RUNNERS: dict[str, str] = {
    "verify": "osteoplan.faces.verify_job:run_verify_job",  # a control CT checked against the plan (issue 13)
    "pacs_store": "osteoplan.faces.pacs_jobs:run_pacs_store",  # a plan's SEG, SR, PDF stored in the PACS (issue 12)
}


def _runner_of(kind: str | None):
    """The runner of a job kind (None for a plan or an unknown kind)."""
    target = JOB_RUNNERS.get(kind or "")
    if target is None:
        return None
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def run_job(engine: Engine, job_id: int, worker: str) -> str:
    """Run the claimed job *job_id* to a final state; returns it (``done``, ``failed`` or ``cancelled``). A job of
    another kind goes to its runner (:data:`JOB_RUNNERS`); a plan whose CT was chosen in the PACS retrieves it first
    (:func:`osteoplan.faces.pacs_jobs.retrieve_ct`)."""
    with Session(engine) as s:
        job = s.get(m.PlanJob, job_id)
        opts = dict(job.options or {})
    runner = _runner_of(opts.get("kind"))
    if runner is not None:
        return runner(engine, job_id, worker)
    with Session(engine) as s:
        job = s.get(m.PlanJob, job_id)
        work_dir = Path(job.work_dir) if job.work_dir else None
        protocol, side, attempt, creator = job.protocol, job.side, job.attempts, job.created_by
    is_demo = opts.get("command") == "demo"
    if work_dir is None or not (opts.get("ct") or is_demo):
        _finish(engine, job_id, worker, "failed", error="The job has no CT; start the plan again with a CT.")
        return "failed"
    ct = work_dir / (opts.get("ct") or "")
    done: list[str] = []
    try:
        if opts.get("pacs_retrieve") and not is_demo:
            from osteoplan.errors import PatientIdentityError
            from osteoplan.faces.pacs_jobs import JobCancelled, retrieve_ct

            try:
                opts = retrieve_ct(engine, job_id, worker, work_dir, opts)
            except JobCancelled:
                raise Cancelled() from None
            except (OsteoplanError, PatientIdentityError) as exc:
                _end_without_result(engine, job_id, worker, "failed", work_dir, opts, stages_done=done,
                                    error=f"{str(exc)[:900]} The CT was not retrieved; nothing was planned. "
                                          "Retry the job.")
                return "failed"
            done.append("retrieve")
        if not is_demo and not ct.exists():
            _finish(engine, job_id, worker, "failed",
                    error="The job's CT is no longer on the server; start the plan again with the CT.")
            return "failed"
        if opts.get("deid") and not is_demo:
            try:
                ct, opts = deidentify_job_ct(engine, job_id, worker, work_dir, ct, opts, attempt)
            except _DeidFailed as exc:
                _end_without_result(engine, job_id, worker, "failed", work_dir, opts, exit_code=exc.exit_code,
                                    stages_done=done, error=f"The CT could not be de-identified: {exc}")
                return "failed"
            done.append("deid")
        out = work_dir / f"plan-{attempt}"
        progress = _Progress(work_dir / f"progress-{attempt}.jsonl", done)
        report = bool(opts.get("report", True))
        argv = (demo_argv(out, protocol, side, report, bool(opts.get("segment")), int(opts.get("seed") or 0))
                if is_demo else
                plan_argv(ct, out, protocol, side, report, work_dir / opts["masks"] if opts.get("masks") else None))
        rc, err = _run_child(engine, job_id, worker, argv, work_dir, f"plan-{attempt}", progress, "read")
        if rc not in PLAN_WRITTEN_EXIT or not (out / "plan.json").is_file():
            # the stage that was running did not produce its result: shown as the failed one, never as done
            if progress.stage:
                q.heartbeat(engine, job_id, worker, stage=progress.stage)
            msg = err or ("the planner was interrupted" if rc == 130 else f"the planner stopped with exit status {rc}")
            msg = for_face(msg, "web")  # the command line's remedy (--allow-gaps...) said as the web app's
            _end_without_result(engine, job_id, worker, "failed", work_dir, opts, exit_code=rc, error=msg,
                                stages_done=progress.done)
            return "failed"
        done = progress.done + ([progress.stage] if progress.stage and progress.stage not in progress.done else [])
        _attach(engine, job_id, worker, out, rc, creator, done)
        return "done"
    except Cancelled:
        _end_without_result(engine, job_id, worker, "cancelled", work_dir, opts,
                            error="cancelled while running; nothing was saved", stages_done=done)
        return "cancelled"
    except KeyboardInterrupt:  # the worker is being stopped (Ctrl-C, SIGTERM from osteoplan serve's shutdown)
        _end_without_result(engine, job_id, worker, "failed", work_dir, opts, stages_done=done,
                            error="The plan did not finish: its worker was stopped (server shut down); nothing was "
                                  "saved. Start the plan again.")
        raise
    except OsteoplanError as exc:  # the one-line message of a known problem (bad NIfTI, de-identification)
        _end_without_result(engine, job_id, worker, "failed", work_dir, opts, stages_done=done, error=str(exc))
        return "failed"
    except Exception as exc:  # one line, no data: the job fails, the worker goes on
        log.error("planning job %s: unexpected %s", job_id, type(exc).__name__)
        _end_without_result(engine, job_id, worker, "failed", work_dir, opts, stages_done=done,
                            error=f"unexpected {type(exc).__name__} in the worker; nothing was saved. "
                                  "Start the plan again.")
        return "failed"


def _attach(engine: Engine, job_id: int, worker: str, out: Path, rc: int, creator: str | None,
            done: list[str]) -> None:
    """Attach the plan folder's ``plan.json`` to the lesion and mark the job done, in one transaction."""
    from sqlalchemy import select

    from osteoplan.planning.model import load_plan
    from osteoplan.planning.verdict import verdict_of
    from osteoplan.workflow import service as sv

    content = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    verdict = verdict_of(load_plan(out / "plan.json")).text_en
    with Session(engine) as s, s.begin():
        job = s.get(m.PlanJob, job_id)
        actor = s.scalar(select(m.User).where(m.User.username == creator)) if creator else None
        plan = sv.attach_plan(s, actor, {"lesion_id": job.lesion_id, "plan": content,
                                         "label": f"job {job_id}: {job.protocol}"})
        if not q.finish(s, job_id, worker, "done", exit_code=rc, verdict=verdict[:300], saved_plan_id=plan.id,
                        stages_done=done + ["save"]):
            raise RuntimeError("job taken from this worker")  # rolls the saved plan back


def work_loop(engine: Engine, *, once: bool = False, poll_s: float = 1.0, lease_s: float = q.DEFAULT_LEASE_S,
              stop: list | None = None) -> int:
    """Claim and run jobs until stopped (or, with *once*, until the queue is empty); returns the jobs run."""
    worker = q.worker_id()
    n = 0
    last_recover = 0.0
    stop = stop if stop is not None else []
    while not stop:
        if time.monotonic() - last_recover > min(lease_s / 2, 10.0):
            stale = q.recover_stale(engine, lease_s)
            for jid in stale:
                log.warning("planning job %s: its worker stopped; marked failed", jid)
            discard_after_stopped_worker(engine, stale)  # no identified CT kept for them
            last_recover = time.monotonic()
        job_id = q.claim_next(engine, worker)
        if job_id is None:
            if once:
                break
            time.sleep(poll_s)
            continue
        run_job(engine, job_id, worker)
        n += 1
    return n


def run_workers(db_url: str, n: int = 1, *, once: bool = False, poll_s: float = 1.0,
                lease_s: float = q.DEFAULT_LEASE_S) -> int:
    """Run *n* worker processes on the registry *db_url* (this process when n == 1); returns an exit status."""
    from osteoplan.workflow.db import init_db, make_engine

    if n > 1:
        argv = [sys.executable, "-m", "osteoplan.cli", "worker", "--db", db_url, "--workers", "1",
                "--poll-s", str(poll_s), "--lease-s", str(lease_s)] + (["--once"] if once else [])
        procs = [subprocess.Popen(argv) for _ in range(n)]
        try:
            return max(p.wait() for p in procs)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=TERM_GRACE_S + 5)
                except subprocess.TimeoutExpired:
                    p.kill()
    engine = make_engine(db_url)
    try:
        init_db(engine)
        stop: list = []

        def _stop(signum, frame):  # finish the running job's bookkeeping, then leave
            stop.append(signum)
            raise KeyboardInterrupt

        old = signal.signal(signal.SIGTERM, _stop)
        try:
            work_loop(engine, once=once, poll_s=poll_s, lease_s=lease_s, stop=stop)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, old)
        return 0
    finally:
        engine.dispose()
