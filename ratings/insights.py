"""Questions people bring to an arena, answered from its ratings with honest intervals.

* **Capability density** -- the rating-vs-parameters Pareto front, and how fast the
  parameters needed for a fixed rating fall with release date.
* **Open-weights lag** -- how many months open models trail the first proprietary model
  rated at least as high.
* **Frontier** -- record-setting models over release date, and the gain in rating points per
  month over the whole span and over its last third (a flattening frontier shows there).
* **Price front** -- the rating-vs-blended-price Pareto front.
* **History** -- each model's rating at monthly snapshots, from one aggregation pass.

Every figure comes with an interval taken from the same rating uncertainty as the
leaderboard: :func:`rating_draws` turns the fit into ``R`` joint draws of all ratings
(bootstrap refits, or normal draws from the sandwich covariance), and each figure -- which
models are on a front, which open models set a record, their lags, the slopes -- is
recomputed in every draw.  A figure's interval is the percentile interval over draws, and a
front membership is reported as the share of draws in which the model is on the front.

Pure numpy; never imports ``arena``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ratings.bootstrap import ProgressFactory, bootstrap_thetas
from ratings.bt import DEFAULT_L2, ELO_SCALE, covariance, fit_bt
from ratings.data import BattleDataError, Battles, Counts
from ratings.metadata import ModelMeta

__all__ = [
    "CENTER",
    "DRAW_METHODS",
    "MIN_LAG_POINTS",
    "MIN_TREND_POINTS",
    "MONTH_DAYS",
    "History",
    "RatingDraws",
    "compute_insights",
    "filter_as_of",
    "frontier",
    "months_between",
    "open_lag",
    "params_trend",
    "pareto_front",
    "pareto_mask",
    "rating_draws",
    "rating_history",
]

CENTER = 1000.0
DRAW_METHODS = ("sandwich", "bootstrap")
#: Mean Gregorian month, in days: lags and slopes are in these months.
MONTH_DAYS = 365.2425 / 12.0
#: The issue's rule: a lag needs at least three open record points with a proprietary match.
MIN_LAG_POINTS = 3
#: An OLS with an intercept and two slopes needs one more point than coefficients.
MIN_TREND_POINTS = 4

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class RatingDraws:
    """Point ratings and joint draws of all ratings (mean 1000 scale).

    Attributes
    ----------
    models
        Model names, aligned with the columns.
    rating
        The fitted ratings.
    draws
        ``R x m`` joint draws: bootstrap refits, or normal draws from the sandwich covariance.
    method
        ``"sandwich"`` or ``"bootstrap"``.
    level
        Confidence level of every interval.
    n_battles
        Battles fitted.
    """

    models: tuple[str, ...]
    rating: FloatArray
    draws: FloatArray
    method: str
    level: float
    n_battles: int


def rating_draws(
    battles: Battles,
    *,
    ci: str = "sandwich",
    rounds: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    l2: float = DEFAULT_L2,
    cluster_by: str | None = None,
    progress: ProgressFactory | None = None,
) -> RatingDraws:
    """Fit Bradley-Terry ratings and draw ``rounds`` joint replicates of them.

    Parameters
    ----------
    battles
        The battles.
    ci
        ``"bootstrap"`` (refit on resampled counts, as the leaderboard's bootstrap) or
        ``"sandwich"`` (multivariate normal with the leaderboard's sandwich covariance).
    rounds
        Number of draws.
    seed
        Seed; the same seed gives the same draws.
    level
        Confidence level used downstream.
    l2
        Ridge penalty of the fits.
    cluster_by
        Battle column to cluster on (``judge``, ``question_id``), or ``None``.
    progress
        Optional progress-bar factory for the bootstrap.

    Returns
    -------
    RatingDraws

    Raises
    ------
    ValueError
        Unknown ``ci``, ``rounds < 1`` or ``level`` outside (0, 1).
    BattleDataError
        ``cluster_by`` names a column the battles lack.
    ratings.bt.ConvergenceError
        The fit does not converge.
    """
    if ci not in DRAW_METHODS:
        raise ValueError(f"unknown CI method {ci!r} for insights (expected one of {DRAW_METHODS})")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    counts = battles.aggregate()
    fit = fit_bt(counts, l2=l2)
    clustered = cluster_by is not None
    ccounts = battles.aggregate(cluster_by) if clustered else counts
    if ci == "bootstrap":
        theta = bootstrap_thetas(
            ccounts, fit, rounds=rounds, seed=seed, clustered=clustered, l2=l2, progress=progress
        )
    else:
        cov = covariance(fit, ccounts, "sandwich", cluster_by_cells=clustered)
        # The covariance is singular (ratings are centred); eigh handles that, and tiny
        # negative eigenvalues from rounding are clipped.
        w, v = np.linalg.eigh(cov)
        root = v * np.sqrt(np.clip(w, 0.0, None))
        rng = np.random.default_rng(seed)
        theta = fit.theta + rng.standard_normal((rounds, w.size)) @ root.T
    return RatingDraws(
        models=counts.models,
        rating=CENTER + ELO_SCALE * fit.theta,
        draws=CENTER + ELO_SCALE * theta,
        method=ci,
        level=level,
        n_battles=len(battles),
    )


# ---------------------------------------------------------------------------------------------
# Building blocks (each works on one rating vector or on a stack of draws)


def months_between(start: dt.date, end: dt.date) -> float:
    """``end - start`` in mean months (negative when ``end`` is earlier)."""
    return (end - start).days / MONTH_DAYS


def pareto_mask(cost: FloatArray, ratings: FloatArray) -> BoolArray:
    """Which models are on the rating-vs-cost Pareto front, per row of ``ratings``.

    A model is on the front when no other model with the same or a lower cost is rated
    strictly higher.

    Parameters
    ----------
    cost
        ``k`` costs (parameters, price).
    ratings
        ``k`` ratings, or ``R x k`` draws.

    Returns
    -------
    numpy.ndarray
        Booleans shaped like ``ratings``.
    """
    r = np.asarray(ratings, dtype=np.float64)
    c = np.asarray(cost, dtype=np.float64)
    rr = r[None, :] if r.ndim == 1 else r
    k = c.shape[0]
    cheaper = (c[None, :] <= c[:, None]) & ~np.eye(k, dtype=bool)  # [i, j]: j costs <= i
    beaten = (rr[:, None, :] > rr[:, :, None]) & cheaper[None, :, :]
    on: BoolArray = np.logical_not(beaten.any(axis=2))
    return on[0] if r.ndim == 1 else on


def _interval(point: float | None, samples: FloatArray, level: float) -> dict[str, Any]:
    """Estimate with a percentile interval over the draws where the figure is defined."""
    finite = samples[np.isfinite(samples)]
    out: dict[str, Any] = {"estimate": point, "lower": None, "upper": None}
    if finite.size:
        lo = (1.0 - level) / 2.0
        q = np.quantile(finite, [lo, 1.0 - lo])
        out["lower"], out["upper"] = float(q[0]), float(q[1])
    out["defined_share"] = float(finite.size / samples.size) if samples.size else 0.0
    return out


def _known(
    models: Sequence[str], meta: Mapping[str, ModelMeta], attr: str
) -> tuple[list[int], list[Any]]:
    idx, vals = [], []
    for k, name in enumerate(models):
        m = meta.get(name)
        value = getattr(m, attr) if m is not None else None
        if value is not None:
            idx.append(k)
            vals.append(value)
    return idx, vals


def pareto_front(
    draws: RatingDraws, meta: Mapping[str, ModelMeta], cost: str = "params"
) -> list[dict[str, Any]]:
    """The rating-vs-cost Pareto front, with each member's share of draws on the front.

    Parameters
    ----------
    draws
        Ratings and their draws.
    meta
        Metadata by model name.
    cost
        ``"params"`` (active parameters when given, else total) or ``"price"`` (blended
        price, see :attr:`ratings.metadata.ModelMeta.blended_price`).

    Returns
    -------
    list of dict
        One row per model on the front of the fitted ratings, cheapest first: ``model``,
        ``params_b`` or ``price``, ``rating``, ``lower``, ``upper``, ``p_front``.
    """
    attr = {"params": "effective_params_b", "price": "blended_price"}[cost]
    key = "params_b" if cost == "params" else "price"
    idx, vals = _known(draws.models, meta, attr)
    if not idx:
        return []
    c = np.array(vals, dtype=np.float64)
    point = pareto_mask(c, draws.rating[idx])
    share = pareto_mask(c, draws.draws[:, idx]).mean(axis=0)
    lo_q = (1.0 - draws.level) / 2.0
    q = np.quantile(draws.draws[:, idx], [lo_q, 1.0 - lo_q], axis=0)
    rows = [
        {
            "model": draws.models[k],
            key: float(c[n]),
            "rating": float(draws.rating[k]),
            "lower": float(q[0, n]),
            "upper": float(q[1, n]),
            "p_front": float(share[n]),
        }
        for n, k in enumerate(idx)
        if point[n]
    ]
    return sorted(rows, key=lambda r: (r[key], -r["rating"], r["model"]))


def _dated(
    draws: RatingDraws, meta: Mapping[str, ModelMeta], group: str = "all"
) -> tuple[list[int], list[dt.date]]:
    idx, dates = [], []
    for k, name in enumerate(draws.models):
        m = meta.get(name)
        if m is None or m.release_date is None:
            continue
        if group == "open" and m.open_weights is not True:
            continue
        if group == "proprietary" and m.open_weights is not False:
            continue
        idx.append(k)
        dates.append(m.release_date)
    return idx, dates


def _records(t: FloatArray, r: FloatArray) -> BoolArray:
    """Per row: rated above every other model released on or before its day (``t`` in
    days); of models released the same day only the best can set a record."""
    earlier = (t[None, :] <= t[:, None]) & ~np.eye(t.shape[0], dtype=bool)  # [i, j]: j not later
    rr = r[None, :] if r.ndim == 1 else r
    prior = np.where(earlier[None, :, :], rr[:, None, :], -np.inf).max(axis=2)
    rec: BoolArray = rr > prior
    out: BoolArray = rec[0] if r.ndim == 1 else rec
    return out


def _frontier_at(t: FloatArray, r: FloatArray, when: float) -> FloatArray:
    """Best rating among models released on or before ``when``, per row of ``r``."""
    mask = t <= when
    best: FloatArray = np.where(mask[None, :], r, -np.inf).max(axis=1)
    return best


def frontier(
    draws: RatingDraws, meta: Mapping[str, ModelMeta], group: str = "all"
) -> dict[str, Any]:
    """Record-setting models over release date, and the frontier's gain per month.

    The frontier at date ``t`` is the best rating among the group's models released on or
    before ``t``.  Its gain per month is measured over the whole span (first to last release)
    and over the last third of that span.

    Parameters
    ----------
    draws
        Ratings and draws.
    meta
        Metadata by model name (``release_date``, ``open_weights``).
    group
        ``"all"``, ``"open"`` (open weights) or ``"proprietary"``.

    Returns
    -------
    dict
        ``records`` (``model``, ``release_date``, ``rating``, ``lower``, ``upper``,
        ``p_record``), ``gain_per_month`` and ``gain_per_month_last_third`` (each
        ``estimate``/``lower``/``upper``/``defined_share``), ``span_months``, and ``reason``
        when there are fewer than two distinct release dates.
    """
    idx, dates = _dated(draws, meta, group)
    out: dict[str, Any] = {"group": group, "n_models": len(idx), "records": []}
    empty = {"estimate": None, "lower": None, "upper": None, "defined_share": 0.0}
    if not idx:
        out.update(gain_per_month=empty, gain_per_month_last_third=empty, span_months=None)
        out["reason"] = f"no {group} model with a release date"
        return out
    t0 = min(dates)
    t = np.array([(d - t0).days for d in dates], dtype=np.float64)
    r = draws.rating[idx]
    rd = draws.draws[:, idx]
    rec = _records(t, r)
    p_rec = _records(t, rd).mean(axis=0)
    lo_q = (1.0 - draws.level) / 2.0
    q = np.quantile(rd, [lo_q, 1.0 - lo_q], axis=0)
    order = sorted((n for n in range(len(idx)) if rec[n]), key=lambda n: (t[n], -r[n]))
    out["records"] = [
        {
            "model": draws.models[idx[n]],
            "release_date": dates[n].isoformat(),
            "rating": float(r[n]),
            "lower": float(q[0, n]),
            "upper": float(q[1, n]),
            "p_record": float(p_rec[n]),
        }
        for n in order
    ]
    end = float(t.max())
    span = end / MONTH_DAYS
    out["span_months"] = span
    if end <= 0:
        out.update(gain_per_month=empty, gain_per_month_last_third=empty)
        out["reason"] = "all release dates are the same: no span to measure a gain over"
        return out
    third = end - end / 3.0
    for name, start in (("gain_per_month", 0.0), ("gain_per_month_last_third", third)):
        months = (end - start) / MONTH_DAYS
        est = (_frontier_at(t, r[None, :], end) - _frontier_at(t, r[None, :], start))[0]
        per = (_frontier_at(t, rd, end) - _frontier_at(t, rd, start)) / months
        out[name] = _interval(float(est / months), per, draws.level)
    out["reason"] = None
    return out


def _lags(
    t_open: FloatArray, r_open: FloatArray, t_prop: FloatArray, r_prop: FloatArray
) -> tuple[BoolArray, FloatArray]:
    """Per row of draws: which open models set a record, and each one's lag in days
    (``nan`` when no proprietary model is rated at least as high)."""
    rec = _records(t_open, r_open)
    # [row, open o, prop p]: p rated >= o; the earliest such p's release date.
    ge = r_prop[:, None, :] >= r_open[:, :, None]
    first = np.where(ge, t_prop[None, None, :], np.inf).min(axis=2)
    lag = np.where(np.isfinite(first), t_open[None, :] - first, np.nan)
    return rec, lag


def open_lag(draws: RatingDraws, meta: Mapping[str, ModelMeta]) -> dict[str, Any]:
    """Median months from the first proprietary model rated at least as high to each new
    open record.

    Parameters
    ----------
    draws
        Ratings and draws.
    meta
        Metadata (``open_weights`` and ``release_date`` are needed).

    Returns
    -------
    dict
        ``estimate``, ``lower``, ``upper`` (months; ``None`` when the data cannot support an
        estimate, with ``reason`` saying why), ``defined_share`` (share of draws that had
        enough points), and ``points``: the open record-setters with their matched
        proprietary model and lag.
    """
    o_idx, o_dates = _dated(draws, meta, "open")
    p_idx, p_dates = _dated(draws, meta, "proprietary")
    out: dict[str, Any] = {"estimate": None, "lower": None, "upper": None, "points": []}
    out["defined_share"] = 0.0
    if not o_idx or not p_idx:
        which = "open-weights" if not o_idx else "proprietary"
        out["reason"] = f"no {which} model with a release date among the rated models"
        return out
    base = min(o_dates + p_dates)
    t_o = np.array([(d - base).days for d in o_dates], dtype=np.float64)
    t_p = np.array([(d - base).days for d in p_dates], dtype=np.float64)
    rec, lag = _lags(t_o, draws.rating[None, o_idx], t_p, draws.rating[None, p_idx])
    rec, lag = rec[0], lag[0]
    points = []
    for n in sorted(np.flatnonzero(rec), key=lambda n: (t_o[n], -draws.rating[o_idx[n]])):
        row: dict[str, Any] = {
            "model": draws.models[o_idx[n]],
            "release_date": o_dates[n].isoformat(),
            "rating": float(draws.rating[o_idx[n]]),
            "proprietary_model": None,
            "proprietary_release_date": None,
            "lag_months": None,
        }
        if np.isfinite(lag[n]):
            ge = [q for q in range(len(p_idx)) if draws.rating[p_idx[q]] >= draws.rating[o_idx[n]]]
            first = min(ge, key=lambda q: (t_p[q], draws.models[p_idx[q]]))
            row["proprietary_model"] = draws.models[p_idx[first]]
            row["proprietary_release_date"] = p_dates[first].isoformat()
            row["lag_months"] = float(lag[n] / MONTH_DAYS)
        points.append(row)
    out["points"] = points
    rec_d, lag_d = _lags(t_o, draws.draws[:, o_idx], t_p, draws.draws[:, p_idx])
    usable = rec_d & np.isfinite(lag_d)
    enough = usable.sum(axis=1) >= MIN_LAG_POINTS
    masked = np.where(usable, lag_d, np.nan)
    per = np.full(masked.shape[0], np.nan)
    if enough.any():
        per[enough] = np.nanmedian(masked[enough], axis=1) / MONTH_DAYS
    lags = [p["lag_months"] for p in points if p["lag_months"] is not None]
    if not any(p["lag_months"] is not None for p in points):
        out["reason"] = (
            "no proprietary model is rated at least as high as any open record: "
            "open models lead, so there is no lag to measure"
        )
    elif len(lags) < MIN_LAG_POINTS:
        out["reason"] = (
            f"only {len(lags)} open record point(s) with a proprietary model rated at least as "
            f"high; at least {MIN_LAG_POINTS} are needed"
        )
    else:
        out["reason"] = None
    point = float(np.median(lags)) if out["reason"] is None else None
    stats = _interval(point, per, draws.level)
    if point is None:
        stats["lower"] = stats["upper"] = None
    out.update(stats)
    return out


def params_trend(draws: RatingDraws, meta: Mapping[str, ModelMeta]) -> dict[str, Any]:
    """How fast the parameters needed for a fixed rating fall with release date.

    The models that were on the rating-vs-parameters front when they were released (no model
    released on or before them, with the same or fewer parameters, rated higher) are fitted
    by least squares ``log2(params) = a + b * rating + c * months``; at a fixed rating the
    parameters then halve every ``-1 / c`` months.  Each draw recomputes the set and the fit.

    Parameters
    ----------
    draws
        Ratings and draws.
    meta
        Metadata (parameters and release dates).

    Returns
    -------
    dict
        ``log2_params_per_month`` and ``halving_months`` (``estimate``/``lower``/``upper``;
        ``halving_months`` is ``None`` when the point estimate does not fall, and its
        ``upper`` is ``None`` when the interval allows no fall), ``n_points``, ``points``,
        and ``reason`` when the data do not allow a fit.
    """
    idx, sizes, dates = [], [], []
    for k, name in enumerate(draws.models):
        m = meta.get(name)
        if m is None or m.release_date is None or m.effective_params_b is None:
            continue
        idx.append(k)
        sizes.append(m.effective_params_b)
        dates.append(m.release_date)
    none = {"estimate": None, "lower": None, "upper": None}
    out: dict[str, Any] = {
        "log2_params_per_month": dict(none, defined_share=0.0),
        "halving_months": dict(none),
        "n_points": 0,
        "points": [],
    }
    if len(idx) < MIN_TREND_POINTS:
        out["reason"] = (
            f"only {len(idx)} rated model(s) have both parameters and a release date; at "
            f"least {MIN_TREND_POINTS} are needed"
        )
        return out
    base = min(dates)
    months = np.array([months_between(base, d) for d in dates])
    lp = np.log2(np.array(sizes, dtype=np.float64))
    cheaper_earlier = (lp[None, :] <= lp[:, None]) & (months[None, :] <= months[:, None])
    np.fill_diagonal(cheaper_earlier, False)

    def slope(r: FloatArray) -> tuple[float, BoolArray]:
        on: BoolArray = np.logical_not(((r[None, :] > r[:, None]) & cheaper_earlier).any(axis=1))
        if on.sum() < MIN_TREND_POINTS:
            return math.nan, on
        x = np.column_stack([np.ones(int(on.sum())), r[on], months[on]])
        coef, _, rank, _ = np.linalg.lstsq(x, lp[on], rcond=None)
        return (float(coef[2]) if rank == 3 else math.nan), on

    point, on = slope(draws.rating[idx])
    per = np.array([slope(row)[0] for row in draws.draws[:, idx]])
    out["n_points"] = int(on.sum())
    out["points"] = [
        {
            "model": draws.models[idx[n]],
            "params_b": float(sizes[n]),
            "release_date": dates[n].isoformat(),
            "rating": float(draws.rating[idx[n]]),
        }
        for n in np.flatnonzero(on)
    ]
    if not math.isfinite(point):
        out["reason"] = (
            f"{int(on.sum())} model(s) on the front at their release, spread too little in "
            "rating and date for a fit (need at least "
            f"{MIN_TREND_POINTS}, not all on one date or one rating)"
        )
        return out
    stats = _interval(point, per, draws.level)
    out["log2_params_per_month"] = stats
    half: dict[str, Any] = dict(none)
    if point < 0:
        half["estimate"] = -1.0 / point
    lo, hi = stats["lower"], stats["upper"]
    if lo is not None and lo < 0:
        half["lower"] = -1.0 / lo  # the fastest fall gives the shortest halving time
        half["upper"] = -1.0 / hi if hi is not None and hi < 0 else None
    out["halving_months"] = half
    out["reason"] = None
    return out


def compute_insights(draws: RatingDraws, meta: Mapping[str, ModelMeta]) -> dict[str, Any]:
    """All insights as one JSON-ready dict.

    Parameters
    ----------
    draws
        Ratings and draws (:func:`rating_draws`).
    meta
        Metadata of the rated models (names that are not rated are ignored).

    Returns
    -------
    dict
        ``pareto_params``, ``params_trend``, ``open_lag_months``, ``frontier`` (``all``,
        ``open``, ``proprietary``), ``pareto_price``, ``ratings`` (every model's rating and
        interval with its metadata) and ``method`` (how the intervals were drawn).
    """
    lo_q = (1.0 - draws.level) / 2.0
    q = np.quantile(draws.draws, [lo_q, 1.0 - lo_q], axis=0)
    ratings = []
    for k in np.argsort(-draws.rating, kind="stable"):
        m = meta.get(draws.models[k])
        ratings.append(
            {
                "model": draws.models[k],
                "rating": float(draws.rating[k]),
                "lower": float(q[0, k]),
                "upper": float(q[1, k]),
                "params_b": m.params_b if m else None,
                "active_params_b": m.active_params_b if m else None,
                "open_weights": m.open_weights if m else None,
                "release_date": m.release_date.isoformat() if m and m.release_date else None,
                "blended_price": m.blended_price if m else None,
            }
        )
    return {
        "method": {
            "ci": draws.method,
            "rounds": int(draws.draws.shape[0]),
            "level": draws.level,
            "n_battles": draws.n_battles,
            "n_models": len(draws.models),
        },
        "pareto_params": pareto_front(draws, meta, "params"),
        "params_trend": params_trend(draws, meta),
        "open_lag_months": open_lag(draws, meta),
        "frontier": {g: frontier(draws, meta, g) for g in ("all", "open", "proprietary")},
        "pareto_price": pareto_front(draws, meta, "price"),
        "ratings": ratings,
    }


# ---------------------------------------------------------------------------------------------
# Time: --as-of and monthly history


def _day_start(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def filter_as_of(battles: Battles, as_of: dt.date) -> Battles:
    """Keep the votes cast before ``as_of`` (00:00 UTC).

    Raises
    ------
    BattleDataError
        The battles have no timestamps, or none is before ``as_of``.
    """
    if battles.tstamp is None:
        raise BattleDataError(
            battles.source,
            "--as-of needs vote timestamps and these battles have none",
            field="tstamp",
        )
    keep = battles.tstamp < _day_start(as_of)
    if not keep.any():
        raise BattleDataError(
            battles.source, f"no vote was cast before {as_of.isoformat()}", field="tstamp"
        )
    return battles.select(keep)


@dataclass(frozen=True, eq=False)
class History:
    """Ratings at monthly snapshots.

    Attributes
    ----------
    models
        Model names (columns).
    dates
        Snapshot dates: each snapshot rates the votes cast before that day (the 1st of a
        month, 00:00 UTC).
    rating, lower, upper
        ``len(dates) x len(models)``; ``nan`` before a model's first vote.
    n_battles
        Votes in each snapshot.
    """

    models: tuple[str, ...]
    dates: tuple[dt.date, ...]
    rating: FloatArray
    lower: FloatArray
    upper: FloatArray
    n_battles: npt.NDArray[np.int64]


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def rating_history(
    battles: Battles, *, level: float = 0.95, l2: float = DEFAULT_L2, max_snapshots: int = 120
) -> History:
    """Each model's rating (sandwich interval) at the start of every month after the first vote.

    The battles are aggregated once into ``(pair, outcome, weight, month)`` cells; every
    snapshot sums the cells of the months before it, so no vote is read twice.

    Parameters
    ----------
    battles
        Battles with timestamps.
    level
        Confidence level of the bands.
    l2
        Ridge penalty of the fits.
    max_snapshots
        Keep only the most recent snapshots beyond this many.

    Returns
    -------
    History

    Raises
    ------
    BattleDataError
        The battles have no timestamps.
    """
    from scipy.special import ndtri

    if battles.tstamp is None:
        raise BattleDataError(
            battles.source, "a rating history needs vote timestamps", field="tstamp"
        )
    first = dt.datetime.fromtimestamp(float(battles.tstamp.min()), dt.UTC).date()
    last = dt.datetime.fromtimestamp(float(battles.tstamp.max()), dt.UTC).date()
    dates: list[dt.date] = []
    day = _next_month(first)
    while True:
        dates.append(day)
        if day > last:
            break
        day = _next_month(day)
    dates = dates[-max_snapshots:]
    bounds = np.array([_day_start(d) for d in dates])
    month = np.searchsorted(bounds, battles.tstamp, side="right")  # snapshot index - 1
    m = battles.n_models
    n_snap = len(dates)
    swap = battles.a > battles.b
    i = np.where(swap, battles.b, battles.a)
    j = np.where(swap, battles.a, battles.b)
    oc = battles.outcome.astype(np.int64)
    oc = np.where(swap & (oc == 0), 1, np.where(swap & (oc == 1), 0, oc))
    w = np.ones(len(battles)) if battles.weight is None else battles.weight
    wcode_vals, wcode = np.unique(w, return_inverse=True)
    n_w = int(wcode_vals.size)
    key = (((i * m + j) * 4 + oc) * n_w + wcode.reshape(-1)) * (n_snap + 1) + month
    ukey, cnt = np.unique(key, return_counts=True)  # the one aggregation pass
    cell_month = ukey % (n_snap + 1)
    cell = ukey // (n_snap + 1)
    cell_w = wcode_vals[cell % n_w]
    cell = cell // n_w
    cell_oc = (cell % 4).astype(np.int8)
    cell_i = (cell // 4) // m
    cell_j = (cell // 4) % m
    z = float(ndtri(0.5 + level / 2))
    rating = np.full((n_snap, m), np.nan)
    lower = np.full((n_snap, m), np.nan)
    upper = np.full((n_snap, m), np.nan)
    n_b = np.zeros(n_snap, dtype=np.int64)
    theta_prev: dict[int, float] = {}
    for s in range(n_snap):
        sel = cell_month <= s  # cells of the months before snapshot s's date
        if not sel.any():
            continue
        ci, cj = cell_i[sel], cell_j[sel]
        present = np.unique(np.concatenate([ci, cj]))
        if present.size < 2:
            continue
        remap = np.full(m, -1, dtype=np.int64)
        remap[present] = np.arange(present.size)
        # Same (pair, outcome, weight) cells from different months are separate rows here;
        # the fit and the sandwich only sum over rows, so that changes nothing.
        n = cnt[sel].astype(np.int64)
        counts = Counts(
            models=tuple(battles.models[k] for k in present),
            i=remap[ci],
            j=remap[cj],
            outcome=cell_oc[sel],
            n=n,
            weight=cell_w[sel] * n,
            weight_sq=cell_w[sel] ** 2 * n,
        )
        theta0 = np.array([theta_prev.get(int(k), 0.0) for k in present])
        fit = fit_bt(counts, l2=l2, theta0=theta0)
        cov = covariance(fit, counts, "sandwich")
        half = z * ELO_SCALE * np.sqrt(np.clip(np.diag(cov), 0.0, None))
        r = CENTER + ELO_SCALE * fit.theta
        rating[s, present], lower[s, present], upper[s, present] = r, r - half, r + half
        n_b[s] = int(n.sum())
        theta_prev = {int(k): float(fit.theta[n_]) for n_, k in enumerate(present)}
    return History(
        models=battles.models,
        dates=tuple(dates),
        rating=rating,
        lower=lower,
        upper=upper,
        n_battles=n_b,
    )
