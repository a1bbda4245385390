"""CT-based structural rigidity analysis (CTRA) of C2 along the dens axis.

For each cross-section perpendicular to an axis, the CT is resampled on a fine in-plane grid
(trilinear, as :meth:`Volume.sample`), each pixel's HU is converted to ash density and elastic
modulus, and the section's rigidities are integrated:

* axial rigidity ``EA = sum(E dA)`` (N),
* bending rigidity about the modulus-weighted centroid: ``EI_uu = sum(E (v - v_c)^2 dA)``,
  ``EI_vv``, ``EI_uv``; the principal values ``EI_min``/``EI_max`` and the principal angle
  (N mm^2),
* torsional rigidity ``GJ = sum(G r^2 dA)`` with ``G = E / (2 (1 + nu))`` and ``r`` the distance
  to the modulus-weighted centroid (N mm^2).

Relations (defaults, :data:`DRAGOMIR_DAESCU_2011`): ``rho_ash = -0.009 + 0.0007 HU`` (g/cm^3)
and ``E = 14664 rho_ash^1.49`` (MPa), from Dragomir-Daescu D et al., Ann Biomed Eng 2011;39:742,
as tabulated in Knowles NK et al. (PMC5234499); ``E = 0`` where ``rho_ash <= 0``.
Poisson's ratio ``nu = 0.3`` (the value usually assigned to bone in QCT finite-element and CTRA
work; a configurable default, not a measured value). The torsional constant is approximated by
the polar moment of inertia of the modulus-weighted section, exact for circular and annular
sections and an over-estimate for non-circular ones (Saint-Venant).

No calibration phantom is used: HU are taken as given by the scanner, so absolute rigidities
carry the scanner's HU error; the percentage loss against a reference from the *same* scan is
much less sensitive to it.

Reference (C2 has no contralateral twin): by default each section is compared with the *same
section of the same patient with the lesion virtually filled with the patient's own normal bone*
(lesion voxels near the bone surface get the median HU of this vertebra's normal cortex, deeper
ones the median HU of its normal cancellous bone). The loss then measures what the segmented
lesion removes. Lesions that are not in the lesion mask are not seen by this reference.
Threshold: a loss >= 35 % of axial, bending or torsional rigidity predicts fracture
(Snyder BD et al., J Bone Joint Surg Am 2006;88:55; Nazarian A et al., Clin Cancer Res 2015).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from osteoplan.anatomy.c2parts import section_basis
from osteoplan.errors import InputError, MaskError
from osteoplan.imaging.volume import AIR_HU, Volume
from osteoplan.anatomy import _local

__all__ = [
    "DensityModulusRelation", "DRAGOMIR_DAESCU_2011", "POISSON_RATIO", "LOSS_THRESHOLD",
    "SectionRigidity", "SectionResult", "RigidityProfile",
    "section_rigidity", "rigidity_profile", "dens_rigidity", "normal_bone_hu", "section_basis",
]

#: Poisson's ratio of bone (configurable default; the customary QCT/CTRA value, not measured).
POISSON_RATIO = 0.3
#: Loss of rigidity that predicts fracture (Snyder et al., JBJS Am 2006;88:55).
LOSS_THRESHOLD = 0.35


@dataclass(frozen=True)
class DensityModulusRelation:
    """HU -> ash density -> elastic modulus.

    ``rho_ash = rho_intercept + rho_slope * HU`` (g/cm^3);
    ``E = e_coef * rho_ash ** e_exp`` (MPa), 0 where ``rho_ash <= 0``.
    """

    name: str
    rho_intercept: float
    rho_slope: float
    e_coef: float
    e_exp: float
    source: str

    def ash_density(self, hu: np.ndarray) -> np.ndarray:
        """Ash density (g/cm^3) from HU, same shape."""
        return self.rho_intercept + self.rho_slope * np.asarray(hu, dtype=np.float64)

    def modulus_mpa(self, hu: np.ndarray) -> np.ndarray:
        """Elastic modulus (MPa) from HU, same shape; 0 where the ash density is <= 0."""
        rho = np.clip(self.ash_density(hu), 0.0, None)
        return self.e_coef * rho ** self.e_exp

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"name": self.name, "ash_density_g_cm3": f"{self.rho_intercept} + {self.rho_slope} * HU",
                "modulus_mpa": f"{self.e_coef} * rho_ash^{self.e_exp}", "source": self.source}


#: Default relation (Dragomir-Daescu et al., Ann Biomed Eng 2011, tabulated in PMC5234499).
DRAGOMIR_DAESCU_2011 = DensityModulusRelation(
    name="Dragomir-Daescu 2011", rho_intercept=-0.009, rho_slope=0.0007, e_coef=14664.0, e_exp=1.49,
    source="Dragomir-Daescu D et al., Ann Biomed Eng 2011;39(2):742-755, as tabulated in PMC5234499",
)


# --------------------------------------------------------------------------- one section
@dataclass(frozen=True)
class SectionRigidity:
    """Rigidities of one cross-section.

    Attributes
    ----------
    ea_n : float
        Axial rigidity EA (N).
    ei_uu_nmm2, ei_vv_nmm2, ei_uv_nmm2 : float
        Bending rigidity about the in-plane u and v axes through the modulus-weighted centroid,
        and the product term (N mm^2). ``EI_uu = sum E (v - v_c)^2 dA`` (bending about u).
    ei_min_nmm2, ei_max_nmm2 : float
        Principal bending rigidities (N mm^2).
    principal_angle_deg : float
        Angle from +u to the principal axis of ``EI_max`` (degrees, -90..90).
    gj_nmm2 : float
        Torsional rigidity (N mm^2), polar-moment approximation.
    centroid_uv_mm : tuple[float, float]
        Modulus-weighted centroid in the section's (u, v) coordinates (mm).
    area_mm2 : float
        Area with E > 0 (mm^2), weighted by the partial-volume weights when given.
    """

    ea_n: float
    ei_uu_nmm2: float
    ei_vv_nmm2: float
    ei_uv_nmm2: float
    ei_min_nmm2: float
    ei_max_nmm2: float
    principal_angle_deg: float
    gj_nmm2: float
    centroid_uv_mm: tuple[float, float]
    area_mm2: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (rounded to 4 significant digits)."""
        def r(x: float) -> float:
            return float(f"{x:.4g}")
        return {"ea_n": r(self.ea_n), "ei_min_nmm2": r(self.ei_min_nmm2), "ei_max_nmm2": r(self.ei_max_nmm2),
                "ei_uu_nmm2": r(self.ei_uu_nmm2), "ei_vv_nmm2": r(self.ei_vv_nmm2),
                "principal_angle_deg": round(self.principal_angle_deg, 2), "gj_nmm2": r(self.gj_nmm2),
                "centroid_uv_mm": ([round(c, 3) for c in self.centroid_uv_mm]
                                   if all(np.isfinite(self.centroid_uv_mm)) else None),
                "area_mm2": round(self.area_mm2, 3)}


def section_rigidity(modulus_mpa: np.ndarray, pixel_mm: float, nu: float = POISSON_RATIO,
                     origin_uv_mm: tuple[float, float] = (0.0, 0.0)) -> SectionRigidity:
    """Integrate the rigidities of a section sampled on a square pixel grid.

    Parameters
    ----------
    modulus_mpa : numpy.ndarray, shape (Nv, Nu)
        Elastic modulus of each pixel (MPa), rows along v, columns along u. For partial-volume
        pixels pass ``E * fraction_inside``.
    pixel_mm : float
        Pixel side (mm).
    nu : float
        Poisson's ratio (default 0.3, :data:`POISSON_RATIO`).
    origin_uv_mm : (float, float)
        (u, v) of pixel (0, 0)'s centre (mm).

    Returns
    -------
    SectionRigidity
        Each pixel is integrated as a uniform square (its own ``h^4/12`` second moment included),
        so a section of uniform modulus gives ``EA = E A``, ``EI = E I`` and (circular/annular)
        ``GJ = G J`` up to the pixelisation of its outline.

    Raises
    ------
    InputError
        Not a 2D array, negative modulus, or non-positive pixel size / invalid nu.
    """
    e = np.asarray(modulus_mpa, dtype=np.float64)
    if e.ndim != 2:
        raise InputError(f"A section's modulus map must be 2D (v, u); got shape {e.shape}.")
    if not pixel_mm > 0:
        raise InputError(f"The section pixel size must be > 0 mm; got {pixel_mm}.")
    if not -1.0 < nu < 0.5:
        raise InputError(f"Poisson's ratio must lie in (-1, 0.5); got {nu}.")
    if np.any(e < 0) or not np.all(np.isfinite(e)):
        raise InputError("The section modulus map has negative or non-finite values.")
    h = float(pixel_mm)
    da = h * h
    nv, nu_ = e.shape
    u = origin_uv_mm[0] + h * np.arange(nu_)
    v = origin_uv_mm[1] + h * np.arange(nv)
    ea = float(e.sum() * da)
    if ea <= 0:
        return SectionRigidity(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, (float("nan"), float("nan")), 0.0)
    ecol = e.sum(axis=0)  # along u
    erow = e.sum(axis=1)  # along v
    uc = float((ecol * u).sum() * da / ea)
    vc = float((erow * v).sum() * da / ea)
    du = u - uc
    dv = v - vc
    own = e.sum() * da * h * h / 12.0  # each pixel's own second moment about its centre
    ei_uu = float((erow * dv ** 2).sum() * da + own)  # about the u axis: distances along v
    ei_vv = float((ecol * du ** 2).sum() * da + own)
    ei_uv = float((e * dv[:, None] * du[None, :]).sum() * da)
    # bending about the in-plane direction n = (cos t, sin t): EI(t) = n^T M n
    m = np.array([[ei_uu, -ei_uv], [-ei_uv, ei_vv]])
    w, vec = np.linalg.eigh(m)
    ei_min, ei_max = float(w[0]), float(w[1])
    angle = float(np.degrees(np.arctan2(vec[1, 1], vec[0, 1])))
    angle = (angle + 90.0) % 180.0 - 90.0
    gj = (ei_uu + ei_vv) / (2.0 * (1.0 + nu))
    area = float((e > 0).sum() * da)
    return SectionRigidity(ea, ei_uu, ei_vv, ei_uv, ei_min, ei_max, angle, gj, (uc, vc), area)


# --------------------------------------------------------------------------- profile along an axis
@dataclass(frozen=True)
class SectionResult:
    """One station along the axis: actual and reference rigidities and their losses (0-1)."""

    s_mm: float
    centre_lps_mm: tuple[float, float, float]
    region: str
    actual: SectionRigidity
    reference: SectionRigidity
    lesion_area_mm2: float

    @staticmethod
    def _loss(a: float, r: float) -> float:
        return float(max(0.0, 1.0 - a / r)) if r > 0 else 0.0

    @property
    def loss_ea(self) -> float:
        """Fractional loss of axial rigidity vs the reference."""
        return self._loss(self.actual.ea_n, self.reference.ea_n)

    @property
    def loss_ei_min(self) -> float:
        """Fractional loss of minimum bending rigidity vs the reference."""
        return self._loss(self.actual.ei_min_nmm2, self.reference.ei_min_nmm2)

    @property
    def loss_gj(self) -> float:
        """Fractional loss of torsional rigidity vs the reference."""
        return self._loss(self.actual.gj_nmm2, self.reference.gj_nmm2)

    @property
    def loss_max(self) -> float:
        """Largest of the three losses."""
        return max(self.loss_ea, self.loss_ei_min, self.loss_gj)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"s_mm": round(self.s_mm, 2), "centre_lps_mm": [round(c, 2) for c in self.centre_lps_mm],
                "region": self.region, "actual": self.actual.to_dict(), "reference": self.reference.to_dict(),
                "lesion_area_mm2": round(self.lesion_area_mm2, 2),
                "loss_pct": {"ea": round(100 * self.loss_ea, 2), "ei_min": round(100 * self.loss_ei_min, 2),
                             "gj": round(100 * self.loss_gj, 2)}}


@dataclass(frozen=True)
class RigidityProfile:
    """CT structural rigidity along an axis, compared with a stated reference.

    Attributes
    ----------
    sections : list[SectionResult]
        Stations in increasing ``s`` (mm along the axis from its origin).
    reference : str
        What the losses are measured against.
    lesion_status : str
        ``"present"``, ``"none"`` (segmented and empty), ``"not assessed"`` (no lesion mask) or
        ``"outside column"`` (a lesion exists but not in the integrated sections).
    normal_cancellous_hu, normal_cortical_hu : float or None
        The patient's normal bone HU used to fill the lesion in the reference.
    assumptions : list[str]
        Everything the numbers rest on.
    """

    sections: list[SectionResult]
    reference: str
    lesion_status: str
    relation: DensityModulusRelation
    nu: float
    pixel_mm: float
    step_mm: float
    normal_cancellous_hu: float | None
    normal_cortical_hu: float | None
    assumptions: list[str] = field(default_factory=list)
    threshold: float = LOSS_THRESHOLD

    @property
    def max_loss(self) -> float:
        """Largest loss (0-1) of EA, EI_min or GJ over all sections."""
        return max((s.loss_max for s in self.sections), default=0.0)

    @property
    def weakest(self) -> SectionResult | None:
        """The weakest section relative to its reference: the largest loss (lowest of ties).

        With no lesion (every loss 0) this is the lowest station; see :attr:`lowest_ei` for the
        absolute minimum, which in a healthy dens is always next to the apex.
        """
        if not self.sections:
            return None
        return max(self.sections, key=lambda s: (round(s.loss_max, 9), -s.s_mm))

    @property
    def lowest_ei(self) -> SectionResult | None:
        """The section with the lowest absolute minimum bending rigidity (EI_min) among sections with bone."""
        secs = [s for s in self.sections if s.actual.ea_n > 0]
        return min(secs, key=lambda s: s.actual.ei_min_nmm2) if secs else None

    @property
    def flagged(self) -> bool:
        """True when any loss reaches the threshold (35 %, Snyder 2006)."""
        return self.max_loss >= self.threshold

    def summary(self) -> str:
        """One line for a report."""
        if self.lesion_status != "present":
            what = {"none": "no lesion", "outside column": "lesion outside the dens/body column"}.get(
                self.lesion_status, "lesion not assessed")
            return f"CT rigidity: {what}; loss vs reference {100 * self.max_loss:.1f} %"
        m = self.weakest
        assert m is not None
        return (f"CT rigidity: max loss {100 * self.max_loss:.1f} % at s = {m.s_mm:+.1f} mm ({m.region}); "
                + ("FLAG: >= 35 % predicts fracture (Snyder 2006)" if self.flagged else "below the 35 % threshold"))

    def to_dict(self, sections: bool = True) -> dict[str, Any]:
        """Plain-JSON form."""
        m, w = self.weakest, self.lowest_ei
        d: dict[str, Any] = {
            "method": "CT-based structural rigidity analysis (CTRA) along the dens axis",
            "lesion_status": self.lesion_status,
            "reference": self.reference,
            "relation": self.relation.to_dict(),
            "poisson_ratio": self.nu,
            "pixel_mm": self.pixel_mm,
            "step_mm": self.step_mm,
            "normal_cancellous_hu": None if self.normal_cancellous_hu is None else round(self.normal_cancellous_hu, 1),
            "normal_cortical_hu": None if self.normal_cortical_hu is None else round(self.normal_cortical_hu, 1),
            "threshold_pct": 100 * self.threshold,
            "threshold_source": "Snyder BD et al., J Bone Joint Surg Am 2006;88:55",
            "max_loss_pct": round(100 * self.max_loss, 2),
            "flagged": self.flagged,
            "weakest_section": None if m is None else m.to_dict(),
            "weakest_section_definition": "largest loss of EA, EI_min or GJ against the reference",
            "lowest_absolute_ei_section": None if w is None else w.to_dict(),
            "assumptions": list(self.assumptions),
            "summary": self.summary(),
        }
        if sections:
            d["sections"] = [s.to_dict() for s in self.sections]
        return d


def _bounds_kji(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Lowest and highest (k, j, i) index of the True voxels of a 3D mask (each shape (3,)); None if empty.

    Same result as ``np.argwhere(mask).min(0)`` / ``.max(0)`` without listing every voxel
    (:func:`osteoplan.anatomy._local.bbox`).
    """
    from osteoplan.anatomy._local import bbox

    box = bbox(mask)
    if box is None:
        return None
    return np.array([s.start for s in box]), np.array([s.stop - 1 for s in box])


def _crop(volume: Volume, masks: Sequence[np.ndarray], margin: int = 3) -> tuple[Volume, list[np.ndarray]]:
    """Crop the volume and masks to the masks' bounding box (+ margin voxels), keeping the geometry."""
    union = np.zeros(volume.shape, bool)
    for m in masks:
        union |= m
    bounds = _bounds_kji(union)
    if bounds is None:
        return volume, list(masks)
    lo = np.maximum(bounds[0] - margin, 0)
    hi = np.minimum(bounds[1] + margin + 1, volume.shape)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    aff = volume.affine.copy()
    aff[:3, 3] = volume.index_to_world(lo.astype(float))
    return Volume(volume.array[sl], aff), [m[sl] for m in masks]


def normal_bone_hu(volume: Volume, bone_mask: np.ndarray, lesion_mask: np.ndarray | None = None,
                   cortex_mm: float = 1.0, lesion_margin_mm: float = 2.0) -> tuple[float | None, float | None, dict]:
    """Median HU of the vertebra's normal cancellous and cortical bone, away from the lesion.

    Cortical = bone voxels within ``cortex_mm`` of the bone surface; cancellous = bone voxels deeper
    than ``2 * cortex_mm``; both exclude voxels within ``lesion_margin_mm`` of the lesion.
    (1 mm / 2 mm are configurable defaults without a published source.)

    Returns
    -------
    (cancellous_hu, cortical_hu, evidence) : (float | None, float | None, dict)
        None when fewer than 20 voxels qualify.
    """
    from scipy.ndimage import distance_transform_edt

    if lesion_mask is not None:
        volume, (bone_mask, lesion_mask) = _crop(volume, [bone_mask, lesion_mask],
                                                 margin=int(np.ceil(lesion_margin_mm / volume.spacing_mm.min())) + 2)
    else:
        volume, (bone_mask,) = _crop(volume, [bone_mask], margin=2)
    sp = volume.spacing_mm
    solid = _local.fill_holes(bone_mask | (lesion_mask if lesion_mask is not None else False))
    depth = distance_transform_edt(solid, sampling=sp)
    ok = bone_mask.copy()
    if lesion_mask is not None and lesion_mask.any():
        ok &= distance_transform_edt(~lesion_mask, sampling=sp) > lesion_margin_mm
    canc = ok & (depth > 2.0 * cortex_mm)
    cort = ok & (depth <= cortex_mm)
    ev: dict[str, Any] = {"cancellous_voxels": int(canc.sum()), "cortical_voxels": int(cort.sum()),
                          "cortex_mm": cortex_mm, "lesion_margin_mm": lesion_margin_mm}
    c_hu = float(np.median(volume.array[canc])) if canc.sum() >= 20 else None
    k_hu = float(np.median(volume.array[cort])) if cort.sum() >= 20 else None
    return c_hu, k_hu, ev


def rigidity_profile(volume: Volume, bone_mask: np.ndarray, origin_lps_mm: np.ndarray, axis_unit: np.ndarray,
                     s_range_mm: tuple[float, float], lesion_mask: np.ndarray | None = None, *,
                     step_mm: float = 1.0, pixel_mm: float = 0.4, nu: float = POISSON_RATIO,
                     relation: DensityModulusRelation = DRAGOMIR_DAESCU_2011, cortex_mm: float = 1.0,
                     region_split_mm: float | None = 0.0, half_width_mm: float | None = None) -> RigidityProfile:
    """Rigidity of the sections of a bone perpendicular to an axis, vs a lesion-filled reference.

    Parameters
    ----------
    volume : Volume
        CT in HU.
    bone_mask : numpy.ndarray of bool, shape (K, J, I)
        The bone whose sections are integrated (C2); pixels outside ``bone_mask | lesion_mask``
        count as E = 0.
    origin_lps_mm : (3,) array
        Point of the axis where ``s = 0`` (LPS mm), e.g. the dens waist.
    axis_unit : (3,) array
        Axis direction (LPS), e.g. base -> apex of the dens.
    s_range_mm : (float, float)
        First and last station along the axis (mm); stations every ``step_mm``.
    lesion_mask : numpy.ndarray of bool or None
        The lesion; None = not assessed (reference = the bone as imaged).
    step_mm, pixel_mm : float
        Station spacing and in-plane pixel size (mm).
    nu : float
        Poisson's ratio for G = E / (2 (1 + nu)).
    relation : DensityModulusRelation
        HU -> ash density -> modulus.
    cortex_mm : float
        Thickness of the shell of the lesion fill that gets the cortical HU (configurable default).
    region_split_mm : float or None
        Stations with ``s >= region_split_mm`` are labelled ``"dens"``, others ``"body"``.
    half_width_mm : float or None
        Half-width of the square section grid; default: the bone's extent around the axis + 1 mm.

    Returns
    -------
    RigidityProfile

    Raises
    ------
    MaskError
        Empty bone mask or masks not on the CT grid.
    InputError
        Invalid step, pixel size or range.
    """
    from scipy.ndimage import binary_closing, distance_transform_edt, map_coordinates

    bone = np.asarray(bone_mask, dtype=bool)
    if bone.shape != volume.shape:
        raise MaskError(f"The bone mask {bone.shape} is not on the CT grid {volume.shape}.")
    if not bone.any():
        raise MaskError("The bone mask is empty; segment C2 before the rigidity analysis.")
    if lesion_mask is not None:
        lesion = np.asarray(lesion_mask, dtype=bool)
        if lesion.shape != volume.shape:
            raise MaskError(f"The lesion mask {lesion.shape} is not on the CT grid {volume.shape}.")
        status = "present" if lesion.any() else "none"
    else:
        lesion = np.zeros(volume.shape, bool)
        status = "not assessed"
    if not (step_mm > 0 and pixel_mm > 0) or s_range_mm[1] < s_range_mm[0]:
        raise InputError("Rigidity stations need step_mm > 0, pixel_mm > 0 and s_range_mm = (low, high).")
    u_ax, v_ax, a_ax = section_basis(axis_unit)
    origin = np.asarray(origin_lps_mm, dtype=np.float64).reshape(3)

    sub, (bone_c, lesion_c) = _crop(volume, [bone, lesion])
    canc_hu, cort_hu, _ev = normal_bone_hu(sub, bone_c, lesion_c if status == "present" else None, cortex_mm)
    domain = bone_c | lesion_c
    fill_hu = np.array(sub.array, dtype=np.float32)
    assumptions = [
        "No calibration phantom: HU are used as given by the scanner (absolute rigidities carry the scanner's HU "
        "error; losses against a reference from the same scan are less sensitive to it).",
        f"Density/modulus: {relation.name}: rho_ash = {relation.rho_intercept} + {relation.rho_slope}*HU g/cm^3, "
        f"E = {relation.e_coef}*rho_ash^{relation.e_exp} MPa, E = 0 where rho_ash <= 0 ({relation.source}).",
        f"Isotropic bone, G = E/(2(1+nu)) with nu = {nu} (configurable default).",
        "Torsional constant approximated by the polar moment of the modulus-weighted section about its centroid "
        "(exact for circular/annular sections, over-estimates non-circular ones).",
        f"Sections perpendicular to the axis every {step_mm} mm, sampled trilinearly on {pixel_mm} mm pixels; "
        "pixels outside the bone (and lesion) masks count as E = 0.",
        f"Fracture threshold: loss >= {100 * LOSS_THRESHOLD:.0f} % of EA, EI or GJ (Snyder et al., JBJS Am 2006;88:55).",
    ]
    if status == "present":
        if canc_hu is None:
            canc_hu = float(np.median(sub.array[bone_c & ~lesion_c])) if (bone_c & ~lesion_c).any() else 0.0
            assumptions.append("Too little deep normal bone to measure cancellous HU; the median of all "
                               "non-lesion bone was used.")
        if cort_hu is None or cort_hu < canc_hu:
            assumptions.append("The cortex is not resolved at this voxel size (its median HU is below the "
                               "cancellous median, partial volume): the whole lesion is filled with cancellous HU.")
            cort_hu = canc_hu
        envelope = _local.fill_holes(binary_closing(bone_c, iterations=2) | bone_c)
        fill = lesion_c & envelope
        depth = distance_transform_edt(envelope, sampling=sub.spacing_mm)
        fill_hu[fill] = np.where(depth[fill] <= cortex_mm, cort_hu, canc_hu)
        extra = int((lesion_c & ~envelope).sum())
        reference = ("same patient, same sections, lesion virtually filled with this vertebra's own normal bone "
                     f"(cortical {cort_hu:.0f} HU within {cortex_mm} mm of the bone surface, cancellous "
                     f"{canc_hu:.0f} HU deeper); C2 has no contralateral twin and no population values of dens "
                     "rigidity were found, so this virtual healthy C2 is the reference")
        if extra:
            assumptions.append(f"{extra} lesion voxels outside the bone envelope (extra-osseous extension) were "
                               "not filled in the reference.")
    else:
        reference = ("same patient, same sections (no lesion segmented: the reference equals the bone as "
                     "imaged, so the loss is 0 by construction)" if status == "none" else
                     "same patient, same sections; the lesion was NOT assessed, so the loss cannot show it")
    assumptions.append("Reference: " + reference + ".")

    # in-plane grid
    if half_width_mm is None:
        pts = sub.index_to_world(np.argwhere(domain).astype(float))
        rel = pts - origin
        s_all = rel @ a_ax
        near = (s_all >= s_range_mm[0] - 2) & (s_all <= s_range_mm[1] + 2)
        rel = rel[near] if near.any() else rel
        half_width_mm = float(max(np.abs(rel @ u_ax).max(), np.abs(rel @ v_ax).max())) + 1.0
    n = int(np.ceil(half_width_mm / pixel_mm))
    grid = pixel_mm * np.arange(-n, n + 1)
    gu, gv = np.meshgrid(grid, grid)  # (Nv, Nu): rows along v, columns along u
    plane = gu[..., None] * u_ax + gv[..., None] * v_ax  # (Nv, Nu, 3) LPS offsets from the section centre
    # The index <-> LPS map is affine, so the grid is mapped to (k, j, i) once and shifted per station
    # (the same trilinear sampling as Volume.sample, without re-mapping every point at every station).
    inv = np.linalg.inv(sub.affine)
    plane_idx = np.einsum("ab,nb->an", inv[:3, :3], plane.reshape(-1, 3))  # (3, N)

    def sample(arr: np.ndarray, idx: np.ndarray, cval: float) -> np.ndarray:
        return map_coordinates(arr, idx, order=1, mode="constant", cval=cval, prefilter=False)

    stations = np.arange(s_range_mm[0], s_range_mm[1] + 1e-9, step_mm)
    dom_arr = domain.astype(np.float32)
    les_arr = lesion_c.astype(np.float32)
    sections: list[SectionResult] = []
    for s in stations:
        centre = origin + s * a_ax
        idx = plane_idx + (inv[:3, :3] @ centre + inv[:3, 3])[:, None]
        inside = (sample(dom_arr, idx, 0.0) >= 0.5).reshape(gu.shape)
        if not inside.any():
            continue
        idx_in = idx[:, inside.ravel()]  # sample HU only where the section has bone
        e_act = np.zeros(inside.shape)
        e_act[inside] = relation.modulus_mpa(sample(sub.array, idx_in, AIR_HU))
        if status == "present":
            e_ref = np.zeros(inside.shape)
            e_ref[inside] = relation.modulus_mpa(sample(fill_hu, idx_in, AIR_HU))
            les_area = float((sample(les_arr, idx_in, 0.0) >= 0.5).sum() * pixel_mm ** 2)
        else:
            e_ref, les_area = e_act, 0.0
        o = (-n * pixel_mm, -n * pixel_mm)
        act = section_rigidity(e_act, pixel_mm, nu, o)
        ref = act if e_ref is e_act else section_rigidity(e_ref, pixel_mm, nu, o)
        region = "section" if region_split_mm is None else ("dens" if s >= region_split_mm else "body")
        sections.append(SectionResult(float(s), tuple(float(c) for c in centre), region, act, ref, les_area))
    return RigidityProfile(sections, reference, status, relation, nu, pixel_mm, step_mm, canc_hu, cort_hu,
                           assumptions)


def dens_rigidity(volume: Volume, c2_mask: np.ndarray, landmarks: Any, lesion_mask: np.ndarray | None = None,
                  *, body_depth_mm: float | None = None, apex_margin_mm: float = 1.0, column: str = "anterior",
                  **kwargs: Any) -> RigidityProfile:
    """CTRA of C2 along the dens axis, from the body up to (apex - ``apex_margin_mm``).

    ``s = 0`` at the dens waist (``landmarks.waist_lps_mm``), ``s`` grows towards the apex along
    ``landmarks.axis_unit``; sections with ``s >= 0`` are labelled ``"dens"``, the others ``"body"``.
    The lowest station is 2 mm above the anteroinferior body point (projected on the axis) or
    above the lowest C2 voxel, whichever is higher, or ``-body_depth_mm`` when given.

    Parameters
    ----------
    volume : Volume
    c2_mask : bool array (K, J, I)
        ``vertebrae_C2`` (should include the lesion's bone; the lesion is added to the section domain anyway).
    landmarks : DensLandmarks
    lesion_mask : bool array (K, J, I) or None
    column : str
        ``"anterior"`` (default): integrate the anterior column only -- dens + body, split from the
        posterolateral elements by :func:`osteoplan.risk.lesion_metrics.split_c2` -- because the dens
        carries its load through the body, and the superior articular processes that flank the
        dens base would otherwise mask a weak dens. ``"whole"``: every C2 voxel of the section.
    **kwargs
        Passed to :func:`rigidity_profile` (step_mm, pixel_mm, nu, relation, cortex_mm).

    Raises
    ------
    MaskError
        Empty C2 mask.
    InputError
        Unknown ``column`` or landmarks without length along the axis.
    """
    if column not in ("anterior", "whole"):
        raise InputError(f"column must be 'anterior' or 'whole'; got '{column}'.")
    c2 = np.asarray(c2_mask, dtype=bool)
    if not c2.any():
        raise MaskError("The C2 mask is empty; the rigidity analysis needs C2.")
    a = np.asarray(landmarks.axis_unit, float)
    a = a / np.linalg.norm(a)
    waist = np.asarray(landmarks.waist_lps_mm, float)
    s_apex = float((np.asarray(landmarks.apex_lps_mm, float) - waist) @ a)
    bone, lesion = c2, lesion_mask
    note = "Sections integrate every C2 voxel (column='whole')."
    if column == "anterior":
        from osteoplan.risk.lesion_metrics import split_c2

        solid = c2 | lesion_mask if lesion_mask is not None else c2
        parts = split_c2(volume, solid, landmarks)
        col = parts.anterior_column
        if col.any():
            bone = c2 & col
            lesion = lesion_mask & col if lesion_mask is not None else None
            note = ("Sections integrate the anterior column only (dens + body of C2, split from the posterolateral "
                    "elements by the geometric rules of osteoplan.risk.lesion_metrics, a configurable default "
                    f"without a published source; dens radius {parts.rules['dens_radius_mm']} mm, body half-depth "
                    f"{parts.rules['body_half_depth_mm']} mm).")
            if lesion_mask is not None and lesion_mask.any() and not lesion.any():
                note += " The lesion lies outside the anterior column: it does not weaken these sections."
    if body_depth_mm is None:
        b = _bounds_kji(bone)  # the voxels of the (small) bone's bounding box only, not of the whole CT
        lo = b[0] if b is not None else np.zeros(3, int)
        sub = tuple(slice(int(a), int(c) + 1) for a, c in zip(lo, b[1])) if b is not None else (slice(0, 0),) * 3
        pts = volume.index_to_world((np.argwhere(bone[sub]) + lo).astype(float))
        s_ai = float((np.asarray(landmarks.anteroinferior_body_lps_mm, float) - waist) @ a)
        s_low = max(float(((pts - waist) @ a).min()), s_ai) + 2.0
    else:
        s_low = -float(body_depth_mm)
    s_high = s_apex - apex_margin_mm
    if s_high <= s_low:
        raise InputError("The dens landmarks give no length along the axis; check the apex and waist points.")
    prof = rigidity_profile(volume, bone, waist, a, (s_low, s_high), lesion, **kwargs)
    if lesion_mask is not None and lesion_mask.any() and prof.lesion_status == "none":
        # the lesion exists but outside the integrated column: say so rather than "no lesion"
        prof = replace(prof, lesion_status="outside column",
                       reference="same patient, same sections: the lesion lies outside the anterior column, so these "
                                 "sections are compared with themselves (loss 0)")
    prof.assumptions.append(note)
    return prof
