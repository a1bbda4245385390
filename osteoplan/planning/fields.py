"""Distance fields on a region of interest (ROI) around the target bone, computed once per plan.

The trajectory search samples these maps along every candidate path (see :mod:`.search`).

Conventions
-----------
* The ROI is an index box of the CT grid, so ROI index ``(k, j, i)`` = CT index minus ``offset``.
* A structure's distance map holds, for every ROI voxel centre, the Euclidean distance (mm) to the
  nearest voxel centre of the structure (0 inside), computed with
  :func:`scipy.ndimage.distance_transform_edt` on the structure's bounding box grown by ``cap_mm``
  (exact inside that box); values are clipped at ``cap_mm`` (beyond it only "far" matters).
* Displaceable structures get a *signed* map: inside, minus the distance to the nearest voxel
  centre outside the structure (how deep a point is inside it), so the displacement needed can be
  computed when a path crosses it.
* The target bone (C2, a vertebra) gets a signed "depth" map, positive inside: distance to the bone surface, the surface being
  taken halfway between the last voxel centre inside and the first outside.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

#: Distances beyond this are clipped (mm). configurable default, no published source (any margin
#: and the objective's clearance bonus live well below it).
CAP_MM = 20.0


def edt_mm(background_is_false: np.ndarray, spacing_mm) -> np.ndarray:
    """Euclidean distance (mm) from every True voxel to the nearest False voxel (0 on False voxels).

    Uses the ``edt`` package (Silversmith, seung-lab; exact, ~3x faster than scipy) when installed,
    else :func:`scipy.ndimage.distance_transform_edt`. The volume border is not background.
    """
    try:
        import edt as _edt

        return _edt.edt(np.ascontiguousarray(background_is_false), anisotropy=tuple(float(s) for s in spacing_mm),
                        black_border=False, parallel=1)
    except ImportError:  # pragma: no cover
        return ndi.distance_transform_edt(background_is_false, sampling=spacing_mm)


@dataclass
class StructureField:
    """One structure's distance map on the ROI."""

    name: str
    category: str  # "hard" | "displaceable"
    margin_mm: float
    map_mm: np.ndarray  # float32 (K, J, I) ROI
    source: str
    soft_only: bool = False  # measured only outside the target bone (bone on the way)
    mask_full: np.ndarray | None = None  # bool mask on the full CT grid (for exact re-measurement)
    never_enter: bool = False  # a hollow viscus: the instrument must not intersect it


@dataclass
class ROIFields:
    """Everything the search kernel reads, on the ROI grid."""

    offset: np.ndarray  # (3,) int, ROI origin in CT index (k, j, i)
    shape: tuple[int, int, int]
    affine: np.ndarray  # 4x4 ROI index -> LPS
    spacing_mm: np.ndarray
    bone_depth_mm: np.ndarray  # float32, signed, + inside the target bone (C2, the vertebra)
    body: np.ndarray  # uint8
    other_bone: np.ndarray  # uint8: bone that is not the target bone (mandible, C1, C3, ribs, skull...)
    lesion: np.ndarray  # uint8 (zeros when no lesion)
    structures: list[StructureField] = field(default_factory=list)
    bone_source: str = ""
    body_source: str = ""
    other_bone_source: str = ""
    lesion_assessed: bool = False
    maps: np.ndarray | None = None  # (K, J, I, S) float32: structures' maps, channel last (views in .structures)
    #: ROI faces that are edges of the CT's data, as (array axis, -1 low / +1 high): the image border or a
    #: truncated field of view. A path stopped there inside the body left the image, not the patient.
    fov_faces: tuple[tuple[int, int], ...] = ()
    #: Per ROI index along ``medial_axis`` (the array axis carrying S-I): signed offset (mm, + = patient left)
    #: from the mid-sagittal plane of the medial edge of the structures the skin entry must stay medial to, on the
    #: left (smallest positive) and the right (largest negative); NaN where none is segmented on that slice.
    medial_edge_left_mm: np.ndarray | None = None
    medial_edge_right_mm: np.ndarray | None = None
    #: Per slice, anterior offset (mm) of the front edge of those structures on each side (NaN where none).
    front_edge_left_mm: np.ndarray | None = None
    front_edge_right_mm: np.ndarray | None = None
    medial_axis: int = 0
    medial_sources: tuple[str, ...] = ()

    def world_to_roi(self, pts_lps: np.ndarray) -> np.ndarray:
        """LPS mm (..., 3) -> fractional ROI index (..., 3)."""
        inv = np.linalg.inv(self.affine)
        return np.asarray(pts_lps, float) @ inv[:3, :3].T + inv[:3, 3]


def nonzero_box(mask: np.ndarray) -> list[tuple[int, int]] | None:
    """Per axis (k, j, i), the first and last index holding a True voxel of *mask*; None when it is empty."""
    out = []
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        nz = np.nonzero(mask.any(axis=other))[0]
        if len(nz) == 0:
            return None
        out.append((int(nz[0]), int(nz[-1])))
    return out


def _bbox(mask: np.ndarray, grow: np.ndarray) -> tuple[slice, ...] | None:
    idx = np.nonzero(mask.any(axis=(1, 2)))[0], np.nonzero(mask.any(axis=(0, 2)))[0], np.nonzero(mask.any(axis=(0, 1)))[0]
    if any(len(a) == 0 for a in idx):
        return None
    return tuple(slice(max(0, int(a[0]) - int(g)), min(n, int(a[-1]) + int(g) + 1))
                 for a, g, n in zip(idx, grow, mask.shape))


def capped_distance_mm(mask: np.ndarray, spacing_mm: np.ndarray, cap_mm: float = CAP_MM) -> np.ndarray:
    """Distance (mm, float32, shape of *mask*) from each voxel centre to the nearest True voxel centre.

    Exact up to *cap_mm*, clipped to *cap_mm* beyond (and everywhere when *mask* is empty).
    """
    out = np.full(mask.shape, cap_mm, dtype=np.float32)
    grow = np.ceil(cap_mm / np.asarray(spacing_mm)).astype(int) + 1
    box = _bbox(mask, grow)
    if box is None:
        return out
    d = edt_mm(~mask[box], spacing_mm)
    out[box] = np.minimum(d, cap_mm)
    return out


def signed_distance_mm(mask: np.ndarray, spacing_mm: np.ndarray, cap_mm: float = CAP_MM) -> np.ndarray:
    """Outside: distance to the nearest structure voxel centre; inside: minus the distance to the
    nearest non-structure voxel centre (float32, clipped to [-cap, cap])."""
    out = capped_distance_mm(mask, spacing_mm, cap_mm)
    box = _bbox(mask, np.ones(3, int) * 2)
    if box is not None:
        sub = mask[box]
        din = edt_mm(np.pad(sub, 1, constant_values=False), spacing_mm)[1:-1, 1:-1, 1:-1]
        o = out[box]
        o[sub] = -np.minimum(din[sub], cap_mm)
        out[box] = o
    return out


def depth_inside_mm(mask: np.ndarray, spacing_mm: np.ndarray, cap_mm: float = CAP_MM) -> np.ndarray:
    """Signed depth (mm, + inside) to the surface of *mask*, the surface halfway between voxel centres."""
    half = 0.5 * float(np.min(spacing_mm))
    sd = signed_distance_mm(mask, spacing_mm, cap_mm)
    # signed_distance: inside -din (din >= one voxel), outside +dout
    return np.where(sd < 0, -sd - half, -(sd - half)).astype(np.float32)
