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
from ratings.contextual import (
    ContextualData,
    contextual_bootstrap,
    contextual_covariance,
    fit_contextual,
    style_features,
)
from ratings.data import A_SCORE, STYLE_FEATURES, BattleDataError, Battles, Counts
from ratings.elo import EloOptions, battle_order, online_elo

__all__ = [
    "CI_METHODS",
    "MAX_BOOTSTRAP_MODELS",
    "MAX_MODELS",
    "METHODS",
    "RANK_DRAW_MAX_MODELS",
    "Leaderboard",
    "LeaderboardRow",
    "OptionError",
    "RankConfidence",
    "RatingOptions",
    "StyleControl",
    "compute_leaderboard",
    "contrast_covariance",
    "leaderboard_from_counts",
    "normal_intervals",
    "p_rated_above",
    "rank_confidence",
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
# Above this many models the sandwich's normal draws (for P(#1) and rank intervals) cost
# more than the fit: an m x m eigen-decomposition and R x m x m products.
RANK_DRAW_MAX_MODELS = 1000
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
        ``(model, rating)``: pin this model at this rating inside the fit: every rating (and
        every bootstrap round, and the sandwich as a contrast) is measured relative to it, so
        its own interval has zero width.  Default: the mean rating over the models is 1000.
    min_battles
        Leave out models with fewer battles (and their battles) before fitting.
    l2
        Ridge penalty of the BT fit.
    level
        Confidence level of the intervals.
    elo
        Online Elo settings (``method="elo"``).
    style_control
        Fit contextual BT with LMArena's style covariates (answer length, headers, lists,
        bold); the battles must carry style counts.
    style_l2
        Ridge penalty on the style coefficients (summed log-likelihood units; 0 = none).
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
    style_control: bool = False
    style_l2: float = 0.0

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
        if self.style_control and self.method != "bt":
            raise OptionError(
                "style_control", "style_control is a Bradley-Terry model; use method='bt'"
            )
        if self.style_control and self.ci == "fisher":
            raise OptionError(
                "ci",
                "style_control has sandwich and bootstrap intervals only (use ci='sandwich' "
                "or ci='bootstrap')",
            )
        if self.style_l2 < 0:
            raise OptionError("style_l2", f"style_l2 must be >= 0, got {self.style_l2}")
        if self.ci == "fisher" and self.cluster_by is not None:
            # The inverse information assumes independent battles; it has no clustered form.
            raise OptionError(
                "ci",
                "ci='fisher' cannot honour cluster_by (the Fisher information assumes "
                "independent battles); use ci='sandwich' or ci='bootstrap' with cluster_by",
            )


@dataclass(frozen=True)
class LeaderboardRow:
    """One model's line.

    ``rank`` is LMArena's rank, ``1 + #{j : lower_j > upper_i}`` (equal to ``rank_upper``,
    the best rank the intervals allow); ``rank_lower = #models - #{j : upper_j < lower_i}``
    is the worst.  ``rating_order`` is the position by point estimate alone (1 = highest
    rating).  ``p_rank1`` and ``rank_ci_best``/``rank_ci_worst`` (the central ``level``
    interval of the rank) come from the bootstrap replicates, or from draws of the normal
    approximation for sandwich/Fisher intervals; they are NaN / 0 with ``--ci none``.
    """

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
    rating_order: int = 0
    p_rank1: float = math.nan
    rank_ci_best: int = 0
    rank_ci_worst: int = 0


@dataclass(frozen=True, eq=False)
class StyleControl:
    """The style part of a style-controlled leaderboard.

    Attributes
    ----------
    features
        Feature names (``ratings.data.STYLE_FEATURES``).
    estimate, lower, upper
        Coefficients per standard deviation of each feature, on the logit scale, with their
        interval at the leaderboard's level.
    uncontrolled
        The plain BT rating of each model (indexed like ``Leaderboard.models``), on the same
        scale, so ``rating - uncontrolled`` is what control changed.
    """

    features: tuple[str, ...]
    estimate: FloatArray
    lower: FloatArray
    upper: FloatArray
    uncontrolled: FloatArray


@dataclass(frozen=True, eq=False)
class Leaderboard:
    """A computed leaderboard.  ``rows`` are sorted by rating (then name); the matrices are
    indexed like ``models`` (alphabetical) and built on first use (``m x m`` each, which
    with many models is too much to build for a table that does not show them).
    ``predicted_win_rates[i, j]`` is the fit's P(i beats j); ``p_above[i, j]`` the share of
    rating replicates (bootstrap rounds, or normal draws) with i rated above j (``None`` with
    ``--ci none``).

    Attributes
    ----------
    counts
        The aggregated battles the leaderboard was computed from.
    strength, scale, base
        Fitted strengths and their win-probability law,
        ``P(i beats j) = 1 / (1 + base ** ((strength_j - strength_i) / scale))``.
    samples
        The rating replicates behind the intervals and rank statistics (``R x m``), or
        ``None`` with ``--ci none``.
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
    samples: FloatArray | None = None
    style: StyleControl | None = None

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
    def p_above(self) -> FloatArray | None:
        """Share of rating replicates with the row model rated above the column model."""
        return None if self.samples is None else p_rated_above(self.samples)

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
    if opt.style_control:
        battles = _with_style(battles)
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
    if opt.ci == "fisher" and battles.weight is not None and not np.all(battles.weight == 1.0):
        # Measured: with --reweight weights the Fisher intervals covered 0.77 of the time at a
        # nominal 0.95; only the sandwich accounts for the weights' extra variance.
        raise BattleDataError(
            battles.source,
            "--ci fisher ignores the battle weights and under-covers with them; use --ci "
            "sandwich or --ci bootstrap for weighted battles",
            field="weight",
        )
    counts = battles.aggregate()
    components = _components(counts)
    warnings = _disconnection_warnings(components)

    anchor = None if opt.anchor is None else counts.models.index(opt.anchor[0])
    style = None
    if opt.style_control:
        rating, lower, upper, samples, style = _style_controlled(
            battles, counts, anchor, opt, progress
        )
        # Style-neutral strengths (an anchor shifts them all alike: P(i beats j) unchanged).
        strength, scale, base = (rating - CENTER) / ELO_SCALE, 1.0, math.e
    elif opt.method == "bt":
        fit = fit_bt(counts, l2=opt.l2)
        theta = fit.theta
        rating = _scale(CENTER + ELO_SCALE * theta, anchor, opt)
        lower, upper, samples = _bt_intervals(battles, counts, fit, rating, opt, progress)
        strength, scale, base = theta, 1.0, math.e
    else:
        rating = online_elo(battles, opt.elo)
        rating = _scale(rating - rating.mean() + CENTER, anchor, opt)
        lower, upper, samples = _elo_intervals(battles, rating, opt, progress)
        strength, scale, base = rating, opt.elo.scale, opt.elo.base

    return _assemble(
        counts,
        opt,
        rating,
        lower,
        upper,
        samples,
        (strength, scale, base),
        len(battles),
        components,
        warnings,
        notes,
        style,
    )


def leaderboard_from_counts(
    counts: Counts,
    options: RatingOptions | None = None,
    *,
    theta0: FloatArray | None = None,
) -> tuple[Leaderboard, FloatArray]:
    """A Bradley-Terry leaderboard from aggregated, unweighted, unclustered cells.

    The same numbers as :func:`compute_leaderboard` on the battles these cells count (BT
    with a ``sandwich``, ``fisher`` or ``none`` interval, no style control), for callers
    that keep the cells up to date themselves (the app's live leaderboard) and warm-start
    the fit.

    Parameters
    ----------
    counts
        Cells ``i < j`` with ``weight == weight_sq == n``.
    options
        ``method="bt"``, ``ci`` one of ``sandwich``, ``fisher``, ``none``; no
        ``cluster_by``, ``min_battles``, ``anchor`` or style control.
    theta0
        Starting point of the Newton iterations (the previous fit's ``theta``, aligned with
        ``counts.models``); ``None`` starts from zero.

    Returns
    -------
    tuple
        ``(leaderboard, theta)``; ``theta`` warm-starts the next call.

    Raises
    ------
    ValueError
        For options this function does not cover.
    ratings.bt.ConvergenceError
        When the fit does not converge.
    """
    opt = options or RatingOptions()
    if opt.method != "bt" or opt.ci not in ("sandwich", "fisher", "none"):
        raise ValueError("leaderboard_from_counts covers method bt with ci sandwich/fisher/none")
    if opt.cluster_by is not None or opt.min_battles or opt.anchor is not None or opt.style_control:
        raise ValueError(
            "leaderboard_from_counts takes no cluster_by, min_battles, anchor or style control"
        )
    components = _components(counts)
    warnings = _disconnection_warnings(components)
    if theta0 is not None and theta0.shape != (counts.n_models,):
        theta0 = None
    fit = fit_bt(counts, l2=opt.l2, theta0=theta0)
    rating = CENTER + ELO_SCALE * fit.theta
    samples: FloatArray | None
    if opt.ci == "none":
        lower, upper, samples = rating.copy(), rating.copy(), None
    else:
        cov = covariance(fit, counts, opt.ci)
        lower, upper, samples = normal_intervals(
            rating, cov * ELO_SCALE**2, opt.level, opt.rounds, opt.seed
        )
    lb = _assemble(
        counts,
        opt,
        rating,
        lower,
        upper,
        samples,
        (fit.theta, 1.0, math.e),
        counts.n_battles,
        components,
        warnings,
        [],
        None,
    )
    return lb, fit.theta


def _assemble(
    counts: Counts,
    opt: RatingOptions,
    rating: FloatArray,
    lower: FloatArray,
    upper: FloatArray,
    samples: FloatArray | None,
    strength_scale_base: tuple[FloatArray, float, float],
    n_battles: int,
    components: tuple[tuple[str, ...], ...],
    warnings: list[str],
    notes: list[str],
    style: StyleControl | None,
) -> Leaderboard:
    """The rows and the :class:`Leaderboard` from ratings and their intervals."""
    strength, scale, base = strength_scale_base
    m = counts.n_models
    stats = counts.per_model()
    score, played = _scores(counts)
    avg_pred = _mean_predicted(strength, scale, base)
    rank_upper, rank_lower = rank_ranges(lower, upper)
    order = sorted(range(m), key=lambda k: (-rating[k], counts.models[k]))
    rating_order = np.empty(m, dtype=np.int64)
    rating_order[order] = np.arange(1, m + 1)
    conf = None if samples is None else rank_confidence(samples, opt.level)
    rows = tuple(
        LeaderboardRow(
            model=counts.models[k],
            rating=float(rating[k]),
            lower=float(lower[k]),
            upper=float(upper[k]),
            rank=int(rank_upper[k]),
            rank_upper=int(rank_upper[k]),
            rank_lower=int(rank_lower[k]),
            battles=int(stats["battles"][k]),
            wins=int(stats["wins"][k]),
            ties=int(stats["ties"][k]),
            losses=int(stats["losses"][k]),
            win_rate=float(score[k] / played[k]) if played[k] else math.nan,
            avg_win_rate=float(avg_pred[k]),
            rating_order=int(rating_order[k]),
            p_rank1=math.nan if conf is None else float(conf.p_rank1[k]),
            rank_ci_best=0 if conf is None else int(conf.best[k]),
            rank_ci_worst=0 if conf is None else int(conf.worst[k]),
        )
        for k in order
    )
    return Leaderboard(
        options=opt,
        n_battles=n_battles,
        rows=rows,
        models=counts.models,
        counts=counts,
        strength=strength,
        scale=scale,
        base=base,
        components=components,
        warnings=tuple(warnings),
        notes=tuple(notes),
        samples=samples,
        style=style,
    )


def _with_style(battles: Battles) -> Battles:
    """The battles that have style counts (the rest left out, with a note)."""
    if battles.style is None:
        raise BattleDataError(
            battles.source,
            "--style-control needs style features per battle (LMSYS conv_metadata: "
            "sum_assistant_a_tokens, header_count_a, ...); this source has none "
            "(for the database: arena db backfill-style)",
            field="conv_metadata",
        )
    known = np.asarray(np.isfinite(battles.style).all(axis=(1, 2)), dtype=bool)
    if known.all():
        return battles
    missing = int((~known).sum())
    return battles.select(known, f"left out {missing} battles without style features")


def _style_controlled(
    battles: Battles,
    counts: Counts,
    anchor: int | None,
    opt: RatingOptions,
    progress: ProgressFactory | None,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray | None, StyleControl]:
    assert battles.style is not None
    x, _, _ = style_features(battles.style)
    clustered = opt.cluster_by is not None
    cluster = None
    if clustered:
        assert opt.cluster_by is not None
        if opt.cluster_by not in battles.clusters:
            battles.aggregate(opt.cluster_by)  # raises the usual "no such column" error
        cluster = battles.clusters[opt.cluster_by]
    n = len(battles)
    data = ContextualData(
        n_models=battles.n_models,
        a=battles.a,
        b=battles.b,
        score=A_SCORE[battles.outcome],
        weight=np.ones(n) if battles.weight is None else battles.weight,
        x=x,
        cluster=cluster,
    )
    m = battles.n_models
    # The plain fit (cheap: it runs on counts) is both the comparison the table reports and
    # the contextual fit's starting point, which saves it a Newton step or two.
    plain_theta = fit_bt(counts, l2=opt.l2).theta
    start = np.concatenate([plain_theta, np.zeros(x.shape[1])])
    fit = fit_contextual(data, l2=opt.l2, style_l2=opt.style_l2, params0=start)
    rating = _scale(CENTER + ELO_SCALE * fit.theta, anchor, opt)
    plain = _scale(CENTER + ELO_SCALE * plain_theta, anchor, opt)
    z = float(ndtri(0.5 + opt.level / 2))
    if opt.ci == "none":
        lower, upper, samples = rating.copy(), rating.copy(), None
        b_lo, b_hi = fit.beta.copy(), fit.beta.copy()
    elif opt.ci == "sandwich":
        cov = contextual_covariance(fit, data, clustered=clustered)
        theta_cov = cov[:m, :m] if anchor is None else contrast_covariance(cov[:m, :m], anchor)
        lower, upper, samples = normal_intervals(
            rating, theta_cov * ELO_SCALE**2, opt.level, opt.rounds, opt.seed
        )
        half = z * np.sqrt(np.maximum(np.diag(cov)[m:], 0.0))
        b_lo, b_hi = fit.beta - half, fit.beta + half
    else:
        reps = contextual_bootstrap(
            data, fit, rounds=opt.rounds, seed=opt.seed, clustered=clustered, progress=progress
        )
        samples = _scale(CENTER + ELO_SCALE * reps[:, :m], anchor, opt)
        lower, upper = percentile_interval(samples, opt.level)
        b_lo, b_hi = percentile_interval(reps[:, m:], opt.level)
    summary = StyleControl(STYLE_FEATURES, fit.beta.copy(), b_lo, b_hi, plain)
    return rating, lower, upper, samples, summary


@dataclass(frozen=True, eq=False)
class RankConfidence:
    """Rank statistics over rating replicates (see :func:`rank_confidence`)."""

    p_rank1: FloatArray
    best: npt.NDArray[np.int64]
    worst: npt.NDArray[np.int64]


def rank_confidence(samples: FloatArray, level: float = 0.95) -> RankConfidence:
    """Rank statistics from replicates of the ratings (one row per replicate).

    Parameters
    ----------
    samples
        ``R x m`` ratings (bootstrap rounds, or draws from the normal approximation).
    level
        Coverage of the rank interval.

    Returns
    -------
    RankConfidence
        ``p_rank1[i]``: share of replicates in which ``i`` ranks first (a tie for first
        counts for every tied model); ``best``/``worst``: the central ``level`` interval of
        ``i``'s rank (rank = 1 + number of models rated strictly higher in that replicate).

    Raises
    ------
    ValueError
        No replicates, or a level outside (0, 1).
    """
    s = np.asarray(samples, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] < 1:
        raise ValueError("rank_confidence needs at least one replicate (R x m)")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    r, m = s.shape
    # One sort per replicate, all replicates at once (R m log m, not R m^2).  In sorted
    # order, the number of values <= the one at position p is the end of its run of equal
    # values: p + 1 at a run's last position, carried back over the run by a reversed
    # running minimum.
    order = np.argsort(s, axis=1, kind="stable")
    srt = np.take_along_axis(s, order, axis=1)
    run_end = np.ones((r, m), dtype=bool)
    run_end[:, :-1] = srt[:, 1:] != srt[:, :-1]
    at_most = np.where(run_end, np.arange(1, m + 1), m + 1)
    at_most = np.minimum.accumulate(at_most[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty((r, m), dtype=np.int64)
    np.put_along_axis(ranks, order, 1 + m - at_most, axis=1)
    p_rank1 = (ranks == 1).mean(axis=0)
    lo = (1.0 - level) / 2.0
    best = np.quantile(ranks, lo, axis=0, method="lower").astype(np.int64)
    worst = np.quantile(ranks, 1.0 - lo, axis=0, method="higher").astype(np.int64)
    return RankConfidence(p_rank1, best, worst)


def p_rated_above(samples: FloatArray) -> FloatArray:
    """``P[i, j]``: share of replicates (rows of ``samples``) with ``i`` rated above ``j``.

    ``m x m``, so it is built only when asked for (``--matrices``), in blocks of replicates.
    """
    s = np.asarray(samples, dtype=np.float64)
    r, m = s.shape
    above = np.zeros((m, m))
    step = max(1, 2_000_000 // max(m * m, 1))  # bounded memory: ~2M booleans per block
    for start in range(0, r, step):
        blk = s[start : start + step]
        above += (blk[:, :, None] > blk[:, None, :]).sum(axis=0)
    out: FloatArray = above / r
    return out


def _scale(rating: FloatArray, anchor: int | None, opt: RatingOptions) -> FloatArray:
    """Mean-1000 ratings, or ratings relative to the anchor model pinned at its value."""
    if anchor is None or opt.anchor is None:
        return rating
    return rating - rating[..., anchor, None] + opt.anchor[1]


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


def _disconnection_warnings(components: tuple[tuple[str, ...], ...]) -> list[str]:
    """A warning naming the components when the comparison graph is disconnected."""
    if len(components) <= 1:
        return []
    named = "; ".join("{" + ", ".join(c[:10]) + (", ...}" if len(c) > 10 else "}")
                      for c in components[:10])  # fmt: skip
    if len(components) > 10:
        named += f"; and {len(components) - 10} more"
    return [
        f"the comparison graph is disconnected ({len(components)} components: {named}); "
        "ratings in different components are not comparable"
    ]


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
) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    if opt.ci == "none":
        return rating.copy(), rating.copy(), None
    clustered = opt.cluster_by is not None
    ccounts = battles.aggregate(opt.cluster_by) if clustered else counts
    anchor = None if opt.anchor is None else counts.models.index(opt.anchor[0])
    if opt.ci in ("sandwich", "fisher"):
        cov = covariance(fit, ccounts, opt.ci, cluster_by_cells=clustered)
        if anchor is not None:
            cov = contrast_covariance(cov, anchor)
        return normal_intervals(rating, cov * ELO_SCALE**2, opt.level, opt.rounds, opt.seed)
    samples = bootstrap_thetas(
        ccounts,
        fit,
        rounds=opt.rounds,
        seed=opt.seed,
        clustered=clustered,
        l2=opt.l2,
        progress=progress,
    )
    scaled = _scale(CENTER + ELO_SCALE * samples, anchor, opt)
    lo, hi = percentile_interval(scaled, opt.level)
    return lo, hi, scaled


def contrast_covariance(cov: FloatArray, anchor: int) -> FloatArray:
    """Covariance of ``theta_i - theta_anchor`` from that of ``theta`` (zero for the anchor).

    Parameters
    ----------
    cov
        ``m x m`` covariance (any gauge).
    anchor
        Index of the pinned model.

    Returns
    -------
    numpy.ndarray
        ``m x m`` covariance of the contrasts against ``anchor``.
    """
    c = np.asarray(cov, dtype=np.float64)
    row = c[anchor]
    out = c - row[None, :] - row[:, None] + c[anchor, anchor]
    sym: FloatArray = 0.5 * (out + out.T)
    return sym


def normal_intervals(
    rating: FloatArray, cov: FloatArray, level: float, draws: int, seed: int
) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    """Wald intervals from a rating covariance, plus seeded draws of the normal approximation.

    Parameters
    ----------
    rating
        Point ratings (``m``).
    cov
        Their covariance in rating units (``m x m``).
    level
        Confidence level.
    draws
        Number of normal draws returned (for rank confidence).
    seed
        Seed of the draws.

    Returns
    -------
    tuple
        ``(lower, upper, draws x m samples)``; the samples are ``None`` above
        ``RANK_DRAW_MAX_MODELS`` models (an eigen-decomposition and ``draws x m x m`` work:
        P(#1) and rank intervals are then left out; the bootstrap still gives them).
    """
    z = float(ndtri(0.5 + level / 2))
    half = z * np.sqrt(np.maximum(np.diag(cov), 0.0))
    if rating.shape[0] > RANK_DRAW_MAX_MODELS:
        return rating - half, rating + half, None
    # Eigen-decomposition instead of Cholesky: the covariance is singular along the gauge
    # (mean-zero or anchored) direction.
    vals, vecs = np.linalg.eigh(cov)
    root = vecs * np.sqrt(np.maximum(vals, 0.0))
    rng = np.random.default_rng(seed)
    samples = rating + rng.standard_normal((draws, rating.shape[0])) @ root.T
    return rating - half, rating + half, samples


def _elo_intervals(
    battles: Battles, rating: FloatArray, opt: RatingOptions, progress: ProgressFactory | None
) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    if opt.ci == "none":
        return rating.copy(), rating.copy(), None
    anchor = None if opt.anchor is None else battles.models.index(opt.anchor[0])
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
            samples[r] = _scale(s - s.mean() + CENTER, anchor, opt)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    lo, hi = percentile_interval(samples, opt.level)
    return lo, hi, samples


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
