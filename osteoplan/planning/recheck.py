"""Re-check ONE trajectory moved by hand, with the planner's own kernel (one code path for search and re-check).

The review page lets the radiologist move the skin entry, the bone entry or the target of a planned trajectory and
re-evaluates it at once. This module does that with exactly what the search uses:

* the plan's :class:`~osteoplan.planning.site.Site` rebuilt from the landmarks stored in ``plan.json`` by the
  procedure module (:func:`site_of_trajectory`), the protocol named by the plan, the CT and the label map of the
  plan folder;
* the distance fields of :func:`osteoplan.planning.search.build_fields` (built once per plan and trajectory and kept
  in memory, :class:`RecheckCache`);
* :func:`osteoplan.planning.search.run_kernel` on one candidate (target, direction) at the plan's refine step,
  :func:`osteoplan.planning.search.assess` for the hard constraints, and the planner's ``_trajectory`` / ``_checks``
  for the figures (clearances with how each structure was known, containment, catalogue screw);
* the plan's one verdict (:func:`osteoplan.planning.verdict.compute_verdict`) computed on the plan with the moved
  trajectory in place of the original: the same words as the command line.

What a move means
-----------------
A straight instrument is the line through the target and one entry point. Moving the **skin entry** pivots the
line about the target through the new skin point; moving the **bone entry** pivots it about the target through the
new bone point; moving the **target** keeps the bone entry (the line pivots about the bone entry). The kernel then
finds, on that line, where it enters the target bone (the bone entry) and where it leaves the body (the skin
entry), as for any candidate of the search: the points returned may therefore differ from the point dragged
(a bone entry dragged inside the bone comes back to the cortex along the new line).

A moved path that breaks one of the search's hard constraints (bone-entry zone, screw length, axis angle,
containment, a hard structure's margin...) is not a path the planner would give (how far a moved target lies from
the zone the search draws its targets from is measured by :func:`target_zone_excess`, not enforced): the verdict of the plan
with it is the planner's "NO FEASIBLE PATH", and the broken constraints are listed with their shortfall.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from osteoplan.errors import InputError, PlanningError
from osteoplan.planning.model import Plan, Trajectory

__all__ = ["POINTS", "AdjustContext", "RecheckCache", "Recheck", "build_context", "evaluate_trajectory",
           "plan_with_trajectory", "site_of_trajectory", "target_zone_excess", "ASSESSED_BY_WORDS"]

#: The points a radiologist may move, in the order the page shows them.
POINTS: tuple[str, ...] = ("skin_entry", "bone_entry", "target")

#: How a structure's clearance was known, in words (``ClearanceCheck.assessed_by``).
ASSESSED_BY_WORDS: dict[str, str] = {
    "segmented": "segmented on this CT",
    "provided_mask": "provided mask",
    "bony_canal": "bony canal (foramen transversarium), not the vessel",
    "atlas": "atlas-transferred mask, not this patient's vessel",
    "covered": "covered by the structure that contains it",
    "not_assessed": "not assessed",
}


@dataclass
class AdjustContext:
    """Everything the re-check of one trajectory of one plan needs, built once (:func:`build_context`).

    Attributes
    ----------
    plan : Plan
        The plan as saved (its trajectory ``index`` is the one re-checked).
    index : int
        Index of the trajectory in ``plan.trajectories``.
    volume : Volume
        The CT (HU, (k, j, i), affine to LPS mm).
    labelmap : LabelMap
        The plan folder's label map, on the CT grid.
    protocol : Protocol
        The protocol named by the plan.
    site : Site
        Rebuilt from ``plan.landmarks`` by the procedure module.
    fields : ROIFields
        :func:`~osteoplan.planning.search.build_fields` output for the site.
    not_assessed : dict
        Protocol structure -> why it was not assessed (as the planner says it).
    diameter_mm, r_instr_mm, r_screw_mm : float
        The plan's implant diameter and the radii the kernel uses (clearance, containment).
    step_mm : float
        Sampling step along the path (the plan's refine step).
    build_seconds : float
        Wall time taken to build the context.
    """

    plan: Plan
    index: int
    volume: Any
    labelmap: Any
    protocol: Any
    site: Any
    fields: Any
    not_assessed: dict[str, str]
    diameter_mm: float
    r_instr_mm: float
    r_screw_mm: float
    step_mm: float
    build_seconds: float = 0.0

    @property
    def nbytes(self) -> int:
        """Memory held (bytes): the CT, the label map's masks and the ROI fields."""
        n = int(self.volume.array.nbytes)
        for name in self.labelmap.names():
            n += int(self.labelmap.get(name).nbytes)
        f = self.fields
        for a in (f.bone_depth_mm, f.body, f.other_bone, f.lesion, f.maps):
            if a is not None:
                n += int(a.nbytes)
        return n


@dataclass
class Recheck:
    """The re-check of one moved trajectory.

    Attributes
    ----------
    trajectory : Trajectory
        The moved trajectory as the planner describes it (points recomputed on the line, clearances, containment,
        screw...).
    plan : Plan
        The plan with this trajectory in place of the original one, and its verdict (``plan.verdict``).
    feasible : bool
        The trajectory meets every hard constraint of the search.
    violations : dict[str, float]
        Broken constraint -> shortfall (mm, or degrees for angles); empty when feasible.
    violation_texts : list[str]
        One sentence per broken constraint (the planner's words).
    pivot : str
        The point the line was defined by besides the target (``"bone_entry"`` or ``"skin_entry"``).
    """

    trajectory: Trajectory
    plan: Plan
    feasible: bool
    violations: dict[str, float] = field(default_factory=dict)
    violation_texts: list[str] = field(default_factory=list)
    pivot: str = "bone_entry"


# --------------------------------------------------------------------------------------------- site & context
def site_of_trajectory(plan: Plan, index: int, labelmap: Any, protocol: Any) -> Any:
    """The :class:`~osteoplan.planning.site.Site` of trajectory *index*, rebuilt as the procedure module builds it
    from the anatomy, from the landmarks the plan stores.

    Parameters
    ----------
    plan : Plan
    index : int
        Trajectory index in ``plan.trajectories``.
    labelmap : LabelMap
        The plan's label map (for the spinal-canal coverage of a vertebra site).
    protocol : Protocol

    Raises
    ------
    PlanningError
        The plan stores no landmarks, or its procedure cannot rebuild its site from them.
    """
    from osteoplan.planning.procedures import get_procedure

    proc = get_procedure(protocol.procedure)
    lm = plan.landmarks
    if not lm:
        raise PlanningError("This plan stores no landmarks: its trajectory cannot be re-checked; re-plan it.")
    traj = plan.trajectories[index]
    if proc.name in ("c2-dens-screw", "c2-cementoplasty"):
        from osteoplan.anatomy.landmarks import DensLandmarks

        return proc.sites(DensLandmarks.from_dict(lm), protocol)[0]
    if proc.name == "vertebroplasty":
        from dataclasses import replace

        from osteoplan.anatomy.spine import VertebraLandmarks
        from osteoplan.planning.procedures.vertebroplasty import _canal_gap

        level = traj.level or plan.level
        one = lm if "level" in lm else lm.get(level)
        if one is None:
            raise PlanningError(f"The plan stores no landmarks for {level}: its trajectory cannot be re-checked.")
        v = VertebraLandmarks.from_dict(one)
        two = protocol.needles_per_level == 2
        site = proc.site_of(v, traj.side, protocol, group=f"{v.level} {traj.side}" if two else v.level)
        gaps = _canal_gap(labelmap, v)
        return replace(site, not_covered=gaps) if gaps else site
    raise PlanningError(f"Re-checking a moved trajectory is not available for the {proc.name} procedure.")


def build_context(plan: Plan, volume: Any, labelmap: Any, index: int = 0, protocol: Any = None) -> AdjustContext:
    """Build the re-check context of trajectory *index* (the distance fields: seconds on a real CT).

    Parameters
    ----------
    plan : Plan
        A plan with at least ``index + 1`` trajectories.
    volume : Volume
        The CT the plan was made on.
    labelmap : LabelMap
        The plan's label map (plan folder's segmentation).
    index : int
        Which trajectory (0 = the plan's best).
    protocol : Protocol, optional
        Default: the protocol the plan names (``plan.protocol_name``), with the plan's needles per level.

    Raises
    ------
    PlanningError
        The plan has no such trajectory, or its site cannot be rebuilt.
    ProtocolError
        The plan's protocol is not available.
    """
    import time

    from osteoplan.planning import search as S
    from osteoplan.planning.planner import not_assessable_from_messages
    from osteoplan.planning.protocol import load_protocol

    t0 = time.perf_counter()
    if not (0 <= index < len(plan.trajectories)):
        raise PlanningError(f"The plan has no trajectory {index + 1}: nothing to re-check.")
    if protocol is None:
        protocol = load_protocol(plan.protocol_name)
        if plan.placement == "all" and protocol.needle is not None:
            groups = {(t.level, t.side) for t in plan.trajectories}
            levels = {t.level for t in plan.trajectories}
            if len(groups) > len(levels):
                protocol = protocol.model_copy(update={"needles_per_level": 2})
    site = site_of_trajectory(plan, index, labelmap, protocol)
    lesion = labelmap.get("lesion") if labelmap.has("lesion") else None
    fields, _, not_assessed = S.build_fields(volume, labelmap, site, protocol, lesion)
    for name, why in not_assessable_from_messages(list(plan.warnings), list(not_assessed)).items():
        not_assessed[name] = why
    traj = plan.trajectories[index]
    diameter = traj.screw.diameter_mm if traj.screw is not None else traj.needle_diameter_mm
    if diameter is None:
        diameter = protocol.implant().diameters_mm[0]
    r_instr, r_screw = S.instrument_radii(protocol, float(diameter))
    step = plan.search.refine_step_mm if plan.search is not None else 0.2
    return AdjustContext(plan=plan, index=index, volume=volume, labelmap=labelmap, protocol=protocol, site=site,
                         fields=fields, not_assessed=not_assessed, diameter_mm=float(diameter), r_instr_mm=r_instr,
                         r_screw_mm=r_screw, step_mm=float(step), build_seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------- evaluation
def _point(name: str, p: Any) -> np.ndarray:
    a = np.asarray(p, dtype=float).reshape(-1)
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise InputError(f"{name}: give three finite LPS millimetre values.")
    return a


def check_inside_image(volume: Any, points: dict[str, np.ndarray]) -> None:
    """Refuse points outside the CT.

    Raises
    ------
    InputError
        A point lies outside the image (its voxel index beyond the grid by more than half a voxel).
    """
    shape = np.asarray(volume.shape, float)
    for name, p in points.items():
        kji = volume.world_to_index(p[None])[0]
        if not np.all(np.isfinite(kji)) or np.any(kji < -0.5) or np.any(kji > shape - 0.5):
            # the image's extent, not the point given: an error does not echo its input
            corners = np.array([[k, j, i] for k in (-0.5, shape[0] - 0.5) for j in (-0.5, shape[1] - 0.5)
                                for i in (-0.5, shape[2] - 0.5)])
            w = volume.index_to_world(corners)
            lo, hi = w.min(axis=0), w.max(axis=0)
            raise InputError(f"{name.replace('_', ' ')} moved outside the image: move it back inside the CT (x "
                             f"{lo[0]:.0f} to {hi[0]:.0f}, y {lo[1]:.0f} to {hi[1]:.0f}, z {lo[2]:.0f} to "
                             f"{hi[2]:.0f} mm LPS).")


#: A target this close to the procedure's target zone (mm) counts as inside: the points a plan stores are rounded to
#: 0.01 mm, so a grid point on the zone's border may come back a few thousandths of a mm outside it. Configurable
#: default, no published source.
ZONE_TOLERANCE_MM = 0.05


def target_zone_excess(ctx: AdjustContext, target_lps_mm: Any) -> tuple[float | None, str | None]:
    """How far (mm) *target_lps_mm* lies outside the procedure's target zone, with the zone in words.

    The zone is the one the planner draws its target points from (:meth:`osteoplan.planning.procedures.Procedure.
    target_zone` of the plan's procedure, on the rebuilt site): one definition for the search and the re-check.

    Returns
    -------
    (float or None, str or None)
        (0.0 inside, the distance to the zone otherwise; the zone's rule) or (None, None) when the procedure's
        target zone is not a box (e.g. the segmented lesion of a C2 cementoplasty: there the containment and tip
        rules apply, not a zone).
    """
    from osteoplan.planning.procedures import get_procedure

    zone = get_procedure(ctx.protocol.procedure).target_zone(ctx.site, ctx.protocol)
    if zone is None:
        return None, None
    return float(zone.excess_mm(_point("target_lps_mm", target_lps_mm))[0]), zone.rule


def evaluate_trajectory(ctx: AdjustContext, skin_entry_lps_mm: Any, bone_entry_lps_mm: Any, target_lps_mm: Any,
                        pivot: str = "bone_entry", plan: Plan | None = None) -> Recheck:
    """Re-check one trajectory given its points (LPS mm) with the planner's kernel.

    Parameters
    ----------
    ctx : AdjustContext
        From :func:`build_context`.
    skin_entry_lps_mm, bone_entry_lps_mm, target_lps_mm : (3,) array-like
        The points as the user left them (LPS mm).
    pivot : {"bone_entry", "skin_entry"}
        The entry point that, with the target, defines the line (see the module docstring: the moved entry point,
        or the bone entry when the target was moved).
    plan : Plan, optional
        The plan (version) whose trajectory ``ctx.index`` is replaced (default ``ctx.plan``): a later version of the
        same plan folder shares its context (same site, protocol and fields).

    Returns
    -------
    Recheck
        The moved trajectory, the plan with it and its verdict, and any broken constraint.

    Raises
    ------
    InputError
        A point is not three finite numbers, lies outside the image, or the pivot point coincides with the target.
    PlanningError
        The target lies outside the target bone, or the line never leaves it: the kernel measures nothing then.
    """
    from osteoplan.planning import kernel as K
    from osteoplan.planning import planner as P
    from osteoplan.planning import search as S

    pts = {"skin_entry": _point("skin_entry_lps_mm", skin_entry_lps_mm),
           "bone_entry": _point("bone_entry_lps_mm", bone_entry_lps_mm),
           "target": _point("target_lps_mm", target_lps_mm)}
    if pivot not in ("bone_entry", "skin_entry"):
        raise InputError("pivot: give 'bone_entry' or 'skin_entry' (the entry point that, with the target, defines "
                         "the line).")
    check_inside_image(ctx.volume, pts)
    T = pts["target"]
    vec = T - pts[pivot]
    norm = float(np.linalg.norm(vec))
    if norm < 1.0:
        raise InputError(f"the {pivot.replace('_', ' ')} and the target are less than 1 mm apart: a path needs two "
                         "distinct points.")
    d = vec / norm
    targets, dirs = T[None].copy(), d[None].copy()
    site = ctx.site
    side_keys = [k for k in site.cone_axes if k != "any"]
    sign = (1.0 if side_keys[0] == "right" else -1.0) if side_keys else (1.0 if d[0] >= 0 else -1.0)
    one = np.zeros(1, np.int64)
    ev = S.run_kernel(ctx.fields, targets, dirs, one, one, ctx.protocol, ctx.r_instr_mm, ctx.r_screw_mm, ctx.step_mm)
    code = int(ev.code[0])
    if code in (K.TARGET_OUTSIDE_BONE, K.NEVER_LEAVES_BONE):
        bone = site.bone_label.replace("vertebrae_", "")
        raise PlanningError(
            f"The target lies outside {bone}: the path cannot be measured; move the target back into the bone."
            if code == K.TARGET_OUTSIDE_BONE else
            f"The path never leaves {bone} inside the region searched: move the entry point back outside the bone.")
    asm = S.assess(ev, ctx.fields, targets, dirs, site, ctx.protocol)
    res = S.SearchResult(ctx.fields, targets, dirs, np.array([sign]), ev, asm, ev, asm, [0], ctx.r_instr_mm,
                         ctx.r_screw_mm, ctx.diameter_mm, not_assessed=dict(ctx.not_assessed),
                         fine_step_mm=ctx.step_mm, coarse_step_mm=ctx.step_mm, site=site)
    base = plan if plan is not None else ctx.plan
    old = base.trajectories[ctx.index]
    traj = P._trajectory(res, 0, old.rank, ctx.volume, site, ctx.protocol, ctx.labelmap)
    feasible = bool(asm.feasible[0])
    viol = {k: round(float(v[0]), 2) for k, v in asm.violations.items() if v[0] > 1e-9}
    texts = [f"{P._describe(k, ctx.protocol)}: {P._shortfall_text(k, v)}" for k, v in viol.items()]
    # several needles placed together: the planner's spacing rule between them (planner._place), against the others
    # as they are in this version
    gap, near = needle_gap_to_others(base, ctx.index, traj, ctx.r_instr_mm)
    if gap < P.NEEDLE_GAP_MM - 1e-9:
        feasible = False
        viol["needle_gap"] = round(P.NEEDLE_GAP_MM - gap, 2)
        texts.append(f"the needle keeps {P.NEEDLE_GAP_MM:g} mm from every other needle of the plan (two trocars must "
                     f"not touch): gap to the {near} needle short by {P.NEEDLE_GAP_MM - gap:.1f} mm")
    # The procedure's target zone (target_zone_excess) is where the planner SEARCHES for targets, not a safety rule:
    # enforced here it refused every 1 mm nudge of the phantom's dens target (planned on the zone's border, on the
    # dens axis). The hard rules above (containment, tip, margins) decide; the zone is not a reason to refuse.
    infeas = None
    if not feasible:
        why = P._infeasibility(res, ctx.protocol)
        infeas = why.model_copy(update={"message": "The adjusted path breaks the protocol's rules: "
                                                    + "; ".join(texts) + "."})
    new = plan_with_trajectory(base, ctx.index, traj, ctx.protocol, feasible=feasible, infeasibility=infeas)
    return Recheck(trajectory=traj, plan=new, feasible=feasible, violations=viol, violation_texts=texts, pivot=pivot)


def needle_gap_to_others(plan: Plan, index: int, traj: Trajectory, r_instr_mm: float) -> tuple[float, str | None]:
    """Smallest gap (mm, :func:`osteoplan.planning.planner.needle_gap_mm`) between *traj* (radius *r_instr_mm*) and
    the other trajectories *plan* places with it (``placement == "all"``; each with its own stored
    ``instrument_radius_mm``, else *r_instr_mm*), and which one is nearest (its level and side); ``(inf, None)`` for
    a plan of ranked alternatives or a single needle."""
    from osteoplan.planning import planner as P

    if plan.placement != "all":
        return float("inf"), None
    best, near = float("inf"), None
    for i, t in enumerate(plan.trajectories):
        if i == index:
            continue
        r = t.instrument_radius_mm if t.instrument_radius_mm is not None else r_instr_mm
        g = P.needle_gap_mm(traj.skin_entry_lps_mm, traj.target_lps_mm, r_instr_mm,
                            [(t.skin_entry_lps_mm, t.target_lps_mm, r)])
        if g < best:
            best, near = g, " ".join(x for x in (t.level, t.side) if x) or f"number {i + 1}"
    return best, near


def plan_with_trajectory(plan: Plan, index: int, traj: Trajectory, protocol: Any, feasible: bool = True,
                         infeasibility: Any = None) -> Plan:
    """*plan* with trajectory *index* replaced by *traj*, its hydrodissection summary, guidance, trajectory warnings
    and verdict recomputed as the planner does.

    When *feasible* is False the trajectory is not a path the planner would give: the plan then has no trajectory
    at *index* (for ranked alternatives: no path at all; for several needles: the needle's group is unplanned), and
    *infeasibility* says why.
    """
    from osteoplan.planning import planner as P
    from osteoplan.planning.verdict import compute_verdict

    old = plan.trajectories[index]
    # the moved trajectory's own warnings go, except those another placed trajectory (needle) also gives
    others = {w for i, t in enumerate(plan.placed) if i != index for w in P._trajectory_warnings(t, protocol)}
    old_warn = set(P._trajectory_warnings(old, protocol)) - others
    warns = [w for w in plan.warnings if w not in old_warn]
    trajs = list(plan.trajectories)
    update: dict[str, Any] = {"verdict": None}
    if feasible:
        trajs[index] = traj
        update.update(trajectories=tuple(trajs))
        warns += [w for w in P._trajectory_warnings(traj, protocol) if w not in warns]
    elif plan.placement == "all":
        del trajs[index]
        group = " ".join(x for x in (old.level, old.side) if x) or "path"
        update.update(trajectories=tuple(trajs), unplanned=tuple(plan.unplanned) + (group,))
    else:
        update.update(trajectories=())
    if infeasibility is not None:
        update["infeasibility"] = infeasibility
    update["warnings"] = tuple(dict.fromkeys(warns))
    new = plan.model_copy(update=update)
    best = new.best
    placed = new.placed
    update2: dict[str, Any] = {"feasible": best is not None, "side": best.side if best else None,
                               "guidance": best.guidance if best else None,
                               "hydrodissection": P.hydrodissection_summary(placed, protocol) if best else None}
    new = new.model_copy(update=update2)
    new = _with_gap_crossings(new)
    return new.model_copy(update={"verdict": compute_verdict(new)})


def _with_gap_crossings(plan: Plan) -> Plan:
    """*plan* with its paths' crossings of interpolated slices said again for its trajectories as they are now
    (:func:`osteoplan.planning.image_warnings.gap_crossing_notes` on the plan's own gap data); the old ones go."""
    from osteoplan.planning.image_warnings import CROSSING, gap_crossing_notes

    if not any(n.kind in ("gap_interpolated", CROSSING) for n in plan.image_notes):
        return plan
    old = {n.text_en for n in plan.image_notes if n.kind == CROSSING}
    keep = [n for n in plan.image_notes if n.kind != CROSSING]
    cross = gap_crossing_notes(plan, list(plan.placed) + list(plan.partial_trajectories))
    warns = [w for w in plan.warnings if w not in old]
    reader = {n.text_en for n in keep}
    at = max((i + 1 for i, w in enumerate(warns) if w in reader), default=0)  # next to the image's warnings
    warns[at:at] = [n.text_en for n in cross]
    return plan.model_copy(update={"warnings": tuple(dict.fromkeys(warns)), "image_notes": tuple(keep + cross)})


# --------------------------------------------------------------------------------------------- cache
#: Memory the re-check contexts may hold in one process (bytes): configurable default (``OSTEOPLAN_RECHECK_CACHE_MB``,
#: 1500 MB), no published source. A thin-slice neck CT with its label map and fields holds a few hundred MB.
DEFAULT_CACHE_BYTES = int(float(os.environ.get("OSTEOPLAN_RECHECK_CACHE_MB", "1500")) * 1e6)


class RecheckCache:
    """Least-recently-used contexts per (plan key, trajectory index), bounded by the memory they hold.

    The most recent context is always kept, even when alone it exceeds the bound. Thread-safe: one build per key
    at a time (others wait for it), builds of different keys in parallel.

    Parameters
    ----------
    max_bytes : int
        Bound on :attr:`AdjustContext.nbytes` summed over the kept contexts.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Any, AdjustContext] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Any, threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._items)

    def peek(self, key: Any) -> AdjustContext | None:
        """The cached context of *key* (None when not built), without building it."""
        with self._lock:
            return self._items.get(key)

    def get(self, key: Any, build: Callable[[], AdjustContext]) -> AdjustContext:
        """The context of *key*, built by *build()* when absent."""
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
            klock = self._key_locks.setdefault(key, threading.Lock())
        with klock:
            with self._lock:
                hit = self._items.get(key)
                if hit is not None:
                    self._items.move_to_end(key)
                    return hit
            ctx = build()
            with self._lock:
                self._items[key] = ctx
                self._items.move_to_end(key)
                total = sum(c.nbytes for c in self._items.values())
                while len(self._items) > 1 and total > self.max_bytes:
                    _, old = self._items.popitem(last=False)
                    total -= old.nbytes
                self._key_locks.pop(key, None)
            return ctx

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
