"""Importing nibabel without pydicom: a NIfTI read should not pay for the DICOM toolkit.

``nibabel.nifti1`` imports pydicom at module level when pydicom is installed (``optional_package("pydicom")``),
only to decode NIfTI header extensions of code 2 ("dicom"). osteoplan never reads those extensions, and
importing pydicom 3 costs about 0.25 s of CPU (measured on the CThead plan command, one core), i.e. most of
the "reading the CT" stage of a NIfTI input. :func:`import_nibabel` imports nibabel for the first time with
pydicom reported as absent *to the importing thread only*, which is a configuration nibabel supports
(pydicom is an optional dependency of nibabel): a DICOM extension then stays a plain
``nibabel.nifti1.Nifti1Extension`` holding its raw bytes. Nothing else changes: header, affine and voxel
values are decoded by the same nibabel code. When pydicom is already imported (a DICOM input was read first,
the web app), or nibabel is, the import is the plain one.
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType

__all__ = ["import_nibabel"]


class _NoPydicomFinder:
    """A ``sys.meta_path`` finder that answers "not installed" for pydicom, in one thread only."""

    def __init__(self) -> None:
        self.thread_id = threading.get_ident()

    def find_spec(self, name, path=None, target=None):  # noqa: D102 - importlib finder protocol
        if (name == "pydicom" or name.startswith("pydicom.")) and threading.get_ident() == self.thread_id:
            raise ModuleNotFoundError("pydicom is not needed to read NIfTI", name=name)
        return None


_lock = threading.Lock()


def import_nibabel() -> ModuleType:
    """Return the ``nibabel`` module, imported (the first time) without importing pydicom.

    Returns
    -------
    module
        ``nibabel``, with ``nibabel.nifti1`` loaded.

    Notes
    -----
    Other threads importing pydicom meanwhile are not affected (the finder checks the thread).
    """
    if "nibabel.nifti1" in sys.modules:
        import nibabel

        return nibabel
    with _lock:
        if "pydicom" in sys.modules or "nibabel.nifti1" in sys.modules:
            import nibabel
            import nibabel.nifti1  # noqa: F401

            return nibabel
        finder = _NoPydicomFinder()
        sys.meta_path.insert(0, finder)
        try:
            import nibabel
            import nibabel.nifti1  # noqa: F401
        finally:
            sys.meta_path.remove(finder)
    return nibabel
