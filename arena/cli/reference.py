"""The generated part of docs/cli.md: every command's ``--help``, at a fixed width.

``python -m arena.cli.reference --write docs/cli.md`` refreshes it; tests/test_docs.py fails
when it is out of date, so a new flag cannot go undocumented.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from arena.cli import build_parser

__all__ = ["BEGIN", "END", "render_reference", "update_document"]

BEGIN = "<!-- generated from arena.cli.reference; tests/test_docs.py checks it -->"
END = "<!-- end generated -->"
_WIDTH = "100"


@contextlib.contextmanager
def _fixed_width() -> Iterator[None]:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = _WIDTH
    try:
        yield
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def _help(parser: argparse.ArgumentParser) -> str:
    buf = io.StringIO()
    parser.print_help(buf)
    return buf.getvalue().rstrip() + "\n"


def _walk(
    parser: argparse.ArgumentParser, path: list[str]
) -> Iterator[tuple[list[str], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, [*path, name])


def render_reference() -> str:
    """Markdown: one section per command and sub-command with its ``--help`` text."""
    with _fixed_width():
        parser = build_parser()
        parts = []
        for path, sub in _walk(parser, ["arena"]):
            parts.append(f"### `{' '.join(path)}`\n\n```text\n{_help(sub)}```\n")
    return "\n".join(parts)


def update_document(text: str) -> str:
    """Replace the generated block of ``text`` with the current reference."""
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n\n{render_reference()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) == 2 and args[0] == "--write":
        path = Path(args[1])
        path.write_text(update_document(path.read_text(encoding="utf-8")), encoding="utf-8")
        return 0
    sys.stdout.write(render_reference())
    return 0


if __name__ == "__main__":
    sys.exit(main())
