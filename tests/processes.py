"""Subprocesses the tests start for real: free loopback ports, stopping, and ``python app.py``.

Shared by the browser tests, the integration tests and the backend tests, so that there is
one way to start the app (throwaway data directory, a free port, the developer's own
``ARENA_*`` settings dropped) and to decide that it is ready.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
# What `arena serve` prints once the model is loaded, just before Gradio starts listening.
READY_LINE = "arena: starting the web app on"

# Settings of the developer's shell that would point the app somewhere else than its
# throwaway directory (the weight cache, ARENA_CACHE_DIR, is deliberately kept).
_DROPPED_ENV = ("ARENA_DB_URL", "ARENA_ROSTER", "ARENA_HOST", "ARENA_PORT", "ARENA_SECRET")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop one process we started (by its own pid), escalating to SIGKILL."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file (for failure messages)."""
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def wait_until_serving(
    proc: subprocess.Popen[bytes], url: str, log_path: Path, what: str, timeout_s: float = 60
) -> None:
    """Poll ``url`` until it answers 2xx; raise with the log's tail if ``proc`` exits first
    or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log_tail(log_path)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2, trust_env=False).is_success:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout_s:.0f} s: {log_tail(log_path)}")
        time.sleep(0.2)


@contextlib.contextmanager
def running_app(
    workdir: Path,
    *,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    timeout_s: float = 180.0,
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """Run ``python app.py`` on a free loopback port until the ``with`` block ends.

    Parameters
    ----------
    workdir
        Empty directory: becomes ``ARENA_DATA_DIR`` and holds ``app.log``.
    env
        Extra environment variables (``ARENA_*`` settings) for the app.
    args
        Extra command-line arguments for ``app.py``.
    timeout_s
        Longest wait for the app to answer HTTP (the first ever start converts the model).

    Yields
    ------
    tuple
        ``(url, process, log_path)`` once the app answers ``GET /`` with 200.

    Raises
    ------
    RuntimeError
        The app exited or did not answer in time (the message holds its log tail).
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
        proc = subprocess.Popen(
            [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=REPO_ROOT,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(url, proc, log_path, timeout_s)
        yield url, proc, log_path
    finally:
        stop_process(proc)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the app exited with code {proc.returncode} before it was ready:\n"
                    f"{log_tail(log_path)}"
                )
            if READY_LINE in log_tail(log_path, 200):
                try:
                    response = client.get(url + "/")
                except httpx.HTTPError as exc:
                    last_error = repr(exc)
                else:
                    if response.status_code == 200:
                        return
                    last_error = f"HTTP {response.status_code}"
            time.sleep(0.3)
    raise RuntimeError(
        f"the app did not answer on {url} within {timeout_s:.0f} s ({last_error}):\n"
        f"{log_tail(log_path)}"
    )
