"""Plan every real case (CThead +/- atlas vertebral arteries, OpenKBP) and print one table row per case.

Usage::

    .venv/bin/python benchmarks/plan_real_cases.py [--openkbp N] [--data ../shared/data]

For each case: whether a plan was found (or the clear reason why not), side, screw, depth, the
structures that were assessed (segmented and measured) and those that were not. OpenKBP cases use
their provided SpinalCord, Esophagus, Larynx, Mandible (and other) contours via ``--masks``;
everything else comes from osteoplan's classical segmentation. The obvious alternative, in the same run (last
column): each case with provided masks planned again without them (classical anatomy only).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OSTEOPLAN_QUIET", "1")

SHORT = {
    "spinal_canal": "canal", "spinal_cord": "cord", "vertebral_artery_left": "VA-L", "vertebral_artery_right": "VA-R",
    "common_carotid_artery_left": "CCA-L", "common_carotid_artery_right": "CCA-R",
    "internal_carotid_artery_left": "ICA-L", "internal_carotid_artery_right": "ICA-R",
    "internal_jugular_vein_left": "IJV-L", "internal_jugular_vein_right": "IJV-R", "pharynx": "pharynx",
    "esophagus": "oesoph", "trachea": "trachea", "larynx": "larynx", "airway": "airway", "other_bone": "bone",
    "mandible": "mandible",
}


def run_case(name: str, ct: Path, masks: Path | None) -> dict:
    from osteoplan.errors import OsteoplanError
    from osteoplan.imaging import read_volume
    from osteoplan.anatomy.pipeline import build_anatomy
    from osteoplan.planning.planner import plan_from_anatomy

    t0 = time.perf_counter()
    row = {"case": name}
    try:
        vol = read_volume(ct)
        row["voxel"] = "x".join(f"{s:.1f}" for s in vol.spacing_mm[::-1])
        an = build_anatomy(vol, masks=str(masks) if masks else None)
    except OsteoplanError as exc:
        row.update(result="no plan", reason=f"{type(exc).__name__}: {exc}"[:260], assessed="-", not_assessed="-")
        row["s"] = time.perf_counter() - t0
        return row
    try:
        plan = plan_from_anatomy(vol, an)
    except OsteoplanError as exc:
        from osteoplan.planning.protocol import load_protocol

        names = list(load_protocol().structures)
        seg = [n for n in names if an.labelmap.has(n)] + ["bone"]
        row.update(result="no plan", reason=f"{type(exc).__name__}: {exc}"[:260],
                   assessed="(segmented, not measured) " + ",".join(SHORT.get(n, n) for n in seg),
                   not_assessed=",".join(SHORT.get(n, n) for n in names if n not in seg and n != "other_bone"))
        row["s"] = time.perf_counter() - t0
        return row
    from osteoplan.planning.verdict import verdict_of

    b = plan.best
    row["assessed"] = ",".join(SHORT.get(n, n) for n in plan.assessed)
    row["not_assessed"] = ",".join(SHORT.get(n, n) for n in plan.not_assessed)
    if b is None:
        inf = plan.infeasibility
        top = sorted(inf.exclusions, key=lambda e: -e.excluded_first)[0]
        nm = inf.best_near_miss.violations if inf.best_near_miss else {}
        row.update(result=verdict_of(plan).code,
                   reason=f"{inf.n_candidates} cand.; first-failing mostly {top.constraint} ({top.excluded_first}); "
                          f"closest: " + ", ".join(f"{k} short {v:.1f}" for k, v in nm.items()))
    else:
        hyd = [f"{SHORT.get(c.structure, c.structure)} {c.displacement_needed_mm:.1f}" for c in b.clearances
               if c.status == "hydrodissection"]
        row.update(result=f"{verdict_of(plan).code} ({b.side})", reason=(
            f"screw {b.screw.diameter_mm:.1f}x{b.screw.length_mm:g} mm, depth {b.depth_total_mm:.0f} mm, "
            f"cc {b.angle_craniocaudal_deg:.0f}/ml {b.angle_mediolateral_deg:.0f} deg, containment "
            f"{b.containment_min_margin_mm:.1f} mm; hydrodissection: {', '.join(hyd) or 'none'}"))
    row["s"] = time.perf_counter() - t0
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    ap.add_argument("--openkbp", type=int, default=20, help="number of OpenKBP cases (sorted by number)")
    ap.add_argument("--no-cthead", action="store_true", help="OpenKBP cases only")
    ap.add_argument("--no-alternative", action="store_true", help="do not plan the cases again without their masks")
    args = ap.parse_args(argv)
    data = Path(args.data)
    if not data.is_dir():
        print(f"no data folder {data}", file=sys.stderr)
        return 1
    cases = [] if args.no_cthead else [
        ("cthead", data / "cthead" / "ct.nii.gz", None),
        ("cthead+atlasVA", data / "cthead" / "ct.nii.gz", data / "cthead" / "atlas_vessels")]
    kbp = sorted((p for p in (data / "openkbp").glob("pt_*") if p.is_dir()), key=lambda p: int(p.name.split("_")[1]))
    cases += [(p.name, p / "ct.nii.gz", p) for p in kbp[: args.openkbp]]
    print("| case | voxel (mm) | result | details / reason | assessed | NOT assessed | s | alternative: without the "
          "provided masks (classical anatomy only) |")
    print("|---|---|---|---|---|---|---|---|")
    n_ok = n_alt_ok = n_alt = 0
    for name, ct, masks in cases:
        r = run_case(name, ct, masks)
        n_ok += r["result"].startswith("feasible")  # the plan's verdict: feasible / feasible_hydrodissection
        alt = "-"
        if masks is not None and not args.no_alternative:
            a = run_case(name, ct, None)
            n_alt += 1
            n_alt_ok += a["result"].startswith("feasible")
            alt = f"{a['result']}; NOT assessed: {a['not_assessed']}"
        print(f"| {r['case']} | {r.get('voxel', '?')} | {r['result']} | {r['reason']} | {r['assessed']} | "
              f"{r['not_assessed']} | {r['s']:.1f} | {alt} |", flush=True)
    print(f"\n{n_ok} of {len(cases)} cases with a feasible verdict; every other case has its verdict or reason above.")
    if n_alt:
        print(f"alternative: of the {n_alt} cases with provided masks, {n_alt_ok} feasible without them "
              "(structures that only the masks give are then NOT assessed).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
