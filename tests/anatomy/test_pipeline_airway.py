"""The pipeline splits the classical airway again once C2 is located (C2-aware laryngeal window)."""

from dataclasses import replace

import numpy as np
import pytest

from osteoplan.anatomy import airway as airway_mod
from osteoplan.anatomy.phantom import make_phantom
from osteoplan.anatomy.pipeline import build_anatomy


def _dice(a, b):
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def phantom():
    return make_phantom()


def test_resplit_uses_the_c2_inferior_endplate_and_replaces_the_messages(phantom, monkeypatch):
    calls = []
    real = airway_mod.split_airway

    def spy(volume, air, body=None, c2_inferior_z_mm=None, **kw):
        calls.append(c2_inferior_z_mm)
        return real(volume, air, body, c2_inferior_z_mm=c2_inferior_z_mm, **kw)

    monkeypatch.setattr(airway_mod, "split_airway", spy)
    v = replace(phantom.volume, info=replace(phantom.volume.info, contrast=None))
    an = build_anatomy(v)
    assert an.landmarks is not None
    # first the image-only split inside run_classical, then the C2-aware one in the pipeline
    assert len(calls) == 2 and calls[0] is None
    assert calls[1] == pytest.approx(float(an.landmarks.anteroinferior_body_lps_mm[2]))
    # and that level is the true one (phantom landmarks are within 2 mm of the truth)
    assert calls[1] == pytest.approx(float(phantom.landmarks.anteroinferior_body_lps_mm[2]), abs=2.0)
    split_msgs = [m for m in an.messages if m.startswith("airway split: ")]
    assert len(split_msgs) == 2  # inlet + cricoid, once each (the image-only ones were replaced)
    assert an.messages.index(split_msgs[0]) > next(i for i, m in enumerate(an.messages) if m.startswith("C2 located"))
    for n, floor in (("pharynx", 0.94), ("larynx", 0.80), ("trachea", 0.87)):  # measured 0.964 / 0.836 / 0.893
        assert an.labelmap.sources[n] == "classical"
        assert _dice(an.labelmap.get(n), phantom.truth.get(n)) >= floor, n


def test_provided_parts_are_not_resplit(phantom, monkeypatch):
    from osteoplan.anatomy.labelmap import LabelMap

    v = replace(phantom.volume, info=replace(phantom.volume.info, contrast=None))
    lar = phantom.truth.get("larynx")
    provided = LabelMap(v, {"larynx": lar}, {"larynx": "provided"})
    an = build_anatomy(v, masks=provided)
    assert an.labelmap.sources["larynx"] == "provided"
    assert np.array_equal(an.labelmap.get("larynx"), lar)
    assert an.labelmap.sources["pharynx"] == "classical"
