"""Battle lifecycle, UI-agnostic: start, stream both sides, vote, reveal.

Every rule of a battle lives here; ``arena/ui`` only renders what this module returns.  The
browser-facing values (:class:`TurnUpdate`, :class:`BattleRefused` messages) never contain a
model name, a roster index or a backend detail before the vote is committed: the pair is
held in server memory (:class:`_Live`) under an opaque battle id and in the database.

Flow of one anonymous battle::

    async for update in arena.turn(owner=..., user_key=..., prompt="hi"):  # new battle
        ...                                      # both sides stream concurrently
    async for update in arena.turn(..., battle_id=update.battle_id, prompt="more"):
        ...                                      # a follow-up turn, same pair
    reveal = await arena.vote(owner=..., user_key=..., battle_id=..., winner="model_a")

``owner`` is the browser session (one tab); ``user_key`` is the keyed hash of the voter's
address, stored with the battle.  Both must match for every action on a live battle (a
follow-up, regenerate, stop or vote): someone who learns a session hash cannot act on
another voter's battle from another address.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import difflib
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

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
    build_backend,
)
from arena.config import Settings
from arena.integrity import LeakDetector, RateLimited, RateLimiter
from arena.lifecycle import (
    BattleMode,
    BattleRefused,
    BattleStatus,
    Exclusion,
    Refusal,
    Winner,
    refuse,
)
from arena.roster import Roster, load_roster
from arena.sampling import PairDraw, SamplingPolicy, make_policy
from ratings import Leaderboard

__all__ = [
    "VOTE_CHOICES",
    "Arena",
    "BattleRefused",
    "Reveal",
    "SideView",
    "TurnUpdate",
]

log = logging.getLogger(__name__)

Side = Literal["a", "b"]
_SIDES: tuple[Side, Side] = ("a", "b")

#: Vote buttons -> stored ``winner`` values (the LMSYS ``clean_battle`` vocabulary).
VOTE_CHOICES: Mapping[str, Winner] = {
    "a": Winner.MODEL_A,
    "b": Winner.MODEL_B,
    "tie": Winner.TIE,
    "bothbad": Winner.BOTHBAD,
}

# What the user reads when a side fails.  Deliberately generic: the detail (which names the
# model) goes to the database's error_reason and the log, never to the browser.
_FAILURE_TEXT = {
    BackendTimeout.kind: "This model took too long to answer.",
    BackendUnreachable.kind: "This model's server could not be reached.",
    GenerationCancelled.kind: "Stopped.",
}
_GENERIC_FAILURE = "This model failed to answer."
# Two answers at least this similar count as "the same answer again" after a Regenerate.
_REPEAT_SIMILARITY = 0.9
# Longest time text waits before it is sent on (at most ~1/_FRAME_S updates per second).
_FRAME_S = 0.05
# Live battles nobody touched for this long are forgotten (their rows stay in the database).
_IDLE_FORGET_S = 3600.0


@dataclass(frozen=True)
class SideView:
    """One side's answer to the current turn, as the browser may see it."""

    text: str
    done: bool
    error: str | None = None


@dataclass(frozen=True)
class TurnUpdate:
    """A snapshot of the current turn: safe to send to the browser at any time.

    Attributes
    ----------
    battle_id
        Opaque id (a UUID); identifies nothing about the models.
    turn
        1-based turn number.
    prompt
        The user's message of this turn.
    a, b
        The two answers so far.
    status
        ``streaming``, ``ready`` (votable), ``error`` or ``abandoned``.
    message
        A line for the user when the battle ended without being votable.
    """

    battle_id: str
    turn: int
    prompt: str
    a: SideView
    b: SideView
    status: str
    message: str | None = None

    @property
    def votable(self) -> bool:
        """Whether the vote buttons should be active."""
        return self.status == BattleStatus.READY


@dataclass(frozen=True)
class Reveal:
    """The names behind a battle, returned only after its vote is committed."""

    battle_id: str
    model_a: str
    model_b: str
    winner: str


@dataclass
class _Live:
    """Server-side state of a battle in progress (never leaves the server)."""

    battle_id: str
    owner: str
    user_key: str
    mode: str
    model_a: str
    model_b: str
    history: dict[str, list[ChatMessage]] = field(default_factory=lambda: {"a": [], "b": []})
    turn: int = 0
    status: str = BattleStatus.STREAMING
    last_prompt: str = ""
    requests: dict[str, str] = field(default_factory=dict)
    stop_requested: bool = False
    first_prompt: str = ""
    leaked: set[str] = field(default_factory=set)
    # A Regenerate gave the same answer again on a side: that side decodes deterministically,
    # which tells the voter which roster entry it is (issue 11); the vote must not count.
    repeat_revealed: bool = False
    address_key: str = ""
    # Set while no turn is streaming; stop() waits on it instead of polling ``busy``.
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    busy: bool = False
    touched: float = field(default_factory=time.monotonic)

    def model(self, side: str) -> str:
        return self.model_a if side == "a" else self.model_b


@dataclass
class _SideRun:
    parts: list[str] = field(default_factory=list)
    stats: GenerationStats | None = None
    error: BackendError | None = None

    @property
    def finished(self) -> bool:
        return self.stats is not None or self.error is not None

    def view(self) -> SideView:
        err = None
        if self.error is not None:
            err = _FAILURE_TEXT.get(self.error.kind, _GENERIC_FAILURE)
        return SideView("".join(self.parts), self.finished, err)


class Arena:
    """The running arena: roster, backends, store, sampling, and live battles.

    Parameters
    ----------
    settings
        Arena settings.
    roster
        The validated roster.
    engine
        Database engine (schema already checked).
    backends
        One backend per roster name.
    policy
        Sampling policy for anonymous battles.
    secret
        Key for user-key hashing.
    rng
        Randomness for pair draws (seed it in tests).
    """

    def __init__(
        self,
        *,
        settings: Settings,
        roster: Roster,
        engine: Engine,
        backends: Mapping[str, Backend],
        policy: SamplingPolicy,
        secret: str,
        rng: random.Random | None = None,
    ) -> None:
        missing = [n for n in roster.names if n not in backends]
        if missing:
            raise ValueError(f"no backend for roster entries: {', '.join(missing)}")
        self.settings = settings
        self.roster = roster
        self.engine = engine
        self.backends = dict(backends)
        self.policy = policy
        self._secret = secret
        self._rng = rng or random.SystemRandom()
        self._live: dict[str, _Live] = {}
        # Battles being answered right now, per voter and per address (see _reserve).
        self._answering: dict[str, int] = {}
        # The user key is the keyed hash of the client address, so a limit per user key is
        # also the limit per address (behind a trusted proxy: per forwarded address).
        self.prompt_limit = RateLimiter(settings.prompts_per_minute, 60.0, "prompts")
        self.vote_limit = RateLimiter(settings.votes_per_day, 86400.0, "votes")
        self.leaks = LeakDetector.from_roster(roster)

    # ----------------------------------------------------------------------------------------
    # construction

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        roster: Roster | None = None,
        say: Callable[[str], None] = lambda s: None,
        create_schema: bool = True,
    ) -> Arena:
        """Open the database, register the roster and build (not yet load) the backends.

        Parameters
        ----------
        settings
            Arena settings.
        roster
            A roster (default: load ``settings.roster`` or the bundled one).
        say
            Receives one-line progress messages.
        create_schema
            Create the schema in an empty database (never upgrades an existing one).

        Returns
        -------
        Arena

        Raises
        ------
        arena.roster.RosterError
            The roster file is invalid.
        arena.store.SchemaOutOfDate
            The database needs ``arena db upgrade``.
        """
        if roster is None:
            roster = load_roster(settings.roster or None)
        say(f"roster: {len(roster)} models from {roster.path}")
        url = settings.resolved_db_url
        engine = store.open_engine(url, create_if_empty=create_schema)
        say(f"database: {store.redact_url(url)}")
        with store.new_session(engine) as session:
            for entry in roster:
                meta = entry.metadata()
                store.upsert_model(
                    session=session,
                    name=entry.name,
                    backend=entry.backend,
                    config_hash=entry.config_hash,
                    params_b=meta["params_b"],
                    license=meta["license"],
                    open_weights=meta["open_weights"],
                    organisation=meta["organisation"],
                    release_date=entry.release_date,
                    url=meta["url"],
                )
        backends = {e.name: build_backend(e, settings=settings) for e in roster}
        policy = make_policy(
            settings.sampling_policy, roster.names, {e.name: e.weight for e in roster}
        )
        return cls(
            settings=settings,
            roster=roster,
            engine=engine,
            backends=backends,
            policy=policy,
            secret=store.resolve_secret(settings),
        )

    async def load(self, say: Callable[[str], None] = lambda s: None) -> None:
        """Load every backend's model (idempotent; models shared by entries load once)."""
        for name, backend in self.backends.items():
            t0 = time.monotonic()
            say(f"loading {name} ...")
            await backend.load()
            say(f"loaded {name} in {time.monotonic() - t0:.1f}s")

    async def aclose(self) -> None:
        """Stop every generation and release the backends."""
        for backend in self.backends.values():
            await backend.aclose()

    def user_key_for(self, identity: str) -> str:
        """Keyed hash of a raw identity (a client address); the only form ever stored."""
        return store.user_key(self._secret, identity)

    # ----------------------------------------------------------------------------------------
    # turns

    def _check_prompt(self, prompt: str) -> str:
        if not isinstance(prompt, str):
            raise refuse(Refusal.BAD_PROMPT)
        try:
            prompt.encode("utf-8")
        except UnicodeEncodeError:
            raise BattleRefused(
                Refusal.BAD_PROMPT, "The prompt contains characters that are not valid text."
            ) from None
        text = prompt.strip()
        if not text:
            raise refuse(Refusal.EMPTY_PROMPT)
        limit = self.settings.max_prompt_chars
        if len(text) > limit:
            raise refuse(Refusal.PROMPT_TOO_LONG, length=len(text), limit=limit)
        return text

    def _get_live(self, owner: str, user_key: str, battle_id: str) -> _Live:
        live = self._live.get(battle_id) if isinstance(battle_id, str) else None
        if live is None:
            raise refuse(Refusal.NOT_FOUND)
        if live.owner != owner or live.user_key != user_key:
            # Same wording as "not found": a foreign battle's existence is not disclosed.
            # Both keys: a session hash alone (which leaks through logs and shared links)
            # must not let another address continue, stop or vote on the battle.
            log.info("battle %s: refused an action from another session or voter", battle_id)
            raise refuse(Refusal.NOT_FOUND)
        live.touched = time.monotonic()
        return live

    def _forget_idle(self) -> None:
        cutoff = time.monotonic() - _IDLE_FORGET_S
        for bid in [b for b, lv in self._live.items() if lv.touched < cutoff and not lv.busy]:
            del self._live[bid]

    async def _create(
        self, *, owner: str, user_key: str, mode: str, models: tuple[str, str] | None
    ) -> _Live:
        if mode == BattleMode.ANONY:
            if models is not None:
                raise ValueError("anonymous battles draw their own pair")
            draw = self.policy.draw(self._rng)
        elif mode == BattleMode.NAMED:
            if models is None or len(models) != 2:
                raise refuse(Refusal.PICK_MODELS)
            a, b = models
            for m in (a, b):
                if m not in self.roster:
                    raise refuse(Refusal.UNKNOWN_MODEL, model=m)
            if a == b:
                raise refuse(Refusal.SAME_MODEL)
            draw = PairDraw(a, b, 1.0, "user_choice", "1")
        else:
            raise ValueError(f"unknown battle mode {mode!r}")
        self._forget_idle()

        def create() -> str:
            with store.new_session(self.engine) as session:
                battle = store.create_battle(
                    session=session,
                    mode=mode,
                    model_a=draw.model_a,
                    model_b=draw.model_b,
                    user_key=user_key,
                    pair_probability=draw.probability,
                    policy_name=draw.policy_name,
                    policy_version=draw.policy_version,
                )
                return battle.id

        battle_id = await self._db(create)
        live = _Live(battle_id, owner, user_key, mode, draw.model_a, draw.model_b)
        self._live[battle_id] = live
        return live

    async def turn(
        self,
        *,
        owner: str,
        user_key: str,
        prompt: str,
        battle_id: str | None = None,
        mode: str = BattleMode.ANONY,
        models: tuple[str, str] | None = None,
        address_key: str | None = None,
    ) -> AsyncIterator[TurnUpdate]:
        """Send a prompt to both sides and stream their answers concurrently.

        Without ``battle_id`` a new battle starts (anonymous: a pair is drawn; named: the
        two ``models``).  With it, the prompt is a follow-up turn to the same pair.

        Parameters
        ----------
        owner
            Opaque id of the browser session.
        user_key
            Keyed hash of the voter (:meth:`user_key_for`).
        prompt
            The user's message.
        battle_id
            Continue this battle.
        mode
            ``anony`` or ``named`` (new battles only).
        models
            The two models of a named battle.
        address_key
            Keyed hash of the client address, when it differs from ``user_key``; the cap on
            battles being answered at once applies to it as well.

        Yields
        ------
        TurnUpdate
            Snapshots; the last one has status ``ready``, ``error`` or ``abandoned``.

        Raises
        ------
        BattleRefused
            Empty or over-long prompt, turn limit, unknown or foreign battle, a battle
            that is not ready for another turn, too many battles being answered at once.
        """
        text = self._check_prompt(prompt)
        live = None if battle_id is None else self._get_live(owner, user_key, battle_id)
        if live is not None:
            self._check_continuable(live)
            if live.turn >= self.settings.max_turns:
                raise refuse(Refusal.TURN_LIMIT, limit=self.settings.max_turns)
        with self._answering_slot(user_key, address_key or user_key):
            try:
                self.prompt_limit.hit(f"user:{user_key}")
            except RateLimited as exc:
                raise refuse(Refusal.RATE_LIMITED, detail=str(exc)) from None
            if live is None:
                live = await self._create(owner=owner, user_key=user_key, mode=mode, models=models)
                live.address_key = address_key or user_key
            async for update in self._run_turn(live, text, replace_last=False):
                yield update

    @contextlib.contextmanager
    def _answering_slot(self, user_key: str, address_key: str) -> Iterator[None]:
        """Hold one of the voter's (and the address's) places for a battle being answered.

        Without this cap one address opened 20 battles at once, well under its prompts per
        minute, and held every model slot while other voters timed out (issue 11).  The check
        and the count happen with no ``await`` between them, so concurrent starts cannot
        slip past the cap together.
        """
        keys = [
            (f"voter:{user_key}", self.settings.max_live_battles),
            (f"address:{address_key}", self.settings.max_live_battles_per_address),
        ]
        for key, cap in keys:
            if cap and self._answering.get(key, 0) >= cap:
                raise refuse(Refusal.TOO_MANY_LIVE, cap=cap, plural="s" if cap != 1 else "")
        for key, _ in keys:
            self._answering[key] = self._answering.get(key, 0) + 1
        try:
            yield
        finally:
            for key, _ in keys:
                left = self._answering[key] - 1
                if left:
                    self._answering[key] = left
                else:
                    del self._answering[key]

    async def regenerate(
        self, *, owner: str, user_key: str, battle_id: str
    ) -> AsyncIterator[TurnUpdate]:
        """Run the last turn again (both sides) in place of the previous answers.

        The database keeps both attempts: the repeat is stored as a new turn with the same
        prompt, so the log shows exactly what was generated and what was judged.

        Raises
        ------
        BattleRefused
            Nothing to regenerate, turn limit, or the battle is not active.
        """
        live = self._get_live(owner, user_key, battle_id)
        self._check_continuable(live)
        if live.turn == 0:
            raise refuse(Refusal.NOTHING_TO_REGENERATE)
        if live.turn >= self.settings.max_turns:
            raise refuse(Refusal.TURN_LIMIT, limit=self.settings.max_turns)
        with self._answering_slot(user_key, live.address_key or user_key):
            async for update in self._run_turn(live, live.last_prompt, replace_last=True):
                yield update

    def _check_continuable(self, live: _Live) -> None:
        if live.busy:
            raise refuse(Refusal.BUSY)
        if live.status != BattleStatus.READY:
            raise refuse(Refusal.ENDED)

    async def _store(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        def run() -> Any:
            with store.new_session(self.engine) as session:
                return fn(session=session, **kwargs)

        return await self._db(run)

    @staticmethod
    async def _db(fn: Callable[[], Any]) -> Any:
        """Run a database call in a worker thread; an outage becomes a retryable refusal."""
        try:
            return await asyncio.to_thread(fn)
        except (OperationalError, InterfaceError, DisconnectionError) as exc:
            log.warning("database unavailable: %s", str(exc).splitlines()[0])
            raise refuse(Refusal.DB_UNAVAILABLE) from None

    async def _run_turn(
        self, live: _Live, prompt: str, *, replace_last: bool
    ) -> AsyncIterator[TurnUpdate]:
        live.busy = True
        live.idle = asyncio.Event()  # one per turn: an Event binds to the loop that waits
        live.stop_requested = False
        finished = False
        runs: dict[str, _SideRun] = {s: _SideRun() for s in _SIDES}
        turn = live.turn + 1
        tasks: list[asyncio.Task[None]] = []
        try:
            if live.status != BattleStatus.STREAMING:
                await self._store(
                    store.set_status, battle_id=live.battle_id, status=BattleStatus.STREAMING
                )
                live.status = BattleStatus.STREAMING
            previous: dict[str, str] = {}
            if replace_last:
                for s in _SIDES:
                    previous[s] = live.history[s][-1].content
                    del live.history[s][-2:]
            await self._store(
                store.append_message,
                battle_id=live.battle_id,
                turn=turn,
                side="user",
                content=prompt,
            )
            live.turn = turn
            live.last_prompt = prompt
            live.first_prompt = live.first_prompt or prompt
            queue: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
            for s in _SIDES:
                request = GenerationRequest(
                    messages=(*live.history[s], ChatMessage("user", prompt)),
                    client=live.user_key,
                )
                live.requests[s] = request.request_id
                tasks.append(asyncio.create_task(self._pump(live.model(s), request, s, queue)))

            def snapshot(
                status: str = BattleStatus.STREAMING, message: str | None = None
            ) -> TurnUpdate:
                return TurnUpdate(
                    live.battle_id,
                    turn,
                    prompt,
                    runs["a"].view(),
                    runs["b"].view(),
                    status,
                    message,
                )

            yield snapshot()
            loop = asyncio.get_running_loop()

            def settled() -> bool:
                return all(r.finished for r in runs.values()) or any(
                    r.error is not None for r in runs.values()
                )

            while not settled():
                side, item = await queue.get()
                self._apply(runs[side], item)
                # Gather what arrives within one frame into one update: each update is a
                # message to the browser, and fast models would otherwise send one per token.
                frame_end = loop.time() + _FRAME_S
                while not settled() and (remaining := frame_end - loop.time()) > 0:
                    try:
                        side, item = await asyncio.wait_for(queue.get(), remaining)
                    except TimeoutError:
                        break
                    self._apply(runs[side], item)
                if any(r.error is not None for r in runs.values()):
                    break
                yield snapshot()
            failed = [s for s in _SIDES if runs[s].error is not None]
            if failed:
                for s in _SIDES:  # a failed battle is over: stop the other side too
                    if not runs[s].finished:
                        self._cancel_side(live, s)
                        runs[s].error = GenerationCancelled(live.model(s), "other side failed")
                cancelled = (
                    all(isinstance(runs[s].error, GenerationCancelled) for s in failed)
                    and live.stop_requested
                )
                status = BattleStatus.ABANDONED if cancelled else BattleStatus.ERROR
                reason = "; ".join(
                    f"side {s}: {runs[s].error.kind}: {runs[s].error}"  # type: ignore[union-attr]
                    for s in failed
                )
                await self._store(
                    store.set_status,
                    battle_id=live.battle_id,
                    status=status,
                    error_reason=reason,
                )
                live.status = status
                busy = [e for s in failed if isinstance(e := runs[s].error, BackendBusy)]
                if cancelled:
                    message = (
                        "Generation stopped. This battle cannot be voted on; start a new round."
                    )
                elif busy:
                    wait = math.ceil(max(e.retry_after_s for e in busy))
                    message = f"The arena is busy right now. Try again in {wait} s."
                else:
                    message = (
                        "A model failed to answer, so this battle will not be counted. "
                        "Start a new round."
                    )
                finished = True
                yield snapshot(status, message)
                return
            for s in _SIDES:
                stats = runs[s].stats
                assert stats is not None
                reply = "".join(runs[s].parts)
                await self._store(
                    store.append_message,
                    battle_id=live.battle_id,
                    turn=turn,
                    side=s,
                    content=reply,
                    token_count=stats.completion_tokens,
                    latency_s=stats.latency_s,
                    finish_reason=stats.finish_reason,
                )
                live.history[s].extend(
                    [ChatMessage("user", prompt), ChatMessage("assistant", reply)]
                )
                live.leaked.update(self.leaks.find(reply))
                if s in previous and _same_answer(previous[s], reply):
                    live.repeat_revealed = True
                    log.info(
                        "battle %s: side %s repeated its answer on regenerate", live.battle_id, s
                    )
            await self._store(store.set_status, battle_id=live.battle_id, status=BattleStatus.READY)
            live.status = BattleStatus.READY
            finished = True
            yield snapshot(BattleStatus.READY)
        finally:
            live.busy = False
            live.idle.set()
            for t in tasks:
                t.cancel()
            if not finished:
                # The consumer went away (closed tab, Stop, server shutdown) or a store write
                # failed: stop generating and make sure the battle can never be counted.
                for s in _SIDES:
                    self._cancel_side(live, s)
                live.status = BattleStatus.ABANDONED
                with contextlib.suppress(Exception):
                    await asyncio.shield(
                        self._store(
                            store.set_status,
                            battle_id=live.battle_id,
                            status=BattleStatus.ABANDONED,
                            error_reason="generation interrupted",
                        )
                    )

    @staticmethod
    def _apply(run: _SideRun, item: object) -> None:
        if isinstance(item, TextDelta):
            run.parts.append(item.text)
        elif isinstance(item, GenerationStats):
            run.stats = item
        elif isinstance(item, BackendError):
            run.error = item

    async def _pump(
        self,
        model: str,
        request: GenerationRequest,
        side: str,
        queue: asyncio.Queue[tuple[str, object]],
    ) -> None:
        backend = self.backends[model]
        try:
            async for event in backend.stream(request):
                queue.put_nowait((side, event))
        except BackendError as exc:
            log.warning("battle side %s failed: %s", side, exc)
            queue.put_nowait((side, exc))
        except Exception as exc:  # a bug in a backend must still end the battle cleanly
            log.exception("backend %s raised unexpectedly", model)
            queue.put_nowait((side, BackendError(model, f"unexpected {type(exc).__name__}")))

    def _cancel_side(self, live: _Live, side: str) -> None:
        request_id = live.requests.get(side)
        if request_id is not None:
            self.backends[live.model(side)].cancel(request_id)

    async def stop(self, *, owner: str, user_key: str, battle_id: str, wait_s: float = 0.0) -> None:
        """Stop both generations of the current turn; the battle becomes ``abandoned``.

        Parameters
        ----------
        wait_s
            Also wait (up to this long) until the turn's stream has yielded its last update,
            so that whatever the caller shows next comes after it.

        Raises
        ------
        BattleRefused
            Unknown or foreign battle.
        """
        live = self._get_live(owner, user_key, battle_id)
        live.stop_requested = True
        for s in _SIDES:
            self._cancel_side(live, s)
        if live.busy and wait_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(live.idle.wait(), wait_s)
        if not live.busy and live.status == BattleStatus.READY:
            await self._store(
                store.set_status,
                battle_id=battle_id,
                status=BattleStatus.ABANDONED,
                error_reason="stopped by user",
            )
            live.status = BattleStatus.ABANDONED

    # ----------------------------------------------------------------------------------------
    # voting

    async def vote(self, *, owner: str, user_key: str, battle_id: str, winner: str) -> Reveal:
        """Commit the vote, then reveal the two models.

        Parameters
        ----------
        owner, user_key
            Must match the battle's.
        battle_id
            The battle.
        winner
            A key of :data:`VOTE_CHOICES` (``a``, ``b``, ``tie``, ``bothbad``) or a stored
            value (``model_a``, ``model_b``, ``tie``, ``tie (bothbad)``).

        Returns
        -------
        Reveal
            Only after the vote is durably committed.

        Raises
        ------
        BattleRefused
            Unknown/foreign battle, still streaming, errored, already voted, bad winner.
        """
        value = VOTE_CHOICES.get(winner, winner)
        if value not in VOTE_CHOICES.values():
            raise refuse(Refusal.BAD_VOTE, vote=winner)
        live = self._get_live(owner, user_key, battle_id)
        if live.status == BattleStatus.VOTED:
            raise refuse(Refusal.ALREADY_VOTED)
        if live.status in (BattleStatus.ERROR, BattleStatus.ABANDONED):
            raise refuse(Refusal.ERRORED)
        if live.busy or live.status == BattleStatus.STREAMING:
            raise refuse(Refusal.NOT_READY)
        try:
            self.vote_limit.hit(f"user:{user_key}")
            await self._db(lambda: self._check_stored_votes(user_key))
        except RateLimited as exc:
            raise refuse(Refusal.RATE_LIMITED, detail=str(exc)) from None
        try:
            await self._store(
                store.record_vote, battle_id=battle_id, winner=value, user_key=user_key
            )
        except store.AlreadyVoted:
            raise refuse(Refusal.ALREADY_VOTED) from None
        except store.BattleNotReady:
            raise refuse(Refusal.NOT_READY) from None
        except store.BattleErrored:
            raise refuse(Refusal.ERRORED) from None
        except (store.ForeignBattle, store.BattleNotFound):
            raise refuse(Refusal.NOT_FOUND) from None
        live.status = BattleStatus.VOTED
        try:
            reason = await self._db(lambda: self._exclusion_for(live))
        except BattleRefused:
            # The vote is committed; its exclusion check can be redone by `arena audit`.
            log.warning("battle %s: vote kept, exclusion check skipped", live.battle_id)
            reason = None
        if reason is not None:
            try:
                await self._store(store.mark_exclusion, battle_id=battle_id, reason=reason)
            except BattleRefused:
                log.warning("battle %s: vote kept, exclusion %s not stored", battle_id, reason)
        return Reveal(battle_id, live.model_a, live.model_b, value)

    def _check_stored_votes(self, user_key: str) -> None:
        """The vote limit against the database: it holds across replicas and restarts."""
        limit = self.vote_limit
        if not limit.limit:
            return
        now = store.utcnow()
        n, first = store.recent_votes_by(
            engine=self.engine, user_key=user_key, since=now - dt.timedelta(seconds=limit.window_s)
        )
        limit.check_stored(n, None if first is None else (now - first).total_seconds())

    def _exclusion_for(self, live: _Live) -> str | None:
        """Why this (just committed) vote should not count, if it should not."""
        if live.leaked:
            log.info("battle %s: identity leak (%s)", live.battle_id, ", ".join(live.leaked))
            return Exclusion.IDENTITY_LEAK
        if live.repeat_revealed:
            return Exclusion.REGENERATE_REVEAL
        cap = self.settings.duplicate_prompt_cap
        if cap > 0 and live.first_prompt:
            earlier = store.counted_votes_on_question(
                engine=self.engine,
                question_id=store.question_id_for(live.first_prompt),
                except_battle=live.battle_id,
            )
            if earlier >= cap:
                return Exclusion.DUPLICATE_PROMPT
        return None

    def refresh_policy(self, lb: Leaderboard) -> None:
        """Feed a fresh leaderboard to an ``active`` sampling policy (no-op otherwise)."""
        names = lb.models
        counts = {
            (names[i], names[j]): int(lb.battle_counts[i, j])
            for i in range(len(names))
            for j in range(i + 1, len(names))
        }
        self.policy.update(
            counts=counts,
            ratings={r.model: r.rating for r in lb.rows},
            ci_width={r.model: r.upper - r.lower for r in lb.rows},
        )

    def live_battles(self) -> int:
        """Number of battles held in memory (for health checks)."""
        return len(self._live)


def _same_answer(before: str, after: str) -> bool:
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
