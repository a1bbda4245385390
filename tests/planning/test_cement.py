"""Cement suggestion: lesion volume, PMMA range (Mont'Alverne AJNR 2005 heuristic) and breached walls."""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.planning.cement import plan_cement
from osteoplan.planning.protocol import load_protocol

from .synthetic import grid, make_neck


def test_contained_lesion_volume_and_range():
    vol, lm, dl = make_neck()
    Z, Y, X = grid()
    les = (X ** 2 + Y ** 2 + (Z + 15) ** 2 <= 4 ** 2)  # sphere r 4 mm inside the C2 body box
    n = int(les.sum())
    lm.add("lesion", les, "test")
    p = load_protocol()
    c = plan_cement(lm, lm.get("vertebrae_C2"), p)
    vol_ml = n * 1e-3  # 1 mm^3 voxels
    assert c.lesion_assessed and c.lesion_volume_ml == pytest.approx(vol_ml, abs=1e-3)
    assert c.suggested_pmma_ml == pytest.approx((round(vol_ml * 0.46, 2), round(vol_ml * 0.76, 2)))
    walls = {w.neighbour.split()[0]: w for w in c.walls}
    assert walls["canal"].breached is False and walls["canal"].leak_risk is False
    # nearest canal voxel centre (0, 13, -15) to the nearest lesion voxel (0, 4, -15): 9 mm
    assert walls["canal"].distance_mm == pytest.approx(9.0)
    assert c.leak_risk is False


def test_breach_next_to_canal_is_leak_risk():
    vol, lm, dl = make_neck()
    Z, Y, X = grid()
    # lesion eroding the posterior cortex of the C2 body (y up to 8) and reaching beyond it (y = 9..11)
    les = (X ** 2 + (Y - 7) ** 2 + (Z + 15) ** 2 <= 4 ** 2)
    c2 = lm.get("vertebrae_C2") & ~les
    lm2 = LabelMap(vol, masks={**lm.masks, "vertebrae_C2": c2, "lesion": les}, sources=dict(lm.sources))
    c = plan_cement(lm2, c2, load_protocol())
    walls = {w.neighbour.split()[0]: w for w in c.walls}
    assert walls["canal"].breached is True
    # most posterior lesion voxel y = 11, canal front voxel y = 13: 2 mm <= 3 mm leak distance
    assert walls["canal"].distance_mm == pytest.approx(2.0)
    assert walls["canal"].leak_risk is True and c.leak_risk is True
    assert walls["vertebral_artery_left"].leak_risk is False


def test_no_lesion_segmented_is_not_assessed():
    vol, lm, dl = make_neck()
    c = plan_cement(lm, lm.get("vertebrae_C2"), load_protocol())
    assert not c.lesion_assessed and c.lesion_volume_ml is None
    assert c.suggested_pmma_ml == (2.0, 4.0)  # published C2 range (Mont'Alverne 2005)
    assert all(w.leak_risk is None for w in c.walls)
    empty = LabelMap(vol, masks={**lm.masks, "lesion": np.zeros(vol.shape, bool)}, sources=dict(lm.sources))
    c2 = plan_cement(empty, lm.get("vertebrae_C2"), load_protocol())
    assert c2.lesion_assessed and c2.lesion_volume_ml == 0.0 and c2.suggested_pmma_ml == (0.0, 0.0)


def test_walls_equal_the_whole_array_computation_at_the_array_border():
    """Lesion, C2 and canal cut by the top face of the grid: breach and lesion-to-canal distance equal a
    straightforward whole-array computation (dilation / erosion of the whole arrays, every pair of voxels)."""
    from scipy import ndimage as ndi

    vol, lm, dl = make_neck()
    Z, Y, X = grid()
    c2 = (np.abs(X) <= 6) & (np.abs(Y) <= 6) & (Z >= 24)
    les = (X ** 2 + Y ** 2 + (Z - 30) ** 2 <= 4 ** 2) | ((np.abs(X) <= 1) & (Y >= 5) & (Y <= 7) & (Z >= 26))
    canal = X ** 2 + (Y - 10) ** 2 <= 2 ** 2
    lm2 = LabelMap(vol, masks={**lm.masks, "vertebrae_C2": c2 & ~les, "lesion": les, "spinal_canal": canal,
                               "spinal_cord": np.zeros(vol.shape, bool)}, sources=dict(lm.sources))
    c = plan_cement(lm2, c2 & ~les, load_protocol())
    breach = les & ndi.binary_dilation(~(les | (c2 & ~les)), iterations=1)
    surf = canal & ~ndi.binary_erosion(canal)
    a = vol.index_to_world(np.argwhere(breach))
    b = vol.index_to_world(np.argwhere(surf))
    want = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).min()
    walls = {w.neighbour.split()[0]: w for w in c.walls}
    assert breach.any() and walls["canal"].breached is True
    assert walls["canal"].distance_mm == pytest.approx(round(float(want), 2))
    # by hand: the breached lesion voxel (0, 7, z) (C2 ends at y = 6, y = 8 is neither) and the canal's front voxel
    # (0, 8, z) are 1 mm apart
    assert walls["canal"].distance_mm == pytest.approx(1.0)
