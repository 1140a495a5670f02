"""The transformers backend on a CUDA device, in bf16, with the real bundled model.

These tests skip on a machine without CUDA (CI has none); they were run on the lent GPU
machine (BENCHMARKS.md, "Model backends on a GPU").  The first test runs everywhere: asking
for CUDA where there is none is a clear, typed error naming the entry.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from arena.backends import (
    GenerationCancelled,
    GenerationRequest,
    ModelError,
    TextDelta,
    build_backend,
    collect,
)
from arena.backends.transformers_backend import TransformersBackend
from arena.config import Settings
from arena.roster import RosterEntry
from tests.backends.conftest import LONG_PROMPT, STOP_WITHIN_S, timed_stream, with_fields

pytestmark = pytest.mark.model


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


needs_cuda = pytest.mark.skipif(not _cuda_available(), reason="no CUDA device on this machine")


def cuda_backend(entry: RosterEntry, settings: Settings, **changes: object) -> TransformersBackend:
    backend = build_backend(with_fields(entry, device="cuda", **changes), settings=settings)
    assert isinstance(backend, TransformersBackend)
    return backend


@pytest.mark.skipif(_cuda_available(), reason="this machine has CUDA")
def test_cuda_requested_without_a_device_is_a_clear_error(
    greedy_entry: RosterEntry, settings: Settings
) -> None:
    backend = cuda_backend(greedy_entry, settings)
    with pytest.raises(ModelError) as info:
        asyncio.run(backend.load())
    assert info.value.model == greedy_entry.name
    assert "no CUDA device" in str(info.value)


@needs_cuda
def test_loads_on_cuda_in_bf16_by_default(greedy_entry: RosterEntry, settings: Settings) -> None:
    import torch

    backend = cuda_backend(greedy_entry, settings)
    asyncio.run(backend.load())
    loaded = backend.loaded
    assert (loaded.device, loaded.dtype) == ("cuda", "bfloat16")
    params = list(loaded.model.parameters())
    assert {p.device.type for p in params} == {"cuda"}
    assert {p.dtype for p in params} == {torch.bfloat16}


@needs_cuda
def test_greedy_reply_matches_direct_generate(
    greedy_entry: RosterEntry, settings: Settings
) -> None:
    """Through the backend (worker thread, streamer, stop criterion) the greedy tokens are
    exactly those of a plain ``model.generate`` on the same inputs."""
    backend = cuda_backend(greedy_entry, settings)
    prompt = "What is the capital of France?"

    async def through() -> str:
        await backend.load()
        reply = await collect(backend, GenerationRequest.from_prompt(prompt, max_new_tokens=24))
        assert reply.stats.finish_reason in ("stop", "length")
        return reply.text

    text = asyncio.run(through())
    request = GenerationRequest.from_prompt(prompt, max_new_tokens=24)
    inputs = backend.encode(request)
    out = backend.loaded.model.generate(**inputs, **backend.generation_kwargs(request))
    direct = backend.loaded.tokenizer.decode(
        out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True
    )
    assert "Paris" in text
    assert text.strip() == direct.strip()


@needs_cuda
def test_streams_and_four_concurrent_streams_interleave(
    greedy_entry: RosterEntry, settings: Settings
) -> None:
    backend = cuda_backend(greedy_entry, settings, max_concurrency=4)
    prompts = ["List three fruits.", "Name two rivers.", "Say hello in French.", "Count to 5."]
    order: list[int] = []

    async def side(i: int) -> None:
        request = GenerationRequest.from_prompt(prompts[i], max_new_tokens=32)
        async for event in backend.stream(request):
            if isinstance(event, TextDelta):
                order.append(i)

    async def run() -> None:
        await backend.load()
        arrivals, stats, total = await timed_stream(
            backend, GenerationRequest.from_prompt("Count from 1 to 20.", max_new_tokens=48)
        )
        assert len(arrivals) >= 10
        assert arrivals[0][0] < 0.5 * total
        assert stats.tokens_per_s > 0
        await asyncio.gather(*(side(i) for i in range(4)))

    asyncio.run(run())
    assert set(order) == {0, 1, 2, 3}
    # Every stream produced text before the last one finished: none waited for another.
    last_end = min(len(order) - 1 - order[::-1].index(i) for i in range(4))
    assert all(order.index(i) < last_end for i in range(4)), order
    assert backend.in_flight == 0


@needs_cuda
def test_cancel_stops_the_gpu_within_the_bound(
    greedy_entry: RosterEntry, settings: Settings
) -> None:
    backend = cuda_backend(greedy_entry, settings, max_new_tokens=2000)
    request = GenerationRequest.from_prompt(LONG_PROMPT)

    async def run() -> float:
        await backend.load()
        deltas = 0
        t_cancel = 0.0
        with pytest.raises(GenerationCancelled):
            async for _ in backend.stream(request):
                deltas += 1
                if deltas == 5:
                    assert backend.cancel(request.request_id)
                    t_cancel = time.monotonic()
        while backend.in_flight and time.monotonic() - t_cancel < 5.0:
            await asyncio.sleep(0.005)
        return time.monotonic() - t_cancel

    assert asyncio.run(run()) < STOP_WITHIN_S


@needs_cuda
def test_float16_on_request(greedy_entry: RosterEntry, settings: Settings) -> None:
    import torch

    backend = cuda_backend(greedy_entry, settings, dtype="float16")
    reply = asyncio.run(
        collect(backend, GenerationRequest.from_prompt("Say hello.", max_new_tokens=8))
    )
    assert reply.text.strip()
    assert backend.loaded.dtype == "float16"
    assert next(backend.loaded.model.parameters()).dtype == torch.float16
