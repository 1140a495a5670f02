"""``arena import battles FILE``: load a ``clean_battle`` JSONL file, all or nothing.

Reads our own exports and public LMSYS dumps (``.jsonl`` or ``.jsonl.gz``).  Every line is
validated before anything is written; a malformed line aborts the import with its file, line
and field named, and the database is left untouched.  Battles already stored (same battle id)
are skipped and counted.  An empty database gets the schema first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arena.cli.common import progress_bar
from arena.cli.db import CliError, add_db_argument, database_url, fail, open_database
from arena.store import BattleImportError, import_battles, redact_url
from ratings.bootstrap import ProgressBar
from ratings.data import BattleDataError
from ratings.readers import check_input_file

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``import`` command and its ``battles`` sub-command."""
    p = sub.add_parser(
        "import",
        help="import a clean_battle JSONL file into the database",
        description="Import data into the arena database.",
    )
    what = p.add_subparsers(dest="import_command", metavar="WHAT", required=True)
    b = what.add_parser(
        "battles",
        help="import clean_battle JSON lines (all or nothing)",
        description="Import clean_battle JSON lines (.jsonl or .jsonl.gz) in one transaction. "
        "A malformed line aborts the import (file, line and field are named) and nothing is "
        "written; battles whose id is already stored are skipped and counted. Models not in "
        "the database are created with backend 'imported'. Exit status 2 on bad input.",
    )
    b.add_argument("file", type=Path, metavar="FILE", help="the battle file")
    add_db_argument(b)
    b.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    b.set_defaults(handler=run_battles)


def run_battles(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        check_input_file(path)  # before a database is opened (or created) for nothing
    except BattleDataError as exc:
        return fail(str(exc))
    url = database_url(args)
    try:
        engine = open_database(url, create_if_empty=True)
    except CliError as exc:
        return fail(str(exc))
    bars: dict[str, ProgressBar] = {}

    def progress(phase: str, n: int) -> None:
        if phase not in bars:
            bars[phase] = _bar(args, "validate" if phase == "read" else "import")
        bars[phase].update(n)

    try:
        report = import_battles(engine=engine, path=path, progress=progress)
    except BattleImportError as exc:
        return fail(f"{exc} (nothing was imported)")
    finally:
        for bar in bars.values():
            bar.close()
        engine.dispose()
    print(
        f"imported {report.inserted} battles from {path} into {redact_url(url)}; "
        f"skipped {report.duplicates} duplicates ({report.records} records read)",
        file=sys.stderr,
    )
    if report.models_created:
        print(
            f"registered {len(report.models_created)} new models (backend 'imported'): "
            + ", ".join(report.models_created),
            file=sys.stderr,
        )
    return 0


def _bar(args: argparse.Namespace, desc: str) -> ProgressBar:
    return progress_bar(desc=desc, unit=" battles", unit_scale=True, hidden=args.no_progress)
