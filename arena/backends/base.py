"""The one streaming interface every backend implements, and its data shapes.

A backend is bound to one roster entry.  ``stream(request)`` is an async iterator that yields
:class:`TextDelta` items as text arrives and then exactly one :class:`GenerationStats`; a
failure raises a :class:`~arena.backends.errors.BackendError` subclass instead.  Backends never
block the event loop, so the caller runs both sides of a battle concurrently with asyncio.

Stopping a generation, three ways, each of which frees the model's concurrency slot as soon as
the device stops working (within one decoding step):

* the consumer stops iterating (``await agen.aclose()``, or drops the iterator);
* the consuming task is cancelled (``CancelledError`` propagates unchanged);
* someone calls ``backend.cancel(request_id)``: the stream raises
  :class:`~arena.backends.errors.GenerationCancelled`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from arena.backends.errors import BackendBusy, BackendError, BackendTimeout, GenerationCancelled
from arena.config import Settings
from arena.roster import RosterEntry

__all__ = [
    "Backend",
    "ChatMessage",
    "FinishReason",
    "GenerationRequest",
    "GenerationStats",
    "Reply",
    "SlotLimiter",
    "StreamEvent",
    "StreamingBackend",
    "TextDelta",
    "collect",
]

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class ChatMessage:
    """One conversation turn.  System prompts come from the roster entry, not from here."""

    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate: the conversation so far, ending with a user turn.

    Attributes
    ----------
    messages
        Alternating user/assistant turns, last one from the user.
    max_new_tokens
        Optional cap below the roster entry's ``max_new_tokens`` (never raises it).
    request_id
        Handle for :meth:`Backend.cancel`; unique per in-flight request.
    client
        Who asks (the voter's key): concurrency slots are shared fairly across clients.
    """

    messages: tuple[ChatMessage, ...]
    max_new_tokens: int | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    client: str = ""

    def __post_init__(self) -> None:
        if not self.messages:
            raise ValueError("a generation request needs at least one message")
        for i, message in enumerate(self.messages):
            if message.role not in ("user", "assistant"):
                raise ValueError(
                    f"messages[{i}].role must be 'user' or 'assistant', got {message.role!r} "
                    "(the system prompt belongs to the roster entry)"
                )
        if self.messages[-1].role != "user":
            raise ValueError("the last message must be from the user")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    @classmethod
    def from_prompt(
        cls, prompt: str, *, max_new_tokens: int | None = None, request_id: str | None = None
    ) -> GenerationRequest:
        """Build a single-turn request.

        Parameters
        ----------
        prompt
            The user's message.
        max_new_tokens
            Optional cap below the roster entry's limit.
        request_id
            Explicit id (default: a random one).

        Returns
        -------
        GenerationRequest
        """
        messages = (ChatMessage(role="user", content=prompt),)
        if request_id is None:
            return cls(messages=messages, max_new_tokens=max_new_tokens)
        return cls(messages=messages, max_new_tokens=max_new_tokens, request_id=request_id)


@dataclass(frozen=True)
class TextDelta:
    """A piece of reply text, in order; concatenating all deltas gives the reply."""

    text: str


@dataclass(frozen=True)
class GenerationStats:
    """How a reply went; always the last item of a successful stream.

    Attributes
    ----------
    model
        Roster name.
    completion_tokens
        Tokens generated (end-of-sequence token included, as servers count it).
    prompt_tokens
        Tokens in the rendered prompt, when known.
    latency_s
        Seconds from the ``stream()`` call to the end of the reply (``queued_s`` included).
    ttft_s
        Seconds from the ``stream()`` call to the first text, ``None`` when no text came.
    queued_s
        Seconds spent waiting for a concurrency slot.
    finish_reason
        ``stop`` (end of sequence) or ``length`` (hit ``max_new_tokens``).
    tokens_exact
        ``False`` when ``completion_tokens`` was estimated from stream chunks because the
        server reported no usage.
    """

    model: str
    completion_tokens: int
    prompt_tokens: int | None
    latency_s: float
    ttft_s: float | None
    queued_s: float
    finish_reason: FinishReason
    tokens_exact: bool = True

    @property
    def tokens_per_s(self) -> float:
        """Completion tokens per second of generation (queueing excluded)."""
        busy = self.latency_s - self.queued_s
        return self.completion_tokens / busy if busy > 0 else 0.0


StreamEvent = TextDelta | GenerationStats


@dataclass(frozen=True)
class Reply:
    """A whole reply: text plus stats (see :func:`collect`)."""

    text: str
    stats: GenerationStats


@runtime_checkable
class Backend(Protocol):
    """A way of reaching one roster entry's model."""

    @property
    def entry(self) -> RosterEntry:
        """The roster entry this backend serves."""
        ...

    @property
    def in_flight(self) -> int:
        """Generations currently holding a concurrency slot."""
        ...

    async def load(self) -> None:
        """Prepare the model (load weights, or nothing for a remote server); idempotent."""
        ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        """Yield :class:`TextDelta` items, then one :class:`GenerationStats`."""
        ...

    def cancel(self, request_id: str) -> bool:
        """Stop an in-flight request; return whether one was found.  Thread-safe."""
        ...

    async def aclose(self) -> None:
        """Release resources held by the backend (not the shared model cache)."""
        ...


async def collect(backend: Backend, request: GenerationRequest) -> Reply:
    """Run a request to completion and return the whole reply.

    Parameters
    ----------
    backend
        Any backend.
    request
        What to generate.

    Returns
    -------
    Reply

    Raises
    ------
    BackendError
        Whatever the stream raises.
    """
    parts: list[str] = []
    stats: GenerationStats | None = None
    async for event in backend.stream(request):
        if isinstance(event, TextDelta):
            parts.append(event.text)
        else:
            stats = event
    if stats is None:  # pragma: no cover - every backend ends with stats or raises
        raise BackendError(backend.entry.name, "stream ended without stats")
    return Reply(text="".join(parts), stats=stats)


@dataclass(frozen=True)
class _Ticket:
    client: str
    seq: int
    future: asyncio.Future[None] | None  # None: the slot was free and is already held


class SlotLimiter:
    """A fair counting semaphore usable from any event loop and released from any thread.

    ``asyncio.Semaphore`` binds to one loop and must be released on it; generation threads
    finish off-loop, and tests (or a CLI) may drive one backend from several loops.

    Fairness: every acquisition names a *client* (the voter).  A freed slot goes to the
    waiter whose client holds the fewest slots right now; among equals, to the client served
    longest ago (never served comes first); then the oldest waiter.  So one voter's backlog
    never sits in front of another voter's first request, and two backlogs take turns.
    First come, first served let one address with 20 battles starve everyone else (issue 11).
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit = limit
        self._in_use = 0
        self._held: dict[str, int] = {}
        self._last_grant: dict[str, int] = {}  # client -> grant number (only while active)
        self._grants = 0
        self._seq = 0
        self._lock = threading.Lock()
        # seq -> (client, loop, future); dicts keep insertion (= arrival) order.
        self._waiters: dict[int, tuple[str, asyncio.AbstractEventLoop, asyncio.Future[None]]] = {}

    @property
    def in_use(self) -> int:
        """Slots currently held."""
        return self._in_use

    @property
    def waiting(self) -> int:
        """Acquisitions waiting for a slot."""
        return len(self._waiters)

    def held_by(self, client: str) -> int:
        """Slots currently held by ``client``."""
        return self._held.get(client, 0)

    def _take(self, client: str) -> None:  # caller holds the lock
        self._in_use += 1
        self._held[client] = self._held.get(client, 0) + 1
        self._grants += 1
        self._last_grant[client] = self._grants

    def _priority(self, seq: int) -> tuple[int, int, int]:  # caller holds the lock
        client = self._waiters[seq][0]
        return (self._held.get(client, 0), self._last_grant.get(client, 0), seq)

    async def acquire(self, client: str = "") -> None:
        """Wait for a free slot (fair across clients; see the class docstring).

        Parameters
        ----------
        client
            Who the slot is for; :meth:`release` must name the same client.
        """
        await self.wait(self.enqueue(client))

    def enqueue(self, client: str = "") -> _Ticket:
        """Take a free slot now, or join the queue; :meth:`wait` then waits for the turn.

        Synchronous, so that :attr:`waiting` counts a burst of requests at once.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._in_use < self.limit and not self._waiters:
                self._take(client)
                return _Ticket(client, 0, None)
            fut: asyncio.Future[None] = loop.create_future()
            self._seq += 1
            self._waiters[self._seq] = (client, loop, fut)
            return _Ticket(client, self._seq, fut)

    async def wait(self, ticket: _Ticket) -> None:
        """Wait until the ticket's slot is handed over (at once if it was free)."""
        fut = ticket.future
        if fut is None:
            return
        try:
            await fut
        except BaseException:
            with self._lock:
                if self._waiters.pop(ticket.seq, None) is not None:
                    raise
            # The slot was handed over just as we gave up: pass it on.
            if fut.done() and not fut.cancelled():
                self.release(ticket.client)
            raise

    def release(self, client: str = "") -> None:
        """Free ``client``'s slot, handing it straight to the fairest waiter if there is one."""
        with self._lock:
            self._in_use -= 1
            left = self._held.get(client, 0) - 1
            if left > 0:
                self._held[client] = left
            else:
                self._held.pop(client, None)
                if all(w[0] != client for w in self._waiters.values()):
                    self._last_grant.pop(client, None)  # gone: forget it (bounded memory)
            if not self._waiters:
                return
            seq = min(self._waiters, key=self._priority)
            waiter, loop, fut = self._waiters.pop(seq)
            self._take(waiter)  # reserved for the waiter before anyone else can grab it
        try:
            loop.call_soon_threadsafe(self._hand_over, fut, waiter)
        except RuntimeError:  # that waiter's loop is closed: give the slot to the next one
            self.release(waiter)

    def _hand_over(self, fut: asyncio.Future[None], client: str) -> None:
        if fut.done():  # the waiter was cancelled meanwhile
            self.release(client)
        else:
            fut.set_result(None)


@dataclass(frozen=True)
class _Done:
    completion_tokens: int
    prompt_tokens: int | None
    finish_reason: FinishReason
    tokens_exact: bool = True


@dataclass(frozen=True)
class _Failed:
    error: BackendError


class _CancelledMarker:
    pass


_CANCELLED = _CancelledMarker()
_QueueItem = str | _Done | _Failed | _CancelledMarker


@dataclass
class StreamControl:
    """Per-request plumbing between a producer (thread or task) and the consuming generator.

    Producers call :meth:`post` from any thread; :attr:`stop` is set when the consumer is
    gone, the deadline passed or the request was cancelled, and producers must then stop
    promptly.  :attr:`deadline` (``time.monotonic()``) is first the end of the wait for a
    slot, then, once generation starts, the end of the reply.
    """

    request_id: str
    loop: asyncio.AbstractEventLoop
    deadline: float
    client: str = ""
    queue: asyncio.Queue[_QueueItem] = field(default_factory=asyncio.Queue)
    stop: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)
    on_stop: list[Callable[[], object]] = field(default_factory=list)

    def post(self, item: _QueueItem) -> None:
        """Hand an item to the consumer (thread-safe; dropped if the loop has closed)."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def text(self, text: str) -> None:
        """Post a piece of text (ignored when empty)."""
        if text:
            self.post(text)

    def done(
        self,
        *,
        completion_tokens: int,
        prompt_tokens: int | None,
        finish_reason: FinishReason,
        tokens_exact: bool = True,
    ) -> None:
        """Post the successful end of the reply."""
        self.post(_Done(completion_tokens, prompt_tokens, finish_reason, tokens_exact))

    def fail(self, error: BackendError) -> None:
        """Post a typed failure."""
        self.post(_Failed(error))


class StreamingBackend(abc.ABC):
    """Shared machinery: deadline, concurrency slot, cancellation, stats.

    Subclasses implement :meth:`load` and :meth:`_start`, which must start a producer that
    posts to the :class:`StreamControl`, watches ``control.stop``, and calls
    ``self._slots.release(control.client)`` exactly once when it has stopped using the model.

    Two clocks: a request waits at most ``Settings.slot_wait_s`` for a concurrency slot (and
    is refused at once when ``Settings.max_queued`` requests already wait), then the reply
    has :attr:`timeout_s` from the moment generation starts.  Time in the queue never eats
    into the reply's time (issue 11: a flood of battles made every reply time out).
    """

    def __init__(self, entry: RosterEntry, *, settings: Settings) -> None:
        self._entry = entry
        self._settings = settings
        self._timeout_s = entry.timeout_s or settings.generation_timeout_s
        self._slots = SlotLimiter(entry.max_concurrency)
        self._slot_wait_s = settings.slot_wait_s
        self._max_queued = settings.max_queued
        # A running estimate of one reply's duration, for "try again in N s".
        self._typical_reply_s = 10.0
        self._active: dict[str, StreamControl] = {}
        self._active_lock = threading.Lock()

    @property
    def entry(self) -> RosterEntry:
        """The roster entry this backend serves."""
        return self._entry

    @property
    def in_flight(self) -> int:
        """Generations currently holding a concurrency slot."""
        return self._slots.in_use

    @property
    def timeout_s(self) -> float:
        """Seconds one reply may take (roster override or ``Settings.generation_timeout_s``)."""
        return self._timeout_s

    @abc.abstractmethod
    async def load(self) -> None:
        """Prepare the model; idempotent."""

    @abc.abstractmethod
    def _start(self, request: GenerationRequest, control: StreamControl) -> None:
        """Start producing the reply (must not block)."""

    async def aclose(self) -> None:
        """Cancel every in-flight request of this backend."""
        for request_id in list(self._active):
            self.cancel(request_id)

    def cancel(self, request_id: str) -> bool:
        """Stop an in-flight request; its stream raises ``GenerationCancelled``.

        Parameters
        ----------
        request_id
            The request's ``request_id``.

        Returns
        -------
        bool
            Whether such a request was in flight.
        """
        with self._active_lock:
            control = self._active.get(request_id)
        if control is None:
            return False
        control.cancelled.set()
        self._stop(control)
        control.post(_CANCELLED)
        return True

    def _stop(self, control: StreamControl) -> None:
        control.stop.set()
        for hook in control.on_stop:
            with contextlib.suppress(RuntimeError):
                control.loop.call_soon_threadsafe(hook)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        """Stream one reply: :class:`TextDelta` items, then one :class:`GenerationStats`.

        Parameters
        ----------
        request
            What to generate.

        Yields
        ------
        TextDelta or GenerationStats

        Raises
        ------
        BackendTimeout
            The reply took longer than :attr:`timeout_s` after generation started.
        BackendBusy
            No slot came free within ``slot_wait_s``, or too many requests already wait.
        BackendUnreachable
            The model server cannot be reached.
        ModelError
            The model failed to load or generate, or the server answered with an error.
        GenerationCancelled
            :meth:`cancel` was called for this request.
        """
        await self.load()
        # The clock starts after loading: a one-off load is not the reply's latency.
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        control = StreamControl(
            request_id=request.request_id,
            loop=loop,
            deadline=t0 + self._slot_wait_s,
            client=request.client,
        )
        with self._active_lock:
            if request.request_id in self._active:
                raise ValueError(f"request_id {request.request_id!r} is already in flight")
            self._active[request.request_id] = control
        name = self._entry.name
        started = False
        try:
            await self._acquire(control)
            t_gen = time.monotonic()
            queued_s = t_gen - t0
            control.deadline = t_gen + self._timeout_s
            try:
                self._start(request, control)
                started = True
            finally:
                if not started:
                    self._slots.release(control.client)
            ttft_s: float | None = None
            while True:
                item = await self._next(control)
                if isinstance(item, str):
                    if ttft_s is None:
                        ttft_s = time.monotonic() - t0
                    yield TextDelta(item)
                elif isinstance(item, _Done):
                    self._forget(request.request_id)
                    self._typical_reply_s += 0.2 * (
                        time.monotonic() - t_gen - self._typical_reply_s
                    )
                    yield GenerationStats(
                        model=name,
                        completion_tokens=item.completion_tokens,
                        prompt_tokens=item.prompt_tokens,
                        latency_s=time.monotonic() - t0,
                        ttft_s=ttft_s,
                        queued_s=queued_s,
                        finish_reason=item.finish_reason,
                        tokens_exact=item.tokens_exact,
                    )
                    return
                elif isinstance(item, _Failed):
                    raise item.error
                else:
                    raise GenerationCancelled(name, "cancelled by request")
        finally:
            # Reached on normal end, error, aclose() (GeneratorExit) and task cancellation
            # alike: whatever happened, the producer must stop and the slot come back.
            self._stop(control)
            self._forget(request.request_id)

    def _forget(self, request_id: str) -> None:
        with self._active_lock:
            self._active.pop(request_id, None)

    async def _acquire(self, control: StreamControl) -> None:
        name = self._entry.name
        slots = self._slots
        if slots.waiting >= self._max_queued:
            raise self._busy(f"{slots.waiting} requests already wait for a slot")
        waiter = asyncio.ensure_future(slots.wait(slots.enqueue(control.client)))
        control.on_stop.append(waiter.cancel)
        try:
            async with asyncio.timeout_at(self._loop_deadline(control)):
                await waiter
        except TimeoutError:
            raise self._busy(
                f"no free slot (max_concurrency={slots.limit}) in {self._slot_wait_s:g}s"
            ) from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if control.cancelled.is_set() and (task is None or not task.cancelling()):
                raise GenerationCancelled(name, "cancelled while queued") from None
            raise
        finally:
            control.on_stop.remove(waiter.cancel)
        if control.stop.is_set():
            slots.release(control.client)
            raise GenerationCancelled(name, "cancelled while queued")

    def _busy(self, detail: str) -> BackendBusy:
        # Roughly when a slot frees up: one typical reply per round of waiters ahead.
        rounds = 1 + self._slots.waiting // self._slots.limit
        return BackendBusy(
            self._entry.name, detail, retry_after_s=max(5.0, rounds * self._typical_reply_s)
        )

    async def _next(self, control: StreamControl) -> _QueueItem:
        try:
            async with asyncio.timeout_at(self._loop_deadline(control)):
                return await control.queue.get()
        except TimeoutError:
            raise BackendTimeout(
                self._entry.name, f"reply not finished within {self._timeout_s}s"
            ) from None

    @staticmethod
    def _loop_deadline(control: StreamControl) -> float:
        # Deadlines are kept in time.monotonic(); asyncio.timeout_at wants loop.time().
        return control.loop.time() + (control.deadline - time.monotonic())
