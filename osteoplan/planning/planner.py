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
                                      HUProfile, Hydrodissection, Infeasibility, NearMiss, Plan, RouteCheck, Screw,
                                      SearchStats, Trajectory)
from osteoplan.planning.protocol import DEFAULT_PROTOCOL, Protocol, load_protocol
from osteoplan.planning.search import BONE_CONSTRAINTS, CONSTRAINTS, SearchResult, dens_frame, search, zone_frame
from osteoplan.planning.verdict import compute_verdict


def _r(x: float, n: int = 2) -> float:
    return round(float(x), n)


def _v(x: np.ndarray, n: int = 2) -> tuple[float, float, float]:
    return tuple(round(float(a), n) for a in np.asarray(x).reshape(3))  # type: ignore[return-value]


def _assessed_by(source: str | None) -> str:
    """How a segmented structure was known, from its label-map source string."""
    src = (source or "").lower()
    if "atlas" in src:
        return "atlas"
    if "bony canal" in src or "foramen" in src or "foramina" in src:
        return "bony_canal"
    if src.startswith("provided") or "totalsegmentator" in src or "phantom" in src:
        return "provided_mask"
    return "segmented"


#: A structure not segmented whose clearance is covered by another one's, and how it is said.
#: The bony spinal canal contains the cord; the vertebral artery runs in its bony canal (transverse foramina).
COVERED_BY = {
    "spinal_cord": ("spinal_canal", "covered", "covered by the spinal-canal clearance (the bony canal contains the cord)"),
    "vertebral_artery_left": ("vertebral_artery_canal_left", "bony_canal",
                              "assessed by its bony canal (foramen transversarium), not the vessel"),
    "vertebral_artery_right": ("vertebral_artery_canal_right", "bony_canal",
                               "assessed by its bony canal (foramen transversarium), not the vessel"),
}


def _checks(res: SearchResult, c: int, protocol: Protocol, fine: bool = True) -> list[ClearanceCheck]:
    ev = res.fine if fine else res.coarse
    out = []
    from osteoplan.planning.fields import CAP_MM

    measured = {s.name for s in res.fields.structures}
    for s_i, s in enumerate(res.fields.structures):
        clr = float(ev.clear[c, s_i])
        disp = None
        note = None
        if s.never_enter and clr < 0:
            status = "fail"
            note = ("the instrument enters it: never acceptable (hydrodissection displaces what the path passes near, "
                    "it does not open a way through a lumen)")
        elif clr >= s.margin_mm - 1e-9:
            status = "pass"
        elif s.category == "displaceable":
            disp = _r(s.margin_mm - clr)
            status = "hydrodissection" if disp <= protocol.hydrodissection.achievable_mm else "fail"
        else:
            status = "fail"
        if note is None and clr >= CAP_MM - res.r_instr - 0.05:
            note = f"at least this much (distances are computed up to {CAP_MM:g} mm)"
        by = _assessed_by(s.source)
        if by == "atlas":
            note = "atlas-transferred mask, not this patient's vessel"
        elif by == "bony_canal" and note is None:
            note = "the vertebral artery's bony canal (foramen transversarium), segmented on the CT"
        out.append(ClearanceCheck(structure=s.name, category=s.category, margin_mm=s.margin_mm,
                                  clearance_mm=_r(clr), status=status, displacement_needed_mm=disp,
                                  segmented=True, source=s.source,
                                  segment="skin_to_bone" if s.soft_only else "skin_to_target", note=note,
                                  assessed_by=by))
    for name, why in res.not_assessed.items():
        rule = protocol.structures[name]
        cover = COVERED_BY.get(name)
        if cover is not None and cover[0] in measured:
            out.append(ClearanceCheck(structure=name, category=rule.category, margin_mm=rule.margin_mm,
                                      clearance_mm=None, status="covered", segmented=False, source=None,
                                      note=f"{cover[2]}: see {cover[0]}", assessed_by=cover[1]))
            continue
        unseen = why.startswith(NOT_ASSESSABLE_PREFIX)
        out.append(ClearanceCheck(structure=name, category=rule.category, margin_mm=rule.margin_mm,
                                  clearance_mm=None, status="not_assessable" if unseen else "not_assessed",
                                  segmented=False, source=None, note=why, assessed_by="not_assessed"))
    return out


#: Start of the reason given for a structure the CT cannot show (e.g. transverse foramina at 4 mm pixels).
NOT_ASSESSABLE_PREFIX = "not assessable on this CT"


def not_assessable_from_messages(messages: list[str], names: list[str]) -> dict[str, str]:
    """Structures the anatomy said cannot be assessed on this CT, from its messages.

    A message ``"<base>: ... not assessable on this CT: <why>"`` marks every name among *names* equal to
    ``<base>`` or ``<base>_left`` / ``<base>_right``. Returns name -> ``"not assessable on this CT: <why>"``.
    """
    import re

    out: dict[str, str] = {}
    for m in messages:
        hit = re.match(r"^(\w+): .*?not assessable on this CT:?\s*(.*)$", m)
        if not hit:
            continue
        base, why = hit.group(1), hit.group(2).strip().rstrip(".")
        for n in names:
            if n == base or n in (f"{base}_left", f"{base}_right"):
                out[n] = f"{NOT_ASSESSABLE_PREFIX}: {why}" if why else NOT_ASSESSABLE_PREFIX
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
    ref, zax, zant, zlat = zone_frame(lm, protocol)
    corner = np.asarray(lm.anteroinferior_body_lps_mm, float)
    thread = float(getattr(ev, "thread_mm", 0.0)) or screw.thread_mm
    gap = None
    if ev.tip_gap is not None and protocol.target.tip_to_cortex_max_mm is not None:
        gap = _r(ev.tip_gap[c])
    crosses = bool(((T - lm.waist_lps_mm) @ ax > 0) and ((T - thread * d - lm.waist_lps_mm) @ ax < 0))
    in_lesion = (_r(ev.lesion_thread[c]) if (res.fields.lesion_assessed and ev.lesion_thread is not None) else None)
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
        tip_to_cortex_mm=gap, tip_to_apex_mm=_r(np.linalg.norm(lm.apex_lps_mm - T)),
        bone_entry_to_apex_mm=_r(np.linalg.norm(lm.apex_lps_mm - bone)),
        bone_entry_above_corner_mm=_r((bone - corner) @ zax), bone_entry_from_midline_mm=_r(abs((bone - corner) @ zlat)),
        thread_crosses_waist=crosses, thread_in_lesion_mm=in_lesion,
        score=_r(asm.score[c], 3), score_terms=terms,
        guidance=guidance_for(d, protocol.guidance.gantry_limit_deg))


def _constraint_order(res: SearchResult) -> list[str]:
    present = res.coarse_assessment.violations
    names = ["skin"] + [n for n in BONE_CONSTRAINTS if n in present]
    names += [f"clearance:{s.name}" for s in res.fields.structures if s.category == "hard"]
    names += [f"viscus:{s.name}" for s in res.fields.structures if s.never_enter]
    names += [n for n in ("corridor",) if n in present]
    names += ["bone_on_way", "hydrodissection_limit"]
    return names


def _describe(name: str) -> str:
    if name.startswith("clearance:"):
        return f"clearance to {name.split(':', 1)[1]} >= its margin"
    if name.startswith("viscus:"):
        return f"the instrument does not enter {name.split(':', 1)[1]} (displaced by hydrodissection, never crossed)"
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


def _route_check(res: SearchResult, protocol: Protocol, volume: Volume, lm: DensLandmarks,
                 feasible: bool) -> RouteCheck:
    """Whether the CT shows the technique's route (see :class:`~osteoplan.planning.model.RouteCheck`).

    Not assessable when no path is feasible, no technique-conformant path (every bone-side constraint met)
    reaches the skin inside the image, and some leave the image still inside the body: where their skin entry
    would be, and what lies on the way, cannot be seen. The planner never substitutes another route.
    """
    c = res.route_counts or {}
    n_conf, n_skin, n_left = c.get("conforming", 0), c.get("reached_skin", 0), c.get("left_image", 0)
    lo, hi = volume.bounds_lps_mm()
    corner_z = float(lm.anteroinferior_body_lps_mm[2])
    figs = {"conforming_paths": float(n_conf), "reached_skin_in_image": float(n_skin),
            "left_image_inside_body": float(n_left), "ct_lower_edge_z_mm": round(float(lo[2]), 1),
            "c2_anteroinferior_corner_z_mm": round(corner_z, 1),
            "corner_to_ct_lower_edge_mm": round(corner_z - float(lo[2]), 1)}
    route = protocol.route
    if res.route_exit_z_mm is not None:
        figs["paths_leave_image_at_z_mm"] = round(res.route_exit_z_mm, 1)
    if not feasible and n_left > 0 and n_skin == 0:
        exit_z = res.route_exit_z_mm if res.route_exit_z_mm is not None else float(lo[2])
        below = corner_z - exit_z
        en = (f"{route.upper()} ROUTE NOT ASSESSABLE ON THIS CT: the technique's paths ({n_left} of {n_conf} conforming) "
              f"leave the image data still inside the body, at z = {exit_z:.0f} mm ({below:.0f} mm below the C2 "
              "anteroinferior corner), so their skin entry and what lies on the way cannot be checked. Extend the scan "
              "to C6-T1; another route is another protocol (--protocol).")
        fr = (f"VOIE {'ANTÉRIEURE' if route == 'anterior' else route.upper()} NON ÉVALUABLE SUR CE SCANNER : les trajets "
              f"de la technique ({n_left} sur {n_conf} conformes) sortent des données de l'image encore dans le corps, "
              f"à z = {exit_z:.0f} mm ({below:.0f} mm sous le coin antéro-inférieur de C2) : leur point d'entrée cutané "
              "et ce qu'ils traversent ne peuvent pas être vérifiés. Étendre l'acquisition jusqu'à C6-T1 ; une autre "
              "voie est un autre protocole (--protocol).")
        return RouteCheck(assessable=False, route=route, message_en=en, message_fr=fr, figures=figs)
    msg = None
    if n_left > 0 and not feasible:
        msg = (f"{n_left} of the {n_conf} technique-conforming paths leave the image still inside the body and could not "
               "be checked: a CT extended to C6-T1 may show a feasible one.")
    return RouteCheck(assessable=True, route=route, message_en=msg, figures=figs)


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
    protocol : Protocol or name/path (default :data:`~osteoplan.planning.protocol.DEFAULT_PROTOCOL`,
        ``"c2-dens-anterior"``).
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
        protocol = load_protocol(protocol or DEFAULT_PROTOCOL)
    side = side or protocol.side.default
    res = search(volume, labelmap, landmarks, protocol, side=side, lesion_mask=lesion_mask, **search_kw)
    for name, why in not_assessable_from_messages(list(warnings or []), list(res.not_assessed)).items():
        res.not_assessed[name] = why
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
        flag = protocol.screw.short_of_apex_flag_mm
        if (flag is not None and best.screw is not None and best.bone_entry_to_apex_mm is not None
                and best.screw.length_mm < best.bone_entry_to_apex_mm - flag):
            warns.append(f"Screw {best.screw.length_mm:g} mm is more than {flag:g} mm shorter than its bone entry -> dens "
                         f"apex distance ({best.bone_entry_to_apex_mm:.1f} mm): check the tip reaches the apical cortex.")
    sp_max = float(np.max(volume.spacing_mm))
    if sp_max > 1.25:
        warns.append(f"Coarse CT ({sp_max:.1f} mm voxels): clearances, containment and the dens landmarks are uncertain "
                     f"by about half a voxel ({sp_max / 2:.1f} mm) or more; re-plan on a thin-slice CT (<= 1 mm) before use.")
    c2_full = None
    if labelmap.has("vertebrae_C2"):
        c2_full = labelmap.get("vertebrae_C2")
    cement = plan_cement(labelmap, c2_full, protocol, lesion_mask)
    na = sorted(res.not_assessed)
    measured = {s_.name for s_ in res.fields.structures}
    _cov = COVERED_BY
    covered = sorted(n for n in na if n in _cov and _cov[n][0] in measured)
    na_strict = [n for n in na if n not in covered]
    if na_strict:
        warns.append("Not assessed (not segmented, never reported as clear): " + ", ".join(na_strict) + ".")
    for n in covered:
        warns.append(f"{n}: {_cov[n][2]} ({_cov[n][0]}).")
    if protocol.entry.skin_medial_to:
        want = [f"{b}_{sd}" for b in protocol.entry.skin_medial_to for sd in ("left", "right")]
        missing = [n for n in want if n not in res.fields.medial_sources]
        if missing and best is not None:
            warns.append("Corridor not fully assessed: the skin entry could not be checked to lie medial to "
                         + ", ".join(missing) + " (not segmented on this CT).")
    route = _route_check(res, protocol, volume, landmarks, feasible=best is not None)
    if route is not None and route.message_en and route.assessable:
        warns.append(route.message_en)
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
                assessed=tuple(s.name for s in res.fields.structures), not_assessed=tuple(na_strict),
                structure_sources=sources, landmarks=landmarks.to_dict(), risk=risk,
                warnings=tuple(dict.fromkeys(warns)), infeasibility=infeas, search=stats,
                procedure=protocol.name, route=route)
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
