"""Report image captions say the orientation of each image in words, the same as the image itself."""

from __future__ import annotations

import html as _html
import io

import numpy as np
from PIL import Image

from osteoplan.export.report import build_report_html, image_caption
from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.views.geometry import pathspec_from_plan
from osteoplan.views.reformat import reformat_figure

from export_planfactory import make_plan


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (60, 60), "gray").save(buf, format="PNG")
    return buf.getvalue()


def test_captions_name_the_orientation_of_every_image():
    vol = Volume(np.zeros((20, 30, 30), np.float32), axis_aligned_affine((2.0, 1.0, 1.0), (-15.0, -15.0, -20.0)))
    plan = make_plan(vol, [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0.0, 0.0, 0.0])
    names = ("axial", "coronal", "sagittal", "path_oblique", "drr_ap_open_mouth", "drr_lateral")
    html = _html.unescape(build_report_html(plan, {n: _png() for n in names}, lang="en"))
    assert '<div class="caption">Sagittal through the target — anterior left, head up</div>' in html
    assert '<div class="caption">Simulated fluoroscopy: lateral — anterior left, head up</div>' in html
    assert ("Simulated fluoroscopy: AP (open-mouth centring) — patient left on image right, head up") in html
    assert "Axial through the target — patient left on image right, anterior up" in html
    assert "anterior on the LEFT" in html                      # the convention, stated once for the section
    # a path view: the caption is computed from the same plane as the picture's own caption
    fig = reformat_figure(vol, pathspec_from_plan(plan), "path_oblique")
    assert image_caption("path_oblique", "en", pathspec_from_plan(plan)).endswith(fig._osteoplan_caption)
    assert f"Oblique plane containing the path — {fig._osteoplan_caption}" in html
    fr = _html.unescape(build_report_html(plan, {"sagittal": _png()}, lang="fr"))
    assert "Sagittal passant par la cible — antérieur à gauche, tête en haut" in fr
