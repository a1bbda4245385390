"""Views of a vertebroplasty plan (several needles, transpedicular) on a synthetic vertebra: which images, their
planes and orientation, the bull's-eye (the needle end-on, inside its pedicle's ring), and that a C2 plan keeps
its images."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))
from export_planfactory import make_plan, make_vertebroplasty_plan, synthetic_vertebra  # noqa: E402

from osteoplan.imaging.volume import Volume  # noqa: E402
from osteoplan.views import image_plan, pathspecs_from_plan, render_all  # noqa: E402
from osteoplan.views.drr import (CArmGeometry, drr_figure, full_chord_mask, line_integrals,  # noqa: E402
                                 standard_geometry)
from osteoplan.views.reformat import view_plane  # noqa: E402
from osteoplan.views.render import legend_labels, orientation_caption  # noqa: E402


@pytest.fixture(scope="module")
def case():
    vol, lm, needles = synthetic_vertebra()
    plan = make_vertebroplasty_plan(vol, needles)
    return vol, lm, plan


def test_c2_plan_keeps_its_image_names():
    vol = Volume(np.zeros((4, 4, 4), np.float32), np.eye(4))
    paths = pathspecs_from_plan(make_plan(vol, [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0.0, 0.0, 0.0]))
    assert [n for n, *_ in image_plan(paths)] == [
        "axial", "coronal", "sagittal", "path_oblique", "path_oblique_orthogonal", "down_path",
        "drr_ap_open_mouth", "drr_lateral", "drr_bullseye", "drr_progression"]


def test_bipedicular_plan_has_per_needle_pedicle_views(case):
    vol, lm, plan = case
    paths = pathspecs_from_plan(plan)
    assert [(p.level, p.side, p.at_pedicle) for p in paths] == [("L1", "left", True), ("L1", "right", True)]
    imgs = {n: (v, i, drawn) for n, v, i, drawn in image_plan(paths)}
    assert list(imgs) == ["axial", "coronal", "sagittal", "pedicle_axial_1", "path_oblique_1", "pedicle_axial_2",
                          "path_oblique_2", "drr_ap", "drr_lateral", "drr_bullseye_1", "drr_bullseye_2"]
    assert imgs["drr_ap"][2] == (0, 1)            # both needles on the overview
    assert imgs["pedicle_axial_2"][1:] == (1, (0, 1))   # same level: drawn together
    assert imgs["drr_bullseye_2"][1:] == (1, (1,))


def test_pedicle_axial_plane_contains_the_needle_and_reads_as_an_axial(case):
    _, _, plan = case
    for p in pathspecs_from_plan(plan):
        plane = view_plane("pedicle_axial", p)
        assert abs(p.direction @ plane.normal) < 1e-9
        assert abs((p.target_lps_mm - plane.centre_lps_mm) @ plane.normal) < 1e-3   # points rounded to 1 µm
        assert plane.u[0] > 0.9 and plane.v[1] > 0.9 and plane.normal[2] > 0.9   # L right, P down, seen from below
        assert orientation_caption(plane.u, plane.v) == "patient left on image right, anterior up"
        # the needle's target and bone entry land inside the picture, the target anterior (up) of the entry
        r_t, c_t = plane.to_pixel(p.target_lps_mm)
        r_b, _ = plane.to_pixel(p.bone_entry_lps_mm)
        assert 0 <= r_t < plane.n_rows and 0 <= c_t < plane.n_cols and r_t < r_b


def test_bullseye_needle_projects_to_one_pixel_and_the_raycast_agrees(case):
    """The needle seen end-on: every point of it projects within 1 pixel of the target, by the geometry and by
    ray-casting a rod along the needle (an independent check: the brightest detector pixel is there)."""
    vol, _, plan = case
    p = pathspecs_from_plan(plan)[0]
    geo = standard_geometry("bullseye", p.target_lps_mm, p.direction, beam_direction=p.beam_directions["bullseye"],
                            n_pixels=(129, 129))
    pts = p.skin_entry_lps_mm + np.linspace(0.0, 1.0, 11)[:, None] * (p.target_lps_mm - p.skin_entry_lps_mm)
    rc = geo.project(pts)
    assert np.abs(rc - rc[-1]).max() < 1.0
    # a 1 mm rod along the needle, ray-cast: it integrates over its whole length only along the central ray
    xyz = vol.index_to_world(np.stack(np.meshgrid(*(np.arange(n, dtype=float) for n in vol.shape), indexing="ij"),
                                      axis=-1).reshape(-1, 3))
    t = np.clip((xyz - p.skin_entry_lps_mm) @ p.direction, 0.0, p.length_mm)
    rod = (np.linalg.norm(xyz - (p.skin_entry_lps_mm + t[:, None] * p.direction), axis=1) < 1.0).reshape(vol.shape)
    img = line_integrals(vol.with_array(rod.astype(np.float32)), geo, step_mm=0.25)
    r, c = np.unravel_index(np.argmax(img), img.shape)
    assert abs(r - rc[-1, 0]) <= 1.0 and abs(c - rc[-1, 1]) <= 1.0


def test_bullseye_outlines_the_needles_own_pedicle(case):
    vol, lm, plan = case
    left, right = pathspecs_from_plan(plan)
    fig = drr_figure(vol, left, "bullseye", lm, n_pixels=96)
    labels = legend_labels(fig)
    assert "pedicle L1 left" in labels and "pedicle L1 right" not in labels
    # the target (the needle end-on) lies inside the left pedicle's projected ring
    geo = fig._osteoplan_geometry
    small = CArmGeometry(geo.isocentre_lps_mm, geo.direction, geo.detector_u, geo.source_detector_mm,
                         geo.source_isocentre_mm, geo.detector_size_mm, (96, 96), mirror=geo.mirror)
    sil = line_integrals(vol.with_array(lm.get("pedicle_L1_left").astype(np.float32)), small, step_mm=0.5)
    r, c = np.round(small.project(left.target_lps_mm)).astype(int)
    assert sil[r, c] > 5.0   # more than 5 mm of pedicle along the ray through the needle: the eye of the ring
    ap = drr_figure(vol, left, "ap", lm, n_pixels=64, others=(right,), isocentre_lps_mm=(left.target_lps_mm
                                                                                        + right.target_lps_mm) / 2)
    assert {"pedicle L1 left", "pedicle L1 right", "vertebral body L1"} <= set(legend_labels(ap))
    assert "Simulated fluoroscopy: AP" in ap.axes[0].get_title() and "open-mouth" not in ap.axes[0].get_title()


def test_full_chord_mask_drops_rays_leaving_through_the_top(case):
    vol, _, _ = case
    geo = standard_geometry("lateral", np.zeros(3), n_pixels=(64, 64))
    full = full_chord_mask(vol, geo)
    top_z = vol.index_to_world(np.array([vol.shape[0] - 0.5, 0.0, 0.0]))[2]
    # rows whose central-plane point (x = 0) is well above the top face see only part of the box
    for r in range(64):
        z = -(r - 31.5) * geo.pixel_mm[1] / geo.magnification
        if z > top_z + 3.0:
            assert not full[r, 32]
        if abs(z) < 10.0:
            assert full[r, 32]


def test_render_all_vertebroplasty(case, tmp_path):
    vol, lm, plan = case
    first, *rest = pathspecs_from_plan(plan)
    out = render_all(tmp_path, vol, first, lm, drr_pixels=48, others=tuple(rest))
    assert list(out) == [n for n, *_ in image_plan([first, *rest])] + ["view_3d"]
    assert all(p.stat().st_size > 1000 for p in out.values())
