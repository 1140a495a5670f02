"""Per-battle context in battle logs: LMSYS ``conv_metadata`` (style counts),
``category_tag`` and ``language``, turned into ``Battles`` columns.

Shapes read (the ones ``arena export`` writes, and LMSYS's own for ``conv_metadata``)::

    "conv_metadata": {"sum_assistant_a_tokens": 512, "sum_assistant_b_tokens": 230,
                      "sum_user_tokens": 40, "turns": 1,
                      "header_count_a": {"h1": 1, ..., "h6": 0}, "header_count_b": {...},
                      "list_count_a": {"ordered": 3, "unordered": 0}, "list_count_b": {...},
                      "bold_count_a": {"**": 2, "__": 0}, "bold_count_b": {...}}
    "category_tag": {"coding": true, "math": false, "multi_turn": false, "long_query": false}
    "language": "German"

CSV carries them flattened: ``conv_metadata.header_count_a.h1``, ``category_tag.coding``.
A battle without ``conv_metadata`` has unknown style (NaN); one without a tag is untagged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "CATEGORY_FIELDS",
    "CATEGORY_TAG_TYPE",
    "CONV_METADATA_TYPE",
    "check_context",
    "context_columns",
    "flat_context_columns",
    "from_flat_columns",
    "struct_array",
]

CATEGORY_FIELDS: tuple[str, ...] = ("coding", "math", "multi_turn", "long_query", "hard_prompt")
_HEADERS = tuple(f"h{k}" for k in range(1, 7))
_PARTS: dict[str, tuple[str, ...]] = {
    "header_count": _HEADERS,
    "list_count": ("ordered", "unordered"),
    "bold_count": ("**", "__"),
}
_SCALARS = ("sum_assistant_a_tokens", "sum_assistant_b_tokens", "sum_user_tokens", "turns")
CONV_METADATA_TYPE = pa.struct(
    [pa.field(k, pa.int64()) for k in _SCALARS]
    + [
        pa.field(f"{group}_{side}", pa.struct([pa.field(p, pa.int64()) for p in parts]))
        for group, parts in _PARTS.items()
        for side in "ab"
    ]
)
CATEGORY_TAG_TYPE = pa.struct([pa.field(k, pa.bool_()) for k in CATEGORY_FIELDS])

FloatArray = npt.NDArray[np.float64]


def flat_context_columns() -> dict[str, pa.DataType]:
    """CSV column names of the flattened context and their types."""
    cols: dict[str, pa.DataType] = {f"conv_metadata.{k}": pa.int64() for k in _SCALARS}
    for group, parts in _PARTS.items():
        for side in "ab":
            for p in parts:
                cols[f"conv_metadata.{group}_{side}.{p}"] = pa.int64()
    for k in CATEGORY_FIELDS:
        cols[f"category_tag.{k}"] = pa.bool_()
    return cols


def from_flat_columns(table: pa.Table) -> pa.Table:
    """Fold flattened ``conv_metadata.*`` / ``category_tag.*`` columns (CSV) into structs."""
    names = table.column_names
    if not any(n.startswith(("conv_metadata.", "category_tag.")) for n in names):
        return table
    n = table.num_rows

    def col(name: str, typ: pa.DataType) -> pa.Array:
        if name in names:
            return table[name].combine_chunks().cast(typ)
        return pa.nulls(n, typ)

    meta_fields = [col(f"conv_metadata.{k}", pa.int64()) for k in _SCALARS]
    for group, parts in _PARTS.items():
        for side in "ab":
            sub = [col(f"conv_metadata.{group}_{side}.{p}", pa.int64()) for p in parts]
            meta_fields.append(pa.StructArray.from_arrays(sub, names=list(parts)))
    # A row whose token counts are all empty has no conv_metadata.
    present = pc.is_valid(meta_fields[0])
    meta = pa.StructArray.from_arrays(
        meta_fields, fields=list(CONV_METADATA_TYPE), mask=pc.invert(present)
    )
    tags = [col(f"category_tag.{k}", pa.bool_()) for k in CATEGORY_FIELDS]
    tag = pa.StructArray.from_arrays(tags, fields=list(CATEGORY_TAG_TYPE))
    keep = [c for c in names if not c.startswith(("conv_metadata.", "category_tag."))]
    return (
        table.select(keep).append_column("conv_metadata", meta).append_column("category_tag", tag)
    )


def check_context(record: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first problem of a record's context fields as ``(field, reason)``, or ``None``.

    ``conv_metadata`` must be an object whose counts are integers >= 0 (the nested
    ``header_count_a`` etc. objects of integers); ``category_tag`` an object of booleans.
    """
    meta = record.get("conv_metadata")
    if meta is not None:
        if not isinstance(meta, Mapping):
            return "conv_metadata", "must be an object"
        for k in _SCALARS:
            v = meta.get(k)
            if v is not None and not _count(v):
                return f"conv_metadata.{k}", f"must be an integer >= 0, got {v!r}"
        for group, parts in _PARTS.items():
            for side in "ab":
                sub = meta.get(f"{group}_{side}")
                if sub is None:
                    continue
                if not isinstance(sub, Mapping):
                    return f"conv_metadata.{group}_{side}", "must be an object"
                for p in parts:
                    v = sub.get(p)
                    if v is not None and not _count(v):
                        return (
                            f"conv_metadata.{group}_{side}.{p}",
                            f"must be an integer >= 0, got {v!r}",
                        )
    tag = record.get("category_tag")
    if tag is not None:
        if not isinstance(tag, Mapping):
            return "category_tag", "must be an object"
        for k in CATEGORY_FIELDS:
            v = tag.get(k)
            if v is not None and not isinstance(v, bool):
                return f"category_tag.{k}", f"must be true or false, got {v!r}"
    return None


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def context_columns(table: pa.Table) -> dict[str, Any]:
    """Style counts, category flags and languages of a table's rows.

    Parameters
    ----------
    table
        Rows of a battle log, with optional ``conv_metadata`` and ``category_tag`` struct
        columns and a ``language`` string column.

    Returns
    -------
    dict
        Keyword arguments for :meth:`ratings.data.Battles.with_context` (only the ones the
        table has): ``style`` (``n x 4 x 2``, NaN where a row has no conv_metadata),
        ``categories`` (flags; a missing tag is False) and ``language`` (``None`` when
        missing).
    """
    n = table.num_rows
    out: dict[str, Any] = {}
    names = table.column_names
    if "conv_metadata" in names and table["conv_metadata"].null_count < n:
        meta = table["conv_metadata"].combine_chunks()
        present = np.asarray(pc.is_valid(meta), dtype=bool)
        style = np.full((n, 4, 2), np.nan)
        for j, side in enumerate("ab"):
            style[:, 0, j] = _numbers(meta.field(f"sum_assistant_{side}_tokens"))
            for k, group in enumerate(("header_count", "list_count", "bold_count"), 1):
                sub = meta.field(f"{group}_{side}")
                total = np.zeros(n)
                for p in _PARTS[group]:
                    total += np.nan_to_num(_numbers(sub.field(p)), nan=0.0)
                style[:, k, j] = total
        style[~present] = np.nan
        out["style"] = style
    if "category_tag" in names and table["category_tag"].null_count < n:
        tag = table["category_tag"].combine_chunks()
        out["categories"] = {
            k: np.asarray(pc.fill_null(tag.field(k), False), dtype=bool) for k in CATEGORY_FIELDS
        }
    if "language" in names and table["language"].null_count < n:
        # Few distinct values: convert the dictionary, not 1.8M Python strings one by one.
        enc = pc.dictionary_encode(table["language"]).combine_chunks()
        values = np.array([x if x else None for x in enc.dictionary.to_pylist()] + [None],
                          dtype=object)  # fmt: skip
        idx = np.asarray(pc.fill_null(enc.indices, len(values) - 1), dtype=np.int64)
        out["language"] = values[idx]
    return out


def _numbers(arr: pa.Array) -> FloatArray:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


def struct_array(values: Sequence[Any], typ: pa.DataType) -> pa.Array:
    """Python dicts (or None) as a struct array of ``typ`` (unknown keys ignored)."""
    return pa.array([_prune(v, typ) for v in values], type=typ)


def _prune(value: Any, typ: pa.DataType) -> Any:
    if not isinstance(value, Mapping):
        return None
    out = {}
    for f in typ:
        v = value.get(f.name)
        out[f.name] = _prune(v, f.type) if pa.types.is_struct(f.type) else v
    return out
