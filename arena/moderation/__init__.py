"""Content moderation: pluggable checkers (operator blocklist, personal data, a guard model)
applied to prompts before any model sees them and to answers before they are shown.

``Settings.moderation`` picks the mode (``off``, ``log``, ``warn``, ``block``); every decision
that found something is stored with the checker's name and version (``moderation_decision``
table), and a battle whose prompt or answers were flagged in ``warn`` or ``block`` mode is
not counted (exclusion reason ``moderated``).  See docs/moderation.md.
"""

from __future__ import annotations

from arena.moderation.base import Action, Checker, Decision, Finding, ModerationMode
from arena.moderation.blocklist import BlocklistChecker, BlocklistError
from arena.moderation.guard import GuardModelChecker, parse_guard_reply
from arena.moderation.moderator import Moderator
from arena.moderation.pii import PLACEHOLDERS, PiiChecker

__all__ = [
    "PLACEHOLDERS",
    "Action",
    "BlocklistChecker",
    "BlocklistError",
    "Checker",
    "Decision",
    "Finding",
    "GuardModelChecker",
    "ModerationMode",
    "Moderator",
    "PiiChecker",
    "parse_guard_reply",
]
