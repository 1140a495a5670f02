"""Model metadata for insights: size, openness, release date, price -- read and validated.

A metadata file is a CSV with a header row whose columns are ``model`` plus any of
:data:`METADATA_FIELDS` (the same names as the roster's metadata keys) and, optionally,
``source`` (where the facts come from) and ``notes``.  Empty cells mean "unknown".  A roster
TOML can serve too; the ``arena`` side converts its entries to :class:`ModelMeta`.

Every problem names the file, the line and the column: unknown columns, bad dates, negative
or zero sizes, negative prices, duplicate models.  Names that match no rated model are a
warning (a metadata file usually covers more models than one log), returned by
:func:`match_metadata`.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

__all__ = [
    "BLEND_INPUT_SHARE",
    "METADATA_FIELDS",
    "MetadataError",
    "ModelMeta",
    "match_metadata",
    "meta_from_values",
    "parse_date",
    "read_metadata_csv",
]

#: Metadata columns a CSV may carry besides ``model``, ``source`` and ``notes``.
METADATA_FIELDS: tuple[str, ...] = (
    "params_b",
    "active_params_b",
    "training_tokens_t",
    "price_in_per_mtok",
    "price_out_per_mtok",
    "license",
    "open_weights",
    "organisation",
    "release_date",
    "knowledge_cutoff",
    "url",
)
_EXTRA_COLUMNS = ("source", "notes")
_SIZE_FIELDS = ("params_b", "active_params_b", "training_tokens_t")  # must be > 0
_PRICE_FIELDS = ("price_in_per_mtok", "price_out_per_mtok")  # must be >= 0 (free is a price)
_DATE_FIELDS = ("release_date", "knowledge_cutoff")
#: Blended price = share * input price + (1 - share) * output price, per million tokens.  A
#: 3:1 input:output token mix is the usual convention of public price comparisons.
BLEND_INPUT_SHARE = 0.75
_TRUE = {"true", "yes", "1", "y"}
_FALSE = {"false", "no", "0", "n"}
_MONTH_RE = re.compile(r"^\d{4}-\d{2}$")


class MetadataError(ValueError):
    """A metadata file or value cannot be used; the message names file, line and column."""

    def __init__(
        self, source: str, message: str, *, line: int | None = None, field: str | None = None
    ) -> None:
        self.source = source
        self.line = line
        self.field = field
        where = [source]
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"column {field!r}")
        super().__init__(f"{', '.join(where)}: {message}")


@dataclass(frozen=True)
class ModelMeta:
    """What is known about one model (``None``: unknown).

    Attributes
    ----------
    model
        The name, as it appears in the votes.
    params_b, active_params_b
        Total and (mixture-of-experts) active parameters, in billions.
    training_tokens_t
        Training tokens, in trillions.
    price_in_per_mtok, price_out_per_mtok
        Price per million input / output tokens (any one currency for the whole file).
    license, organisation, url, source
        Free text; ``source`` cites where the facts come from.
    open_weights
        Whether the weights are published.
    release_date, knowledge_cutoff
        Dates (a ``YYYY-MM`` value is read as the first of that month).
    """

    model: str
    params_b: float | None = None
    active_params_b: float | None = None
    training_tokens_t: float | None = None
    price_in_per_mtok: float | None = None
    price_out_per_mtok: float | None = None
    license: str | None = None
    open_weights: bool | None = None
    organisation: str | None = None
    release_date: dt.date | None = None
    knowledge_cutoff: dt.date | None = None
    url: str | None = None
    source: str | None = None
    #: Where this row was read (``file, line N``), for messages.
    origin: str | None = field(default=None, compare=False)

    @property
    def effective_params_b(self) -> float | None:
        """Active parameters when given (mixture-of-experts), else total parameters."""
        return self.active_params_b if self.active_params_b is not None else self.params_b

    @property
    def blended_price(self) -> float | None:
        """:data:`BLEND_INPUT_SHARE`-weighted input/output price; ``None`` unless both known."""
        if self.price_in_per_mtok is None or self.price_out_per_mtok is None:
            return None
        share = BLEND_INPUT_SHARE
        return share * self.price_in_per_mtok + (1.0 - share) * self.price_out_per_mtok


def parse_date(text: str) -> dt.date:
    """Parse ``YYYY-MM-DD`` or ``YYYY-MM`` (the first of the month).

    Raises
    ------
    ValueError
        Anything else, or an impossible date.
    """
    text = text.strip()
    if _MONTH_RE.match(text):
        text += "-01"
    return dt.date.fromisoformat(text)


def meta_from_values(
    model: str, values: Mapping[str, object], *, source: str, line: int | None = None
) -> ModelMeta:
    """Validate one model's metadata values (strings from a CSV, or typed values).

    Parameters
    ----------
    model
        The model name.
    values
        Field name -> value; ``None`` or ``""`` means unknown.
    source, line
        Where the values come from, for messages.

    Returns
    -------
    ModelMeta

    Raises
    ------
    MetadataError
        An unknown field, a value of the wrong kind, a size <= 0, a negative price, a bad
        date, or active parameters above total parameters.
    """
    out: dict[str, object] = {}
    for key, raw in values.items():
        if key not in METADATA_FIELDS and key not in _EXTRA_COLUMNS:
            raise MetadataError(
                source,
                f"unknown column (allowed: model, {', '.join(METADATA_FIELDS + _EXTRA_COLUMNS)})",
                line=line,
                field=key,
            )
        if raw is None or (isinstance(raw, str) and not raw.strip()) or key == "notes":
            continue
        out[key] = _convert(key, raw, source=source, line=line)
    meta = ModelMeta(model=model, **out)  # type: ignore[arg-type]
    if (
        meta.params_b is not None
        and meta.active_params_b is not None
        and meta.active_params_b > meta.params_b
    ):
        raise MetadataError(
            source,
            f"active_params_b {meta.active_params_b:g} exceeds params_b {meta.params_b:g}",
            line=line,
            field="active_params_b",
        )
    return meta


def _convert(key: str, raw: object, *, source: str, line: int | None) -> object:
    def bad(message: str) -> MetadataError:
        return MetadataError(source, message, line=line, field=key)

    if key in _SIZE_FIELDS or key in _PRICE_FIELDS:
        if isinstance(raw, bool):
            raise bad(f"expected a number, got {raw!r}")
        try:
            value = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise bad(f"expected a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise bad(f"must be finite, got {raw!r}")
        if key in _SIZE_FIELDS and value <= 0:
            raise bad(f"must be > 0, got {raw!r}")
        if key in _PRICE_FIELDS and value < 0:
            raise bad(f"must be >= 0, got {raw!r}")
        return value
    if key == "open_weights":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise bad(f"expected true/false (or yes/no, 1/0), got {raw!r}")
    if key in _DATE_FIELDS:
        if isinstance(raw, dt.datetime):
            raise bad("expected a date (YYYY-MM-DD or YYYY-MM), not a date-time")
        if isinstance(raw, dt.date):
            return raw
        try:
            return parse_date(str(raw))
        except ValueError:
            raise bad(f"expected a date (YYYY-MM-DD or YYYY-MM), got {raw!r}") from None
    if not isinstance(raw, str):
        raise bad(f"expected text, got {type(raw).__name__} {raw!r}")
    return raw.strip()


def read_metadata_csv(path: str | Path) -> dict[str, ModelMeta]:
    """Read a metadata CSV.

    Parameters
    ----------
    path
        The file: a header row with ``model`` and any of :data:`METADATA_FIELDS`,
        ``source``, ``notes``.

    Returns
    -------
    dict
        Model name -> :class:`ModelMeta`, in file order.

    Raises
    ------
    MetadataError
        A missing file, no ``model`` column, an unknown column, a bad value, a ragged row or
        a duplicate model; the message names the line and column.
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MetadataError(name, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MetadataError(name, f"cannot read file ({exc})") from None
    reader = csv.reader(text.splitlines())
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise MetadataError(name, "empty file (expected a header row)", line=1) from None
    if "model" not in header:
        raise MetadataError(name, "no 'model' column in the header", line=1)
    for col in header:
        if col != "model" and col not in METADATA_FIELDS and col not in _EXTRA_COLUMNS:
            raise MetadataError(
                name,
                f"unknown column (allowed: model, {', '.join(METADATA_FIELDS + _EXTRA_COLUMNS)})",
                line=1,
                field=col,
            )
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise MetadataError(name, "duplicate column", line=1, field=dupes[0])
    out: dict[str, ModelMeta] = {}
    first_line: dict[str, int] = {}
    for offset, row in enumerate(reader):
        line = offset + 2  # header is line 1; the csv module keeps one row per line here
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise MetadataError(name, f"expected {len(header)} fields, got {len(row)}", line=line)
        values = dict(zip(header, row, strict=True))
        model = values.pop("model").strip()
        if not model:
            raise MetadataError(name, "empty model name", line=line, field="model")
        if model in out:
            raise MetadataError(
                name,
                f"duplicate model {model!r} (also line {first_line[model]})",
                line=line,
                field="model",
            )
        meta = meta_from_values(model, values, source=name, line=line)
        out[model] = replace(meta, origin=f"{name}, line {line}")
        first_line[model] = line
    if not out:
        raise MetadataError(name, "no model rows after the header")
    return out


def match_metadata(
    meta: Mapping[str, ModelMeta], models: Sequence[str] | Iterable[str]
) -> tuple[dict[str, ModelMeta], list[str]]:
    """Keep the metadata of rated models; warn about names that match none.

    Parameters
    ----------
    meta
        Metadata by model name.
    models
        Names of the rated models.

    Returns
    -------
    (dict, list of str)
        The metadata of rated models, and one warning per metadata name that matches no
        rated model (with a close rated name when there is one, since a near miss is usually
        a typo) and one for rated models without metadata.
    """
    import difflib

    rated = list(models)
    rated_set = set(rated)
    kept = {k: v for k, v in meta.items() if k in rated_set}
    warnings = []
    for name in meta:
        if name not in rated_set:
            close = difflib.get_close_matches(name, rated, n=1, cutoff=0.8)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            origin = meta[name].origin
            where = f"{origin}: " if origin else ""
            warnings.append(f"{where}metadata for {name!r} matches no model in the votes{hint}")
    missing = [m for m in rated if m not in meta]
    if missing:
        warnings.append(
            f"{len(missing)} rated model(s) have no metadata: "
            + ", ".join(missing[:10])
            + (" ..." if len(missing) > 10 else "")
        )
    return kept, warnings
