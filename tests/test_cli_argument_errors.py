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
    (["plan", "{ct}", "--out", "{busy}"], "--out", "osteoplan did not write"),
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
    (["report", "{missing_ct}"], "the plan folder (argument PLAN_DIR)", "not found"),
    (["info", "{bad_ct}"], "the input (argument PATH)", "Unsupported input"),
    (["info", "{missing_ct}"], "the input (argument PATH)", "not found"),
    (["info", "{ct_folder}"], "the input (argument PATH)", "No DICOM image found"),
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
