"""``osteoplan batch`` on a real 2-worker Dask LocalCluster: failures recorded, retries, a worker that dies,
resume; and the real ``plan`` task on tiny phantom cases, checked against ``osteoplan plan`` run directly."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from osteoplan.batch.cohort import Case  # noqa: E402
from osteoplan.batch.task import failure_record, read_record, running_marker, write_record  # noqa: E402

pytestmark = pytest.mark.slow  # a LocalCluster takes a few seconds to start


def _fake_task(case: Case, out: str, options: dict, attempt: int = 1) -> dict:
    """Stand-in for plan_case: 'bad' fails for good, 'flaky' raises once, 'dies' kills its worker once."""
    out_p = Path(out)
    with open(out_p / "calls.txt", "a") as fh:
        fh.write(f"{case.case_id} {attempt}\n")
    spec = case.spec_sha256(options)
    running = running_marker(out_p, case.case_id, attempt)
    running.parent.mkdir(parents=True, exist_ok=True)
    running.touch()
    if case.case_id == "bad":
        rec = failure_record(case, "InputError: the CT input (argument CT): not found", spec, attempt, False)
        write_record(out_p, rec)
        running.unlink()
        return rec
    if case.case_id == "flaky" and attempt == 1:
        running.unlink()  # an exception is not a lost worker (plan_case removes its marker in a finally)
        raise RuntimeError("transient")
    if case.case_id == "dies":
        flag = out_p / "died-once"
        if not flag.exists():
            flag.write_text("1")
            os._exit(1)  # the worker process dies in the middle of the case (as with kill -9)
    (out_p / case.case_id).mkdir(exist_ok=True)
    (out_p / case.case_id / "plan.json").write_text("{}")
    rec = {"case": case.case_id, "status": "planned", "verdict": "feasible", "exit_code": 0, "attempts": attempt,
           "spec_sha256": spec, "t_total_s": 0.01, "note": os.environ.get("NUMBA_NUM_THREADS", "unset")}
    write_record(out_p, rec)
    running.unlink()
    return rec


def _calls(out: Path) -> list[str]:
    return (out / "calls.txt").read_text().split("\n")[:-1]


def test_failures_retries_dead_worker_and_resume(tmp_path):
    import cloudpickle

    from osteoplan.batch.runner import run_batch

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    cases = [Case(n, f"/nowhere/{n}.nii.gz") for n in ("ok1", "bad", "flaky", "dies", "ok2")]
    out = tmp_path / "out"
    out.mkdir()
    res = run_batch(cases, out, {"protocol": None}, workers=2, retries=1, quiet=True, task=_fake_task,
                    memory_limit="1GiB")
    by = {r["case"]: r for r in res.records}
    assert [r["case"] for r in res.records] == ["ok1", "bad", "flaky", "dies", "ok2"]  # cohort order
    assert by["bad"]["status"] == "refused" and by["bad"]["error"].startswith("InputError")
    assert by["flaky"]["status"] == "planned" and by["flaky"]["attempts"] == 2  # retried once by the driver
    assert by["dies"]["status"] == "planned"  # its worker died; Dask ran it again on a live worker
    assert {r["note"][0] for r in res.records if r["status"] == "planned"} == {"1"}  # numba pinned to 1 thread
    assert by["dies"]["workers_lost"] == 1 and by["dies"]["note"] == "1; its worker died under it 1 time(s); run again by Dask"
    assert [r["case"] for r in res.records if r.get("workers_lost")] == ["dies"]
    assert [r["case"] for r in res.failed] == ["bad"] and res.skipped == 0 and res.workers == 2
    calls = _calls(out)
    # an input error is not retried by the driver (Dask itself may run a task again when the worker holding its
    # result died before the driver fetched it: tasks must be idempotent, as plan_case is)
    assert "bad 1" in calls and "bad 2" not in calls
    assert "flaky 1" in calls and "flaky 2" in calls and "flaky 3" not in calls
    assert read_record(out, "ok1")["status"] == "planned" and read_record(out, "bad", done=False) is not None
    assert read_record(out, "bad") is None

    # resume: the planned cases are skipped, the failed one runs again
    (out / "calls.txt").unlink()
    res2 = run_batch(cases, out, {"protocol": None}, workers=2, retries=1, quiet=True, task=_fake_task)
    assert res2.skipped == 4 and _calls(out) == ["bad 1"]
    assert [r["case"] for r in res2.records] == ["ok1", "bad", "flaky", "dies", "ok2"]
    # other options: the done markers no longer match, every case runs again
    (out / "calls.txt").unlink()
    res3 = run_batch(cases[:2], out, {"protocol": "c2-dens-lateral"}, workers=1, retries=0, quiet=True,
                     task=_fake_task)
    assert res3.skipped == 0 and sorted(_calls(out)) == ["bad 1", "ok1 1"]


def _phantom_cohort(root: Path) -> Path:
    """Two phantom cases (coarse 2 mm voxels: fast) and one unreadable CT."""
    from osteoplan.anatomy.phantom import PhantomParams, make_phantom
    from osteoplan.export import save_ct_nifti

    cohort = root / "cohort"
    for name, seed in (("s01", 0), ("s02", 1)):
        ph = make_phantom(PhantomParams(seed=seed, spacing_mm=2.0))
        (cohort / name).mkdir(parents=True)
        save_ct_nifti(cohort / name / "ct.nii.gz", ph.volume)
    (cohort / "s03").mkdir()
    (cohort / "s03" / "ct.nii.gz").write_bytes(b"not a nifti")
    return cohort


def test_batch_command_on_phantoms_matches_plan(tmp_path, capsys):
    """The real task: plan folders as `plan` writes them, the table agrees with plan.json and with a direct
    `osteoplan plan` of the same case; the broken case is recorded; a re-run skips the planned cases."""
    from osteoplan.cli import main
    from osteoplan.planning.model import load_plan
    from osteoplan.planning.verdict import verdict_of

    cohort = _phantom_cohort(tmp_path)
    out = tmp_path / "out"
    rc = main(["-q", "batch", str(cohort), "--out", str(out), "--workers", "2", "--no-report", "--no-risk"])
    text = capsys.readouterr().out
    assert rc == 1  # one case failed
    assert "BATCH: 3 case(s): 2 planned, 1 refused by plan (its one-line error), 0 failed" in text
    rows = {r["case"]: r for r in csv.DictReader(open(out / "results.csv"))}
    assert sorted(rows) == ["s01", "s02", "s03"]
    assert rows["s03"]["status"] == "refused" and rows["s03"]["error"].startswith("CorruptFileError")
    assert rows["s03"]["exit_code"] == "2"  # what `osteoplan plan` exits with on it
    assert not (out / "s03").exists()
    direct = tmp_path / "direct"
    rc1 = main(["-q", "plan", str(cohort / "s01" / "ct.nii.gz"), "--out", str(direct), "--no-report", "--no-risk"])
    p_direct = load_plan(direct / "plan.json")
    for name in ("s01", "s02"):
        plan = load_plan(out / name / "plan.json")
        assert (out / name / "ct.nii.gz").is_file()  # what --no-report keeps for 'osteoplan report'
        v = verdict_of(plan)
        assert rows[name]["verdict"] == v.code and int(rows[name]["exit_code"]) == v.exit_code
        if plan.best is not None:
            assert float(rows[name]["path_length_mm"]) == pytest.approx(plan.best.depth_total_mm, abs=1e-3)
            clear = [c for c in plan.best.clearances if c.clearance_mm is not None]
            m = min(clear, key=lambda c: c.clearance_mm)
            assert float(rows[name]["min_clearance_mm"]) == pytest.approx(m.clearance_mm, abs=1e-3)
            ties = sorted(c.structure for c in clear if c.clearance_mm == m.clearance_mm)  # e.g. airway = pharynx
            assert rows[name]["min_clearance_structure"] == ties[0]
        for stage in ("read", "anatomy", "search"):
            assert float(rows[name][f"t_{stage}_s"]) > 0
    a = json.loads(p_direct.to_json())
    b = json.loads(load_plan(out / "s01" / "plan.json").to_json())
    for volatile in ("created_utc", "search"):
        a.pop(volatile, None), b.pop(volatile, None)
    assert a == b and rc1 == int(rows["s01"]["exit_code"])  # the batch plans exactly as `plan` does
    # resume: nothing planned again (the done markers match), the broken case is tried again
    rc = main(["-q", "batch", str(cohort), "--out", str(out), "--workers", "2", "--no-report", "--no-risk"])
    text = capsys.readouterr().out
    assert rc == 1 and "(2 already done, kept)" in text


def test_existing_cluster_by_address(tmp_path):
    """--scheduler: the cases go to a cluster started elsewhere (here a 1-worker LocalCluster), which stays up."""
    import cloudpickle
    from distributed import Client, LocalCluster

    from osteoplan.batch.runner import run_batch

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0") as cluster:
        cases = [Case(n, f"/nowhere/{n}.nii.gz") for n in ("a1", "a2", "bad")]
        res = run_batch(cases, tmp_path, {}, scheduler=cluster.scheduler_address, quiet=True, task=_fake_task)
        assert [r["status"] for r in res.records] == ["planned", "planned", "refused"] and res.workers == 1
        with Client(cluster.scheduler_address) as c:  # the site's cluster is not closed by the batch
            assert len(c.scheduler_info()["workers"]) == 1
