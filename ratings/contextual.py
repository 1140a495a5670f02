"""Contextual (style-controlled) Bradley-Terry: model strengths plus style covariates.

Model: ``P(a beats b) = expit(theta_a - theta_b + x . beta)`` where ``x`` holds, per battle,
one standardised feature per style dimension.  The feature is LMArena's: for counts ``u`` on
side a and ``v`` on side b, ``(u - v) / (u + v + 1)``, then standardised over the battles
(minus the mean, divided by the standard deviation; a constant feature is left unscaled).
With the style effect absorbed by ``beta``, ``theta`` is what a model wins on other than
length and markdown.

Ties score half a win, as in :mod:`ratings.bt`.  The features differ per battle, so there is
no aggregation to pair counts: the fit is a Newton solve over ``m + f`` parameters whose
gradient and Hessian are built with ``bincount`` passes over the battles (a few tens of
milliseconds per pass at 1.8M battles), converged to a gradient norm of ``tol``.

Penalties (in units of the summed log-likelihood): ``l2 / 2 * |theta|^2`` as in plain BT
(keeps undefeated models finite, centres theta) and ``style_l2 / 2 * |beta|^2``.  arena-rank's
``reg`` is on the *mean* log-likelihood, so ``style_l2 = reg * n_battles`` reproduces it.

Intervals: the sandwich ``H^-1 G H^-1`` (``G`` summed per battle, or per cluster) covers
ratings and coefficients jointly; the bootstrap resamples battles (or whole clusters) and
refits each round from the full-data fit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.special import expit, log_expit
from threadpoolctl import threadpool_limits

from ratings.bt import DEFAULT_L2, DEFAULT_TOL, ConvergenceError

__all__ = [
    "ContextualData",
    "ContextualFit",
    "contextual_bootstrap",
    "contextual_covariance",
    "contextual_gradient",
    "contextual_log_likelihood",
    "contextual_neg_hessian",
    "fit_contextual",
    "style_features",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ProgressFactory = Callable[[int], object]

_STALL = 1e-13  # a Newton step this small means rounding, not the optimiser, is the limit
_WORKERS = min(2, os.cpu_count() or 1)


def style_features(style: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """LMArena's style features from per-side counts, standardised.

    Parameters
    ----------
    style
        ``n x f x 2`` non-negative counts: ``[:, k, 0]`` side a, ``[:, k, 1]`` side b.

    Returns
    -------
    x : numpy.ndarray
        ``n x f`` standardised features ``((u - v) / (u + v + 1) - mean) / std``.
    mean, std : numpy.ndarray
        The standardisation used (``std`` is 1 for a constant feature).

    Raises
    ------
    ValueError
        Wrong shape, or negative or non-finite counts.
    """
    s = np.asarray(style, dtype=np.float64)
    if s.ndim != 3 or s.shape[2] != 2:
        raise ValueError(f"style counts must be n x f x 2, got shape {s.shape}")
    if not np.isfinite(s).all() or (s < 0).any():
        raise ValueError("style counts must be finite and >= 0")
    u, v = s[:, :, 0], s[:, :, 1]
    raw = (u - v) / (u + v + 1.0)
    mean = raw.mean(axis=0)
    std = raw.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (raw - mean) / std, mean, std


@dataclass(frozen=True, eq=False)
class ContextualData:
    """Battles as the contextual fit sees them (one row per battle, never aggregated).

    Attributes
    ----------
    n_models
        Number of models; ``a`` and ``b`` index them.
    a, b
        Model indices per battle.
    score
        Score of side a (1, 0 or 0.5).
    weight
        Battle weights.
    x
        ``n x f`` standardised style features.
    cluster
        Optional dense cluster codes per battle (for the clustered sandwich and bootstrap).
    """

    n_models: int
    a: IntArray
    b: IntArray
    score: FloatArray
    weight: FloatArray
    x: FloatArray
    cluster: IntArray | None = None

    @property
    def n_features(self) -> int:
        return int(self.x.shape[1])

    @cached_property
    def pair_key(self) -> IntArray:
        """``min(a, b) * m + max(a, b)`` per battle (the rating block is orientation-free)."""
        m = self.n_models
        return np.minimum(self.a, self.b) * m + np.maximum(self.a, self.b)

    @cached_property
    def incidence(self) -> sp.csr_matrix:
        """``n x m`` sparse matrix with +1 at ``a`` and -1 at ``b`` in each battle's row."""
        n = self.a.shape[0]
        rows = np.concatenate([np.arange(n), np.arange(n)])
        vals = np.concatenate([np.ones(n), -np.ones(n)])
        cols = np.concatenate([self.a, self.b])
        # Transposed once here: D^T @ (n x f) is then a row-major sparse product.
        return sp.csr_matrix((vals, (cols, rows)), shape=(self.n_models, n))

    def __post_init__(self) -> None:
        n = self.a.shape[0]
        if self.x.ndim != 2 or self.x.shape[0] != n:
            raise ValueError(f"features must be {n} x f, got shape {self.x.shape}")
        for name in ("b", "score", "weight"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have one value per battle ({n})")


@dataclass(frozen=True, eq=False)
class ContextualFit:
    """A converged contextual BT fit: ``theta`` (mean-centred) and ``beta``."""

    theta: FloatArray
    beta: FloatArray
    l2: float
    style_l2: float
    iterations: int
    grad_norm: float

    @property
    def params(self) -> FloatArray:
        return np.concatenate([self.theta, self.beta])


def _eta(params: FloatArray, data: ContextualData) -> FloatArray:
    m = data.n_models
    return params[data.a] - params[data.b] + data.x @ params[m:]


def _ll_terms(eta: FloatArray, data: ContextualData) -> float:
    # s log expit(eta) + (1 - s) log expit(-eta) = s * eta + log expit(-eta): one log pass.
    return float(np.dot(data.weight, data.score * eta + log_expit(-eta)))


def _penalty(params: FloatArray, m: int, l2: float, style_l2: float) -> float:
    th, be = params[:m], params[m:]
    return 0.5 * l2 * float(np.dot(th, th)) + 0.5 * style_l2 * float(np.dot(be, be))


def _grad_from(
    resid: FloatArray, params: FloatArray, data: ContextualData, l2: float, style_l2: float
) -> FloatArray:
    m = data.n_models
    g_theta = np.bincount(data.a, resid, m) - np.bincount(data.b, resid, m)
    g_beta = data.x.T @ resid
    return np.concatenate([g_theta - l2 * params[:m], g_beta - style_l2 * params[m:]])


def _hess_from(v: FloatArray, data: ContextualData, l2: float, style_l2: float) -> FloatArray:
    rr, rx, xx = _blocks(data, v)
    m, f = data.n_models, data.n_features
    rr[np.diag_indices(m)] += l2
    xx[np.diag_indices(f)] += style_l2
    return np.block([[rr, rx], [rx.T, xx]])


def contextual_log_likelihood(
    params: FloatArray, data: ContextualData, l2: float = DEFAULT_L2, style_l2: float = 0.0
) -> float:
    """Penalised log-likelihood (summed over battles) at ``params = [theta, beta]``.

    Parameters
    ----------
    params
        ``m + f`` parameters.
    data
        The battles.
    l2, style_l2
        Ridge penalties on ``theta`` and ``beta``.

    Returns
    -------
    float
    """
    eta = _eta(params, data)
    return _ll_terms(eta, data) - _penalty(params, data.n_models, l2, style_l2)


def contextual_gradient(
    params: FloatArray, data: ContextualData, l2: float = DEFAULT_L2, style_l2: float = 0.0
) -> FloatArray:
    """Gradient of :func:`contextual_log_likelihood`."""
    resid = data.weight * (data.score - expit(_eta(params, data)))
    return _grad_from(resid, params, data, l2, style_l2)


def _blocks(data: ContextualData, v: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Sum over battles of ``v * z z^T`` with ``z = [e_a - e_b, x]``: the three blocks."""
    m = data.n_models
    # Rating block: a Laplacian of per-pair sums (orientation does not matter to it).
    pair = np.bincount(data.pair_key, v, m * m).reshape(m, m).astype(np.float64)
    rr: FloatArray = -(pair + pair.T)
    rr[np.diag_indices(m)] = -rr.sum(axis=1)
    vx = data.x * v[:, None]
    rx = np.asarray(data.incidence @ vx)
    xx = data.x.T @ vx
    return rr, rx, xx


def contextual_neg_hessian(
    params: FloatArray, data: ContextualData, l2: float = DEFAULT_L2, style_l2: float = 0.0
) -> FloatArray:
    """Negative Hessian of :func:`contextual_log_likelihood`, ``(m + f) x (m + f)``."""
    p = expit(_eta(params, data))
    return _hess_from(data.weight * p * (1.0 - p), data, l2, style_l2)


def _gauge(data: ContextualData) -> FloatArray:
    """Projector on the unidentified directions: all ratings up by one (beta unchanged), and
    the coefficient of a feature that is zero in every battle (e.g. no answer had a header),
    which the data say nothing about; its estimate stays 0 with zero variance."""
    m, f = data.n_models, data.n_features
    e = np.zeros((m + f, m + f))
    e[:m, :m] = 1.0 / m
    dead = np.flatnonzero(~np.any(data.x != 0, axis=0))
    e[m + dead, m + dead] = 1.0
    return e


def fit_contextual(
    data: ContextualData,
    *,
    l2: float = DEFAULT_L2,
    style_l2: float = 0.0,
    tol: float = DEFAULT_TOL,
    max_iter: int = 100,
    params0: FloatArray | None = None,
) -> ContextualFit:
    """Fit contextual Bradley-Terry by damped Newton iterations.

    Parameters
    ----------
    data
        The battles and their style features.
    l2, style_l2
        Ridge penalties on ``theta`` and ``beta`` (>= 0; summed-log-likelihood units).
    tol
        Stop when the gradient norm is at most this (or a step moves nothing by 1e-13).
    max_iter
        Give up after this many Newton steps.
    params0
        Starting point ``[theta, beta]`` (default zeros).

    Returns
    -------
    ContextualFit

    Raises
    ------
    ValueError
        Negative penalties or no battle with positive weight.
    ConvergenceError
        The tolerance was not reached in ``max_iter`` steps.
    """
    if l2 < 0 or style_l2 < 0:
        raise ValueError(f"penalties must be >= 0, got l2={l2}, style_l2={style_l2}")
    if float(data.weight.sum()) <= 0:
        raise ValueError("no battles with positive weight to fit")
    m, f = data.n_models, data.n_features
    params = np.zeros(m + f) if params0 is None else np.array(params0, dtype=np.float64)
    params[:m] -= params[:m].mean()
    gauge = _gauge(data)
    # eta is linear in the parameters: a step's eta is eta + t * (change of eta), so each
    # Newton iteration costs one pass for the step, one per line-search try, and the
    # gradient and Hessian passes -- never a recomputation of eta from scratch.
    eta = _eta(params, data)
    obj = _ll_terms(eta, data) - _penalty(params, m, l2, style_l2)
    gnorm = math.inf
    last_step = math.inf
    for it in range(1, max_iter + 1):
        p = expit(eta)
        g = _grad_from(data.weight * (data.score - p), params, data, l2, style_l2)
        gnorm = float(np.linalg.norm(g))
        if gnorm <= tol or last_step <= _STALL:
            theta = params[:m] - params[:m].mean()
            return ContextualFit(theta, params[m:].copy(), l2, style_l2, it - 1, gnorm)
        h = _hess_from(data.weight * p * (1.0 - p), data, l2, style_l2)
        step = np.linalg.solve(h + gauge, g)
        d_eta = _eta(np.asarray(step, dtype=np.float64), data)
        t = 1.0
        for _ in range(40):
            cand = params + t * step
            cand_eta = eta + t * d_eta
            cand_obj = _ll_terms(cand_eta, data) - _penalty(cand, m, l2, style_l2)
            if cand_obj >= obj - 1e-12 * abs(obj):
                break
            t *= 0.5
        last_step = float(np.abs(cand - params).max())
        params, obj, eta = cand, cand_obj, cand_eta
    raise ConvergenceError(
        f"contextual Bradley-Terry fit did not converge in {max_iter} iterations "
        f"(gradient norm {gnorm:.3g} > tol {tol:g})"
    )


def contextual_covariance(
    fit: ContextualFit, data: ContextualData, clustered: bool = False
) -> FloatArray:
    """Sandwich covariance of ``[theta, beta]`` (theta mean-centred).

    Parameters
    ----------
    fit
        The fit made on ``data``.
    data
        The battles.
    clustered
        Sum the scores within ``data.cluster`` first (cluster-robust).

    Returns
    -------
    numpy.ndarray
        ``(m + f) x (m + f)`` covariance on the natural-log scale.

    Raises
    ------
    ValueError
        ``clustered`` without cluster codes.
    """
    m, f = data.n_models, data.n_features
    params = fit.params
    h = contextual_neg_hessian(params, data, fit.l2, fit.style_l2)
    gauge = _gauge(data)
    hinv = np.linalg.inv(h + gauge) - gauge
    resid = data.weight * (data.score - expit(_eta(params, data)))
    if clustered:
        if data.cluster is None:
            raise ValueError("clustered sandwich needs cluster codes")
        k = int(data.cluster.max()) + 1
        rows = np.concatenate([data.cluster, data.cluster])
        cols = np.concatenate([data.a, data.b])
        u_r = sp.csr_matrix((np.concatenate([resid, -resid]), (rows, cols)), shape=(k, m))
        u_x = np.empty((k, f))
        for j in range(f):
            u_x[:, j] = np.bincount(data.cluster, resid * data.x[:, j], k)
        u = sp.hstack([u_r, sp.csr_matrix(u_x)]).tocsr()
        g_mat = (u.T @ u).toarray()
    else:
        rr, rx, xx = _blocks(data, resid * resid)
        g_mat = np.block([[rr, rx], [rx.T, xx]])
    cov = hinv @ g_mat @ hinv
    sym: FloatArray = 0.5 * (cov + cov.T)
    return sym


def contextual_bootstrap(
    data: ContextualData,
    fit: ContextualFit,
    *,
    rounds: int,
    seed: int,
    clustered: bool = False,
    progress: ProgressFactory | None = None,
) -> FloatArray:
    """Bootstrap replicates of ``[theta, beta]`` (theta mean-centred per round).

    Each round draws battle multiplicities (or cluster multiplicities, with ``clustered``),
    multiplies them into the weights and refits from the full-data fit.  The standardisation
    of the features stays the full data's, so ``beta`` keeps its units.

    Parameters
    ----------
    data
        The battles.
    fit
        The full-data fit (warm start; its penalties are reused).
    rounds
        Number of rounds (>= 1).
    seed
        Seed; the same seed gives the same replicates.
    clustered
        Resample whole clusters (``data.cluster``).
    progress
        Optional progress-bar factory called with ``rounds``.

    Returns
    -------
    numpy.ndarray
        ``rounds x (m + f)`` replicates.

    Raises
    ------
    ValueError
        ``rounds < 1`` or ``clustered`` without cluster codes.
    ConvergenceError
        A round that does not converge.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if clustered and data.cluster is None:
        raise ValueError("clustered bootstrap needs cluster codes")
    n = data.a.shape[0]
    units = int(data.cluster.max()) + 1 if clustered and data.cluster is not None else n
    seeds = np.random.SeedSequence(seed).spawn(rounds)
    out = np.empty((rounds, data.n_models + data.n_features))
    start = fit.params

    def one(r: int) -> None:
        rng = np.random.Generator(np.random.PCG64(seeds[r]))
        mult = np.bincount(rng.integers(0, units, units), minlength=units).astype(np.float64)
        per = mult if not clustered or data.cluster is None else mult[data.cluster]
        boot = ContextualData(
            data.n_models, data.a, data.b, data.score, data.weight * per, data.x, data.cluster
        )
        res = fit_contextual(boot, l2=fit.l2, style_l2=fit.style_l2, params0=start)
        out[r] = res.params

    bar = progress(rounds) if progress is not None else None
    try:
        # Rounds are independent and numpy releases the GIL in its passes; one BLAS thread
        # per worker keeps the two from oversubscribing the cores.
        with (
            threadpool_limits(limits=1, user_api="blas"),
            ThreadPoolExecutor(max_workers=_WORKERS) as pool,
        ):
            for _ in pool.map(one, range(rounds)):
                if bar is not None:
                    bar.update(1)  # type: ignore[attr-defined]
    finally:
        if bar is not None:
            bar.close()  # type: ignore[attr-defined]
    return out
