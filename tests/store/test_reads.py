"""Votes into ratings arrays: ``battles_for_ratings`` and ``arena ratings --db``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.engine import Engine

from arena import store
from arena.cli import main
from ratings import BattleDataError

from .helpers import OTHER_USER, vote_on_new_battle

UTC = dt.UTC
T0 = dt.datetime(2030, 6, 1, 12, 0, 0, 250000, tzinfo=UTC)


@pytest.fixture
def voted(populated: Engine) -> Engine:
    """Four counted anonymous votes, one named vote, one excluded anonymous vote."""
    at = [T0 + dt.timedelta(minutes=i, microseconds=i) for i in range(6)]
    vote_on_new_battle(populated, "model_a", voted_at=at[0])
    vote_on_new_battle(populated, "model_b", model_a="beta", model_b="gamma", voted_at=at[1])
    vote_on_new_battle(populated, "tie", model_a="gamma", model_b="alpha", voted_at=at[2],
                       prompt="Another question", user_key=OTHER_USER)  # fmt: skip
    vote_on_new_battle(populated, "tie (bothbad)", voted_at=at[3])
    vote_on_new_battle(populated, "model_a", mode="named", voted_at=at[4])
    vote_on_new_battle(populated, "model_b", exclusion="rate_limited", voted_at=at[5])
    return populated


def test_counted_anonymous_votes_by_default(voted: Engine) -> None:
    b = store.battles_for_ratings(engine=voted)
    assert b.models == ("alpha", "beta", "gamma")
    names = np.asarray(b.models)
    assert list(zip(names[b.a], names[b.b], b.outcome.tolist(), strict=True)) == [
        ("alpha", "beta", 0),
        ("beta", "gamma", 1),
        ("gamma", "alpha", 2),
        ("alpha", "beta", 3),
    ]
    expected = [(T0 + dt.timedelta(minutes=i, microseconds=i)).timestamp() for i in range(4)]
    assert b.tstamp is not None and np.allclose(b.tstamp, expected, rtol=0, atol=1e-6)
    assert b.clusters is not None
    # Same prompt and voter -> same cluster; the third vote differs in both.
    assert b.clusters["judge"].tolist()[:3] == [0, 0, 1]
    qid = b.clusters["question_id"].tolist()
    assert qid[0] == qid[1] == qid[3] != qid[2]
    assert "alpha" not in b.source and b.source.startswith(voted.dialect.name)


@pytest.mark.parametrize("micro", [0, 1, 499_999, 999_500, 999_999])
def test_vote_times_are_exact_to_the_microsecond(populated: Engine, micro: int) -> None:
    when = dt.datetime(2030, 12, 31, 23, 59, 58, micro, tzinfo=UTC)
    vote_on_new_battle(populated, voted_at=when)
    b = store.battles_for_ratings(engine=populated)
    assert b.tstamp is not None
    assert round(float(b.tstamp[0]) * 1e6) == (when - dt.datetime(1970, 1, 1, tzinfo=UTC)) // (
        dt.timedelta(microseconds=1)
    )


def test_include_options(voted: Engine) -> None:
    assert len(store.battles_for_ratings(engine=voted, include_named=True)) == 5
    assert len(store.battles_for_ratings(engine=voted, include_excluded=True)) == 5
    both = store.battles_for_ratings(engine=voted, include_named=True, include_excluded=True)
    assert len(both) == 6
    assert store.battles_for_ratings(engine=voted, with_clusters=False).clusters == {}


def test_no_votes_is_a_clear_error(populated: Engine) -> None:
    vote_on_new_battle(populated, mode="named")
    with pytest.raises(BattleDataError, match="no battles") as info:
        store.battles_for_ratings(engine=populated)
    assert info.value.source == populated.url.render_as_string(hide_password=True)


@pytest.mark.parametrize(
    ("flags", "n"),
    [
        ([], 4),
        (["--include-named"], 5),
        (["--include-excluded"], 5),
        (["--include-named", "--include-excluded"], 6),
    ],
)
def test_cli_ratings_from_the_database(
    voted: Engine, tmp_path: Path, flags: list[str], n: int
) -> None:
    out = tmp_path / "lb.json"
    url = voted.url.render_as_string(hide_password=False)
    argv = ["ratings", "--db", url, *flags, "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["n_battles"] == n
    assert {m["model"] for m in doc["models"]} == {"alpha", "beta", "gamma"}


@pytest.mark.parametrize(
    "flags",
    [[], ["--include-named"], ["--include-excluded"], ["--include-named", "--include-excluded"]],
)
def test_cli_ratings_of_an_export_match_the_database(
    voted: Engine, tmp_path: Path, flags: list[str]
) -> None:
    url = voted.url.render_as_string(hide_password=False)
    log = tmp_path / "battles.jsonl.gz"
    assert main(["export", "battles", "--db", url, "--out", str(log)]) == 0
    docs = []
    for source in (["--db", url], [str(log)]):
        out = tmp_path / "lb.json"
        assert main(["ratings", *source, *flags, "--out", str(out), "--no-progress"]) == 0
        docs.append(json.loads(out.read_text()))
    from_db, from_file = docs
    assert from_file["n_battles"] == from_db["n_battles"]
    assert [(m["model"], m["rating"]) for m in from_file["models"]] == [
        (m["model"], m["rating"]) for m in from_db["models"]
    ]


def test_cli_ratings_default_database_from_the_environment(
    voted: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARENA_DB_URL", voted.url.render_as_string(hide_password=False))
    assert main(["ratings", "--db", "--no-progress", "--cluster-by", "judge"]) == 0
    assert "4 battles, 3 models" in capsys.readouterr().out


def test_recent_prompts_by_counts_first_turns_and_follow_ups_of_one_user(
    populated: Engine,
) -> None:
    from sqlalchemy import text

    from .helpers import USER, make_battle

    now = store.utcnow()
    assert store.recent_prompts_by(
        engine=populated, user_key=USER, since=now - dt.timedelta(minutes=1), battles_since=now
    ) == (0, None)
    first = make_battle(populated)  # one prompt
    make_battle(populated, user_key=OTHER_USER)  # someone else's
    make_battle(populated, prompt=None)  # a battle without a prompt yet
    with store.new_session(populated) as s:  # a follow-up turn
        store.append_message(session=s, battle_id=first, turn=2, side="user", content="more")
        store.append_message(session=s, battle_id=first, turn=2, side="a", content="x")
    later = store.utcnow()
    window = dt.timedelta(minutes=1)
    n, earliest = store.recent_prompts_by(
        engine=populated, user_key=USER, since=later - window, battles_since=later - 10 * window
    )
    assert n == 2
    assert earliest is not None and now <= earliest <= later
    # Prompts older than the window do not count; nor do battles older than the bound.
    with populated.begin() as conn:
        conn.execute(
            text("UPDATE message SET created_at = :t WHERE battle_id = :b AND turn = 1"),
            {"t": later - 2 * window, "b": first},
        )
    assert (
        store.recent_prompts_by(
            engine=populated, user_key=USER, since=later - window, battles_since=later - 10 * window
        )[0]
        == 1
    )
    assert (
        store.recent_prompts_by(
            engine=populated, user_key=USER, since=later - window, battles_since=later
        )[0]
        == 0
    )
