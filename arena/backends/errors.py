"""Typed backend failures.

A reply either streams text and ends with stats, or raises one of these; error text never
appears inside a reply.  Each carries the roster name of the model and a stable ``kind``
label that the battle layer records as the error reason.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BackendBusy",
    "BackendError",
    "BackendTimeout",
    "BackendUnreachable",
    "GenerationCancelled",
    "ModelError",
]


class BackendError(Exception):
    """Base of every backend failure.

    Attributes
    ----------
    model
        Roster name of the model that failed.
    detail
        Human-readable explanation (for logs and operators, never shown inside a reply).
    kind
        Stable machine label: ``timeout``, ``busy``, ``unreachable``, ``model_error`` or
        ``cancelled``.
    """

    kind: ClassVar[str] = "backend_error"

    def __init__(self, model: str, detail: str) -> None:
        super().__init__(f"{model}: {detail}")
        self.model = model
        self.detail = detail


class BackendTimeout(BackendError):
    """The model took longer than its generation or read timeout."""

    kind: ClassVar[str] = "timeout"


class BackendBusy(BackendError):
    """No concurrency slot came free in time (or too many requests already wait for one).

    Attributes
    ----------
    retry_after_s
        A fair guess of when a slot will be free again, for the "try again in N s" message.
    """

    kind: ClassVar[str] = "busy"

    def __init__(self, model: str, detail: str, *, retry_after_s: float) -> None:
        super().__init__(model, detail)
        self.retry_after_s = retry_after_s


class BackendUnreachable(BackendError):
    """The model server could not be reached (refused, DNS, connection lost)."""

    kind: ClassVar[str] = "unreachable"


class ModelError(BackendError):
    """The model or its server failed: load error, HTTP error, malformed stream, bad config."""

    kind: ClassVar[str] = "model_error"


class GenerationCancelled(BackendError):
    """The generation was cancelled explicitly (``Backend.cancel``)."""

    kind: ClassVar[str] = "cancelled"
