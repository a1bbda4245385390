"""C2 cementoplasty by the lateral / posterolateral route: a needle to the lesion in C2, clear of the vertebral
artery's bony canal.

The route a team chooses when the dens screw is not indicated (Guinebert, Amoretti, Kastler, J Vasc Interv Radiol
2024;35:1778; Mont'Alverne et al., AJNR 2005;26:1641: C2 PMMA 2.9 +/- 0.7 mL). The site is C2 from the dens
landmarks (as for the screw); the target zone is the segmented lesion; the vertebral artery is known on a plain CT
by its bony canal (transverse foramina, :mod:`osteoplan.anatomy.foramina`), which the protocol keeps clear.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from osteoplan.errors import PlanningError
from osteoplan.planning.procedures import keep_deep
from osteoplan.planning.procedures.c2_dens import C2DensScrew
from osteoplan.planning.site import Site

if TYPE_CHECKING:  # pragma: no cover
    from osteoplan.planning.fields import ROIFields
    from osteoplan.planning.protocol import Protocol


#: The warning of every C2 cementoplasty plan (:meth:`C2Cementoplasty.route_warnings`); translated by
#: :mod:`osteoplan.views.i18n`.
VERTEBRAL_ARTERY_WARNING = (
    "Lateral / posterolateral route to C2: the needle passes next to the vertebral artery, whose course near C1-C2 "
    "varies (it enters the spinal canal between C1 and C2 in 113 of 3386 patients on CT angiography, Kim, J Korean "
    "Neurosurg Soc 2018, PMID 29526062); a CT without contrast shows only its bony canal: check the artery on a CT "
    "angiogram before the procedure.")


class LesionTarget(BaseModel):
    """The needle tip inside the lesion: grid points of the lesion at least ``inside_cortex_min_mm`` inside C2 and
    ``inside_lesion_min_mm`` inside the lesion (its centre rather than its rim), at most ``max_targets``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    inside_cortex_min_mm: float = Field(ge=0, le=10)
    inside_lesion_min_mm: float = Field(ge=0, le=10)
    grid_step_mm: float = Field(gt=0.2, le=5)
    max_targets: int = Field(ge=1, le=2000)


class C2Cementoplasty(C2DensScrew):
    """C2 cementoplasty: the dens landmarks give the site, the lesion gives the target zone."""

    name = "c2-cementoplasty"
    title = "C2 cementoplasty (lateral / posterolateral needle)"
    registry_type = "vertebroplasty"  # cement alone in a vertebra (osteoplan.workflow.models.procedure_type_for)
    target_model = LesionTarget
    axis_name = "dens_axis"
    extra_constraints: dict[str, str] = {}
    #: The needle passes no narrow bone section on its way to the lesion (no dens waist, no pedicle isthmus as in a
    #: thoracolumbar transpedicular vertebroplasty): its width limits nothing (the screw's waist rule does not apply).
    width_limit = None

    def route_warnings(self, site: Site, protocol: "Protocol") -> list[str]:
        """The vertebral artery, what limits this route: every lateral / posterolateral path to C2 passes next to it
        (clinical primer: "a CT angiogram first"), its course near C1-C2 varies, and a plain CT shows only its bony
        canal, which is what the plan measures (:mod:`osteoplan.anatomy.foramina`).

        Source of the figure: Kim MS, "C2 segmental-type vertebral artery diagnosed using computed tomographic
        angiography", J Korean Neurosurg Soc 2018 (PMID 29526062): 113 of 3386 patients had an artery entering the
        canal between C1 and C2.
        """
        return [VERTEBRAL_ARTERY_WARNING]

    def sites(self, anatomy: Any, protocol: "Protocol", level: str | None = None, side: str = "best") -> list[Site]:
        """One site: C2 from the dens landmarks, without a direction cone (the route's angle grid), the region of
        interest around the C2 body. Raises as :meth:`C2DensScrew.sites`."""
        s = super().sites(anatomy, protocol, level, side)[0]
        return [Site(procedure=self.name, level="C2", bone_label=s.bone_label, centre_lps_mm=s.references["body_centre"],
                     axis_unit=s.axis_unit, anterior_unit=s.anterior_unit, references=s.references, cone_axes={},
                     roi_above_mm=30.0, roi_below_mm=20.0, width_limit_mm=None, landmarks=s.landmarks,
                     method=s.method)]

    def target_zone(self, site: Site, protocol: "Protocol") -> None:
        """None: the target zone is the segmented lesion, not a box (:meth:`target_points`)."""
        return None

    def target_points(self, fields: "ROIFields", site: Site, protocol: "Protocol", r_contain_mm: float) -> np.ndarray:
        """Lesion grid points (ROI voxel grid subsampled by ``grid_step_mm``) deep enough inside C2 and the lesion.

        Raises
        ------
        PlanningError
            No lesion segmented in C2 (the target of a cementoplasty).
        """
        from scipy import ndimage as ndi

        t = protocol.target
        if not fields.lesion_assessed or not fields.lesion.any():
            raise PlanningError("No lesion is segmented in C2: a cementoplasty targets the lesion. Give a lesion mask "
                                "(--masks with a 'lesion' label) or check the lesion segmentation.")
        depth_les = ndi.distance_transform_edt(fields.lesion.astype(bool), sampling=fields.spacing_mm)
        step = np.maximum(1, np.rint(t.grid_step_mm / np.asarray(fields.spacing_mm)).astype(int))
        sub = np.zeros(fields.shape, bool)
        sub[::step[0], ::step[1], ::step[2]] = True
        idx = np.argwhere(sub & (depth_les >= t.inside_lesion_min_mm) & fields.lesion.astype(bool))
        if len(idx) == 0:
            idx = np.argwhere(sub & fields.lesion.astype(bool))
        pts = (fields.affine[:3, :3] @ idx.T.astype(float)).T + fields.affine[:3, 3]
        need = max(t.inside_cortex_min_mm, r_contain_mm + protocol.implant().containment_margin_mm)
        return keep_deep(fields, pts, need, t.max_targets)

    def no_target_message(self, fields: "ROIFields", site: Site, protocol: "Protocol", r_contain_mm: float) -> str:
        return (f"No point of the lesion lies {protocol.target.inside_cortex_min_mm:g} mm inside C2 (bone source: "
                f"{fields.bone_source}): the lesion may have destroyed the cortex around it; check the masks.")

    def violations(self, ev: Any, fields: "ROIFields", targets: np.ndarray, dirs: np.ndarray, site: Site,
                   protocol: "Protocol", thread_mm: float) -> dict[str, np.ndarray]:
        return {}

    def terms(self, ev: Any, targets: np.ndarray, dirs: np.ndarray, bone_entry: np.ndarray, site: Site,
              protocol: "Protocol", implant_len: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    def trajectory_figures(self, site: Site, target: np.ndarray, direction: np.ndarray, bone_entry: np.ndarray,
                           protocol: "Protocol", thread_mm: float, fields: "ROIFields | None" = None,
                           r_instr_mm: float = 0.0, entry_skip_mm: float = 0.0) -> dict[str, Any]:
        ax = site.axis_unit
        return {"angle_to_dens_axis_deg": round(float(np.degrees(np.arccos(np.clip(abs(direction @ ax), 0, 1)))), 1)}

    def route_reference(self, site: Site) -> dict[str, Any]:
        return {"point": site.references["body_centre"], "en": "the C2 body centre", "fr": "le centre du corps de C2",
                "point_key": "c2_body_centre_z_mm", "gap_key": "c2_body_to_ct_lower_edge_mm",
                "advice_en": "Extend the scan to C4", "advice_fr": "Étendre l'acquisition jusqu'à C4"}
