"""Insights on synthetic arenas whose true lag, frontier and front are set by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from ratings import RatingOptions, compute_leaderboard
from ratings.data import BattleDataError, Battles
from ratings.insights import (
    MONTH_DAYS,
    compute_insights,
    filter_as_of,
    open_lag,
    pareto_mask,
    rating_draws,
    rating_history,
)
from ratings.metadata import ModelMeta
from tests.ratings.synthetic_arena import make_arena

# The example tuned on while writing the code was seed 1, 6 proprietary models 3 months
# apart, lag 7, slope 20, 20,000 battles; these configurations differ in every parameter.
CONFIGS = [
    dict(seed=2024, n_prop=7, spacing=2.5, lag=9.0, slope=15.0, n_battles=30_000),
    dict(seed=77, n_prop=5, spacing=4.0, lag=4.0, slope=25.0, n_battles=15_000),
    dict(seed=31337, n_prop=8, spacing=2.0, lag=12.0, slope=30.0, n_battles=40_000),
]
P_FRONT_MIN = 0.9  # true front members are well separated (>= 50 points), so nearly always on it
ROUNDS = 300


@pytest.mark.parametrize("ci", ["sandwich", "bootstrap"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"seed{c['seed']}")
def test_recovers_true_lag_and_front(cfg: dict, ci: str) -> None:
    syn = make_arena(**cfg)
    draws = rating_draws(syn.battles, ci=ci, rounds=ROUNDS, seed=cfg["seed"] + 1)
    ins = compute_insights(draws, syn.meta)
    lag = ins["open_lag_months"]
    true_lag = float(np.median(syn.true_lags))
    assert lag["reason"] is None
    assert lag["lower"] <= true_lag <= lag["upper"], (true_lag, lag)
    assert len(lag["points"]) == cfg["n_prop"]  # every open-k is a record, followers never
    front = {r["model"] for r in ins["pareto_params"]}
    assert front == syn.true_front
    assert min(r["p_front"] for r in ins["pareto_params"]) >= P_FRONT_MIN
    # The proprietary frontier gains `slope` points a month over its whole span.
    gain = ins["frontier"]["proprietary"]["gain_per_month"]
    assert gain["lower"] <= cfg["slope"] <= gain["upper"], gain


def _true_gain_last_third(syn, group: str) -> float:
    """Brute force over the definition, on the true ratings."""
    pts = [
        ((m.release_date - dt.date(2023, 1, 1)).days, syn.true_rating[n])
        for n, m in syn.meta.items()
        if m.release_date and (group == "all" or m.open_weights is (group == "open"))
    ]
    end = max(t for t, _ in pts)
    start = min(t for t, _ in pts)
    cut = end - (end - start) / 3

    def best(when: float) -> float:
        return max(r for t, r in pts if t <= when)

    return (best(end) - best(cut)) / ((end - cut) / MONTH_DAYS)


def test_flattening_frontier_shows_in_the_last_third() -> None:
    syn = make_arena(seed=4242, n_prop=6, spacing=3.0, lag=5.0, slope=18.0, n_battles=25_000)
    draws = rating_draws(syn.battles, rounds=ROUNDS, seed=5)
    ins = compute_insights(draws, syn.meta)
    for group in ("all", "open", "proprietary"):
        g = ins["frontier"][group]["gain_per_month_last_third"]
        true = _true_gain_last_third(syn, group)
        assert g["lower"] <= true <= g["upper"], (group, true, g)
    # 'all' ends with open models catching up to a frontier that stopped: flatter at the end.
    whole = ins["frontier"]["all"]["gain_per_month"]
    last = ins["frontier"]["all"]["gain_per_month_last_third"]
    assert last["upper"] < whole["lower"]


def test_pareto_mask_matches_brute_force() -> None:
    rng = np.random.default_rng(99)
    for _ in range(20):
        k = int(rng.integers(2, 12))
        cost = rng.choice([1.0, 3.0, 7.0, 13.0, 70.0], size=k)
        r = rng.normal(1000, 50, size=(5, k)).round(-1)  # rounding makes rating ties
        got = pareto_mask(cost, r)
        for row in range(5):
            want = [
                not any(j != i and cost[j] <= cost[i] and r[row, j] > r[row, i] for j in range(k))
                for i in range(k)
            ]
            assert got[row].tolist() == want


def _draws_for(ratings: dict[str, float], meta: dict[str, ModelMeta]):
    from ratings.insights import RatingDraws

    names = tuple(sorted(ratings))
    r = np.array([ratings[n] for n in names])
    return RatingDraws(names, r, np.tile(r, (10, 1)), "sandwich", 0.95, 100)


def _meta(name: str, open_: bool, month: int) -> ModelMeta:
    return ModelMeta(name, open_weights=open_, release_date=dt.date(2023, month, 1))


def test_lag_says_plainly_when_points_are_too_few() -> None:
    meta = {
        "p1": _meta("p1", False, 1),
        "p2": _meta("p2", False, 3),
        "o1": _meta("o1", True, 4),
        "o2": _meta("o2", True, 6),
    }
    out = open_lag(_draws_for({"p1": 1000, "p2": 1100, "o1": 990, "o2": 1090}, meta), meta)
    assert out["estimate"] is None and out["lower"] is None
    assert "only 2 open record point(s)" in out["reason"]
    assert [p["lag_months"] is not None for p in out["points"]] == [True, True]


def test_lag_says_plainly_when_open_models_lead() -> None:
    meta = {"p1": _meta("p1", False, 1), "o1": _meta("o1", True, 2), "o2": _meta("o2", True, 5)}
    out = open_lag(_draws_for({"p1": 900, "o1": 1000, "o2": 1100}, meta), meta)
    assert out["estimate"] is None
    assert "no proprietary model is rated at least as high" in out["reason"]


def test_lag_without_proprietary_models() -> None:
    meta = {"o1": _meta("o1", True, 2), "o2": _meta("o2", True, 5)}
    out = open_lag(_draws_for({"o1": 1000, "o2": 1100}, meta), meta)
    assert out["estimate"] is None and "no proprietary model" in out["reason"]


def _timed_battles(seed: int) -> Battles:
    rng = np.random.default_rng(seed)
    names = ["m0", "m1", "m2", "m3", "m4"]
    n = 6000
    a = rng.integers(0, 5, n)
    b = (a + rng.integers(1, 5, n)) % 5
    theta = np.array([0.0, 0.3, 0.6, -0.2, 0.1])
    win = rng.random(n) < 1 / (1 + np.exp(-(theta[a] - theta[b])))
    start = dt.datetime(2024, 1, 10, tzinfo=dt.UTC).timestamp()
    ts = np.sort(start + rng.uniform(0, 150 * 86400, n))
    # m4 arrives in March: its rating starts there.
    late = (a == 4) | (b == 4)
    ts = np.where(late, np.maximum(ts, start + 60 * 86400), ts)
    return Battles.from_columns(
        [names[k] for k in a],
        [names[k] for k in b],
        np.where(win, "model_a", "model_b"),
        tstamp=ts,
    )


def test_history_snapshots_match_fits_on_filtered_votes() -> None:
    battles = _timed_battles(8)
    hist = rating_history(battles)
    assert hist.dates[0] == dt.date(2024, 2, 1)
    assert hist.dates[-1] > dt.date(2024, 6, 1)
    k4 = hist.models.index("m4")
    assert np.isnan(hist.rating[0, k4]) and np.isfinite(hist.rating[-1, k4])
    for s, day in enumerate(hist.dates):
        sub = filter_as_of(battles, day)
        lb = compute_leaderboard(sub, RatingOptions())
        assert hist.n_battles[s] == len(sub)
        for row in lb.rows:
            k = hist.models.index(row.model)
            # The snapshot centres on the models present then, as the filtered fit does.
            assert hist.rating[s, k] == pytest.approx(row.rating, abs=1e-6)
            assert hist.lower[s, k] == pytest.approx(row.lower, abs=1e-6)


def test_as_of_needs_timestamps() -> None:
    battles = Battles.from_columns(["a", "b"], ["b", "a"], ["model_a", "tie"])
    with pytest.raises(BattleDataError, match="timestamps"):
        filter_as_of(battles, dt.date(2024, 1, 1))
    with pytest.raises(BattleDataError, match="no vote was cast before 2024-01-02"):
        filter_as_of(_timed_battles(1), dt.date(2024, 1, 2))


def _naive_lag_points(ratings, meta):
    """The definition, written as plainly as possible."""
    opens = [n for n in ratings if meta[n].open_weights]
    props = [n for n in ratings if meta[n].open_weights is False]
    points = []
    for o in sorted(opens, key=lambda n: (meta[n].release_date, -ratings[n])):
        d = meta[o].release_date
        others = [n for n in opens if n != o and meta[n].release_date <= d]
        if any(ratings[n] >= ratings[o] for n in others):
            continue
        above = [p for p in props if ratings[p] >= ratings[o]]
        lag = None
        if above:
            first = min(meta[p].release_date for p in above)
            lag = (d - first).days / MONTH_DAYS
        points.append((o, lag))
    return points


def test_lag_matches_a_naive_implementation_on_random_boards() -> None:
    rng = np.random.default_rng(2718)
    for trial in range(40):
        k = int(rng.integers(3, 14))
        ratings = {f"m{i}": float(rng.normal(1000, 60)) for i in range(k)}
        meta = {
            n: ModelMeta(
                n,
                open_weights=bool(rng.random() < 0.5),
                release_date=dt.date(2023, 1, 1) + dt.timedelta(days=int(rng.integers(0, 400))),
            )
            for n in ratings
        }
        out = open_lag(_draws_for(ratings, meta), meta)
        got = [(p["model"], p["lag_months"]) for p in out["points"]]
        want = _naive_lag_points(ratings, meta)
        assert [g[0] for g in got] == [w[0] for w in want], trial
        for (_, g), (_, w) in zip(got, want, strict=True):
            assert (g is None and w is None) or g == pytest.approx(w), trial
        lags = [w for _, w in want if w is not None]
        if len(lags) >= 3:
            assert out["estimate"] == pytest.approx(float(np.median(lags)))
        else:
            assert out["estimate"] is None and out["reason"]


def test_every_format_renders_and_json_is_deterministic() -> None:
    from ratings.insights_report import INSIGHT_FORMATS, format_insights

    syn = make_arena(seed=8080, n_prop=4, spacing=3.0, lag=4.0, slope=25.0, n_battles=6000)
    ins = compute_insights(rating_draws(syn.battles, rounds=100, seed=1), syn.meta)
    texts = {fmt: format_insights(ins, fmt) for fmt in INSIGHT_FORMATS}
    assert texts["html"].startswith("<!DOCTYPE html>") and "<table>" in texts["html"]
    assert "| Open record |" in texts["md"] and "Open record" in texts["table"]
    again = compute_insights(rating_draws(syn.battles, rounds=100, seed=1), syn.meta)
    assert format_insights(again, "json") == texts["json"]
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        format_insights(ins, "xml")
