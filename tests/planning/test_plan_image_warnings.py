"""The reader's warnings about the image (skipped files, interpolated gaps) reach plan.json, the CLI and the report,
without file names; a path over interpolated slices is said specifically."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from osteoplan.imaging.reader_notes import ReaderNote
from osteoplan.planning.image_warnings import (gap_crossing_notes, gap_crossing_warnings, image_notes, image_warnings,
                                               interpolated_slices, plan_warning_lines)

#: two gaps as the reader gives them: one slice missing at z = -98 (usual step 2 mm), five at z = -40 .. -36 (1 mm)
GAPS = (ReaderNote("gap_interpolated", count=1, points_lps_mm=((0.0, 0.0, -98.0),), step_mm=2.0, gap_step_mm=4.0),
        ReaderNote("gap_interpolated", count=5,
                   points_lps_mm=tuple((1.0, 2.0, z) for z in (-40., -39., -38., -37., -36.)),
                   step_mm=1.0, gap_step_mm=6.0))


def _vol(*notes, other=()):
    return SimpleNamespace(reader_notes=notes, warnings=tuple(str(n) for n in notes) + tuple(other))


def _traj(entry_z, target_z, level="C2", side="right"):
    return SimpleNamespace(skin_entry_lps_mm=(10.0, -50.0, entry_z), target_lps_mm=(0.0, 0.0, target_z),
                           level=level, side=side)


def test_interpolated_slices_come_from_the_reader_data():
    got = interpolated_slices(_vol(*GAPS))
    # every missing slice of each gap, with its series' usual step (the sentence lists only 3 of the second gap)
    assert got == [(-98.0, 2.0), (-40.0, 1.0), (-39.0, 1.0), (-38.0, 1.0), (-37.0, 1.0), (-36.0, 1.0)]
    assert str(GAPS[1]).endswith("(1.00, 2.00, -38.00) mm LPS ... (step 6.00 mm instead of 1.00 mm)")
    # a plan's image notes give the same slices (e.g. for a moved path)
    assert interpolated_slices(SimpleNamespace(image_notes=image_notes(_vol(*GAPS)))) == got


def test_path_crossing_rule_on_known_geometry():
    vol = _vol(*GAPS)
    # z-range [-100, -97]: holds -98 (step 2: slab -99..-97)
    w = gap_crossing_warnings(vol, [_traj(-100.0, -97.0)])
    assert len(w) == 1 and "crosses 1 interpolated slice(s) at z = -98.00 mm" in w[0]
    # z-range [-96.5, -90]: -98 is 1.5 mm below, more than half its 2 mm step -> not crossed
    assert gap_crossing_warnings(vol, [_traj(-96.5, -90.0)]) == []
    # exactly half a step away (-97.0): the slab edge touches the path -> crossed
    assert len(gap_crossing_warnings(vol, [_traj(-90.0, -97.0)])) == 1
    # a path from -45 up to -37.2 crosses -40, -39, -38, -37 (and -36 is 1.2 mm above, > 0.5 mm)
    [n] = gap_crossing_notes(vol, [_traj(-37.2, -45.0)])
    assert n.z_lps_mm == (-40.0, -39.0, -38.0, -37.0) and n.count == 4 and n.path is None
    assert "crosses 4 interpolated slice(s) at z = -40.00, -39.00, -38.00, -37.00 mm" in n.text_en
    # two needles: each named; no gap -> nothing
    w = gap_crossing_warnings(vol, [_traj(-100, -97, "T12", "left"), _traj(-100, -98.5, "T12", "right")])
    assert len(gap_crossing_warnings(vol, [_traj(-100, -97, "T12", "left"), _traj(-100, -99.5, "T12", "right")])) == 1
    assert len(w) == 2 and "(T12 left)" in w[0] and "(T12 right)" in w[1]
    assert gap_crossing_warnings(_vol(other=("uneven slice spacing (1, 2 mm) resampled",)), [_traj(-100, 0)]) == []


def test_image_warnings_count_files_never_name_them(tmp_path):
    """A real read of a series whose files carry the patient's name: a truncated copy and two non-DICOM files are
    counted in the plan's warnings and data, never named."""
    from osteoplan.imaging import read_volume, synth

    s = synth.write_series(tmp_path / "DOE_JANE", shuffle=False, duplicate="identical", duplicate_index=4)
    files = [f.rename(f.with_name("DOE_JANE_" + f.name)) for f in s.files]
    synth.truncate_file(files[-1], 0.7)  # the extra copy of slice 4 (z = -4 + 8 = 4): held by the other copy
    synth.write_junk(tmp_path / "DOE_JANE" / "DOE_JANE_notes.txt")
    synth.write_junk(tmp_path / "DOE_JANE" / "DOE_JANE_letter.txt")
    vol = read_volume(tmp_path / "DOE_JANE")
    w = image_warnings(vol)
    assert "CT image: 2 files were skipped (names not recorded): not a DICOM file" in w
    assert ("CT image: 1 truncated or undecodable file(s) skipped (file names not recorded: they may identify the "
            "patient); their slice(s) at z = 4.00 mm (LPS) are held by another image at the same position") in w
    notes = image_notes(vol)
    assert [n.text_en for n in notes] == [x for x in w if x in {n.text_en for n in notes}]
    blob = " ".join(w) + repr(notes) + repr(vol.reader_notes) + " ".join(vol.warnings)
    assert "DOE" not in blob and "JANE" not in blob and ".dcm" not in blob and ".txt" not in blob


def test_other_warnings_pass_without_file_names():
    w = image_warnings(_vol(other=("lossy image compression: Hounsfield units are approximate",
                                   "something about file DOE_JANE_0040.dcm")))
    assert w == ["CT image: lossy image compression: Hounsfield units are approximate",
                 "CT image: something about file <name not recorded>"]


def test_each_face_says_its_own_remedy_for_the_series_choice():
    choice = ReaderNote("series_chosen", n_images=40, n_series=3, axial=True, remedy="series_uid")
    vol = _vol(choice)
    assert vol.warnings == ("read the largest axial CT series (40 images) of 3 series found; pass series_uid to "
                            "choose another",)  # the Python API's words
    [n] = image_notes(vol)
    assert n.text_en == "CT image: read the largest axial CT series (40 images) of 3 series found"  # plan.json
    plan = SimpleNamespace(warnings=(n.text_en, "Coarse CT"), image_notes=(n,))
    cli, web, batch, doc = (plan_warning_lines(plan, "en", f)[0] for f in ("cli", "web", "batch", None))
    assert cli.endswith("; pass --series-uid to choose another") and "series_uid" not in cli
    assert web.endswith("; to use another, start again with a zip holding only that series (or pick it from the "
                        "PACS)")
    assert batch.endswith("; to plan on another, give this case a folder or zip holding only that series")
    assert doc == n.text_en
    for line in (web, batch):
        assert "series_uid" not in line and "--series-uid" not in line
    # the plan's JSON (the web app reads plan.json as a dict) gives the same
    assert plan_warning_lines({"warnings": list(plan.warnings), "image_notes": [n.model_dump()]}, "en", "web") == \
        [web, "Coarse CT"]


def test_french_gap_and_skip_sentences_use_decimal_commas():
    skip = ReaderNote("undecodable_files_skipped", count=1, points_lps_mm=((0.0, 0.0, -97.5),), n_interpolated=1)
    plan = SimpleNamespace(warnings=tuple(n.text_en for n in image_notes(_vol(GAPS[0], skip))) + ("Coarse CT",),
                           image_notes=tuple(image_notes(_vol(GAPS[0], skip))))
    fr = plan_warning_lines(plan, "fr", None, translate=lambda w: "traduit")
    assert fr[0] == ("Image scanner : trou interpolé : 1 coupe(s) manquante(s) en (0,00 ; 0,00 ; -98,00) mm LPS "
                     "(intervalle de 4,00 mm au lieu de 2,00 mm)")
    assert fr[1].startswith("Image scanner : 1 fichier(s) tronqué(s) ou indécodable(s) ignoré(s)")
    assert "z = -97,50 mm (LPS) ont été interpolées" in fr[1]
    assert fr[2] == "traduit"  # the other warnings go through the report's translation
    [cross] = gap_crossing_notes(_vol(*GAPS), [_traj(-100.0, -97.0)])
    from osteoplan.planning.image_warnings import image_note_text

    assert image_note_text(cross, "fr") == (
        "Image scanner : le trajet prévu traverse 1 coupe(s) interpolée(s) à z = -98,00 mm (LPS) : ses voxels y ont "
        "été interpolés à travers un trou de la série, non mesurés ; vérifier le trajet sur les images originales.")
    [a, b] = gap_crossing_notes(_vol(*GAPS), [_traj(-100, -97, "T12", "left"), _traj(-100, -98.5, "T12", "right")])
    assert "le trajet (T12 droite) traverse" in image_note_text(b, "fr")


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
