"""Reviewer's defects in osteoplan.risk.assess."""

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
