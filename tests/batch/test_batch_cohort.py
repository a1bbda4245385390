"""Cohort reading, stage timings and the results table of ``osteoplan batch`` (no Dask)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from osteoplan.batch.cohort import Case, read_cohort
from osteoplan.batch.task import RECORD_FIELDS, stage_times
from osteoplan.errors import InputError


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


class TestFolderCohort:
    def test_cases_ct_and_masks_found_by_layout(self, tmp_path):
        """NIfTI next to masks (OpenKBP layout), masks/ sub-folder, DICOM sub-folder, DICOM files in place."""
        _touch(tmp_path / "pt_2" / "ct.nii.gz")
        _touch(tmp_path / "pt_2" / "SpinalCord.nii.gz")
        _touch(tmp_path / "case-a" / "ct.nrrd")
        _touch(tmp_path / "case-a" / "masks" / "vertebrae_C2.nii.gz")
        _touch(tmp_path / "case_b" / "dicom" / "0001.dcm")
        _touch(tmp_path / "case_c" / "IM0001", b"\0" * 128 + b"DICM" + b"\0" * 8)
        _touch(tmp_path / "no_ct" / "notes.txt")  # skipped: no CT
        _touch(tmp_path / ".hidden" / "ct.nii.gz")  # skipped: hidden
        cases = {c.case_id: c for c in read_cohort(tmp_path)}
        assert sorted(cases) == ["case-a", "case_b", "case_c", "pt_2"]
        assert cases["pt_2"] == Case("pt_2", str(tmp_path / "pt_2" / "ct.nii.gz"), str(tmp_path / "pt_2"))
        assert cases["case-a"].masks == str(tmp_path / "case-a" / "masks")
        assert cases["case_b"].ct == str(tmp_path / "case_b" / "dicom") and cases["case_b"].masks is None
        assert cases["case_c"].ct == str(tmp_path / "case_c") and cases["case_c"].masks is None

    def test_lone_ct_has_no_masks(self, tmp_path):
        _touch(tmp_path / "p1" / "ct.nii.gz")
        assert read_cohort(tmp_path) == [Case("p1", str(tmp_path / "p1" / "ct.nii.gz"), None)]

    def test_unusable_folder_name_refused_without_echo(self, tmp_path):
        _touch(tmp_path / "DOE John 1950" / "ct.nii.gz")
        with pytest.raises(InputError) as exc:
            read_cohort(tmp_path)
        assert "DOE" not in str(exc.value) and "study numbers" in str(exc.value)

    def test_empty_or_missing(self, tmp_path):
        with pytest.raises(InputError, match="no case found"):
            read_cohort(tmp_path)
        with pytest.raises(InputError, match="not found"):
            read_cohort(tmp_path / "absent")


class TestCsvCohort:
    def _write(self, path: Path, rows: list[dict]) -> Path:
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        return path

    def test_rows_ids_relative_paths_protocol_level(self, tmp_path):
        p = self._write(tmp_path / "cohort.csv", [
            {"CT": "a/ct.nii.gz", "masks": "a/masks", "protocol": "c2-dens-lateral", "level": "C2", "case": ""},
            {"CT": "/abs/b.nii.gz", "masks": "", "protocol": "my.toml", "level": "", "case": "S-002"},
            {"CT": "", "masks": "", "protocol": "", "level": "", "case": ""},  # blank row: ignored
        ])
        cases = read_cohort(p)
        assert cases == [
            Case("row-0001", str(tmp_path / "a/ct.nii.gz"), str(tmp_path / "a/masks"), "c2-dens-lateral", "C2"),
            Case("S-002", "/abs/b.nii.gz", None, str(tmp_path / "my.toml"), None),
        ]

    def test_no_ct_column_duplicate_ids(self, tmp_path):
        with pytest.raises(InputError, match="no 'ct' column"):
            read_cohort(self._write(tmp_path / "a.csv", [{"path": "x"}]))
        with pytest.raises(InputError, match="appears twice"):
            read_cohort(self._write(tmp_path / "b.csv", [{"ct": "x", "case": "s1"}, {"ct": "y", "case": "s1"}]))
        with pytest.raises(InputError, match=r"row 2 \(case s2\): the 'ct' column is empty"):
            read_cohort(self._write(tmp_path / "c.csv", [{"ct": "x", "case": "s1"}, {"ct": "", "case": "s2"}]))


def test_spec_hash_changes_with_inputs_and_options():
    a = Case("s1", "/d/ct.nii.gz")
    assert a.spec_sha256({"protocol": None}) == Case("s1", "/d/ct.nii.gz").spec_sha256({"protocol": None})
    assert a.spec_sha256({"protocol": None}) != a.spec_sha256({"protocol": "c2-dens-lateral"})
    assert a.spec_sha256() != Case("s1", "/d/ct.nii.gz", "/d/masks").spec_sha256()


def test_stage_times_by_label_rest_is_other():
    steps = [("reading the CT", 0.5), ("building the anatomy (masks + segmentation + C2/dens)", 2.0),
             ("fracture risk (SINS proposal, CT rigidity)", 0.25), ("planning the trajectory (dense search)", 1.0),
             ("writing Slicer segmentation", 0.125)]
    t = stage_times(steps, total_s=4.5)
    assert t == {"t_read_s": 0.5, "t_anatomy_s": 2.0, "t_risk_s": 0.25, "t_search_s": 1.0,
                 "t_other_s": 0.75, "t_total_s": 4.5}


def test_results_table_csv_and_parquet_round_trip(tmp_path):
    import pyarrow.parquet as pq

    from osteoplan.batch.table import summary_text, write_results

    recs = [
        {"case": "s1", "status": "planned", "verdict": "feasible", "exit_code": 0, "screw_length_mm": 40.0,
         "min_clearance_mm": 3.25, "min_clearance_structure": "pharynx", "t_read_s": 1.0, "t_anatomy_s": 2.0,
         "t_risk_s": 0.0, "t_search_s": 1.0, "t_other_s": 1.0, "t_total_s": 5.0, "attempts": 1, "spec_sha256": "x"},
        {"case": "s2", "status": "refused", "error": "AnatomyError: C2 not found", "t_total_s": 1.0, "t_read_s": 1.0,
         "t_anatomy_s": 0.0, "t_risk_s": 0.0, "t_search_s": 0.0, "t_other_s": 0.0, "attempts": 1, "exit_code": 2},
        {"case": "s3", "status": "failed", "error": "worker failure: unexpected KilledWorker", "attempts": 2,
         "exit_code": 1},
    ]
    csv_path, pq_path = write_results(recs, tmp_path)
    rows = list(csv.DictReader(open(csv_path)))
    assert [r["case"] for r in rows] == ["s1", "s2", "s3"] and list(rows[0]) == [n for n, _ in RECORD_FIELDS]
    assert rows[0]["min_clearance_mm"] == "3.25" and rows[1]["verdict"] == "" and "spec_sha256" not in rows[0]
    t = pq.read_table(pq_path).to_pylist()
    assert t[0]["screw_length_mm"] == 40.0 and t[1]["screw_length_mm"] is None and t[2]["attempts"] == 2
    text = summary_text(recs, wall_s=7.0, workers=2, skipped=0)
    assert text.splitlines()[0] == ("BATCH: 3 case(s): 1 planned, 1 refused by plan (its one-line error), 1 failed; "
                                    "wall time 7.0 s with 2 worker(s)")
    assert "verdicts: feasible 1" in text and "refused: AnatomyError 1 (see results.csv)" in text
    assert "FAILED s3: worker failure: unexpected KilledWorker" in text
    assert "sum of case times 6.0 s = 0.86 x the wall time" in text and "retried: 1 case(s)" in text


class TestCommandLineErrors:
    """One line, exit 2, before any cluster is started."""

    @pytest.mark.parametrize("extra,message", [
        (["--memory-limit", "3XB"], "error: --memory-limit: not a size; write it like 3GiB or 3000MB."),
        (["--workers", "0"], "error: argument --workers: a whole number from 1 is needed, not 0"),
        (["--workers", "3", "--scheduler", "tcp://h:8786"], "not allowed with argument"),
        (["--retries", "-1"], "error: argument --retries: a whole number from 0 is needed, not -1"),
    ])
    def test_bad_options(self, tmp_path, capsys, extra, message):
        from osteoplan.cli import main

        _touch(tmp_path / "c" / "s1" / "ct.nii.gz")
        with pytest.raises(SystemExit) if "argument" in message else _nullcontext():
            rc = main(["batch", str(tmp_path / "c"), "--out", str(tmp_path / "o")] + extra)
            assert rc == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1

    def test_out_inside_cohort_and_missing_cohort(self, tmp_path, capsys):
        from osteoplan.cli import main

        _touch(tmp_path / "c" / "s1" / "ct.nii.gz")
        assert main(["batch", str(tmp_path / "c"), "--out", str(tmp_path / "c" / "out")]) == 2
        assert "error: --out: it is inside the cohort folder" in capsys.readouterr().err
        assert main(["batch", str(tmp_path / "absent"), "--out", str(tmp_path / "o")]) == 2
        assert "error: COHORT: not found" in capsys.readouterr().err
        assert not (tmp_path / "o").exists()


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
