"""The team's annual activity report as a PDF (issue 15): activity by procedure type, month, operator and site,
outcomes (pain before / after, length of stay, collar removal) and adverse events per classification.

Aggregates only (no patient-level line, no identity). Built from :func:`osteoplan.workflow.stats.compute_statistics`
(which logs the read) with the same tables as the statistics page, rendered by Jinja2 and WeasyPrint (the PDF
engine of :mod:`osteoplan.export.report` and of the information sheet).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session

from osteoplan.errors import DependencyError
from osteoplan.workflow import models as m
from osteoplan.workflow import stats

TEMPLATES = Path(__file__).parent / "templates"


def _png_uri(fn, rows) -> str:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="osteoplan-annual-") as d:
        path = Path(d) / "plot.png"
        fn(rows, path)
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def report_html(tables: dict[str, list[dict[str, Any]]], year: int, team: str = "Interventional radiology",
                generated: dt.date | None = None) -> str:
    """The report as HTML text (figures embedded as PNG data URIs)."""
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]))
    per_year = next((r for r in tables["procedures_per_year"] if r["year"] == year), None)
    ctx = {
        "team": team, "year": year, "generated": (generated or dt.date.today()).isoformat(),
        "t": tables, "per_year": per_year, "type_labels": m.PROCEDURE_TYPE_LABELS, "types": m.PROCEDURE_TYPES,
        "classifications": [c for c in m.AE_CLASSIFICATIONS
                            if any(r["classification"] == c for r in tables["complications"])],
        "fig_types": _png_uri(stats.plot_activity_by_type, tables["activity_by_type_year"]),
        "fig_pain": _png_uri(stats.plot_pain, tables["pain_over_time"]),
        "fig_ae": _png_uri(stats.plot_complications, tables["complications"]),
    }
    return env.get_template("annual_report.html.j2").render(**ctx)


def annual_report_pdf(session: Session, actor: m.User | None, year: int, team: str = "Interventional radiology",
                      generated: dt.date | None = None) -> bytes:
    """PDF bytes of the annual report of *year* (procedures done that year). Logs the statistics read.

    Raises
    ------
    DependencyError
        WeasyPrint or its system libraries are missing.
    """
    tables = stats.compute_statistics(session, actor, year)
    html = report_html(tables, year, team, generated)
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:
        raise DependencyError(f"the PDF report needs WeasyPrint and its system libraries ({type(exc).__name__}); "
                              "install them (see README)") from None
    buf = io.BytesIO()
    HTML(string=html, base_url=str(TEMPLATES)).write_pdf(buf)
    return buf.getvalue()
