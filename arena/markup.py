"""Text that goes into Markdown shown to every visitor: make it literal.

Model names reach the page in Markdown (the leaderboard note, the revealed names).  Roster
names are restricted, but names imported from a battle log were not, and a name like
``<img src="http://elsewhere/x">`` made every visitor's browser fetch an outside address
(issue 11).  :func:`escape_markdown` turns any string into Markdown that renders as exactly
that text: no HTML, no links, no images, no emphasis.
"""

from __future__ import annotations

import html
import re

__all__ = ["escape_markdown"]

# Every ASCII punctuation character may be backslash-escaped in CommonMark; escaping all
# of the ones with a meaning is simpler and safer than reasoning about contexts.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def escape_markdown(text: str) -> str:
    """``text`` as Markdown that renders literally (HTML-escaped, punctuation escaped).

    Parameters
    ----------
    text
        Any string (a model name, a warning that quotes one).

    Returns
    -------
    str
        Safe to embed in Markdown; newlines become spaces.
    """
    flat = " ".join(str(text).split())
    return _SPECIAL.sub(r"\\\1", html.escape(flat, quote=True))
