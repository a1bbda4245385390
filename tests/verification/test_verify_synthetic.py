"""Registration, instrument detection and the whole check on synthetic control CTs with a known truth."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.verification import (NoInstrument, RegistrationRefused, SeveralInstruments, detect_instruments,
                                    register_control, verify_control)
from osteoplan.verification.deviation import deviation_figures
from osteoplan.verification.geometry import angle_deg, apply
from osteoplan.verification.synth import insert_cylinder, make_control_ct


@pytest.fixture(scope="module")
def phantom():
    from osteoplan.anatomy.phantom import PhantomParams, make_phantom, reference_trajectory

    ph = make_phantom(PhantomParams(spacing_mm=1.0, fov_inferior_mm=-60.0))
    ref = reference_trajectory(ph)
    checks = (SimpleNamespace(structure="spinal_canal", category="hard", margin_mm=2.0, clearance_mm=3.0,
                              segment="skin_to_target"),
              SimpleNamespace(structure="carotid_not_segmented", category="displaceable", margin_mm=5.0,
                              clearance_mm=None, segment="skin_to_target"))
    traj = SimpleNamespace(skin_entry_lps_mm=tuple(ref["skin_entry"]), bone_entry_lps_mm=tuple(ref["bone_entry"]),
                           target_lps_mm=tuple(ref["target"]), clearances=checks,
                           screw=SimpleNamespace(diameter_mm=3.5, length_mm=30.0), instrument_radius_mm=1.0,
                           containment_entry_skip_mm=3.0)
    masks = {n: ph.truth.get(n) for n in ("vertebrae_C2", "spinal_canal", "bone")}
    return ph, traj, masks


def _ctrl(ph, traj, **kw):
    return make_control_ct(ph.volume, traj.skin_entry_lps_mm, traj.target_lps_mm, **kw)


class TestInstrumentDetection:
    def _block(self):
        aff = axis_aligned_affine((0.8, 0.8, 0.8), (-20.0, -20.0, -20.0))
        a = np.full((50, 50, 50), 40.0, np.float32)
        a[:, :, 25:] = 300.0  # "bone" on the left half
        return a, aff

    def test_oblique_wire_tip_and_axis(self):
        """A 1.5 mm wire, tip in 'bone', axis 20 deg from S; tip and axis found to sub-voxel accuracy."""
        a, aff = self._block()
        d = np.array([np.sin(np.radians(20)), 0.0, np.cos(np.radians(20))])
        tip = np.array([3.3, 1.7, 8.2])
        insert_cylinder(a, aff, tip, d, 25.0, 1.5)
        a += np.random.default_rng(0).normal(0, 15, a.shape).astype(np.float32)
        found = detect_instruments(Volume(a, aff), toward_lps_mm=tip + 10 * d)
        assert len(found) == 1
        f = found[0]
        assert np.linalg.norm(f.tip_lps_mm - tip) <= 0.3
        assert angle_deg(f.direction_unit, d) <= 0.5
        assert f.visible_length_mm == pytest.approx(25.0, abs=0.6)
        assert not f.tip_cut_by_fov and not f.rear_cut_by_fov

    def test_field_of_view_cuts_the_rear(self):
        a, aff = self._block()
        d = np.array([0.0, 0.0, 1.0])
        insert_cylinder(a, aff, np.array([2.0, 2.0, 5.0]), d, 100.0, 2.0)  # runs out through the bottom slice
        f = detect_instruments(Volume(a, aff), toward_lps_mm=(2, 2, 20))
        assert len(f) == 1 and f[0].rear_cut_by_fov and not f[0].tip_cut_by_fov
        assert f[0].tip_lps_mm == pytest.approx([2.0, 2.0, 5.0], abs=0.3)

    def test_none_and_two(self):
        a, aff = self._block()
        assert detect_instruments(Volume(a.copy(), aff)) == []
        d = np.array([0.0, 0.0, 1.0])
        insert_cylinder(a, aff, np.array([-8.0, 0.0, 5.0]), d, 20.0, 2.0)
        insert_cylinder(a, aff, np.array([8.0, 0.0, 5.0]), d, 20.0, 2.0)
        assert len(detect_instruments(Volume(a, aff))) == 2

    def test_dense_blob_is_not_an_instrument(self):
        """A 4 mm ball of metal (a filling) is not a line."""
        a, aff = self._block()
        z, y, x = np.meshgrid(*(np.arange(50) * 0.8 - 20,) * 3, indexing="ij")
        a[(x ** 2 + y ** 2 + z ** 2) <= 4.0] = 3000.0
        assert detect_instruments(Volume(a, aff)) == []


class TestVerifyOnPhantom:
    @pytest.mark.slow
    def test_moved_patient_deviated_pin(self, phantom):
        """8 deg / 15 mm patient motion, pin 3 deg and 2 mm off, 6 mm short, streaks and noise."""
        ph, traj, masks = phantom
        ctrl, truth = _ctrl(ph, traj, seed=4, angle_deg=3.0, offset_mm=2.0, short_of_target_mm=6.0, diameter_mm=2.0,
                            rotation_deg=8.0, translation_mm=15.0)
        res = verify_control(traj, ph.volume, ctrl, masks=masks, sources={"spinal_canal": "phantom-truth"})
        assert np.linalg.norm(np.asarray(res["tip_lps_mm"]) - truth.tip_planning_lps_mm) <= 0.5
        assert abs(res["angle_to_plan_deg"] - 3.0) <= 1.0
        # the predicted miss at the target, against the same figure computed from the true instrument
        ref = deviation_figures(traj.skin_entry_lps_mm, traj.bone_entry_lps_mm, traj.target_lps_mm,
                                truth.tip_planning_lps_mm, truth.direction_planning_unit)
        assert res["lateral_offset_at_target_mm"] == pytest.approx(ref["lateral_offset_at_target_mm"], abs=0.5)
        assert res["remaining_depth_mm"] == pytest.approx(ref["remaining_depth_mm"], abs=0.5)
        assert res["registration"]["trusted"] and res["registration"]["residual_median_mm"] < 0.5
        rows = {r["structure"]: r for r in res["clearances"]}
        assert rows["spinal_canal"]["actual_clearance_mm"] is not None
        assert rows["carotid_not_segmented"]["status"] == "not_assessed"
        assert rows["carotid_not_segmented"]["actual_clearance_mm"] is None

    def test_registration_error_alone(self, phantom):
        """The registration maps the target back within 0.3 mm (10 deg, 20 mm motion, no instrument)."""
        ph, traj, _ = phantom
        ctrl, truth = _ctrl(ph, traj, seed=9, rotation_deg=10.0, translation_mm=20.0, instrument=False)
        reg = register_control(ph.volume, ctrl, traj.target_lps_mm)
        t = np.asarray(traj.target_lps_mm)
        back = apply(reg.planning_from_control, apply(truth.control_from_planning, t))
        assert np.linalg.norm(back - t) <= 0.3

    @pytest.mark.slow
    def test_two_instruments_ask_which(self, phantom):
        ph, traj, masks = phantom
        ctrl, truth = _ctrl(ph, traj, seed=5, angle_deg=1.0, offset_mm=1.0, rotation_deg=4.0, translation_mm=8.0,
                            extra_instruments=1, streaks=False)
        with pytest.raises(SeveralInstruments) as ei:
            verify_control(traj, ph.volume, ctrl, masks=masks)
        msg = str(ei.value)
        assert msg.startswith("2 instruments were found") and "--instrument N" in msg and "\n" not in msg
        res = verify_control(traj, ph.volume, ctrl, masks=masks, instrument_number=1)
        assert np.linalg.norm(np.asarray(res["tip_lps_mm"]) - truth.tip_planning_lps_mm) <= 0.5

    def test_no_instrument(self, phantom):
        ph, traj, masks = phantom
        ctrl, _ = _ctrl(ph, traj, seed=6, instrument=False, streaks=False)
        with pytest.raises(NoInstrument, match="No metal instrument was found near the planned path"):
            verify_control(traj, ph.volume, ctrl, masks=masks)

    def test_control_not_covering_the_target(self, phantom):
        """A 40 mm scan centred 70 mm below the target."""
        ph, traj, masks = phantom
        t = np.asarray(traj.target_lps_mm)
        ctrl, _ = _ctrl(ph, traj, seed=7, rotation_deg=2.0, translation_mm=3.0, fov_z_mm=40.0,
                        grid_centre_lps_mm=t - [0, 0, 70.0], streaks=False)
        with pytest.raises(RegistrationRefused, match="does not cover the plan's target"):
            verify_control(traj, ph.volume, ctrl, masks=masks)

    def test_registration_not_trustworthy(self, phantom):
        """A control CT of other anatomy (the phantom upside down) is refused, not measured."""
        ph, traj, masks = phantom
        other = Volume(ph.volume.array[::-1].copy(), ph.volume.affine)
        with pytest.raises(RegistrationRefused, match="cannot be trusted"):
            verify_control(traj, ph.volume, other, masks=masks)

    def test_screw_stage(self, phantom):
        """A 3.5 x 30 mm screw from the bone entry, 2 deg off; post-op errors against the true screw."""
        ph, traj, masks = phantom
        ctrl, truth = make_control_ct(ph.volume, traj.bone_entry_lps_mm, traj.target_lps_mm, seed=8, angle_deg=2.0,
                                      offset_mm=1.0, short_of_target_mm=1.0, diameter_mm=3.5, length_mm=30.0,
                                      rotation_deg=5.0, translation_mm=10.0, streaks=False)
        res = verify_control(traj, ph.volume, ctrl, masks=masks, stage="screw")
        p = res["postop"]
        be, t = np.asarray(traj.bone_entry_lps_mm), np.asarray(traj.target_lps_mm)
        planned_tip = be + 30.0 * (t - be) / np.linalg.norm(t - be)
        assert p["tip_error_mm"] == pytest.approx(np.linalg.norm(truth.tip_planning_lps_mm - planned_tip), abs=0.5)
        assert p["angle_error_deg"] == pytest.approx(angle_deg(truth.direction_planning_unit, t - be), abs=0.7)
        assert p["grade"] in "ABCDE" and "Gertzbein" in p["grade_source"] and "adapted" in p["grade_source"]
        assert p["entry_error_mm"] is not None
