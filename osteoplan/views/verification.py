"""Planned vs actual on the control CT, in the planning CT's frame: reformats, simulated fluoroscopy, the page.

The control CT is sampled through the registration (``planning_from_control``) on planes or rays defined in
the planning frame, so the plan (green, dashed) and the instrument found (red; dotted: pushed on to the
target depth) are drawn on the same image. Every panel names its edges (L = patient left, S = superior,
A = anterior...; French G / D) outside the image, as the plan's pictures do, and states its orientation in words;
the figures are in English or French (:mod:`i18n`). Like the plan's overview pictures, the panels along the
instrument and the fluoroscopy views show the whole planned path, skin entry to target, the instrument found and
the predicted tip, with :data:`osteoplan.views.geometry.PATH_MARGIN_MM` (:func:`verification_planes`,
:func:`verification_drr_figure`).

Reformats (:func:`verification_figure`), three panels:

1. **along the instrument** (the plane containing the instrument axis and the direction, across it, in
   which the plan lies; when the two coincide, the path-oblique plane of :mod:`osteoplan.views.reformat`);
2. **along the instrument, orthogonal** to panel 1;
3. **across the plan at the target depth** (plane perpendicular to the planned axis through the target):
   the target (+) and where the tip arrives if pushed on (x); the distance between them is the predicted miss.

Simulated fluoroscopy (:func:`verification_drr_figure`): digitally reconstructed radiographs
(:mod:`osteoplan.views.drr`) of the control CT resampled into the planning frame (its field of view only,
air outside), AP, lateral and bull's-eye down the planned path, with the plan and the instrument projected
by the same C-arm geometry.

Display rules of :mod:`osteoplan.views.reformat` and :mod:`osteoplan.views.drr`: frontal views with the patient's
left on the image right, lateral views with anterior on the image left; a panel along the instrument is displayed
as the standard view its plane is closest to (:func:`osteoplan.views.reformat.oblique_display_axes`).

The page (:func:`verification_html`) is self-contained HTML (images embedded) laid out for A4, printed to
PDF by :func:`osteoplan.export.report.html_to_pdf` (WeasyPrint) like the plan report.
"""

from __future__ import annotations

import numpy as np

from osteoplan.imaging.volume import AIR_HU, Volume, axis_aligned_affine
from osteoplan.views.geometry import PATH_MARGIN_MM, fit_square_frame
from osteoplan.views.i18n import agree, covering_words, structure_label, t, translate_text
from osteoplan.views.reformat import Plane, _signed, _unit, oblique_display_axes, path_plane_axes
from osteoplan.views.render import (DEFAULT_WINDOW_HU, LETTER_GUTTER_IN, draw_orientation, draw_scale_bar, figure_png,
                                    new_figure, nice_length, orientation_caption, window)

PLAN_COLOR = "#2ecc40"
ACTUAL_COLOR = "#ff4136"

#: The fluoroscopy views of the page (keys of :func:`osteoplan.views.drr.standard_geometry`).
DRR_VIEWS = ("ap", "lateral", "bullseye")
#: Smallest field of view (mm) of the panels along the instrument and of the panel across the plan (configurable
#: defaults, no published source); both grow to hold what they must show (:func:`verification_planes`).
ALONG_MIN_FOV_MM = 70.0
ACROSS_MIN_FOV_MM = 36.0

#: Layout of the three-panel figures (inches): image side, room for the legend below and the titles above; the
#: orientation letters lie in a band of :data:`osteoplan.views.render.LETTER_GUTTER_IN` around each image.
_IMAGE_IN, _LEGEND_IN, _TITLE_IN, _SUPTITLE_IN = 4.3, 0.5, 0.8, 0.45


def _sample_control(control: Volume, planning_from_control: np.ndarray, plane: Plane) -> np.ndarray:
    M = np.linalg.inv(np.asarray(planning_from_control, float))  # planning -> control
    pts = plane.points()
    return control.sample(pts @ M[:3, :3].T + M[:3, 3], order=1, fill_hu=AIR_HU)


def _shown_points(result: dict, skin_entry_lps_mm, target_lps_mm) -> np.ndarray:
    """The points the panels along the instrument and the fluoroscopy views must show (LPS mm, (n, 3)): the
    planned skin entry and target, the instrument's rear end and tip, and the predicted tip when there is one."""
    e, t_, tip, rear, pred = _points(result, skin_entry_lps_mm, target_lps_mm)
    return np.array([e, t_, tip, rear] + ([pred] if pred is not None else []), float)


def _framed(anchor: np.ndarray, u: np.ndarray, v: np.ndarray, points: np.ndarray, min_fov_mm: float,
            pixel_mm: float) -> Plane:
    """Plane (u, v) through *anchor*, square, holding *points* projected on it with :data:`PATH_MARGIN_MM`
    (:func:`osteoplan.views.geometry.fit_square_frame`, the rule of the plan's overview pictures)."""
    u, v = _unit(u), _unit(v)
    rel = np.asarray(points, float) - anchor
    c2, fov = fit_square_frame(np.stack([rel @ u, rel @ v], axis=-1), min_fov_mm, PATH_MARGIN_MM)
    n = int(round(fov / pixel_mm))
    return Plane(anchor + c2[0] * u + c2[1] * v, u, v, n, n, pixel_mm)


def _along(d: np.ndarray, w: np.ndarray, anchor: np.ndarray, points: np.ndarray, pixel_mm: float) -> Plane:
    # displayed as the standard view the plane is closest to, as the plan's path planes
    u, v, _ = oblique_display_axes(d, w)
    return _framed(np.asarray(anchor, float), u, v, points, ALONG_MIN_FOV_MM, pixel_mm)


def verification_planes(result: dict, skin_entry_lps_mm, target_lps_mm, pixel_mm: float = 0.3
                        ) -> list[tuple[str, Plane]]:
    """The three planes (i18n title key, Plane) of the reformats (see module docstring).

    Framing (the rule of the plan's overview pictures, :func:`osteoplan.views.geometry.fit_square_frame` with
    :data:`osteoplan.views.geometry.PATH_MARGIN_MM`): the panels along the instrument are centred 15 mm behind
    the tip when everything fits in :data:`ALONG_MIN_FOV_MM`, otherwise they grow and move to show the whole
    planned path (skin entry to target), the instrument found (rear end to tip) and the predicted tip, projected
    on the plane; the panel across the plan is centred on the target and grows from :data:`ACROSS_MIN_FOV_MM`
    to hold the predicted tip (pixel 0.15 mm, at most 0.3 mm when it grows).
    """
    tip = np.asarray(result["tip_lps_mm"], float)
    da = _unit(result["instrument"]["direction_unit"])
    t_, e = np.asarray(target_lps_mm, float), np.asarray(skin_entry_lps_mm, float)
    dp = _unit(t_ - e)
    off = t_ - tip
    w = off - (off @ da) * da
    if np.linalg.norm(w) < 0.5:  # plan and instrument (nearly) on one line: the standard path plane
        w = path_plane_axes(da)[0]
    w = _unit(w)
    w2 = _unit(np.cross(da, w))
    anchor = tip - 15.0 * da
    shown = _shown_points(result, e, t_)
    a, b, _ = path_plane_axes(dp)
    pred = result.get("predicted_tip_lps_mm")
    across_pts = np.array([t_] + ([np.asarray(pred, float)] if pred is not None else []))
    across = _framed(t_, _signed(b, (0, 1), (1, 1)), _signed(a, (2, -1), (1, 1)), across_pts, ACROSS_MIN_FOV_MM,
                     0.15)
    if across.n_rows > 600:  # a miss far from the target: keep the image's size, coarser pixels
        side = across.n_rows * across.pixel_mm
        across = Plane(across.centre_lps_mm, across.u, across.v, 600, 600, side / 600)
    return [("verify_along", _along(da, w, anchor, shown, pixel_mm)),
            ("verify_along_orth", _along(da, w2, anchor, shown, pixel_mm)),
            ("verify_across", across)]


def _points(result: dict, skin_entry_lps_mm, target_lps_mm):
    tip = np.asarray(result["tip_lps_mm"], float)
    rear = np.asarray(result["instrument"]["rear_lps_mm"], float)
    pred = result.get("predicted_tip_lps_mm")
    pred = None if pred is None else np.asarray(pred, float)
    return (np.asarray(skin_entry_lps_mm, float), np.asarray(target_lps_mm, float), tip, rear, pred)


def _panel_axes(fig, k: int):
    """Axes of panel *k* (0..2) of a figure made by :func:`_panel_figure`: a square image with a band of
    :data:`LETTER_GUTTER_IN` on its four sides for the orientation letters (drawn outside the image)."""
    w, h = fig.get_figwidth(), fig.get_figheight()
    g = LETTER_GUTTER_IN
    pitch = _IMAGE_IN + 2 * g + 0.1
    return fig.add_axes([(0.1 + g + k * pitch) / w, (_LEGEND_IN + g) / h, _IMAGE_IN / w, _IMAGE_IN / h])


def _panel_figure():
    """Black figure sized for three square panels, their letters' bands, titles, the legend and the suptitle."""
    g = LETTER_GUTTER_IN
    w = 0.2 + 3 * (_IMAGE_IN + 2 * g + 0.1)
    h = _LEGEND_IN + 2 * g + _IMAGE_IN + _TITLE_IN + _SUPTITLE_IN
    fig = new_figure(w, h, 100)
    fig.patch.set_facecolor("black")
    return fig


def _finish(fig, panels, lang: str, result: dict) -> None:
    fig.legend(handles=_legend_handles(lang), loc="lower center", ncol=3, frameon=False, labelcolor="white",
               fontsize=12.5, bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(_suptitle(result, lang), color="white", fontsize=14,
                 y=1.0 - 0.08 / fig.get_figheight(), va="top")
    fig._osteoplan_panels = panels


def _title(ax, text: str) -> None:
    """Panel title above the top orientation letter's band."""
    ax.set_title(text, color="white", fontsize=12, pad=4 + 72 * LETTER_GUTTER_IN, linespacing=1.25)


def _wrap(text: str, width: int = 48) -> str:
    import textwrap

    return textwrap.fill(text, width)


def _legend_handles(lang: str):
    from matplotlib.lines import Line2D

    return [Line2D([], [], color=PLAN_COLOR, ls="--", lw=1.8, label=t("verify_legend_plan", lang)),
            Line2D([], [], color=ACTUAL_COLOR, lw=1.8, label=t("verify_legend_actual", lang)),
            Line2D([], [], color=ACTUAL_COLOR, ls=":", lw=1.8, label=t("verify_legend_pred", lang))]


def _suptitle(result: dict, lang: str) -> str:
    from osteoplan.locale_fmt import localize_numbers

    return localize_numbers(t("verify_suptitle", lang).format(stage=t(f"verify_stage_{result['stage']}", lang),
                                                              tip=result["tip_to_plan_mm"],
                                                              angle=result["angle_to_plan_deg"]), lang)


def verification_figure(control: Volume, result: dict, skin_entry_lps_mm, target_lps_mm, *, lang: str = "en",
                        window_hu: tuple[float, float] = DEFAULT_WINDOW_HU):
    """Matplotlib figure of the three reformats (see module docstring).

    Parameters
    ----------
    control : Volume
        The control CT.
    result : dict
        :func:`osteoplan.verification.verify_control`'s result (planning frame).
    skin_entry_lps_mm, target_lps_mm : (3,)
        The plan.
    lang : ``"en"`` or ``"fr"``

    Returns
    -------
    matplotlib.figure.Figure
        ``fig._osteoplan_panels`` lists (i18n title key, Plane, axes, sampled HU image) of the panels.
    """
    import matplotlib.patheffects as pe

    P = np.asarray(result["registration"]["planning_from_control"], float)
    e, t_, tip, rear, pred = _points(result, skin_entry_lps_mm, target_lps_mm)
    fig = _panel_figure()
    planes = verification_planes(result, e, t_)
    stroke = [pe.withStroke(linewidth=3, foreground="black")]
    panels = []
    for k, (key, pl) in enumerate(planes):
        ax = _panel_axes(fig, k)
        img = _sample_control(control, P, pl)
        ax.imshow(window(img, *window_hu), cmap="gray", extent=pl.extent, interpolation="bilinear")
        ax.set_xlim(pl.extent[0], pl.extent[1])
        ax.set_ylim(pl.extent[2], pl.extent[3])
        ax.set_axis_off()

        def line(p0, p1, **kw):
            xy = pl.to_2d(np.stack([p0, p1]))
            ax.plot(xy[:, 0], xy[:, 1], **kw)

        if k < 2:
            line(e, t_, color=PLAN_COLOR, lw=1.6, ls="--", zorder=5)
            line(rear, tip, color=ACTUAL_COLOR, lw=0.9, alpha=0.55, zorder=6)  # thin: the metal stays visible
            if pred is not None:
                line(tip, pred, color=ACTUAL_COLOR, lw=1.4, ls=":", zorder=6)
        for p, mk, col in ((t_, "+", PLAN_COLOR), (tip, "o", ACTUAL_COLOR)) + (
                ((pred, "x", ACTUAL_COLOR),) if pred is not None else ()):
            if k == 2 and mk == "o":
                continue
            xy = pl.to_2d(p)
            ax.plot([xy[0]], [xy[1]], marker=mk, ms=11 if mk != "o" else 5, mew=2.2, color=col, ls="",
                    mfc="none" if mk == "o" else col, zorder=8, path_effects=stroke)
        labels = draw_orientation(ax, pl.u, pl.v, outside=True, lang=lang)  # in the band around the image
        draw_scale_bar(ax, nice_length(pl.extent[1] - pl.extent[0]))  # in the band below the image
        _title(ax, f"{t(key, lang)}\n{_wrap(orientation_caption(pl.u, pl.v, lang))}")
        ax._osteoplan_labels = labels
        panels.append((key, pl, ax, img))
    _finish(fig, panels, lang, result)
    return fig


def control_in_planning_frame(control: Volume, planning_from_control, centre_lps_mm, *, half_size_mm: float = 80.0,
                              spacing_mm: float = 0.7) -> Volume:
    """The control CT resampled (trilinear) onto an axis-aligned cube of the planning frame.

    Parameters
    ----------
    control : Volume
    planning_from_control : (4, 4)
        Rigid map of control LPS to planning LPS (the registration).
    centre_lps_mm : (3,)
        Centre of the cube (planning frame), e.g. the target.
    half_size_mm, spacing_mm : float
        Half side and voxel size of the cube (configurable defaults: the neck around C2 at about the
        control CT's resolution).

    Returns
    -------
    Volume
        (K, J, I) float32 HU; air (-1000 HU) outside the control CT's field of view.
    """
    from scipy import ndimage as ndi

    n = int(np.ceil(2 * half_size_mm / spacing_mm)) + 1
    origin = np.asarray(centre_lps_mm, float) - half_size_mm
    aff = axis_aligned_affine((spacing_mm,) * 3, tuple(origin))
    # grid index -> planning LPS -> control LPS -> control index
    m = np.linalg.inv(control.affine) @ np.linalg.inv(np.asarray(planning_from_control, float)) @ aff
    arr = ndi.affine_transform(control.array.astype(np.float32, copy=False), m[:3, :3], offset=m[:3, 3],
                               output_shape=(n, n, n), order=1, mode="constant", cval=AIR_HU)
    return Volume(arr, aff)


def _drr_geometry(view: str, skin_entry_lps_mm, target_lps_mm, n_pixels: int, detector_mm: float,
                  shown_lps_mm: np.ndarray | None = None, instrument_diameter_mm: float = 0.0):
    """The C-arm of *view* (isocentre at the target), moved and its detector grown when needed so that every
    point of *shown_lps_mm* projects inside it with :data:`PATH_MARGIN_MM` plus the instrument's radius
    (:func:`osteoplan.views.drr.fit_path_geometry`, the rule of the plan's fluoroscopy views)."""
    from osteoplan.views.drr import fit_path_geometry, standard_geometry
    from osteoplan.views.geometry import PathSpec

    e, t_ = np.asarray(skin_entry_lps_mm, float), np.asarray(target_lps_mm, float)
    geo = standard_geometry(view, t_, _unit(t_ - e), n_pixels=(n_pixels, n_pixels),
                            detector_size_mm=(detector_mm, detector_mm))
    if shown_lps_mm is None:
        return geo
    # each point as a (degenerate, target-to-point) path of fit_path_geometry: it frames their skin entries
    d_mm = float(instrument_diameter_mm)
    paths = [PathSpec(q, q, t_, instrument_diameter_mm=d_mm) for q in np.asarray(shown_lps_mm, float)
             if np.linalg.norm(q - t_) > 1e-6]
    return fit_path_geometry(geo, paths) if paths else geo


def _drr_volume_box(shown_lps_mm: np.ndarray, min_half_size_mm: float = 80.0) -> tuple[np.ndarray, float]:
    """(centre (3,) LPS mm, half side mm) of the planning-frame cube the fluoroscopy views resample: the box of
    the shown points grown by :data:`PATH_MARGIN_MM` plus 40 mm of surrounding anatomy (configurable default, no
    published source), at least *min_half_size_mm*."""
    pts = np.asarray(shown_lps_mm, float)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    half = max(float(min_half_size_mm), float(np.max(hi - lo)) / 2.0 + PATH_MARGIN_MM + 40.0)
    return (lo + hi) / 2.0, half


def verification_drr_figure(control: Volume, result: dict, skin_entry_lps_mm, target_lps_mm, *, lang: str = "en",
                            n_pixels: int = 400, step_mm: float = 0.5, detector_mm: float = 110.0,
                            volume_in_plan: Volume | None = None):
    """Matplotlib figure of the three simulated fluoroscopy views (AP, lateral, bull's-eye down the plan).

    Each view shows the whole planned path, the instrument found and the predicted tip: the C-arm is moved
    across its beam and its detector grown when they do not fit (:func:`_drr_geometry`), as in the plan's
    fluoroscopy views; the whole detector is drawn.

    Parameters
    ----------
    control : Volume
        The control CT.
    result : dict
        :func:`osteoplan.verification.verify_control`'s result (planning frame).
    skin_entry_lps_mm, target_lps_mm : (3,)
        The plan.
    lang : ``"en"`` or ``"fr"``
    n_pixels : int
        Detector pixels per side.
    step_mm : float
        Ray-marching step of the DRR.
    detector_mm : float
        Smallest side of the (collimated) detector: the default 110 mm shows about 75 mm at the target.
    volume_in_plan : Volume, optional
        :func:`control_in_planning_frame` already computed (default: a cube around the shown points,
        :func:`_drr_volume_box`, at the voxel count of an 80 mm half-side at 0.7 mm).

    Returns
    -------
    matplotlib.figure.Figure
        ``fig._osteoplan_panels`` lists (view, CArmGeometry, axes, optical density image).
    """
    import matplotlib.patheffects as pe

    from osteoplan.views.drr import render_drr

    e, t_, tip, rear, pred = _points(result, skin_entry_lps_mm, target_lps_mm)
    shown = _shown_points(result, e, t_)
    if volume_in_plan is None:
        centre, half = _drr_volume_box(shown)
        volume_in_plan = control_in_planning_frame(control, result["registration"]["planning_from_control"], centre,
                                                   half_size_mm=half, spacing_mm=0.7 * half / 80.0)
    vol = volume_in_plan
    diam = float((result.get("instrument") or {}).get("diameter_mm") or 0.0)
    fig = _panel_figure()
    stroke = [pe.withStroke(linewidth=3, foreground="black")]
    panels = []
    for k, view in enumerate(DRR_VIEWS):
        geo = _drr_geometry(view, e, t_, n_pixels, detector_mm, shown, diam)
        od = render_drr(vol, geo, step_mm=step_mm)
        tr, tc = geo.project(t_)
        half = int(45.0 * geo.magnification / geo.pixel_mm[0])
        roi = od[max(int(tr) - half, 0):int(tr) + half, max(int(tc) - half, 0):int(tc) + half]
        roi = roi[roi > 0] if np.any(roi > 0) else od.ravel()
        lo, hi = np.percentile(roi, [2, 99.5]) if roi.size else (0.0, 1.0)
        ax = _panel_axes(fig, k)
        ax.imshow(np.clip((od - lo) / max(hi - lo, 1e-6), 0, 1), cmap="gray", vmin=0, vmax=1,
                  interpolation="bilinear")
        ax.set_xticks([])
        ax.set_yticks([])

        def xy(p):
            r, c = geo.project(np.atleast_2d(p)).T
            return c, r

        def line(p0, p1, **kw):
            c, r = xy(np.stack([p0, p1]))
            ax.plot(c, r, **kw)

        line(e, t_, color=PLAN_COLOR, lw=1.6, ls="--", zorder=5)
        line(rear, tip, color=ACTUAL_COLOR, lw=0.8, alpha=0.45, zorder=6)  # thin: the metal stays visible
        if pred is not None:
            line(tip, pred, color=ACTUAL_COLOR, lw=1.4, ls=":", zorder=6)
        for p, mk, col in ((t_, "+", PLAN_COLOR), (tip, "o", ACTUAL_COLOR)) + (
                ((pred, "x", ACTUAL_COLOR),) if pred is not None else ()):
            c, r = xy(p)
            ax.plot(c, r, marker=mk, ms=11 if mk != "o" else 5, mew=2.2, color=col, ls="",
                    mfc="none" if mk == "o" else col, zorder=8, path_effects=stroke)
        n_r, n_c = geo.n_pixels[1], geo.n_pixels[0]
        ax.set_xlim(-0.5, n_c - 0.5)
        ax.set_ylim(n_r - 0.5, -0.5)
        labels = draw_orientation(ax, geo.detector_u, geo.detector_v, outside=True, lang=lang)
        px_iso = geo.pixel_mm[0] / geo.magnification
        bar = nice_length(n_c * px_iso)
        draw_scale_bar(ax, bar / px_iso, label=t("scale_at_iso", lang).format(bar=f"{bar:g}"))  # below the image
        caption = _wrap(orientation_caption(geo.detector_u, geo.detector_v, lang))
        _title(ax, f"{t(f'verify_drr_{view}', lang)}\n{caption}")
        ax._osteoplan_labels = labels
        panels.append((view, geo, ax, od))
    _finish(fig, panels, lang, result)
    return fig


def render_verification_png(control: Volume, result: dict, skin_entry_lps_mm, target_lps_mm, *,
                            lang: str = "en") -> bytes:
    """PNG bytes of :func:`verification_figure`."""
    return figure_png(verification_figure(control, result, skin_entry_lps_mm, target_lps_mm, lang=lang))


def render_verification_drr_png(control: Volume, result: dict, skin_entry_lps_mm, target_lps_mm, *,
                                lang: str = "en", **kwargs) -> bytes:
    """PNG bytes of :func:`verification_drr_figure`."""
    return figure_png(verification_drr_figure(control, result, skin_entry_lps_mm, target_lps_mm, lang=lang,
                                              **kwargs))


def _terms(v_lps, lang: str) -> str:
    """A displacement (LPS mm) in words, largest component first (as
    :func:`osteoplan.verification.geometry.patient_terms`, in *lang*)."""
    names = (("dir_left", "dir_right"), ("dir_posterior", "dir_anterior"), ("dir_cranial", "dir_caudal"))
    v = np.asarray(v_lps, float)
    parts = [f"{abs(v[ax]):.1f} mm {t(names[ax][0] if v[ax] > 0 else names[ax][1], lang)}"
             for ax in np.argsort(-np.abs(v)) if abs(v[ax]) >= 0.05]
    return ", ".join(parts) if parts else "0.0 mm"


def _turn(correction: dict, lang: str, none_key: str = "verify_as_planned") -> str:
    comp = np.asarray(correction.get("turn_components_lps_deg") or (0, 0, 0), float)
    names = (("dir_left", "dir_right"), ("dir_posterior", "dir_anterior"), ("dir_cranial", "dir_caudal"))
    parts = [f"{abs(comp[ax]):.1f}° {t(names[ax][0] if comp[ax] > 0 else names[ax][1], lang)}"
             for ax in np.argsort(-np.abs(comp)) if abs(comp[ax]) >= 0.1]
    if not parts:
        return t(none_key, lang)
    return f"{correction['turn_deg']:.1f}°" + (" : " if lang == "fr" else ": ") + ", ".join(parts)


def _correction_rows(c: dict, lang: str) -> list[tuple[str, str]]:
    """The correction aimed at the target (with its pivot), the miss after it, and the parallel-only turn."""
    if "pivot" not in c:  # results written before the correction aimed at the target
        return [(t("verify_parallel", lang), _turn(c, lang))]
    turn = _turn(c, lang, "verify_on_target") + f" ({t('verify_pivot_' + c['pivot'], lang)})"
    wd = c.get("withdraw_first")
    if wd is None:
        rows = [(t("verify_correction", lang), turn)]
    else:  # the tip is beyond the target depth: withdraw first, then (when the line misses) turn and advance
        rows = [(t("verify_withdraw_first", lang), t("verify_withdraw_value", lang).format(
            n=wd["withdraw_mm"], place=t(f"verify_place_{wd['withdraw_to']}", lang), b=wd["beyond_target_depth_mm"]))]
        if wd["withdraw_to"] == "target_depth":
            rows.append((t("verify_step2", lang), t("verify_no_turn", lang).format(d=wd["line_miss_mm"])))
        else:
            rows += [(t("verify_then_turn", lang), turn),
                     (t("verify_then_advance", lang), t("verify_advance_value", lang).format(m=wd["advance_after_mm"]))]
    rows.append((t("verify_miss_after", lang), f"{c['miss_after_correction_mm']:.1f} mm"))
    par = c.get("parallel_to_plan")
    if par:
        rows.append((t("verify_parallel", lang), _turn(par, lang)))
    return rows


def _note(note: str, result: dict, lang: str) -> str:
    """A note of the result in *lang* when the page knows its words; otherwise kept (English) rather than lost."""
    if lang == "en":
        return note
    u = result.get("tip_uncertainty_mm")
    if note.startswith("the tip is uncertain") and u is not None:
        return t("verify_uncertain_note", lang).format(u=u)
    if note.startswith("the instrument line crosses "):
        from osteoplan.verification.pipeline import crossing_note

        for row in result.get("clearances", []):
            if row.get("status") == "crosses" and (
                    note == crossing_note(row)  # results before the names: the key
                    or note.startswith(f"the instrument line crosses {row['structure']} ")):
                w = t("verify_crosses_where", lang) if row.get("category") == "displaceable" else ""
                return t("verify_crosses_note", lang).format(s=structure_label(row["structure"], lang), w=w,
                                                             d=-row["actual_clearance_mm"])
    if note.startswith("the instrument leaves the control CT's field of view"):
        return t("verify_note_rear_cut", lang)
    return note


def containment_status(row: dict, lang: str = "en") -> str:
    """The status words of a structure the plan counted as covered by containment, decided on the control by the
    containment measured on the actual line (``row['covered_by'] == "containment"``, see
    :func:`osteoplan.verification.deviation.containment_row`); French agrees with the structure's name."""
    if row["status"] == "covered":
        return agree("verify_status_covered_containment", lang, row["structure"]).format(mm=row["containment_mm"])
    return agree("verify_status_leaves_bone", lang, row["structure"]).format(s=structure_label(row["structure"], lang))


def _containment_rows(result: dict, lang: str) -> list[tuple[str, str]]:
    """How the structures covered by containment were known on the control (``result['containment']``)."""
    c = result.get("containment")
    if c is None:
        return []
    if not c.get("measured"):
        return [(t("verify_containment", lang),
                 t("verify_containment_not_measured", lang).format(why=translate_text(c["reason"], lang)))]
    m = c["min_margin_mm"]
    return [(t("verify_containment", lang), t("verify_containment_value", lang).format(
        level=c["bone"].replace("vertebrae_", ""), mm="—" if m is None else f"{m:.1f}", need=c["margin_mm"],
        skip=c["entry_skip_mm"]))]


def verification_rows(result: dict, lang: str = "en") -> list[tuple[str, str]]:
    """(label, value) rows of the figures table, in *lang* (numbers from *result*, nothing recomputed)."""
    def vec(v):
        return "—" if v is None else "(" + ", ".join(f"{x:.1f}" for x in v) + ")"

    def mm(v, nd=1):
        return "—" if v is None else f"{v:.{nd}f} mm"

    rows = [(t("verify_stage", lang), t(f"verify_stage_{result['stage']}", lang)),
            (t("verify_tip", lang), vec(result["tip_lps_mm"]))]
    u = result.get("tip_uncertainty_mm")
    if u is not None:
        rows.append((t("verify_tip_uncertainty", lang), f"± {u:.1f} mm"))
    rows += [(t("verify_tip_to_plan", lang), f"{mm(result['tip_to_plan_mm'])} ("
              f"{_terms(result['tip_offset_lps_mm'], lang)} {t('verify_of_path', lang)})"),
             (t("verify_angle", lang), f"{result['angle_to_plan_deg']:.1f}°"),
             (t("verify_remaining", lang), mm(result.get("remaining_depth_mm"))),
             (t("verify_predicted_tip", lang), vec(result.get("predicted_tip_lps_mm")))]
    if result.get("lateral_offset_at_target_mm") is not None:
        rows.append((t("verify_miss", lang), f"{mm(result['lateral_offset_at_target_mm'])} ("
                     f"{_terms(result['lateral_offset_at_target_lps_mm'], lang)} {t('verify_of_target', lang)})"))
    c = result["correction"]
    rows += _correction_rows(c, lang)
    cn = c.get("carm_bullseye_corrected")
    if cn is not None:  # the view to set to follow the correction, and the change from the instrument's view
        ca = c["carm_bullseye_instrument"]
        rows += [(t("verify_carm_corrected", lang), cn["label"]),
                 (t("verify_carm_change", lang), t("verify_carm_change_value", lang).format(
                     a=cn["primary_deg"] - ca["primary_deg"], b=cn["secondary_deg"] - ca["secondary_deg"]))]
    rows += [(t("verify_carm", lang), f"{c['carm_bullseye_instrument']['label']} / {c['carm_bullseye_plan']['label']}"),
             (t("verify_registration", lang), f"{result['registration']['residual_median_mm']:.2f} / "
              f"{result['registration']['residual_p90_mm']:.2f} mm")]
    if "postop" in result:
        p = result["postop"]
        rows += [(t("verify_postop_errors", lang), f"{p['entry_error_mm']:.1f} / {p['tip_error_mm']:.1f} mm"),
                 (t("verify_postop_angle", lang), f"{p['angle_error_deg']:.1f}°"),
                 (t("verify_breach", lang), (f"{p['max_breach_mm']:.1f} mm, grade {p['grade']}" if p.get("grade")
                                             else agree("status_not_assessed", lang, gender="f")))]  # l'effraction
    rows += _containment_rows(result, lang)
    return rows


def verification_html(result: dict, png: bytes, title: str | None = None, *, lang: str = "en",
                      drr_png: bytes | None = None) -> str:
    """A self-contained HTML page (A4 when printed): the figures, the reformats, the simulated fluoroscopy and
    the clearances, in *lang*; no identifiers.

    Parameters
    ----------
    result : dict
        :func:`osteoplan.verification.verify_control`'s result.
    png : bytes
        :func:`render_verification_png` (same *lang*).
    title : str, optional
        Page title (default: the translated "Control CT against the plan").
    lang : ``"en"`` or ``"fr"``
    drr_png : bytes, optional
        :func:`render_verification_drr_png` (same *lang*).

    Raises
    ------
    ValueError
        Unknown language.
    """
    import base64
    import html

    from osteoplan.views.i18n import LANGS

    if lang not in LANGS:
        raise ValueError(f"Unknown language '{lang}'; use one of {', '.join(LANGS)}.")
    esc = html.escape
    title = title or t("verify_title", lang)

    def img(b: bytes, alt: str) -> str:
        return f"<img alt='{esc(alt)}' src='data:image/png;base64,{base64.b64encode(b).decode('ascii')}'>"

    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in verification_rows(result, lang))
    status = {"pass": "verify_status_pass", "inside_margin": "verify_status_inside_margin",
              "crosses": "verify_status_crosses", "not_assessed": "status_not_assessed",
              "covered": "verify_status_covered"}

    def st(r):  # a covered (or not clear) structure names what contains it, in the report's words; French: the
        # status agrees with the structure's name ("artère ... NON ÉVALUÉE", "moelle couverte par ...")
        if r.get("covered_by") == "containment":
            return containment_status(r, lang)
        if r["status"] == "covered" and r.get("covered_by"):
            return agree("status_covered_by", lang, r["structure"]).format(by=covering_words(r["covered_by"], lang))
        if r["status"] == "not_clear":
            return agree("verify_status_not_clear", lang, r["structure"]).format(
                by=covering_words(r.get("covered_by") or "", lang))
        key = status.get(r["status"])
        w = r["status"] if key is None else agree(key, lang, r["structure"])
        return w.upper() if r["status"] == "not_assessed" else w

    def num(v):
        return "—" if v is None else f"{v:.1f}"

    clr = "".join(f"<tr><td>{esc(structure_label(r['structure'], lang))}</td><td class='num'>{r['margin_mm']:.1f}</td>"
                  f"<td class='num'>{'≥' if r.get('planned_clearance_capped') else ''}{num(r['planned_clearance_mm'])}</td>"
                  f"<td class='num'>{'≥' if (r.get('note') or '').startswith('at least') else ''}"
                  f"{num(r['actual_clearance_mm'])}</td>"
                  f"<td class='st-{esc(r['status'])}'>{esc(st(r))}</td></tr>"
                  for r in result["clearances"]) or \
        f"<tr><td colspan='5'>{esc(t('verify_no_clearance', lang))}</td></tr>"
    notes = [_note(n, result, lang) for n in result.get("notes", [])]
    rows_c = result.get("clearances", [])
    att = []
    crossed = [r for r in rows_c if r.get("status") == "crosses"]
    inside = [r for r in rows_c if r.get("status") == "inside_margin"]
    if crossed:
        att.append(t("verify_attention_crosses", lang).format(s=", ".join(
            f"{structure_label(r['structure'], lang)} ({-r['actual_clearance_mm']:.1f} mm)" for r in crossed)))
    if inside:
        att.append(t("verify_attention_margin", lang).format(s=", ".join(
            f"{structure_label(r['structure'], lang)} ({r['actual_clearance_mm']:.1f} mm < {r['margin_mm']:.1f} mm)"
            for r in inside)))
    not_clear = [r for r in rows_c if r.get("status") == "not_clear" and r.get("covered_by") != "containment"]
    by_cont = [r for r in rows_c if r.get("status") == "not_clear" and r.get("covered_by") == "containment"]
    if by_cont:  # the plan counted them covered by containment; the actual instrument leaves the bone
        att.append(agree("verify_status_leaves_bone", lang, [r["structure"] for r in by_cont]).format(
            s=", ".join(structure_label(r["structure"], lang) for r in by_cont)))
    if not_clear:
        att.append(agree("verify_attention_not_clear", lang, [r["structure"] for r in not_clear]).format(s=", ".join(
            f"{structure_label(r['structure'], lang)} ({t('verify_inside', lang).format(by=covering_words(r.get('covered_by') or '', lang))})"
            for r in not_clear)))
    attention_html = (f"<p class='attention'>{esc(t('verify_attention', lang))}"
                      f"{' : ' if lang == 'fr' else ': '}{esc(t('semicolon', lang).join(att))}</p>") if att else ""
    notes_html = ("<h2>" + esc(t("verify_notes", lang)) + "</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes)
                  + "</ul>") if notes else ""
    drr_html = (f"<h2>{esc(t('verify_fluoro', lang))}</h2>{img(drr_png, t('verify_fluoro', lang))}"
                f"<p class='note'>{esc(t('verify_drr_note', lang))}</p>") if drr_png is not None else ""
    css = ("@page{size:A4;margin:12mm;@bottom-center{content:counter(page) ' / ' counter(pages);font-size:8pt;"
           "color:#555}}body{font-family:'DejaVu Sans',Arial,sans-serif;font-size:9.5pt;color:#111;margin:0 auto;"
           "max-width:190mm}h1{font-size:15pt;margin:0 0 2mm 0}h2{font-size:11.5pt;margin:4mm 0 1.5mm 0;"
           "border-bottom:1.5px solid #345;page-break-after:avoid}table{border-collapse:collapse;width:100%}"
           "td,th{border:0.6px solid #999;padding:0.8mm 1.5mm;text-align:left;vertical-align:top}th{background:"
           "#e8edf2;font-weight:normal}table.fig th{width:45%}td.num{text-align:right}.st-crosses{color:#a00;font-weight:bold}.st-not_clear{color:#a00;font-weight:bold}.st-inside_margin{color:#a00;"
           "font-weight:bold}.st-not_assessed{color:#666}img{width:100%;page-break-inside:avoid}"
           ".note{font-size:8.5pt;color:#333}.pb{page-break-before:always}"
           ".attention{color:#a00;font-weight:bold;font-size:11pt;border:2px solid #a00;padding:1.5mm;margin:1mm 0}")
    from osteoplan.locale_fmt import localize_html  # French: decimal comma in the text, never in the data

    return localize_html(f"<!DOCTYPE html><html lang='{lang}'><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{css}</style></head><body><h1>{esc(title)}</h1>{attention_html}"
            f"<p class='note'>{esc(t('verify_frame_note', lang))}</p>"
            f"<h2>{esc(t('verify_figures', lang))}</h2><table class='fig'>{body}</table>{notes_html}"
            f"<h2>{esc(t('verify_clearances', lang))}</h2><table><tr><th>{esc(t('verify_structure', lang))}</th>"
            f"<th>{esc(t('verify_margin', lang))}</th><th>{esc(t('verify_planned', lang))}</th>"
            f"<th>{esc(t('verify_now', lang))}</th><th>{esc(t('verify_status', lang))}</th></tr>{clr}</table>"
            f"<div class='pb'></div><h2>{esc(t('verify_reformats', lang))}</h2>{img(png, t('verify_reformats', lang))}"
            f"{drr_html}</body></html>", lang)
