"""``arena models``: show the roster, and check that every entry loads and answers.

``arena models list`` prints the roster; ``arena models check`` loads (or connects to) every
entry, streams a short reply, and prints load time, time to first token, latency and tokens
per second.  ``check`` exits 1 when any entry fails and 2 when the roster itself is invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from arena.backends import (
    BackendError,
    GenerationRequest,
    GenerationStats,
    TextDelta,
    build_backend,
)
from arena.cli.common import fail
from arena.config import Settings
from arena.roster import Roster, RosterEntry, RosterError, load_roster

__all__ = ["CheckResult", "check_entries", "register"]

_DEFAULT_PROMPT = "In one sentence, what is the capital of France?"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``models`` command and its ``list``, ``check`` and ``deprecate`` sub-commands."""
    p = sub.add_parser(
        "models",
        help="list the model roster or check that every entry answers",
        description="Show the model roster (data/models.toml, ARENA_ROSTER or --roster) and "
        "check that each entry loads and streams a reply.",
    )
    actions = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    def roster_arg(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--roster",
            default=None,
            metavar="FILE",
            help="roster TOML file (default: ARENA_ROSTER, else the bundled data/models.toml)",
        )

    lst = actions.add_parser("list", help="print the roster", description="Print the roster.")
    roster_arg(lst)
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lst.set_defaults(handler=run_list)

    chk = actions.add_parser(
        "check",
        help="load or ping every entry; print latency and tokens/s",
        description="Load (transformers) or connect to (openai) every roster entry, stream "
        "a short reply, and print load time, time to first token, latency and tokens/s. "
        "Exit status 1 if any entry fails, 2 if the roster is invalid.",
    )
    roster_arg(chk)
    chk.add_argument(
        "--only",
        action="append",
        default=None,
        metavar="NAME",
        help="check only this entry (repeatable)",
    )
    chk.add_argument("--prompt", default=_DEFAULT_PROMPT, help="prompt to send to each entry")
    chk.add_argument(
        "--max-new-tokens",
        type=int,
        default=32,
        metavar="N",
        help="cap on generated tokens per entry (default: 32)",
    )
    chk.add_argument("--json", action="store_true", help="print JSON results instead of a table")
    chk.set_defaults(handler=run_check)

    dep = actions.add_parser(
        "deprecate",
        help="mark a model deprecated in the database (an event; nothing is deleted)",
        description="Append a 'deprecated' event for MODEL and stamp its deprecated_at. Its "
        "battles stay in exports and ratings; leaderboards mark it and can hide it.",
    )
    dep.add_argument("name", metavar="MODEL", help="model name as stored")
    dep.add_argument("--reason", help="why (kept with the event)")
    dep.add_argument(
        "--db", metavar="URL", help="database URL (default: ARENA_DB_URL, else the SQLite file)"
    )
    dep.set_defaults(handler=run_deprecate)


def run_deprecate(args: argparse.Namespace) -> int:
    """Handler of ``arena models deprecate``; returns the exit status."""
    from arena import store

    url = args.db or Settings.from_env().resolved_db_url
    try:
        engine = store.open_engine(url)
    except store.SchemaOutOfDate as exc:
        print(f"arena: {exc}", file=sys.stderr)
        return 1
    try:
        with store.new_session(engine) as session:
            store.deprecate_model(session=session, name=args.name, reason=args.reason)
    except store.StoreError as exc:
        return fail(str(exc))
    finally:
        engine.dispose()
    print(f"deprecated {args.name}", file=sys.stderr)
    return 0


def _load(args: argparse.Namespace, settings: Settings) -> Roster:
    return load_roster(args.roster or settings.roster or None)


def run_list(args: argparse.Namespace) -> int:
    """Handler of ``arena models list``; returns the exit status."""
    try:
        roster = _load(args, Settings.from_env())
    except (RosterError, ValueError) as exc:
        return fail(str(exc))
    if args.json:
        rows = [_entry_json(e) for e in roster]
        print(json.dumps({"roster": str(roster.path), "models": rows}, indent=2))
        return 0
    print(f"roster: {roster.path}")
    header = ("name", "backend", "model", "temp", "top_p", "max_new", "weight", "conc", "hash")
    rows_txt = [
        (
            e.name,
            e.backend,
            e.model,
            f"{e.temperature:g}",
            f"{e.top_p:g}",
            str(e.max_new_tokens),
            f"{e.weight:g}",
            str(e.max_concurrency),
            e.config_hash,
        )
        for e in roster
    ]
    _print_table(header, rows_txt)
    for e in roster:
        if e.variant:
            print(f"  {e.name}: {e.variant}")
    return 0


def _entry_json(entry: RosterEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "backend": entry.backend,
        "model": entry.model,
        "model_path": str(entry.model_path) if entry.model_path else None,
        "base_url": entry.base_url,
        "temperature": entry.temperature,
        "top_p": entry.top_p,
        "max_new_tokens": entry.max_new_tokens,
        "system_prompt": entry.system_prompt,
        "weight": entry.weight,
        "max_concurrency": entry.max_concurrency,
        "config_hash": entry.config_hash,
        **entry.metadata(),
    }


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@dataclass(frozen=True)
class CheckResult:
    """Outcome of checking one roster entry.

    Attributes
    ----------
    name
        Roster name.
    ok
        Whether the entry loaded and streamed a reply.
    load_s
        Seconds to load (transformers) or check configuration (openai).
    stats
        The reply's stats when it succeeded.
    error
        ``"<ErrorType>: <detail>"`` when it failed.
    deltas
        Number of text deltas streamed.
    text
        The reply text (for eyeballing; never parsed).
    """

    name: str
    ok: bool
    load_s: float | None
    stats: GenerationStats | None = None
    error: str | None = None
    deltas: int = 0
    text: str = ""


async def check_entries(
    *,
    entries: list[RosterEntry],
    settings: Settings,
    prompt: str,
    max_new_tokens: int,
) -> list[CheckResult]:
    """Load and query each entry in turn (entries sharing weights load them once).

    Parameters
    ----------
    entries
        Roster entries to check.
    settings
        Arena settings.
    prompt
        The user message sent to each entry.
    max_new_tokens
        Cap on generated tokens.

    Returns
    -------
    list of CheckResult
        One per entry, in order; failures are results, not exceptions.
    """
    results = []
    for entry in entries:
        backend = build_backend(entry, settings=settings)
        t0 = time.monotonic()
        load_s: float | None = None
        try:
            await backend.load()
            load_s = time.monotonic() - t0
            parts: list[str] = []
            stats: GenerationStats | None = None
            request = GenerationRequest.from_prompt(prompt, max_new_tokens=max_new_tokens)
            async for event in backend.stream(request):
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                else:
                    stats = event
            results.append(
                CheckResult(
                    name=entry.name,
                    ok=stats is not None and bool(parts),
                    load_s=load_s,
                    stats=stats,
                    error=None if parts else "ModelError: empty reply",
                    deltas=len(parts),
                    text="".join(parts),
                )
            )
        except BackendError as exc:
            results.append(
                CheckResult(
                    name=entry.name,
                    ok=False,
                    load_s=load_s,
                    error=f"{type(exc).__name__}: {exc.detail}",
                )
            )
        finally:
            await backend.aclose()
    return results


def run_check(args: argparse.Namespace) -> int:
    """Handler of ``arena models check``; returns the exit status."""
    settings = Settings.from_env()
    try:
        roster = _load(args, settings)
    except (RosterError, ValueError) as exc:
        return fail(str(exc))
    entries = list(roster)
    if args.only:
        unknown = [n for n in args.only if n not in roster]
        if unknown:
            return fail(f"{roster.path}: no entry named {', '.join(map(repr, unknown))}")
        entries = [e for e in entries if e.name in args.only]
    if args.max_new_tokens < 1:
        return fail("--max-new-tokens must be >= 1")
    if not logging.getLogger().handlers:
        # One-off conversions and loads take a while; say what is happening.
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    results = asyncio.run(
        check_entries(
            entries=entries,
            settings=settings,
            prompt=args.prompt,
            max_new_tokens=args.max_new_tokens,
        )
    )
    if args.json:
        print(json.dumps([_result_json(r) for r in results], indent=2))
    else:
        _print_results(results)
    return 0 if all(r.ok for r in results) else 1


def _result_json(r: CheckResult) -> dict[str, Any]:
    s = r.stats
    return {
        "name": r.name,
        "ok": r.ok,
        "load_s": r.load_s,
        "ttft_s": s.ttft_s if s else None,
        "latency_s": s.latency_s if s else None,
        "completion_tokens": s.completion_tokens if s else None,
        "tokens_per_s": s.tokens_per_s if s else None,
        "finish_reason": s.finish_reason if s else None,
        "deltas": r.deltas,
        "error": r.error,
        "text": r.text,
    }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _print_results(results: list[CheckResult]) -> None:
    header = ("name", "status", "load_s", "ttft_s", "latency_s", "tokens", "tok/s")
    rows = []
    for r in results:
        s = r.stats
        rows.append(
            (
                r.name,
                "ok" if r.ok else "FAIL",
                _fmt(r.load_s, ".2f"),
                _fmt(s.ttft_s if s else None, ".3f"),
                _fmt(s.latency_s if s else None, ".2f"),
                str(s.completion_tokens) if s else "-",
                _fmt(s.tokens_per_s if s else None, ".1f"),
            )
        )
    _print_table(header, rows)
    for r in results:
        if r.error:
            print(f"  {r.name}: {r.error}")
    failed = sum(not r.ok for r in results)
    print(f"{len(results) - failed}/{len(results)} entries ok")
