"""Fixtures for backend tests: the real bundled model, loaded once per session, and a real
``transformers serve`` OpenAI-compatible server on a loopback port."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from arena.config import Settings
from arena.roster import Roster, RosterEntry, load_roster

# Model-loading code paths must never reach for the network in tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SERVER_START_TIMEOUT_S = 180.0


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Settings from the environment (ARENA_CACHE_DIR picks where converted weights live)."""
    return Settings.from_env().with_overrides(generation_timeout_s=60.0, backend_retries=1)


@pytest.fixture(scope="session")
def roster() -> Roster:
    """The bundled default roster (three SmolLM2 variants)."""
    try:
        return load_roster()
    except ValueError as exc:
        pytest.skip(f"default roster unusable here: {exc}")


@pytest.fixture(scope="session")
def greedy_entry(roster: Roster) -> RosterEntry:
    return roster["smollm2-135m-greedy"]


@pytest.fixture(scope="session")
def converted_model_dir(greedy_entry: RosterEntry, settings: Settings) -> Path:
    """Load the bundled model once for the session (converting the GGUF on first use)."""
    from arena.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(greedy_entry, settings=settings)
    asyncio.run(backend.load())
    return Path(backend.loaded.source)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def serve_base_url(
    converted_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Start ``transformers serve`` on the converted bundled model; yield its ``/v1`` URL."""
    exe = shutil.which("transformers") or str(Path(sys.executable).parent / "transformers")
    if not Path(exe).exists():
        pytest.skip("the transformers CLI is not installed (pip install 'transformers[serving]')")
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [exe, "serve", str(converted_model_dir), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"transformers serve exited with {proc.returncode}:\n"
                    f"{log_path.read_text(errors='replace')[-3000:]}"
                )
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve not ready after {SERVER_START_TIMEOUT_S}s")
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture()
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers (for read timeouts)."""
    server = socket.create_server(("127.0.0.1", 0))
    port = int(server.getsockname()[1])
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        server.close()


def openai_entry(*, name: str, model: str, base_url: str, **overrides: object) -> RosterEntry:
    """An ``openai`` roster entry built the same way the roster loader builds one."""
    from arena.roster import parse_roster

    table = {"name": name, "backend": "openai", "model": model, "base_url": base_url}
    roster = parse_roster({"models": [{**table, **overrides}]}, path="test-roster.toml")
    return roster.entries[0]


def with_fields(entry: RosterEntry, **changes: Any) -> RosterEntry:
    return replace(entry, **changes)
