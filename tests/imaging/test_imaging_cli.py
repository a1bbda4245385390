"""`osteoplan info` and `osteoplan deid` through the real command line: output, JSON, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from osteoplan.cli import main
from osteoplan.imaging import synth


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_info_human_lists_series_and_chosen(tmp_path, capsys):
    a = synth.write_series(tmp_path, prefix="a", seed=1)
    b = synth.write_series(tmp_path, prefix="b", seed=2, n_slices=5, step=4.0, kernel="SOFT")
    synth.write_junk(tmp_path / "notes.txt")
    code, out, err = run(capsys, "info", str(tmp_path))
    assert code == 0 and err == ""
    assert a.series_uid in out and b.series_uid in out
    assert "Series 1  <- chosen" in out or "Series 2  <- chosen" in out
    assert "largest axial CT series (12 images)" in out
    assert "12 x 24 x 20 voxels" in out and "spacing 2 x 0.8 x 0.6 mm" in out
    assert "origin (-6.00, -8.00, -4.00) mm LPS" in out
    assert "kernel         SOFT" in out and "a file was skipped (name not recorded): not a DICOM file" in out


def test_info_json_and_series_choice(tmp_path, capsys):
    synth.write_series(tmp_path, prefix="a", seed=1)
    b = synth.write_series(tmp_path, prefix="b", seed=2, n_slices=5, step=4.0)
    code, out, _ = run(capsys, "info", "--json", "--series-uid", b.series_uid, str(tmp_path))
    assert code == 0
    info = json.loads(out)
    assert len(info["series"]) == 2
    assert info["chosen"]["series_uid"] == b.series_uid
    vol = info["chosen"]["volume"]
    assert vol["shape_kji"] == [5, 24, 20] and vol["spacing_kji_mm"] == [4.0, 0.8, 0.6]
    assert vol["origin_lps_mm"] == [-6.0, -8.0, -4.0]


def test_info_reports_gap_and_exits_2(tmp_path, capsys):
    synth.write_series(tmp_path, depths=[0, 2, 4, 8, 10])
    code, out, err = run(capsys, "info", str(tmp_path))
    assert code == 2 and "problem        Gap in the series" in out and "(-6.00, -8.00, 2.00)" in out
    assert err.startswith("error: the input (argument PATH): series 1 is not plannable as it stands: Gap")
    assert "add --allow-gaps" in err and "allow_gaps" not in out + err
    code, out, _ = run(capsys, "info", "--allow-gaps", str(tmp_path))
    assert code == 0 and "gap interpolated" in out


@pytest.mark.parametrize("setup, expect", [
    ("empty", "No DICOM image found"),
    ("junk", "Unsupported input"),
    ("missing", "Input not found"),
    ("uid", "is not in this input"),
    ("sc", "cannot be planned on" ),
])
def test_bad_inputs_one_line_error_no_traceback(tmp_path, capsys, setup, expect):
    target = tmp_path / "x"
    extra = []
    if setup == "empty":
        target.mkdir()
    elif setup == "junk":
        synth.write_junk(target)
    elif setup == "uid":
        synth.write_series(target, n_slices=3)
        extra = ["--series-uid", "1.2.3.999"]
    elif setup == "sc":
        s = synth.write_series(target, n_slices=3, sop_class=synth.SECONDARY_CAPTURE)
        extra = ["--series-uid", s.series_uid]
    code, out, err = run(capsys, "info", *extra, str(target))
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0]
    assert "Traceback" not in err + out


def test_deid_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, out, err = run(capsys, "deid", str(tmp_path / "empty"), str(tmp_path / "o"))
    assert code != 0 and err.count("\n") == 1 and "No DICOM image found" in err
    code, out, err = run(capsys, "deid", str(tmp_path / "nope"), str(tmp_path / "o"))
    assert code != 0 and err.startswith("error: Input not found")
    assert not (tmp_path / "o").exists()


def test_subprocess_entry_point_missing_path(tmp_path):
    r = subprocess.run([sys.executable, "-m", "osteoplan.cli", "info", str(tmp_path / "missing")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert r.stderr.strip().startswith("error: the input (argument PATH): Input not found") and "Traceback" not in r.stderr


def test_deid_cli_zip_input(tmp_path, capsys):
    import zipfile

    s = synth.write_series(tmp_path / "d", n_slices=4)
    z = tmp_path / "in.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in s.files:
            zf.write(f, f"SYNTHPATIENT/{f.name}")
    code, out, err = run(capsys, "deid", str(z), str(tmp_path / "out"), "--key", "k")
    assert code == 0, err
    assert "de-identified 4 file(s) in 1 series" in out
    assert sorted(p.name for p in (tmp_path / "out" / "001").iterdir()) == ["0001.dcm", "0002.dcm", "0003.dcm",
                                                                           "0004.dcm"]
