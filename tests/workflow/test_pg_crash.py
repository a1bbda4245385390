"""PostgreSQL: committed data survives a SIGKILL of the database server itself (crash recovery from the WAL).

Runs its own throw-away cluster (fsync ON, unlike the shared test server) so killing it disturbs nobody.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
from sqlalchemy import text

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _pgbin() -> str | None:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in p.split("/")[-2].split(".")
                                                                           if x.isdigit()])
    for b in reversed(bins):
        if os.path.exists(os.path.join(b, "initdb")):
            return b
    return shutil.which("initdb") and os.path.dirname(shutil.which("initdb"))


def _run(args, **kw):
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_committed_data_survives_postgres_server_sigkill():
    pgbin = _pgbin()
    if pgbin is None:
        pytest.skip("PostgreSQL server binaries (initdb) are not installed")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start a PostgreSQL server")
    from osteoplan.workflow import service as sv
    from osteoplan.workflow.db import init_db, make_engine, session_factory

    d = tempfile.mkdtemp(prefix="osteoplan-pgcrash-")
    if os.geteuid() == 0:
        shutil.chown(d, "postgres")
    data, port = os.path.join(d, "data"), _free_port()
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={d} -c fsync=on"
    try:
        _run([f"{pgbin}/initdb", "-D", data, "-U", "osteoplan", "--auth=trust", "-E", "UTF8"])
        _run([f"{pgbin}/pg_ctl", "-D", data, "-l", os.path.join(d, "log"), "-w", "-o", opts, "start"])
        _run([f"{pgbin}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "osteoplan", "crash"])
        url = f"postgresql+psycopg://osteoplan@127.0.0.1:{port}/crash"
        init_db(url)
        eng = make_engine(url)
        s = session_factory(eng)()
        sv.create_patient(s, None, {"code": "COMMITTED-1", "primary_cancer": "lung"})
        s.commit()
        sv.create_patient(s, None, {"code": "IN-FLIGHT-1", "primary_cancer": "lung"})
        s.flush()  # open transaction when the server dies
        with open(os.path.join(data, "postmaster.pid")) as fh:
            pid = int(fh.readline())
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.kill(pid, 0)
                time.sleep(0.05)
            except ProcessLookupError:
                break
        s.invalidate()
        eng.dispose()
        # orphaned backends may keep the shared memory a moment; pg_ctl start waits for recovery (-w)
        time.sleep(0.5)
        _run([f"{pgbin}/pg_ctl", "-D", data, "-l", os.path.join(d, "log"), "-w", "-o", opts, "start"])
        eng = make_engine(url)
        with eng.connect() as conn:
            codes = [r[0] for r in conn.execute(text("SELECT code FROM patients ORDER BY code"))]
            n_audit = conn.execute(text("SELECT count(*) FROM audit_log")).scalar()
        eng.dispose()
        assert codes == ["COMMITTED-1"] and n_audit == 1
        log = open(os.path.join(d, "log")).read()
        assert "database system was interrupted" in log or "not properly shut down" in log
    finally:
        subprocess.run((["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else [])
                       + [f"{pgbin}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)
