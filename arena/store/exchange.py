"""Battle files in and out: LMSYS ``clean_battle`` JSONL, deterministic and lossless.

Export writes one JSON object per line with the public field names (``question_id,
model_a, model_b, winner, judge, turn, anony, language, tstamp``) plus ``battle_id`` and
``exclusion`` (``null`` when the vote is counted), and with ``--with-conversations``
``conversation_a`` / ``conversation_b`` as ``[{"role", "content"}, ...]``.  Keys are sorted,
records ordered by ``(tstamp, battle_id)``, gzip headers carry no time or name, so
export -> import into an empty database -> export gives the same bytes.

Import reads such files (ours, or public dumps) in one transaction: every line is validated
before anything is written; a bad line raises :class:`BattleImportError` naming the file,
line and field, and the database is untouched.  Battles whose id is already stored are
skipped and counted.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from arena.lifecycle import Exclusion
from arena.store.engine import reader
from arena.store.errors import BattleImportError
from arena.store.features import export_context, features_from_record
from arena.store.models import utcnow
from ratings.context import check_context
from ratings.data import BattleDataError
from ratings.readers import check_input_file, open_decompressed
from ratings.records import RecordError, check_record, text_problem

__all__ = [
    "EXPORT_FIELDS",
    "IMPORTED_BACKEND",
    "ImportReport",
    "Progress",
    "export_battles",
    "import_battles",
    "iter_export_records",
]

EXPORT_FIELDS = (
    "battle_id",
    "question_id",
    "model_a",
    "model_b",
    "winner",
    "judge",
    "turn",
    "anony",
    "language",
    "tstamp",
    "exclusion",
)
IMPORTED_BACKEND = "imported"
# progress(phase, n): n more records done in phase ("read" or "write"); the CLI draws bars.
Progress = Callable[[str, int], None]
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)
# Namespace for ids of imported records that have no battle_id (public dumps): the id is a
# hash of the record, so importing the same dump twice skips every line the second time.
_IMPORT_NAMESPACE = uuid.UUID("6f1c1d2e-4b8a-5a57-9c1e-3d5f0a7b2c41")
_CHUNK = 1000
# Core tables: bulk paths use Core statements, never one ORM object per row.
_MODEL = SQLModel.metadata.tables["model"]
_BATTLE = SQLModel.metadata.tables["battle"]
_MESSAGE = SQLModel.metadata.tables["message"]
_VOTE = SQLModel.metadata.tables["vote"]
_REASON = SQLModel.metadata.tables["vote_reason"]
_MODEL_EVENT = SQLModel.metadata.tables["model_event"]


def _to_tstamp(when: dt.datetime) -> float:
    # Through integer microseconds, so the float is the correctly rounded value and
    # parsing it back (round(ts * 1e6)) recovers the same microsecond.
    return ((when - _EPOCH) // _US) / 1_000_000


def _from_tstamp(ts: float) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=round(ts * 1_000_000))


# --------------------------------------------------------------------------------------------
# export


def iter_export_records(
    *,
    engine: Engine,
    with_conversations: bool = False,
    since: dt.datetime | None = None,
    include_moderated: bool = False,
    scrub: Callable[[str], str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one ``clean_battle`` record per vote, in ``(tstamp, battle_id)`` order.

    Parameters
    ----------
    engine
        From :func:`arena.store.open_engine`.
    with_conversations
        Add ``conversation_a`` and ``conversation_b``.
    since
        Only votes at or after this time (timezone-aware).
    include_moderated
        Also write the conversations of battles excluded as ``moderated`` (by default
        their records are written without them).
    scrub
        Applied to every message's text (e.g. replacing personal data by placeholders).

    Yields
    ------
    dict
        The record (every vote, counted or not; ``exclusion`` says which).
    """
    v, b = _VOTE.c, _BATTLE.c
    ma, mb = _MODEL.alias("ma"), _MODEL.alias("mb")
    stmt = (
        select(
            v.battle_id,
            v.question_id,
            ma.c.name,
            mb.c.name,
            v.winner,
            v.judge,
            v.turn,
            v.anony,
            b.language,
            v.voted_at,
            v.exclusion,
        )
        .select_from(
            _VOTE.join(_BATTLE, b.id == v.battle_id)
            .join(ma, ma.c.id == v.model_a_id)
            .join(mb, mb.c.id == v.model_b_id)
        )
        .order_by(v.voted_at, v.battle_id)
    )
    if since is not None:
        stmt = stmt.where(v.voted_at >= since)
    with reader(engine).begin() as conn:
        result = conn.execution_options(yield_per=_CHUNK).execute(stmt)
        for part in result.partitions():
            records = []
            for bid, qid, a, b, winner, judge, turn, anony, lang, voted_at, excl in part:
                records.append(
                    {
                        "battle_id": bid,
                        "question_id": qid,
                        "model_a": a,
                        "model_b": b,
                        "winner": winner,
                        "judge": judge,
                        "turn": turn,
                        "anony": bool(anony),
                        "language": lang,
                        "tstamp": _to_tstamp(voted_at),
                        "exclusion": excl,
                    }
                )
            # Style counts and category tags, where the battle has them (LMSYS shapes).
            context = export_context(conn, [r["battle_id"] for r in records])
            for rec in records:
                rec.update(context.get(rec["battle_id"], {}))
            _add_reasons(conn, records)
            if with_conversations:
                _add_conversations(
                    conn,
                    [
                        r
                        for r in records
                        if include_moderated or r["exclusion"] != Exclusion.MODERATED
                    ],
                    scrub,
                )
            yield from records


def _add_reasons(conn: Connection, records: list[dict[str, Any]]) -> None:
    """``reasons``: what the voter said about the vote, where they said anything."""
    ids = [r["battle_id"] for r in records]
    rows = conn.execute(
        select(_REASON.c.battle_id, _REASON.c.reason).where(_REASON.c.battle_id.in_(ids))
    ).all()
    by_battle: dict[str, list[str]] = {}
    for bid, reason in rows:
        by_battle.setdefault(bid, []).append(reason)
    for rec in records:
        if rec["battle_id"] in by_battle:
            rec["reasons"] = sorted(by_battle[rec["battle_id"]])


def _add_conversations(
    conn: Connection, records: list[dict[str, Any]], scrub: Callable[[str], str] | None
) -> None:
    if not records:
        return
    ids = [r["battle_id"] for r in records]
    m = _MESSAGE.c
    rows = conn.execute(
        select(m.battle_id, m.turn, m.side, m.content).where(m.battle_id.in_(ids))
    ).all()
    order = {"user": 0, "a": 1, "b": 2}
    by_battle: dict[str, list[tuple[int, str, str]]] = {}
    for bid, turn, side, content in rows:
        by_battle.setdefault(bid, []).append((turn, side, content))
    for rec in records:
        msgs = sorted(by_battle.get(rec["battle_id"], []), key=lambda m: (m[0], order[m[1]]))
        for side in ("a", "b"):
            rec[f"conversation_{side}"] = [
                {
                    "role": "user" if s == "user" else "assistant",
                    "content": scrub(c) if scrub else c,
                }
                for _, s, c in msgs
                if s in ("user", side)
            ]


def _dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False, allow_nan=False)


def export_battles(
    *,
    engine: Engine,
    out: str | Path,
    with_conversations: bool = False,
    since: dt.datetime | None = None,
    progress: Progress | None = None,
    include_moderated: bool = False,
    scrub: Callable[[str], str] | None = None,
) -> int:
    """Write every vote as a ``clean_battle`` JSONL file (gzipped when ``out`` ends in .gz).

    The file appears atomically (written beside, then renamed), and is byte-for-byte
    reproducible from the same database.

    Parameters
    ----------
    engine
        From :func:`arena.store.open_engine`.
    out
        Destination, ``*.jsonl`` or ``*.jsonl.gz``.
    with_conversations
        Add ``conversation_a`` and ``conversation_b``.
    since
        Only votes at or after this time (timezone-aware).
    progress
        Called as ``progress("write", n)`` after every ``n`` records written.
    include_moderated, scrub
        As :func:`iter_export_records`.

    Returns
    -------
    int
        Number of records written.
    """
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    n = 0
    try:
        with open(tmp, "wb") as raw:
            stream: IO[bytes] = raw
            gz: gzip.GzipFile | None = None
            if path.suffix == ".gz":
                # No file name and mtime 0 in the header: same input, same bytes.
                gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
                stream = cast(IO[bytes], gz)
            text = io.TextIOWrapper(stream, encoding="utf-8", newline="\n")
            for record in iter_export_records(
                engine=engine,
                with_conversations=with_conversations,
                since=since,
                include_moderated=include_moderated,
                scrub=scrub,
            ):
                text.write(_dumps(record) + "\n")
                n += 1
                if progress is not None and n % _CHUNK == 0:
                    progress("write", _CHUNK)
            if progress is not None and n % _CHUNK:
                progress("write", n % _CHUNK)
            text.flush()
            text.detach()
            if gz is not None:
                gz.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return n


# --------------------------------------------------------------------------------------------
# import


@dataclass(frozen=True)
class ImportReport:
    """What an import did.

    Attributes
    ----------
    records
        Records read from the file.
    inserted
        Battles (with their vote) written.
    duplicates
        Records skipped because their battle id was already stored (or earlier in the file).
    models_created
        Names of models that were not registered and were created with backend
        ``imported``.
    """

    records: int
    inserted: int
    duplicates: int
    models_created: tuple[str, ...] = field(default=())


@dataclass(slots=True)  # one per record held until the commit: no per-object dict
class _Parsed:
    line: int
    battle_id: str
    question_id: str | None  # None: the battle's own question (its id), filled in at insert
    model_a: str
    model_b: str
    winner: str
    judge: str | None  # None: a judge of its own, filled in at insert
    turn: int
    anony: bool
    language: str | None
    voted_at: dt.datetime
    exclusion: str | None
    messages: Sequence[tuple[int, str, str]]  # (turn, side, content)
    features: dict[str, Any] | None = None  # battle_features columns, from conv_metadata


def _open_text(path: Path) -> IO[str]:
    # The same gzip-bomb cap as the rating readers: the decompressed text is capped.
    raw = open_decompressed(path, path.suffix == ".gz")
    return io.TextIOWrapper(raw, encoding="utf-8", newline="\n")


def _parse_file(path: Path) -> Iterator[_Parsed]:
    source = str(path)
    try:
        check_input_file(path)
        f = _open_text(path)
    except BattleDataError as exc:
        raise BattleImportError(source, exc.reason) from None
    except OSError as exc:
        raise BattleImportError(source, f"cannot open: {exc.strerror or exc}") from None
    with f:
        lineno = 0
        try:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                yield _parse_line(source, lineno, line)
        except BattleImportError:
            raise
        except BattleDataError as exc:  # the decompressed size passed the cap
            raise BattleImportError(source, exc.reason, line=lineno + 1) from None
        except (UnicodeDecodeError, OSError, EOFError) as exc:
            raise BattleImportError(source, f"unreadable file ({exc})", line=lineno + 1) from None


def _parse_line(source: str, lineno: int, line: str) -> _Parsed:
    def fail(message: str, fld: str | None = None) -> BattleImportError:
        return BattleImportError(source, message, line=lineno, field=fld)

    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise fail(f"malformed JSON ({exc.msg} at column {exc.colno})") from None
    try:
        checked = check_record(rec)  # the rules every reader uses (ratings/records.py)
    except RecordError as exc:
        raise fail(exc.reason, exc.field) from None
    assert isinstance(rec, dict)
    # The database stores a vote time, so import needs what the rating readers do not.
    if checked.tstamp is None:
        raise fail("required field is missing (the vote time, unix seconds)", "tstamp")
    battle_id = checked.battle_id
    if battle_id is None:
        canonical = json.dumps(rec, sort_keys=True, ensure_ascii=False)
        if text_problem(canonical):  # a lone surrogate in a field no rule reads
            bad = next(
                k
                for k in sorted(rec)
                if text_problem(json.dumps(rec[k], ensure_ascii=False)) or text_problem(k)
            )
            raise fail("contains a lone surrogate (not valid UTF-8)", bad)
        battle_id = str(uuid.uuid5(_IMPORT_NAMESPACE, canonical))
    messages = _parse_conversations(rec, fail)
    if (bad_context := check_context(rec)) is not None:
        raise fail(bad_context[1], bad_context[0])
    return _Parsed(
        line=lineno,
        battle_id=battle_id,
        question_id=checked.question_id,
        # Every record is held until the commit: names repeat, so they are shared.
        model_a=sys.intern(checked.model_a),
        model_b=sys.intern(checked.model_b),
        winner=sys.intern(checked.winner),
        judge=checked.judge,
        turn=1 if checked.turn is None else checked.turn,
        anony=True if checked.anony is None else checked.anony,
        language=checked.language,
        voted_at=_from_tstamp(checked.tstamp),
        exclusion=checked.exclusion,
        messages=messages or (),
        features=features_from_record(rec),
    )


def _parse_conversations(rec: dict[str, Any], fail: Any) -> list[tuple[int, str, str]]:
    out: list[tuple[int, str, str]] = []
    users: dict[str, list[str]] = {}
    for side in ("a", "b"):
        name = f"conversation_{side}"
        conv = rec.get(name)
        if conv is None:
            continue
        if not isinstance(conv, list):
            raise fail("expected a list of {role, content} messages", name)
        turn = 0
        answered = False
        users[side] = []
        for k, msg in enumerate(conv):
            if not isinstance(msg, dict) or not isinstance(msg.get("content"), str):
                raise fail(f"message {k}: expected {{role, content}} with text content", name)
            problem = text_problem(msg["content"])
            if problem:
                raise fail(f"message {k}: content {problem}", name)
            role = msg.get("role")
            if role == "user":
                turn += 1
                answered = False
                users[side].append(msg["content"])
                if side == "a" or "a" not in users:
                    out.append((turn, "user", msg["content"]))
            elif role == "assistant":
                if turn == 0 or answered:
                    raise fail(f"message {k}: an assistant message must follow a user one", name)
                answered = True
                out.append((turn, side, msg["content"]))
            else:
                raise fail(f"message {k}: role must be 'user' or 'assistant', got {role!r}", name)
    if "a" in users and "b" in users and users["a"] != users["b"]:
        raise fail("the user messages differ from conversation_a's", "conversation_b")
    return out


def import_battles(
    *, engine: Engine, path: str | Path, progress: Progress | None = None
) -> ImportReport:
    """Import a ``clean_battle`` JSONL file (``.jsonl`` or ``.jsonl.gz``), all or nothing.

    Every record becomes a ``voted`` battle with its vote (and its messages, when the record
    has conversations).  Models not yet registered are created with backend ``imported``.

    Parameters
    ----------
    engine
        From :func:`arena.store.open_engine`.
    path
        The file.
    progress
        Called as ``progress("read", n)`` while lines are validated, then
        ``progress("write", n)`` while records are written (duplicates included).

    Returns
    -------
    ImportReport

    Raises
    ------
    BattleImportError
        A malformed line (bad JSON, missing or invalid field, unknown winner, a model playing
        itself...): the message names the file, the line and the field.  Nothing is written.
    """
    p = Path(path)
    parsed = []
    for rec in _parse_file(p):
        parsed.append(rec)
        if progress is not None and len(parsed) % _CHUNK == 0:
            progress("read", _CHUNK)
    if progress is not None and len(parsed) % _CHUNK:
        progress("read", len(parsed) % _CHUNK)
    if not parsed:
        raise BattleImportError(str(p), "no battles (the file is empty)")
    with engine.begin() as conn:
        existing = _existing_ids(conn, [r.battle_id for r in parsed])
        fresh: list[_Parsed] = []
        seen = set(existing)
        for r in parsed:
            if r.battle_id not in seen:
                seen.add(r.battle_id)
                fresh.append(r)
        created = _ensure_models(conn, {r.model_a for r in fresh} | {r.model_b for r in fresh})
        names = {r.model_a for r in fresh} | {r.model_b for r in fresh}
        ids: dict[str, int] = {
            name: mid
            for name, mid in conn.execute(
                select(_MODEL.c.name, _MODEL.c.id).where(_MODEL.c.name.in_(names))
            )
        }
        if progress is not None and len(parsed) > len(fresh):
            progress("write", len(parsed) - len(fresh))
        for start in range(0, len(fresh), _CHUNK):
            chunk = fresh[start : start + _CHUNK]
            _insert_chunk(conn, chunk, ids)
            if progress is not None:
                progress("write", len(chunk))
    return ImportReport(
        records=len(parsed),
        inserted=len(fresh),
        duplicates=len(parsed) - len(fresh),
        models_created=tuple(sorted(created)),
    )


def _existing_ids(conn: Connection, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        found.update(conn.execute(select(_BATTLE.c.id).where(_BATTLE.c.id.in_(chunk))).scalars())
    return found


def _ensure_models(conn: Connection, names: set[str]) -> list[str]:
    have = set(conn.execute(select(_MODEL.c.name)).scalars())
    missing = sorted(names - have)
    if not missing:
        return []
    now = utcnow()
    conn.execute(
        insert(_MODEL),
        [
            {"name": n, "backend": IMPORTED_BACKEND, "config_hash": "", "created_at": now}
            for n in missing
        ],
    )
    ids = conn.execute(select(_MODEL.c.id).where(_MODEL.c.name.in_(missing))).scalars().all()
    conn.execute(
        insert(_MODEL_EVENT),
        [
            {"model_id": i, "kind": "registered", "at": now, "config_hash": "", "detail": "import"}
            for i in ids
        ],
    )
    return missing


def _judge(r: _Parsed) -> str:
    # A missing judge or question makes its own cluster: nothing says it is shared.
    return r.judge or f"unknown:{r.battle_id}"


def _insert_chunk(conn: Connection, rows: list[_Parsed], ids: dict[str, int]) -> None:
    if not rows:
        return
    conn.execute(
        insert(_BATTLE),
        [
            {
                "id": r.battle_id,
                "mode": "anony" if r.anony else "named",
                "model_a_id": ids[r.model_a],
                "model_b_id": ids[r.model_b],
                "user_key": _judge(r),
                "pair_probability": None,
                "policy_name": IMPORTED_BACKEND,
                "policy_version": "",
                "language": r.language,
                "created_at": r.voted_at,
                "updated_at": r.voted_at,
                "status": "voted",
                "error_reason": None,
            }
            for r in rows
        ],
    )
    conn.execute(
        insert(_VOTE),
        [
            {
                "battle_id": r.battle_id,
                "winner": r.winner,
                "model_a_id": ids[r.model_a],
                "model_b_id": ids[r.model_b],
                "anony": r.anony,
                "judge": _judge(r),
                "question_id": r.question_id or r.battle_id,
                "turn": r.turn,
                "voted_at": r.voted_at,
                "exclusion": r.exclusion,
            }
            for r in rows
        ],
    )
    messages = [
        {
            "battle_id": r.battle_id,
            "turn": turn,
            "side": side,
            "content": content,
            "created_at": r.voted_at,
        }
        for r in rows
        for turn, side, content in r.messages
    ]
    if messages:
        conn.execute(insert(_MESSAGE), messages)
    # Style counts and tags the log carries (so export -> import -> export keeps them).
    features = [{"battle_id": r.battle_id, **r.features} for r in rows if r.features]
    if features:
        conn.execute(insert(SQLModel.metadata.tables["battle_features"]), features)
