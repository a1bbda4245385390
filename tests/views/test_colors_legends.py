"""Colours (one per structure and side), legends (the instrument and every structure drawn) and orientation
(sagittal reformats and lateral fluoroscopy face the same way, said in words) of every view."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.views import PathSpec
from osteoplan.views.colors import (INSTRUMENT_COLOR, SCREW_COLOR, STRUCTURE_COLORS, hex_color,
                                    structure_color)
from osteoplan.views.drr import DRR_VIEWS, drr_figure, standard_geometry
from osteoplan.views.reformat import REFORMAT_VIEWS, STANDARD_AXES, reformat_figure, view_plane
from osteoplan.views.render import legend_labels, orientation_caption
from osteoplan.views.surface import surface_figure

PAIRED = ("common_carotid_artery", "internal_carotid_artery", "internal_jugular_vein", "vertebral_artery",
          "vertebral_artery_canal", "parotid_gland")
REQUIRED = ["pharynx", "larynx", "trachea", "esophagus", "airway", "spinal_canal", "spinal_cord", "mandible",
            "vertebrae_C2", "lesion"] + [f"{p}_{s}" for p in PAIRED for s in ("left", "right")]


def _lab(rgb):
    from skimage.color import rgb2lab

    return rgb2lab(np.asarray(rgb, float).reshape(1, 1, 3))[0, 0]


class TestColours:
    def test_every_required_structure_has_its_own_table_colour(self):
        for name in REQUIRED:
            assert name in STRUCTURE_COLORS, name
        hexes = [hex_color(c) for c in STRUCTURE_COLORS.values()]
        assert len(set(hexes)) == len(hexes), "two structures share a colour"

    def test_left_and_right_differ(self):
        for p in PAIRED:
            assert hex_color(structure_color(f"{p}_left")) != hex_color(structure_color(f"{p}_right")), p

    def test_colours_are_visibly_different(self):
        """CIE76 colour difference >= 14 between any two table colours, and from the instrument and screw."""
        colours = dict(STRUCTURE_COLORS, INSTRUMENT=INSTRUMENT_COLOR, SCREW=SCREW_COLOR)
        worst = min((float(np.linalg.norm(_lab(colours[a]) - _lab(colours[b]))), a, b)
                    for a, b in itertools.combinations(colours, 2))
        assert worst[0] >= 14.0, worst

    def test_vertebrae_outside_the_table_get_unique_bone_tones(self):
        names = [f"vertebrae_{r}{n}" for r, k in (("C", 7), ("T", 12), ("L", 5), ("S", 5)) for n in range(1, k + 1)]
        hexes = [hex_color(structure_color(n)) for n in names]
        assert len(set(hexes)) == len(names)
        table = {hex_color(c) for k, c in STRUCTURE_COLORS.items() if not k.startswith("vertebrae_")}
        assert not table & set(hexes)
        for n in names[3:]:                       # generated ones: yellow-tan hues (never vessel red/blue)
            r, g, b = structure_color(n)
            assert r >= g >= b


class TestOrientationCaption:
    def test_standard_planes(self):
        assert orientation_caption(*STANDARD_AXES["sagittal"]) == "anterior left, head up"
        assert orientation_caption(*STANDARD_AXES["coronal"]) == "patient left on image right, head up"
        assert orientation_caption(*STANDARD_AXES["axial"]) == "patient left on image right, anterior up"
        assert orientation_caption(*STANDARD_AXES["sagittal"], lang="fr") == "antérieur à gauche, tête en haut"

    def test_oblique_and_mirrored(self):
        # 45 deg between L and A horizontally: not named; vertical still S
        h = np.array([1.0, -1.0, 0.0]) / np.sqrt(2)
        assert orientation_caption(h, [0, 0, -1]).startswith("head up, other axis oblique")
        assert orientation_caption(h, np.array([0.0, 1.0, 1.0]) / np.sqrt(2)).startswith("oblique plane")
        # a sagittal seen from the other side
        assert orientation_caption([0, -1, 0], [0, 0, -1]) == "anterior right, head up"
        assert orientation_caption([-1, 0, 0], [0, 0, 1]) == "patient left on image left, head down"


@pytest.fixture(scope="module")
def case():
    """A small neck: body, C2 with a lesion, paired vessels and bony canals, airway, a path from the front-left."""
    aff = axis_aligned_affine((1.5, 1.0, 1.0), (-40.0, -40.0, -40.0))
    K, J, I = 54, 80, 80
    kk, jj, ii = np.mgrid[:K, :J, :I]
    x, y = ii - 40.0, jj - 40.0
    body = x ** 2 + y ** 2 < 35 ** 2
    c2 = x ** 2 + (y - 5) ** 2 < 8 ** 2
    lesion = x ** 2 + (y - 5) ** 2 < 3 ** 2
    masks = {"body": body, "bone": c2, "vertebrae_C2": c2, "lesion": lesion,
             "airway": (x ** 2 + (y + 15) ** 2 < 5 ** 2)}
    for side, sx in (("left", 1), ("right", -1)):
        masks[f"vertebral_artery_{side}"] = (x - sx * 14) ** 2 + (y - 6) ** 2 < 2.0 ** 2
        masks[f"vertebral_artery_canal_{side}"] = (x - sx * 14) ** 2 + (y - 6) ** 2 < 3.0 ** 2
        masks[f"internal_jugular_vein_{side}"] = (x - sx * 24) ** 2 + (y + 2) ** 2 < 3.0 ** 2
    arr = np.where(body, 40.0, -1000.0) + np.where(c2, 900.0, 0.0) - np.where(masks["airway"], 1040.0, 0.0)
    vol = Volume(arr.astype(np.float32), aff)
    lm = LabelMap(vol, masks)
    path = PathSpec([20.0, -33.0, -30.0], [3.0, -3.0, -4.0], [0.0, 5.0, 0.0], instrument_diameter_mm=3.0,
                    screw_diameter_mm=4.0, screw_length_mm=12.0,
                    margins_mm={"vertebral_artery_canal_left": 3.0, "internal_jugular_vein_left": 5.0})
    return vol, lm, path


def _assert_path_entries(labels, *, points=("Skin entry", "Bone entry", "Target")):
    assert any(s.startswith("instrument Ø 3.0 mm") for s in labels), labels
    assert "screw Ø 4.0 × 12 mm" in labels, labels
    for p in points:
        assert p in labels, (p, labels)


class TestLegends:
    @pytest.mark.parametrize("view", REFORMAT_VIEWS)
    def test_every_reformat_lists_the_instrument_and_the_structures_it_cuts(self, case, view):
        vol, lm, path = case
        fig = reformat_figure(vol, path, view, lm)
        labels = legend_labels(fig)
        if view == "down_path":  # the path end-on: a ring and a disc, the entries projecting onto the target
            assert labels[-4:-1] == ["instrument Ø 3.0 mm seen end-on (circle)", "screw Ø 4.0 mm seen end-on (disc)",
                                     "Target"], labels
        else:  # each point in the plane or projected onto it, listed as drawn (tests/views/test_plan_pictures.py)
            _assert_path_entries([s.replace(", projected (not in this plane)", "") for s in labels])
        assert "C2 (axis)" in labels and "lesion" in labels        # the target lies in both, on every plane
        if view in ("axial", "down_path"):                          # planes through the vessels' level
            for side in ("left", "right"):
                assert f"{side} vertebral artery" in labels
                assert f"{side} vertebral artery canal (foramen transversarium)" in labels
        assert "bone" not in labels                                 # not outlined, so not listed
        assert len(labels) == len(set(labels))

    def test_a_structure_outside_the_plane_is_not_listed(self, case):
        vol, lm, path = case
        # a coronal plane through the target (y = 5) misses the airway (y = -20 .. -10)
        assert "airway" not in legend_labels(reformat_figure(vol, path, "coronal", lm))
        assert "airway" in legend_labels(reformat_figure(vol, path, "axial", lm))

    @pytest.mark.parametrize("view", DRR_VIEWS)
    def test_every_fluoroscopy_view_lists_the_instrument(self, case, view):
        vol, lm, path = case
        labels = legend_labels(drr_figure(vol, path, view, lm, n_pixels=160))
        if view == "bullseye":  # seen end-on: the circles drawn, not the bands of the other views (legend = drawn)
            assert labels[-3:] == ["instrument Ø 3.0 mm seen end-on (circle)", "screw Ø 4.0 mm seen end-on (disc)",
                                   "Target"], labels
            assert not any("skin → target" in s or s.startswith("screw Ø 4.0 ×") for s in labels)
        else:
            _assert_path_entries(labels)
        for s in ("left vertebral artery canal (foramen transversarium)", "right internal jugular vein", "lesion"):
            assert s in labels
        if view != "bullseye":   # the arteries lie inside their canals: outlined too (not hidden behind them)
            assert "left vertebral artery" in labels and "right vertebral artery" in labels

    def test_3d_view_lists_the_instrument_and_structures(self, case):
        vol, lm, path = case
        labels = legend_labels(surface_figure(vol, lm, path))
        _assert_path_entries(labels)
        assert "left vertebral artery canal (foramen transversarium)" in labels and "C2 (axis)" in labels

    def test_french_legend(self, case):
        vol, lm, path = case
        labels = legend_labels(reformat_figure(vol, path, "axial", lm, lang="fr"))
        # French decimal comma in the picture too (osteoplan.locale_fmt); the English legend keeps the point
        assert any(s.startswith("instrument Ø 3,0 mm (trocart") for s in labels)
        assert "vis Ø 4,0 × 12 mm" in labels and "canal de l'artère vertébrale gauche (foramen transversaire)" in labels


class TestSameFacing:
    def test_sagittal_and_lateral_put_anterior_on_the_left_and_say_so(self, case):
        vol, lm, path = case
        anterior = path.target_lps_mm + [0.0, -30.0, 0.0]
        superior = path.target_lps_mm + [0.0, 0.0, 20.0]
        plane = view_plane("sagittal", path)
        r_a, c_a = plane.to_pixel(anterior)
        assert c_a < (plane.n_cols - 1) / 2 - 10
        assert plane.to_pixel(superior)[0] < (plane.n_rows - 1) / 2 - 10
        geo = standard_geometry("lateral", path.target_lps_mm, n_pixels=(64, 64))
        assert geo.project(anterior)[1] < 31.5 - 3 and geo.project(superior)[0] < 31.5 - 3
        sag = reformat_figure(vol, path, "sagittal", lm)
        lat = drr_figure(vol, path, "lateral", lm, n_pixels=64)
        for fig in (sag, lat):
            assert fig._osteoplan_caption == "anterior left, head up"
            assert fig._osteoplan_labels["left"] == "A" and fig._osteoplan_labels["top"] == "S"
            assert "anterior left, head up" in fig.axes[0].get_title()

    def test_lateral_beam_from_the_left_is_shown_the_same_way(self):
        """Whatever side the source is on, a lateral image is displayed anterior left, head up."""
        iso = np.zeros(3)
        for beam in ([1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]):
            g = standard_geometry("progression", iso, np.array([0.0, 0.3, 1.0]), beam_direction=np.array(beam),
                                  n_pixels=(64, 64))
            assert g.project(np.array([0.0, -30.0, 0.0]))[1] < 31.5 - 3     # anterior left
            assert g.project(np.array([0.0, 0.0, 30.0]))[0] < 31.5 - 3      # head up
            assert orientation_caption(g.detector_u, g.detector_v) == "anterior left, head up"

    def test_ap_and_coronal_have_patient_left_on_the_right(self, case):
        vol, lm, path = case
        ap = drr_figure(vol, path, "ap_open_mouth", lm, n_pixels=64)
        cor = reformat_figure(vol, path, "coronal", lm)
        ax_ = reformat_figure(vol, path, "axial", lm)
        for fig in (ap, cor, ax_):
            assert fig._osteoplan_labels["right"] == "L" and fig._osteoplan_labels["left"] == "R"
            assert fig._osteoplan_caption.startswith("patient left on image right")
        assert ax_._osteoplan_labels["top"] == "A"
