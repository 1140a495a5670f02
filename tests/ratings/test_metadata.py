"""Metadata CSV: every bad input names the line and the column."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ratings.metadata import MetadataError, match_metadata, read_metadata_csv

HEADER = (
    "model,params_b,active_params_b,open_weights,release_date,"
    "price_in_per_mtok,price_out_per_mtok,source\n"
)


def _write(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "meta.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


def test_reads_values_and_empty_cells(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "Mixtral,46.7,12.9,yes,2023-12,,,model card\nGPT 4,,,false,2023-03-14,30,60,paper\n",
    )
    meta = read_metadata_csv(path)
    assert meta["Mixtral"].effective_params_b == 12.9
    assert meta["Mixtral"].release_date == dt.date(2023, 12, 1)
    assert meta["Mixtral"].blended_price is None
    assert meta["GPT 4"].open_weights is False and meta["GPT 4"].params_b is None
    assert meta["GPT 4"].blended_price == pytest.approx(0.75 * 30 + 0.25 * 60)


@pytest.mark.parametrize(
    ("body", "header", "match"),
    [
        (
            "a,1,,yes,2023-01-01,,,x\n",
            "model,params_b,parameters\n",
            r"line 1, column 'parameters'",
        ),
        ("a,1,,yes,2023-13-01,,,x\n", HEADER, r"line 2, column 'release_date': expected a date"),
        (
            "a,-7,,yes,2023-01-01,,,x\nb,1,,,,,,\n",
            HEADER,
            r"line 2, column 'params_b': must be > 0",
        ),
        ("a,1,,yes,,,,x\nb,0,,no,,,,x\n", HEADER, r"line 3, column 'params_b'"),
        ("a,1,,maybe,,,,x\n", HEADER, r"line 2, column 'open_weights'"),
        ("a,1,,,,-1,,x\n", HEADER, r"line 2, column 'price_in_per_mtok': must be >= 0"),
        ("a,1,2,,,,,x\n", HEADER, r"line 2, column 'active_params_b': .*exceeds params_b"),
        (
            "a,1,,,,,,x\na,2,,,,,,y\n",
            HEADER,
            r"line 3, column 'model': duplicate model 'a' \(also line 2\)",
        ),
        ("a,1,,\n", HEADER, r"line 2: expected 8 fields, got 4"),
        ("", "params_b,open_weights\n", r"line 1: no 'model' column"),
    ],
)
def test_bad_input_names_line_and_column(
    tmp_path: Path, body: str, header: str, match: str
) -> None:
    with pytest.raises(MetadataError, match=match):
        read_metadata_csv(_write(tmp_path, body, header))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="file not found"):
        read_metadata_csv(tmp_path / "nope.csv")


def test_unmatched_names_warn_with_their_line(tmp_path: Path) -> None:
    meta = read_metadata_csv(_write(tmp_path, "GPT-4,,,no,,,,x\nLlama,7,,yes,,,,x\n"))
    kept, warnings = match_metadata(meta, ["GPT 4", "Llama", "Other"])
    assert set(kept) == {"Llama"}
    assert any("line 2" in w and "'GPT-4'" in w and "did you mean 'GPT 4'" in w for w in warnings)
    assert any("have no metadata" in w and "Other" in w for w in warnings)
