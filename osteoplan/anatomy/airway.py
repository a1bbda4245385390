"""The airway from CT: connected internal air near the midline (no trained weights).

Split out of :mod:`osteoplan.anatomy.segment`, which re-exports :func:`segment_airway`.
Internal orientation: the canonical view of :class:`~osteoplan.anatomy.segment.Canon`.
Engineering defaults unless a source is given.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from osteoplan.anatomy.segment import AIR_THRESHOLD_HU, Canon, _smooth, segment_body
from osteoplan.imaging.volume import Volume

def segment_airway(volume: Volume, body: np.ndarray | None = None,
                   threshold_hu: float = AIR_THRESHOLD_HU, midline_mm: float = 30.0) -> np.ndarray:
    """Airway (nasopharynx to trachea) as one mask: connected air inside the body near the midline.

    Air (smoothed HU < ``threshold_hu``) inside the filled body outline; per axial slice only air
    regions whose centre lies within ``midline_mm`` of the body's midline and whose area is under
    1500 mm^2 are kept (this drops lungs, mastoid cells and lateral sinuses); the largest 3D
    component and any other component of at least 1 mL within the midline band are kept. The
    airway is not split into pharynx / larynx / trachea (no reliable classical landmark for the
    split); callers report it as ``airway``. Engineering defaults.

    Returns
    -------
    bool array (K, J, I); empty when the CT has no internal air.
    """
    cn = Canon.of(volume)
    if body is None:
        body = segment_body(volume)
    a = cn.to_canon(volume.array)
    b = cn.to_canon(body)
    sp = cn.spacing_mm
    sm = _smooth(a, sp, 0.5)
    # exclude air open to the outside: erode the body by 1 voxel in-plane so a thin lip does not count
    air = (sm < threshold_hu) & b
    if not air.any():
        return np.zeros(volume.shape, bool)
    px_area = float(sp[1] * sp[2])
    keep = np.zeros_like(air)
    for k in range(air.shape[0]):
        if not air[k].any():
            continue
        bi = np.nonzero(b[k].any(axis=0))[0]
        mid = (bi[0] + bi[-1]) / 2.0
        lab, n = ndi.label(air[k])
        idx = np.arange(1, n + 1)
        areas = ndi.sum_labels(air[k], lab, idx) * px_area
        cms = ndi.center_of_mass(air[k], lab, idx)
        ok = np.zeros(n + 1, bool)
        for t, (ar, cm) in enumerate(zip(areas, cms), start=1):
            ok[t] = ar <= 1500.0 and abs(cm[1] - mid) * sp[2] <= midline_mm
        keep[k] = ok[lab]
    lab, n = ndi.label(keep)
    if n == 0:
        return np.zeros(volume.shape, bool)
    vox_ml = float(np.prod(sp)) / 1000.0
    sizes = np.bincount(lab.ravel()) * vox_ml
    sizes[0] = 0
    big = int(np.argmax(sizes))
    sel = sizes >= 1.0
    sel[big] = True
    sel[0] = False
    return cn.from_canon(sel[lab])
