"""Lesion metrics for fracture risk: size, share of the dens/body, HU, cortical breach, posterolateral extent.

The lesion itself is segmented by the anatomy stage (:mod:`osteoplan.anatomy`); this module only
*measures* it against C2. When the anatomy stage's ``LesionResult`` is given, its volume and
fractions are reused rather than recomputed.

C2 is split into parts by :func:`osteoplan.anatomy.c2parts.split_c2` (re-exported here), with
geometric rules on the dens landmarks (configurable defaults, no published source; used because the
label maps have one C2 mask, not its parts):

* ``s`` is the distance along the dens axis from the waist (positive towards the apex), ``u``
  the patient-left and ``v`` the posterior in-plane directions (:func:`osteoplan.anatomy.c2parts.section_basis`).
* dens: C2 voxels with ``s >= 0`` within ``dens_radius`` of the axis,
  ``dens_radius = max(6 mm, 0.75 * waist diameter)``;
* body: C2 voxels with ``s < 0`` whose (u, v) offset from the body centre is within the body's
  half-depth ``d`` (distance from the body centre to the anteroinferior point along v) in v
  (``v <= +d``) and within ``1.1 d`` in u;
* posterolateral elements (pedicles, lateral masses, laminae): the rest of C2, left (u > 0) or right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from osteoplan.anatomy.c2parts import C2Parts, split_c2
from osteoplan.errors import MaskError
from osteoplan.imaging.volume import Volume
from osteoplan.risk.rigidity import normal_bone_hu
from osteoplan.anatomy import _local

__all__ = ["C2Parts", "split_c2", "BreachResult", "cortical_breach", "LesionMetrics", "measure_lesion"]


@dataclass(frozen=True)
class BreachResult:
    """Cortical breach: where the lesion reaches the outer surface of C2.

    Attributes
    ----------
    surface_mm2 : float
        Outer surface area of C2 (+ lesion), marching cubes (mm^2).
    breach_mm2 : float
        Area of that surface where the lesion reaches it (mm^2).
    by_direction_mm2 : dict[str, float]
        Breach area by outward normal: anterior, posterior, left, right, superior, inferior.
    by_part_mm2 : dict[str, float]
        Breach area by C2 part: dens, body, posterior_left, posterior_right.
    canal_facing_mm2 : float or None
        Breach area within ``canal_distance_mm`` of the spinal canal; None when the canal was not
        segmented (not assessed).
    """

    surface_mm2: float
    breach_mm2: float
    by_direction_mm2: dict[str, float]
    by_part_mm2: dict[str, float]
    canal_facing_mm2: float | None
    canal_distance_mm: float

    @property
    def breach_pct(self) -> float:
        """Breach area as a percentage of the outer surface."""
        return 100.0 * self.breach_mm2 / self.surface_mm2 if self.surface_mm2 > 0 else 0.0

    @property
    def walls(self) -> list[str]:
        """Walls with a breach >= 1 mm^2, largest first (``"canal-facing"`` included when assessed)."""
        w = [k for k, a in sorted(self.by_direction_mm2.items(), key=lambda x: -x[1]) if a >= 1.0]
        if self.canal_facing_mm2 is not None and self.canal_facing_mm2 >= 1.0:
            w.append("canal-facing")
        return w

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"surface_mm2": round(self.surface_mm2, 1), "breach_mm2": round(self.breach_mm2, 1),
                "breach_pct_of_surface": round(self.breach_pct, 2),
                "by_direction_mm2": {k: round(a, 1) for k, a in self.by_direction_mm2.items()},
                "by_part_mm2": {k: round(a, 1) for k, a in self.by_part_mm2.items()},
                "canal_facing_mm2": None if self.canal_facing_mm2 is None else round(self.canal_facing_mm2, 1),
                "canal_facing": "not assessed (spinal canal not segmented)" if self.canal_facing_mm2 is None
                else f"within {self.canal_distance_mm} mm of the spinal canal",
                "walls": self.walls,
                "method": "marching-cubes surface of C2 + lesion; a surface triangle is breached when the voxel "
                          "just inside it is lesion"}


_DIRS = {"left": (1, 0, 0), "right": (-1, 0, 0), "posterior": (0, 1, 0), "anterior": (0, -1, 0),
         "superior": (0, 0, 1), "inferior": (0, 0, -1)}


def cortical_breach(volume: Volume, c2_mask: np.ndarray, lesion_mask: np.ndarray, parts: C2Parts | None = None,
                    canal_mask: np.ndarray | None = None, canal_distance_mm: float = 3.0) -> BreachResult:
    """Measure where a lesion reaches the outer surface of C2 (its cortex is replaced by tumour).

    Parameters
    ----------
    volume : Volume
    c2_mask, lesion_mask : bool arrays (K, J, I)
    parts : C2Parts or None
        For the per-part breakdown.
    canal_mask : bool array or None
        ``spinal_canal``; None -> canal-facing breach not assessed.
    canal_distance_mm : float
        Distance to the canal under which a breached surface counts as canal-facing (configurable
        default, no published source).

    Returns
    -------
    BreachResult
    """
    from scipy.ndimage import distance_transform_edt
    from skimage.measure import marching_cubes

    from osteoplan.risk.rigidity import _bounds_kji

    solid = _local.fill_holes(c2_mask | lesion_mask)
    first, last = _bounds_kji(solid)  # == argwhere(solid).min(0) / .max(0)
    lo = np.maximum(first - 2, 0)
    hi = np.minimum(last + 3, volume.shape)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    sub = np.pad(solid[sl], 1).astype(np.float32)
    sp = volume.spacing_mm
    verts, faces, _n, _v = marching_cubes(sub, level=0.5, spacing=tuple(sp))
    tri = verts[faces]  # (F, 3, 3) in mm along (k, j, i) of the padded crop
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = 0.5 * np.linalg.norm(cross, axis=1)
    centroid_idx = tri.mean(axis=1) / sp - 1 + lo  # voxel index (k, j, i) in the full grid
    n_idx = cross / np.maximum(np.linalg.norm(cross, axis=1, keepdims=True), 1e-12)
    # orientation of marching-cubes normals depends on the gradient convention: make them point outward
    probe_out = np.rint(centroid_idx + 0.75 * sp.min() * n_idx / sp).astype(int)
    probe_out = np.clip(probe_out, 0, np.asarray(volume.shape) - 1)
    if solid[tuple(probe_out.T)].mean() > 0.5:
        n_idx = -n_idx
    inner = np.rint(centroid_idx - 0.5 * sp.min() * n_idx / sp).astype(int)
    inner = np.clip(inner, 0, np.asarray(volume.shape) - 1)
    breached = lesion_mask[tuple(inner.T)]
    # outward normals to LPS
    n_lps = (n_idx / sp) @ volume.affine[:3, :3].T
    n_lps /= np.maximum(np.linalg.norm(n_lps, axis=1, keepdims=True), 1e-12)
    names = list(_DIRS)
    dmat = np.array([_DIRS[k] for k in names], float)
    dominant = np.argmax(n_lps @ dmat.T, axis=1)
    by_dir = {k: float(area[breached & (dominant == i)].sum()) for i, k in enumerate(names)}
    by_part: dict[str, float] = {}
    if parts is not None:
        for pname in ("dens", "body", "posterior_left", "posterior_right"):
            pm = getattr(parts, pname)
            by_part[pname] = float(area[breached & pm[tuple(inner.T)]].sum())
    canal_mm2 = None
    if canal_mask is not None:
        if canal_mask.any():
            # distances only matter near C2: crop to its box plus the distance of interest
            m = int(np.ceil(canal_distance_mm / sp.min())) + 2
            clo = np.maximum(lo - m, 0)
            chi = np.minimum(hi + m, volume.shape)
            csl = tuple(slice(int(a), int(b)) for a, b in zip(clo, chi))
            sub_canal = canal_mask[csl]
            if sub_canal.any():
                dist = distance_transform_edt(~sub_canal, sampling=sp)
                d_in = dist[tuple((inner - clo).T)]
            else:
                d_in = np.full(len(inner), np.inf)
            canal_mm2 = float(area[breached & (d_in <= canal_distance_mm)].sum())
        else:
            canal_mm2 = 0.0
    return BreachResult(float(area.sum()), float(area[breached].sum()), by_dir, by_part, canal_mm2,
                        canal_distance_mm)


@dataclass(frozen=True)
class LesionMetrics:
    """What the CT shows of the lesion relative to C2.

    Attributes
    ----------
    status : str
        ``"present"``, ``"none"`` (segmented, empty) or ``"not assessed"``.
    volume_ml : float
    fraction_of_dens, fraction_of_body, fraction_of_anterior_column : float
        Share of each part's volume occupied by the lesion (0-1).
    fraction_of_c2 : float
    posterolateral_ml : dict[str, float]
        Lesion volume in the left / right posterolateral elements (mL).
    lesion_hu : dict[str, float]
        Median, 10th and 90th percentile HU of the lesion.
    normal_cancellous_hu, normal_cortical_hu : float or None
        The same vertebra's normal bone, away from the lesion.
    breach : BreachResult or None
    source : str
        Where the volume/fractions came from (``"anatomy.LesionResult"`` or ``"measured"``).
    """

    status: str
    volume_ml: float = 0.0
    fraction_of_dens: float = 0.0
    fraction_of_body: float = 0.0
    fraction_of_anterior_column: float = 0.0
    fraction_of_c2: float = 0.0
    posterolateral_ml: dict[str, float] = field(default_factory=dict)
    lesion_hu: dict[str, float] = field(default_factory=dict)
    normal_cancellous_hu: float | None = None
    normal_cortical_hu: float | None = None
    breach: BreachResult | None = None
    parts_rules: dict[str, Any] = field(default_factory=dict)
    part_volumes_ml: dict[str, float] = field(default_factory=dict)
    source: str = "measured"
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        def r(x: float | None, n: int = 4) -> float | None:
            return None if x is None else round(float(x), n)
        return {
            "status": self.status, "volume_ml": r(self.volume_ml), "fraction_of_dens": r(self.fraction_of_dens),
            "fraction_of_body": r(self.fraction_of_body),
            "fraction_of_anterior_column": r(self.fraction_of_anterior_column),
            "fraction_of_c2": r(self.fraction_of_c2),
            "posterolateral_ml": {k: r(v) for k, v in self.posterolateral_ml.items()},
            "lesion_hu": {k: r(v, 1) for k, v in self.lesion_hu.items()},
            "normal_cancellous_hu": r(self.normal_cancellous_hu, 1),
            "normal_cortical_hu": r(self.normal_cortical_hu, 1),
            "cortical_breach": None if self.breach is None else self.breach.to_dict(),
            "c2_parts": {"rules": self.parts_rules, "volumes_ml": {k: r(v) for k, v in self.part_volumes_ml.items()}},
            "source": self.source, "notes": list(self.notes),
        }


def _hu_stats(hu: np.ndarray, normal_hu: float | None, margin: float) -> dict[str, float]:
    out = {"median": float(np.median(hu)), "p10": float(np.percentile(hu, 10)), "p90": float(np.percentile(hu, 90))}
    if normal_hu is not None:
        out["fraction_below_normal"] = float((hu < normal_hu - margin).mean())
        out["fraction_above_normal"] = float((hu > normal_hu + margin).mean())
        out["margin_hu"] = float(margin)
    return out


def measure_lesion(volume: Volume, c2_mask: np.ndarray, lesion_mask: np.ndarray | None, landmarks: Any,
                   lesion_result: Any = None, canal_mask: np.ndarray | None = None,
                   type_margin_hu: float = 100.0) -> LesionMetrics:
    """Measure a lesion against C2.

    Parameters
    ----------
    volume : Volume
        CT (HU).
    c2_mask : bool array (K, J, I)
        ``vertebrae_C2``.
    lesion_mask : bool array (K, J, I) or None
        The lesion (None = not assessed; empty = no lesion).
    landmarks : DensLandmarks
        For the dens/body split.
    lesion_result : anatomy ``LesionResult`` or None
        When given, its ``volume_ml``, ``fraction_of_dens`` and ``fraction_of_body`` are reused.
    canal_mask : bool array or None
        ``spinal_canal`` for the canal-facing breach (None = not assessed).
    type_margin_hu : float
        A lesion voxel counts as below (above) normal when its HU is more than this under (over)
        the vertebra's normal cancellous median (configurable default, no published source).

    Returns
    -------
    LesionMetrics

    Raises
    ------
    MaskError
        Empty C2 mask or masks not on the CT grid.
    """
    c2 = np.asarray(c2_mask, bool)
    if c2.shape != volume.shape or not c2.any():
        raise MaskError("The C2 mask is empty or not on the CT grid; segment C2 before measuring the lesion.")
    parts = split_c2(volume, c2, landmarks)
    vml = volume.voxel_volume_ml
    part_vol = {"dens": parts.dens.sum() * vml, "body": parts.body.sum() * vml,
                "posterior_left": parts.posterior_left.sum() * vml,
                "posterior_right": parts.posterior_right.sum() * vml}
    if lesion_mask is None:
        return LesionMetrics("not assessed", parts_rules=parts.rules, part_volumes_ml=part_vol,
                             notes=("No lesion mask: the lesion was not assessed.",))
    les = np.asarray(lesion_mask, bool)
    if les.shape != volume.shape:
        raise MaskError(f"The lesion mask {les.shape} is not on the CT grid {volume.shape}.")
    canc, cort, _ = normal_bone_hu(volume, c2 & ~les, les if les.any() else None)
    if not les.any():
        return LesionMetrics("none", normal_cancellous_hu=canc, normal_cortical_hu=cort, parts_rules=parts.rules,
                             part_volumes_ml=part_vol, notes=("The lesion mask is empty: no lesion found.",))
    # a lesion voxel belongs to a part by the same geometric rules, C2 or not
    solid = c2 | les
    parts_s = split_c2(volume, solid, landmarks)

    def frac(part: np.ndarray) -> float:
        return float((les & part).sum() / part.sum()) if part.any() else 0.0

    f_dens, f_body = frac(parts_s.dens), frac(parts_s.body)
    f_ac = frac(parts_s.anterior_column)
    volume_ml = float(les.sum() * vml)
    source = "measured"
    notes: list[str] = []
    if lesion_result is not None:
        for name in ("volume_ml", "fraction_of_dens", "fraction_of_body"):
            if getattr(lesion_result, name, None) is None:
                break
        else:
            volume_ml = float(lesion_result.volume_ml)
            f_dens = float(lesion_result.fraction_of_dens)
            f_body = float(lesion_result.fraction_of_body)
            source = "anatomy.LesionResult"
            notes.append("Volume and dens/body fractions from the anatomy stage's LesionResult; the anterior "
                         "column, posterolateral and breach figures are measured here.")
    hu = volume.array[les]
    breach = cortical_breach(volume, c2, les, parts_s, canal_mask)
    return LesionMetrics(
        status="present", volume_ml=volume_ml, fraction_of_dens=f_dens, fraction_of_body=f_body,
        fraction_of_anterior_column=f_ac, fraction_of_c2=frac(solid),
        posterolateral_ml={"left": float((les & parts_s.posterior_left).sum() * vml),
                           "right": float((les & parts_s.posterior_right).sum() * vml)},
        lesion_hu=_hu_stats(hu, canc, type_margin_hu),
        normal_cancellous_hu=canc, normal_cortical_hu=cort, breach=breach, parts_rules=parts.rules,
        part_volumes_ml=part_vol, source=source, notes=tuple(notes))
