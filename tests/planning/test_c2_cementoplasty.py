"""C2 cementoplasty by the lateral route (c2-cementoplasty-lateral) on the neck phantom: the needle reaches the
lesion and keeps its margin to the vertebral artery's bony canal, checked by brute force on voxel centres."""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.errors import PlanningError
from osteoplan.planning.planner import make_plan
from osteoplan.planning.protocol import load_protocol

from .test_phantom_plan import brute_clearance

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def phantom():
    from osteoplan.anatomy.phantom import make_phantom

    return make_phantom()


def test_needle_to_the_lesion_clear_of_the_vertebral_artery_canal(phantom):
    ph = phantom
    plan = make_plan(ph.volume, ph.truth, ph.landmarks, "c2-cementoplasty-lateral", lesion_mask=ph.truth.get("lesion"))
    assert plan.procedure == "c2-cementoplasty" and plan.level == "C2" and plan.feasible
    assert plan.verdict.code in ("feasible", "feasible_hydrodissection")
    b = plan.best
    assert b.screw is None and b.needle_diameter_mm == 2.41
    k = np.rint(ph.volume.world_to_index(np.asarray(b.target_lps_mm))).astype(int)
    assert ph.truth.get("lesion")[tuple(k)]  # the tip is in the lesion
    a, t = np.asarray(b.skin_entry_lps_mm), np.asarray(b.target_lps_mm)
    for side in ("left", "right"):
        name = f"vertebral_artery_canal_{side}"
        c = b.check(name)
        assert c.status == "pass" and c.clearance_mm >= 3.0
        exact = brute_clearance(ph.volume, ph.truth.get(name), a, t, b.instrument_radius_mm)
        assert c.clearance_mm == pytest.approx(min(exact, 20.0 - b.instrument_radius_mm), abs=0.5)
    # the lateral route: skin entry on the side of the neck, path within the protocol's angles
    p = load_protocol("c2-cementoplasty-lateral")
    assert p.angles.mediolateral_min_deg - 0.01 <= b.angle_mediolateral_deg <= p.angles.mediolateral_max_deg + 0.01


def test_no_lesion_is_a_clear_refusal(phantom):
    ph = phantom
    lm = LabelMap(ph.volume, {n: ph.truth.get(n) for n in ph.truth.names() if n != "lesion"},
                  {n: "phantom-truth" for n in ph.truth.names() if n != "lesion"})
    with pytest.raises(PlanningError, match="No lesion is segmented in C2"):
        make_plan(ph.volume, lm, ph.landmarks, "c2-cementoplasty-lateral")
