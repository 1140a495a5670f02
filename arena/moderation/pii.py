"""Personal data in prompts and answers: e-mail addresses, phone numbers, payment card numbers
and IP addresses.

Phone numbers are found by ``phonenumbers`` (Google's libphonenumber rules): numbers written
in international form (``+44 20 7946 0958``) in any country, and national forms for the
configured regions.  Card numbers are 13-19 digits (spaces or dashes allowed between them)
that pass the Luhn check.  IP addresses are validated by :mod:`ipaddress`.  What this does
*not* catch is listed in docs/moderation.md and pinned by a test.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

import phonenumbers

from arena.moderation.base import Finding

__all__ = ["PLACEHOLDERS", "PiiChecker"]

#: What :meth:`PiiChecker.scrub` puts in place of each kind.
PLACEHOLDERS = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]", "ip": "[IP]"}

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
# Not part of a longer dotted number (a version like 1.2.3.4.5), but a sentence may end
# right after the address.
_IPV4 = re.compile(r"(?<!\d)(?<!\d\.)(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Fa-f:])")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


class PiiChecker:
    """Find personal data (see the module docstring).

    Parameters
    ----------
    regions
        Two-letter regions whose national phone formats are recognised (international
        ``+...`` numbers are recognised for every country).
    """

    name = "pii"

    def __init__(self, regions: Sequence[str] = ("US",)) -> None:
        self.regions = tuple(r.strip().upper() for r in regions if r.strip())
        for r in self.regions:
            if r not in phonenumbers.SUPPORTED_REGIONS:
                raise ValueError(f"unknown phone region {r!r} (use a two-letter code like US)")
        self.version = f"1+phonenumbers-{phonenumbers.__version__}+{','.join(self.regions)}"

    def check(self, text: str) -> list[Finding]:
        """Every piece of personal data in ``text``, in order, without overlaps."""
        spans: list[tuple[int, int, str]] = []
        spans += [(m.start(), m.end(), "email") for m in _EMAIL.finditer(text)]
        for m in _CARD.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            if 13 <= len(digits) <= 19 and _luhn(digits):
                spans.append((m.start(), m.end(), "card"))
        for m in _IPV4.finditer(text):
            try:
                ipaddress.IPv4Address(m.group())
            except ValueError:
                continue
            spans.append((m.start(), m.end(), "ip"))
        for m in _IPV6.finditer(text):
            s = m.group()
            if s.count(":") < 2 or not any(c.isdigit() for c in s):
                continue
            try:
                ipaddress.IPv6Address(s)
            except ValueError:
                continue
            spans.append((m.start(), m.end(), "ip"))
        for region in self.regions or ("ZZ",):
            for match in phonenumbers.PhoneNumberMatcher(text, region):
                spans.append((match.start, match.end, "phone"))
        found: list[Finding] = []
        last_end = -1
        for start, end, kind in sorted(spans, key=lambda s: (s[0], -(s[1] - s[0]))):
            if start < last_end:
                continue  # inside an earlier span (a card number is not also a phone)
            found.append(Finding(self.name, self.version, kind, "", start, end))
            last_end = end
        return found

    def scrub(self, text: str) -> str:
        """``text`` with every finding replaced by its typed placeholder (``[EMAIL]``, ...)."""
        out, pos = [], 0
        for f in self.check(text):
            out += [text[pos : f.start], PLACEHOLDERS[f.category]]
            pos = f.end
        out.append(text[pos:])
        return "".join(out)
