"""Generator of DICOM CT test series with known geometry and a known analytic HU field.

Every pixel stores the analytic field :func:`hu_field` evaluated at the pixel centre's LPS
position (DICOM PS3.3 C.7.6.2.1.1: ``P = IPP + j*PixelSpacing[0]*col_dir +
i*PixelSpacing[1]*row_dir``), rounded to the stored integer grid. Tests can therefore check
exact HU at exact LPS points for any geometry the generator can write: axial, sagittal,
coronal, oblique, gantry tilt, gaps, uneven spacing, duplicates, several series, per-slice
rescale, compressed transfer syntaxes (JPEG 2000, JPEG-LS, RLE via pydicom's encoders; JPEG
lossless via python-gdcm), Secondary Capture, DERIVED, LOCALIZER, MR, truncated files,
non-DICOM files and Enhanced (multi-frame) CT.

All identifying values written here are fictitious (see :data:`FAKE_PHI`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

#: Fictitious identifying values written into every generated file (for de-identification tests).
FAKE_PHI: dict[str, str] = {
    "PatientName": "SYNTHPATIENT^ZEPHYRINE^Q",
    "PatientID": "SYN-778899",
    "PatientBirthDate": "19610723",
    "InstitutionName": "Clinique Synthetique Imaginaire",
    "InstitutionAddress": "42 avenue Inventee, 99999 Nulleville",
    "AccessionNumber": "SACC445566",
    "StationName": "SYNSTATION7",
    "OperatorsName": "OPSYNTH^BERNARD",
    "ReferringPhysicianName": "DRSYNTH^CLAUDE",
    "ImageComments": "Patient SYNTHPATIENT ne le 23/07/1961",
    "PrivateName": "SYNTHPATIENT^ZEPHYRINE^Q",
    "PrivateID": "SYN-778899",
    "RequestingPhysician": "REQSYNTH^DOMINIQUE",
}

#: Linear part of the analytic field: HU = A0 + AX*x + AY*y + AZ*z (LPS mm).
A0, AX, AY, AZ = 20.0, 1.5, -2.0, 3.0
#: Sphere added to the field (centre LPS mm, radius mm, HU added inside).
SPHERE_CENTRE = (4.0, -3.0, 10.0)
SPHERE_RADIUS = 6.0
SPHERE_HU = 500.0

ORIENTATIONS: dict[str, tuple[float, ...]] = {
    # (row direction, column direction); normal = row x col
    "axial": (1, 0, 0, 0, 1, 0),          # normal +z (S)
    "coronal": (1, 0, 0, 0, 0, -1),       # normal (0, 1, 0): +P
    "sagittal": (0, 1, 0, 0, 0, -1),      # normal (-1, 0, 0): -L
}

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"


def hu_field(points_lps: np.ndarray, sphere: bool = True) -> np.ndarray:
    """The analytic HU field at LPS points (..., 3): a linear ramp plus (optionally) a sphere."""
    p = np.asarray(points_lps, dtype=np.float64)
    v = A0 + AX * p[..., 0] + AY * p[..., 1] + AZ * p[..., 2]
    if sphere:
        r = np.linalg.norm(p - np.asarray(SPHERE_CENTRE), axis=-1)
        v = v + np.where(r <= SPHERE_RADIUS, SPHERE_HU, 0.0)
    return v


@dataclass
class SynthSeries:
    """What was written: files, UIDs and the geometry the generator used."""

    folder: Path
    files: list[Path]
    series_uid: str
    study_uid: str
    positions: np.ndarray  # (S, 3) IPP of every written slice (in writing order of depth)
    iop: tuple[float, ...]
    pixel_spacing: tuple[float, float]
    rows: int
    cols: int
    extra: dict[str, Any] = field(default_factory=dict)


def _uid(rng: np.random.Generator) -> str:
    return "2.25." + str(int.from_bytes(rng.bytes(15), "big"))


def _base_dataset(sop_class: str, sop_uid: str, series_uid: str, study_uid: str, for_uid: str, modality: str,
                  image_type: Sequence[str], description: str, kernel: str | None, kvp: float | None,
                  contrast_agent: str | None, phi: bool, rows: int, cols: int):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as Seq
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = list(image_type)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = "20240305"
    ds.SeriesDate = "20240305"
    ds.StudyTime = "093000"
    ds.Modality = modality
    ds.Manufacturer = "SYNTHGEN"
    ds.SeriesDescription = description
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = for_uid
    ds.StudyID = "S1"
    ds.SeriesNumber = 3
    ds.PatientSex = "F"
    ds.PatientPosition = "HFS"
    if kernel:
        ds.ConvolutionKernel = kernel
    if kvp is not None:
        ds.KVP = kvp
    if contrast_agent is not None:
        ds.ContrastBolusAgent = contrast_agent
    if phi:
        ds.PatientName = FAKE_PHI["PatientName"]
        ds.PatientID = FAKE_PHI["PatientID"]
        ds.PatientBirthDate = FAKE_PHI["PatientBirthDate"]
        ds.InstitutionName = FAKE_PHI["InstitutionName"]
        ds.InstitutionAddress = FAKE_PHI["InstitutionAddress"]
        ds.AccessionNumber = FAKE_PHI["AccessionNumber"]
        ds.StationName = FAKE_PHI["StationName"]
        ds.OperatorsName = FAKE_PHI["OperatorsName"]
        ds.ReferringPhysicianName = FAKE_PHI["ReferringPhysicianName"]
        ds.ImageComments = FAKE_PHI["ImageComments"]
        req = Dataset()
        req.RequestingPhysician = FAKE_PHI["RequestingPhysician"]
        req.AccessionNumber = FAKE_PHI["AccessionNumber"]
        ds.RequestAttributesSequence = Seq([req])
        block = ds.private_block(0x0013, "SYNTHGEN PRIVATE", create=True)
        block.add_new(0x01, "LO", FAKE_PHI["PrivateName"])
        block.add_new(0x02, "LO", FAKE_PHI["PrivateID"])
    else:
        ds.PatientName = "ANON"
        ds.PatientID = "ANON"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    return ds


def _store(hu: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    stored = np.rint((hu - intercept) / slope)
    if stored.min() < -32768 or stored.max() > 32767:
        raise ValueError("field out of int16 range for this slope/intercept")
    return stored.astype(np.int16)


def _fmt(v: float) -> str:
    """A DS string (<= 16 characters) holding *v* as exactly as possible."""
    s = f"{v:.10g}"
    if len(s) > 16:
        s = f"{v:.8g}"
    return s


def slice_image(ipp: np.ndarray, iop: Sequence[float], pixel_spacing: tuple[float, float], rows: int, cols: int,
                sphere: bool = True) -> np.ndarray:
    """HU image (rows, cols) of the analytic field on the plane given by IPP/IOP/PixelSpacing."""
    row = np.asarray(iop[:3], float)
    col = np.asarray(iop[3:], float)
    j, i = np.mgrid[0:rows, 0:cols]
    pts = (np.asarray(ipp, float)[None, None, :] + j[..., None] * pixel_spacing[0] * col
           + i[..., None] * pixel_spacing[1] * row)
    return hu_field(pts, sphere=sphere)


def _compress(ds, arr: np.ndarray, transfer_syntax: str, path: Path) -> None:
    """Write *ds* with pixels *arr* in *transfer_syntax* (pydicom encoders; gdcm for JPEG lossless)."""
    from pydicom.uid import ExplicitVRLittleEndian, JPEGLossless, JPEGLosslessSV1

    if transfer_syntax in (ExplicitVRLittleEndian, "1.2.840.10008.1.2"):
        ds.PixelData = arr.tobytes()
        ds["PixelData"].VR = "OW"
        if transfer_syntax == "1.2.840.10008.1.2":
            ds.file_meta.TransferSyntaxUID = transfer_syntax
            ds.save_as(str(path), enforce_file_format=True, implicit_vr=True, little_endian=True)
        else:
            ds.save_as(str(path), enforce_file_format=True)
        return
    if transfer_syntax in (JPEGLosslessSV1, JPEGLossless):
        import gdcm

        ds.PixelData = arr.tobytes()
        ds["PixelData"].VR = "OW"
        tmp = path.with_suffix(".raw.dcm")
        ds.save_as(str(tmp), enforce_file_format=True)
        reader = gdcm.ImageReader()
        reader.SetFileName(str(tmp))
        if not reader.Read():
            raise RuntimeError("gdcm could not read the uncompressed file")
        change = gdcm.ImageChangeTransferSyntax()
        ts = (gdcm.TransferSyntax.JPEGLosslessProcess14_1 if transfer_syntax == JPEGLosslessSV1
              else gdcm.TransferSyntax.JPEGLosslessProcess14)
        change.SetTransferSyntax(gdcm.TransferSyntax(ts))
        change.SetInput(reader.GetImage())
        if not change.Change():
            raise RuntimeError("gdcm could not compress to JPEG lossless")
        writer = gdcm.ImageWriter()
        writer.SetFileName(str(path))
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        if not writer.Write():
            raise RuntimeError("gdcm could not write the JPEG lossless file")
        tmp.unlink()
        return
    ds.compress(transfer_syntax, arr, encoding_plugin="")
    ds.save_as(str(path), enforce_file_format=True)


def write_series(
    folder: str | os.PathLike,
    *,
    rows: int = 24,
    cols: int = 20,
    pixel_spacing: tuple[float, float] = (0.8, 0.6),
    orientation: str | Sequence[float] = "axial",
    origin: Sequence[float] = (-6.0, -8.0, -4.0),
    depths: Sequence[float] | None = None,
    n_slices: int = 12,
    step: float = 2.0,
    tilt_deg: float = 0.0,
    slopes: Sequence[float] | None = None,
    intercepts: Sequence[float] | None = None,
    transfer_syntax: str = "1.2.840.10008.1.2.1",
    sop_class: str = CT_IMAGE,
    modality: str = "CT",
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    description: str = "synthetic CT",
    kernel: str | None = "BONE",
    kvp: float | None = 120.0,
    contrast_agent: str | None = None,
    duplicate: str | None = None,
    duplicate_index: int = 3,
    series_uid: str | None = None,
    study_uid: str | None = None,
    for_uid: str | None = None,
    prefix: str = "",
    shuffle: bool = True,
    instance_against_anatomy: bool = True,
    phi: bool = True,
    sphere: bool = True,
    seed: int = 0,
    blank_series_uid: bool = False,
    sop_class_in_dataset: bool = True,
    extension: str = ".dcm",
) -> SynthSeries:
    """Write a single-frame CT series of the analytic field into *folder*.

    Geometry (all hand-checkable): slice ``s`` has ImagePositionPatient
    ``origin + depths[s] * normal`` (normal = row x col of the orientation), or, with a gantry
    tilt ``t``, orientation row = (1, 0, 0), col = (0, cos t, sin t) and
    ``IPP = origin + depths[s] * (0, 0, 1)`` (the table moves along z; the image planes are tilted).

    Parameters
    ----------
    depths : positions of the slices along the stacking direction (mm); default
        ``step * arange(n_slices)``. Leave one out for a gap, vary the steps for uneven spacing.
    slopes, intercepts : per-slice RescaleSlope / RescaleIntercept (default 1 / -1024).
    duplicate : None, ``"identical"`` or ``"different"``: add a second file at the position of
        slice ``duplicate_index`` (same pixels, or pixels + 7 HU).
    shuffle : random file names; ``instance_against_anatomy`` numbers InstanceNumber from the
        last slice to the first.
    blank_series_uid, sop_class_in_dataset, extension : what anonymisers in the wild leave: an
        empty SeriesInstanceUID, SOPClassUID only in the file meta (MediaStorageSOPClassUID), file
        names without extension (``extension=""``).

    Returns
    -------
    SynthSeries
    """
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if tilt_deg:
        t = np.radians(tilt_deg)
        iop = (1.0, 0.0, 0.0, 0.0, float(np.cos(t)), float(np.sin(t)))
        stack_dir = np.array([0.0, 0.0, 1.0])
    else:
        iop = tuple(float(v) for v in (ORIENTATIONS[orientation] if isinstance(orientation, str) else orientation))
        row = np.asarray(iop[:3])
        col = np.asarray(iop[3:])
        stack_dir = np.cross(row, col)
        stack_dir = stack_dir / np.linalg.norm(stack_dir)
    dep = np.asarray(depths if depths is not None else step * np.arange(n_slices), float)
    positions = np.asarray(origin, float)[None, :] + dep[:, None] * stack_dir[None, :]
    S = len(dep)
    slopes = list(slopes) if slopes is not None else [1.0] * S
    intercepts = list(intercepts) if intercepts is not None else [-1024.0] * S
    series_uid = series_uid or _uid(rng)
    study_uid = study_uid or _uid(rng)
    for_uid = for_uid or _uid(rng)
    entries = [(s, positions[s], 0) for s in range(S)]
    if duplicate:
        entries.append((duplicate_index, positions[duplicate_index], 7 if duplicate == "different" else 0))
    files = []
    names = rng.permutation(len(entries))
    for n_written, (s, ipp, delta) in enumerate(entries):
        sop_uid = _uid(rng)
        ds = _base_dataset(sop_class, sop_uid, series_uid, study_uid, for_uid, modality, image_type, description,
                           kernel, kvp, contrast_agent, phi, rows, cols)
        ds.InstanceNumber = (S - s) if instance_against_anatomy else (s + 1)
        ds.ImagePositionPatient = [_fmt(v) for v in ipp]
        ds.ImageOrientationPatient = [_fmt(v) for v in iop]
        ds.PixelSpacing = [_fmt(v) for v in pixel_spacing]
        ds.SliceThickness = _fmt(step)
        ds.RescaleSlope = _fmt(slopes[s])
        ds.RescaleIntercept = _fmt(intercepts[s])
        ds.RescaleType = "HU"
        if tilt_deg:
            ds.GantryDetectorTilt = _fmt(tilt_deg)
        if blank_series_uid:
            ds.SeriesInstanceUID = ""
        if not sop_class_in_dataset:
            del ds.SOPClassUID
        hu = slice_image(ipp, iop, pixel_spacing, rows, cols, sphere=sphere) + delta
        arr = _store(hu, slopes[s], intercepts[s])
        name = (f"{prefix}img{names[n_written]:03d}" if shuffle else f"{prefix}img{n_written:03d}") + extension
        path = folder / name
        _compress(ds, arr, transfer_syntax, path)
        files.append(path)
    return SynthSeries(folder, files, series_uid, study_uid, positions, iop, tuple(pixel_spacing), rows, cols)


def write_enhanced_ct(
    path: str | os.PathLike,
    *,
    rows: int = 24,
    cols: int = 20,
    pixel_spacing: tuple[float, float] = (0.8, 0.6),
    orientation: str | Sequence[float] = "axial",
    origin: Sequence[float] = (-6.0, -8.0, -4.0),
    n_frames: int = 10,
    step: float = 2.0,
    slopes: Sequence[float] | None = None,
    intercepts: Sequence[float] | None = None,
    frame_order: Sequence[int] | None = None,
    phi: bool = True,
    seed: int = 1,
) -> SynthSeries:
    """Write one Enhanced CT (multi-frame) file of the analytic field.

    Position, orientation, pixel spacing and rescale are given ONLY through the functional
    groups: PlanePositionSequence and PixelValueTransformationSequence per frame,
    PlaneOrientationSequence and PixelMeasuresSequence shared. ``frame_order`` stores the
    slices in another order (frame f holds slice ``frame_order[f]``).
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as Seq

    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iop = tuple(float(v) for v in (ORIENTATIONS[orientation] if isinstance(orientation, str) else orientation))
    normal = np.cross(np.asarray(iop[:3]), np.asarray(iop[3:]))
    positions = np.asarray(origin, float)[None, :] + (step * np.arange(n_frames))[:, None] * normal[None, :]
    slopes = list(slopes) if slopes is not None else [1.0] * n_frames
    intercepts = list(intercepts) if intercepts is not None else [-1024.0] * n_frames
    order = list(frame_order) if frame_order is not None else list(range(n_frames))
    series_uid, study_uid, for_uid, sop_uid = _uid(rng), _uid(rng), _uid(rng), _uid(rng)
    ds = _base_dataset(ENHANCED_CT, sop_uid, series_uid, study_uid, for_uid, "CT",
                       ("ORIGINAL", "PRIMARY", "AXIAL", "NONE"), "synthetic enhanced CT", None, None, None, phi,
                       rows, cols)
    ds.NumberOfFrames = n_frames
    ds.InstanceNumber = 1
    ds.ContentDate = "20240305"
    ds.ContentTime = "093000"
    shared = Dataset()
    meas = Dataset()
    meas.PixelSpacing = [_fmt(v) for v in pixel_spacing]
    meas.SliceThickness = _fmt(step)
    shared.PixelMeasuresSequence = Seq([meas])
    ori = Dataset()
    ori.ImageOrientationPatient = [_fmt(v) for v in iop]
    shared.PlaneOrientationSequence = Seq([ori])
    rec = Dataset()
    rec.ConvolutionKernel = "STANDARD"
    shared.CTReconstructionSequence = Seq([rec])
    xr = Dataset()
    xr.KVP = 100
    shared.CTXRayDetailsSequence = Seq([xr])
    ds.SharedFunctionalGroupsSequence = Seq([shared])
    per = []
    pixels = []
    for f in range(n_frames):
        s = order[f]
        item = Dataset()
        pos = Dataset()
        pos.ImagePositionPatient = [_fmt(v) for v in positions[s]]
        item.PlanePositionSequence = Seq([pos])
        pvt = Dataset()
        pvt.RescaleSlope = _fmt(slopes[s])
        pvt.RescaleIntercept = _fmt(intercepts[s])
        pvt.RescaleType = "HU"
        item.PixelValueTransformationSequence = Seq([pvt])
        fc = Dataset()
        fc.InStackPositionNumber = s + 1
        item.FrameContentSequence = Seq([fc])
        per.append(item)
        pixels.append(_store(slice_image(positions[s], iop, pixel_spacing, rows, cols), slopes[s], intercepts[s]))
    ds.PerFrameFunctionalGroupsSequence = Seq(per)
    ds.PixelData = np.stack(pixels).tobytes()
    ds["PixelData"].VR = "OW"
    ds.save_as(str(path), enforce_file_format=True)
    return SynthSeries(path.parent, [path], series_uid, study_uid, positions, iop, tuple(pixel_spacing), rows, cols,
                       extra={"order": order})


def truncate_file(path: str | os.PathLike, keep_fraction: float = 0.6) -> None:
    """Cut a file to a fraction of its size (simulates an interrupted copy)."""
    p = Path(path)
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * keep_fraction)])


def write_junk(path: str | os.PathLike) -> None:
    """Write a non-DICOM file (text) such as the notes scanners leave next to the images."""
    Path(path).write_text("exported by a workstation; not an image\n", encoding="utf-8")


def set_raw_element(path: str | os.PathLike, keyword: str | int, vr: str | None = None,
                    value: bytes | None = None) -> None:
    """Rewrite one top-level element of a file with raw bytes, or delete it (``value=None``).

    The bytes are written as they are (pydicom does not validate or convert a raw element), so a
    test can store what real files hold and pydicom would refuse to build: ``b"abc "`` or
    ``b"nan "`` in a DS, an empty Type 1 value, binary garbage. *vr* defaults to the element's
    dictionary VR.
    """
    import pydicom
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    tag = Tag(tag_for_keyword(keyword) if isinstance(keyword, str) else keyword)
    ds = pydicom.dcmread(str(path))
    if value is None:
        if tag in ds:
            del ds[tag]
    else:
        vr = vr or dictionary_VR(tag)
        ds._dict[tag] = RawDataElement(tag, vr, len(value), value, 0, ds.is_implicit_VR, ds.is_little_endian)
    ds.save_as(str(path))
