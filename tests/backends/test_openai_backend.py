"""The openai backend against a real OpenAI-compatible server: ``transformers serve`` on the
converted bundled model, on a loopback port (faults injected by a proxy in front of it)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from arena.backends import (
    BackendTimeout,
    BackendUnreachable,
    GenerationCancelled,
    GenerationRequest,
    ModelError,
    TextDelta,
    build_backend,
    collect,
)
from arena.backends.openai_backend import OpenAIBackend
from arena.config import Settings
from arena.roster import RosterEntry
from tests.backends.conftest import (
    LONG_PROMPT,
    STOP_WITHIN_S,
    FaultProxy,
    SilentServer,
    closed_port,
    openai_entry,
    timed_stream,
)

pytestmark = pytest.mark.model

KEY_VAR = "ARENA_TEST_OPENAI_KEY"


@pytest.fixture(scope="module")
def served_model(converted_model_dir: Path) -> str:
    """The name the server is pinned to (``transformers serve PATH`` answers only to PATH)."""
    return str(converted_model_dir)


@pytest.fixture()
def fast(settings: Settings) -> Settings:
    """Short network timeouts and one retry, so failure tests finish in seconds."""
    return settings.with_overrides(connect_timeout_s=2.0, read_timeout_s=30.0, backend_retries=1)


def backend_for(entry: RosterEntry, settings: Settings) -> OpenAIBackend:
    backend = build_backend(entry, settings=settings)
    assert isinstance(backend, OpenAIBackend)
    return backend


async def wait_until_free(backend: OpenAIBackend, limit_s: float) -> float:
    t0 = time.monotonic()
    while backend.in_flight and time.monotonic() - t0 < limit_s:
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


def test_streams_incrementally_from_real_server(
    serve_base_url: str, served_model: str, fast: Settings
) -> None:
    entry = openai_entry(
        name="served-greedy", model=served_model, base_url=serve_base_url, temperature=0.0
    )
    backend = backend_for(entry, fast)
    request = GenerationRequest.from_prompt(
        "Count from 1 to 20, one number per line.", max_new_tokens=40
    )

    arrivals, stats, total = asyncio.run(timed_stream(backend, request))
    assert len(arrivals) >= 10, arrivals
    assert arrivals[0][0] < 0.5 * total, (arrivals[0][0], total)
    assert len({round(t, 3) for t, _ in arrivals}) >= 5
    text = "".join(t for _, t in arrivals)
    assert "1" in text and "2" in text
    # transformers serve reports usage in the last chunk, so counts are exact.
    assert stats.tokens_exact
    assert stats.completion_tokens == 40 or stats.finish_reason == "stop"
    assert stats.prompt_tokens is not None and stats.prompt_tokens > 10
    assert stats.ttft_s is not None and 0 < stats.ttft_s <= stats.latency_s
    assert stats.model == "served-greedy"
    assert backend.in_flight == 0


def test_same_greedy_reply_as_in_process_backend(
    serve_base_url: str, served_model: str, fast: Settings, greedy_entry: RosterEntry
) -> None:
    """One model, two ways of reaching it: the same chat template and weights give the same
    greedy reply, so the openai backend sends the conversation the way the model expects."""
    served = backend_for(
        openai_entry(name="served", model=served_model, base_url=serve_base_url, temperature=0.0),
        fast,
    )
    local = build_backend(greedy_entry, settings=fast)

    def request() -> GenerationRequest:
        return GenerationRequest.from_prompt("What is the capital of France?", max_new_tokens=16)

    async def run() -> tuple[str, str]:
        a = await collect(served, request())
        b = await collect(local, request())
        return a.text, b.text

    remote, in_process = asyncio.run(run())
    assert "Paris" in remote
    assert remote == in_process


def test_payload_carries_roster_decoding_and_system_prompt(
    fault_proxy: FaultProxy, served_model: str, fast: Settings
) -> None:
    entry = openai_entry(
        name="served-sys",
        model=served_model,
        base_url=fault_proxy.base_url,
        temperature=0.5,
        top_p=0.9,
        max_new_tokens=12,
        system_prompt="Answer in French.",
    )
    reply = asyncio.run(
        collect(backend_for(entry, fast), GenerationRequest.from_prompt("Say hello."))
    )
    assert reply.text
    (seen,) = fault_proxy.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.body["model"] == served_model
    assert seen.body["stream"] is True
    assert seen.body["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Say hello."},
    ]
    assert (seen.body["temperature"], seen.body["top_p"], seen.body["max_tokens"]) == (
        0.5,
        0.9,
        12,
    )
    assert reply.stats.completion_tokens <= 12


def test_api_key_header_comes_from_named_env_var(
    fault_proxy: FaultProxy, served_model: str, fast: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VAR, "sk-test-123")
    keyed = openai_entry(
        name="keyed", model=served_model, base_url=fault_proxy.base_url, api_key_env=KEY_VAR
    )
    plain = openai_entry(name="plain", model=served_model, base_url=fault_proxy.base_url)

    async def run() -> None:
        for entry in (keyed, plain):
            await collect(
                backend_for(entry, fast), GenerationRequest.from_prompt("Hi", max_new_tokens=2)
            )

    asyncio.run(run())
    first, second = fault_proxy.requests
    assert first.headers["authorization"] == "Bearer sk-test-123"
    assert "authorization" not in second.headers
    # The key is only ever read from the environment, never stored on the entry.
    assert "sk-test-123" not in repr(keyed)


def test_unset_api_key_variable_is_model_error_before_any_request(
    fault_proxy: FaultProxy, served_model: str, fast: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_VAR, raising=False)
    entry = openai_entry(
        name="keyless", model=served_model, base_url=fault_proxy.base_url, api_key_env=KEY_VAR
    )
    with pytest.raises(ModelError, match=KEY_VAR) as info:
        asyncio.run(collect(backend_for(entry, fast), GenerationRequest.from_prompt("Hi")))
    assert info.value.model == "keyless"
    assert fault_proxy.requests == []


def test_read_timeout_is_typed_and_not_retried(silent_server: SilentServer, fast: Settings) -> None:
    entry = openai_entry(
        name="silent", model="m", base_url=f"http://127.0.0.1:{silent_server.port}/v1"
    )
    backend = backend_for(entry, fast.with_overrides(read_timeout_s=0.5))
    t0 = time.monotonic()
    with pytest.raises(BackendTimeout) as info:
        asyncio.run(collect(backend, GenerationRequest.from_prompt("Hi")))
    elapsed = time.monotonic() - t0
    assert info.value.kind == "timeout"
    assert info.value.model == "silent"
    assert "0.5s" in info.value.detail
    assert elapsed >= 0.5
    # A server slow to answer is overloaded: the request is not sent again.
    assert len(silent_server.connections) == 1
    assert backend.in_flight == 0


def test_generation_timeout_is_typed_and_frees_slot(
    serve_base_url: str, served_model: str, fast: Settings
) -> None:
    entry = openai_entry(
        name="slow",
        model=served_model,
        base_url=serve_base_url,
        temperature=0.0,
        max_new_tokens=400,
        timeout_s=1.5,
    )
    backend = backend_for(entry, fast)

    async def run() -> tuple[int, float, float]:
        deltas = 0
        t0 = time.monotonic()
        with pytest.raises(BackendTimeout):
            async for event in backend.stream(GenerationRequest.from_prompt(LONG_PROMPT)):
                deltas += isinstance(event, TextDelta)
        return deltas, time.monotonic() - t0, await wait_until_free(backend, 5.0)

    deltas, raised_after, freed_after = asyncio.run(run())
    assert deltas > 0  # it was streaming when the deadline hit
    assert 1.4 < raised_after < 1.5 + STOP_WITHIN_S
    assert freed_after < STOP_WITHIN_S


def test_unreachable_server_is_typed_after_retries(fast: Settings) -> None:
    port = closed_port()
    entry = openai_entry(name="nowhere", model="m", base_url=f"http://127.0.0.1:{port}/v1")
    backend = backend_for(entry, fast)
    t0 = time.monotonic()
    with pytest.raises(BackendUnreachable) as info:
        asyncio.run(collect(backend, GenerationRequest.from_prompt("Hi")))
    assert info.value.kind == "unreachable"
    assert f"127.0.0.1:{port}" in info.value.detail
    # One retry after a 0.5 s backoff: connection refusals happen before any token.
    assert time.monotonic() - t0 >= 0.5
    assert backend.in_flight == 0


def test_unknown_model_is_typed_model_error_and_not_retried(
    fault_proxy: FaultProxy, fast: Settings
) -> None:
    entry = openai_entry(name="typo", model="no-such/model", base_url=fault_proxy.base_url)
    with pytest.raises(ModelError) as info:
        asyncio.run(collect(backend_for(entry, fast), GenerationRequest.from_prompt("Hi")))
    assert info.value.kind == "model_error"
    assert "HTTP 400" in info.value.detail
    # A 4xx is the request's fault: resending it cannot help.
    assert len(fault_proxy.requests) == 1


def test_server_error_before_first_token_is_retried(
    fault_proxy: FaultProxy, served_model: str, fast: Settings
) -> None:
    fault_proxy.fail_first = 1
    entry = openai_entry(name="flaky", model=served_model, base_url=fault_proxy.base_url)
    reply = asyncio.run(
        collect(backend_for(entry, fast), GenerationRequest.from_prompt("Hi", max_new_tokens=4))
    )
    assert reply.text
    assert len(fault_proxy.requests) == 2


def test_persistent_server_error_is_typed_after_retries(
    fault_proxy: FaultProxy, served_model: str, fast: Settings
) -> None:
    fault_proxy.fail_first = 99
    entry = openai_entry(name="down", model=served_model, base_url=fault_proxy.base_url)
    with pytest.raises(ModelError, match="HTTP 503"):
        asyncio.run(collect(backend_for(entry, fast), GenerationRequest.from_prompt("Hi")))
    assert len(fault_proxy.requests) == 1 + fast.backend_retries


def test_connection_lost_after_first_token_is_not_retried(
    fault_proxy: FaultProxy, served_model: str, fast: Settings
) -> None:
    fault_proxy.drop_after = 3
    entry = openai_entry(
        name="dropped", model=served_model, base_url=fault_proxy.base_url, max_new_tokens=64
    )
    backend = backend_for(entry, fast)

    async def run() -> int:
        deltas = 0
        with pytest.raises(BackendUnreachable):
            async for event in backend.stream(GenerationRequest.from_prompt(LONG_PROMPT)):
                deltas += isinstance(event, TextDelta)
        return deltas

    assert asyncio.run(run()) == 3
    # Text had streamed: a second attempt would be a different reply, so none was made.
    assert len(fault_proxy.requests) == 1
    assert backend.in_flight == 0


def test_cancel_stops_within_one_second_and_closes_stream(
    fault_proxy: FaultProxy, served_model: str, fast: Settings
) -> None:
    entry = openai_entry(
        name="cancelled", model=served_model, base_url=fault_proxy.base_url, max_new_tokens=400
    )
    backend = backend_for(entry, fast)
    request = GenerationRequest.from_prompt(LONG_PROMPT)

    async def run() -> tuple[int, float]:
        deltas = 0
        t_cancel = 0.0
        with pytest.raises(GenerationCancelled) as info:
            async for event in backend.stream(request):
                deltas += isinstance(event, TextDelta)
                if deltas == 2:
                    assert backend.cancel(request.request_id)
                    t_cancel = time.monotonic()
        assert info.value.kind == "cancelled"
        await wait_until_free(backend, 5.0)
        return deltas, time.monotonic() - t_cancel

    deltas, freed_after = asyncio.run(run())
    assert deltas == 2
    assert freed_after < STOP_WITHIN_S
    # The HTTP stream was closed (how vLLM & co. learn to stop generating): the proxy's next
    # write towards the client failed.
    assert fault_proxy.client_gone.wait(5.0)
    assert not backend.cancel(request.request_id)


def test_abandoned_stream_frees_slot(
    serve_base_url: str, served_model: str, fast: Settings
) -> None:
    entry = openai_entry(
        name="abandoned", model=served_model, base_url=serve_base_url, max_new_tokens=400
    )
    backend = backend_for(entry, fast)

    async def run() -> float:
        stream = backend.stream(GenerationRequest.from_prompt(LONG_PROMPT))
        async for _ in stream:
            break
        assert backend.in_flight == 1
        await stream.aclose()  # type: ignore[attr-defined]
        return await wait_until_free(backend, 5.0)

    assert asyncio.run(run()) < STOP_WITHIN_S
