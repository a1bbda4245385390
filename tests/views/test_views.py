"""Views: reformat geometry, DRR line integrals and projection, rendering smoke on synthetic data."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.views import PathSpec, render_all
from osteoplan.views.drr import CArmGeometry, hu_to_mu, line_integrals, render_drr, standard_geometry
from osteoplan.views.reformat import Plane, path_plane_axes, sample_plane, view_plane
from osteoplan.views.render import orientation_letters


def _cube_volume(n=40, sp=(2.0, 1.0, 1.0), side_vox=(10, 20, 20), value=1.0):
    arr = np.zeros((n, n, n), np.float32)
    c = n // 2
    hk, hj, hi = (s // 2 for s in side_vox)
    arr[c - hk:c + hk, c - hj:c + hj, c - hi:c + hi] = value
    aff = axis_aligned_affine(sp, (-10.0, 5.0, -30.0))
    return Volume(arr, aff)


def test_orientation_letters():
    assert orientation_letters([1, 0, 0]) == "L"
    assert orientation_letters([-1, 0, 0]) == "R"
    assert orientation_letters([0, -1, 0]) == "A"
    assert orientation_letters([0, 0, -1]) == "I"
    assert orientation_letters([0.9, -0.5, 0]) == "LA"


def test_reformat_known_voxel_lands_on_known_pixel():
    aff = axis_aligned_affine((2.0, 1.0, 1.0), (-20.0, -30.0, 40.0))
    arr = np.zeros((30, 60, 60), np.float32)
    arr[12, 22, 41] = 1000.0
    vol = Volume(arr, aff)
    p = vol.index_to_world(np.array([12.0, 22.0, 41.0]))
    path = PathSpec(p + [30.0, 5.0, -10.0], p + [10.0, 2.0, -3.0], p)
    plane = view_plane("axial", path, fov_mm=40.0, pixel_mm=1.0)
    img = sample_plane(vol, plane, order=0)
    r, c = np.unravel_index(np.argmax(img), img.shape)
    # target at the centre of a 40x40 plane: pixel (19.5, 19.5) -> nearest sample grid point holds it
    rr, cc = plane.to_pixel(p)
    assert (rr, cc) == pytest.approx((19.5, 19.5))
    assert img.max() == 1000.0
    # a voxel 5 mm to the patient's left and 3 mm posterior lands 5 columns right, 3 rows down
    arr2 = np.zeros_like(arr)
    arr2[12, 22 + 3, 41 + 5] = 1000.0
    img2 = sample_plane(vol.with_array(arr2), Plane(p, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), 41, 41, 1.0),
                        order=0)
    assert np.unravel_index(np.argmax(img2), img2.shape) == (20 + 3, 20 + 5)


def test_path_planes_contain_the_path():
    d = np.array([-0.8, -0.2, 0.55])
    a, b, dd = path_plane_axes(d)
    assert abs(a @ dd) < 1e-12 and abs(b @ dd) < 1e-12 and abs(a @ b) < 1e-12
    assert a[2] > 0.8  # closest to superior
    path = PathSpec([40.0, -20.0, -20.0], [15.0, -8.0, -5.0], [0.0, 0.0, 0.0])
    for view in ("path_oblique", "path_oblique_orthogonal"):
        pl = view_plane(view, path)
        for pt in (path.skin_entry_lps_mm, path.target_lps_mm):
            assert abs((pt - pl.centre_lps_mm) @ pl.normal) < 1e-9
    down = view_plane("down_path", path)
    np.testing.assert_allclose(down.normal, path.direction, atol=1e-12)  # looking from skin to target


def test_drr_cube_line_integral_analytic():
    # cube 20 mm (j) x 20 mm (i) x 20 mm (k: 10 slices of 2 mm), mu = 0.02 /mm
    vol = _cube_volume(value=0.02)
    centre = vol.index_to_world(np.array([19.5, 19.5, 19.5]))
    for d, u in (((0, 1.0, 0), (1.0, 0, 0)), ((1.0, 0, 0), (0, 1.0, 0)), ((0, 0, 1.0), (1.0, 0, 0))):
        geo = CArmGeometry(centre, np.array(d), np.array(u), n_pixels=(33, 33), detector_size_mm=(66.0, 66.0))
        li = line_integrals(vol, geo, step_mm=0.1)
        assert li[16, 16] == pytest.approx(0.02 * 20.0, rel=2e-3)
    # outside the cube's shadow the integral is 0
    assert li[0, 0] == 0.0


def test_drr_hu_to_mu():
    np.testing.assert_allclose(hu_to_mu(np.array([-1000.0, 0.0, 1000.0, -2000.0]), mu_water=0.02),
                               [0.0, 0.02, 0.04, 0.0], atol=1e-7)


def test_drr_projection_matches_magnification():
    geo = CArmGeometry(np.array([0.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0]),
                       source_detector_mm=1000.0, source_isocentre_mm=600.0,
                       detector_size_mm=(200.0, 200.0), n_pixels=(201, 201))
    # detector pixel 0.995 mm; v = d x u = P x L = -S (image down = inferior)
    np.testing.assert_allclose(geo.detector_v, [0, 0, -1.0])
    rc = geo.project(np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 0.0, 6.0], [10.0, 100.0, 0.0]]))
    px = 200.0 / 201
    np.testing.assert_allclose(rc[0], [100.0, 100.0])
    np.testing.assert_allclose(rc[1], [100.0, 100.0 + 10.0 * 1000 / 600 / px])      # 16.67 mm right
    np.testing.assert_allclose(rc[2], [100.0 - 6.0 * 1000 / 600 / px, 100.0])        # superior -> up
    np.testing.assert_allclose(rc[3], [100.0, 100.0 + 10.0 * 1000 / 700 / px])      # deeper: less magnified


def test_drr_point_absorber_projects_where_geometry_says():
    aff = axis_aligned_affine((1.0, 1.0, 1.0), (-20.0, -20.0, -20.0))
    arr = np.full((41, 41, 41), -1000.0, np.float32)
    arr[30:33, 10:13, 25:28] = 3000.0   # small dense block centred at index (31, 11, 26)
    vol = Volume(arr, aff)
    p = vol.index_to_world(np.array([31.0, 11.0, 26.0]))
    geo = standard_geometry("ap_open_mouth", np.zeros(3), n_pixels=(128, 128), detector_size_mm=(128.0, 128.0))
    od = render_drr(vol, geo, step_mm=0.25)
    rows, cols = np.indices(od.shape)
    r, c = (od * rows).sum() / od.sum(), (od * cols).sum() / od.sum()   # centroid of the shadow
    pr, pc = geo.project(p)
    assert abs(r - pr) <= 0.5 and abs(c - pc) <= 0.5
    # patient left (+x) on image right, superior (+z) up
    assert pc > 63.5 and pr < 63.5


def test_standard_geometries_orientation():
    iso = np.zeros(3)
    ap = standard_geometry("ap_open_mouth", iso)
    np.testing.assert_allclose(ap.detector_u, [1, 0, 0])
    np.testing.assert_allclose(ap.detector_v, [0, 0, -1])
    lat = standard_geometry("lateral", iso)
    np.testing.assert_allclose(lat.detector_v, [0, 0, -1])
    d = np.array([-0.7, 0.2, 0.5])
    be = standard_geometry("bullseye", iso, d)
    np.testing.assert_allclose(be.direction, d / np.linalg.norm(d))
    pr = standard_geometry("progression", iso, d)
    assert abs(pr.direction @ be.direction) < 1e-9
    # the path projects to one point in the bull's-eye view
    pts = be.project(np.stack([iso - 50 * be.direction, iso]))
    np.testing.assert_allclose(pts[0], pts[1], atol=1e-9)
    # the planner's C-arm detector direction (detector on the skin side: beam = -path) is used when given
    be2 = standard_geometry("bullseye", iso, d, beam_direction=-d)
    np.testing.assert_allclose(be2.direction, -d / np.linalg.norm(d))
    pts = be2.project(np.stack([iso - 50 * d / np.linalg.norm(d), iso]))
    np.testing.assert_allclose(pts[0], pts[1], atol=1e-9)


def test_pathspec_from_plan_takes_planner_carm_views():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))
    from export_planfactory import make_plan

    from osteoplan.views.geometry import pathspec_from_plan

    vol = Volume(np.zeros((4, 4, 4), np.float32), np.eye(4))
    plan = make_plan(vol, [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0.0, 0.0, 0.0])
    ps = pathspec_from_plan(plan)
    d = ps.direction
    np.testing.assert_allclose(ps.beam_directions["bullseye"], -d, atol=1e-3)
    assert ps.carm_labels["bullseye"] == "LAO 78° / CRAN 32°"
    assert ps.screw_diameter_mm == 4.0 and ps.screw_length_mm == 34.0
    assert ps.margins_mm["spinal_canal"] == 2.0 and ps.status["airway"] == "fail"


@pytest.fixture(scope="module")
def synthetic_case():
    aff = axis_aligned_affine((1.5, 1.0, 1.0), (-40.0, -40.0, -40.0))
    K, J, I = 54, 80, 80
    kk, jj, ii = np.mgrid[:K, :J, :I]
    world = np.stack([ii - 40.0, jj - 40.0, kk * 1.5 - 40.0], axis=-1)
    body = (world[..., 0] ** 2 + world[..., 1] ** 2) < 35 ** 2
    bone = (world[..., 0] ** 2 + (world[..., 1] - 5) ** 2) < 8 ** 2
    art = ((world[..., 0] - 14) ** 2 + (world[..., 1] - 6) ** 2) < 2.5 ** 2
    arr = np.where(body, 40.0, -1000.0) + np.where(bone, 900.0, 0.0) + np.where(art, 60.0, 0.0)
    vol = Volume(arr.astype(np.float32), aff)
    lm = LabelMap(vol, {"body": body, "bone": bone, "vertebrae_C2": bone, "vertebral_artery_left": art})
    path = PathSpec([34.0, -12.0, -6.0], [7.0, 2.0, -1.0], [0.0, 5.0, 0.0], instrument_diameter_mm=3.0,
                    screw_diameter_mm=4.0, screw_length_mm=12.0, margins_mm={"vertebral_artery_left": 3.0})
    return vol, lm, path


def test_render_all_writes_every_view(synthetic_case, tmp_path):
    vol, lm, path = synthetic_case
    out = render_all(tmp_path, vol, path, lm, drr_pixels=128)
    assert list(out) == ["axial", "coronal", "sagittal", "path_oblique", "path_oblique_orthogonal", "down_path",
                         "drr_ap_open_mouth", "drr_lateral", "drr_bullseye", "drr_progression", "view_3d"]
    for p in out.values():
        im = Image.open(io.BytesIO(p.read_bytes()))
        assert im.format == "PNG" and im.size[0] > 400
        assert np.asarray(im.convert("L")).std() > 5  # not blank


def test_drr_display_convention_mirrors_posterior_beams():
    iso = np.zeros(3)
    # progression view with the detector anterior (beam posterior -> anterior, as C-arms usually are)
    pa = standard_geometry("progression", iso, np.array([-1.0, 0.0, 0.3]), beam_direction=np.array([0.0, -1.0, 0.0]))
    assert pa.mirror
    rc = pa.project(np.array([[20.0, 0.0, 0.0], [0.0, 0.0, 20.0]]))
    assert rc[0, 1] > 255.5            # a point on the patient's left lands on the image right
    assert rc[1, 0] < 255.5            # superior is up
    # line integrals follow the same (mirrored) pixel grid
    aff = axis_aligned_affine((1.0, 1.0, 1.0), (-20.0, -20.0, -20.0))
    arr = np.zeros((41, 41, 41), np.float32)
    arr[18:23, 18:23, 33:38] = 1.0     # block on the patient's left (x = +15 mm)
    g = standard_geometry("progression", iso, np.array([-1.0, 0.0, 0.3]), beam_direction=np.array([0.0, -1.0, 0.0]),
                          n_pixels=(64, 64), detector_size_mm=(128.0, 128.0))
    od = line_integrals(Volume(arr, aff), g, step_mm=0.5)
    cols = np.indices(od.shape)[1]
    assert (od * cols).sum() / od.sum() > 31.5
    assert abs((od * cols).sum() / od.sum() - g.project(np.array([15.0, 0.0, 0.0]))[1]) < 0.7


def test_instrument_band_has_the_real_diameter():
    from osteoplan.views.reformat import _band

    band = _band(np.array([0.0, 0.0]), np.array([30.0, 40.0]), 1.525)   # 3.05 mm trocar
    # the two long edges are parallel to the path and 3.05 mm apart
    e1, e2 = band[1] - band[0], band[2] - band[3]
    np.testing.assert_allclose(e1, [30.0, 40.0])
    np.testing.assert_allclose(e2, [30.0, 40.0])
    n = np.array([-40.0, 30.0]) / 50.0
    assert abs((band[0] - band[3]) @ n) == pytest.approx(3.05)


def test_margin_distance_field_is_exact_within_the_margin():
    from scipy.ndimage import distance_transform_edt

    from osteoplan.views.reformat import _structure_fields

    vol = Volume(np.zeros((30, 40, 50), np.float32), axis_aligned_affine((2.0, 0.7, 0.9)))
    m = np.zeros(vol.shape, bool)
    m[14:17, 18:21, 22:26] = True
    lo, sub, dist = _structure_fields(m, vol, margin_mm=3.0)
    full = distance_transform_edt(~m, sampling=vol.spacing_mm)
    sl = tuple(slice(int(a), int(a) + s) for a, s in zip(lo, sub.shape))
    inside = full[sl] <= 3.0 + 1e-9
    np.testing.assert_allclose(dist[inside], full[sl][inside], atol=1e-5)
    # every voxel of the full grid within the margin lies in the sub-box
    assert (full <= 3.0).sum() == inside.sum()


def test_path_drawn_at_the_radius_the_planner_measured_clearances_with():
    """The instrument band must be the capsule the clearances were computed for (radius from the plan)."""
    from osteoplan.views.geometry import pathspec_from_plan

    plan = {"protocol_name": "c2-dens-lateral", "trajectories": [{
        "skin_entry_lps_mm": [40.0, -30.0, -60.0], "bone_entry_lps_mm": [6.0, -5.0, 0.0],
        "target_lps_mm": [0.0, 2.0, 15.0], "instrument_radius_mm": 2.25, "clearances": []}]}
    assert pathspec_from_plan(plan).instrument_diameter_mm == pytest.approx(4.5)


def test_3d_view_does_not_label_the_axis_along_the_line_of_sight():
    from osteoplan.views.surface import visible_axis_labels

    # default view: from the front (azimuth -70 deg, i.e. mostly -y = anterior in LPS), slightly from the left
    labels = {p + n for _, p, n in visible_axis_labels(15.0, -70.0)}
    assert labels == {"LR", "SI"}          # A and P would both sit over the spine: left out
    # from straight above: S/I along the line of sight
    assert {p + n for _, p, n in visible_axis_labels(90.0, 0.0)} == {"LR", "PA"}
    # an oblique view keeps all three
    assert len(visible_axis_labels(30.0, -45.0)) == 3
