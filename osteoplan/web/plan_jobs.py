"""Planning jobs seen from the web app: where a job's files live, how an uploaded CT is stored, the job's view.

A job's folder is ``<jobs dir>/job-<number>/`` (osteoplan's own names, never an identifier): the CT as
received (``ct.zip`` or ``ct.nii.gz``; replaced by ``ct-deid/`` when de-identification was asked for, as the
job's first stage), the plan folder ``plan-<attempt>/`` written atomically by ``osteoplan plan``, and its progress
and logs. A job that ends without a plan (failed, cancelled while queued or running, its worker stopped) keeps no
CT as received: it is deleted and the job's error says so (:func:`osteoplan.faces.worker.discard_received_ct`). The jobs dir
is ``$OSTEOPLAN_JOBS_DIR``, else ``jobs/`` next to an SQLite registry, else ``jobs/`` in the user's data folder.

CT sources (the seam for the PACS picker): :data:`CT_SOURCES` maps a source key to (words shown in the form,
``make_writer(form, patient) -> write(job_dir) -> options``, *patient* the case's registry record, to refuse
another patient's CT). ``make_writer`` checks the submitted form at once (raising
``ValidationError`` with a one-line message) and returns the function that puts the CT into the job's folder and
returns the job's CT options (``ct``: the CT's path inside the folder, ``format``: ``dicom`` or ``nifti``,
``source``...): "upload" (a DICOM zip or a NIfTI file from the browser, :func:`upload_writer`) and "pacs"
(``CT_SOURCES["pacs"] = ("a series from the PACS", pacs_writer)``, offered when a PACS is configured: the request
checks the series' patient on the PACS's index and records its UIDs; the worker retrieves it as the job's first
stage); the rest of the job (de-identification, planning, progress, result) is the same.
"""

from __future__ import annotations

import functools
import os
import shutil
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable

from osteoplan.errors import ValidationError
from osteoplan.workflow import jobs as q
from osteoplan.workflow import models as m

#: Largest CT upload accepted, in bytes: ``$OSTEOPLAN_CT_MAX_BYTES``, default 2 GB (configurable default, no
#: published source: a thin-slice neck CT of 1,000 512x512 16-bit images is about 0.55 GB uncompressed).
CT_MAX_BYTES = int(os.environ.get("OSTEOPLAN_CT_MAX_BYTES") or 2_000_000_000)
#: Where a CT may come from, with the words shown in the form (a PACS picker adds "pacs").
CHUNK = 1 << 20


def jobs_dir(database_url: str | None = None) -> Path:
    """The folder holding the jobs' folders (see the module's docstring)."""
    env = os.environ.get("OSTEOPLAN_JOBS_DIR")
    if env:
        return Path(env)
    if database_url and database_url.startswith("sqlite:///") and ":memory:" not in database_url:
        db = Path(database_url[len("sqlite:///"):].split("?", 1)[0])
        return db.with_name(db.name + ".jobs")
    from osteoplan.web.settings import default_data_dir

    return default_data_dir() / "jobs"


def ct_format(head: bytes, filename: str) -> str:
    """``"dicom"`` (a zip) or ``"nifti"`` (``.nii`` / ``.nii.gz``) from the first bytes and the file's name.

    Raises
    ------
    ValidationError
        Neither a zip nor a NIfTI file.
    """
    name = (filename or "").lower()
    if head[:4] == b"PK\x03\x04":
        return "dicom"
    if name.endswith((".nii.gz", ".nii")):
        if name.endswith(".gz") and head[:2] != b"\x1f\x8b":
            raise ValidationError("the file is named .nii.gz but is not gzip-compressed: export the CT again as "
                                  "NIfTI (.nii or .nii.gz) or as a zip of DICOM files")
        raw = _gunzip_head(head) if head[:2] == b"\x1f\x8b" else head
        if len(raw) >= 348 and raw[344:347] in (b"n+1", b"ni1"):
            return "nifti"
        raise ValidationError("the file is named as NIfTI but holds no NIfTI header: export the CT again as NIfTI "
                              "(.nii or .nii.gz) or as a zip of DICOM files")
    raise ValidationError("the CT file must be a zip of DICOM files or a NIfTI file (.nii or .nii.gz); "
                          "choose another file")


def _gunzip_head(data: bytes) -> bytes:
    """The first kilobytes of a gzip stream (b"" when it cannot be decompressed)."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, 4096)
    except zlib.error:
        return b""


def save_upload(src: BinaryIO, filename: str, job_dir: Path, max_bytes: int | None = None) -> dict[str, Any]:
    """Copy an uploaded CT into *job_dir* by chunks (never whole in memory); returns the job's CT options.

    The file is written to a temporary name and renamed when complete; its name in the browser is not kept.

    Raises
    ------
    ValidationError
        Empty, larger than *max_bytes* (default :data:`CT_MAX_BYTES`), or neither a DICOM zip nor a NIfTI file (nothing is kept).
    """
    max_bytes = CT_MAX_BYTES if max_bytes is None else max_bytes
    job_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    head = src.read(65536)
    if not head:
        raise ValidationError("the CT file is empty; choose the CT's DICOM zip or NIfTI file")
    fmt = ct_format(head, filename)
    name = "ct.zip" if fmt == "dicom" else ("ct.nii.gz" if head[:2] == b"\x1f\x8b" else "ct.nii")
    tmp = job_dir / f".{name}.part"
    size = 0
    try:
        with open(tmp, "wb") as fh:
            chunk = head
            while chunk:
                size += len(chunk)
                if size > max_bytes:
                    raise ValidationError(f"the CT file is larger than {max_bytes / 1e9:.1f} GB; send the one series "
                                          "to plan on")
                fh.write(chunk)
                chunk = src.read(CHUNK)
        if fmt == "dicom" and not zipfile.is_zipfile(tmp):
            raise ValidationError("the zip is damaged or incomplete; export the DICOM series again")
        os.replace(tmp, job_dir / name)
    finally:
        tmp.unlink(missing_ok=True)
    return {"ct": name, "format": fmt, "ct_bytes": size, "source": "upload"}


def first_dicom_header(zip_path: Path):
    """The header (no pixels) of the first DICOM file found in a zip, or None."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            try:
                with zf.open(info) as fh:
                    return pydicom.dcmread(fh, stop_before_pixels=True)
            except (InvalidDicomError, OSError, EOFError, ValueError, zipfile.BadZipFile):
                continue
    return None


def check_upload_identity(opts: dict[str, Any], job_dir: Path, patient: Any, confirmed: bool) -> dict[str, Any]:
    """Refuse an uploaded CT of another patient than the case (:func:`osteoplan.imaging.identity.check_ct_matches_case`
    on the first DICOM file's header); a CT whose patient cannot be compared (a NIfTI, a de-identified DICOM, a
    case without identity) needs *confirmed* (the form's confirmation box). Returns the options with
    ``identity_verified_on`` (attribute names only).

    Raises
    ------
    ValidationError
        Another patient's CT (the differing attributes are named, never their values), or unverifiable and not
        confirmed.
    """
    from osteoplan.imaging.identity import PatientIdentity, PatientIdentityError, check_ct_matches_case

    ds = first_dicom_header(job_dir / opts["ct"]) if opts.get("format") == "dicom" else None
    ct_identity = PatientIdentity.from_dataset(ds) if ds is not None else PatientIdentity()
    try:
        res = check_ct_matches_case(ct_identity, patient, allow_unverified=confirmed)
    except PatientIdentityError as exc:
        msg = str(exc)
        if "cannot be verified" in msg and opts.get("format") == "nifti":
            msg = ("a NIfTI file carries no patient identity, so it cannot be checked against the case: tick the "
                   "box confirming it is this patient's CT")
        raise ValidationError(msg) from None
    return {**opts, "identity_verified_on": list(res.compared) if res.verified else [],
            "identity_confirmed_by_user": bool(confirmed and not res.verified)}


def upload_writer(form, patient: Any = None) -> Callable[[Path], dict[str, Any]]:
    """The CT source "upload": the form's ``ct_file`` (a DICOM zip or a NIfTI file), copied by :func:`save_upload`,
    then checked against the case's patient (:func:`check_upload_identity`; ``confirm_identity`` box).

    Raises
    ------
    ValidationError
        No file was chosen.
    """
    upload = form.get("ct_file")
    if upload is None or not hasattr(upload, "file"):
        raise ValidationError("choose the CT file (a DICOM zip or a NIfTI file)")
    confirmed = bool(form.get("confirm_identity"))

    def write(job_dir: Path) -> dict[str, Any]:
        upload.file.seek(0)
        opts = save_upload(upload.file, upload.filename or "", job_dir)
        return check_upload_identity(opts, job_dir, patient, confirmed) if patient is not None else opts

    return write


_UID_CHARS = frozenset("0123456789.")
#: Folder of a job holding the series retrieved from the PACS (one ``.dcm`` file per instance).
PACS_CT_FOLDER = "ct-pacs"


def _form_uid(value: Any, what: str, required: bool = True) -> str | None:
    """A DICOM UID from a form field (digits and dots, at most 64 characters). Raises ValidationError."""
    v = str(value or "").strip()
    if not v and not required:
        return None
    if not v or len(v) > 64 or not set(v) <= _UID_CHARS:
        raise ValidationError(f"the {what} is not a DICOM UID (digits and dots, at most 64 characters); pick the "
                              "series again")
    return v


def pacs_config(app_state: Any = None):
    """The server's PACS settings (:class:`osteoplan.pacs.PacsConfig`), or None when no PACS is configured.

    ``app_state.pacs_config`` when set (tests, as for the PACS pages), else :func:`osteoplan.pacs.load_config`
    (``OSTEOPLAN_PACS_URL``... or the settings file); a missing or unreadable configuration is None (the form then
    does not offer the PACS; the PACS page says why).
    """
    cfg = getattr(app_state, "pacs_config", None)
    if cfg is not None:
        return cfg
    from osteoplan.errors import InputError
    from osteoplan.pacs import load_config

    try:
        return load_config()
    except InputError:
        return None


def pacs_writer(form, patient: Any = None, config: Any = None) -> Callable[[Path], dict[str, Any]]:
    """The CT source "pacs": the series ``pacs_series_uid`` (optionally in study ``pacs_study_uid``; else the
    study is looked up by QIDO-RS) is only *chosen* in the request: its patient, as the PACS's index (QIDO-RS)
    gives it, is compared with the case's at once (another patient's series is refused, naming the attributes that
    differ, never their values), and the job records the Study/Series UIDs with ``pacs_retrieve``. The worker
    retrieves the series by WADO-RS as the job's first stage ("retrieving the CT from the PACS",
    :func:`osteoplan.faces.pacs_jobs.retrieve_ct`), checking the patient again on the first file's header. The
    form's ``confirm_identity`` box allows a series whose patient cannot be compared (de-identified), as for an
    upload.

    Parameters
    ----------
    form : mapping
        The submitted form.
    patient : registry Patient
        The case's patient (its identity is compared with the series').
    config : PacsConfig or None
        The server's PACS (:func:`pacs_config`); None: no PACS configured.

    Returns
    -------
    callable
        ``write(job_dir) -> options``: ``ct`` ("ct-pacs", written by the worker), ``format`` ("dicom"), ``source``
        ("pacs"), ``pacs_retrieve`` (True), ``study_uid``, ``series_uid``, ``identity_verified_on`` (attribute
        names only), ``identity_confirmed_by_user``. It raises ValidationError with the PACS's one-line message
        (unreachable, timeout, credentials, series not in the PACS) or the identity refusal.

    Raises
    ------
    ValidationError
        No PACS configured, or no (valid) series UID in the form.
    """
    if config is None:
        raise ValidationError("no PACS is configured on this server (OSTEOPLAN_PACS_URL or pacs.toml); upload the CT")
    series_uid = _form_uid(form.get("pacs_series_uid"), "SeriesInstanceUID")
    study_uid = _form_uid(form.get("pacs_study_uid"), "StudyInstanceUID", required=False)
    confirmed = bool(form.get("confirm_identity"))

    def write(job_dir: Path) -> dict[str, Any]:
        from osteoplan.errors import InputError, PacsError, PatientIdentityError
        from osteoplan.imaging.identity import check_ct_matches_case
        from osteoplan.pacs import PacsClient

        try:
            client = PacsClient(config)
            if study_uid:
                hits = client.find_series(study_uid=study_uid, series_uid=series_uid, modality=None)
                if not hits:
                    raise PacsError("The series is not in the PACS (deleted or moved, or stored in another PACS); "
                                    "search again and pick a series.")
                hit = hits[0]
            else:
                hit = client.locate_series(series_uid)
            check = check_ct_matches_case(hit.identity, patient, allow_unverified=confirmed)
        except (PacsError, PatientIdentityError, InputError) as exc:
            raise ValidationError(str(exc)) from None
        job_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        verified = list(check.compared) if check.verified else []
        return {"ct": PACS_CT_FOLDER, "format": "dicom", "source": "pacs", "pacs_retrieve": True,
                "study_uid": hit.study_uid, "series_uid": series_uid, "identity_verified_on": verified,
                "identity_confirmed_by_user": bool(confirmed and not verified)}

    return write


#: Where a CT may come from: key -> (words shown in the form, make_writer(form, patient record)); see the module's
#: docstring. "pacs" is offered only when a PACS is configured (:func:`available_sources`).
CT_SOURCES: dict[str, tuple[str, Callable[..., Callable[[Path], dict[str, Any]]]]] = {
    "upload": ("upload a DICOM zip or a NIfTI file", upload_writer),
    "pacs": ("a series from the PACS", pacs_writer),
}


def available_sources(pacs: Any = None) -> dict[str, tuple[str, Callable[..., Callable[[Path], dict[str, Any]]]]]:
    """The CT sources to offer: :data:`CT_SOURCES`, with "pacs" bound to the server's PACS settings *pacs*
    (:func:`pacs_config`) and left out when there is none."""
    out = {}
    for key, (label, make) in CT_SOURCES.items():
        if make is pacs_writer:
            if pacs is None:
                continue
            make = functools.partial(pacs_writer, config=pacs)
        out[key] = (label, make)
    return out


def attach_ct_files(job: m.PlanJob, root: Path, write) -> dict[str, Any]:
    """Give *job* its folder under *root* and its CT through *write(job_dir) -> options* (an upload, a PACS
    retrieve...); the job's options are updated. On error the folder is removed and the error raised."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)  # CTs are patient data: the owner only
    job_dir = root / f"job-{job.id:06d}"
    if job_dir.exists():
        shutil.rmtree(job_dir)
    try:
        opts = write(job_dir)
    except BaseException:
        shutil.rmtree(job_dir, ignore_errors=True)
        raise
    job.work_dir = str(job_dir.resolve())
    job.options = {**(job.options or {}), **opts}
    return job.options


def plan_folder(job: m.PlanJob) -> Path | None:
    """The plan folder a finished job wrote (None when there is none)."""
    if job.state != "done" or not job.work_dir:
        return None
    p = Path(job.work_dir) / f"plan-{job.attempts}"
    return p if (p / "plan.json").is_file() else None


def verdict_class(verdict: str | None) -> str:
    """Colour of a verdict's box (as on the case page): ok for FEASIBLE..., warn for NOT CLEARED, bad otherwise."""
    if not verdict:
        return ""
    if verdict.startswith("FEASIBLE"):
        return "ok"
    return "warn" if verdict.startswith("NOT CLEARED") else "bad"


def job_view(job: m.PlanJob) -> dict[str, Any]:
    """What the job page shows (no identifiers): state, stages with done/current/pending, error, result."""
    done = list(job.stages_done or [])
    opts = job.options or {}
    kind = q.kind_of(job)
    stages = []
    for key, label in q.KIND_STAGES.get(kind, q.STAGES):
        if key == "deid" and not opts.get("deid"):
            continue
        if key == "retrieve" and not opts.get("pacs_retrieve"):
            continue
        if key == "exports" and not opts.get("report", True):
            label = "writing the plan"
        if key in done:
            status = "done"
        elif job.state == "running" and job.stage == key:
            status = "current"
        elif job.state == "done":
            status = "done" if key in ("save", "store_check") else "skipped"
        elif job.state in ("failed", "cancelled") and job.stage == key:
            status = job.state  # the stage that was running gave no result: never shown as done
        elif job.state in ("failed", "cancelled"):
            status = "not_reached"
        else:
            status = "pending"
        detail = None
        if status == "current" and job.stage_label and job.stage_label != label:  # e.g. "40 of 106 images"
            detail = job.stage_label.removeprefix(label + ": ")
        stages.append({"key": key, "label": label, "status": status, "detail": detail,
                       "status_words": status.replace("_", " ")})
    folder = plan_folder(job)
    return {
        "id": job.id, "state": job.state, "stage": job.stage, "stage_label": job.stage_label,
        "stages": stages, "error": job.error, "verdict": job.verdict, "verdict_class": verdict_class(job.verdict), "protocol": job.protocol,
        "side": job.side or "protocol default", "created_at": job.created_at.isoformat() if job.created_at else None,
        "created_by": job.created_by, "lesion_id": job.lesion_id, "saved_plan_id": job.saved_plan_id,
        "cancel_requested": bool(job.cancel_requested), "final": job.state in q.FINAL_STATES,
        "source": opts.get("source"), "deidentified": bool(opts.get("deidentified")),
        "has_report": bool(folder and (folder / "report.pdf").is_file()),
        "has_ct": bool(folder and (folder / "ct.nii.gz").is_file()),
        "kind": kind, "can_retry": q.can_requeue(job), "store": store_view(job) if kind == "pacs_store" else None,
    }


def store_view(job: m.PlanJob) -> dict[str, Any]:
    """What a results-store job (kind ``pacs_store``) shows: the plan, and per object (SEG, SR, PDF, CT copy) its
    series and whether the PACS holds it (found again by QIDO-RS); UIDs only, never an identifier."""
    opts = job.options or {}
    objects = list(opts.get("stored_objects") or [])
    return {"saved_plan_id": opts.get("saved_plan_id"), "objects": objects, "where": opts.get("store_where"),
            "study_uid": opts.get("store_study_uid"), "pacs_url": opts.get("pacs_url"),
            "n_stored": sum(1 for o in objects if o.get("stored")), "complete": job.state == "done"}
