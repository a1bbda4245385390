"""C2 dens cannulated screw (anterior Böhler/AO route, or the older lateral route): the dens landmarks as a site.

Technique and sources: the protocols ``c2-dens-anterior.toml`` / ``c2-dens-lateral.toml`` and the clinical
primer. What this module adds to the engine: the dens frame (axis base -> apex, anterior), the apex target
zone, the thread across the waist, and the screw-length room (anteroinferior corner -> apex).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from osteoplan.errors import AnatomyError, PlanningError
from osteoplan.planning.procedures import Procedure, TargetBox, keep_deep
from osteoplan.planning.site import Site
from osteoplan.anatomy import _local

if TYPE_CHECKING:  # pragma: no cover
    from osteoplan.anatomy.labelmap import LabelMap
    from osteoplan.anatomy.landmarks import DensLandmarks
    from osteoplan.imaging.volume import Volume
    from osteoplan.planning.fields import ROIFields
    from osteoplan.planning.protocol import Protocol


class DensTarget(BaseModel):
    """Where the screw tip may lie, in the dens frame (see :meth:`C2DensScrew.target_points`).

    ``tip_to_cortex_max_mm``: when set, the tip must lie at most this far short of the C2 cortex ahead of it
    along the path (the tip engages the apical cortex: two-cortex grip); ``None`` = not required.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    below_apex_min_mm: float = Field(ge=0)
    below_apex_max_mm: float = Field(gt=0, le=30)
    inside_cortex_min_mm: float = Field(ge=0, le=10)
    anterior_of_axis_min_mm: float = Field(ge=-10, le=10)
    grid_step_mm: float = Field(gt=0.2, le=5)
    max_targets: int = Field(ge=1, le=2000)
    tip_to_cortex_max_mm: float | None = Field(None, ge=0, le=20)

    @model_validator(mode="after")
    def _order(self):
        if self.below_apex_max_mm <= self.below_apex_min_mm:
            raise ValueError("below_apex_max_mm must be greater than below_apex_min_mm")
        return self


#: Radius of the apical dens searched for target points around the axis (mm) -- configurable default, no
#: published source (apical dens width 9.6 mm, Sung, JKNS 2018;61(4): 8 mm keeps the grid inside any dens).
APICAL_RADIUS_MM = 8.0


def site_from_landmarks(lm: "DensLandmarks", protocol: "Protocol") -> Site:
    """The C2 site of *lm* (dens axis frame, references: ``anteroinferior_corner``, ``waist``, ``apex``,
    ``body_centre``; one direction cone around the dens axis; the region of interest from 15 mm above the apex to
    15 mm below the apex zone's lowest point)."""
    t = protocol.target
    ax = np.asarray(lm.axis_unit, float)
    ax = ax / np.linalg.norm(ax)
    a = np.array([0.0, -1.0, 0.0])  # LPS anterior
    ant = a - (a @ ax) * ax
    waist = lm.waist_diameter_mm if lm.waist_diameter_mm is not None and np.isfinite(lm.waist_diameter_mm) else None
    return Site(procedure=C2DensScrew.name, level="C2", bone_label="vertebrae_C2", centre_lps_mm=lm.apex_lps_mm,
                axis_unit=ax, anterior_unit=ant,
                references={"anteroinferior_corner": lm.anteroinferior_body_lps_mm, "waist": lm.waist_lps_mm,
                            "apex": lm.apex_lps_mm, "body_centre": lm.body_centre_lps_mm},
                cone_axes={"any": ax}, roi_above_mm=15.0, roi_below_mm=15.0 + getattr(t, "below_apex_max_mm", 0.0),
                length_room_mm=lm.anteroinferior_to_apex_mm, width_limit_mm=waist, landmarks=lm.to_dict(),
                method=lm.method)


class C2DensScrew(Procedure):
    """The C2 dens screw: one site (C2), the tip in the apex zone, the thread across the waist."""

    name = "c2-dens-screw"
    planned_levels = ("C2",)
    title = "C2 dens cannulated screw + cementoplasty"
    registry_type = "c2_screw"
    target_model = DensTarget
    axis_name = "dens_axis"
    extra_constraints = {"thread_waist": "the screw's thread crosses the dens waist"}
    width_limit = ("Dens waist", "waist")

    def sites(self, anatomy: Any, protocol: "Protocol", level: str | None = None, side: str = "best") -> list[Site]:
        """One site from the dens landmarks (``anatomy.landmarks``, or *anatomy* itself when it is landmarks).

        Raises
        ------
        AnatomyError
            No dens landmarks (the reason the anatomy gave, and what to give).
        PlanningError
            The dens is cut by the top of the CT (``apex_in_view`` False).
        """
        from osteoplan.anatomy.landmarks import DensLandmarks

        if level not in (None, "C2"):
            raise PlanningError(f"The {protocol.name} protocol plans C2 only (level {level} asked); use a "
                                "vertebroplasty protocol for other levels (--protocol).")
        lm = anatomy if isinstance(anatomy, DensLandmarks) else getattr(anatomy, "landmarks", None)
        if lm is None:
            why = [m for m in (getattr(anatomy, "messages", None) or []) if "C2" in m or "dens" in m.lower()]
            todo = ("." if why and "--masks" in why[-1]
                    else ": give a hint point near C2 (--hint-lps X Y Z) or a C2 mask (--masks).")
            raise AnatomyError("The dens could not be located" + (f" ({why[-1].rstrip('.')})" if why else "") + todo)
        if not lm.apex_in_view:
            raise PlanningError("The dens is cut by the top of the CT: its tip (the screw's target zone) is not in the "
                                "image, so no screw path can be planned. Use a CT that covers the whole dens and C1.")
        return [site_from_landmarks(lm, protocol)]

    def bone_mask(self, volume: "Volume", labelmap: "LabelMap", site: Site,
                  protocol: "Protocol") -> tuple[np.ndarray, str, list[str]]:
        """C2 (with its lesion) made solid; without a C2 mask, the bone connected to the dens landmarks within
        30 mm, said to be approximate.

        Raises
        ------
        AnatomyError
            C2 not segmented and no bone at the landmarks.
        """
        from scipy import ndimage as ndi

        if labelmap.has("vertebrae_C2") and labelmap.get("vertebrae_C2").any():
            return super().bone_mask(volume, labelmap, site, protocol)
        bone = labelmap.get("bone") if labelmap.has("bone") else volume.array >= protocol.density.bone_hu
        kji = np.indices(volume.shape).reshape(3, -1).T
        centre = (site.references["waist"] + site.references["body_centre"]) / 2
        near = np.linalg.norm(volume.index_to_world(kji) - centre, axis=1).reshape(volume.shape) <= 30.0
        lab, _ = _local.cc_label(bone & near)
        seeds = [np.rint(volume.world_to_index(site.references[p])).astype(int) for p in ("body_centre", "waist", "apex")]
        ids = {int(lab[tuple(np.clip(s, 0, np.asarray(volume.shape) - 1))]) for s in seeds} - {0}
        if not ids:
            raise AnatomyError("C2 is not segmented and no bone was found at the dens landmarks; provide a C2 mask "
                               "(--masks) or a hint point (--hint-lps).")
        return np.isin(lab, list(ids)), "approximated", [
            "C2 was not segmented: approximated as the bone connected to the dens landmarks within 30 mm "
            "(may include C1/C3); containment is approximate."]

    def target_zone(self, site: Site, protocol: "Protocol") -> TargetBox:
        """The dens apex zone (protocol ``[target]``) as a box from the apex: ``below_apex_min..max`` mm down the dens
        axis, ``anterior_of_axis_min_mm`` .. :data:`APICAL_RADIUS_MM` anterior of the axis, within
        :data:`APICAL_RADIUS_MM` of it laterally."""
        t = protocol.target
        R = APICAL_RADIUS_MM
        rule = (f"target in the dens apex zone ({t.below_apex_min_mm:g}-{t.below_apex_max_mm:g} mm below the apex "
                f"along the dens axis, at least {t.anterior_of_axis_min_mm:g} mm anterior of the axis, within {R:g} mm "
                "of it)")
        return TargetBox(site.references["apex"], np.stack([-site.axis_unit, site.anterior_unit, site.lateral_unit]),
                         ((t.below_apex_min_mm, t.below_apex_max_mm), (max(-R, t.anterior_of_axis_min_mm), R), (-R, R)),
                         ("depth below the apex", "offset anterior of the axis", "lateral offset"), rule)

    def _zone(self, site: Site, protocol: "Protocol") -> np.ndarray:
        z = self.target_zone(site, protocol)
        (z0, z1), (a_lo, a_hi), _ = z.ranges
        g = np.arange(-a_hi, a_hi + 1e-9, protocol.target.grid_step_mm)  # +-R, across and along the anterior axis
        gz = np.arange(z0, z1 + 1e-9, protocol.target.grid_step_mm)
        A, L, Z = np.meshgrid(g, g, gz, indexing="ij")
        pts = (site.references["apex"][None] - Z.reshape(-1, 1) * site.axis_unit + A.reshape(-1, 1) * site.anterior_unit
               + L.reshape(-1, 1) * site.lateral_unit)
        return pts[A.reshape(-1) >= a_lo]

    def target_points(self, fields: "ROIFields", site: Site, protocol: "Protocol", r_contain_mm: float) -> np.ndarray:
        """Grid points in the dens apex zone (protocol ``[target]``).

        A point qualifies when it lies ``below_apex_min..max`` mm below the apex along the dens axis, at least
        ``anterior_of_axis_min_mm`` anterior of the axis, within :data:`APICAL_RADIUS_MM` of the axis, and at
        least ``inside_cortex_min_mm`` deep inside C2 -- and, unless the tip is excused from containment, deep
        enough for the screw there (``r_contain_mm + containment margin``). At most ``max_targets``, evenly
        spread.
        """
        t = protocol.target
        imp = protocol.implant()
        need = t.inside_cortex_min_mm if imp.containment_skip_tip_mm > 0 else max(
            t.inside_cortex_min_mm, r_contain_mm + imp.containment_margin_mm)
        return keep_deep(fields, self._zone(site, protocol), need, t.max_targets)

    def no_target_message(self, fields: "ROIFields", site: Site, protocol: "Protocol", r_contain_mm: float) -> str:
        from scipy.ndimage import map_coordinates

        t = protocol.target
        pts = self._zone(site, protocol)
        deepest = (float(map_coordinates(fields.bone_depth_mm, fields.world_to_roi(pts).T, order=1, mode="nearest").max())
                   if len(pts) else float("-inf"))
        need = max(t.inside_cortex_min_mm, r_contain_mm + protocol.implant().containment_margin_mm)
        return (f"No target point in the dens apex zone ({t.below_apex_min_mm:g}-{t.below_apex_max_mm:g} mm below the "
                f"apex, anterior half) lies deep enough inside C2: deepest {deepest:.1f} mm, needed {need:.1f} mm "
                f"(thinnest screw {2 * r_contain_mm:.1f} mm). Check the C2 segmentation and dens landmarks (C2 source: "
                f"{fields.bone_source}, landmarks: {site.method}), or give a C2 mask (--masks).")

    def no_direction_message(self, site: Site, protocol: "Protocol", cc_deg: float, ml_deg: float) -> str:
        a = protocol.angles
        return (f"No direction within {a.axis_max_deg:g} deg of the dens axis meets the protocol's approach "
                f"(cranio-caudal {a.craniocaudal_min_deg:g}..{a.craniocaudal_max_deg:g} deg, medio-lateral "
                f"{a.mediolateral_min_deg:g}..{a.mediolateral_max_deg:g} deg from AP): the dens axis as located points "
                f"{cc_deg:.0f} deg cranio-caudal, {ml_deg:.0f} deg medio-lateral, so the technique's paths "
                "would not come from the front of the neck. Check the dens landmarks (a point inside C2: --hint-lps; "
                "or a C2 mask: --masks) and the head position; another route is another protocol (--protocol).")

    def violations(self, ev: Any, fields: "ROIFields", targets: np.ndarray, dirs: np.ndarray, site: Site,
                   protocol: "Protocol", thread_mm: float) -> dict[str, np.ndarray]:
        """``thread_waist``: the thread (the last *thread_mm* before the tip) spans the waist (mm short of it)."""
        if not protocol.implant().thread_crosses_waist:
            return {}
        T, D = targets[ev.cand_t], dirs[ev.cand_d]
        ax, waist = site.axis_unit, site.references["waist"]
        tip_h = (T - waist) @ ax
        end_h = (T - thread_mm * D - waist) @ ax
        return {"thread_waist": np.maximum(0, -tip_h) + np.maximum(0, end_h)}

    def terms(self, ev: Any, targets: np.ndarray, dirs: np.ndarray, bone_entry: np.ndarray, site: Site,
              protocol: "Protocol", implant_len: np.ndarray) -> dict[str, np.ndarray]:
        """``short_of_apex``: weight x max(0, bone entry -> apex distance - screw length) (mm)."""
        to_apex = np.linalg.norm(site.references["apex"][None] - bone_entry, axis=1)
        return {"short_of_apex": protocol.objective.short_of_apex * np.maximum(0, to_apex - implant_len)}

    def trajectory_figures(self, site: Site, target: np.ndarray, direction: np.ndarray, bone_entry: np.ndarray,
                           protocol: "Protocol", thread_mm: float, fields: "ROIFields | None" = None,
                           r_instr_mm: float = 0.0, entry_skip_mm: float = 0.0) -> dict[str, Any]:
        ax, ant, lat = site.axis_unit, site.anterior_unit, site.lateral_unit
        apex, waist, corner = site.references["apex"], site.references["waist"], site.references["anteroinferior_corner"]
        T, d, bone = target, direction, bone_entry
        crosses = bool(((T - waist) @ ax > 0) and ((T - thread_mm * d - waist) @ ax < 0))
        return {"angle_to_dens_axis_deg": round(float(np.degrees(np.arccos(np.clip(abs(d @ ax), 0, 1)))), 1),
                "tip_below_apex_mm": round(float((apex - T) @ ax), 2),
                "tip_anterior_of_axis_mm": round(float((T - waist) @ ant), 2),
                "tip_to_apex_mm": round(float(np.linalg.norm(apex - T)), 2),
                "bone_entry_to_apex_mm": round(float(np.linalg.norm(apex - bone)), 2),
                "bone_entry_above_corner_mm": round(float((bone - corner) @ ax), 2),
                "bone_entry_from_midline_mm": round(float(abs((bone - corner) @ lat)), 2),
                "thread_crosses_waist": crosses}

    def route_reference(self, site: Site) -> dict[str, Any]:
        return {"point": site.references["anteroinferior_corner"], "en": "the C2 anteroinferior corner",
                "fr": "le coin antéro-inférieur de C2", "point_key": "c2_anteroinferior_corner_z_mm",
                "gap_key": "corner_to_ct_lower_edge_mm", "advice_en": "Extend the scan to C6-T1",
                "advice_fr": "Étendre l'acquisition jusqu'à C6-T1"}
