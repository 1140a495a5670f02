"""One replica's view of the live roster: the admin page's changes, read from the database.

Replicas share nothing but the database, so the admin page never talks to a replica: it
writes a model event (:mod:`arena.store.live_roster`), and every replica notices on its next
new battle (at most every ``ARENA_ROSTER_POLL_S`` seconds) by comparing the newest model
event id with the one it last applied -- one indexed ``max(id)`` query.  Only when that moved
is the roster's state read and the sampling policy rebuilt.

:func:`plan` is the pure part: from the state and the models this replica can serve, which
are drawn for anonymous battles and with what weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from arena.roster import Roster, RosterEntry, parse_entry_toml
from arena.store.live_roster import ModelState, latest_model_event_id, roster_state

__all__ = ["ADDED_SOURCE", "LivePlan", "RosterSync", "added_entries", "plan"]

#: Where an entry added on the admin page "comes from" (named in its errors; relative model
#: paths resolve beside the serving roster file).
ADDED_SOURCE = "(admin page)"


@dataclass(frozen=True)
class LivePlan:
    """Which models new anonymous battles draw, with which weights; which are disabled."""

    candidates: tuple[str, ...]
    weights: Mapping[str, float]
    disabled: frozenset[str]
    #: Whether anything on the admin page changes the configured policy at all.
    changed: bool


def plan(
    *,
    base: Sequence[str],
    added: Sequence[str],
    weights: Mapping[str, float],
    state: Mapping[str, ModelState],
) -> LivePlan:
    """Apply the admin page's state to the configured candidates.

    Parameters
    ----------
    base
        The configured policy's models (the roster minus a guard model, or what a test set).
    added
        Models added on the admin page that this replica has loaded.
    weights
        The roster file's sampling weights.
    state
        :func:`arena.store.live_roster.roster_state`.

    Returns
    -------
    LivePlan
    """
    disabled = frozenset(n for n, s in state.items() if not s.enabled)
    candidates = tuple(n for n in (*base, *added) if n not in disabled)
    live_weights: dict[str, float] = {}
    for n in candidates:
        s = state.get(n)
        live_weights[n] = (
            s.weight if s is not None and s.weight is not None else weights.get(n, 1.0)
        )
    reweighted = any(
        s.weight is not None and s.weight != weights.get(n)
        for n, s in state.items()
        if n in candidates
    )
    changed = bool(added) or candidates != tuple(base) or reweighted
    return LivePlan(candidates, live_weights, disabled, changed)


def added_entries(roster: Roster, state: Mapping[str, ModelState]) -> list[RosterEntry]:
    """Entries added on the admin page that are not in ``roster`` yet, parsed and validated.

    Raises
    ------
    arena.roster.RosterError
        A stored entry no longer validates here (e.g. its model file is missing on this
        machine); the message names it.
    """
    source = roster.path.parent / ADDED_SOURCE
    return [
        parse_entry_toml(s.entry_toml, path=source)
        for name, s in sorted(state.items())
        if s.entry_toml and name not in roster
    ]


class RosterSync:
    """Polls the database for roster changes, at most every ``poll_s`` seconds.

    Parameters
    ----------
    engine
        The arena's database.
    poll_s
        Least seconds between two checks (0: check on every call).
    clock
        Monotonic clock (tests pass their own).
    """

    def __init__(
        self, *, engine: Engine, poll_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._engine = engine
        self.poll_s = poll_s
        self._clock = clock
        self._checked_at = -math.inf
        self.seen_event_id: int | None = None

    def due(self) -> bool:
        """Whether a check is due (always true before the first one)."""
        return self._clock() - self._checked_at >= self.poll_s

    def poll(self, *, force: bool = False) -> dict[str, ModelState] | None:
        """The roster state when it changed since the last poll, else ``None``.

        Blocking (database); run it in a worker thread.  The event id is read before the
        state, so a change committed between the two reads is picked up again next time.
        """
        if not force and not self.due():
            return None
        self._checked_at = self._clock()
        latest = latest_model_event_id(engine=self._engine)
        if latest == self.seen_event_id:
            return None
        state = roster_state(engine=self._engine)
        self.seen_event_id = latest
        return state
