"""``arena audit SOURCE``: served vs voted, exclusions, exposure, flagged voters, connectivity."""

from __future__ import annotations

import argparse
import sys

from arena.cli.common import fail

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "audit",
        help="audit a database or battle log for integrity problems",
        description="Print battles served vs voted (abstention per user), exclusions by "
        "reason, exposure per model vs the sampling policy, voters flagged by the anomaly "
        "test (by judge key), and whether the comparison graph is connected.",
    )
    p.add_argument("source", nargs="?", metavar="SOURCE", help="battle log or database URL")
    p.add_argument(
        "--db",
        nargs="?",
        const="",
        metavar="URL",
        help="audit the arena database (default URL: ARENA_DB_URL, else the SQLite file)",
    )
    p.add_argument(
        "--min-votes",
        type=int,
        default=20,
        help="decisive votes a voter needs before they can be flagged (default 20)",
    )
    p.add_argument(
        "--z",
        type=float,
        default=-4.0,
        dest="z_threshold",
        help="flag voters whose agreement z-score is at or below this (default -4)",
    )
    p.add_argument(
        "--apply",
        action="store_true",
        help="database only: mark the flagged voters' counted votes as excluded "
        "(reason anomalous_voter); votes are kept, never deleted",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from arena.audit import audit_database, audit_log, format_report
    from arena.cli.rating_args import database_url
    from arena.config import Settings
    from ratings import BattleDataError

    try:
        url = database_url(args)
    except BattleDataError as exc:
        return fail(str(exc))
    if url is None and args.apply:
        return fail("--apply changes a database; a log file cannot be changed")
    try:
        if url is None:
            report = audit_log(args.source, min_votes=args.min_votes, z_threshold=args.z_threshold)
        else:
            from arena import store

            engine = store.open_engine(url or Settings.from_env().resolved_db_url)
            try:
                report = audit_database(
                    engine, min_votes=args.min_votes, z_threshold=args.z_threshold
                )
                if args.apply:
                    n = _apply(engine, [f.judge for f in report.flagged])
                    print(f"marked {n} votes as anomalous_voter", file=sys.stderr)
            finally:
                engine.dispose()
    except (BattleDataError, ValueError) as exc:
        return fail(str(exc))
    sys.stdout.write(format_report(report))
    return 0


def _apply(engine: object, judges: list[str]) -> int:
    from sqlalchemy import bindparam, text

    from arena import store

    if not judges:
        return 0
    with store.reader(engine).connect() as conn:  # type: ignore[arg-type]
        ids = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT battle_id FROM vote WHERE judge IN :judges AND exclusion IS NULL"
                ).bindparams(bindparam("judges", expanding=True)),
                {"judges": judges},
            )
        ]
    with store.new_session(engine) as session:  # type: ignore[arg-type]
        for battle_id in ids:
            store.mark_exclusion(session=session, battle_id=battle_id, reason="anomalous_voter")
    return len(ids)
