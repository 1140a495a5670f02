"""Terms of use: the operator's Markdown file, its version, and who has accepted it.

When ``ARENA_TERMS_FILE`` is set, the app shows the file before the first prompt and asks
the visitor to accept it; prompts and votes from a session that has not accepted the current
version are refused (``no_consent``), and every battle stores the version its voter accepted.
The version is a hash of the file's text, so editing the file asks everyone again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Terms", "TermsError"]


class TermsError(ValueError):
    """The terms file cannot be used; the message names it."""


@dataclass(frozen=True)
class Terms:
    """The terms of use a visitor must accept.

    Attributes
    ----------
    text
        Markdown, shown as is.
    version
        ``sha256:`` and the first 16 hex digits of the text's hash.
    """

    text: str
    version: str

    @classmethod
    def from_text(cls, text: str) -> Terms:
        """Terms with the version of ``text``."""
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        return cls(text, f"sha256:{digest}")

    @classmethod
    def load(cls, path: str | Path) -> Terms:
        """Read a terms file.

        Raises
        ------
        TermsError
            Unreadable, not UTF-8, or empty.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TermsError(f"ARENA_TERMS_FILE={str(p)!r}: cannot read it: {exc}") from None
        if not text.strip():
            raise TermsError(f"ARENA_TERMS_FILE={str(p)!r}: the file is empty")
        return cls.from_text(text)
