"""LMArena's rank, the point-estimate order, P(#1), rank intervals and P(i above j)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ratings.data import BattleDataError, Battles
from ratings.leaderboard import (
    RatingOptions,
    compute_leaderboard,
    p_rated_above,
    rank_confidence,
)

from .helpers import simulate

P_TOL = 1e-12  # shares of replicates are exact ratios


@pytest.fixture(scope="module")
def close_board() -> Battles:
    # Eight models, two near-ties at the top: the LMArena rank and the order differ.
    rng = np.random.default_rng(20261203)
    return simulate(np.array([0.52, 0.50, 0.47, 0.1, 0.08, -0.4, -0.45, -0.82]), 3000, rng)


def _naive_ranks(samples: np.ndarray) -> np.ndarray:
    r, m = samples.shape
    out = np.empty((r, m), dtype=int)
    for k in range(r):
        for i in range(m):
            out[k, i] = 1 + sum(samples[k, j] > samples[k, i] for j in range(m))
    return out


def test_rank_confidence_matches_a_naive_count() -> None:
    rng = np.random.default_rng(77)
    samples = rng.normal(size=(301, 6)) + np.array([2.0, 1.9, 1.0, 0.0, 0.0, -3.0])
    samples[5, 3] = samples[5, 4]  # an exact tie in one replicate
    conf = rank_confidence(samples, level=0.9)
    above = p_rated_above(samples)
    ranks = _naive_ranks(samples)
    np.testing.assert_allclose(conf.p_rank1, (ranks == 1).mean(axis=0), atol=P_TOL)
    for i in range(6):
        assert conf.best[i] == int(np.quantile(ranks[:, i], 0.05, method="lower"))
        assert conf.worst[i] == int(np.quantile(ranks[:, i], 0.95, method="higher"))
        for j in range(6):
            want = (samples[:, i] > samples[:, j]).mean()
            assert above[i, j] == pytest.approx(want, abs=P_TOL)
    # Without ties P(i above j) + P(j above i) = 1 off the diagonal.
    off = ~np.eye(6, dtype=bool)
    total = above + above.T
    assert np.all(np.abs(total[off] - 1.0) <= 1.0 / 301 + P_TOL)


@pytest.mark.parametrize("seed", [3, 41, 2024])
def test_rank_confidence_with_many_ties_matches_a_naive_count(seed: int) -> None:
    """Integer-valued replicates: ties for first, for last and in the middle, everywhere."""
    rng = np.random.default_rng(seed)
    m = int(rng.integers(2, 12))
    samples = rng.integers(0, 4, size=(int(rng.integers(1, 90)), m)).astype(float)
    conf = rank_confidence(samples, level=0.8)
    ranks = _naive_ranks(samples)
    np.testing.assert_allclose(conf.p_rank1, (ranks == 1).mean(axis=0), atol=P_TOL)
    for i in range(m):
        assert conf.best[i] == int(np.quantile(ranks[:, i], 0.1, method="lower"))
        assert conf.worst[i] == int(np.quantile(ranks[:, i], 0.9, method="higher"))


def test_rank_confidence_rejects_empty_input() -> None:
    with pytest.raises(ValueError, match="at least one replicate"):
        rank_confidence(np.zeros((0, 3)))


@pytest.mark.parametrize("ci", ["bootstrap", "sandwich"])
def test_rank_is_lmarenas_and_order_has_its_own_column(close_board: Battles, ci: str) -> None:
    lb = compute_leaderboard(close_board, RatingOptions(ci=ci, rounds=300, seed=5))
    lower = np.array([r.lower for r in lb.rows])
    upper = np.array([r.upper for r in lb.rows])
    for k, r in enumerate(lb.rows):
        assert r.rank == 1 + int((lower > upper[k]).sum())
        assert r.rating_order == k + 1  # rows come sorted by rating
    assert [r.rank for r in lb.rows] != [r.rating_order for r in lb.rows]
    # P(#1) is a distribution over models; the clear leaders hold most of it.
    p1 = np.array([r.p_rank1 for r in lb.rows])
    assert p1.sum() == pytest.approx(1.0, abs=1e-9)
    assert p1[:3].sum() > 0.95
    for r in lb.rows:
        assert 1 <= r.rank_ci_best <= r.rank_ci_worst <= len(lb.rows)
    assert lb.p_above is not None
    first = lb.models.index(lb.rows[0].model)
    last = lb.models.index(lb.rows[-1].model)
    assert lb.p_above[first, last] > 0.99


def test_no_intervals_means_no_rank_confidence(close_board: Battles) -> None:
    lb = compute_leaderboard(close_board, RatingOptions(ci="none"))
    assert all(math.isnan(r.p_rank1) for r in lb.rows)
    assert lb.p_above is None
    assert [r.rank for r in lb.rows] == [r.rating_order for r in lb.rows]


def test_fisher_refuses_clusters_and_weights(close_board: Battles) -> None:
    with pytest.raises(ValueError, match="cannot honour cluster_by"):
        RatingOptions(ci="fisher", cluster_by="judge")
    weighted = close_board.with_weight(np.linspace(0.5, 1.5, len(close_board)))
    with pytest.raises(BattleDataError, match="fisher ignores the battle weights"):
        compute_leaderboard(weighted, RatingOptions(ci="fisher"))
    # Unit weights are no weights: Fisher stays available.
    ones = close_board.with_weight(np.ones(len(close_board)))
    assert compute_leaderboard(ones, RatingOptions(ci="fisher")).rows


def test_select_keeps_the_notes(close_board: Battles) -> None:
    noted = close_board.with_note("left out 7 named (non-anonymous) battles")
    mask = noted.a != 0
    kept = noted.select(mask, "left out 12 votes of 1 flagged voters")
    assert kept.notes == (
        "left out 7 named (non-anonymous) battles",
        "left out 12 votes of 1 flagged voters",
    )
    assert kept.with_weight(np.ones(len(kept))).notes == kept.notes
    lb = compute_leaderboard(kept, RatingOptions(ci="none"))
    assert "left out 7 named (non-anonymous) battles" in lb.notes


@pytest.mark.shared_data
def test_llmfao_lmarena_rank_differs_from_the_order(shared_data) -> None:  # type: ignore[no-untyped-def]
    """The issue's measurement: on LLMFAO the two ranks differ for 58 of 59 models."""
    import csv

    with (shared_data / "llmfao_crowd_comparisons.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    win = {"left": "model_a", "right": "model_b", "tie": "tie"}
    battles = Battles.from_columns(
        [r["left"] for r in rows], [r["right"] for r in rows], [win[r["winner"]] for r in rows]
    )
    lb = compute_leaderboard(battles)
    assert len(lb.rows) == 59
    assert sum(r.rank != r.rating_order for r in lb.rows) == 58


def test_many_models_skip_the_normal_draws(
    close_board: Battles, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ratings.leaderboard as lbmod

    full = compute_leaderboard(close_board, RatingOptions(ci="sandwich"))
    assert not math.isnan(full.rows[0].p_rank1)
    monkeypatch.setattr(lbmod, "RANK_DRAW_MAX_MODELS", 5)  # the board has 8 models
    lb = compute_leaderboard(close_board, RatingOptions(ci="sandwich"))
    assert all(math.isnan(r.p_rank1) for r in lb.rows) and lb.p_above is None
    # The intervals, and so LMArena's rank, do not depend on the draws.
    assert [r.rank for r in lb.rows] == [r.rank for r in full.rows]
