"""OpenKBP anatomy benchmark: C2 found (or why not), cord inside the segmented canal, larynx in the airway.

Runs osteoplan's classical anatomy (``build_anatomy`` without masks) on every OpenKBP case in
``../shared/data/openkbp`` (170 head-and-neck CTs, about 4 mm voxels; Babier et al., Med Phys 2021)
and prints one row per case (with, when less than 95 % of the cord lies inside the canal, where the
missed cord voxels are: outside the provided CT region, beyond the canal's cranial/caudal end, one
voxel outside the wall, or off the track), then a summary with the same figures for the obvious alternative
canal (a plain per-slice hole fill of a fixed 200 HU bone threshold, no tracking) and the ratio. The cord
figure is also given over the cord voxels where the CT holds data (HU > -1023 inside the body): on cases
cropped to the radiotherapy region part of the cord contour lies where the CT has no image at all.

Usage::

    .venv/bin/python benchmarks/openkbp_anatomy.py [--limit N] [--cases pt_1,pt_2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi


def naive_canal(volume, body) -> np.ndarray:
    """The obvious alternative: holes of a 200 HU bone mask, per axial slice, soft-tissue density, 30-1100 mm^2."""
    a = volume.array
    bone = (a > 200) & body
    sp = volume.spacing_mm
    px = float(sp[1] * sp[2])
    out = np.zeros_like(bone)
    for k in range(a.shape[0]):
        if not bone[k].any():
            continue
        holes = ndi.binary_fill_holes(bone[k]) & ~bone[k]
        lab, n = ndi.label(holes)
        if n == 0:
            continue
        idx = np.arange(1, n + 1)
        areas = ndi.sum_labels(holes, lab, idx) * px
        means = ndi.mean(a[k], lab, idx)
        ok = np.zeros(n + 1, bool)
        ok[1:] = (areas >= 30) & (areas <= 1100) & (means > -200) & (means < 200)
        out[k] = ok[lab]
    return out


def miss_reason(vol, canal: np.ndarray, cord: np.ndarray, body: np.ndarray) -> str:
    """Why cord voxels lie outside the canal (reporting only: nothing here feeds the segmentation).

    Missed cord voxels are split into: outside the provided CT region (HU -1024 or outside the body
    mask: a crop of the radiotherapy data), in slices where the CT holds data only in a small patch
    around the cord (less than 70 % of the 15 mm disc around it), in slices above / below the segmented canal (cranio-caudal
    coverage), in slices with a canal but at most one voxel outside its wall (partial volume at the
    wall), and farther away (the canal is off the cord's track in those slices). The largest groups
    are named with their share of the cord's voxels.
    """
    from osteoplan.anatomy.segment import Canon

    cn = Canon.of(vol)
    a, can, co, bo = (cn.to_canon(x) for x in (vol.array, canal, cord, body))
    sp = cn.spacing_mm
    miss = co & ~can
    n = int(co.sum())
    if not miss.any():
        return ""
    nodata = miss & ((a <= -1023.0) | ~bo)
    rest = miss & ~nodata
    ks = np.nonzero(can.any(axis=(1, 2)))[0]
    grp = {"nodata": int(nodata.sum()), "patch": 0, "above": 0, "below": 0, "wall": 0, "off": 0}
    ext = {"above": 0, "below": 0}
    jj, ii = np.mgrid[0:a.shape[1], 0:a.shape[2]]
    for k in np.nonzero(rest.any(axis=(1, 2)))[0]:
        m = rest[k]
        cj, ci = np.argwhere(co[k]).mean(axis=0)
        disk = np.hypot((jj - cj) * sp[1], (ii - ci) * sp[2]) <= 15.0
        if (a[k][disk] > -1023.0).mean() < 0.7:
            grp["patch"] += int(m.sum())  # only a small patch around the cord holds data here
            continue
        if not can[k].any():
            side = "above" if ks.size == 0 or k > ks.max() else ("below" if k < ks.min() else "off")
            grp[side] += int(m.sum())
            if side in ext:
                ext[side] += 1
            continue
        d = ndi.distance_transform_edt(~can[k])[m]
        grp["wall"] += int((d <= 1.5).sum())
        grp["off"] += int((d > 1.5).sum())
    text = {
        "nodata": "cord outside the provided CT region (HU -1024 / outside the body: crop of the RT data)",
        "patch": "CT provided only as a small patch around the cord there (< 70 % data within 15 mm: no vertebra in view)",
        "above": f"canal ends {ext['above'] * sp[0]:.0f} mm below the top of the cord contour (track lost cranially)",
        "below": f"canal ends {ext['below'] * sp[0]:.0f} mm above the bottom of the cord contour (track lost caudally)",
        "wall": "cord one voxel outside the canal wall (partial volume with bone)",
        "off": "canal off the cord's track in some slices (ring not found, wrong hole taken)",
    }
    parts = [f"{100.0 * v / n:.0f}% {text[g]}" for g, v in sorted(grp.items(), key=lambda kv: -kv[1]) if v >= 0.01 * n]
    return "; ".join(parts[:2])


def run_case(case: Path) -> dict:
    from osteoplan.anatomy.pipeline import build_anatomy
    from osteoplan.errors import OsteoplanError
    from osteoplan.imaging import read_volume

    row: dict = {"case": case.name}
    t0 = time.perf_counter()
    vol = read_volume(case / "ct.nii.gz")
    try:
        an = build_anatomy(vol)
    except OsteoplanError as exc:
        row.update(c2="error", reason=str(exc), seconds=round(time.perf_counter() - t0, 2))
        return row
    row["seconds"] = round(time.perf_counter() - t0, 2)
    if an.landmarks is not None:
        row["c2"] = "found"
        row["confidence"] = an.landmarks.confidence
        row["ai_apex_mm"] = round(an.landmarks.anteroinferior_to_apex_mm, 1)
    else:
        row["c2"] = "not found"
        row["reason"] = next((m for m in an.messages if m.startswith("C2 NOT located")), "")
    lm = an.labelmap
    canal = lm.get("spinal_canal") if lm.has("spinal_canal") else np.zeros(vol.shape, bool)
    cord_p = case / "SpinalCord.nii.gz"
    if cord_p.exists():
        cord = read_volume(cord_p).array > 0.5
        if cord.any():
            row["cord_in_canal_pct"] = round(100.0 * (cord & canal).sum() / cord.sum(), 1)
            # the same over the cord voxels where the CT holds data (inside the provided region)
            seen = cord & (vol.array > -1023.0) & lm.get("body")
            row["cord_seen_pct"] = round(100.0 * seen.sum() / cord.sum(), 1)
            if seen.any():
                row["cord_seen_in_canal_pct"] = round(100.0 * (seen & canal).sum() / seen.sum(), 1)
            if not lm.has("spinal_canal"):
                row["cord_note"] = next((m for m in an.messages if m.startswith("spinal_canal: NOT")),
                                        "spinal canal NOT segmented")
            elif row["cord_in_canal_pct"] < 95.0:
                row["cord_note"] = miss_reason(vol, canal, cord, lm.get("body"))
            naive = naive_canal(vol, lm.get("body"))
            row["cord_in_naive_canal_pct"] = round(100.0 * (cord & naive).sum() / cord.sum(), 1)
    lar_p = case / "Larynx.nii.gz"
    if lar_p.exists():
        lar = read_volume(lar_p).array > 0.5
        if lar.any():
            air = lm.get("airway")
            row["larynx_overlap_pct"] = round(100.0 * (lar & air).sum() / lar.sum(), 1)
            row["larynx_touches_airway"] = bool((ndi.binary_dilation(lar) & air).any())
    return row


def markdown_table(rows: list[dict], summary: list[str]) -> str:
    """The per-case figures as a Markdown document: the summary lines, then one table row per case
    (C2 located or the reason, cord inside the canal over all cord voxels and over those with CT
    data, larynx overlap with the airway, and why the cord is below 95 % where it is)."""

    def cell(x) -> str:
        return "" if x is None or x == "" else str(x).replace("|", "/")

    out = ["# OpenKBP anatomy benchmark (benchmarks/openkbp_anatomy.py)", "",
           "Classical anatomy (no masks, no point) on every case of `../shared/data/openkbp`. "
           "Cord % = provided SpinalCord voxels inside the segmented spinal canal; 'with data' = the same over "
           "the cord voxels where the CT holds data (HU > -1024: outside the radiotherapy region the CT is "
           "blank). Larynx % = provided Larynx voxels inside the segmented airway.", ""]
    out += [f"- {line.strip()}" for line in summary if line.strip()]
    out += ["", "| case | C2 | conf. | AI-apex mm | cord % | cord % (with data) | cord with data % | larynx % "
            "| why C2 is not located | why the cord is < 95 % inside |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        why_c2 = r.get("reason", "").removeprefix("C2 NOT located: ") if r["c2"] != "found" else ""
        out.append("| " + " | ".join(cell(x) for x in (
            r["case"], r["c2"], r.get("confidence"), r.get("ai_apex_mm"), r.get("cord_in_canal_pct"),
            r.get("cord_seen_in_canal_pct"), r.get("cord_seen_pct"), r.get("larynx_overlap_pct"),
            why_c2[:200], r.get("cord_note", "")[:200])) + " |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    import os

    os.environ.setdefault("OSTEOPLAN_QUIET", "1")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0, help="only the first N cases")
    ap.add_argument("--cases", default="", help="comma-separated case names")
    ap.add_argument("--json", default="", help="also write the rows to this JSON file")
    ap.add_argument("--markdown", default="", help="also write the summary and the per-case table to this "
                    "Markdown file")
    args = ap.parse_args(argv)
    from osteoplan.shared_data import openkbp_cases

    cases = openkbp_cases(args.cases, args.limit)
    if cases is None:
        print("../shared/data/openkbp is absent; nothing to benchmark", file=sys.stderr)
        return 1
    rows = []
    hdr = f"{'case':8} {'C2':10} {'conf':>5} {'AI-apex':>7} {'cord%':>6} {'naive%':>6} {'larynx%':>7} {'s':>5}  reason"
    print(hdr)
    print("-" * len(hdr))
    for c in cases:
        r = run_case(c)
        rows.append(r)
        print(f"{r['case']:8} {r['c2']:10} {r.get('confidence', ''):>5} {r.get('ai_apex_mm', ''):>7} "
            f"{r.get('cord_in_canal_pct', ''):>6} {r.get('cord_in_naive_canal_pct', ''):>6} "
            f"{r.get('larynx_overlap_pct', ''):>7} {r['seconds']:>5}  {r.get('reason', '')[:90]}", flush=True)
        if r.get("cord_note"):
            print(f"{'':8} cord < 95 %: {r['cord_note']}", flush=True)
    n = len(rows)
    found = sum(r["c2"] == "found" for r in rows)
    clear = sum(r["c2"] != "found" and bool(r.get("reason")) for r in rows)
    cord = [r["cord_in_canal_pct"] for r in rows if "cord_in_canal_pct" in r]
    naive = [r["cord_in_naive_canal_pct"] for r in rows if "cord_in_naive_canal_pct" in r]
    lar = [r["larynx_overlap_pct"] for r in rows if "larynx_overlap_pct" in r]
    touch = [r["larynx_touches_airway"] for r in rows if "larynx_touches_airway" in r]
    print()
    summary: list[str] = []

    def say(line: str, keep: bool = True) -> None:
        print(line)
        if keep:
            summary.append(line)

    say(f"cases: {n}; C2 found: {found}; not found with a reason: {clear}; unexplained: {n - found - clear}")
    if cord:
        c95 = sum(x >= 95.0 for x in cord)
        say(f"cord inside segmented canal: median {np.median(cord):.1f} %, min {min(cord):.1f} %, "
            f">= 95 % in {c95}/{len(cord)} cases")
        say(f"  alternative (plain 200 HU hole fill): median {np.median(naive):.1f} %, min {min(naive):.1f} %, "
            f">= 95 % in {sum(x >= 95.0 for x in naive)}/{len(naive)} cases; "
            f"ratio of medians {np.median(cord) / max(np.median(naive), 1e-9):.2f}")
        seen = [r for r in rows if "cord_seen_in_canal_pct" in r]
        s95 = sum(r["cord_seen_in_canal_pct"] >= 95.0 for r in seen)
        say(f"  counting only cord voxels where the CT holds data: >= 95 % in {s95}/{len(seen)} cases "
            f"(median {np.median([r['cord_seen_in_canal_pct'] for r in seen]):.1f} %); cases with part of the "
            f"cord outside the data: {sum(r['cord_seen_pct'] < 100.0 for r in seen)}")
        low = [r for r in rows if r.get("cord_in_canal_pct", 100.0) < 95.0]
        if low:
            say("cases with cord < 95 % inside the canal (largest share of the missed voxels first):", keep=False)
            for r in sorted(low, key=lambda r: r["cord_in_canal_pct"]):
                say(f"  {r['case']:8} {r['cord_in_canal_pct']:5.1f} % (of the cord with CT data: "
                      f"{r.get('cord_seen_in_canal_pct', float('nan')):5.1f} %, {r['cord_seen_pct']:5.1f} % of it has data)  "
                      f"{r.get('cord_note', '')}", keep=False)
    if lar:
        say(f"larynx overlapping the airway: {sum(x > 0 for x in lar)}/{len(lar)} cases (touching: "
            f"{sum(touch)}/{len(touch)}), median overlap {np.median(lar):.1f} % of larynx voxels")
    secs = [r["seconds"] for r in rows]
    say(f"time per case: median {np.median(secs):.1f} s, max {max(secs):.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.markdown:
        out = Path(args.markdown)
        tmp = out.with_name(out.name + ".part")
        tmp.write_text(markdown_table(rows, summary[:-1]))  # not the timing line
        tmp.replace(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
