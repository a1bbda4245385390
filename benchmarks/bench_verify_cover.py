"""Registration match figures of correct and wrong-level registrations (issue 13: control CT not covering the target).

Correct cases: the same random control CTs as ``bench_verify.py`` (phantom and CThead, *N* trials each: patient
moved by 0-10 deg about the target and 0-20 mm, every other trial a shorter scan around the moved target),
registered by :func:`osteoplan.verification.register.register_control` with ``refuse=False``; reported: the
surface overlap (fraction matched within 2 mm), the median residual, the found target displacement and its error
against the truth.

Wrong-level cases: short control CTs (no patient motion) placed wholly below the target (``fov_z_mm`` 40-60 mm, the
target 15-110 mm above the scan's top), registered once with the plausible-motion bound (default) and once with
the unbounded search (``max_motion_mm=None``, what happens when the Frames of Reference differ): the outcome, the
overlap and median residual of the (necessarily wrong) registration.

Usage::

    .venv/bin/python benchmarks/bench_verify_cover.py [--trials 50] [--data phantom,cthead]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _control(volume, traj, k: int, seed0: int = 0):
    """The control CT of trial *k* of ``bench_verify.run_trials`` (same draws)."""
    from osteoplan.verification.geometry import apply
    from osteoplan.verification.synth import random_control_ct

    t = np.asarray(traj.target_lps_mm)
    seed = seed0 + k
    rng = np.random.default_rng([seed, 11])
    if k % 2 == 1:
        fov = float(rng.uniform(80, 120))
        _, truth = random_control_ct(volume, traj.skin_entry_lps_mm, traj.target_lps_mm, seed, streaks=False,
                                     fov_z_mm=fov, grid_centre_lps_mm=None, instrument=False)
        centre = apply(truth.control_from_planning, t) + [0, 0, rng.uniform(-15, 15)]
        return random_control_ct(volume, traj.skin_entry_lps_mm, traj.target_lps_mm, seed, fov_z_mm=fov,
                                 grid_centre_lps_mm=centre)
    return random_control_ct(volume, traj.skin_entry_lps_mm, traj.target_lps_mm, seed)


def run_correct(volume, traj, n: int) -> list[dict]:
    from osteoplan.errors import OsteoplanError
    from osteoplan.verification.geometry import apply
    from osteoplan.verification.register import register_control

    t = np.asarray(traj.target_lps_mm)
    rows = []
    for k in range(n):
        ctrl, truth = _control(volume, traj, k)
        true_shift = apply(truth.control_from_planning, t) - t
        try:
            r = register_control(volume, ctrl, t, refuse=False)
        except OsteoplanError as exc:
            rows.append({"k": k, "refused": str(exc)})
            continue
        rows.append({"k": k, "overlap": r.surface_overlap, "median_mm": r.residual_median_mm,
                     "shift_mm": float(np.linalg.norm(r.target_shift_lps_mm)),
                     "true_shift_mm": float(np.linalg.norm(true_shift)),
                     "shift_error_mm": float(np.linalg.norm(np.asarray(r.target_shift_lps_mm) - true_shift)),
                     "trusted": r.trusted})
        print(f"  {k}: overlap {r.surface_overlap:.3f} median {r.residual_median_mm:.2f} shift "
              f"{rows[-1]['shift_mm']:.1f} (true {rows[-1]['true_shift_mm']:.1f}, error "
              f"{rows[-1]['shift_error_mm']:.2f}) trusted {r.trusted}", file=sys.stderr, flush=True)
    return rows


def run_wrong_level(volume, traj) -> list[dict]:
    from osteoplan.errors import OsteoplanError
    from osteoplan.verification.register import register_control
    from osteoplan.verification.synth import make_control_ct

    t = np.asarray(traj.target_lps_mm)
    rows = []
    for i, (above_mm, fov) in enumerate([(15, 40), (25, 50), (40, 60), (60, 40), (80, 60), (110, 50)]):
        centre = t - [0, 0, above_mm + fov / 2]
        ctrl, _ = make_control_ct(volume, traj.skin_entry_lps_mm, traj.target_lps_mm, seed=100 + i, fov_z_mm=fov,
                                  grid_centre_lps_mm=centre, rotation_deg=0, translation_mm=0)
        row = {"above_mm": above_mm, "fov_z_mm": fov}
        for key, mm in (("bounded", 40.0), ("unbounded", None)):
            try:
                r = register_control(volume, ctrl, t, refuse=False, max_motion_mm=mm)
                row[key] = (f"{'TRUSTED' if r.trusted else 'untrusted'}: overlap {r.surface_overlap:.3f}, median "
                            f"{r.residual_median_mm:.2f} mm, shift {np.linalg.norm(r.target_shift_lps_mm):.1f} mm")
            except OsteoplanError as exc:
                row[key] = "refused: " + str(exc)[:60]
        print(f"  wrong level {row}", file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def main(argv=None) -> int:
    from bench_verify import cthead_case, phantom_case

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--data", default="phantom,cthead")
    ap.add_argument("--no-wrong", action="store_true")
    ap.add_argument("--no-correct", action="store_true")
    a = ap.parse_args(argv)
    for name in a.data.split(","):
        case = phantom_case() if name == "phantom" else cthead_case()
        if case is None:
            print(f"{name}: data not available", flush=True)
            continue
        vol, traj = case
        if not a.no_wrong:
            for row in run_wrong_level(vol, traj):
                print(name, "wrong level", row, flush=True)
        if not a.no_correct:
            rows = run_correct(vol, traj, a.trials)
            ok = [r for r in rows if "refused" not in r]
            ov = np.array([r["overlap"] for r in ok])
            md = np.array([r["median_mm"] for r in ok])
            se = np.array([r["shift_error_mm"] for r in ok])
            print(f"{name} correct: {len(ok)} registered, {len(rows) - len(ok)} refused "
                  f"({[r['refused'][:60] for r in rows if 'refused' in r]}), "
                  f"untrusted {sum(not r['trusted'] for r in ok)}; "
                  f"overlap min {ov.min():.3f} p5 {np.percentile(ov, 5):.3f} median {np.median(ov):.3f}; "
                  f"median residual max {md.max():.2f} p95 {np.percentile(md, 95):.2f} median {np.median(md):.2f} mm; "
                  f"target shift error max {se.max():.2f} mm; largest true shift "
                  f"{max(r['true_shift_mm'] for r in ok):.1f} mm, "
                  f"largest found {max(r['shift_mm'] for r in ok):.1f} mm",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
