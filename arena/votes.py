"""The vote gate: check a vote, commit it, decide whether it counts, then reveal the names.

The names leave the server only in the :class:`~arena.live.Reveal` returned here, after the
vote is durably committed.  A committed vote is never undone: when it should not count (an
answer named a model, a Regenerate revealed a deterministic side, the prompt was voted on too
often) it gets a typed exclusion reason instead.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from arena import store
from arena.features import Tagger, record_for_battle
from arena.integrity import RateLimited, RateLimiter
from arena.lifecycle import BattleStatus, Exclusion, Refusal, Winner, refuse
from arena.live import LiveBattle, Reveal
from arena.metrics import ArenaMetrics
from arena.store.offload import Offload

__all__ = ["VOTE_CHOICES", "VoteGate", "parse_winner"]

log = logging.getLogger(__name__)

#: Vote buttons -> stored ``winner`` values (the LMSYS ``clean_battle`` vocabulary).
VOTE_CHOICES: Mapping[str, Winner] = {
    "a": Winner.MODEL_A,
    "b": Winner.MODEL_B,
    "tie": Winner.TIE,
    "bothbad": Winner.BOTHBAD,
}


def parse_winner(winner: str) -> Winner:
    """A button key (``a``, ``b``, ``tie``, ``bothbad``) or a stored value, as a :class:`Winner`.

    Raises
    ------
    arena.lifecycle.BattleRefused
        ``bad_vote`` for anything else.
    """
    if isinstance(winner, str):
        if winner in VOTE_CHOICES:
            return VOTE_CHOICES[winner]
        if winner in set(Winner):
            return Winner(winner)
    raise refuse(Refusal.BAD_VOTE, vote=winner)


class VoteGate:
    """Validates, commits and classifies votes.

    Parameters
    ----------
    engine
        The arena's database (for the checks that read it).
    db
        Store calls off the event loop.
    vote_limit
        Votes per voter per window (also checked against the database).
    duplicate_prompt_cap
        Counted votes per identical first prompt (``0``: no cap).
    metrics
        Where committed votes are counted.
    tagger
        When given, each voted battle's style features and category tags are computed and
        stored in the background after the vote is acknowledged (``None``: not recorded;
        ``arena db backfill-style`` fills in whatever is missing).
    """

    #: Feature jobs waiting at most; past it a vote's features are left to backfill-style
    #: rather than let a backlog grow without bound under load.
    MAX_PENDING_FEATURES = 1000

    def __init__(
        self,
        *,
        engine: Engine,
        db: Offload,
        vote_limit: RateLimiter,
        duplicate_prompt_cap: int,
        address_vote_limit: RateLimiter | None = None,
        metrics: ArenaMetrics | None = None,
        tagger: Tagger | None = None,
    ) -> None:
        self.metrics = metrics or ArenaMetrics()
        self.tagger = tagger
        # Feature jobs run one at a time, off the acknowledgement path: tagging a battle
        # costs about twice its vote's commit (lingua, tokenising both answers).
        self._features_turn: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self.engine = engine
        self.db = db
        self.vote_limit = vote_limit
        self.address_vote_limit = address_vote_limit or RateLimiter(0, 86400.0, "votes")
        self.duplicate_prompt_cap = duplicate_prompt_cap

    async def vote(self, live: LiveBattle, winner: Winner) -> Reveal:
        """Commit ``winner`` for the live battle, store an exclusion if it must not count,
        and return the names.

        Raises
        ------
        arena.lifecycle.BattleRefused
            Still streaming, errored, already voted, over the vote limit, database down.
        """
        bid = live.battle_id
        if live.status == BattleStatus.VOTED:
            raise refuse(Refusal.ALREADY_VOTED)
        if BattleStatus(live.status).ended_unvotable:
            raise refuse(Refusal.ERRORED)
        if live.busy or live.status == BattleStatus.STREAMING:
            raise refuse(Refusal.NOT_READY)
        try:
            # The address's ceiling: all its voters together, with or without the cookie.
            # A vote refused by either limit counts for neither.
            address = live.address_key or None
            if address is not None:
                self.address_vote_limit.hit(f"address:{address}", count=False)
            self.vote_limit.hit(f"user:{live.user_key}")
            if address is not None:
                self.address_vote_limit.hit(f"address:{address}")
            if self.vote_limit.limit or (address and self.address_vote_limit.limit):
                # (no worker-thread hop when there is no limit)
                await self.db.run(lambda: self._check_stored_votes(live.user_key, address))
        except RateLimited as exc:
            raise refuse(Refusal.RATE_LIMITED, detail=str(exc)) from None
        try:
            # One worker-thread hop for the commit and its classification: under load each
            # hop waits for the event loop (~0.05 s), and the voter waits for all of them.
            reason = await self.db.run(lambda: self._commit_and_classify(live, winner))
        except store.AlreadyVoted:
            raise refuse(Refusal.ALREADY_VOTED) from None
        except store.BattleNotReady:
            raise refuse(Refusal.NOT_READY) from None
        except store.BattleErrored:
            raise refuse(Refusal.ERRORED) from None
        except (store.ForeignBattle, store.BattleNotFound):
            raise refuse(Refusal.NOT_FOUND) from None
        live.status = BattleStatus.VOTED
        self.metrics.voted(live.model_a, live.model_b)
        log.info(
            "battle %s: vote %s committed%s",
            bid,
            winner,
            f" (excluded: {reason})" if reason else "",
        )
        if self.tagger is not None:
            self._features_later(bid, self.tagger)
        return Reveal(bid, live.model_a, live.model_b, winner)

    async def settle(self) -> None:
        """Wait until every feature job started so far has finished (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def _features_later(self, bid: str, tagger: Tagger) -> None:
        if len(self._pending) >= self.MAX_PENDING_FEATURES:
            log.warning("battle %s: style features left to backfill-style (backlog)", bid)
            return
        task = asyncio.create_task(self._record_features(bid, tagger))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _record_features(self, bid: str, tagger: Tagger) -> None:
        """Style counts and category tags for the voted battle (issue 14); a failure here
        never loses the vote: ``arena db backfill-style`` computes what is missing."""
        loop = asyncio.get_running_loop()
        if self._features_turn is None or self._features_turn[0] is not loop:
            self._features_turn = (loop, asyncio.Lock())  # a lock belongs to one loop
        async with self._features_turn[1]:
            try:
                await self.db.call(record_for_battle, battle_id=bid, tagger=tagger)
            except Exception as exc:  # the vote is committed whatever happens here
                log.warning("battle %s: style features not recorded: %s", bid, exc)

    def _commit_and_classify(self, live: LiveBattle, winner: Winner) -> Exclusion | None:
        """Commit the vote, then store why it must not count, if it must not (in a worker
        thread).  A failure after the commit keeps the vote: ``arena audit`` redoes the check.
        """
        bid = live.battle_id
        with store.new_session(self.engine) as session:
            store.record_vote(session=session, battle_id=bid, winner=winner, user_key=live.user_key)
        try:
            reason = self.exclusion_for(live)
        except SQLAlchemyError as exc:
            log.warning("battle %s: vote kept, exclusion check skipped: %s", bid, exc)
            return None
        if reason is not None:
            try:
                with store.new_session(self.engine) as session:
                    store.mark_exclusion(session=session, battle_id=bid, reason=reason)
            except SQLAlchemyError as exc:
                log.warning("battle %s: vote kept, exclusion %s not stored: %s", bid, reason, exc)
        return reason

    def _check_stored_votes(self, user_key: str, address_key: str | None = None) -> None:
        """The vote limits against the database: they hold across replicas and restarts."""
        checks: list[tuple[RateLimiter, dict[str, str]]] = [
            (self.vote_limit, {"user_key": user_key})
        ]
        if address_key:
            checks.append((self.address_vote_limit, {"address_key": address_key}))
        now = store.utcnow()
        for limit, who in checks:
            if not limit.limit:
                continue
            since = now - dt.timedelta(seconds=limit.window_s)
            n, first = store.recent_votes_by(engine=self.engine, since=since, **who)
            limit.check_stored(n, None if first is None else (now - first).total_seconds())

    def exclusion_for(self, live: LiveBattle) -> Exclusion | None:
        """Why this (just committed) vote should not count, if it should not."""
        bid = live.battle_id
        if live.leaked:
            log.info("battle %s: identity leak (%s)", bid, ", ".join(sorted(live.leaked)))
            return Exclusion.IDENTITY_LEAK
        if live.moderated:
            log.info("battle %s: moderation flagged it", bid)
            return Exclusion.MODERATED
        if live.repeat_revealed:
            log.info("battle %s: a regenerated side repeated itself", bid)
            return Exclusion.REGENERATE_REVEAL
        cap = self.duplicate_prompt_cap
        if cap > 0 and live.first_prompt:
            earlier = store.counted_votes_on_question(
                engine=self.engine,
                question_id=store.question_id_for(live.first_prompt),
                except_battle=bid,
            )
            if earlier >= cap:
                log.info("battle %s: prompt already has %d counted votes", bid, earlier)
                return Exclusion.DUPLICATE_PROMPT
        return None
