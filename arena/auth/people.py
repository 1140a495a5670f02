"""A signed-in person, as the arena knows them: a keyed id and nothing else stored.

The provider's subject (``iss`` + ``sub``) becomes the person's key with the same keyed hash
as every other identity (:func:`arena.store.user_key`): it is the ``judge`` of their votes.
Email and name are never written to the database or to exports; the person cookie carries
the email (or name) only so that the page can say who is signed in, on that person's own
browser.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from arena.signing import BadSignature, Signer, cookie_header
from arena.store import user_key

__all__ = [
    "PERSON_COOKIE",
    "AccessRules",
    "InvalidPersonCookie",
    "Person",
    "PersonCookies",
    "person_key",
]

PERSON_COOKIE = "arena_person"


class InvalidPersonCookie(ValueError):
    """A person cookie that is present but not one this arena signed."""


@dataclass(frozen=True)
class Person:
    """A signed-in person.

    Attributes
    ----------
    key
        Keyed hash of the provider's ``iss`` and ``sub``: the ``judge`` of their votes.
    label
        What the page shows ("Signed in as ..."): the email, else the name; never stored.
    expires_at
        Unix time when the sign-in ends.
    """

    key: str
    label: str
    expires_at: float


def person_key(secret: str, issuer: str, subject: str) -> str:
    """The keyed id of the person ``subject`` at ``issuer``."""
    return user_key(secret, f"oidc:{issuer}|{subject}")


class PersonCookies:
    """Make and read the ``arena_person`` cookie (signed, HttpOnly, SameSite=Lax)."""

    def __init__(self, secret: str) -> None:
        self._signer = Signer(secret, "person cookie")

    def make(self, person: Person) -> str:
        return self._signer.dumps({"k": person.key, "l": person.label, "e": person.expires_at})

    def read(self, value: str | None, *, now: float | None = None) -> Person | None:
        """The person in a cookie value; ``None`` without one, or when the sign-in expired.

        Raises
        ------
        InvalidPersonCookie
            The value is present but edited, forged or malformed.
        """
        if not value:
            return None
        try:
            data = self._signer.loads(value)
        except BadSignature as exc:
            raise InvalidPersonCookie(str(exc).replace("person cookie", PERSON_COOKIE)) from None
        key, label, expires = data.get("k"), data.get("l", ""), data.get("e")
        if not isinstance(key, str) or not key or not isinstance(expires, int | float):
            raise InvalidPersonCookie(f"the {PERSON_COOKIE} cookie is malformed")
        if (time.time() if now is None else now) >= expires:
            return None  # signed out by time: not an attack, just sign in again
        return Person(key=key, label=str(label), expires_at=float(expires))

    @staticmethod
    def header(value: str, *, path: str, max_age_s: int, secure: bool) -> str:
        """The ``Set-Cookie`` value (``max_age_s=0`` deletes the cookie)."""
        return cookie_header(PERSON_COOKIE, value, path=path, max_age_s=max_age_s, secure=secure)


@dataclass(frozen=True)
class AccessRules:
    """Who may sign in: email domains and/or groups.  Every rule that is set must pass.

    A refusal names the rule and the setting, never the person.
    """

    domains: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    group_claim: str = "groups"

    def refusal(self, claims: Mapping[str, Any]) -> str | None:
        """Why these ID token claims may not sign in, or ``None`` when they may."""
        if self.domains:
            email = claims.get("email")
            allowed = ", ".join(self.domains)
            if not isinstance(email, str) or "@" not in email:
                return (
                    f"Sign-in refused: this arena admits email addresses at {allowed} only, "
                    "and the provider sent no email address (rule ARENA_AUTH_ALLOWED_DOMAINS; "
                    "ask for the 'email' scope)."
                )
            if claims.get("email_verified") is not True:
                return (
                    "Sign-in refused: the provider does not say this email address is "
                    "verified (rule ARENA_AUTH_ALLOWED_DOMAINS)."
                )
            if email.rsplit("@", 1)[1].lower() not in self.domains:
                return (
                    f"Sign-in refused: this arena admits email addresses at {allowed} only "
                    "(rule ARENA_AUTH_ALLOWED_DOMAINS)."
                )
        if self.groups:
            raw = claims.get(self.group_claim)
            have: Sequence[Any] = [raw] if isinstance(raw, str) else (raw or [])
            if not isinstance(have, list | tuple) or not set(map(str, have)) & set(self.groups):
                return (
                    f"Sign-in refused: this arena admits members of {', '.join(self.groups)} "
                    f"only (rule ARENA_AUTH_ALLOWED_GROUPS, claim '{self.group_claim}')."
                )
        return None
