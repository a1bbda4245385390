"""ASGI middleware of the web application (pure ASGI, no request body buffering).

- :class:`ProxyHeadersMiddleware`: the client address and scheme come from ``X-Forwarded-For`` /
  ``X-Forwarded-Proto`` only when the connection comes from a configured proxy (``Settings.trusted_proxies``);
  from anyone else the headers are ignored (the login throttle keys on this address).
- :class:`SecureCookieMiddleware`: a cookie set in answer to an HTTPS request is marked ``Secure``.
- :class:`BodyLimitMiddleware`: a request body larger than its route's limit is refused with 413 before it is
  read (``Content-Length``), or as soon as the bytes received pass the limit (chunked bodies).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# ------------------------------------------------------------------------------------------------ proxies


def parse_networks(addresses: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Networks from addresses or CIDR blocks (``"10.0.0.5"``, ``"10.0.0.0/24"``, ``"::1"``).

    Raises
    ------
    ValueError
        An entry is not an IP address or network (the message names it).
    """
    out = []
    for a in addresses:
        a = a.strip()
        if not a:
            continue
        try:
            out.append(ipaddress.ip_network(a, strict=False))
        except ValueError:
            raise ValueError(f"trusted proxy {a!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/24)") \
                from None
    return out


def _in(networks, host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(ip in n for n in networks)


def _header(scope: Scope, name: bytes) -> str | None:
    values = [v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == name]
    return ", ".join(values) if values else None


class ProxyHeadersMiddleware:
    """Take the client address and scheme from the proxy headers, only on connections from a trusted proxy.

    The client is the right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy (entries further
    left were written by the client and can be forged); the scheme is the right-most ``X-Forwarded-Proto``
    entry. With no trusted proxy (the default) nothing is changed.

    Parameters
    ----------
    app : ASGI application
    trusted_proxies : iterable of str
        Addresses or CIDR networks of the reverse proxies in front of the application.
    """

    def __init__(self, app: ASGIApp, trusted_proxies: Iterable[str] = ()):
        self.app = app
        self.networks = parse_networks(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and self.networks and client and _in(self.networks, client[0]):
            scope = dict(scope)
            forwarded = _header(scope, b"x-forwarded-for")
            if forwarded:
                host = client[0]
                for entry in reversed([x.strip() for x in forwarded.split(",") if x.strip()]):
                    host = entry[:64]
                    if not _in(self.networks, entry):
                        break
                scope["client"] = (host, 0)
            proto = _header(scope, b"x-forwarded-proto")
            if proto:
                proto = proto.split(",")[-1].strip().lower()
                if proto in ("http", "https"):
                    scope["scheme"] = proto if scope["type"] == "http" else {"http": "ws", "https": "wss"}[proto]
        await self.app(scope, receive, send)


class SecureCookieMiddleware:
    """Add the ``Secure`` flag to every cookie set in answer to an HTTPS request (``scope["scheme"]``, set from
    a trusted proxy's ``X-Forwarded-Proto`` by :class:`ProxyHeadersMiddleware`), so that a browser never sends
    the session cookie over plain HTTP."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, _with_secure(v) if k.lower() == b"set-cookie" else v)
                           for k, v in message.get("headers", [])]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_secure)


def _with_secure(cookie: bytes) -> bytes:
    flags = [x.strip().lower() for x in cookie.split(b";")[1:]]
    return cookie if b"secure" in flags else cookie + b"; secure"


# ------------------------------------------------------------------------------------------------ body limits
#: Largest plan.json accepted, in bytes (a plan is a few kilobytes; project default without a published source).
PLAN_MAX_BYTES = 5_000_000
#: Room for the form fields and multipart boundaries around an uploaded file, in bytes.
FORM_OVERHEAD_BYTES = 64 * 1024
#: Body limit of every route not listed in :data:`BODY_LIMITS`, in bytes: a form or JSON record (the longest
#: free text is 20,000 characters, ``service.TEXT_MAX_CHARS``) is far below it. Project default.
DEFAULT_BODY_LIMIT = 1024 * 1024
def _ct_max_bytes() -> int:
    from osteoplan.web.plan_jobs import CT_MAX_BYTES

    return CT_MAX_BYTES


#: (path pattern, limit in bytes), first match wins: log-in and log-out carry a user name, a password and a
#: token; plan uploads carry one plan.json. Project defaults without a published source.
BODY_LIMITS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"^/(login|logout|api/token)$"), 16 * 1024),
    (re.compile(r"^/cases/\d+/lesions/\d+/plans/new$"), PLAN_MAX_BYTES + FORM_OVERHEAD_BYTES),
    (re.compile(r"^/api/plans$"), PLAN_MAX_BYTES + FORM_OVERHEAD_BYTES),
    # a CT uploaded to start a planning job (osteoplan.web.plan_jobs.CT_MAX_BYTES, $OSTEOPLAN_CT_MAX_BYTES)
    (re.compile(r"^/cases/\d+/lesions/\d+/plan-jobs/new$"), _ct_max_bytes() + FORM_OVERHEAD_BYTES),
    # a control CT uploaded to be checked against the plan (issue 13; same limit as a planning CT)
    (re.compile(r"^/cases/\d+/procedures/\d+/verify/new$"), _ct_max_bytes() + FORM_OVERHEAD_BYTES),
)


def body_limit(path: str) -> int:
    """The largest request body accepted on *path*, in bytes."""
    for pattern, limit in BODY_LIMITS:
        if pattern.match(path):
            return limit
    return DEFAULT_BODY_LIMIT


def too_large_message(limit: int) -> str:
    what = f"{limit / 1e6:.1f} MB" if limit >= 1_000_000 else f"{limit // 1024} KB"
    return (f"The request is larger than this address accepts ({what}); nothing was saved. Send a smaller "
            "file or form.")


class RequestTooLarge(HTTPException):
    """The body passed its limit while it was read (HTTP 413); raised from ``receive`` into the route."""

    def __init__(self, limit: int):
        super().__init__(413, too_large_message(limit))


class BodyLimitMiddleware:
    """Refuse request bodies larger than :func:`body_limit` of their path (HTTP 413), before reading them.

    A declared ``Content-Length`` over the limit is answered at once, the body unread (the answer is built by
    *too_large*, a function of the scope and the limit returning an ASGI response). Otherwise the bytes are
    counted as the application reads them and :class:`RequestTooLarge` is raised from ``receive`` as soon as
    they pass the limit (a chunked body, or more bytes than declared), so at most the limit is ever held or
    spooled to disk.
    """

    def __init__(self, app: ASGIApp, too_large=None):
        self.app = app
        self.too_large = too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope.get("path", ""))
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            if self.too_large is not None:
                response = self.too_large(scope, limit)
            else:
                from starlette.responses import PlainTextResponse

                response = PlainTextResponse(too_large_message(limit), status_code=413)
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLarge(limit)
            return message

        await self.app(scope, counted, send)
