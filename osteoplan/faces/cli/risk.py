"""``osteoplan risk``: fracture-risk scores of a CT with their evidence.

Segments the CT with the anatomy stage (``osteoplan.anatomy.pipeline.build_anatomy``, imported
lazily), then prints the lesion metrics, the SINS (CT-proposed components with their
measurements, clinician inputs, missing ones as a range) and the CT structural rigidity of the dens.
"""

from __future__ import annotations


import argparse
import json
from pathlib import Path
from typing import Any

from osteoplan.cliargs import ARGUMENT_NAMES, add_reader_options, blame, lps_mm, read_ct_from_args
from osteoplan.errors import InputError


def register(sub) -> None:
    """Add ``risk`` to the top-level parser's subparsers."""
    p = sub.add_parser(
        "risk",
        help="fracture risk of C2: SINS with CT evidence, lesion metrics, CT structural rigidity",
        description="Score the fracture risk of a C2 (dens) lesion: SINS (Fisher, Spine 2010) with the "
        "components the CT can tell (location, lesion type, collapse, posterolateral involvement) and their "
        "measurements, lesion metrics (volume, share of dens/body, cortical breach) and CT-based structural "
        "rigidity along the dens axis (loss >= 35 % flagged, Snyder JBJS 2006). Pain and alignment are "
        "clinical inputs: without them the SINS is given as a range.",
    )
    p.add_argument("ct", help="CT: DICOM folder/zip, NIfTI or NRRD")
    p.add_argument("--masks", help="provided masks (folder of NIfTI, multilabel NIfTI, .seg.nrrd, DICOM SEG or RTSTRUCT)")
    p.add_argument("--pain", choices=("mechanical", "occasional", "none"),
                   help="SINS pain: mechanical (3), occasional non-mechanical (1), pain-free (0)")
    p.add_argument("--alignment", choices=("subluxation", "deformity", "normal"),
                   help="SINS alignment: subluxation/translation (4), de novo deformity (2), normal (0)")
    p.add_argument("--override", action="append", default=[], metavar="COMPONENT=VALUE",
                   help="replace a CT proposal, e.g. --override collapse=under-50 (repeatable)")
    p.add_argument("--level", default="C2", help="vertebral level of the lesion (default C2)")
    add_reader_options(p)
    p.add_argument("--hint-lps", type=lps_mm, nargs=3, metavar=("X", "Y", "Z"),
                   help="one point inside C2, body or dens (LPS mm): it decides the level; refused "
                   "when it lies below, or disagrees with, a plausible C2 found without it")
    p.add_argument("--no-rigidity", action="store_true", help="skip the CT rigidity analysis")
    p.add_argument("--sections", action="store_true", help="print every rigidity section")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument("--out", help="also write the JSON report to this file (atomic)")
    p.add_argument("--plot", help="write the rigidity profile figure (PNG) to this file")
    p.set_defaults(handler=_risk)


def _parse_overrides(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for it in items:
        if "=" not in it:
            raise InputError(f"--override expects COMPONENT=VALUE (e.g. collapse=under-50); got '{it}'.")
        k, v = it.split("=", 1)
        out[k.strip().replace("-", "_")] = v.strip()
    return out


def _build_anatomy(volume: Any, masks: str | None, hint_lps: Any) -> Any:
    """The anatomy stage's result for this CT (errors about --masks / --hint-lps name them)."""
    from osteoplan.cliargs import build_anatomy_from_args

    return build_anatomy_from_args(volume, masks=masks or None, hint_lps=tuple(hint_lps) if hint_lps else None)


def _print_sections(report: Any) -> None:
    prof = report.rigidity
    if prof is None:
        return
    print("  s (mm)  region  EA (kN)  EI_min (N m^2)  GJ (N m^2)  loss EA/EI/GJ (%)  lesion (mm^2)")
    for s in prof.sections:
        a = s.actual
        print(f"  {s.s_mm:+6.1f}  {s.region:6s}  {a.ea_n / 1e3:7.2f}  {a.ei_min_nmm2 / 1e6:14.4f}  "
              f"{a.gj_nmm2 / 1e6:10.4f}  {100 * s.loss_ea:5.1f}/{100 * s.loss_ei_min:5.1f}/{100 * s.loss_gj:5.1f}"
              f"  {s.lesion_area_mm2:8.1f}")


def _check_output_file(path: str, option: str) -> None:
    """Refuse an output file path that cannot be written, before the long computation.

    Raises
    ------
    InputError
        *path* is a folder, or its folder cannot be created or written to.
    """
    import os
    import tempfile

    p = Path(path)
    if p.is_dir():
        raise InputError(f"{option}: must be a file path, not a folder; e.g. {option} risk.json.")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".osteoplan-probe.", dir=p.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{option}: cannot write the file there ({exc.strerror or type(exc).__name__}); choose a "
                         "folder that exists and that you can write to.") from None


def _risk(args: argparse.Namespace) -> int:
    import sys

    from osteoplan.progress import step
    from osteoplan.risk.assessment import assess

    overrides = _parse_overrides(args.override)
    ct = Path(args.ct)
    if not ct.exists():
        raise InputError(f"{ARGUMENT_NAMES['ct']}: not found; check the path.")
    from osteoplan.cliargs import check_masks_path

    check_masks_path(args.masks)
    for option, value in (("--out", args.out), ("--plot", args.plot)):
        if value:
            _check_output_file(value, option)
            inputs = [ct] + ([Path(args.masks)] if args.masks else [])
            if any(Path(value).resolve() == i.resolve() or Path(value).resolve().is_relative_to(i.resolve())
                   for i in inputs if i.exists()):
                raise InputError(f"{option}: would overwrite an input (the CT or the masks); choose another file.")
    if args.out and args.plot and Path(args.out).resolve() == Path(args.plot).resolve():
        raise InputError("--out and --plot name the same file; give two different files.")
    with step("reading the CT"):
        volume = read_ct_from_args(ct, args)
    with step("segmenting C2 and the lesion"):
        anatomy = _build_anatomy(volume, args.masks, args.hint_lps)
    with step("scoring fracture risk"):
        report = assess(volume, anatomy, pain=args.pain, alignment=args.alignment, overrides=overrides,
                        level=args.level, rigidity=not args.no_rigidity)
    data = report.to_dict()
    if args.plot and report.rigidity is not None:
        from osteoplan.risk.plot import plot_rigidity_profile

        with blame("--plot"):
            plot_rigidity_profile(report.rigidity, args.plot)
    elif args.plot:
        print("note: no rigidity profile was computed (--no-rigidity or no C2 axis), so no --plot figure was "
              "written.", file=sys.stderr)
    if args.out:
        from osteoplan.atomic import atomic_write_text

        with blame("--out"):
            atomic_write_text(args.out, json.dumps(data, indent=1))
    if args.json:
        print(json.dumps(data, indent=1))
        return 0
    from osteoplan.planning.image_warnings import image_warnings

    for w in image_warnings(volume, face="cli"):  # the reader's warnings from its data: no file names, CLI options
        print(w)
    from osteoplan.export.risk_table import risk_text_lines

    print("\n".join(risk_text_lines(data, indent="")))
    if report.rigidity is not None:
        w = report.rigidity.weakest
        if w is not None and report.rigidity.lesion_status == "present":
            print(f"  weakest section: s = {w.s_mm:+.1f} mm along the dens axis from the waist ({w.region}), "
                  f"centre LPS {[round(c, 1) for c in w.centre_lps_mm]} mm; loss EA {100 * w.loss_ea:.1f} %, "
                  f"EI_min {100 * w.loss_ei_min:.1f} %, GJ {100 * w.loss_gj:.1f} %")
        print(f"  reference: {report.rigidity.reference}")
        if args.sections:
            _print_sections(report)
    return 0
