"""``arena insights``: open vs proprietary, size vs skill, price, and the frontier, with
intervals."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arena.cli.common import fail, return_freed_memory
from arena.cli.insight_args import (
    add_as_of_argument,
    add_metadata_argument,
    apply_as_of,
    load_metadata,
)
from arena.cli.rating_args import _cluster_column, add_source_arguments, load_battles
from ratings import BattleDataError, ConvergenceError
from ratings.bt import DEFAULT_L2

__all__ = ["register", "run"]

_SUFFIX_FORMAT = {".json": "json", ".md": "md", ".html": "html", ".htm": "html"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "insights",
        help="capability density, open-weights lag, frontier and price fronts with intervals",
        description="Answer the questions people bring to an arena from its votes: the "
        "rating-vs-parameters and rating-vs-price Pareto fronts, how many months open-weights "
        "models trail proprietary ones, and how fast the frontier climbs. Every figure is "
        "recomputed in each rating draw and reported with a 95%% interval. Needs --metadata "
        "(or a roster) for sizes, openness, release dates and prices. Exit status 2 on bad input.",
    )
    add_source_arguments(p)
    add_metadata_argument(p)
    g = p.add_argument_group("uncertainty")
    g.add_argument(
        "--ci",
        choices=("sandwich", "bootstrap"),
        default="sandwich",
        help="rating draws: normal draws from the sandwich covariance (default) or bootstrap "
        "refits",
    )
    g.add_argument("--rounds", type=int, default=1000, help="rating draws (default 1000)")
    g.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    g.add_argument(
        "--cluster-by",
        type=_cluster_column,
        default=None,
        metavar="{judge,question_id}",
        help="cluster the uncertainty by voter (judge; alias user) or prompt (question_id; "
        "alias prompt)",
    )
    g.add_argument(
        "--l2", type=float, default=DEFAULT_L2, help=f"ridge penalty (default {DEFAULT_L2:g})"
    )
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_as_of_argument(p)
    out = p.add_argument_group("output")
    out.add_argument(
        "--format",
        choices=("table", "json", "md", "html"),
        default=None,
        help="table (default on screen), json, md or html; with --out the default comes from "
        "the file suffix",
    )
    out.add_argument("--out", type=Path, default=None, metavar="PATH", help="write to PATH")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return_freed_memory()
    from arena.cli.rating_args import progress_factory
    from ratings.insights import compute_insights, rating_draws
    from ratings.insights_report import format_insights

    fmt = args.format
    if fmt is None:
        fmt = _SUFFIX_FORMAT.get(args.out.suffix.lower(), "table") if args.out else "table"
    if args.metadata is None:
        return fail("arena insights needs --metadata FILE (a metadata CSV or a roster TOML)")
    if args.rounds < 1:
        return fail(f"--rounds must be >= 1, got {args.rounds}")
    try:
        battles = apply_as_of(load_battles(args), args.as_of)
        meta = load_metadata(args.metadata, battles.models)
        draws = rating_draws(
            battles,
            ci=args.ci,
            rounds=args.rounds,
            seed=args.seed,
            l2=args.l2,
            cluster_by=args.cluster_by,
            progress=progress_factory(args, "bootstrap") if args.ci == "bootstrap" else None,
        )
    except (BattleDataError, ValueError) as exc:
        return fail(str(exc))
    except ConvergenceError as exc:
        print(f"arena: {exc}", file=sys.stderr)
        return 1
    text = format_insights(compute_insights(draws, meta), fmt)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0
