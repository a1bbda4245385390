"""Each procedure warns of the limits of its own route (the procedure module's ``width_limit`` and
``route_warnings``), never of another procedure's anatomy: a C2 cementoplasty needle passes no pedicle isthmus, a
transpedicular vertebroplasty needle does."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from osteoplan.planning.planner import make_plan
from osteoplan.planning.procedures import get_procedure
from osteoplan.planning.procedures.c2_cementoplasty import VERTEBRAL_ARTERY_WARNING
from osteoplan.planning.protocol import load_protocol
from osteoplan.planning.search import choose_diameter
from osteoplan.views.i18n import translate_text

from .synthetic_vertebra import make_lumbar

PEDICLE_UNKNOWN = "Pedicle isthmus diameter unknown: smallest needle assumed; check the pedicle on the images."


def _vertebroplasty_plan(pedicle_width_mm=None):
    vol, lm, spine = make_lumbar(("L1",))
    if pedicle_width_mm is not None:
        v = spine.vertebrae["L1"]
        peds = {s: replace(p, width_mm=pedicle_width_mm) for s, p in v.pedicles.items()}
        spine = replace(spine, vertebrae={"L1": replace(v, pedicles=peds)})
    anatomy = SimpleNamespace(labelmap=lm, spine=spine, messages=[], lesion=None)
    return make_plan(vol, lm, anatomy, "vertebroplasty-transpedicular", level="L1")


class TestWidthLimitWords:
    def test_each_procedure_names_its_own_narrow_section(self):
        """The dens screw passes the dens waist, the vertebroplasty needle the pedicle isthmus, the C2 cement needle
        no narrow section at all."""
        assert get_procedure("c2-dens-screw").width_limit == ("Dens waist", "waist")
        assert get_procedure("vertebroplasty").width_limit == ("Pedicle isthmus", "pedicle")
        assert get_procedure("c2-cementoplasty").width_limit is None

    def test_unknown_width_warns_only_where_a_narrow_section_is_passed(self):
        """Unknown width: the vertebroplasty sentence as before; the C2 cementoplasty says nothing of a width."""
        vp = load_protocol("vertebroplasty-transpedicular")
        d, fits, w = choose_diameter(vp, None, get_procedure("vertebroplasty").width_limit)
        assert (fits, w) == (None, [PEDICLE_UNKNOWN]) and d == min(vp.implant().diameters_mm)
        cp = load_protocol("c2-cementoplasty-lateral")
        assert choose_diameter(cp, None, get_procedure("c2-cementoplasty").width_limit) == (2.41, None, [])
        assert choose_diameter(cp, float("nan"), None) == (2.41, None, [])

    def test_the_c2_cementoplasty_route_warning_names_the_vertebral_artery_with_its_source(self):
        """The C2 route warning is about the vertebral artery and its checked source; its French form is complete."""
        proc = get_procedure("c2-cementoplasty")
        assert proc.route_warnings(None, None) == [VERTEBRAL_ARTERY_WARNING]
        assert "vertebral artery" in VERTEBRAL_ARTERY_WARNING and "PMID 29526062" in VERTEBRAL_ARTERY_WARNING
        assert "pedicle" not in VERTEBRAL_ARTERY_WARNING.lower()
        assert 100 * 113 / 3386 == pytest.approx(3.3, abs=0.05)  # the figure quoted: 3.3 % of the CT angiograms
        fr = translate_text(VERTEBRAL_ARTERY_WARNING, "fr")
        assert fr != VERTEBRAL_ARTERY_WARNING and "artère vertébrale" in fr and "113 patients sur 3386" in fr
        assert get_procedure("vertebroplasty").route_warnings(None, None) == []
        assert get_procedure("c2-dens-screw").route_warnings(None, None) == []


class TestVertebroplastyKeepsItsWarning:
    def test_pedicle_width_unknown_is_still_said(self):
        """A pedicle whose isthmus width is unknown (NaN): the plan warns, in the vertebroplasty's own words."""
        plan = _vertebroplasty_plan(float("nan"))
        assert PEDICLE_UNKNOWN in plan.warnings
        assert VERTEBRAL_ARTERY_WARNING not in plan.warnings

    def test_pedicle_width_known_no_warning(self):
        """The synthetic pedicle is 8 mm wide (radius 4 mm): known, so no 'unknown' warning."""
        plan = _vertebroplasty_plan()
        assert not any("diameter unknown" in w for w in plan.warnings)


@pytest.fixture(scope="module")
def cement_plan():
    from osteoplan.anatomy.phantom import make_phantom

    ph = make_phantom()
    return make_plan(ph.volume, ph.truth, ph.landmarks, "c2-cementoplasty-lateral", lesion_mask=ph.truth.get("lesion"))


@pytest.mark.slow
def test_c2_cementoplasty_on_the_phantom_carries_no_pedicle_warning(cement_plan):
    """The plan on the neck phantom warns of the vertebral artery, never of a pedicle isthmus."""
    plan = cement_plan
    assert plan.procedure == "c2-cementoplasty" and plan.feasible
    assert not any("pedicle" in w.lower() or "isthmus" in w.lower() for w in plan.warnings), plan.warnings
    assert plan.warnings.count(VERTEBRAL_ARTERY_WARNING) == 1
    fr = [translate_text(w, "fr") for w in plan.warnings]
    assert not any("pédicul" in w for w in fr)
