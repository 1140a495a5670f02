"""Benchmark the ``transformers`` backend against calling ``model.generate`` directly.

Both paths run in the same process on the same loaded weights, greedy, on the same prompt, so
they produce the same tokens and the comparison is of overhead only: the backend's worker
thread, streamer, stopping criterion, slot limiter and event-loop hand-off.  Runs alternate
between the two paths and medians are reported, because a shared machine's speed drifts.

Then ``N`` concurrent streams (one battle has two) go through the backend, compared with
running the same requests one after another, and with one batched ``model.generate`` call on
the same prompts (the most a static batch can give on this device).

Examples
--------
::

    python benchmarks/backend_bench.py                        # default roster, CPU/auto
    python benchmarks/backend_bench.py --threads 1 --json cpu.json
    python benchmarks/backend_bench.py --device cuda --concurrency 2,4 --json cuda.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from arena.backends import GenerationRequest, GenerationStats, TextDelta
from arena.backends.transformers_backend import TransformersBackend
from arena.config import Settings
from arena.roster import load_roster

PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a bicycle stays upright, step by step, for a curious ten-year-old.",
    "Describe a walk through a busy market in the morning, with sounds and smells.",
    "Give a detailed recipe for vegetable soup, with every step explained.",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--roster", default=None, help="roster file (default: bundled models.toml)")
    p.add_argument("--model", default=None, help="roster entry (default: the first)")
    p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help="override")
    p.add_argument(
        "--dtype", default=None, choices=["auto", "float32", "bfloat16", "float16"], help="override"
    )
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="tokens per reply")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per path")
    p.add_argument(
        "--concurrency", default="2", help="comma-separated stream counts, e.g. 2,4 (0: skip)"
    )
    p.add_argument(
        "--breakdown",
        type=int,
        default=0,
        metavar="REPEATS",
        help="also time direct generate with each piece of the backend's path added alone "
        "(worker thread, stop criterion, streamer), REPEATS runs each (0: skip)",
    )
    p.add_argument("--json", dest="json_out", default=None, metavar="OUT", help="write results")
    return p.parse_args(argv)


class _FirstTokenClock:
    """Minimal streamer for the direct path: notes when the first new token arrives."""

    def __init__(self) -> None:
        self.prompt_seen = False
        self.first: float | None = None

    def put(self, value: Any) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
        elif self.first is None:
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


def direct_run(backend: TransformersBackend, prompt: str, max_new: int) -> dict[str, Any]:
    """One ``model.generate`` call, timed from the chat template to the last token."""
    loaded = backend.loaded
    request = GenerationRequest.from_prompt(prompt, max_new_tokens=max_new)
    clock = _FirstTokenClock()
    c0 = time.process_time()
    t0 = time.perf_counter()
    inputs = backend.encode(request)
    out = loaded.model.generate(**inputs, **backend.generation_kwargs(request), streamer=clock)
    _sync(loaded.device)
    total = time.perf_counter() - t0
    cpu = time.process_time() - c0
    new = out[0, inputs["input_ids"].shape[1] :]
    assert clock.first is not None
    return {
        "tokens": int(new.shape[0]),
        "ttft_s": clock.first - t0,
        "latency_s": total,
        "tokens_per_s": int(new.shape[0]) / total,
        "cpu_s": cpu,
        "tokens_per_cpu_s": int(new.shape[0]) / cpu,
        "text": loaded.tokenizer.decode(new, skip_special_tokens=True),
    }


async def backend_run(backend: TransformersBackend, prompt: str, max_new: int) -> dict[str, Any]:
    """One reply streamed through the backend, timed by the caller's clock and the stats."""
    request = GenerationRequest.from_prompt(prompt, max_new_tokens=max_new)
    parts: list[str] = []
    stats: GenerationStats | None = None
    c0 = time.process_time()
    t0 = time.perf_counter()
    first: float | None = None
    async for event in backend.stream(request):
        if isinstance(event, TextDelta):
            if first is None:
                first = time.perf_counter()
            parts.append(event.text)
        else:
            stats = event
    total = time.perf_counter() - t0
    cpu = time.process_time() - c0
    assert stats is not None and first is not None
    return {
        "tokens": stats.completion_tokens,
        "ttft_s": first - t0,
        "latency_s": total,
        "tokens_per_s": stats.completion_tokens / total,
        "cpu_s": cpu,
        "tokens_per_cpu_s": stats.completion_tokens / cpu,
        "queued_s": stats.queued_s,
        "text": "".join(parts),
    }


def direct_batch(backend: TransformersBackend, prompts: list[str], max_new: int) -> dict[str, Any]:
    """The same prompts as one left-padded batched ``model.generate`` call."""
    loaded = backend.loaded
    tok = loaded.tokenizer
    texts = [
        backend.render_prompt(GenerationRequest.from_prompt(p, max_new_tokens=max_new))
        for p in prompts
    ]
    side, pad_token = tok.padding_side, tok.pad_token
    tok.padding_side = "left"
    if pad_token is None:  # some tokenizers name none; the end-of-sequence token pads here
        tok.pad_token = tok.eos_token
    try:
        t0 = time.perf_counter()
        inputs = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(
            loaded.device
        )
        request = GenerationRequest.from_prompt(prompts[0], max_new_tokens=max_new)
        out = loaded.model.generate(**inputs, **backend.generation_kwargs(request))
        _sync(loaded.device)
        total = time.perf_counter() - t0
    finally:
        tok.padding_side = side
        tok.pad_token = pad_token
    new = out[:, inputs["input_ids"].shape[1] :]
    pad = tok.pad_token_id if tok.pad_token_id is not None else -1
    tokens = 0
    for row in new.tolist():
        # Count up to and including the first end-of-sequence token, as the backend does.
        for t in row:
            tokens += 1
            if t in loaded.eos_token_ids or t == pad:
                break
    return {
        "streams": len(prompts),
        "tokens": tokens,
        "wall_s": total,
        "tokens_per_s": tokens / total,
    }


# One long-lived worker thread, reused across calls (a thread-pool's behaviour).
_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-pooled")


def piecewise(backend: TransformersBackend, prompt: str, max_new: int) -> dict[str, float]:
    """One direct ``generate`` per variant, each adding one piece of the backend's path.

    Returns tokens per second for: the plain call on this thread; the same call in a fresh
    thread (the backend starts one per reply); with the backend's stop criterion; with its
    streamer; and with all three together (the backend minus the event loop).
    """
    from transformers import StoppingCriteriaList

    from arena.backends.transformers_backend import _DeltaStreamer, _StopWhen

    loaded = backend.loaded
    request = GenerationRequest.from_prompt(prompt, max_new_tokens=max_new)

    class _Sink:
        stop = threading.Event()
        deadline = float("inf")

        def text(self, text: str) -> None:
            pass

    def run(*, thread: bool, stopper: bool, streamer: bool, pooled: bool = False) -> float:
        inputs = backend.encode(request)
        kwargs = dict(backend.generation_kwargs(request))
        if stopper:
            kwargs["stopping_criteria"] = StoppingCriteriaList([_StopWhen(_Sink())])  # type: ignore[arg-type]
        if streamer:
            kwargs["streamer"] = _DeltaStreamer(loaded.tokenizer, _Sink())  # type: ignore[arg-type]
        out: list[Any] = []

        def call() -> None:
            out.append(loaded.model.generate(**inputs, **kwargs))
            _sync(loaded.device)

        t0 = time.perf_counter()
        if pooled:
            _POOL.submit(call).result()
        elif thread:
            worker = threading.Thread(target=call)
            worker.start()
            worker.join()
        else:
            call()
        total = time.perf_counter() - t0
        return int(out[0].shape[1] - inputs["input_ids"].shape[1]) / total

    return {
        "plain": run(thread=False, stopper=False, streamer=False),
        "fresh_thread": run(thread=True, stopper=False, streamer=False),
        "long_lived_thread": run(thread=True, stopper=False, streamer=False, pooled=True),
        "stop_criterion": run(thread=False, stopper=True, streamer=False),
        "streamer": run(thread=False, stopper=False, streamer=True),
        "all_three": run(thread=True, stopper=True, streamer=True),
    }


async def concurrent(
    backend: TransformersBackend, prompts: list[str], max_new: int
) -> dict[str, Any]:
    t0 = time.perf_counter()
    runs = await asyncio.gather(*(backend_run(backend, p, max_new) for p in prompts))
    wall = time.perf_counter() - t0
    tokens = sum(r["tokens"] for r in runs)
    return {
        "streams": len(prompts),
        "tokens": tokens,
        "wall_s": wall,
        "tokens_per_s": tokens / wall,
        "ttft_s": [r["ttft_s"] for r in runs],
        "max_queued_s": max(r["queued_s"] for r in runs),
    }


async def sequential(
    backend: TransformersBackend, prompts: list[str], max_new: int
) -> dict[str, Any]:
    t0 = time.perf_counter()
    tokens = 0
    for p in prompts:
        tokens += (await backend_run(backend, p, max_new))["tokens"]
    wall = time.perf_counter() - t0
    return {
        "streams": len(prompts),
        "tokens": tokens,
        "wall_s": wall,
        "tokens_per_s": tokens / wall,
    }


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def environment(backend: TransformersBackend) -> dict[str, Any]:
    import torch
    import transformers

    loaded = backend.loaded
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": loaded.device,
        "dtype": loaded.dtype,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "model": loaded.source,
        "load_s": loaded.load_s,
    }
    if loaded.device == "cuda":
        env["gpu"] = torch.cuda.get_device_name(0)
    if hasattr(os, "getloadavg"):
        env["loadavg_before"] = os.getloadavg()[0]
    return env


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    roster = load_roster(args.roster)
    entry = roster[args.model] if args.model else roster.entries[0]
    changes: dict[str, Any] = {"temperature": 0.0, "max_new_tokens": args.max_new_tokens}
    if args.device:
        changes["device"] = args.device
    if args.dtype:
        changes["dtype"] = args.dtype
    levels = [int(x) for x in args.concurrency.split(",") if x.strip() and int(x) > 0]
    changes["max_concurrency"] = max([1, *levels])
    # Greedy: both paths must produce the same tokens for the timings to be comparable.
    entry = replace(entry, **changes)
    settings = Settings.from_env().with_overrides(generation_timeout_s=3600.0)
    backend = TransformersBackend(entry, settings=settings)
    await backend.load()
    result: dict[str, Any] = {
        "entry": entry.name,
        "max_new_tokens": args.max_new_tokens,
        "environment": environment(backend),
    }
    prompt = PROMPTS[0]
    # Warm-up: first calls pay for lazy initialisation (kernels, allocator, tokenizer caches).
    direct_run(backend, prompt, 8)
    await backend_run(backend, prompt, 8)

    direct: list[dict[str, Any]] = []
    through: list[dict[str, Any]] = []
    for i in range(args.repeats):
        order = ("direct", "backend") if i % 2 == 0 else ("backend", "direct")
        for path in order:
            if path == "direct":
                direct.append(direct_run(backend, prompt, args.max_new_tokens))
            else:
                through.append(await backend_run(backend, prompt, args.max_new_tokens))
        print(
            f"run {i + 1}/{args.repeats}: direct {direct[-1]['tokens_per_s']:.1f} tok/s "
            f"({direct[-1]['tokens_per_cpu_s']:.1f}/cpu-s), "
            f"backend {through[-1]['tokens_per_s']:.1f} tok/s "
            f"({through[-1]['tokens_per_cpu_s']:.1f}/cpu-s)",
            file=sys.stderr,
        )
    same_text = all(r["text"] == direct[0]["text"] for r in direct + through)
    single: dict[str, Any] = {
        "direct": {
            "tokens": direct[0]["tokens"],
            "tokens_per_s": _median(direct, "tokens_per_s"),
            "ttft_s": _median(direct, "ttft_s"),
            "latency_s": _median(direct, "latency_s"),
            "tokens_per_cpu_s": _median(direct, "tokens_per_cpu_s"),
        },
        "backend": {
            "tokens": through[0]["tokens"],
            "tokens_per_s": _median(through, "tokens_per_s"),
            "ttft_s": _median(through, "ttft_s"),
            "latency_s": _median(through, "latency_s"),
            "tokens_per_cpu_s": _median(through, "tokens_per_cpu_s"),
        },
        "same_text": same_text,
        "repeats": args.repeats,
    }
    single["ratio_tokens_per_s"] = (
        single["backend"]["tokens_per_s"] / single["direct"]["tokens_per_s"]
    )
    # CPU time is far less sensitive than wall time to other jobs on a shared machine: the
    # ratio of tokens per CPU-second is the overhead measure to trust there.
    single["ratio_tokens_per_cpu_s"] = (
        single["backend"]["tokens_per_cpu_s"] / single["direct"]["tokens_per_cpu_s"]
    )
    single["ttft_overhead_s"] = single["backend"]["ttft_s"] - single["direct"]["ttft_s"]
    result["single_stream"] = single

    if args.breakdown:
        runs = [piecewise(backend, prompt, args.max_new_tokens) for _ in range(args.breakdown)]
        result["breakdown_tokens_per_s"] = {
            key: float(statistics.median(r[key] for r in runs)) for key in runs[0]
        }
        print(f"breakdown (tokens/s): {result['breakdown_tokens_per_s']}", file=sys.stderr)

    result["concurrent"] = []
    for n in levels:
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
        row: dict[str, Any] = {
            "streams": n,
            "backend_concurrent": await concurrent(backend, prompts, args.max_new_tokens),
            "backend_sequential": await sequential(backend, prompts, args.max_new_tokens),
            "direct_batched": direct_batch(backend, prompts, args.max_new_tokens),
        }
        result["concurrent"].append(row)
        print(
            f"{n} streams: concurrent {row['backend_concurrent']['tokens_per_s']:.1f} tok/s, "
            f"sequential {row['backend_sequential']['tokens_per_s']:.1f}, "
            f"batched generate {row['direct_batched']['tokens_per_s']:.1f}",
            file=sys.stderr,
        )
    if hasattr(os, "getloadavg"):
        result["environment"]["loadavg_after"] = os.getloadavg()[0]
    return result


def report(result: dict[str, Any]) -> str:
    env = result["environment"]
    s = result["single_stream"]
    lines = [
        f"entry {result['entry']} on {env['device']} ({env.get('gpu', env['machine'])}), "
        f"{env['dtype']}, torch {env['torch']}, transformers {env['transformers']}, "
        f"{env['torch_threads']} torch threads",
        f"single stream, {s['direct']['tokens']} tokens, median of {s['repeats']}:",
        f"  direct generate: {s['direct']['tokens_per_s']:.1f} tok/s, "
        f"TTFT {s['direct']['ttft_s'] * 1000:.0f} ms",
        f"  backend stream:  {s['backend']['tokens_per_s']:.1f} tok/s, "
        f"TTFT {s['backend']['ttft_s'] * 1000:.0f} ms",
        f"  ratio {s['ratio_tokens_per_s']:.3f} (per CPU-second "
        f"{s['ratio_tokens_per_cpu_s']:.3f}), TTFT overhead "
        f"{s['ttft_overhead_s'] * 1000:+.1f} ms, identical text: {s['same_text']}",
    ]
    if "breakdown_tokens_per_s" in result:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in result["breakdown_tokens_per_s"].items())
        lines.append(f"direct generate plus one piece of the backend (tok/s): {parts}")
    for row in result["concurrent"]:
        c, q, b = row["backend_concurrent"], row["backend_sequential"], row["direct_batched"]
        lines.append(
            f"{row['streams']} streams: backend concurrent {c['tokens_per_s']:.1f} tok/s "
            f"(TTFT {', '.join(f'{t * 1000:.0f}' for t in c['ttft_s'])} ms), "
            f"sequential {q['tokens_per_s']:.1f} tok/s, "
            f"one batched generate {b['tokens_per_s']:.1f} tok/s"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = asyncio.run(main_async(args))
    print(report(result))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
