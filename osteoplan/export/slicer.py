"""3D Slicer files: a markups Line (``.mrk.json``) and a segmentation (``.seg.nrrd``).

Formats
-------
* Markups JSON: the schema ``markups-schema-v1.0.3.json`` of 3D Slicer
  (``Modules/Loadable/Markups/Resources/Schema`` in the Slicer repository; documented in the Slicer
  developer guide, "Markups json file format"). Coordinates are written in ``"LPS"`` millimetres,
  which Slicer converts to its internal RAS on load.
* Segmentation NRRD: the ``.seg.nrrd`` convention of 3D Slicer (NRRD with ``space:
  left-posterior-superior`` and ``SegmentN_*`` key/value fields), written with :mod:`slicerio`.
  Overlapping structures (e.g. ``bone`` and ``vertebrae_C2``) are packed into as few layers as
  possible (a 4D NRRD whose first axis is the layer list), as Slicer itself does.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from osteoplan.atomic import atomic_write_text
from osteoplan.errors import InputError

#: Schema identifier written in ``@schema`` (the ID Slicer itself writes; see vtkMRMLMarkupsJsonStorageNode).
MARKUPS_SCHEMA_ID = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/"
    "markups-schema-v1.0.3.json#"
)


def markups_line_dict(points_lps_mm: np.ndarray, name: str = "trajectory",
                      labels: Sequence[str] = ("entry", "target"),
                      color_rgb: Sequence[float] = (1.0, 0.85, 0.0),
                      description: str = "",
                      measurements: Sequence[dict] | None = None) -> dict:
    """Build the JSON document of a Slicer markups Line.

    Parameters
    ----------
    points_lps_mm : array (2, 3)
        The line's two control points (start, end) in LPS millimetres.
    name : str
        Node name shown in Slicer (must not carry identifying data).
    labels : (str, str)
        Control point labels.
    color_rgb : 3 floats in [0, 1]
        Display colour (``selectedColor``, the colour Slicer uses for selected points).
    description : str
        Free-text description of the first control point.
    measurements : list of dict, optional
        Extra static measurements (``{"name", "value", "units"}``); the line length is always added.

    Returns
    -------
    dict
        JSON-serialisable markups document.

    Raises
    ------
    InputError
        If ``points_lps_mm`` is not (2, 3) or not finite.
    """
    pts = np.asarray(points_lps_mm, dtype=float)
    if pts.shape != (2, 3) or not np.all(np.isfinite(pts)):
        raise InputError(f"A markups line needs two finite 3D points (shape (2, 3)); got shape {pts.shape}.")
    if len(labels) != 2:
        raise InputError("A markups line needs exactly two control point labels.")
    color = [float(c) for c in color_rgb]
    length = float(np.linalg.norm(pts[1] - pts[0]))
    cps = []
    for idx, (p, lab) in enumerate(zip(pts, labels)):
        cps.append({
            "id": str(idx + 1),
            "label": str(lab),
            "description": description if idx == 0 else "",
            "associatedNodeID": "",
            "position": [round(float(v), 4) for v in p],
            "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
            "selected": True,
            "locked": True,
            "visibility": True,
            "positionStatus": "defined",
        })
    meas = [{"name": "length", "enabled": True, "value": round(length, 4), "units": "mm",
             "printFormat": "%-#4.4g%s"}]
    for m in measurements or ():
        meas.append({"name": str(m["name"]), "enabled": True, "value": float(m["value"]),
                     "units": str(m.get("units", "")), "printFormat": "%-#4.4g%s"})
    return {
        "@schema": MARKUPS_SCHEMA_ID,
        "markups": [{
            "type": "Line",
            "coordinateSystem": "LPS",
            "coordinateUnits": "mm",
            "locked": True,
            "fixedNumberOfControlPoints": True,
            "labelFormat": "%N-%d",
            "lastUsedControlPointNumber": 2,
            "name": str(name),
            "controlPoints": cps,
            "measurements": meas,
            "display": {
                "visibility": True,
                "opacity": 1.0,
                "color": color,
                "selectedColor": color,
                "activeColor": [0.4, 1.0, 0.0],
                "propertiesLabelVisibility": True,
                "pointLabelsVisibility": True,
                "textScale": 3.0,
                "glyphType": "Sphere3D",
                "glyphScale": 1.0,
                "glyphSize": 5.0,
                "useGlyphScale": True,
                "sliceProjection": False,
                "lineThickness": 0.2,
                "snapMode": "unconstrained",
            },
        }],
    }


def write_markups_line(path: str | os.PathLike, points_lps_mm: np.ndarray, name: str = "trajectory",
                       labels: Sequence[str] = ("entry", "target"), **kwargs) -> Path:
    """Write a Slicer markups Line ``.mrk.json`` (LPS mm) atomically.

    Parameters
    ----------
    path : path-like
        Output file, conventionally ``*.mrk.json``.
    points_lps_mm : array (2, 3)
        Start and end points in LPS millimetres (e.g. skin entry and target).
    name, labels, **kwargs
        See :func:`markups_line_dict`.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    doc = markups_line_dict(points_lps_mm, name=name, labels=labels, **kwargs)
    path = Path(path)
    atomic_write_text(path, json.dumps(doc, indent=2))
    return path


def read_markups_line(path: str | os.PathLike) -> np.ndarray:
    """Read the first markup's control points back, converted to LPS mm, shape (N, 3)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    mk = doc["markups"][0]
    pts = np.array([cp["position"] for cp in mk["controlPoints"]], dtype=float)
    if mk.get("coordinateSystem", "LPS") == "RAS":
        pts[:, :2] *= -1
    return pts


# ---------------------------------------------------------------------------------- segmentation
def _box(mask_kji: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Bounding box of a 3D mask's True voxels as slices (k, j, i); None when empty
    (:func:`osteoplan.anatomy._local.bbox`)."""
    from osteoplan.anatomy._local import bbox

    return bbox(mask_kji)


def _pack_layers(masks: list[np.ndarray], boxes: list | None = None) -> list[int]:
    """Greedy assignment of (possibly overlapping) masks to layers; returns the layer of each mask.

    A mask goes to the first layer it does not overlap (an empty mask: the first layer). *boxes* are the masks'
    bounding boxes (:func:`_box`); overlaps are only looked for inside them.
    """
    if boxes is None:
        boxes = [_box(m) for m in masks]
    layers: list[np.ndarray] = []
    out = []
    for m, box in zip(masks, boxes):
        for li, occ in enumerate(layers):
            if box is None:
                out.append(li)
                break
            if not np.any(occ[box] & m[box]):
                occ[box] |= m[box]
                out.append(li)
                break
        else:
            layers.append(m.copy())
            out.append(len(layers) - 1)
    return out


def write_seg_nrrd(path: str | os.PathLike, labelmap, names: Sequence[str] | None = None) -> Path:
    """Write a label map as a 3D Slicer segmentation ``.seg.nrrd`` (LPS), atomically.

    Parameters
    ----------
    path : path-like
        Output file, conventionally ``*.seg.nrrd``.
    labelmap : osteoplan.anatomy.LabelMap
        Masks (K, J, I) on the CT grid; geometry from ``labelmap.volume.affine``.
    names : list of str, optional
        Structures to write (default: every segmented structure). Empty masks are written too
        (segmented and found absent).

    Returns
    -------
    pathlib.Path

    Notes
    -----
    Segment colours come from :data:`osteoplan.views.colors.STRUCTURE_COLORS` (one table for the
    whole project). The NRRD axes are (i, j, k) (column, row, slice) with ``space directions`` the
    columns 2, 1, 0 of the volume affine; overlapping masks go to separate layers (4D NRRD).
    """
    import slicerio

    from osteoplan.views.colors import structure_color

    names = list(names) if names is not None else labelmap.names()
    if not names:
        raise InputError("The label map has no structure to write; segment at least one structure first.")
    masks = [np.asarray(labelmap.get(n), dtype=bool) for n in names]
    boxes = [_box(m) for m in masks]
    layer_of = _pack_layers(masks, boxes)
    n_layers = max(layer_of) + 1
    K, J, I = labelmap.volume.shape
    # numpy (k, j, i) -> (layer, i, j, k) for Fortran-order NRRD with the layer, then i fastest: filled as a
    # C-order (k, j, i, layer) array (each mask indexes it directly) whose transpose is Fortran-contiguous, so
    # that the writer's Fortran-order bytes are a plain copy
    vox_kji = np.zeros((K, J, I, n_layers), dtype=np.uint8)
    vox = vox_kji.transpose(3, 2, 1, 0)
    segments = []
    label_in_layer = [0] * n_layers
    for n, m, li, box in zip(names, masks, layer_of, boxes):
        label_in_layer[li] += 1
        lv = label_in_layer[li]
        if box is not None:
            vox_kji[box + (li,)][m[box]] = lv  # inside the mask's bounding box only
        ext = _extent_of_box(box)
        segments.append({
            "id": n, "name": n, "labelValue": lv, "layer": li,
            "color": [round(c, 4) for c in structure_color(n)], "colorAutoGenerated": False,
            "nameAutoGenerated": False, "extent": ext, "status": "completed",
        })
    A = labelmap.volume.affine
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, 0] = A[:3, 2]
    ijk_to_lps[:3, 1] = A[:3, 1]
    ijk_to_lps[:3, 2] = A[:3, 0]
    ijk_to_lps[:3, 3] = A[:3, 3]
    seg = {
        "voxels": vox if n_layers > 1 else vox[0],
        "ijkToLPS": ijk_to_lps,
        "segments": segments,
        "containedRepresentationNames": ["Binary labelmap"],
        "masterRepresentation": "Binary labelmap",
        "referenceImageExtentOffset": [0, 0, 0],
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part.nrrd", dir=path.parent)
    os.close(fd)
    try:
        slicerio.write_segmentation(tmp, seg, compression_level=3)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _extent_of_box(box: tuple[slice, slice, slice] | None) -> list[int]:
    """Slicer extent ``[i0, i1, j0, j1, k0, k1]`` (inclusive) of a bounding box from :func:`_box`; empty masks
    (None): ``[0, -1, 0, -1, 0, -1]``."""
    if box is None:
        return [0, -1, 0, -1, 0, -1]
    k, j, i = box
    return [i.start, i.stop - 1, j.start, j.stop - 1, k.start, k.stop - 1]


def read_seg_nrrd(path: str | os.PathLike, volume) -> dict[str, np.ndarray]:
    """Read a ``.seg.nrrd`` written on *volume*'s grid back into {name: bool mask (K, J, I)}."""
    import slicerio

    seg = slicerio.read_segmentation(str(path))
    vox = np.asarray(seg["voxels"])
    out = {}
    for s in seg["segments"]:
        layer = vox[s.get("layer", 0)] if vox.ndim == 4 else vox
        out[s["name"]] = np.transpose(layer == s["labelValue"], (2, 1, 0))
    return out
