"""The vote gate: check a vote, commit it, decide whether it counts, then reveal the names.

The names leave the server only in the :class:`~arena.live.Reveal` returned here, after the
vote is durably committed.  A committed vote is never undone: when it should not count (an
answer named a model, a Regenerate revealed a deterministic side, the prompt was voted on too
often) it gets a typed exclusion reason instead.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

from sqlalchemy.engine import Engine

from arena import store
from arena.features import Tagger, record_for_battle
from arena.integrity import RateLimited, RateLimiter
from arena.lifecycle import BattleRefused, BattleStatus, Exclusion, Refusal, Winner, refuse
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
        stored right after the vote (``None``: not recorded; ``arena db backfill-style``
        fills them in later).
    """

    def __init__(
        self,
        *,
        engine: Engine,
        db: Offload,
        vote_limit: RateLimiter,
        duplicate_prompt_cap: int,
        metrics: ArenaMetrics | None = None,
        tagger: Tagger | None = None,
    ) -> None:
        self.metrics = metrics or ArenaMetrics()
        self.tagger = tagger
        self.engine = engine
        self.db = db
        self.vote_limit = vote_limit
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
            self.vote_limit.hit(f"user:{live.user_key}")
            await self.db.run(lambda: self._check_stored_votes(live.user_key))
        except RateLimited as exc:
            raise refuse(Refusal.RATE_LIMITED, detail=str(exc)) from None
        try:
            await self.db.call(
                store.record_vote, battle_id=bid, winner=winner, user_key=live.user_key
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
        self.metrics.voted(live.model_a, live.model_b)
        log.info("battle %s: vote %s committed", bid, winner)
        try:
            reason = await self.db.run(lambda: self.exclusion_for(live))
        except BattleRefused:
            # The vote is committed; its exclusion check can be redone by `arena audit`.
            log.warning("battle %s: vote kept, exclusion check skipped", bid)
            reason = None
        if reason is not None:
            try:
                await self.db.call(store.mark_exclusion, battle_id=bid, reason=reason)
            except BattleRefused:
                log.warning("battle %s: vote kept, exclusion %s not stored", bid, reason)
        if self.tagger is not None:
            await self._record_features(bid, self.tagger)
        return Reveal(bid, live.model_a, live.model_b, winner)

    async def _record_features(self, bid: str, tagger: Tagger) -> None:
        """Style counts and category tags for the voted battle (issue 14); a failure here
        never loses the vote: ``arena db backfill-style`` computes what is missing."""
        try:
            await self.db.call(record_for_battle, battle_id=bid, tagger=tagger)
        except Exception as exc:  # the vote is committed whatever happens here
            log.warning("battle %s: style features not recorded: %s", bid, exc)

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
