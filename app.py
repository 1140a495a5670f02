"""Start the arena: ``python app.py [--host H] [--port P] [--db URL] [--roster FILE]``.

The same as ``arena serve``; settings also come from ``ARENA_*`` environment variables.
"""

from __future__ import annotations

import argparse
import sys

from arena.cli.serve import add_serve_arguments, run


def main() -> int:
    parser = argparse.ArgumentParser(description="Start the arena web app.")
    add_serve_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
