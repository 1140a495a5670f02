"""Render :func:`ratings.insights.compute_insights` as JSON, a text table, Markdown or HTML.

Like the leaderboard exporters, output is a pure function of the insights dict: fixed
decimals, ``\\n`` line endings, no timestamps.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from typing import Any

__all__ = ["INSIGHT_FORMATS", "format_insights", "rounded"]

INSIGHT_FORMATS = ("table", "json", "md", "html")
_DIGITS = 4


def rounded(obj: Any, digits: int = _DIGITS) -> Any:
    """Round every float in a nested structure (NaN and infinities become ``None``)."""
    if isinstance(obj, float):
        return round(obj, digits) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [rounded(v, digits) for v in obj]
    return obj


def _n(x: Any, fmt: str = ".1f") -> str:
    return "-" if x is None else format(x, fmt)


def _est(d: dict[str, Any], fmt: str = ".1f", unit: str = "") -> str:
    if d.get("estimate") is None:
        return "not estimable"
    lo = _n(d.get("lower"), fmt)
    hi = "unbounded" if d.get("upper") is None else _n(d.get("upper"), fmt)
    share = d.get("defined_share", 1.0)
    # Draws without enough points give no value; say so, since the interval is then
    # conditional on the draws that had one.
    cond = f"; defined in {100 * share:.0f}% of draws" if share < 1.0 else ""
    return f"{format(d['estimate'], fmt)}{unit} (95% CI {lo} to {hi}{cond})"


def _sections(ins: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """(title, header, rows, notes) per section."""
    level = round(100 * ins["method"]["level"])
    out = []
    rows = [
        [r["model"], _n(r["params_b"], "g"), f"{r['rating']:.1f}",
         f"{r['lower']:.1f} to {r['upper']:.1f}", f"{100 * r['p_front']:.0f}%"]
        for r in ins["pareto_params"]
    ]  # fmt: skip
    trend = ins["params_trend"]
    notes = []
    if trend.get("reason"):
        notes.append(f"Parameters for a fixed rating: {trend['reason']}.")
    else:
        half = trend["halving_months"]
        halving = (
            f"they halve every {_est(half, '.1f', ' months')}"
            if half["estimate"] is not None
            else "they do not fall at the point estimate"
            + ("" if half["lower"] is None else f" (a halving time of {half['lower']:.1f} "
               "months or more is within the interval)")
        )  # fmt: skip
        notes.append(
            "log2(parameters) needed for a fixed rating changes by "
            f"{_est(trend['log2_params_per_month'], '.3f')} a month, so {halving} "
            f"(fit on the {trend['n_points']} models on the front at their release)."
        )
    out.append(
        (
            "Capability density: rating vs parameters (Pareto front)",
            ["Model", "Params (B)", "Rating", f"{level}% CI", "On front"],
            rows,
            notes,
        )
    )
    lag = ins["open_lag_months"]
    rows = [
        [p["model"], p["release_date"], f"{p['rating']:.1f}", p["proprietary_model"] or "-",
         p["proprietary_release_date"] or "-", _n(p["lag_months"])]
        for p in lag["points"]
    ]  # fmt: skip
    note = (
        f"Median lag of open-weights records: {_est(lag, '.1f', ' months')}."
        if lag.get("reason") is None
        else f"Open-weights lag not estimable: {lag['reason']}."
    )
    out.append(
        (
            "Open vs proprietary: months from the first proprietary model rated at least as "
            "high to each new open record",
            ["Open record", "Released", "Rating", "First proprietary >=", "Released", "Lag (mo)"],
            rows,
            [note],
        )
    )
    for group, fr in ins["frontier"].items():
        rows = [
            [r["model"], r["release_date"], f"{r['rating']:.1f}",
             f"{r['lower']:.1f} to {r['upper']:.1f}", f"{100 * r['p_record']:.0f}%"]
            for r in fr["records"]
        ]  # fmt: skip
        if fr.get("reason"):
            notes = [f"Frontier gain: {fr['reason']}."]
        else:
            notes = [
                f"Gain over {fr['span_months']:.1f} months: "
                f"{_est(fr['gain_per_month'], '.1f', ' points/month')}; over the last third: "
                f"{_est(fr['gain_per_month_last_third'], '.1f', ' points/month')}."
            ]
        out.append(
            (
                f"Frontier ({group} models): record-setters by release date",
                ["Model", "Released", "Rating", f"{level}% CI", "Record in"],
                rows,
                notes,
            )
        )
    rows = [
        [r["model"], f"{r['price']:.3g}", f"{r['rating']:.1f}",
         f"{r['lower']:.1f} to {r['upper']:.1f}", f"{100 * r['p_front']:.0f}%"]
        for r in ins["pareto_price"]
    ]  # fmt: skip
    out.append(
        (
            "Rating vs blended price (3:1 input:output, per million tokens)",
            ["Model", "Price", "Rating", f"{level}% CI", "On front"],
            rows,
            [] if rows else ["No model has both input and output prices."],
        )
    )
    return out


def _description(ins: dict[str, Any]) -> str:
    m = ins["method"]
    how = (
        f"percentile bootstrap, {m['rounds']} rounds"
        if m["ci"] == "bootstrap"
        else f"{m['rounds']} normal draws from the sandwich covariance"
    )
    return (
        f"Bradley-Terry ratings of {m['n_models']} models from {m['n_battles']} battles; every "
        f"figure recomputed in each of the rating draws ({how}); "
        f"{round(100 * m['level'])}% intervals."
    )


def format_insights(
    ins: dict[str, Any], fmt: str, *, escape: Callable[[str], str] | None = None
) -> str:
    """Render insights.

    Parameters
    ----------
    ins
        The dict from :func:`ratings.insights.compute_insights`.
    fmt
        One of :data:`INSIGHT_FORMATS`.
    escape
        For ``md``: a function that makes any text literal Markdown, applied to every table
        cell and note (model names can come from an imported log and hold HTML or links).
        Default: only ``|`` is escaped.

    Returns
    -------
    str
        The document, ending with a newline.

    Raises
    ------
    ValueError
        Unknown format.
    """
    if fmt == "json":
        return json.dumps(rounded(ins), indent=2, ensure_ascii=False) + "\n"
    if fmt not in INSIGHT_FORMATS:
        raise ValueError(f"unknown format {fmt!r} (expected one of {', '.join(INSIGHT_FORMATS)})")
    sections = _sections(ins)
    lines: list[str] = []

    def cell(text: str) -> str:
        return escape(text) if escape is not None else text.replace("|", "\\|")

    if fmt == "html":
        lines.append(
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            "<title>Arena insights</title>\n<style>body{font-family:system-ui,sans-serif;"
            "margin:2em}table{border-collapse:collapse}th,td{padding:.3em .7em;"
            "border-bottom:1px solid #ddd}</style>\n</head>\n<body>"
        )
        lines.append(f"<p>{html.escape(_description(ins))}</p>")
        for title, header, rows, notes in sections:
            lines.append(f"<h2>{html.escape(title)}</h2>")
            if rows:
                lines.append("<table>")
                lines.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header))
                for row in rows:
                    lines.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row))
                lines.append("</table>")
            lines += [f"<p>{html.escape(n)}</p>" for n in notes]
        lines.append("</body>\n</html>")
        return "\n".join(lines) + "\n"
    for title, header, rows, notes in sections:
        if fmt == "md":
            lines.append(f"### {title}\n")
            if rows:
                lines.append("| " + " | ".join(header) + " |")
                lines.append("|" + "---|" * len(header))
                lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
                lines.append("")
            lines += [f"{escape(n) if escape else n}\n" for n in notes]
        else:
            lines.append(title)
            lines.append("=" * len(title))
            if rows:
                widths = [max(len(h), *(len(r[k]) for r in rows)) for k, h in enumerate(header)]
                lines.append(
                    "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()
                )
                lines.append("  ".join("-" * w for w in widths))
                lines += [
                    "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                    for r in rows
                ]
            lines += notes
            lines.append("")
    lines.append(_description(ins))
    return "\n".join(lines) + "\n"
