"""The transformers backend on the real bundled SmolLM2-135M-Instruct, on CPU."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from arena.backends import (
    BackendTimeout,
    GenerationCancelled,
    GenerationRequest,
    GenerationStats,
    TextDelta,
    build_backend,
    collect,
)
from arena.backends.transformers_backend import TransformersBackend
from arena.backends.weights import shared_model_cache
from arena.config import Settings
from arena.roster import Roster, RosterEntry
from tests.backends.conftest import (
    LONG_PROMPT,
    STOP_WITHIN_S,
    timed_stream,
    with_fields,
)

pytestmark = pytest.mark.model


def backend_for(entry: RosterEntry, settings: Settings) -> TransformersBackend:
    backend = build_backend(entry, settings=settings)
    assert isinstance(backend, TransformersBackend)
    return backend


async def wait_until_free(backend: TransformersBackend, limit_s: float) -> float:
    """Seconds until the backend holds no slot (i.e. the generation thread has stopped)."""
    t0 = time.monotonic()
    while backend.in_flight:
        if time.monotonic() - t0 > limit_s:
            break
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


def test_variants_share_one_loaded_model(
    roster: Roster, settings: Settings, converted_model_dir: Path
) -> None:
    backends = [backend_for(e, settings) for e in roster]

    async def load_all() -> None:
        await asyncio.gather(*(b.load() for b in backends))

    asyncio.run(load_all())
    assert len({id(b.loaded) for b in backends}) == 1
    assert len({id(b.loaded.model) for b in backends}) == 1
    keys = [
        k for k in shared_model_cache().loaded_keys() if k[0] == str(roster.entries[0].model_path)
    ]
    assert len(keys) == 1
    # The GGUF was converted once into the cache, and the copy is what got loaded.
    assert Path(backends[0].loaded.source) == converted_model_dir
    assert (converted_model_dir / "arena-conversion.json").is_file()
    assert backends[0].loaded.device == "cpu"
    assert backends[0].loaded.dtype == "float32"


def test_streaming_yields_incrementally(greedy_entry: RosterEntry, settings: Settings) -> None:
    backend = backend_for(greedy_entry, settings)
    request = GenerationRequest.from_prompt(
        "Count from 1 to 20, one number per line.", max_new_tokens=48
    )

    async def run() -> tuple[list[tuple[float, str]], GenerationStats, float]:
        await backend.load()
        return await timed_stream(backend, request)

    arrivals, stats, total = asyncio.run(run())
    assert len(arrivals) >= 10, arrivals
    first_at = arrivals[0][0]
    # The first text arrives long before the reply ends: it was streamed, not batched.
    assert first_at < 0.5 * total, (first_at, total)
    assert len({round(t, 3) for t, _ in arrivals}) >= 5
    text = "".join(t for _, t in arrivals)
    assert "1" in text and "2" in text
    assert stats.model == greedy_entry.name
    assert stats.completion_tokens == 48 or stats.finish_reason == "stop"
    assert stats.ttft_s is not None and 0 < stats.ttft_s <= stats.latency_s
    assert stats.prompt_tokens and stats.prompt_tokens > 10
    assert stats.tokens_per_s > 0
    assert backend.in_flight == 0


def test_greedy_reply_is_sensible_and_deterministic(
    greedy_entry: RosterEntry, settings: Settings
) -> None:
    backend = backend_for(greedy_entry, settings)
    request = GenerationRequest.from_prompt("What is the capital of France?", max_new_tokens=24)

    async def twice() -> tuple[str, str]:
        a = await collect(backend, request)
        b = await collect(
            backend,
            GenerationRequest.from_prompt("What is the capital of France?", max_new_tokens=24),
        )
        assert a.stats.finish_reason in ("stop", "length")
        return a.text, b.text

    first, second = asyncio.run(twice())
    assert "Paris" in first
    assert first == second


def test_chat_template_and_system_prompt_applied(roster: Roster, settings: Settings) -> None:
    concise = backend_for(roster["smollm2-135m-concise"], settings)
    default = backend_for(roster["smollm2-135m-greedy"], settings)
    asyncio.run(concise.load())
    asyncio.run(default.load())
    request = GenerationRequest.from_prompt("Name a prime number.")
    system = roster["smollm2-135m-concise"].system_prompt
    assert system
    rendered = concise.render_prompt(request)
    assert rendered.startswith(f"<|im_start|>system\n{system}<|im_end|>\n")
    assert "<|im_start|>user\nName a prime number.<|im_end|>\n" in rendered
    assert rendered.endswith("<|im_start|>assistant\n")
    assert rendered.count("<|im_start|>system") == 1
    # No roster system prompt: the template's own default system turn is used.
    assert "You are a helpful AI assistant named SmolLM" in default.render_prompt(request)
    assert system not in default.render_prompt(request)
    # The prompt the model actually consumed is exactly this rendering.
    tokenizer = concise.loaded.tokenizer
    expected_tokens = len(tokenizer(rendered, add_special_tokens=False)["input_ids"])
    reply = asyncio.run(
        collect(concise, GenerationRequest.from_prompt("Name a prime number.", max_new_tokens=4))
    )
    assert reply.stats.prompt_tokens == expected_tokens


def test_multi_turn_conversation_rendered_in_order(
    greedy_entry: RosterEntry, settings: Settings
) -> None:
    from arena.backends import ChatMessage

    backend = backend_for(greedy_entry, settings)
    asyncio.run(backend.load())
    request = GenerationRequest(
        messages=(
            ChatMessage("user", "Hi, I am Ada."),
            ChatMessage("assistant", "Hello Ada!"),
            ChatMessage("user", "What is my name?"),
        )
    )
    rendered = backend.render_prompt(request)
    assert (
        rendered.index("Hi, I am Ada.")
        < rendered.index("Hello Ada!")
        < rendered.index("What is my name?")
    )
    assert "<|im_start|>assistant\nHello Ada!<|im_end|>" in rendered


def test_consumer_stopping_early_stops_generation(
    greedy_entry: RosterEntry, settings: Settings
) -> None:
    backend = backend_for(with_fields(greedy_entry, max_new_tokens=400), settings)

    async def run() -> float:
        await backend.load()
        stream = backend.stream(GenerationRequest.from_prompt(LONG_PROMPT))
        seen = 0
        async for event in stream:
            assert isinstance(event, TextDelta)
            seen += 1
            if seen == 3:
                break
        assert backend.in_flight == 1
        await stream.aclose()  # type: ignore[attr-defined]
        return await wait_until_free(backend, 5.0)

    assert asyncio.run(run()) < STOP_WITHIN_S


def test_cancelled_task_stops_generation(greedy_entry: RosterEntry, settings: Settings) -> None:
    backend = backend_for(with_fields(greedy_entry, max_new_tokens=400), settings)

    async def run() -> float:
        await backend.load()
        started = asyncio.Event()

        async def consume() -> None:
            async for _ in backend.stream(GenerationRequest.from_prompt(LONG_PROMPT)):
                started.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(started.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await wait_until_free(backend, 5.0)

    assert asyncio.run(run()) < STOP_WITHIN_S


def test_explicit_cancel_raises_typed_error(greedy_entry: RosterEntry, settings: Settings) -> None:
    backend = backend_for(with_fields(greedy_entry, max_new_tokens=400), settings)
    request = GenerationRequest.from_prompt(LONG_PROMPT)

    async def run() -> tuple[int, float]:
        await backend.load()
        deltas = 0
        t_cancel = 0.0
        with pytest.raises(GenerationCancelled) as info:
            async for _ in backend.stream(request):
                deltas += 1
                if deltas == 2:
                    assert backend.cancel(request.request_id)
                    t_cancel = time.monotonic()
        assert info.value.model == greedy_entry.name
        assert info.value.kind == "cancelled"
        waited = await wait_until_free(backend, 5.0)
        return deltas, time.monotonic() - t_cancel if waited < 5.0 else 99.0

    deltas, stopped_after = asyncio.run(run())
    assert deltas >= 2
    assert stopped_after < STOP_WITHIN_S
    assert not backend.cancel(request.request_id)  # no longer in flight


def test_generation_timeout_is_typed_and_frees_slot(
    greedy_entry: RosterEntry, settings: Settings
) -> None:
    backend = backend_for(with_fields(greedy_entry, max_new_tokens=400, timeout_s=1.0), settings)

    async def run() -> tuple[float, float]:
        await backend.load()
        t0 = time.monotonic()
        with pytest.raises(BackendTimeout) as info:
            async for _ in backend.stream(GenerationRequest.from_prompt(LONG_PROMPT)):
                pass
        assert info.value.model == greedy_entry.name
        raised_after = time.monotonic() - t0
        return raised_after, await wait_until_free(backend, 5.0)

    raised_after, freed_after = asyncio.run(run())
    assert 0.9 < raised_after < 1.0 + STOP_WITHIN_S
    assert freed_after < STOP_WITHIN_S


def test_concurrency_limit_queues_second_request(
    greedy_entry: RosterEntry, settings: Settings
) -> None:
    backend = backend_for(with_fields(greedy_entry, max_concurrency=1), settings)
    peak = 0

    async def one(prompt: str) -> GenerationStats:
        nonlocal peak
        stats = None
        async for event in backend.stream(GenerationRequest.from_prompt(prompt, max_new_tokens=8)):
            peak = max(peak, backend.in_flight)
            if isinstance(event, GenerationStats):
                stats = event
        assert stats is not None
        return stats

    async def run() -> list[GenerationStats]:
        await backend.load()
        return list(await asyncio.gather(one("Say hello."), one("Say goodbye.")))

    a, b = asyncio.run(run())
    assert peak == 1
    waited = max(a.queued_s, b.queued_s)
    assert waited > 0.1  # one of them waited for the other's slot
    assert backend.in_flight == 0


def test_cancel_while_queued(greedy_entry: RosterEntry, settings: Settings) -> None:
    backend = backend_for(
        with_fields(greedy_entry, max_concurrency=1, max_new_tokens=400), settings
    )

    async def run() -> None:
        await backend.load()
        first = backend.stream(GenerationRequest.from_prompt(LONG_PROMPT))
        await first.__anext__()  # holds the only slot
        queued = GenerationRequest.from_prompt("Hello?")

        async def second() -> None:
            async for _ in backend.stream(queued):
                pass

        task = asyncio.create_task(second())
        await asyncio.sleep(0.2)
        assert backend.cancel(queued.request_id)
        with pytest.raises(GenerationCancelled):
            await asyncio.wait_for(task, 2.0)
        await first.aclose()  # type: ignore[attr-defined]
        assert await wait_until_free(backend, 5.0) < STOP_WITHIN_S

    asyncio.run(run())


def test_both_sides_of_a_battle_stream_concurrently(roster: Roster, settings: Settings) -> None:
    a = backend_for(roster["smollm2-135m-greedy"], settings)
    b = backend_for(roster["smollm2-135m-concise"], settings)
    order: list[str] = []

    async def side(backend: TransformersBackend, tag: str) -> None:
        request = GenerationRequest.from_prompt("List three fruits.", max_new_tokens=24)
        async for event in backend.stream(request):
            if isinstance(event, TextDelta):
                order.append(tag)

    async def run() -> None:
        await asyncio.gather(a.load(), b.load())
        await asyncio.gather(side(a, "a"), side(b, "b"))

    asyncio.run(run())
    # Interleaved deltas: neither side waited for the other to finish.
    first_b = order.index("b")
    last_a = len(order) - 1 - order[::-1].index("a")
    assert first_b < last_a, order


def test_replies_run_on_reused_threads(
    greedy_entry: RosterEntry, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One reply after another runs on long-lived threads that outlive it, and starts no new
    thread when one is idle (a fresh thread per reply made bf16 decoding on CUDA 2.8 times
    slower)."""

    def generation_threads() -> dict[int, str]:
        return {
            t.ident: t.name
            for t in threading.enumerate()
            if t.ident is not None and t.name.startswith("arena-generate-")
        }

    before = generation_threads()
    backend = backend_for(greedy_entry, settings)
    original = TransformersBackend._generate
    idents: list[int] = []

    def recording(self: TransformersBackend, *args: object) -> None:
        idents.append(threading.get_ident())
        original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(TransformersBackend, "_generate", recording)

    async def run() -> None:
        await backend.load()
        for prompt in ("Say hi.", "Say bye.", "Say yes."):
            await collect(backend, GenerationRequest.from_prompt(prompt, max_new_tokens=4))

    asyncio.run(run())
    assert len(idents) == 3
    after = generation_threads()
    assert set(idents) <= set(after), "a reply's thread ended with it"
    # Earlier tests may have left several idle threads; none is added when one is idle.
    assert len(after) == max(len(before), 1), (before, after)
    assert threading.get_ident() not in idents
