"""Who may use the admin page: the password hash, the optional TOTP code, the session cookie
and the per-session CSRF token.

Password hash format (``ARENA_ADMIN_PASSWORD_HASH``), one line, ``$``-separated::

    scrypt$<log2 N>$<r>$<p>$<salt, base64url>$<32-byte key, base64url>

made by :func:`hash_password` (``arena admin hash-password``).  scrypt with N = 2^15, r = 8
costs 32 MiB and some 50-100 ms per try: a leaked hash is slow to guess, and a login is not.

Session cookie: an :class:`arena.signing.Signer` token, the payload ``{"a": actor, "t": issued
at, "n": nonce}`` signed under a key derived from the arena's secret *and the password hash*,
so changing the password ends every session.  The CSRF token of a
session is another HMAC of its cookie: forms carry it, and a POST without it is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import time
from dataclasses import dataclass

from arena.signing import BadSignature, Signer

__all__ = [
    "SESSION_MAX_AGE_S",
    "AdminAuthError",
    "AdminSession",
    "SessionSigner",
    "hash_password",
    "new_totp_secret",
    "parse_password_hash",
    "totp",
    "verify_password",
    "verify_totp",
]

#: A session lasts this long after login, then the admin logs in again.
SESSION_MAX_AGE_S = 8 * 3600
_SCRYPT_LOG2_N = 15
_SCRYPT_R = 8
_SCRYPT_P = 1
_KEY_BYTES = 32
_SALT_BYTES = 16
# scrypt needs 128 * r * N bytes (32 MiB here); Python's default ceiling is exactly that.
_MAXMEM = 128 * 1024 * 1024
TOTP_STEP_S = 30
TOTP_DIGITS = 6


class AdminAuthError(ValueError):
    """An admin setting (password hash, TOTP secret) is malformed; the message says how."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    # validate=True: characters outside the alphabet are an error, not silently skipped.
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


@dataclass(frozen=True)
class _Scrypt:
    log2_n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    def derive(self, password: str) -> bytes:
        return hashlib.scrypt(
            password.encode("utf-8"),
            salt=self.salt,
            n=2**self.log2_n,
            r=self.r,
            p=self.p,
            maxmem=_MAXMEM,
            dklen=len(self.key),
        )


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """Hash a password for ``ARENA_ADMIN_PASSWORD_HASH`` (format in the module docstring).

    Raises
    ------
    AdminAuthError
        An empty password.
    """
    if not password:
        raise AdminAuthError("the admin password must not be empty")
    spec = _Scrypt(
        _SCRYPT_LOG2_N, _SCRYPT_R, _SCRYPT_P, salt or secrets.token_bytes(_SALT_BYTES), b"\0" * 32
    )
    key = spec.derive(password)
    return f"scrypt${spec.log2_n}${spec.r}${spec.p}${_b64(spec.salt)}${_b64(key)}"


def parse_password_hash(encoded: str) -> _Scrypt:
    """Check a stored hash's format (the app does this at start, so a typo fails loudly).

    Raises
    ------
    AdminAuthError
        Not ``scrypt$N$r$p$salt$key`` with sane numbers; the message names the part.
    """
    parts = encoded.strip().split("$")
    expected = "scrypt$<log2 N>$<r>$<p>$<salt>$<key> (make one with `arena admin hash-password`)"
    if len(parts) != 6 or parts[0] != "scrypt":
        raise AdminAuthError(f"ARENA_ADMIN_PASSWORD_HASH is not of the form {expected}")
    try:
        log2_n, r, p = (int(x) for x in parts[1:4])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except (ValueError, binascii.Error):
        raise AdminAuthError(
            f"ARENA_ADMIN_PASSWORD_HASH has a part that is not a number or base64: {expected}"
        ) from None
    if not (10 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
        raise AdminAuthError(
            f"ARENA_ADMIN_PASSWORD_HASH has scrypt parameters out of range (log2 N {log2_n}, "
            f"r {r}, p {p}; expected 10-20, 1-32, 1-16)"
        )
    if 128 * r * 2**log2_n > _MAXMEM:
        raise AdminAuthError("ARENA_ADMIN_PASSWORD_HASH asks scrypt for more than 128 MiB")
    if len(salt) < 8 or len(key) < 16:
        raise AdminAuthError("ARENA_ADMIN_PASSWORD_HASH has a salt or key that is too short")
    return _Scrypt(log2_n, r, p, salt, key)


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches the hash (constant-time comparison).

    Raises
    ------
    AdminAuthError
        The hash itself is malformed.
    """
    spec = parse_password_hash(encoded)
    return hmac.compare_digest(spec.derive(password), spec.key)


# --------------------------------------------------------------------------------------------
# TOTP (RFC 6238 over RFC 4226 HOTP, HMAC-SHA1)


def new_totp_secret() -> str:
    """A fresh 160-bit TOTP secret, base32 (what authenticator apps take)."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii")


def _totp_key(secret_b32: str) -> bytes:
    cleaned = secret_b32.replace(" ", "").upper()
    try:
        key = base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except binascii.Error:
        raise AdminAuthError("ARENA_ADMIN_TOTP_SECRET is not base32 text") from None
    if len(key) < 10:
        raise AdminAuthError("ARENA_ADMIN_TOTP_SECRET is too short (at least 80 bits)")
    return key


def totp(secret_b32: str, at: float, *, digits: int = TOTP_DIGITS) -> str:
    """The TOTP code for time ``at`` (seconds since the epoch), ``digits`` long."""
    counter = int(at // TOTP_STEP_S)
    mac = hmac.new(_totp_key(secret_b32), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def verify_totp(secret_b32: str, code: str, *, at: float | None = None, window: int = 1) -> bool:
    """Whether ``code`` is the TOTP code of ``at`` or of ``window`` steps either side (clock
    drift between the server and the phone)."""
    now = time.time() if at is None else at
    code = code.strip().replace(" ", "")
    if not code.isdigit():
        return False
    found = False
    for step in range(-window, window + 1):
        # No early exit: every candidate is compared, in constant time.
        found |= hmac.compare_digest(totp(secret_b32, now + step * TOTP_STEP_S), code)
    return found


# --------------------------------------------------------------------------------------------
# sessions and CSRF


@dataclass(frozen=True)
class AdminSession:
    """A logged-in admin: the name they gave (for the audit log), when, and the cookie."""

    actor: str
    issued_at: float
    token: str


class SessionSigner:
    """Issues and checks session cookies and their CSRF tokens (:class:`arena.signing.Signer`
    tokens, one key for sessions and one for CSRF).

    Parameters
    ----------
    secret
        The arena's secret (:func:`arena.store.resolve_secret`).
    password_hash
        The configured password hash: part of the keys, so a new password ends old sessions.
    max_age_s
        How long a session lasts.
    """

    def __init__(
        self, secret: str, password_hash: str, *, max_age_s: float = SESSION_MAX_AGE_S
    ) -> None:
        self._sessions = Signer(secret, f"admin session\0{password_hash}")
        self._csrf = Signer(secret, f"admin csrf\0{password_hash}")
        self.max_age_s = max_age_s

    def issue(self, actor: str, *, now: float | None = None) -> str:
        """A new session cookie value for ``actor``."""
        issued = int(time.time() if now is None else now)
        return self._sessions.dumps({"a": actor, "t": issued, "n": secrets.token_hex(8)})

    def read(self, token: str | None, *, now: float | None = None) -> AdminSession | None:
        """The session of a cookie value, or ``None`` when absent, forged or expired."""
        if not token:
            return None
        try:
            payload = self._sessions.loads(token)
            actor, issued = str(payload["a"]), float(payload["t"])
        except (BadSignature, KeyError, TypeError, ValueError):
            return None
        age = (time.time() if now is None else now) - issued
        if not 0 <= age <= self.max_age_s:
            return None
        return AdminSession(actor, issued, token)

    def csrf_token(self, session: AdminSession) -> str:
        """The token the session's forms carry."""
        return self._csrf.mac(session.token)

    def check_csrf(self, session: AdminSession, token: str | None) -> bool:
        """Whether a form's token belongs to this session."""
        return bool(token) and hmac.compare_digest(self.csrf_token(session), token or "")
