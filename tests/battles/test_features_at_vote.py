"""A vote stores its battle's style features and category tags (issue 14), through the real
vote path (scripted models, real SQLite, the real lingua detector)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from arena import votes as votes_module
from arena.backends.scripted import Script
from arena.features import Tagger, record_for_battle
from arena.store.features import get_battle_features
from arena.store.ops import new_session
from tests.battles.scripted import scripted_arena

MARKDOWN = Script(("# Plan\n\n", "- one\n", "- two\n\n", "**done** and ", "`code`"))
PLAIN = Script(("Just", " a", " short", " answer."))


def test_a_vote_stores_the_battles_features_and_tags(tmp_path: Path) -> None:
    arena = scripted_arena(tmp_path, {"md": MARKDOWN, "plain": PLAIN})
    arena.votes.tagger = Tagger(["English", "German"])
    prompt = "Please fix this function:\n```python\ndef f(x):\n    return x +\n```"

    async def main() -> tuple[str, str]:
        updates = [u async for u in arena.turn(owner="s", user_key="k", prompt=prompt)]
        bid = updates[-1].battle_id
        reveal = await arena.vote(owner="s", user_key="k", battle_id=bid, winner="a")
        await arena.votes.settle()  # features are recorded after the acknowledgement
        return bid, reveal.model_a

    bid, model_a = asyncio.run(main())
    with new_session(arena.engine) as session:
        row = get_battle_features(session=session, battle_id=bid)
    assert row is not None, "the vote stored no features"
    md_side, plain_side = ("a", "b") if model_a == "md" else ("b", "a")
    assert getattr(row, f"header_{md_side}_h1") == 1
    assert getattr(row, f"list_{md_side}_unordered") == 2
    assert getattr(row, f"bold_{md_side}_star") == 1
    assert getattr(row, f"header_{plain_side}_h1") == 0
    assert getattr(row, f"sum_assistant_{md_side}_tokens") == len(MARKDOWN.tokens)
    assert row.tag_coding is True and row.tag_multi_turn is False
    assert row.turns == 1


def test_without_a_tagger_the_vote_stores_no_features(tmp_path: Path) -> None:
    arena = scripted_arena(tmp_path, {"md": MARKDOWN, "plain": PLAIN})

    async def main() -> str:
        updates = [u async for u in arena.turn(owner="s", user_key="k", prompt="hello")]
        await arena.vote(owner="s", user_key="k", battle_id=updates[-1].battle_id, winner="b")
        await arena.votes.settle()
        return updates[-1].battle_id

    bid = asyncio.run(main())
    with new_session(arena.engine) as session:
        assert get_battle_features(session=session, battle_id=bid) is None


def test_the_vote_is_acknowledged_before_its_features_are_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tagging costs about twice the vote's own commit; the voter must not wait for it.
    arena = scripted_arena(tmp_path, {"md": MARKDOWN, "plain": PLAIN})
    arena.votes.tagger = Tagger(["English", "German"])
    release = threading.Event()

    def slow_record(**kwargs: Any) -> Any:
        assert release.wait(30), "the test never released the feature job"
        return record_for_battle(**kwargs)

    monkeypatch.setattr(votes_module, "record_for_battle", slow_record)

    async def main() -> tuple[str, bool, bool]:
        updates = [u async for u in arena.turn(owner="s", user_key="k", prompt="hello there")]
        bid = updates[-1].battle_id
        await arena.vote(owner="s", user_key="k", battle_id=bid, winner="a")
        with new_session(arena.engine) as session:
            stored_at_ack = get_battle_features(session=session, battle_id=bid) is not None
        pending_at_ack = bool(arena.votes._pending)
        release.set()
        await arena.votes.settle()
        return bid, stored_at_ack, pending_at_ack

    bid, stored_at_ack, pending_at_ack = asyncio.run(main())
    assert not stored_at_ack and pending_at_ack
    with new_session(arena.engine) as session:
        assert get_battle_features(session=session, battle_id=bid) is not None
