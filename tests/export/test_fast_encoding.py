"""The faster image encoding of the exports changes no pixel: figure PNGs, and the same pixels in the PDF."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from osteoplan.export.report import html_to_pdf


def _figure():
    from osteoplan.views.render import new_figure

    fig = new_figure(2.0, 1.5, dpi=50)
    fig.patch.set_facecolor("black")
    ax = fig.add_axes((0.1, 0.1, 0.8, 0.8))
    ax.imshow(np.arange(64, dtype=float).reshape(8, 8), cmap="gray")
    ax.plot([0, 7], [0, 7], color="#ff8800", lw=2)
    ax.text(1, 6, "L", color="white")
    return fig


def test_figure_png_has_the_pixels_of_savefig():
    """figure_png writes the RGB of matplotlib's own PNG (opaque figure: no alpha channel), same size and dpi."""
    from osteoplan.views.render import figure_png

    fig = _figure()
    ref = io.BytesIO()
    fig.savefig(ref, format="png", dpi=fig.dpi, facecolor="black")
    ours = Image.open(io.BytesIO(figure_png(fig)))
    theirs = Image.open(io.BytesIO(ref.getvalue()))
    assert theirs.mode == "RGBA" and np.all(np.asarray(theirs)[..., 3] == 255)
    assert ours.mode == "RGB" and ours.size == theirs.size == (100, 75)
    assert np.array_equal(np.asarray(ours), np.asarray(theirs)[..., :3])
    assert ours.info["dpi"] == theirs.info["dpi"]


def _png(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", **kw)
    return buf.getvalue()


def test_pdf_images_are_the_png_pixels():
    """The RGB PNGs figure_png writes (and an RGBA one) read back from the PDF with the PNG's pixels."""
    pytest.importorskip("weasyprint")
    pdfium = pytest.importorskip("pypdfium2")
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    rgba = np.dstack([rgb[::-1], np.full((40, 30), 255, np.uint8)])
    html = "".join(f'<p><img style="width:30px;height:40px" src="data:image/png;base64,'
                   f'{base64.b64encode(_png(a, compress_level=3)).decode()}"></p>' for a in (rgb, rgba))
    pdf = html_to_pdf(f"<html><body>{html}</body></html>")
    doc = pdfium.PdfDocument(pdf)
    images = [ob for ob in doc[0].get_objects() if ob.type == pdfium.raw.FPDF_PAGEOBJ_IMAGE]
    assert len(images) == 2
    got = [np.asarray(ob.get_bitmap(render=False).to_pil().convert("RGB")) for ob in images]
    assert np.array_equal(got[0], rgb)
    assert np.array_equal(got[1], rgba[..., :3])
    doc.close()


def test_pdf_html_links_the_image_files_only(tmp_path):
    """The HTML given to WeasyPrint refers to image files by URL; images given as bytes stay embedded."""
    from osteoplan.export.report import _data_uri, _linked_images

    png = _png(np.full((3, 2, 3), 7, np.uint8))
    f = tmp_path / "my images" / "axial.png"
    f.parent.mkdir()
    f.write_bytes(png)
    other = _png(np.full((3, 2, 3), 9, np.uint8))
    html = f'<img src="{_data_uri(f)}"><img src="{_data_uri(other)}">'
    out = _linked_images(html, {"axial": f, "drr_lateral": other})
    assert out == f'<img src="{f.resolve().as_uri()}"><img src="{_data_uri(other)}">'
    assert "my%20images/axial.png" in out


def test_figure_png_with_a_tight_bounding_box_in_the_rc():
    """With ``savefig.bbox = "tight"`` in matplotlib's rc (raw buffer of another size) figure_png gives matplotlib's
    own PNG rather than a wrongly shaped image."""
    import matplotlib

    from osteoplan.views.render import figure_png

    fig = _figure()
    with matplotlib.rc_context({"savefig.bbox": "tight"}):
        ref = io.BytesIO()
        fig.savefig(ref, format="png", dpi=fig.dpi, facecolor="black")
        ours = Image.open(io.BytesIO(figure_png(fig)))
    theirs = Image.open(io.BytesIO(ref.getvalue()))
    assert ours.size == theirs.size
    assert np.array_equal(np.asarray(ours.convert("RGB")), np.asarray(theirs.convert("RGB")))
