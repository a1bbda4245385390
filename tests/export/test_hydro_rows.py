"""The hydrodissection table reports each push once: the airway (the union of pharynx, larynx and trachea) is
folded into the part that holds its closest point, and kept when its clearance matches no listed part."""

from __future__ import annotations

from types import SimpleNamespace

from osteoplan.export.report import hydrodissection_rows
from osteoplan.planning.model import DisplacementItem, Hydrodissection


def _plan(*items):
    return SimpleNamespace(hydrodissection=Hydrodissection(
        required=True, structures=tuple(DisplacementItem(structure=s, displacement_needed_mm=d, clearance_mm=c,
                                                         margin_mm=m) for s, d, c, m in items),
        max_displacement_mm=max(i[1] for i in items), achievable_mm=10.0))


def test_airway_push_is_its_pharynx_push_reported_once():
    # the demo phantom's plan: airway = pharynx | larynx | trachea, closest point in the pharynx
    rows = hydrodissection_rows(_plan(("common_carotid_artery_left", 2.33, 2.67, 5.0), ("pharynx", 2.65, 0.35, 3.0),
                                      ("airway", 2.65, 0.35, 3.0)))
    assert [r["structure"] for r in rows] == ["common_carotid_artery_left", "pharynx"]
    assert rows[1]["label"] == "pharynx (also the airway's closest point: the same push, counted once)"
    assert (rows[1]["displacement"], rows[1]["clearance"], rows[1]["margin"]) == ("2.6 mm", "0.3 mm", "3.0 mm")
    fr = hydrodissection_rows(_plan(("pharynx", 2.65, 0.35, 3.0), ("airway", 2.65, 0.35, 3.0)), "fr")
    assert len(fr) == 1 and "voies aériennes" in fr[0]["label"]


def test_airway_closer_than_its_listed_parts_keeps_its_row():
    # the airway's closest point lies outside the listed part (e.g. in an unsplit part): two different pushes
    rows = hydrodissection_rows(_plan(("larynx", 1.0, 2.0, 3.0), ("airway", 2.5, 0.5, 3.0)))
    assert [(r["structure"], r["label"]) for r in rows] == [("larynx", "larynx"), ("airway", "airway")]


def test_airway_alone_keeps_its_row():
    rows = hydrodissection_rows(_plan(("airway", 1.2, 1.8, 3.0)))
    assert [(r["structure"], r["displacement"]) for r in rows] == [("airway", "1.2 mm")]


def test_clearance_table_says_the_airway_push_is_its_part_push():
    from osteoplan.export.report import clearance_rows

    def check(s, c, d, status="hydrodissection"):
        return SimpleNamespace(structure=s, clearance_mm=c, displacement_needed_mm=d, margin_mm=3.0, status=status,
                               note=None, category="displaceable", segmented=True, source="phantom-truth")

    best = SimpleNamespace(clearances=(check("pharynx", 0.35, 2.65), check("airway", 0.35, 2.65),
                                       check("trachea", 10.6, None, "pass")))
    rows = {r["structure"]: r["displacement"] for r in clearance_rows(None, "en", best)}
    assert rows["airway"] == "2.6 mm"  # the value; the note is apart (it wraps in the report, the value does not)
    notes = {r["structure"]: r["displacement_note"] for r in clearance_rows(None, "en", best)}
    assert notes["airway"] == "(the same push as the pharynx, its closest part)" and notes["pharynx"] is None
    assert rows["pharynx"] == "2.6 mm" and rows["trachea"] == "—"
    # a different push on the airway (closest point outside the pushed part) is left as measured
    best = SimpleNamespace(clearances=(check("pharynx", 1.0, 2.0), check("airway", 0.35, 2.65)))
    assert {r["structure"]: r["displacement"] for r in clearance_rows(None, "en", best)}["airway"] == "2.6 mm"
