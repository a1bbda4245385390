"""Everything the CT can tell about fracture risk, in one report: lesion metrics, CT-proposed SINS
components with their evidence, the clinician's inputs, and CT structural rigidity of the dens.

The planner calls :func:`assess` to put the risk into the plan; ``osteoplan risk`` prints it.

CT proposals (each overridable, each carrying its measurements as evidence):

* location: from the vertebral level (C2 -> junctional, 3 points; Fisher 2010);
* lesion type: the lesion's HU against the same vertebra's normal cancellous bone
  (:data:`LESION_TYPE_RULES`; thresholds are configurable defaults without a published source);
* collapse: C2 has no superior endplate, so the usual height-loss-against-neighbour measurement
  does not apply; the anteroinferior-body-to-dens-apex distance is compared with the population
  value 37.6 +/- 3.3 mm (Eur Spine J 2009;18:271) and the share of the anterior column (dens +
  body) occupied by the lesion gives the "no collapse with > 50 % involved" option;
* posterolateral involvement: lesion volume in the left / right posterolateral elements
  (pedicles, lateral masses, laminae) of C2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from osteoplan.errors import InputError
from osteoplan.risk.lesion_metrics import LesionMetrics, measure_lesion
from osteoplan.risk.rigidity import RigidityProfile, dens_rigidity
from osteoplan.risk.sins import (
    COMPONENTS, ComponentInput, SinsResult, compute_sins, ct_proposed, location_from_level, override, parse_option,
)

__all__ = ["RiskReport", "assess", "propose_sins_components", "LESION_TYPE_RULES", "COLLAPSE_RULES",
           "POSTEROLATERAL_RULES"]

#: Lesion type from HU (configurable defaults, no published source).
LESION_TYPE_RULES = {
    "margin_hu": 100.0,
    "mixed_min_fraction": 0.2,
    "rule": "mixed if >= 20 % of lesion voxels are > 100 HU below AND >= 20 % are > 100 HU above the vertebra's "
            "normal cancellous median; otherwise lytic if the lesion median is > 100 HU below it, blastic if "
            "> 100 HU above, mixed (isodense, low confidence) in between",
}
#: Collapse of C2 (population reference: Eur Spine J 2009;18:271; rule thresholds are defaults).
COLLAPSE_RULES = {
    "population_anteroinferior_to_apex_mm": 37.6,
    "population_sd_mm": 3.3,
    "involvement_threshold": 0.5,
    "rule": "> 50 % collapse if the anteroinferior-body-to-apex distance is < 50 % of 37.6 mm; < 50 % collapse if "
            "it is more than 2 SD below 37.6 mm (31.0 mm); otherwise no collapse, scored 1 when the lesion "
            "occupies > 50 % of the anterior column (dens + body)",
}
#: Posterolateral involvement (configurable defaults, no published source).
POSTEROLATERAL_RULES = {"min_ml": 0.02, "rule": "a side is involved when >= 0.02 mL of lesion lies in its "
                                                "posterolateral elements (pedicle, lateral mass, lamina)"}


def propose_sins_components(metrics: LesionMetrics, landmarks: Any, level: str = "C2") -> dict[str, ComponentInput]:
    """CT proposals for the SINS components the CT can inform, each with its evidence.

    Parameters
    ----------
    metrics : LesionMetrics
        From :func:`osteoplan.risk.lesion_metrics.measure_lesion` (status must be ``"present"``
        for the lesion components; otherwise only location is proposed).
    landmarks : DensLandmarks or None
    level : str
        Vertebral level of the lesion.

    Returns
    -------
    dict[str, ComponentInput]
        Keys among ``location``, ``lesion_type``, ``collapse``, ``posterolateral``.
    """
    out: dict[str, ComponentInput] = {
        "location": ct_proposed(location_from_level(level), {"level": level.upper()},
                                "from the vertebral level of the lesion (Fisher 2010)"),
    }
    if metrics.status != "present":
        return out
    # ---- lesion type
    hu = metrics.lesion_hu
    normal = metrics.normal_cancellous_hu
    m = LESION_TYPE_RULES["margin_hu"]
    if normal is not None:
        f_lo, f_hi = hu.get("fraction_below_normal", 0.0), hu.get("fraction_above_normal", 0.0)
        note = ""
        if f_lo >= LESION_TYPE_RULES["mixed_min_fraction"] and f_hi >= LESION_TYPE_RULES["mixed_min_fraction"]:
            lt = "mixed"
        elif hu["median"] < normal - m:
            lt = "lytic"
        elif hu["median"] > normal + m:
            lt = "blastic"
        else:
            lt, note = "mixed", "lesion nearly isodense to normal bone: low-confidence proposal, please confirm"
        out["lesion_type"] = ct_proposed(lt, {
            "lesion_median_hu": round(hu["median"], 1), "lesion_p10_hu": round(hu["p10"], 1),
            "lesion_p90_hu": round(hu["p90"], 1), "normal_cancellous_median_hu": round(normal, 1),
            "fraction_below_normal": round(f_lo, 3), "fraction_above_normal": round(f_hi, 3),
            "margin_hu": m, "rule": LESION_TYPE_RULES["rule"]}, note)
    # ---- collapse
    if landmarks is not None:
        h = float(landmarks.anteroinferior_to_apex_mm)
        ref, sd = COLLAPSE_RULES["population_anteroinferior_to_apex_mm"], COLLAPSE_RULES["population_sd_mm"]
        inv = metrics.fraction_of_anterior_column
        if h < 0.5 * ref:
            col = "over-50"
        elif h < ref - 2 * sd:
            col = "under-50"
        elif inv > COLLAPSE_RULES["involvement_threshold"]:
            col = "none-over-50-involved"
        else:
            col = "none"
        out["collapse"] = ct_proposed(col, {
            "anteroinferior_to_apex_mm": round(h, 2), "population_mean_mm": ref, "population_sd_mm": sd,
            "height_ratio_to_population": round(h / ref, 3),
            "fraction_of_anterior_column_involved": round(inv, 3),
            "landmark_method": getattr(landmarks, "method", "unknown"), "rule": COLLAPSE_RULES["rule"]},
            "C2 has no superior endplate: collapse is judged against a population height, not a neighbour; "
            "confirm on a sagittal reformat")
    # ---- posterolateral
    left, right = metrics.posterolateral_ml.get("left", 0.0), metrics.posterolateral_ml.get("right", 0.0)
    thr = POSTEROLATERAL_RULES["min_ml"]
    n = int(left >= thr) + int(right >= thr)
    out["posterolateral"] = ct_proposed(("none", "unilateral", "bilateral")[n], {
        "left_ml": round(left, 4), "right_ml": round(right, 4), "min_ml": thr, "rule": POSTEROLATERAL_RULES["rule"],
        "sides_involved": [s for s, v in (("left", left), ("right", right)) if v >= thr]})
    return out


@dataclass(frozen=True)
class RiskReport:
    """Fracture-risk assessment of one CT.

    Attributes
    ----------
    level : str
        Vertebral level assessed (``"C2"``).
    lesion : LesionMetrics or None
        None when C2 or its landmarks were not available.
    sins : SinsResult or None
        None when SINS does not apply (no lesion found).
    sins_status : str
        ``"scored"``, ``"incomplete"`` (components missing: see ``sins.missing``), ``"not applicable"``.
    proposals : dict[str, ComponentInput]
        The CT proposals (kept even when overridden).
    rigidity : RigidityProfile or None
    not_assessed : list[str]
        What could not be assessed and why.
    """

    level: str
    lesion: LesionMetrics | None
    sins: SinsResult | None
    sins_status: str
    proposals: dict[str, ComponentInput]
    rigidity: RigidityProfile | None
    not_assessed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        """Short human-readable lines."""
        out = [f"Level: {self.level}"]
        if self.lesion is None:
            out.append("Lesion: not assessed")
        elif self.lesion.status == "present":
            lm = self.lesion
            out.append(f"Lesion: {lm.volume_ml:.2f} mL, {100 * lm.fraction_of_dens:.0f} % of the dens, "
                       f"{100 * lm.fraction_of_body:.0f} % of the body; median {lm.lesion_hu['median']:.0f} HU")
            if lm.breach is not None:
                out.append(f"Cortical breach: {lm.breach.breach_mm2:.0f} mm^2 ({lm.breach.breach_pct:.1f} % of the "
                           f"surface){': ' + ', '.join(lm.breach.walls) if lm.breach.walls else ''}")
        else:
            out.append("Lesion: none found" if self.lesion.status == "none" else "Lesion: not assessed")
        if self.sins is None:
            out.append(f"SINS: {self.sins_status}")
        else:
            out.append(self.sins.summary())
            for name, c in self.sins.components.items():
                if c.value is None:
                    out.append(f"  {name}: MISSING (0-{c.points_range[1]} points)")
                else:
                    ev = ", ".join(f"{k}={v}" for k, v in c.evidence.items() if k != "rule")
                    out.append(f"  {name}: {c.value} = {c.points} [{c.source}]" + (f" ({ev})" if ev else ""))
        out.append(self.rigidity.summary() if self.rigidity is not None else "CT rigidity: not assessed")
        out += [f"Not assessed: {x}" for x in self.not_assessed]
        return out

    def to_dict(self, sections: bool = True) -> dict[str, Any]:
        """Plain-JSON form (``sections=False`` leaves out the per-section rigidity table)."""
        return {
            "level": self.level,
            "lesion": None if self.lesion is None else self.lesion.to_dict(),
            "sins_status": self.sins_status,
            "sins": None if self.sins is None else self.sins.to_dict(),
            "ct_proposals": {k: {"value": parse_option(k, p.value).value, "evidence": dict(p.evidence),
                                 "note": p.note} for k, p in self.proposals.items()},
            "rigidity": None if self.rigidity is None else self.rigidity.to_dict(sections=sections),
            "not_assessed": list(self.not_assessed),
            "notes": list(self.notes),
            "summary": self.summary_lines(),
        }


def _get(obj: Any, *names: str) -> Any:
    for n in names:
        if obj is not None and hasattr(obj, n):
            return getattr(obj, n)
    return None


def assess(volume: Any, anatomy: Any, pain: Any = None, alignment: Any = None, *,
           overrides: Mapping[str, Any] | None = None, level: str = "C2", rigidity: bool = True,
           landmarks: Any = None, **rigidity_kwargs: Any) -> RiskReport:
    """Assess fracture risk of C2 from CT.

    Parameters
    ----------
    volume : Volume
        The CT (HU).
    anatomy : Anatomy or LabelMap
        ``osteoplan.anatomy.pipeline.Anatomy`` (``labelmap``, ``landmarks``, ``lesion``) or a
        bare :class:`~osteoplan.anatomy.LabelMap` (then pass ``landmarks``). Uses the
        ``vertebrae_C2``, ``lesion`` and, when present, ``spinal_canal`` masks.
    pain : str or None
        SINS pain (``"mechanical"``, ``"occasional"``, ``"none"``); None = missing (the SINS
        result then gives the range of possible totals).
    alignment : str or None
        SINS alignment (``"subluxation"``, ``"deformity"``, ``"normal"``); None = missing.
    overrides : mapping or None
        Component -> value replacing the CT proposal (recorded as ``"override"``, proposal kept).
    level : str
        Vertebral level (default C2).
    rigidity : bool
        Run the CT rigidity analysis (default True).
    landmarks : DensLandmarks or None
        Overrides ``anatomy.landmarks``.
    **rigidity_kwargs
        Passed to :func:`osteoplan.risk.rigidity.dens_rigidity` (pixel_mm, step_mm, nu...).

    Returns
    -------
    RiskReport

    Raises
    ------
    InputError
        Invalid pain/alignment/override values.
    """
    labelmap = _get(anatomy, "labelmap") or anatomy
    lm = landmarks if landmarks is not None else _get(anatomy, "landmarks")
    lesion_result = _get(anatomy, "lesion")
    not_assessed: list[str] = []
    notes: list[str] = []
    for comp in (overrides or {}):
        if comp not in COMPONENTS:
            raise InputError(f"Cannot override unknown SINS component '{comp}'; use one of {', '.join(COMPONENTS)}.")
    # pain and alignment are clinician inputs (never CT proposals): an "override" of them is the input itself
    overrides = dict(overrides or {})
    clinical = {"pain": pain, "alignment": alignment}
    for comp in ("pain", "alignment"):
        if comp in overrides:
            given = overrides.pop(comp)
            if clinical[comp] is not None and str(clinical[comp]).strip().lower() != str(given).strip().lower():
                raise InputError(f"SINS {comp} is given twice with different values ('{clinical[comp]}' and override "
                                 f"'{given}'); give it once.")
            clinical[comp] = given
    pain, alignment = clinical["pain"], clinical["alignment"]

    has = getattr(labelmap, "has", lambda n: False)
    c2 = labelmap.get("vertebrae_C2") if has("vertebrae_C2") else None
    if c2 is not None and not c2.any():
        c2 = None
    lesion_mask = None
    if lesion_result is not None and getattr(lesion_result, "mask", None) is not None:
        lesion_mask = lesion_result.mask
    elif has("lesion"):
        lesion_mask = labelmap.get("lesion")
    canal = labelmap.get("spinal_canal") if has("spinal_canal") else None

    location_from_level(level)  # InputError for a level SINS does not cover
    other_level = level.strip().upper() != "C2"
    if other_level:  # the CT measurements are made on C2: they say nothing about another vertebra
        c2 = None
        not_assessed.append(f"CT measurements are made on C2 only and the lesion level given is {level.strip().upper()}: "
                            "lesion metrics, CT-proposed lesion type / collapse / posterolateral involvement and "
                            "rigidity (give those SINS components with overrides)")
    metrics: LesionMetrics | None = None
    if c2 is None:
        if not other_level:
            not_assessed.append("C2 was not segmented: lesion metrics, CT-proposed SINS components and rigidity")
    elif lm is None:
        not_assessed.append("dens landmarks not found: lesion metrics and rigidity")
    else:
        metrics = measure_lesion(volume, c2, lesion_mask, lm, lesion_result, canal)
        if metrics.status == "not assessed":
            not_assessed.append("lesion (no lesion mask): SINS lesion components are missing")
        if metrics.breach is not None and metrics.breach.canal_facing_mm2 is None:
            not_assessed.append("canal-facing cortical breach (spinal canal not segmented)")

    if metrics is not None:
        proposals = propose_sins_components(metrics, lm, level)
    else:
        proposals = {"location": ct_proposed(location_from_level(level), {"level": level.upper()})}

    sins: SinsResult | None
    if metrics is not None and metrics.status == "none":
        sins, status = None, "not applicable (no lesion found on CT)"
    else:
        chosen: dict[str, Any] = dict(proposals)
        for comp, val in (overrides or {}).items():
            chosen[comp] = override(val, proposals.get(comp), "clinician override")
        sins = compute_sins(location=chosen.get("location"), pain=pain, lesion_type=chosen.get("lesion_type"),
                            alignment=alignment, collapse=chosen.get("collapse"),
                            posterolateral=chosen.get("posterolateral"))
        status = "scored" if sins.complete else "incomplete"

    prof: RigidityProfile | None = None
    if rigidity and c2 is not None and lm is not None:
        prof = dens_rigidity(volume, c2, lm, lesion_mask, **rigidity_kwargs)
        if prof.lesion_status == "not assessed":
            notes.append("Rigidity reference = the bone as imaged (no lesion mask): the loss cannot show a lesion.")
    elif rigidity:
        not_assessed.append("CT rigidity (needs C2 and the dens landmarks)")
    return RiskReport(level.upper(), metrics, sins, status, proposals, prof, not_assessed, notes)
