"""One turn of a battle: send the prompt to both sides, stream them concurrently, store the
answers, and end the turn ``ready``, ``error`` or ``abandoned``.

Also stopping a turn, and Regenerate (the last turn again, in place of its answers).  A
:class:`TurnRunner` holds no battle state of its own: it works on the
:class:`~arena.live.LiveBattle` it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from arena import store
from arena.backends import (
    Backend,
    BackendBusy,
    BackendError,
    BackendTimeout,
    BackendUnreachable,
    ChatMessage,
    GenerationCancelled,
    GenerationRequest,
    GenerationStats,
    TextDelta,
)
from arena.integrity import LeakDetector
from arena.lifecycle import BattleStatus, MessageSide
from arena.live import LiveBattle, SideView, TurnUpdate
from arena.metrics import ArenaMetrics
from arena.moderation import Action, Decision, ModerationMode, Moderator
from arena.store.offload import Offload

__all__ = ["DecisionRecorder", "TurnRunner"]

log = logging.getLogger(__name__)

#: Stores a moderation decision: (decision, battle id, user key, turn, side).
DecisionRecorder = Callable[[Decision, str | None, str, int, str], Awaitable[None]]

SIDES = (MessageSide.A, MessageSide.B)

# What the user reads when a side fails.  Deliberately generic: the detail (which names the
# model) goes to the database's error_reason and the log, never to the browser.
_FAILURE_TEXT = {
    BackendTimeout.kind: "This model took too long to answer.",
    BackendUnreachable.kind: "This model's server could not be reached.",
    BackendBusy.kind: "This model is busy.",
    GenerationCancelled.kind: "Stopped.",
}
_GENERIC_FAILURE = "This model failed to answer."
_STOPPED = "Generation stopped. This battle cannot be voted on; start a new round."
_FAILED = "A model failed to answer, so this battle will not be counted. Start a new round."
_WITHHELD = "This answer was withheld by this arena's content rules."
_BLOCKED = (
    "An answer was withheld by this arena's content rules, so this battle will not be "
    "counted. Start a new round."
)
_FLAGGED = "This arena's content rules flagged this battle, so its vote will not be counted."
# Moderating a streamed answer re-checks this many characters before the new text, so that
# a match spanning two frames is still found (e-mails, numbers and phrases are shorter).
_MODERATION_OVERLAP = 256
# In block mode the last this-many characters of a streaming answer are held back until
# more text (or the end) has been checked: a finding up to this long is never shown, not
# even its first half.
_MODERATION_HOLDBACK = 128
# Longest time text waits before it is sent on (at most ~1/_FRAME_S updates per second).
_FRAME_S = 0.05
# Two answers at least this similar count as "the same answer again" after a Regenerate.
_REPEAT_SIMILARITY = 0.9


@dataclass
class _SideRun:
    parts: list[str] = field(default_factory=list)
    stats: GenerationStats | None = None
    error: BackendError | None = None
    withheld: Decision | None = None  # moderation blocked this answer
    checked_upto: int = 0  # characters already moderated
    flagged: bool = False  # moderation flagged it (any mode)

    @property
    def finished(self) -> bool:
        return self.stats is not None or self.error is not None or self.withheld is not None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def apply(self, item: object) -> None:
        if isinstance(item, TextDelta):
            self.parts.append(item.text)
        elif isinstance(item, GenerationStats):
            self.stats = item
        elif isinstance(item, BackendError):
            self.error = item

    def view(self, holdback: int = 0) -> SideView:
        if self.withheld is not None:
            return SideView("", True, _WITHHELD)
        err = None
        if self.error is not None:
            err = _FAILURE_TEXT.get(self.error.kind, _GENERIC_FAILURE)
        text = self.text
        if holdback and not self.finished:
            text = text[: max(0, len(text) - holdback)]
        return SideView(text, self.finished, err)


@dataclass
class _Turn:
    """The turn being streamed: its number, prompt and both sides' progress."""

    live: LiveBattle
    number: int
    prompt: str
    notice: str | None = None
    holdback: int = 0
    runs: dict[str, _SideRun] = field(default_factory=lambda: {s: _SideRun() for s in SIDES})

    def snapshot(
        self, status: str = BattleStatus.STREAMING, message: str | None = None
    ) -> TurnUpdate:
        return TurnUpdate(
            self.live.battle_id,
            self.number,
            self.prompt,
            self.runs["a"].view(self.holdback),
            self.runs["b"].view(self.holdback),
            status,
            message or self.notice,
            withdrawn=self.live.withdrawn,
        )

    def settled(self) -> bool:
        return all(r.finished for r in self.runs.values()) or self.failed()

    def failed(self) -> bool:
        return any(r.error is not None or r.withheld is not None for r in self.runs.values())


class TurnRunner:
    """Streams turns of live battles.

    Parameters
    ----------
    backends
        One backend per roster name.
    db
        Store calls off the event loop.
    leaks
        Finds answers that name a model (their battle's vote is then not counted).
    metrics
        Where generation times, speeds and failures are counted.
    moderator
        Checks answers before they are shown (see :mod:`arena.moderation`).
    record
        Stores a moderation decision that found something.
    """

    def __init__(
        self,
        *,
        backends: Mapping[str, Backend],
        db: Offload,
        leaks: LeakDetector,
        metrics: ArenaMetrics | None = None,
        moderator: Moderator | None = None,
        record: DecisionRecorder | None = None,
    ) -> None:
        self.backends = dict(backends)
        self.db = db
        self.leaks = leaks
        self.metrics = metrics or ArenaMetrics()
        self.moderator = moderator or Moderator()
        self.record = record

    async def run(
        self, live: LiveBattle, prompt: str, *, replace_last: bool, notice: str | None = None
    ) -> AsyncIterator[TurnUpdate]:
        """Stream one turn; with ``replace_last``, the last turn again (Regenerate).

        ``notice`` is shown with every update of the turn (a moderation warning).

        Yields
        ------
        TurnUpdate
            Snapshots; the last one is ``ready``, ``error`` or ``abandoned``.
        """
        live.busy = True
        live.idle = asyncio.Event()
        live.stop_requested = False
        live.withdrawn = False
        turn = _Turn(live, live.turn + 1, prompt, notice or (_FLAGGED if live.moderated else None))
        if self.moderator.active and self.moderator.mode == ModerationMode.BLOCK:
            turn.holdback = _MODERATION_HOLDBACK
        tasks: list[asyncio.Task[None]] = []
        finished = False
        try:
            previous = await self._begin(turn, replace_last=replace_last)
            queue: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
            for s in SIDES:
                request = GenerationRequest(
                    messages=(*live.history[s], ChatMessage("user", prompt)),
                    client=live.user_key,
                )
                live.requests[s] = request.request_id
                tasks.append(asyncio.create_task(self._pump(live, s, request, queue)))
            # Every frame is moderated before it is shown (block mode: nothing flagged is).
            async with contextlib.aclosing(self._stream(turn, queue)) as frames:
                async for _frame in frames:
                    await self._moderate(turn)
                    if turn.failed():
                        break
                    yield turn.snapshot()
            if not turn.failed():
                await self._moderate(turn, final=True)
            if turn.failed():
                update = await self._end_failed(turn)
            else:
                update = await self._end_ready(turn, previous)
            finished = True
            yield update
        finally:
            live.busy = False
            live.idle.set()
            for t in tasks:
                t.cancel()
            if not finished:
                await self._abandon(live)

    async def _begin(self, turn: _Turn, *, replace_last: bool) -> dict[str, str]:
        """Mark the battle streaming and store the prompt; return the answers it replaces."""
        live = turn.live
        if live.status != BattleStatus.STREAMING:
            await self.db.call(
                store.set_status, battle_id=live.battle_id, status=BattleStatus.STREAMING
            )
            live.status = BattleStatus.STREAMING
        previous: dict[str, str] = {}
        if replace_last:
            for s in SIDES:
                previous[s] = live.history[s][-1].content
                del live.history[s][-2:]
        await self.db.call(
            store.append_message,
            battle_id=live.battle_id,
            turn=turn.number,
            side=MessageSide.USER,
            content=turn.prompt,
        )
        live.turn = turn.number
        live.last_prompt = turn.prompt
        live.first_prompt = live.first_prompt or turn.prompt
        return previous

    @staticmethod
    async def _stream(
        turn: _Turn, queue: asyncio.Queue[tuple[str, object]]
    ) -> AsyncGenerator[TurnUpdate, None]:
        """Snapshots until both sides finished or one failed."""
        yield turn.snapshot()
        loop = asyncio.get_running_loop()
        while not turn.settled():
            side, item = await queue.get()
            turn.runs[side].apply(item)
            # Gather what arrives within one frame into one update: each update is a message
            # to the browser, and fast models would otherwise send one per token.
            frame_end = loop.time() + _FRAME_S
            while not turn.settled() and (remaining := frame_end - loop.time()) > 0:
                try:
                    side, item = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
                turn.runs[side].apply(item)
            if turn.failed():
                return
            yield turn.snapshot()

    async def _end_failed(self, turn: _Turn) -> TurnUpdate:
        """A side failed: stop the other, store why, and say so without naming a model."""
        live, runs = turn.live, turn.runs
        failed = [s for s in SIDES if runs[s].error is not None]
        for s in SIDES:  # a failed battle is over: stop the other side too
            if not runs[s].finished:
                self.cancel_side(live, s)
                runs[s].error = GenerationCancelled(live.model(s), "other side failed")
        errors = [e for s in failed if (e := runs[s].error) is not None]
        for s, e in zip(failed, errors, strict=True):
            self.metrics.failed(live.model(s), e)
        cancelled = live.stop_requested and all(isinstance(e, GenerationCancelled) for e in errors)
        withheld = {s: d for s in SIDES if (d := runs[s].withheld) is not None}
        cancelled = cancelled and not withheld
        status = BattleStatus.ABANDONED if cancelled else BattleStatus.ERROR
        reason = "; ".join(f"side {s}: {e.kind}: {e}" for s, e in zip(failed, errors, strict=True))
        if withheld:
            reason = "; ".join(
                [f"side {s}: moderated: {', '.join(d.categories)}" for s, d in withheld.items()]
                + ([reason] if reason else [])
            )
        log.warning("battle %s: turn %d ended %s (%s)", live.battle_id, turn.number, status, reason)
        await self.db.call(
            store.set_status, battle_id=live.battle_id, status=status, error_reason=reason
        )
        live.status = status
        busy = [e for e in errors if isinstance(e, BackendBusy)]
        if withheld:
            message = _BLOCKED
        elif cancelled:
            message = _STOPPED
        elif busy:
            wait = math.ceil(max(e.retry_after_s for e in busy))
            message = f"The arena is busy right now. Try again in {wait} s."
        else:
            message = _FAILED
        return turn.snapshot(status, message)

    async def _moderate(self, turn: _Turn, *, final: bool = False) -> None:
        """Check each side's new text before it is shown; act on the first finding."""
        if not self.moderator.active:
            return
        live = turn.live
        for s in SIDES:
            run = turn.runs[s]
            text = run.text
            if run.flagged or (len(text) <= run.checked_upto and not final):
                continue
            start = max(0, run.checked_upto - _MODERATION_OVERLAP)
            decision = self.moderator.check_fast(text[start:], f"answer_{s}")
            run.checked_upto = len(text)
            if not decision.flagged:
                continue
            run.flagged = True
            log.info(
                "battle %s: side %s answer flagged (%s): %s",
                live.battle_id,
                s,
                ", ".join(decision.categories),
                decision.action,
            )
            if self.record is not None:
                await self.record(decision, live.battle_id, live.user_key, turn.number, s)
            if decision.action == Action.BLOCKED:
                run.withheld = decision
                self.cancel_side(live, s)
            elif decision.action == Action.WARNED:
                live.moderated = True
                turn.notice = _FLAGGED

    async def _end_ready(self, turn: _Turn, previous: Mapping[str, str]) -> TurnUpdate:
        """Both sides answered: store the answers, check them, and open the vote."""
        live = turn.live
        for s in SIDES:
            stats = turn.runs[s].stats
            assert stats is not None
            self.metrics.generated(stats)
            reply = "".join(turn.runs[s].parts)
            await self.db.call(
                store.append_message,
                battle_id=live.battle_id,
                turn=turn.number,
                side=s,
                content=reply,
                token_count=stats.completion_tokens,
                latency_s=stats.latency_s,
                finish_reason=stats.finish_reason,
            )
            live.history[s].extend(
                [ChatMessage("user", turn.prompt), ChatMessage("assistant", reply)]
            )
            live.leaked.update(self.leaks.find(reply))
            if s in previous and same_answer(previous[s], reply):
                live.repeat_revealed = True
                log.info("battle %s: side %s repeated its answer on regenerate", live.battle_id, s)
        await self.db.call(store.set_status, battle_id=live.battle_id, status=BattleStatus.READY)
        live.status = BattleStatus.READY
        return turn.snapshot(BattleStatus.READY)

    async def _abandon(self, live: LiveBattle) -> None:
        """The consumer went away (closed tab, Stop, shutdown) or a store write failed: stop
        generating and make sure the battle can never be counted."""
        for s in SIDES:
            self.cancel_side(live, s)
        live.status = BattleStatus.ABANDONED
        log.info("battle %s: abandoned mid-turn", live.battle_id)
        with contextlib.suppress(Exception):
            await asyncio.shield(
                self.db.call(
                    store.set_status,
                    battle_id=live.battle_id,
                    status=BattleStatus.ABANDONED,
                    error_reason="generation interrupted",
                )
            )

    async def _pump(
        self,
        live: LiveBattle,
        side: str,
        request: GenerationRequest,
        queue: asyncio.Queue[tuple[str, object]],
    ) -> None:
        model = live.model(side)
        try:
            async for event in self.backends[model].stream(request):
                queue.put_nowait((side, event))
        except BackendError as exc:
            log.warning("battle %s: side %s failed: %s", live.battle_id, side, exc)
            queue.put_nowait((side, exc))
        except Exception as exc:  # a bug in a backend must still end the battle cleanly
            log.exception("battle %s: backend %s raised unexpectedly", live.battle_id, model)
            queue.put_nowait((side, BackendError(model, f"unexpected {type(exc).__name__}")))

    def cancel_side(self, live: LiveBattle, side: str) -> None:
        """Stop ``side``'s generation of the current turn (no-op when none is running)."""
        request_id = live.requests.get(side)
        if request_id is not None:
            self.backends[live.model(side)].cancel(request_id)

    async def stop(self, live: LiveBattle, *, wait_s: float, withdraw: bool = False) -> None:
        """Stop both generations; a ready battle becomes ``abandoned`` (see ``Arena.stop``)."""
        live.stop_requested = True
        live.withdrawn = withdraw
        for s in SIDES:
            self.cancel_side(live, s)
        if live.busy and wait_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(live.idle.wait(), wait_s)
        if not live.busy and live.status == BattleStatus.READY:
            await self.db.call(
                store.set_status,
                battle_id=live.battle_id,
                status=BattleStatus.ABANDONED,
                error_reason="stopped by user",
            )
            live.status = BattleStatus.ABANDONED
            log.info("battle %s: stopped by its voter", live.battle_id)


def same_answer(before: str, after: str) -> bool:
    """Whether a regenerated answer is (nearly) the previous one: deterministic decoding."""
    a, b = " ".join(before.split()), " ".join(after.split())
    if a == b:
        return True
    if not a or not b:
        return False
    m = difflib.SequenceMatcher(None, a, b, autojunk=False)
    # The cheap upper bounds first: most regenerated answers differ at a glance.
    return (
        m.real_quick_ratio() >= _REPEAT_SIMILARITY
        and m.quick_ratio() >= _REPEAT_SIMILARITY
        and m.ratio() >= _REPEAT_SIMILARITY
    )
