"""Lesion metrics (fractions, breach, posterolateral) and the combined assessment on a synthetic C2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from osteoplan.anatomy import LabelMap
from osteoplan.errors import InputError, MaskError
from osteoplan.risk import assess
from osteoplan.risk.lesion_metrics import measure_lesion, split_c2

VOXEL_ML = 0.5 ** 3 / 1000.0


def test_c2_split_parts(synthetic_c2):
    vol, c2, _les, lm = synthetic_c2(0.0)
    parts = split_c2(vol, c2, lm)
    # disjoint and covering C2
    total = parts.dens.astype(int) + parts.body + parts.posterior_left + parts.posterior_right
    assert total.max() == 1 and np.array_equal(total.astype(bool), c2)
    # dens = cylinder r 5 mm, z 15-30 + hemisphere: pi*25*15 + 2/3*pi*125 = 1439.9 mm^3 (voxelised)
    assert parts.dens.sum() * VOXEL_ML == pytest.approx((np.pi * 25 * 15 + 2 / 3 * np.pi * 125) / 1000, rel=0.06)
    # left pedicle lies at +x (patient left)
    x = vol.index_to_world(np.argwhere(parts.posterior_left).astype(float))[:, 0]
    assert (x > 0).all()


def test_lesion_metrics_dens_lesion(synthetic_c2):
    vol, c2, les, lm = synthetic_c2(3.0)
    m = measure_lesion(vol, c2, les, lm)
    assert m.status == "present"
    assert m.volume_ml == pytest.approx(4 / 3 * np.pi * 27 / 1000, rel=0.05)  # 0.113 mL sphere
    parts = split_c2(vol, c2, lm)
    assert m.fraction_of_dens == pytest.approx(les.sum() / parts.dens.sum(), rel=1e-6)
    assert m.fraction_of_body == 0.0
    assert m.posterolateral_ml == {"left": 0.0, "right": 0.0}
    assert m.lesion_hu["median"] == pytest.approx(30.0)
    assert m.normal_cancellous_hu == pytest.approx(250.0)
    # a 3 mm lesion in a 5 mm dens with 1 mm cortex does not reach the surface
    assert m.breach.breach_mm2 == 0.0 and m.breach.surface_mm2 > 0
    json.dumps(m.to_dict(), allow_nan=False)


def test_lesion_breach_location_anterior(synthetic_c2):
    # lesion centred on the anterior dens wall (y = -5 mm: anterior is -y in LPS)
    vol, c2, les, lm = synthetic_c2(2.5, (0.0, -5.0, 22.0))
    m = measure_lesion(vol, c2, les, lm)
    b = m.breach
    assert b.breach_mm2 > 5.0
    assert b.walls[0] == "anterior"
    assert b.by_direction_mm2["posterior"] == 0.0
    # the breached patch is roughly the sphere's cap outside the dens: area ~ pi * a^2 with a ~ 2.5 mm
    assert 0.4 * np.pi * 2.5 ** 2 < b.breach_mm2 < 2.5 * np.pi * 2.5 ** 2
    assert b.canal_facing_mm2 is None and "not assessed" in b.to_dict()["canal_facing"]


def test_lesion_status_none_and_not_assessed(synthetic_c2):
    vol, c2, les, lm = synthetic_c2(0.0)
    assert measure_lesion(vol, c2, les, lm).status == "none"
    assert measure_lesion(vol, c2, None, lm).status == "not assessed"
    with pytest.raises(MaskError):
        measure_lesion(vol, np.zeros_like(c2), les, lm)


def test_assess_growing_lesions_sins_follow(synthetic_c2):
    rows = []
    for radius in (0.0, 2.0, 3.0, 4.0, 5.0):
        vol, c2, les, lm = synthetic_c2(radius)
        rep = assess(vol, LabelMap(vol, {"vertebrae_C2": c2, "lesion": les}), pain="mechanical",
                     alignment="normal", landmarks=lm)
        json.dumps(rep.to_dict(), allow_nan=False)
        rows.append(rep)
    assert rows[0].sins is None and rows[0].sins_status.startswith("not applicable")
    assert rows[0].rigidity.max_loss == 0.0
    for rep in rows[1:]:
        c = rep.sins.components
        assert c["location"].points == 3 and c["location"].source == "ct-proposed"
        assert c["lesion_type"].value == "lytic" and c["lesion_type"].evidence["normal_cancellous_median_hu"] == 250.0
        assert rep.sins.total == 3 + 3 + 2 + 0 + c["collapse"].points + c["posterolateral"].points
    losses = [r.rigidity.max_loss for r in rows]
    assert all(b > a for a, b in zip(losses, losses[1:]))
    vols = [r.lesion.volume_ml for r in rows]
    assert all(b > a for a, b in zip(vols, vols[1:]))
    lesion_pts = [r.sins.components["collapse"].points + r.sins.components["lesion_type"].points for r in rows[1:]]
    assert lesion_pts == sorted(lesion_pts)


def test_assess_posterolateral_and_override(synthetic_c2):
    # lesion in the left pedicle (x = +6.5, y = +11): unilateral posterolateral involvement
    vol, c2, les, lm = synthetic_c2(3.0, (6.5, 11.0, 7.5))
    lmap = LabelMap(vol, {"vertebrae_C2": c2, "lesion": les})
    rep = assess(vol, lmap, pain="occasional", alignment="normal", landmarks=lm)
    pl = rep.sins.components["posterolateral"]
    assert pl.value == "unilateral" and pl.evidence["sides_involved"] == ["left"]
    assert rep.sins.total == 3 + 1 + 2 + 0 + 0 + 1
    rep2 = assess(vol, lmap, pain="occasional", alignment="normal", landmarks=lm,
                  overrides={"posterolateral": "bilateral"}, rigidity=False)
    c = rep2.sins.components["posterolateral"]
    assert c.source == "override" and c.points == 3 and c.proposed_value == "unilateral"
    assert rep2.sins.total == 9 and rep2.rigidity is None
    with pytest.raises(InputError):
        assess(vol, lmap, landmarks=lm, overrides={"colour": "red"}, rigidity=False)


def test_assess_missing_clinician_inputs_give_range(synthetic_c2):
    vol, c2, les, lm = synthetic_c2(3.0)
    rep = assess(vol, LabelMap(vol, {"vertebrae_C2": c2, "lesion": les}), landmarks=lm, rigidity=False)
    assert rep.sins_status == "incomplete" and rep.sins.missing == ("pain", "alignment")
    assert (rep.sins.total_min, rep.sins.total_max) == (5, 12)


def test_assess_without_c2_reports_not_assessed(synthetic_c2):
    vol, _c2, les, lm = synthetic_c2(3.0)
    rep = assess(vol, LabelMap(vol, {"lesion": les}), pain="mechanical", alignment="normal", landmarks=lm)
    assert rep.lesion is None and rep.rigidity is None
    assert any("C2 was not segmented" in x for x in rep.not_assessed)
    # location still known from the level; lesion components missing -> a range
    assert rep.sins.components["location"].points == 3 and rep.sins.total is None


@pytest.mark.parametrize("lesion_hu, expected", [(30.0, "lytic"), (900.0, "blastic"), (280.0, "mixed")])
def test_lesion_type_proposal_from_hu(synthetic_c2, lesion_hu, expected):
    # normal cancellous bone is 250 HU: 30 HU is > 100 below (lytic), 900 HU > 100 above (blastic),
    # 280 HU is isodense (mixed, flagged as low confidence)
    vol, c2, les, lm = synthetic_c2(3.0, lesion_hu=lesion_hu)
    rep = assess(vol, LabelMap(vol, {"vertebrae_C2": c2, "lesion": les}), landmarks=lm, rigidity=False)
    c = rep.sins.components["lesion_type"]
    assert c.value == expected and c.evidence["lesion_median_hu"] == pytest.approx(lesion_hu)
    assert ("low-confidence" in c.note) == (expected == "mixed")


def test_lesion_type_mixed_when_both_lytic_and_blastic(synthetic_c2):
    vol, c2, les, lm = synthetic_c2(3.0)
    arr = vol.array.copy()
    idx = np.argwhere(les)
    half = idx[: len(idx) // 2]
    arr[tuple(half.T)] = 900.0  # half of the lesion sclerotic, half lytic
    vol2 = vol.with_array(arr)
    rep = assess(vol2, LabelMap(vol2, {"vertebrae_C2": c2, "lesion": les}), landmarks=lm, rigidity=False)
    c = rep.sins.components["lesion_type"]
    assert c.value == "mixed" and c.note == ""
    assert c.evidence["fraction_below_normal"] >= 0.2 and c.evidence["fraction_above_normal"] >= 0.2


def test_rigidity_column_choice_and_lesion_outside_column(synthetic_c2):
    from osteoplan.risk.rigidity import dens_rigidity

    # lesion in the left pedicle (y 9-15 mm, behind the body's 8 mm half-depth): outside the dens/body
    # column -> the column sections are not weakened
    vol, c2, les, lm = synthetic_c2(3.0, (6.5, 12.0, 7.5))
    prof = dens_rigidity(vol, c2, lm, les)
    assert prof.lesion_status == "outside column" and prof.max_loss == 0.0
    assert "outside the dens/body column" in prof.summary()
    # integrating the whole C2 section (pedicles included) sees it
    whole = dens_rigidity(vol, c2, lm, les, column="whole")
    assert whole.lesion_status == "present" and whole.max_loss > 0.05
    # the whole section is stiffer than the column alone at the body level (pedicles add bone)
    s_body = [s for s in whole.sections if s.s_mm == pytest.approx(-8.0)][0]
    c_body = [s for s in prof.sections if s.s_mm == pytest.approx(-8.0)][0]
    assert s_body.reference.ea_n > c_body.reference.ea_n
    with pytest.raises(InputError):
        dens_rigidity(vol, c2, lm, les, column="posterior")


def test_assess_reuses_anatomy_lesion_result(synthetic_c2):
    from types import SimpleNamespace

    vol, c2, les, lm = synthetic_c2(3.0)
    lr = SimpleNamespace(mask=les, volume_ml=0.123, fraction_of_dens=0.111, fraction_of_body=0.0, found=True)
    anatomy = SimpleNamespace(labelmap=LabelMap(vol, {"vertebrae_C2": c2}), landmarks=lm, lesion=lr)
    rep = assess(vol, anatomy, pain="none", alignment="normal", rigidity=False)
    assert rep.lesion.source == "anatomy.LesionResult"
    assert rep.lesion.volume_ml == 0.123 and rep.lesion.fraction_of_dens == 0.111
    assert rep.lesion.status == "present" and rep.sins.components["lesion_type"].value == "lytic"
    # landmarks missing -> said, not guessed
    rep2 = assess(vol, SimpleNamespace(labelmap=LabelMap(vol, {"vertebrae_C2": c2}), landmarks=None, lesion=lr))
    assert rep2.lesion is None and rep2.rigidity is None
    assert any("landmarks" in x for x in rep2.not_assessed)


def test_assess_stays_the_function_after_the_submodule_is_imported():
    """Importing the implementation module must not shadow ``osteoplan.risk.assess`` (was a module before)."""
    import osteoplan.risk
    import osteoplan.risk.assessment  # noqa: F401

    assert callable(osteoplan.risk.assess) and osteoplan.risk.assess.__module__ == "osteoplan.risk"
