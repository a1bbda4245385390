"""DICOM CT series reading with exact geometry (every row of ``docs/dicom-behaviour.md``).

Pipeline
--------
1. :func:`scan` reads every file under a folder (recursively) with
   ``pydicom.dcmread(defer_size=4096)`` (pixel data not read, its file offset kept; parsed from the
   file's first :data:`HEADER_CHUNK_BYTES` read in one go when the header lies within them), skips
   non-DICOM / unreadable files with a warning, expands Enhanced (multi-frame) CT into one
   :class:`Frame` per frame (per-frame functional groups give position, orientation and rescale)
   and groups frames by SeriesInstanceUID into :class:`SeriesInfo` records.
2. :func:`choose_series` picks the requested SeriesInstanceUID, or else the largest axial CT
   series that may be planned on (Secondary Capture, DERIVED, LOCALIZER and non-CT series
   are rejected with the reason) and says so.
3. :func:`plan_geometry` sorts the frames by ImagePositionPatient projected on the slice
   normal (cross product of the ImageOrientationPatient rows; InstanceNumber only breaks
   ties), detects duplicates, gaps (refused unless ``allow_gaps``), varying spacing (refused
   with the measured spacings unless ``resample_uniform``) and gantry tilt (in-plane drift of
   the positions along the stack, measured from the positions, not from GantryDetectorTilt).
4. :func:`read_series` decodes the pixels (thread pool; pydicom with the pylibjpeg /
   pyjpegls / gdcm plugins for compressed transfer syntaxes), applies each slice's own
   RescaleSlope/RescaleIntercept in floating point, resolves duplicates (identical -> keep
   one and warn, different -> refuse), drops truncated files (error when the series becomes
   incomplete) and assembles the :class:`~osteoplan.imaging.volume.Volume`, resampling onto an
   orthogonal uniform grid when the stack is tilted, has allowed gaps or uneven spacing.
   Gaps interpolated (every missing slice's LPS position), files skipped (counted by reason, never named) and the
   series chosen among several are also returned as data, ``Volume.reader_notes``
   (:mod:`osteoplan.imaging.reader_notes`); a refusal that an option would lift carries ``remedy``, the key of
   :data:`osteoplan.remedies.REMEDIES`, so that each face names what its user can do.

Never a silently wrong volume (issue 18)
---------------------------------------
* Hounsfield units: a RescaleSlope/RescaleIntercept that is missing (Type 1 for CT), unparseable,
  non-finite or implausible (:data:`RESCALE_SLOPE_RANGE`, :data:`RESCALE_INTERCEPT_RANGE_HU`), or pixels
  that rescale outside :data:`PLAUSIBLE_HU_RANGE`, refuse the series naming the slice by position and
  InstanceNumber (never its file); a stray copy whose position is held by a valid image is dropped with
  a warning. NaN/inf never reach the volume.
* Bounded time and memory: :data:`MAX_FILES`, :data:`MAX_FOLDER_DEPTH`, :data:`MAX_FILE_BYTES`,
  :data:`MAX_FRAMES`, :data:`MAX_SEQUENCE_DEPTH`, :data:`MAX_EXTENT_MM`, :data:`MAX_VOLUME_VOXELS`
  (module constants, each with its reason); only regular files are opened (a named pipe never blocks).
* An image of the chosen series that cannot be used (header read, geometry unusable) refuses the
  series instead of silently shortening it; two copies of one SOPInstanceUID at different places too.
* In-plane position noise up to :data:`POSITION_NOISE_FRACTION` of a pixel is not a gantry tilt.
* Anonymised series (blank SeriesInstanceUID, SOPClassUID only in the file meta) are grouped by what is
  left, with a warning; pydicom's own messages are logged without paths or quoted values.
* ``benchmarks/dicom_mutation.py`` checks all this on ~2,400 mutants of a real series
  (``docs/dicom_mutation.md``).

Geometry convention: the output affine maps (k, j, i) to LPS mm with column 0 = slice step
along the normal ``n = row_dir x col_dir`` (slices sorted by increasing ``position . n``),
column 1 = IOP column direction x PixelSpacing[0] (down the rows), column 2 = IOP row
direction x PixelSpacing[1] (along a row), column 3 = position of the first sorted slice
(DICOM PS3.3 C.7.6.2.1.1). Arrays are never reoriented, so non-axial acquisitions keep their
own array order and world coordinates stay exact.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from osteoplan.errors import (
    CorruptFileError,
    DicomSeriesError,
    InputError,
    NotACTError,
    SeriesSelectionError,
    safe_path,
)
from osteoplan.imaging.reader_notes import ReaderNote, gap_description, note_text
from osteoplan.imaging.volume import AIR_HU, AcquisitionInfo, Volume
from osteoplan.remedies import remedy_clause

log = logging.getLogger(__name__)

#: SOP classes of CT images that may be planned on.
CT_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT Image Storage",
}
#: Root of every Secondary Capture SOP class (single- and multi-frame).
SECONDARY_CAPTURE_ROOT = "1.2.840.10008.5.1.4.1.1.7"

#: Transfer syntaxes that allow lossy compression (HU no longer exact).
LOSSY_TRANSFER_SYNTAXES = {
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000 (lossy allowed)
    "1.2.840.10008.1.2.4.93",  # JPEG 2000 Part 2 multi-component
    "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.203",  # HTJ2K (lossy allowed)
}

#: Two slices closer than this along the normal are "at the same position" (mm).
#: Configurable default without a published source (DS values carry ~1e-4 mm rounding).
SAME_POSITION_TOL_MM = 0.01
#: Relative tolerance on slice steps (fraction of the nominal step) before calling the
#: spacing uneven. Configurable default without a published source.
STEP_REL_TOL = 0.01
#: In-plane drift of the slice origins over the whole stack above which the stack is
#: treated as tilted (mm). Configurable default without a published source.
TILT_DRIFT_TOL_MM = 0.01
#: Orientation cosines that differ by more than this between slices are "different".
ORIENTATION_TOL = 1e-4

# ---- Limits: every input ends in bounded time and memory with a clear message (issue 18)
#: Largest volume the reader builds (voxels). 2**30 float32 voxels are 4 GiB: a whole-body CT of
#: 512 x 512 x 4096 slices. A larger grid comes from corrupted positions (one slice at z = 1e308)
#: and is refused with the measured extent before anything is allocated. Configurable default.
MAX_VOLUME_VOXELS = 1 << 30
#: Largest extent of a series along any axis (mm). The tallest patient is about 2.1 m, a whole-body
#: CT about 2 m; 3000 mm leaves room for any table travel and refuses a flipped digit that puts one
#: slice 7 km away. Configurable default.
MAX_EXTENT_MM = 3000.0
#: Largest file the scan opens (bytes): 4 GiB holds an Enhanced CT of 2**30 16-bit voxels (twice
#: :data:`MAX_VOLUME_VOXELS` worth of 16-bit data would not fit the volume anyway). Larger files are
#: skipped with a warning. Configurable default.
MAX_FILE_BYTES = 4 << 30
#: Deepest sub-folder searched below the input folder. PACS and CD exports nest 3 to 6 levels
#: (patient/study/series/...); deeper folders are skipped with a warning (a 1,100-level nest once
#: crashed the recursive walk). Configurable default.
MAX_FOLDER_DEPTH = 32
#: Most files examined under one input (a study export with many series holds a few 10 000 files).
#: Beyond this the input is refused: give the series folder. Configurable default.
MAX_FILES = 100_000
#: Most frames of one multi-frame image (NumberOfFrames): a whole-body Enhanced CT has a few
#: thousand; 2**31-1 (a corrupted value) would otherwise loop for hours. Configurable default.
MAX_FRAMES = 10_000
#: Deepest sequence nesting looked into (identifying-value check, functional groups). CT headers nest
#: 2 to 4 levels; a 1,000-level nest once took > 100 s and 8 GB. Configurable default.
MAX_SEQUENCE_DEPTH = 16
#: In-plane noise tolerated in slice positions, as a fraction of the smaller pixel spacing: positions
#: are printed with limited decimals by some scanners and moved by a few 1/100 mm by some
#: converters. A stack whose in-plane drift stays within this is not called tilted and is not
#: resampled (the error made by ignoring it is below a tenth of a pixel). Configurable default.
POSITION_NOISE_FRACTION = 0.1

# ---- Hounsfield-unit plausibility (a wrong rescale must never give a silently wrong volume)
#: RescaleSlope must be finite and inside this range. A slope <= 0 inverts or erases the image;
#: CT scanners write 1 (occasionally another small positive value such as 0.5 or 2, or a decimal
#: fraction when a floating-point reconstruction was stored as integers). Configurable default, no
#: published source: 1/256 .. 256 keeps every such export and refuses the values that turn a slice
#: into a flat or exploded image (1e-6, 1e6).
RESCALE_SLOPE_RANGE = (1.0 / 256.0, 256.0)
#: RescaleIntercept must be finite and inside this range (HU). CT intercepts are -1024, -1000, 0 or
#: -3024 in practice; a value beyond +-8192 HU cannot map any stored CT value onto tissue. Configurable
#: default, no published source.
RESCALE_INTERCEPT_RANGE_HU = (-8192.0, 8192.0)
#: Every rescaled pixel value of a slice must lie in this range (HU). Lower bound: nothing physical is
#: below air (-1000 HU), but vendors pad the area outside the reconstruction circle with values down
#: to -3024 HU (e.g. stored -2000 with intercept -1024), so -4096 leaves room for padding and refuses
#: only a wrong rescale. Upper bound: +32767 HU, the largest value of a signed 16-bit HU image, which
#: also holds the extended CT scale for metal (up to about +30 700 HU). Configurable default.
PLAUSIBLE_HU_RANGE = (-4096.0, 32767.0)


# --------------------------------------------------------------------------- records
@dataclass
class Frame:
    """One 2D image of a series: a single-frame file or one frame of a multi-frame file.

    Attributes
    ----------
    file_index : int
        Index into :attr:`ScanResult.files`.
    frame_index : int | None
        Frame number (0-based) inside a multi-frame file, None for a single-frame file.
    position : ndarray (3,)
        ImagePositionPatient (LPS mm) of the first transmitted pixel's centre.
    orientation : ndarray (6,)
        ImageOrientationPatient (row direction cosines, column direction cosines).
    pixel_spacing : tuple (row spacing, column spacing) in mm
    rows, cols : int
    slope, intercept : float
        RescaleSlope / RescaleIntercept of this frame.
    instance : int
        InstanceNumber (single-frame) or frame number (multi-frame), only to break ties.
    rescale_problem : str | None
        Why RescaleSlope/RescaleIntercept cannot be trusted (missing, unparseable, non-finite,
        out of :data:`RESCALE_SLOPE_RANGE` / :data:`RESCALE_INTERCEPT_RANGE_HU`), else None. Such a
        frame is never rescaled with a guessed value: :func:`read_series` drops it with a warning
        when another valid image holds its position, and refuses the series otherwise.
    """

    file_index: int
    frame_index: int | None
    position: np.ndarray
    orientation: np.ndarray
    pixel_spacing: tuple[float, float]
    rows: int
    cols: int
    slope: float
    intercept: float
    instance: int
    rescale_problem: str | None = None
    sop_instance_uid: str | None = None


#: Shown instead of a series description or kernel that contains an identifying value.
REMOVED_TEXT = "<removed: contains identifying data>"


def _free_text_without_identifiers(ds: Any, *texts: str | None) -> tuple[str | None, ...]:
    """*texts* (series description, kernel...) with any one that holds an identifying value of *ds*
    (patient name or its parts, ID, birth date, institution, operators...; see
    :func:`osteoplan.imaging.deid.collect_identifying_values`) replaced by :data:`REMOVED_TEXT`."""
    if not any(texts):
        return texts
    from osteoplan.imaging.deid import UID_KEYWORDS, collect_identifying_values

    try:
        failed: list[int] = []
        found = collect_identifying_values(_bounded_copy(ds, MAX_SEQUENCE_DEPTH, failed), include_dates=False)
        if failed:
            raise ValueError("damaged elements")
    except Exception:  # noqa: BLE001 - a damaged element (corrupted VR...): the texts cannot be checked
        log.warning("identifying values of a header could not be collected (damaged element); series "
                    "description and kernel are hidden")
        return tuple(None if t is None else REMOVED_TEXT for t in texts)
    # named identifying attributes only: private elements' text is collected by deid as "may identify",
    # but vendors keep words such as "BONE" or "STANDARD" there, which would hide every kernel
    needles = [v.lower() for attr, v in found.items() if attr not in UID_KEYWORDS and not attr.startswith("private")]
    return tuple(t if t is None or not any(n in t.lower() for n in needles) else REMOVED_TEXT for t in texts)


def _bounded_copy(ds: Any, max_depth: int, failed: list[int] | None = None) -> Any:
    """A copy of *ds* whose sequences are cut below *max_depth* levels (iterative; raw values kept).

    pydicom parses a sequence when it is first accessed, one level at a time; walking a deliberately
    deep nest (1,000 levels) recursively exhausts the stack or memory. Elements that cannot be parsed
    are left out and their tags appended to *failed*.
    """
    failed = failed if failed is not None else []
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    def shallow(src: Any) -> Any:
        out = Dataset()
        for tag in list(src.keys()):
            try:
                elem = src.get_item(tag)
                vr = getattr(elem, "VR", None)
            except Exception:  # noqa: BLE001
                failed.append(int(tag))
                continue
            if vr == "SQ":
                continue
            try:
                out[tag] = src[tag]
            except Exception:  # noqa: BLE001 - value that cannot be converted
                failed.append(int(tag))
                continue
        return out

    top = shallow(ds)
    if getattr(ds, "file_meta", None) is not None:
        top.file_meta = ds.file_meta
    stack = [(ds, top, 0)]
    while stack:
        src, dst, depth = stack.pop()
        if depth >= max_depth:
            continue
        for tag in list(src.keys()):
            try:
                if getattr(src.get_item(tag), "VR", None) != "SQ":
                    continue
                items = src[tag].value
            except Exception:  # noqa: BLE001
                failed.append(int(tag))
                continue
            copies = []
            for item in items:
                c = shallow(item)
                copies.append(c)
                stack.append((item, c, depth + 1))
            dst.add_new(tag, "SQ", Sequence(copies))
    return top


@dataclass
class SeriesInfo:
    """What the scan found about one series (no identifying data except UIDs/description).

    ``rejection`` is None when the series may be planned on, else the reason it may not.
    """

    uid: str
    description: str | None
    modality: str | None
    sop_class: str
    image_type: tuple[str, ...]
    kernel: str | None
    kvp: float | None
    contrast: bool | None
    study_uid: str | None
    frame_of_reference_uid: str | None
    series_number: int | None
    transfer_syntaxes: set[str] = field(default_factory=set)
    file_indices: list[int] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    rejection: str | None = None
    #: what was missing and what was done instead -> number of files (anonymised series)
    missing: dict[str, int] = field(default_factory=dict)

    @property
    def n_files(self) -> int:
        return len(self.file_indices)

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    @property
    def enhanced(self) -> bool:
        return self.sop_class in ("1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2")

    def orientation_label(self) -> str:
        """``axial``, ``coronal``, ``sagittal`` or ``oblique`` from the slice normal."""
        if not self.frames:
            return "unknown"
        return orientation_label(self.frames[0].orientation)


@dataclass
class ScanResult:
    """Files and series found under a path, plus the files that were skipped and why."""

    files: list[Path]
    display_names: list[str]
    series: list[SeriesInfo]
    skipped: list[tuple[str, str]]
    datasets: list[Any] = field(default_factory=list, repr=False)

    def get(self, uid: str) -> SeriesInfo | None:
        for s in self.series:
            if s.uid == uid:
                return s
        return None


@dataclass
class GeometryPlan:
    """Sorted stack and output grid of a series (computed from the headers only).

    Attributes
    ----------
    groups : list[list[int]]
        Frame indices (into ``SeriesInfo.frames``) at each distinct position, sorted along
        the normal; a group with several entries holds duplicates.
    depths_mm : ndarray (S,)
        Position of each group along the normal (mm).
    inplane_offsets_mm : ndarray (S, 2)
        In-plane offset of each group's origin from the first one, along (column
        direction, row direction) = (j, i) axes, mm.
    affine : ndarray (4, 4)
        Output index (k, j, i) -> LPS affine.
    shape : tuple (K, J, I)
    resample : bool
        True when the output grid is not the acquired stack (tilt, gaps, uneven spacing).
    step_mm : float
        Output slice spacing.
    tilt_deg : float
        Tilt of the stack (angle between the stacking direction and the normal), degrees.
    warnings : list[str]
    notes : list[ReaderNote]
        The gaps interpolated, as data (their sentences are in ``warnings`` too).
    """

    groups: list[list[int]]
    depths_mm: np.ndarray
    inplane_offsets_mm: np.ndarray
    affine: np.ndarray
    shape: tuple[int, int, int]
    resample: bool
    step_mm: float
    tilt_deg: float
    normal: np.ndarray
    warnings: list[str]
    gaps: list[tuple[float, float]] = field(default_factory=list)
    notes: list[ReaderNote] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers
def orientation_label(iop: np.ndarray) -> str:
    """Name the plane of an ImageOrientationPatient from its normal (dominant LPS axis > 0.9)."""
    row = np.asarray(iop[:3], float)
    col = np.asarray(iop[3:6], float)
    n = np.cross(row, col)
    n = n / (np.linalg.norm(n) or 1.0)
    a = int(np.argmax(np.abs(n)))
    if abs(n[a]) < 0.9:
        return "oblique"
    return ("sagittal", "coronal", "axial")[a]


def _float(v: Any, default: float | None = None) -> float | None:
    try:
        if v is None or v == "":
            return default
        return float(v)
    except (TypeError, ValueError):
        return default


def _int(v: Any, default: int = 0) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


_TAGS: dict[str, Any] = {}


def _tag(keyword: str) -> Any:
    """The pydicom ``BaseTag`` of a DICOM keyword (None when unknown), looked up once.

    pydicom turns a keyword into a tag on every ``ds.get("Rows")`` / ``"Rows" in ds`` (keyword table,
    then ``Tag()`` type checks); a ``BaseTag`` is used as it is.
    """
    try:
        return _TAGS[keyword]
    except KeyError:
        from pydicom.datadict import tag_for_keyword
        from pydicom.tag import BaseTag

        t = tag_for_keyword(keyword)
        _TAGS[keyword] = tag = None if t is None else BaseTag(t)
        return tag


def _value(ds: Any, keyword: str, default: Any = None) -> Any:
    """``ds.get(keyword, default)`` by tag: the same value and conversion (``ds[tag].value``), without
    pydicom's failed attribute lookup before ``Dataset.__getattr__``. Like ``ds.get``, an AttributeError
    raised while converting the value gives *default*."""
    tag = _tag(keyword)
    if tag is None or tag not in ds:
        return default
    try:
        return ds[tag].value
    except AttributeError:
        return default


def _text(ds: Any, keyword: str) -> str | None:
    """Value of a string-valued attribute as text, reading the raw bytes when not yet converted
    (much faster than pydicom's value conversion, which dominates header parsing time)."""
    if ds is None:
        return None
    tag = _tag(keyword)
    if tag is None:
        return None
    try:
        e = ds.get_item(tag)
    except (KeyError, TypeError):
        return None
    if e is None:
        return None
    v = e.value
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray)):
        txt = bytes(v).decode("latin-1", "replace").strip(" \x00")
    elif isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        txt = "\\".join(str(x) for x in v)
    else:
        txt = str(v).strip()
    return txt or None


def _floats(ds: Any, keyword: str) -> list[float] | None:
    txt = _text(ds, keyword)
    if txt is None:
        return None
    try:
        return [float(x) for x in txt.split("\\")]
    except ValueError:
        raise ValueError(f"{keyword} is not a list of numbers") from None


def _rescale_of(src: Any) -> tuple[float, float, str | None]:
    """(slope, intercept, problem) of a dataset or Pixel Value Transformation item.

    RescaleIntercept and RescaleSlope are Type 1 in the CT Image module (DICOM PS3.3 C.8.2.1)
    and in the Pixel Value Transformation functional group of Enhanced CT (C.7.6.16.2.9): a
    missing one is non-conformant and is never assumed (no silent 0 or 1). Each value must be a
    single finite number, the slope in :data:`RESCALE_SLOPE_RANGE` and the intercept in
    :data:`RESCALE_INTERCEPT_RANGE_HU`. When there is a problem the returned slope/intercept are
    NaN and must not be used. The problem text never quotes the stored value (it could be anything).
    """
    problems = []
    vals = []
    for kw, (lo, hi) in (("RescaleSlope", RESCALE_SLOPE_RANGE), ("RescaleIntercept", RESCALE_INTERCEPT_RANGE_HU)):
        try:
            txt = _text(src, kw)
        except Exception:  # noqa: BLE001 - a damaged element is "unparseable", whatever pydicom raises
            txt = "\x00unparseable"
        if txt is None:
            problems.append(f"{kw} missing (Type 1 for CT images)")
            vals.append(float("nan"))
            continue
        try:
            v = float(txt)
        except (TypeError, ValueError):
            problems.append(f"{kw} is not a number")
            vals.append(float("nan"))
            continue
        if not math.isfinite(v):
            problems.append(f"{kw} is not finite")
        elif kw == "RescaleSlope" and v <= 0:
            problems.append(f"RescaleSlope {v:g} is not positive")
        elif not lo <= v <= hi:
            problems.append(f"{kw} {v:g} is outside the plausible CT range {lo:g} .. {hi:g}")
        vals.append(v)
    if problems:
        return float("nan"), float("nan"), "; ".join(problems)
    return vals[0], vals[1], None


def _seq_item(ds: Any, keyword: str):
    """First item of a sequence attribute of *ds*, or None."""
    seq = getattr(ds, keyword, None) if ds is not None else None
    if seq is None or len(seq) == 0:
        return None
    return seq[0]


def _check_geometry_values(ipp: list[float], iop: list[float], ps: list[float]) -> None:
    """Raise ValueError (a fixed text, never the stored value) when a geometry value is unusable.

    ImagePositionPatient: 3 finite values (a far but finite one is refused by the extent check of
    :func:`plan_geometry` with the measured extent); ImageOrientationPatient:
    6 finite values, each row of unit length within 1 % (DICOM requires unit direction cosines);
    PixelSpacing: 2 finite values > 0 and <= 100 mm (no CT has 10 cm pixels).
    """
    if len(ipp) != 3 or not all(map(math.isfinite, ipp)):
        raise ValueError("ImagePositionPatient is not 3 finite values")
    if len(iop) != 6 or not all(map(math.isfinite, iop)):
        raise ValueError("ImageOrientationPatient is not 6 finite values")
    if any(abs(float(np.linalg.norm(iop[a:a + 3])) - 1.0) > 0.01 for a in (0, 3)):
        raise ValueError("ImageOrientationPatient direction cosines are not unit vectors")
    if len(ps) != 2 or not all(map(math.isfinite, ps)) or min(ps) <= 0 or max(ps) > 100:
        raise ValueError("PixelSpacing is not 2 finite values between 0 and 100 mm")


def _frames_of(ds: Any, file_index: int) -> list[Frame]:
    """Frames of one parsed dataset (single- or multi-frame). Raises ValueError when geometry is missing."""
    rows, cols = _int(_value(ds, "Rows")), _int(_value(ds, "Columns"))
    if not (0 < rows <= 65535 and 0 < cols <= 65535):
        raise ValueError("Rows/Columns missing or zero")
    nf = _int(_text(ds, "NumberOfFrames") or 1, 1)
    if not 1 <= nf <= MAX_FRAMES:
        raise ValueError(f"NumberOfFrames {nf} outside 1 .. {MAX_FRAMES}")
    if _tag("PerFrameFunctionalGroupsSequence") in ds or _tag("SharedFunctionalGroupsSequence") in ds:
        shared = _seq_item(ds, "SharedFunctionalGroupsSequence")
        pffg = ds.get("PerFrameFunctionalGroupsSequence") or []
        out = []
        for f in range(nf):
            fg = pffg[f] if f < len(pffg) else None

            def grp(name, fg=fg):
                item = _seq_item(fg, name)
                return item if item is not None else _seq_item(shared, name)

            pos = grp("PlanePositionSequence")
            ori = grp("PlaneOrientationSequence")
            meas = grp("PixelMeasuresSequence")
            pvt = grp("PixelValueTransformationSequence")
            if pos is None or ori is None or meas is None:
                raise ValueError("multi-frame image without plane position/orientation/pixel measures")
            src = pvt if pvt is not None else ds
            slope, inter, rproblem = _rescale_of(src)
            fc = _seq_item(fg, "FrameContentSequence")
            inst = _int(_text(fc, "InStackPositionNumber") or f + 1, f + 1) if fc is not None else f + 1
            ipp, iop, ps = (_floats(pos, "ImagePositionPatient"), _floats(ori, "ImageOrientationPatient"),
                            _floats(meas, "PixelSpacing"))
            if ipp is None or iop is None or ps is None:
                raise ValueError("frame without position/orientation/pixel spacing")
            _check_geometry_values(ipp, iop, ps)
            out.append(Frame(file_index, f, np.array(ipp, float), np.array(iop, float),
                             (ps[0], ps[1]), rows, cols, slope, inter, inst, rproblem))
        return out
    ipp, iop, ps = _floats(ds, "ImagePositionPatient"), _floats(ds, "ImageOrientationPatient"), _floats(
        ds, "PixelSpacing")
    if ipp is None or iop is None or ps is None or len(ipp) != 3 or len(iop) != 6 or len(ps) != 2:
        raise ValueError("no valid ImagePositionPatient/ImageOrientationPatient/PixelSpacing")
    if nf != 1:
        raise ValueError("multi-frame image without functional groups")
    _check_geometry_values(ipp, iop, ps)
    slope, inter, rproblem = _rescale_of(ds)
    return [Frame(file_index, None, np.array(ipp, float), np.array(iop, float), (ps[0], ps[1]), rows, cols,
                  slope, inter, _int(_text(ds, "InstanceNumber"), 0), rproblem, _text(ds, "SOPInstanceUID"))]


def _rejection(sop: str, modality: str | None, image_type: tuple[str, ...]) -> str | None:
    """Why a series must not be planned on, or None."""
    if sop.startswith(SECONDARY_CAPTURE_ROOT):
        return ("Secondary Capture (a screen capture: no reliable geometry or Hounsfield units); "
                "export the original CT series instead")
    if (modality or "").upper() != "CT":
        return f"modality {modality or 'missing'} is not CT; planning needs a CT series"
    if sop not in CT_SOP_CLASSES:
        return f"SOP class {sop} is not a CT image storage class; export the original CT series"
    it = [t.upper() for t in image_type]
    if "LOCALIZER" in it:
        return "localizer (scout) image, not a volume; choose the axial CT series"
    if it and it[0] == "DERIVED":
        return ("DERIVED image (reformat/processed, ImageType DERIVED); choose the ORIGINAL "
                "reconstruction")
    return None


def _is_image_sop(sop: str) -> bool:
    """True for SOP classes that always carry pixel data (image storage, secondary capture)."""
    from pydicom.uid import UID

    try:
        name = UID(sop).name
    except Exception:
        return False
    return "Image Storage" in name or "Secondary Capture" in name


def _contrast_flag(ds: Any) -> bool | None:
    agent = ds.get("ContrastBolusAgent")
    if agent is None:
        # absent attribute: no contrast information; an empty ContrastBolusSequence says none
        return None
    text = str(agent).strip().upper()
    if text in ("", "NONE", "NO", "N"):
        return False
    return True


def _list_files(root: Path, skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Regular files under *root* (sorted, hidden names left out), without recursion.

    Only regular files are returned (symbolic links to regular files included): a named pipe, a
    socket or a device would block or never end when read. Symbolic links to folders are not
    followed (no loops). Folders deeper than :data:`MAX_FOLDER_DEPTH` are not searched. What is
    left out is appended to *skipped* as (path, reason).

    Raises
    ------
    InputError
        More than :data:`MAX_FILES` files under *root*.
    """
    import stat

    out: list[Path] = []
    stack: list[tuple[Path, int]] = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if skipped is not None:
                skipped.append((folder, f"folder not readable ({exc.strerror or type(exc).__name__})"))
            continue
        subdirs = []
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                if e.is_dir(follow_symlinks=False):
                    subdirs.append(Path(e.path))
                    continue
                mode = os.stat(e.path).st_mode  # follows a link to a file
            except OSError as exc:
                if skipped is not None:
                    skipped.append((Path(e.path), f"not readable ({exc.strerror or type(exc).__name__})"))
                continue
            if stat.S_ISDIR(mode):
                continue  # a symbolic link to a folder: not followed
            if not stat.S_ISREG(mode):
                if skipped is not None:
                    skipped.append((Path(e.path), "not a regular file (named pipe, socket or device)"))
                continue
            out.append(Path(e.path))
            if len(out) > MAX_FILES:
                raise InputError(
                    f"More than {MAX_FILES} files under the input folder; give the folder of the series "
                    "(or the study) to read rather than a whole archive.")
        if subdirs and depth + 1 > MAX_FOLDER_DEPTH:
            if skipped is not None:
                skipped.append((subdirs[0], f"folder nested more than {MAX_FOLDER_DEPTH} levels deep: not searched"))
            continue
        stack.extend((d, depth + 1) for d in reversed(subdirs))
    return out


#: Bytes read in one go from the start of each file, from which its header is parsed in memory
#: (:func:`_header_from_start`). CT headers take 1 to 20 KiB (a Siemens CSA header included); a longer header
#: is parsed from the file as before. Configurable default: a larger chunk costs a copy per file.
HEADER_CHUNK_BYTES = 32 * 1024


def _header_from_start(path: Path, size: int, messages: "_CapturedMessages") -> Any:
    """The header of *path* parsed from its first :data:`HEADER_CHUNK_BYTES`, or None.

    ``pydicom.dcmread(path, defer_size=4096)`` parses a file through many small reads, seeks and tells
    of a buffered file (about a third of its time on CThead's files); here the same bytes are read once
    and parsed by the same call from an ``io.BytesIO`` that bears the file's name, so pydicom reports and
    records the same file name and modification time. The result is used when the parse needed no byte
    beyond the chunk: the whole file is in the chunk, or the pixel data is the last element, deferred (not
    read), and runs to the end of the file, so that every other element lies inside the chunk (elements
    are parsed in file order) and the parse ended as the file parse does, at the end of the file. The
    dataset then points at the file like one parsed from it (``buffer`` None, ``fileobj_type`` open), so
    deferred values (the pixel data) are read from the file. Otherwise None is returned, the pydicom
    messages of the attempt are withdrawn (*messages*) and the caller parses the file.
    """
    import io

    import pydicom
    from pydicom.dataelem import RawDataElement

    checkpoint = messages.checkpoint()
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEADER_CHUNK_BYTES)
        buf = io.BytesIO(head)
        buf.name = str(path)
        ds = pydicom.dcmread(buf, defer_size=4096)
        if len(head) < size:
            pixels = ds.get_item(_tag("PixelData"), keep_deferred=True)
            if not (isinstance(pixels, RawDataElement) and pixels.value is None
                    and pixels.length != 0xFFFFFFFF and pixels.value_tell + pixels.length == size
                    and buf.tell() == size):
                raise EOFError("header not within the chunk")
        ds.buffer = None
        ds.fileobj_type = open
    except Exception:  # noqa: BLE001 - whatever went wrong, the file is parsed again and reports it
        messages.withdraw(checkpoint)
        return None
    return ds


def _read_header(path: Path, messages: "_CapturedMessages | None" = None):
    """(dataset, None) or (None, why the file is skipped).

    With *messages* (the caller's capture of pydicom's messages, single thread), the header is first
    parsed from the start of the file read in one go (:func:`_header_from_start`).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        size = os.path.getsize(path)
    except OSError as exc:
        return None, f"not readable ({exc.strerror or type(exc).__name__})"
    if size > MAX_FILE_BYTES:
        return None, f"larger than {MAX_FILE_BYTES >> 30} GiB: not read"
    if messages is not None:
        ds = _header_from_start(path, size, messages)
        if ds is not None:
            return ds, None
    try:
        # defer_size: large values (the pixel data) are not read during the scan; their file
        # offset is kept so that decoding does not parse the header again
        ds = pydicom.dcmread(str(path), defer_size=4096)
    except InvalidDicomError:
        # old files without the 128-byte preamble: accept only when they start like a dataset
        try:
            with open(path, "rb") as fh:
                head = fh.read(8)
            if len(head) == 8 and head[:2] in (b"\x08\x00", b"\x02\x00") and head[2:4] in (
                    b"\x00\x00", b"\x05\x00", b"\x08\x00", b"\x16\x00"):
                ds = pydicom.dcmread(str(path), defer_size=4096, force=True)
                if "SOPClassUID" in ds:
                    if not hasattr(ds, "file_meta") or "TransferSyntaxUID" not in ds.file_meta:
                        from pydicom.dataset import FileMetaDataset

                        ds.file_meta = ds.file_meta if hasattr(ds, "file_meta") else FileMetaDataset()
                        ds.file_meta.TransferSyntaxUID = ("1.2.840.10008.1.2" if ds.is_implicit_VR
                                                          else "1.2.840.10008.1.2.1")
                    return ds, None
        except Exception:
            pass
        try:
            size = os.path.getsize(path)
            with open(path, "rb") as fh:
                head = fh.read(132)
            if 0 < size < 132 and not head.strip(b"\x00"):
                return None, "unreadable DICOM header (file truncated inside the preamble)"
        except OSError:
            pass
        return None, "not a DICOM file"
    except Exception as exc:  # truncated or damaged header
        return None, f"unreadable DICOM header ({type(exc).__name__})"
    return ds, None


# --------------------------------------------------------------------------- pydicom's messages
_QUOTED = None


def _without_identifiers(message: str) -> str:
    """A library message with what may identify removed: quoted values, paths, long digit runs."""
    import re

    global _QUOTED
    if _QUOTED is None:
        _QUOTED = (re.compile(r"'[^']*'|\"[^\"]*\"|b'[^']*'"), re.compile(r"\S*[/\\]\S*"), re.compile(r"\d{5,}"))
    quoted, path, digits = _QUOTED
    text = quoted.sub("<value>", str(message))
    text = path.sub("<path>", text)
    text = digits.sub("#", text)
    return " ".join(text.split())[:200]


class _CapturedMessages:
    """What :func:`_pydicom_messages_without_paths` has captured so far (warnings, then log records).

    :meth:`checkpoint` / :meth:`withdraw` take back the messages of an attempt that is then redone
    (see :func:`_header_from_start`); only for a single thread, as messages of other threads that came in
    between would be withdrawn too.
    """

    def __init__(self, caught: list, records: list[str]) -> None:
        self.caught = caught
        self.records = records

    def checkpoint(self) -> tuple[int, int]:
        return len(self.caught), len(self.records)

    def withdraw(self, checkpoint: tuple[int, int]) -> None:
        del self.caught[checkpoint[0]:]
        del self.records[checkpoint[1]:]


@contextlib.contextmanager
def _pydicom_messages_without_paths():
    """Capture pydicom's warnings and log records; re-emit each distinct one once, without identifiers.

    pydicom's messages may quote file paths (a folder named after the patient) and element values
    (a name or birth date with an invalid VR). They are logged here as ``pydicom: <message>`` with
    quoted values, paths and digit runs of 5 or more removed (:func:`_without_identifiers`).
    Yields a :class:`_CapturedMessages`.
    """
    import logging
    import warnings

    records: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                try:
                    records.append(record.getMessage())
                except Exception:  # noqa: BLE001 - a malformed record is dropped, never printed raw
                    records.append("a message that could not be formatted")

    plog = logging.getLogger("pydicom")
    handler = _Collect()
    old_propagate = plog.propagate
    plog.addHandler(handler)
    plog.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield _CapturedMessages(caught, records)
    finally:
        plog.removeHandler(handler)
        plog.propagate = old_propagate
    counts: dict[str, int] = {}
    for m in [str(w.message) for w in caught] + records:
        key = _without_identifiers(m)
        counts[key] = counts.get(key, 0) + 1
    for key, n in counts.items():
        log.warning("pydicom: %s%s", key, f" ({n} times)" if n > 1 else "")


# --------------------------------------------------------------------------- scan
def _add_to_series(ds: Any, idx: int, name: str, series: dict[str, "SeriesInfo"], skipped: list[tuple[str, str]],
                   anonymous: list[int], uid: str | None = None) -> None:
    """Put the image *ds* (file *idx*) into its series (created on first sight), or into *skipped*."""
    sop = _text(ds, "SOPClassUID") or ""
    sop_from_meta = False
    if not sop:
        sop = _text(ds.file_meta, "MediaStorageSOPClassUID") or "" if getattr(ds, "file_meta", None) else ""
        sop_from_meta = bool(sop)
    if _tag("PixelData") not in ds and _is_image_sop(sop):
        skipped.append((name, "unreadable DICOM header (file truncated before the pixel data)"))
        return
    if _tag("Rows") not in ds or _tag("Columns") not in ds:
        skipped.append((name, "DICOM file without an image (e.g. DICOMDIR, report)"))
        return
    if uid is None:
        uid = _text(ds, "SeriesInstanceUID") or ""
        if not uid:
            anonymous.append(idx)
            return
    s = series.get(uid)
    if s is None:
        image_type = tuple(str(v) for v in (ds.get("ImageType") or []))
        modality = str(ds.get("Modality", "") or "") or None
        kernel = ds.get("ConvolutionKernel")
        if kernel is not None and not isinstance(kernel, str):
            kernel = "\\".join(str(k) for k in kernel)
        if kernel is None:  # enhanced CT: CT Reconstruction functional group
            rec = _seq_item(_seq_item(ds, "SharedFunctionalGroupsSequence"), "CTReconstructionSequence")
            if rec is not None and rec.get("ConvolutionKernel") is not None:
                kv = rec.ConvolutionKernel
                kernel = kv if isinstance(kv, str) else "\\".join(str(k) for k in kv)
        kvp = _float(ds.get("KVP"))
        if kvp is None:
            acq = _seq_item(_seq_item(ds, "SharedFunctionalGroupsSequence"), "CTXRayDetailsSequence")
            kvp = _float(acq.get("KVP")) if acq is not None else None
        description, kernel = _free_text_without_identifiers(
            ds, str(ds.get("SeriesDescription")) if ds.get("SeriesDescription") else None,
            str(kernel) if kernel else None)
        s = SeriesInfo(
            uid=uid,
            description=description,
            modality=modality,
            sop_class=sop,
            image_type=image_type,
            kernel=kernel,
            kvp=kvp,
            contrast=_contrast_flag(ds),
            study_uid=_text(ds, "StudyInstanceUID"),
            frame_of_reference_uid=_text(ds, "FrameOfReferenceUID"),
            series_number=_int(ds.get("SeriesNumber"), 0) if ds.get("SeriesNumber") is not None else None,
            rejection=_rejection(sop, modality, image_type),
        )
        series[uid] = s
    if sop_from_meta:
        key = "without SOPClassUID in the dataset: the file meta's MediaStorageSOPClassUID was used"
        s.missing[key] = s.missing.get(key, 0) + 1
    s.file_indices.append(idx)
    s.transfer_syntaxes.add(str(_value(ds.file_meta, "TransferSyntaxUID", "")))
    if s.rejection is None:
        it = tuple((_text(ds, "ImageType") or "").split("\\"))
        r = _rejection(sop, _text(ds, "Modality"), it)
        if r is not None:
            s.rejection = "contains " + r
            return
        try:
            s.frames.extend(_frames_of(ds, idx))
        except ValueError as exc:  # our own fixed texts: no stored value is quoted
            skipped.append((name, f"image without usable geometry ({exc})"))
        except (AttributeError, TypeError, IndexError, KeyError) as exc:
            skipped.append((name, f"image without usable geometry ({type(exc).__name__})"))


def _anonymous_key(ds: Any) -> tuple:
    """What is left to group images without SeriesInstanceUID: study, frame of reference, SOP class
    (dataset or file meta), modality, series number, kernel, image size, pixel spacing and orientation
    (rounded to 1e-3)."""
    def txt(kw, src=ds):
        try:
            return _text(src, kw) or ""
        except Exception:  # noqa: BLE001
            return ""

    meta = getattr(ds, "file_meta", None)
    iop = txt("ImageOrientationPatient")
    try:
        iop = tuple(round(float(v), 3) for v in iop.split("\\")) if iop else ()
    except ValueError:
        iop = (iop,)
    return (txt("StudyInstanceUID"), txt("FrameOfReferenceUID"),
            txt("SOPClassUID") or (txt("MediaStorageSOPClassUID", meta) if meta is not None else ""),
            txt("Modality"), txt("SeriesNumber"), txt("ConvolutionKernel"), txt("Rows"), txt("Columns"),
            txt("PixelSpacing"), iop)


def _group_anonymous(headers, anonymous: list[int], display: list[str], series: dict[str, "SeriesInfo"],
                     skipped: list[tuple[str, str]]) -> None:
    """Group the images without SeriesInstanceUID (blanked by anonymisers) by what is left.

    Each group becomes a series named ``no-SeriesInstanceUID-<n>`` whose ``missing`` record says
    what was missing; :func:`read_series` turns it into a warning.
    """
    groups: dict[tuple, list[int]] = {}
    for idx in anonymous:
        try:
            key = _anonymous_key(headers[idx][0])
        except Exception:  # noqa: BLE001
            skipped.append((display[idx], "unreadable DICOM header (damaged element)"))
            continue
        groups.setdefault(key, []).append(idx)
    for n, (key, members) in enumerate(groups.items(), start=1):
        uid = f"no-SeriesInstanceUID-{n}"
        for idx in members:
            try:
                _add_to_series(headers[idx][0], idx, display[idx], series, skipped, [], uid=uid)
            except Exception as exc:  # noqa: BLE001
                skipped.append((display[idx], f"unreadable DICOM header (damaged element: {type(exc).__name__})"))
        if uid in series:
            what = ("frame of reference, " if key[1] else "") + "SOP class, image size, pixel spacing and orientation"
            series[uid].missing[f"without SeriesInstanceUID (empty or absent): grouped by {what}"] = len(members)


def scan(path: str | os.PathLike, display_root: str | os.PathLike | None = None,
         workers: int | None = None) -> ScanResult:
    """Scan a folder (recursively) or a single DICOM file and group the images by series.

    Parameters
    ----------
    path : folder or file
    display_root : folder the display names are relative to (defaults to *path*).
    workers : thread count for header parsing (default: 1). Parsing a header is Python holding the GIL: threads
        only help when reading the files waits on storage (a network share, a cold disk); on files in the page
        cache they made the scan of CThead's 113 files slower (0.13-0.14 s vs 0.05-0.08 s wall, 2026-12-06). With
        one thread each header is parsed from the start of its file read in one go (:func:`_header_from_start`).

    Returns
    -------
    ScanResult

    Raises
    ------
    InputError
        *path* does not exist.
    SeriesSelectionError
        No DICOM image at all was found.
    """
    root = Path(path)
    if not root.exists():
        raise InputError(f"Input not found: {safe_path(root)}. Check the path.")
    listing_skips: list[tuple[Path, str]] = []
    files = _list_files(root, listing_skips) if root.is_dir() else [root]
    base = Path(display_root) if display_root is not None else (root if root.is_dir() else root.parent)

    def shown(f: Path) -> str:
        try:
            rel = f.relative_to(base)
        except ValueError:
            rel = Path(f.name)
        parts = [safe_path(p) for p in rel.parts]
        if len(parts) > 4:  # deep trees: the last levels say enough
            parts = ["..."] + parts[-3:]
        return "/".join(parts)

    display = [shown(f) for f in files]
    nworkers = workers or 1
    with _pydicom_messages_without_paths() as messages:
        if len(files) > 8 and nworkers > 1:
            with ThreadPoolExecutor(nworkers) as ex:
                headers = list(ex.map(_read_header, files))
        else:
            headers = [_read_header(f, messages) for f in files]

    series: dict[str, SeriesInfo] = {}
    skipped: list[tuple[str, str]] = [(shown(f), reason) for f, reason in listing_skips]
    anonymous: list[int] = []  # images without a SeriesInstanceUID (grouped afterwards)
    with _pydicom_messages_without_paths():
        for idx, (ds, err) in enumerate(headers):
            if ds is None:
                skipped.append((display[idx], err or "unreadable"))
                continue
            try:
                _add_to_series(ds, idx, display[idx], series, skipped, anonymous)
            except Exception as exc:  # noqa: BLE001 - a damaged element anywhere: skip that file, say why
                skipped.append((display[idx], f"unreadable DICOM header (damaged element: {type(exc).__name__})"))
        _group_anonymous(headers, anonymous, display, series, skipped)
    return ScanResult(files, display, list(series.values()), skipped, [h[0] for h in headers])


# --------------------------------------------------------------------------- choose
#: The reason :func:`choose_series` gives for a series chosen by its UID.
REQUESTED_SERIES = "the requested series"


def _choice_note(result: ScanResult, best: SeriesInfo) -> ReaderNote:
    """The default choice of *best* among the series of *result*, as data (see :func:`choose_series`)."""
    images = result.series
    axial = any(s.rejection is None and s.frames and s.orientation_label() == "axial" for s in images)
    alike = [i + 1 for i, s in enumerate(images) if s is not best and _look_alike(s, best)]
    return ReaderNote("series_chosen", n_images=best.n_frames, n_series=len(images), axial=axial,
                      alike_series=tuple(alike), remedy="series_uid")


def choose_series(result: ScanResult, series_uid: str | None = None) -> tuple[SeriesInfo, str]:
    """Pick the series to read.

    Parameters
    ----------
    result : ScanResult
    series_uid : the requested SeriesInstanceUID, or None for the default choice
        (the largest axial CT series that may be planned on; else the largest such series).

    Returns
    -------
    (SeriesInfo, str)
        The series and a sentence saying why it was chosen.

    Raises
    ------
    SeriesSelectionError
        No image series, or *series_uid* is not present.
    NotACTError
        The requested series (or every series) is rejected for planning; the reason is given.
    """
    images = [s for s in result.series]
    if not images:
        raise SeriesSelectionError(
            "No DICOM image found"
            + (f" ({len(result.skipped)} file(s) skipped as not DICOM or unreadable)" if result.skipped else "")
            + ". Give a folder, zip or file holding a CT series.")
    if series_uid is not None:
        s = result.get(series_uid)
        if s is None:
            raise SeriesSelectionError(
                f"Series UID {series_uid} is not in this input ({len(images)} series found). "
                "Run 'osteoplan info PATH' to list the series and their UIDs.")
        if s.rejection:
            raise NotACTError(f"The requested series cannot be planned on: {s.rejection}.")
        if not s.frames:
            raise DicomSeriesError("The requested series has no readable image with geometry; re-export it.")
        return s, REQUESTED_SERIES
    ok = [s for s in images if s.rejection is None and s.frames]
    if not ok:
        reasons = "; ".join(f"series {i + 1}: {s.rejection or 'no image with geometry'}"
                            for i, s in enumerate(images))
        raise NotACTError(f"No series can be planned on ({reasons}).")
    axial = [s for s in ok if s.orientation_label() == "axial"]
    pool = axial or ok
    best = max(pool, key=lambda s: (s.n_frames, -_pixel_area(s)))
    if len(images) == 1:
        why = "the only series"
    else:  # the reader's warning says "read " + why, written from the same data
        why = note_text(_choice_note(result, best)).removeprefix("read ")
    return best, why


def _look_alike(s: SeriesInfo, ref: SeriesInfo) -> bool:
    """True when *s* could hold images of *ref* (same study, frame of reference, SOP class, orientation,
    image size and pixel spacing) and is smaller: a slice whose SeriesInstanceUID was damaged looks so."""
    if not s.frames or not ref.frames or s.n_frames >= ref.n_frames:
        return False
    a, b = s.frames[0], ref.frames[0]
    return (s.study_uid == ref.study_uid and s.frame_of_reference_uid == ref.frame_of_reference_uid
            and s.sop_class == ref.sop_class and (a.rows, a.cols) == (b.rows, b.cols)
            and np.allclose(a.pixel_spacing, b.pixel_spacing, atol=1e-4)
            and float(np.max(np.abs(a.orientation - b.orientation))) <= ORIENTATION_TOL)


def _pixel_area(s: SeriesInfo) -> float:
    f = s.frames[0]
    return f.pixel_spacing[0] * f.pixel_spacing[1]


# --------------------------------------------------------------------------- geometry
def _fmt_lps(p: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.2f}" if abs(v) < 1e7 else f"{v:.6g}" for v in p) + ") mm LPS"


def _slice_label(f: Frame) -> str:
    """Names an image by its position and number, never by its file (file names may identify)."""
    if f.frame_index is not None:
        return f"frame {f.frame_index + 1} (at {_fmt_lps(f.position)}) of the multi-frame image"
    return f"the slice at {_fmt_lps(f.position)} (InstanceNumber {f.instance})"


def _normal_of(f: Frame) -> np.ndarray | None:
    """Unit slice normal of a frame (row x column cosines), or None when the orientation is degenerate."""
    n = np.cross(f.orientation[:3], f.orientation[3:6])
    norm = float(np.linalg.norm(n))
    if not np.isfinite(norm) or norm < 1e-6:
        return None
    return n / norm


def _covered(f: Frame, others: list[Frame], normal: np.ndarray) -> bool:
    """True when another image of *others* lies at the same position as *f* (within SAME_POSITION_TOL_MM)."""
    if not others:
        return False
    d = np.array([o.position @ normal for o in others])
    return bool(np.min(np.abs(d - f.position @ normal)) <= SAME_POSITION_TOL_MM)


def _without_invalid_rescale(series: SeriesInfo, warnings: list[str]) -> SeriesInfo:
    """The series without its frames whose rescale is invalid, when another image holds their position.

    Raises
    ------
    DicomSeriesError
        An image with an invalid rescale (see :func:`_rescale_of`) is the only image at its
        position: its HU cannot be known, and dropping it would leave a hole.
    """
    bad = [f for f in series.frames if f.rescale_problem]
    if not bad:
        return series
    good = [f for f in series.frames if not f.rescale_problem]
    normal = _normal_of(good[0] if good else bad[0])
    for f in bad:
        if normal is None or not _covered(f, good, normal):
            raise DicomSeriesError(
                f"Invalid Hounsfield-unit rescale in {_slice_label(f)}: {f.rescale_problem}. The HU of that "
                "image cannot be known; re-export the series from the scanner or PACS (or remove that image "
                "if it is a stray copy).")
    shown = "; ".join(f"{_slice_label(f)}: {f.rescale_problem}" for f in bad[:3]) + (" ..." if len(bad) > 3 else "")
    warnings.append(f"dropped {len(bad)} image(s) with an invalid rescale, another image holds the same "
                    f"position ({shown})")
    return SeriesInfo(**{**series.__dict__, "frames": good})


def plan_geometry(series: SeriesInfo, frames: list[Frame] | None = None, allow_gaps: bool = False,
                  resample_uniform: bool = False) -> GeometryPlan:
    """Sort a series' frames and compute the output grid from the headers alone.

    Parameters
    ----------
    series : SeriesInfo
    frames : subset of ``series.frames`` to use (default: all)
    allow_gaps : interpolate missing slices instead of refusing
    resample_uniform : resample uneven slice spacing instead of refusing

    Returns
    -------
    GeometryPlan

    Raises
    ------
    DicomSeriesError
        Mixed image sizes / pixel spacings / orientations, a single slice, a gap (its LPS
        position is named) without ``allow_gaps``, uneven spacing (the measured spacings are
        listed) without ``resample_uniform``, slice origins not on a line.
    """
    frames = series.frames if frames is None else frames
    if not frames:
        raise DicomSeriesError("The series has no readable image; re-export it.")
    f0 = frames[0]
    # the checks below, made on all frames at once; the loop then raises for the first frame that fails one
    sizes = np.array([(f.rows, f.cols) for f in frames])
    spacings = np.array([f.pixel_spacing for f in frames], dtype=float)
    orientations = np.array([f.orientation for f in frames], dtype=float)
    failing = ((sizes != sizes[0]).any(axis=1)
               | ~np.isclose(spacings, spacings[0], atol=1e-4).all(axis=1)
               | (np.max(np.abs(orientations - orientations[0]), axis=1) > ORIENTATION_TOL))
    failing[0] = False  # the first frame is the reference, never compared with itself
    for f in frames[int(np.argmax(failing)):] if failing.any() else ():
        if (f.rows, f.cols) != (f0.rows, f0.cols):
            raise DicomSeriesError(
                f"Images of different sizes in one series ({f0.rows}x{f0.cols} and {f.rows}x{f.cols}); "
                "the series mixes acquisitions: re-export it or choose another series.")
        if not np.allclose(f.pixel_spacing, f0.pixel_spacing, atol=1e-4):
            raise DicomSeriesError(
                f"Pixel spacing varies within the series ({f0.pixel_spacing} and {f.pixel_spacing} mm); "
                "re-export the series.")
        if np.max(np.abs(f.orientation - f0.orientation)) > ORIENTATION_TOL:
            raise DicomSeriesError(
                "Image orientation varies within the series (e.g. a localizer or a second plane mixed in); "
                "choose a series with one orientation.")
    nr, nc = np.linalg.norm(f0.orientation[:3]), np.linalg.norm(f0.orientation[3:6])
    if nr < 1e-6 or nc < 1e-6:
        raise DicomSeriesError("ImageOrientationPatient is zero; the geometry of the series is unusable.")
    row = f0.orientation[:3] / nr
    col = f0.orientation[3:6] / nc
    if abs(row @ col) > 1e-3:
        raise DicomSeriesError(
            f"ImageOrientationPatient rows are not perpendicular (cosine {row @ col:.4f}); the geometry tags "
            "are corrupt: re-export the series.")
    n = np.cross(row, col)
    n = n / np.linalg.norm(n)
    pos = np.array([f.position for f in frames])
    d = pos @ n
    inst = np.array([f.instance for f in frames])
    order = np.lexsort((inst, d))
    # group by position along the normal
    groups: list[list[int]] = []
    gd: list[float] = []
    for o in order:
        if groups and abs(d[o] - gd[-1]) <= SAME_POSITION_TOL_MM:
            groups[-1].append(int(o))
        else:
            groups.append([int(o)])
            gd.append(float(d[o]))
    warnings: list[str] = []
    notes: list[ReaderNote] = []
    for g in groups:
        if len(g) > 1:
            p = pos[g]
            if np.max(np.linalg.norm(p - p[0], axis=1)) > SAME_POSITION_TOL_MM:
                raise DicomSeriesError(
                    f"Two images share the depth {gd[groups.index(g)]:.2f} mm along the slice normal but have "
                    f"different in-plane positions (near {_fmt_lps(p[0])}); the series mixes acquisitions.")
    depths = np.array(gd)
    S = len(groups)
    if S < 2:
        raise DicomSeriesError(
            "The series has a single slice position; a 3D CT series with several slices is needed.")
    extent = float(depths[-1] - depths[0])
    if extent > MAX_EXTENT_MM:
        far = pos[groups[0][0]] if abs(depths[0] - np.median(depths)) > abs(depths[-1] - np.median(depths)) \
            else pos[groups[-1][0]]
        raise DicomSeriesError(
            f"The slices span {extent:.6g} mm along the slice normal, more than any CT ({MAX_EXTENT_MM:g} mm): "
            f"a slice position is corrupt (the farthest from the others is at {_fmt_lps(far)}). Remove or re-export "
            "that image, or the whole series.")
    first = pos[groups[0][0]]
    rel = np.array([pos[g[0]] - first for g in groups])
    dd = depths - depths[0]
    inplane = np.stack([rel @ col, rel @ row], axis=1)  # (j, i) axes in mm
    if not np.all(np.isfinite(inplane)) or float(np.max(np.abs(inplane))) > MAX_EXTENT_MM:
        worst = groups[int(np.argmax(np.nan_to_num(np.abs(inplane), nan=np.inf).max(axis=1)))][0]
        raise DicomSeriesError(
            f"Slice origins lie more than {MAX_EXTENT_MM:g} mm apart across the image plane (the farthest at "
            f"{_fmt_lps(pos[worst])}): a slice position is corrupt. Remove or re-export that image, or the series.")
    # in-plane drift must be linear in depth (a sheared stack) -- fit through the origin
    coef, *_ = np.linalg.lstsq(dd[:, None], inplane, rcond=None)
    shear = coef[0]  # mm in-plane per mm along the normal, (j, i)
    noise_mm = POSITION_NOISE_FRACTION * min(f0.pixel_spacing)
    resid = np.max(np.linalg.norm(inplane - dd[:, None] * shear[None, :], axis=1))
    if resid > max(0.05, noise_mm):
        worst = groups[int(np.argmax(np.linalg.norm(inplane - dd[:, None] * shear[None, :], axis=1)))][0]
        raise DicomSeriesError(
            f"Slice origins do not lie on a line (deviation {resid:.2f} mm, largest near "
            f"{_fmt_lps(pos[worst])}); the series mixes acquisitions or has corrupted positions: re-export it.")
    drift = float(np.linalg.norm(shear) * dd[-1])
    # a drift within the position noise (a tenth of a pixel) is not a tilt: no resampling
    tilted = drift > max(TILT_DRIFT_TOL_MM, noise_mm)
    tilt_deg = float(np.degrees(np.arctan(np.linalg.norm(shear)))) if tilted else 0.0

    steps = np.diff(depths)
    nominal = float(np.median(steps))
    tol = max(STEP_REL_TOL * nominal, 0.005)
    uniform = bool(np.all(np.abs(steps - nominal) <= tol))
    gaps: list[tuple[float, float]] = []
    resample = tilted
    step = nominal
    if not uniform:
        smallest = float(np.min(steps))
        # a gap is a step that is an integer multiple (>= 2) of the usual (median) step; any step
        # shorter than the usual one, or not a multiple of it, means the spacing itself varies
        base = nominal
        ratio = steps / base
        multiples = np.abs(ratio - np.rint(ratio)) * base <= tol
        big = np.rint(ratio) >= 2
        # isolated long steps are missing slices; runs of them (or most steps long) mean the
        # acquisition itself changed spacing
        isolated = not np.any(big[1:] & big[:-1]) and big.sum() <= max(1, len(steps) // 3)
        is_gap_pattern = bool(np.all(multiples) and np.all(np.rint(ratio) >= 1) and np.any(big) and isolated)
        if is_gap_pattern:
            gap_idx = np.nonzero(np.rint(ratio) >= 2)[0]
            gap_notes = []
            for gi in gap_idx:
                nmiss = int(np.rint(ratio[gi])) - 1
                p_before = pos[groups[gi][0]]
                p_after = pos[groups[gi + 1][0]]
                # every missing position as data; a gap too long for any grid the reader builds (refused below
                # with the grid's size) keeps the first 3, as its error shows
                n_pts = nmiss if nmiss * f0.rows * f0.cols <= MAX_VOLUME_VOXELS else min(nmiss, 3)
                frac = np.arange(1, n_pts + 1)[:, None] / (nmiss + 1)
                missing = (p_before[None, :] + (p_after - p_before)[None, :] * frac).tolist()
                gaps.append((float(depths[gi]), float(depths[gi + 1])))
                gap_notes.append(ReaderNote("gap_interpolated", count=nmiss, points_lps_mm=tuple(missing),
                                            step_mm=round(base, 4), gap_step_mm=round(float(steps[gi]), 4)))
            descr = _gap_descriptions(gap_notes)
            if not allow_gaps:
                err = DicomSeriesError(
                    "Gap in the series: " + descr + ". Find the missing file(s) or re-export the "
                    f"series; {remedy_clause('allow_gaps')}.")
                err.gap = descr  # where the slices are missing (read_series names a lost file with it)
                err.remedy = "allow_gaps"
                err.gap_notes = gap_notes
                raise err
            notes.extend(gap_notes)
            warnings.extend(note_text(n) for n in gap_notes)
            step = base
            resample = True
        else:
            vals = sorted({round(float(s), 3) for s in steps})
            shown = ", ".join(f"{v:g}" for v in vals[:12]) + (" ..." if len(vals) > 12 else "")
            if not resample_uniform:
                err = DicomSeriesError(
                    f"Slice spacing varies within the series (measured steps: {shown} mm). "
                    f"{remedy_clause('resample_uniform')}.")
                err.remedy = "resample_uniform"
                raise err
            step = smallest
            warnings.append(f"uneven slice spacing ({shown} mm) resampled to a uniform {step:.3f} mm grid")
            resample = True
    ps_row, ps_col = f0.pixel_spacing
    if not resample:
        K = S
        step = float(dd[-1] / (S - 1))
        J, I = f0.rows, f0.cols
        aff = np.eye(4)
        aff[:3, 0] = n * step
        aff[:3, 1] = col * ps_row
        aff[:3, 2] = row * ps_col
        aff[:3, 3] = first
    else:
        K = int(np.floor(dd[-1] / step + 1e-6)) + 1
        # in-plane grid covering every (shifted) slice
        offs = dd[:, None] * shear[None, :] if tilted else np.zeros((S, 2))
        lo = np.minimum(offs.min(axis=0), 0.0)
        hi = np.maximum(offs.max(axis=0), 0.0)
        jlo = int(np.floor(lo[0] / ps_row + 1e-6))
        ilo = int(np.floor(lo[1] / ps_col + 1e-6))
        jhi = int(np.ceil(hi[0] / ps_row - 1e-6))
        ihi = int(np.ceil(hi[1] / ps_col - 1e-6))
        J = f0.rows + (jhi - jlo)
        I = f0.cols + (ihi - ilo)
        aff = np.eye(4)
        aff[:3, 0] = n * step
        aff[:3, 1] = col * ps_row
        aff[:3, 2] = row * ps_col
        aff[:3, 3] = first + jlo * ps_row * col + ilo * ps_col * row
        if tilted:
            warnings.append(
                f"gantry tilt of {tilt_deg:.2f} deg measured from the slice positions; resampled onto an "
                f"orthogonal grid ({J}x{I} pixels per slice, -1024 HU outside the acquired field)")
    if K * J * I > MAX_VOLUME_VOXELS:
        raise DicomSeriesError(
            f"The output grid would have {K} x {J} x {I} voxels, more than the {MAX_VOLUME_VOXELS} the reader "
            f"builds (slices span {extent:.6g} mm at a {step:.4g} mm step); the positions or spacing are corrupt, "
            "or the series is too large: re-export it or crop it.")
    plan = GeometryPlan(groups=groups, depths_mm=depths, inplane_offsets_mm=inplane, affine=aff,
                        shape=(K, J, I), resample=resample, step_mm=float(step), tilt_deg=tilt_deg,
                        normal=n, warnings=warnings, gaps=gaps, notes=notes)
    return plan


def _gap_descriptions(gap_notes: list[ReaderNote]) -> str:
    """Where the slices of gaps are missing, for an error (the first 5 gaps, then how many more)."""
    descr = [gap_description(g) for g in gap_notes[:5]]
    if len(gap_notes) > 5:
        descr.append(f"and {len(gap_notes) - 5} more gap(s)")
    return "; ".join(descr)


# --------------------------------------------------------------------------- pixels
_NATIVE_LE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")


def _decode_file(path: Path, n_frames_expected: int, ds: Any = None) -> np.ndarray:
    """Stored pixel values of a file, shape (frames, rows, cols). Raises CorruptFileError.

    Uncompressed little-endian data is read straight from its file offset (recorded during the
    scan); everything else (JPEG 2000, JPEG-LS, JPEG lossless, RLE, big endian, odd bit
    depths) goes through pydicom's pixel handlers and the installed decoder plugins.
    """
    try:
        arr = None
        if ds is not None:
            arr = _native_fast(path, ds, n_frames_expected)
        if arr is None:
            if ds is not None:
                arr = ds.pixel_array
            else:
                from pydicom.pixels import pixel_array

                arr = pixel_array(str(path))
    except CorruptFileError:
        raise
    except Exception as exc:
        raise CorruptFileError(f"{type(exc).__name__}") from None
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] != n_frames_expected:
        raise CorruptFileError("unexpected pixel array shape")
    return arr


def _native_fast(path: Path, ds: Any, nf: int) -> np.ndarray | None:
    """Read uncompressed little-endian 8/16/32-bit monochrome pixels by offset, or None to fall back."""
    ts = str(_value(ds.file_meta, "TransferSyntaxUID", ""))
    if ts not in _NATIVE_LE:
        return None
    try:
        e = ds.get_item(_tag("PixelData"), keep_deferred=True)
    except KeyError:
        raise CorruptFileError("no pixel data") from None
    if e is None or getattr(e, "value", 0) is not None or not hasattr(e, "value_tell"):
        return None
    bits = _int(_value(ds, "BitsAllocated"))
    stored = _int(_value(ds, "BitsStored"))
    signed = _int(_value(ds, "PixelRepresentation")) == 1
    if _int(_value(ds, "SamplesPerPixel", 1), 1) != 1 or bits not in (8, 16, 32) or stored != bits:
        return None
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}").newbyteorder("<")
    rows, cols = _int(_value(ds, "Rows")), _int(_value(ds, "Columns"))
    count = rows * cols * nf
    if e.length != 0xFFFFFFFF and e.length < count * dtype.itemsize:
        raise CorruptFileError("pixel data shorter than the image size")
    arr = np.fromfile(str(path), dtype=dtype, count=count, offset=e.value_tell)
    if arr.size != count:
        raise CorruptFileError("file truncated inside the pixel data")
    return arr.reshape(nf, rows, cols)


def _rescale_into(stored: np.ndarray, slope: float, intercept: float, out: np.ndarray) -> None:
    """HU = stored * slope + intercept, in float32 (this frame's own slope/intercept).

    Each step is one float32 operation (stored value cast to float32, times the float32 slope, plus the
    float32 intercept), so the result does not depend on how the steps are grouped into passes.
    """
    if slope != 1.0:
        np.multiply(stored, np.float32(slope), out=out, dtype=np.float32, casting="unsafe")
        if intercept != 0.0:
            out += np.float32(intercept)
    elif intercept != 0.0:
        np.add(stored, np.float32(intercept), out=out, dtype=np.float32, casting="unsafe")
    else:
        out[...] = stored


def _rescaled_range(stored: np.ndarray, slope: float, intercept: float, rescaled: np.ndarray) -> tuple[float, float]:
    """(min, max) of *rescaled*, the float32 HU :func:`_rescale_into` made from *stored*.

    For integer stored values with a finite slope > 0 and a finite intercept, the rescale is a
    non-decreasing function (each float32 rounding preserves order), so the extremes of the HU are the
    rescaled extremes of the stored values: found on the smaller integer array and rescaled by the same
    float32 operations. Anything else (floating-point pixel data, which may hold NaN) is scanned as HU.
    """
    if stored.dtype.kind in "iu" and slope > 0 and math.isfinite(slope) and math.isfinite(intercept):
        ends = np.array([stored.min(), stored.max()], dtype=stored.dtype)
        hu = np.empty(2, np.float32)
        _rescale_into(ends, slope, intercept, hu)
        return float(hu[0]), float(hu[1])
    return float(rescaled.min()), float(rescaled.max())


def _any_compressed(transfer_syntaxes) -> bool:
    """True when one of the Transfer Syntax UIDs is a compressed (encapsulated) one; unknown UIDs count as such."""
    from pydicom.uid import UID

    for ts in transfer_syntaxes:
        try:
            if not ts or UID(ts).is_compressed:
                return True
        except (ValueError, AttributeError):
            return True
    return False


def read_series(result: ScanResult, series: SeriesInfo, allow_gaps: bool = False,
                resample_uniform: bool = False, workers: int | None = None,
                why: str | None = None) -> Volume:
    """Decode and assemble one series into a :class:`Volume` (HU float32, LPS affine).

    Parameters
    ----------
    result : ScanResult from :func:`scan`
    series : the series to read (from :func:`choose_series`)
    allow_gaps, resample_uniform : see :func:`plan_geometry`
    workers : decoding threads (default: 2 for compressed transfer syntaxes, whose decoders run in C libraries
        that release the GIL; 1 for native pixel data, where threads only add contention: CThead's 113
        uncompressed files read in 0.100 s with one thread vs 0.165 s with two, 2026-12-06)
    why : sentence on why the series was chosen (added to the warnings when several series exist)

    Raises
    ------
    DicomSeriesError
        See :func:`plan_geometry`; also different images at one position, or a truncated /
        undecodable file whose slice is not present elsewhere (the series is incomplete).
    """
    warnings: list[str] = []
    notes: list[ReaderNote] = []

    def note(n: ReaderNote) -> None:
        notes.append(n)
        warnings.append(note_text(n))

    for what, n in series.missing.items():
        warnings.append(f"{n} file(s) {what} (as anonymisers leave them)")
    _check_lost_images(result, series)
    _check_same_instance_same_place(series)
    series = _without_invalid_rescale(series, warnings)
    try:
        plan = plan_geometry(series, allow_gaps=allow_gaps, resample_uniform=resample_uniform)
    except DicomSeriesError as exc:  # a gap left by a file whose header was unreadable: say that, not allow_gaps
        _check_instance_numbers(result, series, gap=getattr(exc, "gap", None))
        raise
    _check_instance_numbers(result, series, gap=_gap_descriptions(plan.notes) or None)
    if why and len(result.series) > 1:
        if why == REQUESTED_SERIES:
            warnings.append(f"read {why}")
        else:
            note(_choice_note(result, series))
    by_reason: dict[str, int] = {}
    for _, reason in result.skipped:  # counted by reason, never named (a file name may be a patient's)
        by_reason[reason] = by_reason.get(reason, 0) + 1
    for reason, n in by_reason.items():
        note(ReaderNote("files_skipped", count=n, reason=reason))
    if any(not r.startswith(("not a regular file", "folder ")) for _, r in result.skipped):
        note(ReaderNote("files_unused", count=len(result.skipped)))
    lossy_ts = series.transfer_syntaxes & LOSSY_TRANSFER_SYNTAXES
    first_ds = result.datasets[series.file_indices[0]] if result.datasets else None
    if lossy_ts or (first_ds is not None and _text(first_ds, "LossyImageCompression") == "01"):
        warnings.append("lossy image compression: Hounsfield units are approximate; prefer an original "
                        "(uncompressed or lossless) export for planning")

    # ---- decode every file of the series (thread pool: decoders release the GIL)
    frames = series.frames
    per_file: dict[int, list[int]] = {}
    for fi, f in enumerate(frames):
        per_file.setdefault(f.file_index, []).append(fi)
    file_ids = sorted(per_file)

    # decoded HU go straight into the output stack (one slot per distinct position);
    # duplicates and frames of a broken plan go to `extra`
    f0 = frames[0]
    slot = {g[0]: k for k, g in enumerate(plan.groups)}
    stack = np.empty((len(plan.groups), f0.rows, f0.cols), dtype=np.float32)
    extra: dict[int, np.ndarray] = {}
    broken: set[int] = set()
    implausible: dict[int, tuple[float, float]] = {}  # frame -> (min, max) HU outside PLAUSIBLE_HU_RANGE

    def job(file_index: int) -> None:
        fs = per_file[file_index]
        nf = max((frames[x].frame_index or 0) for x in fs) + 1 if frames[fs[0]].frame_index is not None else 1
        try:
            ds = result.datasets[file_index] if result.datasets else None
            arr = _decode_file(result.files[file_index], nf, ds)
        except CorruptFileError:
            broken.update(fs)
            return
        for fi in fs:
            f = frames[fi]
            stored = arr[f.frame_index or 0]
            if stored.shape != (f.rows, f.cols):
                broken.add(fi)
                continue
            target = stack[slot[fi]] if fi in slot else np.empty((f.rows, f.cols), np.float32)
            _rescale_into(stored, f.slope, f.intercept, target)
            lo, hi = _rescaled_range(stored, f.slope, f.intercept, target)
            if not (PLAUSIBLE_HU_RANGE[0] <= lo and hi <= PLAUSIBLE_HU_RANGE[1]):  # also catches NaN
                implausible[fi] = (lo, hi)
            if fi not in slot:
                extra[fi] = target

    nworkers = workers or (2 if _any_compressed(series.transfer_syntaxes) else 1)
    with _pydicom_messages_without_paths():
        if len(file_ids) > 4 and nworkers > 1:
            with ThreadPoolExecutor(nworkers) as ex:
                list(ex.map(job, file_ids))
        else:
            for i in file_ids:
                job(i)

    hu = {fi: stack[k] for fi, k in slot.items()}
    hu.update(extra)
    if implausible:
        ok_frames = [f for fi, f in enumerate(frames) if fi not in implausible and fi not in broken]
        for fi, (lo, hi) in sorted(implausible.items()):
            f = frames[fi]
            if not _covered(f, ok_frames, plan.normal):
                raise DicomSeriesError(
                    f"Implausible Hounsfield units in {_slice_label(f)}: its pixels give {lo:.6g} .. {hi:.6g} HU with "
                    f"RescaleSlope {f.slope:g} and RescaleIntercept {f.intercept:g}, outside the range a CT can hold "
                    f"({PLAUSIBLE_HU_RANGE[0]:g} .. {PLAUSIBLE_HU_RANGE[1]:g} HU): the rescale or the pixel data is "
                    "wrong. Re-export the series from the scanner or PACS.")
        warnings.append(f"dropped {len(implausible)} image(s) whose pixels give implausible HU, another image "
                        "holds the same position ("
                        + "; ".join(_slice_label(frames[fi]) for fi in sorted(implausible)[:3]) + ")")
    if broken or implausible:
        bad_files = sorted({frames[fi].file_index for fi in broken})
        good_frames = [f for fi, f in enumerate(frames) if fi not in broken and fi not in implausible]
        covered = []
        good_d = np.array([f.position @ plan.normal for f in good_frames]) if good_frames else np.zeros(0)
        broken_sorted = sorted(broken)
        for fi in broken_sorted:
            dpos = frames[fi].position @ plan.normal
            covered.append(bool(good_d.size and np.min(np.abs(good_d - dpos)) <= SAME_POSITION_TOL_MM))
        interior = all(
            good_d.size and good_d.min() < frames[fi].position @ plan.normal < good_d.max() for fi in broken)
        if not all(covered) and not (allow_gaps and interior):
            where = ", ".join(_fmt_lps(frames[fi].position) for fi, c in zip(broken_sorted, covered) if not c)
            n_bad = len(bad_files)
            err = DicomSeriesError(
                f"{n_bad} truncated or undecodable file{'s' if n_bad > 1 else ''} (names not shown: they may "
                f"identify the patient): the series is incomplete (no other image at {where}). Re-export or "
                "re-copy the series"
                + (f"; {remedy_clause('allow_gaps_interior')}." if not allow_gaps and interior else "."))
            err.remedy = "allow_gaps_interior" if not allow_gaps and interior else None
            raise err
        if broken:
            note(ReaderNote("undecodable_files_skipped", count=len(bad_files),
                            points_lps_mm=tuple(frames[fi].position for fi in broken_sorted),
                            n_interpolated=sum(1 for c in covered if not c), step_mm=round(plan.step_mm, 4)))
        # re-plan with the readable frames only; indices into the original list are kept
        sub = SeriesInfo(**{**series.__dict__, "frames": good_frames})
        index_map = [fi for fi in range(len(frames)) if fi not in broken and fi not in implausible]
        plan2 = plan_geometry(sub, allow_gaps=allow_gaps, resample_uniform=resample_uniform)
        plan2.groups = [[index_map[x] for x in g] for g in plan2.groups]
        plan = plan2

    # ---- duplicates
    slices: list[np.ndarray] = []
    for g in plan.groups:
        keep = g[0]
        for other in g[1:]:
            if np.array_equal(hu[keep], hu[other]):
                warnings.append(
                    f"two images at the same position {_fmt_lps(frames[keep].position)} with identical "
                    "pixels; one kept")
            else:
                raise DicomSeriesError(
                    f"Two different images at the same position {_fmt_lps(frames[keep].position)}: the folder "
                    "mixes two acquisitions or a slice was exported twice with changes. Remove one of them or "
                    "choose another series.")
        slices.append(hu[keep])
    warnings.extend(plan.warnings)
    notes.extend(plan.notes)

    if not plan.resample and not broken and not implausible:
        array = stack  # slots are already in sorted order
    elif not plan.resample:
        array = np.stack(slices, axis=0)
    else:
        array = _resample_stack(slices, plan, frames)
    info = AcquisitionInfo(
        modality=series.modality, kernel=series.kernel, kvp=series.kvp, contrast=series.contrast,
        series_description=series.description,
        series_uid=None if series.uid.startswith("no-SeriesInstanceUID") else series.uid, study_uid=series.study_uid,
        frame_of_reference_uid=series.frame_of_reference_uid,
        gantry_tilt_deg=round(plan.tilt_deg, 4) if plan.tilt_deg else None,
        source_format="dicom-enhanced" if series.enhanced else "dicom",
    )
    return Volume(array, plan.affine, info, tuple(warnings), tuple(notes))


def _check_same_instance_same_place(series: SeriesInfo) -> None:
    """Refuse two files holding the same SOPInstanceUID at different positions.

    Copies of one image (same SOPInstanceUID) must be at the same place; a copy elsewhere means
    one of them had its position changed (a flipped digit), and which one is right is unknown.
    """
    seen: dict[str, Frame] = {}
    for f in series.frames:
        if not f.sop_instance_uid or f.frame_index is not None:
            continue
        other = seen.setdefault(f.sop_instance_uid, f)
        if other is not f and np.linalg.norm(other.position - f.position) > SAME_POSITION_TOL_MM:
            p1, p2 = sorted([other.position, f.position], key=tuple)
            raise DicomSeriesError(
                f"Two files hold the same image (one SOPInstanceUID, InstanceNumber {f.instance}) at different "
                f"positions, {_fmt_lps(p1)} and {_fmt_lps(p2)}: one of them is corrupt. Remove "
                "the wrong copy or re-export the series.")


def _check_lost_images(result: ScanResult, series: SeriesInfo) -> None:
    """Refuse a series when one of its own images was skipped (header read, but no usable geometry or image).

    A skipped file belongs to the series when its SeriesInstanceUID is the series' and its
    SOPInstanceUID is not that of an image that was read (a stray copy of a read image may be
    skipped). Reading without it would silently shorten the volume (an end slice) or leave a gap.
    """
    if not result.datasets or series.uid.startswith("no-SeriesInstanceUID"):
        return
    framed = {f.file_index for f in series.frames}
    sops = set()
    for i in framed:
        try:
            sops.add(_text(result.datasets[i], "SOPInstanceUID"))
        except Exception:  # noqa: BLE001
            pass
    reasons = dict(result.skipped)
    for idx, ds in enumerate(result.datasets):
        if ds is None or idx in framed:
            continue
        try:
            uid, sop = _text(ds, "SeriesInstanceUID"), _text(ds, "SOPInstanceUID")
            inst = _text(ds, "InstanceNumber")
        except Exception:  # noqa: BLE001
            continue
        if uid != series.uid or not sop or sop in sops:
            continue
        name = result.display_names[idx]
        raise DicomSeriesError(
            f"An image of this series was left out (file {name}, InstanceNumber "
            f"{_int(inst, -1) if _int(inst, -1) >= 0 else 'unreadable'}: "
            f"{reasons.get(name, 'unusable')}); reading without it would shorten the volume or leave a gap. "
            "Re-export the series, or remove the file if it is a stray copy.")


def _check_instance_numbers(result: ScanResult, series: SeriesInfo, gap: str | None = None) -> None:
    """Refuse a series that lost a file whose header could not even be read.

    Such a file cannot be placed by position; when some of the folder's files were unreadable
    DICOM and the series' InstanceNumbers (single-frame, distinct, positive) leave holes in
    1..max, the series is incomplete (refused even with ``allow_gaps``: the gap is a lost file,
    not a slice the scanner skipped). *gap* (where slices are missing, from :func:`plan_geometry`)
    is added to the message.
    """
    broken = [name for name, reason in result.skipped if reason.startswith("unreadable DICOM header")]
    if not broken or series.enhanced:
        return
    inst = [f.instance for f in series.frames]
    if len(set(inst)) != len(inst) or min(inst) < 1:
        return
    missing = sorted(set(range(1, max(inst) + 1)) - set(inst))
    if missing:
        shown = ", ".join(str(m) for m in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DicomSeriesError(
            f"Unreadable DICOM file(s) {', '.join(broken[:5])} and the series misses InstanceNumber(s) {shown}"
            + (f" (gap: {gap})" if gap else "") + ": the series is incomplete. Re-export or re-copy it.")


def _resample_stack(slices: list[np.ndarray], plan: GeometryPlan, frames: list[Frame]) -> np.ndarray:
    """Interpolate the sorted slices onto the plan's orthogonal uniform grid.

    Each output plane k lies at depth ``d0 + k*step`` along the normal; it is linearly
    interpolated between the two acquired planes around it, each sampled (bilinear) at the
    output pixel positions shifted by that plane's in-plane offset (tilt). With no tilt the
    shifts are integers and acquired planes are copied exactly.
    """
    from scipy.ndimage import affine_transform

    K, J, I = plan.shape
    d = plan.depths_mm - plan.depths_mm[0]
    aff = plan.affine
    ps_row = float(np.linalg.norm(aff[:3, 1]))
    ps_col = float(np.linalg.norm(aff[:3, 2]))
    col = aff[:3, 1] / ps_row
    row = aff[:3, 2] / ps_col
    out = np.full((K, J, I), AIR_HU, dtype=np.float32)
    first = frames[plan.groups[0][0]].position
    origin = aff[:3, 3]
    cache: dict[int, np.ndarray] = {}

    def plane(s: int) -> np.ndarray:
        if s not in cache:
            p = frames[plan.groups[s][0]].position
            off = origin - p  # output pixel (0,0) relative to source slice origin
            oj = float(off @ col / ps_row)
            oi = float(off @ row / ps_col)
            if abs(oj - round(oj)) < 1e-6 and abs(oi - round(oi)) < 1e-6:
                oj, oi = round(oj), round(oi)
            cache[s] = affine_transform(slices[s], np.eye(2), offset=(oj, oi), output_shape=(J, I), order=1,
                                        mode="constant", cval=AIR_HU, prefilter=False).astype(np.float32)
        return cache[s]

    del first
    for k in range(K):
        z = k * plan.step_mm
        s = int(np.searchsorted(d, z + 1e-6, side="right") - 1)
        s = min(max(s, 0), len(d) - 1)
        if s == len(d) - 1 or abs(z - d[s]) <= 1e-6:
            out[k] = plane(s)
            continue
        w = (z - d[s]) / (d[s + 1] - d[s])
        out[k] = (1.0 - w) * plane(s) + w * plane(s + 1)
    return out


# --------------------------------------------------------------------------- entry point
def read_dicom(path: str | os.PathLike, series_uid: str | None = None, allow_gaps: bool = False,
               resample_uniform: bool = False, workers: int | None = None,
               display_root: str | os.PathLike | None = None) -> Volume:
    """Read a CT volume from a DICOM folder (recursive) or a single (multi-frame) file.

    Parameters
    ----------
    path : folder or file
    series_uid : SeriesInstanceUID to read; default: the largest axial CT series (said in warnings)
    allow_gaps : interpolate missing slices instead of refusing
    resample_uniform : resample uneven slice spacing onto a uniform grid instead of refusing
    workers : threads for parsing/decoding

    Returns
    -------
    Volume
        float32 HU array (k, j, i), affine (k, j, i) -> LPS mm, AcquisitionInfo, warnings.

    Raises
    ------
    InputError and subclasses (DicomSeriesError, NotACTError, SeriesSelectionError, CorruptFileError)
    """
    result = scan(path, display_root=display_root, workers=workers)
    series, why = choose_series(result, series_uid)
    return read_series(result, series, allow_gaps=allow_gaps, resample_uniform=resample_uniform,
                       workers=workers, why=why)


def describe(result: ScanResult) -> list[dict[str, Any]]:
    """Plain-JSON description of every series found (geometry from headers, or the problem)."""
    out = []
    for idx, s in enumerate(result.series):
        item: dict[str, Any] = {
            "index": idx + 1,
            "series_uid": s.uid,
            "description": s.description,
            "modality": s.modality,
            "sop_class": CT_SOP_CLASSES.get(s.sop_class, s.sop_class),
            "image_type": list(s.image_type),
            "kernel": s.kernel,
            "kvp": s.kvp,
            "contrast": s.contrast,
            "files": s.n_files,
            "images": s.n_frames,
            "orientation": s.orientation_label(),
            "transfer_syntaxes": sorted(_ts_name(t) for t in s.transfer_syntaxes),
            "plannable": s.rejection is None,
            "rejection": s.rejection,
        }
        rescale_notes: list[str] = []
        try:
            _without_invalid_rescale(s, rescale_notes)
            item["hu_problem"] = None
        except DicomSeriesError as exc:
            item["hu_problem"] = str(exc)
        item["hu_notes"] = rescale_notes
        if s.frames:
            item["pixel_spacing_mm"] = [float(v) for v in s.frames[0].pixel_spacing]
            try:
                plan = plan_geometry(s, allow_gaps=True, resample_uniform=True)
                item["geometry"] = {
                    "shape_kji": list(plan.shape),
                    "slice_step_mm": round(plan.step_mm, 4),
                    "spacing_kji_mm": [round(float(v), 4) for v in np.linalg.norm(plan.affine[:3, :3], axis=0)],
                    "origin_lps_mm": [round(float(v), 3) for v in plan.affine[:3, 3]],
                    "tilt_deg": round(plan.tilt_deg, 3),
                }
                strict_problem = None
                try:
                    plan_geometry(s)
                except DicomSeriesError as exc:
                    strict_problem = str(exc)
                item["geometry_problem"] = strict_problem
                item["geometry_notes"] = plan.warnings
            except DicomSeriesError as exc:
                item["geometry"] = None
                item["geometry_problem"] = str(exc)
        out.append(item)
    return out


def _ts_name(uid: str) -> str:
    from pydicom.uid import UID

    try:
        return UID(uid).name
    except Exception:
        return uid


def iter_series_files(result: ScanResult) -> Iterable[tuple[int, SeriesInfo, list[Path]]]:
    """(series index, series, its files) for every series found."""
    for idx, s in enumerate(result.series):
        yield idx, s, [result.files[i] for i in s.file_indices]
