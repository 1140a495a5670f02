"""``arena audit SOURCE``: served vs voted, exclusions, exposure, flagged voters, robustness,
connectivity."""

from __future__ import annotations

import argparse
import json
import sys

from arena.cli.common import fail

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from arena.rigging import RiggingSettings

    p = sub.add_parser(
        "audit",
        help="audit a database or battle log for integrity problems",
        description="Print battles served vs voted (abstention per user), exclusions by "
        "reason, exposure per model vs the sampling policy, voters flagged by the rigging "
        "tests (by judge key, with the test, its statistic and the model it is about), how far "
        "each model's rating moves without its most influential voters, and whether the "
        "comparison graph is connected. See docs/integrity.md.",
    )
    p.add_argument("source", nargs="?", metavar="SOURCE", help="battle log or database URL")
    p.add_argument(
        "--db",
        nargs="?",
        const="",
        metavar="URL",
        help="audit the arena database (default URL: ARENA_DB_URL, else the SQLite file)",
    )
    defaults = RiggingSettings()
    p.add_argument(
        "--min-votes",
        type=int,
        default=defaults.min_votes,
        help="agreement test: decisive votes a voter needs before it can flag them "
        f"(default {defaults.min_votes})",
    )
    p.add_argument(
        "--z",
        type=float,
        default=defaults.z_threshold,
        dest="z_threshold",
        help="agreement test: flag voters whose agreement z-score is at or below this "
        f"(default {defaults.z_threshold:g})",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=defaults.alpha,
        help="family-wise error rate of the per-(voter, model) test and of each pooled group "
        f"test (default {defaults.alpha:g})",
    )
    p.add_argument(
        "--fdr",
        type=float,
        default=defaults.fdr,
        help=f"false-discovery rate of the per-model group (sybil) test (default {defaults.fdr:g})",
    )
    p.add_argument(
        "--time-window",
        type=float,
        default=defaults.time_window_s,
        metavar="SECONDS",
        help="accounts first seen within the same window form a group for the sybil test; "
        f"0 turns it off (default {defaults.time_window_s:g})",
    )
    p.add_argument(
        "--robustness-k",
        type=int,
        default=defaults.robustness_k,
        metavar="K",
        help="robustness statistic: remove each model's K most influential voters "
        f"(default {defaults.robustness_k})",
    )
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text report (default) or the same as JSON",
    )
    p.add_argument(
        "--apply",
        action="store_true",
        help="database only: mark the flagged voters' counted votes as excluded (reason "
        "anomalous_voter, or sybil_group for the group tests); votes are kept, never deleted",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from arena.audit import audit_database, audit_log, format_report, report_dict
    from arena.cli.rating_args import database_url
    from arena.config import Settings
    from arena.rigging import RiggingSettings
    from ratings import BattleDataError

    try:
        url = database_url(args)
        settings = RiggingSettings(
            alpha=args.alpha,
            fdr=args.fdr,
            time_window_s=args.time_window,
            min_votes=args.min_votes,
            z_threshold=args.z_threshold,
            robustness_k=args.robustness_k,
        )
    except (BattleDataError, ValueError) as exc:
        return fail(str(exc))
    if url is None and args.apply:
        return fail("--apply changes a database; a log file cannot be changed")
    try:
        if url is None:
            report = audit_log(args.source, settings=settings)
        else:
            from arena import store

            engine = store.open_engine(url or Settings.from_env().resolved_db_url)
            try:
                report = audit_database(engine, settings=settings)
                if args.apply:
                    marked = _apply(engine, report.flagged_reasons())
                    for reason, n in sorted(marked.items()):
                        print(f"marked {n} votes as {reason}", file=sys.stderr)
                    if not marked:
                        print("marked 0 votes: no voter flagged", file=sys.stderr)
            finally:
                engine.dispose()
    except (BattleDataError, ValueError) as exc:
        return fail(str(exc))
    if args.format == "json":
        sys.stdout.write(json.dumps(report_dict(report), indent=1, allow_nan=False) + "\n")
    else:
        sys.stdout.write(format_report(report))
    return 0


def _apply(engine: object, reasons: dict[str, str]) -> dict[str, int]:
    """Store each flagged voter's counted votes as excluded with its typed reason."""
    from sqlalchemy import bindparam, text

    from arena import store

    marked: dict[str, int] = {}
    for reason in sorted(set(reasons.values())):
        judges = sorted(j for j, r in reasons.items() if r == reason)
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
                store.mark_exclusion(session=session, battle_id=battle_id, reason=reason)
        if ids:
            marked[reason] = len(ids)
    return marked
