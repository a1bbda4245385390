"""A synthetic lumbar vertebra with known geometry (1 mm voxels, LPS, axis-aligned) for vertebroplasty tests.

Body: elliptic cylinder centred at (0, -12, z0), semi-axes 20 mm (x) and 16 mm (y), 26 mm high. Canal: circle of
radius 7 mm centred at (0, 14, z0) (from y = 7 to 21), the body's posterior wall at y = 4. Pedicles: cylinders of
radius 4 mm along axes converging 12 deg medially towards the front, through the isthmus (+-11.5, 14, z0), from
y = 2 to y = 28; lamina: a 5 mm thick arch behind the canal. Skin: an ellipse 110 x 90 mm around (0, 0); lungs:
air (-850 HU) where |x| >= 28 mm and |y| <= 25 mm. Levels stacked every 34 mm along z.
"""

from __future__ import annotations

import numpy as np

from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.imaging.volume import Volume, axis_aligned_affine

BODY_C = np.array([0.0, -12.0])
BODY_AX = (20.0, 16.0)
BODY_H = 26.0
CANAL_C = np.array([0.0, 14.0])
CANAL_R = 7.0
PED_R = 4.0
PED_X = 11.5
PED_DEG = 12.0
LEVEL_STEP = 34.0
LUNG_X = 28.0


def pedicle_axis(side: str) -> np.ndarray:
    """Unit vector of a pedicle from the arch towards the body (anterior, converging medially) (LPS)."""
    s = 1.0 if side == "left" else -1.0  # patient left = +x: the left pedicle converges towards -x
    a = np.radians(PED_DEG)
    return np.array([-s * np.sin(a), -np.cos(a), 0.0])


def _pedicle(X, Y, Z, side, z0):
    s = 1.0 if side == "left" else -1.0
    c = np.array([s * PED_X, CANAL_C[1], z0])
    ax = pedicle_axis(side)
    P = np.stack([X - c[0], Y - c[1], Z - c[2]], -1)
    t = P @ ax
    perp = np.linalg.norm(P - t[..., None] * ax, axis=-1)
    return (perp <= PED_R) & (Y >= 2.0) & (Y <= 28.0)


def make_lumbar(levels=("L1",), spacing_mm: float = 1.0):
    """(volume, labelmap, spine) with *levels* stacked cranial to caudal (first level at z = 0).

    The spine is a :class:`~osteoplan.anatomy.spine.SpineAnatomy` built from the known geometry (not found from the
    image), so the procedure is tested independently of the level finder.
    """
    from osteoplan.anatomy.spine import PedicleLandmarks, SpineAnatomy, VertebraLandmarks

    s = spacing_mm
    zs = [-LEVEL_STEP * i for i in range(len(levels))]
    x = np.arange(-60, 60 + 1e-9, s)
    y = np.arange(-50, 50 + 1e-9, s)
    z = np.arange(min(zs) - 25, 25 + 1e-9, s)
    Z, Y, X = np.meshgrid(z, y, x, indexing="ij")
    skin = ((X / 55.0) ** 2 + (Y / 45.0) ** 2) <= 1.0
    hu = np.where(skin, 40.0, -1000.0)
    canal_all = (X - CANAL_C[0]) ** 2 + (Y - CANAL_C[1]) ** 2 <= CANAL_R ** 2
    lung = (np.abs(X) >= LUNG_X) & (np.abs(Y) <= 25.0) & skin
    hu = np.where(lung, -850.0, hu)
    masks: dict[str, np.ndarray] = {"body": skin, "lung": lung}
    verts = {}
    for lv, z0 in zip(levels, zs):
        zin = np.abs(Z - z0) <= BODY_H / 2
        body = (((X - BODY_C[0]) / BODY_AX[0]) ** 2 + ((Y - BODY_C[1]) / BODY_AX[1]) ** 2 <= 1.0) & zin
        ped = {sd: _pedicle(X, Y, Z, sd, z0) & zin for sd in ("left", "right")}
        r = np.hypot(X - CANAL_C[0], Y - CANAL_C[1])
        lamina = (r > CANAL_R) & (r <= CANAL_R + 5.0) & (Y > CANAL_C[1]) & zin
        vert = (body | ped["left"] | ped["right"] | lamina) & ~canal_all
        masks[f"vertebrae_{lv}"] = vert
        hu = np.where(vert, 450.0, hu)
        pl = {}
        for sd in ("left", "right"):
            sg = 1.0 if sd == "left" else -1.0
            ax = pedicle_axis(sd)
            isth = np.array([sg * PED_X, CANAL_C[1], z0])
            entry = isth - ax * ((28.0 - CANAL_C[1]) / abs(ax[1]))  # where the axis leaves the bone at y = 28
            pl[sd] = PedicleLandmarks(side=sd, isthmus_lps_mm=isth, axis_unit=ax, width_mm=2 * PED_R,
                                      height_mm=BODY_H, entry_lps_mm=entry, source="synthetic")
        verts[lv] = VertebraLandmarks(
            level=lv, body_centre_lps_mm=np.array([BODY_C[0], BODY_C[1], z0]), superior_unit=np.array([0, 0, 1.0]),
            anterior_unit=np.array([0, -1.0, 0]), left_unit=np.array([1.0, 0, 0]), body_depth_mm=2 * BODY_AX[1],
            body_width_mm=2 * BODY_AX[0], body_height_mm=BODY_H,
            anterior_wall_lps_mm=np.array([0, BODY_C[1] - BODY_AX[1], z0]),
            posterior_wall_lps_mm=np.array([0, BODY_C[1] + BODY_AX[1], z0]), pedicles=pl, level_source="synthetic")
    masks["spinal_canal"] = canal_all & skin
    vol = Volume(hu.astype(np.float32), axis_aligned_affine((s, s, s), (x[0], y[0], z[0])))
    lm = LabelMap(vol, masks=masks, sources={n: "synthetic" for n in masks})
    spine = SpineAnatomy(vertebrae=verts, level_method="synthetic", level_confidence=1.0, needs_confirmation=False)
    return vol, lm, spine
