"""Review 8: a reformat that draws the path projected (dotted, faded: the path is out of the plane) says so in its
legend; one whose plane holds the path does not (legend = what is drawn)."""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.views import PathSpec
from osteoplan.views.i18n import STRINGS
from osteoplan.views.reformat import REFORMAT_VIEWS, reformat_figure
from osteoplan.views.render import legend_labels


def neck_case(**path_kw):
    """A neck cylinder with a C2 disc (HU), its label map and a path from the front-left and from below (in none of
    the axial, coronal, sagittal planes); *path_kw* adds to the PathSpec (e.g. a screw)."""
    aff = axis_aligned_affine((1.5, 1.0, 1.0), (-30.0, -30.0, -30.0))
    kk, jj, ii = np.mgrid[:40, :60, :60]
    x, y = ii - 30.0, jj - 30.0
    body = x ** 2 + y ** 2 < 27 ** 2
    c2 = x ** 2 + (y - 5) ** 2 < 8 ** 2
    vol = Volume((np.where(body, 40.0, -1000.0) + np.where(c2, 900.0, 0.0)).astype(np.float32), aff)
    lm = LabelMap(vol, {"body": body, "vertebrae_C2": c2})
    # from the front-left and from below: in none of the axial, coronal, sagittal planes
    path = PathSpec([18.0, -24.0, -20.0], [3.0, -3.0, -4.0], [0.0, 5.0, 0.0], instrument_diameter_mm=3.0, **path_kw)
    return vol, lm, path


@pytest.fixture(scope="module")
def case():
    return neck_case()


def _dotted_bands(fig):
    return [p for p in fig.axes[0].patches if p.get_linestyle() in (":", "dotted")]


@pytest.mark.parametrize("lang", ["en", "fr"])
@pytest.mark.parametrize("view", [v for v in REFORMAT_VIEWS if v != "down_path"])
def test_projected_path_is_in_the_legend_exactly_when_drawn(case, view, lang):
    vol, lm, path = case
    fig = reformat_figure(vol, path, view, lm, lang=lang)
    plane = fig._osteoplan_plane
    out_of_plane = abs(float(path.direction @ plane.normal)) > 1e-3 or \
        abs(float((path.target_lps_mm - plane.centre_lps_mm) @ plane.normal)) > 1e-3
    drawn = bool(_dotted_bands(fig))
    listed = STRINGS["path_projected"][lang] in legend_labels(fig)
    assert drawn == out_of_plane and listed == drawn, (view, drawn, listed)
    if view in ("axial", "coronal", "sagittal"):
        assert listed, view          # the oblique path is out of every standard plane
    if view == "path_oblique":
        assert not listed            # the plane holds the path: drawn solid, nothing projected


def test_bullseye_legend_is_what_it_draws(case):
    """The bull's-eye draws the instrument and the screw end-on (circles at the target, over its cross): its
    legend lists those circles, not the skin-to-target band of the other views."""
    from matplotlib.patches import Circle

    from osteoplan.views.drr import drr_figure

    vol, lm, _ = case
    path = PathSpec([18.0, -24.0, -20.0], [3.0, -3.0, -4.0], [0.0, 5.0, 0.0], instrument_diameter_mm=3.0,
                    screw_diameter_mm=4.0, screw_length_mm=12.0)
    for lang, words in (("en", ("seen end-on", "Target")), ("fr", ("en enfilade", "Cible"))):
        fig = drr_figure(vol, path, "bullseye", lm, n_pixels=96, lang=lang)
        labels = legend_labels(fig)
        assert sum(words[0] in s for s in labels) == 2  # the instrument ring and the screw disc
        assert words[1] in labels and not any("→" in s for s in labels), labels
        ax = fig.axes[0]
        circles = [p for p in ax.patches if isinstance(p, Circle)]
        cross = [ln for ln in ax.lines if ln.get_marker() == "+"]
        assert len(circles) == 2 and len(cross) == 1  # instrument ring and screw disc, one target
        assert min(c.get_zorder() for c in circles) > cross[0].get_zorder()  # drawn over the cross: visible
