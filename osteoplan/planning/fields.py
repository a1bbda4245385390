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
* The structures' maps are held on a box of the ROI (``ROIFields.maps_box``, the whole ROI by default). The search
  computes them only on the box its paths measured against the structures read (:meth:`ROIFields.ensure_maps`,
  :func:`osteoplan.planning.search._run_kernel`): a value capped at ``cap_mm`` depends only on the mask within
  ``cap_mm`` of its voxel, so each transform runs on the box grown by that reach (``within=`` of
  :func:`capped_distance_mm` / :func:`signed_distance_mm`) and gives the values of the whole ROI there.
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
    map_mm: np.ndarray | None  # float32 on ROIFields.maps_box (the whole ROI unless deferred); None until computed
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
    maps: np.ndarray | None = None  # (K', J', I', S) float32 on maps_box, channel last (views in .structures)
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
    #: The ROI box (3 slices) ``maps`` covers (``maps[0, 0, 0]`` is its first voxel); None: not computed yet. The
    #: search's kernel calls :meth:`ensure_maps` with the box its paths read first
    #: (:func:`osteoplan.planning.search.measured_reach_box`); the whole ROI unless build_fields defers the maps.
    maps_box: tuple[slice, ...] | None = None
    #: Per structure (same order), its mask on the ROI and whether its map is signed (displaceable): what
    #: :meth:`ensure_maps` computes the maps from.
    map_sources: list[tuple[np.ndarray, bool]] = field(default_factory=list)

    def world_to_roi(self, pts_lps: np.ndarray) -> np.ndarray:
        """LPS mm (..., 3) -> fractional ROI index (..., 3)."""
        inv = np.linalg.inv(self.affine)
        return np.asarray(pts_lps, float) @ inv[:3, :3].T + inv[:3, 3]

    def ensure_maps(self, box: tuple[slice, ...] | None = None, pad_mm: float = 0.0) -> np.ndarray:
        """``maps`` (K', J', I', S) float32 on :attr:`maps_box`, a box of the ROI holding at least *box* (3 slices of
        the ROI; None = the whole ROI).

        Computed on first need on *box*; when a later *box* is not inside :attr:`maps_box`, on the smallest box
        holding both (the part already computed is kept). Each structure's distance is computed on a box only
        (:func:`capped_distance_mm` / :func:`signed_distance_mm` with ``within``: the values of the whole ROI).
        Structures' ``map_mm`` are views of the channels.

        *pad_mm*: when maps must be computed, on *box* grown by this much (so that the next boxes, near this one,
        need nothing more: cheaper than a second pass over thin slabs; values are exact either way).
        """
        shape = self.shape
        want = _as_box(box, shape)
        cur = self.maps_box if self.maps is not None else None
        if any(w.stop <= w.start for w in want):
            if cur is None:
                self.maps = np.zeros((0, 0, 0, len(self.map_sources)), np.float32)
                self.maps_box = tuple(slice(0, 0) for _ in shape)
            return self.maps
        if cur is not None and any(c.stop <= c.start for c in cur):
            cur = None
        if cur is not None and all(c.start <= w.start and w.stop <= c.stop for c, w in zip(cur, want)):
            return self.maps
        if pad_mm > 0:
            want = _grown(want, np.ceil(pad_mm / np.asarray(self.spacing_mm, float)).astype(int), shape)
        S = len(self.map_sources)
        if cur is None:
            union, todo = want, [want]
        else:
            union = tuple(slice(min(c.start, w.start), max(c.stop, w.stop)) for c, w in zip(cur, want))
            todo = _box_difference(union, cur)
        maps = np.empty(tuple(u.stop - u.start for u in union) + (S,), np.float32)
        if cur is not None:
            maps[_shifted(cur, union)] = self.maps
        grow = cap_reach_voxels(self.spacing_mm, CAP_MM)
        for part in todo:
            # the mask within the reach of the part is all the part's values depend on (see capped_distance_mm,
            # signed_distance_mm): a crop face inside the grid lies farther than CAP_MM from every voxel of the part
            crop = _grown(part, grow, shape)
            within = _shifted(part, crop)
            dst = _shifted(part, union)
            for i_, (mask, signed) in enumerate(self.map_sources):
                fn = signed_distance_mm if signed else capped_distance_mm
                maps[dst + (i_,)] = fn(mask[crop], self.spacing_mm, CAP_MM, within=within)
        self.maps = maps
        for i_, st in enumerate(self.structures):
            st.map_mm = self.maps[..., i_]
        self.maps_box = union
        return self.maps

    @property
    def maps_lo(self) -> np.ndarray:
        """(3,) int64: the ROI index of ``maps[0, 0, 0]``."""
        box = self.maps_box or (slice(0, 0),) * 3
        return np.array([s.start for s in box], np.int64)


def _box_difference(outer: tuple[slice, ...], inner: tuple[slice, ...]) -> list[tuple[slice, ...]]:
    """Disjoint boxes covering *outer* minus *inner* (*inner* inside *outer*; 3 slices each)."""
    parts = []
    rest = list(outer)
    for ax in range(3):
        o, i = rest[ax], inner[ax]
        if i.start > o.start:
            parts.append(tuple(rest[:ax]) + (slice(o.start, i.start),) + tuple(rest[ax + 1:]))
        if i.stop < o.stop:
            parts.append(tuple(rest[:ax]) + (slice(i.stop, o.stop),) + tuple(rest[ax + 1:]))
        rest[ax] = i
    return parts


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


def _as_box(within, shape) -> tuple[slice, ...]:
    """*within* (a tuple of 3 slices with explicit bounds, or None = the whole grid) as clipped slices."""
    if within is None:
        return tuple(slice(0, int(n)) for n in shape)
    return tuple(slice(max(0, int(w.start)), min(int(n), int(w.stop))) for w, n in zip(within, shape))


def _intersect(a: tuple[slice, ...], b: tuple[slice, ...]) -> tuple[slice, ...] | None:
    out = tuple(slice(max(x.start, y.start), min(x.stop, y.stop)) for x, y in zip(a, b))
    return None if any(s.stop <= s.start for s in out) else out


def _grown(box: tuple[slice, ...], grow: np.ndarray, shape) -> tuple[slice, ...]:
    return tuple(slice(max(0, s.start - int(g)), min(int(n), s.stop + int(g))) for s, g, n in zip(box, grow, shape))


def _shifted(box: tuple[slice, ...], origin: tuple[slice, ...]) -> tuple[slice, ...]:
    return tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(box, origin))


def cap_reach_voxels(spacing_mm, cap_mm: float = CAP_MM) -> np.ndarray:
    """(3,) int: per axis, one more index step than a distance of *cap_mm* spans (``ceil(cap / spacing) + 1``).

    A voxel centre farther than this many steps along any axis from a point is more than *cap_mm* away from it.
    """
    return np.ceil(cap_mm / np.asarray(spacing_mm, float)).astype(int) + 1


def capped_distance_mm(mask: np.ndarray, spacing_mm: np.ndarray, cap_mm: float = CAP_MM,
                       within: tuple[slice, ...] | None = None) -> np.ndarray:
    """Distance (mm, float32) from each voxel centre to the nearest True voxel centre of *mask*.

    Exact up to *cap_mm*, clipped to *cap_mm* beyond (and everywhere when *mask* is empty).

    Parameters
    ----------
    mask : (K, J, I) bool
    spacing_mm : (3,) voxel spacing along (k, j, i).
    cap_mm : distances beyond it are clipped to it.
    within : tuple of 3 slices, optional
        Compute the distances only at the voxels of this box of *mask*'s grid; the result then has the box's shape.
        The values equal those on the whole grid: a capped distance at a voxel ``x`` depends only on the mask
        voxels within *cap_mm* of ``x`` (the nearest one when it is closer than *cap_mm*; none matters otherwise,
        the value being *cap_mm*), and those lie within :func:`cap_reach_voxels` steps of the box on every axis.
        The transform therefore runs on the mask's bounding box grown by that reach, intersected with the box
        grown by it; a voxel outside the first is farther than *cap_mm* from every mask voxel (value *cap_mm*),
        and for a voxel of the box inside it the transform sees every mask voxel within *cap_mm* (outside the
        crop it only sees fewer, i.e. larger distances, which are clipped to *cap_mm* as before).

    Returns
    -------
    (K, J, I) float32, or the shape of *within*.
    """
    win = _as_box(within, mask.shape)
    out = np.full(tuple(s.stop - s.start for s in win), cap_mm, dtype=np.float32)
    grow = cap_reach_voxels(spacing_mm, cap_mm)
    box = _bbox(mask, grow)
    if box is None:
        return out
    box = _intersect(box, _grown(win, grow, mask.shape))
    if box is None:
        return out
    inter = _intersect(box, win)
    if inter is None:
        return out
    d = edt_mm(~mask[box], spacing_mm)
    out[_shifted(inter, win)] = np.minimum(d[_shifted(inter, box)], cap_mm)
    return out


def signed_distance_mm(mask: np.ndarray, spacing_mm: np.ndarray, cap_mm: float = CAP_MM,
                       within: tuple[slice, ...] | None = None) -> np.ndarray:
    """Outside: distance to the nearest structure voxel centre; inside: minus the distance to the
    nearest non-structure voxel centre (float32, clipped to [-cap, cap]).

    Inside, the non-structure voxels are those of the grid and, beyond the grid's faces, one layer of voxels
    outside it (a structure cut by the grid's border ends there).

    *within*: compute only at the voxels of this box (result of its shape), with the values of the whole grid: as in
    :func:`capped_distance_mm`, and inside the structure the nearest non-structure voxel closer than *cap_mm* lies
    within :func:`cap_reach_voxels` steps of the box, so the inside transform runs on that neighbourhood only (with
    no background added at its faces: cropping only removes background, i.e. can only give larger distances where
    the true one exceeds *cap_mm*).
    """
    out = capped_distance_mm(mask, spacing_mm, cap_mm, within)
    win = _as_box(within, mask.shape)
    box2 = _bbox(mask, np.ones(3, int) * 2)
    if box2 is None:
        return out
    grow = cap_reach_voxels(spacing_mm, cap_mm)
    # the padded structure box: box2 plus one layer of background (which may lie beyond the grid's faces)
    pad = tuple(slice(s.start - 1, s.stop + 1) for s in box2)
    # the part of it within the reach of the box (unclipped to the grid: positions beyond it are background)
    q = tuple(slice(max(p.start, w.start - int(g)), min(p.stop, w.stop + int(g))) for p, w, g in zip(pad, win, grow))
    inter = _intersect(box2, win)
    if inter is None or any(s.stop <= s.start for s in q):
        return out
    src = tuple(slice(max(0, s.start), min(int(n), s.stop)) for s, n in zip(q, mask.shape))
    sub = np.zeros(tuple(s.stop - s.start for s in q), bool)
    sub[_shifted(src, q)] = mask[src]
    din = edt_mm(sub, spacing_mm)
    m_in = mask[inter]
    o = out[_shifted(inter, win)]
    o[m_in] = -np.minimum(din[_shifted(inter, q)][m_in], cap_mm)
    return out


def depth_inside_mm(mask: np.ndarray, spacing_mm: np.ndarray, cap_mm: float = CAP_MM) -> np.ndarray:
    """Signed depth (mm, + inside) to the surface of *mask*, the surface halfway between voxel centres."""
    half = 0.5 * float(np.min(spacing_mm))
    sd = signed_distance_mm(mask, spacing_mm, cap_mm)
    # signed_distance: inside -din (din >= one voxel), outside +dout
    return np.where(sd < 0, -sd - half, -(sd - half)).astype(np.float32)
