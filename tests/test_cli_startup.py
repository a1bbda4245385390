"""Start-up of the command line: building the parser (``osteoplan --help``, and the first step of every command)
imports no scientific or face library; each command imports what it uses when it runs.

Measured (docs/speed_startup.md): ``osteoplan --help`` 0.26 s CPU when the parser imported pydantic (the plan
models) and numpy, 0.06 s without. Checked on ``sys.modules`` of a fresh interpreter, not by timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Libraries the parser must not import (the plan models' pydantic, the arrays, the engine's and the faces' libraries).
HEAVY = ("numpy", "pydantic", "numba", "scipy", "nibabel", "pydicom", "skimage", "SimpleITK", "matplotlib",
         "weasyprint", "highdicom", "sqlalchemy", "fastapi", "dask", "osteoplan.planning.model",
         "osteoplan.planning.protocol")


def _modules_after(code: str) -> set[str]:
    """Names in ``sys.modules`` after *code* ran in a fresh interpreter on this checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _loaded(mods: set[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in mods)


def test_building_the_parser_imports_no_heavy_library():
    mods = _modules_after("from osteoplan.cli import build_parser\nbuild_parser()")
    assert "osteoplan.faces.cli.plan" in mods  # the parser was really built with its faces
    assert "osteoplan.planning.protocol_names" in mods
    loaded = [name for name in HEAVY if _loaded(mods, name)]
    assert not loaded, f"building the parser imported {loaded}; import them inside the command that uses them"


def test_the_check_sees_an_import():
    # the same check on code that does import the plan models finds pydantic: the test above can fail
    mods = _modules_after("import osteoplan.planning.protocol")
    assert _loaded(mods, "pydantic") and _loaded(mods, "osteoplan.planning.protocol")


def test_protocol_names_are_those_of_the_protocol_module():
    from osteoplan.planning import protocol, protocol_names

    assert protocol.DEFAULT_PROTOCOL == protocol_names.DEFAULT_PROTOCOL == "c2-dens-anterior"
    assert protocol.PROTOCOL_DIR == protocol_names.PROTOCOL_DIR
    names = protocol_names.available_protocols()
    assert names == sorted(p.stem for p in (ROOT / "osteoplan/planning/protocols").glob("*.toml"))
    assert {"c2-dens-anterior", "c2-dens-lateral"} <= set(names)
    assert protocol.load_protocol().name == "c2-dens-anterior"  # load_protocol's default is the same name


def test_planning_package_names_imported_on_first_use():
    import osteoplan.planning as planning
    from osteoplan.planning import model

    for name in planning.__all__:
        assert getattr(planning, name) is getattr(model, name)
    with pytest.raises(AttributeError):
        planning.no_such_name  # noqa: B018


def test_gc_threshold_raised_while_a_command_runs_and_restored(monkeypatch, capsys):
    import gc

    from osteoplan import cli

    seen = []

    def handler(args):
        seen.append(gc.get_threshold())
        return 3

    real_build = cli.build_parser

    def build():
        parser = real_build()
        parser.set_defaults(handler=handler)  # the top-level parser runs the fake handler (no subcommand)
        return parser

    monkeypatch.setattr(cli, "build_parser", build)
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        assert cli.main([]) == 3
        assert seen == [(10_000, 10, 10)]
        assert gc.get_threshold() == (700, 10, 10)  # restored for the caller (a test session, the web app)
        gc.set_threshold(0, 10, 10)  # collection disabled by the caller: left as it is
        assert cli.main([]) == 3
        assert seen[-1] == (0, 10, 10) and gc.get_threshold() == (0, 10, 10)
    finally:
        gc.set_threshold(*before)
