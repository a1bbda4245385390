"""The faster image encoding of the exports changes no pixel: figure PNGs, and PNGs embedded in the PDF as they are."""

from __future__ import annotations

import base64
import io
import zlib

import numpy as np
import pytest
from PIL import Image

from osteoplan.export.report import html_to_pdf, png_idat_passthrough


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


def _unfilter(raw: bytes, width: int, height: int, bpp: int) -> np.ndarray:
    """PNG scanline filters undone by hand (PNG spec 9): an independent decoder of the IDAT stream."""
    stride = width * bpp
    out = np.zeros((height, stride), np.int64)
    pos = 0
    for r in range(height):
        kind, line = raw[pos], np.frombuffer(raw[pos + 1:pos + 1 + stride], np.uint8).astype(np.int64)
        pos += 1 + stride
        prev = out[r - 1] if r else np.zeros(stride, np.int64)
        cur = np.zeros(stride, np.int64)
        for x in range(stride):
            a = cur[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if kind == 0:
                pred = 0
            elif kind == 1:
                pred = a
            elif kind == 2:
                pred = b
            elif kind == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (line[x] + pred) % 256
        out[r] = cur
    return out.reshape(height, width, bpp).astype(np.uint8)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_idat_passthrough_is_the_image(mode):
    """The IDAT stream handed to the PDF decodes (zlib + PNG predictors) to the image's pixels."""
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 256, (9, 7, 3) if mode == "RGB" else (9, 7), dtype=np.uint8)
    arr[:, :3] = 40  # smooth parts too, so that several filter types occur
    data = png_idat_passthrough(_png(arr, compress_level=3))
    assert data is not None
    got = _unfilter(zlib.decompress(data), 7, 9, 3 if mode == "RGB" else 1)
    assert np.array_equal(got.reshape(arr.shape), arr)


def test_idat_passthrough_refuses_what_a_pdf_cannot_take_as_is():
    """Alpha, palette, 16-bit, interlaced and damaged PNGs go through WeasyPrint's own re-encoding."""
    rgb = np.full((4, 4, 3), 100, np.uint8)
    assert png_idat_passthrough(_png(np.dstack([rgb, np.full((4, 4), 255, np.uint8)]))) is None
    assert png_idat_passthrough(_png(rgb)) is not None
    pal = io.BytesIO()
    Image.fromarray(rgb).convert("P").save(pal, format="PNG")
    assert png_idat_passthrough(pal.getvalue()) is None
    i16 = io.BytesIO()
    Image.fromarray(np.full((4, 4), 1000, np.uint16)).save(i16, format="PNG")
    assert png_idat_passthrough(i16.getvalue()) is None
    inter = bytearray(_png(rgb))
    inter[28] = 1  # IHDR interlace method (the CRC no longer matches either)
    assert png_idat_passthrough(bytes(inter)) is None
    broken = bytearray(_png(rgb))
    broken[-20] ^= 0xFF  # inside the IDAT: CRC mismatch
    assert png_idat_passthrough(bytes(broken)) is None
    assert png_idat_passthrough(b"GIF89a") is None


def test_pdf_images_are_the_png_pixels(monkeypatch):
    """An RGB PNG (passed through) and an RGBA PNG (WeasyPrint's re-encoding) read back with the PNG's pixels."""
    pytest.importorskip("weasyprint")
    import osteoplan.export.report as report

    passed = []
    real = report.png_idat_passthrough
    monkeypatch.setattr(report, "png_idat_passthrough", lambda png: passed.append(real(png)) or passed[-1])
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
    assert len(passed) == 1 and passed[0] is not None  # the RGB image only (the RGBA one is split by WeasyPrint)
    from weasyprint.images import RasterImage

    assert RasterImage._get_png_data.__name__ == "_get_png_data"  # WeasyPrint's own method is back


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
