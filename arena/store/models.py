"""The store's tables, and the public shapes of their rows.

Each entity is split the SQLModel way: ``*Base`` (the fields shared by every shape) and the
``table=True`` class.  ``BattlePublic`` is what may leave the server about a battle: it
carries no model names, because a battle's models are revealed only after its vote is
committed, and that reveal is the vote gate's job (``arena/votes.py``), not a serialiser's.
Callers supply values as keyword arguments to the store operations (``ops.py``), which
validate them; the unused ``*Create`` / ``*Public`` shapes were removed rather than kept as
decoration.

Schema changes go through an Alembic revision in ``arena/migrations/versions``;
``tests/store/test_schema.py`` fails when the tables here and the migrations disagree.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Final

from sqlalchemy import CheckConstraint, Dialect, Index, Text, UniqueConstraint
from sqlalchemy.types import DateTime, TypeDecorator
from sqlmodel import Field, SQLModel

from arena.lifecycle import BattleMode, BattleStatus, MessageSide, Winner

# Column sizes of the fields a battle file carries: one table, shared with the record rules
# that every reader and `arena import` apply (ratings never imports arena, so it lives there).
from ratings.records import FIELD_LIMITS

__all__ = [
    "BATTLE_MODES",
    "BATTLE_STATUSES",
    "MESSAGE_SIDES",
    "MODEL_EVENT_KINDS",
    "WINNERS",
    "AdminAction",
    "Battle",
    "BattleBase",
    "BattleFeatures",
    "BattlePublic",
    "Message",
    "MessageBase",
    "Model",
    "ModelBase",
    "ModelEvent",
    "ModerationDecision",
    "UTCDateTime",
    "Vote",
    "VoteBase",
    "VoteReason",
    "new_battle_id",
    "utcnow",
]

# The CHECK constraints are built from the one vocabulary (arena/lifecycle.py).
BATTLE_MODES: Final = tuple(str(m) for m in BattleMode)
BATTLE_STATUSES: Final = tuple(str(m) for m in BattleStatus)
MESSAGE_SIDES: Final = tuple(str(m) for m in MessageSide)
# Same strings and order as ratings.data.WINNER_VALUES (their index is the outcome code).
WINNERS: Final = tuple(str(m) for m in Winner)
# The first three come from the roster file; the others are the admin page's live changes
# (arena/admin), which every replica picks up from the table (arena/roster_sync.py).
MODEL_EVENT_KINDS: Final = (
    "registered",
    "updated",
    "deprecated",
    "enabled",
    "disabled",
    "reweighted",
    "added",
)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def new_battle_id() -> str:
    """A fresh random battle id (UUID4, canonical text form)."""
    return str(uuid.uuid4())


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that goes in aware and comes out aware, in UTC, on every backend.

    SQLite has no time zones: SQLAlchemy would silently drop ``tzinfo`` and hand back naive
    datetimes.  Here naive input is refused, values are stored as naive UTC on SQLite
    (``YYYY-MM-DD HH:MM:SS.ffffff``, which the ratings query parses in SQL) and as
    ``timestamptz`` on PostgreSQL, and results always carry ``UTC``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise ValueError(f"timestamps must be timezone-aware datetimes, got {value!r}")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


# --------------------------------------------------------------------------------------------
# model: a roster entry as served


class ModelBase(SQLModel):
    name: str = Field(
        max_length=FIELD_LIMITS["model_a"], description="Roster name, unique; shown after the vote."
    )
    backend: str = Field(max_length=50, description="How the model is reached (or 'imported').")
    config_hash: str = Field(
        default="", max_length=128, description="Hash of weights + decoding config + prompt."
    )
    params_b: float | None = Field(default=None, description="Parameters, in billions.")
    license: str | None = Field(default=None, max_length=100)
    open_weights: bool | None = Field(default=None)
    organisation: str | None = Field(default=None, max_length=200)
    release_date: dt.date | None = Field(default=None)
    url: str | None = Field(default=None, max_length=500)


class Model(ModelBase, table=True):
    __tablename__ = "model"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=FIELD_LIMITS["model_a"], unique=True)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    first_served_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_served_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # A copy of the latest 'deprecated' event, so the roster query needs no join; the events
    # table stays the history.
    deprecated_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The admin page's live roster (copies of the latest enabled/disabled/reweighted/added
    # events, so replicas read the roster's state without replaying the history).
    disabled_at: dt.datetime | None = Field(
        default=None, sa_type=UTCDateTime, description="Set: not drawn for new battles."
    )
    weight: float | None = Field(
        default=None, description="Sampling weight set on the admin page (NULL: the roster's)."
    )
    entry_toml: str | None = Field(
        default=None, sa_type=Text, description="A [[models]] entry added on the admin page."
    )


class ModelEvent(SQLModel, table=True):
    """Append-only history of a model: registered, updated (config or metadata), deprecated."""

    __tablename__ = "model_event"
    __table_args__ = (CheckConstraint(_in("kind", MODEL_EVENT_KINDS), name="ck_model_event_kind"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model.id", index=True)
    kind: str = Field(max_length=20)
    at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    config_hash: str = Field(default="", max_length=128)
    detail: str | None = Field(default=None, max_length=2000)


# --------------------------------------------------------------------------------------------
# battle


class BattleBase(SQLModel):
    mode: str = Field(max_length=10, description="'anony' (models hidden) or 'named'.")
    pair_probability: float | None = Field(
        default=None, description="Probability with which the sampler drew this ordered pair."
    )
    policy_name: str = Field(max_length=100, description="Sampling policy that drew the pair.")
    policy_version: str = Field(max_length=50, description="Version of that policy.")
    language: str | None = Field(default=None, max_length=FIELD_LIMITS["language"])


class BattlePublic(BattleBase):
    """What the browser may see before the vote: no model names, no user key."""

    id: str
    status: str
    error_reason: str | None
    created_at: dt.datetime


class Battle(BattleBase, table=True):
    __tablename__ = "battle"
    __table_args__ = (
        CheckConstraint(_in("mode", BATTLE_MODES), name="ck_battle_mode"),
        CheckConstraint(_in("status", BATTLE_STATUSES), name="ck_battle_status"),
        CheckConstraint("model_a_id <> model_b_id", name="ck_battle_two_models"),
        CheckConstraint(
            "pair_probability IS NULL OR (pair_probability > 0 AND pair_probability <= 1)",
            name="ck_battle_pair_probability",
        ),
        Index("ix_battle_created_at", "created_at"),
        # The per-address ceilings on prompts and votes look up one address's recent battles.
        Index("ix_battle_address_key_created_at", "address_key", "created_at"),
    )

    id: str = Field(
        default_factory=new_battle_id, primary_key=True, max_length=FIELD_LIMITS["battle_id"]
    )
    model_a_id: int = Field(foreign_key="model.id")
    model_b_id: int = Field(foreign_key="model.id")
    user_key: str = Field(
        max_length=FIELD_LIMITS["judge"], description="Keyed hash of the voter; never an IP."
    )
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    status: str = Field(default="streaming", max_length=20)
    error_reason: str | None = Field(default=None, max_length=2000)
    consent_version: str | None = Field(
        default=None, max_length=64, description="Terms of use the voter had accepted."
    )
    address_key: str | None = Field(
        default=None,
        max_length=FIELD_LIMITS["judge"],
        description="Keyed hash of the client address (never the address itself); the "
        "address ceilings and the rigging group tests use it. NULL before revision 0005.",
    )


# --------------------------------------------------------------------------------------------
# message


class MessageBase(SQLModel):
    turn: int = Field(ge=1, description="1-based user turn this message belongs to.")
    side: str = Field(max_length=4, description="'user', or the answering side 'a' / 'b'.")
    content: str = Field(sa_type=Text)
    token_count: int | None = Field(default=None, ge=0)
    latency_s: float | None = Field(default=None, ge=0)
    finish_reason: str | None = Field(default=None, max_length=50)


class Message(MessageBase, table=True):
    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("battle_id", "turn", "side", name="uq_message_battle_turn_side"),
        CheckConstraint(_in("side", MESSAGE_SIDES), name="ck_message_side"),
        CheckConstraint("turn >= 1", name="ck_message_turn"),
    )

    id: int | None = Field(default=None, primary_key=True)
    battle_id: str = Field(foreign_key="battle.id", max_length=64)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


# --------------------------------------------------------------------------------------------
# vote


class VoteBase(SQLModel):
    winner: str = Field(max_length=20, description="model_a | model_b | tie | tie (bothbad)")


class Vote(VoteBase, table=True):
    """One vote per battle (``battle_id`` is UNIQUE in the database).

    The vote row is self-contained: it copies the battle's models, mode and voter key, and
    the question id, in the same transaction that writes it.  Votes are immutable once
    written (only ``exclusion`` may change), so the copies cannot drift, and reading a
    million votes for the leaderboard is one table scan instead of a million-row join.
    """

    __tablename__ = "vote"
    __table_args__ = (
        CheckConstraint(_in("winner", WINNERS), name="ck_vote_winner"),
        CheckConstraint("model_a_id <> model_b_id", name="ck_vote_two_models"),
        Index("ix_vote_voted_at", "voted_at"),
        Index("ix_vote_question_id", "question_id"),  # the duplicate-prompt check, per vote
        Index("ix_vote_judge_voted_at", "judge", "voted_at"),  # the votes-per-day limit
    )

    id: int | None = Field(default=None, primary_key=True)
    battle_id: str = Field(
        foreign_key="battle.id", unique=True, max_length=FIELD_LIMITS["battle_id"]
    )
    model_a_id: int = Field(foreign_key="model.id")
    model_b_id: int = Field(foreign_key="model.id")
    anony: bool
    judge: str = Field(max_length=FIELD_LIMITS["judge"], description="The battle's user key.")
    question_id: str = Field(
        max_length=FIELD_LIMITS["question_id"], description="Groups votes on the same prompt."
    )
    turn: int = Field(ge=0, description="User turns in the battle when it was voted.")
    voted_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    exclusion: str | None = Field(
        default=None,
        max_length=FIELD_LIMITS["exclusion"],
        description="Why the vote is not counted (NULL: counted).",
    )


# --------------------------------------------------------------------------------------------
# moderation decisions and vote reasons


class ModerationDecision(SQLModel, table=True):
    """A moderation decision that found something (prompt or answer), with its checkers.

    ``battle_id`` is empty for a blocked first prompt: no battle was created for it.
    """

    __tablename__ = "moderation_decision"
    __table_args__ = (
        CheckConstraint(_in("side", MESSAGE_SIDES), name="ck_moderation_side"),
        Index("ix_moderation_decision_at", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    battle_id: str | None = Field(
        default=None, foreign_key="battle.id", max_length=FIELD_LIMITS["battle_id"], index=True
    )
    user_key: str = Field(max_length=FIELD_LIMITS["judge"])
    turn: int = Field(ge=1)
    side: str = Field(max_length=4, description="'user' (the prompt) or the answering side.")
    action: str = Field(max_length=20, description="logged | warned | blocked")
    checkers: str = Field(max_length=500, description="name@version of each checker that ran.")
    categories: str = Field(max_length=500, description="What was found, comma-separated.")
    at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class VoteReason(SQLModel, table=True):
    """A reason a voter gave for a vote (one row per chip they picked)."""

    __tablename__ = "vote_reason"
    __table_args__ = (UniqueConstraint("battle_id", "reason", name="uq_vote_reason"),)

    id: int | None = Field(default=None, primary_key=True)
    battle_id: str = Field(foreign_key="vote.battle_id", max_length=FIELD_LIMITS["battle_id"])
    reason: str = Field(max_length=100)
    at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class AdminAction(SQLModel, table=True):
    """The admin audit log: who did what, when, from which (hashed) address."""

    __tablename__ = "admin_action"
    __table_args__ = (
        Index("ix_admin_action_at", "at"),
        Index("ix_admin_action_address_action_at", "address_key", "action", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    actor: str = Field(max_length=100, description="The name given at login ('' if none).")
    address_key: str = Field(max_length=128, description="Keyed hash of the client address.")
    action: str = Field(max_length=40, description="login, login_failed, disable, ...")
    target: str = Field(default="", max_length=200, description="Model, judge or battle.")
    detail: str | None = Field(default=None, max_length=2000)


# battle_features: style counts and category tags, computed when the battle is voted


class BattleFeatures(SQLModel, table=True):
    """Per-battle style counts (LMSYS ``conv_metadata``) and category tags.

    One row per battle, written by :func:`arena.features.record_for_battle` at vote time and
    by ``arena db backfill-style`` for older battles; ``arena db retag`` rewrites the tags
    and ``tagger_version``.  A side table, not battle columns: battles that never got this
    far (errors, abandoned) have no row, and the ratings read it only when asked to.
    Token counts are the backend's own for answers; prompts are estimated (see
    ``arena.features.style.estimate_tokens``) unless a backend counted them.
    """

    __tablename__ = "battle_features"

    battle_id: str = Field(foreign_key="battle.id", primary_key=True, max_length=64)
    computed_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    turns: int = Field(ge=0)
    sum_user_tokens: int = Field(ge=0)
    sum_assistant_a_tokens: int = Field(ge=0)
    sum_assistant_b_tokens: int = Field(ge=0)
    header_a_h1: int = 0
    header_a_h2: int = 0
    header_a_h3: int = 0
    header_a_h4: int = 0
    header_a_h5: int = 0
    header_a_h6: int = 0
    header_b_h1: int = 0
    header_b_h2: int = 0
    header_b_h3: int = 0
    header_b_h4: int = 0
    header_b_h5: int = 0
    header_b_h6: int = 0
    list_a_ordered: int = 0
    list_a_unordered: int = 0
    list_b_ordered: int = 0
    list_b_unordered: int = 0
    bold_a_star: int = 0
    bold_a_under: int = 0
    bold_b_star: int = 0
    bold_b_under: int = 0
    language: str | None = Field(default=None, max_length=20)
    tag_coding: bool | None = None
    tag_math: bool | None = None
    tag_multi_turn: bool | None = None
    tag_long_query: bool | None = None
    tag_hard_prompt: bool | None = Field(
        default=None, description="NULL: not judged (no judge model configured)."
    )
    tagger_version: str | None = Field(default=None, max_length=20)
