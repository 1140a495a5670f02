"""``arena deploy local``: N app replicas behind HAProxy on one machine, for trying it out.

Gradio keeps a browser session's state (the battle in progress, its stream) in the one
process that served the page, so every request of a session must reach that process.
HAProxy's ``cookie SERVERID insert`` pins a session to its replica; the replicas share
everything else through the database (PostgreSQL: SQLite is refused with more than one
replica).  The command writes the HAProxy configuration, prepares the database and the
hashing secret once (so the replicas do not race to create them), starts the replicas and
HAProxy, and stops them all on Ctrl-C or SIGTERM.  Production layouts are in
``deploy/compose.yaml`` and docs/deploy.md.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from arena.cli.common import fail
from arena.config import Settings, SettingsError

__all__ = [
    "HEALTH_PATH",
    "Backend",
    "find_haproxy",
    "haproxy_config",
    "normalise_root_path",
    "refuse_sqlite_replicas",
    "register",
    "run",
]

#: What HAProxy asks a replica to decide that it is up: a cheap route of Gradio's own app,
#: served by the same event loop as the battles (a wedged loop fails the check).
HEALTH_PATH = "/robots.txt"
#: Longest wait for one replica to answer (its first start may convert model weights).
READY_TIMEOUT_S = 300.0
#: Grace period for a process to exit after SIGTERM before it is killed.
STOP_GRACE_S = 15.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Backend:
    """One replica as HAProxy sees it: a server name (also its cookie value) and address."""

    name: str
    address: str


def normalise_root_path(root_path: str) -> str:
    """``/arena`` from ``arena``, ``/arena/`` or ``/arena``; ``""`` for the root.

    Raises
    ------
    ValueError
        For a path with characters that do not belong in a URL path prefix.
    """
    path = root_path.strip().strip("/")
    if not path:
        return ""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/")
    bad = sorted(set(path) - allowed)
    if bad or "//" in path:
        raise ValueError(
            f"--root-path {root_path!r}: only letters, digits, '-._~' and single '/' "
            f"may appear in a path prefix (found {''.join(bad) or '//'})"
        )
    return "/" + path


def haproxy_config(
    backends: Sequence[Backend],
    *,
    bind: str,
    root_path: str = "",
    log_target: str = "stderr",
    nameserver: str = "",
) -> str:
    """The HAProxy configuration for ``backends`` (the text of ``deploy/haproxy.cfg``).

    Parameters
    ----------
    backends
        The replicas; each name is also the value of its affinity cookie.
    bind
        ``address:port`` HAProxy listens on.
    root_path
        URL prefix the arena is served under (:func:`normalise_root_path` form); HAProxy
        strips it before the request reaches a replica, which is started with the same
        ``--root-path`` so that the pages it writes point under the prefix.
    log_target
        HAProxy ``log`` target (``stderr`` for a foreground process, ``stdout`` in a
        container).
    nameserver
        ``address:port`` of a DNS server that resolves the backend host names while HAProxy
        runs (Docker's is ``127.0.0.11:53``), so that HAProxy starts before the replicas'
        containers exist and follows them when they are recreated.  Empty: resolve once,
        at start (addresses given as IPs).

    Returns
    -------
    str
    """
    if not backends:
        raise ValueError("haproxy_config needs at least one backend")
    lines = [
        "# HAProxy in front of Arena replicas (written by arena/cli/deploy.py:haproxy_config;",
        "# `arena deploy local` writes its own copy with the replicas it started).",
        "global",
        f"    log {log_target} format raw local0 notice",
        "    maxconn 4096",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option dontlog-normal",
        # The replicas read the client address from X-Forwarded-For (ARENA_TRUSTED_PROXIES
        # must name HAProxy's address), for the per-voter limits.
        "    option forwardfor",
        "    timeout connect 5s",
        "    timeout http-request 30s",
        "    timeout queue 30s",
        # Server-sent event streams stay open for a whole battle and between events.
        "    timeout client 1h",
        "    timeout server 1h",
        "    timeout tunnel 1h",
        # A request that cannot reach its pinned replica (dead) goes to a live one.
        "    retries 2",
        "    option redispatch",
        "",
    ]
    if nameserver:
        lines += ["resolvers dns", f"    nameserver dns {nameserver}", "    hold valid 5s", ""]
    lines += [
        "frontend arena",
        f"    bind {bind}",
    ]
    if root_path:
        lines += [
            f"    http-request redirect location {root_path}/ code 302 if {{ path {root_path} }}",
            f"    http-request deny deny_status 404 unless {{ path_beg {root_path}/ }}",
            f"    http-request replace-path ^{root_path}(/.*)$ \\1",
        ]
    lines += [
        "    default_backend replicas",
        "",
        "backend replicas",
        "    balance roundrobin",
        # Session affinity: the first response of a browser session sets SERVERID to the
        # replica that served it; later requests carrying it go there.  `indirect` keeps
        # the cookie away from the app, `nocache` stops shared caches from storing it.
        "    cookie SERVERID insert indirect nocache httponly attr SameSite=Lax",
        "    option httpchk",
        f"    http-check send meth GET uri {HEALTH_PATH}",
        "    http-check expect status 200",
        "    default-server check inter 1s fall 2 rise 2 on-marked-down shutdown-sessions",
    ]
    if nameserver:
        lines[-1] += " resolvers dns init-addr last,libc,none"
    lines += [f"    server {b.name} {b.address} cookie {b.name}" for b in backends]
    return "\n".join(lines) + "\n"


def find_haproxy(program: str = "haproxy") -> str | None:
    """The path of the HAProxy program, also where Debian puts it outside a user's PATH."""
    found = shutil.which(program)
    if found is None and program == "haproxy" and os.access("/usr/sbin/haproxy", os.X_OK):
        found = "/usr/sbin/haproxy"
    return found


def refuse_sqlite_replicas(db_url: str, replicas: int) -> str | None:
    """Why ``replicas`` processes cannot share ``db_url``, or ``None`` when they can."""
    if replicas > 1 and make_url(db_url).get_backend_name() == "sqlite":
        return (
            f"--replicas {replicas} with a SQLite database ({db_url}): SQLite lets one "
            "process write at a time and lives in a file on one machine, so replicas would "
            "queue on its write lock and could never run on a second machine. Use "
            "PostgreSQL (--db postgresql+psycopg://user:password@host:5432/dbname), or "
            "--replicas 1."
        )
    return None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "deploy",
        help="run app replicas behind HAProxy",
        description="Run several app replicas behind HAProxy (see docs/deploy.md).",
    )
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    local = targets.add_parser(
        "local",
        help="start HAProxy and N replicas on this machine until Ctrl-C",
        description="Start N `arena serve` replicas on free loopback ports and HAProxy in "
        "front of them (cookie session affinity, health checks), serve on --port, and stop "
        "them all on Ctrl-C or SIGTERM.  Needs the `haproxy` program and, for more than one "
        "replica, PostgreSQL.",
    )
    local.add_argument(
        "--replicas", type=int, default=2, metavar="N", help="app processes (default 2)"
    )
    local.add_argument(
        "--db",
        dest="db_url",
        metavar="URL",
        help="database URL shared by the replicas (ARENA_DB_URL); PostgreSQL for N > 1",
    )
    local.add_argument("--host", help="address HAProxy listens on (ARENA_HOST; default 127.0.0.1)")
    local.add_argument(
        "--port", type=int, help="port HAProxy listens on (ARENA_PORT; default 7860)"
    )
    local.add_argument(
        "--roster", metavar="FILE", help="model roster TOML for every replica (ARENA_ROSTER)"
    )
    local.add_argument(
        "--root-path",
        metavar="PATH",
        help="serve under this URL prefix, e.g. /arena (ARENA_ROOT_PATH)",
    )
    local.add_argument(
        "--run-dir",
        metavar="DIR",
        help="where haproxy.cfg and the logs go (default <data_dir>/deploy)",
    )
    local.add_argument(
        "--haproxy", default="haproxy", metavar="PROGRAM", help="HAProxy program (default haproxy)"
    )
    local.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Start the replicas and HAProxy; return when they are stopped."""
    if args.replicas < 1:
        return fail(f"--replicas {args.replicas}: need at least 1")
    try:
        settings = Settings.from_env().with_overrides(
            host=args.host,
            port=args.port,
            db_url=args.db_url,
            roster=args.roster,
            root_path=args.root_path,
        )
        root_path = normalise_root_path(settings.root_path)
    except (SettingsError, ValueError) as exc:
        return fail(str(exc))
    db_url = settings.resolved_db_url
    reason = refuse_sqlite_replicas(db_url, args.replicas)
    if reason:
        return fail(reason)
    haproxy = find_haproxy(args.haproxy)
    if haproxy is None:
        return fail(
            f"--haproxy {args.haproxy}: program not found; install HAProxy "
            "(Debian/Ubuntu: apt-get install haproxy)"
        )
    if settings.roster and not Path(settings.roster).is_file():
        return fail(f"--roster {settings.roster}: no such file")
    run_dir = Path(args.run_dir or Path(settings.data_dir) / "deploy").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)

    def say(message: str) -> None:
        print(f"arena: {message}", file=sys.stderr, flush=True)

    # The database schema and the hashing secret, once, before any replica starts: every
    # replica must hash a client address to the same voter key.
    from arena import store

    try:
        engine = store.open_engine(db_url, create_if_empty=True)
        engine.dispose()
        store.resolve_secret(settings)
    except store.SchemaOutOfDate as exc:
        print(f"arena: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        return fail(str(exc))
    except Exception as exc:  # a database that cannot be reached
        return fail(f"--db {store.redact_url(db_url)}: cannot open it ({exc.__class__.__name__})")

    ports = _free_ports(args.replicas)
    backends = [Backend(f"app{i + 1}", f"127.0.0.1:{port}") for i, port in enumerate(ports)]
    config = run_dir / "haproxy.cfg"
    config.write_text(
        haproxy_config(backends, bind=f"{settings.host}:{settings.port}", root_path=root_path),
        encoding="utf-8",
    )
    checked = subprocess.run(
        [haproxy, "-c", "-q", "-f", str(config)], capture_output=True, text=True
    )
    if checked.returncode != 0:
        return fail(f"{config}: HAProxy refused the configuration: {checked.stderr.strip()}", 1)

    stop = _StopFlag()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        env = _replica_env(settings)
        for backend, port in zip(backends, ports, strict=True):
            cmd = [sys.executable, "-m", "arena", "serve", "--host", "127.0.0.1"]
            cmd += ["--port", str(port), "--db", db_url]
            if settings.roster:
                cmd += ["--roster", str(Path(settings.roster).resolve())]
            if root_path:
                cmd += ["--root-path", root_path]
            procs[backend.name] = _spawn(cmd, env, run_dir / f"{backend.name}.log")
            say(
                f"replica {backend.name} (pid {procs[backend.name].pid}) on "
                f"http://{backend.address}, log {run_dir / f'{backend.name}.log'}"
            )
        for backend in backends:
            if not _wait_ready(f"http://{backend.address}{HEALTH_PATH}", procs[backend.name], stop):
                if stop.signum:
                    return 0
                say(f"replica {backend.name} did not start; see {run_dir / backend.name}.log")
                return 1
        procs["haproxy"] = _spawn(
            [haproxy, "-db", "-f", str(config)], None, run_dir / "haproxy.log"
        )
        public = f"http://{settings.host}:{settings.port}{root_path}/"
        if not _wait_ready(public, procs["haproxy"], stop):
            if stop.signum:
                return 0
            say(f"HAProxy did not start; see {run_dir / 'haproxy.log'}")
            return 1
        say(
            f"serving {len(backends)} replicas through HAProxy (pid {procs['haproxy'].pid}) "
            f"on {public}; Ctrl-C stops them all"
        )
        return _supervise(procs, stop, say)
    finally:
        _stop_all(procs)


class _StopFlag:
    """Records SIGINT/SIGTERM instead of raising, so that shutdown runs in order."""

    def __init__(self) -> None:
        self.signum = 0
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        self.signum = signum


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):  # all held open together, so they are distinct
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _replica_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    # HAProxy connects from loopback; its X-Forwarded-For names the real client.
    trusted = settings.trusted_proxy_set | {"127.0.0.1"}
    env["ARENA_TRUSTED_PROXIES"] = ",".join(sorted(trusted))
    env["ARENA_DATA_DIR"] = str(Path(settings.data_dir).resolve())
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # A child in its own session does not see the terminal's Ctrl-C (the parent stops the
    # children in order); should the parent itself be killed, the kernel sends SIGTERM.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _spawn(cmd: list[str], env: dict[str, str] | None, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )


def _wait_ready(url: str, proc: subprocess.Popen[bytes], stop: _StopFlag) -> bool:
    import httpx

    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        while time.monotonic() < deadline and not stop.signum:
            if proc.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return True
            time.sleep(0.3)
    return False


def _supervise(
    procs: dict[str, subprocess.Popen[bytes]], stop: _StopFlag, report: Callable[[str], None]
) -> int:
    gone: set[str] = set()
    while not stop.signum:
        time.sleep(0.2)
        if procs["haproxy"].poll() is not None:
            report(f"HAProxy exited with code {procs['haproxy'].returncode}; stopping")
            return 1
        for name, proc in procs.items():
            if name != "haproxy" and name not in gone and proc.poll() is not None:
                gone.add(name)
                report(
                    f"replica {name} exited with code {proc.returncode}; HAProxy sends its "
                    "sessions to the others"
                )
        if len(gone) == len(procs) - 1:
            report("every replica has exited; stopping")
            return 1
    report(f"{signal.Signals(stop.signum).name}: stopping HAProxy and the replicas")
    return 0


def _stop_all(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    # HAProxy first (no new requests), then the replicas, together.
    order = (["haproxy"] if "haproxy" in procs else []) + [n for n in procs if n != "haproxy"]
    for name in order:
        if procs[name].poll() is None:
            procs[name].terminate()
        if name == "haproxy":
            _reap(procs[name])
    for name in order:
        _reap(procs[name])


def _reap(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_GRACE_S)
