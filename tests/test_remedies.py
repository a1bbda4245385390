"""Each face says what ITS user can do about a CT the reader refused or read with a choice (osteoplan.remedies): the
Python API its arguments, the command line its options, the web app and the batch the step to take (they have no
gap, resampling or series option); never an option the face does not have."""

from __future__ import annotations

import argparse

import pytest

from osteoplan.remedies import FACES, REMEDIES, for_face, remedy_clause


def _options(command: str) -> set[str]:
    from osteoplan.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {o for a in action.choices[command]._actions for o in a.option_strings}
    raise AssertionError("no subcommands")


def test_every_remedy_has_every_face_and_names_only_what_the_face_offers():
    from pathlib import Path

    import osteoplan.web

    plan, batch = _options("plan"), _options("batch")
    form = (Path(osteoplan.web.__file__).parent / "templates" / "plan_job_new.html").read_text()
    assert "allow_gaps" not in form and "allow-gaps" not in form and "resample" not in form
    for key, clauses in REMEDIES.items():
        assert set(clauses) == set(FACES), key
        assert key.split("_interior")[0] in clauses["api"] and "--" not in clauses["api"], key
        cli_opts = {w.strip("'.,") for w in clauses["cli"].split() if w.startswith("--")}
        assert cli_opts and cli_opts <= plan, key
        # the web form has no gap / resampling / series field: the web clause names no option nor argument
        assert "--" not in clauses["web"] and "=" not in clauses["web"] and "_" not in clauses["web"], key
        # the batch has none either (nor a CSV column): an option it names is plan's, for planning the case alone
        batch_opts = {w.strip("'.,") for w in clauses["batch"].split() if w.startswith("--")}
        assert batch_opts <= plan and not batch_opts & batch and "_" not in clauses["batch"], key
        if batch_opts:
            assert "plan this case alone with 'osteoplan plan CT --" in clauses["batch"], key
    with pytest.raises(ValueError):
        remedy_clause("allow_gaps", "fax")
    assert remedy_clause(None, "web") is None


def test_a_gap_error_said_by_each_face(tmp_path, capsys):
    """One refused series (slice at z = 2 mm missing): the API, the command line, the web app's job error (the
    worker rewrites the command line's line) and the batch's record each say their own remedy."""
    from osteoplan.batch.task import describe_error
    from osteoplan.cli import main
    from osteoplan.errors import DicomSeriesError
    from osteoplan.imaging import read_volume, synth

    synth.write_series(tmp_path / "DOE_JANE", depths=[0, 2, 4, 8, 10])
    with pytest.raises(DicomSeriesError) as e:
        read_volume(tmp_path / "DOE_JANE")
    api = str(e.value)
    assert e.value.remedy == "allow_gaps" and [g.z_lps_mm for g in e.value.gap_notes] == [pytest.approx((2.0,))]
    assert "(-6.00, -8.00, 2.00) mm LPS" in api and api.endswith("; to interpolate across the gap instead, pass "
                                                                 "allow_gaps=True.")
    rc = main(["-q", "plan", str(tmp_path / "DOE_JANE"), "--out", str(tmp_path / "o")])
    cli = capsys.readouterr().err.strip().removeprefix("error: ")
    assert rc == 2 and cli.endswith("; to interpolate across the gap instead, add --allow-gaps.")
    web = for_face(cli, "web")  # what osteoplan.faces.worker does with the child's error line
    assert web.endswith("; the web app reads only series without gaps: start again with the complete series.")
    batch, retry, code = describe_error(e.value)
    assert batch.endswith("; the batch does not interpolate: to do so, plan this case alone with 'osteoplan plan CT "
                          "--allow-gaps'.") and not retry and code == 2
    for text in (web, batch):
        assert "allow_gaps" not in text and "(-6.00, -8.00, 2.00) mm LPS" in text
    assert "--allow-gaps" not in web
    assert all("DOE" not in t for t in (api, cli, web, batch))


def test_uneven_spacing_error_said_by_each_face(tmp_path):
    from osteoplan.batch.task import describe_error
    from osteoplan.cliargs import cli_wording
    from osteoplan.errors import DicomSeriesError
    from osteoplan.imaging import read_volume, synth

    synth.write_series(tmp_path, depths=[0, 2, 4, 5, 6, 8, 11, 14])
    with pytest.raises(DicomSeriesError) as e:
        read_volume(tmp_path)
    api = str(e.value)
    assert "measured steps: 1, 2, 3 mm" in api and "resample_uniform=True" in api
    assert e.value.remedy == "resample_uniform"
    assert "with --resample-uniform, or choose another series" in cli_wording(api)
    web = for_face(cli_wording(api), "web")
    assert "The web app does not resample" in web and "resample-uniform" not in web and "resample_uniform" not in web
    assert "plan this case alone with 'osteoplan plan CT --resample-uniform'" in describe_error(e.value)[0]


def test_batch_record_of_a_gap_case_says_the_batchs_remedy(tmp_path):
    """A cohort case whose DICOM series lacks a slice: refused, its record's error says where and what the batch
    user can do; nothing names a file."""
    from osteoplan.batch.cohort import Case
    from osteoplan.batch.task import plan_case
    from osteoplan.imaging import synth

    synth.write_series(tmp_path / "cohort" / "case01" / "DOE_JANE", depths=[0, 2, 4, 8, 10])
    rec = plan_case(Case("case01", str(tmp_path / "cohort" / "case01" / "DOE_JANE")), str(tmp_path / "out"),
                    {"no_report": True})
    assert rec["status"] == "refused" and rec["exit_code"] == 2
    assert "1 slice(s) missing at (-6.00, -8.00, 2.00) mm LPS" in rec["error"]
    assert "plan this case alone with 'osteoplan plan CT --allow-gaps'" in rec["error"]
    assert "allow_gaps" not in rec["error"] and "DOE" not in rec["error"]


def test_web_plan_page_says_the_web_remedy_for_the_series_choice():
    """The web app's plan pages (plan_key_numbers' warnings) write a plan.json's image notes for the web."""
    from osteoplan.imaging.reader_notes import ReaderNote
    from osteoplan.planning.image_warnings import image_notes
    from osteoplan.web.views import _warning_lines

    choice = ReaderNote("series_chosen", n_images=113, n_series=2, axial=True, alike_series=(2,), remedy="series_uid")
    from types import SimpleNamespace

    [n] = image_notes(SimpleNamespace(reader_notes=(choice,), warnings=(str(choice),)))
    plan = {"warnings": [n.text_en, "Coarse CT (2.0 mm voxels)"], "image_notes": [n.model_dump(mode="json")]}
    lines = _warning_lines(plan)
    assert lines[0] == ("CT image: read the largest axial CT series (113 images) of 2 series found; to use another, "
                        "start again with a zip holding only that series (or pick it from the PACS). Series 2 share "
                        "its study, frame of reference, orientation, image size and pixel spacing: if one holds slices "
                        "of this series whose SeriesInstanceUID was damaged, the volume lacks them")
    assert lines[1] == "Coarse CT (2.0 mm voxels)"


def test_batch_log_line_of_the_plan_command_is_rewritten_for_the_batch():
    """The plan command's printed summary (kept as the case's batch log) says the batch's remedy, not --series-uid."""
    line = ("warning: CT image: read the largest axial CT series (113 images) of 2 series found; pass --series-uid to "
            "choose another")
    out = for_face(line, "batch")
    assert out == ("warning: CT image: read the largest axial CT series (113 images) of 2 series found; to plan on "
                   "another, give this case a folder or zip holding only that series")
    assert for_face(out, "batch") == out and for_face(out, "cli") == line  # one table, both ways
