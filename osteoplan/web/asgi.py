"""ASGI entry point for running under an external server::

    OSTEOPLAN_WEB_DB_URL=sqlite:///osteoplan.db OSTEOPLAN_WEB_SECRET=... \
        uvicorn osteoplan.web.asgi:app --factory --no-access-log --no-proxy-headers

Keep ``--no-proxy-headers``: the application reads ``X-Forwarded-For`` / ``X-Forwarded-Proto`` itself, only from
the proxies listed in ``OSTEOPLAN_WEB_TRUSTED_PROXIES`` (comma-separated addresses or CIDR networks; default
none), whereas uvicorn's own handling believes any client connecting from 127.0.0.1.

Keep ``--no-access-log`` (or a proxy log without query strings): the application never puts identifying
data in a URL (searches are POSTed), but an access log of every request is not needed.

``OSTEOPLAN_WEB_SECRET`` signs sessions (a random one is used when unset: sessions end with the process).
"""

from __future__ import annotations

import os


def app():
    """Application factory for ``uvicorn --factory``."""
    from osteoplan.web.app import create_app
    from osteoplan.web.settings import Settings, default_database_url

    kwargs = {"database_url": os.environ.get("OSTEOPLAN_WEB_DB_URL") or default_database_url()}
    if os.environ.get("OSTEOPLAN_WEB_SECRET"):
        kwargs["secret_key"] = os.environ["OSTEOPLAN_WEB_SECRET"]
    proxies = [x.strip() for x in os.environ.get("OSTEOPLAN_WEB_TRUSTED_PROXIES", "").split(",") if x.strip()]
    if proxies:
        kwargs["trusted_proxies"] = tuple(proxies)
    return create_app(Settings(**kwargs))
