"""The data shapes of the ratings engine, named once.

``Battles``
    One row per battle, columnar: integer model indices into ``models``, an outcome code,
    and optional per-battle columns (weight, judge, question id, timestamp, anony flag).
``Counts``
    Battles aggregated to unique ``(a, b, outcome[, weight][, cluster])`` cells.  Everything
    downstream (Bradley-Terry fit, sandwich and bootstrap CIs, statistics) works on counts,
    which is why a million battles cost no more than a few thousand cells.
``PairTotals``
    Counts folded to canonical pairs ``i < j``: total weight and the score of ``i`` (wins plus
    half the ties) -- the sufficient statistics of the Bradley-Terry likelihood.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ratings.records import MAX_WEIGHT, WINNERS, RecordError, check_text

__all__ = [
    "A_WINS",
    "BOTH_BAD",
    "B_WINS",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "STYLE_FEATURES",
    "TIE",
    "WINNER_CODES",
    "WINNER_VALUES",
    "BattleDataError",
    "Battles",
    "Counts",
    "PairTotals",
]

# Outcome codes.  `tie (bothbad)` is kept apart from `tie` for statistics, but both count as
# half a win for each side in every rating method.
A_WINS, B_WINS, TIE, BOTH_BAD = 0, 1, 2, 3
WINNER_VALUES: tuple[str, ...] = WINNERS
WINNER_CODES: dict[str, int] = {v: i for i, v in enumerate(WINNER_VALUES)}
# Score of model_a for each outcome code.
A_SCORE = np.array([1.0, 0.0, 0.5, 0.5])

REQUIRED_COLUMNS: tuple[str, ...] = ("model_a", "model_b", "winner")
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "tstamp",
    "judge",
    "question_id",
    "turn",
    "anony",
    "language",
    "weight",
    "address_hash",
)

# Style dimensions, in the order of ``Battles.style``'s second axis, and the LMSYS
# ``conv_metadata`` keys each sums (side a / side b).
STYLE_FEATURES: tuple[str, ...] = ("answer_tokens", "headers", "lists", "bold")

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class BattleDataError(ValueError):
    """Bad battle input.  The message names the source, the line or record and the field.

    Parameters
    ----------
    source
        File name (or another description of where the data came from).
    message
        What is wrong.
    line
        1-based line number in the file (JSONL, CSV), when known.
    record
        0-based record index (JSON list, Parquet, columns), when there is no line number.
    field
        The column or key that is wrong, when one is.
    """

    def __init__(
        self,
        source: str,
        message: str,
        *,
        line: int | None = None,
        record: int | None = None,
        field: str | None = None,
    ) -> None:
        self.source = source
        self.line = line
        self.record = record
        self.field = field
        self.reason = message
        where = [source]
        if line is not None:
            where.append(f"line {line}")
        elif record is not None:
            where.append(f"record {record}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}")


@dataclass(frozen=True, eq=False)
class Battles:
    """Battles as columns.  Build with :meth:`from_columns`, which validates.

    Attributes
    ----------
    models
        Sorted unique model names; ``a`` and ``b`` index into it.
    a, b
        Model indices of ``model_a`` and ``model_b`` per battle.
    outcome
        Outcome code per battle (see ``WINNER_VALUES``).
    weight
        Per-battle weight (``None``: all 1).
    clusters
        Optional integer-coded grouping columns (``judge``, ``question_id``) for clustered CIs;
        codes are dense 0..k-1 in first-appearance order.
    tstamp
        Optional timestamps (seconds), used to order online Elo.
    source
        Where the battles came from, for messages.
    notes
        What the reader or a filter left out, and why (shown under the leaderboard).
    style
        Optional ``n x len(STYLE_FEATURES) x 2`` counts per battle (side a, side b): answer
        tokens, markdown headers, list items, bold spans.
    categories
        Optional category flags per battle by tag name (``coding``, ``math``, ...).
    language
        Optional language name per battle (``None`` when unknown).
    """

    models: tuple[str, ...]
    a: IntArray
    b: IntArray
    outcome: npt.NDArray[np.int8]
    weight: FloatArray | None = None
    clusters: dict[str, IntArray] = field(default_factory=dict)
    tstamp: FloatArray | None = None
    source: str = "<battles>"
    notes: tuple[str, ...] = ()
    style: FloatArray | None = None
    categories: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)
    language: npt.NDArray[np.object_] | None = None

    def __len__(self) -> int:
        return int(self.a.shape[0])

    @property
    def n_models(self) -> int:
        return len(self.models)

    @classmethod
    def from_columns(
        cls,
        model_a: Sequence[str] | npt.ArrayLike,
        model_b: Sequence[str] | npt.ArrayLike,
        winner: Sequence[str] | npt.ArrayLike,
        *,
        weight: npt.ArrayLike | None = None,
        clusters: Mapping[str, npt.ArrayLike] | None = None,
        tstamp: npt.ArrayLike | None = None,
        source: str = "<columns>",
        line_of: npt.ArrayLike | None = None,
    ) -> Battles:
        """Validate and encode battle columns.

        Parameters
        ----------
        model_a, model_b, winner
            Equal-length sequences of strings.  ``winner`` values must be in
            ``WINNER_VALUES``.
        weight
            Optional non-negative finite per-battle weights.
        clusters
            Optional grouping columns by name (any hashable values; ``None`` entries are
            their own singleton groups).
        tstamp
            Optional timestamps.
        source
            Name used in error messages.
        line_of
            Optional 1-based file line per row, so errors can name the line.

        Returns
        -------
        Battles

        Raises
        ------
        BattleDataError
            Empty input, a missing or empty model name, an unknown winner value, a model
            playing itself, or a bad weight; the message names the row and the field.
        """
        ma = np.asarray(model_a, dtype=object)
        mb = np.asarray(model_b, dtype=object)
        w = np.asarray(winner, dtype=object)
        n = ma.shape[0]
        lines = None if line_of is None else np.asarray(line_of, dtype=np.int64)

        def where(i: int) -> dict[str, int]:
            return {"line": int(lines[i])} if lines is not None else {"record": int(i)}

        if n == 0:
            raise BattleDataError(source, "no battles (the input is empty)")
        if mb.shape[0] != n or w.shape[0] != n:
            raise BattleDataError(source, "model_a, model_b and winner differ in length")
        codes = _encode_winner(w, source, where)
        names, inv = _factorize(np.concatenate([ma, mb]))
        for k, name in enumerate(names):
            # Checked per distinct value, not per row: a million rows stay cheap.
            problem = None
            if not isinstance(name, str) or not name:
                problem = f"missing or empty model name ({name!r})"
            else:
                try:
                    check_text("model_a", name, required=True)
                except RecordError as exc:
                    problem = exc.reason
            if problem is not None:
                first = int(np.flatnonzero(inv == k)[0])
                field_name, row = ("model_a", first) if first < n else ("model_b", first - n)
                raise BattleDataError(source, problem, field=field_name, **where(row))
        order = sorted(range(len(names)), key=lambda k: str(names[k]))
        remap = np.empty(len(names), dtype=np.int64)
        remap[order] = np.arange(len(names))
        models = [str(names[k]) for k in order]
        a = remap[inv[:n]]
        b = remap[inv[n:]]
        selfplay = np.flatnonzero(a == b)
        if selfplay.size:
            i = int(selfplay[0])
            raise BattleDataError(
                source, f"model {ma[i]!r} plays itself", field="model_b", **where(i)
            )
        wt = None if weight is None else _check_weight(weight, n, source, where)
        ts = None if tstamp is None else np.asarray(tstamp, dtype=np.float64)
        cl = {k: _dense_codes(v) for k, v in (clusters or {}).items()}
        return cls(
            models=tuple(str(m) for m in models),
            a=a,
            b=b,
            outcome=codes,
            weight=wt,
            clusters=cl,
            tstamp=ts,
            source=source,
        )

    @classmethod
    def from_codes(
        cls,
        models: Sequence[str],
        a: npt.ArrayLike,
        b: npt.ArrayLike,
        outcome: npt.ArrayLike,
        *,
        weight: npt.ArrayLike | None = None,
        clusters: Mapping[str, npt.ArrayLike] | None = None,
        tstamp: npt.ArrayLike | None = None,
        source: str = "<codes>",
    ) -> Battles:
        """Build from already-encoded columns (fast path for readers and the database).

        ``models`` need not be sorted; indices are remapped so that the result is canonical
        (sorted models, unused models dropped).

        Raises
        ------
        BattleDataError
            Out-of-range indices or outcome codes, self-play, or no battles.
        """
        names = np.asarray(list(models), dtype=object)
        ai = np.asarray(a, dtype=np.int64)
        bi = np.asarray(b, dtype=np.int64)
        oc = np.asarray(outcome, dtype=np.int64)
        n = ai.shape[0]
        if n == 0:
            raise BattleDataError(source, "no battles (the input is empty)")
        k = len(names)
        for fname, col, hi in (("model_a", ai, k), ("model_b", bi, k), ("winner", oc, 4)):
            bad = np.flatnonzero((col < 0) | (col >= hi))
            if bad.size:
                raise BattleDataError(source, "invalid code", record=int(bad[0]), field=fname)
        selfplay = np.flatnonzero(ai == bi)
        if selfplay.size:
            i = int(selfplay[0])
            raise BattleDataError(
                source, f"model {names[ai[i]]!r} plays itself", record=i, field="model_b"
            )
        # bincount instead of unique: linear time, and these are small dense integers.
        used = np.flatnonzero(np.bincount(ai, minlength=k) + np.bincount(bi, minlength=k))
        used_names = names[used].astype(str)
        order = np.argsort(used_names, kind="stable")
        if len(set(used_names.tolist())) != len(used_names):
            raise BattleDataError(source, "duplicate model names in the model list")
        remap = np.full(k, -1, dtype=np.int64)
        remap[used[order]] = np.arange(used.size)
        where_ = lambda i: {"record": int(i)}  # noqa: E731
        wt = None if weight is None else _check_weight(weight, n, source, where_)
        return cls(
            models=tuple(used_names[order].tolist()),
            a=remap[ai],
            b=remap[bi],
            outcome=oc.astype(np.int8),
            weight=wt,
            clusters={kk: _dense_codes(v) for kk, v in (clusters or {}).items()},
            tstamp=None if tstamp is None else np.asarray(tstamp, dtype=np.float64),
            source=source,
        )

    def select(self, mask: npt.NDArray[np.bool_], note: str | None = None) -> Battles:
        """Return the battles where ``mask`` is true, with unused models dropped.

        The notes (what the reader left out, and why) are kept, and ``note`` is added to
        them when given.
        """
        if not mask.any():
            raise BattleDataError(self.source, "no battles left after filtering")
        kept = Battles.from_codes(
            self.models,
            self.a[mask],
            self.b[mask],
            self.outcome[mask],
            weight=None if self.weight is None else self.weight[mask],
            clusters={k: v[mask] for k, v in self.clusters.items()},
            tstamp=None if self.tstamp is None else self.tstamp[mask],
            source=self.source,
        )
        return dataclasses.replace(
            kept,
            notes=self.with_note(note).notes,
            style=None if self.style is None else self.style[mask],
            categories={k: v[mask] for k, v in self.categories.items()},
            language=None if self.language is None else self.language[mask],
        )

    def with_context(
        self,
        *,
        style: npt.ArrayLike | None = None,
        categories: Mapping[str, npt.ArrayLike] | None = None,
        language: npt.ArrayLike | None = None,
    ) -> Battles:
        """Return a copy with style counts, category flags and/or languages attached.

        Parameters
        ----------
        style
            ``n x len(STYLE_FEATURES) x 2`` finite non-negative counts (NaN: unknown).
        categories
            Boolean flags per battle by category name.
        language
            Language name per battle (``None``: unknown).

        Returns
        -------
        Battles

        Raises
        ------
        BattleDataError
            A column of the wrong length or shape, or negative counts.
        """
        n = len(self)
        changes: dict[str, Any] = {}
        if style is not None:
            st = np.asarray(style, dtype=np.float64)
            if st.shape != (n, len(STYLE_FEATURES), 2):
                raise BattleDataError(
                    self.source,
                    f"style counts must be {n} x {len(STYLE_FEATURES)} x 2, got {st.shape}",
                    field="conv_metadata",
                )
            if (st < 0).any():
                row = int(np.flatnonzero((st < 0).any(axis=(1, 2)))[0])
                raise BattleDataError(
                    self.source, "negative style count", record=row, field="conv_metadata"
                )
            changes["style"] = st
        if categories is not None:
            cats = {k: np.asarray(v, dtype=bool) for k, v in categories.items()}
            for k, v in cats.items():
                if v.shape != (n,):
                    raise BattleDataError(
                        self.source, f"expected {n} flags, got {v.shape}", field=k
                    )
            changes["categories"] = cats
        if language is not None:
            lang = np.asarray(language, dtype=object)
            if lang.shape != (n,):
                raise BattleDataError(
                    self.source, f"expected {n} languages, got {lang.shape}", field="language"
                )
            changes["language"] = lang
        return dataclasses.replace(self, **changes)

    def with_note(self, note: str | None) -> Battles:
        """Return a copy with ``note`` appended to the notes (unchanged when ``None``)."""
        if note is None:
            return self
        return dataclasses.replace(self, notes=(*self.notes, note))

    def with_weight(self, weight: npt.ArrayLike) -> Battles:
        """Return a copy with per-battle weights replaced."""
        n = len(self)
        w = _check_weight(weight, n, self.source, lambda i: {"record": int(i)})
        return dataclasses.replace(self, weight=w)

    def aggregate(self, cluster_by: str | None = None) -> Counts:
        """Aggregate to unique cells ``(a, b, outcome[, weight][, cluster])``.

        Parameters
        ----------
        cluster_by
            Name of a grouping column to keep in the cells (for clustered CIs).

        Returns
        -------
        Counts

        Raises
        ------
        BattleDataError
            When ``cluster_by`` names a column these battles do not have.
        """
        m = self.n_models
        # Orientation does not matter for any rating method, so cells are canonical i < j.
        swap = self.a > self.b
        i = np.where(swap, self.b, self.a)
        j = np.where(swap, self.a, self.b)
        oc = self.outcome.astype(np.int64)
        oc = np.where(swap & (oc == A_WINS), B_WINS, np.where(swap & (oc == B_WINS), A_WINS, oc))
        key = (i * m + j) * 4 + oc
        # Extra cell dimensions are folded into one integer key: a 1-D unique is ~10x faster
        # than a row-wise unique over stacked columns.
        radix = [m * m * 4]
        parts = [key]
        wt_values: FloatArray | None = None
        if self.weight is not None:
            wt_values, wt_codes = np.unique(self.weight, return_inverse=True)
            parts.append(wt_codes.reshape(-1))
            radix.append(int(wt_values.size))
        cl = None
        if cluster_by is not None:
            if cluster_by not in self.clusters:
                raise BattleDataError(
                    self.source,
                    f"cannot cluster by {cluster_by!r}: the battles have no such column "
                    f"(available: {sorted(self.clusters) or 'none'})",
                    field=cluster_by,
                )
            cl = self.clusters[cluster_by]
            parts.append(cl)
            radix.append(int(cl.max()) + 1)
        if int(np.prod([float(r) for r in radix])) >= 2**62:
            raise BattleDataError(self.source, "too many distinct weights and clusters")
        combined = parts[0].astype(np.int64)
        for part, r in zip(parts[1:], radix[1:], strict=True):
            combined = combined * r + part
        ucomb, cnt = np.unique(combined, return_counts=True)
        ncnt = cnt.astype(np.int64)
        cell_cluster = None
        if cl is not None:
            cell_cluster = ucomb % radix[-1]
            ucomb = ucomb // radix[-1]
        if wt_values is not None:
            per = wt_values[ucomb % radix[1]]
            ucomb = ucomb // radix[1]
            wsum = per * cnt
            w2sum = per * per * cnt
        else:
            wsum = cnt.astype(np.float64)
            w2sum = wsum.copy()
        uniq = ucomb
        oc_u = uniq % 4
        pair = uniq // 4
        return Counts(
            models=self.models,
            i=(pair // m).astype(np.int64),
            j=(pair % m).astype(np.int64),
            outcome=oc_u.astype(np.int8),
            n=ncnt,
            weight=wsum,
            weight_sq=w2sum,
            cluster=None if cell_cluster is None else cell_cluster.astype(np.int64),
            n_clusters=0 if cl is None else int(cl.max()) + 1,
        )


@dataclass(frozen=True, eq=False)
class Counts:
    """Battles aggregated to cells with ``i < j``.

    Attributes
    ----------
    models
        Model names; ``i`` and ``j`` index into it.
    i, j
        Model indices per cell, ``i < j``.
    outcome
        Outcome code per cell (from ``i``'s point of view: ``A_WINS`` means ``i`` won).
    n
        Number of battles in the cell.
    weight, weight_sq
        Sum of battle weights, and of squared weights, in the cell (both equal ``n`` when
        unweighted).
    cluster
        Cluster code per cell when aggregated with ``cluster_by``.
    n_clusters
        Number of distinct clusters (0 when not clustered).
    """

    models: tuple[str, ...]
    i: IntArray
    j: IntArray
    outcome: npt.NDArray[np.int8]
    n: IntArray
    weight: FloatArray
    weight_sq: FloatArray
    cluster: IntArray | None = None
    n_clusters: int = 0

    @property
    def n_models(self) -> int:
        return len(self.models)

    @property
    def n_battles(self) -> int:
        return int(self.n.sum())

    @property
    def score_i(self) -> FloatArray:
        """Score of model ``i`` per battle in each cell (1, 0 or 0.5)."""
        return A_SCORE[self.outcome]

    def pair_totals(self, weight: FloatArray | None = None) -> PairTotals:
        """Fold cells into canonical pairs (the BT sufficient statistics).

        Parameters
        ----------
        weight
            Per-cell weights to use instead of ``self.weight`` (bootstrap rounds pass their
            resampled counts here).
        """
        w = self.weight if weight is None else weight
        m = self.n_models
        key = self.i * m + self.j
        pairs, inv = np.unique(key, return_inverse=True)
        total = np.bincount(inv, weights=w, minlength=pairs.size)
        score = np.bincount(inv, weights=w * self.score_i, minlength=pairs.size)
        return PairTotals(
            n_models=m,
            i=(pairs // m).astype(np.int64),
            j=(pairs % m).astype(np.int64),
            total=total.astype(np.float64, copy=False),
            score=score.astype(np.float64, copy=False),
            cell_pair=inv.astype(np.int64),
        )

    def per_model(self) -> dict[str, IntArray]:
        """Battles, wins, ties and losses per model (unweighted battle counts)."""
        m = self.n_models
        res = {}
        oc = self.outcome
        n = self.n
        tie = (oc == TIE) | (oc == BOTH_BAD)
        res["battles"] = np.bincount(self.i, n, m) + np.bincount(self.j, n, m)
        res["wins"] = np.bincount(self.i, n * (oc == A_WINS), m) + np.bincount(
            self.j, n * (oc == B_WINS), m
        )
        res["losses"] = np.bincount(self.i, n * (oc == B_WINS), m) + np.bincount(
            self.j, n * (oc == A_WINS), m
        )
        res["ties"] = np.bincount(self.i, n * tie, m) + np.bincount(self.j, n * tie, m)
        return {k: np.rint(v).astype(np.int64) for k, v in res.items()}


@dataclass(frozen=True, eq=False)
class PairTotals:
    """Canonical pairs ``i < j`` with total weight and ``i``'s score (wins + ties / 2)."""

    n_models: int
    i: IntArray
    j: IntArray
    total: FloatArray
    score: FloatArray
    cell_pair: IntArray  # for each Counts cell, the index of its pair

    @property
    def n_pairs(self) -> int:
        return int(self.i.shape[0])


def _encode_winner(
    w: npt.NDArray[np.object_], source: str, where: Callable[[int], dict[str, Any]]
) -> npt.NDArray[np.int8]:
    values, inv = _factorize(w)
    table = np.empty(len(values), dtype=np.int64)
    for k, v in enumerate(values):
        code = WINNER_CODES.get(v) if isinstance(v, str) else None
        if code is None:
            i = int(np.flatnonzero(inv == k)[0])
            raise BattleDataError(
                source,
                f"unknown winner {w[i]!r} (expected one of {', '.join(WINNER_VALUES)})",
                field="winner",
                **where(i),
            )
        table[k] = code
    return table[inv].astype(np.int8)


def _check_weight(
    weight: npt.ArrayLike, n: int, source: str, where: Callable[[int], dict[str, Any]]
) -> FloatArray:
    try:
        wt = np.asarray(weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise BattleDataError(source, "weights must be numbers", field="weight") from None
    if wt.shape != (n,):
        raise BattleDataError(source, f"expected {n} weights, got {wt.shape}", field="weight")
    # NaN fails both comparisons, so it is caught with the out-of-range values.
    bad = np.flatnonzero(~((wt >= 0) & (wt <= MAX_WEIGHT)))
    if bad.size:
        i = int(bad[0])
        raise BattleDataError(
            source,
            f"weight must be finite and from 0 to {MAX_WEIGHT:g}, got {wt[i]!r}",
            field="weight",
            **where(i),
        )
    return wt


def _dense_codes(values: npt.ArrayLike) -> IntArray:
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        if arr.size and arr.min() >= 0 and (np.bincount(arr) > 0).all():
            return arr.astype(np.int64, copy=False)  # already dense 0..k-1 (readers' codes)
        _, inv = np.unique(arr, return_inverse=True)
        return inv.reshape(-1).astype(np.int64)
    obj = arr.astype(object)
    uniq, codes = _factorize(obj)
    # Missing values each form their own cluster: nothing says they are related.
    missing = [k for k, v in enumerate(uniq) if v is None or (isinstance(v, float) and v != v)]
    if missing:
        null = np.isin(codes, missing)
        codes = codes.copy()
        codes[null] = len(uniq) + np.arange(int(null.sum()))
        _, codes = np.unique(codes, return_inverse=True)
    return codes.reshape(-1).astype(np.int64)


def _factorize(values: npt.NDArray[np.object_]) -> tuple[list[object], IntArray]:
    """Codes in first-appearance order; a dict beats sorting object arrays by ~3x."""
    seen: dict[object, int] = {}
    setdefault = seen.setdefault
    codes = np.fromiter(
        (setdefault(v, len(seen)) for v in values), dtype=np.int64, count=values.shape[0]
    )
    return list(seen), codes


def _is_str(x: object) -> bool:
    return isinstance(x, str)
