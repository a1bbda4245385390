"""Routers: ``pages`` (server-rendered HTML) and ``api`` (JSON under /api)."""
