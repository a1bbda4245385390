"""Fast slices for an image viewer: axial, coronal and sagittal planes through the target and the two planes
containing the path (:func:`osteoplan.views.reformat.view_plane`), shifted along their normal, with the structures' outlines, their margins (dashed) and the instrument, as PNG.

The report's reformats (:mod:`osteoplan.views.reformat`, matplotlib: legend, titles, scale bar) take one to three
seconds each; a viewer scrolled by the radiologist needs a slice in a fraction of that. This module samples the
same planes (:func:`osteoplan.views.reformat.view_plane`, the same radiological orientation: axial and coronal
with the patient's left on the image right, sagittal with anterior on the left, head up) and draws with numpy
only: outlines are the boundary pixels of each structure's mask sampled on the plane (nearest voxel), the margin
is the boundary of the region within the margin (Euclidean distance map of the structure, computed once per
plan), the instrument is the set of pixels whose point lies inside its cylinder (its cut by the plane) and the
path's projection is a dotted line. The legend, orientation letters and scale are left to the page. Like the
report's overview pictures, every slice shows the whole path, skin entry to target (:func:`slice_frame`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from osteoplan.views.colors import (ENTRY_COLOR, INSTRUMENT_COLOR, OTHER_INSTRUMENT_COLOR, SCREW_COLOR, TARGET_COLOR,
                                    structure_color)
from osteoplan.views.geometry import PATH_MARGIN_MM, PathSpec, fit_square_frame
from osteoplan.views.reformat import NOT_OUTLINED, STANDARD_AXES, Plane, _structure_fields, view_plane

#: The viewer's planes (through the target) and their window presets (level, width) in HU. Configurable
#: defaults, the usual CT presets (Radiopaedia, "Windowing (CT)": bone W 1800 / L 400; soft tissue W 400 / L 40).
VIEWER_PLANES: tuple[str, ...] = ("axial", "coronal", "sagittal", "path_oblique", "path_oblique_orthogonal")
#: Words for the viewer's planes (the two path planes contain the whole path, skin entry to target).
PLANE_TITLES: dict[str, str] = {"axial": "axial", "coronal": "coronal", "sagittal": "sagittal",
                                "path_oblique": "along the path", "path_oblique_orthogonal": "along the path, 90°"}
WINDOW_PRESETS_HU: dict[str, tuple[float, float]] = {"bone": (400.0, 1800.0), "soft_tissue": (40.0, 400.0)}
#: Smallest field of view (mm) and pixel size (mm) of the viewer's slices (configurable defaults). The axial,
#: coronal and sagittal slices grow from FOV_MM to hold the whole path (:func:`slice_frame`).
FOV_MM = 110.0
PIXEL_MM = 0.4


@dataclass
class SliceScene:
    """What every slice of one plan needs, computed once: the CT, the path and the structures' sub-volumes.

    Attributes
    ----------
    volume : Volume
    path : PathSpec
    structures : list of (name, lower index corner (3,), mask sub-array (k, j, i) float32, distance map or None,
        margin_mm, RGB colour in 0..1, the sub-array's 8 corners in LPS mm (8, 3))
    """

    volume: object
    path: PathSpec
    structures: list = field(default_factory=list)


def make_scene(volume, path: PathSpec, labelmap=None) -> SliceScene:
    """Prepare a plan's slices (the structures' cropped masks and margin distance maps)."""
    scene = SliceScene(volume, path)
    if labelmap is not None:
        for name in labelmap.names():
            if name in NOT_OUTLINED:
                continue
            margin = float(path.margins_mm.get(name) or 0.0)
            entry = _structure_fields(labelmap.get(name), volume, margin)
            if entry is None:
                continue
            lo, sub, dist = entry
            n = np.asarray(sub.shape, float) - 1
            box = np.array([[k, j, i] for k in (0, n[0]) for j in (0, n[1]) for i in (0, n[2])]) + lo
            scene.structures.append((name, lo, sub, dist, margin, structure_color(name),
                                     volume.index_to_world(box)))
    return scene


def slice_frame(path: PathSpec, view: str, min_fov_mm: float = FOV_MM,
                margin_mm: float = PATH_MARGIN_MM) -> tuple[np.ndarray, float]:
    """Centre (3,) LPS mm and side (mm) of an axial, coronal or sagittal viewer slice at offset 0.

    The rule of the report's overview pictures (:func:`osteoplan.views.geometry.fit_square_frame`): the plane
    passes through the target; within it the square frame holds the projections of the skin entry, the bone entry
    and the target with *margin_mm*, centred on the target when they fit in *min_fov_mm*, otherwise grown and
    moved to show the path from skin entry to target. Only these three points count (not the instrument's
    radius nor the screw), so that the panes' pixel <-> LPS geometry the web page receives
    (:func:`osteoplan.web.routers.adjust.pane_geometry`, built from the three points) is exactly the one drawn.

    Raises
    ------
    ValueError
        *view* is not axial, coronal or sagittal.
    """
    if view not in STANDARD_AXES:
        raise ValueError(f"unknown standard view {view!r}; choose one of {', '.join(STANDARD_AXES)}")
    u, v = (np.asarray(x, float) for x in STANDARD_AXES[view])
    tgt = path.target_lps_mm
    rel = np.stack([path.skin_entry_lps_mm, path.bone_entry_lps_mm, tgt]) - tgt
    c2, fov = fit_square_frame(np.stack([rel @ u, rel @ v], axis=-1), min_fov_mm, margin_mm)
    return tgt + c2[0] * u + c2[1] * v, fov


def slice_plane(path: PathSpec, view: str, offset_mm: float = 0.0, fov_mm: float | None = None,
                pixel_mm: float = PIXEL_MM) -> Plane:
    """The plane of *view* shifted by *offset_mm* along its normal (u x v).

    Axial, coronal and sagittal: through the target, framed by :func:`slice_frame` (at least :data:`FOV_MM`,
    the whole path with :data:`osteoplan.views.geometry.PATH_MARGIN_MM`) unless *fov_mm* is given (then centred
    on the target); the path planes: through the path's middle, the path's length + 30 mm."""
    centre = None
    if fov_mm is None and view in STANDARD_AXES:
        centre, fov_mm = slice_frame(path, view)
    p = view_plane(view, path, fov_mm=fov_mm, pixel_mm=pixel_mm, centre_lps_mm=centre)
    return Plane(p.centre_lps_mm + float(offset_mm) * p.normal, p.u, p.v, p.n_rows, p.n_cols, p.pixel_mm)


def _edge(inside: np.ndarray) -> np.ndarray:
    """Boundary pixels of a 2D boolean region (inside pixels with an outside 4-neighbour)."""
    e = np.zeros_like(inside)
    e[1:, :] |= inside[1:, :] & ~inside[:-1, :]
    e[:-1, :] |= inside[:-1, :] & ~inside[1:, :]
    e[:, 1:] |= inside[:, 1:] & ~inside[:, :-1]
    e[:, :-1] |= inside[:, :-1] & ~inside[:, 1:]
    return e


def _seg_dist(pts: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance (mm) of points (..., 3) to the segment a-b."""
    ab = b - a
    t = np.clip(((pts - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.linalg.norm(pts - (a + t[..., None] * ab), axis=-1)


def render_slice(scene: SliceScene, view: str, offset_mm: float = 0.0, window: str = "bone",
                 others: tuple[PathSpec, ...] | list[PathSpec] = ()) -> bytes:
    """PNG of one viewer slice.

    Parameters
    ----------
    scene : SliceScene
        From :func:`make_scene`.
    view : one of :data:`VIEWER_PLANES`
    offset_mm : float
        Shift along the plane's normal from the target (mm).
    window : {"bone", "soft_tissue"}
        Window preset (:data:`WINDOW_PRESETS_HU`).
    others : sequence of PathSpec
        The plan's other needles (several placed: one per pedicle or level), drawn for reference in
        :data:`~osteoplan.views.colors.OTHER_INSTRUMENT_COLOR`, fainter than the instrument of ``scene.path``: their
        cut by the plane blended at 35 %, their path projected as a sparser dotted line, their target projected as
        a diagonal cross of 3 pixels each way (pixel :meth:`Plane.to_pixel` rounded half up). The plane is still
        ``scene.path``'s. Their cut lies under the instrument's; their projections over it (a needle seen
        end-on or mirrored, e.g. on a sagittal slice of a bipedicular plan, overlaps the moved one), under the
        instrument's own dotted path and point markers.

    Returns
    -------
    bytes
        RGB PNG, (n_rows, n_cols) = FOV / pixel size; image right = plane ``u``, image down = plane ``v``.

    Raises
    ------
    ValueError
        Unknown view or window.
    """
    from PIL import Image
    from scipy.ndimage import map_coordinates

    if view not in VIEWER_PLANES:
        raise ValueError(f"unknown view {view!r}; choose one of {', '.join(VIEWER_PLANES)}")
    if window not in WINDOW_PRESETS_HU:
        raise ValueError(f"unknown window {window!r}; choose one of {', '.join(WINDOW_PRESETS_HU)}")
    vol, path = scene.volume, scene.path
    plane = slice_plane(path, view, offset_mm)
    pts = plane.points()                                   # (rows, cols, 3) LPS
    level, width = WINDOW_PRESETS_HU[window]
    hu = vol.sample(pts, order=1)
    grey = np.clip((hu - (level - width / 2.0)) / width, 0.0, 1.0)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    idx = vol.world_to_index(pts.reshape(-1, 3))
    shape2 = (plane.n_rows, plane.n_cols)
    for name, lo, sub, dist, margin, colour, box_lps in scene.structures:
        side = (box_lps - plane.centre_lps_mm) @ plane.normal
        if side.min() > plane.pixel_mm or side.max() < -plane.pixel_mm:
            continue  # the structure's box (grown by its margin) does not reach this slice
        local = (idx - lo).T
        inside = map_coordinates(sub, local, order=0, mode="constant", cval=0.0).reshape(shape2) > 0.5
        if inside.any():
            rgb[_edge(inside)] = colour
        if dist is not None and margin > 0:
            d = map_coordinates(dist, local, order=1, mode="constant", cval=1e3).reshape(shape2)
            ring = _edge(d <= margin)
            if ring.any():
                rr, cc = np.nonzero(ring)
                dashed = ((rr + cc) // 3) % 2 == 0        # a dashed look: every other run of 3 pixels
                rgb[rr[dashed], cc[dashed]] = colour
    for o in others:  # the other needles' cut, under the instrument's
        cut = _seg_dist(pts, o.skin_entry_lps_mm, o.target_lps_mm) <= o.instrument_diameter_mm / 2.0
        rgb[cut] = 0.65 * rgb[cut] + 0.35 * np.asarray(OTHER_INSTRUMENT_COLOR)
    # the instrument's and the screw's cut by the plane (inside their cylinders), blended
    icol, scol = np.asarray(INSTRUMENT_COLOR), np.asarray(SCREW_COLOR)
    r_instr = path.instrument_diameter_mm / 2.0
    in_instr = _seg_dist(pts, path.skin_entry_lps_mm, path.target_lps_mm) <= r_instr
    rgb[in_instr] = 0.5 * rgb[in_instr] + 0.5 * icol
    if path.screw_diameter_mm:
        in_screw = _seg_dist(pts, path.screw_start_lps_mm, path.target_lps_mm) <= path.screw_diameter_mm / 2.0
        rgb[in_screw] = 0.4 * rgb[in_screw] + 0.6 * scol
    _mark_others(rgb, plane, others)  # their projections over the cuts (visible where the needles overlap)
    # the path projected on the plane, dotted, so that it can be found from any slice
    n = max(2, int(path.length_mm / (plane.pixel_mm * 2)))
    line = path.skin_entry_lps_mm + np.linspace(0.0, 1.0, n)[:, None] * (path.target_lps_mm - path.skin_entry_lps_mm)
    rc = np.rint(plane.to_pixel(line)).astype(int)
    ok = (rc[:, 0] >= 0) & (rc[:, 0] < plane.n_rows) & (rc[:, 1] >= 0) & (rc[:, 1] < plane.n_cols)
    rc = rc[ok][::2]
    rgb[rc[:, 0], rc[:, 1]] = icol
    # target and entries when they lie within a pixel of this slice
    for p, colour, size in ((path.target_lps_mm, TARGET_COLOR, 6), (path.skin_entry_lps_mm, ENTRY_COLOR, 4),
                            (path.bone_entry_lps_mm, ENTRY_COLOR, 3)):
        if abs(float((p - plane.centre_lps_mm) @ plane.normal)) <= plane.pixel_mm * 1.5:
            r, c = (int(round(x)) for x in plane.to_pixel(p))
            for dr in range(-size, size + 1):
                for rr, cc in ((r + dr, c), (r, c + dr)):
                    if 0 <= rr < plane.n_rows and 0 <= cc < plane.n_cols:
                        rgb[rr, cc] = colour
    img = Image.fromarray(np.rint(rgb * 255).astype(np.uint8), "RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _mark_others(rgb: np.ndarray, plane: Plane, others) -> None:
    """Draw the projections of the other needles of :func:`render_slice` (dotted path, target cross) into *rgb*
    (rows, cols, 3) of *plane*."""
    ocol = np.asarray(OTHER_INSTRUMENT_COLOR)
    for o in others:
        n = max(2, int(o.length_mm / (plane.pixel_mm * 2)))
        line = o.skin_entry_lps_mm + np.linspace(0.0, 1.0, n)[:, None] * (o.target_lps_mm - o.skin_entry_lps_mm)
        rc = np.rint(plane.to_pixel(line)).astype(int)
        ok = (rc[:, 0] >= 0) & (rc[:, 0] < plane.n_rows) & (rc[:, 1] >= 0) & (rc[:, 1] < plane.n_cols)
        rc = rc[ok][::4]
        rgb[rc[:, 0], rc[:, 1]] = ocol
        # rounded half up (a page's Math.round): a mirrored bipedicular target often projects on a half pixel
        r, c = (int(np.floor(x + 0.5)) for x in plane.to_pixel(o.target_lps_mm))
        for d in range(-3, 4):
            for rr, cc in ((r + d, c + d), (r + d, c - d)):
                if 0 <= rr < plane.n_rows and 0 <= cc < plane.n_cols:
                    rgb[rr, cc] = ocol


def offset_range_mm(view: str, path: PathSpec, volume, fov_mm: float = FOV_MM) -> tuple[float, float, float]:
    """(lowest, highest, step) offset (mm) of *view*'s slices: the CT's extent along the plane's normal around
    the plane's centre, within +/- *fov_mm* / 2 widened to reach the skin entry, the bone entry and the target
    with :data:`osteoplan.views.geometry.PATH_MARGIN_MM` (a long path can be scrolled along whole), by the CT's
    voxel size along that normal (at least 0.5 mm)."""
    p = slice_plane(path, view)
    nrm = p.normal
    shape = np.asarray(volume.shape, float)
    corners = np.array([[k, j, i] for k in (0, shape[0] - 1) for j in (0, shape[1] - 1) for i in (0, shape[2] - 1)])
    along = (volume.index_to_world(corners) - p.centre_lps_mm) @ nrm
    on_path = (np.stack([path.skin_entry_lps_mm, path.bone_entry_lps_mm, path.target_lps_mm]) - p.centre_lps_mm) @ nrm
    reach_lo = min(-fov_mm / 2, float(on_path.min()) - PATH_MARGIN_MM)
    reach_hi = max(fov_mm / 2, float(on_path.max()) + PATH_MARGIN_MM)
    lo, hi = max(float(along.min()), reach_lo), min(float(along.max()), reach_hi)
    per_mm = np.linalg.inv(volume.affine[:3, :3]) @ nrm     # index change per mm along the normal
    step = max(0.5, 1.0 / float(np.max(np.abs(per_mm))))
    return (np.floor(lo / step) * step, np.ceil(hi / step) * step, step)
