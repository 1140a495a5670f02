"""The sign-in settings, checked together: a mode that needs a provider names what is missing."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from arena.config import Settings, SettingsError

__all__ = ["AuthConfig", "AuthMode", "auth_config"]


class AuthMode(StrEnum):
    """Who may prompt and vote."""

    ANONYMOUS = "anonymous"  # no sign-in at all
    OPTIONAL = "optional"  # anyone; a signed-in person votes as themselves
    REQUIRED = "required"  # only signed-in people


def _split(value: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in value.split(",") if x.strip())


@dataclass(frozen=True)
class AuthConfig:
    """Everything the sign-in routes need (the client secret read from its variable)."""

    mode: AuthMode
    issuer: str
    client_id: str
    client_secret: str
    scopes: str
    redirect_url: str
    allowed_domains: tuple[str, ...]
    allowed_groups: tuple[str, ...]
    group_claim: str
    session_s: float


def auth_config(settings: Settings, environ: Mapping[str, str] | None = None) -> AuthConfig | None:
    """The sign-in configuration, or ``None`` in ``anonymous`` mode.

    Raises
    ------
    SettingsError
        An unknown mode, or a sign-in mode without issuer, client id, secret or the
        ``openid`` scope; the message names the variable.
    """
    env = os.environ if environ is None else environ
    try:
        mode = AuthMode(settings.auth_mode.strip().lower())
    except ValueError:
        raise SettingsError(
            f"ARENA_AUTH_MODE={settings.auth_mode!r} is not one of "
            f"{', '.join(m.value for m in AuthMode)}"
        ) from None
    if mode is AuthMode.ANONYMOUS:
        return None
    missing = [
        name
        for name, value in (
            ("ARENA_OIDC_ISSUER", settings.oidc_issuer),
            ("ARENA_OIDC_CLIENT_ID", settings.oidc_client_id),
        )
        if not value.strip()
    ]
    secret_var = settings.oidc_client_secret_env.strip() or "ARENA_OIDC_CLIENT_SECRET"
    secret = env.get(secret_var, "")
    if not secret:
        missing.append(f"{secret_var} (the client secret, named by ARENA_OIDC_CLIENT_SECRET_ENV)")
    if missing:
        raise SettingsError(f"ARENA_AUTH_MODE={mode.value} needs {', '.join(missing)}")
    if not settings.oidc_issuer.startswith(("https://", "http://")):
        raise SettingsError(f"ARENA_OIDC_ISSUER={settings.oidc_issuer!r} is not an http(s) URL")
    if "openid" not in settings.oidc_scopes.split():
        raise SettingsError(f"ARENA_OIDC_SCOPES={settings.oidc_scopes!r} must include openid")
    if settings.auth_session_hours <= 0:
        raise SettingsError("ARENA_AUTH_SESSION_HOURS must be positive")
    return AuthConfig(
        mode=mode,
        issuer=settings.oidc_issuer.strip().rstrip("/"),
        client_id=settings.oidc_client_id.strip(),
        client_secret=secret,
        scopes=settings.oidc_scopes.strip(),
        redirect_url=settings.oidc_redirect_url.strip(),
        allowed_domains=tuple(d.lower().lstrip("@") for d in _split(settings.auth_allowed_domains)),
        allowed_groups=_split(settings.auth_allowed_groups),
        group_claim=settings.auth_group_claim.strip() or "groups",
        session_s=settings.auth_session_hours * 3600.0,
    )
