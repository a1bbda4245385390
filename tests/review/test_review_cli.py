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
    import osteoplan.faces.cli.imaging as icli

    def fail(args):
        raise PermissionError(13, "Permission denied", "/data/DUPONT_Jean/IM0001.dcm")

    monkeypatch.setattr(icli, "cmd_info", fail)
    rc = main(["info", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error: a file could not be read or written (Permission denied)")
    assert "DUPONT" not in err and err.count("\n") == 1


def test_outputs_never_replace_their_own_inputs(tmp_path, capsys):
    # before: `osteoplan deid study/ct study --overwrite` replaced `study` as a whole, deleting the input
    # CT and everything next to it; `segment study/ct.nii.gz --out study --force` did the same
    study = tmp_path / "study"
    synth.write_series(study / "ct", seed=1, n_slices=3, rows=8, cols=8)
    (study / "notes.txt").write_text("keep me")
    (study / "ct.nii.gz").write_bytes(b"stand-in CT: never read, the checks come first")
    cases = [
        (["deid", str(study / "ct"), str(study), "--overwrite"], "input is inside the output folder"),
        (["segment", str(study / "ct.nii.gz"), "--out", str(study), "--force"], "CT is inside the output folder"),
        (["risk", str(study / "ct.nii.gz"), "--out", str(study / "ct.nii.gz")], "--out: would overwrite an input"),
        (["risk", str(study / "ct.nii.gz"), "--out", str(tmp_path / "a.json"), "--plot", str(tmp_path / "a.json")],
         "same file"),
    ]
    for argv, expect in cases:
        rc = main(["-q", *argv])
        err = capsys.readouterr().err
        assert rc == 2 and expect in err and err.count("\n") == 1, (argv, err)
    assert (study / "notes.txt").read_text() == "keep me"
    assert len(list((study / "ct").rglob("*.dcm"))) == 3


def test_closed_pipe_stops_quietly(tmp_path, capsys, monkeypatch):
    # `osteoplan phantom out | head -1` printed "error: a file could not be read or written (Broken pipe)"
    import osteoplan.faces.cli.imaging as icli

    def closed(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(icli, "cmd_info", closed)
    rc = main(["info", str(tmp_path)])
    assert rc == 1 and capsys.readouterr().err == ""
