"""``osteoplan serve``: starts on a new SQLite file with the demo data set and prints the URL and logins."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from .conftest import REPO, free_port


@pytest.mark.slow
def test_serve_new_database_with_demo(tmp_path):
    port = free_port()
    db = tmp_path / "reg.db"
    proc = subprocess.Popen([sys.executable, "-m", "osteoplan.cli", "serve", "--db", str(db), "--port", str(port),
                             "--demo-cases", "8"], cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline = time.monotonic() + 90
        up = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                up = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                up = False
            if up:
                break
            time.sleep(0.3)
        assert up, "osteoplan serve did not answer"
        tok = httpx.post(f"http://127.0.0.1:{port}/api/token",
                         json={"username": "coordinator", "password": "coordinator-demo"})
        assert tok.status_code == 200
        cases = httpx.get(f"http://127.0.0.1:{port}/api/cases",
                          headers={"Authorization": f"Bearer {tok.json()['access_token']}"}).json()
        assert cases["total"] == 8
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode()
    assert f"http://localhost:{port}/" in out
    assert "radiologist-demo" in out and "research" in out
    assert db.exists() and (tmp_path / "reg.db.secret").exists()
    assert "Traceback" not in out
