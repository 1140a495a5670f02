"""The rigging tests against attacks generated here, not by the benchmark.

The simulator below is deliberately unlike ``benchmarks/attack_bench.py``: Pareto voter
volumes, non-uniform pair exposure (some models served more), tastes from a vendor factor
and an answer-length factor, 15% ties, fewer models and voters, other seeds, and attackers
that are imperfect (a style classifier that misses the target now and then) or blend in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from arena.integrity import flagged_voter_mask, voter_z_scores
from arena.rigging import RiggingSettings, detect_rigging, model_robustness
from ratings import Battles, RatingOptions, compute_leaderboard
from ratings.bt import ELO_SCALE
from ratings.voters import FitResult, cell_tests, fit_theta, robustness, voter_influence

WINNERS = np.array(["model_a", "model_b", "tie", "tie (bothbad)"], dtype=object)
HONEST_FLAG_RATE = 0.001  # the bound on honest voters flagged
LOO_TOL_ELO = 0.5  # one-step leave-voter-out vs an exact refit, for a 1%-of-data voter


@dataclass
class Sim:
    a: npt.NDArray[np.int64]
    b: npt.NDArray[np.int64]
    outcome: npt.NDArray[np.int64]
    voter: npt.NDArray[np.int64]
    tstamp: npt.NDArray[np.float64]
    true: npt.NDArray[np.float64]
    n_honest_voters: int

    def add(self, a: npt.ArrayLike, b: npt.ArrayLike, outcome: npt.ArrayLike,
            voter: npt.ArrayLike, tstamp: npt.ArrayLike) -> Sim:  # fmt: skip
        cat = np.concatenate
        return Sim(
            cat([self.a, np.asarray(a)]), cat([self.b, np.asarray(b)]),
            cat([self.outcome, np.asarray(outcome)]), cat([self.voter, np.asarray(voter)]),
            cat([self.tstamp, np.asarray(tstamp, dtype=float)]), self.true,
            self.n_honest_voters,
        )  # fmt: skip

    def battles(self, *, tstamp: bool = False) -> Battles:
        names = np.array([f"llm-{i}" for i in range(self.true.size)], dtype=object)
        return Battles.from_columns(
            names[self.a],
            names[self.b],
            WINNERS[self.outcome],
            clusters={"judge": np.array([f"u{v}" for v in self.voter], dtype=object)},
            tstamp=self.tstamp if tstamp else None,
        )


def honest(seed: int, k: int, n_voters: int, n_votes: int, *, hate: float = 0.0) -> Sim:
    rng = np.random.default_rng(seed)
    true = np.linspace(180, -180, k) + rng.normal(0, 15, k)
    volume = rng.pareto(1.6, n_voters) + 1
    voter = rng.choice(n_voters, n_votes, p=volume / volume.sum())
    exposure = rng.uniform(0.5, 2.0, k)
    pa_, pb_ = exposure / exposure.sum(), exposure / exposure.sum()
    a = rng.choice(k, n_votes, p=pa_)
    b = rng.choice(k, n_votes, p=pb_)
    while (same := a == b).any():
        b[same] = rng.choice(k, int(same.sum()), p=pb_)
    vendor = rng.integers(0, 4, k)
    length = rng.normal(0, 1, k)
    taste = (
        rng.normal(0, 30, (n_voters, 4))[:, vendor]
        + rng.normal(0, 25, n_voters)[:, None] * length[None, :]
        + rng.normal(0, 35, (n_voters, k))
    )
    if hate:
        haters = rng.random(n_voters) < 0.05
        taste[haters] -= hate * (vendor[None, :] == rng.integers(0, 4, int(haters.sum()))[:, None])
    r = true[None, :] + taste
    p = 1 / (1 + np.exp(-(r[voter, a] - r[voter, b]) / ELO_SCALE))
    outcome = np.where(rng.random(n_votes) < p, 0, 1)
    tie = rng.random(n_votes) < 0.15
    outcome = np.where(tie, np.where(rng.random(n_votes) < 0.5, 2, 3), outcome)
    arrive = rng.uniform(0, 20 * 86400, n_voters)
    tstamp = arrive[voter] + rng.exponential(86400, n_votes)
    return Sim(a, b, outcome, voter, tstamp, true, n_voters)


def target_battles(
    rng: np.random.Generator, sim: Sim, target: int, n: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    k = sim.true.size
    opp = (target + rng.integers(1, k, n)) % k
    first = rng.random(n) < 0.5
    return np.where(first, target, opp), np.where(first, opp, target), first


def mid_target(sim: Sim) -> int:
    return int(np.argsort(-sim.true)[sim.true.size // 2 + 1])


def shift_in_half_widths(sim: Sim, attacked: Sim, keep: npt.NDArray[np.bool_], m: int) -> float:
    base = compute_leaderboard(sim.battles(), RatingOptions())
    row = next(r for r in base.rows if r.model == f"llm-{m}")
    defended = compute_leaderboard(attacked.battles().select(keep), RatingOptions())
    after = next(r for r in defended.rows if r.model == f"llm-{m}")
    return abs(after.rating - row.rating) / (0.5 * (row.upper - row.lower))


def honest_flagged(attacked: Sim, keep: npt.NDArray[np.bool_]) -> int:
    honest_rows = attacked.voter < attacked.n_honest_voters
    return int(np.unique(attacked.voter[honest_rows & ~keep]).size)


# ------------------------------------------------------------------------------------------
# the attacks the older z-test missed


@pytest.mark.parametrize(("seed", "k", "n_attack", "accuracy"), [(101, 12, 400, 1.0),
                                                                  (202, 9, 700, 0.9)])  # fmt: skip
def test_targeted_attacker_on_a_mid_table_model(
    seed: int, k: int, n_attack: int, accuracy: float
) -> None:
    sim = honest(seed, k, 1500, 12_000)
    rng = np.random.default_rng(seed + 1)
    target = mid_target(sim)
    a, b, first = target_battles(rng, sim, target, n_attack)
    # The style classifier recognises the target `accuracy` of the time; else an honest vote.
    honest_vote = rng.random(n_attack) < 0.5
    for_target = np.where(first, 0, 1)
    outcome = np.where(rng.random(n_attack) < accuracy, for_target, np.where(honest_vote, 0, 1))
    attacked = sim.add(a, b, outcome, np.full(n_attack, 99_999), np.full(n_attack, 5e5))
    bt = attacked.battles()
    judge = bt.clusters["judge"]
    # Today's z-test: the polluted fit already likes the target, so the attacker agrees with
    # it often enough to pass.  (This is the failure the new tests exist for.)
    _n, _, _, z = voter_z_scores(judge=judge, a=bt.a, b=bt.b, outcome=bt.outcome,
                                rating=_fit_ratings(bt))  # fmt: skip
    attacker_code = int(judge[-1])
    assert z[attacker_code] > -4.0
    keep, _n_flagged = flagged_voter_mask(bt)
    assert (~keep[-n_attack:]).all(), "the attacker's votes are all removed"
    assert honest_flagged(attacked, keep) <= max(1, HONEST_FLAG_RATE * sim.n_honest_voters)
    assert shift_in_half_widths(sim, attacked, keep, target) < 1.0
    report = detect_rigging(bt, judge, labels=[f"code{c}" for c in range(int(judge.max()) + 1)])
    top = report.headlines()[f"code{attacker_code}"]
    assert (top.test, top.model, top.direction) == ("voter_model", f"llm-{target}", "for")


def _fit_ratings(bt: Battles) -> npt.NDArray[np.float64]:
    lb = compute_leaderboard(bt, RatingOptions(ci="none"))
    by_name = {r.model: r.rating for r in lb.rows}
    return np.array([by_name[m] for m in bt.models])


@pytest.mark.parametrize(("seed", "accounts", "n_attack"), [(303, 12, 500), (404, 40, 600)])
def test_sybils_each_below_any_per_voter_minimum(seed: int, accounts: int, n_attack: int) -> None:
    sim = honest(seed, 14, 1800, 15_000)
    rng = np.random.default_rng(seed + 7)
    target = mid_target(sim)
    a, b, first = target_battles(rng, sim, target, n_attack)
    accounts_of = 50_000 + rng.integers(0, accounts, n_attack)
    attacked = sim.add(a, b, np.where(first, 0, 1), accounts_of, np.full(n_attack, 7e5))
    bt = attacked.battles()
    # Today's z-test flags none of them (each is under its 20-vote minimum, or agrees enough).
    n, _, _, z = voter_z_scores(judge=bt.clusters["judge"], a=bt.a, b=bt.b,
                                outcome=bt.outcome, rating=_fit_ratings(bt))  # fmt: skip
    sybil_codes = np.unique(bt.clusters["judge"][-n_attack:])
    assert not ((n[sybil_codes] >= 20) & (z[sybil_codes] <= -4.0)).any()
    keep, _ = flagged_voter_mask(bt)
    assert (~keep[-n_attack:]).mean() >= 0.9
    assert honest_flagged(attacked, keep) <= max(1, HONEST_FLAG_RATE * sim.n_honest_voters)
    assert shift_in_half_widths(sim, attacked, keep, target) < 1.0


def test_sybils_with_few_votes_each_are_caught_by_first_seen_time() -> None:
    """Too few votes per account for the votes alone; created together, they are a group."""
    sim = honest(505, 10, 1200, 10_000)
    rng = np.random.default_rng(506)
    target = mid_target(sim)
    n_attack, accounts = 360, 60  # 6 votes per account: no single account is significant
    a, b, first = target_battles(rng, sim, target, n_attack)
    who = rng.integers(0, accounts, n_attack)
    created = 9e5 + rng.uniform(0, 1200, accounts)
    t = created[who] + rng.exponential(3 * 86400, n_attack)
    firsts = np.unique(who, return_index=True)[1]
    t[firsts] = created[who[firsts]]
    # The sybils also cast a few honest-looking votes elsewhere (blending in).
    attacked = sim.add(a, b, np.where(first, 0, 1), 60_000 + who, t)
    bt_votes, bt_time = attacked.battles(), attacked.battles(tstamp=True)
    keep_votes, _ = flagged_voter_mask(bt_votes)
    keep_time, _ = flagged_voter_mask(bt_time)
    caught_votes = (~keep_votes[-n_attack:]).mean()
    caught_time = (~keep_time[-n_attack:]).mean()
    assert caught_time >= 0.9 and caught_time > caught_votes
    assert honest_flagged(attacked, keep_time) <= max(1, HONEST_FLAG_RATE * sim.n_honest_voters)
    report = detect_rigging(bt_time, bt_time.clusters["judge"])
    assert any(f.test == "time_group" and f.reason == "sybil_group" for f in report.flags)


def test_blending_attacker_with_honest_votes_elsewhere() -> None:
    sim = honest(606, 11, 1400, 11_000)
    rng = np.random.default_rng(607)
    target = mid_target(sim)
    a, b, first = target_battles(rng, sim, target, 450)
    # 1,500 honest votes on battles without the target, voted by the true strengths.
    ha = rng.integers(0, 11, 3000)
    hb = (ha + rng.integers(1, 11, 3000)) % 11
    ok = (ha != target) & (hb != target)
    ha, hb = ha[ok][:1500], hb[ok][:1500]
    p = 1 / (1 + np.exp(-(sim.true[ha] - sim.true[hb]) / ELO_SCALE))
    attacked = sim.add(
        np.concatenate([a, ha]), np.concatenate([b, hb]),
        np.concatenate([np.where(first, 0, 1), np.where(rng.random(ha.size) < p, 0, 1)]),
        np.full(450 + ha.size, 77_777), np.full(450 + ha.size, 1e6),
    )  # fmt: skip
    keep, _n_flagged = flagged_voter_mask(attacked.battles())
    assert not keep[-(450 + ha.size) :].any()
    assert shift_in_half_widths(sim, attacked, keep, target) < 1.0
    assert honest_flagged(attacked, keep) <= max(1, HONEST_FLAG_RATE * sim.n_honest_voters)


@pytest.mark.parametrize("accounts", [1, 8])
def test_omnipresent_rigging_against_the_targets_rivals(accounts: int) -> None:
    sim = honest(707 + accounts, 13, 1600, 13_000)
    rng = np.random.default_rng(708)
    target = mid_target(sim)
    order = np.argsort(-sim.true)
    rivals = order[: int(np.flatnonzero(order == target)[0])][-3:]  # the three just above
    n = 600
    r = rivals[rng.integers(0, rivals.size, n)]
    opp = rng.integers(0, 13, n)
    while (bad := (opp == r) | (opp == target)).any():
        opp[bad] = rng.integers(0, 13, int(bad.sum()))
    first = rng.random(n) < 0.5
    who = 80_000 + rng.integers(0, accounts, n)
    attacked = sim.add(np.where(first, r, opp), np.where(first, opp, r),
                       np.where(first, 1, 0), who, np.full(n, 2e6))  # fmt: skip
    keep, _ = flagged_voter_mask(attacked.battles())
    assert (~keep[-n:]).mean() >= 0.9
    for m in [target, *rivals.tolist()]:
        assert shift_in_half_widths(sim, attacked, keep, m) < 1.0
    assert honest_flagged(attacked, keep) <= max(1, HONEST_FLAG_RATE * sim.n_honest_voters)
    report = detect_rigging(attacked.battles(), attacked.battles().clusters["judge"])
    against = {f.model for f in report.flags if f.direction == "against"}
    assert against & {f"llm-{x}" for x in rivals.tolist()}


# ------------------------------------------------------------------------------------------
# honest disagreement is not an attack


@pytest.mark.parametrize(("seed", "hate"), [(808, 250.0), (909, 400.0)])
def test_voters_with_strong_consistent_tastes_are_not_flagged(seed: int, hate: float) -> None:
    """5% of voters dislike one vendor's models by `hate` Elo, everyone has taste."""
    sim = honest(seed, 12, 2000, 16_000, hate=hate)
    _keep, n_flagged = flagged_voter_mask(sim.battles())
    assert n_flagged <= max(1, HONEST_FLAG_RATE * sim.n_honest_voters)


def test_cell_p_values_are_conservative_without_taste() -> None:
    """With no taste and no attack, P(p <= c) <= c for the one-sided cell tests."""
    rng = np.random.default_rng(1234)
    k, n_voters, n = 8, 400, 24_000
    true = rng.normal(0, 1, k)
    voter = rng.integers(0, n_voters, n)
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    outcome = np.where(rng.random(n) < 1 / (1 + np.exp(-(true[a] - true[b]))), 0, 1)
    fit = fit_theta(a, b, outcome, k)
    cells = cell_tests(a, b, outcome, voter, n_voters, fit, tau=0.0)
    for c in (0.01, 0.05):
        for lp in (cells.log_p_high, cells.log_p_low):
            rate = float((lp <= np.log(c)).mean())
            assert rate <= c * 1.2, (c, rate)  # 1.2: sampling noise over ~3,000 cells


def _poisson_binomial_sf(p: npt.NDArray[np.float64], c: int) -> float:
    """P(sum of Bernoulli(p_k) >= c), by the exact convolution (independent of the code)."""
    dist = np.zeros(p.size + 1)
    dist[0] = 1.0
    for pk in p:
        dist[1:] = dist[1:] * (1 - pk) + dist[:-1] * pk
        dist[0] *= 1 - pk
    return float(dist[c:].sum())


def test_cell_p_values_bound_the_exact_poisson_binomial_tail() -> None:
    """Without taste and with the fit fixed, each excess-wins p-value is at least the exact
    tail of the Poisson-binomial count (Hoeffding's bound holds beyond mean + 1)."""
    rng = np.random.default_rng(4321)
    k, n_voters, n = 6, 60, 1500
    theta = rng.normal(0, 1.2, k)
    voter = rng.integers(0, n_voters, n)
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    # Some voters favour model 0 a lot, so that there are small p-values to check.
    fan = voter < 10
    p_a = 1 / (1 + np.exp(-(theta[a] - theta[b] + 2.0 * fan * ((a == 0) * 1.0 - (b == 0)))))
    outcome = np.where(rng.random(n) < p_a, 0, 1)
    fixed = FitResult(theta, np.zeros((k, k)), np.ones(n, dtype=bool))  # no leave-out shift
    cells = cell_tests(a, b, outcome, voter, n_voters, fixed, tau=0.0)
    checked = 0
    for c in range(cells.n.size):
        if cells.wins[c] < cells.expected[c] + 1:
            continue
        v, m = cells.voter[c], cells.model[c]
        mine = (voter == v) & ((a == m) | (b == m))
        eta = np.where(
            a[mine] == m, theta[a[mine]] - theta[b[mine]], theta[b[mine]] - theta[a[mine]]
        )
        exact = _poisson_binomial_sf(1 / (1 + np.exp(-eta)), int(cells.wins[c]))
        assert cells.log_p_high[c] >= np.log(exact) - 1e-9, (c, cells.log_p_high[c], exact)
        checked += 1
    assert checked >= 30
    assert cells.log_p_high.min() < np.log(1e-4)  # the fans' cells are there, and small


def test_one_step_leave_voter_out_matches_an_exact_refit() -> None:
    sim = honest(1111, 9, 800, 9_000)
    bt = sim.battles()
    judge = bt.clusters["judge"]
    fit = fit_theta(bt.a, bt.b, bt.outcome, bt.n_models)
    delta = voter_influence(bt.a, bt.b, bt.outcome, judge, int(judge.max()) + 1, fit)
    heavy = int(np.argmax(np.bincount(judge)))
    exact = fit_theta(bt.a, bt.b, bt.outcome, bt.n_models, used=judge != heavy).theta
    assert np.abs((exact - fit.theta) - delta[heavy]).max() * ELO_SCALE < LOO_TOL_ELO


def test_robustness_marks_a_model_carried_by_a_handful_of_voters() -> None:
    sim = honest(1212, 10, 1000, 10_000)
    rng = np.random.default_rng(1213)
    target = mid_target(sim)
    a, b, first = target_battles(rng, sim, target, 300)
    attacked = sim.add(a, b, np.where(first, 0, 1), 90_000 + rng.integers(0, 3, 300),
                       np.full(300, 3e6))  # fmt: skip
    bt = attacked.battles()
    judge = bt.clusters["judge"]
    rob = {r.model: r for r in model_robustness(bt, judge, k=3)}
    carried = rob[f"llm-{target}"]
    assert carried.fragile and carried.drop < 0
    # The exact move equals an independent refit without those three voters.
    labels = np.unique(judge)
    raw = robustness(bt.a, bt.b, bt.outcome, judge, labels.size, bt.n_models, k=3)
    m = bt.models.index(f"llm-{target}")
    drop_voters = raw.top_voters[m]
    lb_all = compute_leaderboard(bt, RatingOptions(ci="none"))
    lb_wo = compute_leaderboard(bt.select(~np.isin(judge, drop_voters)), RatingOptions(ci="none"))
    before = next(r.rating for r in lb_all.rows if r.model == f"llm-{target}")
    after = next(r.rating for r in lb_wo.rows if r.model == f"llm-{target}")
    assert after - before == pytest.approx(raw.drop[m], abs=1e-6)
    honest_models = [r for name, r in rob.items() if name != f"llm-{target}"]
    assert sum(r.fragile for r in honest_models) <= 2  # the attack also holds some down


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="alpha"):
        RiggingSettings(alpha=0.0)
    with pytest.raises(ValueError, match="robustness_k"):
        RiggingSettings(robustness_k=0)
    sim = honest(1313, 6, 100, 800)
    with pytest.raises(ValueError, match="judge has"):
        detect_rigging(sim.battles(), np.zeros(3, dtype=np.int64))


# ------------------------------------------------------------------------------------------
# through the CLI


def _write_log(sim: Sim, path: Path, address: dict[int, str] | None = None) -> None:
    with path.open("w") as f:
        for i in range(sim.a.size):
            rec = {
                "model_a": f"llm-{sim.a[i]}", "model_b": f"llm-{sim.b[i]}",
                "winner": str(WINNERS[sim.outcome[i]]), "judge": f"u{sim.voter[i]}",
                "anony": True, "tstamp": float(sim.tstamp[i]),
            }  # fmt: skip
            if address is not None:
                rec["address_hash"] = address.get(int(sim.voter[i]), f"net{sim.voter[i]}")
            f.write(json.dumps(rec) + "\n")


def test_audit_json_and_exclude_flagged_use_the_address_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from arena.cli import main

    sim = honest(1414, 10, 900, 8_000)
    rng = np.random.default_rng(1415)
    target = mid_target(sim)
    n_attack, accounts = 240, 60  # 4 votes per account, one shared address prefix
    a, b, first = target_battles(rng, sim, target, n_attack)
    who = 70_000 + rng.integers(0, accounts, n_attack)
    t = rng.uniform(0, 20 * 86400, n_attack)  # spread out in time: only the address links them
    attacked = sim.add(a, b, np.where(first, 0, 1), who, t)
    log = tmp_path / "battles.jsonl"
    _write_log(attacked, log, {int(v): "vpn-exit-1" for v in np.unique(who)})
    assert main(["audit", str(log), "--format", "json", "--time-window", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    sybils = {f"u{v}" for v in np.unique(who)}
    by_test = {f["test"] for f in report["flagged"] if f["judge"] in sybils}
    assert "address_group" in by_test
    flagged = report["flagged_voters"]
    caught = np.isin([f"u{v}" for v in who], list(flagged)).mean()
    assert caught >= 0.8  # accounts with one or two votes cannot lean far enough to name
    assert len(set(flagged) - sybils) <= 1
    assert {flagged[j]["reason"] for j in set(flagged) & sybils} == {"sybil_group"}
    assert {flagged[j]["model"] for j in set(flagged) & sybils} == {f"llm-{target}"}
    assert "address_hash" in report["signals"]
    assert {r["model"] for r in report["robustness"]} == {f"llm-{i}" for i in range(10)}
    out = tmp_path / "lb.json"
    assert main(["ratings", str(log), "--exclude-flagged", "--no-progress", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "flagged voters" in err
    board = json.loads(out.read_text())
    assert board["n_battles"] <= sim.a.size + 0.1 * n_attack


@pytest.mark.slow
def test_audit_apply_stores_sybil_group_on_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sybils in the database (no address column): found from votes and first-vote times,
    stored as ``sybil_group``, and left out by ``ratings --db``."""
    from arena.cli import main

    sim = honest(1515, 9, 800, 7_000)
    rng = np.random.default_rng(1516)
    target = mid_target(sim)
    n_attack, accounts = 360, 24  # 15 votes per account
    a, b, first = target_battles(rng, sim, target, n_attack)
    who = rng.integers(0, accounts, n_attack)
    created = 1.7e9 + 8 * 86400 + rng.uniform(0, 900, accounts)
    t = created[who] + rng.exponential(2 * 86400, n_attack)
    attacked = sim.add(a, b, np.where(first, 0, 1), 40_000 + who, t)
    attacked.tstamp[: sim.a.size] += 1.7e9
    log = tmp_path / "battles.jsonl"
    _write_log(attacked, log)
    url = f"sqlite:///{tmp_path / 'arena.db'}"
    assert main(["db", "upgrade", "--db", url]) == 0
    assert main(["import", "battles", str(log), "--db", url]) == 0
    capsys.readouterr()
    assert main(["audit", "--db", url, "--apply", "--format", "json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "first_seen" in report["signals"]
    sybils = {f"u{40_000 + v}" for v in range(accounts)}
    flagged = report["flagged_voters"]
    assert len(set(flagged) & sybils) >= 0.9 * accounts
    assert len(set(flagged) - sybils) <= 1
    assert {flagged[j]["reason"] for j in set(flagged) & sybils} == {"sybil_group"}
    assert "votes as sybil_group" in captured.err
    out = tmp_path / "lb.json"
    assert main(["ratings", "--db", url, "--no-progress", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["n_battles"] <= sim.a.size + 0.1 * n_attack
    assert main(["audit", "--db", url]) == 0
    assert "sybil_group: " in capsys.readouterr().out
