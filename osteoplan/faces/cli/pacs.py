"""``osteoplan pacs find|get|put``: search the PACS for CT series, retrieve one, store a plan's results.

The PACS is configured by ``OSTEOPLAN_PACS_URL`` (and ``..._USERNAME`` / ``..._PASSWORD`` or ``..._TOKEN``,
``..._TIMEOUT_S``) or the settings file ``~/.config/osteoplan/pacs.toml`` (see :mod:`osteoplan.pacs.config`);
``--url`` and ``--timeout`` override them. Credentials are never taken from the command line (other users
can read it in the process list) and never printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from osteoplan.errors import InputError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="DICOMweb root of the PACS (default: OSTEOPLAN_PACS_URL or the settings file)")
    p.add_argument("--timeout", type=float, metavar="S", help="seconds to wait for the PACS (default 30)")
    p.add_argument("--config", metavar="FILE", help="PACS settings file (TOML, table [pacs]; default "
                   "~/.config/osteoplan/pacs.toml or OSTEOPLAN_PACS_CONFIG)")


def register(sub) -> None:
    """Add ``pacs`` (find, get, put) to the top-level parser's subparsers."""
    p = sub.add_parser("pacs", help="search the PACS (DICOMweb), retrieve a CT series, store a plan's results",
                       description="Talk DICOMweb to the configured PACS: QIDO-RS search, WADO-RS retrieve, STOW-RS "
                       "store (every stored object is looked up again). Configure with OSTEOPLAN_PACS_URL (+ "
                       "OSTEOPLAN_PACS_USERNAME/PASSWORD or OSTEOPLAN_PACS_TOKEN) or ~/.config/osteoplan/pacs.toml.")
    psub = p.add_subparsers(dest="pacs_command", metavar="ACTION")

    f = psub.add_parser("find", help="list CT series by StudyInstanceUID and/or PatientID",
                        description="List the series of a study or of a patient (by the PatientID you give) with their "
                        "UIDs, number of images and description. Patient values are never printed.")
    f.add_argument("--study", metavar="UID", help="StudyInstanceUID")
    f.add_argument("--patient-id", metavar="ID", help="PatientID (as the PACS knows it)")
    f.add_argument("--modality", default="CT", help="modality filter (default CT; 'any' for all)")
    f.add_argument("--json", action="store_true", help="print JSON")
    _common(f)
    f.set_defaults(pacs_handler=_find)

    g = psub.add_parser("get", help="retrieve one series into a new DICOM folder",
                        description="Retrieve every image of a series (WADO-RS), check nothing is missing against the "
                        "PACS's own list, and write them to a new folder (written under a temporary name, then "
                        "renamed). Plan on it with 'osteoplan plan OUT'.")
    g.add_argument("study", metavar="STUDY_UID")
    g.add_argument("series", metavar="SERIES_UID")
    g.add_argument("--out", required=True, help="new folder for the DICOM files")
    g.add_argument("--overwrite", action="store_true", help="replace an earlier 'osteoplan pacs get' folder")
    _common(g)
    g.set_defaults(pacs_handler=_get)

    u = psub.add_parser("put", help="store a plan folder's SEG, SR and report (Encapsulated PDF) to the PACS",
                        description="Store the plan's DICOM SEG, Comprehensive 3D SR and report.pdf (as Encapsulated "
                        "PDF), with the planning CT copy they reference, into the planning CT's study. When that study "
                        "is in the PACS the objects take its patient attributes. Every object is looked up again; "
                        "storing again after a failure is safe (the same instances are sent).")
    u.add_argument("plan_dir", metavar="PLAN_DIR")
    u.add_argument("--source-series", metavar="UID",
                   help="the PACS series the plan was made on (default: plan.json's ct_source): SEG, SR and PDF then "
                   "reference it and no CT copy is stored, when the plan's grid is that series' own")
    u.add_argument("--no-ct", action="store_true", help="do not store the CT copy (the PACS already holds it)")
    u.add_argument("--json", action="store_true", help="print the per-object outcome as JSON")
    _common(u)
    u.set_defaults(pacs_handler=_put)

    def dispatch(args: argparse.Namespace) -> int:
        if getattr(args, "pacs_handler", None) is None:
            p.print_help()
            return 2
        return args.pacs_handler(args)

    p.set_defaults(handler=dispatch)


def _client(args: argparse.Namespace):
    from osteoplan.pacs import PacsClient, load_config

    cfg = load_config(path=args.config, url=args.url, timeout_s=args.timeout)
    return PacsClient(cfg)


def _find(args: argparse.Namespace) -> int:
    if not args.study and not args.patient_id:
        raise InputError("pacs find: give --study UID and/or --patient-id ID.")
    client = _client(args)
    modality = None if str(args.modality).lower() == "any" else args.modality
    hits = client.find_series(study_uid=args.study, patient_id=args.patient_id, modality=modality)
    rows = [{"study_uid": h.study_uid, "series_uid": h.series_uid, "series_number": h.series_number,
             "modality": h.modality, "images": h.n_instances, "description": h.description} for h in hits]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no series found")
        return 0
    for r in rows:
        print(f"{r['modality'] or '?':4s} #{r['series_number'] if r['series_number'] is not None else '-':<4} "
              f"{r['images'] if r['images'] is not None else '?':>5} images  {r['description'] or ''}")
        print(f"     study  {r['study_uid']}\n     series {r['series_uid']}")
    print(f"{len(rows)} series")
    return 0


def _get(args: argparse.Namespace) -> int:
    from osteoplan.atomic import atomic_dir
    from osteoplan.cliargs import blame
    from osteoplan.progress import step

    client = _client(args)
    with blame("--out"):
        from osteoplan.atomic import check_output_folder

        check_output_folder(args.out, args.overwrite)
    with step("retrieving the series from the PACS"):
        with atomic_dir(args.out, overwrite=args.overwrite, manifest="pacs get") as tmp:
            files = client.retrieve_series(args.study, args.series, tmp / "dicom")
    print(f"pacs get: {len(files)} images written to {args.out}/dicom (plan on it with 'osteoplan plan "
          f"{args.out}/dicom')")
    return 0


def _put(args: argparse.Namespace) -> int:
    from osteoplan.cliargs import ARGUMENT_NAMES, blame
    from osteoplan.errors import PacsStoreError
    from osteoplan.pacs.results import plan_results

    client = _client(args)
    with blame(ARGUMENT_NAMES["plan_dir"]):
        objects, where = plan_results(client, args.plan_dir, source_series=args.source_series,
                                      include_ct=not args.no_ct)
    try:
        report = client.store(objects.datasets, objects.labels)
    except PacsStoreError as exc:
        if args.json and exc.report is not None:
            _print_outcomes(exc.report)
        raise
    if args.json:
        _print_outcomes(report)
    counts = ", ".join(f"{n} {lab}" for lab, n in objects.counts().items())
    print(f"pacs put: stored {counts} {where}; {report.summary()}.", file=sys.stdout)
    return 0


def _print_outcomes(report: Any) -> None:
    print(json.dumps([{"label": o.label, "sop_instance_uid": o.sop_instance_uid, "series_uid": o.series_uid,
                       "stored": o.stored, "reason": o.reason} for o in report.outcomes], indent=2))
