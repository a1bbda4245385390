"""Plan model: JSON round trip, schema validation, version check, atomic save."""

from __future__ import annotations

import json

import jsonschema
import pytest

from osteoplan.errors import InputError
from osteoplan.planning.model import (
    SCHEMA_PATH, SCHEMA_VERSION, CArmView, ClearanceCheck, CTGeometry, Guidance, Plan, Trajectory,
    load_plan, plan_json_schema, save_plan,
)


def _plan() -> Plan:
    view = CArmView(primary_deg=-80.0, secondary_deg=30.0, label="RAO 80° / CRAN 30°",
                    detector_direction_lps=(-0.85, -0.15, 0.5))
    g = Guidance(bullseye=view, progression=view, gantry_tilt_deg=12.0, gantry_limit_deg=30.0,
                 gantry_within_limit=True)
    checks = (
        ClearanceCheck(structure="spinal_canal", category="hard", margin_mm=3.0, clearance_mm=5.2,
                       status="pass", segmented=True, source="classical"),
        ClearanceCheck(structure="internal_jugular_vein_right", category="displaceable", margin_mm=5.0,
                       clearance_mm=None, status="not_assessed", segmented=False),
    )
    t = Trajectory(rank=1, side="right", skin_entry_lps_mm=(-60.0, -20.0, -40.0),
                   bone_entry_lps_mm=(-8.0, -10.0, -20.0), target_lps_mm=(0.0, 0.0, 0.0),
                   skin_entry_voxel_kji=(1.0, 2.0, 3.0), bone_entry_voxel_kji=(1.0, 2.0, 3.0),
                   target_voxel_kji=(1.0, 2.0, 3.0), direction_unit=(0.8, 0.2, 0.56),
                   depth_skin_to_bone_mm=58.0, depth_bone_to_target_mm=24.0, depth_total_mm=82.0,
                   angle_craniocaudal_deg=34.0, angle_mediolateral_deg=76.0, clearances=checks, screw=None,
                   containment_min_margin_mm=1.5, soft_tissue_depth_mm=58.0, score=1.0, guidance=g)
    ct = CTGeometry(shape_kji=(10, 20, 30), spacing_mm=(2.0, 1.0, 1.0),
                    affine=((2, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1)))
    return Plan(osteoplan_version="0.1.0", created_utc="2026-01-01T00:00:00Z", protocol_name="c2-dens-lateral",
                protocol_version="1", ct=ct, side_requested="best", side="right", feasible=True,
                trajectories=(t,), guidance=g, not_assessed=("internal_jugular_vein_right",))


def test_roundtrip_and_schema(tmp_path):
    p = _plan()
    path = save_plan(p, tmp_path / "plan.json")
    back = load_plan(path)
    assert back == p
    assert back.best.check("spinal_canal").clearance_mm == 5.2
    assert back.best.check("internal_jugular_vein_right").clearance_mm is None
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    jsonschema.validate(data, plan_json_schema())
    # the shipped schema file is the current one
    assert json.loads(SCHEMA_PATH.read_text()) == plan_json_schema()
    assert not list(tmp_path.glob("*.part"))


def test_rejects_wrong_version_and_garbage(tmp_path):
    data = json.loads(_plan().to_json())
    data["schema_version"] = "99.0"
    with pytest.raises(InputError, match="schema version"):
        Plan.from_json(json.dumps(data))
    with pytest.raises(InputError, match="invalid JSON"):
        Plan.from_json("{not json")
    data["schema_version"] = SCHEMA_VERSION
    data["trajectories"][0]["clearances"][0]["status"] = "clear"
    with pytest.raises(InputError, match="status"):
        Plan.from_json(json.dumps(data))
