"""In headless Debian Chromium against a real uvicorn server and the test Orthanc: log in -> case -> "CT from
PACS" -> search -> another patient's CT refused (attribute names only) -> this patient's CT attached.
Screenshots go to docs/screenshots/ when ``OSTEOPLAN_SCREENSHOTS=1`` (else to a temporary folder)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from osteoplan.imaging.synth import FAKE_PHI, write_series

from .conftest import REPO, free_port, make_case, start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.pacs, pytest.mark.slow]

CHROMIUM = os.environ.get("OSTEOPLAN_CHROMIUM", "/usr/bin/chromium")


def test_pick_the_ct_from_the_pacs_in_the_browser(backend_name, fresh_database, tmp_path):
    if backend_name != "sqlite":
        pytest.skip("the PACS pages do not depend on the database (tests/web/test_pacs_pages.py runs on both): "
                    "one browser run is enough")
    url = os.environ.get("OSTEOPLAN_TEST_ORTHANC_URL")
    if not url:
        pytest.skip("no test Orthanc (OSTEOPLAN_TEST_ORTHANC_URL unset): run through ./scripts/test")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium not found at {CHROMIUM} (install Debian's chromium or set OSTEOPLAN_CHROMIUM)")
    playwright = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    from osteoplan.pacs import PacsClient, PacsConfig
    from osteoplan.web import backend

    cfg = PacsConfig(url.rstrip("/") + "/dicom-web", username=os.environ.get("OSTEOPLAN_TEST_ORTHANC_USER"),
                     password=os.environ.get("OSTEOPLAN_TEST_ORTHANC_PASSWORD"), timeout_s=20, retries=1)
    series = {}
    for key, identity in (("right", {"PatientID": "H-998877", "PatientName": "TESTNAME^ALICE",
                                     "PatientBirthDate": "19600305", "PatientSex": "F"}), ("wrong", {})):
        s = write_series(tmp_path / key, study_uid=generate_uid(), series_uid=generate_uid(), for_uid=generate_uid(),
                         seed=int(np.random.default_rng().integers(1 << 30)), description=f"neck CT ({key})")
        dsets = [pydicom.dcmread(p) for p in s.files]
        for ds in dsets:
            for kw, v in identity.items():
                setattr(ds, kw, v)
        PacsClient(cfg).store(dsets)
        series[key] = (s.study_uid, s.series_uid)
    db_url = fresh_database(backend_name)
    eng = backend.init_engine(db_url)
    backend.seed_demo(eng, n_cases=2, rounds=4)
    ids = make_case(eng, through="lesion")
    eng.dispose()
    shots = REPO / "docs" / "screenshots" if os.environ.get("OSTEOPLAN_SCREENSHOTS") == "1" and \
        backend_name == "sqlite" else tmp_path / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = start_server(db_url, port, env_extra={"OSTEOPLAN_PACS_URL": cfg.url, "OSTEOPLAN_PACS_USERNAME": cfg.username,
                                                 "OSTEOPLAN_PACS_PASSWORD": cfg.password,
                                                 "OSTEOPLAN_PACS_CONFIG": str(tmp_path / "absent.toml")})
    base = f"http://127.0.0.1:{port}"
    try:
        with playwright.sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
            pg = b.new_page(viewport={"width": 1200, "height": 900})
            pg.goto(f"{base}/login")
            pg.fill("input[name=username]", "radiologist")
            pg.fill("input[name=password]", "radiologist-demo")
            pg.click("button[type=submit]")
            pg.goto(f"{base}/cases/{ids['case']}")
            pg.click(f"a[href='/cases/{ids['case']}/lesions/{ids['lesion']}/pacs']")
            assert pg.input_value("input[name=patient_id]") == "H-998877"
            # another patient's CT: refused, the identifiers that differ named, none of their values shown
            pg.fill("input[name=patient_id]", "")
            pg.fill("input[name=study]", series["wrong"][0])
            pg.click("#form-pacs-search button")
            pg.wait_for_selector("#pacs-series")
            pg.click("#pacs-series button")
            err = pg.inner_text("#pacs-error")
            assert "another patient than the case: PatientID, PatientName, PatientBirthDate differ" in err
            assert FAKE_PHI["PatientID"] not in pg.content()
            pg.screenshot(path=str(shots / "pacs-wrong-patient.png"), full_page=True)
            # this patient's CT
            pg.fill("input[name=study]", series["right"][0])
            pg.click("#form-pacs-search button")
            pg.wait_for_selector("#pacs-series")
            assert "neck CT (right)" in pg.inner_text("#pacs-series")
            pg.screenshot(path=str(shots / "pacs-search.png"), full_page=True)
            pg.click("#pacs-series button")
            pg.wait_for_url(f"{base}/cases/{ids['case']}")
            assert "patient identity verified on PatientID, PatientName, PatientBirthDate, PatientSex" in pg.content()
            assert "1 series" in pg.content()
            pg.screenshot(path=str(shots / "pacs-ct-attached.png"), full_page=True)
            b.close()
    finally:
        stop_server(proc)
    if shots.is_relative_to(REPO):
        from PIL import Image

        for name in ("pacs-wrong-patient.png", "pacs-search.png", "pacs-ct-attached.png"):
            Image.open(shots / name).convert("RGB").quantize(colors=256).save(shots / name, optimize=True)
