"""Exporters: formats are well-formed and byte-for-byte reproducible."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from ratings.export import FORMATS, format_leaderboard
from ratings.leaderboard import RatingOptions, compute_leaderboard
from ratings.plots import write_plots

from .helpers import simulate


@pytest.fixture(scope="module")
def board():  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    battles = simulate(np.array([0.8, 0.1, -0.2, -0.7]), 2000, rng, tie_rate=0.3)
    return battles, compute_leaderboard(battles, RatingOptions(ci="bootstrap", rounds=100))


def test_json_shape(board) -> None:  # type: ignore[no-untyped-def]
    _, lb = board
    doc = json.loads(format_leaderboard(lb, "json"))
    assert doc["method"] == "bt" and doc["ci"] == "bootstrap" and doc["n_battles"] == 2000
    keys = {"model", "rating", "lower", "upper", "rank", "rank_upper", "battles", "wins",
            "ties", "losses"}  # fmt: skip
    assert keys <= set(doc["models"][0])
    ratings = [m["rating"] for m in doc["models"]]
    assert ratings == sorted(ratings, reverse=True)


def test_csv_md_html_table(board) -> None:  # type: ignore[no-untyped-def]
    _, lb = board
    rows = list(csv.DictReader(io.StringIO(format_leaderboard(lb, "csv"))))
    assert len(rows) == 4 and rows[0]["model"] == lb.rows[0].model
    md = format_leaderboard(lb, "md")
    assert md.splitlines()[0].startswith("| Rank |")
    assert sum(line.startswith("| ") for line in md.splitlines()) == 5  # header + 4 models
    html = format_leaderboard(lb, "html")
    assert html.count("<tr>") == 5 and "<caption>" in html
    assert lb.rows[0].model in format_leaderboard(lb, "table")
    with pytest.raises(ValueError, match="unknown format"):
        format_leaderboard(lb, "xlsx")


def test_same_input_options_seed_give_identical_bytes(board) -> None:  # type: ignore[no-untyped-def]
    battles, lb = board
    again = compute_leaderboard(battles, RatingOptions(ci="bootstrap", rounds=100))
    for fmt in FORMATS:
        assert format_leaderboard(lb, fmt) == format_leaderboard(again, fmt)
    other_seed = compute_leaderboard(battles, RatingOptions(ci="bootstrap", rounds=100, seed=1))
    assert format_leaderboard(other_seed, "json") != format_leaderboard(lb, "json")


def test_plots_are_png(board, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, lb = board
    files = write_plots(lb, tmp_path, {"m00": 7.0, "m01": 70.0})
    assert {f.name for f in files} == {
        "ratings_ci.png", "win_rate_heatmap.png", "battle_count_heatmap.png", "rating_vs_size.png",
        "predicted_win_rate_heatmap.png",
    }  # fmt: skip
    for f in files:
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f.stat().st_size > 5000
