"""Bulk reads for the ratings engine: votes straight into ``ratings.data.Battles`` arrays.

A million votes must load in about a second, so this path builds no ORM object and no
per-row dict.  The SQL packs ``(model_a, model_b, outcome)`` into one integer; the DB-API
cursor hands back plain tuples, and each column goes to numpy through ``map(itemgetter)``
(``zip(*rows)`` cost half of the whole read).  The ``vote`` table carries everything needed
(see ``Vote``'s docstring), so it is one table scan, no join.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col

from arena.store.engine import reader
from arena.store.features import vote_context
from arena.store.models import WINNERS, Battle, Message, Vote
from ratings.data import Battles

__all__ = [
    "AuditTables",
    "audit_tables",
    "battles_for_ratings",
    "counted_votes_on_question",
    "deprecated_model_names",
    "live_vote_cells",
    "live_votes_after",
    "model_names_by_id",
    "ping",
    "recent_prompts_by",
    "recent_votes_by",
    "vote_id_before",
    "votes_of_judge",
    "votes_with_reasons",
]

_OUTCOME_SQL = (
    "CASE winner " + " ".join(f"WHEN '{w}' THEN {code}" for code, w in enumerate(WINNERS)) + " END"
)
# The vote time column as the query returns it.  PostgreSQL computes integer microseconds
# since the epoch; SQLite returns its stored text ('YYYY-MM-DD HH:MM:SS.ffffff', see
# models.UTCDateTime) and numpy parses it: ~50x faster than strftime in SQL, which also
# rounds to milliseconds first (turning :58.9996 into :59).
_TSTAMP_SQL = {
    "sqlite": "voted_at",
    "postgresql": "CAST(extract(epoch FROM voted_at) * 1000000 AS BIGINT)",
}


def battles_for_ratings(
    *,
    engine: Engine,
    include_named: bool = False,
    include_excluded: bool = False,
    with_clusters: bool = True,
    reweight: bool = False,
    with_context: bool = False,
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
    with_context
        Also read each vote's style counts, category tags and language from
        ``battle_features`` (for ``--style-control``, ``--category``, ``--language``).

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
    true = "1" if engine.dialect.name == "sqlite" else "TRUE"

    def where(table: str = "") -> str:
        """The vote filter, its columns qualified with ``table`` when given."""
        conds = []
        if not include_named:
            conds.append(f"{table}anony = {true}")
        if not include_excluded:
            conds.append(f"{table}exclusion IS NULL")
        return f" WHERE {' AND '.join(conds)}" if conds else ""

    where_sql = where()
    ts_col = _TSTAMP_SQL.get(engine.dialect.name)
    if ts_col is None:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(f"no ratings query for {engine.dialect.name}")

    with reader(engine).begin() as conn:
        models = _fetch(conn, "SELECT id, name FROM model")
        k = max((mid for mid, _ in models), default=0) + 1
        names = [""] * k
        for mid, name in models:
            names[mid] = name
        cluster_sql = ", judge, question_id" if with_clusters else ""
        # One query, in vote order.
        rows = _fetch(
            conn,
            f"SELECT (CAST(model_a_id AS BIGINT) * {k} + model_b_id) * 4 + {_OUTCOME_SQL}, "
            f"{ts_col}{cluster_sql} FROM vote{where_sql} ORDER BY id",
        )
        n = len(rows)
        packed = np.fromiter(map(itemgetter(0), rows), dtype=np.int64, count=n)
        if engine.dialect.name == "sqlite":
            stamps = list(map(itemgetter(1), rows))
            tstamp_us = np.array(stamps, dtype="datetime64[us]").astype(np.int64)
            del stamps
        else:
            tstamp_us = np.fromiter(map(itemgetter(1), rows), dtype=np.int64, count=n)
        clusters: dict[str, Any] | None = None
        if with_clusters and n:
            clusters = {
                "judge": _codes(list(map(itemgetter(2), rows))),
                "question_id": _codes(list(map(itemgetter(3), rows))),
            }
        del rows
        if clusters is not None:
            # The address each vote came from (keyed hash), for the rigging group test.
            # Before revision 0005 the voter key was the address hash, so it stands in.
            addresses = _fetch(
                conn,
                "SELECT coalesce(b.address_key, b.user_key) FROM vote v "
                f"JOIN battle b ON b.id = v.battle_id{where('v.')} ORDER BY v.id",
            )
            clusters["address_hash"] = _codes(list(map(itemgetter(0), addresses)))
        weight = None
        if reweight and n:
            prob = _fetch(
                conn,
                "SELECT b.pair_probability FROM vote v JOIN battle b ON b.id = v.battle_id"
                f"{where('v.')} ORDER BY v.id",
            )
            p = np.array([r[0] if r[0] is not None else np.nan for r in prob], dtype=float)
            known = np.isfinite(p) & (p > 0)
            weight = np.ones(n)
            if known.any():
                inv = 1.0 / p[known]
                weight[known] = inv / inv.mean()
        context = vote_context(conn, where("v."), n) if with_context and n else None
    pair, outcome = np.divmod(packed, 4)
    a, b = np.divmod(pair, k)
    battles = Battles.from_codes(
        names,
        a,
        b,
        outcome,
        weight=weight,
        clusters=clusters,
        tstamp=tstamp_us / 1e6,
        source=source,
    )
    return battles if context is None else battles.with_context(**context)


def _fetch(conn: Connection, sql: str) -> list[Any]:
    # The raw DB-API cursor: SQLAlchemy's Row wrapper would cost about as much as the query.
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(sql)
        return list(cur.fetchall())
    finally:
        cur.close()


def _codes(values: list[str]) -> np.ndarray:
    """Dense integer codes of strings (pyarrow hashes in C; ~10x a Python dict)."""
    enc = pa.array(values, type=pa.string()).dictionary_encode()
    return np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)


def counted_votes_on_question(*, engine: Engine, question_id: str, except_battle: str) -> int:
    """How many counted votes (no exclusion reason) other battles have on this question.

    The app asks once per vote (the duplicate-prompt cap); ``ix_vote_question_id`` keeps it
    an index lookup at any table size.

    Parameters
    ----------
    engine
        The store.
    question_id
        From :func:`arena.store.question_id_for`.
    except_battle
        The battle whose own vote is left out of the count.
    """
    with reader(engine).connect() as conn:
        n = conn.execute(
            text(
                "SELECT count(*) FROM vote WHERE question_id = :q AND battle_id != :b "
                "AND exclusion IS NULL"
            ),
            {"q": question_id, "b": except_battle},
        ).scalar_one()
    return int(n)


def recent_votes_by(
    *,
    engine: Engine,
    since: dt.datetime,
    user_key: str | None = None,
    address_key: str | None = None,
) -> tuple[int, dt.datetime | None]:
    """How many votes (counted or not) a voter, or an address, cast after ``since``, and
    the earliest of them.

    For the votes-per-day limits, so that they hold across app replicas and restarts;
    ``ix_vote_judge_voted_at`` (a voter) and ``ix_battle_address_key_created_at`` (an
    address) make them index range scans.

    Parameters
    ----------
    engine
        The store.
    since
        Timezone-aware start of the window.
    user_key
        The voter's keyed hash (the ``judge`` column).
    address_key
        The client address's keyed hash (``battle.address_key``); exactly one of the two.
    """
    voted_at = col(Vote.voted_at)
    query = sa.select(sa.func.count(), sa.func.min(voted_at))
    if (user_key is None) == (address_key is None):
        raise ValueError("recent_votes_by takes exactly one of user_key and address_key")
    if user_key is not None:
        query = query.where(col(Vote.judge) == user_key, voted_at > since)
    else:
        # A vote comes after its battle started, and a live battle is voted within hours:
        # the battles started from a day before the window on are enough, and indexed.
        query = (
            query.select_from(Vote)
            .join(Battle, col(Battle.id) == col(Vote.battle_id))
            .where(
                col(Battle.address_key) == address_key,
                col(Battle.created_at) > since - dt.timedelta(days=1),
                voted_at > since,
            )
        )
    with reader(engine).connect() as conn:
        n, first = conn.execute(query).one()
    return int(n), first


def recent_prompts_by(
    *,
    engine: Engine,
    since: dt.datetime,
    battles_since: dt.datetime,
    user_key: str | None = None,
    address_key: str | None = None,
) -> tuple[int, dt.datetime | None]:
    """How many prompts a user (or an address) sent after ``since``, and the earliest of them.

    For the prompts-per-minute limits, so that they hold across app replicas and restarts.
    A prompt is a user message (first turns and follow-ups); only battles created after
    ``battles_since`` are looked at, so that ``ix_battle_created_at`` (or, for an address,
    ``ix_battle_address_key_created_at``) bounds the scan to the recent battles (a follow-up
    in an older battle is left to the replica's own in-memory count).

    Parameters
    ----------
    engine
        The store.
    since
        Timezone-aware start of the window.
    battles_since
        Timezone-aware lower bound on the creation time of the battles counted.
    user_key
        The user's keyed hash (``battle.user_key``).
    address_key
        The client address's keyed hash (``battle.address_key``); exactly one of the two.

    Returns
    -------
    tuple
        ``(count, earliest)``; ``earliest`` is ``None`` when the count is 0.
    """
    if (user_key is None) == (address_key is None):
        raise ValueError("recent_prompts_by takes exactly one of user_key and address_key")
    who = (
        col(Battle.user_key) == user_key
        if user_key is not None
        else col(Battle.address_key) == address_key
    )
    created = col(Message.created_at)
    query = (
        sa.select(sa.func.count(), sa.func.min(created))
        .select_from(Message)
        .join(Battle, col(Battle.id) == col(Message.battle_id))
        .where(
            col(Battle.created_at) > battles_since,
            who,
            col(Message.side) == "user",
            created > since,
        )
    )
    with reader(engine).connect() as conn:
        n, first = conn.execute(query).one()
    return int(n), first


def deprecated_model_names(*, engine: Engine) -> set[str]:
    """Names of the models that are deprecated (no longer served; their votes still count).

    Parameters
    ----------
    engine
        The arena's database.

    Returns
    -------
    set of str
    """
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name FROM model WHERE deprecated_at IS NOT NULL"))
        return {str(r[0]) for r in rows}


@dataclass(frozen=True)
class AuditTables:
    """What ``arena audit`` reads from a database.

    Attributes
    ----------
    status
        Battles per status.
    per_user
        ``(user_key, battles served, battles voted)`` per voter.
    exclusions
        Votes per exclusion reason (``(counted)`` for counted votes).
    votes
        ``(judge, model_a, model_b, winner, anony, voted_at, exclusion, address_key)`` per
        vote (``address_key``: the voter key for battles from before revision 0005).
    pairs
        ``(model_a, model_b, battles, mean pair probability)`` per anonymous ordered pair.
    """

    status: dict[str, int]
    per_user: list[tuple[str, int, int]]
    exclusions: dict[str, int]
    votes: list[tuple[Any, ...]]
    pairs: list[tuple[str, str, int, float]]


def audit_tables(*, engine: Engine) -> AuditTables:
    """Read what the audit report needs, in one read transaction.

    Parameters
    ----------
    engine
        The arena's database.

    Returns
    -------
    AuditTables
    """
    with reader(engine).connect() as conn:
        status = {
            str(k): int(v)
            for k, v in conn.execute(text("SELECT status, count(*) FROM battle GROUP BY status"))
        }
        per_user = [
            (str(k), int(n), int(voted or 0))
            for k, n, voted in conn.execute(
                text(
                    "SELECT user_key, count(*), "
                    "sum(CASE WHEN status = 'voted' THEN 1 ELSE 0 END) "
                    "FROM battle GROUP BY user_key"
                )
            )
        ]
        exclusions = {
            str(k): int(v)
            for k, v in conn.execute(
                text(
                    "SELECT coalesce(exclusion, '(counted)'), count(*) FROM vote GROUP BY exclusion"
                )
            )
        }
        votes = [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT v.judge, ma.name, mb.name, v.winner, v.anony, v.voted_at, "
                    "v.exclusion, coalesce(b.address_key, b.user_key) FROM vote v "
                    "JOIN model ma ON ma.id = v.model_a_id JOIN model mb ON mb.id = v.model_b_id "
                    "JOIN battle b ON b.id = v.battle_id"
                )
            )
        ]
        pairs = [
            (str(a), str(b), int(n), float(p))
            for a, b, n, p in conn.execute(
                text(
                    "SELECT ma.name, mb.name, count(*), avg(b.pair_probability) FROM battle b "
                    "JOIN model ma ON ma.id = b.model_a_id "
                    "JOIN model mb ON mb.id = b.model_b_id "
                    "WHERE b.mode = 'anony' AND b.pair_probability IS NOT NULL "
                    "GROUP BY ma.name, mb.name"
                )
            )
        ]
    return AuditTables(status, per_user, exclusions, votes, pairs)


def votes_with_reasons(*, engine: Engine) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """Every counted anonymous vote with the reasons its voter gave (empty when none).

    Returns
    -------
    list of tuple
        ``(model_a, model_b, winner, reasons)``.
    """
    sql = text(
        "SELECT v.battle_id, ma.name, mb.name, v.winner, r.reason FROM vote v "
        "JOIN model ma ON ma.id = v.model_a_id JOIN model mb ON mb.id = v.model_b_id "
        "LEFT JOIN vote_reason r ON r.battle_id = v.battle_id "
        "WHERE v.exclusion IS NULL AND v.anony ORDER BY v.battle_id, r.reason"
    )
    votes: dict[str, tuple[str, str, str, list[str]]] = {}
    with reader(engine).connect() as conn:
        for bid, a, b, winner, reason in conn.execute(sql):
            entry = votes.setdefault(bid, (a, b, winner, []))
            if reason is not None:
                entry[3].append(reason)
    return [(a, b, w, tuple(rs)) for a, b, w, rs in votes.values()]


def votes_of_judge(*, engine: Engine, judge: str) -> list[tuple[str, str, str]]:
    """One voter's own votes, anonymous and named, counted or not: ``(model_a, model_b,
    winner)`` in vote order (a person's "My votes" leaderboard)."""
    sql = text(
        "SELECT ma.name, mb.name, v.winner FROM vote v "
        "JOIN model ma ON ma.id = v.model_a_id JOIN model mb ON mb.id = v.model_b_id "
        "WHERE v.judge = :judge ORDER BY v.id"
    )
    with reader(engine).connect() as conn:
        return [(str(a), str(b), str(w)) for a, b, w in conn.execute(sql, {"judge": judge})]


def ping(*, engine: Engine) -> None:
    """Run a trivial query: raises whatever the database raises when it cannot answer."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _counted_sql(engine: Engine) -> str:
    true = "1" if engine.dialect.name == "sqlite" else "TRUE"
    return f"anony = {true} AND exclusion IS NULL"


def live_vote_cells(*, engine: Engine, up_to_id: int) -> list[tuple[int, int, int, int]]:
    """Counted votes with ``id <= up_to_id`` as ``(model_a_id, model_b_id, outcome, n)``.

    The live leaderboard's full recount (``arena.live_board``): one GROUP BY in the database.
    ``outcome`` is the index of the winner in :data:`arena.store.models.WINNERS`.
    """
    sql = (
        f"SELECT model_a_id, model_b_id, {_OUTCOME_SQL}, count(*) FROM vote "
        f"WHERE {_counted_sql(engine)} AND id <= :bound GROUP BY model_a_id, model_b_id, winner"
    )
    with reader(engine).begin() as conn:
        rows = conn.execute(text(sql), {"bound": up_to_id}).all()
    return [(int(a), int(b), int(o), int(n)) for a, b, o, n in rows]


def live_votes_after(*, engine: Engine, after_id: int) -> list[tuple[Any, ...]]:
    """Every vote with ``id > after_id``, in id order, counted or not.

    Rows ``(id, model_a_id, model_b_id, outcome, voted_at, counted)`` for the live
    leaderboard's fold; ``counted`` is 1 for an anonymous vote without an exclusion.
    """
    sql = (
        f"SELECT id, model_a_id, model_b_id, {_OUTCOME_SQL}, voted_at, "
        f"CASE WHEN {_counted_sql(engine)} THEN 1 ELSE 0 END FROM vote "
        "WHERE id > :after ORDER BY id"
    )
    with reader(engine).begin() as conn:
        return [tuple(r) for r in conn.execute(text(sql), {"after": after_id}).all()]


def live_votes_new(
    *, engine: Engine, after_id: int, gaps: list[int], window_from: int
) -> tuple[list[tuple[Any, ...]], tuple[int, int]]:
    """The live leaderboard's incremental read: new votes, late ones, and a window checksum.

    Parameters
    ----------
    engine
        The arena's database.
    after_id
        The highest vote id already read: every vote above it is returned.
    gaps
        Ids at or below ``after_id`` that were missing when read (transactions that had not
        committed yet): any of them that exists now is returned too.
    window_from
        The window's lower bound (exclusive; the highest settled id).

    Returns
    -------
    tuple
        ``(rows, (count, counted_id_sum))``: rows as :func:`live_votes_after`, in id order,
        and over the window ``window_from < id <= max(after_id, highest id returned)`` the
        number of votes and the sum of the ids of the counted ones.  The reader compares
        that checksum with its own copy of the window: a late commit outside ``gaps``, or an
        exclusion written after the vote, makes them differ.
    """
    counted = _counted_sql(engine)
    columns = (
        f"SELECT id, model_a_id, model_b_id, {_OUTCOME_SQL}, voted_at, "
        f"CASE WHEN {counted} THEN 1 ELSE 0 END FROM vote "
    )
    # Two statements, not "id > :after OR id IN :gaps": PostgreSQL answered the OR with a
    # scan of the whole table (0.3 s at a million votes); each of these is an index range.
    new_sql = text(columns + "WHERE id > :after ORDER BY id")
    gaps_sql = sa.text(columns + "WHERE id IN :gaps ORDER BY id").bindparams(
        sa.bindparam("gaps", expanding=True)
    )
    sum_sql = text(
        f"SELECT count(*), coalesce(sum(CASE WHEN {counted} THEN id ELSE 0 END), 0) "
        "FROM vote WHERE id > :lo AND id <= :hi"
    )
    with reader(engine).begin() as conn:
        rows = [tuple(r) for r in conn.execute(new_sql, {"after": after_id}).all()]
        if gaps:
            late = conn.execute(gaps_sql, {"gaps": gaps}).all()
            rows = [tuple(r) for r in late] + rows
        hi = max([after_id, *(int(r[0]) for r in rows)])
        count, id_sum = conn.execute(sum_sql, {"lo": window_from, "hi": hi}).one()
    return rows, (int(count), int(id_sum))


def vote_id_before(*, engine: Engine, before: dt.datetime) -> int:
    """The highest vote id voted before ``before`` (0 when none); ``ix_vote_voted_at``."""
    query = sa.select(sa.func.max(col(Vote.id))).where(col(Vote.voted_at) < before)
    with reader(engine).connect() as conn:
        return int(conn.execute(query).scalar_one() or 0)


def model_names_by_id(*, engine: Engine) -> dict[int, str]:
    """Every registered model's name by its id."""
    with reader(engine).connect() as conn:
        return {int(i): str(n) for i, n in conn.execute(text("SELECT id, name FROM model"))}
