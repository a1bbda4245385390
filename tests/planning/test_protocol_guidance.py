"""Protocol validation and guidance numbers (C-arm, gantry) on closed-form cases."""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.errors import ProtocolError
from osteoplan.planning.guidance import carm_angles, detector_direction, gantry_tilt_deg, guidance_for
from osteoplan.planning.protocol import PROTOCOL_DIR, available_protocols, load_protocol


def test_shipped_protocol_loads_and_documents_sources():
    assert "c2-dens-lateral" in available_protocols()
    p = load_protocol("c2-dens-lateral")
    assert p.screw.diameters_mm == [3.5, 4.0, 4.5]
    assert p.screw.lengths()[0] == p.screw.length_min_mm and p.screw.lengths()[-1] <= p.screw.length_max_mm
    assert p.structures["spinal_cord"].category == "hard"
    assert p.structures["common_carotid_artery_left"].category == "displaceable"
    text = (PROTOCOL_DIR / "c2-dens-lateral.toml").read_text()
    # every default is sourced or declared unsourced
    assert text.count("configurable default") >= 10
    for src in ("PMID 33388865", "JKNS 2018", "Mont'Alverne", "Eur Spine J 2009"):
        assert src in text


@pytest.mark.parametrize("edit, field", [
    ("margin_mm = 2.0 }", "structures.spinal_canal.margin_mm"),
    ("diameters_mm = [3.5, 4.0, 4.5]", "screw.diameters_mm"),
    ("below_apex_max_mm = 10.0", "target"),
    ("n_plans = 3", "output.n_plans"),
])
def test_bad_protocol_names_the_field(tmp_path, edit, field):
    text = (PROTOCOL_DIR / "c2-dens-lateral.toml").read_text()
    bad = {
        "margin_mm = 2.0 }": "margin_mm = -2.0 }",
        "diameters_mm = [3.5, 4.0, 4.5]": "diameters_mm = [3.5, -4.0]",
        "below_apex_max_mm = 10.0": "below_apex_max_mm = 1.0",
        "n_plans = 3": "n_plans = \"three\"",
    }[edit]
    assert edit in text
    f = tmp_path / "bad.toml"
    f.write_text(text.replace(edit, bad, 1))
    with pytest.raises(ProtocolError) as ei:
        load_protocol(f)
    assert field in str(ei.value)


def test_protocol_errors_unknown_and_syntax(tmp_path):
    with pytest.raises(ProtocolError, match="Unknown protocol"):
        load_protocol("no-such-protocol")
    f = tmp_path / "x.toml"
    f.write_text("name = [unclosed")
    with pytest.raises(ProtocolError, match="not valid TOML"):
        load_protocol(f)
    f.write_text((PROTOCOL_DIR / "c2-dens-lateral.toml").read_text() + "\nsurprise = 1\n")
    with pytest.raises(ProtocolError, match="surprise"):
        load_protocol(f)


def test_carm_angles_closed_form():
    # AP: detector anterior (-y)
    assert carm_angles([0, -1, 0]) == pytest.approx((0.0, 0.0))
    # detector on the patient's left = LAO 90
    assert carm_angles([1, 0, 0]) == pytest.approx((90.0, 0.0))
    assert carm_angles([-1, 0, 0]) == pytest.approx((-90.0, 0.0))
    # 30 deg cranial from AP
    a, b = carm_angles([0, -np.cos(np.radians(30)), np.sin(np.radians(30))])
    assert (a, b) == pytest.approx((0.0, 30.0))
    for pa, sa in ((35.0, -20.0), (-70.0, 45.0)):
        assert carm_angles(detector_direction(pa, sa)) == pytest.approx((pa, sa))


def test_guidance_for_lateral_ascending_path():
    # right-sided entry, pure lateral in the axial projection, ascending 30 deg: d = (cos30, 0, sin30)
    d = np.array([np.cos(np.radians(30)), 0.0, 0.5])
    g = guidance_for(d, gantry_limit_deg=30.0)
    # bull's-eye: detector on the entry side: u = -d = (-cos30, 0, -0.5) -> RAO 90, CAUD 30
    assert g.bullseye.primary_deg == pytest.approx(-90.0) and g.bullseye.secondary_deg == pytest.approx(-30.0)
    assert g.bullseye.label == "RAO 90° / CAUD 30°"
    # progression view: perpendicular to d and as close to AP as possible -> AP itself (d has no y part)
    assert g.progression.primary_deg == pytest.approx(0.0) and g.progression.secondary_deg == pytest.approx(0.0)
    assert np.dot(g.progression.detector_direction_lps, d) == pytest.approx(0.0, abs=1e-4)
    # a path with no A-P component cannot be put in a tilted axial slice
    assert g.gantry_tilt_deg is None and not g.gantry_within_limit
    # anterolateral 45 deg ascending 20 deg: tilt = atan(dz / dy)
    d2 = np.array([np.sin(np.radians(45)) * np.cos(np.radians(20)), np.cos(np.radians(45)) * np.cos(np.radians(20)),
                   np.sin(np.radians(20))])
    t = np.degrees(np.arctan(np.tan(np.radians(20)) / np.cos(np.radians(45))))
    assert gantry_tilt_deg(d2) == pytest.approx(t)
    g2 = guidance_for(d2, gantry_limit_deg=30.0)
    assert g2.gantry_within_limit == (abs(t) <= 30.0)
    assert gantry_tilt_deg([1.0, 0.0, 0.0]) == 0.0


def test_too_fine_search_grid_is_refused_before_allocation():
    from osteoplan.planning.search import MAX_CANDIDATES, check_grid_size, directions

    p = load_protocol("c2-dens-lateral")
    fine = p.model_copy(update={"angles": p.angles.model_copy(update={"grid_step_deg": 0.15})})
    d, _ = directions(fine, ["left", "right"])
    # 0.15 deg over 0-80 x 25-90 deg on both sides: 534 x 434 x 2 directions; x 80 targets > limit
    assert len(d) == 534 * 434 * 2
    with pytest.raises(ProtocolError, match="grid_step_deg"):
        check_grid_size(80, len(d), fine)
    check_grid_size(80, len(directions(p, ["left", "right"])[0]), p)   # the shipped grid passes
    assert 80 * len(d) > MAX_CANDIDATES
