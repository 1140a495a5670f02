"""What an operator watches: Prometheus metrics, and the model-health view behind /readyz.

Each :class:`~arena.battles.Arena` owns one :class:`ArenaMetrics` with its own registry (no
module-level globals, so tests and several arenas in one process do not mix counts).  The
HTTP side (``/metrics``, ``/healthz``, ``/readyz``) is :mod:`arena.ui.ops`.

Per-model counters could tell a voter which models a battle they just started is using (poll
``/metrics`` before and after), so ``/metrics`` is not public: see :mod:`arena.ui.ops`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from arena.backends import BackendError, GenerationStats

__all__ = ["ArenaMetrics", "ModelHealth"]

# A model whose last attempt failed (and none succeeded since) within this window is unhealthy.
_UNHEALTHY_FOR_S = 120.0
# Failures that say nothing about the model's health (the arena refused or the voter stopped).
_NOT_THE_MODELS_FAULT = ("busy", "cancelled")


@dataclass
class ModelHealth:
    """Passive health of one model, from the outcomes of real generations."""

    last_success: float = 0.0
    last_failure: float = 0.0
    last_error: str = ""

    def healthy(self, now: float | None = None) -> bool:
        """No failure more recent than the last success within the last two minutes."""
        now = time.monotonic() if now is None else now
        return not (
            self.last_failure > self.last_success and now - self.last_failure < _UNHEALTHY_FOR_S
        )


@dataclass
class ArenaMetrics:
    """The arena's Prometheus metrics (one registry per arena)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    health: dict[str, ModelHealth] = field(default_factory=dict)

    def __post_init__(self) -> None:
        r = self.registry
        self.battles_started = Counter(
            "arena_battles_started",
            "Battles started, per model (both sides count).",
            ["model"],
            registry=r,
        )
        self.battles_voted = Counter(
            "arena_battles_voted",
            "Battles voted on, per model (both sides count).",
            ["model"],
            registry=r,
        )
        self.battles_errored = Counter(
            "arena_battles_errored",
            "Sides that failed, per model and failure kind.",
            ["model", "kind"],
            registry=r,
        )
        self.votes = Counter(
            "arena_votes", "Votes committed (rate() of it gives votes per minute).", registry=r
        )
        self.refusals = Counter(
            "arena_refusals", "Requests refused, per reason.", ["reason"], registry=r
        )
        self.moderation = Counter(
            "arena_moderation_decisions",
            "Moderation decisions that found something, per place, checker and action.",
            ["where", "checker", "action"],
            registry=r,
        )
        self.ttft = Histogram(
            "arena_time_to_first_token_seconds",
            "Seconds from the request to the first text, per model (slot wait included).",
            ["model"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60),
            registry=r,
        )
        self.tokens_per_s = Histogram(
            "arena_tokens_per_second",
            "Completion tokens per second of generation, per model.",
            ["model"],
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=r,
        )
        self.db_seconds = Histogram(
            "arena_db_call_seconds",
            "Seconds per database call made from the battle flow.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=r,
        )

    def started(self, model_a: str, model_b: str) -> None:
        """A battle was created."""
        for m in (model_a, model_b):
            self.battles_started.labels(m).inc()

    def voted(self, model_a: str, model_b: str) -> None:
        """A vote was committed."""
        self.votes.inc()
        for m in (model_a, model_b):
            self.battles_voted.labels(m).inc()

    def generated(self, stats: GenerationStats) -> None:
        """A side finished its answer."""
        if stats.ttft_s is not None:
            self.ttft.labels(stats.model).observe(stats.ttft_s)
        self.tokens_per_s.labels(stats.model).observe(stats.tokens_per_s)
        self.health.setdefault(stats.model, ModelHealth()).last_success = time.monotonic()

    def failed(self, model: str, error: BackendError) -> None:
        """A side failed."""
        self.battles_errored.labels(model, error.kind).inc()
        if error.kind not in _NOT_THE_MODELS_FAULT:
            h = self.health.setdefault(model, ModelHealth())
            h.last_failure, h.last_error = time.monotonic(), error.kind

    def moderated(self, where: str, checkers: list[str], action: str) -> None:
        """A moderation decision found something."""
        for checker in checkers:
            self.moderation.labels(where, checker, action).inc()

    def refused(self, reason: str) -> None:
        """A request was refused."""
        self.refusals.labels(str(reason)).inc()

    def healthy_models(self, names: list[str] | tuple[str, ...]) -> list[str]:
        """The roster models not failing right now (unknown counts as healthy)."""
        now = time.monotonic()
        return [n for n in names if self.health.get(n, ModelHealth()).healthy(now)]

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return bytes(generate_latest(self.registry))
