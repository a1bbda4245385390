"""Reviewer's defects in the top-level command line: usage errors, SIGTERM, OS errors."""

from __future__ import annotations

import os
import signal

import pytest

from osteoplan.cli import main
from osteoplan.imaging import deid as deid_mod
from osteoplan.imaging import synth


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["risk", "ct.nii.gz", "--pain", "severe"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.startswith("error: argument --pain: invalid choice: 'severe'") and err.count("\n") == 1
    assert "osteoplan risk --help" in err and "usage:" not in err


def test_sigterm_during_deid_leaves_nothing(tmp_path, capsys, monkeypatch):
    src = tmp_path / "in"
    synth.write_series(src, seed=7, n_slices=4, rows=8, cols=8)
    real = deid_mod.apply_profile
    calls = []

    def apply_then_terminate(ds, anonymizer):
        real(ds, anonymizer)
        calls.append(1)
        if len(calls) == 2:  # half-way through writing the output
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(deid_mod, "apply_profile", apply_then_terminate)
    out = tmp_path / "out"
    rc = main(["deid", str(src), str(out), "--key", "k"])
    assert rc == 130 and "interrupted" in capsys.readouterr().err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["in"]  # no .out.*.part left
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored


def test_os_errors_are_one_line_without_the_file_name(tmp_path, capsys, monkeypatch):
    import osteoplan.imaging.cli as icli

    def fail(args):
        raise PermissionError(13, "Permission denied", "/data/DUPONT_Jean/IM0001.dcm")

    monkeypatch.setattr(icli, "cmd_info", fail)
    rc = main(["info", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error: a file could not be read or written (Permission denied)")
    assert "DUPONT" not in err and err.count("\n") == 1
