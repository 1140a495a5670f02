"""Simulation: 95% intervals should cover the true (centred) ratings about 95% of the time."""

from __future__ import annotations

import numpy as np
import pytest

from ratings.bootstrap import bootstrap_thetas, percentile_interval
from ratings.bt import covariance, fit_bt

from .helpers import simulate

# 300 replications x 8 models = 2400 intervals: the binomial SD of the coverage is ~0.5%,
# so [0.93, 0.97] fails an honest 95% procedure with negligible probability.
COVERAGE_BAND = (0.93, 0.97)


def test_sandwich_intervals_cover_truth() -> None:
    rng = np.random.default_rng(2024)
    truth = np.linspace(-1.0, 1.0, 8)
    truth -= truth.mean()
    hits = []
    for _ in range(300):
        counts = simulate(truth, 1500, rng).aggregate()
        fit = fit_bt(counts)
        se = np.sqrt(np.diag(covariance(fit, counts, "sandwich")))
        hits.append(np.abs(fit.theta - truth) <= 1.959964 * se)
    coverage = float(np.mean(hits))
    assert COVERAGE_BAND[0] <= coverage <= COVERAGE_BAND[1], coverage


@pytest.mark.slow
def test_bootstrap_intervals_cover_truth() -> None:
    rng = np.random.default_rng(7)
    truth = np.linspace(-1.0, 1.0, 6)
    truth -= truth.mean()
    hits = []
    for rep in range(120):
        counts = simulate(truth, 1500, rng).aggregate()
        fit = fit_bt(counts)
        samples = bootstrap_thetas(counts, fit, rounds=200, seed=rep)
        lo, hi = percentile_interval(samples)
        hits.append((lo <= truth) & (truth <= hi))
    coverage = float(np.mean(hits))
    # 720 intervals, 200 rounds each: a wider band for the extra Monte Carlo noise.
    assert 0.91 <= coverage <= 0.98, coverage
