"""Rebuild the README's example images from a demo plan folder.

Usage: ``python docs/make_images.py DEMO_OUT`` after ``osteoplan demo --out DEMO_OUT``.
Writes docs/images/phantom_reformats.png and docs/images/phantom_drr.png (side-by-side panels,
downscaled, 256 colours to keep the repository small).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image


def strip(paths: list[Path], height: int) -> Image.Image:
    """Panels scaled to a common height, side by side on white."""
    ims = [Image.open(p).convert("RGB") for p in paths]
    ims = [im.resize((round(im.width * height / im.height), height), Image.LANCZOS) for im in ims]
    out = Image.new("RGB", (sum(im.width for im in ims), height), "white")
    x = 0
    for im in ims:
        out.paste(im, (x, 0))
        x += im.width
    return out


def main(demo: str) -> None:
    img = Path(demo) / "images"
    dst = Path(__file__).parent / "images"
    dst.mkdir(exist_ok=True)
    panels = {
        "phantom_reformats.png": ["axial.png", "path_oblique.png", "down_path.png"],
        "phantom_drr.png": ["drr_ap_open_mouth.png", "drr_lateral.png", "drr_bullseye.png", "drr_progression.png"],
    }
    for name, files in panels.items():
        im = strip([img / f for f in files], 420)
        im.quantize(256).save(dst / name, optimize=True)
        print(dst / name, im.size)


if __name__ == "__main__":
    main(sys.argv[1])
