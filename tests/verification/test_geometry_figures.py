"""Hand-checked geometry of the verification figures (no CT needed)."""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.verification.deviation import deviation_figures, segment_clearance_mm
from osteoplan.verification.geometry import apply, patient_terms, rigid, rotation_about
from osteoplan.verification.postop import gertzbein_robbins_grade, screw_figures
from osteoplan.imaging.volume import axis_aligned_affine


class TestDeviation:
    def test_tilted_pin_beside_a_vertical_plan(self):
        """Plan straight up (S) from z=0 to z=50; pin tip 2 mm left at z=40, axis tilted atan(0.1) to the left."""
        f = deviation_figures((0, 0, 0), (0, 0, 10), (0, 0, 50), (2, 0, 40), (0.1, 0, 1.0))
        assert f["tip_to_plan_mm"] == pytest.approx(2.0, abs=0.01)
        assert f["tip_offset_in_words"].startswith("2.0 mm left")
        assert f["angle_to_plan_deg"] == pytest.approx(np.degrees(np.arctan(0.1)), abs=0.01)  # 5.71
        # pushed on 10 mm in depth along (0.1, 0, 1): x grows by 1 mm -> arrives 3 mm left of the target
        assert f["remaining_depth_mm"] == pytest.approx(10 * np.sqrt(1.01), abs=0.01)
        assert f["predicted_tip_lps_mm"] == pytest.approx([3.0, 0.0, 50.0], abs=0.01)
        assert f["lateral_offset_at_target_mm"] == pytest.approx(3.0, abs=0.01)
        assert f["tip_to_target_mm"] == pytest.approx(np.hypot(2, 10), abs=0.01)
        c = f["correction"]
        # parallel to the plan only: 5.7 deg right (labelled as such, not the correction)
        assert c["parallel_to_plan"]["turn_deg"] == pytest.approx(5.7, abs=0.05)
        assert c["parallel_to_plan"]["turn_components_lps_deg"][0] == pytest.approx(-5.7, abs=0.1)
        # the correction aims at the target about the bone-entry point of the axis, x = 2 - 30.05 * 0.1 = -1.0 mm
        # at z = 10.1: from there the target is atan(1.0 / 39.9) = 1.4 deg to the left -> turn 5.7 - 1.4 = 4.3 right
        piv = np.asarray(c["pivot_lps_mm"])
        d = np.array([0.1, 0, 1.0]) / np.sqrt(1.01)
        tip = np.array([2.0, 0, 40.0])
        assert piv == pytest.approx(tip + ((np.array([0, 0, 10.0]) - tip) @ d) * d, abs=0.01)
        assert piv == pytest.approx([-0.99, 0, 10.1], abs=0.02)
        assert c["turn_deg"] == pytest.approx(5.71 - np.degrees(np.arctan(-piv[0] / (50 - piv[2]))), abs=0.06)
        assert c["turn_components_lps_deg"][0] < 0
        assert "right" in c["redirect_in_words"]
        assert c["carm_bullseye_plan"]["secondary_deg"] == pytest.approx(-90.0, abs=0.1)  # plan straight up: caudal view

    def test_tip_beyond_the_target_depth(self):
        """A tip 5 mm past the target depth: negative remaining depth, clearance line ends at the tip."""
        f = deviation_figures((0, 0, 0), (0, 0, 10), (0, 0, 50), (0, 1, 55), (0, 0, 1))
        assert f["remaining_depth_mm"] == pytest.approx(-5.0, abs=0.01)
        assert f["segment_lps_mm"][1] == pytest.approx([0, 1, 55], abs=0.01)
        assert f["lateral_offset_at_target_mm"] == pytest.approx(1.0, abs=0.01)
        assert f["correction"]["parallel_to_plan"]["in_words"] == "parallel to the plan"
        # the line misses the target by 1 mm: withdrawn first to the bone-entry point of the axis (0, 1, 10),
        # 55 - 10 = 45 mm, then aimed at the target from there: atan(1 / 40) anterior, advanced hypot(1, 40) mm
        c = f["correction"]
        assert c["withdraw_first"]["withdraw_mm"] == 45.0 and c["withdraw_first"]["withdraw_to"] == "bone_entry"
        assert c["turn_deg"] == pytest.approx(np.degrees(np.arctan(1 / 40)), abs=0.05)
        assert c["steps"] == ["withdraw 45.0 mm first (back to the bone entry: the tip is 5.0 mm past the target depth)",
                              "then turn the tip 1.4 deg: 1.4 deg anterior (pivoting at the bone entry; the line "
                              "then passes through the target)",
                              "then advance 40.0 mm to the target"]

    def test_patient_terms(self):
        assert patient_terms((-1.2, -0.4, 3.0)) == "3.0 mm cranial, 1.2 mm right, 0.4 mm anterior"


class TestClearance:
    def test_parallel_line_to_a_half_space(self):
        """Mask x >= 10 mm on a 1 mm grid; a line along z at x = 0 with radius 1 mm: 10 - 1 = 9 mm."""
        aff = axis_aligned_affine((1.0, 1.0, 1.0), (-20.0, -20.0, -20.0))
        m = np.zeros((41, 41, 41), bool)
        m[:, :, 30:] = True  # i = 30 <-> x = 10 mm
        d = segment_clearance_mm(m, aff, (1, 1, 1), (0, 0, -10), (0, 0, 10), 1.0)
        assert d == pytest.approx(9.0, abs=1e-3)
        # oblique: from x=0 to x=6 -> closest at x=6: 10 - 6 - 1 = 3
        assert segment_clearance_mm(m, aff, (1, 1, 1), (0, 0, -10), (6, 0, 10), 1.0) == pytest.approx(3.0, abs=1e-3)


class TestPostop:
    @pytest.mark.parametrize("b,g", [(-1.0, "A"), (0.0, "A"), (0.5, "B"), (1.99, "B"), (2.0, "C"), (3.9, "C"),
                                     (4.0, "D"), (5.99, "D"), (6.0, "E"), (12.0, "E")])
    def test_gertzbein_robbins_steps(self, b, g):
        assert gertzbein_robbins_grade(b) == g

    def test_screw_off_centre_in_a_bone_cylinder(self):
        """Bone = vertical cylinder of radius 5 mm; a 3.5 mm screw 4.5 mm off its axis: surface 1.25 mm out -> B."""
        sp = 0.5
        aff = axis_aligned_affine((sp, sp, sp), (-10.0, -10.0, 0.0))
        K, J, I = 81, 41, 41
        z, y, x = np.meshgrid(np.arange(K) * sp, np.arange(J) * sp - 10, np.arange(I) * sp - 10, indexing="ij")
        bone = (x ** 2 + y ** 2 <= 25.0) & (z >= 5) & (z <= 35)
        f = screw_figures((0, 0, 5), (0, 0, 30), (4.5, 0, 30), (0, 0, 1), 1.75, bone, aff, (sp, sp, sp))
        assert f["tip_error_mm"] == pytest.approx(4.5, abs=1e-6)
        assert f["angle_error_deg"] == pytest.approx(0.0, abs=1e-6)
        assert f["max_breach_mm"] == pytest.approx(1.25, abs=0.3)  # voxel surface (0.5 mm grid)
        assert f["grade"] == "B"
        assert "left" in f["breach_where"]
        # the screw centred: inside, grade A
        g = screw_figures((0, 0, 5), (0, 0, 30), (0, 0, 30), (0, 0, 1), 1.75, bone, aff, (sp, sp, sp))
        assert g["grade"] == "A" and g["max_breach_mm"] == 0.0
        assert g["entry_error_mm"] == pytest.approx(0.0, abs=0.5)  # the axis leaves the bone at z = 5

    def test_no_vertebra_mask_is_not_assessed(self):
        f = screw_figures((0, 0, 5), (0, 0, 30), (0, 0, 30), (0, 0, 1), 1.75, None, np.eye(4), (1, 1, 1))
        assert f["grade"] is None and "not assessed" in f["breach_note"]


def test_rigid_round_trip():
    M = rigid(rotation_about((1, 2, 3), 7.0), (3, -4, 5), (10, 0, 0))
    p = np.array([[1.0, 2.0, 3.0], [10, 0, 0]])
    np.testing.assert_allclose(apply(np.linalg.inv(M), apply(M, p)), p, atol=1e-9)
    np.testing.assert_allclose(apply(M, p[1:]), [[13, -4, 5]], atol=1e-9)  # the centre only translates


def test_ncc_finds_a_cut_out_template():
    """The template cut from an image at (5, 7, 3) scores 1 there and less elsewhere; flat windows score 0."""
    from osteoplan.verification.register import _ncc_valid

    rng = np.random.default_rng(1)
    img = np.zeros((40, 40, 40))
    img[2:25, 2:25, 2:25] = rng.normal(size=(23, 23, 23))
    tpl = img[5:15, 7:17, 3:13].copy()
    ncc = _ncc_valid(img, tpl)
    assert ncc.shape == (31, 31, 31)
    assert np.unravel_index(np.argmax(ncc), ncc.shape) == (5, 7, 3)
    assert ncc[5, 7, 3] == pytest.approx(1.0, abs=1e-9)
    assert np.sort(ncc.ravel())[-2] < 0.5
    assert ncc[28, 28, 28] == 0.0  # window over the empty border: structureless, not a match


def test_line_clearances_crossing_is_its_own_status_with_a_headline_note():
    """A line whose instrument surface overlaps a structure is 'crosses' (never 'inside margin'); one passing
    1.5 mm from it with a 2 mm margin is 'inside_margin'; a displaceable structure's row says the distance is to
    its planning-CT position. Hand-computed geometry: a slab x in [10, 20] mm on a 0.5 mm grid."""
    from types import SimpleNamespace

    from osteoplan.verification.deviation import line_clearances
    from osteoplan.verification.pipeline import crossing_note

    sp = 0.5
    mask = np.zeros((80, 80, 80), bool)  # (k, j, i); LPS x = i * sp
    mask[:, :, int(10 / sp):int(20 / sp) + 1] = True
    aff = axis_aligned_affine((sp, sp, sp))
    checks = [SimpleNamespace(structure="pharynx", margin_mm=2.0, clearance_mm=3.0, category="displaceable",
                              segment="whole"),
              SimpleNamespace(structure="spinal_canal", margin_mm=2.0, clearance_mm=3.0, category="hard",
                              segment="whole")]
    radius = 0.5
    # crossing: a line along y at x = 15 mm (inside the slab)
    rows = line_clearances(checks, {"pharynx": mask, "spinal_canal": mask}, {}, aff, (sp, sp, sp),
                           (np.array([15.0, 5.0, 20.0]), np.array([15.0, 30.0, 20.0])), radius)
    assert [r["status"] for r in rows] == ["crosses", "crosses"]
    assert rows[0]["actual_clearance_mm"] < 0 and "before hydrodissection" in rows[0]["note"]
    note = crossing_note(rows[1])
    assert note.startswith("the instrument line crosses spinal canal by ") and "hydrodissection" not in note
    # 2.0 mm from the slab's face (x = 8 mm; the face voxel centre is at x = 10 mm): surface 1.5 mm away
    rows = line_clearances(checks[1:], {"spinal_canal": mask}, {}, aff, (sp, sp, sp),
                           (np.array([8.0, 5.0, 20.0]), np.array([8.0, 30.0, 20.0])), radius)
    assert rows[0]["status"] == "inside_margin" and abs(rows[0]["actual_clearance_mm"] - 1.5) < 0.3
    # 6 mm away: pass
    rows = line_clearances(checks[1:], {"spinal_canal": mask}, {}, aff, (sp, sp, sp),
                           (np.array([4.0, 5.0, 20.0]), np.array([4.0, 30.0, 20.0])), radius)
    assert rows[0]["status"] == "pass" and abs(rows[0]["actual_clearance_mm"] - 5.5) < 0.3


def test_crossing_note_is_translated_on_the_french_page():
    from osteoplan.views.verification import _note

    row = {"structure": "pharynx", "status": "crosses", "category": "displaceable", "actual_clearance_mm": -1.8}
    from osteoplan.verification.pipeline import crossing_note

    note = crossing_note(row)
    assert note == ("the instrument line crosses pharynx as segmented on the planning CT, before hydrodissection "
                    "by 1.8 mm: check on the control CT before going further")
    fr = _note(note, {"clearances": [row]}, "fr")
    assert fr.startswith("la ligne de l'instrument traverse") and "1.8 mm" in fr and "avant hydrodissection" in fr
