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
