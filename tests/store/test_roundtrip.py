"""Property: export -> import into an empty database -> export gives the same file."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from arena import store

UTC = dt.UTC
# Text any backend can store: no NUL, no lone surrogates (both refused up front).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=40)  # fmt: skip
NAMES = st.sampled_from(["alpha", "beta", "gämma-7b", "δ/chat", "model e"])
WHEN = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(UTC)
)
HYPOTHESIS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def battles(draw: st.DrawFn) -> dict[str, Any]:
    a, b = draw(st.lists(NAMES, min_size=2, max_size=2, unique=True))
    turns = []
    for _ in range(draw(st.integers(0, 3))):
        turns.append(
            (draw(TEXT), draw(st.none() | TEXT), draw(st.none() | TEXT))  # user, a, b
        )
    return {
        "model_a": a,
        "model_b": b,
        "mode": draw(st.sampled_from(store.BATTLE_MODES)),
        "winner": draw(st.sampled_from(store.WINNERS)),
        "user_key": draw(st.text("0123456789abcdef", min_size=1, max_size=64)),
        "language": draw(st.none() | st.sampled_from(["English", "Deutsch", "中文"])),
        "voted_at": draw(WHEN),
        "exclusion": draw(st.none() | st.sampled_from(["rate_limited", "identity_leak"])),
        "turns": turns,
    }


def _wipe(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in ("message", "vote", "battle", "model_event", "model"):
            conn.execute(delete(SQLModel.metadata.tables[table]))


def _write(engine: Engine, specs: list[dict[str, Any]]) -> list[str]:
    """Every battle through the store's write path, as the app would."""
    ids = []
    with store.new_session(engine) as s:
        for name in sorted({n for sp in specs for n in (sp["model_a"], sp["model_b"])}):
            store.upsert_model(session=s, name=name, backend="openai")
        for sp in specs:
            bid = store.create_battle(
                session=s, mode=sp["mode"], model_a=sp["model_a"], model_b=sp["model_b"],
                user_key=sp["user_key"], pair_probability=0.5, policy_name="p",
                policy_version="1", language=sp["language"],
            ).id  # fmt: skip
            for turn, (prompt, ans_a, ans_b) in enumerate(sp["turns"], start=1):
                store.append_message(session=s, battle_id=bid, turn=turn, side="user",
                                     content=prompt)  # fmt: skip
                for side, ans in (("a", ans_a), ("b", ans_b)):
                    if ans is not None:
                        store.append_message(session=s, battle_id=bid, turn=turn, side=side,
                                             content=ans)  # fmt: skip
            store.set_status(session=s, battle_id=bid, status="ready")
            store.record_vote(session=s, battle_id=bid, winner=sp["winner"],
                              user_key=sp["user_key"], voted_at=sp["voted_at"])  # fmt: skip
            if sp["exclusion"]:
                store.mark_exclusion(session=s, battle_id=bid, reason=sp["exclusion"])
            ids.append(bid)
    return ids


@pytest.fixture
def two_engines(engine: Engine, make_db: Callable[[], str]) -> Iterator[tuple[Engine, Engine]]:
    target = store.open_engine(make_db(), create_if_empty=True)
    yield engine, target
    target.dispose()


@HYPOTHESIS
@given(specs=st.lists(battles(), min_size=1, max_size=4))
def test_export_import_export_is_identical(
    two_engines: tuple[Engine, Engine], tmp_path: Path, specs: list[dict[str, Any]]
) -> None:
    source, target = two_engines
    _wipe(source)
    _wipe(target)
    ids = _write(source, specs)
    first, second = tmp_path / "first.jsonl.gz", tmp_path / "second.jsonl.gz"
    assert store.export_battles(engine=source, out=first, with_conversations=True) == len(specs)
    report = store.import_battles(engine=target, path=first)
    assert (report.inserted, report.duplicates) == (len(specs), 0)
    store.export_battles(engine=target, out=second, with_conversations=True)
    assert first.read_bytes() == second.read_bytes()

    # And the file says what was written.
    recs = {
        r["battle_id"]: r for r in map(json.loads, gzip.decompress(first.read_bytes()).splitlines())
    }
    for bid, sp in zip(ids, specs, strict=True):
        r = recs[bid]
        assert (r["model_a"], r["model_b"], r["winner"], r["judge"]) == (
            sp["model_a"], sp["model_b"], sp["winner"], sp["user_key"])  # fmt: skip
        assert (r["anony"], r["language"], r["exclusion"], r["turn"]) == (
            sp["mode"] == "anony", sp["language"], sp["exclusion"], len(sp["turns"]))  # fmt: skip
        assert store.exchange._from_tstamp(r["tstamp"]) == sp["voted_at"]
        assert [m["content"] for m in r["conversation_a"] if m["role"] == "user"] == [
            t[0] for t in sp["turns"]
        ]
        assert [m["content"] for m in r["conversation_b"] if m["role"] == "assistant"] == [
            t[2] for t in sp["turns"] if t[2] is not None
        ]


PUBLIC_RECORD = st.fixed_dictionaries(
    {
        "model_a": NAMES,
        "model_b": NAMES,
        "winner": st.sampled_from(store.WINNERS),
        "tstamp": st.floats(1e9, 4e9, allow_nan=False),
    },
    optional={
        "judge": st.text("abcdef0123", min_size=1, max_size=20),
        "question_id": st.text("abcdef0123", min_size=1, max_size=20),
        "turn": st.integers(0, 20),
        "anony": st.booleans(),
        "language": st.sampled_from(["English", "Polski"]),
        "conversation_a": st.lists(
            st.fixed_dictionaries({"role": st.just("user"), "content": TEXT}), max_size=2
        ),
    },
).filter(lambda r: r["model_a"] != r["model_b"])


@HYPOTHESIS
@given(records=st.lists(PUBLIC_RECORD, min_size=1, max_size=30))
def test_public_dumps_reach_a_fixed_point(
    two_engines: tuple[Engine, Engine], tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    """A public dump (no battle ids, optional fields, float times) imports, and from then
    on export and import are exact inverses."""
    source, target = two_engines
    _wipe(source)
    _wipe(target)
    dump = tmp_path / "dump.jsonl"
    dump.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    distinct = len({json.dumps(r, sort_keys=True) for r in records})
    report = store.import_battles(engine=source, path=dump)
    assert (report.inserted, report.duplicates) == (distinct, len(records) - distinct)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    store.export_battles(engine=source, out=first, with_conversations=True)
    store.import_battles(engine=target, path=first)
    store.export_battles(engine=target, out=second, with_conversations=True)
    assert first.read_bytes() == second.read_bytes()
