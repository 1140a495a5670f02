"""Several processes writing at once, and a writer killed right after a commit.

Processes are forked (the parent has already imported everything, so eight workers start in
milliseconds on a 2-core machine); each opens its own engine from the URL, and the parent
disposes its pool before forking so no connection is shared.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from arena import store
from arena.config import Settings

from . import workers
from .helpers import MODELS, USER, count, seed_ready_battles

CTX = mp.get_context("fork")
WRITERS = 8
VOTES_EACH = 200


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _run_writers(engine: Engine, target: Any, chunks: list[Any]) -> list[tuple[int, list[str]]]:
    """One forked process per chunk, all started together; their (done, errors) reports."""
    engine.dispose()
    start = CTX.Barrier(len(chunks))
    results = CTX.Queue()
    procs = [
        CTX.Process(target=target, args=(_url(engine), chunk, USER, start, results))
        for chunk in chunks
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return outcomes


@pytest.mark.slow
def test_eight_writers_two_hundred_votes_each(populated: Engine) -> None:
    ids = [[f"w{w}-{i}" for i in range(VOTES_EACH)] for w in range(WRITERS)]
    seed_ready_battles(populated, [bid for chunk in ids for bid in chunk])
    outcomes = _run_writers(populated, workers.vote_many, ids)
    errors = [e for _, errs in outcomes for e in errs]
    assert errors == []  # in particular no "database is locked"
    assert sum(ok for ok, _ in outcomes) == WRITERS * VOTES_EACH
    assert count(populated, "vote") == WRITERS * VOTES_EACH
    assert len(store.battles_for_ratings(engine=populated)) == WRITERS * VOTES_EACH


@pytest.mark.slow
def test_concurrent_battle_starts_on_overlapping_pairs_never_deadlock(populated: Engine) -> None:
    # Starting a battle stamps both models as served.  Two starts that locked the same two
    # model rows in opposite orders deadlocked on PostgreSQL (seen under the load test).
    names = list(MODELS)[:3]
    pairs = [(a, b) for a in names for b in names if a != b]  # both orders of every pair
    per_writer = 120
    chunks = [[pairs[(w + i) % len(pairs)] for i in range(per_writer)] for w in range(WRITERS)]
    outcomes = _run_writers(populated, workers.create_many, chunks)
    errors = [e for _, errs in outcomes for e in errs]
    assert errors == [], errors[:3]
    assert count(populated, "battle") == WRITERS * per_writer


def test_eight_concurrent_votes_on_one_battle_make_one_vote(populated: Engine) -> None:
    seed_ready_battles(populated, ["contested"])
    populated.dispose()
    start = CTX.Barrier(WRITERS)
    results = CTX.Queue()
    procs = [
        CTX.Process(
            target=workers.vote_once, args=(_url(populated), "contested", USER, start, results)
        )
        for _ in range(WRITERS)
    ]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert outcomes == ["AlreadyVoted"] * (WRITERS - 1) + ["voted"]
    assert count(populated, "vote") == 1


def test_acknowledged_votes_survive_sigkill(populated: Engine) -> None:
    ids = [f"k-{i}" for i in range(200)]
    seed_ready_battles(populated, ids)
    url = _url(populated)
    populated.dispose()
    receiver, sender = CTX.Pipe(duplex=False)
    proc = CTX.Process(target=workers.vote_and_ack, args=(url, ids, USER, sender))
    proc.start()
    acked = [receiver.recv() for _ in range(30)]
    # Killed mid-stream: the writer is already inside its next vote.
    os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
    proc.join(timeout=60)
    assert proc.exitcode == -signal.SIGKILL

    reopened = store.open_engine(url)
    try:
        with store.new_session(reopened) as s:
            for bid in acked:
                assert store.get_vote(session=s, battle_id=bid).winner == "tie"
                assert store.get_battle(session=s, battle_id=bid).status == "voted"
        # At most the one in flight is also there, and then it is whole (vote + status).
        n = count(reopened, "vote")
        assert len(acked) <= n <= len(acked) + 1
        with reopened.connect() as conn:
            voted = conn.exec_driver_sql("SELECT count(*) FROM battle WHERE status = 'voted'")
            assert voted.scalar() == n
            if reopened.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    finally:
        reopened.dispose()


def test_concurrent_first_runs_agree_on_one_secret(tmp_path: Path) -> None:
    results = CTX.Queue()

    def first_run() -> None:
        results.put(store.resolve_secret(Settings.from_env({"ARENA_DATA_DIR": str(tmp_path)})))

    procs = [CTX.Process(target=first_run) for _ in range(WRITERS)]
    for p in procs:
        p.start()
    secrets = {results.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(timeout=60)
    assert secrets == {(tmp_path / "secret").read_text().strip()}
