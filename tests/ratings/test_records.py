"""One set of record rules (ratings/records.py) behind every path that reads battle records.

The property test feeds the same generated record through the JSON-lines, JSON-list, CSV and
Parquet readers and through `arena import`, and checks that each gives the verdict of
`check_record`: accept, or reject naming the same field.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratings.data import BattleDataError
from ratings.readers import read_battles
from ratings.records import (
    FIELD_LIMITS,
    MAX_TURN,
    MAX_WEIGHT,
    RecordError,
    check_record,
    from_text,
)

GOOD = {"model_a": "alpha", "model_b": "beta", "winner": "tie"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model_a": None}, "model_a"),
        ({"model_a": ""}, "model_a"),
        ({"model_b": "alpha"}, "model_b"),
        ({"winner": "draw"}, "winner"),
        ({"judge": True}, "judge"),
        ({"judge": 1.5}, "judge"),
        ({"question_id": "q" * 129}, "question_id"),
        ({"battle_id": "b" * 65}, "battle_id"),
        ({"turn": 1.0}, "turn"),
        ({"turn": MAX_TURN + 1}, "turn"),
        ({"anony": 1}, "anony"),
        ({"tstamp": math.nan}, "tstamp"),
        ({"tstamp": -1}, "tstamp"),
        ({"tstamp": 10**400}, "tstamp"),
        ({"weight": math.inf}, "weight"),
        ({"weight": MAX_WEIGHT * 2}, "weight"),
        ({"exclusion": "a\x00"}, "exclusion"),
        ({"language": "\udc80"}, "language"),
    ],
)
def test_each_rule_names_its_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(RecordError) as info:
        check_record({**GOOD, **change})
    assert info.value.field == field


def test_normalised_values() -> None:
    rec = check_record({**GOOD, "judge": 17, "question_id": "", "turn": MAX_TURN,
                        "tstamp": 0, "weight": MAX_WEIGHT, "extra": object()})  # fmt: skip
    assert (rec.judge, rec.question_id, rec.turn, rec.tstamp) == ("17", None, MAX_TURN, 0.0)
    assert rec.weight == MAX_WEIGHT
    assert from_text("anony", "TRUE") is True and from_text("turn", "1e3") == "1e3"


def test_the_store_columns_use_the_same_limits() -> None:
    from sqlmodel import SQLModel

    import arena.store.models  # noqa: F401  (registers the tables)

    tables = SQLModel.metadata.tables
    assert tables["model"].c.name.type.length == FIELD_LIMITS["model_a"]
    assert tables["vote"].c.judge.type.length == FIELD_LIMITS["judge"]
    assert tables["vote"].c.question_id.type.length == FIELD_LIMITS["question_id"]
    assert tables["vote"].c.exclusion.type.length == FIELD_LIMITS["exclusion"]
    assert tables["battle"].c.language.type.length == FIELD_LIMITS["language"]
    assert tables["battle"].c.id.type.length == FIELD_LIMITS["battle_id"]


# ------------------------------------------------------------------ the same verdict everywhere

_odd_text = st.sampled_from(["", "x", "\x00", "\ud800", "é" * 30, "q" * 129, "17", "true"])
_texts = st.one_of(st.none(), st.text(max_size=4), _odd_text)
_ids = st.one_of(_texts, st.integers(-5, 10**25), st.booleans(), st.floats(allow_nan=True))
_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-3, 2**70),
    st.booleans(),
    st.sampled_from(["1.5", "soon"]),
)
records = st.fixed_dictionaries(
    {
        "model_a": st.one_of(st.sampled_from(["alpha", "beta"]), _texts, st.integers(0, 3)),
        "model_b": st.one_of(st.sampled_from(["beta", "gamma"]), _texts),
        "winner": st.sampled_from(["model_a", "model_b", "tie", "tie (bothbad)", "draw", None]),
        # import needs a vote time, so every record has one (possibly a bad one)
        "tstamp": _numbers,
    },
    optional={
        "battle_id": _texts,
        "judge": _ids,
        "question_id": _ids,
        "turn": st.one_of(st.none(), st.integers(-2, 2**64), st.floats(), st.booleans()),
        "anony": st.one_of(st.none(), st.booleans(), st.sampled_from(["yes", "true", 1])),
        "language": _texts,
        "weight": st.one_of(st.none(), _numbers),
        "exclusion": _texts,
    },
)


def _verdict(fn: Any) -> str | None:
    """``None`` for accepted, else the field named (``""`` for none)."""
    try:
        fn()
    except (BattleDataError, RecordError) as exc:
        return exc.field or ""
    return None


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if not isinstance(value, float) else repr(value)


def _csv_faithful(rec: dict[str, Any]) -> bool:
    """Whether CSV (which has no types) carries the record's values unchanged."""
    for name, value in rec.items():
        if isinstance(value, str) and any(c in value for c in "\x00\r\ud800"):
            return False
        back = from_text(name, _csv_cell(value))
        expected = None if value == "" else value
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and name in ("judge", "question_id")
        ):
            expected = str(value)  # read as text in CSV, kept as its text by the rules
        if type(back) is not type(expected) and not (
            isinstance(back, float)
            and isinstance(expected, int)
            and name in ("tstamp", "weight")
            and float(expected) == expected
            and abs(expected) < 2**53
        ):
            return False
        if back != expected and not (isinstance(back, float) and math.isnan(back)):
            return False
    return True


@pytest.fixture(scope="module")
def import_engine(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from arena.cli.db import open_database

    db = tmp_path_factory.mktemp("records") / "arena.db"
    engine = open_database(f"sqlite:///{db}", create_if_empty=True)
    yield engine
    engine.dispose()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rec=records)
def test_every_path_gives_the_same_verdict(rec: dict[str, Any], import_engine: Any) -> None:
    from arena.store import import_battles

    try:
        check_record(rec)
        expected = None
    except RecordError as exc:
        expected = exc.field
    read = lambda p: read_battles(p, include_named=True, include_excluded=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        jsonl = d / "b.jsonl"
        jsonl.write_text(json.dumps(rec) + "\n", encoding="utf-8")
        assert _verdict(lambda: read(jsonl)) == expected, "jsonl"
        listed = d / "b.json"
        listed.write_text(json.dumps([rec]), encoding="utf-8")
        assert _verdict(lambda: read(listed)) == expected, "json"
        got = _verdict(lambda: import_battles(engine=import_engine, path=jsonl))
        assert got == expected, "import"
        if _csv_faithful(rec):
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(list(rec))
            writer.writerow([_csv_cell(v) for v in rec.values()])
            path = d / "b.csv"
            path.write_text(buf.getvalue(), encoding="utf-8")
            assert _verdict(lambda: read(path)) == expected, "csv"
        try:
            table = pa.Table.from_pylist([rec])
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeEncodeError):
            table = None  # a value Parquet cannot hold (2**70, a lone surrogate)
        if table is not None:
            path = d / "b.parquet"
            pq.write_table(table, path)
            assert _verdict(lambda: read(path)) == expected, "parquet"
