"""TotalSegmentator backend without weights: argument building, output mapping, subprocess path."""

from __future__ import annotations

import sys
import textwrap

import nibabel as nib
import numpy as np
import pytest

from osteoplan.anatomy import totalseg
from osteoplan.errors import DependencyError, InputError
from osteoplan.imaging import Volume, axis_aligned_affine


def test_build_command_total_with_default_roi_subset(tmp_path):
    cmd = totalseg.build_command(tmp_path / "ct.nii.gz", tmp_path / "out", fast=True, device="gpu:1")
    assert cmd[:7] == ["TotalSegmentator", "-i", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "out"), "--task", "total"]
    i = cmd.index("--roi_subset")
    rois = cmd[i + 1: cmd.index("--fast")]
    assert rois == list(totalseg.TOTAL_ROI_SUBSET)
    assert "vertebrae_C2" in rois and "spinal_cord" in rois
    assert cmd[-2:] == ["--device", "gpu:1"]


def test_build_command_headneck_and_errors(tmp_path):
    cmd = totalseg.build_command("ct.nii.gz", "o", task="headneck_bones_vessels")
    assert cmd == ["TotalSegmentator", "-i", "ct.nii.gz", "-o", "o", "--task", "headneck_bones_vessels", "--device", "cpu"]
    assert "--roi_subset" not in totalseg.build_command("ct.nii.gz", "o", roi_subset=[])
    assert totalseg.build_command("c", "o", roi_subset=["trachea"])[7:9] == ["--roi_subset", "trachea"]
    with pytest.raises(InputError, match="fast"):
        totalseg.build_command("c", "o", task="headneck_bones_vessels", fast=True)
    with pytest.raises(InputError, match="roi_subset"):
        totalseg.build_command("c", "o", task="headneck_bones_vessels", roi_subset=["hyoid"])
    with pytest.raises(InputError):
        totalseg.build_command("c", "o", task="brain")
    with pytest.raises(InputError):
        totalseg.build_command("c", "o", device="tpu")
    with pytest.raises(InputError):
        totalseg.build_command("c", "o", roi_subset=["x; rm -rf /"])


def test_not_installed_is_a_clear_dependency_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not totalseg.is_available()
    with pytest.raises(DependencyError, match="not installed"):
        totalseg.run(tmp_path / "ct.nii.gz", tmp_path / "out")


def _fake_output(d, names):
    d.mkdir(parents=True, exist_ok=True)
    for n in names:
        (d / f"{n}.nii.gz").write_bytes(b"")
    return d


def test_map_outputs_total_and_headneck_names(tmp_path):
    d = _fake_output(tmp_path / "out", list(totalseg.TOTAL_ROI_SUBSET) + list(totalseg.HEADNECK_BONES_VESSELS_CLASSES))
    (d / "statistics.json").write_text("{}")
    m = totalseg.map_outputs(d)
    assert m["larynx"].name == "larynx_air.nii.gz"
    assert m["vertebrae_C2"].name == "vertebrae_C2.nii.gz"
    for n in ("internal_carotid_artery_left", "internal_jugular_vein_right", "common_carotid_artery_right",
              "spinal_cord", "esophagus", "trachea", "skull"):
        assert m[n].name == f"{n}.nii.gz"
    assert "hyoid" in m and "statistics" not in m  # every TotalSegmentator class is in the vocabulary
    assert set(totalseg.map_outputs(d, include_unknown=True)) >= {"hyoid", "thyroid_cartilage", "styloid_process_left"}
    # exact name wins over a synonym mapping to the same structure
    _fake_output(d, ["larynx"])
    assert totalseg.map_outputs(d)["larynx"].name == "larynx.nii.gz"


def _write_masks(d, volume, names):
    d.mkdir(parents=True, exist_ok=True)
    for v, n in enumerate(names, start=1):
        a = np.zeros(volume.shape, np.float32)
        a[v, 1:3, 1:3] = 1
        nib.save(volume.with_array(a).to_nifti(np.uint8), str(d / f"{n}.nii.gz"))


def test_run_with_a_fake_executable_and_load(tmp_path):
    vol = Volume(np.zeros((6, 5, 4), np.float32), axis_aligned_affine((1, 1, 1), (0, 0, 0)))
    nib.save(vol.to_nifti(), str(tmp_path / "ct.nii.gz"))
    template = tmp_path / "template"
    _write_masks(template, vol, ["larynx_air", "internal_jugular_vein_left", "hyoid"])
    fake = tmp_path / "bin" / "TotalSegmentator"
    fake.parent.mkdir()
    fake.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import shutil, sys
        args = sys.argv[1:]
        out = args[args.index("-o") + 1]
        assert args[args.index("--task") + 1] == "headneck_bones_vessels"
        shutil.copytree({str(template)!r}, out, dirs_exist_ok=True)
        """))
    fake.chmod(0o755)
    found = totalseg.run(tmp_path / "ct.nii.gz", tmp_path / "out", task="headneck_bones_vessels",
                         executable=str(fake), require_weights=False)
    assert set(found) == {"larynx", "internal_jugular_vein_left", "hyoid"}  # every TotalSegmentator class is known
    lm = totalseg.load_outputs(tmp_path / "out", vol)
    assert lm.get("larynx").sum() == 4 and lm.get("larynx")[1, 1, 1]
    assert lm.sources["larynx"] == "totalsegmentator:larynx_air.nii.gz"
    # a failing run is an AnatomyError with the exit code, not a traceback
    bad = tmp_path / "bin" / "bad"
    bad.write_text(f"#!{sys.executable}\nimport sys; sys.exit(3)\n")
    bad.chmod(0o755)
    from osteoplan.errors import AnatomyError
    with pytest.raises(AnatomyError, match="exit code 3"):
        totalseg.run(tmp_path / "ct.nii.gz", tmp_path / "o2", executable=str(bad), require_weights=False)


def test_weights_dir_env(monkeypatch, tmp_path):
    monkeypatch.delenv("TOTALSEG_WEIGHTS_PATH", raising=False)
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path))
    assert totalseg.weights_dir() == tmp_path / "nnunet" / "results"
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(tmp_path / "w"))
    assert totalseg.weights_dir() == tmp_path / "w"


def test_run_totalsegmentator_on_a_volume_with_a_fake_executable(tmp_path, monkeypatch):
    vol = Volume(np.zeros((6, 5, 4), np.float32), axis_aligned_affine((1, 1, 1), (5, -3, 2)))
    for task, names in (("total", ["vertebrae_C2", "spinal_cord"]),
                        ("headneck_bones_vessels", ["internal_carotid_artery_left", "hyoid"])):
        _write_masks(tmp_path / "tpl" / task, vol, names)
    fake = tmp_path / "bin" / "TotalSegmentator"
    fake.parent.mkdir()
    fake.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import shutil, sys
        a = sys.argv[1:]
        task = a[a.index("--task") + 1]
        if task == "total":
            assert "--roi_subset" in a and "vertebrae_C2" in a
        shutil.copytree({str(tmp_path / "tpl")!r} + "/" + task, a[a.index("-o") + 1], dirs_exist_ok=True)
        """))
    fake.chmod(0o755)
    warnings = []
    lm = totalseg.run_totalsegmentator(vol, executable=str(fake), require_weights=False, warnings=warnings)
    assert set(lm.names()) == {"vertebrae_C2", "spinal_cord", "internal_carotid_artery_left", "hyoid"}
    assert lm.get("vertebrae_C2")[1, 1, 1] and lm.get("vertebrae_C2").sum() == 4
    assert lm.sources["spinal_cord"] == "totalsegmentator:spinal_cord.nii.gz"
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(DependencyError):
        totalseg.run_totalsegmentator(vol)


def test_missing_weights_is_a_dependency_error_that_says_what_to_do(tmp_path, monkeypatch):
    from osteoplan.errors import OsteoplanError

    fake = tmp_path / "bin" / "TotalSegmentator"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nraise SystemExit(0)\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    monkeypatch.delenv("TOTALSEG_WEIGHTS_PATH", raising=False)
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "home"))  # no weights there
    assert totalseg.is_available(require_weights=False) and not totalseg.is_available()
    with pytest.raises(DependencyError) as e:
        totalseg.run(tmp_path / "ct.nii.gz", tmp_path / "out", task="headneck_bones_vessels")
    msg = str(e.value)
    assert isinstance(e.value, OsteoplanError)
    assert "weights" in msg and "totalseg_download_weights -t headneck_bones_vessels" in msg
    assert not (tmp_path / "out").exists()  # nothing written before the check
    vol = Volume(np.zeros((6, 5, 4), np.float32), axis_aligned_affine((1, 1, 1), (0, 0, 0)))
    with pytest.raises(DependencyError, match="weights"):
        totalseg.run_totalsegmentator(vol)
    # weights of one part model only: the task is still missing four (named), the other task its own
    res = tmp_path / "home" / "nnunet" / "results"
    (res / "Dataset291_TotalSegmentator_part1_organs_1559subj").mkdir(parents=True)
    (res / "Dataset2910_other").mkdir()  # not Dataset291's: the ID must end at '_'
    assert totalseg.missing_weights("total") == [292, 293, 294, 295]
    assert totalseg.missing_weights("headneck_bones_vessels") == [776]
    assert not totalseg.is_available()
    with pytest.raises(DependencyError) as e:
        totalseg.run(tmp_path / "ct.nii.gz", tmp_path / "out", task="total")
    assert "(Dataset292, Dataset293, Dataset294, Dataset295)" in str(e.value)
    # with the weights of both tasks present, the check passes (the fast model is another dataset)
    for i in (292, 293, 294, 295):
        (res / f"Dataset{i}_part").mkdir()
    (res / "Dataset776_TotalSegmentator_headneck_bones_vessels_1559subj").mkdir()
    assert totalseg.is_available() and totalseg.missing_weights("total", fast=True) == [297]
    assert not totalseg.is_available(tasks=["total"], fast=True)
    assert totalseg.missing_weights("headneck_bones_vessels", fast=True) == []  # no fast model: the normal one
    with pytest.raises(InputError):
        totalseg.missing_weights("body")


def test_not_installed_message_names_the_package_and_the_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DependencyError) as e:
        totalseg.run(tmp_path / "ct.nii.gz", tmp_path / "out")
    msg = str(e.value)
    assert "pip install TotalSegmentator" in msg and "classical segmentation" in msg


def test_class_names_of_both_tasks_map_to_the_planning_vocabulary():
    """TotalSegmentator v2 class map (totalsegmentator/map_to_binary.py, tasks 'total' and
    'headneck_bones_vessels'): every class osteoplan plans with maps to a canonical name."""
    from osteoplan.anatomy.labelmap import STRUCTURES, canonical_name

    expected = {
        "vertebrae_C1": "vertebrae_C1", "vertebrae_C2": "vertebrae_C2", "vertebrae_C3": "vertebrae_C3",
        "spinal_cord": "spinal_cord", "trachea": "trachea", "esophagus": "esophagus", "skull": "skull",
        "common_carotid_artery_left": "common_carotid_artery_left",
        "common_carotid_artery_right": "common_carotid_artery_right",
        "larynx_air": "larynx",
        "internal_carotid_artery_left": "internal_carotid_artery_left",
        "internal_carotid_artery_right": "internal_carotid_artery_right",
        "internal_jugular_vein_left": "internal_jugular_vein_left",
        "internal_jugular_vein_right": "internal_jugular_vein_right",
    }
    for ts_name, canon in expected.items():
        assert canonical_name(ts_name) == canon, ts_name
        assert ts_name in totalseg.TOTAL_ROI_SUBSET + totalseg.HEADNECK_BONES_VESSELS_CLASSES, ts_name
    for ts_name in totalseg.TOTAL_ROI_SUBSET:
        assert canonical_name(ts_name) in STRUCTURES, ts_name
    # neither task segments the vertebral arteries or the spinal canal: they stay classical / not assessed
    produced = {canonical_name(n) for n in totalseg.TOTAL_ROI_SUBSET + totalseg.HEADNECK_BONES_VESSELS_CLASSES}
    assert not produced & {"vertebral_artery_left", "vertebral_artery_right", "spinal_canal"}


def test_pipeline_without_totalsegmentator_says_so_and_goes_on(monkeypatch, tmp_path):
    from osteoplan.anatomy.pipeline import build_anatomy

    monkeypatch.setenv("PATH", str(tmp_path))
    a = np.full((20, 24, 24), -1000.0, np.float32)
    a[2:18, 4:20, 4:20] = 40.0  # a block of soft tissue: no bone, no C2
    vol = Volume(a, axis_aligned_affine((1, 1, 1), (0, 0, 0)))
    an = build_anatomy(vol, use_totalsegmentator=True)
    msgs = " | ".join(an.messages)
    assert "TotalSegmentator not used: TotalSegmentator is not installed" in msgs
    assert "C2 NOT located" in msgs
