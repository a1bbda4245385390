"""A RescaleSlope / RescaleIntercept that is missing, unparseable, zero, non-finite or implausible is
never applied silently: the series is refused with the slice named by position and InstanceNumber,
or, when another valid image holds the same position, that image is dropped with a warning."""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.cli import main
from osteoplan.errors import DicomSeriesError
from osteoplan.imaging import read_volume, synth
from osteoplan.imaging.dicom_series import describe, scan


def _series(tmp_path):
    # 12 slices at z = -4, -2, ..., 18; InstanceNumber 12 .. 1 (against anatomy); files img000..img011 in order
    return synth.write_series(tmp_path, shuffle=False)


@pytest.mark.parametrize("keyword, raw, problem", [
    ("RescaleIntercept", None, "RescaleIntercept missing (Type 1 for CT images)"),
    ("RescaleSlope", None, "RescaleSlope missing (Type 1 for CT images)"),
    ("RescaleIntercept", b"abc ", "RescaleIntercept is not a number"),
    ("RescaleIntercept", b"", "RescaleIntercept missing (Type 1 for CT images)"),
    ("RescaleIntercept", b"1\\2 ", "RescaleIntercept is not a number"),
    ("RescaleIntercept", b"nan ", "RescaleIntercept is not finite"),
    ("RescaleSlope", b"inf ", "RescaleSlope is not finite"),
    ("RescaleSlope", b"0 ", "RescaleSlope 0 is not positive"),
    ("RescaleSlope", b"-1", "RescaleSlope -1 is not positive"),
    ("RescaleSlope", b"1e-6", "RescaleSlope 1e-06 is outside the plausible CT range 0.00390625 .. 256"),
    ("RescaleIntercept", b"-1e5", "RescaleIntercept -100000 is outside the plausible CT range -8192 .. 8192"),
])
def test_invalid_rescale_refused_naming_the_slice(tmp_path, keyword, raw, problem):
    s = _series(tmp_path)
    synth.set_raw_element(s.files[5], keyword, "DS", raw)  # slice 5: z = -4 + 10 = 6, InstanceNumber 12 - 5 = 7
    with pytest.raises(DicomSeriesError) as exc:
        read_volume(tmp_path)
    msg = str(exc.value)
    assert "the slice at (-6.00, -8.00, 6.00) mm LPS (InstanceNumber 7)" in msg
    assert problem in msg and "\n" not in msg and "img005" not in msg


def test_invalid_rescale_in_a_stray_copy_is_dropped_with_a_warning(tmp_path):
    s = _series(tmp_path / "a")
    clean = read_volume(tmp_path / "a")
    # an extra copy of slice 5 whose intercept is NaN: the valid slice 5 is read, the copy dropped
    extra = tmp_path / "a" / "copy.dcm"
    extra.write_bytes(s.files[5].read_bytes())
    synth.set_raw_element(extra, "RescaleIntercept", "DS", b"nan ")
    v = read_volume(tmp_path / "a")
    np.testing.assert_array_equal(v.array, clean.array)
    np.testing.assert_allclose(v.affine, clean.affine)
    assert any("dropped 1 image(s) with an invalid rescale" in w and "RescaleIntercept is not finite" in w
               for w in v.warnings)


def test_implausible_hu_from_valid_looking_rescale_refused(tmp_path):
    # slope 200 is inside the slope range, but pixels stored for slope 1 then give up to ~+200 000 HU
    s = _series(tmp_path)
    synth.set_raw_element(s.files[2], "RescaleSlope", "DS", b"200 ")
    with pytest.raises(DicomSeriesError, match=r"Implausible Hounsfield units in the slice at \(-6.00, -8.00, 0.00\) "
                                               r"mm LPS \(InstanceNumber 10\).*outside the range a CT can hold"):
        read_volume(tmp_path)


def test_enhanced_ct_frame_without_intercept_refused(tmp_path):
    import pydicom

    s = synth.write_enhanced_ct(tmp_path / "e.dcm", n_frames=6)
    ds = pydicom.dcmread(s.files[0])
    del ds.PerFrameFunctionalGroupsSequence[2].PixelValueTransformationSequence[0].RescaleIntercept
    ds.save_as(s.files[0])
    with pytest.raises(DicomSeriesError, match=r"frame 3 \(at \(-6.00, -8.00, 0.00\) mm LPS\) of the multi-frame "
                                               r"image: RescaleIntercept missing"):
        read_volume(tmp_path / "e.dcm")


def test_valid_per_slice_rescale_still_applied(tmp_path):
    # a plausible slope/intercept that differs from its neighbours is legitimate (varying_rescale pitfall)
    s = _series(tmp_path)
    before = read_volume(tmp_path)
    synth.set_raw_element(s.files[4], "RescaleIntercept", "DS", b"-1000")  # +24 HU on that slice only
    after = read_volume(tmp_path)
    diff = after.array - before.array
    np.testing.assert_allclose(diff[4], 24.0)
    assert np.all(diff[np.arange(12) != 4] == 0)
    assert np.isfinite(after.array).all()


def test_info_does_not_call_an_invalid_rescale_plannable(tmp_path, capsys):
    s = _series(tmp_path)
    synth.set_raw_element(s.files[5], "RescaleIntercept", "DS", b"nan ")
    listing = describe(scan(tmp_path))
    assert "RescaleIntercept is not finite" in listing[0]["hu_problem"]
    code = main(["info", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 2
    assert "plannable      yes" not in out and "warnings       none" not in out
    assert "plannable      not as it stands" in out and "HU range" not in out
    assert "problem        Invalid Hounsfield-unit rescale in the slice at" in out
    assert err.startswith("error: the input (argument PATH): series 1 is not plannable as it stands: Invalid "
                          "Hounsfield-unit rescale in the slice at")
