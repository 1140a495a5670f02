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


def _active_state(models: list[str]) -> dict[str, object]:
    counts = {(models[0], models[1]): 500, (models[2], models[3]): 3}
    ratings = {m: 1000.0 + 60 * i for i, m in enumerate(models)}
    return {"counts": counts, "ratings": ratings}


@pytest.mark.parametrize("name", ["uniform", "weighted", "active"])
def test_exposure_over_100k_draws_matches_the_policy(name: str) -> None:
    models = [f"m{i}" for i in range(6)]
    policy = make_policy(name, models, {"m0": 3.0, "m5": 0.5})
    if name == "active":
        policy.update(**_active_state(models))  # type: ignore[arg-type]
    share = policy.exposure()
    assert sum(share.values()) == pytest.approx(1.0)
    rng = random.Random(11)
    n = 100_000
    seen = Counter()
    for _ in range(n):
        d = policy.draw(rng)
        seen[d.model_a] += 1
        seen[d.model_b] += 1
    for m in models:
        # Stated tolerance: 1% of all slots (the binomial sd here is below 0.13%).
        assert abs(seen[m] / (2 * n) - share[m]) < 0.01, (m, seen[m] / (2 * n), share[m])


def test_active_policy_favours_uncertain_unobserved_pairs_and_versions_its_state() -> None:
    models = ["a", "b", "c", "d"]
    policy = make_policy("active", models)
    v0 = policy.version
    policy.update(counts={("a", "b"): 1000}, ratings={"a": 1000, "b": 1000, "c": 1000, "d": 1600})
    assert policy.version != v0
    # Heavily observed a-b is shown less than unobserved, even c-b; lopsided c-d in between.
    assert policy.pair_probability("a", "b") < policy.pair_probability("c", "d")
    assert policy.pair_probability("c", "d") < policy.pair_probability("b", "c")
    policy.update(counts={}, ratings={}, ci_width={"a": 10.0, "b": 10.0, "c": 10.0, "d": 80.0})
    assert policy.pair_probability("a", "d") > 5 * policy.pair_probability("a", "b")
    policy.update(counts={}, ratings={}, ci_width={"a": 10.0, "b": 10.0, "c": 10.0})
    assert policy.pair_probability("a", "d") > 1.5 * policy.pair_probability("a", "b")  # new d
    # The uniform floor keeps every pair alive.
    assert policy.pair_probability("a", "b") >= 0.2 / 6 / 2


def test_active_policy_narrows_the_widest_ci_faster_than_uniform() -> None:
    """Two new models join a roster of eight with 6,000 battles of history; 1,500 more
    battles are drawn in 10 batches, refitting between batches.  The widest 95% CI (one of
    the new models) must end clearly narrower under the active policy."""
    import numpy as np

    from ratings import Battles, RatingOptions, compute_leaderboard

    true = {f"m{i}": 1000.0 + 35 * i for i in range(10)}
    models = list(true)

    def vote(rng: random.Random, a: str, b: str) -> str:
        pa = 1 / (1 + 10 ** ((true[b] - true[a]) / 400))
        return "model_a" if rng.random() < pa else "model_b"

    def widest_ci(name: str, seed: int) -> float:
        rng = random.Random(seed)
        a_s: list[str] = []
        b_s: list[str] = []
        w_s: list[str] = []
        for _ in range(6000):
            a, b = rng.sample(models[:8], 2)
            a_s.append(a)
            b_s.append(b)
            w_s.append(vote(rng, a, b))
        policy = make_policy(name, models)
        for _ in range(10):
            lb = compute_leaderboard(Battles.from_columns(a_s, b_s, w_s), RatingOptions())
            policy.update(
                counts=Counter(zip(a_s, b_s, strict=True)),
                ratings={r.model: r.rating for r in lb.rows},
                ci_width={r.model: r.upper - r.lower for r in lb.rows},
            )
            for _ in range(150):
                d = policy.draw(rng)
                a_s.append(d.model_a)
                b_s.append(d.model_b)
                w_s.append(vote(rng, d.model_a, d.model_b))
        lb = compute_leaderboard(Battles.from_columns(a_s, b_s, w_s), RatingOptions())
        return float(max(r.upper - r.lower for r in lb.rows))

    uniform = float(np.mean([widest_ci("uniform", s) for s in range(3)]))
    active = float(np.mean([widest_ci("active", s) for s in range(3)]))
    print(f"\nwidest 95% CI after 1,500 new battles: uniform {uniform:.1f}, active {active:.1f}")
    assert active < 0.85 * uniform
