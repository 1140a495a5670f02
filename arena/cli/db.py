"""``arena db``: create or upgrade the database schema, and show its revision.

``arena db upgrade`` applies the Alembic migrations shipped with this Arena (an empty database
gets the whole schema); ``arena db current`` prints the database's revision and exits 1 when
it is not the one this Arena needs.  Both take ``--db URL``; the default is ``ARENA_DB_URL``,
else the SQLite file ``<ARENA_DATA_DIR>/arena.db``.

The helpers here (``add_db_argument``, ``open_database``, ``fail``) are shared by
``arena export`` and ``arena import``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, DBAPIError

from arena.cli.common import fail
from arena.config import Settings
from arena.store import (
    SchemaOutOfDate,
    check_schema,
    current_revision,
    head_revision,
    open_engine,
    redact_url,
    upgrade,
)

__all__ = ["CliError", "add_db_argument", "database_url", "fail", "open_database", "register"]


class CliError(Exception):
    """A problem the command reports as ``arena: error: ...`` with exit status 2."""


def add_db_argument(p: argparse.ArgumentParser) -> None:
    """The ``--db URL`` option, defaulting to the configured database."""
    p.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help="database URL (default: ARENA_DB_URL, else sqlite:///<ARENA_DATA_DIR>/arena.db)",
    )


def database_url(args: argparse.Namespace) -> str:
    """The URL named by ``--db``, else the one the settings resolve to."""
    return str(args.db) if args.db else Settings.from_env().resolved_db_url


def open_database(url: str, *, check: bool = True, create_if_empty: bool = False) -> Engine:
    """Open the store for a command, turning the expected failures into ``CliError``.

    Raises
    ------
    CliError
        A malformed URL, a database that cannot be reached, or an out-of-date schema (the
        message names the command that fixes it).
    """
    try:
        engine = open_engine(url, check=check, create_if_empty=create_if_empty)
        if not check and not create_if_empty:
            # Connect now, so an unreachable server is reported here, not as a traceback.
            with engine.connect():
                pass
        return engine
    except ArgumentError as exc:
        raise CliError(f"invalid database URL {url!r}: {exc}") from None
    except SchemaOutOfDate as exc:
        raise CliError(str(exc)) from None
    except DBAPIError as exc:
        raise CliError(f"cannot open database {_safe(url)}: {_first_line(exc.orig)}") from None


def _safe(url: str) -> str:
    try:
        return redact_url(url)
    except ArgumentError:
        return url


def _first_line(exc: object) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``db`` command and its ``upgrade`` and ``current`` sub-commands."""
    p = sub.add_parser(
        "db",
        help="create or upgrade the database schema",
        description="Manage the arena database schema (Alembic migrations). Back the "
        "database up before upgrading it.",
    )
    actions = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = actions.add_parser(
        "upgrade",
        help="bring the schema up to date (creates it in an empty database)",
        description="Apply the migrations this Arena ships, in one transaction. An empty "
        "database gets the whole schema; an up-to-date one is left alone.",
    )
    add_db_argument(up)
    up.set_defaults(handler=run_upgrade)
    cur = actions.add_parser(
        "current",
        help="print the schema revision; exit 1 when it is out of date",
        description="Print the database's schema revision and the one this Arena needs. "
        "Exit status 0 when they match, 1 when they do not.",
    )
    add_db_argument(cur)
    cur.set_defaults(handler=run_current)
    back = actions.add_parser(
        "backfill-style",
        help="compute style features and category tags for battles that have none",
        description="Compute the style counts (answer tokens, markdown headers, list items, "
        "bold spans) and category tags of every battle with answers stored before they "
        "were computed at vote time. Safe to re-run: battles that have them are skipped.",
    )
    add_db_argument(back)
    back.set_defaults(handler=run_backfill_style)
    tag = actions.add_parser(
        "retag",
        help="re-run the category tagger over stored battles",
        description="Recompute the category tags (language, coding, math, multi_turn, "
        "long_query) of battles tagged by another tagger version, or of all with --all. "
        "Style counts are left as they are.",
    )
    add_db_argument(tag)
    tag.add_argument(
        "--all", action="store_true", help="retag every battle, whatever version tagged it"
    )
    tag.set_defaults(handler=run_retag)


def _tagger(settings: Settings) -> Any:
    """The category tagger over ``ARENA_TAG_LANGUAGES``; a bad name is a ``CliError``."""
    from arena.features import tagger_from_settings

    try:
        return tagger_from_settings(settings)
    except ValueError as exc:
        raise CliError(f"ARENA_TAG_LANGUAGES: {exc}") from None


def _features_command(args: argparse.Namespace, everything: bool | None) -> int:
    from arena.features import backfill_style, retag

    url = database_url(args)
    try:
        tagger = _tagger(Settings.from_env())
        engine = open_database(url)
    except CliError as exc:
        return fail(str(exc))

    def progress(done: int, total: int) -> None:
        if done == total or done % 1000 == 0:
            print(f"{done}/{total} battles", file=sys.stderr)

    try:
        if everything is None:
            n = backfill_style(engine=engine, tagger=tagger, progress=progress)
            what = "style features and tags computed"
        else:
            n = retag(engine=engine, tagger=tagger, everything=everything, progress=progress)
            what = f"retagged with {tagger.version}"
    finally:
        engine.dispose()
    print(f"{redact_url(url)}: {n} battles {what}", file=sys.stderr)
    return 0


def run_backfill_style(args: argparse.Namespace) -> int:
    return _features_command(args, None)


def run_retag(args: argparse.Namespace) -> int:
    return _features_command(args, bool(args.all))


def run_upgrade(args: argparse.Namespace) -> int:
    url = database_url(args)
    try:
        engine = open_database(url, check=False)
    except CliError as exc:
        return fail(str(exc))
    try:
        before = current_revision(engine)
        after = upgrade(engine)
        check_schema(engine)
    finally:
        engine.dispose()
    where = redact_url(url)
    if before == after:
        print(f"{where}: schema already at revision {after}", file=sys.stderr)
    else:
        print(f"{where}: schema upgraded from {before or '(empty)'} to {after}", file=sys.stderr)
    return 0


def run_current(args: argparse.Namespace) -> int:
    url = database_url(args)
    try:
        engine = open_database(url, check=False)
    except CliError as exc:
        return fail(str(exc))
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    expected = head_revision()
    print(f"current: {current or '(none)'}")
    print(f"expected: {expected}")
    if current != expected:
        print(f"run `arena db upgrade --db {redact_url(url)}` to upgrade", file=sys.stderr)
        return 1
    return 0
