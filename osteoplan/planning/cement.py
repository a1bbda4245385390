"""Cementoplasty suggestion: lesion volume, PMMA range, breached walls next to dangerous neighbours.

Reference: Mont'Alverne et al., AJNR 2005;26:1641 -- C2 PMMA volume 2.9 +/- 0.7 mL (range 2-4 mL),
filling 61 +/- 15 % of the vertebra; leaks in 58 % of vertebrae, the dangerous ones towards the
canal, the foramina and the vertebral artery.

Rule used (no validated formula exists; configurable in the protocol ``[cement]``):
suggested PMMA = lesion volume x (filling_fraction_low .. filling_fraction_high), the upper bound
capped at the largest published C2 volume (reference_max_ml). Without a segmented lesion the
published C2 range is returned and the lesion is "not assessed".
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.planning.model import Cement, WallCheck
from osteoplan.planning.protocol import Protocol

#: Neighbours whose proximity to a breached lesion wall means leak risk. Transverse foramina are
#: represented by the vertebral arteries they carry (no separate foramen mask exists).
NEIGHBOURS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("canal", ("spinal_canal", "spinal_cord")),
    ("vertebral_artery_left (transverse foramen)", ("vertebral_artery_left",)),
    ("vertebral_artery_right (transverse foramen)", ("vertebral_artery_right",)),
)


def plan_cement(labelmap: LabelMap, c2_mask: np.ndarray | None, protocol: Protocol,
                lesion_mask: np.ndarray | None = None) -> Cement:
    """Cement suggestion for the lesion (mask on the CT grid, or ``labelmap['lesion']``).

    A lesion wall is *breached* where lesion voxels touch voxels that are neither C2 nor lesion
    (the cortex is gone there). For each neighbour the distance (mm, voxel centres) from the breached
    voxels to the neighbour is measured; leak risk when it is <= ``cement.leak_distance_mm``.
    """
    c = protocol.cement
    ref = f"C2 reference {c.reference_mean_ml} +/- {c.reference_sd_ml} mL (range {c.reference_min_ml}-{c.reference_max_ml} mL), Mont'Alverne AJNR 2005;26:1641"
    les = lesion_mask if lesion_mask is not None else (labelmap.get("lesion") if labelmap.has("lesion") else None)
    if les is None:
        return Cement(lesion_assessed=False, lesion_volume_ml=None,
                      suggested_pmma_ml=(c.reference_min_ml, c.reference_max_ml),
                      basis=f"Lesion not segmented (not assessed): published range returned. {ref}.",
                      walls=tuple(WallCheck(neighbour=n, segmented=any(labelmap.has(x) for x in names),
                                            breached=None, distance_mm=None, leak_risk=None,
                                            note="lesion not segmented") for n, names in NEIGHBOURS),
                      leak_risk=None, notes=("Lesion not segmented: cement volume not tailored.",))
    vol_ml = float(les.sum()) * labelmap.volume.voxel_volume_ml
    if vol_ml <= 0:
        return Cement(lesion_assessed=True, lesion_volume_ml=0.0, suggested_pmma_ml=(0.0, 0.0),
                      basis=f"No lesion found by segmentation. {ref}.", walls=(), leak_risk=False,
                      notes=("No lytic lesion found: cementoplasty not indicated by the images.",))
    lo = vol_ml * c.filling_fraction_low
    hi = min(vol_ml * c.filling_fraction_high, c.reference_max_ml)
    lo = min(lo, hi)
    sp = labelmap.volume.spacing_mm
    breach = np.zeros_like(les)
    if c2_mask is not None:
        # lesion voxels with a 6-neighbour that is neither C2 nor lesion (beyond the array: not counted, as
        # binary_dilation's border_value=0): only the lesion's bounding box grown by one voxel is read
        box = _grown_box(les, 1)
        if box is not None:
            breach[box] = les[box] & ndi.binary_dilation(~(les[box] | c2_mask[box]), iterations=1)
    walls = []
    any_risk: bool | None = False
    for label, names in NEIGHBOURS:
        present = [n for n in names if labelmap.has(n)]
        if not present:
            walls.append(WallCheck(neighbour=label, segmented=False, breached=bool(breach.any()) if c2_mask is not None else None,
                                   distance_mm=None, leak_risk=None, note="neighbour not segmented: not assessed"))
            any_risk = None if any_risk is False else any_risk
            continue
        nb = labelmap.union(present)
        if not nb.any():
            walls.append(WallCheck(neighbour=label, segmented=True, breached=bool(breach.any()), distance_mm=None,
                                   leak_risk=False, note="neighbour segmented but empty"))
            continue
        src = breach if breach.any() else les
        from scipy.spatial import cKDTree

        nbox = _grown_box(nb, 1)  # the neighbour's surface voxels (eroded away), on its bounding box grown by one
        surf = np.argwhere(nb[nbox] & ~ndi.binary_erosion(nb[nbox])) + np.array([s_.start for s_ in nbox])
        w_nb = labelmap.volume.index_to_world(surf)
        w_src = labelmap.volume.index_to_world(np.argwhere(src))
        d = float(cKDTree(w_nb).query(w_src, k=1)[0].min())
        risk = bool(breach.any()) and d <= c.leak_distance_mm
        walls.append(WallCheck(neighbour=label, segmented=True, breached=bool(breach.any()),
                               distance_mm=round(float(d), 2), leak_risk=risk,
                               note=None if breach.any() else "no breach; distance from the lesion"))
        if risk:
            any_risk = True
    if c2_mask is None:
        notes = ("C2 not segmented: breached walls not assessed.",)
    else:
        notes = ()
    return Cement(lesion_assessed=True, lesion_volume_ml=round(vol_ml, 3),
                  suggested_pmma_ml=(round(lo, 2), round(hi, 2)),
                  basis=(f"lesion volume x {c.filling_fraction_low:.2f}-{c.filling_fraction_high:.2f} (filling 61 +/- 15 %), "
                         f"upper bound capped at {c.reference_max_ml} mL; {ref}. Heuristic, no validated formula."),
                  walls=tuple(walls), leak_risk=any_risk, notes=notes)


def _grown_box(mask: np.ndarray, grow: int) -> tuple[slice, ...] | None:
    """The bounding box of *mask* grown by *grow* voxels (clipped to the array), None when *mask* is empty.

    A one-voxel binary dilation or erosion (6-neighbourhood, beyond the array False: scipy's ``border_value=0``) at the
    voxels of the bounding box reads nothing beyond it grown by one voxel: there it equals the whole-array operation.
    """
    from osteoplan.planning.fields import nonzero_box

    box = nonzero_box(mask)
    if box is None:
        return None
    return tuple(slice(max(0, a - grow), min(n, b + grow + 1)) for (a, b), n in zip(box, mask.shape))
