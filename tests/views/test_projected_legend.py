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


@pytest.fixture(scope="module")
def case():
    aff = axis_aligned_affine((1.5, 1.0, 1.0), (-30.0, -30.0, -30.0))
    kk, jj, ii = np.mgrid[:40, :60, :60]
    x, y = ii - 30.0, jj - 30.0
    body = x ** 2 + y ** 2 < 27 ** 2
    c2 = x ** 2 + (y - 5) ** 2 < 8 ** 2
    vol = Volume((np.where(body, 40.0, -1000.0) + np.where(c2, 900.0, 0.0)).astype(np.float32), aff)
    lm = LabelMap(vol, {"body": body, "vertebrae_C2": c2})
    # from the front-left and from below: in none of the axial, coronal, sagittal planes
    path = PathSpec([18.0, -24.0, -20.0], [3.0, -3.0, -4.0], [0.0, 5.0, 0.0], instrument_diameter_mm=3.0)
    return vol, lm, path


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
