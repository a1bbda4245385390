"""From CT + label map + dens landmarks to a :class:`~osteoplan.planning.model.Plan`.

Entry points: :func:`make_plan` (volume, label map, landmarks) and :func:`plan_from_anatomy`
(the output of :func:`osteoplan.anatomy.pipeline.build_anatomy`).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np

from osteoplan import __version__
from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.anatomy.landmarks import DensLandmarks
from osteoplan.errors import PlanningError
from osteoplan.imaging.volume import Volume
from osteoplan.planning import kernel as K
from osteoplan.planning.cement import plan_cement
from osteoplan.planning.guidance import guidance_for
from osteoplan.planning.model import (ClearanceCheck, ConstraintExclusion, CTGeometry, DisplacementItem,
                                      HUProfile, Hydrodissection, Infeasibility, NearMiss, Plan, Screw,
                                      SearchStats, Trajectory)
from osteoplan.planning.protocol import Protocol, load_protocol
from osteoplan.planning.search import CONSTRAINTS, SearchResult, dens_frame, search
from osteoplan.planning.verdict import compute_verdict


def _r(x: float, n: int = 2) -> float:
    return round(float(x), n)


def _v(x: np.ndarray, n: int = 2) -> tuple[float, float, float]:
    return tuple(round(float(a), n) for a in np.asarray(x).reshape(3))  # type: ignore[return-value]


def _checks(res: SearchResult, c: int, protocol: Protocol, fine: bool = True) -> list[ClearanceCheck]:
    ev = res.fine if fine else res.coarse
    out = []
    for s_i, s in enumerate(res.fields.structures):
        clr = float(ev.clear[c, s_i])
        disp = None
        if clr >= s.margin_mm - 1e-9:
            status = "pass"
        elif s.category == "displaceable":
            disp = _r(s.margin_mm - clr)
            status = "hydrodissection" if disp <= protocol.hydrodissection.achievable_mm else "fail"
        else:
            status = "fail"
        note = None
        from osteoplan.planning.fields import CAP_MM

        if clr >= CAP_MM - res.r_instr - 0.05:
            note = f"at least this much (distances are computed up to {CAP_MM:g} mm)"
        if "atlas" in (s.source or "").lower():
            note = "atlas-transferred mask, not this patient's vessel"
        out.append(ClearanceCheck(structure=s.name, category=s.category, margin_mm=s.margin_mm,
                                  clearance_mm=_r(clr), status=status, displacement_needed_mm=disp,
                                  segmented=True, source=s.source,
                                  segment="skin_to_bone" if s.soft_only else "skin_to_target", note=note))
    for name, why in res.not_assessed.items():
        rule = protocol.structures[name]
        out.append(ClearanceCheck(structure=name, category=rule.category, margin_mm=rule.margin_mm,
                                  clearance_mm=None, status="not_assessed", segmented=False, source=None,
                                  note=why))
    return out


def _shortfall_text(constraint: str, value: float) -> str:
    """How far the closest candidate misses one constraint, in that constraint's unit."""
    if constraint == "skin":  # no distance: the path never left the body inside the CT / maximum depth
        return "skin not reached inside the CT or within the maximum depth"
    unit = "deg" if constraint == "entry_angle" else "mm"
    amount = f"{value:.1f}" if value >= 0.05 else "< 0.1"
    return f"{constraint} short by {amount} {unit}"


def _skip(protocol: Protocol, r_screw: float, incidence_deg: float) -> float:
    """Containment entry skip (same rule as the kernel)."""
    sin_inc = max(np.sin(np.radians(incidence_deg)), 1e-3)
    return float(min(15.0, max(protocol.screw.containment_skip_entry_mm,
                               (r_screw + protocol.screw.containment_margin_mm) / sin_inc)))


def _trajectory(res: SearchResult, c: int, rank: int, volume: Volume, lm: DensLandmarks, protocol: Protocol,
                labelmap: LabelMap) -> Trajectory:
    ev, asm = res.fine, res.fine_assessment
    T = res.targets[ev.cand_t[c]]
    d = res.dirs[ev.cand_d[c]]
    sb, ss = float(ev.s_bone[c]), float(ev.s_skin[c])
    bone, skin = T - sb * d, T - ss * d
    ax, ant = dens_frame(lm)
    cc, ml = K.angles_of(d)
    checks = _checks(res, c, protocol)
    # screw
    L = float(asm.screw_len[c])
    diam = res.diameter_mm
    waist = lm.waist_diameter_mm if lm.waist_diameter_mm and np.isfinite(lm.waist_diameter_mm) else None
    wm = None if waist is None else _r((waist - diam) / 2)
    screw = Screw(diameter_mm=diam, length_mm=L, thread_mm=protocol.screw.thread_mm[protocol.screw.thread_key(diam)],
                  catalogue_ref=f"{protocol.screw.catalogue}-{diam:.1f}x{L:g}", waist_diameter_mm=waist,
                  waist_margin_mm=wm, fits_waist=None if wm is None else bool(wm >= protocol.screw.waist_margin_mm - 1e-9),
                  tip_short_of_target_mm=_r(sb - L))
    # HU profile along the screw (bone entry -> target)
    step = 0.5
    n = max(2, int(sb / step) + 1)
    pts = bone[None] + np.linspace(0, sb, n)[:, None] * d[None]
    hu = volume.sample(pts)
    dn = protocol.density
    prof = HUProfile(mean_hu=_r(hu.mean(), 1), min_hu=_r(hu.min(), 1), max_hu=_r(hu.max(), 1),
                     cortical_share=_r((hu >= dn.cortical_hu).mean(), 3),
                     cancellous_share=_r(((hu >= dn.cancellous_hu) & (hu < dn.cortical_hu)).mean(), 3),
                     low_density_share=_r((hu < dn.cancellous_hu).mean(), 3), cortical_hu=dn.cortical_hu,
                     cancellous_hu=dn.cancellous_hu, step_mm=step, samples_hu=tuple(round(float(h), 1) for h in hu))
    mand = None
    if labelmap.has("mandible"):
        q = np.arange(sb, ss, 0.25)
        idx = np.rint(volume.world_to_index(T[None] - q[:, None] * d[None])).astype(int)
        idx = np.clip(idx, 0, np.asarray(volume.shape) - 1)
        mand = _r(labelmap.get("mandible")[tuple(idx.T)].sum() * 0.25)
    from scipy.ndimage import map_coordinates

    tip_depth = float(map_coordinates(res.fields.c2_depth_mm, res.fields.world_to_roi(T).reshape(3, 1), order=1)[0])
    hydro = any(ch.status == "hydrodissection" for ch in checks)
    terms = {k: _r(v[c], 3) for k, v in asm.terms.items()}
    return Trajectory(
        rank=rank, side="right" if d[0] > 0 else "left",
        skin_entry_lps_mm=_v(skin), bone_entry_lps_mm=_v(bone), target_lps_mm=_v(T),
        skin_entry_voxel_kji=_v(volume.world_to_index(skin)), bone_entry_voxel_kji=_v(volume.world_to_index(bone)),
        target_voxel_kji=_v(volume.world_to_index(T)), direction_unit=_v(d, 4),
        depth_skin_to_bone_mm=_r(ss - sb), depth_bone_to_target_mm=_r(sb), depth_total_mm=_r(ss),
        angle_craniocaudal_deg=_r(cc, 1), angle_mediolateral_deg=_r(ml, 1),
        angle_to_dens_axis_deg=_r(np.degrees(np.arccos(np.clip(abs(d @ ax), 0, 1))), 1),
        clearances=tuple(checks), screw=screw,
        containment_min_margin_mm=_r(ev.containment[c]),
        containment_entry_skip_mm=_r(_skip(protocol, res.r_screw, float(ev.incidence_deg[c]))),
        entry_incidence_deg=_r(ev.incidence_deg[c], 1), instrument_radius_mm=_r(res.r_instr, 3),
        hu_profile=prof, lesion_crossing_mm=_r(ev.lesion[c]) if res.fields.lesion_assessed else None,
        soft_tissue_depth_mm=_r(ss - sb), mandible_crossing_mm=mand, other_bone_crossing_mm=_r(ev.other_bone[c]),
        tip_depth_inside_cortex_mm=_r(tip_depth), tip_below_apex_mm=_r((lm.apex_lps_mm - T) @ ax),
        tip_anterior_of_axis_mm=_r((T - lm.waist_lps_mm) @ ant), hydrodissection_required=hydro,
        score=_r(asm.score[c], 3), score_terms=terms,
        guidance=guidance_for(d, protocol.guidance.gantry_limit_deg))


def _constraint_order(res: SearchResult) -> list[str]:
    names = ["skin", "bone_entry", "screw_length", "entry_angle", "containment"]
    names += [f"clearance:{s.name}" for s in res.fields.structures if s.category == "hard"]
    names += ["bone_on_way", "hydrodissection_limit"]
    return names


def _describe(name: str) -> str:
    if name.startswith("clearance:"):
        return f"clearance to {name.split(':', 1)[1]} >= its margin"
    return CONSTRAINTS.get(name, name)


def _infeasibility(res: SearchResult, protocol: Protocol) -> Infeasibility:
    asm = res.coarse_assessment
    N = len(asm.feasible)
    order = _constraint_order(res)
    remaining = np.ones(N, bool)
    ex = []
    for name in order:
        viol = asm.violations[name] > 1e-9
        ex.append(ConstraintExclusion(constraint=name, description=_describe(name), excluded=int(viol.sum()),
                                      excluded_first=int((viol & remaining).sum())))
        remaining &= ~viol
    fa = res.fine_assessment
    near = None
    if fa is not None and len(fa.feasible):
        # near-miss: among candidates reaching the skin, the smallest total violation
        tot = sum(np.minimum(v, 1e3) for v in fa.violations.values())
        c = int(np.argmin(tot + np.where(res.fine.code == K.OK, 0, 1e4)))
        viol = {k: _r(v[c]) for k, v in fa.violations.items() if v[c] > 1e-9}
        skin = fa.skin_entry[c] if res.fine.code[c] == K.OK else None
        near = NearMiss(skin_entry_lps_mm=None if skin is None else _v(skin),
                        target_lps_mm=_v(res.targets[res.fine.cand_t[c]]),
                        direction_unit=_v(res.dirs[res.fine.cand_d[c]], 4), violations=viol,
                        clearances=tuple(_checks(res, c, protocol)))
    n_feas = int(res.fine_assessment.feasible.sum()) if res.fine_assessment is not None else 0
    top = sorted(ex, key=lambda e: -e.excluded)
    if n_feas == 0:
        parts = [f"{e.constraint} ({e.excluded} of {N})" for e in top if e.excluded][:4]
        msg = (f"No feasible path among {N} candidates. Most excluding constraints: " + ", ".join(parts) + ".")
        if near is not None and near.violations:
            worst = ", ".join(_shortfall_text(k, v) for k, v in near.violations.items())
            msg += f" Closest candidate: {worst}."
    else:
        msg = f"{n_feas} of the re-evaluated candidates are feasible ({int(asm.feasible.sum())} of {N} in the dense pass)."
    return Infeasibility(n_candidates=N, n_feasible=int(asm.feasible.sum()), exclusions=tuple(ex),
                         best_near_miss=near, message=msg)


def make_plan(volume: Volume, labelmap: LabelMap, landmarks: DensLandmarks, protocol: Protocol | str | None = None,
              side: str | None = None, lesion_mask: np.ndarray | None = None, warnings: list[str] | None = None,
              risk: dict[str, Any] | None = None, **search_kw: Any) -> Plan:
    """Plan the C2 dens screw trajectory.

    Parameters
    ----------
    volume : Volume
        The CT (HU, (k, j, i), affine to LPS mm).
    labelmap : LabelMap
        Segmented structures on the CT grid; absent structures are reported "not assessed".
    landmarks : DensLandmarks
        Dens apex, axis, waist (LPS mm).
    protocol : Protocol or name/path (default ``"c2-dens-lateral"``).
    side : "left", "right" or "best" (default: the protocol's).
    lesion_mask : bool array (K, J, I), optional; default ``labelmap['lesion']`` when present.
    warnings : extra warnings to carry into the plan (e.g. from segmentation).
    risk : fracture-risk summary to embed (from :mod:`osteoplan.risk`).
    **search_kw : passed to :func:`osteoplan.planning.search.search` (steps, grid overrides).

    Returns
    -------
    Plan
        ``feasible`` False with :attr:`Plan.infeasibility` explaining why when no path satisfies the
        hard constraints.

    Raises
    ------
    PlanningError, AnatomyError
        No target zone in C2 / C2 not found / the dens apex is not in the image
        (``landmarks.apex_in_view`` False).
    """
    if not landmarks.apex_in_view:
        raise PlanningError("The dens is cut by the top of the CT: its tip (the screw's target zone) is not in the "
                            "image, so no screw path can be planned. Use a CT that covers the whole dens and C1.")
    if protocol is None or isinstance(protocol, str):
        protocol = load_protocol(protocol or "c2-dens-lateral")
    side = side or protocol.side.default
    res = search(volume, labelmap, landmarks, protocol, side=side, lesion_mask=lesion_mask, **search_kw)
    warns = list(warnings or []) + res.warnings
    trajs = [_trajectory(res, c, i + 1, volume, landmarks, protocol, labelmap) for i, c in enumerate(res.chosen)]
    best = trajs[0] if trajs else None
    hydro = None
    if best is not None:
        items = tuple(DisplacementItem(structure=c.structure, displacement_needed_mm=c.displacement_needed_mm,
                                       clearance_mm=c.clearance_mm, margin_mm=c.margin_mm)
                      for c in best.clearances if c.displacement_needed_mm)
        mx = max((i.displacement_needed_mm for i in items), default=0.0)
        na = [c.structure for c in best.clearances if c.category == "displaceable" and not c.segmented]
        hydro = Hydrodissection(
            required=bool(items), structures=items, max_displacement_mm=_r(mx),
            achievable_mm=protocol.hydrodissection.achievable_mm,
            within_achievable=mx <= protocol.hydrodissection.achievable_mm,
            note=("Not assessed (not segmented): " + ", ".join(na) + ". Hydrodissection may still be needed.") if na else None)
        if best.guidance is not None and not best.guidance.gantry_within_limit:
            warns.append(f"Gantry tilt {best.guidance.gantry_tilt_deg} deg is beyond the scanner limit "
                         f"({protocol.guidance.gantry_limit_deg} deg): follow the path on oblique reformats.")
        lim = protocol.guidance.carm_cranio_caudal_limit_deg
        if best.guidance is not None and abs(best.guidance.bullseye.secondary_deg) > lim:
            warns.append(f"Bull's-eye view needs {best.guidance.bullseye.label}: cranio-caudal angulation beyond {lim:g} deg "
                         "may not be reachable; use the progression view and CT checks instead.")
        sc = protocol.screw
        if best.screw is not None and not (sc.practice_min_mm <= best.screw.length_mm <= sc.practice_max_mm):
            warns.append(f"Screw length {best.screw.length_mm:g} mm is outside the {sc.practice_min_mm:g}-"
                         f"{sc.practice_max_mm:g} mm used in the published series (PMID 33388865).")
        if best.screw is not None and best.screw.fits_waist is False:
            warns.append("The screw leaves less bone than required at the dens waist.")
    sp_max = float(np.max(volume.spacing_mm))
    if sp_max > 1.25:
        warns.append(f"Coarse CT ({sp_max:.1f} mm voxels): clearances, containment and the dens landmarks are uncertain "
                     f"by about half a voxel ({sp_max / 2:.1f} mm) or more; re-plan on a thin-slice CT (<= 1 mm) before use.")
    c2_full = None
    if labelmap.has("vertebrae_C2"):
        c2_full = labelmap.get("vertebrae_C2")
    cement = plan_cement(labelmap, c2_full, protocol, lesion_mask)
    na = sorted(res.not_assessed)
    if na:
        warns.append("Not assessed (not segmented, never reported as clear): " + ", ".join(na) + ".")
    infeas = _infeasibility(res, protocol)
    ct = CTGeometry(shape_kji=volume.shape, spacing_mm=_v(volume.spacing_mm, 4),
                    affine=tuple(tuple(round(float(x), 6) for x in row) for row in volume.affine),
                    source_format=volume.info.source_format)
    sources = {s.name: s.source for s in res.fields.structures}
    sources.update({"vertebrae_C2": res.fields.c2_source, "body": res.fields.body_source})
    stats = SearchStats(n_targets=len(res.targets), n_directions=len(res.dirs),
                        n_candidates=len(res.coarse.code), n_feasible=int(res.coarse_assessment.feasible.sum()),
                        seconds=_r(res.seconds, 3), sample_step_mm=res.coarse_step_mm, refine_step_mm=res.fine_step_mm)
    plan = Plan(osteoplan_version=__version__,
                created_utc=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                protocol_name=protocol.name, protocol_version=protocol.version, ct=ct,
                side_requested=side, side=best.side if best else None, feasible=best is not None,
                trajectories=tuple(trajs), hydrodissection=hydro, cement=cement,
                guidance=best.guidance if best else None,
                assessed=tuple(s.name for s in res.fields.structures), not_assessed=tuple(na),
                structure_sources=sources, landmarks=landmarks.to_dict(), risk=risk,
                warnings=tuple(dict.fromkeys(warns)), infeasibility=infeas, search=stats)
    return plan.model_copy(update={"verdict": compute_verdict(plan)})  # the one verdict every face prints


def plan_from_anatomy(volume: Volume, anatomy: Any, protocol: Protocol | str | None = None, side: str | None = None,
                      risk: dict[str, Any] | None = None, **search_kw: Any) -> Plan:
    """:func:`make_plan` on the result of :func:`osteoplan.anatomy.pipeline.build_anatomy`.

    Raises
    ------
    AnatomyError
        The anatomy has no dens landmarks.
    """
    from osteoplan.errors import AnatomyError

    lm = getattr(anatomy, "landmarks", None)
    if lm is None:
        why = [m for m in (getattr(anatomy, "messages", None) or []) if "C2" in m or "dens" in m.lower()]
        # the reason may already say what to do (e.g. a point given and refused): then not again
        todo = "." if why and "--masks" in why[-1] else ": give a hint point near C2 (--hint-lps X Y Z) or a C2 mask (--masks)."
        raise AnatomyError("The dens could not be located" + (f" ({why[-1].rstrip('.')})" if why else "") + todo)
    lesion = getattr(anatomy, "lesion", None)
    lesion_mask = getattr(lesion, "mask", None) if lesion is not None else None
    msgs = list(getattr(anatomy, "messages", []) or [])
    return make_plan(volume, anatomy.labelmap, lm, protocol, side, lesion_mask=lesion_mask, warnings=msgs,
                     risk=risk, **search_kw)
