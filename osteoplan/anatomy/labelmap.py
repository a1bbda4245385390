"""Named binary masks on a Volume's grid, with one vocabulary of structure names.

Structure names follow TotalSegmentator (Wasserthal et al., Radiology: AI 2023) where it has
one; osteoplan adds ``spinal_canal``, ``airway``, ``vertebral_artery_left/right``,
``mandible``, ``body``, ``bone`` and ``lesion``. Other sources' names (OpenKBP, 3D Slicer,
radiotherapy contours) are mapped through :data:`SYNONYMS`.

A structure that is absent from a LabelMap was **not segmented**: planners must report it as
"not assessed", never as clear. A structure that is present but empty was segmented and found
absent (e.g. no lesion), which is different; :attr:`LabelMap.sources` tells where each mask came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from osteoplan.errors import MaskError
from osteoplan.imaging.volume import Volume

#: The canonical vocabulary, grouped for display. Order is the display order.
STRUCTURES: tuple[str, ...] = (
    "body",
    "bone",
    "vertebrae_C1",
    "vertebrae_C2",
    "vertebrae_C3",
    "vertebrae_C4",
    "vertebrae_C5",
    "vertebrae_C6",
    "vertebrae_C7",
    "lesion",
    "spinal_canal",
    "spinal_cord",
    "vertebral_artery_left",
    "vertebral_artery_right",
    "vertebral_artery_canal_left",
    "vertebral_artery_canal_right",
    "common_carotid_artery_left",
    "common_carotid_artery_right",
    "internal_carotid_artery_left",
    "internal_carotid_artery_right",
    "internal_jugular_vein_left",
    "internal_jugular_vein_right",
    "airway",
    "trachea",
    "larynx",
    "pharynx",
    "esophagus",
    "mandible",
    "skull",
    "brainstem",
    "parotid_gland_left",
    "parotid_gland_right",
)


#: Every class of TotalSegmentator v2's ``total`` task (Wasserthal et al., Radiology: AI 2023;5:e230024;
#: ``totalsegmentator/map_to_binary.py``, class map ``total``, values 1-117 in this order).
TOTALSEGMENTATOR_TOTAL_V2: tuple[str, ...] = (
    "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas", "adrenal_gland_right",
    "adrenal_gland_left", "lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
    "lung_middle_lobe_right", "lung_lower_lobe_right", "esophagus", "trachea", "thyroid_gland", "small_bowel",
    "duodenum", "colon", "urinary_bladder", "prostate", "kidney_cyst_left", "kidney_cyst_right", "sacrum",
    "vertebrae_S1", "vertebrae_L5", "vertebrae_L4", "vertebrae_L3", "vertebrae_L2", "vertebrae_L1", "vertebrae_T12",
    "vertebrae_T11", "vertebrae_T10", "vertebrae_T9", "vertebrae_T8", "vertebrae_T7", "vertebrae_T6", "vertebrae_T5",
    "vertebrae_T4", "vertebrae_T3", "vertebrae_T2", "vertebrae_T1", "vertebrae_C7", "vertebrae_C6", "vertebrae_C5",
    "vertebrae_C4", "vertebrae_C3", "vertebrae_C2", "vertebrae_C1", "heart", "aorta", "pulmonary_vein",
    "brachiocephalic_trunk", "subclavian_artery_right", "subclavian_artery_left", "common_carotid_artery_right",
    "common_carotid_artery_left", "brachiocephalic_vein_left", "brachiocephalic_vein_right", "atrial_appendage_left",
    "superior_vena_cava", "inferior_vena_cava", "portal_vein_and_splenic_vein", "iliac_artery_left",
    "iliac_artery_right", "iliac_vena_left", "iliac_vena_right", "humerus_left", "humerus_right", "scapula_left",
    "scapula_right", "clavicula_left", "clavicula_right", "femur_left", "femur_right", "hip_left", "hip_right",
    "spinal_cord", "gluteus_maximus_left", "gluteus_maximus_right", "gluteus_medius_left", "gluteus_medius_right",
    "gluteus_minimus_left", "gluteus_minimus_right", "autochthon_left", "autochthon_right", "iliopsoas_left",
    "iliopsoas_right", "brain", "skull",
    *(f"rib_left_{n}" for n in range(1, 13)), *(f"rib_right_{n}" for n in range(1, 13)),
    "sternum", "costal_cartilages",
)

#: Classes of TotalSegmentator v2's ``headneck_bones_vessels`` task and of its ``vertebrae_body`` task
#: (same source); ``larynx_air`` maps to ``larynx`` through :data:`SYNONYMS`.
TOTALSEGMENTATOR_OTHER_V2: tuple[str, ...] = (
    "thyroid_cartilage", "hyoid", "cricoid_cartilage", "zygomatic_arch_right", "zygomatic_arch_left",
    "styloid_process_right", "styloid_process_left", "internal_carotid_artery_right", "internal_carotid_artery_left",
    "internal_jugular_vein_right", "internal_jugular_vein_left", "vertebrae_body", "intervertebral_discs",
)

#: Vertebra level names, cranial to caudal (T13 and L6 are the transitional / supernumerary levels VerSe labels).
SPINE_LEVELS: tuple[str, ...] = (
    *(f"C{n}" for n in range(1, 8)), *(f"T{n}" for n in range(1, 14)), *(f"L{n}" for n in range(1, 7)), "S1",
)

#: VerSe vertebra labels (Sekuboyina et al., Med Image Anal 2021;73:102166; Löffler et al., Radiology: AI
#: 2020;2:e190138): 1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6, 26 sacrum, 27 coccyx, 28 T13.
VERSE_VERTEBRA_LABELS: dict[int, str] = {
    **{n: f"vertebrae_C{n}" for n in range(1, 8)},
    **{7 + n: f"vertebrae_T{n}" for n in range(1, 13)},
    **{19 + n: f"vertebrae_L{n}" for n in range(1, 7)},
    26: "sacrum", 27: "coccyx", 28: "vertebrae_T13",
}

#: VerSe / TPTBox vertebra subregion labels (TPTBox ``Location``: 41 Arcus_Vertebrae, 42 Spinosus_Process,
#: 43/44 Costal_Process_Left/Right, 45/46 Superior_Articular_Left/Right, 47/48 Inferior_Articular_Left/Right,
#: 49 Vertebra_Corpus_border, 50 Vertebra_Corpus). The arch (41) holds the pedicles and laminae.
VERSE_SUBREGION_LABELS: dict[int, str] = {
    41: "vertebral_arch", 42: "spinous_process", 43: "transverse_process_left", 44: "transverse_process_right",
    45: "superior_articular_process_left", 46: "superior_articular_process_right",
    47: "inferior_articular_process_left", 48: "inferior_articular_process_right",
    49: "vertebral_body_border", 50: "vertebral_body",
}

#: Per-level spine structures osteoplan derives (:mod:`osteoplan.anatomy.spine`).
SPINE_STRUCTURES: tuple[str, ...] = tuple(
    n for lv in SPINE_LEVELS for n in (f"vertebrae_{lv}", f"vertebral_body_{lv}", f"pedicle_{lv}_left",
                                        f"pedicle_{lv}_right", f"posterior_wall_{lv}")
)

STRUCTURES = STRUCTURES + tuple(dict.fromkeys(
    n for n in (*SPINE_STRUCTURES, *TOTALSEGMENTATOR_TOTAL_V2, *TOTALSEGMENTATOR_OTHER_V2,
                *VERSE_VERTEBRA_LABELS.values(), *VERSE_SUBREGION_LABELS.values())
    if n not in STRUCTURES))


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


#: Other sources' names -> canonical name (keys are compared after lower-casing and removing
#: everything but letters and digits, so "Spinal Cord", "spinal-cord" and "SpinalCord" all match).
SYNONYMS: dict[str, str] = {
    # OpenKBP (Babier et al., Med Phys 2021)
    "SpinalCord": "spinal_cord",
    "Esophagus": "esophagus",
    "Larynx": "larynx",
    "Mandible": "mandible",
    "Brainstem": "brainstem",
    "LeftParotid": "parotid_gland_left",
    "RightParotid": "parotid_gland_right",
    # common 3D Slicer / RT structure names
    "Spinal Cord": "spinal_cord",
    "Cord": "spinal_cord",
    "Spinal canal": "spinal_canal",
    "Canal": "spinal_canal",
    "Oesophagus": "esophagus",
    "Trachea": "trachea",
    "Airway": "airway",
    "Pharynx": "pharynx",
    "C1": "vertebrae_C1",
    "C2": "vertebrae_C2",
    "C3": "vertebrae_C3",
    "Atlas": "vertebrae_C1",
    "Axis": "vertebrae_C2",
    "Vertebra C2": "vertebrae_C2",
    "Carotid L": "common_carotid_artery_left",
    "Carotid R": "common_carotid_artery_right",
    "Carotid_L": "common_carotid_artery_left",
    "Carotid_R": "common_carotid_artery_right",
    "Left common carotid artery": "common_carotid_artery_left",
    "Right common carotid artery": "common_carotid_artery_right",
    "Left internal jugular vein": "internal_jugular_vein_left",
    "Right internal jugular vein": "internal_jugular_vein_right",
    "Vertebral artery left": "vertebral_artery_left",
    "Vertebral artery right": "vertebral_artery_right",
    "VertebralArtery_L": "vertebral_artery_left",
    "VertebralArtery_R": "vertebral_artery_right",
    "Body": "body",
    "External": "body",
    "Skin": "body",
    "BODY": "body",
    "Bone": "bone",
    "Tumor": "lesion",
    "Tumour": "lesion",
    "Lesion": "lesion",
    "Metastasis": "lesion",
    # TotalSegmentator task outputs whose names differ from the vocabulary (Wasserthal et al. 2023;
    # tasks headneck_bones_vessels and head_glands_cavities): the pharynx parts are unioned by the loaders
    "larynx_air": "larynx",
    "nasopharynx": "pharynx",
    "oropharynx": "pharynx",
    "hypopharynx": "pharynx",
    "spinal_channel": "spinal_canal",
    # 3D Slicer terminology display names (e.g. its TotalSegmentator extension) and TG-263-style RT names
    "C1 vertebra": "vertebrae_C1",
    "C2 vertebra": "vertebrae_C2",
    "C3 vertebra": "vertebrae_C3",
    "C4 vertebra": "vertebrae_C4",
    "C5 vertebra": "vertebrae_C5",
    "C6 vertebra": "vertebrae_C6",
    "C7 vertebra": "vertebrae_C7",
    "Vertebra C1": "vertebrae_C1",
    "Vertebra C3": "vertebrae_C3",
    "C4": "vertebrae_C4",
    "C5": "vertebrae_C5",
    "C6": "vertebrae_C6",
    "C7": "vertebrae_C7",
    "Left internal carotid artery": "internal_carotid_artery_left",
    "Right internal carotid artery": "internal_carotid_artery_right",
    "Left vertebral artery": "vertebral_artery_left",
    "Right vertebral artery": "vertebral_artery_right",
    "A_Carotid_L": "common_carotid_artery_left",
    "A_Carotid_R": "common_carotid_artery_right",
    "A_Vertebral_L": "vertebral_artery_left",
    "A_Vertebral_R": "vertebral_artery_right",
    "V_Jugular_L": "internal_jugular_vein_left",
    "V_Jugular_R": "internal_jugular_vein_right",
    "Bone_Mandible": "mandible",
    "Brain_Stem": "brainstem",
    "Parotid_L": "parotid_gland_left",
    "Parotid_R": "parotid_gland_right",
    "SpinalCanal": "spinal_canal",
    # vessel abbreviations common in RT / Slicer naming (laterality variants handled by canonical_name)
    "CCA_L": "common_carotid_artery_left",
    "CCA_R": "common_carotid_artery_right",
    "Common carotid L": "common_carotid_artery_left",
    "Common carotid R": "common_carotid_artery_right",
    "ICA_L": "internal_carotid_artery_left",
    "ICA_R": "internal_carotid_artery_right",
    "Internal carotid L": "internal_carotid_artery_left",
    "Internal carotid R": "internal_carotid_artery_right",
    "IJV_L": "internal_jugular_vein_left",
    "IJV_R": "internal_jugular_vein_right",
    "Jugular_L": "internal_jugular_vein_left",
    "Jugular_R": "internal_jugular_vein_right",
    "VA_L": "vertebral_artery_left",
    "VA_R": "vertebral_artery_right",
    # the bony canal of the vertebral artery (transverse foramina; osteoplan names, no TotalSegmentator class)
    "Transverse foramen left": "vertebral_artery_canal_left",
    "Transverse foramen right": "vertebral_artery_canal_right",
    "Foramen transversarium left": "vertebral_artery_canal_left",
    "Foramen transversarium right": "vertebral_artery_canal_right",
}

_LOOKUP: dict[str, str] = {_norm(k): v for k, v in SYNONYMS.items()}
_LOOKUP.update({_norm(s): s for s in STRUCTURES})


#: Laterality words recognised at the start or the end of a name ("Left X", "X_Lt", "R X"...).
_SIDES: dict[str, str] = {"left": "left", "lt": "left", "l": "left", "right": "right", "rt": "right", "r": "right"}


def canonical_name(name: str) -> str | None:
    """Map any known structure name to the canonical vocabulary, or None when unknown.

    Names are compared without case, spaces or punctuation (``"Spinal Cord"`` = ``"SpinalCord"``);
    a laterality word at the start or end in any common form (``Left``/``Lt``/``L``,
    ``Right``/``Rt``/``R``) is also accepted in the other position, so ``"Left vertebral artery"``,
    ``"Vertebral_Artery_Lt"`` and ``"Parotid R"`` map. Anything else (margins such as
    ``"SpinalCord_PRV05"``, targets, free text) returns None: the caller keeps or reports it.
    """
    key = _norm(name)
    hit = _LOOKUP.get(key)
    if hit is not None or not key:
        return hit
    tokens = [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t]
    if len(tokens) < 2:
        return None
    for side_tok, rest in ((tokens[0], tokens[1:]), (tokens[-1], tokens[:-1])):
        side = _SIDES.get(side_tok)
        if side is None:
            continue
        base = "".join(rest)
        for cand in (base + side, base + side[0], side + base, side[0] + base):
            hit = _LOOKUP.get(cand)
            if hit is not None and hit.endswith(side):
                return hit
    return None


@dataclass
class LabelMap:
    """Named boolean masks on the grid of a :class:`~osteoplan.imaging.Volume`.

    Parameters
    ----------
    volume : Volume
        The CT the masks belong to (its shape and affine define the grid).
    masks : dict[str, numpy.ndarray]
        Canonical structure name -> boolean array of shape ``volume.shape`` indexed (k, j, i).
    sources : dict[str, str]
        Structure name -> where the mask came from (``"provided:SpinalCord.nii.gz"``,
        ``"classical"``, ``"phantom-truth"``, ``"totalsegmentator"``...).

    Raises
    ------
    MaskError
        A mask's shape does not match the volume.
    """

    volume: Volume
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in list(self.masks):
            self.masks[name] = self._check(name, self.masks[name])

    def _check(self, name: str, mask: np.ndarray) -> np.ndarray:
        m = np.asarray(mask)
        if m.shape != self.volume.shape:
            raise MaskError(
                f"Mask '{name}' has shape {m.shape} but the CT grid is {self.volume.shape}; "
                "resample it onto the CT (the mask loaders do this) before adding it."
            )
        return m.astype(bool, copy=False)

    # -------------------------------------------------------------- access
    def add(self, name: str, mask: np.ndarray, source: str) -> None:
        """Add or replace a structure (name is mapped to the canonical vocabulary when known)."""
        canon = canonical_name(name) or name
        self.masks[canon] = self._check(canon, mask)
        self.sources[canon] = source

    def has(self, name: str) -> bool:
        """True when the structure was segmented (even if its mask is empty)."""
        return name in self.masks

    def get(self, name: str) -> np.ndarray:
        """The boolean mask (K, J, I) of a structure; MaskError when it was not segmented."""
        try:
            return self.masks[name]
        except KeyError:
            raise MaskError(f"Structure '{name}' was not segmented; provide a mask or run segmentation.") from None

    def names(self) -> list[str]:
        """Segmented structure names, in vocabulary order then others alphabetically."""
        known = [s for s in STRUCTURES if s in self.masks]
        return known + sorted(n for n in self.masks if n not in STRUCTURES)

    def union(self, names: Iterable[str]) -> np.ndarray:
        """Boolean union (K, J, I) of the named structures that are present (absent ones ignored)."""
        out = np.zeros(self.volume.shape, dtype=bool)
        for n in names:
            if n in self.masks:
                out |= self.masks[n]
        return out

    def volume_ml(self, name: str) -> float:
        """Volume of a structure in millilitres."""
        return float(self.get(name).sum()) * self.volume.voxel_volume_ml

    def distance_map_mm(self, name: str) -> np.ndarray:
        """Euclidean distance (mm, float32, shape (K, J, I)) from each voxel centre to the nearest voxel of *name*.

        Voxels inside the structure have 0. An empty mask gives +inf everywhere.
        Uses :func:`scipy.ndimage.distance_transform_edt` with the volume's spacing
        (exact for axis-aligned grids).
        """
        from scipy.ndimage import distance_transform_edt

        m = self.get(name)
        if not m.any():
            return np.full(m.shape, np.inf, dtype=np.float32)
        return distance_transform_edt(~m, sampling=self.volume.spacing_mm).astype(np.float32)

    def to_multilabel(self, names: Iterable[str] | None = None) -> tuple[np.ndarray, dict[int, str]]:
        """Pack into one uint16 label array (K, J, I) plus its label table {value: name}.

        Later names overwrite earlier ones where masks overlap.
        """
        names = list(names) if names is not None else self.names()
        arr = np.zeros(self.volume.shape, dtype=np.uint16)
        table: dict[int, str] = {}
        for v, n in enumerate(names, start=1):
            arr[self.get(n)] = v
            table[v] = n
        return arr, table

    def summary(self) -> dict[str, dict[str, object]]:
        """Per structure: source, voxel count and volume (mL)."""
        return {
            n: {"source": self.sources.get(n, "unknown"), "voxels": int(self.masks[n].sum()),
                "volume_ml": round(self.volume_ml(n), 3)}
            for n in self.names()
        }

    @classmethod
    def from_mapping(cls, volume: Volume, masks: Mapping[str, np.ndarray], source: str) -> "LabelMap":
        """Build from {any known name: mask} (names are mapped to the canonical vocabulary)."""
        lm = cls(volume)
        for n, m in masks.items():
            lm.add(n, m, source)
        return lm
