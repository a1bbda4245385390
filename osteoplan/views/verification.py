"""Planned vs actual on the control CT: reformats through the instrument, in the planning CT's frame.

The control CT is sampled through the registration (``planning_from_control``) on planes defined in the
planning frame, so the plan (green) and the instrument found (red; dotted: pushed on to the target depth)
are drawn on the same image. Three panels:

1. **along the instrument** (the plane containing the instrument axis and the direction, across it, in
   which the plan lies; when the two coincide, the path-oblique plane of :mod:`osteoplan.views.reformat`);
2. **along the instrument, orthogonal** to panel 1;
3. **across the plan at the target depth** (plane perpendicular to the planned axis through the target):
   the target (+) and where the tip arrives if pushed on (x); the distance between them is the predicted miss.

Display rules of :mod:`osteoplan.views.reformat`: a steep path is drawn vertically with the head up, the
other image axis with the patient's left on the image right; edge letters name every edge (L = patient
left), and each panel states its orientation in words.
"""

from __future__ import annotations

import numpy as np

from osteoplan.imaging.volume import AIR_HU, Volume
from osteoplan.views.reformat import Plane, _signed, _unit, path_plane_axes
from osteoplan.views.render import (DEFAULT_WINDOW_HU, draw_orientation, draw_scale_bar, figure_png, new_figure,
                                    nice_length, orientation_caption, window)

PLAN_COLOR = "#2ecc40"
ACTUAL_COLOR = "#ff4136"


def _sample_control(control: Volume, planning_from_control: np.ndarray, plane: Plane) -> np.ndarray:
    M = np.linalg.inv(np.asarray(planning_from_control, float))  # planning -> control
    pts = plane.points()
    return control.sample(pts @ M[:3, :3].T + M[:3, 3], order=1, fill_hu=AIR_HU)


def _along(d: np.ndarray, w: np.ndarray, centre: np.ndarray, fov_mm: float, pixel_mm: float) -> Plane:
    if abs(d[2]) >= 0.7:  # steep: vertical, inferior down (head up), other axis towards the patient's left
        v, u = _signed(d, (2, -1)), _signed(w, (0, 1), (1, 1))
    else:
        u, v = _signed(d, (0, 1), (1, 1)), _signed(w, (2, -1), (1, 1))
    n = int(round(fov_mm / pixel_mm))
    return Plane(np.asarray(centre, float), _unit(u), _unit(v), n, n, pixel_mm)


def verification_planes(result: dict, skin_entry_lps_mm, target_lps_mm, pixel_mm: float = 0.3
                        ) -> list[tuple[str, Plane]]:
    """The three planes (title, Plane) of the page (see module docstring)."""
    tip = np.asarray(result["tip_lps_mm"], float)
    da = _unit(result["instrument"]["direction_unit"])
    t, e = np.asarray(target_lps_mm, float), np.asarray(skin_entry_lps_mm, float)
    dp = _unit(t - e)
    off = t - tip
    w = off - (off @ da) * da
    if np.linalg.norm(w) < 0.5:  # plan and instrument (nearly) on one line: the standard path plane
        w = path_plane_axes(da)[0]
    w = _unit(w)
    w2 = _unit(np.cross(da, w))
    centre = tip - 15.0 * da
    fov = 70.0
    a, b, _ = path_plane_axes(dp)
    n = int(round(36.0 / 0.15))
    across = Plane(t, _unit(_signed(b, (0, 1), (1, 1))), _unit(_signed(a, (2, -1), (1, 1))), n, n, 0.15)
    return [("along the instrument", _along(da, w, centre, fov, pixel_mm)),
            ("along the instrument, orthogonal", _along(da, w2, centre, fov, pixel_mm)),
            ("across the plan at the target depth", across)]


def verification_figure(control: Volume, result: dict, skin_entry_lps_mm, target_lps_mm, *,
                        window_hu: tuple[float, float] = DEFAULT_WINDOW_HU):
    """Matplotlib figure of the three panels (see module docstring).

    Parameters
    ----------
    control : Volume
        The control CT.
    result : dict
        :func:`osteoplan.verification.verify_control`'s result (planning frame).
    skin_entry_lps_mm, target_lps_mm : (3,)
        The plan.
    """
    import matplotlib.patheffects as pe
    from matplotlib.lines import Line2D

    P = np.asarray(result["registration"]["planning_from_control"], float)
    tip = np.asarray(result["tip_lps_mm"], float)
    rear = np.asarray(result["instrument"]["rear_lps_mm"], float)
    pred = result.get("predicted_tip_lps_mm")
    e, t = np.asarray(skin_entry_lps_mm, float), np.asarray(target_lps_mm, float)
    fig = new_figure(15.0, 6.2, 100)
    fig.patch.set_facecolor("black")
    planes = verification_planes(result, e, t)
    stroke = [pe.withStroke(linewidth=3, foreground="black")]
    for k, (title, pl) in enumerate(planes):
        ax = fig.add_axes([0.01 + k * 0.33, 0.1, 0.31, 0.78])
        img = _sample_control(control, P, pl)
        ax.imshow(window(img, *window_hu), cmap="gray", extent=pl.extent, interpolation="bilinear")
        ax.set_xlim(pl.extent[0], pl.extent[1])
        ax.set_ylim(pl.extent[2], pl.extent[3])
        ax.set_axis_off()

        def line(p0, p1, **kw):
            xy = pl.to_2d(np.stack([p0, p1]))
            ax.plot(xy[:, 0], xy[:, 1], **kw)

        if k < 2:
            line(e, t, color=PLAN_COLOR, lw=1.6, ls="--", zorder=5)
            line(rear, tip, color=ACTUAL_COLOR, lw=0.9, alpha=0.55, zorder=6)  # thin: the metal stays visible
            if pred is not None:
                line(tip, np.asarray(pred), color=ACTUAL_COLOR, lw=1.4, ls=":", zorder=6)
        for p, mk, col in ((t, "+", PLAN_COLOR), (tip, "o", ACTUAL_COLOR)) + (
                ((np.asarray(pred), "x", ACTUAL_COLOR),) if pred is not None else ()):
            if k == 2 and mk == "o":
                continue
            xy = pl.to_2d(p)
            ax.plot([xy[0]], [xy[1]], marker=mk, ms=11 if mk != "o" else 5, mew=2.2, color=col, ls="",
                    mfc="none" if mk == "o" else col, zorder=8, path_effects=stroke)
        draw_orientation(ax, pl.u, pl.v)
        span = pl.extent[1] - pl.extent[0]
        L = nice_length(span)
        draw_scale_bar(ax, L, pl.extent[0] + 0.06 * span, pl.extent[2] - 0.06 * span)
        ax.set_title(f"{title}\n{orientation_caption(pl.u, pl.v)}", color="white", fontsize=10)
    handles = [Line2D([], [], color=PLAN_COLOR, ls="--", label="plan (projected on the plane), + target"),
               Line2D([], [], color=ACTUAL_COLOR, label="instrument found, o tip"),
               Line2D([], [], color=ACTUAL_COLOR, ls=":", label="pushed on to the target depth, x predicted tip")]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, labelcolor="white", fontsize=10)
    fig.suptitle(f"Control CT ({result['stage']}) registered to the planning CT: tip {result['tip_to_plan_mm']:.1f} mm "
                 f"from the plan, {result['angle_to_plan_deg']:.1f}° off it", color="white", fontsize=12)
    return fig


def render_verification_png(control: Volume, result: dict, skin_entry_lps_mm, target_lps_mm) -> bytes:
    """PNG bytes of :func:`verification_figure`."""
    return figure_png(verification_figure(control, result, skin_entry_lps_mm, target_lps_mm))


def verification_html(result: dict, png: bytes, title: str = "osteoplan verify") -> str:
    """A self-contained HTML page: the figure and the figures table (no identifiers)."""
    import base64
    import html

    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, (list, tuple)):
            return "(" + ", ".join(f"{x:.1f}" for x in v) + ")"
        return f"{v:.2f}" if isinstance(v, float) else html.escape(str(v))

    rows = [("tip (planning CT, LPS mm)", fmt(result["tip_lps_mm"])),
            ("tip to the planned path", f"{result['tip_to_plan_mm']:.1f} mm ({html.escape(result['tip_offset_in_words'])})"),
            ("angle to the plan", f"{result['angle_to_plan_deg']:.1f} deg"),
            ("remaining depth to the target depth", fmt(result.get("remaining_depth_mm")) + " mm"),
            ("predicted tip there (LPS mm)", fmt(result.get("predicted_tip_lps_mm"))),
            ("predicted miss at the target", fmt(result.get("lateral_offset_at_target_mm")) + " mm "
             + html.escape(result.get("lateral_offset_in_words") or "")),
            ("correction", html.escape(result["correction"]["redirect_in_words"])),
            ("C-arm bull's-eye: instrument / plan", html.escape(result["correction"]["carm_bullseye_instrument"]["label"]
                                                              + " / " + result["correction"]["carm_bullseye_plan"]["label"])),
            ("registration residual (median / 90th pct)", f"{result['registration']['residual_median_mm']:.2f} / "
             f"{result['registration']['residual_p90_mm']:.2f} mm")]
    if "postop" in result:
        p = result["postop"]
        rows += [("post-op entry / tip error", f"{p['entry_error_mm']:.1f} / {p['tip_error_mm']:.1f} mm"),
                 ("post-op angle error", f"{p['angle_error_deg']:.1f} deg"),
                 ("breach, grade", (f"{p['max_breach_mm']:.1f} mm, grade {p['grade']}" if p.get("grade") else
                                    html.escape(p.get("breach_note", "not assessed"))))]
    clr = "".join(f"<tr><td>{html.escape(r['structure'])}</td><td>{r['margin_mm']:.1f}</td>"
                  f"<td>{fmt(r['planned_clearance_mm'])}</td><td>{fmt(r['actual_clearance_mm'])}</td>"
                  f"<td>{html.escape(r['status'].replace('_', ' '))}</td></tr>" for r in result["clearances"])
    b64 = base64.b64encode(png).decode("ascii")
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:3px 8px;text-align:left}img{max-width:100%}</style></head><body>"
            f"<h1>{html.escape(title)} ({html.escape(result['stage'])})</h1><img alt='planned vs actual' "
            f"src='data:image/png;base64,{b64}'><h2>Figures (planning CT frame)</h2><table>{body}</table>"
            "<h2>Clearances of the actual line (mm)</h2><table><tr><th>structure</th><th>margin</th><th>plan</th>"
            f"<th>now</th><th>status</th></tr>{clr}</table></body></html>")
