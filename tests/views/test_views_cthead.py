"""Real data (CThead): the views put the anatomy where the orientation labels say it is."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


@pytest.fixture(scope="module")
def cthead(shared_data):
    from osteoplan.imaging import read_volume

    return read_volume(shared_data / "cthead" / "ct.nii.gz")


def test_lateral_and_ap_drr_put_dental_metal_anterior_and_inferior(cthead):
    from osteoplan.views.drr import standard_geometry

    vol = cthead
    metal = np.argwhere(vol.array > 2200)   # HU saturate at 2248 in this volume: dental metal
    assert len(metal) > 50
    metal_c = vol.index_to_world(metal.mean(axis=0))
    skull_top = vol.index_to_world(np.array([10.0, 128.0, 128.0]))       # slice 10: skull vault, superior
    target = vol.index_to_world(np.array([80.0, 122.0, 105.0]))         # about the dens
    lat = standard_geometry("lateral", target, n_pixels=(128, 128))
    r, c = lat.project(metal_c)
    assert c < 63.5 - 10            # face (anterior) on the image LEFT, as the label 'A' and the sagittal say
    assert lat.project(skull_top)[0] < 30  # skull vault at the top ('S')
    ap = standard_geometry("ap_open_mouth", target, n_pixels=(128, 128))
    assert ap.project(skull_top)[0] < 30
    # the teeth project near the midline in the AP view
    assert abs(ap.project(metal_c)[1] - 63.5) < 20


def test_axial_reformat_has_teeth_at_the_top_and_canal_below(cthead):
    from osteoplan.views.geometry import PathSpec
    from osteoplan.views.reformat import sample_plane, view_plane

    vol = cthead
    k = 78.0  # dental-metal slices 75-82 (HU > 2200 only there, rows 26-127)
    p = vol.index_to_world(np.array([k, 122.0, 105.0]))
    path = PathSpec(p + [60.0, -20.0, -20.0], p + [20.0, -5.0, -8.0], p)
    plane = view_plane("axial", path, fov_mm=200.0, pixel_mm=1.0)
    img = sample_plane(vol, plane)
    rows = np.argwhere(img > 2200)[:, 0]
    assert len(rows) >= 5 and rows.mean() < plane.n_rows / 2 - 20    # metal (teeth) is anterior = top ('A')
