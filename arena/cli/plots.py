"""``arena plots``: write PNG plots (ratings with CIs, win-rate and battle-count heatmaps)."""

from __future__ import annotations

import argparse
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
    add_rating_arguments,
    add_source_arguments,
    apply_filters,
    drop_flagged_voters,
    load_battles,
    option_error_message,
    options_from_args,
    progress_factory,
)
from ratings import BattleDataError, Battles, ConvergenceError, RatingOptions, compute_leaderboard
from ratings.leaderboard import OptionError

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plots",
        help="write leaderboard plots as PNG files",
        description="Write ratings_ci.png, win_rate_heatmap.png, battle_count_heatmap.png and "
        "predicted_win_rate_heatmap.png (and rating_vs_size.png when --roster gives model "
        "sizes) into --out DIR; history.png (monthly snapshots) when the votes have "
        "timestamps; and capability_density.png, open_gap.png and price.png with --metadata.",
    )
    add_source_arguments(p)
    add_rating_arguments(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--roster",
        type=Path,
        default=None,
        metavar="FILE",
        help="roster TOML whose params_b metadata adds a rating-vs-size plot",
    )
    add_metadata_argument(p)
    add_as_of_argument(p)
    p.set_defaults(handler=run)


def _sizes(roster: Path | None) -> dict[str, float]:
    if roster is None:
        return {}
    import tomllib

    try:
        doc = tomllib.loads(roster.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BattleDataError(str(roster), f"cannot read the roster ({exc})") from None
    return {
        str(e["name"]): float(e["params_b"])
        for e in doc.get("models", [])
        if isinstance(e, dict) and "name" in e and isinstance(e.get("params_b"), int | float)
    }


def run(args: argparse.Namespace) -> int:
    return_freed_memory()
    from ratings.plots import write_insight_plots, write_plots

    try:
        options = options_from_args(args)
        battles = apply_filters(
            drop_flagged_voters(apply_as_of(load_battles(args), args.as_of), args), args
        )
        sizes = _sizes(args.roster)
        lb = compute_leaderboard(battles, options, progress=progress_factory(args, "bootstrap"))
        meta = load_metadata(args.metadata, lb.models)
        history, insights = _insights(battles, options, args, meta)
    except OptionError as exc:
        return fail(option_error_message(exc))
    except (BattleDataError, ValueError) as exc:
        return fail(str(exc))
    except ConvergenceError as exc:
        print(f"arena: {exc}", file=sys.stderr)
        return 1
    for warning in lb.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for path in write_plots(lb, args.out, sizes):
        print(path)
    for path in write_insight_plots(args.out, insights=insights, history=history):
        print(path)
    return 0


def _insights(
    battles: Battles, options: RatingOptions, args: argparse.Namespace, meta: dict[str, Any]
) -> tuple[Any, Any]:
    """The monthly history (votes with timestamps) and insights (with --metadata)."""
    from ratings.insights import compute_insights, rating_draws, rating_history

    history = None
    if battles.tstamp is not None:
        history = rating_history(battles, level=options.level, l2=options.l2)
    else:
        print("note: no vote timestamps, so no history.png", file=sys.stderr)
    insights = None
    if args.metadata is not None:
        boot = options.ci == "bootstrap"
        draws = rating_draws(
            battles,
            ci="bootstrap" if boot else "sandwich",
            rounds=options.rounds,
            seed=options.seed,
            level=options.level,
            l2=options.l2,
            cluster_by=options.cluster_by,
        )
        insights = compute_insights(draws, meta)
    return history, insights
