"""Added latency of content moderation per prompt and per answer, for each checker.

Prompts and answers are generated text of realistic lengths (50 to 4,000 characters; some
carry an e-mail, a phone number or a blocklisted phrase).  For each checker the bench times
``Moderator.check_prompt`` on every prompt and the per-frame answer check over a whole
streamed answer (the work a turn adds), against the same calls with moderation off, in the
same run.  The blocklist has 200 rules (180 phrases, 20 regular expressions).

Example::

    python benchmarks/moderation_bench.py --n 400 --json moderation.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from arena.moderation import BlocklistChecker, Checker, Moderator, PiiChecker

WORDS = [
    "the",
    "model",
    "answer",
    "question",
    "explain",
    "python",
    "function",
    "data",
    "value",
    "table",
    "result",
    "please",
    "write",
    "short",
    "story",
    "about",
    "river",
    "mountain",
    "city",
    "history",
    "science",
    "music",
    "code",
    "list",
    "item",
    "compare",
    "two",
    "options",
    "first",
    "second",
    "because",
    "therefore",
    "however",
    "example",
    "number",
]


def text(rng: random.Random, n_chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < n_chars:
        w = rng.choice(WORDS)
        out.append(w)
        size += len(w) + 1
    if rng.random() < 0.2:
        out.insert(rng.randrange(len(out)), rng.choice(["jo@example.org", "+1 415 555 2671"]))
    return " ".join(out)


def blocklist(rng: random.Random) -> BlocklistChecker:
    rules = [(i + 1, f"{rng.choice(WORDS)}zz {rng.choice(WORDS)}qq") for i in range(180)]
    rules += [(181 + i, f"re: \\b{rng.choice(WORDS)}[0-9]{{3,}}x\\b") for i in range(20)]
    return BlocklistChecker(rules)


def time_prompts(moderator: Moderator, prompts: list[str]) -> list[float]:
    async def run() -> list[float]:
        out = []
        for p in prompts:
            t0 = time.perf_counter()
            await moderator.check_prompt(p)
            out.append((time.perf_counter() - t0) * 1000)
        return out

    return asyncio.run(run())


def time_answers(moderator: Moderator, answers: list[str], frame_chars: int) -> list[float]:
    """Whole-answer cost of the per-frame checks (256-character overlap, as the turn does)."""
    out = []
    for a in answers:
        t0 = time.perf_counter()
        done = 0
        for end in range(frame_chars, len(a) + frame_chars, frame_chars):
            end = min(end, len(a))
            moderator.check_fast(a[max(0, done - 256) : end], "answer")
            done = end
        out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"median_ms": statistics.median(ms), "p95_ms": ms[int(0.95 * (len(ms) - 1))]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=400, help="prompts and answers each")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--frame-chars", type=int, default=40, help="text per streamed frame")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    rng = random.Random(args.seed)
    prompts = [text(rng, rng.choice([50, 200, 500, 1000, 4000])) for _ in range(args.n)]
    answers = [text(rng, rng.choice([200, 800, 2000])) for _ in range(args.n)]
    setups: dict[str, list[Checker]] = {
        "off": [],
        "blocklist": [blocklist(rng)],
        "pii": [PiiChecker(["US"])],
        "blocklist+pii": [blocklist(rng), PiiChecker(["US"])],
    }
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "prompt_chars_median": statistics.median(len(x) for x in prompts),
        "answer_chars_median": statistics.median(len(x) for x in answers),
    }
    for name, checkers in setups.items():
        mod = Moderator("off" if name == "off" else "block", checkers)
        results[name] = {
            "prompt": summary(time_prompts(mod, prompts)),
            "answer": summary(time_answers(mod, answers, args.frame_chars)),
        }
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
