"""Demo plans: ``osteoplan serve --demo`` queues real planning jobs on the project's neck phantom (with a PACS, one
of them on the phantom CT stored in the PACS as the case's CT, see :func:`seed_demo_plans`).

So that a new radiologist finds plans to review, the demo seed queues one job per variant on the C2 lesions of the
most recent demo cases; the server's worker runs them like any other job, with ``osteoplan demo`` (the README's
main job: it generates the phantom CT and plans on it): one with the phantom's exact label map, one segmented
from the phantom CT (``--segment``; what the segmentation could not find is reported "not assessed", never
clear). Nothing is computed at seed time: the server starts at once and the plans appear within minutes.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select

from osteoplan.workflow import jobs as q
from osteoplan.workflow import models as m

#: The demo jobs: (what the case's job shows, segment the phantom CT instead of using its exact label map).
DEMO_VARIANTS: tuple[tuple[str, bool], ...] = (("neck phantom, its exact label map", False),
                                               ("neck phantom, segmented from its CT", True))


def c2_lesions_for_demo(session, n: int) -> list[m.Lesion]:
    """The C2 lesions of the *n* most recent cases that have one, and neither a plan nor a planning job yet."""
    rows = session.scalars(select(m.Lesion).join(m.Patient).where(
        m.Lesion.site == "C2", m.Lesion.deleted_at.is_(None), m.Patient.deleted_at.is_(None))
        .order_by(m.Patient.id.desc()))
    with_jobs = set(session.scalars(select(m.PlanJob.lesion_id)))
    out = []
    for les in rows:
        if not les.plans and les.id not in with_jobs:
            out.append(les)
        if len(out) == n:
            break
    return out


def seed_demo_plans(engine: Engine, root: Path, *, report: bool = True,
                    variants: tuple[tuple[str, bool], ...] = DEMO_VARIANTS, pacs=None,
                    spacing_mm: float | None = None) -> list[int]:
    """Queue one demo planning job per variant on the most recent C2 lesions; returns the job ids.

    Without a PACS every job runs ``osteoplan demo`` (it generates the phantom and plans on it). With a PACS
    (*pacs*), a segmented variant is planned as a hospital plan is: the phantom CT is stored in the PACS as that
    case's CT (:func:`store_case_ct`: an ORIGINAL CT series under the case's fictitious Patient module), and the job
    is a planning job on that series (``pacs_retrieve``: the worker retrieves it from the PACS, checks the patient,
    and runs ``osteoplan plan`` on it), so its plan records the PACS series as its CT and its results can be sent
    back referencing it. The variant with the phantom's exact label map stays an ``osteoplan demo`` job (a label
    map the PACS does not hold). If the PACS cannot store the CT, the variant falls back to ``osteoplan demo``.

    Parameters
    ----------
    engine : Engine
        The registry.
    root : Path
        The jobs folder (:func:`osteoplan.web.plan_jobs.jobs_dir`).
    report : bool
        Jobs write the report, images and DICOM outputs.
    variants : tuple
        (label, segment) pairs, see :data:`DEMO_VARIANTS`.
    pacs : osteoplan.pacs.PacsConfig, optional
        The server's PACS.
    spacing_mm : float, optional
        Voxel size of the phantom stored in the PACS (default the phantom's own, as ``osteoplan demo``).
    """
    import logging

    from sqlalchemy.orm import Session

    from osteoplan.errors import OsteoplanError
    from osteoplan.planning.protocol import DEFAULT_PROTOCOL

    ids = []
    with Session(engine) as s:
        chosen = [(les.id, les.patient_id) for les in c2_lesions_for_demo(s, len(variants))]
    for (lesion_id, patient_id), (label, segment) in zip(chosen, variants):
        opts = {"command": "demo", "segment": segment, "seed": 0, "source": "demo: " + label,
                "report": report, "format": "nifti"}
        if pacs is not None and segment:
            try:
                opts = {"report": report, **store_case_ct(engine, pacs, patient_id, spacing_mm=spacing_mm)}
            except OsteoplanError as exc:
                logging.getLogger(__name__).warning("demo CT not stored in the PACS (%s): planned on the phantom "
                                                    "directly", type(exc).__name__)
        with Session(engine) as s, s.begin():
            job = q.enqueue(s, None, lesion_id, DEFAULT_PROTOCOL, None, opts)
            job_dir = root / f"job-{job.id:06d}"
            root.mkdir(mode=0o700, parents=True, exist_ok=True)  # CTs are patient data: the owner only
            job_dir.mkdir(mode=0o700, exist_ok=True)
            job.work_dir = str(job_dir.resolve())
            ids.append(job.id)
    return ids


def store_case_ct(engine: Engine, config, patient_id: int, *, spacing_mm: float | None = None,
                  seed: int = 0) -> dict:
    """Store the neck phantom CT in the PACS as case *patient_id*'s planning CT; returns the options of a planning
    job on it (``source`` "pacs", ``pacs_retrieve``, ``study_uid``, ``series_uid``, ``ct``, ``format``,
    ``identity_verified_on``: the series' patient checked against the case as the plan form does).

    Raises
    ------
    PacsError, PacsStoreError
        The PACS did not store every slice.
    PatientIdentityError
        The stored series does not match the case (a defect of the demo data).
    """
    from sqlalchemy.orm import Session

    from osteoplan.anatomy.phantom import PhantomParams, make_phantom
    from osteoplan.imaging.identity import PatientIdentity, check_ct_matches_case
    from osteoplan.pacs import PacsClient
    from osteoplan.pacs.seed import store_volume

    with Session(engine) as s:
        patient = s.get(m.Patient, patient_id)
        dicom_patient, identity = _dicom_patient(patient), PatientIdentity.from_record(patient)
    params = PhantomParams(seed=seed) if spacing_mm is None else PhantomParams(seed=seed, spacing_mm=spacing_mm)
    client = PacsClient(config)
    study, series = store_volume(client, make_phantom(params).volume, dicom_patient,
                                 description="osteoplan demo: neck phantom CT")
    hit = client.find_series(study_uid=study, series_uid=series, modality=None)[0]
    check = check_ct_matches_case(hit.identity, identity)
    return {"source": "pacs", "pacs_retrieve": True, "study_uid": study, "series_uid": series, "ct": "ct-pacs",
            "format": "dicom", "identity_verified_on": list(check.compared), "identity_confirmed_by_user": False}


def _dicom_patient(patient: m.Patient) -> dict[str, str]:
    """The DICOM Patient module of a (fictitious) registry patient, for a CT a PACS would hold for it."""
    from osteoplan.imaging.identity import PatientIdentity

    ident = PatientIdentity.from_record(patient)
    out: dict[str, str] = {}
    if ident.patient_id:
        out["PatientID"] = ident.patient_id
    if ident.family_name or ident.given_name:
        out["PatientName"] = f"{(ident.family_name or '').upper()}^{(ident.given_name or '').upper()}"
    if ident.birth_date:
        out["PatientBirthDate"] = ident.birth_date
    if ident.sex:
        out["PatientSex"] = {"male": "M", "female": "F", "other": "O"}[ident.sex]
    return out


def seed_demo_pacs(engine: Engine, config, *, spacing_mm: float | None = None,
                   seed: int = 0) -> tuple[int, str, str] | None:
    """Store the neck phantom CT (the one ``osteoplan demo`` plans on) in the PACS as the CT of the most recent
    demo case whose C2 lesion has neither a plan nor a planning job, so that a demo user can find it on the lesion's
    "CT from PACS" page (searched by the case's identifier), pick it and plan on it.

    The series carries the case's (fictitious) Patient module, so the identity check verifies it.

    Parameters
    ----------
    engine : Engine
        The registry (the demo data set seeded).
    config : osteoplan.pacs.PacsConfig
        The server's PACS.
    spacing_mm : float, optional
        Voxel size of the phantom (default: the phantom's own, as ``osteoplan demo``); tests use a coarse one.
    seed : int
        Phantom noise seed (``osteoplan demo --seed``).

    Returns
    -------
    (case id, StudyInstanceUID, SeriesInstanceUID), or None when no case has a free C2 lesion.

    Raises
    ------
    PacsError, PacsStoreError
        The PACS is unreachable or did not store every slice (see :meth:`osteoplan.pacs.PacsClient.store`).
    """
    from sqlalchemy.orm import Session

    from osteoplan.anatomy.phantom import PhantomParams, make_phantom
    from osteoplan.pacs import PacsClient
    from osteoplan.pacs.seed import store_volume

    with Session(engine) as s:
        lesions = c2_lesions_for_demo(s, 1)
        if not lesions:
            return None
        patient = s.get(m.Patient, lesions[0].patient_id)
        case_id, dicom_patient = patient.id, _dicom_patient(patient)
    params = PhantomParams(seed=seed) if spacing_mm is None else PhantomParams(seed=seed, spacing_mm=spacing_mm)
    volume = make_phantom(params).volume
    study, series = store_volume(PacsClient(config), volume, dicom_patient,
                                 description="osteoplan demo: neck phantom CT")
    return case_id, study, series
