"""Many models: the sparse (conjugate-gradient) Newton path, and the limits past it.

The dense path (m x m Hessian) and the sparse one must give the same ratings; the sparse one
is also checked against choix, an independent implementation, when it is installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import ratings.bt as bt
import ratings.leaderboard as leaderboard
from arena.cli import main
from ratings.bt import DENSE_MAX_MODELS, fit_bt
from ratings.data import BattleDataError
from ratings.leaderboard import OptionError, RatingOptions, compute_leaderboard, rank_ranges

from .helpers import simulate

SPARSE_DENSE_TOL = 1e-9  # theta, natural-log scale; both converge to gradient norm 1e-8
CHOIX_TOL = 1e-6  # choix's LSR stops at a relative change of 1e-12 in the stationary law


@pytest.mark.parametrize(("m", "n", "ties", "seed"), [(60, 3000, 0.0, 1), (240, 9000, 0.3, 7),
                                                      (700, 40000, 0.1, 11)])  # fmt: skip
def test_sparse_and_dense_paths_agree(
    monkeypatch: pytest.MonkeyPatch, m: int, n: int, ties: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    counts = simulate(rng.normal(0, 1.2, m), n, rng, tie_rate=ties).aggregate()
    monkeypatch.setattr(bt, "DENSE_MAX_MODELS", 10**9)
    dense = fit_bt(counts)
    monkeypatch.setattr(bt, "DENSE_MAX_MODELS", 0)
    sparse = fit_bt(counts)
    assert sparse.grad_norm <= bt.DEFAULT_TOL
    np.testing.assert_allclose(sparse.theta, dense.theta, rtol=0, atol=SPARSE_DENSE_TOL)


@pytest.mark.slow
def test_sparse_fit_matches_choix_without_penalty() -> None:
    choix = pytest.importorskip("choix")
    m = DENSE_MAX_MODELS + 150  # the default path for this size is the sparse one
    rng = np.random.default_rng(2024)
    strengths = rng.normal(0, 1, m)
    battles = simulate(strengths, 60 * m, rng)
    counts = battles.aggregate()
    ours = fit_bt(counts, l2=0.0)
    names = battles.models
    data = [(int(a), int(b)) if o == 0 else (int(b), int(a))
            for a, b, o in zip(battles.a, battles.b, battles.outcome, strict=True)]  # fmt: skip
    theirs = choix.ilsr_pairwise(len(names), data, alpha=0.0, tol=1e-12, max_iter=1000)
    theirs = theirs - theirs.mean()
    np.testing.assert_allclose(ours.theta, theirs, rtol=0, atol=CHOIX_TOL)


@pytest.mark.slow
def test_ten_thousand_models_without_intervals() -> None:
    rng = np.random.default_rng(10)
    m = 10_000
    strengths = rng.normal(0, 1, m)
    battles = simulate(strengths, 40 * m, rng, tie_rate=0.2)
    lb = compute_leaderboard(battles, RatingOptions(ci="none"))
    assert len(lb.rows) == m
    got = np.array([r.rating for r in sorted(lb.rows, key=lambda r: r.model)])
    truth = strengths[[int(name[1:]) for name in sorted(battles.models)]]
    assert np.corrcoef(got, truth)[0, 1] > 0.85
    # The m x m matrices (800 MB each here) are only built when something asks for them.
    assert "battle_counts" not in vars(lb) and "predicted_win_rates" not in vars(lb)
    ranks = [r.rank for r in lb.rows]
    assert ranks == sorted(ranks) and ranks[0] == 1


def test_interval_limits_are_refused_with_the_limit_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    battles = simulate(rng.normal(0, 1, 30), 2000, rng)
    monkeypatch.setattr(bt, "MAX_COVARIANCE_MODELS", 20)
    for ci in ("sandwich", "fisher"):
        with pytest.raises(OptionError, match=r"limit is 20 models.*ci='none'") as info:
            compute_leaderboard(battles, RatingOptions(ci=ci))
        assert info.value.option == "ci"
    monkeypatch.setattr(leaderboard, "MAX_BOOTSTRAP_MODELS", 25)
    with pytest.raises(OptionError, match="limited to 25 models"):
        compute_leaderboard(battles, RatingOptions(ci="bootstrap", rounds=5))
    assert compute_leaderboard(battles, RatingOptions(ci="none")).rows  # still rates
    monkeypatch.setattr(leaderboard, "MAX_MODELS", 29)
    with pytest.raises(BattleDataError, match="more than the 29"):
        compute_leaderboard(battles, RatingOptions(ci="none"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_ranges_by_binary_search_match_all_pairs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    # Rounded to force ties between bounds, the case a sort-based count gets wrong first.
    lower = np.round(rng.normal(0, 3, n))
    upper = lower + np.round(rng.uniform(0, 4, n))
    best, worst = rank_ranges(lower, upper)
    np.testing.assert_array_equal(best, 1 + (lower[None, :] > upper[:, None]).sum(axis=1))
    np.testing.assert_array_equal(worst, n - (upper[None, :] < lower[:, None]).sum(axis=1))


def test_cli_refuses_a_hundred_thousand_models_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "many.jsonl"
    with path.open("w") as fh:
        for k in range(50_000):  # every battle between two new names: 100,000 models
            rec = {"model_a": f"a{k}", "model_b": f"b{k}", "winner": "model_a"}
            fh.write(json.dumps(rec) + "\n")
    assert main(["ratings", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "100000 models" in err and "20000" in err


def test_cli_names_the_flag_when_intervals_are_too_big(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(4)
    b = simulate(rng.normal(0, 1, 12), 600, rng)
    path = tmp_path / "b.jsonl"
    path.write_text("".join(
        json.dumps({"model_a": b.models[i], "model_b": b.models[j],
                    "winner": ["model_a", "model_b", "tie"][o]}) + "\n"
        for i, j, o in zip(b.a, b.b, b.outcome, strict=True)))  # fmt: skip
    monkeypatch.setattr(bt, "MAX_COVARIANCE_MODELS", 10)
    assert main(["ratings", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--ci none" in err and "limit is 10 models" in err
    assert main(["ratings", str(path), "--ci", "none", "--no-progress"]) == 0
