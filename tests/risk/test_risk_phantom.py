"""Fracture risk on the project's neck phantom: lesions of growing size, and the ``osteoplan risk`` command."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from osteoplan.anatomy.phantom import PhantomParams, make_phantom
from osteoplan.risk import assess
from osteoplan.risk.rigidity import LOSS_THRESHOLD

RADII = (0.0, 2.0, 3.0, 4.0, 5.0)


@pytest.fixture(scope="module")
def reports():
    out = {}
    for r in RADII:
        ph = make_phantom(PhantomParams(seed=3, lesion_radius_mm=r, fov_inferior_mm=-40.0))
        rep = assess(ph.volume, ph.truth, pain="mechanical", alignment="normal", landmarks=ph.landmarks,
                     pixel_mm=0.5)
        out[r] = (ph, rep)
    return out


def test_phantom_rigidity_loss_rises_with_lesion_size(reports):
    losses = [reports[r][1].rigidity.max_loss for r in RADII]
    assert losses[0] == 0.0
    assert all(b > a for a, b in zip(losses, losses[1:])), losses
    # the 5 mm lesion takes the whole dens section (outer radius 4.9 mm): flagged; 2-3 mm lesions are not
    assert reports[5.0][1].rigidity.flagged and losses[-1] >= LOSS_THRESHOLD
    assert not reports[2.0][1].rigidity.flagged and not reports[3.0][1].rigidity.flagged
    for r in RADII[1:]:
        ph, rep = reports[r]
        w = rep.rigidity.weakest
        assert w.region == "dens"
        # the weakest section passes within one station (1 mm) of the lesion centre
        s_lesion = float((ph.lesion_centre_lps_mm - ph.landmarks.waist_lps_mm) @ ph.landmarks.axis_unit)
        assert abs(w.s_mm - s_lesion) <= 1.0
        # the reference used this patient's own normal bone (phantom: cancellous 250 HU, cortex 1200 HU blurred)
        assert 220 < rep.rigidity.normal_cancellous_hu < 280


def test_phantom_lesion_metrics_and_sins_follow(reports):
    ph0, rep0 = reports[0.0]
    assert rep0.lesion.status == "none" and rep0.sins is None
    prev_vol, prev_frac = 0.0, 0.0
    for r in RADII[1:]:
        ph, rep = reports[r]
        truth_ml = ph.truth.volume_ml("lesion")
        assert rep.lesion.volume_ml == pytest.approx(truth_ml, rel=1e-6)
        assert rep.lesion.volume_ml > prev_vol and rep.lesion.fraction_of_dens > prev_frac
        prev_vol, prev_frac = rep.lesion.volume_ml, rep.lesion.fraction_of_dens
        c = rep.sins.components
        assert c["location"].value == "junctional" and c["location"].points == 3
        assert c["lesion_type"].value == "lytic" and c["lesion_type"].source == "ct-proposed"
        assert c["lesion_type"].evidence["lesion_median_hu"] < c["lesion_type"].evidence["normal_cancellous_median_hu"] - 100
        assert c["posterolateral"].value == "none"  # a central dens lesion spares the posterior elements
        assert rep.sins.total == 3 + 3 + 2 + 0 + c["collapse"].points + 0
        assert rep.sins.category == "potentially unstable" and rep.sins.referral is True
        json.dumps(rep.to_dict(), allow_nan=False)
    # cortical breach appears once the lesion reaches the dens surface (outer radius 4.9 mm)
    assert reports[3.0][1].lesion.breach.breach_mm2 == 0.0
    assert reports[5.0][1].lesion.breach.breach_mm2 > 50.0
    # the phantom has a segmented spinal canal: the canal-facing wall is assessed
    assert reports[5.0][1].lesion.breach.canal_facing_mm2 is not None


def test_phantom_posterolateral_lesion_is_unilateral():
    # lesion moved into the left C2 lamina/pedicle region
    ph = make_phantom(PhantomParams(seed=3, lesion_radius_mm=4.0, fov_inferior_mm=-40.0))
    lm = ph.landmarks
    c2 = ph.truth.get("vertebrae_C2")
    # pick a C2 voxel in the left posterior elements, 12 mm left and posterior of the body centre
    pts = ph.volume.index_to_world(np.argwhere(c2).astype(float))
    rel = pts - lm.body_centre_lps_mm
    cand = pts[(rel[:, 0] > 10) & (rel[:, 1] > 8)]
    assert len(cand) > 0
    centre = cand[len(cand) // 2]
    X = ph.volume.index_to_world(np.argwhere(np.ones(ph.volume.shape, bool)).astype(float)).reshape(*ph.volume.shape, 3)
    lesion = (np.linalg.norm(X - centre, axis=-1) <= 4.0) & c2
    arr = ph.volume.array.copy()
    arr[lesion] = 30.0
    vol = ph.volume.with_array(arr)
    lmap = ph.truth
    lmap.add("lesion", lesion, "test")
    rep = assess(vol, lmap, pain="none", alignment="normal", landmarks=lm, rigidity=False)
    pl = rep.sins.components["posterolateral"]
    assert pl.value == "unilateral" and pl.evidence["sides_involved"] == ["left"], pl.evidence


def test_risk_command_on_phantom(tmp_path, monkeypatch, capsys):
    import nibabel as nib

    from osteoplan.cli import main
    from osteoplan.faces.cli import risk as risk_cli

    ph = make_phantom(PhantomParams(seed=3, lesion_radius_mm=4.0, fov_inferior_mm=-40.0))
    ct = tmp_path / "ct.nii.gz"
    nib.save(ph.volume.to_nifti(), ct)
    monkeypatch.setattr(risk_cli, "_build_anatomy",
                        lambda volume, masks, hint: SimpleNamespace(labelmap=ph.truth, landmarks=ph.landmarks,
                                                                    lesion=None))
    png = tmp_path / "rigidity.png"
    rc = main(["-q", "risk", str(ct), "--pain", "mechanical", "--override", "collapse=under-50",
               "--plot", str(png), "--sections"])
    out = capsys.readouterr().out
    assert rc == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "EI_min (N m^2)" in out  # the per-section table
    # one row per component: name, points, how obtained, value; the evidence in words with units below it
    assert "SINS (Fisher, Spine 2010): 10–14 / 18 (radiographic alignment missing)" in out
    rows = {L.strip().split("  ")[0]: " ".join(L.split()) for L in out.splitlines() if L.startswith("  ")}
    assert rows["Vertebral body collapse"].endswith("2 user, replacing the CT proposal < 50 % collapse")
    assert rows["Bone lesion"].endswith("2 CT-proposed lytic")
    assert rows["Pain"].endswith("3 user (clinician) mechanical pain")
    assert rows["Radiographic alignment"].endswith("0–4 MISSING —")
    import re

    m = re.search(r"lesion median (-?\d+) HU", out)
    truth_median = float(np.median(ph.volume.array[ph.truth.get("lesion")]))  # independent: the phantom's lesion voxels
    assert m and abs(int(m.group(1)) - truth_median) <= 5.0, (m and m.group(0), truth_median)
    assert "HU below normal" in out and "lesion_p10_hu" not in out
    assert 'replaces the CT proposal "' in out
    assert "CT rigidity" in out and "reference:" in out
    report = tmp_path / "risk.json"
    rc = main(["-q", "risk", str(ct), "--pain", "mechanical", "--alignment", "normal", "--json",
               "--out", str(report), "--no-rigidity"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["sins"]["total"] == 8 and data["rigidity"] is None
    assert json.loads(report.read_text()) == data
    # a bad override is one clear line, exit code 2
    rc = main(["-q", "risk", str(ct), "--override", "collapse"])
    assert rc == 2 and "COMPONENT=VALUE" in capsys.readouterr().err
