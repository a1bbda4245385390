"""The one translation table of osteoplan's pictures and reports (English, French).

:func:`t` looks a key up; unknown keys fall back to English, then to the key itself (so a missing
translation shows up as a readable English word, never as an error in a clinical document).
"""

from __future__ import annotations

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
    "view_3d": {"en": "3D view (anterior, patient left on the right)",
                "fr": "Vue 3D (antérieure, gauche du patient à droite)"},
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
    "feasible": {"en": "Feasible path found", "fr": "Trajet réalisable trouvé"},
    "not_feasible": {"en": "No feasible path", "fr": "Aucun trajet réalisable"},
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
    "status_pass": {"en": "pass", "fr": "conforme"},
    "status_hydrodissection": {"en": "hydrodissection", "fr": "hydrodissection"},
    "status_fail": {"en": "fail", "fr": "échec"},
    "status_not_assessed": {"en": "not assessed", "fr": "non évalué"},
    "clearance_note": {"en": "Clearance = distance from the instrument surface to the structure along the "
                             "whole path. A structure that was not segmented is NOT ASSESSED, never clear.",
                       "fr": "Distance = entre la surface de l'instrument et la structure sur tout le trajet. "
                             "Une structure non segmentée est NON ÉVALUÉE, jamais considérée comme à distance."},
    "screw_section": {"en": "Screw", "fr": "Vis"},
    "diameter": {"en": "Diameter", "fr": "Diamètre"},
    "length": {"en": "Length", "fr": "Longueur"},
    "thread_length": {"en": "Thread length", "fr": "Longueur filetée"},
    "hydrodissection_section": {"en": "Hydrodissection", "fr": "Hydrodissection"},
    "hydro_required": {"en": "Required", "fr": "Nécessaire"},
    "hydro_not_required": {"en": "Not required", "fr": "Non nécessaire"},
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
    "unknown": {"en": "unknown", "fr": "inconnu"},
    "yes": {"en": "yes", "fr": "oui"},
    "no": {"en": "no", "fr": "non"},
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
}


def t(key: str, lang: str = "en") -> str:
    """Translate *key* into *lang* (``"en"`` or ``"fr"``); falls back to English, then to the key."""
    entry = STRINGS.get(key)
    if entry is None:
        return key.replace("_", " ")
    return entry.get(lang) or entry.get("en") or key
