"""Who a voter is without sign-in: a random per-browser id in a signed cookie.

A voter used to be the keyed hash of the client address, so everyone behind one NAT (an
office, a campus, a VPN) was one voter: one prompt budget, one vote budget, one ``judge``.
Now each browser gets a random id the first time it loads the page, in the ``arena_voter``
cookie (HttpOnly, SameSite=Lax, Secure over HTTPS), signed with a key derived from the
arena's secret.  The voter key stored and exported is the keyed hash of that id, as before
for addresses; the id itself is never stored.  The address stays a separate, higher ceiling
(``ARENA_*_PER_ADDRESS``) and a group signal for the rigging tests, because clearing the
cookie gives a new voter.

A cookie that is present but does not verify (edited, forged, or signed by another arena's
secret) is refused rather than silently replaced: silently minting a fresh id would hand a
fresh budget to anyone who tampers with it.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets

from arena.signing import Signer, cookie_header

__all__ = ["VOTER_COOKIE", "VOTER_COOKIE_MAX_AGE_S", "InvalidVoterCookie", "VoterCookies"]

VOTER_COOKIE = "arena_voter"
#: 400 days: the longest lifetime browsers keep a cookie for.
VOTER_COOKIE_MAX_AGE_S = 400 * 24 * 3600
_VERSION = "v1"
_ID_BYTES = 16
_SHAPE = re.compile(r"v1\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})")


class InvalidVoterCookie(ValueError):
    """A voter cookie that is present but not one this arena signed."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class VoterCookies:
    """Make and check voter cookies.

    Parameters
    ----------
    secret
        The arena's secret (:func:`arena.store.resolve_secret`).  The signing key is derived
        from it for this one purpose (:class:`arena.signing.Signer`), so a cookie's
        signature says nothing about the keyed hashes stored in the database.
    """

    def __init__(self, secret: str) -> None:
        self._signer = Signer(secret, "voter cookie")

    def _sign(self, voter_id: str) -> str:
        return self._signer.mac(f"{_VERSION}.{voter_id}")

    def mint(self) -> str:
        """A new cookie value: ``v1.<random id>.<signature>``."""
        voter_id = _b64(secrets.token_bytes(_ID_BYTES))
        return f"{_VERSION}.{voter_id}.{self._sign(voter_id)}"

    def voter_id(self, value: str | None) -> str | None:
        """The voter id in a cookie value; ``None`` when there is no cookie.

        Raises
        ------
        InvalidVoterCookie
            The value is present but malformed or its signature does not match.
        """
        if value is None:
            return None
        m = _SHAPE.fullmatch(value.strip().strip('"'))
        if m is None:
            raise InvalidVoterCookie(f"the {VOTER_COOKIE} cookie is malformed")
        voter_id, signature = m.groups()
        if not hmac.compare_digest(signature, self._sign(voter_id)):
            raise InvalidVoterCookie(f"the {VOTER_COOKIE} cookie's signature does not match")
        return voter_id

    def header(self, value: str, *, path: str = "/", secure: bool = False) -> str:
        """The ``Set-Cookie`` header value that stores ``value`` in the browser."""
        return cookie_header(
            VOTER_COOKIE, value, path=path, max_age_s=VOTER_COOKIE_MAX_AGE_S, secure=secure
        )
