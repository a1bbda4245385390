"""compute_verdict on hand-built plans: every code, the priority between them, the texts, old plan files."""

from __future__ import annotations

import json

import pytest

from osteoplan.planning.model import (ClearanceCheck, CTGeometry, Infeasibility, Plan, RouteCheck, Trajectory,
                                      load_plan, save_plan)
from osteoplan.planning.verdict import (EXIT_CODES, compute_verdict, hydrodissection_detail, severity,
                                        structure_name, verdict_of)


def _check(structure, category, status, clearance=None, push=None, margin=3.0):
    seg = status not in ("not_assessed", "not_assessable", "covered")
    return ClearanceCheck(structure=structure, category=category, margin_mm=margin, status=status,
                          clearance_mm=clearance if seg else None, displacement_needed_mm=push, segmented=seg)


CANAL = _check("spinal_canal", "hard", "pass", 4.6)
VA_L = _check("vertebral_artery_left", "hard", "pass", 5.1)
CORD_COVERED = _check("spinal_cord", "hard", "covered")
CORD_NA = _check("spinal_cord", "hard", "not_assessed")
PHARYNX_PUSH = _check("pharynx", "displaceable", "hydrodissection", 1.8, push=1.2)
CAROTID_PUSH = _check("common_carotid_artery_left", "displaceable", "hydrodissection", 1.5, push=3.5, margin=5.0)
PHARYNX_CLEAR = _check("pharynx", "displaceable", "pass", 6.0)
VESSELS_NA = tuple(_check(s, "displaceable", "not_assessed", margin=5.0) for s in (
    "common_carotid_artery_left", "common_carotid_artery_right", "internal_jugular_vein_left",
    "internal_jugular_vein_right"))


def _plan(checks=None, *, route=None, infeasibility=None) -> Plan:
    traj = None
    if checks is not None:
        traj = Trajectory(rank=1, side="left", skin_entry_lps_mm=(30.0, -60.0, -80.0), bone_entry_lps_mm=(2.0, -12.0, -40.0),
                          target_lps_mm=(0.0, 0.0, 0.0), skin_entry_voxel_kji=(0.0, 0.0, 0.0),
                          bone_entry_voxel_kji=(0.0, 0.0, 0.0), target_voxel_kji=(0.0, 0.0, 0.0),
                          direction_unit=(-0.3, 0.6, 0.74), depth_skin_to_bone_mm=50.0, depth_bone_to_target_mm=35.0,
                          depth_total_mm=85.0, angle_craniocaudal_deg=48.0, angle_mediolateral_deg=27.0,
                          clearances=tuple(checks), screw=None, containment_min_margin_mm=1.2,
                          soft_tissue_depth_mm=50.0, score=1.0,
                          hydrodissection_required=any(c.status == "hydrodissection" for c in checks))
    ct = CTGeometry(shape_kji=(10, 20, 30), spacing_mm=(2.0, 1.0, 1.0),
                    affine=((2, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1)))
    return Plan(osteoplan_version="test", created_utc="2026-01-01T00:00:00Z", protocol_name="c2-dens-anterior",
                protocol_version="1", ct=ct, side_requested="best", side="left" if traj else None,
                feasible=traj is not None, trajectories=(traj,) if traj else (), route=route,
                infeasibility=infeasibility)


NOT_SHOWN = RouteCheck(assessable=False, route="anterior",
                       message_en="The skin entry of the anterior route lies below the CT's lower edge.",
                       message_fr="Le point d'entrée cutané de la voie antérieure est sous le bord inférieur du scanner.",
                       figures={"skin_entry_below_ct_mm": 41.6})
NO_PATH = Infeasibility(n_candidates=1200, n_feasible=0, exclusions=(), best_near_miss=None,
                        message="No feasible path among 1200 candidates. Most excluding constraints: containment "
                                "(1100 of 1200).")


class TestCodes:
    def test_feasible(self):
        v = compute_verdict(_plan([CANAL, VA_L, PHARYNX_CLEAR]))
        assert (v.code, v.exit_code) == ("feasible", 0)
        assert v.text_en == "FEASIBLE: every structure of the protocol assessed and clear of its margin"
        assert v.text_fr == "RÉALISABLE : toutes les structures du protocole évaluées et à distance suffisante"
        assert v.details_en == ("Hydrodissection: not needed (every displaceable structure assessed and clear of its "
                                "margin).",)

    def test_feasible_with_hydrodissection_names_what_is_pushed_and_how_far(self):
        v = compute_verdict(_plan([CANAL, PHARYNX_PUSH, CAROTID_PUSH]))
        assert (v.code, v.exit_code) == ("feasible_hydrodissection", 0)
        assert v.text_en == ("FEASIBLE WITH HYDRODISSECTION: pharynx (push 1.2 mm), left common carotid (push 3.5 mm)")
        assert v.text_fr == ("RÉALISABLE AVEC HYDRODISSECTION : pharynx (déplacer de 1.2 mm), carotide commune gauche "
                             "(déplacer de 3.5 mm)")

    def test_hydrodissection_and_unassessed_vessels_in_one_sentence(self):
        """The brief's example, word for word: never "not required" beside "may still be needed"."""
        v = compute_verdict(_plan([CANAL, CORD_COVERED, PHARYNX_PUSH, *VESSELS_NA]))
        # carotids and jugulars nobody saw are not clear: not cleared, with the one hydrodissection sentence
        assert v.code == "not_cleared"
        assert v.text_en == ("NOT CLEARED: a path was found but structures at risk were not assessed: carotid arteries "
                             "and jugular veins")
        sentence = ("Hydrodissection: required for pharynx (push 1.2 mm); carotid arteries and jugular veins not "
                    "assessed on this CT — the jugulo-carotid space is opened by hydrodissection as part of the "
                    "technique.")
        assert hydrodissection_detail(v) == sentence and sentence in v.details_en
        assert hydrodissection_detail(v, "fr") == (
            "Hydrodissection : nécessaire pour pharynx (déplacer de 1.2 mm) ; structures non évaluées sur ce scanner : "
            "carotides et veines jugulaires — l'espace jugulo-carotidien est ouvert par l'hydrodissection, qui fait "
            "partie de la technique.")
        assert not any("not required" in d.lower() or "may still" in d for d in v.details_en)

    def test_no_push_but_unassessed_vessels(self):
        v = compute_verdict(_plan([CANAL, PHARYNX_CLEAR, VESSELS_NA[0]]))
        assert v.code == "not_cleared" and v.exit_code == 3
        assert hydrodissection_detail(v) == (
            "Hydrodissection: not needed for the structures assessed; left common carotid not assessed on this CT — the "
            "jugulo-carotid space is opened by hydrodissection as part of the technique.")

    def test_unassessed_viscus_gets_no_carotid_sheath_clause(self):
        v = compute_verdict(_plan([CANAL, _check("esophagus", "displaceable", "not_assessed")]))
        assert hydrodissection_detail(v) == ("Hydrodissection: not needed for the structures assessed; oesophagus not "
                                             "assessed on this CT.")

    def test_not_cleared_names_the_unassessed_hard_structures(self):
        va_r = _check("vertebral_artery_right", "hard", "not_assessable")
        v = compute_verdict(_plan([CANAL, CORD_NA, va_r, PHARYNX_PUSH]))
        assert (v.code, v.exit_code) == ("not_cleared", 3)
        assert v.text_en == ("NOT CLEARED: a path was found but structures at risk were not assessed: spinal cord "
                             "and right vertebral artery")
        assert v.text_fr == ("NON VALIDÉ : un trajet a été trouvé mais des structures à risque n'ont pas été évaluées : "
                             "moelle épinière et artère vertébrale droite")
        assert hydrodissection_detail(v) == "Hydrodissection: required for pharynx (push 1.2 mm)."

    def test_vessel_families_are_named_as_groups_but_canals_are_not_arteries(self):
        keys = ["vertebral_artery_left", "vertebral_artery_right", "vertebral_artery_canal_left", "spinal_cord"]
        v = compute_verdict(_plan([CANAL, *(_check(k, "hard", "not_assessed") for k in keys)]))
        assert v.text_en == ("NOT CLEARED: a path was found but structures at risk were not assessed: vertebral "
                             "arteries, left vertebral artery canal (foramen transversarium) and spinal cord")

    def test_airway_is_not_named_beside_its_part(self):
        """The airway is the union of pharynx, larynx and trachea: one push, said once."""
        air = _check("airway", "displaceable", "hydrodissection", 1.8, push=1.2)
        v = compute_verdict(_plan([CANAL, PHARYNX_PUSH, air]))
        assert v.text_en == "FEASIBLE WITH HYDRODISSECTION: pharynx (push 1.2 mm)"

    def test_covered_cord_counts_as_assessed(self):
        v = compute_verdict(_plan([CANAL, CORD_COVERED, VA_L]))
        assert v.code == "feasible"
        assert "Covered by the clearance of the structure that contains it: spinal cord." in v.details_en

    def test_a_failed_check_on_the_returned_path_is_never_feasible(self):
        v = compute_verdict(_plan([CANAL, _check("airway", "displaceable", "fail", -1.0, push=4.0)]))
        assert v.code == "not_cleared" and v.text_en == "NOT CLEARED: the path does not keep the margin of: airway"

    def test_no_feasible_path(self):
        v = compute_verdict(_plan(None, infeasibility=NO_PATH))
        assert (v.code, v.exit_code, v.text_en, v.text_fr) == ("no_feasible_path", 4, "NO FEASIBLE PATH",
                                                               "AUCUN TRAJET RÉALISABLE")
        assert v.details_en == (NO_PATH.message,)
        assert hydrodissection_detail(v) is None

    def test_route_not_assessable(self):
        v = compute_verdict(_plan(None, route=NOT_SHOWN, infeasibility=NO_PATH))
        assert (v.code, v.exit_code) == ("route_not_assessable", 5)
        assert v.text_en == "ANTERIOR ROUTE NOT ASSESSABLE ON THIS CT: extend the scan to C6-T1"
        assert v.text_fr == "VOIE ANTÉRIEURE NON ÉVALUABLE SUR CE SCANNER : étendre l'acquisition jusqu'à C6-T1"
        assert v.details_en == (NOT_SHOWN.message_en, "Figures: skin entry below CT: 41.6 mm.")
        assert v.details_fr[0] == NOT_SHOWN.message_fr

    def test_route_message_that_repeats_the_headline_is_not_repeated(self):
        """The planner's route message may start with the headline itself: the details keep only what follows."""
        route = RouteCheck(assessable=False, route="anterior",
                           message_en="ANTERIOR ROUTE NOT ASSESSABLE ON THIS CT: the technique's paths (12 of 40 "
                                      "conforming) leave the image at its lower edge still inside the neck.",
                           message_fr="VOIE ANTÉRIEURE NON ÉVALUABLE SUR CE SCANNER : les trajets sortent de l'image.",
                           figures={"conforming_paths": 40.0, "corner_to_ct_lower_edge_mm": 38.46})
        v = compute_verdict(_plan(None, route=route))
        assert v.details_en == ("The technique's paths (12 of 40 conforming) leave the image at its lower edge still "
                                "inside the neck.", "Figures: conforming paths: 40; corner to CT lower edge: 38.5 mm.")
        assert v.details_fr[0] == "Les trajets sortent de l'image."

    def test_an_assessable_route_does_not_change_the_verdict(self):
        shown = RouteCheck(assessable=True, route="anterior")
        assert compute_verdict(_plan([CANAL, VA_L], route=shown)).code == "feasible"
        assert compute_verdict(_plan(None, route=shown)).code == "no_feasible_path"


class TestPriority:
    @pytest.mark.parametrize("route, checks, expected", [
        (NOT_SHOWN, [CANAL, CORD_NA, PHARYNX_PUSH], "route_not_assessable"),  # route first, even with a path
        (None, None, "no_feasible_path"),
        (None, [CANAL, CORD_NA, PHARYNX_PUSH], "not_cleared"),                 # not cleared beats hydrodissection
        (None, [CANAL, CORD_COVERED, PHARYNX_PUSH], "feasible_hydrodissection"),
        (None, [CANAL, CORD_COVERED, PHARYNX_CLEAR], "feasible"),
    ])
    def test_priority(self, route, checks, expected):
        v = compute_verdict(_plan(checks, route=route))
        assert v.code == expected and v.exit_code == EXIT_CODES[expected]

    def test_severity_colours(self):
        assert [severity(c) for c in ("feasible", "feasible_hydrodissection", "not_cleared", "route_not_assessable",
                                      "no_feasible_path")] == ["ok", "ok", "warn", "warn", "ko"]


def test_old_plan_file_gets_its_verdict_on_load(tmp_path):
    """A schema-1.0 file (no verdict, no route) loads; verdict_of computes the verdict the planner would store."""
    plan = _plan([CANAL, CORD_NA, PHARYNX_PUSH])
    data = json.loads(plan.to_json())
    for k in ("verdict", "route", "procedure"):
        data.pop(k, None)
    data["schema_version"] = "1.0"
    p = tmp_path / "plan.json"
    p.write_text(json.dumps(data))
    old = load_plan(p)
    assert old.verdict is None
    assert verdict_of(old) == compute_verdict(plan) and verdict_of(old).code == "not_cleared"
    stored = plan.model_copy(update={"verdict": compute_verdict(plan)})
    save_plan(stored, tmp_path / "new.json")
    assert verdict_of(load_plan(tmp_path / "new.json")) == stored.verdict  # a stored verdict is returned as it is


def test_structure_names_are_the_report_vocabulary():
    """The verdict names structures with the words of osteoplan.views.i18n (kept in two places: the engine does not
    import views)."""
    from osteoplan.planning.verdict import _NAMES
    from osteoplan.views.i18n import STRINGS

    for key, (en, fr) in _NAMES.items():
        assert key in STRINGS, key
        assert (STRINGS[key]["en"], STRINGS[key]["fr"]) == (en, fr), key
    assert structure_name("carotid_body_left") == "carotid body left"  # an unknown key stays readable
