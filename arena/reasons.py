"""What voters said about their votes: the reasons summary behind ``arena ratings --by
reason``.

Each voted battle may carry reasons picked from the operator's list (``vote_reason`` in the
database, ``reasons`` in an export).  The summary counts, per reason, the votes citing it,
and per model, the share of its wins whose voter cited each reason.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine

from arena import store
from ratings.data import BattleDataError

__all__ = ["ReasonSummary", "format_reasons", "reasons_from_db", "reasons_from_log", "summarise"]

#: (model_a, model_b, winner, reasons)
Row = tuple[str, str, str, tuple[str, ...]]


@dataclass
class ReasonSummary:
    """Counts of reasons over votes, overall and for each model's wins."""

    votes: int = 0
    votes_with_reasons: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    wins: Counter[str] = field(default_factory=Counter)  # wins with any reason, per model
    win_reasons: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def as_dict(self) -> dict[str, object]:
        """The summary as plain data (for ``--format json``)."""
        return {
            "votes": self.votes,
            "votes_with_reasons": self.votes_with_reasons,
            "reasons": [{"reason": r, "votes": n} for r, n in _ranked(self.by_reason)],
            "models": [
                {
                    "model": m,
                    "wins_with_reasons": self.wins[m],
                    "shares": {
                        r: round(n / self.wins[m], 4) for r, n in _ranked(self.win_reasons[m])
                    },
                }
                for m in sorted(self.wins, key=lambda m: (-self.wins[m], m))
            ],
        }


def _ranked(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def summarise(rows: Iterable[Row]) -> ReasonSummary:
    """Count the reasons of ``rows`` (one per vote)."""
    s = ReasonSummary()
    for model_a, model_b, winner, reasons in rows:
        s.votes += 1
        if not reasons:
            continue
        s.votes_with_reasons += 1
        s.by_reason.update(reasons)
        won = {"model_a": model_a, "model_b": model_b}.get(winner)
        if won is not None:
            s.wins[won] += 1
            s.win_reasons[won].update(reasons)
    return s


def reasons_from_db(engine: Engine) -> list[Row]:
    """Every counted anonymous vote with its reasons (empty when it has none)."""
    return store.votes_with_reasons(engine=engine)


def reasons_from_log(path: str | Path) -> list[Row]:
    """Votes and their ``reasons`` from an ``arena export`` JSONL file (``.gz`` too).

    Raises
    ------
    BattleDataError
        A line that is not a JSON object, or ``reasons`` that is not a list of strings
        (naming the line).
    """
    p = Path(path)
    opener = gzip.open if p.name.endswith(".gz") else open
    rows: list[Row] = []
    try:
        with opener(p, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise BattleDataError(
                        str(p), f"malformed JSON ({exc.msg})", line=lineno
                    ) from None
                if not isinstance(rec, dict):
                    raise BattleDataError(str(p), "expected a JSON object", line=lineno)
                if rec.get("exclusion") or rec.get("anony") is False:
                    continue
                reasons = rec.get("reasons") or []
                if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
                    raise BattleDataError(
                        str(p), "expected a list of strings", line=lineno, field="reasons"
                    )
                rows.append(
                    (
                        str(rec.get("model_a")),
                        str(rec.get("model_b")),
                        str(rec.get("winner")),
                        tuple(reasons),
                    )
                )
    except OSError as exc:
        raise BattleDataError(str(p), f"cannot read it: {exc.strerror or exc}") from None
    return rows


def format_reasons(summary: ReasonSummary, fmt: str) -> str:
    """The summary as ``table`` (or ``md``) text, or ``json``."""
    if fmt == "json":
        return json.dumps(summary.as_dict(), indent=2, sort_keys=True) + "\n"
    lines = [
        f"{summary.votes_with_reasons:,} of {summary.votes:,} counted votes give reasons.",
        "",
        "| Reason | Votes |",
        "| --- | --- |",
        *(f"| {r} | {n:,} |" for r, n in _ranked(summary.by_reason)),
    ]
    if summary.wins:
        reasons = [r for r, _ in _ranked(summary.by_reason)]
        lines += [
            "",
            "Share of each model's wins whose voter cited the reason:",
            "",
            "| Model | Wins with reasons | " + " | ".join(reasons) + " |",
            "| --- | --- | " + " | ".join("---" for _ in reasons) + " |",
        ]
        for m in sorted(summary.wins, key=lambda m: (-summary.wins[m], m)):
            w = summary.wins[m]
            shares = " | ".join(f"{summary.win_reasons[m][r] / w:.0%}" for r in reasons)
            lines.append(f"| {m} | {w:,} | {shares} |")
    return "\n".join(lines) + "\n"
