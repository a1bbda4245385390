"""The house rules of design.md, checked on the source: engine packages hold no command module and import no face."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "osteoplan"
ENGINES = ("imaging", "anatomy", "risk", "planning", "verification")
FACES = ("osteoplan.export", "osteoplan.views", "osteoplan.web", "osteoplan.faces", "osteoplan.workflow",
         "osteoplan.pacs", "osteoplan.batch")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_engine_packages_import_no_face_and_hold_no_command_module():
    bad = []
    for eng in ENGINES:
        d = PKG / eng
        if not d.is_dir():
            continue
        assert not (d / "cli.py").exists(), f"osteoplan/{eng}/cli.py: command modules live in osteoplan/faces/cli/"
        for f in d.rglob("*.py"):
            for mod in _imports(f):
                if any(mod == face or mod.startswith(face + ".") for face in FACES):
                    bad.append(f"{f.relative_to(PKG.parent)} imports {mod}")
    assert not bad, bad


def test_the_rule_bites():
    # the checker sees an import of a face inside a function body too
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "m.py"
        p.write_text("def f():\n    from osteoplan.export.report import x\n")
        assert "osteoplan.export.report" in _imports(p)
