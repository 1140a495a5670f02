"""Bodies of the processes the concurrency and durability tests start (fork context).

Each worker opens its own engine from the URL: connections are never carried across a fork.
Results go back through a queue or a pipe as plain data; a worker never raises.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

from arena import store


def _each(
    url: str, items: list[Any], start: Barrier, results: Queue[Any], act: Callable[..., Any]
) -> None:
    """After the barrier, ``act(session, i, item)`` for every item in one session; report
    (items done, errors as text).  A worker never raises."""
    ok, errors = 0, []
    try:
        engine = store.open_engine(url)
        start.wait(timeout=120)
        with store.new_session(engine) as s:
            for i, item in enumerate(items):
                try:
                    act(s, i, item)
                    ok += 1
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        engine.dispose()
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    results.put((ok, errors))


def vote_many(url: str, ids: list[str], user_key: str, start: Barrier, results: Queue[Any]) -> None:
    """Vote on every battle in ``ids``; report (votes recorded, errors as text)."""

    def vote(s: Any, i: int, bid: str) -> None:
        store.record_vote(session=s, battle_id=bid, winner=store.WINNERS[i % 4], user_key=user_key)

    _each(url, ids, start, results, vote)


def vote_once(url: str, bid: str, user_key: str, start: Barrier, results: Queue[Any]) -> None:
    """Try to vote on ``bid`` at the same moment as the other workers; report the outcome."""
    try:
        engine = store.open_engine(url)
        with store.new_session(engine) as s:
            start.wait(timeout=120)
            try:
                store.record_vote(session=s, battle_id=bid, winner="model_a", user_key=user_key)
                results.put("voted")
            except store.AlreadyVoted:
                results.put("AlreadyVoted")
        engine.dispose()
    except Exception as exc:
        results.put(f"{type(exc).__name__}: {exc}")


def vote_and_ack(url: str, ids: list[str], user_key: str, acks: Connection) -> None:
    """Vote on each battle and acknowledge it the moment ``record_vote`` returns; then hang
    until killed (the test kills this process with SIGKILL)."""
    engine = store.open_engine(url)
    with store.new_session(engine) as s:
        for bid in ids:
            store.record_vote(session=s, battle_id=bid, winner="tie", user_key=user_key)
            acks.send(bid)
    while True:
        time.sleep(60)


def create_many(
    url: str, pairs: list[tuple[str, str]], user_key: str, start: Barrier, results: Queue[Any]
) -> None:
    """Start one battle per pair, as fast as possible; report (battles created, errors)."""

    def create(s: Any, _: int, pair: tuple[str, str]) -> None:
        store.create_battle(
            session=s,
            mode="anony",
            model_a=pair[0],
            model_b=pair[1],
            user_key=user_key,
            pair_probability=1 / 3,
            policy_name="uniform",
            policy_version="1",
        )

    _each(url, pairs, start, results, create)
