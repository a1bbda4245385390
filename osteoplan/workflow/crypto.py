"""Encryption at rest of the optional identity fields of a patient (Fernet, AES-128-CBC + HMAC-SHA256).

The key comes, in this order, from:

1. ``$OSTEOPLAN_IDENTITY_KEY`` (a urlsafe-base64 Fernet key, ``Fernet.generate_key()``);
2. the file named by ``$OSTEOPLAN_IDENTITY_KEY_FILE``;
3. ``$XDG_DATA_HOME/osteoplan/identity.key`` (``~/.local/share/osteoplan/identity.key``), created with mode
   0600 on first use. This last one is a development default: in production set one of the first two and keep
   the key away from the database backups.

Encrypted values are stored as Fernet tokens (text). Without the key they cannot be read: the registry then
shows ``<encrypted>`` instead of failing, and the rest of the record (pseudonymous) stays usable.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.types import Text, TypeDecorator

from osteoplan.errors import ValidationError

UNREADABLE = "<encrypted>"


def default_key_file() -> Path:
    """Development default location of the identity key file."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "osteoplan" / "identity.key"


def _load_key() -> bytes:
    env = os.environ.get("OSTEOPLAN_IDENTITY_KEY")
    if env:
        return env.strip().encode()
    return _key_from_file(str(os.environ.get("OSTEOPLAN_IDENTITY_KEY_FILE") or default_key_file()))


@lru_cache(maxsize=8)
def _key_from_file(path_text: str) -> bytes:
    """Read (or create) the key file once per process."""
    path = Path(path_text)
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    tmp = path.with_name(path.name + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    os.replace(tmp, path)
    return key


@lru_cache(maxsize=4)
def _fernet_for(key: bytes) -> Fernet:
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        raise ValidationError(
            "the identity encryption key is not a valid Fernet key; generate one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'` "
            "and put it in OSTEOPLAN_IDENTITY_KEY") from None


def fernet() -> Fernet:
    """The Fernet object for the configured key (see module docstring)."""
    return _fernet_for(_load_key())


def encrypt(value: str | None) -> str | None:
    """Encrypt *value* to a Fernet token (``None`` stays ``None``)."""
    if value is None:
        return None
    return fernet().encrypt(value.encode("utf-8")).decode("ascii")


def decrypt(token: str | None) -> str | None:
    """Decrypt a Fernet token; returns :data:`UNREADABLE` when the key does not match."""
    if token is None:
        return None
    try:
        return fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        return UNREADABLE


class EncryptedText(TypeDecorator):
    """A text column holding a Fernet token; Python side sees the clear text."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):  # noqa: D102
        return encrypt(value)

    def process_result_value(self, value, dialect):  # noqa: D102
        return decrypt(value)
