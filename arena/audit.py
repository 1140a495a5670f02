"""``arena audit``: what happened to the votes, and whom to distrust.

For a database or a battle log: battles served vs voted (abstention per user), exclusions by
reason, exposure per model against the sampling policy, voters flagged by the rigging tests
(:func:`arena.rigging.detect_rigging`: the test, its statistic and the model each flag is
about), how much each model's rating rests on its most influential voters, and whether the
comparison graph is connected.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from sqlalchemy.engine import Engine

from arena import store
from arena.rigging import ModelRobustness, RiggingReport, RiggingSettings, VoterFlag, detect_rigging
from ratings import (
    BattleDataError,
    Battles,
    Leaderboard,
    RatingOptions,
    compute_leaderboard,
    read_battles,
)
from ratings.readers import detect_format

__all__ = [
    "AuditReport",
    "audit_database",
    "audit_log",
    "format_report",
    "report_dict",
]


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
    flagged: list[VoterFlag] = field(default_factory=list)
    taste_sd_elo: float | None = None
    signals: list[str] = field(default_factory=list)
    robustness: list[ModelRobustness] = field(default_factory=list)
    components: list[list[str]] = field(default_factory=list)

    def flagged_reasons(self) -> dict[str, str]:
        """Flagged judge -> the exclusion reason ``--apply`` stores."""
        return RiggingReport(flags=self.flagged).flagged()

    def headlines(self) -> dict[str, VoterFlag]:
        """Flagged judge -> the flag naming the model its excess is about."""
        return RiggingReport(flags=self.flagged).headlines()


def _flag(
    report: AuditReport,
    battles: Battles,
    judge_labels: np.ndarray,
    settings: RiggingSettings,
    address_labels: np.ndarray | None = None,
) -> None:
    labels, codes = np.unique(judge_labels.astype(str), return_inverse=True)
    address = names = None
    if address_labels is not None and (address_labels != "(none)").any():
        names, address = np.unique(address_labels.astype(str), return_inverse=True)
        address = address.reshape(-1).astype(np.int64)
    found = detect_rigging(
        battles,
        codes.reshape(-1).astype(np.int64),
        labels=labels.tolist(),
        address=address,
        address_names=None if names is None else names.tolist(),
        settings=settings,
        with_robustness=True,
    )
    report.flagged = found.flags
    report.taste_sd_elo = found.taste_sd_elo
    report.signals = found.signals
    report.robustness = found.robustness


def _fit(battles: Battles) -> Leaderboard:
    """The point fit both the anomaly test and the connectivity report use."""
    return compute_leaderboard(battles, RatingOptions(ci="none"))


def _exposure_uniform(battles: Battles) -> list[tuple[str, int, float]]:
    counts = np.bincount(battles.a, minlength=battles.n_models) + np.bincount(
        battles.b, minlength=battles.n_models
    )
    expected = 2 * len(battles) / battles.n_models
    return [(m, int(c), c / expected) for m, c in zip(battles.models, counts, strict=True)]


def audit_database(engine: Engine, *, settings: RiggingSettings | None = None) -> AuditReport:
    """Audit the arena database.

    The voter tests run on the counted anonymous votes, with each voter's first vote time
    as the first-seen signal and the battle's address key (keyed hash of the client address;
    the voter key for battles from before it was stored) as the address group signal.

    Parameters
    ----------
    engine
        From :func:`arena.store.open_engine`.
    settings
        Levels of the voter tests.

    Returns
    -------
    AuditReport
    """
    tables = store.audit_tables(engine=engine)
    status, per_user, excl = tables.status, tables.per_user, tables.exclusions
    votes, pairs = tables.votes, tables.pairs
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
    counted = [v for v in votes if v[4] and v[6] is None]
    if counted:
        bt = Battles.from_columns(
            [v[1] for v in counted],
            [v[2] for v in counted],
            [v[3] for v in counted],
            tstamp=[_seconds(v[5]) for v in counted],
        )
        lb = _fit(bt)
        _flag(
            report,
            bt,
            np.array([v[0] for v in counted], dtype=object),
            settings or _DEFAULT,
            address_labels=np.array([v[7] or "(none)" for v in counted], dtype=object),
        )
        report.components = [list(c) for c in lb.components]
    return report


_DEFAULT = RiggingSettings()


def _seconds(value: object) -> float:
    """A stored ``voted_at`` as unix seconds (SQLite hands back text, PostgreSQL datetimes)."""
    import datetime as dt

    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    return math.nan


def _open_binary(path: Path, gz: bool) -> IO[bytes]:
    return gzip.open(path) if gz else path.open("rb")  # type: ignore[return-value]


def _read_column(path: Path, name: str, n: int, kind: pa.DataType | None = None) -> np.ndarray:
    """A column of a log (``judge``, ``exclusion``, ``anony``), in file order, as text
    (missing -> ``(none)``); ``kind`` is the type to parse it as (default text)."""
    fmt, gz = detect_format(path)
    kind = kind or pa.string()
    schema = pa.schema([(name, kind)])
    if fmt == "parquet":
        names = pq.read_schema(path).names
        col = pq.read_table(path, columns=[name])[name] if name in names else None
    elif fmt == "csv":
        with _open_binary(path, gz) as stream:
            table = pacsv.read_csv(
                stream,
                convert_options=pacsv.ConvertOptions(
                    column_types={name: kind},
                    true_values=["true", "True", "TRUE", "1"],
                    false_values=["false", "False", "FALSE", "0"],
                ),
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


def audit_log(path: str | Path, *, settings: RiggingSettings | None = None) -> AuditReport:
    """Audit a battle log (votes only: nothing about served or abandoned battles).

    The voter tests run on the votes that count (anonymous, no exclusion reason), with the
    ``tstamp`` field as the first-seen signal and the optional ``address_hash`` field as the
    address-group signal.

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
    if len(judges) == len(battles) and (judges != "(none)").any():
        counted = _counted_mask(p, len(battles), reasons)
        if counted.any():
            address = _read_column(p, "address_hash", len(battles))
            _flag(
                report,
                battles.select(counted),
                judges[counted],
                settings or _DEFAULT,
                address[counted] if len(address) == len(battles) else None,
            )
    report.components = [list(c) for c in lb.components]
    return report


def _counted_mask(path: Path, n: int, reasons: np.ndarray) -> np.ndarray:
    """The votes ``arena ratings`` counts by default: anonymous and not excluded."""
    try:
        anony = _read_column(path, "anony", n, pa.bool_())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # flags written as text ("true")
        anony = _read_column(path, "anony", n)
    named = np.array([str(x).lower() in ("false", "0") for x in anony.tolist()], dtype=bool)
    excluded = (reasons != "(none)") if len(reasons) == n else np.zeros(n, dtype=bool)
    return ~named & ~excluded


def report_dict(r: AuditReport) -> dict[str, object]:
    """The report as plain data (``arena audit --format json``)."""
    out = dataclasses.asdict(r)
    out["exposure"] = [{"model": m, "battles": n, "ratio": x} for m, n, x in r.exposure]
    out["top_abstainers"] = [{"user": u, "served": s, "voted": v} for u, s, v in r.top_abstainers]
    out["robustness"] = [
        {**dataclasses.asdict(m), "ratio": m.ratio, "fragile": m.fragile} for m in r.robustness
    ]
    out["flagged_voters"] = {
        judge: {"reason": reason, **dataclasses.asdict(r.headlines()[judge])}
        for judge, reason in r.flagged_reasons().items()
    }
    return out


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
    lines += ["", "flagged voters (voter: test -> exclusion reason, the model, statistic):"]
    if r.signals:
        taste = f"; honest taste sd {r.taste_sd_elo:.0f} Elo" if r.taste_sd_elo else ""
        lines.append(f"  signals used: {', '.join(r.signals)}{taste}")
    if r.flagged:
        heads = r.headlines()
        reasons = r.flagged_reasons()
        count = Counter(f.judge for f in r.flagged)
        for judge, f in sorted(heads.items(), key=lambda kv: kv[1].log10_p):
            group = f", group {f.group!r}" if f.group else ""
            what = (
                f"agreed with the fit {f.wins:.0f} of {f.votes} vs {f.expected:.1f} expected"
                if f.test == "agreement"
                else f"excess {'wins for' if f.direction == 'for' else 'losses against'} "
                f"{f.model}: won {f.wins:.0f} of {f.votes} decisive vs {f.expected:.1f} expected"
            )
            fs = range(count[judge])
            more = f" (+{len(fs) - 1} more)" if len(fs) > 1 else ""
            lines.append(
                f"  {judge}: {f.test} -> {reasons[judge]}; {what}, z = {f.z:.1f}, "
                f"p = 10^{f.log10_p:.1f}{group}{more}"
            )
    else:
        lines.append("  none")
    if r.robustness:
        k = r.robustness[0].k
        lines += [
            "",
            f"rating robustness (move without each model's {k} most influential voters, Elo; "
            "FRAGILE when beyond the 95% CI half-width):",
        ]
        for m in sorted(r.robustness, key=lambda x: -x.ratio):
            mark = "  FRAGILE" if m.fragile else ""
            lines.append(
                f"  {m.model:<40} {m.drop:+7.1f} {m.lift:+7.1f}  half-width {m.half_width:5.1f}"
                f"  ({m.ratio:.2f}x){mark}"
            )
    lines.append("")
    if len(r.components) <= 1:
        lines.append("comparison graph: connected")
    else:
        lines.append(f"comparison graph: DISCONNECTED into {len(r.components)} components:")
        lines += [f"  {', '.join(c)}" for c in r.components]
    return "\n".join(lines) + "\n"
