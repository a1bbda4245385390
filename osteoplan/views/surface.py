"""Offscreen 3D surface view of bone, vessels, airway, lesion and the screw (marching cubes + matplotlib).

The camera looks from anterior (the patient faces the reader), slightly from above and from the
patient's left, so patient left is on the image right as in the other views; the LPS axes are
labelled at their ends (R/L, A/P, S/I).
"""

from __future__ import annotations

import numpy as np

from osteoplan.imaging.volume import Volume
from osteoplan.views.colors import (ENTRY_COLOR, INSTRUMENT_COLOR, SCREW_COLOR, TARGET_COLOR, hex_color,
                                    structure_color)
from osteoplan.views.geometry import PathSpec

#: Structures drawn in 3D when segmented (bone first, translucent).
SURFACE_STRUCTURES = ("vertebrae_C1", "vertebrae_C2", "vertebrae_C3", "bone", "mandible", "lesion", "spinal_canal",
                      "vertebral_artery_left", "vertebral_artery_right", "vertebral_artery_canal_left",
                      "vertebral_artery_canal_right", "common_carotid_artery_left",
                      "common_carotid_artery_right", "internal_carotid_artery_left", "internal_carotid_artery_right",
                      "internal_jugular_vein_left", "internal_jugular_vein_right", "airway", "pharynx", "trachea",
                      "larynx", "esophagus")

#: Parts of the airway (segmented separately when the larynx is found): the airway is their union, and is drawn
#: only where none of them is, so that one lumen is not drawn (and named) twice.
AIRWAY_PARTS = ("pharynx", "larynx", "trachea")

_ALPHA = {"bone": 0.2, "mandible": 0.25, "vertebrae_C1": 0.3, "vertebrae_C2": 0.3, "vertebrae_C3": 0.3,
          "spinal_canal": 0.3, "airway": 0.2, "pharynx": 0.2, "trachea": 0.2, "larynx": 0.2}


#: Opacity of the target bone (the vertebra of the paths' level) and of the lesion: drawn over the structures
#: around them (:func:`_draw_rank`), the target bone translucent enough to show the lesion and the screw inside it.
TARGET_ALPHA = {"target": 0.45, "lesion": 0.9}


def _draw_rank(name: str, targets: set[str], depth_mm: float) -> tuple[int, float]:
    """Drawing order of a surface in the 3D view (sorted ascending: drawn first = painted over).

    matplotlib draws the collections in the order given (``computed_zorder=False``, so that the path is never
    hidden), not by depth: the surfaces are painted back to front by the depth of their centroid along the line of
    sight (*depth_mm*, larger = nearer the viewer), then the target bone and the lesion inside it last, so that
    the spinal canal behind C2 or the translucent pharynx in front of it does not paint over what is treated.
    """
    return (2 if name == "lesion" else 1 if name in targets else 0, depth_mm)


#: Light direction (LPS, towards the light): from anterior, above and the patient's left.
_LIGHT = np.array([0.35, -0.85, 0.4]) / np.linalg.norm([0.35, -0.85, 0.4])


def _cylinder(p0: np.ndarray, p1: np.ndarray, radius: float, n: int = 16) -> list[np.ndarray]:
    d = p1 - p0
    length = np.linalg.norm(d)
    d = d / length
    a = np.cross(d, [0, 0, 1.0]) if abs(d[2]) < 0.9 else np.cross(d, [1.0, 0, 0])
    a /= np.linalg.norm(a)
    b = np.cross(d, a)
    ang = np.linspace(0, 2 * np.pi, n + 1)
    ring = radius * (np.cos(ang)[:, None] * a + np.sin(ang)[:, None] * b)
    return [np.array([p0 + ring[i], p0 + ring[i + 1], p1 + ring[i + 1], p1 + ring[i]]) for i in range(n)]


def surface_mesh(mask: np.ndarray, volume: Volume, step: int = 2) -> tuple[np.ndarray, np.ndarray] | None:
    """Marching-cubes surface of a mask (K, J, I) in LPS mm: (vertices (V, 3), faces (F, 3)) or None if empty."""
    from skimage.measure import marching_cubes

    m = np.asarray(mask, bool)
    if m.sum() < 8:
        return None
    pad = np.pad(m, 1).astype(np.float32)
    try:
        verts, faces, _, _ = marching_cubes(pad, level=0.5, step_size=step)
    except (ValueError, RuntimeError):
        return None
    verts = volume.index_to_world(verts - 1.0)
    return verts, faces


def visible_axis_labels(elev_deg: float, azim_deg: float, max_cos: float = 0.8):
    """LPS axes worth labelling in a 3D view: those not pointing (nearly) at the viewer.

    An axis within ~37 deg of the line of sight (``|cos| > max_cos``) would put both of its end labels
    near the image centre (e.g. A and P over the spine in a view from the front), which misleads;
    it is left out.

    Returns
    -------
    list of ((x, y, z) unit axis in LPS, positive-end label, negative-end label)
    """
    e, a = np.radians(elev_deg), np.radians(azim_deg)
    eye = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])  # matplotlib's camera direction
    axes = (((1, 0, 0), "L", "R"), ((0, 1, 0), "P", "A"), ((0, 0, 1), "S", "I"))
    return [ax for ax in axes if abs(float(np.dot(eye, ax[0]))) <= max_cos]


def path_cube(paths, anchor_lps_mm: np.ndarray, min_half_size_mm: float,
              margin_mm: float | None = None) -> tuple[np.ndarray, float]:
    """Centre and half-size (mm) of the 3D view's cube: every path's skin entry, bone entry, target and screw head
    inside with *margin_mm* plus the instrument's radius, the cube moved as little as possible from *anchor_lps_mm*
    and no smaller than *min_half_size_mm* (the rule of :func:`osteoplan.views.geometry.fit_square_frame`, per axis).
    """
    from osteoplan.views.geometry import PATH_MARGIN_MM, path_points_lps

    paths = list(paths)
    margin = (PATH_MARGIN_MM if margin_mm is None else float(margin_mm)) + max(
        p.instrument_diameter_mm for p in paths) / 2.0
    pts = path_points_lps(paths)
    lo, hi = pts.min(axis=0) - margin, pts.max(axis=0) + margin
    half = max(float(min_half_size_mm), float(np.max(hi - lo)) / 2.0)
    return np.clip(np.asarray(anchor_lps_mm, float), hi - half, lo + half), half


def render_3d(volume: Volume, labelmap, path: PathSpec | None, **kwargs) -> bytes:
    """PNG bytes of :func:`surface_figure` (same parameters)."""
    from osteoplan.views.render import figure_png

    return figure_png(surface_figure(volume, labelmap, path, **kwargs))


def surface_figure(volume: Volume, labelmap, path: PathSpec | None, *, lang: str = "en", half_size_mm: float = 45.0,
                   elev_deg: float = 15.0, azim_deg: float = -70.0, others: tuple[PathSpec, ...] = ()):
    """The 3D surface scene around the target (matplotlib Figure).

    The instrument (trocar, skin to target) is a translucent cyan cylinder at its real diameter and the
    screw a solid cylinder, with the same legend entries as the 2D views.

    Parameters
    ----------
    volume : Volume
    labelmap : LabelMap
        Structures of :data:`SURFACE_STRUCTURES` that were segmented are drawn.
    path : PathSpec, optional
        Trajectory (line), instrument and screw (cylinder at real diameter).
    half_size_mm : float
        Smallest half-size of the cube around the target that is shown; the cube grows and moves to hold every
        path whole, skin entry to target (:func:`path_cube`).
    elev_deg, azim_deg : float
        Camera (matplotlib): azimuth -90 looks from anterior, larger values turn towards the patient's left.
    others : tuple of PathSpec
        The plan's other needles, drawn too; the cube is then anchored on the needles' targets' centroid and
        holds them all. The vertebra of each path's level (``vertebrae_L1``...) is drawn when segmented.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.lines import Line2D
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    from osteoplan.views.i18n import t
    from osteoplan.views.reformat import _Crop
    from osteoplan.views.render import new_figure, path_legend_handles

    paths = ([path] if path is not None else []) + list(others)
    centre = path.target_lps_mm if path is not None else volume.index_to_world(np.asarray(volume.shape) / 2.0)
    if others:
        centre = np.mean([p.target_lps_mm for p in paths], axis=0)
    if paths:  # the cube holds every path whole, skin entry to target, with a margin (as the 2D views)
        centre, half_size_mm = path_cube(paths, centre, half_size_mm)
    crop = _Crop(volume, centre, half_size_mm)
    fig = new_figure(5.6, 5.8)
    fig._osteoplan_dark = False
    ax = fig.add_axes((0.0, 0.1, 1.0, 0.84), projection="3d")
    # draw in the order added (structures, then the screw and path on top) rather than by depth, so the
    # screw is never hidden by the translucent bone around it
    ax.computed_zorder = False
    handles = []
    levels = tuple(f"vertebrae_{p.level}" for p in paths if getattr(p, "level", None))
    targets = set(levels) or {"vertebrae_C2"}  # the target bone: the paths' levels (C2 for the dens screw)
    eye = np.array([np.cos(np.radians(elev_deg)) * np.cos(np.radians(azim_deg)),
                    np.cos(np.radians(elev_deg)) * np.sin(np.radians(azim_deg)), np.sin(np.radians(elev_deg))])
    surfaces = []
    for name in SURFACE_STRUCTURES + tuple(dict.fromkeys(n for n in levels if n not in SURFACE_STRUCTURES)):
        if labelmap is None or not labelmap.has(name):
            continue
        mask = crop.mask(labelmap.get(name))
        if name == "airway":  # the union of its parts: drawn (and named) only where no part is
            for part in AIRWAY_PARTS:
                if labelmap.has(part):
                    mask = mask & ~crop.mask(labelmap.get(part))
        mesh = surface_mesh(mask, crop.volume, step=2 if name != "bone" else 3)
        if mesh is None:
            continue
        verts, faces = mesh
        col = structure_color(name)
        tri = verts[faces]
        nrm = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-9)
        shade = 0.35 + 0.65 * np.abs(nrm @ _LIGHT)
        fc = np.clip(np.asarray(col)[None, :] * shade[:, None], 0, 1)
        alpha = TARGET_ALPHA.get(name if name in ("lesion",) else ("target" if name in targets else ""),
                                 _ALPHA.get(name, 0.3 if name.startswith("vertebrae_") else 0.85))
        pc = Poly3DCollection(tri, facecolors=np.c_[fc, np.full(len(fc), alpha)],
                              edgecolors="none")
        pc.set_gid(name)  # which structure this surface is (the legend names exactly the surfaces drawn)
        surfaces.append((_draw_rank(name, targets, float(verts.mean(axis=0) @ eye)), pc))
        handles.append(Line2D([], [], color=hex_color(col), lw=4, label=t(name, lang)))
    for _, pc in sorted(surfaces, key=lambda x: x[0]):  # back to front, the target bone and lesion last
        ax.add_collection3d(pc)
    for p in paths:
        _draw_path_3d(ax, p, label=p.short_label if others else None)
    if path is not None:
        handles += path_legend_handles(path, lang)
    lo = centre - half_size_mm
    hi = centre + half_size_mm
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_zlim(lo[2], hi[2])
    ax.set_box_aspect((1, 1, 1), zoom=1.35)
    ax.view_init(elev=elev_deg, azim=azim_deg)
    ax.set_axis_off()
    title = t("view_3d", lang)
    if path is not None and not path.feasible:
        title = t(getattr(path, "banner_key", "near_miss_banner"), lang) + "\n" + title
    from osteoplan.views.render import LETTER_GUTTER_IN, layout_with_legend

    ax.set_title(title, fontsize=10.5, color="black" if path is None or path.feasible else "#cc0000",
                 pad=4 + 72 * LETTER_GUTTER_IN)
    layout_with_legend(fig, ax, handles, image_in=5.4, text_color="black", gutter_in=LETTER_GUTTER_IN)
    fig._osteoplan_labels = draw_axis_letters(ax, centre, half_size_mm, elev_deg, azim_deg, lang=lang)
    return fig


def draw_axis_letters(ax, centre_lps_mm: np.ndarray, half_size_mm: float, elev_deg: float,
                      azim_deg: float, lang: str = "en") -> dict[str, tuple[float, float]]:
    """Write the patient-axis letters of a 3D view outside its image, each where its axis leaves the picture.

    Each visible LPS axis (:func:`visible_axis_labels`) is projected through the camera from the scene's centre;
    its end letters (L and R, S and I) are written just outside the image box where the projected axis, prolonged,
    crosses the box's edge, set at the middle of that edge (R and L at the same height, S and I at the same
    abscissa; the side is the one the prolonged axis meets, so the letter is unambiguous), and
    in the band around the image (:data:`osteoplan.views.render.LETTER_GUTTER_IN`), so it hides no structure.
    Call it once the figure has its final size (after :func:`osteoplan.views.render.layout_with_legend`).
    The letters are written for *lang* (:func:`osteoplan.locale_fmt.orientation_letters`: French D / G).

    Returns
    -------
    dict
        Letter (as written) -> (x, y) position in axes fraction of the edge point it is written beside.
    """
    from mpl_toolkits.mplot3d import proj3d

    from osteoplan.locale_fmt import orientation_letters as letters_for

    proj = ax.get_proj()

    def screen(p):
        x, y, _ = proj3d.proj_transform(p[0], p[1], p[2], proj)
        return np.asarray(ax.transData.transform((x, y)), float)

    # the box the letters go around: the projected cube (every surface lies inside it), within the axes
    centre = np.asarray(centre_lps_mm, float)
    corners = np.array([screen(centre + half_size_mm * np.array([a, b, c_]))
                        for a in (-1, 1) for b in (-1, 1) for c_ in (-1, 1)])
    bb = ax.bbox
    x0, y0 = max(corners[:, 0].min(), bb.x0), max(corners[:, 1].min(), bb.y0)
    x1, y1 = min(corners[:, 0].max(), bb.x1), min(corners[:, 1].max(), bb.y1)
    c = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])
    to_axes = ax.transAxes.inverted()
    out: dict[str, tuple[float, float]] = {}
    for vec, pos_l, neg_l in visible_axis_labels(elev_deg, azim_deg):
        for sign, letter in ((1.0, pos_l), (-1.0, neg_l)):
            d = screen(centre + sign * np.asarray(vec, float) * half_size_mm) - screen(centre)
            dn = np.array([d[0] / ((x1 - x0) / 2.0), d[1] / ((y1 - y0) / 2.0)])
            if np.max(np.abs(dn)) < 1e-9:
                continue
            edge = dn / np.max(np.abs(dn))            # where the prolonged axis meets the box, in [-1, 1]^2
            horizontal = abs(edge[0]) >= abs(edge[1]) - 1e-9
            # a letter beside a side of the box sits at the box's mid-height (R and L level with each other),
            # one above or below it at its mid-width: the side is the one the prolonged axis meets
            edge = np.array([np.sign(edge[0]), 0.0]) if horizontal else np.array([0.0, np.sign(edge[1])])
            xy = tuple(to_axes.transform(c + edge * np.array([(x1 - x0) / 2.0, (y1 - y0) / 2.0])))
            off = (4.0 * np.sign(edge[0]), 0.0) if horizontal else (0.0, 4.0 * np.sign(edge[1]))
            ha = ("left" if edge[0] > 0 else "right") if horizontal else "center"
            va = "center" if horizontal else ("bottom" if edge[1] > 0 else "top")
            letter = letters_for(letter, lang)
            ax.annotate(letter, xy=xy, xycoords="axes fraction", xytext=off, textcoords="offset points", ha=ha,
                        va=va, color="black", fontsize=12, fontweight="bold", annotation_clip=False)
            out[letter] = (float(xy[0]), float(xy[1]))
    return out


def _draw_path_3d(ax, path: PathSpec, label: str | None = None) -> None:
    """The instrument (translucent cylinder at its real diameter), the screw, entries and target of one path."""
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    trocar = Poly3DCollection(_cylinder(path.skin_entry_lps_mm, path.target_lps_mm,
                                        path.instrument_diameter_mm / 2), facecolor=INSTRUMENT_COLOR,
                              edgecolor="none", alpha=0.35)
    trocar.set_zorder(45)
    ax.add_collection3d(trocar)
    ax.plot(*np.stack([path.skin_entry_lps_mm, path.target_lps_mm]).T, color=hex_color(INSTRUMENT_COLOR), lw=1.0,
            zorder=46)
    if path.screw_diameter_mm:
        quads = _cylinder(path.screw_start_lps_mm, path.target_lps_mm, path.screw_diameter_mm / 2)
        # the screw colour, shaded a little so that the cylinder reads as a solid on the white background
        screw = Poly3DCollection(quads, facecolor=np.asarray(SCREW_COLOR) * 0.6, edgecolor=(0.3, 0.3, 0.35),
                                 alpha=1.0, linewidths=0.3)
        screw.set_zorder(50)
        ax.add_collection3d(screw)
    ax.scatter(*path.skin_entry_lps_mm, color=hex_color(ENTRY_COLOR), s=20, zorder=51)
    ax.scatter(*path.bone_entry_lps_mm, facecolors="none", edgecolors=hex_color(ENTRY_COLOR), s=20, marker="s",
               zorder=51)
    ax.scatter(*path.target_lps_mm, color=hex_color(TARGET_COLOR), s=30, marker="+", zorder=51)
    if label:
        ax.text(*path.skin_entry_lps_mm, " " + label, color="black", fontsize=9, fontweight="bold", zorder=52)
