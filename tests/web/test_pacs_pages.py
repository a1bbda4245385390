"""The lesion's CT from the PACS in the web app (real Orthanc): search, wrong patient refused, right one attached."""

from __future__ import annotations

import re
import socket

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from osteoplan.imaging.synth import FAKE_PHI, write_series

from .conftest import csrf_of, make_case

pytestmark = pytest.mark.pacs


@pytest.fixture()
def pacs_on_app(app, monkeypatch):
    import os

    from osteoplan.pacs import PacsConfig

    url = os.environ.get("OSTEOPLAN_TEST_ORTHANC_URL")
    if not url:
        pytest.skip("no test Orthanc (OSTEOPLAN_TEST_ORTHANC_URL unset): run through ./scripts/test")
    cfg = PacsConfig(url.rstrip("/") + "/dicom-web", username=os.environ.get("OSTEOPLAN_TEST_ORTHANC_USER"),
                     password=os.environ.get("OSTEOPLAN_TEST_ORTHANC_PASSWORD"), timeout_s=20, retries=1)
    monkeypatch.setattr(app.state, "pacs_config", cfg, raising=False)
    return cfg


def _store(cfg, tmp_path, **identity):
    """A 12-slice CT series in one new study, with the given Patient module; returns (study, series) UIDs."""
    from osteoplan.pacs import PacsClient

    s = write_series(tmp_path / generate_uid()[-6:], study_uid=generate_uid(), series_uid=generate_uid(),
                     for_uid=generate_uid(), seed=int(np.random.default_rng().integers(1 << 30)))
    dsets = [pydicom.dcmread(p) for p in s.files]
    for ds in dsets:
        for kw, v in identity.items():
            setattr(ds, kw, v)
    PacsClient(cfg).store(dsets)
    return s.study_uid, s.series_uid


def test_search_pick_wrong_patient_refused_right_patient_attached(engine, client_for, pacs_on_app, tmp_path):
    ids = make_case(engine, through="lesion")
    c, les = ids["case"], ids["lesion"]
    right = _store(pacs_on_app, tmp_path, PatientID="H-998877", PatientName="TESTNAME^ALICE",
                   PatientBirthDate="19600305", PatientSex="F")
    wrong = _store(pacs_on_app, tmp_path)  # FAKE_PHI: another patient
    cl = client_for("radiologist")
    r = cl.get(f"/cases/{c}/lesions/{les}/pacs")
    assert r.status_code == 200 and 'value="H-998877"' in r.text  # prefilled with the case's identifier
    token = csrf_of(cl)
    r = cl.post(f"/cases/{c}/lesions/{les}/pacs", data={"csrf_token": token, "study": right[0]})
    assert r.status_code == 200 and right[1] in r.text and "Use this CT" in r.text
    r = cl.post(f"/cases/{c}/lesions/{les}/pacs", data={"csrf_token": token, "patient_id": "H-998877"})
    assert r.status_code == 200 and right[1] in r.text and wrong[1] not in r.text
    r = cl.post(f"/cases/{c}/lesions/{les}/pacs/pick", data={"csrf_token": token, "study_uid": wrong[0],
                                                              "series_uid": wrong[1]}, follow_redirects=False)
    assert r.status_code == 422
    msg = re.search(r'id="pacs-error"><strong>Not done.</strong> ([^<]+)<', r.text).group(1)
    # the case: H-998877, Testname Alice, born 1960, female; the CT: FAKE_PHI (born 1961, F)
    assert msg.startswith("This CT belongs to another patient than the case: PatientID, PatientName, PatientBirthDate "
                          "differ (PatientSex agree).")
    for value in (FAKE_PHI["PatientID"], "SYNTHPATIENT", "19610723"):
        assert value not in r.text
    r = cl.post(f"/cases/{c}/lesions/{les}/pacs/pick", data={"csrf_token": token, "study_uid": right[0],
                                                              "series_uid": right[1]}, follow_redirects=False)
    assert r.status_code == 303, r.text[:400]
    page = cl.get(f"/cases/{c}").text
    assert "CT series attached to the lesion (patient identity verified on PatientID, PatientName, PatientBirthDate, " \
           "PatientSex)" in page
    assert "1 series" in page
    from osteoplan.workflow.db import session_factory, session_scope
    from osteoplan.workflow.models import Lesion

    with session_scope(session_factory(engine)) as s:
        assert s.get(Lesion, les).ct_series_uids == [right[1]]


def test_pacs_unreachable_is_one_message_on_the_page(engine, client_for, app, monkeypatch):
    from osteoplan.pacs import PacsConfig

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    monkeypatch.setattr(app.state, "pacs_config", PacsConfig(f"http://127.0.0.1:{port}/dicom-web", retries=1),
                        raising=False)
    ids = make_case(engine, through="lesion")
    cl = client_for("radiologist")
    r = cl.post(f"/cases/{ids['case']}/lesions/{ids['lesion']}/pacs",
                data={"csrf_token": csrf_of(cl), "patient_id": "H-998877"})
    assert r.status_code == 502
    assert f"Cannot connect to the PACS at http://127.0.0.1:{port}/dicom-web while searching series" in r.text
    r = client_for("research").get(f"/cases/{ids['case']}/lesions/{ids['lesion']}/pacs")
    assert r.status_code == 403


def test_plan_of_another_ct_series_is_refused(engine, client_for):
    """A plan whose ct_source names a series not attached to the lesion is refused; on the attached series it is kept."""
    import json

    from osteoplan.workflow import service as sv
    from osteoplan.workflow.db import session_factory, session_scope

    from .conftest import SAMPLE_PLAN

    ids = make_case(engine, through="lesion")
    with session_scope(session_factory(engine)) as s:
        sv.update_record(s, None, "lesion", ids["lesion"], {"ct_series_uids": ["1.2.840.99.1"]},
                         expected_version=sv_version(s, ids["lesion"]))
    c = client_for("radiologist")
    url = f"/cases/{ids['case']}/lesions/{ids['lesion']}/plans/new"
    src = {"study_uid": "1.2.840.99", "series_uid": "1.2.840.77.5", "frame_of_reference_uid": None,
           "volume_sha256": "0" * 64}
    other = dict(SAMPLE_PLAN, ct_source=src)
    r = c.post(url, data={"csrf_token": csrf_of(c), "label": "other CT"},
               files={"plan_file": ("plan.json", json.dumps(other).encode(), "application/json")})
    assert r.status_code == 422 and "made on another CT series than the ones attached to the lesion" in r.text
    same = dict(SAMPLE_PLAN, ct_source=dict(src, series_uid="1.2.840.99.1"))
    r = c.post(url, data={"csrf_token": csrf_of(c), "label": "this CT"}, follow_redirects=False,
               files={"plan_file": ("plan.json", json.dumps(same).encode(), "application/json")})
    assert r.status_code == 303


def sv_version(session, lesion_id: int) -> int:
    from osteoplan.workflow.models import Lesion

    return session.get(Lesion, lesion_id).version


def test_deidentified_ct_needs_a_confirmation(engine, client_for, pacs_on_app, tmp_path):
    """A de-identified CT cannot be verified: refused with a confirmation box; confirmed, it is attached as unverified."""
    ids = make_case(engine, through="lesion")
    c, les = ids["case"], ids["lesion"]
    study, series = _store(pacs_on_app, tmp_path, PatientID="PSEUDO-1", PatientName="PSEUDO", PatientBirthDate="",
                           PatientIdentityRemoved="YES")
    cl = client_for("radiologist")
    token = csrf_of(cl)
    url = f"/cases/{c}/lesions/{les}/pacs/pick"
    r = cl.post(url, data={"csrf_token": token, "study_uid": study, "series_uid": series}, follow_redirects=False)
    assert r.status_code == 422 and "cannot be verified against the case: the CT is de-identified" in r.text
    assert 'id="form-pacs-confirm"' in r.text
    r = cl.post(url, data={"csrf_token": token, "study_uid": study, "series_uid": series, "confirm_unverified": "yes"},
                follow_redirects=False)
    assert r.status_code == 303
    assert "patient identity NOT verified (confirmed by hand)" in cl.get(f"/cases/{c}").text
