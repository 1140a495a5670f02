"""The voter tests against rigging, wired to battles, judge keys and group signals.

The statistics live in :mod:`ratings.voters`; this module decides what is tested and what a
flag means for the arena (which exclusion reason it earns).  Tests, in order:

``voter_model``     one (voter, model) cell's wins or losses are beyond honest taste
                    (Holm over all cells and both directions; family-wise rate ``alpha``)
``model_group``     many small accounts are extreme on the same model in the same direction
                    (Benjamini-Hochberg at ``fdr`` among that model's cells)
``address_group``   accounts sharing an address-hash prefix, pooled, are extreme on a model
``time_group``      accounts first seen in the same ``time_window_s``, pooled, are extreme
``agreement``       the older whole-voter test: disagrees with the fit's favourite (z-test)

``voter_model`` and ``agreement`` flags earn ``anomalous_voter``; the group tests earn
``sybil_group``.  docs/integrity.md gives the error rates and what each signal can and cannot
detect.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ratings import Battles, RatingOptions, compute_leaderboard
from ratings.bt import ELO_SCALE

if TYPE_CHECKING:  # ratings.voters pulls in scipy.stats: imported when a test runs, not by
    # `arena --help` (the CLI builds every parser, and this module gives audit its defaults)
    from ratings.voters import CellTests, FitResult

__all__ = [
    "GROUP_TESTS",
    "REASON_OF_TEST",
    "ModelRobustness",
    "RiggingReport",
    "RiggingSettings",
    "VoterFlag",
    "detect_rigging",
    "model_robustness",
]

REASON_OF_TEST = {
    "voter_model": "anomalous_voter",
    "agreement": "anomalous_voter",
    "model_group": "sybil_group",
    "address_group": "sybil_group",
    "time_group": "sybil_group",
}
GROUP_TESTS = ("model_group", "address_group", "time_group")
_LOG10 = math.log(10.0)


@dataclass(frozen=True)
class RiggingSettings:
    """Levels of the voter tests (see docs/integrity.md for what they guarantee).

    Attributes
    ----------
    alpha
        Family-wise error rate of the per-cell test (Holm), and of each pooled group test.
    fdr
        False-discovery rate of the per-model group test (Benjamini-Hochberg).
    trim
        One-sided p at or below which a cell is left out of the robust reference fit.
    member_p, member_p_address
        A member of a flagged pooled group (first-seen time, address prefix) is flagged when
        its own cell for that model leans the same way at one-sided p at or below this.  A
        shared network prefix is stronger evidence of one operator than a shared hour, so it
        asks less of each member.
    small_account_votes
        Pooled group tests take accounts with at most this many votes, or up to the 95th
        percentile of account volumes when that is larger.
    time_window_s
        Accounts first seen in the same window of this many seconds form a time group
        (``0`` turns the time test off).
    min_votes, z_threshold
        The older agreement test: flag voters with at least ``min_votes`` decisive votes and
        agreement z at or below ``z_threshold``.
    robustness_k
        Voters removed per direction by the robustness statistic.
    """

    alpha: float = 0.01
    fdr: float = 0.02
    trim: float = 0.005
    member_p: float = 0.1
    member_p_address: float = 0.25
    small_account_votes: int = 20
    time_window_s: float = 3600.0
    min_votes: int = 20
    z_threshold: float = -4.0
    robustness_k: int = 5

    def __post_init__(self) -> None:
        for name in ("alpha", "fdr", "trim", "member_p", "member_p_address"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ValueError(f"{name} must be in (0, 1), got {value}")
        if self.time_window_s < 0:
            raise ValueError(f"time_window_s must be >= 0, got {self.time_window_s}")
        if self.robustness_k < 1:
            raise ValueError(f"robustness_k must be >= 1, got {self.robustness_k}")


@dataclass(frozen=True)
class VoterFlag:
    """One reason one voter is flagged.

    Attributes
    ----------
    judge
        The voter's key.
    test
        Which test (see the module notes).
    reason
        The exclusion reason it earns (``anomalous_voter`` or ``sybil_group``).
    model
        The model whose results are extreme.
    direction
        ``"for"`` (excess wins for ``model``) or ``"against"`` (excess losses).
    votes
        The voter's decisive votes in battles of ``model`` (for a pooled group: the group's).
    wins, expected
        Wins of ``model`` in them, and the number expected without the voter.
    z
        Normal-equivalent statistic of the one-sided test.
    log10_p
        Its p-value, base-10 log.
    group
        The group key for a pooled group test, else ``None``.
    """

    judge: str
    test: str
    reason: str
    model: str
    direction: str
    votes: int
    wins: float
    expected: float
    z: float
    log10_p: float
    group: str | None = None


@dataclass(frozen=True)
class ModelRobustness:
    """How far a model's rating moves without its ``k`` most influential voters.

    Attributes
    ----------
    model
        Model name.
    half_width
        Half the width of its 95% sandwich CI (Elo points).
    drop, lift
        Exact rating change without the ``k`` voters who lift it most / hold it down most.
    top_voters
        Keys of the ``k`` voters who lift it most.
    """

    model: str
    half_width: float
    k: int
    drop: float
    lift: float
    top_voters: tuple[str, ...]

    @property
    def ratio(self) -> float:
        """Largest move in units of the CI half-width."""
        worst = max(abs(self.drop), abs(self.lift))
        return worst / self.half_width if self.half_width > 0 else math.inf

    @property
    def fragile(self) -> bool:
        """The rating moves by more than its CI half-width without ``k`` voters."""
        return self.ratio > 1.0


@dataclass
class RiggingReport:
    """What the voter tests found."""

    flags: list[VoterFlag] = field(default_factory=list)
    taste_sd_elo: float = 0.0
    signals: list[str] = field(default_factory=list)
    robustness: list[ModelRobustness] = field(default_factory=list)

    def flagged(self) -> dict[str, str]:
        """Flagged judge -> exclusion reason (``anomalous_voter`` wins over ``sybil_group``:
        a voter extreme on their own needs no group to explain them)."""
        out: dict[str, str] = {}
        for f in self.flags:
            if out.get(f.judge) != "anomalous_voter":
                out[f.judge] = f.reason
        return out

    def headlines(self) -> dict[str, VoterFlag]:
        """Per flagged judge, the flag with the largest excess (``|wins - expected|``): the
        model the voter's votes are about (a targeted attacker's own target, not one of the
        many opponents it also beat)."""
        out: dict[str, VoterFlag] = {}
        for f in self.flags:
            best = out.get(f.judge)
            if best is None or abs(f.wins - f.expected) > abs(best.wins - best.expected):
                out[f.judge] = f
        return out


def _label(labels: Sequence[str] | None, code: int) -> str:
    return str(labels[code]) if labels is not None else f"voter{code}"


def _first_seen_groups(
    judge: npt.NDArray[np.int64], tstamp: npt.NDArray[np.float64], n_voters: int, window: float
) -> npt.NDArray[np.int64]:
    first = np.full(n_voters, np.inf)
    np.minimum.at(first, judge, tstamp)
    return np.floor(first / window).astype(np.int64)


def _account_groups(
    judge: npt.NDArray[np.int64], signal: npt.NDArray[np.int64], n_voters: int
) -> npt.NDArray[np.int64]:
    """Each account's group: the signal value most of its votes carry."""
    pairs = np.unique(np.stack([judge, signal]), axis=1, return_counts=True)
    (acc, sig), cnt = pairs
    order = np.lexsort((-cnt, acc))
    group = np.full(n_voters, -1, dtype=np.int64)
    first = np.unique(acc[order], return_index=True)[1]
    group[acc[order][first]] = sig[order][first]
    return group


def _pooled_flags(
    battles: Battles,
    judge: npt.NDArray[np.int64],
    account_group: npt.NDArray[np.int64],
    fit: FitResult,
    cells: CellTests,
    test: str,
    labels: Sequence[str] | None,
    group_names: Sequence[str] | None,
    s: RiggingSettings,
) -> list[VoterFlag]:
    """Pool small accounts by group, test the pooled cells, flag the members that lean along.

    Only small accounts are pooled: sybils are small by definition, and a heavy honest voter
    with a strong taste, pooled with whoever shares its hour or its network, would otherwise
    be re-tested in a smaller family than the per-cell test's.
    """
    from ratings.voters import FitResult, cell_tests, flag_cells

    volume = np.bincount(judge, minlength=account_group.size)
    small_cap = max(float(s.small_account_votes), float(np.quantile(volume, 0.95)))
    account_group = np.where(volume <= small_cap, account_group, -1)
    sizes = np.bincount(account_group[account_group >= 0])
    multi = np.flatnonzero(sizes >= 2)
    if multi.size == 0:
        return []
    gcode = np.full(sizes.size, -1, dtype=np.int64)
    gcode[multi] = np.arange(multi.size)
    grouped = account_group[judge]
    vote_group = np.where(grouped >= 0, gcode[np.maximum(grouped, 0)], -1)
    sel = vote_group >= 0
    gcells = cell_tests(
        battles.a[sel],
        battles.b[sel],
        battles.outcome[sel],
        vote_group[sel],
        multi.size,
        FitResult(fit.theta, fit.hinv, fit.used[sel]),
        tau=cells.tau,
    )
    gflags = flag_cells(gcells, alpha=s.alpha, group=False)
    m = battles.n_models
    own_keys = cells.voter * m + cells.model  # sorted: cells come from np.unique of this key
    log_member = math.log(s.member_p_address if test == "address_group" else s.member_p)
    out: list[VoterFlag] = []
    for ci, dsign in zip(gflags.cell.tolist(), gflags.direction.tolist(), strict=True):
        g, mdl = int(multi[gcells.voter[ci]]), int(gcells.model[ci])
        members = np.flatnonzero(account_group == g)
        z = float(gcells.z(dsign)[ci])
        lp = gcells.log_p_high[ci] if dsign > 0 else gcells.log_p_low[ci]
        for acc in members.tolist():
            i = int(np.searchsorted(own_keys, acc * m + mdl))
            if i >= own_keys.size or own_keys[i] != acc * m + mdl:
                continue
            mlp = cells.log_p_high[i] if dsign > 0 else cells.log_p_low[i]
            if mlp > log_member:
                continue
            out.append(
                VoterFlag(
                    judge=_label(labels, acc),
                    test=test,
                    reason=REASON_OF_TEST[test],
                    model=battles.models[mdl],
                    direction="for" if dsign > 0 else "against",
                    votes=int(gcells.n[ci]),
                    wins=float(gcells.wins[ci]),
                    expected=float(gcells.expected[ci]),
                    z=z,
                    log10_p=float(lp / _LOG10),
                    group=str(group_names[g]) if group_names is not None else str(g),
                )
            )
    return out


def detect_rigging(
    battles: Battles,
    judge: npt.NDArray[np.int64],
    *,
    labels: Sequence[str] | None = None,
    address: npt.NDArray[np.int64] | None = None,
    address_names: Sequence[str] | None = None,
    settings: RiggingSettings | None = None,
    with_robustness: bool = False,
) -> RiggingReport:
    """Run every voter test on the battles.

    Parameters
    ----------
    battles
        The votes to test (as counted).
    judge
        Dense voter code per battle (``0..V-1``).
    labels
        Voter key per code, for the report (default ``voter<code>``).
    address
        Optional address-hash-prefix code per battle (the group signal a source may carry).
    address_names
        Names of the address codes, for the report.
    settings
        Test levels.
    with_robustness
        Also compute the per-model robustness statistic (``2 * models`` refits).

    Returns
    -------
    RiggingReport

    Raises
    ------
    ValueError
        ``judge`` (or ``address``) does not have one entry per battle.
    """
    from ratings.voters import flag_cells, robust_fit

    s = settings or RiggingSettings()
    n = len(battles)
    if judge.shape != (n,):
        raise ValueError(f"judge has {judge.shape[0]} entries for {n} battles")
    if address is not None and address.shape != (n,):
        raise ValueError(f"address has {address.shape[0]} entries for {n} battles")
    n_voters = int(judge.max()) + 1
    m = battles.n_models
    report = RiggingReport(signals=["votes"])
    fit, cells = robust_fit(battles.a, battles.b, battles.outcome, judge, n_voters, m, trim=s.trim)
    report.taste_sd_elo = cells.tau * ELO_SCALE
    flags = flag_cells(cells, alpha=s.alpha, fdr=s.fdr)
    for ci, dsign, test, lp in zip(
        flags.cell.tolist(),
        flags.direction.tolist(),
        flags.test.tolist(),
        flags.log_p.tolist(),
        strict=True,
    ):
        report.flags.append(
            VoterFlag(
                judge=_label(labels, int(cells.voter[ci])),
                test=str(test),
                reason=REASON_OF_TEST[str(test)],
                model=battles.models[int(cells.model[ci])],
                direction="for" if dsign > 0 else "against",
                votes=int(cells.n[ci]),
                wins=float(cells.wins[ci]),
                expected=float(cells.expected[ci]),
                z=float(cells.z(dsign)[ci]),
                log10_p=lp / _LOG10,
            )
        )
    if address is not None:
        report.signals.append("address_hash")
        groups = _account_groups(judge, address.astype(np.int64), n_voters)
        report.flags += _pooled_flags(
            battles, judge, groups, fit, cells, "address_group", labels, address_names, s
        )
    if battles.tstamp is not None and s.time_window_s > 0:
        report.signals.append("first_seen")
        groups = _first_seen_groups(judge, battles.tstamp, n_voters, s.time_window_s)
        groups -= groups.min()
        names = [f"first seen {g * s.time_window_s:.0f}s" for g in range(int(groups.max()) + 1)]
        report.flags += _pooled_flags(
            battles, judge, groups, fit, cells, "time_group", labels, names, s
        )
    report.flags += _agreement_flags(battles, judge, labels, s)
    report.flags.sort(key=lambda f: (f.judge, f.log10_p))
    if with_robustness:
        report.robustness = model_robustness(battles, judge, labels=labels, k=s.robustness_k)
    return report


def _agreement_flags(
    battles: Battles,
    judge: npt.NDArray[np.int64],
    labels: Sequence[str] | None,
    s: RiggingSettings,
) -> list[VoterFlag]:
    from arena.integrity import fitted_z_scores

    n, agree, exp, z = fitted_z_scores(battles, judge)
    hits = np.flatnonzero((n >= s.min_votes) & (z <= s.z_threshold))
    from scipy.special import log_ndtr

    return [
        VoterFlag(
            judge=_label(labels, int(c)),
            test="agreement",
            reason="anomalous_voter",
            model="(fit's favourite)",
            direction="against",
            votes=int(n[c]),
            wins=float(agree[c]),
            expected=float(exp[c]),
            z=float(-z[c]),
            log10_p=float(log_ndtr(z[c]) / _LOG10),
        )
        for c in hits.tolist()
    ]


def model_robustness(
    battles: Battles,
    judge: npt.NDArray[np.int64],
    *,
    labels: Sequence[str] | None = None,
    k: int = 5,
) -> list[ModelRobustness]:
    """Per model: its rating move without its ``k`` most influential voters, vs its CI.

    Parameters
    ----------
    battles
        The votes as counted.
    judge
        Dense voter code per battle.
    labels
        Voter key per code.
    k
        Voters removed per direction.

    Returns
    -------
    list of ModelRobustness
        In model order.
    """
    from ratings.voters import robustness

    lb = compute_leaderboard(battles, RatingOptions(ci="sandwich"))
    half = {r.model: 0.5 * (r.upper - r.lower) for r in lb.rows}
    rob = robustness(
        battles.a, battles.b, battles.outcome, judge, int(judge.max()) + 1, battles.n_models, k=k
    )
    return [
        ModelRobustness(
            model=name,
            half_width=float(half[name]),
            k=rob.k,
            drop=float(rob.drop[i]),
            lift=float(rob.lift[i]),
            top_voters=tuple(_label(labels, int(v)) for v in rob.top_voters[i]),
        )
        for i, name in enumerate(battles.models)
    ]
