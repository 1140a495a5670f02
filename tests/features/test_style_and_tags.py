"""Style counts from the markdown parse, and the category tagger."""

from __future__ import annotations

import numpy as np
import pytest

from arena.features import (
    LONG_QUERY_TOKENS,
    StyleCounts,
    Tagger,
    conv_metadata,
    count_markdown,
    estimate_tokens,
)

# A tagger over few languages keeps the test's model loading to a few seconds.
SMALL = ("English", "German", "French", "Spanish", "Russian", "Japanese")


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger(SMALL)


def test_counts_headers_lists_bold_and_ignores_code() -> None:
    text = (
        "# Title\n\n## Part\n\n###### Small\n\n"
        "1. one\n2. **two**\n\n"
        "- a\n  - nested __b__\n- c\n\n"
        "```python\n# not a header\n- not a list\n**not bold**\n```\n\n"
        "    # indented code, not a header\n\n"
        "Inline `**code**` and **real bold** and __more__.\n"
    )
    c = count_markdown(text)
    assert (c.h1, c.h2, c.h6, c.headers) == (1, 1, 1, 3)
    assert (c.ordered, c.unordered) == (2, 3)
    assert (c.bold_star, c.bold_under) == (2, 2)


def test_counts_on_generated_documents_with_decoys() -> None:
    """Documents assembled from parts with known counts, decoys inside code blocks."""
    rng = np.random.default_rng(123)
    decoy = "```\n# h\n- x\n1. y\n**b** __c__\n```\n"
    for _ in range(40):
        want = StyleCounts()
        parts = []
        for _ in range(int(rng.integers(1, 9))):
            kind = int(rng.integers(0, 5))
            if kind == 0:
                level = int(rng.integers(1, 7))
                parts.append("#" * level + " Heading\n")
                want = want + StyleCounts(**{f"h{level}": 1})
            elif kind == 1:
                k = int(rng.integers(1, 5))
                parts.append("".join(f"{i + 1}. item\n" for i in range(k)))
                want = want + StyleCounts(ordered=k)
            elif kind == 2:
                k = int(rng.integers(1, 5))
                parts.append("".join("* item\n" for _ in range(k)))
                want = want + StyleCounts(unordered=k)
            elif kind == 3:
                parts.append("Some **bold** text and __under__ here.\n")
                want = want + StyleCounts(bold_star=1, bold_under=1)
            else:
                parts.append(decoy)
        assert count_markdown("\n".join(parts)) == want


def test_conv_metadata_has_lmsys_shape() -> None:
    a = count_markdown("# T\n\n- x\n- y\n\n**b**")
    b = count_markdown("plain")
    md = conv_metadata(tokens_a=120, tokens_b=40, user_tokens=9, turns=1, style_a=a, style_b=b)
    assert md["sum_assistant_a_tokens"] == 120 and md["sum_user_tokens"] == 9
    assert md["header_count_a"] == {"h1": 1, "h2": 0, "h3": 0, "h4": 0, "h5": 0, "h6": 0}
    assert md["list_count_a"] == {"ordered": 0, "unordered": 2}
    assert md["bold_count_a"] == {"**": 1, "__": 0} and md["bold_count_b"] == {"**": 0, "__": 0}
    assert md["turns"] == 1


def test_token_estimate() -> None:
    assert estimate_tokens("Hello, world!") == 4
    assert estimate_tokens("") == 0


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Wie spät ist es heute in Berlin, und wird es morgen regnen?", "German"),
        ("Explique-moi la photosynthèse en termes simples, s'il te plaît.", "French"),
        ("¿Cuál es la capital de Francia y cuántos habitantes tiene?", "Spanish"),
        ("Привет, как дела? Расскажи мне о погоде в Москве.", "Russian"),
        ("Write a short poem about the sea and the wind.", "English"),
        ("ok", None),  # too short to tell: never guessed
        ("12345 + 678", None),
    ],
)
def test_language_is_detected_or_left_unknown(tagger: Tagger, text: str, language: str) -> None:
    assert tagger.language(text) == language


def test_category_rules(tagger: Tagger) -> None:
    t = tagger.tag(["Write a Python function that merges two sorted lists."], ["x"], ["y"])
    assert t.coding and not t.math and not t.multi_turn and not t.long_query
    assert t.hard_prompt is None and "hard_prompt" not in t.category_tag()
    assert not tagger.tag(["What is my zip code in Paris?"], ["x"], ["y"]).coding
    fenced = tagger.tag(["Why does this fail?\n\n```\nx = [1, 2\n```"], ["x"], ["y"])
    assert fenced.coding
    both_code = tagger.tag(["Show me how"], ["```\nls -la\n```"], ["```\ndir\n```"])
    assert both_code.coding
    assert tagger.tag(["Solve 3x + 5 = 20 for x."], ["x"], ["y"]).math
    assert tagger.tag([r"Evaluate $\int_0^1 x^2 dx$"], ["x"], ["y"]).math
    assert not tagger.tag(["Tell me a story about a dragon."], ["x"], ["y"]).math
    multi = tagger.tag(["Hi there, friend.", "And then?"], ["a", "b"], ["c", "d"])
    assert multi.multi_turn
    long_prompt = " ".join(["word"] * LONG_QUERY_TOKENS)
    assert tagger.tag([long_prompt], ["x"], ["y"]).long_query
    assert not tagger.tag([long_prompt], ["x"], ["y"], prompt_tokens=499).long_query


def test_unknown_language_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown language 'Klingon'"):
        Tagger(("English", "Klingon"))
