"""Opening the database: engines, SQLite pragmas, write transactions, the schema check.

SQLite is the default and is tuned for "one machine, many app threads, a few processes":

* ``journal_mode=WAL`` so readers never block on the writer and the writer never blocks on
  readers;
* ``synchronous=FULL`` so a commit is on disk (WAL fsynced) before ``commit()`` returns --
  votes are the one irreplaceable asset, and FULL costs little in WAL mode;
* ``busy_timeout`` so a second writer waits for the lock instead of failing;
* every ORM transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock up front.
  A deferred transaction that reads and then writes can fail with "database is locked" the
  moment another writer committed in between, and no busy timeout helps it; an immediate
  one simply queues.  Read-only paths (ratings, export) use :func:`reader`, whose
  transactions are deferred and so never wait for writers.

PostgreSQL needs none of this: row locks (``SELECT ... FOR UPDATE``) and constraints do the
same job, and several app replicas can share one server.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Session

from arena.store.errors import SchemaOutOfDate

__all__ = [
    "MIGRATIONS_DIR",
    "begin_read",
    "check_schema",
    "current_revision",
    "head_revision",
    "open_engine",
    "reader",
    "redact_url",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

# Execution option that marks a read-only engine proxy (see ``reader``).
_READ_ONLY = "arena_read_only"
# Alembic's version table name; a database with only this table is "arena, version X".
_VERSION_TABLE = "alembic_version"


def redact_url(url: str) -> str:
    """The URL with any password masked, safe for messages and ``Battles.source``."""
    return make_url(url).render_as_string(hide_password=True)


def open_engine(
    url: str,
    *,
    check: bool = True,
    create_if_empty: bool = False,
    busy_timeout_s: float = 30.0,
) -> Engine:
    """Open the database at ``url`` and check that its schema is current.

    Parameters
    ----------
    url
        SQLAlchemy URL: ``sqlite:///path/to/arena.db`` or
        ``postgresql+psycopg://user:password@host:5432/dbname``.  The directory of a SQLite
        file is created when missing.
    check
        Verify the schema revision (see :func:`check_schema`).  ``arena db upgrade`` passes
        ``False``.
    create_if_empty
        When the database holds no tables at all (a brand-new SQLite file or an empty
        PostgreSQL database), create the schema instead of refusing.  A database that has
        Arena tables at an older revision is never upgraded implicitly.
    busy_timeout_s
        How long a SQLite writer waits for the write lock before failing.

    Returns
    -------
    sqlalchemy.engine.Engine

    Raises
    ------
    SchemaOutOfDate
        When ``check`` is true and the schema is missing or not at the expected revision;
        the message names the ``arena db upgrade --db ...`` command that fixes it.
    """
    u = make_url(url)
    kwargs: dict[str, Any] = {}
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
            Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": busy_timeout_s}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(u, **kwargs)
    if u.get_backend_name() == "sqlite":
        _tune_sqlite(engine, busy_timeout_s)
    try:
        if create_if_empty:
            with reader(engine).connect() as conn:
                empty = not inspect(conn).get_table_names()
            if empty:
                upgrade(engine)
        if check:
            check_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _tune_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (it would issue its own
        # deferred BEGIN); SQLAlchemy's "begin" event below issues ours.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        deferred = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN DEFERRED" if deferred else "BEGIN IMMEDIATE")


def begin_read(session: Session) -> None:
    """Start the session's next transaction as a read: on SQLite it then takes no lock.

    A no-op when the session is already inside a transaction (it keeps that one).
    """
    if not session.in_transaction():
        session.connection(execution_options={_READ_ONLY: True})


def reader(engine: Engine) -> Engine:
    """An engine proxy for read-only work: on SQLite its transactions do not take the lock.

    Shares the pool of ``engine``.  Writing through it on SQLite may fail with "database is
    locked" under contention, so use it for reads only.
    """
    return engine.execution_options(**{_READ_ONLY: True})


def _alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The Alembic revision this version of Arena expects."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, "the migrations directory has no revisions"
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's Alembic revision, or ``None`` when it has none (empty database)."""
    with reader(engine).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_schema(engine: Engine) -> str:
    """Verify that the database schema is at the revision this code expects.

    Parameters
    ----------
    engine
        An engine from :func:`open_engine`.

    Returns
    -------
    str
        The current revision.

    Raises
    ------
    SchemaOutOfDate
        With a message naming the command that fixes it (``arena db upgrade --db URL``).
    """
    current = current_revision(engine)
    expected = head_revision()
    if current == expected:
        return current
    url = engine.url.render_as_string(hide_password=True)
    fix = f"run `arena db upgrade --db {url}`"
    if current is None:
        message = f"database {url} has no Arena schema; {fix} to create it"
    elif current in _known_revisions():
        message = (
            f"database {url} is at schema revision {current}, this Arena needs {expected}; "
            f"{fix} (back the database up first)"
        )
    else:
        message = (
            f"database {url} is at schema revision {current}, which this Arena does not "
            f"know (it needs {expected}): the database was upgraded by a newer Arena; "
            "upgrade Arena instead"
        )
    raise SchemaOutOfDate(message, current=current, expected=expected)


def _known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(_alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Bring the schema up to ``revision`` (default: the newest), in one transaction.

    Parameters
    ----------
    engine
        Target database (opened with ``check=False`` when it may be out of date).
    revision
        Alembic revision to upgrade to.

    Returns
    -------
    str
        The revision the database is at afterwards.
    """
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), revision)
    rev = current_revision(engine)
    assert rev is not None
    return rev
