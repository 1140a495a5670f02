"""The live leaderboard: pair-outcome counts folded in from the vote table, a warm-started fit.

A full recomputation reads every vote (about 1.5 s at a million votes on PostgreSQL) and so
can only run every so often.  Here the counted votes are kept as cells
``(model_a, model_b, outcome) -> n``; each fold reads only the votes committed since the last
one and the fit starts from the previous ratings, so a vote shows on the board within about a
second at any table size, in every replica (each folds the shared database).

Votes are read by id.  Ids are handed out at insert, so a transaction can commit an id lower
than one already folded; and a vote's exclusion may be written just after it.  So the votes
of the last :data:`SETTLE_S` seconds stay *unsettled* in a window kept in memory, and only
then move into the settled cells.  Each fold reads the votes above the highest id read, the
ids that were missing below it (transactions still open then), and a checksum of the window
(its vote count and the sum of its counted ids): a difference from the copy in memory (a late
commit elsewhere, an exclusion written afterwards) makes it read the whole window again.
Corrections to older votes (an exclusion, ``arena audit --apply``, an import) are caught by a
full recount in SQL every :data:`RECOUNT_S` seconds, in the background (about a second at a
million votes, during which the folds go on), or at once after :meth:`LiveBoard.invalidate`.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy.engine import Engine
from threadpoolctl import ThreadpoolController

from arena import store
from ratings import Leaderboard, RatingOptions
from ratings.data import A_WINS, B_WINS, Counts
from ratings.leaderboard import leaderboard_from_counts

__all__ = ["MAX_GAPS", "RECOUNT_S", "SETTLE_S", "LiveBoard", "LiveResult"]

log = logging.getLogger(__name__)

#: Votes younger than this are re-read on every fold (late commits, fresh exclusions).
SETTLE_S = 10.0
#: Seconds between two full recounts (corrections to settled votes reach the board).
RECOUNT_S = 60.0
#: Missing ids below the highest read that are asked for again on each fold; past this many
#: (a jump in the id sequence), the window checksum alone catches their late commits.
MAX_GAPS = 1000

# One unsettled vote: (model_a_id, model_b_id, outcome, voted_at epoch, counted).
_Vote = tuple[int, int, int, float, bool]


@dataclass(frozen=True)
class LiveResult:
    """One live fit.

    Attributes
    ----------
    leaderboard
        The ratings; ``None`` before two models have counted votes.
    n_votes
        Counted votes in it.
    last_vote_id
        Highest vote id folded in.
    """

    leaderboard: Leaderboard | None
    n_votes: int
    last_vote_id: int


class LiveBoard:
    """Counted-vote cells of one database, kept up to date by folding.

    Thread-safe: :meth:`update` may be called from any thread (one runs at a time).

    Parameters
    ----------
    engine
        The arena's database.
    options
        Rating options (BT, sandwich/fisher/none interval; see
        :func:`ratings.leaderboard.leaderboard_from_counts`).
    clock
        Wall-clock time in seconds (tests pass a fake one).
    """

    def __init__(
        self,
        engine: Engine,
        options: RatingOptions | None = None,
        clock: object = time.time,
    ) -> None:
        self.engine = engine
        self.options = options or RatingOptions()
        self._clock = clock
        self._lock = threading.Lock()
        # Dense cells: [model_a_id, model_b_id, outcome] -> votes (model ids are small).
        self._settled = np.zeros((0, 0, 4), dtype=np.int64)
        self._settled_id = 0  # every counted vote with id <= this is in _settled
        self._last_id = 0
        self._recounted_at = -float("inf")
        self._forced = True  # the next recount runs inline (first update, invalidate())
        # A periodic recount runs in the background; the cells settled meanwhile (ids above
        # the recount's bound) are kept aside and added to its result.
        self._recounting: threading.Thread | None = None
        self._since_recount = np.zeros((0, 0, 4), dtype=np.int64)
        self._generation = 0
        self._theta: dict[str, float] = {}
        self._names: dict[int, str] = {}
        # The unsettled window (ids above _settled_id), its counted cells, its checksum
        # (vote count, sum of counted ids), and the ids missing in it.
        self._window: dict[int, _Vote] = {}
        self._window_cells = np.zeros((0, 0, 4), dtype=np.int64)
        self._window_sum = (0, 0)
        self._gaps: set[int] = set()
        self.window_rereads = 0  # folds that had to read the whole window again
        # The cells of the last fit and its result: an update that changed no cell (no new
        # vote, no correction) returns that result instead of fitting again.
        self._fitted: tuple[npt.NDArray[np.int64], LiveResult] | None = None

    def invalidate(self) -> None:
        """Recount everything on the next :meth:`update` (after imports, audits, ...)."""
        with self._lock:
            self._recounted_at = -float("inf")
            self._forced = True

    def wait_recount(self) -> None:
        """Wait for a background recount in progress (tests, benchmarks)."""
        running = self._recounting
        if running is not None:
            running.join()

    def update(self) -> LiveResult:
        """Fold the new votes in and fit; returns the current leaderboard.

        Returns
        -------
        LiveResult
        """
        with self._lock:
            now = float(self._clock())  # type: ignore[operator]
            if self._forced:
                self._generation += 1  # a background recount still running is discarded
                self._settled = self._recount(now)
                self._recounted_at, self._forced = now, False
            elif now - self._recounted_at >= RECOUNT_S and self._recounting is None:
                self._recounted_at = now
                self._since_recount = np.zeros((0, 0, 4), dtype=np.int64)
                bound = self._settled_id
                self._recounting = threading.Thread(
                    target=self._recount_in_background,
                    args=(now, bound, self._generation),
                    name="arena-live-recount",
                    daemon=True,
                )
                self._recounting.start()
            tail = self._fold(now)
            cells = _add(self._settled, tail)
            if self._fitted is not None and np.array_equal(cells, self._fitted[0]):
                last = self._fitted[1]
                return LiveResult(last.leaderboard, last.n_votes, self._last_id)
            result = self._fit(cells, self._model_names(cells))
            self._fitted = (cells, result)
            return result

    def _recount_in_background(self, now: float, bound: int, generation: int) -> None:
        try:
            counted = self._recount(now, bound)
        except Exception:  # the folds go on; the next recount tries again
            log.exception("live leaderboard: recount failed")
            with self._lock:
                self._recounting = None
            return
        with self._lock:
            if generation == self._generation:  # no inline recount replaced it meanwhile
                self._settled = _add(counted, self._since_recount)
            self._recounting = None

    def _recount(self, now: float, bound: int | None = None) -> npt.NDArray[np.int64]:
        """A full count in SQL of the settled votes (catches every correction)."""
        if self._settled_id == 0:
            # The first count: settle everything old in SQL rather than folding a million
            # rows through Python.
            cutoff = dt.datetime.fromtimestamp(now - SETTLE_S, dt.UTC)
            self._settled_id = store.vote_id_before(engine=self.engine, before=cutoff)
            self._last_id = max(self._last_id, self._settled_id)
        up_to = self._settled_id if bound is None else bound
        return _dense(store.live_vote_cells(engine=self.engine, up_to_id=up_to))

    def _fold(self, now: float) -> npt.NDArray[np.int64]:
        """Read new and late votes; settle the old ones; return the window's cells."""
        gaps = sorted(self._gaps)[:MAX_GAPS]
        rows, checksum = store.live_votes_new(
            engine=self.engine, after_id=self._last_id, gaps=gaps, window_from=self._settled_id
        )
        self._gaps.difference_update(int(r[0]) for r in rows)
        fresh = [r for r in rows if int(r[0]) > self._settled_id and int(r[0]) not in self._window]
        self._admit(fresh)
        self._note_gaps(self._last_id, max([self._last_id, *(int(r[0]) for r in rows)]))
        if checksum != self._window_sum:
            self._reread_window()
        self._settle(now - SETTLE_S)
        return self._window_cells

    def _admit(self, rows: list[tuple[object, ...]]) -> None:
        """Add votes read from the database to the window."""
        cells: list[tuple[int, int, int, int]] = []
        n, id_sum = self._window_sum
        for row in rows:
            vid, a, b, outcome = (int(x) for x in row[:4])  # type: ignore[call-overload]
            counted = bool(row[5])
            self._window[vid] = (a, b, outcome, _epoch(row[4]), counted)
            n, id_sum = n + 1, id_sum + (vid if counted else 0)
            if counted:
                cells.append((a, b, outcome, 1))
        self._window_sum = (n, id_sum)
        if cells:
            self._window_cells = _add(self._window_cells, _dense(cells))

    def _note_gaps(self, below: int, top: int) -> None:
        """Remember the ids in ``(below, top)`` that were not read (not committed yet), and
        make ``top`` the highest id read."""
        missing = top - below - 1 - sum(1 for v in self._window if below < v < top)
        if 0 < missing <= MAX_GAPS:
            self._gaps.update(i for i in range(below + 1, top) if i not in self._window)
        self._last_id = max(self._last_id, top)

    def _reread_window(self) -> None:
        """Read the whole window again (a late commit outside the gaps, a new exclusion)."""
        self.window_rereads += 1
        rows = store.live_votes_after(engine=self.engine, after_id=self._settled_id)
        self._window, self._window_sum, self._gaps = {}, (0, 0), set()
        self._window_cells = np.zeros((0, 0, 4), dtype=np.int64)
        self._admit(rows)
        self._note_gaps(self._settled_id, max([self._last_id, *self._window]))

    def _settle(self, before: float) -> None:
        """Move the oldest votes, up to the first younger than ``before``, into the settled
        cells.  Only a prefix: a late commit below a young id is still read next time."""
        settled: list[tuple[int, int, int, int]] = []
        for vid in sorted(self._window):
            a, b, outcome, voted_at, counted = self._window[vid]
            if voted_at >= before:
                break
            del self._window[vid]
            n, id_sum = self._window_sum
            self._window_sum = (n - 1, id_sum - (vid if counted else 0))
            self._settled_id = vid
            if counted:
                settled.append((a, b, outcome, 1))
        if self._gaps:
            self._gaps = {g for g in self._gaps if g > self._settled_id}
        if settled:
            cells = _dense(settled)
            self._window_cells = _subtract(self._window_cells, cells)
            self._settled = _add(self._settled, cells)
            if self._recounting is not None:
                self._since_recount = _add(self._since_recount, cells)

    def _model_names(self, cells: npt.NDArray[np.int64]) -> dict[int, str]:
        """Model names by id; read again only when a cell names an unknown id."""
        used = np.flatnonzero(cells.sum(axis=(1, 2)) + cells.sum(axis=(0, 2)))
        if any(int(m) not in self._names for m in used):
            self._names = store.model_names_by_id(engine=self.engine)
        return self._names

    def _fit(self, cells: npt.NDArray[np.int64], names: dict[int, str]) -> LiveResult:
        n_votes = int(cells.sum())
        # Canonical cells i < j: a cell (a, b) with a > b is (b, a) with the winner swapped.
        swapped = cells[:, :, [B_WINS, A_WINS, 2, 3]].transpose(1, 0, 2)
        both = cells + swapped
        played = both.sum(axis=2)
        used_ids = np.flatnonzero(played.sum(axis=1) > 0)
        if used_ids.size < 2:
            return LiveResult(None, n_votes, self._last_id)
        used = sorted(used_ids.tolist(), key=lambda m: names.get(m, ""))
        order = np.array(used, dtype=np.int64)
        sub = both[np.ix_(order, order)]  # in name order
        i, j, o = np.nonzero(
            np.triu(np.ones(sub.shape[:2], dtype=bool), k=1)[:, :, None] & (sub > 0)
        )
        n = sub[i, j, o].astype(np.int64)
        counts = Counts(
            models=tuple(names.get(m, f"model {m}") for m in used),
            i=i.astype(np.int64),
            j=j.astype(np.int64),
            outcome=o.astype(np.int8),
            n=n,
            weight=n.astype(np.float64),
            weight_sq=n.astype(np.float64),
        )
        theta0 = np.array([self._theta.get(m, 0.0) for m in counts.models])
        # The matrices are small (models x models): one BLAS thread is as fast when the
        # machine is idle, and under load it does not spin-wait for a busy core (the fit's
        # eigh/solve/inv took 10 times longer with two OpenBLAS threads while votes came in).
        with _blas().limit(limits=1, user_api="blas"):
            lb, theta = leaderboard_from_counts(counts, self.options, theta0=theta0)
        self._theta = dict(zip(counts.models, map(float, theta), strict=True))
        return LiveResult(lb, n_votes, self._last_id)


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _dense(rows: list[tuple[int, int, int, int]]) -> npt.NDArray[np.int64]:
    """``(model_a_id, model_b_id, outcome, n)`` rows as a dense cell array."""
    if not rows:
        return np.zeros((0, 0, 4), dtype=np.int64)
    arr = np.array(rows, dtype=np.int64)
    k = int(arr[:, :2].max()) + 1
    out = np.zeros((k, k, 4), dtype=np.int64)
    np.add.at(out, (arr[:, 0], arr[:, 1], arr[:, 2]), arr[:, 3])
    return out


def _add(x: npt.NDArray[np.int64], y: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Sum of two dense cell arrays of possibly different sizes."""
    k = max(x.shape[0], y.shape[0])
    out = np.zeros((k, k, 4), dtype=np.int64)
    out[: x.shape[0], : x.shape[1]] += x
    out[: y.shape[0], : y.shape[1]] += y
    return out


def _subtract(x: npt.NDArray[np.int64], y: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``x - y`` for cell arrays where ``y`` counts a subset of ``x``'s votes."""
    return _add(x, -y)


def _epoch(value: object) -> float:
    """Seconds since the epoch of a ``voted_at`` as the driver returns it."""
    if isinstance(value, str):  # SQLite text, UTC ('YYYY-MM-DD HH:MM:SS.ffffff')
        return float(np.datetime64(value.replace(" ", "T"), "us").astype(np.int64)) / 1e6
    ts = getattr(value, "timestamp", None)
    if ts is None:
        raise TypeError(f"unexpected voted_at value {value!r}")
    if getattr(value, "tzinfo", None) is None:  # naive: stored as UTC
        return float(value.replace(tzinfo=dt.UTC).timestamp())  # type: ignore[attr-defined]
    return float(ts())
