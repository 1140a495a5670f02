"""Category tags of a battle: language, coding, math, multi-turn, long query.

The tagger reads the prompts (and, for coding, the answers) and returns :class:`Tags`; the
battle stores them with :data:`TAGGER_VERSION`, and ``arena db retag`` re-runs a newer tagger
over stored battles.  The rules:

- ``language``: the prompts' language, by lingua-language-detector (offline, statistical
  n-gram models) over the configured languages (``ARENA_TAG_LANGUAGES``).  ``None`` when the
  detector cannot tell (very short or mixed text): a language is never guessed.
- ``coding``: the prompt holds code (a fenced or indented code block, per the markdown
  parse) or programming syntax (``def f(``, ``#include``, ``SELECT ... FROM`` ...), or names
  a programming language or task (Python, SQL, "debug", "compile" ...); or both answers
  contain a code block.
- ``math``: LaTeX (``$...$``, ``\\frac`` ...), an equation or arithmetic expression, or a
  mathematical task word (integral, derivative, prove, equation, probability ...).
- ``multi_turn``: more than one user turn.
- ``long_query``: prompts of :data:`LONG_QUERY_TOKENS` tokens or more (summed over turns).
- ``hard_prompt`` is not produced here: it needs a judge model (LMArena's seven criteria), and
  without one it is left out rather than guessed (stored as NULL).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from arena.features.style import _parser, estimate_tokens

__all__ = [
    "CATEGORIES",
    "DEFAULT_LANGUAGES",
    "LONG_QUERY_TOKENS",
    "TAGGER_VERSION",
    "Tagger",
    "Tags",
    "language_detector",
    "tagger_from_settings",
]

TAGGER_VERSION = "tags-1"
CATEGORIES: tuple[str, ...] = ("coding", "math", "multi_turn", "long_query", "hard_prompt")
LONG_QUERY_TOKENS = 500
# The languages most used on public arenas; each Latin-script language model lingua loads
# costs ~15 MB and a second or two on first use, so the list is a setting, not "all 75".
DEFAULT_LANGUAGES: tuple[str, ...] = (
    "English", "Chinese", "Russian", "German", "Japanese", "Spanish", "French", "Korean",
    "Portuguese", "Italian", "Polish", "Vietnamese", "Arabic", "Turkish", "Indonesian",
    "Dutch", "Ukrainian", "Persian", "Hebrew", "Hindi", "Thai", "Czech", "Swedish", "Greek",
    "Hungarian", "Romanian", "Danish", "Finnish", "Bulgarian", "Bengali",
)  # fmt: skip
# Below this relative distance between the two likeliest languages, lingua says "unknown".
_MIN_DISTANCE = 0.1

_CODE_LANGS = re.compile(
    r"\b(python|javascript|typescript|java|kotlin|swift|golang|rust|ruby|php|perl|scala|"
    r"haskell|c\+\+|c#|sql|postgres(?:ql)?|mysql|sqlite|html|css|bash|shell script|powershell|"
    r"regex|react|django|flask|numpy|pandas|pytorch|tensorflow|docker|kubernetes|json|yaml|"
    r"api|compiler?|compile|debug(?:ging)?|stack ?trace|segfault|refactor|unit tests?|"
    r"function|algorithm|code|coding|programming|script)\b",
    re.IGNORECASE,
)
_CODE_SYNTAX = re.compile(
    r"(^|\n)\s*(def |class \w+[:(]|import \w|from \w+ import|#include|public static|"
    r"function \w+\(|const \w+ =|let \w+ =|var \w+ =|fn \w+\(|SELECT .+ FROM|console\.log|"
    r"printf\(|System\.out)|[;{}]\s*\n|=>|::|\w+\(\)\s*[;{]",
    re.IGNORECASE,
)
# "code" alone is ambiguous (zip code, dress code): count it only next to a coding word.
_WEAK_CODE_WORDS = {"code", "function", "script", "api"}
_LATEX = re.compile(r"\$[^$\n]+\$|\\\(|\\\[|\\(frac|sqrt|int|sum|prod|lim|cdot|times|alpha|"
                    r"beta|theta|pi|infty|mathbb|begin\{(equation|align))")  # fmt: skip
_EQUATION = re.compile(
    r"\d\s*[-+*/^×÷]\s*\d|[a-z]\s*\^\s*\d|\d\s*[a-z]\s*[-+=]|[a-z]\s*=\s*-?\d|\d+\s*%\s*of",
    re.IGNORECASE,
)
_MATH_WORDS = re.compile(
    r"\b(integral|integrate|derivative|differentiate|equation|inequality|theorem|prove|"
    r"proof|lemma|probability|matrix|matrices|eigen\w*|polynomial|logarithm|factorial|"
    r"prime numbers?|arithmetic|algebra|geometry|calculus|trigonometr\w*|calculate|compute "
    r"the|solve for|how many ways|expected value|variance|limit of|sum of|square root|"
    r"fraction|percentage)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Tags:
    """The tags of one battle; ``hard_prompt`` is ``None`` when not judged."""

    language: str | None
    coding: bool
    math: bool
    multi_turn: bool
    long_query: bool
    hard_prompt: bool | None = None
    version: str = TAGGER_VERSION

    def category_tag(self) -> dict[str, Any]:
        """LMSYS-style ``category_tag``: each category's flag (unjudged ones left out)."""
        out: dict[str, Any] = {
            "coding": self.coding,
            "math": self.math,
            "multi_turn": self.multi_turn,
            "long_query": self.long_query,
        }
        if self.hard_prompt is not None:
            out["hard_prompt"] = self.hard_prompt
        return out


_lock = threading.Lock()


@cache
def language_detector(languages: tuple[str, ...] = DEFAULT_LANGUAGES) -> Any:
    """The lingua detector for ``languages`` (built once per process and language set).

    Raises
    ------
    ValueError
        A language lingua does not know (the message names it).
    """
    from lingua import Language, LanguageDetectorBuilder

    by_name = {lang.name: lang for lang in Language.all()}
    chosen = []
    for name in languages:
        try:
            chosen.append(by_name[name.strip().upper()])
        except KeyError:
            raise ValueError(f"unknown language {name!r} for the tagger (lingua names, e.g. "
                             "English, German, Chinese)") from None  # fmt: skip
    if len(chosen) < 2:
        raise ValueError("the tagger needs at least two languages to choose between")
    return (
        LanguageDetectorBuilder.from_languages(*chosen)
        .with_minimum_relative_distance(_MIN_DISTANCE)
        .build()
    )


class Tagger:
    """Tags battles; one per process (the language models load on first use).

    Parameters
    ----------
    languages
        Languages the detector chooses between (lingua names).
    """

    version = TAGGER_VERSION

    def __init__(self, languages: Sequence[str] = DEFAULT_LANGUAGES) -> None:
        self.languages = tuple(languages)
        language_detector(self.languages)  # validate the names now, load models lazily

    def warm_up(self) -> threading.Thread:
        """Load the language models in a background thread (the first detection otherwise
        pays a few seconds per language); returns the thread."""
        t = threading.Thread(
            target=self.language, args=("The quick brown fox jumps.",), daemon=True
        )
        t.start()
        return t

    def language(self, text: str) -> str | None:
        """The language of ``text`` (e.g. ``"German"``), or ``None`` when unclear."""
        if not any(ch.isalpha() for ch in text):
            return None
        with _lock:  # lingua's lazy model loading is not meant to race
            found = language_detector(self.languages).detect_language_of(text)
        return None if found is None else str(found.name).title()

    def tag(
        self,
        prompts: Sequence[str],
        answers_a: Sequence[str],
        answers_b: Sequence[str],
        *,
        prompt_tokens: int | None = None,
    ) -> Tags:
        """Tag one battle.

        Parameters
        ----------
        prompts
            The user's prompts, one per turn.
        answers_a, answers_b
            Each side's answers, one per turn.
        prompt_tokens
            Prompt tokens summed over turns when known (else estimated).

        Returns
        -------
        Tags
        """
        text = "\n\n".join(prompts)
        tokens = prompt_tokens if prompt_tokens is not None else estimate_tokens(text)
        return Tags(
            language=self.language(text),
            coding=_is_coding(text, answers_a, answers_b),
            math=_is_math(text),
            multi_turn=len(prompts) > 1,
            long_query=tokens >= LONG_QUERY_TOKENS,
        )


def _has_code_block(text: str) -> bool:
    return any(t.type in ("fence", "code_block") for t in _parser().parse(text))


def _is_coding(prompt: str, answers_a: Sequence[str], answers_b: Sequence[str]) -> bool:
    if _has_code_block(prompt) or _CODE_SYNTAX.search(prompt):
        return True
    words = {m.group(0).lower() for m in _CODE_LANGS.finditer(prompt)}
    if words - _WEAK_CODE_WORDS or len(words) >= 2:
        return True
    return any(map(_has_code_block, answers_a)) and any(map(_has_code_block, answers_b))


def _is_math(prompt: str) -> bool:
    return bool(_LATEX.search(prompt) or _EQUATION.search(prompt) or _MATH_WORDS.search(prompt))


def tagger_from_settings(settings: Any) -> Tagger:
    """The tagger over ``settings.tag_languages`` (``ARENA_TAG_LANGUAGES``; empty: defaults).

    Parameters
    ----------
    settings
        An :class:`arena.config.Settings`.

    Returns
    -------
    Tagger

    Raises
    ------
    ValueError
        A language lingua does not know.
    """
    names = [x.strip() for x in str(settings.tag_languages).split(",") if x.strip()]
    return Tagger(names or DEFAULT_LANGUAGES)
