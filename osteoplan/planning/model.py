"""The plan as data: what osteoplan proposes for one CT, serialised to versioned JSON.

A :class:`Plan` is an immutable pydantic model. It is written with :func:`save_plan` (atomic) or
:meth:`Plan.to_json`, read back with :func:`load_plan` / :meth:`Plan.from_json`, and its JSON Schema
is :func:`plan_json_schema` (also shipped as ``osteoplan/planning/plan.schema.json``).

Conventions
-----------
* Every point is DICOM patient **LPS millimetres** (``*_lps_mm``: ``[x, y, z]``, x -> patient left,
  y -> posterior, z -> superior); voxel indices are array order ``(k, j, i)`` (``*_voxel_kji``),
  fractional, on the CT grid summarised in :attr:`Plan.ct`.
* ``direction_unit`` points **from the skin entry towards the target**.
* ``angle_craniocaudal_deg``: elevation of the path above the axial plane, ``asin(d_S)``;
  positive = ascending (skin entry caudal to the target). ``angle_mediolateral_deg``: angle in the
  axial plane between the path and the antero-posterior axis, ``atan2(|d_x|, d_y)``: 0 = straight
  anterior -> posterior, 90 = pure lateral, > 90 = coming from behind the target.
* A :class:`ClearanceCheck` with ``segmented = False`` has ``status = "not_assessed"`` and
  ``clearance_mm = None``: a structure that was not segmented is never reported as clear.
* C-arm angles follow DICOM Positioner Primary/Secondary Angle (PS3.3 C.8.7.5): primary angle
  positive = LAO (detector towards the patient's left), secondary positive = cranial, patient supine,
  angles describing the position of the **detector** (image intensifier) seen from the isocentre.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Version of the plan JSON layout. Bump the minor for additive fields, the major for breaking ones.
SCHEMA_VERSION = "1.3"

Vec3 = tuple[float, float, float]
Status = Literal["pass", "hydrodissection", "fail", "not_assessed", "covered", "not_assessable"]
#: How a structure was known: a segmented vessel/organ, its bony canal (vertebral artery by its
#: transverse foramina on a plain CT), a mask the user provided, covered by another structure's
#: clearance (the cord by the spinal canal that contains it), or not known.
Assessment = Literal["segmented", "bony_canal", "provided_mask", "atlas", "covered", "not_assessed"]
VerdictCode = Literal["feasible", "feasible_hydrodissection", "not_cleared", "no_feasible_path",
                      "route_not_assessable"]
Category = Literal["hard", "displaceable"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CTGeometry(_Frozen):
    """Geometry of the CT the plan was made on (no identifiers).

    Attributes
    ----------
    shape_kji : (K, J, I) array shape (slices, rows, columns).
    spacing_mm : voxel spacing along (k, j, i), mm.
    affine : 4x4 index (k, j, i, 1) -> LPS mm, row-major nested lists.
    source_format : "dicom", "nifti", "phantom", ... when known.
    """

    shape_kji: tuple[int, int, int]
    spacing_mm: Vec3
    affine: tuple[tuple[float, float, float, float], ...]
    source_format: str | None = None


class CTSource(_Frozen):
    """The CT a plan belongs to: its DICOM UIDs (when it came from DICOM) and a hash of the volume planned on.

    Attributes
    ----------
    study_uid, series_uid, frame_of_reference_uid : DICOM Study / Series Instance UID and Frame of Reference UID
        of the series read (pseudonymised when the CT was read with de-identification); None for NIfTI/NRRD or
        the phantom.
    volume_sha256 : SHA-256 (hex) of the volume as planned: voxels and geometry
        (:func:`osteoplan.planning.provenance.volume_sha256`, method in ``hash_method``).
    hash_method : name and version of the hashing recipe.
    """

    study_uid: str | None = None
    series_uid: str | None = None
    frame_of_reference_uid: str | None = None
    volume_sha256: str
    hash_method: str = "osteoplan-volume-sha256-v1"


class ClearanceCheck(_Frozen):
    """One structure checked against one trajectory.

    Attributes
    ----------
    structure : canonical structure name (``spinal_canal``, ``common_carotid_artery_left``...).
    category : ``"hard"`` (may never be entered closer than the margin: cord/canal, vertebral
        arteries, bone on the way) or ``"displaceable"`` (may be pushed away by hydrodissection:
        carotid, internal jugular vein, pharynx, oesophagus, trachea, larynx, airway).
    margin_mm : required clearance between the instrument surface and the structure (protocol).
    clearance_mm : smallest distance (mm) from the instrument surface (its radius included) to the
        structure along the checked segment; negative = the instrument would enter it by that much
        (for displaceable structures, how deep inside); None when not assessed.
    status : ``"pass"`` (clearance >= margin), ``"hydrodissection"`` (displaceable and inside the
        margin, displacement within what hydrodissection can achieve), ``"fail"``, ``"not_assessed"``.
    displacement_needed_mm : how far the structure must be pushed away for its margin to hold
        (``margin - clearance``, > 0) for displaceable structures inside their margin, else None.
    segmented : False when the structure was not segmented (then status is ``"not_assessed"``).
    source : where the mask came from (``"provided:..."``, ``"classical"``, ``"phantom-truth"``...).
    segment : which part of the path was checked: ``"skin_to_target"`` (whole path) or ``"screw"``.
    note : free text (e.g. "atlas-transferred mask, not this patient's vessel").
    """

    structure: str
    category: Category
    margin_mm: float
    clearance_mm: float | None
    status: Status
    displacement_needed_mm: float | None = None
    segmented: bool
    source: str | None = None
    segment: str = "skin_to_target"
    note: str | None = None
    assessed_by: Assessment | None = None


class Screw(_Frozen):
    """The cannulated screw chosen from the protocol catalogue.

    Attributes
    ----------
    diameter_mm, length_mm, thread_mm : catalogue values (length rounded DOWN to the catalogue step
        from the bone-entry -> target distance).
    catalogue_ref : catalogue entry id (e.g. ``"cannulated-4.0x34"``).
    waist_diameter_mm : dens waist diameter used for the choice (landmarks), None if unknown.
    waist_margin_mm : bone left on each side at the waist, ``(waist - diameter) / 2``, None if unknown.
    fits_waist : True when ``waist_margin_mm`` >= the protocol's required margin.
    tip_short_of_target_mm : target distance minus screw length (>= 0, below one catalogue step).
    """

    diameter_mm: float
    length_mm: float
    thread_mm: float
    catalogue_ref: str
    waist_diameter_mm: float | None = None
    waist_margin_mm: float | None = None
    fits_waist: bool | None = None
    tip_short_of_target_mm: float = 0.0


class HUProfile(_Frozen):
    """Bone density along the screw (bone entry -> target), trilinear HU samples.

    Shares are fractions (0..1) of samples: cortical >= ``cortical_hu``, cancellous between
    ``cancellous_hu`` and ``cortical_hu``, low (lytic or soft tissue) below ``cancellous_hu``.
    ``samples_hu`` are the HU values at ``step_mm`` spacing from the bone entry.
    """

    mean_hu: float
    min_hu: float
    max_hu: float
    cortical_share: float
    cancellous_share: float
    low_density_share: float
    cortical_hu: float
    cancellous_hu: float
    step_mm: float
    samples_hu: tuple[float, ...] = ()


class CArmView(_Frozen):
    """A C-arm position (DICOM positioner angles; see module docstring).

    ``primary_deg`` > 0 = LAO, < 0 = RAO; ``secondary_deg`` > 0 = cranial, < 0 = caudal.
    ``label`` spells it as radiologists do, e.g. ``"RAO 78° / CRAN 32°"``.
    ``detector_direction_lps`` is the unit vector from the isocentre to the detector.
    """

    primary_deg: float
    secondary_deg: float
    label: str
    detector_direction_lps: Vec3
    note: str | None = None


class Guidance(_Frozen):
    """Numbers for the room: C-arm views and CT gantry tilt.

    Attributes
    ----------
    bullseye : C-arm view looking down the trajectory (the guide pin seen end-on).
    progression : C-arm view at 90 deg to the trajectory (the one closest to AP), to watch depth.
    gantry_tilt_deg : CT gantry tilt that puts the whole path in one (tilted) axial slice; None when
        the path is too close to craniocaudal for any tilt (|tilt| would be 90 deg).
    gantry_limit_deg : scanner limit (protocol, configurable default).
    gantry_within_limit : False when the needed tilt exceeds the limit (then the path cannot be
        shown in one slice: use oblique reformats).
    """

    bullseye: CArmView
    progression: CArmView
    gantry_tilt_deg: float | None
    gantry_limit_deg: float
    gantry_within_limit: bool


class Trajectory(_Frozen):
    """One candidate path: skin entry -> bone entry (the target bone's cortex) -> target (the procedure's zone)."""

    rank: int
    side: Literal["left", "right"]
    level: str | None = Field(None, description="Vertebra level of this trajectory (C2, T12, ...).")
    skin_entry_in_image: bool = Field(True, description="False for a path that leaves the image still inside the "
                                      "body: skin_entry_lps_mm is then where it leaves the image, not the skin.")
    skin_entry_lps_mm: Vec3
    bone_entry_lps_mm: Vec3
    target_lps_mm: Vec3
    skin_entry_voxel_kji: Vec3
    bone_entry_voxel_kji: Vec3
    target_voxel_kji: Vec3
    direction_unit: Vec3
    depth_skin_to_bone_mm: float
    depth_bone_to_target_mm: float
    depth_total_mm: float
    angle_craniocaudal_deg: float
    angle_mediolateral_deg: float
    angle_to_dens_axis_deg: float | None = None
    clearances: tuple[ClearanceCheck, ...]
    screw: Screw | None
    needle_diameter_mm: float | None = Field(None, description="Outer diameter of the needle (no implant), mm.")
    containment_min_margin_mm: float | None = Field(
        description="Smallest distance from the screw surface to the outside of C2 along the screw "
        "(entry zone excluded), mm; None when C2 was not segmented.")
    containment_entry_skip_mm: float = Field(0.0, description="Length after the bone entry excluded from "
                                             "containment (the screw crosses the cortex there), mm.")
    entry_incidence_deg: float | None = Field(None, description="Angle between the path and the C2 surface at the bone entry (90 = perpendicular).")
    instrument_radius_mm: float | None = Field(None, description="Radius of the instrument used for clearances "
                                               "(largest of trocar, screw, guide pin), mm; the instrument is modelled "
                                               "as a capsule around the path axis.")
    hu_profile: HUProfile | None = None
    lesion_crossing_mm: float | None = Field(
        default=None, description="Length of the screw path inside the lesion (mm); None if no lesion segmented.")
    soft_tissue_depth_mm: float
    mandible_crossing_mm: float | None = None
    other_bone_crossing_mm: float = 0.0
    tip_depth_inside_cortex_mm: float | None = None
    tip_below_apex_mm: float | None = None
    tip_anterior_of_axis_mm: float | None = None
    hydrodissection_required: bool = False
    tip_to_cortex_mm: float | None = Field(None, description="Distance from the tip to the C2 cortex ahead of it along "
                                           "the path (mm): how far short of the apical cortex the tip stops.")
    tip_to_apex_mm: float | None = Field(None, description="Distance from the tip to the dens apex landmark (mm).")
    bone_entry_to_apex_mm: float | None = Field(None, description="Distance from the bone entry to the dens apex (mm): "
                                                "the longest screw this entry allows.")
    bone_entry_above_corner_mm: float | None = Field(None, description="Height of the bone entry above the "
                                                     "anteroinferior corner of the C2 body along the dens axis (mm).")
    bone_entry_from_midline_mm: float | None = Field(None, description="Distance of the bone entry from the "
                                                     "mid-sagittal plane through the anteroinferior corner (mm).")
    thread_crosses_waist: bool | None = Field(None, description="The screw's thread (its last thread_mm before the "
                                              "tip) spans the dens waist.")
    thread_in_lesion_mm: float | None = Field(None, description="Length of the thread inside the lesion (mm); None "
                                              "when no lesion was assessed.")
    pedicle_margin_mm: float | None = Field(None, description="Smallest distance from the needle surface to the outer "
                                            "cortex of the pedicle it passes (mm); negative = the needle breaches it.")
    pedicle_breach_grade: str | None = Field(None, description="Gertzbein-Robbins grade of the pedicle passage "
                                             "(Spine 1990;15:11): A inside, B breach < 2 mm, C 2-4, D 4-6, E > 6 mm.")
    pedicle_breach_wall: str | None = Field(None, description="Which pedicle wall is closest to (or breached by) the "
                                            "needle: medial (canal), lateral, superior, inferior (foramen, nerve root).")
    tip_anterior_fraction: float | None = Field(None, description="Tip position across the vertebral body from the "
                                                "posterior wall (0) to the anterior wall (1).")
    tip_from_midline_mm: float | None = Field(None, description="Tip distance from the body's mid-sagittal plane (mm), "
                                              "positive on the far side from the entry pedicle (crossing the midline).")
    tip_below_superior_endplate_mm: float | None = Field(None, description="Tip distance below the superior endplate "
                                                         "along the body axis (mm).")
    score: float
    score_terms: dict[str, float] = Field(default_factory=dict)
    guidance: Guidance | None = None

    def check(self, structure: str) -> ClearanceCheck | None:
        """The clearance check for *structure*, or None."""
        for c in self.clearances:
            if c.structure == structure:
                return c
        return None


class DisplacementItem(_Frozen):
    """Displacement a displaceable structure needs for its margin to hold."""

    structure: str
    displacement_needed_mm: float
    clearance_mm: float
    margin_mm: float


class Hydrodissection(_Frozen):
    """Hydrodissection summary for the chosen trajectory.

    ``achievable_mm`` is the protocol's assumption of what hydrodissection can buy (no published
    figure: configurable default). ``reference_volume_ml``: the volume injected in the published series of
    percutaneous anterior odontoid screws after hydrodissection of the jugulo-carotid and prevertebral spaces,
    218 +/- 8.4 mL (mean +/- SD, range 210-230 mL, 5 patients; PMID 33388865, abstract as indexed under that PMID,
    e.g. orthobullets.com/evidence/33388865). A description of that series, not a recommended dose.
    """

    required: bool
    structures: tuple[DisplacementItem, ...] = ()
    max_displacement_mm: float = 0.0
    achievable_mm: float
    within_achievable: bool = True
    reference_volume_ml: str = "218 +/- 8.4 mL (mean +/- SD, range 210-230 mL, 5 patients), PMID 33388865"
    note: str | None = None


class WallCheck(_Frozen):
    """One lesion wall next to a dangerous neighbour (leak route for cement)."""

    neighbour: str
    segmented: bool
    breached: bool | None
    distance_mm: float | None
    leak_risk: bool | None
    note: str | None = None


class Cement(_Frozen):
    """Cementoplasty suggestion.

    ``suggested_pmma_ml`` = (low, high) mL. The rule and the published reference are in ``basis``
    (Mont'Alverne et al., AJNR 2005;26:1641: C2 2.9 +/- 0.7 mL, range 2-4 mL, filling 61 +/- 15 %).
    """

    lesion_assessed: bool
    lesion_volume_ml: float | None
    suggested_pmma_ml: tuple[float, float]
    basis: str
    walls: tuple[WallCheck, ...] = ()
    leak_risk: bool | None = None
    notes: tuple[str, ...] = ()
    #: Suggested PMMA per level (mL, low-high) for plans of several vertebrae.
    per_level_ml: dict[str, tuple[float, float]] | None = None


class ConstraintExclusion(_Frozen):
    """How many candidates one constraint excluded (a candidate can fail several)."""

    constraint: str
    description: str
    excluded: int
    excluded_first: int = Field(0, description="Candidates for which this was the first failing constraint "
                                "(constraints taken in the order listed).")


class NearMiss(_Frozen):
    """The candidate that came closest to feasibility and by how much it missed."""

    skin_entry_lps_mm: Vec3 | None
    target_lps_mm: Vec3
    direction_unit: Vec3
    violations: dict[str, float] = Field(default_factory=dict,
                                         description="constraint -> shortfall (mm or deg) beyond its limit")
    clearances: tuple[ClearanceCheck, ...] = ()


class Infeasibility(_Frozen):
    """Why no candidate (or few) survived the hard constraints."""

    n_candidates: int
    n_feasible: int
    exclusions: tuple[ConstraintExclusion, ...]
    best_near_miss: NearMiss | None
    message: str


class SearchStats(_Frozen):
    """How the search was run."""

    n_targets: int
    n_directions: int
    n_candidates: int
    n_feasible: int
    seconds: float
    sample_step_mm: float
    refine_step_mm: float


class RouteCheck(_Frozen):
    """Whether the CT shows the whole route of the protocol's technique.

    ``assessable`` False means the image cannot answer (e.g. the anterior odontoid route's skin entry
    lies below the CT's lower edge); the planner then reports it and never substitutes another route.
    """

    assessable: bool
    route: str = Field(description="Route of the protocol, e.g. 'anterior' or 'lateral'.")
    message_en: str | None = None
    message_fr: str | None = None
    figures: dict[str, float] = Field(default_factory=dict,
                                      description="Measured figures behind the answer (mm), e.g. how far below the CT's "
                                                  "lower edge the skin entry would lie.")


class Verdict(_Frozen):
    """The plan's one verdict, computed once (:func:`osteoplan.planning.verdict.compute_verdict`) and printed
    as it is by every face (CLI RESULT line, report first page, SR, web case page).

    Codes: ``feasible`` (every hard structure assessed and clear, no hydrodissection needed),
    ``feasible_hydrodissection`` (feasible once displaceable structures are pushed), ``not_cleared`` (a path
    was found but hard structures were not assessed), ``no_feasible_path``, ``route_not_assessable`` (the CT
    does not show the technique's route). ``exit_code`` is the ``osteoplan plan`` exit status.
    """

    code: VerdictCode
    text_en: str
    text_fr: str
    details_en: tuple[str, ...] = ()
    details_fr: tuple[str, ...] = ()
    exit_code: int = 0

    def text(self, lang: str = "en") -> str:
        """The headline in *lang* ("en" or "fr")."""
        return self.text_fr if lang == "fr" else self.text_en


class ImageNote(_Frozen):
    """What the CT reader did to the image (or a planned path crossing an interpolated slice), as data.

    One per plan warning it stands for (``text_en`` is that warning, exactly as in :attr:`Plan.warnings`), so that
    each face writes the sentence in its language and with its own remedy
    (:func:`osteoplan.planning.image_warnings.plan_warning_lines`). Never a file name.

    Attributes
    ----------
    kind : ``gap_interpolated``, ``undecodable_files_skipped``, ``files_skipped``, ``files_unused``,
        ``series_chosen`` (:data:`osteoplan.imaging.reader_notes.KINDS`) or ``path_crosses_interpolated``.
    text_en : the English plan warning (``"CT image: ..."``).
    count : slices missing in a gap; files skipped; interpolated slices a path crosses.
    points_lps_mm : LPS positions (mm) of the missing slices (every one), of the skipped files' slices.
    z_lps_mm : ``path_crosses_interpolated``: LPS z (mm) of the interpolated slices the path crosses.
    step_mm : the series' usual slice step (mm). gap_step_mm : the measured step across a gap (mm).
    n_interpolated : skipped files whose slice was interpolated (not held by another image).
    reason : why files were skipped (the reader's fixed words). n_images, n_series, axial, alike_series : the
        series chosen among several. remedy : key of :data:`osteoplan.remedies.REMEDIES`.
    path : ``path_crosses_interpolated``: which path (``"C2 right"``), None when the plan has one.
    """

    kind: str
    text_en: str
    count: int = 0
    points_lps_mm: tuple[Vec3, ...] = ()
    z_lps_mm: tuple[float, ...] = ()
    step_mm: float | None = None
    gap_step_mm: float | None = None
    n_interpolated: int = 0
    reason: str | None = None
    n_images: int | None = None
    n_series: int | None = None
    axial: bool | None = None
    alike_series: tuple[int, ...] = ()
    remedy: str | None = None
    path: str | None = None


class Plan(_Frozen):
    """A complete plan for one CT (see module docstring for conventions).

    ``trajectories`` is ranked (best first) and holds only feasible, meaningfully different
    candidates; it is empty when nothing is feasible, and then :attr:`infeasibility` says why.
    """

    schema_version: str = SCHEMA_VERSION
    osteoplan_version: str
    created_utc: str
    protocol_name: str
    protocol_version: str
    ct: CTGeometry
    side_requested: Literal["left", "right", "best"]
    side: Literal["left", "right"] | None
    feasible: bool
    trajectories: tuple[Trajectory, ...] = ()
    hydrodissection: Hydrodissection | None = None
    cement: Cement | None = None
    guidance: Guidance | None = None
    assessed: tuple[str, ...] = ()
    not_assessed: tuple[str, ...] = ()
    structure_sources: dict[str, str] = Field(default_factory=dict)
    landmarks: dict[str, Any] | None = None
    risk: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    infeasibility: Infeasibility | None = None
    search: SearchStats | None = None
    #: Procedure module (``c2-dens-screw``, ``vertebroplasty``, ...); plans before 1.2 hold the protocol name here.
    procedure: str | None = None
    #: Vertebra level(s) planned (``"C2"``, ``"T12"``, ``"T10-L1"``).
    level: str | None = None
    #: ``"alternatives"``: ``trajectories`` are ranked options, the first is the plan (the dens screw, one
    #: unipedicular level). ``"all"``: every trajectory is to be placed (both pedicles, several levels).
    placement: Literal["alternatives", "all"] = "alternatives"
    #: Site groups (levels / level-sides) with no feasible path (placement "all").
    unplanned: tuple[str, ...] = ()
    #: What must be confirmed before relying on the plan (e.g. a vertebra level named with low confidence): a plan
    #: with a path but something to confirm is NOT CLEARED.
    confirm_first: tuple[str, ...] = ()
    #: When the route is not assessable on this CT: the best paths meeting every rule inside the image (bone entry,
    #: target, containment, clearances up to the image edge), whose skin entry lies outside it. Never a plan.
    partial_trajectories: tuple[Trajectory, ...] = ()
    route: RouteCheck | None = None
    verdict: Verdict | None = None
    ct_source: CTSource | None = None
    #: The CT reader's gaps, skipped files and series choice, and the paths crossing an interpolated slice, as data
    #: (schema 1.3; each stands for one of :attr:`warnings`).
    image_notes: tuple[ImageNote, ...] = ()

    @property
    def best(self) -> Trajectory | None:
        """The first-ranked trajectory, or None when nothing is feasible (or a site group has no path)."""
        return self.trajectories[0] if self.trajectories and not self.unplanned else None

    @property
    def placed(self) -> tuple[Trajectory, ...]:
        """The trajectories to place: the best one, or all of them (``placement == "all"``)."""
        if self.best is None:
            return ()
        return self.trajectories if self.placement == "all" else self.trajectories[:1]

    # ------------------------------------------------------------ JSON
    def to_json(self, indent: int | None = 2) -> str:
        """The plan as JSON text (numbers in mm/deg/mL as documented)."""
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Plan":
        """Parse JSON written by :meth:`to_json`.

        Raises
        ------
        osteoplan.errors.InputError
            The JSON is not a plan, or its major schema version is not supported.
        """
        from pydantic import ValidationError as PydValidationError

        from osteoplan.errors import InputError

        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"Not a plan file: invalid JSON ({exc.msg} at line {exc.lineno}); the file is damaged or "
                             "not written by osteoplan: re-run 'osteoplan plan'.") from None
        ver = str(data.get("schema_version", "")) if isinstance(data, dict) else ""
        if ver.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise InputError(f"Plan schema version '{ver}' is not supported (this osteoplan reads "
                             f"{SCHEMA_VERSION.split('.')[0]}.x); update osteoplan, or re-run 'osteoplan plan' with this version.")
        try:
            return cls.model_validate(data)
        except PydValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise InputError(f"Not a valid plan: field '{loc}': {err['msg']}; the file was edited or not written by "
                             "osteoplan: re-run 'osteoplan plan'.") from None


def save_plan(plan: Plan, path: str | Path) -> Path:
    """Write *plan* as JSON to *path* atomically; returns the path."""
    from osteoplan.atomic import atomic_write_text

    p = Path(path)
    atomic_write_text(p, plan.to_json())
    return p


def load_plan(path: str | Path) -> Plan:
    """Read a plan written by :func:`save_plan`.

    Raises
    ------
    osteoplan.errors.InputError
        Missing file, invalid JSON or unsupported schema version.
    """
    from osteoplan.errors import InputError, safe_path

    p = Path(path)
    if not p.is_file():
        raise InputError(f"Plan file not found: {safe_path(p)}.")
    return Plan.from_json(p.read_text(encoding="utf-8"))


def plan_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of :class:`Plan`."""
    schema = Plan.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://osteoplan.example/schemas/plan-{SCHEMA_VERSION}.json"
    return schema


#: Path of the shipped JSON Schema file (regenerate with ``python -m osteoplan.planning.model``).
SCHEMA_PATH = Path(__file__).with_name("plan.schema.json")


if __name__ == "__main__":  # pragma: no cover
    SCHEMA_PATH.write_text(json.dumps(plan_json_schema(), indent=2) + "\n", encoding="utf-8")
    print(SCHEMA_PATH)
