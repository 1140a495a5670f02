"""Two app replicas behind a real HAProxy on PostgreSQL, started by ``arena deploy local``.

Session affinity through the balancer (a Gradio session's stream and vote reach the replica
that holds the session), per-voter limits that hold across replicas, a served URL prefix
(``--root-path``), and a replica killed in the middle of a load: no acknowledged vote is
lost and new sessions reach the survivor.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from arena.cli.deploy import find_haproxy
from tests.integration.harness import (
    READY_TEXT,
    RECORDED_TEXT,
    STATUS,
    StubServer,
    battle,
    stub_server,
    vote,
    write_roster,
)
from tests.processes import REPO_ROOT, free_port, log_tail, stop_process

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PG_URL = os.environ.get("ARENA_TEST_PG_URL", "")
READY_LINE = "through HAProxy"
REPLICA_LINE = re.compile(r"replica (app\d) \(pid (\d+)\) on (http://\S+),")
TOO_MANY_PROMPTS = "⚠️ Too many prompts: at most 2 per minute."
TOO_MANY_VOTES = "⚠️ Too many votes: at most 1 per day."


def _requirements() -> None:
    if not PG_URL:
        pytest.skip("ARENA_TEST_PG_URL is not set (.ci/services starts PostgreSQL and sets it)")
    if find_haproxy() is None:
        pytest.skip("haproxy is not installed (.ci/system-packages installs it)")


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server; dropped afterwards."""
    name = f"arena_rep_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Deployment:
    """A running ``arena deploy local``."""

    url: str  # the public URL, prefix included, ending in "/"
    db_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    replicas: dict[str, int]  # name -> pid

    def client(self, *, server: str | None = None, forwarded_for: str = "") -> Client:
        """A new browser session through HAProxy (optionally pinned by cookie)."""
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        cookies = {"SERVERID": server} if server else {}
        return Client(self.url, verbose=False, headers=headers, httpx_kwargs={"cookies": cookies})

    def scalar(self, sql: str, **params: Any) -> Any:
        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return conn.execute(text(sql), params).scalar_one()
        finally:
            engine.dispose()


@contextlib.contextmanager
def deploy(
    work: Path, stub: StubServer, *, env: dict[str, str], root_path: str = ""
) -> Iterator[Deployment]:
    roster = write_roster(
        work / "roster.toml", [(n, stub.base_url) for n in ("stub-alpha", "stub-bravo")]
    )
    port = free_port()
    log_path = work / "deploy.log"
    with fresh_database() as db_url:
        child_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ARENA_") or k == "ARENA_CACHE_DIR"
        }
        child_env.update(
            {
                "ARENA_DATA_DIR": str(work / "data"),
                "ARENA_LEADERBOARD_REFRESH_S": "3600",
                "GRADIO_ANALYTICS_ENABLED": "False",
                "PYTHONUNBUFFERED": "1",
                "NO_PROXY": "127.0.0.1,localhost",
                **env,
            }
        )
        cmd = [sys.executable, "-m", "arena", "deploy", "local", "--replicas", "2"]
        cmd += ["--db", db_url, "--port", str(port), "--roster", str(roster)]
        cmd += ["--run-dir", str(work / "run")]
        if root_path:
            cmd += ["--root-path", root_path]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 180
            while READY_LINE not in log_tail(log_path, 50):
                assert proc.poll() is None, f"deploy exited early:\n{log_tail(log_path)}"
                assert time.monotonic() < deadline, f"deploy not ready:\n{log_tail(log_path)}"
                time.sleep(0.3)
            replicas = {
                m.group(1): int(m.group(2))
                for m in REPLICA_LINE.finditer(log_path.read_text(encoding="utf-8"))
            }
            assert set(replicas) == {"app1", "app2"}, log_tail(log_path)
            url = f"http://127.0.0.1:{port}{root_path}/"
            yield Deployment(url, db_url, proc, log_path, replicas)
        finally:
            stop_process(proc, signal.SIGTERM)
            # Clean shutdown: the deploy command stopped every process it started.
            for pid in replicas_of(log_path):
                assert not _alive(pid), f"replica pid {pid} outlived `arena deploy local`"


def replicas_of(log_path: Path) -> list[int]:
    return [int(m.group(2)) for m in REPLICA_LINE.finditer(log_tail(log_path, 200))]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (reaped by its parent soon).
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    return False


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StubServer]:
    _requirements()
    with stub_server(tmp_path_factory.mktemp("stub"), tokens=6, delay=0.01) as server:
        yield server


@pytest.fixture(scope="module")
def open_arena(tmp_path_factory: pytest.TempPathFactory, stub: StubServer) -> Iterator[Deployment]:
    """Limits off, served under /arena."""
    env = {
        "ARENA_PROMPTS_PER_MINUTE": "0",
        "ARENA_VOTES_PER_DAY": "0",
        "ARENA_PROMPTS_PER_MINUTE_PER_ADDRESS": "0",
        "ARENA_VOTES_PER_DAY_PER_ADDRESS": "0",
        "ARENA_DUPLICATE_PROMPT_CAP": "0",
    }
    with deploy(tmp_path_factory.mktemp("open"), stub, env=env, root_path="/arena") as d:
        yield d


def test_sessions_stick_to_a_replica_under_the_root_path(open_arena: Deployment) -> None:
    d = open_arena
    with httpx.Client(trust_env=False, timeout=10) as http:
        page = http.get(d.url)
        assert page.status_code == 200
        assert "SERVERID=" in page.headers.get("set-cookie", "")
        # The voter cookie (issue 18) comes through HAProxy, scoped to the root path.
        (voter,) = [c for c in page.headers.get_list("set-cookie") if c.startswith("arena_voter=")]
        assert "Path=/arena;" in voter and "HttpOnly" in voter and "SameSite=Lax" in voter
        bare = http.get(d.url.rstrip("/"))
        assert bare.status_code == 302 and bare.headers["location"] == "/arena/"
        assert http.get(d.url.replace("/arena/", "/")).status_code == 404
    servers = []
    before = int(d.scalar("SELECT count(*) FROM vote"))
    for i in range(4):
        client = d.client()
        out = battle(client, f"affinity question {i}")
        assert READY_TEXT in str(out[STATUS]), out[STATUS]
        assert vote(client, ("a", "b", "tie", "bothbad")[i]).startswith(RECORDED_TEXT)
        servers.append(client.cookies.get("SERVERID"))
    # Round robin spread the new sessions; each session's stream and vote stayed on its own.
    assert set(servers) == {"app1", "app2"}, servers
    assert int(d.scalar("SELECT count(*) FROM vote")) == before + 4


def test_a_voters_limits_hold_across_replicas(
    tmp_path_factory: pytest.TempPathFactory, stub: StubServer
) -> None:
    env = {"ARENA_PROMPTS_PER_MINUTE": "2", "ARENA_VOTES_PER_DAY": "1"}
    with deploy(tmp_path_factory.mktemp("limited"), stub, env=env) as d:
        alice = "203.0.113.10"
        # Prompts: one on each replica, then a third on either is refused.
        first = d.client(server="app1", forwarded_for=alice)
        assert READY_TEXT in str(battle(first, "alice one")[STATUS])
        assert vote(first, "a").startswith(RECORDED_TEXT)
        second = d.client(server="app2", forwarded_for=alice)
        assert READY_TEXT in str(battle(second, "alice two")[STATUS])
        # Her one vote of the day was cast on app1; app2 refuses the next one.
        refused = vote(second, "b")
        assert refused.startswith(TOO_MANY_VOTES), refused
        for server in ("app1", "app2"):
            third = d.client(server=server, forwarded_for=alice)
            status = str(battle(third, f"alice three on {server}")[STATUS])
            assert status.startswith(TOO_MANY_PROMPTS), (server, status)
        # Another voter is not affected, on either replica.
        bob = d.client(server="app2", forwarded_for="203.0.113.20")
        assert READY_TEXT in str(battle(bob, "bob one")[STATUS])
        assert vote(bob, "tie").startswith(RECORDED_TEXT)
        assert int(d.scalar("SELECT count(*) FROM battle")) == 3
        assert int(d.scalar("SELECT count(*) FROM vote")) == 2


def test_load_through_haproxy_loses_nothing(open_arena: Deployment, tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    proc = subprocess.run(
        [
            *(sys.executable, str(REPO_ROOT / "benchmarks" / "load_test.py")),
            *("--via", open_arena.url, "--db", open_arena.db_url, "--users", "6"),
            *("--seconds", "10", "--json", str(out)),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"},
    )
    assert out.exists(), proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["votes_acknowledged"] >= 6, r
    assert r["lost_votes"] == 0 and r["duplicate_votes"] == 0 and r["errors"] == 0, r
    assert r["votes_in_db"] >= r["votes_acknowledged"], r  # plus the probe users' votes


def test_killing_a_replica_mid_load_loses_no_acknowledged_vote(
    open_arena: Deployment, tmp_path: Path
) -> None:
    d = open_arena
    out = tmp_path / "load.json"
    load = subprocess.Popen(
        [
            *(sys.executable, str(REPO_ROOT / "benchmarks" / "load_test.py")),
            *("--via", d.url, "--db", d.db_url, "--users", "6", "--seconds", "25"),
            *("--json", str(out)),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"},
    )
    try:
        # Kill app1 once votes are flowing through both replicas.
        deadline = time.monotonic() + 60
        while int(d.scalar("SELECT count(*) FROM vote")) < 12:
            assert load.poll() is None, load.stderr.read() if load.stderr else ""
            assert time.monotonic() < deadline, "no load reached the database"
            time.sleep(0.3)
        os.kill(d.replicas["app1"], signal.SIGKILL)
        _, err = load.communicate(timeout=180)
    finally:
        if load.poll() is None:
            load.kill()
    assert out.exists(), err.decode(errors="replace")[-3000:]
    r = json.loads(out.read_text())
    assert r["lost_votes"] == 0 and r["duplicate_votes"] == 0, r
    assert r["votes_on_unvoted_battles"] == 0, r
    assert r["votes_acknowledged"] >= 12, r
    assert "replica app1 exited" in log_tail(d.log_path, 50)
    # New sessions reach the survivor, through the balancer.
    for i in range(3):
        client = d.client()
        assert READY_TEXT in str(battle(client, f"after the kill {i}")[STATUS])
        assert vote(client, "a").startswith(RECORDED_TEXT)
        assert client.cookies.get("SERVERID") == "app2"
