"""Ways of reaching a model, behind one streaming interface.

``build_backend(entry, settings=...)`` turns a roster entry into a :class:`Backend`;
``backend.stream(request)`` yields :class:`TextDelta` items and then one
:class:`GenerationStats`, or raises a :class:`BackendError` subclass.  The ``transformers``
backend (and torch) is imported only when a transformers entry is built, so commands that
only talk to remote servers start fast.
"""

from __future__ import annotations

from arena.backends.base import (
    Backend,
    ChatMessage,
    FinishReason,
    GenerationRequest,
    GenerationStats,
    Reply,
    StreamEvent,
    TextDelta,
    collect,
)
from arena.backends.errors import (
    BackendBusy,
    BackendError,
    BackendTimeout,
    BackendUnreachable,
    GenerationCancelled,
    ModelError,
)
from arena.config import Settings
from arena.roster import RosterEntry

__all__ = [
    "Backend",
    "BackendBusy",
    "BackendError",
    "BackendTimeout",
    "BackendUnreachable",
    "ChatMessage",
    "FinishReason",
    "GenerationCancelled",
    "GenerationRequest",
    "GenerationStats",
    "ModelError",
    "Reply",
    "StreamEvent",
    "TextDelta",
    "build_backend",
    "collect",
]


def build_backend(entry: RosterEntry, *, settings: Settings) -> Backend:
    """Build the backend for a roster entry (nothing is loaded until ``load``/``stream``).

    Parameters
    ----------
    entry
        A validated roster entry.
    settings
        Arena settings (timeouts, retries, cache directory).

    Returns
    -------
    Backend
        A ``TransformersBackend`` sharing the process-wide model cache, or an
        ``OpenAIBackend``.

    Raises
    ------
    ValueError
        For an unknown backend name (the roster validator normally catches it first).
    """
    if entry.backend == "transformers":
        from arena.backends.transformers_backend import TransformersBackend

        return TransformersBackend(entry, settings=settings)
    if entry.backend == "openai":
        from arena.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(entry, settings=settings)
    raise ValueError(f"{entry.name}: unknown backend {entry.backend!r}")
