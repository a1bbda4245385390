"""A plan belongs to its CT: the UIDs of the series it was made on and a hash of the volume as planned.

:func:`ct_source_of` builds the :class:`~osteoplan.planning.model.CTSource` a plan records
(``Plan.ct_source``); :func:`check_plan_volume` refuses to show, adjust or export a plan against another
volume than the one it was made on.

The hash covers what the planner saw, not the files: the float32 HU voxels in C order (k, j, i) and the
geometry (shape and the 4x4 index -> LPS affine rounded to 1 micrometre, so that the same series read twice
gives the same hash while any change of voxel value, slice order, spacing, orientation or position gives
another). Reading the same DICOM series again, from a folder or from the PACS, gives the same volume hash;
the same voxels written as NIfTI and read back do too, when the writer keeps float32 HU and the affine.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from osteoplan.errors import InputError
from osteoplan.planning.model import CTSource

#: Name of the recipe in :func:`volume_sha256` (recorded with the hash; change it when the recipe changes).
HASH_METHOD = "osteoplan-volume-sha256-v1"


def volume_sha256(volume: Any) -> str:
    """SHA-256 (hex) of a volume's voxels and geometry.

    Parameters
    ----------
    volume : osteoplan.imaging.Volume
        ``array`` (K, J, I) HU, ``affine`` 4x4 (k, j, i) -> LPS mm.

    Returns
    -------
    str
        64 hex digits. Recipe (``osteoplan-volume-sha256-v1``): the ASCII header
        ``"osteoplan-volume-v1 shape=K,J,I affine=a00,a01,...,a33\\n"`` (affine entries rounded to 1e-6 mm,
        printed with ``%.6f``, -0 as 0) followed by the array as little-endian float32 in C order.
    """
    arr = np.ascontiguousarray(np.asarray(volume.array), dtype="<f4")
    aff = np.round(np.asarray(volume.affine, dtype=np.float64), 6) + 0.0  # + 0.0 turns -0.0 into 0.0
    header = ("osteoplan-volume-v1 shape=" + ",".join(str(int(s)) for s in arr.shape) + " affine="
              + ",".join(f"{v:.6f}" for v in aff.ravel()) + "\n")
    h = hashlib.sha256(header.encode("ascii"))
    h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def ct_source_of(volume: Any) -> CTSource:
    """The plan's record of its CT: Study / Series / Frame of Reference UIDs from ``volume.info`` and the hash.

    Parameters
    ----------
    volume : osteoplan.imaging.Volume
        The volume the plan is made on (UIDs are None when the volume did not come from DICOM).

    Returns
    -------
    CTSource
    """
    info = volume.info
    return CTSource(study_uid=info.study_uid or None, series_uid=info.series_uid or None,
                    frame_of_reference_uid=info.frame_of_reference_uid or None,
                    volume_sha256=volume_sha256(volume), hash_method=HASH_METHOD)


def check_plan_volume(plan: Any, volume: Any) -> None:
    """Refuse a volume that is not the one *plan* was made on.

    Parameters
    ----------
    plan : osteoplan.planning.model.Plan
    volume : osteoplan.imaging.Volume

    Raises
    ------
    InputError
        The plan records a volume hash (and, when both are known, a series UID) that differs from *volume*'s.
        A plan without ``ct_source`` (made before schema 1.2) is checked on its grid only (shape, affine).
    """
    src = getattr(plan, "ct_source", None)
    if src is None:
        if tuple(volume.shape) != tuple(plan.ct.shape_kji) or not np.allclose(volume.affine, np.asarray(plan.ct.affine),
                                                                              atol=1e-3):
            raise InputError("This CT is not the one the plan was made on (its grid differs); give the plan's CT.")
        return
    if src.series_uid and volume.info.series_uid and src.series_uid != volume.info.series_uid:
        raise InputError("This CT is another series than the one the plan was made on (SeriesInstanceUID differs); "
                         "give the plan's CT.")
    if src.hash_method == HASH_METHOD and volume_sha256(volume) != src.volume_sha256:
        raise InputError("This CT differs from the volume the plan was made on (voxels or geometry: the volume hash "
                         "differs); give the plan's CT or plan again on this one.")
