"""Per-voter, per-model evidence of rigging, and how much each voter moves each rating.

The question asked of every voter ``v`` and model ``m`` is: are ``v``'s decisive results for
``m`` (wins when ``m`` played, against whoever it met) more extreme than an honest voter with
a personal taste would produce?  The pieces:

``voter_influence``
    Each voter's per-model score vector ``g_v`` and the one-step leave-voter-out change of
    the log-strengths, ``theta_{-v} - theta ~= -H^{-1} g_v`` (``H`` the observed information;
    the same per-voter terms the clustered sandwich sums).  A voter is tested against the fit
    without their own votes, so a single account that lifts its target is judged against
    the target's honest strength, not the strength it bought.
``cell_tests``
    One cell per (voter, model) with decisive votes.  Honest null: each vote is won by ``m``
    with probability ``expit(eta_k + delta)``, ``eta_k`` the leave-voter-out log-odds and
    ``delta ~ N(0, tau^2)`` the voter's taste for ``m``, with ``tau`` estimated from the whole
    population (:func:`taste_sd`, a median-matching estimate a few attackers cannot move).
    P-values are one-sided in each direction (excess wins, excess losses) and integrate the
    taste over ``delta`` (Gauss-Hermite).  At each ``delta`` the tail of the Poisson-binomial
    count is bounded by the binomial tail with the same mean (Hoeffding 1956), so the
    p-values are conservative where a normal approximation would not be.
``robust_fit``
    The fit the cells are judged against: cells that are extreme at a lenient level are left
    out and the fit redone, a few times.  Many small accounts (sybils) each pull the target up
    only a little, so leaving one out does not undo the pull; trimming every extreme cell at
    once does.
``flag_cells``
    Two tests on the final cells.  Per cell: Holm's step-down over every cell and direction
    that could reach significance (family-wise error rate ``alpha``).  Per model and
    direction (the group test for many small accounts): Benjamini-Hochberg at ``fdr`` among
    that model's cells, on the results alone and on results combined with exposure (how
    many of the voter's battles involve the model).
``robustness``
    For each model, how far its rating moves when its ``k`` most influential voters (each
    direction) are removed, by an exact refit without them.

Pure numpy/scipy; indices are model codes ``0..m-1`` and dense voter codes ``0..V-1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.stats as st
from scipy.special import expit, ndtri_exp

from ratings.bt import DEFAULT_L2, ELO_SCALE, fit_bt, neg_hessian
from ratings.data import A_SCORE, A_WINS, B_WINS, Battles, Counts

__all__ = [
    "CellFlags",
    "CellTests",
    "FitResult",
    "Robustness",
    "cell_tests",
    "fit_theta",
    "flag_cells",
    "robust_fit",
    "robustness",
    "taste_sd",
    "voter_influence",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_GH_NODES = 24  # Gauss-Hermite nodes for the taste integral; 1e-6 relative on test cases
_SCREEN_Z = 1.0  # cells with a plain |z| below this have p > 0.15 and skip the integral
_MIN_TESTABLE = 3  # decisive votes a cell needs to enter a multiple-testing family
_TAU_QUANTILE = 0.5  # match the median: attack cells sit in the upper tail
_CHI2_1_AT_Q = float(st.chi2.ppf(_TAU_QUANTILE, 1))  # 0.4549...
# Cells with fewer decisive votes say little about taste, and their few possible values make
# a quantile jumpy: over ten simulated populations the median over cells of >= 10 votes
# varied by 8.5 Elo (sd), the lower quartile over cells of >= 5 votes by 18.
_TAU_MIN_DECISIVE = 10
_TAU_MIN_DECISIVE_FALLBACK = 5  # when fewer than _TAU_MIN_CELLS cells reach the above
_TAU_MIN_CELLS = 50
_TAU_MAX = 5.0  # a taste sd beyond this (870 Elo) means the data cannot tell


@dataclass(frozen=True, eq=False)
class FitResult:
    """A Bradley-Terry fit on a subset of votes, with what the voter tests need.

    Attributes
    ----------
    theta
        Log-strengths (natural log, mean 0), one per model.
    hinv
        Pseudo-inverse of the observed information on the mean-zero subspace.
    used
        Which votes the fit used.
    """

    theta: FloatArray
    hinv: FloatArray
    used: BoolArray


def fit_theta(
    a: IntArray,
    b: IntArray,
    outcome: npt.NDArray[np.integer],
    n_models: int,
    used: BoolArray | None = None,
    l2: float = DEFAULT_L2,
) -> FitResult:
    """Bradley-Terry fit on the votes in ``used`` (all models kept, in their codes).

    Parameters
    ----------
    a, b, outcome
        Model codes and outcome code per vote (``ratings.data`` codes).
    n_models
        Number of models (codes ``0..n_models-1``).
    used
        Votes to fit on (default: all).
    l2
        Ridge penalty (keeps a model left without votes finite).

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        No votes to fit on.
    ratings.ConvergenceError
        The fit did not converge.
    """
    mask = np.ones(a.shape[0], dtype=bool) if used is None else used
    if not mask.any():
        raise ValueError("no votes left to fit")
    models = tuple(str(k) for k in range(n_models))
    # The plain constructor keeps every model code (select() would drop unused ones).
    battles = Battles(models, a[mask], b[mask], outcome[mask].astype(np.int8))
    fit = fit_bt(battles.aggregate(), l2=max(l2, DEFAULT_L2))
    h = neg_hessian(fit.theta, fit.pairs, fit.l2)
    m = n_models
    hinv = np.linalg.inv(h + 1.0 / m) - 1.0 / m
    return FitResult(fit.theta, 0.5 * (hinv + hinv.T), mask)


def voter_influence(
    a: IntArray,
    b: IntArray,
    outcome: npt.NDArray[np.integer],
    voter: IntArray,
    n_voters: int,
    fit: FitResult,
) -> FloatArray:
    """One-step leave-voter-out change of the log-strengths, per voter.

    Parameters
    ----------
    a, b, outcome, voter
        Per vote: model codes, outcome code, voter code.
    n_voters
        Number of voter codes.
    fit
        The fit (only the votes it used contribute: a voter's left-out votes already have
        no pull on it).

    Returns
    -------
    numpy.ndarray
        ``n_voters x m``: ``theta_{-v} - theta`` (natural-log units), ``-H^{-1} g_v``.
    """
    m = fit.theta.shape[0]
    u = fit.used
    resid = A_SCORE[outcome[u]] - expit(fit.theta[a[u]] - fit.theta[b[u]])
    g = np.bincount(voter[u] * m + a[u], resid, n_voters * m) - np.bincount(
        voter[u] * m + b[u], resid, n_voters * m
    )
    g = g.reshape(n_voters, m)
    out: FloatArray = -(g @ fit.hinv)
    return out


@dataclass(frozen=True, eq=False)
class CellTests:
    """The (voter, model) cells and their tests.

    Attributes
    ----------
    voter, model
        Codes of each cell.
    n
        Decisive votes of the voter in battles of the model.
    wins
        How many of them the model won.
    expected
        Expected wins under the leave-voter-out fit (no taste).
    info
        ``sum p (1 - p)`` over those votes (the variance without taste).
    log_p_high, log_p_low
        Natural log of the one-sided p-values for excess wins and for excess losses, under
        the honest-taste null.
    log_min_high, log_min_low
        The smallest values those p-values could take for these battles (all won, all lost):
        a cell of two votes can never be significant, and leaving it out of the multiple-
        testing family (Tarone 1990; Gilbert 2005) costs the real tests nothing.
    log_p_exposure
        Log p-value for the voter's battles involving the model being more than chance
        gives: in anonymous battles a voter cannot pick the models, only whether to vote,
        so an account that votes mostly when one model plays has recognised it.  Used only
        to sharpen the group test, never to flag on its own.
    tau
        Taste standard deviation used (natural-log strength units).
    """

    voter: IntArray
    model: IntArray
    n: IntArray
    wins: FloatArray
    expected: FloatArray
    info: FloatArray
    log_p_high: FloatArray
    log_p_low: FloatArray
    log_min_high: FloatArray
    log_min_low: FloatArray
    log_p_exposure: FloatArray
    tau: float

    def z(self, direction: int) -> FloatArray:
        """Normal-equivalent statistic of the one-sided test (+1 wins, -1 losses)."""
        lp = self.log_p_high if direction > 0 else self.log_p_low
        out: FloatArray = -ndtri_exp(np.minimum(lp, -1e-300))
        return out


def _cell_rows(
    a: IntArray,
    b: IntArray,
    outcome: npt.NDArray[np.integer],
    voter: IntArray,
    theta: FloatArray,
    delta: FloatArray,
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Per decisive vote and side: cell key (voter*m+model), log-odds of that side, win (0/1)."""
    m = theta.shape[0]
    dec = (outcome == A_WINS) | (outcome == B_WINS)
    va, vb, vv = a[dec], b[dec], voter[dec]
    ta = theta[va] + delta[vv, va]
    tb = theta[vb] + delta[vv, vb]
    wa = (outcome[dec] == A_WINS).astype(np.float64)
    key = np.concatenate([vv * m + va, vv * m + vb])
    eta = np.concatenate([ta - tb, tb - ta])
    win = np.concatenate([wa, 1.0 - wa])
    return key.astype(np.int64), eta, win


def taste_sd(n: IntArray, wins: FloatArray, expected: FloatArray, info: FloatArray) -> float:
    """Population standard deviation of per-(voter, model) taste, robustly.

    Each cell's one-step estimate of its taste offset, ``(wins - expected) / info``, has
    sampling variance ``1 / info``; with taste its variance is ``1 / info + tau^2``.  ``tau``
    is chosen so that the median of ``offset^2 / (1 / info + tau^2)`` over cells with at least
    10 decisive votes is that of a chi-square with one degree of freedom: a median, so the
    extreme cells of an attack do not inflate the taste allowance that would hide them (the
    reference fit is trimmed first, so a large attack does not make honest cells look extreme).

    Parameters
    ----------
    n, wins, expected, info
        Per cell, as in :class:`CellTests`.

    Returns
    -------
    float
        ``tau`` (natural-log strength units; 0 when the cells show no excess spread).
    """
    ok = (n >= _TAU_MIN_DECISIVE) & (info > 0)
    if ok.sum() < _TAU_MIN_CELLS:
        ok = (n >= _TAU_MIN_DECISIVE_FALLBACK) & (info > 0)
    if ok.sum() < 20:
        return 0.0
    off2 = ((wins[ok] - expected[ok]) / info[ok]) ** 2
    var0 = 1.0 / info[ok]

    def excess(t2: float) -> float:
        return float(np.quantile(off2 / (var0 + t2), _TAU_QUANTILE)) - _CHI2_1_AT_Q

    if excess(0.0) <= 0:
        return 0.0
    lo, hi = 0.0, _TAU_MAX**2
    if excess(hi) > 0:
        return _TAU_MAX
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if excess(mid) > 0 else (lo, mid)
    return math.sqrt(hi)


def cell_tests(
    a: IntArray,
    b: IntArray,
    outcome: npt.NDArray[np.integer],
    voter: IntArray,
    n_voters: int,
    fit: FitResult,
    *,
    tau: float | None = None,
) -> CellTests:
    """Test every (voter, model) cell against the leave-voter-out fit with honest taste.

    Parameters
    ----------
    a, b, outcome, voter
        Per vote: model codes, outcome code, voter code (dense ``0..n_voters-1``).
    n_voters
        Number of voter codes.
    fit
        The fit to judge against (see :func:`robust_fit`).
    tau
        Taste standard deviation; default estimated by :func:`taste_sd`.

    Returns
    -------
    CellTests
        Cells with at least one decisive vote.
    """
    theta = fit.theta
    m = theta.shape[0]
    delta = voter_influence(a, b, outcome, voter, n_voters, fit)
    key, eta, win = _cell_rows(a, b, outcome, voter, theta, delta)
    cells, inv = np.unique(key, return_inverse=True)
    inv = inv.reshape(-1)
    k = cells.size
    p = expit(eta)
    n = np.bincount(inv, minlength=k).astype(np.int64)
    wins = np.bincount(inv, win, k).astype(np.float64)
    expected = np.bincount(inv, p, k).astype(np.float64)
    info = np.bincount(inv, p * (1.0 - p), k).astype(np.float64)
    if tau is None:
        tau = taste_sd(n, wins, expected, info)
    x, w = np.polynomial.hermite.hermgauss(_GH_NODES)
    shifts = math.sqrt(2.0) * tau * x if tau > 0 else np.zeros(1)
    logw = np.log(w / math.sqrt(math.pi)) if tau > 0 else np.zeros(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z0 = np.where(info > 0, (wins - expected) / np.sqrt(info), 0.0)
    # Only cells that can matter are integrated: those off the mean (for their p-values) and
    # those with enough votes to reach a small p at all (for the smallest attainable p; a
    # cell of one or two votes is left out of every family).  Accumulating over the nodes
    # with logaddexp keeps memory at a few arrays of the selected cells.
    hot = np.abs(z0) >= _SCREEN_Z
    big = n >= _MIN_TESTABLE
    chosen = np.flatnonzero(hot | big)
    log_hi = np.zeros(k)
    log_lo = np.zeros(k)
    log_min_hi = np.zeros(k)
    log_min_lo = np.zeros(k)
    if chosen.size:
        remap = np.full(k, -1, dtype=np.int64)
        remap[chosen] = np.arange(chosen.size)
        row_cell = remap[inv]
        sel = row_cell >= 0
        rows, eta_sel = row_cell[sel], eta[sel]
        nc, oc = n[chosen].astype(np.float64), wins[chosen]
        acc = np.full((4, chosen.size), -np.inf)
        for d, lw in zip(shifts, logw, strict=True):
            pbar = np.clip(np.bincount(rows, expit(eta_sel + d), chosen.size) / nc, 1e-300, 1.0)
            qbar = np.clip(1.0 - pbar, 1e-300, 1.0)
            # Hoeffding: beyond the mean, the Poisson-binomial tail is at most the binomial
            # tail with the same mean -- a conservative p-value at every taste value.
            acc[0] = np.logaddexp(acc[0], lw + st.binom.logsf(oc - 1, nc, pbar))
            acc[1] = np.logaddexp(acc[1], lw + st.binom.logcdf(oc, nc, pbar))
            acc[2] = np.logaddexp(acc[2], lw + nc * np.log(pbar))
            acc[3] = np.logaddexp(acc[3], lw + nc * np.log(qbar))
        acc = np.minimum(acc, 0.0)
        h = hot[chosen]
        log_hi[chosen[h]], log_lo[chosen[h]] = acc[0][h], acc[1][h]
        g = big[chosen]
        log_min_hi[chosen[g]], log_min_lo[chosen[g]] = acc[2][g], acc[3][g]
    # Exposure: of the voter's votes (ties too), how many involve the model, against the
    # model's share of all battles.
    nv_all = np.bincount(voter, minlength=n_voters).astype(np.float64)
    share = (np.bincount(a, minlength=m) + np.bincount(b, minlength=m)) / max(a.shape[0], 1)
    keys_all = np.concatenate([voter * m + a, voter * m + b])
    involved = np.bincount(np.searchsorted(cells, keys_all[np.isin(keys_all, cells)]), None, k)
    cv, cm = cells // m, cells % m
    log_exp = np.minimum(st.binom.logsf(involved - 1, nv_all[cv], share[cm]), 0.0)
    return CellTests(
        voter=(cells // m).astype(np.int64),
        model=(cells % m).astype(np.int64),
        n=n,
        wins=wins,
        expected=expected,
        info=info,
        log_p_high=log_hi,
        log_p_low=log_lo,
        log_min_high=log_min_hi,
        log_min_low=log_min_lo,
        log_p_exposure=log_exp,
        tau=float(tau),
    )


def robust_fit(
    a: IntArray,
    b: IntArray,
    outcome: npt.NDArray[np.integer],
    voter: IntArray,
    n_voters: int,
    n_models: int,
    *,
    trim: float = 0.005,
    rounds: int = 5,
    l2: float = DEFAULT_L2,
) -> tuple[FitResult, CellTests]:
    """Fit, leave out every extreme (voter, model) cell, refit; repeat.

    Parameters
    ----------
    a, b, outcome, voter
        Per vote.
    n_voters, n_models
        Code ranges.
    trim
        One-sided p-value (without taste) at or below which a cell's votes with that model
        are left out of the next fit.  Honest cells are trimmed about equally in both
        directions, so the fit moves little for them.
    rounds
        At most this many refits (fewer when the trimmed set stops changing).
    l2
        Ridge penalty.

    Returns
    -------
    fit : FitResult
        The last fit.
    cells : CellTests
        The cells judged against it (all votes, trimmed or not, are tested).
    """
    fit = fit_theta(a, b, outcome, n_models, l2=l2)
    log_trim = math.log(trim)
    dropped = np.zeros(a.shape[0], dtype=bool)
    for _ in range(rounds):
        # Trimming judges cells without taste (tau = 0): a large attack pollutes the fit, the
        # polluted fit makes honest cells look like strong taste, and a taste allowance
        # estimated from them would hide the attack that caused it.
        plain = cell_tests(a, b, outcome, voter, n_voters, fit, tau=0.0)
        bad = (plain.log_p_high <= log_trim) | (plain.log_p_low <= log_trim)
        bad_keys = np.zeros(n_voters * n_models, dtype=bool)
        bad_keys[plain.voter[bad] * n_models + plain.model[bad]] = True
        drop = bad_keys[voter * n_models + a] | bad_keys[voter * n_models + b]
        if drop.all() or np.array_equal(drop, dropped):
            break
        dropped = drop
        fit = fit_theta(a, b, outcome, n_models, used=~drop, l2=l2)
    cells = cell_tests(a, b, outcome, voter, n_voters, fit)
    return fit, cells


@dataclass(frozen=True, eq=False)
class CellFlags:
    """Cells flagged by :func:`flag_cells`.

    Attributes
    ----------
    cell
        Index into the :class:`CellTests` arrays.
    direction
        ``+1`` excess wins for the cell's model, ``-1`` excess losses.
    test
        ``"voter_model"`` (Holm over all cells) or ``"model_group"`` (BH within a model
        whose cells are extreme more often than chance).
    log_p
        The cell's one-sided log p-value.
    """

    cell: IntArray
    direction: IntArray
    test: npt.NDArray[np.str_]
    log_p: FloatArray


def _tarone_holm(log_p: FloatArray, log_min: FloatArray, alpha: float) -> BoolArray:
    """Holm's step-down over the tests that can reach significance (Tarone's family)."""
    sorted_min = np.sort(log_min)
    family_size = log_p.size
    for kk in range(1, log_p.size + 1):
        # Tests whose smallest attainable p is <= alpha / kk; the first kk with at most kk of
        # them fixes the family (Tarone 1990).
        if np.searchsorted(sorted_min, math.log(alpha / kk), side="right") <= kk:
            family_size = kk
            break
    family = np.flatnonzero(log_min <= math.log(alpha / family_size))
    out = np.zeros(log_p.size, dtype=bool)
    if family.size:
        out[family] = _holm(log_p[family], alpha)
    return out


def _holm(log_p: FloatArray, alpha: float) -> BoolArray:
    order = np.argsort(log_p, kind="stable")
    m = log_p.size
    thresholds = np.log(alpha) - np.log(m - np.arange(m))
    ok = log_p[order] <= thresholds
    n_rej = m if ok.all() else int(np.argmin(ok))
    out = np.zeros(m, dtype=bool)
    out[order[:n_rej]] = True
    return out


def _bh(log_p: FloatArray, q: float) -> BoolArray:
    order = np.argsort(log_p, kind="stable")
    m = log_p.size
    thresholds = np.log(q) + np.log(np.arange(1, m + 1) / m)
    ok = np.flatnonzero(log_p[order] <= thresholds)
    out = np.zeros(m, dtype=bool)
    if ok.size:
        out[order[: ok[-1] + 1]] = True
    return out


def flag_cells(
    cells: CellTests,
    *,
    group: bool = True,
    use_exposure: bool = True,
    alpha: float = 0.01,
    screen: float = 0.01,
    screen_exposure: float = 0.05,
    fdr: float = 0.02,
    min_group: int = 3,
) -> CellFlags:
    """Flag cells: Holm per cell, then the per-model group test with BH.

    Parameters
    ----------
    cells
        From :func:`cell_tests`.
    group
        Run the per-model group test too (``False``: only the per-cell test).
    use_exposure
        Also run the group test on Fisher's combination of each cell's result p-value and
        its exposure p-value (independent under the honest null); a cell must still reach
        ``screen_exposure`` on its results alone.
    alpha
        Family-wise error rate of the per-cell test over all cells and both directions.
    screen
        A cell enters the results-only group test if it could reach one-sided
        ``p <= screen``, and is flagged only if it does.
    screen_exposure
        The same bound on the results for the exposure-combined group test.
    fdr
        False-discovery rate of each Benjamini-Hochberg step (one per model and direction).
    min_group
        The group test flags a model's cells only when it finds at least this many: two
        honest voters who both dislike a model are not a sybil group.

    Returns
    -------
    CellFlags
    """
    k = cells.n.size
    both = np.concatenate([cells.log_p_high, cells.log_p_low])
    direction = np.concatenate([np.ones(k, np.int64), -np.ones(k, np.int64)])
    idx = np.concatenate([np.arange(k), np.arange(k)])
    out_cell: list[IntArray] = []
    out_dir: list[IntArray] = []
    out_test: list[str] = []
    out_lp: list[FloatArray] = []
    if k == 0:
        return CellFlags(np.zeros(0, np.int64), np.zeros(0, np.int64), np.array([]), np.zeros(0))
    both_min = np.concatenate([cells.log_min_high, cells.log_min_low])
    holm = _tarone_holm(both, both_min, alpha)
    out_cell.append(idx[holm])
    out_dir.append(direction[holm])
    out_lp.append(both[holm])
    out_test += ["voter_model"] * int(holm.sum())
    if not group:
        return CellFlags(idx[holm], direction[holm], np.array(out_test, dtype=str), both[holm])
    n_models = int(cells.model.max()) + 1
    log_screen = math.log(screen)
    log_screen_exp = math.log(screen_exposure)
    for mdl in range(n_models):
        for dsign, lp_all, lmin in (
            (1, cells.log_p_high, cells.log_min_high),
            (-1, cells.log_p_low, cells.log_min_low),
        ):
            in_model = np.flatnonzero(cells.model == mdl)
            lp = lp_all[in_model]
            # Results alone, among the cells that could reach the screen level (Gilbert 2005).
            family = lmin[in_model] <= log_screen
            found = np.zeros(in_model.size, dtype=bool)
            found[family] = _bh(lp[family], fdr) & (lp[family] <= log_screen)
            if use_exposure:
                # Results and exposure together (Fisher), over every cell of the model.
                fisher = -2.0 * (lp + cells.log_p_exposure[in_model])
                combined = np.minimum(st.chi2.logsf(fisher, 4), 0.0)
                found |= _bh(combined, fdr) & (lp <= log_screen_exp)
            already = np.isin(in_model, idx[holm & (direction == dsign)])
            new = found & ~already
            if new.sum() < min_group:
                continue  # one or two accounts are not a group: the per-cell test judges them
            out_cell.append(in_model[new])
            out_dir.append(np.full(int(new.sum()), dsign, np.int64))
            out_lp.append(lp[new])
            out_test += ["model_group"] * int(new.sum())
    return CellFlags(
        np.concatenate(out_cell),
        np.concatenate(out_dir),
        np.array(out_test, dtype=str),
        np.concatenate(out_lp),
    )


def _fit_without(full: Counts, removed: Battles, l2: float) -> FloatArray:
    """Refit on ``full`` minus ``removed``: the likelihood is a sum over cells, so the removed
    voters' cells enter with negative weight (no re-aggregation of the whole log)."""
    gone = removed.aggregate()
    cat = np.concatenate
    counts = Counts(
        models=full.models,
        i=cat([full.i, gone.i]),
        j=cat([full.j, gone.j]),
        outcome=cat([full.outcome, gone.outcome]),
        n=cat([full.n, gone.n]),
        weight=cat([full.weight, -gone.weight]),
        weight_sq=cat([full.weight_sq, gone.weight_sq]),
    )
    theta: FloatArray = fit_bt(counts, l2=max(l2, DEFAULT_L2)).theta
    return theta


@dataclass(frozen=True, eq=False)
class Robustness:
    """How much a model's rating rests on a few voters.

    Attributes
    ----------
    k
        Voters removed per direction.
    drop, lift
        Rating change (Elo points) when the ``k`` voters who lift the model most (``drop``,
        usually negative) or hold it down most (``lift``, usually positive) are removed,
        by an exact refit.
    approx_drop, approx_lift
        The same from the one-step influences (what chose the voters).
    top_voters
        Codes of the ``k`` voters who lift the model most.
    """

    k: int
    drop: FloatArray
    lift: FloatArray
    approx_drop: FloatArray
    approx_lift: FloatArray
    top_voters: IntArray

    @property
    def worst(self) -> FloatArray:
        """Largest absolute move per model (Elo points)."""
        out: FloatArray = np.maximum(np.abs(self.drop), np.abs(self.lift))
        return out


def robustness(
    a: IntArray,
    b: IntArray,
    outcome: npt.NDArray[np.integer],
    voter: IntArray,
    n_voters: int,
    n_models: int,
    *,
    k: int = 5,
    l2: float = DEFAULT_L2,
) -> Robustness:
    """Per model: the rating move when its ``k`` most influential voters are removed.

    Influence of voter ``v`` on model ``m`` is the one-step leave-voter-out change of
    ``m``'s centred rating (:func:`voter_influence`).  The ``k`` voters with the most
    negative change (those whose votes lift ``m``) are removed together and the fit redone;
    likewise for the ``k`` with the most positive change.

    Parameters
    ----------
    a, b, outcome, voter
        Per vote.
    n_voters, n_models
        Code ranges.
    k
        Voters removed per direction (>= 1).
    l2
        Ridge penalty.

    Returns
    -------
    Robustness

    Raises
    ------
    ValueError
        ``k < 1``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    fit = fit_theta(a, b, outcome, n_models, l2=l2)
    delta = voter_influence(a, b, outcome, voter, n_voters, fit) * ELO_SCALE
    kk = min(k, n_voters)
    drop = np.zeros(n_models)
    lift = np.zeros(n_models)
    adrop = np.zeros(n_models)
    alift = np.zeros(n_models)
    tops = np.zeros((n_models, kk), dtype=np.int64)
    base = fit.theta * ELO_SCALE
    models = tuple(str(i) for i in range(n_models))
    full = Battles(models, a, b, outcome.astype(np.int8)).aggregate()
    by_voter = np.argsort(voter, kind="stable")
    bounds = np.searchsorted(voter[by_voter], np.arange(n_voters + 1))
    for mdl in range(n_models):
        col = delta[:, mdl]
        order = np.argsort(col, kind="stable")
        for sign, chosen in ((-1, order[:kk]), (1, order[::-1][:kk])):
            approx = float(col[chosen].sum())
            rows = np.concatenate([by_voter[bounds[v] : bounds[v + 1]] for v in chosen])
            exact = approx
            if rows.size < a.shape[0]:
                theta = _fit_without(full, Battles(models, a[rows], b[rows],
                                                   outcome[rows].astype(np.int8)), l2)  # fmt: skip
                exact = float(theta[mdl] * ELO_SCALE - base[mdl])
            if sign < 0:
                drop[mdl], adrop[mdl] = exact, approx
                tops[mdl] = chosen
            else:
                lift[mdl], alift[mdl] = exact, approx
    return Robustness(kk, drop, lift, adrop, alift, tops)
