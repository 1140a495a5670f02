"""Fixtures for browser (and later load) tests: the real app in a subprocess on loopback.

:func:`start_app` runs ``python app.py`` with a throwaway data directory on a free port,
waits until it answers HTTP, and stops it afterwards.  The ``arena_app`` fixture is one such
app per test module, with the default roster (the real bundled SmolLM2 model).  The
``chromium`` fixture launches Debian's Chromium through Playwright (PyPI); it skips when
``/usr/bin/chromium`` is absent -- never ``playwright install``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
APP_START_TIMEOUT_S = 180.0
READY_LINE = "arena: starting the web app on"

# Settings of the developer's shell that would point the app somewhere else than its
# throwaway directory (the weight cache, ARENA_CACHE_DIR, is deliberately kept).
_DROPPED_ENV = ("ARENA_DB_URL", "ARENA_ROSTER", "ARENA_HOST", "ARENA_PORT", "ARENA_SECRET")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class AppProcess:
    """A running ``python app.py``: its URL, data directory, process and log file."""

    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the app's stdout+stderr (for failure messages)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"(no app log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def failure_context(self) -> str:
        code = self.process.poll()
        state = "running" if code is None else f"exited with code {code}"
        return f"\n--- app ({state}) log tail, {self.log_path} ---\n{self.log_tail()}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


@contextlib.contextmanager
def start_app(
    workdir: Path,
    *,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    timeout_s: float = APP_START_TIMEOUT_S,
) -> Iterator[AppProcess]:
    """Run the arena app on a free loopback port until the ``with`` block ends.

    Parameters
    ----------
    workdir
        Empty directory: becomes ``ARENA_DATA_DIR`` (SQLite database, secret) and holds
        ``app.log``.
    env
        Extra environment variables (``ARENA_*`` settings) for the app.
    args
        Extra command-line arguments for ``app.py``.
    timeout_s
        Longest wait for the app to answer HTTP (the first ever start converts the model).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    child_env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    child_env.update(
        {
            "ARENA_DATA_DIR": str(workdir),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    child_env.update(env or {})
    log_path = workdir / "app.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=REPO_ROOT,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    app = AppProcess(url, workdir, process, log_path)
    try:
        _wait_ready(app, timeout_s)
        yield app
    finally:
        _stop(process)


def _wait_ready(app: AppProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if app.process.poll() is not None:
                pytest.fail(f"the app exited before it was ready{app.failure_context()}")
            if READY_LINE in app.log_tail(200):
                try:
                    response = client.get(app.url + "/")
                except httpx.HTTPError as exc:
                    last_error = repr(exc)
                else:
                    if response.status_code == 200:
                        return
                    last_error = f"HTTP {response.status_code}"
            time.sleep(0.5)
    pytest.fail(
        f"the app did not answer on {app.url} within {timeout_s:.0f} s ({last_error})"
        f"{app.failure_context()}"
    )


@pytest.fixture(scope="module")
def arena_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    """The arena with the default roster (real model), a fresh database, leaderboard
    recomputed on every view, every model with a battle shown."""
    workdir = tmp_path_factory.mktemp("arena-app")
    with start_app(
        workdir, env={"ARENA_LEADERBOARD_REFRESH_S": "0", "ARENA_MIN_BATTLES": "1"}
    ) as app:
        yield app


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright (PyPI)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package `chromium`; see .ci/run)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    """``test-artifacts/browser/<test name>/`` at the repository root (git-ignored)."""
    path = ARTIFACTS / "browser" / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    for old in path.iterdir():
        if old.is_file():
            old.unlink()
    return path
