"""The live leaderboard (arena.live_board) against a full recomputation of the same votes.

The full recomputation (``store.battles_for_ratings`` + ``compute_leaderboard``) is the
independent implementation: after any sequence of votes, late-settling votes, exclusions and
clearing of exclusions, the folded board must give the same ratings and intervals.
"""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import pytest
from sqlalchemy.engine import Engine

from arena import live_board, store
from arena.live_board import LiveBoard
from ratings import RatingOptions, compute_leaderboard

from .helpers import make_battle, register_models, vote_on_new_battle

MODELS = ("alpha", "beta", "gamma", "delta")
WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")
RATING_TOL = 1e-6  # Elo points: the same fit from another starting point


class FakeClock:
    def __init__(self) -> None:
        self.now = store.utcnow().timestamp()

    def __call__(self) -> float:
        return self.now


def full(engine: Engine) -> dict[str, tuple[float, float, float]]:
    lb = compute_leaderboard(
        store.battles_for_ratings(engine=engine, with_clusters=False), RatingOptions()
    )
    return {r.model: (r.rating, r.lower, r.upper) for r in lb.rows}


def live(board: LiveBoard) -> dict[str, tuple[float, float, float]]:
    result = board.update()
    assert result.leaderboard is not None
    return {r.model: (r.rating, r.lower, r.upper) for r in result.leaderboard.rows}


def assert_same(a: dict[str, tuple[float, ...]], b: dict[str, tuple[float, ...]]) -> None:
    assert a.keys() == b.keys()
    for m in a:
        np.testing.assert_allclose(a[m], b[m], atol=RATING_TOL, err_msg=m)


def random_votes(engine: Engine, rng: random.Random, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        a, b = rng.sample(MODELS, 2)
        ids.append(
            vote_on_new_battle(
                engine,
                rng.choice(WINNERS),
                model_a=a,
                model_b=b,
                mode=rng.choice(("anony", "anony", "anony", "named")),
                user_key=f"u{rng.randrange(5)}",
            )
        )
    return ids


@pytest.mark.parametrize("seed", [3, 11])
def test_folded_board_equals_the_full_recomputation(engine: Engine, seed: int) -> None:
    register_models(engine, MODELS)
    rng = random.Random(seed)
    clock = FakeClock()
    board = LiveBoard(engine, clock=clock)
    assert board.update().leaderboard is None  # no votes yet
    random_votes(engine, rng, 40)
    assert_same(live(board), full(engine))
    # New votes fold in without a recount; some of them become settled.
    ids = random_votes(engine, rng, 25)
    clock.now += live_board.SETTLE_S + 1
    assert_same(live(board), full(engine))
    ids += random_votes(engine, rng, 10)
    assert_same(live(board), full(engine))
    # A fresh vote's exclusion (still unsettled) folds it out at once.
    with store.new_session(engine) as s:
        store.mark_exclusion(session=s, battle_id=ids[-1], reason="identity_leak")
    assert_same(live(board), full(engine))
    # Corrections to settled votes (audit --apply): after invalidate(), or by the periodic
    # recount.
    clock.now += live_board.SETTLE_S + 1
    live(board)
    with store.new_session(engine) as s:
        for bid in ids[:8]:
            store.mark_exclusion(session=s, battle_id=bid, reason="flagged_voter")
    board.invalidate()
    assert_same(live(board), full(engine))
    with store.new_session(engine) as s:
        for bid in ids[:4]:
            store.mark_exclusion(session=s, battle_id=bid, reason=None)
    clock.now += live_board.RECOUNT_S
    live(board)  # starts the periodic recount in the background
    board.wait_recount()
    assert_same(live(board), full(engine))
    assert board.update().n_votes == len(
        store.battles_for_ratings(engine=engine, with_clusters=False)
    )


def test_a_second_board_on_the_same_database_sees_the_same(engine: Engine) -> None:
    """Every replica folds the shared database: two boards, one database, same ratings."""
    register_models(engine, MODELS)
    rng = random.Random(5)
    one, two = LiveBoard(engine), LiveBoard(engine)
    random_votes(engine, rng, 20)
    live(one)
    random_votes(engine, rng, 20)
    assert_same(live(one), live(two))


def test_votes_stamped_before_the_settle_window_start_settled(engine: Engine) -> None:
    register_models(engine, MODELS)
    old = store.utcnow() - dt.timedelta(hours=1)
    for i in range(6):
        vote_on_new_battle(
            engine, WINNERS[i % 4], model_a=MODELS[i % 3], model_b="delta", voted_at=old
        )
    board = LiveBoard(engine)
    assert_same(live(board), full(engine))
    assert board._settled_id > 0  # the first recount settled them in SQL


def test_an_update_without_changes_reuses_the_fit_and_a_new_model_gets_its_name(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_models(engine, MODELS)
    rng = random.Random(8)
    board = LiveBoard(engine)
    random_votes(engine, rng, 30)
    fits = 0
    real_fit = LiveBoard._fit

    def counting(self: LiveBoard, *args: object) -> object:
        nonlocal fits
        fits += 1
        return real_fit(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(LiveBoard, "_fit", counting)
    first = board.update()
    again = board.update()
    assert fits == 1  # nothing changed: no second fit
    assert again.leaderboard is first.leaderboard
    assert again.last_vote_id == first.last_vote_id
    # A vote for a model registered after the board read the names: fitted, and named.
    register_models(engine, ("epsilon",))
    vote_on_new_battle(engine, "model_a", model_a="epsilon", model_b="alpha")
    vote_on_new_battle(engine, "model_b", model_a="epsilon", model_b="beta")
    result = board.update()
    assert fits == 2
    assert result.leaderboard is not None
    assert "epsilon" in {r.model for r in result.leaderboard.rows}
    assert result.last_vote_id > first.last_vote_id
    assert_same(live(board), full(engine))
    # An exclusion changes the cells: fitted again.
    bid = random_votes(engine, rng, 1)[0]
    board.update()
    with store.new_session(engine) as s:
        store.mark_exclusion(session=s, battle_id=bid, reason="identity_leak")
    board.update()
    assert fits == 4
    assert_same(live(board), full(engine))


def test_a_late_commit_below_a_folded_id_is_folded_in(engine: Engine) -> None:
    """A vote whose id was handed out before another's but committed after it (two app
    processes): a fold that already read the higher id still picks the lower one up, from
    the ids it remembers as missing, without reading the whole window again."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: ids commit in order")
    from sqlmodel import Session

    register_models(engine, MODELS)
    rng = random.Random(12)
    random_votes(engine, rng, 12)
    board = LiveBoard(engine)
    assert_same(live(board), full(engine))
    late_battle = make_battle(engine, model_a="gamma", model_b="delta")
    ids = {name: i for i, name in store.model_names_by_id(engine=engine).items()}
    with Session(engine) as late:
        vote = store.Vote(
            battle_id=late_battle,
            model_a_id=ids["gamma"],
            model_b_id=ids["delta"],
            anony=True,
            judge="late-judge",
            question_id="q-late",
            turn=1,
            winner="model_a",
        )
        late.add(vote)
        late.flush()  # the id is handed out; not committed yet
        late_id = int(vote.id or 0)
        random_votes(engine, rng, 3)  # committed, with higher ids
        first = board.update()
        assert first.last_vote_id > late_id
        assert late_id in board._gaps
        late.commit()
    rereads = board.window_rereads
    assert_same(live(board), full(engine))
    assert board.update().n_votes == len(
        store.battles_for_ratings(engine=engine, with_clusters=False)
    )
    assert board.window_rereads == rereads  # found through the gap, not a full re-read
    assert late_id not in board._gaps
