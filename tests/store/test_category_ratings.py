"""`arena ratings --db` with --category, --language, --by category and --style-control, on
a real database whose battles were stored, voted and tagged through the store (SQLite; the
PostgreSQL reads of battle_features are covered by test_features_store.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.engine import Engine

from arena import store
from arena.cli import main
from arena.features import Tagger, backfill_style

from .helpers import MODELS, register_models

pytestmark = pytest.mark.slow  # builds a 160-battle database through the store: ~25 s

PROMPTS = {
    "coding": ("Write a Python function that reverses a linked list.", "en"),
    "math": ("Solve 3x + 7 = 22 and explain each step.", "en"),
    "german": ("Erzähl mir bitte eine kurze Geschichte über einen Drachen.", "de"),
    "plain": ("Tell me a short story about a dragon and a knight.", "en"),
}


N = 160


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One SQLite database for the module (built once: a battle is five commits)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('category') / 'arena.db'}"
    eng = store.open_engine(url, check=False)
    store.upgrade(eng)
    eng.dispose()
    yield url


@pytest.fixture(scope="module")
def tagged(db_url: str) -> Iterator[Engine]:
    """160 voted battles among three models; alpha wins coding, gamma wins German prompts,
    and side a writes longer, bolder answers."""
    populated = store.open_engine(db_url)
    register_models(populated, MODELS)
    rng = np.random.default_rng(31)
    kinds = list(PROMPTS)
    with store.new_session(populated) as s:
        for k in range(N):
            a, b = rng.choice(3, size=2, replace=False)
            kind = kinds[k % 4]
            bt = store.create_battle(session=s, mode="anony", model_a=MODELS[a],
                                     model_b=MODELS[b], user_key=f"u{k % 30}",
                                     pair_probability=1 / 6, policy_name="uniform",
                                     policy_version="1")  # fmt: skip
            store.append_message(session=s, battle_id=bt.id, turn=1, side="user",
                                 content=f"{PROMPTS[kind][0]} ({k})")  # fmt: skip
            long = "**Answer.**\n\n" + "\n".join(
                f"- point {i}" for i in range(int(rng.integers(1, 6)))
            )
            store.append_message(session=s, battle_id=bt.id, turn=1, side="a", content=long,
                                 token_count=int(rng.integers(100, 400)))  # fmt: skip
            store.append_message(session=s, battle_id=bt.id, turn=1, side="b", content="Short.",
                                 token_count=int(rng.integers(10, 120)))  # fmt: skip
            store.set_status(session=s, battle_id=bt.id, status="ready")
            strength = {"alpha": 0.0, "beta": 0.3, "gamma": 0.0}
            if kind == "coding":
                strength["alpha"] = 1.5
            if kind == "german":
                strength["gamma"] = 1.5
            d = strength[MODELS[a]] - strength[MODELS[b]]
            winner = "model_a" if rng.random() < 1 / (1 + np.exp(-d)) else "model_b"
            store.record_vote(session=s, battle_id=bt.id, winner=winner, user_key=f"u{k % 30}")
    assert backfill_style(engine=populated, tagger=Tagger(("English", "German"))) == N
    yield populated
    populated.dispose()


def _json(args: list[str], tmp_path: Path) -> dict:
    out = tmp_path / "out.json"
    assert main([*args, "--format", "json", "--out", str(out), "--no-progress"]) == 0
    return json.loads(out.read_text())


def test_category_and_language_filters(tagged: Engine, db_url: str, tmp_path: Path) -> None:
    coding = _json(["ratings", "--db", db_url, "--category", "coding"], tmp_path)
    assert coding["n_battles"] == N // 4 and coding["models"][0]["model"] == "alpha"
    assert any(n.startswith(f"--category coding: kept {N // 4} of {N}") for n in coding["notes"])
    german = _json(["ratings", "--db", db_url, "--language", "german"], tmp_path)
    assert german["n_battles"] == N // 4 and german["models"][0]["model"] == "gamma"


def test_filters_that_match_nothing_exit_2(
    tagged: Engine, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ratings", "--db", db_url, "--language", "Klingon"]) == 2
    err = capsys.readouterr().err
    assert "no battles in language 'Klingon'" in err and "German" in err
    assert main(["ratings", "--db", db_url, "--category", "hard_prompt"]) == 2
    assert "needs a judge model" in capsys.readouterr().err


def test_by_category(tagged: Engine, db_url: str, tmp_path: Path,
                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    doc = _json(["ratings", "--db", db_url, "--by", "category"], tmp_path)
    assert set(doc["categories"]) == {"coding", "math"}
    alpha = next(m for m in doc["models"] if m["model"] == "alpha")
    coding = alpha["categories"]["coding"]
    assert coding["rank"] == 1 and coding["change"] == alpha["overall"] - 1
    assert main(["ratings", "--db", db_url, "--by", "category", "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert f"coding ({N // 4})" in table and f"math ({N // 4})" in table and "Overall" in table


def test_style_control_from_the_database(tagged: Engine, db_url: str, tmp_path: Path) -> None:
    doc = _json(["ratings", "--db", db_url, "--style-control"], tmp_path)
    assert doc["style_control"] is True
    feats = [c["feature"] for c in doc["style"]["coefficients"]]
    assert feats == ["answer_tokens", "headers", "lists", "bold"]
    assert all(c["lower"] <= c["estimate"] <= c["upper"] for c in doc["style"]["coefficients"])
