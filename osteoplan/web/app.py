"""The FastAPI application factory: ``create_app(settings)``.

Server-rendered pages (Jinja2, no JavaScript framework, no CDN, no external fonts) for the whole
care pathway, and a JSON API under ``/api`` (OpenAPI schema at ``/api/openapi.json``, docs at
``/api/docs``) for the same actions. Errors are answered with a clear page or JSON message, never a
traceback: 400/422 validation, 401 login, 403 forbidden, 404 not found, 409 conflict (the case was
changed by someone else), 500 unexpected.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from osteoplan.errors import OsteoplanError
from osteoplan.web.auth import CsrfError, Forbidden, LoginThrottle, NotAuthenticated, TooManyAttempts, csrf_token
from osteoplan.web.middleware import (
    BodyLimitMiddleware,
    ProxyHeadersMiddleware,
    SecureCookieMiddleware,
    too_large_message,
)
from osteoplan.web.permissions import ACTIONS, ROLE_LABELS, allowed
from osteoplan.web.settings import Settings

log = logging.getLogger("osteoplan.web")

HERE = Path(__file__).parent
CONFLICT_MESSAGE = "This case was changed by someone else since you opened it; reload the page and apply your change again."


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api")


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.globals["ROLE_LABELS"] = ROLE_LABELS
    env.globals["ACTIONS"] = ACTIONS
    env.globals["csrf_token"] = csrf_token
    from osteoplan.web.views import TABLE_TITLES, fmt_date, score_parts, structure_label, yesno
    env.globals["score_parts"] = score_parts
    env.globals["TABLE_TITLES"] = TABLE_TITLES
    env.globals["fmt_date"] = fmt_date
    env.globals["yesno"] = yesno
    env.globals["structure_label"] = structure_label

    def can(request: Request, action: str) -> bool:
        p = getattr(request.state, "principal", None)
        return p is not None and allowed(p.role, action)

    env.globals["can"] = can
    return templates


def render(request: Request, name: str, context: dict | None = None, status_code: int = 200) -> Response:
    """Render template *name* with the request's principal and CSRF token in the context."""
    ctx = dict(context or {})
    ctx.setdefault("principal", getattr(request.state, "principal", None))
    ctx.setdefault("settings", request.app.state.settings)
    return request.app.state.templates.TemplateResponse(request, name, ctx, status_code=status_code)


def error_response(request: Request, status: int, title: str, message: str, details: list[str] | None = None) -> Response:
    """The same error as a JSON body (API) or an HTML page (pages)."""
    if _is_api(request):
        body = {"error": title, "detail": message}
        if details:
            body["details"] = details
        return JSONResponse(body, status_code=status)
    return render(request, "error.html", {"status": status, "title": title, "message": message,
                                          "details": details or []}, status_code=status)


def _conflict_class_names() -> set[str]:
    return {"ConflictError", "StaleDataError"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotAuthenticated)
    async def _not_auth(request: Request, exc: NotAuthenticated):
        if _is_api(request):
            return JSONResponse({"error": "not authenticated", "detail": "Log in first: POST /api/token or the login page."},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        nxt = request.url.path
        return RedirectResponse(f"/login?next={nxt}", status_code=303)

    @app.exception_handler(TooManyAttempts)
    async def _too_many(request: Request, exc: TooManyAttempts):
        minutes = max(1, int(exc.retry_after_s // 60 + 1))
        resp = error_response(request, 429, "Too many failed log-ins",
                              f"Log-in is paused after repeated failed attempts (for this account, or from this computer); "
                              f"try again in about {minutes} minute(s), or ask an administrator to reset the password.")
        resp.headers["Retry-After"] = str(int(exc.retry_after_s) + 1)
        return resp

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden):
        return error_response(request, 403, "Not allowed",
                              f"Your role ({ROLE_LABELS.get(exc.role, exc.role)}) may not {ACTIONS.get(exc.action, exc.action)}. "
                              "Ask an administrator if you need this access.")

    @app.exception_handler(CsrfError)
    async def _csrf(request: Request, exc: CsrfError):
        return error_response(request, 403, "Form expired",
                              "The form was missing its security token or the session changed; reload the page and submit again.")

    @app.exception_handler(RequestValidationError)
    async def _reqval(request: Request, exc: RequestValidationError):
        details = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
            details.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return error_response(request, 422, "Invalid input", "Some fields are missing or invalid; correct them and submit again.", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            return error_response(request, 404, "Not found", str(exc.detail) if exc.detail and exc.detail != "Not Found"
                                  else "There is nothing at this address; go back to the case list.")
        if exc.status_code == 413:
            return error_response(request, 413, "Request too large", str(exc.detail))
        if exc.status_code == 405:
            return error_response(request, 405, "Method not allowed", "This address does not accept that kind of request.")
        return error_response(request, exc.status_code, "Error", str(exc.detail))

    @app.exception_handler(OsteoplanError)
    async def _osteo(request: Request, exc: OsteoplanError):
        name = type(exc).__name__
        if os.environ.get("OSTEOPLAN_DEBUG"):
            log.warning("%s on %s %s", name, request.method, request.url.path, exc_info=exc)
        if name in _conflict_class_names():
            return error_response(request, 409, "Conflict", CONFLICT_MESSAGE)
        if name == "PlanLockedError":  # an approved plan (osteoplan.workflow.plan_versions)
            return error_response(request, 409, "Plan locked", str(exc)[:1].upper() + str(exc)[1:] + ".")
        if "NotFound" in name:
            return error_response(request, 404, "Not found", str(exc))
        if "Permission" in name or "Forbidden" in name:
            return error_response(request, 403, "Not allowed", str(exc))
        return error_response(request, 422, "Invalid input", str(exc))

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError):
        # a number too large for the database (e.g. /cases/99999999999999999999) names no record
        return error_response(request, 404, "Not found", "No record has this number; check the link.")

    from sqlalchemy.exc import DataError

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError):
        # the database refused a value (out of range, too long): an input problem; the value is not echoed
        return error_response(request, 422, "Invalid input", "A value is out of the range the registry can store "
                              "(a number too large or a text too long); correct it and submit again.")

    @app.exception_handler(Exception)
    async def _any(request: Request, exc: Exception):
        if type(exc).__name__ in _conflict_class_names():
            if os.environ.get("OSTEOPLAN_DEBUG"):
                log.warning("conflict on %s %s", request.method, request.url.path, exc_info=exc)
            return error_response(request, 409, "Conflict", CONFLICT_MESSAGE)
        # the traceback only when debugging (messages could carry data; the log must not)
        log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path,
                  exc_info=exc if os.environ.get("OSTEOPLAN_DEBUG") else None)
        return error_response(request, 500, "Unexpected error",
                              "Something went wrong on the server; nothing was saved from this request. "
                              "Try again; if it persists, report it to the administrator.")


def create_app(settings: Settings | None = None, *, engine=None) -> FastAPI:
    """Build the web application.

    Parameters
    ----------
    settings : Settings, optional
        Database URL, session key... (defaults: :class:`Settings`).
    engine : sqlalchemy.engine.Engine, optional
        An engine to reuse (tests); otherwise created from ``settings.database_url`` with the
        workflow's ``init_db`` (migrations applied).
    """
    from sqlalchemy.orm import sessionmaker

    from osteoplan.web import backend
    from osteoplan.web.routers import api, jobs, pages

    settings = settings or Settings()
    if engine is None:
        engine = backend.init_engine(settings.database_url)
    app = FastAPI(title="osteoplan", version=_version(), docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json",
                  description="Care-pathway registry for percutaneous consolidation of metastatic bone: "
                              "cases, tumour-board decisions, consultations, procedures, follow-up, statistics.")
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = sessionmaker(bind=engine, expire_on_commit=False)
    app.state.templates = make_templates()
    app.state.login_throttle = LoginThrottle()
    # middleware, innermost first: body limits (before any body is read), the signed session cookie, Secure on
    # cookies sent over HTTPS, security headers, then the client address / scheme (from trusted proxies only)
    app.add_middleware(BodyLimitMiddleware, too_large=_too_large_response)
    app.add_middleware(SessionMiddleware, secret_key=settings.secret_key, session_cookie="osteoplan_session",
                       max_age=settings.session_max_age_s, same_site="strict", https_only=settings.https_only)
    app.add_middleware(SecureCookieMiddleware)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        from osteoplan.workflow.service import audit_context

        with audit_context(path=request.url.path[:300]):
            response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith("/api/docs"):
            response.headers.setdefault("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'")
        if request.url.path.startswith(("/cases", "/api/cases", "/audit", "/api/audit")):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    app.add_middleware(ProxyHeadersMiddleware, trusted_proxies=settings.trusted_proxies)

    from osteoplan.web.routers import pacs as pacs_pages  # the PACS search/pick pages (osteoplan.pacs)

    app.include_router(pacs_pages.router)
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(pages.router)
    app.include_router(jobs.router)
    from osteoplan.web.routers import adjust  # re-check a moved trajectory, plan versions, approval

    app.include_router(adjust.router)
    from osteoplan.web.routers import verify as verify_pages  # control-CT checks (issue 13)

    app.include_router(verify_pages.router)
    app.include_router(api.router, prefix="/api")
    return app


def _too_large_response(scope, limit: int) -> Response:
    """The 413 answer of :class:`~osteoplan.web.middleware.BodyLimitMiddleware` (a page, or JSON under /api)."""
    return error_response(Request(scope), 413, "Request too large", too_large_message(limit))


def _version() -> str:
    from osteoplan import __version__
    return __version__
