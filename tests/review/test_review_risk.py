"""Reviewer's defects in osteoplan.risk.assessment."""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.anatomy import LabelMap
from osteoplan.errors import InputError
from osteoplan.imaging import Volume, axis_aligned_affine
from osteoplan.risk import assess


@pytest.fixture
def no_c2():
    vol = Volume(np.zeros((4, 5, 6), np.float32), axis_aligned_affine((1.0, 1.0, 1.0)))
    return vol, LabelMap(vol)


def test_override_of_pain_or_alignment_is_used_not_dropped(no_c2):
    # before: `--override pain=mechanical` was accepted and silently ignored (pain stayed MISSING)
    vol, lm = no_c2
    r = assess(vol, lm, overrides={"pain": "mechanical", "alignment": "normal"}, rigidity=False)
    assert r.sins.components["pain"].points == 3 and r.sins.components["alignment"].points == 0
    # location from the level (C2: junctional, 3): 3 + 3 + 0 with 3 components missing
    assert (r.sins.total_min, r.sins.total_max) == (6, 14)
    same = assess(vol, lm, pain="mechanical", overrides={"pain": "Mechanical"}, rigidity=False)
    assert same.sins.components["pain"].points == 3
    with pytest.raises(InputError, match="given twice"):
        assess(vol, lm, pain="none", overrides={"pain": "mechanical"}, rigidity=False)


def test_another_level_does_not_reuse_the_c2_measurements():
    # before: `--level L3` printed "Level: L3" next to "27 % of the dens" and C2-derived SINS proposals
    vol = Volume(np.zeros((6, 6, 6), np.float32), axis_aligned_affine((1.0, 1.0, 1.0)))
    c2 = np.zeros(vol.shape, bool)
    c2[1:5, 1:5, 1:5] = True
    lm = LabelMap(vol, masks={"vertebrae_C2": c2}, sources={"vertebrae_C2": "test"})
    r = assess(vol, lm, level="L3", overrides={"lesion_type": "lytic"}, rigidity=True)
    assert r.lesion is None and r.rigidity is None
    assert r.sins.components["location"].points == 2  # L3: mobile spine (Fisher 2010)
    assert r.sins.components["lesion_type"].points == 2 and r.sins.components["collapse"].points is None
    assert any("C2 only" in x and "L3" in x for x in r.not_assessed)
    with pytest.raises(InputError):
        assess(vol, lm, level="C99", rigidity=False)
