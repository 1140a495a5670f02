"""Privacy: voters are keyed hashes; the key is generated once and kept; no raw IP anywhere."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import stat
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from arena import store
from arena.config import Settings

from .helpers import vote_on_new_battle

IP = "203.0.113.77"


def test_user_key_is_a_keyed_hash() -> None:
    key = store.user_key("s3cret", IP)
    assert key == hmac.new(b"s3cret", IP.encode(), hashlib.sha256).hexdigest()
    assert len(key) == 64 and IP not in key
    assert key == store.user_key("s3cret", IP)  # stable
    assert key != store.user_key("other", IP)  # depends on the secret...
    assert key != hashlib.sha256(IP.encode()).hexdigest()  # ...so it is not a plain hash
    with pytest.raises(ValueError, match="secret"):
        store.user_key("", IP)


def test_secret_from_the_environment_wins(tmp_path: Path) -> None:
    secret = "from-env-" + "x" * 23  # 32 bytes, the least accepted
    settings = Settings.from_env({"ARENA_SECRET": secret, "ARENA_DATA_DIR": str(tmp_path)})
    assert store.resolve_secret(settings) == secret
    assert not (tmp_path / "secret").exists()


@pytest.mark.parametrize("secret", ["a", "x" * 31, "é" * 15])  # 1, 31 and 30 bytes
def test_short_secret_from_the_environment_is_refused(tmp_path: Path, secret: str) -> None:
    settings = Settings.from_env({"ARENA_SECRET": secret, "ARENA_DATA_DIR": str(tmp_path)})
    with pytest.raises(ValueError, match=r"at least 32 bytes.*secrets\.token_hex\(32\)"):
        store.resolve_secret(settings)
    assert not (tmp_path / "secret").exists()


def test_multibyte_secret_counts_bytes_not_characters(tmp_path: Path) -> None:
    secret = "é" * 16  # 16 characters, 32 bytes in UTF-8
    settings = Settings.from_env({"ARENA_SECRET": secret, "ARENA_DATA_DIR": str(tmp_path)})
    assert store.resolve_secret(settings) == secret


def test_short_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("short\n")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        store.resolve_secret(Settings.from_env({"ARENA_DATA_DIR": str(tmp_path)}))


def test_secret_generated_on_first_run_and_kept(tmp_path: Path) -> None:
    settings = Settings.from_env({"ARENA_DATA_DIR": str(tmp_path / "data")})
    first = store.resolve_secret(settings)
    path = tmp_path / "data" / "secret"
    assert len(first) == 64 and path.read_text().strip() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # A restart (a new settings object) gets the same secret, hence the same user keys.
    again = store.resolve_secret(Settings.from_env({"ARENA_DATA_DIR": str(tmp_path / "data")}))
    assert again == first
    assert list((tmp_path / "data").iterdir()) == [path]  # no temporary file left behind


def test_empty_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("")
    with pytest.raises(ValueError, match="empty"):
        store.resolve_secret(Settings.from_env({"ARENA_DATA_DIR": str(tmp_path)}))


def test_raw_ip_is_never_stored_or_exported(populated: Engine, tmp_path: Path) -> None:
    key = store.user_key("s3cret", IP)
    bid = vote_on_new_battle(populated, user_key=key)
    out = tmp_path / "export.jsonl.gz"
    store.export_battles(engine=populated, out=out, with_conversations=True)
    exported = gzip.decompress(out.read_bytes()).decode()
    assert key in exported and bid in exported and IP not in exported
    # Every stored text column of every table.
    with populated.connect() as conn:
        for table in ("model", "model_event", "battle", "message", "vote"):
            for row in conn.exec_driver_sql(f"SELECT * FROM {table}"):
                assert all(IP not in str(value) for value in row), (table, row)
