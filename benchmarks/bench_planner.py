"""Benchmark the trajectory search on CThead: vectorised (numba) kernel vs a per-candidate Python loop.

Usage::

    .venv/bin/python benchmarks/bench_planner.py [--ct ../shared/data/cthead/ct.nii.gz] [--loop-subset 300]

Prints a table: candidates evaluated, seconds and candidates/s for

* the compiled kernel (:func:`osteoplan.planning.kernel.evaluate_candidates`) on >= 100,000 candidates
  (targets in the dens apex zone x a 1-degree direction grid, both sides), and
* the straightforward per-candidate Python loop (:func:`osteoplan.planning.kernel.evaluate_python`,
  same computation, scipy trilinear sampling) on a subset, extrapolated,

with the ratio, plus the wall time of the whole ``osteoplan plan CT --no-report`` (one process,
one core: ``NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
os.environ.setdefault("OSTEOPLAN_QUIET", "1")

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    root = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ct", default=str(root.parent / "shared" / "data" / "cthead" / "ct.nii.gz"))
    ap.add_argument("--loop-subset", type=int, default=300)
    ap.add_argument("--min-candidates", type=int, default=100_000)
    ap.add_argument("--no-plan", action="store_true", help="skip the whole `osteoplan plan` run at the end")
    ap.add_argument("--max-candidates", type=int, default=0,
                    help="evaluate at most this many candidates, drawn at random (0 = all; for smoke tests)")
    args = ap.parse_args(argv)

    from osteoplan.imaging import read_volume
    from osteoplan.anatomy.pipeline import build_anatomy
    from osteoplan.planning.protocol import load_protocol
    from osteoplan.planning.procedures.c2_dens import site_from_landmarks
    from osteoplan.planning.search import build_fields, directions, run_kernel, target_points

    proto = load_protocol()
    vol = read_volume(args.ct)
    t = time.perf_counter()
    an = build_anatomy(vol)
    t_anat = time.perf_counter() - t
    t = time.perf_counter()
    site = site_from_landmarks(an.landmarks, proto)
    fields, _, _ = build_fields(vol, an.labelmap, site, proto)
    t_fields = time.perf_counter() - t
    r_screw, r_instr = 1.75, max(proto.instruments.trocar_outer_diameter_mm, 3.5) / 2
    targets = target_points(fields, site, proto, r_screw)
    note = ""
    if len(targets) < 5:
        # throughput only: if the (changing) C2 segmentation leaves too few apex-zone targets, use
        # targets with a relaxed cortex margin so the benchmark still has >= 100,000 candidates
        relaxed = proto.model_copy(update={"target": proto.target.model_copy(update={"inside_cortex_min_mm": 0.5})})
        targets = target_points(fields, site, relaxed, 0.0)
        note = " (targets with a relaxed 0.5 mm cortex margin: too few strict apex-zone targets on this segmentation)"
    step = 1.0
    while True:
        dirs, _ = directions(proto, ["left", "right"], step_deg=step, site=site)
        if len(targets) * len(dirs) >= args.min_candidates or step < 0.2:
            break
        step *= 0.8
    T, D = len(targets), len(dirs)
    ct = np.repeat(np.arange(T), D)
    cd = np.tile(np.arange(D), T)
    if args.max_candidates and len(ct) > args.max_candidates:
        keep = np.sort(np.random.default_rng(1).choice(len(ct), size=args.max_candidates, replace=False))
        ct, cd = ct[keep], cd[keep]
    N = len(ct)
    # warm-up (numba compilation / cache load) on a few candidates
    run_kernel(fields, targets, dirs, ct[:10], cd[:10], proto, r_instr, r_screw, 1.0, site=site)
    t = time.perf_counter()
    ev = run_kernel(fields, targets, dirs, ct, cd, proto, r_instr, r_screw, 1.0, site=site)
    t_vec = time.perf_counter() - t
    # the same without the early exit on the entry rule (every candidate marched to the skin)
    t = time.perf_counter()
    run_kernel(fields, targets, dirs, ct, cd, proto, r_instr, r_screw, 1.0, site=None)
    t_vec_full = time.perf_counter() - t
    rng = np.random.default_rng(0)
    sub = rng.choice(N, size=min(args.loop_subset, N), replace=False)
    t = time.perf_counter()
    evp = run_kernel(fields, targets, dirs, ct[sub], cd[sub], proto, r_instr, r_screw, 1.0, python=True)
    t_loop = time.perf_counter() - t
    t = time.perf_counter()
    run_kernel(fields, targets, dirs, ct[sub], cd[sub], proto, r_instr, r_screw, 1.0, python=True, site=site)
    t_loop_early = time.perf_counter() - t
    evf = run_kernel(fields, targets, dirs, ct[sub], cd[sub], proto, r_instr, r_screw, 1.0, site=None)
    ok = evf.code == 0
    agree = float(np.abs(evf.clear[ok] - evp.clear[ok]).max()) if ok.any() else float("nan")

    rate_vec, rate_full, rate_loop = N / t_vec, N / t_vec_full, len(sub) / t_loop
    rate_loop_early = len(sub) / t_loop_early
    print(f"CT {Path(args.ct).name}: shape {vol.shape}, ROI {fields.shape}, {len(fields.structures)} distance maps; "
          f"{T} targets x {D} directions ({step:.2f} deg grid){note}")
    print(f"anatomy {t_anat:.2f} s, distance maps {t_fields:.2f} s (not in the rates below)\n")
    print("| mode | evaluator | candidates | seconds | candidates/s | ratio kernel / loop |")
    print("|---|---|---:|---:|---:|---:|")
    print(f"| entry-rule early exit (as planned) | numba kernel | {N:,} | {t_vec:.2f} | {rate_vec:,.0f} | {rate_vec / rate_loop_early:,.0f}x |")
    print(f"| entry-rule early exit (as planned) | Python loop, {len(sub)} random, extrapolated | {N:,} | "
          f"{N / rate_loop_early:,.0f} | {rate_loop_early:,.1f} | 1x |")
    print(f"| every candidate marched to the skin | numba kernel | {N:,} | {t_vec_full:.2f} | {rate_full:,.0f} | {rate_full / rate_loop:,.0f}x |")
    print(f"| every candidate marched to the skin | Python loop, {len(sub)} random, extrapolated | {N:,} | "
          f"{N / rate_loop:,.0f} | {rate_loop:,.1f} | 1x |")
    print(f"\nmax |clearance difference| numba vs loop on the subset: {agree:.2e} mm")

    if args.no_plan:
        return 0
    with tempfile.TemporaryDirectory() as td:
        out = Path(td) / "plan"
        cmd = [sys.executable, "-m", "osteoplan.cli", "plan", args.ct, "--out", str(out), "--no-report"]
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OSTEOPLAN_QUIET": "0"})
        t_cli = time.perf_counter() - t
        steps = [ln.strip() for ln in r.stderr.splitlines() if "done (" in ln]
    print(f"\nwhole `osteoplan plan {Path(args.ct).name} --no-report` (one core): {t_cli:.1f} s wall, exit {r.returncode}")
    for s in steps:
        print(f"  {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
