"""Schema: migrations match the models, out-of-date databases are refused, ``arena db``."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import SQLModel

from arena import store
from arena.cli import main
from arena.store.engine import _alembic_config

TABLES = {
    "admin_action",
    "alembic_version",
    "battle",
    "battle_features",
    "message",
    "model",
    "model_event",
    "moderation_decision",
    "vote",
    "vote_reason",
}


def test_migrations_match_the_models(engine: Engine) -> None:
    """A change to models.py without a migration (or the reverse) fails here."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, SQLModel.metadata)
    assert diff == []
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) == TABLES


def test_upgrade_then_downgrade_to_empty(db_url: str) -> None:
    eng = store.open_engine(db_url, check=False)
    try:
        assert store.current_revision(eng) is None
        assert store.upgrade(eng) == store.head_revision()
        assert store.upgrade(eng) == store.head_revision()  # idempotent
        with eng.begin() as conn:
            command.downgrade(_alembic_config(conn), "base")
        with eng.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
        assert store.current_revision(eng) is None
    finally:
        eng.dispose()


def test_an_older_revision_is_refused_then_upgraded_in_place(db_url: str) -> None:
    eng = store.open_engine(db_url, check=False)
    try:
        assert store.upgrade(eng, "0001") == "0001"
        with eng.begin() as conn:
            conn.execute(text("INSERT INTO model (backend, config_hash, name, created_at) "
                              "VALUES ('openai', 'h', 'kept', CURRENT_TIMESTAMP)"))  # fmt: skip
        with pytest.raises(store.SchemaOutOfDate, match="at schema revision 0001") as info:
            store.check_schema(eng)
        assert "arena db upgrade --db" in str(info.value)
        assert store.upgrade(eng) == store.head_revision() != "0001"
        with eng.connect() as conn:
            indexes = {ix["name"] for ix in inspect(conn).get_indexes("vote")}
            assert "ix_vote_question_id" in indexes
            assert conn.execute(text("SELECT name FROM model")).scalars().all() == ["kept"]
    finally:
        eng.dispose()


def test_refuses_empty_database_naming_the_fix(db_url: str) -> None:
    with pytest.raises(store.SchemaOutOfDate) as info:
        store.open_engine(db_url)
    message = str(info.value)
    assert "arena db upgrade --db" in message and "no Arena schema" in message
    assert (info.value.current, info.value.expected) == (None, store.head_revision())


def test_refuses_unknown_newer_revision(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff_future'"))
    with pytest.raises(store.SchemaOutOfDate, match="upgrade Arena instead") as info:
        store.check_schema(engine)
    assert info.value.current == "ffff_future"
    with pytest.raises(store.SchemaOutOfDate):
        store.open_engine(str(engine.url.render_as_string(hide_password=False)))


def test_create_if_empty_creates_only_when_empty(db_url: str) -> None:
    eng = store.open_engine(db_url, create_if_empty=True)
    assert store.check_schema(eng) == store.head_revision()
    with eng.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff_future'"))
    eng.dispose()
    # A database with Arena tables is never migrated implicitly.
    with pytest.raises(store.SchemaOutOfDate):
        store.open_engine(db_url, create_if_empty=True)


def test_cli_db_upgrade_and_current(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "current", "--db", db_url]) == 1
    captured = capsys.readouterr()
    assert "current: (none)" in captured.out and "arena db upgrade --db" in captured.err

    assert main(["db", "upgrade", "--db", db_url]) == 0
    assert "upgraded from (empty) to " + store.head_revision() in capsys.readouterr().err
    assert main(["db", "upgrade", "--db", db_url]) == 0
    assert "already at revision" in capsys.readouterr().err
    assert main(["db", "current", "--db", db_url]) == 0
    assert f"current: {store.head_revision()}" in capsys.readouterr().out
    store.open_engine(db_url).dispose()  # the app would start now


def test_cli_db_reports_bad_urls(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade", "--db", "nosuchdialect://x"]) == 2
    assert capsys.readouterr().err.startswith("arena: error: ")
    # Nothing listens on port 1.
    assert main(["db", "upgrade", "--db", "postgresql+psycopg://u:hunter2@127.0.0.1:1/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("arena: error: cannot open database") and "hunter2" not in err


def test_default_database_is_sqlite_under_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ARENA_DB_URL", raising=False)
    monkeypatch.setenv("ARENA_DATA_DIR", str(tmp_path / "data"))
    assert main(["db", "upgrade"]) == 0
    assert (tmp_path / "data" / "arena.db").is_file()
    assert str(tmp_path / "data" / "arena.db") in capsys.readouterr().err


def test_sqlite_connections_are_tuned(tmp_path: Path) -> None:
    eng = store.open_engine(f"sqlite:///{tmp_path / 'a' / 'b.db'}", create_if_empty=True)
    try:
        with eng.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            }
    finally:
        eng.dispose()
    # synchronous=2 is FULL: the WAL is fsynced at every commit.
    assert pragma == {"journal_mode": "wal", "synchronous": 2, "busy_timeout": 30000,
                      "foreign_keys": 1}  # fmt: skip


def test_redact_url_hides_passwords() -> None:
    url = "postgresql+psycopg://arena:s3cret@db.example:5432/arena"
    assert "s3cret" not in store.redact_url(url)
    assert make_url(store.redact_url(url)).host == "db.example"
