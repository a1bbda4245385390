"""osteoplan.views: reformats along the path, simulated fluoroscopy (DRR), 3D surface view.

Every function returns PNG bytes; :func:`render_all` writes the whole set into a folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from osteoplan.views.geometry import PathSpec, pathspec_from_plan, pathspecs_from_plan

__all__ = ["PathSpec", "pathspec_from_plan", "pathspecs_from_plan", "render_all", "image_plan", "split_image_name"]

#: Reformats through the centre of the needles (every needle drawn on them).
OVERVIEW_REFORMATS = ("axial", "coronal", "sagittal")


def split_image_name(name: str) -> tuple[str, int]:
    """``("drr_bullseye", 2)`` for ``"drr_bullseye_2"`` (the view of needle 2); ``(name, 1)`` without a suffix."""
    base, _, tail = name.rpartition("_")
    if base and tail.isdigit():
        return base, int(tail)
    return name, 1


def image_plan(paths) -> list[tuple[str, str, int, tuple[int, ...]]]:
    """The images of a plan, in report order: ``(image name, view, path index, indices of the paths drawn)``.

    One code path for every procedure, decided by the paths themselves:

    * overview: axial, coronal and sagittal reformats, the AP (through the open mouth for C1-C2) and lateral
      fluoroscopy, with every needle drawn and labelled (several levels, both pedicles);
    * per needle: the axial reformat tilted along the needle at its pedicle when the needle goes through or
      beside a pedicle (:attr:`PathSpec.at_pedicle`), the oblique plane containing the path, and the bull's-eye
      fluoroscopy (the needle end-on, inside its pedicle's ring); a plan with one path keeps the orthogonal
      oblique plane, the view down the path and the progression view too (with several needles the overview
      lateral shows their depth). Needles at the same level are drawn together on their per-needle reformats.

    With one path the names are the view names (``axial``, ``path_oblique``, ``drr_bullseye``...); with
    several, per-needle names end with the needle's number (``pedicle_axial_2``, ``drr_bullseye_2``).
    """
    from osteoplan.views.drr import ap_view_name
    from osteoplan.views.reformat import PEDICLE_VIEWS

    paths = list(paths)
    single = len(paths) == 1
    every = tuple(range(len(paths)))
    out = [(v, v, 0, every) for v in OVERVIEW_REFORMATS]
    for i, p in enumerate(paths):
        sfx = "" if single else f"_{i + 1}"
        same_level = tuple(j for j, q in enumerate(paths) if j == i or (p.level and q.level == p.level))
        views = (PEDICLE_VIEWS if p.at_pedicle else ()) + (
            ("path_oblique", "path_oblique_orthogonal", "down_path") if single else ("path_oblique",))
        out += [(v + sfx, v, i, same_level) for v in views]
    ap = ap_view_name([p.level for p in paths])
    out += [(f"drr_{v}", f"drr_{v}", 0, every) for v in (ap, "lateral")]
    for i in range(len(paths)):
        sfx = "" if single else f"_{i + 1}"
        out += [(f"drr_{v}{sfx}", f"drr_{v}", i, (i,)) for v in (("bullseye", "progression") if single
                                                                  else ("bullseye",))]
    return out


def render_all(out_dir: str | os.PathLike, volume, path: PathSpec, labelmap=None, *, lang: str = "en",
               drr: bool = True, surface: bool = True, drr_pixels: int = 512,
               others: tuple[PathSpec, ...] = ()) -> dict[str, Path]:
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
    others : tuple of PathSpec
        The plan's other needles (several levels, both pedicles): see :func:`image_plan` for what is drawn.

    Returns
    -------
    dict
        Image name -> written PNG path, in report order (:func:`image_plan`, then ``view_3d``).
    """
    from osteoplan.atomic import atomic_write_bytes
    from osteoplan.progress import step
    from osteoplan.views.drr import render_drr_view
    from osteoplan.views.reformat import STANDARD_AXES, render_reformat
    from osteoplan.views.i18n import t
    from osteoplan.views.surface import render_3d

    import numpy as np

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [path, *others]
    centre = np.mean([p.target_lps_mm for p in paths], axis=0)
    # several needles: the overview planes pass through their targets' centroid; every view's frame holds every
    # drawn path whole, skin entry to target (reformat.standard_view_frame, drr.fit_path_geometry)
    overview = {} if not others else {"centre_lps_mm": centre}
    plan_images = image_plan(paths)
    written: dict[str, Path] = {}
    cache: dict = {}
    with step("rendering reformats"):
        for name, view, i, drawn in plan_images:
            if view.startswith("drr_"):
                continue
            p = out / f"{name}.png"
            kw = dict(overview, title=t(f"view_{view}_needles", lang)) if view in STANDARD_AXES and others else {}
            atomic_write_bytes(p, render_reformat(volume, paths[i], view, labelmap, lang=lang, cache=cache,
                                                  others=tuple(paths[j] for j in drawn if j != i), **kw))
            written[name] = p
    if drr:
        with step("rendering simulated fluoroscopy"):
            from osteoplan.views.drr import prepare_drr

            drr_volume = prepare_drr(volume)  # attenuation computed once, shared by every view
            for name, view, i, drawn in plan_images:
                if not view.startswith("drr_"):
                    continue
                p = out / f"{name}.png"
                iso = centre if len(drawn) > 1 else None
                atomic_write_bytes(p, render_drr_view(volume, paths[i], view[4:], labelmap, lang=lang,
                                                      n_pixels=drr_pixels, isocentre_lps_mm=iso,
                                                      drr_volume=drr_volume, others=tuple(paths[j] for j in drawn if j != i)))
                written[name] = p
    if surface and labelmap is not None:
        with step("rendering 3D view"):
            p = out / "view_3d.png"
            atomic_write_bytes(p, render_3d(volume, labelmap, path, lang=lang, others=tuple(others)))
            written["view_3d"] = p
    return written
