"""Shared drawing helpers: figure to PNG, orientation letters, scale bar, CT window."""

from __future__ import annotations

import io

import numpy as np

#: CT display window (level, width) in HU for bone + soft tissue planning views. Configurable default.
DEFAULT_WINDOW_HU = (300.0, 1600.0)


def new_figure(width_in: float = 5.4, height_in: float = 5.8, dpi: int = 110):
    """A matplotlib Figure on the Agg canvas (no pyplot state; safe in servers and threads)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


#: zlib level of the PNGs written by :func:`figure_png`: level 3 of the opaque RGB image gives files about
#: the size matplotlib's default (RGBA, level 6) did, 2-3 times faster (CThead views, measured).
PNG_COMPRESS_LEVEL = 3


def figure_png(fig) -> bytes:
    """Render a Figure to PNG bytes (8-bit RGB; RGBA only when some pixel is not opaque).

    The figure is drawn by Agg exactly as ``fig.savefig(format="png")`` draws it (same dpi, face colour); the
    pixels are then encoded by Pillow at :data:`PNG_COMPRESS_LEVEL` without the alpha channel of an opaque
    figure (every figure here has an opaque face), which also spares WeasyPrint splitting it off again.
    """
    import matplotlib
    from PIL import Image, PngImagePlugin

    face = "black" if _dark(fig) else "white"
    raw = io.BytesIO()
    fig.savefig(raw, format="rgba", dpi=fig.dpi, facecolor=face)
    w, h = (int(v) for v in fig.canvas.get_renderer().get_canvas_width_height())
    if raw.getbuffer().nbytes != w * h * 4:  # e.g. a "tight" bounding box set in matplotlib's rc: its own PNG
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=fig.dpi, facecolor=face)
        return buf.getvalue()
    rgba = np.frombuffer(raw.getbuffer(), dtype=np.uint8).reshape(h, w, 4)
    img = Image.fromarray(np.ascontiguousarray(rgba[..., :3]) if rgba[..., 3].min() == 255 else rgba)
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/")
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL, pnginfo=info, dpi=(fig.dpi, fig.dpi))
    return buf.getvalue()


def _dark(fig) -> bool:
    return getattr(fig, "_osteoplan_dark", True)


_LETTERS = {0: ("R", "L"), 1: ("A", "P"), 2: ("I", "S")}


def orientation_letters(vec_lps: np.ndarray, threshold: float = 0.35) -> str:
    """Letters naming an LPS direction, dominant axis first (e.g. ``(0.9, -0.4, 0)`` -> ``"LA"``).

    Parameters
    ----------
    vec_lps : (3,) array
        Direction in LPS (x -> patient left, y -> posterior, z -> superior).
    threshold : float
        Components of the unit vector smaller than this (absolute) are not named.
    """
    v = np.asarray(vec_lps, float)
    v = v / np.linalg.norm(v)
    order = np.argsort(-np.abs(v))
    out = ""
    for a in order:
        if abs(v[a]) >= threshold or not out:
            out += _LETTERS[int(a)][1 if v[a] > 0 else 0]
    return out


def window(img_hu: np.ndarray, level: float, width: float) -> np.ndarray:
    """Map HU to [0, 1] with a (level, width) window."""
    lo = level - width / 2.0
    return np.clip((np.asarray(img_hu, float) - lo) / width, 0.0, 1.0)


#: Width (inches) of the band around an image that holds its orientation letters (:func:`draw_orientation` with
#: ``outside=True``, :func:`layout_with_legend`'s ``gutter_in``): three bold letters at 12 pt (an oblique edge) fit.
LETTER_GUTTER_IN = 0.42


def draw_orientation(ax, right_vec: np.ndarray, down_vec: np.ndarray, color: str = "white",
                     outside: bool = False, lang: str = "en") -> dict[str, str]:
    """Write orientation letters at the four edges of an image axes; returns {edge: letters}.

    ``right_vec`` is the LPS direction of increasing image column, ``down_vec`` of increasing row.
    ``outside=True`` writes each letter just outside the middle of its edge, in the band that
    :func:`layout_with_legend` keeps around the image with ``gutter_in=LETTER_GUTTER_IN`` (the letters then hide
    no anatomy); otherwise inside the image at its edges. The letters are written for *lang*
    (:func:`osteoplan.locale_fmt.orientation_letters`: French D / G for the patient's right / left, A, P, S, I
    unchanged), as the returned labels are.
    """
    import matplotlib.patheffects as pe

    from osteoplan.locale_fmt import orientation_letters as letters_for

    r = np.asarray(right_vec, float)
    d = np.asarray(down_vec, float)
    labels = {"right": orientation_letters(r), "left": orientation_letters(-r),
              "bottom": orientation_letters(d), "top": orientation_letters(-d)}
    labels = {edge: letters_for(text, lang) for edge, text in labels.items()}
    if outside:
        gap = 3.0  # points between the image edge and the letter
        pos = {"right": ((1.0, 0.5), (gap, 0), "left", "center"), "left": ((0.0, 0.5), (-gap, 0), "right", "center"),
               "top": ((0.5, 1.0), (0, gap), "center", "bottom"), "bottom": ((0.5, 0.0), (0, -gap), "center", "top")}
        for edge, text in labels.items():
            xy, off, ha, va = pos[edge]
            ax.annotate(text, xy=xy, xycoords="axes fraction", xytext=off, textcoords="offset points", ha=ha,
                        va=va, color=color, fontsize=12, fontweight="bold", annotation_clip=False, zorder=20)
        return labels
    pos = {"right": (0.985, 0.5, "right", "center"), "left": (0.015, 0.5, "left", "center"),
           "top": (0.5, 0.985, "center", "top"), "bottom": (0.5, 0.015, "center", "bottom")}
    for edge, text in labels.items():
        x, y, ha, va = pos[edge]
        ax.text(x, y, text, transform=ax.transAxes, ha=ha, va=va, color=color, fontsize=13, fontweight="bold",
                path_effects=[pe.withStroke(linewidth=3, foreground="black")], zorder=20)
    return labels


#: Gap (points) between an image's bottom edge and its scale bar, and the bar's line width (points): the bar and
#: its label lie in the band of :data:`LETTER_GUTTER_IN` below the image (:func:`draw_scale_bar`).
SCALE_BAR_GAP_PT = 3.0
SCALE_BAR_LW_PT = 3.0


def draw_scale_bar(ax, length: float, color: str = "white", label: str | None = None) -> list:
    """A horizontal scale bar of *length* (x data units of *ax*: mm on a reformat, pixels on a fluoroscopy view)
    drawn in the band below the image, from its bottom-left corner: never over the anatomy.

    One rule for every 2D view: the bar and its label (above the bar) lie in the band of :data:`LETTER_GUTTER_IN`
    that :func:`layout_with_legend` keeps around the image for the orientation letters, left-aligned with the
    image, where the bottom letter (centred) is not; a bar is at most 0.35 of the image width
    (:func:`nice_length`: the smallest 1-2-5 length of at least 0.7 of a fifth of the span), so the two never meet. Its length is in the image's x data units, hence exact whatever
    the figure's size.

    Returns
    -------
    list of the drawn artists (line, label), each with gid ``"scale_bar"``.
    """
    import matplotlib.patheffects as pe
    from matplotlib.transforms import ScaledTranslation, blended_transform_factory

    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    x0 = min(xlim)
    below = blended_transform_factory(ax.transData, ax.transAxes)
    label_size = 9.0
    y_bar_pt = SCALE_BAR_GAP_PT + label_size * 1.25 + SCALE_BAR_LW_PT  # label on top, then the bar
    bar_tr = below + ScaledTranslation(0, -y_bar_pt / 72.0, ax.figure.dpi_scale_trans)
    text_tr = below + ScaledTranslation(0, -SCALE_BAR_GAP_PT / 72.0, ax.figure.dpi_scale_trans)
    line, = ax.plot([x0, x0 + length], [0.0, 0.0], color=color, lw=SCALE_BAR_LW_PT, solid_capstyle="butt",
                    zorder=21, transform=bar_tr, clip_on=False,
                    path_effects=[pe.withStroke(linewidth=SCALE_BAR_LW_PT + 2, foreground="black")])
    text = ax.text(x0 + length / 2, 0.0, label or f"{length:g} mm", color=color, ha="center", va="top",
                   fontsize=label_size, zorder=21, transform=text_tr, clip_on=False)
    for a in (line, text):
        a.set_gid("scale_bar")
    ax.set_xlim(xlim)  # the bar is outside the image: it must not widen the axes
    ax.set_ylim(ylim)
    return [line, text]


def nice_length(span_mm: float) -> float:
    """A round scale-bar length about a fifth of ``span_mm`` (1, 2, 5 x 10^n)."""
    target = span_mm / 5.0
    p = 10 ** np.floor(np.log10(target))
    for m in (1, 2, 5, 10):
        if m * p >= target * 0.7:
            return float(m * p)
    return float(10 * p)


def layout_with_legend(fig, ax, handles, *, image_in: float = 5.2, title_in: float = 0.35, note_in: float = 0.0,
                       ncol: int = 3, text_color: str = "white", gutter_in: float = 0.0) -> None:
    """Resize the figure so that the image keeps ``image_in`` inches and the legend gets its own rows below.

    The legend never overlaps the image (its height grows with the number of entries). ``gutter_in``: a band
    of that width kept free on the four sides of the image for the orientation letters
    (:func:`draw_orientation` with ``outside=True``); the title and the note below the image lie outside it.
    """
    seen: set[str] = set()
    uniq = []
    for h in handles:  # one entry per label (e.g. all vertebrae share "vertebrae")
        if h.get_label() not in seen:
            seen.add(h.get_label())
            uniq.append(h)
    handles = uniq
    # as many columns as fit the width: legend columns are filled top to bottom, each as wide as its longest
    # label (about 0.053 in per character at 7.5 pt, measured) plus the handle and spacing (0.45 in)
    def fits(n: int) -> bool:
        per = -(-len(handles) // n)
        cols = [handles[i:i + per] for i in range(0, len(handles), per)]
        return sum(0.053 * max(len(h.get_label()) for h in c) + 0.45 for c in cols) <= image_in + 0.1

    ncol = next((n for n in range(ncol, 0, -1) if fits(n)), 1) if handles else ncol
    legend_in = 0.12
    if handles:
        # the legend's height is measured once drawn (its rows are 7.5 pt text or the tallest marker, in points:
        # independent of the figure's size), so the band below the image is as tall as the legend, no more
        legend = fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=7.5, frameon=False,
                            labelcolor=text_color, bbox_to_anchor=(0.5, 0.0), borderaxespad=0.2, handlelength=1.6,
                            columnspacing=1.0)
        legend_in = legend.get_window_extent(fig.canvas.get_renderer()).height / fig.dpi + 0.08
    g = float(gutter_in)
    w = image_in + 0.2 + 2.0 * g
    h = image_in + title_in + note_in + legend_in + 2.0 * g
    fig.set_size_inches(w, h)
    ax.set_position(((0.1 + g) / w, (legend_in + note_in + g) / h, image_in / w, image_in / h))


def draw_not_feasible_banner(ax, lang: str = "en", key: str = "near_miss_banner") -> None:
    """Red banner across the top of an image: the drawn path is NOT a feasible plan (*key*: its i18n text)."""
    from osteoplan.views.i18n import t

    ax.text(0.5, 0.93, t(key, lang), transform=ax.transAxes, ha="center", va="top", color="white",
            fontsize=10, fontweight="bold", zorder=30,
            bbox={"boxstyle": "square,pad=0.3", "fc": "#cc0000", "ec": "none", "alpha": 0.9})


def _axis_phrase(vec: np.ndarray, horizontal: bool, min_cos: float) -> str | None:
    """i18n key naming where a patient direction lies along one image axis, or None when oblique.

    ``vec`` is the LPS direction of image right (``horizontal``) or image up.
    """
    v = np.asarray(vec, float) / np.linalg.norm(vec)
    a = int(np.argmax(np.abs(v)))
    if abs(v[a]) < min_cos:
        return None
    pos = v[a] > 0          # the positive LPS end (L, P, S) is at image right / image up
    if horizontal:
        return {0: "orient_pleft_right" if pos else "orient_pleft_left",
                1: "orient_anterior_left" if pos else "orient_anterior_right",
                2: "orient_head_right" if pos else "orient_head_left"}[a]
    return {0: "orient_pleft_up" if pos else "orient_pleft_down",
            1: "orient_anterior_down" if pos else "orient_anterior_up",
            2: "orient_head_up" if pos else "orient_head_down"}[a]


def orientation_caption(right_vec, down_vec, lang: str = "en", min_cos: float = 0.9) -> str:
    """The orientation of an image in words, e.g. ``"anterior left, head up"``.

    Parameters
    ----------
    right_vec, down_vec : (3,) arrays
        LPS directions of increasing image column (image right) and increasing row (image down).
    lang : ``"en"`` or ``"fr"``
    min_cos : float
        An image axis is named only when it lies within ``arccos(min_cos)`` (26° by default) of a patient
        axis; otherwise the caption says the plane is oblique and the edge letters give the directions.

    Returns
    -------
    str
        Horizontal phrase, vertical phrase (``"patient left on image right, head up"``), or the oblique note.
    """
    from osteoplan.views.i18n import t

    h = _axis_phrase(np.asarray(right_vec, float), True, min_cos)
    v = _axis_phrase(-np.asarray(down_vec, float), False, min_cos)
    if h is None and v is None:
        return t("orient_oblique", lang)
    parts = [t(k, lang) for k in (h, v) if k is not None]
    if h is None or v is None:
        parts.append(t("orient_other_oblique", lang))
    return ", ".join(parts)


def path_legend_handles(path, lang: str = "en", *, screw: bool = True, points: bool = True,
                        projected_points: tuple[str, ...] = ()) -> list:
    """Legend entries of the planned path, identical on every view: instrument, screw, entry points, target.

    Parameters
    ----------
    path : PathSpec
    lang : ``"en"`` or ``"fr"``
    screw : bool
        Include the screw (when the path has one).
    points : bool or tuple of str
        Include the skin entry, bone entry and target markers (True), none (False), or those named
        (``("target",)`` for a view down the path, where the entries project onto the target).
    projected_points : tuple of str
        Points drawn projected onto a reformat's plane they are not in (:func:`draw_point` with
        ``projected=True``): each gets its own entry, a hollow dotted marker "projected onto this plane".

    Returns
    -------
    list of matplotlib Line2D handles (labels in *lang*).
    """
    from matplotlib.lines import Line2D

    from osteoplan.views.colors import ENTRY_COLOR, INSTRUMENT_COLOR, SCREW_COLOR, TARGET_COLOR, hex_color
    from osteoplan.views.i18n import t

    out = [Line2D([], [], color=hex_color(INSTRUMENT_COLOR), lw=5, alpha=0.6,
                  label=f"{t('instrument', lang)} {path.instrument_diameter_mm:.1f} mm ({t('instrument_path', lang)})")]
    if screw and path.screw_diameter_mm:
        size = f"{path.screw_diameter_mm:.1f}" + (f" × {path.screw_length_mm:g}" if path.screw_length_mm else "")
        import matplotlib.patheffects as pe

        out.append(Line2D([], [], color=hex_color(SCREW_COLOR), lw=4, label=f"{t('screw', lang)} Ø {size} mm",
                          path_effects=[pe.withStroke(linewidth=4 + 2 * SCREW_HALO_PT, foreground="black"),
                                        pe.Normal()]))
    wanted = ("skin_entry", "bone_entry", "target") if points is True else tuple(points or ())
    out += [point_legend_handle(k, lang) for k in POINT_KINDS if k in wanted]
    out += [point_legend_handle(k, lang, projected=True) for k in POINT_KINDS if k in projected_points]
    from osteoplan.locale_fmt import localize_numbers  # French: "Ø 3,5 mm" (displayed text only)

    for h in out:
        h.set_label(localize_numbers(h.get_label(), lang))
    return out


#: The path's points, in legend order.
POINT_KINDS = ("skin_entry", "bone_entry", "target")

#: Markers of the path's points on the 2D views (matplotlib ``Line2D`` keyword arguments, sizes in points): filled
#: circle for the skin entry, open square for the bone entry, cross for the target. Configurable defaults.
POINT_STYLES = {"skin_entry": {"marker": "o", "ms": 5.0, "mfc": "entry", "mec": "entry", "mew": 1.0},
                "bone_entry": {"marker": "s", "ms": 4.0, "mfc": "none", "mec": "entry", "mew": 1.0},
                "target": {"marker": "+", "ms": 12.0, "mfc": "none", "mec": "target", "mew": 2.0}}

#: A point drawn projected onto a plane it is not in: the same shape, hollow, a dotted edge (as the dotted band of
#: a projected path), a little larger so that the dots show (edge dash pattern: on/off in line widths).
PROJECTED_POINT_DASHES = (0, (1.0, 1.0))
PROJECTED_POINT_GROW = 1.6

#: Legend markers are drawn at most this size (points), so that a row stays one text line high.
LEGEND_MARKER_MAX_PT = 8.0

#: Dark halo (points each side) around the screw's outline on the 2D views: the screw is white and bone is
#: white in a bone window; the halo keeps its outline visible on bone (CThead coronal: it was not).
SCREW_HALO_PT = 1.2


def _point_color(name: str) -> str:
    from osteoplan.views.colors import ENTRY_COLOR, TARGET_COLOR, hex_color

    return {"entry": hex_color(ENTRY_COLOR), "target": hex_color(TARGET_COLOR)}.get(name, name)


def point_style(kind: str, legend: bool = False) -> dict:
    """``Line2D`` keyword arguments of an in-plane *kind* point (:data:`POINT_STYLES`, colours resolved); with
    *legend*, the marker capped at :data:`LEGEND_MARKER_MAX_PT`."""
    st = {k: (_point_color(v) if k in ("mfc", "mec") else v) for k, v in POINT_STYLES[kind].items()}
    if legend:
        st["ms"] = min(st["ms"], LEGEND_MARKER_MAX_PT)
    return st


def projected_point_artist(kind: str, xy=None, legend: bool = False):
    """The marker of a *kind* point projected onto a plane it is not in: a ``PathCollection`` (markers with dashed
    edges need a collection) of the same shape as :func:`point_style`, hollow, with a dotted edge.

    Parameters
    ----------
    kind : one of :data:`POINT_KINDS`
    xy : (2,) data coordinates, optional (a legend handle has none)
    legend : bool
        Marker size capped at :data:`LEGEND_MARKER_MAX_PT`.
    """
    from matplotlib.collections import PathCollection
    from matplotlib.markers import MarkerStyle
    from matplotlib.transforms import IdentityTransform

    st = point_style(kind)
    ms = st["ms"] * PROJECTED_POINT_GROW
    if legend:
        ms = min(ms, LEGEND_MARKER_MAX_PT + 1.0)
    mk = MarkerStyle(st["marker"])
    path = mk.get_path().transformed(mk.get_transform())
    art = PathCollection([path], sizes=[ms ** 2], offsets=None if xy is None else np.atleast_2d(xy),
                         facecolors="none", edgecolors=[st["mec"]], linewidths=[max(st["mew"] * 0.75, 1.2)],
                         linestyles=[PROJECTED_POINT_DASHES], zorder=12)
    art.set_transform(IdentityTransform())  # marker sizes in points (as ``Axes.scatter``)
    return art


def draw_point(ax, kind: str, xy, projected: bool = False):
    """Draw one of the path's points on a 2D view: in the plane (:func:`point_style`), or projected onto it
    (:func:`projected_point_artist`: hollow, dotted edge).

    Parameters
    ----------
    ax : matplotlib Axes
    kind : one of :data:`POINT_KINDS`
    xy : (2,) data coordinates (in-plane mm on a reformat, pixels on a fluoroscopy view)
    projected : bool
        The point is not in the displayed plane.

    Returns
    -------
    The artist (``Line2D`` or ``PathCollection``), gid ``kind`` or ``kind + "_projected"``; the legend entry of
    :func:`point_legend_handle` repeats its marker.
    """
    if projected:
        art = projected_point_artist(kind, xy)
        art.set_offset_transform(ax.transData)
        ax.add_collection(art, autolim=False)
    else:
        art, = ax.plot([xy[0]], [xy[1]], ls="none", zorder=12, **point_style(kind))
    art.set_gid(kind + ("_projected" if projected else ""))
    return art


def point_legend_handle(kind: str, lang: str = "en", projected: bool = False):
    """Legend entry of a *kind* point as :func:`draw_point` draws it; a projected one says so."""
    from matplotlib.lines import Line2D

    from osteoplan.views.i18n import t

    if projected:
        h = projected_point_artist(kind, legend=True)
        h.set_label(t(kind + "_projected", lang))
        return h
    return Line2D([], [], ls="none", label=t(kind, lang), **point_style(kind, legend=True))


def end_on_styles() -> dict:
    """Styles of a path seen end-on (the view down the path, the bull's-eye fluoroscopy): the instrument an open
    ring (``Circle`` keyword arguments: edge colour and width), the screw a translucent disc, and the marker
    keyword arguments (``Line2D``) of their legend entries, which repeat them."""
    from osteoplan.views.colors import INSTRUMENT_COLOR, SCREW_COLOR, hex_color

    icol, scol = hex_color(INSTRUMENT_COLOR), hex_color(SCREW_COLOR)
    return {"instrument": {"fill": False, "ec": icol, "lw": 2.0},
            "screw": {"fill": True, "fc": scol, "ec": scol, "alpha": 0.6, "lw": 1.0},
            "instrument_legend": {"marker": "o", "ms": 8, "mfc": "none", "mec": icol, "mew": 2.0},
            "screw_legend": {"marker": "o", "ms": 7, "mfc": scol, "mec": scol, "mew": 1.0, "alpha": 0.6}}


def end_on_legend_handles(path, lang: str = "en") -> list:
    """Legend entries of a view that sees the path end-on, as it draws it (:func:`end_on_styles`): the instrument
    an open circle at its diameter, the screw a filled circle when the path has one, and the target.

    The band entries of the other views (instrument skin to target, screw along it) would name what is not drawn.
    """
    from matplotlib.lines import Line2D

    from osteoplan.locale_fmt import localize_numbers
    from osteoplan.views.i18n import t

    st = end_on_styles()
    out = [Line2D([], [], ls="none", label=t("instrument_end_on", lang).format(d=f"{path.instrument_diameter_mm:.1f}"),
                  **st["instrument_legend"])]
    if path.screw_diameter_mm:
        out.append(Line2D([], [], ls="none", label=t("screw_end_on", lang).format(d=f"{path.screw_diameter_mm:.1f}"),
                          **st["screw_legend"]))
    out.append(point_legend_handle("target", lang))
    for h in out:
        h.set_label(localize_numbers(h.get_label(), lang))
    return out


def legend_labels(fig) -> list[str]:
    """The texts of a figure's legend entries (figure-level and axes-level legends), in order."""
    out: list[str] = []
    legends = list(getattr(fig, "legends", []))
    for ax in fig.axes:
        if ax.get_legend() is not None:
            legends.append(ax.get_legend())
    for lg in legends:
        out += [tx.get_text() for tx in lg.get_texts()]
    return out
