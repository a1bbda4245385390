"""Anatomy from CT: label maps from any source, classical segmentation, C2/dens landmarks, lesion, phantom."""

from osteoplan.anatomy.labelmap import STRUCTURES, SYNONYMS, LabelMap, canonical_name

__all__ = ["STRUCTURES", "SYNONYMS", "LabelMap", "canonical_name"]
