"""The one set of rules for a ``clean_battle`` record, used by every reader and by import.

A record is a mapping with the LMSYS field names.  :func:`check_record` is the authority: it
either returns the record's values, normalised (:class:`Record`), or raises
:class:`RecordError` naming the first field that breaks a rule.  Fields are checked in the
order of ``FIELD_ORDER``, so every path names the same field for the same record.
:func:`table_passes` is the same rules as a vectorised screen over an Arrow table (the
readers' fast path); when it says no, the caller re-reads row by row with
:func:`check_record` to name the line and field.

The rules (documented for users in docs/cli.md, "Battle records"):

- ``model_a``, ``model_b``: required non-empty strings of at most 200 characters, different
  from each other.
- ``winner``: required, one of ``model_a``, ``model_b``, ``tie``, ``tie (bothbad)``.
- ``judge``, ``question_id``: a string or an integer (kept as its decimal text), at most 128
  characters.
- ``battle_id`` (64), ``language`` (20), ``exclusion`` (100): strings of at most that many
  characters.
- Text never contains NUL or a lone UTF-16 surrogate (PostgreSQL and UTF-8 cannot hold them).
- An optional text field that is null or ``""`` is absent (CSV cannot tell them apart).
- ``turn``: an integer from 0 to 2**31 - 1 (a PostgreSQL ``integer``).
- ``anony``: ``true`` or ``false``.
- ``tstamp``: unix seconds, a finite number from 0 to 253402300799 (9999-12-31T23:59:59Z).
- ``weight``: a finite number from 0 to ``MAX_WEIGHT`` (1e6).  A bigger spread between
  weights makes the Bradley-Terry Hessian numerically singular.
- Any other field is ignored.

Text formats (CSV) carry no types: their reader turns a cell into the type a field expects
(:func:`from_text`) before the check, so ``"true"`` is a valid ``anony`` in CSV only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "FIELD_LIMITS",
    "FIELD_ORDER",
    "MAX_TSTAMP",
    "MAX_TURN",
    "MAX_WEIGHT",
    "REQUIRED_FIELDS",
    "WINNERS",
    "Record",
    "RecordError",
    "check_record",
    "check_text",
    "from_text",
    "model_name_problem",
    "table_passes",
    "text_problem",
]

# Longest text per field, in characters: the database column sizes (arena/store/models.py
# reads them from here).
FIELD_LIMITS: dict[str, int] = {
    "battle_id": 64,
    "model_a": 200,
    "model_b": 200,
    "judge": 128,
    "question_id": 128,
    "language": 20,
    "exclusion": 100,
    "address_hash": 128,
}
WINNERS: tuple[str, ...] = ("model_a", "model_b", "tie", "tie (bothbad)")
REQUIRED_FIELDS: tuple[str, ...] = ("model_a", "model_b", "winner")
FIELD_ORDER: tuple[str, ...] = (
    "model_a",
    "model_b",
    "winner",
    "battle_id",
    "question_id",
    "judge",
    "turn",
    "anony",
    "language",
    "tstamp",
    "weight",
    "exclusion",
    "address_hash",
)
MAX_TSTAMP = 253402300799.0  # 9999-12-31T23:59:59Z, the last second a datetime can hold
MAX_TURN = 2**31 - 1
MAX_WEIGHT = 1e6

_ID_FIELDS = ("judge", "question_id")
_OPTIONAL_TEXT = ("battle_id", "question_id", "judge", "language", "exclusion", "address_hash")
_INT_TEXT = re.compile(r"[+-]?[0-9]+")


class RecordError(ValueError):
    """A record breaks a rule.  The caller adds where the record came from.

    Parameters
    ----------
    field
        The field that is wrong (``None`` when the record itself is, e.g. not an object).
    reason
        What is wrong.
    """

    def __init__(self, field: str | None, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(reason if field is None else f"{field}: {reason}")


@dataclass(frozen=True, slots=True)
class Record:
    """A checked record; absent optional fields are ``None``."""

    model_a: str
    model_b: str
    winner: str
    battle_id: str | None = None
    question_id: str | None = None
    judge: str | None = None
    turn: int | None = None
    anony: bool | None = None
    language: str | None = None
    tstamp: float | None = None
    weight: float | None = None
    exclusion: str | None = None
    address_hash: str | None = None


# A model name that is stored and shown to every visitor: letters and digits of any script,
# spaces and the punctuation real model names use.  No markup characters (< > & " ` [ ] ! *
# _ | ~ ...): a name is data, never HTML or Markdown (issue 11).
_MODEL_NAME = re.compile(r"[^\W_](?:[\w .:+/()@,'#-]*[\w)])?")


# The same rule for pyarrow's RE2, over the distinct names only; it may be stricter than
# the Python rule (a name it refuses goes to the row-by-row check), never looser.
_MODEL_NAME_RE2 = r"^[\pL\pN](?:[\pL\pN_ .:+/()@,'#-]*[\pL\pN_)])?$"


def model_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a model name, or ``None`` when it can.

    Model names are stored and shown to every visitor, so every reader and ``arena import``
    apply this rule: letters and digits of any script, spaces and ``. : + / ( ) @ , ' # -
    _`` inside, and nothing that means something in HTML or Markdown (issue 11).  Real arena
    logs (LMSYS, LLMFAO) pass it.
    """
    if not _MODEL_NAME.fullmatch(name):
        bad = sorted({c for c in name if not (c.isalnum() or c in " .:+/()@,'#-_")})
        detail = f" (characters not allowed: {' '.join(repr(c) for c in bad)})" if bad else ""
        return (
            "is not a usable model name: it must start with a letter or digit, end with one "
            f"(or ')'), and use letters, digits, spaces and . : + / ( ) @ , ' # - _{detail}"
        )
    return None


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text everywhere, or ``None`` when it can.

    PostgreSQL refuses NUL characters in text and UTF-8 cannot encode a lone surrogate.
    """
    if "\x00" in value:
        return "contains a NUL character (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid UTF-8)"
    return None


def check_text(name: str, value: Any, *, required: bool) -> str | None:
    """Check one text field (``name`` in ``FIELD_LIMITS``); absent optional text is ``None``.

    Raises
    ------
    RecordError
        Missing when required, not a string (or an integer identifier), too long, NUL or a
        lone surrogate.
    """
    if value is None or (value == "" and not required):
        if required:
            raise RecordError(name, "required field is missing")
        return None
    if name in _ID_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # identifiers are sometimes numbers in public dumps
    if not isinstance(value, str) or not value:
        kind = "a non-empty string" + (" or an integer" if name in _ID_FIELDS else "")
        raise RecordError(name, f"expected {kind}, got {value!r}")
    limit = FIELD_LIMITS[name]
    if len(value) > limit:
        raise RecordError(name, f"longer than {limit} characters ({len(value)})")
    problem = text_problem(value)
    if problem:
        raise RecordError(name, problem)
    return value


def _number(name: str, value: Any, hi: float, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(name, f"expected {what} (a number), got {value!r}")
    # Compared before any float(): an integer like 10**400 must not overflow.
    if isinstance(value, float) and not math.isfinite(value):
        raise RecordError(name, f"expected a finite number, got {value!r}")
    if not 0 <= value <= hi:
        raise RecordError(name, f"out of range: {value!r} (expected 0 to {hi:g})")
    return float(value)


def check_record(rec: Any) -> Record:
    """Check one record against the rules of the module notes.

    Parameters
    ----------
    rec
        The parsed record (a mapping of field names to JSON-like values).

    Returns
    -------
    Record
        The normalised values (numeric identifiers as text, empty optional text as absent).

    Raises
    ------
    RecordError
        Naming the first field (in ``FIELD_ORDER``) that breaks a rule.
    """
    if not isinstance(rec, Mapping):
        raise RecordError(None, f"expected a JSON object, got {type(rec).__name__}")
    model_a = check_text("model_a", rec.get("model_a"), required=True)
    model_b = check_text("model_b", rec.get("model_b"), required=True)
    assert model_a is not None and model_b is not None
    for side, name in (("model_a", model_a), ("model_b", model_b)):
        if (problem := model_name_problem(name)) is not None:
            raise RecordError(side, f"{name!r} {problem}")
    if model_a == model_b:
        raise RecordError("model_b", f"model {model_a!r} plays itself")
    winner = rec.get("winner")
    if winner is None:
        raise RecordError("winner", "required field is missing")
    if not isinstance(winner, str) or winner not in WINNERS:
        raise RecordError(
            "winner", f"unknown winner {winner!r} (expected one of {', '.join(WINNERS)})"
        )
    texts = {name: check_text(name, rec.get(name), required=False) for name in _OPTIONAL_TEXT[:3]}
    turn = rec.get("turn")
    if turn is not None:
        if isinstance(turn, bool) or not isinstance(turn, int):
            raise RecordError("turn", f"expected an integer >= 0, got {turn!r}")
        if not 0 <= turn <= MAX_TURN:
            raise RecordError("turn", f"expected an integer >= 0 and <= {MAX_TURN}, got {turn!r}")
    anony = rec.get("anony")
    if anony is not None and not isinstance(anony, bool):
        raise RecordError("anony", f"expected true or false, got {anony!r}")
    language = check_text("language", rec.get("language"), required=False)
    tstamp = _number("tstamp", rec.get("tstamp"), MAX_TSTAMP, "unix seconds")
    weight = _number("weight", rec.get("weight"), MAX_WEIGHT, "a weight")
    exclusion = check_text("exclusion", rec.get("exclusion"), required=False)
    address_hash = check_text("address_hash", rec.get("address_hash"), required=False)
    return Record(
        model_a=model_a,
        model_b=model_b,
        winner=winner,
        battle_id=texts["battle_id"],
        question_id=texts["question_id"],
        judge=texts["judge"],
        turn=turn,
        anony=anony,
        language=language,
        tstamp=tstamp,
        weight=weight,
        exclusion=exclusion,
        address_hash=address_hash,
    )


def from_text(name: str, cell: str | None) -> Any:
    """Turn a text cell (CSV) into the type field ``name`` expects, when it can be read so.

    An empty cell is absent.  A cell that does not read as the expected type is returned
    unchanged, so :func:`check_record` names the field with the cell's text.
    """
    if cell is None or cell == "":
        return None
    if name in ("tstamp", "weight"):
        try:
            return float(cell)
        except ValueError:
            return cell
    if name == "turn":
        return int(cell) if _INT_TEXT.fullmatch(cell.strip()) else cell
    if name == "anony":
        low = cell.strip().lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        return cell
    return cell


def table_passes(table: pa.Table) -> bool:
    """Whether every row of ``table`` passes :func:`check_record` (a vectorised screen).

    ``table`` has the readers' typed columns (strings, ``float64`` tstamp and weight,
    ``int64`` turn, ``bool`` anony), with empty optional strings already made null.  A
    ``False`` means: check row by row to find and name the failure.
    """
    names = table.column_names
    for name in REQUIRED_FIELDS:
        if name not in names or table[name].null_count:
            return False
    if not pc.all(pc.is_in(table["winner"], value_set=pa.array(WINNERS))).as_py():
        return False
    if pc.any(pc.equal(table["model_a"], table["model_b"])).as_py():
        return False
    for side in ("model_a", "model_b"):
        distinct = pc.unique(table[side])
        if not pc.all(pc.match_substring_regex(distinct, _MODEL_NAME_RE2)).as_py():
            return False
    for name, limit in FIELD_LIMITS.items():
        if name not in names:
            continue
        col = table[name]
        lengths = pc.utf8_length(col)
        longest = pc.max(lengths).as_py()
        if longest is not None and longest > limit:
            return False
        if name in REQUIRED_FIELDS and pc.min(lengths).as_py() == 0:
            return False
        if pc.any(pc.match_substring(col, "\x00")).as_py():
            return False
    for name, hi in (("tstamp", MAX_TSTAMP), ("weight", MAX_WEIGHT), ("turn", MAX_TURN)):
        if name not in names or table[name].null_count == table.num_rows:
            continue
        col = table[name]
        ok = pc.and_(pc.greater_equal(col, 0), pc.less_equal(col, hi))
        # NaN compares false, so it fails here like any other out-of-range value.
        if not pc.all(pc.fill_null(ok, True)).as_py():
            return False
    return True
