"""OpenKBP C2 benchmark: is each "C2 located" claim at the right level? Checked against the provided contours.

The check is INDEPENDENT of the C2 locator: it uses the radiotherapy contours that come with each
OpenKBP case (Babier et al., Med Phys 2021), never the locator's own intermediate results.

Brainstem check
    The provided ``Brainstem`` ends caudally at the cervico-medullary junction. By the international
    head-and-neck OAR consensus (Brouwer et al., Radiother Oncol 2015;117:83, DAHANCA/EORTC/GORTEC/
    NRG/TROG...) its caudal border is drawn at the tip of the dens of C2; older (RTOG) practice stops
    it at the foramen magnum, whose anterior margin is the basion, which lies above the dens tip by the
    basion-dens interval (BDI < 8.5 mm in 95 % of adults on MDCT, Rojas et al., AJNR 2007;28:1819;
    < 12 mm on radiographs, Harris et al., AJR 1994;162:881). So
    ``brainstem_bottom_z - apex_z`` is expected in 0..+12 mm, widened by the coarse slices (one slice
    of contour rounding plus one slice of apex placement, each <= 3 mm on OpenKBP; observers also
    differ by "a few slices" on where the tip is, Radiat Oncol 2020;15:187): the accepted band is
    ``osteoplan.anatomy.c2.BRAINSTEM_APEX_BAND_MM``. A C3 taken for C2 puts the apex about one C2
    height (~38 mm) too low (offset ~ +40 mm); a skull-base or C1 structure puts it above (negative).
Cord check
    The dens apex lies in front of the cord: dens tip to ventral dura 7.7 +/- 1.7 mm (JKNS 2018;61(4)),
    plus half the cord's AP diameter (about 4 mm): the apex must be 5..35 mm anterior to the centre
    of the provided SpinalCord/Brainstem contour at its level and within 15 mm of it left-right
    (engineering tolerance, no published source).

Comparison (the obvious alternative, same run): the locator's FIRST candidate always accepted (top of
the vertebral column, no plausibility gate, no next level: the behaviour before the gate) versus its
final answer. A candidate finally refused is listed with its figures in parentheses and the reason.
Nothing in this script feeds back into the locator.

Usage::

    .venv/bin/python benchmarks/openkbp_c2.py [--limit N] [--cases pt_1,pt_2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _instrument():
    """Record the locator's first candidate (before its plausibility gate and retries) and the
    candidate it rejected, if any (kept on the exception). Read-only: nothing changes the result."""
    import osteoplan.anatomy.c2 as c2mod

    box: dict = {}
    orig = c2mod.locate_c2
    orig_check = c2mod.plausibility_problems

    def check(lm, *a, **kw):
        box.setdefault("first", lm)
        return orig_check(lm, *a, **kw)

    def wrapped(*a, **kw):
        box.clear()
        try:
            return orig(*a, **kw)
        except Exception as exc:
            cand = getattr(exc, "candidate", None)
            if cand is not None:
                box["candidate"] = cand
            raise

    c2mod.locate_c2 = wrapped
    c2mod.plausibility_problems = check
    return box


def _offsets(vol, lm, bs, cord) -> dict:
    from osteoplan.anatomy.c2 import BRAINSTEM_APEX_BAND_MM, brainstem_apex_offset_mm, cord_apex_offset_mm

    row: dict = {"ai_apex_mm": round(lm.anteroinferior_to_apex_mm, 1)}
    if bs is not None:
        off = brainstem_apex_offset_mm(vol, bs, lm.apex_lps_mm)
        row["bs_apex_mm"] = None if off is None else round(off, 1)
    if bs is not None or cord is not None:
        neural = np.zeros(vol.shape, bool)
        for m in (bs, cord):
            if m is not None:
                neural |= m
        co = cord_apex_offset_mm(vol, neural, lm.apex_lps_mm)
        if co is not None:
            row["apex_ant_of_cord_mm"], row["apex_lat_of_cord_mm"] = round(co[0], 1), round(co[1], 1)
    lo, hi = BRAINSTEM_APEX_BAND_MM
    checks = []
    if row.get("bs_apex_mm") is not None:
        checks.append(lo <= row["bs_apex_mm"] <= hi)
    if "apex_ant_of_cord_mm" in row:
        checks.append(5.0 <= row["apex_ant_of_cord_mm"] <= 35.0 and abs(row["apex_lat_of_cord_mm"]) <= 15.0)
    row["checkable"] = row.get("bs_apex_mm") is not None
    row["consistent"] = all(checks) if row["checkable"] else None
    return row


def run_case(case: Path, box: dict) -> dict:
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
    lm = an.landmarks
    if lm is not None:
        row["c2"] = "found"
    else:
        row["c2"] = "not found"
        row["reason"] = next((m for m in an.messages if m.startswith("C2 NOT located")), "")
        lm = box.get("candidate")  # the rejected candidate, if the locator got that far
        row["rejected_candidate"] = lm is not None
    bs_p, cord_p = case / "Brainstem.nii.gz", case / "SpinalCord.nii.gz"
    bs = read_volume(bs_p).array > 0.5 if bs_p.exists() else None
    cord = read_volume(cord_p).array > 0.5 if cord_p.exists() else None
    if bs is not None and not bs.any():
        bs = None
    if lm is not None:
        row["confidence"] = lm.confidence
        row.update(_offsets(vol, lm, bs, cord))
    if box.get("first") is not None:
        row["first"] = _offsets(vol, box["first"], bs, cord)
    return row


def _fmt(v, w):
    return f"{'' if v is None else v:>{w}}"


def main(argv=None) -> int:
    import os

    os.environ.setdefault("OSTEOPLAN_QUIET", "1")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0, help="only the first N cases")
    ap.add_argument("--cases", default="", help="comma-separated case names")
    ap.add_argument("--json", default="", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    from osteoplan.anatomy.c2 import BRAINSTEM_APEX_BAND_MM, PRIOR_AI_TO_APEX_MM
    from osteoplan.shared_data import openkbp_cases

    cases = openkbp_cases(args.cases, args.limit)
    if cases is None:
        print("../shared/data/openkbp is absent; nothing to benchmark", file=sys.stderr)
        return 1
    box = _instrument()
    lo, hi = BRAINSTEM_APEX_BAND_MM
    print(f"brainstem-bottom minus dens-apex band: {lo:+.0f}..{hi:+.0f} mm; apex 5..35 mm anterior to the cord, "
          f"|left-right| <= 15 mm")
    hdr = (f"{'case':8} {'C2':10} {'conf':>5} {'AI-apex':>7} {'bs-apex':>7} {'ant':>5} {'lat':>5} "
           f"{'plausible':>9} {'s':>5}  reason")
    print(hdr)
    print("-" * len(hdr))
    rows = []
    for c in cases:
        r = run_case(c, box)
        rows.append(r)
        pl = {True: "yes", False: "NO", None: "n/a"}[r.get("consistent")]
        if r["c2"] != "found" and r.get("rejected_candidate"):
            pl = "(" + pl + ")"  # figures of the rejected candidate
        print(f"{r['case']:8} {r['c2']:10} {_fmt(r.get('confidence'), 5)} {_fmt(r.get('ai_apex_mm'), 7)} "
              f"{_fmt(r.get('bs_apex_mm'), 7)} {_fmt(r.get('apex_ant_of_cord_mm'), 5)} "
              f"{_fmt(r.get('apex_lat_of_cord_mm'), 5)} {pl:>9} {r.get('seconds', ''):>5}  "
              f"{r.get('reason', '')[15:110]}", flush=True)
    m, sd = PRIOR_AI_TO_APEX_MM

    def summary(label, sel):
        n = len(sel)
        chk = [r for r in sel if r.get("checkable")]
        ok = sum(r["consistent"] is True for r in chk)
        ai = [r["ai_apex_mm"] for r in sel if r.get("ai_apex_mm") is not None]
        in_rng = sum(25.0 <= x <= 55.0 for x in ai)
        in_2sd = sum(m - 2 * sd <= x <= m + 2 * sd for x in ai)
        print(f"{label}: {n}; brainstem-checkable {len(chk)}: consistent {ok}, inconsistent {len(chk) - ok}"
              f"{f' ({100.0 * ok / len(chk):.0f} % consistent)' if chk else ''}; "
              f"AI-apex in 25-55 mm {in_rng}/{len(ai)}, within +/-2 SD ({m - 2 * sd:.1f}-{m + 2 * sd:.1f}) "
              f"{in_2sd}/{len(ai)}")
        return len(chk), ok

    n = len(rows)
    found = [r for r in rows if r["c2"] == "found"]
    notf = [r for r in rows if r["c2"] != "found"]
    clear = sum(bool(r.get("reason")) for r in notf)
    print()
    print(f"cases: {n}; C2 located: {len(found)}; NOT located with a reason: {clear}; "
          f"unexplained: {n - len(found) - clear}")
    fchk, fok = summary("located (final answer)", found)
    rej = [r for r in notf if r.get("rejected_candidate")]
    if rej:
        summary("candidates finally rejected by the plausibility gate (their figures)", rej)
    firsts = [r["first"] for r in rows if "first" in r]
    if firsts:
        achk, aok = summary("alternative: the first candidate always accepted (no gate, no next level)", firsts)
        if achk and fchk:
            print(f"wrong-level claims among checkable cases: final {fchk - fok}/{fchk} "
                  f"({100.0 * (fchk - fok) / fchk:.0f} %) vs first candidate {achk - aok}/{achk} "
                  f"({100.0 * (achk - aok) / achk:.0f} %); right-level claims {fok} vs {aok} "
                  f"(ratio {fok / max(aok, 1):.2f})")
    secs = [r["seconds"] for r in rows if "seconds" in r]
    if secs:
        print(f"time per case: median {np.median(secs):.1f} s, max {max(secs):.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
