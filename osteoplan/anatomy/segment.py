"""Classical CT segmentation that needs no trained weights (scipy.ndimage / scikit-image).

Structures: the body outline, bone (with its cortical part), and -- only on a contrast-enhanced CT,
which is *detected*, never assumed -- the large neck vessels as bright tubes; the airway
(:mod:`osteoplan.anatomy.airway`) and the spinal canal (:mod:`osteoplan.anatomy.canal`) have their
own modules, run from :func:`run_classical` here.

Every threshold is either relative to the patient's own soft-tissue intensity or a configurable
default; none of the defaults below has a published source unless stated (they are engineering
defaults chosen on the project's test data and labelled as such).

Internally the array is viewed in a *canonical* orientation: ``k`` ascending towards superior,
``j`` towards posterior, ``i`` towards patient left (see :class:`Canon`). Masks are returned on
the volume's own grid, indexed (k, j, i).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from osteoplan.errors import AnatomyError, InputError
from osteoplan.imaging.volume import Volume
from osteoplan.anatomy import _local

if TYPE_CHECKING:  # imported for annotations only (canal.py imports this module)
    from osteoplan.anatomy.canal import CanalResult
    from osteoplan.anatomy.labelmap import LabelMap

# --------------------------------------------------------------------------------- defaults
#: HU above which a voxel may belong to the body (engineering default, no published source).
BODY_THRESHOLD_HU = -400.0
#: HU below which a (smoothed) voxel is air (engineering default).
AIR_THRESHOLD_HU = -500.0
#: Lower / upper bounds for the cancellous-bone threshold derived from soft tissue (engineering defaults).
CANCELLOUS_MIN_HU, CANCELLOUS_MAX_HU = 140.0, 260.0
#: Bounds for the cortical threshold (Otsu between cancellous and dense bone; engineering defaults).
CORTICAL_MIN_HU, CORTICAL_MAX_HU = 400.0, 900.0
#: HU range of contrast-filled vessels (arterial/venous phase; engineering default).
CONTRAST_VESSEL_HU = (150.0, 500.0)


# --------------------------------------------------------------------------------- orientation
@dataclass(frozen=True)
class Canon:
    """View of a volume's array in canonical orientation (k -> S, j -> P, i -> L).

    Only axis permutations and flips are applied (the nearest axis-aligned orientation), so the
    view is exact for axial CT and approximate (fine for segmentation) for small obliquities.

    Attributes
    ----------
    perm : tuple of 3 ints
        ``canonical_axis[a] = original axis perm[a]``.
    flip : tuple of 3 bools
        Whether canonical axis ``a`` is reversed with respect to the original axis.
    spacing_mm : (3,) array
        Spacing along the canonical axes (S, P, L) in mm.
    """

    perm: tuple[int, int, int]
    flip: tuple[bool, bool, bool]
    spacing_mm: np.ndarray
    shape: tuple[int, int, int]

    @classmethod
    def of(cls, volume: Volume) -> "Canon":
        d = volume.direction  # columns = LPS direction of each array axis
        targets = (2, 1, 0)  # canonical k -> world z (S), j -> y (P), i -> x (L)
        perm: list[int] = []
        flip: list[bool] = []
        for w in targets:
            comps = np.abs(d[w, :]).copy()
            for p in perm:
                comps[p] = -1
            a = int(np.argmax(comps))
            perm.append(a)
            flip.append(bool(d[w, a] < 0))
        sp = volume.spacing_mm[perm]
        shape = tuple(int(volume.shape[p]) for p in perm)
        return cls(tuple(perm), tuple(flip), sp, shape)  # type: ignore[arg-type]

    def to_canon(self, arr: np.ndarray) -> np.ndarray:
        """Original (k, j, i) array -> canonical (S, P, L) view (no copy)."""
        out = np.transpose(arr, self.perm)
        sl = tuple(slice(None, None, -1) if f else slice(None) for f in self.flip)
        return out[sl]

    def from_canon(self, arr: np.ndarray) -> np.ndarray:
        """Canonical array -> original (k, j, i) array (contiguous copy)."""
        sl = tuple(slice(None, None, -1) if f else slice(None) for f in self.flip)
        out = arr[sl]
        inv = np.argsort(self.perm)
        return np.ascontiguousarray(np.transpose(out, inv))

    def index_to_original(self, idx_canon: np.ndarray) -> np.ndarray:
        """Canonical (..., 3) indices -> original (k, j, i) indices (fractional allowed)."""
        c = np.asarray(idx_canon, dtype=np.float64).copy()
        for a in range(3):
            if self.flip[a]:
                c[..., a] = (self.shape[a] - 1) - c[..., a]
        out = np.empty_like(c)
        for a in range(3):
            out[..., self.perm[a]] = c[..., a]
        return out

    def index_from_original(self, idx: np.ndarray) -> np.ndarray:
        """Original (k, j, i) indices (..., 3) -> canonical indices."""
        o = np.asarray(idx, dtype=np.float64)
        c = np.stack([o[..., self.perm[a]] for a in range(3)], axis=-1)
        for a in range(3):
            if self.flip[a]:
                c[..., a] = (self.shape[a] - 1) - c[..., a]
        return c


def _disk(radius_vox: float) -> np.ndarray:
    r = max(int(np.ceil(radius_vox)), 1)
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return (x * x + y * y) <= radius_vox * radius_vox + 1e-6


#: Voxels per chunk in :func:`_label_sizes` / :func:`_lookup` (their int64 index copies stay a few MB).
_CHUNK = 1 << 20


def _label_sizes(lab: np.ndarray, n: int) -> np.ndarray:
    """``np.bincount(lab.ravel(), minlength=n + 1)`` (voxels per label, label 0 included), counted chunk by chunk:
    bincount copies its input to int64, and on a whole CT that copy (8 bytes per voxel, fresh pages every call)
    costs more than the count itself. Same integers, shape (n + 1,) (longer when *lab* holds labels above n).

    A chunk less than 1/8 labelled (most label images of the anatomy: 1-2 % of a CT box) counts only its non-zero
    voxels (``np.bincount(chunk[chunk != 0])``, label 0 = the chunk's size minus them): the same counts; ~2-4x
    less time on such chunks, as bincount's int64 copy and count pass cover the few labelled voxels only."""
    f = lab.reshape(-1)
    out = np.zeros(n + 1, np.int64)
    for a in range(0, f.size, _CHUNK):
        ch = f[a:a + _CHUNK]
        nz = int(np.count_nonzero(ch))
        if nz * 8 < ch.size:
            c = np.bincount(ch[ch != 0], minlength=n + 1)
            c[0] += ch.size - nz
        else:
            c = np.bincount(ch, minlength=n + 1)
        if c.size > out.size:
            c[:out.size] += out
            out = c
        else:
            out[:c.size] += c
    return out


def _lookup(table: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """``table[lab]`` (a per-label value for every voxel), chunk by chunk for the same reason as
    :func:`_label_sizes`; shape of *lab*, dtype of *table*."""
    f = lab.reshape(-1)
    out = np.empty(f.size, table.dtype)
    for a in range(0, f.size, _CHUNK):
        np.take(table, f[a:a + _CHUNK], out=out[a:a + _CHUNK])
    return out.reshape(lab.shape)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = _local.cc_label(mask)
    if n <= 1:
        return mask.astype(bool)
    sizes = _label_sizes(lab, n)
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def _as_bool(mask: np.ndarray) -> np.ndarray:
    """*mask* as bool without a copy when it is bool already (other dtypes: ``uint8`` cast, non-zero -- the
    conversion the scipy-filter versions made)."""
    m = np.asarray(mask)
    return m if m.dtype == bool else np.asarray(m, np.uint8) != 0


def _last_axis_window(m: np.ndarray, h: int, dilate: bool) -> np.ndarray:
    """OR (dilate) / AND (erode) of *m* over the window ``x - h .. x + h`` along its last axis, voxels outside the
    array False: what :func:`_shift_or_and` gives for ``offsets = range(1, h + 1)`` on the last axis.

    The rows are laid end to end in one flat buffer with h False voxels before each row and after the last one, so
    that every shift is one contiguous pass over the whole buffer (shifted views of the last axis are slow: one
    short inner loop per row) -- a window reaching past a row's end meets those False voxels, never the next row.
    The windows of length 1, 2, 4, ... are each the OR / AND of two shorter ones (van Herk's idea in its simplest
    form; the last of two overlapping ones, harmless as OR and AND are idempotent): about log2(2h + 1) passes
    instead of 2h. Returns a new C-contiguous bool array of *m*'s shape.
    """
    n = m.shape[-1]
    rows = m.size // n if n else 0
    width = n + h
    size = h + rows * width
    cur = np.zeros(size, bool)
    cur[h:].reshape(rows, width)[:, :n] = m.reshape(rows, n)
    nxt = np.empty(size, bool)
    op = np.logical_or if dilate else np.logical_and
    w = 2 * h + 1
    length = 1  # cur[s] = OR / AND of the buffer over s .. s + length - 1 (False beyond its end)
    while length < w:
        d = min(length, w - length)
        op(cur[:size - d], cur[d:], out=nxt[:size - d])
        nxt[size - d:] = cur[size - d:] if dilate else False
        cur, nxt = nxt, cur
        length += d
    # the voxel at buffer index p = h + r * width + c: its centred window starts at p - h = r * width + c
    return np.ascontiguousarray(cur[:rows * width].reshape(rows, width)[:, :n]).reshape(m.shape)


def _shift_or_and(m: np.ndarray, axis: int, offsets, dilate: bool) -> np.ndarray:
    """OR (dilate) / AND (erode) of *m* shifted by every offset in *offsets* (``+d`` and ``-d`` for each) along
    *axis*; voxels shifted in from outside the array are False (offset 0 = *m* itself is always included)."""
    out = m.copy()
    n = m.shape[axis]
    for d in offsets:
        if d == 0:
            continue
        lo = [slice(None)] * m.ndim
        hi = [slice(None)] * m.ndim
        if d >= n:
            if not dilate:  # both neighbours at this offset lie outside the array: False
                out[...] = False
            continue
        lo[axis], hi[axis] = slice(d, None), slice(None, n - d)
        lo_t, hi_t = tuple(lo), tuple(hi)
        if dilate:
            out[lo_t] |= m[hi_t]
            out[hi_t] |= m[lo_t]
        else:
            out[lo_t] &= m[hi_t]
            out[hi_t] &= m[lo_t]
            edge = [slice(None)] * m.ndim
            edge[axis] = slice(None, d)
            out[tuple(edge)] = False
            edge[axis] = slice(n - d, None)
            out[tuple(edge)] = False
    return out


def _box_dilate(mask: np.ndarray, size: tuple[int, int, int]) -> np.ndarray:
    """``binary_dilation`` with a box structuring element of odd *size* (voxels per axis).

    Separable: one axis after the other, each the OR of the mask shifted by -h..h voxels (h = size // 2), which
    is what ``scipy.ndimage.maximum_filter(mask, size, mode="constant", cval=0) > 0`` computes (the previous
    implementation, kept as the test reference) -- on bool arrays, without the filter's double-precision line
    buffers (about 6x faster). Returns a new bool array of the mask's shape.
    """
    if any(int(s) % 2 == 0 for s in size):
        return ndi.maximum_filter(np.asarray(mask, np.uint8), size=size, mode="constant", cval=0) > 0
    out = _as_bool(mask)
    for ax, s in enumerate(size):
        if s > 1:
            h = int(s) // 2
            out = (_last_axis_window(out, h, dilate=True) if ax == out.ndim - 1 and h >= 3
                   else _shift_or_and(out, ax, range(1, h + 1), dilate=True))
    return out.copy() if out is mask else out


def _box_erode(mask: np.ndarray, size: tuple[int, int, int]) -> np.ndarray:
    """``binary_erosion`` with a box structuring element of odd *size* (outside the array = False).

    Separable like :func:`_box_dilate` (AND of the shifts; the h voxels at each end of an axis are False, since
    their box reaches outside), the same voxels as ``scipy.ndimage.minimum_filter(mask, size, mode="constant",
    cval=0) > 0``. Returns a new bool array of the mask's shape.
    """
    if any(int(s) % 2 == 0 for s in size):
        return ndi.minimum_filter(np.asarray(mask, np.uint8), size=size, mode="constant", cval=0) > 0
    out = _as_bool(mask)
    for ax, s in enumerate(size):
        if s > 1:
            h = int(s) // 2
            out = (_last_axis_window(out, h, dilate=False) if ax == out.ndim - 1 and h >= 3
                   else _shift_or_and(out, ax, range(1, h + 1), dilate=False))
    return out.copy() if out is mask else out


def _footprint_rows(footprint: np.ndarray) -> list[tuple[int, int, int]] | None:
    """(k offset, j offset, half-width along i) of each non-empty row of a 3D footprint of odd shape, symmetric
    through its centre, whose rows are runs centred on the middle column (:func:`_disk`, a ball); None for any
    other footprint."""
    fp = np.asarray(footprint, bool)
    if fp.ndim != 3 or any(n % 2 == 0 for n in fp.shape) or not np.array_equal(fp, fp[::-1, ::-1, ::-1]):
        return None
    ck, cj, ci = (n // 2 for n in fp.shape)
    rows = []
    for r in range(fp.shape[0]):
        for q in range(fp.shape[1]):
            idx = np.flatnonzero(fp[r, q])
            if idx.size == 0:
                continue
            w = ci - int(idx[0])
            if int(idx[-1]) != ci + w or idx.size != 2 * w + 1:
                return None
            rows.append((r - ck, q - cj, w))
    return rows if any(dk == 0 and dj == 0 for dk, dj, _ in rows) else None


def _morph_rows(mask: np.ndarray, footprint: np.ndarray, dilate: bool) -> np.ndarray:
    """Binary dilation / erosion (outside the array = False) of a 3D mask by a 3D *footprint* with centred row
    runs (:func:`_footprint_rows`): the OR / AND over the footprint's rows of the mask run-filtered along i (the
    row's half-width) and shifted by the row's (k, j) offset. The same voxels as ``scipy.ndimage.binary_dilation``
    / ``binary_erosion`` with ``structure=footprint`` (border_value 0; the footprint is point-symmetric, so its
    reflection does not matter), in a few whole-array boolean passes per row instead of a test of every
    footprint voxel at every array voxel. Any other footprint goes to scipy."""
    rows = _footprint_rows(footprint)
    m = _as_bool(mask)
    if rows is None or m.ndim != 3:
        f = ndi.binary_dilation if dilate else ndi.binary_erosion
        return f(m, structure=np.asarray(footprint, bool))
    runs: dict[int, np.ndarray] = {0: m}
    for w in range(1, max(w for _, _, w in rows) + 1):  # runs[w] = 1D box filter of half-width w along i
        runs[w] = _shift_or_and_prev(runs[w - 1], m, w, dilate)
    out = runs[next(w for dk, dj, w in rows if dk == 0 and dj == 0)].copy()
    K, J = m.shape[0], m.shape[1]
    for dk, dj, w in rows:
        if dk == 0 and dj == 0:
            continue
        src = runs[w]
        if abs(dk) >= K or abs(dj) >= J:
            if not dilate:
                out[...] = False
            continue
        # out[k, j] op= src[k + dk, j + dj] where that lies in the array (else False)
        o = (slice(max(-dk, 0), K - max(dk, 0)), slice(max(-dj, 0), J - max(dj, 0)))
        i_ = (slice(max(dk, 0), K + min(dk, 0)), slice(max(dj, 0), J + min(dj, 0)))
        if dilate:
            out[o] |= src[i_]
        else:
            out[o] &= src[i_]
            if dk > 0:
                out[K - dk:] = False
            elif dk < 0:
                out[:-dk] = False
            if dj > 0:
                out[:, J - dj:] = False
            elif dj < 0:
                out[:, :-dj] = False
    return out


def _plane_morph(mask: np.ndarray, footprint: np.ndarray, dilate: bool) -> np.ndarray:
    """Binary dilation / erosion (outside = False) of a (K, J, I) mask by a 2D *footprint* in every axial (j, i)
    plane: :func:`_morph_rows` with ``footprint[None]`` -- the same voxels as ``scipy.ndimage.binary_dilation`` /
    ``binary_erosion`` with ``structure=footprint[None]`` (border_value 0)."""
    return _morph_rows(mask, np.asarray(footprint, bool)[None], dilate)


def _shift_or_and_prev(prev: np.ndarray, m: np.ndarray, w: int, dilate: bool) -> np.ndarray:
    """Run filter of half-width *w* along i from the one of half-width ``w - 1`` (*prev*) and the mask *m*: adds
    the two voxels at +-w (outside the array = False)."""
    out = prev.copy()
    n = m.shape[2]
    if w >= n:
        if not dilate:
            out[...] = False
        return out
    if dilate:
        out[:, :, w:] |= m[:, :, :n - w]
        out[:, :, :n - w] |= m[:, :, w:]
    else:
        out[:, :, w:] &= m[:, :, :n - w]
        out[:, :, :n - w] &= m[:, :, w:]
        out[:, :, :w] = False
        out[:, :, n - w:] = False
    return out


def _cross_dilate(mask: np.ndarray) -> np.ndarray:
    """``binary_dilation(mask, structure=generate_binary_structure(3, 1))`` (the voxel and its 6 face
    neighbours, outside = False) as the OR of the mask shifted by one voxel along each axis."""
    m = _as_bool(mask)
    out = m.copy()
    for ax in range(m.ndim):
        n = m.shape[ax]
        if n < 2:
            continue
        lo = [slice(None)] * m.ndim
        hi = [slice(None)] * m.ndim
        lo[ax], hi[ax] = slice(1, None), slice(None, n - 1)
        out[tuple(lo)] |= m[tuple(hi)]
        out[tuple(hi)] |= m[tuple(lo)]
    return out


def _plane_closing(mask: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_closing(mask, structure=footprint[None])`` (dilation then erosion, both with
    border_value 0) by :func:`_plane_morph`."""
    return _plane_morph(_plane_morph(mask, footprint, True), footprint, False)


def fill_holes_in_planes(mask: np.ndarray, axis: int = 0) -> np.ndarray:
    """2D hole filling of every plane perpendicular to *axis* (:func:`osteoplan.anatomy._local.fill_holes_planes`).

    Equivalent to :func:`scipy.ndimage.binary_fill_holes` applied plane by plane (background
    4-connected in the plane), but much faster on large volumes. The filling runs on the mask's
    bounding box grown by one background voxel in the plane (clipped to the array): the background
    outside the box is one connected region reaching the plane's edge in every plane, so the holes
    found are the same as on the whole array.
    """
    m = np.asarray(mask, bool)
    if not m.any():
        return m.copy()
    lo, hi = [], []
    for d in range(3):
        other = tuple(x for x in range(3) if x != d)
        nz = np.flatnonzero(m.any(axis=other))
        grow = 0 if d == axis else 1
        lo.append(max(int(nz[0]) - grow, 0))
        hi.append(min(int(nz[-1]) + 1 + grow, m.shape[d]))
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    out = m.copy()
    # the same voxels either way: plane by plane (faster for axes 0 and 1) or one plane-wise labelling (axis 2)
    out[box] = _local.fill_holes_planes(m[box], axis) if axis != 2 else _fill_holes_in_planes_full(m[box], axis)
    return out


def _fill_holes_in_planes_full(m: np.ndarray, axis: int) -> np.ndarray:
    """:func:`fill_holes_in_planes` on the whole array by one plane-wise labelling of the background (background
    touching the in-plane faces is outside); kept as the reference the tests compare the plane-by-plane fill with."""
    st = np.zeros((3, 3, 3), bool)
    idx = [1, 1, 1]
    for d in range(3):
        if d == axis:
            continue
        for v in (0, 2):
            q = list(idx)
            q[d] = v
            st[tuple(q)] = True
    st[1, 1, 1] = True
    lab, n = _local.cc_label(~m, structure=st)
    if n == 0:
        return m.copy()
    border = np.zeros(n + 1, bool)
    for d in range(3):
        if d == axis:
            continue
        for face in (0, -1):
            sl = [slice(None)] * 3
            sl[d] = face
            border[np.unique(lab[tuple(sl)])] = True
    border[0] = True
    holes = _lookup(~border, lab)  # = ~border[lab]: inverting the per-label table, not the volume
    return np.logical_or(m, holes, out=holes)


def _fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    return fill_holes_in_planes(mask, 0)


_SMOOTH_CACHE: list[tuple[np.ndarray, tuple, np.ndarray]] = []


def _memory_key(arr: np.ndarray) -> tuple:
    """Where an array's values lie (data address, shape, strides, dtype): two views of the same memory with the
    same layout -- e.g. two canonical views of one CT, made by two stages -- share it."""
    return (arr.__array_interface__["data"][0], arr.shape, arr.strides, arr.dtype.str)


def _smooth(arr: np.ndarray, spacing: np.ndarray, sigma_mm: float = 0.7) -> np.ndarray:
    """Gaussian smoothing (sigma in mm, at most 1 voxel); the last few results are cached per array.

    The cache recognises the same values seen through another view object (same memory and layout, see
    :func:`_memory_key`; the cache holds the view, so that memory cannot be reused while it is cached), as
    the stages each make their own canonical view of the CT.

    The filter runs on a C-contiguous copy of *arr* when *arr* is a strided view (the canonical view of a cropped
    CT: its first axis reversed, its rows strided): ``gaussian_filter`` computes each value from the same logical
    neighbours in the same order whatever the memory layout, and returns a new C-ordered array either way, so the
    result is identical (``tests/anatomy/test_speed_identity_bone.py``), while the filter's line-buffer reads are
    contiguous (CThead: ~58 -> ~45 ms per smoothing, the copy ~3 ms included).
    """
    sig = np.minimum(sigma_mm / np.asarray(spacing, float), 1.0)
    sig = np.where(sig < 0.25, 0.0, sig)
    key = tuple(np.round(sig, 4))
    mem = _memory_key(arr)
    for a_ref, k_ref, out in _SMOOTH_CACHE:
        if k_ref == key and (a_ref is arr or _memory_key(a_ref) == mem):
            return out
    src = np.ascontiguousarray(arr) if (sig > 1e-15).any() else arr
    out = ndi.gaussian_filter(src, sig, mode="nearest")
    _SMOOTH_CACHE.insert(0, (arr, key, out))
    del _SMOOTH_CACHE[3:]
    return out


# --------------------------------------------------------------------------------- body
def segment_body(volume: Volume, threshold_hu: float = BODY_THRESHOLD_HU) -> np.ndarray:
    """Body (skin outline, filled) of a CT.

    Parameters
    ----------
    volume : Volume
        CT in HU.
    threshold_hu : float
        Tissue/air boundary (default -400 HU; engineering default).

    Returns
    -------
    numpy.ndarray of bool, shape (K, J, I)
        The largest connected tissue component (which excludes the table), with internal air
        (airway, sinuses) filled per axial slice.

    Raises
    ------
    AnatomyError
        When no tissue is found above the threshold.
    """
    cn = Canon.of(volume)
    a = cn.to_canon(volume.array)
    tissue0 = a > threshold_hu
    if not tissue0.any():
        raise AnatomyError("No body found in the CT (every voxel is below -400 HU); check that the input is a CT in HU.")
    # the opening and the labelling run on the box of the tissue grown by one voxel in the plane: outside the
    # tissue's box every voxel is False, which is what the erosion assumes beyond the array (outside = False), the
    # dilation of the eroded tissue stays within one voxel of it, and the components are those of the whole array
    # (numbered in the same raster order, so the same one is the largest on a tie)
    bb = _bbox(tissue0, grow=(0, 1, 1))
    # a light opening detaches the table and thin blankets from the body
    tissue = _box_dilate(_box_erode(tissue0[bb], (1, 3, 3)), (1, 3, 3))  # = binary_opening with a 1x3x3 box
    if tissue.any():
        body = np.zeros(a.shape, bool)
        body[bb] = _largest_component(tissue)
    else:
        body = tissue0
    body = _fill_holes_per_slice(body)
    return cn.from_canon(body)


# --------------------------------------------------------------------------------- bone
@dataclass
class BoneResult:
    """Bone masks and the thresholds used.

    Attributes
    ----------
    bone : bool array (K, J, I)
        All bone: cortical plus cancellous, small marrow holes filled.
    cortical : bool array (K, J, I)
        The dense (cortical) part of ``bone``.
    cancellous_threshold_hu, cortical_threshold_hu : float
        Thresholds actually used (on the lightly smoothed CT).
    soft_tissue_mean_hu, soft_tissue_sd_hu : float
        The patient's soft-tissue reference they were derived from.
    lenient : bool array (K, J, I)
        Everything above the cancellous threshold in components that hold cortex (one voxel
        fatter, closes thin rings); used to find the spinal canal.
    """

    bone: np.ndarray
    cortical: np.ndarray
    cancellous_threshold_hu: float
    cortical_threshold_hu: float
    soft_tissue_mean_hu: float
    soft_tissue_sd_hu: float
    lenient: np.ndarray | None = None
    contrast_detected: bool | None = None
    contrast_tubes: list | None = None


def soft_tissue_stats(values: np.ndarray) -> tuple[float, float]:
    """Robust mean and SD (HU) of soft tissue among *values* (mode of [-150, 150] HU, MAD spread)."""
    v = values[(values > -150) & (values < 150)]
    if v.size < 100:
        return 40.0, 30.0
    if v.size > 400_000:
        v = v[:: v.size // 400_000 + 1]
    hist, edges = np.histogram(v, bins=150, range=(-150, 150))
    hist = ndi.uniform_filter1d(hist.astype(float), 5)
    mode = float(edges[int(np.argmax(hist))] + 1.0)
    near = v[np.abs(v - mode) < 60]
    if near.size < 50:
        return mode, 30.0
    sd = float(1.4826 * np.median(np.abs(near - np.median(near))))
    return float(np.median(near)), max(sd, 3.0)


def segment_bone(volume: Volume, body: np.ndarray | None = None, hole_max_mm2: float = 12.0,
                 contrast: bool | None = None) -> BoneResult:
    """Bone (cortical + cancellous) with thresholds relative to the patient's soft tissue.

    Method: light Gaussian smoothing (sigma 0.7 mm) against noise; cancellous threshold =
    soft-tissue mean + max(6 SD, 100 HU), clipped to [140, 260] HU; cortical threshold = Otsu
    between the cancellous threshold and 1500 HU, clipped to [400, 900] HU. The bone outline is
    the cortex above min(cortical threshold, 600 HU) -- about half-way up the blurred cortical
    edge, so the partial-volume rim of soft tissue stays out; cancellous voxels (above the
    cancellous threshold) are added when enclosed by cortex in an axial, coronal or sagittal
    plane, and -- without contrast -- everywhere in components holding cortex except the rim
    facing soft tissue (osteoporotic or thick-slice cortex rarely closes). Components under
    0.02 mL or without cortex are dropped (noise, contrast-filled vessels); marrow holes under
    ``hole_max_mm2`` per axial slice are filled (the canal and lytic lesions are larger and stay
    out). Engineering defaults, no published source.

    Parameters
    ----------
    volume : Volume
        CT in HU.
    body : bool array (K, J, I), optional
        Body mask (computed when omitted).
    hole_max_mm2 : float
        Largest per-slice hole filled as cancellous bone.
    contrast : bool or None
        Whether the CT is contrast-enhanced (None: from ``volume.info.contrast``, else detected).
        Without contrast, all cancellous bone deeper than one voxel is kept; with contrast only
        cancellous bone enclosed by cortex (axially, coronally or sagittally) or within 2.5 mm of
        it, so that contrast-filled vessels (150-500 HU) are not taken for bone.

    Returns
    -------
    BoneResult
    """
    from skimage.filters import threshold_otsu

    cn = Canon.of(volume)
    if body is None:
        body = segment_body(volume)
    a = cn.to_canon(volume.array)
    b = cn.to_canon(body)
    sm = _smooth(a, cn.spacing_mm)
    mu, sd = soft_tissue_stats(a[b][:: max(1, int(b.sum()) // 500_000)])
    t_c = float(np.clip(mu + max(6.0 * sd, 100.0), CANCELLOUS_MIN_HU, CANCELLOUS_MAX_HU))
    above = (sm > t_c) & b
    vals = sm[above]
    if vals.size > 200:
        t_cort = float(threshold_otsu(np.clip(vals[:: max(1, vals.size // 300_000)], t_c, 1500.0)))
    else:
        t_cort = CORTICAL_MIN_HU
    t_cort = float(np.clip(t_cort, CORTICAL_MIN_HU, CORTICAL_MAX_HU))
    # the bone edge is where the blurred cortex crosses about half its height: the outline uses the
    # cortical threshold (<= 600 HU); cancellous voxels (above the cancellous threshold) count
    # when they are enclosed by cortex in the axial plane or lie deeper than one voxel inside the
    # lenient mask (drops the partial-volume rim of soft tissue around every bone)
    t_edge = min(t_cort, 600.0)
    cort = (sm > t_edge) & b
    r_close = max(1.5 / float(cn.spacing_mm[1]), 1.0)
    disk = _disk(r_close)
    # enclosed by cortex in an axial, coronal OR sagittal plane (a vertebral body whose axial ring is
    # open is still closed sagittally by its endplates); vessels are never enclosed by cortex
    closed = _plane_closing(cort, disk) | cort  # = ndi.binary_closing(cort, structure=disk[None]) | cort
    inside = fill_holes_in_planes(closed, 0) | fill_holes_in_planes(closed, 1) | fill_holes_in_planes(closed, 2)
    # cancellous bone behind an open or thin cortex: deeper than one voxel in the lenient mask and
    # within 2.5 mm of cortex (a vessel touching bone contributes at most that band)
    lenient0 = above | cort
    vox_ml = float(np.prod(cn.spacing_mm)) / 1000.0
    bone = cort | ((a > t_c) & above & inside)
    tube_info = None
    if contrast is None and volume.info.contrast is not None:
        contrast = bool(volume.info.contrast)
    if contrast is None:
        # look for contrast-filled tubes outside this (conservative) bone mask
        tubes, tube_info = _bright_tubes(volume, cn.from_canon(b), cn.from_canon(bone),
                                         enclosing=cn.from_canon(lenient0))
        contrast = _bilateral(tube_info, cn, b)
    if contrast:
        # with contrast: cancellous bone behind an open or thin cortex only when deeper than one
        # voxel in the lenient mask and within 2.5 mm of cortex (a vessel touching bone contributes
        # at most that band)
        deep = _box_erode(above, (3, 3, 3))
        r = np.maximum(np.round(2.5 / cn.spacing_mm).astype(int), 1)
        ball = np.ones(tuple(2 * x + 1 for x in r), bool)
        zz, yy, xx = np.meshgrid(*[np.arange(-x, x + 1) * sp_ for x, sp_ in zip(r, cn.spacing_mm)], indexing="ij")
        ball &= (zz ** 2 + yy ** 2 + xx ** 2) <= 2.5 ** 2 + 1e-6
        near_cort = _morph_rows(cort, ball, True)  # = ndi.binary_dilation(cort, structure=ball)
        bone |= deep & near_cort
    else:
        # without contrast nothing but bone is this dense: keep all cancellous bone (also far from a
        # weak, osteoporotic or thick-slice cortex) except the partial-volume rim facing soft tissue
        # soft tissue = non-bone regions bigger than a marrow pocket (0.05 mL), canal included
        nlab, nn = _local.cc_label(~above)
        nsz = _label_sizes(nlab, nn) * float(np.prod(cn.spacing_mm)) / 1000.0
        big = nsz >= 0.05
        big[0] = False
        facing = _cross_dilate(_lookup(big, nlab))  # = binary_dilation with the 6-neighbour cross
        llab0, ln0 = _local.cc_label(above)
        if ln0:
            dense0 = np.bincount(llab0[cort], minlength=ln0 + 1) * float(np.prod(cn.spacing_mm)) / 1000.0 >= 0.005
            dense0[0] = False
            bone |= _lookup(dense0, llab0) & ~(facing & ~cort)
    # the lenient mask (everything above the cancellous threshold in components holding cortex)
    # closes thin vertebral rings: it is what the canal search uses
    llab, ln = (llab0, ln0) if not contrast else _local.cc_label(above)  # the same labelling as above when it was made
    if ln:
        dense_l = np.bincount(llab[cort], minlength=ln + 1)
        keep_l = dense_l * vox_ml >= 0.005
        keep_l[0] = False
        lenient = _lookup(keep_l, llab)
    else:
        lenient = above
    # keep components of at least 0.02 mL that hold dense (cortical) voxels: this drops noise
    # specks and contrast-filled vessels (150-500 HU, never cortical density)
    lab, n = _local.cc_label(bone)
    if n:
        vox_ml = float(np.prod(cn.spacing_mm)) / 1000.0
        sizes = _label_sizes(lab, n)
        dense = np.bincount(lab[sm > max(t_cort, 600.0)], minlength=n + 1)
        keep = (sizes * vox_ml >= 0.02) & (dense * vox_ml >= 0.005)
        keep[0] = False
        bone = _lookup(keep, lab)
    area_px = hole_max_mm2 / float(cn.spacing_mm[1] * cn.spacing_mm[2])
    filled = _remove_small_holes_in_slices(bone, max(int(area_px), 1))
    cortical = filled & (sm > t_cort)
    lenient |= filled
    return BoneResult(cn.from_canon(filled), cn.from_canon(cortical), t_c, t_cort, mu, sd, cn.from_canon(lenient),
                      bool(contrast), tube_info)


def _remove_small_holes_in_slices(mask: np.ndarray, max_size: int) -> np.ndarray:
    """:func:`skimage.morphology.remove_small_holes` (``max_size``, 4-connected holes, holes at the edge
    included) on every axial slice that holds some of *mask*, by one labelling connected in the plane only
    (:func:`_remove_small_holes_in_slices_reference` does it slice by slice)."""
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndi.generate_binary_structure(2, 1)
    empty = ~mask.any(axis=(1, 2))
    box = _small_holes_box(mask, max_size)
    if box is None:
        lab, n = _local.cc_label(~mask, structure=st)
        small = _label_sizes(lab, n) <= max_size
        small[0] = False
        out = mask | _lookup(small, lab)
    else:
        sub = mask[box]
        lab, n = _local.cc_label(~sub, structure=st)
        small = _label_sizes(lab, n) <= max_size
        small[0] = False
        out = mask.copy()
        out[box] = sub | _lookup(small, lab)
    out[empty] = mask[empty]
    return out


def _small_holes_box(mask: np.ndarray, max_size: int) -> tuple[slice, slice, slice] | None:
    """The box :func:`_remove_small_holes_in_slices` may work in: the slices holding *mask*, and its in-plane
    bounding box grown by one voxel (clipped to the array); None (whole array) when that box is not wider than
    *max_size* along j or i, or the mask is empty.

    Why the holes found in it are those of the whole array: the grown rim is background in every slice and each
    of its sides is one straight run of at least min(width) > max_size voxels, so every background region that
    reaches the rim is too large to fill both in the box and in the whole slice (where it only grows); a region
    that does not reach the rim lies inside the box (or against the array's edge, where the box ends too) and is
    the same in both. Outside the box every voxel is background joined to the rim: never filled. Slices without
    mask are left as they are in any case."""
    ks = np.flatnonzero(mask.any(axis=(1, 2)))
    if ks.size == 0:
        return None
    lo, hi = [int(ks[0])], [int(ks[-1]) + 1]
    for d in (1, 2):
        other = tuple(x for x in range(3) if x != d)
        nz = np.flatnonzero(mask.any(axis=other))
        lo.append(max(int(nz[0]) - 1, 0))
        hi.append(min(int(nz[-1]) + 2, mask.shape[d]))
    if min(hi[1] - lo[1], hi[2] - lo[2]) <= max_size:
        return None
    return tuple(slice(a, b) for a, b in zip(lo, hi))  # type: ignore[return-value]


def _remove_small_holes_in_slices_reference(mask: np.ndarray, max_size: int) -> np.ndarray:
    """The slice-by-slice computation :func:`_remove_small_holes_in_slices` is checked against."""
    from skimage.morphology import remove_small_holes

    out = np.empty_like(mask)
    for k in range(mask.shape[0]):
        out[k] = remove_small_holes(mask[k], max_size=max_size) if mask[k].any() else mask[k]
    return out


# --------------------------------------------------------------------------------- contrast / vessels
@dataclass
class ContrastResult:
    """Whether a CT is contrast-enhanced, and why.

    Attributes
    ----------
    detected : bool
    source : str
        ``"series"`` (DICOM ContrastBolusAgent / user) or ``"image"`` (detected from the voxels).
    reason : str
    tubes : bool array (K, J, I) or None
        Bright tubular candidates (vessels) when detected from the image.
    """

    detected: bool
    source: str
    reason: str
    tubes: np.ndarray | None = None


def _bright_tubes(volume: Volume, body: np.ndarray, bone: np.ndarray,
                  enclosing: np.ndarray | None = None) -> tuple[np.ndarray, list[dict]]:
    """Contrast-vessel candidates: round 150-500 HU blobs away from bone, >= 35 mm long.

    ``enclosing`` (optional bool mask): blobs whose 1-voxel ring lies mostly (>= 50 %) in it are
    dropped (cancellous bone inside a vertebra, as opposed to a vessel in soft tissue).
    """
    cn = Canon.of(volume)
    a = cn.to_canon(volume.array)
    sp = cn.spacing_mm
    sm = _smooth(a, sp, 1.0)
    lo, hi = CONTRAST_VESSEL_HU
    near_bone = _box_dilate(cn.to_canon(bone), (1, 5, 5))
    inner = _box_erode(cn.to_canon(body), (1, 7, 7))
    cand = (sm > lo) & (sm < hi) & inner & ~near_bone
    enc = cn.to_canon(enclosing) if enclosing is not None else None
    px_area = float(sp[1] * sp[2])
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndi.generate_binary_structure(2, 2)
    lab, n = _local.cc_label(cand, structure=st)  # 2D blobs of every slice in one labelling
    areas = _label_sizes(lab, n) * px_area
    ok = np.zeros(n + 1, bool)
    objs = ndi.find_objects(lab)
    for t in np.nonzero((areas >= 8.0) & (areas <= 200.0))[0]:
        if t == 0 or objs[t - 1] is None:
            continue
        sl = objs[t - 1]
        h = (sl[1].stop - sl[1].start) * sp[1]
        w = (sl[2].stop - sl[2].start) * sp[2]
        ok[t] = max(h, w) <= 3.0 * max(min(h, w), 1e-3) and max(h, w) <= 20.0
    tubes = np.zeros(cand.shape, bool)
    info: list[dict] = []
    idx = np.nonzero(ok)[0]
    if idx.size == 0:
        return tubes, info
    # everything below happens in the box of the accepted blobs (the union of their find_objects boxes), grown by
    # one voxel in the plane (``bb``): outside it no voxel touches a blob in its slice, so the rings, their counts
    # and the 3D components are those of the whole array (the labelling of a box numbers its components in the
    # same raster order)
    lo = [min(objs[t - 1][d].start for t in idx) for d in range(3)]
    hi = [max(objs[t - 1][d].stop for t in idx) for d in range(3)]
    bb = tuple(slice(max(lo[d] - g, 0), min(hi[d] + g, cand.shape[d])) for d, g in enumerate((0, 1, 1)))
    lab_b = lab[bb]
    if enc is not None:
        # ring of each blob (one voxel around it in its slice), all blobs at once: the largest blob label among
        # the 3 x 3 in-plane neighbours of each voxel outside the blobs (= grey_dilation with that footprint,
        # 'reflect' at the faces: :func:`_max3_in_plane`; at the box's faces a face voxel is repeated, 0 or the
        # same as in the array)
        lab_ok = _lookup(np.where(ok, np.arange(n + 1), 0).astype(lab.dtype), lab_b)  # = np.where(ok[lab], lab, 0)
        ring_lab = np.where(lab_ok == 0, _max3_in_plane(lab_ok), 0)
        cnt = _label_sizes(ring_lab, n)[idx].astype(float)
        inb = np.bincount(ring_lab[enc[bb]], minlength=n + 1)[idx].astype(float)
        ok[idx] = (cnt > 0) & (inb < 0.5 * np.maximum(cnt, 1))
    keep = _lookup(ok, lab_b)
    lab3, n3 = _local.cc_label(keep)
    off = [sl.start for sl in bb]
    for l, sl in enumerate(ndi.find_objects(lab3), start=1):
        length = (sl[0].stop - sl[0].start) * sp[0]
        if length >= 35.0:
            m = lab3[sl] == l
            sl_full = tuple(slice(a.start + o, a.stop + o) for a, o in zip(sl, off))
            tubes[sl_full] |= m
            com = ndi.center_of_mass(m)
            info.append({"label": l, "length_mm": length,
                         "centre": (com[0] + sl_full[0].start, com[1] + sl_full[1].start, com[2] + sl_full[2].start)})
    return tubes, info


def _max3_in_plane(x: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.maximum_filter(x, size=(1, 3, 3))`` (mode 'reflect': beyond a face the face voxel itself)
    of a 3D array: the max of each voxel and its 8 in-plane neighbours, one in-plane axis after the other, by
    element-wise maxima of shifted views (no double-precision line buffers). Same dtype and values."""
    a = x.copy()
    np.maximum(a[:, :, 1:], x[:, :, :-1], out=a[:, :, 1:])
    np.maximum(a[:, :, :-1], x[:, :, 1:], out=a[:, :, :-1])
    out = a.copy()
    np.maximum(out[:, 1:], a[:, :-1], out=out[:, 1:])
    np.maximum(out[:, :-1], a[:, 1:], out=out[:, :-1])
    return out


def _bbox(mask: np.ndarray, grow: tuple[int, int, int] = (0, 0, 0)) -> tuple[slice, slice, slice]:
    """Bounding box (slices) of the True voxels of a non-empty 3D mask, grown by *grow* voxels per axis and
    clipped to the array."""
    out = []
    for d in range(3):
        nz = np.flatnonzero(mask.any(axis=tuple(x for x in range(3) if x != d)))
        out.append(slice(max(int(nz[0]) - grow[d], 0), min(int(nz[-1]) + 1 + grow[d], mask.shape[d])))
    return tuple(out)  # type: ignore[return-value]


def _bilateral(info: list[dict], cn: Canon, body_c: np.ndarray) -> bool:
    """At least one bright tube on each side of the body's midline (canonical column index)."""
    if len(info) < 2:
        return False
    bi = np.nonzero(body_c.any(axis=(0, 1)))[0]
    mid = (bi[0] + bi[-1]) / 2.0 if bi.size else (cn.shape[2] - 1) / 2.0
    left = sum(1 for t in info if t["centre"][2] > mid)
    return left >= 1 and len(info) - left >= 1


def detect_contrast(volume: Volume, body: np.ndarray | None = None, bone: np.ndarray | None = None) -> ContrastResult:
    """Decide whether the CT is contrast-enhanced.

    The series metadata (``volume.info.contrast``, from DICOM ContrastBolusAgent or the user)
    wins when it is known. Otherwise the image is searched for bright tubes: connected regions of
    150-500 HU (smoothed), 8-200 mm^2 in cross-section, round-ish, away from bone, running at
    least 35 mm cranio-caudally; contrast is declared when such tubes lie on both sides of the
    midline (carotids / jugulars). A coarse heuristic (engineering defaults).

    Returns
    -------
    ContrastResult
    """
    if volume.info.contrast is not None:
        return ContrastResult(bool(volume.info.contrast), "series",
                              "contrast stated by the series metadata" if volume.info.contrast
                              else "the series metadata says no contrast agent")
    if body is None:
        body = segment_body(volume)
    if bone is None:
        bone = segment_bone(volume, body).bone
    tubes, info = _bright_tubes(volume, body, bone)
    cn = Canon.of(volume)
    mid = (cn.shape[2] - 1) / 2.0
    bi = np.nonzero(cn.to_canon(body).any(axis=(0, 1)))[0]
    if bi.size:
        mid = (bi[0] + bi[-1]) / 2.0
    left = sum(1 for t in info if t["centre"][2] > mid)
    right = sum(1 for t in info if t["centre"][2] <= mid)
    if left >= 1 and right >= 1 and len(info) >= 2:
        return ContrastResult(True, "image", f"{len(info)} bright tubular structures (150-500 HU, >= 35 mm long) "
                              f"found, {right} right and {left} left of the midline", cn.from_canon(tubes))
    return ContrastResult(False, "image", f"no bilateral bright tubular structures (found {len(info)}): "
                          "treated as a non-contrast CT", None)


#: Lateral distance (mm) from the body's midline beyond which internal air is lung, not airway: the
#: trachea is about 15-25 mm wide and midline (engineering default, no published source).
LUNG_LATERAL_MM = 25.0
#: Shortest cranial part (mm) of a bright tube above the lung apices for it to be named a neck vessel
#: (engineering default, no published source; about one cervical vertebra and disc).
NECK_VESSEL_MIN_MM = 20.0


def lung_apex_slice(volume: Volume, body: np.ndarray) -> int | None:
    """Highest canonical slice (k -> superior) holding lung: air inside the body, in the large air
    component of the chest, more than :data:`LUNG_LATERAL_MM` from the body's midline.

    Returns None when no lung is in view (head and neck CT).
    """
    cn = Canon.of(volume)
    a = cn.to_canon(volume.array)
    b = cn.to_canon(body)
    air = (_smooth(a, cn.spacing_mm) < AIR_THRESHOLD_HU) & b
    if not air.any():
        return None
    lab, n = _local.cc_label(air)
    sizes = _label_sizes(lab, n) * float(np.prod(cn.spacing_mm)) / 1000.0  # = np.bincount(lab.ravel()) * ...
    sizes[0] = 0
    big = sizes >= 50.0  # mL: a lung (the airway alone is a few tens of mL at most)
    if not big.any():
        return None
    lung = _lookup(big, lab)  # = big[lab]
    bi = np.nonzero(b.any(axis=(0, 1)))[0]
    mid = (bi[0] + bi[-1]) / 2.0
    off = np.abs(np.arange(b.shape[2]) - mid) * cn.spacing_mm[2] > LUNG_LATERAL_MM
    ks = np.nonzero((lung & off[None, None, :]).any(axis=(1, 2)))[0]
    return int(ks.max()) if ks.size else None


def segment_vessels(volume: Volume, contrast: ContrastResult, body: np.ndarray) -> dict[str, np.ndarray]:
    """Carotid arteries and internal jugular veins as bright tubes (contrast CT only; coarse heuristic).

    On each side the tubes are sorted medial-to-lateral: the most medial is labelled the common
    carotid artery, the next the internal jugular vein. Returns {} without contrast tubes.

    A heuristic may name a vessel only where the anatomy allows it: the common carotid arteries and
    the internal jugular veins are neck vessels (the jugular vein ends behind the sternoclavicular
    joint, joining the subclavian vein; the carotids arise in the superior mediastinum), and below
    the lung apices bright tubes are mostly other vessels (brachiocephalic veins, superior vena cava,
    aorta, subclavian and pulmonary vessels). So when lungs are in view (:func:`lung_apex_slice`)
    only the part of a tube cranial to the lung apices is named, and a tube with less than
    :data:`NECK_VESSEL_MIN_MM` there is not named at all (it stays unnamed: not assessed).
    """
    if not contrast.detected or contrast.tubes is None:
        return {}
    cn = Canon.of(volume)
    tubes = cn.to_canon(contrast.tubes)
    apex = lung_apex_slice(volume, body)
    if apex is not None:
        tubes = tubes.copy()
        tubes[: apex + 1] = False
        if tubes.any():
            lab0, n0 = _local.cc_label(tubes)
            keep = np.zeros(n0 + 1, bool)
            for l, sl in enumerate(ndi.find_objects(lab0), start=1):
                keep[l] = (sl[0].stop - sl[0].start) * cn.spacing_mm[0] >= NECK_VESSEL_MIN_MM
            tubes = keep[lab0]
    bi = np.nonzero(cn.to_canon(body).any(axis=(0, 1)))[0]
    mid = (bi[0] + bi[-1]) / 2.0 if bi.size else (cn.shape[2] - 1) / 2.0
    lab, n = _local.cc_label(tubes)
    out: dict[str, np.ndarray] = {}
    comps = []
    for l in range(1, n + 1):
        c = ndi.center_of_mass(lab == l)
        comps.append((l, c[2]))
    for side, name in (("left", 1), ("right", -1)):
        sc = [(l, ci) for l, ci in comps if (ci - mid) * name > 0]
        sc.sort(key=lambda t: abs(t[1] - mid))
        for (l, _), struct in zip(sc, ("common_carotid_artery", "internal_jugular_vein")):
            out[f"{struct}_{side}"] = cn.from_canon(lab == l)
    return out


# --------------------------------------------------------------------------------- all
@dataclass
class ClassicalResult:
    """Everything :func:`run_classical` computed (the pipeline reuses the intermediate results)."""

    labelmap: LabelMap
    messages: list[str]
    bone: BoneResult
    canal: CanalResult | None
    contrast: ContrastResult


def run_classical(volume: Volume, skip: frozenset[str] = frozenset(), body: np.ndarray | None = None) -> ClassicalResult:
    """Run every classical segmentation (see :func:`segment_classical`), keeping intermediate results.

    Parameters
    ----------
    skip : set of str
        Structures not to add to the label map (e.g. already provided); bone, body and canal are
        still computed when needed by other steps.
    body : bool array (K, J, I), optional
        Precomputed body mask.
    """
    from osteoplan.anatomy.airway import segment_airway, split_airway
    from osteoplan.anatomy.canal import segment_spinal_canal
    from osteoplan.anatomy.labelmap import LabelMap
    from osteoplan.progress import stage

    if min(volume.shape) < 3:
        raise InputError(f"The CT is too small to segment (shape {volume.shape}); give a 3D CT of the neck.")
    msgs: list[str] = []
    lm = LabelMap(volume)
    with stage("body (skin outline)"):
        if body is None:
            body = segment_body(volume)
    if "body" not in skip:
        lm.add("body", body, "classical")
    with stage("bone"):
        bone = segment_bone(volume, body)
    if "bone" not in skip:
        lm.add("bone", bone.bone, "classical")
        msgs.append(f"bone: classical threshold {bone.cancellous_threshold_hu:.0f} HU (soft tissue "
                    f"{bone.soft_tissue_mean_hu:.0f} +/- {bone.soft_tissue_sd_hu:.0f} HU), cortical > "
                    f"{bone.cortical_threshold_hu:.0f} HU")
    parts = [n for n in ("pharynx", "larynx", "trachea") if n not in skip]
    if "airway" not in skip or parts:
        with stage("airway"):
            air = segment_airway(volume, body)
        if "airway" not in skip:
            lm.add("airway", air, "classical")
            msgs.append("airway: classical (connected internal air near the midline, nasal cavity to trachea; "
                        "pharynx, larynx and trachea are parts of it)" if air.any()
                        else "airway: no internal air found (airway mask empty)")
        if parts and air.any():
            with stage("airway split"):
                split = split_airway(volume, air, body)
            for n in parts:
                if split.segmented.get(n):
                    lm.add(n, split.masks()[n], "classical")
            msgs.extend(f"airway split: {t}" for t in split.notes)
            if split.partial:
                msgs.extend(f"{n}: partial ({why})" for n, why in split.partial.items() if n in parts)
    canal = None
    try:
        with stage("spinal canal"):
            canal = segment_spinal_canal(volume, bone.lenient, body, bone_outline=bone.bone)
        if "spinal_canal" not in skip:
            lm.add("spinal_canal", canal.mask, "classical")
            msgs.append("spinal_canal: classical (holes of the vertebral rings)")
            msgs.extend(canal.notes)
    except AnatomyError as exc:
        msgs.append(f"spinal_canal: NOT segmented ({exc})")
    if "mandible" not in skip:
        from osteoplan.anatomy.mandible import segment_mandible

        with stage("mandible"):
            mand, mand_msg = segment_mandible(volume, bone.bone, body, canal.mask if canal is not None else None)
        if mand is not None:
            lm.add("mandible", mand, "classical")
        msgs.append(mand_msg)
    with stage("contrast and vessels"):
        if volume.info.contrast is None and bone.contrast_detected is False:
            # the bone step already searched the image for contrast-filled tubes
            n_t = len(bone.contrast_tubes or [])
            con = ContrastResult(False, "image", f"no bilateral bright tubular structures (found {n_t}): "
                                 "treated as a non-contrast CT", None)
        else:
            con = detect_contrast(volume, body, bone.bone)
        if con.detected:
            vessels = {n: m for n, m in segment_vessels(volume, con, body).items() if n not in skip}
            for n, m in vessels.items():
                lm.add(n, m, "classical-contrast")
            msgs.append(f"contrast detected ({con.source}: {con.reason}); vessels segmented as bright tubes "
                        f"(coarse heuristic): {', '.join(sorted(vessels)) or 'none'}")
        else:
            msgs.append(f"vessels: NOT segmented (no contrast: {con.reason}); carotid arteries and jugular veins "
                        "are NOT ASSESSED unless masks are provided")
    return ClassicalResult(lm, msgs, bone, canal, con)


def segment_classical(volume: Volume) -> tuple[LabelMap, list[str]]:
    """Run every classical segmentation; returns the LabelMap (sources ``"classical"``) and messages.

    Structures: ``body``, ``bone``, ``airway``, ``spinal_canal``, and vessels only when contrast is
    detected (sources ``"classical-contrast"``). Messages say what was segmented and what was NOT
    (and why).

    Raises
    ------
    InputError
        The volume is too small to segment.
    """
    r = run_classical(volume)
    return r.labelmap, r.messages
