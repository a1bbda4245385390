"""Issue 13: a control CT that does not reach the plan's target is refused as not covering it, never registered
to another vertebra; the plausible-motion bound of the coarse search (see osteoplan.verification.register)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.verification import RegistrationRefused, register_control
from osteoplan.verification.geometry import apply
from osteoplan.verification.register import motion_bound_mm, outside_fov_mm
from osteoplan.verification.synth import make_control_ct


@pytest.fixture(scope="module")
def phantom():
    """The default phantom at 1 mm down to z = -126 mm (C2 target at z ~ +19.6 mm, vertebrae below it)."""
    from osteoplan.anatomy.phantom import PhantomParams, make_phantom, reference_trajectory

    ph = make_phantom(PhantomParams(spacing_mm=1.0))
    ref = reference_trajectory(ph)
    return ph.volume, np.asarray(ref["skin_entry"], float), np.asarray(ref["target"], float)


def _below(vol, entry, target, gap_mm, fov_mm, seed, **kw):
    """A short control CT whose top lies *gap_mm* below the target (no patient motion unless given)."""
    centre = target - [0.0, 0.0, gap_mm + fov_mm / 2.0]
    kw = {"rotation_deg": 0.0, "translation_mm": 0.0, **kw}
    return make_control_ct(vol, entry, target, seed=seed, fov_z_mm=fov_mm, grid_centre_lps_mm=centre,
                           streaks=False, **kw)


def _with_for(vol: Volume, uid: str | None) -> Volume:
    return Volume(vol.array, vol.affine, dataclasses.replace(vol.info, frame_of_reference_uid=uid))


class TestGeometry:
    def test_outside_fov_mm_hand_computed(self):
        """Box of voxel centres 0..9 (x, 1 mm), 0..19 (y, 0.5 mm), 0..4 (z, 2 mm) -> FOV x [-0.5, 9.5],
        y [-0.25, 9.75], z [-1, 9] mm."""
        vol = Volume(np.zeros((5, 20, 10), np.float32), axis_aligned_affine((2.0, 0.5, 1.0), (0.0, 0.0, 0.0)))
        assert outside_fov_mm(vol, [4.0, 4.0, 4.0]) == 0.0
        assert outside_fov_mm(vol, [4.0, 4.0, 12.0]) == pytest.approx(3.0)          # 12 - 9
        assert outside_fov_mm(vol, [-4.5, 4.0, 12.0]) == pytest.approx(5.0)         # hypot(4, 3)
        assert outside_fov_mm(vol, [4.0, 4.0, 4.0], margin_mm=2.0) == 0.0
        # margin 5: x limits [4.5, 4.5], y [4.75, 4.75] -> 0.5 and 0.75 mm out
        assert outside_fov_mm(vol, [4.0, 4.0, 4.0], margin_mm=5.0) == pytest.approx(np.hypot(0.5, 0.75))
        assert outside_fov_mm(vol, [4.0, 4.0, 8.0], margin_mm=2.0) == pytest.approx(1.0)  # z limit 9 - 2 = 7

    def test_motion_bound_by_frame_of_reference(self):
        vol = Volume(np.zeros((2, 2, 2), np.float32), np.eye(4))
        a, b, none = _with_for(vol, "1.2.3"), _with_for(vol, "1.2.4"), _with_for(vol, None)
        assert motion_bound_mm(a, a, 40.0) == 40.0          # same session
        assert motion_bound_mm(a, none, 40.0) == 40.0       # unknown (NIfTI): scanner coordinates are the prior
        assert motion_bound_mm(a, b, 40.0) is None          # another frame: unbounded
        assert motion_bound_mm(a, a, None) is None


class TestCoverage:
    @pytest.mark.parametrize("gap_mm,fov_mm,seed", [(45.0, 40.0, 1), (70.0, 60.0, 2), (100.0, 50.0, 3)])
    def test_scan_below_the_target_is_not_covering(self, phantom, gap_mm, fov_mm, seed):
        """Short scans ending 45-100 mm below the target: refused as not covering it. Unbounded (the search
        before the fix), the same scan slides the target onto a lower vertebra > 40 mm away (untrusted only
        by the surface-match limits)."""
        vol, entry, target = phantom
        ctrl, _ = _below(vol, entry, target, gap_mm, fov_mm, seed)
        assert outside_fov_mm(ctrl, target, 5.0) == pytest.approx(gap_mm + 5.0, abs=1.0)
        with pytest.raises(RegistrationRefused, match="does not cover the plan's target"):
            register_control(vol, ctrl, target)
        wide = register_control(vol, ctrl, target, max_motion_mm=None, refuse=False)
        assert wide.motion_bound_mm is None
        assert np.linalg.norm(wide.target_shift_lps_mm) > 40.0 and not wide.trusted

    def test_another_frame_of_reference_searches_wide_and_is_refused_by_the_match(self, phantom):
        """Frames differ (another day): no coverage prior, the wrong level is refused by the match limits
        (the stricter overlap of an unbounded search); the same frame registers a moved patient as usual."""
        vol, entry, target = phantom
        ctrl, _ = _below(vol, entry, target, 70.0, 60.0, 4)
        with pytest.raises(RegistrationRefused, match=r"cannot be trusted.*\(needed 85 %\)"):
            register_control(_with_for(vol, "1.2.3"), _with_for(ctrl, "1.2.4"), target)

    @pytest.mark.slow
    def test_shift_reported_and_motion_bound(self, phantom):
        """10 deg about the target + 20 mm: the reported target shift is the true one (0.3 mm); a true
        30 mm shift with a 15 mm bound is refused (untrusted), never measured."""
        vol, entry, target = phantom
        ctrl, truth = make_control_ct(vol, entry, target, seed=9, rotation_deg=10.0, translation_mm=20.0,
                                      instrument=False, streaks=False)
        reg = register_control(vol, ctrl, target)
        true_shift = apply(truth.control_from_planning, target) - target
        assert np.linalg.norm(true_shift) == pytest.approx(20.0, abs=1e-6)
        assert np.linalg.norm(np.asarray(reg.target_shift_lps_mm) - true_shift) <= 0.3
        d = reg.to_dict()
        assert d["motion_bound_mm"] == 40.0 and d["target_shift_mm"] == pytest.approx(20.0, abs=0.3)
        far, _ = make_control_ct(vol, entry, target, seed=9, rotation_deg=0.0, translation_mm=30.0,
                                 instrument=False, streaks=False)
        with pytest.raises(RegistrationRefused, match="cannot be trusted"):
            register_control(vol, far, target, max_motion_mm=15.0)

    def test_another_frame_still_registers_a_moved_patient(self, phantom):
        """Unbounded search with the stricter overlap: a correct registration (8 deg, 15 mm) is trusted."""
        vol, entry, target = phantom
        ctrl, truth = make_control_ct(vol, entry, target, seed=11, rotation_deg=8.0, translation_mm=15.0,
                                      instrument=False, streaks=False)
        reg = register_control(_with_for(vol, "1.2.3"), _with_for(ctrl, "1.2.4"), target)
        assert reg.trusted and reg.motion_bound_mm is None and reg.surface_overlap >= 0.85
        back = apply(reg.planning_from_control, apply(truth.control_from_planning, target))
        assert np.linalg.norm(back - target) <= 0.3


@pytest.mark.slow
def test_bench_verify_cover_smoke(capsys):
    """benchmarks/bench_verify_cover.py on 2 phantom trials: both registered and trusted, found motion exact."""
    import importlib.util
    import re
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_verify_cover.py"
    spec = importlib.util.spec_from_file_location("bench_smoke_bench_verify_cover", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    assert mod.main(["--trials", "2", "--data", "phantom", "--no-wrong"]) == 0
    out = capsys.readouterr().out
    assert "phantom correct: 2 registered, 0 refused ([]), untrusted 0" in out
    err = float(re.search(r"target shift error max ([0-9.]+) mm", out).group(1))
    assert err <= 0.3
