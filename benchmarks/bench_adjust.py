"""Benchmark the review page's re-check of a moved trajectory (``POST /api/cases/{c}/plans/{p}/evaluate``).

Usage::

    .venv/bin/python benchmarks/bench_adjust.py [--moves 200] [--alt-moves 20] [--cthead-plan DIR] [--no-cthead]

For each plan — the neck phantom planned as ``osteoplan demo`` does (exact label map, default protocol) and CThead
planned by ``osteoplan plan ../shared/data/cthead/ct.nii.gz --no-report --protocol c2-dens-lateral`` (the anterior
route is not assessable on CThead: the scan stops above C6; or the plan folder given) — the plan
folder is attached to a case of a throw-away SQLite registry as a finished planning job, and:

* **the endpoint, through HTTP**: ``--moves`` random moves (one of the three points, a random direction, 1-3 mm,
  each from the plan's own points) are sent to the evaluate endpoint through the FastAPI ``TestClient`` (routing,
  bearer-token authentication, the audited read in the registry, JSON in/out; the client runs in the same process).
  The first call builds the plan's distance fields (reported apart); every later call uses the cached fields.
  Latency: wall time around each request, and the process CPU time over the same interval (client + server: the
  machine is shared, CPU time says what the work costs whatever the load).
* **the obvious alternative**: re-building the fields for every move (:func:`osteoplan.planning.recheck.build_context`
  with the CT and label map already in memory, then the same evaluation; no HTTP), on ``--alt-moves`` moves.

Prints p50 / p95 of wall and CPU milliseconds for both, and the share of moves answered 200 (a move may put the
target outside the bone or a point outside the image: 422, counted and timed too).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":  # one core when run as a script; NOT when a smoke test imports it: changing
    # NUMBA_NUM_THREADS after numba's thread pool was launched in the test process makes the next parallel call fail
    for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_v, "1")
os.environ.setdefault("OSTEOPLAN_QUIET", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _moves(plan, n: int, seed: int) -> list[dict]:
    """*n* request bodies: one point moved 1-3 mm in a random direction from the plan's own points."""
    rng = np.random.default_rng(seed)
    b = plan.best
    base = {"skin_entry": np.asarray(b.skin_entry_lps_mm), "bone_entry": np.asarray(b.bone_entry_lps_mm),
            "target": np.asarray(b.target_lps_mm)}
    out = []
    for _ in range(n):
        which = ("skin_entry", "bone_entry", "target")[int(rng.integers(3))]
        d = rng.normal(size=3)
        d *= rng.uniform(1.0, 3.0) / np.linalg.norm(d)
        pts = {k: v.copy() for k, v in base.items()}
        pts[which] = pts[which] + d
        out.append({"skin_entry_lps_mm": [round(float(x), 2) for x in pts["skin_entry"]],
                    "bone_entry_lps_mm": [round(float(x), 2) for x in pts["bone_entry"]],
                    "target_lps_mm": [round(float(x), 2) for x in pts["target"]],
                    "pivot": "skin_entry" if which == "skin_entry" else "bone_entry"})
    return out


def _pct(a, q) -> float:
    return float(np.percentile(np.asarray(a) * 1000.0, q)) if len(a) else float("nan")


def _phantom_folder(out: Path, spacing_mm: float | None, angle_step: float | None):
    from osteoplan.anatomy.phantom import PhantomParams, make_phantom
    from osteoplan.export import save_report_inputs
    from osteoplan.planning.model import save_plan
    from osteoplan.planning.planner import make_plan
    from osteoplan.planning.protocol import load_protocol

    ph = make_phantom(PhantomParams() if spacing_mm is None else PhantomParams(spacing_mm=spacing_mm))
    kw = {} if angle_step is None else {"angle_step_deg": angle_step}
    plan = make_plan(ph.volume, ph.truth, ph.landmarks, load_protocol(), lesion_mask=ph.truth.get("lesion"), **kw)
    out.mkdir(parents=True, exist_ok=True)
    save_report_inputs(out, plan, ph.volume, ph.truth)
    save_plan(plan, out / "plan.json")
    return plan


def _cthead_folder(out: Path, ct: Path, protocol: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "osteoplan.cli", "plan", str(ct), "--out", str(out), "--no-report",
                        "--protocol", protocol],
                       env=env, cwd=str(ROOT), capture_output=True, text=True)
    if r.returncode not in (0, 3, 4, 5) or not (out / "plan.json").is_file():
        raise SystemExit(f"osteoplan plan on CThead failed ({r.returncode}): {r.stderr[-500:]}")


def bench_one(name: str, folder: Path, n_moves: int, n_alt: int, seed: int = 0) -> dict:
    """Run the endpoint and the alternative on one plan folder; returns the figures."""
    from fastapi.testclient import TestClient

    from osteoplan.export import load_plan_dir
    from osteoplan.planning import recheck as R
    from osteoplan.web import backend
    from osteoplan.web.app import create_app
    from osteoplan.web.routers import adjust
    from osteoplan.web.settings import Settings
    from osteoplan.workflow import jobs as q
    from osteoplan.workflow import service as sv
    from osteoplan.workflow.db import session_factory, session_scope

    plan, volume, labelmap = load_plan_dir(folder)
    if plan.best is None:
        raise SystemExit(f"{name}: the plan has no trajectory ({plan.verdict.text_en if plan.verdict else '?'})")
    holder = tempfile.TemporaryDirectory(prefix="osteoplan-bench-adjust-")
    tmp = Path(holder.name)
    work = tmp / "job"
    work.mkdir()
    os.symlink(folder.resolve(), work / "plan-1")
    url = f"sqlite:///{tmp / 'registry.db'}"
    eng = backend.init_engine(url)
    with session_scope(session_factory(eng)) as s:
        backend.create_user(s, None, "radiologist", "bench-password-1", "radiologist", rounds=4)
        p = sv.create_patient(s, None, {"primary_cancer": "breast", "sex": "female"})
        les = sv.add_lesion(s, None, {"patient_id": p.id, "site_kind": "vertebra", "site": "C2", "lesion_type": "lytic"})
        saved = sv.attach_plan(s, None, {"lesion_id": les.id, "plan": plan.model_dump(mode="json"), "label": name})
        job = q.enqueue(s, None, les.id, plan.protocol_name, None, {"report": False})
        job.work_dir, job.state, job.attempts, job.saved_plan_id = str(work), "done", 1, saved.id
        case_id, plan_id = p.id, saved.id
    adjust._CACHE = None  # a cold server process
    app = create_app(Settings(database_url=url, secret_key="bench-" + "x" * 40), engine=eng)
    moves = _moves(plan, n_moves, seed)
    with TestClient(app) as c:
        tok = c.post("/api/token", json={"username": "radiologist", "password": "bench-password-1"}).json()
        c.headers["Authorization"] = f"Bearer {tok['access_token']}"
        ep = f"/api/cases/{case_id}/plans/{plan_id}/evaluate"
        b = plan.best
        first = {"skin_entry_lps_mm": list(b.skin_entry_lps_mm), "bone_entry_lps_mm": list(b.bone_entry_lps_mm),
                 "target_lps_mm": list(b.target_lps_mm)}
        t0, c0 = time.perf_counter(), time.process_time()
        r = c.post(ep, json=first)
        first_wall, first_cpu = time.perf_counter() - t0, time.process_time() - c0
        assert r.status_code == 200, r.text
        walls, cpus, codes = [], [], {}
        for body in moves:
            t0, c0 = time.perf_counter(), time.process_time()
            r = c.post(ep, json=body)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
    # the alternative: the fields re-built for every move (CT and label map in memory), then the same evaluation
    aw, ac = [], []
    for body in moves[:n_alt]:
        t0, c0 = time.perf_counter(), time.process_time()
        ctx = R.build_context(plan, volume, labelmap, 0)
        try:
            R.evaluate_trajectory(ctx, body["skin_entry_lps_mm"], body["bone_entry_lps_mm"], body["target_lps_mm"],
                                  pivot=body["pivot"])
        except Exception:  # the same moves: those the endpoint answered 422
            pass
        aw.append(time.perf_counter() - t0)
        ac.append(time.process_time() - c0)
    eng.dispose()
    holder.cleanup()
    return {"name": name, "shape": tuple(volume.shape), "spacing": tuple(round(float(x), 2) for x in volume.spacing_mm),
            "first_wall": first_wall, "first_cpu": first_cpu, "walls": walls, "cpus": cpus, "codes": codes,
            "alt_walls": aw, "alt_cpus": ac}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=200)
    ap.add_argument("--alt-moves", type=int, default=20, help="moves timed with the fields re-built per move")
    ap.add_argument("--ct", default=str(ROOT.parent / "shared" / "data" / "cthead" / "ct.nii.gz"))
    ap.add_argument("--cthead-plan", default=None, help="an existing CThead plan folder (else planned now)")
    ap.add_argument("--no-cthead", action="store_true")
    ap.add_argument("--cthead-protocol", default="c2-dens-lateral",
                    help="protocol of the CThead plan (the anterior route is not assessable on CThead)")
    ap.add_argument("--phantom-spacing", type=float, default=None, help="phantom voxel size (default: the demo's)")
    ap.add_argument("--angle-step", type=float, default=None, help="direction grid of the phantom plan (smoke tests)")
    args = ap.parse_args(argv)

    holder = tempfile.TemporaryDirectory(prefix="osteoplan-bench-adjust-plans-")
    tmp = Path(holder.name)
    rows = []
    _phantom_folder(tmp / "phantom", args.phantom_spacing, args.angle_step)
    rows.append(bench_one("phantom", tmp / "phantom", args.moves, args.alt_moves))
    if not args.no_cthead:
        if args.cthead_plan:
            folder = Path(args.cthead_plan)
        else:
            if not Path(args.ct).is_file():
                raise SystemExit(f"CThead not found at {args.ct}; give --ct or --no-cthead")
            folder = tmp / "cthead"
            _cthead_folder(folder, Path(args.ct), args.cthead_protocol)
        rows.append(bench_one("CThead", folder, args.moves, args.alt_moves, seed=1))
    print(f"\nRe-check of a moved trajectory: evaluate endpoint through the FastAPI TestClient (cached fields) vs "
          f"re-building the fields per move (function, no HTTP); ms; NUMBA/OMP threads = 1\n")
    print(f"{'plan':8} {'CT (k,j,i) / mm':28} {'first call':>16} {'moves':>6} {'200/422':>8} "
          f"{'p50 wall':>9} {'p95 wall':>9} {'p50 cpu':>8} {'p95 cpu':>8} | {'rebuild n':>9} {'p50 wall':>9} "
          f"{'p95 wall':>9} {'p50 cpu':>8} {'p95 cpu':>8} {'p95 ratio':>9}")
    for r in rows:
        ok, bad = r["codes"].get(200, 0), sum(v for k, v in r["codes"].items() if k != 200)
        ratio = _pct(r["alt_walls"], 95) / _pct(r["walls"], 95)
        print(f"{r['name']:8} {str(r['shape']) + ' ' + str(r['spacing']):28} "
              f"{r['first_wall'] * 1000:7.0f} / {r['first_cpu'] * 1000:6.0f} {len(r['walls']):6d} {ok:4d}/{bad:<3d} "
              f"{_pct(r['walls'], 50):9.1f} {_pct(r['walls'], 95):9.1f} {_pct(r['cpus'], 50):8.1f} "
              f"{_pct(r['cpus'], 95):8.1f} | {len(r['alt_walls']):9d} {_pct(r['alt_walls'], 50):9.0f} "
              f"{_pct(r['alt_walls'], 95):9.0f} {_pct(r['alt_cpus'], 50):8.0f} {_pct(r['alt_cpus'], 95):8.0f} "
              f"{ratio:8.0f}x")
    print("\n(first call: wall / cpu ms, reading the plan folder and building the fields; target p95 < 200 ms)")
    holder.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
