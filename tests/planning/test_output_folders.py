"""Output folders (issue 18, "Files on disk"): osteoplan replaces only what it wrote (its manifest), refuses the
current folder and folders holding other work with one clear line, and a --no-report plan folder gets its
report later (kept CT, or the CT given again and checked to be the same volume)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from osteoplan.atomic import MANIFEST_NAME, atomic_dir, check_output_folder, foreign_entries, read_manifest
from osteoplan.cli import main
from osteoplan.errors import InputError


def _own_folder(path: Path) -> Path:
    with atomic_dir(path, manifest="test") as tmp:
        (tmp / "plan.json").write_text("{}")
        (tmp / "images").mkdir()
        (tmp / "images" / "a.png").write_bytes(b"png")
    return path


def test_manifest_lists_every_entry_and_nothing_else(tmp_path):
    out = _own_folder(tmp_path / "out")
    doc = json.loads((out / MANIFEST_NAME).read_text())
    assert doc["manifest"] == "osteoplan output folder" and doc["version"] == 1 and doc["command"] == "test"
    assert doc["entries"] == ["images/", "images/a.png", "plan.json"]
    assert foreign_entries(out) == []


def test_other_work_is_never_replaced(tmp_path):
    out = _own_folder(tmp_path / "out")
    (out / "my-notes.docx").write_text("two weeks of work")
    with pytest.raises(InputError, match=r"holds 1 file that osteoplan did not write"):
        check_output_folder(out, overwrite=True)
    with pytest.raises(InputError, match="did not write"):
        with atomic_dir(out, overwrite=True, manifest="test") as tmp:
            (tmp / "plan.json").write_text("{}")
    assert (out / "my-notes.docx").read_text() == "two weeks of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left
    # a folder without a manifest (not osteoplan's) is never replaced either
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "a.txt").write_text("a")
    with pytest.raises(InputError, match="1 file"):
        check_output_folder(tmp_path / "work", overwrite=True)


def test_earlier_output_needs_overwrite_then_is_replaced(tmp_path):
    out = _own_folder(tmp_path / "out")
    with pytest.raises(InputError, match="an earlier osteoplan output; add --overwrite"):
        check_output_folder(out, overwrite=False)
    with atomic_dir(out, overwrite=True, manifest="test") as tmp:
        (tmp / "new.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "new.json"]
    check_output_folder(tmp_path / "empty-new", overwrite=False)  # a new folder is fine
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty", overwrite=False)  # an empty one too


def test_file_added_while_working_stops_the_swap(tmp_path):
    out = _own_folder(tmp_path / "out")
    with pytest.raises(InputError, match="did not write"):
        with atomic_dir(out, overwrite=True, manifest="test") as tmp:
            (tmp / "plan.json").write_text("{}")
            (out / "added-meanwhile.txt").write_text("x")
    assert (out / "added-meanwhile.txt").exists() and (out / "images" / "a.png").exists()


@pytest.mark.parametrize("where", [".", "..", "sub/.."])
def test_current_folder_refused_with_a_clear_line(tmp_path, monkeypatch, capsys, where):
    cwd = tmp_path / "a" / "b"
    (cwd / "sub").mkdir(parents=True)
    monkeypatch.chdir(cwd)
    with pytest.raises(InputError, match="current folder"):
        check_output_folder(Path(where), overwrite=True)
    ct = str(tmp_path / "ct.nii.gz")  # outside the current folder (an input inside --out has its own message)
    for argv in (["demo", "--out", where, "--no-report"], ["plan", ct, "--out", where, "--overwrite"],
                 ["segment", ct, "--out", where, "--overwrite"]):
        rc = main(["-q", *argv])
        err = capsys.readouterr().err
        assert rc == 2 and "current folder" in err and err.count("\n") == 1, (argv, err)
        assert "disk" not in err and "space" not in err


def test_plan_and_segment_refuse_a_folder_holding_other_work(tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "thesis.tex").write_text("x")
    (tmp_path / "ct.nii.gz").write_bytes(b"not read: the output is checked first")
    for argv in (["demo", "--out", str(work), "--overwrite"],
                 ["plan", str(tmp_path / "ct.nii.gz"), "--out", str(work), "--overwrite"],
                 ["segment", str(tmp_path / "ct.nii.gz"), "--out", str(work), "--overwrite"],
                 ["segment", str(tmp_path / "ct.nii.gz"), "--out", str(work), "--force"]):  # old name kept
        rc = main(["-q", *argv])
        err = capsys.readouterr().err
        assert rc == 2 and "did not write" in err and err.count("\n") == 1, (argv, err)
    assert (work / "thesis.tex").read_text() == "x"


def test_same_overwrite_flag_for_plan_and_segment():
    from osteoplan.cli import build_parser

    parser = build_parser()
    for argv in (["plan", "ct", "--overwrite"], ["segment", "ct", "--out", "o", "--overwrite"],
                 ["segment", "ct", "--out", "o", "--force"], ["phantom", "o", "--overwrite"]):
        args = parser.parse_args(argv)
        assert getattr(args, "overwrite", None) or getattr(args, "force", None), argv


@pytest.fixture(scope="module")
def phantom_ct(tmp_path_factory):
    from osteoplan.anatomy.phantom import PhantomParams, make_phantom
    from osteoplan.export import save_ct_nifti

    d = tmp_path_factory.mktemp("ph")
    ph = make_phantom(PhantomParams(spacing_mm=1.0))
    save_ct_nifti(d / "neck.nii.gz", ph.volume)
    other = ph.volume.with_array(ph.volume.array + 1.0)  # same grid, other voxels
    save_ct_nifti(d / "other.nii.gz", other)
    from osteoplan.imaging.volume import Volume

    save_ct_nifti(d / "cropped.nii.gz", Volume(ph.volume.array[1:], ph.volume.affine))  # another grid
    return d


@pytest.mark.slow
def test_no_report_folder_gets_its_report_later(phantom_ct, tmp_path, capsys):
    out = tmp_path / "plan"
    rc = main(["plan", str(phantom_ct / "neck.nii.gz"), "--out", str(out), "--no-report", "--no-risk"])
    from osteoplan.planning.model import load_plan
    from osteoplan.planning.verdict import verdict_of

    assert rc == verdict_of(load_plan(out / "plan.json")).exit_code  # the folder is written whatever the verdict
    names = {p.name for p in out.iterdir()}
    assert {"plan.json", "ct.nii.gz", "segmentation.seg.nrrd", "labels.json", MANIFEST_NAME} <= names
    assert "report.html" not in names
    fast = ["--no-pdf", "--no-dicom", "--no-drr", "--no-3d"]
    assert main(["report", str(out), *fast]) == 0
    assert (out / "report.html").is_file()
    # what report wrote is osteoplan's own: the folder can still be replaced with --overwrite
    assert foreign_entries(out) == [] and "report.html" in read_manifest(out)["entries"]
    # the CT given again (a folder without ct.nii.gz): checked to be the same volume
    (out / "ct.nii.gz").unlink()
    (out / "report.html").unlink()
    capsys.readouterr()
    assert main(["-q", "report", str(out), *fast]) == 2
    assert "ct.nii.gz" in capsys.readouterr().err
    assert main(["-q", "report", str(out), "--ct", str(phantom_ct / "cropped.nii.gz"), *fast]) == 2
    err = capsys.readouterr().err
    assert "grid differs" in err and err.count("\n") == 1
    assert main(["-q", "report", str(out), "--ct", str(phantom_ct / "other.nii.gz"), *fast]) == 2
    err = capsys.readouterr().err
    assert "other voxel values" in err and err.count("\n") == 1
    assert main(["report", str(out), "--ct", str(phantom_ct / "neck.nii.gz"), *fast]) == 0
    assert (out / "report.html").is_file() and not (out / "ct.nii.gz").exists()  # no copy of the CT added


def test_ct_voxels_hash_tells_shape_and_values_not_dtype():
    import numpy as np

    from osteoplan.export.cli import ct_voxels_sha256
    from osteoplan.imaging.volume import Volume

    a = np.arange(4 * 5 * 7, dtype=np.float32).reshape(4, 5, 7)
    h = ct_voxels_sha256(Volume(a, np.eye(4)))
    assert h == ct_voxels_sha256(Volume(a.astype(np.float64), np.eye(4)))  # the same HU read another way
    assert h != ct_voxels_sha256(Volume(a.reshape(4, 7, 5), np.eye(4)))  # same bytes, other shape
    b = a.copy()
    b[2, 3, 4] += 1.0
    assert h != ct_voxels_sha256(Volume(b, np.eye(4)))  # one voxel differs


def test_foreign_entries_are_counted_directly_in_the_folder(tmp_path):
    """A folder holding one osteoplan output sub-folder said "holds 6 file(s)" (a recursive count, fresh reviewer):
    the entries are counted directly in the folder, files and folders named as such."""
    parent = tmp_path / "DUPONT_JEAN"
    parent.mkdir()
    _own_folder(parent / "plan-out")                       # 4 entries inside, counted as the one folder it is
    with pytest.raises(InputError) as e:
        check_output_folder(parent, overwrite=True)
    assert str(e.value).startswith("--out: <folder> holds 1 folder that osteoplan did not write, "), str(e.value)
    (parent / "a.txt").write_text("a")
    (parent / "b.txt").write_text("b")
    with pytest.raises(InputError, match="holds 2 files and 1 folder that osteoplan did not write"):
        check_output_folder(parent, overwrite=True)
    own = _own_folder(tmp_path / "out")                    # something added inside osteoplan's own sub-folder
    (own / "images" / "mine.png").write_bytes(b"x")
    with pytest.raises(InputError, match="<folder> holds 1 entry inside osteoplan.s own sub-folders that osteoplan did not write"):
        check_output_folder(own, overwrite=True)


def test_safe_path_says_folder_for_a_folder(tmp_path):
    from osteoplan.errors import safe_path

    (tmp_path / "MARTIN_ALICE").mkdir()
    (tmp_path / "MARTIN_ALICE.txt").write_text("x")
    assert safe_path(tmp_path / "MARTIN_ALICE") == "<folder>"
    assert safe_path(tmp_path / "MARTIN_ALICE.txt") == "<file>"
    assert safe_path(tmp_path / "DOE_JOHN", "folder") == "<folder>"   # a folder that does not exist yet
    assert safe_path(tmp_path / "DOE_JOHN") == "<file>"
    assert safe_path(tmp_path / "plan.json") == "plan.json"           # generic names are shown as they were
