"""Simulated fluoroscopy: digitally reconstructed radiographs (DRR) ray-cast through the CT.

Model
-----
A point source and a flat detector (C-arm): the central ray goes from the source through the
isocentre (usually the target) to the detector centre. For every detector pixel the line integral
of the linear attenuation coefficient mu along the source -> pixel ray is computed by marching with
a fixed step and trilinear interpolation (Beer-Lambert: I = I0 exp(-integral mu dl)).

HU -> mu: ``mu = mu_water (1 + HU / 1000)``, clipped at 0 (definition of the Hounsfield unit;
Hounsfield, Br J Radiol 1973). ``mu_water = 0.0195 /mm`` is water at about 70 keV effective energy
(NIST XCOM: 0.194 cm^2/g at 70 keV) -- a configurable default, not a scanner measurement.

Default geometry (configurable defaults typical of mobile C-arms, no single published source):
source-detector distance 1100 mm, source-isocentre distance 750 mm, 300 x 300 mm flat detector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from osteoplan.errors import InputError
from osteoplan.imaging.volume import Volume

#: Linear attenuation of water (1/mm) at ~70 keV (NIST XCOM mass attenuation 0.194 cm^2/g). Configurable.
MU_WATER_PER_MM = 0.0195


def hu_to_mu(hu: np.ndarray, mu_water: float = MU_WATER_PER_MM) -> np.ndarray:
    """Linear attenuation (1/mm) from HU: ``mu_water * (1 + HU/1000)``, clipped at 0; float32."""
    return np.maximum(mu_water * (1.0 + np.asarray(hu, np.float32) / 1000.0), 0.0).astype(np.float32)


@dataclass(frozen=True)
class CArmGeometry:
    """Point-source / flat-detector projection geometry (LPS mm).

    Attributes
    ----------
    isocentre_lps_mm : (3,) array
        Point on the central ray at ``source_isocentre_mm`` from the source.
    direction : (3,) unit array
        Central ray direction, source -> detector.
    detector_u : (3,) unit array
        LPS direction of increasing detector column (image right); orthogonal to ``direction``.
    source_detector_mm : float
        Source-to-image distance (SID), mm.
    source_isocentre_mm : float
        Source-to-isocentre distance, mm (magnification at the isocentre = SDD / SOD).
    detector_size_mm : (float, float)
        Detector width, height in mm.
    n_pixels : (int, int)
        Detector columns, rows.
    mirror : bool
        Display the image mirrored left-right (as radiographs are hung "facing the patient" whatever
        side the source is on): then ``detector_v = -(direction x detector_u)``.
    """

    isocentre_lps_mm: np.ndarray
    direction: np.ndarray
    detector_u: np.ndarray
    source_detector_mm: float = 1100.0
    source_isocentre_mm: float = 750.0
    detector_size_mm: tuple[float, float] = (300.0, 300.0)
    n_pixels: tuple[int, int] = (512, 512)
    mirror: bool = False

    def __post_init__(self) -> None:
        d = np.asarray(self.direction, float)
        d = d / np.linalg.norm(d)
        u = np.asarray(self.detector_u, float)
        u = u - (u @ d) * d
        if np.linalg.norm(u) < 1e-9:
            raise InputError("The detector row direction is parallel to the central ray; choose another.")
        u = u / np.linalg.norm(u)
        object.__setattr__(self, "direction", d)
        object.__setattr__(self, "detector_u", u)
        object.__setattr__(self, "isocentre_lps_mm", np.asarray(self.isocentre_lps_mm, float).reshape(3))
        if not (0 < self.source_isocentre_mm < self.source_detector_mm):
            raise InputError("The isocentre must lie between the source and the detector (0 < SOD < SDD).")

    @property
    def detector_v(self) -> np.ndarray:
        """LPS direction of increasing detector row (image down): ``direction x u`` (negated when mirrored)."""
        v = np.cross(self.direction, self.detector_u)
        return -v if self.mirror else v

    @property
    def source_lps_mm(self) -> np.ndarray:
        """Source position (3,)."""
        return self.isocentre_lps_mm - self.direction * self.source_isocentre_mm

    @property
    def detector_centre_lps_mm(self) -> np.ndarray:
        """Detector centre (3,)."""
        return self.source_lps_mm + self.direction * self.source_detector_mm

    @property
    def pixel_mm(self) -> tuple[float, float]:
        """Detector pixel size (column, row) in mm."""
        return (self.detector_size_mm[0] / self.n_pixels[0], self.detector_size_mm[1] / self.n_pixels[1])

    @property
    def magnification(self) -> float:
        """Magnification at the isocentre (SDD / SOD)."""
        return self.source_detector_mm / self.source_isocentre_mm

    def pixel_centres(self) -> np.ndarray:
        """LPS positions of the detector pixel centres, shape (rows, cols, 3)."""
        nc, nr = self.n_pixels
        pc, pr = self.pixel_mm
        c = (np.arange(nc) - (nc - 1) / 2.0) * pc
        r = (np.arange(nr) - (nr - 1) / 2.0) * pr
        return (self.detector_centre_lps_mm + r[:, None, None] * self.detector_v
                + c[None, :, None] * self.detector_u)

    def project(self, points_lps: np.ndarray) -> np.ndarray:
        """Project LPS points (..., 3) onto the detector: fractional (row, col) pixel indices (..., 2).

        Raises
        ------
        InputError
            If a point lies behind the source.
        """
        p = np.asarray(points_lps, float)
        rel = p - self.source_lps_mm
        depth = rel @ self.direction
        if np.any(depth <= 0):
            raise InputError("A point to project lies behind the X-ray source.")
        hit = self.source_lps_mm + rel * (self.source_detector_mm / depth)[..., None]
        off = hit - self.detector_centre_lps_mm
        nc, nr = self.n_pixels
        pc, pr = self.pixel_mm
        return np.stack([off @ self.detector_v / pr + (nr - 1) / 2.0, off @ self.detector_u / pc + (nc - 1) / 2.0],
                        axis=-1)

    def magnification_at(self, points_lps: np.ndarray) -> np.ndarray:
        """Magnification SDD / (distance from source along the central ray) at points (..., 3)."""
        depth = (np.asarray(points_lps, float) - self.source_lps_mm) @ self.direction
        return self.source_detector_mm / depth


@numba.njit(parallel=True, fastmath=True, cache=True)
def _raycast(mu, src_idx, pix_idx, step_idx_per_mm, step_mm):  # pragma: no cover - compiled
    K, J, I = mu.shape
    nr, nc = pix_idx.shape[0], pix_idx.shape[1]
    out = np.zeros((nr, nc), dtype=np.float32)
    lo = (-0.5, -0.5, -0.5)
    hi = (K - 0.5, J - 0.5, I - 0.5)
    for r in numba.prange(nr):
        for c in range(nc):
            # ray from source to pixel in index space: p(t) = s + t (q - s), t in [0, 1]
            d0 = pix_idx[r, c, 0] - src_idx[0]
            d1 = pix_idx[r, c, 1] - src_idx[1]
            d2 = pix_idx[r, c, 2] - src_idx[2]
            # clip t to the volume box [-0.5, n - 0.5] (slab method)
            t0, t1 = _clip_to_box((d0, d1, d2), src_idx, lo, hi, 0.0, 1.0)
            if t1 <= t0:
                continue
            # length of the whole ray in mm, from the index-space direction and per-axis spacing
            ln = np.sqrt((d0 * step_idx_per_mm[0]) ** 2 + (d1 * step_idx_per_mm[1]) ** 2
                         + (d2 * step_idx_per_mm[2]) ** 2)
            n_steps = int((t1 - t0) * ln / step_mm) + 1
            dt = (t1 - t0) / n_steps
            acc = 0.0
            for s in range(n_steps):
                t = t0 + (s + 0.5) * dt
                x0 = src_idx[0] + t * d0
                x1 = src_idx[1] + t * d1
                x2 = src_idx[2] + t * d2
                f0 = np.floor(x0)
                f1 = np.floor(x1)
                f2 = np.floor(x2)
                i0 = int(f0)
                i1 = int(f1)
                i2 = int(f2)
                w0 = x0 - f0
                w1 = x1 - f1
                w2 = x2 - f2
                v = 0.0
                for a0 in range(2):
                    k = i0 + a0
                    if k < 0 or k >= K:
                        continue
                    wa = w0 if a0 == 1 else 1.0 - w0
                    for a1 in range(2):
                        j = i1 + a1
                        if j < 0 or j >= J:
                            continue
                        wb = w1 if a1 == 1 else 1.0 - w1
                        for a2 in range(2):
                            i = i2 + a2
                            if i < 0 or i >= I:
                                continue
                            wc = w2 if a2 == 1 else 1.0 - w2
                            v += wa * wb * wc * mu[k, j, i]
                acc += v
            out[r, c] = acc * dt * ln
    return out


@numba.njit(fastmath=True, cache=True)
def _joseph_ray(flat, sa, sb, se, p0, p1, ob, oe, gb, ge, nb, ne):  # pragma: no cover - compiled
    """Sum of the bilinear samples of one ray over the voxel planes p0..p1 of its dominant axis.

    *flat*: the padded array, raveled; *sa*, *sb*, *se*: its strides (elements) along the dominant axis and
    the two in-plane axes; in-plane position at plane p = (ob + p gb, oe + p ge) in padded indices.
    """
    acc = np.float32(0.0)
    for p in range(p0, p1 + 1):
        y = ob + p * gb
        x = oe + p * ge
        fy = np.floor(y)
        fx = np.floor(x)
        jy = min(max(int(fy), 0), nb)  # never out of the padded plane, even with rounding at the box's faces
        jx = min(max(int(fx), 0), ne)
        wy = np.float32(y - fy)
        wx = np.float32(x - fx)
        base = np.uint64((p + 1) * sa + jy * sb + jx * se)  # unsigned: no negative-index wraparound test
        v00 = flat[base]
        v01 = flat[base + np.uint64(se)]
        v10 = flat[base + np.uint64(sb)]
        v11 = flat[base + np.uint64(sb + se)]
        lo = v00 + wx * (v01 - v00)
        hi = v10 + wx * (v11 - v10)
        acc += lo + wy * (hi - lo)
    return acc


@numba.njit(fastmath=True, inline="always")
def _clip_to_box(d, src_idx, lo, hi, t0, t1):  # pragma: no cover - compiled
    """The part [t0, t1] of the ray ``src_idx + t * d`` inside the box ``lo[ax] <= x[ax] <= hi[ax]`` (the slab
    method), starting from the part [t0, t1] given; empty when the returned t1 <= t0."""
    for ax in range(3):
        if abs(d[ax]) < 1e-12:
            if src_idx[ax] < lo[ax] or src_idx[ax] > hi[ax]:
                t0 = 2.0
        else:
            ta = (lo[ax] - src_idx[ax]) / d[ax]
            tb = (hi[ax] - src_idx[ax]) / d[ax]
            if ta > tb:
                ta, tb = tb, ta
            if ta > t0:
                t0 = ta
            if tb < t1:
                t1 = tb
    return t0, t1


@numba.njit(fastmath=True, inline="always")
def _ray_planes(d, src_idx, shape, a, t0, t1, st0, st1):  # pragma: no cover - compiled
    """Joseph's set-up of one ray whose part [t0, t1] is inside the volume, with dominant index axis *a*.

    Returns ``(b, e, sa, sb, se, p0, p1, ob, oe, gb, ge)``: the two other index axes, the strides (flat index
    of the padded array) along a, b, e, the first and last plane p0..p1 of axis a the ray crosses, and its
    in-plane position at plane p, ``(ob + p * gb, oe + p * ge)`` (padded index, so plus 1).
    """
    if a == 0:
        b, e = 1, 2
        sa, sb, se = st0, st1, 1
    elif a == 1:
        b, e = 0, 2
        sa, sb, se = st1, st0, 1
    else:
        b, e = 0, 1
        sa, sb, se = 1, st0, st1
    da = d[a]
    xa0 = src_idx[a] + t0 * da
    xa1 = src_idx[a] + t1 * da
    if xa0 > xa1:
        xa0, xa1 = xa1, xa0
    p0 = int(np.ceil(xa0))
    p1 = int(np.floor(xa1))
    if p0 < 0:
        p0 = 0
    if p1 > shape[a] - 1:
        p1 = shape[a] - 1
    # in-plane position at plane p: s + (p - s_a) / d_a * d (plus 1 for the padding)
    gb = d[b] / da
    ge = d[e] / da
    ob = src_idx[b] - src_idx[a] * gb + 1.0
    oe = src_idx[e] - src_idx[a] * ge + 1.0
    return b, e, sa, sb, se, p0, p1, ob, oe, gb, ge


@numba.njit(parallel=True, fastmath=True, cache=True)
def _joseph(padded, shape, src_idx, pix_idx, ray_axis, mm_per_idx):  # pragma: no cover - compiled
    """Joseph's method: one bilinear sample per voxel plane of the ray's dominant index axis.

    ``padded``: the values (K+2, J+2, I+2) with a frame of zeros one voxel thick; ``shape`` the unpadded
    (K, J, I); ``ray_axis`` (rows, cols) the dominant index axis of each ray.
    """
    nr, nc = pix_idx.shape[0], pix_idx.shape[1]
    out = np.zeros((nr, nc), dtype=np.float32)
    flat = padded.ravel()
    st0 = padded.shape[1] * padded.shape[2]
    st1 = padded.shape[2]
    lo = (-0.5, -0.5, -0.5)
    hi = (shape[0] - 0.5, shape[1] - 0.5, shape[2] - 0.5)
    for r in numba.prange(nr):
        for c in range(nc):
            a = ray_axis[r, c]
            d = (pix_idx[r, c, 0] - src_idx[0], pix_idx[r, c, 1] - src_idx[1], pix_idx[r, c, 2] - src_idx[2])
            # clip t (source -> pixel in [0, 1]) to the volume box [-0.5, n - 0.5]
            t0, t1 = _clip_to_box(d, src_idx, lo, hi, 0.0, 1.0)
            if t1 <= t0:
                continue
            b, e, sa, sb, se, p0, p1, ob, oe, gb, ge = _ray_planes(d, src_idx, shape, a, t0, t1, st0, st1)
            acc = _joseph_ray(flat, sa, sb, se, p0, p1, ob, oe, gb, ge, shape[b], shape[e])
            ln = np.sqrt((d[0] * mm_per_idx[0]) ** 2 + (d[1] * mm_per_idx[1]) ** 2 + (d[2] * mm_per_idx[2]) ** 2)
            out[r, c] = acc * ln / abs(d[a])
    return out


@numba.njit(parallel=True, fastmath=True, cache=True)
def _joseph_masks(padded, extent, shape, src_idx, pix_idx, ray_axis, mm_per_idx):  # pragma: no cover - compiled
    """:func:`_joseph` of several volumes on one grid at once, each ray summed only over the planes holding values.

    ``padded``: (C, K+2, J+2, I+2), each channel framed by zeros; ``extent`` (C, 3, 2): per channel and index
    axis, the first and last plane (unpadded index) holding a non-zero value (the channel's box). A sample at
    plane p reads that plane only, at the voxels within one of its in-plane position, so every sample of a ray
    outside the channel's box (grown by 2 voxels) is an exact zero: each ray is summed over the planes where it
    is inside, the same terms as :func:`_joseph` less zeros (a different float32 rounding of the sum only).
    The ray set-up (clipping, dominant axis, in-plane steps) is :func:`_joseph`'s, computed once for every channel.
    """
    nch = padded.shape[0]
    nr, nc = pix_idx.shape[0], pix_idx.shape[1]
    out = np.zeros((nch, nr, nc), dtype=np.float32)
    st0 = padded.shape[2] * padded.shape[3]
    st1 = padded.shape[3]
    lo = (-0.5, -0.5, -0.5)
    hi = (shape[0] - 0.5, shape[1] - 0.5, shape[2] - 0.5)
    for r in numba.prange(nr):
        for c in range(nc):
            a = ray_axis[r, c]
            d = (pix_idx[r, c, 0] - src_idx[0], pix_idx[r, c, 1] - src_idx[1], pix_idx[r, c, 2] - src_idx[2])
            t0, t1 = _clip_to_box(d, src_idx, lo, hi, 0.0, 1.0)
            if t1 <= t0:
                continue
            b, e, sa, sb, se, p0, p1, ob, oe, gb, ge = _ray_planes(d, src_idx, shape, a, t0, t1, st0, st1)
            da = d[a]
            ln = np.sqrt((d[0] * mm_per_idx[0]) ** 2 + (d[1] * mm_per_idx[1]) ** 2 + (d[2] * mm_per_idx[2]) ** 2)
            for ch in range(nch):
                # the part of the ray within the channel's box grown by 2 voxels (a sample reads the voxels within
                # one of it in its plane: outside, every sample is an exact zero; 2 leaves room for rounding)
                box_lo = (extent[ch, 0, 0] - 2.0, extent[ch, 1, 0] - 2.0, extent[ch, 2, 0] - 2.0)
                box_hi = (extent[ch, 0, 1] + 2.0, extent[ch, 1, 1] + 2.0, extent[ch, 2, 1] + 2.0)
                u0, u1 = _clip_to_box(d, src_idx, box_lo, box_hi, t0, t1)
                if u1 <= u0:
                    continue
                ya0 = src_idx[a] + u0 * da
                ya1 = src_idx[a] + u1 * da
                if ya0 > ya1:
                    ya0, ya1 = ya1, ya0
                q0 = max(p0, extent[ch, a, 0], int(np.floor(ya0)))
                q1 = min(p1, extent[ch, a, 1], int(np.ceil(ya1)))
                if q1 < q0:
                    continue
                acc = _joseph_ray(padded[ch].ravel(), sa, sb, se, q0, q1, ob, oe, gb, ge, shape[b], shape[e])
                out[ch, r, c] = acc * ln / abs(da)
    return out


class DRRVolume:
    """Values to project (e.g. attenuation), prepared once and shared by every view of a plan.

    Holds the values with a frame of zeros one voxel thick (so that Joseph's bilinear reads never test
    bounds): the views of a plan (AP, lateral, bull's-eye, progression) reuse it instead of converting HU
    and copying the CT for each view.

    Parameters
    ----------
    volume : Volume
        Values indexed (k, j, i) (for a DRR: mu in 1/mm, see :func:`prepare_drr`); outside the array the
        value is 0.

    Raises
    ------
    InputError
        The volume's axes are not orthogonal (resample the CT first).
    """

    def __init__(self, volume: Volume) -> None:
        A = volume.affine[:3, :3]
        if not np.allclose(A.T @ A, np.diag(np.diag(A.T @ A)), atol=1e-6):
            raise InputError("The DRR renderer needs orthogonal volume axes; resample the CT first.")
        self.volume = volume
        self.array = np.ascontiguousarray(volume.array, dtype=np.float32)
        K, J, I = self.array.shape
        self.padded = np.zeros((K + 2, J + 2, I + 2), np.float32)
        self.padded[1:-1, 1:-1, 1:-1] = self.array


def prepare_drr(volume: Volume, mu_water: float = MU_WATER_PER_MM) -> DRRVolume:
    """The CT's attenuation (:func:`hu_to_mu`) prepared for :func:`render_drr`, once for all the views of a plan.

    Parameters
    ----------
    volume : Volume
        CT in HU, indexed (k, j, i).
    mu_water : float
        Linear attenuation of water, 1/mm.

    Returns
    -------
    DRRVolume
    """
    return DRRVolume(volume.with_array(hu_to_mu(volume.array, mu_water)))


def line_integrals(mu_volume: Volume | DRRVolume, geometry: CArmGeometry, step_mm: float | None = None
                   ) -> np.ndarray:
    """Line integral of the volume's values along every source -> pixel ray.

    Two quadratures of the same trilinear image:

    * ``step_mm=None`` (default): Joseph's method (Joseph, IEEE Trans Med Imaging 1982;1(3):192-196): each ray
      is sampled once per voxel plane of its dominant index axis (the one it advances fastest along, so it
      moves at most one voxel along the two others from plane to plane), by bilinear interpolation in that
      plane, each sample weighted by the ray's length between two planes. One sample per voxel, 4 reads each.
    * ``step_mm`` a number: fixed step along the ray with trilinear interpolation (8 reads per sample), the
      reference the former renderer used; several times slower at the usual 0.5 mm step.

    On CThead (512 x 512 lateral and AP views) the two differ by 0.1-0.3 % of the mean optical depth
    (tests/views/test_drr_fast.py; benchmarks/bench_drr.py).

    Parameters
    ----------
    mu_volume : Volume or DRRVolume
        Values to integrate (e.g. linear attenuation in 1/mm from :func:`hu_to_mu`, or a 0/1 mask),
        indexed (k, j, i); outside the array the value is 0. A :class:`DRRVolume` shares its prepared
        copies between calls.
    geometry : CArmGeometry
    step_mm : float, optional
        Fixed sampling step along the ray (mm) for the reference method; None for Joseph's method.

    Returns
    -------
    numpy.ndarray, float32, shape (rows, cols)
        Integral of value x length (for mu in 1/mm: dimensionless optical depth).

    Raises
    ------
    InputError
        The volume's axes are not orthogonal.
    """
    prep = mu_volume if isinstance(mu_volume, DRRVolume) else DRRVolume(mu_volume)
    vol = prep.volume
    src = vol.world_to_index(geometry.source_lps_mm).astype(np.float64)
    pix = np.ascontiguousarray(vol.world_to_index(geometry.pixel_centres()), dtype=np.float64)
    # mm per index unit along each array axis (the affine columns' norms, orthogonal axes checked above)
    sp = vol.spacing_mm.astype(np.float64)
    if step_mm is not None:
        return _raycast(prep.array, src, pix, sp, float(step_mm))
    ray_axis = np.argmax(np.abs(pix - src), axis=-1).astype(np.int8)
    return _joseph(prep.padded, np.asarray(vol.shape, np.int64), src, pix, ray_axis, sp)


def mask_line_integrals(volume: Volume, masks, geometry: CArmGeometry) -> list[np.ndarray]:
    """:func:`line_integrals` (Joseph's method) of several masks on the grid of *volume*, in one pass.

    Equal, value for value (float32), to ``line_integrals(volume.with_array(m.astype(np.float32)), geometry)``
    for each mask (tests/views/test_drr_masks.py): the rays are set up once, and each mask is summed only over
    the voxel planes (of the ray's dominant axis) that hold some of it, the other planes adding exact zeros.
    The structure outlines of a fluoroscopy view (a few small vessels and canals in a crop of the CT) cost
    a fraction of one projection per structure this way.

    Parameters
    ----------
    volume : Volume
        The grid (its array is not read), indexed (k, j, i); orthogonal axes.
    masks : sequence of numpy.ndarray, shape (K, J, I)
        Boolean (or 0/1) masks on that grid.
    geometry : CArmGeometry

    Returns
    -------
    list of numpy.ndarray, float32, shape (rows, cols)
        Path length (mm) of each ray inside each mask (bilinearly interpolated), in the order of *masks*.

    Raises
    ------
    InputError
        The volume's axes are not orthogonal, or a mask's shape is not the volume's.
    """
    A = volume.affine[:3, :3]
    if not np.allclose(A.T @ A, np.diag(np.diag(A.T @ A)), atol=1e-6):
        raise InputError("The DRR renderer needs orthogonal volume axes; resample the CT first.")
    masks = list(masks)
    K, J, I = volume.shape
    if any(np.shape(m) != (K, J, I) for m in masks):
        raise InputError("A mask to project does not have the volume's shape.")
    if not masks:
        return []
    padded = np.zeros((len(masks), K + 2, J + 2, I + 2), np.float32)
    extent = np.zeros((len(masks), 3, 2), np.int64)
    for ch, m in enumerate(masks):
        m = np.asarray(m)
        padded[ch, 1:-1, 1:-1, 1:-1] = m
        for ax in range(3):
            nz = np.flatnonzero(m.any(axis=tuple(x for x in range(3) if x != ax)))
            extent[ch, ax] = (nz[0], nz[-1]) if nz.size else (1, 0)  # empty: no plane
    src = volume.world_to_index(geometry.source_lps_mm).astype(np.float64)
    pix = np.ascontiguousarray(volume.world_to_index(geometry.pixel_centres()), dtype=np.float64)
    sp = volume.spacing_mm.astype(np.float64)
    ray_axis = np.argmax(np.abs(pix - src), axis=-1).astype(np.int8)
    out = _joseph_masks(padded, extent, np.asarray(volume.shape, np.int64), src, pix, ray_axis, sp)
    return list(out)


def render_drr(volume: Volume | DRRVolume, geometry: CArmGeometry, step_mm: float | None = None,
               mu_water: float = MU_WATER_PER_MM) -> np.ndarray:
    """Optical depth image (rows, cols) = integral of mu along each ray (see :func:`line_integrals`).

    *volume* is a CT in HU, or its attenuation prepared once by :func:`prepare_drr` (then *mu_water* is the
    one given there).
    """
    prep = volume if isinstance(volume, DRRVolume) else prepare_drr(volume, mu_water)
    return line_integrals(prep, geometry, step_mm=step_mm)


# ------------------------------------------------------------------------------- standard views
def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def standard_geometry(view: str, isocentre_lps_mm: np.ndarray, path_direction: np.ndarray | None = None,
                      beam_direction: np.ndarray | None = None, **kwargs) -> CArmGeometry:
    """C-arm geometry for a named view.

    Views
    -----
    ``ap_open_mouth``, ``ap``
        Beam anterior -> posterior (+P), centred on the isocentre (the dens, the vertebra); image right =
        patient left, up = superior (as a radiograph is hung). The same geometry: the name says how the
        C1-C2 are centred (through the open mouth) for the upper cervical spine.
    ``lateral``
        Beam from the patient's right to left (+L); image left = anterior, up = superior (as a lateral
        radiograph viewed from the patient's left, and as the sagittal reformats).
    ``bullseye``
        Beam along the planned path (skin -> target): the path projects to a point.
    ``progression``
        Beam perpendicular to the path, closest to AP (+P): shows the instrument's depth.

    ``beam_direction`` (unit LPS, source -> detector) overrides the bull's-eye / progression beam, e.g.
    with the planner's C-arm ``detector_direction_lps`` so the picture matches the guidance angles.
    """
    iso = np.asarray(isocentre_lps_mm, float)
    S = np.array([0.0, 0.0, 1.0])
    if view in ("ap_open_mouth", "ap"):
        d, u = np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])
    elif view == "lateral":
        d, u = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    elif view in ("bullseye", "progression"):
        if path_direction is None:
            raise InputError(f"The {view} view needs the path direction.")
        p = _unit(path_direction)
        if beam_direction is not None:
            d = _unit(beam_direction)
        elif view == "bullseye":
            d = p
        elif view == "progression":
            ap = np.array([0.0, 1.0, 0.0])
            d = ap - (ap @ p) * p
            if np.linalg.norm(d) < 1e-6:
                d = np.array([1.0, 0.0, 0.0]) - p[0] * p
            d = _unit(d)
        # image down as close to inferior as possible: u = down x d ... choose u so that v ~ -S
        down = -S - ((-S) @ d) * d
        if np.linalg.norm(down) < 1e-6:
            down = np.array([0.0, 1.0, 0.0]) - d[1] * d
        down = _unit(down)
        u = np.cross(down, d)  # then v = d x u = down
    else:
        raise InputError(f"Unknown fluoroscopy view '{view}'; use ap, ap_open_mouth, lateral, bullseye or "
                         "progression.")
    if view in ("ap_open_mouth", "ap", "lateral"):
        # v = d x u must point inferior; for AP: +P x +L = -S (inferior) ok; lateral: +L x +P = +S -> flip u
        if np.cross(d, u)[2] > 0:
            u = -u
    # Display convention (as radiographs are hung): frontal views with the patient's left on the image right,
    # lateral views with anterior on the image LEFT (as viewed from the patient's left, the same side as the
    # sagittal reformats of osteoplan.views.reformat); mirror the image when the beam comes from the other side.
    mirror = False
    frontal = abs(d[1]) >= abs(d[0])
    if (frontal and u[0] < 0) or (not frontal and u[1] < 0):
        u = -u
        mirror = True
    return CArmGeometry(iso, d, u, mirror=mirror, **kwargs)


DRR_VIEWS = ("ap_open_mouth", "lateral", "bullseye", "progression")


def fit_path_geometry(geometry: CArmGeometry, paths, margin_mm: float | None = None) -> CArmGeometry:
    """The C-arm of *geometry* moved and its detector grown so that every path projects whole, with a margin.

    The C-arm is moved across its central ray (the table panned, as in the room) by the least that puts the
    paths' skin entries, bone entries, targets and screw heads with *margin_mm* plus the instrument's radius
    inside the field at the isocentre (:func:`osteoplan.views.geometry.fit_square_frame`, the isocentre plane);
    then, because a point source magnifies points nearer to it more, the square detector is grown, when needed,
    until the exact projections of those points and their margin lie on it (same pixel count, so the pixels stay
    square and a little larger). A path that fits keeps the geometry unchanged.

    Parameters
    ----------
    geometry : CArmGeometry
        The view as planned (isocentre at the target).
    paths : sequence of PathSpec
    margin_mm : float, optional
        Default :data:`osteoplan.views.geometry.PATH_MARGIN_MM`.

    Returns
    -------
    CArmGeometry
    """
    from dataclasses import replace

    from osteoplan.views.geometry import PATH_MARGIN_MM, fit_square_frame, path_points_lps

    paths = list(paths)
    margin = (PATH_MARGIN_MM if margin_mm is None else float(margin_mm)) + max(
        p.instrument_diameter_mm for p in paths) / 2.0
    pts = path_points_lps(paths)
    g = geometry
    u, v = g.detector_u, g.detector_v
    field_mm = min(g.detector_size_mm) / g.magnification
    rel = pts - g.isocentre_lps_mm
    c2, _ = fit_square_frame(np.stack([rel @ u, rel @ v], axis=-1), field_mm, margin)
    if np.any(c2 != 0.0):
        g = replace(g, isocentre_lps_mm=g.isocentre_lps_mm + c2[0] * u + c2[1] * v)
    # the exact projections (depth-dependent magnification): the detector half-side they and their margin need
    off = g.project(pts) - (np.asarray(g.n_pixels[::-1], float) - 1.0) / 2.0   # (row, col) pixels from centre
    need_mm = np.abs(off) * np.asarray(g.pixel_mm[::-1]) + margin * g.magnification_at(pts)[:, None]
    side = 2.0 * float(need_mm.max())
    if side > min(g.detector_size_mm):
        g = replace(g, detector_size_mm=(side, side))
    return g

#: Levels whose AP view is centred through the open mouth (the mouth projects over C1-C2 only).
OPEN_MOUTH_LEVELS = ("C1", "C2")


def ap_view_name(levels) -> str:
    """Name of the AP fluoroscopy view for paths at *levels* (iterable of ``"C2"``, ``"L1"``... or None).

    ``"ap_open_mouth"`` when every level is C1/C2 or unknown (plans before schema 1.2 are C2 plans), else
    ``"ap"`` (same geometry; the open mouth only uncovers C1-C2).
    """
    return "ap_open_mouth" if all(lv is None or lv in OPEN_MOUTH_LEVELS for lv in levels) else "ap"


def level_structures(paths, labelmap, own_side: bool = False) -> tuple[str, ...]:
    """Names of the bone outlines worth drawing on the fluoroscopy of paths at named levels: the pedicles (both sides: the
    "eyes" of the AP view and the ring of the bull's-eye) and the vertebral body (the tip's depth on the
    lateral view) of every level a path is at, those present in *labelmap* (``pedicle_L1_left``,
    ``vertebral_body_L1``...). *own_side*: only the pedicle each path crosses (the bull's-eye ring)."""
    out: list[str] = []
    for p in paths:
        lv = getattr(p, "level", None)
        if not lv:
            continue
        side = getattr(p, "side", None)
        sides = (side,) if own_side and side in ("left", "right") else ("left", "right")
        for n in tuple(f"pedicle_{lv}_{sd}" for sd in sides) + (f"vertebral_body_{lv}",):
            if n not in out and labelmap is not None and labelmap.has(n):
                out.append(n)
    return tuple(out)


def full_chord_mask(volume: Volume, geometry: CArmGeometry, fraction: float = 0.9) -> np.ndarray:
    """Detector pixels whose source -> pixel ray crosses the CT box over at least *fraction* of the median chord.

    A ray that leaves the CT through its top or bottom face sees only part of the body; its optical depth
    is low for that reason only. The display window is taken from the other pixels, so that the edge of
    the scanned range (close to the target on a short or coarse CT) does not wash the picture out (on
    abdomen-pelvis-ts, whose scan starts at T11, the L1 AP view was white over the whole spine before).

    Parameters
    ----------
    volume : Volume
        The CT (only its grid is used).
    geometry : CArmGeometry
    fraction : float
        Share of the median in-box chord length (over the rays that meet the box) a ray must reach;
        configurable default, no published source.

    Returns
    -------
    numpy.ndarray, bool, shape (rows, cols)
        True where the ray's in-box length is at least ``fraction`` x the median (all False when no ray meets
        the box).
    """
    src = volume.world_to_index(geometry.source_lps_mm)
    pix = volume.world_to_index(geometry.pixel_centres())
    n = np.asarray(volume.shape, float)
    sp = np.asarray(volume.spacing_mm, float)
    # slab method per index axis, on contiguous (rows, cols) planes (reductions over a last axis of 3 are slow)
    t0 = t1 = sq = None
    for a in range(3):
        d = pix[..., a] - src[a]
        with np.errstate(divide="ignore", invalid="ignore"):
            ta = (-0.5 - src[a]) / d
            tb = (n[a] - 0.5 - src[a]) / d
        flat = np.abs(d) < 1e-12
        inside = -0.5 <= src[a] <= n[a] - 0.5
        lo = np.where(flat, -np.inf if inside else np.inf, np.minimum(ta, tb))
        hi = np.where(flat, np.inf if inside else -np.inf, np.maximum(ta, tb))
        t0 = lo if t0 is None else np.maximum(t0, lo)
        t1 = hi if t1 is None else np.minimum(t1, hi)
        x = d * sp[a]
        sq = x * x if sq is None else sq + x * x
    t0 = np.clip(t0, 0.0, 1.0)
    t1 = np.clip(t1, 0.0, 1.0)
    length = np.maximum(t1 - t0, 0.0) * np.sqrt(sq)
    inside = length[length > 0]
    if inside.size == 0:
        return np.zeros(length.shape, bool)
    return length >= fraction * float(np.median(inside))


#: Structures whose silhouettes are outlined on the simulated fluoroscopy views (when segmented).
DRR_STRUCTURES = ("spinal_canal", "vertebral_artery_left", "vertebral_artery_right", "vertebral_artery_canal_left",
                  "vertebral_artery_canal_right", "common_carotid_artery_left", "common_carotid_artery_right",
                  "internal_jugular_vein_left", "internal_jugular_vein_right", "airway", "lesion")


def render_drr_view(volume: Volume, path, view: str, labelmap=None, **kwargs) -> bytes:
    """PNG bytes of :func:`drr_figure` (same parameters)."""
    from osteoplan.views.render import figure_png

    return figure_png(drr_figure(volume, path, view, labelmap, **kwargs))


def drr_figure(volume: Volume, path, view: str, labelmap=None, *, n_pixels: int = 512,
               structures: tuple[str, ...] = DRR_STRUCTURES,
               lang: str = "en", step_mm: float | None = None, geometry_kwargs: dict | None = None,
               others: tuple = (), isocentre_lps_mm: np.ndarray | None = None, drr_volume: DRRVolume | None = None):
    """A simulated fluoroscopy view with the planned path projected on it (matplotlib Figure).

    The instrument (trocar, skin to target) is drawn at its real diameter, the screw in white over its
    length, as on the reformats; every outline and path element has a legend entry, and the title is
    followed by the orientation in words (lateral: "anterior left, head up").

    Parameters
    ----------
    volume : Volume
        CT in HU.
    path : PathSpec
        Skin entry, bone entry, target, instrument diameter.
    view : one of :data:`DRR_VIEWS`
    labelmap : LabelMap, optional
        Silhouettes of the listed ``structures`` (those segmented) are outlined in the project colours.
    n_pixels : int
        Detector pixels per side.
    others : tuple of PathSpec
        Other needles drawn with *path* (several levels or both pedicles), each labelled with its level.
    isocentre_lps_mm : (3,) array, optional
        Centre of the AP / lateral views (default the target; several needles: their centroid). Every view is
        then framed to show every drawn path whole, skin entry to target (:func:`fit_path_geometry`: the C-arm
        moved across the beam and the detector grown when needed; the footer gives the detector's size).
    step_mm : float, optional
        Ray sampling of :func:`line_integrals` (None: Joseph's method, one sample per voxel plane).
    drr_volume : DRRVolume, optional
        The CT's attenuation from :func:`prepare_drr`, shared by the views of a plan (default: prepared here).

    The pedicles and vertebral body of each path's level are outlined too when segmented
    (:func:`level_structures`): the bull's-eye then shows the needle end-on inside its pedicle's ring.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig._osteoplan_labels`` holds the edge letters, ``fig._osteoplan_caption`` the orientation words,
        ``fig._osteoplan_geometry`` the :class:`CArmGeometry`.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle, Polygon

    from osteoplan.views.colors import hex_color, structure_color
    from osteoplan.views.i18n import t
    from osteoplan.views.reformat import _Crop
    from osteoplan.views.render import (draw_orientation, end_on_legend_handles, new_figure, orientation_caption,
                                        path_legend_handles)

    beam = getattr(path, "beam_directions", {}).get(view)
    iso = path.target_lps_mm if isocentre_lps_mm is None else np.asarray(isocentre_lps_mm, float)
    paths = (path, *others)
    geo = standard_geometry(view, iso, path.direction, beam_direction=beam,
                            n_pixels=(n_pixels, n_pixels), **(geometry_kwargs or {}))
    geo = fit_path_geometry(geo, paths)  # every path whole, skin entry to target
    od = render_drr(volume if drr_volume is None else drr_volume, geo, step_mm=step_mm)
    # contrast from a window around the target(s) (the spine, not the skull vault), from rays that cross the
    # whole CT (not those leaving it through its top or bottom face)
    tr, tc = geo.project(iso)
    half = int(45.0 * geo.magnification / geo.pixel_mm[0])
    win = (slice(max(int(tr) - half, 0), int(tr) + half), slice(max(int(tc) - half, 0), int(tc) + half))
    roi = od[win]
    full = full_chord_mask(volume, geo)[win]
    keep = (roi > 0) & full
    roi = roi[keep] if np.count_nonzero(keep) >= 0.25 * roi.size else (roi[roi > 0] if np.any(roi > 0)
                                                                          else od.ravel())
    lo, hi = np.percentile(roi, [2, 99.5]) if roi.size else (0.0, 1.0)
    img = np.clip((od - lo) / max(hi - lo, 1e-6), 0, 1)
    fig = new_figure(5.4, 5.8)
    fig.patch.set_facecolor("black")
    ax = fig.add_axes((0.02, 0.12, 0.96, 0.82))
    ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="bilinear")
    ax.set_xticks([])
    ax.set_yticks([])
    handles = []
    if labelmap is not None:
        from osteoplan.views.geometry import PATH_MARGIN_MM, path_points_lps

        spread = max(float(np.linalg.norm(p.target_lps_mm - iso)) for p in paths)
        reach = float(np.max(np.linalg.norm(path_points_lps(paths) - iso, axis=1))) + PATH_MARGIN_MM
        crop = _Crop(volume, iso, max(70.0 + spread, reach))
        small = (n_pixels // 2, n_pixels // 2)
        geo_s = CArmGeometry(geo.isocentre_lps_mm, geo.direction, geo.detector_u, geo.source_detector_mm,
                             geo.source_isocentre_mm, geo.detector_size_mm, small, mirror=geo.mirror)
        outlined, masks = [], []
        for name in tuple(structures) + level_structures(paths, labelmap, own_side=view == "bullseye"):
            if not labelmap.has(name):
                continue
            m = crop.mask(labelmap.get(name))
            if m.any():
                outlined.append(name)
                masks.append(m)
        # every structure's silhouette in one pass (= line_integrals of each mask, value for value)
        for name, sil in zip(outlined, mask_line_integrals(crop.volume, masks, geo_s)):
            if not sil.min() < 0.5 < sil.max():  # no outline in the picture (absent, or covering all of it)
                continue
            col = hex_color(structure_color(name))
            xs = (np.arange(small[0]) + 0.5) * (n_pixels / small[0]) - 0.5
            ax.contour(xs, xs, sil, levels=[0.5], colors=[col], linewidths=1.1)
            handles.append(Line2D([], [], color=col, lw=2, label=t(name, lang)))
    for p in paths:
        _draw_projected_path(ax, geo, p, view, label=p.short_label if others else None)
    ax.set_xlim(-0.5, n_pixels - 0.5)
    ax.set_ylim(n_pixels - 0.5, -0.5)
    labels = draw_orientation(ax, geo.detector_u, geo.detector_v, outside=True, lang=lang)  # off the anatomy
    if not getattr(path, "feasible", True):
        from osteoplan.views.render import draw_not_feasible_banner

        draw_not_feasible_banner(ax, lang, getattr(path, "banner_key", "near_miss_banner"))
    # scale bar at the isocentre plane
    from osteoplan.views.render import draw_scale_bar, nice_length

    px_iso = geo.pixel_mm[0] / geo.magnification
    bar = nice_length(n_pixels * px_iso)
    draw_scale_bar(ax, bar / px_iso, label=t("scale_at_iso", lang).format(bar=f"{bar:g}"))  # below the image
    if view == "bullseye":  # the instrument and screw are seen end-on there: circles, as drawn
        handles += end_on_legend_handles(path, lang)
    else:
        handles += path_legend_handles(path, lang)
    carm = getattr(path, "carm_labels", {}).get(view)
    if carm:
        from osteoplan.locale_fmt import carm_label  # French: OAG / OAD, CRA / CAU (displayed text only)

        carm = carm_label(carm, lang)
    caption = orientation_caption(geo.detector_u, geo.detector_v, lang)
    from osteoplan.views.render import LETTER_GUTTER_IN, layout_with_legend

    ax.set_title(t(f"drr_{view}", lang) + (f"\n{carm}" if carm else "") + f"\n{caption}", color="white",
                 fontsize=10.5, pad=4 + 72 * LETTER_GUTTER_IN, linespacing=1.3)
    layout_with_legend(fig, ax, handles, note_in=0.22, title_in=0.75 if carm else 0.55, gutter_in=LETTER_GUTTER_IN)
    fig.text(0.5, ax.get_position().y0 - (LETTER_GUTTER_IN + 0.02) / fig.get_figheight(),
             t("drr_footer", lang).format(sdd=f"{geo.source_detector_mm:.0f}", sod=f"{geo.source_isocentre_mm:.0f}",
                                          w=f"{geo.detector_size_mm[0]:.0f}", h=f"{geo.detector_size_mm[1]:.0f}",
                                          n=n_pixels),
             color="#bbbbbb", ha="center", va="top", fontsize=7.5)
    fig._osteoplan_labels = labels
    fig._osteoplan_caption = caption
    fig._osteoplan_geometry = geo
    return fig


def _draw_projected_path(ax, geo: CArmGeometry, path, view: str, label: str | None = None) -> None:
    """Draw one path projected on a fluoroscopy view: the instrument at its real diameter (magnified at the
    target), the screw, the entries and the target; on the bull's-eye the instrument end-on (a circle)."""
    from matplotlib.patches import Circle, Polygon

    from osteoplan.views.colors import INSTRUMENT_COLOR, hex_color
    from osteoplan.views.reformat import screw_band_style
    from osteoplan.views.render import draw_point, end_on_styles, point_style

    pts = geo.project(np.stack([path.skin_entry_lps_mm, path.bone_entry_lps_mm, path.target_lps_mm,
                                path.screw_start_lps_mm]))
    rc = pts[:, ::-1]  # (x=col, y=row)
    icol = hex_color(INSTRUMENT_COLOR)
    mag = geo.magnification_at(path.target_lps_mm)
    r_px = path.instrument_diameter_mm / 2.0 * mag / geo.pixel_mm[0]
    rs_px = (path.screw_diameter_mm or 0.0) / 2.0 * mag / geo.pixel_mm[0]

    def band(p0, p1, r):
        dvec = p1 - p0
        n = np.linalg.norm(dvec)
        if n <= 1e-6:
            return None
        nrm = np.array([-dvec[1], dvec[0]]) / n * r
        return [p0 + nrm, p1 + nrm, p1 - nrm, p0 - nrm]

    if view == "bullseye":  # end-on, over the target cross (drawn smaller) so that both circles show
        st = end_on_styles()
        if path.screw_diameter_mm:
            ax.add_patch(Circle(tuple(rc[2]), max(rs_px, 1.0), zorder=6, **st["screw"]))
        ax.add_patch(Circle(tuple(rc[2]), max(r_px, 1.5), zorder=7, **st["instrument"]))
    else:
        b = band(rc[0], rc[2], max(r_px, 1.0))
        if b is not None:
            ax.add_patch(Polygon(b, closed=True, fc=icol, alpha=0.35, ec=icol, lw=1.0))
        if path.screw_diameter_mm:
            b = band(rc[3], rc[2], max(rs_px, 0.8))
            if b is not None:
                ax.add_patch(Polygon(b, **screw_band_style(True)))
        draw_point(ax, "skin_entry", rc[0])
        draw_point(ax, "bone_entry", rc[1])
    if view == "bullseye":  # the cross smaller, under the circles, so that both show
        ax.plot(*rc[2], ls="none", zorder=5, **{**point_style("target"), "ms": 7.0, "mew": 1.5})
    else:
        draw_point(ax, "target", rc[2])
    if label:
        from osteoplan.views.reformat import _label_path

        _label_path(ax, rc[0], rc[1], rc[2], label, along=22.0, beside=12.0)
