"""The one translation table of osteoplan's pictures and reports (English, French).

:func:`t` looks a key up; unknown keys fall back to English, then to the key itself (so a missing
translation shows up as a readable English word, never as an error in a clinical document).
"""

from __future__ import annotations

import re

LANGS = ("en", "fr")

STRINGS: dict[str, dict[str, str]] = {
    # structures
    "body": {"en": "skin/body", "fr": "peau/corps"},
    "bone": {"en": "bone", "fr": "os"},
    "vertebrae_C1": {"en": "C1 (atlas)", "fr": "C1 (atlas)"},
    "vertebrae_C2": {"en": "C2 (axis)", "fr": "C2 (axis)"},
    "vertebrae_C3": {"en": "C3", "fr": "C3"},
    "lesion": {"en": "lesion", "fr": "lésion"},
    "spinal_canal": {"en": "spinal canal", "fr": "canal rachidien"},
    "spinal_cord": {"en": "spinal cord", "fr": "moelle épinière"},
    "vertebral_artery_left": {"en": "left vertebral artery", "fr": "artère vertébrale gauche"},
    "vertebral_artery_right": {"en": "right vertebral artery", "fr": "artère vertébrale droite"},
    "vertebral_artery_canal_left": {"en": "left vertebral artery canal (foramen transversarium)",
                                    "fr": "canal de l'artère vertébrale gauche (foramen transversaire)"},
    "vertebral_artery_canal_right": {"en": "right vertebral artery canal (foramen transversarium)",
                                     "fr": "canal de l'artère vertébrale droite (foramen transversaire)"},
    "common_carotid_artery_left": {"en": "left common carotid", "fr": "carotide commune gauche"},
    "common_carotid_artery_right": {"en": "right common carotid", "fr": "carotide commune droite"},
    "internal_carotid_artery_left": {"en": "left internal carotid", "fr": "carotide interne gauche"},
    "internal_carotid_artery_right": {"en": "right internal carotid", "fr": "carotide interne droite"},
    "internal_jugular_vein_left": {"en": "left internal jugular vein", "fr": "veine jugulaire interne gauche"},
    "internal_jugular_vein_right": {"en": "right internal jugular vein", "fr": "veine jugulaire interne droite"},
    "airway": {"en": "airway", "fr": "voies aériennes"},
    "trachea": {"en": "trachea", "fr": "trachée"},
    "larynx": {"en": "larynx", "fr": "larynx"},
    "pharynx": {"en": "pharynx", "fr": "pharynx"},
    "esophagus": {"en": "oesophagus", "fr": "œsophage"},
    "aorta": {"en": "aorta", "fr": "aorte"},
    "inferior_vena_cava": {"en": "inferior vena cava", "fr": "veine cave inférieure"},
    "segmental_artery": {"en": "segmental arteries", "fr": "artères segmentaires"},
    "lung": {"en": "lung", "fr": "poumon"},
    "mandible": {"en": "mandible", "fr": "mandibule"},
    "skull": {"en": "skull", "fr": "crâne"},
    "brainstem": {"en": "brainstem", "fr": "tronc cérébral"},
    "parotid_gland_left": {"en": "left parotid", "fr": "parotide gauche"},
    "parotid_gland_right": {"en": "right parotid", "fr": "parotide droite"},
    # views
    "view_axial": {"en": "Axial through the target", "fr": "Axial passant par la cible"},
    "view_coronal": {"en": "Coronal through the target", "fr": "Coronal passant par la cible"},
    "view_sagittal": {"en": "Sagittal through the target", "fr": "Sagittal passant par la cible"},
    "view_path_oblique": {"en": "Oblique plane containing the path", "fr": "Plan oblique contenant le trajet"},
    "view_path_oblique_orthogonal": {"en": "Oblique plane containing the path (orthogonal)",
                                     "fr": "Plan oblique contenant le trajet (orthogonal)"},
    "view_down_path": {"en": "View down the path, at the target", "fr": "Vue dans l'axe du trajet, à la cible"},
    "drr_ap_open_mouth": {"en": "Simulated fluoroscopy: AP (open-mouth centring)",
                          "fr": "Scopie simulée : face (centrage bouche ouverte)"},
    "drr_lateral": {"en": "Simulated fluoroscopy: lateral", "fr": "Scopie simulée : profil"},
    "drr_bullseye": {"en": "Simulated fluoroscopy: bull's-eye (down the path)",
                     "fr": "Scopie simulée : « bull's-eye » (dans l'axe)"},
    "drr_progression": {"en": "Simulated fluoroscopy: progression view (90°)",
                        "fr": "Scopie simulée : vue de progression (90°)"},
    "view_3d": {"en": "3D view from anterior: patient left on image right, head up",
                "fr": "Vue 3D antérieure : gauche du patient à droite de l'image, tête en haut"},
    "instrument": {"en": "instrument Ø", "fr": "instrument Ø"},
    "margin_outline": {"en": "margin (dashed)", "fr": "marge (pointillés)"},
    "path": {"en": "path", "fr": "trajet"},
    "screw": {"en": "screw", "fr": "vis"},
    # report
    "report_title": {"en": "Percutaneous consolidation plan", "fr": "Plan de consolidation percutanée"},
    "case": {"en": "Case", "fr": "Dossier"},
    "generated": {"en": "Generated", "fr": "Généré le"},
    "software": {"en": "Software", "fr": "Logiciel"},
    "protocol": {"en": "Protocol", "fr": "Protocole"},
    "side": {"en": "Side", "fr": "Côté"},
    "pseudonymous_note": {"en": "Pseudonymous document: no identifying data. Planning aid only; "
                                "the operator verifies every value on the images.",
                          "fr": "Document pseudonymisé : aucune donnée identifiante. Aide à la "
                                "planification ; l'opérateur vérifie chaque valeur sur les images."},
    "summary": {"en": "Plan summary", "fr": "Résumé du plan"},
    "points": {"en": "Points (LPS, mm)", "fr": "Points (LPS, mm)"},
    "skin_entry": {"en": "Skin entry", "fr": "Point d'entrée cutané"},
    "bone_entry": {"en": "Bone entry", "fr": "Point d'entrée osseux"},
    "target": {"en": "Target", "fr": "Cible"},
    "voxel": {"en": "voxel (k, j, i)", "fr": "voxel (k, j, i)"},
    "depth_skin_bone": {"en": "Depth skin → bone", "fr": "Profondeur peau → os"},
    "depth_bone_target": {"en": "Depth bone → target", "fr": "Profondeur os → cible"},
    "path_length": {"en": "Path length skin → target", "fr": "Longueur du trajet peau → cible"},
    "clearances": {"en": "Clearances", "fr": "Distances de sécurité"},
    "structure": {"en": "Structure", "fr": "Structure"},
    "margin": {"en": "Margin", "fr": "Marge"},
    "clearance": {"en": "Clearance", "fr": "Distance"},
    "status": {"en": "Status", "fr": "Statut"},
    "displacement": {"en": "Displacement needed", "fr": "Déplacement nécessaire"},
    "status_pass": {"en": "pass", "fr": "conforme", "fr_mp": "conformes", "fr_fp": "conformes"},
    "status_hydrodissection": {"en": "hydrodissection", "fr": "hydrodissection"},
    "status_fail": {"en": "fail", "fr": "échec"},
    "status_not_assessed": {"en": "not assessed", "fr": "non évalué", "fr_f": "non évaluée", "fr_mp": "non évalués",
                            "fr_fp": "non évaluées"},
    "clearance_note": {"en": "Clearance = distance from the instrument surface to the structure along the "
                             "whole path. A structure that was not segmented is NOT ASSESSED, never clear.",
                       "fr": "Distance = entre la surface de l'instrument et la structure sur tout le trajet. "
                             "Une structure non segmentée est NON ÉVALUÉE, jamais considérée comme à distance."},
    "screw_section": {"en": "Screw", "fr": "Vis"},
    "diameter": {"en": "Diameter", "fr": "Diamètre"},
    "length": {"en": "Length", "fr": "Longueur"},
    "thread_length": {"en": "Thread length", "fr": "Longueur filetée"},
    "hydrodissection_section": {"en": "Hydrodissection", "fr": "Hydrodissection"},
    "hydro_airway_part": {"en": "(also the airway's closest point: the same push, counted once)",
                          "fr": "(aussi le point le plus proche des voies aériennes : le même refoulement, compté une fois)"},
    "hydro_same_push_as": {"en": "(the same push as the {part}, its closest part)",
                           "fr": "(même refoulement que la partie la plus proche : {part})"},
    "cement_section": {"en": "Cement (PMMA)", "fr": "Ciment (PMMA)"},
    "lesion_volume": {"en": "Lesion volume", "fr": "Volume de la lésion"},
    "cement_volume": {"en": "Suggested cement volume", "fr": "Volume de ciment suggéré"},
    "leak_walls": {"en": "Breached walls (leak risk)", "fr": "Parois rompues (risque de fuite)"},
    "guidance_section": {"en": "Guidance angles", "fr": "Angles de guidage"},
    "warnings_section": {"en": "Warnings", "fr": "Avertissements"},
    "no_warnings": {"en": "None.", "fr": "Aucun."},
    "images_section": {"en": "Images", "fr": "Images"},
    "reformats": {"en": "Reformats", "fr": "Reconstructions"},
    "fluoro": {"en": "Simulated fluoroscopy (DRR)", "fr": "Scopie simulée (DRR)"},
    "value": {"en": "Value", "fr": "Valeur"},
    "item": {"en": "Item", "fr": "Élément"},
    "none": {"en": "none", "fr": "aucun"},
    "no_structure": {"en": "none", "fr": "aucune"},  # after "Structures ...:" (la structure)
    "unknown": {"en": "unknown", "fr": "inconnu"},
    "yes": {"en": "yes", "fr": "oui"},
    "no": {"en": "no", "fr": "non"},
    # verification page (osteoplan verify)
    "verify_title": {"en": "Control CT against the plan", "fr": "Scanner de contrôle comparé au plan"},
    "verify_stage_trocar": {"en": "trocar", "fr": "trocart"},
    "verify_stage_pin": {"en": "guide pin", "fr": "broche guide"},
    "verify_stage_screw": {"en": "screw (post-operative)", "fr": "vis (postopératoire)"},
    "verify_stage": {"en": "Stage", "fr": "Étape"},
    "verify_frame_note": {"en": "All figures in the planning CT's frame (LPS mm: L = patient left, P = posterior, "
                                "S = superior), the control CT registered to it.",
                          "fr": "Toutes les valeurs dans le repère du scanner de planification (LPS mm : L = gauche "
                                "du patient, P = postérieur, S = supérieur), le scanner de contrôle recalé sur lui."},
    "verify_figures": {"en": "Figures", "fr": "Valeurs"},
    "verify_tip": {"en": "Tip (LPS, mm)", "fr": "Pointe (LPS, mm)"},
    "verify_tip_uncertainty": {"en": "Tip uncertainty along the instrument",
                               "fr": "Incertitude de la pointe le long de l'instrument"},
    "verify_tip_to_plan": {"en": "Tip to the planned path", "fr": "Pointe – trajet planifié"},
    "verify_angle": {"en": "Angle to the plan", "fr": "Angle avec le plan"},
    "verify_remaining": {"en": "Remaining depth to the target depth",
                         "fr": "Profondeur restante jusqu'à celle de la cible"},
    "verify_predicted_tip": {"en": "Predicted tip there (LPS, mm)", "fr": "Pointe prévue à cette profondeur (LPS, mm)"},
    "verify_miss": {"en": "Predicted miss at the target", "fr": "Écart prévu à la cible"},
    "verify_correction": {"en": "Correction to reach the target (turn the tip)",
                          "fr": "Correction pour atteindre la cible (orienter la pointe)"},
    "verify_pivot_bone_entry": {"en": "pivoting at the bone entry", "fr": "pivot à l'entrée osseuse"},
    "verify_pivot_skin_entry": {"en": "pivoting at the skin entry", "fr": "pivot au point d'entrée cutané"},
    "verify_miss_after": {"en": "Predicted miss at the target after the correction",
                          "fr": "Écart prévu à la cible après la correction"},
    "verify_parallel": {"en": "Turn to be parallel to the plan only (ignores the offset, does NOT reach the target)",
                        "fr": "Rotation pour être seulement parallèle au plan (ignore le décalage, n'atteint PAS la cible)"},
    "verify_attention": {"en": "NEEDS ATTENTION", "fr": "ATTENTION"},
    "verify_attention_margin": {"en": "the instrument line is INSIDE THE MARGIN of {s}",
                                "fr": "la ligne de l'instrument est DANS LA MARGE de {s}"},
    "verify_attention_crosses": {"en": "the instrument line CROSSES {s}", "fr": "la ligne de l'instrument TRAVERSE {s}"},
    "verify_carm": {"en": "C-arm bull's-eye: instrument / plan", "fr": "Bull's-eye de l'arceau : instrument / plan"},
    "verify_registration": {"en": "Registration: bone surfaces apart near the target (median / 90th percentile)",
                            "fr": "Recalage : écart des surfaces osseuses près de la cible (médiane / 90e centile)"},
    "verify_postop_errors": {"en": "Post-op entry / tip error", "fr": "Erreur postopératoire à l'entrée / à la pointe"},
    "verify_postop_angle": {"en": "Post-op angle error", "fr": "Erreur d'angle postopératoire"},
    "verify_breach": {"en": "Breach, grade", "fr": "Effraction, grade"},
    "verify_clearances": {"en": "Clearances of the actual line (instrument surface to structure, mm)",
                          "fr": "Distances de la ligne réelle (surface de l'instrument à la structure, mm)"},
    "verify_structure": {"en": "Structure", "fr": "Structure"},
    "verify_margin": {"en": "Margin", "fr": "Marge"},
    "verify_planned": {"en": "Plan", "fr": "Plan"},
    "verify_now": {"en": "Now", "fr": "Actuel"},
    "verify_status": {"en": "Status", "fr": "Statut"},
    "verify_status_pass": {"en": "pass", "fr": "conforme", "fr_mp": "conformes", "fr_fp": "conformes"},
    "verify_status_inside_margin": {"en": "INSIDE MARGIN", "fr": "DANS LA MARGE"},
    "verify_status_covered": {"en": "covered by", "fr": "couvert par", "fr_f": "couverte par", "fr_mp": "couverts par",
                              "fr_fp": "couvertes par"},
    "verify_status_crosses": {"en": "CROSSES", "fr": "TRAVERSE"},
    "verify_crosses_note": {"en": "the instrument line crosses {s}{w} by {d:.1f} mm: check on the control CT before "
                                  "going further",
                            "fr": "la ligne de l'instrument traverse {s}{w} sur {d:.1f} mm : vérifier sur le scanner de "
                                  "contrôle avant d'aller plus loin"},
    "verify_crosses_where": {"en": " as segmented on the planning CT, before hydrodissection",
                             "fr": " telle que segmentée sur le scanner de planification, avant hydrodissection"},
    "verify_notes": {"en": "Notes", "fr": "Remarques"},
    "verify_reformats": {"en": "Reformats through the instrument", "fr": "Reconstructions passant par l'instrument"},
    "verify_fluoro": {"en": "Simulated fluoroscopy of the control CT", "fr": "Scopie simulée du scanner de contrôle"},
    "verify_drr_note": {"en": "Digitally reconstructed radiographs through the control CT resampled into the planning "
                              "CT's frame (its field of view only; outside it, air). The bull's-eye looks down the "
                              "planned path: the plan is a point, the instrument a line when it is off the plan.",
                        "fr": "Radiographies reconstruites à travers le scanner de contrôle rééchantillonné dans le "
                              "repère de planification (son champ de vue seulement ; au-delà, de l'air). Le "
                              "« bull's-eye » regarde dans l'axe du trajet planifié : le plan est un point, "
                              "l'instrument un segment s'il s'en écarte."},
    "verify_along": {"en": "Along the instrument", "fr": "Dans l'axe de l'instrument"},
    "verify_along_orth": {"en": "Along the instrument, orthogonal", "fr": "Dans l'axe de l'instrument, orthogonal"},
    "verify_across": {"en": "Across the plan at the target depth",
                      "fr": "Perpendiculaire au plan à la profondeur de la cible"},
    "verify_drr_ap": {"en": "Simulated fluoroscopy: AP", "fr": "Scopie simulée : face"},
    "verify_drr_lateral": {"en": "Simulated fluoroscopy: lateral", "fr": "Scopie simulée : profil"},
    "verify_drr_bullseye": {"en": "Simulated fluoroscopy: bull's-eye down the plan",
                            "fr": "Scopie simulée : « bull's-eye » dans l'axe du plan"},
    "verify_legend_plan": {"en": "planned path, + target", "fr": "trajet planifié, + cible"},
    "verify_legend_actual": {"en": "instrument found, o tip", "fr": "instrument détecté, o pointe"},
    "verify_legend_pred": {"en": "pushed on to the target depth, x predicted tip",
                           "fr": "prolongé jusqu'à la profondeur de la cible, x pointe prévue"},
    "verify_suptitle": {"en": "Control CT ({stage}) registered to the planning CT: tip {tip:.1f} mm from the plan, "
                              "{angle:.1f}° off it",
                        "fr": "Scanner de contrôle ({stage}) recalé sur le scanner de planification : pointe à "
                              "{tip:.1f} mm du plan, {angle:.1f}° d'écart"},
    "verify_as_planned": {"en": "direction as planned", "fr": "direction conforme au plan"},
    "verify_on_target": {"en": "direction on target", "fr": "direction sur la cible"},
    "verify_of_path": {"en": "of the planned path", "fr": "du trajet planifié"},
    "verify_of_target": {"en": "of the target", "fr": "de la cible"},
    "verify_uncertain_note": {"en": "the tip is uncertain by ±{u:.1f} mm along the instrument: check it on the images "
                                    "before pushing on",
                              "fr": "la pointe est incertaine de ±{u:.1f} mm le long de l'instrument : la vérifier sur "
                                    "les images avant d'avancer"},
    "verify_note_rear_cut": {"en": "the instrument leaves the control CT's field of view: its visible part is used for "
                                   "the axis",
                             "fr": "l'instrument sort du champ de vue du scanner de contrôle : sa partie visible donne "
                                   "l'axe"},
    "verify_no_clearance": {"en": "no structure was checked by the plan", "fr": "aucune structure vérifiée par le plan"},
    "dir_left": {"en": "left", "fr": "à gauche"},
    "dir_right": {"en": "right", "fr": "à droite"},
    "dir_posterior": {"en": "posterior", "fr": "en arrière"},
    "dir_anterior": {"en": "anterior", "fr": "en avant"},
    "dir_cranial": {"en": "cranial", "fr": "vers le haut (crânial)"},
    "dir_caudal": {"en": "caudal", "fr": "vers le bas (caudal)"},
    "page": {"en": "Page", "fr": "Page"},
    "of": {"en": "of", "fr": "sur"},
    "plan_rank": {"en": "Plan", "fr": "Plan"},
    "reason": {"en": "Reason", "fr": "Raison"},
    "alternatives": {"en": "Other plans", "fr": "Autres plans"},
    "drr_note": {"en": "DRR: ray-cast through the CT, HU → linear attenuation; mouth opening and patient "
                       "positioning cannot be simulated. Bone is shown white.",
                 "fr": "DRR : lancer de rayons dans le scanner, UH → atténuation linéaire ; l'ouverture de "
                       "bouche et le positionnement ne sont pas simulés. L'os apparaît blanc."},
    "assessed_structures": {"en": "Structures assessed", "fr": "Structures évaluées"},
    "not_assessed_structures": {"en": "Structures NOT assessed", "fr": "Structures NON évaluées"},
    "angle_cc": {"en": "Cranio-caudal angle", "fr": "Angle cranio-caudal"},
    "angle_ml": {"en": "Medio-lateral angle", "fr": "Angle médio-latéral"},
    "containment": {"en": "Screw-to-cortex margin (min)", "fr": "Marge vis–corticale (min)"},
    "soft_tissue_depth": {"en": "Soft-tissue depth", "fr": "Épaisseur des parties molles"},
    "lesion_crossing": {"en": "Screw length inside the lesion", "fr": "Longueur de vis dans la lésion"},
    "category": {"en": "Category", "fr": "Catégorie"},
    "category_hard": {"en": "hard", "fr": "critique"},
    "category_displaceable": {"en": "displaceable", "fr": "déplaçable"},
    "source": {"en": "Mask source", "fr": "Origine du masque"},
    "catalogue": {"en": "Catalogue", "fr": "Catalogue"},
    "waist": {"en": "Dens waist", "fr": "Col de l'odontoïde"},
    "waist_margin": {"en": "Bone each side", "fr": "Os de chaque côté"},
    "achievable": {"en": "achievable", "fr": "réalisable"},
    "reference_volume": {"en": "Volume injected in the published series (anterior odontoid screws)",
                         "fr": "Volume injecté dans la série publiée (vissage antérieur de l'odontoïde)"},
    "bullseye_view": {"en": "Bull's-eye C-arm view", "fr": "Incidence « bull's-eye »"},
    "progression_view": {"en": "Progression view (90°)", "fr": "Incidence de progression (90°)"},
    "gantry_tilt": {"en": "CT gantry tilt (path in one slice)", "fr": "Inclinaison du statif (trajet dans une coupe)"},
    "limit": {"en": "limit", "fr": "limite"},
    "beyond_limit": {"en": "beyond the scanner limit", "fr": "au-delà de la limite du scanner"},
    "leak_none": {"en": "no breached wall next to a dangerous neighbour", "fr": "aucune paroi rompue au contact d'une structure à risque"},
    "view3d_title": {"en": "3D view", "fr": "Vue 3D"},
    "total": {"en": "total", "fr": "total"},
    "left": {"en": "left", "fr": "gauche"},
    "near_miss_banner": {"en": "NOT FEASIBLE: closest candidate", "fr": "NON RÉALISABLE : candidat le plus proche"},
    "route_banner": {"en": "ROUTE NOT ASSESSABLE: a candidate the CT cannot check, not a plan",
                     "fr": "VOIE NON ÉVALUABLE : un candidat que le scanner ne permet pas de vérifier, pas un plan"},
    "route_note": {"en": "The CT does not show the technique's route: the images show the closest candidate, which "
                         "could not be checked beyond the image. It is NOT a plan.",
                   "fr": "Le scanner ne montre pas la voie de la technique : les images montrent le candidat le plus "
                         "proche, qui n'a pas pu être vérifié au-delà de l'image. Ce n'est PAS un plan."},
    "near_miss_note": {"en": "No feasible path: the images show the closest candidate, which violates the "
                             "constraints listed above. It is NOT a plan.",
                       "fr": "Aucun trajet réalisable : les images montrent le candidat le plus proche, qui viole "
                             "les contraintes ci-dessus. Ce n'est PAS un plan."},
    "not_applicable": {"en": "— (no feasible path)", "fr": "— (aucun trajet réalisable)"},
    "risk_section": {"en": "Fracture risk", "fr": "Risque fracturaire"},
    "constraint": {"en": "Constraint", "fr": "Contrainte"},
    "excluded": {"en": "Candidates excluded", "fr": "Candidats exclus"},
    "score": {"en": "Score", "fr": "Score"},
    "score_lower_better": {"en": "Score (lower is better)", "fr": "Score (le plus bas est le meilleur)"},
    "chosen_plan": {"en": "chosen", "fr": "retenu"},
    # equal scores to the precision shown: the order is the search's, not a clinical preference (search.py sorts
    # the feasible candidates by score with numpy's argsort; equal scores keep no meaningful order)
    "score_tie": {"en": "Tie: plans {ranks} have the same score to the precision shown ({score}). Their order comes "
                        "from the search alone (a difference below 0.001 in the unrounded score, or the order in "
                        "which the search listed its candidates), not from a clinical preference: compare them on "
                        "the images.",
                  "fr": "Égalité : les plans {ranks} ont le même score à la précision affichée ({score}). Leur ordre "
                        "vient de la recherche seule (une différence inférieure à 0,001 du score non arrondi, ou "
                        "l'ordre dans lequel la recherche a listé ses candidats), pas d'une préférence clinique : "
                        "comparez-les sur les images."},
    "and": {"en": "and", "fr": "et"},
    "other_bone": {"en": "other bone on the way", "fr": "autre os sur le trajet"},
    "other_vertebrae": {"en": "other vertebrae", "fr": "autres vertèbres"},
    "right": {"en": "right", "fr": "droite"},
    # simulated fluoroscopy: scale bar (length at the isocentre plane) and the C-arm geometry under the image
    "scale_at_iso": {"en": "{bar} mm @ iso", "fr": "{bar} mm à l'isocentre"},
    "drr_footer": {"en": "SDD {sdd} mm, SOD {sod} mm, detector {w}×{h} mm, {n}² px",
                   "fr": "distance source-détecteur {sdd} mm, source-isocentre {sod} mm, détecteur {w}×{h} mm, "
                         "{n}² px"},
}


_LEVEL_PART = __import__("re").compile(r"(vertebral_body|pedicle|posterior_wall)_([CTLS]\d{1,2})(?:_(left|right))?")
_LEVEL_PARTS = {"vertebral_body": {"en": "vertebral body", "fr": "corps vertébral"},
                "pedicle": {"en": "pedicle", "fr": "pédicule"},
                "posterior_wall": {"en": "posterior wall", "fr": "mur postérieur"}}
_SIDE_M = {"left": "gauche", "right": "droit"}


def t(key: str, lang: str = "en") -> str:
    """Translate *key* into *lang* (``"en"`` or ``"fr"``); falls back to English, then to the key."""
    entry = STRINGS.get(key)
    if entry is None:
        if key.startswith("vertebrae_"):  # vertebrae_T7 -> "T7"
            return key[len("vertebrae_"):]
        m = _LEVEL_PART.fullmatch(key)  # pedicle_L1_right -> "pedicle L1 right" / "pédicule L1 droit"
        if m is not None:
            part, level, side = m.group(1), m.group(2), m.group(3)
            words = _LEVEL_PARTS[part].get(lang) or _LEVEL_PARTS[part]["en"]
            side_txt = "" if not side else " " + (_SIDE_M[side] if lang == "fr" and part == "pedicle" else
                                                  t(side, lang))
            return f"{words} {level}{side_txt}"
        return key.replace("_", " ")
    return entry.get(lang) or entry.get("en") or key


#: Gender and number of each structure's French name (:func:`t`), for the words that agree with it (a status "non
#: évaluée", "couverte par ..."): ``"m"`` masculine singular, ``"f"`` feminine singular, ``"mp"`` / ``"fp"`` plural.
#: The gender of the name's head noun (artère, veine, carotide, moelle: feminine; canal, pharynx: masculine; voies
#: aériennes: feminine plural). Every structure a shipped protocol checks has an entry
#: (tests/export/test_french_grammar.py); :func:`fr_gender` takes vertebrae (la vertèbre C2) as feminine and the
#: parts of a level (corps vertébral, pédicule, mur postérieur) as masculine.
FR_GENDER: dict[str, str] = {
    "body": "f", "bone": "m", "lesion": "f", "spinal_canal": "m", "spinal_cord": "f",
    "vertebral_artery_left": "f", "vertebral_artery_right": "f",
    "vertebral_artery_canal_left": "m", "vertebral_artery_canal_right": "m",
    "common_carotid_artery_left": "f", "common_carotid_artery_right": "f",
    "internal_carotid_artery_left": "f", "internal_carotid_artery_right": "f",
    "internal_jugular_vein_left": "f", "internal_jugular_vein_right": "f",
    "airway": "fp", "trachea": "f", "larynx": "m", "pharynx": "m", "esophagus": "m", "aorta": "f",
    "inferior_vena_cava": "f", "segmental_artery": "fp", "lung": "m", "mandible": "f", "skull": "m",
    "brainstem": "m", "parotid_gland_left": "f", "parotid_gland_right": "f", "other_bone": "m",
    "other_vertebrae": "fp",
    # the SINS components (osteoplan.export.risk_table: "douleur, alignement radiographique manquants")
    "sins_comp_location": "f", "sins_comp_pain": "f", "sins_comp_lesion_type": "f", "sins_comp_alignment": "m",
    "sins_comp_collapse": "m", "sins_comp_posterolateral": "f",
}


def fr_gender(key: str) -> str:
    """Gender and number (``"m"``, ``"f"``, ``"mp"``, ``"fp"``) of the French name of structure *key*
    (:data:`FR_GENDER`; a vertebra ``vertebrae_*`` is feminine, a part of a level masculine, anything else
    masculine singular)."""
    if key in FR_GENDER:
        return FR_GENDER[key]
    if key.startswith("vertebrae_"):
        return "f"
    return "m"


def agree(key: str, lang: str = "en", structures: "str | list[str] | tuple[str, ...] | None" = None,
          gender: str | None = None) -> str:
    """:func:`t` of *key* in the form that agrees with the French name(s) of *structures* (one key, or several: then
    plural, feminine only when every name is), or with *gender* (``"m"``, ``"f"``, ``"mp"``, ``"fp"``) when given.

    The forms are the entry's ``fr_f``, ``fr_mp``, ``fr_fp`` (``fr`` is the masculine singular); a form the entry
    lacks is the masculine singular one (an invariable word such as "échec"). English is :func:`t` itself.

    >>> agree("status_not_assessed", "fr", "vertebral_artery_left")
    'non évaluée'
    >>> agree("status_not_assessed", "fr", ["pharynx", "trachea"])
    'non évalués'
    """
    if lang != "fr" or key not in STRINGS:
        return t(key, lang)
    if gender is None:
        keys = [structures] if isinstance(structures, str) else list(structures or ())
        gs = [fr_gender(k) for k in keys]
        plural = len(gs) > 1 or any(g.endswith("p") for g in gs)
        fem = bool(gs) and all(g.startswith("f") for g in gs)
        gender = ("f" if fem else "m") + ("p" if plural else "")
    entry = STRINGS[key]
    return (entry.get(f"fr_{gender}") if gender != "m" else None) or entry.get("fr") or t(key, lang)


STRINGS.update({
    # the report's header and mask sources (osteoplan.export.report)
    "ct": {"en": "CT", "fr": "Scanner"},
    "ct_format_phantom": {"en": "phantom", "fr": "fantôme"},
    "case_default": {"en": "case", "fr": "dossier"},
    "hydro_max": {"en": "Largest displacement needed", "fr": "Plus grand déplacement nécessaire"},
    # what hydrodissection buys is not published (clinical primer): the limit is the protocol's assumption
    "hydro_limit": {"en": "the protocol assumes hydrodissection can displace up to",
                    "fr": "le protocole suppose que l'hydrodissection peut déplacer jusqu'à"},
    "hydro_limit_source": {"en": "configurable default, no published source: how far hydrodissection displaces a "
                                 "structure is not published",
                           "fr": "valeur par défaut configurable, sans source publiée : le déplacement obtenu par "
                                 "l'hydrodissection n'est pas publié"},
    "source_phantom-truth": {"en": "phantom-truth", "fr": "vérité terrain du fantôme"},
    "source_classical": {"en": "classical", "fr": "segmentation classique"},
    "source_classical-contrast": {"en": "classical-contrast", "fr": "segmentation classique (contraste)"},
    "source_classical:rib-count": {"en": "classical:rib-count", "fr": "segmentation classique (comptage des côtes)"},
    "source_derived:vertebra-ring-holes": {"en": "derived:vertebra-ring-holes",
                                           "fr": "déduit (trous des anneaux vertébraux)"},
    "source_segmented": {"en": "segmented", "fr": "segmenté"},
    "source_classical: bony canal (transverse foramina)": {
        "en": "classical: bony canal (transverse foramina)",
        "fr": "segmentation classique : canal osseux (foramens transversaires)"},
    "at_least": {"en": "at least", "fr": "au moins"},
    "provided_mask": {"en": "provided mask", "fr": "masque fourni"},
    "distance_cap_note": {"en": "≥: the structure is farther than the distance computed (capped at 20 mm).",
                          "fr": "≥ : la structure est plus loin que la distance calculée (plafonnée à 20 mm)."},
    "constraint_skin": {"en": "path reaches the skin inside the field of view and within the maximum depth",
                        "fr": "le trajet atteint la peau dans le champ de vue et dans la profondeur maximale"},
    "constraint_bone_entry": {"en": "bone entry inside the protocol's entry zone on the target bone",
                              "fr": "entrée osseuse dans la zone d'entrée du protocole sur l'os cible"},
    "constraint_pedicle_axis": {"en": "path within the maximum angle to the pedicle axis",
                                "fr": "trajet dans l'angle maximal à l'axe du pédicule"},
    "constraint_through_pedicle": {"en": "the needle passes through the pedicle isthmus",
                                   "fr": "l'aiguille passe par l'isthme du pédicule"},
    "constraint_screw_length": {"en": "bone entry to target fits the screw catalogue and the length floor",
                                "fr": "la distance entrée osseuse → cible correspond au catalogue de vis et à la "
                                      "longueur minimale"},
    "constraint_dens_axis": {"en": "path within the maximum angle to the dens axis",
                             "fr": "trajet dans l'angle maximal à l'axe de l'odontoïde"},
    "constraint_tip_to_cortex": {"en": "tip at most the allowed distance short of the apical cortex",
                                 "fr": "pointe à au plus la distance permise de la corticale apicale"},
    "constraint_thread_waist": {"en": "the screw's thread crosses the dens waist",
                                "fr": "le filetage de la vis franchit le col de l'odontoïde"},
    "constraint_thread_lesion": {"en": "the screw's thread crosses the lesion",
                                 "fr": "le filetage de la vis traverse la lésion"},
    "constraint_corridor": {"en": "path medial to the carotid sheath at its depth (between it and the visceral column)",
                            "fr": "trajet en dedans de la gaine carotidienne à sa profondeur (entre elle et l'axe viscéral)"},
    "constraint_viscus": {"en": "the instrument does not enter (displaced by hydrodissection, never crossed)",
                          "fr": "l'instrument ne pénètre pas (refoulé par l'hydrodissection, jamais traversé)"},
    "constraint_containment": {"en": "the implant or needle stays inside the target bone with the containment margin",
                               "fr": "l'implant ou l'aiguille reste dans l'os cible avec la marge de confinement"},
    "constraint_entry_angle": {"en": "path meets the target bone's cortex at least at the minimum incidence angle",
                               "fr": "le trajet aborde la corticale de l'os cible au moins à l'angle d'incidence minimal"},
    "constraint_bone_on_way": {"en": "no other bone (mandible, C1, C3, ribs...) crossed before the target bone",
                               "fr": "aucun autre os (mandibule, C1, C3, côtes...) traversé avant l'os cible"},
    "constraint_hydrodissection_limit": {"en": "displacement needed within what hydrodissection achieves",
                                         "fr": "déplacement nécessaire dans les limites de l'hydrodissection"},
})

# views: orientation captions, legends, structures drawn by the views (branch "views")
STRINGS.update({
    "orient_anterior_left": {"en": "anterior left", "fr": "antérieur à gauche"},
    "orient_anterior_right": {"en": "anterior right", "fr": "antérieur à droite"},
    "orient_pleft_right": {"en": "patient left on image right", "fr": "gauche du patient à droite de l'image"},
    "orient_pleft_left": {"en": "patient left on image left", "fr": "gauche du patient à gauche de l'image"},
    "orient_head_right": {"en": "head right", "fr": "tête à droite"},
    "orient_head_left": {"en": "head left", "fr": "tête à gauche"},
    "orient_head_up": {"en": "head up", "fr": "tête en haut"},
    "orient_head_down": {"en": "head down", "fr": "tête en bas"},
    "orient_anterior_up": {"en": "anterior up", "fr": "antérieur en haut"},
    "orient_anterior_down": {"en": "anterior down", "fr": "antérieur en bas"},
    "orient_pleft_up": {"en": "patient left up", "fr": "gauche du patient en haut"},
    "orient_pleft_down": {"en": "patient left down", "fr": "gauche du patient en bas"},
    "orient_oblique": {"en": "oblique plane: the letters at the edges give the patient directions",
                       "fr": "plan oblique : les lettres des bords donnent les directions du patient"},
    "orient_other_oblique": {"en": "other axis oblique (see the edge letters)",
                             "fr": "autre axe oblique (voir les lettres des bords)"},
    "instrument_path": {"en": "trocar, skin → target", "fr": "trocart, peau → cible"},
    "orientation_convention": {
        "en": "Orientation: every sagittal reformat and lateral fluoroscopy view shows anterior on the LEFT and the "
              "head up (as a lateral radiograph viewed from the patient's left); axial, coronal and AP views show the "
              "patient's left on the image RIGHT (letter L). Oblique views carry the patient directions at each edge.",
        "fr": "Orientation : toutes les reconstructions sagittales et les vues de profil montrent l'antérieur à GAUCHE "
              "et la tête en haut (comme un profil vu depuis la gauche du patient) ; les vues axiales, coronales et de "
              "face montrent la gauche du patient à DROITE de l'image (lettre G). Les vues obliques portent les "
              "directions du patient sur chaque bord."},
})

# fracture-risk table (osteoplan.export.risk_table): SINS components, options, how obtained, evidence in words
STRINGS.update({
    "sins_title": {"en": "SINS — Spinal Instability Neoplastic Score (Fisher et al., Spine 2010;35:E1221)",
                   "fr": "SINS — Spinal Instability Neoplastic Score (Fisher et al., Spine 2010;35:E1221)"},
    "risk_col_component": {"en": "Component", "fr": "Composante"},
    "risk_col_value": {"en": "Value", "fr": "Valeur"},
    "risk_col_points": {"en": "Points", "fr": "Points"},
    "risk_col_how": {"en": "How obtained", "fr": "Origine"},
    "risk_col_evidence": {"en": "Evidence", "fr": "Éléments (mesures)"},
    "risk_total": {"en": "SINS total", "fr": "Total SINS"},
    "risk_missing_list": {"en": "{missing} missing", "fr": "{missing} manquant", "fr_f": "{missing} manquante",
                          "fr_mp": "{missing} manquants", "fr_fp": "{missing} manquantes"},
    "or": {"en": "or", "fr": "ou"},
    "colon": {"en": ": ", "fr": " : "},
    "sins_referral": {"en": "≥ 7: surgical/interventional consultation recommended",
                      "fr": "≥ 7 : avis chirurgical/interventionnel recommandé"},
    "sins_cat_stable": {"en": "stable", "fr": "stable"},
    "sins_cat_potentially unstable": {"en": "potentially unstable", "fr": "potentiellement instable"},
    "sins_cat_unstable": {"en": "unstable", "fr": "instable"},
    "sins_comp_location": {"en": "Location", "fr": "Localisation"},
    "sins_comp_pain": {"en": "Pain", "fr": "Douleur"},
    "sins_comp_lesion_type": {"en": "Bone lesion", "fr": "Lésion osseuse"},
    "sins_comp_alignment": {"en": "Radiographic alignment", "fr": "Alignement radiographique"},
    "sins_comp_collapse": {"en": "Vertebral body collapse", "fr": "Tassement du corps vertébral"},
    "sins_comp_posterolateral": {"en": "Posterolateral involvement", "fr": "Atteinte postérolatérale"},
    "sins_opt_junctional": {"en": "junctional (occiput–C2, C7–T2, T11–L1, L5–S1)",
                            "fr": "jonctionnelle (occiput–C2, C7–T2, T11–L1, L5–S1)"},
    "sins_opt_mobile": {"en": "mobile spine (C3–C6, L2–L4)", "fr": "rachis mobile (C3–C6, L2–L4)"},
    "sins_opt_semi-rigid": {"en": "semi-rigid (T3–T10)", "fr": "semi-rigide (T3–T10)"},
    "sins_opt_rigid": {"en": "rigid (S2–S5)", "fr": "rigide (S2–S5)"},
    "sins_opt_mechanical": {"en": "mechanical pain", "fr": "douleur mécanique"},
    "sins_opt_occasional": {"en": "occasional, non-mechanical pain", "fr": "douleur occasionnelle, non mécanique"},
    "sins_opt_pain_none": {"en": "pain-free", "fr": "pas de douleur"},
    "sins_opt_lytic": {"en": "lytic", "fr": "lytique"},
    "sins_opt_mixed": {"en": "mixed (lytic/blastic)", "fr": "mixte (lytique/condensante)"},
    "sins_opt_blastic": {"en": "blastic", "fr": "condensante"},
    "sins_opt_subluxation": {"en": "subluxation/translation", "fr": "subluxation/translation"},
    "sins_opt_deformity": {"en": "de novo deformity (kyphosis/scoliosis)",
                           "fr": "déformation de novo (cyphose/scoliose)"},
    "sins_opt_normal": {"en": "normal alignment", "fr": "alignement normal"},
    "sins_opt_over-50": {"en": "> 50 % collapse", "fr": "tassement > 50 %"},
    "sins_opt_under-50": {"en": "< 50 % collapse", "fr": "tassement < 50 %"},
    "sins_opt_none-over-50-involved": {"en": "no collapse, > 50 % of the body involved",
                                       "fr": "pas de tassement, > 50 % du corps atteint"},
    "sins_opt_collapse_none": {"en": "no collapse", "fr": "pas de tassement"},
    "sins_opt_bilateral": {"en": "bilateral", "fr": "bilatérale"},
    "sins_opt_unilateral": {"en": "unilateral", "fr": "unilatérale"},
    "sins_opt_posterolateral_none": {"en": "none", "fr": "aucune"},
    "sins_opt_alignment_none": {"en": "normal alignment", "fr": "alignement normal"},
    "sins_opt_location_none": {"en": "none", "fr": "aucune"},
    "sins_opt_lesion_type_none": {"en": "none", "fr": "aucune"},
    "risk_how_ct-proposed": {"en": "CT-proposed", "fr": "proposé par le scanner"},
    "risk_how_clinician": {"en": "user (clinician)", "fr": "utilisateur (clinicien)"},
    "risk_how_override": {"en": "user, replacing the CT proposal", "fr": "utilisateur, à la place de la proposition scanner"},
    "risk_how_missing": {"en": "MISSING", "fr": "MANQUANT"},
    "risk_ev_level": {"en": "vertebral level {level}", "fr": "niveau vertébral {level}"},
    "risk_ev_lesion_type": {
        "en": "lesion median {median} HU (10th–90th percentile {p10}–{p90} HU) vs normal cancellous bone of this "
              "vertebra {normal} HU; {below} % of the lesion more than {margin} HU below normal, {above} % more than "
              "{margin} HU above",
        "fr": "médiane de la lésion {median} UH (10e–90e percentile {p10}–{p90} UH) vs os spongieux normal de cette "
              "vertèbre {normal} UH ; {below} % de la lésion à plus de {margin} UH sous la normale, {above} % à plus "
              "de {margin} UH au-dessus"},
    "risk_ev_collapse": {
        "en": "anteroinferior body corner to dens apex {h} mm = {ratio} % of the population mean {ref} ± {sd} mm "
              "(Eur Spine J 2009;18:271); lesion in {inv} % of the anterior column (dens + body)",
        "fr": "coin antéro-inférieur du corps → apex de l'odontoïde {h} mm = {ratio} % de la moyenne de population "
              "{ref} ± {sd} mm (Eur Spine J 2009;18:271) ; lésion dans {inv} % de la colonne antérieure "
              "(odontoïde + corps)"},
    "risk_ev_posterolateral": {
        "en": "lesion in the posterolateral elements (pedicle, lateral mass, lamina): left {left} mL, right {right} mL "
              "(a side counts from {min} mL)",
        "fr": "lésion dans les éléments postérolatéraux (pédicule, masse latérale, lame) : gauche {left} mL, droite "
              "{right} mL (un côté compte à partir de {min} mL)"},
    "risk_ev_missing_clinical": {
        "en": "clinical input not given (osteoplan risk {opt} ...); the total is given as a range",
        "fr": "donnée clinique non fournie (osteoplan risk {opt} ...) ; le total est donné sous forme d'intervalle"},
    "risk_ev_missing_ct": {"en": "not measurable on this CT; give it as an override (--override)",
                           "fr": "non mesurable sur ce scanner ; la donner en correction (--override)"},
    "risk_ev_clinician": {"en": "entered by the clinician", "fr": "saisi par le clinicien"},
    "risk_ev_override": {"en": "replaces the CT proposal \"{proposed}\"",
                         "fr": "remplace la proposition du scanner « {proposed} »"},
    "risk_ev_ct_measured": {"en": "CT measured", "fr": "mesures scanner"},
    "risk_note_collapse_c2": {
        "en": "C2 has no superior endplate: collapse is judged against a population height, not a neighbour; "
              "confirm on a sagittal reformat",
        "fr": "C2 n'a pas de plateau supérieur : le tassement est jugé par rapport à une hauteur de population, pas à "
              "une vertèbre voisine ; à confirmer sur une reconstruction sagittale"},
    "risk_note_isodense": {"en": "lesion nearly isodense to normal bone: low-confidence proposal, please confirm",
                           "fr": "lésion presque isodense à l'os normal : proposition peu fiable, à confirmer"},
})


def _fr_list(text: str) -> str:
    """Translate a comma-separated list of structure keys (unknown words kept)."""
    return _names_list(text, "fr")


def _names_list(text: str, lang: str) -> str:
    """A comma-separated list of structure keys with each key replaced by the name every page shows for it
    (:func:`structure_label`); a word that is not a structure key is kept as it is."""
    out = []
    for w in text.split(","):
        w = w.strip()
        out.append(structure_label(w, lang) if w in STRINGS or re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)+", w) else w)
    return ", ".join(out)


_Z = r"(-?[\d.]+)"  # a z coordinate (mm), may be negative

#: Anatomy-stage sentences (osteoplan.anatomy: segment, airway, canal, c2, landmarks, pipeline). A fourth
#: element lists groups that are themselves sentences (an error message, a rejection reason), translated
#: recursively by :func:`translate_text`; when such a group is unknown the whole line stays English.
_ANATOMY_PATTERNS_FR: list[tuple] = [
    # segment.py
    (r"airway: classical \(connected internal air near the midline, nasal cavity to trachea; pharynx, larynx and "
     r"trachea are parts of it\)",
     "voies aériennes : méthode classique (air interne connexe proche de la ligne médiane, des fosses nasales à la "
     "trachée ; pharynx, larynx et trachée en font partie)", ()),
    (r"airway: no internal air found \(airway mask empty\)",
     "voies aériennes : aucun air interne trouvé (masque des voies aériennes vide)", ()),
    (r"spinal_canal: NOT segmented \((.+)\)", "canal rachidien : NON segmenté ({0})", (), (0,)),
    # airway.py, prefixed "airway split: " by segment.py / pipeline.py
    (r"airway split: (.+)", "subdivision des voies aériennes : {0}", (), (0,)),
    (r"the compact lumen at z = " + _Z + r" mm lies above the laryngeal levels \(below C2\): not the trachea",
     "la lumière compacte à z = {0} mm est au-dessus des niveaux laryngés (sous C2) : ce n'est pas la trachée", ()),
    (r"laryngeal inlet \(pharynx/larynx boundary\) at z = " + _Z + r" mm from the lumen shape \(airway ([\d.]+)x "
     r"wider than the ([\d.]+) mm tracheal/subglottic lumen below\)",
     "orifice supérieur du larynx (limite pharynx/larynx) à z = {0} mm d'après la forme de la lumière (voies "
     "aériennes {1} fois plus larges que la lumière trachéale/sous-glottique de {2} mm sous-jacente)", ()),
    (r"laryngeal inlet at z = " + _Z + r" mm from vertebral level \(fallback: ([\d.]+) mm below the C2 inferior "
     r"endplate; no widening of the airway found at the laryngeal levels\)",
     "orifice supérieur du larynx à z = {0} mm d'après le niveau vertébral (par défaut : {1} mm sous le plateau "
     "inférieur de C2 ; aucun élargissement des voies aériennes aux niveaux laryngés)", ()),
    (r"larynx/trachea boundary \(lower border of the cricoid\) at z = " + _Z + r" mm: ([\d.]+) mm below the inlet "
     r"\(adult larynx length (\d+)-(\d+) mm, Gray's Anatomy\)",
     "limite larynx/trachée (bord inférieur du cartilage cricoïde) à z = {0} mm : {1} mm sous l'orifice supérieur "
     "du larynx (longueur du larynx adulte {2}–{3} mm, Gray's Anatomy)", ()),
    (r"the airway is one tracheal-shaped lumen up to the top of the CT: labelled trachea; pharynx and larynx NOT "
     r"segmented \(above the field of view, or the larynx not identified\)",
     "les voies aériennes forment une seule lumière de forme trachéale jusqu'en haut du scanner : étiquetées "
     "trachée ; pharynx et larynx NON segmentés (hors champ vers le haut, ou larynx non identifié)", ()),
    (r"the airway is already pharynx-wide at the bottom of the CT \(z = " + _Z + r" mm\): labelled pharynx; larynx "
     r"and trachea NOT segmented \(no laryngeal evidence in the field of view; give the C2 level or masks\)",
     "les voies aériennes ont déjà la largeur du pharynx en bas du scanner (z = {0} mm) : étiquetées pharynx ; "
     "larynx et trachée NON segmentés (aucun argument pour le larynx dans le champ de vue ; donner le niveau de "
     "C2 ou des masques)", ()),
    (r"airway NOT split: no laryngeal inlet found on the lumen shape and no vertebral level; pharynx, larynx and "
     r"trachea NOT segmented \(the 'airway' mask stands for all three\)",
     "voies aériennes NON subdivisées : ni orifice supérieur du larynx sur la forme de la lumière, ni niveau "
     "vertébral ; pharynx, larynx et trachée NON segmentés (le masque « voies aériennes » les représente tous "
     "les trois)", ()),
    (r"the inlet \(z = " + _Z + r" mm\) lies above the airway in view: pharynx NOT segmented",
     "l'orifice supérieur du larynx (z = {0} mm) est au-dessus des voies aériennes visibles : pharynx NON "
     "segmenté", ()),
    (r"larynx NOT segmented: its levels are above the airway in view",
     "larynx NON segmenté : ses niveaux sont au-dessus des voies aériennes visibles", ()),
    (r"larynx NOT segmented: its levels are below the airway in view \(the CT stops above the larynx\)",
     "larynx NON segmenté : ses niveaux sont sous les voies aériennes visibles (le scanner s'arrête au-dessus "
     "du larynx)", ()),
    (r"trachea NOT segmented: the airway in view ends at z = " + _Z + r" mm, above the cricoid level \(z = " + _Z
     + r" mm\)",
     "trachée NON segmentée : les voies aériennes visibles s'arrêtent à z = {0} mm, au-dessus du niveau du "
     "cricoïde (z = {1} mm)", ()),
    (r"(pharynx|larynx) NOT segmented \(no air at its levels in the field of view\)",
     "{0} NON segmenté (pas d'air à ses niveaux dans le champ de vue)", ()),
    (r"trachea NOT segmented \(no air at its levels in the field of view\)",
     "trachée NON segmentée (pas d'air à ses niveaux dans le champ de vue)", ()),
    (r"(pharynx|larynx): partial \((.+)\)", "{0} : partiel ({1})", (), (1,)),
    (r"trachea: partial \((.+)\)", "trachée : partielle ({0})", (), (0,)),
    (r"the CT ends inside the pharynx", "le scanner s'arrête dans le pharynx", ()),
    (r"the CT ends above the cricoid", "le scanner s'arrête au-dessus du cartilage cricoïde", ()),
    (r"only the hypopharynx behind the larynx is in view",
     "seul l'hypopharynx, en arrière du larynx, est dans le champ de vue", ()),
    # canal.py errors (inside "spinal_canal: NOT segmented (...)" or "C2 cannot be located: ...")
    (r"No spinal canal found: no soft-tissue region enclosed by vertebral bone\. Check that the CT covers the "
     r"cervical spine, or provide a spinal_canal mask\.",
     "Aucun canal rachidien trouvé : aucune région de parties molles entourée d'os vertébral. Vérifier que le "
     "scanner couvre le rachis cervical, ou fournir un masque spinal_canal.", ()),
    (r"No spinal canal found spanning 3 slices or more; the CT may not cover the spine\.",
     "Aucun canal rachidien trouvé sur 3 coupes ou plus ; le scanner ne couvre peut-être pas le rachis.", ()),
    (r"No spinal canal found: closed vertebral rings over only ([\d.]+) mm \(less than one vertebral body height, "
     r"([\d.]+) mm\); the CT may hold too little of the spine \(e\.g\. cropped around the cord\)\. Provide a "
     r"spinal_canal mask\.",
     "Aucun canal rachidien trouvé : anneaux vertébraux fermés sur seulement {0} mm (moins que la hauteur d'un "
     "corps vertébral, {1} mm) ; le scanner contient peut-être trop peu du rachis (p. ex. recadré autour de la "
     "moelle). Fournir un masque spinal_canal.", ()),
    # pipeline.py
    (r"C2 NOT located: (.+)", "C2 NON localisée : {0}", (), (0,)),
    (r"C2: (.+)", "C2 : {0}", (), (0,)),
    (r"the C2 found lies ([\d.]+) mm from the point given inside C2: the automatic level and the point disagree, so "
     r"neither is trusted\. Check the point \(LPS mm, in the C2 body or dens\) or give a C2 mask \(--masks\)\.",
     "la C2 trouvée est à {0} mm du point donné dans C2 : le niveau automatique et le point divergent, aucun des "
     "deux n'est retenu. Vérifier le point (LPS mm, dans le corps ou l'odontoïde de C2) ou fournir un masque de "
     "C2 (--masks).", ()),
    (r"the point given lies ([\d.]+) mm below the C2 found without it \(([\d.]+) mm beneath the anteroinferior "
     r"corner of its body, along the dens axis\): it may be in C3\. The automatic level and the point disagree, so "
     r"neither is trusted\. Check the point \(LPS mm, in the C2 body or dens\) or give a C2 mask \(--masks\)\.",
     "le point donné est à {0} mm sous la C2 trouvée sans lui ({1} mm sous le coin antéro-inférieur de son corps, "
     "le long de l'axe de l'odontoïde) : il est peut-être dans C3. Le niveau automatique et le point divergent, "
     "aucun des deux n'est retenu. Vérifier le point (LPS mm, dans le corps ou l'odontoïde de C2) ou fournir un "
     "masque de C2 (--masks).", ()),
    (r"the C2 found from the point given and the C2 found without it, which the point lies in or next to, differ "
     r"\(Dice ([\d.]+)\): the automatic level and the point disagree, so neither is trusted\. Check the point "
     r"\(LPS mm, in the C2 body or dens\) or give a C2 mask \(--masks\)\.",
     "la C2 trouvée à partir du point donné et la C2 trouvée sans lui, dans laquelle ou contre laquelle se trouve "
     "le point, diffèrent (Dice {0}) : le niveau automatique et le point divergent, aucun des deux n'est retenu. "
     "Vérifier le point (LPS mm, dans le corps ou l'odontoïde de C2) ou fournir un masque de C2 (--masks).", ()),
    (r"lesion: ([\d.]+) mL lytic \(threshold (-?[\d.]+) HU from (.+)\)",
     "lésion : {0} mL lytique (seuil {1} UH, d'après {2})", (), (2,)),
    (r"C2 interior", "l'intérieur de C2", ()),
    (r"C2 \+ C3 interior", "l'intérieur de C2 et C3", ()),
    # segment.py contrast detection
    (r"contrast detected \(series: (.+)\); vessels segmented as bright tubes \(coarse heuristic\): (.+)",
     "produit de contraste détecté (série : {0}) ; vaisseaux segmentés comme structures tubulaires hyperdenses "
     "(heuristique grossière) : {1}", (1,), (0,)),
    (r"contrast detected \(image: (.+)\); vessels segmented as bright tubes \(coarse heuristic\): (.+)",
     "produit de contraste détecté (image : {0}) ; vaisseaux segmentés comme structures tubulaires hyperdenses "
     "(heuristique grossière) : {1}", (1,), (0,)),
    (r"contrast stated by the series metadata", "contraste indiqué par les métadonnées de la série", ()),
    (r"(\d+) bright tubular structures \(150-500 HU, >= 35 mm long\) found, (\d+) right and (\d+) left of the "
     r"midline",
     "{0} structures tubulaires hyperdenses (150–500 UH, ≥ 35 mm de long), {1} à droite et {2} à gauche de la "
     "ligne médiane", ()),
    (r"lesion NOT assessed: (.+)", "lésion NON évaluée : {0}", (), (0,)),
    (r"lesion: provided mask used \(([\d.]+) mL\)", "lésion : masque fourni utilisé ({0} mL)", ()),
    (r"lesion: provided mask used \(empty: no lesion\)", "lésion : masque fourni utilisé (vide : pas de lésion)", ()),
    (r"lesion: provided mask used, NOT measured: (.+)", "lésion : masque fourni utilisé, NON mesurée : {0}", (), (0,)),
    (r"TotalSegmentator masks used where not provided", "masques TotalSegmentator utilisés là où aucun n'est fourni",
     ()),
    (r"TotalSegmentator backend not available in this build: classical segmentation only",
     "TotalSegmentator non disponible dans cette version : segmentation classique seule", ()),
    (r"provided vertebrae_C2 completed with the provided lesion where it touches C2 \((\d+) voxels\): a vertebra's "
     r"mask includes its lytic cavities",
     "vertebrae_C2 fourni complété par la lésion fournie à son contact ({0} voxels) : le masque d'une vertèbre "
     "inclut ses cavités lytiques", ()),
    # c2.py / landmarks notes (prefixed "C2: ")
    (r"the spinal canal reaches the top of the image \(foramen magnum not in view\)",
     "le canal rachidien atteint le haut de l'image (foramen magnum hors champ)", ()),
    (r"C2/C3 disc not visible: C2 cut ([\d.]+) mm below the dens apex \(population height\)",
     "disque C2/C3 non visible : C2 coupée {0} mm sous l'apex de l'odontoïde (hauteur moyenne de la population)", ()),
    (r"the given point lies below the first level found from the top of the vertebral column: the column was cut "
     r"(.+?) below its top and the vertebra at the point taken; check that it is C2",
     "le point donné est sous le premier niveau trouvé depuis le sommet de la colonne vertébrale : colonne coupée "
     "{0} sous son sommet et vertèbre du point retenue ; vérifier qu'il s'agit bien de C2", ()),
    (r"C2/C3 disc taken at the first deep disc below the given point \(([\d.]+) mm below the top, not ([\d.]+) mm\)",
     "disque C2/C3 placé au premier disque net sous le point donné ({0} mm sous le sommet, et non {1} mm)", ()),
    (r"C2/C3 disc followed under the anterior body: ([\d.]+) mL below it removed from C2",
     "disque C2/C3 suivi sous la partie antérieure du corps vertébral : {0} mL sous le disque retirés de C2", ()),
    (r"the dens reaches the top of the image: the apex may be cut",
     "l'odontoïde atteint le haut de l'image : l'apex est peut-être tronqué", ()),
    (r"the dens is cut by the top of the image: the 'apex' is the image edge, not the dens tip; do not plan on it",
     "l'odontoïde est tronquée par le haut de l'image : l'« apex » est le bord de l'image, pas la pointe de "
     "l'odontoïde ; ne pas planifier sur ce repère", ()),
    (r"metal artefacts \(> (\d+) HU\) at the C2 levels: apex and dens outline less reliable",
     "artefacts métalliques (> {0} UH) aux niveaux de C2 : apex et contour de l'odontoïde moins fiables", ()),
    (r"the first structure found was rejected \((.+)\); C2 taken at the next bone column below: check the level",
     "la première structure trouvée a été rejetée ({0}) ; C2 prise au segment osseux suivant en dessous : "
     "vérifier le niveau", (), (0,)),
    (r"dens too short to measure a waist: waist placed ([\d.]+) mm below the apex",
     "odontoïde trop courte pour mesurer un col : col placé {0} mm sous l'apex", ()),
    (r"the narrowest dens section has less than half the bone of the dens around it \(lytic destruction or "
     r"fracture\?\): waist position and diameter are uncertain",
     "la section la plus étroite de l'odontoïde contient moins de la moitié de l'os de l'odontoïde adjacente "
     "(ostéolyse ou fracture ?) : position et diamètre du col incertains", ()),
    (r"anteroinferior body to dens apex ([\d.]+) mm is outside the usual range \(37\.6 \+/- 3\.3 mm, Eur Spine J "
     r"2009;18:271\): check the C2 localisation",
     "distance coin antéro-inférieur du corps – apex de l'odontoïde de {0} mm hors de l'intervalle habituel "
     "(37.6 ± 3.3 mm, Eur Spine J 2009;18:271) : vérifier la localisation de C2", ()),
    # C2CandidateRejected (c2.py) and its reasons (plausibility_problems)
    (r"C2 candidate rejected( at the given point)?: (.+)\. (Check that the point given is inside C2, or provide a "
     r"vertebrae_C2 mask\.|Give a point inside C2 \(--hint-lps X Y Z, LPS mm\) or a vertebrae_C2 mask\.)",
     "Candidat C2 rejeté{0} : {1}. {2}", (), (0, 1, 2)),
    (r"at the given point", " au point donné", ()),  # group 0 above (translate_text strips the space)
    (r"Check that the point given is inside C2, or provide a vertebrae_C2 mask\.",
     "Vérifier que le point donné est bien dans C2, ou fournir un masque vertebrae_C2.", ()),
    (r"Give a point inside C2 \(--hint-lps X Y Z, LPS mm\) or a vertebrae_C2 mask\.",
     "Donner un point dans C2 (--hint-lps X Y Z, LPS mm) ou un masque vertebrae_C2.", ()),
    (r"anteroinferior body to dens apex ([\d.]+) mm is outside ([\d.]+)-([\d.]+) mm \(37\.6 \+/- 3 x 3\.3 mm, Eur "
     r"Spine J 2009;18:271, widened by the voxel size\)",
     "distance coin antéro-inférieur du corps – apex de l'odontoïde de {0} mm hors de l'intervalle {1}–{2} mm "
     "(37.6 ± 3 × 3.3 mm, Eur Spine J 2009;18:271, élargi de la taille du voxel)", ()),
    (r"the candidate dens is separated from the body by ([\d.]+) mm without bone \(more than ([\d.]+) mm: two "
     r"structures, or a lytic lesion through the dens\)",
     "l'odontoïde candidate est séparée du corps par {0} mm sans os (plus de {1} mm : deux structures, ou une "
     "lésion lytique traversant l'odontoïde)", ()),
    (r"the dens apex candidate lies (-?[\d.]+) mm in front of the canal centre \(at least ([\d.]+) mm expected: dens "
     r"tip to ventral dura 7\.7 mm, JKNS 2018;61\(4\)\): probably the clivus or the C1 ring",
     "l'apex candidat de l'odontoïde est à {0} mm en avant du centre du canal (au moins {1} mm attendus : pointe "
     "de l'odontoïde – dure-mère ventrale 7.7 mm, JKNS 2018;61(4)) : probablement le clivus ou l'arc de C1", ()),
    (r"the dens apex candidate lies ([\d.]+) mm left of the canal centre \(the dens is midline; at most ([\d.]+) mm\)",
     "l'apex candidat de l'odontoïde est à {0} mm à gauche du centre du canal (l'odontoïde est médiane ; au plus "
     "{1} mm)", ()),
    (r"the dens apex candidate lies ([\d.]+) mm right of the canal centre \(the dens is midline; at most ([\d.]+) "
     r"mm\)",
     "l'apex candidat de l'odontoïde est à {0} mm à droite du centre du canal (l'odontoïde est médiane ; au plus "
     "{1} mm)", ()),
    # AnatomyError messages of c2.py (inside "C2 NOT located: ...")
    (r"C2 cannot be located: (.+)", "C2 ne peut pas être localisée : {0}", (), (0,)),
    (r"C2 cannot be located: the spinal canal spans fewer than 3 slices\. The CT may not include the cervical "
     r"spine\.",
     "C2 ne peut pas être localisée : le canal rachidien couvre moins de 3 coupes. Le scanner n'inclut peut-être "
     "pas le rachis cervical.", ()),
    (r"C2 not found: no vertebral body or dens anterior to the spinal canal\. The CT may not include the upper "
     r"cervical spine; check the field of view or give a point inside C2\.",
     "C2 non trouvée : ni corps vertébral ni odontoïde en avant du canal rachidien. Le scanner n'inclut peut-être "
     "pas le rachis cervical haut ; vérifier le champ de vue ou donner un point dans C2.", ()),
    (r"The point given inside C2 is more than ([\d.]+) mm below the top of the vertebral column found on this CT; "
     r"place it in the C2 body or dens\.",
     "Le point donné dans C2 est plus de {0} mm sous le sommet de la colonne vertébrale trouvée sur ce scanner ; "
     "le placer dans le corps ou l'odontoïde de C2.", ()),
    (r"C2 not in the field of view: the CT stops less than ([\d.]+) mm below the top of the vertebral column\. Give "
     r"a CT that covers C1 to C3\.",
     "C2 hors du champ de vue : le scanner s'arrête moins de {0} mm sous le sommet de la colonne vertébrale. "
     "Fournir un scanner couvrant C1 à C3.", ()),
    (r"C2 not in the field of view: the CT stops less than ([\d.]+) mm below the top of the vertebral column, above "
     r"the C2 body\. Give a CT that covers C1 to C3\.",
     "C2 hors du champ de vue : le scanner s'arrête moins de {0} mm sous le sommet de la colonne vertébrale, "
     "au-dessus du corps de C2. Fournir un scanner couvrant C1 à C3.", ()),
    (r"C2 not found at the given point: no vertebral body or dens anterior to the spinal canal around it\. Check the "
     r"point \(LPS mm, in the C2 body or dens\)\.",
     "C2 non trouvée au point donné : ni corps vertébral ni odontoïde en avant du canal rachidien à ce niveau. "
     "Vérifier le point (LPS mm, dans le corps ou l'odontoïde de C2).", ()),
    (r"The point given lies ([\d.]+) mm above the top of the vertebral column in front of the canal \(C1 ring or "
     r"skull base\?\); place it in the C2 body or dens\.",
     "Le point donné est {0} mm au-dessus du sommet de la colonne vertébrale en avant du canal (arc de C1 ou base "
     "du crâne ?) ; le placer dans le corps ou l'odontoïde de C2.", ()),
    (r"C2 not found at the given point: it lies more than four vertebral levels below the top of the column\. Place "
     r"it in the C2 body or dens\.",
     "C2 non trouvée au point donné : il est à plus de quatre niveaux vertébraux sous le sommet de la colonne. Le "
     "placer dans le corps ou l'odontoïde de C2.", ()),
    (r"C2 not found: the level chosen as C2 has no bone anterior to the canal\. Give a point inside C2 or provide a "
     r"vertebrae_C2 mask\.",
     "C2 non trouvée : le niveau retenu comme C2 n'a pas d'os en avant du canal. Donner un point dans C2 ou "
     "fournir un masque vertebrae_C2.", ()),
    (r"The point given inside C2 is more than ([\d.]+) mm from any bone \(soft tissue or air\); click inside C2 "
     r"\(body or dens\)\.",
     "Le point donné dans C2 est à plus de {0} mm de tout os (parties molles ou air) ; cliquer dans C2 (corps ou "
     "odontoïde).", ()),
    (r"The point given inside C2 is ([\d.]+) mm from any bone \(more than ([\d.]+) mm: soft tissue or air\); click "
     r"inside C2 \(body or dens\)\.",
     "Le point donné dans C2 est à {0} mm de tout os (plus de {1} mm : parties molles ou air) ; cliquer dans C2 "
     "(corps ou odontoïde).", ()),
    (r"The bone at the given point is not part of the vertebra found at its level \(the nearest is ([\d.]+) mm "
     r"away\): the point may be in C1, the skull base or another bone\. Place it in the C2 body or dens, or provide "
     r"a vertebrae_C2 mask\.",
     "L'os au point donné n'appartient pas à la vertèbre trouvée à ce niveau (la plus proche est à {0} mm) : le "
     "point est peut-être dans C1, la base du crâne ou un autre os. Le placer dans le corps ou l'odontoïde de C2, "
     "ou fournir un masque vertebrae_C2.", ()),
    (r"C2 not separable: the structure found at the C2 level is smaller than ([\d.]+) mL\. Give a point inside C2 "
     r"or provide a vertebrae_C2 mask\.",
     "C2 non individualisable : la structure trouvée au niveau de C2 mesure moins de {0} mL. Donner un point dans "
     "C2 ou fournir un masque vertebrae_C2.", ()),
    (r"The C2 mask is empty; C2 landmarks cannot be computed\.",
     "Le masque de C2 est vide ; les repères de C2 ne peuvent pas être calculés.", ()),
]


#: Planner-generated sentences (osteoplan.planning) and their French form. Each pattern matches the
#: whole English sentence; groups are re-used in the French template (``{0}``, ``{1}``...); a group
#: named in ``_LIST_GROUPS`` is a list of structure keys translated one by one.
_PATTERNS_FR: list[tuple[str, str, tuple[int, ...]]] = [
    (r"at least this much \(distances are computed up to ([\d.]+) mm\)",
     "au moins cette distance (distances calculées jusqu'à {0} mm)", ()),
    (r"atlas-transferred mask, not this patient's vessel", "masque transféré d'un atlas, pas le vaisseau de ce patient", ()),
    (r"not segmented", "non segmenté", ()),
    (r"Gantry tilt ([-\d.]+) deg is beyond the scanner limit \(([\d.]+) deg\): follow the path on oblique reformats\.",
     "Inclinaison du statif de {0}° au-delà de la limite du scanner ({1}°) : suivre le trajet sur des reconstructions obliques.", ()),
    (r"Bull's-eye view needs (.+): cranio-caudal angulation beyond ([\d.]+) deg may not be reachable; "
     r"use the progression view and CT checks instead\.",
     "L'incidence « bull's-eye » demande {0} : une angulation cranio-caudale au-delà de {1}° peut être inaccessible ; "
     "utiliser l'incidence de progression et des contrôles scanner.", ()),
    (r"Screw length ([\d.]+) mm is outside the ([\d.]+)-([\d.]+) mm used in the published series \(PMID 33388865\)\.",
     "Longueur de vis {0} mm hors de l'intervalle {1}–{2} mm des séries publiées (PMID 33388865).", ()),
    (r"The screw leaves less bone than required at the dens waist\.",
     "La vis laisse moins d'os que requis au col de l'odontoïde.", ()),
    (r"Coarse CT \(([\d.]+) mm voxels\): clearances, containment and the dens landmarks are uncertain by about half a "
     r"voxel \(([\d.]+) mm\) or more; re-plan on a thin-slice CT \(<= 1 mm\) before use\.",
     "Scanner à voxels grossiers ({0} mm) : distances, confinement et repères de l'odontoïde incertains d'environ un "
     "demi-voxel ({1} mm) ou plus ; replanifier sur un scanner en coupes fines (≤ 1 mm) avant utilisation.", ()),
    (r"Coarse CT \(([\d.]+) mm voxels\): clearances, containment and the pedicle and body landmarks are uncertain by "
     r"about half a voxel \(([\d.]+) mm\) or more; re-plan on a thin-slice CT \(<= 1 mm\) before use\.",
     "Scanner à voxels grossiers ({0} mm) : distances, confinement et repères du pédicule et du corps incertains "
     "d'environ un demi-voxel ({1} mm) ou plus ; replanifier sur un scanner en coupes fines (≤ 1 mm) avant "
     "utilisation.", ()),
    (r"Not assessed \(not segmented, never reported as clear\): (.+)\.",
     "Structures non évaluées (non segmentées, jamais déclarées à distance) : {0}.", (0,)),
    (r"Not assessed \(not segmented\): (.+)\. Hydrodissection may still be needed\.",
     "Structures non évaluées (non segmentées) : {0}. Une hydrodissection peut rester nécessaire.", (0,)),
    (r"No feasible path with a ([\d.]+) mm screw; ([\d.]+) mm was used\.",
     "Aucun trajet réalisable avec une vis de {0} mm ; une vis de {1} mm a été utilisée.", ()),
    (r"demo: the phantom's exact label map stands in for segmentation \(use --segment to run it\)",
     "démo : la carte de labels exacte du fantôme remplace la segmentation (--segment pour la lancer)", ()),
    (r"lesion volume x ([\d.]+)-([\d.]+) \(filling 61 \+/- 15 %\), upper bound capped at ([\d.]+) mL; "
     r"C2 reference (.+?) mL \(range (.+?) mL\), Mont'Alverne AJNR 2005;26:1641\. Heuristic, no validated formula\.",
     "volume de la lésion × {0}–{1} (remplissage 61 ± 15 %), borne haute plafonnée à {2} mL ; référence C2 {3} mL "
     "(intervalle {4} mL), Mont'Alverne AJNR 2005;26:1641. Heuristique, pas de formule validée.", ()),
    (r"Lesion not segmented \(not assessed\): published range returned\. C2 reference (.+?) mL \(range (.+?) mL\), "
     r"Mont'Alverne AJNR 2005;26:1641\.",
     "Lésion non segmentée (non évaluée) : intervalle publié. Référence C2 {0} mL (intervalle {1} mL), "
     "Mont'Alverne AJNR 2005;26:1641.", ()),
    (r"No lesion found by segmentation\. C2 reference (.+?) mL \(range (.+?) mL\), Mont'Alverne AJNR 2005;26:1641\.",
     "Aucune lésion trouvée par la segmentation. Référence C2 {0} mL (intervalle {1} mL), Mont'Alverne AJNR 2005;26:1641.", ()),
    # implant diameter against the narrowest bone (osteoplan.planning.search.choose_diameter)
    (r"Dens waist diameter unknown: smallest catalogue screw assumed; check the waist on the images\.",
     "Diamètre du col de l'odontoïde inconnu : plus petite vis du catalogue retenue ; vérifier le col sur les "
     "images.", ()),
    (r"Pedicle isthmus diameter unknown: smallest needle assumed; check the pedicle on the images\.",
     "Diamètre de l'isthme pédiculaire inconnu : plus petite aiguille retenue ; vérifier le pédicule sur les "
     "images.", ()),
    # the hydrodissection volume of the published series (Hydrodissection.reference_volume_ml; older plans: the
    # second form, whose SD was rounded to 8)
    (r"(\d+) \+/- ([\d.]+) mL \(mean \+/- SD, range (\d+)-(\d+) mL, (\d+) patients\), PMID (\d+)",
     "{0} ± {1} mL (moyenne ± écart type, intervalle {2}–{3} mL, {4} patients), PMID {5}", ()),
    (r"(\d+) \+/- ([\d.]+) mL \((\d+)-(\d+) mL\), PMID (\d+)", "{0} ± {1} mL ({2}–{3} mL), PMID {4}", ()),
    # the route warning of the C2 cementoplasty (osteoplan.planning.procedures.c2_cementoplasty)
    (r"Lateral / posterolateral route to C2: the needle passes next to the vertebral artery, whose course near "
     r"C1-C2 varies \(it enters the spinal canal between C1 and C2 in (\d+) of (\d+) patients on CT angiography, "
     r"Kim, J Korean Neurosurg Soc 2018, PMID 29526062\); a CT without contrast shows only its bony canal: check "
     r"the artery on a CT angiogram before the procedure\.",
     "Voie latérale / postérolatérale de C2 : l'aiguille passe près de l'artère vertébrale, dont le trajet varie "
     "près de C1–C2 (elle pénètre dans le canal rachidien entre C1 et C2 chez {0} patients sur {1} en "
     "angioscanner, Kim, J Korean Neurosurg Soc 2018, PMID 29526062) ; un scanner sans injection ne montre que "
     "son canal osseux : vérifier l'artère sur un angioscanner avant l'intervention.", ()),
    (r"Dens waist ([\d.]+) mm leaves less than ([\d.]+) mm of bone each side of even the thinnest screw "
     r"\(([\d.]+) mm\): discuss the indication\.",
     "Col de l'odontoïde de {0} mm : moins de {1} mm d'os de chaque côté même avec la vis la plus fine ({2} mm) : "
     "discuter l'indication.", ()),
    (r"Pedicle isthmus ([\d.]+) mm leaves less than ([\d.]+) mm of bone each side of even the thinnest needle "
     r"\(([\d.]+) mm\): discuss the indication\.",
     "Isthme pédiculaire de {0} mm : moins de {1} mm d'os de chaque côté même avec l'aiguille la plus fine ({2} mm) : "
     "discuter l'indication.", ()),
    # cement walls (osteoplan.planning.cement): the neighbour named and how it was judged
    (r"canal", "canal rachidien", ()),
    (r"vertebral_artery_left \(transverse foramen\)", "artère vertébrale gauche (foramen transversaire)", ()),
    (r"vertebral_artery_right \(transverse foramen\)", "artère vertébrale droite (foramen transversaire)", ()),
    (r"no breach; distance from the lesion", "pas de rupture ; distance mesurée depuis la lésion", ()),
    (r"lesion not segmented", "lésion non segmentée", ()),
    (r"neighbour not segmented: not assessed", "voisin non segmenté : non évalué", ()),
    (r"neighbour segmented but empty", "voisin segmenté mais vide", ()),
    (r"Lesion not segmented: cement volume not tailored\.", "Lésion non segmentée : volume de ciment non adapté.", ()),
    (r"No lytic lesion found: cementoplasty not indicated by the images\.",
     "Aucune lésion lytique trouvée : cimentoplastie non indiquée par les images.", ()),
    (r"C2 not segmented: breached walls not assessed\.", "C2 non segmentée : parois rompues non évaluées.", ()),
    (r"NOT segmented \(not assessed\): (.+)", "Structures NON segmentées (non évaluées) : {0}", (0,)),
    (r"provided masks: (.+)", "masques fournis : {0}", (0,)),
    (r"lesion: none found in C2", "lésion : aucune trouvée dans C2", ()),
    (r"C2 located \(classical, confidence ([\d.]+)\)", "C2 localisée (méthode classique, confiance {0})", ()),
    (r"C2 located \(classical\+hint, confidence ([\d.]+)\)",
     "C2 localisée (méthode classique guidée par le point donné, confiance {0})", ()),
    (r"C2 located \(provided-mask, confidence ([\d.]+)\)", "C2 localisée (masque fourni, confiance {0})", ()),
    # anatomy-stage messages (osteoplan.anatomy) that reach the plan's warnings
    (r"bone: classical threshold ([\d.]+) HU \(soft tissue (-?[\d.]+) \+/- ([\d.]+) HU\), cortical > ([\d.]+) HU",
     "os : seuil classique {0} UH (parties molles {1} ± {2} UH), corticale > {3} UH", ()),
    (r"bone: classical threshold ([\d.]+) HU \(soft tissue (.+?) HU\), cortical > ([\d.]+) HU",
     "os : seuil classique {0} UH (parties molles {1} UH), corticale > {2} UH", ()),
    (r"spinal_canal: classical \(holes of the vertebral rings\)",
     "canal rachidien : méthode classique (trous des anneaux vertébraux)", ()),
    (r"spinal canal: (\d+) slice\(s\) without a closed bone ring filled from the nearest slice",
     "canal rachidien : {0} coupe(s) sans anneau osseux fermé complétée(s) depuis la coupe voisine", ()),
    (r"spinal canal continued (\d+) mm cranially and (\d+) mm caudally beyond the last closed vertebral ring",
     "canal rachidien prolongé de {0} mm vers le haut et {1} mm vers le bas au-delà du dernier anneau vertébral fermé", ()),
    (r"vessels: NOT segmented \(no contrast: .*\); carotid arteries and jugular veins are NOT ASSESSED unless masks "
     r"are provided",
     "vaisseaux : NON segmentés (scanner sans injection de contraste) ; carotides et veines jugulaires NON ÉVALUÉES "
     "sauf si des masques sont fournis", ()),
    (r"C2: metal artefacts \(> (\d+) HU\) at the C2 levels: apex and dens outline less reliable",
     "C2 : artefacts métalliques (> {0} UH) aux niveaux de C2 : apex et contour de l'odontoïde moins fiables", ()),
    *_ANATOMY_PATTERNS_FR,
    # fracture-risk summary lines (osteoplan.risk) shown in the report
    (r"Level: (\S+)", "Niveau : {0}", ()),
    (r"Lesion: none found", "Lésion : aucune trouvée", ()),
    (r"Lesion: not assessed", "Lésion : non évaluée", ()),
    (r"Lesion: ([\d.]+) mL, (\d+) % of the dens, (\d+) % of the body; median (-?\d+) HU",
     "Lésion : {0} mL, {1} % de l'odontoïde, {2} % du corps ; médiane {3} UH", ()),
    (r"Cortical breach: (\d+) mm\^2 \(([\d.]+) % of the surface\)(.*)",
     "Rupture corticale : {0} mm² ({1} % de la surface){2}", ()),
    (r"SINS: not applicable \(no lesion found on CT\)", "SINS : non applicable (aucune lésion au scanner)", ()),
    (r"SINS (\d+)/18: (.+)", "SINS {0}/18 : {1}", ()),
    (r"SINS incomplete \((.+?) missing\): possible total (\d+)-(\d+) \((.+?)\)(.*)",
     "SINS incomplet ({0} manquant(s)) : total possible {1}–{2} ({3}){4}", ()),
    (r"(\w+): MISSING \(0-(\d+) points\)", "{0} : MANQUANT (0–{1} points)", ()),
    (r"CT rigidity: max loss ([\d.]+) % at s = ([-+\d.]+) mm \((\w+)\); below the 35 % threshold",
     "Rigidité (scanner) : perte maximale {0} % à s = {1} mm ({2}) ; sous le seuil de 35 %", ()),
    (r"CT rigidity: max loss ([\d.]+) % at s = ([-+\d.]+) mm \((\w+)\); FLAG: >= 35 % predicts fracture "
     r"\(Snyder 2006\)",
     "Rigidité (scanner) : perte maximale {0} % à s = {1} mm ({2}) ; ALERTE : ≥ 35 % prédit la fracture "
     "(Snyder 2006)", ()),
    (r"CT rigidity: no lesion; loss vs reference ([\d.]+) %",
     "Rigidité (scanner) : pas de lésion ; perte vs référence {0} %", ()),
    (r"CT rigidity: not assessed", "Rigidité (scanner) : non évaluée", ()),
    (r"No feasible path among (\d+) candidates\. Most excluding constraints: (.+?)\.( Closest candidate: (.+)\.)?",
     "Aucun trajet réalisable parmi {0} candidats. Contraintes les plus excluantes : {1}.{2}", ()),
]


def _fr_sentence(text: str) -> str | None:
    """French form of an inner sentence (an error message or a list of reasons joined by "; "), or None
    when some part is not known (the caller then keeps the whole line in English)."""
    if not text:
        return text
    fr = translate_text(text, "fr")
    if fr != text:
        return fr
    parts = text.split("; ")
    # a list of reasons joined by "; " (a reason may itself contain "; "): split into known sentences
    best: dict[int, list[str]] = {0: []}
    for i in range(len(parts)):
        if i not in best:
            continue
        for j in range(i + 1, len(parts) + 1):
            piece = "; ".join(parts[i:j])
            fr_piece = translate_text(piece, "fr")
            if fr_piece != piece and j not in best and (i, j) != (0, len(parts)):
                best[j] = best[i] + [fr_piece]
    return " ; ".join(best[len(parts)]) if len(parts) > 1 and len(parts) in best else None


def _english_names(text: str) -> str:
    """*text* (an English planner sentence) with the structure keys of a known sentence's lists replaced by the
    names every page shows (``common_carotid_artery_left`` -> ``left common carotid artery``); other text as is."""
    stripped = text.strip()
    for entry in _PATTERNS_FR:
        pat, _tmpl, list_groups = entry[:3]
        if not list_groups:
            continue
        m = re.fullmatch(pat, stripped)
        if m is None:
            continue
        out, last = [], 0
        for i in sorted(list_groups):
            a, b = m.span(i + 1)
            if a < 0:
                continue
            out += [stripped[last:a], _names_list(stripped[a:b], "en")]
            last = b
        return "".join(out) + stripped[last:]
    return text


def translate_text(text: str | None, lang: str = "en") -> str | None:
    """Translate a planner-generated English sentence into *lang* when it is a known one.

    Sentences from ``osteoplan.planning`` (warnings, cement basis, clearance notes, infeasibility message)
    are recognised by pattern; numbers and structure names are carried over (structure keys translated).
    Unknown text is returned unchanged (English), so nothing is lost in a clinical document.
    """
    import re

    if text is None:
        return text
    if lang == "en":
        return _english_names(text)
    if lang != "fr":
        return text
    for entry in _PATTERNS_FR:
        pat, tmpl, list_groups = entry[:3]
        nested = entry[3] if len(entry) > 3 else ()
        m = re.fullmatch(pat, text.strip())
        if m is None:
            continue
        groups = [g or "" for g in m.groups()]
        for i in list_groups:
            groups[i] = _fr_list(groups[i])
        if nested:
            done = [_fr_sentence(groups[i]) for i in nested]
            if any(d is None for d in done):
                continue  # an unknown inner sentence: try the other patterns, else keep the English
            for i, d in zip(nested, done):
                groups[i] = d
        if pat.startswith(r"CT rigidity: max loss"):  # the region of the weakest section (osteoplan.risk.rigidity)
            groups[2] = {"dens": "odontoïde", "body": "corps", "section": "section"}.get(groups[2], groups[2])
        if pat.startswith("the given point lies below the first level"):
            groups[0] = groups[0].replace(" then ", " puis ")
        if pat.startswith("No feasible path among"):
            groups[1] = re.sub(r"(\d+) of (\d+)", r"\1 sur \2", groups[1])
            near = groups[3]
            near = near.replace("skin not reached inside the CT or within the maximum depth",
                                "peau non atteinte dans le scanner ou dans la profondeur maximale")
            near = re.sub(r"(\w+) short by (< ?[\d.]+|[\d.]+) (mm|deg)",
                          lambda m: f"{m.group(1)} : manque {m.group(2)} {'°' if m.group(3) == 'deg' else 'mm'}", near)
            groups[2] = (" Candidat le plus proche : " + near + ".") if near else ""
        return tmpl.format(*groups)
    return text


# procedures, needles, pedicle views (issue 17: every procedure's report and images)
STRINGS.update({
    "view_pedicle_axial": {"en": "Axial along the needle, at the pedicle",
                           "fr": "Axial dans l'axe de l'aiguille, au niveau du pédicule"},
    "drr_ap": {"en": "Simulated fluoroscopy: AP", "fr": "Scopie simulée : face"},
    "procedure_c2-dens-screw": {"en": "C2 dens screw fixation", "fr": "Vissage de l'odontoïde (C2)"},
    "procedure_vertebroplasty": {"en": "Vertebroplasty", "fr": "Vertébroplastie"},
    "procedure_c2-cementoplasty": {"en": "C2 cementoplasty", "fr": "Cimentoplastie de C2"},
    # the technique's route (protocol ``route``), named in the report title beside the procedure
    "route_anterior": {"en": "anterior route", "fr": "voie antérieure"},
    "route_lateral": {"en": "lateral-cervical route", "fr": "voie latérocervicale"},
    "route_transpedicular": {"en": "transpedicular route", "fr": "voie transpédiculaire"},
    "route_parapedicular": {"en": "parapedicular route", "fr": "voie parapédiculaire"},
    "level": {"en": "Level", "fr": "Niveau"},
    "levels": {"en": "Level(s)", "fr": "Niveau(x)"},
    "needle": {"en": "Needle", "fr": "Aiguille"},
    "needles_section": {"en": "Needles to place", "fr": "Aiguilles à placer"},
    "needle_gauge": {"en": "Needle", "fr": "Aiguille"},
    "pedicle_passage": {"en": "Pedicle passage", "fr": "Passage pédiculaire"},
    "pedicle_margin": {"en": "Needle to pedicle cortex (min)", "fr": "Aiguille – corticale du pédicule (min)"},
    "pedicle_grade": {"en": "Gertzbein-Robbins grade", "fr": "Grade de Gertzbein-Robbins"},
    "pedicle_wall": {"en": "Closest (or breached) wall", "fr": "Paroi la plus proche (ou franchie)"},
    "pedicle_grade_note": {"en": "Gertzbein-Robbins (Spine 1990;15:11): A inside the pedicle, B breach < 2 mm, "
                                 "C 2-4 mm, D 4-6 mm, E > 6 mm.",
                           "fr": "Gertzbein-Robbins (Spine 1990;15:11) : A dans le pédicule, B effraction < 2 mm, "
                                 "C 2-4 mm, D 4-6 mm, E > 6 mm."},
    "wall_medial": {"en": "medial (spinal canal)", "fr": "médiale (canal rachidien)"},
    "wall_lateral": {"en": "lateral", "fr": "latérale"},
    "wall_superior": {"en": "superior", "fr": "supérieure"},
    "wall_inferior": {"en": "inferior (foramen, nerve root)", "fr": "inférieure (foramen, racine)"},
    "tip_position": {"en": "Tip position", "fr": "Position de la pointe"},
    "tip_anterior_fraction": {"en": "Tip depth in the body (posterior wall 0 %, anterior wall 100 %)",
                              "fr": "Profondeur de la pointe dans le corps (mur postérieur 0 %, mur antérieur 100 %)"},
    "tip_from_midline": {"en": "Tip across the midline (+ = beyond it, on the far side)",
                         "fr": "Pointe au-delà de la ligne médiane (+ = au-delà, côté opposé)"},
    "tip_below_endplate": {"en": "Tip below the superior endplate", "fr": "Pointe sous le plateau supérieur"},
    # the dens screw against the dens (c2-dens-screw's trajectory figures)
    "tip_to_cortex": {"en": "Tip short of the apical cortex", "fr": "Pointe en deçà de la corticale apicale"},
    "tip_below_apex": {"en": "Tip below the dens apex (along the dens axis)",
                       "fr": "Pointe sous l'apex de l'odontoïde (le long de son axe)"},
    "tip_anterior_of_axis": {"en": "Tip anterior of the dens axis", "fr": "Pointe en avant de l'axe de l'odontoïde"},
    "angle_to_dens_axis": {"en": "Screw angle to the dens axis", "fr": "Angle de la vis avec l'axe de l'odontoïde"},
    "bone_entry_above_corner": {"en": "Bone entry above the C2 anteroinferior corner",
                                "fr": "Entrée osseuse au-dessus du coin antéro-inférieur de C2"},
    "thread_crosses_waist": {"en": "Thread crosses the dens waist", "fr": "Filetage à travers le col de l'odontoïde"},
    "thread_waist_yes": {"en": "yes", "fr": "oui"},
    "thread_waist_no": {"en": "NO: the screw does not fix the dens", "fr": "NON : la vis ne fixe pas l'odontoïde"},
    "containment_bone": {"en": "Instrument-to-cortex margin (min)", "fr": "Marge instrument–corticale (min)"},
    "lesion_crossing_path": {"en": "Path length inside the lesion", "fr": "Longueur du trajet dans la lésion"},
    "cement_per_level": {"en": "Suggested cement per level", "fr": "Ciment suggéré par niveau"},
    "posterior_wall_alert": {"en": "POSTERIOR WALL BREACHED — EPIDURAL CEMENT LEAK RISK",
                             "fr": "MUR POSTÉRIEUR ROMPU — RISQUE DE FUITE DE CIMENT ÉPIDURALE"},
    "cement_notes": {"en": "Notes", "fr": "Remarques"},
    "placed_all": {"en": "every needle listed is to be placed", "fr": "toutes les aiguilles listées sont à placer"},
    "unplanned_levels": {"en": "No feasible path for", "fr": "Aucun trajet réalisable pour"},
    "needle_views": {"en": "Needle", "fr": "Aiguille"},
    "overview": {"en": "Overview (every needle)", "fr": "Vue d'ensemble (toutes les aiguilles)"},
    "drr_note_generic": {"en": "DRR: ray-cast through the CT, HU → linear attenuation; patient positioning cannot be "
                               "simulated. Bone is shown white.",
                         "fr": "DRR : lancer de rayons dans le scanner, UH → atténuation linéaire ; le positionnement "
                               "n'est pas simulé. L'os apparaît blanc."},
    "view_3d_title_generic": {"en": "3D view", "fr": "Vue 3D"},
})

STRINGS.update({
    "risk_other_level": {"en": "Not assessed for {level}: the fracture-risk assessment attached to this plan is about "
                               "{risk}, not a level of this plan.",
                         "fr": "Non évalué pour {level} : l'évaluation du risque fracturaire jointe à ce plan porte sur "
                               "{risk}, qui n'est pas un niveau de ce plan."},
})

STRINGS.update({
    "wall_breached": {"en": "BREACHED (cement leak risk)", "fr": "ROMPUE (risque de fuite de ciment)"},
    "wall_intact": {"en": "not breached", "fr": "non rompue"},
    "leak_wall_col": {"en": "Wall (neighbour)", "fr": "Paroi (voisin)"},
    "note_col": {"en": "How it was judged", "fr": "Comment elle a été jugée"},
})

STRINGS.update({
    "view_axial_needles": {"en": "Axial through the centre of the needles' targets",
                           "fr": "Axial passant par le centre des cibles des aiguilles"},
    "view_coronal_needles": {"en": "Coronal through the centre of the needles' targets",
                             "fr": "Coronal passant par le centre des cibles des aiguilles"},
    "view_sagittal_needles": {"en": "Sagittal through the centre of the needles' targets",
                              "fr": "Sagittal passant par le centre des cibles des aiguilles"},
})

# report (branch "report"): statuses every clearance check can have, legends of the pictures
STRINGS.update({
    "status_covered": {"en": "covered by another measured structure", "fr": "couvert par une autre structure mesurée",
                       "fr_f": "couverte par une autre structure mesurée",
                       "fr_mp": "couverts par une autre structure mesurée",
                       "fr_fp": "couvertes par une autre structure mesurée"},
    "status_covered_by": {"en": "covered by {by}", "fr": "couvert par {by}", "fr_f": "couverte par {by}",
                          "fr_mp": "couverts par {by}", "fr_fp": "couvertes par {by}"},
    "covered_by_bony_canal": {"en": "its bony canal", "fr": "son canal osseux"},
    "covered_by_spinal_canal": {"en": "the spinal canal", "fr": "le canal rachidien"},
    "covered_by_containment": {"en": "containment in bone", "fr": "le confinement dans l'os"},
    "not_segmented": {"en": "not segmented", "fr": "non segmenté", "fr_f": "non segmentée", "fr_mp": "non segmentés",
                      "fr_fp": "non segmentées"},
    "status_not_assessable": {"en": "not assessable on this CT", "fr": "non évaluable sur ce scanner",
                              "fr_mp": "non évaluables sur ce scanner", "fr_fp": "non évaluables sur ce scanner"},
    "hydro_alt_not_assessed": {"en": "NOT ASSESSED: {names}", "fr": "NON ÉVALUÉ : {names}",
                               "fr_f": "NON ÉVALUÉE : {names}", "fr_mp": "NON ÉVALUÉS : {names}",
                               "fr_fp": "NON ÉVALUÉES : {names}"},
    "semicolon": {"en": "; ", "fr": " ; "},
    "cement_none_planned": {"en": "not applicable: no cement volume planned (no lesion found)",
                            "fr": "sans objet : aucun volume de ciment prévu (pas de lésion trouvée)"},
    "lesion_none_found": {"en": "none found on CT", "fr": "aucune trouvée sur le scanner"},
    "path_projected": {"en": "dotted, faded: the path projected onto this plane (it lies out of the plane)",
                       "fr": "pointillé, estompé : trajet projeté sur ce plan (il est hors du plan)"},
    "instrument_end_on": {"en": "instrument Ø {d} mm seen end-on (circle)",
                          "fr": "instrument Ø {d} mm vu en enfilade (cercle)"},
    "screw_end_on": {"en": "screw Ø {d} mm seen end-on (disc)", "fr": "vis Ø {d} mm vue en enfilade (disque)"},
    "skin_entry_projected": {"en": "Skin entry, projected (not in this plane)",
                             "fr": "Point d'entrée cutané, projeté (hors de ce plan)"},
    "bone_entry_projected": {"en": "Bone entry, projected (not in this plane)",
                             "fr": "Point d'entrée osseux, projeté (hors de ce plan)"},
    "target_projected": {"en": "Target, projected (not in this plane)", "fr": "Cible, projetée (hors de ce plan)"},
})

# report (branch "report"): the notes of covered clearance checks (osteoplan.planning.planner)
_PATTERNS_FR.extend([
    (r"covered by the spinal-canal clearance \(the bony canal contains the cord\)",
     "couverte par la distance au canal rachidien (le canal osseux contient la moelle)", ()),  # the cord's note
    # why verify could not measure the containment on the instrument's actual line (osteoplan.verification.pipeline)
    (r"the protocol's containment margin is not known here",
     "la marge de confinement du protocole n'est pas connue ici", ()),
    (r"the target bone is not segmented in the plan folder",
     "l'os cible n'est pas segmenté dans le dossier du plan", ()),
    (r"the vertebral artery's bony canal \(foramen transversarium\), segmented on the CT",
     "canal osseux de l'artère vertébrale (foramen transversaire), segmenté sur le scanner", ()),  # the canal's note
    (r"assessed by its bony canal \(foramen transversarium\), not the vessel",
     "évaluée par son canal osseux (foramen transversaire), pas par le vaisseau", ()),
    # plan warnings (osteoplan.planning.planner.make_plan): structures covered without being segmented
    (r"Not segmented, covered by the containment of every needle in bone: (.+)\.",
     "Structures non segmentées, couvertes par le confinement de chaque aiguille dans l'os : {0}.", (0,)),
    (r"(\w+): (covered by the spinal-canal clearance \(the bony canal contains the cord\)|assessed by its bony "
     r"canal \(foramen transversarium\), not the vessel) \((\w+)\)\.",
     "{0} : {1} ({2}).", (0, 2), (1,)),
    (r"not segmented; covered by containment: the instrument stays ([\d.]+) mm or more inside the target bone from "
     r"its bone entry to its tip, and this structure lies outside that bone",
     "structure non segmentée ; couverte par le confinement : l'instrument reste à {0} mm ou plus à l'intérieur de "
     "l'os cible de son entrée osseuse à sa pointe, et cette structure est hors de cet os", ()),
])


def structure_label(key: str | None, lang: str = "en") -> str:
    """The name every page shows for a structure key (``"spinal_canal"`` -> ``"spinal canal"``): the PDF report's
    own words (:func:`t`, the clearance table of :mod:`osteoplan.export.report`), so one structure has one name
    on the case, review, versions and check pages, in the report and in ``osteoplan verify``'s text and page. A
    key the report's table does not know is shown with spaces for underscores
    (:func:`osteoplan.planning.verdict.structure_name`); a multi-needle row's ``"<level side>: <key>"`` keeps its
    prefix. (:func:`osteoplan.web.views.structure_label` is this function.)

    Parameters
    ----------
    key : str or None
        Structure key of a plan's clearance (label-map name).
    lang : {"en", "fr"}
    """
    from osteoplan.planning.verdict import structure_name

    key = str(key or "")
    prefix, sep, rest = key.rpartition(": ")
    if sep:
        return f"{prefix}: {structure_label(rest, lang)}"
    return t(key, lang) if key in STRINGS else structure_name(key, lang)


def covering_words(by: str, lang: str = "en") -> str:
    """What covers a ``covered`` structure, as the report's status badge says it: ``"the spinal canal"``, ``"its
    bony canal"`` (a vertebral artery canal), ``"containment in bone"`` (*by* = ``"containment"``), else the
    structure's name (:func:`structure_label`)."""
    if by.startswith("vertebral_artery_canal"):
        return t("covered_by_bony_canal", lang)
    if f"covered_by_{by}" in STRINGS:  # with its article ("the spinal canal", "le canal rachidien")
        return t(f"covered_by_{by}", lang)
    return structure_label(by, lang)


STRINGS.update({
    "verify_status_not_clear": {"en": "NOT CLEAR: inside {by}, which the line does not clear",
                                "fr": "NON DÉGAGÉ : dans {by}, que la ligne ne dégage pas",
                                "fr_f": "NON DÉGAGÉE : dans {by}, que la ligne ne dégage pas",
                                "fr_mp": "NON DÉGAGÉS : dans {by}, que la ligne ne dégage pas",
                                "fr_fp": "NON DÉGAGÉES : dans {by}, que la ligne ne dégage pas"},
    "verify_attention_not_clear": {"en": "NOT CLEAR: {s}", "fr": "NON DÉGAGÉ : {s}", "fr_f": "NON DÉGAGÉE : {s}",
                                   "fr_mp": "NON DÉGAGÉS : {s}", "fr_fp": "NON DÉGAGÉES : {s}"},
    "verify_inside": {"en": "inside {by}", "fr": "dans {by}"},
    # a structure the plan counted covered by containment, decided by the containment of the ACTUAL line
    "verify_status_covered_containment": {
        "en": "covered by containment (measured on the actual line: {mm:.1f} mm inside the bone)",
        "fr": "couvert par le confinement (mesuré sur la ligne réelle : {mm:.1f} mm dans l'os)",
        "fr_f": "couverte par le confinement (mesuré sur la ligne réelle : {mm:.1f} mm dans l'os)",
        "fr_mp": "couverts par le confinement (mesuré sur la ligne réelle : {mm:.1f} mm dans l'os)",
        "fr_fp": "couvertes par le confinement (mesuré sur la ligne réelle : {mm:.1f} mm dans l'os)"},
    "verify_status_leaves_bone": {
        "en": "NOT CLEAR: the instrument leaves the bone: {s} not segmented, cannot be said clear",
        "fr": "NON DÉGAGÉ : l'instrument sort de l'os : {s} non segmenté, ne peut être dit dégagé",
        "fr_f": "NON DÉGAGÉE : l'instrument sort de l'os : {s} non segmentée, ne peut être dite dégagée",
        "fr_mp": "NON DÉGAGÉS : l'instrument sort de l'os : {s} non segmentés, ne peuvent être dits dégagés",
        "fr_fp": "NON DÉGAGÉES : l'instrument sort de l'os : {s} non segmentées, ne peuvent être dites dégagées"},
    "verify_containment": {"en": "Containment in bone (actual line)", "fr": "Confinement dans l'os (ligne réelle)"},
    "verify_containment_value": {
        "en": "{mm} mm inside vertebra {level} (negative: outside; required {need:.1f} mm; from the bone entry, "
              "{skip:.1f} mm excluded, to the tip; planning CT mask)",
        "fr": "{mm} mm dans la vertèbre {level} (négatif : hors de l'os ; {need:.1f} mm requis ; de l'entrée "
              "osseuse, {skip:.1f} mm exclus, à la pointe ; masque du scanner de planification)"},
    "verify_containment_not_measured": {"en": "not measured on the actual line: {why}",
                                        "fr": "non mesuré sur la ligne réelle : {why}"},
})

# osteoplan verify: a tip beyond the target depth is withdrawn first; the C-arm view down the corrected line
STRINGS.update({
    "verify_withdraw_first": {"en": "Correction, step 1: withdraw first", "fr": "Correction, étape 1 : retirer d'abord"},
    "verify_withdraw_value": {"en": "{n:.1f} mm, back to {place} (the tip is {b:.1f} mm past the target depth)",
                              "fr": "{n:.1f} mm, jusqu'à {place} (la pointe dépasse de {b:.1f} mm la profondeur de la "
                                    "cible)"},
    "verify_place_target_depth": {"en": "the target depth", "fr": "la profondeur de la cible"},
    "verify_place_bone_entry": {"en": "the bone entry", "fr": "l'entrée osseuse"},
    "verify_place_skin_entry": {"en": "the skin entry", "fr": "le point d'entrée cutané"},
    "verify_then_turn": {"en": "Correction, step 2: then turn the tip", "fr": "Correction, étape 2 : puis orienter la pointe"},
    "verify_step2": {"en": "Correction, step 2", "fr": "Correction, étape 2"},
    "verify_no_turn": {"en": "no turn: the line passes {d:.1f} mm from the target",
                       "fr": "pas de réorientation : la ligne passe à {d:.1f} mm de la cible"},
    "verify_then_advance": {"en": "Correction, step 3: then advance", "fr": "Correction, étape 3 : puis avancer"},
    "verify_advance_value": {"en": "{m:.1f} mm to the target", "fr": "{m:.1f} mm jusqu'à la cible"},
    "verify_carm_corrected": {"en": "C-arm bull's-eye down the corrected line (pivot to target)",
                              "fr": "Bull's-eye de l'arceau dans l'axe corrigé (du pivot à la cible)"},
    "verify_carm_change": {"en": "C-arm change to follow the correction (from the bull's-eye down the instrument)",
                           "fr": "Changement de l'arceau pour suivre la correction (depuis le bull's-eye dans l'axe "
                                 "de l'instrument)"},
    "verify_carm_change_value": {"en": "primary {a:+.1f}° (+ = towards LAO), secondary {b:+.1f}° (+ = towards CRAN)",
                                 "fr": "primaire {a:+.1f}° (+ = vers OAG), secondaire {b:+.1f}° (+ = vers CRA)"},
})
