"""Airway split into pharynx / larynx / trachea: synthetic tubes with known geometry, the phantom, CThead."""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.anatomy.airway import LARYNX_LENGTH_MM, split_airway, segment_airway
from osteoplan.anatomy.segment import run_classical
from osteoplan.imaging.volume import AcquisitionInfo, Volume, axis_aligned_affine


def dice(a, b):
    return 2.0 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


def tube_volume(n_slices=100, dz=2.0, widen_k=None, r_trachea=8.0, pharynx_half_width=18.0, sp=1.0,
                wide_half_depth=8.0):
    """Neck cylinder (40 HU) with an air tube: round (radius ``r_trachea``) below slice ``widen_k``,
    a wide ellipse (half-width ``pharynx_half_width``) from ``widen_k`` up. k -> superior, origin z = 0."""
    size = 90
    c = (size - 1) / 2.0
    jj, ii = np.mgrid[0:size, 0:size]
    y, x = (jj - c) * sp, (ii - c) * sp
    body = np.hypot(x, y) <= 40
    arr = np.full((n_slices, size, size), -1000.0, np.float32)
    arr[:, body] = 40.0
    round_ = (x ** 2 + (y + 15.0) ** 2) <= r_trachea ** 2
    wide = (x / pharynx_half_width) ** 2 + ((y + 12.0) / wide_half_depth) ** 2 <= 1.0
    for k in range(n_slices):
        arr[k][wide if (widen_k is not None and k >= widen_k) else round_] = -1000.0
    vol = Volume(arr, axis_aligned_affine((dz, sp, sp)), AcquisitionInfo(contrast=False))
    return vol


def test_inlet_found_at_the_widening_and_cricoid_one_larynx_length_below():
    vol = tube_volume(widen_k=60)
    air = segment_airway(vol)
    sp = split_airway(vol, air)
    z_widen = 60 * 2.0  # slice 60 is the first wide one (slice centres at k * 2 mm)
    assert sp.inlet_method == "lumen shape"
    assert abs(sp.inlet_z_mm - z_widen) <= 2.0  # within one slice
    assert sp.cricoid_z_mm == pytest.approx(sp.inlet_z_mm - LARYNX_LENGTH_MM)
    assert sp.segmented == {"pharynx": True, "larynx": True, "trachea": True}
    # every slice is wholly one part: above the inlet pharynx, 40 mm below it larynx, then trachea
    z = np.arange(vol.shape[0]) * 2.0
    for name, lo, hi in (("pharynx", sp.inlet_z_mm, 1e9), ("larynx", sp.cricoid_z_mm, sp.inlet_z_mm),
                         ("trachea", -1e9, sp.cricoid_z_mm)):
        m = getattr(sp, name)
        ks = np.nonzero(m.any(axis=(1, 2)))[0]
        assert z[ks].min() >= lo and z[ks].max() < hi, name
    assert np.array_equal(sp.pharynx | sp.larynx | sp.trachea, air)
    assert not (sp.pharynx & sp.larynx).any() and not (sp.larynx & sp.trachea).any()
    # the larynx levels hold 20 slices of the round lumen (pi 8^2 = 201 mm^2 each)
    assert sp.larynx.any(axis=(1, 2)).sum() == pytest.approx(LARYNX_LENGTH_MM / 2.0, abs=1)
    assert any("z = " in n and "lumen shape" in n for n in sp.notes)


def test_a_ct_covering_only_the_trachea_says_pharynx_and_larynx_not_segmented():
    vol = tube_volume(widen_k=None, n_slices=40)
    air = segment_airway(vol)
    sp = split_airway(vol, air)
    assert sp.segmented["trachea"] and np.array_equal(sp.trachea, air)
    assert sp.not_segmented == ["pharynx", "larynx"]
    assert any("pharynx and larynx NOT segmented" in n for n in sp.notes)


def test_a_ct_ending_in_the_pharynx_says_larynx_and_trachea_not_segmented():
    vol = tube_volume(widen_k=0, n_slices=40)
    sp = split_airway(vol, segment_airway(vol))
    assert sp.segmented["pharynx"] and "pharynx" in sp.partial
    assert sp.not_segmented == ["larynx", "trachea"]
    assert any("larynx and trachea NOT segmented" in n for n in sp.notes)


def test_no_widening_with_c2_level_uses_the_vertebral_fallback():
    # widening beyond the top: tube only; the C2 level places the inlet 40 mm below it
    vol = tube_volume(widen_k=None, n_slices=60)
    sp = split_airway(vol, segment_airway(vol), c2_inferior_z_mm=168.0)
    assert sp.inlet_method == "vertebral level (fallback)"
    assert sp.inlet_z_mm == pytest.approx(128.0, abs=1.0)
    assert sp.cricoid_z_mm == pytest.approx(88.0, abs=1.0)
    assert sp.segmented["larynx"] and sp.segmented["trachea"]
    assert not sp.segmented["pharynx"]
    assert any("from vertebral level (fallback" in n for n in sp.notes)


def test_c2_window_rejects_a_widening_far_below_the_laryngeal_levels():
    # widening at z = 120 mm: kept when it lies 5-80 mm below the C2 inferior endplate, else the
    # vertebral level (40 mm below C2) is used
    vol = tube_volume(widen_k=60, n_slices=100)
    air = segment_airway(vol)
    assert split_airway(vol, air).inlet_method == "lumen shape"
    sp = split_airway(vol, air, c2_inferior_z_mm=190.0)  # window 110-185 mm holds the widening at 120
    assert sp.inlet_method == "lumen shape" and abs(sp.inlet_z_mm - 120.0) <= 2.0
    sp = split_airway(vol, air, c2_inferior_z_mm=130.0)  # window 50-125 mm: widening at 120 is inside
    assert sp.inlet_method == "lumen shape"
    sp = split_airway(vol, air, c2_inferior_z_mm=110.0)  # window 30-105 mm: no widening in it
    assert sp.inlet_method == "vertebral level (fallback)" and sp.inlet_z_mm == pytest.approx(70.0, abs=1.0)


def test_a_tube_opening_into_a_deep_cavity_is_not_split():
    # the wide section is 50 mm deep (nasal / oral cavity, not pharynx): no inlet is claimed, and
    # the tube is not called trachea either (it does not reach the top of the airway)
    vol = tube_volume(widen_k=60, wide_half_depth=25.0)
    sp = split_airway(vol, segment_airway(vol))
    assert sp.inlet_method == "none" and sp.inlet_z_mm is None
    assert sp.not_segmented == ["pharynx", "larynx", "trachea"]
    assert any("airway NOT split" in n for n in sp.notes)


def test_empty_airway_and_wrong_shape():
    vol = tube_volume(widen_k=None, n_slices=10)
    sp = split_airway(vol, np.zeros(vol.shape, bool))
    assert sp.not_segmented == ["pharynx", "larynx", "trachea"]
    from osteoplan.errors import MaskError

    with pytest.raises(MaskError):
        split_airway(vol, np.zeros((3, 3, 3), bool))


def test_tracheostomy_stoma_air_joins_the_airway():
    vol = tube_volume(widen_k=60)
    arr = vol.array.copy()
    # an 8 mm wide channel from the tracheal lumen to the anterior skin over 6 slices (k 20-25)
    c = (arr.shape[1] - 1) / 2.0
    i0, i1 = int(c - 4), int(c + 4)
    arr[20:26, 0:int(c - 15), i0:i1] = -1000.0
    v2 = Volume(arr, vol.affine, vol.info)
    air = segment_airway(v2)
    assert air[20:26].any(axis=(1, 2)).all()  # the stoma levels stay in the airway
    sp = split_airway(v2, air)
    assert sp.segmented["trachea"] and sp.trachea[22].any()


@pytest.fixture(scope="module")
def phantom_split():
    from osteoplan.anatomy.phantom import make_phantom

    ph = make_phantom()
    r = run_classical(ph.volume, skip=frozenset({"bone", "spinal_canal"}))
    return ph, r


def test_phantom_parts_dice(phantom_split):
    ph, r = phantom_split
    lm, t = r.labelmap, ph.truth
    # measured: airway 0.999, pharynx 0.990, larynx 0.926, trachea 0.972 (phantom with the laryngeal
    # inlet at z = -30 mm, found at -31.2; larynx 44 mm long, found 40 mm)
    assert dice(lm.get("airway"), t.get("airway")) >= 0.99
    assert dice(lm.get("pharynx"), t.get("pharynx")) >= 0.94
    assert dice(lm.get("larynx"), t.get("larynx")) >= 0.80
    assert dice(lm.get("trachea"), t.get("trachea")) >= 0.87
    for n in ("pharynx", "larynx", "trachea", "airway"):
        assert lm.sources[n] == "classical"
    assert any("lumen shape" in m for m in r.messages)
    assert any("lower border of the cricoid" in m for m in r.messages)


def test_skip_applies_per_structure(phantom_split):
    ph, _ = phantom_split
    r = run_classical(ph.volume, skip=frozenset({"bone", "spinal_canal", "larynx", "airway"}))
    assert not r.labelmap.has("larynx") and not r.labelmap.has("airway")
    assert r.labelmap.has("pharynx") and r.labelmap.has("trachea")


@pytest.mark.slow
def test_cthead_ends_in_the_pharynx(shared_data):
    from osteoplan.imaging import read_volume

    p = shared_data / "cthead" / "ct.nii.gz"
    if not p.exists():
        pytest.skip("cthead/ct.nii.gz absent")
    vol = read_volume(p)
    air = segment_airway(vol)
    sp = split_airway(vol, air)
    # the CT stops at about C4, in the pharynx: no larynx or trachea is claimed
    assert sp.segmented["pharynx"] and sp.not_segmented == ["larynx", "trachea"]
    assert not (sp.pharynx & ~air).any()
    # the pharynx reaches the bottom of the CT; the frontal / sphenoid sinuses and the nasal cavity
    # (the top of the airway mask) are not pharynx (measured: 18 % of the airway voxels)
    k_air = np.nonzero(air.any(axis=(1, 2)))[0]
    k_ph = np.nonzero(sp.pharynx.any(axis=(1, 2)))[0]
    assert k_ph.max() == k_air.max()  # slices run inferior (k up = inferior in this file)
    assert (k_ph.min() - k_air.min()) * vol.spacing_mm[0] > 40.0
    assert 0.1 < sp.pharynx.sum() / air.sum() < 0.5
