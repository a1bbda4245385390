"""The CT reader's warnings about the image itself, carried into the plan without identifying data.

The readers (:func:`osteoplan.imaging.io.read_volume`, :mod:`osteoplan.imaging.dicom_series`) return what they
had to do to the image in ``Volume.warnings``: files skipped (truncated, undecodable), gaps interpolated (with
the positions of the missing slices), uneven spacing resampled, gantry tilt resampled, lossy compression...
A plan made on such an image must say so: an interpolated slice holds invented voxels, and a path that
crosses it is planned on them. :func:`image_warnings` turns those warnings into plan warnings (file names
removed: they may hold patient names), and :func:`gap_crossing_warnings` says when a planned path crosses an
interpolated slice.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

import numpy as np

#: prefix of every plan warning that comes from the CT reader
PREFIX = "CT image: "

_NUM = r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?"
_POINT = re.compile(rf"\(({_NUM}), ({_NUM}), ({_NUM})\) mm LPS")
_GAP = re.compile(rf"(\d+) slice\(s\) missing at (.*?) \(step ({_NUM}) mm instead of ({_NUM}) mm\)")


def _without_file_names(w: str) -> str | None:
    """*w* with the file names the reader put in it replaced by a count (None: a warning not about the image)."""
    m = re.match(r"skipped truncated or undecodable file\(s\) (.*)$", w)
    if m:
        listed = [x for x in m.group(1).replace(" ...", "").split(", ") if x]
        n = f"more than {len(listed)}" if m.group(1).endswith(" ...") else str(len(listed))
        return (f"{n} truncated or undecodable file(s) skipped (file names not recorded: they may identify the "
                "patient); their slices are missing from the volume")
    m = re.match(r"skipped file .*?: (.*)$", w, flags=re.S)
    if m:
        return f"a file was skipped (name not recorded): {m.group(1)}"
    m = re.match(r"(\d+) file\(s\) could not be used and the series was read without them", w)
    if m:
        return w
    if re.search(r"\bfile [^\s,;:()]+\.\w{1,5}\b", w):  # a file named some other way: never into the plan
        return re.sub(r"\bfile [^\s,;:()]+\.\w{1,5}\b", "file <name not recorded>", w)
    return w


def image_warnings(volume: Any) -> list[str]:
    """The reader's warnings of *volume* as plan warnings, each prefixed ``"CT image: "``, without file names.

    Parameters
    ----------
    volume : Volume
        The CT as read; its ``warnings`` (tuple of str, possibly empty) are used.

    Returns
    -------
    list of str
        One warning per reader warning, in order; a truncated/undecodable file is counted, never named.
    """
    out = []
    for w in getattr(volume, "warnings", ()) or ():
        s = _without_file_names(str(w))
        if s:
            out.append(PREFIX + s)
    return list(dict.fromkeys(out))


def interpolated_slices(volume: Any) -> list[tuple[float, float]]:
    """The interpolated (gap-filled) slices of *volume*, from the reader's "gap interpolated" warnings.

    Returns
    -------
    list of (z_mm, step_mm)
        LPS z of each missing slice (the reader lists at most the first 3 of a gap; the others are spread at the
        usual step between them) and the series' usual slice step (mm), i.e. the slice's thickness.
    """
    found: list[tuple[float, float]] = []
    for w in getattr(volume, "warnings", ()) or ():
        if not str(w).startswith("gap interpolated: "):
            continue
        for m in _GAP.finditer(str(w)):
            n = int(m.group(1))
            base = float(m.group(4))
            pts = [np.array([float(v) for v in p.groups()]) for p in _POINT.finditer(m.group(2))]
            if not pts:
                continue
            dz = (pts[1][2] - pts[0][2]) if len(pts) > 1 else 0.0
            zs = [float(pts[0][2] + dz * i) for i in range(n)] if len(pts) > 1 else [float(pts[0][2])] * min(n, 1)
            found.extend((z, base) for z in zs)
    return found


def gap_crossing_warnings(volume: Any, trajectories: Iterable[Any]) -> list[str]:
    """Warnings for each planned path that crosses an interpolated slice of *volume*.

    A path crosses an interpolated slice when the slice's z (LPS) lies within the path's z-range (skin entry to
    target) widened by half the slice step: the slice stands for that slab, and every voxel the path samples in it
    was interpolated from the neighbouring slices, not measured.

    Parameters
    ----------
    volume : Volume
        The CT as read (its "gap interpolated" warnings give the slices).
    trajectories : iterable of Trajectory
        With ``skin_entry_lps_mm`` and ``target_lps_mm`` (LPS mm); ``level`` and ``side`` name it when several.

    Returns
    -------
    list of str
        One warning per crossing path (empty when no slice was interpolated or no path crosses one).
    """
    slices = interpolated_slices(volume)
    if not slices:
        return []
    trajs = [t for t in trajectories if t is not None]
    out = []
    for t in trajs:
        z0, z1 = sorted((float(t.skin_entry_lps_mm[2]), float(t.target_lps_mm[2])))
        hit = sorted({round(z, 2) for z, step in slices if z0 - step / 2 <= z <= z1 + step / 2})
        if not hit:
            continue
        who = f"the path ({t.level} {t.side})" if len(trajs) > 1 else "the planned path"
        out.append(f"{PREFIX}{who} crosses {len(hit)} interpolated slice(s) at z = "
                   + ", ".join(f"{z:.2f}" for z in hit) + " mm (LPS): its voxels there were interpolated across a "
                   "gap, not measured; check the path on the original images.")
    return out
