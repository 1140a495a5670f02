"""Small helpers shared by the sub-commands."""

from __future__ import annotations

import ctypes
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ratings.bootstrap import ProgressBar

__all__ = ["fail", "progress_bar", "return_freed_memory"]

_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def fail(message: str, code: int = 2) -> int:
    """Print ``arena: error: MESSAGE`` to stderr and return ``code`` (2 = bad input)."""
    print(f"arena: error: {message}", file=sys.stderr)
    return code


def progress_bar(
    *, desc: str, unit: str, hidden: bool, total: int | None = None, unit_scale: bool = False
) -> ProgressBar:
    """A tqdm bar on stderr; ``hidden`` (``--no-progress``) hides it, and so does a stderr
    that is not a terminal."""
    from tqdm import tqdm  # imported late: commands without bars do not pay for it

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=unit_scale,
        file=sys.stderr,
        disable=True if hidden else None,  # None: tqdm decides from the terminal
    )


def return_freed_memory(threshold_bytes: int = 4 << 20) -> None:
    """Make glibc give large freed blocks back to the OS (Linux only; no-op elsewhere).

    Bootstrap workers allocate and free arrays of a few MB per chunk in two threads; glibc's
    adaptive mmap threshold then serves them from per-thread heaps that only grow, which more
    than doubled the peak memory of a 1,000-round bootstrap (1.4 GB vs 0.55 GB measured).  A
    fixed threshold keeps such blocks in mmap, returned on free.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, threshold_bytes)
    except (OSError, AttributeError):
        pass  # not glibc (musl): nothing to tune
