"""Fixtures for browser (and later load) tests: the real app in a subprocess on loopback.

:func:`start_app` runs ``python app.py`` with a throwaway data directory on a free port,
waits until it answers HTTP, and stops it afterwards.  The ``arena_app`` fixture is one such
app per test module, with the default roster (the real bundled SmolLM2 model).  The
``chromium`` fixture launches Debian's Chromium through Playwright (PyPI); it skips when
``/usr/bin/chromium`` is absent -- never ``playwright install``.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.processes import REPO_ROOT, log_tail, running_app

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


@dataclass
class AppProcess:
    """A running ``python app.py``: its URL, data directory, process and log file."""

    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the app's stdout+stderr (for failure messages)."""
        return log_tail(self.log_path, lines)

    def failure_context(self) -> str:
        code = self.process.poll()
        state = "running" if code is None else f"exited with code {code}"
        return f"\n--- app ({state}) log tail, {self.log_path} ---\n{self.log_tail()}"


@contextlib.contextmanager
def start_app(
    workdir: Path,
    *,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    timeout_s: float = APP_START_TIMEOUT_S,
) -> Iterator[AppProcess]:
    """Run the arena app on a free loopback port until the ``with`` block ends
    (:func:`tests.processes.running_app`)."""
    with running_app(workdir, env=env, args=args, timeout_s=timeout_s) as (url, proc, log):
        yield AppProcess(url, workdir, proc, log)


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
