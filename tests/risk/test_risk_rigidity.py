"""CT structural rigidity: closed-form sections, relation values, growing lesions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from osteoplan.errors import InputError, MaskError
from osteoplan.imaging import Volume, axis_aligned_affine
from osteoplan.risk.rigidity import (
    DRAGOMIR_DAESCU_2011, LOSS_THRESHOLD, dens_rigidity, rigidity_profile, section_basis, section_rigidity,
)

E_MPA = 10000.0
NU = 0.3
G_MPA = E_MPA / (2 * (1 + NU))


def _disk_fraction(grid: np.ndarray, h: float, radius: float, ss: int = 8) -> np.ndarray:
    """Partial-volume fraction of a disk of `radius` centred at 0 in each pixel (ss x ss supersampling)."""
    off = (np.arange(ss) + 0.5) / ss - 0.5
    f = np.zeros((grid.size, grid.size))
    for a in off:
        for b in off:
            v, u = np.meshgrid(grid + b * h, grid + a * h, indexing="ij")
            f += u ** 2 + v ** 2 <= radius ** 2
    return f / ss ** 2


@pytest.mark.parametrize("R, r", [(5.0, 0.0), (5.0, 3.0), (4.0, 3.5)])
def test_circular_sections_closed_form(R, r):
    h = 0.1
    n = int(np.ceil((R + 0.5) / h))
    grid = h * np.arange(-n, n + 1)
    frac = _disk_fraction(grid, h, R) - (_disk_fraction(grid, h, r) if r > 0 else 0.0)
    sec = section_rigidity(E_MPA * frac, h, NU, (grid[0], grid[0]))
    area = np.pi * (R ** 2 - r ** 2)
    i = np.pi * (R ** 4 - r ** 4) / 4.0
    j = np.pi * (R ** 4 - r ** 4) / 2.0
    assert sec.ea_n == pytest.approx(E_MPA * area, rel=0.01)
    assert sec.ei_min_nmm2 == pytest.approx(E_MPA * i, rel=0.01)
    assert sec.ei_max_nmm2 == pytest.approx(E_MPA * i, rel=0.01)
    assert sec.gj_nmm2 == pytest.approx(G_MPA * j, rel=0.01)
    assert abs(sec.centroid_uv_mm[0]) < 1e-9 and abs(sec.centroid_uv_mm[1]) < 1e-9


def test_rotated_rectangle_principal_axes_and_offset_centroid():
    # 8 x 3 mm rectangle, long side at +30 deg from u, centred at (u, v) = (2, -1)
    h = 0.05
    grid = h * np.arange(-140, 141)
    v, u = np.meshgrid(grid, grid, indexing="ij")
    th = np.radians(30.0)
    du, dv = u - 2.0, v + 1.0
    a = du * np.cos(th) + dv * np.sin(th)
    b = -du * np.sin(th) + dv * np.cos(th)
    rect = (np.abs(a) <= 4.0) & (np.abs(b) <= 1.5)
    sec = section_rigidity(E_MPA * rect, h, NU, (grid[0], grid[0]))
    assert sec.ei_max_nmm2 == pytest.approx(E_MPA * 3 * 8 ** 3 / 12, rel=0.01)
    assert sec.ei_min_nmm2 == pytest.approx(E_MPA * 8 * 3 ** 3 / 12, rel=0.01)
    # EI_max is bending about the axis perpendicular to the long side: 30 - 90 = -60 deg
    assert sec.principal_angle_deg == pytest.approx(-60.0, abs=0.5)
    assert sec.centroid_uv_mm == pytest.approx((2.0, -1.0), abs=0.01)


def test_section_rigidity_rejects_bad_input():
    with pytest.raises(InputError):
        section_rigidity(np.ones(5), 0.1)
    with pytest.raises(InputError):
        section_rigidity(-np.ones((3, 3)), 0.1)
    with pytest.raises(InputError):
        section_rigidity(np.ones((3, 3)), 0.0)
    empty = section_rigidity(np.zeros((4, 4)), 0.1)
    assert empty.ea_n == 0.0 and empty.gj_nmm2 == 0.0


def test_density_modulus_relation_values():
    rel = DRAGOMIR_DAESCU_2011
    # 1000 HU: rho = -0.009 + 0.7 = 0.691 g/cm3; E = 14664 * 0.691^1.49
    assert rel.ash_density(np.array(1000.0)) == pytest.approx(0.691)
    assert rel.modulus_mpa(np.array(1000.0)) == pytest.approx(14664 * 0.691 ** 1.49)
    assert rel.modulus_mpa(np.array(0.0)) == 0.0  # rho <= 0 -> no stiffness
    assert rel.modulus_mpa(np.array(12.0)) == 0.0


def test_hollow_cylinder_volume_end_to_end():
    """A CT of a hollow cylinder (1000 HU, R = 5, r = 3 mm) on 0.1 mm voxels, through HU -> E and Volume.sample."""
    h, R, r = 0.1, 5.0, 3.0
    n = int(R / h) + 4
    g = h * np.arange(-n, n + 1)
    v, u = np.meshgrid(g, g, indexing="ij")
    rr = np.hypot(u, v)
    ring = (rr <= R) & (rr >= r)
    K = 7
    arr = np.repeat(np.where(ring, 1000.0, -1000.0)[None], K, 0).astype(np.float32)
    vol = Volume(arr, axis_aligned_affine((h, h, h), (-n * h, -n * h, 0.0)))
    mask = np.repeat(ring[None], K, 0)
    prof = rigidity_profile(vol, mask, np.array([0.0, 0.0, 3 * h]), np.array([0.0, 0.0, 1.0]), (0.0, 0.0),
                            None, pixel_mm=h)
    e = float(DRAGOMIR_DAESCU_2011.modulus_mpa(np.array(1000.0)))
    sec = prof.sections[0].actual
    assert sec.ea_n == pytest.approx(e * np.pi * (R ** 2 - r ** 2), rel=0.01)
    assert sec.ei_min_nmm2 == pytest.approx(e * np.pi * (R ** 4 - r ** 4) / 4, rel=0.01)
    assert sec.gj_nmm2 == pytest.approx(e / (2 * 1.3) * np.pi * (R ** 4 - r ** 4) / 2, rel=0.01)
    assert prof.lesion_status == "not assessed" and prof.max_loss == 0.0
    assert any("calibration phantom" in a for a in prof.assumptions)


def test_section_basis_is_orthonormal_and_anatomical():
    u, v, a = section_basis(np.array([0.0, 0.0, 2.0]))
    assert np.allclose(u, [1, 0, 0]) and np.allclose(v, [0, 1, 0]) and np.allclose(a, [0, 0, 1])
    u, v, a = section_basis(np.array([0.1, -0.4, 0.9]))
    m = np.stack([u, v, a])
    assert np.allclose(m @ m.T, np.eye(3))
    with pytest.raises(InputError):
        section_basis(np.array([1.0, 0.0, 0.0]))


def test_growing_lesion_loss_rises_monotonically(synthetic_c2):
    losses = []
    for radius in (0.0, 2.0, 3.0, 4.0, 5.0):
        vol, c2, lesion, lm = synthetic_c2(radius)
        prof = dens_rigidity(vol, c2, lm, lesion)
        losses.append(prof.max_loss)
        assert prof.lesion_status == ("none" if radius == 0 else "present")
        json.dumps(prof.to_dict(), allow_nan=False)
    assert losses[0] == 0.0
    assert all(b > a for a, b in zip(losses, losses[1:])), losses
    # radius 5 mm at the dens centre (dens radius 5 mm) takes the whole section, cortex included
    assert losses[-1] > 0.9 and losses[-2] < LOSS_THRESHOLD
    vol, c2, lesion, lm = synthetic_c2(4.0)
    prof = dens_rigidity(vol, c2, lm, lesion)
    assert prof.weakest.region == "dens" and prof.weakest.s_mm == pytest.approx(6.0)  # lesion centre z = 21
    # reference fill uses the vertebra's own normal bone
    assert prof.normal_cancellous_hu == pytest.approx(250.0) and prof.normal_cortical_hu == pytest.approx(1200.0)


def test_uniform_section_loss_matches_hand_calculation(synthetic_c2):
    """Lesion replacing a centred disk of cancellous bone (no cortex touched): EA loss = E_c*A_l / EA_ref."""
    vol, c2, lesion, lm = synthetic_c2(3.0)
    prof = dens_rigidity(vol, c2, lm, lesion, pixel_mm=0.25)
    sec = min(prof.sections, key=lambda s: abs(s.s_mm - 6.0))  # through the lesion centre
    ec = float(DRAGOMIR_DAESCU_2011.modulus_mpa(np.array(250.0)))
    el = float(DRAGOMIR_DAESCU_2011.modulus_mpa(np.array(30.0)))
    expected = (ec - el) * sec.lesion_area_mm2
    assert sec.reference.ea_n - sec.actual.ea_n == pytest.approx(expected, rel=0.05)


def test_rigidity_errors():
    vol = Volume(np.zeros((4, 4, 4), np.float32), np.eye(4))
    with pytest.raises(MaskError):
        rigidity_profile(vol, np.zeros((4, 4, 4), bool), np.zeros(3), np.array([0, 0, 1.0]), (0, 1))
    with pytest.raises(MaskError):
        rigidity_profile(vol, np.ones((3, 3, 3), bool), np.zeros(3), np.array([0, 0, 1.0]), (0, 1))


def test_section_without_stiff_bone_serialises_as_strict_json():
    sec = section_rigidity(np.zeros((3, 3)), 0.5)
    d = sec.to_dict()
    assert d["centroid_uv_mm"] is None
    json.dumps(d, allow_nan=False)
