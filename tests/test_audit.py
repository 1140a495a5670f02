"""``arena audit`` on a battle log and on a database, and ``--apply`` feeding ``ratings --db``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arena.cli import main
from tests.test_attack import MODELS, simulate


@pytest.fixture(scope="module")
def attack_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sim = simulate()
    path = tmp_path_factory.mktemp("audit") / "battles.jsonl"
    with path.open("w") as f:
        for i, (a, b, w, j) in enumerate(
            zip(sim["a"], sim["b"], sim["winner"], sim["judge"], strict=True)
        ):
            rec = {
                "question_id": f"q{i}",
                "model_a": MODELS[a],
                "model_b": MODELS[b],
                "winner": str(w),
                "judge": str(j),
                "anony": True,
                "tstamp": 1.7e9 + i,
            }
            f.write(json.dumps(rec) + "\n")
    return path


def test_audit_of_a_log_flags_the_attacker(
    attack_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", str(attack_log)]) == 0
    out = capsys.readouterr().out
    assert "votes: 20,500" in out
    flagged = out.split("flagged voters")[1].split("rating robustness")[0]
    assert "attacker: voter_model -> anomalous_voter; excess wins for model6: won 500 of 500" in (
        flagged
    )
    assert flagged.count("decisive") == 1  # one voter flagged, and only the attacker
    assert "comparison graph: connected" in out
    assert "a log holds votes only" in out


@pytest.mark.slow
def test_audit_apply_excludes_flagged_votes_from_db_ratings(
    attack_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'arena.db'}"
    assert main(["db", "upgrade", "--db", url]) == 0
    assert main(["import", "battles", str(attack_log), "--db", url]) == 0
    capsys.readouterr()
    assert main(["audit", "--db", url, "--apply"]) == 0
    captured = capsys.readouterr()
    assert "marked 500 votes as anomalous_voter" in captured.err
    assert "attacker" in captured.out
    # Applied exclusions are typed, kept, and honoured by ratings --db by default.
    assert main(["audit", "--db", url]) == 0
    assert "anomalous_voter: 500" in capsys.readouterr().out
    out = tmp_path / "lb.json"
    assert main(["ratings", "--db", url, "--no-progress", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["n_battles"] == 20_000
    assert (
        main(["ratings", "--db", url, "--include-excluded", "--no-progress", "--out", str(out)])
        == 0
    )
    assert json.loads(out.read_text())["n_battles"] == 20_500
    # An export keeps the reasons: the log's audit and ratings honour them the same way.
    log = tmp_path / "export.jsonl"
    assert main(["export", "battles", "--db", url, "--out", str(log)]) == 0
    capsys.readouterr()
    assert main(["audit", str(log)]) == 0
    assert "anomalous_voter: 500" in capsys.readouterr().out
    assert main(["ratings", str(log), "--no-progress", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["n_battles"] == 20_000


@pytest.mark.parametrize(("named", "anonymous"), [(1, 3), (4, 0)])
def test_audit_of_a_log_counts_named_and_excluded_votes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], named: int, anonymous: int
) -> None:
    pairs = [("a", "b"), ("b", "c"), ("c", "a"), ("a", "c")]
    recs = [
        {"model_a": x, "model_b": y, "winner": "tie", "anony": i >= named,
         "exclusion": "identity_leak" if i == 3 else None}
        for i, (x, y) in enumerate(pairs)
    ]  # fmt: skip
    log = tmp_path / "mixed.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert main(["audit", str(log)]) == 0
    out = capsys.readouterr().out
    assert f"votes: 4 ({anonymous} anonymous)" in out
    assert "identity_leak: 1" in out and "(counted): 3" in out


def test_audit_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit"]) == 2
    assert "no SOURCE given" in capsys.readouterr().err
    log = tmp_path / "x.jsonl"
    log.write_text('{"model_a": "a", "model_b": "b", "winner": "nobody"}\n')
    assert main(["audit", str(log)]) == 2
    err = capsys.readouterr().err
    assert "line 1" in err and "winner" in err
    assert main(["audit", str(log), "--apply"]) == 2
