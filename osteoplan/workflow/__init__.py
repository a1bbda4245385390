"""osteoplan.workflow: the care-pathway registry (tumour board -> consultation -> procedure -> follow-up).

- :mod:`~osteoplan.workflow.models`: SQLAlchemy 2 models (optimistic locking, soft delete, append-only audit).
- :mod:`~osteoplan.workflow.db`: engines, Alembic migrations (``init_db`` / ``upgrade``), sessions.
- :mod:`~osteoplan.workflow.schemas`: pydantic input models.
- :mod:`~osteoplan.workflow.service`: every read and write of patient data (rules, audit, pseudonymised views).
- :mod:`~osteoplan.workflow.stats`, :mod:`~osteoplan.workflow.fhir`, :mod:`~osteoplan.workflow.infosheet`,
  :mod:`~osteoplan.workflow.demo`: statistics, FHIR R4 export, patient information sheet, demo data.
"""
