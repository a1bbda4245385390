"""De-identification of DICOM: PS3.15 Annex E Basic Profile via dicognito, plus an independent check.

What is done, in order, to every DICOM file of the input folder
----------------------------------------------------------------
1. ``dicognito.anonymizer.Anonymizer`` (the maintained implementation of the DICOM PS3.15
   Annex E Basic Application Level Confidentiality Profile used here; not hand-rolled):
   names, IDs, institution, address, station replaced with consistent fakes; every instance
   UID remapped by a keyed hash (same key -> same mapping, so a study stays consistent across
   runs); dates shifted by one offset for the whole run (``--date-shift-days`` or derived
   from the key). Sets PatientIdentityRemoved = YES and DeidentificationMethod.
2. What dicognito leaves, by PS3.15 Table E.1-1 (edition :data:`BASIC_PROFILE_EDITION`, the
   machine-readable copy kept by the ``dicom-anonymizer`` package, not a hand-typed list): every
   listed attribute at any depth gets its action (X removed, Z emptied, D dummy, U remapped; see
   :func:`apply_basic_profile_table`); every private element removed; public tags unknown to the
   data dictionary removed; overlay (60xx) and curve (50xx) groups removed (graphics that may
   carry drawn text; an overlay inside the pixel data's unused bits is refused like burned-in
   annotation); the file meta reduced to :data:`FILE_META_KEPT` (AE titles, PrivateInformation
   removed); then :data:`REMOVE_KEYWORDS` removed and :data:`EMPTY_KEYWORDS` emptied.
3. Written to ``OUT/<series index:03d>/<instance:04d>.dcm`` (no identifier in any file name)
   through :func:`osteoplan.atomic.atomic_dir`: an interruption leaves no output folder; the
   folder carries osteoplan's manifest and ``--overwrite`` replaces only an earlier deid output.
4. Independent verification (:func:`verify_files`, this module's own code, not dicognito):
   the identifying values of the INPUT (:func:`collect_identifying_values`; the patient's name by
   the short/non-Latin rule of :func:`name_needles`) are searched in every element of every output
   file (file meta, nested sequences, private tags) and in the raw bytes of each file decoded as
   latin-1, UTF-8 and its declared character set; the output is checked against Table E.1-1
   (:func:`profile_violations`: no X attribute, no private/unknown/overlay element, no input value
   kept in a Z/D/U attribute, file meta clean); any survivor raises :class:`DeidentificationError`
   naming the attribute it came from (never the value) and nothing is written.

Reference: DICOM PS3.15 2026c, Annex E, Table E.1-1 (Basic Profile actions X/Z/D/U), through
``dicom-anonymizer`` 2.1.0 (``dicomfields_2026c``).
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
    "TextValue",  # X in earlier editions of Table E.1-1; free text wherever a sequence that is kept holds it
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
    #: short (2-3 letter) name parts of alphabetic scripts, searched as whole words in narrative text only
    #: (see :func:`name_needles`)
    words_by_attribute: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, attribute: str, value: Any, min_len: int = _MIN_LEN) -> None:
        text = str(value).strip().strip("\x00").strip()
        if len(text) >= min_len:
            self.by_attribute[attribute].add(text)

    def add_word(self, attribute: str, word: str) -> None:
        self.words_by_attribute[attribute].add(word)

    def update(self, other: "IdentifyingValues") -> None:
        for k, vals in other.by_attribute.items():
            self.by_attribute[k].update(vals)
        for k, vals in other.words_by_attribute.items():
            self.words_by_attribute[k].update(vals)

    def word_items(self) -> Iterable[tuple[str, str]]:
        for k in sorted(self.words_by_attribute):
            for v in sorted(self.words_by_attribute[k]):
                yield k, v

    def word_pattern(self) -> "re.Pattern[str] | None":
        """One case-insensitive regular expression matching any short name part as a whole word."""
        words = sorted({w.lower() for _, w in self.word_items()}, key=len, reverse=True)
        if not words:
            return None
        return re.compile(r"(?<![^\W\d_])(?:" + "|".join(map(re.escape, words)) + r")(?![^\W\d_])", re.IGNORECASE)

    def items(self) -> Iterable[tuple[str, str]]:
        for k in sorted(self.by_attribute):
            for v in sorted(self.by_attribute[k]):
                yield k, v

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_attribute.values())


#: Scripts written without spaces between words, in which a name part of 2 characters is a whole name
#: (山田, 太郎, 민준): Unicode character-name prefixes.
_UNSPACED_SCRIPTS = ("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH", "HIRAGANA", "KATAKANA", "HANGUL")
#: VRs holding narrative text (a sentence in which a name can be written): short name parts are searched there.
NARRATIVE_VRS = frozenset({"PN", "ST", "LT", "UT", "UC"})


def _unspaced(text: str) -> bool:
    import unicodedata

    return any(unicodedata.name(ch, "").startswith(_UNSPACED_SCRIPTS) for ch in text)


def name_needles(pn: str) -> tuple[set[str], set[str]]:
    """What to search for in the output for one patient name (DICOM PN, all component groups).

    The rule (short and non-Latin name parts)
    -----------------------------------------
    A PN value has up to three component groups (alphabetic ``=`` ideographic ``=`` phonetic), each
    ``family^given^middle^prefix^suffix``; a component may hold several words ("ANNE MARIE").

    * Scripts written without spaces (Han, kana, hangul): every part of >= 2 characters is searched as a
      substring everywhere (山田, 太郎, 민준); a 1-character part (the family names 王, 金, 김) is too common a
      character to be searched alone and is covered by the family+given spellings (王伟, 김민준, 山田太郎,
      given+family too), which are searched as substrings.
    * Alphabetic scripts (Latin, Greek, Cyrillic...): parts of >= 4 letters are searched as substrings
      everywhere (as before); the family+given spellings ("HU JUN", "JUN HU", "HU, JUN", "HU^JUN") as
      substrings everywhere; parts of 2-3 letters (LI, HU, LEE, ANN) returned as *words*: searched as whole
      words (no letter either side) in narrative text only (:data:`NARRATIVE_VRS`: PN, ST, LT, UT, UC),
      because coded and device values collide with them (RescaleType "HU", Manufacturer "GE MEDICAL
      SYSTEMS" for a patient named Hu or Ge) and a refusal there would block every scan of that patient
      for nothing. 1-letter parts (initials) are never searched alone.

    Returns
    -------
    substrings : set of str
        Searched as case-insensitive substrings (parsed elements and raw bytes).
    words : set of str
        Searched as whole words in narrative-text elements.
    """
    substrings: set[str] = set()
    words: set[str] = set()
    for group in str(pn).split("="):
        comps = [c.strip() for c in group.split("^")]
        if not any(comps):
            continue
        unspaced = _unspaced(group)
        min_len = 2 if unspaced else _MIN_LEN
        whole = " ".join(c for c in comps if c)
        if len(whole) >= min_len:
            substrings.add(whole)
        family, given = (comps + ["", ""])[:2]
        if family and given:
            joins = ("", " ") if unspaced else (" ", ", ", "^", ",")
            for a, b in ((family, given), (given, family)):
                for j in joins:
                    if len(a + j + b) >= min_len:
                        substrings.add(a + j + b)
        for comp in comps:
            for part in [comp] + comp.split():
                part = part.strip(" .,-'")
                if len(part) >= min_len:
                    substrings.add(part)
                elif not unspaced and len(part) >= 2 and any(ch.isalpha() for ch in part):
                    words.add(part)
    return substrings, words


def _date_variants(da: str) -> list[str]:
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", da.strip())
    if not m:
        return [da]
    y, mo, d = m.groups()
    return [da, f"{d}/{mo}/{y}", f"{mo}/{d}/{y}", f"{y}-{mo}-{d}", f"{d}.{mo}.{y}", f"{d}-{mo}-{y}"]


#: Deepest sequence nesting de-identification walks (levels). Real objects nest a handful of levels (SR content
#: trees the most); a deliberately deep nest would exhaust the stack. Configurable default, no published source.
MAX_DEID_SEQUENCE_DEPTH = 32


def _check_readable(ds: Any, number: int) -> None:
    """Refuse an image whose elements cannot all be parsed, or whose sequences nest too deep (iterative walk).

    De-identification must see every value to remove it: an element pydicom cannot decode (a damaged VR or
    length) could hide identifying text, so the image is refused rather than copied.

    Raises
    ------
    DeidentificationError
        Naming the image by its rank in the input and the element's tag (never a value or a path).
    """
    stack = [(ds, 0)]
    while stack:
        cur, depth = stack.pop()
        if depth > MAX_DEID_SEQUENCE_DEPTH:
            raise DeidentificationError(
                f"image {number}: sequences nested deeper than {MAX_DEID_SEQUENCE_DEPTH} levels; it cannot be "
                "de-identified safely: remove that file and run deid again.")
        for tag in list(cur.keys()):
            try:
                elem = cur[tag]
                value = elem.value
            except Exception:  # noqa: BLE001 - any parse failure of untrusted bytes
                raise DeidentificationError(
                    f"image {number}: element ({int(tag) >> 16:04X},{int(tag) & 0xFFFF:04X}) is damaged and cannot be "
                    "read, so it cannot be de-identified safely: remove or repair that file and run deid again.") from None
            if elem.VR == "SQ":
                stack.extend((item, depth + 1) for item in value)


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
                    substrings, words = name_needles(str(v))
                    for needle in substrings:
                        found.add(kw, needle, min_len=1)
                    for w in words:
                        found.add_word(kw, w)
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


def verify_dataset(ds: Any, forbidden: IdentifyingValues, where: str = "output",
                   input_values: dict[int, set[str]] | None = None) -> None:
    """Raise :class:`DeidentificationError` if any forbidden value survives in any element of *ds*,
    or if *ds* breaks the Basic Profile (:func:`profile_violations`).

    Every element is visited (file meta, nested sequences at any depth, private tags); the
    identifying values are searched as case-insensitive substrings, the short name parts
    (:func:`name_needles`) as whole words in narrative-text elements (:data:`NARRATIVE_VRS`).
    *input_values*: the input dataset's values of Table E.1-1 attributes (:func:`_table_input_values`),
    which must not be kept. The message names the source attribute and the output element, never
    the value.

    Raises
    ------
    DeidentificationError
        On the first survivor found.
    """
    from pydicom.datadict import keyword_for_tag

    needles = [(attr, val.lower()) for attr, val in forbidden.items()]
    words = forbidden.word_pattern()
    word_attr = {w.lower(): a for a, w in forbidden.word_items()}
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

    def fail(attr: str, elem) -> None:
        name = (elem.keyword or keyword_for_tag(elem.tag) or f"private element {elem.tag}") if elem is not None \
            else "several elements"
        raise DeidentificationError(
            f"De-identification verification failed: a value of the input's {attr} survives in {name} of "
            f"{where}. Nothing was written; report this input type to the osteoplan maintainers.")

    blob = "\x00".join(t for _, t in texts)  # one search per value; locate the element only on a hit
    for attr, val in needles:
        if val in blob:
            fail(attr, next((e for e, t in texts if val in t), None))
    if words is not None:
        for elem, t in texts:
            if elem.VR in NARRATIVE_VRS:
                m = words.search(t)
                if m:
                    fail(word_attr.get(m.group(0).lower(), "patient name"), elem)
    problems = profile_violations(ds, input_values)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DeidentificationError(
            f"De-identification verification failed: {problems[0]}{more} in {where}. Nothing was written; "
            "report this input type to the osteoplan maintainers.")


def _declared_encodings(raw: bytes) -> list[str]:
    """Python codecs of the SpecificCharacterSet declared in *raw* (a DICOM file), [] when none/unreadable."""
    import io

    import pydicom
    from pydicom.charset import convert_encodings

    try:
        ds = pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True, specific_tags=["SpecificCharacterSet"])
        cs = ds.get("SpecificCharacterSet")
    except Exception:
        return []
    if not cs:
        return []
    try:
        return list(convert_encodings(list(cs) if not isinstance(cs, str) else [cs]))
    except Exception:
        return []


def _decoded_texts(data: bytes, encodings: list[str]) -> list[str]:
    """*data* decoded as latin-1, UTF-8 and the declared character set(s) (ISO 2022 escape sequences
    followed through the whole byte string), lower case, undecodable bytes replaced."""
    import warnings

    from pydicom.charset import decode_bytes

    out = [data.decode("latin-1").lower(), data.decode("utf-8", "replace").lower()]
    if encodings:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out.append(decode_bytes(data, encodings, set()).lower())
            except Exception:
                pass
            for enc in set(encodings):
                try:
                    out.append(data.decode(enc, "replace").lower())
                except (LookupError, ValueError):
                    pass
    return out


def verify_bytes(data: bytes, forbidden: IdentifyingValues, where: str, encodings: list[str] | None = None) -> None:
    """Raise :class:`DeidentificationError` if a forbidden value occurs in raw bytes, any case.

    The bytes are decoded as latin-1, UTF-8 and the file's declared character set *encodings*
    (Python codec names; e.g. ``iso2022_jp`` for ISO 2022 IR 87, whose kanji are 7-bit codes between
    escape sequences) and every identifying value is searched in each decoding.
    """
    texts = _decoded_texts(data, list(encodings or []))
    for attr, val in forbidden.items():
        low = val.lower()
        if any(low in t for t in texts):
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


def verify_files(files: Iterable[Path], forbidden: IdentifyingValues, root: Path | None = None,
                 input_values: dict[Path, dict[int, set[str]]] | None = None) -> int:
    """Verify every output file: all elements (parsed, :func:`verify_dataset`) and the raw bytes
    outside the pixel data (:func:`verify_bytes`, in the file's declared character set too).

    *input_values*: by output file, the input dataset's values of Table E.1-1 attributes
    (:func:`_table_input_values`), which must not be kept.

    Returns the number of files checked.
    """
    import pydicom

    n = 0
    for f in files:
        where = f"output file {f.relative_to(root) if root else f.name}"
        verify_dataset(pydicom.dcmread(f), forbidden, where,
                       input_values=(input_values or {}).get(Path(f)))  # names the element
        raw = Path(f).read_bytes()
        # what the parser would not show
        verify_bytes(_bytes_outside_pixel_data(Path(f), raw), forbidden, where, _declared_encodings(raw))
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


# --------------------------------------------------------------------------- PS3.15 Table E.1-1
#: Edition of DICOM PS3.15 whose Table E.1-1 (Basic Profile actions) is applied: the machine-readable
#: copy kept by the ``dicom-anonymizer`` package (KitwareMedical; module
#: ``dicomanonymizer.dicom_anonymization_databases.dicomfields_2026c``, generated from the standard's table).
BASIC_PROFILE_EDITION = "2026c"
_PROFILE_CATEGORIES = {"D_TAGS": "D", "Z_TAGS": "Z", "X_TAGS": "X", "U_TAGS": "U", "Z_D_TAGS": "Z/D",
                       "X_Z_TAGS": "X/Z", "X_D_TAGS": "X/D", "X_Z_D_TAGS": "X/Z/D", "X_Z_U_STAR_TAGS": "X/Z/U*"}
#: File meta elements kept (everything else, e.g. Source/Sending/Receiving AE titles, presentation
#: addresses, PrivateInformation, the source's implementation name, is removed; pydicom writes its own
#: Implementation Class UID / Version Name).
FILE_META_KEPT = frozenset({0x00020001, 0x00020002, 0x00020003, 0x00020010})
#: Dummy value written for action D on a text element that dicognito did not replace.
DUMMY_TEXT = "ANONYMIZED"
_DUMMY_TEXT_VRS = {"AE", "CS", "LO", "LT", "SH", "ST", "UC", "UT", "PN"}
_TEMPORAL_VRS = {"DA", "DT", "TM"}


@dataclass(frozen=True)
class BasicProfile:
    """The actions of PS3.15 Table E.1-1 by tag (``exact``) and for repeating groups (``masked``)."""

    exact: dict[int, str]
    masked: tuple[tuple[int, int, int, int, str], ...]  # (group, element, group mask, element mask, action)
    edition: str

    def action(self, tag: int) -> str | None:
        """The action code (``X``, ``Z``, ``D``, ``U``, ``Z/D``, ``X/Z``, ``X/D``, ``X/Z/D``, ``X/Z/U*``) or None."""
        tag = int(tag)
        a = self.exact.get(tag)
        if a is not None:
            return a
        g, e = tag >> 16, tag & 0xFFFF
        for mg, me, gm, em, act in self.masked:
            if (g & gm) == mg and (e & em) == me:
                return act
        return None


_PROFILE: BasicProfile | None = None


def basic_profile() -> BasicProfile:
    """PS3.15 Table E.1-1 (edition :data:`BASIC_PROFILE_EDITION`) as a :class:`BasicProfile` (cached).

    Source: the ``dicom-anonymizer`` package's machine-readable copy of the table (pinned in
    pyproject.toml), not a hand-typed list. A tag listed under two actions keeps the first of
    :data:`_PROFILE_CATEGORIES` order (none is, in this edition).
    """
    global _PROFILE
    if _PROFILE is None:
        import importlib

        table = importlib.import_module(
            f"dicomanonymizer.dicom_anonymization_databases.dicomfields_{BASIC_PROFILE_EDITION}")
        exact: dict[int, str] = {}
        masked = []
        for cat, act in _PROFILE_CATEGORIES.items():
            for t in getattr(table, cat):
                if len(t) == 2:
                    exact.setdefault((t[0] << 16) | t[1], act)
                else:
                    masked.append((t[0], t[1], t[2], t[3], act))
        _PROFILE = BasicProfile(exact=exact, masked=tuple(masked), edition=BASIC_PROFILE_EDITION)
    return _PROFILE


def _known_public(tag: int) -> bool:
    """True for a public tag that pydicom's data dictionary knows (repeating groups included)."""
    from pydicom.datadict import get_entry

    try:
        get_entry(tag)
    except KeyError:
        return False
    return True


def _overlay_or_curve(tag: int) -> bool:
    """Overlay (60xx) or curve (50xx, retired) group, even (public) groups only."""
    g = int(tag) >> 16
    return g % 2 == 0 and (g & 0xFF00) in (0x5000, 0x6000)


def embedded_overlays(ds: Any) -> bool:
    """True when an overlay plane is stored in the unused high bits of the pixel data (retired
    ACR-NEMA style: OverlayBitsAllocated != 1 or OverlayBitPosition != 0): like burned-in
    annotation, it cannot be removed by deleting elements."""
    for g in range(0x6000, 0x6020, 2):
        bits = ds.get((g, 0x0100))
        pos = ds.get((g, 0x0102))
        try:
            if (bits is not None and int(bits.value or 1) != 1) or (pos is not None and int(pos.value or 0) != 0):
                return True
        except (TypeError, ValueError):
            return True
    return False


def _walk_with_paths(ds: Any, fn, path: tuple = ()) -> None:
    """Call ``fn(dataset, elem, path)`` for every element at every depth; path = (tag, item index, tag, ...)."""
    for elem in list(ds):
        p = path + (int(elem.tag),)
        fn(ds, elem, p)
        if elem.VR == "SQ" and elem.tag in ds:
            for i, item in enumerate(elem.value or []):
                _walk_with_paths(item, fn, p + (i,))


def _values_by_path(ds: Any) -> dict[tuple, str | None]:
    """Every non-sequence element's value as text, by path (what the input said, before the profile)."""
    out: dict[tuple, str | None] = {}

    def visit(dataset, elem, path):
        if elem.VR != "SQ" and elem.tag != 0x7FE00010:
            out[path] = _element_text(elem)

    _walk_with_paths(ds, visit)
    return out


def _dummy(elem) -> Any:
    if elem.VR in _DUMMY_TEXT_VRS:
        return DUMMY_TEXT
    if elem.VR in ("IS", "DS"):
        return "0"
    return None  # binary and other VRs: zero length (never the original bytes)


def apply_basic_profile_table(ds: Any, before: dict[tuple, str | None]) -> int:
    """Apply PS3.15 Table E.1-1 to what dicognito left, at every depth; in place.

    *before*: :func:`_values_by_path` of the dataset before dicognito, so that a value dicognito
    replaced (fake name, remapped UID, shifted date, fake ID) is recognised as replaced.

    Actions
    -------
    * X: removed.
    * X/Z, X/D, X/Z/D: removed, except dates/times (DA/DT/TM) that dicognito shifted (Retain
      Longitudinal Temporal Information with Modified Dates Option) and UIDs it remapped.
    * X/Z/U* (Referenced/Source Image Sequence): kept, contained UIDs remapped (U), other contents
      handled by their own action, so a localizer reference stays consistent inside the study.
    * Z, Z/D: a value dicognito replaced is kept (a dummy is allowed); otherwise emptied.
    * D: a value dicognito replaced is kept; a sequence (Content Sequence, Graphic Annotation
      Sequence...) becomes one empty item (a dummy: nothing of the input; Text Value is not listed in
      this edition because its Content Sequence is replaced as a whole); other text gets
      :data:`DUMMY_TEXT`, numbers "0", binary values zero length.
    * U: dicognito remaps every UI but class and transfer syntax UIDs; kept.
    Beyond the table: public tags pydicom's dictionary does not know (a later edition's or
    invented ones, whose action cannot be known) are removed, and so are overlay (60xx) and curve
    (50xx) groups (graphics that can carry drawn text: treated like burned-in annotation).
    Private tags are left to ``Dataset.remove_private_tags``.

    Returns
    -------
    int
        Number of elements removed or changed.
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    profile = basic_profile()
    n = 0

    def visit(dataset, elem, path):
        nonlocal n
        tag = int(elem.tag)
        if elem.tag.is_private or tag == 0x7FE00010:
            return
        if _overlay_or_curve(tag) or not _known_public(tag):
            del dataset[elem.tag]
            n += 1
            return
        act = profile.action(tag)
        if act is None:
            return
        replaced = elem.VR != "SQ" and path in before and _element_text(elem) != before[path] \
            and not elem.is_empty
        if act == "X" or (act in ("X/Z", "X/D", "X/Z/D")
                          and not (replaced and elem.VR in _TEMPORAL_VRS | {"UI"})):
            del dataset[elem.tag]
            n += 1
        elif act in ("Z", "Z/D"):
            if not replaced and not elem.is_empty:
                elem.value = [] if elem.VR == "SQ" else None
                n += 1
        elif act == "D":
            if elem.VR == "SQ":
                if any(len(item) for item in elem.value or []):
                    elem.value = Sequence([Dataset()])  # a dummy: one empty item, nothing of the input
                    n += 1
            elif not replaced and not elem.is_empty:
                elem.value = _dummy(elem)
                n += 1

    _walk_with_paths(ds, visit)
    return n


def clean_file_meta(ds: Any) -> int:
    """Keep only :data:`FILE_META_KEPT` in the file meta (AE titles, PrivateInformation... removed)."""
    fm = getattr(ds, "file_meta", None)
    if fm is None:
        return 0
    gone = [e.tag for e in fm if int(e.tag) not in FILE_META_KEPT]
    for t in gone:
        del fm[t]
    return len(gone)


def _table_input_values(ds: Any) -> dict[int, set[str]]:
    """Non-empty input values of the attributes Table E.1-1 lists, by tag, at any depth (not sequences)."""
    profile = basic_profile()
    vals: dict[int, set[str]] = defaultdict(set)

    def visit(dataset, elem):
        if elem.VR == "SQ" or elem.tag.is_private or elem.tag == 0x7FE00010:
            return
        if profile.action(int(elem.tag)) is not None:
            text = _element_text(elem)
            if text and text.strip():
                vals[int(elem.tag)].add(text.strip())

    ds.walk(visit)
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.walk(visit)
    return vals


def profile_violations(ds: Any, input_values: dict[int, set[str]] | None = None) -> list[str]:
    """What in a de-identified dataset breaks the Basic Profile (independent check of the output).

    Checked at every depth: no private element; no public element unknown to the data dictionary;
    no overlay or curve group; file meta only :data:`FILE_META_KEPT` (+ group length and the
    implementation UID / name pydicom writes); no element whose Table E.1-1 action is X (X/Z, X/D,
    X/Z/D tolerated for dates/times and UIDs only, X/Z/U* for sequences only); and, given the input
    dataset's values (:func:`_table_input_values`), no non-empty value of a listed attribute equal to a
    value that attribute had in the input (a date not shifted, a UID not remapped, a Z/D value kept),
    :data:`DUMMY_TEXT` and times of day excepted (a whole-day date shift keeps the time).

    Returns
    -------
    list of str
        One description per violation (element names only, never values); empty when clean.
    """
    from pydicom.datadict import keyword_for_tag

    profile = basic_profile()
    problems: list[str] = []

    def name(elem) -> str:
        return elem.keyword or keyword_for_tag(elem.tag) or f"element {elem.tag}"

    def visit(dataset, elem):
        tag = int(elem.tag)
        if elem.tag.is_private:
            problems.append(f"private element {elem.tag}")
            return
        if _overlay_or_curve(tag):
            problems.append(f"overlay/curve element {name(elem)}")
            return
        if not _known_public(tag):
            problems.append(f"unknown public element {elem.tag}")
            return
        act = profile.action(tag)
        if act is None:
            return
        if act == "X" or (act in ("X/Z", "X/D", "X/Z/D") and elem.VR not in _TEMPORAL_VRS | {"UI"}) \
                or (act == "X/Z/U*" and elem.VR != "SQ"):
            problems.append(f"{name(elem)} (Table E.1-1 action {act}: must be removed)")
            return
        if elem.VR == "SQ" and act in ("D", "Z", "Z/D") and any(len(item) for item in elem.value or []):
            problems.append(f"{name(elem)} (Table E.1-1 action {act}: its input items are kept)")
            return
        if input_values and elem.VR not in ("SQ", "TM"):
            text = (_element_text(elem) or "").strip()
            if text and text != DUMMY_TEXT and text in input_values.get(tag, ()):
                problems.append(f"{name(elem)} (Table E.1-1 action {act}: the input's value is kept)")

    ds.walk(visit)
    fm = getattr(ds, "file_meta", None)
    if fm is not None:
        from pydicom import __version_info__
        from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

        written_by_pydicom = {0x00020012: str(PYDICOM_IMPLEMENTATION_UID),
                              0x00020013: f"PYDICOM {'.'.join(__version_info__)}"}
        for e in fm:
            t = int(e.tag)
            if t in FILE_META_KEPT or t == 0x00020000:
                continue
            if t in written_by_pydicom and str(e.value).strip() == written_by_pydicom[t]:
                continue
            problems.append(f"file meta element {name(e)}")
    return problems


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
    """Apply dicognito's Basic Profile then what it leaves, in place.

    Dates dicognito cannot parse are emptied first (:func:`blank_malformed_dates`); after dicognito:
    private tags removed, every action of PS3.15 Table E.1-1 (:func:`apply_basic_profile_table`:
    unknown public tags, overlays and curves removed too), file meta reduced to
    :data:`FILE_META_KEPT` (:func:`clean_file_meta`), then :data:`REMOVE_KEYWORDS` removed and
    :data:`EMPTY_KEYWORDS` emptied.
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    blank_malformed_dates(ds)
    before = _values_by_path(ds)
    anonymizer.anonymize(ds)
    ds.remove_private_tags()
    apply_basic_profile_table(ds, before)
    clean_file_meta(ds)
    remove = set(REMOVE_KEYWORDS)

    def strip(dataset, elem):
        kw = elem.keyword
        if kw in remove:
            del dataset[elem.tag]
        elif kw in EMPTY_KEYWORDS:
            elem.value = ""

    ds.walk(strip)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = f"osteoplan+dicognito PS3.15 E.1-1 ({BASIC_PROFILE_EDITION}) Basic Profile"
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
    words = forbidden.word_pattern()  # PN is narrative text: short name parts as whole words
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
        if not original or not text or text.lower() in original:
            return
        if not any(x in text.lower() for x in needles) and not (words is not None and words.search(text)):
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
    embedded = sum(1 for ds in datasets if embedded_overlays(ds))
    if embedded:
        raise DeidentificationError(
            f"{embedded} image(s) keep an overlay (graphics that may hold text) inside the pixel data's unused "
            "bits, which cannot be removed like other elements; remove those images and run deid again.")
    for i, ds in enumerate(datasets):
        _check_readable(ds, i + 1)
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
        with atomic_dir(dst_p, overwrite=overwrite, manifest="deid") as tmp:
            written = []
            input_values: dict[Path, dict[int, set[str]]] = {}
            for i, ds in enumerate(datasets):
                before = _text_values(ds)
                table_values = _table_input_values(ds)
                apply_profile(ds, anonymizer)
                neutralise_pseudonym_collisions(ds, forbidden, before)
                out = tmp / names[i]
                out.parent.mkdir(parents=True, exist_ok=True)
                ds.save_as(str(out), enforce_file_format=True)
                written.append(out)
                input_values[out] = table_values
            verify_files(written, forbidden, root=tmp, input_values=input_values)
    except FileExistsError:
        raise InputError("The output folder exists and is not empty; choose a new folder or pass --overwrite.") from None
    except OSError as exc:
        raise InputError(f"Cannot write the output folder {safe_path(dst_p, 'folder')} ({exc.strerror or type(exc).__name__}); "
                         "choose a folder you can write to, with enough free space.") from None
    return DeidReport(files_written=len(datasets), series=len(series_order), files_skipped=skipped + truncated,
                      identifying_values_checked=len(forbidden), date_shift_days=date_shift_days,
                      output=safe_path(dst_p, 'folder'), files_truncated=truncated, files_without_image=no_image)


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
