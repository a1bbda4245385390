"""From CT + label map + the procedure's anatomy to a :class:`~osteoplan.planning.model.Plan`, for any procedure.

Entry points: :func:`make_plan` (volume, label map, landmarks or sites) and :func:`plan_from_anatomy` (the output
of the anatomy stage). The protocol names the procedure; its module (:mod:`osteoplan.planning.procedures`) turns
the anatomy into sites, the shared engine searches each site, and the plan reports every figure the same way.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from typing import Any

import numpy as np

from osteoplan import __version__
from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.errors import AnatomyError, PlanningError
from osteoplan.imaging.volume import Volume
from osteoplan.planning import kernel as K
from osteoplan.planning.guidance import guidance_for
from osteoplan.planning.model import (ClearanceCheck, ConstraintExclusion, CTGeometry, DisplacementItem,
                                      HUProfile, Hydrodissection, Infeasibility, NearMiss, Plan, RouteCheck, Screw,
                                      SearchStats, Trajectory)
from osteoplan.planning.protocol import DEFAULT_PROTOCOL, Protocol, load_protocol
from osteoplan.planning.procedures import get_procedure
from osteoplan.planning.provenance import ct_source_of
from osteoplan.planning.search import CONSTRAINTS, SearchResult, bone_constraints, search
from osteoplan.planning.site import Site
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


def covering_structure_for(name: str, measured: Iterable[str]) -> tuple[str, str, str] | None:
    """The rule by which a structure that is not segmented counts as covered by the one containing it.

    Parameters
    ----------
    name : str
        The structure key (e.g. ``"spinal_cord"``).
    measured : iterable of str
        The structures whose clearance was measured (on the planned path, or on the actual line of a control CT).

    Returns
    -------
    (str, str, str) or None
        Its :data:`COVERED_BY` entry (covering structure, how it was assessed, the sentence) when the covering
        structure was measured, else None.
    """
    cover = COVERED_BY.get(name)
    return cover if cover is not None and cover[0] in set(measured) else None


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
        if note is None and s.mask_full is not None and not s.mask_full.any():
            note = "none in the field of view (segmented as absent)"
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
        cover = covering_structure_for(name, measured)
        if cover is not None:
            out.append(ClearanceCheck(structure=name, category=rule.category, margin_mm=rule.margin_mm,
                                      clearance_mm=None, status="covered", segmented=False, source=None,
                                      note=f"{cover[2]}: see {cover[0]}", assessed_by=cover[1]))
            continue
        cont = float(ev.containment[c])
        if rule.covered_by_containment and cont >= protocol.implant().containment_margin_mm - 1e-9:
            out.append(ClearanceCheck(structure=name, category=rule.category, margin_mm=rule.margin_mm,
                                      clearance_mm=None, status="covered", segmented=False, source=None,
                                      note=(f"not segmented; covered by containment: the instrument stays {cont:.1f} mm or "
                                            "more inside the target bone from its bone entry to its tip, and this "
                                            "structure lies outside that bone"), assessed_by="covered"))
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
    if constraint.startswith(("clearance:", "viscus:")):  # a structure: its reader's name, as in the verdict
        from osteoplan.planning.verdict import structure_name

        kind, _, key = constraint.partition(":")
        if kind == "viscus":  # the value is how deep the path enters it (search.assess: max(0, -clearance))
            return f"{structure_name(key)} entered by {amount} {unit}"
        return f"clearance to {structure_name(key)} short by {amount} {unit}"
    return f"{constraint} short by {amount} {unit}"


def _skip(protocol: Protocol, r_screw: float, incidence_deg: float) -> float:
    """Containment entry skip (same rule as the kernel)."""
    imp = protocol.implant()
    sin_inc = max(np.sin(np.radians(incidence_deg)), 1e-3)
    return float(min(15.0, max(imp.containment_skip_entry_mm, (r_screw + imp.containment_margin_mm) / sin_inc)))


def _screw(protocol: Protocol, site: Site, diam: float, L: float, sb: float) -> Screw | None:
    """The catalogue screw of a trajectory (None for a needle)."""
    sc = protocol.screw
    if sc is None:
        return None
    waist = site.width_limit_mm
    wm = None if waist is None else _r((waist - diam) / 2)
    return Screw(diameter_mm=diam, length_mm=L, thread_mm=sc.thread_mm[sc.thread_key(diam)],
                 catalogue_ref=f"{sc.catalogue}-{diam:.1f}x{L:g}", waist_diameter_mm=waist,
                 waist_margin_mm=wm, fits_waist=None if wm is None else bool(wm >= sc.waist_margin_mm - 1e-9),
                 tip_short_of_target_mm=_r(sb - L))


def _trajectory(res: SearchResult, c: int, rank: int, volume: Volume, site: Site, protocol: Protocol,
                labelmap: LabelMap) -> Trajectory:
    proc = get_procedure(protocol.procedure)
    ev, asm = res.fine, res.fine_assessment
    T = res.targets[ev.cand_t[c]]
    d = res.dirs[ev.cand_d[c]]
    sb, ss = float(ev.s_bone[c]), float(ev.s_skin[c])
    bone, skin = T - sb * d, T - ss * d
    cc, ml = K.angles_of(d)
    checks = _checks(res, c, protocol)
    L = float(asm.screw_len[c])
    screw = _screw(protocol, site, res.diameter_mm, L, sb)
    # HU profile along the implant (bone entry -> target)
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

    tip_depth = float(map_coordinates(res.fields.bone_depth_mm, res.fields.world_to_roi(T).reshape(3, 1), order=1)[0])
    hydro = any(ch.status == "hydrodissection" for ch in checks)
    thread = float(getattr(ev, "thread_mm", 0.0)) or (screw.thread_mm if screw is not None else 0.0)
    gap = None
    if ev.tip_gap is not None and getattr(protocol.target, "tip_to_cortex_max_mm", None) is not None:
        gap = _r(ev.tip_gap[c])
    in_lesion = (_r(ev.lesion_thread[c]) if (res.fields.lesion_assessed and ev.lesion_thread is not None
                                             and protocol.implant().kind == "screw") else None)
    terms = {k: _r(v[c], 3) for k, v in asm.terms.items()}
    if any(k != "any" for k in site.cone_axes):
        side = "right" if res.side_sign[ev.cand_d[c]] > 0 else "left"
    else:
        side = "right" if d[0] > 0 else "left"
    skip = _skip(protocol, res.r_screw, float(ev.incidence_deg[c]))
    figures = proc.trajectory_figures(site, T, d, bone, protocol, thread, fields=res.fields, r_instr_mm=res.r_screw,
                                      entry_skip_mm=skip)
    return Trajectory(
        rank=rank, side=side, level=site.level,
        skin_entry_lps_mm=_v(skin), bone_entry_lps_mm=_v(bone), target_lps_mm=_v(T),
        skin_entry_voxel_kji=_v(volume.world_to_index(skin)), bone_entry_voxel_kji=_v(volume.world_to_index(bone)),
        target_voxel_kji=_v(volume.world_to_index(T)), direction_unit=_v(d, 4),
        depth_skin_to_bone_mm=_r(ss - sb), depth_bone_to_target_mm=_r(sb), depth_total_mm=_r(ss),
        angle_craniocaudal_deg=_r(cc, 1), angle_mediolateral_deg=_r(ml, 1),
        clearances=tuple(checks), screw=screw,
        needle_diameter_mm=None if screw is not None else _r(res.diameter_mm),
        containment_min_margin_mm=_r(ev.containment[c]),
        containment_entry_skip_mm=_r(skip),
        entry_incidence_deg=_r(ev.incidence_deg[c], 1), instrument_radius_mm=_r(res.r_instr, 3),
        hu_profile=prof, lesion_crossing_mm=_r(ev.lesion[c]) if res.fields.lesion_assessed else None,
        soft_tissue_depth_mm=_r(ss - sb), mandible_crossing_mm=mand, other_bone_crossing_mm=_r(ev.other_bone[c]),
        tip_depth_inside_cortex_mm=_r(tip_depth), hydrodissection_required=hydro,
        tip_to_cortex_mm=gap, thread_in_lesion_mm=in_lesion,
        score=_r(asm.score[c], 3), score_terms=terms,
        guidance=guidance_for(d, protocol.guidance.gantry_limit_deg), **figures)


def _constraint_order(res: SearchResult, protocol: Protocol) -> list[str]:
    present = res.coarse_assessment.violations
    names = ["skin"] + [n for n in bone_constraints(protocol) if n in present]
    names += [f"clearance:{s.name}" for s in res.fields.structures if s.category == "hard"]
    names += [f"viscus:{s.name}" for s in res.fields.structures if s.never_enter]
    names += [n for n in ("corridor",) if n in present]
    names += ["bone_on_way", "hydrodissection_limit"]
    return names


def _describe(name: str, protocol: Protocol) -> str:
    from osteoplan.planning.verdict import structure_name

    if name.startswith("clearance:"):
        return f"clearance to {structure_name(name.split(':', 1)[1])} >= its margin"
    if name.startswith("viscus:"):
        return (f"the instrument does not enter {structure_name(name.split(':', 1)[1])} (displaced by "
                "hydrodissection, never crossed)")
    return CONSTRAINTS.get(name) or get_procedure(protocol.procedure).extra_constraints.get(name, name)


def _infeasibility(res: SearchResult, protocol: Protocol) -> Infeasibility:
    asm = res.coarse_assessment
    N = len(asm.feasible)
    order = _constraint_order(res, protocol)
    remaining = np.ones(N, bool)
    ex = []
    # the structures are measured only along the paths that pass the bone-entry rule within a step of the containment
    # and tip-to-cortex rules (search.run_kernel_gated): their totals count those; 'first failing' counts are exact
    ev0 = res.coarse
    measured = np.isin(ev0.code, (K.OK, K.NO_SKIN)) & ~(ev0.gated if ev0.gated is not None else False)
    n_meas = int(measured.sum())
    among = (f" (counted among the {n_meas} candidates measured against the structures: those passing the bone-entry "
             f"rule within {res.coarse_step_mm:g} mm of the containment and tip-to-cortex rules)")
    for name in order:
        viol = asm.violations[name] > 1e-9
        desc = _describe(name, protocol)
        if name.startswith(("clearance:", "viscus:")) or name == "hydrodissection_limit":
            desc += among
        ex.append(ConstraintExclusion(constraint=name, description=desc, excluded=int(viol.sum()),
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


def _route_check(res: SearchResult, protocol: Protocol, volume: Volume, site: Site,
                 feasible: bool) -> RouteCheck:
    """Whether the CT shows the technique's route (see :class:`~osteoplan.planning.model.RouteCheck`).

    Not assessable when no path is feasible, no technique-conformant path (every bone-side constraint met)
    reaches the skin inside the image, and some leave the image still inside the body: where their skin entry
    would be, and what lies on the way, cannot be seen. The planner never substitutes another route.
    """
    c = res.route_counts or {}
    n_conf, n_skin, n_left = c.get("conforming", 0), c.get("reached_skin", 0), c.get("left_image", 0)
    lo, hi = volume.bounds_lps_mm()
    ref = get_procedure(protocol.procedure).route_reference(site)
    ref_z = float(ref["point"][2])
    figs = {"conforming_paths": float(n_conf), "reached_skin_in_image": float(n_skin),
            "left_image_inside_body": float(n_left), "ct_lower_edge_z_mm": round(float(lo[2]), 1),
            ref["point_key"]: round(ref_z, 1), ref["gap_key"]: round(ref_z - float(lo[2]), 1)}
    route = protocol.route
    if res.route_exit_z_mm is not None:
        figs["paths_leave_image_at_z_mm"] = round(res.route_exit_z_mm, 1)
    if not feasible and n_left > 0 and n_skin == 0:
        exit_z = res.route_exit_z_mm if res.route_exit_z_mm is not None else float(lo[2])
        below = ref_z - exit_z
        where_en = f"{abs(below):.0f} mm {'below' if below >= 0 else 'above'} {ref['en']}"
        where_fr = f"{abs(below):.0f} mm {'sous' if below >= 0 else 'au-dessus de'} {ref['fr']}"
        en = (f"{route.upper()} ROUTE NOT ASSESSABLE ON THIS CT: the technique's paths ({n_left} of {n_conf} conforming) "
              f"leave the image data still inside the body, at z = {exit_z:.0f} mm ({where_en}), so their skin entry "
              f"and what lies on the way cannot be checked. {ref['advice_en']}; "
              "another route is another protocol (--protocol).")
        from osteoplan.planning.verdict import ROUTE_NAMES

        fr = (f"VOIE {ROUTE_NAMES.get(route, (route.upper(), route.upper()))[1]} NON ÉVALUABLE SUR CE SCANNER : les trajets "
              f"de la technique ({n_left} sur {n_conf} conformes) sortent des données de l'image encore dans le corps, "
              f"à z = {exit_z:.0f} mm ({where_fr}) : leur point d'entrée cutané "
              f"et ce qu'ils traversent ne peuvent pas être vérifiés. {ref['advice_fr']} ; une autre "
              "voie est un autre protocole (--protocol).")
        return RouteCheck(assessable=False, route=route, message_en=en, message_fr=fr, figures=figs)
    msg = None
    if n_left > 0 and not feasible:
        msg = (f"{n_left} of the {n_conf} technique-conforming paths leave the image still inside the body and could not "
               f"be checked ({ref['advice_en']}: a feasible one may be there).")
    return RouteCheck(assessable=True, route=route, message_en=msg, figures=figs)


def _segment_distance_mm(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> float:
    """Smallest distance (mm) between segments p0-p1 and q0-q1 (LPS mm), sampled finely (0.25 mm)."""
    n = max(2, int(max(np.linalg.norm(p1 - p0), np.linalg.norm(q1 - q0)) / 0.25) + 1)
    t = np.linspace(0, 1, n)[:, None]
    a = p0[None] + t * (p1 - p0)[None]
    b = q0[None] + t * (q1 - q0)[None]
    return float(np.min(np.linalg.norm(a[:, None] - b[None], axis=2)))


#: Smallest gap (mm) between the surfaces of two needles placed in one session (configurable default, no published
#: source: two trocars must not touch).
NEEDLE_GAP_MM = 2.0


def needle_gap_mm(skin_entry_lps_mm: Any, target_lps_mm: Any, r_instr_mm: float,
                  others: Iterable[tuple[Any, Any, float]]) -> float:
    """Smallest gap (mm) between the surface of the instrument skin entry -> target (LPS mm, radius *r_instr_mm*)
    and those of *others* ((skin entry (3,), target (3,), radius mm) each): centre-line distance
    (:func:`_segment_distance_mm`, sampled every 0.25 mm) minus both radii; ``inf`` without others. The planner
    places a needle only when this is at least :data:`NEEDLE_GAP_MM` (:func:`_place`); the re-check of a moved
    needle applies the same rule (:func:`osteoplan.planning.recheck.evaluate_trajectory`)."""
    a, b = np.asarray(skin_entry_lps_mm, float), np.asarray(target_lps_mm, float)
    return min((_segment_distance_mm(a, b, np.asarray(q0, float), np.asarray(q1, float)) - r_instr_mm - r
                for q0, q1, r in others), default=np.inf)


def _place(found: list[tuple[Site, SearchResult]], volume: Volume, labelmap: LabelMap, protocol: Protocol,
           warns: list[str]) -> tuple[list[Trajectory], list[str]]:
    """One trajectory per group of sites (several levels, or both pedicles), avoiding collisions between needles.

    Within a group (e.g. the left and right pedicle of a unipedicular level) the best-scoring feasible candidate is
    used; candidates are tried in rank order until one keeps :data:`NEEDLE_GAP_MM` between its surface and that of
    every needle already placed (:func:`needle_gap_mm`). Returns the placed
    trajectories and the groups with no feasible (or no collision-free) path.
    """
    groups: dict[str, list[tuple[Site, SearchResult]]] = {}
    for site, res in found:
        groups.setdefault(site.group or site.level, []).append((site, res))
    placed: list[Trajectory] = []
    segs: list[tuple[np.ndarray, np.ndarray, float]] = []
    missing: list[str] = []
    for g, members in groups.items():
        cands = []
        for site, res in members:
            for c in res.chosen:
                cands.append((float(res.fine_assessment.score[c]), site, res, c))
        cands.sort(key=lambda x: x[0])
        ok = False
        for _, site, res, c in cands:
            ev = res.fine
            T = res.targets[ev.cand_t[c]]
            d = res.dirs[ev.cand_d[c]]
            skin = T - float(ev.s_skin[c]) * d
            if needle_gap_mm(skin, T, res.r_instr, segs) < NEEDLE_GAP_MM:
                continue
            placed.append(_trajectory(res, c, len(placed) + 1, volume, site, protocol, labelmap))
            segs.append((skin, T, res.r_instr))
            ok = True
            break
        if not ok:
            missing.append(g)
            if cands:
                warns.append(f"{g}: every feasible path comes within 2 mm of a needle already placed at another level or "
                             "side; plan these levels in separate sessions or choose other levels.")
    return placed, missing


def make_plan(volume: Volume, labelmap: LabelMap, anatomy: Any, protocol: Protocol | str | None = None,
              side: str | None = None, lesion_mask: np.ndarray | None = None, warnings: list[str] | None = None,
              risk: dict[str, Any] | None = None, level: str | None = None, **search_kw: Any) -> Plan:
    """Plan the trajectories of the protocol's procedure (a C2 dens screw, vertebroplasty needles, ...).

    Parameters
    ----------
    volume : Volume
        The CT (HU, (k, j, i), affine to LPS mm).
    labelmap : LabelMap
        Segmented structures on the CT grid; absent structures are reported "not assessed".
    anatomy : Site, list of Site, or the procedure's anatomy
        What the protocol's procedure module turns into sites (:meth:`Procedure.sites`): dens landmarks for the
        dens screw, the spine anatomy for a vertebroplasty; or the sites themselves.
    protocol : Protocol or name/path (default :data:`~osteoplan.planning.protocol.DEFAULT_PROTOCOL`,
        ``"c2-dens-anterior"``).
    side : "left", "right" or "best" (default: the protocol's).
    lesion_mask : bool array (K, J, I), optional; default ``labelmap['lesion']`` when present.
    warnings : extra warnings to carry into the plan (e.g. from segmentation).
    risk : fracture-risk summary to embed (from :mod:`osteoplan.risk`).
    level : vertebra level(s) (``"T12"``, ``"T10-L1"``); default the protocol's.
    **search_kw : passed to :func:`osteoplan.planning.search.search` (steps, grid overrides).

    Returns
    -------
    Plan
        With one site (the dens screw, a unipedicular level): ranked alternatives, the first being the plan.
        With several (levels, both pedicles): one trajectory per site group, all to be placed
        (``placement == "all"``); ``unplanned`` names the groups with no feasible path. ``feasible`` False with
        :attr:`Plan.infeasibility` explaining why when a group has no path.

    Raises
    ------
    PlanningError, AnatomyError
        The procedure's anatomy is missing (e.g. C2 not found, the dens apex out of the image, a level not in
        the image) or its target zone holds no point.
    """
    if protocol is None or isinstance(protocol, str):
        protocol = load_protocol(protocol or DEFAULT_PROTOCOL)
    proc = get_procedure(protocol.procedure)
    side = side or protocol.side.default
    confirm = [] if isinstance(anatomy, (Site, list, tuple)) else proc.confirmations(anatomy)
    if isinstance(anatomy, Site):
        sites = [anatomy]
    elif isinstance(anatomy, (list, tuple)) and anatomy and all(isinstance(x, Site) for x in anatomy):
        sites = list(anatomy)
    else:
        sites = proc.sites(anatomy, protocol, level=level, side=side)
    from osteoplan.planning.image_warnings import gap_crossing_notes, image_notes, image_warnings

    img_warns = image_warnings(volume)  # what the reader did to the image (no file names)
    img_notes = image_notes(volume)  # the same as data (gaps, skipped files, series choice): each face words them
    warns = img_warns + list(warnings or [])
    pre_missing: dict[str, str] = dict(getattr(sites, "unplanned", {}) or {})
    warns += [f"NOT PLANNED: {why}" for why in pre_missing.values()]
    found: list[tuple[Site, SearchResult]] = []
    several = len({s_.group or s_.level for s_ in sites}) + len(pre_missing) > 1
    failed: dict[str, list[str]] = {}
    for site in sites:
        try:
            res = search(volume, labelmap, site, protocol, side=side, lesion_mask=lesion_mask, **search_kw)
        except (PlanningError, AnatomyError) as exc:
            if not several:
                raise
            # one level (or side) of a multi-level plan cannot be searched: said, the others are planned
            failed.setdefault(site.group or site.level, []).append(f"{site.level} {site.landmarks.get('side', '')}"
                                                                  .strip() + f": {exc}")
            continue
        for name, why in not_assessable_from_messages(list(warnings or []), list(res.not_assessed)).items():
            res.not_assessed[name] = why
        warns += res.warnings
        found.append((site, res))
    for g, why in failed.items():
        if not any((s_.group or s_.level) == g for s_, _ in found):
            pre_missing[g] = " ".join(why)
            warns.append(f"NOT PLANNED: {' '.join(why)}")
    if not found:
        raise PlanningError(" ".join(dict.fromkeys(pre_missing.values())))
    groups = {s.group or s.level for s, _ in found}
    if len(groups) == 1 and not pre_missing:
        # ranked alternatives of the best site of the one group
        site, res = min(found, key=lambda sr: (0, float(sr[1].fine_assessment.score[sr[1].chosen[0]]))
                        if sr[1].chosen else (1, 0.0))
        trajs = [_trajectory(res, c, i + 1, volume, site, protocol, labelmap) for i, c in enumerate(res.chosen)]
        missing = [] if trajs else sorted(groups)
        placement = "alternatives"
    else:
        trajs, missing = _place(found, volume, labelmap, protocol, warns)
        missing = list(pre_missing) + missing
        placement = "all"
        site, res = found[0]
    # the site whose search explains the plan: the first group without a path, else the best one's
    for s_, r_ in found:
        if (s_.group or s_.level) in missing:
            site, res = s_, r_
            break
    placed = trajs if placement == "all" else trajs[:1]
    best = trajs[0] if trajs and not missing else None
    hydro = None
    if best is not None:
        hydro = hydrodissection_summary(placed, protocol)
        for t in placed:
            warns += _trajectory_warnings(t, protocol)
    sp_max = float(np.max(volume.spacing_mm))
    if sp_max > 1.25:
        what = "the dens landmarks" if proc.name == "c2-dens-screw" else "the pedicle and body landmarks"
        warns.append(f"Coarse CT ({sp_max:.1f} mm voxels): clearances, containment and {what} are uncertain "
                     f"by about half a voxel ({sp_max / 2:.1f} mm) or more; re-plan on a thin-slice CT (<= 1 mm) before use.")
    cement = proc.cement(labelmap, [s for s, _ in found], protocol, lesion_mask, placed)
    not_assessed: dict[str, str] = {}
    for _, r_ in found:
        not_assessed.update(r_.not_assessed)
    na = sorted(not_assessed)
    measured = {s_.name for _, r_ in found for s_ in r_.fields.structures}
    _cov = COVERED_BY
    covered = sorted(n for n in na if covering_structure_for(n, measured) is not None)
    # structures the protocol lets the containment cover, where every placed trajectory says so
    by_cont = sorted(n for n in na if placed and all((t.check(n) is not None and t.check(n).status == "covered")
                                                     for t in placed) and n not in covered)
    na_strict = [n for n in na if n not in covered and n not in by_cont]
    if na_strict:
        warns.append("Not assessed (not segmented, never reported as clear): " + ", ".join(na_strict) + ".")
    if by_cont:
        warns.append("Not segmented, covered by the containment of every needle in bone: " + ", ".join(by_cont) + ".")
    for n in covered:
        warns.append(f"{n}: {_cov[n][2]} ({_cov[n][0]}).")
    if protocol.entry.skin_medial_to:
        want = [f"{b}_{sd}" for b in protocol.entry.skin_medial_to for sd in ("left", "right")]
        missing_c = [n for n in want if n not in res.fields.medial_sources]
        if missing_c and best is not None:
            warns.append("Corridor not fully assessed: the skin entry could not be checked to lie medial to "
                         + ", ".join(missing_c) + " (not segmented on this CT).")
    route = _route_check(res, protocol, volume, site, feasible=best is not None)
    partial: list[Trajectory] = []
    if route is not None and not route.assessable:
        from dataclasses import replace as _replace

        for s_, r_ in found:
            if r_.partial is not None:
                pev, pasm, pch = r_.partial
                pr = _replace(r_, fine=pev, fine_assessment=pasm, chosen=pch)
                t = _trajectory(pr, pch[0], len(partial) + 1, volume, s_, protocol, labelmap)
                partial.append(t.model_copy(update={"skin_entry_in_image": False}))
    # a path over interpolated slices: said next to the image's warnings, at the top of the list
    crossing = gap_crossing_notes(volume, list(placed) + list(partial))
    warns[len(img_warns):len(img_warns)] = [n.text_en for n in crossing]
    img_notes += crossing
    if route is not None and route.message_en and route.assessable:
        warns.append(route.message_en)
    infeas = _infeasibility(res, protocol)
    if missing and placement == "all" and not (route is not None and not route.assessable):
        infeas = infeas.model_copy(update={"message": f"No feasible path for {', '.join(missing)}. " + infeas.message})
    if partial:
        # every face shows the same closest path: what the CT shows of the route (its skin entry is not in the image)
        p0 = partial[0]
        infeas = infeas.model_copy(update={"best_near_miss": NearMiss(
            skin_entry_lps_mm=None, target_lps_mm=p0.target_lps_mm, direction_unit=p0.direction_unit,
            violations={"skin": 1.0}, clearances=p0.clearances)})
    ct = CTGeometry(shape_kji=volume.shape, spacing_mm=_v(volume.spacing_mm, 4),
                    affine=tuple(tuple(round(float(x), 6) for x in row) for row in volume.affine),
                    source_format=volume.info.source_format)
    sources = {s_.name: s_.source for _, r_ in found for s_ in r_.fields.structures}
    for s_, r_ in found:
        sources[s_.bone_label] = r_.fields.bone_source
    sources["body"] = res.fields.body_source
    stats = SearchStats(n_targets=sum(len(r_.targets) for _, r_ in found),
                        n_directions=sum(len(r_.dirs) for _, r_ in found),
                        n_candidates=sum(len(r_.coarse.code) for _, r_ in found),
                        n_feasible=sum(int(r_.coarse_assessment.feasible.sum()) for _, r_ in found),
                        seconds=_r(sum(r_.seconds for _, r_ in found), 3), sample_step_mm=res.coarse_step_mm,
                        refine_step_mm=res.fine_step_mm)
    levels = list(dict.fromkeys(s_.level for s_ in sites))
    landmarks = sites[0].landmarks if len(levels) == 1 else {lv: next(s_.landmarks for s_ in sites if s_.level == lv)
                                                             for lv in levels}
    plan = Plan(osteoplan_version=__version__,
                created_utc=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                protocol_name=protocol.name, protocol_version=protocol.version, ct=ct,
                side_requested=side, side=best.side if best else None, feasible=best is not None,
                trajectories=tuple(trajs), hydrodissection=hydro, cement=cement,
                guidance=best.guidance if best else None,
                assessed=tuple(dict.fromkeys(s_.name for _, r_ in found for s_ in r_.fields.structures)),
                not_assessed=tuple(na_strict),
                structure_sources=sources, landmarks=landmarks, risk=risk,
                warnings=tuple(dict.fromkeys(warns)), infeasibility=infeas, search=stats,
                procedure=proc.name, level=levels[0] if len(levels) == 1 else f"{levels[0]}-{levels[-1]}",
                placement=placement, route=route, ct_source=ct_source_of(volume),
                # groups without a feasible path; when the CT cannot show the route, none is called infeasible
                unplanned=tuple(missing) if (route is None or route.assessable) else (),
                partial_trajectories=tuple(partial), confirm_first=tuple(confirm), image_notes=tuple(img_notes))
    return plan.model_copy(update={"verdict": compute_verdict(plan)})  # the one verdict every face prints


def hydrodissection_summary(placed: list[Trajectory] | tuple[Trajectory, ...], protocol: Protocol) -> Hydrodissection:
    """The plan's hydrodissection summary over the trajectories to place: what must be pushed, how far, and the
    displaceable structures not assessed (also used by :mod:`osteoplan.planning.recheck` for a moved path)."""
    checks = [c for t in placed for c in t.clearances]
    items = tuple(DisplacementItem(structure=c.structure, displacement_needed_mm=c.displacement_needed_mm,
                                   clearance_mm=c.clearance_mm, margin_mm=c.margin_mm)
                  for c in checks if c.displacement_needed_mm)
    mx = max((i.displacement_needed_mm for i in items), default=0.0)
    na = sorted({c.structure for c in checks if c.category == "displaceable" and not c.segmented})
    return Hydrodissection(
        required=bool(items), structures=items, max_displacement_mm=_r(mx),
        achievable_mm=protocol.hydrodissection.achievable_mm,
        within_achievable=mx <= protocol.hydrodissection.achievable_mm,
        note=("Not assessed (not segmented): " + ", ".join(na) + ". Hydrodissection may still be needed.") if na else None)


def _trajectory_warnings(best: Trajectory, protocol: Protocol) -> list[str]:
    """Warnings about one placed trajectory (gantry, C-arm, screw length and fit)."""
    warns = []
    if best.guidance is not None and not best.guidance.gantry_within_limit:
        warns.append(f"Gantry tilt {best.guidance.gantry_tilt_deg} deg is beyond the scanner limit "
                     f"({protocol.guidance.gantry_limit_deg} deg): follow the path on oblique reformats.")
    lim = protocol.guidance.carm_cranio_caudal_limit_deg
    if best.guidance is not None and abs(best.guidance.bullseye.secondary_deg) > lim:
        warns.append(f"Bull's-eye view needs {best.guidance.bullseye.label}: cranio-caudal angulation beyond {lim:g} deg "
                     "may not be reachable; use the progression view and CT checks instead.")
    sc = protocol.screw
    if sc is None or best.screw is None:
        return warns
    if not (sc.practice_min_mm <= best.screw.length_mm <= sc.practice_max_mm):
        warns.append(f"Screw length {best.screw.length_mm:g} mm is outside the {sc.practice_min_mm:g}-"
                     f"{sc.practice_max_mm:g} mm used in the published series (PMID 33388865).")
    if best.screw.fits_waist is False:
        warns.append("The screw leaves less bone than required at the dens waist.")
    flag = sc.short_of_apex_flag_mm
    if (flag is not None and best.bone_entry_to_apex_mm is not None
            and best.screw.length_mm < best.bone_entry_to_apex_mm - flag):
        warns.append(f"Screw {best.screw.length_mm:g} mm is more than {flag:g} mm shorter than its bone entry -> dens "
                     f"apex distance ({best.bone_entry_to_apex_mm:.1f} mm): check the tip reaches the apical cortex.")
    return warns


def plan_from_anatomy(volume: Volume, anatomy: Any, protocol: Protocol | str | None = None, side: str | None = None,
                      risk: dict[str, Any] | None = None, level: str | None = None, **search_kw: Any) -> Plan:
    """:func:`make_plan` on the result of the anatomy stage (its label map, lesion and messages).

    Raises
    ------
    AnatomyError
        The anatomy lacks what the protocol's procedure needs (e.g. no dens landmarks), said by the procedure.
    """
    lesion = getattr(anatomy, "lesion", None)
    lesion_mask = getattr(lesion, "mask", None) if lesion is not None else None
    msgs = list(getattr(anatomy, "messages", []) or [])
    return make_plan(volume, anatomy.labelmap, anatomy, protocol, side, lesion_mask=lesion_mask, warnings=msgs,
                     risk=risk, level=level, **search_kw)
