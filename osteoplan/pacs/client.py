"""DICOMweb client: QIDO-RS search, WADO-RS retrieve, STOW-RS store, over the ``dicomweb-client`` library.

References
----------
* DICOM PS3.18 (Web Services): 10.6 QIDO-RS, 10.4 WADO-RS, 10.5 STOW-RS; the Store Instances response
  (Referenced SOP Sequence, Failed SOP Sequence, Failure Reason) in 10.5.3.
* dicomweb-client (Herrmann et al., J Digit Imaging 2022), which does the HTTP and multipart work.

Failure handling (every one is a single :class:`~osteoplan.errors.PacsError` line naming what failed and
what to do, never a credential or a patient value):

* connection refused / host unreachable, TLS failure, timeout (connect or read, ``timeout_s``);
* HTTP 401/403 (credentials), 404 (the study/series is gone), other 4xx/5xx;
* a retrieved series that vanished or came back incomplete (fewer instances than QIDO listed);
* a store: every instance sent is looked up again by QIDO-RS after the STOW-RS answer, because a PACS may
  report an instance as stored that it then filtered out (observed with Orthanc 1.10 / DICOMweb 1.7 and a
  Lua ``ReceivedInstanceFilter``). Nothing is sent before every object has been encoded (a local
  problem stores nothing); when some objects are not stored, :class:`~osteoplan.errors.PacsStoreError`
  carries a :class:`StoreReport` of which were and which were not, and storing again is safe: the same SOP
  Instance UIDs are sent and a PACS keeps one copy of each (DICOMweb has no transaction to undo the part
  that was stored).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, Iterator, Sequence

from osteoplan.errors import PacsError, PacsStoreError, PacsUnreachableError
from osteoplan.imaging.identity import PatientIdentity
from osteoplan.pacs.config import PacsConfig

log = logging.getLogger(__name__)
# dicomweb-client logs request URLs and query parameters (a PatientID searched for) at DEBUG/INFO: keep it to
# warnings, so that a verbose log configuration never writes patient identifiers.
logging.getLogger("dicomweb_client").setLevel(logging.WARNING)

#: Failure Reason values of the STOW-RS response (PS3.18 Table 10.5.3-3 / PS3.4 Annex GG).
FAILURE_REASONS = {
    0x0110: "processing failure", 0x0112: "no such object instance", 0x0117: "invalid object instance",
    0x0122: "SOP class not supported", 0x0124: "not authorized", 0x0210: "duplicate invocation",
    0x0211: "unrecognised operation", 0x0212: "mistyped argument", 0xA700: "out of resources",
    0xA900: "data set does not match SOP class", 0xC000: "cannot understand", 0xC122: "referenced transfer syntax "
    "not supported", 0xC210: "unable to process", 0xC211: "referenced SOP class not supported"}

_IDENTITY_FIELDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientIdentityRemoved")


def _first(ds: Any, kw: str, default: Any = None) -> Any:
    v = ds.get(kw, None)
    if v is None or v == "":
        return default
    return v


@dataclass(frozen=True)
class StudyHit:
    """A study found by QIDO-RS (identity kept apart: ``repr`` never shows patient values)."""

    study_uid: str
    study_date: str | None
    description: str | None
    modalities: tuple[str, ...]
    n_series: int | None
    identity: PatientIdentity = field(repr=False, default_factory=PatientIdentity)


@dataclass(frozen=True)
class SeriesHit:
    """A series found by QIDO-RS."""

    study_uid: str
    series_uid: str
    modality: str | None
    series_number: int | None
    description: str | None
    n_instances: int | None
    identity: PatientIdentity = field(repr=False, default_factory=PatientIdentity)


@dataclass(frozen=True)
class InstanceOutcome:
    """What happened to one instance of a store."""

    sop_instance_uid: str
    sop_class_uid: str
    series_uid: str
    label: str
    stored: bool
    reason: str | None = None


@dataclass(frozen=True)
class StoreReport:
    """Per-instance outcome of :meth:`PacsClient.store` (stored = found again by QIDO-RS)."""

    outcomes: tuple[InstanceOutcome, ...]

    @property
    def stored(self) -> tuple[InstanceOutcome, ...]:
        return tuple(o for o in self.outcomes if o.stored)

    @property
    def failed(self) -> tuple[InstanceOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.stored)

    @property
    def complete(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        """One line: how many were stored, which failed and why (labels and reasons only)."""
        n, ok = len(self.outcomes), len(self.stored)
        if self.complete:
            return f"all {n} object(s) stored and found again by QIDO-RS"
        failed = "; ".join(f"{o.label}: {o.reason}" for o in self.failed[:4]) + ("; ..." if len(self.failed) > 4 else "")
        stored = ", ".join(sorted({o.label for o in self.stored})) or "none"
        return f"{ok} of {n} object(s) stored ({stored}); not stored: {failed}"


@dataclass(frozen=True)
class RetrievedSeries:
    """A series read from the PACS: the volume and the patient identity of its first instance."""

    volume: Any
    identity: PatientIdentity = field(repr=False)
    n_instances: int
    identity_check: Any = None  #: IdentityCheck when a case was given


class PacsClient:
    """A DICOMweb PACS (QIDO-RS, WADO-RS, STOW-RS).

    Parameters
    ----------
    config : PacsConfig
        URL, timeout, credentials.
    session : requests.Session, optional
        Reuse a session (tests); by default one is created with the configured authentication.

    Examples
    --------
    >>> pacs = PacsClient(load_config())                                     # doctest: +SKIP
    >>> hits = pacs.find_series(patient_id="123", modality="CT")             # doctest: +SKIP
    >>> ct = pacs.read_series(hits[0].study_uid, hits[0].series_uid).volume  # doctest: +SKIP
    """

    def __init__(self, config: PacsConfig, session: Any = None) -> None:
        import requests
        from dicomweb_client import DICOMwebClient

        self.config = config
        if session is None:
            session = requests.Session()
            if config.username:
                session.auth = (config.username, config.password)
            session.verify = config.verify_tls
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else None
        try:
            self._web = DICOMwebClient(config.url, session=session, headers=headers, timeout=config.timeout_s)
        except ValueError:
            raise PacsError(f"The PACS URL {config.display_url} is not a valid DICOMweb URL; give the DICOMweb root "
                            "(e.g. http://pacs.example:8042/dicom-web).") from None
        self._web.set_http_retry_params(retry=config.retries > 1, max_attempts=config.retries,
                                        wait_exponential_multiplier=500)

    # ------------------------------------------------------------------ errors
    @contextlib.contextmanager
    def _errors(self, doing: str, not_found: str | None = None) -> Iterator[None]:
        """Turn requests / dicomweb-client failures into one PacsError line."""
        import requests

        where = self.config.display_url
        try:
            yield
        except PacsError:
            raise
        except requests.exceptions.ConnectTimeout:
            raise PacsUnreachableError(f"The PACS at {where} did not accept a connection within "
                                       f"{self.config.timeout_s:g} s while {doing}; check the PACS URL and the "
                                       "network, then retry.") from None
        except requests.exceptions.Timeout:
            raise PacsError(f"The PACS at {where} did not answer within {self.config.timeout_s:g} s while {doing}; "
                            "retry, or raise the timeout (OSTEOPLAN_PACS_TIMEOUT_S) if the PACS is slow.") from None
        except requests.exceptions.SSLError:
            raise PacsUnreachableError(f"TLS failed with the PACS at {where} while {doing} (certificate not trusted or wrong "
                            "protocol); check the URL's scheme and the certificate.") from None
        except requests.exceptions.ConnectionError as exc:
            import urllib3

            inner = exc.args[0] if exc.args else None
            if isinstance(inner, (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.TimeoutError)):
                raise PacsError(f"The PACS at {where} stopped answering for more than {self.config.timeout_s:g} s "
                                f"while {doing}; retry, or raise the timeout (OSTEOPLAN_PACS_TIMEOUT_S).") from None
            raise PacsUnreachableError(f"Cannot connect to the PACS at {where} while {doing} (connection refused, reset or host "
                            "unreachable); check the PACS URL and that the PACS is running, then retry.") from None
        except requests.exceptions.HTTPError as exc:
            code = exc.response.status_code if exc.response is not None else 0
            if code in (401, 403):
                raise PacsUnreachableError(f"The PACS at {where} refused the credentials (HTTP {code}) while {doing}; check the "
                                "username/password or token in the PACS settings.") from None
            if code == 404 and not_found:
                raise PacsError(not_found) from None
            raise PacsError(f"The PACS at {where} answered HTTP {code} while {doing}; "
                            + ("retry later (the PACS reports a problem of its own)." if code >= 500 else
                               "the request was refused; check the PACS settings and the UIDs.")) from None
        except requests.exceptions.RequestException as exc:
            raise PacsError(f"The request to the PACS at {where} failed while {doing} ({type(exc).__name__}); "
                            "check the PACS URL and retry.") from None
        except (ValueError, KeyError) as exc:  # a malformed answer (dicomweb-client parsing)
            log.debug("malformed PACS answer: %s", type(exc).__name__)
            raise PacsError(f"The PACS at {where} gave an answer that is not valid DICOMweb while {doing}; "
                            "check that the URL is the DICOMweb root of the PACS.") from None

    # ------------------------------------------------------------------ QIDO-RS
    def find_studies(self, patient_id: str | None = None, study_uid: str | None = None,
                     modality: str | None = "CT", limit: int | None = None) -> list[StudyHit]:
        """Studies by PatientID and/or StudyInstanceUID holding *modality* (QIDO-RS ``/studies``).

        Raises
        ------
        PacsError
            Connection, timeout, HTTP error or malformed answer.
        """
        from pydicom import Dataset
        from pydicom.multival import MultiValue

        filters: dict[str, Any] = {}
        if patient_id:
            filters["PatientID"] = patient_id
        if study_uid:
            filters["StudyInstanceUID"] = study_uid
        if modality:
            filters["ModalitiesInStudy"] = modality
        fields_ = ["StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedSeries", *_IDENTITY_FIELDS]
        with self._errors("searching studies"):
            found = _none_if_404(lambda: self._web.search_for_studies(search_filters=filters, fields=fields_,
                                                                      limit=limit))
            out = []
            for js in found:
                ds = Dataset.from_json(js)
                mods = ds.get("ModalitiesInStudy", None)  # CS, multi-valued: a MultiValue, one str, or absent
                mods_t = tuple(str(m) for m in mods) if isinstance(mods, (list, tuple, MultiValue)) else \
                    ((str(mods),) if mods else ())
                out.append(StudyHit(str(ds.StudyInstanceUID), _first(ds, "StudyDate"), _first(ds, "StudyDescription"),
                                    mods_t, _int(_first(ds, "NumberOfStudyRelatedSeries")),
                                    PatientIdentity.from_dataset(ds)))
        return out

    def find_series(self, study_uid: str | None = None, patient_id: str | None = None,
                    modality: str | None = "CT", series_uid: str | None = None) -> list[SeriesHit]:
        """Series of a study (or of a patient across studies) with *modality* (QIDO-RS ``/series``).

        Raises
        ------
        PacsError
            Connection, timeout, HTTP error or malformed answer.
        """
        from pydicom import Dataset

        filters: dict[str, Any] = {}
        if patient_id:
            filters["PatientID"] = patient_id
        if modality:
            filters["Modality"] = modality
        if series_uid:
            filters["SeriesInstanceUID"] = series_uid
        fields_ = ["SeriesDescription", "SeriesNumber", "NumberOfSeriesRelatedInstances", "StudyInstanceUID",
                   *_IDENTITY_FIELDS]
        with self._errors("searching series"):
            found = _none_if_404(lambda: self._web.search_for_series(study_instance_uid=study_uid,
                                                                     search_filters=filters, fields=fields_))
            out = []
            for js in found:
                ds = Dataset.from_json(js)
                out.append(SeriesHit(str(_first(ds, "StudyInstanceUID", study_uid)), str(ds.SeriesInstanceUID),
                                     _first(ds, "Modality"), _int(_first(ds, "SeriesNumber")),
                                     _first(ds, "SeriesDescription"), _int(_first(ds, "NumberOfSeriesRelatedInstances")),
                                     PatientIdentity.from_dataset(ds)))
        out.sort(key=lambda h: (h.study_uid, h.series_number if h.series_number is not None else 1 << 30))
        return out

    def locate_series(self, series_uid: str) -> SeriesHit:
        """The study and description of a series known by its SeriesInstanceUID only (e.g. a lesion's CT series).

        Raises
        ------
        PacsError
            The series is not (or no longer) in the PACS, or a connection/HTTP failure.
        """
        hits = self.find_series(series_uid=series_uid, modality=None)
        if not hits:
            raise PacsError("The series is not in the PACS (deleted or moved, or stored in another PACS); search "
                            "again and pick a series.")
        return hits[0]

    def study_patient_module(self, study_uid: str) -> Any | None:
        """The Patient module of a study as the PACS holds it (pydicom Dataset), or None when absent."""
        from pydicom import Dataset

        with self._errors("looking up a study"):
            found = self._web.search_for_studies(search_filters={"StudyInstanceUID": study_uid},
                                                 fields=list(_IDENTITY_FIELDS))
        return Dataset.from_json(found[0]) if found else None

    def instance_uids(self, study_uid: str, series_uid: str) -> set[str]:
        """SOP Instance UIDs of a series (QIDO-RS ``/studies/{s}/series/{r}/instances``); empty when absent."""
        from pydicom import Dataset

        with self._errors("listing the instances of a series"):
            found = _none_if_404(lambda: self._web.search_for_instances(
                study_instance_uid=study_uid, series_instance_uid=series_uid, fields=["SOPInstanceUID"]))
            return {str(Dataset.from_json(js).SOPInstanceUID) for js in found}

    # ------------------------------------------------------------------ WADO-RS
    def retrieve_series(self, study_uid: str, series_uid: str, folder: str | os.PathLike,
                        progress: Any = None) -> list[Path]:
        """Download every instance of a series into *folder* (``000001.dcm``...), checked against QIDO-RS.

        *progress*, when given, is called as ``progress(n_written, n_expected)`` after each instance (it may raise
        to stop the download, e.g. on a cancel).

        Returns
        -------
        list of Path
            The files written (one per instance).

        Raises
        ------
        PacsError
            The series is no longer in the PACS, came back incomplete, or a connection/HTTP failure.
        """
        from osteoplan.atomic import atomic_file

        gone = ("The series is no longer in the PACS (deleted or moved since it was listed); search again and "
                "pick a series.")
        expected = self.instance_uids(study_uid, series_uid)
        if not expected:
            raise PacsError(gone)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths: list[Path] = []
        got: set[str] = set()
        import requests

        def download(media_types: Any) -> None:
            paths.clear()
            got.clear()
            for n, ds in enumerate(self._web.iter_series(study_uid, series_uid, media_types=media_types), start=1):
                _ensure_file_meta(ds)
                p = folder / f"{n:06d}.dcm"
                with atomic_file(p, "wb") as fh:
                    ds.save_as(fh, enforce_file_format=True)
                paths.append(p)
                got.add(str(ds.SOPInstanceUID))
                if progress is not None:
                    progress(len(paths), len(expected))

        with self._errors("retrieving a series", not_found=gone):
            # transfer syntax "*": the instances as stored. Without it the PACS must transcode to Explicit VR Little
            # Endian (PS3.18 8.7.3.5), which Debian's Orthanc 1.10 cannot do for JPEG 2000 (HTTP 500); the reader
            # decodes every compressed syntax itself. A PACS that does not accept "*" (406) is asked the default.
            try:
                download((("application/dicom", "*"),))
            except requests.exceptions.HTTPError as exc:
                if exc.response is None or exc.response.status_code != 406:
                    raise
                download(None)
        missing = expected - got
        if not got:
            raise PacsError(gone)
        if missing:
            raise PacsError(f"The PACS sent {len(got & expected)} of the {len(expected)} instances of the series "
                            f"({len(missing)} missing: deleted meanwhile or unreadable); retry, or pick the series again.")
        return paths

    def retrieve_for_case(self, study_uid: str, series_uid: str, folder: str | os.PathLike, case: Any,
                          allow_unverified: bool = False, progress: Any = None) -> dict[str, Any]:
        """Retrieve a series into *folder* for planning on *case*'s lesion, refusing another patient's CT.

        The patient is checked twice: on the PACS's index (QIDO-RS) before anything is downloaded, then on the first
        downloaded file's header (what will be planned on); on a refusal *folder* is removed. Made for the web
        planning jobs (``osteoplan.web.plan_jobs.attach_ct_files(job, root, write)``: *write* can call this).

        Parameters
        ----------
        study_uid, series_uid : str
        folder : path
            New folder for the DICOM files (created).
        case : PatientIdentity or registry Patient
        allow_unverified : bool
            See :func:`osteoplan.imaging.identity.check_ct_matches_case`.
        progress : callable, optional
            ``progress(n_written, n_expected)`` (see :meth:`retrieve_series`).

        Returns
        -------
        dict
            ``{"ct": folder name, "format": "dicom", "source": "pacs", "ct_files": n, "study_uid", "series_uid",
            "identity_verified_on": [attribute names]}`` (UIDs and attribute names only).

        Raises
        ------
        PatientIdentityError
            Another patient's CT (or unverifiable without *allow_unverified*); nothing is left in *folder*.
        PacsError
            See :meth:`retrieve_series`.
        """
        import shutil

        import pydicom

        from osteoplan.imaging.identity import check_ct_matches_case

        hits = self.find_series(study_uid=study_uid, series_uid=series_uid, modality=None)
        if not hits:
            raise PacsError("The series is no longer in the PACS (deleted or moved since it was listed); search "
                            "again and pick a series.")
        check_ct_matches_case(hits[0].identity, case, allow_unverified)
        folder = Path(folder)
        try:
            files = self.retrieve_series(study_uid, series_uid, folder, progress=progress)
            header = pydicom.dcmread(files[0], stop_before_pixels=True)
            check = check_ct_matches_case(PatientIdentity.from_dataset(header), case, allow_unverified)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return {"ct": folder.name, "format": "dicom", "source": "pacs", "ct_files": len(files),
                "study_uid": study_uid, "series_uid": series_uid, "identity_verified_on": list(check.compared)}

    def read_series(self, study_uid: str, series_uid: str, case: Any = None, allow_unverified: bool = False,
                    **reader_kw: Any) -> RetrievedSeries:
        """Retrieve a series into a private temporary folder and read it with :func:`osteoplan.imaging.read_volume`.

        Parameters
        ----------
        study_uid, series_uid : str
        case : PatientIdentity or registry Patient, optional
            When given, the series' patient (first instance's header) is checked against the case with
            :func:`osteoplan.imaging.identity.check_ct_matches_case` before any pixel is decoded.
        allow_unverified : bool
            Passed to the check (a de-identified CT, confirmed by a person).
        **reader_kw
            Passed to the reader (``allow_gaps``, ``resample_uniform``, ``deidentify``, ``key``...).

        Returns
        -------
        RetrievedSeries
            The volume (float32 HU, (k, j, i), LPS affine; ``info`` holds the UIDs) and the patient identity of
            the first instance (for :func:`osteoplan.imaging.identity.check_ct_matches_case`). The temporary
            folder (mode 0700) is removed before returning.

        Raises
        ------
        PacsError
            See :meth:`retrieve_series`.
        PatientIdentityError
            *case* given and the series belongs to another patient (or cannot be verified).
        InputError
            The series cannot be planned on (the reader's own message).
        """
        import pydicom

        from osteoplan.imaging.identity import check_ct_matches_case
        from osteoplan.imaging.io import read_volume

        with tempfile.TemporaryDirectory(prefix=".osteoplan-pacs-") as tmp:
            files = self.retrieve_series(study_uid, series_uid, tmp)
            identity = PatientIdentity.from_dataset(pydicom.dcmread(files[0], stop_before_pixels=True))
            check = check_ct_matches_case(identity, case, allow_unverified) if case is not None else None
            volume = read_volume(tmp, series_uid=series_uid, **reader_kw)
        return RetrievedSeries(volume, identity, len(files), check)

    # ------------------------------------------------------------------ STOW-RS
    def store(self, datasets: Sequence[Any], labels: Sequence[str] | None = None,
              study_uid: str | None = None) -> StoreReport:
        """Store instances (STOW-RS, one request) and check every one is found again by QIDO-RS.

        Parameters
        ----------
        datasets : sequence of pydicom.Dataset
            Complete instances (SOP Class/Instance, Study/Series UIDs).
        labels : sequence of str, optional
            A short label per dataset for messages (``"SEG"``, ``"SR"``, ``"PDF"``, ``"CT"``); default the Modality.
        study_uid : str, optional
            Store into this study only (STOW-RS ``/studies/{uid}``: the PACS refuses instances of another study);
            default the datasets' study when they share one, else ``/studies``.

        Returns
        -------
        StoreReport
            Every instance stored and found again.

        Raises
        ------
        PacsStoreError
            Some or all instances are not in the PACS afterwards; ``.report`` says which (storing again is safe).
        PacsError
            The PACS cannot be reached (nothing was stored) or answers with an error before anything is known.
        InputError
            A dataset lacks its UIDs or cannot be encoded (nothing was sent).
        """
        from osteoplan.errors import InputError

        if not datasets:
            raise InputError("Nothing to store.")
        labels = list(labels) if labels is not None else [str(getattr(d, "Modality", "") or "object") for d in datasets]
        for ds, lab in zip(datasets, labels):
            for kw in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
                if not str(getattr(ds, kw, "") or ""):
                    raise InputError(f"The {lab} object has no {kw}; it cannot be stored (nothing was sent).")
        try:
            for ds in datasets:  # encode everything before the first byte leaves: a local fault stores nothing
                _ensure_file_meta(ds)
                with BytesIO() as b:
                    ds.save_as(b, enforce_file_format=True)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types
            raise InputError(f"An object cannot be encoded as DICOM ({type(exc).__name__}); nothing was sent.") from None

        import requests
        from pydicom import Dataset

        answer: Any = None
        http_status: int | None = None
        post_error: PacsError | None = None
        studies = {str(d.StudyInstanceUID) for d in datasets}
        try:
            with self._errors("storing objects"):
                try:
                    target = study_uid or (next(iter(studies)) if len(studies) == 1 else None)
                    answer = self._web.store_instances(list(datasets), study_instance_uid=target)
                except requests.exceptions.HTTPError as exc:  # 409 / 4xx with a per-instance answer body
                    resp = exc.response
                    ctype = (resp.headers.get("Content-Type", "") if resp is not None else "").split(";")[0]
                    # Orthanc 1.10 / DICOMweb 1.7 answers 409 with a DICOM JSON body but no Content-Type
                    if resp is not None and resp.content and (not ctype or "json" in ctype):
                        try:
                            answer = Dataset.from_json(resp.json())
                        except Exception:  # noqa: BLE001
                            answer = None
                    if answer is None or resp.status_code in (401, 403):
                        raise
                    http_status = resp.status_code
                    log.warning("the PACS refused part of a store (HTTP %s)", resp.status_code)
        except PacsError as exc:  # timeout, reset or HTTP error: some may be stored; QIDO tells
            post_error = exc

        reasons: dict[str, str] = {}
        if answer is not None:
            for item in answer.get("FailedSOPSequence", []) or []:
                code = item.get("FailureReason", None)
                uid = str(item.get("ReferencedSOPInstanceUID", ""))
                reasons[uid] = (f"refused by the PACS ({FAILURE_REASONS.get(int(code), 'failure')}, code "
                                f"0x{int(code):04X})" if code is not None else "refused by the PACS")
        # verification: what the PACS holds now, whatever it answered
        found: dict[tuple[str, str], set[str]] = {}
        try:
            for ds in datasets:
                key = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))
                if key not in found:
                    found[key] = self.instance_uids(*key)
        except PacsError:
            if post_error is not None:
                raise post_error from None  # unreachable: the store's own failure is the news
            raise
        outcomes = []
        for ds, lab in zip(datasets, labels):
            uid = str(ds.SOPInstanceUID)
            ok = uid in found[(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))]
            why = None
            if not ok:
                why = reasons.get(uid) or (
                    "the store failed (" + str(post_error).split(" while ")[0].replace("The PACS at ", "PACS ") + ")"
                    if post_error is not None else
                    f"refused by the PACS (HTTP {http_status})" if http_status else
                    "reported stored by the PACS but not found by QIDO-RS (filtered out)")
            outcomes.append(InstanceOutcome(uid, str(ds.SOPClassUID), str(ds.SeriesInstanceUID), lab, ok, why))
        report = StoreReport(tuple(outcomes))
        if not report.complete:
            log.warning("PACS store incomplete: %d of %d stored", len(report.stored), len(outcomes))
            raise PacsStoreError(f"Store to the PACS incomplete: {report.summary()}. Storing again is safe (same "
                                 "instances); if the PACS keeps refusing, ask its administrator why.", report)
        return report


def _none_if_404(search: Any) -> list:
    """Run a QIDO-RS search; a PACS answering 404 for an unknown study or series means "nothing found"."""
    import requests

    try:
        return search() or []
    except requests.exceptions.HTTPError as exc:
        if exc.response is not None and exc.response.status_code == 404:
            return []
        raise


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _ensure_file_meta(ds: Any) -> None:
    """Give a dataset received over WADO-RS (or built in memory) the file meta and preamble of a DICOM file.

    Without a preamble pydicom writes no ``DICM`` prefix (dicomweb-client encodes STOW-RS parts with plain
    ``dcmwrite``); Orthanc stores such a part verbatim and sends it back over WADO-RS, where dicomweb-client
    then cannot parse it. A PS3.10 file (128-byte preamble + ``DICM``) avoids both.
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    if "MediaStorageSOPClassUID" not in meta:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "MediaStorageSOPInstanceUID" not in meta:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if getattr(ds, "preamble", None) is None:
        ds.preamble = b"\x00" * 128
