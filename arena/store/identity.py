"""Voter identity without storing identities: keyed hashes and the key they need."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from arena.config import Settings

__all__ = ["MIN_SECRET_BYTES", "SECRET_FILE", "resolve_secret", "user_key"]

SECRET_FILE = "secret"
# A short key can be guessed offline: one exported user key and a guessable IP (the IPv4
# space is 2^32) let anyone test candidate keys.  RFC 2104 discourages HMAC keys shorter
# than the hash output, which for SHA-256 is 32 bytes.
MIN_SECRET_BYTES = 32
_HOW_TO_GENERATE = (
    "generate one with: python -c 'import secrets; print(secrets.token_hex(32))' "
    "(or unset ARENA_SECRET and Arena writes one to <data_dir>/secret)"
)


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
    stay stable across restarts.  Creation is race-free: the secret is written and fsynced
    under a temporary name, then hard-linked into place, which fails when the file already
    exists.  When two processes start together both end up with the one linked first, and
    no process can ever read a half-written secret.

    Parameters
    ----------
    settings
        Arena settings (``secret`` and ``data_dir`` are used).

    Returns
    -------
    str
        The secret.

    Raises
    ------
    ValueError
        When ``ARENA_SECRET`` is shorter than ``MIN_SECRET_BYTES`` bytes, or when
        ``<data_dir>/secret`` exists but is empty or too short (it was not written by Arena;
        delete it or set ``ARENA_SECRET``).
    """
    if settings.secret:
        size = len(settings.secret.encode("utf-8", "surrogatepass"))
        if size < MIN_SECRET_BYTES:
            raise ValueError(
                f"ARENA_SECRET is {size} bytes; it must be at least {MIN_SECRET_BYTES} bytes: "
                + _HOW_TO_GENERATE
            )
        return settings.secret
    path = Path(settings.data_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _create_secret(path)
    value = path.read_text(encoding="ascii").strip()
    if not value:
        raise ValueError(
            f"{path} is empty: delete it (a new secret is generated) or set ARENA_SECRET"
        )
    if len(value) < MIN_SECRET_BYTES:
        raise ValueError(
            f"{path} holds a secret of {len(value)} bytes; it must be at least "
            f"{MIN_SECRET_BYTES} bytes: delete the file (a new secret is generated) or set "
            "ARENA_SECRET; " + _HOW_TO_GENERATE
        )
    return value


def _create_secret(path: Path) -> None:
    """Write a fresh secret at ``path`` unless another process got there first."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        # FileExistsError: another process won the race; its secret is the one.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink()
    # The link itself must survive a crash, or every user key changes on the next start.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
