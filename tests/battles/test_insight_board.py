"""The app's Insights from its own votes and roster metadata (real database, real votes)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import numpy as np

from arena.battles import Arena
from arena.insight_board import InsightBoard
from arena.roster import parse_roster
from arena.standings import COLUMNS, Standings
from ratings.data import Battles
from tests.ratings.synthetic_arena import make_arena


def test_insights_from_the_app_votes_say_what_they_cannot_estimate(arena: Arena) -> None:
    board = InsightBoard(engine=arena.engine, roster=arena.roster, refresh_s=0)
    assert "No counted votes yet" in board.get().markdown

    async def battle(winner: str) -> None:
        updates = [u async for u in arena.turn(owner="o", user_key="k", prompt="Hi")]
        await arena.vote(owner="o", user_key="k", battle_id=updates[-1].battle_id, winner=winner)

    asyncio.run(battle("a"))
    asyncio.run(battle("tie"))
    snap = board.get()
    assert snap.n_battles == 2
    # The test roster has no release dates or sizes: every figure says so plainly.
    assert "lag not estimable" in snap.markdown
    assert snap.figures["capability_density"] is not None
    assert snap.figures["history"] is not None  # the store's votes carry timestamps


def _synthetic_roster(meta: dict, tmp_path: Path):
    models = []
    for name, m in meta.items():
        entry = {"name": name, "backend": "openai", "model": name, "base_url": "http://h/v1",
                 "open_weights": m.open_weights, "release_date": m.release_date}  # fmt: skip
        if m.params_b is not None:
            entry["params_b"] = m.params_b
        if not m.open_weights:
            entry["price_in_per_mtok"], entry["price_out_per_mtok"] = 2.0, 8.0
        models.append(entry)
    return parse_roster({"models": models}, path=tmp_path / "roster.toml")


def test_insights_from_roster_metadata(tmp_path: Path) -> None:
    syn = make_arena(seed=515, n_prop=5, spacing=3.5, lag=5.0, slope=20.0, n_battles=10_000)
    roster = _synthetic_roster(syn.meta, tmp_path)
    rng = np.random.default_rng(515)
    start = dt.datetime(2024, 3, 1, tzinfo=dt.UTC).timestamp()
    ts = np.sort(start + rng.uniform(0, 200 * 86400, len(syn.battles)))
    b = syn.battles
    battles = Battles.from_codes(b.models, b.a, b.b, b.outcome, tstamp=ts)
    board = InsightBoard(engine=None, roster=roster, refresh_s=60)  # type: ignore[arg-type]
    snap = board.compute_from(battles)
    assert "Median lag of open" in snap.markdown  # the text is Markdown-escaped
    lag = snap.insights["open_lag_months"]
    assert lag["lower"] <= float(np.median(syn.true_lags)) <= lag["upper"]
    assert {r["model"] for r in snap.insights["pareto_params"]} == syn.true_front
    assert len(snap.insights["pareto_price"]) >= 1
    assert all(f is not None for f in snap.figures.values())


def test_leaderboard_shows_roster_metadata_columns(arena: Arena, tmp_path: Path) -> None:
    roster = parse_roster(
        {"models": [
            {"name": "alpha-greedy", "backend": "openai", "model": "a", "base_url": "http://h/v1",
             "params_b": 46.7, "active_params_b": 12.9, "release_date": "2023-12-11",
             "price_in_per_mtok": 0.7, "price_out_per_mtok": 0.7},
        ]},
        path=tmp_path / "r.toml",
    )  # fmt: skip

    async def battle() -> None:
        updates = [u async for u in arena.turn(owner="o", user_key="k", prompt="Hi")]
        await arena.vote(owner="o", user_key="k", battle_id=updates[-1].battle_id, winner="a")

    asyncio.run(battle())
    snap = Standings(engine=arena.engine, roster=roster, refresh_s=0, min_battles=1).get(wait=True)
    row = next(r for r in snap.rows if str(r[2]).startswith("alpha-greedy"))
    cells = dict(zip(COLUMNS, row, strict=True))
    assert cells["Params (B)"] == "46.7 (12.9 active)"
    assert cells["Price in / out per Mtok"] == "0.7 / 0.7"
    assert cells["Released"] == "2023-12-11"
    other = next(r for r in snap.rows if not str(r[2]).startswith("alpha-greedy"))
    assert dict(zip(COLUMNS, other, strict=True))["Params (B)"] == ""


def test_model_names_from_a_log_render_as_text(tmp_path: Path) -> None:
    hostile = '<img src="http://elsewhere.invalid/x.png">'
    names = [hostile, "[link](http://elsewhere.invalid)", "plain"]
    rng = np.random.default_rng(4)
    a = rng.integers(0, 3, 600)
    b = (a + rng.integers(1, 3, 600)) % 3
    battles = Battles.from_codes(names, a, b, rng.integers(0, 3, 600))
    roster = parse_roster(
        {"models": [{"name": "plain", "backend": "openai", "model": "p",
                     "base_url": "http://h/v1", "params_b": 7.0}]},
        path=tmp_path / "r.toml",
    )  # fmt: skip
    snap = InsightBoard(engine=None, roster=roster, refresh_s=60).compute_from(battles)  # type: ignore[arg-type]
    assert "plain" in snap.markdown
    assert "<img" not in snap.markdown and "](http" not in snap.markdown
