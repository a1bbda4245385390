"""Review 9: the plan figures draw what their legends say, and nothing sits over the anatomy that need not.

- a point of the path that is not in a reformat's plane is drawn projected (hollow, dotted edge) and listed so;
  an in-plane point keeps its marker; every point's legend entry repeats its drawn marker;
- the view down the path lists what it draws (the instrument's ring, the screw's disc, the target), in their
  marker styles, and no structure whose outline is not in the picture (e.g. the skin when all of it is body);
- scale bars lie in the band below the image (outside the image axes, clear of the letters and the legend), at
  their exact length;
- the legend follows the image's band (no empty gap); the white screw keeps a dark outline on white bone.
"""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Polygon

from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.views import PathSpec
from osteoplan.views.colors import INSTRUMENT_COLOR, SCREW_COLOR, hex_color, structure_color
from osteoplan.views.i18n import STRINGS
from osteoplan.views.reformat import reformat_figure
from osteoplan.views.render import LETTER_GUTTER_IN, POINT_KINDS, draw_scale_bar, figure_png


@pytest.fixture(scope="module")
def case():
    """A neck cylinder with a C2 disc; a path from the front-left and below: skin entry 20 mm below the target."""
    from tests.views.test_projected_legend import neck_case

    return neck_case(screw_diameter_mm=4.0, screw_length_mm=12.0)


def _legend(fig):
    (lg,) = fig.legends
    return dict(zip([t.get_text() for t in lg.get_texts()], lg.legend_handles))


def _points(ax):
    """Drawn path points: {gid: artist} (gid = kind, or kind + "_projected")."""
    return {a.get_gid(): a for a in list(ax.lines) + list(ax.collections)
            if a.get_gid() and a.get_gid().replace("_projected", "") in POINT_KINDS}


def _same_marker(drawn, handle):
    """The legend handle repeats the drawn marker: type, shape, face, edge colour and edge dash pattern."""
    assert type(drawn) is type(handle)
    if isinstance(drawn, Line2D):
        assert drawn.get_marker() == handle.get_marker()
        assert to_rgba(drawn.get_markerfacecolor()) == to_rgba(handle.get_markerfacecolor())
        assert to_rgba(drawn.get_markeredgecolor()) == to_rgba(handle.get_markeredgecolor())
        assert drawn.get_markeredgewidth() == handle.get_markeredgewidth()
    else:
        np.testing.assert_allclose(drawn.get_paths()[0].vertices, handle.get_paths()[0].vertices)
        np.testing.assert_allclose(drawn.get_facecolor(), handle.get_facecolor())
        np.testing.assert_allclose(drawn.get_edgecolor(), handle.get_edgecolor())
        assert drawn.get_linestyle() == handle.get_linestyle()


class TestProjectedPoints:
    @pytest.mark.parametrize("lang", ["en", "fr"])
    def test_axial_through_the_target_projects_both_entries(self, case, lang):
        vol, lm, path = case
        fig = reformat_figure(vol, path, "axial", lm, lang=lang)
        ax = fig.axes[0]
        # axial plane z = 0 (through the target): skin entry 20 mm and bone entry 4 mm below it, target in it
        assert np.allclose(np.abs(fig._osteoplan_plane.normal), [0, 0, 1])
        pts = _points(ax)
        assert set(pts) == {"skin_entry_projected", "bone_entry_projected", "target"}
        for kind in ("skin_entry", "bone_entry"):
            mk = pts[kind + "_projected"]
            assert isinstance(mk, PathCollection)
            assert mk.get_facecolor().shape[0] == 0 or np.all(mk.get_facecolor()[:, 3] == 0)  # hollow
            offset, dashes = mk.get_linestyle()[0]
            assert dashes is not None and len(dashes) >= 2  # dotted edge, as the projected band
            # drawn where the point projects: (x, y) in the plane = LPS (x, y) minus the plane's centre
            xy = np.asarray(getattr(path, f"{kind}_lps_mm"))[:2] - fig._osteoplan_plane.centre_lps_mm[:2]
            np.testing.assert_allclose(mk.get_offsets()[0], xy, atol=1e-9)
        assert isinstance(pts["target"], Line2D) and pts["target"].get_marker() == "+"  # in the plane, as before
        leg = _legend(fig)
        for gid, art in pts.items():
            label = STRINGS[gid][lang]
            assert label in leg, (label, list(leg))
            _same_marker(art, leg[label])
        for kind in ("skin_entry", "bone_entry"):  # not drawn in the plane, so not listed as such
            assert STRINGS[kind][lang] not in leg
        assert STRINGS["target_projected"][lang] not in leg

    def test_plane_holding_the_path_draws_every_point_in_it(self, case):
        vol, lm, path = case
        fig = reformat_figure(vol, path, "path_oblique", lm)
        pts = _points(fig.axes[0])
        assert set(pts) == set(POINT_KINDS)
        assert pts["skin_entry"].get_markerfacecolor() != "none"  # the skin entry: a filled dot, as before
        leg = _legend(fig)
        assert not any("projected (not in this plane)" in s for s in leg)
        for gid, art in pts.items():
            _same_marker(art, leg[STRINGS[gid]["en"]])

    def test_target_off_a_scrolled_plane_is_projected(self, case):
        vol, lm, path = case
        fig = reformat_figure(vol, path, "coronal", lm, offset_mm=6.0)  # 6 mm behind the target's plane
        pts = _points(fig.axes[0])
        assert "target_projected" in pts and "target" not in pts
        assert STRINGS["target_projected"]["en"] in _legend(fig)


class TestDownPath:
    @pytest.mark.parametrize("lang", ["en", "fr"])
    def test_legend_is_the_end_on_drawing(self, case, lang):
        vol, lm, path = case
        fig = reformat_figure(vol, path, "down_path", lm, lang=lang)
        ax = fig.axes[0]
        leg = _legend(fig)
        ring, disc = sorted((p for p in ax.patches if isinstance(p, Circle)), key=lambda c: c.get_fill())
        assert ring.radius == pytest.approx(1.5) and disc.radius == pytest.approx(2.0)  # instrument 3, screw 4 mm
        ring_h = leg[STRINGS["instrument_end_on"][lang].format(d="3.0" if lang == "en" else "3,0")]
        disc_h = leg[STRINGS["screw_end_on"][lang].format(d="4.0" if lang == "en" else "4,0")]
        assert ring_h.get_marker() == "o" and ring_h.get_markerfacecolor() == "none"  # open ring, as drawn
        assert to_rgba(ring_h.get_markeredgecolor()) == to_rgba(ring.get_edgecolor()) == to_rgba(
            hex_color(INSTRUMENT_COLOR))
        assert ring_h.get_markeredgewidth() == ring.get_linewidth()
        assert not ring.get_fill() and disc.get_fill()
        assert disc_h.get_marker() == "o" and to_rgba(disc_h.get_markerfacecolor(), disc_h.get_alpha()) == \
            to_rgba(disc.get_facecolor()) == to_rgba(hex_color(SCREW_COLOR), disc.get_alpha())
        _same_marker(_points(ax)["target"], leg[STRINGS["target"][lang]])
        # nothing else of the path: no band entries, no entry points (they project onto the target)
        for key in ("skin_entry", "bone_entry", "path_projected", "skin_entry_projected"):
            assert STRINGS[key][lang] not in leg
        assert not any("→" in s for s in leg)
        path_entries = [s for s in leg if s not in (STRINGS["body"][lang], STRINGS["vertebrae_C2"][lang])]
        assert path_entries == [STRINGS["instrument_end_on"][lang].format(d="3.0" if lang == "en" else "3,0"),
                                STRINGS["screw_end_on"][lang].format(d="4.0" if lang == "en" else "4,0"),
                                STRINGS["target"][lang]]

    def test_a_structure_filling_the_view_is_not_listed(self, case):
        """A body mask that covers the whole CT has no outline in the view down the path: not listed (it was); the
        neck cylinder's outline is in the axial view: drawn and listed."""
        vol, lm, path = case
        whole = LabelMap(vol, {"body": np.ones(vol.shape, bool), "vertebrae_C2": lm.get("vertebrae_C2")})
        body_col = to_rgba(hex_color(structure_color("body")))
        for labelmap, view, listed in ((whole, "down_path", False), (lm, "axial", True)):
            fig = reformat_figure(vol, path, view, labelmap, fov_mm=30.0 if view == "down_path" else None)
            contours = [c for c in fig.axes[0].collections if hasattr(c, "levels")
                        and any(np.allclose(to_rgba(ec), body_col) for ec in np.atleast_2d(c.get_edgecolor()))
                        and sum(len(p.vertices) for p in c.get_paths()) > 0]
            assert (STRINGS["body"]["en"] in _legend(fig)) == bool(contours) == listed, view


def _bbox_px(artists, fig):
    r = fig.canvas.get_renderer()
    boxes = [a.get_window_extent(r) for a in artists]
    from matplotlib.transforms import Bbox

    return Bbox.union(boxes)


class TestScaleBar:
    @pytest.mark.parametrize("view", ["axial", "coronal", "sagittal", "down_path"])
    def test_reformat_bar_is_below_the_image_and_exact(self, case, view):
        vol, lm, path = case
        fig = reformat_figure(vol, path, view, lm)
        figure_png(fig)  # lay out as written
        ax = fig.axes[0]
        bar = [a for a in list(ax.lines) + list(ax.texts) if a.get_gid() == "scale_bar"]
        assert len(bar) == 2
        box = _bbox_px(bar, fig)
        img = ax.get_window_extent(fig.canvas.get_renderer())
        assert not box.overlaps(img) and box.y1 <= img.y0  # below the image: no anatomy under it
        assert box.y0 >= img.y0 - LETTER_GUTTER_IN * fig.dpi  # within the band kept for the letters
        assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)
        r = fig.canvas.get_renderer()
        for t in ax.texts:  # the orientation letters are annotations in the same band
            if t.get_gid() != "scale_bar" and t.get_text():
                assert not box.overlaps(t.get_window_extent(r)), t.get_text()
        lg = fig.legends[0].get_window_extent(r)
        assert not box.overlaps(lg)
        # exact: the bar's length in pixels is its millimetres at the image's scale
        plane = fig._osteoplan_plane
        line = next(a for a in ax.lines if a.get_gid() == "scale_bar")
        (x0, x1) = line.get_xdata()
        px = line.get_transform().transform([[x0, 0], [x1, 0]])
        mm_per_px = plane.n_cols * plane.pixel_mm / img.width
        assert (px[1, 0] - px[0, 0]) * mm_per_px == pytest.approx(x1 - x0, rel=1e-6)
        assert x1 - x0 in (5, 10, 20, 50)
        assert px[0, 0] == pytest.approx(img.x0)  # from the image's left edge

    def test_bar_pixels_lie_outside_the_image_pixels(self):
        """Pixel check: in a figure whose image is uniformly mid-grey, every white bar pixel is outside the image
        rectangle (black band)."""
        from osteoplan.views.render import new_figure

        fig = new_figure(4, 4, dpi=100)
        fig.patch.set_facecolor("black")
        ax = fig.add_axes((0.2, 0.3, 0.6, 0.6))
        ax.imshow(np.full((50, 50), 0.5), cmap="gray", vmin=0, vmax=1, extent=(0, 50, 50, 0))
        ax.set_xlim(0, 50)
        ax.set_ylim(50, 0)
        draw_scale_bar(ax, 10.0)
        rgb = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(__import__("io").BytesIO(figure_png(fig))))
        white = np.argwhere(rgb[..., :3].min(axis=-1) > 200)  # (row, col) of white pixels: the bar and its label
        h = rgb.shape[0]
        img = ax.get_window_extent(fig.canvas.get_renderer())
        assert len(white) > 50
        assert np.all(white[:, 0] > h - img.y0 - 0.5)  # every one below the image (rows grow downwards)
        bar_rows = white[white[:, 0] > np.median(white[:, 0])]
        assert bar_rows[:, 1].min() == pytest.approx(img.x0, abs=1.5)  # starts at the image's left edge
        assert bar_rows[:, 1].max() - bar_rows[:, 1].min() + 1 == pytest.approx(img.width / 5, abs=1.5)  # 10 of 50


class TestLayoutAndScrew:
    def test_legend_starts_right_below_the_letter_band(self, case):
        vol, lm, path = case
        for view in ("axial", "coronal", "down_path"):
            fig = reformat_figure(vol, path, view, lm)
            figure_png(fig)
            r = fig.canvas.get_renderer()
            img = fig.axes[0].get_window_extent(r)
            lg = fig.legends[0].get_window_extent(r)
            gap_in = (img.y0 - lg.y1) / fig.dpi
            assert LETTER_GUTTER_IN - 0.02 <= gap_in <= LETTER_GUTTER_IN + 0.15, (view, gap_in)
            assert lg.y0 >= -1 and (fig.bbox.height - 1) >= lg.y1

    def test_screw_outline_is_dark_on_white_bone(self):
        """A screw in a block of dense bone (white in the bone window): pixels just outside its outline are dark,
        those a few millimetres away white."""
        aff = axis_aligned_affine((1.0, 1.0, 1.0), (-30.0, -30.0, -30.0))
        vol = Volume(np.full((60, 60, 60), 1500.0, np.float32), aff)
        path = PathSpec([0.0, -25.0, 0.0], [0.0, -10.0, 0.0], [0.0, 5.0, 0.0], instrument_diameter_mm=3.0,
                        screw_diameter_mm=4.0, screw_length_mm=12.0)
        fig = reformat_figure(vol, path, "axial", fov_mm=60.0)
        rgb = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(__import__("io").BytesIO(figure_png(fig))))
        ax = fig.axes[0]
        screw = next(p for p in ax.patches if isinstance(p, Polygon) and to_rgba(p.get_edgecolor())[:3] == (1, 1, 1))
        h = rgb.shape[0]

        def luminance(x_mm, y_mm):
            px, py = ax.transData.transform((x_mm, y_mm))
            return rgb[int(round(h - py)), int(round(px)), :3].mean()

        # the screw runs along y (image down = posterior) at x = 0 with radius 2 mm; sample across its right edge
        y_mid = 5.0 - 6.0 - fig._osteoplan_plane.centre_lps_mm[1]
        across = [luminance(2.0 + d, y_mid) for d in np.linspace(-0.3, 0.6, 10)]
        assert min(across) < 80, across      # the dark halo of the outline
        assert luminance(8.0, y_mid) > 230  # white bone beside it
        assert screw.get_path_effects()


def test_fluoroscopy_bar_is_below_the_image_clear_of_the_footer(case):
    from osteoplan.views.drr import drr_figure

    vol, lm, path = case
    fig = drr_figure(vol, path, "lateral", lm, n_pixels=96)
    figure_png(fig)
    r = fig.canvas.get_renderer()
    ax = fig.axes[0]
    box = _bbox_px([a for a in list(ax.lines) + list(ax.texts) if a.get_gid() == "scale_bar"], fig)
    img = ax.get_window_extent(r)
    assert box.y1 <= img.y0 and box.y0 >= img.y0 - LETTER_GUTTER_IN * fig.dpi
    for t in fig.texts:  # the C-arm footer under the band
        assert not box.overlaps(t.get_window_extent(r)), t.get_text()
    assert not box.overlaps(fig.legends[0].get_window_extent(r))


@pytest.mark.parametrize("span_mm", np.geomspace(3.0, 3000.0, 61))
def test_scale_bar_length_leaves_the_bottom_letter_free(span_mm):
    """At most 0.35 of the image (so a bar from the left edge ends before the centred letter), at least 0.14."""
    from osteoplan.views.render import nice_length

    assert 0.14 <= nice_length(span_mm) / span_mm <= 0.35
