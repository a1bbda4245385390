"""The ``osteoplan`` command line: a thin shell over the stage subpackages.

Each command module contributes its subcommands through a ``register(subparsers)`` function
(``osteoplan/faces/cli/*.py`` for the engine stages, ``osteoplan/<face>/cli.py`` for the export, registry and
web faces), listed in :data:`COMMAND_MODULES`; no engine package (imaging, anatomy, risk, planning) holds a
command module. A subcommand's
handler receives the parsed ``argparse.Namespace`` and returns an exit code.

Any :class:`~osteoplan.errors.OsteoplanError` is printed as one line ``error: ...`` on stderr
with a non-zero exit code; unexpected exceptions print one line too (with ``--debug`` the
traceback is shown). Ctrl-C exits 130 without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys

from osteoplan import __version__
from osteoplan.errors import OsteoplanError

#: Stage modules that register subcommands, in --help order.
COMMAND_MODULES: tuple[str, ...] = (
    "osteoplan.faces.cli.plan",
    "osteoplan.faces.cli.imaging",
    "osteoplan.faces.cli.pacs",
    "osteoplan.faces.cli.anatomy",
    "osteoplan.faces.cli.risk",
    "osteoplan.faces.cli.batch",
    "osteoplan.faces.cli.verify",
    "osteoplan.export.cli",
    "osteoplan.workflow.cli",
    "osteoplan.web.cli",
    "osteoplan.faces.cli.worker",
)


class _OneLineErrorParser(argparse.ArgumentParser):
    """argparse parser whose usage errors are one line ``error: ...`` (exit 2), like every other error.

    Subcommand parsers inherit the class (argparse creates them with the parent's type).
    """

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see '{self.prog} --help').\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available stage's subcommands."""
    parser = _OneLineErrorParser(
        prog="osteoplan",
        description="Plan percutaneous consolidation of metastatic bone (C2 dens screw + cement, vertebroplasty, C2 "
        "cementoplasty) from CT, check it on control CTs, "
        "and record the care pathway.",
    )
    parser.add_argument("--version", action="version", version=f"osteoplan {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for modname in COMMAND_MODULES:
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:
                continue  # stage not built yet
            raise
        mod.register(sub)
    return parser


def _freeze_gc_at_exit() -> None:
    """Let the interpreter's shutdown skip garbage-collecting the objects alive when it starts.

    At exit, CPython's finalisation runs cyclic garbage collections over every object still tracked: after
    ``osteoplan plan`` (numba, scipy, pydantic and their registries loaded) that was about 0.45 s of CPU of a
    ~4.5 s command (CThead, one core). :func:`gc.freeze` moves the survivors to the permanent generation, which
    those collections skip; the memory is returned by the process ending. Registered with :mod:`atexit` so that it
    runs only when the interpreter exits (never in the middle of a test session that calls :func:`main`), after
    the handlers registered later (LIFO) and before those registered earlier; explicit finalisers
    (``weakref.finalize``, temporary folders, logging) still run.
    """
    import atexit
    import gc

    atexit.unregister(gc.freeze)  # once, however many times main() is called
    atexit.register(gc.freeze)


@contextlib.contextmanager
def _fewer_gc_passes():
    """While a command runs, the cyclic garbage collector runs after 10 000 net allocations of container objects
    instead of 700 (the threshold is restored afterwards).

    A command imports its libraries as it runs (numba, scipy, nibabel and pydicom, pydantic...: about 1 300
    modules for ``osteoplan plan``); those imports allocate some 140 000 long-lived objects, and at the default
    threshold the collector went over them about 425 times (3 full passes), finding almost nothing: 0.23-0.26 s of
    CPU of a ~4 s ``osteoplan plan`` on CThead (one core, summed with :data:`gc.callbacks`); 0.12-0.16 s at
    10 000 (45 passes; docs/speed_startup.md). Garbage in reference cycles is still collected, in larger batches (at most ~10 000
    container objects wait); arrays are freed by reference counting, which this does not change.
    """
    import gc

    previous = gc.get_threshold()
    if 0 < previous[0] < 10_000:  # 0 (collection disabled) or a larger value chosen by the caller are kept
        gc.set_threshold(10_000, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    _freeze_gc_at_exit()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    if args.quiet:
        import os

        os.environ["OSTEOPLAN_QUIET"] = "1"
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    import signal

    def _terminate(signum, frame):  # SIGTERM (kill, service stop) cleans up like Ctrl-C
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        previous = None
    try:
        with _fewer_gc_passes():
            return int(args.handler(args) or 0)
    except OsteoplanError as exc:
        from osteoplan.cliargs import cli_wording

        print(f"error: {cli_wording(str(exc))}", file=sys.stderr)  # CLI options, not the Python API's arguments
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; nothing half-written was left behind.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `osteoplan ... | head`: the reader left; stop quietly (Python docs' recipe)
        import os

        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except OSError as exc:  # disk full, permission denied...: the user's environment, not a bug
        if args.debug:
            raise
        # no file name: it may carry identifying data
        print(f"error: a file could not be read or written ({exc.strerror or type(exc).__name__}); check the paths, "
              "permissions and free disk space.", file=sys.stderr)
        return 1
    except Exception as exc:  # last resort: one line, no traceback, no data
        if args.debug:
            raise
        print(f"error: unexpected {type(exc).__name__}; this is a bug in osteoplan, please report it "
              "(re-run with --debug for details).", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
