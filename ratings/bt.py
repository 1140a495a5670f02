"""Bradley-Terry maximum likelihood with ties as half wins, and its covariance.

Model: ``P(i beats j) = 1 / (1 + exp(-(theta_i - theta_j)))``.  A tie scores half a win for
each side, so the log-likelihood of a pair with total weight ``n`` and ``i``-score ``s`` is
``s log p + (n - s) log(1 - p)`` -- the quasi-likelihood used by LMSYS and BradleyTerry2 with
fractional outcomes.  It depends on the data only through the pair totals, so the fit costs
the same for a thousand battles as for a million.

A tiny ridge penalty ``l2 / 2 * sum(theta**2)`` (default ``DEFAULT_L2 = 1e-6``, in units of
the summed log-likelihood) keeps models that never lost (or never won) finite and pins the
mean of ``theta`` to zero; at that size it moves well-determined ratings by far less than
1e-6 Elo points.  Set ``l2=0`` for the pure MLE: a model without both a win and a loss then
makes the fit fail loudly.

Convergence is declared when the gradient of the penalised log-likelihood (summed over
battles) has a Euclidean norm of at most ``tol`` (default 1e-8), or -- on data so large that
rounding keeps the summed gradient above that -- when a Newton step no longer moves any
``theta`` by more than 1e-13.  Newton's method gets there in a handful of steps.

Up to ``DENSE_MAX_MODELS`` models each Newton step solves with the dense ``m x m`` Hessian.
Beyond that the Hessian is never formed: it is a weighted graph Laplacian over the observed
pairs, so conjugate gradients (Jacobi-preconditioned) solve the Newton system with one pass
over the pairs per iteration, in O(models + pairs) memory.  The covariance (and with it the
sandwich and Fisher intervals) still needs the dense inverse, so :func:`covariance` refuses
more than ``MAX_COVARIANCE_MODELS`` models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import LinearOperator, cg
from scipy.special import expit, log_expit

from ratings.data import A_SCORE, Counts, PairTotals

__all__ = [
    "DEFAULT_L2",
    "DEFAULT_TOL",
    "DENSE_MAX_MODELS",
    "ELO_SCALE",
    "MAX_COVARIANCE_MODELS",
    "BTFit",
    "ConvergenceError",
    "check_covariance_size",
    "covariance",
    "fit_bt",
    "fit_bt_batch",
    "gradient",
    "log_likelihood",
    "neg_hessian",
]

DEFAULT_L2 = 1e-6
DEFAULT_TOL = 1e-8
_STALL = 1e-13  # a Newton step this small means rounding, not the optimiser, is the limit
# Dense Newton up to here.  Both paths agree to ~1e-16 in theta; CG was already 2x faster at
# 300 models and 9x at 1,500 (30k and 100k random battles, 2 cores), so the dense solve is
# kept only where it costs nothing.
DENSE_MAX_MODELS = 500
# The covariance is a dense m x m inverse: 5,000 models take ~200 MB per matrix (a handful
# are alive at once) and O(m^3) time.  Past that, intervals are refused, not attempted.
MAX_COVARIANCE_MODELS = 5000
_CG_RTOL = 1e-12  # relative residual of each Newton system on the sparse path
ELO_SCALE = 400.0 / math.log(10.0)  # theta (natural log) -> Elo points; 173.7178...

FloatArray = npt.NDArray[np.float64]


class ConvergenceError(RuntimeError):
    """The Newton iterations did not reach the tolerance; the message says why."""


@dataclass(frozen=True, eq=False)
class BTFit:
    """A converged Bradley-Terry fit.

    Attributes
    ----------
    models
        Model names, aligned with ``theta``.
    theta
        Log-strengths, centred to mean 0.
    pairs
        The pair totals the fit was made on.
    l2
        The ridge penalty used.
    iterations
        Newton iterations taken.
    grad_norm
        Final norm of the gradient.
    """

    models: tuple[str, ...]
    theta: FloatArray
    pairs: PairTotals
    l2: float
    iterations: int
    grad_norm: float

    @property
    def n_weight(self) -> float:
        return float(self.pairs.total.sum())


def log_likelihood(theta: FloatArray, pairs: PairTotals, l2: float = DEFAULT_L2) -> float:
    """Penalised log-likelihood (summed over battles).

    Parameters
    ----------
    theta
        Log-strengths, one per model.
    pairs
        Pair totals.
    l2
        Ridge penalty.

    Returns
    -------
    float
    """
    d = theta[pairs.i] - theta[pairs.j]
    ll = pairs.score * log_expit(d) + (pairs.total - pairs.score) * log_expit(-d)
    return float(ll.sum() - 0.5 * l2 * np.dot(theta, theta))


def gradient(theta: FloatArray, pairs: PairTotals, l2: float = DEFAULT_L2) -> FloatArray:
    """Gradient of :func:`log_likelihood` with respect to ``theta``."""
    d = theta[pairs.i] - theta[pairs.j]
    resid = pairs.score - pairs.total * expit(d)
    m = theta.shape[0]
    g = np.bincount(pairs.i, resid, m) - np.bincount(pairs.j, resid, m)
    return g - l2 * theta


def neg_hessian(theta: FloatArray, pairs: PairTotals, l2: float = DEFAULT_L2) -> FloatArray:
    """Negative Hessian of :func:`log_likelihood` (the observed information), ``m x m``."""
    m = theta.shape[0]
    d = theta[pairs.i] - theta[pairs.j]
    p = expit(d)
    v = pairs.total * p * (1.0 - p)
    h = np.zeros((m, m))
    h[pairs.i, pairs.j] = -v
    h[pairs.j, pairs.i] = -v
    h[np.diag_indices(m)] = -h.sum(axis=1) + l2
    return h


def _gauge_solve(h: FloatArray, g: FloatArray) -> FloatArray:
    """Solve ``h x = g`` on the mean-zero subspace (``h`` is singular along ones when l2=0)."""
    m = h.shape[-1]
    return np.linalg.solve(h + 1.0 / m, g[..., None])[..., 0]


def fit_bt(
    counts: Counts,
    *,
    l2: float = DEFAULT_L2,
    tol: float = DEFAULT_TOL,
    max_iter: int = 200,
    theta0: FloatArray | None = None,
) -> BTFit:
    """Fit Bradley-Terry log-strengths by damped Newton iterations.

    Parameters
    ----------
    counts
        Aggregated battles (weights are used as given).
    l2
        Ridge penalty on ``theta`` (see the module notes); must be >= 0.
    tol
        Stop when the gradient norm is at most this.
    max_iter
        Give up after this many Newton steps.
    theta0
        Starting point (default zeros).

    Returns
    -------
    BTFit

    Raises
    ------
    ValueError
        A negative ``l2`` or no battles with positive weight.
    ConvergenceError
        The tolerance was not reached in ``max_iter`` steps (for ``l2 = 0`` this happens when
        a model never lost or never won, since its MLE is infinite).
    """
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    pairs = counts.pair_totals()
    total = float(pairs.total.sum())
    if total <= 0:
        raise ValueError("no battles with positive weight to fit")
    m = counts.n_models
    if l2 == 0:
        _check_mle_exists(pairs, counts.models)
    theta = np.zeros(m) if theta0 is None else np.array(theta0, dtype=np.float64)
    theta -= theta.mean()
    obj = log_likelihood(theta, pairs, l2)
    gnorm = math.inf
    last_step = math.inf
    for it in range(1, max_iter + 1):
        g = gradient(theta, pairs, l2)
        gnorm = float(np.linalg.norm(g))
        if gnorm <= tol or last_step <= _STALL:
            return BTFit(counts.models, theta - theta.mean(), pairs, l2, it - 1, gnorm)
        if m > DENSE_MAX_MODELS:
            step = _sparse_newton_step(theta, pairs, l2, g)
        else:
            step = _gauge_solve(neg_hessian(theta, pairs, l2), g)
        # Backtrack if the full Newton step overshoots (possible far from the optimum).
        t = 1.0
        for _ in range(40):
            cand = theta + t * step
            cand_obj = log_likelihood(cand, pairs, l2)
            if cand_obj >= obj - 1e-12 * abs(obj):
                break
            t *= 0.5
        last_step = float(np.abs(cand - theta).max())
        theta, obj = cand, cand_obj
    hint = (
        " With l2=0 a model that never lost (or never won) has no finite MLE; use l2 > 0."
        if l2 == 0
        else ""
    )
    raise ConvergenceError(
        f"Bradley-Terry fit did not converge in {max_iter} iterations "
        f"(gradient norm {gnorm:.3g} > tol {tol:g}).{hint}"
    )


def _sparse_newton_step(
    theta: FloatArray, pairs: PairTotals, l2: float, g: FloatArray
) -> FloatArray:
    """Solve ``(H + 11'/m) x = g`` by preconditioned CG without forming ``H``."""
    m = theta.shape[0]
    p = expit(theta[pairs.i] - theta[pairs.j])
    v = pairs.total * p * (1.0 - p)
    pi, pj = pairs.i, pairs.j

    def matvec(x: FloatArray) -> FloatArray:
        x = np.ravel(x)
        r = v * (x[pi] - x[pj])
        # The 11'/m term fixes the direction H cannot see (adding a constant to theta).
        out: FloatArray = np.bincount(pi, r, m) - np.bincount(pj, r, m) + l2 * x + x.sum() / m
        return out

    diag = np.bincount(pi, v, m) + np.bincount(pj, v, m) + l2 + 1.0 / m
    op = LinearOperator((m, m), matvec=matvec, dtype=np.float64)
    pre = LinearOperator((m, m), matvec=lambda x: np.ravel(x) / diag, dtype=np.float64)
    x, info = cg(op, g, rtol=_CG_RTOL, atol=0.0, maxiter=10 * m, M=pre)
    if info > 0:
        raise ConvergenceError(
            f"conjugate gradients did not solve the Newton system in {info} iterations "
            f"({m} models); the comparison graph may be very badly conditioned"
        )
    return np.asarray(x, dtype=np.float64)


def _check_mle_exists(pairs: PairTotals, models: tuple[str, ...]) -> None:
    """Without a penalty the MLE is finite only if the 'scored against' graph is strongly
    connected (Zermelo/Ford): otherwise some group never lost to the rest."""
    m = len(models)
    fwd = pairs.score > 0  # i scored (won or tied) against j
    back = pairs.total - pairs.score > 0
    rows = np.concatenate([pairs.i[fwd], pairs.j[back]])
    cols = np.concatenate([pairs.j[fwd], pairs.i[back]])
    graph = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(m, m))
    n_comp, labels = connected_components(graph, directed=True, connection="strong")
    if n_comp > 1:
        sizes = np.bincount(labels)
        small = labels == int(np.argmin(sizes))
        names = ", ".join(models[k] for k in np.flatnonzero(small)[:5])
        raise ConvergenceError(
            f"no finite maximum-likelihood ratings with l2=0: some models never lost (or never "
            f"won) against the rest (e.g. {names}); use l2 > 0"
        )


def covariance(
    fit: BTFit, counts: Counts, kind: str = "sandwich", cluster_by_cells: bool = False
) -> FloatArray:
    """Covariance of the mean-centred ``theta``.

    Parameters
    ----------
    fit
        The fit (made on ``counts``).
    counts
        The same aggregated battles; for a clustered sandwich they must have been aggregated
        with a cluster column.
    kind
        ``"fisher"`` (inverse observed information) or ``"sandwich"``
        (``H^-1 G H^-1`` with ``G`` the sum of outer products of per-battle scores, or of
        per-cluster summed scores when ``cluster_by_cells``).
    cluster_by_cells
        Use ``counts.cluster`` to sum scores within clusters first (cluster-robust).

    Returns
    -------
    numpy.ndarray
        ``m x m`` covariance on the natural-log scale.

    Raises
    ------
    ValueError
        Unknown ``kind``, clustering asked for on counts without clusters, or more than
        ``MAX_COVARIANCE_MODELS`` models.
    """
    theta = fit.theta
    m = theta.shape[0]
    check_covariance_size(m, kind)
    h = neg_hessian(theta, fit.pairs, fit.l2)
    # The constraint direction (all ones) is not identified; invert on its complement.
    hinv = np.linalg.inv(h + 1.0 / m) - 1.0 / m
    if kind == "fisher":
        fisher: FloatArray = 0.5 * (hinv + hinv.T)
        return fisher
    if kind != "sandwich":
        raise ValueError(f"unknown covariance kind {kind!r} (expected 'fisher' or 'sandwich')")
    p = expit(theta[counts.i] - theta[counts.j])
    resid = A_SCORE[counts.outcome] - p
    if cluster_by_cells:
        if counts.cluster is None:
            raise ValueError("clustered sandwich needs counts aggregated with cluster_by")
        val = counts.weight * resid
        k = counts.n_clusters
        rows = np.concatenate([counts.cluster, counts.cluster])
        cols = np.concatenate([counts.i, counts.j])
        u = sp.csr_matrix((np.concatenate([val, -val]), (rows, cols)), shape=(k, m))
        g_mat = (u.T @ u).toarray()
    else:
        v = counts.weight_sq * resid * resid
        g_mat = np.zeros((m, m))
        np.add.at(g_mat, (counts.i, counts.j), -v)
        np.add.at(g_mat, (counts.j, counts.i), -v)
        g_mat[np.diag_indices(m)] = -g_mat.sum(axis=1)
    cov = hinv @ g_mat @ hinv
    sym: FloatArray = 0.5 * (cov + cov.T)
    return sym


def check_covariance_size(n_models: int, kind: str) -> None:
    """Raise ``ValueError`` when a ``kind`` covariance of ``n_models`` would be too large.

    Raises
    ------
    ValueError
        More than ``MAX_COVARIANCE_MODELS`` models; the message gives the size and the limit.
    """
    if n_models > MAX_COVARIANCE_MODELS:
        gib = 8 * n_models * n_models / 2**30
        raise ValueError(
            f"{kind} intervals need dense {n_models} x {n_models} matrices ({gib:.1f} GiB "
            f"each); the limit is {MAX_COVARIANCE_MODELS} models. Rate without intervals "
            "(ci='none'), or keep fewer models (min_battles)"
        )


def fit_bt_batch(
    pair_i: npt.NDArray[np.int64],
    pair_j: npt.NDArray[np.int64],
    total: FloatArray,
    score: FloatArray,
    theta0: FloatArray,
    *,
    l2: float = DEFAULT_L2,
    tol: float = DEFAULT_TOL,
    max_iter: int = 200,
) -> FloatArray:
    """Fit many Bradley-Terry problems on the same pairs at once (bootstrap rounds).

    Parameters
    ----------
    pair_i, pair_j
        Pair indices (``P``), shared by all problems.
    total, score
        ``R x P`` totals and ``i``-scores, one row per problem.
    theta0
        Warm start (``m``), usually the full-data fit.
    l2, tol, max_iter
        As in :func:`fit_bt`.

    Returns
    -------
    numpy.ndarray
        ``R x m`` mean-centred log-strengths.

    Raises
    ------
    ConvergenceError
        When some rows do not converge.
    """
    r, p_count = total.shape
    m = theta0.shape[0]
    theta = np.tile(theta0 - theta0.mean(), (r, 1))
    # Incidence matrix D (P x m): +1 at i, -1 at j; gradients are resid @ D.
    inc = sp.csr_matrix(
        (
            np.concatenate([np.ones(p_count), -np.ones(p_count)]),
            (np.tile(np.arange(p_count), 2), np.concatenate([pair_i, pair_j])),
        ),
        shape=(p_count, m),
    )
    active = np.arange(r)
    last_step = np.full(r, np.inf)
    diag = np.arange(m)

    def objective(th: FloatArray, rows: npt.NDArray[np.int64]) -> FloatArray:
        d = th[:, pair_i] - th[:, pair_j]
        ll = score[rows] * log_expit(d) + (total[rows] - score[rows]) * log_expit(-d)
        value: FloatArray = ll.sum(axis=1) - 0.5 * l2 * np.einsum("ij,ij->i", th, th)
        return value

    for _ in range(max_iter):
        th = theta[active]
        tot = total[active]
        d = th[:, pair_i] - th[:, pair_j]
        p = expit(d)
        resid = score[active] - tot * p
        g = np.asarray((inc.T @ resid.T).T) - l2 * th
        gnorm = np.linalg.norm(g, axis=1)
        done = (gnorm <= tol) | (last_step[active] <= _STALL)
        if done.all():
            active = active[:0]
            break
        keep = ~done
        active, th, g, p, tot = active[keep], th[keep], g[keep], p[keep], tot[keep]
        v = tot * p * (1.0 - p)
        h = np.zeros((active.size, m, m))
        h[:, pair_i, pair_j] = -v
        h[:, pair_j, pair_i] = -v
        h[:, diag, diag] = -h.sum(axis=2) + l2
        step = _gauge_solve(h, g)
        cand = th + step
        # From a warm start Newton steps are small and safe; only large ones (far from the
        # optimum, or a model drifting off because it lost every resampled battle) are
        # checked against the objective and halved until it does not decrease.
        big = np.abs(step).max(axis=1) > 1.0
        t = np.ones(active.size)
        base = objective(th, active) if big.any() else None
        for _ in range(40 if big.any() else 0):
            assert base is not None
            worse = objective(cand, active) < base - 1e-12 * np.abs(base)
            if not worse.any():
                break
            t[worse] *= 0.5
            cand[worse] = th[worse] + t[worse, None] * step[worse]
        last_step[active] = np.abs(cand - th).max(axis=1)
        theta[active] = cand
    if active.size:
        raise ConvergenceError(
            f"{active.size} of {r} bootstrap fits did not converge in {max_iter} iterations"
        )
    centred: FloatArray = theta - theta.mean(axis=1, keepdims=True)
    return centred
