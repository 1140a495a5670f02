"""Which pair of models to show next; every draw reports its probability.

A policy draws an *ordered* pair ``(model_a, model_b)`` and returns the probability with which
that ordered pair was drawn.  The battle stores it (with the policy's name and version), so
``arena ratings --reweight`` can undo unequal exposure later.  Sides are always assigned by a
fair coin, so the ordered probability is half the unordered one.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["POLICIES", "PairDraw", "SamplingPolicy", "make_policy"]


@dataclass(frozen=True)
class PairDraw:
    """A drawn pair and how likely exactly this ordered pair was."""

    model_a: str
    model_b: str
    probability: float
    policy_name: str
    policy_version: str


class SamplingPolicy:
    """Draw pairs with probability proportional to ``w_i * w_j`` (uniform when all equal).

    Parameters
    ----------
    models
        Candidate model names (at least two, distinct).
    weights
        Optional sampling weight per model (> 0); missing names weigh 1.
    name
        Policy name stored on each battle.
    """

    version = "1"

    def __init__(
        self,
        models: Sequence[str],
        weights: Mapping[str, float] | None = None,
        *,
        name: str = "weighted",
    ) -> None:
        if len(set(models)) != len(models):
            raise ValueError("sampling needs distinct model names")
        if len(models) < 2:
            raise ValueError(f"a battle needs at least two models in the roster, got {len(models)}")
        w = {m: float((weights or {}).get(m, 1.0)) for m in models}
        bad = [m for m, v in w.items() if not v > 0]
        if bad:
            raise ValueError(f"sampling weight must be > 0 for {', '.join(bad)}")
        self.name = name
        self.models = tuple(models)
        self._pairs: list[tuple[str, str]] = []
        self._pair_w: list[float] = []
        for i, a in enumerate(self.models):
            for b in self.models[i + 1 :]:
                self._pairs.append((a, b))
                self._pair_w.append(w[a] * w[b])
        self._total = sum(self._pair_w)

    def pair_probability(self, a: str, b: str) -> float:
        """Probability of drawing exactly the ordered pair ``(a, b)``."""
        for (x, y), pw in zip(self._pairs, self._pair_w, strict=True):
            if {x, y} == {a, b}:
                return pw / self._total / 2.0
        raise KeyError(f"{a!r} vs {b!r} is not a pair of this policy")

    def draw(self, rng: random.Random) -> PairDraw:
        """Draw one ordered pair.

        Parameters
        ----------
        rng
            Source of randomness (seed it for reproducible tests).

        Returns
        -------
        PairDraw
        """
        (a, b) = rng.choices(self._pairs, weights=self._pair_w, k=1)[0]
        if rng.random() < 0.5:
            a, b = b, a
        return PairDraw(a, b, self.pair_probability(a, b), self.name, self.version)


POLICIES = ("uniform", "weighted")


def make_policy(
    name: str, models: Sequence[str], weights: Mapping[str, float] | None = None
) -> SamplingPolicy:
    """Build a sampling policy by name.

    Parameters
    ----------
    name
        ``uniform`` (every pair equally likely) or ``weighted`` (roster weights).
    models
        Candidate model names.
    weights
        Roster sampling weights (ignored by ``uniform``).

    Returns
    -------
    SamplingPolicy

    Raises
    ------
    ValueError
        For an unknown policy name or unusable models/weights.
    """
    if name == "uniform":
        return SamplingPolicy(models, None, name="uniform")
    if name == "weighted":
        return SamplingPolicy(models, weights, name="weighted")
    raise ValueError(f"unknown sampling policy {name!r} (choose from {', '.join(POLICIES)})")
