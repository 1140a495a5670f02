"""`arena ratings` and `arena plots` through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from arena.cli import main


@pytest.fixture
def log(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    strengths = {"alpha": 0.9, "beta": 0.2, "gamma": -0.1, "delta": -1.0}
    names = list(strengths)
    path = tmp_path / "battles.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for t in range(1500):
            a, b = rng.choice(4, size=2, replace=False)
            p = 1 / (1 + np.exp(-(strengths[names[a]] - strengths[names[b]])))
            u = rng.random()
            winner = "tie" if u < 0.25 else ("model_a" if rng.random() < p else "model_b")
            rec = {"model_a": names[a], "model_b": names[b], "winner": winner,
                   "judge": f"u{t % 40}", "question_id": f"q{t % 90}",
                   "tstamp": float(t)}  # fmt: skip
            fh.write(json.dumps(rec) + "\n")
    return path


def test_table_on_stdout(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ratings", str(log)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].split()[3] == "alpha"
    assert "Bradley-Terry" in out and "1500 battles" in out


def test_json_output_contract(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "lb.json"
    code = main(["ratings", str(log), "--ci", "bootstrap", "--rounds", "50", "--out", str(out),
                 "--no-progress"])  # fmt: skip
    assert code == 0
    doc = json.loads(out.read_text())
    assert (doc["method"], doc["ci"], doc["n_battles"]) == ("bt", "bootstrap", 1500)
    assert [m["model"] for m in doc["models"]] == ["alpha", "beta", "gamma", "delta"]


@pytest.mark.parametrize("fmt", ["csv", "json", "md", "html", "table"])
def test_exports_are_byte_identical_across_runs(log: Path, tmp_path: Path, fmt: str) -> None:
    args = ["ratings", str(log), "--ci", "bootstrap", "--rounds", "60", "--seed", "3",
            "--cluster-by", "judge", "--format", fmt, "--no-progress"]  # fmt: skip
    first, second = tmp_path / "a", tmp_path / "b"
    assert main([*args, "--out", str(first)]) == 0
    assert main([*args, "--out", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize(("alias", "column"), [("user", "judge"), ("prompt", "question_id")])
def test_cluster_by_takes_the_design_names_as_aliases(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], alias: str, column: str
) -> None:
    docs = []
    for value in (alias, column):
        out = tmp_path / f"{value}.json"
        assert main(["ratings", str(log), "--cluster-by", value, "--out", str(out),
                     "--no-progress"]) == 0  # fmt: skip
        docs.append(out.read_bytes())
    assert docs[0] == docs[1]
    assert json.loads(docs[0])["cluster_by"] == column
    with pytest.raises(SystemExit) as info:
        main(["ratings", str(log), "--cluster-by", "voter"])
    assert info.value.code == 2
    assert "invalid choice 'voter'" in capsys.readouterr().err


def test_anchor_min_battles_and_elo(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ratings", str(log), "--anchor", "beta=1114", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert next(m for m in doc["models"] if m["model"] == "beta")["rating"] == 1114.0
    assert main(["ratings", str(log), "--method", "elo", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["method"] == "elo" and doc["ci"] == "none"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("", "empty"),
        ('{"model_a":"a","model_b":"b"}\n', "line 1, field 'winner'"),
        ('{"model_a":"a","model_b":"b","winner":"a"}\n', "line 1, field 'winner': unknown"),
        ('{"model_a":"a","model_b":"a","winner":"tie"}\n', "plays itself"),
    ],
)
def test_bad_input_exits_2_naming_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, words: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    assert main(["ratings", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and words in err and "Traceback" not in err


def test_bad_option_combinations_exit_2(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ratings", str(log), "--method", "elo", "--ci", "sandwich"]) == 2
    assert "only for --method bt" in capsys.readouterr().err
    assert main(["ratings", str(log), "--anchor", "nobody=1000"]) == 2
    assert main(["ratings"]) == 2
    with pytest.raises(SystemExit) as info:
        main(["ratings", str(log), "--anchor", "oops"])
    assert info.value.code == 2


def test_plots_command(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "plots"
    assert main(["plots", str(log), "--out", str(out)]) == 0
    # The log has timestamps, so the monthly rating history comes too.
    assert sorted(p.name for p in out.iterdir()) == [
        "battle_count_heatmap.png", "history.png", "predicted_win_rate_heatmap.png",
        "ratings_ci.png", "win_rate_heatmap.png",
    ]  # fmt: skip


def test_db_source_without_schema_or_server_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from arena.cli import main

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert main(["ratings", "--db", url]) == 2
    assert f"run `arena db upgrade --db {url}`" in capsys.readouterr().err
    assert main(["ratings", "--db", "postgresql+psycopg://u@127.0.0.1:1/x"]) == 2
    err = capsys.readouterr().err
    assert "arena: error: postgresql+psycopg://u@127.0.0.1:1/x" in err and "refused" in err
    assert "Traceback" not in err


def test_fisher_with_clusters_exits_2_and_says_why(
    log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ratings", str(log), "--ci", "fisher", "--cluster-by", "judge"]) == 2
    err = capsys.readouterr().err
    assert "fisher cannot honour --cluster-by" in err and "Traceback" not in err


def test_json_has_rank_confidence_and_optional_matrices(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "lb.json"
    args = ["ratings", str(log), "--ci", "bootstrap", "--rounds", "120", "--no-progress"]
    assert main([*args, "--out", str(out), "--matrices"]) == 0
    doc = json.loads(out.read_text())
    models = doc["models"]
    assert sum(m["p_rank1"] for m in models) == pytest.approx(1.0, abs=1e-3)
    assert all(m["rank_ci_best"] <= m["rank_ci_worst"] for m in models)
    assert [m["rating_order"] for m in models] == [1, 2, 3, 4]
    mat = doc["matrices"]
    k = {name: i for i, name in enumerate(mat["models"])}
    pred = mat["predicted_win_rate"]
    assert pred[k["alpha"]][k["delta"]] > 0.5 > pred[k["delta"]][k["alpha"]]
    assert pred[k["alpha"]][k["delta"]] + pred[k["delta"]][k["alpha"]] == pytest.approx(1.0)
    assert mat["p_rated_above"][k["alpha"]][k["delta"]] == 1.0
    assert main([*args, "--format", "csv", "--matrices"]) == 2


def test_exclude_flagged_keeps_the_readers_notes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(11)
    strengths = {"alpha": 1.0, "beta": 0.0, "gamma": -1.0}
    names = list(strengths)
    path = tmp_path / "mixed.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for t in range(900):
            a, b = rng.choice(3, size=2, replace=False)
            p = 1 / (1 + np.exp(-(strengths[names[a]] - strengths[names[b]])))
            judge = "troll" if t % 10 == 0 else f"u{t % 30}"
            good = rng.random() < p
            if judge == "troll":  # always votes for the weaker model
                good = strengths[names[a]] < strengths[names[b]]
            rec = {"model_a": names[a], "model_b": names[b],
                   "winner": "model_a" if good else "model_b", "judge": judge,
                   "anony": t % 50 != 1}  # fmt: skip
            fh.write(json.dumps(rec) + "\n")
    out = tmp_path / "lb.json"
    assert main(["ratings", str(path), "--exclude-flagged", "--out", str(out)]) == 0
    notes = json.loads(out.read_text())["notes"]
    assert any(n.startswith("left out 18 named") for n in notes), notes
    assert any("--exclude-flagged left out 90 votes of 1 flagged voters" in n for n in notes)
