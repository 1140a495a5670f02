"""Battle store speed: durable vote commits per second, and loading votes for the ratings.

Measures, in one run, on SQLite (WAL, synchronous=FULL) and PostgreSQL:

* sustained ``record_vote`` commits/s with 1, 2 and 8 writer processes (each vote is its own
  transaction, acknowledged only once durable: the path the app takes);
* the app's two per-vote lookups at that size (duplicate-prompt count, votes-per-day
  count), with their indexes and without;
* seconds to load N votes (default 1M) into ``ratings.data.Battles`` arrays with
  ``battles_for_ratings``, against the naive baseline in the same run: one ORM object per
  row (``select(Vote)``), names looked up per row, arrays built from Python lists.

PostgreSQL: ``--pg URL`` (an empty database you may write to), else ``ARENA_TEST_PG_URL``,
else a throwaway server started here from the local PostgreSQL binaries (initdb + pg_ctl on a
free loopback port; as user ``postgres`` when run as root), unless ``--no-pg``.

Usage::

    python benchmarks/store_bench.py [--writers 1,2,8] [--votes-per-writer 300]
        [--load-votes 1000000] [--naive-votes N] [--backends sqlite,postgresql]
        [--pg URL | --no-pg] [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, SQLModel

from arena import store
from ratings.data import Battles

USER = "bench-user"
MODELS = [f"model-{i:02d}" for i in range(40)]


# ------------------------------------------------------------------------------ databases


@contextlib.contextmanager
def throwaway_pg() -> Iterator[str]:
    """Start a private PostgreSQL server; yield its URL; stop and delete it."""
    bindirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    pg_ctl = shutil.which("pg_ctl")
    bindir = bindirs[-1] if bindirs else Path(pg_ctl).parent if pg_ctl else None
    if bindir is None:
        raise SystemExit("no PostgreSQL binaries found: pass --pg URL or --no-pg")
    base = Path(tempfile.mkdtemp(prefix="arena-bench-pg."))
    (base / "sock").mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(base, "postgres")
        shutil.chown(base / "sock", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"
    run = [*prefix]
    subprocess.run([*run, str(bindir / "initdb"), "-D", str(data), "-U", "arena", "-A", "trust",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True)  # fmt: skip
    opts = f"-p {port} -k {base / 'sock'} -c listen_addresses=127.0.0.1 -c max_connections=50"
    subprocess.run([*run, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"),
                    "-w", "-o", opts, "start"], check=True, capture_output=True)  # fmt: skip
    try:
        subprocess.run([*run, str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                        "-U", "arena", "bench"], check=True)  # fmt: skip
        yield f"postgresql+psycopg://arena@127.0.0.1:{port}/bench"
    finally:
        subprocess.run([*run, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                        "stop"], capture_output=True)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


class Databases:
    """Fresh, migrated databases: SQLite files in a temporary directory, or schemas on the
    PostgreSQL server."""

    def __init__(self, workdir: Path, pg_url: str | None) -> None:
        self.workdir = workdir
        self.pg_url = pg_url
        self.schemas: list[str] = []

    def fresh(self, backend: str) -> str:
        if backend == "sqlite":
            url = f"sqlite:///{self.workdir / f'{uuid.uuid4().hex[:8]}.db'}"
        else:
            assert self.pg_url is not None
            name = f"bench_{uuid.uuid4().hex[:8]}"
            self._admin(f'CREATE SCHEMA "{name}"')
            self.schemas.append(name)
            sep = "&" if "?" in self.pg_url else "?"
            url = f"{self.pg_url}{sep}options={quote(f'-csearch_path={name}')}"
        engine = store.open_engine(url, create_if_empty=True)
        with store.new_session(engine) as s:
            for name in MODELS:
                store.upsert_model(session=s, name=name, backend="openai")
        engine.dispose()
        return url

    def _admin(self, sql: str) -> None:
        assert self.pg_url is not None
        admin = create_engine(make_url(self.pg_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(sql))
        admin.dispose()

    def close(self) -> None:
        for name in self.schemas:
            self._admin(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _model_ids(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {n: i for n, i in conn.execute(text("SELECT name, id FROM model"))}


# ----------------------------------------------------------------------------- vote commits


def _seed_ready(url: str, ids: list[str]) -> None:
    engine = store.open_engine(url)
    mids = _model_ids(engine)
    now = store.utcnow()
    rows = [
        {"id": bid, "mode": "anony", "model_a_id": mids[MODELS[i % 40]],
         "model_b_id": mids[MODELS[(i + 1) % 40]], "user_key": USER, "pair_probability": 0.01,
         "policy_name": "bench", "policy_version": "1", "created_at": now, "updated_at": now,
         "status": "ready"}
        for i, bid in enumerate(ids)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(SQLModel.metadata.tables["battle"]), rows)
    engine.dispose()


def _writer(url: str, ids: list[str], start: Any, results: Any) -> None:
    engine = store.open_engine(url)
    with store.new_session(engine) as s:
        store.get_battle(session=s, battle_id=ids[0])  # connect before the clock starts
        start.wait()
        t0 = time.perf_counter()
        for i, bid in enumerate(ids):
            store.record_vote(session=s, battle_id=bid, winner=store.WINNERS[i % 4], user_key=USER)
        t1 = time.perf_counter()
    engine.dispose()
    results.put((t0, t1))


def bench_commits(url: str, writers: int, per_writer: int) -> dict[str, float]:
    ids = [[f"w{w}-{i}" for i in range(per_writer)] for w in range(writers)]
    _seed_ready(url, [b for chunk in ids for b in chunk])
    ctx = mp.get_context("fork")
    start, results = ctx.Barrier(writers), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, chunk, start, results)) for chunk in ids]
    for p in procs:
        p.start()
    spans = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    if any(p.exitcode != 0 for p in procs):
        raise SystemExit("a writer failed")
    elapsed = max(t1 for _, t1 in spans) - min(t0 for t0, _ in spans)
    engine = store.open_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM vote")).scalar_one()
    engine.dispose()
    assert n == writers * per_writer, (n, writers * per_writer)
    return {"writers": writers, "votes": n, "seconds": elapsed, "votes_per_s": n / elapsed}


# ------------------------------------------------------------------------------- bulk load


def _bulk_votes(url: str, n: int, seed: int = 0) -> None:
    """N voted battles, written with the driver's bulk path (set-up, not what is timed)."""
    engine = store.open_engine(url)
    mids = list(_model_ids(engine).values())
    rng = np.random.default_rng(seed)
    a = rng.integers(0, len(mids), n)
    b = (a + rng.integers(1, len(mids), n)) % len(mids)
    outcome = rng.integers(0, 4, n)
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    secs = np.sort(rng.integers(0, 3 * 10**13, n))  # microseconds over about a year
    anony = rng.random(n) < 0.9
    excluded = rng.random(n) < 0.02
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            # The store's SQLite connections leave transaction control to SQLAlchemy (which
            # the raw connection bypasses): without BEGIN every row would be its own commit.
            cur.execute("BEGIN IMMEDIATE")
        chunk = 100_000
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            battles, votes = [], []
            for i in range(lo, hi):
                bid = f"bulk-{i:08d}"
                when = base + dt.timedelta(microseconds=int(secs[i]))
                ts: Any = (
                    when.replace(tzinfo=None).isoformat(" ", "microseconds") if sqlite else when
                )
                ma, mb = mids[a[i]], mids[b[i]]
                battles.append((bid, "anony" if anony[i] else "named", ma, mb, f"judge-{i % 5000}",
                                ts, ts, "voted", "bench", "1"))  # fmt: skip
                votes.append((bid, store.WINNERS[outcome[i]], ma, mb, bool(anony[i]),
                               f"judge-{i % 5000}", f"q-{i % 20000}", 1, ts,
                               "bench_excluded" if excluded[i] else None))  # fmt: skip
            bcols = ("id, mode, model_a_id, model_b_id, user_key, created_at, updated_at, "
                     "status, policy_name, policy_version")  # fmt: skip
            vcols = ("battle_id, winner, model_a_id, model_b_id, anony, judge, question_id, "
                     "turn, voted_at, exclusion")  # fmt: skip
            if sqlite:
                cur.executemany(f"INSERT INTO battle ({bcols}) VALUES ({','.join('?' * 10)})",
                                battles)  # fmt: skip
                cur.executemany(f"INSERT INTO vote ({vcols}) VALUES ({','.join('?' * 10)})",
                                votes)  # fmt: skip
            else:
                with cur.copy(f"COPY battle ({bcols}) FROM STDIN") as cp:  # type: ignore[attr-defined]
                    for row in battles:
                        cp.write_row(row)
                with cur.copy(f"COPY vote ({vcols}) FROM STDIN") as cp:  # type: ignore[attr-defined]
                    for row in votes:
                        cp.write_row(row)
        raw.commit()
    finally:
        raw.close()
        engine.dispose()


def naive_load(engine: Engine) -> Battles:
    """The baseline: one ORM object per vote, names looked up per row."""
    with Session(engine) as s:
        names = {m.id: m.name for m in s.exec(select(store.Model)).scalars()}  # type: ignore[call-overload]
        votes = s.exec(
            select(store.Vote)
            .where(  # type: ignore[call-overload]
                store.Vote.anony == True,  # noqa: E712
                store.Vote.exclusion == None,  # noqa: E711
            )
            .order_by(store.Vote.id)
        ).scalars()
        a, b, w, judge, qid, ts = [], [], [], [], [], []
        for v in votes:
            a.append(names[v.model_a_id])
            b.append(names[v.model_b_id])
            w.append(v.winner)
            judge.append(v.judge)
            qid.append(v.question_id)
            ts.append(v.voted_at.timestamp())
    return Battles.from_columns(
        np.asarray(a, dtype=object),
        np.asarray(b, dtype=object),
        np.asarray(w, dtype=object),
        clusters={
            "judge": np.asarray(judge, dtype=object),
            "question_id": np.asarray(qid, dtype=object),
        },
        tstamp=np.asarray(ts),
        source="naive",
    )


def bench_load(url: str, n: int, naive_n: int) -> dict[str, Any]:
    t = time.perf_counter()
    _bulk_votes(url, n)
    setup = time.perf_counter() - t
    engine = store.open_engine(url)
    try:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            fast = store.battles_for_ratings(engine=engine)
            times.append(time.perf_counter() - t)
        out: dict[str, Any] = {"votes": n, "counted": len(fast), "setup_s": setup,
                               "fast_s": min(times), "fast_runs_s": times}  # fmt: skip
        # Without the judge/question_id columns: what `arena ratings --db` reads unless a
        # clustered CI or --exclude-flagged needs them.
        bare = []
        for _ in range(3):
            t = time.perf_counter()
            store.battles_for_ratings(engine=engine, with_clusters=False)
            bare.append(time.perf_counter() - t)
        out.update(fast_no_clusters_s=min(bare), fast_no_clusters_runs_s=bare)
        out["vote_lookups"] = bench_vote_lookups(engine)
        if naive_n:
            if naive_n < n:  # the naive path on a prefix, scaled (it is linear)
                with engine.begin() as conn:
                    conn.execute(text(f"DELETE FROM vote WHERE id > {naive_n}"))
            t = time.perf_counter()
            naive = naive_load(engine)
            naive_s = time.perf_counter() - t
            out.update(naive_votes=naive_n, naive_s=naive_s,
                       naive_scaled_s=naive_s * n / naive_n)  # fmt: skip
            if naive_n >= n:
                assert np.array_equal(naive.a, fast.a) and np.array_equal(naive.b, fast.b)
                assert np.array_equal(naive.outcome, fast.outcome)
                assert naive.tstamp is not None and fast.tstamp is not None
                assert np.allclose(naive.tstamp, fast.tstamp, rtol=0, atol=1e-6)
            out["speedup"] = out["naive_scaled_s"] / out["fast_s"]
        return out
    finally:
        engine.dispose()


def bench_vote_lookups(engine: Engine, lookups: int = 200, baseline: int = 10) -> dict[str, Any]:
    """The app's two per-vote lookups, with their indexes and without (the baseline).

    ``question``: the duplicate-prompt count (``ix_vote_question_id``); ``voter``: the
    votes-per-day count (``ix_vote_judge_voted_at``).  The baseline drops the index, then
    puts it back, in the same run: a full scan per vote.
    """
    rng = np.random.default_rng(1)
    day = dt.timedelta(days=1)
    # The bulk votes span 2024; a window ending mid-2024 holds some of each voter's votes.
    until = dt.datetime(2024, 7, 1, tzinfo=dt.UTC)

    def question(i: int) -> None:
        store.counted_votes_on_question(engine=engine, question_id=f"q-{i % 20000}",
                                        except_battle="-")  # fmt: skip

    def voter(i: int) -> None:
        store.recent_votes_by(engine=engine, user_key=f"judge-{i % 5000}", since=until - day)

    cases = {"question": (question, "ix_vote_question_id", "vote (question_id)"),
             "voter": (voter, "ix_vote_judge_voted_at", "vote (judge, voted_at)")}  # fmt: skip
    out: dict[str, Any] = {"lookups": lookups, "baseline_lookups": baseline}
    for name, (fn, index, columns) in cases.items():

        def per_lookup_ms(k: int, fn: Any = fn) -> float:
            picks = rng.integers(0, 1 << 30, k)
            t = time.perf_counter()
            for i in picks:
                fn(int(i))
            return (time.perf_counter() - t) / k * 1e3

        indexed = per_lookup_ms(lookups)
        with engine.begin() as conn:
            conn.execute(text(f"DROP INDEX {index}"))
        try:
            scan = per_lookup_ms(baseline)
        finally:
            with engine.begin() as conn:
                conn.execute(text(f"CREATE INDEX {index} ON {columns}"))
        out[name] = {"indexed_ms": indexed, "scan_ms": scan, "speedup": scan / indexed}
    return out


# ------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--writers", default="1,2,8", help="writer process counts (default 1,2,8)")
    p.add_argument("--votes-per-writer", type=int, default=300)
    p.add_argument("--load-votes", type=int, default=1_000_000)
    p.add_argument(
        "--naive-votes",
        type=int,
        default=None,
        help="votes for the naive baseline (default: all; fewer are scaled up)",
    )
    p.add_argument("--backends", default="sqlite,postgresql")
    p.add_argument("--pg", default=None, metavar="URL", help="PostgreSQL database to use")
    p.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    p.add_argument("--workdir", type=Path, default=None, help="where SQLite files go")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write results here")
    args = p.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b and not (args.no_pg and b != "sqlite")]
    writers = [int(w) for w in args.writers.split(",") if w]  # "" skips the commit runs
    naive_n = args.load_votes if args.naive_votes is None else args.naive_votes

    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "load_avg": os.getloadavg()},
        "params": {"writers": writers, "votes_per_writer": args.votes_per_writer,
                   "load_votes": args.load_votes, "naive_votes": naive_n},
        "backends": {},
    }  # fmt: skip
    with contextlib.ExitStack() as stack:
        pg_url = args.pg or os.environ.get("ARENA_TEST_PG_URL")
        if "postgresql" in backends and not pg_url:
            pg_url = stack.enter_context(throwaway_pg())
        work = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        dbs = Databases(work, pg_url)
        stack.callback(dbs.close)
        for backend in backends:
            r: dict[str, Any] = {"commits": []}
            if backend == "postgresql":
                r["server"] = store.redact_url(pg_url or "")
            for w in writers:
                res = bench_commits(dbs.fresh(backend), w, args.votes_per_writer)
                print(f"{backend:10s} {w} writer(s): {res['votes_per_s']:7.0f} votes/s "
                      f"({res['votes']} votes in {res['seconds']:.2f} s)", flush=True)  # fmt: skip
                r["commits"].append(res)
            if args.load_votes:
                res = bench_load(dbs.fresh(backend), args.load_votes, naive_n)
                print(f"{backend:10s} load {res['votes']} votes ({res['counted']} counted): "
                      f"{res['fast_s']:.2f} s fast; naive ORM {res.get('naive_scaled_s', 0):.1f} s"
                      f" -> {res.get('speedup', 0):.0f}x", flush=True)  # fmt: skip
                for what in ("question", "voter"):
                    q = res["vote_lookups"][what]
                    print(f"{backend:10s} per-vote {what} lookup: {q['indexed_ms']:.3f} ms "
                          f"indexed, {q['scan_ms']:.1f} ms by scan ({q['speedup']:.0f}x)",
                          flush=True)  # fmt: skip
                r["load"] = res
            results["backends"][backend] = r
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
