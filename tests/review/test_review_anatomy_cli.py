"""Reviewer's defects in ``osteoplan phantom`` / ``osteoplan segment`` argument and output handling."""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.anatomy.phantom import make_phantom
from osteoplan.cli import main
from osteoplan.errors import InputError


def test_phantom_lesion_that_misses_c2_is_refused():
    # before: a 100 mm offset silently produced a phantom with a 0 mL "lesion"
    with pytest.raises(InputError, match="does not reach C2"):
        make_phantom(spacing_mm=2.0, noise_hu=0.0, lesion_radius_mm=4.0, lesion_offset_mm=(0.0, -45.0, 0.0))
    with pytest.raises(InputError, match="within"):
        make_phantom(spacing_mm=2.0, lesion_offset_mm=(100.0, 0.0, 0.0))


@pytest.mark.parametrize("bad", [dict(noise_hu=float("nan")), dict(lesion_radius_mm=float("nan")),
                                 dict(rotation_deg=(float("nan"), 0.0, 0.0)),
                                 dict(carotid_shift_mm=(float("inf"), 0.0, 0.0))])
def test_phantom_refuses_non_finite_parameters(bad):
    # before: nan noise gave a noiseless CT, nan rotation an all-air CT with nan landmarks, inf shift an OverflowError
    from osteoplan.anatomy.phantom import PhantomParams

    with pytest.raises(InputError, match="finite"):
        PhantomParams(**bad)


@pytest.mark.parametrize("command", [["phantom", "--no-dicom"], ["segment", "CT", "--out"]])
def test_output_that_is_a_file_is_one_clear_error(tmp_path, capsys, command):
    target = tmp_path / "afile"
    target.write_text("x")
    ct = tmp_path / "ct.nii.gz"
    ct.write_bytes(b"")
    argv = [c if c != "CT" else str(ct) for c in command]
    argv = argv + [str(target)] if argv[-1] == "--out" else argv[:1] + [str(target)] + argv[1:]
    rc = main(["-q", *argv, "--force"])
    err = capsys.readouterr().err
    prefix = "error: --out: " if command[0] == "segment" else "error: "   # segment names its --out argument
    assert rc == 2 and err.startswith(prefix + "The output") and "existing file" in err
    assert err.count("\n") == 1 and "Traceback" not in err and "unexpected" not in err
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    argv2 = [a if a != str(target) else str(blocker / "out") for a in argv]
    rc = main(["-q", *argv2])
    err = capsys.readouterr().err
    assert rc == 2 and "annot write the output folder" in err and "unexpected" not in err


def test_segment_missing_masks_is_reported_before_reading_the_ct(tmp_path, capsys):
    ct = tmp_path / "ct.nii.gz"
    ct.write_bytes(b"not a nifti")
    rc = main(["-q", "segment", str(ct), "--masks", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: --masks: not found") and not (tmp_path / "o").exists()


def test_phantom_dicom_description_not_hidden_as_identifying(tmp_path):
    # the phantom's patient name shared a word with its series description, so the description
    # was (rightly, by the rule) hidden as identifying when the series was read back
    from osteoplan.anatomy.phantom import write_phantom
    from osteoplan.imaging import read_volume

    ph = make_phantom(spacing_mm=2.0, noise_hu=0.0)
    write_phantom(ph, tmp_path / "ph")
    v = read_volume(tmp_path / "ph" / "dicom")
    assert v.info.series_description == "osteoplan neck model CT" and v.info.kernel == "SYNTHETIC"
    np.testing.assert_array_equal(v.array, read_volume(tmp_path / "ph" / "ct.nii.gz").array)


def test_segment_force_keeps_the_previous_output_until_the_new_one_is_complete(tmp_path):
    # before: --force deleted the previous output first; a failure or Ctrl-C while saving left nothing
    from osteoplan.faces.cli.anatomy import _save_replacing

    out = tmp_path / "seg"
    out.mkdir()
    (out / "anatomy.json").write_text("previous")
    from osteoplan.atomic import write_manifest

    write_manifest(out, "segment")  # an earlier osteoplan output (only those are replaced)

    class Failing:
        def save(self, d):
            d.mkdir()
            raise KeyboardInterrupt

    class Good:
        def save(self, d):
            d.mkdir()
            (d / "anatomy.json").write_text("new")
            return {"files": ["anatomy.json"]}

    with pytest.raises(KeyboardInterrupt):
        _save_replacing(Failing(), out)
    assert (out / "anatomy.json").read_text() == "previous"
    assert _save_replacing(Good(), out) == {"files": ["anatomy.json"]}
    assert (out / "anatomy.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg"]  # no .seg.*.new / .old left
