"""The review page's simulated fluoroscopy: AP, lateral and bull's-eye DRRs with the planned path, as PNG routes
(rendered by the report's renderer, cached beside the plan folder; the report's own image when the folder has it),
shown in their own block of the review page."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import make_case
from .test_pacs_results import plan_folder_job


@pytest.fixture()
def small_plan(engine, tmp_path):
    """A plan on a small synthetic CT (write_series: 12 slices) attached through a finished job."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "export"))
    from export_planfactory import make_plan
    from pydicom.uid import generate_uid

    from osteoplan.imaging.io import read_volume
    from osteoplan.imaging.synth import write_series

    s = write_series(tmp_path / "ct", study_uid=generate_uid(), series_uid=generate_uid(), for_uid=generate_uid(),
                     seed=7)
    vol = read_volume(tmp_path / "ct")
    centre = vol.index_to_world(np.array([5.0, 10.0, 8.0]))
    plan = make_plan(vol, centre + [30, -30, -5], centre + [2, -3, 0], centre)
    ids = make_case(engine, through="lesion")
    ids["plan"] = plan_folder_job(engine, ids, vol, plan, tmp_path)
    assert s.files
    return ids, tmp_path / "jobs"


def test_drr_routes_rendered_cached_and_shown(client_for, small_plan):
    from PIL import Image

    ids, jobs = small_plan
    cl = client_for("radiologist")
    base = f"/cases/{ids['case']}/plans/{ids['plan']}"
    page = cl.get(f"{base}/review").text
    for v in ("ap", "lateral", "bullseye"):
        assert f'src="{base}/drr/{v}.png"' in page
    assert 'id="review-drr"' in page
    folder = next(jobs.glob("job-*/plan-1"))
    for v in ("ap", "lateral", "bullseye"):
        r = cl.get(f"{base}/drr/{v}.png")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        img = Image.open(io.BytesIO(r.content))
        assert img.width > 300 and img.height > 300
        assert (folder / "review" / f"drr_{v}.png").read_bytes() == r.content  # cached beside the plan
    # the report's own image (same renderer) is served when the plan folder has one newer than the plan
    (folder / "images").mkdir()
    marker = (folder / "review" / "drr_ap.png").read_bytes()[:-1] + b"\x00"
    (folder / "images" / "drr_lateral.png").write_bytes(marker)
    assert cl.get(f"{base}/drr/lateral.png").content == marker
    assert cl.get(f"{base}/drr/oblique.png").status_code == 404
    assert client_for("research").get(f"{base}/drr/ap.png").status_code == 404  # pseudonymised: no geometry
