"""Fracture risk on real CT without a lesion (CThead, cadaver, C1-C4 in view): no crash, "no lesion", loss ~0."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


@pytest.fixture(scope="module")
def cthead(shared_data):
    from osteoplan.imaging import read_volume

    pipeline = pytest.importorskip("osteoplan.anatomy.pipeline", reason="anatomy pipeline not in this build")
    vol = read_volume(shared_data / "cthead" / "ct.nii.gz")
    return vol, pipeline.build_anatomy(vol)


def test_cthead_no_lesion_no_crash(cthead):
    from osteoplan.risk import assess

    vol, anatomy = cthead
    rep = assess(vol, anatomy, pain="none", alignment="normal")
    d = rep.to_dict()
    json.dumps(d, allow_nan=False)
    assert rep.lesion is not None and rep.lesion.status == "none"
    assert rep.sins is None and rep.sins_status.startswith("not applicable")
    prof = rep.rigidity
    assert prof is not None and prof.lesion_status == "none"
    assert prof.max_loss == pytest.approx(0.0, abs=0.01) and not prof.flagged
    assert len(prof.sections) >= 10
    # the dens sections carry bone: a real, positive rigidity above the waist
    dens = [s for s in prof.sections if s.region == "dens"]
    assert dens and all(s.actual.ea_n > 0 and s.actual.ei_min_nmm2 > 0 for s in dens)
    # this vertebra's own normal cancellous bone was measured (adult cadaver: a few hundred HU)
    assert 100 < prof.normal_cancellous_hu < 700
    assert "Lesion: none found" in rep.summary_lines()


def test_cthead_risk_command(shared_data, capsys):
    pytest.importorskip("osteoplan.anatomy.pipeline", reason="anatomy pipeline not in this build")
    from osteoplan.cli import main

    rc = main(["-q", "risk", str(shared_data / "cthead" / "ct.nii.gz"), "--json", "--no-rigidity"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert data["lesion"]["status"] == "none" and data["sins"] is None
    assert data["ct_proposals"]["location"]["value"] == "junctional"
