"""Real processes for the integration tests: stub model servers, the app, raw Gradio calls.

Everything here starts real subprocesses on loopback (``benchmarks/stream_server.py`` as the
model servers, ``python app.py`` as the arena) and talks to them over HTTP, either through
Gradio's own client (one browser session per :class:`gradio_client.Client`) or with raw
``httpx`` requests to Gradio's queue and REST routes, skipping the UI and the client library.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from gradio_client import Client
from sqlalchemy import create_engine, text

from tests.processes import (
    REPO_ROOT,
    free_port,
    log_tail,
    running_app,
    stop_process,
    wait_until_serving,
)

STEP_TIMEOUT_S = 30.0

# Outputs as gradio_client returns them (State outputs are dropped): chat A, chat B, status,
# four vote buttons[, prompt box].  Raw API replies keep the State slot (null) at index 2.
STATUS = 2
RAW_STATUS = 3
VOTE_NAMES = ("a", "b", "tie", "bothbad")
WINNERS = {"a": "model_a", "b": "model_b", "tie": "tie", "bothbad": "tie (bothbad)"}
READY_TEXT = "Both answers are in"
RECORDED_TEXT = "✅ Vote recorded."
DB_DOWN_TEXT = "The database is briefly unavailable, so nothing was recorded."

# ------------------------------------------------------------------------------------------
# model servers


@dataclass
class StubServer:
    """One ``benchmarks/stream_server.py`` process (an OpenAI-compatible streaming server)."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def kill(self) -> None:
        """SIGKILL: the server dies mid-stream, its connections drop."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)


@contextlib.contextmanager
def stub_server(
    workdir: Path, *, tokens: int, delay: float, reply: str | None = None
) -> Iterator[StubServer]:
    """A streaming model server on a free loopback port: ``tokens`` words, ``delay`` s apart
    (or the fixed ``reply`` text, word by word)."""
    port = free_port()
    log_path = workdir / f"stub-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO_ROOT / "benchmarks" / "stream_server.py"),
                "--port",
                str(port),
                "--tokens",
                str(tokens),
                "--delay",
                str(delay),
                *(["--reply", reply] if reply is not None else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = StubServer(f"http://127.0.0.1:{port}/v1", proc, log_path)
    try:
        wait_until_serving(proc, server.base_url + "/models", log_path, "stub server")
        yield server
    finally:
        stop_process(proc)


def write_roster(path: Path, entries: Iterable[tuple[str, str]]) -> Path:
    """A roster of ``openai`` entries, each ``(name, base_url)``; distinct temperatures keep
    the entries distinct configurations."""
    blocks = []
    for i, (name, base_url) in enumerate(entries):
        blocks.append(
            f'[[models]]\nname = "{name}"\nbackend = "openai"\nmodel = "stub"\n'
            f'base_url = "{base_url}"\ntemperature = {0.1 * i:.1f}\nmax_new_tokens = 64\n'
            "max_concurrency = 64\n"
        )
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------
# the app


@dataclass
class App:
    """A running ``python app.py``."""

    url: str
    db_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    model_names: tuple[str, ...]

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def client(self, headers: Mapping[str, str] | None = None) -> Client:
        """A new browser session (gradio_client), optionally sending extra headers."""
        return Client(self.url, verbose=False, headers=dict(headers or {}))

    def fn_index(self, api_name: str) -> int:
        """The dependency index of an API route, read from the app's own /config."""
        config = httpx.get(self.url + "/config", timeout=10, trust_env=False).json()
        for dep in config["dependencies"]:
            if dep.get("api_name") == api_name:
                return int(dep["id"])
        raise KeyError(api_name)

    def rows(self, sql: str, **params: Any) -> list[Any]:
        """Read the app's database directly."""
        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(sql), params).all())
        finally:
            engine.dispose()

    def scalar(self, sql: str, **params: Any) -> Any:
        return self.rows(sql, **params)[0][0]

    def counts(self) -> tuple[int, int]:
        """(battles, votes) in the database."""
        return (
            int(self.scalar("SELECT count(*) FROM battle")),
            int(self.scalar("SELECT count(*) FROM vote")),
        )


@contextlib.contextmanager
def start_app(
    workdir: Path, *, roster: Path, env: Mapping[str, str] | None = None, db_url: str = ""
) -> Iterator[App]:
    """``python app.py`` on a free loopback port with a throwaway data directory, limits off
    (:func:`tests.processes.running_app`)."""
    db_url = db_url or f"sqlite:///{workdir / 'arena.db'}"
    settings = {
        "ARENA_DB_URL": db_url,
        "ARENA_ROSTER": str(roster),
        "ARENA_PROMPTS_PER_MINUTE": "0",
        "ARENA_VOTES_PER_DAY": "0",
        "ARENA_PROMPTS_PER_MINUTE_PER_ADDRESS": "0",
        "ARENA_VOTES_PER_DAY_PER_ADDRESS": "0",
        "ARENA_DUPLICATE_PROMPT_CAP": "0",
        "ARENA_MAX_LIVE_BATTLES": "0",
        "ARENA_MAX_LIVE_BATTLES_PER_ADDRESS": "0",
        "ARENA_LEADERBOARD_REFRESH_S": "3600",
        **(env or {}),
    }
    names = tuple(
        line.split('"')[1]
        for line in roster.read_text(encoding="utf-8").splitlines()
        if line.startswith("name = ")
    )
    with running_app(workdir, env=settings) as (url, proc, log_path):
        yield App(url, db_url, proc, log_path, names)


# ------------------------------------------------------------------------------------------
# driving it


def battle(
    client: Client,
    prompt: str,
    *,
    models: tuple[str, str] | None = None,
    timeout: float = STEP_TIMEOUT_S,
) -> list[Any]:
    """Send a prompt (anonymous, or named with ``models``) and return the final outputs."""
    if models is None:
        job = client.submit(prompt, api_name="/battle_send")
    else:
        job = client.submit(prompt, [], [], models[0], models[1], api_name="/named_send")
    return list(job.result(timeout=timeout))


def vote(client: Client, choice: str, *, named: bool = False) -> str:
    """Press one vote button; return the status line of the reply."""
    prefix = "named" if named else "battle"
    reply = client.submit(api_name=f"/{prefix}_vote_{choice}").result(timeout=STEP_TIMEOUT_S)
    return str(reply[STATUS])


def chat_text(chat: Any) -> str:
    """All text of one Chatbot value."""
    parts = []
    for message in chat or []:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(c.get("text", "") for c in content if isinstance(c, dict))
        parts.append(str(content))
    return "\n".join(parts)


def queue_call(
    app: App,
    fn_index: int,
    data: list[Any] | None = None,
    *,
    raw_body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    local_address: str | None = None,
    session: str | None = None,
    timeout: float = STEP_TIMEOUT_S,
) -> tuple[int, str, list[dict[str, Any]]]:
    """One event through Gradio's queue, by hand: POST /gradio_api/queue/join, then read the
    session's server-sent events until the event completes.

    Returns the join status, the join body, and the decoded SSE messages (empty when the
    join was refused).  ``raw_body`` replaces the JSON body (it must contain
    ``SESSION_HASH`` where the session hash goes).  ``local_address`` picks the source
    address (any of 127.0.0.0/8 reaches the app on 127.0.0.1 as a different peer).
    ``session`` reuses a session hash, so that several calls are one browser session
    (default: a new session per call).
    """
    session = session or uuid.uuid4().hex[:12]
    if raw_body is None:
        body = json.dumps(
            {
                "data": data or [],
                "fn_index": fn_index,
                "session_hash": session,
                "event_data": None,
                "trigger_id": None,
            }
        ).encode("ascii")
    else:
        body = raw_body.replace(b"SESSION_HASH", session.encode())
    hdrs = {"content-type": "application/json", **(headers or {})}
    messages: list[dict[str, Any]] = []
    transport = httpx.HTTPTransport(local_address=local_address) if local_address else None
    with httpx.Client(
        base_url=app.url, timeout=timeout, trust_env=False, transport=transport
    ) as http:
        joined = http.post("/gradio_api/queue/join", content=body, headers=hdrs)
        if joined.status_code != 200:
            return joined.status_code, joined.text, messages
        with http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as s:
            for line in s.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                messages.append(msg)
                if msg.get("msg") in ("process_completed", "unexpected_error", "close_stream"):
                    break
    return joined.status_code, joined.text, messages


def rest_call(
    app: App, api_name: str, body: bytes, *, timeout: float = STEP_TIMEOUT_S
) -> tuple[int, str]:
    """One event through Gradio's REST route: POST /gradio_api/call/<api_name>, then GET the
    result stream.  Returns (status of the POST, full text the client received)."""
    with httpx.Client(base_url=app.url, timeout=timeout, trust_env=False) as http:
        posted = http.post(
            f"/gradio_api/call/{api_name}",
            content=body,
            headers={"content-type": "application/json"},
        )
        if posted.status_code != 200:
            return posted.status_code, posted.text
        event_id = posted.json()["event_id"]
        result = http.get(f"/gradio_api/call/{api_name}/{event_id}")
        return result.status_code, posted.text + result.text


def final_output(messages: list[dict[str, Any]]) -> list[Any]:
    """The output data of a completed queue event (fails loudly when there is none)."""
    done = [m for m in messages if m.get("msg") == "process_completed"]
    assert done, f"the event did not complete: {messages}"
    output = done[-1].get("output") or {}
    assert done[-1].get("success", True), f"the event failed: {done[-1]}"
    return list(output["data"])


def assert_clean(response_text: str, app: App, *, may_name_models: bool = False) -> None:
    """No traceback or internal exception text reached the client, and (for anonymous
    battles) no model name."""
    for marker in ("Traceback", 'File "', "Exception", "Error:", "sqlalchemy", "psycopg"):
        assert marker not in response_text, f"{marker!r} reached the client: {response_text}"
    if not may_name_models:
        for name in app.model_names:
            assert name not in response_text, f"model {name} named: {response_text}"
