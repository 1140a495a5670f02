"""A flood from one client against a victim's time to first token (issue 11, part 1).

One attacker key keeps trying to hold 20 battles open at once (each refused attempt is
retried after 0.2 s, each finished battle is replaced at once); a victim on another key plays
battles one after another and measures the time from sending the prompt to the first text
of both sides.  Baseline: the same victim on an idle arena, in the same run.  The models are
``openai`` roster entries on ``benchmarks/stream_server.py`` (a real loopback HTTP server that
streams N words D seconds apart), so slot waits and streaming go through the whole backend.

Rows: idle; flood with the defaults (live-battle cap 2 + fair slots); flood with the cap off
(``--no-cap``: fair slots only, what the queue alone buys).

Example::

    python benchmarks/flood_bench.py --battles 12 --json flood.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from arena.battles import Arena, BattleRefused
from arena.config import Settings
from arena.roster import parse_roster

ROOT = Path(__file__).resolve().parents[1]
SECRET = "flood-bench-secret-0123456789abcdef0123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def stub(tokens: int, delay: float) -> Any:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "stream_server.py"),
            "--port",
            str(port),
            "--tokens",
            str(tokens),
            "--delay",
            str(delay),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/models", timeout=1, trust_env=False).is_success:
                    break
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def make_arena(url: str, workdir: Path, *, cap: int, concurrency: int) -> Arena:
    settings = Settings.from_env().with_overrides(
        data_dir=str(workdir),
        db_url="",
        secret=SECRET,
        max_live_battles=cap,
        max_live_battles_per_address=cap,
        prompts_per_minute=0,
        max_queued=64,
        slot_wait_s=60.0,
    )
    doc = {
        "models": [
            {
                "name": f"stub-{i}",
                "backend": "openai",
                "model": "stub",
                "base_url": url,
                "temperature": 0.1 * i,
                "max_concurrency": concurrency,
                "max_new_tokens": 512,
            }
            for i in range(2)
        ]
    }
    return Arena.open(settings, roster=parse_roster(doc, path=workdir / "roster.toml"))


async def victim_ttft(arena: Arena, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.monotonic()
        first: float | None = None
        async for u in arena.turn(owner=f"victim:{i}", user_key="victim", prompt=f"v{i}"):
            if first is None and u.a.text and u.b.text:
                first = time.monotonic() - t0
        if first is None or u.status != "ready":
            raise RuntimeError(f"victim battle {i} ended {u.status}: {u.message}")
        out.append(first)
    return out


async def flood(arena: Arena, stop: asyncio.Event, counts: dict[str, int]) -> None:
    async def one(slot: int) -> None:
        k = 0
        while not stop.is_set():
            k += 1
            try:
                async for _update in arena.turn(
                    owner=f"atk:{slot}:{k}", user_key="attacker", prompt=f"a{slot}-{k}"
                ):
                    if stop.is_set():
                        break
                counts["accepted"] += 1
            except BattleRefused as exc:
                counts[exc.reason] = counts.get(exc.reason, 0) + 1
                await asyncio.sleep(0.2)

    await asyncio.gather(*(one(s) for s in range(20)))


async def scenario(
    url: str, *, attack: bool, cap: int, battles: int, concurrency: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        arena = make_arena(url, Path(tmp), cap=cap, concurrency=concurrency)
        counts: dict[str, int] = {"accepted": 0}
        stop = asyncio.Event()
        task = asyncio.create_task(flood(arena, stop, counts)) if attack else None
        if task is not None:
            await asyncio.sleep(2.0)  # let the flood fill every slot first
        try:
            ttft = await victim_ttft(arena, battles)
        finally:
            stop.set()
            if task is not None:
                await asyncio.wait_for(task, 120)
            await arena.aclose()
            arena.engine.dispose()
    return {
        "ttft_p50_s": statistics.median(ttft),
        "ttft_max_s": max(ttft),
        "attacker": counts,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--battles", type=int, default=12, help="victim battles per scenario")
    p.add_argument("--tokens", type=int, default=40, help="words per reply")
    p.add_argument("--delay", type=float, default=0.025, help="seconds between words")
    p.add_argument("--concurrency", type=int, default=2, help="max_concurrency per model")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
    }
    with stub(args.tokens, args.delay) as url:
        kw = {"battles": args.battles, "concurrency": args.concurrency}
        results["idle"] = asyncio.run(scenario(url, attack=False, cap=2, **kw))
        results["flood_defaults"] = asyncio.run(scenario(url, attack=True, cap=2, **kw))
        results["flood_no_cap"] = asyncio.run(scenario(url, attack=True, cap=0, **kw))
    idle = results["idle"]["ttft_p50_s"]
    for name in ("flood_defaults", "flood_no_cap"):
        results[name]["ratio_to_idle"] = results[name]["ttft_p50_s"] / idle
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
