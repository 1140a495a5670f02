"""Battles in progress: what the browser may see of them, and what only the server holds.

:class:`TurnUpdate`, :class:`SideView` and :class:`Reveal` are the shapes handed to the UI;
none of them names a model before the vote is committed.  :class:`LiveBattle` is the server's
own state of one battle (its pair, its history, who owns it), and :class:`LiveBattles` keeps
them under opaque ids, checks ownership on every lookup, and caps how many battles one voter
or one address may have being answered at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from arena.backends import ChatMessage
from arena.lifecycle import BattleStatus, Refusal, refuse

__all__ = ["LiveBattle", "LiveBattles", "Reveal", "SideView", "TurnUpdate"]

log = logging.getLogger(__name__)

# Live battles nobody touched for this long are forgotten (their rows stay in the database).
IDLE_FORGET_S = 3600.0


@dataclass(frozen=True)
class SideView:
    """One side's answer to the current turn, as the browser may see it."""

    text: str
    done: bool
    error: str | None = None


@dataclass(frozen=True)
class TurnUpdate:
    """A snapshot of the current turn: safe to send to the browser at any time.

    Attributes
    ----------
    battle_id
        Opaque id (a UUID); identifies nothing about the models.
    turn
        1-based turn number.
    prompt
        The user's message of this turn.
    a, b
        The two answers so far.
    status
        ``streaming``, ``ready`` (votable), ``error`` or ``abandoned``.
    message
        A line for the user when the battle ended without being votable.
    withdrawn
        The voter left this battle (New round) while it streamed: the update must not be
        shown, as the panels already belong to the next round.
    """

    battle_id: str
    turn: int
    prompt: str
    a: SideView
    b: SideView
    status: str
    message: str | None = None
    withdrawn: bool = False

    @property
    def votable(self) -> bool:
        """Whether the vote buttons should be active."""
        return self.status == BattleStatus.READY


@dataclass(frozen=True)
class Reveal:
    """The names behind a battle, returned only after its vote is committed."""

    battle_id: str
    model_a: str
    model_b: str
    winner: str


@dataclass
class LiveBattle:
    """Server-side state of a battle in progress (never leaves the server)."""

    battle_id: str
    owner: str
    user_key: str
    mode: str
    model_a: str
    model_b: str
    address_key: str = ""
    history: dict[str, list[ChatMessage]] = field(default_factory=lambda: {"a": [], "b": []})
    turn: int = 0
    status: BattleStatus = BattleStatus.STREAMING
    last_prompt: str = ""
    first_prompt: str = ""
    requests: dict[str, str] = field(default_factory=dict)
    stop_requested: bool = False
    # The voter stopped this turn by leaving the battle (New round): nothing more is shown.
    withdrawn: bool = False
    leaked: set[str] = field(default_factory=set)
    # A Regenerate gave the same answer again on a side: that side decodes deterministically,
    # which tells the voter which roster entry it is (issue 11); the vote must not count.
    repeat_revealed: bool = False
    # Moderation flagged a prompt or an answer in ``warn`` mode: the vote will not count.
    moderated: bool = False
    busy: bool = False
    # Set when a turn stops streaming; a new one per turn, as an Event binds to one loop.
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    touched: float = field(default_factory=time.monotonic)

    def model(self, side: str) -> str:
        """The model answering ``side`` (``a`` or ``b``)."""
        return self.model_a if side == "a" else self.model_b


class LiveBattles:
    """The battles in progress, by id, with ownership checks and the live-battle caps.

    Parameters
    ----------
    max_per_voter, max_per_address
        Most battles one voter key / one address key may have being answered at once
        (``0``: no cap).
    """

    def __init__(self, *, max_per_voter: int, max_per_address: int) -> None:
        self._by_id: dict[str, LiveBattle] = {}
        self._caps = (max_per_voter, max_per_address)
        self._answering: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, live: LiveBattle) -> None:
        """Hold a new battle (and forget the ones idle for an hour)."""
        cutoff = time.monotonic() - IDLE_FORGET_S
        for bid in [b for b, lv in self._by_id.items() if lv.touched < cutoff and not lv.busy]:
            del self._by_id[bid]
        self._by_id[live.battle_id] = live

    def get(self, *, owner: str, user_key: str, battle_id: str) -> LiveBattle:
        """The battle, if it is held and belongs to this session *and* this voter.

        Raises
        ------
        arena.lifecycle.BattleRefused
            ``not_found`` for an unknown battle and for someone else's alike: a foreign
            battle's existence is not disclosed.  Both keys are checked because a session
            hash alone leaks (logs, shared links) and must not let another address continue,
            stop or vote on the battle.
        """
        live = self._by_id.get(battle_id) if isinstance(battle_id, str) else None
        if live is None:
            raise refuse(Refusal.NOT_FOUND)
        if live.owner != owner or live.user_key != user_key:
            log.info("battle %s: refused an action from another session or voter", battle_id)
            raise refuse(Refusal.NOT_FOUND)
        live.touched = time.monotonic()
        return live

    @contextlib.contextmanager
    def answering(self, *, user_key: str, address_key: str) -> Iterator[None]:
        """Hold one of the voter's (and the address's) places for a battle being answered.

        Without this cap one address opened 20 battles at once, well under its prompts per
        minute, and held every model slot while other voters timed out (issue 11).  The
        check and the count happen with no ``await`` between them, so concurrent starts
        cannot slip past the cap together.

        Raises
        ------
        arena.lifecycle.BattleRefused
            ``too_many_live`` when either cap is reached.
        """
        keys = list(zip((f"voter:{user_key}", f"address:{address_key}"), self._caps, strict=True))
        for key, cap in keys:
            if cap and self._answering.get(key, 0) >= cap:
                raise refuse(Refusal.TOO_MANY_LIVE, cap=cap, plural="s" if cap != 1 else "")
        for key, _ in keys:
            self._answering[key] = self._answering.get(key, 0) + 1
        try:
            yield
        finally:
            for key, _ in keys:
                left = self._answering[key] - 1
                if left:
                    self._answering[key] = left
                else:
                    del self._answering[key]
