"""French report: the anatomy stage's messages (airway split, C2 locator, canal) are translated.

The English inputs are produced by the anatomy code itself (split_airway on synthetic tubes, the C2
plausibility gate on synthetic landmarks), so a change of the English wording makes these tests fail
instead of silently leaving English in a French report.
"""

from __future__ import annotations

import numpy as np
import pytest

from osteoplan.anatomy.airway import segment_airway, split_airway
from osteoplan.anatomy.c2 import C2CandidateRejected, plausibility_problems
from osteoplan.anatomy.landmarks import DensLandmarks
from osteoplan.imaging.volume import AcquisitionInfo, Volume, axis_aligned_affine
from osteoplan.views.i18n import translate_text

# English words that never appear in the French sentences of these messages
_ENGLISH = ("airway", "split", " the ", " below ", " above ", "NOT ", "partial", "candidate", "rejected",
            " found", " mm from ", "located", " disc ")


def _tube(n_slices=100, dz=2.0, widen_k=None, wide_half_depth=8.0):
    """Neck cylinder (40 HU, radius 40 mm) with an air tube: round (radius 8 mm) below slice ``widen_k``,
    a 36 mm wide ellipse from ``widen_k`` up (the pharynx). k -> superior, 1 mm in-plane voxels."""
    size = 90
    c = (size - 1) / 2.0
    jj, ii = np.mgrid[0:size, 0:size]
    y, x = jj - c, ii - c
    arr = np.full((n_slices, size, size), -1000.0, np.float32)
    arr[:, np.hypot(x, y) <= 40] = 40.0
    round_ = (x ** 2 + (y + 15.0) ** 2) <= 64.0
    wide = (x / 18.0) ** 2 + ((y + 12.0) / wide_half_depth) ** 2 <= 1.0
    for k in range(n_slices):
        arr[k][wide if (widen_k is not None and k >= widen_k) else round_] = -1000.0
    return Volume(arr, axis_aligned_affine((dz, 1.0, 1.0)), AcquisitionInfo(contrast=False))


def _report_lines(vol, **kw):
    """The report lines the pipeline builds from a split (segment.run_classical / pipeline)."""
    sp = split_airway(vol, segment_airway(vol), **kw)
    return sp, [f"airway split: {t}" for t in sp.notes] + [f"{n}: partial ({why})" for n, why in sp.partial.items()]


_CASES = {
    "widening (lumen shape)": dict(widen_k=60),
    "trachea only": dict(widen_k=None, n_slices=40),
    "pharynx only": dict(widen_k=0, n_slices=40),
    "vertebral fallback": dict(widen_k=None, n_slices=60, c2_inferior_z_mm=168.0),
    "deep cavity, not split": dict(widen_k=60, wide_half_depth=25.0),
    "widening outside the C2 window": dict(widen_k=60, c2_inferior_z_mm=110.0),
}


@pytest.mark.parametrize("case", sorted(_CASES))
def test_every_airway_split_note_is_translated(case):
    kw = dict(_CASES[case])
    c2 = kw.pop("c2_inferior_z_mm", None)
    sp, lines = _report_lines(_tube(**kw), c2_inferior_z_mm=c2)
    assert lines, "the split says nothing: nothing to translate"
    for line in lines:
        fr = translate_text(line, "fr")
        assert fr != line, f"left in English: {line}"
        assert not any(w in fr for w in _ENGLISH), f"English left inside: {fr}"


def test_airway_split_translations_exact():
    sp, lines = _report_lines(_tube(widen_k=60))
    z_in, z_cr = f"{sp.inlet_z_mm:.1f}", f"{sp.cricoid_z_mm:.1f}"
    fr = [translate_text(x, "fr") for x in lines]
    assert (f"subdivision des voies aériennes : orifice supérieur du larynx (limite pharynx/larynx) à z = {z_in} mm "
            "d'après la forme de la lumière (voies aériennes 1.5 fois plus larges que la lumière "
            "trachéale/sous-glottique de 16 mm sous-jacente)") in fr
    assert (f"subdivision des voies aériennes : limite larynx/trachée (bord inférieur du cartilage cricoïde) à "
            f"z = {z_cr} mm : 40 mm sous l'orifice supérieur du larynx (longueur du larynx adulte 36–44 mm, "
            "Gray's Anatomy)") in fr
    # vertebral fallback: the inlet 40 mm below the C2 inferior endplate at 168 mm
    sp, lines = _report_lines(_tube(widen_k=None, n_slices=60), c2_inferior_z_mm=168.0)
    fr = [translate_text(x, "fr") for x in lines]
    assert (f"subdivision des voies aériennes : orifice supérieur du larynx à z = {sp.inlet_z_mm:.1f} mm d'après le "
            "niveau vertébral (par défaut : 40 mm sous le plateau inférieur de C2 ; aucun élargissement des voies "
            "aériennes aux niveaux laryngés)") in fr
    # a CT ending in the pharynx: the partial pharynx
    _, lines = _report_lines(_tube(widen_k=0, n_slices=40))
    assert "pharynx : partiel (le scanner s'arrête dans le pharynx)" in [translate_text(x, "fr") for x in lines]


def test_airway_classical_message_and_stale_pattern_removed():
    msg = ("airway: classical (connected internal air near the midline, nasal cavity to trachea; pharynx, larynx "
           "and trachea are parts of it)")
    assert translate_text(msg, "fr") == ("voies aériennes : méthode classique (air interne connexe proche de la "
                                         "ligne médiane, des fosses nasales à la trachée ; pharynx, larynx et "
                                         "trachée en font partie)")
    old = "airway: classical (pharynx, larynx and trachea as one 'airway' structure; not split by level)"
    assert translate_text(old, "fr") == old  # the stale sentence is no longer in the table
    assert translate_text(msg, "en") == msg


def _dens(height_mm):
    """Synthetic landmarks: anteroinferior body point *height_mm* below the apex (LPS z up)."""
    apex = np.array([0.0, 0.0, 0.0])
    return DensLandmarks(apex_lps_mm=apex, waist_lps_mm=apex - [0, 0, 12.0], waist_diameter_mm=9.0,
                         axis_unit=np.array([0.0, 0.0, 1.0]),
                         anteroinferior_body_lps_mm=apex - [0, 0, height_mm],
                         body_centre_lps_mm=apex - [0, 8.0, height_mm - 8.0], confidence=0.9, method="classical")


def test_c2_candidate_rejected_translated():
    lm = _dens(60.0)
    reasons = plausibility_problems(lm, np.array([2.0, 0.5, 0.5]))
    assert len(reasons) == 1 and reasons[0].startswith("anteroinferior body to dens apex 60.0 mm")
    # the pipeline's line when the locator refuses (pipeline.build_anatomy)
    for hinted, head, todo in (
            (False, "Candidat C2 rejeté : ", "Donner un point dans C2 (--hint-lps X Y Z, LPS mm) ou un masque "
                                            "vertebrae_C2."),
            (True, "Candidat C2 rejeté au point donné : ", "Vérifier que le point donné est bien dans C2, ou "
                                                          "fournir un masque vertebrae_C2.")):
        line = f"C2 NOT located: {C2CandidateRejected(reasons, lm, hinted=hinted)}"
        assert translate_text(line, "fr") == (
            "C2 NON localisée : " + head + "distance coin antéro-inférieur du corps – apex de l'odontoïde de 60.0 mm "
            "hors de l'intervalle 25.7–49.5 mm (37.6 ± 3 × 3.3 mm, Eur Spine J 2009;18:271, élargi de la taille du "
            "voxel). " + todo)
    # two reasons joined by "; ", one of which itself holds "; " (the lateral apex reason)
    lateral = ("the dens apex candidate lies 11.0 mm right of the canal centre (the dens is midline; at most 8 mm)")
    line = f"C2 NOT located: {C2CandidateRejected(reasons + [lateral], lm)}"
    fr = translate_text(line, "fr")
    assert fr != line and " ; l'apex candidat de l'odontoïde est à 11.0 mm à droite du centre du canal " \
                          "(l'odontoïde est médiane ; au plus 8 mm). Donner" in fr


def test_unknown_inner_message_keeps_the_whole_line_english():
    line = "C2 NOT located: some new English reason nobody translated"
    assert translate_text(line, "fr") == line
    line = "airway split: a brand new note"
    assert translate_text(line, "fr") == line


@pytest.mark.parametrize("en, fr", [
    ("C2: C2/C3 disc followed under the anterior body: 1.51 mL below it removed from C2",
     "C2 : disque C2/C3 suivi sous la partie antérieure du corps vertébral : 1.51 mL sous le disque retirés de C2"),
    ("C2: the dens is cut by the top of the image: the 'apex' is the image edge, not the dens tip; do not plan on it",
     "C2 : l'odontoïde est tronquée par le haut de l'image : l'« apex » est le bord de l'image, pas la pointe de "
     "l'odontoïde ; ne pas planifier sur ce repère"),
    ("C2: the given point lies below the first level found from the top of the vertebral column: the column was cut "
     "22 mm then 41 mm below its top and the vertebra at the point taken; check that it is C2",
     "C2 : le point donné est sous le premier niveau trouvé depuis le sommet de la colonne vertébrale : colonne "
     "coupée 22 mm puis 41 mm sous son sommet et vertèbre du point retenue ; vérifier qu'il s'agit bien de C2"),
    ("C2 NOT located: C2 cannot be located: No spinal canal found spanning 3 slices or more; the CT may not cover "
     "the spine.",
     "C2 NON localisée : C2 ne peut pas être localisée : Aucun canal rachidien trouvé sur 3 coupes ou plus ; le "
     "scanner ne couvre peut-être pas le rachis."),
    ("spinal canal continued 24 mm cranially and 2 mm caudally beyond the last closed vertebral ring",
     "canal rachidien prolongé de 24 mm vers le haut et 2 mm vers le bas au-delà du dernier anneau vertébral fermé"),
    ("C2 located (classical+hint, confidence 0.65)",
     "C2 localisée (méthode classique guidée par le point donné, confiance 0.65)"),
    ("C2: C2/C3 disc taken at the first deep disc below the given point (16 mm below the top, not 32 mm)",
     "C2 : disque C2/C3 placé au premier disque net sous le point donné (16 mm sous le sommet, et non 32 mm)"),
    ("C2 NOT located: the C2 found lies 6 mm from the point given inside C2: the automatic level and the point "
     "disagree, so neither is trusted. Check the point (LPS mm, in the C2 body or dens) or give a C2 mask (--masks).",
     "C2 NON localisée : la C2 trouvée est à 6 mm du point donné dans C2 : le niveau automatique et le point "
     "divergent, aucun des deux n'est retenu. Vérifier le point (LPS mm, dans le corps ou l'odontoïde de C2) ou "
     "fournir un masque de C2 (--masks)."),
    ("bone: classical threshold 152 HU (soft tissue 52 +/- 16 HU), cortical > 755 HU",
     "os : seuil classique 152 UH (parties molles 52 ± 16 UH), corticale > 755 UH"),
    ("lesion: 0.22 mL lytic (threshold 169.4 HU from C2 interior)",
     "lésion : 0.22 mL lytique (seuil 169.4 UH, d'après l'intérieur de C2)"),
])
def test_anatomy_sentences_exact(en, fr):
    assert translate_text(en, "fr") == fr


def test_plan_warnings_name_structures_in_both_languages():
    """The planner's warnings list structures by key; every face shows them by name (English too), and the
    French report translates the two covered-structure warnings (they stayed English before)."""
    from osteoplan.planning.planner import COVERED_BY
    from osteoplan.views.i18n import structure_label, translate_text

    keys = ["aorta", "esophagus", "inferior_vena_cava", "segmental_artery"]
    w = "Not segmented, covered by the containment of every needle in bone: " + ", ".join(keys) + "."
    assert translate_text(w, "en") == ("Not segmented, covered by the containment of every needle in bone: aorta, "
                                       "oesophagus, inferior vena cava, segmental arteries.")
    fr = translate_text(w, "fr")
    assert fr.startswith("Structures non segmentées, couvertes par le confinement") and "_" not in fr
    assert all(structure_label(k, "fr") in fr for k in keys)
    # the planner's "<structure>: <how it is covered> (<covering structure>)." warnings, every rule of COVERED_BY
    for name, (cover, _, sentence) in COVERED_BY.items():
        w = f"{name}: {sentence} ({cover})."
        en, fr = translate_text(w, "en"), translate_text(w, "fr")
        assert en == f"{structure_label(name)}: {sentence} ({structure_label(cover)})."
        assert fr.startswith(structure_label(name, "fr") + " : ") and fr.endswith(f"({structure_label(cover, 'fr')}).")
        assert "_" not in en and "_" not in fr and "covered by" not in fr and "assessed by" not in fr
    # a sentence with no list of structures is left as written
    other = "Gantry tilt 70.0 deg is beyond the scanner limit (30.0 deg): follow the path on oblique reformats."
    assert translate_text(other, "en") == other


def test_the_canal_clearance_note_is_french_in_french_reports():
    """The note the planner gives a measured vertebral-artery canal row stayed English in the French report
    (seen on CThead's right canal)."""
    import inspect

    from osteoplan.planning import planner
    from osteoplan.views.i18n import translate_text

    note = "the vertebral artery's bony canal (foramen transversarium), segmented on the CT"
    assert note in inspect.getsource(planner)  # the sentence the planner really writes
    assert translate_text(note, "fr") == "canal osseux de l'artère vertébrale (foramen transversaire), segmenté sur le scanner"
