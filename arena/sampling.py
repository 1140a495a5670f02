"""Which pair of models to show next; every draw reports its probability.

A policy draws an *ordered* pair ``(model_a, model_b)`` and returns the probability with which
that ordered pair was drawn.  The battle stores it (with the policy's name and version), so
``arena ratings --reweight`` can undo unequal exposure later.  Sides are always assigned by a
fair coin, so the ordered probability is half the unordered one.

Policies:

``uniform``   every pair equally likely;
``weighted``  pair ``(i, j)`` with probability proportional to ``w_i * w_j`` (roster weights);
``active``    favours pairs whose outcome is most uncertain between the least-known models:
              pair weight ``p (1 - p) (u_i + u_j)`` (``p`` the fitted win probability, ``u``
              a model's remaining uncertainty), mixed with ``floor`` of the uniform policy
              so that every pair keeps being shown.  Its state (counts, ratings, interval
              widths) is refreshed with :meth:`SamplingPolicy.update`; each refresh bumps its
              version.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["POLICIES", "PairDraw", "SamplingPolicy", "make_policy"]

POLICIES = ("uniform", "weighted", "active")


@dataclass(frozen=True)
class PairDraw:
    """A drawn pair and how likely exactly this ordered pair was."""

    model_a: str
    model_b: str
    probability: float
    policy_name: str
    policy_version: str


class SamplingPolicy:
    """Draw pairs with a probability per unordered pair (see the module docstring).

    Parameters
    ----------
    models
        Candidate model names (at least two, distinct).
    pair_weights
        Unnormalised weight per unordered pair ``(a, b)`` with ``a`` before ``b`` in
        ``models``; missing pairs weigh 1.
    name
        Policy name stored on each battle.
    version
        Policy version stored on each battle.
    """

    def __init__(
        self,
        models: Sequence[str],
        pair_weights: Mapping[tuple[str, str], float] | None = None,
        *,
        name: str = "uniform",
        version: str = "1",
    ) -> None:
        if len(set(models)) != len(models):
            raise ValueError("sampling needs distinct model names")
        if len(models) < 2:
            raise ValueError(f"a battle needs at least two models in the roster, got {len(models)}")
        self.name = name
        self.models = tuple(models)
        self._pairs: list[tuple[str, str]] = []
        pair_w: list[float] = []
        for i, a in enumerate(self.models):
            for b in self.models[i + 1 :]:
                w = float((pair_weights or {}).get((a, b), 1.0))
                if not (w > 0 and math.isfinite(w)):
                    raise ValueError(f"pair weight must be finite and > 0 for {a} vs {b}")
                self._pairs.append((a, b))
                pair_w.append(w)
        self._set_weights(pair_w, version)

    def _set_weights(self, weights: list[float], version: str | None = None) -> None:
        total = sum(weights)
        prob = {p: w / total for p, w in zip(self._pairs, weights, strict=True)}
        # One assignment: a draw running in another thread sees the old or the new state,
        # never the weights of one and the probabilities of the other.
        self._state = (weights, prob, version or self.version)

    @property
    def version(self) -> str:
        """Version of the current state (stored on every battle drawn with it)."""
        return self._state[2]

    @property
    def _prob(self) -> dict[tuple[str, str], float]:
        return self._state[1]

    def pair_probability(self, a: str, b: str) -> float:
        """Probability of drawing exactly the ordered pair ``(a, b)``."""
        return self._ordered(self._state[1], a, b)

    @staticmethod
    def _ordered(prob: Mapping[tuple[str, str], float], a: str, b: str) -> float:
        p = prob.get((a, b), prob.get((b, a)))
        if p is None:
            raise KeyError(f"{a!r} vs {b!r} is not a pair of this policy")
        return p / 2.0

    def exposure(self) -> dict[str, float]:
        """Expected share of battle slots per model (sums to 1; each battle has two slots)."""
        share = dict.fromkeys(self.models, 0.0)
        for (a, b), p in self._prob.items():
            share[a] += p / 2
            share[b] += p / 2
        return share

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
        weights, prob, version = self._state
        (a, b) = rng.choices(self._pairs, weights=weights, k=1)[0]
        if rng.random() < 0.5:
            a, b = b, a
        return PairDraw(a, b, self._ordered(prob, a, b), self.name, version)

    def update(
        self,
        *,
        counts: Mapping[tuple[str, str], int],
        ratings: Mapping[str, float],
        ci_width: Mapping[str, float] | None = None,
        floor: float = 0.2,
    ) -> None:
        """Refresh an ``active`` policy from the data so far (no-op for the others).

        Pair ``(i, j)`` gets weight ``p (1 - p) (u_i + u_j)``: ``p (1 - p)`` is the
        information one battle carries (largest for evenly matched pairs) and ``u`` is how
        uncertain a model still is, the squared width of its confidence interval (or, without
        intervals, ``1 / (battles + 1)``), so the least-known models are shown most.

        Parameters
        ----------
        counts
            Battles per ordered or unordered pair.
        ratings
            Elo-scale ratings of the current fit (missing models: 1000).
        ci_width
            Width of each model's confidence interval in the current fit, when known.
        floor
            Share of the uniform policy mixed in, so every pair keeps being sampled.
        """
        if self.name != "active":
            return
        n_model = dict.fromkeys(self.models, 0)
        for (a, b), n in counts.items():
            for m in (a, b):
                if m in n_model:
                    n_model[m] += n

        known = [float(w) for w in (ci_width or {}).values() if math.isfinite(w)]
        # A model the fit could not rate yet (new, or no battles) is the least known of all.
        unknown = (2.0 * max(known)) ** 2 if known else 1.0

        def uncertainty(m: str) -> float:
            if ci_width is None:
                return 1.0 / (n_model[m] + 1.0)
            w = ci_width.get(m)
            return float(w) ** 2 if w is not None and math.isfinite(w) else unknown

        raw = []
        for a, b in self._pairs:
            diff = ratings.get(b, 1000.0) - ratings.get(a, 1000.0)
            p = 1.0 / (1.0 + 10.0 ** (diff / 400.0))
            raw.append(p * (1.0 - p) * (uncertainty(a) + uncertainty(b)))
        total = sum(raw)
        k = len(self._pairs)
        mixed = [(1 - floor) * r / total + floor / k for r in raw] if total > 0 else [1.0] * k
        digest = hashlib.sha256(repr(mixed).encode()).hexdigest()[:8]
        self._set_weights(mixed, f"2-{digest}")


def make_policy(
    name: str, models: Sequence[str], weights: Mapping[str, float] | None = None
) -> SamplingPolicy:
    """Build a sampling policy by name.

    Parameters
    ----------
    name
        ``uniform``, ``weighted`` (roster weights) or ``active`` (uniform until the first
        :meth:`SamplingPolicy.update`).
    models
        Candidate model names.
    weights
        Roster sampling weights per model (used by ``weighted`` only; missing names weigh 1).

    Returns
    -------
    SamplingPolicy

    Raises
    ------
    ValueError
        For an unknown policy name or unusable models/weights.
    """
    if name == "uniform":
        return SamplingPolicy(models, name="uniform")
    if name == "weighted":
        w = {m: float((weights or {}).get(m, 1.0)) for m in models}
        bad = [m for m, v in w.items() if not v > 0]
        if bad:
            raise ValueError(f"sampling weight must be > 0 for {', '.join(bad)}")
        pairs = {(a, b): w[a] * w[b] for i, a in enumerate(models) for b in list(models)[i + 1 :]}
        return SamplingPolicy(models, pairs, name="weighted")
    if name == "active":
        return SamplingPolicy(models, name="active", version="2-init")
    raise ValueError(f"unknown sampling policy {name!r} (choose from {', '.join(POLICIES)})")
