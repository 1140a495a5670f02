"""Voter identity without storing identities: keyed hashes and the key they need."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from arena.config import Settings

__all__ = ["SECRET_FILE", "resolve_secret", "user_key"]

SECRET_FILE = "secret"


def user_key(secret: str, raw_identity: str) -> str:
    """Keyed hash (HMAC-SHA256, hex) of a voter's raw identity, e.g. an IP address.

    Only the result is stored or exported.  Without the secret the key cannot be reversed
    by hashing every IPv4 address, which a plain hash would allow in minutes.

    Parameters
    ----------
    secret
        The arena's secret (:func:`resolve_secret`); must not be empty.
    raw_identity
        The identity to hash (IP address, session cookie, ...).

    Returns
    -------
    str
        64 lowercase hex characters.

    Raises
    ------
    ValueError
        For an empty secret.
    """
    if not secret:
        raise ValueError("user_key needs a non-empty secret")
    return hmac.new(secret.encode(), raw_identity.encode(), hashlib.sha256).hexdigest()


def resolve_secret(settings: Settings) -> str:
    """The hashing secret: ``ARENA_SECRET`` if set, else ``<data_dir>/secret``, made once.

    A generated secret is written with mode 0600 and reused on every later run, so user keys
    stay stable across restarts.  Creation is race-free (``O_EXCL``): when two processes
    start together, both end up with the one that was written first.

    Parameters
    ----------
    settings
        Arena settings (``secret`` and ``data_dir`` are used).

    Returns
    -------
    str
        The secret.
    """
    if settings.secret:
        return settings.secret
    path = Path(settings.data_dir) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text(encoding="ascii").strip()
        if value:
            return value
        # An empty file means a crash between create and write; write it now.
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC, 0o600)
    value = secrets.token_hex(32)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(value + "\n")
        f.flush()
        os.fsync(f.fileno())
    return value
