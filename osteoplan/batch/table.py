"""The results table of a batch (CSV and Parquet) and its printed summary."""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from osteoplan.batch.task import RECORD_FIELDS

__all__ = ["write_results", "summary_text", "RESULT_FILES"]

#: File names of the table under OUT.
RESULT_FILES = ("results.csv", "results.parquet", "summary.txt")


def _rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{name: r.get(name) for name, _ in RECORD_FIELDS} for r in records]


def write_results(records: Sequence[dict[str, Any]], out: str | Path) -> tuple[Path, Path]:
    """Write ``out/results.csv`` and ``out/results.parquet`` (one row per case, :data:`RECORD_FIELDS`), atomically.

    Returns
    -------
    (Path, Path)
        The CSV and the Parquet file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from osteoplan.atomic import atomic_file, atomic_write_text

    out = Path(out)
    rows = _rows(records)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[n for n, _ in RECORD_FIELDS], lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: "" if v is None else v for k, v in row.items()})
    csv_path = out / RESULT_FILES[0]
    atomic_write_text(csv_path, buf.getvalue())
    types = {"string": pa.string(), "int": pa.int64(), "float": pa.float64()}
    schema = pa.schema([(n, types[t]) for n, t in RECORD_FIELDS])
    table = pa.Table.from_pylist(rows, schema=schema)
    pq_path = out / RESULT_FILES[1]
    with atomic_file(pq_path, "wb") as fh:
        pq.write_table(table, fh)
    return csv_path, pq_path


def _med(values: list[float]) -> str:
    return "-" if not values else f"{statistics.median(values):.1f}"


def summary_text(records: Sequence[dict[str, Any]], *, wall_s: float, workers: int, skipped: int) -> str:
    """The batch summary: cases planned/failed, verdict counts, per-stage median times, wall time, failures."""
    planned = [r for r in records if r.get("status") == "planned"]
    refused = [r for r in records if r.get("status") == "refused"]
    failed = [r for r in records if r.get("status") not in ("planned", "refused")]
    ran = [r for r in records if r.get("t_total_s") is not None]
    L = [f"BATCH: {len(records)} case(s): {len(planned)} planned, {len(refused)} refused by plan (its one-line "
         f"error), {len(failed)} failed"
         + (f" ({skipped} already done, kept)" if skipped else "")
         + f"; wall time {wall_s:.1f} s with {workers} worker(s)"]
    counts = Counter(r.get("verdict") for r in planned)
    if counts:
        L.append("  verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])))
    if ran:
        stages = ("read", "anatomy", "risk", "search", "other", "total")
        L.append("  per case, median s: " + ", ".join(
            f"{s} {_med([r[f't_{s}_s'] for r in ran if r.get(f't_{s}_s') is not None])}" for s in stages))
        busy = sum(r["t_total_s"] for r in ran)
        L.append(f"  sum of case times {busy:.1f} s = {busy / max(wall_s, 1e-9):.2f} x the wall time (cases in "
                 "progress at once, on average; with N workers at most N)")
    lost = [r["case"] for r in records if r.get("workers_lost")]
    if lost:
        L.append(f"  worker died under {len(lost)} case(s), run again: " + ", ".join(lost[:20])
                 + (" ..." if len(lost) > 20 else ""))
    retried = [r for r in records if (r.get("attempts") or 1) > 1]
    if retried:
        L.append(f"  retried: {len(retried)} case(s)")
    if refused:
        reasons = Counter(str(r.get("error")).split(":")[0] for r in refused)
        L.append("  refused: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common()) + " (see results.csv)")
    for r in failed[:20]:
        L.append(f"  FAILED {r['case']}: {r.get('error')}")
    if len(failed) > 20:
        L.append(f"  ... and {len(failed) - 20} more failed case(s): see results.csv")
    return "\n".join(L)
