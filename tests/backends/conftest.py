"""Fixtures for backend tests: the real bundled model, loaded once per session, a real
``transformers serve`` OpenAI-compatible server on a loopback port, and a small recording,
fault-injecting HTTP proxy that sits in front of that real server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from arena.config import Settings
from arena.roster import Roster, RosterEntry, load_roster
from tests.processes import free_port

# A prompt that makes the model talk for a long time, for cancellation and timeouts.
LONG_PROMPT = "Write a long story about a dragon who learns to bake bread. Use many details."
STOP_WITHIN_S = 1.0  # the bound on stopping a generation


async def timed_stream(backend: Any, request: Any) -> tuple[list[tuple[float, str]], Any, float]:
    """Consume one stream: (seconds since start, text) per delta, the final stats, total s."""
    from arena.backends import TextDelta

    arrivals: list[tuple[float, str]] = []
    stats = None
    t0 = time.monotonic()
    async for event in backend.stream(request):
        if isinstance(event, TextDelta):
            arrivals.append((time.monotonic() - t0, event.text))
        else:
            stats = event
    assert stats is not None, "the stream ended without its stats"
    return arrivals, stats, time.monotonic() - t0


# Model-loading code paths must never reach for the network in tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SERVER_START_TIMEOUT_S = 180.0
# One intra-op thread per process.  The test machine has two cores shared with other jobs (and
# with the `transformers serve` child); with two OpenMP threads each decoding step spin-waits
# on a busy core and took 0.3-1.3 s instead of ~0.07 s, which made "stops within 1 s"
# depend on the neighbours' load rather than on the code under test.
TORCH_THREADS = 1


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(TORCH_THREADS)


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
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": str(TORCH_THREADS),
    }
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


@dataclass
class SilentServer:
    """A TCP server that accepts connections and never answers (for read timeouts)."""

    port: int
    connections: list[socket.socket] = field(default_factory=list)


@pytest.fixture()
def silent_server() -> Iterator[SilentServer]:
    """A :class:`SilentServer` on a loopback port; counts the connections it accepted."""
    server = socket.create_server(("127.0.0.1", 0))
    silent = SilentServer(port=int(server.getsockname()[1]))
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
            silent.connections.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield silent
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in silent.connections:
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


@dataclass
class ProxiedRequest:
    """What the proxy saw of one request."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FaultProxy:
    """A loopback HTTP proxy in front of the real ``transformers serve``.

    It records every request (headers and JSON body) and can inject the faults a model server
    really produces: answer the first ``fail_first`` requests with ``fail_status``, or drop
    the connection after forwarding ``drop_after`` text chunks.  Everything else is the real
    server's answer, forwarded chunk by chunk as it streams.
    """

    upstream: str
    port: int = 0
    fail_first: int = 0
    fail_status: int = 503
    drop_after: int | None = None
    requests: list[ProxiedRequest] = field(default_factory=list)
    client_gone: threading.Event = field(default_factory=threading.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def _proxy_handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            proxy.requests.append(
                ProxiedRequest(
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=json.loads(raw or b"{}"),
                )
            )
            if len(proxy.requests) <= proxy.fail_first:
                payload = json.dumps({"error": {"message": "injected failure"}}).encode()
                self.send_response(proxy.fail_status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            url = proxy.upstream + self.path
            headers = {"Content-Type": "application/json"}
            with (
                httpx.Client(timeout=httpx.Timeout(60.0)) as client,
                client.stream("POST", url, content=raw, headers=headers) as r,
            ):
                self.send_response(r.status_code)
                self.send_header("Content-Type", r.headers.get("content-type", "text/plain"))
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                sent = 0
                try:
                    for line in r.iter_lines():
                        if proxy.drop_after is not None and sent >= proxy.drop_after:
                            # Mid-body drop: no terminating chunk, so the client sees a
                            # truncated response, as when a server process dies.
                            self.close_connection = True
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return
                        self._chunk((line + "\n").encode())
                        if '"content"' in line:
                            sent += 1
                    self._chunk(b"")
                except OSError:  # the client went away: stop reading upstream
                    proxy.client_gone.set()
                    self.close_connection = True

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


@pytest.fixture()
def fault_proxy(serve_base_url: str) -> Iterator[FaultProxy]:
    """A :class:`FaultProxy` in front of the session's ``transformers serve``."""
    upstream = serve_base_url.removesuffix("/v1")
    proxy = FaultProxy(upstream=upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _proxy_handler(proxy))
    server.daemon_threads = True
    proxy.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    return free_port()
