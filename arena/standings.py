"""The app's leaderboard: recomputed from the database in the background, served from a cache.

Viewing the leaderboard never waits for a recomputation and never blocks voting: readers get
the last finished snapshot at once, and a stale snapshot (older than
``Settings.leaderboard_refresh_s``) starts one background refresh.  The refresh reads with a
deferred (read-only) transaction, which on SQLite WAL never waits for writers.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from matplotlib.figure import Figure
from sqlalchemy.engine import Engine

from arena import store
from arena.markup import escape_markdown
from arena.roster import Roster, RosterEntry
from ratings import Leaderboard, RatingOptions, compute_leaderboard
from ratings.data import BattleDataError
from ratings.export import rank_range_text
from ratings.plots import rating_ci_plot, win_rate_heatmap

__all__ = ["COLUMNS", "Standings", "StandingsSnapshot"]

log = logging.getLogger(__name__)

COLUMNS = (
    "Rank",
    "Rank range",
    "Model",
    "Rating",
    "95% CI",
    "Battles",
    "Organisation",
    "License",
    "Open weights",
    # Roster metadata for the questions people bring (size vs skill, price); empty when the
    # roster does not say.
    "Params (B)",
    "Tokens (T)",
    "Price in / out per Mtok",
    "Released",
    "Knowledge cutoff",
)


@dataclass(frozen=True)
class StandingsSnapshot:
    """One computed leaderboard, ready to render."""

    rows: list[list[Any]]
    note: str
    n_battles: int
    computed_at: float
    ci_figure: Figure | None = None
    heatmap_figure: Figure | None = None
    deprecated_rows: frozenset[int] = frozenset()  # indices into rows

    def shown_rows(self, include_deprecated: bool = True) -> list[list[Any]]:
        """The table rows, optionally without deprecated models."""
        if include_deprecated:
            return self.rows
        return [r for i, r in enumerate(self.rows) if i not in self.deprecated_rows]


class Standings:
    """Background-refreshed leaderboard of counted anonymous votes.

    Parameters
    ----------
    engine
        Database engine.
    roster
        For metadata columns (organisation, license, open weights).
    refresh_s
        Least seconds between two recomputations.
    min_battles
        Models with fewer counted battles are marked preliminary.
    on_refresh
        Called with each new leaderboard (the app feeds it to an active sampling policy).
    """

    def __init__(
        self,
        *,
        engine: Engine,
        roster: Roster,
        refresh_s: float,
        min_battles: int,
        on_refresh: Callable[[Leaderboard], None] | None = None,
    ):
        self._on_refresh = on_refresh
        self._engine = engine
        self._roster = roster
        self._refresh_s = refresh_s
        self._min_battles = min_battles
        self._lock = threading.Lock()
        self._snapshot: StandingsSnapshot | None = None
        self._running: threading.Thread | None = None

    @property
    def refresh_s(self) -> float:
        """Least seconds between two recomputations."""
        return self._refresh_s

    def get(self, *, wait: bool = False) -> StandingsSnapshot:
        """Return the latest snapshot, starting a background refresh when it is stale.

        Parameters
        ----------
        wait
            Block until a refresh that is due (or running) has finished (the first view of a
            fresh app and tests use it).

        Returns
        -------
        StandingsSnapshot
        """
        with self._lock:
            snap = self._snapshot
            stale = snap is None or time.monotonic() - snap.computed_at >= self._refresh_s
            if stale and self._running is None:
                self._running = threading.Thread(
                    target=self._refresh, name="arena-standings", daemon=True
                )
                self._running.start()
            running = self._running
        if (wait or snap is None) and running is not None:
            running.join()
            with self._lock:
                snap = self._snapshot
        assert snap is not None
        return snap

    def invalidate(self) -> None:
        """Make the next :meth:`get` recompute (used after imports and in tests)."""
        with self._lock:
            if self._snapshot is not None:
                self._snapshot = dataclasses.replace(self._snapshot, computed_at=float("-inf"))

    def _refresh(self) -> None:
        try:
            snap = self.compute()
        except Exception:  # keep serving the old snapshot; the log says why
            log.exception("leaderboard refresh failed")
            snap = self._snapshot or StandingsSnapshot(
                [], "The leaderboard could not be computed; see the server log.", 0, 0.0
            )
        with self._lock:
            self._snapshot = snap
            self._running = None

    def compute(self) -> StandingsSnapshot:
        """Recompute the leaderboard now (synchronously)."""
        started = time.monotonic()
        try:
            battles = store.battles_for_ratings(engine=self._engine, with_clusters=False)
        except BattleDataError:
            battles = None  # no counted votes yet
        if battles is None or len(battles) == 0 or battles.n_models < 2:
            return StandingsSnapshot(
                [],
                "No counted votes yet. Vote in the Battle tab; the leaderboard updates "
                f"every {self._refresh_s:g} s.",
                0,
                started,
            )
        lb = compute_leaderboard(battles, RatingOptions())
        deprecated = store.deprecated_model_names(engine=self._engine)
        if self._on_refresh is not None:
            self._on_refresh(lb)
        rows: list[list[Any]] = []
        preliminary = []
        for r in lb.rows:
            entry = self._roster.get(r.model)
            name = r.model
            if r.battles < self._min_battles:
                name += " *"
                preliminary.append(r.model)
            if r.model in deprecated:
                name += " (deprecated)"
            rank_range = rank_range_text(r)
            open_w = entry.open_weights if entry else None
            rows.append(
                [
                    r.rank,
                    rank_range,
                    name,
                    round(r.rating, 1),
                    f"+{r.upper - r.rating:.1f} / -{r.rating - r.lower:.1f}",
                    r.battles,
                    (entry.organisation if entry else None) or "",
                    (entry.license if entry else None) or "",
                    "" if open_w is None else ("yes" if open_w else "no"),
                    *_metadata_cells(entry),
                ]
            )
        deprecated_rows = [i for i, r in enumerate(lb.rows) if r.model in deprecated]
        note = (
            f"Bradley-Terry ratings from {lb.n_battles:,} counted anonymous votes (ties count "
            "half a win each side; mean rating 1000), 95% sandwich confidence intervals. "
            "Rank range: the best and worst rank the intervals allow."
        )
        if preliminary:
            note += (
                f" * Preliminary: fewer than {self._min_battles} battles "
                f"({', '.join(escape_markdown(m) for m in preliminary)})."
            )
        if deprecated_rows:
            gone = ", ".join(
                escape_markdown(m) for m in sorted(lb.rows[i].model for i in deprecated_rows)
            )
            note += f" Deprecated models ({gone}) are no longer served; their battles still count."
        for w in lb.warnings:  # warnings quote model names
            note += f" Warning: {escape_markdown(w)}"
        return StandingsSnapshot(
            rows,
            note,
            lb.n_battles,
            started,
            rating_ci_plot(lb),
            win_rate_heatmap(lb),
            frozenset(deprecated_rows),
        )


def _metadata_cells(entry: RosterEntry | None) -> list[str]:
    """Params (with active params for mixture-of-experts), tokens, prices, dates."""
    if entry is None:
        return ["", "", "", "", ""]

    def num(v: float | None) -> str:
        return "" if v is None else f"{v:g}"

    params = num(entry.params_b)
    if entry.active_params_b is not None:
        params = f"{params} ({num(entry.active_params_b)} active)".strip()
    price_in, price_out = num(entry.price_in_per_mtok), num(entry.price_out_per_mtok)
    price = f"{price_in or '?'} / {price_out or '?'}" if price_in or price_out else ""
    return [
        params,
        num(entry.training_tokens_t),
        price,
        entry.release_date.isoformat() if entry.release_date else "",
        entry.knowledge_cutoff.isoformat() if entry.knowledge_cutoff else "",
    ]
