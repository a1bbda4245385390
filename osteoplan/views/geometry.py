"""What a picture needs to know about a plan: the path, the instrument and the margins (LPS mm).

The views take a :class:`PathSpec` rather than the planner's model so that they can be drawn for any
hand-placed path too; :func:`pathspec_from_plan` adapts a planning result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from osteoplan.errors import InputError


@dataclass(frozen=True)
class PathSpec:
    """A straight percutaneous path and the instrument that follows it.

    Attributes
    ----------
    skin_entry_lps_mm, bone_entry_lps_mm, target_lps_mm : (3,) arrays
        LPS millimetres. ``bone_entry`` may equal ``skin_entry`` when unknown.
    instrument_diameter_mm : float
        Outer diameter of the largest instrument along the whole path (trocar), drawn at real size.
    screw_diameter_mm : float | None
        Screw outer diameter (drawn from bone entry to target).
    screw_length_mm : float | None
        Screw length; when given the screw is drawn from the target back over this length.
    margins_mm : dict[str, float]
        Required clearance margin per structure (drawn as a dashed outline at that distance).
    status : dict[str, str]
        Clearance status per structure (``pass``, ``hydrodissection``, ``fail``, ``not_assessed``).
    name : str
        Short label (e.g. ``"plan 1"``).
    beam_directions : dict[str, (3,) tuple]
        Planner's C-arm views (``"bullseye"``, ``"progression"``): unit LPS beam direction source ->
        detector (= the plan's ``detector_direction_lps``), so the simulated views match the guidance numbers.
    carm_labels : dict[str, str]
        Their labels, e.g. ``"LAO 35° / CAUD 66°"``.
    feasible : bool
        False for the closest candidate of an infeasible plan: every image then carries a red
        "NOT FEASIBLE" banner.
    """

    skin_entry_lps_mm: np.ndarray
    bone_entry_lps_mm: np.ndarray
    target_lps_mm: np.ndarray
    instrument_diameter_mm: float = 2.0
    screw_diameter_mm: float | None = None
    screw_length_mm: float | None = None
    margins_mm: dict[str, float] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    name: str = "plan"
    feasible: bool = True
    #: i18n key of the banner drawn on every image when ``feasible`` is False
    banner_key: str = "near_miss_banner"
    beam_directions: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    carm_labels: dict[str, str] = field(default_factory=dict)
    #: Vertebra level of the path (``"C2"``, ``"L1"``...) and entry side, when the plan says them.
    level: str | None = None
    side: str | None = None
    #: True when the path goes through or beside a pedicle (the plan measured its pedicle passage, or its vertebra
    #: landmarks hold the pedicle at this level and side: transpedicular and parapedicular needles): the views then
    #: add an axial reformat along the needle at the pedicle.
    at_pedicle: bool = False

    def __post_init__(self) -> None:
        for n in ("skin_entry_lps_mm", "bone_entry_lps_mm", "target_lps_mm"):
            v = np.asarray(getattr(self, n), dtype=float).reshape(-1)
            if v.shape != (3,) or not np.all(np.isfinite(v)):
                raise InputError(f"Path point '{n}' must be three finite LPS millimetre values.")
            object.__setattr__(self, n, v)
        if np.linalg.norm(self.target_lps_mm - self.skin_entry_lps_mm) < 1e-6:
            raise InputError("Skin entry and target coincide; a path needs two distinct points.")

    @property
    def direction(self) -> np.ndarray:
        """Unit vector (3,) from skin entry to target."""
        d = self.target_lps_mm - self.skin_entry_lps_mm
        return d / np.linalg.norm(d)

    @property
    def length_mm(self) -> float:
        """Skin entry to target distance (mm)."""
        return float(np.linalg.norm(self.target_lps_mm - self.skin_entry_lps_mm))

    @property
    def short_label(self) -> str:
        """A few characters naming the path on a picture of several paths (``"L1 R"``), else its name."""
        if self.level:
            return self.level + (f" {self.side[0].upper()}" if self.side else "")
        return self.name

    @property
    def screw_start_lps_mm(self) -> np.ndarray:
        """Where the screw's head sits: target minus screw length along the path (or bone entry)."""
        if self.screw_length_mm:
            return self.target_lps_mm - self.direction * float(self.screw_length_mm)
        return self.bone_entry_lps_mm


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    for n in names:
        cur = obj
        ok = True
        for part in n.split("."):
            if isinstance(cur, dict):
                if part in cur:
                    cur = cur[part]
                else:
                    ok = False
                    break
            elif hasattr(cur, part):
                cur = getattr(cur, part)
            else:
                ok = False
                break
        if ok and cur is not None:
            return cur
    return default


def _protocol_trocar_mm(name: str | None) -> float:
    """Trocar outer diameter (mm) from the plan's protocol; 3.0 mm when it cannot be loaded."""
    if name:
        try:
            from osteoplan.planning.protocol import load_protocol

            return float(load_protocol(name).instruments.trocar_outer_diameter_mm)
        except Exception:  # noqa: BLE001 - a missing protocol must not stop the pictures
            pass
    return 3.0


def pathspec_from_plan(plan: Any, index: int = 0) -> PathSpec:
    """Build a :class:`PathSpec` from a planning result (object or its JSON dict).

    Accepts the planner's model (``osteoplan.planning.model``) or the dict of ``plan.json``;
    fields are looked up by name so that small schema changes do not break the pictures.

    Raises
    ------
    InputError
        When the plan has no trajectory.
    """
    trajs = _get(plan, "trajectories", "plans", default=None)
    traj = plan
    if trajs is not None:
        trajs = list(trajs)
        if not trajs:
            raise InputError("The plan has no trajectory to draw (no feasible path); nothing to show.")
        traj = trajs[min(index, len(trajs) - 1)]
    skin = _get(traj, "skin_entry_lps_mm", "skin_entry")
    bone = _get(traj, "bone_entry_lps_mm", "bone_entry", default=skin)
    target = _get(traj, "target_lps_mm", "target")
    if skin is None or target is None:
        raise InputError("The plan's trajectory has no skin entry or target point; cannot draw it.")
    # the planner measured clearances around a capsule of this radius: draw exactly that
    r_plan = _get(traj, "instrument_radius_mm", default=None)
    instr = 2.0 * float(r_plan) if r_plan is not None else None
    if instr is None:
        instr = _get(traj, "instrument_diameter_mm", "instrument.diameter_mm", default=None)
    if instr is None:
        instr = _get(plan, "instrument_diameter_mm", "protocol.instrument_diameter_mm", default=None)
    if instr is None:
        instr = _protocol_trocar_mm(_get(plan, "protocol_name", default=None))
    screw = _get(traj, "screw", default=None) or _get(plan, "screw", default=None)
    sd = _get(screw, "diameter_mm", default=None) if screw is not None else None
    sl = _get(screw, "length_mm", default=None) if screw is not None else None
    margins: dict[str, float] = {}
    status: dict[str, str] = {}
    for c in _get(traj, "clearances", "checks", default=[]) or []:
        s = _get(c, "structure", "name")
        if s is None:
            continue
        m = _get(c, "margin_mm", default=None)
        if m is not None:
            margins[str(s)] = float(m)
        st = _get(c, "status", default=None)
        if st is not None:
            status[str(s)] = str(getattr(st, "value", st))
    beams: dict[str, tuple[float, float, float]] = {}
    labels: dict[str, str] = {}
    guid = _get(traj, "guidance", default=None) or _get(plan, "guidance", default=None)
    for key in ("bullseye", "progression"):
        view = _get(guid, key, default=None) if guid is not None else None
        det = _get(view, "detector_direction_lps", default=None) if view is not None else None
        if det is not None and np.linalg.norm(np.asarray(det, float)) > 1e-6:
            beams[key] = tuple(float(x) for x in det)
            labels[key] = str(_get(view, "label", default=""))
    level = _get(traj, "level", default=None)
    side = _get(traj, "side", default=None)
    return PathSpec(np.asarray(skin, float), np.asarray(bone, float), np.asarray(target, float),
                    beam_directions=beams, carm_labels=labels,
                    instrument_diameter_mm=float(instr), screw_diameter_mm=None if sd is None else float(sd),
                    screw_length_mm=None if sl is None else float(sl), margins_mm=margins, status=status,
                    name=f"plan {_get(traj, 'rank', default=1)}",
                    level=None if level is None else str(level), side=None if side is None else str(side),
                    at_pedicle=(_get(traj, "pedicle_margin_mm", default=None) is not None
                                    or has_pedicle_landmark(plan, level, side)))


def has_pedicle_landmark(plan: Any, level: Any, side: Any) -> bool:
    """True when the plan's vertebra landmarks hold a pedicle at this level and side (the needle's corridor).

    ``plan.landmarks`` is one level's landmarks (with ``pedicles``) or ``{level: landmarks}`` for several.
    """
    lm = _get(plan, "landmarks", default=None)
    if not isinstance(lm, dict) or level is None or side is None:
        return False
    one = lm if "pedicles" in lm else lm.get(str(level))
    if not isinstance(one, dict) or (one.get("level") not in (None, str(level))):
        return False
    ped = one.get("pedicles") or {}
    return isinstance(ped, dict) and ped.get(str(side)) is not None


def placed_indices(plan: Any) -> list[int]:
    """Indices into ``plan.trajectories`` of the trajectories to place (object or ``plan.json`` dict).

    ``placement == "all"``: every trajectory (several levels, both pedicles); otherwise the first (the plan,
    the others being ranked alternatives). Empty when the plan has no path or a site group was left unplanned.
    """
    trajs = list(_get(plan, "trajectories", default=()) or ())
    if not trajs or _get(plan, "unplanned", default=()):
        return []
    return list(range(len(trajs))) if _get(plan, "placement", default="alternatives") == "all" else [0]


def pathspecs_from_plan(plan: Any) -> list[PathSpec]:
    """One :class:`PathSpec` per trajectory to place (:func:`placed_indices`), in the plan's order.

    Each is named ``"needle n"`` / ``"plan 1"`` as :func:`pathspec_from_plan` does and carries its level and side.

    Raises
    ------
    InputError
        When the plan has nothing to place.
    """
    idx = placed_indices(plan)
    if not idx:
        raise InputError("The plan has no trajectory to place (no feasible path); nothing to show.")
    return [pathspec_from_plan(plan, i) for i in idx]


def _route_unseen(plan: Any) -> bool:
    """True when the plan says the CT does not show the technique's route (its candidates were not checked)."""
    route = _get(plan, "route", default=None)
    return route is not None and _get(route, "assessable", default=True) is False


def near_miss_pathspec(plan: Any, fallback_length_mm: float = 80.0) -> PathSpec | None:
    """PathSpec of an infeasible plan's closest candidate (``feasible=False``), or None when there is none.

    The near miss has no bone entry or screw; its clearance checks give the margins and statuses.
    When it never reached the skin, its direction is drawn over ``fallback_length_mm`` from the target.
    """
    inf = _get(plan, "infeasibility", default=None)
    nm = _get(inf, "best_near_miss", default=None) if inf is not None else None
    if nm is None:
        return None
    skin = _get(nm, "skin_entry_lps_mm", default=None)
    target = _get(nm, "target_lps_mm", default=None)
    if target is None:
        return None
    if skin is None:  # the candidate never reached the skin: draw its direction over a fixed length
        d = np.asarray(_get(nm, "direction_unit", default=(0.0, 0.0, 0.0)), float)
        if np.linalg.norm(d) < 1e-6:
            return None
        skin = np.asarray(target, float) - d / np.linalg.norm(d) * fallback_length_mm
    margins, status = {}, {}
    for c in _get(nm, "clearances", default=()) or ():
        margins[str(c.structure)] = float(c.margin_mm)
        status[str(c.structure)] = str(c.status)
    try:
        return PathSpec(np.asarray(skin, float), np.asarray(skin, float), np.asarray(target, float),
                        instrument_diameter_mm=_protocol_trocar_mm(_get(plan, "protocol_name", default=None)),
                        margins_mm=margins, status=status, name="closest candidate", feasible=False,
                        banner_key="route_banner" if _route_unseen(plan) else "near_miss_banner")
    except InputError:
        return None


#: Margin (mm) kept around the whole path (skin entry to target, the instrument's radius added) in the overview
#: views (axial, coronal, sagittal reformats; AP, lateral and oblique simulated fluoroscopy) and the 3D view.
#: Configurable default, no published source: enough to show the skin surface around the entry point.
PATH_MARGIN_MM = 15.0


def path_points_lps(paths) -> np.ndarray:
    """The points a view of *paths* must show: skin entry, bone entry, target and screw head of each path.

    Parameters
    ----------
    paths : iterable of PathSpec

    Returns
    -------
    numpy.ndarray, shape (4 * n_paths, 3), LPS mm
    """
    return np.array([q for p in paths for q in (p.skin_entry_lps_mm, p.bone_entry_lps_mm, p.target_lps_mm,
                                                p.screw_start_lps_mm)], float)


def fit_square_frame(points_2d: np.ndarray, min_fov_mm: float, margin_mm: float,
                     anchor_2d=(0.0, 0.0)) -> tuple[np.ndarray, float]:
    """The square field of view that holds every point with a margin, moved as little as possible from *anchor_2d*.

    The side is ``max(min_fov_mm, largest extent of the points + 2 margin)``; the centre is the anchor (the target)
    when the points and their margin fit around it, otherwise the nearest centre that holds them (the anchor
    clipped into the interval of centres that keep the points' box inside the square). A general rule for any
    path: a short path keeps the usual target-centred picture, a long one (skin entry far from the target) is
    framed entry to target.

    Parameters
    ----------
    points_2d : (n, 2) array
        In-plane coordinates (mm) of the points to show.
    min_fov_mm : float
        Smallest side (the view's usual field of view).
    margin_mm : float
        Room kept between the points and the frame's edge.
    anchor_2d : (2,) array
        Preferred centre (mm).

    Returns
    -------
    (centre (2,) mm, side mm)
    """
    pts = np.asarray(points_2d, float).reshape(-1, 2)
    lo = pts.min(axis=0) - margin_mm
    hi = pts.max(axis=0) + margin_mm
    fov = max(float(min_fov_mm), float(np.max(hi - lo)))
    centre = np.clip(np.asarray(anchor_2d, float), hi - fov / 2.0, lo + fov / 2.0)
    return centre, fov
