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


def test_overviews_hold_the_lateral_dens_screw_path(cthead):
    """The c2-dens-lateral path osteoplan plans on CThead (skin entry 74 mm from the dens tip, 58 mm below it):
    the coronal and sagittal reformats and the AP and lateral fluoroscopy show it whole, with the margin, and
    keep their orientation (the left-sided entry on the image right of the coronal and AP views)."""
    from osteoplan.views.drr import drr_figure
    from osteoplan.views.geometry import PATH_MARGIN_MM, PathSpec
    from osteoplan.views.reformat import reformat_figure

    target = np.array([104.42, 117.77, -158.45])
    path = PathSpec([148.48, 105.97, -216.84], [116.43, 114.56, -174.36], target, instrument_diameter_mm=4.5)
    for view in ("coronal", "sagittal"):
        plane = reformat_figure(cthead, path, view)._osteoplan_plane
        m = PATH_MARGIN_MM / plane.pixel_mm
        for p in (path.skin_entry_lps_mm, target):
            r, c = plane.to_pixel(p)
            assert m <= r <= plane.n_rows - 1 - m and m <= c <= plane.n_cols - 1 - m, (view, p)
        assert plane.to_pixel(target)[0] < plane.to_pixel(path.skin_entry_lps_mm)[0]   # the dens above the entry
    for view in ("ap_open_mouth", "lateral"):
        geo = drr_figure(cthead, path, view, None, n_pixels=128)._osteoplan_geometry
        for p in (path.skin_entry_lps_mm, target):
            r, c = geo.project(p)
            m = PATH_MARGIN_MM * geo.magnification_at(p) / geo.pixel_mm[0]
            assert m <= r <= 127 - m and m <= c <= 127 - m, (view, p)
    assert geo.project(path.skin_entry_lps_mm)[1] < geo.project(target)[1]   # lateral: the entry anterior, left
