"""The moderation checkers on their own: what they catch, what they miss, and bad rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from arena.moderation import BlocklistChecker, BlocklistError, PiiChecker, parse_guard_reply

# What the personal-data checker catches (each must be found, with its kind) ...
CAUGHT = [
    ("write to jane.doe+news@mail.example.co.uk today", "email"),
    ("call +44 20 7946 0958 after five", "phone"),
    ("my cell is (415) 555-2671", "phone"),
    ("ring +49 30 901820 please", "phone"),
    ("card 4111 1111 1111 1111 exp 12/29", "card"),
    ("amex 3782-822463-10005 on file", "card"),
    ("server at 203.0.113.42 is down", "ip"),
    ("v6 host 2001:db8::8a2e:370:7334 answers", "ip"),
]
# ... and what it knowingly misses (docs/moderation.md lists these).  If one of these starts
# being caught, move it up and update the docs.
MISSED = [
    "jane dot doe at example dot com",  # spelled-out e-mail
    "my number is 555-2671",  # a national number too short to be valid
    "0207 946 0958",  # a UK national number when only US formats are configured
    "card ending 1111",  # a partial card number
    "4111 1111 1111 1112",  # 16 digits failing the Luhn check (not a card number)
    "I live at 12 Baker Street, London",  # street addresses
    "my name is Jane Doe",  # names
]


@pytest.mark.parametrize(("text", "kind"), CAUGHT)
def test_pii_catches(text: str, kind: str) -> None:
    found = PiiChecker(["US"]).check(text)
    assert [f.category for f in found] == [kind], found
    placeholder = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]", "ip": "[IP]"}[kind]
    assert placeholder in PiiChecker(["US"]).scrub(text)


@pytest.mark.parametrize("text", MISSED)
def test_pii_known_misses(text: str) -> None:
    assert PiiChecker(["US"]).check(text) == []


def test_pii_does_not_flag_ordinary_numbers() -> None:
    for text in [
        "The meeting is at 12:30:45.",
        "Version 1.2.3 and 10.0 are out.",
        "In 1969, 3 men flew 384400 km.",
        "std::vector<int> v; a::b::c",
        "Order 1234567890123 shipped",  # 13 digits, not Luhn-valid
    ]:
        assert PiiChecker(["US"]).check(text) == [], text


def test_pii_scrub_keeps_the_rest_of_the_text() -> None:
    text = "Mail a@b.io, call +1 415 555 2671, visit 198.51.100.7. Thanks!"
    assert PiiChecker().scrub(text) == "Mail [EMAIL], call [PHONE], visit [IP]. Thanks!"


def test_pii_unknown_region_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown phone region 'XX'"):
        PiiChecker(["XX"])


def test_blocklist_words_phrases_and_patterns(tmp_path: Path) -> None:
    path = tmp_path / "block.txt"
    path.write_text(
        "# words and phrases match whole words, any case\n"
        "forbidden\n"
        "secret   recipe\n"
        "\n"
        "re: \\bkill(ing)?\\s+process(es)?\\b\n",
        encoding="utf-8",
    )
    checker = BlocklistChecker.from_file(path)
    assert len(checker) == 3
    assert [f.detail for f in checker.check("A FORBIDDEN word")] == ["line 2: forbidden"]
    assert checker.check("the Secret\nRecipe") and checker.check("killing processes")
    assert checker.check("unforbiddenly") == []  # whole words only
    assert checker.check("a secret") == []
    other = BlocklistChecker([(1, "forbidden"), (2, "extra")])
    assert other.version != checker.version  # a changed list is a new version


@pytest.mark.parametrize(
    ("line", "message"),
    [("re: (unclosed", "line 1: bad regular expression"), ("re: a*", "matches empty text")],
)
def test_blocklist_bad_rules_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(BlocklistError, match=message) as info:
        BlocklistChecker.from_file(path)
    assert str(path) in str(info.value)


def test_guard_replies_are_parsed_or_reported_unparseable() -> None:
    assert parse_guard_reply("safe") == []
    assert parse_guard_reply("\nunsafe\nS1,S10\n") == ["S1", "S10"]
    assert parse_guard_reply("unsafe") == ["unsafe"]
    assert parse_guard_reply("I think this is fine") is None
    assert parse_guard_reply("") is None
