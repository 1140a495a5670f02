"""``arena audit``: what happened to the votes, and whom to distrust.

For a database or a battle log: battles served vs voted (abstention per user), exclusions by
reason, exposure per model against the sampling policy, voters flagged by the anomaly test
(:func:`arena.integrity.voter_z_scores`), and whether the comparison graph is connected.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from sqlalchemy import text
from sqlalchemy.engine import Engine

from arena import store
from arena.integrity import fitted_z_scores
from ratings import (
    BattleDataError,
    Battles,
    Leaderboard,
    RatingOptions,
    compute_leaderboard,
    read_battles,
)
from ratings.readers import detect_format

__all__ = ["AuditReport", "FlaggedVoter", "audit_database", "audit_log", "format_report"]


@dataclass(frozen=True)
class FlaggedVoter:
    """A voter whose decisive votes disagree with the fit far beyond chance."""

    judge: str
    votes: int
    agreements: float
    expected: float
    z: float


@dataclass
class AuditReport:
    """Everything ``arena audit`` prints."""

    source: str
    votes: int
    anonymous_votes: int
    battles_by_status: dict[str, int] = field(default_factory=dict)
    users: int = 0
    abstention_mean: float | None = None
    top_abstainers: list[tuple[str, int, int]] = field(default_factory=list)
    exclusions: dict[str, int] = field(default_factory=dict)
    exposure: list[tuple[str, int, float]] = field(default_factory=list)
    exposure_basis: str = ""
    flagged: list[FlaggedVoter] = field(default_factory=list)
    components: list[list[str]] = field(default_factory=list)


def _flag(
    battles: Battles, lb: Leaderboard, judge_labels: np.ndarray, min_votes: int, z_threshold: float
) -> list[FlaggedVoter]:
    labels, codes = np.unique(judge_labels, return_inverse=True)
    n, agree, exp, z = fitted_z_scores(battles, codes.reshape(-1).astype(np.int64), lb)
    hits = np.flatnonzero((n >= min_votes) & (z <= z_threshold))
    out = [
        FlaggedVoter(str(labels[c]), int(n[c]), float(agree[c]), float(exp[c]), float(z[c]))
        for c in hits
    ]
    return sorted(out, key=lambda f: f.z)


def _fit(battles: Battles) -> Leaderboard:
    """The point fit both the anomaly test and the connectivity report use."""
    return compute_leaderboard(battles, RatingOptions(ci="none"))


def _exposure_uniform(battles: Battles) -> list[tuple[str, int, float]]:
    counts = np.bincount(battles.a, minlength=battles.n_models) + np.bincount(
        battles.b, minlength=battles.n_models
    )
    expected = 2 * len(battles) / battles.n_models
    return [(m, int(c), c / expected) for m, c in zip(battles.models, counts, strict=True)]


def audit_database(
    engine: Engine, *, min_votes: int = 20, z_threshold: float = -4.0
) -> AuditReport:
    """Audit the arena database.

    Parameters
    ----------
    engine
        From :func:`arena.store.open_engine`.
    min_votes, z_threshold
        Anomaly-test settings (see :func:`arena.integrity.score_voters`).

    Returns
    -------
    AuditReport
    """
    with store.reader(engine).connect() as conn:
        status = {
            str(k): int(v)
            for k, v in conn.execute(text("SELECT status, count(*) FROM battle GROUP BY status"))
        }
        per_user = list(
            conn.execute(
                text(
                    "SELECT user_key, count(*), "
                    "sum(CASE WHEN status = 'voted' THEN 1 ELSE 0 END) "
                    "FROM battle GROUP BY user_key"
                )
            )
        )
        excl = {
            str(k): int(v)
            for k, v in conn.execute(
                text(
                    "SELECT coalesce(exclusion, '(counted)'), count(*) FROM vote GROUP BY exclusion"
                )
            )
        }
        votes = list(
            conn.execute(
                text(
                    "SELECT v.judge, ma.name, mb.name, v.winner, v.anony FROM vote v "
                    "JOIN model ma ON ma.id = v.model_a_id JOIN model mb ON mb.id = v.model_b_id"
                )
            )
        )
        # Exposure vs the policy that drew each pair: an ordered pair drawn with
        # probability p appears as its unordered pair with probability 2p (sides by coin).
        pairs = list(
            conn.execute(
                text(
                    "SELECT ma.name, mb.name, count(*), avg(b.pair_probability) FROM battle b "
                    "JOIN model ma ON ma.id = b.model_a_id "
                    "JOIN model mb ON mb.id = b.model_b_id "
                    "WHERE b.mode = 'anony' AND b.pair_probability IS NOT NULL "
                    "GROUP BY ma.name, mb.name"
                )
            )
        )
    report = AuditReport(
        source=store.redact_url(str(engine.url)),
        votes=len(votes),
        anonymous_votes=sum(1 for v in votes if v[4]),
        battles_by_status=status,
        users=len(per_user),
        exclusions=excl,
    )
    if per_user:
        served = np.array([r[1] for r in per_user], dtype=float)
        voted = np.array([r[2] or 0 for r in per_user], dtype=float)
        report.abstention_mean = float(np.mean(1 - voted / served))
        worst = sorted(per_user, key=lambda r: (r[2] or 0) - r[1])[:5]
        report.top_abstainers = [(str(r[0])[:16], int(r[1]), int(r[2] or 0)) for r in worst]
    if pairs:
        n_anony = sum(int(r[2]) for r in pairs)
        observed: Counter[str] = Counter()
        expected: dict[str, float] = {}
        # Unordered pairs: merge (a, b) and (b, a); the stored p is the ordered pair's.
        by_pair: dict[tuple[str, str], tuple[int, float]] = {}
        for a, b, c, p in pairs:
            key = (min(a, b), max(a, b))
            n0, psum = by_pair.get(key, (0, 0.0))
            by_pair[key] = (n0 + int(c), psum + float(p) * int(c))
        for (a, b), (c, psum) in by_pair.items():
            p_unordered = 2 * psum / c
            for m in (a, b):
                observed[m] += c
                expected[m] = expected.get(m, 0.0) + n_anony * p_unordered
        report.exposure = [(m, observed[m], observed[m] / expected[m]) for m in sorted(observed)]
        report.exposure_basis = "observed / expected under the stored pair probabilities"
    counted = [v for v in votes if v[4]]
    if counted:
        bt = Battles.from_columns(
            [v[1] for v in counted], [v[2] for v in counted], [v[3] for v in counted]
        )
        lb = _fit(bt)
        report.flagged = _flag(
            bt, lb, np.array([v[0] for v in counted], dtype=object), min_votes, z_threshold
        )
        report.components = [list(c) for c in lb.components]
    return report


def _open_binary(path: Path, gz: bool) -> IO[bytes]:
    return gzip.open(path) if gz else path.open("rb")  # type: ignore[return-value]


def _read_column(path: Path, name: str, n: int) -> np.ndarray:
    """A text column of a log (``judge``, ``exclusion``), in file order (missing -> ``(none)``)."""
    fmt, gz = detect_format(path)
    schema = pa.schema([(name, pa.string())])
    if fmt == "parquet":
        names = pq.read_schema(path).names
        col = pq.read_table(path, columns=[name])[name] if name in names else None
    elif fmt == "csv":
        with _open_binary(path, gz) as stream:
            table = pacsv.read_csv(
                stream, convert_options=pacsv.ConvertOptions(column_types={name: pa.string()})
            )
        col = table[name] if name in table.column_names else None
    elif fmt == "jsonl":
        with _open_binary(path, gz) as stream:
            col = pajson.read_json(
                stream,
                parse_options=pajson.ParseOptions(
                    explicit_schema=schema, unexpected_field_behavior="ignore"
                ),
            )[name]
    else:
        opener = gzip.open if gz else open
        with opener(path, "rt", encoding="utf-8") as f:
            records = json.load(f)
        col = pa.array([r.get(name) if isinstance(r, dict) else None for r in records])
    if col is None:
        return np.full(n, "(none)", dtype=object)
    values = np.asarray(col.to_pylist(), dtype=object)
    values[(values == None) | (values == "")] = "(none)"  # noqa: E711 - elementwise comparison
    return values.astype(str).astype(object)


def audit_log(path: str | Path, *, min_votes: int = 20, z_threshold: float = -4.0) -> AuditReport:
    """Audit a battle log (votes only: nothing about served or abandoned battles).

    Raises
    ------
    ratings.BattleDataError
        Bad input, naming the file, line and field.
    """
    p = Path(path)
    battles = read_battles(p, include_named=True, include_excluded=True, cluster_columns=())
    try:
        anonymous = len(read_battles(p, include_excluded=True, cluster_columns=()))
    except BattleDataError:  # the file was read above: every vote in it is named
        anonymous = 0
    report = AuditReport(source=str(p), votes=len(battles), anonymous_votes=anonymous)
    reasons = _read_column(p, "exclusion", len(battles))
    if len(reasons) == len(battles):
        report.exclusions = dict(
            Counter("(counted)" if r == "(none)" else str(r) for r in reasons.tolist())
        )
    report.exposure = _exposure_uniform(battles)
    report.exposure_basis = "observed / expected under uniform pairs (a log has no policy)"
    lb = _fit(battles)
    judges = _read_column(p, "judge", len(battles))
    if len(judges) == len(battles):
        report.flagged = _flag(battles, lb, judges, min_votes, z_threshold)
    report.components = [list(c) for c in lb.components]
    return report


def format_report(r: AuditReport) -> str:
    """Plain-text report."""
    lines = [f"Audit of {r.source}", "", f"votes: {r.votes:,} ({r.anonymous_votes:,} anonymous)"]
    if r.battles_by_status:
        served = sum(r.battles_by_status.values())
        parts = ", ".join(f"{k} {v:,}" for k, v in sorted(r.battles_by_status.items()))
        lines.append(f"battles served: {served:,} ({parts})")
        if r.abstention_mean is not None:
            lines.append(
                f"users: {r.users:,}; mean abstention (served but not voted): "
                f"{r.abstention_mean:.1%}"
            )
            for key, served_n, voted_n in r.top_abstainers:
                lines.append(f"  {key}…  served {served_n}, voted {voted_n}")
    else:
        lines.append("battles served: unknown (a log holds votes only)")
    lines += ["", "exclusions by reason:"]
    if r.exclusions:
        lines += [f"  {k}: {v:,}" for k, v in sorted(r.exclusions.items())]
    else:
        lines.append("  (none recorded in this source)")
    lines += ["", f"exposure per model ({r.exposure_basis}):"]
    lines += [f"  {m:<40} {n:>9,}  {ratio:6.2f}" for m, n, ratio in r.exposure]
    lines += ["", "flagged voters (z <= threshold):"]
    if r.flagged:
        lines += [
            f"  {f.judge}: {f.votes} decisive votes, agreed {f.agreements:.0f} vs "
            f"{f.expected:.1f} expected, z = {f.z:.1f}"
            for f in r.flagged
        ]
    else:
        lines.append("  none")
    lines.append("")
    if len(r.components) <= 1:
        lines.append("comparison graph: connected")
    else:
        lines.append(f"comparison graph: DISCONNECTED into {len(r.components)} components:")
        lines += [f"  {', '.join(c)}" for c in r.components]
    return "\n".join(lines) + "\n"
