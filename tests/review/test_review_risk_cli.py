"""Reviewer's defects in ``osteoplan risk`` output handling (checked before the long computation)."""

from __future__ import annotations

from osteoplan.cli import main


def _run(capsys, argv):
    rc = main(["-q", *argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "unexpected" not in err
    return rc, err


def test_unwritable_out_and_plot_are_clear_errors_before_reading(tmp_path, capsys):
    ct = tmp_path / "ct.nii.gz"
    ct.write_bytes(b"not read: the output check comes first")
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    for option in ("--out", "--plot"):
        rc, err = _run(capsys, ["risk", str(ct), option, str(blocker / "x.out")])
        assert rc == 2 and err.startswith(f"error: {option}: cannot write the file") and err.count("\n") == 1
    rc, err = _run(capsys, ["risk", str(ct), "--out", str(tmp_path)])
    assert rc == 2 and "must be a file path, not a folder" in err
    rc, err = _run(capsys, ["risk", str(ct), "--masks", str(tmp_path / "missing")])
    assert rc == 2 and err.startswith("error: --masks: not found")


def test_risk_and_segment_accept_the_reader_options_their_errors_suggest(tmp_path, capsys, monkeypatch):
    # the reader's gap / series messages say "pass --allow-gaps" / "--series-uid": those options must exist
    import osteoplan.imaging as imaging
    from osteoplan.errors import InputError

    seen = []

    def fake_read(path, **kwargs):
        seen.append(kwargs)
        raise InputError("stop here")

    monkeypatch.setattr(imaging, "read_volume", fake_read)
    ct = tmp_path / "ct"
    ct.mkdir()
    for argv in (["risk", str(ct)], ["segment", str(ct), "--out", str(tmp_path / "o")]):
        rc, err = _run(capsys, [*argv, "--allow-gaps", "--resample-uniform", "--series-uid", "1.2.3"])
        assert rc == 2 and "stop here" in err
    assert seen == [dict(series_uid="1.2.3", allow_gaps=True, resample_uniform=True)] * 2


def test_hint_point_must_be_finite(capsys):
    import pytest

    for argv in (["risk", "ct", "--hint-lps", "inf", "0", "0"], ["segment", "ct", "--out", "o", "--hint-lps", "nan", "0", "0"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "a finite number is needed" in err and err.count("\n") == 1
