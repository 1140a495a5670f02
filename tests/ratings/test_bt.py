"""Bradley-Terry fit: likelihood derivatives, convergence, penalties, batch = single."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import check_grad

from ratings.bt import (
    ConvergenceError,
    covariance,
    fit_bt,
    fit_bt_batch,
    gradient,
    log_likelihood,
    neg_hessian,
)
from ratings.data import Battles

from .helpers import battles_from_counts, simulate

GRAD_TOL = 1e-5  # check_grad error relative to the gradient's size


@pytest.fixture(scope="module")
def tied_counts():  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    return simulate(rng.normal(0, 1, 6), 3000, rng, tie_rate=0.3).aggregate()


def test_gradient_matches_finite_differences(tied_counts) -> None:  # type: ignore[no-untyped-def]
    pairs = tied_counts.pair_totals()
    rng = np.random.default_rng(0)
    for l2 in (0.0, 1e-6, 0.5):
        theta = rng.normal(0, 1, tied_counts.n_models)
        err = check_grad(
            lambda t: log_likelihood(t, pairs, l2),  # noqa: B023
            lambda t: gradient(t, pairs, l2),  # noqa: B023
            theta,
        )
        assert err < GRAD_TOL * np.linalg.norm(gradient(theta, pairs, l2))


def test_hessian_matches_finite_differences_of_gradient(tied_counts) -> None:  # type: ignore[no-untyped-def]
    pairs = tied_counts.pair_totals()
    theta = np.random.default_rng(1).normal(0, 1, tied_counts.n_models)
    for k in range(tied_counts.n_models):
        err = check_grad(
            lambda t: gradient(t, pairs, 0.1)[k],  # noqa: B023
            lambda t: -neg_hessian(t, pairs, 0.1)[k],  # noqa: B023
            theta,
        )
        assert err < 1e-4


def test_fit_reaches_tolerance_and_is_centred(tied_counts) -> None:  # type: ignore[no-untyped-def]
    fit = fit_bt(tied_counts)
    assert fit.grad_norm <= 1e-8
    assert abs(fit.theta.mean()) < 1e-12
    assert np.linalg.norm(gradient(fit.theta, fit.pairs, fit.l2)) <= 1e-8


def test_ties_count_as_half_wins() -> None:
    # 10 ties only: equal strength.  4 wins + 2 ties vs 2 wins + 2 ties: odds 5:3.
    fit = fit_bt(battles_from_counts([("a", "b", 0, 0, 10)]).aggregate(), l2=0)
    assert fit.theta[0] == pytest.approx(fit.theta[1], abs=1e-12)
    fit = fit_bt(battles_from_counts([("a", "b", 4, 2, 2)]).aggregate(), l2=0)
    assert fit.theta[0] - fit.theta[1] == pytest.approx(np.log(5 / 3), abs=1e-10)


def test_both_bad_is_a_tie() -> None:
    b1 = Battles.from_columns(["a", "a", "b"], ["b", "b", "a"], ["model_a", "tie", "tie"])
    b2 = Battles.from_columns(
        ["a", "a", "b"], ["b", "b", "a"], ["model_a", "tie (bothbad)", "tie (bothbad)"]
    )
    np.testing.assert_allclose(fit_bt(b1.aggregate()).theta, fit_bt(b2.aggregate()).theta)


def test_undefeated_model_stays_finite_with_default_penalty() -> None:
    battles = battles_from_counts([("champ", "b", 5, 0, 0), ("b", "c", 3, 2, 1)])
    fit = fit_bt(battles.aggregate())
    assert np.all(np.isfinite(fit.theta))
    assert fit.theta[fit.models.index("champ")] == fit.theta.max()


def test_undefeated_model_without_penalty_fails_loudly() -> None:
    battles = battles_from_counts([("champ", "b", 5, 0, 0), ("b", "c", 3, 2, 1)])
    with pytest.raises(ConvergenceError, match="never lost"):
        fit_bt(battles.aggregate(), l2=0, max_iter=30)


def test_negative_penalty_rejected(tied_counts) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="l2"):
        fit_bt(tied_counts, l2=-1)


def test_weights_equal_repeated_battles() -> None:
    once = Battles.from_columns(["a", "b", "a"], ["b", "c", "c"], ["model_a", "tie", "model_b"])
    weighted = once.with_weight([3.0, 1.0, 2.0])
    repeated = Battles.from_columns(
        ["a"] * 3 + ["b"] + ["a"] * 2,
        ["b"] * 3 + ["c"] + ["c"] * 2,
        ["model_a"] * 3 + ["tie"] + ["model_b"] * 2,
    )
    np.testing.assert_allclose(
        fit_bt(weighted.aggregate()).theta, fit_bt(repeated.aggregate()).theta, atol=1e-10
    )


def test_batch_fit_equals_single_fits(tied_counts) -> None:  # type: ignore[no-untyped-def]
    pairs = tied_counts.pair_totals()
    rng = np.random.default_rng(5)
    scale = rng.uniform(0.5, 2.0, size=(4, pairs.n_pairs))
    total = pairs.total * scale
    score = pairs.score * scale
    batch = fit_bt_batch(pairs.i, pairs.j, total, score, np.zeros(tied_counts.n_models))
    for r in range(4):
        cells = tied_counts.weight * scale[r][pairs.cell_pair]
        single = fit_bt(
            type(tied_counts)(
                tied_counts.models,
                tied_counts.i,
                tied_counts.j,
                tied_counts.outcome,
                tied_counts.n,
                cells,
                cells,
            )
        )
        np.testing.assert_allclose(batch[r], single.theta, atol=1e-9)


def test_sandwich_equals_fisher_without_ties_when_model_is_true() -> None:
    # Without ties and with data from the model, the sandwich and Fisher SEs agree closely.
    rng = np.random.default_rng(11)
    counts = simulate(rng.normal(0, 0.7, 5), 40000, rng).aggregate()
    fit = fit_bt(counts)
    se_f = np.sqrt(np.diag(covariance(fit, counts, "fisher")))
    se_s = np.sqrt(np.diag(covariance(fit, counts, "sandwich")))
    np.testing.assert_allclose(se_s, se_f, rtol=0.03)


def test_unknown_covariance_kind(tied_counts) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="unknown covariance"):
        covariance(fit_bt(tied_counts), tied_counts, "magic")
