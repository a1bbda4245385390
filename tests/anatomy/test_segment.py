"""Classical segmentation on synthetic shapes with closed-form answers and on the digital phantom."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from osteoplan.anatomy.airway import segment_airway
from osteoplan.anatomy.canal import segment_spinal_canal
from osteoplan.anatomy.segment import Canon, detect_contrast, run_classical, segment_body, segment_bone, soft_tissue_stats
from osteoplan.errors import AnatomyError
from osteoplan.imaging.volume import AcquisitionInfo, Volume, axis_aligned_affine


def dice(a, b):
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def ring_volume(r_in=7.0, r_out=11.0, sp=1.0, n=40, noise=10.0, seed=0):
    """A neck-like cylinder of muscle with a vertical bone ring (cortex 1000 HU) around a canal (10 HU)."""
    rng = np.random.default_rng(seed)
    size = 80
    c = (size - 1) / 2.0
    jj, ii = np.mgrid[0:size, 0:size]
    r = np.hypot((jj - c) * sp, (ii - c) * sp)
    sl = np.full((size, size), -1000.0, np.float32)
    sl[r <= 35] = 45.0
    sl[(r > r_in) & (r <= r_out)] = 1000.0
    sl[r <= r_in] = 10.0
    arr = np.repeat(sl[None], n, axis=0) + rng.normal(0, noise, (n, size, size)).astype(np.float32)
    vol = Volume(arr, axis_aligned_affine((sp, sp, sp)), AcquisitionInfo(contrast=None))
    return vol, r


def test_canal_of_a_bone_ring_has_the_closed_form_area():
    vol, r = ring_volume()
    canal = segment_spinal_canal(vol)
    per_slice = canal.mask.sum(axis=(1, 2))
    # pi * 7^2 = 153.9 mm^2 at 1 mm voxels; the ring is in every slice
    assert np.all(per_slice > 0)
    assert np.median(per_slice) == pytest.approx(np.pi * 7.0 ** 2, rel=0.12)
    assert len(canal.found_slices) == vol.shape[0]


def test_bone_ring_area_and_thresholds_relative_to_soft_tissue():
    vol, r = ring_volume()
    res = segment_bone(vol)
    area = res.bone.sum(axis=(1, 2))
    # annulus pi (11^2 - 7^2) = 226.2 mm^2
    assert np.median(area) == pytest.approx(np.pi * (11 ** 2 - 7 ** 2), rel=0.12)
    assert res.soft_tissue_mean_hu == pytest.approx(45.0, abs=5.0)
    assert 140.0 <= res.cancellous_threshold_hu <= 260.0
    assert res.cortical.sum() <= res.bone.sum()


def test_soft_tissue_stats_recovers_mean_and_sd():
    rng = np.random.default_rng(1)
    v = np.concatenate([rng.normal(40, 15, 50000), rng.normal(-100, 10, 20000), rng.normal(800, 50, 5000)])
    mu, sd = soft_tissue_stats(v.astype(np.float32))
    assert mu == pytest.approx(40, abs=3)
    assert sd == pytest.approx(15, abs=3)


def test_body_excludes_a_separate_table_and_airway_is_internal_air():
    vol, r = ring_volume()
    arr = vol.array.copy()
    arr[:, 76:78, 10:70] = 300.0  # table below the patient
    jj, ii = np.mgrid[0:80, 0:80]
    tube = np.hypot(jj - 25, ii - 39.5) <= 4  # air tube inside the body, anterior
    arr[:, tube] = -1000.0
    v2 = vol.with_array(arr)
    body = segment_body(v2)
    assert not body[:, 76:78, 10:70].any()
    assert body[:, tube].all()  # internal air is filled into the body
    air = segment_airway(v2, body)
    assert dice(air, np.broadcast_to(tube, air.shape)) > 0.8


def test_no_canal_raises_anatomy_error():
    arr = np.full((10, 40, 40), 40.0, np.float32)
    vol = Volume(arr, axis_aligned_affine((1.0, 1.0, 1.0)))
    with pytest.raises(AnatomyError, match="spinal canal"):
        segment_spinal_canal(vol)


def test_canon_round_trip_on_an_lps_inferior_grid():
    aff = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [-2, 0, 0, 0], [0, 0, 0, 1.0]])  # slices -> inferior
    vol = Volume(np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6), aff)
    cn = Canon.of(vol)
    c = cn.to_canon(vol.array)
    assert c[0, 0, 0] == vol.array[3, 0, 0]  # canonical k=0 is the most inferior slice
    np.testing.assert_array_equal(cn.from_canon(c), vol.array)
    idx = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(cn.index_to_original(cn.index_from_original(idx)), idx)


# ------------------------------------------------------------------ phantom
@pytest.fixture(scope="module")
def phantom():
    from osteoplan.anatomy.phantom import make_phantom

    return make_phantom(fov_inferior_mm=-60.0)


@pytest.fixture(scope="module")
def classical(phantom):
    v = replace(phantom.volume, info=replace(phantom.volume.info, contrast=None))
    return run_classical(v)


def test_phantom_dice_body_bone_airway(phantom, classical):
    lm, t = classical.labelmap, phantom.truth
    assert dice(lm.get("body"), t.get("body")) > 0.98
    assert dice(lm.get("airway"), t.get("airway")) > 0.95
    # measured 0.96 with contrast-filled vessels present
    assert dice(lm.get("bone"), t.get("bone")) >= 0.90


def test_phantom_canal_contains_the_cord(phantom, classical):
    canal = classical.labelmap.get("spinal_canal")
    cord = phantom.truth.get("spinal_cord")
    assert (canal & cord).sum() / cord.sum() >= 0.95
    # measured 0.93: both the truth and the segmentation are the bony canal (vertebral foramen,
    # at C1 behind the dens and transverse ligament), not the dural tube
    assert dice(canal, phantom.truth.get("spinal_canal")) >= 0.90


def test_contrast_detected_only_on_enhanced_phantom(phantom, classical):
    from osteoplan.anatomy.phantom import make_phantom

    assert classical.contrast.source == "image"
    assert classical.contrast.detected  # the enhanced phantom (artery 320 HU, vein 200 HU) is recognised
    plain = make_phantom(fov_inferior_mm=-60.0, contrast=False)
    v = replace(plain.volume, info=replace(plain.volume.info, contrast=None))
    res = detect_contrast(v)
    assert not res.detected
    # the series metadata wins when it is known
    assert detect_contrast(plain.volume).source == "series"
    assert not detect_contrast(plain.volume).detected


# ------------------------------------------------------------------ pipeline
def test_build_anatomy_provided_masks_take_precedence_and_save(phantom, tmp_path):
    from osteoplan.anatomy.labelmap import LabelMap
    from osteoplan.anatomy.pipeline import build_anatomy

    v = phantom.volume
    truth = phantom.truth
    provided = LabelMap(v)
    provided.add("spinal_cord", truth.get("spinal_cord"), "provided:cord.nii.gz")
    provided.add("vertebral_artery_left", truth.get("vertebral_artery_left"), "provided:va.nii.gz")
    an = build_anatomy(v, masks=provided)
    lm = an.labelmap
    assert lm.sources["spinal_cord"] == "provided:cord.nii.gz"
    assert np.array_equal(lm.get("vertebral_artery_left"), truth.get("vertebral_artery_left"))
    assert lm.sources["bone"] == "classical" and lm.sources["vertebrae_C2"] == "classical"
    # the phantom says contrast (series metadata): vessels segmented as bright tubes, sources recorded
    assert an.contrast_detected
    assert "vertebral_artery_right" in an.not_segmented()  # neither provided nor classical
    assert an.landmarks is not None and an.lesion is not None and an.lesion.found
    assert np.linalg.norm(an.landmarks.apex_lps_mm - phantom.landmarks.apex_lps_mm) <= 2.0
    summ = an.save(tmp_path / "anat")
    assert (tmp_path / "anat" / "anatomy.json").exists() and (tmp_path / "anat" / "labels.nii.gz").exists()
    assert summ["structures"]["spinal_cord"]["source"] == "provided:cord.nii.gz"
    assert summ["lesion"]["found"] is True


def test_build_anatomy_errors_are_osteoplan_errors(phantom, tmp_path):
    from osteoplan.anatomy.pipeline import build_anatomy
    from osteoplan.errors import OsteoplanError

    with pytest.raises(OsteoplanError, match="not found"):
        build_anatomy(phantom.volume, masks=tmp_path / "missing_masks")
    # a CT without spine: anatomy is returned, C2 reported NOT located with a reason
    arr = np.full((20, 40, 40), -1000.0, np.float32)
    arr[:, 5:35, 5:35] = 40.0
    v = Volume(arr, axis_aligned_affine((1.0, 1.0, 1.0)))
    an = build_anatomy(v)
    assert an.landmarks is None and an.lesion is None
    assert any(m.startswith("C2 NOT located: ") for m in an.messages)
    assert any(m.startswith("spinal_canal: NOT segmented") for m in an.messages)


def test_build_anatomy_without_totalsegmentator_says_so():
    from osteoplan.anatomy import totalseg
    from osteoplan.anatomy.pipeline import build_anatomy

    if totalseg.is_available():
        pytest.skip("TotalSegmentator is installed here")
    vol, _ = ring_volume(n=20)
    an = build_anatomy(vol, use_totalsegmentator=True)
    assert any(m.startswith("TotalSegmentator not used") for m in an.messages)
    assert an.labelmap.sources["spinal_canal"] == "classical"


def test_anatomy_save_refuses_a_non_empty_folder(tmp_path):
    from osteoplan.anatomy.pipeline import build_anatomy
    from osteoplan.errors import InputError

    vol, _ = ring_volume(n=20)  # 20 mm of rings: at least one vertebral body height (MIN_RING_SPAN_MM)
    an = build_anatomy(vol)
    out = tmp_path / "a"
    summ = an.save(out)
    assert summ["structures"]["spinal_canal"]["source"] == "classical"
    assert summ["landmarks"] is None  # a bare bone ring has no C2
    assert "spinal_cord" in summ["not_segmented"]
    with pytest.raises(InputError, match="not empty"):
        an.save(out)
