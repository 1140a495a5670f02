"""The live write path to the database: keyword-only operations on an explicit session.

(The other writer is ``exchange.py``, which imports battle logs in one transaction.)

Every operation is one transaction: it commits before returning, so a returned vote is on
disk.  Returned rows are detached, fully loaded snapshots -- reading their attributes never
reopens a transaction (on SQLite that would take the write lock behind the caller's back).
On failure the transaction is rolled back and a typed error from
:mod:`arena.store.errors` is raised.

Sessions come from :func:`new_session`; on SQLite their transactions begin with
``BEGIN IMMEDIATE`` (see :mod:`arena.store.engine`), on PostgreSQL the battle row is locked
with ``SELECT ... FOR UPDATE``; either way the check-then-write of a vote is serialised per
battle, and the UNIQUE constraint on ``vote.battle_id`` is the last line of defence.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import func, insert, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from arena.lifecycle import TRANSITIONS
from arena.store.engine import begin_read
from arena.store.errors import (
    AlreadyVoted,
    BattleErrored,
    BattleNotFound,
    BattleNotReady,
    ForeignBattle,
    InvalidTransition,
    InvalidValue,
    StoreError,
    UnknownModel,
    VoteNotFound,
)
from arena.store.models import (
    BATTLE_MODES,
    MESSAGE_SIDES,
    WINNERS,
    Battle,
    Message,
    Model,
    ModelEvent,
    ModerationDecision,
    Vote,
    VoteReason,
    new_battle_id,
    utcnow,
)
from ratings.records import text_problem  # one text rule for votes, messages and imports

__all__ = [
    "ALLOWED_TRANSITIONS",
    "add_vote_reasons",
    "append_message",
    "battle_model_names",
    "create_battle",
    "deprecate_model",
    "get_battle",
    "get_vote",
    "list_messages",
    "mark_exclusion",
    "new_session",
    "question_id_for",
    "record_moderation",
    "record_vote",
    "set_status",
    "upsert_model",
]

# Status changes set_status accepts, as strings (arena/lifecycle.py names them).  'voted' is
# reached only through record_vote; voted, error and abandoned are final.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    str(k): frozenset(str(v) for v in vs) for k, vs in TRANSITIONS.items()
}

_METADATA_FIELDS = (
    "params_b",
    "license",
    "open_weights",
    "organisation",
    "release_date",
    "url",
)

_Row = TypeVar("_Row", bound=SQLModel)
_BATTLE = SQLModel.metadata.tables["battle"]
_MESSAGE = SQLModel.metadata.tables["message"]
_VOTE = SQLModel.metadata.tables["vote"]


def new_session(engine: Engine) -> Session:
    """A session for the store's operations (the one write path).

    Parameters
    ----------
    engine
        From :func:`arena.store.open_engine`.

    Returns
    -------
    sqlmodel.Session
        Use as a context manager; each operation commits its own transaction.
    """
    return Session(engine, expire_on_commit=False)


@contextmanager
def _transaction(session: Session) -> Iterator[None]:
    try:
        yield
    except BaseException:
        session.rollback()
        session.expunge_all()
        raise


def _finish(session: Session) -> None:
    """Flush, detach every row (returned snapshots run no SQL later, and the next operation
    reads fresh rows instead of this session's identity map), commit."""
    session.flush()
    session.expunge_all()
    session.commit()


def _check_aware(name: str, value: dt.datetime | None) -> dt.datetime:
    if value is None:
        return utcnow()
    if value.tzinfo is None:
        raise InvalidValue(f"{name} must be timezone-aware (UTC), got {value!r}")
    return value.astimezone(dt.UTC)


def _lock_battle(session: Session, battle_id: str) -> Battle:
    stmt = select(Battle).where(Battle.id == battle_id).with_for_update()
    battle = session.exec(stmt.execution_options(populate_existing=True)).first()
    if battle is None:
        raise BattleNotFound(f"no battle with id {battle_id!r}")
    return battle


def _model_ids(session: Session, names: list[str]) -> dict[str, int]:
    rows = session.exec(select(Model.name, Model.id).where(col(Model.name).in_(names))).all()
    found = {name: mid for name, mid in rows if mid is not None}
    missing = [n for n in names if n not in found]
    if missing:
        raise UnknownModel(
            f"unknown model(s) {', '.join(map(repr, missing))}: register them first "
            "(upsert_model, done by the app from the roster at start-up)"
        )
    return found


# --------------------------------------------------------------------------------------------
# models


def upsert_model(
    *,
    session: Session,
    name: str,
    backend: str,
    config_hash: str = "",
    params_b: float | None = None,
    license: str | None = None,
    open_weights: bool | None = None,
    organisation: str | None = None,
    release_date: dt.date | None = None,
    url: str | None = None,
) -> Model:
    """Register a roster model, or update its backend, config hash and metadata.

    A ``registered`` event is appended on insert and an ``updated`` event whenever the
    backend, config hash or metadata change; an unchanged roster entry writes nothing.

    Parameters
    ----------
    session
        From :func:`new_session`.
    name
        Roster name (unique).
    backend
        How the model is reached (``transformers``, ``openai``, ``imported``...).
    config_hash
        Hash of weights + decoding config + system prompt, so variants are told apart.
    params_b, license, open_weights, organisation, release_date, url
        Metadata shown on the leaderboard.

    Returns
    -------
    Model

    Raises
    ------
    InvalidValue
        An empty name or backend.
    """
    if not name or not backend:
        raise InvalidValue("a model needs a non-empty name and backend")
    values: dict[str, Any] = {
        "backend": backend,
        "config_hash": config_hash,
        "params_b": params_b,
        "license": license,
        "open_weights": open_weights,
        "organisation": organisation,
        "release_date": release_date,
        "url": url,
    }
    for attempt in range(2):
        try:
            with _transaction(session):
                model = session.exec(
                    select(Model).where(Model.name == name).with_for_update()
                ).first()
                if model is None:
                    model = Model(name=name, **values)
                    session.add(model)
                    session.flush()
                    assert model.id is not None
                    event = ModelEvent(
                        model_id=model.id, kind="registered", config_hash=config_hash
                    )
                    session.add(event)
                else:
                    changed = sorted(k for k, v in values.items() if getattr(model, k) != v)
                    if changed:
                        for k in changed:
                            setattr(model, k, values[k])
                        assert model.id is not None
                        event = ModelEvent(
                            model_id=model.id,
                            kind="updated",
                            config_hash=config_hash,
                            detail="changed: " + ", ".join(changed),
                        )
                        session.add(event)
                _finish(session)
                return model
        except IntegrityError:
            # Two replicas registered the same new name at once; the second one updates.
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def deprecate_model(
    *, session: Session, name: str, reason: str | None = None, at: dt.datetime | None = None
) -> ModelEvent:
    """Mark a model deprecated: append a ``deprecated`` event and stamp ``deprecated_at``.

    Nothing is deleted: the model's battles and votes stay, and so does its history.

    Parameters
    ----------
    session
        From :func:`new_session`.
    name
        The model.
    reason
        Free-text note stored on the event.
    at
        When (timezone-aware; default now).

    Returns
    -------
    ModelEvent

    Raises
    ------
    UnknownModel
        No model has this name.
    """
    when = _check_aware("at", at)
    with _transaction(session):
        model = session.exec(select(Model).where(Model.name == name).with_for_update()).first()
        if model is None or model.id is None:
            raise UnknownModel(f"unknown model {name!r}")
        model.deprecated_at = when
        event = ModelEvent(
            model_id=model.id, kind="deprecated", at=when, config_hash=model.config_hash
        )
        event.detail = reason
        session.add(event)
        _finish(session)
        return event


# --------------------------------------------------------------------------------------------
# battles


def create_battle(
    *,
    session: Session,
    mode: str,
    model_a: str,
    model_b: str,
    user_key: str,
    pair_probability: float,
    policy_name: str,
    policy_version: str,
    language: str | None = None,
    battle_id: str | None = None,
    consent_version: str | None = None,
    address_key: str | None = None,
) -> Battle:
    """Start a battle (status ``streaming``) and stamp both models as served.

    Parameters
    ----------
    session
        From :func:`new_session`.
    mode
        ``anony`` (models hidden until the vote) or ``named``.
    model_a, model_b
        Registered model names, distinct.
    user_key
        The voter's keyed hash (:func:`arena.store.user_key`); never a raw IP.
    pair_probability
        Probability, in (0, 1], with which the sampling policy drew this ordered pair.
    policy_name, policy_version
        The sampling policy that drew it.
    language
        Language of the conversation, when known.
    battle_id
        Id to use (default: a fresh UUID4).
    consent_version
        Version of the terms of use the voter accepted (``None``: no terms configured).
    address_key
        Keyed hash of the client address, when known (a voter is a browser; its address is
        a separate, coarser identity).

    Returns
    -------
    Battle

    Raises
    ------
    InvalidValue
        Bad mode, a model against itself, a probability outside (0, 1], an empty user key.
    UnknownModel
        A model that is not registered.
    """
    if mode not in BATTLE_MODES:
        raise InvalidValue(f"mode must be one of {BATTLE_MODES}, got {mode!r}")
    if model_a == model_b:
        raise InvalidValue(f"model {model_a!r} cannot battle itself")
    if not (isinstance(pair_probability, float | int) and 0 < pair_probability <= 1):
        raise InvalidValue(f"pair_probability must be in (0, 1], got {pair_probability!r}")
    if not math.isfinite(pair_probability):
        raise InvalidValue(f"pair_probability must be finite, got {pair_probability!r}")
    if not user_key:
        raise InvalidValue("user_key must not be empty")
    now = utcnow()
    with _transaction(session):
        ids = _model_ids(session, [model_a, model_b])
        # Both model rows are stamped below.  Lock them first, in id order: an UPDATE locks
        # rows in whatever order it scans them, and two starts of the same pair (or of pairs
        # sharing a model) then deadlocked on PostgreSQL.  FOR NO KEY UPDATE is the lock the
        # UPDATE takes anyway; it leaves votes' foreign-key checks (KEY SHARE) unblocked.
        session.exec(
            select(Model.id)
            .where(col(Model.id).in_(sorted(ids.values())))
            .order_by(col(Model.id))
            .with_for_update(key_share=True)
        ).all()
        battle = Battle(
            id=battle_id or new_battle_id(),
            mode=mode,
            model_a_id=ids[model_a],
            model_b_id=ids[model_b],
            user_key=user_key,
            pair_probability=float(pair_probability),
            policy_name=policy_name,
            policy_version=policy_version,
            language=language,
            created_at=now,
            updated_at=now,
            status="streaming",
            consent_version=consent_version,
            address_key=address_key or None,
        )
        session.add(battle)
        session.exec(
            update(Model)
            .where(col(Model.id).in_(list(ids.values())))
            .values(
                last_served_at=now,
                first_served_at=func.coalesce(Model.first_served_at, now),
            )
        )
        _finish(session)
        return battle


def append_message(
    *,
    session: Session,
    battle_id: str,
    turn: int,
    side: str,
    content: str,
    token_count: int | None = None,
    latency_s: float | None = None,
    finish_reason: str | None = None,
) -> Message:
    """Store one message of a battle: the user's prompt or one side's complete answer.

    Parameters
    ----------
    session
        From :func:`new_session`.
    battle_id
        The battle.
    turn
        1-based user turn.
    side
        ``user``, ``a`` or ``b``.
    content
        The text.
    token_count, latency_s, finish_reason
        Generation facts for model answers.

    Returns
    -------
    Message

    Raises
    ------
    BattleNotFound
        No such battle.
    InvalidTransition
        The battle is already voted (a vote freezes the conversation it judged).
    InvalidValue
        Bad side or turn, this (turn, side) is already stored, or content that no backend
        can store (a NUL character, a lone surrogate).
    """
    if side not in MESSAGE_SIDES:
        raise InvalidValue(f"side must be one of {MESSAGE_SIDES}, got {side!r}")
    if isinstance(turn, bool) or not isinstance(turn, int) or turn < 1:
        raise InvalidValue(f"turn must be an integer >= 1, got {turn!r}")
    problem = text_problem(content)
    if problem:
        raise InvalidValue(f"message content {problem}")
    try:
        with _transaction(session):
            battle = _lock_battle(session, battle_id)
            if battle.status == "voted":
                raise InvalidTransition(f"battle {battle_id} is voted; its messages are final")
            msg = Message(
                battle_id=battle_id,
                turn=turn,
                side=side,
                content=content,
                token_count=token_count,
                latency_s=latency_s,
                finish_reason=finish_reason,
            )
            session.add(msg)
            _finish(session)
            return msg
    except IntegrityError:
        raise InvalidValue(
            f"battle {battle_id} already has a message for turn {turn}, side {side!r}"
        ) from None


def set_status(
    *, session: Session, battle_id: str, status: str, error_reason: str | None = None
) -> Battle:
    """Move a battle along its lifecycle (see ``ALLOWED_TRANSITIONS``).

    Parameters
    ----------
    session
        From :func:`new_session`.
    battle_id
        The battle.
    status
        ``streaming``, ``ready``, ``error`` or ``abandoned`` (``voted`` comes only from
        :func:`record_vote`).
    error_reason
        Required for ``error`` (what failed, for the operator; never shown as a reply);
        allowed for ``abandoned``.

    Returns
    -------
    Battle

    Raises
    ------
    BattleNotFound
        No such battle.
    InvalidTransition
        A change the lifecycle forbids (anything after voted/error/abandoned, or ``voted``).
    InvalidValue
        Unknown status, or ``error`` without a reason.
    """
    if status not in ALLOWED_TRANSITIONS:
        raise InvalidValue(f"unknown status {status!r}")
    if status == "error" and not error_reason:
        raise InvalidValue("status 'error' needs an error_reason")
    if error_reason is not None and status not in ("error", "abandoned"):
        raise InvalidValue(f"error_reason is only for 'error' or 'abandoned', not {status!r}")
    with _transaction(session):
        battle = _lock_battle(session, battle_id)
        if status not in ALLOWED_TRANSITIONS[battle.status]:
            raise InvalidTransition(
                f"battle {battle_id} cannot go from {battle.status!r} to {status!r}"
            )
        battle.status = status
        battle.error_reason = error_reason
        battle.updated_at = utcnow()
        _finish(session)
        return battle


def question_id_for(prompt: str) -> str:
    """The question id of a first prompt: equal prompts share it (for clustered CIs).

    Parameters
    ----------
    prompt
        The first user message of a battle.

    Returns
    -------
    str
        32 hex characters (SHA-256 prefix of the whitespace-stripped text).
    """
    return hashlib.sha256(prompt.strip().encode()).hexdigest()[:32]


def record_vote(
    *,
    session: Session,
    battle_id: str,
    winner: str,
    user_key: str,
    voted_at: dt.datetime | None = None,
) -> Vote:
    """Record the one vote of a battle and mark it ``voted``, durably.

    When this returns, the vote is committed (on SQLite with ``synchronous=FULL``: fsynced).

    Parameters
    ----------
    session
        From :func:`new_session`.
    battle_id
        The battle.
    winner
        ``model_a``, ``model_b``, ``tie`` or ``tie (bothbad)``.
    user_key
        The voter's keyed hash; must equal the battle's.
    voted_at
        When (timezone-aware; default now).

    Returns
    -------
    Vote

    Raises
    ------
    InvalidValue
        Unknown winner.
    BattleNotFound
        No such battle.
    ForeignBattle
        The battle was shown to someone else.
    BattleNotReady
        The battle is still streaming.
    BattleErrored
        The battle is ``error`` or ``abandoned``.
    AlreadyVoted
        The battle has its vote already.
    """
    if winner not in WINNERS:
        raise InvalidValue(f"winner must be one of {WINNERS}, got {winner!r}")
    when = _check_aware("voted_at", voted_at)
    try:
        with _transaction(session):
            # Core statements, not the unit of work: this is the hot path (one commit per
            # vote, several app processes), and the ORM flush would triple its CPU cost.
            conn = session.connection()
            b = _BATTLE.c
            battle = conn.execute(
                sa.select(b.user_key, b.status, b.mode, b.model_a_id, b.model_b_id)
                .where(b.id == battle_id)
                .with_for_update()
            ).first()
            if battle is None:
                raise BattleNotFound(f"no battle with id {battle_id!r}")
            # Foreign first: someone else's battle reveals nothing about its state.
            if battle.user_key != user_key:
                raise ForeignBattle(
                    f"battle {battle_id} belongs to another user", battle_id=battle_id
                )
            if battle.status == "voted":
                raise AlreadyVoted(f"battle {battle_id} already has a vote", battle_id=battle_id)
            if battle.status == "streaming":
                raise BattleNotReady(
                    f"battle {battle_id} is still streaming; vote when both answers are done",
                    battle_id=battle_id,
                )
            if battle.status in ("error", "abandoned"):
                raise BattleErrored(
                    f"battle {battle_id} is {battle.status} and cannot be voted on",
                    battle_id=battle_id,
                )
            m = _MESSAGE.c
            prompts = conn.execute(
                sa.select(m.turn, m.content)
                .where(m.battle_id == battle_id, m.side == "user")
                .order_by(m.turn)
            ).all()
            values = {
                "battle_id": battle_id,
                "winner": winner,
                "model_a_id": battle.model_a_id,
                "model_b_id": battle.model_b_id,
                "anony": battle.mode == "anony",
                "judge": battle.user_key,
                "question_id": question_id_for(prompts[0][1]) if prompts else battle_id,
                "turn": max((t for t, _ in prompts), default=0),
                "voted_at": when,
                "exclusion": None,
            }
            vote_id = conn.execute(insert(_VOTE).values(values).returning(_VOTE.c.id)).scalar_one()
            conn.execute(
                update(_BATTLE).where(b.id == battle_id).values(status="voted", updated_at=when)
            )
            session.commit()
            vote = Vote(id=vote_id, **values)
            return vote
    except IntegrityError:
        # Only reachable if a concurrent vote slipped past the row lock (it cannot on the
        # supported backends); the UNIQUE constraint still decides, and says so typed.
        raise AlreadyVoted(f"battle {battle_id} already has a vote", battle_id=battle_id) from None


def mark_exclusion(*, session: Session, battle_id: str, reason: str | None) -> Vote:
    """Set (or clear, with ``None``) the reason a vote is not counted.

    The vote itself is kept: exclusions are typed reasons, visible in exports.

    Parameters
    ----------
    session
        From :func:`new_session`.
    battle_id
        The voted battle.
    reason
        Short machine-readable reason (e.g. ``rate_limited``, ``identity_leak``); ``None``
        counts the vote again.

    Returns
    -------
    Vote

    Raises
    ------
    VoteNotFound
        The battle has no vote.
    InvalidValue
        An empty reason string.
    """
    if reason is not None and not reason.strip():
        raise InvalidValue("an exclusion reason must not be empty (use None to clear it)")
    with _transaction(session):
        vote = session.exec(
            select(Vote).where(Vote.battle_id == battle_id).with_for_update()
        ).first()
        if vote is None:
            raise VoteNotFound(f"battle {battle_id!r} has no vote")
        vote.exclusion = reason
        _finish(session)
        return vote


# --------------------------------------------------------------------------------------------
# reads the battle flow needs


def _read(session: Session, row: _Row | None, error: StoreError) -> _Row:
    session.expunge_all()
    session.commit()
    if row is None:
        raise error
    return row


def get_battle(*, session: Session, battle_id: str) -> Battle:
    """The battle row (a detached snapshot).

    Raises
    ------
    BattleNotFound
        No such battle.
    """
    begin_read(session)
    row = session.get(Battle, battle_id, populate_existing=True)
    return _read(session, row, BattleNotFound(f"no battle with id {battle_id!r}"))


def get_vote(*, session: Session, battle_id: str) -> Vote:
    """The vote of a battle (a detached snapshot).

    Raises
    ------
    VoteNotFound
        The battle has no vote.
    """
    begin_read(session)
    row = session.exec(select(Vote).where(Vote.battle_id == battle_id)).first()
    return _read(session, row, VoteNotFound(f"battle {battle_id!r} has no vote"))


def list_messages(*, session: Session, battle_id: str) -> list[Message]:
    """A battle's messages by turn (user first, then a, then b)."""
    begin_read(session)
    rows = list(session.exec(select(Message).where(Message.battle_id == battle_id)).all())
    order = {"user": 0, "a": 1, "b": 2}
    rows.sort(key=lambda m: (m.turn, order[m.side]))
    session.expunge_all()
    session.commit()
    return rows


def battle_model_names(*, session: Session, battle_id: str) -> tuple[str, str]:
    """``(model_a, model_b)`` names of a battle -- for the reveal, after the vote.

    Raises
    ------
    BattleNotFound
        No such battle.
    """
    battle = get_battle(session=session, battle_id=battle_id)
    begin_read(session)
    names = dict(
        session.exec(
            select(Model.id, Model.name).where(
                col(Model.id).in_([battle.model_a_id, battle.model_b_id])
            )
        ).all()
    )
    session.commit()
    return names[battle.model_a_id], names[battle.model_b_id]


def record_moderation(
    *,
    session: Session,
    battle_id: str | None,
    user_key: str,
    turn: int,
    side: str,
    action: str,
    checkers: list[str],
    categories: list[str],
) -> ModerationDecision:
    """Store a moderation decision that found something.

    Parameters
    ----------
    session
        From :func:`new_session`.
    battle_id
        The battle (``None`` for a blocked first prompt: no battle was created).
    user_key
        The voter's keyed hash.
    turn, side
        Where: ``side`` ``user`` is the prompt of that turn, ``a``/``b`` an answer.
    action
        ``logged``, ``warned`` or ``blocked``.
    checkers
        ``name@version`` of each checker that ran.
    categories
        What was found.

    Returns
    -------
    ModerationDecision

    Raises
    ------
    InvalidValue
        An unknown side or action.
    """
    if side not in MESSAGE_SIDES:
        raise InvalidValue(f"side must be one of {MESSAGE_SIDES}, got {side!r}")
    if action not in ("logged", "warned", "blocked"):
        raise InvalidValue(f"action must be logged, warned or blocked, got {action!r}")
    row = ModerationDecision(
        battle_id=battle_id,
        user_key=user_key,
        turn=turn,
        side=side,
        action=action,
        checkers=",".join(checkers)[:500],
        categories=",".join(categories)[:500],
    )
    with _transaction(session):
        session.add(row)
        _finish(session)
    return row


def add_vote_reasons(
    *, session: Session, battle_id: str, user_key: str, reasons: list[str]
) -> list[str]:
    """Store the reasons a voter gave for their vote (idempotent: repeats are ignored).

    Parameters
    ----------
    session
        From :func:`new_session`.
    battle_id
        A voted battle.
    user_key
        Must be the voter's.
    reasons
        Reason labels (the caller checks them against the operator's list).

    Returns
    -------
    list of str
        All reasons now stored for the vote, sorted.

    Raises
    ------
    VoteNotFound
        The battle has no vote.
    ForeignBattle
        The vote is someone else's.
    """
    with _transaction(session):
        vote = session.exec(select(Vote).where(Vote.battle_id == battle_id)).first()
        if vote is None:
            raise VoteNotFound(f"battle {battle_id!r} has no vote")
        if vote.judge != user_key:
            raise ForeignBattle(f"battle {battle_id} belongs to another user", battle_id=battle_id)
        have = set(
            session.exec(select(VoteReason.reason).where(VoteReason.battle_id == battle_id)).all()
        )
        for reason in dict.fromkeys(reasons):
            if reason not in have:
                session.add(VoteReason(battle_id=battle_id, reason=reason))
                have.add(reason)
        _finish(session)
    return sorted(have)
