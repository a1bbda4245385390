"""The per-case Markdown table of benchmarks/openkbp_anatomy.py (figures quoted in the issue notes)."""

import importlib.util
from pathlib import Path


def _bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "openkbp_anatomy.py"
    spec = importlib.util.spec_from_file_location("openkbp_anatomy_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_markdown_table_one_row_per_case_with_reasons():
    rows = [
        {"case": "pt_1", "c2": "found", "confidence": 0.893, "ai_apex_mm": 38.9, "cord_in_canal_pct": 100.0,
         "cord_seen_in_canal_pct": 100.0, "cord_seen_pct": 100.0},
        {"case": "pt_170", "c2": "not found", "reason": "C2 NOT located: no canal | so no C2",
         "cord_in_canal_pct": 0.0, "cord_seen_in_canal_pct": 0.0, "cord_seen_pct": 31.6,
         "larynx_overlap_pct": 0.0, "cord_note": "spinal_canal: NOT segmented (rings over 8 mm)"},
    ]
    md = _bench().markdown_table(rows, ["cases: 2; C2 found: 1", "  second line"])
    lines = md.splitlines()
    assert "- cases: 2; C2 found: 1" in lines and "- second line" in lines
    table = [ln for ln in lines if ln.startswith("| pt_")]
    assert table[0] == "| pt_1 | found | 0.893 | 38.9 | 100.0 | 100.0 | 100.0 |  |  |  |"
    # the 'C2 NOT located: ' prefix is dropped, a '|' inside a reason cannot break the table
    assert table[1] == ("| pt_170 | not found |  |  | 0.0 | 0.0 | 31.6 | 0.0 | no canal / so no C2 | "
                        "spinal_canal: NOT segmented (rings over 8 mm) |")
    header = next(ln for ln in lines if ln.startswith("| case"))
    assert header.count("|") == table[1].count("|") == 11
