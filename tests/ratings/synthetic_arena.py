"""A synthetic arena whose open-weights lag, frontier and parameter front are set by hand."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from ratings.bt import ELO_SCALE
from ratings.data import Battles
from ratings.insights import MONTH_DAYS
from ratings.metadata import ModelMeta

BASE_DAY = dt.date(2023, 1, 1)


@dataclass(frozen=True)
class Synthetic:
    battles: Battles
    meta: dict[str, ModelMeta]
    true_rating: dict[str, float]
    true_lags: list[float]  # months, one per open record
    true_front: set[str]  # rating-vs-params front of the true ratings


def _day(months: float) -> dt.date:
    return BASE_DAY + dt.timedelta(days=round(months * MONTH_DAYS))


def make_arena(
    *,
    seed: int,
    n_prop: int,
    spacing: float,
    lag: float,
    slope: float,
    n_battles: int,
    tie_rate: float = 0.2,
) -> Synthetic:
    """Proprietary record-setters every ``spacing`` months gaining ``slope`` points a month;
    each open record comes ``lag`` months (+- 1) after a proprietary one and is rated a third
    of a release step below it -- far enough, at these vote counts, for "the first proprietary
    model rated at least as high" to be identified (at a 5-point gap the estimate is biased
    low: noise often puts the open model above its match, which then moves to the next one).
    Open followers that set no record, and the parameter counts, are drawn so that the true
    rating-vs-params front is known."""
    rng = np.random.default_rng(seed)
    rating: dict[str, float] = {}
    meta: dict[str, ModelMeta] = {}
    lags = []
    gap = slope * spacing / 3.0
    for k in range(n_prop):
        t = k * spacing
        r = 1000.0 + slope * t
        name = f"prop-{k}"
        rating[name] = r
        meta[name] = ModelMeta(name, open_weights=False, release_date=_day(t))
        jitter = float(rng.uniform(-1.0, 1.0))
        t_open = t + lag + jitter
        o_name = f"open-{k}"
        rating[o_name] = r - gap
        # Sizes grow with rating but each record is small enough to be on the front.
        meta[o_name] = ModelMeta(
            o_name, params_b=float(7 * 2**k), open_weights=True, release_date=_day(t_open)
        )
        d_open = _day(t_open)
        lags.append((d_open - _day(t)).days / MONTH_DAYS)
        # A bigger, weaker open follower: never a record, never on the front.
        f_name = f"follower-{k}"
        rating[f_name] = r - gap - 0.6 * slope * spacing
        meta[f_name] = ModelMeta(
            f_name,
            params_b=float(7 * 2**k) * 3.0,
            open_weights=True,
            release_date=_day(t_open + 0.5),
        )
    names = sorted(rating)
    theta = np.array([rating[n] for n in names]) / ELO_SCALE
    a = rng.integers(0, len(names), n_battles)
    b = (a + rng.integers(1, len(names), n_battles)) % len(names)
    p = 1.0 / (1.0 + np.exp(-(theta[a] - theta[b])))
    # A tie band of width t centred on p keeps a's expected score at p (ties count half).
    t = tie_rate * 2.0 * np.minimum(p, 1.0 - p)
    u = rng.random(n_battles)
    winner = np.where(u < p - t / 2, "model_a", np.where(u < p + t / 2, "tie", "model_b"))
    battles = Battles.from_columns(
        [names[k] for k in a], [names[k] for k in b], winner, source="<synthetic>"
    )
    # The true front, by brute force over the definition.
    sized = {n: m.params_b for n, m in meta.items() if m.params_b is not None}
    front = {
        n
        for n, s in sized.items()
        if not any(o != n and so <= s and rating[o] > rating[n] for o, so in sized.items())
    }
    return Synthetic(battles, meta, rating, lags, front)
