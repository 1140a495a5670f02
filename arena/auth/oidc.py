"""Talking to the OpenID provider: the authorization code flow with PKCE, through Authlib.

:meth:`OidcClient.start` builds the authorization URL (``state``, ``nonce``, an S256 code
challenge) and returns the :class:`Flow` to keep until the callback;
:meth:`OidcClient.finish` exchanges the code (with the PKCE verifier), checks the ID token
(signature against the provider's JWKS, issuer, audience, expiry, nonce) with joserfc, and
reads the userinfo endpoint for the claims the access rules look at.  The provider's metadata
and keys are fetched on first use and cached; unknown signing keys trigger one re-fetch (key
rotation).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from arena.auth.config import AuthConfig

__all__ = ["Flow", "OidcClient", "OidcError"]

#: ID token algorithms accepted (asymmetric only: the client secret never verifies a token).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")


class OidcError(Exception):
    """Sign-in failed; the message is safe to show the person (no tokens, no secrets)."""


@dataclass(frozen=True)
class Flow:
    """What the browser keeps (in a signed cookie) between the redirect and the callback."""

    state: str
    nonce: str
    verifier: str
    redirect_url: str
    next_path: str


class OidcClient:
    """An OpenID Connect relying party for one provider.

    Parameters
    ----------
    config
        From :func:`arena.auth.auth_config`.
    timeout_s
        Per-request timeout towards the provider.
    """

    def __init__(self, config: AuthConfig, *, timeout_s: float = 10.0) -> None:
        self.config = config
        self.timeout_s = timeout_s
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._lock = asyncio.Lock()

    def _client(self, redirect_url: str, token: dict[str, Any] | None = None) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.config.client_id,
            client_secret=self.config.client_secret,
            scope=self.config.scopes,
            redirect_uri=redirect_url,
            code_challenge_method="S256",
            token=token,
            timeout=self.timeout_s,
            trust_env=False,
        )

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (cached); its issuer must be the configured one."""
        async with self._lock:
            if self._metadata is None:
                url = f"{self.config.issuer}/.well-known/openid-configuration"
                doc = await self._get_json(url, "discovery document")
                if str(doc.get("issuer", "")).rstrip("/") != self.config.issuer:
                    raise OidcError(
                        f"the provider at {self.config.issuer} calls itself "
                        f"{doc.get('issuer')!r}: check ARENA_OIDC_ISSUER"
                    )
                for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(doc.get(field), str):
                        raise OidcError(f"the provider's discovery document has no {field}")
                self._metadata = doc
            return self._metadata

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, trust_env=False) as http:
                r = await http.get(url, headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            raise OidcError(f"cannot reach the sign-in provider ({type(exc).__name__})") from None
        if r.status_code != 200:
            raise OidcError(f"the sign-in provider's {what} answered HTTP {r.status_code}")
        try:
            doc = r.json()
        except ValueError:
            raise OidcError(f"the sign-in provider's {what} is not JSON") from None
        if not isinstance(doc, dict):
            raise OidcError(f"the sign-in provider's {what} is not a JSON object")
        return doc

    async def _key_set(self, *, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            meta = await self.metadata()
            jwks = await self._get_json(str(meta["jwks_uri"]), "key set")
            try:
                self._keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
            except (JoseError, ValueError, KeyError) as exc:
                raise OidcError(f"the provider's key set is unusable ({exc})") from None
        return self._keys

    async def start(self, redirect_url: str, next_path: str = "/") -> tuple[str, Flow]:
        """The URL to send the browser to, and the flow to keep until the callback."""
        meta = await self.metadata()
        flow = Flow(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            verifier=secrets.token_urlsafe(48),
            redirect_url=redirect_url,
            next_path=next_path,
        )
        async with self._client(redirect_url) as client:
            url, _ = client.create_authorization_url(
                meta["authorization_endpoint"],
                state=flow.state,
                code_verifier=flow.verifier,
                nonce=flow.nonce,
            )
        return str(url), flow

    async def finish(self, flow: Flow, *, code: str, iss: str | None = None) -> dict[str, Any]:
        """Exchange the code and return the person's checked claims (ID token + userinfo).

        Raises
        ------
        OidcError
            Any failure: the provider refused the code, a bad or foreign ID token, a nonce
            that does not match, a userinfo ``sub`` that differs.
        """
        meta = await self.metadata()
        if iss is not None and iss.rstrip("/") != self.config.issuer:
            raise OidcError("the sign-in answer came from another provider (iss mismatch)")
        async with self._client(flow.redirect_url) as client:
            try:
                token = await client.fetch_token(
                    meta["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=flow.verifier,
                )
            except Exception as exc:  # authlib raises OAuthError or httpx errors
                raise OidcError(
                    f"the provider did not accept the sign-in code ({type(exc).__name__}: "
                    f"{str(exc)[:200]})"
                ) from None
            id_token = token.get("id_token")
            if not isinstance(id_token, str):
                raise OidcError("the provider sent no ID token (is 'openid' among the scopes?)")
            claims = await self._check_id_token(id_token, flow.nonce, str(meta["issuer"]))
            userinfo_url = meta.get("userinfo_endpoint")
            if isinstance(userinfo_url, str):
                try:
                    r = await client.get(userinfo_url)
                except httpx.HTTPError as exc:
                    raise OidcError(f"cannot read the userinfo ({type(exc).__name__})") from None
                if r.status_code == 200:
                    info = r.json()
                    if not isinstance(info, dict) or info.get("sub") != claims["sub"]:
                        raise OidcError("the userinfo is about another subject")
                    claims = {**info, **claims}  # the ID token's own claims win
        return claims

    async def _check_id_token(self, id_token: str, nonce: str, issuer: str) -> dict[str, Any]:
        for attempt in range(2):
            keys = await self._key_set(refresh=attempt > 0)
            try:
                decoded = jwt.decode(id_token, keys, algorithms=list(ALGORITHMS))
                break
            except JoseError as exc:
                if attempt == 0 and "key" in type(exc).__name__.lower():
                    continue  # an unknown key id: the provider may have rotated its keys
                raise OidcError(f"the ID token does not verify ({type(exc).__name__})") from None
        registry = jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": self.config.client_id},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(decoded.claims)
        except JoseError as exc:
            raise OidcError(f"the ID token was refused ({exc.error}: {exc.description})") from None
        return dict(decoded.claims)
