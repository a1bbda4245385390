"""``osteoplan report PLAN_DIR``: rebuild the report, images, Slicer and DICOM files of a saved plan."""

from __future__ import annotations

import argparse


def add_export_options(p: argparse.ArgumentParser) -> None:
    """The export switches shared by ``osteoplan report`` and ``osteoplan plan`` (planner may reuse them)."""
    p.add_argument("--lang", choices=("en", "fr"), default="en", help="report language (default en)")
    p.add_argument("--case", default="case", help="pseudonymous case label for the report header (no patient data)")
    p.add_argument("--no-pdf", action="store_true", help="skip the PDF (HTML only)")
    p.add_argument("--no-dicom", action="store_true", help="skip DICOM CT/SEG/SR")
    p.add_argument("--no-drr", action="store_true", help="skip the simulated fluoroscopy views")
    p.add_argument("--no-3d", action="store_true", help="skip the 3D view")


def options_from_args(args: argparse.Namespace):
    """:class:`~osteoplan.export.ExportOptions` from parsed arguments."""
    from osteoplan.export import ExportOptions
    from osteoplan.export.report import safe_case_label

    return ExportOptions(lang=args.lang, case_label=safe_case_label(getattr(args, "case", "case")),
                         no_pdf=args.no_pdf, no_dicom=args.no_dicom, no_drr=args.no_drr, no_3d=args.no_3d)


def _report(args: argparse.Namespace) -> int:
    import sys

    from osteoplan.export import load_plan_dir, write_all
    from osteoplan.progress import step

    from osteoplan.cliargs import ARGUMENT_NAMES, blame

    with step("reading the plan folder"), blame(ARGUMENT_NAMES["plan_dir"]):
        plan, volume, lm = load_plan_dir(args.plan_dir)
    written = write_all(args.plan_dir, plan, volume, lm, options_from_args(args))
    n_img = sum(1 for k in written if k.startswith("image:"))
    print(f"report: {'feasible' if plan.feasible else 'NO feasible path'}; wrote {n_img} images, "
          + ", ".join(sorted(k for k in written if not k.startswith("image:"))), file=sys.stdout)
    return 0


def register(sub) -> None:
    """Add ``report`` to the top-level command line."""
    p = sub.add_parser("report", help="rebuild the report, images, Slicer and DICOM files of a saved plan folder",
                       description="Rebuild report.html/report.pdf, images/, plan.mrk.json, segmentation.seg.nrrd "
                       "and dicom/ from a folder written by 'osteoplan plan' (plan.json + ct.nii.gz + segmentation).")
    p.add_argument("plan_dir", metavar="PLAN_DIR", help="folder written by 'osteoplan plan'")
    add_export_options(p)
    p.set_defaults(handler=_report)
