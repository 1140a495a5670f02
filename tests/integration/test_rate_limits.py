"""Rate limits and the trusted-proxy rule, through the real app.

Every client of these tests connects from 127.0.0.1, so without a trusted proxy they are one
user; X-Forwarded-For only separates them when the peer (127.0.0.1) is a trusted proxy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import (
    RAW_STATUS,
    READY_TEXT,
    RECORDED_TEXT,
    STATUS,
    App,
    StubServer,
    assert_clean,
    battle,
    final_output,
    queue_call,
    start_app,
    stub_server,
    vote,
    write_roster,
)

pytestmark = pytest.mark.slow

TOO_MANY_PROMPTS = "⚠️ Too many prompts: at most 2 per minute."
TOO_MANY_VOTES = "⚠️ Too many votes: at most 1 per day."


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StubServer]:
    with stub_server(tmp_path_factory.mktemp("stub"), tokens=4, delay=0.01) as server:
        yield server


def _app(work: Path, stub: StubServer, trusted: str) -> Iterator[App]:
    roster = write_roster(
        work / "roster.toml", [(n, stub.base_url) for n in ("stub-alpha", "stub-bravo")]
    )
    env = {
        "ARENA_PROMPTS_PER_MINUTE": "2",
        "ARENA_VOTES_PER_DAY": "1",
        "ARENA_TRUSTED_PROXIES": trusted,
    }
    with start_app(work, roster=roster, env=env) as app:
        yield app


@pytest.fixture(scope="module")
def direct_app(tmp_path_factory: pytest.TempPathFactory, stub: StubServer) -> Iterator[App]:
    """Trusts no proxy: X-Forwarded-For is ignored."""
    yield from _app(tmp_path_factory.mktemp("direct"), stub, "")


@pytest.fixture(scope="module")
def proxied_app(tmp_path_factory: pytest.TempPathFactory, stub: StubServer) -> Iterator[App]:
    """Runs behind reverse proxies on 127.0.0.1 and 127.0.0.3, whose X-Forwarded-For is
    believed.  (uvicorn itself believes 127.0.0.1 anyway; 127.0.0.3 goes through the arena's
    own rule only.)"""
    yield from _app(tmp_path_factory.mktemp("proxied"), stub, "127.0.0.1,127.0.0.3")


def user_keys(app: App) -> list[str]:
    return [r[0] for r in app.rows("SELECT user_key FROM battle ORDER BY created_at")]


def raw_prompt(app: App, prompt: str, *, peer: str, headers: dict[str, str]) -> str:
    """One anonymous prompt through Gradio's queue from source address ``peer``; the status."""
    body = {"data": [prompt, None, None, None, None, None]}
    status, text, messages = queue_call(
        app, app.fn_index("battle_send"), body["data"], headers=headers, local_address=peer
    )
    assert status == 200, text
    return str(final_output(messages)[RAW_STATUS])


def test_prompt_and_vote_limits_hold(direct_app: App) -> None:
    app = direct_app
    first = app.client()
    # Prompt 1 and its vote: within both limits.
    assert READY_TEXT in str(battle(first, "question one")[STATUS])
    assert vote(first, "a").startswith(RECORDED_TEXT)
    # Prompt 2 is allowed, but the day's single vote is spent: refused, nothing recorded,
    # and the battle stays votable (ready) rather than being lost.
    assert READY_TEXT in str(battle(first, "question two")[STATUS])
    refused = vote(first, "b")
    assert refused.startswith(TOO_MANY_VOTES), refused
    assert_clean(refused, app)
    assert app.counts() == (2, 1)
    assert sorted(r[0] for r in app.rows("SELECT status FROM battle")) == ["ready", "voted"]

    # Prompt 3 from the same client: over the limit, no battle created.
    out = battle(first, "question three")
    assert str(out[STATUS]).startswith(TOO_MANY_PROMPTS), out[STATUS]
    assert out[-1] == "question three"  # the prompt stays in its box for later
    # A new session from the same address shares the quota, anonymous or named.
    second = app.client()
    assert str(battle(second, "new tab")[STATUS]).startswith(TOO_MANY_PROMPTS)
    named = battle(second, "named", models=("stub-alpha", "stub-bravo"))
    assert str(named[STATUS]).startswith(TOO_MANY_PROMPTS)
    assert app.counts() == (2, 1)


def test_forwarded_for_from_an_untrusted_peer_does_not_escape_the_limit(
    direct_app: App,
) -> None:
    """A peer that is not a trusted proxy (127.0.0.2 here) cannot pick its identity."""
    app = direct_app
    battles, votes = app.counts()
    peer = "127.0.0.2"
    assert READY_TEXT in raw_prompt(app, "peer two, one", peer=peer, headers={})
    forged = {"X-Forwarded-For": "203.0.113.7"}
    assert READY_TEXT in raw_prompt(app, "peer two, two", peer=peer, headers=forged)
    for headers in (
        {},
        forged,
        {"X-Forwarded-For": "198.51.100.1, 203.0.113.8"},
        {"X-Forwarded-For": "127.0.0.1"},
        {"X-Real-IP": "203.0.113.9", "Forwarded": "for=203.0.113.9"},
    ):
        status = raw_prompt(app, "peer two, again", peer=peer, headers=headers)
        assert status.startswith(TOO_MANY_PROMPTS), (headers, status)
    assert app.counts() == (battles + 2, votes)
    keys = user_keys(app)
    assert keys[-1] == keys[-2]  # the forged header did not change the identity


def test_forwarded_for_from_loopback_is_not_believed_unless_trusted(direct_app: App) -> None:
    app = direct_app
    status = ""
    for i in range(3):  # spend 127.0.0.1's quota (already spent when run after the above)
        status = str(battle(app.client(), f"loopback {i}")[STATUS])
    assert status.startswith(TOO_MANY_PROMPTS)
    client = app.client(headers={"X-Forwarded-For": "203.0.113.7"})
    status = str(battle(client, "a forged address")[STATUS])
    assert status.startswith(TOO_MANY_PROMPTS), status


def test_trusted_proxy_forwarded_addresses_get_separate_quotas(proxied_app: App) -> None:
    app = proxied_app

    def prompts(headers: dict[str, str], n: int) -> list[str]:
        # A new session each time: in one session a second prompt is a follow-up turn.
        return [
            str(battle(app.client(headers=headers), f"{headers} prompt {i}")[STATUS])
            for i in range(n)
        ]

    alice = {"X-Forwarded-For": "203.0.113.10"}
    bob = {"X-Forwarded-For": "203.0.113.20"}
    # Alice: two prompts, then limited -- also in a new session.
    assert all(READY_TEXT in s for s in prompts(alice, 2))
    assert prompts(alice, 1)[0].startswith(TOO_MANY_PROMPTS)
    # The proxy appended its own hop: still Alice (the right-most untrusted address).
    assert prompts({"X-Forwarded-For": "203.0.113.10, 127.0.0.1"}, 1)[0].startswith(
        TOO_MANY_PROMPTS
    )
    # A client-supplied left part cannot impersonate someone else: the right-most
    # untrusted hop is what the proxy saw, here Alice again.
    assert prompts({"X-Forwarded-For": "203.0.113.20, 203.0.113.10"}, 1)[0].startswith(
        TOO_MANY_PROMPTS
    )
    # Bob has his own quota, and is limited after two as well.
    bob_results = prompts(bob, 3)
    assert all(READY_TEXT in s for s in bob_results[:2]), bob_results
    assert bob_results[2].startswith(TOO_MANY_PROMPTS), bob_results
    # A request without the header is the proxy itself: yet another identity.
    assert READY_TEXT in prompts({}, 1)[0]

    keys = user_keys(app)
    assert len(keys) == 5
    assert keys[0] == keys[1] and keys[2] == keys[3] and len(set(keys)) == 3
    # No raw address is ever stored.
    assert not any("203.0.113" in k or "127.0.0.1" in k for k in keys)

    # Votes: one per day per forwarded address.
    carol = app.client(headers={"X-Forwarded-For": "203.0.113.30"})
    assert READY_TEXT in str(battle(carol, "carol one")[STATUS])
    assert vote(carol, "tie").startswith(RECORDED_TEXT)
    assert READY_TEXT in str(battle(carol, "carol two")[STATUS])
    assert vote(carol, "tie").startswith(TOO_MANY_VOTES)
    dave = app.client(headers={"X-Forwarded-For": "203.0.113.40"})
    assert READY_TEXT in str(battle(dave, "dave one")[STATUS])
    assert vote(dave, "bothbad").startswith(RECORDED_TEXT)
    assert sorted(r[0] for r in app.rows("SELECT winner FROM vote")) == ["tie", "tie (bothbad)"]


def test_the_arenas_own_trusted_proxy_rule(proxied_app: App) -> None:
    """127.0.0.3 is trusted by ARENA_TRUSTED_PROXIES only (not by uvicorn's default)."""
    app = proxied_app
    battles = app.counts()[0]

    def prompt(peer: str, forwarded: str | None) -> str:
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        return raw_prompt(app, f"via {peer} for {forwarded}", peer=peer, headers=headers)

    erin, frank = "198.51.100.50", "198.51.100.60"
    assert READY_TEXT in prompt("127.0.0.3", erin)
    assert READY_TEXT in prompt("127.0.0.3", f"{erin}, 127.0.0.3")
    assert prompt("127.0.0.3", erin).startswith(TOO_MANY_PROMPTS)
    assert READY_TEXT in prompt("127.0.0.3", frank)  # a separate quota
    # An untrusted peer claiming to be Frank is itself, not Frank.
    assert READY_TEXT in prompt("127.0.0.4", frank)
    assert READY_TEXT in prompt("127.0.0.4", erin)
    assert prompt("127.0.0.4", "203.0.113.99").startswith(TOO_MANY_PROMPTS)
    keys = user_keys(app)[battles:]
    assert len(keys) == 5
    erin_key, _, frank_key, peer4_key, _ = keys
    assert keys[1] == erin_key and keys[4] == peer4_key
    assert len({erin_key, frank_key, peer4_key}) == 3
