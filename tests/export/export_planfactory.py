"""Hand-built plans (osteoplan.planning.model only) for export/report tests: known values, every status."""

from __future__ import annotations

import numpy as np

from osteoplan.planning.model import (CArmView, Cement, ClearanceCheck, CTGeometry, DisplacementItem, Guidance,
                                      Hydrodissection, Plan, RouteCheck, Screw, Trajectory, WallCheck)


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


def make_vertebroplasty_plan(volume, needles, *, breached_wall_level="L2", risk_level="C2",
                             route="transpedicular") -> Plan:
    """A bipedicular / two-level vertebroplasty Plan (placement "all") on *volume*.

    *needles*: list of dicts with ``level``, ``side``, ``skin``, ``bone``, ``target`` (LPS mm), ``grade``
    (Gertzbein-Robbins), ``margin`` (pedicle margin, mm), ``wall``. The cement holds a per-level table and a
    breached posterior wall at *breached_wall_level*; the risk block is about *risk_level*.
    """
    trajs = []
    for rank, nd in enumerate(needles, start=1):
        skin, bone, target = (np.asarray(nd[k], float) for k in ("skin", "bone", "target"))
        d = (target - skin) / np.linalg.norm(target - skin)
        checks = (ClearanceCheck(structure="spinal_canal", category="hard", margin_mm=1.0, clearance_mm=3.2,
                                 status="pass", segmented=True, source="derived:vertebra-ring-holes"),
                  ClearanceCheck(structure="aorta", category="hard", margin_mm=5.0, clearance_mm=None,
                                 status="not_assessed", segmented=False))
        g = Guidance(bullseye=CArmView(primary_deg=30.0, secondary_deg=20.0, label="LAO 30° / CRAN 20°",
                                       detector_direction_lps=_v(d, 6)),
                     progression=CArmView(primary_deg=-60.0, secondary_deg=-10.0, label="RAO 60° / CAUD 10°",
                                          detector_direction_lps=(-1.0, 0.0, 0.0)),
                     gantry_tilt_deg=-20.0, gantry_limit_deg=30.0, gantry_within_limit=True)
        vox = lambda p: _v(volume.world_to_index(p), 2)  # noqa: E731
        trajs.append(Trajectory(
            rank=rank, side=nd["side"], level=nd["level"], skin_entry_lps_mm=_v(skin), bone_entry_lps_mm=_v(bone),
            target_lps_mm=_v(target), skin_entry_voxel_kji=vox(skin), bone_entry_voxel_kji=vox(bone),
            target_voxel_kji=vox(target), direction_unit=_v(d, 6),
            depth_skin_to_bone_mm=float(np.linalg.norm(bone - skin)),
            depth_bone_to_target_mm=float(np.linalg.norm(target - bone)),
            depth_total_mm=float(np.linalg.norm(target - skin)),
            angle_craniocaudal_deg=float(np.degrees(np.arcsin(d[2]))),
            angle_mediolateral_deg=float(np.degrees(np.arctan2(abs(d[0]), d[1]))), clearances=checks, screw=None,
            needle_diameter_mm=3.05, instrument_radius_mm=1.525, containment_min_margin_mm=0.8,
            soft_tissue_depth_mm=float(np.linalg.norm(bone - skin)), score=1.0, guidance=g,
            pedicle_margin_mm=nd["margin"], pedicle_breach_grade=nd["grade"], pedicle_breach_wall=nd["wall"],
            tip_anterior_fraction=0.7, tip_from_midline_mm=2.5, tip_below_superior_endplate_mm=8.0))
    levels = sorted({nd["level"] for nd in needles})
    ct = CTGeometry(shape_kji=volume.shape, spacing_mm=_v(volume.spacing_mm, 4),
                    affine=tuple(tuple(float(x) for x in row) for row in volume.affine), source_format="nifti")
    walls = tuple(WallCheck(neighbour=f"{lv} posterior wall (spinal canal)", segmented=True,
                            breached=lv == breached_wall_level, distance_mm=None, leak_risk=lv == breached_wall_level,
                            note="40% of it with no voxel >= 150 HU within one voxel") for lv in levels)
    return Plan(osteoplan_version="test", created_utc="2026-01-01T00:00:00Z",
                protocol_name="vertebroplasty-transpedicular", protocol_version="1.0", ct=ct, side_requested="best",
                side=needles[0]["side"], feasible=True, trajectories=tuple(trajs), procedure="vertebroplasty",
                level=levels[0] if len(levels) == 1 else f"{levels[0]}-{levels[-1]}", placement="all",
                cement=Cement(lesion_assessed=False, lesion_volume_ml=None, suggested_pmma_ml=(6.0, 10.0),
                              basis="Per level, the volumes that restored strength (low) and stiffness (high) in vitro "
                                    "(Belkoff et al., Spine 2001;26:1537).",
                              walls=walls, leak_risk=True,
                              per_level_ml={lv: (2.0, 4.0) if lv.startswith("T") else (4.0, 6.0) for lv in levels}),
                assessed=("spinal_canal",), not_assessed=("aorta",),
                route=RouteCheck(assessable=True, route=route),
                landmarks={lv: {"level": lv, "pedicles": {nd["side"]: {"side": nd["side"]} for nd in needles
                                                          if nd["level"] == lv}} for lv in levels},
                risk={"level": risk_level, "summary": [f"Level: {risk_level}"]} if risk_level else None,
                warnings=("Coarse CT (3.0 mm voxels): re-plan on a thin-slice CT.",))


def synthetic_vertebra(spacing_mm: float = 1.5):
    """A small synthetic lumbar vertebra (LPS mm) with its label map and two transpedicular needles (L1).

    Body: cylinder along S, centre (0, -20), radius 16 mm, |z| < 12 mm, 400 HU; pedicles: cylinders of radius
    4 mm from (±9, -5, 0) to (±14, 12, 0), 600 HU; lamina box behind the canal (canal: cylinder centre (0, 6),
    radius 7 mm). Needles: through each pedicle's centre to a target 26 mm anterior, 3 mm across the midline.

    Returns
    -------
    (Volume, LabelMap, list of needle dicts as :func:`make_vertebroplasty_plan` takes)
    """
    from osteoplan.anatomy.labelmap import LabelMap
    from osteoplan.imaging.volume import Volume, axis_aligned_affine

    shape = (41, 81, 67)
    aff = axis_aligned_affine((spacing_mm,) * 3, (-49.5, -60.0, -30.0))
    vol0 = Volume(np.zeros(shape, np.float32), aff)
    kk, jj, ii = np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij")
    xyz = vol0.index_to_world(np.stack([kk, jj, ii], axis=-1).reshape(-1, 3)).reshape(*shape, 3)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    inside = (x / 48.0) ** 2 + (y / 58.0) ** 2 < 1.0
    body = (x ** 2 + (y + 20.0) ** 2 < 16.0 ** 2) & (np.abs(z) < 12.0)
    canal = (x ** 2 + (y - 6.0) ** 2 < 7.0 ** 2) & (np.abs(z) < 14.0)

    def rod(p0, p1, r):
        p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
        d = p1 - p0
        t = np.clip(((xyz - p0) @ d) / (d @ d), 0.0, 1.0)
        return np.linalg.norm(xyz - (p0 + t[..., None] * d), axis=-1) < r

    ped = {s: rod((sx * 9.0, -5.0, 0.0), (sx * 14.0, 12.0, 0.0), 4.0) & ~canal for s, sx in (("left", 1), ("right", -1))}
    lamina = (np.abs(x) < 16.0) & (y > 12.0) & (y < 20.0) & (np.abs(z) < 10.0)
    hu = np.where(inside, 40.0, -1000.0)
    hu[body] = 400.0
    hu[ped["left"] | ped["right"] | lamina] = 600.0
    vol = vol0.with_array(hu.astype(np.float32))
    masks = {"vertebrae_L1": body | ped["left"] | ped["right"] | lamina, "vertebral_body_L1": body,
             "pedicle_L1_left": ped["left"], "pedicle_L1_right": ped["right"], "spinal_canal": canal}
    lm = LabelMap(vol, masks, {n: "test" for n in masks})
    needles = []
    for side, sx in (("left", 1.0), ("right", -1.0)):
        centre = np.array([sx * 11.5, 3.5, 0.0])           # mid-pedicle
        target = np.array([-sx * 3.0, -30.0, 2.0])         # anterior body, 3 mm across the midline
        d = (target - centre) / np.linalg.norm(target - centre)
        needles.append({"level": "L1", "side": side, "skin": centre - d * 70.0, "bone": centre - d * 8.0,
                        "target": target, "grade": "A", "margin": 0.9, "wall": "medial"})
    return vol, lm, needles
