"""osteoplan.views: reformats along the path, simulated fluoroscopy (DRR), 3D surface view.

Every function returns PNG bytes; :func:`render_all` writes the whole set into a folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from osteoplan.views.geometry import PathSpec, pathspec_from_plan

__all__ = ["PathSpec", "pathspec_from_plan", "render_all"]


def render_all(out_dir: str | os.PathLike, volume, path: PathSpec, labelmap=None, *, lang: str = "en",
               drr: bool = True, surface: bool = True, drr_pixels: int = 512) -> dict[str, Path]:
    """Render every view of a plan as PNG files into *out_dir* (atomic writes).

    Parameters
    ----------
    out_dir : path-like
        Folder for the images (created).
    volume : Volume
        CT in HU.
    path : PathSpec
        The path to show.
    labelmap : LabelMap, optional
        Structures to outline.
    lang : ``"en"`` or ``"fr"``
    drr, surface : bool
        Render the simulated fluoroscopy views / the 3D view (the slow ones).
    drr_pixels : int
        Detector pixels per side.

    Returns
    -------
    dict
        View name -> written PNG path, in report order.
    """
    from osteoplan.atomic import atomic_write_bytes
    from osteoplan.progress import step
    from osteoplan.views.drr import DRR_VIEWS, render_drr_view
    from osteoplan.views.reformat import REFORMAT_VIEWS, render_reformat
    from osteoplan.views.surface import render_3d

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    cache: dict = {}
    with step("rendering reformats"):
        for v in REFORMAT_VIEWS:
            p = out / f"{v}.png"
            atomic_write_bytes(p, render_reformat(volume, path, v, labelmap, lang=lang, cache=cache))
            written[v] = p
    if drr:
        with step("rendering simulated fluoroscopy"):
            for v in DRR_VIEWS:
                p = out / f"drr_{v}.png"
                atomic_write_bytes(p, render_drr_view(volume, path, v, labelmap, lang=lang, n_pixels=drr_pixels))
                written[f"drr_{v}"] = p
    if surface and labelmap is not None:
        with step("rendering 3D view"):
            p = out / "view_3d.png"
            atomic_write_bytes(p, render_3d(volume, labelmap, path, lang=lang))
            written["view_3d"] = p
    return written
