"""The battle flow, UI-agnostic: start, stream both sides, vote, reveal.

:class:`Arena` is a small facade.  It checks who may do what and holds the flow; the work is
done by three parts beside it, each with one job:

* :mod:`arena.live` -- the battles in progress, ownership checks and the live-battle caps;
* :mod:`arena.turns` -- streaming both sides of a turn, stop, regenerate;
* :mod:`arena.votes` -- the vote gate: validation, commit, exclusions, reveal.

Every rule of a battle lives in these modules; ``arena/ui`` only renders what they return.
The browser-facing values (:class:`TurnUpdate`, :class:`BattleRefused` messages) never contain
a model name, a roster index or a backend detail before the vote is committed: the pair is
held in server memory under an opaque battle id and in the database.

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
import logging
import random
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping

from sqlalchemy.engine import Engine

from arena import store
from arena.auth import AuthConfig, PersonCookies, auth_config
from arena.auth.people import person_key
from arena.backends import Backend, build_backend
from arena.config import Settings
from arena.consent import Terms
from arena.features import Tagger, tagger_from_settings
from arena.integrity import LeakDetector, RateLimited, RateLimiter
from arena.lifecycle import BattleMode, BattleRefused, BattleStatus, Refusal, refuse
from arena.live import LiveBattle, LiveBattles, Reveal, SideView, TurnUpdate
from arena.metrics import ArenaMetrics
from arena.moderation import Action, Decision, Moderator
from arena.pow import ProofOfWork
from arena.roster import Roster, RosterEntry, RosterError, load_roster
from arena.roster_sync import RosterSync, added_entries, plan
from arena.sampling import PairDraw, SamplingPolicy, make_policy
from arena.signing import Signer
from arena.store.live_roster import ModelState
from arena.store.offload import Offload
from arena.turns import TurnRunner
from arena.voter import VoterCookies
from arena.votes import VOTE_CHOICES, VoteGate, parse_winner
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

# Sessions whose acceptance of the terms is remembered (each ~100 bytes).
_MAX_CONSENT_SESSIONS = 200_000

#: The stored prompt count looks at battles created in the last this-many prompt windows
#: (ten minutes for a per-minute limit): an index range scan over recent battles only.  A
#: follow-up in an older battle is counted by the replica's in-memory limiter alone.
STORED_PROMPT_BATTLE_AGE = 10


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
    moderator
        Content moderation for prompts and answers (default: off).
    terms
        Terms of use that must be accepted before prompting or voting (default: none).
    pow
        Proof of work a browser must have done before its votes count (default: none).
    tagger
        Category tagger: with it, each voted battle's style features and tags are stored
        (default: not recorded at vote time; ``arena db backfill-style`` fills them in).
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
        moderator: Moderator | None = None,
        terms: Terms | None = None,
        tagger: Tagger | None = None,
        pow: ProofOfWork | None = None,
    ) -> None:
        missing = [n for n in roster.names if n not in backends]
        if missing:
            raise ValueError(f"no backend for roster entries: {', '.join(missing)}")
        self._settings = settings
        self.roster = roster
        self.engine = engine
        # The configured policy, and the one new battles draw from: the same until the admin
        # page disables, reweights or adds a model (arena/roster_sync.py).
        self._base_policy = policy
        self._policy: SamplingPolicy | None = policy
        self._roster_state: dict[str, ModelState] = {}
        self.disabled: frozenset[str] = frozenset()
        self.roster_sync = RosterSync(engine=engine, poll_s=settings.roster_poll_s)
        self._added: list[str] = []  # admin-added entries loaded here, in load order
        self._loading: dict[str, asyncio.Task[None]] = {}
        #: Admin-added entries this replica could not build or load: name -> why.
        self.roster_problems: dict[str, str] = {}
        self._secret = secret
        self.voters = VoterCookies(secret)
        # Sign-in (ARENA_AUTH_MODE); None: anonymous, voters are browsers.
        self.auth: AuthConfig | None = auth_config(settings)
        self.people = PersonCookies(secret)
        self._rng = rng or random.SystemRandom()
        self.metrics = ArenaMetrics()
        self.moderator = moderator or Moderator()
        self.terms = terms
        self.pow = pow
        # Browser session -> terms version it accepted (bounded: oldest sessions forgotten).
        self._consents: OrderedDict[str, str] = OrderedDict()
        self.reasons = tuple(r.strip() for r in settings.vote_reasons.split(",") if r.strip())
        self.db = Offload(engine, observe=self.metrics.db_seconds.observe)
        self.live = LiveBattles(
            max_per_voter=settings.max_live_battles,
            max_per_address=settings.max_live_battles_per_address,
        )
        self.prompt_limit = RateLimiter(settings.prompts_per_minute, 60.0, "prompts")
        # The address ceilings: all the voters (browsers) behind one address together.
        self.address_prompt_limit = RateLimiter(
            settings.prompts_per_minute_per_address, 60.0, "prompts from your network address"
        )
        self.turns = TurnRunner(
            backends=dict(backends),
            db=self.db,
            leaks=LeakDetector.from_roster(roster),
            metrics=self.metrics,
            moderator=self.moderator,
            record=self._record_decision,
        )
        self.votes = VoteGate(
            engine=engine,
            db=self.db,
            vote_limit=RateLimiter(settings.votes_per_day, 86400.0, "votes"),
            address_vote_limit=RateLimiter(
                settings.votes_per_day_per_address, 86400.0, "votes from your network address"
            ),
            duplicate_prompt_cap=settings.duplicate_prompt_cap,
            metrics=self.metrics,
            tagger=tagger,
        )

    @property
    def settings(self) -> Settings:
        """The arena's settings (assigning new ones reaches the vote gate too)."""
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        self._settings = settings
        self.votes.duplicate_prompt_cap = settings.duplicate_prompt_cap

    @property
    def policy(self) -> SamplingPolicy | None:
        """What new anonymous battles draw from (``None``: fewer than two models enabled)."""
        return self._policy

    @policy.setter
    def policy(self, policy: SamplingPolicy) -> None:
        self._base_policy = policy
        self._policy = policy
        self._replan()

    @property
    def backends(self) -> dict[str, Backend]:
        """One backend per roster name (the turn runner's)."""
        return self.turns.backends

    @backends.setter
    def backends(self, backends: Mapping[str, Backend]) -> None:
        self.turns.backends = dict(backends)

    @property
    def leaks(self) -> LeakDetector:
        """What counts as an answer naming a model (the turn runner's)."""
        return self.turns.leaks

    @leaks.setter
    def leaks(self, detector: LeakDetector) -> None:
        self.turns.leaks = detector

    @property
    def vote_limit(self) -> RateLimiter:
        """Votes per voter per day (the vote gate's; also checked against the database)."""
        return self.votes.vote_limit

    @vote_limit.setter
    def vote_limit(self, limiter: RateLimiter) -> None:
        self.votes.vote_limit = limiter

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
                store.upsert_model(
                    session=session,
                    name=entry.name,
                    backend=entry.backend,
                    config_hash=entry.config_hash,
                    params_b=entry.params_b,
                    license=entry.license,
                    open_weights=entry.open_weights,
                    organisation=entry.organisation,
                    release_date=entry.release_date,
                    url=entry.url,
                )
        backends = {e.name: build_backend(e, settings=settings) for e in roster}
        moderator = Moderator.from_settings(settings, backends)
        terms = Terms.load(settings.terms_file) if settings.terms_file else None
        secret = store.resolve_secret(settings)
        pow = (
            ProofOfWork(secret, difficulty=settings.pow_difficulty)
            if settings.pow_difficulty > 0
            else None
        )
        tagger = tagger_from_settings(settings)
        tagger.warm_up()  # its language models load in the background, not on the first vote
        # A roster entry serving as the guard model judges prompts; it is not drawn to answer.
        names = [n for n in roster.names if n != settings.moderation_guard_model]
        policy = make_policy(settings.sampling_policy, names, {e.name: e.weight for e in roster})
        return cls(
            settings=settings,
            roster=roster,
            engine=engine,
            backends=backends,
            policy=policy,
            secret=secret,
            moderator=moderator,
            terms=terms,
            pow=pow,
            tagger=tagger,
        )

    async def load(self, say: Callable[[str], None] = lambda s: None) -> None:
        """Load every backend's model (idempotent; models shared by entries load once), then
        apply the admin page's roster state, loading the entries added there."""
        for name, backend in self.backends.items():
            t0 = time.monotonic()
            say(f"loading {name} ...")
            await backend.load()
            say(f"loaded {name} in {time.monotonic() - t0:.1f}s")
        await self.sync_roster(force=True)
        if self._loading:
            say(f"loading {len(self._loading)} model(s) added on the admin page ...")
            await self.wait_for_added_models()
        if self.disabled:
            say(f"disabled on the admin page: {', '.join(sorted(self.disabled))}")

    async def aclose(self) -> None:
        """Stop every generation and release the backends."""
        for backend in self.backends.values():
            await backend.aclose()

    def user_key_for(self, identity: str) -> str:
        """Keyed hash of a raw identity (a client address); the only form ever stored."""
        return store.user_key(self._secret, identity)

    def person_key_for(self, issuer: str, subject: str) -> str:
        """Keyed id of a signed-in person (:mod:`arena.auth`); the person's ``judge``."""
        return person_key(self._secret, issuer, subject)

    def signer(self, purpose: str) -> Signer:
        """Signs cookies for one purpose with a key derived from the arena's secret."""
        return Signer(self._secret, purpose)

    def voter_key_for(self, voter_id: str) -> str:
        """Keyed hash of a browser's voter id (:mod:`arena.voter`); the voter's ``judge``."""
        return store.user_key(self._secret, f"voter:{voter_id}")

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

    def _check_continuable(self, live: LiveBattle) -> None:
        if live.busy:
            raise refuse(Refusal.BUSY)
        if live.status != BattleStatus.READY:
            raise refuse(Refusal.ENDED)
        if live.turn >= self.settings.max_turns:
            raise refuse(Refusal.TURN_LIMIT, limit=self.settings.max_turns)

    def _draw(self, mode: str, models: tuple[str, str] | None) -> PairDraw:
        if mode == BattleMode.ANONY:
            if models is not None:
                raise ValueError("anonymous battles draw their own pair")
            if self._policy is None:
                raise refuse(Refusal.NO_PAIR)
            return self._policy.draw(self._rng)
        if mode != BattleMode.NAMED:
            raise ValueError(f"unknown battle mode {mode!r}")
        if models is None or len(models) != 2:
            raise refuse(Refusal.PICK_MODELS)
        a, b = models
        for m in (a, b):
            if m not in self.roster:
                raise refuse(Refusal.UNKNOWN_MODEL, model=m)
            if m in self.disabled:
                raise refuse(Refusal.MODEL_DISABLED, model=m)
        if a == b:
            raise refuse(Refusal.SAME_MODEL)
        return PairDraw(a, b, 1.0, "user_choice", "1")

    def accept_terms(self, *, owner: str, version: str) -> None:
        """Record that browser session ``owner`` accepted the terms ``version``.

        Raises
        ------
        BattleRefused
            ``no_consent`` when ``version`` is not the current one (the page was older than
            the terms: it must show them again).
        """
        if self.terms is None:
            return
        if version != self.terms.version:
            raise refuse(Refusal.NO_CONSENT)
        self._consents[owner] = version
        self._consents.move_to_end(owner)
        while len(self._consents) > _MAX_CONSENT_SESSIONS:
            self._consents.popitem(last=False)

    def _check_consent(self, owner: str, consent: str | None) -> None:
        if self.terms is None:
            return
        if (consent if consent is not None else self._consents.get(owner)) != self.terms.version:
            raise refuse(Refusal.NO_CONSENT)

    async def _create(
        self, *, owner: str, user_key: str, address_key: str, mode: str, draw: PairDraw
    ) -> LiveBattle:
        battle = await self.db.call(
            store.create_battle,
            consent_version=self.terms.version if self.terms else None,
            mode=mode,
            model_a=draw.model_a,
            model_b=draw.model_b,
            user_key=user_key,
            pair_probability=draw.probability,
            policy_name=draw.policy_name,
            policy_version=draw.policy_version,
            address_key=address_key,
        )
        live = LiveBattle(
            battle.id, owner, user_key, mode, draw.model_a, draw.model_b, address_key=address_key
        )
        self.live.add(live)
        self.metrics.started(draw.model_a, draw.model_b)
        log.info("battle %s: started (%s, policy %s)", battle.id, mode, draw.policy_version)
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
        consent: str | None = None,
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
        consent
            The terms-of-use version this session accepted, when terms are set (default:
            what :meth:`accept_terms` recorded for ``owner``).

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
        with self._counting_refusals():
            self._check_consent(owner, consent)
            text = self._check_prompt(prompt)
            address = address_key or user_key
            if battle_id is None:
                live = None
                await self.sync_roster()
                draw = self._draw(mode, models)
            else:
                live = self.live.get(owner=owner, user_key=user_key, battle_id=battle_id)
                self._check_continuable(live)
                address = live.address_key or address
            with self.live.answering(user_key=user_key, address_key=address):
                try:
                    # The voter's limit and the address's ceiling (all its voters, with or
                    # without the cookie); a prompt refused by either counts for neither.
                    self.address_prompt_limit.hit(f"address:{address}", count=False)
                    self.prompt_limit.hit(f"user:{user_key}")
                    self.address_prompt_limit.hit(f"address:{address}")
                    if self.prompt_limit.limit or self.address_prompt_limit.limit:
                        await self.db.run(lambda: self._check_stored_prompts(user_key, address))
                except RateLimited as exc:
                    raise refuse(Refusal.RATE_LIMITED, detail=str(exc)) from None
                decision = await self._moderate_prompt(text, live, user_key)
                if live is None:
                    live = await self._create(
                        owner=owner, user_key=user_key, address_key=address, mode=mode, draw=draw
                    )
                notice = None
                if decision.flagged:  # logged or warned: stored with the battle it belongs to
                    await self._record_decision(
                        decision, live.battle_id, user_key, live.turn + 1, "user"
                    )
                    notice = self._prompt_notice(decision)
                if notice is not None:
                    live.moderated = True
                async for update in self.turns.run(live, text, replace_last=False, notice=notice):
                    yield update

    def _check_stored_prompts(self, user_key: str, address_key: str) -> None:
        """The prompt limits against the database: they hold across replicas and restarts."""
        checks: list[tuple[RateLimiter, dict[str, str]]] = [
            (self.prompt_limit, {"user_key": user_key}),
            (self.address_prompt_limit, {"address_key": address_key}),
        ]
        now = store.utcnow()
        for limit, who in checks:
            if not limit.limit:
                continue
            window = dt.timedelta(seconds=limit.window_s)
            n, first = store.recent_prompts_by(
                engine=self.engine,
                since=now - window,
                battles_since=now - STORED_PROMPT_BATTLE_AGE * window,
                **who,
            )
            limit.check_stored(n, None if first is None else (now - first).total_seconds())

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
        with self._counting_refusals():
            live = self.live.get(owner=owner, user_key=user_key, battle_id=battle_id)
            if live.turn == 0:
                raise refuse(Refusal.NOTHING_TO_REGENERATE)
            self._check_continuable(live)
            address = live.address_key or user_key
            with self.live.answering(user_key=user_key, address_key=address):
                async for update in self.turns.run(live, live.last_prompt, replace_last=True):
                    yield update

    async def stop(
        self,
        *,
        owner: str,
        user_key: str,
        battle_id: str,
        wait_s: float = 0.0,
        withdraw: bool = False,
    ) -> None:
        """Stop both generations of the current turn; the battle becomes ``abandoned``.

        Parameters
        ----------
        wait_s
            Also wait (up to this long) until the turn's stream has yielded its last update,
            so that whatever the caller shows next comes after it.
        withdraw
            The voter is leaving the battle (New round): the stream's remaining updates are
            marked :attr:`TurnUpdate.withdrawn`, so that none lands in the next round's panels
            however late it is delivered.

        Raises
        ------
        BattleRefused
            Unknown or foreign battle.
        """
        with self._counting_refusals():
            live = self.live.get(owner=owner, user_key=user_key, battle_id=battle_id)
            await self.turns.stop(live, wait_s=wait_s, withdraw=withdraw)

    async def _moderate_prompt(self, text: str, live: LiveBattle | None, user_key: str) -> Decision:
        """Check a prompt before any model sees it; a blocked one is stored (without a battle
        when it would have started one) and refused."""
        if not self.moderator.active:
            return Decision("prompt")
        decision = await self.moderator.check_prompt(text)
        if decision.action == Action.BLOCKED:
            turn = live.turn + 1 if live is not None else 1
            await self._record_decision(
                decision, live.battle_id if live else None, user_key, turn, "user"
            )
            raise refuse(Refusal.MODERATED, categories=", ".join(decision.categories))
        return decision

    @staticmethod
    def _prompt_notice(decision: Decision) -> str | None:
        """What the voter reads with a turn whose prompt was flagged (warn mode only)."""
        if decision.action != Action.WARNED:
            return None
        return (
            "This arena's content rules flagged your prompt "
            f"({', '.join(decision.categories)}), so this battle's vote will not be counted."
        )

    async def add_reasons(
        self, *, owner: str, user_key: str, battle_id: str, reasons: list[str]
    ) -> list[str]:
        """Store the reasons the voter picked for their (already committed) vote.

        Returns
        -------
        list of str
            Every reason now stored for the vote.

        Raises
        ------
        BattleRefused
            Unknown or foreign battle, not voted yet, or a reason not on the operator's list.
        """
        with self._counting_refusals():
            live = self.live.get(owner=owner, user_key=user_key, battle_id=battle_id)
            if live.status != BattleStatus.VOTED:
                raise refuse(Refusal.NOT_READY)
            for r in reasons:
                if r not in self.reasons:
                    raise refuse(Refusal.BAD_REASON, label=r, choices=", ".join(self.reasons))
            stored: list[str] = await self.db.call(
                store.add_vote_reasons, battle_id=battle_id, user_key=user_key, reasons=reasons
            )
            return stored

    async def _record_decision(
        self, decision: Decision, battle_id: str | None, user_key: str, turn: int, side: str
    ) -> None:
        """Count and store a moderation decision that found something."""
        self.metrics.moderated(
            decision.where, sorted({f.checker for f in decision.findings}), decision.action
        )
        try:
            await self.db.call(
                store.record_moderation,
                battle_id=battle_id,
                user_key=user_key,
                turn=turn,
                side=side,
                action=str(decision.action),
                checkers=[f"{name}@{version}" for name, version in decision.checkers],
                categories=list(decision.categories),
            )
        except BattleRefused:  # the database is down: the decision still stands
            log.warning("battle %s: moderation decision not stored", battle_id or "(none)")
        log.info(
            "battle %s: moderation %s on %s: %s",
            battle_id or "(none yet)",
            decision.action,
            decision.where,
            ", ".join(decision.categories),
        )

    @contextlib.contextmanager
    def _counting_refusals(self) -> Iterator[None]:
        try:
            yield
        except BattleRefused as exc:
            self.metrics.refused(exc.reason)
            raise

    # ----------------------------------------------------------------------------------------
    # voting

    async def vote(
        self,
        *,
        owner: str,
        user_key: str,
        battle_id: str,
        winner: str,
        consent: str | None = None,
        pow_pass: str | None = None,
    ) -> Reveal:
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
        with self._counting_refusals():
            self._check_consent(owner, consent)
            if self.pow is not None and not self.pow.valid_pass(pow_pass):
                raise refuse(Refusal.NO_PROOF_OF_WORK)
            value = parse_winner(winner)
            live = self.live.get(owner=owner, user_key=user_key, battle_id=battle_id)
            return await self.votes.vote(live, value)

    def refresh_policy(self, lb: Leaderboard) -> None:
        """Feed a fresh leaderboard to an ``active`` sampling policy (no-op otherwise)."""
        policy = self._policy
        if policy is None:
            return
        names = lb.models
        counts = {
            (names[i], names[j]): int(lb.battle_counts[i, j])
            for i in range(len(names))
            for j in range(i + 1, len(names))
        }
        policy.update(
            counts=counts,
            ratings={r.model: r.rating for r in lb.rows},
            ci_width={r.model: r.upper - r.lower for r in lb.rows},
        )

    # ----------------------------------------------------------------------------------------
    # the live roster (admin page changes, from the database)

    async def sync_roster(self, *, force: bool = False) -> None:
        """Apply roster changes made on the admin page (by any replica), if any.

        Checks at most every ``roster_poll_s`` seconds unless ``force``; a database that is
        down leaves the current roster in place (the battle itself will say so).
        """
        if not force and not self.roster_sync.due():
            return
        try:
            state = await self.db.run(lambda: self.roster_sync.poll(force=force))
        except Exception as exc:  # the database is down or busy: keep serving as before
            log.warning("roster sync skipped: %s", exc)
            return
        if state is not None:
            self.apply_roster_state(state)

    def apply_roster_state(self, state: Mapping[str, ModelState]) -> None:
        """Take the admin page's roster state: start loading added entries, then re-plan."""
        self._roster_state = dict(state)
        try:
            entries = added_entries(self.roster, state)
        except RosterError as exc:
            log.error("an entry added on the admin page cannot be used here: %s", exc)
            self.roster_problems[exc.name or "?"] = str(exc)
            entries = []
        for entry in entries:
            if entry.name not in self._loading:
                self._start_loading(entry)
        self._replan()

    def _start_loading(self, entry: RosterEntry) -> None:
        try:
            backend = build_backend(entry, settings=self.settings)
        except Exception as exc:
            self.roster_problems[entry.name] = f"cannot build the backend: {exc}"
            log.error("added model %s: cannot build the backend: %s", entry.name, exc)
            return

        async def load() -> None:
            try:
                await backend.load()
            except Exception as exc:
                self.roster_problems[entry.name] = f"cannot load: {exc}"
                log.error("added model %s: cannot load: %s", entry.name, exc)
                return
            self.roster = Roster(path=self.roster.path, entries=(*self.roster.entries, entry))
            self.backends = {**self.backends, entry.name: backend}
            self.leaks = LeakDetector.from_roster(self.roster)
            self._added.append(entry.name)
            self._replan()
            log.info("added model %s: loaded, now drawn for battles", entry.name)

        self._loading[entry.name] = asyncio.get_running_loop().create_task(load())

    async def wait_for_added_models(self) -> None:
        """Wait until every added entry being loaded is loaded (or failed); for tests."""
        await asyncio.gather(*self._loading.values())

    def _replan(self) -> None:
        base = self._base_policy
        if not self._roster_state and not self._added:
            self.disabled = frozenset()
            self._policy = base
            return
        weights = {e.name: e.weight for e in self.roster}
        live = plan(base=base.models, added=self._added, weights=weights, state=self._roster_state)
        self.disabled = live.disabled
        if not live.changed:
            self._policy = base
        elif len(live.candidates) < 2:
            self._policy = None
        else:
            self._policy = make_policy(base.name, live.candidates, live.weights)

    def live_battles(self) -> int:
        """Number of battles held in memory (for health checks)."""
        return len(self.live)
