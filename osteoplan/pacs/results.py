"""The results of a plan as DICOM objects for the PACS: the planning CT copy, SEG, Comprehensive 3D SR and the
report as Encapsulated PDF, all in the planning CT's study and referencing its instances.

A plan folder written by ``osteoplan plan`` / ``osteoplan report`` holds ``dicom/ct/`` (the volume the plan was
made on, as a CT series), ``dicom/seg.dcm``, ``dicom/sr.dcm`` and ``report.pdf``; SEG and SR reference the CT
series of ``dicom/ct/`` (see :mod:`osteoplan.export.dicom`), the PDF is wrapped here with
:func:`osteoplan.export.dicom.build_encapsulated_pdf`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osteoplan.errors import InputError

_PATIENT_MODULE = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")


@dataclass
class ResultObjects:
    """DICOM objects to store, with a label each (``CT``, ``SEG``, ``SR``, ``PDF``)."""

    datasets: list[Any]
    labels: list[str]

    @property
    def study_uid(self) -> str:
        return str(self.datasets[0].StudyInstanceUID)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for lab in self.labels:
            out[lab] = out.get(lab, 0) + 1
        return out


def result_objects(plan_dir: str | os.PathLike, include_ct: bool = True) -> ResultObjects:
    """Read the DICOM results of a plan folder (and wrap ``report.pdf``) for storing.

    Parameters
    ----------
    plan_dir : path
        A plan folder (``dicom/ct/``, ``dicom/seg.dcm``, ``dicom/sr.dcm``, ``report.pdf``; each optional but
        the CT, needed as the reference).
    include_ct : bool
        Also store the CT copy the objects reference (needed when the PACS does not hold that series).

    Returns
    -------
    ResultObjects

    Raises
    ------
    InputError
        No ``dicom/ct/`` series, objects of different studies, or unreadable files.
    """
    import pydicom

    from osteoplan.export.dicom import build_encapsulated_pdf

    d = Path(plan_dir)
    ct_dir = d / "dicom" / "ct"
    ct_files = sorted(ct_dir.glob("*.dcm")) if ct_dir.is_dir() else []
    if not ct_files:
        raise InputError("The plan folder has no dicom/ct/ series (the CT its SEG and SR refer to); rebuild it with "
                         "'osteoplan report PLAN_DIR' (without --no-dicom).")
    try:
        ct = [pydicom.dcmread(p, stop_before_pixels=not include_ct) for p in ct_files]
        datasets: list[Any] = list(ct) if include_ct else []
        labels = ["CT"] * len(datasets)
        for name, lab in (("seg.dcm", "SEG"), ("sr.dcm", "SR")):
            p = d / "dicom" / name
            if p.is_file():
                datasets.append(pydicom.dcmread(p))
                labels.append(lab)
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise InputError(f"A DICOM file of the plan folder cannot be read ({type(exc).__name__}); rebuild it with "
                         "'osteoplan report PLAN_DIR'.") from None
    pdf = d / "report.pdf"
    if pdf.is_file():
        datasets.append(build_encapsulated_pdf(pdf.read_bytes(), ct))
        labels.append("PDF")
    if not datasets:
        raise InputError("Nothing to store in the plan folder (no SEG, SR or report.pdf).")
    studies = {str(x.StudyInstanceUID) for x in datasets}
    if len(studies) != 1:
        raise InputError("The plan folder's DICOM objects belong to different studies; rebuild them with "
                         "'osteoplan report PLAN_DIR'.")
    return ResultObjects(datasets, labels)


def adopt_patient_module(objects: ResultObjects, source: Any) -> None:
    """Give every object the Patient module of the study it joins in the PACS (in place).

    The plan folder's objects carry the pseudonymous case label as patient; stored into the study of the
    original CT, they must carry that study's patient or the PACS files them under another patient.

    Parameters
    ----------
    source : pydicom.Dataset
        A QIDO-RS answer (or header) of the study, with the Patient module attributes.
    """
    for ds in objects.datasets:
        for kw in _PATIENT_MODULE:
            v = source.get(kw, None)
            if v is not None:
                setattr(ds, kw, v)


def _derived_uid(*parts: str) -> str:
    """2.25 UID from a hash of *parts* (PS3.5 B.2): the same inputs give the same UID, so a retried store sends the
    same instances."""
    import hashlib

    return "2.25." + str(int(hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32], 16))


#: Tolerance (mm) between a source image's position/spacing and the plan's grid (configurable default, no published
#: source: far below any CT voxel, far above the rounding of DICOM decimal strings).
GRID_TOLERANCE_MM = 1e-3


def source_slices(affine: Any, shape: tuple[int, int, int], headers: list[Any]) -> list[Any]:
    """The source CT's single-frame headers in the plan volume's slice order k, if the volume is exactly their grid.

    Parameters
    ----------
    affine : array (4, 4)
        The plan volume's (k, j, i) -> LPS mm affine.
    shape : (K, J, I)
    headers : list of pydicom.Dataset
        The source series' instances (headers suffice: WADO-RS metadata).

    Returns
    -------
    list of pydicom.Dataset
        ``out[k]`` is the image at slice k.

    Raises
    ------
    InputError
        The volume is not the source series' own grid (another number of images, a multi-frame image, a position,
        orientation or spacing that differs by more than :data:`GRID_TOLERANCE_MM`, e.g. after gantry-tilt
        resampling or cropping); the message says which.
    """
    import numpy as np

    K, J, I = (int(s) for s in shape)
    aff = np.asarray(affine, dtype=float)
    if len(headers) != K:
        raise InputError(f"the PACS series has {len(headers)} images and the plan's CT {K} slices")
    inv = np.linalg.inv(aff)
    d = aff[:3, :3]
    sp = np.linalg.norm(d, axis=0)
    dirs = d / sp
    slots: dict[int, Any] = {}
    for h in headers:
        if int(h.get("NumberOfFrames", 1) or 1) != 1:
            raise InputError("the PACS series is multi-frame")
        try:
            ipp = np.asarray([float(v) for v in h.ImagePositionPatient])
            iop = np.asarray([float(v) for v in h.ImageOrientationPatient])
            ps = [float(v) for v in h.PixelSpacing]
        except (AttributeError, TypeError, ValueError):
            raise InputError("a PACS image lacks its position, orientation or pixel spacing") from None
        if (int(h.Rows), int(h.Columns)) != (J, I):
            raise InputError("the PACS images' size differs from the plan's CT")
        if not (np.allclose(iop[:3], dirs[:, 2], atol=1e-4) and np.allclose(iop[3:], dirs[:, 1], atol=1e-4)):
            raise InputError("the PACS images' orientation differs from the plan's CT")
        if abs(ps[0] - sp[1]) > GRID_TOLERANCE_MM or abs(ps[1] - sp[2]) > GRID_TOLERANCE_MM:
            raise InputError("the PACS images' pixel spacing differs from the plan's CT")
        kji = inv[:3, :3] @ ipp + inv[:3, 3]
        k = int(round(kji[0]))
        off_mm = np.linalg.norm(d @ (kji - np.array([k, 0.0, 0.0])))
        if not 0 <= k < K or off_mm > GRID_TOLERANCE_MM or k in slots:
            raise InputError("the PACS images' positions are not the plan's CT slices (resampled or cropped volume)")
        slots[k] = h
    return [slots[k] for k in range(K)]


def source_results(plan: Any, labelmap: Any, headers: list[Any], pdf: bytes | None = None) -> ResultObjects:
    """SEG, SR and Encapsulated PDF referencing the source CT series itself (no CT copy is stored).

    Parameters
    ----------
    plan : osteoplan.planning.model.Plan
        Its ``ct`` grid must be the source series' grid (:func:`source_slices`).
    labelmap : osteoplan.anatomy.labelmap.LabelMap or None
        On the plan's grid (SEG left out when None or empty).
    headers : list of pydicom.Dataset
        The source series' instances (WADO-RS metadata: no pixel data needed); their Patient and Study modules are
        copied into the new objects, which join the source study and frame of reference.
    pdf : bytes, optional
        The report PDF.

    Returns
    -------
    ResultObjects
        Labels ``SEG``, ``SR``, ``PDF``; UIDs derived from the plan and the source series, so that building again
        gives the same instances (a retried store adds nothing).

    Raises
    ------
    InputError
        The plan's grid is not the source series' (see :func:`source_slices`).
    """
    import hashlib

    from osteoplan.export.dicom import DicomContext, build_encapsulated_pdf, build_seg, build_sr

    ordered = source_slices(plan.ct.affine, tuple(plan.ct.shape_kji), headers)
    ref = ordered[0]
    series = str(ref.SeriesInstanceUID)
    key = hashlib.sha256(plan.to_json().encode()).hexdigest()
    ctx = DicomContext(study_uid=str(ref.StudyInstanceUID), frame_of_reference_uid=str(ref.FrameOfReferenceUID),
                       ct_series_uid=series, seg_series_uid=_derived_uid("seg-series", series, key),
                       sr_series_uid=_derived_uid("sr-series", series, key), patient_id=str(ref.get("PatientID", "")),
                       patient_name=str(ref.get("PatientName", "")))
    datasets: list[Any] = []
    labels: list[str] = []
    if labelmap is not None and any(labelmap.get(n).any() for n in labelmap.names()):
        seg, _ = build_seg(labelmap, ordered, ctx)
        datasets.append(seg)
        labels.append("SEG")
    datasets.append(build_sr(plan, ordered, ctx))
    labels.append("SR")
    for ds, lab in zip(datasets, labels):
        # highdicom takes the source's character set (often ISO_IR 100, Latin-1); the plan's texts hold characters
        # outside it (">=", dashes), which pydicom would replace by "?": UTF-8 holds everything
        ds.SpecificCharacterSet = "ISO_IR 192"
        uid = _derived_uid(lab, series, key)
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
    if pdf is not None:
        datasets.append(build_encapsulated_pdf(pdf, ordered))
        labels.append("PDF")
    return ResultObjects(datasets, labels)


def series_headers(client: Any, study_uid: str, series_uid: str) -> list[Any]:
    """The headers of a PACS series (WADO-RS metadata; pixel data left out)."""
    from pydicom import Dataset

    from osteoplan.errors import PacsError

    with client._errors("reading the metadata of a series", not_found="The series is no longer in the PACS "
                        "(deleted or moved); search again."):
        found = client._web.retrieve_series_metadata(study_uid, series_uid)
    out = []
    for js in found:
        ds = Dataset.from_json(js, bulk_data_uri_handler=lambda tag, vr, uri: None)
        for tag in (0x7FE00010,):
            if tag in ds:
                del ds[tag]
        out.append(ds)
    if not out:
        raise PacsError("The series is no longer in the PACS (deleted or moved); search again.")
    return out


def plan_results(client: Any, plan_dir: str | os.PathLike, source_series: str | None = None,
                 include_ct: bool = True) -> tuple[ResultObjects, str]:
    """The objects to store for a plan folder, and where they go (words for a message).

    When the plan's CT series (``Plan.ct_source.series_uid``, or *source_series*) is in the PACS and the plan's grid
    is that series' own, SEG, SR and PDF reference it (:func:`source_results`: no CT copy, they join its study,
    frame of reference and patient). Otherwise the folder's own objects are used (:func:`result_objects`: the CT
    copy they reference is stored with them when *include_ct*), given the Patient module of their study when the
    PACS holds it (:func:`adopt_patient_module`). Either way the SOP Instance UIDs are derived from the content, so
    building again gives the same instances (a retried store adds nothing).

    Parameters
    ----------
    client : osteoplan.pacs.PacsClient
    plan_dir : path
        A plan folder written with its report and DICOM outputs.
    source_series : str, optional
        The PACS series the plan was made on (default: the plan's ``ct_source``); given explicitly, it must be in
        the PACS.
    include_ct : bool
        See :func:`result_objects`.

    Returns
    -------
    (ResultObjects, str)

    Raises
    ------
    InputError
        The plan folder cannot be read (see :func:`result_objects`).
    PacsError
        The PACS cannot be reached, or *source_series* given and not in the PACS.
    """
    from osteoplan.errors import PacsError

    d = Path(plan_dir)
    series = source_series
    if not series and (d / "plan.json").is_file():
        from osteoplan.planning.model import load_plan

        src = getattr(load_plan(d / "plan.json"), "ct_source", None)
        series = src.series_uid if src is not None else None
    where = ""
    if series:
        try:
            hit = client.locate_series(series)
        except PacsError as exc:
            if source_series or "not in the PACS" not in str(exc):
                raise
            hit = None
            where = f"; the plan's CT series is not in this PACS ({str(exc).split(' (')[0].lower()})"
        if hit is not None:
            from osteoplan.export import load_plan_dir

            plan, _volume, labelmap = load_plan_dir(d)
            headers = series_headers(client, hit.study_uid, hit.series_uid)
            pdf = d / "report.pdf"
            try:
                objects = source_results(plan, labelmap, headers, pdf.read_bytes() if pdf.is_file() else None)
                return objects, "referencing the PACS series the plan was made on (no CT copy)"
            except InputError as exc:
                where = f"; a CT copy is stored because the plan's grid is not the PACS series' own ({exc})"
    objects = result_objects(d, include_ct=include_ct)
    source = client.study_patient_module(objects.study_uid)
    if source is not None:
        adopt_patient_module(objects, source)
        return objects, "into the planning CT's study (patient attributes taken from the PACS)" + where
    return objects, ("as a new study (the planning CT's study is not in this PACS; the objects keep the case's "
                     "pseudonym)" + where)
