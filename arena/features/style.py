"""Style counts of an answer: markdown headers, list items and bold spans, and token counts.

Counted from the markdown parse (markdown-it-py, CommonMark), not with regular expressions:
a ``# comment`` or ``- item`` inside a code block is code, not a header or a list, and the
parser knows it.  The counts are LMArena's style dimensions; ``conv_metadata`` turns the
per-side sums of a battle into LMSYS's export shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

from markdown_it import MarkdownIt

__all__ = ["HEADER_LEVELS", "StyleCounts", "conv_metadata", "count_markdown", "estimate_tokens"]

HEADER_LEVELS = ("h1", "h2", "h3", "h4", "h5", "h6")
_WORD_PIECE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class StyleCounts:
    """Markdown element counts of one text (or the sum over a side's answers)."""

    h1: int = 0
    h2: int = 0
    h3: int = 0
    h4: int = 0
    h5: int = 0
    h6: int = 0
    ordered: int = 0
    unordered: int = 0
    bold_star: int = 0
    bold_under: int = 0

    def __add__(self, other: StyleCounts) -> StyleCounts:
        return StyleCounts(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    @property
    def headers(self) -> int:
        return self.h1 + self.h2 + self.h3 + self.h4 + self.h5 + self.h6

    @property
    def lists(self) -> int:
        return self.ordered + self.unordered

    @property
    def bold(self) -> int:
        return self.bold_star + self.bold_under


@cache
def _parser() -> MarkdownIt:
    # CommonMark plus tables and strikethrough, as chat UIs render answers.
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def count_markdown(text: str) -> StyleCounts:
    """Count headers (by level), list items (ordered / unordered) and bold spans.

    Parameters
    ----------
    text
        Markdown (an answer).

    Returns
    -------
    StyleCounts
        Bold spans are counted by their markup (``**`` or ``__``); list items by the kind of
        the list that holds them, nested lists included.  Nothing inside code blocks,
        fenced or indented, or inline code counts.
    """
    counts: dict[str, int] = {f.name: 0 for f in fields(StyleCounts)}
    lists: list[str] = []
    for tok in _parser().parse(text):
        kind = tok.type
        if kind == "heading_open" and tok.tag in HEADER_LEVELS:
            counts[tok.tag] += 1
        elif kind in ("ordered_list_open", "bullet_list_open"):
            lists.append("ordered" if kind == "ordered_list_open" else "unordered")
        elif kind in ("ordered_list_close", "bullet_list_close"):
            lists.pop()
        elif kind == "list_item_open" and lists:
            counts[lists[-1]] += 1
        elif kind == "inline" and tok.children:
            for child in tok.children:
                if child.type == "strong_open":
                    counts["bold_star" if child.markup == "**" else "bold_under"] += 1
    return StyleCounts(**counts)


def estimate_tokens(text: str) -> int:
    """A tokenizer-free token estimate: one per word and one per punctuation mark.

    Used only when the backend did not count a text itself (prompts: the backends count
    completions).  BPE tokenizers give about 1.3 tokens per English word, so this estimate
    runs low by about a quarter on English prose and is closer on code.
    """
    return len(_WORD_PIECE.findall(text))


def conv_metadata(
    *,
    tokens_a: int,
    tokens_b: int,
    user_tokens: int,
    turns: int,
    style_a: StyleCounts,
    style_b: StyleCounts,
) -> dict[str, Any]:
    """The LMSYS ``conv_metadata`` record of a battle (per-side sums over turns).

    Parameters
    ----------
    tokens_a, tokens_b
        Answer tokens of each side, summed over turns.
    user_tokens
        Prompt tokens summed over turns.
    turns
        User turns.
    style_a, style_b
        Summed markdown counts of each side.

    Returns
    -------
    dict
        ``sum_assistant_a_tokens``, ``sum_assistant_b_tokens``, ``sum_user_tokens``,
        ``turns``, ``header_count_a/b`` (``h1``..``h6``), ``list_count_a/b`` (``ordered``,
        ``unordered``) and ``bold_count_a/b`` (``**``, ``__``).
    """
    out: dict[str, Any] = {
        "sum_assistant_a_tokens": int(tokens_a),
        "sum_assistant_b_tokens": int(tokens_b),
        "sum_user_tokens": int(user_tokens),
        "turns": int(turns),
    }
    for side, st in (("a", style_a), ("b", style_b)):
        out[f"header_count_{side}"] = {h: int(getattr(st, h)) for h in HEADER_LEVELS}
        out[f"list_count_{side}"] = {"ordered": st.ordered, "unordered": st.unordered}
        out[f"bold_count_{side}"] = {"**": st.bold_star, "__": st.bold_under}
    return out
