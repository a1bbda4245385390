"""Fixtures of the PACS tests: the throw-away Orthanc started by ./scripts/test (scripts/with-orthanc)."""

from __future__ import annotations

import os
import socket
import threading

import pytest


@pytest.fixture(scope="session")
def orthanc():
    """(rest_root, user, password) of the test Orthanc; skips when ./scripts/test did not start one."""
    url = os.environ.get("OSTEOPLAN_TEST_ORTHANC_URL")
    if not url:
        pytest.skip("no test Orthanc (OSTEOPLAN_TEST_ORTHANC_URL unset): run through ./scripts/test or "
                    "./scripts/with-orthanc, which start one when the Debian packages orthanc and orthanc-dicomweb "
                    "are installed")
    return url.rstrip("/"), os.environ.get("OSTEOPLAN_TEST_ORTHANC_USER"), os.environ.get("OSTEOPLAN_TEST_ORTHANC_PASSWORD")


@pytest.fixture()
def pacs_config(orthanc):
    from osteoplan.pacs import PacsConfig

    root, user, password = orthanc
    return PacsConfig(root + "/dicom-web", username=user, password=password, timeout_s=20, retries=1)


@pytest.fixture()
def pacs(pacs_config):
    from osteoplan.pacs import PacsClient

    return PacsClient(pacs_config)


@pytest.fixture()
def orthanc_rest(orthanc):
    """A requests session on Orthanc's own REST API (to delete a series behind the client's back)."""
    import requests

    root, user, password = orthanc
    s = requests.Session()
    s.auth = (user, password)
    return root, s


@pytest.fixture()
def silent_server():
    """A TCP port that accepts connections and never answers (a hung PACS); yields its URL."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                conns.append(c)
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}/dicom-web"
    stop.set()
    t.join(2)
    for c in conns:
        c.close()
    srv.close()


@pytest.fixture()
def closed_port_url():
    """URL of a loopback port nobody listens on (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/dicom-web"
