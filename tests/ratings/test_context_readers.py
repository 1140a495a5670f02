"""conv_metadata, category_tag and language read back by every reader (JSONL, JSON, CSV with
flattened columns, Parquet), the same values whichever the format."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from arena.cli import main
from ratings.data import BattleDataError
from ratings.readers import read_battles

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "style" / "battles.jsonl.gz"


def _records(n: int = 400) -> list[dict[str, Any]]:
    with gzip.open(FIXTURE, "rt", encoding="utf-8") as fh:
        recs = [json.loads(line) for _, line in zip(range(n), fh, strict=False)]
    rng = np.random.default_rng(8)
    for k, rec in enumerate(recs):
        rec["category_tag"] = {"coding": bool(rng.random() < 0.3), "math": k % 5 == 0,
                               "multi_turn": rec["turn"] > 1, "long_query": False}  # fmt: skip
        rec["language"] = ["English", "German", "French"][k % 3]
        if k % 17 == 0:
            rec["conv_metadata"] = None  # style unknown for this one
    return recs


def _flat(rec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in rec.items():
        if isinstance(value, dict):
            for k2, v2 in value.items():
                if isinstance(v2, dict):
                    for k3, v3 in v2.items():
                        out[f"{key}.{k2}.{k3}"] = v3
                else:
                    out[f"{key}.{k2}"] = v2
        else:
            out[key] = value
    return out


def _write_all(recs: list[dict[str, Any]], tmp: Path) -> dict[str, Path]:
    paths = {}
    p = tmp / "b.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    paths["jsonl"] = p
    p = tmp / "b.json"
    p.write_text(json.dumps(recs))
    paths["json"] = p
    flat = [_flat(r) for r in recs]
    cols = sorted({k for r in flat for k in r})
    p = tmp / "b.csv"
    with p.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in flat:
            w.writerow({k: ("true" if v is True else "false" if v is False else v)
                        for k, v in r.items()})  # fmt: skip
    paths["csv"] = p
    p = tmp / "b.parquet"
    pq.write_table(pa.Table.from_pylist(recs), p)
    paths["parquet"] = p
    return paths


def test_every_reader_gives_the_same_context(tmp_path: Path) -> None:
    recs = _records()
    got = {fmt: read_battles(p) for fmt, p in _write_all(recs, tmp_path).items()}
    ref = got["jsonl"]
    assert ref.style is not None and ref.language is not None
    # Independent expectation straight from the records.
    for k in (0, 1, 5, 33):
        md = recs[k]["conv_metadata"]
        if md is None:
            assert np.isnan(ref.style[k]).all()
            continue
        want_a = [md["sum_assistant_a_tokens"], sum(md["header_count_a"].values()),
                  sum(md["list_count_a"].values()), sum(md["bold_count_a"].values())]  # fmt: skip
        np.testing.assert_array_equal(ref.style[k, :, 0], want_a)
    assert int(np.isnan(ref.style[:, 0, 0]).sum()) == sum(r["conv_metadata"] is None for r in recs)
    assert ref.categories["math"].tolist() == [k % 5 == 0 for k in range(len(recs))]
    assert ref.language.tolist() == [r["language"] for r in recs]
    for fmt, b in got.items():
        assert b.style is not None, fmt
        np.testing.assert_array_equal(b.style, ref.style, err_msg=fmt)
        for name, flags in ref.categories.items():
            np.testing.assert_array_equal(b.categories[name], flags, err_msg=f"{fmt} {name}")
        assert b.language is not None and b.language.tolist() == ref.language.tolist(), fmt


def test_context_survives_the_readers_filters(tmp_path: Path) -> None:
    recs = _records(60)
    recs[3]["anony"] = False  # named: left out by default
    recs[4]["exclusion"] = "duplicate_prompt"
    path = tmp_path / "f.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    b = read_battles(path)
    assert len(b) == 58 and b.style is not None and b.language is not None
    kept = [r for k, r in enumerate(recs) if k not in (3, 4)]
    assert b.language.tolist() == [r["language"] for r in kept]
    assert any("named" in n for n in b.notes) and any("excluded" in n for n in b.notes)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"conv_metadata": "long"}, "conv_metadata"),
        ({"conv_metadata": {"sum_assistant_a_tokens": -3}}, "conv_metadata.sum_assistant_a_tokens"),
        ({"conv_metadata": {"header_count_b": {"h2": 1.5}}}, "conv_metadata.header_count_b.h2"),
        ({"category_tag": {"math": "yes"}}, "category_tag.math"),
    ],
)
@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_bad_context_names_line_and_field(
    tmp_path: Path, patch: dict[str, Any], field: str, fmt: str
) -> None:
    recs = _records(10)
    recs[6].update(patch)
    path = tmp_path / f"bad.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    else:
        path.write_text(json.dumps(recs))
    with pytest.raises(BattleDataError) as info:
        read_battles(path)
    err = info.value
    assert err.field == field
    assert (err.line == 7) if fmt == "jsonl" else (err.record == 6)


def test_style_control_from_a_log_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lb.json"
    assert main(["ratings", str(FIXTURE), "--style-control", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    tokens = doc["style"]["coefficients"][0]
    assert tokens["feature"] == "answer_tokens" and tokens["lower"] > 0
    assert main(["ratings", str(FIXTURE), "--style-control", "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "Gain most from control:" in table and "lose most:" in table
    # A log without conv_metadata: a clear error, exit 2.
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"model_a": "x", "model_b": "y", "winner": "tie"}) + "\n")
    assert main(["ratings", str(plain), "--style-control"]) == 2
    assert "conv_metadata" in capsys.readouterr().err


def test_language_and_category_filters_on_a_log(tmp_path: Path) -> None:
    recs = _records()
    path = tmp_path / "l.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "o.json"
    assert main(["ratings", str(path), "--language", "german", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["n_battles"] == sum(r["language"] == "German" for r in recs)
    assert main(["ratings", str(path), "--category", "math", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["n_battles"] == sum(k % 5 == 0 for k in range(len(recs)))


def test_plain_reads_can_skip_the_nested_context(tmp_path: Path) -> None:
    recs = _records(50)
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    plain = read_battles(path, with_context=False)
    full = read_battles(path)
    assert plain.style is None and full.style is not None
    np.testing.assert_array_equal(plain.a, full.a)
    np.testing.assert_array_equal(plain.outcome, full.outcome)
