"""Hostile input: the battle-log readers and the importer never crash with a traceback.

Hypothesis throws arbitrary and almost-valid files at them; every outcome must be a correct
result or a ``BattleDataError`` that names the file -- never another exception.  A failed
import must leave the database untouched.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arena import store
from ratings import BattleDataError, read_battles

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

names = st.sampled_from(["a", "b", "c", "", " ", "x" * 300, "é", "\x00", 7, None, True])
winners = st.sampled_from(["model_a", "model_b", "tie", "tie (bothbad)", "A", "", None, 1])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20)
)
records = st.fixed_dictionaries(
    {"model_a": names, "model_b": names, "winner": winners},
    optional={
        "tstamp": scalars,
        "judge": scalars,
        "question_id": scalars,
        "anony": scalars,
        "turn": scalars,
        "battle_id": scalars,
        "language": scalars,
    },
)
# A line is a valid-ish record, a random JSON value, or random text (broken JSON).
lines = st.one_of(
    records.map(json.dumps),
    st.recursive(scalars, lambda c: st.lists(c, max_size=3), max_leaves=5).map(json.dumps),
    st.text(max_size=40).filter(lambda t: "\n" not in t and "\r" not in t),
)


def _write(tmp: Path, suffix: str, body: str | bytes) -> Path:
    path = tmp / f"input{suffix}"
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body, encoding="utf-8", errors="surrogatepass")
    return path


@FUZZ
@given(body=st.lists(lines, max_size=6).map("\n".join))
def test_jsonl_reader_returns_battles_or_a_clear_error(body: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = _write(Path(d), ".jsonl", body)
        try:
            battles = read_battles(path)
        except BattleDataError as exc:
            assert str(path) in str(exc)
        else:
            assert len(battles) >= 1 and battles.n_models >= 2


@pytest.mark.parametrize("body", ["null", " \n null\n", "null\n{}", "[1]", "1", "true"])
def test_jsonl_that_does_not_start_with_an_object_is_a_clear_error(
    tmp_path: Path, body: str
) -> None:
    # "null" first used to kill the process inside pyarrow's JSON reader (SIGSEGV).
    with pytest.raises(BattleDataError, match=r"line [12]: expected a JSON object"):
        read_battles(_write(tmp_path, ".jsonl", body))


@FUZZ
@given(body=st.binary(max_size=200))
def test_readers_survive_arbitrary_bytes(body: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        for suffix in (".jsonl", ".csv", ".json", ".jsonl.gz", ".parquet"):
            path = _write(Path(d), suffix, body)
            try:
                read_battles(path)
            except BattleDataError as exc:
                assert str(path) in str(exc)


@FUZZ
@given(rows=st.lists(st.lists(st.text(max_size=8), min_size=1, max_size=4), max_size=5))
def test_csv_reader_returns_battles_or_a_clear_error(rows: list[list[str]]) -> None:
    header = "model_a,model_b,winner"
    body = "\n".join([header, *(",".join(r) for r in rows)])
    with tempfile.TemporaryDirectory() as d:
        path = _write(Path(d), ".csv", body)
        try:
            read_battles(path)
        except BattleDataError as exc:
            assert str(path) in str(exc)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'arena.db'}"
    eng = store.open_engine(url, create_if_empty=True)
    yield eng
    eng.dispose()


def _vote_count(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM vote").scalar_one())


@FUZZ
@given(body=st.lists(lines, min_size=1, max_size=5).map("\n".join))
def test_importer_is_all_or_nothing_and_never_crashes(engine, body: str) -> None:  # type: ignore[no-untyped-def]
    before = _vote_count(engine)
    with tempfile.TemporaryDirectory() as d:
        path = _write(Path(d), ".jsonl", body)
        try:
            report = store.import_battles(engine=engine, path=path)
        except BattleDataError as exc:
            assert str(path) in str(exc)
            assert _vote_count(engine) == before  # nothing written
        else:
            assert _vote_count(engine) == before + report.inserted
