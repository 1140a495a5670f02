"""Defences against rigging: rate limits, identity leaks, anomalous voters, duplicate prompts.

Nothing here deletes data.  A defence either refuses a request up front (rate limits, with a
message saying when to come back) or gives a stored vote a typed exclusion reason, which
exports keep and ``arena audit`` counts.

Exclusion reasons (the ``vote.exclusion`` column) are named, with what each means, in
:class:`arena.lifecycle.Exclusion`.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from arena.lifecycle import Exclusion
from arena.roster import Roster
from ratings import Battles, Leaderboard, RatingOptions, compute_leaderboard
from ratings.data import WINNER_VALUES as WINNER_ORDER

__all__ = [
    "EXCLUSION_REASONS",
    "LeakDetector",
    "RateLimited",
    "RateLimiter",
    "VoterScore",
    "client_address",
    "fitted_z_scores",
    "flagged_voter_mask",
    "score_voters",
    "voter_z_scores",
]

EXCLUSION_REASONS = tuple(str(r) for r in Exclusion)  # named in arena/lifecycle.py


# ------------------------------------------------------------------------------------------
# who is asking


def client_address(peer: str | None, forwarded_for: str | None, trusted: frozenset[str]) -> str:
    """The client's address: the TCP peer, or ``X-Forwarded-For`` when the peer is trusted.

    Parameters
    ----------
    peer
        Address of the immediate TCP peer.
    forwarded_for
        The ``X-Forwarded-For`` header, if any.
    trusted
        Addresses of reverse proxies whose header is believed.

    Returns
    -------
    str
        The right-most forwarded address that is not itself a trusted proxy when the peer
        is trusted; otherwise the peer.  Anyone else could forge the header to dodge rate
        limits or to vote under another identity.
    """
    addr = peer or "unknown"
    if addr in trusted and forwarded_for:
        for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
            if hop not in trusted:
                return hop
    return addr


# ------------------------------------------------------------------------------------------
# rate limits


class RateLimited(Exception):
    """A request over a rate limit; ``str(exc)`` is safe to show (says when to retry).

    Attributes
    ----------
    retry_after_s
        Seconds until the next request would be allowed.
    """

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimiter:
    """Sliding-window limits per key: at most ``limit`` events in any ``window_s`` seconds.

    Thread-safe and in memory (one app process): a restart or another replica starts with an
    empty window.  The votes-per-day limit is also checked against the votes in the database
    (:meth:`check_stored`), which every replica shares and a restart keeps.

    Parameters
    ----------
    limit
        Events allowed per window; ``0`` disables the limit.
    window_s
        Window length in seconds.
    what
        Words for the message (``prompts``, ``votes``).
    clock
        Time source (tests pass a fake one).
    """

    def __init__(
        self, limit: int, window_s: float, what: str, clock: object = time.monotonic
    ) -> None:
        if limit < 0 or window_s <= 0:
            raise ValueError("rate limit needs limit >= 0 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self.what = what
        self._clock = clock
        self._events: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def refusal(self, wait_s: float) -> RateLimited:
        """The error for a key over the limit, ``wait_s`` seconds before it is allowed again."""
        return RateLimited(
            f"Too many {self.what}: at most {self.limit} per "
            f"{_PERIODS.get(self.window_s, _human(self.window_s))}. "
            f"Try again in {_human(max(wait_s, 1.0))}.",
            wait_s,
        )

    def check_stored(self, count: int, oldest_age_s: float | None) -> None:
        """Apply the limit to events recorded elsewhere (e.g. votes in the database).

        Parameters
        ----------
        count
            Events of the key within the last ``window_s`` seconds.
        oldest_age_s
            Age of the oldest of them.

        Raises
        ------
        RateLimited
            When ``count`` already reaches the limit.
        """
        if self.limit and count >= self.limit:
            raise self.refusal(self.window_s - (oldest_age_s or 0.0))

    def hit(self, *keys: str, count: bool = True) -> None:
        """Count one event for every key, or raise without counting when any is over.

        Parameters
        ----------
        keys
            The keys the event counts for.
        count
            ``False``: only check (raise if over), count nothing -- for a limit that must
            hold before another limiter counts the same event.

        Raises
        ------
        RateLimited
            When one of the keys already had ``limit`` events in the window.
        """
        if self.limit == 0:
            return
        now = float(self._clock())  # type: ignore[operator]
        with self._lock:
            for key in keys:
                q = self._events[key]
                while q and q[0] <= now - self.window_s:
                    q.popleft()
                if len(q) >= self.limit:
                    raise self.refusal(q[0] + self.window_s - now)
            if count:
                for key in keys:
                    self._events[key].append(now)


_PERIODS = {60.0: "minute", 3600.0: "hour", 86400.0: "day"}


def _human(seconds: float) -> str:
    if seconds >= 3600:
        h = seconds / 3600
        return f"{h:.0f} hour" + ("s" if round(h) != 1 else "")
    if seconds >= 60:
        m = seconds / 60
        return f"{m:.0f} minute" + ("s" if round(m) != 1 else "")
    return f"{seconds:.0f} second" + ("s" if round(seconds) != 1 else "")


# ------------------------------------------------------------------------------------------
# identity leaks


@dataclass(frozen=True)
class LeakDetector:
    """Finds answers that name a roster model or an organisation.

    Names are matched case-insensitively as whole words, also with ``-``/``_``/``.``/spaces
    treated alike (``smollm2 135m`` matches ``smollm2-135m``).  Each name also contributes
    its family stems (the part before the first separator, ``smollm2``, and its leading
    letters, ``smollm``) when at least four characters long and not an ordinary word.

    Parameters
    ----------
    terms
        Lower-case terms to look for.
    """

    terms: tuple[str, ...]

    @classmethod
    def from_roster(cls, roster: Roster, extra: Iterable[str] = ()) -> LeakDetector:
        """Terms from every entry's name, its family stem, and its organisation."""
        terms: set[str] = set()
        for e in roster:
            terms.add(e.name.lower())
            first = re.split(r"[-_./ :]", e.name.lower())[0]
            alpha = re.match(r"[a-z]*", first)
            for stem in (first, alpha.group(0) if alpha else ""):
                if len(stem) >= 4 and stem not in _COMMON_WORDS:
                    terms.add(stem)
            if e.organisation:
                terms.add(e.organisation.lower())
        terms.update(t.lower() for t in extra if t)
        return cls(tuple(sorted(terms)))

    def find(self, text: str) -> list[str]:
        """The terms that ``text`` mentions (empty when none)."""
        norm = _normalise(text)
        return [
            t for t in self.terms if re.search(rf"(?<![a-z0-9]){_pattern(t)}(?![a-z0-9])", norm)
        ]


_COMMON_WORDS = frozenset({"model", "chat", "base", "large", "small", "tiny", "mini", "open"})


def _normalise(text: str) -> str:
    return re.sub(r"[-_.\s]+", " ", text.lower())


def _pattern(term: str) -> str:
    return re.escape(_normalise(term)).replace(r"\ ", r"[\s]*")


# ------------------------------------------------------------------------------------------
# anomalous voters


@dataclass(frozen=True)
class VoterScore:
    """How one voter's decisive votes compare with the fitted model.

    Attributes
    ----------
    judge
        The voter's key.
    n
        Decisive votes (ties carry no direction and are not scored).
    agreement
        Votes for the side the fit favours.
    expected
        Expected agreements if the voter voted like the fit predicts.
    z
        ``(agreement - expected) / sd``; large negative values mean the voter keeps picking
        the side the population considers worse.
    flagged
        ``z <= z_threshold`` and ``n >= min_votes``.
    """

    judge: str
    n: int
    agreement: float
    expected: float
    z: float
    flagged: bool


def voter_z_scores(
    *,
    judge: npt.NDArray[np.int64],
    a: npt.NDArray[np.int64],
    b: npt.NDArray[np.int64],
    outcome: npt.NDArray[np.integer[Any]],
    rating: npt.NDArray[np.float64],
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]
]:
    """Per voter code: decisive votes, agreements, expected agreements, z (vectorised).

    For each decisive vote the fit gives ``q``, the probability that an honest voter picks
    the side the fit favours (``q = max(p, 1 - p)`` with ``p`` = P(A beats B) from the
    Elo-scale ``rating``).  An honest voter's agreements ``A`` are a sum of independent
    Bernoulli(q) draws, so ``z = (A - sum q) / sqrt(sum q (1 - q))`` is approximately
    standard normal.  Ties carry no direction and are not scored.
    """
    decisive = (outcome == 0) | (outcome == 1)
    j, ai, bi, oc = judge[decisive], a[decisive], b[decisive], outcome[decisive]
    pa = 1.0 / (1.0 + 10.0 ** ((rating[bi] - rating[ai]) / 400.0))
    fav_a = pa >= 0.5
    q = np.where(fav_a, pa, 1.0 - pa)
    agree = ((oc == 0) == fav_a).astype(np.float64)
    k = int(judge.max()) + 1 if judge.size else 0
    n = np.bincount(j, minlength=k)
    agreements = np.bincount(j, weights=agree, minlength=k)
    expected = np.bincount(j, weights=q, minlength=k)
    var = np.bincount(j, weights=q * (1.0 - q), minlength=k)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > 0, (agreements - expected) / np.sqrt(var), 0.0)
    f64 = np.float64
    return n.astype(np.int64), agreements.astype(f64), expected.astype(f64), z.astype(f64)


def score_voters(
    *,
    judges: Sequence[str],
    model_a: Sequence[str],
    model_b: Sequence[str],
    winners: Sequence[str],
    ratings: Mapping[str, float],
    min_votes: int = 20,
    z_threshold: float = -4.0,
) -> list[VoterScore]:
    """Score every voter's decisive votes against the fitted win probabilities.

    See :func:`voter_z_scores` for the test.  With the default threshold of -4 an honest
    voter is flagged about 3 times in 100,000; an attacker who always votes for a weaker
    target is flagged after a few dozen votes.

    Parameters
    ----------
    judges, model_a, model_b, winners
        One entry per vote (``winner`` in the ``clean_battle`` vocabulary).  Votes between
        models without a rating are skipped.
    ratings
        Elo-scale ratings of the current fit (400 points = 10x odds).
    min_votes
        Voters with fewer decisive votes are scored but never flagged.
    z_threshold
        Flag at or below this z.

    Returns
    -------
    list of VoterScore
        Sorted by ``z`` (most anomalous first).
    """
    names = list(ratings)
    index = {m: i for i, m in enumerate(names)}
    codes = {w: c for c, w in enumerate(WINNER_ORDER)}
    keep = [
        i
        for i, (x, y) in enumerate(zip(model_a, model_b, strict=True))
        if x in index and y in index
    ]
    judge_names: dict[str, int] = {}
    judge = np.array([judge_names.setdefault(judges[i], len(judge_names)) for i in keep])
    n, agree, exp, z = voter_z_scores(
        judge=judge.astype(np.int64),
        a=np.array([index[model_a[i]] for i in keep], dtype=np.int64),
        b=np.array([index[model_b[i]] for i in keep], dtype=np.int64),
        outcome=np.array([codes[winners[i]] for i in keep], dtype=np.int8),
        rating=np.array([ratings[m] for m in names], dtype=np.float64),
    )
    out = [
        VoterScore(
            name,
            int(n[c]),
            float(agree[c]),
            float(exp[c]),
            float(z[c]),
            bool(n[c] >= min_votes and z[c] <= z_threshold),
        )
        for name, c in judge_names.items()
        if n[c] > 0
    ]
    out.sort(key=lambda s: s.z)
    return out


def fitted_z_scores(
    battles: Battles, judge: npt.NDArray[np.int64], lb: Leaderboard | None = None
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]
]:
    """:func:`voter_z_scores` against a Bradley-Terry fit on the same battles.

    Parameters
    ----------
    battles
        The votes.
    judge
        Voter code per battle.
    lb
        That fit when the caller already has it (``ci="none"`` is enough); else computed.
    """
    if lb is None:
        lb = compute_leaderboard(battles, RatingOptions(ci="none"))
    by_name = {r.model: r.rating for r in lb.rows}
    rating = np.array([by_name.get(m, 1000.0) for m in battles.models])
    return voter_z_scores(
        judge=judge, a=battles.a, b=battles.b, outcome=battles.outcome, rating=rating
    )


def flagged_voter_mask(
    battles: Battles, *, min_votes: int = 20, z_threshold: float = -4.0
) -> tuple[npt.NDArray[np.bool_], int]:
    """Which battles to keep when flagged voters' votes are excluded.

    Every voter test of :func:`arena.rigging.detect_rigging` runs: per (voter, model) cells
    against a robust leave-voter-out fit, the per-model group test, the address-hash group
    test when the battles carry an ``address_hash`` column, the first-seen time groups when
    they carry timestamps, and the older agreement z-test (``min_votes``, ``z_threshold``).

    Parameters
    ----------
    battles
        Battles with a ``judge`` cluster column.
    min_votes, z_threshold
        Settings of the agreement test (see :func:`score_voters`).

    Returns
    -------
    keep : ndarray of bool
        One per battle.
    n_flagged : int
        Voters flagged.

    Raises
    ------
    ValueError
        When the battles carry no ``judge`` column.
    """
    from arena.rigging import RiggingSettings, detect_rigging

    if "judge" not in battles.clusters:
        raise ValueError("--exclude-flagged needs a judge (voter) column in the battles")
    judge = battles.clusters["judge"]
    report = detect_rigging(
        battles,
        judge,
        address=battles.clusters.get("address_hash"),
        settings=RiggingSettings(min_votes=min_votes, z_threshold=z_threshold),
    )
    codes = np.array(sorted(int(j.removeprefix("voter")) for j in report.flagged()), dtype=int)
    flagged = np.zeros(int(judge.max()) + 1, dtype=bool)
    flagged[codes] = True
    return ~flagged[judge], int(flagged.sum())
