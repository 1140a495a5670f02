"""``arena ratings``: recompute the leaderboard from a battle log or the database."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from arena.cli.common import fail, return_freed_memory
from arena.cli.insight_args import (
    add_as_of_argument,
    add_metadata_argument,
    apply_as_of,
    load_metadata,
)
from arena.cli.rating_args import (
    _CATEGORY_CHOICES,
    add_rating_arguments,
    add_source_arguments,
    apply_filters,
    database_url,
    drop_flagged_voters,
    fragile_notes,
    load_battles,
    option_error_message,
    options_from_args,
    progress_factory,
    select_category,
)
from ratings import (
    BattleDataError,
    Battles,
    ConvergenceError,
    Leaderboard,
    RatingOptions,
    compute_leaderboard,
    format_leaderboard,
)
from ratings.export import FORMATS, format_by_category
from ratings.leaderboard import OptionError

__all__ = ["register", "run"]

_SUFFIX_FORMAT = {".csv": "csv", ".json": "json", ".md": "md", ".html": "html", ".htm": "html"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ratings",
        help="compute the leaderboard from a battle log or the database",
        description="Fit Bradley-Terry (or online Elo) ratings with confidence intervals and "
        "print or write the leaderboard. Exit status 2 on bad input.",
    )
    add_source_arguments(p)
    add_rating_arguments(p)
    add_as_of_argument(p)
    out = p.add_argument_group("output")
    out.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="table (default on screen), csv, json, md or html; with --out the default comes "
        "from the file suffix",
    )
    out.add_argument("--out", type=Path, default=None, metavar="PATH", help="write to PATH")
    add_metadata_argument(out)
    out.add_argument(
        "--by",
        choices=("category", "reason"),
        default=None,
        help="category: print each model's rank in every category next to its overall "
        "rank, with the change (table, md, csv or json); reason: summarise the reasons "
        "voters gave (the database, or an arena export JSONL file; table, md or json)",
    )
    out.add_argument(
        "--matrices",
        action="store_true",
        help="json only: add the fit's predicted win-rate matrix P(i beats j) and the "
        "replicates' P(i rated above j)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return_freed_memory()
    fmt = args.format
    if fmt is None:
        fmt = _SUFFIX_FORMAT.get(args.out.suffix.lower(), "table") if args.out else "table"
    if args.by == "category" and (fmt == "html" or args.matrices):
        return fail("--by category writes table, md, csv or json (without --matrices)")
    if args.by == "reason":
        return _by_reason(args, fmt)
    try:
        options = options_from_args(args)
        battles = apply_filters(
            drop_flagged_voters(apply_as_of(load_battles(args), args.as_of), args), args
        )
        lb = compute_leaderboard(battles, options, progress=progress_factory(args, "bootstrap"))
        if notes := fragile_notes(battles, args):
            lb = dataclasses.replace(lb, notes=lb.notes + notes)
        meta = load_metadata(args.metadata, lb.models)
        if args.by == "category":
            return _write(args, format_by_category(lb, _boards(battles, options, args), fmt), lb)
    except OptionError as exc:
        return fail(option_error_message(exc))
    except (BattleDataError, ValueError) as exc:
        return fail(str(exc))
    except ConvergenceError as exc:
        print(f"arena: {exc}", file=sys.stderr)
        return 1
    for warning in lb.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.matrices and fmt != "json":
        return fail("--matrices needs --format json (or an --out file ending in .json)")
    return _write(args, format_leaderboard(lb, fmt, meta, matrices=args.matrices), lb)


def _by_reason(args: argparse.Namespace, fmt: str) -> int:
    from arena import store
    from arena.reasons import format_reasons, reasons_from_db, reasons_from_log, summarise

    if fmt not in ("table", "md", "json"):
        return fail("--by reason writes table, md or json")
    try:
        url = database_url(args)
        if url is None:
            rows = reasons_from_log(args.source)
        else:
            engine = store.open_engine(url, create_if_empty=False)
            try:
                rows = reasons_from_db(engine)
            finally:
                engine.dispose()
    except (BattleDataError, store.StoreError) as exc:
        return fail(str(exc))
    text = format_reasons(summarise(rows), fmt)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    return 0


def _boards(battles: Battles, options: RatingOptions, args: argparse.Namespace) -> dict[str, Any]:
    """One leaderboard per category that has battles (categories without any are skipped)."""
    boards = {}
    for name in _CATEGORY_CHOICES:
        if name not in battles.categories or not battles.categories[name].any():
            continue
        subset = select_category(battles, name)
        if subset.n_models < 2:
            continue
        boards[name] = compute_leaderboard(
            subset, options, progress=progress_factory(args, f"bootstrap {name}")
        )
    if not boards:
        raise BattleDataError(
            battles.source,
            "--by category: no category tags in this source (logs carry them in "
            "category_tag; for the database run arena db backfill-style)",
            field="category_tag",
        )
    return boards


def _write(args: argparse.Namespace, text: str, lb: Leaderboard) -> int:
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {args.out} ({len(lb.rows)} models, {lb.n_battles} battles)", file=sys.stderr)
    return 0
