"""C2 split into dens, body and posterolateral elements by geometric rules on the dens landmarks.

One rule, used by the anatomy stage (lesion fractions, :mod:`osteoplan.anatomy.lesion`) and the
risk stage (lesion metrics and CT rigidity, :mod:`osteoplan.risk`), so both report the same
fractions. Configurable defaults, no published source (the label maps hold one C2 mask, not its
parts):

* ``s`` is the distance along the dens axis from the waist (positive towards the apex), ``u``
  the patient-left and ``v`` the posterior in-plane directions (:func:`section_basis`);
* dens: voxels with ``s >= 0`` within ``max(6 mm, 0.75 x waist diameter)`` of the axis;
* body: voxels with ``s < 0`` whose (u, v) offset from the body centre is within the body's
  half-depth ``d`` (distance from the body centre to the anteroinferior point along v, at least
  4 mm) in v (``-1.5 d <= v <= +d``) and within ``1.1 d`` in u;
* posterolateral elements (pedicles, lateral masses, laminae): the rest, left (u > 0) or right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from osteoplan.anatomy import _local
from osteoplan.errors import InputError
from osteoplan.imaging.volume import Volume

__all__ = ["DENS_RADIUS_MIN_MM", "DENS_RADIUS_OF_WAIST", "section_basis", "C2Frame", "c2_frame", "C2Parts",
           "split_c2"]

#: Dens part: within max(DENS_RADIUS_MIN_MM, DENS_RADIUS_OF_WAIST x waist diameter) of the axis
#: (configurable defaults, no published source).
DENS_RADIUS_MIN_MM = 6.0
DENS_RADIUS_OF_WAIST = 0.75


def section_basis(axis_unit: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal (u, v, a) for sections perpendicular to ``axis_unit`` (LPS).

    ``u`` is patient-left (+x) made perpendicular to the axis, ``v = a x u`` (posterior for an
    axis pointing superior), ``a`` the unit axis. Raises InputError for a zero or left-right axis.
    """
    a = np.asarray(axis_unit, dtype=np.float64).reshape(3)
    n = np.linalg.norm(a)
    if not n > 0:
        raise InputError("The dens axis has zero length.")
    a = a / n
    left = np.array([1.0, 0.0, 0.0])
    u = left - a.dot(left) * a
    if np.linalg.norm(u) < 1e-3:
        raise InputError("The dens axis runs left-right; it must point mostly superior.")
    u /= np.linalg.norm(u)
    v = np.cross(a, u)
    return u, v, a


@dataclass(frozen=True)
class C2Frame:
    """The voxels of a C2 mask in the dens frame, with their part.

    Attributes
    ----------
    idx : int array (N, 3)
        Voxel indices (k, j, i) of the mask.
    s, u, v : float arrays (N,)
        Axial distance from the waist and in-plane offsets (mm), see the module docstring.
    is_dens, is_body, is_left, is_right : bool arrays (N,)
        Part of each voxel (posterolateral left/right = neither dens nor body).
    rules : dict
        The radius and half-depth used (mm) and the rule's provenance.
    """

    idx: np.ndarray
    s: np.ndarray
    u: np.ndarray
    v: np.ndarray
    is_dens: np.ndarray
    is_body: np.ndarray
    is_left: np.ndarray
    is_right: np.ndarray
    rules: dict[str, Any]


def c2_frame(volume: Volume, mask: np.ndarray, landmarks: Any) -> C2Frame:
    """Dens-frame coordinates and parts of the voxels of *mask* (bool (K, J, I) on *volume*'s grid).

    ``landmarks`` is a :class:`~osteoplan.anatomy.landmarks.DensLandmarks` (waist, axis, waist
    diameter, body centre, anteroinferior point; LPS mm). Raises InputError for a left-right axis.
    """
    u_ax, v_ax, a_ax = section_basis(landmarks.axis_unit)
    waist = np.asarray(landmarks.waist_lps_mm, float)
    idx = _local.argwhere(mask)  # = np.argwhere(mask)
    w = volume.index_to_world(idx.astype(float)) - waist
    s, u, v = w @ a_ax, w @ u_ax, w @ v_ax
    r_dens = max(DENS_RADIUS_MIN_MM, DENS_RADIUS_OF_WAIST * float(landmarks.waist_diameter_mm))
    is_dens = (s >= 0) & (np.hypot(u, v) <= r_dens)
    bc = np.asarray(landmarks.body_centre_lps_mm, float) - waist
    ub, vb = float(bc @ u_ax), float(bc @ v_ax)
    ai = np.asarray(landmarks.anteroinferior_body_lps_mm, float) - waist
    d = max(abs(float(ai @ v_ax) - vb), 4.0)
    is_body = (s < 0) & (v - vb <= d) & (v - vb >= -1.5 * d) & (np.abs(u - ub) <= 1.1 * d)
    rest = ~is_dens & ~is_body
    is_left = rest & (u - ub > 0)
    rules = {"dens_radius_mm": round(r_dens, 2), "body_half_depth_mm": round(d, 2),
             "rule": "geometric split on the dens landmarks (configurable default, no published source)"}
    return C2Frame(idx, s, u, v, is_dens, is_body, is_left, rest & ~is_left, rules)


@dataclass(frozen=True)
class C2Parts:
    """Boolean masks (K, J, I) of the parts of C2, and the rule used."""

    dens: np.ndarray
    body: np.ndarray
    posterior_left: np.ndarray
    posterior_right: np.ndarray
    rules: dict[str, Any]

    @property
    def anterior_column(self) -> np.ndarray:
        """Dens + body."""
        return self.dens | self.body


def split_c2(volume: Volume, c2_mask: np.ndarray, landmarks: Any) -> C2Parts:
    """Split a C2 mask (bool (K, J, I)) into dens, body and left/right posterolateral elements.

    Rules in the module docstring. Raises InputError for a left-right dens axis.
    """
    f = c2_frame(volume, c2_mask, landmarks)

    def scatter(sel: np.ndarray) -> np.ndarray:
        m = np.zeros(volume.shape, bool)
        m[tuple(f.idx[sel].T)] = True
        return m

    return C2Parts(scatter(f.is_dens), scatter(f.is_body), scatter(f.is_left), scatter(f.is_right), f.rules)
