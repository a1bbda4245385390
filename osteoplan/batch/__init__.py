"""Plan whole cohorts: one ``osteoplan plan`` per case on Dask distributed (``osteoplan batch``).

- :mod:`~osteoplan.batch.cohort`: read a cohort (folder of case folders, or CSV).
- :mod:`~osteoplan.batch.task`: the per-case task (the ``plan`` command's own handler) and its record.
- :mod:`~osteoplan.batch.runner`: the Dask driver (LocalCluster or an existing scheduler, retries, resume).
- :mod:`~osteoplan.batch.table`: results table (CSV + Parquet) and summary.

Dask is imported only when a batch runs.
"""

from osteoplan.batch.cohort import Case, read_cohort
from osteoplan.batch.table import summary_text, write_results
from osteoplan.batch.task import RECORD_FIELDS, plan_case

__all__ = ["Case", "read_cohort", "plan_case", "RECORD_FIELDS", "write_results", "summary_text", "run_batch"]


def run_batch(*args, **kwargs):
    """See :func:`osteoplan.batch.runner.run_batch` (imported on use: it needs Dask)."""
    from osteoplan.batch.runner import run_batch as _run

    return _run(*args, **kwargs)
