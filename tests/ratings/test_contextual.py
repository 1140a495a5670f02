"""Style-controlled (contextual) Bradley-Terry: derivatives, known answers, coverage."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import check_grad

from ratings.bt import ELO_SCALE, fit_bt
from ratings.contextual import (
    ContextualData,
    contextual_bootstrap,
    contextual_covariance,
    contextual_gradient,
    contextual_log_likelihood,
    contextual_neg_hessian,
    fit_contextual,
    style_features,
)
from ratings.data import A_SCORE, STYLE_FEATURES, Battles
from ratings.leaderboard import RatingOptions, compute_leaderboard

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "style"
GRAD_TOL = 1e-5  # check_grad's finite-difference error relative to a gradient of size ~100
KNOWN_POINTS = 0.5  # agreement with arena-rank, Elo points (the bar)
COEF_TOL = 2e-3  # agreement of the style coefficients (logit units per SD)
Z95 = 1.959964


def _side(md: dict, side: str) -> list[float]:
    out = [float(md[f"sum_assistant_{side}_tokens"])]
    for key in ("header_count", "list_count", "bold_count"):
        out.append(float(sum(md[f"{key}_{side}"].values())))
    return out


@pytest.fixture(scope="module")
def fixture_battles() -> Battles:
    with gzip.open(FIXTURE / "battles.jsonl.gz", "rt", encoding="utf-8") as fh:
        recs = [json.loads(line) for line in fh]
    style = np.array(
        [[*zip(_side(r["conv_metadata"], "a"), _side(r["conv_metadata"], "b"), strict=True)]
         for r in recs]
    )  # fmt: skip
    battles = Battles.from_columns(
        [r["model_a"] for r in recs], [r["model_b"] for r in recs], [r["winner"] for r in recs],
        clusters={"judge": [r["judge"] for r in recs]},
    )  # fmt: skip
    return battles.with_context(style=style)


def _data(battles: Battles, cluster: str | None = None) -> ContextualData:
    assert battles.style is not None
    x, _, _ = style_features(battles.style)
    return ContextualData(
        battles.n_models, battles.a, battles.b, A_SCORE[battles.outcome],
        np.ones(len(battles)) if battles.weight is None else battles.weight, x,
        None if cluster is None else battles.clusters[cluster],
    )  # fmt: skip


def test_features_are_lmarenas_and_standardised() -> None:
    style = np.zeros((4, 4, 2))
    style[:, 0, 0] = [100, 50, 0, 10]
    style[:, 0, 1] = [50, 100, 0, 10]
    x, mean, std = style_features(style)
    raw = np.array([50 / 151, -50 / 151, 0.0, 0.0])
    np.testing.assert_allclose(x[:, 0], (raw - raw.mean()) / raw.std())
    assert mean[0] == pytest.approx(0.0) and std[1] == 1.0  # constant feature left unscaled
    with pytest.raises(ValueError, match="n x f x 2"):
        style_features(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=">= 0"):
        style_features(-np.ones((2, 1, 2)))


def test_gradient_and_hessian_match_finite_differences(fixture_battles: Battles) -> None:
    data = _data(fixture_battles.select(np.arange(len(fixture_battles)) < 600))
    rng = np.random.default_rng(5)
    p = rng.normal(0, 0.3, data.n_models + data.n_features)
    for l2, sl2 in ((1e-6, 0.0), (0.5, 3.0)):
        err = check_grad(
            lambda q: contextual_log_likelihood(q, data, l2, sl2),  # noqa: B023
            lambda q: contextual_gradient(q, data, l2, sl2),  # noqa: B023
            p,
        )
        assert err / np.linalg.norm(contextual_gradient(p, data, l2, sl2)) < GRAD_TOL
        h = contextual_neg_hessian(p, data, l2, sl2)
        eps = 1e-6
        num = np.empty_like(h)
        for k in range(p.size):
            d = np.zeros_like(p)
            d[k] = eps
            num[:, k] = -(
                contextual_gradient(p + d, data, l2, sl2)
                - contextual_gradient(p - d, data, l2, sl2)
            ) / (2 * eps)
        np.testing.assert_allclose(h, num, rtol=1e-5, atol=1e-4)


def test_without_style_effect_columns_it_is_plain_bt(fixture_battles: Battles) -> None:
    # All-zero features: the contextual fit must reduce to plain Bradley-Terry.
    data = _data(fixture_battles)
    flat = ContextualData(data.n_models, data.a, data.b, data.score, data.weight,
                          np.zeros_like(data.x))  # fmt: skip
    fit = fit_contextual(flat, l2=1e-6)
    plain = fit_bt(fixture_battles.aggregate(), l2=1e-6)
    np.testing.assert_allclose(fit.theta, plain.theta, atol=1e-9)
    np.testing.assert_allclose(fit.beta, 0.0, atol=1e-12)


@pytest.mark.parametrize("fit_index", [0, 1])
def test_known_answers_from_arena_rank(fixture_battles: Battles, fit_index: int) -> None:
    """arena-rank's ContextualBradleyTerry on the committed fixture (outputs committed by
    tests/fixtures/style/make_reference.py): ratings, intervals and coefficients agree."""
    ref = json.loads((FIXTURE / "arena_rank_reference.json").read_text())
    run = ref["fits"][fit_index]
    assert tuple(run["competitors"]) == fixture_battles.models
    n = ref["n_battles"]
    # arena-rank penalises the mean log-likelihood by reg/2 |beta|^2: that is reg * n here.
    lb = compute_leaderboard(
        fixture_battles, RatingOptions(style_control=True, style_l2=run["reg"] * n, l2=0.0)
    )
    by = {r.model: r for r in lb.rows}
    for k, name in enumerate(run["competitors"]):
        assert by[name].rating == pytest.approx(run["ratings"][k], abs=KNOWN_POINTS)
    assert lb.style is not None
    np.testing.assert_allclose(lb.style.estimate, run["coeffs"], atol=COEF_TOL)
    half_ref = np.array(run["ratings"]) - np.array(run["rating_lower"])
    half = np.array([by[name].rating - by[name].lower for name in run["competitors"]])
    if run["reg"] < 1e-6:
        np.testing.assert_allclose(half, half_ref, atol=KNOWN_POINTS)
        np.testing.assert_allclose(
            [by[name].upper for name in run["competitors"]], run["rating_upper"],
            atol=KNOWN_POINTS,
        )  # fmt: skip
        return
    # With a real penalty arena-rank's sandwich leaves the penalty's curvature out of the
    # Hessian (its intervals are then wider: 30.0 vs 22.7 points for atlas).  Ours keeps it;
    # with it left out, the same sandwich gives arena-rank's widths.
    data = _data(fixture_battles)
    fit = fit_contextual(data, l2=0.0, style_l2=run["reg"] * n)
    m = data.n_models
    h = contextual_neg_hessian(fit.params, data, 0.0, 0.0)
    gauge = np.zeros_like(h)
    gauge[:m, :m] = 1.0 / m
    hinv = np.linalg.inv(h + gauge) - gauge
    cov_ours = contextual_covariance(fit, data)
    h_pen = contextual_neg_hessian(fit.params, data, 0.0, run["reg"] * n)
    g_mat = h_pen @ cov_ours @ h_pen  # recovers the score covariance G
    alt = hinv @ g_mat @ hinv
    np.testing.assert_allclose(
        Z95 * ELO_SCALE * np.sqrt(np.diag(alt)[:m]), half_ref, atol=KNOWN_POINTS
    )
    assert np.all(half < half_ref)


def test_sandwich_equals_a_dense_brute_force(fixture_battles: Battles) -> None:
    """Independent: explicit design matrix, explicit per-battle scores, pinv for the gauge."""
    sub = fixture_battles.select(np.arange(len(fixture_battles)) < 900)
    data = _data(sub, "judge")
    fit = fit_contextual(data)
    m = data.n_models
    z = np.zeros((len(sub), m + data.n_features))
    z[np.arange(len(sub)), data.a] = 1.0
    z[np.arange(len(sub)), data.b] -= 1.0
    z[:, m:] = data.x
    p = 1 / (1 + np.exp(-(z @ fit.params)))
    h = (z * (p * (1 - p))[:, None]).T @ z
    h[:m, :m] += fit.l2 * np.eye(m)
    s = z * (data.score - p)[:, None]
    center = np.eye(m + data.n_features)
    center[:m, :m] -= 1.0 / m  # project onto mean-zero theta
    hinv = center @ np.linalg.pinv(h) @ center
    for clustered in (False, True):
        if clustered:
            assert data.cluster is not None
            sums = np.zeros((int(data.cluster.max()) + 1, s.shape[1]))
            np.add.at(sums, data.cluster, s)
            g = sums.T @ sums
        else:
            g = s.T @ s
        want = hinv @ g @ hinv
        got = contextual_covariance(fit, data, clustered=clustered)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-10)


def test_bootstrap_is_seeded_and_agrees_with_sandwich(fixture_battles: Battles) -> None:
    data = _data(fixture_battles, "judge")
    fit = fit_contextual(data)
    reps = contextual_bootstrap(data, fit, rounds=150, seed=9)
    again = contextual_bootstrap(data, fit, rounds=150, seed=9)
    np.testing.assert_array_equal(reps, again)
    se_boot = reps.std(axis=0)
    se_sand = np.sqrt(np.diag(contextual_covariance(fit, data)))
    # 150 rounds estimate an SD to about +-6% (1 / sqrt(2 * 150)); allow 25%.
    np.testing.assert_allclose(se_boot, se_sand, rtol=0.25)
    clus = contextual_bootstrap(data, fit, rounds=40, seed=9, clustered=True)
    assert clus.shape == reps[:40].shape and not np.array_equal(clus, reps[:40])


def _simulate_styled(rng: np.random.Generator, n: int, theta: np.ndarray,
                     length: np.ndarray, gamma: float) -> Battles:  # fmt: skip
    m = theta.size
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    tok = np.stack([rng.lognormal(np.log(length[a]), 0.4), rng.lognormal(np.log(length[b]), 0.4)])
    bold = np.stack([rng.poisson(length[a] / 200), rng.poisson(length[b] / 200)])
    raw = (tok[0] - tok[1]) / (tok[0] + tok[1] + 1)
    p = 1 / (1 + np.exp(-(theta[a] - theta[b] + gamma * raw)))
    outcome = np.where(rng.random(n) < p, 0, 1)
    style = np.zeros((n, len(STYLE_FEATURES), 2))
    style[:, 0, :] = tok.T
    style[:, 3, :] = bold.T
    names = [f"s{k}" for k in range(m)]
    return Battles.from_codes(names, a, b, outcome).with_context(style=style)


def _coverage(reps: int, n: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    theta = np.array([0.4, 0.2, 0.0, -0.1, -0.5])
    theta = theta - theta.mean()
    length = np.array([300.0, 900.0, 500.0, 1200.0, 400.0])  # style varies by model
    truth = 1000 + ELO_SCALE * theta
    hit_styled = hit_plain = 0
    for _ in range(reps):
        battles = _simulate_styled(rng, n, theta, length, gamma=1.6)
        for style_control in (True, False):
            lb = compute_leaderboard(battles, RatingOptions(style_control=style_control))
            idx = [battles.models.index(r.model) for r in lb.rows]
            lo = np.array([r.lower for r in lb.rows])
            hi = np.array([r.upper for r in lb.rows])
            hits = int(((lo <= truth[idx]) & (truth[idx] <= hi)).sum())
            if style_control:
                hit_styled += hits
            else:
                hit_plain += hits
    total = reps * theta.size
    return hit_styled / total, hit_plain / total


def test_style_controlled_intervals_cover_the_style_free_truth() -> None:
    styled, plain = _coverage(reps=60, n=3000, seed=404)
    # 300 model-intervals: binomial SD of a 95% coverage is 1.3 points; allow 4 SDs.
    assert abs(styled - 0.95) < 0.055, styled
    assert plain < 0.7, plain  # the plain fit credits long answers to the model


@pytest.mark.slow
def test_style_coverage_at_scale() -> None:
    styled, plain = _coverage(reps=300, n=6000, seed=11)
    assert abs(styled - 0.95) < 0.025, styled
    assert plain < 0.5, plain


def test_leaderboard_reports_coefficients_and_gainers(fixture_battles: Battles) -> None:
    for ci in ("sandwich", "bootstrap"):
        lb = compute_leaderboard(
            fixture_battles,
            RatingOptions(style_control=True, ci=ci, rounds=100, cluster_by="judge"),
        )
        assert lb.style is not None
        tokens = lb.style.features.index("answer_tokens")
        # The fixture was drawn with a positive length effect: the interval excludes 0.
        assert lb.style.lower[tokens] > 0
        assert np.all(lb.style.lower <= lb.style.estimate)
        assert np.all(lb.style.estimate <= lb.style.upper)
    # The verbose models (cirrus, glacier) lose most from control; terse ones gain.
    delta = {r.model: r.rating - lb.style.uncontrolled[lb.models.index(r.model)] for r in lb.rows}
    assert delta["cirrus"] < 0 and delta["glacier"] < 0 and delta["fjord"] > 0


def test_style_control_refuses_what_it_cannot_do(fixture_battles: Battles) -> None:
    from ratings.data import BattleDataError

    plain = Battles.from_codes(fixture_battles.models, fixture_battles.a, fixture_battles.b,
                               fixture_battles.outcome)  # fmt: skip
    with pytest.raises(BattleDataError, match="conv_metadata"):
        compute_leaderboard(plain, RatingOptions(style_control=True))
    with pytest.raises(ValueError, match="sandwich and bootstrap"):
        RatingOptions(style_control=True, ci="fisher")
    with pytest.raises(ValueError, match="method='bt'"):
        RatingOptions(style_control=True, method="elo", ci="none")
    # Battles without style counts (NaN) are left out, and the notes say so.
    assert fixture_battles.style is not None
    style = fixture_battles.style.copy()
    style[:25] = math.nan
    lb = compute_leaderboard(fixture_battles.with_context(style=style),
                             RatingOptions(style_control=True, ci="none"))  # fmt: skip
    assert lb.n_battles == len(fixture_battles) - 25
    assert "left out 25 battles without style features" in lb.notes
