"""An arena whose models are scripted backends: the whole battle flow, real SQLite, no model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from arena import store
from arena.backends.base import GenerationRequest
from arena.backends.scripted import Script, ScriptedBackend
from arena.battles import Arena
from arena.config import Settings
from arena.roster import parse_roster
from arena.sampling import make_policy

TEST_SECRET = "scripted-test-secret-0123456789abcdef"


def scripted_arena(
    tmp_path: Path,
    scripts: dict[str, Script | Callable[[GenerationRequest], Script]],
    *,
    max_concurrency: int = 2,
    **overrides: object,
) -> Arena:
    """An :class:`Arena` on a fresh SQLite file whose roster entries stream ``scripts``."""
    settings = Settings.from_env().with_overrides(
        data_dir=str(tmp_path), db_url="", secret=TEST_SECRET, **overrides
    )
    doc = {
        "models": [
            {
                "name": name,
                "backend": "openai",
                "model": name,
                "base_url": "http://127.0.0.1:9/v1",
                "max_concurrency": max_concurrency,
            }
            for name in scripts
        ]
    }
    roster = parse_roster(doc, path=tmp_path / "roster.toml")
    engine = store.open_engine(settings.resolved_db_url, create_if_empty=True)
    with store.new_session(engine) as session:
        for entry in roster:
            store.upsert_model(
                session=session,
                name=entry.name,
                backend=entry.backend,
                config_hash=entry.config_hash,
            )
    backends = {
        e.name: ScriptedBackend(e, settings=settings, script=scripts[e.name]) for e in roster
    }
    return Arena(
        settings=settings,
        roster=roster,
        engine=engine,
        backends=backends,
        policy=make_policy("uniform", roster.names),
        secret=TEST_SECRET,
    )
