"""The ``scripted`` backend: streams given text with given delays, for tests and demos.

It goes through the same :class:`~arena.backends.base.StreamingBackend` machinery as the real
backends (concurrency slots, fair queueing, deadlines, cancellation, stats), so a battle-flow
test that uses it exercises everything but the model.  A script says what to send, how
fast, and whether to fail on cue::

    ScriptedBackend(entry, settings=settings, script=Script(("Hello", " world"), delay_s=0.05))

It is not a roster backend: tests build it directly and hand it to :class:`arena.battles.Arena`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from arena.backends.base import GenerationRequest, StreamControl, StreamingBackend
from arena.backends.errors import BackendError, ModelError
from arena.config import Settings
from arena.roster import RosterEntry

__all__ = ["Script", "ScriptedBackend"]


@dataclass(frozen=True)
class Script:
    """What one reply does.

    Attributes
    ----------
    tokens
        The pieces of text, sent in order (their count is the reply's token count).
    delay_s
        Seconds before each piece after the first.
    first_delay_s
        Seconds before the first piece (time to first token, after the slot is held).
    fail_after
        Fail after sending this many pieces (``None``: finish normally).
    error
        The failure raised at ``fail_after``.
    """

    tokens: tuple[str, ...] = ("Hello", " there", ".")
    delay_s: float = 0.0
    first_delay_s: float = 0.0
    fail_after: int | None = None
    error: type[BackendError] = ModelError


class ScriptedBackend(StreamingBackend):
    """A backend whose replies follow a :class:`Script` (or a function of the request).

    Parameters
    ----------
    entry
        The roster entry it stands for (name, ``max_concurrency``, ``timeout_s``).
    settings
        Arena settings (slot wait, queue length, timeout).
    script
        A script for every reply, or a function from the request to its script.

    Attributes
    ----------
    requests
        Every request started, in order (after its slot was acquired).
    """

    def __init__(
        self,
        entry: RosterEntry,
        *,
        settings: Settings,
        script: Script | Callable[[GenerationRequest], Script] = Script(),
    ) -> None:
        super().__init__(entry, settings=settings)
        self._script = script
        self.requests: list[GenerationRequest] = []

    async def load(self) -> None:
        """Nothing to load."""

    def _start(self, request: GenerationRequest, control: StreamControl) -> None:
        self.requests.append(request)
        script = self._script(request) if callable(self._script) else self._script
        task = control.loop.create_task(self._produce(script, control))
        control.on_stop.append(task.cancel)
        task.add_done_callback(lambda _: self._slots.release(control.client))

    async def _produce(self, script: Script, control: StreamControl) -> None:
        for i, piece in enumerate(script.tokens):
            if script.fail_after is not None and i >= script.fail_after:
                control.fail(script.error(self._entry.name, "failed on cue"))
                return
            await asyncio.sleep(script.first_delay_s if i == 0 else script.delay_s)
            control.text(piece)
        if script.fail_after is not None and script.fail_after >= len(script.tokens):
            control.fail(script.error(self._entry.name, "failed on cue"))
            return
        control.done(completion_tokens=len(script.tokens), prompt_tokens=None, finish_reason="stop")
