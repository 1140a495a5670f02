"""Typed failures of the store.  Callers branch on the class, never on message text."""

from __future__ import annotations

from ratings.data import BattleDataError

__all__ = [
    "AlreadyVoted",
    "BattleErrored",
    "BattleImportError",
    "BattleNotFound",
    "BattleNotReady",
    "ForeignBattle",
    "InvalidTransition",
    "InvalidValue",
    "SchemaOutOfDate",
    "StoreError",
    "UnknownModel",
    "VoteNotFound",
    "VoteRefused",
]


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class SchemaOutOfDate(StoreError):
    """The database schema is not the one this version of Arena expects.

    Attributes
    ----------
    current
        The database's Alembic revision (``None``: no Arena tables at all).
    expected
        The revision this code needs.
    """

    def __init__(self, message: str, *, current: str | None, expected: str) -> None:
        super().__init__(message)
        self.current = current
        self.expected = expected


class InvalidValue(StoreError, ValueError):
    """An argument outside its allowed set (winner, mode, side, status, probability...)."""


class UnknownModel(StoreError, LookupError):
    """A model name that is not in the ``model`` table."""


class BattleNotFound(StoreError, LookupError):
    """No battle has this id."""


class VoteNotFound(StoreError, LookupError):
    """The battle has no vote."""


class InvalidTransition(StoreError):
    """A status change the battle lifecycle does not allow (e.g. anything after ``voted``)."""


class VoteRefused(StoreError):
    """A vote that must not be recorded.  Subclasses say why.

    Attributes
    ----------
    battle_id
        The battle the vote was for.
    """

    def __init__(self, message: str, *, battle_id: str) -> None:
        super().__init__(message)
        self.battle_id = battle_id


class BattleNotReady(VoteRefused):
    """The battle is still streaming: both answers must be complete before a vote."""


class BattleErrored(VoteRefused):
    """The battle ended in ``error`` or was ``abandoned``: it is not votable, not counted."""


class ForeignBattle(VoteRefused):
    """The voter's key is not the key of the user the battle was shown to."""


class AlreadyVoted(VoteRefused):
    """The battle already has its one vote (enforced by a UNIQUE constraint)."""


class BattleImportError(BattleDataError, StoreError):
    """A battle file that cannot be imported; names the file, the line and the field.

    Raised before anything is written: an import is all-or-nothing.
    """
