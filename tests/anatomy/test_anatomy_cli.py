"""`osteoplan segment` as a user runs it: provided masks of every value type, damaged masks, the C2 hint."""

from __future__ import annotations

import json
import math

import nibabel as nib
import numpy as np
import pytest

from osteoplan.cli import main


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    """A short (C1-C3) 1 mm phantom written with its truth masks (4 mm dens lesion)."""
    from osteoplan.anatomy.phantom import make_phantom, write_phantom

    ph = make_phantom(spacing_mm=1.0, fov_inferior_mm=-40.0, fov_superior_mm=34.0)
    d = tmp_path_factory.mktemp("ph")
    write_phantom(ph, d / "ph", dicom=False)
    return ph, d / "ph"


def _copy_mask(src, dst, dtype=None, scale=1.0):
    img = nib.load(str(src))
    a = np.asanyarray(img.dataobj).astype(np.float32) * scale
    nib.save(nib.Nifti1Image(a.astype(dtype) if dtype else a, img.affine), str(dst))


def test_segment_with_float_masks_and_a_provided_lesion_reports_the_lesion_measures(phantom_dir, tmp_path, capsys):
    ph, d = phantom_dir
    masks = tmp_path / "masks"
    masks.mkdir()
    _copy_mask(d / "labels" / "spinal_cord.nii.gz", masks / "spinal_cord.nii.gz", np.float32)  # 0/1 float32
    # a probability map of the canal: 0.8 inside, 0.3 on a one-voxel shell outside (dropped at 0.5)
    from scipy.ndimage import binary_dilation

    canal = ph.truth.get("spinal_canal")
    prob = 0.8 * canal + 0.3 * (binary_dilation(canal) & ~canal)
    nib.save(ph.volume.with_array(prob.astype(np.float32)).to_nifti(np.float32), str(masks / "spinal_canal.nii.gz"))
    _copy_mask(d / "labels" / "lesion.nii.gz", masks / "lesion.nii.gz", np.uint8, 255)  # 0/255
    _copy_mask(d / "labels" / "vertebrae_C2.nii.gz", masks / "vertebrae_C2.nii.gz", np.uint8)
    out = tmp_path / "out"
    assert main(["segment", str(d / "ct.nii.gz"), "--masks", str(masks), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    s = json.loads((out / "anatomy.json").read_text())
    assert s["structures"]["spinal_cord"]["voxels"] == int(ph.truth.get("spinal_cord").sum())
    assert s["structures"]["spinal_canal"]["voxels"] == int(canal.sum())
    assert s["structures"]["spinal_canal"]["source"] == "provided:spinal_canal.nii.gz"
    assert any("fractional" in m and ">= 0.5" in m for m in s["messages"])
    assert any("value 255" in m for m in s["messages"])
    # the provided lesion is measured (it used to be reported as null): volume exact, fractions and the
    # residual section close to the analytic dens (0.273 of the dens, pi (5^2 - 4^2) = 28.3 mm^2); the
    # provided C2 includes the lesion, so the waist found on it is the anatomical one
    les = s["lesion"]
    assert les["found"] and les["reference_hu"]["source"] == "provided:lesion.nii.gz"
    assert les["volume_ml"] == pytest.approx(ph.truth.volume_ml("lesion"), abs=5e-4)
    assert 0.2 < les["fraction_of_dens"] < 0.35 and les["fraction_of_body"] < 0.02
    assert les["min_residual_bone_area_mm2"] == pytest.approx(math.pi * 9, rel=0.3)
    assert "lesion: provided mask used" in printed
    assert f"lesion {les['volume_ml']:.3f} mL: {100 * les['fraction_of_dens']:.0f} % of the dens" in printed
    assert "smallest residual bone section" in printed


def test_damaged_mask_is_a_one_line_error_and_nothing_is_written(phantom_dir, tmp_path, capsys):
    _, d = phantom_dir
    masks = tmp_path / "masks"
    masks.mkdir()
    raw = (d / "labels" / "spinal_cord.nii.gz").read_bytes()
    (masks / "spinal_cord.nii.gz").write_bytes(raw[: len(raw) // 3])
    out = tmp_path / "out"
    assert main(["segment", str(d / "ct.nii.gz"), "--masks", str(masks), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "spinal_cord.nii.gz" in err and "truncated" in err and "Traceback" not in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["masks"]  # no temporary left either


@pytest.mark.parametrize("hint, code, text", [
    (["500", "0", "0"], 2, "outside the CT"),
    (["0", "0"], "usage", "expected 3 arguments"),
    (["0", "nan", "0"], "usage", "finite"),
    (["0", "x", "0"], "usage", "invalid number"),
])
def test_hint_is_checked_before_segmentation(phantom_dir, tmp_path, capsys, hint, code, text):
    _, d = phantom_dir
    out = tmp_path / "out"
    argv = ["segment", str(d / "ct.nii.gz"), "--hint-lps", *hint, "--out", str(out)]
    if code == "usage":
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
    else:
        assert main(argv) == code
    err = capsys.readouterr().err
    assert text in err and "Traceback" not in err
    assert "segmenting" not in err  # refused before the long step
    assert not out.exists()


def test_check_hint_values():
    from osteoplan.anatomy.pipeline import check_hint
    from osteoplan.errors import InputError
    from osteoplan.imaging import Volume, axis_aligned_affine

    v = Volume(np.zeros((10, 20, 30), np.float32), axis_aligned_affine((2.0, 1.0, 1.0), (-15.0, -10.0, 0.0)))
    np.testing.assert_allclose(check_hint(v, (0.0, 0.0, 9.0)), [0.0, 0.0, 9.0])
    # the CT spans x -15..14, y -10..9, z 0..18 (voxel centres); half a voxel beyond still rounds inside
    assert check_hint(v, (14.4, 9.4, 18.9)) is not None
    for bad, match in (((14.6, 0, 0), "outside the CT"), ((0, 0, 19.1), "outside"), ((0, 0), "three numbers"),
                       ((0, np.inf, 0), "finite"), (("a", 0, 0), "three numbers")):
        with pytest.raises(InputError, match=match):
            check_hint(v, bad)


def test_a_hint_that_contradicts_the_c2_found_is_not_trusted(monkeypatch):
    """When the vertebra returned for C2 lies far (> 5 mm) from the point the user placed inside C2, the
    anatomy reports C2 NOT located with the reason, never landmarks on another vertebra. The level
    finder is replaced by one returning the phantom's C3 (the failure seen on a CT cut above the C2
    body, whose level depends on the C2 localisation in progress); on the whole phantom the real
    localisation agrees with the same point."""
    import osteoplan.anatomy.c2 as c2mod
    from osteoplan.anatomy.phantom import make_phantom
    from osteoplan.anatomy.pipeline import build_anatomy

    ph = make_phantom(spacing_mm=1.0, fov_inferior_mm=-40.0, fov_superior_mm=34.0)
    hint = ph.landmarks.body_centre_lps_mm  # (0, 0, -4): inside the C2 body
    full = build_anatomy(ph.volume, hint_lps=hint)
    assert full.landmarks is not None and full.landmarks.method == "classical+hint"
    assert np.linalg.norm(full.landmarks.apex_lps_mm - ph.landmarks.apex_lps_mm) <= 2.0
    real = c2mod.locate_c2

    def wrong_level(volume, labelmap=None, hint_lps=None, **kw):
        _, lm = real(volume, labelmap, hint_lps=hint_lps, **kw)
        c3 = ph.truth.get("vertebrae_C3")
        o = np.rint(ph.volume.world_to_index(volume.index_to_world([0.0, 0.0, 0.0]))).astype(int)  # crop offset
        sub = c3[o[0]:o[0] + volume.shape[0], o[1]:o[1] + volume.shape[1], o[2]:o[2] + volume.shape[2]].copy()
        assert sub.sum() > 0.9 * c3.sum()
        return sub, lm

    monkeypatch.setattr(c2mod, "locate_c2", wrong_level)
    an = build_anatomy(ph.volume, hint_lps=hint)
    assert an.landmarks is None and an.lesion is None and not an.labelmap.has("vertebrae_C2")
    msg = next(m for m in an.messages if m.startswith("C2 NOT located"))
    # C3 top (body top z = -23.75 + 7.25 = -16.5) is ~12 mm below the point at z = -4
    assert "from the point given inside C2" in msg and "--masks" in msg
    d_mm = float(msg.split("lies ")[1].split(" mm")[0])
    assert 9 <= d_mm <= 14


def test_segment_with_osteoplan_own_multilabel_puts_the_lesion_back_into_c2(phantom_dir, tmp_path, capsys):
    """The phantom's labels.nii.gz (one label per voxel: the lesion carved out of C2) loaded as masks:
    C2 gets its lesion back, so the waist is the anatomical one (not the lysis) and the fractions
    match the analytic dens: 268.1 / 1077.7 = 0.249 of the dens, none of the body (dens of the
    corridor phantom; see tests/anatomy/test_lesion.py)."""
    ph, d = phantom_dir
    out = tmp_path / "out"
    assert main(["segment", str(d / "ct.nii.gz"), "--masks", str(d / "labels.nii.gz"), "--out", str(out)]) == 0
    s = json.loads((out / "anatomy.json").read_text())
    assert any("completed with the provided lesion" in m for m in s["messages"])
    assert s["structures"]["vertebrae_C2"]["voxels"] == int(ph.truth.get("vertebrae_C2").sum())
    waist = np.asarray(s["landmarks"]["waist_lps_mm"])
    # 1 mm voxels on a dens tilted 20 deg by the lordosis: 1.08 mm measured (the lysis, the wrong
    # answer this test guards against, is 4 mm above the waist)
    assert np.linalg.norm(waist - ph.landmarks.waist_lps_mm) <= 1.5
    assert s["lesion"]["fraction_of_dens"] == pytest.approx(268.1 / 1077.7, rel=0.1)
    assert s["lesion"]["fraction_of_body"] == 0.0
