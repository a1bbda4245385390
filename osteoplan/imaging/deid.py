"""De-identification of DICOM: PS3.15 Annex E Basic Profile via dicognito, plus an independent check.

What is done, in order, to every DICOM file of the input folder
----------------------------------------------------------------
1. ``dicognito.anonymizer.Anonymizer`` (the maintained implementation of the DICOM PS3.15
   Annex E Basic Application Level Confidentiality Profile used here; not hand-rolled):
   names, IDs, institution, address, station replaced with consistent fakes; every instance
   UID remapped by a keyed hash (same key -> same mapping, so a study stays consistent across
   runs); dates shifted by one offset for the whole run (``--date-shift-days`` or derived
   from the key). Sets PatientIdentityRemoved = YES and DeidentificationMethod.
2. What dicognito leaves and the profile removes: every private element (private blocks,
   recursively), free-text comments and descriptions (:data:`REMOVE_KEYWORDS`, Annex E
   action X), PatientBirthDate emptied (action Z).
3. Written to ``OUT/<series index:03d>/<instance:04d>.dcm`` (no identifier in any file name)
   through :func:`osteoplan.atomic.atomic_dir`: an interruption leaves no output folder.
4. Independent verification (:func:`verify_files`, this module's own code, not dicognito):
   the identifying values of the INPUT (:func:`collect_identifying_values`) are searched in
   every element of every output file (file meta, nested sequences, private tags) and in the
   raw bytes of each file; any survivor raises :class:`DeidentificationError` naming the
   attribute it came from (never the value) and nothing is written.

Reference: DICOM PS3.15 2024b, Annex E, Table E.1-1 (Basic Profile actions X/Z/D/U).
"""

from __future__ import annotations

import os
import re
import secrets
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

from osteoplan.errors import DeidentificationError, InputError, safe_path

#: Attributes whose input values are identifying (searched for in the output).
IDENTIFYING_KEYWORDS: tuple[str, ...] = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "OtherPatientIDs", "OtherPatientNames",
    "PatientBirthName", "PatientMotherBirthName", "PatientAddress", "PatientTelephoneNumbers",
    "PatientTelecomInformation", "IssuerOfPatientID", "MedicalRecordLocator", "ResponsiblePerson",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "AccessionNumber", "StationName",
    "OperatorsName", "ReferringPhysicianName", "ReferringPhysicianAddress", "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy", "PhysiciansOfRecord", "RequestingPhysician", "ScheduledPerformingPhysicianName",
    "ImageComments", "StudyComments", "PatientComments", "AdditionalPatientHistory", "RequestedProcedureComments",
    "ImagingServiceRequestComments", "InterpretationText", "AcquisitionComments", "DeviceSerialNumber",
    "PerformedProcedureStepID", "RequestedProcedureID", "ScheduledProcedureStepID", "StudyID",
    "PlacerOrderNumberImagingServiceRequest", "FillerOrderNumberImagingServiceRequest", "MilitaryRank",
    "BranchOfService", "Occupation", "CountryOfResidence", "RegionOfResidence", "EthnicGroup",
    "AdmissionID", "ServiceEpisodeID", "PatientInstitutionResidence", "ReasonForStudy", "VisitComments",
    "FrameComments", "CommentsOnThePerformedProcedureStep", "ReferringPhysicianTelephoneNumbers",
    "ResponsibleOrganization", "PerformedStationName", "ScheduledStationName", "ReviewerName",
)
#: PN attributes of the patient: each name component (>= 4 letters) is searched for as well.
PATIENT_NAME_KEYWORDS = {"PatientName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName"}
#: Dates that must not survive unshifted.
DATE_KEYWORDS = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "PatientBirthDate")
#: Instance UIDs that must be remapped.
UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
                "MediaStorageSOPInstanceUID", "ReferencedSOPInstanceUID")

#: Removed after dicognito (Annex E action X, free text and descriptors dicognito does not touch).
REMOVE_KEYWORDS: tuple[str, ...] = (
    "ImageComments", "StudyComments", "PatientComments", "AdditionalPatientHistory", "RequestedProcedureComments",
    "ImagingServiceRequestComments", "InterpretationText", "AcquisitionComments", "DerivationDescription",
    "StudyDescription", "SeriesDescription", "PerformedProcedureStepDescription", "RequestedProcedureDescription",
    "ProtocolName", "DeviceSerialNumber", "PatientAge", "PatientSize", "PatientWeight", "EthnicGroup",
    "MedicalAlerts", "Allergies", "SmokingStatus", "PregnancyStatus", "LastMenstrualDate", "PatientState",
    "SpecialNeeds", "OtherPatientIDsSequence", "RequestAttributesSequence", "ReferencedPatientSequence",
    "ReferencedStudySequence", "ReferencedPerformedProcedureStepSequence", "PatientTelephoneNumbers",
    "PatientAddress", "CountryOfResidence", "RegionOfResidence", "PersonName", "TextComments",
    "ContentCreatorName", "IssuerOfPatientID", "PatientBirthTime", "InstitutionalDepartmentName",
    "PerformingPhysicianName", "NameOfPhysiciansReadingStudy", "PhysiciansOfRecord",
    "ScheduledProcedureStepDescription", "InstitutionCodeSequence", "ReasonForTheRequestedProcedure",
    "ReasonForStudy", "AdmittingDiagnosesDescription", "AdmittingDiagnosesCodeSequence", "AdmissionID",
    "ServiceEpisodeID", "ServiceEpisodeDescription", "VisitComments", "PatientInstitutionResidence",
    "OperatorIdentificationSequence", "PerformingPhysicianIdentificationSequence",
    "PhysiciansOfRecordIdentificationSequence", "ReferringPhysicianIdentificationSequence",
    "PhysiciansReadingStudyIdentificationSequence", "ReferringPhysicianTelephoneNumbers",
    "ReferringPhysicianAddress", "ResponsibleOrganization", "ResponsiblePerson", "FrameComments",
    "CommentsOnThePerformedProcedureStep", "ImagePresentationComments", "PatientSexNeutered",
    "OtherPatientNames", "OtherPatientIDs", "PatientBirthName", "PatientMotherBirthName", "MilitaryRank",
    "BranchOfService", "Occupation", "MedicalRecordLocator", "PatientReligiousPreference", "PerformedLocation",
    "ScheduledStudyLocation", "ScheduledStudyLocationAETitle", "CurrentPatientLocation", "AssignedLocation",
    "RequestedContrastAgent", "ReviewerName", "VerifyingOrganization", "PerformedStationName",
    "PerformedStationAETitle", "ScheduledStationName", "ScheduledStationAETitle", "ModifiedImageDescription",
    "AcquisitionDeviceProcessingDescription", "DetectorID", "GantryID", "PlateID", "CassetteID",
)
#: Largest date shift accepted (days; 100 years keeps every DICOM date within years 1..9999).
MAX_DATE_SHIFT_DAYS = 36500

#: Emptied (Annex E action Z). PatientSex is Z in the Basic Profile (kept only under the Retain
#: Patient Characteristics Option, which is not claimed here; dicognito leaves it as is).
EMPTY_KEYWORDS: tuple[str, ...] = ("PatientBirthDate", "PatientSex")

_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
_MIN_LEN = 4  # shorter values (sex "F", study ID "1") are not searched: they would match anywhere


@dataclass
class IdentifyingValues:
    """Identifying strings found in the input, by the attribute they came from (never printed)."""

    by_attribute: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, attribute: str, value: Any) -> None:
        text = str(value).strip().strip("\x00").strip()
        if len(text) >= _MIN_LEN:
            self.by_attribute[attribute].add(text)

    def update(self, other: "IdentifyingValues") -> None:
        for k, vals in other.by_attribute.items():
            self.by_attribute[k].update(vals)

    def items(self) -> Iterable[tuple[str, str]]:
        for k in sorted(self.by_attribute):
            for v in sorted(self.by_attribute[k]):
                yield k, v

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_attribute.values())


def _date_variants(da: str) -> list[str]:
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", da.strip())
    if not m:
        return [da]
    y, mo, d = m.groups()
    return [da, f"{d}/{mo}/{y}", f"{mo}/{d}/{y}", f"{y}-{mo}-{d}", f"{d}.{mo}.{y}", f"{d}-{mo}-{y}"]


def collect_identifying_values(ds: Any, include_dates: bool = True) -> IdentifyingValues:
    """Collect the identifying values of one dataset (all levels, private tags included).

    Parameters
    ----------
    ds : pydicom.Dataset
    include_dates : also collect study/series/acquisition/content dates (which must be shifted)

    Returns
    -------
    IdentifyingValues
        Whole values of :data:`IDENTIFYING_KEYWORDS` and of every PN element; components of
        the patient's names; birth date in common spellings (DD/MM/YYYY ...); instance UIDs;
        every text value of a private element. Values shorter than 4 characters are ignored.
    """
    from pydicom.datadict import keyword_for_tag

    found = IdentifyingValues()
    ident = set(IDENTIFYING_KEYWORDS)

    def visit(dataset, elem):
        kw = elem.keyword or keyword_for_tag(elem.tag) or ""
        if elem.VR == "SQ" or elem.tag == 0x7FE00010:
            return
        if elem.tag.is_private:
            if elem.tag.element < 0x0100:  # private creator: a vendor label, removed with its block
                return
            if elem.VR in _TEXT_VRS or elem.VR in ("UN", "OB") and isinstance(elem.value, bytes) and len(elem.value) < 256:
                vals = elem.value if elem.VR in _TEXT_VRS else [bytes(elem.value).decode("latin-1", "ignore")]
                for v in (vals if isinstance(vals, (list, tuple)) or type(vals).__name__ == "MultiValue" else [vals]):
                    found.add(f"private {elem.tag}", v)
            return
        values = elem.value if isinstance(elem.value, (list, tuple)) or type(elem.value).__name__ == "MultiValue" \
            else [elem.value]
        if elem.VR == "PN" or kw in ident:
            for v in values:
                if v is None:
                    continue
                found.add(kw or str(elem.tag), v)
                if kw in PATIENT_NAME_KEYWORDS:
                    for comp in re.split(r"[\^=]", str(v)):
                        found.add(kw, comp)
                if kw == "PatientBirthDate":
                    for dv in _date_variants(str(v)):
                        found.add(kw, dv)
        elif include_dates and kw in DATE_KEYWORDS:
            for v in values:
                found.add(kw, v)
        elif kw in UID_KEYWORDS:
            for v in values:
                found.add(kw, v)

    ds.walk(visit)
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.walk(visit)
    return found


def _element_text(elem) -> str | None:
    v = elem.value
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("latin-1", "ignore")
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        return "\\".join(str(x) for x in v)
    return str(v)


def verify_dataset(ds: Any, forbidden: IdentifyingValues, where: str = "output") -> None:
    """Raise :class:`DeidentificationError` if any forbidden value survives in any element of *ds*.

    Every element is visited (file meta, nested sequences at any depth, private tags); the
    match is a case-insensitive substring search. The message names the source attribute and
    the output element, never the value.
    """
    from pydicom.datadict import keyword_for_tag

    needles = [(attr, val.lower()) for attr, val in forbidden.items()]
    texts: list[tuple[Any, str]] = []

    def visit(dataset, elem):
        if elem.VR == "SQ" or elem.tag == 0x7FE00010:
            return
        text = _element_text(elem)
        if text:
            texts.append((elem, text.lower()))

    ds.walk(visit)
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.walk(visit)
    blob = "\x00".join(t for _, t in texts)  # one search per value; locate the element only on a hit
    for attr, val in needles:
        if val in blob:
            elem = next((e for e, t in texts if val in t), None)
            name = (elem.keyword or keyword_for_tag(elem.tag) or f"private element {elem.tag}") if elem is not None \
                else "several elements"
            raise DeidentificationError(
                f"De-identification verification failed: a value of the input's {attr} survives in {name} of "
                f"{where}. Nothing was written; report this input type to the osteoplan maintainers.")


_PRINTABLE_RUNS = re.compile(rb"[\x20-\x7e\x80-\xff]{4,}")


def verify_bytes(data: bytes, forbidden: IdentifyingValues, where: str) -> None:
    """Raise :class:`DeidentificationError` if a forbidden value occurs in raw bytes (latin-1/UTF-8, any case)."""
    # identifying text is made of printable characters: search the printable runs of the file
    # (all of the header, the few printable runs of binary pixel data) instead of every byte
    low = b"\x00".join(_PRINTABLE_RUNS.findall(data)).lower()
    for attr, val in forbidden.items():
        for enc in ("latin-1", "utf-8"):
            try:
                needle = val.lower().encode(enc)
            except UnicodeEncodeError:
                continue
            if needle in low:
                raise DeidentificationError(
                    f"De-identification verification failed: a value of the input's {attr} survives in the raw "
                    f"bytes of {where}. Nothing was written; report this input type to the osteoplan maintainers.")


def _bytes_outside_pixel_data(path: Path, raw: bytes) -> bytes:
    """*raw* without the value of the PixelData element.

    Pixel bytes are image samples, not text: compressed (JPEG 2000, JPEG-LS...) pixel data is
    near-random, so a 4-letter name part such as "ANNE" turns up in it by chance (about once in a
    few hundred MB, case-insensitively) and would fail a large study for nothing. The parsed check
    (:func:`verify_dataset`) still sees every element; text in the pixels (burned-in annotation)
    is refused separately.
    """
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), defer_size=64)
        e = ds.get_item(0x7FE00010, keep_deferred=True)
        start = int(e.value_tell)
    except Exception:
        return raw
    end = len(raw) if e.length == 0xFFFFFFFF else min(len(raw), start + int(e.length))
    return raw[:start] + b"\x00" + raw[end:]


def verify_files(files: Iterable[Path], forbidden: IdentifyingValues, root: Path | None = None) -> int:
    """Verify every output file: all elements (parsed) and the raw bytes outside the pixel data.

    Returns the number of files checked.
    """
    import pydicom

    n = 0
    for f in files:
        where = f"output file {f.relative_to(root) if root else f.name}"
        verify_dataset(pydicom.dcmread(f), forbidden, where)  # names the element
        raw = Path(f).read_bytes()
        verify_bytes(_bytes_outside_pixel_data(Path(f), raw), forbidden, where)  # what the parser would not show
        n += 1
    return n


def pixel_data_complete(ds: Any) -> bool:
    """True when the pixel data of *ds* holds the whole image (False for a truncated file).

    Native (uncompressed) transfer syntaxes: the PixelData length must reach
    Rows x Columns x SamplesPerPixel x NumberOfFrames x BitsAllocated / 8 bytes. Compressed
    (encapsulated) ones are decoded once, since a cut fragment is only found by decoding.
    A dataset without PixelData is not an image: False.
    """
    data = ds.get("PixelData")
    if data is None:
        return False
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        compressed = bool(ts is not None and ts.is_compressed)
    except Exception:  # unknown transfer syntax: let the decoder decide
        compressed = True
    if not compressed:
        try:
            rows, cols = int(ds.Rows), int(ds.Columns)
            spp = int(ds.get("SamplesPerPixel", 1) or 1)
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            bits = int(ds.BitsAllocated)
        except (AttributeError, TypeError, ValueError):
            return False
        n = rows * cols * spp * frames
        expected = (n + 7) // 8 if bits == 1 else n * (bits // 8)
        return len(data) >= expected
    try:
        from pydicom.pixels import pixel_array

        pixel_array(ds)  # decoding detects cut fragments; not cached on the dataset (memory)
    except Exception:
        return False
    return True


# --------------------------------------------------------------------------- the profile
def make_anonymizer(key: str | None = None, date_shift_days: int | None = None):
    """A dicognito Anonymizer keyed by *key*; dates shifted by *date_shift_days* when given.

    Raises
    ------
    InputError
        ``date_shift_days == 0`` (the real dates would be kept).
    """
    from dicognito.anonymizer import Anonymizer
    from dicognito.datetimeanonymizer import DateTimeAnonymizer

    if date_shift_days is not None and int(date_shift_days) == 0:
        raise InputError("A date shift of 0 days keeps the real dates; give a non-zero --date-shift-days "
                         "or omit it (a shift is then derived from the key).")
    if date_shift_days is not None and abs(int(date_shift_days)) > MAX_DATE_SHIFT_DAYS:
        raise InputError(f"A date shift of {int(date_shift_days)} days would move dates out of the calendar DICOM "
                         f"can store; give at most {MAX_DATE_SHIFT_DAYS} days (100 years) either way.")
    if key is not None and not str(key).strip():
        raise InputError("The pseudonymisation key is empty, which anyone could guess; give a secret --key "
                         "(or set OSTEOPLAN_DEID_KEY), or omit it for a random one.")
    anon = Anonymizer(seed=key if key is not None else secrets.token_hex(16))
    if date_shift_days is not None:
        # first handler wins: replaces dicognito's own offset for DA/DT (and the paired TM)
        anon.add_element_handler(DateTimeAnonymizer(int(date_shift_days) * 24))
    return anon


_VALID_TEMPORAL = {
    "DA": re.compile(r"^\d{8}$"),
    "DT": re.compile(r"^\d{4}(\d{2}){0,5}(\.\d{1,6})?([+-]\d{4})?$"),
    "TM": re.compile(r"^\d{2}(\d{2}){0,2}(\.\d{1,6})?$"),
}


def blank_malformed_dates(ds: Any) -> int:
    """Empty every DA/DT/TM value that is not in DICOM format (e.g. ``14/02/1958``), in place.

    dicognito shifts dates by parsing them and stops with a ValueError on a malformed one; such a
    value cannot be shifted, so it is removed (Annex E action Z), which is the conservative choice.
    Returns the number of elements emptied.
    """
    n = 0

    def visit(dataset, elem):
        nonlocal n
        pattern = _VALID_TEMPORAL.get(elem.VR)
        if pattern is None or elem.value in (None, ""):
            return
        values = elem.value if isinstance(elem.value, (list, tuple)) or type(elem.value).__name__ == "MultiValue" \
            else [elem.value]
        if not all(pattern.match(str(v).strip()) for v in values):
            elem.value = ""
            n += 1

    ds.walk(visit)
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.walk(visit)
    return n


def apply_profile(ds: Any, anonymizer: Any) -> None:
    """Apply dicognito's Basic Profile then remove what it leaves (private tags, free text), in place.

    Dates dicognito cannot parse are emptied first (:func:`blank_malformed_dates`).
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    blank_malformed_dates(ds)
    anonymizer.anonymize(ds)
    ds.remove_private_tags()
    remove = set(REMOVE_KEYWORDS)

    def strip(dataset, elem):
        kw = elem.keyword
        if kw in remove:
            del dataset[elem.tag]
        elif kw in EMPTY_KEYWORDS:
            elem.value = ""

    ds.walk(strip)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "osteoplan+dicognito PS3.15 E Basic; private, free text removed"
    codes = []
    for value, meaning in (("113100", "Basic Application Confidentiality Profile"),
                           ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")):
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(codes)


_PSEUDO_TEXT_VRS = ("PN", "LO", "SH", "ST", "LT", "UT", "UC")
_CONSONANTS = "BCDFGHJKLMNPQRSTVWXZ"


def _text_values(ds: Any) -> dict[int, set[str]]:
    """Text values of *ds* (all levels), lower case, by tag: what the input itself said."""
    vals: dict[int, set[str]] = defaultdict(set)

    def visit(dataset, elem):
        if elem.VR in _PSEUDO_TEXT_VRS:
            text = _element_text(elem)
            if text:
                vals[int(elem.tag)].add(text.lower())

    ds.walk(visit)
    return vals


def neutralise_pseudonym_collisions(ds: Any, forbidden: IdentifyingValues, before: dict[int, set[str]]) -> int:
    """Replace generated pseudonyms that happen to contain a real identifying value, in place.

    dicognito draws fake names from name lists: a patient called ``LEE^ANNE^MARIE`` gets, for some
    keys, a fake operator or patient name such as ``JOANNE`` or ``ROSEMARIE``. The independent
    verification then (rightly) finds "ANNE" in the output and refuses the whole run -- for a
    fixed study key, every time. An identifying attribute (a ``PN`` or one of
    :data:`IDENTIFYING_KEYWORDS`) that the input had (*before*: the input's text values by tag),
    whose value the profile REPLACED, and whose new value contains a forbidden value, is such a
    collision: it is replaced by a hash code of consonants only (``PN``: ``FAMILY^GIVEN``), which
    cannot spell a name. Anything else -- a value the input already held, or an element the input
    did not have -- is never touched here: the verification must see it and fail loudly.

    Returns
    -------
    int
        Number of elements replaced.
    """
    import hashlib

    needles = [v.lower() for _, v in forbidden.items()]
    ident = set(IDENTIFYING_KEYWORDS)
    n = 0

    def visit(dataset, elem):
        nonlocal n
        if elem.VR not in _PSEUDO_TEXT_VRS:
            return
        if elem.VR != "PN" and elem.keyword not in ident:
            return
        original = before.get(int(elem.tag))
        text = _element_text(elem)
        if not original or not text or text.lower() in original or not any(x in text.lower() for x in needles):
            return
        h = hashlib.sha256(text.encode("utf-8", "replace")).digest()
        code = "".join(_CONSONANTS[b % len(_CONSONANTS)] for b in h[:12])
        elem.value = f"{code[:6]}^{code[6:]}" if elem.VR == "PN" else code[: 16 if elem.VR == "SH" else 12]
        n += 1

    ds.walk(visit)
    return n


@dataclass
class DeidReport:
    """What ``deidentify_folder`` did (counts only; nothing identifying)."""

    files_written: int
    series: int
    files_skipped: int
    identifying_values_checked: int
    date_shift_days: int | None
    output: str
    #: images whose pixel data is shorter than the image size (left out of the output; counted in files_skipped)
    files_truncated: int = 0
    #: DICOM objects without pixel data (structure sets, reports, DICOMDIR): not copied (counted in files_skipped)
    files_without_image: int = 0


def deidentify_folder(src: str | os.PathLike, dst: str | os.PathLike, key: str | None = None,
                      date_shift_days: int | None = None, overwrite: bool = False) -> DeidReport:
    """De-identify every DICOM file under *src* (recursively) into *dst*.

    Parameters
    ----------
    src : folder (or single file) of DICOM
    dst : output folder, created atomically; must not exist or be empty unless *overwrite*
    key : secret for UID remapping and the default date shift (same key -> same pseudonyms)
    date_shift_days : shift every date by this many days (non-zero); default derived from *key*
    overwrite : replace an existing *dst* (only after the new output is complete and verified)

    Returns
    -------
    DeidReport

    Raises
    ------
    InputError
        *src* missing, no DICOM file in it, *dst* non-empty without *overwrite*, *dst* inside *src*.
    DeidentificationError
        The independent verification found an identifying value of the input in the output
        (nothing is written).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    from osteoplan.atomic import atomic_dir
    from osteoplan.imaging.dicom_series import _list_files

    src_p, dst_p = Path(src), Path(dst)
    if not src_p.exists():
        raise InputError(f"Input not found: {safe_path(src_p)}. Check the path.")
    if src_p.is_dir() and dst_p.resolve().is_relative_to(src_p.resolve()):
        raise InputError("The output folder must not be inside the input folder; choose another output path.")
    if src_p.resolve().is_relative_to(dst_p.resolve()):
        # with --overwrite the output folder is replaced as a whole: the input (and anything next to it) would go
        raise InputError("The input is inside the output folder, which deid would replace; choose an output folder "
                         "outside the input's folders.")
    if dst_p.exists() and not dst_p.is_dir():
        raise InputError(f"The output {safe_path(dst_p)} is an existing file, not a folder; give a new folder path.")
    files = _list_files(src_p) if src_p.is_dir() else [src_p]
    datasets = []
    skipped = 0
    truncated = 0
    no_image = 0
    for f in files:
        try:
            ds = pydicom.dcmread(str(f))
            ds.PixelData  # noqa: B018 - force reading: truncated files fail here, not half-way through writing
        except AttributeError:  # DICOM without pixel data: structure set, report, DICOMDIR...
            skipped += 1
            no_image += 1
            continue
        except InvalidDicomError:
            skipped += 1
            continue
        except Exception:
            skipped += 1
            continue
        if not pixel_data_complete(ds):
            truncated += 1  # never copy a damaged image into a "clean" output series
            continue
        datasets.append(ds)
    if not datasets:
        extra = f" ({truncated} truncated image(s) skipped)" if truncated else ""
        raise InputError(f"No DICOM image found under {safe_path(src_p)}{extra}; nothing to de-identify.")
    burned = sum(1 for ds in datasets if str(ds.get("BurnedInAnnotation", "")).upper() == "YES")
    if burned:
        raise DeidentificationError(
            f"{burned} image(s) declare burned-in annotation (text drawn in the pixels), which the Basic Profile "
            "does not clean; remove those images (often screen captures) and run deid again.")
    forbidden = IdentifyingValues()
    for ds in datasets:
        forbidden.update(collect_identifying_values(ds))
    # output names: series index (order of first appearance) / instance rank inside the series
    series_order: dict[str, int] = {}
    members: dict[str, list[int]] = defaultdict(list)
    for i, ds in enumerate(datasets):
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        series_order.setdefault(uid, len(series_order) + 1)
        members[uid].append(i)
    names: dict[int, str] = {}
    for uid, idxs in members.items():
        idxs.sort(key=lambda i: (int(datasets[i].get("InstanceNumber", 0) or 0), i))
        for rank, i in enumerate(idxs, start=1):
            names[i] = f"{series_order[uid]:03d}/{rank:04d}.dcm"
    anonymizer = make_anonymizer(key, date_shift_days)
    try:
        with atomic_dir(dst_p, overwrite=overwrite) as tmp:
            written = []
            for i, ds in enumerate(datasets):
                before = _text_values(ds)
                apply_profile(ds, anonymizer)
                neutralise_pseudonym_collisions(ds, forbidden, before)
                out = tmp / names[i]
                out.parent.mkdir(parents=True, exist_ok=True)
                ds.save_as(str(out), enforce_file_format=True)
                written.append(out)
            verify_files(written, forbidden, root=tmp)
    except FileExistsError:
        raise InputError("The output folder exists and is not empty; choose a new folder or pass --overwrite.") from None
    except OSError as exc:
        raise InputError(f"Cannot write the output folder {safe_path(dst_p)} ({exc.strerror or type(exc).__name__}); "
                         "choose a folder you can write to, with enough free space.") from None
    return DeidReport(files_written=len(datasets), series=len(series_order), files_skipped=skipped + truncated,
                      identifying_values_checked=len(forbidden), date_shift_days=date_shift_days,
                      output=safe_path(dst_p), files_truncated=truncated, files_without_image=no_image)


# --------------------------------------------------------------------------- in memory
def pseudonymise_uids(uids: dict[str, str | None], key: str | None) -> dict[str, str | None]:
    """Map UIDs exactly as ``osteoplan deid --key KEY`` does (dicognito's keyed UID hash)."""
    from pydicom.dataset import Dataset

    anon = make_anonymizer(key)
    ds = Dataset()
    for kw, v in uids.items():
        if v:
            setattr(ds, kw, v)
    from pydicom.dataset import FileMetaDataset

    ds.file_meta = FileMetaDataset()
    anon.anonymize(ds)
    return {kw: (str(getattr(ds, kw)) if v else None) for kw, v in uids.items()}


def deidentify_volume(volume, files: list[Path], key: str | None = None):
    """The in-memory counterpart of :func:`deidentify_folder` for ``read_volume(..., deidentify=True)``.

    UIDs in ``volume.info`` are pseudonymised (same mapping as ``deid`` with the same key),
    free text is dropped when it carries an identifying value, and the result is verified:
    no identifying value of the input may remain in the info or warnings.

    Raises
    ------
    DeidentificationError
        An identifying value survived (should not happen; nothing is returned).
    """
    import pydicom

    forbidden = IdentifyingValues()
    for f in files:
        forbidden.update(collect_identifying_values(pydicom.dcmread(str(f), stop_before_pixels=True)))
    info = volume.info
    mapped = pseudonymise_uids({"StudyInstanceUID": info.study_uid, "SeriesInstanceUID": info.series_uid,
                                "FrameOfReferenceUID": info.frame_of_reference_uid}, key)
    needles = [v.lower() for _, v in forbidden.items()]

    from osteoplan.imaging.dicom_series import REMOVED_TEXT

    def clean(text: str | None) -> str | None:
        if text is None or text == REMOVED_TEXT:  # free text that carried identifiers is dropped
            return None
        low = text.lower()
        return None if any(n in low for n in needles) else text

    def scrub(text: str) -> str:
        out = text
        for n in sorted(needles, key=len, reverse=True):
            out = re.sub(re.escape(n), "<removed>", out, flags=re.IGNORECASE)
        return out

    new_info = replace(info, series_uid=mapped["SeriesInstanceUID"], study_uid=mapped["StudyInstanceUID"],
                       frame_of_reference_uid=mapped["FrameOfReferenceUID"],
                       series_description=clean(info.series_description), kernel=clean(info.kernel))
    vol = replace(volume, info=new_info, warnings=tuple(scrub(w) for w in volume.warnings))
    blob = repr(vol.info.to_dict()) + "\n".join(vol.warnings)
    verify_bytes(blob.encode("utf-8"), forbidden, "the de-identified volume metadata")
    return vol
