"""The battle vocabulary, named once: statuses and their transitions, modes, sides, winners,
exclusion reasons, and the refusals a voter can meet (with the words they read).

Everything else builds on these: the database CHECK constraints (``arena/store/models.py``),
the store's transition rule (``arena/store/ops.py``), the battle flow (``arena/battles.py``),
the integrity checks and the exports.  The values are the strings stored on disk and written
to LMSYS ``clean_battle`` logs, which stay exactly as they were; a ``StrEnum`` member *is*
its string, so existing rows, logs and comparisons keep working.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from ratings.data import WINNER_VALUES

__all__ = [
    "TRANSITIONS",
    "BattleMode",
    "BattleRefused",
    "BattleStatus",
    "Exclusion",
    "MessageSide",
    "Refusal",
    "Winner",
    "refuse",
]


class BattleStatus(StrEnum):
    """Where a battle is.  ``voted``, ``error`` and ``abandoned`` are final."""

    STREAMING = "streaming"
    READY = "ready"
    VOTED = "voted"
    ERROR = "error"
    ABANDONED = "abandoned"

    @property
    def final(self) -> bool:
        """No status follows this one."""
        return not TRANSITIONS[self]

    @property
    def ended_unvotable(self) -> bool:
        """The battle ended without both answers (cannot be voted on, never counted)."""
        return self in (BattleStatus.ERROR, BattleStatus.ABANDONED)


#: Status changes ``store.set_status`` accepts.  ``voted`` is reached only by recording a
#: vote; ``ready -> streaming`` is the next turn of a multi-turn battle.
TRANSITIONS: Mapping[BattleStatus, frozenset[BattleStatus]] = MappingProxyType(
    {
        BattleStatus.STREAMING: frozenset(
            {BattleStatus.STREAMING, BattleStatus.READY, BattleStatus.ERROR, BattleStatus.ABANDONED}
        ),
        BattleStatus.READY: frozenset(
            {BattleStatus.READY, BattleStatus.STREAMING, BattleStatus.ERROR, BattleStatus.ABANDONED}
        ),
        BattleStatus.VOTED: frozenset(),
        BattleStatus.ERROR: frozenset(),
        BattleStatus.ABANDONED: frozenset(),
    }
)


class BattleMode(StrEnum):
    """Anonymous (names revealed after the vote) or named (the voter chose the models)."""

    ANONY = "anony"
    NAMED = "named"


class MessageSide(StrEnum):
    """Who wrote a message: the user, or the answering side ``a`` / ``b``."""

    A = "a"
    B = "b"
    USER = "user"


class Winner(StrEnum):
    """A vote, in the LMSYS ``clean_battle`` vocabulary (the order is the outcome code)."""

    MODEL_A = "model_a"
    MODEL_B = "model_b"
    TIE = "tie"
    BOTHBAD = "tie (bothbad)"


# ratings/ cannot import arena/, so it keeps its own copy; this keeps the two identical.
assert tuple(Winner) == tuple(WINNER_VALUES), "Winner must match ratings.data.WINNER_VALUES"


class Exclusion(StrEnum):
    """Why a stored vote is not counted (``vote.exclusion``; NULL means counted).

    Votes are never deleted to clean data: a reason is set instead, kept in exports and
    counted by ``arena audit``.
    """

    IDENTITY_LEAK = "identity_leak"
    """An answer named its own model, another roster model, or an organisation."""
    ANOMALOUS_VOTER = "anomalous_voter"
    """The voter's own results for a model (or overall) are beyond honest taste
    (``arena audit --apply``; tests in ``arena.rigging``)."""
    SYBIL_GROUP = "sybil_group"
    """The voter belongs to a group of accounts whose excess wins favour one model
    (``arena audit --apply``; tests in ``arena.rigging``)."""
    DUPLICATE_PROMPT = "duplicate_prompt"
    """The same first prompt was voted on more often than the configured cap."""
    REGENERATE_REVEAL = "regenerate_reveal"
    """A Regenerate gave the same answer again on a side, which shows the voter that side
    decodes deterministically, and so which roster entry it is."""
    MODERATED = "moderated"
    """Content moderation flagged the battle's prompt or an answer (``warn`` or ``block``)."""
    RATE_LIMITED = "rate_limited"
    """(Reserved) a vote beyond the per-voter daily cap, when enforced after the fact."""


class Refusal(StrEnum):
    """Why a request was refused: a stable label, with the words the voter reads."""

    BAD_PROMPT = "bad_prompt"
    EMPTY_PROMPT = "empty_prompt"
    PROMPT_TOO_LONG = "prompt_too_long"
    NOT_FOUND = "not_found"
    PICK_MODELS = "pick_models"
    UNKNOWN_MODEL = "unknown_model"
    SAME_MODEL = "same_model"
    TURN_LIMIT = "turn_limit"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_LIVE = "too_many_live"
    NOTHING_TO_REGENERATE = "nothing_to_regenerate"
    BUSY = "busy"
    ENDED = "ended"
    DB_UNAVAILABLE = "db_unavailable"
    BAD_VOTE = "bad_vote"
    ALREADY_VOTED = "already_voted"
    ERRORED = "errored"
    NOT_READY = "not_ready"
    MODERATED = "moderated"
    NO_CONSENT = "no_consent"
    NO_PROOF_OF_WORK = "no_proof_of_work"
    BAD_REASON = "bad_reason"
    SIGN_IN_REQUIRED = "sign_in_required"
    MODEL_DISABLED = "model_disabled"
    NO_PAIR = "no_pair"

    @property
    def template(self) -> str:
        """The message, with ``{placeholders}`` for :func:`refuse`'s keywords."""
        return _MESSAGES[self]


_MESSAGES: Mapping[Refusal, str] = MappingProxyType(
    {
        Refusal.BAD_PROMPT: "The prompt must be text.",
        Refusal.EMPTY_PROMPT: "Type a prompt first.",
        Refusal.PROMPT_TOO_LONG: "Your prompt is {length:,} characters; the limit is {limit:,}.",
        # One wording for "gone" and "someone else's": a foreign battle's existence is not
        # disclosed.
        Refusal.NOT_FOUND: "This battle is no longer active. Start a new round.",
        Refusal.PICK_MODELS: "Choose two models.",
        Refusal.UNKNOWN_MODEL: "Unknown model {model!r}.",
        Refusal.SAME_MODEL: "Choose two different models.",
        Refusal.TURN_LIMIT: "This battle reached its limit of {limit} turns. Vote, or start a "
        "new round.",
        Refusal.RATE_LIMITED: "{detail}",
        Refusal.TOO_MANY_LIVE: "You already have {cap} battle{plural} being answered. Wait for "
        "the answers (or stop a battle), then try again.",
        Refusal.NOTHING_TO_REGENERATE: "There is no answer to regenerate.",
        Refusal.BUSY: "Wait for both answers to finish.",
        Refusal.ENDED: "This battle has ended. Start a new round.",
        Refusal.DB_UNAVAILABLE: "The database is briefly unavailable, so nothing was recorded. "
        "Please try again in a few seconds.",
        Refusal.BAD_VOTE: "Unknown vote {vote!r}.",
        Refusal.ALREADY_VOTED: "This battle already has your vote.",
        Refusal.ERRORED: "This battle ended without both answers and cannot be voted on.",
        Refusal.NOT_READY: "Wait for both answers before voting.",
        Refusal.NO_CONSENT: "Please read and accept the terms of use first.",
        Refusal.SIGN_IN_REQUIRED: "This arena is for signed-in members: sign in to prompt and "
        "vote.",
        Refusal.NO_PROOF_OF_WORK: "Your browser has not finished its anti-bot check yet (it "
        "runs by itself and takes a moment). Please try again in a few seconds.",
        Refusal.BAD_REASON: "Unknown reason {label!r}; pick from: {choices}.",
        Refusal.MODEL_DISABLED: "The model {model!r} is not taking battles right now; choose "
        "another.",
        Refusal.NO_PAIR: "Fewer than two models are taking battles right now. Please try again "
        "later.",
        Refusal.MODERATED: "This prompt was blocked by this arena's content rules "
        "({categories}). Nothing was sent to the models.",
    }
)
assert set(_MESSAGES) == set(Refusal), "every refusal needs its message"


class BattleRefused(Exception):
    """A request the arena refuses; ``str(exc)`` is safe to show the user (names no model).

    Attributes
    ----------
    reason
        The :class:`Refusal` (a ``str``: ``"not_found"``, ``"too_many_live"``, ...).
    """

    def __init__(self, reason: Refusal, message: str | None = None) -> None:
        super().__init__(message if message is not None else reason.template)
        self.reason = reason


def refuse(reason: Refusal, **values: Any) -> BattleRefused:
    """The refusal ``reason`` with its catalogue message filled in from ``values``.

    Parameters
    ----------
    reason
        Which refusal.
    **values
        The message's placeholders (e.g. ``limit=8`` for ``turn_limit``).

    Returns
    -------
    BattleRefused
        To be raised by the caller.
    """
    return BattleRefused(reason, reason.template.format(**values))
