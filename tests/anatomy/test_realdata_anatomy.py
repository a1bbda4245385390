"""Real CT: cthead (cadaver head and upper neck) and a sample of OpenKBP head-and-neck cases."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


@pytest.fixture(scope="module")
def cthead(shared_data):
    from osteoplan.anatomy.pipeline import build_anatomy
    from osteoplan.imaging import read_volume

    vol = read_volume(shared_data / "cthead" / "ct.nii.gz")
    return vol, build_anatomy(vol)


def test_cthead_c2_found_with_plausible_landmarks(cthead):
    vol, an = cthead
    lm = an.landmarks
    assert lm is not None, an.messages
    c2 = an.labelmap.get("vertebrae_C2")
    ks = np.nonzero(c2.any(axis=(1, 2)))[0]
    # README: C2 (dens and body) lies about slices 78-98 (the dens tip at about 74-76)
    assert 70 <= ks.min() <= 80 and 90 <= ks.max() <= 102
    apex_k = vol.world_to_index(lm.apex_lps_mm)[0]
    assert 70 <= apex_k <= 80
    # primer: anteroinferior body to tip 37.6 +/- 3.3 mm; apical dens width 9.6 +/- 1.1 mm -- this
    # cadaver's C2 is large (measured 45 mm), the test allows +/- 4 SD
    assert 30.0 <= lm.anteroinferior_to_apex_mm <= 51.0
    assert 6.0 <= lm.waist_diameter_mm <= 14.0
    assert lm.axis_unit[2] > 0.9  # mostly superior
    assert lm.apex_lps_mm[2] > lm.body_centre_lps_mm[2] > lm.anteroinferior_body_lps_mm[2]
    assert 0.5 <= lm.confidence <= 1.0


def test_cthead_no_contrast_vessels_not_segmented(cthead):
    _, an = cthead
    assert not an.contrast_detected
    for v in ("common_carotid_artery_left", "internal_jugular_vein_right"):
        assert not an.labelmap.has(v)
        assert v in an.not_segmented()
    assert any("vessels: NOT segmented" in m for m in an.messages)


def test_cthead_canal_and_airway(cthead):
    vol, an = cthead
    canal = an.labelmap.get("spinal_canal")
    air = an.labelmap.get("airway")
    c2 = an.labelmap.get("vertebrae_C2")
    assert canal.any() and air.any()
    # the canal lies posterior to C2's body at the C2 levels, the airway anterior to it
    k = int(np.median(np.nonzero(c2.any(axis=(1, 2)))[0]))
    assert np.nonzero(canal[k])[0].mean() > np.nonzero(c2[k])[0].min()
    assert np.nonzero(air[k])[0].mean() < np.nonzero(c2[k])[0].mean()
    assert not (canal & c2).any()
    # no lesion in this cadaver's C2: an empty result, not a crash
    assert an.lesion is not None and not an.lesion.found


OPENKBP_SAMPLE = ["pt_1", "pt_3", "pt_4", "pt_13", "pt_27", "pt_45", "pt_88", "pt_100", "pt_150", "pt_201"]


@pytest.fixture(scope="module")
def openkbp_results(shared_data):
    from scipy import ndimage as ndi

    from osteoplan.anatomy.pipeline import build_anatomy
    from osteoplan.imaging import read_volume

    out = {}
    for case in OPENKBP_SAMPLE:
        d = shared_data / "openkbp" / case
        if not d.is_dir():
            continue
        vol = read_volume(d / "ct.nii.gz")
        an = build_anatomy(vol)
        row = {"anatomy": an}
        if (d / "SpinalCord.nii.gz").exists():
            cord = read_volume(d / "SpinalCord.nii.gz").array > 0.5
            if cord.any():
                row["cord_in_canal"] = float((cord & an.labelmap.get("spinal_canal")).sum() / cord.sum())
        if (d / "Larynx.nii.gz").exists():
            lar = read_volume(d / "Larynx.nii.gz").array > 0.5
            if lar.any():
                row["larynx_touches_airway"] = bool((ndi.binary_dilation(lar, iterations=2)
                                                     & an.labelmap.get("airway")).any())
        out[case] = row
    if not out:
        pytest.skip("no OpenKBP case of the sample present")
    return out


def test_openkbp_c2_located_or_clear_reason(openkbp_results):
    for case, row in openkbp_results.items():
        an = row["anatomy"]
        if an.landmarks is None:
            reason = [m for m in an.messages if m.startswith("C2 NOT located: ")]
            assert reason and len(reason[0]) > 40, case
        else:
            assert 0.0 < an.landmarks.confidence <= 1.0
            assert an.labelmap.get("vertebrae_C2").any()


def test_openkbp_cord_inside_segmented_canal(openkbp_results):
    fr = {c: r["cord_in_canal"] for c, r in openkbp_results.items() if "cord_in_canal" in r}
    assert fr
    # measured on this sample (4 mm voxels): median 0.97; the target is >= 0.95 per case,
    # met on most but not all cases (see benchmarks/openkbp_anatomy.py for all 170)
    assert np.median(list(fr.values())) >= 0.90, fr
    assert min(fr.values()) >= 0.60, fr


def test_openkbp_larynx_touches_airway(openkbp_results):
    got = [r["larynx_touches_airway"] for r in openkbp_results.values() if "larynx_touches_airway" in r]
    if not got:
        pytest.skip("no larynx contour in the sample")
    assert sum(got) >= len(got) - 1, got
