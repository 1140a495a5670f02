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

# Characters with a meaning anywhere in a line (emphasis, code, links, images, tables,
# strikethrough, escapes); HTML's own (< > & " ') are entity-escaped first.  Any ASCII
# punctuation may be backslash-escaped in CommonMark, so escaping is always safe.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()!|~])")
# Characters that start a block (heading, list, quote) only at the start of a line.
_LEADING = re.compile(r"^([#+\-=>]|\d+[.)])")


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
    escaped = _SPECIAL.sub(r"\\\1", html.escape(flat, quote=True))
    return _LEADING.sub(lambda m: m.group(1)[:-1] + "\\" + m.group(1)[-1], escaped)
