"""Small geometry helpers for the verification stage (LPS mm, 4x4 homogeneous matrices).

A rigid transform is a 4x4 matrix ``M`` acting on column vectors: ``x' = M[:3, :3] @ x + M[:3, 3]``.
Directions are unit vectors (3,); angles are degrees at every interface.
"""

from __future__ import annotations

import numpy as np


def unit(v) -> np.ndarray:
    """*v* scaled to length 1 (float64, shape (3,)).

    Raises
    ------
    ValueError
        The vector has (near) zero length.
    """
    v = np.asarray(v, dtype=float)
    n = float(np.linalg.norm(v))
    if n < 1e-12:
        raise ValueError("cannot normalise a zero-length vector")
    return v / n


def rotation_about(axis, angle_deg: float) -> np.ndarray:
    """3x3 rotation by *angle_deg* about *axis* (right hand rule, Rodrigues' formula)."""
    k = unit(axis)
    a = np.radians(angle_deg)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * (K @ K)


def rigid(rotation: np.ndarray, translation_mm=(0.0, 0.0, 0.0), centre_lps_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4 rigid matrix ``x' = R (x - c) + c + t`` (rotation about *centre_lps_mm*, then translation)."""
    R = np.asarray(rotation, float)
    c = np.asarray(centre_lps_mm, float)
    M = np.eye(4)
    M[:3, :3] = R
    M[:3, 3] = c - R @ c + np.asarray(translation_mm, float)
    return M


def apply(M: np.ndarray, points_lps) -> np.ndarray:
    """Apply the 4x4 matrix *M* to points (..., 3)."""
    p = np.asarray(points_lps, float)
    return p @ M[:3, :3].T + M[:3, 3]


def rotation_angle_deg(M: np.ndarray) -> float:
    """Angle (deg) of the rotation part of a rigid matrix."""
    c = (np.trace(M[:3, :3]) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def random_perpendicular(d, rng: np.random.Generator) -> np.ndarray:
    """A random unit vector perpendicular to *d* (uniform in angle around it)."""
    d = unit(d)
    a = np.cross(d, [1.0, 0.0, 0.0] if abs(d[0]) < 0.9 else [0.0, 1.0, 0.0])
    a = unit(a)
    b = np.cross(d, a)
    t = rng.uniform(0, 2 * np.pi)
    return np.cos(t) * a + np.sin(t) * b


def angle_deg(a, b) -> float:
    """Angle (deg, 0-180) between two directions."""
    return float(np.degrees(np.arccos(np.clip(unit(a) @ unit(b), -1.0, 1.0))))


def point_to_line_mm(p, origin, direction) -> float:
    """Distance (mm) from point *p* to the infinite line through *origin* along *direction*."""
    d = unit(direction)
    v = np.asarray(p, float) - np.asarray(origin, float)
    return float(np.linalg.norm(v - (v @ d) * d))


def point_to_segment_mm(p, a, b) -> float:
    """Distance (mm) from point *p* to the segment *a*-*b*."""
    a, b, p = (np.asarray(x, float) for x in (a, b, p))
    ab = b - a
    t = float(np.clip((p - a) @ ab / max(ab @ ab, 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


def patient_terms(v_lps) -> str:
    """A displacement (LPS mm) in words, largest component first, e.g. ``"1.2 mm left, 0.4 mm anterior"``.

    LPS: +x = patient left, +y = posterior, +z = superior (cranial).
    """
    names = (("left", "right"), ("posterior", "anterior"), ("cranial", "caudal"))
    v = np.asarray(v_lps, float)
    parts = []
    for ax in np.argsort(-np.abs(v)):
        if abs(v[ax]) < 0.05:
            continue
        parts.append(f"{abs(v[ax]):.1f} mm {names[ax][0] if v[ax] > 0 else names[ax][1]}")
    return ", ".join(parts) if parts else "0.0 mm"


def direction_word(v_lps) -> str:
    """The patient direction of the largest component of *v_lps*: left, right, posterior, anterior, cranial, caudal."""
    v = np.asarray(v_lps, float)
    ax = int(np.argmax(np.abs(v)))
    return (("left", "right"), ("posterior", "anterior"), ("cranial", "caudal"))[ax][0 if v[ax] > 0 else 1]
