"""Command-line errors name WHICH argument was wrong (the CT input, --masks, --out, PLAN_DIR, PATH) in one line,
without echoing a folder name that could be a patient's name."""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.cli import main

CT_NAME = "the CT input (argument CT)"
PATIENT = "DUPONT_JEAN"          # a folder named after a patient: never printed


@pytest.fixture()
def files(tmp_path):
    """A tiny valid CT, and bad inputs inside a folder with a patient's name."""
    import nibabel as nib

    from osteoplan.imaging.volume import Volume, axis_aligned_affine

    ct = tmp_path / "ct.nii.gz"
    nib.save(Volume(np.full((8, 10, 12), -1000.0, np.float32), axis_aligned_affine((2.0, 1.0, 1.0))).to_nifti(), ct)
    pat = tmp_path / PATIENT
    pat.mkdir()
    (pat / "scan.txt").write_text("not a CT")
    (pat / "masks.nii.gz").write_bytes(b"not a NIfTI")
    (pat / "empty").mkdir()
    busy = tmp_path / "MARTIN_ALICE"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    return {"ct": str(ct), "bad_ct": str(pat / "scan.txt"), "missing_ct": str(pat / "nothere.nii.gz"),
            "ct_folder": str(pat / "empty"), "bad_masks": str(pat / "masks.nii.gz"),
            "missing_masks": str(pat / "missing"), "empty_masks": str(pat / "empty"), "busy": str(busy),
            "new_out": str(tmp_path / "new-out"), "patient_dir": str(pat)}


def _err(capsys, argv):
    rc = main(["-q", *argv])
    err = capsys.readouterr().err
    assert rc != 0
    assert err.startswith("error: ") and err.count("\n") == 1, err          # one line
    assert "Traceback" not in err and "unexpected" not in err
    assert PATIENT not in err and "MARTIN_ALICE" not in err, err           # no identifying folder name
    return err


CASES = [
    # (command line with placeholders, argument named, what the message says)
    (["plan", "{bad_ct}", "--out", "{new_out}"], CT_NAME, "Unsupported input"),
    (["plan", "{missing_ct}", "--out", "{new_out}"], CT_NAME, "not found"),
    (["plan", "{ct_folder}", "--out", "{new_out}"], CT_NAME, "No DICOM image found"),
    (["plan", "{ct}", "--masks", "{missing_masks}", "--out", "{new_out}", "--no-risk"], "--masks", "not found"),
    (["plan", "{ct}", "--masks", "{bad_masks}", "--out", "{new_out}", "--no-risk"], "--masks", "Cannot read"),
    (["plan", "{ct}", "--out", "{busy}"], "--out", "<folder> holds 1 file that osteoplan did not write"),
    (["segment", "{bad_ct}", "--out", "{new_out}"], CT_NAME, "Unsupported input"),
    (["segment", "{missing_ct}", "--out", "{new_out}"], CT_NAME, "not found"),
    (["segment", "{ct}", "--masks", "{empty_masks}", "--out", "{new_out}"], "--masks", "No mask found"),
    (["segment", "{ct}", "--masks", "{missing_masks}", "--out", "{new_out}"], "--masks", "not found"),
    (["segment", "{ct}", "--out", "{busy}"], "--out", "osteoplan did not write"),
    (["risk", "{bad_ct}"], CT_NAME, "Unsupported input"),
    (["risk", "{missing_ct}"], CT_NAME, "not found"),
    (["risk", "{ct}", "--masks", "{bad_masks}"], "--masks", "Cannot read"),
    (["risk", "{ct}", "--masks", "{missing_masks}"], "--masks", "not found"),
    (["risk", "{ct}", "--out", "{busy}"], "--out", "not a folder"),
    (["report", "{patient_dir}"], "the plan folder (argument PLAN_DIR)", "No plan.json"),
    (["report", "{missing_ct}"], "the plan folder (argument PLAN_DIR)", "Plan folder <folder> not found"),
    (["info", "{bad_ct}"], "the input (argument PATH)", "Unsupported input"),
    (["info", "{missing_ct}"], "the input (argument PATH)", "not found"),
    (["info", "{ct_folder}"], "the input (argument PATH)", "No DICOM image found"),
    # options checked before the CT is read: the CT given is junk, so an error about the option proves it came first
    (["plan", "{bad_ct}", "--level", "T12", "--out", "{new_out}"], "--level",
     "the c2-dens-anterior protocol plans C2 only (T12 asked); drop --level, or choose a vertebroplasty protocol"),
    (["plan", "{bad_ct}", "--protocol", "vertebroplasty-transpedicular", "--level", "T10-T14", "--out", "{new_out}"],
     "--level", "'T10-T14' is not a vertebra level or range"),
    (["plan", "{bad_ct}", "--protocol", "vertebroplasty-transpedicular", "--level-point", "T12:10,-3",
      "--out", "{new_out}"], "--level-point", "needs three finite coordinates; give LEVEL:x,y,z in LPS mm"),
    (["plan", "{bad_ct}", "--protocol", "vertebroplasty-transpedicular", "--level-point", "Q7:1,2,3",
      "--out", "{new_out}"], "--level-point", "'Q7' is not a vertebra level"),
    (["plan", "{bad_ct}", "--level-point", "T12:1,2,3", "--out", "{new_out}"], "--level-point",
     "the c2-dens-anterior protocol finds C2 itself and takes no level point"),
    (["plan", "{bad_ct}", "--masks", "{missing_masks}", "--out", "{new_out}"], "--masks", "not found; check the path"),
]


@pytest.mark.parametrize("argv, argument, what", CASES, ids=[f"{c[0][0]}-{c[1].split()[-1]}-{i}"
                                                             for i, c in enumerate(CASES)])
def test_error_names_the_argument(files, capsys, argv, argument, what):
    err = _err(capsys, [a.format(**files) for a in argv])
    assert err.startswith(f"error: {argument}: "), err
    assert what in err, err


def test_blame_keeps_class_and_exit_code_and_hides_os_paths(tmp_path):
    from osteoplan.cliargs import blame
    from osteoplan.errors import InputError, MaskError

    with pytest.raises(MaskError) as e:
        with blame("--masks"):
            raise MaskError("No mask found in <file>.")
    assert str(e.value) == "--masks: No mask found in <file>." and e.value.exit_code == 2
    with pytest.raises(MaskError) as e:     # never named twice
        with blame("--masks"):
            raise MaskError("--masks: not found.")
    assert str(e.value) == "--masks: not found."
    secret = tmp_path / PATIENT / "x.nii.gz"
    with pytest.raises(InputError) as e:    # an OSError carries the path: it is not shown
        with blame("--out"):
            open(secret)
    assert str(e.value).startswith("--out: cannot be read or written (No such file or directory)")
    assert PATIENT not in str(e.value)


def test_unknown_protocol_names_the_argument(tmp_path, capsys):
    """--protocol nonexistent: one line naming --protocol and the shipped protocols (fresh-user review)."""
    from osteoplan.cli import main

    rc = main(["plan", str(tmp_path / "missing.nii.gz"), "--protocol", "nonexistent", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("error: --protocol: Unknown protocol 'nonexistent'")
    assert "c2-dens-anterior" in err[-1] and not (tmp_path / "o").exists()


@pytest.mark.parametrize("port", ["99999", "0", "eighty"])
def test_serve_port_out_of_range_is_a_usage_error(capsys, port):
    """serve --port 99999 used to end in a uvicorn OverflowError traceback (fresh reviewer): now one usage line."""
    from osteoplan.cli import main

    with pytest.raises(SystemExit) as e:
        main(["serve", "--port", port])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "--port" in err[-1] and "65535" in err[-1] and "Traceback" not in "\n".join(err)


@pytest.mark.parametrize("value", ["-3", "0", "two"])
def test_verify_instrument_number_must_be_one_or_more(capsys, value):
    """verify --instrument -3 was accepted (and, as a Python index, could have picked another instrument); the
    number is the 1-based one of the message: refused as a usage error before anything is read."""
    with pytest.raises(SystemExit) as e:
        main(["verify", "plan-dir", "control.nii.gz", "--instrument", value])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: argument --instrument: ") and "a whole number from 1" in err, err


def _zip_folder(folder, zip_path):
    import zipfile

    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f"{PATIENT}/{f.name}")
    return zip_path


def _info(capsys, path, *extra):
    rc = main(["-q", "info", *extra, str(path)])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("keep, what", [(0.7, "1 truncated or undecodable file ("),
                                        (0.05, "misses InstanceNumber(s) 7 (gap: 1 slice(s) missing at")])
def test_info_series_with_a_truncated_file_is_not_plannable_folder_and_zip_alike(tmp_path, capsys, keep, what):
    """One truncated slice (cut in the pixel data, or in the header): 'info' used to say 'plannable yes' and exit 1
    (fresh reviewer). Now the series is 'not as it stands', the problem names the position of the lost slice, the
    last line (stderr) says why, exit 2 (bad input) -- the same for the folder and the same files zipped."""
    import json

    from osteoplan.imaging import synth

    folder = tmp_path / PATIENT
    s = synth.write_series(folder, shuffle=False)           # 12 slices, z = -4 + 2 k
    synth.truncate_file(s.files[5], keep)                     # slice k = 5 at z = 6 is lost
    zipped = _zip_folder(folder, tmp_path / f"{PATIENT}.zip")
    errs = []
    for path in (folder, zipped):
        rc, out, err = _info(capsys, path)
        assert rc == 2, (path.name, out, err)
        assert "plannable      not as it stands: see the problem above" in out and "plannable      yes" not in out
        problem = [ln for ln in out.splitlines() if ln.startswith("  problem ")]
        assert any(what in ln and "(-6.00, -8.00, 6.00)" in ln for ln in problem), out
        assert err.count("\n") == 1 and err.startswith("error: the input (argument PATH): series 1 is not plannable "
                                                        "as it stands: "), err
        assert what in err and "(-6.00, -8.00, 6.00)" in err, err
        assert "allow_gaps" not in out + err and PATIENT not in out + err and "DUPONT" not in out + err
        errs.append(err)
        rc, out, err = _info(capsys, path, "--json")
        info = json.loads(out)
        assert rc == 2 and info["series"][0]["plannable"] is False and info["chosen"].get("volume") is None
        assert "(-6.00, -8.00, 6.00)" in info["chosen"]["error"] and "allow_gaps" not in out
        rc, out, err = _info(capsys, path, "--allow-gaps")
        if keep == 0.7:  # the option the message names does read it (slice interpolated)
            assert "add --allow-gaps to interpolate an interior slice" in errs[-1]
            assert rc == 0 and err == "" and "12 x 24 x 20 voxels" in out, (out, err)
        else:  # a file whose header is lost is refused even with --allow-gaps: the message does not offer it
            assert "allow-gaps" not in errs[-1] and rc == 2 and "misses InstanceNumber(s) 7" in err
    import re  # the file's name may differ (shown, or hidden as <file>), the rest is the same

    assert re.sub(r"<file>|\w+\.dcm", "NAME", errs[0]) == re.sub(r"<file>|\w+\.dcm", "NAME", errs[1])


def test_truncated_end_slice_does_not_suggest_allow_gaps(tmp_path, capsys):
    """--allow-gaps interpolates an interior slice only: for a lost first/last slice the message does not offer it."""
    from osteoplan.imaging import synth

    s = synth.write_series(tmp_path / "ct", shuffle=False)
    synth.truncate_file(s.files[-1], 0.7)                     # last slice, z = -4 + 22 = 18
    rc, out, err = _info(capsys, tmp_path / "ct")
    assert rc == 2 and "(-6.00, -8.00, 18.00)" in err and "Re-export or re-copy the series." in err
    assert "allow-gaps" not in err and "allow_gaps" not in err


def test_reader_messages_keep_the_api_wording_for_api_callers(tmp_path, capsys):
    """The same message says allow_gaps=True to a Python caller and --allow-gaps on the command line."""
    import inspect

    from osteoplan.cliargs import CLI_WORDING, cli_wording
    from osteoplan.errors import DicomSeriesError
    from osteoplan.imaging import dicom_series, read_volume, synth

    synth.write_series(tmp_path / "ct", depths=[0, 2, 4, 8, 10])   # slice at depth 6 (z = 2) missing
    with pytest.raises(DicomSeriesError) as e:
        read_volume(tmp_path / "ct")
    api = str(e.value)
    assert "pass allow_gaps=True" in api and "--allow-gaps" not in api
    assert cli_wording(api) == api.replace("pass allow_gaps=True", "add --allow-gaps")
    rc = main(["-q", "plan", str(tmp_path / "ct"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err == f"error: {CT_NAME}: {cli_wording(api)}\n" and "allow_gaps" not in err
    src = inspect.getsource(dicom_series)
    from osteoplan.remedies import REMEDIES

    assert CLI_WORDING == tuple((c["api"], c["cli"]) for c in REMEDIES.values())
    for key, clauses in REMEDIES.items():  # the table follows the reader's messages (never stale)
        assert f"'{key}'" in src or f'"{key}"' in src, key
        assert clauses["cli"] not in src, key


@pytest.mark.parametrize("name", ["scan.zip", "scan.zip.part"])
def test_half_downloaded_zip_is_named_damaged_not_unsupported(tmp_path, capsys, name):
    """A zip cut short (download or copy stopped) lacks its table of contents: it was called 'Unsupported input'."""
    from osteoplan.imaging import synth

    s = synth.write_series(tmp_path / PATIENT, n_slices=6)
    whole = _zip_folder(tmp_path / PATIENT, tmp_path / "whole.zip").read_bytes()
    cut = tmp_path / name
    cut.write_bytes(whole[: len(whole) // 2])
    assert len(s.files) == 6 and cut.read_bytes()[:4] == b"PK\x03\x04"
    for argv, argument in ((["plan", str(cut), "--out", str(tmp_path / "o")], CT_NAME),
                           (["info", str(cut)], "the input (argument PATH)"),
                           (["segment", str(cut), "--out", str(tmp_path / "s")], CT_NAME)):
        err = _err(capsys, argv)
        assert err.startswith(f"error: {argument}: The zip <file> is damaged or incomplete"), err
        assert "download or copy it again" in err and "Unsupported" not in err, err
    assert not (tmp_path / "o").exists() and not (tmp_path / "s").exists()


@pytest.mark.parametrize("command", ["plan", "segment", "risk"])
def test_hint_lps_out_of_range_names_option_and_range_without_echoing_it(capsys, command):
    """--hint-lps 1e308 0 0 echoed a 309-digit number (fresh reviewer): now a usage line that names the option and
    the allowed range, before anything is read."""
    argv = [command, "ct.nii.gz", "--hint-lps", "1e308", "0", "0"] + (["--out", "o"] if command != "risk" else [])
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and err.startswith("error: argument --hint-lps: "), err
    assert "from -100000 to 100000" in err and "LPS millimetres" in err, err
    assert len(err) < 200 and "1e308" not in err and "0" * 20 not in err, err


def test_hint_lps_within_range_is_taken_as_given():
    from osteoplan.cliargs import lps_mm

    assert lps_mm("-100000") == -100000.0 and lps_mm("12.5") == 12.5


@pytest.mark.parametrize("point", ["T12:1e308,0,0", "T12:0,-100001,0", "T12:" + "9" * 400 + ",0,0"])
def test_level_point_out_of_range_is_refused_without_echoing_it(files, capsys, point):
    err = _err(capsys, ["plan", files["bad_ct"], "--protocol", "vertebroplasty-transpedicular", "--level-point",
                        point, "--out", files["new_out"]])
    assert err.startswith("error: --level-point: Level point "), err
    assert "9" * 40 not in err and "1e308" not in err and len(err) < 200, err


def test_check_hint_far_point_does_not_echo_it():
    from osteoplan.anatomy.pipeline import check_hint
    from osteoplan.errors import InputError
    from osteoplan.imaging.volume import Volume, axis_aligned_affine

    vol = Volume(np.zeros((4, 5, 6), np.float32), axis_aligned_affine((2.0, 1.0, 1.0)))
    with pytest.raises(InputError) as e:
        check_hint(vol, (1e308, 0.0, 0.0))
    assert "0" * 20 not in str(e.value) and "beyond 100 m" in str(e.value) and "x 0.0..5.0" in str(e.value)
