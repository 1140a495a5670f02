"""Read battle logs (LMSYS ``clean_battle`` style records) into :class:`ratings.data.Battles`.

Formats, chosen by file name: ``.jsonl``/``.ndjson`` (optionally ``.gz``), ``.json`` (a JSON
list of records, optionally ``.gz``), ``.csv`` (optionally ``.gz``) and ``.parquet``.

Well-formed files take a columnar fast path (pyarrow parses and dictionary-encodes; no Python
object per row).  When anything is wrong, the file is read again by a slow, line-aware path
whose only job is to name the exact line (or record) and field in the error.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ratings.context import (
    CATEGORY_TAG_TYPE,
    CONV_METADATA_TYPE,
    check_context,
    context_columns,
    flat_context_columns,
    from_flat_columns,
    struct_array,
)
from ratings.data import WINNER_CODES, BattleDataError, Battles
from ratings.records import RecordError, check_record, from_text, table_passes

__all__ = [
    "GZIP_FREE_BYTES",
    "MAX_GZIP_RATIO",
    "SUPPORTED_SUFFIXES",
    "check_input_file",
    "detect_format",
    "open_decompressed",
    "read_battles",
]

SUPPORTED_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")
# A gzip file may expand to GZIP_FREE_BYTES, or to MAX_GZIP_RATIO times its own size when
# that is more.  Battle logs compress about 10x; a "gzip bomb" about 1000x (1 MB -> 1 GB),
# which would otherwise be read whole into memory.
GZIP_FREE_BYTES = 64 << 20
MAX_GZIP_RATIO = 100

_OPTIONAL_STRINGS = (
    "battle_id", "judge", "question_id", "language", "exclusion", "address_hash"
)  # fmt: skip
_SCHEMA = pa.schema(
    [
        ("battle_id", pa.string()),
        ("model_a", pa.string()),
        ("model_b", pa.string()),
        ("winner", pa.string()),
        ("judge", pa.string()),
        ("question_id", pa.string()),
        ("language", pa.string()),
        ("tstamp", pa.float64()),
        ("turn", pa.int64()),
        ("anony", pa.bool_()),
        ("weight", pa.float64()),
        ("exclusion", pa.string()),
        ("address_hash", pa.string()),
        ("conv_metadata", CONV_METADATA_TYPE),
        ("category_tag", CATEGORY_TAG_TYPE),
    ]
)
_STRUCT_COLS = ("conv_metadata", "category_tag")
# Without the nested context: parsing conv_metadata costs ~40% more time on an LMSYS-style
# JSONL log, so readers that do not need style counts or tags skip it.
_PLAIN_SCHEMA = pa.schema([f for f in _SCHEMA if f.name not in _STRUCT_COLS])
_CLUSTER_COLS = ("judge", "question_id")


class _TooLarge(BattleDataError):
    """A gzip file expands past the cap (see ``open_decompressed``)."""


class _SlowPath(Exception):
    """The fast path met something it cannot describe precisely; re-read line by line."""


def detect_format(path: Path) -> tuple[str, bool]:
    """Return ``(format, gzipped)`` for a battle file name.

    Raises
    ------
    BattleDataError
        For a suffix that is not supported.
    """
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    if gz:
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    fmt = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv"}.get(ext)
    if ext == ".parquet" and not gz:
        fmt = "parquet"
    if fmt is None:
        raise BattleDataError(
            str(path),
            "unsupported file type (expected .jsonl, .ndjson, .json, .csv — each optionally "
            ".gz — or .parquet)",
        )
    return fmt, gz


def read_battles(
    path: str | Path,
    *,
    include_named: bool = False,
    include_excluded: bool = False,
    cluster_columns: tuple[str, ...] = _CLUSTER_COLS,
    with_context: bool = True,
) -> Battles:
    """Read a battle log.

    Parameters
    ----------
    path
        The file.  Required fields: ``model_a``, ``model_b``, ``winner``; optional:
        ``tstamp``, ``judge``, ``question_id``, ``turn``, ``anony``, ``language``, ``weight``,
        ``exclusion``, ``conv_metadata`` and ``category_tag`` (see :mod:`ratings.context`;
        flattened ``conv_metadata.x.y`` columns in CSV).  Other fields (e.g.
        ``conversation_a``) are ignored.
    include_named
        Keep battles whose ``anony`` field is false (side-by-side votes where the voter knew
        the names).  By default they are left out, as on the public leaderboards, and the
        number left out is recorded in ``Battles.notes``.
    include_excluded
        Keep battles whose ``exclusion`` field names a reason (``arena export`` writes every
        vote, with the reason it is not counted, e.g. ``rate_limited``).  By default they are
        left out, as ``arena ratings --db`` does, and the count by reason goes to the notes.
    cluster_columns
        Which of ``judge``, ``question_id`` and ``address_hash`` (a keyed hash of the client
        address prefix, read by the sybil group test) to keep as cluster columns (encoding a
        high-cardinality column costs time on big logs; pass only what is needed).
    with_context
        Read ``conv_metadata`` and ``category_tag`` (style counts and category flags).
        ``False`` skips parsing them in JSONL logs, which is faster; other formats read them
        anyway.

    Returns
    -------
    Battles

    Raises
    ------
    BattleDataError
        Missing file, unsupported type, empty file, malformed JSON or CSV, a missing column,
        an unknown winner value, a model playing itself: the message names the file, the line
        (or record) and the field.
    """
    p = Path(path)
    source = str(p)
    check_input_file(p)
    fmt, gz = detect_format(p)
    try:
        table, line_of = _read_fast(p, fmt, gz, with_context)
        table = _blank_to_null(table)
        if not table_passes(table):
            raise _SlowPath
        return _to_battles(table, source, include_named, include_excluded, line_of, cluster_columns)
    except _TooLarge:
        raise  # the slow path would only decompress the same bytes again
    except (_SlowPath, BattleDataError):
        # The slow path is the authority on errors: it knows lines, the fast path rows.
        pass
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, EOFError, UnicodeDecodeError):
        pass
    # The slow path either raises a precise BattleDataError or (for input the fast path
    # merely could not type, such as numeric judges) returns the battles.
    table, line_of = _read_slow(p, fmt, gz)
    try:
        return _to_battles(table, source, include_named, include_excluded, line_of, cluster_columns)
    except _SlowPath:  # pragma: no cover - the slow path already validated every row
        raise BattleDataError(source, "could not read battles") from None


def check_input_file(path: Path) -> None:
    """Raise unless ``path`` is a regular file with at least one byte.

    Raises
    ------
    BattleDataError
        The path does not exist, is a directory or another kind of non-file, or is empty.
    """
    source = str(path)
    if path.is_dir():
        raise BattleDataError(source, "is a directory, not a battle file")
    if not path.exists():
        raise BattleDataError(source, "no such file")
    if not path.is_file():
        raise BattleDataError(source, "is not a regular file (a device, pipe or socket)")
    if path.stat().st_size == 0:
        raise BattleDataError(source, "no battles (the file is empty)")


class _CappedReader(io.RawIOBase):
    """A decompressing reader that refuses to produce more than ``limit`` bytes."""

    def __init__(self, inner: Any, limit: int, source: str, compressed: int) -> None:
        self._inner = inner
        self._left = limit
        self._limit = limit
        self._source = source
        self._compressed = compressed

    def readable(self) -> bool:
        return True

    def refuse(self) -> None:
        raise _TooLarge(
            self._source,
            f"decompresses to more than {self._limit:,} bytes (over {MAX_GZIP_RATIO}x its "
            f"{self._compressed:,} bytes): refused as a likely gzip bomb; if the file is "
            "genuine, decompress it first (gunzip) and read the plain file",
        )

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        # One byte more than allowed is asked for, so reaching the cap exactly still passes.
        want = min(len(view), self._left + 1)
        data = self._inner.read(want)
        if len(data) > self._left:
            self.refuse()
        self._left -= len(data)
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()
        super().close()


def open_decompressed(path: Path, gz: bool) -> io.BufferedReader:
    """Open ``path`` for reading bytes, gunzipping when ``gz``, with the gzip-bomb cap.

    The decompressed size is capped at ``max(GZIP_FREE_BYTES, MAX_GZIP_RATIO * file
    size)``; reading past it raises :class:`BattleDataError` naming the file.

    Returns
    -------
    io.BufferedReader

    Raises
    ------
    BattleDataError
        At once when the gzip trailer already declares more than the cap.
    """
    if not gz:
        return open(path, "rb")
    compressed = path.stat().st_size
    limit = max(GZIP_FREE_BYTES, MAX_GZIP_RATIO * compressed)
    reader = _CappedReader(None, limit, str(path), compressed)
    # The trailer's ISIZE (last member's size mod 2**32) never exceeds the true size, so a
    # value over the cap refuses the file before a byte is inflated; a smaller (or forged)
    # one proves nothing and the count while reading still applies.
    with open(path, "rb") as fh:
        if compressed >= 18:
            fh.seek(-4, io.SEEK_END)
            declared = int.from_bytes(fh.read(4), "little")
            if declared > limit:
                reader.refuse()
    reader._inner = gzip.open(path, "rb")  # noqa: SIM115 - closed by the returned reader
    return io.BufferedReader(reader, 1 << 20)


# --------------------------------------------------------------------------- fast path


def _open_stream(p: Path, gz: bool) -> Any:
    # A plain file is read by Arrow's own stream (no Python call per block); only a gzip file
    # needs the capped Python reader.
    return open_decompressed(p, gz) if gz else pa.input_stream(str(p))


def _first_byte(p: Path, gz: bool) -> bytes:
    """The first non-whitespace byte of the (decompressed) file, or b"" when there is none."""
    with _open_stream(p, gz) as stream:
        while chunk := stream.read(1 << 16):
            stripped = chunk.lstrip()
            if stripped:
                return bytes(stripped[:1])
    return b""


def _read_fast(
    p: Path, fmt: str, gz: bool, with_context: bool = True
) -> tuple[pa.Table, np.ndarray | None]:
    if fmt == "jsonl":
        import pyarrow.json as pj

        # pyarrow's JSON reader crashes the whole process (SIGSEGV, pyarrow 26) on a file
        # whose first value is `null`; found by tests/test_fuzz.py.  Only a file that starts
        # like a JSON object goes to it; anything else gets the slow path's precise error.
        if _first_byte(p, gz) != b"{":
            raise _SlowPath
        schema = _SCHEMA if with_context else _PLAIN_SCHEMA

        # The streaming reader with small blocks beats read_json() here by ~2x in time and
        # memory (355 MB of JSONL: 1.2 s and ~220 MB peak, measured on 2 cores).
        with _open_stream(p, gz) as stream:
            reader = pj.open_json(
                stream,
                read_options=pj.ReadOptions(block_size=1 << 20),
                parse_options=pj.ParseOptions(
                    explicit_schema=schema, unexpected_field_behavior="ignore"
                ),
            )
            table = pa.Table.from_batches(list(reader), schema=schema)
        return table, None  # line numbers are only worked out on the slow path
    if fmt == "csv":
        import pyarrow.csv as pcsv

        with _open_stream(p, gz) as stream:
            head = pcsv.read_csv(stream, read_options=pcsv.ReadOptions(block_size=1 << 16))
        names = head.column_names
        # CSV has no nested values: conv_metadata and category_tag come only flattened
        # (conv_metadata.header_count_a.h1, ...); a plain column of that name is ignored.
        types = {f.name: f.type for f in _PLAIN_SCHEMA if f.name in names}
        types.update({k: t for k, t in flat_context_columns().items() if k in names})
        with _open_stream(p, gz) as stream:
            table = pcsv.read_csv(
                stream,
                read_options=pcsv.ReadOptions(block_size=16 << 20),
                convert_options=pcsv.ConvertOptions(
                    column_types=types,
                    include_columns=[n for n in names if n in types],
                    strings_can_be_null=False,
                    # Only an empty cell is missing: pyarrow would also read "nan", "NA" or
                    # "null" as missing, which the record rules (and the slow path) refuse.
                    null_values=[""],
                    true_values=["true", "True", "TRUE", "1"],
                    false_values=["false", "False", "FALSE", "0"],
                ),
            )
        return from_flat_columns(table), None
    if fmt == "parquet":
        import pyarrow.parquet as pq

        names = pq.read_schema(str(p)).names
        table = pq.read_table(str(p), columns=[n for n in names if n in _SCHEMA.names])
        table = _cast_columns(table, str(p))
        return table, None
    # A JSON list of records: parse with the C json module, then build columns.
    raw = _read_bytes(p, gz)
    try:
        records = json.loads(raw)
    except json.JSONDecodeError:
        raise _SlowPath from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise _SlowPath
    cols = {name: [r.get(name) for r in records] for name in _SCHEMA.names}
    if any(check_context(r) for r in records):
        raise _SlowPath
    try:
        # Types are inferred, then held to the schema's families: an explicit type would let
        # pyarrow turn `false` into a 0.0 tstamp, which the record rules refuse.  The nested
        # context (already checked above) gets its fixed struct types.
        inferred = pa.table(
            {
                name: struct_array(values, _SCHEMA.field(name).type)
                if name in _STRUCT_COLS
                else pa.array(values)
                for name, values in cols.items()
            }
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
        raise _SlowPath from None
    return _cast_columns(inferred, str(p)), None


def _cast_columns(table: pa.Table, source: str) -> pa.Table:
    """Widen Parquet columns to the schema's types; anything else goes to the slow path,
    where each value meets the record rules (a float judge is refused there, as in JSON)."""
    cols = {}
    for name in table.column_names:
        col = table[name]
        target = _SCHEMA.field(name).type
        if name in _STRUCT_COLS:
            # Nested context: Arrow matches struct fields by name; a shape it cannot cast
            # goes to the slow path, where the context rules name the field.
            try:
                cols[name] = col.cast(target)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                raise _SlowPath from None
            continue
        kind = col.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        same_family = (
            (
                pa.types.is_string(target)
                and (pa.types.is_string(kind) or pa.types.is_large_string(kind))
            )
            or (
                pa.types.is_floating(target)
                and (pa.types.is_floating(kind) or pa.types.is_integer(kind))
            )
            or (pa.types.is_integer(target) and pa.types.is_integer(kind))
            or (pa.types.is_boolean(target) and pa.types.is_boolean(kind))
        )
        if pa.types.is_null(kind):
            cols[name] = pa.nulls(len(col), target)
            continue
        if not same_family:
            raise _SlowPath
        try:
            cols[name] = col.cast(target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            raise _SlowPath from None
    return pa.table(cols)


def _blank_to_null(table: pa.Table) -> pa.Table:
    """An empty optional string is an absent one (CSV cannot tell the two apart)."""
    for name in _OPTIONAL_STRINGS:
        if name in table.column_names:
            col = table[name]
            blank = pc.equal(col, "")
            if pc.any(blank).as_py():
                idx = table.column_names.index(name)
                table = table.set_column(idx, name, pc.if_else(blank, None, col))
    return table


def _to_battles(
    table: pa.Table,
    source: str,
    include_named: bool,
    include_excluded: bool,
    line_of: np.ndarray | None,
    cluster_columns: tuple[str, ...] = _CLUSTER_COLS,
) -> Battles:
    n = table.num_rows
    if n == 0:
        raise BattleDataError(source, "no battles (the file is empty)")
    for name in ("model_a", "model_b", "winner"):
        if name not in table.column_names:
            raise BattleDataError(source, "required column is missing", field=name)
        if table[name].null_count:
            raise _SlowPath
    notes: list[str] = []
    mask: np.ndarray | None = None
    if "anony" in table.column_names and not include_named:
        anony = table["anony"].to_numpy(zero_copy_only=False)
        # Missing anony flags are taken as anonymous (older logs lack the field).
        named = np.asarray([x is False for x in anony]) if anony.dtype == object else ~anony
        if named.any():
            notes.append(f"left out {int(named.sum())} named (non-anonymous) battles")
            mask = ~named
    reasons = table["exclusion"] if "exclusion" in table.column_names else None
    if reasons is not None and reasons.null_count < n and not include_excluded:
        # A reason is any non-empty string (CSV gives "" for an empty cell).
        excluded = np.array(pc.fill_null(pc.not_equal(reasons, ""), False), dtype=bool)
        if mask is not None:
            excluded &= mask  # a named vote that is also excluded is reported once, as named
        if excluded.any():
            by_reason = Counter(reasons.filter(pa.array(excluded)).to_pylist())
            detail = ", ".join(f"{k} {v}" for k, v in sorted(by_reason.items()))
            notes.append(f"left out {int(excluded.sum())} excluded votes ({detail})")
            mask = (np.ones(n, dtype=bool) if mask is None else mask) & ~excluded
    models_dict = pc.dictionary_encode(
        pa.chunked_array(table["model_a"].chunks + table["model_b"].chunks)
    ).combine_chunks()
    names = models_dict.dictionary.to_pylist()
    if any(not x for x in names):
        raise _SlowPath
    idx = models_dict.indices.to_numpy()
    a, b = idx[:n], idx[n:]
    win = pc.dictionary_encode(table["winner"]).combine_chunks()
    table_codes = []
    for value in win.dictionary.to_pylist():
        if value not in WINNER_CODES:
            raise _SlowPath
        table_codes.append(WINNER_CODES[value])
    outcome = np.asarray(table_codes, dtype=np.int64)[win.indices.to_numpy()]
    if np.any(a == b):
        raise _SlowPath
    clusters = {}
    for name in cluster_columns:
        if name in table.column_names and table[name].null_count < n:
            enc = pc.dictionary_encode(table[name]).combine_chunks()
            codes = enc.indices.to_numpy(zero_copy_only=False)
            codes = (
                np.where(np.isnan(codes), -1, codes).astype(np.int64)
                if codes.dtype.kind == "f"
                else codes.astype(np.int64)
            )
            clusters[name] = _fill_missing(codes)
    tstamp = None
    if "tstamp" in table.column_names and table["tstamp"].null_count == 0:
        tstamp = table["tstamp"].to_numpy()
    weight = None
    if "weight" in table.column_names and table["weight"].null_count < n:
        if table["weight"].null_count:
            raise _SlowPath
        weight = table["weight"].to_numpy()
    battles = Battles.from_codes(
        names, a, b, outcome, weight=weight, clusters=clusters, tstamp=tstamp, source=source
    )
    # Style counts, tags and languages ride along, row for row, through the filters below.
    context = context_columns(table)
    if context:
        battles = battles.with_context(**context)
    if mask is not None:
        battles = battles.select(mask)
    for note in notes:
        battles = battles.with_note(note)
    return battles


def _fill_missing(codes: np.ndarray) -> np.ndarray:
    """Give each missing cluster value (-1) its own code: nothing says they are related."""
    missing = codes < 0
    if missing.any():
        codes = codes.copy()
        start = int(codes.max(initial=-1)) + 1
        codes[missing] = start + np.arange(int(missing.sum()))
    return codes


# --------------------------------------------------------------------------- slow path


def _read_bytes(p: Path, gz: bool) -> bytes:
    try:
        with open_decompressed(p, gz) as fh:
            return fh.read()
    except (OSError, EOFError) as exc:
        raise BattleDataError(str(p), f"cannot read the file ({exc})") from None


def _read_slow(p: Path, fmt: str, gz: bool) -> tuple[pa.Table, np.ndarray | None]:
    source = str(p)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(str(p)).names
            table = pq.read_table(str(p), columns=[n for n in names if n in _SCHEMA.names])
        except (pa.ArrowInvalid, OSError) as exc:
            raise BattleDataError(source, f"not a readable Parquet file ({exc})") from None
        rows: list[dict[str, Any]] = table.to_pylist()
        return _rows_to_table(source, ((None, i, r) for i, r in enumerate(rows)))
    raw = _read_bytes(p, gz)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BattleDataError(source, "invalid UTF-8", line=line) from None
    if fmt == "jsonl":
        return _rows_to_table(source, _jsonl_rows(source, text))
    if fmt == "csv":
        return _rows_to_table(source, _csv_rows(source, text))
    return _rows_to_table(source, _json_list_rows(source, text))


def _jsonl_rows(source: str, text: str) -> Iterator[tuple[int | None, int | None, Any]]:
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BattleDataError(
                source, f"malformed JSON ({exc.msg} at column {exc.colno})", line=lineno
            ) from None
        yield lineno, None, rec


def _json_list_rows(source: str, text: str) -> Iterator[tuple[int | None, int | None, Any]]:
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BattleDataError(source, f"malformed JSON ({exc.msg})", line=exc.lineno) from None
    if not isinstance(records, list):
        raise BattleDataError(source, "expected a JSON list of battle records")
    for i, rec in enumerate(records):
        yield None, i, rec


def _csv_rows(source: str, text: str) -> Iterator[tuple[int | None, int | None, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        for rec in reader:
            if None in rec:
                raise BattleDataError(
                    source, "more values than header columns", line=reader.line_num
                )
            cells = {k: from_text(k, v) for k, v in rec.items()}
            yield reader.line_num, None, _nest_context(cells)
    except csv.Error as exc:
        raise BattleDataError(source, f"malformed CSV ({exc})", line=reader.line_num) from None


def _nest_context(rec: dict[str, Any]) -> dict[str, Any]:
    """CSV's flattened ``conv_metadata.a.b`` / ``category_tag.x`` cells as nested objects,
    with their text typed (integers, true/false) so the checks see what JSON would give."""
    out: dict[str, Any] = {}
    for key, value in rec.items():
        if key in _STRUCT_COLS:
            continue  # only the flattened columns count in CSV (as on the fast path)
        if not key.startswith(("conv_metadata.", "category_tag.")):
            out[key] = value
            continue
        if value is None:
            continue
        parts = key.split(".")
        node = out.setdefault(parts[0], {})
        for part in parts[1:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _typed_cell(value)
    return out


def _typed_cell(value: str) -> Any:
    low = value.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(value)
    except ValueError:
        return value  # left as text: the context check names it


def _rows_to_table(
    source: str, rows: Iterator[tuple[int | None, int | None, Any]]
) -> tuple[pa.Table, np.ndarray | None]:
    cols: dict[str, list[Any]] = {f.name: [] for f in _SCHEMA}
    lines: list[int] = []
    for line, record, rec in rows:
        where = {"line": line} if line is not None else {"record": record}
        try:
            checked = check_record(rec)
        except RecordError as exc:
            raise BattleDataError(source, exc.reason, field=exc.field, **where) from None
        problem = check_context(rec)
        if problem is not None:
            raise BattleDataError(source, problem[1], field=problem[0], **where)
        for f in _SCHEMA:
            if f.name in _STRUCT_COLS:
                cols[f.name].append(rec.get(f.name))
            else:
                cols[f.name].append(getattr(checked, f.name))
        lines.append(line if line is not None else -1)
    if not lines:
        raise BattleDataError(source, "no battles (the file is empty)")
    present = {k: v for k, v in cols.items() if any(x is not None for x in v)}
    if "weight" in present and None in present["weight"]:
        k = present["weight"].index(None)
        where = {"line": lines[k]} if lines[k] >= 0 else {"record": k}
        raise BattleDataError(
            source, "weight is missing here but given elsewhere", field="weight", **where
        )
    table = pa.table(
        {
            k: struct_array(v, _SCHEMA.field(k).type)
            if k in _STRUCT_COLS
            else pa.array(v, type=_SCHEMA.field(k).type)
            for k, v in present.items()
        }
    )
    return table, np.asarray(lines)
