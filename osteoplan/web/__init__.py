"""osteoplan.web: the care-pathway web application (FastAPI, server-rendered Jinja2 pages, JSON API).

- :func:`osteoplan.web.app.create_app` builds the application from :class:`osteoplan.web.settings.Settings`;
- :mod:`osteoplan.web.permissions` holds the role -> actions table, enforced by
  :func:`osteoplan.web.auth.require` on every page and API route;
- :mod:`osteoplan.web.backend` is the one door into :mod:`osteoplan.workflow` (the service layer checks the
  rules and writes the audit records);
- ``osteoplan serve`` (:mod:`osteoplan.web.cli`) runs it with uvicorn on an embedded SQLite database.
"""
