"""Builders for small battle sets used across the ratings tests."""

from __future__ import annotations

import numpy as np

from ratings.data import Battles


def battles_from_counts(rows: list[tuple[str, str, int, int, int]], **kw: object) -> Battles:
    """``(model_a, model_b, a_wins, b_wins, ties)`` rows expanded to one battle per game."""
    ma: list[str] = []
    mb: list[str] = []
    win: list[str] = []
    for a, b, wa, wb, t in rows:
        for value, k in (("model_a", wa), ("model_b", wb), ("tie", t)):
            ma += [a] * int(k)
            mb += [b] * int(k)
            win += [value] * int(k)
    return Battles.from_columns(ma, mb, win, **kw)  # type: ignore[arg-type]


def simulate(
    strengths: np.ndarray, n: int, rng: np.random.Generator, tie_rate: float = 0.0
) -> Battles:
    """Battles between uniformly drawn pairs under the BT model; ties at ``tie_rate``.

    Ties are drawn independently of strength, so the expected score stays the BT
    probability only when ``tie_rate`` is 0; with ties the half-win quasi-likelihood still
    recovers the strengths shrunk by ``(1 - tie_rate)`` in the score, which the tests that
    use ties take into account.
    """
    m = strengths.shape[0]
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    p = 1.0 / (1.0 + np.exp(-(strengths[a] - strengths[b])))
    outcome = np.where(rng.random(n) < p, 0, 1)
    if tie_rate:
        outcome = np.where(rng.random(n) < tie_rate, 2, outcome)
    names = [f"m{k:02d}" for k in range(m)]
    return Battles.from_codes(names, a, b, outcome)
