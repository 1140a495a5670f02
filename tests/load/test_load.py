"""Short versions of benchmarks/load_test.py: real app, real streaming server, real database.

Every acknowledged vote must be in the database exactly once -- under concurrent users, and
across a SIGKILL of the app process in the middle of the load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_test(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "load.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "load_test.py"), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=420,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
    )
    assert out.exists(), (
        f"load test produced no result:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    )
    return json.loads(out.read_text())


@pytest.mark.slow
def test_concurrent_users_lose_no_vote(tmp_path: Path) -> None:
    r = load_test(tmp_path, "--users", "6", "--seconds", "12")
    assert r["votes_acknowledged"] >= 6, r
    assert r["lost_votes"] == 0 and r["duplicate_votes"] == 0, r
    assert r["votes_on_unvoted_battles"] == 0, r
    assert r["errors"] == 0, r
    assert r["votes_in_db"] >= r["votes_acknowledged"]


@pytest.mark.slow
def test_votes_acknowledged_before_a_sigkill_survive_the_restart(tmp_path: Path) -> None:
    r = load_test(tmp_path, "--users", "3", "--seconds", "60", "--kill-app-at", "10")
    assert r["killed_app_after_votes"] >= 1, r
    assert r["lost_votes"] == 0 and r["duplicate_votes"] == 0, r
    assert r["votes_on_unvoted_battles"] == 0, r
    assert r["votes_acknowledged"] > r["killed_app_after_votes"], r  # service resumed


@pytest.mark.slow
@pytest.mark.postgres
def test_concurrent_users_lose_no_vote_on_postgresql(tmp_path: Path) -> None:
    url = os.environ.get("ARENA_TEST_PG_URL")
    if not url:
        pytest.skip("ARENA_TEST_PG_URL is not set (.ci/services starts PostgreSQL and sets it)")
    r = load_test(tmp_path, "--users", "6", "--seconds", "12", "--db", url)
    assert r["db"] == "postgresql"
    assert r["votes_acknowledged"] >= 6, r
    assert r["lost_votes"] == 0 and r["duplicate_votes"] == 0 and r["errors"] == 0, r
