"""CT input: the :class:`Volume` (HU array + exact index->LPS affine), readers and de-identification."""

from osteoplan.imaging.volume import AIR_HU, AcquisitionInfo, Volume, axis_aligned_affine

__all__ = ["AIR_HU", "AcquisitionInfo", "Volume", "axis_aligned_affine", "read_volume"]


def read_volume(path, **kwargs):  # noqa: D401 - thin lazy wrapper
    """Read a CT volume from a DICOM folder/zip, NIfTI or NRRD file. See :func:`osteoplan.imaging.io.read_volume`."""
    from osteoplan.imaging.io import read_volume as _read

    return _read(path, **kwargs)
