"""Activity and outcome statistics of the registry: tables (lists of dicts), CSV and matplotlib PNG plots.

All tables count live (not soft-deleted) records of live patients, and procedures with status ``done``.
Optional ``year`` restricts to procedures done that year (follow-ups and events follow their procedure).

Definitions
-----------
- Consolidation type of a procedure (:func:`osteoplan.workflow.service.consolidation_type`): screw + cement,
  screw alone, cement alone, other (from what was logged, not what was decided).
- Complex consolidation (:func:`osteoplan.workflow.service.is_complex`): a screw, hydrodissection, or more than
  one level in the session; simple = cementoplasty of one level without hydrodissection. A project definition:
  no published one was found.
- Technical success rate: successes / procedures with the field filled (unknown ones are counted apart).
- Complication rate by grade: procedures with at least one event of that (classification, grade) / done
  procedures, in %; classifications are never mixed (CIRSE 2017 and SIR rows are separate).
- Pain NRS per timepoint: median and interquartile range (Q1, Q3) with numpy's default linear interpolation
  (Hyndman & Fan type 7).
- Length of stay: discharge date - procedure date, days. Collar removal delay: collar removal date - procedure
  date, days (procedures with a collar removal date).
- Procedure type (issue 15): the type stored on the procedure (:data:`osteoplan.workflow.models.PROCEDURE_TYPES`:
  vertebroplasty, kyphoplasty, C2 screw, vertebral screw + cement, pelvic/femoral screw + cement, long-bone and
  pelvic cementoplasty, other), inferred from site and material for rows without one
  (:func:`osteoplan.workflow.models.infer_procedure_type`).
- Pain before / after (``outcomes_by_type``): baseline NRS vs the 1-month NRS of the same procedure (pairs only);
  change = 1 month - baseline (negative = relief), median.
- Placement accuracy (issue 13; ``accuracy_postop_by_type``, ``accuracy_intraop_by_type``): the control-CT checks
  stored with each procedure (:class:`osteoplan.workflow.models.Verification`, measured by ``osteoplan verify`` in
  the planning CT's frame). A procedure counts once per stage: its LATEST live check of that stage (a control CT
  repeated after a correction replaces the earlier one). Post-operative (stage ``screw``): entry error, tip error
  (mm) and angle error (deg) of the screw against the planned screw, median and 95th percentile (numpy's linear
  interpolation, Hyndman & Fan type 7: with few cases the 95th percentile lies between the two largest values),
  and the breach grades (Gertzbein-Robbins, Spine 1990;15:11-14, 2 mm steps, adapted to the dens screw and not
  validated for it; "not assessed" when the vertebra was not segmented). Intra-operative (trocar, pin): distance
  from the tip to the planned path (mm), angle to the planned path (deg) and lateral offset at the target depth
  if pushed on (mm). The stages are never pooled: a trocar tip and a screw are different figures.
- Adverse events are counted per classification: CIRSE (2017, 2026) and SIR grades are different scales and are
  never put in one column or on one plot axis (:func:`plot_complications` draws one panel per classification).
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from osteoplan.workflow import models as m
from osteoplan.workflow import service as sv

TYPES = ("screw_cement", "screw_alone", "cement_alone", "other")


def _live(rows):
    return [r for r in rows if r.deleted_at is None]


def done_procedures(patients: Iterable[m.Patient], year: int | None = None) -> list[m.Procedure]:
    """Live, done procedures of live patients (optionally of one year), in date order."""
    out = []
    for p in patients:
        if p.deleted_at is not None:
            continue
        for x in _live(p.procedures):
            if x.status == "done" and x.procedure_date and (year is None or x.procedure_date.year == year):
                out.append(x)
    return sorted(out, key=lambda x: (x.procedure_date, x.id))


def region_of(site_kind: str, site: str) -> str:
    """cervical / thoracic / lumbar / sacral / long bone or pelvis (bone)."""
    if site_kind == "vertebra":
        return {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "sacral"}.get(site[:1], "other spine")
    return "bone"


def _describe(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "median": None, "q1": None, "q3": None, "mean": None, "min": None, "max": None}
    a = np.asarray(values, dtype=float)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"n": int(a.size), "median": float(med), "q1": float(q1), "q3": float(q3),
            "mean": round(float(a.mean()), 3), "min": float(a.min()), "max": float(a.max())}


def procedures_per_year(procs: Sequence[m.Procedure]) -> list[dict[str, Any]]:
    """Per year: total, simple, complex and per consolidation type."""
    by: dict[int, Counter] = defaultdict(Counter)
    for x in procs:
        c = by[x.procedure_date.year]
        c["total"] += 1
        c["complex" if sv.is_complex(x) else "simple"] += 1
        c[sv.consolidation_type(x)] += 1
    return [{"year": y, "total": c["total"], "simple": c["simple"], "complex": c["complex"],
             **{t: c[t] for t in TYPES}} for y, c in sorted(by.items())]


def procedures_per_type(procs: Sequence[m.Procedure]) -> list[dict[str, Any]]:
    """Per consolidation type x complexity."""
    c = Counter((sv.consolidation_type(x), "complex" if sv.is_complex(x) else "simple") for x in procs)
    return [{"consolidation_type": t, "complexity": k, "n": c[(t, k)]}
            for t in TYPES for k in ("simple", "complex") if c[(t, k)]]


def procedures_per_site(procs: Sequence[m.Procedure]) -> list[dict[str, Any]]:
    """Per treated site (lesion site), with its region, most frequent first."""
    c = Counter((region_of(x.lesion.site_kind, x.lesion.site), x.lesion.site) for x in procs)
    return [{"region": r, "site": s, "n": n} for (r, s), n in sorted(c.items(), key=lambda t: (-t[1], t[0]))]


def technical_success(procs: Sequence[m.Procedure]) -> list[dict[str, Any]]:
    """One row: procedures, successes, failures, unknown, rate % (of known)."""
    ok = sum(1 for x in procs if x.technical_success is True)
    ko = sum(1 for x in procs if x.technical_success is False)
    unk = len(procs) - ok - ko
    return [{"procedures": len(procs), "success": ok, "failure": ko, "unknown": unk,
             "rate_percent": round(100.0 * ok / (ok + ko), 1) if ok + ko else None}]


def complications(procs: Sequence[m.Procedure]) -> list[dict[str, Any]]:
    """Per (classification, grade): events, procedures with >= 1 such event, rate % of done procedures."""
    ids = {x.id for x in procs}
    events: Counter = Counter()
    with_: dict[tuple[str, str], set[int]] = defaultdict(set)
    for x in procs:
        for a in _live(x.patient.adverse_events):
            if a.procedure_id in ids and a.procedure_id == x.id:
                key = (a.classification, a.grade)
                events[key] += 1
                with_[key].add(x.id)
    rows = []
    for (cl, g) in sorted(events, key=lambda k: (k[0], m.AE_CLASSIFICATIONS.get(k[0], ()).index(k[1])
                                               if k[1] in m.AE_CLASSIFICATIONS.get(k[0], ()) else 99)):
        n = len(with_[(cl, g)])
        rows.append({"classification": cl, "grade": g, "events": events[(cl, g)], "procedures_with_event": n,
                     "rate_percent": round(100.0 * n / len(procs), 1) if procs else None})
    any_n = len(set().union(*with_.values())) if with_ else 0
    rows.append({"classification": "any", "grade": "any", "events": sum(events.values()),
                 "procedures_with_event": any_n,
                 "rate_percent": round(100.0 * any_n / len(procs), 1) if procs else None})
    return rows


def pain_over_time(procs: Sequence[m.Procedure]) -> list[dict[str, Any]]:
    """Pain NRS per timepoint: n, median, Q1, Q3 (numpy linear interpolation)."""
    ids = {x.id for x in procs}
    vals: dict[str, list[int]] = {tp: [] for tp in m.TIMEPOINTS}
    seen = set()
    for x in procs:
        if x.patient_id in seen:
            continue
        seen.add(x.patient_id)
        for f in _live(x.patient.follow_ups):
            if f.procedure_id in ids and f.pain_nrs is not None:
                vals[f.timepoint].append(f.pain_nrs)
    rows = []
    for tp in m.TIMEPOINTS:
        d = _describe(vals[tp])
        rows.append({"timepoint": tp, "n": d["n"], "median": d["median"], "q1": d["q1"], "q3": d["q3"]})
    return rows


def length_of_stay(procs: Sequence[m.Procedure]) -> list[dict[str, Any]]:
    """Length of stay in days (procedures with a discharge date)."""
    days = [(x.discharge_date - x.procedure_date).days for x in procs if x.discharge_date]
    return [{"measure": "length_of_stay_days", **_describe(days)}]


def collar_removal_delay(procs: Sequence[m.Procedure]) -> list[dict[str, Any]]:
    """Delay from procedure to collar removal in days (procedures with a collar removal date)."""
    days = [(x.collar_removed_date - x.procedure_date).days for x in procs if x.collar_removed_date]
    return [{"measure": "collar_removal_delay_days", **_describe(days)}]


def procedure_type_of(x: m.Procedure) -> str:
    """The procedure's type (stored, else inferred from its site and what was placed)."""
    return x.procedure_type or m.infer_procedure_type(x.lesion.site_kind, x.lesion.site, bool(x.live_screws),
                                                      bool(x.cement_volume_ml))


def _by_type(procs: Sequence[m.Procedure], key) -> list[dict[str, Any]]:
    by: dict[Any, Counter] = defaultdict(Counter)
    for x in procs:
        c = by[key(x)]
        c["total"] += 1
        c[procedure_type_of(x)] += 1
    return [{"period": k, "total": c["total"], **{t: c[t] for t in m.PROCEDURE_TYPES}} for k, c in sorted(by.items())]


def activity_by_type_year(procs: Sequence[m.Procedure]) -> list[dict[str, Any]]:
    """Per year: total and one column per procedure type (:data:`~osteoplan.workflow.models.PROCEDURE_TYPES`)."""
    return [{"year": r.pop("period"), **r} for r in _by_type(procs, lambda x: x.procedure_date.year)]


def activity_by_type_month(procs: Sequence[m.Procedure]) -> list[dict[str, Any]]:
    """Per calendar month (``YYYY-MM``): total and one column per procedure type."""
    return [{"month": r.pop("period"), **r} for r in _by_type(procs, lambda x: f"{x.procedure_date:%Y-%m}")]


def procedures_per_operator(procs: Sequence[m.Procedure]) -> list[dict[str, Any]]:
    """Per operator named in the log: procedures (a procedure counts once for each of its operators), how many
    as the first-named operator, and their most frequent procedure type. Procedures without an operator are
    counted under "not recorded"."""
    n: Counter = Counter()
    first: Counter = Counter()
    types: dict[str, Counter] = defaultdict(Counter)
    for x in procs:
        ops = [o.strip() for o in (x.operators or []) if o and o.strip()] or ["not recorded"]
        first[ops[0]] += 1
        for o in dict.fromkeys(ops):
            n[o] += 1
            types[o][procedure_type_of(x)] += 1
    return [{"operator": o, "procedures": k, "first_operator": first[o],
             "main_type": types[o].most_common(1)[0][0]} for o, k in sorted(n.items(), key=lambda t: (-t[1], t[0]))]


def outcomes_by_type(procs: Sequence[m.Procedure]) -> list[dict[str, Any]]:
    """Per procedure type: pain before (baseline) and after (1 month) as medians, paired change, length of stay
    and collar removal delay (medians, days), technical success %. One row per type with procedures."""
    groups: dict[str, list[m.Procedure]] = defaultdict(list)
    for x in procs:
        groups[procedure_type_of(x)].append(x)
    rows = []
    for t in m.PROCEDURE_TYPES:
        xs = groups.get(t)
        if not xs:
            continue
        base, after, change = [], [], []
        for x in xs:
            fu = {f.timepoint: f.pain_nrs for f in _live(x.patient.follow_ups)
                  if f.procedure_id == x.id and f.pain_nrs is not None}
            if "baseline" in fu:
                base.append(fu["baseline"])
            if "1m" in fu:
                after.append(fu["1m"])
            if "baseline" in fu and "1m" in fu:
                change.append(fu["1m"] - fu["baseline"])
        los = [(x.discharge_date - x.procedure_date).days for x in xs if x.discharge_date]
        collar = [(x.collar_removed_date - x.procedure_date).days for x in xs if x.collar_removed_date]
        ok = [x.technical_success for x in xs if x.technical_success is not None]
        rows.append({"procedure_type": t, "procedures": len(xs),
                     "pain_baseline_median": _describe(base)["median"], "pain_1m_median": _describe(after)["median"],
                     "pain_pairs": len(change), "pain_change_median": _describe(change)["median"],
                     "length_of_stay_median_days": _describe(los)["median"], "length_of_stay_n": len(los),
                     "collar_removal_median_days": _describe(collar)["median"], "collar_removal_n": len(collar),
                     "technical_success_percent": round(100.0 * sum(ok) / len(ok), 1) if ok else None})
    return rows


def _latest_checks(procs: Sequence[m.Procedure], stages: Sequence[str]) -> list[tuple[m.Procedure, m.Verification]]:
    """(procedure, its latest live check of the stage) for every procedure and stage in *stages* that has one."""
    out = []
    for x in procs:
        for st in stages:
            vs = [v for v in _live(getattr(x, "verifications", None) or []) if v.stage == st]
            if vs:
                out.append((x, max(vs, key=lambda v: (v.created_at, v.id))))
    return out


def _med_p95(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Median and 95th percentile (numpy linear interpolation, type 7), rounded to 0.01; (None, None) when empty."""
    a = np.asarray([v for v in values if v is not None], dtype=float)
    if a.size == 0:
        return None, None
    med, p95 = np.percentile(a, [50, 95])
    return round(float(med), 2), round(float(p95), 2)


def accuracy_postop_by_type(procs: Sequence[m.Procedure]) -> list[dict[str, Any]]:
    """Per procedure type: post-operative screw accuracy (stage ``screw``; see the module's definitions): checks
    (n), median and 95th percentile of the entry, tip and angle errors, and the breach-grade counts (A-E, not
    assessed). One row per type with at least one post-operative check."""
    groups: dict[str, list[m.Verification]] = defaultdict(list)
    for x, v in _latest_checks(procs, ("screw",)):
        groups[procedure_type_of(x)].append(v)
    rows = []
    for t in m.PROCEDURE_TYPES:
        vs = groups.get(t)
        if not vs:
            continue
        row: dict[str, Any] = {"procedure_type": t, "n": len(vs)}
        for name, attr, unit in (("entry_error", "entry_error_mm", "mm"), ("tip_error", "tip_error_mm", "mm"),
                                 ("angle_error", "angle_error_deg", "deg")):
            med, p95 = _med_p95([getattr(v, attr) for v in vs])
            row[f"{name}_median_{unit}"] = med
            row[f"{name}_p95_{unit}"] = p95
        grades = Counter(v.breach_grade or "not assessed" for v in vs)
        for g in m.BREACH_GRADES:
            row[f"grade_{g}"] = grades[g]
        row["grade_not_assessed"] = grades["not assessed"]
        rows.append(row)
    return rows


def accuracy_intraop_by_type(procs: Sequence[m.Procedure]) -> list[dict[str, Any]]:
    """Per procedure type and intra-operative stage (trocar, pin): checks (n), median and 95th percentile of the
    tip's distance to the planned path, the angle to the planned path and the lateral offset at the target depth
    (see the module's definitions)."""
    groups: dict[tuple[str, str], list[m.Verification]] = defaultdict(list)
    for x, v in _latest_checks(procs, ("trocar", "pin")):
        groups[(procedure_type_of(x), v.stage)].append(v)
    rows = []
    for t in m.PROCEDURE_TYPES:
        for st in ("trocar", "pin"):
            vs = groups.get((t, st))
            if not vs:
                continue
            row: dict[str, Any] = {"procedure_type": t, "stage": st, "n": len(vs)}
            for name, attr, unit in (("tip_to_path", "tip_to_plan_mm", "mm"),
                                     ("angle_to_path", "angle_to_plan_deg", "deg"),
                                     ("offset_at_target", "lateral_offset_at_target_mm", "mm")):
                med, p95 = _med_p95([getattr(v, attr) for v in vs])
                row[f"{name}_median_{unit}"] = med
                row[f"{name}_p95_{unit}"] = p95
            rows.append(row)
    return rows


TABLES = {
    "procedures_per_year": procedures_per_year,
    "procedures_per_type": procedures_per_type,
    "procedures_per_site": procedures_per_site,
    "technical_success": technical_success,
    "complications": complications,
    "pain_over_time": pain_over_time,
    "length_of_stay": length_of_stay,
    "collar_removal_delay": collar_removal_delay,
    "activity_by_type_year": activity_by_type_year,
    "activity_by_type_month": activity_by_type_month,
    "procedures_per_operator": procedures_per_operator,
    "outcomes_by_type": outcomes_by_type,
    "accuracy_postop_by_type": accuracy_postop_by_type,
    "accuracy_intraop_by_type": accuracy_intraop_by_type,
}


def compute_from_patients(patients: Iterable[m.Patient], year: int | None = None) -> dict[str, list[dict]]:
    """All tables from loaded patients (no database access beyond lazy loads, no audit)."""
    procs = done_procedures(patients, year)
    return {name: fn(procs) for name, fn in TABLES.items()}


def compute_statistics(session: Session, actor: m.User | None, year: int | None = None) -> dict[str, list[dict]]:
    """All statistics tables (aggregates only, no identity). Logs a read of ``statistics``."""
    from sqlalchemy import select
    from sqlalchemy.orm import defer, selectinload

    q = (select(m.Procedure).join(m.Patient, m.Procedure.patient_id == m.Patient.id)
         .where(m.Procedure.status == "done", m.Procedure.deleted_at.is_(None), m.Patient.deleted_at.is_(None),
                m.Procedure.procedure_date.is_not(None))
         .options(selectinload(m.Procedure.screws), selectinload(m.Procedure.lesion),
                  selectinload(m.Procedure.verifications),
                  selectinload(m.Procedure.patient).options(
                      *(defer(getattr(m.Patient, c)) for c in ("family_name", "given_name", "birth_date",
                                                               "hospital_id")),  # aggregates: no decryption
                      selectinload(m.Patient.follow_ups), selectinload(m.Patient.adverse_events))))
    procs = [x for x in session.scalars(q) if year is None or x.procedure_date.year == year]
    procs.sort(key=lambda x: (x.procedure_date, x.id))
    sv.audit(session, actor, "read", "statistics", None, detail={"year": year})
    session.flush()
    out = {name: fn(procs) for name, fn in TABLES.items()}
    if not sv.sees_identity(actor):  # research: operators are people too; numbered, not named
        for i, r in enumerate(out["procedures_per_operator"], start=1):
            r["operator"] = "not recorded" if r["operator"] == "not recorded" else f"operator {i}"
    return out


def available_years(session: Session) -> list[int]:
    """Years with at least one done procedure (no audit: no patient data)."""
    from sqlalchemy import select

    dates = session.scalars(select(m.Procedure.procedure_date).join(m.Patient, m.Procedure.patient_id == m.Patient.id)
                            .where(m.Procedure.status == "done", m.Procedure.deleted_at.is_(None),
                                   m.Patient.deleted_at.is_(None), m.Procedure.procedure_date.is_not(None)))
    return sorted({d.year for d in dates})


#: Columns of the tables that may have no row (no check stored yet): their CSV still has its header.
EMPTY_COLUMNS: dict[str, list[str]] = {
    "accuracy_postop_by_type": ["procedure_type", "n"] + [f"{f}_{q}_{u}" for f, u in (
        ("entry_error", "mm"), ("tip_error", "mm"), ("angle_error", "deg")) for q in ("median", "p95")]
    + [f"grade_{g}" for g in m.BREACH_GRADES] + ["grade_not_assessed"],
    "accuracy_intraop_by_type": ["procedure_type", "stage", "n"] + [f"{f}_{q}_{u}" for f, u in (
        ("tip_to_path", "mm"), ("angle_to_path", "deg"), ("offset_at_target", "mm")) for q in ("median", "p95")],
}


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """CSV text (header from the first row's keys, else *columns*; RFC 4180 quoting, ``\\r\\n`` line ends)."""
    if not rows and not columns:
        return ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0].keys()) if rows else list(columns))
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


# --------------------------------------------------------------------------------------------- plots
def _fig():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_pain(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Median pain NRS per timepoint with the IQR as error bars (PNG)."""
    plt = _fig()
    pts = [r for r in rows if r["n"]]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    x = [m.TIMEPOINTS.index(r["timepoint"]) for r in pts]
    med = [r["median"] for r in pts]
    lo = [r["median"] - r["q1"] for r in pts]
    hi = [r["q3"] - r["median"] for r in pts]
    ax.errorbar(x, med, yerr=[lo, hi], fmt="o-", capsize=4, color="tab:blue")
    for xi, r in zip(x, pts):
        ax.annotate(f"n={r['n']}", (xi, r["q3"]), textcoords="offset points", xytext=(0, 6), ha="center",
                    fontsize=8)
    ax.set_xticks(range(len(m.TIMEPOINTS)), m.TIMEPOINTS)
    ax.set_ylim(0, 10.8)
    ax.set_ylabel("pain NRS (0-10): median, IQR")
    ax.set_xlabel("timepoint")
    ax.set_title("Pain after consolidation")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_per_year(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Stacked bars: simple / complex consolidations per year (PNG)."""
    plt = _fig()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    years = [str(r["year"]) for r in rows]
    simple = [r["simple"] for r in rows]
    cplx = [r["complex"] for r in rows]
    ax.bar(years, simple, label="simple", color="tab:green")
    ax.bar(years, cplx, bottom=simple, label="complex (screw / hydrodissection / multi-level)", color="tab:orange")
    ax.set_ylabel("procedures")
    ax.set_title("Consolidation procedures per year")
    top = max((a + b for a, b in zip(simple, cplx)), default=1)
    ax.set_ylim(0, top * 1.25 + 1)  # room for the legend above the bars
    ax.legend(fontsize=8, loc="upper right")
    return _save(fig, path)


def plot_per_site(rows: Sequence[dict[str, Any]], path: str | Path, top: int = 15) -> Path:
    """Horizontal bars: procedures per site (top *top*) (PNG)."""
    plt = _fig()
    rows = list(rows)[:top]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(rows) + 1.5), dpi=100)
    ax.barh([r["site"] for r in rows][::-1], [r["n"] for r in rows][::-1], color="tab:blue")
    ax.set_xlabel("procedures")
    ax.set_title("Procedures per site")
    return _save(fig, path)


def complications_figure(rows: Sequence[dict[str, Any]]):
    """The adverse-event figure: ONE PANEL PER CLASSIFICATION (CIRSE 2017, CIRSE 2026, SIR ...), each with its own
    grade axis in that scale's order; CIRSE and SIR grades are different scales and never share an axis.
    Returns the matplotlib figure (see :func:`plot_complications`)."""
    plt = _fig()
    rows = [r for r in rows if r["classification"] not in ("any",)]
    classes = [c for c in m.AE_CLASSIFICATIONS if any(r["classification"] == c for r in rows)]
    classes += sorted({r["classification"] for r in rows} - set(classes))
    if not classes:
        fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
        ax.text(0.5, 0.5, "no adverse event recorded", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    fig, axes = plt.subplots(1, len(classes), figsize=(max(5.0, 3.2 * len(classes) + 0.6), 4), dpi=100,
                             squeeze=False)
    top = max([r["rate_percent"] or 0 for r in rows] + [1.0])
    for ax, cl in zip(axes[0], classes):
        grades = m.AE_CLASSIFICATIONS.get(cl) or tuple(sorted({r["grade"] for r in rows if r["classification"] == cl}))
        rate = {r["grade"]: r["rate_percent"] or 0 for r in rows if r["classification"] == cl}
        ax.bar(list(grades), [rate.get(g, 0) for g in grades], color="tab:red" if cl.startswith("CIRSE") else "tab:purple")
        ax.set_title(f"{cl} grade", fontsize=10)
        ax.set_ylim(0, top * 1.2)
        ax.set_xlabel("grade")
    axes[0][0].set_ylabel("% of procedures")
    fig.suptitle("Adverse events by grade, one panel per classification", fontsize=9)
    return fig


def plot_complications(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Bars: complication rate (% of procedures) per grade, one panel per classification (PNG)."""
    return _save(complications_figure(rows), path)


def plot_activity_by_type(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Stacked bars: procedures per year by procedure type (PNG)."""
    plt = _fig()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    years = [str(r["year"]) for r in rows]
    bottom = [0] * len(rows)
    cmap = plt.get_cmap("tab10")
    for i, t in enumerate(m.PROCEDURE_TYPES):
        vals = [r.get(t, 0) for r in rows]
        if not any(vals):
            continue
        ax.bar(years, vals, bottom=bottom, label=m.PROCEDURE_TYPE_LABELS[t], color=cmap(i))
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("procedures")
    ax.set_title("Procedures per year by procedure type")
    ax.set_ylim(0, max(bottom + [1]) * 1.05 + 1)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    from osteoplan.atomic import atomic_write_bytes

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    _fig().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def export_all(session: Session, actor: m.User | None, out_dir: str | Path, year: int | None = None) -> list[Path]:
    """Write every table as CSV and the four plots as PNG into *out_dir*; returns the files written."""
    from osteoplan.atomic import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = compute_statistics(session, actor, year)
    files = []
    for name, rows in tables.items():
        f = out / f"{name}.csv"
        atomic_write_text(f, to_csv(rows, EMPTY_COLUMNS.get(name)))
        files.append(f)
    files.append(plot_pain(tables["pain_over_time"], out / "pain_over_time.png"))
    files.append(plot_per_year(tables["procedures_per_year"], out / "procedures_per_year.png"))
    files.append(plot_per_site(tables["procedures_per_site"], out / "procedures_per_site.png"))
    files.append(plot_complications(tables["complications"], out / "complications.png"))
    files.append(plot_activity_by_type(tables["activity_by_type_year"], out / "activity_by_type.png"))
    return files
