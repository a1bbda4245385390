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
    "reference_volume": {"en": "Published injected volume", "fr": "Volume injecté publié"},
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
    "near_miss_note": {"en": "No feasible path: the images show the closest candidate, which violates the "
                             "constraints listed above. It is NOT a plan.",
                       "fr": "Aucun trajet réalisable : les images montrent le candidat le plus proche, qui viole "
                             "les contraintes ci-dessus. Ce n'est PAS un plan."},
    "not_applicable": {"en": "— (no feasible path)", "fr": "— (aucun trajet réalisable)"},
    "risk_section": {"en": "Fracture risk", "fr": "Risque fracturaire"},
    "constraint": {"en": "Constraint", "fr": "Contrainte"},
    "excluded": {"en": "Candidates excluded", "fr": "Candidats exclus"},
    "score": {"en": "Score", "fr": "Score"},
    "other_bone": {"en": "other bone on the way", "fr": "autre os sur le trajet"},
    "other_vertebrae": {"en": "other vertebrae", "fr": "autres vertèbres"},
    "right": {"en": "right", "fr": "droite"},
}


def t(key: str, lang: str = "en") -> str:
    """Translate *key* into *lang* (``"en"`` or ``"fr"``); falls back to English, then to the key."""
    entry = STRINGS.get(key)
    if entry is None:
        return key.replace("_", " ")
    return entry.get(lang) or entry.get("en") or key


STRINGS.update({
    "at_least": {"en": "at least", "fr": "au moins"},
    "provided_mask": {"en": "provided mask", "fr": "masque fourni"},
    "distance_cap_note": {"en": "≥: the structure is farther than the distance computed (capped at 20 mm).",
                          "fr": "≥ : la structure est plus loin que la distance calculée (plafonnée à 20 mm)."},
    "constraint_skin": {"en": "path reaches the skin inside the field of view and within the maximum depth",
                        "fr": "le trajet atteint la peau dans le champ de vue et dans la profondeur maximale"},
    "constraint_bone_entry": {"en": "bone entry on the anterior/anterolateral cortex of the C2 body",
                              "fr": "entrée osseuse sur la corticale antérieure/antérolatérale du corps de C2"},
    "constraint_screw_length": {"en": "bone entry to target fits the screw catalogue",
                                "fr": "la distance entrée osseuse → cible correspond au catalogue de vis"},
    "constraint_containment": {"en": "screw stays inside C2 with the containment margin",
                               "fr": "la vis reste dans C2 avec la marge de confinement"},
    "constraint_entry_angle": {"en": "path meets the C2 cortex at least at the minimum incidence angle",
                               "fr": "le trajet aborde la corticale de C2 au moins à l'angle d'incidence minimal"},
    "constraint_bone_on_way": {"en": "no other bone (mandible, C1, C3...) crossed before C2",
                               "fr": "aucun autre os (mandibule, C1, C3...) traversé avant C2"},
    "constraint_hydrodissection_limit": {"en": "displacement needed within what hydrodissection achieves",
                                         "fr": "déplacement nécessaire dans les limites de l'hydrodissection"},
})


def _fr_list(text: str) -> str:
    """Translate a comma-separated list of structure keys (unknown words kept)."""
    return ", ".join(t(w.strip(), "fr") if w.strip() in STRINGS else w.strip() for w in text.split(","))


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
    (r"Not assessed \(not segmented, never reported as clear\): (.+)\.",
     "Non évalué (non segmenté, jamais déclaré à distance) : {0}.", (0,)),
    (r"Not assessed \(not segmented\): (.+)\. Hydrodissection may still be needed\.",
     "Non évalué (non segmenté) : {0}. Une hydrodissection peut rester nécessaire.", (0,)),
    (r"No feasible path with a ([\d.]+) mm screw; ([\d.]+) mm was used\.",
     "Aucun trajet réalisable avec une vis de {0} mm ; {1} mm a été utilisée.", ()),
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
    (r"NOT segmented \(not assessed\): (.+)", "NON segmenté (non évalué) : {0}", (0,)),
    (r"provided masks: (.+)", "masques fournis : {0}", (0,)),
    (r"lesion: none found in C2", "lésion : aucune trouvée dans C2", ()),
    (r"C2 located \(classical, confidence ([\d.]+)\)", "C2 localisée (méthode classique, confiance {0})", ()),
    # anatomy-stage messages (osteoplan.anatomy) that reach the plan's warnings
    (r"bone: classical threshold ([\d.]+) HU \(soft tissue (.+?) HU\), cortical > ([\d.]+) HU",
     "os : seuil classique {0} UH (parties molles {1} UH), corticale > {2} UH", ()),
    (r"airway: classical \(pharynx, larynx and trachea as one 'airway' structure; not split by level\)",
     "voies aériennes : méthode classique (pharynx, larynx et trachée en une seule structure, non séparés par niveau)", ()),
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


def translate_text(text: str | None, lang: str = "en") -> str | None:
    """Translate a planner-generated English sentence into *lang* when it is a known one.

    Sentences from ``osteoplan.planning`` (warnings, cement basis, clearance notes, infeasibility message)
    are recognised by pattern; numbers and structure names are carried over (structure keys translated).
    Unknown text is returned unchanged (English), so nothing is lost in a clinical document.
    """
    import re

    if text is None or lang == "en":
        return text
    if lang != "fr":
        return text
    for pat, tmpl, list_groups in _PATTERNS_FR:
        m = re.fullmatch(pat, text.strip())
        if m is None:
            continue
        groups = [g or "" for g in m.groups()]
        for i in list_groups:
            groups[i] = _fr_list(groups[i])
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
