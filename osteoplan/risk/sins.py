"""Spinal Instability Neoplastic Score (SINS).

Source: Fisher CG, DiPaola CP, Ryken TC, et al. "A novel classification system for spinal
instability in neoplastic disease: an evidence-based approach and expert consensus from the
Spine Oncology Study Group." Spine 2010;35(22):E1221-E1229.

Six components, each with its published points:

============================  =====================================================  ======
component                     option                                                 points
============================  =====================================================  ======
location                      junctional (occiput-C2, C7-T2, T11-L1, L5-S1)          3
                              mobile (C3-C6, L2-L4)                                  2
                              semi-rigid (T3-T10)                                    1
                              rigid (S2-S5)                                          0
pain                          mechanical                                             3
                              occasional, non-mechanical                             1
                              pain-free                                              0
bone lesion (lesion_type)     lytic                                                  2
                              mixed (lytic/blastic)                                  1
                              blastic                                                0
radiographic alignment        subluxation/translation                                4
                              de novo deformity (kyphosis/scoliosis)                 2
                              normal                                                 0
vertebral body collapse       > 50 % collapse                                        3
                              < 50 % collapse                                        2
                              no collapse with > 50 % of the body involved           1
                              none of the above                                      0
posterolateral involvement    bilateral                                              3
(facet, pedicle or costo-     unilateral                                             1
vertebral joint fracture or   none of the above                                      0
replacement with tumour)
============================  =====================================================  ======

Total 0-6 stable, 7-12 potentially unstable (indeterminate), 13-18 unstable; a total >= 7
warrants a surgical (or interventional) consultation (Fisher 2010).

Every component records where its value came from (:data:`SOURCES`): ``"clinician"`` (entered
by a person), ``"ct-proposed"`` (measured on CT by osteoplan, with the measurements as
``evidence``) or ``"override"`` (a person replaced a CT proposal; the proposal is kept).
A component that is not given is *missing*: the result then has no single total but the range
of totals still possible, and says which components are missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Mapping

from osteoplan.errors import InputError

__all__ = [
    "Location", "Pain", "LesionType", "Alignment", "Collapse", "Posterolateral",
    "POINTS", "COMPONENTS", "SOURCES", "ComponentInput", "SinsComponent", "SinsResult",
    "clinician", "ct_proposed", "override", "compute_sins", "location_from_level",
    "parse_option", "sins_category", "SINS_STABLE_MAX", "SINS_UNSTABLE_MIN", "SINS_REFERRAL_MIN",
]


class Location(StrEnum):
    """Spinal location (Fisher 2010)."""

    JUNCTIONAL = "junctional"
    MOBILE = "mobile"
    SEMI_RIGID = "semi-rigid"
    RIGID = "rigid"


class Pain(StrEnum):
    """Pain (Fisher 2010): mechanical = relieved by recumbency and/or worse with movement/loading."""

    MECHANICAL = "mechanical"
    OCCASIONAL = "occasional"
    NONE = "none"


class LesionType(StrEnum):
    """Bone lesion quality (Fisher 2010)."""

    LYTIC = "lytic"
    MIXED = "mixed"
    BLASTIC = "blastic"


class Alignment(StrEnum):
    """Radiographic spinal alignment (Fisher 2010)."""

    SUBLUXATION = "subluxation"
    DEFORMITY = "deformity"
    NORMAL = "normal"


class Collapse(StrEnum):
    """Vertebral body collapse (Fisher 2010)."""

    OVER_50 = "over-50"
    UNDER_50 = "under-50"
    NONE_OVER_50_INVOLVED = "none-over-50-involved"
    NONE = "none"


class Posterolateral(StrEnum):
    """Posterolateral involvement of the spinal elements (Fisher 2010)."""

    BILATERAL = "bilateral"
    UNILATERAL = "unilateral"
    NONE = "none"


#: Component name -> option enum, in the published order.
COMPONENTS: dict[str, type[StrEnum]] = {
    "location": Location,
    "pain": Pain,
    "lesion_type": LesionType,
    "alignment": Alignment,
    "collapse": Collapse,
    "posterolateral": Posterolateral,
}

#: Exact points of every option (Fisher 2010, Table 1).
POINTS: dict[str, dict[StrEnum, int]] = {
    "location": {Location.JUNCTIONAL: 3, Location.MOBILE: 2, Location.SEMI_RIGID: 1, Location.RIGID: 0},
    "pain": {Pain.MECHANICAL: 3, Pain.OCCASIONAL: 1, Pain.NONE: 0},
    "lesion_type": {LesionType.LYTIC: 2, LesionType.MIXED: 1, LesionType.BLASTIC: 0},
    "alignment": {Alignment.SUBLUXATION: 4, Alignment.DEFORMITY: 2, Alignment.NORMAL: 0},
    "collapse": {Collapse.OVER_50: 3, Collapse.UNDER_50: 2, Collapse.NONE_OVER_50_INVOLVED: 1, Collapse.NONE: 0},
    "posterolateral": {Posterolateral.BILATERAL: 3, Posterolateral.UNILATERAL: 1, Posterolateral.NONE: 0},
}

#: Human-readable label of every option (for reports).
LABELS: dict[str, str] = {
    "junctional": "junctional (occiput-C2, C7-T2, T11-L1, L5-S1)",
    "mobile": "mobile spine (C3-C6, L2-L4)",
    "semi-rigid": "semi-rigid (T3-T10)",
    "rigid": "rigid (S2-S5)",
    "mechanical": "mechanical pain",
    "occasional": "occasional, non-mechanical pain",
    "lytic": "lytic",
    "mixed": "mixed (lytic/blastic)",
    "blastic": "blastic",
    "subluxation": "subluxation/translation present",
    "deformity": "de novo deformity (kyphosis/scoliosis)",
    "normal": "normal alignment",
    "over-50": "> 50 % collapse",
    "under-50": "< 50 % collapse",
    "none-over-50-involved": "no collapse with > 50 % of the body involved",
    "bilateral": "bilateral",
    "unilateral": "unilateral",
}

#: Accepted spellings -> canonical option value, per component (compared lower-case, spaces/underscores -> '-').
_ALIASES: dict[str, dict[str, str]] = {
    "location": {"semirigid": "semi-rigid", "junction": "junctional"},
    "pain": {"pain-free": "none", "painfree": "none", "no": "none", "non-mechanical": "occasional",
             "occasional-non-mechanical": "occasional", "mechanical-pain": "mechanical"},
    "lesion_type": {"osteolytic": "lytic", "osteoblastic": "blastic", "sclerotic": "blastic",
                    "lytic-blastic": "mixed", "mixed-lytic-blastic": "mixed"},
    "alignment": {"translation": "subluxation", "subluxation-translation": "subluxation",
                  "kyphosis": "deformity", "scoliosis": "deformity", "de-novo-deformity": "deformity"},
    "collapse": {">50%": "over-50", ">50": "over-50", "<50%": "under-50", "<50": "under-50",
                 "none->50%-involved": "none-over-50-involved", "no-collapse-over-50-involved": "none-over-50-involved",
                 "no": "none"},
    "posterolateral": {"no": "none"},
}

#: Where a component's value came from.
SOURCES: tuple[str, ...] = ("clinician", "ct-proposed", "override")

SINS_STABLE_MAX = 6
SINS_UNSTABLE_MIN = 13
SINS_REFERRAL_MIN = 7


def parse_option(component: str, value: Any) -> StrEnum:
    """Turn any accepted spelling of an option into the component's enum member.

    Parameters
    ----------
    component : str
        One of :data:`COMPONENTS` (``"location"``, ``"pain"``, ``"lesion_type"``, ``"alignment"``,
        ``"collapse"``, ``"posterolateral"``).
    value : str or enum member
        E.g. ``"mechanical"``, ``Pain.MECHANICAL``, ``"pain-free"``, ``">50%"``. For ``location``
        a spinal level (``"C2"``) is also accepted and mapped by :func:`location_from_level`.

    Raises
    ------
    InputError
        Unknown component or option (the message lists the valid options).
    """
    if component not in COMPONENTS:
        raise InputError(f"Unknown SINS component '{component}'; use one of {', '.join(COMPONENTS)}.")
    enum = COMPONENTS[component]
    if isinstance(value, enum):
        return value
    if isinstance(value, StrEnum) and not isinstance(value, enum):
        raise InputError(f"SINS {component}: got an option of {type(value).__name__}; use one of "
                         f"{', '.join(m.value for m in enum)}.")
    if not isinstance(value, str):
        raise InputError(f"SINS {component}: expected text such as {', '.join(m.value for m in enum)}; "
                         f"got {type(value).__name__}.")
    key = re.sub(r"[\s_]+", "-", value.strip().lower())
    key = _ALIASES[component].get(key, key)
    try:
        return enum(key)
    except ValueError:
        pass
    if component == "location" and _LEVEL_RE.match(value.strip()):
        return location_from_level(value)
    raise InputError(f"SINS {component}: '{value}' is not an option; use one of "
                     f"{', '.join(m.value for m in enum)}.")


# --------------------------------------------------------------------------- spinal levels
_LEVEL_RE = re.compile(r"^\s*(occiput|oc|o|c0|[ctls]\d{1,2})\s*$", re.IGNORECASE)
_LEVEL_COUNT = {"C": 7, "T": 12, "L": 5, "S": 5}


def _level_location(region: str, n: int) -> Location:
    if region == "O":
        return Location.JUNCTIONAL
    if region == "C":
        if n <= 2 or n == 7:
            return Location.JUNCTIONAL
        return Location.MOBILE
    if region == "T":
        if n <= 2 or n >= 11:
            return Location.JUNCTIONAL
        return Location.SEMI_RIGID
    if region == "L":
        if n == 1 or n == 5:
            return Location.JUNCTIONAL
        return Location.MOBILE
    # sacrum
    return Location.JUNCTIONAL if n == 1 else Location.RIGID


def location_from_level(level: str) -> Location:
    """SINS location class of a spinal level (Fisher 2010).

    Junctional: occiput-C2, C7-T2, T11-L1, L5-S1 (3 points); mobile: C3-C6, L2-L4 (2);
    semi-rigid: T3-T10 (1); rigid: S2-S5 (0).

    Parameters
    ----------
    level : str
        ``"occiput"`` (or ``"O"``, ``"C0"``), ``"C1"``-``"C7"``, ``"T1"``-``"T12"``, ``"L1"``-``"L5"``,
        ``"S1"``-``"S5"`` (case-insensitive).

    Raises
    ------
    InputError
        Not a spinal level covered by SINS (e.g. ``"C8"``, ``"L6"``, coccyx).

    Examples
    --------
    >>> location_from_level("C2")
    <Location.JUNCTIONAL: 'junctional'>
    >>> POINTS["location"][location_from_level("T7")]
    1
    """
    if not isinstance(level, str) or not _LEVEL_RE.match(level):
        raise InputError(f"'{level}' is not a spinal level SINS covers; use occiput, C1-C7, T1-T12, L1-L5 or S1-S5.")
    s = level.strip().upper()
    if s in ("OCCIPUT", "OC", "O", "C0"):
        return Location.JUNCTIONAL
    region, n = s[0], int(s[1:])
    if n < 1 or n > _LEVEL_COUNT[region]:
        raise InputError(f"'{level}' is not a spinal level SINS covers; use occiput, C1-C7, T1-T12, L1-L5 or S1-S5.")
    return _level_location(region, n)


# --------------------------------------------------------------------------- inputs with provenance
@dataclass(frozen=True)
class ComponentInput:
    """A component value together with where it came from.

    Parameters
    ----------
    value : str or enum member
        The option (any spelling accepted by :func:`parse_option`).
    source : str
        ``"clinician"``, ``"ct-proposed"`` or ``"override"`` (:data:`SOURCES`).
    evidence : mapping
        Measurements behind a CT proposal (plain JSON values, units in the keys), or the
        clinical basis of a clinician entry.
    note : str
        Free-text remark (never identifying data).
    proposed : ComponentInput or None
        For an override: the CT proposal that was replaced (kept for the audit trail).
    """

    value: Any
    source: str = "clinician"
    evidence: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""
    proposed: "ComponentInput | None" = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise InputError(f"SINS component source '{self.source}' is unknown; use one of {', '.join(SOURCES)}.")


def clinician(value: Any, note: str = "", **evidence: Any) -> ComponentInput:
    """A value entered by a clinician."""
    return ComponentInput(value, "clinician", dict(evidence), note)


def ct_proposed(value: Any, evidence: Mapping[str, Any], note: str = "") -> ComponentInput:
    """A value proposed from CT measurements (``evidence``: the measurements, units in the keys)."""
    return ComponentInput(value, "ct-proposed", dict(evidence), note)


def override(value: Any, proposed: ComponentInput | None = None, reason: str = "") -> ComponentInput:
    """A clinician's value replacing a CT proposal; the proposal is kept in the result."""
    return ComponentInput(value, "override", {}, reason, proposed)


# --------------------------------------------------------------------------- result
@dataclass(frozen=True)
class SinsComponent:
    """One scored (or missing) component.

    Attributes
    ----------
    name : str
        Component name (key of :data:`COMPONENTS`).
    value : str or None
        Canonical option value; None when missing.
    points : int or None
        Its points; None when missing.
    source : str or None
        ``"clinician"``, ``"ct-proposed"``, ``"override"``; None when missing.
    evidence : dict
        Measurements / basis.
    note : str
        Remark.
    proposed_value : str or None
        For an override, the CT-proposed option that was replaced.
    proposed_evidence : dict
        For an override, the evidence of the replaced proposal.
    """

    name: str
    value: str | None
    points: int | None
    source: str | None
    evidence: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    proposed_value: str | None = None
    proposed_evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def missing(self) -> bool:
        """True when no value was given."""
        return self.value is None

    @property
    def points_range(self) -> tuple[int, int]:
        """(min, max) points still possible: (points, points) when given, the full range when missing."""
        if self.points is not None:
            return self.points, self.points
        pts = POINTS[self.name].values()
        return min(pts), max(pts)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        d: dict[str, Any] = {
            "value": self.value, "label": LABELS.get(self.value or "", self.value), "points": self.points,
            "source": self.source, "evidence": dict(self.evidence), "note": self.note,
        }
        if self.value is None:
            d["points_range"] = list(self.points_range)
        if self.source == "override":
            d["proposed_value"] = self.proposed_value
            d["proposed_evidence"] = dict(self.proposed_evidence)
        return d


def sins_category(total: int) -> str:
    """Category of a SINS total: ``"stable"`` (0-6), ``"potentially unstable"`` (7-12), ``"unstable"`` (13-18).

    Raises
    ------
    InputError
        Total outside 0-18.
    """
    if isinstance(total, bool) or not isinstance(total, int) or not 0 <= total <= 18:
        raise InputError(f"A SINS total is an integer 0-18; got {total!r}.")
    if total <= SINS_STABLE_MAX:
        return "stable"
    if total < SINS_UNSTABLE_MIN:
        return "potentially unstable"
    return "unstable"


@dataclass(frozen=True)
class SinsResult:
    """A SINS evaluation (Fisher et al., Spine 2010;35:E1221).

    Attributes
    ----------
    components : dict[str, SinsComponent]
        The six components in published order.
    total : int or None
        Sum of points; None when any component is missing.
    total_min, total_max : int
        Range of totals still possible (equal to ``total`` when complete).
    category : str or None
        ``"stable"``, ``"potentially unstable"`` or ``"unstable"``; also given when components are
        missing but every possible total falls in the same category; None otherwise.
    referral : bool or None
        Total >= 7 (surgical/IR consultation recommended); None when the range straddles 7.
    missing : tuple[str, ...]
        Names of the missing components.
    """

    components: dict[str, SinsComponent]
    total: int | None
    total_min: int
    total_max: int
    category: str | None
    referral: bool | None
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """True when every component was given."""
        return not self.missing

    @property
    def possible_categories(self) -> list[str]:
        """Categories reachable by the possible totals, in order."""
        cats = [sins_category(t) for t in range(self.total_min, self.total_max + 1)]
        return list(dict.fromkeys(cats))

    def summary(self) -> str:
        """One line for a report, e.g. ``SINS 11/18: potentially unstable (referral)``."""
        if self.total is not None:
            s = f"SINS {self.total}/18: {self.category}"
        else:
            s = (f"SINS incomplete ({', '.join(self.missing)} missing): possible total "
                 f"{self.total_min}-{self.total_max} ({' / '.join(self.possible_categories)})")
        if self.referral:
            s += "; >= 7: surgical/interventional consultation recommended"
        return s

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "score": "SINS",
            "reference": "Fisher CG et al. Spine 2010;35(22):E1221-E1229",
            "total": self.total,
            "total_range": [self.total_min, self.total_max],
            "category": self.category,
            "possible_categories": self.possible_categories,
            "referral_recommended": self.referral,
            "missing": list(self.missing),
            "complete": self.complete,
            "components": {k: c.to_dict() for k, c in self.components.items()},
            "summary": self.summary(),
        }


def _component(name: str, given: Any) -> SinsComponent:
    if given is None:
        return SinsComponent(name, None, None, None)
    if not isinstance(given, ComponentInput):
        evidence: dict[str, Any] = {}
        if name == "location" and isinstance(given, str) and _LEVEL_RE.match(given):
            evidence = {"level": given.strip().upper()}
        given = ComponentInput(given, "clinician", evidence)
    opt = parse_option(name, given.value)
    ev = dict(given.evidence)
    if name == "location" and isinstance(given.value, str) and _LEVEL_RE.match(given.value):
        ev.setdefault("level", given.value.strip().upper())
    prop_val = prop_ev = None
    if given.proposed is not None:
        prop_val = parse_option(name, given.proposed.value).value
        prop_ev = dict(given.proposed.evidence)
    return SinsComponent(name, opt.value, POINTS[name][opt], given.source, ev, given.note,
                         prop_val, prop_ev or {})


def compute_sins(location: Any = None, pain: Any = None, lesion_type: Any = None,
                 alignment: Any = None, collapse: Any = None, posterolateral: Any = None) -> SinsResult:
    """Compute the Spinal Instability Neoplastic Score (Fisher et al., Spine 2010;35:E1221).

    Each argument is an option (enum member or accepted text, see :func:`parse_option`; taken as
    a clinician entry), a :class:`ComponentInput` (from :func:`clinician`, :func:`ct_proposed`,
    :func:`override`), or None when unknown. ``location`` also accepts a spinal level (``"C2"``).

    Returns
    -------
    SinsResult
        With ``total`` None and ``total_min``/``total_max`` the possible range when any component
        is missing.

    Raises
    ------
    InputError
        An option is not valid for its component.

    Examples
    --------
    >>> r = compute_sins("C2", "mechanical", "lytic", "normal", "none", "none")
    >>> r.total, r.category, r.referral
    (8, 'potentially unstable', True)
    >>> r = compute_sins("C2", None, "lytic", None, "none", "none")
    >>> r.total, (r.total_min, r.total_max), r.missing
    (None, (5, 12), ('pain', 'alignment'))
    """
    given = dict(location=location, pain=pain, lesion_type=lesion_type, alignment=alignment,
                 collapse=collapse, posterolateral=posterolateral)
    comps = {name: _component(name, given[name]) for name in COMPONENTS}
    lo = sum(c.points_range[0] for c in comps.values())
    hi = sum(c.points_range[1] for c in comps.values())
    missing = tuple(n for n, c in comps.items() if c.missing)
    total = lo if not missing else None
    cat_lo, cat_hi = sins_category(lo), sins_category(hi)
    category = cat_lo if cat_lo == cat_hi else None
    if lo >= SINS_REFERRAL_MIN:
        referral: bool | None = True
    elif hi < SINS_REFERRAL_MIN:
        referral = False
    else:
        referral = None
    return SinsResult(comps, total, lo, hi, category, referral, missing)
