"""A small synthetic C2 (body, dens, pedicles; cortex + cancellous bone) with a lytic dens lesion of chosen size.

Geometry (LPS mm, axial grid, 0.5 mm voxels): body = elliptic cylinder, half-widths 9 mm (left-right)
and 8 mm (antero-posterior), z 0-15 mm; dens = cylinder of radius 5 mm, z 15-30 mm, capped by a
hemisphere (apex z = 35 mm); two pedicles posterior-lateral to the body. Cortex 1 mm at 1200 HU,
cancellous bone 250 HU, soft tissue 40 HU, lesion 30 HU.
"""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.anatomy.landmarks import DensLandmarks
from osteoplan.imaging import Volume, axis_aligned_affine

H = 0.5
CORTEX_HU, CANCELLOUS_HU, SOFT_HU, LESION_HU = 1200.0, 250.0, 40.0, 30.0


def make_c2(lesion_radius_mm: float = 0.0, lesion_centre=(0.0, 0.0, 21.0), lesion_hu: float = LESION_HU):
    from scipy.ndimage import distance_transform_edt

    x = np.arange(-16, 16 + 1e-9, H)
    y = np.arange(-14, 22 + 1e-9, H)
    z = np.arange(-4, 39 + 1e-9, H)
    Z, Y, X = np.meshgrid(z, y, x, indexing="ij")  # (k, j, i) = (S, P, L)
    body = ((X / 9.0) ** 2 + (Y / 8.0) ** 2 <= 1.0) & (Z >= 0) & (Z <= 15)
    dens = (np.hypot(X, Y) <= 5.0) & (Z > 15) & (Z <= 30)
    tip = (X ** 2 + Y ** 2 + (Z - 30) ** 2 <= 25.0) & (Z > 30)
    ped = (np.abs(X) >= 4) & (np.abs(X) <= 9) & (Y >= 6) & (Y <= 16) & (Z >= 3) & (Z <= 12)
    c2 = body | dens | tip | ped
    depth = distance_transform_edt(c2, sampling=(H, H, H))
    hu = np.full(c2.shape, SOFT_HU, np.float32)
    hu[c2] = CANCELLOUS_HU
    hu[c2 & (depth <= 1.0)] = CORTEX_HU
    cx, cy, cz = lesion_centre
    lesion = ((X - cx) ** 2 + (Y - cy) ** 2 + (Z - cz) ** 2 <= lesion_radius_mm ** 2) & c2 & (lesion_radius_mm > 0)
    hu[lesion] = lesion_hu
    aff = axis_aligned_affine((H, H, H), (x[0], y[0], z[0]))
    vol = Volume(hu, aff)
    lm = DensLandmarks(apex_lps_mm=(0, 0, 35), waist_lps_mm=(0, 0, 15), waist_diameter_mm=10.0,
                       axis_unit=(0, 0, 1), anteroinferior_body_lps_mm=(0, -8, 0),
                       body_centre_lps_mm=(0, 0, 7.5), confidence=1.0, method="synthetic")
    return vol, c2, lesion, lm


@pytest.fixture(scope="session")
def synthetic_c2():
    """Factory: ``synthetic_c2(lesion_radius_mm, centre=(x, y, z))`` -> (volume, c2_mask, lesion_mask, landmarks)."""
    cache: dict = {}

    def factory(radius: float = 0.0, centre=(0.0, 0.0, 21.0), lesion_hu: float = LESION_HU):
        key = (radius, tuple(centre), lesion_hu)
        if key not in cache:
            cache[key] = make_c2(radius, centre, lesion_hu)
        return cache[key]

    return factory
