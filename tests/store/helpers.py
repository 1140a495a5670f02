"""Building blocks shared by the store tests."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from arena import store

MODELS = ("alpha", "beta", "gamma")
USER = "user-key-1"
OTHER_USER = "user-key-2"


def register_models(engine: Engine, names: tuple[str, ...] = MODELS) -> None:
    """Register roster models through the store's write path."""
    with store.new_session(engine) as s:
        for name in names:
            store.upsert_model(session=s, name=name, backend="openai", config_hash=f"h-{name}")


def make_battle(
    engine: Engine,
    *,
    model_a: str = "alpha",
    model_b: str = "beta",
    mode: str = "anony",
    user_key: str = USER,
    prompt: str | None = "What is 2+2?",
    status: str = "ready",
    error_reason: str | None = None,
) -> str:
    """A battle through the store's write path: created, answered (with a prompt), at
    ``status``.  Returns its id."""
    with store.new_session(engine) as s:
        b = store.create_battle(
            session=s,
            mode=mode,
            model_a=model_a,
            model_b=model_b,
            user_key=user_key,
            pair_probability=1 / 6,
            policy_name="uniform",
            policy_version="1",
        )
        if prompt is not None:
            store.append_message(session=s, battle_id=b.id, turn=1, side="user", content=prompt)
            store.append_message(session=s, battle_id=b.id, turn=1, side="a", content="4")
            store.append_message(session=s, battle_id=b.id, turn=1, side="b", content="Four.")
        if status != "streaming":
            store.set_status(session=s, battle_id=b.id, status=status, error_reason=error_reason)
        return b.id


def vote_on_new_battle(
    engine: Engine,
    winner: str = "model_a",
    *,
    model_a: str = "alpha",
    model_b: str = "beta",
    mode: str = "anony",
    exclusion: str | None = None,
    voted_at: dt.datetime | None = None,
    prompt: str | None = "What is 2+2?",
    user_key: str = USER,
) -> str:
    """A ready battle with its vote (and exclusion reason).  Returns the battle id."""
    bid = make_battle(
        engine, model_a=model_a, model_b=model_b, mode=mode, prompt=prompt, user_key=user_key
    )
    with store.new_session(engine) as s:
        store.record_vote(
            session=s, battle_id=bid, winner=winner, user_key=user_key, voted_at=voted_at
        )
        if exclusion is not None:
            store.mark_exclusion(session=s, battle_id=bid, reason=exclusion)
    return bid


def seed_ready_battles(engine: Engine, ids: list[str], *, user_key: str = USER) -> None:
    """Many ``ready`` battles in one statement: set-up for the concurrency tests, where
    thousands of battles through the one-commit-per-call API would dominate the run time."""
    table = SQLModel.metadata.tables["battle"]
    with engine.begin() as conn:
        model_ids = dict(conn.execute(select(store.Model.name, store.Model.id)).all())
        now = store.utcnow()
        conn.execute(
            insert(table),
            [
                {
                    "id": bid,
                    "mode": "anony",
                    "model_a_id": model_ids["alpha"],
                    "model_b_id": model_ids["beta"],
                    "user_key": user_key,
                    "pair_probability": 1 / 6,
                    "policy_name": "uniform",
                    "policy_version": "1",
                    "created_at": now,
                    "updated_at": now,
                    "status": "ready",
                }
                for bid in ids
            ],
        )


def count(engine: Engine, table: str) -> int:
    """Rows in a table."""
    t = SQLModel.metadata.tables[table]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t)).scalar_one())
