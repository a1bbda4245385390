"""The web defects of issue 18, one test (or more) each:

1. a soft-deleted case is read-only and hidden (writes and the information sheet refused);
2. the login throttle: forwarded headers believed only from configured proxies, per-account and per-source
   lock-outs (password spraying), unknown users cost a bcrypt check like known ones;
3. request bodies limited per route before they are read (413), with a declared length and chunked;
4. concurrent case creation without a code never collides (409 / 422);
5. a logged-out cookie stays refused after a restart; the cookie is Secure over HTTPS (trusted proxy); the
   SQLite file is created 0600.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import stat
import threading

import anyio
import pytest

from .conftest import PASSWORD, SAMPLE_PLAN, csrf_of, free_port, login, make_case, start_server, stop_server

# ------------------------------------------------------------------------------------------------ helpers


@pytest.fixture()
def throttle(app):
    """A new login throttle for this test, the shared one put back afterwards (the app fixture serves the whole
    session; monkeypatch cannot restore an attribute of starlette's ``State``)."""
    from osteoplan.web.auth import LoginThrottle

    shared = app.state.login_throttle
    app.state.login_throttle = LoginThrottle()
    yield app.state.login_throttle
    app.state.login_throttle = shared


def _create_user(engine, name: str, password: str, role: str = "coordinator"):
    from osteoplan.web import backend
    from osteoplan.workflow.db import session_factory, session_scope

    with session_scope(session_factory(engine)) as s:
        backend.create_user(s, None, name, password, role, rounds=4)


def _asgi_request(app, method: str, path: str, headers: dict[str, str], chunks, client=("127.0.0.1", 40000)):
    """Run one request through the ASGI app with a body made of *chunks* (an iterable of bytes, consumed only as
    the app reads it). Returns ``(status, body, bytes_pulled)``: how many body bytes the app asked for."""
    pulled = 0
    chunks = iter(chunks)
    out: dict = {"status": None, "body": b""}
    done = anyio.Event()

    async def receive():
        nonlocal pulled
        if done.is_set():
            return {"type": "http.disconnect"}
        chunk = next(chunks, None)
        if chunk is None:
            await done.wait()
            return {"type": "http.disconnect"}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")
            if not message.get("more_body"):
                done.set()

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in {"host": "testserver", **headers}.items()],
             "client": client, "server": ("testserver", 80)}

    async def run():
        await app(scope, receive, send)

    anyio.run(run)
    return out["status"], out["body"], pulled


def _endless(chunk: bytes, total: int):
    for _ in range(total // len(chunk)):
        yield chunk


# ------------------------------------------------------------------------------------------------ 1. deleted case
def _delete_case(api_admin, case_id: int) -> None:
    r = api_admin.post(f"/api/cases/{case_id}/delete", json={"reason": "opened twice by mistake"})
    assert r.status_code == 200, r.text


def test_deleted_case_refuses_writes_and_its_information_sheet(engine, api_for, client_for):
    """Every write the campaign made on a deleted case (schedule 201, log 200, post-op 200, follow-up 201, adverse
    event 201) and the information sheet (API and page) are refused with 404 once the case is deleted; the same
    requests on an identical live case succeed, and the audit trail still lists the deletion."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from osteoplan.workflow import models as m

    d0 = dt.date.today() - dt.timedelta(days=200)
    api = api_for("radiologist")

    def attempts(ids):
        pid = ids["procedure"]
        return {
            "schedule": api.post("/api/procedures", json={"decision_id": ids["decision"],
                                                          "scheduled_date": str(d0 + dt.timedelta(days=60))}),
            "log": api.post(f"/api/procedures/{pid}/log", json={"procedure_date": str(d0 + dt.timedelta(days=10)),
                                                                "cement_volume_ml": 2.5}),
            "post-op": api.post(f"/api/procedures/{pid}/post-op",
                                json={"collar_removed_date": str(d0 + dt.timedelta(days=10)),
                                      "discharge_date": str(d0 + dt.timedelta(days=11))}),
            "follow-up": api.post("/api/follow-ups", json={"procedure_id": pid, "timepoint": "3m",
                                                           "visit_date": str(d0 + dt.timedelta(days=100)),
                                                           "pain_nrs": 1}),
            "adverse event": api.post("/api/adverse-events", json={"procedure_id": pid,
                                                                   "event_date": str(d0 + dt.timedelta(days=12)),
                                                                   "grade": "1", "description": "nausea"}),
            "plan": api.post("/api/plans", json={"lesion_id": ids["lesion"], "plan": SAMPLE_PLAN, "label": "x"}),
            "sheet (API)": api.get(f"/api/consultations/{ids['consultation']}/info-sheet.pdf?lang=en"),
            "sheet (page)": client_for("radiologist").get(
                f"/cases/{ids['case']}/consultations/{ids['consultation']}/info-sheet.pdf?lang=en"),
        }

    live = make_case(engine, through="followup")
    ok = {k: r.status_code for k, r in attempts(live).items()}
    assert ok == {"schedule": 201, "log": 200, "post-op": 200, "follow-up": 201, "adverse event": 201, "plan": 201,
                  "sheet (API)": 200, "sheet (page)": 200}

    gone = make_case(engine, through="followup")
    _delete_case(api_for("admin"), gone["case"])

    def counts():
        with Session(engine) as s:
            return [s.scalar(select(func.count()).select_from(t).where(t.patient_id == gone["case"]))
                    for t in (m.Procedure, m.FollowUp, m.AdverseEvent)] + [
                s.scalar(select(m.Procedure.version).where(m.Procedure.id == gone["procedure"]))]

    before = counts()
    refused = attempts(gone)
    assert {k: r.status_code for k, r in refused.items()} == {k: 404 for k in refused}
    assert "deleted" in refused["log"].json()["detail"]
    assert counts() == before  # nothing was written
    # the audit trail keeps the deletion
    items = api_for("admin").get("/api/audit?limit=1000").json()["items"]
    assert any(i["action"] == "delete" and i["entity"] == "patient" and i["entity_id"] == gone["case"] for i in items)


def test_deleted_case_refuses_validation_of_its_decision(engine, api_for):
    ids = make_case(engine, through="decision")
    _delete_case(api_for("admin"), ids["case"])
    r = api_for("tumour_board").post(f"/api/decisions/{ids['decision']}/validate", json={})
    assert r.status_code == 404


# ------------------------------------------------------------------------------------------------ 2. login throttle
def test_forwarded_for_from_an_untrusted_client_does_not_escape_the_throttle(engine, app, client_for, throttle):
    """20 wrong passwords, each with a new X-Forwarded-For, then the right one: refused (429), because the
    header is ignored from a client that is not a configured proxy (there is none by default)."""
    _create_user(engine, "xff-victim", "xff-right-password")
    c = client_for(None)
    tok = csrf_of(c)
    codes = []
    for i in range(20):
        r = c.post("/login", data={"username": "xff-victim", "password": f"wrong-{i}", "csrf_token": tok},
                   headers={"X-Forwarded-For": f"203.0.113.{i + 1}"})
        codes.append(r.status_code)
    assert codes[:throttle.max_failures] == [401] * throttle.max_failures
    assert set(codes[throttle.max_failures:]) == {429}
    r = c.post("/login", data={"username": "xff-victim", "password": "xff-right-password", "csrf_token": tok},
               headers={"X-Forwarded-For": "198.51.100.7"}, follow_redirects=False)
    assert r.status_code == 429


@pytest.mark.slow
def test_serve_ignores_forwarded_for_from_a_local_client(tmp_path):
    """The campaign's case against ``osteoplan serve``: a client on the same machine (127.0.0.1, which uvicorn
    trusts by default) rotating X-Forwarded-For over 20 wrong passwords, then the right one: 429."""
    import subprocess
    import sys
    import time

    import httpx

    from osteoplan.web import backend

    from .conftest import REPO

    url = f"sqlite:///{tmp_path / 'serve.db'}"
    eng = backend.init_engine(url)
    _create_user(eng, "served-user", "served-right-password")
    eng.dispose()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "osteoplan.cli", "serve", "--db", url, "--port", str(port)],
                            cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "osteoplan serve did not start"
            time.sleep(0.3)
        codes = [httpx.post(f"{base}/api/token", json={"username": "served-user", "password": f"wrong-{i}"},
                            headers={"X-Forwarded-For": f"203.0.113.{i + 1}"}).status_code for i in range(20)]
        assert codes == [401] * 5 + [429] * 15
        right = httpx.post(f"{base}/api/token", json={"username": "served-user", "password": "served-right-password"},
                           headers={"X-Forwarded-For": "198.51.100.77"})
        assert right.status_code == 429
    finally:
        proc.terminate()
        proc.wait(20)


def test_account_is_locked_from_any_source(engine, app, throttle):
    """Guessing one account's password from many addresses (each below the per-source limits): the account is
    locked after ``max_account_failures``, from every address."""
    from fastapi.testclient import TestClient

    _create_user(engine, "many-sources", "many-sources-right")
    codes = []
    for i in range(throttle.max_account_failures + 1):
        with TestClient(app, client=(f"192.0.2.{i + 1}", 50000), raise_server_exceptions=False) as c:
            codes.append(c.post("/api/token", json={"username": "many-sources", "password": f"bad-{i}"}).status_code)
    assert codes == [401] * throttle.max_account_failures + [429]
    with TestClient(app, client=("192.0.2.250", 50000)) as c:
        assert c.post("/api/token", json={"username": "many-sources",
                                          "password": "many-sources-right"}).status_code == 429


def test_password_spraying_from_one_source_is_throttled(engine, app, client_for, throttle):
    """40 user names x 1 try from one address: after ``max_source_failures`` failures that address is paused (429),
    for every account, including a right password."""
    c = client_for(None)
    codes = [c.post("/api/token", json={"username": f"sprayed-{i}", "password": "Winter2026!"}).status_code
             for i in range(40)]
    n = throttle.max_source_failures
    assert codes == [401] * n + [429] * (40 - n)
    r = c.post("/api/token", json={"username": "radiologist", "password": PASSWORD.format(role="radiologist")})
    assert r.status_code == 429


def test_unknown_user_costs_one_bcrypt_check_like_a_known_one(engine, app, client_for, throttle, monkeypatch):
    """The response time must not tell which user names exist: an unknown name is checked against a dummy
    bcrypt hash of the same cost as the accounts' (4 in these tests), exactly as a known name is."""
    import bcrypt

    from osteoplan.workflow import service

    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password, hashed):
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(service.bcrypt, "checkpw", counting)
    c = client_for(None)
    assert c.post("/api/token", json={"username": "no-such-user", "password": "whatever-1"}).status_code == 401
    assert len(calls) == 1 and calls[0].startswith(b"$2b$04$")
    assert c.post("/api/token", json={"username": "coordinator", "password": "whatever-1"}).status_code == 401
    assert len(calls) == 2 and calls[1].startswith(b"$2b$04$")
    tok = csrf_of(c)
    assert c.post("/login", data={"username": "nobody-here", "password": "x" * 9, "csrf_token": tok}).status_code == 401
    assert len(calls) == 3


def test_proxy_headers_believed_only_from_configured_proxies():
    """The client address is the right-most X-Forwarded-For entry that is not a trusted proxy, and only when the
    connection comes from one; X-Forwarded-Proto sets the scheme the same way."""
    from osteoplan.web.middleware import ProxyHeadersMiddleware

    seen = {}

    async def inner(scope, receive, send):
        seen["client"], seen["scheme"] = scope["client"][0], scope["scheme"]

    def through(mw, peer, headers):
        scope = {"type": "http", "scheme": "http", "client": (peer, 1234),
                 "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
        anyio.run(mw, scope, None, None)
        return seen["client"], seen["scheme"]

    hdrs = {"x-forwarded-for": "1.2.3.4, 198.51.100.9", "x-forwarded-proto": "https"}
    none = ProxyHeadersMiddleware(inner, ())
    assert through(none, "10.0.0.5", hdrs) == ("10.0.0.5", "http")  # default: nobody is trusted
    proxied = ProxyHeadersMiddleware(inner, ("10.0.0.5", "10.1.0.0/16"))
    assert through(proxied, "198.51.100.20", hdrs) == ("198.51.100.20", "http")  # not a proxy: ignored
    # the proxy appended the real peer (198.51.100.9); the forged left-most entry is not believed
    assert through(proxied, "10.0.0.5", hdrs) == ("198.51.100.9", "https")
    # two proxies in a row: skip the inner one
    assert through(proxied, "10.0.0.5", {"x-forwarded-for": "1.2.3.4, 198.51.100.9, 10.1.2.3"}) == (
        "198.51.100.9", "http")
    with pytest.raises(ValueError, match="not an IP address"):
        ProxyHeadersMiddleware(inner, ("proxy.example",))


# ------------------------------------------------------------------------------------------------ 3. body limits
def test_declared_large_bodies_are_refused_unread(app, tokens, monkeypatch):
    """A 300 MB Content-Length on /login (anonymous), /api/token (JSON) and a plan upload (authenticated) is
    answered 413 without the application reading a single body byte or running the handler."""
    from osteoplan.web import backend

    called = []
    monkeypatch.setattr(backend, "throttled_authenticate", lambda *a, **k: called.append(1))
    bearer = {"authorization": f"Bearer {tokens['radiologist']}"}
    for path, ctype, extra in [("/login", "application/x-www-form-urlencoded", {}),
                               ("/api/token", "application/json", {}),
                               ("/cases/1/lesions/1/plans/new", "multipart/form-data; boundary=b0undary", bearer)]:
        status, body, pulled = _asgi_request(app, "POST", path, {"content-type": ctype, "content-length": "300000000",
                                                                 **extra}, _endless(b"x" * 65536, 300_000_000))
        assert (status, pulled) == (413, 0), path
        text = body.decode()
        assert "larger than this address accepts" in text and "Traceback" not in text
    assert json.loads(_asgi_request(app, "POST", "/api/token", {"content-type": "application/json",
                                                                "content-length": "100000000"}, [])[1])[
        "error"] == "Request too large"
    assert called == []


def test_chunked_bodies_are_cut_at_the_route_limit(app, tokens):
    """Bodies without Content-Length (chunked): the application stops reading once the route's limit is passed
    (16 KiB for the log-in routes, 5 MB + 64 KiB for a plan upload), and answers 413."""
    from osteoplan.web.middleware import body_limit

    chunk = b"x" * 65536
    login_form = (b"username=a&password=" + chunk for _ in range(800))  # would be 52 MB
    status, body, pulled = _asgi_request(app, "POST", "/login",
                                         {"content-type": "application/x-www-form-urlencoded"}, login_form)
    assert status == 413 and body_limit("/login") < pulled <= body_limit("/login") + 2 * len(chunk)

    status, body, pulled = _asgi_request(app, "POST", "/api/token", {"content-type": "application/json"},
                                         _endless(chunk, 100_000_000))
    assert status == 413 and pulled <= body_limit("/api/token") + len(chunk)
    assert "larger than this address accepts" in json.loads(body)["detail"]

    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"label\"\r\n\r\nbig\r\n--{boundary}\r\n"
            "Content-Disposition: form-data; name=\"plan_file\"; filename=\"plan.json\"\r\n"
            "Content-Type: application/json\r\n\r\n").encode()
    path = "/cases/1/lesions/1/plans/new"

    def upload():
        yield head
        yield from _endless(chunk, 300_000_000)

    status, body, pulled = _asgi_request(app, "POST", path, {"content-type": f"multipart/form-data; boundary={boundary}",
                                                             "authorization": f"Bearer {tokens['radiologist']}"},
                                         upload())
    assert status == 413 and body_limit(path) < pulled <= body_limit(path) + len(chunk) + len(head)
    assert b"Request too large" in body


@pytest.mark.slow
def test_real_server_answers_413_before_the_body_is_sent(tmp_path):
    """Against uvicorn: a request announcing 300 MB gets its 413 while the client has sent only the headers."""
    from osteoplan.web import backend

    url = f"sqlite:///{tmp_path / 'limits.db'}"
    backend.init_engine(url).dispose()
    port = free_port()
    proc = start_server(url, port)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded"
                         b"\r\nContent-Length: 300000000\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):  # the server closes the connection after its answer
                answer += chunk
            answer = answer.decode("latin-1")
        assert answer.startswith("HTTP/1.1 413"), answer[:200]
        assert "larger than this address accepts" in answer
    finally:
        stop_server(proc)


# ------------------------------------------------------------------------------------------------ 4. case codes
def test_concurrent_case_creation_without_code_never_conflicts(api_for):
    """8 threads each open 6 cases at once through the API without a code: all 48 answered 201, 48 distinct
    codes (the campaign saw 409 and 422 here)."""
    results: list[tuple[int, str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)
    clients = [api_for("coordinator") for _ in range(8)]

    def work(c):
        barrier.wait()
        for _ in range(6):
            r = c.post("/api/cases", json={"primary_cancer": "lung", "sex": "male"})
            with lock:
                results.append((r.status_code, r.text))

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [s for s, _ in results] == [201] * 48, [t for s, t in results if s != 201][:3]
    ids = [json.loads(t)["id"] for _, t in results]
    codes = {api_for("coordinator").get(f"/api/cases/{i}").json()["code"] for i in ids}
    assert len(codes) == 48 and all(re.fullmatch(rf"OP-{dt.date.today().year}-\d{{4}}", c) for c in codes)


# ------------------------------------------------------------------------------------------------ 5. sessions, files
def test_logged_out_cookie_stays_refused_after_a_restart(engine, db_url, users):
    """Log in, keep a copy of the cookie, log out; a new application on the same database and key (a restart)
    refuses the copy, while a session that was not logged out survives the restart."""
    from fastapi.testclient import TestClient

    from osteoplan.web.app import create_app
    from osteoplan.web.settings import Settings

    settings = Settings(database_url=db_url, secret_key="restart-secret-" + "z" * 40)
    before = create_app(settings, engine=engine)
    with TestClient(before) as a, TestClient(before) as b:
        login(a, "radiologist")
        login(b, "coordinator")
        copied = a.cookies.get("osteoplan_session")
        kept = b.cookies.get("osteoplan_session")
        r = a.post("/logout", data={"csrf_token": csrf_of(a)}, follow_redirects=False)
        assert r.status_code == 303
    after = create_app(settings, engine=engine)  # the restart: nothing in memory survives
    with TestClient(after) as c:
        c.cookies.set("osteoplan_session", copied)
        r = c.get("/cases", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        assert c.get("/api/cases").status_code == 401
    with TestClient(after) as c:
        c.cookies.set("osteoplan_session", kept)
        assert c.get("/cases", follow_redirects=False).status_code == 200


def _session_cookie_header(response) -> str:
    return next(v for k, v in response.headers.multi_items()
                if k.lower() == "set-cookie" and v.startswith("osteoplan_session="))


def test_session_cookie_is_secure_over_https_from_a_trusted_proxy(engine, db_url, users):
    """Behind a configured proxy saying X-Forwarded-Proto: https the session cookie is Secure; the same header
    from a client that is not a proxy changes nothing; Settings.https_only forces it."""
    from fastapi.testclient import TestClient

    from osteoplan.web.app import create_app
    from osteoplan.web.settings import Settings

    def cookie(settings_kw, client, headers):
        app = create_app(Settings(database_url=db_url, secret_key="cookie-secret-" + "c" * 40, **settings_kw),
                         engine=engine)
        with TestClient(app, client=(client, 50000)) as c:
            return _session_cookie_header(c.get("/login", headers=headers)).lower()

    https = {"X-Forwarded-Proto": "https"}
    assert "secure" in cookie({"trusted_proxies": ("10.0.0.5",)}, "10.0.0.5", https).split("; ")
    assert "secure" not in cookie({"trusted_proxies": ("10.0.0.5",)}, "10.0.0.5", {}).split("; ")
    assert "secure" not in cookie({}, "10.0.0.5", https).split("; ")
    assert "secure" not in cookie({"trusted_proxies": ("10.0.0.5",)}, "198.51.100.3", https).split("; ")
    assert "secure" in cookie({"https_only": True}, "10.0.0.5", {}).split("; ")


def test_sqlite_database_file_is_private(tmp_path):
    """A new SQLite database (and its WAL file) is readable by its owner only, whatever the umask allows."""
    from osteoplan.workflow.db import init_db, make_engine

    old = os.umask(0o022)
    try:
        path = tmp_path / "new" / "registry.db"
        eng = make_engine(f"sqlite:///{path}")
        init_db(eng)
        with eng.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            wal = path.with_name(path.name + "-wal")
            assert wal.exists() and stat.S_IMODE(wal.stat().st_mode) == 0o600
        eng.dispose()
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        os.umask(old)
