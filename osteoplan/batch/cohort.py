"""Read a cohort: a folder of case folders, or a CSV with one case per row.

A case is named by the cohort itself -- its sub-folder's name, or the CSV's ``case`` column (else the row
number, ``row-0001``...) -- never by anything read from the images, so that no identifying data enters the
results table, the logs or the output folder names. The site must make sure those names are not
identifying (pseudonyms or study numbers).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from osteoplan.errors import InputError

__all__ = ["Case", "read_cohort", "find_ct", "find_masks", "CASE_ID"]

#: A case name usable as a folder name on every file system (and short enough to read in a table).
CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

#: CT file names looked for in a case folder, in order (NIfTI / NRRD as the other commands read them).
CT_NAMES = ("ct.nii.gz", "ct.nii", "ct.nrrd", "ct.nhdr")

#: Sub-folders of a case folder that hold the CT as a DICOM series, in order.
DICOM_DIRS = ("dicom", "ct")

#: Sub-folders of a case folder that hold the provided masks, in order.
MASK_DIRS = ("masks", "segmentations", "seg")

#: CSV columns (``ct`` is required; the others may be absent or empty).
CSV_COLUMNS = ("case", "ct", "masks", "protocol", "level")


@dataclass(frozen=True)
class Case:
    """One case of a cohort.

    Attributes
    ----------
    case_id : str
        The case's name (folder name or CSV row id); the plan folder is ``OUT/<case_id>``.
    ct : str
        The CT input as ``osteoplan plan`` takes it (DICOM folder or zip, NIfTI or NRRD file).
    masks : str or None
        Provided masks (folder or file) or None.
    protocol : str or None
        Protocol name or ``.toml`` file for this case; None = the batch's ``--protocol``.
    level : str or None
        Vertebral level for this case (CSV column ``level``), None when not given.
    """

    case_id: str
    ct: str
    masks: str | None = None
    protocol: str | None = None
    level: str | None = None

    def spec_sha256(self, options: dict | None = None) -> str:
        """SHA-256 of the case's inputs and the batch options: a done marker is trusted only when they match.

        Paths are hashed, never stored (they may carry identifying data).
        """
        blob = json.dumps({"case": asdict(self), "options": options or {}}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


def _has_dicom(folder: Path) -> bool:
    for f in folder.iterdir():
        if f.is_file() and (f.suffix.lower() in (".dcm", ".ima") or f.suffix == ""):
            try:
                with open(f, "rb") as fh:
                    head = fh.read(132)
            except OSError:
                continue
            if head[128:132] == b"DICM" or f.suffix.lower() in (".dcm", ".ima"):
                return True
    return False


def find_ct(folder: Path) -> Path | None:
    """The CT of a case folder: ``ct.nii.gz`` (or ``ct.nii``, ``ct.nrrd``, ``ct.nhdr``), else a ``dicom/``
    or ``ct/`` sub-folder, else the folder itself when it holds DICOM files; None when there is none."""
    for name in CT_NAMES:
        if (folder / name).is_file():
            return folder / name
    for name in DICOM_DIRS:
        if (folder / name).is_dir():
            return folder / name
    if _has_dicom(folder):
        return folder
    return None


def find_masks(folder: Path, ct: Path) -> Path | None:
    """The provided masks of a case folder: a ``masks/`` (or ``segmentations/``, ``seg/``) sub-folder, else the
    case folder itself when it holds NIfTI/NRRD files next to a NIfTI/NRRD CT (the OpenKBP layout: the mask
    loader skips the CT image); None when there are none."""
    for name in MASK_DIRS:
        if (folder / name).exists():
            return folder / name
    if ct.parent == folder and ct.is_file():
        others = [f for f in folder.iterdir() if f.is_file() and f != ct
                  and f.name.endswith((".nii.gz", ".nii", ".nrrd"))]
        if others:
            return folder
    return None


def _read_folder(root: Path) -> list[Case]:
    cases: list[Case] = []
    skipped = 0
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        ct = find_ct(sub)
        if ct is None:
            skipped += 1
            continue
        if not CASE_ID.match(sub.name):
            raise InputError("COHORT: a case folder name is not usable as a case name (letters, digits, '.', '_', "
                             "'-', at most 64 characters); rename the case folders to study numbers.")
        masks = find_masks(sub, ct)
        cases.append(Case(sub.name, str(ct), None if masks is None else str(masks)))
    if not cases:
        raise InputError("COHORT: no case found (each case is a sub-folder holding ct.nii.gz, ct.nrrd or a DICOM "
                         "series); check the folder, or give a CSV with a 'ct' column.")
    return cases


def _read_csv(path: Path) -> list[Case]:
    base = path.parent
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip().lower() for f in (reader.fieldnames or [])]
            if "ct" not in fields:
                raise InputError("COHORT: the CSV has no 'ct' column; its header must name the columns "
                                 f"({', '.join(CSV_COLUMNS)}; only 'ct' is required).")
            rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]
    except UnicodeDecodeError:
        raise InputError("COHORT: the CSV is not UTF-8 text; save it as UTF-8 CSV.") from None
    cases: list[Case] = []
    seen: set[str] = set()
    for n, row in enumerate(rows, start=1):
        if not any(row.values()):
            continue
        case_id = row.get("case") or f"row-{n:04d}"
        if not CASE_ID.match(case_id):
            raise InputError(f"COHORT: row {n}: the case name is not usable (letters, digits, '.', '_', '-', at "
                             "most 64 characters); use study numbers, never patient names or IDs.")
        if case_id in seen:
            raise InputError(f"COHORT: row {n}: case name '{case_id}' appears twice; case names must be unique.")
        seen.add(case_id)
        if not row.get("ct"):
            raise InputError(f"COHORT: row {n} (case {case_id}): the 'ct' column is empty.")

        def resolve(value: str | None) -> str | None:
            if not value:
                return None
            p = Path(value).expanduser()
            return str(p if p.is_absolute() else base / p)

        protocol = row.get("protocol") or None
        if protocol and protocol.endswith(".toml"):
            protocol = resolve(protocol)
        cases.append(Case(case_id, resolve(row["ct"]), resolve(row.get("masks")), protocol,
                          row.get("level") or None))
    if not cases:
        raise InputError("COHORT: the CSV has no case rows.")
    return cases


def read_cohort(path: str | Path) -> list[Case]:
    """The cases of a cohort, in a stable order.

    Parameters
    ----------
    path : str or Path
        A folder of case folders (each holding ``ct.nii.gz``/``ct.nrrd``/a DICOM series, and optionally masks:
        a ``masks/`` sub-folder, or NIfTI masks next to the CT as in OpenKBP), or a CSV file with the columns
        ``ct`` (required), ``case``, ``masks``, ``protocol``, ``level`` (relative paths are read from the CSV's
        folder).

    Returns
    -------
    list of Case
        Folder cohorts sorted by folder name; CSV cohorts in row order. Folders without a CT are skipped.
        Paths are absolute (a Dask worker may run in another folder or on another host).

    Raises
    ------
    InputError
        The cohort does not exist, holds no case, or a case name is unusable or repeated.
    """
    p = Path(path).expanduser().absolute()  # absolute: workers on other hosts or folders see the same paths
    if p.is_dir():
        return _read_folder(p)
    if p.is_file() and p.suffix.lower() in (".csv", ".tsv", ".txt"):
        return _read_csv(p)
    if not p.exists():
        raise InputError("COHORT: not found; give a folder of case folders or a CSV file.")
    raise InputError("COHORT: not a folder or a .csv file; give a folder of case folders or a CSV file.")
