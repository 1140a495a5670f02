"""Leaderboard exporters: text table, CSV, JSON, Markdown, HTML.

Output is a pure function of the :class:`~ratings.leaderboard.Leaderboard`: fixed column
order, fixed decimals, ``\\n`` line endings, no timestamps -- so the same battles, options
and seed give byte-identical files.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from ratings.leaderboard import Leaderboard, LeaderboardRow
from ratings.metadata import ModelMeta

__all__ = [
    "FORMATS",
    "by_category_dict",
    "format_by_category",
    "format_leaderboard",
    "leaderboard_dict",
    "rank_range_text",
    "style_summary",
]

FORMATS = ("table", "csv", "json", "md", "html")

_CSV_COLUMNS = (
    "rank",
    "rank_upper",
    "rank_lower",
    "rating_order",
    "model",
    "rating",
    "lower",
    "upper",
    "battles",
    "wins",
    "ties",
    "losses",
    "win_rate",
    "avg_win_rate",
    "p_rank1",
    "rank_ci_best",
    "rank_ci_worst",
)
_DIGITS = 4  # machine-readable formats
# "Rank" is LMArena's (1 + models whose lower bound beats this upper bound); "By rating" is
# the order of the point estimates, which differs from it for most models of a close board.
_HUMAN = (
    ("Rank", lambda r: str(r.rank)),
    ("Rank range", lambda r: rank_range_text(r)),
    ("By rating", lambda r: str(r.rating_order)),
    ("Model", lambda r: r.model),
    ("Rating", lambda r: f"{r.rating:.1f}"),
    ("95% CI", lambda r: _ci_text(r)),
    ("P(#1)", lambda r: _pct(r.p_rank1)),
    ("Battles", lambda r: str(r.battles)),
    ("W / T / L", lambda r: f"{r.wins} / {r.ties} / {r.losses}"),
    ("Win rate", lambda r: _pct(r.win_rate)),
    ("Avg win prob.", lambda r: _pct(r.avg_win_rate)),
)


# Metadata columns (``--metadata``): (key, header, text); shown only when a model has a value.
_META: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("params_b", "Params (B)", lambda v: f"{v:g}"),
    ("active_params_b", "Active (B)", lambda v: f"{v:g}"),
    ("training_tokens_t", "Tokens (T)", lambda v: f"{v:g}"),
    ("open_weights", "Open", lambda v: "yes" if v else "no"),
    ("organisation", "Organisation", str),
    ("license", "License", str),
    ("release_date", "Released", lambda v: v.isoformat()),
    ("knowledge_cutoff", "Cutoff", lambda v: v.isoformat()),
    ("price_in_per_mtok", "$ in/Mtok", lambda v: f"{v:g}"),
    ("price_out_per_mtok", "$ out/Mtok", lambda v: f"{v:g}"),
    ("url", "URL", str),
)


def _meta_columns(
    lb: Leaderboard, meta: Mapping[str, ModelMeta] | None
) -> list[tuple[str, str, Callable[[Any], str]]]:
    if not meta:
        return []
    rated = [meta[r.model] for r in lb.rows if r.model in meta]
    return [c for c in _META if any(getattr(m, c[0]) is not None for m in rated)]


def _meta_cell(meta: Mapping[str, ModelMeta], model: str, key: str, text: Any) -> str:
    value = getattr(meta[model], key) if model in meta else None
    return "" if value is None else str(text(value))


def _meta_json(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _num(x: float, digits: int = _DIGITS) -> float | None:
    return None if math.isnan(x) else round(x, digits)


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def rank_range_text(r: LeaderboardRow) -> str:
    """``best-worst`` rank the intervals allow (one number when they agree)."""
    return str(r.rank_upper) if r.rank_upper == r.rank_lower else f"{r.rank_upper}-{r.rank_lower}"


def _ci_text(r: LeaderboardRow) -> str:
    if r.lower == r.upper == r.rating:
        return "-"
    return f"{r.lower - r.rating:+.1f} / {r.upper - r.rating:+.1f}"


def _matrix(values: Any) -> list[list[float | None]]:
    return [[_num(float(x)) for x in row] for row in values]


def leaderboard_dict(lb: Leaderboard, matrices: bool = False) -> dict[str, Any]:
    """The JSON document: ``method, ci, n_battles, models[...]`` plus the options used.

    Parameters
    ----------
    lb
        The leaderboard.
    matrices
        Add ``matrices``: the model order, the fit's predicted P(i beats j) and, when there
        are intervals, P(i rated above j) over the replicates.

    Returns
    -------
    dict
    """
    o = lb.options
    doc: dict[str, Any] = {
        "method": o.method,
        "ci": o.ci,
        "n_battles": lb.n_battles,
        "n_models": len(lb.rows),
        "level": o.level,
        "rounds": o.rounds if o.ci == "bootstrap" else None,
        "seed": o.seed if o.ci == "bootstrap" else None,
        "cluster_by": o.cluster_by,
        "anchor": None if o.anchor is None else {"model": o.anchor[0], "rating": o.anchor[1]},
        "min_battles": o.min_battles,
        "style_control": o.style_control,
        "models": [
            {
                "model": r.model,
                "rating": _num(r.rating),
                "lower": _num(r.lower),
                "upper": _num(r.upper),
                "rank": r.rank,
                "rank_upper": r.rank_upper,
                "rank_lower": r.rank_lower,
                "battles": r.battles,
                "wins": r.wins,
                "ties": r.ties,
                "losses": r.losses,
                "win_rate": _num(r.win_rate),
                "avg_win_rate": _num(r.avg_win_rate),
                "rating_order": r.rating_order,
                "p_rank1": _num(r.p_rank1),
                "rank_ci_best": r.rank_ci_best or None,
                "rank_ci_worst": r.rank_ci_worst or None,
            }
            for r in lb.rows
        ],
        "warnings": list(lb.warnings),
        "notes": list(lb.notes),
    }
    if lb.style is not None:
        st = lb.style
        doc["style"] = {
            "features": list(st.features),
            "coefficients": [
                {
                    "feature": f,
                    "estimate": _num(float(st.estimate[k]), 6),
                    "lower": _num(float(st.lower[k]), 6),
                    "upper": _num(float(st.upper[k]), 6),
                }
                for k, f in enumerate(st.features)
            ],
            "uncontrolled_rating": {
                name: _num(float(st.uncontrolled[k])) for k, name in enumerate(lb.models)
            },
        }
    if matrices:
        doc["matrices"] = {
            "models": list(lb.models),
            "predicted_win_rate": _matrix(lb.predicted_win_rates),
            "p_rated_above": None if lb.p_above is None else _matrix(lb.p_above),
        }
    return doc


def _description(lb: Leaderboard) -> str:
    o = lb.options
    method = "Bradley-Terry MLE (ties = half a win)" if o.method == "bt" else "online Elo"
    if o.style_control:
        method = "style-controlled Bradley-Terry (ties = half a win)"
    ci = {
        "sandwich": "sandwich (robust) standard errors",
        "fisher": "Fisher-information standard errors",
        "bootstrap": f"percentile bootstrap, {o.rounds} rounds, seed {o.seed}",
        "none": "no intervals",
    }[o.ci]
    if o.cluster_by and o.ci != "none":
        ci += f", clustered by {o.cluster_by}"
    scale = (
        f"relative to {o.anchor[0]} pinned at {o.anchor[1]:g}" if o.anchor else "mean rating 1000"
    )
    ranks = (
        "Rank: 1 + the number of models whose lower bound is above this model's upper bound "
        "(LMArena's rank); By rating: order of the point estimates"
    )
    if o.ci != "none":
        source = "bootstrap rounds" if o.ci == "bootstrap" else "draws of the normal approx."
        ranks += f"; P(#1): share of {o.rounds} {source} with the model on top"
    text = (
        f"{method}; {int(o.level * 100)}% CI: {ci}; {scale}; {lb.n_battles} battles, "
        f"{len(lb.rows)} models. {ranks}."
    )
    return text + style_summary(lb)


def style_summary(lb: Leaderboard, top: int = 3) -> str:
    """One paragraph on style control: the coefficients and who gains or loses most.

    Empty for a leaderboard without style control.
    """
    st = lb.style
    if st is None:
        return ""
    coefs = ", ".join(
        f"{f} {st.estimate[k]:+.3f} [{st.lower[k]:+.3f}, {st.upper[k]:+.3f}]"
        for k, f in enumerate(st.features)
    )
    delta = {r.model: r.rating - st.uncontrolled[lb.models.index(r.model)] for r in lb.rows}
    order = sorted(delta, key=lambda k: (delta[k], k))
    gain = ", ".join(f"{k} {delta[k]:+.1f}" for k in reversed(order[-top:]) if delta[k] > 0)
    lose = ", ".join(f"{k} {delta[k]:+.1f}" for k in order[:top] if delta[k] < 0)
    return (
        f" Style coefficients (logit per SD of (a-b)/(a+b+1)): {coefs}."
        f" Gain most from control: {gain or 'none'}; lose most: {lose or 'none'}."
    )


def format_leaderboard(
    lb: Leaderboard,
    fmt: str,
    meta: Mapping[str, ModelMeta] | None = None,
    matrices: bool = False,
) -> str:
    """Render a leaderboard.

    Parameters
    ----------
    lb
        The leaderboard.
    fmt
        One of ``FORMATS``.
    meta
        Optional model metadata: its fields become extra columns (those some rated model
        has a value for), and a ``metadata`` object per model in JSON.
    matrices
        JSON only: add the predicted win-rate and P(rated above) matrices.

    Returns
    -------
    str
        The document, ending with a newline.

    Raises
    ------
    ValueError
        Unknown format.
    """
    extra = _meta_columns(lb, meta)
    mt: Mapping[str, ModelMeta] = meta or {}
    human = list(_HUMAN) + [
        (h, lambda r, k=k, f=f: _meta_cell(mt, r.model, k, f)) for k, h, f in extra
    ]
    if fmt == "json":
        doc = leaderboard_dict(lb, matrices)
        if extra:
            for row in doc["models"]:
                m = mt.get(row["model"])
                row["metadata"] = {
                    k: (_meta_json(getattr(m, k)) if m else None) for k, _, _ in extra
                }
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([*_CSV_COLUMNS, *(k for k, _, _ in extra)])
        for row in leaderboard_dict(lb)["models"]:
            m = mt.get(row["model"])
            writer.writerow(
                ["" if row[c] is None else row[c] for c in _CSV_COLUMNS]
                + [
                    "" if m is None or getattr(m, k) is None else _meta_json(getattr(m, k))
                    for k, _, _ in extra
                ]
            )
        return buf.getvalue()
    if fmt in ("table", "md"):
        header = [h for h, _ in human]
        body = [[f(r) for _, f in human] for r in lb.rows]
        if fmt == "md":
            esc = [[c.replace("|", "\\|") for c in row] for row in body]
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(row) + " |" for row in esc]
            tail = [f"> warning: {w}" for w in lb.warnings] + [f"> note: {n}" for n in lb.notes]
            return "\n".join([*lines, "", _description(lb), *tail]) + "\n"
        widths = [max(len(h), *(len(row[k]) for row in body)) for k, h in enumerate(header)]
        right = {
            k
            for k, (h, _) in enumerate(human)
            if k < len(_HUMAN) and h not in ("Model", "W / T / L")
        }

        def fmt_row(cells: list[str]) -> str:
            return "  ".join(
                c.rjust(w) if k in right else c.ljust(w)
                for k, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        lines = [fmt_row(header), fmt_row(["-" * w for w in widths])]
        lines += [fmt_row(row) for row in body]
        tail = [f"warning: {w}" for w in lb.warnings] + [f"note: {n}" for n in lb.notes]
        return "\n".join([*lines, "", _description(lb), *tail]) + "\n"
    if fmt == "html":
        head = "".join(f"<th>{html.escape(h)}</th>" for h, _ in human)
        rows = "\n".join(
            "<tr>" + "".join(f"<td>{html.escape(f(r))}</td>" for _, f in human) + "</tr>"
            for r in lb.rows
        )
        notes = "".join(
            f'<p class="warning">{html.escape(w)}</p>\n' for w in lb.warnings
        ) + "".join(f'<p class="note">{html.escape(n)}</p>\n' for n in lb.notes)
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            "<title>Arena leaderboard</title>\n<style>\n"
            "body{font-family:system-ui,sans-serif;margin:2em}"
            "table{border-collapse:collapse}"
            "th,td{padding:.3em .7em;border-bottom:1px solid #ddd;text-align:right}"
            "td:nth-child(4),th:nth-child(4){text-align:left}"
            ".warning{color:#a40}\n</style>\n</head>\n<body>\n"
            f'<table class="leaderboard">\n<caption>{html.escape(_description(lb))}</caption>\n'
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>\n"
            f"{notes}</body>\n</html>\n"
        )
    raise ValueError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")


def by_category_dict(overall: Leaderboard, boards: dict[str, Leaderboard]) -> dict[str, Any]:
    """Each model's rank overall and per category, with the change against overall.

    Parameters
    ----------
    overall
        The leaderboard on all battles.
    boards
        One leaderboard per category (on that category's battles), by name.

    Returns
    -------
    dict
        ``categories`` (names, with battle counts) and ``models``: for each model of the
        overall board, in its order, ``overall`` rank and per category ``rank`` and
        ``change`` (overall rank minus category rank: positive means it ranks higher in
        that category), ``None`` where the model has no battles in the category.
    """
    ranks = {name: {r.model: r.rank for r in lb.rows} for name, lb in boards.items()}
    models = []
    for r in overall.rows:
        entry: dict[str, Any] = {"model": r.model, "overall": r.rank, "categories": {}}
        for name in boards:
            rank = ranks[name].get(r.model)
            entry["categories"][name] = {
                "rank": rank,
                "change": None if rank is None else r.rank - rank,
            }
        models.append(entry)
    return {
        "rank": "LMArena rank: 1 + models whose lower bound is above this upper bound",
        "n_battles": overall.n_battles,
        "categories": {name: {"n_battles": lb.n_battles} for name, lb in boards.items()},
        "models": models,
    }


def format_by_category(overall: Leaderboard, boards: dict[str, Leaderboard], fmt: str) -> str:
    """Render :func:`by_category_dict` as ``table``, ``md``, ``csv`` or ``json``.

    Raises
    ------
    ValueError
        Another format.
    """
    doc = by_category_dict(overall, boards)
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    names = list(boards)

    def cell(c: dict[str, Any]) -> str:
        if c["rank"] is None:
            return "-"
        return f"{c['rank']} ({c['change']:+d})" if c["change"] else f"{c['rank']} (=)"

    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(
            ["model", "overall", *(f"{n}{s}" for n in names for s in ("_rank", "_change"))]
        )
        for m in doc["models"]:
            row: list[Any] = [m["model"], m["overall"]]
            for n in names:
                c = m["categories"][n]
                row += ["" if c["rank"] is None else c["rank"],
                        "" if c["change"] is None else c["change"]]  # fmt: skip
            writer.writerow(row)
        return buf.getvalue()
    if fmt not in ("table", "md"):
        raise ValueError(f"--by category writes table, md, csv or json, not {fmt!r}")
    header = ["Model", "Overall", *(f"{n} ({boards[n].n_battles})" for n in names)]
    body = [
        [m["model"], str(m["overall"]), *(cell(m["categories"][n]) for n in names)]
        for m in doc["models"]
    ]
    foot = (
        f"Rank per category (LMArena rank; change against the overall board in brackets, "
        f"+ = higher in the category); {overall.n_battles} battles overall."
    )
    if fmt == "md":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
        return "\n".join([*lines, "", foot]) + "\n"
    widths = [max(len(h), *(len(row[k]) for row in body)) for k, h in enumerate(header)]
    lines = [
        "  ".join(c.ljust(w) if k == 0 else c.rjust(w)
                  for k, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
        for row in [header, ["-" * w for w in widths], *body]
    ]  # fmt: skip
    return "\n".join([*lines, "", foot]) + "\n"
