"""Synthetic control CTs with a known instrument and a known patient motion (ground truth for verify).

A control CT is built from a planning CT in four steps, each with a known value:

1. **Patient motion**: the planning anatomy is resampled (trilinear) onto the control grid through a
   rigid transform ``control_from_planning`` (rotation about a centre, then translation): the patient
   moved between the two scans. The control grid is axis-aligned in the same scanner frame; it may be
   a shorter field of view (fewer slices) or another voxel size (e.g. 512 x 512 x 100).
2. **Instrument**: a straight metal cylinder (flat end; diameter 1-3 mm for trocars and K-wires,
   3.5-4 mm for screws; 3000 HU by default) along a path deviated from the plan: its axis is the planned
   axis turned by ``angle_deg`` about a random perpendicular axis and passing ``offset_mm`` from the
   planned target (perpendicular to the planned axis); its tip (centre of the flat end) stops
   ``short_of_target_mm`` before the point of the actual axis closest to the target's offset point.
   Voxels are filled with their exact covered fraction (partial volume, 3 x 3 x 3 sub-samples per
   voxel) blurred by a Gaussian point-spread function (in-plane sigma 0.4 mm, slice sigma 0.4 x slice
   thickness: typical of clinical CT, configurable default, no single published source).
3. **Metal streaks**: in every axial slice crossed by the metal, the beam-hardening error of a
   polychromatic beam, ``-k * L^2`` with ``L`` the metal path length of each ray (plus photon
   starvation noise proportional to ``L``), is filtered-backprojected (ramp filter, 48 angles) and
   added: the dark and bright bands along the metal's long axis seen on clinical CTs (De Man et al.,
   "Metal streak artifacts in X-ray computed tomography: a simulation study", IEEE TNS 1999;46:691).
   ``k`` is set so the darkest band next to a 2 mm wire is a few hundred HU (configurable default,
   not calibrated to a scanner).
4. **Noise**: white Gaussian noise (a control CT is often a lower-dose scan).

Everything is returned as :class:`ControlTruth` (plain numbers) with the volume.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi

from osteoplan.imaging.volume import AIR_HU, AcquisitionInfo, Volume, axis_aligned_affine
from osteoplan.verification.geometry import apply, random_perpendicular, rigid, rotation_about, unit

#: HU of the inserted metal (stainless steel / titanium saturate clinical CT reconstructions at ~3000 HU
#: and above on an extended scale; configurable default).
METAL_HU = 3000.0

#: Beam-hardening coefficient of the streak model, HU of backprojected error per mm^2 of squared metal
#: path (configurable default chosen for streaks of a few hundred HU next to a 2 mm wire; no published source).
STREAK_K = 300.0


@dataclass(frozen=True)
class ControlTruth:
    """Ground truth of a synthetic control CT (LPS mm, degrees).

    Attributes
    ----------
    control_from_planning : (4, 4) rigid matrix, planning LPS -> control LPS.
    tip_planning_lps_mm, tip_control_lps_mm : (3,) tip of the instrument (centre of its flat end).
    direction_planning_unit : (3,) instrument axis in the planning frame, pointing towards the tip.
    rear_planning_lps_mm : (3,) the other end of the instrument (may lie outside the control CT).
    angle_deg, offset_mm, short_of_target_mm : the deviation drawn from the plan.
    diameter_mm : instrument diameter.
    rotation_deg, translation_mm : size of the patient motion.
    """

    control_from_planning: np.ndarray
    tip_planning_lps_mm: np.ndarray
    tip_control_lps_mm: np.ndarray
    direction_planning_unit: np.ndarray
    rear_planning_lps_mm: np.ndarray
    angle_deg: float
    offset_mm: float
    short_of_target_mm: float
    diameter_mm: float
    rotation_deg: float
    translation_mm: float

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(self).items()}


def deviated_path(entry_lps_mm, target_lps_mm, angle_deg: float, offset_mm: float, short_of_target_mm: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A straight instrument path deviated from the planned line *entry* -> *target*.

    Returns
    -------
    tip_lps_mm : (3,)
        Tip: on the deviated axis, *short_of_target_mm* before the pivot point, which lies
        *offset_mm* from the target perpendicular to the planned axis.
    direction_unit : (3,)
        The deviated axis, *angle_deg* from the planned one, pointing towards the tip.
    """
    e, t = np.asarray(entry_lps_mm, float), np.asarray(target_lps_mm, float)
    d = unit(t - e)
    d_a = rotation_about(random_perpendicular(d, rng), angle_deg) @ d
    pivot = t + offset_mm * random_perpendicular(d, rng)
    return pivot - short_of_target_mm * d_a, d_a


def _inv_affine(aff: np.ndarray) -> np.ndarray:
    return np.linalg.inv(aff)


def insert_cylinder(array: np.ndarray, affine: np.ndarray, tip_lps_mm, direction_unit, length_mm: float,
                    diameter_mm: float, metal_hu: float = METAL_HU, psf_sigma_mm: float = 0.4) -> np.ndarray:
    """Paint a metal cylinder into *array* in place, with partial volume and blur; return its blurred fraction.

    The blur is applied along the array axes, axis 0 being the slice axis (axial grids).

    Parameters
    ----------
    array : float32 (K, J, I)
        HU, modified in place: ``hu * (1 - f) + metal_hu * f``.
    affine : (4, 4)
        Index (k, j, i) -> LPS mm of *array* (axis-aligned grids only).
    tip_lps_mm, direction_unit : (3,)
        Centre of the flat end and the axis pointing towards it; the cylinder spans *length_mm* behind it.
    length_mm, diameter_mm : float
    metal_hu : float
    psf_sigma_mm : float
        In-plane Gaussian PSF sigma (mm); along the slices 0.4 x the slice spacing.

    Returns
    -------
    float32 (K, J, I)
        Blurred covered fraction (0-1), zero where no metal.
    """
    tip = np.asarray(tip_lps_mm, float)
    d = unit(direction_unit)
    rear = tip - length_mm * d
    r = diameter_mm / 2.0
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    inv = _inv_affine(affine)
    frac = np.zeros(array.shape, np.float32)
    half_diag = 0.5 * float(np.linalg.norm(spacing))
    sub = (np.arange(3) - 1) / 3.0
    offs = np.stack(np.meshgrid(sub, sub, sub, indexing="ij"), -1).reshape(-1, 3) @ affine[:3, :3].T  # (27, 3) mm
    cov_full = np.zeros(array.shape, np.float32)
    # the segment in pieces of ~4 mm, each with its own small index box (a long oblique instrument would
    # otherwise make one box as large as the volume)
    n_pieces = max(1, int(np.ceil(length_mm / 4.0)))
    edges = np.linspace(0.0, length_mm, n_pieces + 1)
    grow_mm = r + half_diag + 1.0
    for s0, s1 in zip(edges[:-1], edges[1:]):
        ends = apply(inv, np.stack([rear + s0 * d, rear + s1 * d]))
        g = grow_mm / spacing + 1
        lo = np.maximum(np.floor(ends.min(0) - g).astype(int), 0)
        hi = np.minimum(np.ceil(ends.max(0) + g).astype(int) + 1, array.shape)
        if np.any(hi <= lo):
            continue
        kk, jj, ii = np.meshgrid(*(np.arange(a_, b_) for a_, b_ in zip(lo, hi)), indexing="ij")
        idx = np.stack([kk.ravel(), jj.ravel(), ii.ravel()], 1).astype(float)
        pts = idx @ affine[:3, :3].T + affine[:3, 3]
        v = pts - rear
        sv = v @ d
        rad = np.linalg.norm(v - sv[:, None] * d, axis=1)
        near = (rad <= r + half_diag) & (sv >= -half_diag) & (sv <= length_mm + half_diag)
        if not near.any():
            continue
        pn = pts[near][:, None, :] + offs[None]
        vn = pn - rear
        sn = vn @ d
        rn = np.linalg.norm(vn - sn[..., None] * d, axis=2)
        cov = ((rn <= r) & (sn >= 0) & (sn <= length_mm)).mean(1)
        ids = idx[near].astype(int)
        cov_full[ids[:, 0], ids[:, 1], ids[:, 2]] = cov  # the same value wherever boxes overlap
    nz = np.argwhere(cov_full > 0)
    if len(nz) == 0:
        return frac
    sig = np.array([0.4 * spacing[0], psf_sigma_mm, psf_sigma_mm]) / spacing
    pad = np.ceil(3.0 * sig).astype(int) + 1
    lo = np.maximum(nz.min(0) - pad, 0)
    hi = np.minimum(nz.max(0) + pad + 1, array.shape)
    box = tuple(slice(int(a_), int(b_)) for a_, b_ in zip(lo, hi))
    fb = cov_full[box]
    if psf_sigma_mm > 0:
        fb = ndi.gaussian_filter(fb, sig, mode="constant", truncate=3.0)
    frac[box] = fb
    a = array[box]
    a[...] = a * (1 - fb) + metal_hu * fb
    return frac


def add_metal_streaks(array: np.ndarray, metal_fraction: np.ndarray, spacing_kji_mm, rng: np.random.Generator,
                      k_hu_per_mm2: float = STREAK_K, starvation_hu_per_mm: float = 200.0, n_angles: int = 48,
                      radius_mm: float = 45.0) -> None:
    """Add beam-hardening streaks and photon-starvation noise around the metal, slice by slice, in place.

    For every axial slice (index k) holding metal: the metal path length ``L(theta, s)`` of each parallel
    ray (projection of the metal fraction), the error sinogram ``-k L^2 + starvation * L * N(0, 1)``,
    ramp-filtered and backprojected over the pixels within *radius_mm* of the metal (see module docstring).
    """
    sp = np.asarray(spacing_kji_mm, float)
    dj, di = sp[1], sp[2]
    theta = np.linspace(0, np.pi, n_angles, endpoint=False)
    ks = np.nonzero(metal_fraction.reshape(metal_fraction.shape[0], -1).max(1) > 0.02)[0]
    J, I = array.shape[1:]
    ds = min(dj, di)
    for k in ks:
        f = metal_fraction[k]
        mj, mi = np.nonzero(f > 0.01)
        w = f[mj, mi] * dj * di  # mm^2 of metal per pixel
        y, x = mj * dj, mi * di
        cy, cx = float(np.average(y, weights=w)), float(np.average(x, weights=w))
        j0, j1 = max(0, int((cy - radius_mm) / dj)), min(J, int((cy + radius_mm) / dj) + 1)
        i0, i1 = max(0, int((cx - radius_mm) / di)), min(I, int((cx + radius_mm) / di) + 1)
        gy, gx = np.meshgrid(np.arange(j0, j1) * dj - cy, np.arange(i0, i1) * di - cx, indexing="ij")
        nb = int(np.ceil(2 * radius_mm * 1.5 / ds)) | 1
        s_axis = (np.arange(nb) - nb // 2) * ds
        freqs = np.fft.rfftfreq(2 * nb, d=ds)
        ramp = np.abs(freqs)
        recon = np.zeros(gy.shape, np.float64)
        for th in theta:
            c, s_ = np.cos(th), np.sin(th)
            sm = (x - cx) * c + (y - cy) * s_
            L = np.bincount(np.clip(np.rint(sm / ds).astype(int) + nb // 2, 0, nb - 1), weights=w, minlength=nb) / ds
            err = -k_hu_per_mm2 * L ** 2 + starvation_hu_per_mm * L * rng.standard_normal(nb)
            q = np.fft.irfft(np.fft.rfft(err, 2 * nb) * ramp, 2 * nb)[:nb]
            recon += np.interp(gx * c + gy * s_, s_axis, q)
        recon *= np.pi / n_angles
        array[k, j0:j1, i0:i1] += recon.astype(np.float32)


def control_grid(planning: Volume, control_from_planning: np.ndarray, *, spacing_kji_mm=None, shape_kji=None,
                 centre_lps_mm=None, fov_z_mm: float | None = None) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine and shape of an axis-aligned control grid.

    By default the planning grid's spacing and extent; *spacing_kji_mm* / *shape_kji* give another grid
    centred on *centre_lps_mm* (control frame; default: the moved planning centre); *fov_z_mm* keeps only
    that many mm of slices around *centre_lps_mm* (a shorter scan).
    """
    lo, hi = planning.bounds_lps_mm()
    sp = np.asarray(spacing_kji_mm if spacing_kji_mm is not None else np.abs(planning.spacing_mm), float)
    if centre_lps_mm is None:
        centre_lps_mm = apply(control_from_planning, (np.asarray(lo) + np.asarray(hi)) / 2)
    c = np.asarray(centre_lps_mm, float)
    if shape_kji is None:
        ext = np.asarray(hi) - np.asarray(lo)  # x, y, z
        shape = [int(round(ext[2] / sp[0])) + 1, int(round(ext[1] / sp[1])) + 1, int(round(ext[0] / sp[2])) + 1]
    else:
        shape = list(shape_kji)
    if fov_z_mm is not None:
        shape[0] = min(shape[0], int(round(fov_z_mm / sp[0])) + 1)
    half = (np.asarray(shape) - 1) / 2 * sp  # k, j, i
    origin = c - np.array([half[2], half[1], half[0]])
    return axis_aligned_affine(tuple(sp), tuple(origin)), (int(shape[0]), int(shape[1]), int(shape[2]))


def make_control_ct(planning: Volume, entry_lps_mm, target_lps_mm, *, seed: int = 0, angle_deg: float = 2.0,
                    offset_mm: float = 2.0, short_of_target_mm: float = 5.0, diameter_mm: float = 2.0,
                    length_mm: float = 300.0, rotation_deg: float = 5.0, translation_mm: float = 10.0,
                    rotation_centre_lps_mm=None, spacing_kji_mm=None, shape_kji=None, fov_z_mm: float | None = None,
                    grid_centre_lps_mm=None, noise_hu: float = 20.0, streaks: bool = True,
                    metal_hu: float = METAL_HU, extra_instruments: int = 0,
                    instrument: bool = True) -> tuple[Volume, ControlTruth]:
    """A synthetic control CT of *planning* with a deviated instrument and a rigid patient motion.

    Parameters
    ----------
    planning : Volume
        Planning CT (HU, LPS).
    entry_lps_mm, target_lps_mm : (3,)
        The planned line (skin or bone entry -> target), planning frame.
    seed : int
        Seed of every random draw (directions of the deviation and motion, noise).
    angle_deg, offset_mm, short_of_target_mm : float
        Deviation from the plan (see :func:`deviated_path`).
    diameter_mm, length_mm, metal_hu : float
        Instrument (the default 300 mm leaves the body: a trocar or pin; a screw is its own length).
    rotation_deg, translation_mm : float
        Patient motion: a rotation of *rotation_deg* about a random axis through *rotation_centre_lps_mm*
        (default: the target), then a translation of length *translation_mm* in a random direction.
    spacing_kji_mm, shape_kji, fov_z_mm, grid_centre_lps_mm :
        Control grid (see :func:`control_grid`).
    noise_hu : float
        Standard deviation of the added white noise (HU).
    streaks : bool
        Add metal streaks (slower).
    extra_instruments : int
        Number of further instruments (parallel to the first, 8 mm beside it) for failure cases.
    instrument : bool
        False: no instrument (failure case).

    Returns
    -------
    (Volume, ControlTruth)
    """
    rng = np.random.default_rng(seed)
    e, t = np.asarray(entry_lps_mm, float), np.asarray(target_lps_mm, float)
    tip_p, d_p = deviated_path(e, t, angle_deg, offset_mm, short_of_target_mm, rng)
    axis = unit(rng.normal(size=3))
    R = rotation_about(axis, rotation_deg)
    tr = translation_mm * unit(rng.normal(size=3))
    M = rigid(R, tr, t if rotation_centre_lps_mm is None else rotation_centre_lps_mm)
    aff_c, shape_c = control_grid(planning, M, spacing_kji_mm=spacing_kji_mm, shape_kji=shape_kji,
                                  centre_lps_mm=grid_centre_lps_mm, fov_z_mm=fov_z_mm)
    # control index -> control world -> planning world -> planning index
    m = np.linalg.inv(planning.affine) @ np.linalg.inv(M) @ aff_c
    arr = ndi.affine_transform(planning.array, m[:3, :3], offset=m[:3, 3], output_shape=shape_c, order=1,
                               mode="constant", cval=AIR_HU).astype(np.float32)
    sp = np.linalg.norm(aff_c[:3, :3], axis=0)
    tip_c = apply(M, tip_p)
    d_c = R @ d_p
    frac = np.zeros(shape_c, np.float32)
    if instrument:
        frac = insert_cylinder(arr, aff_c, tip_c, d_c, length_mm, diameter_mm, metal_hu)
        side = random_perpendicular(d_c, rng)
        for n in range(extra_instruments):
            frac = np.maximum(frac, insert_cylinder(arr, aff_c, tip_c + 8.0 * (n + 1) * side - 3.0 * d_c, d_c,
                                                    length_mm, diameter_mm, metal_hu))
    if streaks and frac.any():
        add_metal_streaks(arr, frac, sp, rng)
    if noise_hu > 0:
        arr += rng.normal(0.0, noise_hu, arr.shape).astype(np.float32)
    vol = Volume(arr, aff_c, AcquisitionInfo(modality="CT", source_format="synthetic-control"))
    truth = ControlTruth(control_from_planning=M, tip_planning_lps_mm=tip_p, tip_control_lps_mm=tip_c,
                         direction_planning_unit=d_p, rear_planning_lps_mm=tip_p - length_mm * d_p,
                         angle_deg=float(angle_deg), offset_mm=float(offset_mm),
                         short_of_target_mm=float(short_of_target_mm), diameter_mm=float(diameter_mm),
                         rotation_deg=float(rotation_deg), translation_mm=float(translation_mm))
    return vol, truth


def random_control_ct(planning: Volume, entry_lps_mm, target_lps_mm, seed: int, *, max_angle_deg: float = 5.0,
                      max_offset_mm: float = 4.0, max_short_mm: float = 15.0, diameter_range_mm=(1.0, 3.0),
                      max_rotation_deg: float = 10.0, max_translation_mm: float = 20.0,
                      **kwargs) -> tuple[Volume, ControlTruth]:
    """:func:`make_control_ct` with the deviation, instrument and motion drawn uniformly in the given ranges."""
    rng = np.random.default_rng([seed, 7])
    return make_control_ct(planning, entry_lps_mm, target_lps_mm, seed=seed,
                           angle_deg=rng.uniform(0, max_angle_deg), offset_mm=rng.uniform(0, max_offset_mm),
                           short_of_target_mm=rng.uniform(0, max_short_mm),
                           diameter_mm=rng.uniform(*diameter_range_mm),
                           rotation_deg=rng.uniform(0, max_rotation_deg),
                           translation_mm=rng.uniform(0, max_translation_mm), **kwargs)
