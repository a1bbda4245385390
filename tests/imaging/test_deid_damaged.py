"""De-identification of a series whose first file has a damaged element (issue 18: a corrupted VR used to end in
'unexpected NotImplementedError; this is a bug'): one clear line, nothing written, never a traceback."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cthead" / "dicom-pitfalls" / "shuffled"
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data (CThead DICOM pitfalls) is absent")


def _mutation_module():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "dicom_mutation.py"
    spec = importlib.util.spec_from_file_location("dicom_mutation_bench", path)
    mod = importlib.util.module_from_spec(spec)
    import sys

    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("vr", [b"SQ", b"UN", b"FD", b"US", b"XX", b"\x00\x00", b"UT"])
def test_corrupted_vr_in_the_first_file_is_one_clear_line(tmp_path, capsys, vr):
    from osteoplan.cli import main

    mod = _mutation_module()
    src = tmp_path / "in"
    src.mkdir()
    files = sorted(SHARED.iterdir())[:3]
    for f in files:
        shutil.copy(f, src / f.name)
    first = src / files[0].name
    first.write_bytes(mod.set_vr(first.read_bytes(), 0x00100010, vr))  # PatientName's VR bytes
    out = tmp_path / "out"
    rc = main(["deid", str(src), str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    if rc != 0:
        assert rc == 2, err
        assert len([ln for ln in err if ln.startswith("error:")]) == 1 and "Traceback" not in "\n".join(err)
        assert "this is a bug" not in "\n".join(err)
        assert not out.exists()
    else:  # pydicom could still read it: the output must then pass the verifier (deid refuses otherwise)
        assert any(out.rglob("*")), "nothing written"
