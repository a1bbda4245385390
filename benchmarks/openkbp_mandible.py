"""OpenKBP mandible benchmark: the classical ``mandible`` against the provided ``Mandible`` contour.

For every OpenKBP case in ``../shared/data/openkbp`` with a ``Mandible.nii.gz`` (radiotherapy
organ contour; Babier et al., Med Phys 2021), the classical mandible
(:func:`osteoplan.anatomy.mandible.segment_mandible` on the classical body, bone and spinal canal)
is compared with the contour: Dice, and the fraction of our voxels inside a 1-voxel dilation of the
contour. The summary gives the median Dice, the share of cases with Dice >= 0.7 and the cases where
the mandible was not segmented (with the reason).

The obvious alternative, in the same run (``alt`` columns): the largest connected component of the same
classical bone lying more than ``ARC_MIN_ANTERIOR_MM`` (45 mm) in front of the spinal canal's centre (the
mandibular body's place, without the U-shaped seed and without parting the bone joined to the maxilla and the
skull); its median Dice is printed next to the method's.

Usage::

    .venv/bin/python benchmarks/openkbp_mandible.py [--limit N] [--cases pt_1,pt_2] [--json out.json]
        [--markdown docs/openkbp_mandible.md]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

#: Dice at or above which a case counts as a good match (configurable default, no published source).
GOOD_DICE = 0.7


def run_case(case: Path) -> dict:
    """Segment the mandible of one OpenKBP case and compare it with its Mandible contour."""
    from osteoplan.anatomy.canal import segment_spinal_canal
    from osteoplan.anatomy.mandible import segment_mandible
    from osteoplan.anatomy.segment import segment_body, segment_bone
    from osteoplan.errors import OsteoplanError
    from osteoplan.imaging import read_volume

    row: dict = {"case": case.name}
    t0 = time.perf_counter()
    vol = read_volume(case / "ct.nii.gz")
    truth = read_volume(case / "Mandible.nii.gz").array > 0.5
    body = segment_body(vol)
    bone = segment_bone(vol, body)
    try:
        canal = segment_spinal_canal(vol, bone.lenient, body, bone_outline=bone.bone).mask
    except OsteoplanError:
        canal = None
    mand, msg = segment_mandible(vol, bone.bone, body, canal)
    row["seconds"] = round(time.perf_counter() - t0, 2)
    alt = alternative_mandible(vol, bone.bone, canal)
    row["alt_dice"] = round(2.0 * float((alt & truth).sum()) / max(float(alt.sum() + truth.sum()), 1.0), 3)
    row["message"] = msg
    row["truth_ml"] = round(float(truth.sum()) * vol.voxel_volume_ml, 1)
    if mand is None:
        row["dice"] = 0.0
        row["segmented"] = False
        return row
    row["segmented"] = True
    inter = float((mand & truth).sum())
    row["dice"] = round(2.0 * inter / max(float(mand.sum() + truth.sum()), 1.0), 3)
    dil = ndi.binary_dilation(truth, structure=np.ones((3, 3, 3), bool))
    row["inside_pct"] = round(100.0 * float((mand & dil).sum()) / max(float(mand.sum()), 1.0), 1)
    row["ours_ml"] = round(float(mand.sum()) * vol.voxel_volume_ml, 1)
    return row


def alternative_mandible(vol, bone: np.ndarray, canal: np.ndarray | None) -> np.ndarray:
    """The obvious alternative: the largest connected bone component more than 45 mm in front of the canal centre
    (LPS: anterior is -y). Empty when there is no canal."""
    from osteoplan.anatomy.mandible import ARC_MIN_ANTERIOR_MM

    out = np.zeros(bone.shape, bool)
    if canal is None or not canal.any():
        return out
    y_canal = float(vol.index_to_world(np.argwhere(canal).mean(axis=0))[1])
    j = np.arange(bone.shape[1], dtype=float)
    y = vol.index_to_world(np.stack([np.zeros_like(j), j, np.zeros_like(j)], axis=1))[:, 1]  # axis-aligned grid
    front = bone & (y < y_canal - ARC_MIN_ANTERIOR_MM)[None, :, None]
    lab, n = ndi.label(front)
    if n == 0:
        return out
    return lab == 1 + int(np.argmax(np.bincount(lab.ravel())[1:]))


def summary(rows: list[dict]) -> dict:
    """Median Dice, share >= GOOD_DICE, cases not segmented."""
    d = np.array([r["dice"] for r in rows], float)
    alt = np.array([r.get("alt_dice", 0.0) for r in rows], float)
    return {"cases": len(rows), "median_dice": round(float(np.median(d)), 3) if d.size else None,
            "alternative_median_dice": round(float(np.median(alt)), 3) if alt.size else None,
            "share_dice_ge_%.1f" % GOOD_DICE: round(float((d >= GOOD_DICE).mean()), 3) if d.size else None,
            "not_segmented": [r["case"] for r in rows if not r["segmented"]],
            "median_seconds": round(float(np.median([r["seconds"] for r in rows])), 2) if rows else None}


def markdown(rows: list[dict], s: dict) -> str:
    """The Markdown report (summary, failure modes, one row per case) of a run."""
    dice = np.array([r["dice"] for r in rows], float)
    seg = np.array([r["segmented"] for r in rows], bool)
    under = [r for r in rows if r["segmented"] and r.get("inside_pct", 0) >= 80 and r["dice"] < GOOD_DICE]
    wrong = [r for r in rows if r["segmented"] and r.get("inside_pct", 100) < 60]
    lines = ["# OpenKBP: classical mandible against the provided Mandible contour", "",
             f"Made with `benchmarks/openkbp_mandible.py --markdown` ({len(rows)} OpenKBP cases with a `Mandible.nii.gz`; "
             "3.5-4.75 mm pixels, 2-3 mm slices). Method: `osteoplan.anatomy.mandible.segment_mandible` on the "
             "classical body, bone and spinal canal.", "", "## Summary", "",
             f"- median Dice {np.median(dice):.3f} over all {len(rows)} cases (not segmented counted as 0); quartiles "
             f"{np.percentile(dice, 25):.2f} / {np.percentile(dice, 50):.2f} / {np.percentile(dice, 75):.2f}",
             f"- Dice >= {GOOD_DICE}: {int((dice >= GOOD_DICE).sum())}/{len(rows)} ({100 * (dice >= GOOD_DICE).mean():.0f} %)",
             f"- segmented: {int(seg.sum())}/{len(rows)}; among them median Dice "
             f"{(np.median(dice[seg]) if seg.any() else 0):.3f}",
             f"- not segmented ({int((~seg).sum())}, reported 'mandible: NOT segmented', i.e. not assessed): "
             + ", ".join(r["case"] for r in rows if not r["segmented"]),
             f"- under-segmented (>= 80 % of ours inside the contour, Dice < {GOOD_DICE}): {len(under)}",
             f"- leaking or wrong (< 60 % of ours inside the contour): {len(wrong)}: " + ", ".join(r["case"] for r in wrong),
             f"- median time per case (body + bone + canal + mandible): {s['median_seconds']} s", "",
             "## Per case", "", "| case | Dice | ours inside contour % | ours mL | contour mL | result |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['dice']:.3f} | {r.get('inside_pct', '')} | {r.get('ours_ml', '')} | "
                     f"{r['truth_ml']} | {r['message'].replace('mandible: ', '').replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import os

    os.environ.setdefault("OSTEOPLAN_QUIET", "1")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0, help="only the first N cases")
    ap.add_argument("--cases", default="", help="comma-separated case names")
    ap.add_argument("--json", default="", help="also write the rows and the summary to this JSON file")
    ap.add_argument("--markdown", default="", help="also write the Markdown report to this file")
    args = ap.parse_args(argv)
    from osteoplan.shared_data import openkbp_cases

    cases = openkbp_cases(args.cases)
    if cases is None:
        print("../shared/data/openkbp is absent; nothing to benchmark", file=sys.stderr)
        return 1
    cases = [c for c in cases if (c / "Mandible.nii.gz").exists()]
    if args.limit:
        cases = cases[: args.limit]
    print(f"{'case':8} {'dice':>5} {'in%':>5} {'ours':>6} {'truth':>6} {'s':>5} {'alt':>5}  message")
    rows = []
    for c in cases:
        r = run_case(c)
        rows.append(r)
        print(f"{r['case']:8} {r['dice']:5.3f} {r.get('inside_pct', '-'):>5} {r.get('ours_ml', '-'):>6} "
              f"{r['truth_ml']:6.1f} {r['seconds']:5.1f} {r['alt_dice']:5.3f}  {r['message']}", flush=True)
    s = summary(rows)
    if rows:
        print(f"\n| method | median Dice | Dice >= {GOOD_DICE} |\n|---|---:|---:|")
        for label, key in (("segment_mandible (U seed, parted from the skull)", "dice"),
                           ("alternative: largest bone component 45 mm in front of the canal", "alt_dice")):
            d = np.array([r.get(key, 0.0) for r in rows], float)
            print(f"| {label} | {np.median(d):.3f} | {int((d >= GOOD_DICE).sum())}/{len(d)} |")
    print(json.dumps(s))
    if args.json:
        tmp = Path(args.json).with_suffix(".tmp")
        tmp.write_text(json.dumps({"rows": rows, "summary": s}, indent=1))
        tmp.replace(args.json)
    if args.markdown:
        tmp = Path(args.markdown).with_suffix(".tmp")
        tmp.write_text(markdown(rows, s))
        tmp.replace(args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
