"""The app's cached leaderboard, computed from real votes in a real database."""

from __future__ import annotations

import asyncio

from arena.battles import Arena
from arena.standings import COLUMNS, Standings


def test_leaderboard_counts_anonymous_votes_only_and_marks_preliminary(arena: Arena) -> None:
    board = Standings(engine=arena.engine, roster=arena.roster, refresh_s=3600, min_battles=5)
    empty = board.get()
    assert empty.rows == [] and "No counted votes yet" in empty.note

    async def battle(mode: str, winner: str) -> None:
        kw = {"models": ("alpha-greedy", "beta-concise")} if mode == "named" else {}
        updates = [
            u async for u in arena.turn(owner="o", user_key="k", prompt="Hi", mode=mode, **kw)
        ]
        await arena.vote(owner="o", user_key="k", battle_id=updates[-1].battle_id, winner=winner)

    asyncio.run(battle("anony", "a"))
    asyncio.run(battle("anony", "tie"))
    asyncio.run(battle("named", "a"))  # not counted: the voter knew the models

    assert board.get().n_battles == 0  # cached: not stale for an hour
    board.invalidate()
    snap = board.get(wait=True)
    assert snap.n_battles == 2
    assert len(snap.rows) == 2 and all(len(r) == len(COLUMNS) for r in snap.rows)
    assert {r[2] for r in snap.rows} == {"alpha-greedy *", "beta-concise *"}
    assert [r[5] for r in snap.rows] == [2, 2]
    for row in snap.rows:  # rank range reads best-worst
        best, _, worst = str(row[1]).partition("-")
        assert int(best) <= int(worst or best) and int(best) <= row[0] <= int(worst or best)
    assert "Preliminary" in snap.note and "2 counted anonymous votes" in snap.note
    assert snap.ci_figure is not None and snap.heatmap_figure is not None


def test_leaderboard_refresh_feeds_an_active_sampling_policy(arena: Arena) -> None:
    from arena.sampling import make_policy

    arena.policy = make_policy("active", ["alpha-greedy", "beta-concise"])
    board = Standings(
        engine=arena.engine,
        roster=arena.roster,
        refresh_s=0,
        min_battles=1,
        on_refresh=arena.refresh_policy,
    )

    async def battle() -> str:
        updates = [u async for u in arena.turn(owner="o", user_key="k", prompt="Hi")]
        await arena.vote(owner="o", user_key="k", battle_id=updates[-1].battle_id, winner="a")
        return updates[-1].battle_id

    first = asyncio.run(battle())
    assert arena.policy.version == "2-init"
    board.get(wait=True)
    assert arena.policy.version.startswith("2-") and arena.policy.version != "2-init"
    second = asyncio.run(battle())
    stored = (
        arena.engine.connect()
        .exec_driver_sql("SELECT id, policy_name, policy_version FROM battle ORDER BY created_at")
        .all()
    )
    assert [(r[0], r[1]) for r in stored] == [(first, "active"), (second, "active")]
    assert stored[0][2] == "2-init" and stored[1][2] == arena.policy.version


def test_deprecation_is_an_event_and_the_leaderboard_marks_it(arena: Arena) -> None:
    from sqlalchemy import text

    from arena.cli import main

    async def battle() -> None:
        updates = [u async for u in arena.turn(owner="o", user_key="k", prompt="Hi")]
        await arena.vote(owner="o", user_key="k", battle_id=updates[-1].battle_id, winner="a")

    asyncio.run(battle())
    url = arena.settings.resolved_db_url
    assert main(["models", "deprecate", "alpha-greedy", "--db", url, "--reason", "retired"]) == 0
    assert main(["models", "deprecate", "no-such-model", "--db", url]) == 2
    board = Standings(engine=arena.engine, roster=arena.roster, refresh_s=0, min_battles=1)
    snap = board.get(wait=True)
    names = {r[2] for r in snap.rows}
    assert names == {"alpha-greedy (deprecated)", "beta-concise"}
    assert "Deprecated models (alpha-greedy)" in snap.note and snap.n_battles == 1
    assert [r[2] for r in snap.shown_rows(include_deprecated=False)] == ["beta-concise"]
    with arena.engine.connect() as conn:
        kinds = (
            conn.execute(
                text(
                    "SELECT e.kind FROM model_event e JOIN model m ON m.id = e.model_id "
                    "WHERE m.name = 'alpha-greedy' ORDER BY e.id"
                )
            )
            .scalars()
            .all()
        )
    assert kinds[-1] == "deprecated"
