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


#: The largest coordinate magnitude (LPS mm) a point option takes: 100 m, far beyond any scanner's field of view
#: (a CT spans well under 2 m), so no real point is refused; a larger number is a typing slip, refused before the CT
#: is read and never echoed (a 309-digit number is no message).
MAX_LPS_MM = 100_000.0


def lps_mm(text: str) -> float:
    """argparse type: one LPS coordinate in millimetres, finite and within +/- :data:`MAX_LPS_MM`.

    The error names the allowed range and does not echo the value (``1e308`` would print 309 digits).
    """
    import math

    try:
        value = float(text)
    except ValueError:
        shown = text if len(text) <= 20 else text[:17] + "..."
        raise argparse.ArgumentTypeError(f"invalid number: '{shown}' (give LPS millimetres)") from None
    if not math.isfinite(value) or abs(value) > MAX_LPS_MM:
        raise argparse.ArgumentTypeError(f"a finite number is needed, in LPS millimetres from {-MAX_LPS_MM:.0f} to "
                                         f"{MAX_LPS_MM:.0f} (give a point inside the CT)")
    return value


def tcp_port(text: str) -> int:
    """argparse type: a TCP port number, 1-65535 (0 and larger numbers are refused as usage errors)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port: '{text}' (a whole number from 1 to 65535)") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number from 1 to 65535, not {value}")
    return value


def _whole_number(text: str, lowest: int) -> int:
    """*text* as a whole number >= *lowest*, else an argparse usage error saying the range."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: '{text}' (a whole number from {lowest})") from None
    if value < lowest:
        raise argparse.ArgumentTypeError(f"a whole number from {lowest} is needed, not {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (a count or a 1-based number as the messages show them)."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0 (a count that may be zero, e.g. retries)."""
    return _whole_number(text, 0)


def _cli_wording_table() -> tuple[tuple[str, str], ...]:
    from osteoplan.remedies import REMEDIES

    return tuple((c["api"], c["cli"]) for c in REMEDIES.values())


#: Clauses of the reading API's messages (:mod:`osteoplan.imaging.dicom_series`) and the command line's for each:
#: the API says ``allow_gaps=True`` to its callers, the command line says ``--allow-gaps``. From the one table of
#: every face's remedies, :data:`osteoplan.remedies.REMEDIES` (the web app and the batch say theirs).
CLI_WORDING: tuple[tuple[str, str], ...] = _cli_wording_table()


def cli_wording(text: str) -> str:
    """*text* (an error or a warning of the Python API) with its API options named as command-line options.

    ``"... pass allow_gaps=True to interpolate an interior slice."`` becomes ``"... add --allow-gaps to
    interpolate an interior slice."`` (:func:`osteoplan.remedies.for_face` with ``"cli"``); other text is returned
    unchanged.
    """
    from osteoplan.remedies import for_face

    return for_face(text, "cli")


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


#: How each command-line argument is named in error messages (``error: <name>: <what is wrong>``).
ARGUMENT_NAMES = {
    "ct": "the CT input (argument CT)",
    "masks": "--masks",
    "out": "--out",
    "plot": "--plot",
    "plan_dir": "the plan folder (argument PLAN_DIR)",
    "path": "the input (argument PATH)",
    "hint": "--hint-lps",
}


class blame:
    """Context manager: an error raised inside names the command-line argument it is about.

    ``with blame("--masks"): load_masks(...)`` turns ``MaskError("No mask found ...")`` into
    ``MaskError("--masks: No mask found ...")`` (same class, same exit code), and an ``OSError`` (permission
    denied, disk full...) into one line ``InputError("--masks: cannot be read or written (Permission
    denied); ...")`` — without the path, which may hold a patient's name (the messages inside use
    :func:`osteoplan.errors.safe_path`). A message that already starts with the argument's name is kept.

    Parameters
    ----------
    argument : str
        The name shown, e.g. ``"--out"`` or ``ARGUMENT_NAMES["ct"]``.
    """

    def __init__(self, argument: str):
        self.argument = argument

    def __enter__(self) -> "blame":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        from osteoplan.errors import InputError, OsteoplanError

        if exc is None:
            return False
        if isinstance(exc, OsteoplanError):
            msg = str(exc)
            if not msg.startswith(self.argument):
                exc.args = (f"{self.argument}: {msg}",) + tuple(exc.args[1:])
            return False  # re-raised as it is, with the argument named
        if isinstance(exc, OSError) and not isinstance(exc, (BrokenPipeError, InterruptedError)):
            raise InputError(f"{self.argument}: cannot be read or written ({exc.strerror or type(exc).__name__}); "
                             "check the path, the permissions and the free disk space.") from None
        return False


MASKS_NOT_FOUND = ("not found; check the path (a folder of NIfTI masks, a multilabel NIfTI, a .seg.nrrd, a DICOM SEG "
                   "or an RT Structure Set).")


def check_masks_path(masks) -> None:
    """Refuse, before the CT is read, a ``--masks`` path that does not exist (nothing done when not given).

    Raises
    ------
    InputError
        ``--masks: not found; ...`` (the path itself is not shown: it may hold a patient's name).
    """
    from pathlib import Path

    from osteoplan.errors import InputError

    if masks and not Path(masks).exists():
        raise InputError(f"{ARGUMENT_NAMES['masks']}: {MASKS_NOT_FOUND}")


def check_level_options(protocol, level=None, level_point=None):
    """Check ``--level`` and ``--level-point`` against the protocol's procedure, before the CT is read.

    Parameters
    ----------
    protocol : osteoplan.planning.protocol.Protocol
        The chosen protocol; its procedure's ``planned_levels`` (None: any level) bounds ``--level``, and a
        procedure with fixed levels takes no ``--level-point``.
    level : str, optional
        ``--level`` text (``"T12"``, ``"T10-L1"``, ``"T10,T12"``).
    level_point : str, optional
        ``--level-point`` text (``"T12:x,y,z"``, LPS mm).

    Returns
    -------
    tuple (str or None, numpy.ndarray (3,) or None)
        The level of ``--level-point`` and its point (LPS mm), or (None, None) when not given.

    Raises
    ------
    InputError, PlanningError
        One line ``--level: ...`` / ``--level-point: ...``: a name that is not a vertebra, a range going upwards, a
        level the protocol does not plan (e.g. T12 with a C2 protocol), a malformed point.
    """
    from osteoplan.errors import InputError
    from osteoplan.planning.procedures import get_procedure

    allowed = get_procedure(protocol.procedure).planned_levels
    proto = protocol.name
    if level is not None:
        from osteoplan.planning.procedures.vertebroplasty import parse_levels

        with blame("--level"):
            levels = parse_levels(level)
            wrong = [lv for lv in levels if allowed is not None and lv not in allowed]
            if wrong:
                raise InputError(f"the {proto} protocol plans {', '.join(allowed)} only ({', '.join(wrong)} asked); "
                                 "drop --level, or choose a vertebroplasty protocol for other levels (e.g. "
                                 "--protocol vertebroplasty-transpedicular).")
    if level_point is None:
        return None, None
    from osteoplan.anatomy.spine import parse_level_point

    with blame("--level-point"):
        lv, point = parse_level_point(level_point)
        if allowed is not None:
            raise InputError(f"the {proto} protocol finds {', '.join(allowed)} itself and takes no level point; "
                             "drop --level-point (use --hint-lps to give a point inside C2).")
    return lv, point


def load_masks_from_args(volume, masks):
    """Provided masks (``--masks``) on the CT grid, with errors naming ``--masks``; None when not given.

    Returns
    -------
    (LabelMap or None, list of str)
        The masks and the loader's non-fatal warnings (to add to the anatomy's messages, as
        :func:`osteoplan.anatomy.pipeline.build_anatomy` does when it loads them itself).
    """
    from pathlib import Path

    from osteoplan.errors import InputError

    if not masks:
        return None, []
    warnings: list[str] = []
    with blame(ARGUMENT_NAMES["masks"]):
        p = Path(masks)
        if not p.exists():
            raise InputError("not found; check the path (a folder of NIfTI masks, a multilabel NIfTI, a .seg.nrrd, "
                             "a DICOM SEG or an RT Structure Set).")
        from osteoplan.anatomy.loaders import load_masks

        return load_masks(p, volume, warnings=warnings), warnings


def build_anatomy_from_args(volume, masks=None, hint_lps=None, procedure=None, level=None, level_point=None,
                            **kwargs):
    """The anatomy stage of *procedure* (a :class:`~osteoplan.planning.procedures.Procedure`; default the C2
    pipeline :func:`osteoplan.anatomy.pipeline.build_anatomy`) for a command: ``--masks``, ``--hint-lps``,
    ``--level`` and ``--level-point`` errors name their argument; the masks' loading warnings stay in the
    anatomy's messages."""
    from osteoplan.anatomy.pipeline import build_anatomy, check_hint

    provided, warnings = load_masks_from_args(volume, masks)
    if hint_lps is not None:
        with blame(ARGUMENT_NAMES["hint"]):
            hint_lps = check_hint(volume, hint_lps)
    if level_point is not None:
        from osteoplan.anatomy.spine import parse_level_point

        with blame("--level-point"):
            level_point = parse_level_point(level_point)
    if procedure is None:
        anatomy = build_anatomy(volume, masks=provided, hint_lps=hint_lps, **kwargs)
    else:
        with blame("--level"):
            if level is not None:
                from osteoplan.planning.procedures.vertebroplasty import parse_levels

                parse_levels(level)
        anatomy = procedure.build_anatomy(volume, masks=provided, hint_lps=hint_lps, levels=level,
                                          level_point=level_point, **kwargs)
    msgs = getattr(anatomy, "messages", None)
    if isinstance(msgs, list) and warnings:
        msgs[:0] = [f"masks: {w}" for w in warnings]
    return anatomy


def read_ct_from_args(path, args):
    """:func:`read_volume_from_args` for the CT argument: its errors name ``the CT input (argument CT)``."""
    from pathlib import Path

    from osteoplan.errors import InputError

    with blame(ARGUMENT_NAMES["ct"]):
        if not Path(path).exists():
            raise InputError("not found; check the path (a DICOM folder or zip, a NIfTI or an NRRD file).")
        return read_volume_from_args(path, args)
