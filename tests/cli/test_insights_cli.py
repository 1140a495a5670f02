"""`arena insights`, and `--metadata` / `--as-of` on `arena ratings` and `arena plots`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from arena.cli import main
from tests.ratings.synthetic_arena import make_arena

DAY = 86400.0
JSON_ROUNDING = 1e-4  # the JSON keeps 4 decimals


@pytest.fixture
def arena_files(tmp_path: Path) -> tuple[Path, Path, dict]:
    """A synthetic log with timestamps over ~10 months, and its metadata CSV."""
    syn = make_arena(seed=606, n_prop=5, spacing=3.0, lag=6.0, slope=22.0, n_battles=12_000)
    rng = np.random.default_rng(606)
    start = dt.datetime(2024, 1, 3, tzinfo=dt.UTC).timestamp()
    ts = np.sort(start + rng.uniform(0, 300 * DAY, len(syn.battles)))
    log = tmp_path / "votes.jsonl"
    names = ("model_a", "model_b", "tie", "tie (bothbad)")
    with log.open("w", encoding="utf-8") as fh:
        for k in range(len(syn.battles)):
            rec = {
                "model_a": syn.battles.models[syn.battles.a[k]],
                "model_b": syn.battles.models[syn.battles.b[k]],
                "winner": names[syn.battles.outcome[k]],
                "tstamp": float(ts[k]),
            }
            fh.write(json.dumps(rec) + "\n")
    meta = tmp_path / "meta.csv"
    lines = ["model,params_b,open_weights,release_date,price_in_per_mtok,price_out_per_mtok,source"]
    for name, m in syn.meta.items():
        price = "1,3" if not m.open_weights else ","
        lines.append(
            f"{name},{m.params_b or ''},{str(m.open_weights).lower()},"
            f"{m.release_date.isoformat()},{price},synthetic"
        )
    meta.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return log, meta, {"lags": syn.true_lags, "front": syn.true_front}


def test_insights_json_contract(arena_files, tmp_path: Path) -> None:
    log, meta, truth = arena_files
    out = tmp_path / "ins.json"
    assert main(["insights", str(log), "--metadata", str(meta), "--rounds", "200",
                 "--out", str(out)]) == 0  # fmt: skip
    doc = json.loads(out.read_text())
    assert {"pareto_params", "open_lag_months", "frontier", "pareto_price"} <= set(doc)
    lag = doc["open_lag_months"]
    assert {"estimate", "lower", "upper", "points"} <= set(lag)
    true_lag = float(np.median(truth["lags"]))
    assert lag["lower"] - JSON_ROUNDING <= true_lag <= lag["upper"] + JSON_ROUNDING
    assert {r["model"] for r in doc["pareto_params"]} == truth["front"]
    assert all({"model", "params_b", "rating", "p_front"} <= set(r) for r in doc["pareto_params"])
    assert {"all", "open"} <= set(doc["frontier"])
    assert doc["frontier"]["all"]["gain_per_month_last_third"]["estimate"] is not None
    assert all(r["model"].startswith("prop-") for r in doc["pareto_price"])
    # Same log, options and seed: byte-identical output.
    again = tmp_path / "again.json"
    assert main(["insights", str(log), "--metadata", str(meta), "--rounds", "200",
                 "--out", str(again)]) == 0  # fmt: skip
    assert again.read_bytes() == out.read_bytes()


def test_insights_bootstrap_table_and_md(arena_files, capsys: pytest.CaptureFixture[str]) -> None:
    log, meta, _ = arena_files
    assert main(["insights", str(log), "--metadata", str(meta), "--ci", "bootstrap",
                 "--rounds", "60", "--no-progress", "--format", "md"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "### Open vs proprietary" in out and "Median lag of open-weights records" in out
    assert "60 rounds" in out


def test_bad_metadata_exits_2_naming_the_line(arena_files, tmp_path: Path, capsys) -> None:
    log, _, _ = arena_files
    bad = tmp_path / "bad.csv"
    bad.write_text("model,params_b,release_date\nprop-0,,2024-02-30\n", encoding="utf-8")
    assert main(["insights", str(log), "--metadata", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "line 2, column 'release_date'" in err and "Traceback" not in err
    bad.write_text("model,size_b\nprop-0,7\n", encoding="utf-8")
    assert main(["ratings", str(log), "--metadata", str(bad)]) == 2
    assert "column 'size_b'" in capsys.readouterr().err


def test_unmatched_metadata_warns(arena_files, tmp_path: Path, capsys) -> None:
    log, meta, _ = arena_files
    extra = tmp_path / "extra.csv"
    extra.write_text(meta.read_text() + "prop-9,,false,2025-01-01,,,x\n", encoding="utf-8")
    assert main(["ratings", str(log), "--metadata", str(extra), "--format", "csv"]) == 0
    captured = capsys.readouterr()
    n_lines = len(extra.read_text().splitlines())
    assert f"line {n_lines}: metadata for 'prop-9' matches no model" in captured.err
    header = captured.out.splitlines()[0].split(",")
    assert header[-5:] == [
        "params_b", "open_weights", "release_date", "price_in_per_mtok", "price_out_per_mtok",
    ]  # fmt: skip


def test_insights_needs_metadata(arena_files, capsys) -> None:
    log, _, _ = arena_files
    assert main(["insights", str(log)]) == 2
    assert "needs --metadata" in capsys.readouterr().err


def test_as_of_rates_only_earlier_votes(arena_files, tmp_path: Path) -> None:
    log, _, _ = arena_files
    full, early = tmp_path / "full.json", tmp_path / "early.json"
    assert main(["ratings", str(log), "--out", str(full)]) == 0
    assert main(["ratings", str(log), "--as-of", "2024-04-01", "--out", str(early)]) == 0
    n_before = sum(
        json.loads(line)["tstamp"] < dt.datetime(2024, 4, 1, tzinfo=dt.UTC).timestamp()
        for line in log.read_text().splitlines()
    )
    assert json.loads(early.read_text())["n_battles"] == n_before
    assert json.loads(full.read_text())["n_battles"] > n_before


@pytest.mark.slow
def test_plots_write_history_and_insight_pngs(arena_files, tmp_path: Path) -> None:
    log, meta, _ = arena_files
    out = tmp_path / "png"
    assert main(["plots", str(log), "--metadata", str(meta), "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    for name in ("history.png", "capability_density.png", "open_gap.png", "price.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name


def test_roster_toml_as_metadata(arena_files, tmp_path: Path, capsys) -> None:
    log, _, truth = arena_files
    syn = make_arena(seed=606, n_prop=5, spacing=3.0, lag=6.0, slope=22.0, n_battles=10)
    lines = []
    for name, m in syn.meta.items():
        lines += ["[[models]]", f'name = "{name}"', 'backend = "openai"', f'model = "{name}"',
                  'base_url = "http://h/v1"', f"open_weights = {str(m.open_weights).lower()}",
                  f"release_date = {m.release_date.isoformat()}"]  # fmt: skip
        if m.params_b is not None:
            lines.append(f"params_b = {m.params_b}")
    roster = tmp_path / "roster.toml"
    roster.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["insights", str(log), "--metadata", str(roster), "--format", "json",
                 "--rounds", "200"]) == 0  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    assert {r["model"] for r in doc["pareto_params"]} == truth["front"]
    roster.write_text('[[models]]\nname = "x"\nbackend = "openai"\nmodel = "x"\n', "utf-8")
    assert main(["insights", str(log), "--metadata", str(roster)]) == 2
    assert "models[0] ('x'), key 'base_url'" in capsys.readouterr().err
