"""The anatomy's faster paths give the same masks, voxel for voxel, as the straightforward computations they replace.

Each fast function is checked against its reference (kept beside it) on random and phantom inputs, and the whole
anatomy of the neck phantom is built twice -- with the fast functions and with the references patched in -- and
every mask compared.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from osteoplan.anatomy import mandible as mandible_mod
from osteoplan.anatomy import segment as segment_mod
from osteoplan.anatomy.mandible import _split_by_watershed, _split_by_watershed_full
from osteoplan.anatomy.segment import _fill_holes_in_planes_full, fill_holes_in_planes


def _per_plane_fill(m: np.ndarray, axis: int) -> np.ndarray:
    """scipy's binary_fill_holes plane by plane (4-connected background in the plane)."""
    return np.stack([ndi.binary_fill_holes(np.take(m, i, axis=axis)) for i in range(m.shape[axis])], axis=axis)


def test_fill_holes_in_planes_on_its_box_equals_per_plane_fill():
    rng = np.random.default_rng(0)
    for trial in range(30):
        shape = tuple(int(x) for x in rng.integers(3, 25, 3))
        m = ndi.binary_dilation(rng.random(shape) < rng.uniform(0.01, 0.2), iterations=int(rng.integers(0, 3)))
        if trial == 0:
            m[:] = False
        if trial == 1:
            m[:] = True
        for axis in range(3):
            fast = fill_holes_in_planes(m, axis)
            np.testing.assert_array_equal(fast, _per_plane_fill(m, axis))
            np.testing.assert_array_equal(fast, _fill_holes_in_planes_full(m, axis))
    # a ring in one plane: its hole is filled, the planes above and below stay empty
    ring = np.zeros((5, 9, 9), bool)
    ring[2, 2:7, 2:7] = True
    ring[2, 3:6, 3:6] = False
    out = fill_holes_in_planes(ring, 0)
    assert out[2, 3:6, 3:6].all() and out.sum() == 25


def test_watershed_on_the_box_equals_the_whole_array():
    """Mandible-like seed at the bottom of a blob joined to a 'skull' far above: same parting either way."""
    rng = np.random.default_rng(2)
    shape = (60, 40, 44)
    hu = ndi.gaussian_filter(rng.normal(500.0, 300.0, shape), 2.0).astype(np.float32)
    comp = np.zeros(shape, bool)
    comp[5:58, 8:30, 10:36] = True
    comp[20:25, 8:30, 10:36] = False
    comp[20:25, 15:18, 20:24] = True  # a narrow bridge (the joint)
    seed = np.zeros(shape, bool)
    seed[5:7, 10:20, 12:30] = True
    sp = np.array([2.0, 1.0, 1.0])  # skull markers from 75 mm / 2 mm = 38 slices above the lowest seed slice
    fast = _split_by_watershed(hu, comp, seed, sp)
    full = _split_by_watershed_full(hu, comp, seed, sp)
    assert fast is not None and full is not None
    np.testing.assert_array_equal(fast, full)
    assert fast[5:20].any() and not fast[43:].any()
    # no skull marker: both say None
    assert _split_by_watershed(hu, comp & (np.arange(shape[0]) < 40)[:, None, None], seed, sp) is None


@pytest.mark.slow
def test_phantom_anatomy_identical_with_the_reference_functions(monkeypatch):
    """build_anatomy on the neck phantom: every mask, message and landmark identical with the references."""
    from osteoplan.anatomy.phantom import PhantomParams, make_phantom
    from osteoplan.anatomy.pipeline import build_anatomy

    vol = make_phantom(PhantomParams(spacing_mm=1.0)).volume
    fast = build_anatomy(vol)
    import importlib

    for modname in ("segment", "airway", "canal", "foramina", "c2", "spine", "spine_classical"):
        mod = importlib.import_module(f"osteoplan.anatomy.{modname}")
        if hasattr(mod, "fill_holes_in_planes"):
            monkeypatch.setattr(mod, "fill_holes_in_planes", _per_plane_fill)
    monkeypatch.setattr(mandible_mod, "_split_by_watershed", _split_by_watershed_full)
    from osteoplan.anatomy import airway as airway_mod

    monkeypatch.setattr(airway_mod, "_midline_air", airway_mod._midline_air_reference)
    monkeypatch.setattr(segment_mod, "_remove_small_holes_in_slices", segment_mod._remove_small_holes_in_slices_reference)
    assert segment_mod.fill_holes_in_planes is _per_plane_fill
    ref = build_anatomy(vol)
    assert fast.labelmap.names() == ref.labelmap.names() and len(fast.labelmap.names()) >= 8
    for n in ref.labelmap.names():
        np.testing.assert_array_equal(fast.labelmap.get(n), ref.labelmap.get(n), err_msg=n)
    assert fast.messages == ref.messages
    assert fast.landmarks.to_dict() == ref.landmarks.to_dict()


def test_separable_box_filters_equal_scipy_binary_morphology():
    """_box_dilate / _box_erode (and their compositions) equal scipy's binary ops with an all-True box, borders too."""
    from osteoplan.anatomy.segment import _box_dilate, _box_erode

    rng = np.random.default_rng(3)
    for _ in range(20):
        shape = tuple(int(x) for x in rng.integers(1, 16, 3))
        m = rng.random(shape) < rng.uniform(0.05, 0.9)
        size = tuple(int(x) for x in rng.choice([1, 3, 5, 7], 3))
        st = np.ones(size, bool)
        np.testing.assert_array_equal(_box_dilate(m, size), ndi.binary_dilation(m, structure=st))
        np.testing.assert_array_equal(_box_erode(m, size), ndi.binary_erosion(m, structure=st))
        np.testing.assert_array_equal(_box_dilate(_box_erode(m, size), size), ndi.binary_opening(m, structure=st))
        np.testing.assert_array_equal(_box_erode(_box_dilate(m, size), size), ndi.binary_closing(m, structure=st))


def test_midline_air_all_slices_at_once_equals_slice_by_slice():
    from osteoplan.anatomy.airway import _midline_air, _midline_air_reference

    rng = np.random.default_rng(4)
    for _ in range(15):
        shape = (int(rng.integers(2, 12)), int(rng.integers(10, 60)), int(rng.integers(10, 60)))
        air = ndi.binary_dilation(rng.random(shape) < 0.02, iterations=int(rng.integers(0, 3)))
        b = np.zeros(shape, bool)
        b[:, 2:-2, int(rng.integers(0, 5)):shape[2] - int(rng.integers(0, 5))] = True
        b[0] = False  # a slice without body keeps nothing
        sp = np.array([2.0, *rng.uniform(0.5, 2.0, 2)])
        mm = float(rng.uniform(3.0, 30.0))
        np.testing.assert_array_equal(_midline_air(air, b, sp, mm), _midline_air_reference(air, b, sp, mm))


def test_remove_small_holes_all_slices_at_once_equals_skimage_slice_by_slice():
    from osteoplan.anatomy.segment import _remove_small_holes_in_slices, _remove_small_holes_in_slices_reference

    rng = np.random.default_rng(5)
    for _ in range(15):
        shape = (int(rng.integers(1, 8)), int(rng.integers(3, 40)), int(rng.integers(3, 40)))
        m = rng.random(shape) < rng.uniform(0.3, 0.95)
        m[0] = False  # a slice without the mask stays as it is
        size = int(rng.integers(1, 15))
        np.testing.assert_array_equal(_remove_small_holes_in_slices(m, size),
                                      _remove_small_holes_in_slices_reference(m, size))
