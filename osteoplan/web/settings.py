"""Settings of the web application (one frozen dataclass, built by the CLI or the tests)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


def default_data_dir() -> Path:
    """The user's data directory for osteoplan (``$XDG_DATA_HOME/osteoplan`` or ``~/.local/share/osteoplan``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "osteoplan"


def default_database_url() -> str:
    """``$OSTEOPLAN_DB_URL`` if set, else an SQLite file ``osteoplan.db`` in the user's data directory."""
    env = os.environ.get("OSTEOPLAN_DB_URL")
    if env:
        return env
    return f"sqlite:///{default_data_dir() / 'osteoplan.db'}"


def load_or_create_secret(path: Path) -> str:
    """Read the session-signing key from *path*, creating it (mode 0600) when absent.

    Keeping the key in a file lets sessions survive a server restart.
    """
    path = Path(path)
    if path.exists():
        key = path.read_text().strip()
        if len(key) >= 32:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    tmp = path.with_name(path.name + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    os.replace(tmp, path)
    return key


@dataclass(frozen=True)
class Settings:
    """Configuration of :func:`osteoplan.web.create_app`.

    Parameters
    ----------
    database_url : str
        SQLAlchemy URL (``sqlite:///path.db`` or ``postgresql+psycopg://...``).
    secret_key : str
        Key signing the session cookie and API tokens (random per process when not given:
        sessions then end with the process).
    session_max_age_s : int
        Session cookie lifetime in seconds (default 8 h, one working day; a configurable default).
    https_only : bool
        Always mark the session cookie ``Secure``. Without it the cookie is marked ``Secure`` whenever the
        request came over HTTPS: directly, or through a trusted proxy saying so (``X-Forwarded-Proto``).
    trusted_proxies : tuple of str
        Addresses or CIDR networks (``"10.0.0.5"``, ``"10.0.0.0/24"``) of the reverse proxies in front of the
        application: only from these are ``X-Forwarded-For`` (client address, used by the login throttle) and
        ``X-Forwarded-Proto`` (HTTPS) believed. Default none: the headers are ignored.
    api_token_max_age_s : int
        Lifetime of API bearer tokens in seconds (default 8 h).
    title : str
        Name shown in the page header.
    """

    database_url: str = field(default_factory=default_database_url)
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    session_max_age_s: int = 8 * 3600
    https_only: bool = False
    trusted_proxies: tuple[str, ...] = ()
    api_token_max_age_s: int = 8 * 3600
    title: str = "osteoplan"
    bcrypt_rounds: int = 12
