"""Fixtures for the admin page: a real arena on its own SQLite file (three ``openai``
entries aimed at a closed loopback port: nothing is generated, and nothing needs to be), the
admin middleware around a stand-in for Gradio, and Starlette's test client."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from arena.admin.app import AdminMiddleware
from arena.admin.auth import hash_password
from arena.battles import Arena
from arena.config import Settings
from arena.roster import Roster, parse_roster

PASSWORD = "correct horse battery staple"
# Hashing at full cost takes a noticeable fraction of a second; one hash serves every test.
PASSWORD_HASH = hash_password(PASSWORD)
SECRET = "admin-test-secret-0123456789abcdef-0123456789"
MODELS = ("m-alpha", "m-beta", "m-gamma")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# One address for every arena of the session, so replicas register identical entries.
DEAD_URL = f"http://127.0.0.1:{closed_port()}/v1"


def make_roster(path: Path) -> Roster:
    url = DEAD_URL
    doc = {
        "models": [
            {"name": n, "backend": "openai", "model": n, "base_url": url, "temperature": 0.1 * i}
            for i, n in enumerate(MODELS)
        ]
    }
    return parse_roster(doc, path=path / "roster.toml")


def make_arena(tmp_path: Path, **overrides: Any) -> Arena:
    values: dict[str, Any] = {
        "data_dir": str(tmp_path),
        "db_url": f"sqlite:///{tmp_path / 'arena.db'}",
        "secret": SECRET,
        "tag_languages": "English,German",
        "roster_poll_s": 0.0,
    }
    settings = Settings.from_env({}).with_overrides(**{**values, **overrides})
    return Arena.open(settings, roster=make_roster(tmp_path))


async def _battle_app(request: Request) -> PlainTextResponse:
    return PlainTextResponse("the battle app")


#: What the middleware passes everything else to (Gradio, in the real app).
gradio_stand_in = Starlette(routes=[Route("/{path:path}", _battle_app, methods=["GET", "POST"])])


@pytest.fixture
def arena(tmp_path: Path) -> Iterator[Arena]:
    """An arena with the admin page on (password :data:`PASSWORD`, no second factor)."""
    a = make_arena(tmp_path, admin_password_hash=PASSWORD_HASH)
    yield a
    a.engine.dispose()


def client_for(arena: Arena, **kw: Any) -> TestClient:
    app = AdminMiddleware(gradio_stand_in, arena=arena, secret=SECRET)
    return TestClient(app, base_url="http://arena.test", follow_redirects=False, **kw)


@pytest.fixture
def client(arena: Arena) -> Iterator[TestClient]:
    with client_for(arena) as c:
        yield c


def login(client: TestClient, *, actor: str = "ops-ann", **extra: str) -> None:
    r = client.post("/admin/login", data={"actor": actor, "password": PASSWORD, **extra})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/admin"


def csrf_of(client: TestClient, path: str = "/admin") -> str:
    """The CSRF token in a page's forms (as a browser would read it)."""
    import re

    page = client.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, "no CSRF token in the page"
    return found.group(1)


Login = Callable[..., None]
