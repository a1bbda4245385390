"""Review 8: the 3D view shows the target bone and the lesion (not painted over by the spinal canal behind C2 or the
pharynx in front of it), the path on top, and its R / L letters at the same height."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.views import PathSpec
from osteoplan.views.colors import structure_color
from osteoplan.views.render import figure_png
from osteoplan.views.surface import surface_figure


@pytest.fixture(scope="module")
def neck():
    """C2 (a block) with a lesion inside, the spinal canal behind it (wider), the pharynx in front of it."""
    aff = axis_aligned_affine((1.0, 1.0, 1.0), (-30.0, -30.0, -30.0))
    kk, jj, ii = np.mgrid[:60, :60, :60]
    x, y, z = ii - 30.0, jj - 30.0, kk - 30.0
    slab = abs(z) < 14
    c2 = slab & (abs(x) < 9) & (abs(y) < 7)
    lesion = (x ** 2 + y ** 2 + z ** 2) < 4.5 ** 2
    canal = slab & (abs(x) < 14) & (y > 8) & (y < 20)          # posterior (P+)
    pharynx = slab & (abs(x) < 12) & (y < -9) & (y > -16)      # anterior
    body = (x ** 2 + y ** 2) < 28 ** 2
    vol = Volume(np.where(body, 40.0, -1000.0).astype(np.float32), aff)
    return vol, LabelMap(vol, {"body": body, "vertebrae_C2": c2, "lesion": lesion, "spinal_canal": canal,
                               "pharynx": pharynx})


def _pixel_at(fig, p_lps):
    from mpl_toolkits.mplot3d import proj3d

    ax = fig.axes[0]
    png = figure_png(fig)  # draws the figure (final layout) and gives its pixels
    x, y, _ = proj3d.proj_transform(*p_lps, ax.get_proj())
    px, py = ax.transData.transform((x, y))
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), float) / 255.0
    scale = img.shape[0] / fig.bbox.height
    return img[int(round(img.shape[0] - py * scale)), int(round(px * scale))]


def test_lesion_and_target_bone_are_drawn_over_what_surrounds_them(neck):
    vol, lm = neck
    fig = surface_figure(vol, lm, None, half_size_mm=25.0)
    order = [c.get_gid() for c in fig.axes[0].collections if c.get_gid()]
    assert order[-2:] == ["vertebrae_C2", "lesion"], order
    # the others back to front: the canal (behind C2 seen from the front) before the pharynx (in front of it)
    assert order.index("spinal_canal") < order.index("pharynx")
    # the lesion's centre is seen in the lesion's colour, not the canal's green or the pharynx's
    rgb = _pixel_at(fig, np.zeros(3))
    dist = {n: float(np.linalg.norm(rgb - np.asarray(structure_color(n))))
            for n in ("lesion", "spinal_canal", "pharynx", "vertebrae_C2")}
    assert min(dist, key=dist.get) == "lesion", (rgb, dist)


def test_3d_letters_right_and_left_at_the_same_height(neck):
    vol, lm = neck
    path = PathSpec([20.0, -25.0, -20.0], [5.0, -7.0, -5.0], [0.0, 0.0, 0.0], instrument_diameter_mm=3.0)
    fig = surface_figure(vol, lm, path, half_size_mm=25.0)
    lab = fig._osteoplan_labels
    assert abs(lab["R"][1] - lab["L"][1]) < 1e-6 and lab["L"][0] > lab["R"][0]
    assert abs(lab["S"][0] - lab["I"][0]) < 1e-6 and lab["S"][1] > lab["I"][1]
    # the path is still drawn on top of every surface
    zs = [c.get_zorder() for c in fig.axes[0].collections]
    gids = [c.get_gid() for c in fig.axes[0].collections]
    assert gids.index("lesion") < len(gids) - 1 and max(zs) >= 45
