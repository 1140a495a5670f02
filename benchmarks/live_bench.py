"""Live leaderboard benchmark: from vote commit to the leaderboard, at a million votes.

    python benchmarks/live_bench.py --db postgresql+psycopg://arena@127.0.0.1:5432/bench \\
        [--votes 1000000] [--models 129] [--users 20] [--seconds 30] [--json OUT]

Fills an empty PostgreSQL database with ``--votes`` counted votes among ``--models`` models
(in SQL, a few seconds per 100k), then runs ``--users`` threads that vote back to back
through the store's write path (create the battle, store the prompt, mark it ready, record
the vote) while the app's :class:`arena.standings.Standings` updates the board in the
background every ``--refresh`` seconds, as in the app.  For every vote it records when its
commit returned and when a snapshot first included it (``snapshot.last_vote_id`` reached the
vote's id): ``live_p50_s`` / ``live_p95_s``.

Baseline in the same run: the full recomputation the app used before
(``store.battles_for_ratings`` + ``compute_leaderboard``); a vote shows at the earliest when
one finishes, so its time is a lower bound on the baseline's commit-to-board delay.

The added cost per vote: the vote transaction is unchanged (the board reads the vote table
afterwards), so the cost is the background work, measured as the updates' CPU time (of the
thread that runs them) and their wall time, each divided by the votes folded in, and the
vote commit latency with and without the board running (two phases of the same length).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from arena import store  # noqa: E402
from arena.roster import Roster  # noqa: E402
from arena.standings import Standings  # noqa: E402
from ratings import RatingOptions, compute_leaderboard  # noqa: E402


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 4)


def fill(engine: Any, votes: int, models: int, say: Any) -> None:
    """``votes`` counted votes among ``models`` models, outcomes from a BT model."""
    with engine.begin() as conn:
        if conn.execute(text("SELECT count(*) FROM vote")).scalar_one():
            raise SystemExit("live_bench: --db must be an empty database (it holds votes)")
        conn.execute(
            text(
                "INSERT INTO model (name, backend, config_hash, created_at) "
                "SELECT 'model-' || lpad(g::text, 3, '0'), 'openai', 'h' || g, now() "
                "FROM generate_series(1, :m) g"
            ),
            {"m": models},
        )
        lo, hi = conn.execute(text("SELECT min(id), max(id) FROM model")).one()
    chunk = 100_000
    for start in range(0, votes, chunk):
        n = min(chunk, votes - start)
        with engine.begin() as conn:
            # Pairs spread over all models (b != a by construction); model k's strength is
            # 3 k / models, so the ratings span ~520 Elo points.
            conn.execute(
                text(
                    "CREATE TEMP TABLE bulk ON COMMIT DROP AS "
                    "SELECT g, :lo + a AS a, "
                    ":lo + (a + 1 + (g::bigint * 104729) % (:m - 1)) % :m AS b, "
                    "now() - interval '1 day' + g * interval '1 millisecond' AS ts, "
                    "random() AS u FROM (SELECT g, ((g::bigint * 7919) % :m)::int AS a "
                    "FROM generate_series(:s + 1, :s + :n) g) x"
                ),
                {"lo": lo, "m": hi - lo + 1, "s": start, "n": n},
            )
            conn.execute(
                text(
                    "INSERT INTO battle (id, mode, policy_name, policy_version, model_a_id, "
                    "model_b_id, user_key, created_at, updated_at, status) "
                    "SELECT 'bulk-' || g, 'anony', 'uniform', '1', a, b, 'u' || (g % 20000), "
                    "ts, ts, 'voted' FROM bulk"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO vote (battle_id, model_a_id, model_b_id, anony, judge, "
                    "question_id, turn, voted_at, winner) "
                    "SELECT 'bulk-' || g, a, b, TRUE, 'u' || (g % 20000), 'q' || (g % 300000), "
                    "1, ts, CASE WHEN u < 0.1 THEN 'tie' WHEN u < 0.15 THEN 'tie (bothbad)' "
                    "WHEN random() < 1 / (1 + exp(-3.0 * (a - b) / :m)) THEN 'model_a' "
                    "ELSE 'model_b' END FROM bulk ORDER BY g"
                ),
                {"m": hi - lo + 1},
            )
        say(f"filled {start + n:,} votes")
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


class Voters:
    """``users`` threads voting back to back through the store's write path."""

    def __init__(self, engine: Any, users: int, models: list[str]) -> None:
        self.engine = engine
        self.users = users
        self.models = models
        self.commits: list[tuple[int, float, float]] = []  # (vote id, committed at, took)
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def run_for(self, seconds: float) -> list[tuple[int, float, float]]:
        self.stop.clear()
        start = len(self.commits)
        threads = [threading.Thread(target=self._user, args=(u,)) for u in range(self.users)]
        for t in threads:
            t.start()
        time.sleep(seconds)
        self.stop.set()
        for t in threads:
            t.join()
        return self.commits[start:]

    def _user(self, uid: int) -> None:
        k = 0
        with store.new_session(self.engine) as s:
            while not self.stop.is_set():
                a = self.models[(uid * 31 + k) % len(self.models)]
                b = self.models[(uid * 31 + k + 1 + k % 7) % len(self.models)]
                battle = store.create_battle(
                    session=s,
                    mode="anony",
                    model_a=a,
                    model_b=b,
                    user_key=f"bench-{uid}",
                    pair_probability=0.5,
                    policy_name="uniform",
                    policy_version="1",
                )
                store.append_message(
                    session=s, battle_id=battle.id, turn=1, side="user", content=f"q {uid} {k}"
                )
                store.set_status(session=s, battle_id=battle.id, status="ready")
                t0 = time.time()
                vote = store.record_vote(
                    session=s,
                    battle_id=battle.id,
                    winner=("model_a", "model_b", "tie")[k % 3],
                    user_key=f"bench-{uid}",
                )
                t1 = time.time()
                with self.lock:
                    self.commits.append((int(vote.id or 0), t1, t1 - t0))
                k += 1


def run_voters(args: argparse.Namespace) -> list[tuple[int, float, float]]:
    """Run ``--users`` voters for ``--seconds`` in a child process; its commit records."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "commits.json"
        subprocess.run(
            [
                *(sys.executable, __file__, "--db", args.db, "--users", str(args.users)),
                *("--seconds", str(args.seconds), "--voters-out", str(out)),
            ],
            check=True,
        )
        return [tuple(r) for r in json.loads(out.read_text())]  # type: ignore[misc]


def voters_main(args: argparse.Namespace) -> int:
    engine = create_engine(args.db, pool_size=args.users, max_overflow=0)
    with engine.connect() as conn:
        names = [str(r[0]) for r in conn.execute(text("SELECT name FROM model ORDER BY id"))]
    commits = Voters(engine, args.users, names).run_for(args.seconds)
    args.voters_out.write_text(json.dumps(commits))
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    def say(message: str) -> None:
        print(f"live_bench: {message}", file=sys.stderr, flush=True)

    engine = store.open_engine(args.db, create_if_empty=True)
    if not args.reuse:
        fill(engine, args.votes, args.models, say)
    with engine.connect() as conn:
        names = [str(r[0]) for r in conn.execute(text("SELECT name FROM model ORDER BY id"))]
        n_votes = int(conn.execute(text("SELECT count(*) FROM vote")).scalar_one())
    say(f"{n_votes:,} votes, {len(names)} models")

    # Baseline: the full recomputation.
    full_s = []
    for _ in range(args.baseline_rounds):
        t0 = time.perf_counter()
        battles = store.battles_for_ratings(engine=engine, with_clusters=False)
        compute_leaderboard(battles, RatingOptions())
        full_s.append(time.perf_counter() - t0)
    say(f"full recomputation: {statistics.median(full_s):.2f} s")

    # The voters stand for the app processes: another process, as in a deployment (in this
    # one their 20 threads would hold the GIL and the pooled connections the board needs).
    # Phase 1: votes without the live board (the commit latency baseline).
    plain = run_voters(args)
    say(f"without the board: {len(plain)} votes")

    # Phase 2: the same load with the app's Standings updating every --refresh seconds.
    standings = Standings(
        engine=engine, roster=Roster(Path("(none)"), ()), refresh_s=0.0, min_battles=50
    )
    t0 = time.perf_counter()
    first = standings.get(wait=True)
    first_s = time.perf_counter() - t0
    say(f"first live snapshot (a full SQL count): {first_s:.2f} s, {first.n_battles:,} votes")
    seen: list[tuple[int, float]] = []  # (last_vote_id, when the snapshot was ready)
    update_s: list[float] = []
    stop = threading.Event()

    def board() -> None:
        # As in the app: a stale snapshot (refresh_s=0 here, paced by this loop) starts an
        # update in Standings' own thread; get(wait=True) returns when it is done.
        while not stop.is_set():
            w0 = time.perf_counter()
            snap = standings.get(wait=True)
            update_s.append(time.perf_counter() - w0)
            seen.append((snap.last_vote_id, time.time()))
            stop.wait(max(0.0, args.refresh - (time.perf_counter() - w0)))

    cpu0 = standings.live_cpu_s
    board_thread = threading.Thread(target=board, daemon=True)
    board_thread.start()
    live = run_voters(args)
    stop.set()
    board_thread.join()
    board_cpu_s = standings.live_cpu_s - cpu0
    say(f"with the board: {len(live)} votes, {len(update_s)} updates")

    latency = []
    j = 0
    seen.sort(key=lambda x: x[1])
    for vid, committed, _ in sorted(live, key=lambda x: x[1]):
        # The first snapshot, finished after the commit, that includes the vote.
        while j < len(seen) and seen[j][1] < committed:
            j += 1
        hit = next((t for last, t in seen[j:] if last >= vid), None)
        if hit is not None:
            latency.append(hit - committed)
    missed = len(live) - len(latency)
    plain_took = [t for _, _, t in plain]
    live_took = [t for _, _, t in live]
    return {
        "votes_in_db": n_votes,
        "models": len(names),
        "users": args.users,
        "seconds_per_phase": args.seconds,
        "refresh_s": args.refresh,
        "baseline_full_recompute_p50_s": round(statistics.median(full_s), 3),
        "baseline_full_recompute_max_s": round(max(full_s), 3),
        "first_live_snapshot_s": round(first_s, 3),
        "live_update_p50_s": pct(update_s, 0.5),
        "live_update_p95_s": pct(update_s, 0.95),
        "commit_to_board_p50_s": pct(latency, 0.5),
        "commit_to_board_p95_s": pct(latency, 0.95),
        "commit_to_board_max_s": pct(latency, 1.0),
        "votes_never_seen": missed,
        "votes_without_board": len(plain),
        "votes_with_board": len(live),
        "vote_commit_p50_ms_without_board": round(1000 * statistics.median(plain_took), 2),
        "vote_commit_p50_ms_with_board": round(1000 * statistics.median(live_took), 2),
        "vote_commit_p95_ms_without_board": round(1000 * (pct(plain_took, 0.95) or 0), 2),
        "vote_commit_p95_ms_with_board": round(1000 * (pct(live_took, 0.95) or 0), 2),
        # Background time of the board per vote folded (wall time of the updates, an upper
        # bound on their CPU), and the board's share of the phase.
        "board_ms_per_vote": round(1000 * sum(update_s) / max(1, len(live)), 3),
        "board_busy_fraction": round(sum(update_s) / args.seconds, 3),
        # CPU time of the thread that runs the updates (Standings' own): the board's cost
        # in this process, without the waits for a core that the wall time above includes.
        "board_cpu_ms_per_update": round(1000 * board_cpu_s / max(1, len(update_s)), 2),
        "board_cpu_ms_per_vote": round(1000 * board_cpu_s / max(1, len(live)), 3),
        "board_cpu_fraction_of_core": round(board_cpu_s / args.seconds, 3),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="an empty PostgreSQL database URL")
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=129)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    parser.add_argument("--refresh", type=float, default=0.5, help="seconds between updates")
    parser.add_argument("--baseline-rounds", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="the database is already filled")
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--voters-out", type=Path, help=argparse.SUPPRESS)  # the child
    args = parser.parse_args(argv)
    if args.voters_out:
        return voters_main(args)
    result = run(args)
    out = json.dumps(result, indent=2)
    print(out)
    if args.json:
        args.json.write_text(out + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
