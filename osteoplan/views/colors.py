"""One colour table for every osteoplan picture, report and export (RGB in [0, 1]).

Colours loosely follow 3D Slicer's "General Anatomy" conventions (bone ivory, arteries red, veins
blue, airway light blue, nerve tissue yellow). Configurable default without a published source.
"""

from __future__ import annotations

import colorsys
import hashlib

#: Structure name -> RGB (0..1).
STRUCTURE_COLORS: dict[str, tuple[float, float, float]] = {
    "body": (0.93, 0.76, 0.65),
    "bone": (0.95, 0.91, 0.78),
    "vertebrae_C1": (0.85, 0.80, 0.55),
    "vertebrae_C2": (1.00, 0.93, 0.40),
    "vertebrae_C3": (0.80, 0.74, 0.50),
    "lesion": (1.00, 0.35, 0.85),
    "spinal_canal": (0.30, 0.85, 0.30),
    "spinal_cord": (0.95, 0.95, 0.20),
    "vertebral_artery_left": (1.00, 0.10, 0.10),
    "vertebral_artery_right": (1.00, 0.45, 0.10),
    "vertebral_artery_canal_left": (0.85, 0.00, 0.45),
    "vertebral_artery_canal_right": (0.95, 0.60, 0.20),
    "common_carotid_artery_left": (0.90, 0.05, 0.25),
    "common_carotid_artery_right": (0.90, 0.05, 0.25),
    "internal_carotid_artery_left": (0.85, 0.15, 0.35),
    "internal_carotid_artery_right": (0.85, 0.15, 0.35),
    "internal_jugular_vein_left": (0.20, 0.40, 1.00),
    "internal_jugular_vein_right": (0.20, 0.40, 1.00),
    "airway": (0.45, 0.85, 1.00),
    "trachea": (0.45, 0.85, 1.00),
    "larynx": (0.35, 0.75, 0.95),
    "pharynx": (0.55, 0.80, 1.00),
    "esophagus": (0.75, 0.55, 0.95),
    "mandible": (0.75, 0.90, 0.55),
    "skull": (0.80, 0.80, 0.70),
    "brainstem": (0.95, 0.80, 0.30),
    "parotid_gland_left": (0.60, 0.70, 0.40),
    "parotid_gland_right": (0.60, 0.70, 0.40),
}

#: Colours of planning overlays.
INSTRUMENT_COLOR = (0.0, 1.0, 1.0)
TRAJECTORY_COLOR = (1.0, 0.85, 0.0)
TARGET_COLOR = (1.0, 0.2, 0.2)
ENTRY_COLOR = (0.2, 1.0, 0.2)

#: Clearance status -> RGB (report table and overlays).
STATUS_COLORS = {
    "pass": (0.13, 0.55, 0.13),
    "hydrodissection": (0.85, 0.55, 0.0),
    "fail": (0.80, 0.0, 0.0),
    "not_assessed": (0.45, 0.45, 0.45),
}


def structure_color(name: str) -> tuple[float, float, float]:
    """RGB (0..1) of a structure; unknown names get a stable colour derived from the name."""
    if name in STRUCTURE_COLORS:
        return STRUCTURE_COLORS[name]
    h = int(hashlib.sha1(name.encode()).hexdigest()[:6], 16) / 0xFFFFFF
    return tuple(float(c) for c in colorsys.hsv_to_rgb(h, 0.7, 0.95))  # type: ignore[return-value]


def hex_color(rgb: tuple[float, float, float]) -> str:
    """``#rrggbb`` form of an RGB triple in [0, 1]."""
    return "#" + "".join(f"{int(round(255 * max(0.0, min(1.0, c)))):02x}" for c in rgb)
