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

_ALPHA = {"bone": 0.2, "mandible": 0.25, "vertebrae_C1": 0.3, "vertebrae_C2": 0.3, "vertebrae_C3": 0.3,
          "spinal_canal": 0.3, "airway": 0.2, "pharynx": 0.2, "trachea": 0.2, "larynx": 0.2}


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
        Half-size of the cube around the target that is shown.
    elev_deg, azim_deg : float
        Camera (matplotlib): azimuth -90 looks from anterior, larger values turn towards the patient's left.
    others : tuple of PathSpec
        The plan's other needles, drawn too; the cube is then centred on the needles' targets and grown to
        hold them all. The vertebra of each path's level (``vertebrae_L1``...) is drawn when segmented.

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
        half_size_mm = max(half_size_mm, max(float(np.abs(p.target_lps_mm - centre).max()) for p in paths) + 30.0)
    crop = _Crop(volume, centre, half_size_mm)
    fig = new_figure(5.6, 5.8)
    fig._osteoplan_dark = False
    ax = fig.add_axes((0.0, 0.1, 1.0, 0.84), projection="3d")
    # draw in the order added (structures, then the screw and path on top) rather than by depth, so the
    # screw is never hidden by the translucent bone around it
    ax.computed_zorder = False
    handles = []
    levels = tuple(f"vertebrae_{p.level}" for p in paths if getattr(p, "level", None))
    for name in SURFACE_STRUCTURES + tuple(dict.fromkeys(n for n in levels if n not in SURFACE_STRUCTURES)):
        if labelmap is None or not labelmap.has(name):
            continue
        if name == "bone" and any(labelmap.has(v) for v in ("vertebrae_C2",)):
            pass
        mesh = surface_mesh(crop.mask(labelmap.get(name)), crop.volume, step=2 if name != "bone" else 3)
        if mesh is None:
            continue
        verts, faces = mesh
        col = structure_color(name)
        tri = verts[faces]
        nrm = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-9)
        shade = 0.35 + 0.65 * np.abs(nrm @ _LIGHT)
        fc = np.clip(np.asarray(col)[None, :] * shade[:, None], 0, 1)
        alpha = _ALPHA.get(name, 0.3 if name.startswith("vertebrae_") else 0.85)  # bone translucent: needles inside
        pc = Poly3DCollection(tri, facecolors=np.c_[fc, np.full(len(fc), alpha)],
                              edgecolors="none")
        ax.add_collection3d(pc)
        handles.append(Line2D([], [], color=hex_color(col), lw=4, label=t(name, lang)))
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
    # LPS axis ends: x -> L, y -> P, z -> S
    for (vec, pos_l, neg_l) in visible_axis_labels(elev_deg, azim_deg):
        v = np.asarray(vec, float) * half_size_mm * 0.95
        ax.text(*(centre + v), pos_l, color="black", fontsize=13, fontweight="bold", ha="center")
        ax.text(*(centre - v), neg_l, color="black", fontsize=13, fontweight="bold", ha="center")
    title = t("view_3d", lang)
    if path is not None and not path.feasible:
        title = t(getattr(path, "banner_key", "near_miss_banner"), lang) + "\n" + title
    ax.set_title(title, fontsize=10.5, color="black" if path is None or path.feasible else "#cc0000")
    from osteoplan.views.render import layout_with_legend

    layout_with_legend(fig, ax, handles, image_in=5.4, text_color="black")
    return fig


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
