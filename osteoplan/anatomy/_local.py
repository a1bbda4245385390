"""Exact local versions of whole-array scipy.ndimage operations on sparse masks (speed, issue 14).

Each function gives the same array, voxel for voxel, as the scipy call named in its docstring, but
works only inside the bounding box of what can change (the mask's bounding box, grown by the
structuring element's half-size where the operation reaches beyond the mask). The canal, the airway
and the bony canal of the vertebral arteries use them on masks that fill a small part of the CT.
The equivalence is checked by brute force in ``tests/anatomy/test_local_ops.py``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def bbox(mask: np.ndarray, margin=0) -> tuple[slice, ...] | None:
    """Bounding box of the True voxels of *mask*, grown by *margin* voxels (int or one per axis) and
    clipped to the array; None when *mask* is empty.

    The indices along the first axis holding a voxel are found in one pass over the array; the other axes are
    then looked at inside that slab only (the same box as per-axis ``any`` over the whole array).
    """
    mask = np.asarray(mask)
    marg = np.broadcast_to(np.asarray(margin, int), (mask.ndim,))
    if mask.ndim == 0:
        return None
    first = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    if first.size == 0:
        return None
    slab = mask[first[0]:first[-1] + 1]
    lo, hi = [int(first[0])], [int(first[-1]) + 1]
    for ax in range(1, mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        nz = np.flatnonzero(slab.any(axis=other))
        lo.append(int(nz[0]))
        hi.append(int(nz[-1]) + 1)
    return tuple(slice(max(a - int(m), 0), min(b + int(m), n)) for a, b, m, n in zip(lo, hi, marg, mask.shape))


def argwhere(mask: np.ndarray) -> np.ndarray:
    """``numpy.argwhere(mask)`` found on the bounding box of *mask* (plus the box's corner).

    Same rows in the same order: the box keeps the raster (lexicographic) order of the voxel indices, and the
    corner added back makes them whole-array indices (intp, shape (n, ndim)). On a small mask in a whole CT the
    box's projections cost far less than scanning every voxel."""
    mask = np.asarray(mask)
    box = bbox(mask) if mask.ndim else None
    if box is None:
        return np.argwhere(mask)
    return np.argwhere(mask[box]) + np.array([s.start for s in box], dtype=np.intp)


def label(mask: np.ndarray, structure=None) -> tuple[np.ndarray, int]:
    """``scipy.ndimage.label(mask, structure)`` computed on the bounding box of *mask*.

    Same labels: scipy numbers the components in the raster order of their first voxel, and a
    bounding box keeps that order (a translation preserves the lexicographic order of (k, j, i)).
    Returns an int32 array of *mask*'s shape and the number of components.
    """
    mask = np.asarray(mask)
    out = np.zeros(mask.shape, np.int32)
    box = bbox(mask)
    if box is None:
        return out, 0
    lab, n = ndi.label(mask[box], structure=structure)
    out[box] = lab
    return out, int(n)


def label_objects(mask: np.ndarray, structure=None) -> tuple[np.ndarray, int, list]:
    """:func:`label` and ``scipy.ndimage.find_objects`` of its labels, both from the bounding box of *mask*.

    The objects are the box's, shifted by its corner: the same slices as ``find_objects`` of the whole-array
    labels (which holds no label outside the box), without a scan of the whole array. Returns (int32 labels of
    *mask*'s shape, number of components, list of slice tuples -- one per label, in label order)."""
    mask = np.asarray(mask)
    out = np.zeros(mask.shape, np.int32)
    box = bbox(mask)
    if box is None:
        return out, 0, []
    lab, n = ndi.label(mask[box], structure=structure)
    out[box] = lab
    objs = [None if sl is None else tuple(slice(s.start + b.start, s.stop + b.start) for s, b in zip(sl, box))
            for sl in ndi.find_objects(lab)]
    return out, int(n), objs


def binary_dilation(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_dilation(mask, structure)`` (one iteration, outside = False) computed on
    the bounding box of *mask* grown by the structure's half-size (nothing farther can be reached).

    *structure* has the dimensionality of *mask* and odd sizes (centred origin)."""
    mask = np.asarray(mask, bool)
    structure = np.asarray(structure, bool)
    out = np.zeros(mask.shape, bool)
    box = bbox(mask, [s // 2 for s in structure.shape])
    if box is None:
        return out
    out[box] = ndi.binary_dilation(mask[box], structure=structure)
    return out


def center_of_mass(mask: np.ndarray) -> tuple:
    """``scipy.ndimage.center_of_mass(mask)`` of a bool mask from its voxel indices.

    Exact: scipy sums ``mask * index`` in float64, which for a mask are integers (exact below 2**53
    in any order), and divides by the count; here the same integer sums are formed from
    :func:`numpy.nonzero` and divided in float64. A tuple of numpy float64, one per axis (an empty
    mask is passed to scipy: NaN with its warning)."""
    m = np.asarray(mask, bool)
    idx = np.nonzero(m)
    n = idx[0].size
    if n == 0:
        return ndi.center_of_mass(m)
    return tuple(np.float64(ix.sum(dtype=np.int64)) / np.float64(n) for ix in idx)


def fill_holes_2d(mask: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_fill_holes(mask)`` of a 2D mask by one labelling of the background.

    scipy grows the background from outside the image (border value 1) through the 4-connected
    background (its default cross structure); what it does not reach is a hole. Here the 4-connected
    background components are labelled once and those with a voxel on the image's edge are the
    outside: the same voxels, without the iterated dilation."""
    m = np.asarray(mask, bool)
    lab, n = ndi.label(~m)
    if n == 0:
        return m.copy()
    outside = np.zeros(n + 1, bool)
    for edge in (lab[0], lab[-1], lab[:, 0], lab[:, -1]):
        outside[edge] = True
    outside[0] = True
    return m | ~outside[lab]
