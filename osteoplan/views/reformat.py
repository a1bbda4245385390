"""Planar reformats of the CT through the target and along the trajectory, with overlays.

Display conventions (radiological): axial and coronal images show the patient's left on the image
right; axial images have anterior at the top; coronal and sagittal images have superior at the top;
sagittal images have anterior on the left — the same side as the lateral simulated fluoroscopy
(:mod:`osteoplan.views.drr`), so the two can be compared side by side. An oblique plane is displayed as the
standard view it is closest to, in that view's convention (:func:`oblique_display_axes`). Oblique planes are
labelled with the LPS letters of each image edge (e.g. ``LA``), computed from the plane's axes, so the reader can
always orient. Every image states its orientation in words under its title
(:func:`osteoplan.views.render.orientation_caption`, e.g. "anterior left, head up").

What is not in the displayed plane is drawn projected onto it and looks it: the path a dotted, faded band, a point
(skin entry, bone entry, target) a hollow marker with a dotted edge, each with its own legend entry
(:func:`path_in_plane`, :func:`point_in_plane`). The scale bar lies in the band below the image
(:func:`osteoplan.views.render.draw_scale_bar`), off the anatomy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from osteoplan.errors import InputError
from osteoplan.imaging.volume import AIR_HU, Volume
from osteoplan.views.colors import INSTRUMENT_COLOR, SCREW_COLOR, hex_color, structure_color
from osteoplan.views.geometry import PATH_MARGIN_MM, PathSpec, fit_square_frame, path_points_lps
from osteoplan.views.render import (DEFAULT_WINDOW_HU, LETTER_GUTTER_IN, POINT_KINDS, SCREW_HALO_PT, draw_orientation,
                                    draw_point, draw_scale_bar, end_on_legend_handles, end_on_styles, figure_png,
                                    layout_with_legend, new_figure, nice_length, orientation_caption,
                                    path_legend_handles, point_legend_handle, window)

#: Standard views and the LPS directions of image right / image down.
STANDARD_AXES = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),      # right = patient left, down = posterior
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),   # right = patient left, down = inferior
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),  # right = posterior, down = inferior
}

#: Every reformat view name, in report order.
REFORMAT_VIEWS = ("axial", "coronal", "sagittal", "path_oblique", "path_oblique_orthogonal", "down_path")

#: Views along one path drawn for paths through or beside a pedicle (:attr:`PathSpec.at_pedicle`): the axial
#: reformat tilted to contain the needle, at the pedicle.
PEDICLE_VIEWS = ("pedicle_axial",)

#: Structures not outlined (too large to be informative).
NOT_OUTLINED = ("bone",)


@dataclass(frozen=True)
class Plane:
    """A sampled plane: pixel (r, c) is at ``centre + (c - (n_cols-1)/2) px u + (r - (n_rows-1)/2) px v``.

    Attributes
    ----------
    centre_lps_mm : (3,) array
    u : (3,) unit LPS vector of increasing column (image right)
    v : (3,) unit LPS vector of increasing row (image down)
    n_rows, n_cols : int
    pixel_mm : float
    """

    centre_lps_mm: np.ndarray
    u: np.ndarray
    v: np.ndarray
    n_rows: int
    n_cols: int
    pixel_mm: float

    @property
    def normal(self) -> np.ndarray:
        """Unit normal u x v (3,)."""
        return np.cross(self.u, self.v)

    def points(self) -> np.ndarray:
        """LPS coordinates of every pixel centre, shape (n_rows, n_cols, 3)."""
        c = (np.arange(self.n_cols) - (self.n_cols - 1) / 2.0) * self.pixel_mm
        r = (np.arange(self.n_rows) - (self.n_rows - 1) / 2.0) * self.pixel_mm
        return self.centre_lps_mm + r[:, None, None] * self.v + c[None, :, None] * self.u

    def to_2d(self, pts_lps: np.ndarray) -> np.ndarray:
        """In-plane (x, y) mm of LPS points (..., 3): x along u (right), y along v (down), 0 at centre."""
        d = np.asarray(pts_lps, float) - self.centre_lps_mm
        return np.stack([d @ self.u, d @ self.v], axis=-1)

    def to_pixel(self, pts_lps: np.ndarray) -> np.ndarray:
        """(row, col) fractional pixel indices of LPS points (..., 3)."""
        xy = self.to_2d(pts_lps)
        return np.stack([xy[..., 1] / self.pixel_mm + (self.n_rows - 1) / 2.0,
                         xy[..., 0] / self.pixel_mm + (self.n_cols - 1) / 2.0], axis=-1)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """matplotlib imshow extent (left, right, bottom, top) in in-plane mm (y down)."""
        hw = self.n_cols * self.pixel_mm / 2.0
        hh = self.n_rows * self.pixel_mm / 2.0
        return (-hw, hw, hh, -hh)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    n = np.linalg.norm(v)
    if n < 1e-12:
        raise InputError("Degenerate direction (zero vector) for a reformat plane.")
    return v / n


def path_plane_axes(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Axes of the planes along a path.

    Returns
    -------
    (a, b, d) : three (3,) unit vectors
        ``d`` the path direction; ``a`` the unit vector perpendicular to ``d`` closest to superior
        (+S; or to anterior when the path is nearly cranio-caudal); ``b = d x a``.
        The "path oblique" plane contains d and a; the orthogonal one contains d and b.
    """
    d = _unit(direction)
    ref = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([0.0, -1.0, 0.0])
    a = _unit(ref - (ref @ d) * d)
    b = _unit(np.cross(d, a))
    return a, b, d


def _signed(vec: np.ndarray, *prefs: tuple[int, int]) -> np.ndarray:
    """``vec`` or ``-vec``: the first preference (axis, sign) with a clear component decides.

    E.g. ``(2, -1)`` asks for a negative z (inferior) component; ``(0, 1)`` for a positive x (patient left).
    """
    for axis, sign in prefs:
        if abs(vec[axis]) > 0.1:
            return vec if vec[axis] * sign > 0 else -vec
    return vec


#: LPS unit normal of each standard view's plane (the axis it is perpendicular to), for
#: :func:`closest_standard_view`.
STANDARD_NORMALS = {"sagittal": (1.0, 0.0, 0.0), "coronal": (0.0, 1.0, 0.0), "axial": (0.0, 0.0, 1.0)}


def closest_standard_view(normal: np.ndarray) -> str:
    """The standard view (``"sagittal"``, ``"coronal"`` or ``"axial"``) whose plane is closest to a plane.

    Parameters
    ----------
    normal : (3,) array
        Normal of the plane (LPS; any length but zero, either sign).

    Returns
    -------
    str
        The view whose normal makes the smallest angle with *normal* (largest ``|cos|``); on an exact tie (a plane
        at 45° between two standard planes) the first of sagittal, coronal, axial.

    Raises
    ------
    InputError
        A zero normal.
    """
    n = np.abs(_unit(normal))
    return ("sagittal", "coronal", "axial")[int(np.argmax(n))]


def oblique_display_axes(e1: np.ndarray, e2: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Image axes (u right, v down) of an oblique plane spanned by two perpendicular unit vectors, displayed as the
    standard view it is closest to.

    The image axes are the plane's own axes, ``±e1`` and ``±e2`` (a path along ``e1`` stays horizontal or
    vertical, the geometry is exact): only which of them runs across the image and their signs are chosen. The
    general rule: the plane is shown as the standard view it is closest to (:func:`closest_standard_view`), in
    that view's display convention (:data:`STANDARD_AXES`): near-sagittal, anterior left and head up (as the
    sagittal reformat and the lateral fluoroscopy); near-coronal, the patient's left on the image right and head
    up; near-axial, anterior up and the patient's left on the image right. The axis running across the image is
    the one that best matches the standard view's right and down together (largest ``|e_i . right| +
    |e_j . down|``), and each sign makes its match positive. So the image's right and down have positive dot
    products with that standard view's right and down, and a radiologist can compare the oblique image side by
    side with the standard one without a mirror. These are never zero for the closest view: a zero would need an
    axis of the plane or its normal along the standard view's normal, and the plane would then be closer to
    another standard view.

    Parameters
    ----------
    e1, e2 : (3,) arrays
        Perpendicular unit LPS vectors spanning the plane (e.g. the path direction and :func:`path_plane_axes`'s
        ``a`` or ``b``).

    Returns
    -------
    (u, v, view)
        ``u`` the LPS direction of image right, ``v`` of image down (each ``±e1`` or ``±e2``) and the name of the
        standard view the image is displayed as. The edge letters are computed from ``u`` and ``v``
        (:func:`osteoplan.views.render.draw_orientation`), so they stay true.

    Raises
    ------
    InputError
        *e1* and *e2* are zero or parallel.
    """
    e1, e2 = _unit(e1), _unit(e2)
    view = closest_standard_view(np.cross(e1, e2))
    right, down = (np.asarray(x, float) for x in STANDARD_AXES[view])
    if abs(e1 @ right) + abs(e2 @ down) >= abs(e2 @ right) + abs(e1 @ down):
        u, v = e1, e2
    else:
        u, v = e2, e1
    u = u if u @ right >= 0 else -u
    v = v if v @ down >= 0 else -v
    return u, v, view


def pedicle_axial_axes(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image axes (u right, v down) of the axial plane tilted to contain a path.

    The plane contains the path direction ``d`` and is perpendicular to ``a``, the unit vector perpendicular
    to ``d`` closest to superior (:func:`path_plane_axes`): the axial plane rotated about the patient's
    left-right axis (and a little about the antero-posterior one) until the needle lies in it, as the
    "axial along the needle" a CT gantry tilt would give. It is displayed as an axial image: ``u`` the
    in-plane direction closest to the patient's left, ``v = a x u`` (closest to posterior), so that the
    patient's left is on the image right and anterior up.
    """
    a, _, _ = path_plane_axes(direction)
    left = np.array([1.0, 0.0, 0.0])
    u = left - (left @ a) * a
    if np.linalg.norm(u) < 1e-6:  # a along L-R: the path is in a sagittal plane and steep
        ant = np.array([0.0, -1.0, 0.0])
        u = np.cross(ant - (ant @ a) * a, a)
    u = _unit(u)
    return u, _unit(np.cross(a, u))


def view_plane(view: str, path: PathSpec, fov_mm: float | None = None, pixel_mm: float = 0.4,
               centre_lps_mm: np.ndarray | None = None) -> Plane:
    """The sampling plane of a named view.

    Parameters
    ----------
    view : one of :data:`REFORMAT_VIEWS` or :data:`PEDICLE_VIEWS`
    path : PathSpec
    fov_mm : float, optional
        Square field of view (default: 110 mm, or the path length + 30 mm for path views, 100 mm for the
        pedicle view).
    pixel_mm : float
        Pixel size (mm).
    centre_lps_mm : (3,) array, optional
        Centre of a standard (axial, coronal, sagittal) view; default the target (several needles: their
        centroid, so that every needle is in the picture).

    Notes
    -----
    The two planes along the path (``path_oblique``, ``path_oblique_orthogonal``) are displayed as the standard
    view each is closest to (:func:`oblique_display_axes`): a near-sagittal plane with anterior left and head up,
    as the sagittal reformat and the lateral fluoroscopy; a near-coronal one with the patient's left on the image
    right and head up; a near-axial one with anterior up; the path runs horizontally or vertically. The view down
    the path (``down_path``, through the target, perpendicular to the path) is displayed as the bull's-eye
    fluoroscopy: down closest to inferior, the patient's left on the image right when the path is closer to
    antero-posterior than to lateral, anterior left otherwise (so it may be seen from the skin or from the
    target side, the edge letters say which directions lie where). The pedicle view (``pedicle_axial``) is centred
    half-way between the bone entry and the target (the pedicle and the vertebral body) and drawn as an
    axial image (:func:`pedicle_axial_axes`).
    """
    tgt = path.target_lps_mm
    if view in STANDARD_AXES:
        u, v = (np.asarray(x) for x in STANDARD_AXES[view])
        centre = tgt if centre_lps_mm is None else np.asarray(centre_lps_mm, float)
        fov = fov_mm or 110.0
    elif view == "pedicle_axial":
        u, v = pedicle_axial_axes(path.direction)
        centre = (path.bone_entry_lps_mm + tgt) / 2.0
        fov = fov_mm or 100.0
    else:
        a, b, d = path_plane_axes(path.direction)
        centre = (path.skin_entry_lps_mm + tgt) / 2.0
        fov = fov_mm or max(90.0, path.length_mm + 30.0)
        if view == "down_path":
            # down closest to inferior, right mirrored as the bull's-eye fluoroscopy's (osteoplan.views.drr.
            # standard_geometry): a beam closer to antero-posterior than to lateral shows the patient's left on the
            # image right, otherwise anterior on the left, so the two end-on views are never mirror images
            u, v = b, -a
            frontal = abs(d[1]) >= abs(d[0])
            if (frontal and u[0] < 0) or (not frontal and u[1] < 0):
                u = -u
            centre = tgt
            fov = fov_mm or 60.0
        elif view in ("path_oblique", "path_oblique_orthogonal"):
            u, v, _ = oblique_display_axes(d, a if view == "path_oblique" else b)
        else:
            raise InputError(f"Unknown view '{view}'; choose one of {', '.join(REFORMAT_VIEWS + PEDICLE_VIEWS)}.")
    n = int(round(fov / pixel_mm))
    return Plane(np.asarray(centre, float), _unit(u), _unit(v), n, n, float(pixel_mm))


#: Smallest field of view (mm) of the axial, coronal and sagittal reformats (configurable default).
STANDARD_FOV_MM = 110.0


def standard_view_frame(view: str, paths, anchor_lps_mm: np.ndarray | None = None,
                        min_fov_mm: float = STANDARD_FOV_MM,
                        margin_mm: float = PATH_MARGIN_MM) -> tuple[np.ndarray, float]:
    """Centre and field of view of an axial, coronal or sagittal reformat that shows every path whole.

    The plane passes through *anchor_lps_mm* (default the first path's target); within it the square frame holds
    the projections of each path's skin entry, bone entry, target and screw head with *margin_mm* plus the
    instrument's radius (:func:`osteoplan.views.geometry.fit_square_frame`): the target stays at the centre when
    the path fits in *min_fov_mm*, otherwise the frame grows and moves to show the path from skin entry to target.

    Parameters
    ----------
    view : ``"axial"``, ``"coronal"`` or ``"sagittal"``
    paths : sequence of PathSpec
    anchor_lps_mm : (3,) array, optional
    min_fov_mm, margin_mm : float

    Returns
    -------
    (centre (3,) LPS mm, side mm)

    Raises
    ------
    InputError
        *view* is not a standard view.
    """
    if view not in STANDARD_AXES:
        raise InputError(f"Unknown standard view '{view}'; choose one of {', '.join(STANDARD_AXES)}.")
    paths = list(paths)
    anchor = paths[0].target_lps_mm if anchor_lps_mm is None else np.asarray(anchor_lps_mm, float)
    u, v = (np.asarray(x, float) for x in STANDARD_AXES[view])
    rel = path_points_lps(paths) - anchor
    radius = max(p.instrument_diameter_mm for p in paths) / 2.0
    c2, fov = fit_square_frame(np.stack([rel @ u, rel @ v], axis=-1), min_fov_mm, margin_mm + radius)
    return anchor + c2[0] * u + c2[1] * v, fov


def sample_plane(volume: Volume, plane: Plane, order: int = 1, fill_hu: float = AIR_HU) -> np.ndarray:
    """HU image (n_rows, n_cols) of *volume* on *plane* (trilinear by default)."""
    return volume.sample(plane.points(), order=order, fill_hu=fill_hu)


def sample_mask(mask: np.ndarray, volume: Volume, plane: Plane) -> np.ndarray:
    """Mask (K, J, I) sampled linearly on a plane, float image in [0, 1] (outline at 0.5)."""
    from scipy.ndimage import map_coordinates

    idx = volume.world_to_index(plane.points().reshape(-1, 3))
    out = map_coordinates(np.asarray(mask, np.float32), idx.T, order=1, mode="constant", cval=0.0)
    return out.reshape(plane.n_rows, plane.n_cols)


class _Crop:
    """A sub-volume around the region of interest, to keep masks and distance maps small."""

    def __init__(self, volume: Volume, centre_lps: np.ndarray, half_mm: float):
        idx_c = volume.world_to_index(centre_lps)
        half = half_mm / volume.spacing_mm
        lo = np.maximum(np.floor(idx_c - half).astype(int), 0)
        hi = np.minimum(np.ceil(idx_c + half).astype(int) + 1, np.asarray(volume.shape))
        if np.any(hi <= lo):
            raise InputError("The path lies outside the CT; cannot draw views for it.")
        self.sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        aff = volume.affine.copy()
        aff[:3, 3] = volume.index_to_world(lo.astype(float))
        self.volume = Volume(volume.array[self.sl], aff, volume.info)

    def mask(self, m: np.ndarray) -> np.ndarray:
        return np.asarray(m, bool)[self.sl]


def _structure_fields(mask: np.ndarray, volume: Volume, margin_mm: float):
    """(lower index corner (3,), float mask sub-array, distance map sub-array or None) around a structure.

    The sub-array is the structure's bounding box grown by ``margin + 2`` mm (and one voxel), so the
    Euclidean distance map inside it is exact up to the margin; outside, distances exceed the margin.
    Returns None for an empty mask.
    """
    from osteoplan.planning.fields import edt_mm

    m = np.asarray(mask, bool)
    if not m.any():
        return None
    sp = volume.spacing_mm
    grow = np.ceil((margin_mm + 2.0) / sp).astype(int) + 1
    nz = [np.flatnonzero(m.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    lo = np.array([max(int(z[0]) - g, 0) for z, g in zip(nz, grow)])
    hi = np.array([min(int(z[-1]) + g + 1, n) for z, g, n in zip(nz, grow, m.shape)])
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    sub = m[sl]
    dist = edt_mm(~sub, sp).astype(np.float32, copy=False) if margin_mm > 0 else None
    return lo.astype(float), sub.astype(np.float32), dist


def _band(p0_2d, p1_2d, radius):
    d = np.asarray(p1_2d) - np.asarray(p0_2d)
    n = np.linalg.norm(d)
    if n < 1e-9:
        return None
    nrm = np.array([-d[1], d[0]]) / n * radius
    return np.array([p0_2d + nrm, p1_2d + nrm, p1_2d - nrm, p0_2d - nrm])


def render_reformat(volume: Volume, path: PathSpec, view: str, labelmap=None, **kwargs) -> bytes:
    """PNG bytes of :func:`reformat_figure` (same parameters)."""
    return figure_png(reformat_figure(volume, path, view, labelmap, **kwargs))


def reformat_figure(volume: Volume, path: PathSpec, view: str, labelmap=None, *,
                    fov_mm: float | None = None, pixel_mm: float = 0.4,
                    window_hu: tuple[float, float] = DEFAULT_WINDOW_HU, title: str | None = None,
                    lang: str = "en", cache: dict | None = None, others: tuple[PathSpec, ...] = (),
                    centre_lps_mm: np.ndarray | None = None, offset_mm: float = 0.0):
    """One reformat with structure outlines, margins, the instrument and orientation labels.

    Every structure outlined and every element of the path (instrument, screw, entry points, target)
    has a legend entry; the title is followed by the orientation in words (e.g. "anterior left, head up").

    Parameters
    ----------
    volume : Volume
        CT (HU).
    path : PathSpec
        Path, instrument and margins to draw.
    view : str
        One of :data:`REFORMAT_VIEWS`.
    labelmap : osteoplan.anatomy.LabelMap, optional
        Structures to outline (solid, in :mod:`osteoplan.views.colors`), with a dashed outline at each
        structure's margin from ``path.margins_mm``.
    fov_mm, pixel_mm : float
        Field of view and pixel size. Axial, coronal and sagittal views without *fov_mm* are framed by
        :func:`standard_view_frame` (every path whole, skin entry to target, with a margin).
    window_hu : (level, width)
        CT window.
    title : str, optional
        Title text (default: the view name).
    lang : ``"en"`` or ``"fr"``
        Language of the legend.
    cache : dict, optional
        Shared between calls to reuse distance maps (same structure, same crop).
    others : tuple of PathSpec
        Other needles of the plan drawn with *path* (several levels or both pedicles); every path is then
        labelled with its level and side (:attr:`PathSpec.short_label`).
    centre_lps_mm : (3,) array, optional
        Centre of a standard view (see :func:`view_plane`); without *fov_mm*, the point the plane passes through
        (the frame may move within the plane to hold the paths).
    offset_mm : float
        Shift of the plane along its normal (u x v), in mm: 0 passes through the view's centre (the target
        for axial/coronal/sagittal); a viewer scrolls through parallel slices with it.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig._osteoplan_labels`` holds the edge letters, ``fig._osteoplan_caption`` the orientation words,
        ``fig._osteoplan_plane`` the sampled :class:`Plane` (its pixel grid is the image's).
    """
    from matplotlib.lines import Line2D

    from osteoplan.views.i18n import t

    if view in STANDARD_AXES and fov_mm is None:  # the whole of every path, skin entry to target
        centre_lps_mm, fov_mm = standard_view_frame(view, (path, *others), centre_lps_mm)
    plane = view_plane(view, path, fov_mm=fov_mm, pixel_mm=pixel_mm, centre_lps_mm=centre_lps_mm)
    if offset_mm:
        plane = Plane(plane.centre_lps_mm + float(offset_mm) * plane.normal, plane.u, plane.v, plane.n_rows,
                      plane.n_cols, plane.pixel_mm)
    img = sample_plane(volume, plane)
    fig = new_figure()
    fig._osteoplan_dark = True
    fig.patch.set_facecolor("black")
    ax = fig.add_axes((0.02, 0.14, 0.96, 0.80))
    ax.imshow(window(img, *window_hu), cmap="gray", vmin=0, vmax=1, extent=plane.extent, interpolation="bilinear")
    ax.set_xlim(plane.extent[0], plane.extent[1])
    ax.set_ylim(plane.extent[2], plane.extent[3])
    ax.set_xticks([])
    ax.set_yticks([])
    ext = plane.extent
    xs = np.linspace(ext[0], ext[1], plane.n_cols, endpoint=False) + plane.pixel_mm / 2
    ys = np.linspace(ext[3], ext[2], plane.n_rows, endpoint=False) + plane.pixel_mm / 2
    handles = []
    if labelmap is not None:
        cache = {} if cache is None else cache
        pts_idx = volume.world_to_index(plane.points().reshape(-1, 3))
        for name in labelmap.names():
            if name in NOT_OUTLINED:
                continue
            margin = path.margins_mm.get(name) or 0.0
            key = ("structure", name, round(float(margin), 3))
            entry = cache.get(key)
            if entry is None:
                entry = cache[key] = _structure_fields(labelmap.get(name), volume, margin)
            if entry is None:
                continue
            lo, sub, dist = entry
            from scipy.ndimage import map_coordinates

            local = (pts_idx - lo).T
            col = hex_color(structure_color(name))
            drawn = False
            sm = map_coordinates(sub, local, order=1, mode="constant", cval=0.0).reshape(plane.n_rows, plane.n_cols)
            if sm.min() < 0.5 < sm.max():  # an outline crosses the view (not all inside, e.g. the skin end-on)
                ax.contour(xs, ys, sm, levels=[0.5], colors=[col], linewidths=1.3 if name != "body" else 0.8)
                drawn = True
            if dist is not None:
                dimg = map_coordinates(dist, local, order=1, mode="constant",
                                       cval=1e3).reshape(plane.n_rows, plane.n_cols)
                if dimg.min() < margin < dimg.max():
                    ax.contour(xs, ys, dimg, levels=[margin], colors=[col], linewidths=1.0, linestyles="dashed")
                    drawn = True
            if drawn:
                handles.append(Line2D([], [], color=col, lw=2, label=t(name, lang)))
    # instrument, screw, points
    drawn_points: set[tuple[str, bool]] = set()
    for p in (path, *others):
        drawn_points |= _draw_path(ax, plane, p, view, label=p.short_label if others else None)
    in_plane_kinds = tuple(k for k in POINT_KINDS if (k, False) in drawn_points)
    projected_kinds = tuple(k for k in POINT_KINDS if (k, True) in drawn_points)
    if view == "down_path":  # the instrument and the screw are seen end-on: a ring and a disc, as drawn
        handles += end_on_legend_handles(path, lang)[:-1]
        handles += [point_legend_handle("target", lang, projected=pr) for pr in (False, True)
                    if ("target", pr) in drawn_points]
    else:
        handles += path_legend_handles(path, lang, points=in_plane_kinds, projected_points=projected_kinds)
    if view != "down_path" and not all(path_in_plane(plane, p) for p in (path, *others)):
        handles.append(projected_path_handle(lang))  # the dotted band is the path projected, not in this plane
    if path.margins_mm:
        handles.append(Line2D([], [], color="white", lw=1, ls="--", label=t("margin_outline", lang)))
    labels = draw_orientation(ax, plane.u, plane.v, outside=True, lang=lang)  # in the band around the image, off the anatomy
    if not getattr(path, "feasible", True):
        from osteoplan.views.render import draw_not_feasible_banner

        draw_not_feasible_banner(ax, lang, getattr(path, "banner_key", "near_miss_banner"))
    draw_scale_bar(ax, nice_length(plane.n_cols * plane.pixel_mm))  # in the band below the image
    caption = orientation_caption(plane.u, plane.v, lang)
    ax.set_title((title or t(f"view_{view}", lang)) + "\n" + caption, color="white", fontsize=10.5,
                 pad=4 + 72 * LETTER_GUTTER_IN, linespacing=1.3)
    layout_with_legend(fig, ax, handles, title_in=0.55, gutter_in=LETTER_GUTTER_IN)
    fig._osteoplan_labels = labels
    fig._osteoplan_caption = caption
    fig._osteoplan_plane = plane
    return fig


def path_in_plane(plane: Plane, path: PathSpec, tol_mm: float = 1e-3) -> bool:
    """True when the path lies in *plane* (parallel to it and through it, within *tol_mm*); otherwise a reformat
    draws it projected onto the plane (dotted, faded) and its legend says so (:func:`projected_path_handle`)."""
    return bool(abs(path.direction @ plane.normal) < tol_mm
                and abs((path.target_lps_mm - plane.centre_lps_mm) @ plane.normal) < tol_mm)


def point_in_plane(plane: Plane, point_lps_mm: np.ndarray, tol_mm: float | None = None) -> bool:
    """True when a point lies in *plane*: closer to it than *tol_mm* (default half the plane's pixel, the
    nearest a point can be drawn to its place). A reformat draws any other point projected onto the plane, with a
    hollow dotted marker, and its legend says so (:func:`osteoplan.views.render.draw_point`). A path in the plane
    (:func:`path_in_plane`) has all its points in it."""
    tol = plane.pixel_mm / 2.0 if tol_mm is None else tol_mm
    return bool(abs((np.asarray(point_lps_mm, float) - plane.centre_lps_mm) @ plane.normal) < tol)


def screw_band_style(in_plane: bool) -> dict:
    """``Polygon`` keyword arguments of the screw drawn along a path on a 2D view: white, its outline with a
    dark halo of :data:`osteoplan.views.render.SCREW_HALO_PT` so that it shows on white bone; fainter when the
    path is projected onto the plane."""
    import matplotlib.patheffects as pe

    r, g, b = SCREW_COLOR[:3]
    return {"closed": True, "fc": (r, g, b, 0.55 if in_plane else 0.35), "ec": (r, g, b, 1.0), "lw": 1.0,
            "path_effects": [pe.withStroke(linewidth=1.0 + 2 * SCREW_HALO_PT, foreground="black")]}


def projected_path_handle(lang: str = "en"):
    """Legend entry of a path drawn projected onto a plane it is not in: dotted outline, faded fill (as drawn)."""
    from matplotlib.patches import Patch

    from osteoplan.views.i18n import t

    r, g, b = INSTRUMENT_COLOR[:3]
    return Patch(facecolor=(r, g, b, 0.12), edgecolor=(r, g, b, 0.9), linestyle=":", linewidth=1.2,
                 label=t("path_projected", lang))


def _draw_path(ax, plane: Plane, path: PathSpec, view: str, label: str | None = None) -> set[tuple[str, bool]]:
    """Draw one path on a reformat: the instrument band at its real diameter (solid in the plane, dotted
    when projected), the screw, the skin and bone entries and the target (each in the plane, or projected onto it:
    :func:`point_in_plane`); *label* beside it (:func:`_label_path`). Down the path: the instrument and the screw
    end-on (:func:`osteoplan.views.render.end_on_styles`) and the target.

    Returns
    -------
    set of (point kind, projected) pairs drawn, for the legend.
    """
    from matplotlib.patches import Circle, Polygon

    r_instr = path.instrument_diameter_mm / 2.0
    pts = {"skin_entry": path.skin_entry_lps_mm, "bone_entry": path.bone_entry_lps_mm, "target": path.target_lps_mm}
    skin2, bone2, tgt2 = (plane.to_2d(pts[k]) for k in POINT_KINDS)
    in_plane = path_in_plane(plane, path)
    icol = hex_color(INSTRUMENT_COLOR)
    drawn: set[tuple[str, bool]] = set()
    if view == "down_path":
        st = end_on_styles()
        ax.add_patch(Circle((0, 0), r_instr, zorder=10, **st["instrument"]))
        if path.screw_diameter_mm:
            ax.add_patch(Circle((0, 0), path.screw_diameter_mm / 2, zorder=11, **st["screw"]))
        kinds = ("target",)   # the entries project onto the target
    else:
        band = _band(skin2, tgt2, r_instr)
        if band is not None:
            ax.add_patch(Polygon(band, closed=True, fill=in_plane, fc=icol, alpha=0.25 if in_plane else 0.9,
                                 ec=icol, lw=1.2, ls="-" if in_plane else ":", zorder=10))
            if not in_plane:
                ax.add_patch(Polygon(band, closed=True, fill=True, fc=icol, alpha=0.12, ec="none", zorder=9))
        if path.screw_diameter_mm:
            sb = _band(plane.to_2d(path.screw_start_lps_mm), tgt2, path.screw_diameter_mm / 2)
            if sb is not None:
                ax.add_patch(Polygon(sb, zorder=11, **screw_band_style(in_plane)))
        kinds = POINT_KINDS
    for kind in kinds:
        projected = not (in_plane or point_in_plane(plane, pts[kind]))
        draw_point(ax, kind, (0.0, 0.0) if view == "down_path" else plane.to_2d(pts[kind]), projected=projected)
        drawn.add((kind, projected))
    if label:
        _label_path(ax, skin2, bone2, tgt2, label, along=10.0, beside=5.0)
    return drawn


def _label_path(ax, skin2, bone2, tgt2, label: str, along: float, beside: float) -> None:
    """Write *label* next to a drawn path: *along* (drawing units) from the bone entry towards the skin, *beside*
    off the band. Needles converge on their targets (bipedicular, several levels) but enter bone apart: labels
    set there do not collide."""
    import matplotlib.patheffects as pe

    back = np.asarray(skin2, float) - np.asarray(bone2, float)
    n = np.linalg.norm(back)
    if n < 1e-6:
        back = np.asarray(skin2, float) - np.asarray(tgt2, float)
        n = np.linalg.norm(back)
    u = back / n if n > 1e-6 else np.array([1.0, 0.0])
    pos = np.asarray(bone2, float) + u * along + np.array([-u[1], u[0]]) * beside
    ax.text(*pos, label, color="white", fontsize=9, fontweight="bold", ha="center", va="center", zorder=22,
            clip_on=True, path_effects=[pe.withStroke(linewidth=2.5, foreground="black")])
