"""A guard model (Llama Guard and the like) as a checker, reached through a roster backend.

The model gets the text as a user message and must answer in Llama Guard's format: a first
line ``safe`` or ``unsafe``, and for ``unsafe`` a second line of comma-separated categories
(``S1,S10``).  Any roster entry works: a Llama Guard behind vLLM through the ``openai``
backend, or a local ``transformers`` entry.  An answer in another format is not guessed at:
the check reports the text as not flagged and logs the reply, and the decision records the
checker as ``unparseable`` so an operator sees it.
"""

from __future__ import annotations

import logging

from arena.backends import Backend, GenerationRequest, collect
from arena.moderation.base import Finding

__all__ = ["GuardModelChecker", "parse_guard_reply"]

log = logging.getLogger(__name__)


def parse_guard_reply(reply: str) -> list[str] | None:
    """Categories from a Llama-Guard-style reply: ``[]`` for safe, ``None`` when unparseable."""
    lines = [ln.strip() for ln in reply.strip().splitlines() if ln.strip()]
    if not lines:
        return None
    head = lines[0].lower().rstrip(".")
    if head == "safe":
        return []
    if head == "unsafe":
        cats = [c.strip() for c in lines[1].split(",")] if len(lines) > 1 else []
        return [c for c in cats if c] or ["unsafe"]
    return None


class GuardModelChecker:
    """Ask a guard model whether a text is safe.

    Parameters
    ----------
    backend
        The roster entry's backend (its name and config hash make the version).
    max_new_tokens
        Enough for ``unsafe`` plus a category line.
    """

    name = "guard_model"

    def __init__(self, backend: Backend, *, max_new_tokens: int = 16) -> None:
        self.backend = backend
        self.max_new_tokens = max_new_tokens
        entry = backend.entry
        self.version = f"{entry.name}@{entry.config_hash[:12]}"

    async def acheck(self, text: str) -> list[Finding]:
        """The guard model's verdict on ``text`` (as findings; empty when safe).

        Raises
        ------
        arena.backends.BackendError
            The guard model failed; the caller decides what a failed check means.
        """
        request = GenerationRequest.from_prompt(text, max_new_tokens=self.max_new_tokens)
        reply = await collect(self.backend, request)
        categories = parse_guard_reply(reply.text)
        if categories is None:
            log.warning(
                "guard model %s gave an unparseable reply: %r",
                self.backend.entry.name,
                reply.text[:200],
            )
            return []
        return [
            Finding(self.name, self.version, c, f"reply: {reply.text.strip()[:100]}")
            for c in categories
        ]
