"""Battle-log readers: every format, and errors that name file, line/record and field."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ratings.data import BattleDataError
from ratings.readers import read_battles

RECORDS = [
    {"model_a": "alpha", "model_b": "beta", "winner": "model_a", "judge": "u1",
     "question_id": "q1", "tstamp": 1.0, "anony": True, "conversation_a": [{"role": "user"}]},
    {"model_a": "beta", "model_b": "gamma", "winner": "tie (bothbad)", "judge": "u2",
     "question_id": "q1", "tstamp": 2.0, "anony": True},
    {"model_a": "gamma", "model_b": "alpha", "winner": "tie", "judge": "u1",
     "question_id": "q2", "tstamp": 3.0, "anony": True},
    {"model_a": "alpha", "model_b": "gamma", "winner": "model_b", "judge": "u3",
     "question_id": "q3", "tstamp": 4.0, "anony": False},
]  # fmt: skip


def _write_jsonl(path: Path, records: list[dict], gz: bool = False) -> Path:  # type: ignore[type-arg]
    text = "".join(json.dumps(r) + "\n" for r in records)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _write_csv(path: Path, records: list[dict]) -> Path:  # type: ignore[type-arg]
    cols = ["model_a", "model_b", "winner", "judge", "question_id", "tstamp", "anony"]
    lines = [",".join(cols)]
    for r in records:
        lines.append(",".join(str(r.get(c, "")).lower() if c == "anony" else str(r.get(c, ""))
                              for c in cols))  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(params=["jsonl", "jsonl.gz", "json", "json.gz", "csv", "parquet"])
def battle_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    kind = request.param
    path = tmp_path / f"battles.{kind}"
    if kind.startswith("jsonl"):
        return _write_jsonl(path, RECORDS, gz=kind.endswith(".gz"))
    if kind.startswith("json"):
        data = json.dumps(RECORDS)
        if kind.endswith(".gz"):
            with gzip.open(path, "wt", encoding="utf-8") as fh:
                fh.write(data)
        else:
            path.write_text(data, encoding="utf-8")
        return path
    if kind == "csv":
        return _write_csv(path, RECORDS)
    table = pa.Table.from_pylist([{k: v for k, v in r.items() if k != "conversation_a"}
                                  for r in RECORDS])  # fmt: skip
    pq.write_table(table, path)
    return path


def test_every_format_reads_the_same_battles(battle_file: Path) -> None:
    b = read_battles(battle_file)
    assert b.models == ("alpha", "beta", "gamma")
    assert len(b) == 3  # the named battle is left out by default
    assert b.notes == ("left out 1 named (non-anonymous) battles",)
    assert b.a.tolist() == [0, 1, 2] and b.b.tolist() == [1, 2, 0]
    assert b.outcome.tolist() == [0, 3, 2]
    assert b.tstamp is not None and b.tstamp.tolist() == [1.0, 2.0, 3.0]
    assert b.clusters["judge"][0] == b.clusters["judge"][2] != b.clusters["judge"][1]
    assert b.clusters["question_id"][0] == b.clusters["question_id"][1]
    assert len(read_battles(battle_file, include_named=True)) == 4


EXCLUDED = [
    dict(RECORDS[0], exclusion=None),
    dict(RECORDS[1], exclusion="rate_limited"),
    dict(RECORDS[2], exclusion="identity_leak"),
    dict(RECORDS[3], exclusion="rate_limited"),  # named too: reported once, as named
    dict(RECORDS[0], question_id="q4", exclusion="rate_limited"),
]


@pytest.mark.parametrize("kind", ["jsonl", "json", "csv", "parquet"])
def test_votes_with_an_exclusion_reason_are_left_out_by_default(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"x.{kind}"
    records = [{k: v for k, v in r.items() if k != "conversation_a"} for r in EXCLUDED]
    if kind == "jsonl":
        _write_jsonl(path, records)
    elif kind == "json":
        path.write_text(json.dumps(records), encoding="utf-8")
    elif kind == "parquet":
        pq.write_table(pa.Table.from_pylist(records), path)
    else:  # an empty cell is no reason
        cols = ["model_a", "model_b", "winner", "anony", "exclusion"]
        rows = [",".join(str(r[c] or "") if c != "anony" else str(r[c]).lower() for c in cols)
                for r in records]  # fmt: skip
        path.write_text("\n".join([",".join(cols), *rows]) + "\n", encoding="utf-8")
    b = read_battles(path)
    assert len(b) == 1 and b.outcome.tolist() == [0]
    assert b.notes == (
        "left out 1 named (non-anonymous) battles",
        "left out 3 excluded votes (identity_leak 1, rate_limited 2)",
    )
    assert len(read_battles(path, include_excluded=True)) == 4
    both = read_battles(path, include_excluded=True, include_named=True)
    assert len(both) == 5 and both.notes == ()


def test_numeric_judges_are_read_as_identifiers(tmp_path: Path) -> None:
    recs = [dict(RECORDS[0], judge=17), dict(RECORDS[1], judge="17"), dict(RECORDS[2], judge=3)]
    b = read_battles(_write_jsonl(tmp_path / "n.jsonl", recs))
    assert b.clusters["judge"][0] == b.clusters["judge"][1] != b.clusters["judge"][2]


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    path.write_text(json.dumps(RECORDS[0]) + "\n\n" + json.dumps(RECORDS[1]) + "\n")
    assert len(read_battles(path)) == 2


def _error(path: Path) -> BattleDataError:
    with pytest.raises(BattleDataError) as info:
        read_battles(path)
    return info.value


@pytest.mark.parametrize(
    ("lines", "line", "field", "words"),
    [
        (['{"model_a":"a","model_b":"b","winner":"tie"}', '{"model_a":"a",'], 2, None,
         "malformed JSON"),
        (['{"model_a":"a","model_b":"b","winner":"tie"}', '{"model_a":"a","winner":"tie"}'], 2,
         "model_b", "missing"),
        (['{"model_a":"a","model_b":"b","winner":"tie"}', '{"model_a":"a","model_b":"b",'
          '"winner":"draw"}'], 2, "winner", "unknown winner 'draw'"),
        (['{"model_a":"a","model_b":"b","winner":"tie"}', '', '{"model_a":"c","model_b":"c",'
          '"winner":"tie"}'], 3, "model_b", "plays itself"),
        (['{"model_a":"a","model_b":"","winner":"tie"}'], 1, "model_b", "non-empty"),
        (['{"model_a":"a","model_b":"b","winner":"tie","tstamp":"noon"}'], 1, "tstamp",
         "number"),
        (['[1, 2]'], 1, None, "JSON object"),
    ],
)  # fmt: skip
def test_jsonl_errors_name_line_and_field(
    tmp_path: Path, lines: list[str], line: int, field: str | None, words: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    err = _error(path)
    assert err.line == line
    assert err.field == field
    assert words in str(err)
    assert str(path) in str(err) and f"line {line}" in str(err)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    assert "empty" in str(_error(path))


def test_missing_file_and_bad_suffix(tmp_path: Path) -> None:
    assert "no such file" in str(_error(tmp_path / "nope.jsonl"))
    other = tmp_path / "battles.txt"
    other.write_text("x")
    assert "unsupported file type" in str(_error(other))


def test_csv_missing_column_and_bad_value(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("model_a,winner\nx,tie\n")
    err = _error(path)
    assert err.field == "model_b" and err.line == 2
    path.write_text("model_a,model_b,winner\nx,y,tie\nx,y,model_c\n")
    err = _error(path)
    assert (err.line, err.field) == (3, "winner")


def test_json_list_errors_name_the_record(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps([RECORDS[0], {"model_a": "a", "model_b": "b", "winner": 1}]))
    err = _error(path)
    assert (err.record, err.field) == (1, "winner")


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    path.write_bytes(json.dumps(RECORDS[0]).encode() + b"\n" + b'{"model_a":"\xff"}\n')
    err = _error(path)
    assert err.line == 2 and "UTF-8" in str(err)


def test_weights_are_read_and_validated(tmp_path: Path) -> None:
    recs = [dict(RECORDS[0], weight=2.5), dict(RECORDS[1], weight=1.0)]
    b = read_battles(_write_jsonl(tmp_path / "w.jsonl", recs))
    assert b.weight is not None and b.weight.tolist() == [2.5, 1.0]
    bad = [dict(RECORDS[0], weight=-1)]
    err = _error(_write_jsonl(tmp_path / "bad.jsonl", bad))
    assert err.field == "weight" and err.line == 1


def test_large_file_takes_the_fast_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 20000
    names = [f"m{k}" for k in range(12)]
    a = rng.integers(0, 12, n)
    b = (a + rng.integers(1, 12, n)) % 12
    w = rng.integers(0, 4, n)
    values = ["model_a", "model_b", "tie", "tie (bothbad)"]
    path = tmp_path / "big.jsonl"
    with path.open("w") as fh:
        for i in range(n):
            rec = {"model_a": names[a[i]], "model_b": names[b[i]], "winner": values[w[i]]}
            fh.write(json.dumps(rec) + "\n")
    out = read_battles(path)
    assert len(out) == n
    got = [out.models[k] for k in out.a]
    assert got == [names[k] for k in a]
    assert out.outcome.tolist() == w.tolist()
