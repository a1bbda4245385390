"""Fracture risk: SINS (Fisher 2010), Mirels (1989), lesion metrics and CT structural rigidity of the dens.

Public entry points
-------------------
* :func:`osteoplan.risk.sins.compute_sins`, :func:`osteoplan.risk.sins.location_from_level`
* :func:`osteoplan.risk.mirels.compute_mirels`
* :func:`osteoplan.risk.lesion_metrics.measure_lesion`
* :func:`osteoplan.risk.rigidity.rigidity_profile`, :func:`osteoplan.risk.rigidity.section_rigidity`
* :func:`assess` (everything the CT can tell, for the planner and the ``osteoplan risk`` command)
"""

from osteoplan.risk.mirels import MirelsResult, compute_mirels
from osteoplan.risk.sins import SinsResult, compute_sins, location_from_level

__all__ = ["MirelsResult", "SinsResult", "compute_mirels", "compute_sins", "location_from_level", "assess"]


def assess(volume, anatomy, pain=None, alignment=None, **kwargs):
    """CT fracture-risk assessment; see :func:`osteoplan.risk.assessment.assess`."""
    from osteoplan.risk.assessment import assess as _assess

    return _assess(volume, anatomy, pain=pain, alignment=alignment, **kwargs)
