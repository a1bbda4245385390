"""The CT reader's gap and skipped-file notes in the report: written from the plan's data (Plan.image_notes), in
English or in French with decimal commas (docs/french_conventions.md); a plan without notes (schema < 1.3) keeps its
warnings as written."""

from __future__ import annotations

import html as _html
import re
from types import SimpleNamespace

import numpy as np
import pytest

from osteoplan.export.report import build_report_html
from osteoplan.imaging.reader_notes import ReaderNote
from osteoplan.imaging.volume import Volume, axis_aligned_affine
from osteoplan.planning.image_warnings import gap_crossing_notes, image_notes

from export_planfactory import make_plan


def _text(page: str) -> str:
    page = re.sub(r"<style\b.*?</style>", " ", page, flags=re.S)
    return " ".join(_html.unescape(re.sub(r"<[^>]*>", " ", page)).split())


@pytest.fixture(scope="module")
def plans():
    vol = Volume(np.zeros((20, 30, 30), np.float32), axis_aligned_affine((2.0, 1.0, 1.0), (-15.0, -15.0, -20.0)))
    base = make_plan(vol, [10.0, -5.0, -10.0], [3.0, -1.0, -4.0], [0.0, 0.0, 0.0])
    # a slice missing at z = -6 (between -8 and -4: usual step 2 mm), its file truncated and interpolated; and two
    # non-DICOM files; the path (z -10 .. 0) crosses the interpolated slice
    gap = ReaderNote("gap_interpolated", count=1, points_lps_mm=((-15.0, -15.0, -6.0),), step_mm=2.0, gap_step_mm=4.0)
    skip = ReaderNote("undecodable_files_skipped", count=1, points_lps_mm=((-15.0, -15.0, -6.0),), n_interpolated=1,
                      step_mm=2.0)
    junk = ReaderNote("files_skipped", count=2, reason="not a DICOM file")
    read = SimpleNamespace(reader_notes=(gap, skip, junk), warnings=(str(gap), str(skip), str(junk)))
    notes = image_notes(read) + gap_crossing_notes(read, base.trajectories[:1])
    assert [n.kind for n in notes][-1] == "path_crosses_interpolated"
    plan = base.model_copy(update={"warnings": tuple(n.text_en for n in notes) + base.warnings,
                                   "image_notes": tuple(notes)})
    return base, plan


def test_report_writes_the_reader_notes_in_english_and_french(plans):
    _, plan = plans
    en = _text(build_report_html(plan, {}, lang="en", generated_utc="2026-12-06 12:00 UTC"))
    fr = _text(build_report_html(plan, {}, lang="fr", generated_utc="2026-12-06 12:00 UTC"))
    assert ("CT image: gap interpolated: 1 slice(s) missing at (-15.00, -15.00, -6.00) mm LPS (step 4.00 mm instead "
            "of 2.00 mm)") in en
    assert "CT image: 2 files were skipped (names not recorded): not a DICOM file" in en
    assert "the planned path crosses 1 interpolated slice(s) at z = -6.00 mm (LPS)" in en
    assert ("Image scanner : trou interpolé : 1 coupe(s) manquante(s) en (-15,00 ; -15,00 ; -6,00) mm LPS "
            "(intervalle de 4,00 mm au lieu de 2,00 mm)") in fr
    assert ("1 fichier(s) tronqué(s) ou indécodable(s) ignoré(s) (noms de fichiers non enregistrés : ils peuvent "
            "identifier le patient) ; leur(s) coupe(s) à z = -6,00 mm (LPS) ont été interpolées") in fr
    assert "Image scanner : 2 fichiers ont été ignorés (noms non enregistrés) : pas un fichier DICOM" in fr
    assert "le trajet prévu traverse 1 coupe(s) interpolée(s) à z = -6,00 mm (LPS)" in fr
    for english in ("gap interpolated", "slice(s) missing", "files were skipped", "truncated or undecodable",
                    "interpolated slice(s)", "CT image:"):
        assert english not in fr, english


def test_plan_json_keeps_the_notes_as_data(plans):
    from osteoplan.planning.model import Plan

    _, plan = plans
    back = Plan.from_json(plan.to_json())
    gap = next(n for n in back.image_notes if n.kind == "gap_interpolated")
    assert gap.points_lps_mm == ((-15.0, -15.0, -6.0),) and gap.step_mm == 2.0 and gap.gap_step_mm == 4.0
    cross = next(n for n in back.image_notes if n.kind == "path_crosses_interpolated")
    assert cross.z_lps_mm == (-6.0,) and cross.count == 1 and cross.text_en in back.warnings


def test_a_plan_without_notes_keeps_its_warnings(plans):
    base, _ = plans
    old = base.model_copy(update={"warnings": ("CT image: gap interpolated: 1 slice(s) missing at (0.00, 0.00, "
                                               "-98.00) mm LPS (step 4.00 mm instead of 2.00 mm)",) + base.warnings})
    fr = _text(build_report_html(old, {}, lang="fr", generated_utc="2026-12-06 12:00 UTC"))
    assert "gap interpolated : 1 slice(s) missing at (0,00 ; 0,00 ; -98,00) mm LPS" in fr  # as written, localized


def test_a_moved_path_has_its_gap_crossing_said_again(plans):
    """Adjusting a path (recheck.plan_with_trajectory) says its crossing of the interpolated slice (z = -6) for the
    path as moved: gone when the moved path stays above it, back when it crosses again."""
    from osteoplan.planning.protocol import load_protocol
    from osteoplan.planning.recheck import plan_with_trajectory

    _, plan = plans
    proto = load_protocol("c2-dens-anterior")
    t = plan.trajectories[0]
    assert any(n.kind == "path_crosses_interpolated" for n in plan.image_notes)
    above = t.model_copy(update={"skin_entry_lps_mm": (10.0, -5.0, -2.0), "target_lps_mm": (0.0, 0.0, 6.0)})
    moved = plan_with_trajectory(plan, 0, above, proto)
    assert not any(n.kind == "path_crosses_interpolated" for n in moved.image_notes)
    assert not any("interpolated slice(s)" in w for w in moved.warnings)
    assert any(n.kind == "gap_interpolated" for n in moved.image_notes)  # the reader's notes stay
    back = plan_with_trajectory(moved, 0, t, proto)
    [c] = [n for n in back.image_notes if n.kind == "path_crosses_interpolated"]
    assert c.z_lps_mm == (-6.0,) and back.warnings.index(c.text_en) == 3  # after the 3 reader warnings
