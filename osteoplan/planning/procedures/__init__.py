"""Procedures as small modules over one planning engine.

A protocol (``osteoplan/planning/protocols/*.toml``) names its ``procedure``; the procedure module turns the
patient's anatomy into :class:`~osteoplan.planning.site.Site` objects (plain data: the target bone, a frame,
reference points, direction cones) and answers the few questions the engine cannot answer without anatomy:
where the target points are, which extra technique rules apply (e.g. the screw thread across the dens waist),
and which procedure-specific figures a trajectory reports. The search kernel, the clearance maps, the
constraints, the verdict, the views and the exports are shared.

Adding a procedure = a protocol file + a module defining a :class:`Procedure` subclass registered in
:data:`PROCEDURES`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from osteoplan.errors import AnatomyError, ProtocolError
from osteoplan.anatomy import _local

if TYPE_CHECKING:  # pragma: no cover
    from osteoplan.anatomy.labelmap import LabelMap
    from osteoplan.imaging.volume import Volume
    from osteoplan.planning.fields import ROIFields
    from osteoplan.planning.protocol import Protocol
    from osteoplan.planning.site import Site


class SiteList(list):
    """The sites of a plan (a list of :class:`~osteoplan.planning.site.Site`), plus the site groups the anatomy
    cannot support (``unplanned``: group -> reason, e.g. a level whose pedicles were not found), which the plan
    reports as not planned instead of failing the other levels."""

    def __init__(self, sites=(), unplanned: dict[str, str] | None = None) -> None:
        super().__init__(sites)
        self.unplanned: dict[str, str] = dict(unplanned or {})


class Procedure:
    """Base class of a procedure module (one instance per procedure, stateless).

    Subclasses set :attr:`name`, :attr:`title`, :attr:`target_model` (the pydantic model of the protocol's
    ``[target]`` table) and implement :meth:`sites` and :meth:`target_points`; the other hooks have neutral
    defaults.
    """

    #: Procedure name used in protocols (``procedure = "..."``) and in plans (``Plan.procedure``).
    name: str = ""
    #: Human title (reports).
    title: str = ""
    #: Registry procedure type it belongs to (``osteoplan.workflow`` procedure types).
    registry_type: str = ""
    #: Pydantic model validating the protocol's ``[target]`` table.
    target_model: type[BaseModel] = BaseModel
    #: Extra hard constraints this procedure adds (name -> description), checked after the bone-entry ones.
    extra_constraints: dict[str, str] = {}
    #: The vertebra levels this procedure plans, or None when any level may be asked (``levels`` / ``--level``);
    #: the command line refuses another level before reading the CT.
    planned_levels: tuple[str, ...] | None = None
    #: Name of the direction-cone axis (the constraint ``angles.axis_max_deg`` and the objective term use it).
    axis_name: str = "axis"
    #: The narrowest bone section the implant must pass (:attr:`~osteoplan.planning.site.Site.width_limit_mm`), as
    #: (its name opening a sentence, what to check on the images), e.g. ``("Dens waist", "waist")``: the words of
    #: the diameter-choice warnings (:func:`osteoplan.planning.search.choose_diameter`). None when the procedure's
    #: route passes no such section: its width limits nothing and no warning speaks of it.
    width_limit: tuple[str, str] | None = None

    # ------------------------------------------------------------------ anatomy
    def build_anatomy(self, volume: "Volume", masks: Any = None, hint_lps: Any = None, levels: Any = None,
                      level_point: Any = None, use_totalsegmentator: bool = False) -> Any:
        """The anatomy stage this procedure needs (default: the C2 pipeline,
        :func:`osteoplan.anatomy.pipeline.build_anatomy`; *levels* / *level_point* are for spine procedures).

        Raises
        ------
        OsteoplanError
            As the anatomy stage.
        """
        from osteoplan.anatomy.pipeline import build_anatomy

        return build_anatomy(volume, masks=masks, hint_lps=hint_lps, use_totalsegmentator=use_totalsegmentator)

    # ------------------------------------------------------------------ anatomy -> sites
    def sites(self, anatomy: Any, protocol: "Protocol", level: str | None = None,
              side: str = "best") -> list["Site"]:
        """The sites to plan on this patient: one per needle/screw to place (ranked alternatives are searched
        inside each site).

        Parameters
        ----------
        anatomy : object
            What the anatomy stage produced (an :class:`~osteoplan.anatomy.pipeline.Anatomy`, or the
            procedure's own landmarks object).
        protocol : Protocol
        level : str, optional
            Vertebra level(s) requested (``"T12"``, ``"T10-L1"``); None = the procedure's default.
        side : "left", "right", "best" or "both"

        Raises
        ------
        AnatomyError, PlanningError
            The anatomy does not show what the procedure needs (the message says what to give).
        """
        raise NotImplementedError

    def route_warnings(self, site: "Site", protocol: "Protocol") -> list[str]:
        """What every plan of this procedure on *site* must warn of: the limits of its route that the plan cannot
        measure on the CT (one sentence each, with its source; default none). Added to the search's warnings."""
        return []

    def confirmations(self, anatomy: Any) -> list[str]:
        """What the user must confirm before relying on a plan on this anatomy (one sentence each; default none)."""
        return []

    def bone_mask(self, volume: "Volume", labelmap: "LabelMap", site: "Site",
                  protocol: "Protocol") -> tuple[np.ndarray, str, list[str]]:
        """(mask (K, J, I) bool, source, warnings) of the target bone the instrument must stay inside.

        Default: the label map's ``site.bone_label`` with the lesion it holds (a lytic lesion inside the bone is
        still bone for containment: the cement fills it), made solid (:func:`solid_bone`).

        Raises
        ------
        AnatomyError
            The target bone is not segmented.
        """
        from scipy import ndimage as ndi

        if not (labelmap.has(site.bone_label) and labelmap.get(site.bone_label).any()):
            raise AnatomyError(f"{site.level} is not segmented ({site.bone_label}): give its mask (--masks).")
        m = labelmap.get(site.bone_label)
        if labelmap.has("lesion"):
            # binary_dilation(m, iterations=2) reaches 2 voxels from m: computed on m's bounding box grown by 3
            from osteoplan.planning.fields import nonzero_box

            box = nonzero_box(m)
            sl = tuple(slice(max(0, a - 3), min(n, b + 4)) for (a, b), n in zip(box, m.shape))
            m = m.copy()
            m[sl] |= labelmap.get("lesion")[sl] & ndi.binary_dilation(m[sl], iterations=2)
        return solid_bone(m, volume.spacing_mm), labelmap.sources.get(site.bone_label, "segmented"), []

    def target_zone(self, site: "Site", protocol: "Protocol") -> "TargetBox | None":
        """The protocol's target zone as a box in the site frame (:class:`TargetBox`), the one definition from which
        :meth:`target_points` draws its grid and against which a target moved by hand is checked
        (:mod:`osteoplan.planning.recheck`); None when the zone is not a box (e.g. a segmented lesion)."""
        return None

    # ------------------------------------------------------------------ search hooks
    def target_points(self, fields: "ROIFields", site: "Site", protocol: "Protocol",
                      r_contain_mm: float) -> np.ndarray:
        """(T, 3) LPS mm target points for this site (deep enough inside the bone for the implant)."""
        raise NotImplementedError

    def no_target_message(self, fields: "ROIFields", site: "Site", protocol: "Protocol",
                          r_contain_mm: float) -> str:
        """One sentence when :meth:`target_points` is empty (what is wrong and what to do)."""
        return (f"No target point of the protocol's target zone lies deep enough inside {site.level} "
                f"(bone source: {fields.bone_source}); check the segmentation or give masks (--masks).")

    def no_direction_message(self, site: "Site", protocol: "Protocol", cc_deg: float, ml_deg: float) -> str:
        """One sentence when no direction of the cone meets the protocol's angle limits (*cc_deg*, *ml_deg*: the
        cone axis's own angles)."""
        a = protocol.angles
        return (f"No direction within {a.axis_max_deg:g} deg of the {self.axis_name.replace('_', ' ')} meets the "
                f"protocol's angle limits (cranio-caudal {a.craniocaudal_min_deg:g}..{a.craniocaudal_max_deg:g} deg, "
                f"medio-lateral {a.mediolateral_min_deg:g}..{a.mediolateral_max_deg:g} deg): the axis as located points "
                f"{cc_deg:.0f} deg cranio-caudal, {ml_deg:.0f} deg medio-lateral. Check the {site.level} landmarks "
                "(--masks) or the protocol's [angles].")

    def violations(self, ev: Any, fields: "ROIFields", targets: np.ndarray, dirs: np.ndarray, site: "Site",
                   protocol: "Protocol", thread_mm: float) -> dict[str, np.ndarray]:
        """Extra hard-constraint violations (N,) (0 = met), keys from :attr:`extra_constraints`."""
        return {}

    def terms(self, ev: Any, targets: np.ndarray, dirs: np.ndarray, bone_entry: np.ndarray, site: "Site",
              protocol: "Protocol", implant_len: np.ndarray) -> dict[str, np.ndarray]:
        """Extra objective terms (N,) (lower is better)."""
        return {}

    def trajectory_figures(self, site: "Site", target: np.ndarray, direction: np.ndarray, bone_entry: np.ndarray,
                           protocol: "Protocol", thread_mm: float, fields: "ROIFields | None" = None,
                           r_instr_mm: float = 0.0, entry_skip_mm: float = 0.0) -> dict[str, Any]:
        """Procedure-specific :class:`~osteoplan.planning.model.Trajectory` fields (plain JSON values)."""
        return {}

    def cement(self, labelmap: "LabelMap", sites: list["Site"], protocol: "Protocol", lesion_mask: np.ndarray | None,
               trajectories: list[Any]) -> Any:
        """The cementoplasty suggestion (:class:`~osteoplan.planning.model.Cement`) for the placed trajectories.

        Default: the lesion-based rule of :func:`osteoplan.planning.cement.plan_cement` in the first site's bone.
        """
        from osteoplan.planning.cement import plan_cement

        label = sites[0].bone_label if sites else ""
        bone = labelmap.get(label) if label and labelmap.has(label) else None
        return plan_cement(labelmap, bone, protocol, lesion_mask)

    def route_reference(self, site: "Site") -> dict[str, Any]:
        """How the "route not assessable" message names where the paths leave the image: a reference point
        (``point``, LPS mm), its names (``en``, ``fr``), the figure keys for its height and its distance to the
        CT's lower edge (``point_key``, ``gap_key``) and the advice (``advice_en``, ``advice_fr``)."""
        return {"point": site.centre_lps_mm, "en": f"the {site.level} target", "fr": f"la cible {site.level}",
                "point_key": "target_z_mm", "gap_key": "target_to_ct_lower_edge_mm",
                "advice_en": "Extend the scan caudally to show the route", "advice_fr": "Étendre l'acquisition vers le bas"}


def solid_bone(mask: np.ndarray, spacing_mm: np.ndarray, close_mm: float = 2.0) -> np.ndarray:
    """The bone's outer envelope: closing by about *close_mm* then 3D hole filling.

    Low-density marrow or a lytic cavity inside the cortex is still inside the bone for containment. Tunnels
    open at both ends (the spinal canal through a vertebra) are not holes and stay open.

    Parameters
    ----------
    mask : (K, J, I) bool
    spacing_mm : (3,) voxel spacing (mm) along (k, j, i)
    """
    from scipy import ndimage as ndi

    from osteoplan.planning.fields import nonzero_box

    box = nonzero_box(mask)
    if box is None:
        return mask
    it = np.maximum(1, np.rint(close_mm / np.asarray(spacing_mm)).astype(int))
    pad = it + 1
    sl = tuple(slice(max(0, a - p), min(n, b + p + 1)) for (a, b), p, n in zip(box, pad, mask.shape))
    sub = mask[sl]
    st = np.zeros((2 * it[0] + 1, 2 * it[1] + 1, 2 * it[2] + 1), bool)
    g = np.indices(st.shape).reshape(3, -1).T - it
    st.reshape(-1)[((g / np.maximum(it, 1)) ** 2).sum(1) <= 1.0] = True
    closed = ndi.binary_closing(np.pad(sub, pad[:, None].repeat(2, 1)), structure=st)
    closed = closed[tuple(slice(p, -p) for p in pad)]
    filled = _local.fill_holes(closed | sub)
    out = mask.copy()
    out[sl] = filled
    return out


def cone_directions(axis_unit: np.ndarray, max_deg: float, step_deg: float) -> np.ndarray:
    """Unit directions (D, 3) within *max_deg* of *axis_unit*, on concentric rings *step_deg* apart.

    Ring ``theta`` holds ``round(360 sin(theta) / step)`` directions, so neighbours are about *step_deg* apart
    everywhere (the axis itself is the first direction).
    """
    a = np.asarray(axis_unit, float)
    a = a / np.linalg.norm(a)
    helper = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(a, helper)
    u /= np.linalg.norm(u)
    v = np.cross(a, u)
    out = [a]
    for th in np.arange(step_deg, max_deg + 1e-9, step_deg):
        t = np.radians(th)
        n = max(1, int(round(360.0 * np.sin(t) / step_deg)))
        ph = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
        out.append(np.cos(t) * a[None] + np.sin(t) * (np.cos(ph)[:, None] * u[None] + np.sin(ph)[:, None] * v[None]))
    return np.vstack(out)


def box_grid(site: "Site", origin: np.ndarray, axis_range: tuple[float, float], anterior_range: tuple[float, float],
             lateral_range: tuple[float, float], step_mm: float) -> np.ndarray:
    """(P, 3) LPS points of a grid in the site frame: ``origin + a*axis + f*anterior + l*lateral`` over the ranges
    (mm, inclusive), *step_mm* apart."""
    def rng(lo: float, hi: float) -> np.ndarray:
        return np.arange(lo, hi + 1e-9, step_mm) if hi >= lo else np.zeros(0)

    A, F, L = np.meshgrid(rng(*axis_range), rng(*anterior_range), rng(*lateral_range), indexing="ij")
    return (np.asarray(origin, float)[None] + A.reshape(-1, 1) * site.axis_unit + F.reshape(-1, 1) * site.anterior_unit
            + L.reshape(-1, 1) * site.lateral_unit)


class TargetBox:
    """A procedure's target zone: ``origin + a * units[0] + b * units[1] + c * units[2]`` for ``(a, b, c)`` within
    ``ranges`` (mm, inclusive), *units* three orthonormal LPS unit vectors of the site frame.

    The procedure's target grid (``_zone``) and the check of a target moved by hand (:meth:`excess_mm`) both take
    its bounds: one definition of the zone.

    Parameters
    ----------
    origin : (3,) array
        LPS mm.
    units : (3, 3) array
        Rows: the unit vectors of the three box axes (LPS).
    ranges : tuple of three (lo, hi)
        Extent along each axis, mm.
    names : tuple of three str
        Each axis in words, for the messages (e.g. ``"height from the body centre"``).
    rule : str
        The zone in words, with its figures (shown when a moved target lies outside it).
    """

    def __init__(self, origin: Any, units: Any, ranges: Any, names: tuple[str, str, str], rule: str) -> None:
        self.origin = np.asarray(origin, float).reshape(3)
        self.units = np.asarray(units, float).reshape(3, 3)
        self.ranges = tuple((float(lo), float(hi)) for lo, hi in ranges)
        self.names = tuple(names)
        self.rule = rule

    def coords_mm(self, pts: Any) -> np.ndarray:
        """(P, 3) box coordinates (mm along each axis from the origin) of LPS points (P, 3) or (3,)."""
        return (np.atleast_2d(np.asarray(pts, float)) - self.origin[None]) @ self.units.T

    def excess_mm(self, pts: Any) -> np.ndarray:
        """(P,) distance (mm) from each point to the box: 0 inside (borders included), else the Euclidean norm of
        the overshoot along the three axes."""
        c = self.coords_mm(pts)
        lo = np.array([r[0] for r in self.ranges])
        hi = np.array([r[1] for r in self.ranges])
        over = np.maximum(0.0, lo[None] - c) + np.maximum(0.0, c - hi[None])
        return np.linalg.norm(over, axis=1)


def keep_deep(fields: "ROIFields", pts: np.ndarray, need_mm: float, max_points: int) -> np.ndarray:
    """The points of *pts* (P, 3) at least *need_mm* inside the target bone, at most *max_points* evenly spread."""
    from scipy.ndimage import map_coordinates

    if len(pts) == 0:
        return pts.reshape(0, 3)
    depth = map_coordinates(fields.bone_depth_mm, fields.world_to_roi(pts).T, order=1, mode="nearest")
    pts = pts[depth >= need_mm]
    if len(pts) > max_points:
        pts = pts[np.linspace(0, len(pts) - 1, max_points).round().astype(int)]
    return pts


# ---------------------------------------------------------------------- registry
def _registry() -> dict[str, Procedure]:
    from osteoplan.planning.procedures.c2_cementoplasty import C2Cementoplasty
    from osteoplan.planning.procedures.c2_dens import C2DensScrew
    from osteoplan.planning.procedures.vertebroplasty import Vertebroplasty

    return {p.name: p for p in (C2DensScrew(), Vertebroplasty(), C2Cementoplasty())}


_CACHE: dict[str, Procedure] = {}


def get_procedure(name: str) -> Procedure:
    """The procedure module registered under *name*.

    Raises
    ------
    ProtocolError
        No such procedure.
    """
    if not _CACHE:
        _CACHE.update(_registry())
    if name not in _CACHE:
        raise ProtocolError(f"Unknown procedure '{name}' (known: {', '.join(sorted(_CACHE))}); fix the protocol's "
                            "'procedure' field.")
    return _CACHE[name]


def procedure_names() -> list[str]:
    """Names of the registered procedures."""
    if not _CACHE:
        _CACHE.update(_registry())
    return sorted(_CACHE)
