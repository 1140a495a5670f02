"""What operators watch: the arena's Prometheus counters and readiness (scripted models,
real SQLite)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from arena.backends import BackendUnreachable, GenerationStats
from arena.backends.scripted import Script
from arena.battles import BattleRefused
from arena.metrics import ArenaMetrics
from arena.ui.ops import ready
from tests.battles.scripted import scripted_arena


def samples(metrics: ArenaMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_battles_votes_refusals_and_latencies_are_counted(tmp_path: Path) -> None:
    arena = scripted_arena(tmp_path, {"m1": Script(("a", "b")), "m2": Script(("c",))})

    async def main() -> None:
        updates = [u async for u in arena.turn(owner="s", user_key="k", prompt="hi")]
        await arena.vote(owner="s", user_key="k", battle_id=updates[-1].battle_id, winner="a")
        with pytest.raises(BattleRefused):
            await arena.vote(owner="s", user_key="k", battle_id=updates[-1].battle_id, winner="a")
        with pytest.raises(BattleRefused):
            async for _ in arena.turn(owner="s", user_key="k", prompt="   "):
                pass

    asyncio.run(main())
    got = samples(arena.metrics)
    for m in ("m1", "m2"):
        assert got[("arena_battles_started_total", (("model", m),))] == 1
        assert got[("arena_battles_voted_total", (("model", m),))] == 1
        assert got[("arena_time_to_first_token_seconds_count", (("model", m),))] == 1
        assert got[("arena_tokens_per_second_count", (("model", m),))] == 1
    assert got[("arena_votes_total", ())] == 1
    assert got[("arena_refusals_total", (("reason", "already_voted"),))] == 1
    assert got[("arena_refusals_total", (("reason", "empty_prompt"),))] == 1
    assert got[("arena_db_call_seconds_count", ())] >= 5  # create, messages, statuses, vote


def test_readiness_needs_the_database_and_two_healthy_models(tmp_path: Path) -> None:
    arena = scripted_arena(tmp_path, {"m1": Script(), "m2": Script(), "m3": Script()})
    names = arena.roster.names
    metrics = arena.metrics
    assert asyncio.run(ready(arena.engine, metrics, names))[0]
    # Two models failing (unreachable) with no success since: one healthy model is too few.
    for m in ("m1", "m2"):
        metrics.failed(m, BackendUnreachable(m, "refused"))
    ok, reason = asyncio.run(ready(arena.engine, metrics, names))
    assert not ok and "1 healthy model" in reason
    # A success heals a model; "busy" says nothing about a model's health.
    metrics.generated(GenerationStats("m1", 3, None, 0.5, 0.1, 0.0, "stop"))
    from arena.backends import BackendBusy

    metrics.failed("m3", BackendBusy("m3", "queue full", retry_after_s=5))
    assert asyncio.run(ready(arena.engine, metrics, names))[0]
    # No database: not ready, whatever the models do.
    gone = create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    ok, reason = asyncio.run(ready(gone, metrics, names))
    assert not ok and "database" in reason
