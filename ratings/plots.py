"""PNG plots of a leaderboard: ratings with CI bars, win-rate and battle-count heatmaps, and
rating against model size.

Figures are built as plain ``matplotlib.figure.Figure`` objects, never through pyplot's global
state, so plotting is safe from the web app's worker threads and needs no display.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ratings.leaderboard import Leaderboard

__all__ = [
    "battle_count_heatmap",
    "rating_ci_plot",
    "rating_vs_size_plot",
    "win_rate_heatmap",
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
    ax.set_title(f"Ratings — {lb.options.method.upper()}, {lb.n_battles} battles")
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
        ``battle_count_heatmap.png`` and, when sizes are given, ``rating_vs_size.png``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = {
        "ratings_ci.png": rating_ci_plot(lb),
        "win_rate_heatmap.png": win_rate_heatmap(lb),
        "battle_count_heatmap.png": battle_count_heatmap(lb),
    }
    if params_b:
        figures["rating_vs_size.png"] = rating_vs_size_plot(lb, params_b)
    written = []
    for name, fig in figures.items():
        path = out / name
        fig.savefig(path, dpi=110, metadata=_PNG_META)
        written.append(path)
    return written
