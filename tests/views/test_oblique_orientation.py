"""The planes along the path are displayed as the standard view they are closest to (near-sagittal: anterior left,
head up; near-coronal: patient left on the image right, head up; near-axial: anterior up, patient left on the right),
their edge letters say the plane's true directions, and the CT is where the plane's geometry says."""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.views import PathSpec
from osteoplan.views.reformat import STANDARD_AXES, reformat_figure, sample_plane, view_plane
from osteoplan.views.slices import slice_plane

PATH_VIEWS = ("path_oblique", "path_oblique_orthogonal")

#: LPS normal of each standard plane, written out here (not taken from the code under test).
NORMALS = {"sagittal": np.array([1.0, 0, 0]), "coronal": np.array([0, 1.0, 0]), "axial": np.array([0, 0, 1.0])}

#: Path directions (skin -> target, LPS): near-sagittal (the demo's anterior C2 path, a horizontal antero-posterior
#: one), near-coronal (steep from the left, horizontal from the left), and 45° cases between the standard planes.
DIRECTIONS = {
    "demo_anterior_c2": (-0.22, 0.39, 0.90),
    "sagittal_horizontal": (0.15, 0.98, 0.10),
    "sagittal_steep_down": (0.05, -0.30, -0.95),
    "coronal_steep": (0.47, 0.04, 0.88),
    "coronal_horizontal": (-0.97, 0.10, 0.20),
    "45_left_posterior": (1.0, 1.0, 0.0),
    "45_left_superior": (1.0, 0.0, 1.0),
    "45_posterior_superior": (0.0, 1.0, 1.0),
    "diagonal": (1.0, 1.0, 1.0),
    "diagonal_right_anterior": (-1.0, -1.0, 0.4),
}

BEAD_HU, LEFT_BEAD_HU, UP_BEAD_HU = 3000.0, 2000.0, 1500.0
_LETTER = {0: ("R", "L"), 1: ("A", "P"), 2: ("I", "S")}


def _path(direction) -> PathSpec:
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    target = np.array([1.0, -2.0, 3.0])
    return PathSpec(target - 60.0 * d, target - 25.0 * d, target, instrument_diameter_mm=3.0)


def _closest_views(normal) -> list[str]:
    """Every standard view whose normal makes the smallest angle with *normal* (several on a 45° tie)."""
    c = {k: abs(float(np.asarray(normal) @ n)) for k, n in NORMALS.items()}
    best = max(c.values())
    return [k for k, v in c.items() if v > best - 1e-9]


def _displayed_as(plane, view: str) -> bool:
    """Image left and up dotted with the standard view's left and up are both positive."""
    right, down = (np.asarray(x, float) for x in STANDARD_AXES[view])
    return bool((-plane.u) @ (-right) > 1e-6 and (-plane.v) @ (-down) > 1e-6)


@pytest.mark.parametrize("name", list(DIRECTIONS))
@pytest.mark.parametrize("view", PATH_VIEWS)
def test_path_planes_are_displayed_as_their_closest_standard_view(name, view):
    path = _path(DIRECTIONS[name])
    plane = view_plane(view, path)
    # exact geometry: the axes are the plane's own, orthonormal, and the path lies in the plane, drawn horizontally
    # or vertically (one image axis along the path)
    assert abs(plane.u @ plane.v) < 1e-12
    assert abs(path.direction @ plane.normal) < 1e-12
    assert abs((path.target_lps_mm - plane.centre_lps_mm) @ plane.normal) < 1e-9
    assert max(abs(path.direction @ plane.u), abs(path.direction @ plane.v)) == pytest.approx(1.0, abs=1e-12)
    closest = _closest_views(plane.normal)
    assert any(_displayed_as(plane, v) for v in closest), (name, view, closest, plane.u, plane.v)
    # the web viewer's slices along the path use the same planes
    sl = slice_plane(path, view)
    np.testing.assert_allclose(sl.u, plane.u, atol=1e-12)
    np.testing.assert_allclose(sl.v, plane.v, atol=1e-12)


def test_demo_path_plane_has_anterior_left_like_the_sagittal_view():
    """The reviewer's case (the demo's anterior C2 path, near-sagittal): anterior on the image left, head up, as
    the sagittal reformat and the lateral fluoroscopy; the orthogonal plane (near-coronal) patient left right."""
    path = _path(DIRECTIONS["demo_anterior_c2"])
    obl = view_plane("path_oblique", path)
    assert _closest_views(obl.normal) == ["sagittal"]
    assert obl.u[1] > 0.7 and obl.v[2] < -0.8        # right is posterior (anterior left), down is inferior
    orth = view_plane("path_oblique_orthogonal", path)
    assert _closest_views(orth.normal) == ["coronal"]
    assert orth.u[0] > 0.8 and orth.v[2] < -0.8     # right is the patient's left, down is inferior


def _edge_letters_true(letters: str, vec) -> bool:
    """The letters name the edge's LPS direction: the first its largest component with its sign, every letter a
    component of that sign (independent of the code's letter function)."""
    v = np.asarray(vec, float) / np.linalg.norm(vec)
    axis = int(np.argmax(np.abs(v)))
    if letters[0] != _LETTER[axis][int(v[axis] > 0)]:
        return False
    for ch in letters:
        ax = next(k for k, pair in _LETTER.items() if ch in pair)
        if abs(v[ax]) < 0.1 or _LETTER[ax][int(v[ax] > 0)] != ch:
            return False
    return True


@pytest.mark.parametrize("name", ["demo_anterior_c2", "coronal_horizontal", "diagonal"])
def test_edge_letters_follow_the_displayed_axes(name):
    path = _path(DIRECTIONS[name])
    vol = Volume(np.full((20, 20, 20), 40.0, np.float32), axis_aligned_affine((4.0, 4.0, 4.0), (-40.0, -40.0, -40.0)))
    for view in PATH_VIEWS:
        fig = reformat_figure(vol, path, view, pixel_mm=2.0)
        plane, lab = fig._osteoplan_plane, fig._osteoplan_labels
        for edge, vec in (("right", plane.u), ("left", -plane.u), ("bottom", plane.v), ("top", -plane.v)):
            assert _edge_letters_true(lab[edge], vec), (name, view, edge, lab[edge], vec)
        if name == "demo_anterior_c2" and view == "path_oblique":
            assert lab["left"][0] == "A" and lab["top"][0] == "S"   # anterior left, head up
        # drawn with image right = +u and image down = +v (matplotlib's y axis inverted by the extent)
        ax = fig.axes[0]
        assert ax.get_xlim()[0] < ax.get_xlim()[1] and ax.get_ylim()[0] > ax.get_ylim()[1]
        import matplotlib.pyplot as plt

        plt.close(fig)


@pytest.fixture(scope="module")
def bead_volume():
    """Air, 1 mm voxels, x, y, z in [-40, 39], and the LPS position of every voxel (K, J, I, 3); beads (cubes of
    4 mm) are added per case."""
    vol = Volume(np.full((80, 80, 80), -1000.0, np.float32),
                 axis_aligned_affine((1.0, 1.0, 1.0), (-40.0, -40.0, -40.0)))
    kk, jj, ii = np.mgrid[:80, :80, :80]
    world = vol.index_to_world(np.stack([kk, jj, ii], -1).reshape(-1, 3).astype(float)).reshape(80, 80, 80, 3)
    return vol, world


def _with_beads(vol_world, beads) -> Volume:
    vol, world = vol_world
    hu = vol.array.copy()
    for p, value in beads:
        hu[np.all(np.abs(world - np.asarray(p)) <= 2.0, axis=-1)] = value
    return vol.with_array(hu)


@pytest.mark.parametrize("name", ["demo_anterior_c2", "sagittal_horizontal", "coronal_steep", "coronal_horizontal",
                                  "45_left_superior", "diagonal"])
@pytest.mark.parametrize("view", PATH_VIEWS)
def test_beads_are_where_the_geometry_says_and_oriented(bead_volume, name, view):
    """Independent of the drawing: the CT sampled on the plane is bright at the pixel the plane maps the target to;
    a bead 12 mm from the target towards the closest standard view's image left (its in-plane part) lies in a
    column left of the target's, one towards its image top in a row above."""
    path = _path(DIRECTIONS[name])
    plane = view_plane(view, path, pixel_mm=1.0, fov_mm=60.0)
    plane_centred = type(plane)(path.target_lps_mm, plane.u, plane.v, plane.n_rows, plane.n_cols, plane.pixel_mm)
    n = plane.normal
    results = []
    for std in _closest_views(n):
        right, down = (np.asarray(x, float) for x in STANDARD_AXES[std])
        left_in = -right - (-right @ n) * n
        up_in = -down - (-down @ n) * n
        tgt = path.target_lps_mm
        vol = _with_beads(bead_volume, [(tgt, BEAD_HU),
                                        (tgt + 12.0 * left_in / np.linalg.norm(left_in), LEFT_BEAD_HU),
                                        (tgt + 12.0 * up_in / np.linalg.norm(up_in), UP_BEAD_HU)])
        img = sample_plane(vol, plane_centred, order=0)
        r, c = np.rint(plane_centred.to_pixel(tgt)).astype(int)
        assert img[r, c] == BEAD_HU
        lr, lc = np.argwhere(img == LEFT_BEAD_HU).mean(axis=0)
        ur, uc = np.argwhere(img == UP_BEAD_HU).mean(axis=0)
        results.append(lc < c - 3 and ur < r - 3)
    assert any(results), (name, view)


@pytest.mark.parametrize("name", ["demo_anterior_c2", "sagittal_horizontal", "coronal_steep", "coronal_horizontal",
                                  "45_left_posterior", "diagonal", "diagonal_right_anterior"])
def test_view_down_the_path_is_shown_as_the_bullseye_fluoroscopy(name):
    """The two end-on views of a report (the reformat down the path and the bull's-eye fluoroscopy) have the same
    image right and down, never mirror images of each other; and a posterior approach (the vertebroplasty's)
    shows the patient's left on the image right, head up."""
    from osteoplan.views.drr import standard_geometry

    path = _path(DIRECTIONS[name])
    pl = view_plane("down_path", path)
    geo = standard_geometry("bullseye", path.target_lps_mm, path_direction=path.direction)
    np.testing.assert_allclose(pl.u, geo.detector_u, atol=1e-9)
    np.testing.assert_allclose(pl.v, geo.detector_v, atol=1e-9)
    np.testing.assert_allclose(abs(pl.normal @ path.direction), 1.0, atol=1e-12)   # perpendicular to the path
    posterior = view_plane("down_path", _path((0.2, -0.95, 0.1)))   # skin posterior, needle towards anterior
    assert posterior.u[0] > 0.9 and posterior.v[2] < -0.9
