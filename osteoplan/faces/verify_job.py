"""The worker's runner of control-CT checks (job kind ``"verify"``, issue 13).

A check is a :class:`~osteoplan.workflow.models.PlanJob` row whose ``options["kind"]`` is ``"verify"`` (no column
of its own: the queue, heartbeat, cancel and stale-worker recovery are the planning jobs'). Its options name the
plan folder to check against (``plan_dir``, written by the planning job that made the saved plan), the saved
plan and procedure (``saved_plan_id``, ``procedure_id``), the stage (``stage``: trocar, pin or screw) and the
control CT in the job's folder (``ct``, put there by the same CT sources as a plan: an upload or a PACS series,
identity-checked).

The runner runs the command line itself in a child process, as plan jobs run ``osteoplan plan``
(:func:`verify_argv`, THE one place the web app calls ``osteoplan verify``): the same reading, registration,
instrument detection, figures, refusals (one line, exit 2) and images. Its progress labels become the stages of
:data:`VERIFY_STAGES`; a cancel stops the child (SIGTERM); a killed worker leaves the job to
:func:`osteoplan.workflow.jobs.recover_stale` (failed, with the reason). When the child has written
``verify.json``, the figures are stored with the procedure (:func:`osteoplan.workflow.service.record_verification`)
in the transaction that marks the job done.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from osteoplan.errors import OsteoplanError
from osteoplan.remedies import for_face
from osteoplan.workflow import jobs as q
from osteoplan.workflow import models as m

log = logging.getLogger("osteoplan.worker")

#: Stages of a check, in order, with the words shown on its page.
VERIFY_STAGES: tuple[tuple[str, str], ...] = tuple(q.KIND_WORDS["verify"][1].items())
#: Exit status of ``osteoplan verify`` when the control CT was read but cannot be measured (registration
#: refused, no instrument, several instruments, target not covered): its one-line message is the job's error.
NOT_MEASURABLE_EXIT = 2


def verify_argv(plan_dir: Path, ct: Path, stage: str, out: Path) -> list[str]:
    """The ``osteoplan verify`` command of a check: THE one place the web app's jobs call it.

    Parameters
    ----------
    plan_dir : Path
        Plan folder (``plan.json``, its CT and segmentation) written by ``osteoplan plan``.
    ct : Path
        Control CT: DICOM folder or zip, or NIfTI file.
    stage : {"trocar", "pin", "screw"}
    out : Path
        Folder for ``verify.json``, ``verify.png`` and ``verify.html``.
    """
    return [sys.executable, "-m", "osteoplan.cli", "verify", str(plan_dir), str(ct), "--stage", stage, "--json",
            "--out", str(out)]


def verify_stage_of(label: str) -> str:
    """The stage of a check from an ``osteoplan verify`` progress label."""
    low = label.lower()
    if low.startswith("reading"):
        return "read"
    if "render" in low or "page" in low:
        return "images"
    return "measure"


def _progress(path: Path, done: list[str]):
    """A :class:`osteoplan.faces.worker._Progress` reading ``osteoplan verify``'s labels."""
    from osteoplan.faces import worker as w

    class _VerifyProgress(w._Progress):
        def poll(self) -> bool:
            changed = False
            for ev in self.events():
                st = verify_stage_of(str(ev.get("label", "")))
                if ev.get("event") == "start" and st != self.stage:
                    if self.stage and self.stage not in self.done:
                        self.done.append(self.stage)
                    self.stage, self.label, changed = st, dict(VERIFY_STAGES)[st], True
            return changed

    return _VerifyProgress(path, done)


def discard_identified_ct(work_dir: Path | None, opts: dict) -> None:
    """Delete a check's control CT as it was received (with the patient's identity, and a zip's original file
    names) when the check ends before it was de-identified: failed, cancelled, or its worker stopped. A check of an
    upload cannot be run again without uploading the CT again, and a PACS check retrieves its series again, so
    nothing is lost; a de-identified copy (``options["deidentified"]``) is left as it is."""
    import shutil

    if work_dir is None or opts.get("deidentified") or not opts.get("ct"):
        return
    ct = work_dir / str(opts["ct"])
    if ct.is_dir():
        shutil.rmtree(ct, ignore_errors=True)
    else:
        ct.unlink(missing_ok=True)


def summary_line(res: dict) -> str:
    """One line for the job list: where the instrument is against the plan (and the post-op grade)."""
    s = (f"{res['stage']}: tip {res['tip_to_plan_mm']:.1f} mm from the planned path, "
         f"{res['angle_to_plan_deg']:.1f} deg off it")
    po = res.get("postop")
    if po:
        s += (f"; entry error {po['entry_error_mm']:.1f} mm, tip error {po['tip_error_mm']:.1f} mm, angle error "
              f"{po['angle_error_deg']:.1f} deg; breach grade {po.get('grade') or 'not assessed'}")
    return s[:300]


def run_verify_job(engine: Engine, job_id: int, worker: str) -> str:
    """Run the claimed check *job_id* to a final state; returns it (``done``, ``failed`` or ``cancelled``)."""
    from osteoplan.faces import worker as w

    with Session(engine) as s:
        job = s.get(m.PlanJob, job_id)
        opts = dict(job.options or {})
        work_dir = Path(job.work_dir) if job.work_dir else None
        attempt, creator = job.attempts, job.created_by
    done: list[str] = []
    plan_dir = Path(opts.get("plan_dir") or "")
    stage = opts.get("stage")
    if work_dir is None or not opts.get("ct") or not (opts.get("pacs_retrieve") or (work_dir / opts["ct"]).exists()):
        w._finish(engine, job_id, worker, "failed",
                  error="The control CT is no longer on the server; start the check again with the CT.")
        return "failed"
    if not (plan_dir / "plan.json").is_file():
        w._finish(engine, job_id, worker, "failed",
                  error="The plan's folder (its CT and segmentation) is no longer on the server; the check needs it.")
        return "failed"
    try:
        if opts.get("pacs_retrieve") and not opts.get("deidentified"):
            from osteoplan.errors import PatientIdentityError
            from osteoplan.faces.pacs_jobs import JobCancelled, retrieve_ct

            try:
                opts = retrieve_ct(engine, job_id, worker, work_dir, opts)
            except JobCancelled:
                raise w.Cancelled() from None
            except (OsteoplanError, PatientIdentityError) as exc:
                w._finish(engine, job_id, worker, "failed", stages_done=done,
                          error=f"{str(exc)[:900]} The control CT was not retrieved; nothing was measured.")
                return "failed"
            done.append("retrieve")
        # the control CT is only needed for its image: its identity was checked against the case when it was
        # chosen, and only a de-identified copy stays in the job's folder (and reaches osteoplan verify's logs)
        try:
            ct, opts = w.deidentify_job_ct(engine, job_id, worker, work_dir, work_dir / opts["ct"], opts, attempt)
        except w._DeidFailed as exc:
            discard_identified_ct(work_dir, opts)
            w._finish(engine, job_id, worker, "failed", exit_code=exc.exit_code, stages_done=done,
                      error=f"The control CT could not be de-identified (it was deleted): {exc}")
            return "failed"
        done.append("deid")
        out = work_dir / f"verify-{attempt}"
        progress = _progress(work_dir / f"progress-{attempt}.jsonl", done)
        rc, err = w._run_child(engine, job_id, worker, verify_argv(plan_dir, ct, stage, out),
                               work_dir, f"verify-{attempt}", progress, "read")
        if rc != 0 or not (out / "verify.json").is_file():
            # the stage that was running did not produce its result: it is the failed one, never "done"
            failed_at = progress.stage or "read"
            q.heartbeat(engine, job_id, worker, stage=failed_at, stage_label=dict(VERIFY_STAGES)[failed_at])
            msg = err or ("the check was interrupted" if rc == 130 else f"the check stopped with exit status {rc}")
            msg = for_face(msg, "web")  # the command line's remedy (--allow-gaps...) said as the web app's
            w._finish(engine, job_id, worker, "failed", exit_code=rc, error=msg, stages_done=progress.done)
            return "failed"
        done = progress.done + ([progress.stage] if progress.stage and progress.stage not in progress.done else [])
        res = json.loads((out / "verify.json").read_text(encoding="utf-8"))
        from osteoplan.workflow import service as sv

        with Session(engine) as s, s.begin():
            actor = s.scalar(select(m.User).where(m.User.username == creator)) if creator else None
            v = sv.record_verification(s, actor, {
                "procedure_id": int(opts["procedure_id"]), "saved_plan_id": int(opts["saved_plan_id"]),
                "job_id": job_id, "result": res, "control_source": opts.get("source"),
                "control_series_uid": opts.get("series_uid")})
            j = s.get(m.PlanJob, job_id)
            j.options = {**opts, "verification_id": v.id, "out": out.name}
            if not q.finish(s, job_id, worker, "done", exit_code=rc, verdict=summary_line(res),
                            stages_done=done + ["save"]):
                raise RuntimeError("job taken from this worker")  # rolls the stored figures back
        return "done"
    except w.Cancelled:
        discard_identified_ct(work_dir, opts)
        w._finish(engine, job_id, worker, "cancelled", error="cancelled while running; nothing was stored",
                  stages_done=done)
        return "cancelled"
    except KeyboardInterrupt:
        discard_identified_ct(work_dir, opts)
        w._finish(engine, job_id, worker, "failed", stages_done=done,
                  error="The check did not finish: its worker was stopped (server shut down); nothing was stored. "
                        "Start the check again.")
        raise
    except OsteoplanError as exc:  # a refused record, a NIfTI that cannot be de-identified...: one line
        discard_identified_ct(work_dir, opts)
        w._finish(engine, job_id, worker, "failed", stages_done=done, error=str(exc))
        return "failed"
    except Exception as exc:  # one line, no data: the job fails, the worker goes on
        log.error("verification job %s: unexpected %s", job_id, type(exc).__name__)
        discard_identified_ct(work_dir, opts)
        w._finish(engine, job_id, worker, "failed", stages_done=done,
                  error=f"unexpected {type(exc).__name__} in the worker; nothing was stored. Start the check again.")
        return "failed"
