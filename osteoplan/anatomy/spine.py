"""Thoracolumbar spine anatomy for vertebroplasty planning: levels, vertebral bodies, walls, pedicles, canal.

:func:`find_spine` reads what a :class:`~osteoplan.anatomy.LabelMap` already holds -- TotalSegmentator
vertebra masks (``vertebrae_T12``), VerSe vertebra labels (read by the loaders into the same names) and
VerSe subregions (``vertebral_arch``, ``vertebral_body``...) -- or, without any vertebra mask, finds the
vertebral bodies classically (bone threshold, the spinal canal as a tube, bodies as the bone anterior to
it separated at the discs) and names them by counting from the ribs. It ADDS the derived masks to the
label map (``vertebrae_<LEVEL>`` for classical levels, ``vertebral_body_<LEVEL>``, ``pedicle_<LEVEL>_left``
/ ``_right``, ``posterior_wall_<LEVEL>``, ``spinal_canal``) and returns landmarks in LPS mm.

A wrong level is the classic error of vertebroplasty: every level carries how its NAME was known
(``level_source``) and a confidence, and :class:`SpineAnatomy` asks for a confirmation point when the
count is not sure.

Frames: for each vertebra, ``superior_unit`` (caudal -> cranial, normal to the endplates as far as the
body mask says: its axis of least extent), ``anterior_unit`` (canal -> body, orthogonalised) and
``left_unit = superior x anterior`` (patient left in LPS, a right-handed frame). Geometry is measured by
resampling masks into that frame at :data:`SECTION_STEP_MM` (nearest neighbour).

Engineering defaults carry "no published source"; published reference values are cited where used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
from scipy import ndimage as ndi

from osteoplan.anatomy.labelmap import SPINE_LEVELS, LabelMap
from osteoplan.errors import AnatomyError, InputError
from osteoplan.imaging.volume import Volume
from osteoplan.anatomy import _local

__all__ = [
    "PedicleLandmarks",
    "VertebraLandmarks",
    "SpineAnatomy",
    "find_spine",
    "parse_level_point",
    "level_index",
    "THORACOLUMBAR_LEVELS",
]

#: Levels vertebroplasty is planned on by this module (T1-L5; T13/L6 transitional levels kept when labelled).
THORACOLUMBAR_LEVELS: tuple[str, ...] = tuple(lv for lv in SPINE_LEVELS if lv[0] in "TL")

#: Step (mm) of the local resampling in which sections are measured (engineering default).
SECTION_STEP_MM = 0.5
#: Thickness (mm) of the posterior-wall shell: the posterior cortex (about 1 mm) plus partial volume and a
#: margin (engineering default, no published source).
POSTERIOR_WALL_MM = 3.0
#: Voxels larger than this (mm, any axis) make the measurements coarse: a note says so (engineering default;
#: a pedicle 5-8 mm wide is then only 2-3 voxels).
COARSE_VOXEL_MM = 2.0
#: Below this level-count confidence a confirmation point is requested (engineering default, no published source).
CONFIRM_BELOW = 0.8
#: Half-width (mm) of the central band in which body depth/width/height are measured (engineering default).
CENTRAL_BAND_MM = 3.0
#: Smallest pedicle section (mm^2) taken as bone bridge; smaller pieces are spurs or partial-volume specks
#: (engineering default; the narrowest thoracic pedicles are about 4.4 mm wide, Kim et al., J Korean Neurosurg
#: Soc 2009;46:181, and about 10 mm high).
MIN_SECTION_MM2 = 10.0
#: Fraction of the canal's AP depth, from the body's posterior wall backwards, along which the pedicles are
#: searched: they flank its anterior part, the laminae close its posterior part (engineering default, no
#: published source).
PEDICLE_CANAL_FRACTION = 0.65
#: Ridge term (mm^2 per section) shrinking the fitted pedicle axis towards the body's AP axis (engineering
#: default, no published source: over a 10 mm tube it halves a slope fitted on noise of about 3 mm).
AXIS_SHRINK_MM2 = 8.0

_SIDES = {"left": 1.0, "right": -1.0}


def level_index(level: str) -> int:
    """Position of a level name in :data:`~osteoplan.anatomy.labelmap.SPINE_LEVELS` (cranial = small).

    Raises
    ------
    InputError
        Not a level name (C1-C7, T1-T13, L1-L6, S1).
    """
    lv = str(level).strip().upper()
    if lv not in SPINE_LEVELS:
        raise InputError(f"'{level}' is not a vertebra level; use C1-C7, T1-T12, L1-L5 (e.g. T12).")
    return SPINE_LEVELS.index(lv)


#: Largest LPS coordinate magnitude of a point given by the user (mm): 100 m, far beyond any CT's field of view;
#: the same bound as ``osteoplan.cliargs.MAX_LPS_MM``.
MAX_POINT_MM = 100_000.0


def parse_level_point(text: str) -> tuple[str, np.ndarray]:
    """Parse ``"T12:x,y,z"`` (LPS mm) into ``(level, point (3,))``.

    Raises
    ------
    InputError
        Malformed text or an unknown level.
    """
    shown = str(text) if len(str(text)) <= 40 else str(text)[:37] + "..."  # echoed below: never a huge number
    try:
        lv, xyz = str(text).split(":", 1)
        p = np.array([float(v) for v in xyz.replace(" ", "").split(",")], float)
    except ValueError:
        raise InputError(f"Level point '{shown}' is not understood; give LEVEL:x,y,z in LPS mm, e.g. T12:10.5,-3,120.") from None
    if p.shape != (3,) or not np.all(np.isfinite(p)):
        raise InputError(f"Level point '{shown}' needs three finite coordinates; give LEVEL:x,y,z in LPS mm, e.g. T12:10.5,-3,120.")
    if np.any(np.abs(p) > MAX_POINT_MM):  # a typing slip (1e308): the range is named, the value is not echoed
        raise InputError(f"Level point coordinates must lie from {-MAX_POINT_MM:.0f} to {MAX_POINT_MM:.0f} mm (LPS); "
                         "give LEVEL:x,y,z inside the CT, e.g. T12:10.5,-3,120.")
    level_index(lv)
    return lv.strip().upper(), p


def _vec(v: Any) -> np.ndarray:
    return np.asarray(v, dtype=np.float64).reshape(3)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, float)
    n = float(np.linalg.norm(v))
    if n == 0 or not np.isfinite(n):
        raise AnatomyError("A direction of zero length came up while building a vertebra frame.")
    return v / n


def _r(v: np.ndarray, nd: int = 3) -> list[float]:
    return [round(float(x), nd) for x in np.asarray(v).reshape(-1)]


# ------------------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class PedicleLandmarks:
    """One pedicle of one vertebra (LPS mm).

    Attributes
    ----------
    side : str
        ``"left"`` or ``"right"`` (patient side).
    isthmus_lps_mm : (3,) array
        Centre of the pedicle's narrowest cross-section (the isthmus) between the body and the
        posterior arch.
    axis_unit : (3,) array
        Unit vector along the pedicle from the posterior arch towards the vertebral body (anterior,
        mostly medial in the thoracolumbar spine).
    width_mm : float
        Mediolateral width of the isthmus section, outer cortex to outer cortex.
    height_mm : float
        Craniocaudal height of the isthmus section.
    entry_lps_mm : (3,) array
        Where the pedicle axis leaves the posterior bone surface (classical transpedicular entry point).
    source : str
        ``"provided:verse-subregions"`` (from the VerSe arch subregion), ``"provided:totalseg"`` /
        ``"provided:verse"`` / ``"provided"`` (geometric, on a provided vertebra mask) or ``"classical"``
        (geometric, on the thresholded bone).
    """

    side: str
    isthmus_lps_mm: np.ndarray
    axis_unit: np.ndarray
    width_mm: float
    height_mm: float
    entry_lps_mm: np.ndarray
    source: str

    def __post_init__(self) -> None:
        if self.side not in _SIDES:
            raise InputError(f"Pedicle side must be 'left' or 'right', not '{self.side}'.")
        object.__setattr__(self, "isthmus_lps_mm", _vec(self.isthmus_lps_mm))
        object.__setattr__(self, "axis_unit", _unit(_vec(self.axis_unit)))
        object.__setattr__(self, "entry_lps_mm", _vec(self.entry_lps_mm))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary (lists of floats)."""
        return {"side": self.side, "isthmus_lps_mm": _r(self.isthmus_lps_mm), "axis_unit": _r(self.axis_unit, 5),
                "width_mm": round(float(self.width_mm), 2), "height_mm": round(float(self.height_mm), 2),
                "entry_lps_mm": _r(self.entry_lps_mm), "source": self.source}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PedicleLandmarks":
        """Inverse of :meth:`to_dict`."""
        return cls(side=str(d["side"]), isthmus_lps_mm=_vec(d["isthmus_lps_mm"]), axis_unit=_vec(d["axis_unit"]),
                   width_mm=float(d["width_mm"]), height_mm=float(d["height_mm"]),
                   entry_lps_mm=_vec(d["entry_lps_mm"]), source=str(d["source"]))


@dataclass(frozen=True)
class VertebraLandmarks:
    """Landmarks of one vertebra (LPS mm).

    Attributes
    ----------
    level : str
        ``"T12"``, ``"L1"``...
    body_centre_lps_mm : (3,) array
        Centroid of the vertebral body mask.
    superior_unit, anterior_unit, left_unit : (3,) arrays
        Right-handed body frame: caudal -> cranial (normal to the endplates as far as the mask says),
        towards the anterior wall, and patient left (``superior x anterior``).
    body_depth_mm, body_width_mm, body_height_mm : float
        AP depth, transverse width and height of the body, measured through its centre (a
        :data:`CENTRAL_BAND_MM` band), outer surface to outer surface.
    anterior_wall_lps_mm, posterior_wall_lps_mm : (3,) arrays
        Mid-points of the anterior and posterior walls on the body's mid-sagittal plane, at mid-height.
    pedicles : dict[str, PedicleLandmarks]
        The sides found (``"left"``, ``"right"``).
    level_source : str
        How the level NAME was known: ``"provided:totalseg"``, ``"provided:verse"``, ``"provided"``,
        ``"classical:rib-count"``, ``"provided:level-point"``.
    level_confidence : float
        0..1.
    notes : tuple of str
    """

    level: str
    body_centre_lps_mm: np.ndarray
    superior_unit: np.ndarray
    anterior_unit: np.ndarray
    left_unit: np.ndarray
    body_depth_mm: float
    body_width_mm: float
    body_height_mm: float
    anterior_wall_lps_mm: np.ndarray
    posterior_wall_lps_mm: np.ndarray
    pedicles: dict[str, PedicleLandmarks] = field(default_factory=dict)
    level_source: str = "provided"
    level_confidence: float = 1.0
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for n in ("body_centre_lps_mm", "anterior_wall_lps_mm", "posterior_wall_lps_mm"):
            object.__setattr__(self, n, _vec(getattr(self, n)))
        for n in ("superior_unit", "anterior_unit", "left_unit"):
            object.__setattr__(self, n, _unit(_vec(getattr(self, n))))
        object.__setattr__(self, "notes", tuple(self.notes))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary."""
        return {
            "level": self.level, "body_centre_lps_mm": _r(self.body_centre_lps_mm),
            "superior_unit": _r(self.superior_unit, 5), "anterior_unit": _r(self.anterior_unit, 5),
            "left_unit": _r(self.left_unit, 5), "body_depth_mm": round(float(self.body_depth_mm), 2),
            "body_width_mm": round(float(self.body_width_mm), 2), "body_height_mm": round(float(self.body_height_mm), 2),
            "anterior_wall_lps_mm": _r(self.anterior_wall_lps_mm), "posterior_wall_lps_mm": _r(self.posterior_wall_lps_mm),
            "pedicles": {k: p.to_dict() for k, p in self.pedicles.items()},
            "level_source": self.level_source, "level_confidence": round(float(self.level_confidence), 3),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "VertebraLandmarks":
        """Inverse of :meth:`to_dict`."""
        return cls(level=str(d["level"]), body_centre_lps_mm=_vec(d["body_centre_lps_mm"]),
                   superior_unit=_vec(d["superior_unit"]), anterior_unit=_vec(d["anterior_unit"]),
                   left_unit=_vec(d["left_unit"]), body_depth_mm=float(d["body_depth_mm"]),
                   body_width_mm=float(d["body_width_mm"]), body_height_mm=float(d["body_height_mm"]),
                   anterior_wall_lps_mm=_vec(d["anterior_wall_lps_mm"]),
                   posterior_wall_lps_mm=_vec(d["posterior_wall_lps_mm"]),
                   pedicles={k: PedicleLandmarks.from_dict(p) for k, p in dict(d.get("pedicles", {})).items()},
                   level_source=str(d.get("level_source", "provided")),
                   level_confidence=float(d.get("level_confidence", 1.0)), notes=tuple(d.get("notes", ())))


@dataclass(frozen=True)
class SpineAnatomy:
    """The vertebrae found, how their levels were named, and whether the user must confirm a level.

    Attributes
    ----------
    vertebrae : dict[str, VertebraLandmarks]
        Level name -> landmarks, cranial to caudal.
    level_method : str
        ``"provided:totalseg"``, ``"provided:verse"``, ``"provided"``, ``"classical:rib-count"``,
        ``"provided:level-point"`` or ``"none"``.
    level_confidence : float
        0..1 for the naming as a whole.
    needs_confirmation : bool
        True when the naming is not sure enough to plan on (below :data:`CONFIRM_BELOW`).
    confirmation_request : str or None
        One sentence telling the user how to confirm (``--level-point T12:x,y,z``).
    messages : tuple of str
    """

    vertebrae: dict[str, VertebraLandmarks]
    level_method: str
    level_confidence: float
    needs_confirmation: bool
    confirmation_request: str | None = None
    messages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", tuple(self.messages))

    def levels(self) -> list[str]:
        """Level names, cranial to caudal."""
        return sorted(self.vertebrae, key=level_index)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary."""
        return {"vertebrae": {lv: self.vertebrae[lv].to_dict() for lv in self.levels()},
                "level_method": self.level_method, "level_confidence": round(float(self.level_confidence), 3),
                "needs_confirmation": bool(self.needs_confirmation),
                "confirmation_request": self.confirmation_request, "messages": list(self.messages)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SpineAnatomy":
        """Inverse of :meth:`to_dict`."""
        return cls(vertebrae={k: VertebraLandmarks.from_dict(v) for k, v in dict(d["vertebrae"]).items()},
                   level_method=str(d["level_method"]), level_confidence=float(d["level_confidence"]),
                   needs_confirmation=bool(d["needs_confirmation"]),
                   confirmation_request=d.get("confirmation_request"), messages=tuple(d.get("messages", ())))


# ------------------------------------------------------------------------------------------ helpers


def _points(volume: Volume, mask: np.ndarray, max_n: int = 200_000) -> np.ndarray:
    idx = np.argwhere(mask)
    if len(idx) > max_n:
        idx = idx[:: len(idx) // max_n + 1]
    return volume.index_to_world(idx.astype(np.float64))


class _Local:
    """A mask resampled (nearest neighbour) on a grid aligned with a frame: axes rows of ``axes`` (3, 3),
    coordinates ``origin + u0*axes[0] + u1*axes[1] + u2*axes[2]``, ``u`` on the given ranges at step ``h``."""

    def __init__(self, volume: Volume, mask: np.ndarray, origin: np.ndarray, axes: np.ndarray,
                 ranges: Iterable[tuple[float, float]], h: float = SECTION_STEP_MM) -> None:
        self.origin = np.asarray(origin, float)
        self.axes = np.asarray(axes, float)
        self.h = h
        self.u = [np.arange(lo, hi + 1e-9, h) for lo, hi in ranges]
        g = np.meshgrid(*self.u, indexing="ij")
        world = self.origin + g[0][..., None] * self.axes[0] + g[1][..., None] * self.axes[1] + g[2][..., None] * self.axes[2]
        idx = volume.world_to_index(world.reshape(-1, 3))
        # crop the mask to its bounding box before sampling (cheap on large CTs)
        nz = np.argwhere(mask)
        if nz.size == 0:
            self.data = np.zeros(g[0].shape, bool)
            return
        lo = nz.min(0)
        hi = nz.max(0) + 1
        sub = mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.uint8)
        self.data = ndi.map_coordinates(sub, (idx - lo).T, order=0, mode="constant", cval=0).reshape(g[0].shape) > 0

    def world(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, float)
        return self.origin + u @ self.axes


def _extent(v: np.ndarray, step: float) -> float:
    return float(v.max() - v.min() + step) if v.size else 0.0


# ------------------------------------------------------------------------------------------ per vertebra


def _ring_hole(volume: Volume, vert: np.ndarray) -> np.ndarray:
    """The canal section enclosed by a vertebra: holes of its axial sections (largest 3D component).

    Tries the mask as is, then closed by 2 and 4 mm in-plane (a ring open by a voxel at coarse spacing).
    """
    from osteoplan.anatomy.segment import Canon, _disk, fill_holes_in_planes

    cn = Canon.of(volume)
    v = cn.to_canon(vert)
    nz = np.argwhere(v)
    lo = np.maximum(nz.min(0) - 2, 0)
    hi = nz.max(0) + 3
    sub = v[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    out = np.zeros(v.shape, bool)
    for r_mm in (0.0, 2.0, 4.0):
        m = sub
        if r_mm:
            d = _disk(r_mm / float(cn.spacing_mm[1]))
            m = ndi.binary_closing(np.pad(sub, ((0, 0), (d.shape[0], d.shape[0]), (d.shape[1], d.shape[1]))),
                                   structure=d[None])[:, d.shape[0]:-d.shape[0], d.shape[1]:-d.shape[1]] | sub
        holes = fill_holes_in_planes(m, 0) & ~m
        lab, n = _local.cc_label(holes)
        if n:
            sizes = np.bincount(lab.ravel())
            sizes[0] = 0
            best = lab == int(np.argmax(sizes))
            if best.sum() * float(np.prod(cn.spacing_mm)) >= 100.0:  # mm^3: more than a marrow pocket
                out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = best
                return cn.from_canon(out)
    return cn.from_canon(out)


@dataclass
class _Vert:
    level: str
    mask: np.ndarray
    source: str
    body: np.ndarray | None = None
    arch: np.ndarray | None = None
    arch_source: str = ""
    canal: np.ndarray | None = None
    centre: np.ndarray | None = None
    s: np.ndarray | None = None
    a: np.ndarray | None = None
    l: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    box: tuple | None = None
    vol: Volume | None = None


#: Margin (mm) around a vertebra's mask of the sub-volume it is measured on (engineering default).
VERTEBRA_MARGIN_MM = 15.0


def _box(volume: Volume, mask: np.ndarray, margin_mm: float) -> tuple[slice, slice, slice]:
    idx = np.argwhere(mask)
    m = np.ceil(margin_mm / np.asarray(volume.spacing_mm)).astype(int)
    lo = np.maximum(idx.min(0) - m, 0)
    hi = np.minimum(idx.max(0) + m + 1, volume.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


def _crop(volume: Volume, box: tuple[slice, slice, slice]) -> Volume:
    aff = volume.affine.copy()
    aff[:3, 3] = volume.index_to_world(np.array([[sl.start for sl in box]], float))[0]
    return Volume(volume.array[box], aff, volume.info)


def _pad(mask: np.ndarray, box: tuple[slice, slice, slice], shape: tuple[int, int, int]) -> np.ndarray:
    out = np.zeros(shape, bool)
    out[box] = mask
    return out


def _split_body(volume: Volume, v: _Vert, body_sub: np.ndarray | None, arch_sub: np.ndarray | None,
                cord: np.ndarray | None, canal: np.ndarray | None = None) -> None:
    """Canal section, body and arch of one vertebra, and a first frame (s = +z)."""
    vert = v.mask
    if v.source == "classical" and canal is not None and canal.any():
        # the slab of a classically found vertebra does not always close its ring (thin laminae, the lamina of
        # the vertebra above overlapping it): the classical canal, within the slab's slices, is its section
        from osteoplan.anatomy.segment import Canon

        cn = Canon.of(volume)
        ks = np.nonzero(cn.to_canon(vert).any(axis=(1, 2)))[0]
        c = cn.to_canon(canal).copy()
        c[: ks.min()] = False
        c[ks.max() + 1:] = False
        v.canal = cn.from_canon(c)
    else:
        v.canal = _ring_hole(volume, vert)
    pts = _points(volume, vert)
    centroid = pts.mean(0)
    if v.canal.any():
        canal_c = _points(volume, v.canal).mean(0)
    elif cord is not None and cord.any():
        zs = pts[:, 2]
        cp = _points(volume, cord)
        sel = cp[(cp[:, 2] >= zs.min()) & (cp[:, 2] <= zs.max())]
        if len(sel) == 0:
            raise AnatomyError(f"{v.level}: no spinal canal found inside the vertebra (ring never closed).")
        canal_c = sel.mean(0)
        v.notes.append("canal section not closed by the vertebra mask: the spinal cord mask gave its centre")
    else:
        raise AnatomyError(f"{v.level}: no spinal canal found inside the vertebra (ring never closed).")
    # the body lies in front of the canal: anterior is -y in the patient (LPS) frame whatever the position on
    # the table; the vertebra's own centroid is not used (spinous processes and ribs can pull it backwards)
    s0 = np.array([0.0, 0.0, 1.0])
    a0 = np.array([0.0, -1.0, 0.0])
    if body_sub is not None and (body_sub & vert).any():
        v.body = body_sub & vert
        v.arch = (arch_sub & vert) if arch_sub is not None else (vert & ~v.body)
        v.arch_source = "provided:verse-subregions" if arch_sub is not None else v.source
    else:
        # body = the vertebra anterior to the canal's anterior border (plane normal to a0)
        cpts = _points(volume, v.canal) if v.canal.any() else canal_c[None]
        front = float(((cpts - canal_c) @ a0).max())
        idx = np.argwhere(vert)
        w = volume.index_to_world(idx.astype(float))
        ant = ((w - canal_c) @ a0) > front
        body = np.zeros_like(vert)
        body[tuple(idx[ant].T)] = True
        lab, n = _local.cc_label(body)
        if n > 1:
            sizes = np.bincount(lab.ravel())
            sizes[0] = 0
            body = lab == int(np.argmax(sizes))
        v.body = body
        v.arch = vert & ~body
        v.arch_source = v.source
    if not v.body.any():
        raise AnatomyError(f"{v.level}: no vertebral body found anterior to the canal.")
    v.centre = _points(volume, v.body).mean(0)


def _frame(volume: Volume, v: _Vert, neighbour_axis: np.ndarray | None) -> None:
    """Body frame: superior = the body's axis of least extent (endplate normal), checked against the spine's
    local direction (neighbour bodies); anterior = canal -> body, orthogonalised; left = superior x anterior."""
    bp = _points(volume, v.body, 60_000)
    q = bp - bp.mean(0)
    evals, evecs = np.linalg.eigh(q.T @ q / len(q))
    s = evecs[:, 0]
    if s[2] < 0:
        s = -s
    ref = neighbour_axis if neighbour_axis is not None else np.array([0.0, 0.0, 1.0])
    if float(s @ ref) < np.cos(np.radians(30.0)):
        v.notes.append("body axis of least extent more than 30 deg from the spine's direction: the spine's "
                       "direction (neighbouring bodies or the scanner axis) was used")
        s = _unit(ref)
    canal_c = _points(volume, v.canal).mean(0) if v.canal is not None and v.canal.any() else None
    if canal_c is None:
        a = _unit(v.centre - _points(volume, v.arch).mean(0)) if v.arch is not None and v.arch.any() else np.array([0, -1.0, 0])
    else:
        a = v.centre - canal_c
    a = _unit(a - (a @ s) * s)
    v.s, v.a, v.l = s, a, np.cross(s, a)


def _body_measures(volume: Volume, v: _Vert) -> tuple[float, float, float, np.ndarray, np.ndarray]:
    bp = _points(volume, v.body)
    u = (bp - v.centre) @ np.stack([v.s, v.a, v.l]).T
    step = float(np.max(volume.spacing_mm))
    band = max(CENTRAL_BAND_MM, step)
    c_a = (np.abs(u[:, 0]) <= band) & (np.abs(u[:, 2]) <= band)
    c_l = (np.abs(u[:, 0]) <= band) & (np.abs(u[:, 1]) <= band)
    c_s = (np.abs(u[:, 1]) <= band) & (np.abs(u[:, 2]) <= band)
    sp = volume.spacing_mm
    depth = _extent(u[c_a, 1], 0.0) + _proj_voxel(volume, v.a)
    width = _extent(u[c_l, 2], 0.0) + _proj_voxel(volume, v.l)
    height = _extent(u[c_s, 0], 0.0) + _proj_voxel(volume, v.s)
    ant = v.centre + v.a * (float(u[c_a, 1].max()) + 0.5 * _proj_voxel(volume, v.a)) if c_a.any() else v.centre
    post = v.centre + v.a * (float(u[c_a, 1].min()) - 0.5 * _proj_voxel(volume, v.a)) if c_a.any() else v.centre
    return depth, width, height, ant, post


def _proj_voxel(volume: Volume, d: np.ndarray) -> float:
    """Length (mm) of one voxel along direction d (its extent: sum of |d . step vectors|)."""
    steps = volume.affine[:3, :3]  # columns: world step of k, j, i
    return float(np.sum(np.abs(d @ steps)))


def _posterior_wall(volume: Volume, v: _Vert, canal_half_width_mm: float, canal_front_mm: float) -> np.ndarray:
    """The body's posterior cortex facing the canal: body voxels no more than :data:`POSTERIOR_WALL_MM` in front of
    the canal's anterior border (``canal_front_mm``, along the anterior axis from the body centre) and no further
    from the mid-sagittal plane than the canal. A concave wall (its middle deepest) is covered too: its rims lie
    behind the canal's anterior border."""
    idx = np.argwhere(v.body)
    w = volume.index_to_world(idx.astype(float))
    u = (w - v.centre) @ np.stack([v.s, v.a, v.l]).T
    sel = (u[:, 1] <= canal_front_mm + POSTERIOR_WALL_MM) & (np.abs(u[:, 2]) <= canal_half_width_mm)
    out = np.zeros_like(v.body)
    out[tuple(idx[sel].T)] = True
    return out


def _canal_geometry(volume: Volume, v: _Vert) -> tuple[float, float, float]:
    """(anterior border, posterior border) of the canal along the anterior axis relative to the body centre,
    and the canal half-width (mm)."""
    if v.canal is None or not v.canal.any():
        ap = _points(volume, v.arch) if v.arch is not None and v.arch.any() else None
        post = float(((ap - v.centre) @ v.a).min()) if ap is not None else -40.0
        bp = _points(volume, v.body)
        front = float(((bp - v.centre) @ v.a).min())
        return front, front + 0.6 * (post - front), 8.0
    cp = _points(volume, v.canal)
    ua = (cp - v.centre) @ v.a
    ul = (cp - v.centre) @ v.l
    return float(ua.max()), float(ua.min()), float(max(abs(ul.min()), abs(ul.max())))


def _mid_width(cs: np.ndarray, cw: np.ndarray, h: float) -> float:
    """Mediolateral width of a pedicle section: the widest row within the central 30 % of its height
    (an oval's diameter within 1 %), so that a bump of the section above or below mid-height (a rib head, the
    base of a transverse or articular process) does not count as pedicle width."""
    height = _extent(cs, h)
    mid = 0.5 * (cs.min() + cs.max())
    rows = np.abs(cs - mid) <= max(0.15 * height, 0.5 * h)
    best = 0.0
    for r in np.unique(np.round(cs[rows] / h)):
        sel = rows & (np.round(cs / h) == r)
        best = max(best, _extent(cw[sel], h))
    return best if best > 0 else _extent(cw, h)


def _pedicle(volume: Volume, v: _Vert, side: str, a_pw: float, a_cp: float, half_w: float,
             body_height: float) -> tuple[PedicleLandmarks, np.ndarray] | None:
    """The pedicle of one side: the bone bridge of the arch between the body and the posterior arch, lateral
    to the canal; the isthmus is its narrowest section.

    Pass 1 cuts the arch in sections normal to the anterior axis from the posterior wall back to the canal's
    posterior border and follows, on that side, the section component nearest to the canal's side wall;
    their centroids give the pedicle axis (line fit). Pass 2 cuts sections normal to that axis; the
    isthmus is the section of least mediolateral width within the bridge (between the posterior wall and
    the canal's posterior border). Returns None when no bridge is found.
    """
    sg = _SIDES[side]
    h = SECTION_STEP_MM
    arch = v.arch
    if arch is None or not arch.any():
        return None
    # pass 1: sections normal to a, u = (t along a, s, l)
    t_lo, t_hi = a_cp - 4.0, a_pw + 2.0
    hs = 0.5 * body_height + 10.0
    l_lo, l_hi = (0.0, half_w + 28.0) if sg > 0 else (-(half_w + 28.0), 0.0)
    loc = _Local(volume, arch, v.centre, np.stack([v.a, v.s, v.l]), [(t_lo, t_hi), (-hs, hs), (l_lo, l_hi)], h)
    target = np.array([0.0, sg * (half_w + 4.0)])
    cents = []
    for it in range(loc.data.shape[0] - 1, -1, -1):  # from the body backwards
        t = loc.u[0][it]
        if t > a_pw + 1.0:
            continue
        sec = loc.data[it]
        lab, n = _local.cc_label(sec, structure=np.ones((3, 3), bool))
        if n == 0:
            continue
        pix = np.argwhere(sec)
        coords = np.stack([loc.u[1][pix[:, 0]], loc.u[2][pix[:, 1]]], 1)
        # only bone lateral to the canal's mid-line and not above/below the body
        sizes = np.bincount(lab.ravel()) * h * h
        big = sizes[lab[tuple(pix.T)]] >= MIN_SECTION_MM2
        if not big.any():
            continue
        d = np.where(big, np.linalg.norm(coords - target, axis=1), np.inf)
        lbl = lab[tuple(pix[int(np.argmin(d))])]
        comp = np.argwhere(lab == lbl)
        cs, cl = loc.u[1][comp[:, 0]], loc.u[2][comp[:, 1]]
        if float(d.min()) > 12.0:
            continue
        cents.append((t, float(cs.mean()), float(cl.mean()), _extent(cl, h)))
    if len(cents) < 3:
        return None
    cents_arr = np.array(cents)
    # keep the run from the posterior wall along the anterior part of the canal (the pedicles flank it;
    # the laminae close its posterior part), sections centred lateral to the canal's half-width / 2
    a_mid = a_pw - PEDICLE_CANAL_FRACTION * (a_pw - a_cp)
    run = cents_arr[(cents_arr[:, 0] <= a_pw + 1.0) & (cents_arr[:, 0] >= a_mid)
                    & (cents_arr[:, 2] * sg >= 0.5 * half_w)]
    if len(run) < 3:
        return None
    sw = ndi.median_filter(run[:, 3], size=5, mode="nearest")
    i_min = int(np.argmin(sw))
    t_iso = run[i_min, 0]
    # the axis is fitted on the narrow tube of the pedicle (sections at most 25 % wider than the narrowest),
    # not on its flares into the body and the arch, which are not symmetric
    fit = run[sw <= 1.25 * sw[i_min] + 1e-9]
    if len(fit) < 3:
        fit = run[np.abs(run[:, 0] - t_iso) <= 3.0 + 1e-6]
    if len(fit) < 3:
        fit = run
    # axis: the section centroids' lateral and cranial drift per mm along the anterior axis (least squares),
    # clipped to about the range of pedicle angles (transverse from about 35 deg convergent at T1 to 10 deg
    # divergent at T12: Kaur et al., J Clin Orthop Trauma 2016;7:101; sagittal angles are smaller) plus a margin
    # (ridge-shrunk towards the body's AP axis: a short tube gives a poorly determined slope)
    tt = fit[:, 0] - fit[:, 0].mean()
    den = float(tt @ tt) + len(tt) * AXIS_SHRINK_MM2
    dl = float(tt @ (fit[:, 2] - fit[:, 2].mean())) / den
    ds = float(tt @ (fit[:, 1] - fit[:, 1].mean())) / den
    dl = float(np.clip(dl, -np.tan(np.radians(35.0)), np.tan(np.radians(35.0))))
    ds = float(np.clip(ds, -np.tan(np.radians(20.0)), np.tan(np.radians(20.0))))
    w = _unit(v.a + dl * v.l + ds * v.s)
    pc = v.centre + fit[:, 0].mean() * v.a + fit[:, 1].mean() * v.s + fit[:, 2].mean() * v.l
    wid = v.l - (v.l @ w) * w
    wid = _unit(wid)
    hgt = np.cross(w, wid)
    # pass 2: sections normal to w through the fitted line, tau along w from pc
    tau_post = (a_mid - (pc - v.centre) @ v.a) / max(w @ v.a, 0.2)
    tau_ant = (a_pw + 1.0 - (pc - v.centre) @ v.a) / max(w @ v.a, 0.2)
    half = 0.5 * body_height + 6.0
    loc2 = _Local(volume, arch, pc, np.stack([w, hgt, wid]),
                  [(min(tau_post, -2.0), max(tau_ant, 2.0)), (-half, half), (-14.0, 14.0)], h)
    secs = []
    for it, tau in enumerate(loc2.u[0]):
        sec = loc2.data[it]
        lab, n = _local.cc_label(sec, structure=np.ones((3, 3), bool))
        if n == 0:
            continue
        pix = np.argwhere(sec)
        coords = np.stack([loc2.u[1][pix[:, 0]], loc2.u[2][pix[:, 1]]], 1)
        sizes = np.bincount(lab.ravel()) * h * h
        big = sizes[lab[tuple(pix.T)]] >= MIN_SECTION_MM2
        d = np.where(big, np.linalg.norm(coords, axis=1), np.inf)
        if float(d.min()) > 6.0:
            continue
        comp = np.argwhere(lab == lab[tuple(pix[int(np.argmin(d))])])
        cs, cw = loc2.u[1][comp[:, 0]], loc2.u[2][comp[:, 1]]
        secs.append((_mid_width(cs, cw, h), _extent(cs, h), tau, float(cs.mean()), float(cw.mean()), len(comp)))
    if len(secs) < 3:
        return None
    sa = np.array(secs)
    sa = sa[sa[:, 5] >= 0.5 * np.median(sa[:, 5])]  # partial sections at the ends of the bridge are not the isthmus
    if len(sa) < 3:
        return None
    smooth_w = ndi.median_filter(sa[:, 0], size=5, mode="nearest")
    ib = int(np.argmin(smooth_w))
    width, height = float(smooth_w[ib]), float(ndi.median_filter(sa[:, 1], size=5, mode="nearest")[ib])
    cu = sa[ib, 2:5]
    isthmus = loc2.world(cu)
    # entry: follow the axis backwards until it has left the vertebra for 4 mm
    entry = isthmus.copy()
    out_run = 0.0
    step = 0.25
    K = np.asarray(volume.shape)
    for k in range(1, int(80.0 / step)):
        p = isthmus - w * (k * step)
        ijk = np.round(volume.world_to_index(p[None])[0]).astype(int)
        inside = bool(np.all(ijk >= 0) and np.all(ijk < K) and v.mask[tuple(ijk)])
        if inside:
            entry = p
            out_run = 0.0
        else:
            out_run += step
            if out_run >= 4.0:
                break
    # pedicle mask: arch voxels within the bridge around the axis, from the posterior wall to as far behind the
    # isthmus as the isthmus is from the wall (at most the canal's posterior border)
    idx = np.argwhere(arch)
    pw = volume.index_to_world(idx.astype(float))
    rel = pw - isthmus
    along = rel @ w
    perp = np.linalg.norm(rel - along[:, None] * w, axis=1)
    d_wall = (a_pw - (isthmus - v.centre) @ v.a) / max(w @ v.a, 0.2)
    d_back = max(d_wall, 3.0)
    sel = (along <= d_wall + 0.5) & (along >= -d_back) & (perp <= 0.6 * max(width, height) + h) & \
          (((pw - v.centre) @ v.l) * sg > 0)
    pm = np.zeros_like(arch)
    pm[tuple(idx[sel].T)] = True
    return PedicleLandmarks(side, isthmus, w, width, height, entry, v.arch_source or v.source), pm


# ------------------------------------------------------------------------------------------ sources


def _level_source(src: str) -> str:
    s = src.lower()
    if "verse" in s:
        return "provided:verse"
    if "totalseg" in s or "vertebrae_" in s:
        return "provided:totalseg"
    if s.startswith("classical"):
        return "classical:rib-count"
    return "provided"


def _masks_from_labelmap(labelmap: LabelMap) -> list[_Vert]:
    out = []
    for lv in SPINE_LEVELS:
        n = f"vertebrae_{lv}"
        if labelmap.has(n) and labelmap.get(n).any():
            out.append(_Vert(lv, labelmap.get(n), _level_source(labelmap.sources.get(n, "provided"))))
    return out


# ------------------------------------------------------------------------------------------ main


def find_spine(volume: Volume, labelmap: LabelMap, levels: Iterable[str] | None = None,
               level_point: tuple[str, Any] | None = None, use_subregions: bool = True) -> SpineAnatomy:
    """Find the thoracolumbar vertebrae, their levels, bodies, walls and pedicles, and add their masks.

    Parameters
    ----------
    volume : Volume
        The CT (HU, LPS geometry).
    labelmap : LabelMap
        Masks already known on the CT's grid (provided or classical). Read: ``vertebrae_<LEVEL>``
        (TotalSegmentator or VerSe), the VerSe subregions ``vertebral_body`` / ``vertebral_body_border``
        / ``vertebral_arch``, ``spinal_cord``, ``spinal_canal``, ``bone``, ``body``. MODIFIED in place:
        ``vertebral_body_<LEVEL>``, ``pedicle_<LEVEL>_left/right``, ``posterior_wall_<LEVEL>`` and, when
        absent, ``spinal_canal`` (and ``vertebrae_<LEVEL>`` when the levels were found classically) are added
        with their source.
    levels : iterable of str, optional
        Only these levels are measured (all found when None); levels asked for but not found are reported
        in ``messages``.
    level_point : (str, (3,) array-like), optional
        A level name and a point (LPS mm) inside that vertebra (``--level-point T12:x,y,z``): anchors the
        naming of classically found levels (the rib count is then only checked against it); with provided
        masks, a disagreement is reported.
    use_subregions : bool
        Use the VerSe subregions for the body and the pedicles when present (False: geometric pedicles on
        the vertebra masks, e.g. to compare both).

    Returns
    -------
    SpineAnatomy

    Raises
    ------
    InputError
        An unknown level name, or a level point outside the CT.
    AnatomyError
        No vertebra found (no mask and the classical search failed).
    """
    want = None if levels is None else {lv.strip().upper() for lv in levels}
    if want is not None:
        for lv in want:
            level_index(lv)
    lp = None
    if level_point is not None:
        lv, p = level_point
        lp = (str(lv).strip().upper(), _vec(p))
        level_index(lp[0])
        if not bool(volume.contains(lp[1][None])[0]):
            raise InputError(f"The level point of {lp[0]} lies outside the CT; give a point inside that vertebra (LPS mm).")
    msgs: list[str] = []
    verts = _masks_from_labelmap(labelmap)
    method_conf: tuple[str, float, str | None]
    if verts:
        srcs = sorted({v.source for v in verts})
        method = srcs[0] if len(srcs) == 1 else "provided"
        msgs.append(f"levels from the provided vertebra masks ({method}): {', '.join(v.level for v in verts)}")
        conf = 0.95  # provided labels: as good as the labeller; TotalSegmentator labelling errors exist
        request = None
        if lp is not None:
            hit = [v.level for v in verts if _contains(volume, v.mask, lp[1])]
            if hit and hit[0] != lp[0]:
                msgs.append(f"LEVEL DISAGREEMENT: the level point named {lp[0]} lies in the mask labelled {hit[0]}; "
                            "the masks' labels were kept: check them")
                conf = 0.3
                request = (f"The level point says {lp[0]} but the masks say {hit[0]}: check the labels on the "
                           "images before planning.")
            elif hit:
                msgs.append(f"level point {lp[0]} agrees with the masks")
                conf = 1.0
        method_conf = (method, conf, request)
    else:
        from osteoplan.anatomy.spine_classical import classical_vertebrae

        found = classical_vertebrae(volume, labelmap, lp, msgs)
        verts = found.verts
        method_conf = (found.method, found.confidence, found.request)
        for v in verts:
            labelmap.add(f"vertebrae_{v.level}", v.mask, "classical")
    method, conf, request = method_conf
    if want is not None:
        missing = sorted(want - {v.level for v in verts}, key=level_index)
        if missing:
            msgs.append(f"levels asked for but not found in this CT: {', '.join(missing)}")
        verts = [v for v in verts if v.level in want]
    sub_body = sub_arch = None
    if use_subregions and labelmap.has("vertebral_body"):
        sub_body = labelmap.get("vertebral_body") | (labelmap.get("vertebral_body_border")
                                                    if labelmap.has("vertebral_body_border") else False)
        sub_arch = labelmap.get("vertebral_arch") if labelmap.has("vertebral_arch") else None
    cord = labelmap.get("spinal_cord") if labelmap.has("spinal_cord") else None
    canal_given = labelmap.get("spinal_canal") if labelmap.has("spinal_canal") else None
    out: dict[str, VertebraLandmarks] = {}
    ok: list[_Vert] = []
    for v in verts:
        # every vertebra is measured on its own sub-volume (its box plus a margin): same LPS world, much faster
        v.box = _box(volume, v.mask, VERTEBRA_MARGIN_MM)
        v.vol = _crop(volume, v.box)
        v.mask = v.mask[v.box]
        try:
            _split_body(v.vol, v, None if sub_body is None else sub_body[v.box],
                        None if sub_arch is None else sub_arch[v.box], None if cord is None else cord[v.box],
                        None if canal_given is None else canal_given[v.box])
            ok.append(v)
        except AnatomyError as exc:
            msgs.append(f"{v.level}: not measured ({exc})")
    centres = {v.level: v.centre for v in ok}
    order = sorted(centres, key=level_index)
    canal_union = np.zeros(volume.shape, bool)
    for v in ok:
        nb = _neighbour_axis(order, centres, v.level)
        sv = v.vol
        _frame(sv, v, nb)
        depth, width, height, ant, post = _body_measures(sv, v)
        a_front, a_back, half_w = _canal_geometry(sv, v)
        a_pw = float((post - v.centre) @ v.a)
        labelmap.add(f"vertebral_body_{v.level}", _pad(v.body, v.box, volume.shape), f"derived:{v.arch_source or v.source}")
        labelmap.add(f"posterior_wall_{v.level}", _pad(_posterior_wall(sv, v, half_w, a_front), v.box, volume.shape),
                     "derived:body-posterior-surface")
        peds: dict[str, PedicleLandmarks] = {}
        for side in ("left", "right"):
            r = _pedicle(sv, v, side, a_pw, a_back, half_w, height)
            if r is None:
                v.notes.append(f"{side} pedicle: no bone bridge found between body and arch")
                continue
            peds[side], pm = r
            labelmap.add(f"pedicle_{v.level}_{side}", _pad(pm, v.box, volume.shape), f"derived:{peds[side].source}")
        if v.canal is not None:
            canal_union[v.box] |= v.canal
        lsrc = v.source if verts and v.source != "classical" else method
        out[v.level] = VertebraLandmarks(
            level=v.level, body_centre_lps_mm=v.centre, superior_unit=v.s, anterior_unit=v.a, left_unit=v.l,
            body_depth_mm=depth, body_width_mm=width, body_height_mm=height, anterior_wall_lps_mm=ant,
            posterior_wall_lps_mm=post, pedicles=peds, level_source=lsrc, level_confidence=conf, notes=tuple(v.notes))
    if not labelmap.has("spinal_canal") and canal_union.any():
        canal = _bridge_canal(volume, canal_union)
        if cord is not None:
            canal |= cord
        labelmap.add("spinal_canal", canal, "derived:vertebra-ring-holes" + ("+spinal_cord" if cord is not None else ""))
        msgs.append("spinal_canal: the holes of the vertebral rings, bridged between levels (nearest section)"
                    + (", united with the spinal cord mask" if cord is not None else ""))
    if not out:
        raise AnatomyError("No vertebra could be measured in this CT; provide vertebra masks (TotalSegmentator "
                           "or VerSe) with --masks.")
    coarse = float(np.max(volume.spacing_mm))
    if coarse > COARSE_VOXEL_MM:
        msgs.append(f"COARSE VOXELS ({coarse:.1f} mm): body dimensions, walls and pedicle widths are uncertain by about "
                    "one voxel; pedicle breach margins below that cannot be assessed on this CT")
    needs = conf < CONFIRM_BELOW
    if needs and request is None:
        lv = order[-1] if order else "T12"
        request = (f"Levels were named by {method} with low confidence ({conf:.2f}): give one level with "
                   f"--level-point {lv}:x,y,z (LPS mm, a point inside that vertebra).")
    return SpineAnatomy(vertebrae={k: out[k] for k in sorted(out, key=level_index)}, level_method=method,
                        level_confidence=conf, needs_confirmation=needs, confirmation_request=request if needs else None,
                        messages=tuple(msgs))


def _contains(volume: Volume, mask: np.ndarray, p: np.ndarray) -> bool:
    ijk = np.round(volume.world_to_index(p[None])[0]).astype(int)
    if np.any(ijk < 0) or np.any(ijk >= np.asarray(volume.shape)):
        return False
    k, j, i = ijk
    return bool(mask[max(k - 1, 0):k + 2, max(j - 1, 0):j + 2, max(i - 1, 0):i + 2].any())


def _neighbour_axis(order: list[str], centres: dict[str, np.ndarray], level: str) -> np.ndarray | None:
    i = order.index(level)
    lo = order[i + 1] if i + 1 < len(order) else level
    hi = order[i - 1] if i > 0 else level
    if lo == hi:
        return None
    d = centres[hi] - centres[lo]
    n = float(np.linalg.norm(d))
    return d / n if n > 0 else None


def _bridge_canal(volume: Volume, holes: np.ndarray) -> np.ndarray:
    """Fill the axial slices between ring holes with the nearest slice's section (a continuous tube)."""
    from osteoplan.anatomy.segment import Canon

    cn = Canon.of(volume)
    c = cn.to_canon(holes).copy()
    ks = np.nonzero(c.any(axis=(1, 2)))[0]
    if ks.size < 2:
        return holes
    for k in range(ks[0] + 1, ks[-1]):
        if not c[k].any():
            near = ks[np.argmin(np.abs(ks - k))]
            c[k] = c[near]
    return cn.from_canon(c)
