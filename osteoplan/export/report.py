"""The plan report: one self-contained HTML file (images embedded) and its PDF (WeasyPrint).

All visible strings come from :mod:`osteoplan.views.i18n` (English and French). The header is
pseudonymous: a case label chosen by the user (restricted to letters, digits, ``-`` and ``_``), the
date, the software and protocol versions; never a patient name, ID or birth date (the plan holds none).
"""

from __future__ import annotations

import base64
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from osteoplan.atomic import atomic_write_bytes, atomic_write_text
from osteoplan.errors import DependencyError, InputError, OsteoplanError
from osteoplan.views.colors import STATUS_COLORS, hex_color, structure_color
from osteoplan.export.risk_table import risk_lines, sins_rows, sins_total_text
from osteoplan.views.i18n import LANGS, t, translate_text

#: Image names in the report, by section (names from :func:`osteoplan.views.render_all`).
REFORMAT_IMAGES = ("axial", "coronal", "sagittal", "path_oblique", "path_oblique_orthogonal", "down_path")
DRR_IMAGES = ("drr_ap_open_mouth", "drr_lateral", "drr_bullseye", "drr_progression")

_TEMPLATE_DIR = Path(__file__).with_name("templates")


def safe_case_label(label: str | None) -> str:
    """A pseudonymous case label: letters, digits, ``-``, ``_`` (max 40); anything else becomes ``case``.

    Labels that look like identifiers (a run of 5+ digits, e.g. a patient ID) are refused too.
    """
    if not label:
        return "case"
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", label) or re.search(r"\d{5,}", label):
        return "case"
    return label


def _data_uri(png: bytes | str | os.PathLike) -> str:
    data = png if isinstance(png, (bytes, bytearray)) else Path(png).read_bytes()
    return "data:image/png;base64," + base64.b64encode(bytes(data)).decode("ascii")


def _fmt(v: Any, unit: str, nd: int = 1) -> str:
    if v is None:
        return "—"
    return f"{float(v):.{nd}f} {unit}".strip()


def _source_text(source: str | None, lang: str) -> str:
    """Mask source for the report; a provided mask's file name is not shown (it may be patient-derived)."""
    if not source:
        return "—"
    if source.startswith("provided"):
        return t("provided_mask", lang)
    return source


def image_caption(name: str, lang: str = "en", path: Any = None) -> str:
    """Caption of a report image: its title and its orientation in words.

    The orientation is computed from the same plane / C-arm geometry the image is drawn with
    (:func:`osteoplan.views.reformat.view_plane`, :func:`osteoplan.views.drr.standard_geometry`), so the
    caption cannot disagree with the picture: sagittal and lateral "anterior left, head up"; axial, coronal
    and AP "patient left on image right". Views along the path need the path (``path``, a
    :class:`~osteoplan.views.geometry.PathSpec`); without it they are called oblique (the letters at the
    image edges give the directions).
    """
    import numpy as np

    from osteoplan.views.drr import standard_geometry
    from osteoplan.views.reformat import STANDARD_AXES, view_plane
    from osteoplan.views.render import orientation_caption

    title = t(f"view_{name}" if name in REFORMAT_IMAGES else name, lang)
    orient = t("orient_oblique", lang)
    if name in STANDARD_AXES:
        orient = orientation_caption(*STANDARD_AXES[name], lang=lang)
    elif name in ("drr_ap_open_mouth", "drr_lateral"):
        geo = standard_geometry(name[4:], np.zeros(3))
        orient = orientation_caption(geo.detector_u, geo.detector_v, lang=lang)
    elif path is not None and name in REFORMAT_IMAGES:
        plane = view_plane(name, path)
        orient = orientation_caption(plane.u, plane.v, lang=lang)
    elif path is not None and name in DRR_IMAGES:
        view = name[4:]
        geo = standard_geometry(view, path.target_lps_mm, path.direction,
                                beam_direction=getattr(path, "beam_directions", {}).get(view))
        orient = orientation_caption(geo.detector_u, geo.detector_v, lang=lang)
    return f"{title} — {orient}"


def _caption_path(plan: Any):
    """The PathSpec the images were drawn for (best trajectory, else the near miss), or None."""
    from osteoplan.views.geometry import near_miss_pathspec, pathspec_from_plan

    try:
        return pathspec_from_plan(plan) if plan.best is not None else near_miss_pathspec(plan)
    except OsteoplanError:
        return None


def clearance_rows(plan: Any, lang: str = "en") -> list[dict[str, Any]]:
    """Rows of the clearance table for the best trajectory (or the near miss), plus not-assessed structures.

    Every structure the plan lists as not assessed gets a row with status ``not_assessed``, even
    when the planner did not emit a check for it.
    """
    best = plan.best
    checks = list(best.clearances) if best is not None else []
    if best is None and plan.infeasibility is not None and plan.infeasibility.best_near_miss is not None:
        checks = list(plan.infeasibility.best_near_miss.clearances)
    rows = []
    seen = set()
    for c in checks:
        seen.add(c.structure)
        # distances are computed up to a cap: the value is a lower bound, shown as "≥ x mm"
        capped = bool(c.note) and c.note.startswith("at least this much")
        rows.append({
            "structure": c.structure, "label": t(c.structure, lang), "color": hex_color(structure_color(c.structure)),
            "category": t(f"category_{c.category}", lang),
            "margin": _fmt(c.margin_mm, "mm"),
            "clearance": ((("≥ " if capped else "") + _fmt(c.clearance_mm, "mm")) if c.segmented else "—"),
            "status": c.status, "status_label": t(f"status_{c.status}", lang).upper()
            if c.status in ("fail", "not_assessed") else t(f"status_{c.status}", lang),
            "displacement": _fmt(c.displacement_needed_mm, "mm"),
            "source": _source_text(c.source, lang) + (f" ({translate_text(c.note, lang)})" if c.note and not capped else ""),
        })
    for s in plan.not_assessed:
        if s in seen:
            continue
        rows.append({"structure": s, "label": t(s, lang), "color": hex_color(structure_color(s)), "category": "—",
                     "margin": "—", "clearance": "—", "status": "not_assessed",
                     "status_label": t("status_not_assessed", lang).upper(), "displacement": "—", "source": "—"})
    return rows


def build_report_html(plan: Any, images: Mapping[str, bytes | str | os.PathLike] | None = None, *,
                      lang: str = "en", case_label: str | None = None, generated_utc: str | None = None) -> str:
    """Render the report as one self-contained HTML string (images embedded as base64 PNG).

    Parameters
    ----------
    plan : osteoplan.planning.model.Plan
        The plan to report.
    images : mapping name -> PNG bytes or path, optional
        Names from :func:`osteoplan.views.render_all` (``axial``, ``drr_lateral``, ``view_3d``...).
    lang : ``"en"`` or ``"fr"``
    case_label : str, optional
        Pseudonymous case label (see :func:`safe_case_label`).
    generated_utc : str, optional
        Timestamp shown in the header (default: now, UTC).

    Raises
    ------
    InputError
        Unknown language.
    """
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    if lang not in LANGS:
        raise InputError(f"Unknown report language '{lang}'; use one of {', '.join(LANGS)}.")
    images = dict(images or {})
    env = Environment(loader=FileSystemLoader(str(_TEMPLATE_DIR)), autoescape=select_autoescape(["html", "j2"]))
    tmpl = env.get_template("report.html.j2")
    best = plan.best
    points = []
    if best is not None:
        for key, p, vx in (("skin_entry", best.skin_entry_lps_mm, best.skin_entry_voxel_kji),
                           ("bone_entry", best.bone_entry_lps_mm, best.bone_entry_voxel_kji),
                           ("target", best.target_lps_mm, best.target_voxel_kji)):
            points.append((key, p, "(" + ", ".join(f"{v:.1f}" for v in vx) + ")"))
    leak_text = "—"
    if plan.cement is not None:
        breached = [w for w in plan.cement.walls if w.breached and w.leak_risk]
        leak_text = ", ".join(t(w.neighbour, lang) for w in breached) if breached else t("leak_none", lang)
        if plan.cement.leak_risk is None:
            leak_text = t("status_not_assessed", lang)
    ct = plan.ct
    ct_text = f"{ct.shape_kji[0]}×{ct.shape_kji[1]}×{ct.shape_kji[2]}, " + \
        "×".join(f"{s:.2f}" for s in ct.spacing_mm) + " mm" + (f", {ct.source_format}" if ct.source_format else "")
    guidance = (best.guidance if best is not None and best.guidance is not None else plan.guidance)
    cap_path = _caption_path(plan) if images else None
    return tmpl.render(
        t=lambda k: t(k, lang), lang=lang, plan=plan, best=best, points=points,
        case_label=safe_case_label(case_label),
        generated=generated_utc or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        side=t(plan.side, lang) if plan.side else "—", ct_text=ct_text,
        mm=lambda v: _fmt(v, "mm"), deg=lambda v: _fmt(v, "°"), ml=lambda v: _fmt(v, "mL"),
        clearance_rows=clearance_rows(plan, lang),
        assessed=", ".join(t(s, lang) for s in plan.assessed) or t("none", lang),
        not_assessed=", ".join(t(s, lang) for s in plan.not_assessed) or t("none", lang),
        leak_text=leak_text, guidance=guidance, warnings=[translate_text(w, lang) for w in plan.warnings],
        tr=lambda text: translate_text(text, lang),
        any_capped=any(r["clearance"].startswith("≥") for r in clearance_rows(plan, lang)),
        risk_lines=risk_lines(plan.risk, lang), risk_rows=sins_rows(plan.risk, lang),
        risk_total=sins_total_text(plan.risk, lang),
        alternatives=list(plan.trajectories[1:]),
        colors={k: hex_color(v) for k, v in STATUS_COLORS.items()},
        reformats=[(n, _data_uri(images[n]), image_caption(n, lang, cap_path)) for n in REFORMAT_IMAGES if n in images],
        drrs=[(n, _data_uri(images[n]), image_caption(n, lang, cap_path)) for n in DRR_IMAGES if n in images],
        view3d=_data_uri(images["view_3d"]) if "view_3d" in images else None,
    )


def html_to_pdf(html: str) -> bytes:
    """PDF bytes of an HTML string (WeasyPrint).

    Raises
    ------
    DependencyError
        WeasyPrint or its system libraries (Pango) are missing.
    """
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: missing Pango/cairo libraries
        raise DependencyError(f"PDF output needs WeasyPrint and its system libraries ({type(exc).__name__}); "
                              "install them (see README) or use --no-pdf.") from None
    return HTML(string=html, base_url=str(_TEMPLATE_DIR)).write_pdf()


def pdf_pages_to_png(pdf: bytes, scale: float = 1.5) -> list[bytes]:
    """Render each PDF page to PNG bytes (pypdfium2), to look at or test the PDF."""
    import io

    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    out = []
    for i in range(len(doc)):
        img = doc[i].render(scale=scale).to_pil()
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out.append(buf.getvalue())
    doc.close()
    return out


def write_report(out_dir: str | os.PathLike, plan: Any, images: Mapping[str, Any] | None = None, *,
                 lang: str = "en", case_label: str | None = None, pdf: bool = True,
                 basename: str = "report") -> dict[str, Path]:
    """Write ``report.html`` (and ``report.pdf``) into *out_dir*, atomically.

    Returns
    -------
    dict
        ``{"html": path, "pdf": path}`` (``pdf`` only when written).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html = build_report_html(plan, images, lang=lang, case_label=case_label)
    written = {"html": out / f"{basename}.html"}
    atomic_write_text(written["html"], html)
    if pdf:
        written["pdf"] = out / f"{basename}.pdf"
        atomic_write_bytes(written["pdf"], html_to_pdf(html))
    return written
