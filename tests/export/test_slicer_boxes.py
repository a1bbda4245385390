"""The bounding-box shortcuts of the .seg.nrrd writer and of the risk crop give the brute-force answers."""

from __future__ import annotations

import numpy as np

from osteoplan.export.slicer import _box, _extent_of_box, _pack_layers
from osteoplan.risk.rigidity import _bounds_kji


def _brute_pack(masks):
    """The writer's previous layer packing: whole-array overlap tests."""
    layers, out = [], []
    for m in masks:
        for li, occ in enumerate(layers):
            if not np.any(occ & m):
                occ |= m
                out.append(li)
                break
        else:
            layers.append(m.copy())
            out.append(len(layers) - 1)
    return out


def test_boxes_extents_and_layers_match_brute_force():
    rng = np.random.default_rng(11)
    shape = (9, 12, 10)
    for trial in range(40):
        masks = []
        for _ in range(rng.integers(1, 6)):
            m = np.zeros(shape, bool)
            if rng.random() > 0.2:  # some empty masks
                lo = rng.integers(0, np.array(shape) - 1)
                hi = lo + rng.integers(1, np.array(shape) - lo + 1)
                m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = rng.random(tuple(hi - lo)) > 0.4
            masks.append(m)
        for m in masks:
            idx = np.argwhere(m)
            box = _box(m)
            b = _bounds_kji(m)
            if idx.size == 0:
                assert box is None and b is None
                assert _extent_of_box(box) == [0, -1, 0, -1, 0, -1]
                continue
            lo, hi = idx.min(0), idx.max(0)
            np.testing.assert_array_equal(b[0], lo)
            np.testing.assert_array_equal(b[1], hi)
            assert _extent_of_box(box) == [lo[2], hi[2], lo[1], hi[1], lo[0], hi[0]]
            assert m[box].sum() == m.sum()
        assert _pack_layers([m.copy() for m in masks]) == _brute_pack([m.copy() for m in masks])


def test_overlapping_masks_go_to_separate_layers():
    a = np.zeros((4, 4, 4), bool)
    a[1:3, 1:3, 1:3] = True
    b = np.zeros_like(a)
    b[2, 2, 2] = True  # inside a
    c = np.zeros_like(a)
    c[0, 0, 0] = True  # apart from both
    assert _pack_layers([a, b, c, np.zeros_like(a)]) == [0, 1, 0, 0]
