"""Fault: a model server is killed (SIGKILL) in the middle of a stream.

Two real stub servers: model X on server 1; Y and Z on server 2.  User 1 battles X vs Y,
user 2 battles Y vs Z, both streaming, when server 1 dies.  User 1's battle must end as
``error`` with a clear message and refuse votes; user 2's battle -- which shares server 2
with user 1's other side -- must finish and count.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import (
    READY_TEXT,
    RECORDED_TEXT,
    STATUS,
    App,
    assert_clean,
    battle,
    chat_text,
    start_app,
    stub_server,
    vote,
    write_roster,
)

FAILED_TEXT = "A model failed to answer, so this battle will not be counted."
SIDE_FAILURES = (
    "This model failed to answer.",
    "This model's server could not be reached.",
    "This model took too long to answer.",
)


def answer_of(outputs: list[Any], side: int) -> str:
    lines = chat_text(outputs[side]).splitlines()
    return "\n".join(lines[1:])  # the first line is the prompt


def wait_streaming(job: Any, timeout: float = 30.0) -> None:
    """Until both sides show streamed words and the stream is still going."""
    deadline = time.monotonic() + timeout
    while True:
        outs = job.outputs()
        if outs and all(answer_of(outs[-1], s).strip("… ") for s in (0, 1)):
            assert not job.done(), "the battle finished before the fault could be injected"
            return
        assert time.monotonic() < deadline, "no streamed text"
        time.sleep(0.02)


@pytest.mark.slow
def test_killed_model_server_errors_only_the_battles_it_serves(tmp_path: Path) -> None:
    # Server 1 would stream for 8 s, server 2 for 3 s.
    with (
        stub_server(tmp_path, tokens=40, delay=0.2) as server1,
        stub_server(tmp_path, tokens=15, delay=0.2) as server2,
    ):
        roster = write_roster(
            tmp_path / "roster.toml",
            [
                ("model-x", server1.base_url),
                ("model-y", server2.base_url),
                ("model-z", server2.base_url),
            ],
        )
        env = {"ARENA_READ_TIMEOUT_S": "5", "ARENA_CONNECT_TIMEOUT_S": "2"}
        with start_app(tmp_path, roster=roster, env=env) as app:
            run_fault(app, server1.kill)


def run_fault(app: App, kill_server1: Any) -> None:
    user1, user2 = app.client(), app.client()
    job1 = user1.submit("Describe the sea.", [], [], "model-x", "model-y", api_name="/named_send")
    job2 = user2.submit("Describe the sky.", [], [], "model-y", "model-z", api_name="/named_send")
    wait_streaming(job1)
    wait_streaming(job2)
    kill_server1()
    killed_at = time.monotonic()

    out1 = list(job1.result(timeout=30))
    ended_after = time.monotonic() - killed_at
    status1 = str(out1[STATUS])
    assert status1 == f"⚠️ {FAILED_TEXT} Start a new round.", status1
    assert ended_after < 8, f"the failure took {ended_after:.1f}s to surface"
    side_a = answer_of(out1, 0)
    assert any(f"**{t}**" in side_a for t in SIDE_FAILURES), side_a
    assert "**Stopped.**" in answer_of(out1, 1)  # the healthy side is stopped too
    for text in (status1, side_a):
        assert "127.0.0.1" not in text and "http" not in text  # no backend detail
        assert_clean(text, app)
    # Not votable, whatever button is pressed.
    for choice in ("a", "b", "tie", "bothbad"):
        refused = vote(user1, choice, named=True)
        assert refused.startswith("⚠️") and RECORDED_TEXT not in refused, refused

    out2 = list(job2.result(timeout=30))
    assert READY_TEXT in str(out2[STATUS]), out2[STATUS]
    assert all(t not in answer_of(out2, s) for s in (0, 1) for t in SIDE_FAILURES)
    reveal = vote(user2, "a", named=True)
    assert reveal.startswith(f"{RECORDED_TEXT} **Model A: model-y** · **Model B: model-z**")

    rows = app.rows(
        "SELECT ma.name, mb.name, b.status, b.error_reason, v.winner FROM battle b "
        "JOIN model ma ON ma.id = b.model_a_id JOIN model mb ON mb.id = b.model_b_id "
        "LEFT JOIN vote v ON v.battle_id = b.id ORDER BY b.created_at"
    )
    by_pair = {(r[0], r[1]): r[2:] for r in rows}
    assert len(rows) == 2, rows
    status, reason, winner = by_pair[("model-x", "model-y")]
    assert status == "error" and winner is None, rows
    assert reason and "side a" in reason and "side b" not in reason, reason
    assert by_pair[("model-y", "model-z")] == ("voted", None, "model_a"), rows

    # User 1 can start a new round (on the surviving server) and it counts.
    again = battle(user1, "Describe the land.", models=("model-z", "model-y"))
    assert READY_TEXT in str(again[STATUS]), again[STATUS]
    assert vote(user1, "b", named=True).startswith(RECORDED_TEXT)
    assert app.counts() == (3, 2)
