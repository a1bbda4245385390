"""The plain data a procedure module hands the planning engine: where, on this patient, it works.

The engine (:mod:`osteoplan.planning.search`, :mod:`osteoplan.planning.kernel`, the verdict, the views and
exports) knows no anatomy. A procedure module (:mod:`osteoplan.planning.procedures`) turns the anatomy of one
patient (dens landmarks, a vertebra's body and pedicles, a lesion) into a :class:`Site`: a target bone, a
frame, named reference points, the axes of the direction cones, and how far the region of interest extends.
Everything is in LPS millimetres (unit vectors dimensionless).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _unit(v: Any) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).reshape(3)
    n = float(np.linalg.norm(a))
    if not np.isfinite(n) or n == 0:
        raise ValueError("a unit vector of the site frame is zero or not finite")
    return a / n


@dataclass(frozen=True)
class Site:
    """Where a procedure works on one patient, as the engine needs it.

    Attributes
    ----------
    procedure : str
        Procedure module name (``"c2-dens-screw"``, ``"vertebroplasty"``, ``"c2-cementoplasty"``).
    level : str
        Vertebra level named by the anatomy (``"C2"``, ``"T12"``).
    bone_label : str
        Label-map name of the target bone (``"vertebrae_C2"``, ``"vertebrae_T12"``): the instrument must stay
        inside it (containment) between its bone entry and its tip.
    centre_lps_mm : (3,) array
        Centre of the target region (region of interest, truncated field-of-view test).
    axis_unit : (3,) array
        Cranial axis of the target structure (dens axis base -> apex; vertebral body caudal -> cranial).
    anterior_unit : (3,) array
        Anterior direction perpendicular to ``axis_unit``.
    references : dict[str, (3,) array]
        Named landmark points, e.g. the entry zone's reference (``"anteroinferior_corner"``, ``"waist"``,
        ``"apex"``, ``"pedicle_entry_left"``).
    cone_axes : dict[str, (3,) array]
        Axis of the direction cone per side (``"left"``, ``"right"``) or ``"any"`` (one cone, the side of a
        direction being where its skin entry lies). Unit vectors pointing from the skin towards the target.
    roi_above_mm, roi_below_mm : float
        How far the region of interest extends above / below ``centre_lps_mm`` along LPS z (mm), before the
        engine adds the reach of the longest path.
    length_room_mm : float or None
        The longest implant this anatomy allows (e.g. anteroinferior C2 corner -> dens apex), used for the
        implant length floor; None when it does not apply.
    width_limit_mm : float or None
        The narrowest bone section the implant must pass (dens waist, pedicle isthmus), for the diameter
        choice; None when unknown.
    landmarks : dict
        Plain-JSON landmarks stored in the plan (``Plan.landmarks``).
    method : str
        How the anatomy was found (copied into messages).
    not_covered : dict[str, str]
        Structures segmented on the CT but not where this site is (e.g. a canal mask that stops above the level):
        they are "not assessed" for this site, with the reason, never measured elsewhere and called clear.
    group : str
        Sites of one group are alternatives (the left or the right pedicle of a unipedicular level): the plan
        places the best of them. Different groups are all placed (both pedicles, several levels). Empty = the
        level.
    """

    procedure: str
    level: str
    bone_label: str
    centre_lps_mm: np.ndarray
    axis_unit: np.ndarray
    anterior_unit: np.ndarray
    references: dict[str, np.ndarray] = field(default_factory=dict)
    cone_axes: dict[str, np.ndarray] = field(default_factory=dict)
    roi_above_mm: float = 15.0
    roi_below_mm: float = 15.0
    length_room_mm: float | None = None
    width_limit_mm: float | None = None
    landmarks: dict[str, Any] = field(default_factory=dict)
    method: str = "unknown"
    group: str = ""
    not_covered: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ax = _unit(self.axis_unit)
        ant = np.asarray(self.anterior_unit, float).reshape(3)
        ant = _unit(ant - (ant @ ax) * ax)
        object.__setattr__(self, "axis_unit", ax)
        object.__setattr__(self, "anterior_unit", ant)
        object.__setattr__(self, "centre_lps_mm", np.asarray(self.centre_lps_mm, float).reshape(3))
        object.__setattr__(self, "references", {k: np.asarray(v, float).reshape(3) for k, v in self.references.items()})
        object.__setattr__(self, "cone_axes", {k: _unit(v) for k, v in self.cone_axes.items()})

    @property
    def lateral_unit(self) -> np.ndarray:
        """``axis x anterior``: for a cranial axis and an anterior direction, the patient's left (+x in LPS)."""
        return np.cross(self.axis_unit, self.anterior_unit)

    def reference(self, name: str) -> np.ndarray:
        """The named reference point (LPS mm).

        Raises
        ------
        osteoplan.errors.ProtocolError
            The procedure's anatomy has no such reference (the protocol names one its procedure does not know).
        """
        if name not in self.references:
            from osteoplan.errors import ProtocolError

            raise ProtocolError(f"The protocol's entry zone refers to '{name}', which the {self.procedure} procedure "
                                f"does not provide (it has: {', '.join(sorted(self.references))}); fix [entry.zone].")
        return self.references[name]

    def frame(self, reference: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(reference point, axis, anterior, lateral) of an entry zone, LPS mm / unit vectors."""
        return self.reference(reference), self.axis_unit, self.anterior_unit, self.lateral_unit
