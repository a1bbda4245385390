"""One exception family for everything a user can get wrong or that cannot be done.

Every message says *what* is wrong and *what to do*. Messages never contain identifying
data (patient names, IDs, dates of birth, file names taken from a patient series); callers
that format paths must use :func:`safe_path` when the path may carry identifiers.

The command line catches :class:`OsteoplanError`, prints ``error: <message>`` on one line and
exits with :attr:`OsteoplanError.exit_code` -- never a traceback.
"""

from __future__ import annotations


class OsteoplanError(Exception):
    """Base class of every error osteoplan raises on purpose.

    Parameters
    ----------
    message : str
        What is wrong, then what to do about it.
    """

    exit_code: int = 2


class InputError(OsteoplanError):
    """The input (CT, mask, request, file) cannot be used as given."""


class DicomSeriesError(InputError):
    """A DICOM series is inconsistent: gaps, varying spacing, conflicting duplicates, ..."""


class NotACTError(InputError):
    """Images that must not be planned on: Secondary Capture, derived, localizer, non-CT."""


class CorruptFileError(InputError):
    """A file is truncated, unreadable or not in the expected format."""


class SeriesSelectionError(InputError):
    """No series, or the requested series UID is not present."""


class MaskError(InputError):
    """A mask/label map is missing, empty where it must not be, or does not overlap the CT."""


class AnatomyError(OsteoplanError):
    """An anatomical structure or landmark could not be found (e.g. C2 outside the field of view)."""


class PlanningError(OsteoplanError):
    """No plan can be made (impossible target, no feasible trajectory, invalid protocol)."""


class ProtocolError(InputError):
    """A procedure protocol file is malformed or has out-of-range values."""


class DeidentificationError(OsteoplanError):
    """De-identification failed or its verification found identifying data left in the output."""


class ValidationError(InputError):
    """A request to the care-pathway record describes an impossible state."""


class DependencyError(OsteoplanError):
    """An optional component (e.g. TotalSegmentator weights, Chromium) is not installed."""


class ConflictError(OsteoplanError):
    """A record was changed by someone else since it was opened (optimistic locking); reload and redo."""


class NotFoundError(InputError):
    """A requested record does not exist (or was soft-deleted)."""


class PermissionDeniedError(OsteoplanError):
    """The user's role does not allow this action."""


class PacsError(OsteoplanError):
    """The PACS could not be reached, did not answer in time, refused a request, or lost a series."""


class PacsUnreachableError(PacsError):
    """The PACS could not be reached or refused the credentials: nothing was sent or stored."""


class PacsStoreError(PacsError):
    """A store (STOW-RS) did not store every object; :attr:`report` says which were stored and which not.

    Parameters
    ----------
    message : str
        What failed and what to do (storing again is safe: the same SOP Instance UIDs are sent).
    report : osteoplan.pacs.StoreReport or None
        Per-instance outcome.
    """

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        self.report = report


class PatientIdentityError(InputError):
    """A CT's patient identity does not match the case (or cannot be verified); names the attributes, never values."""


_GENERIC_NAME = None


def safe_path(path: object, kind: str | None = None) -> str:
    """Return a display form of *path* that cannot leak patient-derived file names.

    Only the final component is shown, and only when it is a generic name: letters-free
    numbering (``0001.dcm``, ``IM00012``, ``slice_3.dcm``), or a name osteoplan itself writes
    (``ct.nii.gz``, ``plan.json``, ``labels.nii.gz``...). Anything else -- which may be a
    patient's name or ID -- is shown as ``<folder>`` for a folder and ``<file>`` otherwise.

    Parameters
    ----------
    path : str or path-like
    kind : ``"folder"``, ``"file"`` or None
        What the message speaks of (a folder that does not exist yet is still a folder); None: ``"folder"`` when
        *path* is an existing folder, else ``"file"``.
    """
    import re
    from pathlib import Path

    global _GENERIC_NAME
    if _GENERIC_NAME is None:
        _GENERIC_NAME = re.compile(
            r"^(?:(?:im|img|image|i|ct|slice|file|frame|series|dicom|dcm|seg|sr)[_-]?)?[0-9a-f._-]{0,12}"
            r"(?:\.(?:dcm|ima|nii|nii\.gz|nrrd|seg\.nrrd|zip|json|toml|mrk\.json|png|pdf|html))?$"
            r"|^(?:ct|labels|landmarks|plan|report|protocol|mask)(?:[._-][a-z0-9]+)*$",
            re.IGNORECASE,
        )
    name = Path(str(path)).name
    if name and _GENERIC_NAME.match(name) and not re.search(r"\d{6,}", name):
        return name
    if kind is None:
        try:
            kind = "folder" if Path(str(path)).is_dir() else "file"
        except OSError:
            kind = "file"
    return "<folder>" if kind == "folder" else "<file>"
