"""The app's leaderboard: recomputed from the database in the background, served from a cache.

Viewing the leaderboard never waits for a recomputation and never blocks voting: readers get
the last finished snapshot at once, and a stale snapshot (older than
``Settings.leaderboard_refresh_s``) starts one background refresh.  The refresh reads with a
deferred (read-only) transaction, which on SQLite WAL never waits for writers.

The plain view (all battles, no style control) comes from
:class:`arena.live_board.LiveBoard`, which folds in the votes committed since its last
update (any replica's) and warm-starts the fit: an update costs milliseconds to a tenth of a
second at any table size, so ``Settings.leaderboard_refresh_s`` can be about a second.  Its
figures are redrawn in the background at most every :data:`FIGURE_REFRESH_S` seconds.  The
category and style-control views are still recomputed from the whole table.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sqlalchemy.engine import Engine

from arena import store
from arena.live_board import LiveBoard
from arena.markup import escape_markdown
from arena.roster import Roster, RosterEntry
from ratings import Leaderboard, RatingOptions, compute_leaderboard
from ratings.data import BattleDataError, Battles
from ratings.export import rank_range_text, style_summary
from ratings.plots import rating_ci_plot, win_rate_heatmap

__all__ = [
    "CATEGORY_CHOICES",
    "COLUMNS",
    "FIGURE_REFRESH_S",
    "VIEW_REFRESH_S",
    "Standings",
    "StandingsSnapshot",
    "View",
]

log = logging.getLogger(__name__)
#: A refresh slower than this is logged.
SLOW_REFRESH_S = 5.0

COLUMNS = (
    "Rank",
    "Rank range",
    "Model",
    "Rating",
    "95% CI",
    "P(#1)",
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


# The tab's category selector: label -> tag (None: every battle).  hard_prompt is left out
# until a judge model tags it.
CATEGORY_CHOICES: dict[str, str | None] = {
    "Overall": None,
    "Coding": "coding",
    "Math": "math",
    "Multi-turn": "multi_turn",
    "Long query (500+ tokens)": "long_query",
}


_APP_STYLE_L2 = 1.0

#: Least seconds between two redraws of the plain view's CI plot and heatmap (matplotlib:
#: about a second of CPU for 129 models); its table and note follow every update.
FIGURE_REFRESH_S = 30.0
#: Least seconds between two recomputations of a category or style-control view (each
#: reads the whole vote table).
VIEW_REFRESH_S = 60.0


@dataclass(frozen=True)
class View:
    """Which leaderboard: all battles or one category, with or without style control."""

    category: str | None = None
    style_control: bool = False


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
    last_vote_id: int = 0  # plain view: every counted vote up to this id is in the ratings

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
        # One snapshot (and at most one running refresh) per view; views are few (categories
        # x style control) and each is computed only once someone asks for it.
        self._snapshots: dict[View, StandingsSnapshot] = {}
        self._running: dict[View, threading.Thread] = {}
        self._live = LiveBoard(engine)
        self._figures_at = -float("inf")
        self._drawing: threading.Thread | None = None
        self._live_cpu_s = 0.0

    @property
    def live_cpu_s(self) -> float:
        """CPU seconds this process has spent on updates of the live (plain) board: the
        board's cost, which ``benchmarks/live_bench.py`` divides by the votes folded."""
        return self._live_cpu_s

    @property
    def refresh_s(self) -> float:
        """Least seconds between two recomputations."""
        return self._refresh_s

    def get(self, view: View | None = None, *, wait: bool = False) -> StandingsSnapshot:
        """Return the latest snapshot of a view, starting a background refresh when stale.

        Parameters
        ----------
        view
            Which leaderboard (default: all battles, no style control).
        wait
            Block until a refresh that is due (or running) has finished (the first view of a
            fresh app and tests use it).

        Returns
        -------
        StandingsSnapshot
        """
        view = view or View()
        with self._lock:
            snap = self._snapshots.get(view)
            # The plain view is live (cheap folds); the others recompute the whole table.
            every = self._refresh_s if view == View() else max(self._refresh_s, VIEW_REFRESH_S)
            stale = snap is None or time.monotonic() - snap.computed_at >= every
            if stale and view not in self._running:
                thread = threading.Thread(
                    target=self._refresh, args=(view,), name="arena-standings", daemon=True
                )
                self._running[view] = thread
                thread.start()
            running = self._running.get(view)
        if (wait or snap is None) and running is not None:
            running.join()
            with self._lock:
                snap = self._snapshots.get(view)
        assert snap is not None
        return snap

    def invalidate(self) -> None:
        """Make the next :meth:`get` of every view recompute (after imports, in tests)."""
        self._live.invalidate()
        with self._lock:
            self._figures_at = -float("inf")
            for view, snap in self._snapshots.items():
                self._snapshots[view] = dataclasses.replace(snap, computed_at=float("-inf"))

    def _refresh(self, view: View) -> None:
        t0, cpu0 = time.monotonic(), time.thread_time()
        try:
            snap = self.compute(view)
            if view == View():
                self._live_cpu_s += time.thread_time() - cpu0  # one refresh per view at a time
            took = time.monotonic() - t0
            if took > SLOW_REFRESH_S:  # worth knowing: the board waits for it
                log.info("leaderboard refresh (%s) took %.1f s", view, took)
        except Exception:  # keep serving the old snapshot; the log says why
            log.exception("leaderboard refresh failed")
            snap = self._snapshots.get(view) or StandingsSnapshot(
                [], "The leaderboard could not be computed; see the server log.", 0, 0.0
            )
        with self._lock:
            self._snapshots[view] = snap
            self._running.pop(view, None)

    def compute(self, view: View | None = None) -> StandingsSnapshot:
        """Recompute a view's leaderboard now (synchronously)."""
        view = view or View()
        started = time.monotonic()
        plain = view == View()
        last_vote_id = 0
        if plain:
            live = self._live.update()
            if live.leaderboard is None:  # fewer than two models with counted votes
                return StandingsSnapshot(
                    [],
                    "No counted votes yet. Vote in the Battle tab; the leaderboard updates "
                    f"every {self._refresh_s:g} s.",
                    0,
                    started,
                    last_vote_id=live.last_vote_id,
                )
            return self._snapshot_of(live.leaderboard, view, started, live.last_vote_id)
        try:
            battles = store.battles_for_ratings(
                engine=self._engine, with_clusters=False, with_context=not plain
            )
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
        empty = self._empty_view(battles, view)
        if empty is not None:
            return StandingsSnapshot([], empty, 0, started)
        if view.category is not None:
            mask = battles.categories[view.category]
            battles = battles.select(mask)
        if battles.n_models < 2:
            return StandingsSnapshot([], "Too few models in this category yet.", 0, started)
        # A small ridge on the style coefficients (one battle's worth of information) keeps
        # them finite on a young arena, where a few battles can separate perfectly by length.
        options = RatingOptions(style_control=view.style_control, style_l2=_APP_STYLE_L2)
        lb = compute_leaderboard(battles, options)
        return self._snapshot_of(lb, view, started, last_vote_id)

    def _snapshot_of(
        self, lb: Leaderboard, view: View, started: float, last_vote_id: int
    ) -> StandingsSnapshot:
        plain = view == View()
        deprecated = store.deprecated_model_names(engine=self._engine)
        if self._on_refresh is not None and plain:
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
                    f"{100 * r.p_rank1:.1f}%",
                    r.battles,
                    (entry.organisation if entry else None) or "",
                    (entry.license if entry else None) or "",
                    "" if open_w is None else ("yes" if open_w else "no"),
                    *_metadata_cells(entry),
                ]
            )
        deprecated_rows = [i for i, r in enumerate(lb.rows) if r.model in deprecated]
        label = next(k for k, v in CATEGORY_CHOICES.items() if v == view.category)
        method = "Style-controlled Bradley-Terry" if view.style_control else "Bradley-Terry"
        note = (
            f"{label}: {method} ratings from {lb.n_battles:,} counted anonymous votes (ties "
            "count half a win each side; mean rating 1000), 95% sandwich confidence intervals. "
            "Rank: 1 + the number of models whose lower bound is above this model's upper "
            "bound (LMArena's rank); rank range: the best and worst rank the intervals allow; "
            "P(#1): the share of draws from the intervals' normal approximation in which the "
            "model is on top."
        )
        if view.style_control:
            note += " " + escape_markdown(style_summary(lb).strip())
        for extra in lb.notes:
            note += f" Note: {escape_markdown(extra)}."
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
        ci_figure: Figure | None
        heatmap: Figure | None
        previous = self._snapshots.get(view) if plain else None
        if previous is None or previous.ci_figure is None:
            ci_figure, heatmap = rating_ci_plot(lb), win_rate_heatmap(lb)
            if plain:
                self._figures_at = started
        else:
            # Redrawn in the background (about a second for 129 models): the table and the
            # note of this update are published at once.
            ci_figure, heatmap = previous.ci_figure, previous.heatmap_figure
            if started - self._figures_at >= FIGURE_REFRESH_S and self._drawing is None:
                self._figures_at = started
                self._drawing = threading.Thread(
                    target=self._redraw, args=(lb,), name="arena-standings-figures", daemon=True
                )
                self._drawing.start()
        return StandingsSnapshot(
            rows,
            note,
            lb.n_battles,
            started,
            ci_figure,
            heatmap,
            frozenset(deprecated_rows),
            last_vote_id,
        )

    def _redraw(self, lb: Leaderboard) -> None:
        """New figures for the plain view's current snapshot."""
        ci_figure: Figure | None
        heatmap: Figure | None
        try:
            ci_figure, heatmap = rating_ci_plot(lb), win_rate_heatmap(lb)
        except Exception:  # keep the old figures; the log says why
            log.exception("leaderboard figures failed")
            ci_figure = heatmap = None
        with self._lock:
            snap = self._snapshots.get(View())
            if ci_figure is not None and snap is not None:
                self._snapshots[View()] = dataclasses.replace(
                    snap, ci_figure=ci_figure, heatmap_figure=heatmap
                )
            self._drawing = None

    def _empty_view(self, battles: Battles, view: View) -> str | None:
        """Why a view has nothing to show yet, or ``None`` when it has battles."""
        if view.category is not None:
            flags = battles.categories.get(view.category)
            if flags is None or not flags.any():
                return (
                    "No counted votes in this category yet (battles are tagged when voted; "
                    "older ones after `arena db backfill-style`)."
                )
        if view.style_control and (
            battles.style is None or not np.isfinite(battles.style).all(axis=(1, 2)).any()
        ):
            return (
                "Style control needs the battles' style features (computed when a battle is "
                "voted; for older battles run `arena db backfill-style`)."
            )
        return None


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
