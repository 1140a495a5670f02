"""Reads for the admin page: battles and votes by filter, one conversation, the moderation
queue; and the one write it adds, applying or undoing an audit finding about a voter.

Every list is newest first and capped (``limit``): the page is for looking, exports are for
bulk.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import and_, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from arena.store.engine import reader
from arena.store.errors import BattleNotFound, InvalidValue
from arena.store.models import Battle, Message, Model, ModerationDecision, Vote
from arena.store.ops import _finish, _transaction

__all__ = [
    "BattleFilter",
    "BattleRow",
    "Conversation",
    "apply_finding",
    "browse_battles",
    "conversation",
    "excluded_voters",
    "moderation_queue",
    "undo_finding",
]

#: ``BattleFilter.exclusion`` values that are not a reason: any counted / any excluded vote.
COUNTED = "(counted)"
EXCLUDED = "(any excluded)"


@dataclass(frozen=True)
class BattleFilter:
    """What to show; every field ``None`` shows everything."""

    model: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    exclusion: str | None = None
    judge: str | None = None


@dataclass(frozen=True)
class BattleRow:
    """One battle as the admin list shows it (the vote fields are ``None`` when unvoted)."""

    battle_id: str
    created_at: dt.datetime
    mode: str
    status: str
    model_a: str
    model_b: str
    user_key: str
    winner: str | None
    exclusion: str | None


@dataclass(frozen=True)
class Conversation:
    """One battle: its row and its messages in order."""

    battle: BattleRow
    messages: list[Message]


def _battle_query() -> tuple[Any, Any, Any]:
    ma = aliased(Model)
    mb = aliased(Model)
    query = (
        sa.select(
            col(Battle.id),
            col(Battle.created_at),
            col(Battle.mode),
            col(Battle.status),
            col(ma.name),
            col(mb.name),
            col(Battle.user_key),
            col(Vote.winner),
            col(Vote.exclusion),
        )
        .join(ma, col(ma.id) == Battle.model_a_id)
        .join(mb, col(mb.id) == Battle.model_b_id)
        .outerjoin(Vote, col(Vote.battle_id) == Battle.id)
    )
    return query, ma, mb


def _row(r: object) -> BattleRow:
    return BattleRow(*r)  # type: ignore[misc]


def browse_battles(*, engine: Engine, where: BattleFilter, limit: int = 200) -> list[BattleRow]:
    """Battles matching every set field of ``where``, newest first.

    ``where.exclusion`` is a stored reason, :data:`COUNTED` or :data:`EXCLUDED` (both imply a
    vote); ``where.judge`` is a voter's user key.
    """
    query, ma, mb = _battle_query()
    if where.model:
        query = query.where(or_(col(ma.name) == where.model, col(mb.name) == where.model))
    if where.since is not None:
        query = query.where(col(Battle.created_at) >= where.since)
    if where.until is not None:
        query = query.where(col(Battle.created_at) < where.until)
    if where.exclusion == COUNTED:
        query = query.where(and_(col(Vote.id).is_not(None), col(Vote.exclusion).is_(None)))
    elif where.exclusion == EXCLUDED:
        query = query.where(col(Vote.exclusion).is_not(None))
    elif where.exclusion:
        query = query.where(col(Vote.exclusion) == where.exclusion)
    if where.judge:
        query = query.where(col(Battle.user_key) == where.judge)
    query = query.order_by(col(Battle.created_at).desc(), col(Battle.id)).limit(limit)
    with reader(engine).connect() as conn:
        return [_row(r) for r in conn.execute(query).all()]


def conversation(*, engine: Engine, battle_id: str) -> Conversation:
    """A battle and its messages (turn order, the prompt before the two answers).

    Raises
    ------
    BattleNotFound
        No battle has this id.
    """
    query, _, _ = _battle_query()
    with Session(reader(engine)) as session:
        found = session.execute(query.where(col(Battle.id) == battle_id)).first()
        if found is None:
            raise BattleNotFound(f"no battle {battle_id!r}")
        order = {"user": 0, "a": 1, "b": 2}
        messages = sorted(
            session.exec(select(Message).where(Message.battle_id == battle_id)).all(),
            key=lambda m: (m.turn, order.get(m.side, 3), m.id or 0),
        )
        session.expunge_all()
    return Conversation(_row(found), list(messages))


def moderation_queue(*, engine: Engine, limit: int = 200) -> list[ModerationDecision]:
    """The newest stored moderation decisions, newest first."""
    with Session(reader(engine)) as session:
        rows = list(
            session.exec(
                select(ModerationDecision).order_by(col(ModerationDecision.id).desc()).limit(limit)
            ).all()
        )
        session.expunge_all()
    return rows


def excluded_voters(*, engine: Engine, reasons: tuple[str, ...]) -> list[tuple[str, str, int]]:
    """``(judge, reason, votes)`` for every voter with votes excluded for one of ``reasons``
    (the applied audit findings, which :func:`undo_finding` reverses)."""
    query = (
        sa.select(col(Vote.judge), col(Vote.exclusion), sa.func.count())
        .where(col(Vote.exclusion).in_(reasons))
        .group_by(col(Vote.judge), col(Vote.exclusion))
        .order_by(col(Vote.judge), col(Vote.exclusion))
    )
    with reader(engine).connect() as conn:
        return [(str(j), str(r), int(n)) for j, r, n in conn.execute(query).all()]


def apply_finding(*, session: Session, judge: str, reason: str) -> int:
    """Exclude every counted vote of voter ``judge`` with ``reason`` (an audit finding).

    Votes already excluded for another reason keep theirs.  Returns the votes marked.

    Raises
    ------
    InvalidValue
        An empty judge or reason.
    """
    if not judge or not reason.strip():
        raise InvalidValue("applying a finding needs the voter's key and a reason")
    return _set_exclusion(session, judge, col(Vote.exclusion).is_(None), reason)


def undo_finding(*, session: Session, judge: str, reason: str) -> int:
    """Count again the votes of ``judge`` excluded with exactly ``reason``.

    Exclusions for other reasons (rate limits, identity leaks, ...) stay.  Returns the votes
    counted again.

    Raises
    ------
    InvalidValue
        An empty judge or reason.
    """
    if not judge or not reason.strip():
        raise InvalidValue("undoing a finding needs the voter's key and its reason")
    return _set_exclusion(session, judge, col(Vote.exclusion) == reason, None)


def _set_exclusion(
    session: Session, judge: str, which: sa.ColumnElement[bool], exclusion: str | None
) -> int:
    """Set the exclusion of the votes of ``judge`` that match ``which``; how many changed."""
    with _transaction(session):
        result = session.execute(
            update(Vote).where(col(Vote.judge) == judge, which).values(exclusion=exclusion)
        )
        _finish(session)
        return int(getattr(result, "rowcount", 0) or 0)
