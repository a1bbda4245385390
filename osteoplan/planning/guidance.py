"""C-arm and CT gantry numbers for a straight path.

C-arm angles use the DICOM positioner convention (PS3.3 C.8.7.5, patient supine, head first):
the detector direction from the isocentre is ``u = (sin(a) cos(b), -cos(a) cos(b), sin(b))`` in LPS,
with primary angle ``a`` (> 0 LAO: detector towards the patient's left; < 0 RAO) and secondary angle
``b`` (> 0 cranial, < 0 caudal). ``a = 0, b = 0`` is the AP view (detector anterior).
"""

from __future__ import annotations

import numpy as np

from osteoplan.planning.model import CArmView, Guidance


def carm_angles(u_lps: np.ndarray) -> tuple[float, float]:
    """(primary_deg, secondary_deg) putting the detector along unit vector *u_lps* (see module docstring)."""
    u = np.asarray(u_lps, float)
    u = u / np.linalg.norm(u)
    b = np.degrees(np.arcsin(np.clip(u[2], -1, 1)))
    a = np.degrees(np.arctan2(u[0], -u[1]))
    return float(a), float(b)


def detector_direction(primary_deg: float, secondary_deg: float) -> np.ndarray:
    """Inverse of :func:`carm_angles`: unit LPS vector from the isocentre to the detector."""
    a, b = np.radians(primary_deg), np.radians(secondary_deg)
    return np.array([np.sin(a) * np.cos(b), -np.cos(a) * np.cos(b), np.sin(b)])


def _label(a: float, b: float) -> str:
    lr = "LAO" if a >= 0 else "RAO"
    cc = "CRAN" if b >= 0 else "CAUD"
    return f"{lr} {abs(a):.0f}° / {cc} {abs(b):.0f}°"


def _view(u: np.ndarray, note: str | None = None) -> CArmView:
    a, b = carm_angles(u)
    return CArmView(primary_deg=round(a, 1), secondary_deg=round(b, 1), label=_label(a, b),
                    detector_direction_lps=tuple(round(float(x), 4) for x in u / np.linalg.norm(u)), note=note)


def gantry_tilt_deg(d_lps: np.ndarray) -> float | None:
    """CT gantry tilt (deg) whose tilted axial plane contains direction *d_lps*.

    The gantry tilts about the left-right (x) axis, so a tilted slice contains x and
    ``(0, cos t, sin t)``; the path lies in one slice when ``tan t = d_z / d_y``. Positive tilt = the
    slice rises (towards the head) going posteriorly. None when ``|d_y|`` is ~0 and ``d_z`` is not
    (a path in the coronal plane needs a 90 deg tilt: impossible).
    """
    d = np.asarray(d_lps, float)
    if abs(d[1]) < 1e-6:
        return 0.0 if abs(d[2]) < 1e-6 else None
    return float(np.degrees(np.arctan(d[2] / d[1])))


def guidance_for(direction_unit: np.ndarray, gantry_limit_deg: float) -> Guidance:
    """Bull's-eye and progression C-arm views and CT gantry tilt for a path (skin -> target direction).

    Bull's-eye: the detector sits on the skin-entry side of the path (``u = -d``), so the guide pin is
    seen end-on. If that would put the detector below the table (posterior half), the opposite end
    is used and noted. Progression view: the direction perpendicular to the path closest to AP
    (0 deg / 0 deg), showing the pin's full length.
    """
    d = np.asarray(direction_unit, float)
    d = d / np.linalg.norm(d)
    u = -d
    note = "detector on the skin-entry side"
    if u[1] > 0:  # posterior: below a supine patient
        u = d
        note = "detector on the far side (entry side would be below the table)"
    bull = _view(u, note)
    ap = np.array([0.0, -1.0, 0.0])
    v = ap - (ap @ d) * d
    if np.linalg.norm(v) < 1e-6:
        v = np.cross(d, [0.0, 0.0, 1.0])
    v = v / np.linalg.norm(v)
    prog = _view(v, "perpendicular to the path, closest to AP")
    tilt = gantry_tilt_deg(d)
    within = tilt is not None and abs(tilt) <= gantry_limit_deg + 1e-9
    return Guidance(bullseye=bull, progression=prog,
                    gantry_tilt_deg=None if tilt is None else round(tilt, 1),
                    gantry_limit_deg=gantry_limit_deg, gantry_within_limit=bool(within))
