"""The plan's text summary printed by ``osteoplan plan`` / ``demo`` / ``report``: its first line is the verdict."""

from __future__ import annotations


def _fmt(v) -> str:
    return "(" + ", ".join(f"{x:.1f}" for x in v) + ")"


def result_line(plan) -> str:
    """The RESULT line of the summary: ``"RESULT: "`` + the plan's verdict, as it is
    (:func:`osteoplan.planning.verdict.verdict_of`: computed on load for plans written without one)."""
    from osteoplan.planning.verdict import verdict_of

    return "RESULT: " + verdict_of(plan).text_en


def _trajectory_lines(plan, b) -> list[str]:
    """Summary lines of one trajectory (entries, target, depth, angles, implant, bone, clearances, guidance)."""
    L: list[str] = []
    if plan.placement != "all":
        L.append(f"  side: {b.side}" + (f"; {len(plan.trajectories)} path(s) ranked, the first shown"
                                        if len(plan.trajectories) > 1 else ""))
    L.append(f"  skin entry  LPS {_fmt(b.skin_entry_lps_mm)} mm   voxel (k,j,i) {_fmt(b.skin_entry_voxel_kji)}")
    L.append(f"  bone entry  LPS {_fmt(b.bone_entry_lps_mm)} mm   voxel (k,j,i) {_fmt(b.bone_entry_voxel_kji)}")
    L.append(f"  target      LPS {_fmt(b.target_lps_mm)} mm   voxel (k,j,i) {_fmt(b.target_voxel_kji)}")
    if b.bone_entry_above_corner_mm is not None:
        L.append(f"  bone entry {b.bone_entry_above_corner_mm:.1f} mm above the C2 anteroinferior corner, "
                 f"{b.bone_entry_from_midline_mm:.1f} mm from the midline; entry -> apex {b.bone_entry_to_apex_mm:.1f} mm")
    # the tip and thread against the dens (each figure the protocol measured; the cortex distance only when the
    # protocol marches the tip to the apical cortex): never dropped because one of them is missing
    tip = []
    if b.tip_to_cortex_mm is not None:
        tip.append(f"{b.tip_to_cortex_mm:.1f} mm short of the apical cortex")
    if b.tip_below_apex_mm is not None:
        tip.append(f"{b.tip_below_apex_mm:.1f} mm below the apex")
    if b.tip_anterior_of_axis_mm is not None:
        tip.append(f"{b.tip_anterior_of_axis_mm:.1f} mm anterior of the dens axis")
    if tip or b.thread_crosses_waist is not None:
        L.append("  tip " + ", ".join(tip)
                 + ("" if b.thread_crosses_waist is None else
                    f"; thread {'crosses' if b.thread_crosses_waist else 'does NOT cross'} the waist")
                 + ("" if b.thread_in_lesion_mm is None else f", {b.thread_in_lesion_mm:.1f} mm of it in the lesion"))
    L.append(f"  depth: skin->bone {b.depth_skin_to_bone_mm:.1f} mm, bone->target {b.depth_bone_to_target_mm:.1f} mm, "
             f"total {b.depth_total_mm:.1f} mm")
    L.append(f"  angles: cranio-caudal {b.angle_craniocaudal_deg:+.1f} deg (+ = ascending), medio-lateral "
             f"{b.angle_mediolateral_deg:.1f} deg from AP (90 = pure lateral)"
             + (f"; {b.angle_to_dens_axis_deg:.1f} deg to the dens axis" if b.angle_to_dens_axis_deg is not None else ""))
    if b.screw:
        s = b.screw
        L.append(f"  screw: cannulated {s.diameter_mm:.1f} x {s.length_mm:g} mm (thread {s.thread_mm:g} mm, {s.catalogue_ref}); "
                 f"containment {b.containment_min_margin_mm:.1f} mm inside {b.level or 'C2'}"
                 + (f"; dens waist {s.waist_diameter_mm:.1f} mm" if s.waist_diameter_mm else ""))
    if b.needle_diameter_mm:
        L.append(f"  needle: {b.needle_diameter_mm:.2f} mm trocar; containment {b.containment_min_margin_mm:.1f} mm inside "
                 f"{b.level}")
    if b.pedicle_margin_mm is not None:
        L.append(f"  pedicle passage: {b.pedicle_margin_mm:.1f} mm inside the cortex at its closest ({b.pedicle_breach_wall} "
                 f"wall); Gertzbein-Robbins grade {b.pedicle_breach_grade} (A = no breach)")
    if b.tip_anterior_fraction is not None:
        mid = (f"{b.tip_from_midline_mm:.1f} mm across the midline" if b.tip_from_midline_mm >= 0 else
               f"{-b.tip_from_midline_mm:.1f} mm from the midline on its own side")
        L.append(f"  tip at {100 * b.tip_anterior_fraction:.0f} % of the body depth from the posterior wall, {mid}, "
                 f"{b.tip_below_superior_endplate_mm:.1f} mm below the superior endplate")
    if b.hu_profile:
        h = b.hu_profile
        L.append(f"  bone along the {'screw' if b.screw else 'needle'}: mean {h.mean_hu:.0f} HU, cortical {100*h.cortical_share:.0f} %, cancellous "
                 f"{100*h.cancellous_share:.0f} %, low density {100*h.low_density_share:.0f} %"
                 + (f"; lesion crossed over {b.lesion_crossing_mm:.1f} mm" if b.lesion_crossing_mm is not None else ""))
    L.append("  clearances (instrument surface to structure):")
    L.append(f"    {'structure':<32}{'category':<14}{'margin':>8}{'clearance':>11}  status")
    order = {"fail": 0, "hydrodissection": 1, "not_assessed": 2, "not_assessable": 2, "covered": 3, "pass": 3}
    for c in sorted(b.clearances, key=lambda c: (order.get(c.status, 2), c.structure)):
        clr = "" if c.clearance_mm is None else f"{c.clearance_mm:.1f}"
        if c.clearance_mm is not None and (c.note or "").startswith("at least this much"):
            clr = ">=" + clr  # distances are computed up to a cap: a lower bound
        if c.status == "hydrodissection":
            st = f"HYDRODISSECTION (push {c.displacement_needed_mm:.1f} mm)"
        elif c.status == "fail":
            st = "FAIL" + (f" (needs {c.displacement_needed_mm:.1f} mm, beyond hydrodissection)"
                           if c.displacement_needed_mm else "")
        else:
            st = {"pass": "pass", "not_assessed": "not assessed (not segmented)", "covered": "covered",
                  "not_assessable": "not assessable on this CT"}.get(c.status, c.status)
        # no distance (not segmented / not assessable): "n/a" without a unit, its last letter under the numbers'
        clr_col = f"{clr:>9}mm" if c.clearance_mm is not None else f"{'n/a':>9}  "
        L.append(f"    {c.structure:<32}{c.category:<14}{c.margin_mm:>6.1f}mm{clr_col}  {st}")
    if any((c.note or "").startswith("at least this much") for c in b.clearances):
        from osteoplan.planning.fields import CAP_MM

        L.append(f"    (>= : farther than the distance computed, which is capped at {CAP_MM:g} mm)")
    g = b.guidance
    if g:
        L.append(f"  C-arm bull's-eye: {g.bullseye.label}; progression view: {g.progression.label}")
        tilt = "impossible (path too close to cranio-caudal)" if g.gantry_tilt_deg is None else f"{g.gantry_tilt_deg:+.1f} deg"
        L.append(f"  CT gantry tilt for the path in one slice: {tilt}"
                 + ("" if g.gantry_within_limit else f"  -- BEYOND the {g.gantry_limit_deg:.0f} deg scanner limit"))
    return L


def summary_text(plan) -> str:
    """A plain-text summary for the radiologist (no identifiers); its first result line is the verdict."""
    from osteoplan.planning.verdict import verdict_of

    v = verdict_of(plan)
    L: list[str] = []
    L.append(result_line(plan))
    L.append(f"  protocol {plan.protocol_name} v{plan.protocol_version}; side requested: {plan.side_requested}")
    L.extend("  " + d for d in v.details_en)
    if plan.best is None and plan.partial_trajectories:
        L.append("  What this CT shows of the route (the part inside the image meets every rule; the skin entry is "
                 "outside the image, so this is NOT a plan):")
        for t in plan.partial_trajectories:
            L.append(f"  -- {t.level} {t.side}: leaves the image at LPS {_fmt(t.skin_entry_lps_mm)} mm")
            L.extend(x for x in _trajectory_lines(plan, t)
                     if not x.lstrip().startswith(("skin entry", "C-arm", "CT gantry", "depth:")))
    if plan.best is None and plan.placement == "all" and plan.trajectories:
        L.append(f"  The levels planned ({len(plan.trajectories)} needles; NOT planned: {', '.join(plan.unplanned)}, "
                 "see the warnings):")
        for t in plan.trajectories:
            L.append(f"  -- {t.level} {t.side} pedicle")
            L.extend(_trajectory_lines(plan, t))
    if plan.best is None:
        if plan.infeasibility is not None:
            for e in plan.infeasibility.exclusions:
                if e.excluded:
                    L.append(f"    {e.constraint:<34} excluded {e.excluded:>8} (first failing for {e.excluded_first})"
                             f"  -- {e.description}")
    else:
        placed = plan.placed
        if len(placed) > 1:
            L.append(f"  {len(placed)} needles to place:")
        for i, b in enumerate(placed):
            if len(placed) > 1:
                L.append(f"  -- needle {i + 1}: {b.level} {b.side} pedicle")
            L.extend(_trajectory_lines(plan, b))
        if plan.placement != "all" and len(plan.trajectories) > 1:
            L.append(f"  {len(plan.trajectories) - 1} alternative(s) in plan.json (ranked).")
    if plan.cement:
        c = plan.cement
        if c.lesion_volume_ml == 0:
            L.append("Cement: no lytic lesion found on CT; cementoplasty not indicated by the images.")
        elif c.per_level_ml:
            L.append(f"Cement: suggested PMMA {c.suggested_pmma_ml[0]:.1f}-{c.suggested_pmma_ml[1]:.1f} mL in all. {c.basis}")
            L.extend(f"Cement: {n}" for n in c.notes)
        else:
            vol = "not segmented (published C2 range)" if c.lesion_volume_ml is None else f"{c.lesion_volume_ml:.2f} mL"
            L.append(f"Cement: lesion {vol}; suggested PMMA {c.suggested_pmma_ml[0]:.1f}-{c.suggested_pmma_ml[1]:.1f} mL"
                     + ("; LEAK RISK next to " + ", ".join(w.neighbour for w in c.walls if w.leak_risk) if c.leak_risk else ""))
    if plan.risk and plan.risk.get("summary"):
        from osteoplan.export.risk_table import risk_text_lines

        L.append("Fracture risk (osteoplan.risk):")
        L.extend(risk_text_lines(plan.risk))  # one row per SINS component, evidence in words; wrapped, never cut
    from osteoplan.views.i18n import structure_label, translate_text

    if plan.not_assessed:
        L.append("NOT ASSESSED (not segmented or not assessable on this CT): "
                 + ", ".join(structure_label(n) for n in plan.not_assessed))
    from osteoplan.planning.image_warnings import plan_warning_lines

    # the CT reader's notes written from their data, with the command line's options as the remedy; the other
    # warnings with their structure keys named as on every page
    for w, line in zip(plan.warnings, plan_warning_lines(plan, "en", face="cli",
                                                         translate=lambda w: translate_text(w, "en"))):
        if plan.not_assessed and w.startswith("Not assessed (not segmented, never reported as clear)"):
            continue  # the NOT ASSESSED line above says the same
        L.append(f"warning: {line}")
    return "\n".join(L)
