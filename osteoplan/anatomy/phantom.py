"""A digital upper-neck CT phantom with exact ground truth (label map and C2/dens landmarks).

The phantom is osteoplan's embedded default input: a synthetic, deterministic CT of the neck
from the skull base (C1) down to T1, built from simple analytic shapes evaluated on the voxel
grid (vectorised numpy, no meshes), with realistic Hounsfield units, a slight blur (scanner
point-spread) and seeded Gaussian noise. Every structure's mask is known exactly, so
segmentation, landmark detection, planning and risk code can be tested against it.

Coordinates
-----------
All positions are DICOM patient LPS millimetres: +x = patient left, +y = posterior,
+z = superior. The anatomy is laid out around the centre of the C2 body at LPS
``(0, 0, -4)``; the mid-sagittal plane is ``x = 0``. The grid is axial
(:func:`~osteoplan.imaging.axis_aligned_affine`: k -> +S, j -> +P, i -> +L).

Field of view
-------------
By default 120 mm (L-R) x 144 mm (A-P) x 168 mm (S-I), C1 to T1 (151 x 181 x 211 voxels at 0.8 mm).
The S-I extent is larger than an "upper neck" crop on purpose: the anterior odontoid screw ascends
close to the dens axis, so its line continued below the C2 body reaches the skin of the low
anterolateral neck (the clinical primer: the planning CT must reach ~C6-T1). On the default phantom
the feasible lines (see :data:`REFERENCE_TIP_LPS_MM`) meet the skin at z = -103..-116 mm (C7-T1;
the reference line at -111), >= 10 mm above the lowest slice, and lines 15-25 deg off the dens axis
from the anteroinferior corner (anterior to lateral) at z = -54..-104 mm; a plan can only be checked
where the CT covers it.

Posture: the anterior odontoid-screw corridor
---------------------------------------------
The default anatomy is built so that the percutaneous anterior/anterolateral odontoid screw
(Boehler/AO geometry; Grange et al., SN Compr Clin Med 2021;3:2326) has a corridor, as in most
patients (one series found none in 14 %):

- C2: the end plates slope 10 deg (anterior edge lower) and the body has an anteroinferior lip
  (Gray's Anatomy) overhanging C3 by ~2 mm; the dens (waist outer diameter 9.6 mm, apex width
  10.4 mm) sits over the posterior half of the body, tilted 10 deg back from it. Corner -> apex
  39.7 mm (37.6 +/- 3.3 mm), 60.2 deg to the C2 base (62.4 +/- 4.7 deg; Tun et al., Eur Spine J
  2009;18:271), 9.8 deg off the dens axis (5-15 deg on real CTs, clinical primer).
- A mild cervical lordosis of 10 deg (``lordosis_deg``; C2-C7 lordosis of asymptomatic adults is
  of this order or more, no single source; configurable default): C2 extended 3.3 deg on C3, C3 on
  C4, C4 on C5; the dens axis is then 20 deg from the scanner's vertical. With a straight spine the
  lines the dens allows reach the skin only below T1 (the reason patients are positioned in
  extension). osteoplan's classical C2 locator (anatomy/c2.py) finds the intact dens to < 1 mm at
  10 deg on every seed tried (4), fails on some noise seeds from 12 deg, and with a lysis cutting
  through the dens (lesion >= 6 mm) fails from 5 deg: limits of the locator, not of the anatomy
  (tests/anatomy/test_c2.py keeps those cases on ``lordosis_deg=0`` and records the limit).
- Visceral column (pharynx, larynx, trachea: air lumen; oesophagus: the organ) placed relative to
  the anterior surface of the vertebral bodies: 4.5-6 mm of prevertebral soft tissue (longus colli,
  retropharyngeal space, pharyngeal wall) in front of C2-C5 (CT upper limits 6 mm at C2, 7 mm at
  C3, 18 mm at C6-C7: Rojas et al., AJNR 2009;30:136), oesophagus ~1 mm in front of C6-C7 and
  1.5 mm left of the midline; larynx C4-C6, trachea below the cricoid at C6-C7, carotid bifurcation
  at C3 (Mirjalili et al., Clin Anat 2012;25:851). Lumen widths: configurable defaults.
- Carotid sheath lateral to it: common carotid 21-22 mm from the midline, 7-9 mm in front of the
  vertebral bodies; internal carotid 23.5 mm from the midline at C1 (23.3 +/- 4.3 mm, 4.8 +/- 2.7 mm
  in front of the C1 lateral mass: Surg Radiol Anat 2021;43:87); internal jugular vein 33 mm from
  the midline, lateral and a little anterior to the artery (configurable defaults).
- Between them the anterolateral corridor that hydrodissection opens: the reference line passes
  3.5 mm from the pharynx and 3.5 mm from the carotid. The truth masks of the pharynx, larynx and
  trachea are the air lumen: their walls (mucosa, constrictors) are plain soft tissue, so a margin to
  them must include the wall.
- Transverse foramina C1-C6 (radius 2.8 mm, C1 3 mm; C3-C6: 2 mm lateral of the body, anterior
  border 7-8.5 mm behind its anterior surface, Ebraheim et al., J Spinal Disord 1997;10:304; width
  5.5 +/- 0.9 mm, Anat Res Int 2015:391823) with the vertebral artery (entering at C6, in front of
  the C7 transverse process below). ``vertebral_artery_canal_left/right`` is the bony canal: the
  foramina and the tube of the same radius along the artery between them, C6 to C1.

"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.anatomy.landmarks import DensLandmarks
from osteoplan.anatomy.canal import TRANSVERSE_LIGAMENT_MM
from osteoplan.errors import InputError, safe_path
from osteoplan.imaging.volume import AcquisitionInfo, Volume, axis_aligned_affine

__all__ = [
    "HU",
    "PhantomParams",
    "Phantom",
    "make_phantom",
    "write_phantom",
    "load_phantom_dir",
    "TRUTH_SOURCE",
    "reference_trajectory",
    "write_dicom_series",
]

#: Source tag of every ground-truth mask.
TRUTH_SOURCE = "phantom-truth"

#: Hounsfield units of each tissue (configurable defaults: textbook values, no single source).
HU: dict[str, float] = {
    "air": -1000.0,
    "fat": -100.0,
    "muscle": 45.0,
    "csf": 8.0,
    "epidural": -30.0,
    "cord": 35.0,
    "esophagus": 40.0,
    "cancellous": 250.0,
    "cortical": 1200.0,
    "mandible_cancellous": 350.0,
    "mandible_cortical": 1500.0,
    "lesion": 30.0,
    "artery_contrast": 320.0,
    "vein_contrast": 200.0,
    "blood": 40.0,
    "disc": 80.0,
}


def _vec3(v: Any) -> tuple[float, float, float]:
    a = tuple(float(x) for x in v)
    if len(a) != 3:
        raise InputError(f"Expected three LPS components (mm); got {len(a)}.")
    return a  # type: ignore[return-value]


#: Largest structure shift / lesion offset accepted by the phantom, per LPS component (mm). A
#: configurable guard without a published source: larger shifts leave the modelled neck.
MAX_SHIFT_MM = 60.0


@dataclass(frozen=True)
class PhantomParams:
    """Parameters of :func:`make_phantom` (every length in mm, LPS axes).

    Attributes
    ----------
    seed : int
        Seed of the noise generator; the same parameters always give the same volume.
    spacing_mm : float
        Isotropic voxel size, 0.3-2 mm (0.6-1 mm is clinically typical).
    lesion_radius_mm : float
        Radius of the spherical lytic lesion in C2 (0 = no lesion). The lesion is the sphere
        clipped to the C2 mask: with the default 4 mm it stays inside the dens (outer radius
        5.0 mm there) and thins its cortex; larger lesions breach the cortex.
    lesion_offset_mm : tuple of 3 floats
        LPS offset of the lesion centre from the dens centre (the point of the dens axis halfway
        from its base to its apex).
    contrast : bool
        Contrast-enhanced vessels (artery 320 HU, vein 200 HU) or unenhanced blood (40 HU).
    noise_hu : float
        Standard deviation of the additive Gaussian noise (HU).
    blur_mm : float
        Standard deviation of the Gaussian point-spread applied before the noise (mm);
        0 = sharp edges.
    carotid_shift_mm : tuple of 3 floats
        LPS shift applied to the carotid arteries and internal jugular veins (for tests that move
        a vessel into a path); see ``carotid_shift_side``.
    carotid_shift_side : str
        ``"both"``, ``"left"`` or ``"right"``: which side's carotid + jugular are shifted.
    cord_shift_mm : tuple of 3 floats
        LPS shift of the spinal cord inside the canal (the canal does not move; keep the
        shift within about +/-2 mm so the cord stays inside).
    vertebral_artery_shift_mm : tuple of 3 floats
        LPS shift of both vertebral arteries (with their transverse foramina unchanged, a large
        shift puts the artery into bone, which then wins).
    dens_tilt_deg : float
        Posterior tilt of the dens axis relative to the C2 body (from the body's superior
        direction, in the sagittal plane). In the CT the axis is further tilted by the lordosis.
    lordosis_deg : float
        Cervical lordosis: extension of C2 (and C1) relative to C5-C7, spread equally over the
        C2/C3, C3/C4 and C4/C5 segments (each vertebra turns about the centre of the disc below it).
        The C2 body centre stays at LPS (0, 0, -4); the lower spine is anterior of it.
    cortex_mm : float
        Thickness of the vertebral cortical shell.
    fov_inferior_mm : float
        Lowest slice position z (mm). The default -126 includes T1 so that the skin entry of the
        anterior odontoid-screw line (low anterolateral neck, C7-T1 level) lies inside the CT
        (the reference line 15 mm above the lowest slice); -40 gives a short C1-C3 phantom.
    fov_superior_mm : float
        Highest slice position z (mm).
    rotation_deg : tuple of 3 floats
        Rotation of the whole anatomy (not the grid) about the patient's L (x), P (y) and S (z)
        axes through the C2 body centre, applied in that order, right-handed in LPS: +x is
        flexion (chin down), +y tilts the head towards the patient's right shoulder, +z turns the
        nose to the patient's left. Masks are rotated with nearest-neighbour sampling and the
        landmarks exactly; the grid stays axial.
    """

    seed: int = 0
    spacing_mm: float = 0.8
    lesion_radius_mm: float = 4.0
    lesion_offset_mm: tuple = (0.0, 0.0, 0.0)
    contrast: bool = True
    noise_hu: float = 12.0
    blur_mm: float = 0.4
    carotid_shift_mm: tuple = (0.0, 0.0, 0.0)
    carotid_shift_side: str = "both"
    cord_shift_mm: tuple = (0.0, 0.0, 0.0)
    vertebral_artery_shift_mm: tuple = (0.0, 0.0, 0.0)
    dens_tilt_deg: float = 10.0
    lordosis_deg: float = 10.0
    cortex_mm: float = 1.2
    fov_inferior_mm: float = -126.0
    fov_superior_mm: float = 42.0
    rotation_deg: tuple = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        for name in ("lesion_offset_mm", "carotid_shift_mm", "cord_shift_mm", "vertebral_artery_shift_mm",
                     "rotation_deg"):
            object.__setattr__(self, name, _vec3(getattr(self, name)))
        for f in fields(self):
            v = getattr(self, f.name)
            vals = v if isinstance(v, tuple) else (v,)
            if any(isinstance(x, float) and not math.isfinite(x) for x in vals):
                raise InputError(f"Phantom parameter {f.name} must be a finite number; got {v}.")
        for name in ("carotid_shift_mm", "cord_shift_mm", "vertebral_artery_shift_mm", "lesion_offset_mm"):
            if any(abs(x) > MAX_SHIFT_MM for x in getattr(self, name)):
                raise InputError(f"Phantom {name} components must be within +/-{MAX_SHIFT_MM:g} mm (the neck is "
                                 "about 120 mm wide).")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or not 0 <= self.seed < 2**63:
            raise InputError(f"Phantom seed must be a whole number from 0 to 2^63 - 1; got {self.seed!r}.")
        if not 0.3 <= float(self.spacing_mm) <= 2.0:
            raise InputError(f"Phantom spacing {self.spacing_mm} mm is out of range; use 0.3-2 mm (0.6-1 mm is typical).")
        if self.lesion_radius_mm < 0 or self.lesion_radius_mm > 15:
            raise InputError("Lesion radius must be 0-15 mm (0 = no lesion).")
        if self.noise_hu < 0 or self.blur_mm < 0 or self.cortex_mm <= 0:
            raise InputError("noise_hu and blur_mm must be >= 0 and cortex_mm > 0.")
        if self.carotid_shift_side not in ("both", "left", "right"):
            raise InputError("carotid_shift_side must be 'both', 'left' or 'right'.")
        if not -20 <= self.dens_tilt_deg <= 35:
            raise InputError("dens_tilt_deg must be between -20 and 35 degrees.")
        if not -10 <= self.lordosis_deg <= 30:
            raise InputError("lordosis_deg must be between -10 (kyphosis) and 30 degrees.")
        if any(abs(a) > 30 for a in self.rotation_deg):
            raise InputError("Each phantom rotation angle must be within +/-30 degrees.")
        if not (-130 <= self.fov_inferior_mm <= -35 and 30 <= self.fov_superior_mm <= 60):
            raise InputError("The phantom FOV must span at least z = -35..30 mm (C1-C3) and at most -130..60 mm.")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PhantomParams":
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names})


@dataclass
class Phantom:
    """A synthetic CT with its exact ground truth.

    Attributes
    ----------
    volume : Volume
        HU array (K, J, I) on an axial grid (k -> +S, j -> +P, i -> +L), LPS mm.
    truth : LabelMap
        Exact masks with canonical names, every source ``"phantom-truth"``.
    landmarks : DensLandmarks
        Ground-truth dens apex, waist (+ diameter), axis, anteroinferior C2 body point and
        body centre (method ``"phantom-truth"``, confidence 1).
    params : PhantomParams
        The parameters it was made with.
    hu_table : dict
        Nominal HU of each tissue as painted before blur and noise.
    """

    volume: Volume
    truth: LabelMap
    landmarks: DensLandmarks
    params: PhantomParams
    hu_table: dict[str, float] = field(default_factory=dict)

    @property
    def dens_centre_lps_mm(self) -> np.ndarray:
        """Point of the dens axis halfway from its base to its apex (LPS mm)."""
        return _rotate_points(self.params, _posed_dens_geometry(self.params)["centre"])

    @property
    def lesion_centre_lps_mm(self) -> np.ndarray:
        """Centre of the lesion sphere (LPS mm), also when the radius is 0."""
        c = _posed_dens_geometry(self.params)["centre"] + np.asarray(self.params.lesion_offset_mm, dtype=float)
        return _rotate_points(self.params, c)


# ---------------------------------------------------------------------------------------------
# grid and vectorised primitives
# ---------------------------------------------------------------------------------------------


class _Grid:
    """World coordinates of an axis-aligned grid, with sub-box access for fast primitives."""

    def __init__(self, origin: np.ndarray, spacing: float, shape: tuple[int, int, int]) -> None:
        self.origin = np.asarray(origin, float)
        self.s = float(spacing)
        self.shape = shape
        K, J, I = shape
        self.z = (self.origin[2] + self.s * np.arange(K)).astype(np.float32)
        self.y = (self.origin[1] + self.s * np.arange(J)).astype(np.float32)
        self.x = (self.origin[0] + self.s * np.arange(I)).astype(np.float32)

    def box(self, lo: Any, hi: Any):
        """Slices and broadcastable coordinates (Z (n,1,1), Y (1,n,1), X (1,1,n)) of a world box, or None."""
        lo = np.asarray(lo, float)
        hi = np.asarray(hi, float)
        sl = []
        for ax_world, n in ((2, self.shape[0]), (1, self.shape[1]), (0, self.shape[2])):
            a = int(math.floor((lo[ax_world] - self.origin[ax_world]) / self.s)) - 1
            b = int(math.ceil((hi[ax_world] - self.origin[ax_world]) / self.s)) + 2
            a, b = max(a, 0), min(b, n)
            if a >= b:
                return None
            sl.append(slice(a, b))
        Z = self.z[sl[0]][:, None, None]
        Y = self.y[sl[1]][None, :, None]
        X = self.x[sl[2]][None, None, :]
        return tuple(sl), X, Y, Z

    def empty(self) -> np.ndarray:
        return np.zeros(self.shape, dtype=bool)


class _PosedGrid:
    """A view of a :class:`_Grid` in which a body is built in its own (local) frame.

    ``M`` (4 x 4) maps local to world (LPS mm) coordinates. :meth:`box` takes a local box and
    returns the world slices covering it with full 3D *local* coordinates of their voxels, so the
    analytic primitives draw the posed body unchanged.
    """

    def __init__(self, grid: _Grid, M: np.ndarray) -> None:
        self.grid = grid
        self.M = np.asarray(M, float)
        self.Minv = np.linalg.inv(self.M)
        self.origin, self.s, self.shape = grid.origin, grid.s, grid.shape
        self.x, self.y, self.z = grid.x, grid.y, grid.z

    def box(self, lo: Any, hi: Any):
        lo = np.asarray(lo, float)
        hi = np.asarray(hi, float)
        corners = np.array([[a, b, c, 1.0] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
        w = corners @ self.M.T
        b = self.grid.box(w[:, :3].min(0), w[:, :3].max(0))
        if b is None:
            return None
        sl, X, Y, Z = b
        X, Y, Z = np.broadcast_arrays(X, Y, Z)
        R, t = self.Minv[:3, :3].astype(np.float32), self.Minv[:3, 3].astype(np.float32)
        Xl = R[0, 0] * X + R[0, 1] * Y + R[0, 2] * Z + t[0]
        Yl = R[1, 0] * X + R[1, 1] * Y + R[1, 2] * Z + t[1]
        Zl = R[2, 0] * X + R[2, 1] * Y + R[2, 2] * Z + t[2]
        return sl, Xl, Yl, Zl

    def empty(self) -> np.ndarray:
        return self.grid.empty()


def _paint(out: np.ndarray, grid: _Grid, lo, hi, fn) -> None:
    """OR ``fn(X, Y, Z)`` (boolean) into *out* over the world box [lo, hi]."""
    b = grid.box(lo, hi)
    if b is None:
        return
    sl, X, Y, Z = b
    out[sl] |= fn(X, Y, Z)


def _capsule(out, grid, a, b, ra, rb=None) -> None:
    """Points within a linearly varying radius (ra at a, rb at b) of the segment a-b."""
    rb = ra if rb is None else rb
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    r = max(ra, rb)
    d = b - a
    L2 = float(d @ d) or 1e-12

    def fn(X, Y, Z):
        t = ((X - a[0]) * d[0] + (Y - a[1]) * d[1] + (Z - a[2]) * d[2]) / L2
        t = np.clip(t, 0.0, 1.0)
        dist2 = (X - a[0] - t * d[0]) ** 2 + (Y - a[1] - t * d[1]) ** 2 + (Z - a[2] - t * d[2]) ** 2
        rad = ra + t * (rb - ra)
        return dist2 <= rad * rad

    _paint(out, grid, np.minimum(a, b) - r, np.maximum(a, b) + r, fn)


def _tube(out, grid, points, radius) -> None:
    """A tube of constant radius along a polyline (union of capsules)."""
    pts = [np.asarray(p, float) for p in points]
    for p, q in zip(pts[:-1], pts[1:]):
        _capsule(out, grid, p, q, radius)


def _ellipsoid(out, grid, c, radii) -> None:
    c = np.asarray(c, np.float32)
    r = np.asarray(radii, np.float32)
    _paint(out, grid, c - r, c + r,
           lambda X, Y, Z: ((X - c[0]) / r[0]) ** 2 + ((Y - c[1]) / r[1]) ** 2 + ((Z - c[2]) / r[2]) ** 2 <= 1.0)


def _vcyl(out, grid, cx, cy, r, z0, z1) -> None:
    """Vertical circular cylinder."""
    _paint(out, grid, (cx - r, cy - r, z0), (cx + r, cy + r, z1),
           lambda X, Y, Z: (((X - cx) ** 2 + (Y - cy) ** 2) <= r * r) & (Z >= z0) & (Z <= z1))


def _wall(out, grid, points_xy, z0, z1, r) -> None:
    """Points within r of the vertical ribbon swept by a 2D polyline between heights z0 and z1."""
    pts = [np.asarray(p, np.float32) for p in points_xy]
    zc, h = 0.5 * (z0 + z1), 0.5 * (z1 - z0)
    for p, q in zip(pts[:-1], pts[1:]):
        d = q - p
        L2 = float(d @ d) or 1e-12

        def fn(X, Y, Z, p=p, d=d, L2=L2):
            t = np.clip(((X - p[0]) * d[0] + (Y - p[1]) * d[1]) / L2, 0.0, 1.0)
            d2 = (X - p[0] - t * d[0]) ** 2 + (Y - p[1] - t * d[1]) ** 2
            dz = np.maximum(np.abs(Z - zc) - h, 0.0)
            return d2 + dz * dz <= r * r

        lo = (min(p[0], q[0]) - r, min(p[1], q[1]) - r, z0 - r)
        hi = (max(p[0], q[0]) + r, max(p[1], q[1]) + r, z1 + r)
        _paint(out, grid, lo, hi, fn)


def _swept_ellipse(out, grid, levels, inset: float = 0.0) -> None:
    """Axial ellipses interpolated linearly in z between control levels.

    ``levels`` is a list of (z, cx, cy, ax, ay_anterior, ay_posterior); between the first
    and last z the cross-section is the ellipse (egg-shaped when the anterior and posterior
    semi-axes differ) with all values interpolated; ``inset`` shrinks every semi-axis.
    """
    lv = np.asarray(sorted(levels), float)
    z0, z1 = lv[0, 0], lv[-1, 0]
    big = float(np.max(np.abs(lv[:, 1:3])) + np.max(lv[:, 3:]))
    b = grid.box((-big, -big, z0), (big, big, z1))
    if b is None:
        return
    sl, X, Y, Z = b
    zs = Z[:, 0, 0].astype(float)
    cols = [np.interp(zs, lv[:, 0], lv[:, c]).astype(np.float32)[:, None, None] for c in range(1, 6)]
    cx, cy, ax, ayA, ayP = cols
    ax = np.maximum(ax - inset, 1e-3)
    ay = np.where(Y < cy, np.maximum(ayA - inset, 1e-3), np.maximum(ayP - inset, 1e-3))
    inside = ((X - cx) / ax) ** 2 + ((Y - cy) / ay) ** 2 <= 1.0
    inside &= (Z >= z0) & (Z <= z1)
    out[sl] |= inside


def _rounded_ecyl(out, grid, c, ax, ay, h, rr, shear_zy: float = 0.0) -> None:
    """Vertical elliptic cylinder (semi-axes ax, ay, half-height h) with edges rounded by rr.

    ``shear_zy`` shears the solid along z in proportion to y (a point of the unsheared solid at
    (x, y, z) moves to (x, y, z + shear_zy * (y - c_y))): the side walls stay vertical and the end
    faces slope by atan(shear_zy), anterior (-y) side lower for a positive value.
    """
    c = np.asarray(c, np.float32)
    m = math.sqrt(ax * ay)
    k = float(shear_zy)

    def fn(X, Y, Z):
        q = np.sqrt(((X - c[0]) / ax) ** 2 + ((Y - c[1]) / ay) ** 2)
        dr = (q - 1.0) * m + rr
        dz = np.abs(Z - k * (Y - c[1]) - c[2]) - h + rr
        outside = np.sqrt(np.maximum(dr, 0) ** 2 + np.maximum(dz, 0) ** 2)
        inside = np.minimum(np.maximum(dr, dz), 0)
        return outside + inside - rr <= 0

    dzk = abs(k) * ay
    _paint(out, grid, c - (ax, ay, h + dzk), c + (ax, ay, h + dzk), fn)


def _rotation_matrix(p: "PhantomParams") -> np.ndarray:
    """R = Rz @ Ry @ Rx of ``p.rotation_deg`` (LPS, right-handed)."""
    ax, ay, az = (math.radians(a) for a in p.rotation_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _rotate_points(p: "PhantomParams", pts: Any, vector: bool = False) -> np.ndarray:
    """Apply the phantom rotation (about the C2 body centre) to LPS points (..., 3), or to directions."""
    pts = np.asarray(pts, dtype=float)
    R = _rotation_matrix(p)
    if vector:
        return pts @ R.T
    c = np.array([0.0, 0.0, C2_BODY_Z])
    return (pts - c) @ R.T + c


def _cortex(mask: np.ndarray, spacing: float, thickness: float) -> np.ndarray:
    """Voxels of *mask* whose centre lies within *thickness* of its surface (EDT in its bounding box)."""
    from scipy.ndimage import distance_transform_edt

    out = np.zeros_like(mask)
    idx = np.argwhere(mask)
    if idx.size == 0:
        return out
    lo = np.maximum(idx.min(0) - 1, 0)
    hi = np.minimum(idx.max(0) + 2, mask.shape)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    sub = np.pad(mask[sl], 1)
    d = distance_transform_edt(sub, sampling=spacing)[1:-1, 1:-1, 1:-1]
    out[sl] = mask[sl] & (d - 0.5 * spacing < thickness)
    return out


# ---------------------------------------------------------------------------------------------
# anatomy
# ---------------------------------------------------------------------------------------------

# C2 body: rounded elliptic cylinder centred at (0, 0, C2_BODY_Z)
C2_BODY_Z = -4.0
C2_BODY_HALF_HEIGHT = 8.0          # inferior endplate at z = -12, top at z = +4
C2_BODY_AX, C2_BODY_AY = 8.5, 7.5  # half width (L-R) and half depth (A-P)
C2_BODY_ROUND = 2.0
#: Slope of the C2 end plates in the sagittal plane (degrees; anterior edge lower): the anterior
#: border of the inferior surface of the C2 body projects downwards as a lip (Gray's Anatomy).
#: Configurable default chosen so that the anteroinferior-corner -> apex line makes 62 degrees with
#: the C2 base, as measured on CT (62.4 +/- 4.7 deg, Tun et al., Eur Spine J 2009;18:271).
C2_BASE_SLOPE_DEG = 10.0
C2_SHEAR = math.tan(math.radians(C2_BASE_SLOPE_DEG))
#: Anteroinferior lip of the C2 body (centre and semi-axes in the C2 frame, before the end-plate
#: shear): it overhangs the anterosuperior rim of C3 by ~2 mm (configurable default, no published
#: size; the lip itself: Gray's Anatomy).
C2_LIP_C = (0.0, -6.5, -11.0)
C2_LIP_R = (6.0, 3.0, 2.5)
DENS_BASE = (0.0, 1.0, 2.5)        # dens axis origin, inside the body top (over the posterior half)
DENS_LENGTH = 21.0                 # base -> apex along the axis
# radius profile of the dens along its axis (t from the base, mm): waist at t = 6.5
DENS_PROFILE_T = (0.0, 3.0, 6.5, 10.0, 16.0)
DENS_PROFILE_R = (6.5, 5.5, 4.8, 5.3, 5.2)  # apical width 10.4 mm (9.6 +/- 1.1 mm, JKNS 2018;61(4))
DENS_WAIST_T = 6.5
# dural sac and cord (vertical elliptic cylinders); the canal truth is the bony vertebral foramen
CANAL_C, CANAL_AX, CANAL_AY = (0.0, 17.0), 12.0, 8.5
CORD_C, CORD_AX, CORD_AY = (0.0, 17.5), 6.5, 4.5
# subaxial vertebrae C3..C7: body centre z and spacing
SUBAXIAL_Z0, SUBAXIAL_PITCH = -23.75, 19.0
#: Radius of the subaxial and C2 transverse foramina (mm): width 5.5-5.9 mm at C3-C6 (Ebraheim et
#: al., J Spinal Disord 1997;10:304; 5.5 +/- 0.9 mm on dry bone, Anat Res Int 2015:391823).
FORAMEN_R_MM = 2.8
#: Gap between the lateral border of a subaxial body and the medial border of its transverse
#: foramen (mm): 1.8-2.2 mm at C3-C6 (Ebraheim 1997).
FORAMEN_GAP_MM = 2.0
#: Rounding of the rims of the subaxial bodies (mm; ring apophysis; configurable default).
SUBAXIAL_BODY_ROUND_MM = 3.0


def _subaxial_body_semi_axes(n: int) -> tuple[float, float]:
    """Half width (L-R) and half depth (A-P) of the C``n`` body, mm (configurable defaults)."""
    return 8.5 + 0.5 * (n - 3), 7.5 + 0.25 * (n - 3)


def _foramina() -> dict[str, tuple[float, float, float, float, float]]:
    """Transverse foramina of the left side: level -> (x, y, z_low, z_high, radius), LPS mm.

    The hole is a vertical cylinder cut through the vertebra between z_low and z_high (mirrored
    to -x on the right). C1/C2: configurable defaults (the C2 foramen lies in the lateral mass under
    the superior facet, the C1 foramen in the transverse process); C3-C6: medial border
    :data:`FORAMEN_GAP_MM` lateral of the body, anterior border 7-8.5 mm behind the anterior
    surface of the body (8.4 -> 7.0 mm from C3 to C6, Ebraheim 1997). C7 has none here (its small
    foramen carries no artery: the vertebral artery enters at C6).
    """
    out = {"C1": (27.0, 6.5, 8.0, 30.0, 3.0), "C2": (22.0, 4.0, -12.0, 8.0, FORAMEN_R_MM)}
    for n in range(3, 7):
        zc = SUBAXIAL_Z0 - SUBAXIAL_PITCH * (n - 3)
        ax, _ = _subaxial_body_semi_axes(n)
        out[f"C{n}"] = (ax + FORAMEN_GAP_MM + FORAMEN_R_MM, 3.5, zc - 8.0, zc + 8.0, FORAMEN_R_MM)
    return out



def _level_z(level: str) -> float:
    """Height of the centre of a vertebra in its own (straight-spine) frame, mm."""
    if level == "C1":
        return 19.0
    if level == "C2":
        return C2_BODY_Z
    return SUBAXIAL_Z0 - SUBAXIAL_PITCH * (_level_index(level) - 3)


def _level_index(level: str) -> int:
    """1..7 for C1..C7, 8 for T1."""
    return 8 if level == "T1" else int(level[1:])


def _level_name(n: int) -> str:
    return "T1" if n == 8 else f"C{n}"


def _about_x(deg: float, pivot: Any) -> np.ndarray:
    """4 x 4 rotation by *deg* of extension (the superior end turns posteriorly, +y) about the
    L-R line through *pivot* (LPS mm)."""
    a = math.radians(deg)
    M = np.eye(4)
    M[1:3, 1:3] = [[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]]
    P = np.asarray(pivot, float)
    M[:3, 3] = P - M[:3, :3] @ P
    return M


def _spine_poses(p: "PhantomParams") -> dict[str, np.ndarray]:
    """Local -> world 4 x 4 pose of each vertebra C1..C7 for the cervical lordosis.

    ``p.lordosis_deg`` is spread equally over the C2/C3, C3/C4 and C4/C5 segments; each vertebra
    turns about the centre of the disc below it (C5-C7 are not turned); C1 moves with C2. The
    whole column is then translated so that the C2 body centre stays at (0, 0, C2_BODY_Z).
    """
    seg = p.lordosis_deg / 3.0
    poses = {_level_name(n): np.eye(4) for n in (5, 6, 7, 8)}
    M = np.eye(4)
    for upper, lower in (("C4", "C5"), ("C3", "C4"), ("C2", "C3")):
        h_up = C2_BODY_HALF_HEIGHT if upper == "C2" else 7.25
        z_disc = 0.5 * (_level_z(upper) - h_up + _level_z(lower) + 7.25)
        M = M @ _about_x(seg, (0.0, 0.25, z_disc))
        poses[upper] = M.copy()
    poses["C1"] = poses["C2"].copy()
    c = np.array([0.0, 0.0, C2_BODY_Z, 1.0])
    shift = c[:3] - (poses["C2"] @ c)[:3]
    for k in poses:
        poses[k] = poses[k].copy()
        poses[k][:3, 3] += shift
    return poses


def _pose_points(M: np.ndarray, pts: Any, vector: bool = False) -> np.ndarray:
    pts = np.asarray(pts, float)
    return pts @ M[:3, :3].T + (0.0 if vector else M[:3, 3])


def _canal_centre_y(p: "PhantomParams", z: np.ndarray, dy: float = 0.0) -> np.ndarray:
    """y of the spinal canal centre line (y = CANAL_C[1] + dy in each vertebra's frame) at heights z."""
    poses = _spine_poses(p)
    pts = np.array([_pose_points(poses[_level_name(n)], (0.0, CANAL_C[1] + dy, _level_z(_level_name(n))))
                    for n in range(1, 9)])
    order = np.argsort(pts[:, 2])
    return np.interp(z, pts[order, 2], pts[order, 1])


def _vertebral_foramen(grid: "_Grid", verts: dict[str, np.ndarray], dens: np.ndarray,
                       window_mm: float = 4.0, centre_y: np.ndarray | None = None) -> np.ndarray:
    """The bony spinal canal: per axial slice, the space enclosed by the vertebral rings.

    Each slice takes the vertebral bone within +/- ``window_mm`` (the ring of a vertebra is
    closed over a few mm only: pedicles, laminae; when that does not enclose the canal centre,
    within +/- 1.5 ``window_mm``), fills its holes and keeps the hole that
    contains the canal centre. At C1 the canal is the part of the ring behind the transverse
    ligament (``TRANSVERSE_LIGAMENT_MM`` behind the posterior surface of the dens): the dens and
    the atlanto-dental interval are not canal (cf. Steel's rule of thirds at C1, J Bone Joint
    Surg Am 1968;50:1481: dens, cord and
    free space). Slices without a closed ring (disc levels, interlaminar gaps) take the section
    common to the nearest enclosed sections above and below; beyond the first/last ring the
    nearest section is carried to the edge of the grid.

    Parameters
    ----------
    grid : _Grid
    verts : dict of bool arrays (K, J, I)
        Vertebrae C1..C7 (lesion included).
    dens : bool array (K, J, I)
        The dens (for the C1 cut).
    window_mm : float
        Half-height of the slab whose bone closes a ring (author's default).
    centre_y : array (K,), optional
        y of the canal centre in each slice (default ``CANAL_C[1]``); x is 0.

    Returns
    -------
    bool array (K, J, I)
    """
    from scipy import ndimage as ndi

    K = grid.shape[0]
    s = grid.s
    allv = np.zeros(grid.shape, bool)
    for m in verts.values():
        allv |= m
    c1 = verts.get("vertebrae_C1", np.zeros(grid.shape, bool))
    w = max(int(round(window_mm / s)), 0)
    # running OR over +/- w slices
    cum = np.concatenate([np.zeros((1,) + grid.shape[1:], np.int32), np.cumsum(allv, axis=0, dtype=np.int32)])
    c1cum = np.concatenate([[0], np.cumsum(c1.any(axis=(1, 2)))])
    if centre_y is None:
        centre_y = np.full(K, CANAL_C[1])
    jcs = np.rint((np.asarray(centre_y, float) - grid.origin[1]) / s).astype(int)
    ic = int(round((CANAL_C[0] - grid.origin[0]) / s))
    # posterior surface of the dens per slice (+ transverse ligament); above the apex the last one
    dens_k = np.nonzero(dens.any(axis=(1, 2)))[0]
    y_back = {int(k): float(grid.y[np.nonzero(dens[k].any(axis=1))[0].max()]) for k in dens_k}
    out = np.zeros(grid.shape, bool)
    closed = np.zeros(K, bool)
    for k in range(K):
        jc = int(jcs[k])
        for ww in (w, int(round(1.5 * w))):  # a wider slab bridges a longer interlaminar gap
            a, b = max(k - ww, 0), min(k + ww + 1, K)
            slab = (cum[b] - cum[a]) > 0
            if slab[jc, ic] or not slab.any():
                break
            filled = ndi.binary_fill_holes(slab)
            if filled[jc, ic]:
                lab, _ = ndi.label(filled & ~slab)
                sec = lab == lab[jc, ic]
                if c1cum[b] - c1cum[a] > 0 and dens_k.size:
                    kd = int(dens_k[np.argmin(np.abs(dens_k - k))])
                    sec &= (grid.y > y_back[kd] + TRANSVERSE_LIGAMENT_MM + 1e-3)[:, None]
                out[k] = sec
                closed[k] = sec.any()
                break
    ks = np.nonzero(closed)[0]
    if ks.size == 0:
        return out
    for k in range(K):
        if closed[k]:
            continue
        below = ks[ks < k]
        above = ks[ks > k]
        if below.size and above.size:
            out[k] = out[below.max()] & out[above.min()]
        else:
            out[k] = out[below.max()] if below.size else out[above.min()]
    return out


def _dens_geometry(p: PhantomParams) -> dict[str, Any]:
    tilt = math.radians(p.dens_tilt_deg)
    axis = np.array([0.0, math.sin(tilt), math.cos(tilt)])
    base = np.array(DENS_BASE)
    return {
        "axis": axis,
        "base": base,
        "apex": base + DENS_LENGTH * axis,
        "waist": base + DENS_WAIST_T * axis,
        "waist_diameter": 2.0 * float(np.interp(DENS_WAIST_T, DENS_PROFILE_T, DENS_PROFILE_R)),
        "centre": base + 0.5 * DENS_LENGTH * axis,
    }


def _posed_dens_geometry(p: PhantomParams) -> dict[str, Any]:
    """:func:`_dens_geometry` moved with C2 by the lordosis (before ``rotation_deg``)."""
    M = _spine_poses(p)["C2"]
    g = dict(_dens_geometry(p))
    for k in ("base", "apex", "waist", "centre"):
        g[k] = _pose_points(M, g[k])
    g["axis"] = _pose_points(M, g["axis"], vector=True)
    return g


def _dens(out, grid, p: PhantomParams) -> None:
    g = _dens_geometry(p)
    axis, base = g["axis"].astype(np.float32), g["base"].astype(np.float32)
    cap_r = DENS_PROFILE_R[-1]
    cap_t0 = DENS_LENGTH - cap_r

    def fn(X, Y, Z):
        vx, vy, vz = X - base[0], Y - base[1], Z - base[2]
        t = vx * axis[0] + vy * axis[1] + vz * axis[2]
        rho2 = vx * vx + vy * vy + vz * vz - t * t
        r = np.interp(t, DENS_PROFILE_T, DENS_PROFILE_R).astype(np.float32)
        cap = cap_r * cap_r - (t - cap_t0) ** 2
        r2 = np.where(t > cap_t0, np.maximum(cap, 0.0), r * r)
        return (t >= 0) & (t <= DENS_LENGTH) & (rho2 <= r2)

    lo = np.minimum(g["base"], g["apex"]) - 7.0
    hi = np.maximum(g["base"], g["apex"]) + 7.0
    _paint(out, grid, lo, hi, fn)


def _anteroinferior_point() -> np.ndarray:
    """Mid-sagittal anteroinferior corner of the C2 body, in the C2 frame (LPS mm).

    The point of the anteroinferior lip (:data:`C2_LIP_C`, :data:`C2_LIP_R`) whose outward
    normal points 45 degrees anteroinferiorly in the unsheared frame, moved by the end-plate shear
    (:data:`C2_BASE_SLOPE_DEG`): it lies exactly on the surface of the C2 body.
    """
    b, c = C2_LIP_R[1], C2_LIP_R[2]
    h = math.hypot(b, c)
    y = C2_LIP_C[1] - b * b / h
    z = C2_LIP_C[2] - c * c / h
    return np.array([0.0, y, z + C2_SHEAR * y])


def _c2_base_points() -> tuple[np.ndarray, np.ndarray]:
    """Mid-sagittal anterior and posterior ends of the C2 base (inferior end-plate line), LPS mm."""
    z0 = C2_BODY_Z - C2_BODY_HALF_HEIGHT
    return (np.array([0.0, -C2_BODY_AY, z0 - C2_SHEAR * C2_BODY_AY]),
            np.array([0.0, C2_BODY_AY, z0 + C2_SHEAR * C2_BODY_AY]))


def _c1(grid, p) -> np.ndarray:
    m = grid.empty()
    # ring (anterior + posterior arch), centre (0, 13), semi-axes (20, 22.5)
    th = np.linspace(0, 2 * np.pi, 73)
    ring = [(20.0 * np.cos(t), 13.0 + 22.5 * np.sin(t)) for t in th]
    _wall(m, grid, ring, 17.0, 21.0, 3.0)
    _ellipsoid(m, grid, (0.0, -10.5, 19.0), (4.0, 3.0, 5.5))      # anterior tubercle
    _ellipsoid(m, grid, (0.0, 36.5, 19.0), (5.0, 3.5, 4.5))       # posterior tubercle
    for sx in (1.0, -1.0):
        _ellipsoid(m, grid, (sx * 16.5, 6.0, 19.0), (7.0, 9.0, 7.5))  # lateral masses
        _capsule(m, grid, (sx * 19.0, 6.0, 19.0), (sx * 35.0, 7.0, 19.0), 5.0)  # transverse process
    hole = grid.empty()
    fx, fy, fz0, fz1, fr = _foramina()["C1"]
    for sx in (1.0, -1.0):
        _vcyl(hole, grid, sx * fx, fy, fr, fz0, fz1)               # transverse foramina
    # keep the C1 ring clear of the dens (atlanto-dental interval)
    dens = grid.empty()
    _dens(dens, grid, p)
    from scipy.ndimage import binary_dilation

    sl = grid.box((-8, -12, 5), (8, 12, 30))[0]
    near = np.zeros_like(dens)
    near[sl] = binary_dilation(dens[sl], iterations=max(1, int(round(1.5 / grid.s))))
    return m & ~hole & ~near


def _c2(grid, p) -> np.ndarray:
    m = grid.empty()
    _rounded_ecyl(m, grid, (0.0, 0.0, C2_BODY_Z), C2_BODY_AX, C2_BODY_AY, C2_BODY_HALF_HEIGHT, C2_BODY_ROUND,
                  shear_zy=C2_SHEAR)
    lc, lr = np.asarray(C2_LIP_C, np.float32), np.asarray(C2_LIP_R, np.float32)  # anteroinferior lip, sheared
    _paint(m, grid, lc - lr - (0, 0, 2.0), lc + lr + (0, 0, 2.0),
           lambda X, Y, Z: ((X - lc[0]) / lr[0]) ** 2 + ((Y - lc[1]) / lr[1]) ** 2
           + ((Z - C2_SHEAR * Y - lc[2]) / lr[2]) ** 2 <= 1.0)
    _dens(m, grid, p)
    for sx in (1.0, -1.0):
        _ellipsoid(m, grid, (sx * 13.5, 3.0, 2.0), (5.5, 7.5, 6.0))           # superior articular facets
        _capsule(m, grid, (sx * 6.0, 4.0, -3.0), (sx * 13.5, 12.0, -5.0), 3.2)  # pedicle / pars
        _ellipsoid(m, grid, (sx * 14.0, 13.0, -9.0), (5.0, 6.0, 4.0))         # inferior articular process
        _capsule(m, grid, (sx * 15.0, 4.0, -3.5), (sx * 28.0, 5.0, -4.5), 4.5)  # transverse process
    arc = [(15.5 * np.cos(t), 17.0 + 12.5 * np.sin(t)) for t in np.linspace(-0.15, np.pi + 0.15, 25)]
    _wall(m, grid, arc, -8.0, -2.0, 3.2)                                       # laminae
    _capsule(m, grid, (0.0, 27.0, -5.0), (0.0, 44.0, -10.0), 4.5, 3.5)          # bifid spinous process
    hole = grid.empty()
    fx, fy, fz0, fz1, fr = _foramina()["C2"]
    for sx in (1.0, -1.0):
        _vcyl(hole, grid, sx * fx, fy, fr, fz0, fz1)              # transverse foramina
    return m & ~hole


#: Size of the 45 deg bevel of the anterosuperior rim of the C3-T1 bodies (mm): the rim is rounded under the
#: anterior lip of the vertebra above (the lip of C2 overhangs C3 on lateral radiographs); configurable default,
#: no published source.
SUBAXIAL_ANTERIOR_RIM_MM = 6.0


def _subaxial(grid, n: int) -> np.ndarray:
    """C3..C7 (n = 3..7) and T1 (n = 8): body, pedicles, articular pillars, laminae, transverse
    processes (+foramina C3-C6), spinous process (T1 without ribs)."""
    zc = SUBAXIAL_Z0 - SUBAXIAL_PITCH * (n - 3)
    ax, ay = _subaxial_body_semi_axes(n)
    m = grid.empty()
    _rounded_ecyl(m, grid, (0.0, 0.5, zc), ax, ay, 7.25, SUBAXIAL_BODY_ROUND_MM)
    for sx in (1.0, -1.0):
        _capsule(m, grid, (sx * 6.0, 6.0, zc + 1.0), (sx * 13.0, 10.5, zc + 1.0), 2.8)   # pedicle
        _ellipsoid(m, grid, (sx * 15.5, 11.0, zc), (5.5, 6.5, 8.0))                        # articular pillar
        _capsule(m, grid, (sx * 11.0, 3.5, zc + 1.0), (sx * (26.0 + (n >= 7) * 4), 2.5, zc + 1.0), 4.0)  # TP
    arc = [(15.5 * np.cos(t), 17.0 + 12.5 * np.sin(t)) for t in np.linspace(-0.1, np.pi + 0.1, 25)]
    _wall(m, grid, arc, zc - 3.5, zc + 2.0, 2.6)
    tip = 40.0 + (n - 3) * 1.5 + (n >= 7) * 8.0
    _capsule(m, grid, (0.0, 27.0, zc - 1.0), (0.0, tip, zc - 6.0), 3.2, 2.6)
    # the anterosuperior rim of the body is bevelled (the rounded rim under the anterior lip of the vertebra
    # above, as on lateral radiographs): a 45 deg chamfer of SUBAXIAL_ANTERIOR_RIM_MM
    c = SUBAXIAL_ANTERIOR_RIM_MM
    y_front, z_top = 0.5 - ay, zc + 7.25
    bevel = grid.empty()
    _paint(bevel, grid, (-ax - 2, y_front - 2, z_top - c - 2), (ax + 2, y_front + c + 2, z_top + 2),
           lambda X, Y, Z: (Y - y_front) + (z_top - Z) < c)
    m &= ~bevel
    if n <= 6:
        hole = grid.empty()
        fx, fy, fz0, fz1, fr = _foramina()[f"C{n}"]
        for sx in (1.0, -1.0):
            _vcyl(hole, grid, sx * fx, fy, fr, fz0, fz1)          # transverse foramina
        m &= ~hole
    return m


def _mandible(grid) -> np.ndarray:
    m = grid.empty()
    half = [(46.0, -12.0), (44.0, -26.0), (36.0, -41.0), (22.0, -53.0), (0.0, -58.0)]
    curve = half + [(-x, y) for x, y in reversed(half[:-1])]
    _wall(m, grid, curve, 14.0, 30.0, 4.5)                 # body of the mandible
    for sx in (1.0, -1.0):
        _wall(m, grid, [(sx * 46.0, -18.0), (sx * 46.0, -6.0)], 14.0, 50.0, 4.0)  # rami
    return m


def _vessel_paths(p: PhantomParams) -> dict[str, list[tuple[list, float]]]:
    """Polylines (LPS mm) and radii of the vessels of the left side (mirrored for the right)."""
    def front(z):
        return float(_prevertebral_y(p, z))

    bif = CAROTID_BIFURCATION_Z
    return {
        "vertebral_artery": [(_vertebral_artery_centreline(p), 2.2)],
        # carotid sheath: CCA in front of the longus colli / anterior tubercles, lateral to the
        # visceral column; bifurcation at C3 (Mirjalili et al., Clin Anat 2012;25:851); ICA
        # 23.3 +/- 4.3 mm from the midline and 4.8 +/- 2.7 mm in front of the C1 lateral mass
        # (Surg Radiol Anat 2021;43:87); IJV lateral and a little anterior to the artery
        "common_carotid_artery": [([(22.0, front(-130.0) - 9.0, -130.0), (22.0, front(-80.0) - 9.0, -80.0),
                                    (21.5, front(-55.0) - 8.0, -55.0), (21.0, front(bif) - 7.0, bif)], 3.6)],
        "internal_carotid_artery": [([(21.0, front(bif) - 7.0, bif), (22.0, front(-4.0) - 5.5, -4.0),
                                      (23.5, -10.0, 20.0), (24.5, -7.0, 40.0), (26.0, -4.0, 60.0)], 2.7)],
        "internal_jugular_vein": [([(33.0, front(-130.0) - 12.0, -130.0), (33.0, front(-80.0) - 12.0, -80.0),
                                    (33.5, front(-40.0) - 9.0, -40.0), (34.0, -15.0, 0.0), (33.5, -11.0, 20.0),
                                    (32.0, -7.0, 60.0)], 5.5)],
    }


#: Height of the carotid bifurcation (mm): at C3 in 56-62 % of adults (Mirjalili et al., Clin Anat
#: 2012;25:851), here at the lower third of C3.
CAROTID_BIFURCATION_Z = -30.0


def _prevertebral_y(p: "PhantomParams", z: Any) -> np.ndarray:
    """y of the anterior surface of the vertebral bodies on the midline at heights z (LPS mm).

    Interpolated between the posed mid-body points of C2..C7 (constant above C2 and below C7):
    the visceral column and the carotid sheath are placed relative to it.
    """
    poses = _spine_poses(p)
    pts = [_pose_points(poses["C2"], (0.0, -C2_BODY_AY, C2_BODY_Z))]
    for n in range(3, 9):
        _, ay = _subaxial_body_semi_axes(n)
        pts.append(_pose_points(poses[_level_name(n)], (0.0, 0.5 - ay, _level_z(_level_name(n)))))
    pts = np.array(pts)[::-1]
    return np.interp(np.asarray(z, float), pts[:, 2], pts[:, 1])


#: Visceral column, as axial ellipses (z, gap_mm, cx, ax, ay): the lumen (pharynx, larynx,
#: trachea: air) or the organ (oesophagus) with its centre at y = front(z) - gap - ay, where
#: front is the anterior surface of the vertebral bodies (:func:`_prevertebral_y`). Gaps: the
#: prevertebral soft tissue (longus colli, retropharyngeal space, pharyngeal wall) in front of C2-C3
#: is at most 6-7 mm on CT (Rojas et al., AJNR 2009;30:136: upper limits 6 mm at C2, 7 mm at C3,
#: 18 mm at C6-C7, the latter including the oesophagus); the oesophagus lies ~1 mm in front of the
#: bodies on the midline (Rhyne et al., CT mapping of the cervical oesophagus) and a little to the
#: left (Gray's Anatomy). Levels: hyoid and upper thyroid cartilage at C4-C5, lower border of the
#: cricoid at C6-C7 (Mirjalili 2012): laryngeal inlet at C3-C4 (z = -30), larynx 44 mm long (adult
#: male, Gray's Anatomy) down to the top of C6 (z = -74), its vestibule open into the pharynx at the
#: inlet; trachea below. The oropharynx is wide (28 mm) down to the inlet; the hypopharynx behind
#: the larynx holds air down to C4-C5 (below, collapsed behind the cricoid, it is plain soft tissue
#: here). Widths: configurable defaults (no single published source).
PHARYNX_LEVELS = ((-4.0, 4.5, 0.0, 14.0, 5.0), (-24.0, 4.75, 0.0, 14.0, 4.5), (-30.0, 5.0, 0.0, 13.5, 4.0),
                  (-43.0, 5.5, 0.0, 8.0, 3.5), (-56.0, 6.0, 0.0, 6.0, 2.0))
LARYNX_LEVELS = ((-30.0, 10.0, 0.0, 6.5, 5.0), (-42.0, 17.0, 0.0, 7.0, 6.0), (-58.0, 17.0, 0.0, 8.0, 7.5),
                 (-74.0, 14.5, 0.0, 7.5, 7.5))
TRACHEA_LEVELS = ((-74.0, 14.5, 0.0, 7.5, 7.5), (-140.0, 14.0, 0.0, 8.5, 8.0))
ESOPHAGUS_LEVELS = ((-72.0, 1.2, 1.5, 8.0, 4.5), (-140.0, 1.2, 1.5, 9.0, 5.0))


def _visceral_ellipses(p: "PhantomParams", levels) -> list[tuple]:
    """(z, cx, cy, ax, ay, ay) rows for :func:`_swept_ellipse` from the gap-based *levels*."""
    rows = [(z, cx, float(_prevertebral_y(p, z)) - gap - ay, ax, ay, ay) for z, gap, cx, ax, ay in levels]
    return rows


def _vertebral_artery_centreline(p: "PhantomParams") -> list[tuple[float, float, float]]:
    """Centre line of the left vertebral artery (LPS mm; mirrored for the right).

    V1 ascends in front of the C7 transverse process and enters the C6 foramen (the usual level,
    ~90 %); V2 runs up through the foramina of C6..C3 (along each hole's axis), swings laterally to
    the C2 foramen and on to the C1 foramen; V3 loops back over the posterior arch of C1 and V4
    enters the skull. Points are placed in each vertebra's frame and moved with it (lordosis).
    Radius 2.2 mm (lumen diameter 4.4 mm; configurable default).
    """
    f = _foramina()
    poses = _spine_poses(p)

    def at(level, x, y, z):
        return tuple(_pose_points(poses[level], (x, y, z)))

    pts = [(16.0, -5.0, -130.0), (16.0, -4.5, -97.0)]
    x6, y6 = f["C6"][:2]
    pts.append(at("C6", x6, y6, -86.0))
    for n in range(6, 2, -1):
        x, y = f[f"C{n}"][:2]
        zc = _level_z(f"C{n}")
        pts += [at(f"C{n}", x, y, zc - 4.0), at(f"C{n}", x, y, zc + 4.0)]
    x3, y3 = f["C3"][:2]
    x2, y2 = f["C2"][:2]
    x1, y1 = f["C1"][:2]
    pts.append(at("C3", x3, y3, -19.0))
    pts += [at("C2", x2, y2, -11.0), at("C2", x2, y2, 6.0)]
    pts += [at("C1", *q) for q in ((x1, y1, 11.0), (x1, y1, 26.0), (24.0, 14.0, 28.5), (15.0, 28.5, 28.5),
                                   (9.0, 27.0, 33.0), (7.0, 20.0, 45.0), (6.0, 16.0, 60.0))]
    return pts


def _vertebral_artery_canal(grid: "_Grid", p: "PhantomParams", bone: np.ndarray) -> dict[str, np.ndarray]:
    """Bony canal of each vertebral artery: the transverse foramina of C1-C6 and the tube between them.

    The tube of radius :data:`FORAMEN_R_MM` (3 mm through C1) around the artery's centre line,
    which follows the axis of every transverse foramen, from the lower edge of the C6 transverse
    process to the upper edge of the C1 transverse process, bone excluded: inside a foramen it is
    the hole, between foramina the path the artery must follow. It does not move with
    ``vertebral_artery_shift_mm`` (the bone does not move).

    Returns
    -------
    dict
        ``{"vertebral_artery_canal_left": (K, J, I) bool, "vertebral_artery_canal_right": ...}``.
    """
    poses = _spine_poses(p)
    f = _foramina()
    z_lo = _pose_points(poses["C6"], (f["C6"][0], f["C6"][1], _level_z("C6") + 1.0 - 4.0))[2]
    z_hi = _pose_points(poses["C1"], (f["C1"][0], f["C1"][1], _level_z("C1") + 5.0))[2]
    zin = ((grid.z >= z_lo) & (grid.z <= z_hi))[:, None, None]
    out = {}
    line = _vertebral_artery_centreline(p)
    c1 = _pose_points(poses["C1"], [(f["C1"][0], f["C1"][1], _level_z("C1") - 6.0),
                                    (f["C1"][0], f["C1"][1], _level_z("C1") + 6.0)])
    for side, sx in (("left", 1.0), ("right", -1.0)):
        tube = grid.empty()
        _tube(tube, grid, [(sx * x, y, z) for x, y, z in line], FORAMEN_R_MM)
        _capsule(tube, grid, c1[0] * (sx, 1, 1), c1[1] * (sx, 1, 1), f["C1"][4])
        out[f"vertebral_artery_canal_{side}"] = tube & zin & ~bone
    return out


def _shift(points, s) -> list:
    return [tuple(np.asarray(q, float) + np.asarray(s, float)) for q in points]


# ---------------------------------------------------------------------------------------------
# the phantom
# ---------------------------------------------------------------------------------------------


def make_phantom(params: PhantomParams | None = None, **overrides: Any) -> Phantom:
    """Build the synthetic neck CT, its exact label map and dens landmarks.

    Parameters
    ----------
    params : PhantomParams, optional
        Defaults when omitted.
    **overrides
        Field values replacing those of *params* (e.g. ``make_phantom(lesion_radius_mm=6)``).

    Returns
    -------
    Phantom
        ``volume`` (float32 HU, axes (k, j, i) = (+S, +P, +L)), ``truth`` (canonical masks:
        body, bone, vertebrae_C1..C7 and T1 (those in view), lesion, spinal_canal, spinal_cord,
        vertebral_artery_*, vertebral_artery_canal_* (bony canal: foramina C1-C6 and the tube between),
        common/internal_carotid_artery_*, internal_jugular_vein_*, pharynx, larynx, trachea,
        airway, esophagus, mandible), ``landmarks`` and ``params``.

    Raises
    ------
    InputError
        Out-of-range parameters.

    Notes
    -----
    Deterministic: the same parameters give a bit-identical volume (noise from
    ``numpy.random.default_rng(seed)``). ``bone`` is mineralised bone: the vertebrae and the
    mandible minus the lytic lesion; ``vertebrae_C2`` includes the lesion. Masks are made
    mutually exclusive by priority bone > vessels > airway > oesophagus > cord > canal, except
    ``vertebral_artery_canal_*``, the bony canal, which contains its artery.
    """
    if params is None:
        params = PhantomParams()
    if overrides:
        d = params.to_dict()
        unknown = set(overrides) - set(d)
        if unknown:
            raise InputError(f"Unknown phantom parameter(s): {', '.join(sorted(unknown))}.")
        d.update(overrides)
        params = PhantomParams.from_dict(d)
    p = params
    s = float(p.spacing_mm)
    lo = np.array([-60.0, -76.0, p.fov_inferior_mm])
    hi = np.array([60.0, 68.0, p.fov_superior_mm])
    shape_xyz = np.floor((hi - lo) / s + 1e-6).astype(int) + 1
    shape = (int(shape_xyz[2]), int(shape_xyz[1]), int(shape_xyz[0]))
    grid = _Grid(lo, s, shape)
    zlo, zhi = p.fov_inferior_mm - 20.0, p.fov_superior_mm + 20.0

    # ---- bone -------------------------------------------------------------------------------
    poses = _spine_poses(p)

    def posed(level):
        M = poses[level]
        return grid if np.allclose(M, np.eye(4)) else _PosedGrid(grid, M)

    verts: dict[str, np.ndarray] = {"vertebrae_C1": _c1(posed("C1"), p), "vertebrae_C2": _c2(posed("C2"), p)}
    for n in range(3, 9):
        lv = _level_name(n)
        zc = _pose_points(poses[lv], (0.0, 0.0, _level_z(lv)))[2]
        if zc + 10 >= p.fov_inferior_mm:
            verts[f"vertebrae_{lv}"] = _subaxial(posed(lv), n)
    mandible = _mandible(grid)
    # vertebrae never overlap each other (first one wins, top to bottom)
    taken = grid.empty()
    for name in verts:
        verts[name] &= ~taken
        taken |= verts[name]
    mandible &= ~taken
    all_bone = taken | mandible

    dg = _posed_dens_geometry(p)
    lesion = grid.empty()
    if p.lesion_radius_mm > 0:
        c = dg["centre"] + np.asarray(p.lesion_offset_mm)
        r = float(p.lesion_radius_mm)
        _paint(lesion, grid, c - r, c + r,
               lambda X, Y, Z: (X - c[0]) ** 2 + (Y - c[1]) ** 2 + (Z - c[2]) ** 2 <= r * r)
        lesion &= verts["vertebrae_C2"]
        if not lesion.any():
            raise InputError(f"The lesion (radius {r:g} mm, offset {tuple(float(x) for x in p.lesion_offset_mm)} mm "
                             "from the dens centre) does not reach C2; use a smaller offset or lesion radius 0 for "
                             "no lesion.")
    bone = all_bone & ~lesion

    # ---- soft tissue shapes -----------------------------------------------------------------
    body_levels = [(zlo, 0, 0, 50, 50, 62), (-5.0, 0, 0, 51, 52, 62), (14.0, 0, 0, 56, 67, 63), (zhi, 0, 0, 57, 68, 63)]
    body = grid.empty()
    _swept_ellipse(body, grid, body_levels)
    body_inner = grid.empty()
    _swept_ellipse(body_inner, grid, body_levels, inset=5.0)

    # dural sac (CSF) inside the bony canal; the canal is the whole vertebral foramen (epidural
    # space included), at C1 behind the transverse ligament
    # the sac and cord follow the lordotic canal (axial ellipses centred on its centre line)
    zs_c = np.linspace(zlo, zhi, 25)
    cy_c = _canal_centre_y(p, zs_c)
    dural = grid.empty()
    _swept_ellipse(dural, grid, [(z, CANAL_C[0], y, CANAL_AX, CANAL_AY, CANAL_AY) for z, y in zip(zs_c, cy_c)])
    dens_m = grid.empty()
    _dens(dens_m, posed("C2"), p)
    canal = _vertebral_foramen(grid, verts, dens_m, centre_y=_canal_centre_y(p, grid.z.astype(float))) | dural
    cord = grid.empty()
    cx, cy, cz = p.cord_shift_mm
    cy_cord = _canal_centre_y(p, zs_c, dy=CORD_C[1] - CANAL_C[1])
    _swept_ellipse(cord, grid, [(z + cz, CORD_C[0] + cx, y + cy, CORD_AX, CORD_AY, CORD_AY) for z, y in zip(zs_c, cy_cord)])

    # visceral column in front of the (lordotic) spine; the naso/oropharynx above C2 lies in front
    # of the C1 anterior arch and the longus capitis (configurable defaults)
    pharynx = grid.empty()
    _swept_ellipse(pharynx, grid, _visceral_ellipses(p, PHARYNX_LEVELS)
                   + [(20.0, 0.0, -21.0, 13.0, 6.0, 6.0), (zhi, 0.0, -21.0, 12.0, 7.0, 7.0)])
    larynx = grid.empty()
    _swept_ellipse(larynx, grid, _visceral_ellipses(p, LARYNX_LEVELS))
    trachea = grid.empty()
    _swept_ellipse(trachea, grid, _visceral_ellipses(p, TRACHEA_LEVELS))
    esophagus = grid.empty()
    _swept_ellipse(esophagus, grid, _visceral_ellipses(p, ESOPHAGUS_LEVELS))

    vessels: dict[str, np.ndarray] = {}
    for base_name, segs in _vessel_paths(p).items():
        for side, sx in (("left", 1.0), ("right", -1.0)):
            m = grid.empty()
            for pts, rad in segs:
                pts = [(sx * x, y, z) for x, y, z in pts]
                if base_name == "vertebral_artery":
                    pts = _shift(pts, p.vertebral_artery_shift_mm)
                elif p.carotid_shift_side in ("both", side):
                    pts = _shift(pts, p.carotid_shift_mm)
                _tube(m, grid, pts, rad)
            vessels[f"{base_name}_{side}"] = m
    for side in ("left", "right"):  # the ICA starts where the CCA ends
        vessels[f"internal_carotid_artery_{side}"] &= ~vessels[f"common_carotid_artery_{side}"]

    # ---- exclusive truth masks by priority ----------------------------------------------------
    occupied = all_bone.copy()
    for name in vessels:
        vessels[name] &= ~occupied & body
    for name in vessels:
        occupied |= vessels[name]
    airway_parts = {"pharynx": pharynx, "larynx": larynx, "trachea": trachea}
    for name, m in airway_parts.items():
        m &= ~occupied & body
    larynx &= ~pharynx
    trachea &= ~(pharynx | larynx)
    airway = pharynx | larynx | trachea
    occupied |= airway
    esophagus &= ~occupied
    occupied |= esophagus
    canal &= ~occupied
    dural &= canal
    cord &= dural

    # ---- HU ---------------------------------------------------------------------------------
    vol = np.full(shape, HU["air"], dtype=np.float32)
    vol[body] = HU["muscle"]
    vol[body & ~body_inner] = HU["fat"]
    sheath = grid.empty()  # fat around the vessels (carotid sheath, perivertebral fat)
    for base_name, segs in _vessel_paths(p).items():
        if base_name == "vertebral_artery":
            continue
        for sx, side in ((1.0, "left"), (-1.0, "right")):
            for pts, rad in segs:
                pts = [(sx * x, y, z) for x, y, z in pts]
                if p.carotid_shift_side in ("both", side):
                    pts = _shift(pts, p.carotid_shift_mm)
                _tube(sheath, grid, pts, rad + 2.0)
    vol[sheath & body] = HU["fat"]
    discs = grid.empty()  # intervertebral discs C2/C3 .. C7/T1 (soft tissue, not labelled)
    for n in range(3, 9):
        lv, lu = _level_name(n), _level_name(n - 1)
        top = _pose_points(poses[lv], (0.0, 0.5, _level_z(lv) + 7.25))
        h_up = C2_BODY_HALF_HEIGHT if n == 3 else 7.25
        up = _pose_points(poses[lu], (0.0, 0.0 if n == 3 else 0.5, _level_z(lu) - h_up))
        ax_, ay_ = 8.5 + 0.5 * (n - 3.5), 7.5 + 0.25 * (n - 3.5)
        _swept_ellipse(discs, grid, [(top[2] - 1.0, 0.0, top[1], ax_, ay_, ay_), (up[2] + 1.0, 0.0, up[1], ax_, ay_, ay_)])
    vol[discs & ~all_bone] = HU["disc"]
    vol[esophagus] = HU["esophagus"]
    vol[canal] = HU["epidural"]
    vol[dural] = HU["csf"]
    vol[cord] = HU["cord"]
    vol[airway] = HU["air"]
    art = HU["artery_contrast"] if p.contrast else HU["blood"]
    vein = HU["vein_contrast"] if p.contrast else HU["blood"]
    for name, m in vessels.items():
        vol[m] = vein if "vein" in name else art
    for name, m in verts.items():
        cortex = _cortex(m, s, p.cortex_mm)
        vol[m] = HU["cancellous"]
        vol[cortex] = HU["cortical"]
    mcortex = _cortex(mandible, s, 2.0)
    vol[mandible] = HU["mandible_cancellous"]
    vol[mcortex] = HU["mandible_cortical"]
    vol[lesion] = HU["lesion"]

    truth_masks: dict[str, np.ndarray] = {"body": body | all_bone, "bone": bone}
    truth_masks.update(verts)
    truth_masks["lesion"] = lesion
    truth_masks["spinal_canal"] = canal
    truth_masks["spinal_cord"] = cord
    truth_masks.update(_vertebral_artery_canal(grid, p, all_bone))
    truth_masks.update(vessels)
    truth_masks.update({"pharynx": pharynx, "larynx": larynx, "trachea": trachea, "airway": airway,
                        "esophagus": esophagus, "mandible": mandible})

    if any(a != 0 for a in p.rotation_deg):
        from scipy.ndimage import affine_transform

        A = axis_aligned_affine((s, s, s), tuple(lo))
        c = np.array([0.0, 0.0, C2_BODY_Z])
        T = np.eye(4)
        T[:3, :3] = _rotation_matrix(p).T  # output point -> source point: R^T (x - c) + c
        T[:3, 3] = c - T[:3, :3] @ c
        M = np.linalg.inv(A) @ T @ A
        vol = affine_transform(vol, M[:3, :3], offset=M[:3, 3], order=1, mode="constant", cval=HU["air"])
        names = list(truth_masks)  # pack the masks into bit planes: one nearest-neighbour pass for all
        word = np.uint32 if len(names) <= 32 else np.uint64
        packed = np.zeros(shape, dtype=word)
        for bit, name in enumerate(names):
            packed |= truth_masks[name].astype(word) << word(bit)
        packed = affine_transform(packed, M[:3, :3], offset=M[:3, 3], order=0, mode="constant", cval=0)
        for bit, name in enumerate(names):
            truth_masks[name] = (packed >> word(bit)) & word(1) > 0

    if p.blur_mm > 0:
        from scipy.ndimage import gaussian_filter

        vol = gaussian_filter(vol, sigma=p.blur_mm / s, mode="nearest", truncate=3.0)
    if p.noise_hu > 0:
        rng = np.random.default_rng(p.seed)
        vol += rng.standard_normal(shape, dtype=np.float32) * np.float32(p.noise_hu)
    vol = np.rint(np.clip(vol, -1024.0, 3071.0)).astype(np.float32)  # integer HU, as a scanner stores

    volume = Volume(vol, axis_aligned_affine((s, s, s), tuple(lo)),
                    AcquisitionInfo(modality="CT", kernel="SYNTHETIC", kvp=120.0, contrast=bool(p.contrast),
                                    series_description="osteoplan neck model CT", source_format="phantom"))

    truth = LabelMap(volume, truth_masks, {n: TRUTH_SOURCE for n in truth_masks})

    landmarks = DensLandmarks(
        apex_lps_mm=_rotate_points(p, dg["apex"]),
        waist_lps_mm=_rotate_points(p, dg["waist"]),
        waist_diameter_mm=dg["waist_diameter"],
        axis_unit=_rotate_points(p, dg["axis"], vector=True),
        anteroinferior_body_lps_mm=_rotate_points(p, _pose_points(poses["C2"], _anteroinferior_point())),
        body_centre_lps_mm=np.array([0.0, 0.0, C2_BODY_Z]),
        confidence=1.0,
        method=TRUTH_SOURCE,
        notes=("analytic ground truth of the osteoplan phantom",),
    )
    return Phantom(volume=volume, truth=truth, landmarks=landmarks, params=p, hu_table=dict(HU))


#: A left anterior odontoid-screw line that exists on the default phantom (found by the brute-force
#: search of tests/anatomy/test_phantom.py over entry points x tips, LPS mm): skin of the left
#: anterolateral neck at the C7/T1 level -> between the visceral column (medially) and the carotid
#: sheath (laterally) -> prevertebral space in front of C3 -> anteroinferior rim of the C2 body
#: (5.6 mm left of the midline, 0.9 mm above the anteroinferior corner) -> up the dens, 10.4 deg
#: off its axis, through the default lesion -> tip 2.9 mm below the apex, 0.5 mm right of the axis.
#: Clearances of the line without hydrodissection: pharynx 3.5 mm, carotid 3.5 mm, internal jugular
#: vein 9.9 mm, oesophagus 10.9 mm, larynx/trachea 10.8 mm, vertebral-artery canal 7.8 mm, spinal
#: canal 5.1 mm, C3 anterosuperior rim 0.7 mm (the line does not cross C3; a 3.5 mm screw shaft
#: would touch the rim, as in patients whose C3 rim is notched for this screw).
REFERENCE_SKIN_ENTRY_LPS_MM = (25.13, -43.63, -111.10)
REFERENCE_BONE_ENTRY_LPS_MM = (5.6, -4.8, -11.6)
REFERENCE_TIP_LPS_MM = (-0.5, 7.364, 19.578)


def reference_trajectory(phantom: Phantom) -> dict[str, np.ndarray]:
    """The known feasible anterior odontoid-screw line of the default phantom (see :data:`REFERENCE_TIP_LPS_MM`).

    Returns
    -------
    dict
        ``skin_entry``, ``bone_entry`` (on the anteroinferior rim of C2) and ``target`` (the screw
        tip in the apex region), each an LPS mm array (3,). Only meaningful for the default anatomy
        (vessel shifts, tilts and the lordosis change it); with ``rotation_deg`` the path rotates with
        the anatomy (its skin point may then leave the skin).
    """
    return {
        "skin_entry": _rotate_points(phantom.params, REFERENCE_SKIN_ENTRY_LPS_MM),
        "bone_entry": _rotate_points(phantom.params, REFERENCE_BONE_ENTRY_LPS_MM),
        "target": _rotate_points(phantom.params, REFERENCE_TIP_LPS_MM),
    }


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------


def _uid(p: PhantomParams, *parts: Any) -> str:
    from pydicom.uid import generate_uid

    key = json.dumps(p.to_dict(), sort_keys=True)
    return generate_uid(entropy_srcs=["osteoplan-phantom", key, *[str(x) for x in parts]])


def write_dicom_series(volume: Volume, out_dir: str | Path, params: PhantomParams | None = None) -> list[Path]:
    """Write an axis-aligned CT volume as a single-frame CT Image Storage series (one file per slice).

    Parameters
    ----------
    volume : Volume
        Must be axial (k along +S or -S, rows along +P, columns along +L).
    out_dir : path
        Folder (created); files ``CT_0001.dcm`` ... in slice order.
    params : PhantomParams, optional
        Used to derive deterministic UIDs.

    Returns
    -------
    list of Path
        The files written.

    Notes
    -----
    Geometry: ImageOrientationPatient = row direction (column step, +L) then column direction
    (row step, +P); PixelSpacing = [row spacing, column spacing]; ImagePositionPatient = LPS of
    each slice's first voxel. Pixel data are unsigned 16-bit with RescaleIntercept -1024.
    No identifying data: the patient is named ``PHANTOM^DEMO`` with a fixed synthetic ID (words the
    series description does not use, so readers that hide descriptions holding name parts keep it).
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

    p = params or PhantomParams()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    d = volume.direction
    row_dir = d[:, 2]  # along a row = column index i
    col_dir = d[:, 1]  # down a column = row index j
    sp = volume.spacing_mm
    study_uid, series_uid, for_uid = _uid(p, "study"), _uid(p, "series"), _uid(p, "for")
    pix = np.clip(np.rint(volume.array + 1024.0), 0, 65535).astype(np.uint16)
    paths = []
    for k in range(volume.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        sop_uid = _uid(p, "sop", k)
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = for_uid
        ds.PatientName = "PHANTOM^DEMO"
        ds.PatientID = "OSTEOPLAN-PHANTOM"
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "Synthetic phantom: no patient data"
        ds.PositionReferenceIndicator = ""
        ds.StudyDate = "20000101"
        ds.StudyTime = "000000"
        ds.SeriesDate = "20000101"
        ds.ContentDate = "20000101"
        ds.ContentTime = "000000"
        ds.StudyID = "1"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.Modality = "CT"
        ds.Manufacturer = "osteoplan"
        ds.ManufacturerModelName = "synthetic neck phantom"
        ds.SeriesDescription = "osteoplan neck model CT"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SeriesNumber = 1
        ds.InstanceNumber = k + 1
        ds.AcquisitionNumber = 1
        ds.BodyPartExamined = "NECK"
        ds.KVP = 120
        ds.ConvolutionKernel = "SYNTHETIC"
        ds.ContrastBolusAgent = "IODINE" if p.contrast else None
        if not p.contrast:
            del ds.ContrastBolusAgent
        ds.PatientPosition = "HFS"
        ds.ImageOrientationPatient = [round(float(v), 8) for v in (*row_dir, *col_dir)]
        ipp = volume.index_to_world([k, 0, 0])
        ds.ImagePositionPatient = [round(float(v), 6) for v in ipp]
        ds.SliceLocation = round(float(ipp[2]), 6)
        ds.SliceThickness = round(float(sp[0]), 6)
        ds.PixelSpacing = [round(float(sp[1]), 6), round(float(sp[2]), 6)]
        ds.Rows, ds.Columns = int(volume.shape[1]), int(volume.shape[2])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.WindowCenter = 400
        ds.WindowWidth = 2000
        ds.PixelData = pix[k].tobytes()
        path = out_dir / f"CT_{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_phantom(phantom: Phantom, out_dir: str | Path, overwrite: bool = False, dicom: bool = True) -> dict[str, Any]:
    """Write the phantom's CT, ground truth and landmarks, atomically.

    Layout of *out_dir*::

        ct.nii.gz                 CT (int16 HU, RAS NIfTI as usual)
        labels/<name>.nii.gz      one uint8 mask per structure (TotalSegmentator layout)
        labels.nii.gz             all structures in one uint16 label image ...
        labels.json               ... and its table {"1": "body", ...} (later labels overwrite earlier)
        landmarks.json            DensLandmarks.to_dict()
        phantom.json              parameters, HU table, structure volumes (mL)
        dicom/CT_0001.dcm ...     the CT as a DICOM series (no identifying data)

    Parameters
    ----------
    phantom : Phantom
    out_dir : path
        Created; an existing non-empty folder is an error unless ``overwrite``.
    overwrite : bool
        Replace an existing folder (after the new one is complete).
    dicom : bool
        Also write the DICOM series.

    Returns
    -------
    dict
        ``{"ct": path, "labels": {name: path}, "multilabel": path, "label_table": path,
        "landmarks": path, "params": path, "dicom": folder or None}`` (final paths).

    Raises
    ------
    InputError
        *out_dir* exists and is not empty (and ``overwrite`` is False).
    """
    import nibabel as nib

    from osteoplan.atomic import atomic_dir

    out_dir = Path(out_dir)
    vol = phantom.volume
    try:
        ctx = atomic_dir(out_dir, overwrite=overwrite, manifest="phantom")
        tmp = ctx.__enter__()
    except FileExistsError:
        raise InputError(f"Output folder {safe_path(out_dir)} exists and is not empty; choose another or pass --force.") from None
    try:
        nib.save(vol.to_nifti(np.int16), tmp / "ct.nii.gz")
        (tmp / "labels").mkdir()
        names = phantom.truth.names()
        for name in names:
            img = vol.with_array(phantom.truth.get(name).astype(np.float32)).to_nifti(np.uint8)
            nib.save(img, tmp / "labels" / f"{name}.nii.gz")
        order = [n for n in names if n not in ("body", "bone", "airway")]
        # the bony vertebral-artery canals hold the arteries: write them first so the artery wins
        order = sorted(order, key=lambda n: not n.startswith("vertebral_artery_canal"))
        arr, table = phantom.truth.to_multilabel(["body"] + order)
        ml = vol.with_array(arr.astype(np.float32)).to_nifti(np.uint16)
        nib.save(ml, tmp / "labels.nii.gz")
        (tmp / "labels.json").write_text(json.dumps({str(k): v for k, v in table.items()}, indent=1))
        (tmp / "landmarks.json").write_text(json.dumps(phantom.landmarks.to_dict(), indent=1))
        meta = {
            "format": "osteoplan-phantom",
            "version": 1,
            "params": phantom.params.to_dict(),
            "hu_table": phantom.hu_table,
            "geometry": vol.summary(),
            "structures_ml": {n: round(phantom.truth.volume_ml(n), 4) for n in names},
        }
        (tmp / "phantom.json").write_text(json.dumps(meta, indent=1))
        if dicom:
            write_dicom_series(vol, tmp / "dicom", phantom.params)
    except BaseException as exc:
        ctx.__exit__(type(exc), exc, exc.__traceback__)
        raise
    ctx.__exit__(None, None, None)
    return {
        "ct": out_dir / "ct.nii.gz",
        "labels": {n: out_dir / "labels" / f"{n}.nii.gz" for n in names},
        "multilabel": out_dir / "labels.nii.gz",
        "label_table": out_dir / "labels.json",
        "landmarks": out_dir / "landmarks.json",
        "params": out_dir / "phantom.json",
        "dicom": (out_dir / "dicom") if dicom else None,
    }


def load_phantom_dir(out_dir: str | Path) -> Phantom:
    """Read back a folder written by :func:`write_phantom`.

    Returns
    -------
    Phantom
        Volume from ``ct.nii.gz`` (HU rounded to integers), truth from ``labels/``,
        landmarks from ``landmarks.json`` and parameters from ``phantom.json``.

    Raises
    ------
    InputError
        The folder is not a phantom folder (missing files).
    """
    import nibabel as nib

    d = Path(out_dir)
    need = ["ct.nii.gz", "labels", "landmarks.json", "phantom.json"]
    missing = [n for n in need if not (d / n).exists()]
    if missing:
        raise InputError(f"{safe_path(d)} is not a phantom folder (missing {', '.join(missing)}); create it with 'osteoplan phantom'.")
    meta = json.loads((d / "phantom.json").read_text())
    params = PhantomParams.from_dict(meta.get("params", {}))
    vol = Volume.from_nifti(nib.load(str(d / "ct.nii.gz")),
                            AcquisitionInfo(modality="CT", contrast=bool(params.contrast), source_format="nifti"))
    masks = {}
    for f in sorted((d / "labels").glob("*.nii.gz")):
        name = f.name[: -len(".nii.gz")]
        m = Volume.from_nifti(nib.load(str(f)))
        if m.shape != vol.shape or not np.allclose(m.affine, vol.affine, atol=1e-4):
            raise InputError(f"Label {name} of {safe_path(d)} is not on the CT grid; re-create the phantom folder.")
        masks[name] = m.array > 0.5
    truth = LabelMap(vol, masks, {n: TRUTH_SOURCE for n in masks})
    lm = DensLandmarks.from_dict(json.loads((d / "landmarks.json").read_text()))
    return Phantom(volume=vol, truth=truth, landmarks=lm, params=params, hu_table=meta.get("hu_table", dict(HU)))
