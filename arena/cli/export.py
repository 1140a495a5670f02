"""``arena export battles``: write the votes as an LMSYS ``clean_battle`` JSONL file.

Every vote is written, counted or not (``exclusion`` says which), ordered by time, with sorted
keys, so the same database always gives the same bytes (``.gz`` included).  See docs/store.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from arena.cli.common import progress_bar
from arena.cli.db import CliError, add_db_argument, database_url, fail, open_database
from arena.store import export_battles, redact_url
from ratings.bootstrap import ProgressBar

__all__ = ["parse_since", "register"]


def parse_since(text: str) -> dt.datetime:
    """``YYYY-MM-DD`` or an ISO 8601 date-time; without a zone it is taken as UTC."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date (YYYY-MM-DD) or ISO date-time, got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``export`` command and its ``battles`` sub-command."""
    p = sub.add_parser(
        "export",
        help="export votes as a clean_battle JSONL file",
        description="Export data from the arena database.",
    )
    what = p.add_subparsers(dest="export_command", metavar="WHAT", required=True)
    b = what.add_parser(
        "battles",
        help="every vote as one clean_battle JSON line",
        description="Write every vote (counted or excluded) as LMSYS clean_battle JSON lines: "
        "battle_id, question_id, model_a, model_b, winner, judge, turn, anony, language, "
        "tstamp, exclusion. Gzipped when FILE ends in .gz. The same database always gives "
        "the same bytes.",
    )
    b.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="FILE.jsonl or FILE.jsonl.gz"
    )
    add_db_argument(b)
    b.add_argument(
        "--with-conversations",
        action="store_true",
        help="add conversation_a and conversation_b ([{role, content}, ...])",
    )
    b.add_argument(
        "--include-moderated",
        action="store_true",
        help="with --with-conversations, also write the conversations of battles excluded "
        "as 'moderated' (left out by default)",
    )
    b.add_argument(
        "--scrub-pii",
        action="store_true",
        help="with --with-conversations, replace e-mail addresses, phone numbers, card "
        "numbers and IP addresses by [EMAIL], [PHONE], [CARD], [IP] (see docs/moderation.md "
        "for what is caught and missed)",
    )
    b.add_argument(
        "--pii-regions",
        default="US",
        metavar="CODES",
        help="regions whose national phone formats --scrub-pii knows (comma-separated; default US)",
    )
    b.add_argument(
        "--since",
        type=parse_since,
        default=None,
        metavar="DATE",
        help="only votes at or after DATE (YYYY-MM-DD or ISO date-time; UTC unless a zone "
        "is given)",
    )
    b.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    b.set_defaults(handler=run_battles)


def run_battles(args: argparse.Namespace) -> int:
    out: Path = args.out
    if not out.name.endswith((".jsonl", ".jsonl.gz")):
        return fail(f"{out}: the output file must end in .jsonl or .jsonl.gz")
    url = database_url(args)
    try:
        engine = open_database(url)
    except CliError as exc:
        return fail(str(exc))
    bar = _bar(args, "export")

    def progress(_phase: str, k: int) -> None:
        bar.update(k)

    scrub = None
    if args.scrub_pii:
        from arena.moderation import PiiChecker

        try:
            scrub = PiiChecker(args.pii_regions.split(",")).scrub
        except ValueError as exc:
            return fail(f"--pii-regions: {exc}")
    try:
        n = export_battles(
            engine=engine,
            out=out,
            with_conversations=args.with_conversations,
            since=args.since,
            progress=progress,
            include_moderated=args.include_moderated,
            scrub=scrub,
        )
    except OSError as exc:
        return fail(f"{out}: cannot write ({exc.strerror or exc})")
    finally:
        bar.close()
        engine.dispose()
    print(f"wrote {n} battles from {redact_url(url)} to {out}", file=sys.stderr)
    return 0


def _bar(args: argparse.Namespace, desc: str) -> ProgressBar:
    return progress_bar(desc=desc, unit=" battles", unit_scale=True, hidden=args.no_progress)
