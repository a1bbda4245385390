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
    if uid is not None:
        sid = request.session.get("sid")
        if not sid or str(sid) in getattr(request.app.state, "revoked_sessions", {}):
            request.session.clear()  # logged out (or a cookie from before session ids): log in again
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


def revoke_session(request: Request) -> None:
    """End the request's login session for good: the signed cookie stays valid until it expires, so its id is
    remembered as revoked (in memory, for the session lifetime) and refused by :func:`load_principal`.

    Limitation: the list is per process and lost on restart (a copied cookie of a logged-out session would
    work again after a restart, until it expires: ``Settings.session_max_age_s``)."""
    sid = request.session.get("sid")
    if not sid:
        return
    revoked: dict[str, float] = request.app.state.revoked_sessions
    now = time.time()
    for old, at in list(revoked.items()):
        if now - at > request.app.state.settings.session_max_age_s:
            revoked.pop(old, None)
    revoked[str(sid)] = now


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
    """Slows password guessing: after ``max_failures`` failed logins for one (user name, client address)
    within ``window_s`` seconds, that pair is refused for ``lockout_s`` seconds (HTTP 429).

    Defaults (5 failures / 15 min, 5 min lock-out) are configurable defaults without a published source.
    In-memory, per server process.
    """

    def __init__(self, max_failures: int = 5, window_s: float = 900.0, lockout_s: float = 300.0):
        import threading

        self.max_failures, self.window_s, self.lockout_s = max_failures, window_s, lockout_s
        self._fail: dict[tuple[str, str], list[float]] = {}
        self._locked: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(request: Request, username: str) -> tuple[str, str]:
        return (username.strip().lower()[:64], request.client.host if request.client else "?")

    def retry_after(self, key: tuple[str, str]) -> float:
        """Seconds until *key* may try again (0 when not locked)."""
        import time

        with self._lock:
            until = self._locked.get(key, 0.0)
            left = until - time.monotonic()
            if left <= 0 and key in self._locked:
                del self._locked[key]
            return max(0.0, left)

    def failed(self, key: tuple[str, str]) -> None:
        import time

        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._fail.get(key, []) if now - t < self.window_s] + [now]
            if len(recent) >= self.max_failures:
                self._locked[key] = now + self.lockout_s
                recent = []
            self._fail[key] = recent
            if len(self._fail) > 10000:  # bound the memory under a spray of user names
                self._fail.clear()

    def succeeded(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._fail.pop(key, None)


class TooManyAttempts(Exception):
    """Login refused for a while after repeated failures (429)."""

    def __init__(self, retry_after_s: float):
        super().__init__("too many attempts")
        self.retry_after_s = retry_after_s
