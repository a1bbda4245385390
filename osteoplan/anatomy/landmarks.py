"""C2 / dens landmarks shared by the phantom (ground truth), the C2 locator and the planner."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _vec(v: Any) -> np.ndarray:
    return np.asarray(v, dtype=np.float64).reshape(3)


@dataclass(frozen=True)
class DensLandmarks:
    """Landmarks of C2 and its dens, in LPS millimetres.

    Attributes
    ----------
    apex_lps_mm : (3,) array
        Tip (apex) of the dens: its most superior bone point along the dens axis.
    waist_lps_mm : (3,) array
        Centre of the narrowest cross-section of the dens (the "waist", at the dens base).
    waist_diameter_mm : float
        Smallest bone diameter of that cross-section (mm); cf. inner dens diameter
        6.5 +/- 1.9 mm (Eur Spine J 2009;18:271).
    axis_unit : (3,) array
        Unit vector of the dens axis, pointing from the base to the apex (mostly +S).
    anteroinferior_body_lps_mm : (3,) array
        Anteroinferior point of the C2 body (classical anterior odontoid-screw entry);
        anteroinferior body to dens tip 37.6 +/- 3.3 mm (Eur Spine J 2009;18:271).
    body_centre_lps_mm : (3,) array
        Centroid of the C2 body below the dens base.
    confidence : float
        0..1, how sure the locator is (1.0 for phantom ground truth).
    method : str
        ``"phantom-truth"``, ``"classical"``, ``"classical+hint"``, ``"provided-mask"``...
    notes : tuple[str, ...]
        Human-readable remarks (e.g. metal streaks near the apex).
    apex_in_view : bool
        False when the dens is cut by the edge of the CT, so that ``apex_lps_mm`` is the image
        edge, not the dens tip: a screw tip cannot be planned on it (the planner refuses).
    """

    apex_lps_mm: np.ndarray
    waist_lps_mm: np.ndarray
    waist_diameter_mm: float
    axis_unit: np.ndarray
    anteroinferior_body_lps_mm: np.ndarray
    body_centre_lps_mm: np.ndarray
    confidence: float = 1.0
    method: str = "unknown"
    notes: tuple[str, ...] = field(default_factory=tuple)
    apex_in_view: bool = True

    def __post_init__(self) -> None:
        for name in ("apex_lps_mm", "waist_lps_mm", "anteroinferior_body_lps_mm", "body_centre_lps_mm"):
            object.__setattr__(self, name, _vec(getattr(self, name)))
        ax = _vec(self.axis_unit)
        object.__setattr__(self, "axis_unit", ax / np.linalg.norm(ax))
        object.__setattr__(self, "notes", tuple(self.notes))

    @property
    def anteroinferior_to_apex_mm(self) -> float:
        """Distance from the anteroinferior C2 body point to the dens apex (mm)."""
        return float(np.linalg.norm(self.apex_lps_mm - self.anteroinferior_body_lps_mm))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (lists of floats)."""
        out: dict[str, Any] = {}
        for k in self.__dataclass_fields__:
            v = getattr(self, k)
            out[k] = [round(float(x), 4) for x in v] if isinstance(v, np.ndarray) else (list(v) if isinstance(v, tuple) else v)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DensLandmarks":
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
