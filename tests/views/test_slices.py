"""The viewer's fast slices (osteoplan.views.slices) on known geometry: a sphere of radius 10 mm and a path."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.views import PathSpec
from osteoplan.views.colors import INSTRUMENT_COLOR, TARGET_COLOR, structure_color
from osteoplan.views.slices import PIXEL_MM, make_scene, offset_range_mm, render_slice, slice_plane

R_MM = 10.0
MARGIN_MM = 3.0


@pytest.fixture(scope="module")
def scene():
    n = 80  # 1 mm voxels, the sphere centred 20 mm to the patient's right of the target
    aff = axis_aligned_affine((1.0, 1.0, 1.0), (-40.0, -40.0, -40.0))
    vol = Volume(np.full((n, n, n), 40.0, np.float32), aff)
    pts = vol.index_to_world(np.stack(np.meshgrid(*(np.arange(n),) * 3, indexing="ij"), axis=-1).astype(float))
    centre = np.array([-20.0, 0.0, 0.0])
    sphere = np.linalg.norm(pts - centre, axis=-1) <= R_MM
    lm = LabelMap(vol, {"common_carotid_artery_right": sphere}, {"common_carotid_artery_right": "test"})
    target = np.array([0.0, 0.0, 0.0])
    path = PathSpec(np.array([20.0, -30.0, -20.0]), np.array([5.0, -8.0, -5.0]), target, instrument_diameter_mm=2.0,
                    margins_mm={"common_carotid_artery_right": MARGIN_MM})
    return make_scene(vol, path, lm), centre


def _img(scene_, view, offset_mm, window="soft_tissue"):
    return np.asarray(Image.open(io.BytesIO(render_slice(scene_, view, offset_mm, window))).convert("RGB"))


def _colour_pixels(img, rgb):
    return np.argwhere(np.all(img == np.rint(np.asarray(rgb) * 255).astype(np.uint8), axis=-1))


@pytest.mark.parametrize("offset_mm", [0.0, 6.0])
def test_sphere_outline_and_margin_radius(scene, offset_mm):
    """Axial slices: the outline is a circle of radius sqrt(R^2 - z^2) around the sphere's centre (hand-computed:
    10 mm at z = 0, 8 mm at z = 6 mm); the dashed margin ring lies 3 mm further out."""
    sc, centre = scene
    img = _img(sc, "axial", offset_mm)
    plane = slice_plane(sc.path, "axial", offset_mm)
    c_rc = plane.to_pixel(centre)
    pix = _colour_pixels(img, structure_color("common_carotid_artery_right"))
    dist_mm = np.linalg.norm(pix - c_rc, axis=1) * PIXEL_MM
    expected = np.sqrt(R_MM ** 2 - offset_mm ** 2)
    outline = dist_mm[dist_mm < expected + 1.5]
    ring = dist_mm[dist_mm >= expected + 1.5]
    # boundary pixels of the sampled mask: within a voxel (1 mm) of the true circle
    assert np.median(outline) == pytest.approx(expected, abs=0.8)
    assert outline.min() > expected - 1.5 and outline.max() < expected + 1.5
    # the margin ring: the region within 3 mm of the sphere, sqrt((R+3)^2 - z^2) in this slice
    assert np.median(ring) == pytest.approx(np.sqrt((R_MM + MARGIN_MM) ** 2 - offset_mm ** 2), abs=0.8)


def test_target_and_instrument(scene):
    sc, _ = scene
    img = _img(sc, "axial", 0.0)
    n = img.shape[0]
    assert n == round(110 / PIXEL_MM) and n % 2 == 1
    assert tuple(img[n // 2, n // 2]) == tuple(int(round(x * 255)) for x in TARGET_COLOR)
    # 25 mm above the target the cross is gone and the path projection (dotted) is still drawn
    far = _img(sc, "axial", 25.0)
    assert tuple(far[n // 2, n // 2]) != tuple(int(round(x * 255)) for x in TARGET_COLOR)
    assert len(_colour_pixels(far, INSTRUMENT_COLOR)) > 10
    # the instrument's cut: in the axial slice 10 mm below the target (z = -10) the path is at
    # target + t (skin - target) with t = 0.5: (10, -15) mm, i.e. 25 columns right (patient left) and 37.5 rows up
    plane = slice_plane(sc.path, "axial", -10.0)
    r, c = plane.to_pixel(np.array([10.0, -15.0, -10.0]))
    assert (r, c) == pytest.approx((n // 2 - 15 / PIXEL_MM, n // 2 + 10 / PIXEL_MM))
    below = _img(sc, "axial", -10.0)
    blend = below[int(round(r)), int(round(c))].astype(float) / 255
    assert blend[1] > blend[0] + 0.2 and blend[2] > blend[0] + 0.2  # cyan-tinted (instrument colour blended)


def test_windows_and_errors(scene):
    sc, _ = scene
    bone = _img(sc, "axial", 0.0, "bone")
    soft = _img(sc, "axial", 0.0, "soft_tissue")
    # 40 HU everywhere: level 40 / width 400 gives mid-grey 0.5; level 400 / width 1800 gives (40-(-500))/1800 = 0.3
    r = c = soft.shape[0] // 2 + 50  # 20 mm posterior and 20 mm left of the target: inside the CT, nothing drawn
    assert tuple(soft[r, c]) == (128, 128, 128)
    assert tuple(bone[r, c]) == (76, 76, 76)
    with pytest.raises(ValueError, match="unknown view"):
        render_slice(sc, "oblique")
    with pytest.raises(ValueError, match="unknown window"):
        render_slice(sc, "axial", 0.0, "lung")


def test_offset_range(scene):
    sc, _ = scene
    lo, hi, step = offset_range_mm("axial", sc.path, sc.volume)
    # the CT spans S -40..39 mm around a target at 0: limited to +/- 55 mm (half the field of view), 1 mm steps
    assert (lo, hi, step) == (-40.0, 39.0, 1.0)


@pytest.mark.parametrize("view", ["path_oblique", "path_oblique_orthogonal"])
def test_path_planes_contain_the_path(scene, view):
    """The path planes contain the whole path: the image centre (the path's middle) is inside the instrument's
    cut, the target's red cross is where the plane maps the target; 5 mm off the plane both are gone."""
    sc, _ = scene
    img = _img(sc, view, 0.0)
    plane = slice_plane(sc.path, view, 0.0)
    n = img.shape[0]
    assert plane.n_rows == n and n == round(max(90.0, sc.path.length_mm + 30.0) / PIXEL_MM)
    mid = np.rint(plane.to_pixel((sc.path.skin_entry_lps_mm + sc.path.target_lps_mm) / 2)).astype(int)
    px = img[mid[0], mid[1]].astype(float) / 255
    assert px[1] > px[0] + 0.2 and px[2] > px[0] + 0.2  # cyan-tinted: the instrument
    r, c = np.rint(plane.to_pixel(sc.path.target_lps_mm)).astype(int)
    assert tuple(img[r, c]) == tuple(int(round(x * 255)) for x in TARGET_COLOR)
    off = _img(sc, view, 5.0)
    assert tuple(off[r, c]) != tuple(int(round(x * 255)) for x in TARGET_COLOR)
