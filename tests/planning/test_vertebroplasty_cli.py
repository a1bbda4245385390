"""Vertebroplasty on the command line: conflicting options and a level absent from the masks are one clear line."""

from __future__ import annotations

import pytest

from osteoplan.cli import main


@pytest.mark.parametrize("argv, words", [
    (["--protocol", "c2-dens-anterior", "--needles", "2"], "--needles: the protocol c2-dens-anterior places a screw"),
    (["--protocol", "vertebroplasty-transpedicular", "--needles", "2", "--side", "left", "--level", "L2"],
     "--needles: 2 places a needle through each pedicle; --side left is for one needle"),
])
def test_conflicting_options_fail_before_reading_the_ct(tmp_path, capsys, argv, words):
    ct = tmp_path / "ct.nii.gz"
    ct.write_bytes(b"not read: the options fail first")
    rc = main(["plan", str(ct), "--out", str(tmp_path / "o"), "--no-report", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and words in err[0], err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
@pytest.mark.realdata
def test_a_level_not_in_the_masks_names_the_levels_there(shared_data, tmp_path, capsys):
    d = shared_data / "abdomen-pelvis-ts"
    rc = main(["-q", "plan", str(d / "ct.nii.gz"), "--masks", str(d / "vertebrae_multilabel.nii.gz"), "--protocol",
               "vertebroplasty-transpedicular", "--level", "T5", "--no-report", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "T5 is not in the vertebra masks given (levels there: " in err[-1] and "L1" in err[-1]
