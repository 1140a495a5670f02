"""The ``arena`` command: ``serve | ratings | plots | insights | export | import | db | models``,
``audit``, ``deploy`` and ``admin``.

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
_COMMANDS = (
    "serve",
    "ratings",
    "plots",
    "insights",
    "export",
    "import_",
    "db",
    "models",
    "audit",
    "deploy",
    "admin",
)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the ``arena`` argument parser (all commands, or just ``only``)."""
    parser = argparse.ArgumentParser(
        prog="arena",
        description="Self-hosted pairwise-battle arena for language models.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS if only is None else (only,):
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
    args_list = list(sys.argv[1:] if argv is None else argv)
    # Import only the module of the command being run: the store, scipy and gradio each
    # take a good fraction of a second to import, and `arena ratings` needs none of them.
    first = next((a for a in args_list if not a.startswith("-")), None)
    module = {"import": "import_"}.get(first or "", first)
    parser = build_parser(module if module in _COMMANDS else None)
    args = parser.parse_args(args_list)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
