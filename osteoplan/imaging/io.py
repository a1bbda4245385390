"""Reading CT volumes (placeholder dispatcher; the DICOM reader lives in ``dicom_series``).

This first version reads NIfTI only; the imaging work (issue 2) extends it to DICOM
folders, zips and NRRD.
"""

from __future__ import annotations

from pathlib import Path

from osteoplan.errors import CorruptFileError, InputError, safe_path
from osteoplan.imaging.volume import AcquisitionInfo, Volume


def read_volume(path, **kwargs) -> Volume:
    """Read a CT volume from *path* (NIfTI ``.nii``/``.nii.gz``).

    Raises
    ------
    InputError
        The path does not exist or its format is not supported.
    CorruptFileError
        The file cannot be parsed.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"Input not found: {safe_path(p)}. Check the path.")
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        try:
            img = nib.load(str(p))
            return Volume.from_nifti(img, AcquisitionInfo(source_format="nifti"))
        except InputError:
            raise
        except Exception as exc:  # nibabel raises many types
            raise CorruptFileError(f"Cannot read NIfTI {safe_path(p)}: {type(exc).__name__}. Is the file complete?") from None
    raise InputError(f"Unsupported input {safe_path(p)}: give a DICOM folder, a zip of DICOM, a NIfTI or an NRRD file.")
