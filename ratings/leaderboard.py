"""From battles to a leaderboard: fit, confidence intervals, ranks, statistics, matrices.

This is the one place that strings the pieces together (``data`` -> ``bt``/``elo`` ->
``bootstrap`` -> table); every exporter and plot reads the :class:`Leaderboard` it returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.special import expit, ndtri

from ratings.bootstrap import ProgressFactory, bootstrap_thetas, percentile_interval
from ratings.bt import (
    DEFAULT_L2,
    ELO_SCALE,
    MAX_COVARIANCE_MODELS,
    BTFit,
    check_covariance_size,
    covariance,
    fit_bt,
)
from ratings.data import A_SCORE, BattleDataError, Battles, Counts
from ratings.elo import EloOptions, battle_order, online_elo

__all__ = [
    "CI_METHODS",
    "MAX_BOOTSTRAP_MODELS",
    "MAX_MODELS",
    "METHODS",
    "Leaderboard",
    "LeaderboardRow",
    "OptionError",
    "RatingOptions",
    "compute_leaderboard",
    "rank_ranges",
]

METHODS = ("bt", "elo")
CI_METHODS = ("sandwich", "fisher", "bootstrap", "none")
CENTER = 1000.0
# The BT bootstrap solves a dense m x m system per round (batched): past this many models a
# thousand rounds take hours.  The sandwich and Fisher limit is bt.MAX_COVARIANCE_MODELS.
MAX_BOOTSTRAP_MODELS = 2000
# The average-win-rate column compares every model with every other (O(m^2) time, done in
# blocks so memory stays O(m)); at this size it takes seconds.
MAX_MODELS = 20_000
_BLOCK = 1024  # rows of the predicted-win-rate matrix computed at a time


class OptionError(ValueError):
    """Options that cannot work together, or not on these battles.

    Parameters
    ----------
    option
        The :class:`RatingOptions` field at fault (the command line maps it to its flag).
    message
        What is wrong, in terms of option names and values.
    """

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        super().__init__(message)


FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RatingOptions:
    """Everything that determines a leaderboard besides the battles.

    Attributes
    ----------
    method
        ``"bt"`` (Bradley-Terry MLE, default) or ``"elo"`` (online Elo).
    ci
        ``"sandwich"`` (robust, default for BT), ``"fisher"``, ``"bootstrap"`` or ``"none"``.
    rounds
        Bootstrap rounds.
    cluster_by
        Battle column to cluster on (``"judge"`` or ``"question_id"``) for the sandwich or the
        bootstrap, or ``None``.
    seed
        Seed of the bootstrap.
    anchor
        ``(model, rating)``: shift the scale so that this model has this rating.  Default:
        the mean rating over the models is 1000.
    min_battles
        Leave out models with fewer battles (and their battles) before fitting.
    l2
        Ridge penalty of the BT fit.
    level
        Confidence level of the intervals.
    elo
        Online Elo settings (``method="elo"``).
    """

    method: str = "bt"
    ci: str = "sandwich"
    rounds: int = 1000
    cluster_by: str | None = None
    seed: int = 0
    anchor: tuple[str, float] | None = None
    min_battles: int = 0
    l2: float = DEFAULT_L2
    level: float = 0.95
    elo: EloOptions = field(default_factory=EloOptions)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise OptionError(
                "method", f"unknown method {self.method!r} (expected one of {METHODS})"
            )
        if self.ci not in CI_METHODS:
            raise OptionError("ci", f"unknown CI method {self.ci!r} (expected one of {CI_METHODS})")
        if self.method == "elo" and self.ci in ("sandwich", "fisher"):
            raise OptionError(
                "ci",
                f"ci={self.ci!r} needs a likelihood and exists only for method='bt'; "
                "use ci='bootstrap' or ci='none' with online Elo",
            )
        if self.method == "elo" and self.cluster_by is not None:
            raise OptionError("cluster_by", "cluster_by is supported with method='bt' only")
        if self.rounds < 1:
            raise OptionError("rounds", f"rounds must be >= 1, got {self.rounds}")
        if not 0 < self.level < 1:
            raise OptionError("level", f"level must be in (0, 1), got {self.level}")
        if self.min_battles < 0:
            raise OptionError("min_battles", f"min_battles must be >= 0, got {self.min_battles}")


@dataclass(frozen=True)
class LeaderboardRow:
    """One model's line.  ``rank_upper``/``rank_lower`` are the best/worst rank the
    intervals allow: ``rank_upper = 1 + #{j : lower_j > upper_i}``,
    ``rank_lower = #models - #{j : upper_j < lower_i}``."""

    model: str
    rating: float
    lower: float
    upper: float
    rank: int
    rank_upper: int
    rank_lower: int
    battles: int
    wins: int
    ties: int
    losses: int
    win_rate: float
    avg_win_rate: float


@dataclass(frozen=True, eq=False)
class Leaderboard:
    """A computed leaderboard.  ``rows`` are sorted by rating (then name); the matrices are
    indexed like ``models`` (alphabetical) and built on first use (``m x m`` each, which
    with many models is too much to build for a table that does not show them).

    Attributes
    ----------
    counts
        The aggregated battles the leaderboard was computed from.
    strength, scale, base
        Fitted strengths and their win-probability law,
        ``P(i beats j) = 1 / (1 + base ** ((strength_j - strength_i) / scale))``.
    """

    options: RatingOptions
    n_battles: int
    rows: tuple[LeaderboardRow, ...]
    models: tuple[str, ...]
    counts: Counts
    strength: FloatArray
    scale: float
    base: float
    components: tuple[tuple[str, ...], ...]
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def connected(self) -> bool:
        return len(self.components) <= 1

    @cached_property
    def battle_counts(self) -> FloatArray:
        """Battles between each pair of models (symmetric)."""
        return _matrices(self.counts)[0]

    @cached_property
    def win_rates(self) -> FloatArray:
        """Observed score of the row model against the column model (ties = 1/2; NaN when
        they never met)."""
        return _matrices(self.counts)[1]

    @cached_property
    def predicted_win_rates(self) -> FloatArray:
        """Win probability of the row model over the column model under the fit."""
        return _predicted(self.strength, self.scale, self.base)


def compute_leaderboard(
    battles: Battles,
    options: RatingOptions | None = None,
    *,
    progress: ProgressFactory | None = None,
) -> Leaderboard:
    """Compute a leaderboard from battles.

    Parameters
    ----------
    battles
        The battles (already filtered to what should count).
    options
        How to rate (method, CI, anchor, ...).
    progress
        Optional progress-bar factory for the bootstrap.

    Returns
    -------
    Leaderboard

    Raises
    ------
    BattleDataError
        When ``min_battles`` leaves nothing, the anchor model is unknown, or ``cluster_by``
        names a column the battles lack.
    ratings.bt.ConvergenceError
        When the fit does not converge.
    """
    opt = options or RatingOptions()
    notes = list(battles.notes)
    if opt.min_battles > 0:
        battles, dropped = _apply_min_battles(battles, opt.min_battles)
        if dropped:
            notes.append(
                f"left out {len(dropped)} model(s) with fewer than {opt.min_battles} battles: "
                + ", ".join(dropped)
            )
    if opt.anchor is not None and opt.anchor[0] not in battles.models:
        raise BattleDataError(
            battles.source, f"anchor model {opt.anchor[0]!r} has no battles", field="anchor"
        )
    _check_size(battles, opt)
    counts = battles.aggregate()
    m = counts.n_models
    components = _components(counts)
    warnings = []
    if len(components) > 1:
        named = "; ".join("{" + ", ".join(c[:10]) + (", ...}" if len(c) > 10 else "}")
                          for c in components[:10])  # fmt: skip
        if len(components) > 10:
            named += f"; and {len(components) - 10} more"
        warnings.append(
            f"the comparison graph is disconnected ({len(components)} components: {named}); "
            "ratings in different components are not comparable"
        )

    if opt.method == "bt":
        fit = fit_bt(counts, l2=opt.l2)
        theta = fit.theta
        rating = CENTER + ELO_SCALE * theta
        lower, upper = _bt_intervals(battles, counts, fit, rating, opt, progress)
        strength, scale, base = theta, 1.0, math.e
    else:
        rating = online_elo(battles, opt.elo)
        rating = rating - rating.mean() + CENTER
        lower, upper = _elo_intervals(battles, rating, opt, progress)
        strength, scale, base = rating, opt.elo.scale, opt.elo.base

    if opt.anchor is not None:
        shift = opt.anchor[1] - rating[counts.models.index(opt.anchor[0])]
        rating, lower, upper = rating + shift, lower + shift, upper + shift

    stats = counts.per_model()
    score, played = _scores(counts)
    avg_pred = _mean_predicted(strength, scale, base)
    rank_upper, rank_lower = rank_ranges(lower, upper)
    order = sorted(range(m), key=lambda k: (-rating[k], counts.models[k]))
    # rank = 1 + #{j : rating_j > rating_k}, by binary search instead of an m x m compare
    rank = 1 + m - np.searchsorted(np.sort(rating), rating, side="right")
    rows = tuple(
        LeaderboardRow(
            model=counts.models[k],
            rating=float(rating[k]),
            lower=float(lower[k]),
            upper=float(upper[k]),
            rank=int(rank[k]),
            rank_upper=int(rank_upper[k]),
            rank_lower=int(rank_lower[k]),
            battles=int(stats["battles"][k]),
            wins=int(stats["wins"][k]),
            ties=int(stats["ties"][k]),
            losses=int(stats["losses"][k]),
            win_rate=float(score[k] / played[k]) if played[k] else math.nan,
            avg_win_rate=float(avg_pred[k]),
        )
        for k in order
    )
    return Leaderboard(
        options=opt,
        n_battles=len(battles),
        rows=rows,
        models=counts.models,
        counts=counts,
        strength=strength,
        scale=scale,
        base=base,
        components=components,
        warnings=tuple(warnings),
        notes=tuple(notes),
    )


def rank_ranges(lower: FloatArray, upper: FloatArray) -> tuple[npt.NDArray[np.int64], ...]:
    """Best and worst rank allowed by the intervals.

    ``best_i = 1 + #{j : lower_j > upper_i}``; ``worst_i = n - #{j : upper_j < lower_i}``.
    """
    n = lower.shape[0]
    # Counted by binary search in the sorted bounds: O(n log n) instead of n x n compares.
    best = 1 + n - np.searchsorted(np.sort(lower), upper, side="right")
    worst = n - np.searchsorted(np.sort(upper), lower, side="left")
    return best.astype(np.int64), worst.astype(np.int64)


def _apply_min_battles(battles: Battles, min_battles: int) -> tuple[Battles, list[str]]:
    played = np.bincount(battles.a, minlength=battles.n_models) + np.bincount(
        battles.b, minlength=battles.n_models
    )
    low = played < min_battles
    if not low.any():
        return battles, []
    keep = ~(low[battles.a] | low[battles.b])
    dropped = [battles.models[k] for k in np.flatnonzero(low)]
    if not keep.any():
        raise BattleDataError(
            battles.source, f"no model has {min_battles} or more battles", field="min_battles"
        )
    return battles.select(keep), dropped


def _check_size(battles: Battles, opt: RatingOptions) -> None:
    """Refuse, before any work, what would not fit in memory or time (see the limits)."""
    m = battles.n_models
    if m > MAX_MODELS:
        raise BattleDataError(
            battles.source,
            f"{m} models is more than the {MAX_MODELS} a leaderboard supports (its average "
            "win rate compares every pair of models); keep fewer models (min_battles)",
        )
    if opt.method != "bt":
        return
    if opt.ci in ("sandwich", "fisher"):
        try:
            check_covariance_size(m, opt.ci)
        except ValueError as exc:
            raise OptionError("ci", str(exc)) from None
    if opt.ci == "bootstrap" and m > MAX_BOOTSTRAP_MODELS:
        raise OptionError(
            "ci",
            f"the Bradley-Terry bootstrap is limited to {MAX_BOOTSTRAP_MODELS} models "
            f"(each round is a dense {m} x {m} solve); rate without intervals (ci='none'), "
            f"use ci='sandwich' (up to {MAX_COVARIANCE_MODELS} models), or keep fewer models "
            "(min_battles)",
        )


def _components(counts: Counts) -> tuple[tuple[str, ...], ...]:
    m = counts.n_models
    graph = sp.csr_matrix((np.ones(counts.i.size), (counts.i, counts.j)), shape=(m, m))
    n_comp, labels = connected_components(graph, directed=False)
    # Grouped by one sort (a mask per component is O(m * components)).
    by_label = np.argsort(labels, kind="stable")
    cuts = np.cumsum(np.bincount(labels, minlength=n_comp))[:-1]
    groups = [tuple(counts.models[k] for k in part) for part in np.split(by_label, cuts)]
    return tuple(sorted(groups, key=lambda g: (-len(g), g)))


def _bt_intervals(
    battles: Battles,
    counts: Counts,
    fit: BTFit,
    rating: FloatArray,
    opt: RatingOptions,
    progress: ProgressFactory | None,
) -> tuple[FloatArray, FloatArray]:
    if opt.ci == "none":
        return rating.copy(), rating.copy()
    clustered = opt.cluster_by is not None
    ccounts = battles.aggregate(opt.cluster_by) if clustered else counts
    if opt.ci in ("sandwich", "fisher"):
        cov = covariance(fit, ccounts, opt.ci, cluster_by_cells=clustered and opt.ci == "sandwich")
        z = float(ndtri(0.5 + opt.level / 2))
        half = z * ELO_SCALE * np.sqrt(np.maximum(np.diag(cov), 0.0))
        return rating - half, rating + half
    samples = bootstrap_thetas(
        ccounts,
        fit,
        rounds=opt.rounds,
        seed=opt.seed,
        clustered=clustered,
        l2=opt.l2,
        progress=progress,
    )
    lo, hi = percentile_interval(CENTER + ELO_SCALE * samples, opt.level)
    return lo, hi


def _elo_intervals(
    battles: Battles, rating: FloatArray, opt: RatingOptions, progress: ProgressFactory | None
) -> tuple[FloatArray, FloatArray]:
    if opt.ci == "none":
        return rating.copy(), rating.copy()
    # Online Elo depends on order, so its bootstrap resamples battles *and* shuffles them
    # (a uniform draw with replacement is already in random order).
    rng = np.random.default_rng(opt.seed)
    n = len(battles)
    samples = np.empty((opt.rounds, battles.n_models))
    bar = progress(opt.rounds) if progress is not None else None
    base = battle_order(battles)
    try:
        for r in range(opt.rounds):
            idx = base[rng.integers(0, n, n)]
            s = online_elo(battles, opt.elo, order=idx)
            samples[r] = s - s.mean() + CENTER
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return percentile_interval(samples, opt.level)


def _predicted(strength: FloatArray, scale: float, base: float) -> FloatArray:
    diff = (strength[None, :] - strength[:, None]) / scale
    return 1.0 / (1.0 + np.power(base, diff))


def _mean_predicted(strength: FloatArray, scale: float, base: float) -> FloatArray:
    """Mean predicted win rate of each model against all the others, ``_BLOCK`` rows of the
    ``m x m`` matrix at a time."""
    m = strength.shape[0]
    out = np.empty(m)
    # 1 / (1 + base**d) as expit(-d ln base): exp is ~10x faster than a general power, which
    # at 10,000 models is 0.6 s instead of 6 s.
    log_base = math.log(base) / scale
    for start in range(0, m, _BLOCK):
        rows = slice(start, min(start + _BLOCK, m))
        block = expit((strength[rows, None] - strength[None, :]) * log_base)
        out[rows] = block.sum(axis=1) - 0.5  # the diagonal: a model against itself
    mean: FloatArray = out / max(m - 1, 1)
    return mean


def _scores(counts: Counts) -> tuple[FloatArray, FloatArray]:
    """Each model's summed score (wins + ties / 2) and battles, from the cells."""
    m = counts.n_models
    n = counts.n.astype(np.float64)
    s = n * A_SCORE[counts.outcome]
    score = np.bincount(counts.i, s, m) + np.bincount(counts.j, n - s, m)
    played = np.bincount(counts.i, n, m) + np.bincount(counts.j, n, m)
    return score.astype(np.float64), played.astype(np.float64)


def _matrices(counts: Counts) -> tuple[FloatArray, FloatArray]:
    m = counts.n_models
    n = counts.n.astype(np.float64)
    s = n * A_SCORE[counts.outcome]
    bc = np.zeros((m, m))
    np.add.at(bc, (counts.i, counts.j), n)
    bc = bc + bc.T
    sc = np.zeros((m, m))
    np.add.at(sc, (counts.i, counts.j), s)
    np.add.at(sc, (counts.j, counts.i), n - s)
    with np.errstate(invalid="ignore", divide="ignore"):
        wr = np.where(bc > 0, sc / bc, np.nan)
    return bc, wr
