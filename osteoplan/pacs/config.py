"""Where the PACS is and how to log in: a settings file and/or environment variables.

Sources, later ones override earlier ones:

1. the settings file: ``$OSTEOPLAN_PACS_CONFIG``, else ``$XDG_CONFIG_HOME/osteoplan/pacs.toml``
   (``~/.config/osteoplan/pacs.toml``), when it exists; a TOML table ``[pacs]`` with keys ``url``,
   ``timeout_s``, ``username``, ``password``, ``token``, ``verify_tls``, ``retries``;
2. environment variables ``OSTEOPLAN_PACS_URL``, ``OSTEOPLAN_PACS_TIMEOUT_S``, ``OSTEOPLAN_PACS_USERNAME``,
   ``OSTEOPLAN_PACS_PASSWORD``, ``OSTEOPLAN_PACS_TOKEN``.

Secrets (password, token) are never logged, never printed and never part of an error message: the
configuration's ``repr`` shows ``***`` in their place, and URLs are shown without their user-info part.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

from osteoplan.errors import InputError

log = logging.getLogger(__name__)

#: Seconds to wait for the PACS to connect and to answer (configurable default, no published source: long
#: enough for a multi-hundred-slice WADO-RS answer to start on a hospital network).
DEFAULT_TIMEOUT_S = 30.0

_ENV = {"url": "OSTEOPLAN_PACS_URL", "timeout_s": "OSTEOPLAN_PACS_TIMEOUT_S", "username": "OSTEOPLAN_PACS_USERNAME",
        "password": "OSTEOPLAN_PACS_PASSWORD", "token": "OSTEOPLAN_PACS_TOKEN"}


def display_url(url: str) -> str:
    """*url* without user-info (``user:password@``), query or fragment: safe to print."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True)
class PacsConfig:
    """Connection settings of one DICOMweb PACS.

    Parameters
    ----------
    url : str
        DICOMweb root, e.g. ``http://pacs.example:8042/dicom-web`` (QIDO-RS, WADO-RS and STOW-RS below it).
    timeout_s : float
        Connect and read timeout of every request, seconds (> 0).
    username, password : str, optional
        HTTP basic authentication.
    token : str, optional
        Bearer token (``Authorization: Bearer ...``); exclusive with username/password.
    verify_tls : bool
        Check the server's TLS certificate (https URLs).
    retries : int
        Attempts per request when it fails (connection failure, timeout, or a busy answer 429/503/504), with
        0.5 s, 1 s, ... between them; 1 = no retry (a timeout then costs one ``timeout_s``).

    Raises
    ------
    InputError
        An URL that is not http(s), a timeout <= 0, or both basic auth and a token.
    """

    url: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    verify_tls: bool = True
    retries: int = 2

    def __post_init__(self) -> None:
        parts = urlsplit(self.url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError("The PACS URL must be an http(s) URL of the DICOMweb root, e.g. "
                             "http://pacs.example:8042/dicom-web (set OSTEOPLAN_PACS_URL or [pacs] url).")
        if parts.username or parts.password:
            raise InputError("Do not put credentials in the PACS URL; set username/password or a token in the "
                             "settings file or OSTEOPLAN_PACS_USERNAME / OSTEOPLAN_PACS_PASSWORD / OSTEOPLAN_PACS_TOKEN.")
        try:
            t = float(self.timeout_s)
        except (TypeError, ValueError):
            t = float("nan")
        if not t > 0:
            raise InputError("The PACS timeout must be a positive number of seconds (OSTEOPLAN_PACS_TIMEOUT_S or "
                             "[pacs] timeout_s).")
        object.__setattr__(self, "timeout_s", t)
        if self.token and (self.username or self.password):
            raise InputError("Give either a PACS token or a username/password, not both.")
        if bool(self.username) != bool(self.password):
            raise InputError("PACS basic authentication needs both a username and a password.")
        if int(self.retries) < 1:
            raise InputError("PACS retries must be at least 1 (1 = no retry).")
        object.__setattr__(self, "url", self.url.rstrip("/"))

    @property
    def display_url(self) -> str:
        """The URL without credentials, query or fragment."""
        return display_url(self.url)

    def __repr__(self) -> str:  # secrets never shown
        return (f"PacsConfig(url={self.display_url!r}, timeout_s={self.timeout_s}, username={self.username!r}, "
                f"password={'***' if self.password else None}, token={'***' if self.token else None}, "
                f"verify_tls={self.verify_tls}, retries={self.retries})")


def default_config_path() -> Path:
    """``$OSTEOPLAN_PACS_CONFIG`` or ``$XDG_CONFIG_HOME/osteoplan/pacs.toml``."""
    env = os.environ.get("OSTEOPLAN_PACS_CONFIG")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "osteoplan" / "pacs.toml"


def load_config(path: str | os.PathLike | None = None, env: Mapping[str, str] | None = None,
                **overrides: Any) -> PacsConfig:
    """The PACS configuration from the settings file, the environment, then *overrides* (non-None ones).

    Parameters
    ----------
    path : path, optional
        Settings file (TOML, table ``[pacs]``); default :func:`default_config_path` (skipped when absent;
        an explicitly given file must exist).
    env : mapping, optional
        Environment (default ``os.environ``).
    **overrides
        Field values of :class:`PacsConfig` (e.g. from command-line options); None values are ignored.

    Returns
    -------
    PacsConfig

    Raises
    ------
    InputError
        No URL anywhere, an unreadable or malformed settings file, or invalid values.
    """
    import tomllib

    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    p = Path(path) if path is not None else default_config_path()
    if p.is_file():
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise InputError(f"The PACS settings file cannot be read ({type(exc).__name__}); fix its TOML "
                             "(a [pacs] table with url, timeout_s, username, password or token).") from None
        table = data.get("pacs", {})
        known = {f.name for f in fields(PacsConfig)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise InputError(f"Unknown key(s) in the [pacs] settings: {', '.join(unknown)}; allowed: "
                             f"{', '.join(sorted(known))}.")
        values.update(table)
        if (table.get("password") or table.get("token")) and os.name == "posix":
            mode = p.stat().st_mode
            if mode & (stat.S_IRGRP | stat.S_IROTH):
                log.warning("The PACS settings file holding a secret is readable by other users; chmod 600 it.")
    elif path is not None:
        raise InputError("The PACS settings file given does not exist; check the path.")
    for key, var in _ENV.items():
        if env.get(var):
            values[key] = env[var]
    values.update({k: v for k, v in overrides.items() if v is not None})
    if not values.get("url"):
        raise InputError("No PACS configured: set OSTEOPLAN_PACS_URL (the DICOMweb root, e.g. "
                         "http://pacs.example:8042/dicom-web) or write it in ~/.config/osteoplan/pacs.toml ([pacs] url).")
    return PacsConfig(**values)
