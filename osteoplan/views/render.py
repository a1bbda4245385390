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


def figure_png(fig) -> bytes:
    """Render a Figure to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, facecolor="black" if _dark(fig) else "white")
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


def draw_orientation(ax, right_vec: np.ndarray, down_vec: np.ndarray, color: str = "white") -> dict[str, str]:
    """Write orientation letters at the four edges of an image axes; returns {edge: letters}.

    ``right_vec`` is the LPS direction of increasing image column, ``down_vec`` of increasing row.
    """
    import matplotlib.patheffects as pe

    r = np.asarray(right_vec, float)
    d = np.asarray(down_vec, float)
    labels = {"right": orientation_letters(r), "left": orientation_letters(-r),
              "bottom": orientation_letters(d), "top": orientation_letters(-d)}
    pos = {"right": (0.985, 0.5, "right", "center"), "left": (0.015, 0.5, "left", "center"),
           "top": (0.5, 0.985, "center", "top"), "bottom": (0.5, 0.015, "center", "bottom")}
    for edge, text in labels.items():
        x, y, ha, va = pos[edge]
        ax.text(x, y, text, transform=ax.transAxes, ha=ha, va=va, color=color, fontsize=13, fontweight="bold",
                path_effects=[pe.withStroke(linewidth=3, foreground="black")], zorder=20)
    return labels


def draw_scale_bar(ax, length_mm: float, x0: float, y0: float, color: str = "white", label: str | None = None) -> None:
    """A horizontal scale bar of ``length_mm`` drawn in data (mm) coordinates starting at (x0, y0)."""
    import matplotlib.patheffects as pe

    ax.plot([x0, x0 + length_mm], [y0, y0], color=color, lw=3, solid_capstyle="butt", zorder=21,
            path_effects=[pe.withStroke(linewidth=5, foreground="black")])
    ax.text(x0 + length_mm / 2, y0, label or f"{length_mm:g} mm", color=color, ha="center", va="bottom",
            fontsize=9, zorder=21, path_effects=[pe.withStroke(linewidth=2.5, foreground="black")])


def nice_length(span_mm: float) -> float:
    """A round scale-bar length about a fifth of ``span_mm`` (1, 2, 5 x 10^n)."""
    target = span_mm / 5.0
    p = 10 ** np.floor(np.log10(target))
    for m in (1, 2, 5, 10):
        if m * p >= target * 0.7:
            return float(m * p)
    return float(10 * p)


def layout_with_legend(fig, ax, handles, *, image_in: float = 5.2, title_in: float = 0.35, note_in: float = 0.0,
                       ncol: int = 3, text_color: str = "white") -> None:
    """Resize the figure so that the image keeps ``image_in`` inches and the legend gets its own rows below.

    The legend never overlaps the image (its height grows with the number of entries).
    """
    seen: set[str] = set()
    uniq = []
    for h in handles:  # one entry per label (e.g. all vertebrae share "vertebrae")
        if h.get_label() not in seen:
            seen.add(h.get_label())
            uniq.append(h)
    handles = uniq
    rows = max(1, -(-len(handles) // ncol))
    legend_in = 0.12 + 0.2 * rows
    w = image_in + 0.2
    h = image_in + title_in + note_in + legend_in
    fig.set_size_inches(w, h)
    ax.set_position((0.1 / w, (legend_in + note_in) / h, image_in / w, image_in / h))
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=7.5, frameon=False,
                   labelcolor=text_color, bbox_to_anchor=(0.5, 0.0), borderaxespad=0.2, handlelength=1.6,
                   columnspacing=1.0)


def draw_not_feasible_banner(ax, lang: str = "en") -> None:
    """Red banner across the top of an image: the drawn path is NOT a feasible plan."""
    from osteoplan.views.i18n import t

    ax.text(0.5, 0.93, t("near_miss_banner", lang), transform=ax.transAxes, ha="center", va="top", color="white",
            fontsize=10, fontweight="bold", zorder=30,
            bbox={"boxstyle": "square,pad=0.3", "fc": "#cc0000", "ec": "none", "alpha": 0.9})
