"""Demo plans: ``osteoplan serve --demo`` queues real planning jobs on the project's neck phantom.

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
                    variants: tuple[tuple[str, bool], ...] = DEMO_VARIANTS) -> list[int]:
    """Queue one ``osteoplan demo`` job per variant on the most recent C2 lesions; returns the job ids.

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
    """
    from sqlalchemy.orm import Session

    from osteoplan.planning.protocol import DEFAULT_PROTOCOL

    ids = []
    with Session(engine) as s, s.begin():
        for lesion, (label, segment) in zip(c2_lesions_for_demo(s, len(variants)), variants):
            opts = {"command": "demo", "segment": segment, "seed": 0, "source": "demo: " + label,
                    "report": report, "format": "nifti"}
            job = q.enqueue(s, None, lesion.id, DEFAULT_PROTOCOL, None, opts)
            job_dir = root / f"job-{job.id:06d}"
            root.mkdir(mode=0o700, parents=True, exist_ok=True)  # CTs are patient data: the owner only
            job_dir.mkdir(mode=0o700, exist_ok=True)
            job.work_dir = str(job_dir.resolve())
            ids.append(job.id)
    return ids
