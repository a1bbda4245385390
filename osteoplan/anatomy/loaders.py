"""Load provided masks onto a CT: TotalSegmentator / OpenKBP NIfTI folders, multilabel NIfTI,
3D Slicer ``.seg.nrrd``, DICOM Segmentation objects and DICOM RT Structure Sets (rasterised).

Every loader returns a :class:`~osteoplan.anatomy.LabelMap` on the CT's grid with canonical
structure names (:func:`~osteoplan.anatomy.canonical_name`; unknown names are kept as given,
with a warning, when they are made of anatomy words, otherwise as ``unnamed_<n>`` and never
echoed, since they may identify the patient). An empty provided mask is NOT segmented (not
assessed) unless the structure may be absent (``lesion``): tools such as TotalSegmentator write
empty files for what they did not find, which must never read as "clear". Masks stored on another grid are resampled with nearest-neighbour
interpolation, but only after checking that they cover the same patient space: a mask whose
field of view or foreground does not overlap the CT raises :class:`~osteoplan.errors.MaskError`
(it is never turned into an empty structure, which would mean "segmented and absent").

Values: a binary mask may be stored as 0/1 in any integer or float type, or as 0/N (a note says
so); a fractional map (probabilities or partial volumes, finite values in 0..1) is thresholded at
:data:`FRACTIONAL_THRESHOLD` (0.5) with a message; NaN/infinite values, values outside 0..1 that are
not integer labels, or several labels without a label table raise :class:`~osteoplan.errors.MaskError`.
A damaged file (truncated gzip...) raises :class:`~osteoplan.errors.CorruptFileError`, also inside a
folder when its name is a structure of the vocabulary (it is never silently "not assessed").

Geometry: NIfTI is RAS (converted with the LPS <-> RAS flip as in
:meth:`osteoplan.imaging.Volume.from_nifti`); ``.seg.nrrd`` carries ``ijkToLPS``; DICOM SEG is
LPS (read with :mod:`highdicom`).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from osteoplan.anatomy.labelmap import LabelMap, canonical_name
from osteoplan.errors import CorruptFileError, InputError, MaskError, safe_path
from osteoplan.imaging.volume import LPS_TO_RAS, Volume

__all__ = [
    "load_masks",
    "load_nifti_folder",
    "load_nifti_file",
    "load_seg_nrrd",
    "load_dicom_seg",
    "load_rtstruct",
    "resample_mask",
    "read_label_table",
    "MaskGrid",
]

log = logging.getLogger(__name__)

#: File stems that are images, not masks, in mask folders (OpenKBP's ``ct``, nnU-Net's ``*_0000``...).
IMAGE_STEMS = re.compile(r"^(ct|image|img|volume|scan|t1|t2|mr|pet|dose|possible_dose_mask|.*_0000)$", re.I)

#: Largest number of distinct values a label image may have.
MAX_LABELS = 1024

#: Folders with more NIfTI files than this do not load names outside the vocabulary by default.
MAX_UNKNOWN_FOLDER = 40


class MaskGrid:
    """A mask (or label image) on its own grid: array (K, J, I) + affine (k, j, i, 1) -> LPS mm."""

    def __init__(self, array: np.ndarray, affine_lps: np.ndarray, origin: str) -> None:
        self.array = np.asarray(array)
        self.affine = np.asarray(affine_lps, dtype=np.float64)
        self.origin = origin  # display name of where it came from (safe)

    def bounds_lps_mm(self, foreground: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """LPS box (min, max) of the grid (half a voxel beyond the voxel centres) or of its foreground."""
        if foreground:
            nz = np.argwhere(self.array != 0)
            if nz.size == 0:
                return None
            lo_i, hi_i = nz.min(0) - 0.5, nz.max(0) + 0.5
        else:
            lo_i = np.full(3, -0.5)
            hi_i = np.asarray(self.array.shape[:3], float) - 0.5
        corners = np.array([[a, b, c] for a in (lo_i[0], hi_i[0]) for b in (lo_i[1], hi_i[1]) for c in (lo_i[2], hi_i[2])])
        w = corners @ self.affine[:3, :3].T + self.affine[:3, 3]
        return w.min(0), w.max(0)


# ------------------------------------------------------------------------------------- geometry



def _gzip_problem(p: Path) -> str | None:
    """What is wrong with a gzip-compressed mask whose stream fails its checksum, else None: nibabel would read it
    with wrong voxels (:func:`osteoplan.imaging.io.gzip_stream_problem`), and a wrong mask could make a structure
    look clear."""
    from osteoplan.imaging.io import gzip_stream_problem

    try:
        with open(p, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
    except OSError:
        return None  # the reader says what is wrong with a file it cannot open
    return gzip_stream_problem(p, "the mask") if gz else None


def _ct_bounds(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    K, J, I = volume.shape
    corners = np.array([[a, b, c] for a in (-0.5, K - 0.5) for b in (-0.5, J - 0.5) for c in (-0.5, I - 0.5)])
    w = volume.index_to_world(corners)
    return w.min(0), w.max(0)


def _overlap(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    return bool(np.all(a[0] < b[1]) and np.all(b[0] < a[1]))


def _fmt_box(box) -> str:
    lo, hi = box
    return "LPS x {:.0f}..{:.0f}, y {:.0f}..{:.0f}, z {:.0f}..{:.0f} mm".format(lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])


def resample_mask(grid: MaskGrid, volume: Volume, name: str = "mask",
                  warnings: list[str] | None = None) -> np.ndarray:
    """Put a mask / label image onto the CT grid (nearest neighbour), checking that they overlap.

    Parameters
    ----------
    grid : MaskGrid
        Source array (K', J', I') with its own (k, j, i) -> LPS affine (integer labels kept).
    volume : Volume
        The CT whose grid is the target.
    name : str
        Structure name, for messages.
    warnings : list of str, optional
        Receives a message when part of the foreground falls outside the CT.

    Returns
    -------
    numpy.ndarray, shape volume.shape
        Same dtype as the source (labels preserved).

    Raises
    ------
    MaskError
        The mask's field of view does not overlap the CT's, or its non-empty foreground lies
        entirely outside the CT.
    """
    src = grid.array
    ct_box = _ct_bounds(volume)
    if not _overlap(grid.bounds_lps_mm(), ct_box):
        raise MaskError(
            f"Mask '{_shown(name)}' ({grid.origin}) does not overlap the CT: it covers {_fmt_box(grid.bounds_lps_mm())}, "
            f"the CT {_fmt_box(ct_box)}. Check that it was made on this scan (same patient position and frame of reference)."
        )
    same = src.shape == volume.shape and np.allclose(grid.affine, volume.affine, atol=1e-4)
    if same:
        out = src
    else:
        from scipy.ndimage import affine_transform

        m = np.linalg.inv(grid.affine) @ volume.affine  # target index -> source index
        work = src if src.dtype in (np.uint8, np.uint16, np.int16, np.int32, np.uint32) else src.astype(np.int32)
        out = affine_transform(work, m[:3, :3], offset=m[:3, 3], output_shape=volume.shape, order=0,
                               mode="constant", cval=0, prefilter=False)
    n_src = int(np.count_nonzero(src))
    if n_src:
        n_out_expected = n_src * abs(np.linalg.det(grid.affine[:3, :3])) / abs(np.linalg.det(volume.affine[:3, :3]))
        n_out = int(np.count_nonzero(out))
        if n_out == 0:
            raise MaskError(
                f"Mask '{_shown(name)}' ({grid.origin}) lies outside the CT (its foreground covers "
                f"{_fmt_box(grid.bounds_lps_mm(foreground=True))}, the CT {_fmt_box(ct_box)}); "
                "it cannot be used on this scan."
            )
        fb = grid.bounds_lps_mm(foreground=True)
        if fb is not None and not (np.all(fb[0] >= ct_box[0] - 1e-3) and np.all(fb[1] <= ct_box[1] + 1e-3)):
            msg = (f"Mask '{_shown(name)}' extends beyond the CT field of view; about "
                   f"{max(0.0, 100.0 * (1 - n_out / n_out_expected)):.0f} % of it was cut off.")
            log.warning(msg)
            if warnings is not None:
                warnings.append(msg)
    return out


# ------------------------------------------------------------------------------------- NIfTI


def _nifti_to_grid(img: Any, origin: str) -> MaskGrid:
    """A nibabel image (RAS, data (i, j, k)) -> MaskGrid (k, j, i) with an LPS affine, dtype preserved."""
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise MaskError(f"{origin}: a mask must be a 3D image; this one has shape {data.shape}.")
    slope, inter = img.header.get_slope_inter() if hasattr(img.header, "get_slope_inter") else (None, None)
    if slope not in (None, 1.0) or inter not in (None, 0.0):
        data = np.asarray(img.get_fdata(dtype=np.float32))
    perm = np.zeros((4, 4))
    perm[0, 2] = perm[1, 1] = perm[2, 0] = perm[3, 3] = 1.0
    aff = LPS_TO_RAS @ np.asarray(img.affine, dtype=np.float64) @ perm
    return MaskGrid(np.transpose(data, (2, 1, 0)), aff, origin)


def _display(p: Path) -> str:
    """File name for messages and sources: shown when its stem is a known structure name (not
    identifying), otherwise :func:`~osteoplan.errors.safe_path` rules apply."""
    p = Path(p)
    if canonical_name(_stem(p)) is not None:
        return p.name
    return safe_path(p)


def _stem(p: Path) -> str:
    n = p.name
    for ext in (".nii.gz", ".nii", ".seg.nrrd", ".nrrd", ".dcm"):
        if n.lower().endswith(ext):
            return n[: -len(ext)]
    return p.stem


def _label_kind(a: np.ndarray) -> str:
    """Kind of an array from its values.

    Returns one of ``'binary'`` (one non-zero value at most, with 0 as background, or all zeros),
    ``'labels'`` (several non-negative integer values, or two non-zero values without a 0
    background), ``'fractional'`` (finite values in 0..1 that are not all 0/1: a probability or
    partial-volume map), ``'nonfinite'`` (NaN or infinite values) or ``'image'`` (anything else:
    negative or non-integer values beyond 1, too many distinct values).
    """
    if a.dtype.kind == "b" or a.size == 0:
        return "binary"
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            return "nonfinite"
        if np.any(a != np.round(a)):
            return "fractional" if (a.min() >= 0.0 and a.max() <= 1.0) else "image"
    lo, hi = a.min(), a.max()
    if lo < 0:
        return "image"
    if hi == 0:
        return "binary"
    u = np.unique(a)
    if u.size > MAX_LABELS:
        return "image"
    if u.size == 1:  # one value everywhere (a mask covering its whole grid)
        return "binary"
    if u.size == 2 and u[0] == 0:
        return "binary"
    return "labels"


def _binary_note(a: np.ndarray, shown: str) -> str | None:
    """A message when a binary mask's foreground value is not 1 (e.g. 0/255 files)."""
    if a.dtype.kind == "b" or a.size == 0:
        return None
    hi = a.max()
    if hi in (0, 1):
        return None
    return (f"{shown} is a binary mask stored with the value {hi:g} (not 1); its non-zero voxels were taken "
            "as the structure.")


#: Threshold applied to fractional (probability / partial-volume) masks: a voxel belongs to the
#: structure when its value is at least this (the usual 0.5 rule, as for DICOM SEG FRACTIONAL).
FRACTIONAL_THRESHOLD = 0.5


def read_label_table(source: str | Path | Mapping | Iterable) -> dict[int, str]:
    """Parse a label table into ``{value: name}``.

    Accepted forms: ``{"1": "name"}``, ``{"name": 1}``, ``[{"value": 1, "name": "..."}]``
    (also keys ``label``/``labelValue`` and ``name``/``label_name``), a list of names (values
    1, 2, ...), or a path to a JSON file holding one of these.

    Raises
    ------
    MaskError
        The table cannot be understood.
    """
    if isinstance(source, (str, Path)):
        p = Path(source)
        try:
            source = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise MaskError(f"Cannot read the label table {_display(p)} ({type(exc).__name__}); give a JSON file "
                            "like {\"1\": \"spinal_cord\", ...}.") from None
    out: dict[int, str] = {}
    try:
        if isinstance(source, Mapping):
            if "labels" in source and not all(str(k).lstrip("-").isdigit() for k in source):
                return read_label_table(source["labels"])
            for k, v in source.items():
                if str(k).lstrip("-").isdigit():
                    out[int(k)] = str(v)
                else:
                    out[int(v)] = str(k)
        else:
            for n, item in enumerate(source, start=1):
                if isinstance(item, Mapping):
                    val = next(item[k] for k in ("value", "label", "labelValue", "id") if k in item)
                    nm = next(item[k] for k in ("name", "label_name", "structure") if k in item)
                    out[int(val)] = str(nm)
                else:
                    out[n] = str(item)
    except (StopIteration, TypeError, ValueError):
        raise MaskError("The label table is not understood; use {\"1\": \"name\", ...} or [{\"value\": 1, \"name\": ...}].") from None
    out.pop(0, None)
    if not out:
        raise MaskError("The label table is empty; it must name at least one non-zero label value.")
    return out


def _nifti_extension_table(img: Any) -> dict[int, str] | None:
    """Label names stored in a NIfTI header extension (TotalSegmentator ``--ml`` writes an XML LabelTable)."""
    for ext in getattr(img.header, "extensions", []):
        try:
            text = ext.get_content()
            text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        except Exception:  # pragma: no cover - exotic extensions
            continue
        found = re.findall(r'<Label\s+Key="(\d+)"[^>]*>\s*(?:<!\[CDATA\[(.*?)\]\]>|([^<]*))\s*</Label>', text, re.S)
        if found:
            return {int(k): (a or b).strip() for k, a, b in found if int(k) != 0}
        if text.lstrip().startswith("{"):
            try:
                return read_label_table(json.loads(text))
            except (ValueError, MaskError):
                continue
    return None


def _sidecar_table(p: Path) -> dict[int, str] | None:
    for cand in (p.with_name(_stem(p) + ".json"), p.with_name(_stem(p) + "_labels.json")):
        if cand.is_file():
            return read_label_table(cand)
    return _verse_table(p)


#: File stems read with the VerSe label tables when no other table is given: VerSe's own naming
#: (``*_seg-vert_msk``, ``*_seg-subreg_msk``, BIDS-like) and the plain ``vertebrae`` / ``subregions``.
VERSE_VERTEBRA_STEMS = re.compile(r"^(vertebrae|verse|.*seg-vert_msk|.*_msk_vert)$", re.I)
VERSE_SUBREGION_STEMS = re.compile(r"^(subregions|.*seg-subreg_msk|.*_msk_subreg)$", re.I)


def _verse_table(p: Path) -> dict[int, str] | None:
    """The VerSe vertebra (1-28) or subregion (41-50) label table for a file named as VerSe names them.

    Only by name: the values are checked against the table when the file is read (values outside it are
    reported as not in the label table, see :func:`load_nifti_file`).
    """
    from osteoplan.anatomy.labelmap import VERSE_SUBREGION_LABELS, VERSE_VERTEBRA_LABELS

    stem = _stem(p)
    if VERSE_VERTEBRA_STEMS.match(stem):
        return dict(VERSE_VERTEBRA_LABELS)
    if VERSE_SUBREGION_STEMS.match(stem):
        return dict(VERSE_SUBREGION_LABELS)
    return None


#: Words of structure names that cannot identify a patient: anatomy, laterality, radiotherapy and
#: segmentation terms (TotalSegmentator, OpenKBP, 3D Slicer, RT structure naming). A name outside the
#: vocabulary is shown and kept under its own name only when every word of it is one of these
#: (letters+digit level codes such as ``C2``/``T12`` and numbers of up to 3 digits are allowed too);
#: otherwise it may be a patient's name and is kept as ``unnamed_<n>``, never echoed.
ANATOMY_WORDS: frozenset[str] = frozenset("""
a air airway anterior aorta arch artery arteries atlas avoid axis body bone bones brachiocephalic brain
brainstem bowel ca canal cancellous capitis carotid cartilage cavity cca cement cervical chiasm clavicle
clavicula cochlea colli colon common constrictor cord cortical costal cricoid ctv cyst dens disc discs dose ear
eca esophagus external eye eyes facet fat femur foramen ganglion gland glands glottis gtv head heart iso isocenter hematoma hip
humerus hyoid ica ijv implant inferior inner internal intervertebral itv jugular kidney l lamina larynx lateral
left lens ligament lip liver longus lower lumbar lung lymph mandible marker marrow mass mastoid medial metal metastasis
muscle muscles nasal nasopharynx neck needle nerve node nodes oar occipital odontoid oesophagus optic oral
oropharynx outer parotid pedicle pharyngeal pharynx point posterior prevertebral process prv ptv r retropharyngeal rib
reference ribs right ring sacrum scalene scapula screw segment sinus skin skull soft space spinal spine spinous spleen
sternocleidomastoid sternum stomach structure subclavian submandibular superior supraglottic temporal thoracic
thyroid tissue tongue total trachea transverse trapezius trunk tumor tumour unnamed upper v va vein veins vertebra
vertebrae vertebral vessel vessels whole zygomatic
""".split())

_LEVEL_TOKEN = re.compile(r"^(?:[a-z]{1,2}\d{1,2}|\d{1,3})$")


def _safe_structure_name(raw: str) -> bool:
    """True when *raw* is made only of :data:`ANATOMY_WORDS` (and level codes / small numbers)."""
    tokens = [t for t in re.split(r"[^A-Za-z0-9]+", raw.strip().lower()) if t]
    return bool(tokens) and all(t in ANATOMY_WORDS or _LEVEL_TOKEN.match(t) for t in tokens)


def _shown(raw: str) -> str:
    """A structure name for messages: vocabulary / anatomy names as given, anything else hidden."""
    return raw if canonical_name(raw) is not None or _safe_structure_name(raw) else "<structure>"


#: Structures whose provided mask may legitimately be empty (segmented and absent).
MAY_BE_EMPTY: frozenset[str] = frozenset({"lesion"})


def _add(lm: LabelMap, raw_name: str, mask: np.ndarray, source: str, warnings: list[str]) -> None:
    canon = canonical_name(raw_name)
    if canon is None:
        if _safe_structure_name(raw_name):
            canon = re.sub(r"[^A-Za-z0-9_.-]", "_", raw_name.strip())
            msg = f"Unknown structure name '{canon}' kept as is (not in the osteoplan vocabulary; planners will ignore it)."
        else:
            n = 1
            while f"unnamed_{n}" in lm.masks:
                n += 1
            canon = f"unnamed_{n}"
            msg = (f"A structure whose name is outside the osteoplan vocabulary (not shown: it may identify the "
                   f"patient) was kept as '{canon}'; planners will ignore it. Rename it to a vocabulary name to use it.")
        log.warning(msg)
        warnings.append(msg)
    if not mask.any() and canon not in MAY_BE_EMPTY and canon not in lm.masks:
        # an empty provided mask of a normal structure means it was not found (TotalSegmentator writes empty
        # files for what it did not find), not that it is absent: recording it as "segmented and empty" would
        # let a planner call that structure clear. It stays NOT segmented (not assessed).
        msg = (f"The provided mask '{canon}' is empty; '{canon}' is treated as NOT segmented (not assessed), "
               "never as absent. Check the segmentation if it should be in the field of view.")
        log.warning(msg)
        warnings.append(msg)
        return
    if canon in lm.masks:  # several source structures map to one (e.g. oro- + hypopharynx -> pharynx)
        lm.masks[canon] = lm.masks[canon] | mask
        lm.sources[canon] = lm.sources[canon] + "+" + source
    else:
        lm.masks[canon] = lm._check(canon, mask)
        lm.sources[canon] = source


def load_nifti_file(path: str | Path, volume: Volume, label_table: Any = None, labelmap: LabelMap | None = None,
                    warnings: list[str] | None = None, name: str | None = None, _img: Any = None) -> LabelMap:
    """Load one NIfTI mask (binary) or label image (with a label table) onto the CT grid.

    Parameters
    ----------
    path : path
        ``.nii`` / ``.nii.gz``.
    volume : Volume
        The CT.
    label_table : mapping, list or path, optional
        ``{value: name}`` for a multilabel image (see :func:`read_label_table`). When omitted,
        a sidecar ``<stem>.json`` or a TotalSegmentator header extension is used.
    labelmap : LabelMap, optional
        Add to this label map instead of a new one.
    warnings : list of str, optional
        Receives what was tolerated (unknown names, cropping).
    name : str, optional
        Structure name of a binary mask (default: the file stem).

    Raises
    ------
    MaskError
        Not a mask (continuous image), a label image without a table, or no overlap with the CT.
    CorruptFileError
        The file cannot be read.
    """
    import nibabel as nib

    p = Path(path)
    warnings = warnings if warnings is not None else []
    lm = labelmap if labelmap is not None else LabelMap(volume)
    bad = _gzip_problem(p) if _img is None else None
    if bad is not None:
        raise CorruptFileError(f"Cannot read the mask {_display(p)}: {bad}.")
    try:
        img = _img if _img is not None else nib.load(str(p))
        grid = _nifti_to_grid(img, _display(p))
    except MaskError:
        raise
    except Exception as exc:
        raise CorruptFileError(f"Cannot read the mask {_display(p)} ({type(exc).__name__}); is the file complete?") from None
    table = read_label_table(label_table) if label_table is not None else (_sidecar_table(p) or _nifti_extension_table(img))
    kind = _label_kind(grid.array)
    if kind == "nonfinite":
        raise MaskError(f"{_display(p)} contains NaN or infinite values; it is not a valid mask. Re-export it "
                        "as a 0/1 mask (or a probability map with values 0..1).")
    if kind == "image":
        a = grid.array
        raise MaskError(f"{_display(p)} is an image with continuous values (min {float(a.min()):.3g}, max "
                        f"{float(a.max()):.3g}), not a mask; give a binary mask (0/1), a probability map (0..1) "
                        "or a label image with its label table.")
    source = f"provided:{_display(p)}"
    if kind == "fractional":
        if table is not None:
            raise MaskError(f"{_display(p)} has a label table but fractional values (0..1); a label image must "
                            "hold integer labels.")
        n_frac = int(np.count_nonzero((grid.array > 0) & (grid.array < 1)))
        grid = MaskGrid((grid.array >= FRACTIONAL_THRESHOLD).astype(np.uint8), grid.affine, grid.origin)
        msg = (f"{_display(p)} holds fractional values between 0 and 1 ({n_frac} voxels; a probability or "
               f"partial-volume map): voxels >= {FRACTIONAL_THRESHOLD:g} were taken as the structure.")
        log.info(msg)
        warnings.append(msg)
        kind = "binary"
    if table is None:
        if kind == "labels":
            raise MaskError(f"{_display(p)} holds several label values but no label table was found; put a "
                            f"{_stem(p)}.json next to it ({{\"1\": \"name\", ...}}) or pass label_table.")
        note = _binary_note(grid.array, _display(p))
        if note:
            warnings.append(note)
        arr = resample_mask(grid, volume, name or _stem(p), warnings)
        _add(lm, name or _stem(p), arr != 0, source, warnings)
        return lm
    arr = resample_mask(grid, volume, _stem(p), warnings)
    present = set(np.unique(grid.array).tolist())
    if table == _verse_table(p):
        # a VerSe file holds the levels in view only: the table's other levels are not expected in it
        table = {v: n for v, n in table.items() if v in present}
        source = f"provided:verse:{_display(p)}"
        warnings.append(f"{_display(p)} read as VerSe labels ({', '.join(sorted(table.values())) or 'none'}).")
    for value, nm in sorted(table.items()):
        if value not in present:
            msg = f"Label {value} ('{_shown(nm)}') of {_display(p)} is in the table but has no voxel."
            warnings.append(msg)
        _add(lm, nm, arr == value, source, warnings)
    extra = sorted(v for v in present if v != 0 and v not in table)
    if extra:
        warnings.append(f"{_display(p)}: label values {extra[:10]} are not in the label table and were ignored.")
    return lm


def load_nifti_folder(folder: str | Path, volume: Volume, labelmap: LabelMap | None = None,
                      warnings: list[str] | None = None, keep_unknown: bool | None = None) -> LabelMap:
    """Load every mask of a folder of NIfTI files (TotalSegmentator's default output, OpenKBP case folders).

    Files that are images rather than masks (``ct.nii.gz``, ``*_0000.nii.gz``, continuous values)
    are skipped; multilabel files are read with their sidecar JSON table. When the folder holds a
    ``labels/`` or ``segmentations/`` subfolder of masks, that subfolder is read instead.

    Parameters
    ----------
    keep_unknown : bool, optional
        Load single-structure files whose name is outside the vocabulary (kept under their own
        name, with a warning). By default they are kept unless the folder holds more than
        :data:`MAX_UNKNOWN_FOLDER` files (a full TotalSegmentator run: 117 whole-CT masks would not
        fit in memory); skipped names are listed in one warning.

    Raises
    ------
    MaskError
        No mask in the folder, or a mask that does not overlap the CT.
    """
    import nibabel as nib

    d = Path(folder)
    for sub in ("labels", "segmentations"):
        if (d / sub).is_dir() and any((d / sub).glob("*.nii*")):
            d = d / sub
            break
    warnings = warnings if warnings is not None else []
    lm = labelmap if labelmap is not None else LabelMap(volume)
    files = sorted(f for f in d.iterdir() if f.is_file() and f.name.lower().endswith((".nii", ".nii.gz")))
    if keep_unknown is None:
        keep_unknown = len(files) <= MAX_UNKNOWN_FOLDER
    n_loaded = 0
    n_unreadable = 0
    skipped_unknown: list[str] = []
    for f in files:
        if IMAGE_STEMS.match(_stem(f)):
            continue
        table = _sidecar_table(f)
        if table is None and not keep_unknown and canonical_name(_stem(f)) is None:
            skipped_unknown.append(_stem(f))
            continue
        named = canonical_name(_stem(f)) is not None
        bad = _gzip_problem(f)  # a stream failing its checksum: unreadable like a truncated file, never loaded
        try:
            if bad is not None:
                raise CorruptFileError(bad)
            orig = nib.load(str(f))
            data = np.asanyarray(orig.dataobj)  # read once (scaled); nibabel does not cache proxies
            img = nib.Nifti1Image(data, orig.affine) if isinstance(orig, nib.Nifti1Image) else orig
        except Exception as exc:
            if named:
                # a mask the user gave for a planning structure must not silently become "not assessed"
                if bad is not None:
                    raise CorruptFileError(f"Cannot read the mask {_display(f)}: {bad}, or remove it from the "
                                           "folder.") from None
                raise CorruptFileError(f"Cannot read the mask {_display(f)} ({type(exc).__name__}: truncated or "
                                       "damaged file?); re-copy or re-export it, or remove it from the folder.") from None
            warnings.append(f"{_display(f)} could not be read (truncated or damaged?) and was skipped.")
            n_unreadable += 1
            continue
        if table is None:
            table = _nifti_extension_table(orig)
            kind = _label_kind(data)
            if table is None and kind == "fractional" and not named:
                # a fractional map under a name outside the vocabulary may be an intensity-normalised image
                warnings.append(f"{_display(f)} holds fractional values (0..1) and its name is not a structure of "
                                "the vocabulary: not loaded (rename it to a structure name to use it as a mask).")
                continue
            if table is None and kind not in ("binary", "fractional"):
                if named:  # a structure's file that is not a mask: an error, with the reason
                    load_nifti_file(f, volume, labelmap=lm, warnings=warnings, _img=img)
                warnings.append(f"{_display(f)} is not a binary mask (and has no label table); skipped.")
                continue
        load_nifti_file(f, volume, label_table=table, labelmap=lm, warnings=warnings, _img=img)
        n_loaded += 1
    if skipped_unknown:
        shown = [n for n in skipped_unknown if _safe_structure_name(n)][:5]
        warnings.append(f"{len(skipped_unknown)} structure file(s) outside the osteoplan vocabulary were not loaded"
                        + (f" (e.g. {', '.join(shown)})." if shown else "."))
    if n_loaded == 0:
        why = (f" ({n_unreadable} NIfTI file(s) could not be read: truncated or damaged? re-copy them)"
               if n_unreadable else "")
        raise MaskError(f"No mask found in the folder {safe_path(d)}{why}: expected one NIfTI file per structure "
                        "(e.g. TotalSegmentator output) or a label image with a JSON table.")
    return lm


# ------------------------------------------------------------------------------------- Slicer


def load_seg_nrrd(path: str | Path, volume: Volume, labelmap: LabelMap | None = None,
                  warnings: list[str] | None = None) -> LabelMap:
    """Load a 3D Slicer segmentation (``.seg.nrrd``, read with :mod:`slicerio`) onto the CT grid.

    Segments are taken by name (``SegmentN_Name``), with shared layers and label values handled
    by :func:`slicerio.segment_mask`; the ``ijkToLPS`` geometry is honoured.

    Raises
    ------
    MaskError
        No segment, or a segment that does not overlap the CT.
    CorruptFileError
        The file is not a readable segmentation.
    """
    import slicerio

    p = Path(path)
    warnings = warnings if warnings is not None else []
    lm = labelmap if labelmap is not None else LabelMap(volume)
    try:
        seg = slicerio.read_segmentation(str(p))
    except Exception as exc:
        raise CorruptFileError(f"Cannot read the Slicer segmentation {_display(p)} ({type(exc).__name__}).") from None
    segments = seg.get("segments") or []
    if not segments:
        raise MaskError(f"{_display(p)} has no segment.")
    ijk = np.asarray(seg["ijkToLPS"], dtype=np.float64)
    aff = np.eye(4)
    aff[:3, 0], aff[:3, 1], aff[:3, 2], aff[:3, 3] = ijk[:3, 2], ijk[:3, 1], ijk[:3, 0], ijk[:3, 3]
    for s in segments:
        nm = s.get("name") or s.get("id") or "segment"
        m = slicerio.segment_mask(seg, s)  # (i, j, k)
        grid = MaskGrid(np.transpose(m, (2, 1, 0)).astype(np.uint8), aff, _display(p))
        _add(lm, nm, resample_mask(grid, volume, nm, warnings) != 0, f"provided:{_display(p)}", warnings)
    return lm


# ------------------------------------------------------------------------------------- DICOM SEG


def load_dicom_seg(path: str | Path, volume: Volume, labelmap: LabelMap | None = None,
                   warnings: list[str] | None = None) -> LabelMap:
    """Load a DICOM Segmentation object (read with :mod:`highdicom`) onto the CT grid.

    Each segment (SegmentLabel) becomes one structure; its frames are assembled into a volume
    by :meth:`highdicom.seg.Segmentation.get_volume` (LPS affine) and resampled onto the CT.
    A FrameOfReferenceUID different from the CT's (when both are known) is reported as a warning,
    since de-identification may have remapped UIDs; the overlap check still applies.

    Raises
    ------
    MaskError
        Not a SEG object, segments that cannot be assembled into a volume, or no overlap.
    """
    import highdicom as hd

    p = Path(path)
    warnings = warnings if warnings is not None else []
    lm = labelmap if labelmap is not None else LabelMap(volume)
    try:
        seg = hd.seg.segread(str(p))
    except Exception as exc:
        raise MaskError(f"{_display(p)} is not a readable DICOM Segmentation ({type(exc).__name__}).") from None
    ct_for = volume.info.frame_of_reference_uid
    seg_for = getattr(seg, "FrameOfReferenceUID", None)
    if ct_for and seg_for and ct_for != seg_for:
        warnings.append("The DICOM SEG and the CT have different FrameOfReferenceUIDs; checked by overlap only.")
    for number in seg.get_segment_numbers():
        label = seg.get_segment_description(number).segment_label
        try:
            v = seg.get_volume(segment_numbers=[number], combine_segments=False, dtype=np.float32)
        except Exception as exc:
            raise MaskError(f"Segment '{_shown(label)}' of {_display(p)} cannot be assembled into a volume "
                            f"({type(exc).__name__}); is it a regular 3D stack?") from None
        arr = np.asarray(v.array)
        if arr.ndim == 4:
            arr = arr[..., 0]
        arr = (arr >= 0.5).astype(np.uint8)  # BINARY: 0/1; FRACTIONAL (rescaled to 0..1): at least half
        grid = MaskGrid(arr, np.asarray(v.affine), _display(p))
        _add(lm, label, resample_mask(grid, volume, label, warnings) != 0, f"provided:{_display(p)}", warnings)
    return lm


# ------------------------------------------------------------------------------------- RT STRUCT


def load_rtstruct(path: str | Path, volume: Volume, labelmap: LabelMap | None = None,
                  warnings: list[str] | None = None) -> LabelMap:
    """Rasterise a DICOM RT Structure Set (radiotherapy contours) onto the CT grid.

    Each ROI (StructureSetROISequence ``ROIName``) becomes one structure. Every closed planar
    contour (ContourData, LPS mm) is mapped to CT index space; it must lie in one CT slice plane
    (within half a slice; otherwise it is skipped with a warning). Voxels whose centres fall
    inside the polygon are set (:func:`skimage.draw.polygon`); several contours on one slice
    combine by even-odd parity, so inner contours make holes, as in the DICOM RT convention.
    POINT and OPEN contours are ignored.

    Raises
    ------
    MaskError
        Not an RT Structure Set, no usable contour, or contours outside the CT.
    """
    import pydicom
    from skimage.draw import polygon

    p = Path(path)
    warnings = warnings if warnings is not None else []
    lm = labelmap if labelmap is not None else LabelMap(volume)
    try:
        ds = pydicom.dcmread(str(p))
    except Exception as exc:
        raise MaskError(f"{_display(p)} is not a readable DICOM file ({type(exc).__name__}).") from None
    if str(ds.get("Modality", "")) != "RTSTRUCT":
        raise MaskError(f"{_display(p)} is not an RT Structure Set.")
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.get("StructureSetROISequence", [])}
    K, J, I = volume.shape
    ct_box = _ct_bounds(volume)
    n_loaded = 0
    for roi in ds.get("ROIContourSequence", []):
        number = int(roi.ReferencedROINumber)
        name = names.get(number, f"ROI_{number}")
        parity = np.zeros(volume.shape, dtype=bool)
        n_contours = n_off = 0
        for c in roi.get("ContourSequence", []):
            if str(c.get("ContourGeometricType", "CLOSED_PLANAR")) != "CLOSED_PLANAR":
                continue
            pts = np.asarray(c.ContourData, dtype=np.float64).reshape(-1, 3)
            if len(pts) < 3:
                continue
            idx = volume.world_to_index(pts)
            k = float(np.mean(idx[:, 0]))
            kk = int(round(k))
            if np.ptp(idx[:, 0]) > 0.1 or abs(k - kk) > 0.5 or not 0 <= kk < K:
                n_off += 1
                continue
            rr, cc = polygon(idx[:, 1], idx[:, 2], shape=(J, I))
            if rr.size == 0:
                n_off += 1
                continue
            sl = np.zeros((J, I), dtype=bool)
            sl[rr, cc] = True
            parity[kk] ^= sl
            n_contours += 1
        if n_off:
            warnings.append(f"ROI '{_shown(name)}': {n_off} contour(s) outside the CT or not in a CT slice plane were skipped.")
        if n_contours == 0:
            if n_off:
                raise MaskError(f"ROI '{_shown(name)}' of {_display(p)} does not overlap the CT (CT covers {_fmt_box(ct_box)}); "
                                "check that the structure set belongs to this scan.")
            warnings.append(f"ROI '{_shown(name)}' has no closed contour.")
        _add(lm, name, parity, f"provided:{_display(p)}", warnings)
        n_loaded += 1
    if n_loaded == 0:
        raise MaskError(f"{_display(p)} has no ROI contour.")
    return lm


# ------------------------------------------------------------------------------------- dispatch


def _is_dicom(p: Path) -> bool:
    try:
        with open(p, "rb") as fh:
            head = fh.read(132)
        return len(head) == 132 and head[128:132] == b"DICM"
    except OSError:
        return False


def load_masks(path: str | Path, volume: Volume, label_table: Any = None,
               warnings: list[str] | None = None) -> LabelMap:
    """Load provided masks from any supported source onto the CT's grid.

    Parameters
    ----------
    path : path
        One of: a folder of per-structure NIfTI files (TotalSegmentator default output, OpenKBP
        ``pt_N/``; CT images in it are skipped); a NIfTI file (binary mask, or multilabel with a
        sidecar JSON table / TotalSegmentator header extension / *label_table*); a 3D Slicer
        ``.seg.nrrd``; a DICOM SEG file; a DICOM RT Structure Set (contours, rasterised); a
        folder holding DICOM SEG / RTSTRUCT file(s).
    volume : Volume
        The CT; defines the output grid.
    label_table : mapping, list or path, optional
        Label table for a multilabel NIfTI (see :func:`read_label_table`).
    warnings : list of str, optional
        Receives non-fatal messages (unknown names, cropped masks, skipped files).

    Returns
    -------
    LabelMap
        Canonical names; ``sources`` say ``provided:<file>``.

    Raises
    ------
    InputError
        The path does not exist or its format is not supported.
    MaskError
        No mask found, or a mask that does not overlap the CT (see :func:`resample_mask`).
    """
    p = Path(path)
    warnings = warnings if warnings is not None else []
    if not p.exists():
        raise InputError(f"Masks not found: {_display(p)}. Check the path.")
    name = p.name.lower()
    if p.is_dir():
        if any(f.name.lower().endswith((".nii", ".nii.gz")) for f in p.iterdir()) or \
                any((p / s).is_dir() for s in ("labels", "segmentations")):
            return load_nifti_folder(p, volume, warnings=warnings)
        segs = [f for f in sorted(p.iterdir()) if f.is_file() and f.name.lower().endswith(".seg.nrrd")]
        dcm = [(f, _modality(f)) for f in sorted(p.rglob("*")) if f.is_file() and _is_dicom(f)]
        dcm_segs = [f for f, m in dcm if m == "SEG"]
        rts = [f for f, m in dcm if m == "RTSTRUCT"]
        if not segs and not dcm_segs and not rts:
            raise MaskError(f"No mask found in {_display(p)}: give NIfTI masks, a .seg.nrrd, a DICOM SEG or an RT "
                            "Structure Set.")
        lm = LabelMap(volume)
        for f in segs:
            load_seg_nrrd(f, volume, labelmap=lm, warnings=warnings)
        for f in dcm_segs:
            load_dicom_seg(f, volume, labelmap=lm, warnings=warnings)
        for f in rts:
            load_rtstruct(f, volume, labelmap=lm, warnings=warnings)
        return lm
    if name.endswith(".seg.nrrd"):
        return load_seg_nrrd(p, volume, warnings=warnings)
    if name.endswith((".nii", ".nii.gz")):
        return load_nifti_file(p, volume, label_table=label_table, warnings=warnings)
    if _is_dicom(p) or name.endswith(".dcm"):
        mod = _modality(p)
        if mod == "RTSTRUCT":
            return load_rtstruct(p, volume, warnings=warnings)
        if mod != "SEG":
            raise MaskError(f"{_display(p)} is a DICOM {mod or 'object'} file, not a Segmentation (SEG) "
                            "or RT Structure Set.")
        return load_dicom_seg(p, volume, warnings=warnings)
    if name.endswith(".nrrd"):
        raise InputError(f"{_display(p)} is a plain NRRD; masks must be a Slicer segmentation (.seg.nrrd).")
    raise InputError(f"Unsupported mask format {_display(p)}: give a NIfTI folder or file, a .seg.nrrd, a DICOM SEG "
                     "or an RT Structure Set.")


def _modality(p: Path) -> str | None:
    import pydicom

    try:
        ds = pydicom.dcmread(str(p), stop_before_pixels=True, specific_tags=["Modality"])
        return str(ds.get("Modality", "")) or None
    except Exception:
        return None
