"""From battles to a leaderboard: fit, confidence intervals, ranks, statistics, matrices.

This is the one place that strings the pieces together (``data`` -> ``bt``/``elo`` ->
``bootstrap`` -> table); every exporter and plot reads the :class:`Leaderboard` it returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.special import ndtri

from ratings.bootstrap import ProgressFactory, bootstrap_thetas, percentile_interval
from ratings.bt import DEFAULT_L2, ELO_SCALE, BTFit, covariance, fit_bt
from ratings.data import A_SCORE, BattleDataError, Battles, Counts
from ratings.elo import EloOptions, battle_order, online_elo

__all__ = [
    "CI_METHODS",
    "METHODS",
    "Leaderboard",
    "LeaderboardRow",
    "RatingOptions",
    "compute_leaderboard",
    "rank_ranges",
]

METHODS = ("bt", "elo")
CI_METHODS = ("sandwich", "fisher", "bootstrap", "none")
CENTER = 1000.0

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
            raise ValueError(f"unknown method {self.method!r} (expected one of {METHODS})")
        if self.ci not in CI_METHODS:
            raise ValueError(f"unknown CI method {self.ci!r} (expected one of {CI_METHODS})")
        if self.method == "elo" and self.ci in ("sandwich", "fisher"):
            raise ValueError(
                f"--ci {self.ci} needs a likelihood and exists only for --method bt; "
                "use --ci bootstrap or --ci none with online Elo"
            )
        if self.method == "elo" and self.cluster_by is not None:
            raise ValueError("--cluster-by is supported with --method bt only")
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if not 0 < self.level < 1:
            raise ValueError(f"level must be in (0, 1), got {self.level}")
        if self.min_battles < 0:
            raise ValueError(f"min_battles must be >= 0, got {self.min_battles}")


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
    indexed like ``models`` (alphabetical)."""

    options: RatingOptions
    n_battles: int
    rows: tuple[LeaderboardRow, ...]
    models: tuple[str, ...]
    battle_counts: FloatArray
    win_rates: FloatArray
    predicted_win_rates: FloatArray
    components: tuple[tuple[str, ...], ...]
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def connected(self) -> bool:
        return len(self.components) <= 1


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
    counts = battles.aggregate()
    m = counts.n_models
    components = _components(counts)
    warnings = []
    if len(components) > 1:
        named = "; ".join("{" + ", ".join(c) + "}" for c in components)
        warnings.append(
            f"the comparison graph is disconnected ({len(components)} components: {named}); "
            "ratings in different components are not comparable"
        )

    if opt.method == "bt":
        fit = fit_bt(counts, l2=opt.l2)
        theta = fit.theta
        rating = CENTER + ELO_SCALE * theta
        lower, upper = _bt_intervals(battles, counts, fit, rating, opt, progress)
        pred = _predicted(theta, 1.0, math.e)
    else:
        rating = online_elo(battles, opt.elo)
        rating = rating - rating.mean() + CENTER
        lower, upper = _elo_intervals(battles, rating, opt, progress)
        pred = _predicted(rating, opt.elo.scale, opt.elo.base)

    if opt.anchor is not None:
        shift = opt.anchor[1] - rating[counts.models.index(opt.anchor[0])]
        rating, lower, upper = rating + shift, lower + shift, upper + shift

    stats = counts.per_model()
    bc, wr = _matrices(counts)
    score = np.nansum(wr * bc, axis=1)
    played = bc.sum(axis=1)
    avg_pred = (pred.sum(axis=1) - np.diag(pred)) / max(m - 1, 1)
    rank_upper, rank_lower = rank_ranges(lower, upper)
    order = sorted(range(m), key=lambda k: (-rating[k], counts.models[k]))
    rank = 1 + np.array([(rating > rating[k]).sum() for k in range(m)])
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
        battle_counts=bc,
        win_rates=wr,
        predicted_win_rates=pred,
        components=components,
        warnings=tuple(warnings),
        notes=tuple(notes),
    )


def rank_ranges(lower: FloatArray, upper: FloatArray) -> tuple[npt.NDArray[np.int64], ...]:
    """Best and worst rank allowed by the intervals.

    ``best_i = 1 + #{j : lower_j > upper_i}``; ``worst_i = n - #{j : upper_j < lower_i}``.
    """
    best = 1 + (lower[None, :] > upper[:, None]).sum(axis=1)
    worst = lower.shape[0] - (upper[None, :] < lower[:, None]).sum(axis=1)
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


def _components(counts: Counts) -> tuple[tuple[str, ...], ...]:
    m = counts.n_models
    graph = sp.csr_matrix((np.ones(counts.i.size), (counts.i, counts.j)), shape=(m, m))
    n_comp, labels = connected_components(graph, directed=False)
    groups = [tuple(counts.models[k] for k in np.flatnonzero(labels == c)) for c in range(n_comp)]
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
                bar.update(1)  # type: ignore[attr-defined]
    finally:
        if bar is not None:
            bar.close()  # type: ignore[attr-defined]
    return percentile_interval(samples, opt.level)


def _predicted(strength: FloatArray, scale: float, base: float) -> FloatArray:
    diff = (strength[None, :] - strength[:, None]) / scale
    return 1.0 / (1.0 + np.power(base, diff))


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
