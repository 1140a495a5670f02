"""Sign-in pieces without a provider: the access rules, the person cookie, the signer, the
settings check, and the routes' refusals (the full flow against a real provider is in
tests/integration/test_signin.py)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from arena.auth import AccessRules, AuthMode, Person, PersonCookies, auth_config
from arena.auth.people import InvalidPersonCookie, person_key
from arena.config import Settings, SettingsError
from arena.signing import BadSignature, Signer
from arena.ui.auth import FLOW_COOKIE, AuthMiddleware

SECRET = "auth-test-secret-0123456789abcdef012345"


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"email": "ann@team.example", "email_verified": True, "groups": ["voters"]}, None),
        ({"email": "ann@TEAM.example", "email_verified": True, "groups": "voters"}, None),
        ({"email": "ann@other.example", "email_verified": True, "groups": ["voters"]}, "DOMAINS"),
        ({"email": "ann@team.example", "email_verified": False, "groups": ["voters"]}, "verified"),
        ({"email": "ann@team.example", "groups": ["voters"]}, "verified"),
        ({"groups": ["voters"]}, "no email"),
        ({"email": "ann@team.example", "email_verified": True, "groups": ["others"]}, "GROUPS"),
        ({"email": "ann@team.example", "email_verified": True}, "GROUPS"),
        # A subdomain is another domain.
        ({"email": "ann@x.team.example", "email_verified": True, "groups": ["voters"]}, "DOMAINS"),
    ],
)
def test_access_rules_name_the_rule_not_the_person(
    claims: dict[str, object], why: str | None
) -> None:
    rules = AccessRules(domains=("team.example",), groups=("voters",))
    refusal = rules.refusal(claims)
    if why is None:
        assert refusal is None
    else:
        assert refusal is not None and why in refusal
        assert "ann" not in refusal.lower()


def test_no_rules_admit_anyone_the_provider_signed_in() -> None:
    assert AccessRules().refusal({"sub": "x"}) is None


def test_the_person_cookie_round_trips_expires_and_refuses_tampering() -> None:
    cookies = PersonCookies(SECRET)
    person = Person(key=person_key(SECRET, "https://id.example", "u1"), label="a@b", expires_at=2e9)
    value = cookies.make(person)
    assert cookies.read(value, now=1e9) == person
    assert cookies.read(value, now=2e9 + 1) is None  # expired: simply signed out
    assert cookies.read(None) is None
    for bad in (value[:-1] + ("A" if value[-1] != "A" else "B"), "x.y", "nonsense"):
        with pytest.raises(InvalidPersonCookie):
            cookies.read(bad, now=1e9)
    with pytest.raises(InvalidPersonCookie):  # another arena's secret
        PersonCookies(SECRET + "x").read(value, now=1e9)


def test_a_signer_token_is_valid_for_its_own_purpose_only() -> None:
    token = Signer(SECRET, "one").dumps({"a": 1})
    assert Signer(SECRET, "one").loads(token) == {"a": 1}
    with pytest.raises(BadSignature):
        Signer(SECRET, "two").loads(token)


def test_person_keys_are_per_issuer_and_keyed() -> None:
    a = person_key(SECRET, "https://one.example", "sub")
    assert a != person_key(SECRET, "https://two.example", "sub")
    assert a != person_key(SECRET + "x", "https://one.example", "sub")
    assert "sub" not in a


def _settings(**kw: object) -> Settings:
    return Settings().with_overrides(**kw)


def test_auth_settings_are_checked_and_name_what_is_missing() -> None:
    assert auth_config(_settings(), {}) is None
    with pytest.raises(SettingsError, match="ARENA_AUTH_MODE='sometimes'"):
        auth_config(_settings(auth_mode="sometimes"), {})
    with pytest.raises(SettingsError) as missing:
        auth_config(_settings(auth_mode="required"), {})
    assert all(
        v in str(missing.value)
        for v in ("ARENA_OIDC_ISSUER", "ARENA_OIDC_CLIENT_ID", "ARENA_OIDC_CLIENT_SECRET")
    )
    ok = {"auth_mode": "optional", "oidc_issuer": "https://id.example/", "oidc_client_id": "c"}
    with pytest.raises(SettingsError, match="openid"):
        auth_config(_settings(**ok, oidc_scopes="email"), {"ARENA_OIDC_CLIENT_SECRET": "s"})
    config = auth_config(
        _settings(
            **ok, oidc_client_secret_env="MY_SECRET", auth_allowed_domains="@A.example, b.example"
        ),
        {"MY_SECRET": "s"},
    )
    assert config is not None and config.mode is AuthMode.OPTIONAL
    assert config.issuer == "https://id.example" and config.client_secret == "s"
    assert config.allowed_domains == ("a.example", "b.example")


def _middleware() -> AuthMiddleware:
    config = auth_config(
        _settings(
            auth_mode="optional",
            oidc_issuer="http://127.0.0.1:9",  # nothing listens there
            oidc_client_id="c",
        ),
        {"ARENA_OIDC_CLIENT_SECRET": "s"},
    )
    assert config is not None

    async def page(_: object) -> PlainTextResponse:
        return PlainTextResponse("the arena")

    return AuthMiddleware(
        Starlette(routes=[Route("/", page)]),
        config=config,
        people=PersonCookies(SECRET),
        flows=Signer(SECRET, "sign-in flow cookie"),
        key_for=lambda iss, sub: person_key(SECRET, iss, sub),
    )


def _get(app: AuthMiddleware, path: str, cookies: dict[str, str] | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, root_path="/arena")  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            header = "; ".join(f"{k}={v}" for k, v in (cookies or {}).items())
            return await c.get("/arena" + path, headers={"cookie": header} if header else {})

    return asyncio.run(go())


def test_the_routes_refuse_clearly_under_a_root_path() -> None:
    app = _middleware()
    assert _get(app, "/").text == "the arena"
    # The provider is down: a page that says so, no cookie.
    down = _get(app, "/auth/login")
    assert down.status_code == 502 and "cannot reach the sign-in provider" in down.text
    # A callback without the flow cookie (too late, or another browser).
    late = _get(app, "/auth/callback?code=x&state=y")
    assert late.status_code == 400 and "Start again" in late.text
    # A flow cookie whose state does not match.
    flow = Signer(SECRET, "sign-in flow cookie").dumps(
        {"s": "right", "n": "n", "v": "v", "r": "r", "x": "/", "e": time.time() + 60}
    )
    wrong = _get(app, "/auth/callback?code=x&state=wrong", {FLOW_COOKIE: flow})
    assert wrong.status_code == 400 and "state" in wrong.text
    refused = _get(app, "/auth/callback?error=access_denied", {FLOW_COOKIE: flow})
    assert refused.status_code == 403 and "access_denied" in refused.text
    # Sign-out forgets the person, on the arena's path.
    out = _get(app, "/auth/logout")
    assert out.status_code == 302 and out.headers["location"] == "/arena/"
    assert (
        "arena_person=;" in out.headers["set-cookie"] and "Path=/arena" in out.headers["set-cookie"]
    )
    # A tampered person cookie is refused on every route.
    bad = _get(app, "/", {"arena_person": "forged.value"})
    assert bad.status_code == 400 and "arena_person" in bad.text
