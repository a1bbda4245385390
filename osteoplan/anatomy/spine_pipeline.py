"""Anatomy for a thoracolumbar procedure (vertebroplasty): provided masks + body + lungs + the spine's levels,
bodies, walls and pedicles (:func:`osteoplan.anatomy.spine.find_spine`).

:func:`build_spine_anatomy` returns the same :class:`~osteoplan.anatomy.pipeline.Anatomy` the C2 pipeline returns,
with ``spine`` set and ``landmarks`` None; every structure records its source and the messages say what was not
segmented.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.anatomy.pipeline import Anatomy
from osteoplan.errors import AnatomyError
from osteoplan.imaging.volume import Volume
from osteoplan.anatomy import _local

#: Structures a thoracolumbar plan checks; those missing at the end are reported as NOT segmented.
SPINE_STRUCTURES = ("spinal_canal", "spinal_cord", "aorta", "inferior_vena_cava", "esophagus", "lung",
                    "segmental_artery")

#: Air inside the body below this is lung (HU) -- configurable default (aerated lung is about -850 HU; -400 keeps
#: partial volume at its edge out), no published source.
LUNG_HU = -400.0
#: An air component inside the body is a lung when larger than this (mL): the trachea and the bowel gas of one
#: slab are smaller -- configurable default, no published source.
LUNG_MIN_ML = 150.0


def segment_lungs(volume: Volume, body: np.ndarray) -> np.ndarray:
    """Both lungs (bool (K, J, I)): air (< :data:`LUNG_HU`) inside the body, 3D components larger than
    :data:`LUNG_MIN_ML`, holes (vessels) filled slice by slice.

    Raises
    ------
    AnatomyError
        No such component (no lung in the field of view).
    """
    air = (volume.array < LUNG_HU) & ndi.binary_erosion(body, iterations=2)
    lab, n = _local.cc_label(air)
    if n == 0:
        raise AnatomyError("no lung in the field of view")
    vox_ml = float(np.prod(volume.spacing_mm)) / 1000.0
    sizes = ndi.sum_labels(np.ones_like(lab, dtype=np.int32), lab, index=np.arange(1, n + 1)) * vox_ml
    keep = np.nonzero(sizes >= LUNG_MIN_ML)[0] + 1
    if len(keep) == 0:
        raise AnatomyError("no lung in the field of view")
    lungs = np.isin(lab, keep)
    zaxis = int(np.argmax(np.abs(volume.affine[2, :3])))
    out = np.zeros_like(lungs)
    for k in range(lungs.shape[zaxis]):
        sl = [slice(None)] * 3
        sl[zaxis] = k
        out[tuple(sl)] = _local.fill_holes(lungs[tuple(sl)])
    return out


def build_spine_anatomy(volume: Volume, masks: Any = None, levels: Iterable[str] | None = None,
                        level_point: tuple[str, Any] | None = None) -> Anatomy:
    """The anatomy a vertebroplasty plan needs.

    Parameters
    ----------
    volume : Volume
        CT in HU.
    masks : LabelMap or None
        Provided masks on the CT grid (TotalSegmentator or VerSe labels, a lesion...); they take precedence.
    levels : iterable of str, optional
        The levels to measure (all found when None).
    level_point : (level, (3,) LPS mm), optional
        A point inside a named vertebra that anchors the level naming.

    Returns
    -------
    Anatomy
        ``spine`` set (:class:`~osteoplan.anatomy.spine.SpineAnatomy`), ``landmarks`` None.

    Raises
    ------
    OsteoplanError
        As :func:`osteoplan.anatomy.spine.find_spine` (bad level name, level point outside the CT, no vertebra).
    """
    from osteoplan.anatomy.segment import segment_body
    from osteoplan.anatomy.spine import find_spine

    msgs: list[str] = []
    lm = LabelMap(volume)
    if masks is not None:
        for n in masks.names():
            lm.add(n, masks.get(n), masks.sources.get(n, "provided"))
        msgs.append("provided masks: " + ", ".join(masks.names()))
    if not lm.has("body"):
        try:
            lm.add("body", segment_body(volume), "classical")
        except AnatomyError as exc:
            msgs.append(f"body (skin) NOT segmented: {exc}")
    lobes = [n for n in lm.names() if n.startswith("lung_") or n == "lung"]
    if lobes and not lm.has("lung"):
        union = np.zeros(volume.shape, bool)
        for n in lobes:
            union |= lm.get(n)
        lm.add("lung", union, lm.sources.get(lobes[0], "provided") + " (union of " + ", ".join(lobes) + ")")
    elif not lm.has("lung") and lm.has("body"):
        try:
            lm.add("lung", segment_lungs(volume, lm.get("body")),
                   f"classical (air < {LUNG_HU:g} HU inside the body, components > {LUNG_MIN_ML:g} mL)")
        except AnatomyError:
            # no aerated lung anywhere in the image: an empty mask, said so (clearances are measured in the image)
            lm.add("lung", np.zeros(volume.shape, bool),
                   f"classical: no aerated lung in the field of view (no air < {LUNG_HU:g} HU component > "
                   f"{LUNG_MIN_ML:g} mL inside the body)")
            msgs.append("lung: none in the field of view (segmented as absent)")
    from osteoplan.anatomy.spine import level_index

    given = sorted((n[len("vertebrae_"):] for n in lm.names() if n.startswith("vertebrae_")), key=level_index)
    if levels and given:
        missing = [lv for lv in levels if f"vertebrae_{lv}" not in lm.names()]
        if len(missing) == len(list(levels)):
            raise AnatomyError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in the vertebra masks "
                               f"given (levels there: {', '.join(given)}); check --level or the masks.")
    try:
        spine = find_spine(volume, lm, levels=levels, level_point=level_point)
    except AnatomyError:
        if not (levels and given):
            raise
        raise AnatomyError(f"{', '.join(levels)} could not be measured on this CT (a vertebra cut by the edge of the "
                           f"image, or without a closed ring around the canal); levels in the masks: "
                           f"{', '.join(given)}. Choose a level measured whole.") from None
    msgs.extend(spine.messages)
    if spine.needs_confirmation and spine.confirmation_request:
        msgs.insert(0, f"LEVEL NOT CONFIRMED: {spine.confirmation_request}")
    lesion = None
    if lm.has("lesion"):
        from types import SimpleNamespace

        lesion = SimpleNamespace(mask=lm.get("lesion"), found=bool(lm.get("lesion").any()))
    missing = [s for s in SPINE_STRUCTURES if not lm.has(s)]
    if missing:
        msgs.append("NOT segmented (not assessed unless covered): " + ", ".join(missing))
    contrast = bool(lm.has("aorta") and float(np.median(volume.array[lm.get("aorta")])) > 150.0)
    return Anatomy(lm, None, lesion, contrast, msgs, spine=spine, planning_structures=SPINE_STRUCTURES)
