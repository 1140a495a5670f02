"""The live roster on one replica (arena.roster_sync): what the admin page's state does to
the draw, and how often the database is asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from arena import store
from arena.roster import RosterError, parse_entry_toml
from arena.roster_sync import RosterSync, plan
from arena.store.live_roster import (
    ModelState,
    latest_model_event_id,
    set_model_enabled,
    set_model_weight,
)


def state(name: str, *, enabled: bool = True, weight: float | None = None) -> ModelState:
    return ModelState(name, enabled, weight, None, False)


BASE = ("a", "b", "c")
WEIGHTS = {"a": 1.0, "b": 2.0, "c": 1.0}


def test_no_admin_state_changes_nothing() -> None:
    live = plan(base=BASE, added=(), weights=WEIGHTS, state={n: state(n) for n in BASE})
    assert live.candidates == BASE and not live.changed and live.disabled == frozenset()
    # A weight equal to the roster's is no change either.
    same = plan(base=BASE, added=(), weights=WEIGHTS, state={"b": state("b", weight=2.0)})
    assert not same.changed


def test_disabled_models_leave_and_weights_override() -> None:
    live = plan(
        base=BASE,
        added=("d",),
        weights={**WEIGHTS, "d": 3.0},
        state={"b": state("b", enabled=False), "c": state("c", weight=5.0)},
    )
    assert live.candidates == ("a", "c", "d")
    assert live.disabled == frozenset({"b"})
    assert dict(live.weights) == {"a": 1.0, "c": 5.0, "d": 3.0}
    assert live.changed
    # A model that is not a candidate (a guard model, say) stays out when enabled.
    guard = plan(base=("a", "b"), added=(), weights=WEIGHTS, state={"c": state("c")})
    assert guard.candidates == ("a", "b") and not guard.changed


def test_the_database_is_asked_at_most_every_poll_interval(tmp_path: Path) -> None:
    engine = store.open_engine(f"sqlite:///{tmp_path / 'a.db'}", create_if_empty=True)
    try:
        with store.new_session(engine) as s:
            for n in BASE:
                store.upsert_model(session=s, name=n, backend="openai")
        now = [100.0]
        sync = RosterSync(engine=engine, poll_s=5.0, clock=lambda: now[0])
        first = sync.poll()
        assert first is not None and set(first) == set(BASE)
        assert sync.seen_event_id == latest_model_event_id(engine=engine)
        assert sync.poll(force=True) is None  # nothing new
        with store.new_session(engine) as s:
            set_model_enabled(session=s, name="b", enabled=False)
        now[0] += 4.9
        assert not sync.due() and sync.poll() is None  # not asked yet
        now[0] += 0.2
        changed = sync.poll()
        assert changed is not None and not changed["b"].enabled
        with store.new_session(engine) as s:
            assert set_model_enabled(session=s, name="b", enabled=False) is None  # no-op
            set_model_weight(session=s, name="a", weight=3.0)
        changed = sync.poll(force=True)
        assert changed is not None and changed["a"].weight == 3.0
        with store.new_session(engine) as s, pytest.raises(store.InvalidValue, match="above 0"):
            set_model_weight(session=s, name="a", weight=0.0)
        with store.new_session(engine) as s, pytest.raises(store.UnknownModel):
            set_model_enabled(session=s, name="zz", enabled=False)
    finally:
        engine.dispose()


def test_an_added_entry_is_one_validated_table(tmp_path: Path) -> None:
    entry = parse_entry_toml(
        "[[models]]\nname = 'd'\nbackend = 'openai'\nmodel = 'x'\nbase_url = 'http://h/v1'\n"
        "weight = 2.5\n",
        path=tmp_path / "(admin page)",
    )
    assert (entry.name, entry.weight) == ("d", 2.5)
    two = "[[models]]\nname='d'\nbackend='openai'\nmodel='x'\nbase_url='http://h/v1'\n" * 1
    two += "[[models]]\nname='e'\nbackend='openai'\nmodel='x'\nbase_url='http://h/v1'\n"
    with pytest.raises(
        RosterError, match=r"\(admin page\).*exactly one \[\[models\]\] entry, got 2"
    ):
        parse_entry_toml(two, path=tmp_path / "(admin page)")
