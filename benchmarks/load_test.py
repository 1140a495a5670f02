"""Load test: N simulated users battling through the real app, every vote accounted for.

    python benchmarks/load_test.py --users 50 --seconds 60 [--db URL] [--kill-app-at S]
                                   --json OUT
    python benchmarks/load_test.py --via URL --db URL --users 50 --seconds 60 --json OUT

Starts everything it needs itself (a fast OpenAI-compatible streaming server on loopback,
``app.py`` with a roster of three entries on that server, a fresh SQLite database unless
``--db`` names one), drives it with simulated users speaking the HTTP/SSE protocol the
browser uses (one Gradio session per user) -- prompt, stream both sides, vote, new round --
and stops by itself.  A probe user measures time to first token on an idle app and
again under load.  With ``--kill-app-at S`` the app is killed with SIGKILL S seconds in and
restarted; votes acknowledged before the kill must survive.

At the end every acknowledged vote (the reveal names the pair, the button the winner) is
matched against the database: ``lost_votes`` and ``duplicate_votes`` must both be 0.

With ``--via URL`` nothing is started: the users drive an arena that is already running there
(``arena deploy local``: replicas behind HAProxy) and the votes are matched against ``--db``,
counting only votes cast after the run began.  Each simulated user then keeps its own
HAProxy affinity cookie, as a browser does, and sends its own X-Forwarded-For address, so
that per-voter limits see 50 voters rather than one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
REVEAL = re.compile(r"\*\*Model A: ([^*\"]+)\*\* · \*\*Model B: ([^*\"]+)\*\*")


def _literal(json_markdown: str) -> str:
    """A name as revealed: Markdown escapes (doubled by JSON) removed."""
    return re.sub(r"\\\\(.)", r"\1", json_markdown)


# A battle or vote slower than this counts as an error (a killed app leaves jobs hanging).
STEP_TIMEOUT_S = 20.0
WINNERS = {"a": "model_a", "b": "model_b", "tie": "tie", "bothbad": "tie (bothbad)"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s")


def write_roster(path: Path, base_url: str) -> None:
    entries = []
    for name, temp in (("stub-alpha", 0.0), ("stub-bravo", 0.5), ("stub-charlie", 1.0)):
        entries.append(
            f'[[models]]\nname = "{name}"\nbackend = "openai"\nmodel = "stub"\n'
            f'base_url = "{base_url}"\ntemperature = {temp}\nmax_new_tokens = 64\n'
            "max_concurrency = 256\n"
        )
    path.write_text("\n".join(entries), encoding="utf-8")


class GradioSession:
    """One browser session speaking Gradio's queue protocol (sse_v3) over HTTP, as the page
    does: ``POST /gradio_api/queue/join`` per event, then the session's SSE stream from
    ``GET /gradio_api/queue/data``.  Much lighter than a gradio_client per user, so 50 users
    fit beside the app on two cores."""

    def __init__(
        self, http: httpx.AsyncClient, fn_index: dict[str, int], forwarded_for: str = ""
    ) -> None:
        self.http = http
        self.fn = fn_index
        # Events the page runs outside the queue (the config's ``queue: false``).
        self.direct = {name for name in fn_index if name in DIRECT}
        self.session = uuid.uuid4().hex[:11]
        # Per session, as in a browser tab: the balancer's affinity cookie (the shared
        # client's own cookie jar refuses cookies) and, via a balancer, the user's address.
        self.headers: dict[str, str] = {"x-forwarded-for": forwarded_for} if forwarded_for else {}

    def _keep_cookie(self, resp: httpx.Response) -> None:
        server = resp.cookies.get("SERVERID")
        if server:
            self.headers["cookie"] = f"SERVERID={server}"

    async def predict(self, api_name: str, data: list[Any]) -> list[Any]:
        """Run an event that skips the queue (``queue=False``), as the page does."""
        resp = await self.http.post(
            "/gradio_api/run/predict",
            json={
                "data": data,
                "event_data": None,
                "fn_index": self.fn[api_name],
                "trigger_id": None,
                "session_hash": self.session,
            },
            headers=self.headers,
        )
        resp.raise_for_status()
        self._keep_cookie(resp)
        return list(resp.json()["data"])

    async def run(self, api_name: str, data: list[Any], on_message: Any = None) -> Any:
        """Run one event the way the page does: directly if it skips the queue (its output
        data), else through the queue (its messages)."""
        if api_name in self.direct:
            return await self.predict(api_name, data)
        return await self.call(api_name, data, on_message)

    async def call(
        self, api_name: str, data: list[Any], on_message: Any = None
    ) -> list[dict[str, Any]]:
        """Run one event; return its messages (``on_message(msg, t)`` sees each as it comes)."""
        fn = self.fn[api_name]
        join = await self.http.post(
            "/gradio_api/queue/join",
            json={
                "data": data,
                "event_data": None,
                "fn_index": fn,
                "trigger_id": None,
                "session_hash": self.session,
            },
            headers=self.headers,
        )
        join.raise_for_status()
        self._keep_cookie(join)
        event_id = join.json()["event_id"]
        messages: list[dict[str, Any]] = []
        async with self.http.stream(
            "GET",
            "/gradio_api/queue/data",
            params={"session_hash": self.session},
            headers=self.headers,
        ) as stream:
            stream.raise_for_status()
            async for line in stream.aiter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("event_id") not in (None, event_id):
                    continue
                messages.append(msg)
                if on_message is not None:
                    on_message(msg, time.monotonic())
                if msg.get("msg") == "process_completed":
                    if not msg.get("success", False):
                        raise RuntimeError(f"{api_name} failed: {str(msg)[:200]}")
                    return messages
                if msg.get("msg") == "close_stream":
                    break
        raise RuntimeError(f"{api_name}: stream ended before the event completed")


def _has_text(op_list: Any) -> bool:
    """Whether an output's diff ops put real text (not the "…" placeholder) in the panel."""
    if not isinstance(op_list, list):
        return False
    for op in op_list:
        if (
            isinstance(op, list)
            and len(op) == 3
            and isinstance(op[2], str)
            and op[2] not in ("", "…")
        ):
            return True
    return False


@dataclass
class Stats:
    battles: int = 0
    votes_acknowledged: int = 0
    errors: int = 0
    ttft: list[float] = field(default_factory=list)
    vote_ack: list[float] = field(default_factory=list)
    acked: list[tuple[str, str, str]] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)


async def one_battle(
    session: GradioSession, prompt: str, choice: str, stats: Stats | None
) -> float | None:
    """Run one battle and vote; return the TTFT of the slower side (None if unmeasured)."""
    t0 = time.monotonic()
    ttft: dict[int, float] = {}
    seen = {"generating": 0}

    def watch(msg: dict[str, Any], t: float) -> None:
        if msg.get("msg") != "process_generating":
            return
        seen["generating"] += 1
        data = (msg.get("output") or {}).get("data") or []
        if seen["generating"] == 1:
            return  # the first update only sets up the prompt and the placeholders
        for i in (0, 1):
            if i not in ttft and i < len(data) and _has_text(data[i]):
                ttft[i] = t - t0

    # The page's three events for one prompt: vote buttons off, the stream, vote buttons on.
    await asyncio.wait_for(session.predict("battle_send:before", []), STEP_TIMEOUT_S)
    messages = await asyncio.wait_for(
        session.call("battle_send", [prompt, None, [], [], None, None], watch), STEP_TIMEOUT_S
    )
    text_all = json.dumps(messages, ensure_ascii=False)
    if "Both answers are in" not in text_all:
        final = (messages[-1].get("output") or {}).get("data") or []
        status = final[3] if len(final) > 3 else text_all[-200:]
        raise RuntimeError(f"battle did not finish: {str(status)[:200]}")
    buttons = await asyncio.wait_for(session.predict("battle_send:after", [None]), STEP_TIMEOUT_S)
    if not all(isinstance(b, dict) and b.get("interactive") for b in buttons):
        raise RuntimeError(f"vote buttons not switched on after the answers: {buttons}")
    t1 = time.monotonic()
    reply = await asyncio.wait_for(session.run(f"battle_vote_{choice}", [None]), STEP_TIMEOUT_S)
    ack = time.monotonic() - t1
    m = REVEAL.search(json.dumps(reply, ensure_ascii=False))
    if m is None:
        raise RuntimeError(f"vote not acknowledged: {str(reply)[-200:]}")
    if stats is not None:
        stats.battles += 1
        stats.votes_acknowledged += 1
        stats.ttft.extend(ttft.values())
        stats.vote_ack.append(ack)
        stats.acked.append((_literal(m.group(1)), _literal(m.group(2)), WINNERS[choice]))
    return max(ttft.values()) if len(ttft) == 2 else None


def user_address(uid: int, via: bool) -> str:
    """The X-Forwarded-For address of simulated user ``uid`` (none without a balancer)."""
    return f"198.18.{uid // 250}.{uid % 250 + 1}" if via else ""


async def user_loop(
    http: httpx.AsyncClient,
    fn: dict[str, int],
    uid: int,
    deadline: float,
    stats: Stats,
    address: str = "",
) -> None:
    choices = ("a", "b", "tie", "bothbad")
    k = 0
    session = GradioSession(http, fn, address)
    while time.monotonic() < deadline:
        try:
            await one_battle(
                session, f"user {uid} question {k}: tell me something", choices[k % 4], stats
            )
        except Exception as exc:  # counted; the user starts over in a new browser session
            stats.errors += 1
            if len(stats.error_samples) < 5:
                stats.error_samples.append(f"{type(exc).__name__}: {str(exc)[:160]}")
            session = GradioSession(http, fn, address)
            await asyncio.sleep(0.5)
        k += 1


DIRECT: set[str] = set()
# Throwaway battles before the idle probes: two per replica of a two-replica deployment.
WARMUP_BATTLES = 4


def event_ids(config: dict[str, Any]) -> dict[str, int]:
    """Event ids by API name, plus the unnamed events chained before and after the send.

    Also notes in :data:`DIRECT` the named events that skip the queue, which the page (and
    :meth:`GradioSession.run`) sends as one direct POST.
    """
    deps = config["dependencies"]
    fn = {d["api_name"]: d["id"] for d in deps if d.get("api_name")}
    DIRECT.update(d["api_name"] for d in deps if d.get("api_name") and d.get("queue") is False)
    by_id = {d["id"]: d for d in deps}
    send = fn["battle_send"]
    fn["battle_send:before"] = by_id[send]["trigger_after"]
    fn["battle_send:after"] = next(d["id"] for d in deps if d.get("trigger_after") == send)
    return fn


async def probe(
    http: httpx.AsyncClient, fn: dict[str, int], n: int, address: str = ""
) -> list[float]:
    """TTFT of a brand-new user (fresh session each time); failures are left out."""
    out = []
    for i in range(n):
        try:
            session = GradioSession(http, fn, address)
            t = await one_battle(session, f"probe {i} {time.time()}", "tie", None)
        except Exception as exc:  # reported by the missing sample, never fatal
            print(f"probe failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        if t is not None:
            out.append(t)
    return out


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 4)


def start_app(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as f:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--port", str(port)],
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
        )
    wait_http(f"http://127.0.0.1:{port}/", proc, 180)
    return proc


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="arena-load-"))
    stub: subprocess.Popen[bytes] | None = None
    app: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = {}
    app_port = 0
    log = work / "app.log"
    try:
        if args.via:
            url = args.via.rstrip("/")
            db_url = args.db
        else:
            stub_port, app_port = free_port(), free_port()
            stub = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "benchmarks" / "stream_server.py"),
                    "--port",
                    str(stub_port),
                    "--tokens",
                    str(args.tokens),
                    "--delay",
                    str(args.delay),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_http(f"http://127.0.0.1:{stub_port}/v1/models", stub, 60)
            roster = work / "roster.toml"
            write_roster(roster, f"http://127.0.0.1:{stub_port}/v1")
            db_url = args.db or f"sqlite:///{work / 'arena.db'}"
            env = {
                **os.environ,
                "ARENA_DATA_DIR": str(work),
                "ARENA_DB_URL": db_url,
                "ARENA_ROSTER": str(roster),
                "ARENA_PROMPTS_PER_MINUTE": "0",
                "ARENA_VOTES_PER_DAY": "0",
                "ARENA_PROMPTS_PER_MINUTE_PER_ADDRESS": "0",
                "ARENA_VOTES_PER_DAY_PER_ADDRESS": "0",
                "ARENA_DUPLICATE_PROMPT_CAP": "0",
                # Every simulated user comes from this machine's one address: the per-voter
                # and per-address caps on live battles would treat them all as one person.
                "ARENA_MAX_LIVE_BATTLES": "0",
                "ARENA_MAX_LIVE_BATTLES_PER_ADDRESS": "0",
                # The default (256) already admits every user's events; only a bigger run
                # needs more.
                "ARENA_CONCURRENCY_LIMIT": str(max(256, 2 * args.users)),
                "ARENA_LEADERBOARD_REFRESH_S": "5",
                "GRADIO_ANALYTICS_ENABLED": "False",
            }
            app = start_app(env, app_port, log)
            url = f"http://127.0.0.1:{app_port}"
        engine = create_engine(db_url)
        with engine.connect() as conn:
            # Only this run's votes are matched (a deployed arena may hold older ones).
            first_vote_id = int(
                conn.execute(text("SELECT coalesce(max(id), 0) FROM vote")).scalar_one()
            )
        engine.dispose()
        stats = Stats()

        async def drive() -> tuple[list[float], list[float], int | None]:
            nonlocal app
            limits = httpx.Limits(max_connections=4 * args.users + 20)
            timeout = httpx.Timeout(STEP_TIMEOUT_S)
            async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as http:
                http.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
                config = (await http.get("/config")).json()
                fn = event_ids(config)
                probe_address = user_address(args.users, args.via is not None)
                # Warm-up first: a replica's first battle pays for lazy set-up, and behind a
                # balancer the idle probes would otherwise meet cold replicas (round robin
                # sends each new session to the next one), inflating the idle baseline.
                await probe(http, fn, WARMUP_BATTLES, probe_address)
                idle = await probe(http, fn, 5, probe_address)
                deadline = time.monotonic() + args.seconds
                users = [
                    asyncio.create_task(
                        user_loop(
                            http, fn, u, deadline, stats, user_address(u, args.via is not None)
                        )
                    )
                    for u in range(args.users)
                ]
                await asyncio.sleep(min(5.0, args.seconds / 4))  # let the load build up
                loaded = await probe(http, fn, 5, probe_address)
                killed_with = None
                if args.kill_app_at is not None:
                    await asyncio.sleep(max(0.0, args.kill_app_at - min(5.0, args.seconds / 4)))
                    killed_with = len(stats.acked)
                    assert app is not None
                    os.kill(app.pid, signal.SIGKILL)
                    app.wait()
                    app = await asyncio.to_thread(start_app, env, app_port, log)
                await asyncio.gather(*users)
                return idle, loaded, killed_with

        idle, loaded, killed_with = asyncio.run(drive())
        engine = create_engine(db_url)
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT ma.name, mb.name, v.winner, v.battle_id FROM vote v "
                    "JOIN model ma ON ma.id = v.model_a_id JOIN model mb ON mb.id = v.model_b_id "
                    "WHERE v.id > :first"
                ),
                {"first": first_vote_id},
            ).all()
            half_written = conn.execute(
                text(
                    "SELECT count(*) FROM vote v JOIN battle b ON b.id = v.battle_id "
                    "WHERE b.status <> 'voted' AND v.id > :first"
                ),
                {"first": first_vote_id},
            ).scalar_one()
        engine.dispose()
        in_db = Counter((r[0], r[1], r[2]) for r in rows)
        acked = Counter(stats.acked)
        lost = sum((acked - in_db).values())
        duplicates = len(rows) - len({r[3] for r in rows})
        result: dict[str, Any] = {
            "users": args.users,
            "via": args.via,
            "seconds": args.seconds,
            "db": "postgresql" if db_url.startswith("postgresql") else "sqlite",
            "battles": stats.battles,
            "battles_per_s": round(stats.battles / args.seconds, 2),
            "votes_acknowledged": stats.votes_acknowledged,
            "votes_per_s": round(stats.votes_acknowledged / args.seconds, 2),
            "votes_in_db": len(rows),
            "lost_votes": lost,
            "duplicate_votes": duplicates,
            "votes_on_unvoted_battles": int(half_written),
            "errors": stats.errors,
            "error_samples": stats.error_samples,
            "ttft_p50_s": pct(stats.ttft, 0.50),
            "ttft_p95_s": pct(stats.ttft, 0.95),
            "ttft_p99_s": pct(stats.ttft, 0.99),
            "vote_ack_p50_s": pct(stats.vote_ack, 0.50),
            "vote_ack_p95_s": pct(stats.vote_ack, 0.95),
            "direct_events": sorted(DIRECT),
            "new_user_ttft_idle_s": round(statistics.median(idle), 4) if idle else None,
            "new_user_ttft_loaded_s": round(statistics.median(loaded), 4) if loaded else None,
            "new_user_ttft_ratio": (
                round(statistics.median(loaded) / statistics.median(idle), 2)
                if idle and loaded
                else None
            ),
            "stream": {"tokens": args.tokens, "delay_s": args.delay},
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}",
        }
        if killed_with is not None:
            result["killed_app_after_votes"] = killed_with
        return result
    finally:
        for proc in (app, stub):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
                if proc.poll() is None:
                    proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--tokens", type=int, default=24, help="words per streamed reply")
    parser.add_argument("--delay", type=float, default=0.01, help="seconds between chunks")
    parser.add_argument("--kill-app-at", type=float, help="SIGKILL the app after S seconds")
    parser.add_argument(
        "--via", metavar="URL", help="drive an arena already running at URL (needs --db)"
    )
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)
    if args.via and not args.db:
        parser.error("--via needs --db (the database the arena at URL writes)")
    if args.via and args.kill_app_at is not None:
        parser.error("--kill-app-at starts and kills its own app; it cannot be used with --via")
    result = run(args)
    text_out = json.dumps(result, indent=2)
    print(text_out)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text_out + "\n", encoding="utf-8")
    return 0 if result["lost_votes"] == 0 and result["duplicate_votes"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
