"""Listing the OpenKBP case folders of the shared data (used by the benchmarks)."""

from osteoplan.shared_data import openkbp_cases


def test_openkbp_cases_numeric_order_filter_and_limit(tmp_path, monkeypatch):
    for n in (10, 2, 1, 33):
        (tmp_path / "openkbp" / f"pt_{n}").mkdir(parents=True)
    (tmp_path / "openkbp" / "pt_5").write_text("not a folder")
    monkeypatch.setenv("OSTEOPLAN_SHARED_DATA", str(tmp_path))
    assert [p.name for p in openkbp_cases()] == ["pt_1", "pt_2", "pt_10", "pt_33"]  # numeric, not text, order
    assert [p.name for p in openkbp_cases("pt_33,pt_2")] == ["pt_2", "pt_33"]
    assert [p.name for p in openkbp_cases(["pt_10", "pt_99"])] == ["pt_10"]
    assert [p.name for p in openkbp_cases(limit=2)] == ["pt_1", "pt_2"]


def test_openkbp_cases_absent_is_none(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("OSTEOPLAN_SHARED_DATA", str(tmp_path / "data"))
    assert openkbp_cases() is None
