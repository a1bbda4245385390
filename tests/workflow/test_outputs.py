"""Statistics on a hand-built data set, FHIR round trip, information sheet PDF, demo data and CLI."""

from __future__ import annotations

import json

import pytest

from osteoplan.workflow import service as sv
from osteoplan.workflow import stats

from .conftest import C2_LOG, D, make_case

CEMENT_LOG = {"operators": ["Dr rad"], "anaesthesia": "sedation", "guidance": "fluoroscopy",
              "trocar": "11G", "cement_volume_ml": 4.0, "cement_leak": True, "leak_sites": ["disc"],
              "duration_min": 40, "technical_success": True}


def _fu(s, rad, proc, tp, day, nrs):
    sv.record_follow_up(s, rad, {"procedure_id": proc, "timepoint": tp, "visit_date": day, "pain_nrs": nrs})


def build_registry(s, users):
    """Three done procedures and one only scheduled (see the expected values in the tests)."""
    rad = users["rad"]
    a = make_case(s, users, log=C2_LOG)  # C2 screw+cement+hydrodissection, 2025-03-14, success
    sv.record_post_op(s, rad, a["procedure"], {"collar_removed_date": D(2025, 3, 14),
                                               "discharge_date": D(2025, 3, 15)})
    _fu(s, rad, a["procedure"], "baseline", D(2025, 3, 13), 7)
    _fu(s, rad, a["procedure"], "day1", D(2025, 3, 15), 2)
    _fu(s, rad, a["procedure"], "1m", D(2025, 4, 14), 1)
    sv.record_adverse_event(s, rad, {"procedure_id": a["procedure"], "event_date": D(2025, 3, 14),
                                     "description": "transient dysphagia", "classification": "SIR", "grade": "B"})
    s.commit()
    b = make_case(s, users, meeting=D(2025, 4, 1), site="T8", decision="cement_alone",
                  log={**CEMENT_LOG, "technical_success": False})  # 2025-04-11, simple, failure
    sv.record_post_op(s, rad, b["procedure"], {"discharge_date": D(2025, 4, 14)})
    _fu(s, rad, b["procedure"], "baseline", D(2025, 4, 11), 6)
    _fu(s, rad, b["procedure"], "day1", D(2025, 4, 12), 4)
    s.commit()
    c = make_case(s, users, meeting=D(2025, 5, 6), site="L2", decision="cement_alone",
                  log={**CEMENT_LOG, "levels_treated": 2})  # 2025-05-16, complex (2 levels), success
    sv.record_post_op(s, rad, c["procedure"], {"discharge_date": D(2025, 5, 16)})
    _fu(s, rad, c["procedure"], "baseline", D(2025, 5, 15), 9)
    _fu(s, rad, c["procedure"], "day1", D(2025, 5, 17), 3)
    _fu(s, rad, c["procedure"], "1m", D(2025, 6, 16), 2)
    for grade in ("2", "1"):
        sv.record_adverse_event(s, rad, {"procedure_id": c["procedure"], "event_date": D(2025, 5, 16),
                                         "description": "leak", "grade": grade})
    s.commit()
    make_case(s, users, meeting=D(2025, 6, 3), site="T10", decision="cement_alone")  # scheduled only
    return a, b, c


def test_statistics_hand_computed(session, users, tmp_path):
    build_registry(session, users)
    t = stats.compute_statistics(session, users["res"])
    assert t["procedures_per_year"] == [{"year": 2025, "total": 3, "simple": 1, "complex": 2, "screw_cement": 1,
                                         "screw_alone": 0, "cement_alone": 2, "other": 0}]
    assert sorted((r["site"], r["region"], r["n"]) for r in t["procedures_per_site"]) == [
        ("C2", "cervical", 1), ("L2", "lumbar", 1), ("T8", "thoracic", 1)]
    assert t["technical_success"] == [{"procedures": 3, "success": 2, "failure": 1, "unknown": 0,
                                       "rate_percent": 66.7}]
    comp = {(r["classification"], r["grade"]): (r["events"], r["procedures_with_event"], r["rate_percent"])
            for r in t["complications"]}
    assert comp == {("CIRSE 2017", "1"): (1, 1, 33.3), ("CIRSE 2017", "2"): (1, 1, 33.3),
                    ("SIR", "B"): (1, 1, 33.3), ("any", "any"): (3, 2, 66.7)}
    pain = {r["timepoint"]: (r["n"], r["median"], r["q1"], r["q3"]) for r in t["pain_over_time"]}
    # baseline [6, 7, 9]: median 7, Q1 = 6 + 0.5*(7-6) = 6.5, Q3 = 7 + 0.5*(9-7) = 8 (linear, type 7)
    assert pain["baseline"] == (3, 7.0, 6.5, 8.0)
    assert pain["day1"] == (3, 3.0, 2.5, 3.5)  # [2, 3, 4]
    assert pain["1m"] == (2, 1.5, 1.25, 1.75)  # [1, 2]
    assert pain["3m"] == (0, None, None, None)
    los = t["length_of_stay"][0]
    assert (los["n"], los["median"], los["q1"], los["q3"], los["min"], los["max"]) == (3, 1.0, 0.5, 2.0, 0.0, 3.0)
    collar = t["collar_removal_delay"][0]
    assert (collar["n"], collar["median"]) == (1, 0.0)
    assert stats.compute_statistics(session, None, year=2024)["procedures_per_year"] == []
    csv_text = stats.to_csv(t["pain_over_time"])
    assert csv_text.splitlines()[:2] == ["timepoint,n,median,q1,q3", "baseline,3,7.0,6.5,8.0"]
    files = stats.export_all(session, None, tmp_path / "out")
    assert {f.name for f in files} >= {"pain_over_time.csv", "pain_over_time.png", "complications.png"}
    assert all(f.stat().st_size > 0 for f in files)
    assert (tmp_path / "out" / "pain_over_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fhir_round_trip(session, users):
    from fhir.resources.R4B.bundle import Bundle

    from osteoplan.workflow import fhir

    a, _, _ = build_registry(session, users)
    text = fhir.export_case_json(session, users["rad"], a["patient"])
    assert "Dupont" not in text and "H1234567" not in text and "1961" not in text
    b = Bundle.model_validate_json(text)
    kinds = [e.resource.__resource_type__ for e in b.entry]
    assert kinds == ["Patient", "Condition", "Procedure", "Observation", "Observation", "Observation",
                     "AdverseEvent"]
    pat = b.entry[0].resource
    assert pat.name is None and pat.birthDate is None and pat.identifier[0].value.startswith("OP-")
    proc = b.entry[2].resource
    assert proc.status == "completed" and proc.code.coding[0].code == "screw_cement"
    assert str(proc.performedDateTime) == "2025-03-14"
    obs = [e.resource for e in b.entry if e.resource.__resource_type__ == "Observation"]
    assert [(o.code.coding[0].system, o.code.coding[0].code, o.valueInteger) for o in obs] == [
        ("http://loinc.org", "72514-3", 7), ("http://loinc.org", "72514-3", 2), ("http://loinc.org", "72514-3", 1)]
    ae = b.entry[-1].resource
    assert ae.seriousness.coding[0].code == "B" and "sir" in ae.seriousness.coding[0].system
    assert ae.suspectEntity[0].instance.reference == b.entry[2].fullUrl
    assert fhir.export_case_json(session, users["rad"], a["patient"]) == text  # deterministic
    assert ae.event.text == "transient dysphagia"
    research = Bundle.model_validate_json(fhir.export_case_json(session, users["res"], a["patient"]))
    assert research.entry[-1].resource.event.text == "adverse event (SIR grade B)"


@pytest.mark.parametrize("lang,expect,cement", [("fr", "Information du patient", "2–3,5 mL"),
                                                ("en", "Patient information", "2-3.5 mL")])
def test_info_sheet_pdf(session, users, tmp_path, lang, expect, cement):
    import pypdfium2 as pdfium

    from osteoplan.workflow import infosheet

    ids = make_case(session, users)
    plan = {"schema_version": "1", "feasible": True, "trajectories": [
        {"screw": {"diameter_mm": 4.0, "length_mm": 34.0}, "hydrodissection_required": True}],
        "hydrodissection": {"required": True}, "cement": {"suggested_pmma_ml": [2.0, 3.5]}}
    sv.attach_plan(session, users["rad"], {"lesion_id": ids["lesion"], "plan": plan})
    session.commit()
    pdf = infosheet.info_sheet_pdf(session, users["rad"], ids["lesion"], lang)
    assert pdf[:5] == b"%PDF-"
    doc = pdfium.PdfDocument(pdf)
    txt = doc[0].get_textpage().get_text_range()
    assert expect in txt
    assert ("4 mm" in txt and "34 mm" in txt) and (cement in txt)  # French: decimal comma
    assert "Dupont" not in txt and "OP-" in txt
    img = doc[0].render(scale=1.0).to_pil()
    img.save(tmp_path / f"infosheet_{lang}.png")
    assert img.size[0] > 500


def test_demo_data_deterministic(factory, users):
    from osteoplan.workflow import models as m
    from osteoplan.workflow.demo import generate_demo_data

    s = factory()
    c1 = generate_demo_data(s, n_cases=25, year=2025, seed=3, rounds=4)
    s.commit()
    assert c1["cases"] == 25 and c1["procedures"] > 10 and c1["follow_ups"] > c1["procedures"]
    assert sv.authenticate(s, "radiologist", "radiologist-demo") is not None
    views = [sv.case_view(p, True) for p in sv.load_cases_for_export(s)]
    codes = [v["code"] for v in views]
    assert codes == [f"OP-2025-{i:04d}" for i in range(1, 26)]
    t = stats.compute_statistics(s, None)
    assert t["procedures_per_year"][0]["total"] + sum(r["total"] for r in t["procedures_per_year"][1:]) == \
        c1["procedures"]
    s.close()
    # same seed on a second, empty registry: identical pseudonymised cases (ids aside)
    from osteoplan.workflow.db import init_db, make_engine, session_factory

    import tempfile, os  # noqa: E401
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{os.path.join(d, 'b.db')}"
        init_db(url)
        eng = make_engine(url)
        s2 = session_factory(eng)()
        c2 = generate_demo_data(s2, n_cases=25, year=2025, seed=3, rounds=4)
        s2.commit()
        views2 = [sv.case_view(p, True) for p in sv.load_cases_for_export(s2)]
        s2.close()
        eng.dispose()
    strip = lambda v: json.dumps(v, sort_keys=True, default=str)  # noqa: E731
    assert c1 == c2
    assert [v["procedures"][0]["cement_volume_ml"] if v["procedures"] else None for v in views] == \
        [v["procedures"][0]["cement_volume_ml"] if v["procedures"] else None for v in views2]
    assert [len(strip(v)) for v in views] == [len(strip(v)) for v in views2]
    assert m.AE_CLASSIFICATIONS  # classification table exported


def test_cli_db_commands(tmp_path, capsys):
    from osteoplan.cli import main

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["db", "init", "--url", url]) == 0
    assert "revision 0006_verifications" in capsys.readouterr().out
    assert main(["db", "demo", "--url", url, "--cases", "6", "--year", "2025"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out.splitlines()[0])["cases"] == 6 and "radiologist / radiologist-demo" in out
    assert main(["db", "fhir", "1", "--url", url, "--out", str(tmp_path / "case1.json")]) == 0
    assert json.loads((tmp_path / "case1.json").read_text())["resourceType"] == "Bundle"
    assert main(["db", "stats", "--url", url, "--out", str(tmp_path / "st")]) == 0
    assert (tmp_path / "st" / "procedures_per_year.csv").exists()
    assert main(["db", "fhir", "999", "--url", url]) == 2
