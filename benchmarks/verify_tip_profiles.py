"""Why a tip is off: the metal line density of one benchmark trial split into its parts, and the stated
uncertainty against the error over whole runs (figures of docs/verification.md, "Why the worst thin-wire
tips were off").

For a trial of :func:`bench_verify.run_trials` (same seeds, same field of view), the control CT is rebuilt
four times: as in the benchmark, without streaks and noise, without noise, and without the metal; ``q(s)`` is
measured on each along the TRUE axis (control frame, the benchmark's registration), as the plain excess, the
excess weighted across the axis, and the weighted metal fraction. Differences give the metal alone, the
streaks, the noise and the subtraction residual.

Usage::

    .venv/bin/python benchmarks/verify_tip_profiles.py --profiles OUT.png --before B0.json,B1000.json 11:0 1028:1000
    .venv/bin/python benchmarks/verify_tip_profiles.py --coverage OUT.png --runs before_0.json,after_0.json,...

(``SEED:SEED0``: the trial's seed and the first seed of its run; the JSON files are ``bench_verify.py
--rows-json`` outputs.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def trial_cts(volume, traj, seed: int, k: int, fov_every: int = 2) -> dict:
    """The benchmark's control CT of trial *k* (seed *seed*) and its variants (see module docstring)."""
    from osteoplan.verification.geometry import apply
    from osteoplan.verification.synth import make_control_ct

    rng = np.random.default_rng([seed, 11])
    fov = float(rng.uniform(80, 120)) if fov_every and k % fov_every == 1 else None
    r2 = np.random.default_rng([seed, 7])  # the draws of synth.random_control_ct, in its order
    params = dict(angle_deg=r2.uniform(0, 5), offset_mm=r2.uniform(0, 4), short_of_target_mm=r2.uniform(0, 15),
                  diameter_mm=r2.uniform(1, 3), rotation_deg=r2.uniform(0, 10), translation_mm=r2.uniform(0, 20))
    gc = None
    if fov is not None:
        _, truth = make_control_ct(volume, traj.skin_entry_lps_mm, traj.target_lps_mm, seed=seed, fov_z_mm=fov,
                                   streaks=False, noise_hu=0, **params)
        gc = apply(truth.control_from_planning, np.asarray(traj.target_lps_mm)) + [0, 0, rng.uniform(-15, 15)]
    out = {}
    for name, kws in (("full", {}), ("nostreak", dict(streaks=False, noise_hu=0)), ("streak", dict(noise_hu=0)),
                      ("empty", dict(streaks=False, noise_hu=0, instrument=False))):
        out[name] = make_control_ct(volume, traj.skin_entry_lps_mm, traj.target_lps_mm, seed=seed,
                                    grid_centre_lps_mm=gc, fov_z_mm=fov, **params, **kws)
    return out


def profiles(seed: int, seed0: int) -> dict:
    """q(s) of each variant and measure along the true axis of a CThead trial, with the tip found."""
    import bench_verify as bv

    from osteoplan.verification import instrument as ins
    from osteoplan.verification import verify_control
    from osteoplan.verification.geometry import apply

    volume, traj = bv.cthead_case()
    cts = trial_cts(volume, traj, seed, seed - seed0)
    ctrl, truth = cts["full"]
    res = verify_control(traj, volume, ctrl)
    P = np.asarray(res["registration"]["planning_from_control"])
    tip_c = truth.tip_control_lps_mm
    d_c = truth.control_from_planning[:3, :3] @ truth.direction_planning_unit
    sig = 0.5 * np.abs(ctrl.spacing_mm[::-1])
    Pp = np.eye(3) - np.outer(d_c, d_c)
    s_across = float(np.sqrt(np.linalg.eigvalsh(Pp @ np.diag(sig ** 2) @ Pp).max()))
    radius = max(1.5, 0.5 * truth.diameter_mm + 2 * s_across)
    w = float(np.hypot(0.25 * truth.diameter_mm, s_across))
    ss = np.arange(-14, 6, 0.1)
    out = {"ss": ss, "diameter_mm": truth.diameter_mm, "inclination_deg": float(np.degrees(np.arcsin(abs(d_c[2])))),
           "along_after_mm": float((apply(np.linalg.inv(P), np.asarray(res["tip_lps_mm"])) - tip_c) @ d_c),
           "stated_after_mm": res["tip_uncertainty_mm"]}
    for measure, kw in (("plain", {}), ("weighted", {"weight_sigma_mm": w}),
                        ("fraction", {"weight_sigma_mm": w, "metal_hu": 3000.0})):
        out[measure] = {n: ins._metal_line_density(cts[n][0], tip_c, d_c, ss, radius, 0.2, volume, P, **kw)[0]
                        for n in cts}
    return out


def plot_profiles(path: str, trials: list[tuple[int, int]], before: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(len(trials), 3, figsize=(18, 4.2 * len(trials)), squeeze=False)
    titles = {"plain": "before: excess (HU) integrated over the disc",
              "weighted": "excess weighted by the blurred cross-section",
              "fraction": "after: metal fraction = excess / (3000 - planning HU), weighted"}
    for row, (seed, seed0) in zip(axs, trials):
        z = profiles(seed, seed0)
        ss = z["ss"]
        for ax, measure in zip(row, ("plain", "weighted", "fraction")):
            q = z[measure]
            ax.plot(ss, q["full"], "k", lw=2, label="q measured (control CT - registered planning CT)")
            ax.plot(ss, q["nostreak"] - q["empty"], "b", label="metal alone (same CT without streaks and noise)")
            ax.plot(ss, q["empty"], "g", label="subtraction residual (same CT without metal)")
            ax.plot(ss, q["streak"] - q["nostreak"], "m", label="beam-hardening streaks")
            ax.plot(ss, q["full"] - q["streak"], "c", lw=0.7, label="noise")
            ax.axvline(0, color="r", ls="--", label="true tip")
            b = before.get(seed)
            if b is not None:
                lab = f"tip before ({b['tip_along_error_mm']:+.2f} mm, stated {b['tip_uncertainty_mm']:.2f})"
                ax.axvline(b["tip_along_error_mm"], color="orange", label=lab)
            if measure == "fraction":
                ax.axvline(z["along_after_mm"], color="purple",
                           label=f"tip after ({z['along_after_mm']:+.2f} mm, stated {z['stated_after_mm']:.2f})")
            ax.set_title(f"seed {seed}: {z['diameter_mm']:.2f} mm wire at {z['inclination_deg']:.0f} deg to the 2 mm "
                         f"slices\n{titles[measure]}", fontsize=9)
            ax.set_xlabel("s along the true axis from the true tip (mm; + = beyond)")
            ax.set_ylabel("mm^2 of metal" if measure == "fraction" else "HU mm^2")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6.5, loc="lower left")
    plt.tight_layout()
    plt.savefig(path, dpi=75)


def plot_coverage(path: str, runs: list[str]) -> None:
    """Signed tip error along the axis vs stated uncertainty (CThead), one panel per seed set; *runs* are
    pairs before_SEED.json, after_SEED.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(zip(runs[::2], runs[1::2]))
    fig, axs = plt.subplots(1, len(pairs), figsize=(6 * len(pairs), 5), squeeze=False)
    for ax, pair in zip(axs[0], pairs):
        for f, tag, col, mk in zip(pair, ("before", "after"), ("0.6", "tab:red"), ("o", "s")):
            r = [x for x in json.load(open(f))["cthead"] if "refused" not in x]
            u = np.array([x["tip_uncertainty_mm"] for x in r])
            a = np.array([x["tip_along_error_mm"] for x in r])
            d = np.array([x["diameter_mm"] for x in r])
            ax.scatter(u, a, s=12 + 25 * (d - 1), c=col, marker=mk,
                       label=f"{tag} (worst |error| {max(x['tip_error_mm'] for x in r):.2f} mm)")
        seeds = [x["seed"] for x in json.load(open(pair[0]))["cthead"]]
        g = np.linspace(0, 2, 10)
        for m, ls in ((1, "-"), (2, ":")):
            ax.plot(g, m * g, "k", ls=ls, lw=0.8, label=f"error = {m} x stated")
            ax.plot(g, -m * g, "k", ls=ls, lw=0.8)
        ax.axhline(1, color="b", lw=0.6)
        ax.axhline(-1, color="b", lw=0.6, label="+-1 mm (target)")
        ax.axvline(1, color="orange", lw=0.8, label="note threshold (stated > 1 mm)")
        ax.set_xlim(0, 2)
        ax.set_ylim(-1.6, 1.6)
        ax.set_xlabel("stated tip uncertainty (mm)")
        ax.set_ylabel("tip error along the axis (mm; + = beyond the true tip)")
        ax.set_title(f"CThead, 1 x 1 x 2 mm, seeds {min(seeds)}-{max(seeds)} (marker size: wire diameter 1-3 mm)",
                     fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    plt.tight_layout()
    plt.savefig(path, dpi=75)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", metavar="PNG")
    ap.add_argument("--before", default="", help="bench_verify --rows-json files of the previous code (comma)")
    ap.add_argument("--coverage", metavar="PNG")
    ap.add_argument("--runs", default="", help="before/after JSON pairs, comma-separated")
    ap.add_argument("trials", nargs="*", help="SEED:SEED0")
    args = ap.parse_args(argv)
    if args.profiles:
        before = {}
        for f in filter(None, args.before.split(",")):
            before.update({r["seed"]: r for r in json.load(open(f))["cthead"] if "refused" not in r})
        plot_profiles(args.profiles, [tuple(map(int, t.split(":"))) for t in args.trials], before)
    if args.coverage:
        plot_coverage(args.coverage, args.runs.split(","))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
