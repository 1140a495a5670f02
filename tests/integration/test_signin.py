"""Sign-in (issue 18) against a real OpenID provider: oidc-provider from the npm registry
(tests/oidc), the real app, the authorization code flow with PKCE end to end.

* optional mode, email-domain rule (team.example): a signed-in person's votes carry their
  keyed id, and nothing of their email or name is stored; another domain is refused with a
  message naming the rule; a tampered person cookie is refused; sign-out forgets it; "My
  votes" is the person's own leaderboard;
* required mode, group rule (arena-voters): nobody prompts without signing in; a member of
  the group from any domain may, a non-member is refused naming the rule.
"""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from arena.auth.people import person_key
from tests.integration.harness import (
    READY_TEXT,
    RECORDED_TEXT,
    STATUS,
    App,
    battle,
    start_app,
    stub_server,
    vote,
    write_roster,
)
from tests.oidc.provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    Provider,
    need_node,
    oidc_provider,
    sign_in,
)
from tests.processes import free_port

pytestmark = pytest.mark.slow

SECRET = "signin-test-secret-0123456789abcdef0123456789"


@dataclass
class SignInArena:
    app: App
    provider: Provider

    def key_of(self, login: str) -> str:
        return person_key(SECRET, self.provider.issuer, login)

    def person_cookie(self, login: str) -> str:
        with httpx.Client(trust_env=False, timeout=30) as http:
            done = sign_in(http, self.app.url, login)
        assert done.status_code == 302, (done.status_code, done.text[:500])
        (value,) = [
            c.split(";")[0].split("=", 1)[1]
            for c in done.headers.get_list("set-cookie")
            if c.startswith("arena_person=")
        ]
        return value


@contextlib.contextmanager
def signin_arena(work: Path, env: Mapping[str, str]) -> Iterator[SignInArena]:
    need_node()
    port = free_port()
    with stub_server(work, tokens=3, delay=0.01) as stub:
        roster = write_roster(
            work / "roster.toml", [("sso-one", stub.base_url), ("sso-two", stub.base_url)]
        )
        settings = {
            "ARENA_SECRET": SECRET,
            "ARENA_OIDC_ISSUER": f"http://127.0.0.1:{port}",
            "ARENA_OIDC_CLIENT_ID": CLIENT_ID,
            "ARENA_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "ARENA_OIDC_SCOPES": "openid email profile groups",
            **env,
        }
        with (
            start_app(work, roster=roster, env=settings) as app,
            oidc_provider(work, port, [app.url + "/auth/callback"]) as provider,
        ):
            yield SignInArena(app, provider)


@pytest.fixture(scope="module")
def optional(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignInArena]:
    env = {"ARENA_AUTH_MODE": "optional", "ARENA_AUTH_ALLOWED_DOMAINS": "team.example"}
    with signin_arena(tmp_path_factory.mktemp("sso-optional"), env) as arena:
        yield arena


def test_a_signed_in_persons_votes_carry_their_keyed_id_and_nothing_else(
    optional: SignInArena,
) -> None:
    app = optional.app
    with httpx.Client(trust_env=False, timeout=30) as http:
        done = sign_in(http, app.url, "alice")
    assert done.status_code == 302 and done.headers["location"] == "/", done.text[:300]
    (cookie,) = [c for c in done.headers.get_list("set-cookie") if c.startswith("arena_person=")]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]

    alice = app.client(headers={"cookie": f"arena_person={value}"})
    for i, choice in enumerate(("a", "b", "a")):
        assert READY_TEXT in str(battle(alice, f"question number {i}")[STATUS])
        assert vote(alice, choice).startswith(RECORDED_TEXT)
    anonymous = app.client()
    assert READY_TEXT in str(battle(anonymous, "an anonymous visitor asks")[STATUS])
    assert vote(anonymous, "tie").startswith(RECORDED_TEXT)

    judges = dict(app.rows("SELECT judge, count(*) FROM vote GROUP BY judge"))
    assert judges.get(optional.key_of("alice")) == 3, judges
    assert len(judges) == 2  # alice, and the anonymous visitor (its address)
    # Her email, name and subject are nowhere in the database.
    dump = repr(
        [
            app.rows(f"SELECT * FROM {table}")
            for table in ("battle", "vote", "message", "model_event")
        ]
    )
    for needle in ("alice", "team.example", "Alice Example"):
        assert needle.lower() not in dump.lower(), needle

    # "My votes": her own leaderboard, from her three votes only.
    note, table = alice.predict(api_name="/my_votes")
    assert "From your 3 votes only" in note, note
    rows = table.get("value", table).get("data") if isinstance(table, dict) else table
    assert rows, table
    assert sum(int(r[2]) for r in rows) == 2 * 3, rows  # battles per model, both sides
    note, _ = anonymous.predict(api_name="/my_votes")
    assert "Sign in" in note


def test_a_domain_not_on_the_allow_list_is_refused_naming_the_rule(optional: SignInArena) -> None:
    with httpx.Client(trust_env=False, timeout=30) as http:
        refused = sign_in(http, optional.app.url, "bob")
    assert refused.status_code == 403
    text = html.unescape(refused.text)
    assert "ARENA_AUTH_ALLOWED_DOMAINS" in text and "team.example" in text
    assert "bob" not in text.lower()  # the rule, not the person
    assert not any(c.startswith("arena_person=") for c in refused.headers.get_list("set-cookie"))


def test_a_tampered_person_cookie_is_refused_and_sign_out_forgets_it(
    optional: SignInArena,
) -> None:
    app = optional.app
    value = optional.person_cookie("alice")
    body, dot, mac = value.partition(".")
    forged = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + dot + mac
    for bad in (forged, value[:-1] + ("x" if value[-1] != "x" else "y"), "garbage"):
        r = httpx.get(app.url + "/", headers={"cookie": f"arena_person={bad}"}, trust_env=False)
        assert r.status_code == 400 and "arena_person" in r.text, (bad, r.text)
    out = httpx.get(
        app.url + "/auth/logout",
        headers={"cookie": f"arena_person={value}"},
        trust_env=False,
        follow_redirects=False,
    )
    assert out.status_code == 302
    assert re.search(r"arena_person=;[^,]*Max-Age=0", out.headers.get("set-cookie", ""))


@pytest.fixture(scope="module")
def required(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignInArena]:
    env = {"ARENA_AUTH_MODE": "required", "ARENA_AUTH_ALLOWED_GROUPS": "arena-voters"}
    with signin_arena(tmp_path_factory.mktemp("sso-required"), env) as arena:
        yield arena


def test_required_mode_admits_signed_in_group_members_only(required: SignInArena) -> None:
    app = required.app
    before = app.counts()
    out = battle(app.client(), "may I, without signing in?")
    assert "sign in to prompt and vote" in str(out[STATUS]), out[STATUS]
    assert app.counts() == before  # nothing reached a model or the database

    # carol is in the group (from a domain the other arena refused): admitted.
    carol = app.client(headers={"cookie": f"arena_person={required.person_cookie('carol')}"})
    assert READY_TEXT in str(battle(carol, "carol asks")[STATUS])
    assert vote(carol, "b").startswith(RECORDED_TEXT)
    assert app.rows("SELECT judge FROM vote") == [(required.key_of("carol"),)]
    # bob is not in the group: refused, naming the rule and the claim.
    with httpx.Client(trust_env=False, timeout=30) as http:
        refused = sign_in(http, app.url, "bob")
    assert refused.status_code == 403
    text = html.unescape(refused.text)
    assert "ARENA_AUTH_ALLOWED_GROUPS" in text and "claim 'groups'" in text, text


def _code_for(provider: Provider, url: str, login: str, callback: str) -> dict[str, str]:
    """Drive the provider's own pages from an authorization URL to the callback's query."""
    from urllib.parse import parse_qs, urlparse

    with httpx.Client(trust_env=False, timeout=30) as http:
        r = http.get(url, follow_redirects=False)
        for _ in range(20):
            location = r.headers.get("location")
            if location and location.startswith(callback):
                return {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}
            if location:
                r = http.get(httpx.URL(str(r.url)).join(location), follow_redirects=False)
                continue
            m = re.search(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', r.text, re.S)
            assert m, r.text[:300]
            fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', m[2]))
            if fields.get("prompt") == "login":
                fields.update(login=login, password="x")
            r = http.post(m[1], data=fields, follow_redirects=False)
    raise AssertionError("the provider never came back")


def test_the_client_refuses_what_it_was_not_written_around(tmp_path: Path) -> None:
    """Cases the flow above never produces: a nonce that is not this sign-in's, a code used
    twice, a wrong client secret, an issuer that names itself differently."""
    import asyncio
    import dataclasses

    from arena.auth import AuthMode
    from arena.auth.config import AuthConfig
    from arena.auth.oidc import OidcClient, OidcError

    need_node()
    callback = "http://127.0.0.1:9/auth/callback"  # never contacted: the test reads the URL
    with oidc_provider(tmp_path, free_port(), [callback]) as provider:
        config = AuthConfig(
            AuthMode.OPTIONAL,
            provider.issuer,
            CLIENT_ID,
            CLIENT_SECRET,
            "openid email",
            "",
            (),
            (),
            "groups",
            3600.0,
        )

        async def run() -> None:
            client = OidcClient(config)
            # A good sign-in first: the same client accepts it.
            url, flow = await client.start(callback)
            query = _code_for(provider, url, "alice", callback)
            assert (await client.finish(flow, code=query["code"]))["sub"] == "alice"
            # The same code again: the provider refuses it, and so does the client.
            with pytest.raises(OidcError, match="did not accept"):
                await client.finish(flow, code=query["code"])
            # A nonce from another sign-in (a replayed ID token would carry the old one).
            url, flow = await client.start(callback)
            query = _code_for(provider, url, "alice", callback)
            with pytest.raises(OidcError, match="nonce"):
                await client.finish(
                    dataclasses.replace(flow, nonce="not-this-one"), code=query["code"]
                )
            # A wrong client secret.
            wrong = OidcClient(dataclasses.replace(config, client_secret="wrong"))
            url, flow = await wrong.start(callback)
            query = _code_for(provider, url, "alice", callback)
            with pytest.raises(OidcError, match="did not accept"):
                await wrong.finish(flow, code=query["code"])
            # A configured issuer the provider does not call itself.
            other = OidcClient(dataclasses.replace(config, issuer=provider.issuer + "/other"))
            with pytest.raises(OidcError):
                await other.start(callback)

        asyncio.run(run())
