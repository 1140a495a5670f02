"""Terms of use must be accepted before prompting or voting; vote reasons are stored
(issue 17).  Scripted models, real SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from arena.backends.scripted import Script
from arena.battles import Arena, BattleRefused
from arena.consent import Terms, TermsError
from tests.battles.scripted import scripted_arena

TERMS = Terms.from_text("# Terms\n\nBe kind. Your prompts may be published.")


def arena_with_terms(tmp_path: Path) -> Arena:
    arena = scripted_arena(tmp_path, {"m1": Script(), "m2": Script()})
    arena.terms = TERMS
    return arena


def test_prompts_and_votes_need_the_current_terms(tmp_path: Path) -> None:
    arena = arena_with_terms(tmp_path)

    async def main() -> str:
        for consent in (None, "sha256:0000000000000000"):  # never accepted; an old version
            with pytest.raises(BattleRefused) as info:
                async for _ in arena.turn(owner="s", user_key="k", prompt="hi", consent=consent):
                    pass
            assert info.value.reason == "no_consent" and "terms of use" in str(info.value)
        updates = [
            u async for u in arena.turn(owner="s", user_key="k", prompt="hi", consent=TERMS.version)
        ]
        bid = updates[-1].battle_id
        with pytest.raises(BattleRefused, match="terms of use"):
            await arena.vote(owner="s", user_key="k", battle_id=bid, winner="a")
        await arena.vote(owner="s", user_key="k", battle_id=bid, winner="a", consent=TERMS.version)
        return bid

    bid = asyncio.run(main())
    with arena.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM battle")).scalar() == 1
        stored = conn.execute(text("SELECT consent_version FROM battle WHERE id = :b"), {"b": bid})
        assert stored.scalar() == TERMS.version


def test_a_changed_file_is_a_new_version(tmp_path: Path) -> None:
    path = tmp_path / "terms.md"
    path.write_text("v1", encoding="utf-8")
    first = Terms.load(path)
    path.write_text("v2", encoding="utf-8")
    assert Terms.load(path).version != first.version
    path.write_text("  \n", encoding="utf-8")
    with pytest.raises(TermsError, match="empty"):
        Terms.load(path)
    with pytest.raises(TermsError, match="cannot read"):
        Terms.load(tmp_path / "missing.md")


def test_without_terms_nothing_is_asked(tmp_path: Path) -> None:
    arena = scripted_arena(tmp_path, {"m1": Script(), "m2": Script()})

    async def main() -> None:
        updates = [u async for u in arena.turn(owner="s", user_key="k", prompt="hi")]
        await arena.vote(owner="s", user_key="k", battle_id=updates[-1].battle_id, winner="b")

    asyncio.run(main())


def test_vote_reasons_are_stored_for_the_voters_own_vote(tmp_path: Path) -> None:
    arena = scripted_arena(tmp_path, {"m1": Script(), "m2": Script()})
    assert "More accurate" in arena.reasons

    async def main() -> str:
        updates = [u async for u in arena.turn(owner="s", user_key="k", prompt="hi")]
        bid = updates[-1].battle_id
        with pytest.raises(BattleRefused):  # not voted yet
            await arena.add_reasons(owner="s", user_key="k", battle_id=bid, reasons=["Safer"])
        await arena.vote(owner="s", user_key="k", battle_id=bid, winner="a")
        with pytest.raises(BattleRefused, match="Unknown reason 'Funnier'"):
            await arena.add_reasons(owner="s", user_key="k", battle_id=bid, reasons=["Funnier"])
        with pytest.raises(BattleRefused):  # someone else's battle
            await arena.add_reasons(owner="s", user_key="x", battle_id=bid, reasons=["Safer"])
        stored = await arena.add_reasons(
            owner="s", user_key="k", battle_id=bid, reasons=["Safer", "More accurate", "Safer"]
        )
        assert stored == ["More accurate", "Safer"]
        again = await arena.add_reasons(owner="s", user_key="k", battle_id=bid, reasons=["Safer"])
        assert again == ["More accurate", "Safer"]  # idempotent
        return bid

    bid = asyncio.run(main())
    with arena.engine.connect() as conn:
        rows = conn.execute(text("SELECT reason FROM vote_reason WHERE battle_id = :b"), {"b": bid})
        assert sorted(r[0] for r in rows) == ["More accurate", "Safer"]
