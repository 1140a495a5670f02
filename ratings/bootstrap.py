"""Bootstrap confidence intervals for Bradley-Terry ratings, on counts.

Resampling battles with replacement is the same as drawing the cell counts of the aggregated
table from a multinomial, so a round costs one multinomial draw over a few thousand cells
instead of a pass over every battle, and the fits of many rounds are batched
(:func:`ratings.bt.fit_bt_batch`) from a warm start.

With ``cluster_by``, whole clusters (all votes of one judge, or on one prompt) are resampled
instead: votes within a cluster are correlated, and the i.i.d. bootstrap then understates the
uncertainty.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from ratings.bt import DEFAULT_L2, DEFAULT_TOL, BTFit, fit_bt_batch
from ratings.data import Counts

__all__ = ["ProgressBar", "ProgressFactory", "bootstrap_thetas", "percentile_interval"]

FloatArray = npt.NDArray[np.float64]


class ProgressBar(Protocol):
    """What the ratings engine needs of a progress bar (``tqdm`` has it)."""

    def update(self, n: float = 1, /) -> object:
        """Advance by ``n`` steps."""
        ...

    def close(self) -> None:
        """Finish the bar."""
        ...


# Called with the total number of steps (rounds); returns a bar.
ProgressFactory = Callable[[int], ProgressBar]

_CHUNK = 50  # rounds fitted together; memory is ~ 3 * chunk * m * m floats per worker
_CHUNK_BYTES = 256 << 20  # so with many models the chunk shrinks (from ~470 models up)
_WORKERS = min(4, os.cpu_count() or 1)


def bootstrap_thetas(
    counts: Counts,
    fit: BTFit,
    *,
    rounds: int,
    seed: int,
    clustered: bool = False,
    l2: float = DEFAULT_L2,
    tol: float = DEFAULT_TOL,
    progress: ProgressFactory | None = None,
) -> FloatArray:
    """Draw bootstrap replicates of the mean-centred log-strengths.

    Parameters
    ----------
    counts
        Aggregated battles; with ``clustered`` they must carry cluster codes
        (``Battles.aggregate(cluster_by=...)``).
    fit
        The full-data fit on the same models (warm start).
    rounds
        Number of bootstrap rounds (>= 1).
    seed
        Seed of the random generator; the same seed gives the same replicates.
    clustered
        Resample clusters instead of battles.
    l2, tol
        Passed to the fits.
    progress
        Optional factory for a progress bar (``tqdm``-like), called with ``rounds``.

    Returns
    -------
    numpy.ndarray
        ``rounds x m`` replicates.

    Raises
    ------
    ValueError
        ``rounds < 1``, or ``clustered`` with counts that have no clusters.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    pairs = counts.pair_totals()  # cell -> pair map for these (possibly clustered) cells
    n_cells = counts.n.shape[0]
    per_battle = counts.weight / np.maximum(counts.n, 1)
    score = counts.score_i
    cell_pair = pairs.cell_pair
    merged_n = counts.n.astype(np.float64)
    if clustered:
        if counts.cluster is None:
            raise ValueError("clustered bootstrap needs counts aggregated with cluster_by")
        k = counts.n_clusters
        # Cluster x pair matrices of weight and score: a round's totals are mult @ these.
        base_rows, base_vals = counts.cluster, counts.weight
        n_units = k
    else:
        # Multinomial cost grows with the number of cells, and the two kinds of tie are the
        # same to BT: merge them (and keep cells with different per-battle weights apart).
        oc3 = np.minimum(counts.outcome.astype(np.int64), 2)
        wcode = np.unique(per_battle, return_inverse=True)[1].reshape(-1)
        key = (pairs.cell_pair * 3 + oc3) * (int(wcode.max()) + 1) + wcode
        ukey, first, inv = np.unique(key, return_index=True, return_inverse=True)
        merged_n = np.bincount(inv.reshape(-1), weights=counts.n, minlength=ukey.size).astype(
            np.float64, copy=False
        )
        cell_pair = pairs.cell_pair[first]
        per_battle = per_battle[first]
        score = score[first]
        n_cells = ukey.size
        base_rows, base_vals = np.arange(n_cells), per_battle
        n_units = n_cells
    tot_mat = sp.csr_matrix((base_vals, (base_rows, cell_pair)), shape=(n_units, pairs.n_pairs))
    score_mat = sp.csr_matrix(
        (base_vals * score, (base_rows, cell_pair)), shape=(n_units, pairs.n_pairs)
    )
    n_battles = int(counts.n.sum())
    probs = merged_n / n_battles
    bar = progress(rounds) if progress is not None else None
    out = np.empty((rounds, counts.n_models))
    m = counts.n_models
    chunk = max(1, min(_CHUNK, _CHUNK_BYTES // (3 * 8 * m * m)))
    starts = list(range(0, rounds, chunk))
    # One generator per chunk, spawned from the seed: the draws do not depend on which
    # thread runs which chunk, so results are reproducible while two cores share the work
    # (numpy's samplers and array kernels release the GIL).
    seeds = np.random.SeedSequence(seed).spawn(len(starts))

    def run_chunk(c: int) -> int:
        start = starts[c]
        size = min(chunk, rounds - start)
        rng = np.random.Generator(np.random.PCG64(seeds[c]))
        if clustered:
            mult = rng.multinomial(k, np.full(k, 1.0 / k), size=size).astype(np.float64)
        else:
            mult = rng.multinomial(n_battles, probs, size=size).astype(np.float64)
        total = np.asarray((tot_mat.T @ mult.T).T)
        sc = np.asarray((score_mat.T @ mult.T).T)
        out[start : start + size] = fit_bt_batch(
            pairs.i, pairs.j, total, sc, fit.theta, l2=l2, tol=tol
        )
        return size

    try:
        # The workers already use every core; OpenBLAS threads inside each worker's batched
        # solves would fight them (measured: 3.5 ms per round instead of 2.1 on two cores).
        # The limit is process-wide while the bootstrap runs and is restored afterwards.
        with (
            threadpool_limits(limits=1, user_api="blas"),
            ThreadPoolExecutor(max_workers=_WORKERS) as pool,
        ):
            for size in pool.map(run_chunk, range(len(starts))):
                if bar is not None:
                    bar.update(size)
    finally:
        if bar is not None:
            bar.close()
    return out


def percentile_interval(samples: FloatArray, level: float = 0.95) -> tuple[FloatArray, FloatArray]:
    """Per-column percentile interval ``[(1-level)/2, (1+level)/2]`` of bootstrap samples."""
    lo = (1.0 - level) / 2.0
    q = np.quantile(samples, [lo, 1.0 - lo], axis=0)
    return q[0], q[1]
