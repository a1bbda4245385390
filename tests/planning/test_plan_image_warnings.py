"""The reader's warnings about the image (skipped files, interpolated gaps) reach plan.json, the CLI and the report,
without file names; a path over interpolated slices is said specifically."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from osteoplan.planning.image_warnings import gap_crossing_warnings, image_warnings, interpolated_slices

GAP = ("gap interpolated: 1 slice(s) missing at (0.00, 0.00, -98.00) mm LPS (step 4.00 mm instead of 2.00 mm); "
       "5 slice(s) missing at (1.00, 2.00, -40.00) mm LPS, (1.00, 2.00, -39.00) mm LPS, (1.00, 2.00, -38.00) mm LPS "
       "... (step 6.00 mm instead of 1.00 mm)")


def _traj(entry_z, target_z, level="C2", side="right"):
    return SimpleNamespace(skin_entry_lps_mm=(10.0, -50.0, entry_z), target_lps_mm=(0.0, 0.0, target_z),
                           level=level, side=side)


def test_interpolated_slices_parsed_from_the_reader_warning():
    vol = SimpleNamespace(warnings=(GAP,))
    got = interpolated_slices(vol)
    # the one slice of the first gap, then the 5 of the second at the usual 1 mm step (3 listed, 2 spread)
    assert got == [(-98.0, 2.0), (-40.0, 1.0), (-39.0, 1.0), (-38.0, 1.0), (-37.0, 1.0), (-36.0, 1.0)]


def test_path_crossing_rule_on_known_geometry():
    vol = SimpleNamespace(warnings=(GAP,))
    # z-range [-100, -97]: holds -98 (step 2: slab -99..-97)
    w = gap_crossing_warnings(vol, [_traj(-100.0, -97.0)])
    assert len(w) == 1 and "crosses 1 interpolated slice(s) at z = -98.00 mm" in w[0]
    # z-range [-96.5, -90]: -98 is 1.5 mm below, more than half its 2 mm step -> not crossed
    assert gap_crossing_warnings(vol, [_traj(-96.5, -90.0)]) == []
    # exactly half a step away (-97.0): the slab edge touches the path -> crossed
    assert len(gap_crossing_warnings(vol, [_traj(-90.0, -97.0)])) == 1
    # a path from -45 up to -37.2 crosses -40, -39, -38, -37 (and -36 is 1.2 mm above, > 0.5 mm)
    w = gap_crossing_warnings(vol, [_traj(-37.2, -45.0)])
    assert "crosses 4 interpolated slice(s) at z = -40.00, -39.00, -38.00, -37.00 mm" in w[0]
    # two needles: each named; no gap warning -> nothing
    w = gap_crossing_warnings(vol, [_traj(-100, -97, "T12", "left"), _traj(-100, -98.5, "T12", "right")])
    assert len(gap_crossing_warnings(vol, [_traj(-100, -97, "T12", "left"), _traj(-100, -99.5, "T12", "right")])) == 1
    assert len(w) == 2 and "(T12 left)" in w[0] and "(T12 right)" in w[1]
    assert gap_crossing_warnings(SimpleNamespace(warnings=("uneven slice spacing",)), [_traj(-100, 0)]) == []


def test_file_names_never_reach_the_plan_warnings():
    vol = SimpleNamespace(warnings=("skipped truncated or undecodable file(s) DOE_JANE_0040.dcm, x.dcm",
                                    "skipped file DOE_JANE/notes.txt: not a DICOM file",
                                    "skipped truncated or undecodable file(s) a.dcm, b.dcm, c.dcm, d.dcm, e.dcm ...",
                                    GAP))
    w = image_warnings(vol)
    assert all(x.startswith("CT image: ") for x in w)
    assert "DOE" not in " ".join(w) and ".dcm" not in " ".join(w)
    assert w[0].startswith("CT image: 2 truncated or undecodable file(s) skipped")
    assert w[1] == "CT image: a file was skipped (name not recorded): not a DICOM file"
    assert w[2].startswith("CT image: more than 5 truncated")
    assert w[3] == "CT image: " + GAP


def _phantom_dicom_with_a_truncated_slice(tmp_path):
    import pydicom

    from osteoplan.anatomy.phantom import PhantomParams, make_phantom, write_dicom_series

    ph = make_phantom(PhantomParams(spacing_mm=1.0))
    files = write_dicom_series(ph.volume, tmp_path / "DOE_JANE")
    zs = [float(pydicom.dcmread(str(f), stop_before_pixels=True).ImagePositionPatient[2]) for f in files]
    # the slice nearest the dens waist: the screw path (anteroinferior body -> apex) crosses it
    k = int(np.argmin(np.abs(np.array(zs) - float(ph.landmarks.waist_lps_mm[2]))))
    k = min(max(k, 1), len(files) - 2)  # interior
    renamed = []
    for f in files:  # file names holding the patient's name, as some exports do
        g = f.with_name("DOE_JANE_" + f.name)
        f.rename(g)
        renamed.append(g)
    data = renamed[k].read_bytes()
    renamed[k].write_bytes(data[: len(data) // 2])
    masks = tmp_path / "masks"
    masks.mkdir()
    import nibabel as nib

    for name in ph.truth.names():
        nib.save(ph.volume.with_array(ph.truth.get(name).astype(np.float32)).to_nifti(dtype=np.uint8),
                 masks / f"{name}.nii.gz")
    return tmp_path / "DOE_JANE", masks, zs[k]


@pytest.mark.slow  # ~45 s: phantom, 1 mm DICOM series, planning and the HTML report
def test_gap_filled_dicom_plan_says_so_everywhere_without_names(tmp_path, capsys):
    from osteoplan.cli import main
    from osteoplan.planning.model import load_plan

    ct, masks, z_gap = _phantom_dicom_with_a_truncated_slice(tmp_path)
    out = tmp_path / "plan"
    rc = main(["plan", str(ct), "--masks", str(masks), "--allow-gaps", "--out", str(out), "--no-pdf",
               "--no-dicom", "--no-drr", "--no-3d", "--no-risk"])
    text = capsys.readouterr().out
    plan = load_plan(out / "plan.json")
    assert rc == plan.verdict.exit_code
    pos = f"{z_gap:.2f}) mm LPS"
    gap = [w for w in plan.warnings if w.startswith("CT image: gap interpolated: 1 slice(s) missing at ")]
    assert len(gap) == 1 and pos in gap[0], plan.warnings
    assert any(w.startswith("CT image: 1 truncated or undecodable file(s) skipped") for w in plan.warnings)
    assert f"warning: {gap[0]}" in text
    raw = (out / "plan.json").read_text()
    assert "DOE" not in raw and "JANE" not in raw and ".dcm" not in raw
    html = next(out.rglob("*.html")).read_text()
    assert "gap interpolated: 1 slice(s) missing at" in html and pos in html
    # (the folder and file names hold "DOE_JANE"; an underscore never occurs in the report's base64 images)
    assert "doe_jane" not in html.lower() and "DOE" not in text and "JANE" not in text
    b = plan.best or (plan.trajectories[0] if plan.trajectories else None)
    if b is not None:
        z0, z1 = sorted((b.skin_entry_lps_mm[2], b.target_lps_mm[2]))
        crossed = z0 - 0.5 <= z_gap <= z1 + 0.5
        said = [w for w in plan.warnings if "interpolated slice(s) at z = " in w]
        assert bool(said) == crossed
        if crossed:
            assert f"{z_gap:.2f}" in said[0] and said[0] in html


@pytest.mark.slow  # ~20-40 s: the phantom as a 1 mm DICOM series, segmented and assessed from it
@pytest.mark.parametrize("command", ["segment", "risk"])
def test_segment_and_risk_print_the_gap_without_file_names(tmp_path, capsys, command):
    """``segment`` and ``risk`` print the reader's warnings through the same filter as ``plan``: the gap with its
    position is said, the patient-named files are counted, never named (they printed the raw warnings before)."""
    from osteoplan.cli import main

    ct, masks, z_gap = _phantom_dicom_with_a_truncated_slice(tmp_path)
    args = [command, str(ct), "--masks", str(masks), "--allow-gaps", "--out",
            str(tmp_path / ("seg" if command == "segment" else "risk.json"))]
    main(args)
    cap = capsys.readouterr()
    text = cap.out + cap.err
    assert "CT image: gap interpolated: 1 slice(s) missing at " in text and f"{z_gap:.2f}) mm LPS" in text
    assert "CT image: 1 truncated or undecodable file(s) skipped" in text
    assert "DOE" not in text and "JANE" not in text and ".dcm" not in text
