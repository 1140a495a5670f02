"""The battle lifecycle through ``arena.battles`` alone (no Gradio): real model, real SQLite."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from sqlalchemy import text

from arena import store
from arena.battles import Arena, BattleRefused, Reveal, TurnUpdate

OWNER = "session:one"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def play(arena: Arena, prompt: str = "Say hi.", **kw: Any) -> list[TurnUpdate]:
    kw.setdefault("owner", OWNER)
    kw.setdefault("user_key", arena.user_key_for("10.0.0.1"))
    return [u async for u in arena.turn(prompt=prompt, **kw)]


def db_rows(arena: Arena, sql: str, **params: Any) -> list[Any]:
    with arena.engine.connect() as conn:
        return list(conn.execute(text(sql), params))


def names_in(arena: Arena, obj: object) -> list[str]:
    blob = repr(obj)
    return [n for n in arena.roster.names if n in blob]


@pytest.mark.parametrize("which", ["arena", pytest.param("real_arena", marks=pytest.mark.model)])
def test_full_anonymous_battle_streams_votes_and_reveals(
    which: str, request: pytest.FixtureRequest
) -> None:
    arena: Arena = request.getfixturevalue(which)

    async def main() -> tuple[list[TurnUpdate], Reveal]:
        updates = await play(arena, "Name a colour.")
        reveal = await arena.vote(
            owner=OWNER,
            user_key=arena.user_key_for("10.0.0.1"),
            battle_id=updates[-1].battle_id,
            winner="a",
        )
        return updates, reveal

    updates, reveal = run(main())
    first, last = updates[0], updates[-1]
    assert first.status == "streaming" and not first.votable
    assert last.status == "ready" and last.votable
    assert last.a.done and last.b.done and last.a.text and last.b.text
    # Nothing handed out before the vote names a model.
    assert names_in(arena, updates) == []
    bid = last.battle_id
    assert {reveal.model_a, reveal.model_b} <= {"alpha-greedy", "beta-concise"}
    with store.new_session(arena.engine) as s:
        assert store.battle_model_names(session=s, battle_id=bid) == (
            reveal.model_a,
            reveal.model_b,
        )
        assert store.get_battle(session=s, battle_id=bid).status == "voted"
    votes = db_rows(arena, "SELECT winner, anony FROM vote WHERE battle_id = :b", b=bid)
    assert [(v[0], bool(v[1])) for v in votes] == [("model_a", True)]
    msgs = db_rows(arena, "SELECT turn, side FROM message WHERE battle_id = :b", b=bid)
    assert sorted(msgs) == [(1, "a"), (1, "b"), (1, "user")]
    # The stored user key is the keyed hash, never the address.
    keys = db_rows(arena, "SELECT user_key FROM battle WHERE id = :b", b=bid)
    assert keys[0][0] == arena.user_key_for("10.0.0.1") and "10.0.0.1" not in keys[0][0]


@pytest.mark.parametrize("which", ["arena", pytest.param("real_arena", marks=pytest.mark.model)])
def test_both_sides_stream_concurrently(which: str, request: pytest.FixtureRequest) -> None:
    arena: Arena = request.getfixturevalue(which)
    updates = run(play(arena, "Count from one to ten in words."))
    # Some snapshot shows text on both sides while at least one is still generating.
    assert any(u.a.text and u.b.text and not (u.a.done and u.b.done) for u in updates), [
        (len(u.a.text), len(u.b.text), u.a.done, u.b.done) for u in updates
    ]


def test_vote_before_completion_is_refused(arena: Arena) -> None:
    async def main() -> BattleRefused:
        gen = arena.turn(owner=OWNER, user_key="k", prompt="Tell me a story.")
        first = await gen.__anext__()
        try:
            with pytest.raises(BattleRefused) as info:
                await arena.vote(owner=OWNER, user_key="k", battle_id=first.battle_id, winner="a")
        finally:
            await gen.aclose()
        return info.value

    refused = run(main())
    assert refused.reason == "not_ready"
    assert "wait" in str(refused).lower()
    assert db_rows(arena, "SELECT count(*) FROM vote") == [(0,)]


def test_double_vote_and_foreign_votes_are_refused(arena: Arena) -> None:
    async def main() -> None:
        updates = await play(arena, user_key="k1")
        bid = updates[-1].battle_id
        # Another browser session cannot vote, and is not told the battle exists.
        with pytest.raises(BattleRefused) as foreign:
            await arena.vote(owner="session:other", user_key="k1", battle_id=bid, winner="b")
        assert foreign.value.reason == "not_found"
        # Same session but another voter key: the store refuses; nothing is revealed.
        with pytest.raises(BattleRefused) as other_key:
            await arena.vote(owner=OWNER, user_key="k2", battle_id=bid, winner="b")
        assert other_key.value.reason == "not_found"
        assert names_in(arena, other_key.value) == []
        await arena.vote(owner=OWNER, user_key="k1", battle_id=bid, winner="tie")
        with pytest.raises(BattleRefused) as again:
            await arena.vote(owner=OWNER, user_key="k1", battle_id=bid, winner="a")
        assert again.value.reason == "already_voted"
        with pytest.raises(BattleRefused) as forged:
            await arena.vote(owner=OWNER, user_key="k1", battle_id="no-such-id", winner="a")
        assert forged.value.reason == "not_found"

    run(main())
    assert db_rows(arena, "SELECT winner FROM vote") == [("tie",)]


def test_failed_model_marks_battle_error_and_vote_is_refused(arena: Arena) -> None:
    async def main() -> tuple[list[TurnUpdate], BattleRefused]:
        updates = await play(arena, mode="named", models=("alpha-greedy", "gamma-remote"))
        with pytest.raises(BattleRefused) as info:
            await arena.vote(
                owner=OWNER,
                user_key=arena.user_key_for("10.0.0.1"),
                battle_id=updates[-1].battle_id,
                winner="a",
            )
        return updates, info.value

    updates, refused = run(main())
    last = updates[-1]
    assert last.status == "error" and not last.votable
    assert last.b.error == "This model's server could not be reached."
    assert last.message and "new round" in last.message
    assert refused.reason == "errored"
    row = db_rows(arena, "SELECT status, error_reason FROM battle WHERE id = :b", b=last.battle_id)
    assert row[0][0] == "error" and "unreachable" in row[0][1]
    assert db_rows(arena, "SELECT count(*) FROM vote") == [(0,)]
    # The failure shown to the user does not name the model (the stored reason may).
    assert "gamma" not in repr(last)


def test_follow_up_turns_keep_the_pair_until_the_turn_limit(arena: Arena) -> None:
    async def main() -> list[list[TurnUpdate]]:
        key = arena.user_key_for("10.0.0.1")
        t1 = await play(arena, "Hi.")
        bid = t1[-1].battle_id
        t2 = await play(arena, "And again?", battle_id=bid)
        t3 = await play(arena, "Once more.", battle_id=bid)
        with pytest.raises(BattleRefused) as info:
            await play(arena, "Too many.", battle_id=bid)
        assert info.value.reason == "turn_limit" and "3 turns" in str(info.value)
        await arena.vote(owner=OWNER, user_key=key, battle_id=bid, winner="b")
        return [t1, t2, t3]

    turns = run(main())
    bid = turns[0][-1].battle_id
    assert [t[-1].turn for t in turns] == [1, 2, 3]
    assert {t[-1].battle_id for t in turns} == {bid}
    vote = db_rows(arena, "SELECT turn FROM vote WHERE battle_id = :b", b=bid)
    assert vote == [(3,)]
    assert db_rows(arena, "SELECT count(*) FROM battle") == [(1,)]


@pytest.mark.parametrize(
    ("prompt", "reason", "words"),
    [
        ("", "empty_prompt", "type a prompt"),
        ("   \n ", "empty_prompt", "type a prompt"),
        ("x" * 201, "prompt_too_long", "201 characters; the limit is 200"),
        ("bad \ud800 text", "bad_prompt", "not valid text"),
    ],
)
def test_bad_prompts_are_refused_and_nothing_is_stored(
    arena: Arena, prompt: str, reason: str, words: str
) -> None:
    with pytest.raises(BattleRefused) as info:
        run(play(arena, prompt))
    assert info.value.reason == reason
    assert words in str(info.value).lower()
    assert db_rows(arena, "SELECT count(*) FROM battle") == [(0,)]


def test_stop_mid_stream_abandons_the_battle(arena: Arena) -> None:
    async def main() -> list[TurnUpdate]:
        seen: list[TurnUpdate] = []
        async for u in arena.turn(owner=OWNER, user_key="k", prompt="Write a long poem."):
            seen.append(u)
            if len(seen) == 2:
                await arena.stop(owner=OWNER, user_key="k", battle_id=u.battle_id)
        return seen

    seen = run(main())
    last = seen[-1]
    assert last.status == "abandoned" and not last.votable
    assert "stopped" in (last.message or "").lower()
    status = db_rows(arena, "SELECT status FROM battle WHERE id = :b", b=last.battle_id)
    assert status == [("abandoned",)]

    async def vote() -> None:
        await arena.vote(owner=OWNER, user_key="k", battle_id=last.battle_id, winner="a")

    with pytest.raises(BattleRefused) as info:
        run(vote())
    assert info.value.reason == "errored"


def test_stop_with_wait_returns_after_the_streams_last_update(arena: Arena) -> None:
    # What "New round" relies on: once stop(wait_s=...) returns, the stream has delivered
    # its final update, so the cleared panels cannot be overwritten by it afterwards.
    async def main() -> tuple[list[TurnUpdate], int]:
        seen: list[TurnUpdate] = []
        stopped = asyncio.Event()

        async def consume() -> None:
            async for u in arena.turn(owner=OWNER, user_key="k", prompt="Write a long poem."):
                seen.append(u)
                if len(seen) == 2:
                    stopped.set()

        task = asyncio.create_task(consume())
        await stopped.wait()
        await arena.stop(owner=OWNER, user_key="k", battle_id=seen[0].battle_id, wait_s=10.0)
        seen_at_return = len(seen)
        await task
        return seen, seen_at_return

    seen, seen_at_return = run(main())
    assert seen[-1].status == "abandoned"
    assert seen_at_return == len(seen), "an update arrived after stop() returned"


@pytest.mark.parametrize("withdraw", [False, True])
def test_withdrawing_marks_the_streams_last_update_not_to_be_shown(
    arena: Arena, withdraw: bool
) -> None:
    # Gradio re-sends a stream's last message in full when it ends, which can reach the page
    # after New round cleared it; a withdrawn turn's last update says it must not be shown.
    async def main() -> list[TurnUpdate]:
        seen: list[TurnUpdate] = []
        async for u in arena.turn(owner=OWNER, user_key="k", prompt="Write a long poem."):
            seen.append(u)
            if len(seen) == 3:
                await arena.stop(
                    owner=OWNER, user_key="k", battle_id=u.battle_id, withdraw=withdraw
                )
        return seen

    seen = run(main())
    assert seen[-1].status == "abandoned"
    assert seen[-1].withdrawn is withdraw
    assert not any(u.withdrawn for u in seen[:3])

    # The next turn of another battle starts unwithdrawn.
    async def again() -> TurnUpdate:
        last = None
        async for u in arena.turn(owner=OWNER, user_key="k", prompt="Hi."):
            last = u
        assert last is not None
        return last

    assert run(again()).withdrawn is False


def test_consumer_leaving_mid_stream_abandons_the_battle(arena: Arena) -> None:
    async def main() -> str:
        gen = arena.turn(owner=OWNER, user_key="k", prompt="Write a long poem.")
        first = await gen.__anext__()
        await gen.__anext__()
        await gen.aclose()  # the browser tab closed
        return first.battle_id

    bid = run(main())
    assert db_rows(arena, "SELECT status FROM battle WHERE id = :b", b=bid) == [("abandoned",)]
    # The generation threads notice the stop between two tokens and give their slots back.
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(b.in_flight for b in arena.backends.values()):
        time.sleep(0.05)
    assert [b.in_flight for b in arena.backends.values()] == [0, 0, 0]


def test_regenerate_replaces_the_last_answers_and_logs_both(arena: Arena) -> None:
    async def main() -> tuple[list[TurnUpdate], list[TurnUpdate]]:
        first = await play(arena, "Pick a number.", user_key="k")
        bid = first[-1].battle_id
        again = [u async for u in arena.regenerate(owner=OWNER, user_key="k", battle_id=bid)]
        await arena.vote(owner=OWNER, user_key="k", battle_id=bid, winner="bothbad")
        return first, again

    first, again = run(main())
    assert again[-1].status == "ready" and again[-1].prompt == "Pick a number."
    assert again[-1].turn == 2
    bid = first[-1].battle_id
    users = db_rows(
        arena, "SELECT turn, content FROM message WHERE battle_id = :b AND side = 'user'", b=bid
    )
    assert sorted(users) == [(1, "Pick a number."), (2, "Pick a number.")]
    # Both entries decode greedily, so the regenerated answers repeat the first ones: that
    # tells the voter which entries these are, and the vote is kept but not counted.
    assert db_rows(arena, "SELECT winner, exclusion FROM vote") == [
        ("tie (bothbad)", "regenerate_reveal")
    ]


def test_named_battle_is_stored_as_not_anonymous(arena: Arena) -> None:
    async def main() -> Reveal:
        updates = await play(arena, mode="named", models=("beta-concise", "alpha-greedy"))
        return await arena.vote(
            owner=OWNER,
            user_key=arena.user_key_for("10.0.0.1"),
            battle_id=updates[-1].battle_id,
            winner="b",
        )

    reveal = run(main())
    assert (reveal.model_a, reveal.model_b) == ("beta-concise", "alpha-greedy")
    assert db_rows(arena, "SELECT anony FROM vote") == [(False,)] or db_rows(
        arena, "SELECT anony FROM vote"
    ) == [(0,)]
    with pytest.raises(BattleRefused) as same:
        run(play(arena, mode="named", models=("alpha-greedy", "alpha-greedy")))
    assert same.value.reason == "same_model"
    with pytest.raises(BattleRefused) as unknown:
        run(play(arena, mode="named", models=("alpha-greedy", "nope")))
    assert unknown.value.reason == "unknown_model" and "'nope'" in str(unknown.value)


def test_prompt_and_vote_rate_limits_refuse_with_a_clear_message(arena: Arena) -> None:
    from arena.integrity import RateLimiter

    arena.prompt_limit = RateLimiter(2, 60.0, "prompts")
    arena.vote_limit = RateLimiter(1, 86400.0, "votes")

    async def main() -> None:
        first = await play(arena, "One.", user_key="k")
        await arena.vote(owner=OWNER, user_key="k", battle_id=first[-1].battle_id, winner="a")
        second = await play(arena, "Two.", user_key="k")
        with pytest.raises(BattleRefused) as prompts:
            await play(arena, "Three.", user_key="k")
        assert prompts.value.reason == "rate_limited"
        assert "at most 2 per minute" in str(prompts.value)
        with pytest.raises(BattleRefused) as votes:
            await arena.vote(owner=OWNER, user_key="k", battle_id=second[-1].battle_id, winner="a")
        assert votes.value.reason == "rate_limited" and "per day" in str(votes.value)
        await play(arena, "Another voter.", user_key="other")  # limits are per user key

    run(main())
    assert db_rows(arena, "SELECT count(*) FROM vote") == [(1,)]


def test_the_daily_vote_limit_holds_across_replicas_and_restarts(arena: Arena) -> None:
    """A second Arena on the same database (another replica, or the app after a restart)
    starts with an empty in-memory window; the votes in the database still count."""
    from arena.integrity import RateLimiter

    replica = Arena.open(arena.settings, roster=arena.roster)
    replica.policy = arena.policy
    replica.backends = arena.backends  # the models are not what is tested here
    for a in (arena, replica):
        a.vote_limit = RateLimiter(2, 86400.0, "votes")
    key = arena.user_key_for("10.0.0.9")

    async def vote(a: Arena, user_key: str) -> str:
        updates = await play(a, "Hello.", user_key=user_key)
        bid = updates[-1].battle_id
        await a.vote(owner=OWNER, user_key=user_key, battle_id=bid, winner="tie")
        return bid

    async def main() -> None:
        await vote(arena, key)
        await vote(arena, key)
        with pytest.raises(BattleRefused) as refused:
            await vote(replica, key)
        assert refused.value.reason == "rate_limited"
        assert "at most 2 per day" in str(refused.value)
        assert "Try again in 24 hours" in str(refused.value)
        await vote(replica, arena.user_key_for("10.0.0.10"))  # per voter

    try:
        run(main())
    finally:
        replica.engine.dispose()
    assert db_rows(arena, "SELECT judge, count(*) FROM vote GROUP BY judge ORDER BY 2") == [
        (arena.user_key_for("10.0.0.10"), 1),
        (key, 2),
    ]


def test_identity_leak_and_duplicate_prompt_votes_are_kept_but_excluded(arena: Arena) -> None:
    from arena.integrity import LeakDetector

    async def vote_on(prompt: str, key: str) -> str:
        updates = await play(arena, prompt, user_key=key)
        bid = updates[-1].battle_id
        await arena.vote(owner=OWNER, user_key=key, battle_id=bid, winner="a")
        return bid

    # Pretend the answers name a model: both test models decode greedily, so the same prompt
    # gets the same answers again, and every word of them counts as a "model name".
    probe = run(play(arena, "Say the word 'hello'.", user_key="probe"))[-1]
    words = re.findall(r"[a-z]{3,}", (probe.a.text + " " + probe.b.text).lower())
    assert words, probe
    arena.leaks = LeakDetector(tuple(sorted(set(words))))
    leaked = run(vote_on("Say the word 'hello'.", "k1"))
    arena.leaks = LeakDetector(())
    arena.settings = arena.settings.with_overrides(duplicate_prompt_cap=1)
    counted = run(vote_on("Same prompt.", "k2"))
    duplicate = run(vote_on("Same prompt.", "k3"))
    rows = dict(db_rows(arena, "SELECT battle_id, exclusion FROM vote"))
    assert rows == {leaked: "identity_leak", counted: None, duplicate: "duplicate_prompt"}
