"""PNG plots of a leaderboard: ratings with CI bars, win-rate and battle-count heatmaps, and
rating against model size; and of insights: ratings over time, capability density, the
open-weights gap and price.

Figures are built as plain ``matplotlib.figure.Figure`` objects, never through pyplot's global
state, so plotting is safe from the web app's worker threads and needs no display.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ratings.insights import History
from ratings.leaderboard import Leaderboard

__all__ = [
    "battle_count_heatmap",
    "capability_density_plot",
    "history_plot",
    "open_gap_plot",
    "predicted_win_rate_heatmap",
    "price_plot",
    "rating_ci_plot",
    "rating_vs_size_plot",
    "win_rate_heatmap",
    "write_insight_plots",
    "write_plots",
]

# No creation date or version in the PNG, so re-running gives the same bytes.
_PNG_META = {"Software": None}
_MAX_HEATMAP = 40  # models shown in heatmaps (the top ones by rating)


def _subplots(figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    fig = Figure(figsize=figsize)
    return fig, fig.add_subplot()


def rating_ci_plot(lb: Leaderboard) -> Figure:
    """Horizontal bars: each model's rating with its confidence interval, best on top."""
    rows = lb.rows
    n = len(rows)
    fig, ax = _subplots(figsize=(8, max(2.5, 0.28 * n + 1.2)))
    y = np.arange(n)[::-1]
    rating = np.array([r.rating for r in rows])
    err = np.array([[r.rating - r.lower for r in rows], [r.upper - r.rating for r in rows]])
    ax.errorbar(rating, y, xerr=err, fmt="o", color="#1f5fa8", ecolor="#7aa6d6", capsize=3)
    ax.set_yticks(y, [r.model for r in rows], fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    level = int(lb.options.level * 100)
    ax.set_xlabel(f"rating ({level}% CI)")
    method = lb.options.method.upper() + (", style-controlled" if lb.options.style_control else "")
    ax.set_title(f"Ratings — {method}, {lb.n_battles} battles")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def _top_models(lb: Leaderboard) -> list[int]:
    order = [lb.models.index(r.model) for r in lb.rows]
    return order[:_MAX_HEATMAP]


def _heatmap(lb: Leaderboard, values: np.ndarray, title: str, fmt: str, cmap: str) -> Figure:
    idx = _top_models(lb)
    sub = values[np.ix_(idx, idx)]
    names = [lb.models[k] for k in idx]
    n = len(idx)
    size = max(4.0, 0.38 * n + 2.5)
    fig, ax = _subplots(figsize=(size, size))
    im = ax.imshow(np.ma.masked_invalid(sub), cmap=cmap)
    ax.set_xticks(range(n), names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    ax.set_xlabel("model B")
    ax.set_ylabel("model A")
    ax.set_title(title)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if i != j and np.isfinite(sub[i, j]):
                    ax.text(j, i, format(sub[i, j], fmt), ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, shrink=0.7)
    fig.tight_layout()
    return fig


def win_rate_heatmap(lb: Leaderboard) -> Figure:
    """Observed fraction of points model A (row) scored against model B (column)."""
    return _heatmap(lb, lb.win_rates, "Win rate of A over B (ties = 1/2)", ".2f", "RdBu")


def predicted_win_rate_heatmap(lb: Leaderboard) -> Figure:
    """The fit's P(model A (row) beats model B (column))."""
    pred = lb.predicted_win_rates.copy()
    np.fill_diagonal(pred, np.nan)
    return _heatmap(lb, pred, "Predicted P(A beats B) from the fit", ".2f", "RdBu")


def battle_count_heatmap(lb: Leaderboard) -> Figure:
    """Number of battles between each pair of models."""
    counts = lb.battle_counts.astype(float).copy()
    counts[counts == 0] = np.nan
    return _heatmap(lb, counts, "Battles per pair", ".0f", "viridis")


def rating_vs_size_plot(lb: Leaderboard, params_b: Mapping[str, float]) -> Figure:
    """Rating against parameter count (billions, log scale) for models whose size is known."""
    pts = [(params_b[r.model], r) for r in lb.rows if params_b.get(r.model)]
    fig, ax = _subplots(figsize=(7, 4.5))
    if pts:
        x = np.array([p for p, _ in pts])
        y = np.array([r.rating for _, r in pts])
        err = np.array([[r.rating - r.lower for _, r in pts], [r.upper - r.rating for _, r in pts]])
        ax.errorbar(x, y, yerr=err, fmt="o", capsize=3)
        for p, r in pts:
            ax.annotate(
                r.model, (p, r.rating), fontsize=7, xytext=(4, 2), textcoords="offset points"
            )
        ax.set_xscale("log")
    ax.set_xlabel("parameters (billions)")
    ax.set_ylabel("rating")
    ax.set_title("Rating vs model size")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def write_plots(
    lb: Leaderboard, out_dir: str | Path, params_b: Mapping[str, float] | None = None
) -> list[Path]:
    """Write the plots as PNG files into ``out_dir`` (created if needed).

    Returns
    -------
    list of pathlib.Path
        The files written: ``ratings_ci.png``, ``win_rate_heatmap.png``,
        ``battle_count_heatmap.png``, ``predicted_win_rate_heatmap.png`` and, when sizes
        are given, ``rating_vs_size.png``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = {
        "ratings_ci.png": rating_ci_plot(lb),
        "win_rate_heatmap.png": win_rate_heatmap(lb),
        "battle_count_heatmap.png": battle_count_heatmap(lb),
        "predicted_win_rate_heatmap.png": predicted_win_rate_heatmap(lb),
    }
    if params_b:
        figures["rating_vs_size.png"] = rating_vs_size_plot(lb, params_b)
    written = []
    for name, fig in figures.items():
        path = out / name
        fig.savefig(path, dpi=110, metadata=_PNG_META)
        written.append(path)
    return written


# ---------------------------------------------------------------------------------------------
# Insight plots (``arena plots`` with timestamps and ``--metadata``; the app's Insights tab)

_OPEN_COLOUR, _PROP_COLOUR, _OTHER_COLOUR = "#2a7a2a", "#b0481c", "#777777"
_HISTORY_LINES = 12  # models drawn in history.png (the best rated at the last snapshot)


def history_plot(hist: History) -> Figure:
    """Each model's rating at monthly snapshots, with its interval as a band."""
    fig, ax = _subplots(figsize=(9, 5))
    x = np.array([np.datetime64(d.isoformat()) for d in hist.dates])
    last = np.where(np.isfinite(hist.rating[-1]), hist.rating[-1], -np.inf)
    shown = [k for k in np.argsort(-last, kind="stable") if np.isfinite(last[k])]
    for k in shown[:_HISTORY_LINES]:
        ok = np.isfinite(hist.rating[:, k])
        (line,) = ax.plot(x[ok], hist.rating[ok, k], marker="o", ms=3, label=hist.models[k])
        ax.fill_between(
            x[ok], hist.lower[ok, k], hist.upper[ok, k], color=line.get_color(), alpha=0.12
        )
    ax.set_xlabel("snapshot (votes cast before this day)")
    ax.set_ylabel("rating (95% CI band)")
    more = f", top {_HISTORY_LINES} of {len(shown)}" if len(shown) > _HISTORY_LINES else ""
    ax.set_title(f"Ratings over time{more}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def _colour(open_weights: bool | None) -> str:
    return {True: _OPEN_COLOUR, False: _PROP_COLOUR}.get(open_weights, _OTHER_COLOUR)  # type: ignore[arg-type]


def _front_plot(ins: Mapping[str, Any], key: str, cost: str, xlabel: str, title: str) -> Figure:
    """Rating vs a cost on a log axis: every model with the cost, the front as a line."""
    fig, ax = _subplots(figsize=(8, 5))
    rows = [r for r in ins["ratings"] if r.get(cost) is not None]
    for open_w, label in ((True, "open weights"), (False, "proprietary"), (None, "unknown")):
        pts = [r for r in rows if r["open_weights"] is open_w]
        if not pts:
            continue
        x = np.array([r[cost] for r in pts])
        y = np.array([r["rating"] for r in pts])
        err = np.array(
            [[r["rating"] - r["lower"] for r in pts], [r["upper"] - r["rating"] for r in pts]]
        )
        ax.errorbar(
            x, y, yerr=err, fmt="o", capsize=2, color=_colour(open_w), label=label, alpha=0.8
        )
        for r in pts:
            ax.annotate(
                r["model"],
                (r[cost], r["rating"]),
                fontsize=6,
                xytext=(3, 2),
                textcoords="offset points",
            )
    front = ins[key]
    if front:
        fx = [r["params_b" if cost != "blended_price" else "price"] for r in front]
        fy = [r["rating"] for r in front]
        ax.step(
            fx,
            fy,
            where="post",
            color="#1f5fa8",
            lw=1.5,
            label="Pareto front (share of draws on it)",
        )
        for r, xx, yy in zip(front, fx, fy, strict=True):
            ax.annotate(
                f"{100 * r['p_front']:.0f}%",
                (xx, yy),
                fontsize=6,
                xytext=(3, -9),
                textcoords="offset points",
                color="#1f5fa8",
            )
    if rows:
        ax.set_xscale("log")
        ax.legend(fontsize=7, loc="lower right")
    else:
        ax.text(0.5, 0.5, "no model has this metadata", ha="center", transform=ax.transAxes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rating (95% CI)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def capability_density_plot(ins: Mapping[str, Any]) -> Figure:
    """Rating vs parameters (log axis), the Pareto front drawn, open and proprietary marked."""
    rows = [dict(r, size=r["active_params_b"] or r["params_b"]) for r in ins["ratings"]]
    return _front_plot(
        {**ins, "ratings": rows}, "pareto_params", "size",
        "parameters, billions (active parameters for mixture-of-experts)",
        "Capability density: rating vs parameters",
    )  # fmt: skip


def price_plot(ins: Mapping[str, Any]) -> Figure:
    """Rating vs blended price (log axis), the Pareto front drawn."""
    return _front_plot(
        ins, "pareto_price", "blended_price",
        "blended price per million tokens (3:1 input:output)", "Rating vs price",
    )  # fmt: skip


def open_gap_plot(ins: Mapping[str, Any]) -> Figure:
    """Open and proprietary frontiers over release date, each open record's lag drawn as an
    arrow from the first proprietary model rated at least as high."""
    fig, ax = _subplots(figsize=(9, 5))
    dated = [r for r in ins["ratings"] if r["release_date"] is not None]
    for open_w, label in ((False, "proprietary"), (True, "open weights")):
        pts = sorted(
            (np.datetime64(r["release_date"]), r["rating"], r)
            for r in dated
            if r["open_weights"] is open_w
        )
        if not pts:
            continue
        x = np.array([p[0] for p in pts])
        y = np.array([p[1] for p in pts])
        err = np.array(
            [
                [p[2]["rating"] - p[2]["lower"] for p in pts],
                [p[2]["upper"] - p[2]["rating"] for p in pts],
            ]
        )
        colour = _colour(open_w)
        ax.errorbar(x, y, yerr=err, fmt="o", ms=4, capsize=2, color=colour, alpha=0.35)
        # The frontier: best rating released so far, extended to the last release.
        ax.step(
            x, np.maximum.accumulate(y), where="post", color=colour, lw=2, label=f"{label} frontier"
        )
    lag = ins["open_lag_months"]
    for p in lag["points"]:
        if p["lag_months"] is None:
            continue
        x0, x1 = np.datetime64(p["proprietary_release_date"]), np.datetime64(p["release_date"])
        ax.annotate(
            "",
            xy=(x1, p["rating"]),
            xytext=(x0, p["rating"]),
            arrowprops={"arrowstyle": "->", "color": "#444"},
        )
        ax.annotate(
            f"{p['model']}: {p['lag_months']:.1f} mo",
            (x1, p["rating"]),
            fontsize=6,
            xytext=(3, 3),
            textcoords="offset points",
        )
    if lag["estimate"] is not None:
        title = (
            f"Open-weights lag: median {lag['estimate']:.1f} months "
            f"(95% CI {lag['lower']:.1f} to {lag['upper']:.1f})"
        )
    else:
        title = "Open-weights lag: not estimable"
        ax.text(0.01, 0.01, lag.get("reason") or "", fontsize=7, transform=ax.transAxes, wrap=True)
    ax.set_title(title)
    ax.set_xlabel("release date")
    ax.set_ylabel("rating (95% CI)")
    ax.grid(alpha=0.3)
    if dated:
        ax.legend(fontsize=7, loc="lower right")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def write_insight_plots(
    out_dir: str | Path,
    *,
    insights: Mapping[str, Any] | None = None,
    history: History | None = None,
) -> list[Path]:
    """Write ``history.png`` (when a history is given) and ``capability_density.png``,
    ``open_gap.png``, ``price.png`` (when insights are given) into ``out_dir``.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Figure] = {}
    if history is not None:
        figures["history.png"] = history_plot(history)
    if insights is not None:
        figures["capability_density.png"] = capability_density_plot(insights)
        figures["open_gap.png"] = open_gap_plot(insights)
        figures["price.png"] = price_plot(insights)
    written = []
    for name, fig in figures.items():
        path = out / name
        fig.savefig(path, dpi=110, metadata=_PNG_META)
        written.append(path)
    return written
