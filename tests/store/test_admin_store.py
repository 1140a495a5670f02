"""The admin page's store operations on SQLite and PostgreSQL: the live roster, the audit
log, browsing and audit findings."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from arena import store
from arena.store import browse, live_roster
from arena.store.admin_log import (
    LOGIN_FAILED,
    failed_logins_since,
    list_admin_actions,
    record_admin_action,
)

from .helpers import OTHER_USER, USER, make_battle, register_models, vote_on_new_battle


def test_roster_changes_are_events_and_state(engine: Engine) -> None:
    register_models(engine)
    first = live_roster.latest_model_event_id(engine=engine)
    assert first > 0
    with store.new_session(engine) as s:
        ev = live_roster.set_model_enabled(session=s, name="beta", enabled=False, note="by ann")
        assert ev is not None and ev.kind == "disabled" and ev.detail == "by ann"
        assert live_roster.set_model_enabled(session=s, name="beta", enabled=False) is None
        live_roster.set_model_weight(session=s, name="alpha", weight=2.5)
        live_roster.add_model_entry(
            session=s, name="delta", backend="openai", config_hash="h", entry_toml="[[models]]"
        )
        with pytest.raises(store.InvalidValue, match="already exists"):
            live_roster.add_model_entry(
                session=s, name="alpha", backend="openai", config_hash="h", entry_toml="x"
            )
        with pytest.raises(store.InvalidValue, match="finite number above 0"):
            live_roster.set_model_weight(session=s, name="alpha", weight=float("inf"))
        with pytest.raises(store.UnknownModel):
            live_roster.set_model_weight(session=s, name="nope", weight=1.0)
    state = live_roster.roster_state(engine=engine)
    assert not state["beta"].enabled and state["alpha"].enabled
    assert state["alpha"].weight == 2.5 and state["gamma"].weight is None
    assert state["delta"].entry_toml == "[[models]]"
    assert live_roster.latest_model_event_id(engine=engine) == first + 3
    with store.new_session(engine) as s:
        live_roster.set_model_enabled(session=s, name="beta", enabled=True)
    assert live_roster.roster_state(engine=engine)["beta"].enabled
    with engine.connect() as conn:
        kinds = conn.execute(
            text("SELECT kind FROM model_event WHERE id > :f ORDER BY id"), {"f": first}
        ).scalars()
        assert list(kinds) == ["disabled", "reweighted", "added", "enabled"]


def test_audit_log_and_failed_login_count(engine: Engine) -> None:
    since = store.utcnow() - dt.timedelta(minutes=1)
    with store.new_session(engine) as s:
        for _ in range(3):
            record_admin_action(session=s, actor="m", address_key="addr-1", action=LOGIN_FAILED)
        record_admin_action(session=s, actor="m", address_key="addr-2", action=LOGIN_FAILED)
        record_admin_action(session=s, actor="ann" * 50, address_key="addr-1", action="login")
        with pytest.raises(store.InvalidValue):
            record_admin_action(session=s, actor="m", address_key="addr-1", action="")
    assert failed_logins_since(engine=engine, address_key="addr-1", since=since) == 3
    assert failed_logins_since(engine=engine, address_key="addr-2", since=since) == 1
    later = store.utcnow() + dt.timedelta(seconds=1)
    assert failed_logins_since(engine=engine, address_key="addr-1", since=later) == 0
    rows = list_admin_actions(engine=engine)
    assert [r.action for r in rows] == ["login"] + [LOGIN_FAILED] * 4
    assert len(rows[0].actor) == 100  # clipped to the column, not refused


def test_browse_filters_and_findings(engine: Engine) -> None:
    register_models(engine)
    a = vote_on_new_battle(engine, model_a="alpha", model_b="beta", user_key=USER)
    b = vote_on_new_battle(engine, model_a="beta", model_b="gamma", user_key=USER)
    c = vote_on_new_battle(
        engine, model_a="alpha", model_b="gamma", user_key=OTHER_USER, exclusion="identity_leak"
    )
    d = make_battle(engine, model_a="gamma", model_b="alpha", user_key=OTHER_USER)

    def ids(**kw: object) -> set[str]:
        rows = browse.browse_battles(engine=engine, where=browse.BattleFilter(**kw))  # type: ignore[arg-type]
        return {r.battle_id for r in rows}

    assert ids() == {a, b, c, d}
    assert ids(model="beta") == {a, b}
    assert ids(judge=OTHER_USER) == {c, d}
    assert ids(exclusion=browse.COUNTED) == {a, b}
    assert ids(exclusion=browse.EXCLUDED) == {c}
    assert ids(exclusion="identity_leak", model="alpha") == {c}
    future = store.utcnow() + dt.timedelta(hours=1)
    assert ids(since=future) == set() and ids(until=future) == {a, b, c, d}

    conv = browse.conversation(engine=engine, battle_id=a)
    assert [(m.turn, m.side) for m in conv.messages] == [(1, "user"), (1, "a"), (1, "b")]
    assert (conv.battle.model_a, conv.battle.winner) == ("alpha", "model_a")
    with pytest.raises(store.BattleNotFound):
        browse.conversation(engine=engine, battle_id="nope")

    with store.new_session(engine) as s:
        assert browse.apply_finding(session=s, judge=OTHER_USER, reason="sybil_group") == 0
        assert browse.apply_finding(session=s, judge=USER, reason="sybil_group") == 2
    found = browse.excluded_voters(engine=engine, reasons=("sybil_group", "anomalous_voter"))
    assert found == [(USER, "sybil_group", 2)]
    with store.new_session(engine) as s:
        assert browse.undo_finding(session=s, judge=USER, reason="anomalous_voter") == 0
        assert browse.undo_finding(session=s, judge=USER, reason="sybil_group") == 2
        assert browse.undo_finding(session=s, judge=OTHER_USER, reason="identity_leak") == 1
    assert ids(exclusion=browse.EXCLUDED) == set()
