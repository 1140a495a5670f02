"""Signed tokens for cookies: a JSON payload and an HMAC-SHA256 over it, with a key derived
from the arena's secret for one purpose only (a token made for one cookie is never accepted
as another, and says nothing about the keyed hashes in the database).  Signed, not
encrypted: put nothing in a payload that its holder may not read."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

__all__ = ["BadSignature", "Signer", "cookie_header"]


class BadSignature(ValueError):
    """A token that is malformed or not signed by this arena for this purpose."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Sign and check JSON payloads for one ``purpose``.

    Parameters
    ----------
    secret
        The arena's secret.
    purpose
        What the tokens are for (``"person cookie"``, ...); part of the key.
    """

    def __init__(self, secret: str, purpose: str) -> None:
        if not secret:
            raise ValueError("signing needs the arena's secret")
        self._key = hmac.new(
            secret.encode(), f"arena signing key: {purpose}".encode(), hashlib.sha256
        ).digest()
        self.purpose = purpose

    def mac(self, text: str) -> str:
        """The base64url HMAC-SHA256 of ``text`` under this purpose's key (compare it with
        :func:`hmac.compare_digest`)."""
        return _b64(hmac.new(self._key, text.encode("utf-8"), hashlib.sha256).digest())

    def dumps(self, payload: dict[str, Any]) -> str:
        """``<base64 JSON>.<base64 MAC>``."""
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self.mac(body)}"

    def loads(self, token: str) -> dict[str, Any]:
        """The payload of a token this signer made.

        Raises
        ------
        BadSignature
            Malformed, or the MAC does not match.
        """
        body, dot, mac = token.strip().strip('"').partition(".")
        if not dot or not body or not mac or len(token) > 8192:
            raise BadSignature(f"the {self.purpose} is malformed")
        if not hmac.compare_digest(mac, self.mac(body)):
            raise BadSignature(f"the {self.purpose}'s signature does not match")
        try:
            payload = json.loads(_unb64(body))
        except (ValueError, binascii.Error):
            raise BadSignature(f"the {self.purpose} is malformed") from None
        if not isinstance(payload, dict):
            raise BadSignature(f"the {self.purpose} is malformed")
        return payload


def cookie_header(
    name: str, value: str, *, path: str, max_age_s: int, secure: bool, same_site: str = "Lax"
) -> str:
    """A ``Set-Cookie`` value for one of the arena's cookies: always HttpOnly; ``max_age_s=0``
    deletes the cookie."""
    attrs = f"Path={path}; Max-Age={max_age_s}; HttpOnly; SameSite={same_site}"
    return f"{name}={value}; {attrs}" + ("; Secure" if secure else "")
