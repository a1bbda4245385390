"""One colour table for every osteoplan picture, report and export (RGB in [0, 1]).

Every structure name has its own colour, and so has each side of a paired structure (left and right
carotid, jugular, vertebral artery and its bony canal, parotid), so that a legend entry names exactly one
outline. Families loosely follow 3D Slicer's "General Anatomy" conventions: bone ivory/tan/gold, arteries
red-pink (the vertebral arteries red/orange, their bony canals — the foramina transversaria — a lighter shade
of the same hue), veins blue-violet, airway and its parts light blue-cyan-green, the spinal canal green and the
cord pale yellow, the lesion magenta. The planning instrument is pure cyan and the screw white, colours no
structure uses. Configurable defaults without a published source; the table was checked for a minimum CIE76
colour difference of 14 (ΔE*ab, CIELAB) between any two entries (``tests/views/test_colors.py``).
"""

from __future__ import annotations

import colorsys
import hashlib
import re

#: Structure name -> RGB (0..1). One distinct colour per name (left and right differ).
STRUCTURE_COLORS: dict[str, tuple[float, float, float]] = {
    "body": (0.93, 0.76, 0.65),
    "bone": (0.95, 0.91, 0.78),
    "skull": (0.72, 0.70, 0.62),
    "other_bone": (0.60, 0.60, 0.60),
    "vertebrae_C1": (0.80, 0.62, 0.38),
    "vertebrae_C2": (1.00, 0.85, 0.00),
    "vertebrae_C3": (0.62, 0.50, 0.22),
    "mandible": (0.70, 0.90, 0.45),
    "lesion": (1.00, 0.20, 0.90),
    "spinal_canal": (0.15, 0.75, 0.15),
    "spinal_cord": (1.00, 1.00, 0.55),
    "brainstem": (0.50, 0.62, 0.05),
    "vertebral_artery_left": (1.00, 0.10, 0.10),
    "vertebral_artery_right": (1.00, 0.50, 0.00),
    "vertebral_artery_canal_left": (1.00, 0.55, 0.55),
    "vertebral_artery_canal_right": (1.00, 0.80, 0.55),
    "common_carotid_artery_left": (0.80, 0.00, 0.40),
    "common_carotid_artery_right": (1.00, 0.45, 0.75),
    "internal_carotid_artery_left": (0.65, 0.20, 0.55),
    "internal_carotid_artery_right": (0.95, 0.70, 0.95),
    "internal_jugular_vein_left": (0.10, 0.30, 1.00),
    "internal_jugular_vein_right": (0.55, 0.45, 1.00),
    "airway": (0.55, 0.85, 1.00),
    "pharynx": (0.20, 0.60, 0.80),
    "larynx": (0.45, 1.00, 0.75),
    "trachea": (0.80, 0.95, 1.00),
    "esophagus": (0.70, 0.40, 0.20),
    "parotid_gland_left": (0.45, 0.55, 0.35),
    "parotid_gland_right": (0.70, 0.80, 0.65),
}

#: Colours of planning overlays (no structure uses them).
INSTRUMENT_COLOR = (0.0, 1.0, 1.0)
SCREW_COLOR = (1.0, 1.0, 1.0)
TRAJECTORY_COLOR = (1.0, 0.85, 0.0)
TARGET_COLOR = (1.0, 0.2, 0.2)
ENTRY_COLOR = (0.2, 1.0, 0.2)
#: The plan's other needles drawn for reference while one is moved (review page): a dark teal, the instrument's
#: hue made fainter (CIE76 difference >= 32 from every colour above).
OTHER_INSTRUMENT_COLOR = (0.0, 0.55, 0.55)

#: Clearance status -> RGB (report table and overlays).
STATUS_COLORS = {
    "pass": (0.13, 0.55, 0.13),
    "hydrodissection": (0.85, 0.55, 0.0),
    "fail": (0.80, 0.0, 0.0),
    "not_assessed": (0.45, 0.45, 0.45),
    # not segmented, but covered by a measured structure's clearance (cord by canal, artery by its bony canal)
    "covered": (0.16, 0.40, 0.62),
    "not_assessable": (0.45, 0.45, 0.45),
}

_VERTEBRA = re.compile(r"^vertebrae_([CTLS])(\d{1,2})$")
_REGION_OFFSET = {"C": 0, "T": 7, "L": 19, "S": 24}


def _vertebra_color(region: str, number: int) -> tuple[float, float, float]:
    """A bone tone (yellow-tan hues) of its own for a vertebra not in the table, from its level index."""
    idx = _REGION_OFFSET[region] + number
    hue = 0.08 + 0.07 * ((idx * 0.618) % 1.0)          # golden-ratio steps inside the tan-yellow band
    sat = 0.35 + 0.30 * (idx % 2)
    val = 0.95 - 0.25 * ((idx // 2) % 2)
    return tuple(float(c) for c in colorsys.hsv_to_rgb(hue, sat, val))  # type: ignore[return-value]


def structure_color(name: str) -> tuple[float, float, float]:
    """RGB (0..1) of a structure.

    Parameters
    ----------
    name : str
        Structure name (label-map key, e.g. ``"internal_jugular_vein_left"``).

    Returns
    -------
    (r, g, b) : floats in [0, 1]
        From :data:`STRUCTURE_COLORS`; a vertebra not listed (``vertebrae_T7``) gets a bone tone of its own
        from its level; any other unknown name a stable colour derived from the name.
    """
    if name in STRUCTURE_COLORS:
        return STRUCTURE_COLORS[name]
    m = _VERTEBRA.match(name)
    if m:
        return _vertebra_color(m.group(1), int(m.group(2)))
    h = int(hashlib.sha1(name.encode()).hexdigest()[:6], 16) / 0xFFFFFF
    return tuple(float(c) for c in colorsys.hsv_to_rgb(h, 0.7, 0.95))  # type: ignore[return-value]


def hex_color(rgb: tuple[float, float, float]) -> str:
    """``#rrggbb`` form of an RGB triple in [0, 1]."""
    return "#" + "".join(f"{int(round(255 * max(0.0, min(1.0, c)))):02x}" for c in rgb)
