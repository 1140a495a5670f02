"""``arena ratings --db --reweight``: each vote weighs 1 / its pair's draw probability."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arena import store
from arena.cli import main


def _vote(session: object, a: str, b: str, p: float, winner: str) -> None:
    battle = store.create_battle(
        session=session,
        mode="anony",
        model_a=a,
        model_b=b,
        user_key="k",
        pair_probability=p,
        policy_name="active",
        policy_version="2-test",
    )
    store.append_message(session=session, battle_id=battle.id, turn=1, side="user", content="q")
    for side in ("a", "b"):
        store.append_message(session=session, battle_id=battle.id, turn=1, side=side, content="x")
    store.set_status(session=session, battle_id=battle.id, status="ready")
    store.record_vote(session=session, battle_id=battle.id, winner=winner, user_key="k")


def test_reweight_undoes_unequal_exposure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'arena.db'}"
    engine = store.open_engine(url, create_if_empty=True)
    with store.new_session(engine) as s:
        for name in ("x", "y"):
            store.upsert_model(session=s, name=name, backend="openai")
        # x won 4 battles drawn often (p = 0.4); y won 1 battle drawn rarely (p = 0.05).
        for _ in range(4):
            _vote(s, "x", "y", 0.4, "model_a")
        _vote(s, "x", "y", 0.05, "model_b")
    engine.dispose()

    def ratings(*extra: str) -> dict[str, float]:
        out = tmp_path / "lb.json"
        assert main(["ratings", "--db", url, "--ci", "none", "--out", str(out), *extra]) == 0
        return {m["model"]: m["rating"] for m in json.loads(out.read_text())["models"]}

    plain = ratings()
    assert plain["x"] > plain["y"]  # 4 wins to 1
    weighted = ratings("--reweight")
    # Weights 2.5 each for x's wins vs 20 for y's: y's rare win counts double x's four.
    assert weighted["y"] > weighted["x"]
    log = tmp_path / "b.jsonl"
    log.write_text('{"model_a": "x", "model_b": "y", "winner": "model_a"}\n')
    assert main(["ratings", str(log), "--reweight"]) == 2
    assert "--reweight needs the pair probabilities" in capsys.readouterr().err
