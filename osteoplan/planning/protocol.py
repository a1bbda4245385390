"""Procedure protocols as data: TOML files validated on load.

A protocol fixes everything the planner needs that is a clinical choice rather than a measurement:
target zone, entry rules, side, instruments and screw catalogue, a margin per structure, angle
limits, objective weights. Shipped protocols live in ``osteoplan/planning/protocols/*.toml``; each
value in them says its source or is marked "configurable default, no published source".

Examples
--------
>>> p = load_protocol("c2-dens-anterior")
>>> p.screw.diameters_mm
[3.5, 4.0]
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from osteoplan.errors import ProtocolError, safe_path
from osteoplan.planning.protocol_names import DEFAULT_PROTOCOL, PROTOCOL_DIR, available_protocols  # noqa: F401 (API)


class _M(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EntryZone(_M):
    """The bone-entry zone as a box in a landmark frame (procedure-agnostic).

    The bone entry E is expressed relative to the landmark ``reference`` that the procedure's site provides
    (:attr:`osteoplan.planning.site.Site.references`: ``anteroinferior_corner`` / ``waist`` for the dens screw,
    ``pedicle_entry`` for a transpedicular needle, ...) in the site frame (axis, anterior, lateral) = (the
    structure's cranial axis, anterior unit perpendicular to it, their cross product): ``axis`` = height above the
    reference along the axis, ``anterior`` = offset towards the front, ``|lateral|`` = distance from the plane
    through the reference spanned by axis and anterior. Each bound left ``None`` is not applied.
    """

    reference: str
    axis_min_mm: float | None = Field(None, ge=-60, le=60)
    axis_max_mm: float | None = Field(None, ge=-60, le=60)
    anterior_min_mm: float | None = Field(None, ge=-60, le=60)
    anterior_max_mm: float | None = Field(None, ge=-60, le=60)
    lateral_abs_max_mm: float | None = Field(None, ge=0, le=60)
    #: Smallest offset of the bone entry AWAY from the mid-sagittal plane, measured from the reference point (mm):
    #: e.g. a parapedicular entry lateral to the pedicle. None = not applied.
    outward_min_mm: float | None = Field(None, ge=-60, le=60)


class EntryRules(_M):
    """Bone- and skin-entry rules.

    Either ``zone`` (an :class:`EntryZone`) or the older pair ``bone_entry_anterior_min_mm`` /
    ``bone_entry_below_waist_min_mm`` (relative to the dens waist; protocol files before 1.1) is given;
    :meth:`effective_zone` turns the pair into the equivalent zone.
    """

    zone: EntryZone | None = None
    bone_entry_anterior_min_mm: float | None = Field(None, ge=-20, le=20)
    bone_entry_below_waist_min_mm: float | None = Field(None, ge=-20, le=40)
    max_depth_mm: float = Field(gt=20, le=300)
    min_incidence_deg: float = Field(ge=0, le=90)
    #: Structures (names without the ``_left`` / ``_right`` side) the path must stay medial to wherever it is at or
    #: behind their front edge, where they are segmented: the carotid sheath for the anterior cervical corridor.
    skin_medial_to: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_zone(self):
        old = self.bone_entry_anterior_min_mm is not None or self.bone_entry_below_waist_min_mm is not None
        if self.zone is None and not old:
            raise ValueError("give [entry.zone] (or bone_entry_anterior_min_mm / bone_entry_below_waist_min_mm)")
        if self.zone is not None and old:
            raise ValueError("give either [entry.zone] or the bone_entry_* pair, not both")
        return self

    def effective_zone(self) -> EntryZone:
        """The bone-entry zone (the older waist-relative pair as a zone)."""
        if self.zone is not None:
            return self.zone
        below = self.bone_entry_below_waist_min_mm
        return EntryZone(reference="waist", axis_max_mm=None if below is None else -below,
                         anterior_min_mm=self.bone_entry_anterior_min_mm)


class SideRule(_M):
    default: Literal["left", "right", "best"]


class AngleLimits(_M):
    craniocaudal_min_deg: float = Field(ge=-90, le=90)
    craniocaudal_max_deg: float = Field(ge=-90, le=90)
    mediolateral_min_deg: float = Field(ge=0, le=180)
    mediolateral_max_deg: float = Field(ge=0, le=180)
    grid_step_deg: float = Field(gt=0.1, le=20)
    #: Hard cap on the angle between the path and the site's cone axis (the dens axis, the pedicle axis) (deg);
    #: when set, directions are sampled on a cone around that axis (see
    #: :func:`osteoplan.planning.search.directions`). ``None`` = no cap. ``dens_axis_max_deg`` is read as this.
    axis_max_deg: float | None = Field(None, gt=0, le=90, validation_alias=AliasChoices("axis_max_deg", "dens_axis_max_deg"))

    @model_validator(mode="after")
    def _order(self):
        if self.craniocaudal_max_deg < self.craniocaudal_min_deg:
            raise ValueError("craniocaudal_max_deg must be >= craniocaudal_min_deg")
        if self.mediolateral_max_deg < self.mediolateral_min_deg:
            raise ValueError("mediolateral_max_deg must be >= mediolateral_min_deg")
        return self


class Instruments(_M):
    trocar_gauge: int = Field(ge=6, le=22)
    trocar_outer_diameter_mm: float = Field(gt=0, le=10)
    guide_pin_diameter_mm: float | None = Field(None, gt=0, le=5)


class ScrewCatalogue(_M):
    diameters_mm: list[float] = Field(min_length=1)
    length_min_mm: float = Field(gt=0, le=120)
    length_max_mm: float = Field(gt=0, le=120)
    length_step_mm: float = Field(gt=0, le=20)
    practice_min_mm: float = Field(gt=0, le=120)
    practice_max_mm: float = Field(gt=0, le=120)
    thread_mm: dict[str, float]
    catalogue: str
    waist_margin_mm: float = Field(ge=0, le=5)
    containment_margin_mm: float = Field(ge=-2, le=5)
    containment_skip_entry_mm: float = Field(ge=0, le=20)
    #: The tip's last millimetres excluded from containment (the tip engages the apical cortex).
    containment_skip_tip_mm: float = Field(0.0, ge=0, le=10)
    #: When set, the screw's thread (the last ``thread_mm`` before the tip) must cross the dens waist and,
    #: when a lesion is segmented, the lesion.
    thread_crosses_waist: bool = False
    thread_crosses_lesion: bool = False
    #: A plan more than this shorter than its bone entry -> dens apex distance is flagged (mm); None = no flag.
    short_of_apex_flag_mm: float | None = Field(None, ge=0, le=30)
    #: Shortest screw when the anatomy allows it (mm): the length floor is min(this, anteroinferior
    #: corner -> apex - ``short_of_apex_flag_mm``) and never below ``length_min_mm``. None = ``length_min_mm``.
    preferred_min_mm: float | None = Field(None, gt=0, le=120)

    @field_validator("diameters_mm")
    @classmethod
    def _diam(cls, v: list[float]) -> list[float]:
        if any(d <= 0 or d > 10 for d in v):
            raise ValueError("every diameter must be in (0, 10] mm")
        return sorted(v)

    @model_validator(mode="after")
    def _check(self):
        if self.length_max_mm < self.length_min_mm:
            raise ValueError("length_max_mm must be >= length_min_mm")
        for d in self.diameters_mm:
            if self.thread_key(d) not in self.thread_mm:
                raise ValueError(f"thread_mm has no entry for diameter {d} (key \"{self.thread_key(d)}\")")
        return self

    @staticmethod
    def thread_key(d: float) -> str:
        return f"{d:.1f}"

    def lengths(self) -> list[float]:
        """Catalogue lengths (mm), ascending: min, min+step, ... <= max."""
        n = int((self.length_max_mm - self.length_min_mm) / self.length_step_mm + 1e-9)
        return [round(self.length_min_mm + i * self.length_step_mm, 3) for i in range(n + 1)]


class StructureRule(_M):
    """Required clearance of one structure; ``never_enter`` marks a hollow viscus (pharynx, oesophagus, larynx,
    trachea, airway): hydrodissection may push it, but an instrument that intersects it makes the path infeasible."""

    category: Literal["hard", "displaceable"]
    margin_mm: float = Field(ge=0, le=30)
    never_enter: bool = False
    #: When not segmented, the structure counts as covered (not "not assessed") by the implant's containment in the
    #: target bone, for structures that lie outside that bone away from the skin-to-bone segment (the aorta in front
    #: of a vertebral body reached through the pedicle): the path never leaves the bone between its bone entry and
    #: its tip. Said in the plan with the containment figure.
    covered_by_containment: bool = False


class HydroRule(_M):
    achievable_mm: float = Field(ge=0, le=50)


class CementRule(_M):
    reference_mean_ml: float = Field(gt=0)
    reference_sd_ml: float = Field(ge=0)
    reference_min_ml: float = Field(gt=0)
    reference_max_ml: float = Field(gt=0)
    filling_fraction_low: float = Field(gt=0, le=1)
    filling_fraction_high: float = Field(gt=0, le=1)
    leak_distance_mm: float = Field(ge=0, le=20)


class GuidanceRule(_M):
    gantry_limit_deg: float = Field(ge=0, le=60)
    carm_cranio_caudal_limit_deg: float = Field(ge=0, le=90)


class DensityRule(_M):
    cortical_hu: float
    cancellous_hu: float
    bone_hu: float


class Objective(_M):
    displacement: float = Field(ge=0)
    depth: float = Field(ge=0)
    #: weight per degree between the path and the site's cone axis (``dens_axis`` is read as this)
    axis_angle: float = Field(ge=0, validation_alias=AliasChoices("axis_angle", "dens_axis"))
    containment: float = Field(ge=0)
    containment_target_mm: float = Field(ge=0)
    hard_clearance: float = Field(ge=0)
    lesion: float = Field(ge=0)
    bone_purchase: float = Field(ge=0)
    #: penalty per mm the screw is shorter than its bone entry -> apex distance (0 = not used)
    short_of_apex: float = Field(0.0, ge=0)


class OutputRule(_M):
    n_plans: int = Field(ge=1, le=20)
    min_bone_entry_separation_mm: float = Field(ge=0)
    min_direction_difference_deg: float = Field(ge=0)


class Needle(_M):
    """Straight bone-access needles (vertebroplasty trocars): no implant left in place but the cement.

    ``outer_diameters_mm`` / ``gauges``: the sizes available (largest tried first, kept when it leaves
    ``width_margin_mm`` of bone each side at the narrowest section the site names, e.g. the pedicle isthmus).
    ``length_mm`` is the working length. Containment = the needle surface stays ``containment_margin_mm`` inside
    the target bone between its bone entry (after ``containment_skip_entry_mm``) and its tip.
    """

    gauges: list[int] = Field(min_length=1)
    outer_diameters_mm: list[float] = Field(min_length=1)
    length_mm: float = Field(gt=20, le=300)
    width_margin_mm: float = Field(ge=0, le=5)
    containment_margin_mm: float = Field(ge=-2, le=5)
    containment_skip_entry_mm: float = Field(ge=0, le=20)
    containment_skip_tip_mm: float = Field(0.0, ge=0, le=10)

    @model_validator(mode="after")
    def _sizes(self):
        if len(self.gauges) != len(self.outer_diameters_mm):
            raise ValueError("gauges and outer_diameters_mm must have the same length")
        if any(d <= 0 or d > 10 for d in self.outer_diameters_mm):
            raise ValueError("every needle diameter must be in (0, 10] mm")
        return self

    def gauge_of(self, diameter_mm: float) -> int:
        """The gauge of the needle of *diameter_mm*."""
        return self.gauges[min(range(len(self.gauges)), key=lambda i: abs(self.outer_diameters_mm[i] - diameter_mm))]


@dataclass(frozen=True)
class Implant:
    """What the engine needs of the protocol's instrument/implant, screw or needle alike (mm).

    ``lengths_mm`` is None for a needle (no catalogue: the bone part is as long as the path); ``thread_mm`` is 0
    for a needle. Built by :meth:`Protocol.implant`.
    """

    kind: str  # "screw" | "needle"
    diameters_mm: tuple[float, ...]
    lengths_mm: tuple[float, ...] | None
    length_step_mm: float
    thread_by_diameter_mm: dict[str, float]
    containment_margin_mm: float
    containment_skip_entry_mm: float
    containment_skip_tip_mm: float
    width_margin_mm: float
    thread_crosses_waist: bool = False
    thread_crosses_lesion: bool = False
    preferred_min_mm: float | None = None
    short_of_apex_flag_mm: float | None = None

    def thread_mm(self, diameter_mm: float) -> float:
        """Thread length of the catalogue screw of *diameter_mm* (0 for a needle)."""
        return float(self.thread_by_diameter_mm.get(f"{diameter_mm:.1f}", 0.0))


class Protocol(_M):
    """A validated procedure protocol (see ``protocols/c2-dens-anterior.toml`` for every field's meaning).

    ``procedure`` names the procedure module (:mod:`osteoplan.planning.procedures`) that reads the patient's
    anatomy; it also validates ``[target]`` (each procedure has its own target zone). Exactly one of ``screw``
    (an implant catalogue) or ``needle`` is given.
    """

    name: str
    version: str
    title: str
    #: Procedure module (``c2-dens-screw``, ``vertebroplasty``, ``c2-cementoplasty``); older files = the dens screw.
    procedure: str = "c2-dens-screw"
    #: The technique's route (says what "route not assessable" means), e.g. "anterior", "lateral", "transpedicular".
    route: str = "lateral"
    #: Vertebra level(s) planned when none is asked (``"C2"``, ``"T12"``); None = the procedure's default.
    default_level: str | None = None
    #: Needles per level: 1 (one side, the best or the asked one) or 2 (bipedicular: one each side).
    needles_per_level: int = Field(1, ge=1, le=2)
    sources: list[str] = Field(default_factory=list)
    target: Any
    entry: EntryRules
    side: SideRule
    angles: AngleLimits
    instruments: Instruments
    screw: ScrewCatalogue | None = None
    needle: Needle | None = None
    structures: dict[str, StructureRule]
    hydrodissection: HydroRule
    cement: CementRule
    guidance: GuidanceRule
    density: DensityRule
    objective: Objective
    output: OutputRule

    @model_validator(mode="before")
    @classmethod
    def _target_of_procedure(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("target"), dict):
            return data
        from osteoplan.planning.procedures import get_procedure

        proc = get_procedure(str(data.get("procedure", "c2-dens-screw")))
        out = dict(data)
        try:
            out["target"] = proc.target_model.model_validate(data["target"])
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ValueError(f"[target] {'.'.join(str(x) for x in err['loc'])}: {err['msg']}") from None
        return out

    @model_validator(mode="after")
    def _one_implant(self):
        if (self.screw is None) == (self.needle is None):
            raise ValueError("give exactly one of [screw] (an implant catalogue) or [needle]")
        return self

    def implant(self) -> Implant:
        """The screw catalogue or the needle as the engine's :class:`Implant`."""
        sc, nd = self.screw, self.needle
        if sc is not None:
            return Implant(kind="screw", diameters_mm=tuple(sc.diameters_mm), lengths_mm=tuple(sc.lengths()),
                           length_step_mm=sc.length_step_mm, thread_by_diameter_mm=dict(sc.thread_mm),
                           containment_margin_mm=sc.containment_margin_mm,
                           containment_skip_entry_mm=sc.containment_skip_entry_mm,
                           containment_skip_tip_mm=sc.containment_skip_tip_mm, width_margin_mm=sc.waist_margin_mm,
                           thread_crosses_waist=sc.thread_crosses_waist, thread_crosses_lesion=sc.thread_crosses_lesion,
                           preferred_min_mm=sc.preferred_min_mm, short_of_apex_flag_mm=sc.short_of_apex_flag_mm)
        assert nd is not None
        return Implant(kind="needle", diameters_mm=tuple(sorted(nd.outer_diameters_mm)), lengths_mm=None,
                       length_step_mm=0.0, thread_by_diameter_mm={}, containment_margin_mm=nd.containment_margin_mm,
                       containment_skip_entry_mm=nd.containment_skip_entry_mm,
                       containment_skip_tip_mm=nd.containment_skip_tip_mm, width_margin_mm=nd.width_margin_mm)

    def hard_structures(self) -> list[str]:
        """Names of hard structures (never displaced)."""
        return [n for n, r in self.structures.items() if r.category == "hard"]

    def displaceable_structures(self) -> list[str]:
        """Names of structures hydrodissection may push away."""
        return [n for n, r in self.structures.items() if r.category == "displaceable"]


def parse_protocol(data: dict, origin: str = "<protocol>") -> Protocol:
    """Validate a protocol mapping.

    Raises
    ------
    ProtocolError
        A field is missing, unknown or out of range; the message names the field.
    """
    try:
        return Protocol.model_validate(data)
    except ValidationError as exc:
        parts = []
        for err in exc.errors()[:3]:
            loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
            parts.append(f"field '{loc}': {err['msg']}")
        raise ProtocolError(f"Protocol {origin} is invalid: " + "; ".join(parts)
                            + ". Fix the protocol file (see protocols/c2-dens-anterior.toml for the documented fields).") from None


def load_protocol(name_or_path: str | Path = DEFAULT_PROTOCOL) -> Protocol:
    """Load a shipped protocol by name or a TOML file by path.

    Raises
    ------
    ProtocolError
        Unknown name, unreadable file, TOML syntax error, or invalid field (named in the message).
    """
    p = Path(name_or_path)
    if not (p.suffix == ".toml" or p.exists()):
        p = PROTOCOL_DIR / f"{name_or_path}.toml"
        if not p.exists():
            raise ProtocolError(f"Unknown protocol '{name_or_path}'. Available: {', '.join(available_protocols())}; "
                                "or give a path to a .toml protocol file.")
    if not p.is_file():
        raise ProtocolError(f"Protocol file not found: {safe_path(p)}.")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolError(f"Protocol {safe_path(p)} is not valid TOML: {exc}.") from None
    except UnicodeDecodeError:
        raise ProtocolError(f"Protocol {safe_path(p)} is not UTF-8 text.") from None
    return parse_protocol(data, safe_path(p))
