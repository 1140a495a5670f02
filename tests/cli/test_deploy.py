"""``arena deploy local``: its refusals, and the HAProxy configuration it writes.

The replicas themselves, behind a real HAProxy on PostgreSQL, are exercised by
tests/integration/test_replicas.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from arena.cli.deploy import (
    Backend,
    find_haproxy,
    haproxy_config,
    normalise_root_path,
    refuse_sqlite_replicas,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_BACKENDS = [Backend("app1", "app1:7860"), Backend("app2", "app2:7860")]


def arena(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arena", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize("replicas", [2, 5])
def test_sqlite_with_replicas_is_refused_with_the_reason(tmp_path: Path, replicas: int) -> None:
    db = tmp_path / "a.db"
    proc = arena(
        *("deploy", "local", "--replicas", str(replicas), "--db", f"sqlite:///{db}"),
        *("--run-dir", str(tmp_path / "run")),
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"--replicas {replicas} with a SQLite database" in proc.stderr
    assert "one process write at a time" in proc.stderr and "PostgreSQL" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not db.exists() and not (tmp_path / "run").exists()  # refused before anything


def test_the_default_database_is_sqlite_and_refused_too(tmp_path: Path) -> None:
    proc = arena("deploy", "local", "--replicas", "3", cwd=tmp_path)
    assert proc.returncode == 2 and "SQLite" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--replicas", "0"), "--replicas 0: need at least 1"),
        (("--replicas", "1", "--haproxy", "no-such-haproxy-program"), "program not found"),
        (("--replicas", "1", "--root-path", "/a b"), "--root-path '/a b'"),
        (("--replicas", "1", "--roster", "missing.toml"), "--roster missing.toml: no such file"),
    ],
)
def test_bad_input_exits_2_naming_it(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    proc = arena("deploy", "local", *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_one_replica_may_use_sqlite() -> None:
    assert refuse_sqlite_replicas("sqlite:////tmp/x.db", 1) is None
    assert refuse_sqlite_replicas("postgresql+psycopg://u@h/db", 8) is None
    assert refuse_sqlite_replicas("sqlite://", 2) is not None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ""),
        ("/", ""),
        ("arena", "/arena"),
        ("/arena/", "/arena"),
        ("/a/b-c_d.e~", "/a/b-c_d.e~"),
    ],
)
def test_root_paths_are_normalised(raw: str, expected: str) -> None:
    assert normalise_root_path(raw) == expected


@pytest.mark.parametrize("bad", ["/a b", "/a//b", "/a?x=1", "/a#b", "/é"])
def test_bad_root_paths_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="--root-path"):
        normalise_root_path(bad)


def test_the_committed_compose_config_is_the_generated_one() -> None:
    committed = (ROOT / "deploy" / "haproxy.cfg").read_text(encoding="utf-8")
    generated = haproxy_config(
        COMPOSE_BACKENDS, bind=":7860", log_target="stdout", nameserver="127.0.0.11:53"
    )
    assert committed == generated, "deploy/haproxy.cfg is stale: regenerate it (docs/deploy.md)"


def test_the_config_pins_sessions_and_checks_health() -> None:
    cfg = haproxy_config(
        [Backend(f"app{i}", f"127.0.0.1:{9000 + i}") for i in range(1, 4)],
        bind="0.0.0.0:8080",
        root_path="/x/y",
    )
    assert "cookie SERVERID insert indirect nocache" in cfg
    for i in range(1, 4):
        assert f"server app{i} 127.0.0.1:{9000 + i} cookie app{i}" in cfg
    assert "option httpchk" in cfg and "option redispatch" in cfg
    assert "replace-path ^/x/y(/.*)$ \\1" in cfg
    with pytest.raises(ValueError):
        haproxy_config([], bind=":1")


@pytest.mark.parametrize("root_path", ["", "/arena", "/a/b"])
def test_haproxy_accepts_the_generated_config(tmp_path: Path, root_path: str) -> None:
    haproxy = find_haproxy()
    if haproxy is None:
        pytest.skip("haproxy is not installed (.ci/system-packages installs it)")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        haproxy_config(
            [Backend("app1", "127.0.0.1:9001"), Backend("app2", "127.0.0.1:9002")],
            bind="127.0.0.1:9000",
            root_path=root_path,
        ),
        encoding="utf-8",
    )
    proc = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
