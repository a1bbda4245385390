"""The PACS link: DICOMweb search (QIDO-RS), retrieve (WADO-RS) and store (STOW-RS) over ``dicomweb-client``.

Configuration in :mod:`osteoplan.pacs.config`, the client in :mod:`osteoplan.pacs.client`, the plan's results
as DICOM objects in :mod:`osteoplan.pacs.results`.
"""

from osteoplan.pacs.client import (InstanceOutcome, PacsClient, RetrievedSeries, SeriesHit, StoreReport,
                                   StudyHit)
from osteoplan.pacs.config import PacsConfig, load_config

__all__ = ["InstanceOutcome", "PacsClient", "PacsConfig", "RetrievedSeries", "SeriesHit", "StoreReport", "StudyHit",
           "load_config"]
