"""Plan every OpenKBP case with the default protocol (c2-dens-anterior) and check every returned path independently.

For each of the 170 OpenKBP head-and-neck CTs (``../shared/data/openkbp``; Babier et al., Med Phys 2021; about
4 mm voxels) the case's own contours (SpinalCord, Esophagus, Larynx, Mandible, ...) are given as masks, the rest
comes from osteoplan's classical anatomy (bone, C2, canal, airway parts, the vertebral artery's bony canal). The
planner's verdict is recorded per case, and every returned path is checked with an independent brute-force
computation (points on the instrument's surface against the voxel centres of each mask, no distance map, no
kernel): it must not intersect any hollow viscus (pharynx, larynx, trachea, airway, oesophagus) and must keep its
margin from the vertebral artery's bony canal; it must also meet the technique (entry <= 10 mm above the
anteroinferior corner and <= 8 mm from the midline, <= 20 deg to the dens axis, tip <= 3 mm below the apex,
screw >= 30 mm unless the anatomy is short).

Usage::

    .venv/bin/python benchmarks/openkbp_plans.py [--limit N] [--cases pt_1,pt_2] [--jobs 2] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

os.environ.setdefault("OSTEOPLAN_QUIET", "1")

VISCERA = ("pharynx", "larynx", "trachea", "airway", "esophagus")
CANALS = ("vertebral_artery_canal_left", "vertebral_artery_canal_right")


def capsule_points(a: np.ndarray, b: np.ndarray, r: float, step: float = 0.25, n_ang: int = 48) -> np.ndarray:
    """Points (M, 3) on the surface of the capsule of radius *r* around segment a-b (LPS mm)."""
    d = (b - a) / np.linalg.norm(b - a)
    u = np.cross(d, [1.0, 0.0, 0.0] if abs(d[0]) < 0.9 else [0.0, 1.0, 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    ang = np.linspace(0, 2 * np.pi, n_ang, endpoint=False)
    ring = np.cos(ang)[:, None] * u + np.sin(ang)[:, None] * v
    s = np.arange(0, np.linalg.norm(b - a) + 1e-9, step)
    pts = [(a[None, None] + s[:, None, None] * d[None, None] + r * ring[None]).reshape(-1, 3)]
    for end, sg in ((a, -1.0), (b, 1.0)):
        for t in np.linspace(0, np.pi / 2, 8):
            pts.append(end + r * (np.cos(t) * ring + sg * np.sin(t) * d))
    return np.concatenate(pts)


def brute_clearance(volume, mask: np.ndarray, a: np.ndarray, b: np.ndarray, r: float) -> float:
    """Smallest distance (mm) from the instrument surface (capsule a-b, radius r) to a voxel centre of *mask*;
    negative when a voxel centre lies inside the capsule (minus its depth). ``inf`` for an empty mask."""
    from scipy.spatial import cKDTree

    idx = np.argwhere(mask)
    if len(idx) == 0:
        return float("inf")
    c = volume.index_to_world(idx.astype(float))
    # only voxels near the segment matter
    d = (b - a) / np.linalg.norm(b - a)
    t = np.clip((c - a) @ d, 0, np.linalg.norm(b - a))
    dist_axis = np.linalg.norm(c - (a + t[:, None] * d), axis=1)
    if dist_axis.min() < r:
        return float(dist_axis.min() - r)
    near = c[dist_axis <= dist_axis.min() + 5 * r]
    return float(cKDTree(near).query(capsule_points(a, b, r), k=1)[0].min())


def run_case(case_dir: str) -> dict:
    """Plan one case; returns a plain dict row (verdict, figures, independent checks)."""
    from osteoplan.anatomy.pipeline import build_anatomy
    from osteoplan.errors import OsteoplanError
    from osteoplan.imaging import read_volume
    from osteoplan.planning.planner import plan_from_anatomy
    from osteoplan.planning.verdict import verdict_of

    p = Path(case_dir)
    row: dict = {"case": p.name}
    t0 = time.perf_counter()
    try:
        vol = read_volume(p / "ct.nii.gz")
        an = build_anatomy(vol, masks=str(p))
        plan = plan_from_anatomy(vol, an)
    except OsteoplanError as exc:
        msg = str(exc)
        row.update(verdict=f"no plan ({type(exc).__name__})", reason=msg[:200], paths=0, conformant=0, viscus_hits=0, canal_hits=0,
                   canals="-")
        row["s"] = round(time.perf_counter() - t0, 1)
        return row
    v = verdict_of(plan)
    row["verdict"] = v.code
    row["reason"] = (v.details_en[0] if v.details_en else v.text_en)[:200]
    lm = an.labelmap
    row["canals"] = "+".join(s[-1].upper() for s in ("vertebral_artery_canal_l", "vertebral_artery_canal_r")
                             if lm.has(s[:-2] + ("left" if s.endswith("l") else "right")))
    landmarks = an.landmarks
    ax = landmarks.axis_unit / np.linalg.norm(landmarks.axis_unit)
    hits_v = hits_c = conf = 0
    worst_v, worst_c = float("inf"), float("inf")
    for t in plan.trajectories:
        a, b, e = (np.asarray(x, float) for x in (t.skin_entry_lps_mm, t.target_lps_mm, t.bone_entry_lps_mm))
        d = np.asarray(t.direction_unit, float)
        r = t.instrument_radius_mm
        for n in VISCERA:
            if lm.has(n):
                c = brute_clearance(vol, lm.get(n), a, b, r)
                worst_v = min(worst_v, c)
                hits_v += c < 0.0
        for n in CANALS:
            if lm.has(n):
                c = brute_clearance(vol, lm.get(n), a, b, r)
                worst_c = min(worst_c, c)
                hits_c += c < 3.0 - 0.5 * float(np.max(vol.spacing_mm))  # margin 3 mm, half a voxel of sampling
        corner = np.asarray(landmarks.anteroinferior_body_lps_mm)
        up = (e - corner) @ ax
        ang = np.degrees(np.arccos(min(1.0, abs(d @ ax))))
        below = (np.asarray(landmarks.apex_lps_mm) - b) @ ax
        floor = min(30.0, landmarks.anteroinferior_to_apex_mm - 5.0)
        conf += bool(-3.01 <= up <= 10.01 and ang <= 20.05 and -0.01 <= below <= 3.01
                     and t.screw.length_mm >= min(30.0, max(20.0, floor)) - 1e-6
                     and (t.bone_entry_from_midline_mm or 0.0) <= 8.01)
    row.update(paths=len(plan.trajectories), conformant=conf, viscus_hits=hits_v, canal_hits=hits_c,
               viscus_min_mm=None if worst_v == float("inf") else round(worst_v, 2),
               canal_min_mm=None if worst_c == float("inf") else round(worst_c, 2))
    if plan.best is not None:
        b = plan.best
        row["plan"] = (f"{b.side} {b.screw.diameter_mm:.1f}x{b.screw.length_mm:g} mm, {b.angle_to_dens_axis_deg:.0f} deg "
                       f"to axis, tip {b.tip_to_cortex_mm} mm short")
    row["s"] = round(time.perf_counter() - t0, 1)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--cases", default="")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--markdown", default="", help="write the summary and per-case table to this file")
    args = ap.parse_args(argv)
    root = Path(args.data) / "openkbp"
    if not root.is_dir():
        print(f"no OpenKBP data under {root}: nothing to do", file=sys.stderr)
        return 1
    cases = sorted((p for p in root.glob("pt_*") if p.is_dir()), key=lambda p: int(p.name.split("_")[1]))
    if args.cases:
        want = set(args.cases.split(","))
        cases = [c for c in cases if c.name in want]
    if args.limit:
        cases = cases[: args.limit]
    t0 = time.perf_counter()
    if args.jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs) as ex:
            rows = list(ex.map(run_case, [str(c) for c in cases]))
    else:
        rows = [run_case(str(c)) for c in cases]
    counts = Counter(r["verdict"] for r in rows)
    paths = sum(r["paths"] for r in rows)
    lines = ["# OpenKBP: C2 plans with the default protocol (c2-dens-anterior)", "",
             f"{len(rows)} cases, {time.perf_counter() - t0:.0f} s. Written by `benchmarks/openkbp_plans.py --markdown`.", "",
             "| verdict | cases |", "|---|---|"]
    lines += [f"| {k} | {n} |" for k, n in counts.most_common()]
    lines += ["", f"Returned paths: {paths}; technique-conformant (independent check): "
              f"{sum(r['conformant'] for r in rows)}; through a hollow viscus (brute force): "
              f"{sum(r['viscus_hits'] for r in rows)}; within the 3 mm margin of a transverse foramen / vertebral artery "
              f"bony canal (brute force, half a voxel tolerance): {sum(r['canal_hits'] for r in rows)}.",
              f"Cases with both vertebral artery canals segmented: {sum(r.get('canals') == 'L+R' for r in rows)}, "
              f"one: {sum(r.get('canals') in ('L', 'R') for r in rows)}.", "",
              "| case | verdict | paths | conformant | viscus hits | canal hits | min viscus / canal clearance (mm) | "
              "canals | plan or reason | s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['verdict']} | {r['paths']} | {r['conformant']} | {r['viscus_hits']} | "
                     f"{r['canal_hits']} | {r.get('viscus_min_mm')} / {r.get('canal_min_mm')} | {r.get('canals', '-')} | "
                     f"{r.get('plan') or r.get('reason', '')} | {r['s']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        from osteoplan.atomic import atomic_write_text

        atomic_write_text(Path(args.markdown), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
