"""Every write operation of the store, and every refusal, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from arena import store

from .helpers import OTHER_USER, USER, count, make_battle, vote_on_new_battle

UTC = dt.UTC


def _events(engine: Engine, name: str) -> list[tuple[str, str | None]]:
    with store.new_session(engine) as s:
        model = s.exec(select(store.Model).where(store.Model.name == name)).scalar_one()
        rows = s.exec(
            select(store.ModelEvent.kind, store.ModelEvent.detail)
            .where(store.ModelEvent.model_id == model.id)
            .order_by(store.ModelEvent.id)
        ).all()
        s.commit()
    return [tuple(r) for r in rows]


# ------------------------------------------------------------------------------------ models


def test_upsert_model_registers_updates_and_logs_events(engine: Engine) -> None:
    with store.new_session(engine) as s:
        m = store.upsert_model(session=s, name="alpha", backend="openai", config_hash="h1")
        assert (m.name, m.backend, m.config_hash, m.deprecated_at) == (
            "alpha",
            "openai",
            "h1",
            None,
        )
        assert m.created_at.tzinfo is not None and m.created_at.utcoffset() == dt.timedelta(0)
        # Unchanged roster entry: nothing is written.
        store.upsert_model(session=s, name="alpha", backend="openai", config_hash="h1")
        m2 = store.upsert_model(
            session=s,
            name="alpha",
            backend="openai",
            config_hash="h2",
            params_b=0.135,
            release_date=dt.date(2024, 11, 1),
            open_weights=True,
        )
    assert m2.id == m.id and m2.config_hash == "h2" and m2.params_b == 0.135
    assert m2.release_date == dt.date(2024, 11, 1) and m2.open_weights is True
    assert _events(engine, "alpha") == [
        ("registered", None),
        ("updated", "changed: config_hash, open_weights, params_b, release_date"),
    ]
    assert count(engine, "model") == 1


def test_upsert_model_refuses_empty_names(engine: Engine) -> None:
    with store.new_session(engine) as s, pytest.raises(store.InvalidValue):
        store.upsert_model(session=s, name="", backend="openai")
    assert count(engine, "model") == 0


def test_deprecate_model_appends_events_and_keeps_everything(populated: Engine) -> None:
    bid = vote_on_new_battle(populated)
    first = dt.datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    later = dt.datetime(2030, 2, 1, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    with store.new_session(populated) as s:
        ev = store.deprecate_model(session=s, name="alpha", reason="replaced", at=first)
        assert (ev.kind, ev.detail, ev.at) == ("deprecated", "replaced", first)
        store.deprecate_model(session=s, name="alpha", at=later)
        with pytest.raises(store.UnknownModel):
            store.deprecate_model(session=s, name="nobody")
        with pytest.raises(store.InvalidValue, match="timezone-aware"):
            store.deprecate_model(session=s, name="alpha", at=dt.datetime(2030, 1, 1))
        model = s.exec(select(store.Model).where(store.Model.name == "alpha")).scalar_one()
        s.commit()
    assert model.deprecated_at == later and model.deprecated_at.tzinfo is not None
    assert [k for k, _ in _events(populated, "alpha")] == ["registered", "deprecated", "deprecated"]
    # Deprecation deletes nothing: the vote and the battle are still there and still counted.
    with store.new_session(populated) as s:
        assert store.get_vote(session=s, battle_id=bid).exclusion is None
    assert len(store.battles_for_ratings(engine=populated)) == 1


# ----------------------------------------------------------------------------------- battles


def test_create_battle_records_the_draw(populated: Engine) -> None:
    before = store.utcnow()
    with store.new_session(populated) as s:
        b = store.create_battle(
            session=s,
            mode="anony",
            model_a="alpha",
            model_b="beta",
            user_key=USER,
            pair_probability=0.125,
            policy_name="uniform-pairs",
            policy_version="2024-11-01",
            language="English",
        )
        got = store.get_battle(session=s, battle_id=b.id)
        names = store.battle_model_names(session=s, battle_id=b.id)
        models = {m.name: m for m in s.exec(select(store.Model)).scalars()}
        s.commit()
    assert got.status == "streaming" and got.error_reason is None
    assert (got.pair_probability, got.policy_name, got.policy_version) == (
        0.125,
        "uniform-pairs",
        "2024-11-01",
    )
    assert got.user_key == USER and got.language == "English" and got.mode == "anony"
    assert names == ("alpha", "beta")
    assert got.created_at.tzinfo is not None and got.created_at >= before
    assert got.created_at == b.created_at  # microseconds survive the database
    for name in ("alpha", "beta"):
        assert models[name].first_served_at == got.created_at
        assert models[name].last_served_at == got.created_at
    assert models["gamma"].first_served_at is None


def test_battle_public_shape_names_no_model(populated: Engine) -> None:
    bid = make_battle(populated)
    with store.new_session(populated) as s:
        battle = store.get_battle(session=s, battle_id=bid)
    public = store.BattlePublic.model_validate(battle).model_dump()
    assert public["id"] == bid
    assert not {"model_a", "model_b", "model_a_id", "model_b_id", "user_key"} & set(public)
    assert "alpha" not in repr(public) and "beta" not in repr(public)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mode": "blind"}, store.InvalidValue, "mode"),
        ({"model_b": "alpha"}, store.InvalidValue, "itself"),
        ({"pair_probability": 0.0}, store.InvalidValue, "pair_probability"),
        ({"pair_probability": 1.5}, store.InvalidValue, "pair_probability"),
        ({"pair_probability": math.nan}, store.InvalidValue, "pair_probability"),
        ({"user_key": ""}, store.InvalidValue, "user_key"),
        ({"model_b": "omega"}, store.UnknownModel, "omega"),
    ],
)
def test_create_battle_refusals(
    populated: Engine, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    args: dict[str, object] = {
        "mode": "anony",
        "model_a": "alpha",
        "model_b": "beta",
        "user_key": USER,
        "pair_probability": 0.5,
        "policy_name": "uniform",
        "policy_version": "1",
    }
    args.update(kwargs)
    with store.new_session(populated) as s, pytest.raises(error, match=match):
        store.create_battle(session=s, **args)
    assert count(populated, "battle") == 0


def test_messages_in_order_and_refusals(populated: Engine) -> None:
    bid = make_battle(populated, prompt=None, status="streaming")
    with store.new_session(populated) as s:
        # Written out of order; read back by turn, user first.
        store.append_message(session=s, battle_id=bid, turn=1, side="b", content="B1",
                             token_count=3, latency_s=0.25, finish_reason="stop")  # fmt: skip
        store.append_message(session=s, battle_id=bid, turn=1, side="user", content="Q1")
        store.append_message(session=s, battle_id=bid, turn=1, side="a", content="A1")
        store.append_message(session=s, battle_id=bid, turn=2, side="user", content="Q2")
        with pytest.raises(store.InvalidValue, match="already has a message"):
            store.append_message(session=s, battle_id=bid, turn=1, side="a", content="again")
        with pytest.raises(store.InvalidValue, match="side"):
            store.append_message(session=s, battle_id=bid, turn=1, side="c", content="x")
        with pytest.raises(store.InvalidValue, match="turn"):
            store.append_message(session=s, battle_id=bid, turn=0, side="a", content="x")
        with pytest.raises(store.InvalidValue, match="NUL"):
            store.append_message(session=s, battle_id=bid, turn=2, side="a", content="a\x00b")
        with pytest.raises(store.InvalidValue, match="surrogate"):
            store.append_message(session=s, battle_id=bid, turn=2, side="a", content="\ud800")
        with pytest.raises(store.BattleNotFound):
            store.append_message(session=s, battle_id="nope", turn=1, side="a", content="x")
        msgs = store.list_messages(session=s, battle_id=bid)
    assert [(m.turn, m.side, m.content) for m in msgs] == [
        (1, "user", "Q1"),
        (1, "a", "A1"),
        (1, "b", "B1"),
        (2, "user", "Q2"),
    ]
    b1 = msgs[2]
    assert (b1.token_count, b1.latency_s, b1.finish_reason) == (3, 0.25, "stop")
    assert all(m.created_at.tzinfo is not None for m in msgs)


def test_status_lifecycle(populated: Engine) -> None:
    bid = make_battle(populated, status="streaming")
    with store.new_session(populated) as s:
        assert store.set_status(session=s, battle_id=bid, status="ready").status == "ready"
        # Next turn of a multi-turn battle.
        assert store.set_status(session=s, battle_id=bid, status="streaming").status == "streaming"
        with pytest.raises(store.InvalidValue, match="error_reason"):
            store.set_status(session=s, battle_id=bid, status="error")
        with pytest.raises(store.InvalidValue, match="error_reason"):
            store.set_status(session=s, battle_id=bid, status="ready", error_reason="x")
        with pytest.raises(store.InvalidTransition):
            store.set_status(session=s, battle_id=bid, status="voted")
        with pytest.raises(store.InvalidValue, match="unknown status"):
            store.set_status(session=s, battle_id=bid, status="done")
        with pytest.raises(store.BattleNotFound):
            store.set_status(session=s, battle_id="nope", status="ready")
        b = store.set_status(session=s, battle_id=bid, status="error", error_reason="timeout: b")
        assert (b.status, b.error_reason) == ("error", "timeout: b")
        # error is final.
        for status in ("ready", "streaming", "abandoned"):
            with pytest.raises(store.InvalidTransition, match="cannot go from 'error'"):
                store.set_status(session=s, battle_id=bid, status=status)
        assert store.get_battle(session=s, battle_id=bid).status == "error"


# ------------------------------------------------------------------------------------- votes


def test_record_vote(populated: Engine) -> None:
    bid = make_battle(populated, prompt="  Why is the sky blue?\n")
    when = dt.datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    with store.new_session(populated) as s:
        store.append_message(session=s, battle_id=bid, turn=2, side="user", content="More?")
        store.set_status(session=s, battle_id=bid, status="ready")
        v = store.record_vote(
            session=s, battle_id=bid, winner="tie (bothbad)", user_key=USER, voted_at=when
        )
        got = store.get_vote(session=s, battle_id=bid)
        battle = store.get_battle(session=s, battle_id=bid)
        # A vote freezes the conversation it judged.
        with pytest.raises(store.InvalidTransition):
            store.append_message(session=s, battle_id=bid, turn=3, side="user", content="x")
        with pytest.raises(store.InvalidTransition):
            store.set_status(session=s, battle_id=bid, status="abandoned")
    assert battle.status == "voted"
    for vote in (v, got):
        assert (vote.battle_id, vote.winner, vote.anony, vote.judge, vote.exclusion) == (
            bid,
            "tie (bothbad)",
            True,
            USER,
            None,
        )
        assert vote.turn == 2
        assert vote.question_id == store.question_id_for("Why is the sky blue?")
        assert vote.voted_at == when and vote.voted_at.utcoffset() == dt.timedelta(0)
        assert (vote.model_a_id, vote.model_b_id) == (battle.model_a_id, battle.model_b_id)


def test_named_vote_is_not_anony(populated: Engine) -> None:
    bid = vote_on_new_battle(populated, mode="named", winner="model_b")
    with store.new_session(populated) as s:
        assert store.get_vote(session=s, battle_id=bid).anony is False


@pytest.mark.parametrize(
    ("status", "reason", "error", "match"),
    [
        ("streaming", None, store.BattleNotReady, "still streaming"),
        ("error", "model b timed out", store.BattleErrored, "is error"),
        ("abandoned", None, store.BattleErrored, "is abandoned"),
    ],
)
def test_vote_refused_on_unfinished_or_errored_battle(
    populated: Engine, status: str, reason: str | None, error: type[Exception], match: str
) -> None:
    bid = make_battle(populated, status=status, error_reason=reason)
    with store.new_session(populated) as s:
        with pytest.raises(error, match=match) as info:
            store.record_vote(session=s, battle_id=bid, winner="model_a", user_key=USER)
        assert isinstance(info.value, store.VoteRefused) and info.value.battle_id == bid
        assert store.get_battle(session=s, battle_id=bid).status == status
    assert count(populated, "vote") == 0


def test_vote_refused_on_foreign_battle(populated: Engine) -> None:
    bid = make_battle(populated)
    with store.new_session(populated) as s:
        with pytest.raises(store.ForeignBattle, match="another user"):
            store.record_vote(session=s, battle_id=bid, winner="model_a", user_key=OTHER_USER)
        assert store.get_battle(session=s, battle_id=bid).status == "ready"
        # Foreign is checked first: someone else's battle reveals nothing about its state.
        store.record_vote(session=s, battle_id=bid, winner="model_a", user_key=USER)
        with pytest.raises(store.ForeignBattle):
            store.record_vote(session=s, battle_id=bid, winner="model_a", user_key=OTHER_USER)
    assert count(populated, "vote") == 1


def test_vote_refused_on_missing_battle_and_bad_input(populated: Engine) -> None:
    bid = make_battle(populated)
    with store.new_session(populated) as s:
        with pytest.raises(store.BattleNotFound):
            store.record_vote(session=s, battle_id="no-such-battle", winner="tie", user_key=USER)
        with pytest.raises(store.InvalidValue, match="winner"):
            store.record_vote(session=s, battle_id=bid, winner="both", user_key=USER)
        with pytest.raises(store.InvalidValue, match="timezone-aware"):
            store.record_vote(session=s, battle_id=bid, winner="tie", user_key=USER,
                              voted_at=dt.datetime(2030, 1, 1))  # fmt: skip
    assert count(populated, "vote") == 0


def test_double_vote_refused(populated: Engine) -> None:
    bid = vote_on_new_battle(populated, winner="model_a")
    with store.new_session(populated) as s:
        with pytest.raises(store.AlreadyVoted, match="already has a vote"):
            store.record_vote(session=s, battle_id=bid, winner="model_b", user_key=USER)
        assert store.get_vote(session=s, battle_id=bid).winner == "model_a"
    assert count(populated, "vote") == 1


def test_one_vote_per_battle_is_enforced_by_the_database(populated: Engine) -> None:
    """Even a writer that bypasses the store cannot add a second vote."""
    bid = vote_on_new_battle(populated)
    with store.new_session(populated) as s:
        v = store.get_vote(session=s, battle_id=bid)
    row = v.model_dump(exclude={"id"})
    with pytest.raises(IntegrityError), populated.begin() as conn:
        conn.execute(insert(SQLModel.metadata.tables["vote"]), [row])
    assert count(populated, "vote") == 1


def test_mark_exclusion(populated: Engine) -> None:
    bid = vote_on_new_battle(populated)
    unvoted = make_battle(populated)
    with store.new_session(populated) as s:
        assert store.mark_exclusion(session=s, battle_id=bid, reason="rate_limited").exclusion == (
            "rate_limited"
        )
        assert store.get_vote(session=s, battle_id=bid).exclusion == "rate_limited"
        with pytest.raises(store.InvalidValue):
            store.mark_exclusion(session=s, battle_id=bid, reason="  ")
        with pytest.raises(store.VoteNotFound):
            store.mark_exclusion(session=s, battle_id=unvoted, reason="x")
        with pytest.raises(store.VoteNotFound):
            store.get_vote(session=s, battle_id=unvoted)
        with pytest.raises(store.BattleNotFound):
            store.get_battle(session=s, battle_id="nope")
        assert store.mark_exclusion(session=s, battle_id=bid, reason=None).exclusion is None
    assert count(populated, "vote") == 1


def test_returned_rows_are_detached_snapshots(populated: Engine) -> None:
    """Reading a returned row runs no SQL (on SQLite a lazy refresh would take the write
    lock behind the caller's back), and the session holds no transaction between calls."""
    bid = make_battle(populated)
    with store.new_session(populated) as s:
        v = store.record_vote(session=s, battle_id=bid, winner="tie", user_key=USER)
        assert not s.in_transaction()
        b = store.get_battle(session=s, battle_id=bid)
        assert not s.in_transaction()
    assert (v.winner, b.status, b.id) == ("tie", "voted", bid)
