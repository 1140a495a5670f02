"""Hostile battle files on the command line: `arena ratings FILE` and `arena import battles`.

Each must exit 2 with the file, the line and the field named, and no traceback (issue 11,
part 6).  Both commands apply the same record rules (ratings/records.py), so each case runs
through both where the file type allows (import reads JSON lines only).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from arena.cli import main
from ratings import readers

GOOD = {"model_a": "alpha", "model_b": "beta", "winner": "model_a", "tstamp": 1.7e9}


def _jsonl(path: Path, bad_line: str) -> Path:
    good = [json.dumps({**GOOD, "battle_id": f"g{i}"}) for i in range(3)]
    path.write_text("\n".join([*good, bad_line, good[0]]) + "\n", encoding="utf-8")
    return path


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _both(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Run ratings and import on ``path``; both must refuse with exit 2.  Returns stderrs."""
    db = tmp_path / "arena.db"
    errs = []
    for args in (
        ["ratings", str(path), "--no-progress"],
        ["import", "battles", str(path), "--db", f"sqlite:///{db}", "--no-progress"],
    ):
        code, err = _run(args, capsys)
        assert code == 2, err
        assert str(path) in err
        errs.append(err)
    return errs


BAD_LINES = [
    # (line 4 of the file, the field it must name)
    (json.dumps({**GOOD, "turn": 1e26}), "turn"),
    (json.dumps({**GOOD, "turn": 2**63}), "turn"),
    (json.dumps({**GOOD, "turn": 10**30}), "turn"),
    ('{"model_a": "alpha", "model_b": "beta", "winner": "tie", "tstamp": NaN}', "tstamp"),
    ('{"model_a": "alpha", "model_b": "beta", "winner": "tie", "tstamp": Infinity}', "tstamp"),
    ('{"model_a": "alpha", "model_b": "beta", "winner": "tie", "tstamp": 1e400}', "tstamp"),
    (json.dumps({**GOOD, "tstamp": 2**64}), "tstamp"),
    (json.dumps({**GOOD, "weight": 1e300}), "weight"),
    (json.dumps({**GOOD, "weight": -0.5}), "weight"),
    ('{"model_a": "al\\ud800pha", "model_b": "beta", "winner": "tie", "tstamp": 1}', "model_a"),
    (
        '{"model_a": "alpha", "model_b": "beta", "winner": "tie", "judge": "\\udfff", "tstamp": 1}',
        "judge",
    ),
    (json.dumps({**GOOD, "language": "x" * 21}), "language"),
    (json.dumps({**GOOD, "anony": "yes"}), "anony"),
]


@pytest.mark.parametrize(("line", "field"), BAD_LINES)
def test_bad_record_names_file_line_and_field_in_both_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, field: str
) -> None:
    path = _jsonl(tmp_path / "bad.jsonl", line)
    for err in _both(path, tmp_path, capsys):
        assert "line 4" in err and f"field {field!r}" in err, err
    assert not (tmp_path / "arena.db").exists() or _votes(tmp_path / "arena.db") == 0


def _votes(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM vote").fetchone()[0])


@pytest.mark.parametrize(
    ("cell", "field"), [("nan", "tstamp"), ("inf", "tstamp"), ("-inf", "tstamp"),
                        ("NaN", "weight"), ("1e300", "weight"), ("1e26", "turn"),
                        ("9223372036854775808", "turn")],
)  # fmt: skip
def test_csv_non_finite_and_huge_numbers_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cell: str, field: str
) -> None:
    path = tmp_path / "bad.csv"
    cols = ["model_a", "model_b", "winner", "tstamp", "weight", "turn"]
    good = {"model_a": "alpha", "model_b": "beta", "winner": "tie", "tstamp": "1",
            "weight": "1", "turn": "1"}  # fmt: skip
    rows = [good, good, {**good, field: cell}]
    path.write_text(
        ",".join(cols) + "\n" + "".join(",".join(r[c] for c in cols) + "\n" for r in rows)
    )
    code, err = _run(["ratings", str(path), "--no-progress"], capsys)
    assert code == 2
    assert f"{path}, line 4, field {field!r}" in err, err


def test_empty_file_is_refused_by_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    for err in _both(path, tmp_path, capsys):
        assert "empty" in err
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n  \n")
    for err in _both(blank, tmp_path, capsys):
        assert "no battles" in err


def test_directory_is_named_as_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "logs.jsonl"
    path.mkdir()
    for err in _both(path, tmp_path, capsys):
        assert "is a directory" in err and "no such file" not in err


def test_gzip_bomb_is_refused_before_it_is_read_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cap is max(GZIP_FREE_BYTES, MAX_GZIP_RATIO * compressed size); shrink the free
    # allowance so that a small bomb (~20 MB of valid records, ~1000x) trips it.
    monkeypatch.setattr(readers, "GZIP_FREE_BYTES", 1 << 20)
    path = tmp_path / "bomb.jsonl.gz"
    line = (json.dumps({**GOOD, "tstamp": 1.0}) + "\n").encode()
    with gzip.open(path, "wb", compresslevel=9) as fh:
        for _ in range(200):
            fh.write(line * 2000)
    assert path.stat().st_size * readers.MAX_GZIP_RATIO < 20 << 20
    for err in _both(path, tmp_path, capsys):
        assert "gzip bomb" in err and "gunzip" in err


def test_gzip_within_the_cap_still_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ok.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        for i in range(50):
            fh.write(json.dumps({**GOOD, "battle_id": f"b{i}", "tstamp": 1.0 + i}) + "\n")
            fh.write(json.dumps({**GOOD, "battle_id": f"c{i}", "winner": "model_b"}) + "\n")
    code, _ = _run(["ratings", str(path), "--no-progress"], capsys)
    assert code == 0
    db = tmp_path / "a.db"
    code, _ = _run(["import", "battles", str(path), "--db", f"sqlite:///{db}", "--no-progress"],
                   capsys)  # fmt: skip
    assert code == 0 and _votes(db) == 100


@pytest.mark.slow
def test_gzip_bomb_with_a_forged_trailer_is_still_capped_while_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The trailer's declared size lets an honest bomb be refused before inflating; a forged
    # (small) one must not get past the byte count kept while reading.
    monkeypatch.setattr(readers, "GZIP_FREE_BYTES", 1 << 20)
    path = tmp_path / "forged.jsonl.gz"
    line = (json.dumps({**GOOD, "tstamp": 1.0}) + "\n").encode()
    with gzip.open(path, "wb", compresslevel=9) as fh:
        for _ in range(200):
            fh.write(line * 2000)
    data = bytearray(path.read_bytes())
    data[-4:] = (100).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    for err in _both(path, tmp_path, capsys):
        assert "gzip bomb" in err
