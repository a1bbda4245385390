"""Argument types and option groups shared by the stage command lines."""

from __future__ import annotations

import argparse


def finite_float(text: str) -> float:
    """argparse type: a finite number (``nan``/``inf`` are refused as usage errors)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: '{text}'") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"a finite number is needed, not '{text}'")
    return value


def add_reader_options(p) -> None:
    """Add the DICOM reading choices (--series-uid, --allow-gaps, --resample-uniform) to a subcommand."""
    p.add_argument("--series-uid", metavar="UID",
                   help="DICOM input: read this SeriesInstanceUID (see 'osteoplan info') instead of the default choice")
    p.add_argument("--allow-gaps", action="store_true",
                   help="DICOM input: interpolate across missing slices instead of refusing")
    p.add_argument("--resample-uniform", action="store_true",
                   help="DICOM input: resample uneven slice spacing to a uniform grid instead of refusing")


def read_volume_from_args(path, args):
    """:func:`osteoplan.imaging.read_volume` with the choices added by :func:`add_reader_options`."""
    from osteoplan.imaging import read_volume

    return read_volume(path, series_uid=args.series_uid, allow_gaps=args.allow_gaps,
                       resample_uniform=args.resample_uniform)
