"""Demo plans: ``osteoplan serve --demo`` queues real planning jobs on the project's neck phantom.

So that a new radiologist finds plans to review, the demo seed writes the phantom CT once (with its exact
label masks) and queues two jobs on the C2 lesions of the two most recent demo cases, run by the server's
worker like any other job: one with the phantom's exact masks (what ``osteoplan demo`` does), one from the CT
alone (classical segmentation; what it could not segment is reported "not assessed", never clear).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select

from osteoplan.workflow import jobs as q
from osteoplan.workflow import models as m

#: The demo jobs: (label of the case's job, use the phantom's exact masks).
DEMO_VARIANTS: tuple[tuple[str, bool], ...] = (("phantom CT + its exact masks", True),
                                               ("phantom CT, segmentation only", False))


def c2_lesions_for_demo(session, n: int) -> list[m.Lesion]:
    """The C2 lesions of the *n* most recent demo cases that have one and no plan yet."""
    rows = session.scalars(select(m.Lesion).join(m.Patient).where(
        m.Lesion.site == "C2", m.Lesion.deleted_at.is_(None), m.Patient.deleted_at.is_(None))
        .order_by(m.Patient.id.desc()))
    out = []
    for les in rows:
        if not les.plans:
            out.append(les)
        if len(out) == n:
            break
    return out


def seed_demo_plans(engine: Engine, root: Path, *, report: bool = True, spacing_mm: float | None = None,
                    variants: tuple[tuple[str, bool], ...] = DEMO_VARIANTS) -> list[int]:
    """Write the phantom under *root*/demo-phantom and queue one job per variant; returns the job ids.

    Parameters
    ----------
    engine : Engine
        The registry.
    root : Path
        The jobs folder (:func:`osteoplan.web.plan_jobs.jobs_dir`).
    report : bool
        Jobs write the report, images and DICOM outputs.
    spacing_mm : float, optional
        Phantom voxel size (default: the phantom's, 0.8 mm); tests use a coarser one.
    """
    from sqlalchemy.orm import Session

    from osteoplan.anatomy.phantom import PhantomParams, make_phantom, write_phantom
    from osteoplan.planning.protocol import DEFAULT_PROTOCOL

    with Session(engine) as s:
        lesions = [(les.id, les.patient_id) for les in c2_lesions_for_demo(s, len(variants))]
    if not lesions:
        return []
    folder = (root / "demo-phantom").resolve()
    if not (folder / "ct.nii.gz").is_file():
        params = PhantomParams() if spacing_mm is None else PhantomParams(spacing_mm=spacing_mm)
        write_phantom(make_phantom(params), folder, overwrite=True, dicom=False)
    ids = []
    with Session(engine) as s, s.begin():
        for (lesion_id, _), (label, with_masks) in zip(lesions, variants):
            opts = {"ct": str(folder / "ct.nii.gz"), "format": "nifti", "source": "demo phantom", "report": report,
                    "demo": label}
            if with_masks:
                opts["masks"] = str(folder / "labels")
            job = q.enqueue(s, None, lesion_id, DEFAULT_PROTOCOL, None, opts)
            job_dir = root / f"job-{job.id:06d}"
            job_dir.mkdir(parents=True, exist_ok=True)
            job.work_dir = str(job_dir.resolve())
            ids.append(job.id)
    return ids
