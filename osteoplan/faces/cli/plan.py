"""``osteoplan plan`` and ``osteoplan demo``: CT -> anatomy -> plan -> plan folder.

The plan folder (written atomically: nothing appears under its name until complete) holds
``plan.json`` (schema-versioned, :mod:`osteoplan.planning.model`), ``plan.mrk.json`` (3D Slicer
markups line skin entry -> target, LPS) and, when :func:`osteoplan.export.write_all` is available
and ``--no-report`` is not given, the report, images, segmentation and DICOM files.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from osteoplan.cliargs import add_reader_options, blame, lps_mm
from osteoplan.errors import InputError, safe_path
from osteoplan.faces.cli.summary import summary_text
from osteoplan.planning.protocol_names import DEFAULT_PROTOCOL


# --------------------------------------------------------------------------- commands
def _check_out(out: Path, overwrite: bool, inputs: tuple = ()) -> None:
    """Refuse, before any work, an --out that cannot be written (checked again atomically at the end).

    Raises
    ------
    InputError
        --out is a file, a non-empty folder (without --overwrite), lies under a file, or its nearest
        existing parent folder cannot be written to.
    """
    import tempfile

    out_r = out.resolve()
    for src in inputs:  # --overwrite replaces the whole folder: never the one holding the inputs
        if not src:
            continue
        src_r = Path(src).resolve()
        if src_r == out_r or out_r in src_r.parents:
            raise InputError("--out: it is the folder holding the input (CT, masks or protocol); writing the plan "
                             "there would replace it. Choose another --out.")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out: {safe_path(out)} is a file, not a folder; choose a folder path for --out.")
    from osteoplan.atomic import check_output_folder

    check_output_folder(out, overwrite)  # the current folder, other work in it, an earlier output
    parent = out.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"--out: cannot be created: {safe_path(parent)} is a file, not a folder; choose another --out.")
    try:  # a real write probe: permissions, read-only or pseudo file systems (/proc), full disks
        tempfile.TemporaryDirectory(dir=parent, prefix=".osteoplan-probe-").cleanup()
    except OSError as exc:
        raise InputError(f"--out: cannot write the output folder there ({exc.strerror or type(exc).__name__}); "
                         "choose another --out in a folder you can write to.") from None


def _risk(volume, anatomy) -> dict | None:
    """Fracture-risk summary from :mod:`osteoplan.risk` (None when the module is absent)."""
    import json

    from osteoplan.errors import OsteoplanError
    from osteoplan.progress import step

    try:
        from osteoplan.risk.assessment import assess
    except ImportError:
        return None
    if getattr(anatomy, "spine", None) is not None:
        # the risk stage reads a C2 lesion; for a thoracolumbar plan it is asked separately, at the lesion's level
        return {"summary": ["fracture risk not assessed with this plan: run 'osteoplan risk CT --level LEVEL' for "
                            "the level of the lesion"]}
    try:
        with step("fracture risk (SINS proposal, CT rigidity)"):
            rep = assess(volume, anatomy)
        return json.loads(json.dumps(rep.to_dict(sections=False), default=float))
    except OsteoplanError as exc:
        return {"error": str(exc), "summary": [f"fracture risk not assessed: {exc}"]}
    except Exception as exc:  # a fault in the risk stage must not prevent planning; it is reported
        return {"error": type(exc).__name__, "summary": [f"fracture risk not assessed (internal error {type(exc).__name__})"]}


def _run(volume, anatomy, args, out: Path, extra_files: dict[str, Any] | None = None, risk=None) -> int:
    from osteoplan.atomic import atomic_dir
    from osteoplan.export.slicer import write_markups_line
    from osteoplan.planning.model import save_plan
    from osteoplan.planning.planner import plan_from_anatomy
    from osteoplan.planning.protocol import load_protocol
    from osteoplan.progress import step

    with blame("--protocol"):
        protocol = load_protocol(args.protocol)
    _check_out(out, args.overwrite)
    if risk is None and not getattr(args, "no_risk", False):
        risk = _risk(volume, anatomy)
    protocol = _with_needles(protocol, getattr(args, "needles", None), args.side)
    with step("planning the trajectory (dense search)"):
        plan = plan_from_anatomy(volume, anatomy, protocol, side=args.side, risk=risk, level=getattr(args, "level", None))
    from osteoplan.export.cli import ct_voxels_sha256

    try:
        ctx = atomic_dir(out, overwrite=args.overwrite, manifest=getattr(args, "command", None) or "plan",
                         manifest_extra={"ct_voxels_sha256": ct_voxels_sha256(volume)})
        with ctx as tmp:
            for name, writer in (extra_files or {}).items():
                writer(tmp / name)
            save_plan(plan, tmp / "plan.json")
            if plan.best is not None:
                b = plan.best
                write_markups_line(tmp / "plan.mrk.json", [b.skin_entry_lps_mm, b.target_lps_mm],
                                   name="osteoplan trajectory", labels=("skin entry", "target"))
            if not args.no_report:
                try:
                    from osteoplan.export import write_all
                except ImportError:
                    write_all = None
                if write_all is not None:
                    from osteoplan.export.cli import options_from_args

                    write_all(tmp, plan, volume, anatomy, options_from_args(args))
            else:  # keep what 'osteoplan report' needs to add the report later (CT, segmentation)
                from osteoplan.export import save_report_inputs

                save_report_inputs(tmp, plan, volume, anatomy)
    except FileExistsError:
        raise InputError(f"--out: folder exists and is not empty ({safe_path(out)}); choose another --out or add "
                         "--overwrite.") from None
    print(summary_text(plan))
    print(f"Plan folder: {out}")
    from osteoplan.planning.verdict import verdict_of

    return verdict_of(plan).exit_code  # the plan folder is written whatever the verdict


def _with_needles(protocol, needles, side=None):
    """*protocol* with ``needles_per_level`` set from ``--needles`` (unchanged when not given).

    Raises
    ------
    InputError
        ``--needles`` with a protocol that places no needle, or two needles with one ``--side``.
    """
    if needles is None:
        return protocol
    with blame("--needles"):
        if protocol.needle is None:
            raise InputError(f"the protocol {protocol.name} places a screw, not needles; --needles is for a "
                             "vertebroplasty protocol (e.g. --protocol vertebroplasty-transpedicular).")
        if int(needles) == 2 and side in ("left", "right"):
            raise InputError(f"2 places a needle through each pedicle; --side {side} is for one needle: drop one of "
                             "the two options.")
    return protocol.model_copy(update={"needles_per_level": int(needles)})


def _add_common(p: argparse.ArgumentParser) -> None:
    from osteoplan.planning.protocol_names import available_protocols

    p.add_argument("--protocol", default=DEFAULT_PROTOCOL,
                   help=f"protocol name or .toml file (default {DEFAULT_PROTOCOL}; shipped: "
                   f"{', '.join(available_protocols())})")
    p.add_argument("--side", choices=("left", "right", "best"), default=None,
                   help="skin-entry side (default: the protocol's, 'best' = both searched)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier osteoplan output folder (never a folder holding other files)")
    p.add_argument("--no-report", action="store_true",
                   help="no report/images/DICOM now: plan.json, plan.mrk.json and what 'osteoplan report' needs later "
                   "(ct.nii.gz, segmentation)")
    p.add_argument("--no-risk", action="store_true", help="skip the fracture-risk assessment (SINS proposal, rigidity)")
    p.add_argument("--profile", action="store_true",
                   help="print the stages (and the anatomy's sub-stages) with their CPU and wall time on stderr")
    try:
        from osteoplan.export.cli import add_export_options

        add_export_options(p)
    except ImportError:  # pragma: no cover
        pass


def _profiled(handler):
    """*handler* run under :func:`osteoplan.progress.profiling` when ``--profile`` is given (table on stderr)."""

    def run(args: argparse.Namespace) -> int:
        if not getattr(args, "profile", False):
            return handler(args)
        from osteoplan.progress import format_profile, profiling

        c0, t0 = time.process_time(), time.perf_counter()
        with profiling() as rows:
            try:
                return handler(args)
            finally:
                print("Profile (CPU = time.process_time of the whole process, all threads):\n"
                      + format_profile(rows, time.process_time() - c0, time.perf_counter() - t0), file=sys.stderr)

    return run


def _plan_cmd(args: argparse.Namespace) -> int:
    from osteoplan.cliargs import build_anatomy_from_args, check_level_options, check_masks_path, read_ct_from_args
    from osteoplan.planning.protocol import load_protocol
    from osteoplan.progress import step

    t0 = time.perf_counter()
    _check_out(Path(args.out) if args.out else Path("plan-out"), args.overwrite,
               (args.ct, args.masks, args.protocol if str(args.protocol or "").endswith(".toml") else None))
    with blame("--protocol"):
        protocol = load_protocol(args.protocol)  # a bad protocol fails before the long steps
    _with_needles(protocol, args.needles, args.side)  # so do conflicting options
    check_level_options(protocol, args.level, args.level_point)  # and a level the protocol does not plan
    check_masks_path(args.masks)
    with step("reading the CT"):
        volume = read_ct_from_args(args.ct, args)
    with blame("--protocol"):
        protocol = load_protocol(args.protocol)
    from osteoplan.planning.procedures import get_procedure

    proc = get_procedure(protocol.procedure)
    what = "C2/dens" if proc.name.startswith("c2") else "vertebrae, pedicles"
    with step(f"building the anatomy (masks + segmentation + {what})"):
        anatomy = build_anatomy_from_args(volume, masks=args.masks, hint_lps=args.hint_lps, procedure=proc,
                                          level=args.level or protocol.default_level, level_point=args.level_point)
    out = Path(args.out) if args.out else Path("plan-out")
    rc = _run(volume, anatomy, args, out)
    print(f"Total time {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return rc


def _demo_cmd(args: argparse.Namespace) -> int:
    from osteoplan.anatomy.phantom import PhantomParams, make_phantom
    from osteoplan.anatomy.pipeline import build_anatomy
    from osteoplan.planning.protocol import load_protocol
    from osteoplan.progress import step

    _check_out(Path(args.out), args.overwrite,
               (args.protocol if str(args.protocol or "").endswith(".toml") else None,))
    with blame("--protocol"):
        load_protocol(args.protocol)
    with step("generating the neck phantom (CT + ground truth)"):
        ph = make_phantom(PhantomParams(seed=args.seed))
    volume = ph.volume

    def write_ct(path: Path) -> None:
        from osteoplan.export import save_ct_nifti

        save_ct_nifti(path, volume)

    if args.segment:
        with step("building the anatomy from the phantom CT (segmentation)"):
            anatomy = build_anatomy(volume)
    else:
        lesion = SimpleNamespace(mask=ph.truth.get("lesion")) if ph.truth.has("lesion") else None
        anatomy = SimpleNamespace(labelmap=ph.truth, landmarks=ph.landmarks, lesion=lesion, contrast_detected=True,
                                  messages=["demo: the phantom's exact label map stands in for segmentation "
                                            "(use --segment to run it)"])
    out = Path(args.out)
    return _run(volume, anatomy, args, out, extra_files={"ct.nii.gz": write_ct})


#: The exit statuses of ``osteoplan plan`` / ``demo`` (the verdict's, osteoplan.planning.verdict.EXIT_CODES).
EXIT_STATUS_HELP = ("exit status: 0 feasible (with or without hydrodissection); 3 not cleared (a path was found but "
                    "structures at risk were not assessed); 4 no feasible path; 5 route not assessable on this CT "
                    "(extend the scan); the plan folder is written in all four cases. 2 bad input, 1 internal error, "
                    "130 interrupted.")


def register(sub) -> None:
    """Add ``plan`` and ``demo`` to the top-level command line."""
    p = sub.add_parser("plan", help="plan the trajectories of a protocol (C2 dens screw, vertebroplasty...) on a CT",
                       description="Read a CT, build the anatomy (provided masks + segmentation), search the "
                       "protocol's trajectories, and write plan.json + plan.mrk.json (+ report) to --out. The RESULT "
                       "line is the plan's verdict.", epilog=EXIT_STATUS_HELP)
    p.add_argument("ct", metavar="CT", help="CT: DICOM folder or zip, NIfTI or NRRD file")
    p.add_argument("--masks", default=None, help="provided masks: folder of NIfTI, .seg.nrrd, DICOM SEG...")
    add_reader_options(p)
    p.add_argument("--out", default=None, help="output plan folder (default ./plan-out)")
    p.add_argument("--hint-lps", nargs=3, type=lps_mm, metavar=("X", "Y", "Z"), default=None,
                   help="one point inside C2, body or dens (LPS mm): it decides the level; refused "
                   "when it lies below, or disagrees with, a plausible C2 found without it")
    p.add_argument("--level", default=None, metavar="LEVEL",
                   help="vertebra level(s) for a spine protocol: T12, T10-L1 or T10,T12 (vertebroplasty)")
    p.add_argument("--level-point", default=None, metavar="LEVEL:X,Y,Z",
                   help="a point inside a named vertebra (LPS mm), e.g. T12:10,-3,120: anchors the level count "
                   "(a wrong level is the classic error of vertebroplasty)")
    p.add_argument("--needles", type=int, choices=(1, 2), default=None,
                   help="needles per level for a vertebroplasty: 1 (unipedicular, across the midline) or 2 "
                   "(bipedicular); default the protocol's")
    _add_common(p)
    p.set_defaults(handler=_profiled(_plan_cmd))

    d = sub.add_parser("demo", help="plan on the generated neck phantom (the README's main-job command)",
                       description="Generate the synthetic neck CT phantom, write its CT into --out, plan, and write "
                       "the same plan folder as 'osteoplan plan'.", epilog=EXIT_STATUS_HELP)
    d.add_argument("--out", default="demo-out", help="output folder (default ./demo-out)")
    d.add_argument("--seed", type=int, default=0, help="phantom noise seed")
    d.add_argument("--segment", action="store_true",
                   help="segment the phantom CT instead of using its exact label map")
    _add_common(d)
    d.set_defaults(handler=_profiled(_demo_cmd))
