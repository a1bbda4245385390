"""Rigid, bone-driven registration of a control CT to the planning CT, local to the target vertebra.

Method (each step has a general reason):

1. **Coarse translation** by normalised cross-correlation (:func:`skimage.feature.match_template`) of
   bone images (HU clipped to bone, metal removed) at 3 mm: a patient moved by up to ~20 mm between scans
   is found without any initial guess, and the template (planning bone within ``roi_radius_mm`` + 10 mm of
   the target) holds the neighbouring vertebrae and skull base, so one level is not mistaken for the next.
2. **Rigid refinement** (SimpleITK ``ImageRegistrationMethod``: Euler 3D transform about the target,
   mean squares on HU clipped to [-200, 1500], regular-step gradient descent, 3-level pyramid) with a
   fixed mask = planning bone (>= ``bone_hu``, dilated 2 mm) within ``roi_radius_mm`` of the target (local
   to the target vertebra, so the rest of the neck may flex) and a moving mask excluding the metal
   (>= ``metal_hu``) and ``metal_margin_mm`` around it (its streaks).
3. **Quality figure**: the residual distance between the cortical bone surfaces (>= ``surface_hu`` after a
   0.5 mm blur) of the planning CT and of the registered control CT, within ``roi_radius_mm`` of the
   target and farther than ``metal_margin_mm`` from metal, symmetric (both directions pooled).
   The registration is refused when the median exceeds ``max_median_mm`` or when less than
   ``min_surface_overlap`` of the planning surface points are matched within 2 mm (configurable defaults,
   no published source: ``max_median_mm`` is about twice the median measured on the synthetic benchmark
   ``benchmarks/bench_verify.py``, where correct registrations give 0.2-0.4 mm).
4. **Coverage**: the target, mapped into the control CT, must lie inside it with ``coverage_margin_mm``
   to spare, else the control CT does not cover the target and nothing is measured.

**Plausible motion bound** (decided *before* the coarse search is trusted). An unbounded NCC search always
finds *some* best position: on a control CT that does not reach the target it slides the target onto
another vertebra inside the scan (a reviewer's scan ending 70 mm below a C2 target was registered to a
vertebra ~98 mm lower, stopped only by the overlap limit by 1-2 points), so the coverage refusal never
fired. When the two CTs share a frame (same DICOM Frame of Reference UID: a trocar or pin control CT of
the same session), or when nothing tells otherwise (either UID unknown, e.g. NIfTI input), the scanner
coordinates are the best prior: the target sits in the control CT at its planning coordinates plus the
patient's motion, at most ``max_motion_mm``. So (a) a target farther than ``max_motion_mm`` outside the
control CT's field of view (shrunk by ``coverage_margin_mm``) is refused as not covered, (b) the coarse
translation is searched only within ``max_motion_mm``, and (c) a final target displacement above
``max_motion_mm`` makes the registration untrusted. ``max_motion_mm`` = 40 mm is a configurable default
with no published source: twice the largest patient motion of the synthetic benchmark (20 mm translation,
10 deg about the target), more than a patient lying on the table between two scans of one session moves;
it is also more than two cervical levels (~15-20 mm each), so it does not by itself exclude a wrong level
- the surface-match limits remain the second guard. When both Frame of Reference UIDs are known and differ
(a post-operative CT of another day, another table position), scanner coordinates tell nothing and the
search is unbounded (``motion_bound_mm`` = None in the result) and the registered neighbourhood must match
better: ``min_surface_overlap_unbounded`` = 0.85 instead of 0.7 (configurable default, no published source;
``benchmarks/bench_verify_cover.py``, 50 trials each: correct registrations matched >= 1.000 (phantom) and
>= 0.960 (CThead) with median residuals <= 0.19 / 0.50 mm; wrong-level registrations of scans below the target
matched 0.61-0.71 with median residuals 1.13-2.00 mm, so 0.85 sits 0.11 below every correct case and 0.14 above
every wrong one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from osteoplan.errors import OsteoplanError
from osteoplan.imaging.volume import AIR_HU, Volume, axis_aligned_affine
from osteoplan.planning.fields import edt_mm
from osteoplan.verification.geometry import apply


class VerificationError(OsteoplanError):
    """A control CT cannot be checked against the plan (the message says why and what to do)."""


class RegistrationRefused(VerificationError):
    """The registration cannot be trusted or the control CT does not cover the target."""


@dataclass(frozen=True)
class Registration:
    """Result of :func:`register_control`.

    Attributes
    ----------
    planning_from_control : (4, 4)
        Rigid matrix mapping control-CT LPS mm to planning-CT LPS mm.
    residual_median_mm, residual_p90_mm : float
        Residual distance between the bone surfaces near the target after registration (see module docstring).
    surface_overlap : float
        Fraction of planning surface points with a control surface point within 2 mm.
    n_surface_points : int
    roi_radius_mm : float
    trusted : bool
    reason : str or None
        Why it is not trusted (one sentence), else None.
    seconds : float
        Wall time of the registration.
    target_shift_lps_mm : (3,)
        Where the plan's target moved between the scans (registered target in the control frame minus the
        target in the planning frame, LPS mm): the patient motion at the target as found.
    motion_bound_mm : float or None
        The plausible-motion bound applied (see module docstring); None when the frames differ (unbounded).
    """

    planning_from_control: np.ndarray
    residual_median_mm: float
    residual_p90_mm: float
    surface_overlap: float
    n_surface_points: int
    roi_radius_mm: float
    trusted: bool
    reason: str | None
    seconds: float
    target_shift_lps_mm: tuple = (0.0, 0.0, 0.0)
    motion_bound_mm: float | None = None

    @property
    def control_from_planning(self) -> np.ndarray:
        """Inverse matrix: planning LPS -> control LPS."""
        return np.linalg.inv(self.planning_from_control)

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return {"planning_from_control": np.round(self.planning_from_control, 6).tolist(),
                "residual_median_mm": round(self.residual_median_mm, 3),
                "residual_p90_mm": round(self.residual_p90_mm, 3), "surface_overlap": round(self.surface_overlap, 3),
                "n_surface_points": self.n_surface_points, "roi_radius_mm": self.roi_radius_mm,
                "trusted": self.trusted, "reason": self.reason, "seconds": round(self.seconds, 2),
                "target_shift_lps_mm": [round(float(v), 2) for v in self.target_shift_lps_mm],
                "target_shift_mm": round(float(np.linalg.norm(self.target_shift_lps_mm)), 2),
                "motion_bound_mm": self.motion_bound_mm}


# ----------------------------------------------------------------------------------------------- helpers
def crop_box(volume: Volume, centre_lps_mm, half_mm: float) -> Volume | None:
    """The sub-volume of *volume* inside an LPS box of half-side *half_mm* around *centre_lps_mm* (None if empty)."""
    c = np.asarray(centre_lps_mm, float)
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * half_mm + c
    idx = volume.world_to_index(corners)
    lo = np.maximum(np.floor(idx.min(0)).astype(int), 0)
    hi = np.minimum(np.ceil(idx.max(0)).astype(int) + 1, volume.shape)
    if np.any(hi - lo < 2):
        return None
    aff = volume.affine.copy()
    aff[:3, 3] = (volume.affine @ np.r_[lo, 1.0])[:3]
    sub = volume.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    return Volume(sub, aff, volume.info)


def _coarse_bone(volume: Volume, step_mm: float, metal_hu: float, lo_hu: float = 200.0, hi_hu: float = 1200.0
                 ) -> Volume:
    """Bone image (HU clipped to [lo, hi] - lo, metal set to 0) block-averaged then resampled to *step_mm* (LPS axes)."""
    a = np.clip(volume.array, lo_hu, hi_hu) - lo_hu
    a[volume.array >= metal_hu] = 0.0
    sp = volume.spacing_mm
    f = np.maximum(1, np.floor(step_mm / sp).astype(int))
    K, J, I = (np.asarray(a.shape) // f) * f
    a = a[:K, :J, :I].reshape(K // f[0], f[0], J // f[1], f[1], I // f[2], f[2]).mean((1, 3, 5))
    aff = volume.affine.copy()
    aff[:3, :3] = volume.affine[:3, :3] * f
    aff[:3, 3] = (volume.affine @ np.r_[(f - 1) / 2.0, 1.0])[:3]
    shr = Volume(a.astype(np.float32), aff)
    lo, hi = shr.bounds_lps_mm()
    shape = tuple(int(np.floor((hi[ax] - lo[ax]) / step_mm)) + 1 for ax in (2, 1, 0))
    return shr.resample(axis_aligned_affine((step_mm,) * 3, tuple(lo)), shape, order=1, fill_hu=0.0)


def coarse_translation(planning: Volume, control: Volume, target_lps_mm, half_mm: float, metal_hu: float,
                       step_mm: float = 3.0, max_shift_mm: float | None = None) -> tuple[np.ndarray, float]:
    """Translation (LPS mm, planning -> control) found by NCC of 3 mm bone images; and the NCC peak value.

    *max_shift_mm* (None: unbounded) keeps only translations of at most that length (plus half a 3 mm
    voxel diagonal, the grid's rounding); see the module docstring (plausible motion bound).
    """
    t = np.asarray(target_lps_mm, float)
    roi = crop_box(planning, t, half_mm)
    if roi is None:
        raise RegistrationRefused("The plan's target lies outside the planning CT; the plan folder is damaged: "
                                  "re-run 'osteoplan plan'.")
    tpl = _coarse_bone(roi, step_mm, metal_hu)
    img = _coarse_bone(control, step_mm, metal_hu)
    # the template may not be larger than the image along any axis: trim it around the target
    tpl_arr = tpl.array
    t_idx = tpl.world_to_index(t[None])[0]
    sl = []
    for ax in range(3):
        n, m = tpl_arr.shape[ax], img.array.shape[ax] - 1
        if n <= m:
            sl.append(slice(0, n))
            continue
        c = int(round(t_idx[ax]))
        a = int(np.clip(c - m // 2, 0, n - m))
        sl.append(slice(a, a + m))
    tpl_arr = tpl_arr[tuple(sl)]
    if tpl_arr.std() < 1e-3 or img.array.std() < 1e-3:
        raise RegistrationRefused("No bone was found near the target on the planning or the control CT; the "
                                  "registration cannot be done: check that the control CT shows the target vertebra.")
    ncc = _ncc_valid(img.array, tpl_arr)
    # template voxel (0,0,0) sits at image voxel `peak`; template origin in world:
    tpl_origin = tpl.affine @ np.r_[[s.start for s in sl], 1.0]
    if max_shift_mm is not None:
        d = img.affine[:3, 3] - tpl_origin[:3]
        d2 = np.zeros(ncc.shape)
        for ax in range(3):
            comp = (d[ax] + np.arange(ncc.shape[0])[:, None, None] * img.affine[ax, 0]
                    + np.arange(ncc.shape[1])[None, :, None] * img.affine[ax, 1]
                    + np.arange(ncc.shape[2])[None, None, :] * img.affine[ax, 2])
            d2 = d2 + comp ** 2
        allowed = d2 <= (max_shift_mm + 0.5 * np.sqrt(3.0) * step_mm) ** 2
        if not allowed.any():
            raise RegistrationRefused("The control CT does not cover the plan's target (it lies outside its field "
                                      "of view); scan again including the target vertebra.")
        ncc = np.where(allowed, ncc, -np.inf)
    peak = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
    img_origin = img.affine @ np.r_[np.asarray(peak, float), 1.0]
    return (img_origin - tpl_origin)[:3], float(ncc[peak])


def _ncc_valid(image: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of *template* at every 'valid' position of *image* (FFT, float64)."""
    from scipy import fft

    img = image.astype(np.float64)
    tpl = template.astype(np.float64) - template.mean()
    n = tpl.size
    shape = [fft.next_fast_len(a + b - 1) for a, b in zip(img.shape, tpl.shape)]
    corr = fft.irfftn(fft.rfftn(img, shape) * np.conj(fft.rfftn(tpl, shape)), shape)
    valid = tuple(slice(0, a - b + 1) for a, b in zip(img.shape, tpl.shape))
    corr = corr[valid]

    def _box_sum(a):
        c = a
        for ax, w in enumerate(tpl.shape):
            c = np.cumsum(np.pad(c, [(1, 0) if k == ax else (0, 0) for k in range(3)]), axis=ax)
            c = np.take(c, np.arange(w, c.shape[ax]), axis=ax) - np.take(c, np.arange(0, c.shape[ax] - w), axis=ax)
        return c

    s1, s2 = _box_sum(img), _box_sum(img ** 2)
    var = np.maximum(s2 - s1 ** 2 / n, 0.0)
    tvar = float(np.sum(tpl ** 2))
    # windows with (almost) no structure (air, flat soft tissue) would divide FFT round-off by ~0: score 0
    ok = var > 0.05 * tvar
    return np.where(ok, corr / np.sqrt(np.maximum(var, 1e-12) * max(tvar, 1e-12)), 0.0)


def _to_sitk(vol: Volume, lo: float = -200.0, hi: float = 1500.0):
    return vol.with_array(np.clip(vol.array, lo, hi)).to_sitk()


def _mask_sitk(vol: Volume, mask: np.ndarray):
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(mask.astype(np.uint8))
    img.CopyInformation(_geom_image(vol))
    return img


def _geom_image(vol: Volume):
    import SimpleITK as sitk

    img = sitk.Image([int(s) for s in vol.shape[::-1]], sitk.sitkUInt8)
    sp = vol.spacing_mm
    img.SetSpacing((float(sp[2]), float(sp[1]), float(sp[0])))
    img.SetOrigin(tuple(float(v) for v in vol.origin_mm))
    d = vol.direction
    img.SetDirection(tuple(float(v) for v in np.stack([d[:, 2], d[:, 1], d[:, 0]], axis=1).ravel()))
    return img


def _bin_to(vol: Volume, min_spacing_mm: float) -> Volume:
    """Block-average *vol* by integer factors so that no spacing is below *min_spacing_mm* (speed; keeps metal max)."""
    f = np.maximum(1, np.floor(min_spacing_mm / vol.spacing_mm).astype(int))
    if np.all(f == 1):
        return vol
    a = vol.array
    K, J, I = (np.asarray(a.shape) // f) * f
    a = a[:K, :J, :I].reshape(K // f[0], f[0], J // f[1], f[1], I // f[2], f[2]).mean((1, 3, 5))
    aff = vol.affine.copy()
    aff[:3, :3] = vol.affine[:3, :3] * f
    aff[:3, 3] = (vol.affine @ np.r_[(f - 1) / 2.0, 1.0])[:3]
    return Volume(a.astype(np.float32), aff, vol.info)


def _surface(a: np.ndarray, hu: float, spacing: np.ndarray) -> np.ndarray:
    """Boundary voxels of (blurred HU >= *hu*)."""
    b = ndi.gaussian_filter(a, 0.5 / spacing) >= hu
    return b & ~ndi.binary_erosion(b)


def _sphere_mask(vol: Volume, centre, radius_mm: float) -> np.ndarray:
    """Voxels of *vol* whose centre lies within *radius_mm* of *centre* (LPS mm)."""
    K, J, I = vol.shape
    A = vol.affine
    diff = A[:3, 3] - np.asarray(centre, float)
    d2 = np.zeros(vol.shape, np.float32)
    for ax in range(3):  # separable: x = o + k a0 + j a1 + i a2
        comp = (diff[ax] + np.arange(K)[:, None, None] * A[ax, 0] + np.arange(J)[None, :, None] * A[ax, 1]
                + np.arange(I)[None, None, :] * A[ax, 2])
        d2 += (comp ** 2).astype(np.float32)
    return d2 <= radius_mm ** 2


def surface_residual(planning_roi: Volume, control: Volume, control_from_planning: np.ndarray, target_lps_mm,
                     radius_mm: float, surface_hu: float, metal_hu: float, metal_margin_mm: float
                     ) -> tuple[float, float, float, int]:
    """(median, p90, overlap, n) of the bone-surface residual near the target (see module docstring).

    At each planning surface voxel (cortical iso-surface of the blurred planning CT) the sub-voxel distance
    from the voxel centre to each iso-surface along its normal is ``(I - surface_hu) / |grad I|`` (first
    order); the residual is the difference of the two (planning, registered control). Where the control
    surface is farther than 1.5 mm (out of the first-order range) the Euclidean distance to the nearest
    control surface voxel is used. ``overlap`` = fraction of planning surface voxels within 2 mm of a
    control surface voxel.
    """
    m = np.linalg.inv(control.affine) @ control_from_planning @ planning_roi.affine
    moved = ndi.affine_transform(control.array, m[:3, :3], offset=m[:3, 3], output_shape=planning_roi.shape,
                                 order=1, mode="constant", cval=np.nan)
    sp = planning_roi.spacing_mm
    inside = np.isfinite(moved)
    moved = np.where(inside, moved, AIR_HU)
    metal = moved >= metal_hu
    keep = _sphere_mask(planning_roi, target_lps_mm, radius_mm) & ndi.binary_erosion(inside, iterations=2)
    if metal.any():
        keep &= edt_mm(~metal, sp) > metal_margin_mm
    bp = ndi.gaussian_filter(planning_roi.array, 0.5 / sp)
    bc = ndi.gaussian_filter(moved, 0.5 / sp)
    s_p = (bp >= surface_hu)
    s_p = s_p & ~ndi.binary_erosion(s_p) & keep
    s_c = (bc >= surface_hu)
    s_c = s_c & ~ndi.binary_erosion(s_c) & keep
    if s_p.sum() < 50 or s_c.sum() < 50:
        return float("inf"), float("inf"), 0.0, int(min(s_p.sum(), s_c.sum()))
    gp = np.stack(np.gradient(bp, *sp), -1)[s_p]
    gc = np.stack(np.gradient(bc, *sp), -1)[s_p]
    n = gp / np.maximum(np.linalg.norm(gp, axis=1, keepdims=True), 1e-6)
    gpn = np.maximum(np.einsum("ij,ij->i", gp, n), 1e-6)
    gcn = np.einsum("ij,ij->i", gc, n)
    dp = (bp[s_p] - surface_hu) / gpn
    with np.errstate(divide="ignore", invalid="ignore"):
        dc = (bc[s_p] - surface_hu) / gcn
    d_edt = edt_mm(~s_c, sp)[s_p]
    ok = (gcn > 0.3 * gpn) & (np.abs(dc) < 1.5)
    r = np.where(ok, np.abs(dp - dc), np.maximum(d_edt, 0.5 * float(sp.min())))
    overlap = float(np.mean(d_edt <= 2.0))
    return float(np.median(r)), float(np.percentile(r, 90)), overlap, int(r.size)


def outside_fov_mm(volume: Volume, point_lps_mm, margin_mm: float = 0.0) -> float:
    """Distance (mm) from *point_lps_mm* to the field of view of *volume* shrunk by *margin_mm* (0 inside).

    The field of view is the box of voxel centres ± half a voxel (index space; orthogonal axes assumed,
    as for every CT grid).
    """
    idx = volume.world_to_index(np.asarray(point_lps_mm, float)[None])[0]
    sp = volume.spacing_mm
    lo = margin_mm / sp - 0.5
    hi = np.asarray(volume.shape) - 0.5 - margin_mm / sp
    out_vox = np.maximum(lo - idx, 0.0) + np.maximum(idx - hi, 0.0)
    return float(np.linalg.norm(out_vox * sp))


def motion_bound_mm(planning: Volume, control: Volume, max_motion_mm: float | None) -> float | None:
    """The plausible-motion bound to apply (see module docstring): None when both Frame of Reference UIDs are
    known and differ (scanner coordinates then say nothing), else *max_motion_mm*."""
    if max_motion_mm is None:
        return None
    a = getattr(planning.info, "frame_of_reference_uid", None) if planning.info is not None else None
    b = getattr(control.info, "frame_of_reference_uid", None) if control.info is not None else None
    if a and b and a != b:
        return None
    return float(max_motion_mm)


# ----------------------------------------------------------------------------------------------- main
def register_control(planning: Volume, control: Volume, target_lps_mm, *, roi_radius_mm: float = 30.0,
                     bone_hu: float = 200.0, surface_hu: float = 500.0, metal_hu: float = 2000.0,
                     metal_margin_mm: float = 4.0, max_median_mm: float = 0.8, min_surface_overlap: float = 0.7,
                     coverage_margin_mm: float = 5.0, max_motion_mm: float | None = 40.0,
                     min_surface_overlap_unbounded: float = 0.85, refuse: bool = True) -> Registration:
    """Register *control* to *planning* rigidly around the target (see module docstring).

    Parameters
    ----------
    planning, control : Volume
        Planning and control CTs (HU, LPS mm; any grids).
    target_lps_mm : (3,)
        The plan's target (planning frame): the centre of the local registration.
    roi_radius_mm : float
        Radius of the region around the target that drives the registration and is measured.
    bone_hu, surface_hu, metal_hu, metal_margin_mm : float
        Bone threshold of the fixed mask, cortical surface threshold of the quality figure, metal
        threshold and the margin excluded around metal (streaks). Configurable defaults, no published source.
    max_median_mm, min_surface_overlap : float
        Trust limits (see module docstring).
    coverage_margin_mm : float
        The target must lie this far inside the control CT.
    max_motion_mm : float or None
        Plausible patient motion at the target between two scans of one frame (see module docstring;
        configurable default, no published source). Applied when the two CTs share a Frame of Reference UID
        or either is unknown; ignored (unbounded search) when both are known and differ. None: never applied.
    min_surface_overlap_unbounded : float
        The overlap limit used instead of *min_surface_overlap* when the search is unbounded (see module
        docstring: a wider search must be backed by a better match).
    refuse : bool
        Raise :class:`RegistrationRefused` when not trusted (else return with ``trusted=False``).

    Returns
    -------
    Registration

    Raises
    ------
    RegistrationRefused
        The control CT does not cover the target (also: the target lies more than the plausible motion
        outside its field of view), or (with *refuse*) the registration is not trustworthy (including a target
        displacement above the plausible motion).
    """
    import SimpleITK as sitk

    t0 = time.perf_counter()
    target = np.asarray(target_lps_mm, float)
    bound = motion_bound_mm(planning, control, max_motion_mm)

    def _covers(p_control: np.ndarray) -> bool:
        return outside_fov_mm(control, p_control, coverage_margin_mm) == 0.0

    not_covered = RegistrationRefused("The control CT does not cover the plan's target (it lies outside its field of "
                                      "view); scan again including the target vertebra.")
    if bound is not None and outside_fov_mm(control, target, coverage_margin_mm) > bound:
        raise not_covered
    tr0, _ = coarse_translation(planning, control, target, roi_radius_mm + 10.0, metal_hu, max_shift_mm=bound)
    if not _covers(target + tr0):
        raise not_covered
    fixed = crop_box(planning, target, roi_radius_mm + 5.0)
    moving = crop_box(control, target + tr0, roi_radius_mm + 15.0)
    moving = _bin_to(moving, 0.75 * fixed.spacing_mm.min())
    fmask = (edt_mm(fixed.array < bone_hu, fixed.spacing_mm) <= 2.0) & _sphere_mask(fixed, target, roi_radius_mm)
    metal = moving.array >= metal_hu
    mmask = edt_mm(~metal, moving.spacing_mm) > metal_margin_mm if metal.any() else np.ones(moving.shape, bool)

    f_img, m_img = _to_sitk(fixed), _to_sitk(moving)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMeanSquares()
    reg.SetMetricFixedMask(_mask_sitk(fixed, fmask))
    reg.SetMetricMovingMask(_mask_sitk(moving, mmask))
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.15, seed=1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=100,
                                                 relaxationFactor=0.6, gradientMagnitudeTolerance=1e-8)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    init = sitk.Euler3DTransform()
    init.SetCenter(tuple(float(v) for v in target))
    init.SetTranslation(tuple(float(v) for v in tr0))
    reg.SetInitialTransform(init, inPlace=True)
    try:
        reg.Execute(f_img, m_img)
    except RuntimeError as exc:
        raise RegistrationRefused("The registration failed (" + str(exc).strip().splitlines()[-1][:120] + "); check "
                                  "that the control CT shows the target vertebra.") from None
    # ITK maps fixed (planning) points to moving (control) points: x_c = R (x_p - c) + c + t
    R = np.asarray(init.GetMatrix()).reshape(3, 3)
    c = np.asarray(init.GetCenter())
    tvec = np.asarray(init.GetTranslation())
    c_from_p = np.eye(4)
    c_from_p[:3, :3] = R
    c_from_p[:3, 3] = c + tvec - R @ c
    shift = apply(c_from_p, target) - target
    if not _covers(apply(c_from_p, target)):
        raise not_covered
    med, p90, overlap, n = surface_residual(fixed, moving, c_from_p, target, roi_radius_mm, surface_hu, metal_hu,
                                            metal_margin_mm)
    reason = None
    min_overlap = min_surface_overlap if bound is not None else max(min_surface_overlap, min_surface_overlap_unbounded)
    if bound is not None and float(np.linalg.norm(shift)) > bound:
        reason = (f"the target would have moved {float(np.linalg.norm(shift)):.0f} mm between the scans (more than "
                  f"the plausible {bound:g} mm): the match is probably another vertebra")
    elif not np.isfinite(med):
        reason = (f"too little bone surface near the target to check the registration ({n} points); the control "
                  "CT may not show the target vertebra")
    elif med > max_median_mm or overlap < min_overlap:
        reason = (f"bone surfaces near the target stay {med:.1f} mm apart (median; limit {max_median_mm:g} mm) and "
                  f"{100 * overlap:.0f} % of them match within 2 mm (needed {100 * min_overlap:.0f} %)")
    reg_out = Registration(planning_from_control=np.linalg.inv(c_from_p), residual_median_mm=med,
                           residual_p90_mm=p90, surface_overlap=overlap, n_surface_points=n,
                           roi_radius_mm=roi_radius_mm, trusted=reason is None, reason=reason,
                           seconds=time.perf_counter() - t0,
                           target_shift_lps_mm=tuple(float(v) for v in shift), motion_bound_mm=bound)
    if reason and refuse:
        raise RegistrationRefused(f"The registration cannot be trusted: {reason}; check that the control CT is of "
                                  "this patient and shows the target vertebra, or register by hand.")
    return reg_out
