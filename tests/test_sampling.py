"""Pair sampling: stated probabilities are the real ones."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from arena.sampling import make_policy


@pytest.mark.parametrize("name", ["uniform", "weighted"])
def test_ordered_pair_probabilities_sum_to_one_and_match_draws(name: str) -> None:
    models = ["a", "b", "c", "d"]
    weights = {"a": 4.0, "b": 1.0, "c": 1.0, "d": 2.0}
    policy = make_policy(name, models, weights)
    probs = {(x, y): policy.pair_probability(x, y) for x, y in itertools.permutations(models, 2)}
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-12)
    rng = random.Random(7)
    n = 100_000
    counts = Counter()
    for _ in range(n):
        d = policy.draw(rng)
        assert d.probability == probs[(d.model_a, d.model_b)]
        assert d.policy_name == name
        counts[(d.model_a, d.model_b)] += 1
    for pair, p in probs.items():
        # 4.5 binomial standard deviations: a false alarm about once in 150,000 pairs.
        sd = (n * p * (1 - p)) ** 0.5
        assert abs(counts[pair] - n * p) <= 4.5 * sd, (pair, counts[pair], n * p)


def test_weighted_policy_follows_roster_weights() -> None:
    policy = make_policy("weighted", ["a", "b", "c"], {"a": 3.0, "b": 1.0, "c": 1.0})
    # Pair weights: ab 3, ac 3, bc 1 (of 7); each ordered pair half of that.
    assert policy.pair_probability("a", "b") == pytest.approx(3 / 14)
    assert policy.pair_probability("c", "b") == pytest.approx(1 / 14)
    uniform = make_policy("uniform", ["a", "b", "c"], {"a": 3.0})
    assert uniform.pair_probability("a", "b") == pytest.approx(1 / 6)


def test_bad_policies_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="at least two models"):
        make_policy("uniform", ["only"])
    with pytest.raises(ValueError, match="unknown sampling policy 'best'"):
        make_policy("best", ["a", "b"])
    with pytest.raises(ValueError, match="must be > 0 for b"):
        make_policy("weighted", ["a", "b"], {"b": 0.0})
