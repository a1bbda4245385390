"""OpenKBP airway split benchmark: the classical ``larynx`` against the provided ``Larynx`` contour.

For every OpenKBP case in ``../shared/data/openkbp`` that has a ``Larynx.nii.gz`` (an organ
contour: cartilage, soft tissue and lumen; Babier et al., Med Phys 2021), the classical airway is
split (:func:`osteoplan.anatomy.airway.split_airway`) and its ``larynx`` part compared with the
contour: whether they overlap, the fraction of our larynx voxels inside a 1-voxel dilation of the
contour, and the differences of the top and bottom slices (mm, + = ours higher).

Same figures for the split given the C2 level (``c2_inferior_z_mm``: the widening searched only at
the laryngeal levels below C2, vertebral-level fallback), and for the obvious alternative, a fixed
vertebral-level split: larynx = airway from the
upper border of C3 to the lower border of C6 (Gray's Anatomy: the adult larynx lies opposite
C3-C6), placed from the C2 inferior endplate found by ``build_anatomy`` (C3 upper border 5 mm below
it, 19 mm per cervical level: engineering defaults). The summary gives the ratio of the two.

Also lists the cases where the provided Larynx does not overlap the airway at all, with the reason
(the CT holds data only inside a dose region; outside it is -1024 HU).

Usage::

    .venv/bin/python benchmarks/openkbp_airway.py [--limit N] [--cases pt_4,pt_5] [--no-alternative]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

#: Vertebral-level alternative (engineering defaults): C3 upper border below the C2 inferior
#: endplate (disc) and height of one cervical level (body + disc).
ALT_DISC_MM, ALT_LEVEL_MM = 5.0, 19.0


def _zrange(volume, mask) -> tuple[float, float] | None:
    """(bottom, top) LPS z (mm) of the slices holding *mask* (axial volume)."""
    ks = np.nonzero(mask.any(axis=(1, 2)))[0]
    if ks.size == 0:
        return None
    z = [float(volume.index_to_world(np.array([k, 0.0, 0.0]))[2]) for k in (ks[0], ks[-1])]
    return min(z), max(z)


def _compare(volume, ours: np.ndarray, truth: np.ndarray) -> dict:
    out: dict = {"overlap": bool((ours & truth).any())}
    if ours.any():
        dil = ndi.binary_dilation(truth, structure=np.ones((3, 3, 3), bool))
        out["inside_pct"] = round(100.0 * float((ours & dil).sum()) / float(ours.sum()), 1)
        zo, zt = _zrange(volume, ours), _zrange(volume, truth)
        out["d_top_mm"] = round(zo[1] - zt[1], 1)
        out["d_bottom_mm"] = round(zo[0] - zt[0], 1)
    return out


def _no_overlap_reason(volume, truth: np.ndarray, air: np.ndarray) -> str:
    a = volume.array
    zt = _zrange(volume, truth)
    za = _zrange(volume, air)
    # data present around the contour? (-1024 exactly = outside the provided dose region)
    ring = ndi.binary_dilation(truth, iterations=3) & ~truth
    nodata = float((a[ring] <= -1023.5).mean()) if ring.any() else 0.0
    air_in = int((a[truth] < -500).sum())
    where = ("below" if za and zt[1] < za[0] else "inside" if za and zt[0] <= za[1] else "above")
    return (f"Larynx z {zt[0]:.0f}..{zt[1]:.0f} mm, airway z {za[0]:.0f}..{za[1]:.0f} mm ({where} its lower end); "
            f"{100 * nodata:.0f}% of the 3-voxel ring around the contour has no CT data (-1024); "
            f"{air_in} air voxels (< -500 HU) inside the contour") if za else "no airway"


def run_case(case: Path, alternative: bool) -> dict:
    from osteoplan.anatomy.airway import split_airway, segment_airway
    from osteoplan.anatomy.segment import segment_body
    from osteoplan.errors import OsteoplanError
    from osteoplan.imaging import read_volume

    row: dict = {"case": case.name}
    t0 = time.perf_counter()
    vol = read_volume(case / "ct.nii.gz")
    truth = read_volume(case / "Larynx.nii.gz").array > 0.5
    body = segment_body(vol)
    air = segment_airway(vol, body)
    sp = split_airway(vol, air, body)
    row["seconds"] = round(time.perf_counter() - t0, 2)
    row["method"] = sp.inlet_method
    row["not_segmented"] = sp.not_segmented
    row["inlet_z"] = None if sp.inlet_z_mm is None else round(sp.inlet_z_mm, 1)
    row["cricoid_z"] = None if sp.cricoid_z_mm is None else round(sp.cricoid_z_mm, 1)
    row["airway_overlaps_larynx"] = bool((air & truth).any())
    if not row["airway_overlaps_larynx"]:
        row["why_no_overlap"] = _no_overlap_reason(vol, truth, air)
    row["ours"] = _compare(vol, sp.larynx, truth)
    if alternative:
        from osteoplan.anatomy.pipeline import build_anatomy

        try:
            an = build_anatomy(vol)
            lmk = an.landmarks
        except OsteoplanError:
            lmk = None
        if lmk is not None:
            z2 = float(lmk.anteroinferior_body_lps_mm[2])
            top, bottom = z2 - ALT_DISC_MM, z2 - ALT_DISC_MM - 4 * ALT_LEVEL_MM
            z = vol.index_to_world(np.stack([np.arange(vol.shape[0]), np.zeros(vol.shape[0]),
                                             np.zeros(vol.shape[0])], axis=1).astype(float))[:, 2]
            sel = ((z >= bottom) & (z <= top))[:, None, None]
            row["alt"] = _compare(vol, air & sel, truth)
            sp2 = split_airway(vol, air, body, c2_inferior_z_mm=z2)
            row["with_c2"] = _compare(vol, sp2.larynx, truth)
            row["with_c2_method"] = sp2.inlet_method
        else:
            row["alt"] = {"overlap": False, "no_c2": True}
            row["with_c2"] = row["ours"]
            row["with_c2_method"] = sp.inlet_method
    return row


def _summary(rows: list[dict], key: str) -> dict:
    rs = [r[key] for r in rows if key in r]
    n = len(rs)
    ov = sum(r["overlap"] for r in rs)
    ins = [r["inside_pct"] for r in rs if "inside_pct" in r]
    dt = [abs(r["d_top_mm"]) for r in rs if "d_top_mm" in r]
    db = [abs(r["d_bottom_mm"]) for r in rs if "d_bottom_mm" in r]
    return {"n": n, "overlap": ov, "inside_median": float(np.median(ins)) if ins else float("nan"),
            "inside_mean": float(np.mean(ins)) if ins else float("nan"),
            "top_abs_median": float(np.median(dt)) if dt else float("nan"),
            "bottom_abs_median": float(np.median(db)) if db else float("nan"), "with_larynx": len(ins)}


def main(argv=None) -> int:
    import os

    os.environ.setdefault("OSTEOPLAN_QUIET", "1")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0, help="only the first N cases")
    ap.add_argument("--cases", default="", help="comma-separated case names")
    ap.add_argument("--no-alternative", action="store_true", help="skip the vertebral-level alternative (no C2 search)")
    ap.add_argument("--json", default="", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    from osteoplan.shared_data import openkbp_cases

    cases = openkbp_cases(args.cases)
    if cases is None:
        print("../shared/data/openkbp is absent; nothing to benchmark", file=sys.stderr)
        return 1
    cases = [c for c in cases if (c / "Larynx.nii.gz").exists()]
    if args.limit:
        cases = cases[: args.limit]
    alt = not args.no_alternative
    hdr = (f"{'case':8} {'inlet':>7} {'cricoid':>7} {'method':12} {'ovl':>3} {'in%':>5} {'dTop':>6} {'dBot':>6}"
           + (f" | {'+C2 ovl':>7} {'in%':>5} {'dTop':>6} {'dBot':>6} | {'alt ovl':>7} {'in%':>5} {'dTop':>6} {'dBot':>6}"
              if alt else "") + "  notes")
    print(hdr)
    print("-" * len(hdr))
    rows = []
    for c in cases:
        r = run_case(c, alt)
        rows.append(r)
        o = r["ours"]
        line = (f"{r['case']:8} {r['inlet_z'] if r['inlet_z'] is not None else '-':>7} "
                f"{r['cricoid_z'] if r['cricoid_z'] is not None else '-':>7} {r['method'][:12]:12} "
                f"{'y' if o['overlap'] else 'n':>3} {o.get('inside_pct', '-'):>5} {o.get('d_top_mm', '-'):>6} "
                f"{o.get('d_bottom_mm', '-'):>6}")
        if alt:
            w = r["with_c2"]
            line += (f" | {('y' if w['overlap'] else 'n'):>7} {w.get('inside_pct', '-'):>5} "
                     f"{w.get('d_top_mm', '-'):>6} {w.get('d_bottom_mm', '-'):>6}")
            a = r["alt"]
            line += (f" | {('no C2' if a.get('no_c2') else 'y' if a['overlap'] else 'n'):>7} {a.get('inside_pct', '-'):>5} "
                     f"{a.get('d_top_mm', '-'):>6} {a.get('d_bottom_mm', '-'):>6}")
        ns = ",".join(r["not_segmented"])
        line += f"  {('NOT: ' + ns) if ns else ''}"
        print(line, flush=True)
    print()
    s = _summary(rows, "ours")
    print(f"cases with a provided Larynx: {len(rows)}")
    print(f"classical split: larynx overlaps the provided Larynx in {s['overlap']}/{s['n']} cases "
          f"({100 * s['overlap'] / max(s['n'], 1):.0f} %); larynx segmented in {s['with_larynx']}; "
          f"voxels inside the 1-voxel-dilated contour: median {s['inside_median']:.1f} %, mean {s['inside_mean']:.1f} %; "
          f"|top| difference median {s['top_abs_median']:.1f} mm, |bottom| {s['bottom_abs_median']:.1f} mm")
    if alt:
        w = _summary(rows, "with_c2")
        print(f"classical split with the C2 level (window + fallback; image-only where C2 is not found): overlaps in "
              f"{w['overlap']}/{w['n']} ({100 * w['overlap'] / max(w['n'], 1):.0f} %); inside: median "
              f"{w['inside_median']:.1f} %, mean {w['inside_mean']:.1f} %; |top| median {w['top_abs_median']:.1f} mm, "
              f"|bottom| {w['bottom_abs_median']:.1f} mm")
        a = _summary(rows, "alt")
        n_c2 = sum(1 for r in rows if not r["alt"].get("no_c2"))
        print(f"alternative (C3-C6 from the C2 level; C2 found in {n_c2}/{len(rows)}): overlaps in {a['overlap']}/{a['n']} "
              f"({100 * a['overlap'] / max(a['n'], 1):.0f} %); inside: median {a['inside_median']:.1f} %, mean "
              f"{a['inside_mean']:.1f} %; |top| median {a['top_abs_median']:.1f} mm, |bottom| {a['bottom_abs_median']:.1f} mm")
        sub = [r for r in rows if not r["alt"].get("no_c2")]
        if sub:
            print(f"on the {len(sub)} cases where C2 was found (same cases for all three):")
            for lab, key in (("classical", "ours"), ("classical + C2", "with_c2"), ("alternative", "alt")):
                x = _summary(sub, key)
                print(f"  {lab:15} overlaps {x['overlap']}/{x['n']}; inside mean {x['inside_mean']:.1f} %; "
                      f"|top| median {x['top_abs_median']:.1f} mm, |bottom| {x['bottom_abs_median']:.1f} mm")
            s, w, a = _summary(sub, "ours"), _summary(sub, "with_c2"), _summary(sub, "alt")
        for lab, x in (("classical", s), ("classical + C2", w)):
            print(f"ratio {lab} / alternative (cases with C2): overlapping cases {x['overlap'] / max(a['overlap'], 1):.2f}, "
                  f"inside (mean) {x['inside_mean'] / max(a['inside_mean'], 1e-9):.2f}, "
                  f"|top| {x['top_abs_median'] / max(a['top_abs_median'], 1e-9):.2f}, "
                  f"|bottom| {x['bottom_abs_median'] / max(a['bottom_abs_median'], 1e-9):.2f} (lower is better for top/bottom)")
    miss = [r for r in rows if not r["airway_overlaps_larynx"]]
    print(f"provided Larynx not overlapping the (union) airway: {len(miss)}/{len(rows)}")
    for r in miss:
        print(f"  {r['case']}: {r['why_no_overlap']}")
    secs = [r["seconds"] for r in rows]
    print(f"time per case (body + airway + split): median {np.median(secs):.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
