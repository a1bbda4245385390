"""Hand-built plans (osteoplan.planning.model only) for export/report tests: known values, every status."""

from __future__ import annotations

import numpy as np

from osteoplan.planning.model import (CArmView, Cement, ClearanceCheck, CTGeometry, DisplacementItem, Guidance,
                                      Hydrodissection, Plan, Screw, Trajectory, WallCheck)


def _v(x, nd=3):
    return tuple(round(float(a), nd) for a in x)


def make_plan(volume, skin, bone, target, *, feasible=True, checks=None, screw=True, warnings=()) -> Plan:
    """A Plan on *volume* with the given points (LPS mm) and clearance checks covering every status."""
    skin, bone, target = (np.asarray(p, float) for p in (skin, bone, target))
    d = (target - skin) / np.linalg.norm(target - skin)
    checks = checks if checks is not None else (
        ClearanceCheck(structure="spinal_canal", category="hard", margin_mm=2.0, clearance_mm=4.6, status="pass",
                       segmented=True, source="test"),
        ClearanceCheck(structure="vertebral_artery_left", category="hard", margin_mm=3.0, clearance_mm=3.4,
                       status="pass", segmented=True, source="atlas"),
        ClearanceCheck(structure="common_carotid_artery_left", category="displaceable", margin_mm=5.0,
                       clearance_mm=1.5, status="hydrodissection", displacement_needed_mm=3.5, segmented=True,
                       source="test"),
        ClearanceCheck(structure="airway", category="displaceable", margin_mm=3.0, clearance_mm=-1.0, status="fail",
                       displacement_needed_mm=4.0, segmented=True, source="test"),
        ClearanceCheck(structure="internal_jugular_vein_left", category="displaceable", margin_mm=5.0,
                       clearance_mm=None, status="not_assessed", segmented=False),
    )
    g = Guidance(bullseye=CArmView(primary_deg=78.0, secondary_deg=32.0, label="LAO 78° / CRAN 32°",
                                   detector_direction_lps=_v(-d, 4)),
                 progression=CArmView(primary_deg=-12.0, secondary_deg=5.0, label="RAO 12° / CRAN 5°",
                                      detector_direction_lps=(0.0, 1.0, 0.0)),
                 gantry_tilt_deg=25.0, gantry_limit_deg=30.0, gantry_within_limit=True)
    sc = Screw(diameter_mm=4.0, length_mm=34.0, thread_mm=16.0, catalogue_ref="cannulated-4.0x34",
               waist_diameter_mm=8.0, waist_margin_mm=2.0, fits_waist=True) if screw else None
    vox = lambda p: _v(volume.world_to_index(p), 2)  # noqa: E731
    traj = Trajectory(
        rank=1, side="left", skin_entry_lps_mm=_v(skin), bone_entry_lps_mm=_v(bone), target_lps_mm=_v(target),
        skin_entry_voxel_kji=vox(skin), bone_entry_voxel_kji=vox(bone), target_voxel_kji=vox(target),
        direction_unit=_v(d, 4), depth_skin_to_bone_mm=float(np.linalg.norm(bone - skin)),
        depth_bone_to_target_mm=float(np.linalg.norm(target - bone)),
        depth_total_mm=float(np.linalg.norm(target - skin)), angle_craniocaudal_deg=float(np.degrees(np.arcsin(d[2]))),
        angle_mediolateral_deg=float(np.degrees(np.arctan2(abs(d[0]), d[1]))), clearances=tuple(checks), screw=sc,
        containment_min_margin_mm=1.1, soft_tissue_depth_mm=float(np.linalg.norm(bone - skin)),
        hydrodissection_required=True, score=1.23, guidance=g)
    ct = CTGeometry(shape_kji=volume.shape, spacing_mm=_v(volume.spacing_mm, 4),
                    affine=tuple(tuple(float(x) for x in row) for row in volume.affine), source_format="nifti")
    return Plan(osteoplan_version="test", created_utc="2026-01-01T00:00:00Z", protocol_name="c2-dens-lateral",
                protocol_version="1.0", ct=ct, side_requested="best", side="left" if feasible else None,
                feasible=feasible, trajectories=(traj,) if feasible else (),
                hydrodissection=Hydrodissection(required=True, structures=(DisplacementItem(
                    structure="common_carotid_artery_left", displacement_needed_mm=3.5, clearance_mm=1.5,
                    margin_mm=5.0),), max_displacement_mm=3.5, achievable_mm=10.0),
                cement=Cement(lesion_assessed=True, lesion_volume_ml=1.8, suggested_pmma_ml=(2.0, 3.0),
                              basis="Mont'Alverne et al., AJNR 2005;26:1641",
                              walls=(WallCheck(neighbour="spinal_canal", segmented=True, breached=True,
                                               distance_mm=0.0, leak_risk=True),)),
                guidance=g, assessed=("spinal_canal", "vertebral_artery_left", "common_carotid_artery_left", "airway"),
                not_assessed=("internal_jugular_vein_left", "esophagus"), warnings=tuple(warnings))
