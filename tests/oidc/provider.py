"""A real OpenID provider for the sign-in tests: ``node tests/oidc/provider.mjs``
(oidc-provider from the npm registry, installed by ``.ci/run`` with ``npm ci``), on a free
loopback port, and a driver for its development login and consent pages.

Users (provider.mjs): ``alice`` (alice@team.example, group arena-voters), ``bob``
(bob@other.example, no group), ``carol`` (carol@other.example, group arena-voters).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.processes import stop_process, wait_until_serving

HERE = Path(__file__).resolve().parent
CLIENT_ID = "arena-test"
CLIENT_SECRET = "arena-test-client-secret-0123456789"


@dataclass
class Provider:
    issuer: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path


def need_node() -> None:
    """Skip (with the reason) where Node.js or the installed provider is missing."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed (.ci/system-packages installs it)")
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        pytest.skip("oidc-provider is not installed: npm ci --prefix tests/oidc (.ci/run does)")


@contextlib.contextmanager
def oidc_provider(workdir: Path, port: int, redirect_uris: list[str]) -> Iterator[Provider]:
    """Run the provider on ``port`` (pick it with ``free_port`` before the app starts, so
    that the app can be told its issuer) for a client with these redirect URIs."""
    need_node()
    log_path = workdir / f"oidc-{port}.log"
    env = {
        "PATH": str(Path(shutil.which("node") or "node").parent),
        "PORT": str(port),
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
        "REDIRECT_URIS": ",".join(redirect_uris),
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["node", str(HERE / "provider.mjs")],
            cwd=HERE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    provider = Provider(f"http://127.0.0.1:{port}", port, proc, log_path)
    try:
        discovery = provider.issuer + "/.well-known/openid-configuration"
        wait_until_serving(proc, discovery, log_path, "the OpenID provider", timeout_s=30)
        yield provider
    finally:
        stop_process(proc)


def sign_in(http: httpx.Client, app_url: str, login: str) -> httpx.Response:
    """Sign in through the app as ``login``, the way a browser would: the app's
    ``/auth/login``, the provider's login and consent forms, back to the app's callback.
    Returns the app's answer to the callback (a redirect with the person cookie, or a
    refusal page)."""
    r = http.get(app_url + "/auth/login", follow_redirects=False)
    for _ in range(20):
        location = r.headers.get("location")
        if location and location.startswith(app_url + "/auth/callback"):
            return http.get(location, follow_redirects=False)
        if location:
            r = http.get(httpx.URL(str(r.url)).join(location), follow_redirects=False)
            continue
        assert r.status_code == 200, (r.status_code, r.text[:300])
        m = re.search(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', r.text, re.S)
        assert m, f"no form on the provider's page: {r.text[:300]}"
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', m[2]))
        if fields.get("prompt") == "login":
            fields.update(login=login, password="any password")
        r = http.post(m[1], data=fields, follow_redirects=False)
    raise AssertionError("the sign-in did not come back to the app")
