"""The app's Insights: the arena's own votes and roster metadata, turned into the figures of
``arena insights`` (fronts, open-weights lag, frontier, price) and the monthly history.

Computed on demand and cached for ``refresh_s``; like the leaderboard it reads counted
anonymous votes only, with a read-only transaction that never waits for voters.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from matplotlib.figure import Figure
from sqlalchemy.engine import Engine

from arena import store
from arena.markup import escape_markdown
from arena.roster import Roster
from ratings.data import BattleDataError, Battles
from ratings.insights import compute_insights, rating_draws, rating_history
from ratings.insights_report import format_insights
from ratings.plots import capability_density_plot, history_plot, open_gap_plot, price_plot

__all__ = ["InsightBoard", "InsightSnapshot"]

_ROUNDS = 1000  # sandwich draws: milliseconds for an arena-sized roster
_SEED = 0


@dataclass(frozen=True)
class InsightSnapshot:
    """Rendered insights: Markdown with every figure's interval, and the four plots."""

    markdown: str
    n_battles: int
    computed_at: float
    figures: dict[str, Figure | None] = field(default_factory=dict)
    insights: dict[str, Any] | None = None


class InsightBoard:
    """Insights of the arena's counted anonymous votes, with the roster's metadata.

    Parameters
    ----------
    engine
        Database engine.
    roster
        Its metadata (sizes, open weights, release dates, prices) feeds the figures.
    refresh_s
        Least seconds between two recomputations.
    """

    def __init__(self, *, engine: Engine, roster: Roster, refresh_s: float) -> None:
        self._engine = engine
        self._roster = roster
        self._refresh_s = refresh_s
        self._lock = threading.Lock()
        self._snapshot: InsightSnapshot | None = None

    def get(self) -> InsightSnapshot:
        """The cached snapshot, recomputed first when older than ``refresh_s``."""
        with self._lock:
            snap = self._snapshot
            if snap is None or time.monotonic() - snap.computed_at >= self._refresh_s:
                snap = self._snapshot = self.compute()
            return snap

    def compute(self) -> InsightSnapshot:
        """Read the counted votes and compute the insights now."""
        try:
            battles = store.battles_for_ratings(engine=self._engine, with_clusters=False)
        except BattleDataError:
            battles = None
        return self.compute_from(battles)

    def compute_from(self, battles: Battles | None) -> InsightSnapshot:
        """Compute the insights of ``battles`` (``None``: no votes yet) with the roster's
        metadata.

        Returns
        -------
        InsightSnapshot
        """
        started = time.monotonic()
        if battles is None or len(battles) == 0 or battles.n_models < 2:
            return InsightSnapshot(
                "No counted votes yet: the insights need votes between at least two models.",
                0,
                started,
            )
        meta = {k: v for k, v in self._roster.model_meta().items() if k in battles.models}
        draws = rating_draws(battles, rounds=_ROUNDS, seed=_SEED)
        ins = compute_insights(draws, meta)
        figures: dict[str, Figure | None] = {
            "capability_density": capability_density_plot(ins),
            "open_gap": open_gap_plot(ins),
            "price": price_plot(ins),
            "history": None,
        }
        if battles.tstamp is not None:
            figures["history"] = history_plot(rating_history(battles))
        known = sum(
            1 for m in meta.values() if m.release_date is not None or m.params_b is not None
        )
        note = (
            f"From {len(battles):,} counted anonymous votes; {known} of {battles.n_models} rated "
            "models have size or release-date metadata in the roster (roster keys params_b, "
            "active_params_b, open_weights, release_date, price_in_per_mtok, "
            "price_out_per_mtok).\n\n"
        )
        # Names can come from an imported log: escaped, they render as text, never as HTML.
        text = format_insights(ins, "md", escape=escape_markdown)
        return InsightSnapshot(note + text, len(battles), started, figures, ins)
