"""Per-battle style features and category tags, computed when a battle is voted.

``style``   markdown counts (headers, lists, bold) from the parse, token estimates,
            LMSYS ``conv_metadata``
``tags``    the category tagger (language, coding, math, multi-turn, long query)
``record``  compute a stored battle's features and store them; backfill and retag

The vote path calls :func:`record_for_battle` after the vote commits.
"""

from arena.features.record import backfill_style, compute_features, record_for_battle, retag
from arena.features.style import StyleCounts, conv_metadata, count_markdown, estimate_tokens
from arena.features.tags import (
    CATEGORIES,
    DEFAULT_LANGUAGES,
    LONG_QUERY_TOKENS,
    TAGGER_VERSION,
    Tagger,
    Tags,
    tagger_from_settings,
)

__all__ = [
    "CATEGORIES",
    "DEFAULT_LANGUAGES",
    "LONG_QUERY_TOKENS",
    "TAGGER_VERSION",
    "StyleCounts",
    "Tagger",
    "Tags",
    "backfill_style",
    "compute_features",
    "conv_metadata",
    "count_markdown",
    "estimate_tokens",
    "record_for_battle",
    "retag",
    "tagger_from_settings",
]
