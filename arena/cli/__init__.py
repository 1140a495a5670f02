"""The ``arena`` command: ``serve | ratings | plots | export | import | db | models``.

Each sub-command lives in its own module exposing ``register(subparsers)``; the module's
handler returns an exit code.  Bad input exits with status 2 and a message naming what was
wrong and where.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

# Sub-command modules, in the order `arena --help` lists them.
_COMMANDS = ("serve", "ratings", "plots", "export", "import_", "db", "models", "audit")


def build_parser() -> argparse.ArgumentParser:
    """Build the full ``arena`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="arena",
        description="Self-hosted pairwise-battle arena for language models.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"arena.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"arena.cli.{name}":
                continue  # that command is not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``arena`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
