"""``osteoplan verify PLAN_DIR CONTROL_CT``: where the instrument is against the plan, on a control CT.

Reads the plan folder (``plan.json``, its CT and segmentation), registers the control CT to the planning CT
around the target, finds the instrument and prints the figures (``--json``: one JSON object). With ``--out``
the figures are also written to ``verify.json`` and the planned-vs-actual page (``--lang en|fr``) to
``verify.png`` (reformats), ``verify_drr.png`` (simulated fluoroscopy), ``verify.html`` and ``verify.pdf`` in that
folder (each written atomically).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from osteoplan.cliargs import ARGUMENT_NAMES, add_reader_options, blame, positive_int


def _fmt(v) -> str:
    return "-" if v is None else "(" + ", ".join(f"{x:.1f}" for x in v) + ")"


def report_text(res: dict) -> str:
    """Plain-text summary of :func:`osteoplan.verification.verify_control`'s result (structures by the names
    the report and the web pages give them, :func:`osteoplan.views.i18n.structure_label`)."""
    from osteoplan.views.i18n import covering_words, structure_label, t
    from osteoplan.views.verification import containment_status

    L = [f"VERIFY ({res['stage']}): tip {res['tip_to_plan_mm']:.1f} mm from the planned path, "
         f"{res['angle_to_plan_deg']:.1f} deg off it"]
    summ = res.get("summary")
    if summ is None:  # results written before the summary field
        from osteoplan.verification.pipeline import attention_summary

        summ = attention_summary(res.get("clearances", []))
    if summ["needs_attention"]:  # said in the headline, not only in the table below (no exit code for it)
        L[0] += "\n" + summ["headline"]
    r = res["registration"]
    L.append(f"  registration: bone surfaces near the target {r['residual_median_mm']:.2f} mm apart (median; 90th "
             f"percentile {r['residual_p90_mm']:.2f} mm), {100 * r['surface_overlap']:.0f} % matched within 2 mm")
    if r.get("target_shift_lps_mm") is not None:
        bound = r.get("motion_bound_mm")
        L.append(f"  patient motion at the target {r['target_shift_mm']:.1f} mm "
                 f"(LPS {_fmt(r['target_shift_lps_mm'])} mm; "
                 + (f"plausible up to {bound:g} mm)" if bound is not None else "unbounded search: other frame)"))
    L.append(f"  tip         LPS {_fmt(res['tip_lps_mm'])} mm (planning CT frame); {res['tip_offset_in_words']}")
    if res.get("tip_uncertainty_mm") is not None:
        L.append(f"  tip uncertainty +-{res['tip_uncertainty_mm']:.1f} mm along the instrument (stated, see "
                 "docs/verification.md)")
    L.append(f"  tip to target {res['tip_to_target_mm']:.1f} mm")
    if res.get("predicted_tip_lps_mm") is not None:
        if res["remaining_depth_mm"] < 0:  # already beyond: say so, never "pushed on" by a negative depth
            L.append(f"  PAST the target depth by {-res['remaining_depth_mm']:.1f} mm along its axis; its line crosses "
                     f"the target depth at LPS {_fmt(res['predicted_tip_lps_mm'])}, "
                     f"{res['lateral_offset_at_target_mm']:.1f} mm from the target ({res['lateral_offset_in_words']})")
        else:
            L.append(f"  pushed on along its axis: {res['remaining_depth_mm']:.1f} mm to the target depth, arriving at "
                     f"LPS {_fmt(res['predicted_tip_lps_mm'])}, {res['lateral_offset_at_target_mm']:.1f} mm from the "
                     f"target ({res['lateral_offset_in_words']})")
    c = res["correction"]
    steps = c.get("steps") or [c["redirect_in_words"]]
    L.append(f"  correction: {steps[0]}")
    L += [f"              {s}" for s in steps[1:]]  # one step a line, in the order they are done
    cn = c.get("carm_bullseye_corrected")
    if cn is not None:
        L.append(f"  C-arm bull's-eye down the corrected line (pivot to target): {cn['label']}")
        L.append(f"  C-arm change to follow the correction: {c['carm_change']}")
        L.append(f"  C-arm bull's-eye for reference: instrument now {c['carm_bullseye_instrument']['label']}, plan "
                 f"{c['carm_bullseye_plan']['label']}")
    else:  # results written before the corrected line's bull's-eye
        L.append(f"  C-arm bull's-eye: instrument {c['carm_bullseye_instrument']['label']}, plan "
                 f"{c['carm_bullseye_plan']['label']}")
    L.append("  clearances of the actual line (instrument surface to structure):")
    names = {row["structure"]: structure_label(row["structure"]) for row in res["clearances"]}
    width = max([32] + [len(n) for n in names.values()])
    for row in res["clearances"]:
        a = "-" if row["actual_clearance_mm"] is None else f"{row['actual_clearance_mm']:.1f}"
        if row["actual_clearance_mm"] is not None and (row.get("note") or "").startswith("at least"):
            a = ">=" + a  # capped distance (as the plan's summary says it)
        p = "-" if row["planned_clearance_mm"] is None else f"{row['planned_clearance_mm']:.1f}"
        if row.get("planned_clearance_capped"):
            p = ">=" + p
        st = {"pass": "pass", "inside_margin": "INSIDE MARGIN", "crosses": "CROSSES",
              "not_assessed": "not assessed", "covered": "covered"}.get(row["status"], row["status"])
        if row.get("covered_by") == "containment":
            st = containment_status(row)
        elif row["status"] == "covered" and row.get("covered_by"):
            st = t("status_covered_by").format(by=covering_words(row["covered_by"]))
        elif row["status"] == "not_clear":
            st = t("verify_status_not_clear").format(by=covering_words(row.get("covered_by") or ""))
        L.append(f"    {names[row['structure']]:<{width}} margin {row['margin_mm']:>4.1f}  plan {p:>6}  now {a:>6} mm  {st}")
    if "postop" in res:
        p = res["postop"]
        L.append(f"  post-op: entry error {p['entry_error_mm']:.1f} mm, tip error {p['tip_error_mm']:.1f} mm, angle "
                 f"error {p['angle_error_deg']:.1f} deg")
        if p.get("grade"):
            L.append(f"  breach: {p['max_breach_mm']:.1f} mm outside the cortex"
                     + (f" ({p['breach_where']})" if p.get("breach_where") else "")
                     + f"; grade {p['grade']} ({p['grade_source']})")
        else:
            L.append(f"  breach: {p.get('breach_note', 'not assessed')}")
    cont = res.get("containment")
    if cont is not None:
        if cont.get("measured"):
            level = cont["bone"].replace("vertebrae_", "")
            L.append(f"  containment in vertebra {level} (how the structures covered by containment "
                     f"were known): {cont['method']}; bone entry LPS {_fmt(cont['bone_entry_lps_mm'])} mm, "
                     f"entry skip {cont['entry_skip_mm']:.1f} mm, tip skip {cont['tip_skip_mm']:.1f} mm, "
                     f"margin required {cont['margin_mm']:.1f} mm")
        else:
            L.append(f"  containment not measured on the actual line: {cont['reason']}")
    for n in res.get("notes", []):
        L.append(f"  note: {n}")
    return "\n".join(L)


def _containment_rule(plan) -> dict:
    """The plan's protocol's containment margin and tip skip (for the structures the plan counted covered by
    containment), or nothing when the protocol the plan names cannot be loaded (they then stay not assessed)."""
    try:
        from osteoplan.planning.protocol import load_protocol

        imp = load_protocol(plan.protocol_name).implant()
        return {"containment_margin_mm": float(imp.containment_margin_mm),
                "containment_skip_tip_mm": float(imp.containment_skip_tip_mm)}
    except Exception:  # noqa: BLE001 - an unknown or old protocol: not assessed, said in the row
        return {}


def _verify(args: argparse.Namespace) -> int:
    from osteoplan.errors import InputError
    from osteoplan.export import load_plan_dir
    from osteoplan.progress import step
    from osteoplan.verification import verify_control

    with step("reading the plan folder"), blame(ARGUMENT_NAMES["plan_dir"]):
        plan, volume, lm = load_plan_dir(args.plan_dir)
    if plan.best is None:
        raise InputError(f"{ARGUMENT_NAMES['plan_dir']}: the plan has no trajectory (verdict: no feasible path); "
                         "there is nothing to verify against.")
    with step("reading the control CT"), blame("the control CT (argument CONTROL_CT)"):
        if not Path(args.control_ct).exists():
            raise InputError("not found; check the path (a DICOM folder or zip, a NIfTI or an NRRD file).")
        from osteoplan.cliargs import read_volume_from_args

        control = read_volume_from_args(args.control_ct, args)
    masks = {n: lm.get(n) for n in lm.names()} if lm is not None else {}
    sources = dict(lm.sources) if lm is not None else {}
    cont_kw = _containment_rule(plan)
    with step("registering, finding the instrument, measuring"):
        res = verify_control(plan.best, volume, control, masks=masks, sources=sources, stage=args.stage,
                             instrument_number=args.instrument, **cont_kw)
    if args.out:
        from osteoplan.atomic import atomic_write_bytes, atomic_write_text

        with blame("--out"):
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / "verify.json", json.dumps(res, indent=2) + "\n")
            if not args.no_page:
                from osteoplan.views.verification import (render_verification_drr_png, render_verification_png,
                                                          verification_html)

                with step("rendering the planned-vs-actual page"):
                    b = plan.best
                    png = render_verification_png(control, res, b.skin_entry_lps_mm, b.target_lps_mm, lang=args.lang)
                    drr = render_verification_drr_png(control, res, b.skin_entry_lps_mm, b.target_lps_mm,
                                                      lang=args.lang)
                    atomic_write_bytes(out / "verify.png", png)
                    atomic_write_bytes(out / "verify_drr.png", drr)
                    page = verification_html(res, png, lang=args.lang, drr_png=drr)
                    atomic_write_text(out / "verify.html", page)
                if not args.no_pdf:
                    from osteoplan.export.report import html_to_pdf

                    with step("writing the PDF page"):
                        atomic_write_bytes(out / "verify.pdf", html_to_pdf(page))
    if args.json:
        print(json.dumps(res))
    else:
        print(report_text(res))
        from osteoplan.planning.image_warnings import image_warnings

        for w in image_warnings(control, face="cli"):  # what the reader did to the control CT (gap interpolated...)
            print(f"warning: control {w}")
        if args.out:
            print(f"Figures: {Path(args.out) / 'verify.json'}")
    return 0


def register(sub) -> None:
    """Add ``verify`` to the top-level subparsers."""
    p = sub.add_parser("verify", help="check a control CT against the plan (instrument tip, angle, correction)",
                       description="Register a control CT (after the trocar, the guide pin or the screw) to the "
                       "planning CT around the target, find the instrument and measure it against the plan, in the "
                       "planning CT's frame.",
                       epilog="What it reports (text, --json, and with --out the page): the instrument's tip distance "
                       "to the planned path and to the target (mm), its angle to the plan (deg), how far it is short "
                       "of or past the target depth, where the tip will be at the target depth if pushed on (the "
                       "miss, mm), the correction (withdraw first when the tip is past the target; the turn about "
                       "the bone entry that aims the line at the target; the C-arm bull's-eye for the corrected "
                       "line), and every structure's clearance re-measured on the instrument's actual line, a "
                       "margin breach first. With them: the registration's residual (mm) and the tip's stated "
                       "uncertainty (mm; above 1 mm the output asks to check the tip on the images). How each figure "
                       "is measured and its limits: docs/verification.md. "
                       "Exit status: 0 measured (NOT 'on plan': read the first line, or verify.json's summary); 2 bad "
                       "input or not measurable (registration refused, no instrument, several instruments, target "
                       "not covered); 1 internal error.")
    p.add_argument("plan_dir", metavar="PLAN_DIR", help="plan folder written by 'osteoplan plan' or 'osteoplan demo'")
    p.add_argument("control_ct", metavar="CONTROL_CT", help="control CT: DICOM folder or zip, NIfTI or NRRD")
    p.add_argument("--stage", choices=("trocar", "pin", "screw"), default="pin",
                   help="which instrument is in place (default pin); 'screw' adds the post-operative figures")
    p.add_argument("--instrument", type=positive_int, default=None, metavar="N",
                   help="when several instruments are found, the one to measure (as numbered in the message)")
    p.add_argument("--out", default=None, help="folder to write verify.json, the images (verify.png: reformats, "
                   "verify_drr.png: simulated fluoroscopy) and the page (verify.html, verify.pdf) into")
    p.add_argument("--no-page", action="store_true", help="with --out: only verify.json (no image, no HTML page)")
    p.add_argument("--lang", choices=("en", "fr"), default="en", help="language of the page (default en)")
    p.add_argument("--no-pdf", action="store_true", help="with --out: no verify.pdf (the HTML page only)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the text summary")
    add_reader_options(p)
    p.set_defaults(handler=_verify)
