"""Shapes shared by every checker: what a finding is, what a decision is, and the modes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

__all__ = ["Action", "Checker", "Decision", "Finding", "ModerationMode"]


class ModerationMode(StrEnum):
    """What the arena does with a finding (``Settings.moderation``)."""

    OFF = "off"
    """No checks at all."""
    LOG = "log"
    """Check and store the decision; change nothing for the voter."""
    WARN = "warn"
    """Check, store, tell the voter; the battle goes on but its vote is not counted."""
    BLOCK = "block"
    """Check, store, and stop: a flagged prompt never reaches a model, a flagged answer is
    never shown."""


class Action(StrEnum):
    """What happened because of a decision."""

    NONE = "none"
    LOGGED = "logged"
    WARNED = "warned"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class Finding:
    """One thing a checker found.

    Attributes
    ----------
    checker, version
        Which checker (and which version of it) found it.
    category
        What kind of thing (``email``, ``phone``, ``card``, ``ip``, ``blocklist``, or a guard
        model's category such as ``S1``).
    detail
        Operator-facing detail (the blocklist rule that matched, ...); never shown to voters.
    start, end
        Where in the text, when the checker knows (``-1`` otherwise).
    """

    checker: str
    version: str
    category: str
    detail: str = ""
    start: int = -1
    end: int = -1


@dataclass(frozen=True)
class Decision:
    """The outcome of checking one text (a prompt or an answer)."""

    where: str
    findings: tuple[Finding, ...] = ()
    action: Action = Action.NONE
    checkers: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def flagged(self) -> bool:
        """Whether any checker found anything."""
        return bool(self.findings)

    @property
    def categories(self) -> tuple[str, ...]:
        """The distinct categories found, in order."""
        return tuple(dict.fromkeys(f.category for f in self.findings))


class Checker(Protocol):
    """A synchronous, fast checker (runs on every streamed frame in ``block`` mode)."""

    name: str
    version: str

    def check(self, text: str) -> list[Finding]:
        """Everything this checker finds in ``text``."""
        ...
