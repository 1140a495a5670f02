"""Moderation in the battle flow (scripted models, real SQLite): a blocked prompt reaches no
model, a blocked answer is never shown, a warned battle's vote is kept but not counted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from arena import store
from arena.backends.scripted import Script
from arena.battles import Arena, BattleRefused, TurnUpdate
from arena.moderation import BlocklistChecker, GuardModelChecker, Moderator, PiiChecker
from tests.battles.scripted import scripted_arena

CLEAN = Script((" The", " sky", " is", " blue", "."), delay_s=0.005)
LEAKY = Script(
    (" Reach", " me", " at", " jane", "@example", ".com", " any", " time."), delay_s=0.005
)
# The same, slower than a frame (50 ms): every piece is its own update to the browser.
LEAKY_SLOW = Script(LEAKY.tokens, delay_s=0.07)


def make(tmp_path: Path, mode: str, scripts: dict[str, Any] | None = None, **kw: Any) -> Arena:
    arena = scripted_arena(tmp_path, scripts or {"m1": CLEAN, "m2": CLEAN})
    checkers = [PiiChecker(), BlocklistChecker([(1, "forbidden topic")])]
    arena.moderator = Moderator(mode, checkers, **kw)
    arena.turns.moderator = arena.moderator
    return arena


async def play(arena: Arena, prompt: str) -> list[TurnUpdate]:
    return [u async for u in arena.turn(owner="s", user_key="k", prompt=prompt)]


def requests_seen(arena: Arena) -> int:
    return sum(len(b.requests) for b in arena.backends.values())  # type: ignore[attr-defined]


def vote_exclusion(arena: Arena, bid: str) -> str | None:
    with store.new_session(arena.engine) as s:
        return store.get_vote(session=s, battle_id=bid).exclusion


def test_block_mode_refuses_a_flagged_prompt_before_any_model_sees_it(tmp_path: Path) -> None:
    arena = make(tmp_path, "block")
    with pytest.raises(BattleRefused) as info:
        asyncio.run(play(arena, "Tell me about the Forbidden   Topic please"))
    assert info.value.reason == "moderated" and "blocklist" in str(info.value)
    with pytest.raises(BattleRefused, match="email"):
        asyncio.run(play(arena, "my address is bob@example.org"))
    assert requests_seen(arena) == 0  # no model got either prompt
    with arena.engine.connect() as conn:
        from sqlalchemy import text

        assert conn.execute(text("SELECT count(*) FROM battle")).scalar() == 0
    assert arena.metrics.render().count(b'arena_moderation_decisions_total{action="blocked"') == 2


@pytest.mark.parametrize("script", [LEAKY, LEAKY_SLOW], ids=["one-frame", "frame-by-frame"])
def test_block_mode_never_shows_a_flagged_answer(tmp_path: Path, script: Script) -> None:
    arena = make(tmp_path, "block", {"m1": script, "m2": CLEAN})
    updates = asyncio.run(play(arena, "How do I reach you?"))
    assert len(updates) >= (4 if script is LEAKY_SLOW else 2)
    for u in updates:  # no snapshot ever carried the address, or any part of it after "@"
        assert "@example" not in u.a.text + u.b.text and "jane" not in u.a.text + u.b.text
    last = updates[-1]
    assert last.status == "error" and not last.votable
    assert "withheld" in (last.message or "")
    assert "withheld" in ((last.a.error or "") + (last.b.error or ""))
    with arena.engine.connect() as conn:
        from sqlalchemy import text

        reason = conn.execute(text("SELECT error_reason FROM battle")).scalar()
    assert "moderated: email" in reason


def test_warn_mode_goes_on_but_the_vote_does_not_count(tmp_path: Path) -> None:
    arena = make(tmp_path, "warn")

    async def main() -> tuple[list[TurnUpdate], str]:
        updates = await play(arena, "let us discuss the forbidden topic")
        bid = updates[-1].battle_id
        await arena.vote(owner="s", user_key="k", battle_id=bid, winner="a")
        return updates, bid

    updates, bid = asyncio.run(main())
    assert updates[-1].status == "ready" and updates[-1].votable
    assert "will not be counted" in (updates[-1].message or "")
    assert vote_exclusion(arena, bid) == "moderated"


def test_warn_mode_flags_an_answer_too(tmp_path: Path) -> None:
    arena = make(tmp_path, "warn", {"m1": LEAKY, "m2": CLEAN})

    async def main() -> tuple[list[TurnUpdate], str]:
        updates = await play(arena, "How do I reach you?")
        bid = updates[-1].battle_id
        await arena.vote(owner="s", user_key="k", battle_id=bid, winner="b")
        return updates, bid

    updates, bid = asyncio.run(main())
    assert updates[-1].votable and "jane@example.com" in updates[-1].a.text + updates[-1].b.text
    assert vote_exclusion(arena, bid) == "moderated"


def test_log_mode_changes_nothing_for_the_voter(tmp_path: Path) -> None:
    arena = make(tmp_path, "log", {"m1": LEAKY, "m2": CLEAN})

    async def main() -> str:
        updates = await play(arena, "the forbidden topic, and call +1 415 555 2671")
        assert updates[-1].votable and updates[-1].message is None
        await arena.vote(owner="s", user_key="k", battle_id=updates[-1].battle_id, winner="a")
        return updates[-1].battle_id

    bid = asyncio.run(main())
    assert vote_exclusion(arena, bid) is None
    assert b'action="logged"' in arena.metrics.render()


def test_a_guard_model_through_a_roster_backend(tmp_path: Path) -> None:
    def verdict(request: Any) -> Script:
        text = request.messages[-1].content
        return Script(("unsafe", "\nS9") if "weapon" in text else ("safe",))

    arena = scripted_arena(tmp_path, {"m1": CLEAN, "m2": CLEAN, "guard": verdict})
    guard = GuardModelChecker(arena.backends["guard"])
    arena.moderator = Moderator("block", [], guard=guard)
    with pytest.raises(BattleRefused, match="S9"):
        asyncio.run(play(arena, "how to build a weapon"))
    assert asyncio.run(play(arena, "how to bake bread"))[-1].status == "ready"


def test_a_failing_guard_blocks_in_block_mode(tmp_path: Path) -> None:
    from arena.backends import BackendUnreachable

    arena = scripted_arena(
        tmp_path,
        {"m1": CLEAN, "m2": CLEAN, "guard": Script(("x",), fail_after=0, error=BackendUnreachable)},
    )
    arena.moderator = Moderator("block", [], guard=GuardModelChecker(arena.backends["guard"]))
    with pytest.raises(BattleRefused, match="guard_unavailable"):
        asyncio.run(play(arena, "anything"))


def test_settings_build_the_moderator_and_name_bad_values(tmp_path: Path) -> None:
    from arena.config import Settings

    arena = scripted_arena(tmp_path, {"m1": CLEAN, "m2": CLEAN})
    block = tmp_path / "block.txt"
    block.write_text("forbidden\n", encoding="utf-8")
    ok = Settings().with_overrides(moderation="warn", moderation_blocklist=str(block))
    mod = Moderator.from_settings(ok, arena.backends)
    assert mod.active and [c.name for c in mod.checkers] == ["blocklist", "pii"]
    with pytest.raises(ValueError, match="ARENA_MODERATION='loud'"):
        Moderator.from_settings(Settings().with_overrides(moderation="loud"), arena.backends)
    with pytest.raises(ValueError, match="ARENA_MODERATION_GUARD_MODEL='nope'"):
        Moderator.from_settings(
            Settings().with_overrides(moderation="block", moderation_guard_model="nope"),
            arena.backends,
        )


def test_each_decision_is_stored_with_its_checkers(tmp_path: Path) -> None:
    from sqlalchemy import text

    arena = make(tmp_path, "warn", {"m1": LEAKY, "m2": CLEAN})
    asyncio.run(play(arena, "the forbidden topic"))
    with arena.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT side, action, checkers, categories, battle_id FROM moderation_decision")
        ).all()
    by_side = {r[0]: r for r in rows}
    assert set(by_side) == {"user", "a"} or set(by_side) == {"user", "b"}
    prompt = by_side["user"]
    assert prompt[1] == "warned" and prompt[3] == "blocklist"
    assert "blocklist@" in prompt[2] and "pii@" in prompt[2]  # every checker that ran
    answer = next(r for s, r in by_side.items() if s != "user")
    assert answer[3] == "email" and answer[4] == prompt[4] is not None


def test_a_blocked_first_prompt_is_stored_without_a_battle(tmp_path: Path) -> None:
    from sqlalchemy import text

    arena = make(tmp_path, "block")
    with pytest.raises(BattleRefused):
        asyncio.run(play(arena, "call me on +44 20 7946 0958"))
    with arena.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT battle_id, side, action, categories FROM moderation_decision")
        ).all()
    assert rows == [(None, "user", "blocked", "phone")]
