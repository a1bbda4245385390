"""Mirels score of impending pathological fracture of a long bone.

Source: Mirels H. "Metastatic disease in long bones. A proposed scoring system for diagnosing
impending pathologic fractures." Clin Orthop Relat Res 1989;(249):256-264.

======  ================  =========  =====================================  ==========
points  site              lesion     size (fraction of cortex destroyed)    pain
======  ================  =========  =====================================  ==========
1       upper limb        blastic    < 1/3                                  mild
2       lower limb        mixed      1/3 - 2/3                              moderate
3       peritrochanteric  lytic      > 2/3                                  functional
======  ================  =========  =====================================  ==========

Total 4-12. Recommendation bands (Mirels 1989): >= 9 prophylactic fixation recommended;
8 clinical judgement (borderline); <= 7 low risk: radiotherapy and observation.

Size is the fraction of the cortical thickness / bone diameter destroyed on plain radiograph
(Mirels 1989). A fraction exactly at 1/3 or 2/3 is scored 2 (the middle band is read as
inclusive, "1/3-2/3").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from osteoplan.errors import InputError

__all__ = ["MirelsSite", "MirelsLesion", "MirelsSize", "MirelsPain", "MIRELS_POINTS", "MirelsResult",
           "compute_mirels", "mirels_band", "size_from_fraction"]


class MirelsSite(StrEnum):
    """Site of the lesion."""

    UPPER_LIMB = "upper-limb"
    LOWER_LIMB = "lower-limb"
    PERITROCHANTERIC = "peritrochanteric"


class MirelsLesion(StrEnum):
    """Radiographic nature of the lesion."""

    BLASTIC = "blastic"
    MIXED = "mixed"
    LYTIC = "lytic"


class MirelsSize(StrEnum):
    """Lesion size as a fraction of the cortex (bone diameter)."""

    UNDER_THIRD = "<1/3"
    THIRD_TO_TWO_THIRDS = "1/3-2/3"
    OVER_TWO_THIRDS = ">2/3"


class MirelsPain(StrEnum):
    """Pain."""

    MILD = "mild"
    MODERATE = "moderate"
    FUNCTIONAL = "functional"


#: Points per component option (Mirels 1989, Table 1).
MIRELS_POINTS: dict[str, dict[StrEnum, int]] = {
    "site": {MirelsSite.UPPER_LIMB: 1, MirelsSite.LOWER_LIMB: 2, MirelsSite.PERITROCHANTERIC: 3},
    "lesion_type": {MirelsLesion.BLASTIC: 1, MirelsLesion.MIXED: 2, MirelsLesion.LYTIC: 3},
    "size": {MirelsSize.UNDER_THIRD: 1, MirelsSize.THIRD_TO_TWO_THIRDS: 2, MirelsSize.OVER_TWO_THIRDS: 3},
    "pain": {MirelsPain.MILD: 1, MirelsPain.MODERATE: 2, MirelsPain.FUNCTIONAL: 3},
}

_ENUMS: dict[str, type[StrEnum]] = {"site": MirelsSite, "lesion_type": MirelsLesion, "size": MirelsSize,
                                    "pain": MirelsPain}
_ALIASES: dict[str, dict[str, str]] = {
    "site": {"upper": "upper-limb", "arm": "upper-limb", "lower": "lower-limb", "leg": "lower-limb",
             "trochanteric": "peritrochanteric", "peri-trochanteric": "peritrochanteric"},
    "lesion_type": {"osteolytic": "lytic", "osteoblastic": "blastic", "sclerotic": "blastic"},
    "size": {"<1/3": "<1/3", "small": "<1/3", "1/3-2/3": "1/3-2/3", "medium": "1/3-2/3", ">2/3": ">2/3",
             "large": ">2/3"},
    "pain": {"functional-pain": "functional"},
}

_BANDS = {
    "fixation": "score >= 9: prophylactic fixation recommended",
    "judgement": "score 8: borderline, clinical judgement",
    "low-risk": "score <= 7: low fracture risk, radiotherapy and observation",
}


def size_from_fraction(fraction: float) -> MirelsSize:
    """Size class of a lesion involving ``fraction`` (0-1) of the cortex.

    < 1/3 -> ``"<1/3"``; 1/3 to 2/3 inclusive -> ``"1/3-2/3"``; > 2/3 -> ``">2/3"``.

    Raises
    ------
    InputError
        Not a number in [0, 1].
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not math.isfinite(fraction):
        raise InputError(f"Mirels size: the fraction of cortex involved must be a number between 0 and 1; got {fraction!r}.")
    f = float(fraction)
    if not 0.0 <= f <= 1.0:
        raise InputError(f"Mirels size: the fraction of cortex involved must be between 0 and 1 (e.g. 0.5 for half); "
                         f"got {f:g}.")
    eps = 1e-9
    if f < 1.0 / 3.0 - eps:
        return MirelsSize.UNDER_THIRD
    if f <= 2.0 / 3.0 + eps:
        return MirelsSize.THIRD_TO_TWO_THIRDS
    return MirelsSize.OVER_TWO_THIRDS


def _parse(component: str, value: Any) -> StrEnum:
    enum = _ENUMS[component]
    options = ", ".join(m.value for m in enum)
    if isinstance(value, enum):
        return value
    if component == "size" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return size_from_fraction(value)
    if not isinstance(value, str):
        raise InputError(f"Mirels {component}: expected one of {options}"
                         f"{' or a fraction 0-1' if component == 'size' else ''}; got {type(value).__name__}.")
    key = value.strip().lower().replace(" ", "").replace("_", "-") if component == "size" else \
        value.strip().lower().replace(" ", "-").replace("_", "-")
    key = _ALIASES[component].get(key, key)
    try:
        return enum(key)
    except ValueError:
        raise InputError(f"Mirels {component}: '{value}' is not an option; use one of {options}"
                         f"{' or a fraction 0-1' if component == 'size' else ''}.") from None


def mirels_band(total: int) -> str:
    """Band of a Mirels total: ``"fixation"`` (>= 9), ``"judgement"`` (8), ``"low-risk"`` (<= 7).

    Raises
    ------
    InputError
        Total outside 4-12.
    """
    if isinstance(total, bool) or not isinstance(total, int) or not 4 <= total <= 12:
        raise InputError(f"A Mirels total is an integer 4-12; got {total!r}.")
    if total >= 9:
        return "fixation"
    if total == 8:
        return "judgement"
    return "low-risk"


@dataclass(frozen=True)
class MirelsResult:
    """A Mirels evaluation (Clin Orthop Relat Res 1989;249:256).

    Attributes
    ----------
    site, lesion_type, size, pain : str
        Canonical option values.
    points : dict[str, int]
        Points per component.
    total : int
        4-12.
    band : str
        ``"fixation"``, ``"judgement"`` or ``"low-risk"``.
    recommendation : str
        Text of the band.
    size_fraction : float or None
        The fraction of cortex given, when a number was given.
    """

    site: str
    lesion_type: str
    size: str
    pain: str
    points: dict[str, int]
    total: int
    band: str
    recommendation: str
    size_fraction: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "score": "Mirels",
            "reference": "Mirels H. Clin Orthop Relat Res 1989;(249):256-264",
            "components": {
                "site": {"value": self.site, "points": self.points["site"]},
                "lesion_type": {"value": self.lesion_type, "points": self.points["lesion_type"]},
                "size": {"value": self.size, "points": self.points["size"], "fraction_of_cortex": self.size_fraction},
                "pain": {"value": self.pain, "points": self.points["pain"]},
            },
            "total": self.total,
            "band": self.band,
            "recommendation": self.recommendation,
        }


def compute_mirels(site: Any, lesion_type: Any, size: Any, pain: Any) -> MirelsResult:
    """Compute the Mirels score (Mirels, Clin Orthop Relat Res 1989;249:256).

    Parameters
    ----------
    site : str or MirelsSite
        ``"upper-limb"`` (1), ``"lower-limb"`` (2), ``"peritrochanteric"`` (3).
    lesion_type : str or MirelsLesion
        ``"blastic"`` (1), ``"mixed"`` (2), ``"lytic"`` (3).
    size : float, str or MirelsSize
        Fraction of the cortex involved (0-1), or ``"<1/3"`` (1), ``"1/3-2/3"`` (2), ``">2/3"`` (3).
    pain : str or MirelsPain
        ``"mild"`` (1), ``"moderate"`` (2), ``"functional"`` (3).

    Returns
    -------
    MirelsResult

    Raises
    ------
    InputError
        Any input missing or not a valid option (the message lists the options).

    Examples
    --------
    >>> compute_mirels("lower-limb", "lytic", 0.5, "moderate").total
    9
    """
    given = {"site": site, "lesion_type": lesion_type, "size": size, "pain": pain}
    missing = [k for k, v in given.items() if v is None]
    if missing:
        raise InputError(f"Mirels needs all four components; missing: {', '.join(missing)}.")
    opts = {k: _parse(k, v) for k, v in given.items()}
    points = {k: MIRELS_POINTS[k][o] for k, o in opts.items()}
    total = sum(points.values())
    band = mirels_band(total)
    frac = float(size) if isinstance(size, (int, float)) and not isinstance(size, bool) else None
    return MirelsResult(opts["site"].value, opts["lesion_type"].value, opts["size"].value, opts["pain"].value,
                        points, total, band, _BANDS[band], frac)
