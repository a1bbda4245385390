"""Command line of the imaging stage: ``osteoplan info`` and ``osteoplan deid``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from osteoplan.cliargs import add_reader_options
from osteoplan.errors import InputError, OsteoplanError, SeriesSelectionError, safe_path


def register(sub) -> None:
    """Add the ``info`` and ``deid`` subcommands."""
    p = sub.add_parser(
        "info",
        help="list the CT series found in a DICOM folder/zip (or a NIfTI/NRRD file), their geometry, "
             "warnings and the one chosen",
        description="List the series found (UID, description, images, spacing, kernel, modality, image type), "
                    "their geometry and problems, which series is chosen for planning and why, and the volume "
                    "read from it. Exit code 0 when a plannable volume was read, 2 when none could be (the last "
                    "line on stderr says why), 1 on an internal error.",
    )
    p.add_argument("path", help="DICOM folder (searched recursively), zip of DICOM, DICOM file, NIfTI or NRRD")
    p.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    add_reader_options(p)
    p.set_defaults(handler=cmd_info)

    d = sub.add_parser(
        "deid",
        help="de-identify a DICOM folder (PS3.15 Annex E Basic Profile via dicognito, verified independently)",
        description="De-identify every DICOM file under IN into OUT/<series>/<instance>.dcm: dicognito's Basic "
                    "Profile, private tags and free-text comments removed, UIDs remapped with a key, dates shifted. "
                    "The output is then checked for every identifying value of the input (all elements, nested "
                    "sequences, raw bytes); if one survives nothing is written. An interrupted run leaves no "
                    "output folder.",
    )
    d.add_argument("input", help="DICOM folder (recursive), zip of DICOM or DICOM file")
    d.add_argument("output", help="output folder (created; must not exist or be empty unless --overwrite)")
    d.add_argument("--date-shift-days", type=int, metavar="N",
                   help="shift every date by N days (non-zero); default: a shift derived from the key")
    d.add_argument("--key", metavar="SECRET",
                   help="secret for consistent pseudonyms (same key -> same UIDs and shift); default: the "
                        "OSTEOPLAN_DEID_KEY environment variable, else a random key")
    d.add_argument("--overwrite", action="store_true",
                   help="replace an earlier osteoplan output folder (never one holding other files)")
    d.set_defaults(handler=cmd_deid)


# --------------------------------------------------------------------------- info
def _collect_info(args) -> dict[str, Any]:
    from osteoplan.imaging import dicom_series
    from osteoplan.imaging.io import _read_nifti, _read_nrrd, dicom_source

    path = Path(args.path)
    if not path.exists():
        raise InputError(f"Input not found: {safe_path(path)}. Check the path.")
    name = path.name.lower()
    shown = safe_path(path)  # a folder's hidden name is "<folder>" (it may be a patient's name): say what it is
    out: dict[str, Any] = {"input": shown}
    if path.is_file() and name.endswith((".nii", ".nii.gz", ".nrrd", ".nhdr")):
        vol = _read_nifti(path) if name.endswith((".nii", ".nii.gz")) else _read_nrrd(path)
        out.update(format=vol.info.source_format, series=[], skipped=[],
                   chosen={"reason": "single volume file", "volume": _volume_summary(vol)})
        return out
    if path.is_file() and not name.endswith(".zip"):
        import zipfile

        from osteoplan.imaging.io import _is_dicom_file, check_not_cut_zip

        check_not_cut_zip(path)  # a zip cut short is damaged, not an unsupported format
        if not zipfile.is_zipfile(path) and not _is_dicom_file(path):
            raise InputError(f"Unsupported input {safe_path(path)}: give a DICOM folder, a zip of DICOM, a DICOM "
                             "file, a NIfTI or an NRRD file.")
    with dicom_source(path) as src:
        result = dicom_series.scan(src)
        out["format"] = "dicom"
        out["files"] = len(result.files)
        out["series"] = dicom_series.describe(result)
        out["skipped"] = [{"file": f, "reason": r} for f, r in result.skipped]
        try:
            series, why = dicom_series.choose_series(result, args.series_uid)
        except SeriesSelectionError as exc:
            from osteoplan.imaging.io import volume_file_hint

            if not result.series and volume_file_hint(path):
                raise SeriesSelectionError(str(exc) + volume_file_hint(path)) from None
            if not result.series or args.series_uid:  # nothing found, or the user's own choice is wrong
                raise
            out["chosen"] = {"reason": "none", "error": str(exc)}  # still list what was found (exit 2)
            return out
        except OsteoplanError as exc:  # every series rejected (localizer, Secondary Capture, not CT...)
            if not result.series or args.series_uid:
                raise
            out["chosen"] = {"reason": "none", "error": str(exc)}
            return out
        idx = [s.uid for s in result.series].index(series.uid) + 1
        chosen: dict[str, Any] = {"index": idx, "series_uid": series.uid, "reason": why}
        try:
            vol = dicom_series.read_series(result, series, allow_gaps=args.allow_gaps,
                                           resample_uniform=args.resample_uniform, why=why)
            chosen["volume"] = _volume_summary(vol)
        except OsteoplanError as exc:  # the headers looked plannable, the images are not (truncated file, gap...)
            chosen["error"] = str(exc)
            entry = out["series"][idx - 1]
            entry["plannable"] = False
            entry["read_problem"] = str(exc)
        out["chosen"] = chosen
    return out


def _volume_summary(vol) -> dict[str, Any]:
    import numpy as np

    s = vol.summary()
    arr = vol.array
    s["hu_min"] = round(float(arr.min()), 2)
    s["hu_max"] = round(float(arr.max()), 2)
    s["extent_mm"] = [round(float(v), 3) for v in (np.asarray(vol.shape) - 1) * vol.spacing_mm]
    return s


def _fmt_vec(v, nd=2) -> str:
    return "(" + ", ".join(f"{float(x):.{nd}f}" for x in v) + ")"


def _print_human(info: dict[str, Any]) -> None:
    w = sys.stdout.write
    w(f"Input: {info['input']} ({info.get('format')})\n")
    if info.get("format") == "dicom":
        w(f"Files: {info['files']}, series: {len(info['series'])}, skipped files: {len(info['skipped'])}\n")
    chosen = info.get("chosen") or {}
    for s in info["series"]:
        mark = "  <- chosen" if chosen.get("index") == s["index"] else ""
        w(f"\nSeries {s['index']}{mark}\n")
        w(f"  UID            {s['series_uid']}\n")
        w(f"  description    {s['description'] or '-'}\n")
        w(f"  modality       {s['modality'] or '-'}   SOP class {s['sop_class']}\n")
        itype = "\\".join(s["image_type"]) or "-"
        w(f"  image type     {itype}\n")
        contrast = {True: "yes", False: "no", None: "not stated"}[s["contrast"]]
        kvp = f"{s['kvp']:g}" if s["kvp"] is not None else "-"
        w(f"  kernel         {s['kernel'] or '-'}   kVp {kvp}   contrast {contrast}\n")
        w(f"  images         {s['images']} in {s['files']} file(s), {s['orientation']}, "
          f"{', '.join(s['transfer_syntaxes'])}\n")
        g = s.get("geometry")
        if g:
            w(f"  geometry       {' x '.join(str(x) for x in g['shape_kji'])} voxels (slice, row, column), spacing "
              f"{' x '.join(f'{x:g}' for x in g['spacing_kji_mm'])} mm, origin {_fmt_vec(g['origin_lps_mm'])} mm LPS"
              + (f", tilt {g['tilt_deg']:g} deg" if g.get("tilt_deg") else "") + "\n")
        if s.get("geometry_problem") and not s.get("read_problem"):  # reading it said more: shown below
            w(f"  problem        {s['geometry_problem']}\n")
        if s.get("hu_problem"):
            w(f"  problem        {s['hu_problem']}\n")
        for note in s.get("hu_notes") or []:
            w(f"  note           {note}\n")
        if s.get("read_problem"):
            w(f"  problem        {s['read_problem']}\n")
        if s.get("rejection"):
            w(f"  plannable      no: {s['rejection']}\n")
        elif s.get("read_problem") or s.get("geometry_problem") or s.get("hu_problem"):
            w("  plannable      not as it stands: see the problem above\n")
        else:
            w("  plannable      yes\n")
    if info.get("skipped"):
        w("\nSkipped files:\n")
        for item in info["skipped"]:
            w(f"  {item['file']}: {item['reason']}\n")
    w("\n")
    if chosen.get("index"):
        w(f"Chosen: series {chosen['index']} ({chosen['reason']})\n")
    elif chosen and chosen.get("reason") == "none":
        w("Chosen: none\n")
    elif chosen:
        w(f"Chosen: {chosen['reason']}\n")
    vol = chosen.get("volume")
    if vol:
        w(f"Volume: {' x '.join(str(x) for x in vol['shape_kji'])} voxels (slice, row, column), spacing "
          f"{' x '.join(f'{x:g}' for x in vol['spacing_kji_mm'])} mm, origin {_fmt_vec(vol['origin_lps_mm'])} mm LPS\n")
        import numpy as np

        dirs = np.asarray(vol["direction_columns_kji"])
        w(f"  axes (LPS)     slice {_fmt_vec(dirs[:, 0], 3)}, row {_fmt_vec(dirs[:, 1], 3)}, "
          f"column {_fmt_vec(dirs[:, 2], 3)}\n")
        w(f"  HU range       {vol['hu_min']:g} .. {vol['hu_max']:g}\n")
        warns = vol.get("warnings") or []
        w(f"  warnings       {'none' if not warns else ''}\n")
        for x in warns:
            w(f"    - {x}\n")
    # a chosen series that cannot be read: its problem is in its block above, and cmd_info's last line (stderr)


def _with_cli_wording(obj):
    """*obj* (the info dict) with the reading API's options named as command-line options in every text."""
    from osteoplan.cliargs import cli_wording

    if isinstance(obj, str):
        return cli_wording(obj)
    if isinstance(obj, dict):
        return {k: _with_cli_wording(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_with_cli_wording(v) for v in obj]
    return obj


def cmd_info(args) -> int:
    """``osteoplan info``: the report on stdout; when no plannable volume could be read, one line ``error: ...`` on
    stderr and exit 2 (bad input: the same for a folder and for the same files zipped)."""
    from osteoplan.cliargs import ARGUMENT_NAMES, blame

    with blame(ARGUMENT_NAMES["path"]):
        info = _with_cli_wording(_collect_info(args))
    if args.json:
        sys.stdout.write(json.dumps(info, indent=2, default=_json_default) + "\n")
    else:
        _print_human(info)
    chosen = info.get("chosen") or {}
    if chosen.get("volume"):
        return 0
    if chosen.get("index"):
        what = f"series {chosen['index']} is not plannable as it stands"
    else:
        what = "no plannable series"
    sys.stdout.flush()  # the report first, then the reason as the last line
    sys.stderr.write(f"error: {ARGUMENT_NAMES['path']}: {what}: {chosen.get('error') or 'nothing could be read'}\n")
    return 2


def _json_default(o):
    import numpy as np

    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, set):
        return sorted(o)
    return str(o)


# --------------------------------------------------------------------------- deid
def cmd_deid(args) -> int:
    from osteoplan.imaging.deid import deidentify_folder
    from osteoplan.imaging.io import dicom_source

    from osteoplan.imaging.dicom_series import _pydicom_messages_without_paths

    key = args.key if args.key is not None else os.environ.get("OSTEOPLAN_DEID_KEY") or None
    # pydicom's own warnings are logged once each, without paths or quoted values (issue 18)
    with dicom_source(args.input) as src, _pydicom_messages_without_paths():
        rep = deidentify_folder(src, args.output, key=key, date_shift_days=args.date_shift_days,
                                overwrite=args.overwrite)
    where = "the output folder" if rep.output == "<folder>" else f"{rep.output}/"
    sys.stdout.write(
        f"de-identified {rep.files_written} file(s) in {rep.series} series into {where} "
        f"({rep.files_skipped} non-DICOM or unreadable file(s) skipped); verified: none of "
        f"{rep.identifying_values_checked} identifying input values found in the output\n")
    if rep.files_without_image:
        sys.stderr.write(
            f"note: {rep.files_without_image} DICOM object(s) without image data (structure sets, reports, DICOMDIR...) "
            "were not copied: deid writes CT/image series only.\n")
    if rep.files_truncated:
        sys.stderr.write(
            f"warning: {rep.files_truncated} truncated image(s) were left out of the output, so its series may "
            "have gaps; re-copy or re-export the original files and run deid again.\n")
    return 0

