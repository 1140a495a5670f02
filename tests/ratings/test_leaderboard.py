"""Leaderboard assembly: ranks and rank ranges, anchor, min-battles, Elo, bootstrap, graph."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ratings.bootstrap import bootstrap_thetas
from ratings.bt import fit_bt
from ratings.data import BattleDataError, Battles
from ratings.elo import EloOptions, online_elo
from ratings.leaderboard import OptionError, RatingOptions, compute_leaderboard, rank_ranges

from .helpers import battles_from_counts, simulate


@pytest.fixture(scope="module")
def sim() -> Battles:
    rng = np.random.default_rng(42)
    return simulate(np.array([1.2, 0.6, 0.0, -0.5, -1.3]), 4000, rng, tie_rate=0.2)


def test_rank_ranges_definition() -> None:
    lower = np.array([10.0, 8.0, 1.0, 0.0])
    upper = np.array([12.0, 11.0, 9.0, 2.0])
    best, worst = rank_ranges(lower, upper)
    # model 2 (1..9): model 0's lower (10) exceeds 9 -> best 2; nobody's upper < 1 -> worst 3
    # (model 3's upper 2 is not < 1).
    assert best.tolist() == [1, 1, 2, 3]
    assert worst.tolist() == [2, 3, 4, 4]


def test_bt_leaderboard_rows(sim: Battles) -> None:
    lb = compute_leaderboard(sim)
    names = [r.model for r in lb.rows]
    assert names == ["m00", "m01", "m02", "m03", "m04"]
    ratings = np.array([r.rating for r in lb.rows])
    assert np.mean(ratings) == pytest.approx(1000.0, abs=1e-9)
    assert [r.rank for r in lb.rows] == [1, 2, 3, 4, 5]
    for r in lb.rows:
        assert r.lower < r.rating < r.upper
        assert r.rank_upper <= r.rank <= r.rank_lower
        assert r.wins + r.ties + r.losses == r.battles
    assert sum(r.battles for r in lb.rows) == 2 * len(sim)
    assert lb.connected and not lb.warnings
    # Symmetric battle counts, complementary win rates.
    bc, wr = lb.battle_counts, lb.win_rates
    np.testing.assert_array_equal(bc, bc.T)
    off = ~np.eye(5, dtype=bool)
    np.testing.assert_allclose((wr + wr.T)[off], 1.0)


@pytest.mark.parametrize("ci", ["sandwich", "bootstrap", "none"])
def test_anchor_pins_the_model_inside_the_fit(sim: Battles, ci: str) -> None:
    opts = {"ci": ci, "rounds": 200, "seed": 3}
    base = compute_leaderboard(sim, RatingOptions(**opts))  # type: ignore[arg-type]
    anchored = compute_leaderboard(
        sim,
        RatingOptions(anchor=("m02", 1114.0), **opts),  # type: ignore[arg-type]
    )
    shift = 1114.0 - next(r.rating for r in base.rows if r.model == "m02")
    pinned = next(r for r in anchored.rows if r.model == "m02")
    # The pinned model is known exactly: its interval has zero width.
    assert pinned.rating == pinned.lower == pinned.upper == pytest.approx(1114.0)
    for a, b in zip(base.rows, anchored.rows, strict=True):
        assert b.rating == pytest.approx(a.rating + shift)
        if ci != "none" and b.model != "m02":
            assert b.upper - b.lower > 0


def test_anchored_sandwich_is_the_contrast_variance(sim: Battles) -> None:
    """Independent check: the sandwich of the model parameterised with theta_anchor = 0
    (its column dropped, no pseudo-inverse) gives the same interval widths."""
    counts = sim.aggregate()
    fit = fit_bt(counts)
    th = fit.theta
    k = 2
    keep = [i for i in range(counts.n_models) if i != k]
    p = 1.0 / (1.0 + np.exp(-(th[counts.i] - th[counts.j])))
    resid = np.array([1.0, 0.0, 0.5, 0.5])[counts.outcome] - p
    x = np.zeros((counts.i.size, counts.n_models))
    x[np.arange(counts.i.size), counts.i] = 1.0
    x[np.arange(counts.i.size), counts.j] = -1.0
    x = x[:, keep]
    h = (x * (counts.weight * p * (1 - p))[:, None]).T @ x
    g = (x * (counts.weight_sq * resid**2)[:, None]).T @ x
    hinv = np.linalg.inv(h)
    se = np.sqrt(np.diag(hinv @ g @ hinv)) * 400 / math.log(10)
    lb = compute_leaderboard(sim, RatingOptions(anchor=("m02", 1000.0)))
    by = {r.model: r for r in lb.rows}
    for pos, idx in enumerate(keep):
        r = by[sim.models[idx]]
        assert (r.upper - r.lower) / 2 == pytest.approx(1.959964 * se[pos], rel=1e-4)


def test_anchor_unknown_model_is_refused(sim: Battles) -> None:
    with pytest.raises(BattleDataError, match="anchor"):
        compute_leaderboard(sim, RatingOptions(anchor=("nobody", 1000.0)))


def test_min_battles_drops_models_and_says_so() -> None:
    battles = battles_from_counts(
        [("a", "b", 30, 20, 10), ("b", "c", 25, 25, 5), ("a", "rare", 1, 1, 0)]
    )
    lb = compute_leaderboard(battles, RatingOptions(min_battles=5))
    assert [r.model for r in lb.rows if r.model == "rare"] == []
    assert any("rare" in n for n in lb.notes)
    with pytest.raises(BattleDataError, match="no model has"):
        compute_leaderboard(battles, RatingOptions(min_battles=10**6))


def test_disconnected_graph_is_named() -> None:
    battles = battles_from_counts([("a", "b", 3, 2, 1), ("c", "d", 2, 2, 2)])
    lb = compute_leaderboard(battles)
    assert not lb.connected
    assert lb.components == (("a", "b"), ("c", "d"))
    assert "disconnected" in lb.warnings[0] and "{a, b}" in lb.warnings[0]


def test_bootstrap_is_seeded_and_close_to_sandwich(sim: Battles) -> None:
    counts = sim.aggregate()
    fit = fit_bt(counts)
    s1 = bootstrap_thetas(counts, fit, rounds=300, seed=9)
    s2 = bootstrap_thetas(counts, fit, rounds=300, seed=9)
    np.testing.assert_array_equal(s1, s2)
    assert not np.array_equal(s1, bootstrap_thetas(counts, fit, rounds=300, seed=10))
    lb_s = compute_leaderboard(sim, RatingOptions(ci="sandwich"))
    lb_b = compute_leaderboard(sim, RatingOptions(ci="bootstrap", rounds=400, seed=1))
    for a, b in zip(lb_s.rows, lb_b.rows, strict=True):
        assert (b.upper - b.lower) == pytest.approx(a.upper - a.lower, rel=0.2)


def test_clustered_bootstrap_is_wider_on_clustered_votes() -> None:
    # Each prompt's outcome is decided once and copied to 8 voters: 8x fewer real votes.
    rng = np.random.default_rng(5)
    base = simulate(np.array([0.5, 0.0, -0.5]), 600, rng)
    rep = np.repeat(np.arange(len(base)), 8)
    battles = Battles.from_codes(
        base.models, base.a[rep], base.b[rep], base.outcome[rep], clusters={"question_id": rep}
    )
    plain = compute_leaderboard(battles, RatingOptions(ci="bootstrap", rounds=300))
    clustered = compute_leaderboard(
        battles, RatingOptions(ci="bootstrap", rounds=300, cluster_by="question_id")
    )
    for p, c in zip(plain.rows, clustered.rows, strict=True):
        ratio = (c.upper - c.lower) / (p.upper - p.lower)
        assert 2.0 < ratio < 4.0  # sqrt(8) ~ 2.8
    sandwich_c = compute_leaderboard(battles, RatingOptions(cluster_by="question_id"))
    for p, c in zip(clustered.rows, sandwich_c.rows, strict=True):
        assert (c.upper - c.lower) == pytest.approx(p.upper - p.lower, rel=0.25)


def test_online_elo_by_hand() -> None:
    battles = Battles.from_columns(
        ["a", "b", "a"], ["b", "c", "c"], ["model_a", "tie", "model_b"], tstamp=[3.0, 1.0, 2.0]
    )
    # Time order: (b,c tie), (a,c c wins), (a,b a wins), K=32 for visible numbers.
    r = {"a": 1000.0, "b": 1000.0, "c": 1000.0}

    def play(x: str, y: str, s: float) -> None:
        e = 1 / (1 + 10 ** ((r[y] - r[x]) / 400))
        r[x] += 32 * (s - e)
        r[y] -= 32 * (s - e)

    play("b", "c", 0.5)
    play("a", "c", 0.0)
    play("a", "b", 1.0)
    got = online_elo(battles, EloOptions(k=32))
    np.testing.assert_allclose(got, [r["a"], r["b"], r["c"]])


def test_elo_leaderboard_and_option_errors(sim: Battles) -> None:
    lb = compute_leaderboard(sim, RatingOptions(method="elo", ci="none"))
    assert lb.rows[0].model == "m00"
    assert all(r.lower == r.rating == r.upper for r in lb.rows)
    boot = compute_leaderboard(sim, RatingOptions(method="elo", ci="bootstrap", rounds=20))
    assert all(r.lower <= r.upper for r in boot.rows)
    with pytest.raises(OptionError, match="only for method='bt'") as info:
        RatingOptions(method="elo", ci="sandwich")
    assert info.value.option == "ci" and "--" not in str(info.value)  # the CLI adds flags
    with pytest.raises(ValueError, match="unknown method"):
        RatingOptions(method="glicko")


def test_win_rate_is_empirical_score() -> None:
    lb = compute_leaderboard(battles_from_counts([("a", "b", 3, 1, 2)]))
    row = {r.model: r for r in lb.rows}
    assert row["a"].win_rate == pytest.approx(4 / 6)
    assert row["b"].win_rate == pytest.approx(2 / 6)
    assert row["a"].avg_win_rate + row["b"].avg_win_rate == pytest.approx(1.0)
    assert not math.isnan(row["a"].avg_win_rate)
