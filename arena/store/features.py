"""Writes and reads of ``battle_features`` (style counts and category tags per battle).

The computing is :mod:`arena.features`' job; this module only stores and fetches, with the
store's usual rules: keyword-only functions on an explicit session, one commit each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select

from arena.store.engine import begin_read, reader
from arena.store.errors import BattleNotFound, InvalidValue
from arena.store.models import Battle, BattleFeatures, utcnow
from arena.store.ops import _finish, _transaction

__all__ = [
    "COUNT_COLUMNS",
    "TAG_COLUMNS",
    "battles_to_retag",
    "battles_without_features",
    "export_context",
    "features_from_record",
    "get_battle_features",
    "save_battle_features",
    "vote_context",
]

COUNT_COLUMNS: tuple[str, ...] = (
    *(f"header_{s}_h{k}" for s in "ab" for k in range(1, 7)),
    *(f"list_{s}_{kind}" for s in "ab" for kind in ("ordered", "unordered")),
    *(f"bold_{s}_{kind}" for s in "ab" for kind in ("star", "under")),
)
TAG_COLUMNS: tuple[str, ...] = (
    "tag_coding", "tag_math", "tag_multi_turn", "tag_long_query", "tag_hard_prompt",
)  # fmt: skip
_STATUSES_WITH_ANSWERS = ("ready", "voted")


def save_battle_features(
    *, session: Session, battle_id: str, values: Mapping[str, Any]
) -> BattleFeatures:
    """Insert or replace a battle's features row.

    Parameters
    ----------
    session
        From :func:`arena.store.new_session`.
    battle_id
        The battle.
    values
        Column values (``BattleFeatures`` field names); missing count columns are 0.

    Returns
    -------
    BattleFeatures
        The stored row (detached).

    Raises
    ------
    BattleNotFound
        No such battle.
    InvalidValue
        An unknown column, or a negative count.
    """
    known = set(BattleFeatures.model_fields)
    unknown = sorted(set(values) - known)
    if unknown:
        raise InvalidValue(f"unknown battle_features columns: {', '.join(unknown)}")
    for name, value in values.items():
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise InvalidValue(f"battle_features.{name} must be >= 0, got {value}")
    with _transaction(session):
        if session.get(Battle, battle_id) is None:
            raise BattleNotFound(f"no battle with id {battle_id!r}")
        row = session.get(BattleFeatures, battle_id, with_for_update=True)
        if row is None:
            row = BattleFeatures(battle_id=battle_id, **dict(values))
            session.add(row)
        else:
            for name, value in values.items():
                setattr(row, name, value)
        _finish(session)
        return row


def get_battle_features(*, session: Session, battle_id: str) -> BattleFeatures | None:
    """A battle's features row (detached), or ``None`` when it has none."""
    begin_read(session)
    row = session.get(BattleFeatures, battle_id, populate_existing=True)
    session.expunge_all()
    session.commit()
    return row


def battles_without_features(*, engine: Engine, limit: int | None = None) -> list[str]:
    """Ids of battles with answers (ready or voted) that have no features row, oldest first."""
    query = (
        select(Battle.id)
        .outerjoin(BattleFeatures, col(BattleFeatures.battle_id) == col(Battle.id))
        .where(col(BattleFeatures.battle_id).is_(None))
        .where(col(Battle.status).in_(_STATUSES_WITH_ANSWERS))
        .order_by(col(Battle.created_at), col(Battle.id))
    )
    if limit is not None:
        query = query.limit(limit)
    with Session(reader(engine)) as session:
        return [str(r) for r in session.exec(query).all()]


def battles_to_retag(*, engine: Engine, version: str, everything: bool = False) -> list[str]:
    """Ids of battles whose tags come from another tagger version (or all, ``everything``)."""
    query = select(BattleFeatures.battle_id).order_by(col(BattleFeatures.battle_id))
    if not everything:
        query = query.where(
            sa.or_(
                col(BattleFeatures.tagger_version).is_(None),
                col(BattleFeatures.tagger_version) != version,
            )
        )
    with Session(reader(engine)) as session:
        return [str(r) for r in session.exec(query).all()]


def vote_context(conn: Connection, where_sql: str, n: int) -> dict[str, Any]:
    """Style counts, tags and language of the votes selected by ``where_sql``, in vote order.

    Parameters
    ----------
    conn
        An open read connection.
    where_sql
        The vote filter (``WHERE ...`` with columns qualified as ``v.``), or ``""``.
    n
        The number of votes it selects (the shape of the arrays).

    Returns
    -------
    dict
        ``style``: ``n x 4 x 2`` counts (tokens, headers, lists, bold; side a, side b), NaN
        for votes without a features row; ``categories``: flags by tag name (False when
        untagged); ``language``: per vote (``None`` when unknown).
    """
    heads = " + ".join(f"f.header_{{s}}_h{k}" for k in range(1, 7))
    cols = []
    for s in "ab":
        cols += [
            f"f.sum_assistant_{s}_tokens",
            "(" + heads.format(s=s) + ")",
            f"(f.list_{s}_ordered + f.list_{s}_unordered)",
            f"(f.bold_{s}_star + f.bold_{s}_under)",
        ]
    tags = ", ".join(f"f.{t}" for t in TAG_COLUMNS)
    sql = (
        f"SELECT {', '.join(cols)}, {tags}, f.language FROM vote v "
        f"LEFT JOIN battle_features f ON f.battle_id = v.battle_id{where_sql} ORDER BY v.id"
    )
    rows = conn.execute(sa.text(sql)).all()
    if len(rows) != n:  # pragma: no cover - both reads run in one read transaction
        raise RuntimeError("votes changed between two reads of one transaction")
    k = len(cols)
    counts = np.array(
        [[np.nan if v is None else float(v) for v in r[:k]] for r in rows], dtype=np.float64
    ).reshape(n, k)
    style = np.stack([counts[:, :4], counts[:, 4:]], axis=2)
    categories = {
        name.removeprefix("tag_"): np.array([bool(r[k + j]) for r in rows], dtype=bool)
        for j, name in enumerate(TAG_COLUMNS)
    }
    language = np.array([r[k + len(TAG_COLUMNS)] for r in rows], dtype=object)
    return {"style": style, "categories": categories, "language": language}


def export_context(conn: Connection, battle_ids: list[str]) -> dict[str, dict[str, Any]]:
    """``conv_metadata``, ``category_tag`` and ``language`` of the battles that have features.

    Parameters
    ----------
    conn
        An open read connection.
    battle_ids
        The battles (a chunk of an export).

    Returns
    -------
    dict
        By battle id, the fields to merge into its ``clean_battle`` record (LMSYS shapes; a
        tag that was never judged is left out of ``category_tag``).
    """
    if not battle_ids:
        return {}
    table = BattleFeatures.__table__  # type: ignore[attr-defined]
    rows = conn.execute(sa.select(table).where(table.c.battle_id.in_(battle_ids))).mappings()
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        meta: dict[str, Any] = {
            k: row[k]
            for k in ("sum_assistant_a_tokens", "sum_assistant_b_tokens", "sum_user_tokens")
        }
        meta["turns"] = row["turns"]
        for s in "ab":
            meta[f"header_count_{s}"] = {f"h{k}": row[f"header_{s}_h{k}"] for k in range(1, 7)}
            meta[f"list_count_{s}"] = {
                "ordered": row[f"list_{s}_ordered"],
                "unordered": row[f"list_{s}_unordered"],
            }
            meta[f"bold_count_{s}"] = {
                "**": row[f"bold_{s}_star"],
                "__": row[f"bold_{s}_under"],
            }
        tags = {
            name.removeprefix("tag_"): bool(row[name])
            for name in TAG_COLUMNS
            if row[name] is not None
        }
        entry: dict[str, Any] = {"conv_metadata": meta, "category_tag": tags}
        if row["language"] is not None:
            entry["language"] = row["language"]
        out[row["battle_id"]] = entry
    return out


IMPORTED_TAGS = "imported"  # tagger_version of tags that came with an imported log


def features_from_record(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """``battle_features`` column values from a checked record's ``conv_metadata``,
    ``category_tag`` and ``language`` (``None`` when it has no ``conv_metadata``).

    Missing counts are 0; tags the record does not carry stay NULL (not judged).  The caller
    has checked the record (``ratings.context.check_context``).
    """
    meta = record.get("conv_metadata")
    if not isinstance(meta, Mapping):
        return None
    out: dict[str, Any] = {"computed_at": utcnow()}
    for key in ("sum_user_tokens", "sum_assistant_a_tokens", "sum_assistant_b_tokens", "turns"):
        out[key] = int(meta.get(key) or 0)
    for s in "ab":
        heads = meta.get(f"header_count_{s}") or {}
        lists = meta.get(f"list_count_{s}") or {}
        bold = meta.get(f"bold_count_{s}") or {}
        for k in range(1, 7):
            out[f"header_{s}_h{k}"] = int(heads.get(f"h{k}") or 0)
        out[f"list_{s}_ordered"] = int(lists.get("ordered") or 0)
        out[f"list_{s}_unordered"] = int(lists.get("unordered") or 0)
        out[f"bold_{s}_star"] = int(bold.get("**") or 0)
        out[f"bold_{s}_under"] = int(bold.get("__") or 0)
    tags = record.get("category_tag")
    if isinstance(tags, Mapping):
        for name in TAG_COLUMNS:
            value = tags.get(name.removeprefix("tag_"))
            out[name] = value if isinstance(value, bool) else None
        out["tagger_version"] = IMPORTED_TAGS
    language = record.get("language")
    out["language"] = language if isinstance(language, str) and language else None
    return out
