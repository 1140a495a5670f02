"""One client must not stall the arena (issue 11, part 1), and a live battle belongs to its
voter as well as its session (part 5).  Scripted backends, real SQLite, no model."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from arena.backends import BackendBusy, BackendTimeout, GenerationRequest, collect
from arena.backends.base import SlotLimiter
from arena.backends.scripted import Script
from arena.battles import Arena, BattleRefused, TurnUpdate
from tests.battles.scripted import scripted_arena

SLOW = Script(tuple(f" w{i}" for i in range(20)), delay_s=0.05)  # about 1 s a reply


async def play(
    arena: Arena, owner: str, key: str, prompt: str = "hi", **kw: Any
) -> list[TurnUpdate]:
    return [u async for u in arena.turn(owner=owner, user_key=key, prompt=prompt, **kw)]


async def until(condition: Any, timeout_s: float = 5.0) -> None:
    """Wait (yielding to the loop) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


def test_slot_limiter_serves_a_new_client_before_a_backlog() -> None:
    async def main() -> list[str]:
        slots = SlotLimiter(1)
        order: list[str] = []
        await slots.acquire("attacker")

        async def want(client: str) -> None:
            await slots.acquire(client)
            order.append(client)

        backlog = [asyncio.create_task(want("attacker")) for _ in range(5)]
        await until(lambda: slots.waiting == 5)
        victim = asyncio.create_task(want("victim"))
        await until(lambda: slots.waiting == 6)
        slots.release("attacker")  # the first freed slot goes to the victim, not the backlog
        for served in range(1, 7):
            await until(lambda n=served: len(order) == n)
            slots.release(order[-1])
        await asyncio.gather(victim, *backlog)
        assert slots.in_use == 0
        return order

    order = asyncio.run(main())
    assert order[0] == "victim"
    assert order.count("attacker") == 5


def test_slot_limiter_round_robins_two_backlogs() -> None:
    async def main() -> list[str]:
        slots = SlotLimiter(2)
        order: list[str] = []
        await slots.acquire("x")
        await slots.acquire("x")

        async def want(client: str) -> None:
            await slots.acquire(client)
            order.append(client)
            await asyncio.sleep(0.02)
            slots.release(client)

        tasks = [asyncio.create_task(want("x")) for _ in range(4)]
        await until(lambda: slots.waiting == 4)
        tasks += [asyncio.create_task(want("y")) for _ in range(4)]
        await until(lambda: slots.waiting == 8)
        slots.release("x")
        slots.release("x")
        await asyncio.gather(*tasks)
        return order

    order = asyncio.run(main())
    # Whoever holds fewer slots goes first, so y's requests are interleaved with x's backlog
    # instead of waiting behind all four of them.
    assert "y" in order[:2] and order[:4].count("y") >= 2


def test_reply_deadline_starts_when_generation_starts(tmp_path: Path) -> None:
    # Each reply takes ~0.6 s and may take 1 s; the second request waits ~0.6 s for the only
    # slot.  Counting the wait (0.6 + 0.6 > 1 s) timed it out before the fix.
    arena = scripted_arena(
        tmp_path,
        {"m1": Script(("a",) * 6, delay_s=0.1), "m2": Script()},
        max_concurrency=1,
        generation_timeout_s=1.0,
    )
    backend = arena.backends["m1"]

    async def main() -> list[Any]:
        reqs = [GenerationRequest.from_prompt("hi") for _ in range(2)]
        return await asyncio.gather(*(collect(backend, r) for r in reqs), return_exceptions=True)

    first, second = asyncio.run(main())
    assert not isinstance(first, BaseException) and not isinstance(second, BaseException)
    assert second.stats.queued_s > 0.3
    assert second.stats.latency_s > 1.0  # longer than the timeout in all, and still fine


def test_a_slow_slot_is_refused_as_busy_with_a_retry_hint(tmp_path: Path) -> None:
    arena = scripted_arena(
        tmp_path,
        {"m1": Script(("a",) * 30, delay_s=0.05), "m2": Script()},
        max_concurrency=1,
        slot_wait_s=0.3,
    )
    backend = arena.backends["m1"]

    async def main() -> tuple[Any, Any, float]:
        first = asyncio.create_task(collect(backend, GenerationRequest.from_prompt("a")))
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        try:
            await collect(backend, GenerationRequest.from_prompt("b"))
        except BackendBusy as exc:
            waited = time.monotonic() - t0
            return exc, await first, waited
        raise AssertionError("the second request was not refused")

    exc, first, waited = asyncio.run(main())
    assert waited < 1.2  # refused after the bounded wait, not after the reply's timeout
    assert exc.kind == "busy" and exc.retry_after_s >= 5
    assert first.stats.completion_tokens == 30


def test_a_full_queue_is_refused_at_once(tmp_path: Path) -> None:
    arena = scripted_arena(
        tmp_path, {"m1": SLOW, "m2": Script()}, max_concurrency=1, max_queued=2, slot_wait_s=30
    )
    backend = arena.backends["m1"]

    async def main() -> list[Any]:
        tasks = [
            asyncio.create_task(collect(backend, GenerationRequest.from_prompt(str(i))))
            for i in range(4)
        ]
        done, _ = await asyncio.wait(tasks, timeout=0.5)
        refused = [t.exception() for t in done]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return refused

    refused = asyncio.run(main())
    # one generating, two waiting, the fourth refused without waiting
    assert len(refused) == 1 and isinstance(refused[0], BackendBusy)


def test_one_flooding_client_cannot_stall_another(tmp_path: Path) -> None:
    """One client tries 20 battles at once; a second client's battle still completes."""
    arena = scripted_arena(tmp_path, {"m1": SLOW, "m2": SLOW}, max_concurrency=2)

    async def attacker_battle(i: int) -> str:
        try:
            updates = await play(arena, f"session:atk{i}", "attacker", f"flood {i}")
        except BattleRefused as exc:
            return exc.reason
        return updates[-1].status

    async def main() -> tuple[list[str], list[TurnUpdate], float]:
        flood = [asyncio.create_task(attacker_battle(i)) for i in range(20)]
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        victim = await play(arena, "session:victim", "victim", "my question")
        took = time.monotonic() - t0
        return await asyncio.gather(*flood), victim, took

    outcomes, victim, took = asyncio.run(main())
    assert victim[-1].status == "ready" and victim[-1].a.text and victim[-1].b.text
    # The cap (2 battles being answered per voter) refused the other 18 at once ...
    assert outcomes.count("too_many_live") == 18
    # ... and the two it let in completed too.
    assert outcomes.count("ready") == 2
    assert took < 10


def test_the_cap_frees_up_when_a_battle_ends(tmp_path: Path) -> None:
    arena = scripted_arena(tmp_path, {"m1": Script(), "m2": Script()}, max_live_battles=1)

    async def main() -> None:
        for i in range(3):  # one after another is fine
            updates = await play(arena, f"session:{i}", "k", f"q{i}")
            assert updates[-1].status == "ready"

    asyncio.run(main())


def test_the_address_cap_holds_across_voter_keys(tmp_path: Path) -> None:
    arena = scripted_arena(
        tmp_path, {"m1": SLOW, "m2": SLOW}, max_live_battles=5, max_live_battles_per_address=2
    )

    async def one(i: int) -> str:
        try:
            u = await play(arena, f"session:{i}", f"voter{i}", f"q{i}", address_key="office-nat")
        except BattleRefused as exc:
            return exc.reason
        return u[-1].status

    async def main() -> list[str]:
        return await asyncio.gather(*(one(i) for i in range(4)))

    outcomes = asyncio.run(main())
    assert sorted(outcomes) == ["ready", "ready", "too_many_live", "too_many_live"]


def test_busy_models_end_the_battle_with_a_clear_message(tmp_path: Path) -> None:
    arena = scripted_arena(
        tmp_path,
        {"m1": SLOW, "m2": SLOW},
        max_concurrency=1,
        slot_wait_s=0.2,
        max_live_battles=0,
        max_live_battles_per_address=0,
    )

    async def main() -> list[list[TurnUpdate]]:
        return await asyncio.gather(*(play(arena, f"s{i}", f"k{i}", f"q{i}") for i in range(3)))

    results = asyncio.run(main())
    busy = [r[-1] for r in results if r[-1].status == "error"]
    assert busy, "with one slot per model and a 0.2 s wait, some battle must be refused"
    for last in busy:
        assert last.message is not None and "busy" in last.message and " s." in last.message
        assert not last.votable


def test_a_session_hash_alone_cannot_act_on_another_voters_battle(tmp_path: Path) -> None:
    arena = scripted_arena(tmp_path, {"m1": Script(), "m2": Script()})
    owner = "session:victim"

    async def main() -> None:
        updates = await play(arena, owner, "victim-key", "hello")
        bid = updates[-1].battle_id
        with pytest.raises(BattleRefused) as follow_up:
            await play(arena, owner, "thief-key", "more", battle_id=bid)
        assert follow_up.value.reason == "not_found"
        with pytest.raises(BattleRefused):
            async for _ in arena.regenerate(owner=owner, user_key="thief-key", battle_id=bid):
                pass
        with pytest.raises(BattleRefused):
            await arena.stop(owner=owner, user_key="thief-key", battle_id=bid)
        with pytest.raises(BattleRefused):
            await arena.vote(owner=owner, user_key="thief-key", battle_id=bid, winner="a")
        # The battle is untouched: its owner can still continue and vote.
        more = await play(arena, owner, "victim-key", "more", battle_id=bid)
        assert more[-1].status == "ready" and more[-1].turn == 2
        reveal = await arena.vote(owner=owner, user_key="victim-key", battle_id=bid, winner="a")
        assert reveal.battle_id == bid

    asyncio.run(main())


def test_busy_is_a_backend_error_with_its_own_kind() -> None:
    assert BackendBusy.kind == "busy" and BackendTimeout.kind == "timeout"


def _varied(seed: int) -> Any:
    """A sampling model: a different answer on every call."""
    import random

    rng = random.Random(seed)
    words = [
        "river",
        "stone",
        "lamp",
        "orbit",
        "violet",
        "quartz",
        "maple",
        "ember",
        "cobalt",
        "harbor",
    ]
    return lambda request: Script(tuple(f" {rng.choice(words)}" for _ in range(12)))


def test_regenerate_that_repeats_a_side_excludes_the_vote(tmp_path: Path) -> None:
    # One entry decodes "greedily" (same text every time), the other samples (new text every time).
    arena = scripted_arena(
        tmp_path,
        {"fixed-entry": Script(("The same answer", " every time.")), "hot-entry": _varied(1)},
    )

    async def main() -> tuple[str, list[TurnUpdate]]:
        first = await play(arena, "s", "k", "Tell me something.")
        bid = first[-1].battle_id
        again = [u async for u in arena.regenerate(owner="s", user_key="k", battle_id=bid)]
        await arena.vote(owner="s", user_key="k", battle_id=bid, winner="a")
        return bid, again

    bid, again = asyncio.run(main())
    assert again[-1].status == "ready"
    from arena import store

    with store.new_session(arena.engine) as session:
        vote = store.get_vote(session=session, battle_id=bid)
    assert vote is not None and vote.exclusion == "regenerate_reveal"


def test_regenerate_with_fresh_answers_on_both_sides_still_counts(tmp_path: Path) -> None:
    arena = scripted_arena(tmp_path, {"m1": _varied(2), "m2": _varied(3)})

    async def main() -> str:
        first = await play(arena, "s", "k", "Tell me something.")
        bid = first[-1].battle_id
        async for _ in arena.regenerate(owner="s", user_key="k", battle_id=bid):
            pass
        await arena.vote(owner="s", user_key="k", battle_id=bid, winner="b")
        return bid

    bid = asyncio.run(main())
    from arena import store

    with store.new_session(arena.engine) as session:
        vote = store.get_vote(session=session, battle_id=bid)
    assert vote is not None and vote.exclusion is None
