"""Voters are browsers, addresses are a ceiling (issue 18): many voters behind one address
each keep their own budgets and judge key, and the address's ceiling holds over all of them,
in memory and in the database (another replica, or the app after a restart)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from arena.battles import Arena
from arena.integrity import RateLimiter
from arena.lifecycle import BattleRefused

OWNER = "session:voters"


async def play(arena: Arena, prompt: str, *, voter: str, address: str) -> str:
    """One battle from browser ``voter`` at ``address``; returns its id."""
    updates = [
        u
        async for u in arena.turn(
            owner=f"{OWNER}:{voter}",
            user_key=arena.voter_key_for(voter),
            address_key=arena.user_key_for(address),
            prompt=prompt,
        )
    ]
    return updates[-1].battle_id


async def vote(arena: Arena, bid: str, *, voter: str) -> None:
    await arena.vote(
        owner=f"{OWNER}:{voter}", user_key=arena.voter_key_for(voter), battle_id=bid, winner="a"
    )


def rows(arena: Arena, sql: str) -> list[Any]:
    with arena.engine.connect() as conn:
        return list(conn.execute(text(sql)))


def test_voters_behind_one_address_are_separate_judges_with_their_own_budgets(
    arena: Arena,
) -> None:
    arena.prompt_limit = RateLimiter(2, 60.0, "prompts")
    arena.address_prompt_limit = RateLimiter(7, 60.0, "prompts from your network address")

    async def main() -> None:
        for voter in ("v1", "v2", "v3"):
            for i in range(2):  # each at its own limit, none refused
                bid = await play(arena, f"{voter} question {i}", voter=voter, address="10.1.1.1")
                await vote(arena, bid, voter=voter)
        with pytest.raises(BattleRefused) as own:
            await play(arena, "one more", voter="v1", address="10.1.1.1")
        assert "at most 2 per minute" in str(own.value)

    asyncio.run(main())
    judges = rows(arena, "SELECT judge, count(*) FROM vote GROUP BY judge")
    assert sorted(n for _, n in judges) == [2, 2, 2]
    assert {j for j, _ in judges} == {arena.voter_key_for(v) for v in ("v1", "v2", "v3")}
    # One address on every battle, and it is not any voter's key.
    addresses = rows(arena, "SELECT DISTINCT address_key FROM battle")
    assert addresses == [(arena.user_key_for("10.1.1.1"),)]
    assert "10.1.1.1" not in repr(rows(arena, "SELECT * FROM battle"))  # only keyed hashes


def test_the_address_ceiling_holds_over_its_voters_and_across_replicas(arena: Arena) -> None:
    arena.prompt_limit = RateLimiter(0, 60.0, "prompts")
    replica = Arena.open(arena.settings, roster=arena.roster)
    replica.policy = arena.policy
    replica.backends = arena.backends
    for a in (arena, replica):
        a.address_prompt_limit = RateLimiter(3, 60.0, "prompts from your network address")

    async def main() -> None:
        await play(arena, "first", voter="a1", address="192.0.2.7")
        await play(arena, "second", voter="a2", address="192.0.2.7")
        await play(arena, "third", voter="a3", address="192.0.2.7")
        # A new browser (a cleared cookie) on the other replica: the address is still full.
        with pytest.raises(BattleRefused) as full:
            await play(replica, "fourth", voter="a4", address="192.0.2.7")
        assert full.value.reason == "rate_limited"
        assert "prompts from your network address: at most 3 per minute" in str(full.value)
        # Another address is not affected.
        await play(replica, "elsewhere", voter="a4", address="192.0.2.8")

    try:
        asyncio.run(main())
    finally:
        replica.engine.dispose()
    assert rows(arena, "SELECT count(*) FROM battle") == [(4,)]


def test_the_daily_vote_ceiling_per_address_holds_across_replicas(arena: Arena) -> None:
    replica = Arena.open(arena.settings, roster=arena.roster)
    replica.policy = arena.policy
    replica.backends = arena.backends
    for a in (arena, replica):
        a.votes.address_vote_limit = RateLimiter(2, 86400.0, "votes from your network address")

    async def main() -> None:
        for voter in ("b1", "b2"):
            await vote(
                arena,
                await play(arena, f"from {voter}", voter=voter, address="10.9.9.9"),
                voter=voter,
            )
        bid = await play(replica, "from b3", voter="b3", address="10.9.9.9")
        with pytest.raises(BattleRefused) as full:
            await vote(replica, bid, voter="b3")
        assert "votes from your network address: at most 2 per day" in str(full.value)
        assert "Try again in 24 hours" in str(full.value)
        other = await play(replica, "b3 elsewhere", voter="b3", address="10.9.9.10")
        await vote(replica, other, voter="b3")  # the voter's own budget is untouched

    try:
        asyncio.run(main())
    finally:
        replica.engine.dispose()
    assert rows(arena, "SELECT count(*) FROM vote") == [(3,)]


def test_the_rigging_tests_see_the_address_behind_the_voters(arena: Arena) -> None:
    """Clearing the cookie gives a new voter, but the audit and --exclude-flagged still pool
    the voters of one address (the address group signal comes from battle.address_key)."""
    from arena import store

    async def main() -> None:
        for voter, address in (("c1", "10.7.0.1"), ("c2", "10.7.0.1"), ("c3", "10.7.0.1")):
            await vote(
                arena, await play(arena, f"{voter} asks", voter=voter, address=address), voter=voter
            )
        await vote(arena, await play(arena, "c4 asks", voter="c4", address="10.7.0.2"), voter="c4")

    asyncio.run(main())
    tables = store.audit_tables(engine=arena.engine)
    by_judge = {v[0]: v[7] for v in tables.votes}
    assert len(by_judge) == 4 and len(set(by_judge.values())) == 2
    assert by_judge[arena.voter_key_for("c1")] == arena.user_key_for("10.7.0.1")
    battles = store.battles_for_ratings(engine=arena.engine, with_clusters=True)
    judge, address = battles.clusters["judge"], battles.clusters["address_hash"]
    assert len(set(judge.tolist())) == 4 and len(set(address.tolist())) == 2
    # The three voters of one address share one address code.
    first_three = {int(address[i]) for i in range(3)}
    assert len(first_three) == 1 and int(address[3]) not in first_three
