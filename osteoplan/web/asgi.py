"""ASGI entry point for running under an external server::

    OSTEOPLAN_WEB_DB_URL=sqlite:///osteoplan.db OSTEOPLAN_WEB_SECRET=... \
        uvicorn osteoplan.web.asgi:app --factory --no-access-log

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
    return create_app(Settings(**kwargs))
