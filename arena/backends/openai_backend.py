"""The ``openai`` backend: any OpenAI-compatible ``/v1/chat/completions`` server, streamed.

This is the scale-out path -- vLLM (tensor parallel, multi-node via Ray), SGLang, TGI,
llama.cpp server, Ollama, ``transformers serve`` or a hosted API.  The arena only speaks the
protocol; it never re-implements a model server.

Failures before the first token (connection refused, HTTP 429/5xx, connection dropped) are
retried ``Settings.backend_retries`` times with backoff; once text has streamed nothing is
retried, because a second attempt would produce a different reply.  Read timeouts are never
retried: a server that is slow to start a reply is overloaded, and resending adds load.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import ssl
from typing import Any

import httpx

from arena.backends.base import GenerationRequest, StreamControl, StreamingBackend
from arena.backends.errors import BackendError, BackendTimeout, BackendUnreachable, ModelError
from arena.config import Settings
from arena.roster import RosterEntry

__all__ = ["OpenAIBackend"]

_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_BACKOFF_S = 0.5


class _Retryable(Exception):
    def __init__(self, error: BackendError) -> None:
        super().__init__(str(error))
        self.error = error


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every client (building one loads the whole CA bundle)."""
    return httpx.create_ssl_context()


class OpenAIBackend(StreamingBackend):
    """Stream one ``openai`` roster entry from an OpenAI-compatible server.

    Parameters
    ----------
    entry
        A roster entry with ``backend = "openai"`` (``base_url`` up to and including ``/v1``).
    settings
        Arena settings (``connect_timeout_s``, ``read_timeout_s``, ``backend_retries``,
        ``generation_timeout_s``).
    """

    def __init__(self, entry: RosterEntry, *, settings: Settings) -> None:
        if entry.backend != "openai":
            raise ValueError(f"{entry.name}: backend is {entry.backend!r}, not 'openai'")
        super().__init__(entry, settings=settings)
        self._url = (entry.base_url or "").rstrip("/") + "/chat/completions"
        # One HTTP client per event loop, kept: a new client per request builds a new TLS
        # context (a CA bundle load: ~30% of the app's CPU under load, measured) and never
        # reuses a connection.
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        for old in [lp for lp in self._clients if lp.is_closed()]:
            del self._clients[old]  # its loop is gone; so are its connections
        client = self._clients.get(loop)
        if client is None:
            client = httpx.AsyncClient(
                verify=_ssl_context(), limits=httpx.Limits(max_keepalive_connections=32)
            )
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Cancel in-flight requests and close this loop's HTTP client."""
        await super().aclose()
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    @property
    def url(self) -> str:
        """The chat-completions endpoint."""
        return self._url

    async def load(self) -> None:
        """Nothing to load; check that the API key variable is set when one is named.

        Raises
        ------
        ModelError
            When ``api_key_env`` names an unset environment variable.
        """
        self._headers()

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        env = self._entry.api_key_env
        if env:
            key = os.environ.get(env)
            if not key:
                raise ModelError(self._entry.name, f"API key variable {env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body sent to the server.

        Parameters
        ----------
        request
            The conversation.

        Returns
        -------
        dict
        """
        entry = self._entry
        messages = []
        if entry.system_prompt is not None:
            messages.append({"role": "system", "content": entry.system_prompt})
        messages.extend({"role": m.role, "content": m.content} for m in request.messages)
        max_new = entry.max_new_tokens
        if request.max_new_tokens is not None:
            max_new = min(max_new, request.max_new_tokens)
        return {
            "model": entry.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": entry.temperature,
            "top_p": entry.top_p,
            "max_tokens": max_new,
        }

    def _start(self, request: GenerationRequest, control: StreamControl) -> None:
        task = control.loop.create_task(self._produce(self.payload(request), control))
        # Closing the HTTP stream is how a client tells vLLM & co. to stop generating.
        control.on_stop.append(task.cancel)
        task.add_done_callback(lambda _: self._slots.release(control.client))

    async def _produce(self, payload: dict[str, Any], control: StreamControl) -> None:
        name = self._entry.name
        attempts = self._settings.backend_retries + 1
        for attempt in range(attempts):
            try:
                await self._attempt(payload, control)
                return
            except _Retryable as exc:
                if attempt + 1 >= attempts:
                    control.fail(exc.error)
                    return
                await asyncio.sleep(_BACKOFF_S * 2**attempt)
            except BackendError as exc:
                control.fail(exc)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug or an unforeseen transport error: still typed
                control.fail(ModelError(name, f"{type(exc).__name__}: {exc}"))
                return

    async def _attempt(self, payload: dict[str, Any], control: StreamControl) -> None:
        name = self._entry.name
        s = self._settings
        timeout = httpx.Timeout(
            connect=s.connect_timeout_s,
            read=s.read_timeout_s,
            write=s.connect_timeout_s,
            pool=s.connect_timeout_s,
        )
        streamed = False
        try:
            async with self._client().stream(
                "POST", self._url, json=payload, headers=self._headers(), timeout=timeout
            ) as resp:
                if resp.status_code >= 400:
                    body = (await resp.aread()).decode("utf-8", "replace")[:500]
                    http_error = ModelError(
                        name, f"HTTP {resp.status_code} from {self._url}: {body}"
                    )
                    if resp.status_code in _RETRY_STATUS:
                        raise _Retryable(http_error)
                    raise http_error
                state = _StreamState()
                async for line in resp.aiter_lines():
                    if state.feed(line, name=name, control=control):
                        streamed = True
                    if state.finished:
                        break
                if not state.finished and state.finish_reason is None:
                    raise ModelError(name, "stream ended without a finish reason or [DONE]")
                control.done(
                    completion_tokens=state.completion_tokens,
                    prompt_tokens=state.prompt_tokens,
                    finish_reason="length" if state.finish_reason == "length" else "stop",
                    tokens_exact=state.usage_seen,
                )
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                slow = BackendUnreachable(
                    name, f"connect to {self._url} timed out after {s.connect_timeout_s}s"
                )
                if not streamed:
                    raise _Retryable(slow) from exc
                raise slow from exc
            raise BackendTimeout(name, f"no data from {self._url} for {s.read_timeout_s}s") from exc
        except httpx.TransportError as exc:
            lost = BackendUnreachable(name, f"{self._url}: {type(exc).__name__}: {exc}")
            if not streamed:
                raise _Retryable(lost) from exc
            raise lost from exc


class _StreamState:
    """Parses the SSE lines of a chat-completions stream."""

    def __init__(self) -> None:
        self.finished = False
        self.finish_reason: str | None = None
        self.completion_tokens = 0
        self.prompt_tokens: int | None = None
        self.usage_seen = False
        self._chunks_with_text = 0

    def feed(self, line: str, *, name: str, control: StreamControl) -> bool:
        """Handle one line; return whether it carried text."""
        if not line.startswith("data:"):
            return False  # blank separators, `event:` and `:` keep-alive comments
        data = line[5:].strip()
        if data == "[DONE]":
            self.finished = True
            return False
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            raise ModelError(name, f"malformed stream chunk: {data[:200]!r}") from None
        if not isinstance(chunk, dict):
            raise ModelError(name, f"malformed stream chunk: {data[:200]!r}")
        if "error" in chunk:
            raise ModelError(name, f"server error: {json.dumps(chunk['error'])[:300]}")
        usage = chunk.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            self.usage_seen = True
            self.completion_tokens = usage["completion_tokens"]
            prompt = usage.get("prompt_tokens")
            if isinstance(prompt, int):
                self.prompt_tokens = prompt
        carried = False
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                control.text(text)
                carried = True
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        if carried:
            self._chunks_with_text += 1
            if not self.usage_seen:
                # Most servers send one token per chunk; a fair estimate when no usage comes.
                self.completion_tokens = self._chunks_with_text
        return carried
