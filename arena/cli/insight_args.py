"""``--metadata FILE`` and ``--as-of DATE``, shared by ``arena ratings``, ``arena plots`` and
``arena insights``."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

from ratings import BattleDataError, Battles
from ratings.insights import filter_as_of
from ratings.metadata import MetadataError, ModelMeta, match_metadata, read_metadata_csv

__all__ = [
    "add_as_of_argument",
    "add_metadata_argument",
    "apply_as_of",
    "load_metadata",
    "parse_day",
]


def parse_day(text: str) -> dt.date:
    """``YYYY-MM-DD`` -> date (argparse type)."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def add_metadata_argument(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--metadata FILE``: model sizes, openness, dates and prices."""
    p.add_argument(
        "--metadata",
        type=Path,
        default=None,
        metavar="FILE",
        help="model metadata: a CSV with a header (model,params_b,open_weights,release_date,"
        "...; the roster's metadata key names) or a roster TOML",
    )


def add_as_of_argument(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--as-of DATE``: rate only the votes cast before DATE."""
    p.add_argument(
        "--as-of",
        type=parse_day,
        default=None,
        metavar="DATE",
        help="rate only the votes cast before DATE (YYYY-MM-DD, 00:00 UTC); needs timestamps",
    )


def apply_as_of(battles: Battles, as_of: dt.date | None) -> Battles:
    """The battles cast before ``as_of`` (all of them when ``None``).

    Raises
    ------
    BattleDataError
        No timestamps, or no vote before the date.
    """
    return battles if as_of is None else filter_as_of(battles, as_of)


def load_metadata(path: Path | None, models: Sequence[str]) -> dict[str, ModelMeta]:
    """Read ``--metadata`` and keep the rated models' entries; warnings go to stderr.

    Raises
    ------
    BattleDataError
        The file is unreadable or invalid (the message names the line or entry and column).
    """
    if path is None:
        return {}
    try:
        if path.suffix.lower() == ".toml":
            from arena.roster import RosterError, load_roster

            try:
                meta = load_roster(path).model_meta()
            except RosterError as exc:
                raise BattleDataError(str(path), f"invalid roster: {exc}") from None
        else:
            meta = read_metadata_csv(path)
    except MetadataError as exc:
        raise BattleDataError("--metadata", str(exc)) from None
    kept, warnings = match_metadata(meta, models)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    return kept
