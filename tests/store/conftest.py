"""Fixtures: every store test runs on a real SQLite file and on a real PostgreSQL server.

``db_url`` gives a fresh, empty database: a new SQLite file, or a new schema on the server at
``ARENA_TEST_PG_URL`` (selected through ``search_path``, so the code under test sees an
ordinary empty database; schemas are far cheaper to drop than databases, whose DROP forces a
checkpoint).  ``engine`` is the same database with the schema migrated to head; ``populated``
adds three registered models.  Without ``ARENA_TEST_PG_URL`` the PostgreSQL half skips with
the reason; ``.ci/run`` sources ``.ci/services``, which starts a server and sets it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from arena import store

from .helpers import MODELS, register_models

PG_ENV = "ARENA_TEST_PG_URL"


def pg_base_url() -> str | None:
    """The PostgreSQL server the tests may use, or None."""
    return os.environ.get(PG_ENV) or None


def _skip_without_pg() -> str:
    url = pg_base_url()
    if url is None:
        pytest.skip(
            f"{PG_ENV} is not set: no PostgreSQL server for the store tests (source "
            ".ci/services to start a throwaway one, or point it at an empty database: "
            "postgresql+psycopg://user@127.0.0.1:PORT/dbname)"
        )
    return url


class PgSchemas:
    """Creates and drops throwaway schemas on the test server."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.admin = create_engine(make_url(base), isolation_level="AUTOCOMMIT")

    def create(self) -> tuple[str, str]:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
        sep = "&" if "?" in self.base else "?"
        return name, f"{self.base}{sep}options={quote(f'-csearch_path={name}')}"

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


@pytest.fixture(scope="session")
def pg_schemas() -> Iterator[PgSchemas]:
    schemas = PgSchemas(_skip_without_pg())
    yield schemas
    schemas.admin.dispose()


def _fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'arena.db'}"
        return
    schemas: PgSchemas = request.getfixturevalue("pg_schemas")
    name, url = schemas.create()
    try:
        yield url
    finally:
        schemas.drop(name)


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, empty database (no schema), on each backend."""
    yield from _fresh_url(request, tmp_path)


@pytest.fixture
def backend(db_url: str) -> str:
    """``sqlite`` or ``postgresql``."""
    return make_url(db_url).get_backend_name()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """The fresh database, migrated to the current schema."""
    eng = store.open_engine(db_url, check=False)
    store.upgrade(eng)
    eng.dispose()
    eng = store.open_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def populated(engine: Engine) -> Engine:
    """The migrated database with the models in ``helpers.MODELS`` registered."""
    register_models(engine, MODELS)
    return engine


@pytest.fixture
def make_db(backend: str, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """A factory of further fresh, empty databases on the same backend as ``db_url``."""
    dropped: list[str] = []
    schemas = PgSchemas(_skip_without_pg()) if backend == "postgresql" else None

    def make() -> str:
        if schemas is None:
            return f"sqlite:///{tmp_path / f'extra-{uuid.uuid4().hex[:8]}.db'}"
        name, url = schemas.create()
        dropped.append(name)
        return url

    yield make
    if schemas is not None:
        for name in dropped:
            schemas.drop(name)
        schemas.admin.dispose()
