"""Compute a stored battle's style counts and tags, and store them.

``record_for_battle`` is what the vote path calls once a vote is committed;
``backfill_style`` and ``retag`` are the batch forms behind ``arena db backfill-style`` and
``arena db retag``.  Everything is computed from the stored messages, so re-running gives the
same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from arena.features.style import StyleCounts, count_markdown, estimate_tokens
from arena.features.tags import Tagger, Tags
from arena.store import list_messages, new_session
from arena.store.features import (
    battles_to_retag,
    battles_without_features,
    get_battle_features,
    save_battle_features,
)
from arena.store.models import BattleFeatures, Message

__all__ = ["backfill_style", "compute_features", "record_for_battle", "retag"]

Progress = Callable[[int, int], None]


def compute_features(messages: Sequence[Message], tagger: Tagger) -> dict[str, Any]:
    """The ``battle_features`` column values of a battle, from its messages.

    Parameters
    ----------
    messages
        The battle's messages (any order).
    tagger
        The category tagger.

    Returns
    -------
    dict
        Column values for :func:`arena.store.features.save_battle_features`.

    Raises
    ------
    ValueError
        A battle without answers on both sides.
    """
    by_side: dict[str, list[Message]] = {"user": [], "a": [], "b": []}
    for msg in sorted(messages, key=lambda m: m.turn):
        by_side[msg.side].append(msg)
    if not by_side["a"] or not by_side["b"]:
        raise ValueError("the battle has no answers on both sides")
    style: dict[str, StyleCounts] = {}
    tokens: dict[str, int] = {}
    for side in ("a", "b"):
        style[side] = sum((count_markdown(m.content) for m in by_side[side]), StyleCounts())
        # The backend's own count; a backend that reports none gets the estimate.
        tokens[side] = sum(
            m.token_count if m.token_count is not None else estimate_tokens(m.content)
            for m in by_side[side]
        )
    prompts = [m.content for m in by_side["user"]]
    user_tokens = sum(
        m.token_count if m.token_count is not None else estimate_tokens(m.content)
        for m in by_side["user"]
    )
    tags = tagger.tag(
        prompts,
        [m.content for m in by_side["a"]],
        [m.content for m in by_side["b"]],
        prompt_tokens=user_tokens,
    )
    values: dict[str, Any] = {
        "turns": len(prompts),
        "sum_user_tokens": user_tokens,
        "sum_assistant_a_tokens": tokens["a"],
        "sum_assistant_b_tokens": tokens["b"],
    }
    for side in ("a", "b"):
        st = style[side]
        for k in range(1, 7):
            values[f"header_{side}_h{k}"] = getattr(st, f"h{k}")
        values[f"list_{side}_ordered"] = st.ordered
        values[f"list_{side}_unordered"] = st.unordered
        values[f"bold_{side}_star"] = st.bold_star
        values[f"bold_{side}_under"] = st.bold_under
    values.update(_tag_values(tags))
    return values


def _tag_values(tags: Tags) -> dict[str, Any]:
    return {
        "language": tags.language,
        "tag_coding": tags.coding,
        "tag_math": tags.math,
        "tag_multi_turn": tags.multi_turn,
        "tag_long_query": tags.long_query,
        "tag_hard_prompt": tags.hard_prompt,
        "tagger_version": tags.version,
    }


def record_for_battle(
    *, session: Session, battle_id: str, tagger: Tagger | None = None
) -> BattleFeatures:
    """Compute and store a battle's style counts and tags (call it after the vote commits).

    Parameters
    ----------
    session
        From :func:`arena.store.new_session`.
    battle_id
        A battle with answers on both sides.
    tagger
        The process's tagger (build one at startup: its language models load once); the
        default is a tagger over ``DEFAULT_LANGUAGES``.

    Returns
    -------
    BattleFeatures
        The stored row.

    Raises
    ------
    arena.store.BattleNotFound
        No such battle.
    ValueError
        The battle has no answers on both sides.
    """
    messages = list_messages(session=session, battle_id=battle_id)
    values = compute_features(messages, tagger or _default_tagger())
    return save_battle_features(session=session, battle_id=battle_id, values=values)


def backfill_style(
    *, engine: Engine, tagger: Tagger | None = None, progress: Progress | None = None
) -> int:
    """Compute features for every battle with answers that has none (older battles).

    Parameters
    ----------
    engine
        The database.
    tagger
        The tagger (default: over ``DEFAULT_LANGUAGES``).
    progress
        Called with ``(done, total)`` after each battle.

    Returns
    -------
    int
        Battles written.
    """
    ids = battles_without_features(engine=engine)
    tg = tagger or _default_tagger()
    with new_session(engine) as session:
        for k, battle_id in enumerate(ids, 1):
            record_for_battle(session=session, battle_id=battle_id, tagger=tg)
            if progress is not None:
                progress(k, len(ids))
    return len(ids)


def retag(
    *,
    engine: Engine,
    tagger: Tagger | None = None,
    everything: bool = False,
    progress: Progress | None = None,
) -> int:
    """Re-run the tagger over stored battles whose tags are from another tagger version.

    Parameters
    ----------
    engine
        The database.
    tagger
        The tagger (default: over ``DEFAULT_LANGUAGES``).
    everything
        Retag every battle, whatever version tagged it.
    progress
        Called with ``(done, total)`` after each battle.

    Returns
    -------
    int
        Battles considered (style counts are left as they are; battles stored without their
        prompts, such as imports of logs without conversations, keep the tags they had).
    """
    tg = tagger or _default_tagger()
    ids = battles_to_retag(engine=engine, version=tg.version, everything=everything)
    with new_session(engine) as session:
        for k, battle_id in enumerate(ids, 1):
            messages = list_messages(session=session, battle_id=battle_id)
            current = get_battle_features(session=session, battle_id=battle_id)
            prompts = [m for m in messages if m.side == "user"]
            if not prompts:
                continue  # imported without its conversation: keep the tags it came with
            tags = tg.tag(
                [m.content for m in sorted(prompts, key=lambda m: m.turn)],
                [m.content for m in messages if m.side == "a"],
                [m.content for m in messages if m.side == "b"],
                prompt_tokens=None if current is None else current.sum_user_tokens,
            )
            save_battle_features(session=session, battle_id=battle_id, values=_tag_values(tags))
            if progress is not None:
                progress(k, len(ids))
    return len(ids)


_DEFAULT: list[Tagger] = []


def _default_tagger() -> Tagger:
    # A cache of the expensive object, not configuration: callers that care pass their own.
    if not _DEFAULT:
        _DEFAULT.append(Tagger())
    return _DEFAULT[0]
