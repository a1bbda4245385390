"""Activity by procedure type, outcomes, operators; CIRSE and SIR never share an axis; the annual report (issue 15)."""

from __future__ import annotations

import pytest

from osteoplan.workflow import models as m
from osteoplan.workflow import service as sv
from osteoplan.workflow import stats

from .conftest import C2_LOG, D, make_case


@pytest.mark.parametrize("kind, site, screw, cement, want", [
    ("vertebra", "C2", True, True, "c2_screw"),
    ("vertebra", "C2", True, False, "c2_screw"),
    ("vertebra", "T8", False, True, "vertebroplasty"),
    ("vertebra", "L2", True, True, "vertebral_screw_cement"),
    ("bone", "femur", True, True, "pelvic_femoral_screw_cement"),
    ("bone", "acetabulum", True, True, "pelvic_femoral_screw_cement"),
    ("bone", "humerus", False, True, "long_bone_cementoplasty"),
    ("bone", "femur", False, True, "long_bone_cementoplasty"),
    ("bone", "acetabulum", False, True, "pelvic_cementoplasty"),
    ("bone", "humerus", True, False, "other"),
    ("vertebra", "T8", False, False, "other"),
])
def test_infer_procedure_type(kind, site, screw, cement, want):
    assert m.infer_procedure_type(kind, site, screw, cement) == want


def _registry(session, users):
    c2 = make_case(session, users, log=C2_LOG)  # 2025-03-14, C2 screw + cement, operator "Dr rad"
    fem = make_case(session, users, meeting=D(2025, 4, 1), site="femur", kind="bone",
                    log={"cement_volume_ml": 15.0, "screws": [{"diameter_mm": 6.5, "length_mm": 90}],
                         "operators": ["Dr B", "Dr rad"]})
    t8 = make_case(session, users, meeting=D(2025, 4, 8), site="T8", decision="cement_alone",
                   log={"cement_volume_ml": 4.0, "operators": ["Dr B"]})
    ky = make_case(session, users, meeting=D(2024, 11, 5), site="L1", decision="cement_alone",
                   log={"cement_volume_ml": 5.0, "procedure_type": "kyphoplasty"})
    rad = users["rad"]
    for tp, day, nrs in (("baseline", 0, 8), ("1m", 30, 2)):
        sv.record_follow_up(session, rad, {"procedure_id": c2["procedure"], "timepoint": tp, "pain_nrs": nrs,
                                           "visit_date": D(2025, 3, 14) if day == 0 else D(2025, 4, 13)})
    sv.record_post_op(session, rad, c2["procedure"], {"discharge_date": D(2025, 3, 16),
                                                      "collar_removed_date": D(2025, 3, 15)})
    for cl, grade in (("CIRSE 2017", "2"), ("SIR", "B"), ("SIR", "D")):
        sv.record_adverse_event(session, rad, {"procedure_id": t8["procedure"], "event_date": D(2025, 4, 18),
                                               "classification": cl, "grade": grade, "description": "pain"})
    session.commit()
    return c2, fem, t8, ky


def test_activity_outcomes_and_operators_by_procedure_type(session, users):
    _registry(session, users)
    t = stats.compute_statistics(session, users["rad"], 2025)
    [y] = t["activity_by_type_year"]
    assert (y["year"], y["total"], y["c2_screw"], y["pelvic_femoral_screw_cement"], y["vertebroplasty"],
            y["kyphoplasty"]) == (2025, 3, 1, 1, 1, 0)  # the kyphoplasty was done in 2024
    assert [(r["month"], r["total"]) for r in t["activity_by_type_month"]] == [("2025-03", 1), ("2025-04", 2)]
    allyears = stats.compute_statistics(session, users["rad"])
    assert [(r["year"], r["kyphoplasty"]) for r in allyears["activity_by_type_year"]] == [(2024, 1), (2025, 0)]
    ops = {r["operator"]: r for r in t["procedures_per_operator"]}
    assert (ops["Dr rad"]["procedures"], ops["Dr rad"]["first_operator"]) == (2, 1)
    assert (ops["Dr B"]["procedures"], ops["Dr B"]["first_operator"]) == (2, 2)
    out = {r["procedure_type"]: r for r in t["outcomes_by_type"]}
    c2 = out["c2_screw"]
    assert (c2["pain_baseline_median"], c2["pain_1m_median"], c2["pain_pairs"], c2["pain_change_median"]) == (
        8.0, 2.0, 1, -6.0)
    assert (c2["length_of_stay_median_days"], c2["collar_removal_median_days"]) == (2.0, 1.0)
    research = stats.compute_statistics(session, users["res"], 2025)["procedures_per_operator"]
    assert {r["operator"] for r in research} == {"operator 1", "operator 2"}


def test_cirse_and_sir_never_share_an_axis(session, users):
    _registry(session, users)
    rows = stats.compute_statistics(session, users["rad"], 2025)["complications"]
    # the table: one row per (classification, grade); SIR B and CIRSE 2 are never merged into one grade
    assert {(r["classification"], r["grade"]) for r in rows if r["classification"] != "any"} == {
        ("CIRSE 2017", "2"), ("SIR", "B"), ("SIR", "D")}
    fig = stats.complications_figure(rows)
    axes = fig.get_axes()
    assert len(axes) == 2
    for ax, cl in zip(axes, ("CIRSE 2017", "SIR")):
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        assert ticks == list(m.AE_CLASSIFICATIONS[cl])  # the whole scale of ONE classification, in its order
        assert ax.get_title() == f"{cl} grade"
        heights = {t: b.get_height() for t, b in zip(ticks, ax.patches)}
        if cl == "SIR":  # 1 procedure of 3 in 2025 with SIR B, 1 with SIR D: 33.3 %
            assert heights["B"] == heights["D"] == pytest.approx(33.3) and heights["A"] == 0
        else:
            assert heights["2"] == pytest.approx(33.3) and sum(heights.values()) == pytest.approx(33.3)
    cirse_ticks = {t.get_text() for t in axes[0].get_xticklabels()}
    sir_ticks = {t.get_text() for t in axes[1].get_xticklabels()}
    assert not cirse_ticks & sir_ticks and not (cirse_ticks & set(m.AE_CLASSIFICATIONS["SIR"]))


@pytest.mark.slow  # WeasyPrint: about 5-15 s on a loaded machine
def test_annual_report_pdf(session, users):
    pdfium = pytest.importorskip("pypdfium2")
    from osteoplan.workflow import annual_report

    _registry(session, users)
    try:
        pdf = annual_report.annual_report_pdf(session, users["coord"], 2025, "IR team", generated=D(2026, 1, 5))
    except Exception as exc:  # WeasyPrint or Pango missing
        if type(exc).__name__ == "DependencyError":
            pytest.skip(str(exc))
        raise
    assert pdf[:5] == b"%PDF-"
    doc = pdfium.PdfDocument(pdf)
    text = " ".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    doc.close()
    flat = " ".join(text.split())
    assert "IR team — activity report 2025" in flat
    assert "C2 screw (± cement) 1" in flat and "vertebroplasty 1" in flat and "Total 3" in flat
    assert "Dupont" not in flat and "Jeanne" not in flat
    assert flat.count("SIR") >= 2 and "CIRSE 2017" in flat
