"""Rigging attacks against the voter tests: how far each attack moves the board, defended or not.

Honest population (the bench's own parameters; the tests use others): ``--models`` models with
true ratings drawn N(1000, 110); ``--voters`` voters whose volumes are log-normal (sigma 1.4:
most cast a handful of votes, a few cast hundreds); 20,000 votes on uniformly drawn pairs.
Every voter has their own taste: a per-model offset N(0, 50 Elo), a preference for long (or
short) answers (each model has a verbosity score, each voter a coefficient N(0, 35 Elo)),
3% dislike one vendor's models (-120 Elo on the 2-3 models of a vendor) and 1% care about
length a lot (coefficient +-150 Elo).  20% of votes are ties (a third of them
``tie (bothbad)``).  Voters arrive over 30 days; 5% sit behind 12 shared address prefixes.

Attacks on a mid-table target (the model ranked at ``--target-rank``), each at 100, 500 and
2,000 votes:

``targeted``      one account votes for the target in every battle it plays
``sybil``         the same votes spread over 30 accounts created within half an hour; rows for
                  votes only, with first-seen times, and with a shared address-hash prefix
``blend``         one account: the target votes plus twice as many honest votes elsewhere
``omnipresent``   one account never meets the target: it votes against the two models just
                  above it, in their battles with other models
``omni-sybil``    omnipresent rigging spread over 30 accounts (votes only)

Reported per attack and size, averaged over ``--seeds`` seeds: the largest shift of an
attacked model (the target; for omnipresent rigging also the two rivals) in units of its
honest 95% CI half-width, without and with defences (``--exclude-flagged``'s code path), the
share of attacker votes removed, and honest voters flagged (also with no attack at all).

Usage::

    python benchmarks/attack_bench.py [--seeds 3] [--models 24] [--voters 2500]
        [--honest 20000] [--target-rank 14] [--accounts 30] [--sizes 100,500,2000]
        [--first-seed 2024] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

# Run from a checkout: measure this tree's code, not whatever copy the venv installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arena.integrity import flagged_voter_mask
from ratings import Battles, RatingOptions, compute_leaderboard

WINNERS = np.array(["model_a", "model_b", "tie", "tie (bothbad)"], dtype=object)
DAY = 86400.0
T0 = 1.7e9


@dataclass
class Votes:
    a: npt.NDArray[np.int64]
    b: npt.NDArray[np.int64]
    outcome: npt.NDArray[np.int64]
    voter: npt.NDArray[np.int64]
    tstamp: npt.NDArray[np.float64]
    address: npt.NDArray[np.int64]

    def __add__(self, other: Votes) -> Votes:
        return Votes(
            *(np.concatenate([getattr(self, f), getattr(other, f)]) for f in self.__annotations__)
        )

    def __len__(self) -> int:
        return int(self.a.size)


def honest_population(
    rng: np.random.Generator, k: int, n_voters: int, n_votes: int
) -> tuple[npt.NDArray[np.float64], Votes]:
    true = 1000 + np.sort(rng.normal(0, 110, k))[::-1]
    volume = rng.lognormal(0, 1.4, n_voters)
    voter = rng.choice(n_voters, n_votes, p=volume / volume.sum())
    a = rng.integers(0, k, n_votes)
    b = (a + rng.integers(1, k, n_votes)) % k
    taste = rng.normal(0, 50, (n_voters, k))
    verbosity = rng.normal(0, 1, k)
    coef = rng.normal(0, 35, n_voters)
    fanatic = rng.random(n_voters) < 0.01
    coef[fanatic] = rng.choice([-150.0, 150.0], int(fanatic.sum()))
    taste += coef[:, None] * verbosity[None, :]
    vendor = np.arange(k) // 3
    hater = np.flatnonzero(rng.random(n_voters) < 0.03)
    hated = rng.integers(0, vendor.max() + 1, hater.size)
    taste[hater] -= 120.0 * (vendor[None, :] == hated[:, None])
    r = true[None, :] + taste
    pa = 1 / (1 + 10 ** ((r[voter, b] - r[voter, a]) / 400))
    tie = rng.random(n_votes) < 0.2
    outcome = np.where(rng.random(n_votes) < pa, 0, 1)
    outcome = np.where(tie, np.where(rng.random(n_votes) < 2 / 3, 2, 3), outcome)
    arrive = T0 + rng.uniform(0, 30 * DAY, n_voters)
    tstamp = arrive[voter] + rng.exponential(3 * DAY, n_votes)
    address = rng.integers(100, 100 + 50 * n_voters, n_voters)
    shared = rng.random(n_voters) < 0.05
    address[shared] = rng.integers(0, 12, int(shared.sum()))
    return true, Votes(a, b, outcome, voter, tstamp, address[voter])


def attack(
    rng: np.random.Generator,
    kind: str,
    true: npt.NDArray[np.float64],
    n: int,
    first_voter: int,
    target: int,
    accounts: int = 30,
) -> tuple[Votes, list[int]]:
    """Attacker votes and the attacked models."""
    k = true.size
    rivals = [int(x) for x in np.argsort(-true)[:k] if true[x] > true[target]][-2:]
    if kind in ("targeted", "sybil", "blend"):
        opp = (target + rng.integers(1, k, n)) % k
        side = rng.random(n) < 0.5
        a, b = np.where(side, target, opp), np.where(side, opp, target)
        outcome = np.where(side, 0, 1)
        attacked = [target]
    else:
        r = np.asarray(rivals)[rng.integers(0, len(rivals), n)]
        opp = rng.integers(0, k, n)
        bad = (opp == r) | (opp == target)
        while bad.any():
            opp[bad] = rng.integers(0, k, int(bad.sum()))
            bad = (opp == r) | (opp == target)
        side = rng.random(n) < 0.5
        a, b = np.where(side, r, opp), np.where(side, opp, r)
        outcome = np.where(side, 1, 0)
        attacked = [target, *rivals]
    many = kind in ("sybil", "omni-sybil")
    voter = first_voter + (rng.integers(0, accounts, n) if many else np.zeros(n, np.int64))
    start = T0 + rng.uniform(5 * DAY, 25 * DAY)
    if many:
        created = start + rng.uniform(0, 1800, accounts)
        tstamp = created[voter - first_voter] + rng.exponential(2 * DAY, n)
        # A new account starts voting as soon as it exists: first seen = created.
        first = np.unique(voter, return_index=True)[1]
        tstamp[first] = created[voter[first] - first_voter]
    else:
        tstamp = start + rng.exponential(3 * DAY, n)
    address = np.full(n, 7_000_000 if many else 7_000_001)
    votes = Votes(a, b, outcome, voter, tstamp, address)
    if kind == "blend":
        m = 3 * n
        ha = rng.integers(0, k, m)
        hb = (ha + rng.integers(1, k, m)) % k
        ok = (ha != target) & (hb != target)
        ha, hb = ha[ok][: 2 * n], hb[ok][: 2 * n]
        pa = 1 / (1 + 10 ** ((true[hb] - true[ha]) / 400))
        ho = np.where(rng.random(ha.size) < pa, 0, 1)
        votes = votes + Votes(
            ha, hb, ho, np.full(ha.size, first_voter), start + rng.exponential(3 * DAY, ha.size),
            np.full(ha.size, 7_000_001),
        )  # fmt: skip
    return votes, attacked


def to_battles(v: Votes, names: list[str], signals: str) -> Battles:
    clusters: dict[str, npt.NDArray[np.int64]] = {"judge": v.voter}
    if signals == "address":
        clusters["address_hash"] = v.address
    return Battles.from_columns(
        np.asarray(names, dtype=object)[v.a],
        np.asarray(names, dtype=object)[v.b],
        WINNERS[v.outcome],
        clusters=clusters,
        tstamp=v.tstamp if signals in ("first_seen", "address") else None,
    )


def ratings_of(bt: Battles) -> dict[str, tuple[float, float]]:
    lb = compute_leaderboard(bt, RatingOptions(ci="sandwich"))
    return {r.model: (r.rating, 0.5 * (r.upper - r.lower)) for r in lb.rows}


def run_case(
    seed: int, kind: str, size: int, signals: str, args: argparse.Namespace
) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    true, honest = honest_population(rng, args.models, args.voters, args.honest)
    names = [f"model-{i:02d}" for i in range(args.models)]
    target = int(np.argsort(-true)[args.target_rank - 1])
    base = ratings_of(to_battles(honest, names, "none"))
    if kind == "none":
        votes, attacked = honest, [target]
    else:
        bad, attacked = attack(rng, kind, true, size, args.voters, target, args.accounts)
        votes = honest + bad
    is_attacker = votes.voter >= args.voters
    bt = to_battles(votes, names, signals)
    t0 = time.perf_counter()
    keep, _ = flagged_voter_mask(bt)
    seconds = time.perf_counter() - t0
    raw = ratings_of(bt)
    defended = ratings_of(bt.select(keep))

    def worst(board: dict[str, tuple[float, float]]) -> float:
        return max(
            abs(board[names[m]][0] - base[names[m]][0]) / base[names[m]][1] for m in attacked
        )

    honest_voters = np.unique(votes.voter[~is_attacker])
    flagged_honest = np.unique(votes.voter[~is_attacker & ~keep])

    def rank(board: dict[str, tuple[float, float]]) -> int:
        return sorted(board, key=lambda m: -board[m][0]).index(names[target]) + 1

    rank_honest, rank_raw, rank_def = rank(base), rank(raw), rank(defended)
    return {
        "raw": worst(raw),
        "defended": worst(defended),
        "caught": float((~keep[is_attacker]).mean()) if is_attacker.any() else float("nan"),
        "honest_flagged": flagged_honest.size / honest_voters.size,
        "target_raw_elo": raw[names[target]][0] - base[names[target]][0],
        "rank_up_raw": rank_honest - rank_raw,
        "rank_up_def": rank_honest - rank_def,
        "seconds": seconds,
    }


CASES = [
    ("none", "votes"),
    ("targeted", "votes"),
    ("sybil", "votes"),
    ("sybil", "first_seen"),
    ("sybil", "address"),
    ("blend", "votes"),
    ("omnipresent", "votes"),
    ("omni-sybil", "votes"),
    ("omni-sybil", "first_seen"),
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=2024)
    p.add_argument("--models", type=int, default=24)
    p.add_argument("--voters", type=int, default=2500)
    p.add_argument("--honest", type=int, default=20_000)
    p.add_argument("--target-rank", type=int, default=14)
    p.add_argument("--accounts", type=int, default=30, help="sybil accounts per attack")
    p.add_argument("--sizes", default="100,500,2000")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(
        f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}; "
        f"{args.honest:,} honest votes, {args.voters:,} voters, {args.models} models, target "
        f"rank {args.target_rank}, seeds {seeds.start}..{seeds.stop - 1}"
    )
    print(
        "| attack | signals | votes | shift raw (CI half-widths) | shift defended | target "
        "places up raw / defended | attacker votes caught | honest voters flagged | test s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for kind, signals in CASES:
        for size in [0] if kind == "none" else sizes:
            res = [run_case(s, kind, size, signals, args) for s in seeds]
            avg = {key: float(np.mean([r[key] for r in res])) for key in res[0]}
            worst_def = max(r["defended"] for r in res)
            worst_fp = max(r["honest_flagged"] for r in res)
            rows.append({"attack": kind, "signals": signals, "votes": size, **avg,
                         "defended_max": worst_def, "honest_flagged_max": worst_fp})  # fmt: skip
            caught = "-" if kind == "none" else f"{avg['caught']:.0%}"
            print(
                f"| {kind} | {signals} | {size:,} | {avg['raw']:.2f} | {avg['defended']:.2f} "
                f"(max {worst_def:.2f}) | {avg['rank_up_raw']:+.1f} / {avg['rank_up_def']:+.1f} "
                f"| {caught} | {avg['honest_flagged']:.3%} (max {worst_fp:.3%}) "
                f"| {avg['seconds']:.1f} |",
                flush=True,
            )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
