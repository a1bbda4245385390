"""``osteoplan report PLAN_DIR``: rebuild the report, images, Slicer and DICOM files of a saved plan."""

from __future__ import annotations

import argparse
from pathlib import Path


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


def ct_voxels_sha256(volume) -> str:
    """SHA-256 of a CT's voxels (float32 HU, C order) and shape: tells the same volume read again from
    another CT than one of the same grid. Recorded in the plan folder's manifest."""
    import hashlib

    import numpy as np

    arr = np.ascontiguousarray(np.asarray(volume.array, dtype=np.float32))
    h = hashlib.sha256(repr(tuple(arr.shape)).encode("ascii"))
    h.update(arr.tobytes())
    return h.hexdigest()


def _load_with_ct(plan_dir: str, ct: str, args: argparse.Namespace):
    """(plan, volume, labelmap) of a plan folder whose CT is given again with ``--ct``.

    The CT must be the one the plan was made on: same grid as ``plan.json`` (shape, and index -> LPS
    affine to 0.001 mm) and, when the folder's manifest records it, the same voxels (SHA-256).

    Raises
    ------
    InputError
        No plan.json, or a CT that is not the plan's.
    """
    import numpy as np

    from osteoplan.atomic import read_manifest
    from osteoplan.cliargs import ARGUMENT_NAMES, blame, read_volume_from_args
    from osteoplan.errors import InputError
    from osteoplan.export import load_plan_dir
    from osteoplan.planning.model import load_plan

    d = Path(plan_dir)
    with blame(ARGUMENT_NAMES["plan_dir"]):
        if not (d / "plan.json").is_file():
            return load_plan_dir(d)  # its own clear message
        plan = load_plan(d / "plan.json")
    with blame("--ct"):
        if not Path(ct).exists():
            raise InputError("not found; check the path (a DICOM folder or zip, a NIfTI or an NRRD file).")
        volume = read_volume_from_args(ct, args)
    if tuple(volume.shape) != tuple(plan.ct.shape_kji) or not np.allclose(volume.affine, np.asarray(plan.ct.affine),
                                                                          atol=1e-3):
        raise InputError("--ct: not the CT this plan was made on (its grid differs from plan.json); give the "
                         "plan's CT.")
    recorded = (read_manifest(d) or {}).get("ct_voxels_sha256")
    if recorded and recorded != ct_voxels_sha256(volume):
        raise InputError("--ct: the plan's grid but other voxel values than the CT this plan was made on; give "
                         "the plan's CT.")
    if (d / "ct.nii.gz").is_file():
        _, _, lm = load_plan_dir(d)
    else:  # the label map files are read against the given CT
        import shutil
        import tempfile

        from osteoplan.export import save_ct_nifti

        with tempfile.TemporaryDirectory(prefix=".osteoplan-report-") as tmp:
            for name in ("plan.json", "segmentation.seg.nrrd", "labels.nii.gz", "labels.json"):
                if (d / name).is_file():
                    shutil.copy2(d / name, Path(tmp) / name)
            save_ct_nifti(Path(tmp) / "ct.nii.gz", volume)
            _, _, lm = load_plan_dir(tmp)
    return plan, volume, lm


def _report(args: argparse.Namespace) -> int:
    import sys

    from osteoplan.atomic import add_to_manifest, list_entries
    from osteoplan.export import load_plan_dir, write_all
    from osteoplan.progress import step

    from osteoplan.cliargs import ARGUMENT_NAMES, blame

    if getattr(args, "ct", None):
        with step("reading the plan folder and the CT"):
            plan, volume, lm = _load_with_ct(args.plan_dir, args.ct, args)
    else:
        with step("reading the plan folder"), blame(ARGUMENT_NAMES["plan_dir"]):
            plan, volume, lm = load_plan_dir(args.plan_dir)
    before = list_entries(args.plan_dir)
    opts = options_from_args(args)
    if getattr(args, "ct", None):  # the user keeps the CT elsewhere: do not add a copy
        import dataclasses

        opts = dataclasses.replace(opts, save_inputs=False)
    written = write_all(args.plan_dir, plan, volume, lm, opts)
    add_to_manifest(args.plan_dir, before)  # what report wrote stays osteoplan's own (replaceable later)
    n_img = sum(1 for k in written if k.startswith("image:"))
    from osteoplan.faces.cli.summary import result_line

    print(result_line(plan), file=sys.stdout)  # the plan's verdict, as in 'osteoplan plan' and the report
    print(f"report: wrote {n_img} images, " + ", ".join(sorted(k for k in written if not k.startswith("image:"))),
          file=sys.stdout)
    return 0


def register(sub) -> None:
    """Add ``report`` to the top-level command line."""
    p = sub.add_parser("report", help="rebuild the report, images, Slicer and DICOM files of a saved plan folder",
                       description="Rebuild report.html/report.pdf, images/, plan.mrk.json, segmentation.seg.nrrd "
                       "and dicom/ from a folder written by 'osteoplan plan' (plan.json + ct.nii.gz + segmentation).")
    p.add_argument("plan_dir", metavar="PLAN_DIR", help="folder written by 'osteoplan plan'")
    from osteoplan.cliargs import add_reader_options

    add_reader_options(p)
    p.add_argument("--ct", default=None,
                   help="the plan's CT again (DICOM folder/zip, NIfTI, NRRD) for a folder without ct.nii.gz; "
                   "refused unless it is the same volume (grid, and voxels when recorded)")
    add_export_options(p)
    p.set_defaults(handler=_report)
