"""The control-CT check's figures and the web viewer's slices follow the rule of the plan's overview pictures: the
whole planned path (skin entry to target) and the instrument found are in the picture with a margin, orientation
letters lie outside the image; the viewer's pixel <-> LPS geometry sent to the page is the one drawn. French
outputs carry no English words of these figures."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.text import Annotation
from PIL import Image

from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.verification.deviation import deviation_figures
from osteoplan.views import PathSpec
from osteoplan.views.colors import ENTRY_COLOR
from osteoplan.views.geometry import PATH_MARGIN_MM
from osteoplan.views.slices import FOV_MM, PIXEL_MM, make_scene, offset_range_mm, render_slice, slice_plane
from osteoplan.views.verification import ALONG_MIN_FOV_MM, verification_drr_figure, verification_figure

BEAD_HU = 3000.0


@pytest.fixture(scope="module")
def long_check():
    """A neck 180 mm high (40 HU cylinder in air); the plan's skin entry 110 mm below and 30 mm left of the target
    (the entry and the target in the coronal plane y = 6); a pin found 8 mm short of the target, 2 mm to the
    patient's right of the plan, 60 mm long; bright beads at the planned entry, the target and the pin's rear end.
    The control CT is the planning CT (identity registration), so each pixel's LPS point can be checked on the CT."""
    sp = (2.0, 1.5, 1.5)
    K, J, I = 90, 80, 80
    aff = axis_aligned_affine(sp, (-60.0, -60.0, -100.0))   # x, y in [-60, 58.5], z in [-100, 78]
    vol0 = Volume(np.zeros((K, J, I), np.float32), aff)
    kk, jj, ii = np.mgrid[:K, :J, :I]
    world = vol0.index_to_world(np.stack([kk, jj, ii], axis=-1).reshape(-1, 3).astype(float)).reshape(K, J, I, 3)
    x, y, z = world[..., 0], world[..., 1], world[..., 2]
    target = np.array([0.0, 6.0, 40.0])
    entry = np.array([30.0, 6.0, -70.0])
    d = (target - entry) / np.linalg.norm(target - entry)
    tip = target - 8.0 * d + np.array([-2.0, 0.0, 0.0])
    rear = tip - 60.0 * d
    hu = np.where(x ** 2 + y ** 2 < 50 ** 2, 40.0, -1000.0)
    for p in (target, entry, rear):
        hu[(np.abs(x - p[0]) <= 2.0) & (np.abs(y - p[1]) <= 2.0) & (np.abs(z - p[2]) <= 2.5)] = BEAD_HU
    vol = Volume(hu.astype(np.float32), aff)
    res = deviation_figures(entry, entry + 0.7 * (target - entry), target, tip, d, stage="pin")
    res.update(stage="pin", instrument={"direction_unit": d.tolist(), "rear_lps_mm": rear.tolist(), "diameter_mm": 2.0},
               registration={"planning_from_control": np.eye(4).tolist()})
    return vol, res, entry, target, tip, rear


def _inside(rc, n_rows, n_cols, margin_px):
    r, c = rc
    lo = margin_px - 1e-6
    return lo <= r <= n_rows - 1 - margin_px + 1e-6 and lo <= c <= n_cols - 1 - margin_px + 1e-6


def _letters_outside(fig, ax):
    """Every orientation letter of *ax* (annotations) lies outside its image, beside its own edge."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = {a.get_text(): a.get_window_extent(r) for a in ax.texts if isinstance(a, Annotation)}
    lab = ax._osteoplan_labels
    assert set(boxes) == set(lab.values())
    img = ax.bbox
    for letter, bb in boxes.items():
        assert not bb.overlaps(img), letter
    assert boxes[lab["right"]].x0 >= img.x1 and boxes[lab["left"]].x1 <= img.x0
    assert boxes[lab["top"]].y0 >= img.y1 and boxes[lab["bottom"]].y1 <= img.y0
    assert not boxes[lab["top"]].overlaps(ax.title.get_window_extent(r))
    # no letter left inside the image (the old in-image letters were plain texts)
    assert not [tx for tx in ax.texts if not isinstance(tx, Annotation) and tx.get_text().isalpha()]
    return lab


def test_verification_reformats_hold_the_whole_plan_and_instrument(long_check):
    vol, res, entry, target, tip, rear = long_check
    fig = verification_figure(vol, res, entry, target, lang="fr")
    pred = np.asarray(res["predicted_tip_lps_mm"])
    for key, plane, ax, img in fig._osteoplan_panels[:2]:
        assert plane.n_rows == plane.n_cols
        # the points span about 120 mm along the pin: the 70 mm frame grows
        side = plane.n_rows * plane.pixel_mm
        assert side > ALONG_MIN_FOV_MM + 50
        for p in (entry, target, tip, rear, pred):
            assert _inside(plane.to_pixel(p), plane.n_rows, plane.n_cols, PATH_MARGIN_MM / plane.pixel_mm - 1), (key, p)
        # the pin's rear bead (in both planes along the pin) is where the plane maps it, in the image drawn
        r, c = np.rint(plane.to_pixel(rear)).astype(int)
        assert img[r, c] == pytest.approx(BEAD_HU, abs=1.0)
        lab = _letters_outside(fig, ax)
        assert lab["top"] == "S" and lab["bottom"] == "I"   # a steep pin: head up
    # across the plan: centred on the target (the predicted tip, 2 mm off, fits in 36 mm with the margin)
    plane = fig._osteoplan_panels[2][1]
    np.testing.assert_allclose(plane.to_2d(target), 0.0, atol=1e-9)
    lab = _letters_outside(fig, fig._osteoplan_panels[2][2])
    assert lab["right"] == "G" and lab["left"] == "D"   # French: patient left (G) on the image right


def test_verification_fluoroscopy_holds_the_whole_plan_and_instrument(long_check):
    vol, res, entry, target, tip, rear = long_check
    fig = verification_drr_figure(vol, res, entry, target, lang="fr", n_pixels=96, volume_in_plan=vol)
    pred = np.asarray(res["predicted_tip_lps_mm"])
    for view, geo, ax, od in fig._osteoplan_panels:
        n = geo.n_pixels[0]
        assert geo.n_pixels[1] == n and geo.pixel_mm[0] == geo.pixel_mm[1]
        for p in (entry, target, tip, rear, pred):
            margin_px = PATH_MARGIN_MM * geo.magnification_at(p) / geo.pixel_mm[0]
            assert _inside(geo.project(p), n, n, margin_px - 1), (view, p)
        # the whole detector is drawn
        assert ax.get_xlim() == (-0.5, n - 0.5)
        lab = _letters_outside(fig, ax)
        if view == "ap":
            assert lab["right"] == "G" and lab["top"] == "S"
            # the entry bead is where the geometry projects the entry (the same rays as the image)
            r, c = np.rint(geo.project(entry)).astype(int)
            local = od[r - 3:r + 4, c - 3:c + 4]
            rr, cc = np.unravel_index(np.argmax(local), local.shape)
            assert abs(rr - 3) <= 2 and abs(cc - 3) <= 2
        if view == "lateral":
            assert lab["left"] == "A" and lab["top"] == "S"
        texts = " ".join(tx.get_text() for tx in ax.texts)
        assert "à l'isocentre" in texts and "@ iso" not in texts


@pytest.fixture(scope="module")
def long_scene(long_check):
    vol, res, entry, target, tip, rear = long_check
    path = PathSpec(entry, entry + 0.7 * (target - entry), target, instrument_diameter_mm=3.0, screw_length_mm=40.0)
    return make_scene(vol, path), vol


@pytest.mark.parametrize("view", ["axial", "coronal", "sagittal"])
def test_viewer_slices_hold_the_whole_path(long_scene, view):
    scene, vol = long_scene
    path = scene.path
    plane = slice_plane(path, view)
    png = np.asarray(Image.open(io.BytesIO(render_slice(scene, view, 0.0, "soft_tissue"))).convert("RGB"))
    assert png.shape[:2] == (plane.n_rows, plane.n_cols) and plane.n_rows == plane.n_cols
    # hand-computed: the path spans 110 mm (S) on the coronal and sagittal planes, 30 mm (x) and 0 (y) on the
    # axial: coronal / sagittal grow to 110 + 2 x 15 = 140 mm (350 pixels), the axial keeps 110 mm (275 pixels)
    assert plane.n_rows == (round(FOV_MM / PIXEL_MM) if view == "axial" else round(140.0 / PIXEL_MM))
    assert abs((path.target_lps_mm - plane.centre_lps_mm) @ plane.normal) < 1e-9   # through the target
    for p in (path.skin_entry_lps_mm, path.bone_entry_lps_mm, path.target_lps_mm):
        assert _inside(plane.to_pixel(p), plane.n_rows, plane.n_cols, PATH_MARGIN_MM / PIXEL_MM - 1), p
    if view == "coronal":   # the entry lies in the plane: its cross is drawn where the plane maps it, on its bead
        r, c = np.rint(plane.to_pixel(path.skin_entry_lps_mm)).astype(int)
        assert tuple(png[r, c]) == tuple(int(round(x * 255)) for x in ENTRY_COLOR)
        assert vol.sample(plane.points()[r, c][None], order=0)[0] == BEAD_HU
        assert c > plane.n_cols / 2 and r > plane.n_rows / 2   # patient left on the image right, head up


def test_pane_geometry_sent_to_the_page_is_the_slice_drawn(long_scene):
    """The review page maps pixels <-> LPS with the geometry of adjust.pane_geometry (built from the three points):
    with the formula the page uses (static/adjust.js toPixel), each point falls on the pixel the slice draws it at,
    and the pane's size is the PNG's."""
    from osteoplan.web.routers.adjust import pane_geometry

    scene, vol = long_scene
    path = scene.path
    panes = pane_geometry(path.skin_entry_lps_mm, path.bone_entry_lps_mm, path.target_lps_mm)
    for view, g in panes.items():
        plane = slice_plane(path, view)
        png = Image.open(io.BytesIO(render_slice(scene, view, 0.0)))
        assert png.size == (g["n_cols"], g["n_rows"])
        for p in (path.skin_entry_lps_mm, path.target_lps_mm):
            dd = p - np.asarray(g["centre"])
            x, y = dd @ np.asarray(g["u"]), dd @ np.asarray(g["v"])
            col, row = x / g["pixel_mm"] + (g["n_cols"] - 1) / 2, y / g["pixel_mm"] + (g["n_rows"] - 1) / 2
            np.testing.assert_allclose([row, col], plane.to_pixel(p), atol=0.02)


def test_viewer_scroll_reaches_the_skin_entry(long_scene):
    """Axial slices through the target at z = 40: the skin entry is 110 mm below; the range reaches 15 mm beyond it
    (-125, floored to the 2 mm slices: -126), and stops at the CT's top (z = 78: +38)."""
    scene, vol = long_scene
    assert offset_range_mm("axial", scene.path, vol) == (-126.0, 38.0, 2.0)


def test_french_texts_of_cement_walls_implant_and_fluoroscopy():
    from osteoplan.views.i18n import translate_text

    fr = {
        "no breach; distance from the lesion": "pas de rupture ; distance mesurée depuis la lésion",
        "canal": "canal rachidien",
        "vertebral_artery_left (transverse foramen)": "artère vertébrale gauche (foramen transversaire)",
        "neighbour not segmented: not assessed": "voisin non segmenté : non évalué",
        "Pedicle isthmus diameter unknown: smallest needle assumed; check the pedicle on the images.":
            "Diamètre de l'isthme pédiculaire inconnu : plus petite aiguille retenue ; vérifier le pédicule sur les "
            "images.",
        "Pedicle isthmus 4.2 mm leaves less than 1.0 mm of bone each side of even the thinnest needle (2.4 mm): "
        "discuss the indication.": "Isthme pédiculaire de 4.2 mm : moins de 1.0 mm d'os de chaque côté même avec "
                                   "l'aiguille la plus fine (2.4 mm) : discuter l'indication.",
        "Coarse CT (3.0 mm voxels): clearances, containment and the pedicle and body landmarks are uncertain by about "
        "half a voxel (1.5 mm) or more; re-plan on a thin-slice CT (<= 1 mm) before use.":
            "Scanner à voxels grossiers (3.0 mm) : distances, confinement et repères du pédicule et du corps incertains "
            "d'environ un demi-voxel (1.5 mm) ou plus ; replanifier sur un scanner en coupes fines (≤ 1 mm) avant "
            "utilisation.",
        "CT rigidity: max loss 12.3 % at s = +5.4 mm (dens); below the 35 % threshold":
            "Rigidité (scanner) : perte maximale 12.3 % à s = +5.4 mm (odontoïde) ; sous le seuil de 35 %",
    }
    for en, want in fr.items():
        assert translate_text(en, "fr") == want
        assert translate_text(en, "en") == en


def test_french_fluoroscopy_view_has_no_english_scale_or_footer():
    from osteoplan.views.drr import drr_figure

    vol = Volume(np.full((30, 40, 40), 40.0, np.float32), axis_aligned_affine((2.0, 2.0, 2.0), (-40.0, -40.0, -30.0)))
    path = PathSpec([20.0, -30.0, -10.0], [5.0, -8.0, -3.0], [0.0, 0.0, 0.0])
    for lang, want, unwanted in (("fr", ("à l'isocentre", "détecteur", "distance source-détecteur"),
                                  ("@ iso", "detector", "SDD")),
                                 ("en", ("@ iso", "detector", "SDD"), ("isocentre", "détecteur"))):
        fig = drr_figure(vol, path, "lateral", None, n_pixels=48, lang=lang)
        texts = " ".join(tx.get_text() for tx in fig.findobj(lambda a: hasattr(a, "get_text")))
        for w in want:
            assert w in texts, (lang, w)
        for w in unwanted:
            assert w not in texts, (lang, w)
