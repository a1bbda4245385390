"""Whose CT is this? Compare a CT's patient identity with the case it is attached to.

A plan made on another patient's CT is a wrong-patient error, one of the never-events of imaging. The CT's
identity comes from its DICOM Patient module (a file header or a PACS QIDO-RS answer), the case's from the
registry. :func:`check_ct_matches_case` compares the attributes both sides know and refuses a mismatch; its
messages and logs name the attributes that differ (``PatientID``, ``PatientName``, ``PatientBirthDate``,
``PatientSex``) and never their values.

Comparison rules (general, not tuned to any case):

* ``PatientID`` vs the case's hospital identifier: exact after trimming spaces and ignoring case (DICOM LO;
  hospitals differ in letter case between systems, never in digits).
* ``PatientName``: DICOM PN ``Family^Given^Middle^Prefix^Suffix``; family and given names compared after
  Unicode NFKD, accents removed, case folded, runs of spaces/hyphens/apostrophes collapsed to one space. A
  name component compares only when both sides have it.
* ``PatientBirthDate``: the full date (DICOM ``YYYYMMDD`` vs ISO ``YYYY-MM-DD``) when both have it, else the
  year against the case's birth year.
* ``PatientSex``: DICOM ``M``/``F``/``O`` vs ``male``/``female``/``other``; unknown or empty on either side is
  not compared.

A de-identified CT (``PatientIdentityRemoved`` = ``YES``) carries pseudonyms, so it cannot be verified; neither
can a case with no identity recorded. Then the check raises unless the caller passes ``allow_unverified=True``
(after a person has confirmed the CT), and the result says nothing was compared: never silence.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from osteoplan.errors import PatientIdentityError

log = logging.getLogger(__name__)

_SEX = {"M": "male", "F": "female", "O": "other"}


def _fold(text: str | None) -> str:
    if not text:
        return ""
    t = unicodedata.normalize("NFKD", str(text))
    t = "".join(c for c in t if not unicodedata.combining(c)).casefold()
    return re.sub(r"[\s\-'’.]+", " ", t).strip()


def _date(text: str | None) -> str:
    digits = re.sub(r"\D", "", str(text or ""))
    return digits if len(digits) == 8 else ""


@dataclass(frozen=True)
class PatientIdentity:
    """A patient's identifying attributes (any may be unknown). ``repr`` never shows the values.

    Attributes
    ----------
    patient_id : str, optional
        DICOM PatientID / the case's hospital identifier.
    family_name, given_name : str, optional
    birth_date : str, optional
        ``YYYYMMDD`` or ``YYYY-MM-DD``.
    birth_year : int, optional
        When only the year is known (the registry's pseudonymous field).
    sex : str, optional
        ``male``, ``female``, ``other`` (DICOM ``M``/``F``/``O`` are converted); ``unknown`` = None.
    deidentified : bool
        The DICOM says ``PatientIdentityRemoved`` = ``YES``: its values are pseudonyms.
    """

    patient_id: str | None = field(default=None, repr=False)
    family_name: str | None = field(default=None, repr=False)
    given_name: str | None = field(default=None, repr=False)
    birth_date: str | None = field(default=None, repr=False)
    birth_year: int | None = field(default=None, repr=False)
    sex: str | None = field(default=None, repr=False)
    deidentified: bool = False

    def __post_init__(self) -> None:
        if self.birth_date:
            object.__setattr__(self, "birth_date", _date(self.birth_date) or None)
        if self.sex:
            sx = str(self.sex).strip()
            sx = _SEX.get(sx.upper(), sx.lower())
            object.__setattr__(self, "sex", sx if sx in ("male", "female", "other") else None)

    def __repr__(self) -> str:
        known = [k for k in ("patient_id", "family_name", "given_name", "birth_date", "birth_year", "sex")
                 if getattr(self, k)]
        return f"PatientIdentity(known={known}, deidentified={self.deidentified})"

    @classmethod
    def from_dataset(cls, ds: Any) -> "PatientIdentity":
        """From a pydicom Dataset (file header, or a QIDO-RS answer via ``Dataset.from_json``)."""
        def text(kw: str) -> str | None:
            v = ds.get(kw, None)
            v = "" if v is None else str(v).strip()
            return v or None

        family = given = None
        pn = ds.get("PatientName", None)
        if pn is not None and str(pn).strip():
            parts = str(pn).split("=")[0].split("^")  # alphabetic representation
            family = parts[0].strip() or None
            given = parts[1].strip() if len(parts) > 1 and parts[1].strip() else None
        sex = _SEX.get((text("PatientSex") or "").upper())
        removed = (text("PatientIdentityRemoved") or "").upper() == "YES"
        return cls(patient_id=text("PatientID"), family_name=family, given_name=given,
                   birth_date=_date(text("PatientBirthDate")) or None, sex=sex, deidentified=removed)

    @classmethod
    def from_record(cls, patient: Any) -> "PatientIdentity":
        """From a registry :class:`osteoplan.workflow.models.Patient` (or any object with the same attributes)."""
        sex = getattr(patient, "sex", None)
        return cls(patient_id=getattr(patient, "hospital_id", None) or None,
                   family_name=getattr(patient, "family_name", None) or None,
                   given_name=getattr(patient, "given_name", None) or None,
                   birth_date=_date(getattr(patient, "birth_date", None)) or None,
                   birth_year=getattr(patient, "birth_year", None),
                   sex=sex if sex in ("male", "female", "other") else None)


@dataclass(frozen=True)
class IdentityCheck:
    """Outcome of :func:`check_ct_matches_case` (attribute names only).

    Attributes
    ----------
    compared : tuple of str
        DICOM attributes compared and found equal.
    differing : tuple of str
        DICOM attributes that differ (empty when the check passed).
    not_compared : tuple of str
        Attributes unknown on one side (or a de-identified CT).
    verified : bool
        At least one attribute was compared and none differs.
    """

    compared: tuple[str, ...]
    differing: tuple[str, ...]
    not_compared: tuple[str, ...]
    verified: bool


def compare_identities(ct: PatientIdentity, case: PatientIdentity) -> IdentityCheck:
    """Compare attribute by attribute (rules in the module docstring); never raises."""
    same: list[str] = []
    diff: list[str] = []
    skip: list[str] = []

    def put(name: str, a: str, b: str) -> None:
        if not a or not b:
            skip.append(name)
        elif a == b:
            same.append(name)
        else:
            diff.append(name)

    if ct.deidentified:
        return IdentityCheck((), (), ("PatientID", "PatientName", "PatientBirthDate", "PatientSex"), False)
    put("PatientID", (ct.patient_id or "").strip().casefold(), (case.patient_id or "").strip().casefold())
    # name: each component both sides know
    name_pairs = [(_fold(ct.family_name), _fold(case.family_name)), (_fold(ct.given_name), _fold(case.given_name))]
    known = [(a, b) for a, b in name_pairs if a and b]
    if not known:
        skip.append("PatientName")
    elif all(a == b for a, b in known):
        same.append("PatientName")
    else:
        diff.append("PatientName")
    ct_date, case_date = ct.birth_date or "", case.birth_date or ""
    if ct_date and case_date:
        put("PatientBirthDate", ct_date, case_date)
    elif ct_date and case.birth_year:
        put("PatientBirthDate", ct_date[:4], str(case.birth_year))
    else:
        skip.append("PatientBirthDate")
    put("PatientSex", ct.sex or "", case.sex or "")
    return IdentityCheck(tuple(same), tuple(diff), tuple(skip), bool(same) and not diff)


def check_ct_matches_case(ct: PatientIdentity | Any, case: PatientIdentity | Any,
                          allow_unverified: bool = False) -> IdentityCheck:
    """Refuse a CT whose patient identity does not match the case's.

    Parameters
    ----------
    ct : PatientIdentity or pydicom Dataset
        The CT's identity (a Dataset is read with :meth:`PatientIdentity.from_dataset`).
    case : PatientIdentity or registry Patient
        The case's identity (a record is read with :meth:`PatientIdentity.from_record`).
    allow_unverified : bool
        Accept a CT whose identity cannot be compared at all (de-identified CT, case without identity),
        after a person has confirmed it; the result then has ``verified=False``.

    Returns
    -------
    IdentityCheck
        Which attributes were compared; ``verified`` is True when at least one matched and none differs.

    Raises
    ------
    PatientIdentityError
        An attribute differs (the message names the attributes, never their values), or nothing could be
        compared and *allow_unverified* is False.
    """
    ct_id = ct if isinstance(ct, PatientIdentity) else PatientIdentity.from_dataset(ct)
    case_id = case if isinstance(case, PatientIdentity) else PatientIdentity.from_record(case)
    res = compare_identities(ct_id, case_id)
    if res.differing:
        log.warning("CT refused: patient identity differs from the case in %s", ", ".join(res.differing))
        raise PatientIdentityError(
            f"This CT belongs to another patient than the case: {', '.join(res.differing)} "
            + ("differs" if len(res.differing) == 1 else "differ")
            + (f" ({', '.join(res.compared)} agree)" if res.compared else "")
            + ". Pick this patient's CT, or correct the case's identity if it is wrong.")
    if not res.compared and not allow_unverified:
        why = ("the CT is de-identified (PatientIdentityRemoved = YES)" if ct_id.deidentified
               else "the CT and the case share no identifying attribute to compare")
        log.warning("CT identity not verifiable: %s", why)
        raise PatientIdentityError(
            f"The CT's patient cannot be verified against the case: {why}. Confirm by hand that it is this "
            "patient's CT and attach it explicitly as unverified, or record the case's identity.")
    return res
