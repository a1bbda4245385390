"""Benchmark the trajectory search on CThead: the search's dense pass vs the exhaustive kernel, and the numba kernel
vs a per-candidate Python loop.

Usage::

    .venv/bin/python benchmarks/bench_planner.py [--ct ../shared/data/cthead/ct.nii.gz] [--loop-subset 300]
        [--protocols c2-dens-anterior c2-dens-lateral] [--search-repeats 5]

First table, per protocol, on the planner's own grid (every target x every direction of the protocol, the largest
screw diameter): CPU seconds (``time.process_time``, one thread, best and median of the repeats) and candidates/s of

* the exhaustive kernel: every candidate that passes the entry rule measured against every structure, candidates in
  target order (the dense pass before the gate), and
* the search's dense pass (:func:`osteoplan.planning.search.run_kernel_gated`: structures measured only within a
  step of the containment and tip-to-cortex rules, candidates in direction order),

then the whole one-diameter search (dense pass, assessment, refinement) both ways, and whether the best plans
(targets, directions, scores, clearances, containment of the chosen trajectories) and the dense pass's feasible
set are identical.

Second table: candidates evaluated, seconds and candidates/s for

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

if __name__ == "__main__":  # one core when run as a script; NOT when a smoke test imports it: changing
    # NUMBA_NUM_THREADS after numba's thread pool was launched in the test process makes the next parallel call fail
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
    ap.add_argument("--protocols", nargs="*", default=["c2-dens-anterior", "c2-dens-lateral"],
                    help="protocols of the search table (none: skip it)")
    ap.add_argument("--search-repeats", type=int, default=5)
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
    if args.protocols:
        search_table(vol, an, args.protocols, max(1, args.search_repeats))
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


def _cpu(fn, repeats: int) -> tuple[float, float, object]:
    """(best, median) CPU seconds of *fn* over *repeats* calls, and its last result."""
    ts, r = [], None
    for _ in range(repeats):
        t = time.process_time()
        r = fn()
        ts.append(time.process_time() - t)
    return min(ts), float(np.median(ts)), r


def _best_plans(res) -> list[tuple]:
    """What a plan takes from a search: per chosen trajectory, its target, direction, score, clearances, containment."""
    if res is None:
        return []
    ev, asm = res.fine, res.fine_assessment
    return [(int(ev.cand_t[c]), int(ev.cand_d[c]), float(asm.score[c]), tuple(np.round(ev.clear[c], 9)),
             float(ev.containment[c]), float(ev.s_skin[c])) for c in res.chosen]


def search_table(vol, an, protocols: list[str], repeats: int) -> None:
    """Print the search table (see the module docstring)."""
    from osteoplan.planning import search as S
    from osteoplan.planning.procedures.c2_dens import site_from_landmarks
    from osteoplan.planning.protocol import load_protocol

    rows = []
    for name in protocols:
        proto = load_protocol(name)
        site = site_from_landmarks(an.landmarks, proto)
        fields, _, _ = S.build_fields(vol, an.labelmap, site, proto)
        dirs, sign = S.directions(proto, ["left", "right"], site=site)
        diam = S.candidate_diameters(proto, site.width_limit_mm)[0]
        r_instr, r_screw = S.instrument_radii(proto, diam)
        targets = S.target_points(fields, site, proto, r_screw)
        T, D = len(targets), len(dirs)
        ct, cd = np.repeat(np.arange(T), D), np.tile(np.arange(D), T)
        N = len(ct)

        def exhaustive():
            return S._run_kernel(fields, targets, dirs, ct, cd, proto, r_instr, r_screw, 1.0, site=site, reorder=False)

        def gated():
            return S.run_kernel_gated(fields, targets, dirs, ct, cd, proto, r_instr, r_screw, 1.0, site, 1.0)

        gated()  # compilation / cache load
        e_best, e_med, ev_e = _cpu(exhaustive, repeats)
        g_best, g_med, ev_g = _cpu(gated, repeats)
        a_e = S.assess(ev_e, fields, targets, dirs, site, proto)
        a_g = S.assess(ev_g, fields, targets, dirs, site, proto)
        same_feas = bool(np.array_equal(a_e.feasible, a_g.feasible))
        args = (fields, site, proto, dirs, sign, diam, 1.0, 0.2, 300)
        se_best, _, res_e = _cpu(lambda: S._search_one(*args, exhaustive=True), max(1, repeats // 2))
        sg_best, _, res_g = _cpu(lambda: S._search_one(*args), max(1, repeats // 2))
        same = _best_plans(res_e) == _best_plans(res_g)
        rows.append((name, N, T, D, e_best, e_med, g_best, g_med, se_best, sg_best, same, same_feas,
                     int(a_g.feasible.sum()), int(ev_g.gated.sum()), len(_best_plans(res_g))))
    print(f"Search on {len(rows)} protocol(s), one thread, CPU time (time.process_time), best of {repeats} "
          "(median in brackets):\n")
    print("| protocol | candidates (targets x directions) | exhaustive kernel s | exhaustive cand/s | search dense pass s "
          "| search cand/s (exhaustive-equivalent) | speed-up | whole search: exhaustive s / gated s "
          "| identical best plans | identical feasible set (n) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for (name, N, T, D, eb, em, gb, gm, seb, sgb, same, same_feas, nf, ng, nplans) in rows:
        print(f"| {name} | {N:,} ({T} x {D}) | {eb:.3f} ({em:.3f}) | {N / eb:,.0f} | {gb:.3f} ({gm:.3f}) | "
              f"{N / gb:,.0f} | {eb / gb:.2f}x | {seb:.2f} / {sgb:.2f} | {'yes' if same else 'NO'} ({nplans} plans) | "
              f"{'yes' if same_feas else 'NO'} ({nf}) |")
    for (name, N, *_rest) in rows:
        print(f"{name}: identical best plans: {'yes' if _rest[8] else 'no'}; "
              f"{_rest[11]:,} of {N:,} candidates not measured against the structures (gated)")
    print()


if __name__ == "__main__":
    sys.exit(main())
