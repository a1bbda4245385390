"""Login sessions, API tokens, CSRF and the single permission dependency.

Pages authenticate with a signed session cookie (Starlette ``SessionMiddleware``, itsdangerous);
the JSON API accepts the same cookie or a bearer token from ``POST /api/token`` (itsdangerous
``URLSafeTimedSerializer``). Passwords are checked with bcrypt by the workflow layer.

CSRF: every session carries a random token; every state-changing request authenticated by the
cookie must send it back, as the ``csrf_token`` form field (pages) or the ``X-CSRF-Token`` header
(API). Bearer-token requests are not exposed to CSRF (browsers never attach them by themselves).

:func:`require` is the one place where permissions are enforced: every route declares
``Depends(require("<action>"))`` and the dependency checks the login, the CSRF token and the
role table of :mod:`osteoplan.web.permissions`.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable

from fastapi import Depends, Request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from osteoplan.web.permissions import allowed

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class NotAuthenticated(Exception):
    """No valid session or token: pages redirect to the login page, the API answers 401."""


class Forbidden(Exception):
    """The user's role does not allow the action (403)."""

    def __init__(self, action: str, role: str | None):
        super().__init__(action)
        self.action = action
        self.role = role


class CsrfError(Exception):
    """A state-changing request without the session's CSRF token (403)."""


@dataclass(frozen=True)
class Principal:
    """The authenticated user of a request, as the web layer sees it.

    ``user`` is the workflow ``User`` row (passed to the service layer as ``actor``); ``username``,
    ``role`` and ``display_name`` are plain copies taken at login, usable even after the database
    session rolled back or closed (error pages).
    """

    user: Any
    via: str  # "session" or "token"
    username: str
    role: str
    display_name: str

    def can(self, action: str) -> bool:
        return allowed(self.role, action)


def csrf_token(request: Request) -> str:
    """The session's CSRF token (created on first use)."""
    tok = request.session.get("csrf")
    if not tok:
        tok = secrets.token_urlsafe(32)
        request.session["csrf"] = tok
    return tok


def _token_serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app.state.settings.secret_key, salt="osteoplan-api-token")


def issue_api_token(request: Request, user: Any) -> str:
    """A signed bearer token for *user* (valid ``settings.api_token_max_age_s`` seconds)."""
    return _token_serializer(request).dumps({"uid": user.id})


def _user_id_from_request(request: Request) -> tuple[int | None, str]:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        tok = auth[7:].strip()
        try:
            data = _token_serializer(request).loads(tok, max_age=request.app.state.settings.api_token_max_age_s)
        except (BadSignature, SignatureExpired):
            raise NotAuthenticated()
        return int(data["uid"]), "token"
    uid = request.session.get("uid")
    if uid is not None and not request.session.get("sid"):
        request.session.clear()  # a cookie from before session ids: log in again
        return None, "session"
    return (int(uid) if uid is not None else None), "session"


async def _check_csrf(request: Request, via: str) -> None:
    if request.method in SAFE_METHODS or via == "token":
        return
    expected = request.session.get("csrf")
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            sent = form.get("csrf_token")
    if not expected or not sent or not secrets.compare_digest(str(expected), str(sent)):
        raise CsrfError()


def new_session_id() -> str:
    """A random identifier for a new login session (kept in the signed cookie)."""
    return secrets.token_urlsafe(16)


def revoke_session(request: Request, db) -> None:
    """End the request's login session for good: the signed cookie stays valid until it expires, so its id is
    recorded as revoked in the database (until the cookie's expiry, ``Settings.session_max_age_s``) and refused
    by :func:`load_principal`, also after a server restart and by every server process. The caller commits."""
    from osteoplan.web import backend

    sid = request.session.get("sid")
    if sid:
        backend.revoke_web_session(db, str(sid), request.app.state.settings.session_max_age_s)


def get_db(request: Request):
    """A database session for the request (rolled back and closed at the end; handlers commit)."""
    db = request.app.state.sessionmaker()
    try:
        yield db
    finally:
        db.rollback()
        db.close()


def load_principal(request: Request, db) -> Principal | None:
    """The logged-in principal of *request*, or None."""
    uid, via = _user_id_from_request(request)
    if uid is None:
        return None
    from osteoplan.web import backend

    if via == "session" and backend.web_session_revoked(db, str(request.session.get("sid"))):
        request.session.clear()  # logged out: this copy of the cookie no longer logs in
        return None
    user = backend.get_user(db, uid)
    if user is None or not backend.user_is_active(user):
        if via == "session":
            request.session.clear()
        raise NotAuthenticated()
    # a session is bound to the user's role at login: a role change ends old sessions
    if via == "session" and request.session.get("role") not in (None, str(getattr(user.role, "value", user.role))):
        request.session.clear()
        raise NotAuthenticated()
    return Principal(user=user, via=via, username=user.username, role=str(getattr(user.role, "value", user.role)),
                     display_name=user.display_name or user.username)


def _principal_dependency(request: Request, db=Depends(get_db)) -> Principal | None:
    """Load the principal (database access: a sync dependency, run in the thread pool, never on the event loop)."""
    return load_principal(request, db)


def require(action: str) -> Callable:
    """Dependency factory: the request must come from a logged-in user whose role allows *action*.

    The returned dependency carries the attribute ``action`` so that tests (and the docs page) can
    list which action every route performs. Order of checks: login (401 / redirect), CSRF token on
    cookie-authenticated writes (403), role (403).
    """

    async def dependency(request: Request, principal: Principal | None = Depends(_principal_dependency)) -> Principal:
        if principal is None:
            raise NotAuthenticated()
        await _check_csrf(request, principal.via)
        if not principal.can(action):
            raise Forbidden(action, principal.role)
        request.state.principal = principal
        return principal

    dependency.action = action  # type: ignore[attr-defined]
    dependency.__name__ = f"require_{action.replace('.', '_')}"
    return dependency


async def form_data(request: Request):
    """The submitted form (read asynchronously, so that handlers can be plain ``def`` run in the thread pool)."""
    return await request.form()


async def require_csrf_only(request: Request) -> None:
    """For the public login form: CSRF token required, no login."""
    await _check_csrf(request, "session")


def route_action(route) -> str | None:
    """The action declared by *route* through :func:`require`, or None for public routes."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return None
    stack = list(dependant.dependencies)
    while stack:
        dep = stack.pop()
        act = getattr(dep.call, "action", None)
        if act:
            return act
        stack.extend(dep.dependencies)
    return None


def iter_routes(app_or_router, prefix: str = ""):
    """Yield ``(method, full_path, route)`` for every HTTP route of the application.

    Handles the included-router wrappers of recent FastAPI versions (their routes live in
    ``original_router`` under ``include_context.prefix``) as well as plain routes and mounts.
    """
    for r in getattr(app_or_router, "routes", []):
        if hasattr(r, "original_router"):
            yield from iter_routes(r.original_router, prefix + r.include_context.prefix)
            continue
        methods = getattr(r, "methods", None)
        path = getattr(r, "path", None)
        if path is None:
            continue
        if not methods:  # a mount (static files)
            yield "MOUNT", prefix + path, r
            continue
        for meth in sorted(methods):
            if meth == "HEAD":
                continue
            yield meth, prefix + path, r


class LoginThrottle:
    """Slows password guessing with three lock-outs, each of ``lockout_s`` seconds (HTTP 429):

    - one account from one source: ``max_failures`` failed logins within ``window_s``;
    - one account from any source: ``max_account_failures`` within ``window_s`` (guessing from many addresses);
    - one source for any account: ``max_source_failures`` within ``window_s`` (password spraying: one try for
      each of many user names).

    The source is the client address as :class:`ProxyHeadersMiddleware` established it (a forwarded address
    only from a configured proxy). Defaults (5 per account and source, 20 per account, 20 per source, in
    15 min; 5 min lock-out) are configurable defaults without a published source, inside the ceiling of NIST
    SP 800-63B section 5.2.2 (at most 100 consecutive failed attempts on one account). In memory, per server
    process.
    """

    def __init__(self, max_failures: int = 5, window_s: float = 900.0, lockout_s: float = 300.0,
                 max_account_failures: int = 20, max_source_failures: int = 20, max_keys: int = 10000):
        import threading

        self.max_failures, self.window_s, self.lockout_s = max_failures, window_s, lockout_s
        self.max_account_failures, self.max_source_failures, self.max_keys = (max_account_failures,
                                                                              max_source_failures, max_keys)
        self._fail: dict[tuple[str, ...], list[float]] = {}
        self._locked: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(request: Request, username: str) -> tuple[str, str]:
        """``(user name, source address)`` of a login attempt."""
        return (username.strip().lower()[:64], request.client.host if request.client else "?")

    def _keys(self, key: tuple[str, str]) -> list[tuple[tuple[str, ...], int]]:
        user, source = key
        return [(("pair", user, source), self.max_failures), (("account", user), self.max_account_failures),
                (("source", source), self.max_source_failures)]

    def retry_after(self, key: tuple[str, str]) -> float:
        """Seconds until *key* may try again (0 when none of its lock-outs holds)."""
        now = time.monotonic()
        with self._lock:
            left = 0.0
            for k, _ in self._keys(key):
                until = self._locked.get(k)
                if until is None:
                    continue
                if until <= now:
                    del self._locked[k]
                else:
                    left = max(left, until - now)
            return left

    def failed(self, key: tuple[str, str]) -> None:
        """Count a failed login of *key* (locks what reached its limit)."""
        now = time.monotonic()
        with self._lock:
            for k, limit in self._keys(key):
                recent = [t for t in self._fail.get(k, []) if now - t < self.window_s] + [now]
                if len(recent) >= limit:
                    self._locked[k] = now + self.lockout_s
                    recent = []
                self._fail[k] = recent
            if len(self._fail) > self.max_keys:  # bound the memory: forget the counts that left the window
                for k in [k for k, ts in self._fail.items() if not ts or now - ts[-1] >= self.window_s]:
                    del self._fail[k]
                if len(self._fail) > self.max_keys:  # still too many: the oldest half goes
                    by_age = sorted(self._fail, key=lambda k: self._fail[k][-1])
                    for k in by_age[:len(by_age) // 2]:
                        del self._fail[k]
            if len(self._locked) > self.max_keys:
                for k in [k for k, until in self._locked.items() if until <= now]:
                    del self._locked[k]

    def succeeded(self, key: tuple[str, str]) -> None:
        """A successful login clears the count of this account from this source (not the account's or the
        source's totals: one known password must not reset a spraying or guessing count)."""
        with self._lock:
            self._fail.pop(self._keys(key)[0][0], None)


class TooManyAttempts(Exception):
    """Login refused for a while after repeated failures (429)."""

    def __init__(self, retry_after_s: float):
        super().__init__("too many attempts")
        self.retry_after_s = retry_after_s
