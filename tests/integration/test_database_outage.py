"""Fault: the database (PostgreSQL) is briefly unavailable, then comes back.

A throwaway PostgreSQL cluster of the test's own (initdb + pg_ctl on a free loopback port)
backs the real app.  The server is stopped while a battle waits for its vote: the vote is
refused with the retryable message and nothing is recorded; once the server is back, the same
button records the vote exactly once and new battles work -- without restarting the app.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.harness import (
    DB_DOWN_TEXT,
    READY_TEXT,
    RECORDED_TEXT,
    STATUS,
    App,
    assert_clean,
    battle,
    free_port,
    start_app,
    stub_server,
    vote,
    write_roster,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


@dataclass
class Cluster:
    """A PostgreSQL cluster in a temporary directory, run as ``postgres`` when we are root."""

    bindir: Path
    base: Path
    port: int
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://arena@127.0.0.1:{self.port}/arena_it"

    def run(self, tool: str, *args: str) -> None:
        cmd = [*self.as_user, str(self.bindir / tool), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout}\n{proc.stderr}"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.base / 'sock'} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.base / "server.log")
        self.run("pg_ctl", "-D", str(self.base / "data"), "-l", log, "-w", "-o", opts, "start")

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.base / "data"), "-m", mode, "-w", "stop")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    bindir = pg_bindir()
    if bindir is None or not (bindir / "initdb").exists():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    # Under /tmp, not pytest's tmp_path: the server user must be able to reach it.
    base = Path(tempfile.mkdtemp(prefix="arena-it-pg-"))
    (base / "data").mkdir()
    (base / "sock").mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(base, "postgres")
        for sub in ("data", "sock"):
            shutil.chown(base / sub, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    c = Cluster(bindir, base, free_port(), as_user)
    try:
        c.run(
            "initdb", "-D", str(base / "data"), "-U", "arena", "-A", "trust", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        c.start()
        c.run("createdb", "-h", "127.0.0.1", "-p", str(c.port), "-U", "arena", "arena_it")
        yield c
    finally:
        with contextlib.suppress(AssertionError):  # already stopped
            c.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def app(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    work = tmp_path_factory.mktemp("pg-app")
    with stub_server(work, tokens=4, delay=0.01) as stub:
        roster = write_roster(
            work / "roster.toml",
            [(n, stub.base_url) for n in ("stub-alpha", "stub-bravo", "stub-charlie")],
        )
        with start_app(work, roster=roster, db_url=cluster.url) as running:
            yield running


def test_vote_during_an_outage_is_refused_then_recorded_once_after_it(
    app: App, cluster: Cluster
) -> None:
    client = app.client()
    assert READY_TEXT in str(battle(client, "What is two plus two?")[STATUS])
    (bid,) = (r[0] for r in app.rows("SELECT id FROM battle"))

    cluster.stop("fast")
    try:
        for choice in ("a", "a", "tie"):  # pressing again while it is down changes nothing
            refused = vote(client, choice)
            assert refused == f"⚠️ {DB_DOWN_TEXT} Please try again in a few seconds.", refused
            assert_clean(refused, app)
        # A new prompt during the outage (another tab) is refused the same way.
        other = app.client()
        out = battle(other, "Anyone there?")
        assert str(out[STATUS]).startswith(f"⚠️ {DB_DOWN_TEXT}"), out[STATUS]
        assert_clean(str(out), app)
        assert app.process.poll() is None, "the app died with its database"
    finally:
        cluster.start()

    # Nothing was recorded while it was down; the battle is still waiting for its vote.
    assert app.rows("SELECT status FROM battle WHERE id = :b", b=bid) == [("ready",)]
    assert app.counts() == (1, 0)

    # The same button again, with no app restart: recorded, exactly once.
    reveal = vote(client, "a")
    assert reveal.startswith(RECORDED_TEXT), reveal
    assert app.rows("SELECT winner FROM vote WHERE battle_id = :b", b=bid) == [("model_a",)]
    assert app.rows("SELECT status FROM battle WHERE id = :b", b=bid) == [("voted",)]
    again = vote(client, "b")
    assert again.startswith("⚠️") and RECORDED_TEXT not in again
    assert app.counts() == (1, 1)

    # Service resumed by itself: new battles in the old and in a new session work and count.
    for c in (client, app.client()):
        assert READY_TEXT in str(battle(c, "And three plus three?")[STATUS])
        assert vote(c, "bothbad").startswith(RECORDED_TEXT)
    assert app.counts() == (3, 3)
