"""A small synthetic neck with known geometry (LPS mm), for planner tests.

Grid: 1 mm isotropic, k -> +S, j -> +P, i -> +L; LPS (0, 0, 0) is the dens waist centre.
Dens: vertical cylinder x^2 + y^2 <= 6^2, z in [-2, 14] (apex (0, 0, 14)); C2 body: box
|x| <= 10, |y| <= 8, z in [-30, -2]; C3: same box, z in [-44, -34]; canal: cylinder centred
y = +20, radius 7; vertebral arteries: cylinders at x = +/-22, y = +6, radius 2.5; carotids:
cylinders at x = +/-(25 + shift), y = -18, radius 3.5; body: cylinder radius 55.
"""

from __future__ import annotations

import numpy as np

from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.anatomy.landmarks import DensLandmarks
from osteoplan.imaging.volume import Volume, axis_aligned_affine

Z0, Z1 = -100, 30
Y0, Y1 = -62, 62
X0, X1 = -62, 62


def grid(z0: int = Z0):
    z = np.arange(z0, Z1 + 1, dtype=float)
    y = np.arange(Y0, Y1 + 1, dtype=float)
    x = np.arange(X0, X1 + 1, dtype=float)
    return np.meshgrid(z, y, x, indexing="ij")


def make_neck(carotid_shift_mm: float = 0.0, carotid_x_mm: float | None = None, carotid_y_mm: float = -18.0,
              with_ijv: bool = False, canal_y_mm: float = 20.0, canal_radius_mm: float = 7.0,
              z0: int = Z0, neck_radius_mm: float = 55.0, c3_front_y_mm: float = -8.0,
              extra: dict | None = None):
    """The synthetic neck (module docstring). ``z0``: lowest slice (LPS z, mm); ``neck_radius_mm``: body radius
    below z = -40 (55 above); ``c3_front_y_mm``: the anterior surface of C3 (-8 = flush with C2, larger = set back,
    as the anterior lip of C2 overhangs C3 in patients); ``extra``: more masks, name -> function of (Z, Y, X)."""
    Z, Y, X = grid(z0)
    vol_aff = axis_aligned_affine((1.0, 1.0, 1.0), (X0, Y0, z0))
    body = X ** 2 + Y ** 2 <= np.where(Z < -40, neck_radius_mm, 55.0) ** 2
    dens = (X ** 2 + Y ** 2 <= 36) & (Z >= -2) & (Z <= 14)
    c2body = (np.abs(X) <= 10) & (np.abs(Y) <= 8) & (Z >= -30) & (Z <= -2)
    c2 = dens | c2body
    c3 = (np.abs(X) <= 10) & (Y >= c3_front_y_mm) & (Y <= 8) & (Z >= -44) & (Z <= -34)
    canal = X ** 2 + (Y - canal_y_mm) ** 2 <= canal_radius_mm ** 2
    va_l = (X - 22) ** 2 + (Y - 6) ** 2 <= 2.5 ** 2
    va_r = (X + 22) ** 2 + (Y - 6) ** 2 <= 2.5 ** 2
    cx = 25 + carotid_shift_mm if carotid_x_mm is None else carotid_x_mm
    car_l = (X - cx) ** 2 + (Y - carotid_y_mm) ** 2 <= 3.5 ** 2
    car_r = (X + cx) ** 2 + (Y - carotid_y_mm) ** 2 <= 3.5 ** 2
    hu = np.where(body, 40.0, -1000.0)
    hu[c2 | c3] = 400.0
    vol = Volume(hu.astype(np.float32), vol_aff)
    masks = {"body": body, "bone": c2 | c3, "vertebrae_C2": c2, "vertebrae_C3": c3, "spinal_canal": canal,
             "vertebral_artery_left": va_l, "vertebral_artery_right": va_r,
             "common_carotid_artery_left": car_l, "common_carotid_artery_right": car_r}
    if with_ijv:
        masks["internal_jugular_vein_left"] = (X - 32) ** 2 + (Y + 8) ** 2 <= 16
        masks["internal_jugular_vein_right"] = (X + 32) ** 2 + (Y + 8) ** 2 <= 16
    for name, fn in (extra or {}).items():
        masks[name] = fn(Z, Y, X) & body
    lm = LabelMap(vol, masks=masks, sources={k: "synthetic" for k in masks})
    dl = DensLandmarks(apex_lps_mm=(0, 0, 14), waist_lps_mm=(0, 0, -2), waist_diameter_mm=12.0,
                       axis_unit=(0, 0, 1), anteroinferior_body_lps_mm=(0, -8, -30),
                       body_centre_lps_mm=(0, 0, -16), confidence=1.0, method="synthetic")
    return vol, lm, dl
