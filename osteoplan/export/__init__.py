"""osteoplan.export: everything a plan folder holds besides ``plan.json``.

:func:`write_all` writes, into the planner's output folder::

    report.html, report.pdf          the report (EN or FR), images embedded
    images/*.png                     reformats, simulated fluoroscopy, 3D view (every needle to place: the overview
                                     views show them all; per needle, the axial through its pedicle, the oblique
                                     plane along it and its bull's-eye; see osteoplan.views.image_plan)
    plan.mrk.json                    Slicer markups line skin entry -> target (LPS), one per trajectory to place
    segmentation.seg.nrrd            Slicer segmentation of the label map (lossless, overlapping layers)
    labels.json                      structure -> mask source, assessed structures
    ct.nii.gz                        the planning CT (so that ``osteoplan report`` can rebuild everything)
    dicom/ct/, dicom/seg.dcm, dicom/sr.dcm   DICOM CT copy, SEG and Comprehensive 3D SR

:func:`load_plan_dir` reads such a folder back (``plan.json`` + ``ct.nii.gz`` + the segmentation).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osteoplan.errors import InputError, safe_path

__all__ = ["ExportOptions", "write_all", "load_plan_dir"]


@dataclass(frozen=True)
class ExportOptions:
    """What :func:`write_all` writes.

    Attributes
    ----------
    lang : ``"en"`` or ``"fr"``
    case_label : pseudonymous case label shown in the report and the DICOM patient ID.
    no_pdf, no_dicom, no_drr, no_3d : skip the slow outputs.
    drr_pixels : detector pixels per side of the DRR views.
    save_inputs : also write ``ct.nii.gz`` (when absent) so the folder can be rebuilt by ``osteoplan report``.
    """

    lang: str = "en"
    case_label: str = "case"
    no_pdf: bool = False
    no_dicom: bool = False
    no_drr: bool = False
    no_3d: bool = False
    drr_pixels: int = 512
    save_inputs: bool = True


def _labelmap_of(anatomy: Any):
    if anatomy is None:
        return None
    return getattr(anatomy, "labelmap", anatomy)


def save_report_inputs(out_dir: str | os.PathLike, plan: Any, volume: Any, anatomy: Any = None,
                       save_ct: bool = True) -> dict[str, Path]:
    """Write what :func:`load_plan_dir` (``osteoplan report``) needs into *out_dir*: ``ct.nii.gz``
    (when absent and *save_ct*), ``segmentation.seg.nrrd`` and ``labels.json`` (when there is a label map).

    Returns
    -------
    dict
        Name -> written path.
    """
    from osteoplan.atomic import atomic_write_text
    from osteoplan.progress import step

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lm = _labelmap_of(anatomy)
    written: dict[str, Path] = {}
    if save_ct and not (out / "ct.nii.gz").exists():
        with step("saving the CT for later rebuilds"):
            written["ct_nifti"] = save_ct_nifti(out / "ct.nii.gz", volume)
    if lm is not None and lm.names():
        from osteoplan.export.slicer import write_seg_nrrd

        with step("writing Slicer segmentation"):
            written["seg_nrrd"] = write_seg_nrrd(out / "segmentation.seg.nrrd", lm)
        atomic_write_text(out / "labels.json", json.dumps(
            {"format": "segmentation.seg.nrrd", "sources": {n: lm.sources.get(n, "unknown") for n in lm.names()},
             "assessed": list(getattr(plan, "assessed", ())), "not_assessed": list(getattr(plan, "not_assessed", ()))},
            indent=2))
        written["labels_json"] = out / "labels.json"
    return written


def write_all(out_dir: str | os.PathLike, plan: Any, volume: Any, anatomy: Any = None,
              options: ExportOptions | None = None) -> dict[str, Path]:
    """Write the report, images, Slicer and DICOM files of a plan into *out_dir*.

    Parameters
    ----------
    out_dir : path-like
        The plan folder (``plan.json`` is written by the planner, not here).
    plan : osteoplan.planning.model.Plan
    volume : osteoplan.imaging.Volume
        The CT the plan was made on.
    anatomy : Anatomy or LabelMap, optional
        Anything with a ``labelmap`` attribute, or a LabelMap.
    options : ExportOptions

    Returns
    -------
    dict
        Name -> written path.
    """
    from osteoplan.atomic import atomic_write_text
    from osteoplan.progress import step

    opts = options or ExportOptions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lm = _labelmap_of(anatomy)
    written: dict[str, Path] = {}
    written.update(save_report_inputs(out, plan, volume, anatomy, save_ct=opts.save_inputs))
    images: dict[str, Path] = {}
    best = getattr(plan, "best", None)
    path = None
    others: tuple = ()
    if best is not None:
        from osteoplan.views import pathspecs_from_plan

        written["markups"] = write_markups(out / "plan.mrk.json", plan)
        path, *rest = pathspecs_from_plan(plan)  # every needle to place (several levels, both pedicles)
        others = tuple(rest)
    else:
        from osteoplan.views.geometry import near_miss_pathspec

        path = near_miss_pathspec(plan)  # the closest candidate, drawn with a NOT FEASIBLE banner
    if path is not None:
        from osteoplan.views import render_all

        images = render_all(out / "images", volume, path, lm, lang=opts.lang, drr=not opts.no_drr,
                            surface=not opts.no_3d, drr_pixels=opts.drr_pixels, others=others)
        written.update({f"image:{k}": v for k, v in images.items()})
    from osteoplan.export.report import write_report

    with step("writing the report"):
        rep = write_report(out, plan, images, lang=opts.lang, case_label=opts.case_label, pdf=not opts.no_pdf)
    written.update({f"report_{k}": v for k, v in rep.items()})
    if not opts.no_dicom:
        from osteoplan.export.dicom import write_dicom
        from osteoplan.export.report import safe_case_label

        with step("writing DICOM CT, SEG and SR"):
            dw = write_dicom(out / "dicom", plan, volume, lm, case_label=safe_case_label(opts.case_label))
        written.update({f"dicom_{k}": v for k, v in dw.items()})
    return written


def trajectory_name(traj: Any, number: int, n_placed: int) -> str:
    """Name of a placed trajectory in the Slicer and DICOM files: ``"osteoplan trajectory"`` for a plan with one
    path, ``"needle 2 L1 right"`` (its number, level and side) for several."""
    if n_placed <= 1:
        return "osteoplan trajectory"
    level = getattr(traj, "level", None)
    return f"needle {number}" + (f" {level}" if level else "") + f" {traj.side}"


def write_markups(path: str | os.PathLike, plan: Any) -> Path:
    """Slicer markups file with one line (skin entry -> target, LPS) per trajectory to place (``plan.placed``)."""
    from osteoplan.atomic import atomic_write_text
    from osteoplan.export.slicer import markups_line_dict

    placed = list(plan.placed)
    doc = None
    for n, traj in enumerate(placed, start=1):
        d = markups_line_dict([traj.skin_entry_lps_mm, traj.target_lps_mm], name=trajectory_name(traj, n, len(placed)),
                              labels=("skin entry", "target"),
                              measurements=[{"name": "depth skin to bone", "value": traj.depth_skin_to_bone_mm,
                                             "units": "mm"}])
        if doc is None:
            doc = d
        else:
            doc["markups"].extend(d["markups"])
    path = Path(path)
    atomic_write_text(path, json.dumps(doc, indent=2))
    return path


def save_ct_nifti(path: str | os.PathLike, volume: Any) -> Path:
    """Write the CT as NIfTI (RAS at the edge, HU int16) atomically.

    The NIfTI bytes are nibabel's (:meth:`osteoplan.imaging.Volume.to_nifti`, ``to_bytes``); they are
    gzip-compressed with Huffman coding only (zlib ``Z_HUFFMAN_ONLY``, no match search), an ordinary gzip stream
    that every gzip/zlib reader decodes to the same bytes as nibabel's own ``.nii.gz`` writer. Measured on CThead
    (256 x 256 x 113 int16, one core, min of 3): 0.12 s CPU and 8.7 MB, against 0.18 s and 7.4 MB at nibabel's
    default (deflate level 1) and 0.70 s and 7.3 MB at level 6: CT noise leaves few long matches to find.
    Written to a temporary sibling, then renamed.

    Parameters
    ----------
    path : path-like
        Output ``.nii.gz`` file.
    volume : osteoplan.imaging.Volume
        The CT, array (K, J, I) HU.

    Returns
    -------
    pathlib.Path
    """
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = volume.to_nifti()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part.nii.gz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            stream = _HuffmanGzipWriter(fh)
            img.to_stream(stream)  # nibabel writes header then voxels, slice by slice, through the compressor
            stream.finish()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class _HuffmanGzipWriter(io.RawIOBase):
    """A write-only, forward-only file object that gzip-compresses what is written into *fh* with Huffman
    coding only (zlib ``Z_HUFFMAN_ONLY``). nibabel writes through it like through a bz2 file (no seeking)."""

    def __init__(self, fh) -> None:
        import zlib

        super().__init__()
        self._fh = fh
        # wbits 31: gzip container (header, CRC-32, size); memLevel 9: the fastest Huffman-only setting
        self._comp = zlib.compressobj(1, zlib.DEFLATED, 31, 9, zlib.Z_HUFFMAN_ONLY)
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data)
        if not view.c_contiguous:
            view = memoryview(view.tobytes())
        view = view.cast("B")
        self._fh.write(self._comp.compress(view))
        self._pos += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0 and offset == self._pos:
            return self._pos
        raise OSError("a gzip stream being written cannot seek")

    def finish(self) -> None:
        """Write the end of the deflate stream and the gzip trailer."""
        self._fh.write(self._comp.flush())


def load_plan_dir(plan_dir: str | os.PathLike):
    """Read a plan folder back: ``(plan, volume, labelmap or None)``.

    Looks for ``plan.json``, the CT (``ct.nii.gz``) and the label map (``segmentation.seg.nrrd``, or
    ``labels.nii.gz`` + ``labels.json`` with ``{"labels": {value: name}}``).

    Raises
    ------
    InputError
        Missing ``plan.json`` or CT, or a CT whose grid differs from the one in ``plan.json``.
    """
    import numpy as np

    from osteoplan.anatomy.labelmap import LabelMap
    from osteoplan.imaging import read_volume
    from osteoplan.planning.model import load_plan

    d = Path(plan_dir)
    if not d.is_dir():
        raise InputError(f"Plan folder {safe_path(d, 'folder')} not found; give the folder written by 'osteoplan plan'.")
    if not (d / "plan.json").is_file():
        raise InputError(f"No plan.json in {safe_path(d)}; give the folder written by 'osteoplan plan'.")
    plan = load_plan(d / "plan.json")
    ct = d / "ct.nii.gz"
    if not ct.is_file():
        raise InputError(f"No ct.nii.gz in {safe_path(d)}; re-run 'osteoplan plan' (it saves the CT there).")
    volume = read_volume(ct)
    if tuple(volume.shape) != tuple(plan.ct.shape_kji) or not np.allclose(volume.affine, np.asarray(plan.ct.affine),
                                                                          atol=1e-3):
        raise InputError("The CT in the plan folder does not match the grid recorded in plan.json; "
                         "re-run 'osteoplan plan' to rebuild the folder.")
    sources: dict[str, str] = {}
    if (d / "labels.json").is_file():
        meta = json.loads((d / "labels.json").read_text(encoding="utf-8"))
        sources = dict(meta.get("sources", {}))
    else:
        meta = {}
    lm = None
    if (d / "segmentation.seg.nrrd").is_file():
        from osteoplan.export.slicer import read_seg_nrrd

        masks = read_seg_nrrd(d / "segmentation.seg.nrrd", volume)
        lm = LabelMap(volume, masks, {n: sources.get(n, "segmentation.seg.nrrd") for n in masks})
    elif (d / "labels.nii.gz").is_file():
        import nibabel as nib

        from osteoplan.imaging.volume import Volume

        lab = Volume.from_nifti(nib.load(str(d / "labels.nii.gz")))
        arr = np.rint(lab.array).astype(np.int32)
        table = {int(k): v for k, v in meta.get("labels", {}).items()}
        lm = LabelMap(volume, {n: arr == v for v, n in table.items()},
                      {n: sources.get(n, "labels.nii.gz") for n in table.values()})
    return plan, volume, lm
