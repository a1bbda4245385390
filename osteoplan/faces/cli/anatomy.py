"""Anatomy subcommands: ``osteoplan phantom`` and ``osteoplan segment``."""

from __future__ import annotations

import argparse
from pathlib import Path

from osteoplan.cliargs import ARGUMENT_NAMES, add_reader_options, blame, finite_float, lps_mm, read_ct_from_args
from osteoplan.errors import InputError, safe_path


def register(sub) -> None:
    """Add the anatomy subcommands to the top-level parser's subparsers."""
    p = sub.add_parser(
        "phantom",
        help="write the synthetic neck CT phantom (NIfTI, DICOM, ground-truth masks, landmarks)",
        description="Write a synthetic neck CT (C1-T1) with a lytic dens lesion, its exact "
        "ground-truth label map (TotalSegmentator layout + multilabel) and C2/dens landmarks.",
    )
    p.add_argument("out", help="output folder (must not exist or be empty unless --overwrite)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--lesion-radius-mm", type=finite_float, default=4.0, help="lytic lesion radius in mm, 0 = none (default 4)")
    p.add_argument("--lesion-offset-mm", type=finite_float, nargs=3, metavar=("X", "Y", "Z"), default=(0.0, 0.0, 0.0),
                   help="LPS offset of the lesion centre from the dens centre (mm)")
    p.add_argument("--no-contrast", action="store_true", help="unenhanced vessels (40 HU) instead of contrast")
    p.add_argument("--spacing-mm", type=finite_float, default=0.8, help="isotropic voxel size (default 0.8)")
    p.add_argument("--noise-hu", type=finite_float, default=12.0, help="Gaussian noise SD in HU (default 12)")
    p.add_argument("--carotid-shift-mm", type=finite_float, nargs=3, metavar=("X", "Y", "Z"), default=(0.0, 0.0, 0.0),
                   help="LPS shift of the carotid arteries and jugular veins (mm)")
    p.add_argument("--rotation-deg", type=finite_float, nargs=3, metavar=("RX", "RY", "RZ"), default=(0.0, 0.0, 0.0),
                   help="rotate the anatomy about the L, P, S axes through C2 (degrees; +RX flexion, +RZ face to the left)")
    p.add_argument("--no-dicom", action="store_true", help="skip the DICOM series")
    p.add_argument("--overwrite", "--force", dest="force", action="store_true",
                   help="replace an earlier osteoplan output folder (never one holding other files); --force: old name")
    p.set_defaults(handler=_phantom)

    s = sub.add_parser(
        "segment",
        help="build the label map and C2/dens landmarks of a CT",
        description="Segment a CT (classical, or from provided masks) and locate C2 and the dens.",
    )
    s.add_argument("ct", help="CT: DICOM folder/zip, NIfTI or NRRD")
    s.add_argument("--masks", help="provided masks: folder of NIfTI, multilabel NIfTI, .seg.nrrd, DICOM SEG or RTSTRUCT")
    add_reader_options(s)
    s.add_argument("--hint-lps", type=lps_mm, nargs=3, metavar=("X", "Y", "Z"),
                   help="one point inside C2, body or dens (LPS mm): it decides the level; refused "
                   "when it lies below, or disagrees with, a plausible C2 found without it")
    s.add_argument("--out", required=True, help="output folder (anatomy.json + labels.nii.gz)")
    s.add_argument("--totalsegmentator", action="store_true",
                   help="also run TotalSegmentator when it and its weights are installed")
    s.add_argument("--overwrite", "--force", dest="force", action="store_true",
                   help="replace an earlier osteoplan output folder (never one holding other files); --force: old name")
    s.set_defaults(handler=_segment)


def _check_output_folder(out: Path, force: bool, flag: str = "output folder") -> None:
    """Refuse an unusable output folder before any long computation.

    Raises
    ------
    InputError
        *out* is an existing file, a non-empty folder without *force*, or its parent folder
        cannot be created or written to.
    """
    import shutil
    import tempfile

    if out.exists() and not out.is_dir():
        raise InputError(f"The output {safe_path(out)} is an existing file, not a folder; give a new folder path.")
    from osteoplan.atomic import check_output_folder

    check_output_folder(out, force, flag=flag)  # the current folder, other work, earlier output
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=".osteoplan-probe.", dir=out.parent)
        shutil.rmtree(probe, ignore_errors=True)
    except OSError as exc:
        raise InputError(f"Cannot write the output folder {safe_path(out, 'folder')} ({exc.strerror or type(exc).__name__}); "
                         "choose a folder you can write to.") from None


def _phantom(args: argparse.Namespace) -> int:
    from osteoplan.anatomy.phantom import make_phantom, write_phantom
    from osteoplan.progress import step

    out = Path(args.out)
    _check_output_folder(out, args.force)
    with step("building the phantom"):
        ph = make_phantom(seed=args.seed, lesion_radius_mm=args.lesion_radius_mm,
                          lesion_offset_mm=tuple(args.lesion_offset_mm), contrast=not args.no_contrast,
                          spacing_mm=args.spacing_mm, noise_hu=args.noise_hu,
                          carotid_shift_mm=tuple(args.carotid_shift_mm), rotation_deg=tuple(args.rotation_deg))
    with step("writing files"):
        try:
            paths = write_phantom(ph, args.out, overwrite=args.force, dicom=not args.no_dicom)
        except OSError as exc:
            raise InputError(f"Cannot write the phantom to {safe_path(out)} ({exc.strerror or type(exc).__name__}); "
                             "check the free disk space and permissions.") from None
    v = ph.volume
    lm = ph.landmarks
    print(f"phantom: {v.shape[0]} x {v.shape[1]} x {v.shape[2]} voxels (slice, row, column), "
          f"{args.spacing_mm:g} mm isotropic, contrast={'yes' if not args.no_contrast else 'no'}, seed {args.seed}")
    print(f"  CT (NIfTI)        {paths['ct']}")
    if paths["dicom"]:
        print(f"  CT (DICOM series) {paths['dicom']}/ ({v.shape[0]} files)")
    print(f"  masks             {Path(paths['ct']).parent / 'labels'}/ ({len(paths['labels'])} structures)")
    print(f"  multilabel        {paths['multilabel']} + {paths['label_table'].name}")
    print(f"  landmarks         {paths['landmarks']}")
    print(f"  parameters        {paths['params']}")
    print(f"  dens apex LPS {[round(float(x), 2) for x in lm.apex_lps_mm]} mm, waist diameter "
          f"{lm.waist_diameter_mm:.1f} mm, anteroinferior body to apex {lm.anteroinferior_to_apex_mm:.1f} mm, "
          f"lesion {ph.truth.volume_ml('lesion'):.3f} mL")
    return 0


def _save_replacing(anatomy, out: Path) -> dict:
    """Save into a new sibling folder, then swap it with *out*: the previous output stays intact until
    the new one is complete (an interruption never leaves the user with neither)."""
    import os
    import shutil
    import tempfile

    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".new", dir=out.parent))
    staging.rmdir()  # anatomy.save creates it (atomically)
    try:
        summary = anatomy.save(staging)  # writes its manifest
        from osteoplan.atomic import check_output_folder

        check_output_folder(out, True, flag="--out")  # nothing foreign added while we worked
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, old / "previous")
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def _segment(args: argparse.Namespace) -> int:
    from osteoplan.cliargs import build_anatomy_from_args
    from osteoplan.progress import step

    out = Path(args.out)
    ct = Path(args.ct)
    for given, what in ((ct, "CT"), (Path(args.masks) if args.masks else None, "masks")):
        if given is not None and given.exists() and given.resolve().is_relative_to(out.resolve()):
            raise InputError(f"--out: the {what} is inside the output folder, which --force would replace; choose "
                             "an output folder outside the input's folders.")
    with blame("--out"):
        _check_output_folder(out, args.force, flag="--out")
    if not ct.exists():
        raise InputError(f"{ARGUMENT_NAMES['ct']}: not found; check the path.")
    from osteoplan.cliargs import check_masks_path

    check_masks_path(args.masks)
    with step("reading the CT"):
        volume = read_ct_from_args(ct, args)
    with step("segmenting"):
        anatomy = build_anatomy_from_args(volume, masks=args.masks or None,
                                          hint_lps=tuple(args.hint_lps) if args.hint_lps else None,
                                          use_totalsegmentator=bool(args.totalsegmentator))
    try:
        with step("writing"):
            summary = _save_replacing(anatomy, out) if out.exists() else anatomy.save(out)
    except OSError as exc:
        raise InputError(f"--out: cannot write the output folder {safe_path(out, 'folder')} ({exc.strerror or type(exc).__name__}); "
                         "check the free disk space and permissions.") from None
    where = "the output folder" if safe_path(out, 'folder') == "<folder>" else f"{safe_path(out)}/"
    print(f"anatomy written to {where} ({', '.join(summary.get('files', []))})")
    from osteoplan.planning.image_warnings import image_warnings

    for w in image_warnings(volume, face="cli"):  # the reader's warnings from its data: no file names, CLI options
        print(f"  - {w}")
    for name, s in summary["structures"].items():
        print(f"  {name:32s} {s['volume_ml']:9.2f} mL  {s['source']}")
    lm = summary.get("landmarks")
    if lm:
        print(f"  dens apex LPS {lm['apex_lps_mm']} mm, waist {lm['waist_diameter_mm']:.1f} mm, "
              f"confidence {lm['confidence']:.2f} ({lm['method']})")
    else:
        print("  C2 / dens: NOT located (see messages)")
    les = summary.get("lesion")
    if les and les.get("found"):
        area = les.get("min_residual_bone_area_mm2")
        area_txt = (f"; smallest residual bone section {area:.0f} mm2 at LPS {les['min_residual_position_lps_mm']} mm"
                    if isinstance(area, (int, float)) and area == area else "")
        print(f"  lesion {les['volume_ml']:.3f} mL: {100 * les['fraction_of_dens']:.0f} % of the dens, "
              f"{100 * les['fraction_of_body']:.0f} % of the C2 body{area_txt}")
    elif les is not None:
        print("  lesion: none found in C2")
    if summary.get("not_segmented"):
        print("  NOT segmented (not assessed): " + ", ".join(summary["not_segmented"]))
    for m in summary.get("messages", []):
        print(f"  - {m}")
    return 0
