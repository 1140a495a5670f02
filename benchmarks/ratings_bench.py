"""Ratings engine at LMSYS scale: 1.8M battles, 129 models, 35% ties.

Measures, in one run, each fast path against a baseline that does the same job the classic
way, so the figures are ratios on the same machine at the same moment:

* reading + aggregating the JSONL log: columnar reader vs a Python loop of ``json.loads``;
* the BT fit and sandwich CIs after loading;
* bootstrap B=1000 on counts vs per-battle resampling (resample 1.8M battle indices,
  re-aggregate, refit -- timed for a few rounds and scaled to B);
* the whole ``arena ratings FILE --ci bootstrap --rounds 1000`` process, with its peak RSS.

With ``--many-models M`` it measures instead the fit with very many models (40 battles per
model, 20% ties): the sparse conjugate-gradient Newton (the path past
``ratings.bt.DENSE_MAX_MODELS``) against the dense Newton on the same battles at
``--dense-models`` (the largest size the dense m x m solve does in reasonable time and
memory), then at M models alone, and the whole ``arena ratings FILE --ci none`` process at M
models with its peak RSS (plus, at ``--dense-models``, the default sandwich intervals).

Usage::

    python benchmarks/ratings_bench.py [--battles 1800000] [--models 129] [--rounds 1000]
        [--baseline-rounds 3] [--json OUT] [--keep DIR]
    python benchmarks/ratings_bench.py --many-models 10000 [--dense-models 4000] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import ratings.bt
from ratings.bootstrap import bootstrap_thetas
from ratings.bt import covariance, fit_bt
from ratings.data import Battles
from ratings.readers import read_battles

WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")


def make_log(path: Path, n: int, m: int, tie_rate: float, seed: int) -> None:
    """Write a synthetic clean_battle-style JSONL log drawn from a BT model."""
    rng = np.random.default_rng(seed)
    strength = rng.normal(0, 1, m)
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    p = 1 / (1 + np.exp(-(strength[a] - strength[b])))
    outcome = np.where(rng.random(n) < p, 0, 1)
    ties = rng.random(n) < tie_rate
    outcome = np.where(ties, np.where(rng.random(n) < 0.7, 2, 3), outcome)
    judge = rng.integers(0, 150_000, n)
    qid = rng.integers(0, 400_000, n)
    names = [f"model-{k:03d}" for k in range(m)]
    with path.open("w", encoding="utf-8") as fh:
        chunk = 200_000
        for s in range(0, n, chunk):
            lines = [
                f'{{"question_id": "q{qid[i]}", "model_a": "{names[a[i]]}", '
                f'"model_b": "{names[b[i]]}", "winner": "{WINNERS[outcome[i]]}", '
                f'"judge": "arena_user_{judge[i]}", "turn": 1, "anony": true, '
                f'"language": "English", "tstamp": {1.7e9 + i:.1f}}}\n'
                for i in range(s, min(n, s + chunk))
            ]
            fh.writelines(lines)


def naive_read(path: Path) -> Battles:
    """Baseline reader: one json.loads and one dict per line."""
    ma, mb, w, judge = [], [], [], []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec.get("anony", True) is False:
                continue
            ma.append(rec["model_a"])
            mb.append(rec["model_b"])
            w.append(rec["winner"])
            judge.append(rec.get("judge"))
    return Battles.from_columns(ma, mb, w, clusters={"judge": judge})


def timed(fn, *args, **kw):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def per_battle_bootstrap(battles: Battles, rounds: int, seed: int) -> np.ndarray:
    """Baseline bootstrap: resample battles (not counts), re-aggregate, refit."""
    rng = np.random.default_rng(seed)
    n = len(battles)
    out = []
    for _ in range(rounds):
        idx = rng.integers(0, n, n)
        res = Battles(battles.models, battles.a[idx], battles.b[idx], battles.outcome[idx])
        out.append(fit_bt(res.aggregate()).theta)
    return np.asarray(out)


def run_measuring_peak(cmd: list[str]) -> float:
    """Run ``cmd``; return its peak resident memory (MB) from /proc/PID/status VmHWM.

    getrusage(RUSAGE_CHILDREN) would be wrong here: a child forked from this (large) process
    keeps the parent's high-water mark across exec.  VmHWM belongs to the exec'd image.
    """
    proc = subprocess.Popen(cmd)
    status = Path(f"/proc/{proc.pid}/status")
    peak_kb = 0
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return peak_kb / 1024


def many_models_log(path: Path, m: int, seed: int) -> Battles:
    """Write (and return) 40 battles per model among ``m`` models, 20% ties, as JSONL."""
    rng = np.random.default_rng(seed)
    strength = rng.normal(0, 1, m)
    n = 40 * m
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    p = 1 / (1 + np.exp(-(strength[a] - strength[b])))
    outcome = np.where(rng.random(n) < 0.2, 2, np.where(rng.random(n) < p, 0, 1))
    names = [f"model-{k:05d}" for k in range(m)]
    with path.open("w", encoding="utf-8") as fh:
        fh.writelines(
            f'{{"model_a": "{names[a[i]]}", "model_b": "{names[b[i]]}", '
            f'"winner": "{WINNERS[outcome[i]]}"}}\n'
            for i in range(n)
        )
    return Battles.from_codes(names, a, b, outcome)


def fit_with(dense: bool, counts: object) -> object:
    """fit_bt forced onto the dense or the sparse Newton path."""
    saved = ratings.bt.DENSE_MAX_MODELS
    ratings.bt.DENSE_MAX_MODELS = 10**9 if dense else 0
    try:
        return fit_bt(counts)  # type: ignore[arg-type]
    finally:
        ratings.bt.DENSE_MAX_MODELS = saved


def many_models(args: argparse.Namespace, workdir: Path, res: dict[str, object]) -> None:
    for m in (args.dense_models, args.many_models):
        log = workdir / f"models_{m}.jsonl"
        battles = many_models_log(log, m, args.seed)
        counts = battles.aggregate()
        sparse, t_sparse = timed(fit_with, False, counts)
        row: dict[str, object] = {
            "battles": len(battles),
            "pairs": int(counts.pair_totals().n_pairs),
            "sparse_fit_s": round(t_sparse, 3),
        }
        if m == args.dense_models:
            dense, t_dense = timed(fit_with, True, counts)
            row.update(
                dense_fit_s=round(t_dense, 3),
                fit_speedup=round(t_dense / t_sparse, 1),
                max_theta_difference=float(np.abs(dense.theta - sparse.theta).max()),  # type: ignore[attr-defined]
            )
        for ci in ("none", "sandwich") if m == args.dense_models else ("none",):
            cmd = [sys.executable, "-m", "arena", "ratings", str(log), "--ci", ci,
                   "--format", "csv", "--out", str(workdir / f"lb_{m}_{ci}.csv"),
                   "--no-progress"]  # fmt: skip
            t = time.perf_counter()
            peak = run_measuring_peak(cmd)
            row[f"cli_ci_{ci}_s"] = round(time.perf_counter() - t, 2)
            row[f"cli_ci_{ci}_peak_rss_mb"] = round(peak)
        res[f"models_{m}"] = row
        print(f"{m} models: {row}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--battles", type=int, default=1_800_000)
    ap.add_argument("--models", type=int, default=129)
    ap.add_argument("--ties", type=float, default=0.35)
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--baseline-rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write results here")
    ap.add_argument("--keep", type=Path, default=None, help="keep the log in this directory")
    ap.add_argument("--many-models", type=int, default=0, help="measure M models instead")
    ap.add_argument("--dense-models", type=int, default=4000, help="dense baseline size")
    args = ap.parse_args()

    workdir = Path(args.keep or tempfile.mkdtemp(prefix="arena-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.many_models:
        res: dict[str, object] = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}",
            "load_average": os.getloadavg(),
        }
        many_models(args, workdir, res)
        text = json.dumps(res, indent=2)
        print(text)
        if args.json:
            args.json.write_text(text + "\n")
        return 0
    log = workdir / f"battles_{args.battles}.jsonl"
    if not log.exists():
        print(f"writing {args.battles:,} battles to {log} ...", file=sys.stderr)
        make_log(log, args.battles, args.models, args.ties, args.seed)
    size_mb = log.stat().st_size / 1e6
    res = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "battles": args.battles,
        "models": args.models,
        "tie_rate": args.ties,
        "file_mb": round(size_mb, 1),
    }

    # As `arena ratings` reads it: the judge/question_id columns only when a clustered CI
    # asks for them (timed separately below).
    battles, t_read = timed(read_battles, log, cluster_columns=())
    counts, t_agg = timed(battles.aggregate)
    _, t_read_clusters = timed(read_battles, log)
    _, t_naive = timed(naive_read, log)
    res.update(
        read_s=round(t_read, 3),
        aggregate_s=round(t_agg, 3),
        read_aggregate_s=round(t_read + t_agg, 3),
        read_with_cluster_columns_s=round(t_read_clusters, 3),
        naive_read_s=round(t_naive, 3),
        read_speedup=round(t_naive / t_read, 1),
        cells=int(counts.n.size),
    )
    print(
        f"read {t_read:.2f}s + aggregate {t_agg:.2f}s; naive read {t_naive:.2f}s", file=sys.stderr
    )

    fit, t_fit = timed(fit_bt, counts)
    cov, t_cov = timed(covariance, fit, counts, "sandwich")
    res.update(
        fit_s=round(t_fit, 4), sandwich_s=round(t_cov, 4), fit_sandwich_s=round(t_fit + t_cov, 4)
    )

    samples, t_boot = timed(bootstrap_thetas, counts, fit, rounds=args.rounds, seed=args.seed)
    _, t_base = timed(per_battle_bootstrap, battles, args.baseline_rounds, args.seed)
    per_round = t_base / args.baseline_rounds
    res.update(
        bootstrap_rounds=args.rounds,
        bootstrap_s=round(t_boot, 3),
        baseline_rounds_timed=args.baseline_rounds,
        baseline_s_per_round=round(per_round, 3),
        baseline_bootstrap_s_extrapolated=round(per_round * args.rounds, 1),
        bootstrap_speedup=round(per_round * args.rounds / t_boot, 1),
    )
    se = np.sqrt(np.diag(cov))
    res["bootstrap_sd_over_sandwich_se_median"] = round(float(np.median(samples.std(0) / se)), 3)
    print(f"fit {t_fit:.3f}s sandwich {t_cov:.3f}s bootstrap {t_boot:.2f}s "
          f"(baseline {per_round:.2f}s/round)", file=sys.stderr)  # fmt: skip

    cmd = [sys.executable, "-m", "arena", "ratings", str(log), "--ci", "bootstrap",
           "--rounds", str(args.rounds), "--format", "json", "--out", str(workdir / "lb.json"),
           "--no-progress"]  # fmt: skip
    t = time.perf_counter()
    peak_mb = run_measuring_peak(cmd)
    t_cli = time.perf_counter() - t
    res.update(
        cli_command=" ".join(["arena", *cmd[3:]]),
        cli_s=round(t_cli, 2),
        cli_peak_rss_mb=round(peak_mb),
    )
    print(f"arena ratings: {t_cli:.2f}s, peak RSS {peak_mb:.0f} MB", file=sys.stderr)

    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
