"""The tip of a thin wire on thick slices: metal line density over the registered planning CT, stated uncertainty."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.special import erf

from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.verification import detect_instruments, verify_control
from osteoplan.verification.geometry import angle_deg
from osteoplan.verification.instrument import _end, _metal_line_density
from osteoplan.verification.synth import insert_cylinder, make_control_ct


@pytest.fixture(scope="module")
def phantom():
    from osteoplan.anatomy.phantom import PhantomParams, make_phantom, reference_trajectory

    ph = make_phantom(PhantomParams(spacing_mm=1.0, fov_inferior_mm=-60.0))
    ref = reference_trajectory(ph)
    traj = SimpleNamespace(skin_entry_lps_mm=tuple(ref["skin_entry"]), bone_entry_lps_mm=tuple(ref["bone_entry"]),
                           target_lps_mm=tuple(ref["target"]), clearances=(), screw=None, instrument_radius_mm=None,
                           containment_entry_skip_mm=3.0)
    return ph, traj


class TestEndOfProfile:
    """:func:`_end` on profiles whose answer is known by hand."""

    ss = np.arange(-20.0, 20.0 + 1e-9, 0.1)

    def test_blurred_step_ends_at_half_plateau(self):
        # a cylinder end at s = 3.0 blurred by a Gaussian (sigma 0.9 mm): q = P/2 (1 - erf((s - 3) / (sigma sqrt 2)))
        q = 2000.0 * 0.5 * (1 - erf((self.ss - 3.0) / (0.9 * np.sqrt(2))))
        q += np.random.default_rng(1).normal(0, 20.0, q.shape)
        e, cut, u = _end(self.ss, q, 0.5, +1, sigma_along_mm=0.9, floor_mm=0.25)
        assert e == pytest.approx(3.0, abs=0.05)
        assert not cut
        # the rise (25-75 %: 1.349 sigma) is what the blur explains: only the floor and a small level term remain
        assert 0.25 <= u <= 0.3

    def test_other_direction_and_coarse_end_far_short(self):
        # metal for s >= -4 (the rear end, sign -1), the search starting 5 mm inside the metal
        q = 1500.0 * 0.5 * (1 + erf((self.ss + 4.0) / (0.6 * np.sqrt(2))))
        e, cut, u = _end(self.ss, q, 1.0, -1, sigma_along_mm=0.6)
        assert e == pytest.approx(-4.0, abs=0.05) and not cut

    def test_fading_end_states_its_uncertainty(self):
        # metal fading linearly over 10 mm (0 -> 10): half-way at 5, 25-75 % over 5 mm; the blur explains
        # 1.349 * 0.8 = 1.08 mm of it: u_ramp = (5 - 1.08) / 2 = 1.96 mm
        q = 2000.0 * np.clip(1 - self.ss / 10.0, 0, 1)
        e, cut, u = _end(self.ss, q, 0.0, +1, sigma_along_mm=0.8)
        assert e == pytest.approx(5.0, abs=0.1)
        assert u >= 1.96 - 0.05

    def test_no_plateau_is_infinite(self):
        q = np.random.default_rng(2).normal(-50.0, 5.0, self.ss.shape)
        assert np.isinf(_end(self.ss, q, 0.0, +1, sigma_along_mm=0.8)[2])

    def test_field_of_view_cuts_the_metal(self):
        q = np.where(self.ss < 8.0, 2000.0, np.nan)  # the CT ends at s = 8 while the metal goes on
        assert _end(self.ss, q, 0.0, +1, sigma_along_mm=0.8)[1]


def test_metal_line_density_is_the_cross_section_times_the_excess():
    """q of a 1 mm wire (3000 HU) in 400 HU 'bone' on 1 x 1 x 2 mm voxels, over the wire-free reference:
    pi/4 * (3000 - 400) = 2042 HU mm^2 on average along the wire, and it swings far less with where the wire
    lies between voxel centres than the on-axis value (partial volume and blur move metal around, they do not
    remove it; what is left is the trilinear sampling of a tilted disc)."""
    aff = axis_aligned_affine((2.0, 1.0, 1.0), (-20.0, -20.0, -30.0))
    ref = np.full((30, 40, 40), 400.0, np.float32)
    a = ref.copy()
    d = np.array([np.sin(np.radians(25)), 0.0, np.cos(np.radians(25))])
    tip = np.array([0.3, 0.4, 10.0])
    insert_cylinder(a, aff, tip, d, 60.0, 1.0)
    ss = np.arange(-30.0, -5.0, 0.5)
    q, bg = _metal_line_density(Volume(a, aff), tip, d, ss, 2.5, 0.25, Volume(ref, aff), np.eye(4))
    expected = np.pi / 4 * (3000.0 - 400.0)
    assert np.mean(q) == pytest.approx(expected, rel=0.05)
    assert np.allclose(bg, 400.0)
    on_axis = Volume(a, aff).sample(tip + ss[:, None] * d) - 400.0
    assert np.std(q) / np.mean(q) <= 0.5 * np.std(on_axis) / np.mean(on_axis)


def test_thin_wire_in_dense_bone_on_thick_slices():
    """A 1.0 mm wire whose tip sits in 1000 HU bone, 1 x 1 x 2 mm voxels: found, tip within 0.5 mm; with the
    reference the metal line density gives the diameter (1.0 mm) too."""
    aff = axis_aligned_affine((2.0, 1.0, 1.0), (-25.0, -25.0, -40.0))
    ref = np.full((40, 50, 50), 60.0, np.float32)
    ref[22:, :, :] = 1000.0  # dense bone above z = 4 mm
    rng = np.random.default_rng(4)
    ref += rng.normal(0, 15.0, ref.shape).astype(np.float32)
    a = ref.copy()
    d = np.array([np.sin(np.radians(15)), np.sin(np.radians(10)), 1.0])
    d /= np.linalg.norm(d)
    tip = np.array([1.3, -0.6, 12.7])
    insert_cylinder(a, aff, tip, d, 45.0, 1.0)
    vol, refv = Volume(a, aff), Volume(ref, aff)
    found = detect_instruments(vol, tip - 30 * d, d, toward_lps_mm=tip + 20 * d, reference=refv,
                               reference_from_volume=np.eye(4))
    assert len(found) == 1
    f = found[0]
    assert np.linalg.norm(f.tip_lps_mm - tip) <= 0.5
    assert angle_deg(f.direction_unit, d) <= 1.0
    assert f.diameter_mm == pytest.approx(1.0, abs=0.15)
    assert f.tip_uncertainty_mm <= 1.0


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow),
                                  pytest.param(3, marks=pytest.mark.slow)])
def test_one_mm_wire_on_two_mm_slices_whole_check(phantom, seed):
    """The whole check (registration, detection, tip) on a synthetic control CT of the phantom with 2 mm slices
    and a 1.0 mm wire (streaks, noise, patient moved): tip within 1 mm, inside 1.5 x its stated uncertainty."""
    ph, traj = phantom
    ctrl, truth = make_control_ct(ph.volume, traj.skin_entry_lps_mm, traj.target_lps_mm, seed=seed, angle_deg=3.0,
                                  offset_mm=2.0, short_of_target_mm=6.0, diameter_mm=1.0, rotation_deg=5.0,
                                  translation_mm=8.0, spacing_kji_mm=(2.0, 1.0, 1.0))
    res = verify_control(traj, ph.volume, ctrl)
    err = float(np.linalg.norm(np.asarray(res["tip_lps_mm"]) - truth.tip_planning_lps_mm))
    assert err <= 1.0
    assert err <= 1.5 * res["tip_uncertainty_mm"]
    assert angle_deg(res["instrument"]["direction_unit"], truth.direction_planning_unit) <= 1.0
    assert res["instrument"]["diameter_mm"] == pytest.approx(1.0, abs=0.2)


def test_subtraction_residual_at_the_tip_is_covered_by_the_stated_uncertainty():
    """A residual of the subtraction (a sinusoid of amplitude 300 HU mm^2, 4 mm period, as left by cortical edges
    on 2 mm slices) on a blurred step of 2000 HU mm^2 (sigma 1 mm): the crossing moves by up to
    300 / slope = 300 * sqrt(2 pi) * 1.0 / 2000 = 0.38 mm; the stated uncertainty (two RMS spreads of the
    residual over the slope) covers the shift for every phase of the residual (the previous figure, the robust
    spread times the 25-75 % rise over the plateau, stated 0.17 mm for a shift of 0.33 mm); the level term
    alone is 2 * (300 / sqrt 2) * sqrt(2 pi) * 1.0 / 2000 = 0.53 mm, more where the residual stretches the rise."""
    ss = np.arange(-20.0, 20.0 + 1e-9, 0.1)
    for phase in np.linspace(0, 2 * np.pi, 8, endpoint=False):
        q = 2000.0 * 0.5 * (1 - erf((ss - 3.0) / np.sqrt(2))) + 300.0 * np.sin(2 * np.pi * ss / 4.0 + phase)
        e, cut, u = _end(ss, q, 0.5, +1, sigma_along_mm=1.0, floor_mm=0.0)
        assert not cut
        assert abs(e - 3.0) <= 0.5  # bounded by the residual over the slope (plus the plateau's own shift)
        assert u >= abs(e - 3.0)
        assert 0.5 <= u <= 1.2


def test_weighted_line_density_still_ends_at_half_plateau():
    """The Gaussian-weighted metal line density (matched to the blurred cross-section) of a 1.1 mm wire on
    1 x 1 x 2 mm voxels, inclined 10 deg to the slice axis: its half-way crossing is the cylinder's end
    (weights symmetric about the axis, point-symmetric blur), within 0.2 mm, for several positions of the
    end between slice centres, like the plain integral (both move by up to ~0.15 mm with the sampling phase)."""
    aff = axis_aligned_affine((2.0, 1.0, 1.0), (-20.0, -20.0, -30.0))
    ref = np.full((30, 40, 40), 400.0, np.float32)
    d = np.array([np.sin(np.radians(10)), 0.0, np.cos(np.radians(10))])
    ss = np.arange(-16.0, 10.0, 0.1)
    for z_tip in (9.0, 9.5, 10.0, 10.7):
        a = ref.copy()
        tip = np.array([0.3, 0.4, z_tip])
        insert_cylinder(a, aff, tip, d, 60.0, 1.1)
        for w in (None, 0.7):
            q, _ = _metal_line_density(Volume(a, aff), tip, d, ss, 2.0, 0.2, Volume(ref, aff), np.eye(4),
                                       weight_sigma_mm=w)
            e, cut, _u = _end(ss, q, -3.0, +1, sigma_along_mm=1.0)
            assert abs(e) <= 0.2, (z_tip, w, e)


def test_metal_fraction_removes_the_bias_of_a_wire_entering_dense_bone():
    """A 1.2 mm wire crossing soft tissue (60 HU) into dense bone (1000 HU) 3-4 mm before its tip, 1 x 1 x 2 mm
    voxels. Its excess over the anatomy is pi/4 1.2^2 (3000 - 60) = 3325 HU mm^2 behind and (3000 - 1000) /
    (3000 - 60) = 68 % of it at the tip: the half level of the plateau behind is too high and the plain excess
    places the end 0.4-0.6 mm shorter than the same wire in uniform soft tissue. Divided by (3000 - planning HU)
    (the metal fraction: the cross-section, 1.13 mm^2 everywhere) the end is where it is in uniform tissue
    (within 0.05 mm; what is left, up to 0.3 mm, is the 2 mm sampling, the same with or without bone)."""
    aff = axis_aligned_affine((2.0, 1.0, 1.0), (-20.0, -20.0, -40.0))
    z = -40.0 + 2.0 * np.arange(40)
    d = np.array([np.sin(np.radians(8)), 0.0, np.cos(np.radians(8))])
    ss = np.arange(-18.0, 10.0, 0.1)
    for z_tip in (9.0, 10.3):
        tip = np.array([0.2, -0.3, z_tip])
        ends = {}
        for bone_hu in (1000.0, 60.0):
            ref = (np.where(z[:, None, None] >= 6.0, bone_hu, 60.0) * np.ones((40, 40, 40))).astype(np.float32)
            a = ref.copy()
            insert_cylinder(a, aff, tip, d, 60.0, 1.2)
            for m in (None, 3000.0):
                q, _ = _metal_line_density(Volume(a, aff), tip, d, ss, 2.0, 0.2, Volume(ref, aff), np.eye(4),
                                           weight_sigma_mm=0.7, metal_hu=m)
                ends[bone_hu, m] = _end(ss, q, -3.0, +1, sigma_along_mm=1.0)[0]
        assert ends[60.0, None] - ends[1000.0, None] >= 0.4, ends
        assert abs(ends[1000.0, 3000.0] - ends[60.0, 3000.0]) <= 0.05, ends
        assert abs(ends[1000.0, 3000.0]) <= 0.35, ends
