"""Put a volume into a PACS as a CT series (the demo's Orthanc, tests): the planning CT a PACS would hold.

The series is written with :func:`osteoplan.export.dicom.ct_datasets` (HU, slope 1 / intercept 0, exact
geometry) but as an ORIGINAL acquisition with the given (fictitious) patient, so the reader accepts it for
planning and the identity check can compare it with a demo case.
"""

from __future__ import annotations

from typing import Any, Mapping

_PATIENT_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")


def volume_as_ct_series(volume: Any, patient: Mapping[str, str], description: str = "osteoplan demo CT",
                        study_uid: str | None = None) -> list[Any]:
    """The volume as CT Image Storage datasets of an ORIGINAL axial series with *patient*'s attributes.

    Parameters
    ----------
    volume : osteoplan.imaging.Volume
        HU (k, j, i) with its LPS affine; ``info`` UIDs are reused when present.
    patient : mapping
        DICOM keyword -> value for ``PatientName``, ``PatientID``, ``PatientBirthDate``, ``PatientSex``
        (fictitious for a demo).
    description : str
        SeriesDescription.
    study_uid : str, optional
        Put the series in this study (default: the volume's, else a new one).

    Returns
    -------
    list of pydicom.Dataset
        One per slice k.
    """
    from osteoplan.export.dicom import DicomContext, ct_datasets

    ctx = DicomContext.for_volume(volume, str(patient.get("PatientID", "demo")))
    if study_uid:
        ctx.study_uid = study_uid
    if volume.info.series_uid:
        ctx.ct_series_uid = volume.info.series_uid
    out = ct_datasets(volume, ctx)
    for ds in out:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SeriesDescription = description[:64]
        for kw in _PATIENT_KEYWORDS:
            if kw in patient:
                setattr(ds, kw, patient[kw])
    return out


def store_volume(client: Any, volume: Any, patient: Mapping[str, str], description: str = "osteoplan demo CT",
                 study_uid: str | None = None) -> tuple[str, str]:
    """Store *volume* into the PACS as a CT series (:func:`volume_as_ct_series`); returns (study UID, series UID).

    Raises
    ------
    PacsError, PacsStoreError
        The PACS could not store every slice (see :meth:`osteoplan.pacs.PacsClient.store`).
    """
    dsets = volume_as_ct_series(volume, patient, description, study_uid)
    client.store(dsets, ["CT"] * len(dsets))
    return str(dsets[0].StudyInstanceUID), str(dsets[0].SeriesInstanceUID)
