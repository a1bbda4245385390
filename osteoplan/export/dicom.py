"""DICOM exports (highdicom): CT series copy, SEG of the label map, Comprehensive 3D SR (TID 1500) of the plan.

References
----------
* DICOM PS3.3 A.51 (Segmentation IOD), A.35.13 (Comprehensive 3D SR IOD); PS3.16 TID 1500
  "Measurement Report", TID 1411 "Volumetric ROI Measurements", TID 1501 "Measurement Group".
* highdicom (Herrmann et al., J Digit Imaging 2022) builds and validates the objects.

The SEG and the SR must reference the CT instances they were derived from. osteoplan plans on a
:class:`~osteoplan.imaging.Volume` (from DICOM, NIfTI or the phantom) whose original instances are not
kept, so this module writes the planning CT as a DICOM CT series (``ct/``, one file per slice,
HU stored with slope 1 / intercept 0) and makes SEG and SR reference *that* series. When the volume
came from DICOM its Study Instance UID and Frame of Reference UID are reused (already pseudonymised
when read with de-identification), so the objects line up with the source study in a PACS; the
series itself is new (a derived copy). Patient name and ID are the pseudonymous case label.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from osteoplan.errors import InputError

MANUFACTURER = "osteoplan"

#: Structure -> (SCT code, meaning) of the segmented property type; others use "Anatomical structure".
_SCT_TYPES = {
    "spinal_cord": ("2748008", "Spinal cord"),
    "vertebral_artery_left": ("85234005", "Vertebral artery"),
    "vertebral_artery_right": ("85234005", "Vertebral artery"),
    "common_carotid_artery_left": ("32062004", "Common carotid artery"),
    "common_carotid_artery_right": ("32062004", "Common carotid artery"),
    "internal_carotid_artery_left": ("86117002", "Internal carotid artery"),
    "internal_carotid_artery_right": ("86117002", "Internal carotid artery"),
    "internal_jugular_vein_left": ("12123001", "Internal jugular vein"),
    "internal_jugular_vein_right": ("12123001", "Internal jugular vein"),
    "trachea": ("44567001", "Trachea"),
    "larynx": ("4596009", "Larynx"),
    "pharynx": ("54066008", "Pharynx"),
    "esophagus": ("32849002", "Esophagus"),
    "mandible": ("91609006", "Mandible"),
    "bone": ("272673000", "Bone"),
    "vertebrae_C1": ("14806007", "C1 vertebra"),
    "vertebrae_C2": ("39976000", "C2 vertebra"),
    "vertebrae_C3": ("113205007", "C3 vertebra"),
    "skull": ("89546000", "Skull"),
    "parotid_gland_left": ("45289007", "Parotid gland"),
    "parotid_gland_right": ("45289007", "Parotid gland"),
    "lesion": ("52988006", "Lesion"),
}


def _code(value: str, scheme: str, meaning: str):
    from highdicom.sr.coding import CodedConcept

    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _anat():
    return _code("91723000", "SCT", "Anatomical structure")


def structure_code(name: str):
    """(category, type) coded concepts of a structure for SEG / SR."""
    if name == "lesion":
        return _code("49755003", "SCT", "Morphologically abnormal structure"), _code("52988006", "SCT", "Lesion")
    v = _SCT_TYPES.get(name)
    return _anat(), (_code(v[0], "SCT", v[1]) if v else _anat())


@dataclass
class DicomContext:
    """UIDs and pseudonymous patient attributes shared by every object of one export.

    Attributes
    ----------
    study_uid, frame_of_reference_uid : str
        Reused from the volume's metadata when known, otherwise generated.
    ct_series_uid, seg_series_uid, sr_series_uid : str
        Generated (the CT written here is a derived copy).
    patient_id, patient_name : str
        The pseudonymous case label.
    """

    study_uid: str
    frame_of_reference_uid: str
    ct_series_uid: str
    seg_series_uid: str
    sr_series_uid: str
    patient_id: str
    patient_name: str
    study_date: str = field(default_factory=lambda: _dt.date.today().strftime("%Y%m%d"))

    @classmethod
    def for_volume(cls, volume, case_label: str = "case") -> "DicomContext":
        """Context for a volume: reuse its Study / Frame of Reference UIDs when present."""
        from highdicom import UID

        info = volume.info
        return cls(study_uid=info.study_uid or str(UID()), frame_of_reference_uid=info.frame_of_reference_uid
                   or str(UID()), ct_series_uid=str(UID()), seg_series_uid=str(UID()), sr_series_uid=str(UID()),
                   patient_id=case_label, patient_name=f"{case_label}^pseudonym")


def ct_datasets(volume, ctx: DicomContext) -> list:
    """The volume as a list of CT Image Storage datasets (one per slice k), HU with slope 1 / intercept 0.

    Geometry (PS3.3 C.7.6.2): ImagePositionPatient of slice k = affine @ (k, 0, 0, 1);
    ImageOrientationPatient = (row direction = column-step axis i, column direction = row-step axis j);
    PixelSpacing = (row spacing j, column spacing i).

    Raises
    ------
    InputError
        HU values outside the int16 range.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    arr = np.rint(volume.array)
    if arr.min() < -32768 or arr.max() > 32767:
        raise InputError("CT values do not fit 16-bit DICOM pixels; check the HU scaling of the input.")
    arr = arr.astype(np.int16)
    K, J, I = volume.shape
    d = volume.direction
    sp = volume.spacing_mm
    iop = [float(x) for x in (*d[:, 2], *d[:, 1])]
    now = _dt.datetime.now()
    out = []
    for k in range(K):
        ds = Dataset()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = ctx.patient_name
        ds.PatientID = ctx.patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = ""
        ds.StudyInstanceUID = ctx.study_uid
        ds.StudyDate = ctx.study_date
        ds.StudyTime = now.strftime("%H%M%S")
        ds.ReferringPhysicianName = ""
        ds.StudyID = "1"
        ds.AccessionNumber = ""
        ds.Modality = "CT"
        ds.SeriesInstanceUID = ctx.ct_series_uid
        ds.SeriesNumber = 1
        ds.SeriesDescription = "osteoplan planning CT (derived copy)"
        ds.Laterality = ""
        ds.PatientPosition = ""  # unknown after NIfTI / phantom input (type 2C, may be empty)
        ds.FrameOfReferenceUID = ctx.frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        ds.Manufacturer = MANUFACTURER
        ds.InstanceNumber = k + 1
        ds.ContentDate = ctx.study_date
        ds.ContentTime = now.strftime("%H%M%S")
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.PatientOrientation = ""
        ds.ImagePositionPatient = [round(float(x), 6) for x in volume.index_to_world(np.array([k, 0.0, 0.0]))]
        ds.ImageOrientationPatient = [round(x, 8) for x in iop]
        ds.PixelSpacing = [round(float(sp[1]), 6), round(float(sp[2]), 6)]
        ds.SliceThickness = round(float(sp[0]), 6)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = J
        ds.Columns = I
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = 0
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.KVP = ""
        ds.AcquisitionNumber = 1
        ds.BurnedInAnnotation = "NO"
        ds.PixelData = arr[k].tobytes()
        out.append(ds)
    return out


def write_ct_series(folder: str | os.PathLike, datasets: Sequence) -> list[Path]:
    """Write CT datasets as ``CT000001.dcm``... into *folder* (atomic per file)."""
    from osteoplan.atomic import atomic_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, ds in enumerate(datasets, start=1):
        p = folder / f"CT{n:06d}.dcm"
        with atomic_file(p, "wb") as fh:
            ds.save_as(fh, enforce_file_format=True)
        paths.append(p)
    return paths


def build_seg(labelmap, ct: Sequence, ctx: DicomContext, names: Sequence[str] | None = None):
    """DICOM SEG (binary, one segment per non-empty structure) of *labelmap* referencing the CT datasets.

    Returns
    -------
    (highdicom.seg.Segmentation, list[str])
        The object and the structure names in segment-number order (empty masks are left out).
    """
    import highdicom as hd

    from osteoplan import __version__

    names = [n for n in (names if names is not None else labelmap.names()) if labelmap.get(n).any()]
    if not names:
        raise InputError("No non-empty structure to write in a DICOM SEG.")
    from pydicom.sr.codedict import codes

    # family (CID 7162): osteoplan's classical segmentation is thresholds + morphology
    algo = hd.AlgorithmIdentificationSequence(name="osteoplan", version=__version__,
                                              family=codes.cid7162.MorphologicalOperations)
    descs = []
    for n, name in enumerate(names, start=1):
        cat, typ = structure_code(name)
        src = labelmap.sources.get(name, "")
        manual = src.startswith("provided")
        descs.append(hd.seg.SegmentDescription(
            segment_number=n, segment_label=name[:64], segmented_property_category=cat,
            segmented_property_type=typ,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL if manual
            else hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=None if manual else algo))
    K, J, I = labelmap.volume.shape
    # (K, J, I, segments) as highdicom wants it, but stored segment by segment: each mask is copied whole and
    # highdicom's reductions over the segments axis (overlap test) and per-segment frame reads stay fast
    pix = np.zeros((len(names), K, J, I), dtype=bool)
    for n, name in enumerate(names):
        pix[n] = labelmap.get(name)
    pix = pix.transpose(1, 2, 3, 0)
    seg = hd.seg.Segmentation(
        source_images=list(ct), pixel_array=pix, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descs, series_instance_uid=ctx.seg_series_uid, series_number=2,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
        manufacturer_model_name="osteoplan", software_versions=__version__, device_serial_number="0",
        series_description="osteoplan label map")
    return seg, names


_POINT_KEYS = (("skin_entry", "skin_entry_lps_mm", "Skin entry"), ("bone_entry", "bone_entry_lps_mm", "Bone entry"),
               ("target", "target_lps_mm", "Target"))


def _verdict_group(plan):
    """The plan's verdict as a TID 1501 group "verdict <code>": its headline as a TEXT Impression (DCM 121073; the
    group's qualitative evaluations, TEXT), then each detail sentence as a TEXT Comment (DCM 121106), English,
    exactly as the other faces print them. (Not "Finding" 121071: TID 1501 uses that concept for a CODE.)"""
    import highdicom as hd
    from highdicom.sr import MeasurementsAndQualitativeEvaluations, TextContentItem, TrackingIdentifier
    from pydicom.sr.codedict import codes

    from osteoplan.planning.verdict import verdict_of

    v = verdict_of(plan)
    group = MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier=f"verdict {v.code}"))
    items = [TextContentItem(name=codes.DCM.Impression, value=v.text_en, relationship_type="CONTAINS")]
    items += [TextContentItem(name=codes.DCM.Comment, value=d, relationship_type="CONTAINS") for d in v.details_en]
    items.append(TextContentItem(name=codes.DCM.Comment, value=procedure_text(plan), relationship_type="CONTAINS"))
    group[0].ContentSequence.extend(items)
    return group


def procedure_text(plan) -> str:
    """The plan's procedure in one English sentence for the SR, e.g. ``"procedure vertebroplasty, level L1-L3,
    protocol vertebroplasty-transpedicular v1.0, 3 needles to place: needle 1 L1 right, ..."``."""
    proc = getattr(plan, "procedure", None) or plan.protocol_name
    text = f"procedure {proc}"
    if getattr(plan, "level", None):
        text += f", level {plan.level}"
    text += f", protocol {plan.protocol_name} v{plan.protocol_version}"
    placed = list(plan.placed)
    if len(placed) > 1:
        from osteoplan.export import trajectory_name

        text += f", {len(placed)} needles to place: " + ", ".join(
            trajectory_name(tr, n, len(placed)) for n, tr in enumerate(placed, start=1))
    if getattr(plan, "unplanned", ()):
        text += ", no feasible path for " + ", ".join(plan.unplanned)
    return text


def sr_comments(sr) -> list[str]:
    """Every TEXT Comment (DCM 121106) of an SR written by :func:`build_sr`, in document order."""
    out: list[str] = []

    def walk(items):
        for it in items:
            if getattr(it, "ValueType", "") == "TEXT" and it.ConceptNameCodeSequence[0].CodeValue == "121106":
                out.append(str(it.TextValue))
            walk(getattr(it, "ContentSequence", []))

    walk(getattr(sr, "ContentSequence", []))
    return out


def sr_verdict(sr) -> str | None:
    """The verdict headline written by :func:`build_sr` (the TEXT Impression of the "verdict" group), or None."""
    def walk(items):
        for it in items:
            if getattr(it, "ValueType", "") == "TEXT" and it.ConceptNameCodeSequence[0].CodeValue == "121073":
                return str(it.TextValue)
            found = walk(getattr(it, "ContentSequence", []))
            if found is not None:
                return found
        return None

    return walk(getattr(sr, "ContentSequence", []))


def build_sr(plan, ct: Sequence, ctx: DicomContext):
    """Comprehensive 3D SR (TID 1500) with the points (SCOORD3D) and key measurements of every trajectory to place.

    Content
    -------
    * for each trajectory to place (``plan.placed``: the plan's path, or every needle of a plan of several
      levels / both pedicles), one volumetric ROI group (TID 1411) per point: ``Skin entry``, ``Bone entry``,
      ``Target``, each a SCOORD3D POINT in the CT's frame of reference (LPS mm, as DICOM); with several
      needles the identifiers start with the needle's name (``"needle 2 L1 right: Target"``);
    * per trajectory a group (TID 1501, ``"trajectory"``, or the needle's name, with ``level L1 right``):
      depths skin->bone, bone->target, total (Distance, mm), angles (cranio-caudal, medio-lateral, degrees),
      the screw's length and diameter or the needle's diameter (mm), the pedicle margin (mm, with the
      Gertzbein-Robbins grade and the wall in its identifier), the tip's depth in the body (%) and across
      the midline (mm), when the plan measured them;
    * one group per clearance check: Distance (mm) from the instrument surface to the structure, its
      margin and status in the tracking identifier; "not_assessed" groups carry no value;
    * first, a "verdict" group (TID 1501) holding the plan's verdict as a TEXT Impression (DCM 121073) and
      its details as TEXT Comments (DCM 121106), word for word as the report and the command line
      (read back with :func:`sr_verdict`), and the procedure, level(s) and needles as a last Comment
      (:func:`procedure_text`, read back with :func:`sr_comments`).

    A plan without a path (no feasible path, route not assessable) gets an SR holding its verdict only.
    """
    import highdicom as hd
    from highdicom.sr import (CodedConcept, Measurement, SourceSeriesForSegmentation, VolumeSurface, MeasurementReport,
                              MeasurementsAndQualitativeEvaluations, ObservationContext, ObserverContext,
                              DeviceObserverIdentifyingAttributes, TrackingIdentifier,
                              VolumetricROIMeasurementsAndQualitativeEvaluations)
    from pydicom.sr.codedict import codes

    from osteoplan import __version__

    best = plan.best
    obs = ObservationContext(observer_person_context=None, observer_device_context=ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="osteoplan", manufacturer_name=MANUFACTURER, model_name=__version__)))
    groups: list[Any] = [_verdict_group(plan)]
    placed = list(plan.placed) if best is not None else []  # no path: the verdict alone
    for number, traj in enumerate(placed, start=1):
        prefix = _trajectory_prefix(traj, number, len(placed))
        for key, attr, label in _POINT_KEYS:
            p = np.asarray(getattr(traj, attr), dtype=float).reshape(1, 3)
            surface = VolumeSurface(graphic_type=hd.sr.GraphicTypeValues3D.POINT, graphic_data=p,
                                    frame_of_reference_uid=ctx.frame_of_reference_uid,
                                    source_series=SourceSeriesForSegmentation(ctx.ct_series_uid))
            groups.append(VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier=prefix + label),
                referenced_volume_surface=surface,
                finding_type=codes.DCM.Target if key == "target" else _anat()))
    if best is None:
        return _sr(plan, ct, ctx, obs, groups)
    mm = codes.UCUM.Millimeter
    deg = CodedConcept("deg", "UCUM", "degree")
    dist = codes.DCM.Distance

    def m(name, value, unit, label):
        return Measurement(name=name, value=float(value), unit=unit,
                           tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier=label))

    for number, traj in enumerate(placed, start=1):
        prefix = _trajectory_prefix(traj, number, len(placed))
        meas = [m(dist, traj.depth_skin_to_bone_mm, mm, "depth skin to bone"),
                m(dist, traj.depth_bone_to_target_mm, mm, "depth bone to target"),
                m(codes.SCT.Length, traj.depth_total_mm, mm, "path length skin to target"),
                m(codes.SCT.Angle, traj.angle_craniocaudal_deg, deg, "craniocaudal angle"),
                m(codes.SCT.Angle, traj.angle_mediolateral_deg, deg, "mediolateral angle")]
        if traj.screw is not None:
            meas.append(m(codes.SCT.Length, traj.screw.length_mm, mm, "screw length"))
            meas.append(m(codes.SCT.Diameter, traj.screw.diameter_mm, mm, "screw diameter"))
        if traj.needle_diameter_mm is not None:
            meas.append(m(codes.SCT.Diameter, traj.needle_diameter_mm, mm, "needle diameter"))
        if traj.pedicle_margin_mm is not None:
            meas.append(m(dist, traj.pedicle_margin_mm, mm,
                          f"pedicle margin (Gertzbein-Robbins {traj.pedicle_breach_grade or '-'}, "
                          f"{traj.pedicle_breach_wall or '-'} wall)"))
        if traj.tip_from_midline_mm is not None:
            meas.append(m(dist, traj.tip_from_midline_mm, mm, "tip across the midline"))
        ident = "trajectory" if len(placed) == 1 else f"needle {number}"
        if traj.level:
            ident += f" level {traj.level} {traj.side}"
        if traj.tip_anterior_fraction is not None:  # a fraction, not a coded measurement: said in words
            ident += f", tip at {100 * traj.tip_anterior_fraction:.0f} % of the body depth from the posterior wall"
        groups.append(MeasurementsAndQualitativeEvaluations(
            tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier=ident), measurements=meas))
        for c in traj.clearances:
            ident = f"{prefix}clearance {c.structure} margin {c.margin_mm:g} mm status {c.status}"
            if c.segmented and (c.note or "").startswith("at least this much"):
                ident += " (lower bound: distances computed up to a cap)"  # the value is a minimum, not exact
            cm = []
            if c.clearance_mm is not None and c.segmented:
                cm.append(m(dist, c.clearance_mm, mm, f"clearance {c.structure}"))
            groups.append(MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier=ident),
                finding_type=structure_code(c.structure)[1], measurements=cm or None))
    return _sr(plan, ct, ctx, obs, groups)


def _trajectory_prefix(traj, number: int, n_placed: int) -> str:
    """Prefix of a trajectory's SR identifiers: ``""`` for a plan with one path, ``"needle 2 L1 right: "`` else."""
    from osteoplan.export import trajectory_name

    return "" if n_placed <= 1 else trajectory_name(traj, number, n_placed) + ": "


def _sr(plan, ct: Sequence, ctx: DicomContext, obs, groups):
    import highdicom as hd
    from highdicom.sr import MeasurementReport

    report = MeasurementReport(observation_context=obs,
                               procedure_reported=_code("77477000", "SCT", "Computed tomography"),
                               imaging_measurements=groups)
    return hd.sr.Comprehensive3DSR(
        evidence=list(ct), content=report, series_instance_uid=ctx.sr_series_uid, series_number=3,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER, is_complete=True,
        series_description="osteoplan plan")


def sr_points(sr) -> dict[str, np.ndarray]:
    """Read the SCOORD3D points back from an SR written by :func:`build_sr`: {label: (3,) LPS mm}."""
    out: dict[str, np.ndarray] = {}

    def walk(items, label=None):
        for it in items:
            lab = label
            if getattr(it, "ValueType", "") == "TEXT" and it.ConceptNameCodeSequence[0].CodeValue == "112039":
                lab = it.TextValue
            if getattr(it, "ValueType", "") == "SCOORD3D":
                out[lab] = np.asarray(it.GraphicData, float).reshape(-1, 3)[0]
            if hasattr(it, "ContentSequence"):
                # tracking identifier is a sibling of the region inside the same group
                sib = [s.TextValue for s in it.ContentSequence if getattr(s, "ValueType", "") == "TEXT"
                       and s.ConceptNameCodeSequence[0].CodeValue == "112039"]
                walk(it.ContentSequence, sib[0] if sib else lab)
    walk(sr.ContentSequence)
    return {k: v for k, v in out.items() if k}


def write_dicom(out_dir: str | os.PathLike, plan, volume, labelmap, case_label: str = "case",
                write_ct: bool = True) -> dict[str, Path]:
    """Write ``ct/`` (CT series), ``seg.dcm`` and ``sr.dcm`` (points and verdict; the verdict alone without a path).

    Returns
    -------
    dict
        ``{"ct": folder, "seg": path, "sr": path}`` for what was written.
    """
    from osteoplan.atomic import atomic_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = DicomContext.for_volume(volume, case_label)
    ct = ct_datasets(volume, ctx)
    written: dict[str, Path] = {}
    if write_ct:
        write_ct_series(out / "ct", ct)
        written["ct"] = out / "ct"
    if labelmap is not None and labelmap.names():
        seg, _ = build_seg(labelmap, ct, ctx)
        with atomic_file(out / "seg.dcm", "wb") as fh:
            seg.save_as(fh)
        written["seg"] = out / "seg.dcm"
    if plan is not None:  # with a path: points, measurements and the verdict; without: the verdict alone
        sr = build_sr(plan, ct, ctx)
        with atomic_file(out / "sr.dcm", "wb") as fh:
            sr.save_as(fh)
        written["sr"] = out / "sr.dcm"
    return written


#: Encapsulated PDF Storage (PS3.4 B.5).
ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"


def build_encapsulated_pdf(pdf: bytes, ct: Sequence, title: str = "osteoplan plan report",
                           sop_instance_uid: str | None = None, series_instance_uid: str | None = None):
    """The report PDF as an Encapsulated PDF instance in the planning CT's study, referencing the CT.

    Modules (PS3.3 A.45.1, Encapsulated PDF IOD): Patient and General Study copied from the first CT
    dataset; Encapsulated Document Series (Modality ``DOC``, new series); SC Equipment (ConversionType
    ``WSD``, workstation); Encapsulated Document with ``SourceInstanceSequence`` listing every CT instance
    (the document was derived from them), ``MIMETypeOfEncapsulatedDocument`` ``application/pdf``,
    ``DocumentTitle`` and ``ConceptNameCodeSequence`` LOINC 18748-4 "Diagnostic imaging report".
    ``BurnedInAnnotation`` is ``YES``: the report names its case, so de-identification tools must treat
    the document as identifying.

    Parameters
    ----------
    pdf : bytes
        The PDF file's content (must start with ``%PDF``).
    ct : sequence of pydicom.Dataset
        The planning CT instances (headers suffice), e.g. from :func:`ct_datasets`.
    title : str
        DocumentTitle (ST, no patient data).
    sop_instance_uid, series_instance_uid : str, optional
        Default: UIDs derived from the PDF's SHA-256 and the CT series, so that building again from the same
        files gives the same instance (storing it twice to a PACS keeps one copy).

    Returns
    -------
    pydicom.Dataset
        With file meta (Explicit VR Little Endian).

    Raises
    ------
    InputError
        Not a PDF, or no CT dataset.
    """
    import hashlib

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as Seq
    from pydicom.uid import ExplicitVRLittleEndian

    from osteoplan import __version__

    if not pdf.startswith(b"%PDF"):
        raise InputError("The report is not a PDF file (no %PDF header); rebuild it with 'osteoplan report'.")
    if not ct:
        raise InputError("An encapsulated PDF needs the planning CT it refers to; none was given.")
    ref = ct[0]
    def derived_uid(*parts: str) -> str:  # 2.25 + a 128-bit integer (PS3.5 B.2), from a hash instead of a UUID
        return "2.25." + str(int(hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32], 16))

    digest = hashlib.sha256(pdf).hexdigest()
    sop_uid = sop_instance_uid or derived_uid("osteoplan-pdf", digest, str(ref.SeriesInstanceUID))
    series_uid = series_instance_uid or derived_uid("osteoplan-pdf-series", str(ref.SeriesInstanceUID))
    now = _dt.datetime.now()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.SOPInstanceUID = sop_uid
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
               "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        setattr(ds, kw, ref.get(kw, ""))
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 4
    ds.SeriesDescription = "osteoplan report (PDF)"
    ds.ConversionType = "WSD"
    ds.Manufacturer = MANUFACTURER
    ds.SoftwareVersions = __version__
    ds.InstanceNumber = 1
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = title[:1024]
    concept = Dataset()
    concept.CodeValue = "18748-4"
    concept.CodingSchemeDesignator = "LN"
    concept.CodeMeaning = "Diagnostic imaging report"
    ds.ConceptNameCodeSequence = Seq([concept])
    src = []
    for c in ct:
        item = Dataset()
        item.ReferencedSOPClassUID = c.SOPClassUID
        item.ReferencedSOPInstanceUID = c.SOPInstanceUID
        src.append(item)
    ds.SourceInstanceSequence = Seq(src)
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    data = bytes(pdf) + (b"\0" if len(pdf) % 2 else b"")  # OB: even length, padded with NUL (PS3.3 C.24.2.1)
    ds.EncapsulatedDocument = data
    ds.EncapsulatedDocumentLength = len(pdf)
    return ds
