"""Every overview shows the whole path (skin entry to target, with a margin), isotropic and oriented; orientation
letters lie outside the image; the 3D legend names exactly the surfaces drawn."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.text import Annotation
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.views import PathSpec
from osteoplan.views.drr import DRR_VIEWS, drr_figure, render_drr
from osteoplan.views.geometry import PATH_MARGIN_MM, fit_square_frame
from osteoplan.views.i18n import t
from osteoplan.views.reformat import STANDARD_AXES, STANDARD_FOV_MM, reformat_figure, sample_plane
from osteoplan.views.render import legend_labels
from osteoplan.views.surface import SURFACE_STRUCTURES, surface_figure

BEAD_HU = 3000.0


@pytest.fixture(scope="module")
def long_case():
    """A neck 180 mm high; a path whose skin entry lies 110 mm below and 30 mm left of the target (outside the
    usual 110 mm field around the target), in the coronal plane of the target; a bright bead at the entry and at
    the target; a left common carotid low in the neck, beside the path (far from the target), an airway made of
    a pharynx only."""
    sp = (2.0, 1.5, 1.5)
    K, J, I = 90, 80, 80
    aff = axis_aligned_affine(sp, (-60.0, -60.0, -100.0))   # x, y in [-60, 58.5], z in [-100, 78]
    vol0 = Volume(np.zeros((K, J, I), np.float32), aff)
    kk, jj, ii = np.mgrid[:K, :J, :I]
    world = vol0.index_to_world(np.stack([kk, jj, ii], axis=-1).reshape(-1, 3).astype(float)).reshape(K, J, I, 3)
    x, y, z = world[..., 0], world[..., 1], world[..., 2]
    body = x ** 2 + y ** 2 < 50 ** 2
    spine = x ** 2 + (y - 10) ** 2 < 9 ** 2
    target = np.array([0.0, 6.0, 40.0])
    entry = np.array([30.0, 6.0, -70.0])
    carotid = ((x - 22) ** 2 + (y + 2) ** 2 < 3.5 ** 2) & (z < -20)
    pharynx = (x ** 2 + (y + 20) ** 2 < 6 ** 2) & (z > -40)
    hu = np.where(body, 40.0, -1000.0) + np.where(spine, 900.0, 0.0) - np.where(pharynx, 1040.0, 0.0)
    for p in (target, entry):
        hu[(np.abs(x - p[0]) <= 2.0) & (np.abs(y - p[1]) <= 2.0) & (np.abs(z - p[2]) <= 2.5)] = BEAD_HU
    vol = Volume(hu.astype(np.float32), aff)
    lm = LabelMap(vol, {"body": body, "bone": spine, "vertebrae_C2": spine, "common_carotid_artery_left": carotid,
                        "pharynx": pharynx, "airway": pharynx.copy()})
    path = PathSpec(entry, entry + 0.7 * (target - entry), target, instrument_diameter_mm=3.0)
    return vol, lm, path


def test_fit_square_frame_by_hand():
    pts = np.array([[0.0, 0.0], [30.0, 110.0]])
    # the points and a 15 mm margin span [-15, 45] x [-15, 125]: side 140; along y the frame must move to
    # [-15, 125] (centre 55), along x [-70, 70] around the anchor already holds [-15, 45]: not moved
    c, side = fit_square_frame(pts, 110.0, 15.0)
    assert side == pytest.approx(140.0)
    np.testing.assert_allclose(c, [0.0, 55.0])
    # a short path fits around the anchor: the frame is the usual one, unmoved
    c, side = fit_square_frame(np.array([[0.0, 0.0], [20.0, -30.0]]), 110.0, 15.0)
    assert side == 110.0 and np.all(c == 0.0)
    # a path that fits in the side but not around the anchor: the least shift (60 + 15 - 55 = 20 mm)
    c, side = fit_square_frame(np.array([[0.0, 0.0], [60.0, 0.0]]), 110.0, 15.0)
    assert side == 110.0
    np.testing.assert_allclose(c, [20.0, 0.0])


def _inside(rc, n_rows, n_cols, margin_px):
    r, c = rc
    return margin_px - 1e-6 <= r <= n_rows - 1 - margin_px + 1e-6 and margin_px - 1e-6 <= c <= n_cols - 1 - margin_px + 1e-6


@pytest.mark.parametrize("view", list(STANDARD_AXES))
def test_reformats_hold_the_whole_path_isotropic(long_case, view):
    vol, lm, path = long_case
    fig = reformat_figure(vol, path, view, lm)
    plane = fig._osteoplan_plane
    assert plane.n_rows == plane.n_cols
    # the path spans 110 mm on the coronal and sagittal planes: grown to 110 + 2 (margin + instrument radius), to
    # the pixel; 30 mm on the axial: unchanged
    assert plane.n_rows * plane.pixel_mm == (pytest.approx(STANDARD_FOV_MM) if view == "axial"
                                             else pytest.approx(110.0 + 2 * (PATH_MARGIN_MM + 1.5), abs=0.4))
    margin_px = PATH_MARGIN_MM / plane.pixel_mm
    for p in (path.skin_entry_lps_mm, path.bone_entry_lps_mm, path.target_lps_mm):
        assert _inside(plane.to_pixel(p), plane.n_rows, plane.n_cols, margin_px), (view, p)
    # the plane still passes through the target, and the image is drawn with square pixels
    assert abs((path.target_lps_mm - plane.centre_lps_mm) @ plane.normal) < 1e-9
    ax = fig.axes[0]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert abs(x1 - x0) / plane.n_cols == pytest.approx(abs(y0 - y1) / plane.n_rows)
    # orientation kept: patient left to the image right (axial, coronal), anterior left (sagittal), head up
    if view in ("axial", "coronal"):
        assert plane.to_pixel(path.skin_entry_lps_mm)[1] > plane.to_pixel(path.target_lps_mm)[1]
    if view in ("coronal", "sagittal"):
        assert plane.to_pixel(path.target_lps_mm)[0] < plane.to_pixel(path.skin_entry_lps_mm)[0]


def test_coronal_shows_the_entry_bead_where_the_plane_says(long_case):
    """Independent of the drawing: the CT sampled on the view's plane is bright at the pixels where the plane's own
    mapping puts the skin entry and the target (both lie in the coronal plane of the target)."""
    vol, lm, path = long_case
    plane = reformat_figure(vol, path, "coronal", lm)._osteoplan_plane
    img = sample_plane(vol, plane, order=0)
    for p in (path.skin_entry_lps_mm, path.target_lps_mm):
        r, c = np.rint(plane.to_pixel(p)).astype(int)
        assert img[r, c] == BEAD_HU


def test_short_path_keeps_the_target_centred_view():
    vol = Volume(np.zeros((40, 60, 60), np.float32), axis_aligned_affine((2.0, 2.0, 2.0), (-60.0, -60.0, -40.0)))
    path = PathSpec([20.0, -25.0, -15.0], [5.0, -5.0, -3.0], [0.0, 0.0, 0.0])
    plane = reformat_figure(vol, path, "coronal")._osteoplan_plane
    assert plane.n_rows * plane.pixel_mm == pytest.approx(STANDARD_FOV_MM)
    np.testing.assert_allclose(plane.centre_lps_mm, path.target_lps_mm)


@pytest.mark.parametrize("view", ["ap_open_mouth", "lateral", "progression"])
def test_fluoroscopy_holds_the_whole_path(long_case, view):
    vol, lm, path = long_case
    fig = drr_figure(vol, path, view, None, n_pixels=96)
    geo = fig._osteoplan_geometry
    assert geo.pixel_mm[0] == geo.pixel_mm[1] and geo.detector_size_mm[0] == geo.detector_size_mm[1]
    n = geo.n_pixels[0]
    for p in (path.skin_entry_lps_mm, path.bone_entry_lps_mm, path.target_lps_mm):
        rc = geo.project(p)
        margin_px = PATH_MARGIN_MM * geo.magnification_at(p) / geo.pixel_mm[0]
        assert _inside(rc, n, n, margin_px), (view, p, rc)
    # the beads are where the geometry projects the entry and the target (the same rays as the image)
    od = render_drr(vol, geo)
    for p in (path.skin_entry_lps_mm, path.target_lps_mm):
        r, c = np.rint(geo.project(p)).astype(int)
        local = od[max(r - 6, 0):r + 7, max(c - 6, 0):c + 7]
        rr, cc = np.unravel_index(np.argmax(local), local.shape)
        assert abs(rr + max(r - 6, 0) - r) <= 2 and abs(cc + max(c - 6, 0) - c) <= 2
    if view == "lateral":   # anterior (the entry is anterior of... level with the target here) / head up
        assert geo.project(path.target_lps_mm)[0] < geo.project(path.skin_entry_lps_mm)[0]
    if view == "ap_open_mouth":  # patient left on the image right
        assert geo.project(path.skin_entry_lps_mm)[1] > geo.project(path.target_lps_mm)[1]


def _letters(fig):
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    return {a.get_text(): a.get_window_extent(r) for a in fig.findobj(Annotation) if a.get_text().isalpha()}


@pytest.mark.parametrize("kind", ["coronal", "sagittal", "axial", "lateral", "ap_open_mouth"])
def test_orientation_letters_lie_outside_the_image(long_case, kind):
    vol, lm, path = long_case
    fig = (reformat_figure(vol, path, kind, lm) if kind in STANDARD_AXES
           else drr_figure(vol, path, kind, lm, n_pixels=64))
    boxes = _letters(fig)
    want = set(fig._osteoplan_labels.values())
    assert set(boxes) == want
    img = fig.axes[0].bbox
    for letter, bb in boxes.items():
        assert not bb.overlaps(img), letter
    # each letter beside its own edge: right/left outside the image's sides, top/bottom above/below it
    lab = fig._osteoplan_labels
    assert boxes[lab["right"]].x0 >= img.x1 and boxes[lab["left"]].x1 <= img.x0
    assert boxes[lab["top"]].y0 >= img.y1 and boxes[lab["bottom"]].y1 <= img.y0
    # nor on the title or the note below the image
    title = fig.axes[0].title.get_window_extent(fig.canvas.get_renderer())
    assert not boxes[lab["top"]].overlaps(title)


def test_3d_letters_outside_the_scene_and_oriented(long_case):
    vol, lm, path = long_case
    fig = surface_figure(vol, lm, path)
    boxes = _letters(fig)
    assert set(boxes) == {"L", "R", "S", "I"}
    img = fig.axes[0].bbox
    for letter, bb in boxes.items():
        assert not bb.overlaps(img), letter
    # viewed from the front: patient left on the image right, head up
    assert boxes["L"].x0 > boxes["R"].x1 and boxes["S"].y0 > boxes["I"].y1


def test_3d_legend_names_exactly_the_surfaces_drawn(long_case):
    """The carotid low in the neck, beside the path, is in the picture now that it holds the whole path; the
    airway, here its pharynx only, is drawn (and named) once, as the pharynx."""
    vol, lm, path = long_case
    fig = surface_figure(vol, lm, path)
    drawn = [c.get_gid() for c in fig.axes[0].collections if isinstance(c, Poly3DCollection) and c.get_gid()]
    structure_labels = [s for s in legend_labels(fig) if s in {t(n) for n in SURFACE_STRUCTURES}]
    # the legend in the table's order, the surfaces painted back to front (target bone and lesion last): same set
    assert sorted(structure_labels) == sorted(t(n) for n in drawn) and len(set(drawn)) == len(drawn)
    assert structure_labels == [t(n) for n in sorted(drawn, key=list(SURFACE_STRUCTURES).index)]
    assert "common_carotid_artery_left" in drawn and "pharynx" in drawn
    assert "airway" not in drawn and t("airway") not in legend_labels(fig)
