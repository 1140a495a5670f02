"""Bulk reads for the ratings engine: votes straight into ``ratings.data.Battles`` arrays.

A million votes must load in about a second, so this path builds no ORM object and no
per-row dict.  The SQL packs ``(model_a, model_b, outcome)`` into one integer and the vote
time into integer microseconds; the DB-API cursor hands back plain tuples, which numpy
flattens in C.  The ``vote`` table carries everything needed (see ``Vote``'s docstring), so
it is one table scan, no join.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from sqlalchemy.engine import Connection, Engine

from arena.store.engine import reader
from arena.store.models import WINNERS
from ratings.data import Battles

__all__ = ["battles_for_ratings"]

_OUTCOME_SQL = (
    "CASE winner " + " ".join(f"WHEN '{w}' THEN {code}" for code, w in enumerate(WINNERS)) + " END"
)
# Integer microseconds since the epoch, computed in SQL so Python never parses a date.
# SQLite stores UTCDateTime as 'YYYY-MM-DD HH:MM:SS.ffffff' (see models.UTCDateTime).  The
# whole seconds come from the text without its fraction: strftime would first round the time
# to milliseconds, turning :58.9996 into :59 before the microseconds are added back.
_TSTAMP_US_SQL = {
    "sqlite": "CAST(strftime('%s', substr(voted_at, 1, 19)) AS INTEGER) * 1000000 "
    "+ CAST(substr(voted_at, 21) AS INTEGER)",
    "postgresql": "CAST(extract(epoch FROM voted_at) * 1000000 AS BIGINT)",
}


def battles_for_ratings(
    *,
    engine: Engine,
    include_named: bool = False,
    include_excluded: bool = False,
    with_clusters: bool = True,
    reweight: bool = False,
) -> Battles:
    """Read the votes into columnar battles for the ratings engine.

    Parameters
    ----------
    engine
        From :func:`arena.store.open_engine`.
    include_named
        Also count votes from named (side-by-side) battles, where the voter knew the models.
    include_excluded
        Also count votes that carry an exclusion reason.
    with_clusters
        Add the ``judge`` (voter key) and ``question_id`` grouping columns, needed by
        clustered bootstrap CIs; ``False`` skips the two string columns (about half the time).
    reweight
        Weight each vote by the inverse of the probability with which its pair was drawn
        (normalised to mean 1), undoing unequal exposure from the sampling policy.  Votes
        without a stored probability (imported, or named battles) weigh 1.

    Returns
    -------
    ratings.data.Battles
        In vote order, with ``tstamp`` (unix seconds) and ``source`` set to the URL without
        its password.

    Raises
    ------
    ratings.data.BattleDataError
        When no vote matches (the message names the database).
    """
    source = engine.url.render_as_string(hide_password=True)
    where = []
    if not include_named:
        where.append("anony = TRUE" if engine.dialect.name != "sqlite" else "anony = 1")
    if not include_excluded:
        where.append("exclusion IS NULL")
    where_sql = f" WHERE {' AND '.join(where)}" if where else ""
    ts_sql = _TSTAMP_US_SQL.get(engine.dialect.name)
    if ts_sql is None:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(f"no ratings query for {engine.dialect.name}")

    with reader(engine).begin() as conn:
        models = _fetch(conn, "SELECT id, name FROM model")
        k = max((mid for mid, _ in models), default=0) + 1
        names = [""] * k
        for mid, name in models:
            names[mid] = name
        cluster_sql = ", judge, question_id" if with_clusters else ""
        # One query, in vote order.  On SQLite the timestamp comes back as its stored text
        # and numpy parses it (~50x faster than strftime in SQL); PostgreSQL sends integers.
        ts_col = "voted_at" if engine.dialect.name == "sqlite" else ts_sql
        rows = _fetch(
            conn,
            f"SELECT (CAST(model_a_id AS BIGINT) * {k} + model_b_id) * 4 + {_OUTCOME_SQL}, "
            f"{ts_col}{cluster_sql} FROM vote{where_sql} ORDER BY id",
        )
        n = len(rows)
        columns = list(zip(*rows, strict=True)) if n else [(), (), (), ()]
        del rows
        packed = np.array(columns[0], dtype=np.int64)
        if engine.dialect.name == "sqlite":
            tstamp_us = np.array(columns[1], dtype="datetime64[us]").astype(np.int64)
        else:
            tstamp_us = np.array(columns[1], dtype=np.int64)
        clusters: dict[str, Any] | None = None
        if with_clusters and n:
            clusters = {"judge": _codes(columns[2]), "question_id": _codes(columns[3])}
        del columns
        weight = None
        if reweight and n:
            vwhere = where_sql.replace("anony", "v.anony").replace("exclusion", "v.exclusion")
            prob = _fetch(
                conn,
                "SELECT b.pair_probability FROM vote v JOIN battle b ON b.id = v.battle_id"
                f"{vwhere} ORDER BY v.id",
            )
            p = np.array([r[0] if r[0] is not None else np.nan for r in prob], dtype=float)
            known = np.isfinite(p) & (p > 0)
            weight = np.ones(n)
            if known.any():
                inv = 1.0 / p[known]
                weight[known] = inv / inv.mean()
    pair, outcome = np.divmod(packed, 4)
    a, b = np.divmod(pair, k)
    return Battles.from_codes(
        names,
        a,
        b,
        outcome,
        weight=weight,
        clusters=clusters,
        tstamp=tstamp_us / 1e6,
        source=source,
    )


def _fetch(conn: Connection, sql: str) -> list[Any]:
    # The raw DB-API cursor: SQLAlchemy's Row wrapper would cost about as much as the query.
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(sql)
        return list(cur.fetchall())
    finally:
        cur.close()


def _codes(values: tuple[str, ...]) -> np.ndarray:
    """Dense integer codes of strings (pyarrow hashes in C; ~10x a Python dict)."""
    enc = pa.array(values, type=pa.string()).dictionary_encode()
    return np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
