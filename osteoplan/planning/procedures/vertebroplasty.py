"""Percutaneous vertebroplasty (transpedicular uni/bipedicular, parapedicular) of one or several levels T1-L5.

Technique (CIRSE standards of practice on vertebral augmentation, Tsoumakidou et al., Cardiovasc Intervent Radiol
2017;40:331): an 11-13 G trocar reaches the vertebral body through the pedicle (transpedicular) or along its lateral
side between the pedicle and the rib head (parapedicular, upper/mid thoracic levels); its tip lies in the anterior
third of the body, across the midline for a unipedicular approach, on each side for a bipedicular one; PMMA is then
injected under fluoroscopy. A breach of the pedicle's medial wall reaches the canal, of its inferior wall the
foramen and nerve root; a breached posterior wall of the body is the route of epidural cement leaks.

What this module adds to the engine: a site per level and pedicle from the spine anatomy
(:mod:`osteoplan.anatomy.spine`: body frame, pedicle isthmus and axis, walls), the anterior-third target zone, the
pedicle passage figures (Gertzbein-Robbins-style breach grade) and the cement suggestion per level.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from osteoplan.errors import AnatomyError, PlanningError
from osteoplan.planning.procedures import Procedure, SiteList, TargetBox, box_grid, keep_deep
from osteoplan.planning.site import Site

if TYPE_CHECKING:  # pragma: no cover
    from osteoplan.anatomy.labelmap import LabelMap
    from osteoplan.planning.fields import ROIFields
    from osteoplan.planning.protocol import Protocol

#: Vertebra names in cranio-caudal order (VerSe's T13 and L6 included for transitional spines).
LEVEL_ORDER = tuple([f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 14)] + [f"L{i}" for i in range(1, 7)]
                    + ["S1"])


def parse_levels(text: str) -> list[str]:
    """``"T12"`` -> ["T12"]; ``"T10-L1"`` -> ["T10", "T11", "T12", "L1"]; ``"T10,T12"`` -> ["T10", "T12"].

    Raises
    ------
    PlanningError
        A name that is not a vertebra, or a range going upwards.
    """
    out: list[str] = []
    for part in re.split(r"[,\s]+", text.strip().upper()):
        if not part:
            continue
        ends = part.split("-")
        if len(ends) > 2 or any(e not in LEVEL_ORDER for e in ends):
            raise PlanningError(f"'{part}' is not a vertebra level or range (e.g. T12, T10-L1); fix --level.")
        i0, i1 = LEVEL_ORDER.index(ends[0]), LEVEL_ORDER.index(ends[-1])
        if i1 < i0:
            raise PlanningError(f"Level range '{part}' goes upwards; write it cranial first (e.g. T10-L1).")
        out += [lv for lv in LEVEL_ORDER[i0:i1 + 1] if lv not in out and lv not in ("T13", "L6")]
    if not out:
        raise PlanningError("No vertebra level given; use --level (e.g. T12 or T10-L1).")
    return out


class BodyTarget(BaseModel):
    """Where the needle tip may lie in the vertebral body (fractions and mm in the body frame).

    ``anterior_fraction_min..max``: position from the posterior wall (0) to the anterior wall (1) along the body's
    anterior axis; ``height_fraction_max``: |height above the body centre| <= this x body height;
    ``across_midline_min..max_mm``: for one needle per level, the tip lies this far across the mid-sagittal plane
    on the side opposite its pedicle; ``own_side_min..max_mm``: with two needles, each tip this far from the
    midline on its own side; ``inside_cortex_min_mm``: depth inside the bone.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    anterior_fraction_min: float = Field(ge=0, le=1)
    anterior_fraction_max: float = Field(ge=0, le=1)
    height_fraction_max: float = Field(ge=0, le=0.5)
    across_midline_min_mm: float = Field(ge=-10, le=20)
    across_midline_max_mm: float = Field(ge=-10, le=20)
    own_side_min_mm: float = Field(ge=0, le=30)
    own_side_max_mm: float = Field(ge=0, le=30)
    inside_cortex_min_mm: float = Field(ge=0, le=10)
    grid_step_mm: float = Field(gt=0.2, le=5)
    max_targets: int = Field(ge=1, le=2000)
    #: The path must pass through the pedicle isthmus (transpedicular route).
    through_isthmus: bool = False

    @model_validator(mode="after")
    def _order(self):
        if self.anterior_fraction_max < self.anterior_fraction_min:
            raise ValueError("anterior_fraction_max must be >= anterior_fraction_min")
        if self.across_midline_max_mm < self.across_midline_min_mm or self.own_side_max_mm < self.own_side_min_mm:
            raise ValueError("each *_max_mm must be >= its *_min_mm")
        return self


#: Cement volume per region that restored the strength (low) and the stiffness (high) of compressed vertebrae
#: in vitro (Belkoff et al., Spine 2001;26:1537): thoracic and thoracolumbar 2 and 4 mL, lumbar 4 and 6 mL.
CEMENT_ML = {"thoracic": (2.0, 4.0), "thoracolumbar": (2.0, 4.0), "lumbar": (4.0, 6.0)}

#: Share of posterior-wall voxels with no voxel at or above the cancellous threshold within one voxel (a cortical
#: gap, not a thin cortex blurred by partial volume) above which the wall is called breached -- configurable
#: default, no published source.
POSTERIOR_WALL_GAP_SHARE = 0.2


def region(level: str) -> str:
    """``thoracic`` (T1-T10), ``thoracolumbar`` (T11-L1) or ``lumbar`` (L2-L5), as in Belkoff 2001."""
    if level in ("T11", "T12", "T13", "L1"):
        return "thoracolumbar"
    return "lumbar" if level.startswith("L") else "thoracic"


def gertzbein_robbins(breach_mm: float) -> str:
    """Grade of a cortical breach (mm beyond the outer cortex; <= 0 = inside): A none, B < 2 mm, C 2-4 mm,
    D 4-6 mm, E > 6 mm (Gertzbein & Robbins, Spine 1990;15:11, 2 mm steps, designed for pedicle screws and used
    here for the needle's pedicle passage)."""
    if breach_mm <= 0:
        return "A"
    if breach_mm < 2:
        return "B"
    if breach_mm < 4:
        return "C"
    return "D" if breach_mm < 6 else "E"


def _vec(d: dict, key: str) -> np.ndarray:
    return np.asarray(d[key], float).reshape(3)


#: A pedicle axis found more than this from the body's anterior direction is not trusted (deg): pedicles point
#: within about 30 deg of it in the transverse plane (Zindrick et al., Spine 1987;12:160; Kim et al., J Korean
#: Neurosurg Soc 2009;46:181) and about 20 deg in the sagittal plane; 45 deg leaves room -- configurable default.
PEDICLE_AXIS_MAX_DEG = 45.0


def implausible_axis(v: Any, side: str) -> str | None:
    """Why the pedicle axis found for *side* of vertebra *v* cannot be trusted (None when plausible): more than
    :data:`PEDICLE_AXIS_MAX_DEG` from the body's anterior direction."""
    ax = np.asarray(v.pedicles[side].axis_unit, float)
    ang = float(np.degrees(np.arccos(np.clip(ax @ np.asarray(v.anterior_unit, float), -1.0, 1.0))))
    if ang > PEDICLE_AXIS_MAX_DEG:
        return f"its axis as found points {ang:.0f} deg from anterior, more than {PEDICLE_AXIS_MAX_DEG:g}"
    return None


def _canal_gap(labelmap: Any, v: Any) -> dict[str, str]:
    """``{"spinal_canal": reason}`` when the canal mask exists but holds no voxel within the vertebra's height
    around its body centre (the canal runs through every vertebra: a mask that misses it there stopped short);
    else empty."""
    if labelmap is None or not labelmap.has("spinal_canal"):
        return {}
    m = labelmap.get("spinal_canal")
    vol = labelmap.volume
    idx = np.argwhere(m[::1, ::2, ::2]) * np.array([1, 2, 2])
    if len(idx) == 0:
        return {"spinal_canal": f"the canal mask is empty: not assessed at {v.level}"}
    h = (vol.index_to_world(idx.astype(float)) - np.asarray(v.body_centre_lps_mm)) @ np.asarray(v.superior_unit)
    if np.any(np.abs(h) <= float(v.body_height_mm) / 2):
        return {}
    return {"spinal_canal": f"segmented, but not at {v.level} (the canal mask does not reach this level): not assessed"}


class Vertebroplasty(Procedure):
    """Vertebroplasty: one site per level and pedicle; the tip in the anterior third of the body."""

    name = "vertebroplasty"
    title = "Percutaneous vertebroplasty"
    registry_type = "vertebroplasty"
    target_model = BodyTarget
    axis_name = "pedicle_axis"
    extra_constraints = {"through_pedicle": "the needle passes through the pedicle isthmus"}
    width_limit = ("Pedicle isthmus", "pedicle")

    def build_anatomy(self, volume: Any, masks: Any = None, hint_lps: Any = None, levels: Any = None,
                      level_point: Any = None, use_totalsegmentator: bool = False) -> Any:
        """The thoracolumbar anatomy (:func:`osteoplan.anatomy.spine_pipeline.build_spine_anatomy`) of the levels
        asked (*levels*: ``"T12"``, ``"T10-L1"``)."""
        from osteoplan.anatomy.spine_pipeline import build_spine_anatomy

        want = parse_levels(levels) if isinstance(levels, str) else levels
        return build_spine_anatomy(volume, masks=masks, levels=want, level_point=level_point)

    def sites(self, anatomy: Any, protocol: "Protocol", level: str | None = None, side: str = "best") -> list[Site]:
        """A site per requested level and pedicle side (both for two needles per level; the two alternatives of
        one group for one needle).

        Parameters
        ----------
        anatomy : object with ``spine`` (:class:`osteoplan.anatomy.spine.SpineAnatomy`) or a SpineAnatomy.

        Raises
        ------
        PlanningError
            No level asked and none in the protocol.
        AnatomyError
            A level not found on this CT, or a level without a pedicle on the side(s) needed.
        """
        spine = getattr(anatomy, "spine", anatomy)
        verts = getattr(spine, "vertebrae", None)
        if verts is None:
            raise AnatomyError("No spine anatomy: the vertebrae were not found on this CT; give vertebra masks "
                               "(--masks, TotalSegmentator or VerSe labels).")
        want = parse_levels(level or protocol.default_level or "")
        two = protocol.needles_per_level == 2
        out = SiteList()
        for lv in want:
            v = verts.get(lv)
            if v is None:
                found = ", ".join(k for k in LEVEL_ORDER if k in verts) or "none"
                out.unplanned[lv] = (f"{lv} was not found on this CT (levels found: {found}); check the field of view "
                                     "or give vertebra masks (--masks) or a level point (--level-point).")
                continue
            sides = ["left", "right"] if (two or side in ("best", "both")) else [side]
            odd = {s: implausible_axis(v, s) for s in sides if s in v.pedicles}
            odd = {s: why for s, why in odd.items() if why}
            have = [s for s in sides if s in v.pedicles and s not in odd]
            lost = [s for s in sides if s not in v.pedicles or s in odd]
            if not have or (two and lost):
                which = " and ".join(lost)
                why = "; ".join(odd.values())
                out.unplanned[lv] = (f"{lv}: the {which} pedicle{'s were' if len(lost) > 1 else ' was'} not found"
                                     + (f" reliably ({why})" if why else "")
                                     + "; give pedicle/vertebra masks (--masks) or plan one side (--side).")
                continue
            gaps = _canal_gap(getattr(anatomy, "labelmap", None), v)
            for s in have:
                site = self.site_of(v, s, protocol, group=f"{lv} {s}" if two else lv)
                if gaps:
                    site = replace(site, not_covered=gaps)
                out.append(site)
        if not out:
            raise AnatomyError(" ".join(out.unplanned.values()))
        return out

    def confirmations(self, anatomy: Any) -> list[str]:
        """The level confirmation the spine anatomy asks for when its naming is unsure (a wrong level is the classic
        error of vertebroplasty)."""
        spine = getattr(anatomy, "spine", anatomy)
        out = [m for m in getattr(spine, "messages", ()) if m.startswith("LEVEL DISAGREEMENT")]
        if getattr(spine, "needs_confirmation", False):
            out.append(f"the vertebra levels are not confirmed ({spine.level_method}, confidence "
                       f"{spine.level_confidence:.2f}): " + (spine.confirmation_request
                                                             or "give a level point (--level-point)."))
        return out

    def site_of(self, v: Any, side: str, protocol: "Protocol", group: str = "") -> Site:
        """The site of vertebra landmarks *v* (:class:`~osteoplan.anatomy.spine.VertebraLandmarks`) and one pedicle."""
        p = v.pedicles[side]
        lm = v.to_dict()
        lm["side"] = side
        half_h = float(v.body_height_mm) / 2
        return Site(procedure=self.name, level=v.level, bone_label=f"vertebrae_{v.level}",
                    centre_lps_mm=v.body_centre_lps_mm, axis_unit=v.superior_unit, anterior_unit=v.anterior_unit,
                    references={"pedicle_entry": p.entry_lps_mm, "pedicle_isthmus": p.isthmus_lps_mm,
                                "body_centre": v.body_centre_lps_mm, "posterior_wall": v.posterior_wall_lps_mm,
                                "anterior_wall": v.anterior_wall_lps_mm},
                    cone_axes={side: p.axis_unit}, roi_above_mm=half_h + 15.0, roi_below_mm=half_h + 15.0,
                    width_limit_mm=float(p.width_mm), landmarks=lm, method=str(v.level_source), group=group or v.level)

    def target_zone(self, site: Site, protocol: "Protocol") -> TargetBox:
        """The anterior-third zone (protocol ``[target]``) as a box in the vertebra's frame from the body centre:
        height within ``height_fraction_max`` of the body height, depth ``anterior_fraction_min..max`` of the way
        from the posterior to the anterior wall, lateral offset on the needle's own side (two needles) or across
        the midline (one needle)."""
        t = protocol.target
        lm = site.landmarks
        c = site.centre_lps_mm
        post = float((site.references["posterior_wall"] - c) @ site.anterior_unit)
        ant = float((site.references["anterior_wall"] - c) @ site.anterior_unit)
        f0, f1 = post + t.anterior_fraction_min * (ant - post), post + t.anterior_fraction_max * (ant - post)
        h = t.height_fraction_max * float(lm["body_height_mm"])
        entry_left = 1.0 if lm["side"] == "left" else -1.0  # lateral_unit = patient left
        if protocol.needles_per_level == 2:
            lo, hi = entry_left * t.own_side_min_mm, entry_left * t.own_side_max_mm
            side = f"{t.own_side_min_mm:g}-{t.own_side_max_mm:g} mm from the midline on the needle's own side"
        else:
            lo, hi = -entry_left * t.across_midline_min_mm, -entry_left * t.across_midline_max_mm
            side = f"{t.across_midline_min_mm:g}-{t.across_midline_max_mm:g} mm across the midline"
        rule = (f"target in the anterior third of {site.level} ({t.anterior_fraction_min:.0%}-"
                f"{t.anterior_fraction_max:.0%} of the body depth from the posterior wall, within "
                f"{t.height_fraction_max:.0%} of the body height from its centre, {side})")
        return TargetBox(c, np.stack([site.axis_unit, site.anterior_unit, site.lateral_unit]),
                         ((-h, h), (f0, f1), (min(lo, hi), max(lo, hi))),
                         ("height from the body centre", "depth", "lateral offset"), rule)

    def _zone(self, site: Site, protocol: "Protocol") -> np.ndarray:
        z = self.target_zone(site, protocol)
        return box_grid(site, z.origin, *z.ranges, protocol.target.grid_step_mm)

    def violations(self, ev: Any, fields: "ROIFields", targets: np.ndarray, dirs: np.ndarray, site: Site,
                   protocol: "Protocol", thread_mm: float) -> dict[str, np.ndarray]:
        """``through_pedicle`` (when the target zone asks it: transpedicular): the path's axis passes within
        ``pedicle width / 2`` of the pedicle isthmus centre (mm beyond), so the needle really goes through the
        pedicle and its passage is measured."""
        if not getattr(protocol.target, "through_isthmus", False):
            return {}
        T, D = targets[ev.cand_t], dirs[ev.cand_d]
        c = site.references["pedicle_isthmus"]
        rel = c[None] - T
        along = np.einsum("ij,ij->i", rel, -D)
        dist = np.linalg.norm(rel + along[:, None] * D, axis=1)  # the line T - s D, s >= 0, to the isthmus centre
        half = 0.5 * float(site.width_limit_mm or 0.0)
        return {"through_pedicle": np.maximum(0.0, dist - half)}

    def target_points(self, fields: "ROIFields", site: Site, protocol: "Protocol", r_contain_mm: float) -> np.ndarray:
        """Grid points of the anterior-third zone (protocol ``[target]``) at least ``inside_cortex_min_mm`` and the
        needle radius + containment margin inside the vertebra; at most ``max_targets``, evenly spread."""
        t = protocol.target
        need = max(t.inside_cortex_min_mm, r_contain_mm + protocol.implant().containment_margin_mm)
        return keep_deep(fields, self._zone(site, protocol), need, t.max_targets)

    def no_target_message(self, fields: "ROIFields", site: Site, protocol: "Protocol", r_contain_mm: float) -> str:
        t = protocol.target
        return (f"No target point of {site.level} ({t.anterior_fraction_min:.0%}-{t.anterior_fraction_max:.0%} of the "
                f"body depth from the posterior wall) lies {t.inside_cortex_min_mm:g} mm inside the vertebra "
                f"(source: {fields.bone_source}); the body may be collapsed or the vertebra mask wrong: check it, or "
                "give its mask (--masks).")

    def trajectory_figures(self, site: Site, target: np.ndarray, direction: np.ndarray, bone_entry: np.ndarray,
                           protocol: "Protocol", thread_mm: float, fields: "ROIFields | None" = None,
                           r_instr_mm: float = 0.0, entry_skip_mm: float = 0.0) -> dict[str, Any]:
        """Tip position in the body, and the pedicle passage: the smallest distance from the needle surface to the
        vertebra's outer surface between the bone entry (after the *entry_skip_mm* where the needle crosses the
        cortex, as for the containment) and the posterior wall, its wall and its Gertzbein-Robbins grade."""
        lm = site.landmarks
        c, ant, ax, lat = site.centre_lps_mm, site.anterior_unit, site.axis_unit, site.lateral_unit
        post = float((site.references["posterior_wall"] - c) @ ant)
        front = float((site.references["anterior_wall"] - c) @ ant)
        rel = target - c
        entry_left = 1.0 if lm.get("side") == "left" else -1.0
        out: dict[str, Any] = {
            "tip_anterior_fraction": round(float((rel @ ant - post) / max(front - post, 1e-6)), 3),
            "tip_from_midline_mm": round(float(-entry_left * (rel @ lat)), 2),
            "tip_below_superior_endplate_mm": round(float(lm["body_height_mm"]) / 2 - float(rel @ ax), 2),
        }
        if fields is None:
            return out
        from scipy.ndimage import map_coordinates

        # the pedicle passage: from the bone entry to where the path crosses the posterior wall plane
        s_wall = float(((site.references["posterior_wall"] - bone_entry) @ ant) / max(direction @ ant, 1e-3))
        s_bone = float(np.linalg.norm(target - bone_entry))
        s_end = min(max(s_wall, 0.0), s_bone)
        skip = max(entry_skip_mm, protocol.implant().containment_skip_entry_mm)  # the cortex crossed at the entry
        if s_end <= skip:
            return out
        s = np.arange(skip, s_end + 1e-9, 0.25)
        pts = bone_entry[None] + s[:, None] * direction[None]
        depth = map_coordinates(fields.bone_depth_mm, fields.world_to_roi(pts).T, order=1, mode="nearest")
        i = int(np.argmin(depth))
        margin = float(depth[i]) - r_instr_mm
        # outward normal at the closest point: minus the depth gradient (LPS)
        q = fields.world_to_roi(pts[i])
        g = np.array([map_coordinates(fields.bone_depth_mm, (q + e)[:, None], order=1)[0]
                      - map_coordinates(fields.bone_depth_mm, (q - e)[:, None], order=1)[0] for e in np.eye(3) * 0.5])
        gw = np.linalg.inv(fields.affine[:3, :3]).T @ g
        normal = -gw / max(np.linalg.norm(gw), 1e-9)
        towards_mid = -np.sign(float((pts[i] - c) @ lat)) * lat
        comps = {"medial": normal @ towards_mid, "lateral": -(normal @ towards_mid), "superior": normal @ ax,
                 "inferior": -(normal @ ax)}
        out.update(pedicle_margin_mm=round(margin, 2), pedicle_breach_grade=gertzbein_robbins(-margin),
                   pedicle_breach_wall=max(comps, key=comps.get))
        return out

    def cement(self, labelmap: "LabelMap", sites: list[Site], protocol: "Protocol", lesion_mask: np.ndarray | None,
               trajectories: list[Any]) -> Any:
        """Suggested PMMA per level (Belkoff 2001, :data:`CEMENT_ML`), and the posterior wall of each level checked
        for a breach (the lesion reaching it, or a cortical gap: more than :data:`POSTERIOR_WALL_GAP_SHARE` of it
        without a bone voxel within one voxel), said as an epidural leak risk."""
        from osteoplan.planning.model import Cement, WallCheck

        levels = list(dict.fromkeys(s.level for s in sites))
        per = {lv: CEMENT_ML[region(lv)] for lv in levels}
        walls, notes = [], []
        les = lesion_mask if lesion_mask is not None else (labelmap.get("lesion") if labelmap.has("lesion") else None)
        vol = labelmap.volume
        for lv in levels:
            name = f"posterior_wall_{lv}"
            if not labelmap.has(name) or not labelmap.get(name).any():
                walls.append(WallCheck(neighbour=f"{lv} posterior wall (spinal canal)", segmented=False, breached=None,
                                       distance_mm=None, leak_risk=None, note="posterior wall not segmented: not assessed"))
                continue
            wall = labelmap.get(name)
            if les is not None and les.any():
                from scipy import ndimage as ndi

                breached = bool((ndi.binary_dilation(wall, iterations=1) & les).any())
                how = "the lesion reaches it"
            else:
                from scipy import ndimage as ndi

                # a gap = wall voxels whose whole 3x3x3 neighbourhood is below the cancellous threshold: a thin cortex
                # blurred by partial volume keeps a bright neighbour, a lytic gap does not
                box = tuple(slice(max(0, a_ - 2), b_ + 3) for a_, b_ in
                            ((int(ix.min()), int(ix.max())) for ix in np.nonzero(wall)))
                local_max = ndi.maximum_filter(vol.array[box], size=3)
                share = float((local_max[wall[box]] < protocol.density.cancellous_hu).mean())
                breached = share > POSTERIOR_WALL_GAP_SHARE
                how = f"{share:.0%} of it with no voxel >= {protocol.density.cancellous_hu:g} HU within one voxel"
            walls.append(WallCheck(neighbour=f"{lv} posterior wall (spinal canal)", segmented=True, breached=breached,
                                   distance_mm=None, leak_risk=breached, note=how))
            if breached:
                notes.append(f"{lv}: POSTERIOR WALL BREACHED ({how}): risk of epidural cement leak — inject slowly under "
                             "lateral fluoroscopy, stop at the posterior quarter of the body, discuss the indication.")
        lo = sum(v[0] for v in per.values())
        hi = sum(v[1] for v in per.values())
        basis = ("Per level, the volumes that restored strength (low) and stiffness (high) in vitro (Belkoff et al., "
                 "Spine 2001;26:1537): " + "; ".join(f"{lv} {a:g}-{b:g} mL" for lv, (a, b) in per.items()) + ".")
        return Cement(lesion_assessed=les is not None, lesion_volume_ml=None, suggested_pmma_ml=(lo, hi), basis=basis,
                      walls=tuple(walls), leak_risk=any(w.leak_risk for w in walls) if walls else None,
                      notes=tuple(notes), per_level_ml={lv: v for lv, v in per.items()})

    def route_reference(self, site: Site) -> dict[str, Any]:
        return {"point": site.references["pedicle_entry"], "en": f"the {site.level} pedicle entry",
                "fr": f"l'entrée pédiculaire de {site.level}", "point_key": "pedicle_entry_z_mm",
                "gap_key": "pedicle_entry_to_ct_lower_edge_mm",
                "advice_en": "Use a CT that shows the back and the skin over the spine",
                "advice_fr": "Utiliser un scanner montrant le dos et la peau en regard du rachis"}
