"""Style control at LMSYS scale: ``arena ratings --style-control`` against arena-rank.

One run measures both sides on the same synthetic log (1.8M battles, 129 models, LMSYS
``conv_metadata`` per battle), each as a whole process (start, read, fit, sandwich CIs):

* ours: ``arena ratings LOG --style-control --format json`` (wall time, peak RSS), plus the
  in-process split (read, fit, sandwich);
* baseline: ``benchmarks/arena_rank_style.py LOG`` under a Python that has arena-rank
  (``--arena-rank-python``), which reports its own split.

The target (issue 14): our whole process takes at most a third of arena-rank's
ContextualBradleyTerry sandwich.  The ratings of the two are compared too (max difference).

Usage::

    python benchmarks/style_bench.py --arena-rank-python /path/venv/bin/python \
        [--battles 1800000] [--models 129] [--formats jsonl,parquet] [--keep DIR] [--json OUT]
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

# This checkout's ratings/ (not an installed copy), then the sibling benchmark module.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ratings_bench import WINNERS, run_measuring_peak

HERE = Path(__file__).resolve().parent


def make_log(path: Path, n: int, m: int, seed: int) -> None:
    """Synthetic clean_battle JSONL with conv_metadata; longer, more formatted answers win
    more often (a known style effect on top of BT strengths)."""
    rng = np.random.default_rng(seed)
    strength = rng.normal(0, 0.8, m)
    length = rng.lognormal(np.log(500), 0.5, m)  # each model's typical answer length
    fmt = rng.gamma(2.0, 1.0, m)  # and markdown habit
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    tok = np.stack([rng.lognormal(np.log(length[a]), 0.4), rng.lognormal(np.log(length[b]), 0.4)])
    tok = tok.astype(np.int64)
    heads = [rng.poisson(np.stack([fmt[a], fmt[b]]) * 0.4 / k) for k in range(1, 7)]
    ordered = rng.poisson(np.stack([fmt[a], fmt[b]]))
    unordered = rng.poisson(np.stack([fmt[a], fmt[b]]) * 1.5)
    bold = rng.poisson(np.stack([fmt[a], fmt[b]]) * 1.2)
    raw = (tok[0] - tok[1]) / (tok[0] + tok[1] + 1)
    p = 1 / (1 + np.exp(-(strength[a] - strength[b] + 0.8 * raw)))
    outcome = np.where(rng.random(n) < p, 0, 1)
    ties = rng.random(n) < 0.3
    outcome = np.where(ties, np.where(rng.random(n) < 0.7, 2, 3), outcome)
    user = rng.integers(5, 400, n)
    names = [f"model-{k:03d}" for k in range(m)]
    with path.open("w", encoding="utf-8") as fh:
        for s in range(0, n, 100_000):
            lines = []
            for i in range(s, min(n, s + 100_000)):
                h = [heads[k][:, i] for k in range(6)]
                lines.append(
                    f'{{"question_id": "q{i % 400_000}", "model_a": "{names[a[i]]}", '
                    f'"model_b": "{names[b[i]]}", "winner": "{WINNERS[outcome[i]]}", '
                    f'"judge": "arena_user_{i % 150_000}", "turn": 1, "anony": true, '
                    f'"language": "English", "tstamp": {1.7e9 + i:.1f}, "conv_metadata": '
                    f'{{"sum_user_tokens": {user[i]}, "sum_assistant_a_tokens": {tok[0, i]}, '
                    f'"sum_assistant_b_tokens": {tok[1, i]}, "turns": 1, '
                    + ", ".join(
                        f'"header_count_{sd}": {{'
                        + ", ".join(f'"h{k + 1}": {h[k][j]}' for k in range(6))
                        + "}"
                        for j, sd in enumerate("ab")
                    )
                    + ", "
                    + ", ".join(
                        f'"list_count_{sd}": {{"ordered": {ordered[j, i]}, '
                        f'"unordered": {unordered[j, i]}}}, '
                        f'"bold_count_{sd}": {{"**": {bold[j, i]}, "__": 0}}'
                        for j, sd in enumerate("ab")
                    )
                    + "}}\n"
                )
            fh.writelines(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arena-rank-python", required=True, help="a Python with arena-rank")
    ap.add_argument("--battles", type=int, default=1_800_000)
    ap.add_argument("--models", type=int, default=129)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write results here")
    ap.add_argument("--keep", type=Path, default=None, help="keep the log in this directory")
    ap.add_argument(
        "--formats",
        default="jsonl,parquet",
        help="files to measure both sides on: the JSONL log and/or a Parquet copy of it",
    )
    args = ap.parse_args()

    workdir = Path(args.keep or tempfile.mkdtemp(prefix="arena-style-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"style_{args.battles}.jsonl"
    if not log.exists():
        print(f"writing {args.battles:,} battles to {log} ...", file=sys.stderr)
        make_log(log, args.battles, args.models, args.seed)
    res: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "battles": args.battles,
        "models": args.models,
    }

    wanted = [f.strip() for f in args.formats.split(",")]
    formats = {"jsonl": log} if "jsonl" in wanted else {}
    if "parquet" in wanted:
        pq_path = workdir / f"style_{args.battles}.parquet"
        if not pq_path.exists():
            import pyarrow.json as pj
            import pyarrow.parquet as pq

            pq.write_table(pj.read_json(log), pq_path)
        formats["parquet"] = pq_path
    for fmt, path in formats.items():
        res[fmt] = measure(path, args, workdir)
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


def measure(log: Path, args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    """Both sides' whole processes on one file, and our in-process split."""
    res: dict[str, object] = {"file_mb": round(log.stat().st_size / 1e6, 1)}
    out = workdir / "style_lb.json"
    # --style-l2 N: arena-rank's default coefficient penalty (reg=1.0 on the mean
    # log-likelihood), so both sides fit the same model and their ratings can be compared.
    cmd = [sys.executable, "-m", "arena", "ratings", str(log), "--style-control",
           "--style-l2", str(args.battles), "--format", "json", "--out", str(out),
           "--no-progress"]  # fmt: skip
    t = time.perf_counter()
    peak = run_measuring_peak(cmd)
    ours = time.perf_counter() - t
    res.update(ours_command=" ".join(["arena", *cmd[3:]]), ours_s=round(ours, 2),
               ours_peak_rss_mb=round(peak))  # fmt: skip
    print(f"ours: {ours:.1f}s, peak {peak:.0f} MB", file=sys.stderr)

    # The in-process split of our side (same code path as the command).
    from ratings.leaderboard import RatingOptions, compute_leaderboard
    from ratings.readers import read_battles

    t = time.perf_counter()
    battles = read_battles(log, cluster_columns=(), with_context=True)
    t_read = time.perf_counter() - t
    t = time.perf_counter()
    compute_leaderboard(
        battles, RatingOptions(style_control=True, style_l2=float(args.battles), rounds=1)
    )
    res.update(ours_read_s=round(t_read, 2), ours_fit_sandwich_s=round(time.perf_counter() - t, 2))

    base_cmd = [args.arena_rank_python, str(HERE / "arena_rank_style.py"), str(log)]
    t = time.perf_counter()
    proc = subprocess.run(base_cmd, capture_output=True, text=True, check=True)
    base = time.perf_counter() - t
    split = json.loads(proc.stdout.strip().splitlines()[-1])
    res.update(arena_rank_s=round(base, 2),
               arena_rank_split={k: v for k, v in split.items() if k.endswith("_s")})  # fmt: skip
    print(f"arena-rank: {base:.1f}s {res['arena_rank_split']}", file=sys.stderr)

    doc = json.loads(out.read_text())
    mine = {r["model"]: r["rating"] for r in doc["models"]}
    pairs = zip(split["competitors"], split["ratings"], strict=True)
    diff = max(abs(mine[name] - r) for name, r in pairs)
    res.update(
        ours_over_arena_rank_fit_sandwich=round(ours / split["fit_sandwich_s"], 3),
        ours_over_arena_rank_process=round(ours / base, 3),
        ours_fit_sandwich_over_theirs=round(
            float(res["ours_fit_sandwich_s"]) / split["fit_sandwich_s"],
            3,  # type: ignore[arg-type]
        ),
        max_rating_difference=round(diff, 3),
    )
    return res


if __name__ == "__main__":
    sys.exit(main())
