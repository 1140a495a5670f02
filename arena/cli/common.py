"""Small helpers shared by the sub-commands."""

from __future__ import annotations

import sys

__all__ = ["fail"]


def fail(message: str, code: int = 2) -> int:
    """Print ``arena: error: MESSAGE`` to stderr and return ``code`` (2 = bad input)."""
    print(f"arena: error: {message}", file=sys.stderr)
    return code
